//! The `scarscope` executable driven end to end: a phantom study made by `synth`, analysed by
//! `analyze`, scored by `eval`. Reports are read back through Deserialize mirrors defined
//! here, not the library's types, so a change to the JSON contract shows up as a failure.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tempfile::TempDir;

/// The real binary.
fn scarscope() -> Command {
    Command::cargo_bin("scarscope").expect("the scarscope binary is built")
}

/// A one-photo phantom study in a fresh folder: (folder, photo, truth).
#[test]
fn synth_with_cast_shadows_renders_other_and_repeatable_photos() {
    let photo = |dir: &Path, shadows: bool| {
        let mut cmd = scarscope();
        cmd.arg("synth").arg(dir).args([
            "--subjects",
            "1",
            "--sessions",
            "1",
            "--width",
            "240",
            "--height",
            "180",
            "--px-per-mm",
            "20",
            "--scars",
            "4",
            "--seed",
            "5",
        ]);
        if shadows {
            cmd.arg("--cast-shadows");
        }
        cmd.assert().success();
        std::fs::read(dir.join("S01/s1/left_cheek.jpg")).expect("photo written")
    };
    let dirs: Vec<TempDir> = (0..3).map(|_| TempDir::new().expect("temp dir")).collect();
    let plain = photo(dirs[0].path(), false);
    let cast = photo(dirs[1].path(), true);
    assert_ne!(plain, cast, "cast shadows change the rendering");
    assert_eq!(cast, photo(dirs[2].path(), true), "same seed, same bytes");
}

