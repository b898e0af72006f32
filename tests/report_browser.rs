//! The HTML report in a real browser: `batch` runs on a copy of the demo study plus a subject
//! whose folder name is HTML with quotes, and `compare --html` on one pair; the study index,
//! subject pages and the pair page are rendered by
//! headless Chromium (no network), which must log no console message, and the screenshot
//! must show pictures where the overlays are and drawings where the plots are (regions found
//! by the browser's own layout, not hard-coded).
//!
//! Needs Debian's `chromium` (`.ci/run` installs it). Without it the test FAILS; set
//! `SCARSCOPE_SKIP_BROWSER=1` to skip it knowingly. `SCARSCOPE_CHROMIUM` names another binary.

use std::path::{Path, PathBuf};
use std::process::Command;

use image::RgbImage;
use tempfile::TempDir;

const HOSTILE: &str = "<img src=x onerror=alert(1)>\"'";
const WIDTH: u32 = 1280;
const HEIGHT: u32 = 2400;

fn chromium() -> Option<PathBuf> {
    if std::env::var_os("SCARSCOPE_SKIP_BROWSER").is_some_and(|v| v == "1") {
        return None;
    }
    let name = std::env::var_os("SCARSCOPE_CHROMIUM").unwrap_or_else(|| "chromium".into());
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(&name))
            .find(|p| p.is_file())
    });
    let found = found.or_else(|| Some(PathBuf::from(&name)).filter(|p| p.is_file()));
    assert!(
        found.is_some(),
        "chromium is not installed: `apt-get install -y chromium` (as .ci/run does), \
         or set SCARSCOPE_SKIP_BROWSER=1 to skip the browser test"
    );
    found
}

/// What one page load gave: the console lines, the screenshot and the probe's findings.
struct Render {
    console: Vec<String>,
    shot: Option<RgbImage>,
}

/// Load `page` in headless Chromium with a fresh profile, no network; screenshot it if
/// `shot` is given, else dump the DOM (returned in `dom`).
fn chromium_run(bin: &Path, page: &Path, shot: Option<&Path>, dom: &mut String) -> Render {
    let profile = TempDir::new().expect("profile dir");
    let url = format!(
        "file://{}",
        page.canonicalize().expect("page exists").display()
    );
    let mut cmd = Command::new(bin);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--hide-scrollbars",
        "--enable-logging=stderr",
        "--v=0",
        // No network: every host resolves nowhere.
        "--host-resolver-rules=MAP * ~NOTFOUND",
        &format!("--window-size={WIDTH},{HEIGHT}"),
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()));
    match shot {
        Some(p) => {
            cmd.arg(format!("--screenshot={}", p.display()));
        }
        None => {
            cmd.arg("--dump-dom");
        }
    }
    let out = cmd.arg(&url).output().expect("chromium starts");
    assert!(
        out.status.success(),
        "chromium failed on {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let console = console_messages(&stderr);
    if shot.is_none() {
        *dom = String::from_utf8_lossy(&out.stdout).into_owned();
    }
    let shot = shot.map(|p| image::open(p).expect("screenshot is a PNG").to_rgb8());
    Render { console, shot }
}

/// Console messages of the page (Chromium logs them as `...:CONSOLE:...` with
/// `--enable-logging=stderr`); browser-internal noise (D-Bus and the like) is not one.
fn console_messages(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|l| l.contains(":CONSOLE") || l.contains("Uncaught"))
        .map(str::to_string)
        .collect()
}

/// A probe script appended to a copy of a page: it writes, into the title, the boxes of the
/// overlays and plots as laid out, the number of <img> elements and the main heading.
const PROBE: &str = r#"<script>
const box = s => [...document.querySelectorAll(s)].map(e => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.width, r.height].map(Math.round); });
document.title = JSON.stringify({ overlays: box("figure.overlay svg"), plots: box("figure.plot svg"), imgs: document.querySelectorAll("img, script:not(#probe)").length, h1: document.querySelector("h1").textContent, links: [...document.querySelectorAll("a")].map(a => a.getAttribute("href")) });
</script>"#;

