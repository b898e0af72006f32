//! Hostile and degenerate single photos driven through the real `scarscope analyze`: each is
//! refused with exit code 1 and a message naming the photo and the cause, or analysed with an
//! honest warning — never a crash, never a silent "0 scars". Also: what an output may carry
//! (no EXIF, no GPS, no camera identity) and whether a report holds enough to reproduce it.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use image::{ImageBuffer, Rgb, RgbImage};
use scarscope::analyze::analyze;
use scarscope::load::{load_path, LoadLimits};
use scarscope::report::{analyze_doc, to_json_bytes, AnalyzeDoc};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tempfile::TempDir;

fn scarscope() -> Command {
    Command::cargo_bin("scarscope").expect("the scarscope binary is built")
}

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(rel)
}

/// Write `img` as a PNG named `name` in `dir`.
fn png(dir: &TempDir, name: &str, img: &RgbImage) -> PathBuf {
    let path = dir.path().join(name);
    img.save(&path).expect("test photo written");
    path
}

fn flat(w: u32, h: u32, rgb: [u8; 3]) -> RgbImage {
    ImageBuffer::from_pixel(w, h, Rgb(rgb))
}

/// Run `analyze` on `photo` with `args`, JSON to a file; (exit code, stderr, document if any).
fn run(photo: &Path, args: &[&str]) -> (Option<i32>, String, Option<Value>) {
    let dir = TempDir::new().expect("temp dir");
    let json = dir.path().join("out.json");
    let out = scarscope()
        .arg("analyze")
        .arg(photo)
        .args(args)
        .arg("--out")
        .arg(&json)
        .output()
        .expect("runs");
    let doc = std::fs::read(&json)
        .ok()
        .map(|b| serde_json::from_slice(&b).expect("valid JSON"));
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        doc,
    )
}