fn study() -> (TempDir, PathBuf, PathBuf) {
    let dir = TempDir::new().expect("temp dir");
    scarscope()
        .args(["synth"])
        .arg(dir.path())
        .args([
            "--subjects",
            "1",
            "--sessions",
            "1",
            "--width",
            "400",
            "--height",
            "300",
            "--px-per-mm",
            "10",
            "--scars",
            "8",
            "--seed",
            "3",
        ])
        .assert()
        .success();
    let photo = dir.path().join("S01/s1/left_cheek.jpg");
    let truth = dir.path().join(".truth/S01/s1/left_cheek.json");
    assert!(
        photo.is_file() && truth.is_file(),
        "synth wrote its photo and truth"
    );
    (dir, photo, truth)
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn read_json(path: &Path) -> Value {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every key must be present (null allowed): serde would read a missing `Option` as `None`.
fn assert_keys(v: &Value, what: &str, keys: &[&str]) {
    let obj = v
        .as_object()
        .unwrap_or_else(|| panic!("{what} is not an object"));
    for k in keys {
        assert!(obj.contains_key(*k), "{what} lacks `{k}`: {v}");
    }
}

// Independent mirror of the analyze document (DOMAIN.md §5).

#[derive(Debug, Deserialize)]
struct Doc {
    schema_version: String,
    tool: ToolM,
    input: InputM,
    parameters: Value,
    calibration: CalibrationM,
    light: LightM,
    warnings: Vec<String>,
    scars: Vec<ScarM>,
    summary: SummaryM,
}

#[derive(Debug, Deserialize)]
struct ToolM {
    name: String,
    version: String,
}

#[derive(Debug, Deserialize)]
struct InputM {
    path: String,
    width: u32,
    height: u32,
    sha256: String,
}

#[derive(Debug, Deserialize)]
struct CalibrationM {
    mm_per_px: Option<f64>,
    source: String,
}

#[derive(Debug, Deserialize)]
struct LightM {
    azimuth_deg: f64,
    elevation_deg: f64,
    source: String,
    confidence: f64,
}

#[derive(Debug, Deserialize)]
struct ScarM {
    id: u32,
    centroid_px: [f64; 2],
    bbox_px: [u32; 4],
    area_px: f64,
    area_mm2: Option<f64>,
    depth_mm: Option<f64>,
    depth_basis: String,
    #[serde(rename = "type")]
    kind: String,
    type_confidence: f64,
}

#[derive(Debug, Deserialize)]
struct SummaryM {
    count: usize,
    total_area_mm2: Option<f64>,
    counts_by_type: CountsM,
}

#[derive(Debug, Deserialize)]
struct CountsM {
    icepick: usize,
    boxcar: usize,
    rolling: usize,
}

const SCAR_KEYS: &[&str] = &[
    "id",
    "centroid_px",
    "bbox_px",
    "area_px",
    "area_mm2",
    "equivalent_diameter_mm",
    "depth_mm",
    "mean_depth_mm",
    "volume_mm3",
    "depth_uncertainty_mm",
    "depth_basis",
    "type",
    "type_confidence",
    "redness",
    "pigment",
];

/// Check the whole contract of one document and return it typed.
fn check_contract(v: &Value, photo: &Path) -> Doc {
    assert_keys(
        v,
        "document",
        &[
            "schema_version",
            "tool",
            "input",
            "parameters",
            "calibration",
            "light",
            "warnings",
            "scars",
            "summary",
        ],
    );
    assert_keys(&v["calibration"], "calibration", &["mm_per_px", "source"]);
    assert_keys(
        &v["light"],
        "light",
        &["azimuth_deg", "elevation_deg", "source", "confidence"],
    );
    assert_keys(
        &v["summary"],
        "summary",
        &["count", "total_area_mm2", "counts_by_type"],
    );
    for s in v["scars"].as_array().expect("scars is an array") {
        assert_keys(s, "scar", SCAR_KEYS);
    }
    let d: Doc = serde_json::from_value(v.clone()).expect("document matches the mirror");
    assert_eq!(d.schema_version, "1.0.0");
    assert_eq!(d.tool.name, "scarscope");
    assert!(!d.tool.version.is_empty());
    assert_eq!(d.input.path, photo.to_string_lossy());
    assert_eq!((d.input.width, d.input.height), (400, 300));
    let bytes = std::fs::read(photo).expect("photo");
    let hex: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(d.input.sha256, hex);
    assert!(d.parameters.is_object());
    assert!(d.light.azimuth_deg.is_finite());
    assert!(d.light.elevation_deg > 0.0 && d.light.elevation_deg < 90.0);
    assert!((0.0..=1.0).contains(&d.light.confidence));
    assert_eq!(d.summary.count, d.scars.len());
    let c = &d.summary.counts_by_type;
    assert_eq!(c.icepick + c.boxcar + c.rolling, d.scars.len());
    for (i, s) in d.scars.iter().enumerate() {
        assert_eq!(s.id as usize, i + 1, "ids are 1.. in order");
        assert!(["icepick", "boxcar", "rolling"].contains(&s.kind.as_str()));
        assert!((0.0..=1.0).contains(&s.type_confidence));
        assert!(s.area_px > 0.0 && !s.depth_basis.is_empty());
        let [x0, y0, x1, y1] = s.bbox_px;
        assert!(x0 <= x1 && y0 <= y1 && x1 < 400 && y1 < 300);
        let [cx, cy] = s.centroid_px;
        assert!(cx >= x0 as f64 && cx <= x1 as f64 && cy >= y0 as f64 && cy <= y1 as f64);
    }
    d
}

/// Chunk types of a PNG file, in order.
fn png_chunks(bytes: &[u8]) -> Vec<String> {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    let mut types = Vec::new();
    let mut i = 8;
    while i + 8 <= bytes.len() {
        let len = u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        types.push(String::from_utf8_lossy(&bytes[i + 4..i + 8]).into_owned());
        i += 12 + len as usize;
    }
    types
}

#[test]
fn analyze_writes_every_contract_field_and_an_overlay_of_the_photo_size() {
    let (dir, photo, _) = study();
    let (json, png) = (dir.path().join("x.json"), dir.path().join("o.png"));
    let out = scarscope()
        .arg("analyze")
        .arg(&photo)
        .args(["--mm-per-px", "0.1", "--out"])
        .arg(&json)
        .arg("--overlay")
        .arg(&png)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr_of(&out));
    assert!(
        out.stdout.is_empty(),
        "the report went to --out, not stdout"
    );
    let d = check_contract(&read_json(&json), &photo);
    assert_eq!(d.calibration.mm_per_px, Some(0.1));
    assert_eq!(d.calibration.source, "command line");
    assert_eq!(d.light.source, "estimated");
    assert!(d.summary.total_area_mm2.is_some());
    assert!(d
        .scars
        .iter()
        .all(|s| s.area_mm2.is_some() && s.depth_mm.is_some()));
    // The human summary line names the photo.
    assert!(stderr_of(&out).contains("left_cheek.jpg: "));

    let bytes = std::fs::read(&png).expect("overlay written");
    let img = image::load_from_memory(&bytes).expect("overlay decodes");
    assert_eq!((img.width(), img.height()), (400, 300));
    let chunks = png_chunks(&bytes);
    assert!(!chunks.iter().any(|c| c == "eXIf"), "no EXIF: {chunks:?}");
    assert_eq!(chunks.last().map(String::as_str), Some("IEND"));
}

#[test]
fn analyze_with_the_light_given_reports_it_as_given() {
    let (_dir, photo, _) = study();
    let out = scarscope()
        .arg("analyze")
        .arg(&photo)
        .args([
            "--mm-per-px",
            "0.1",
            "--light-azimuth",
            "65",
            "--light-elevation",
            "55",
        ])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr_of(&out));
    // One photo without --out: one document (an object) on stdout.
    let v: Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    let d = check_contract(&v, &photo);
    assert_eq!(d.light.source, "given");
    assert_eq!((d.light.azimuth_deg, d.light.elevation_deg), (65.0, 55.0));
    assert_eq!(d.light.confidence, 1.0);
}