#[derive(Debug)]
struct Probe {
    overlays: Vec<[i64; 4]>,
    plots: Vec<[i64; 4]>,
    /// `<img>` and `<script>` elements of the page itself.
    foreign: i64,
    h1: String,
    links: Vec<String>,
}

fn probe(bin: &Path, page: &Path, dir: &Path) -> Probe {
    let html = std::fs::read_to_string(page).expect("page");
    let probe_page = dir.join("probe.html");
    let script = PROBE.replace("<script>", "<script id=\"probe\">");
    let probed = html.replacen("</body>", &format!("{script}</body>"), 1);
    std::fs::write(&probe_page, probed).expect("probe page");
    let mut dom = String::new();
    let r = chromium_run(bin, &probe_page, None, &mut dom);
    assert!(r.console.is_empty(), "probe page console: {:?}", r.console);
    let title = dom
        .split_once("<title>")
        .and_then(|(_, t)| t.split_once("</title>"))
        .map(|(t, _)| t)
        .expect("title in the DOM");
    let title = title
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&");
    let v: serde_json::Value = serde_json::from_str(&title).expect("probe JSON");
    let boxes = |k: &str| -> Vec<[i64; 4]> {
        v[k].as_array()
            .expect("boxes")
            .iter()
            .map(|b| {
                let b: Vec<i64> = b
                    .as_array()
                    .expect("box")
                    .iter()
                    .map(|x| x.as_i64().expect("int"))
                    .collect();
                [b[0], b[1], b[2], b[3]]
            })
            .collect()
    };
    Probe {
        overlays: boxes("overlays"),
        plots: boxes("plots"),
        foreign: v["imgs"].as_i64().expect("count"),
        h1: v["h1"].as_str().expect("h1").to_string(),
        links: v["links"]
            .as_array()
            .expect("links")
            .iter()
            .map(|l| l.as_str().unwrap_or_default().to_string())
            .collect(),
    }
}

/// Luminance statistics of a region: (standard deviation, fraction of near-white pixels,
/// fraction of mid-tone pixels).
fn region_stats(img: &RgbImage, b: [i64; 4]) -> Option<(f64, f64, f64)> {
    let x0 = b[0].clamp(0, i64::from(img.width())) as u32;
    let y0 = b[1].clamp(0, i64::from(img.height())) as u32;
    let x1 = (b[0] + b[2]).clamp(0, i64::from(img.width())) as u32;
    let y1 = (b[1] + b[3]).clamp(0, i64::from(img.height())) as u32;
    if x1 <= x0 + 10 || y1 <= y0 + 10 {
        return None;
    }
    let (mut n, mut s, mut s2, mut white, mut mid) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for y in y0..y1 {
        for x in x0..x1 {
            let p = img.get_pixel(x, y).0;
            let l = 0.2126 * f64::from(p[0]) + 0.7152 * f64::from(p[1]) + 0.0722 * f64::from(p[2]);
            n += 1.0;
            s += l;
            s2 += l * l;
            if p.iter().all(|&c| c > 240) {
                white += 1.0;
            }
            if (50.0..235.0).contains(&l) {
                mid += 1.0;
            }
        }
    }
    let mean = s / n;
    Some(((s2 / n - mean * mean).max(0.0).sqrt(), white / n, mid / n))
}

/// A photo is there: textured (σ of luminance well above flat colour), mostly mid-tones (not
/// the white page, not the dark frame an image-less overlay leaves).
fn looks_like_photo(img: &RgbImage, b: [i64; 4]) -> bool {
    region_stats(img, b).is_some_and(|(sd, white, mid)| sd > 8.0 && white < 0.2 && mid > 0.6)
}

/// A plot is there: mostly white paper with a real amount of ink (axes, lines, text).
fn looks_like_plot(img: &RgbImage, b: [i64; 4]) -> bool {
    region_stats(img, b).is_some_and(|(sd, white, _)| sd > 12.0 && (0.4..0.995).contains(&white))
}