/// The photo must be refused: exit 1, no document, one error line naming it and saying `why`.
fn assert_refused(photo: &Path, args: &[&str], why: &str) {
    let (code, stderr, doc) = run(photo, args);
    assert_eq!(code, Some(1), "stderr: {stderr}");
    assert!(doc.is_none(), "no document for a refused photo");
    let name = photo.file_name().unwrap().to_string_lossy();
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line: {stderr}"));
    assert!(line.contains(&*name), "names the photo: {line}");
    assert!(line.contains(why), "says `{why}`: {line}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_1x1_photo_is_refused_as_too_small() {
    let dir = TempDir::new().unwrap();
    let p = png(&dir, "one_pixel.png", &flat(1, 1, [180, 130, 110]));
    assert_refused(&p, &[], "too small to analyse");
}

#[test]
fn a_3x20000_strip_is_refused_as_too_small() {
    let dir = TempDir::new().unwrap();
    let strip = RgbImage::from_fn(3, 20000, |x, y| Rgb([(x * 40) as u8, (y % 200) as u8, 90]));
    let p = png(&dir, "strip_3x20000.png", &strip);
    assert_refused(&p, &[], "3×20000 px, too small");
}

#[test]
fn a_photo_smaller_than_one_scar_is_refused_as_too_small() {
    // 40 × 40 px at 0.05 mm/px is 2 mm across: less than one rolling scar.
    let dir = TempDir::new().unwrap();
    let img = RgbImage::from_fn(40, 40, |x, y| {
        Rgb([150 + (x % 7) as u8, 120 + (y % 5) as u8, 100])
    });
    let p = png(&dir, "two_mm.png", &img);
    assert_refused(&p, &["--mm-per-px", "0.05"], "too small to analyse");
}

#[test]
fn an_all_black_photo_is_refused_as_nothing_measurable() {
    let dir = TempDir::new().unwrap();
    let p = png(&dir, "black.png", &flat(400, 300, [0, 0, 0]));
    assert_refused(
        &p,
        &[],
        "nothing measurable here: every pixel has the same colour",
    );
}

#[test]
fn an_all_white_photo_is_refused_as_nothing_measurable() {
    let dir = TempDir::new().unwrap();
    let p = png(&dir, "white.png", &flat(400, 300, [255, 255, 255]));
    assert_refused(&p, &["--mm-per-px", "0.1"], "nothing measurable here");
}

#[test]
fn a_flat_skin_coloured_photo_is_refused_as_nothing_measurable() {
    let dir = TempDir::new().unwrap();
    let p = png(&dir, "flat.png", &flat(400, 300, [180, 130, 110]));
    assert_refused(&p, &[], "nothing measurable here");
}

#[test]
fn an_overexposed_photo_with_a_few_grey_pixels_is_refused_as_clipped() {
    // Black and white stripes with a 20 × 20 grey patch: 400 informative pixels where an
    // analysis needs 32 × 32.
    let dir = TempDir::new().unwrap();
    let img = RgbImage::from_fn(400, 300, |x, y| {
        if x < 20 && y < 20 {
            Rgb([150, 120, 100])
        } else {
            Rgb([if (x / 3) % 2 == 0 { 255 } else { 0 }; 3])
        }
    });
    let p = png(&dir, "clipped.png", &img);
    assert_refused(
        &p,
        &[],
        "only 400 pixels are neither pure black nor pure white",
    );
}

#[test]
fn a_smooth_featureless_photo_is_analysed_with_a_nothing_measurable_warning() {
    // A vignetting-like brightness ramp: not uniform, but no relief at all.
    let dir = TempDir::new().unwrap();
    let img = RgbImage::from_fn(400, 300, |x, y| {
        let v = (x + y) as f32 / 700.0;
        Rgb([
            (150.0 + 40.0 * v) as u8,
            (110.0 + 30.0 * v) as u8,
            (90.0 + 25.0 * v) as u8,
        ])
    });
    let p = png(&dir, "ramp.png", &img);
    let (code, stderr, doc) = run(&p, &[]);
    assert_eq!(code, Some(0), "stderr: {stderr}");
    let doc = doc.expect("a document");
    assert_eq!(doc["summary"]["count"], 0);
    let warnings: Vec<&str> = doc["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.starts_with("nothing measurable here")),
        "{warnings:?}"
    );
    assert!(
        stderr.contains("ramp.png: warning: nothing measurable here"),
        "{stderr}"
    );
}

#[test]
fn a_decompression_bomb_is_refused_from_its_header_and_the_message_says_how_to_raise_the_limit() {
    let bomb = fixture("hostile/decompression_bomb_12000x12000.png");
    assert!(
        std::fs::metadata(&bomb).unwrap().len() < 64 * 1024,
        "a small file"
    );
    assert_refused(&bomb, &[], "raise it with --max-megapixels");
}

/// A 600 × 500 photo (0.3 MP; 600 × 500 × (3 + 12) bytes = 4.3 MiB to decode) is refused
/// with `flag low`, the message saying `why` and naming the flag, and admitted with `flag high`.
fn limit_refuses_and_the_flag_raises_it(flag: &str, low: &str, high: &str, why: &str) {
    let dir = TempDir::new().unwrap();
    let img = RgbImage::from_fn(600, 500, |x, y| {
        Rgb([(x % 256) as u8, (y % 256) as u8, 100])
    });
    let p = png(&dir, "big.png", &img);
    assert_refused(&p, &[flag, low], why);
    assert_refused(&p, &[flag, low], &format!("raise it with {flag}"));
    let (_, stderr, _) = run(&p, &[flag, high]);
    assert!(!stderr.contains(flag), "{stderr}");
}

#[test]
fn a_photo_over_the_memory_limit_is_refused_and_the_flag_raises_it() {
    limit_refuses_and_the_flag_raises_it(
        "--max-memory-mib",
        "4",
        "5",
        "above the budget of 4.0 MiB",
    );
}

#[test]
fn a_photo_over_the_pixel_limit_is_refused_and_the_flag_raises_it() {
    limit_refuses_and_the_flag_raises_it(
        "--max-megapixels",
        "0.29",
        "0.3",
        "(0.3 MP), above the limit of 0.29 MP",
    );
}

// ---------------------------------------------------------------- privacy

/// (type, data) of each PNG chunk.
fn png_chunks(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    let mut chunks = Vec::new();
    let mut i = 8;
    while i + 12 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap()) as usize;
        let kind = String::from_utf8_lossy(&bytes[i + 4..i + 8]).into_owned();
        chunks.push((kind, bytes[i + 8..i + 8 + len].to_vec()));
        i += 12 + len;
    }
    assert_eq!(i, bytes.len(), "chunks cover the file exactly");
    chunks
}