#[test]
fn eval_of_the_synth_truth_and_the_result_prints_json_with_f1() {
    let (dir, photo, truth) = study();
    let json = dir.path().join("x.json");
    scarscope()
        .arg("analyze")
        .arg(&photo)
        .args(["--mm-per-px", "0.1", "--out"])
        .arg(&json)
        .assert()
        .success();
    let out = scarscope()
        .arg("eval")
        .arg(&truth)
        .arg(&json)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr_of(&out));
    let v: Value = serde_json::from_slice(&out.stdout).expect("eval prints JSON");
    let f1 = v["scores"]["f1"].as_f64().expect("scores.f1 is a number");
    assert!((0.0..=1.0).contains(&f1));
    let err = v["light_azimuth_error_deg"]
        .as_f64()
        .expect("azimuth error");
    assert!((0.0..=180.0).contains(&err));
    assert!(v["scores"]["n_true"].as_u64().is_some_and(|n| n > 0));
}

/// Run analyze on `bad` and check it fails with exit code 1, naming the file.
fn assert_fails_naming(bad: &Path) {
    let out = scarscope()
        .arg("analyze")
        .arg(bad)
        .args(["--mm-per-px", "0.1"])
        .output()
        .expect("runs");
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert!(
        err.contains(&*bad.to_string_lossy()),
        "stderr names the file: {err}"
    );
    assert!(out.stdout.is_empty(), "no document for a failed photo");
}

#[test]
fn a_missing_photo_exits_1_and_names_the_file() {
    let dir = TempDir::new().expect("temp dir");
    assert_fails_naming(&dir.path().join("nowhere.jpg"));
}

#[test]
fn an_empty_photo_exits_1_and_names_the_file() {
    let dir = TempDir::new().expect("temp dir");
    let p = dir.path().join("empty.jpg");
    std::fs::write(&p, b"").expect("write");
    assert_fails_naming(&p);
}

#[test]
fn a_text_file_named_jpg_exits_1_and_names_the_file() {
    let dir = TempDir::new().expect("temp dir");
    let p = dir.path().join("notes.jpg");
    std::fs::write(&p, b"these are not pixels\n").expect("write");
    assert_fails_naming(&p);
}