/// Run the real binary; it must succeed. Returns its standard output.
fn scarscope(args: &[&std::ffi::OsStr]) -> String {
    let o = assert_cmd::Command::cargo_bin("scarscope")
        .expect("the scarscope binary is built")
        .args(args)
        .output()
        .expect("runs");
    assert!(
        o.status.success(),
        "scarscope {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("readable") {
        let e = e.expect("entry");
        let target = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).expect("copy");
        }
    }
}

#[test]
fn the_detectors_can_fail_blank_regions_and_script_errors_are_caught() {
    // Image predicates on synthetic regions: blank and flat regions are neither photo nor plot.
    let white = RgbImage::from_pixel(200, 200, image::Rgb([255, 255, 255]));
    let flat = RgbImage::from_pixel(200, 200, image::Rgb([200, 150, 120]));
    let noisy = RgbImage::from_fn(200, 200, |x, y| {
        let v = ((x * 37 + y * 91) % 160 + 40) as u8;
        image::Rgb([v, v / 2 + 30, v / 3 + 20])
    });
    let b = [0, 0, 200, 200];
    assert!(!looks_like_photo(&white, b) && !looks_like_plot(&white, b));
    assert!(!looks_like_photo(&flat, b) && !looks_like_plot(&flat, b));
    assert!(looks_like_photo(&noisy, b));
    // A region outside the screenshot is not a picture.
    assert!(!looks_like_photo(&noisy, [500, 500, 100, 100]));

    // The console check on a page with a deliberate script error.
    let Some(bin) = chromium() else {
        eprintln!("SCARSCOPE_SKIP_BROWSER=1: browser part skipped");
        return;
    };
    let dir = TempDir::new().expect("temp");
    let page = dir.path().join("broken.html");
    std::fs::write(
        &page,
        "<!DOCTYPE html><html><body><p>x</p><script>noSuchFunction();</script></body></html>",
    )
    .expect("write");
    let mut dom = String::new();
    let r = chromium_run(&bin, &page, Some(&dir.path().join("b.png")), &mut dom);
    assert!(
        r.console.iter().any(|l| l.contains("noSuchFunction")),
        "the console check missed a script error: {:?}",
        r.console
    );
}