/// The identifying strings the privacy fixture carries in its EXIF and comment.
const LEAKS: &[&str] = &[
    "LeakyCam",
    "LeakyFirmware",
    "LeakyMakerNote",
    "SN-LEAKY",
    "Patient 07",
    "GPS",
];

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn the_privacy_fixture_really_carries_gps_exif_and_a_camera_identity() {
    // Otherwise the test below would pass for nothing.
    let bytes = std::fs::read(fixture("privacy/gps_exif.jpg")).unwrap();
    let app1 = bytes
        .windows(10)
        .position(|w| w[..2] == [0xFF, 0xE1] && &w[4..10] == b"Exif\0\0")
        .expect("an EXIF APP1 segment");
    let exif = &bytes[app1 + 10..];
    // The GPSInfo IFD pointer, tag 0x8825, in the TIFF header's byte order.
    let tag = match &exif[..2] {
        b"II" => [0x25, 0x88],
        b"MM" => [0x88, 0x25],
        other => panic!("not a TIFF header: {other:?}"),
    };
    assert!(exif.windows(2).any(|w| w == tag), "a GPS IFD");
    for leak in &LEAKS[..5] {
        assert!(contains(&bytes, leak), "fixture carries {leak}");
    }
}

#[test]
fn an_overlay_written_from_a_photo_with_gps_exif_has_no_metadata_at_all() {
    let dir = TempDir::new().unwrap();
    let (json, overlay) = (dir.path().join("r.json"), dir.path().join("o.png"));
    let out = scarscope()
        .arg("analyze")
        .arg(fixture("privacy/gps_exif.jpg"))
        .args(["--mm-per-px", "0.1", "--out"])
        .arg(&json)
        .arg("--overlay")
        .arg(&overlay)
        .output()
        .expect("runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&overlay).expect("overlay written");
    let kinds: Vec<String> = png_chunks(&bytes).into_iter().map(|(k, _)| k).collect();
    // Only image data: no eXIf, tEXt, iTXt, zTXt, tIME, iCCP or private chunks.
    assert!(
        kinds
            .iter()
            .all(|k| ["IHDR", "PLTE", "IDAT", "IEND"].contains(&k.as_str())),
        "{kinds:?}"
    );
    for leak in LEAKS {
        assert!(!contains(&bytes, leak), "overlay carries {leak}");
    }
    // The JSON holds the path, the hash and the parameters, none of the EXIF.
    let report = std::fs::read(&json).unwrap();
    for leak in LEAKS {
        assert!(!contains(&report, leak), "report carries {leak}");
    }
}

// ---------------------------------------------------------------- audit trail

#[test]
fn a_report_records_enough_to_be_reproduced_and_checked() {
    let photo = fixture("privacy/gps_exif.jpg");
    let dir = TempDir::new().unwrap();
    let json = dir.path().join("r.json");
    scarscope()
        .arg("analyze")
        .arg(&photo)
        .args([
            "--mm-per-px",
            "0.1",
            "--light-elevation",
            "35",
            "--ambient",
            "0.2",
            "--out",
        ])
        .arg(&json)
        .assert()
        .success();
    let written = std::fs::read(&json).unwrap();
    let doc: AnalyzeDoc = serde_json::from_slice(&written).expect("reads back");
    assert_eq!(doc.tool.version, env!("CARGO_PKG_VERSION"));
    // The photo is the one recorded...
    let bytes = std::fs::read(&photo).unwrap();
    let hex: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(doc.input.sha256, hex);
    // ...and the recorded parameters alone, given to the library, give the same document.
    assert_eq!(doc.parameters.calibration.mm_per_px, Some(0.1));
    assert_eq!(doc.parameters.light_elevation_deg, Some(35.0));
    assert_eq!(doc.parameters.ambient, 0.2);
    let img = load_path(&photo, &LoadLimits::default()).unwrap();
    let a = analyze(&img.planes, &doc.parameters).expect("analyses");
    let again = to_json_bytes(&analyze_doc(&img.meta, &doc.parameters, &a)).unwrap();
    assert_eq!(
        String::from_utf8(again).unwrap(),
        String::from_utf8(written).unwrap()
    );
}

/// Found by the analyze fuzz target: a tiny WebP in which no depression core forms. The seed
/// threshold was infinite and the report wrote it as null. Every processing figure must be a
/// finite number, whatever the parameters.
#[test]
fn a_photo_without_scar_cores_reports_finite_thresholds() {
    let photo = fixture("fuzz/webp_with_no_scar_cores.webp");
    for args in [
        &[][..],
        &["--mm-per-px", "0.05"][..],
        &[
            "--mm-per-px",
            "0.2",
            "--light-azimuth",
            "135",
            "--light-elevation",
            "30",
        ][..],
        &["--light-azimuth", "-30"][..],
    ] {
        let (code, stderr, doc) = run(&photo, args);
        let Some(doc) = doc else {
            // A typed refusal is fine too; a crash is not.
            assert_eq!(code, Some(1), "{args:?}: {stderr}");
            continue;
        };
        for (k, v) in doc["processing"].as_object().expect("processing object") {
            assert!(!v.is_null(), "{args:?}: processing.{k} is null");
        }
    }
}