#[test]
fn with_one_bad_photo_of_two_the_good_one_is_still_written_and_the_exit_code_is_1() {
    let (dir, photo, _) = study();
    let bad = dir.path().join("broken.jpg");
    std::fs::write(&bad, b"not a jpeg").expect("write");
    let json = dir.path().join("both.json");
    let out = scarscope()
        .arg("analyze")
        .arg(&bad)
        .arg(&photo)
        .args(["--mm-per-px", "0.1", "--out"])
        .arg(&json)
        .output()
        .expect("runs");
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert!(
        err.contains("broken.jpg"),
        "stderr names the bad file: {err}"
    );
    let v = read_json(&json);
    let docs = v.as_array().expect("several photos give a JSON array");
    assert_eq!(docs.len(), 1);
    check_contract(&docs[0], &photo);
}

#[test]
fn a_negative_pixel_size_is_a_usage_error_with_exit_code_2() {
    let (_dir, photo, _) = study();
    let out = scarscope()
        .arg("analyze")
        .arg(&photo)
        .args(["--mm-per-px", "-1"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2), "stderr: {}", stderr_of(&out));
    assert!(out.stdout.is_empty());
}

#[test]
fn the_tilt_share_is_recorded_used_and_checked() {
    let (_dir, photo, _) = study();
    let run = |share: Option<&str>| {
        let mut c = scarscope();
        c.arg("analyze")
            .arg(&photo)
            .args(["--mm-per-px", "0.1", "--light-elevation", "40"]);
        if let Some(s) = share {
            c.args(["--tilt-share", s]);
        }
        c.output().expect("runs")
    };
    let depths = |out: &std::process::Output| -> (f64, Vec<f64>) {
        assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr_of(out));
        let v: Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
        let share = v["parameters"]["tilt_share"].as_f64().expect("recorded");
        let d = v["scars"]
            .as_array()
            .expect("scars")
            .iter()
            .filter_map(|s| s["depth_mm"].as_f64())
            .collect();
        (share, d)
    };
    let (default_share, default_depths) = depths(&run(None));
    let (all_tilt, tilt_depths) = depths(&run(Some("1")));
    assert_eq!((default_share, all_tilt), (0.5, 1.0));
    // The phantom's photo has fall-off: reading it as tilt changes the depths.
    assert!(!default_depths.is_empty());
    assert_ne!(default_depths, tilt_depths);
    let out = run(Some("1.5"));
    assert_eq!(out.status.code(), Some(2), "stderr: {}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("tilt share"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn an_overlay_for_two_photos_is_a_usage_error_with_exit_code_2() {
    let (dir, photo, _) = study();
    let out = scarscope()
        .arg("analyze")
        .arg(&photo)
        .arg(&photo)
        .arg("--overlay")
        .arg(dir.path().join("o.png"))
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2), "stderr: {}", stderr_of(&out));
    assert!(!dir.path().join("o.png").exists());
}

/// `analyze PHOTO --mm-per-px 0.1 --out OUT EXTRA…`, which must succeed: the report's bytes
/// and stderr.
fn analyze_report(photo: &Path, out: &Path, extra: &[&std::ffi::OsStr]) -> (Vec<u8>, String) {
    let run = scarscope()
        .arg("analyze")
        .arg(photo)
        .args(["--mm-per-px", "0.1", "--out"])
        .arg(out)
        .args(extra)
        .output()
        .expect("runs");
    assert_eq!(run.status.code(), Some(0), "stderr: {}", stderr_of(&run));
    (std::fs::read(out).expect("written"), stderr_of(&run))
}

#[test]
fn analyzing_the_same_photo_twice_gives_identical_bytes() {
    let (dir, photo, _) = study();
    let run = |name: &str| analyze_report(&photo, &dir.path().join(name), &[]).0;
    assert_eq!(run("a.json"), run("b.json"));
}