#[test]
fn study_and_subject_pages_load_cleanly_and_show_overlays_plots_and_hostile_names_as_text() {
    let Some(bin) = chromium() else {
        eprintln!("SCARSCOPE_SKIP_BROWSER=1: browser test skipped");
        return;
    };
    let dir = TempDir::new().expect("temp");
    let study = dir.path().join("study");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/study");
    copy_dir(&fixtures, &study);
    copy_dir(&fixtures.join("S02"), &study.join(HOSTILE));
    let out = dir.path().join("out");
    let stdout = scarscope(&[
        "batch".as_ref(),
        "--jobs".as_ref(),
        "2".as_ref(),
        "--quiet".as_ref(),
        study.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ]);
    assert!(stdout.contains("report/index.html"), "{stdout}");
    let index = out.join("report/index.html");
    let study_doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("study.json")).expect("study.json"))
            .expect("json");
    let hostile_doc = study_doc["subjects"]
        .as_array()
        .expect("subjects")
        .iter()
        .find(|s| s["subject"] == HOSTILE)
        .expect("hostile subject listed")["document"]
        .as_str()
        .expect("document")
        .to_string();
    let hostile_name = hostile_doc
        .strip_prefix("subjects/")
        .and_then(|d| d.strip_suffix(".json"))
        .expect("document path");
    let hostile_page = out.join(format!("report/subjects/{hostile_name}.html"));
    let s01 = out.join("report/subjects/S01.html");
    let work = dir.path().join("browser");
    std::fs::create_dir_all(&work).expect("mkdir");
    // `compare --html` writes the same kind of page for one pair.
    let compare_page = work.join("pair.html");
    scarscope(&[
        "compare".as_ref(),
        study.join("S01/s1/left_cheek.jpg").as_os_str(),
        study.join("S01/s3/left_cheek.jpg").as_os_str(),
        "--mm-per-px".as_ref(),
        "0.05".as_ref(),
        "--out".as_ref(),
        work.join("pair.json").as_os_str(),
        "--html".as_ref(),
        compare_page.as_os_str(),
    ]);

    for (k, page) in [&index, &s01, &hostile_page, &compare_page]
        .into_iter()
        .enumerate()
    {
        let shot_path = work.join(format!("shot{k}.png"));
        let mut dom = String::new();
        let r = chromium_run(&bin, page, Some(&shot_path), &mut dom);
        assert!(
            r.console.is_empty(),
            "{}: console messages {:?}",
            page.display(),
            r.console
        );
        let shot = r.shot.expect("screenshot");
        assert_eq!(shot.dimensions(), (WIDTH, HEIGHT));
        let p = probe(&bin, page, &work);
        assert_eq!(
            p.foreign,
            0,
            "{}: <img> or <script> in the page",
            page.display()
        );
        if k == 0 {
            // The index links every subject, the hostile one percent-encoded, to a page
            // that exists.
            assert!(p.h1.contains("synthetic study"), "{}", p.h1);
            assert_eq!(p.links.len(), 3, "{:?}", p.links);
            for l in &p.links {
                assert!(
                    l.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-._~%/".contains(&b)),
                    "unsafe link {l}"
                );
                assert!(out.join("report").join(l).is_file(), "dead link {l}");
            }
            continue;
        }
        if k == 2 {
            assert_eq!(p.h1, format!("Subject {HOSTILE}"), "the id renders as text");
        }
        assert_eq!(
            p.overlays.len(),
            if k == 3 { 1 } else { 3 },
            "{}: one overlay per session (one side by side for a pair)",
            page.display()
        );
        assert_eq!(p.plots.len(), 4, "{}: four plots per view", page.display());
        for b in &p.overlays {
            assert!(
                b[1] + b[3] <= i64::from(HEIGHT),
                "overlay below the screenshot {b:?}"
            );
            assert!(
                looks_like_photo(&shot, *b),
                "{}: overlay region {b:?} is blank: {:?}",
                page.display(),
                region_stats(&shot, *b)
            );
        }
        for b in &p.plots {
            assert!(
                b[1] + b[3] <= i64::from(HEIGHT),
                "plot below the screenshot {b:?}"
            );
            assert!(
                looks_like_plot(&shot, *b),
                "{}: plot region {b:?} is blank: {:?}",
                page.display(),
                region_stats(&shot, *b)
            );
        }
        if k == 1 {
            // The same page with its overlay images stripped must fail the overlay check
            // (labels over an empty frame are not a photo).
            let html = std::fs::read_to_string(page).expect("page");
            let mut stripped = String::new();
            let mut rest = html.as_str();
            while let Some(i) = rest.find("<image href=\"data:") {
                stripped.push_str(&rest[..i]);
                rest = rest[i..].split_once("/>").map_or("", |(_, r)| r);
            }
            stripped.push_str(rest);
            let blank = work.join("stripped.html");
            std::fs::write(&blank, stripped).expect("write");
            let mut dom = String::new();
            let shot_path = work.join("stripped.png");
            let r = chromium_run(&bin, &blank, Some(&shot_path), &mut dom);
            let blank_shot = r.shot.expect("screenshot");
            let q = probe(&bin, &blank, &work);
            assert_eq!(q.overlays, p.overlays, "same layout without the images");
            for b in &q.overlays {
                assert!(
                    !looks_like_photo(&blank_shot, *b),
                    "an overlay without its image passed as a photo: {:?}",
                    region_stats(&blank_shot, *b)
                );
            }
        }
        // A region known to be empty page background fails the same checks.
        let margin = [0, p.overlays[0][1], 12, p.overlays[0][3]];
        assert!(!looks_like_photo(&shot, margin) && !looks_like_plot(&shot, margin));
    }
    if let Some(dest) = std::env::var_os("SCARSCOPE_REPORT_SCREENSHOT") {
        // Maintainers: regenerate docs/img/report_subject.png from the S01 screenshot.
        std::fs::copy(work.join("shot1.png"), dest).expect("copy screenshot");
    }
}