#[test]
fn asking_for_an_overlay_leaves_the_analysis_unchanged() {
    // Without an overlay the photo is reduced and dropped before the analysis; with one it
    // is kept for drawing. The report must not tell the two apart.
    let (dir, photo, _) = study();
    let png = dir.path().join("o.png");
    let plain = analyze_report(&photo, &dir.path().join("plain.json"), &[]).0;
    let drawn = analyze_report(
        &photo,
        &dir.path().join("drawn.json"),
        &["--overlay".as_ref(), png.as_os_str()],
    )
    .0;
    assert_eq!(plain, drawn);
    assert!(
        std::fs::metadata(&png).is_ok_and(|m| m.len() > 0),
        "overlay written"
    );
}

#[test]
fn an_uncalibrated_photo_gives_null_areas_and_a_calibration_warning() {
    let (dir, photo, _) = study();
    let json = dir.path().join("u.json");
    let out = scarscope()
        .arg("analyze")
        .arg(&photo)
        .arg("--out")
        .arg(&json)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr_of(&out));
    let d = check_contract(&read_json(&json), &photo);
    assert_eq!(d.calibration.mm_per_px, None);
    assert_eq!(d.calibration.source, "none");
    assert_eq!(d.summary.total_area_mm2, None);
    assert!(d
        .scars
        .iter()
        .all(|s| s.area_mm2.is_none() && s.depth_mm.is_none()));
    assert!(
        d.warnings.iter().any(|w| w.contains("calibration")),
        "warnings: {:?}",
        d.warnings
    );
    assert!(
        stderr_of(&out).contains("calibration"),
        "warning shown on stderr"
    );
}

#[test]
fn out_dir_gets_a_json_and_an_overlay_per_photo() {
    let (dir, photo, _) = study();
    let copy = dir.path().join("right_cheek.jpg");
    std::fs::copy(&photo, &copy).expect("copy");
    let out_dir = dir.path().join("reports");
    scarscope()
        .arg("analyze")
        .arg(&photo)
        .arg(&copy)
        .args(["--mm-per-px", "0.1", "--out-dir"])
        .arg(&out_dir)
        .assert()
        .success();
    for stem in ["left_cheek", "right_cheek"] {
        let v = read_json(&out_dir.join(format!("{stem}.json")));
        assert!(v.is_object(), "one document per file");
        let png = std::fs::read(out_dir.join(format!("{stem}.overlay.png"))).expect("overlay");
        assert!(image::load_from_memory(&png).is_ok());
    }
}

#[test]
fn analyze_help_documents_the_exit_codes() {
    let out = scarscope()
        .args(["analyze", "--help"])
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Exit status"), "{text}");
    for code in ["0", "1", "2"] {
        assert!(text.contains(&format!("  {code}  ")), "{text}");
    }
}

#[test]
fn timings_print_every_stage_as_json_on_stderr_and_leave_the_report_unchanged() {
    let (dir, photo, _) = study();
    let run = |name: &str, timings: bool| {
        let extra: &[&std::ffi::OsStr] = if timings {
            &["--timings".as_ref()]
        } else {
            &[]
        };
        analyze_report(&photo, &dir.path().join(name), extra)
    };
    let (plain, plain_err) = run("a.json", false);
    let (timed, timed_err) = run("b.json", true);
    assert_eq!(plain, timed, "--timings does not change the report");
    assert!(!plain_err.lines().any(|l| l.starts_with('{')));
    let line = timed_err
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON line on stderr: {timed_err}"));
    let v: Value = serde_json::from_str(line).expect("the timings line is JSON");
    assert_eq!(v["photo"].as_str(), Some(photo.to_str().expect("utf-8")));
    let stages = v["stages_s"].as_object().expect("stages_s is an object");
    for s in [
        "decode",
        "normalise",
        "intrinsics",
        "light",
        "relief",
        "segment",
        "measure",
        "write",
    ] {
        let t = stages.get(s).and_then(Value::as_f64);
        assert!(t.is_some_and(|t| t >= 0.0), "stage {s}: {t:?}");
    }
    let sum: f64 = stages.values().filter_map(Value::as_f64).sum();
    let total = v["total_s"].as_f64().expect("total_s");
    assert!((sum - total).abs() < 1e-3, "total {total} vs sum {sum}");
}
