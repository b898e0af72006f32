//! `scarscope compare` driven end to end on two sessions of the demo study (fixtures/study,
//! whose phantom truth lies in fixtures/study/.truth). The document is read back through
//! Deserialize mirrors defined here, not the library's types.

use std::path::Path;

use assert_cmd::Command;
use serde::Deserialize;
use tempfile::TempDir;

fn scarscope() -> Command {
    Command::cargo_bin("scarscope").expect("the scarscope binary is built")
}

#[derive(Debug, Deserialize)]
struct Registration {
    matrix: [[f64; 3]; 2],
    residual_px: f64,
    method: String,
}

#[derive(Debug, Deserialize)]
struct ScarMirror {
    centroid_px: [f64; 2],
    area_mm2: Option<f64>,
    depth_mm: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct Match {
    track_id: u32,
    before: Option<ScarMirror>,
    after: Option<ScarMirror>,
    area_change_mm2: Option<f64>,
    area_change_pct: Option<f64>,
    depth_change_mm: Option<f64>,
    depth_change_pct: Option<f64>,
    change: Option<ChangeMirror>,
    status: String,
}

#[derive(Debug, Deserialize)]
struct ChangeMirror {
    basis: BasisMirror,
}

#[derive(Debug, Deserialize)]
struct BasisMirror {
    method: String,
    area_before_mm2: Option<f64>,
    area_after_mm2: Option<f64>,
    depth_before_mm: Option<f64>,
    depth_after_mm: Option<f64>,
    shape_fit: Option<FitMirror>,
}

#[derive(Debug, Deserialize)]
struct FitMirror {
    width_ratio: f64,
    depth_ratio: f64,
    r2: f64,
}

#[derive(Debug, Deserialize)]
struct Counts {
    improved: usize,
    worsened: usize,
    stable: usize,
    resolved: usize,
    new: usize,
    out_of_view: usize,
}

#[derive(Debug, Deserialize)]
struct Summary {
    counts_by_status: Counts,
    total_area_change_mm2: Option<f64>,
    total_volume_change_mm3: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct Doc {
    schema_version: String,
    registration: Registration,
    matches: Vec<Match>,
    summary: Summary,
    warnings: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Truth {
    to_baseline: [[f64; 3]; 2],
    width: usize,
    height: usize,
}

fn apply(m: &[[f64; 3]; 2], p: [f64; 2]) -> [f64; 2] {
    [
        m[0][0] * p[0] + m[0][1] * p[1] + m[0][2],
        m[1][0] * p[0] + m[1][1] * p[1] + m[1][2],
    ]
}

#[test]
fn compare_of_two_demo_sessions_registers_within_a_pixel_and_writes_json_and_overlay() {
    let dir = TempDir::new().expect("temp dir");
    let (out, png) = (dir.path().join("c.json"), dir.path().join("c.png"));
    let study = Path::new("fixtures/study/S01");
    scarscope()
        .arg("compare")
        .arg(study.join("s1/left_cheek.jpg"))
        .arg(study.join("s2/left_cheek.jpg"))
        .args(["--mm-per-px", "0.05", "--out"])
        .arg(&out)
        .arg("--overlay")
        .arg(&png)
        .assert()
        .success();
    let doc: Doc = serde_json::from_slice(&std::fs::read(&out).expect("json written"))
        .expect("compare document parses");
    assert_eq!(doc.schema_version, "1.0.0");
    let truth: Truth = serde_json::from_slice(
        &std::fs::read("fixtures/study/.truth/S01/s2/left_cheek.json").expect("truth"),
    )
    .expect("truth parses");
    // Registration error against the phantom's true transform over a grid of the after photo.
    let mut worst: f64 = 0.0;
    for j in 0..5 {
        for i in 0..5 {
            let p = [
                (i as f64 + 0.5) / 5.0 * truth.width as f64,
                (j as f64 + 0.5) / 5.0 * truth.height as f64,
            ];
            let (a, b) = (
                apply(&truth.to_baseline, p),
                apply(&doc.registration.matrix, p),
            );
            worst = worst.max((a[0] - b[0]).hypot(a[1] - b[1]));
        }
    }
    assert!(worst < 2.0, "registration error up to {worst:.2} px");
    assert!(doc.registration.residual_px < 1.0 && !doc.registration.method.is_empty());
    // Tracks: ids unique, each with at least one side, statuses from the contract's set, and
    // changes present exactly when both sides are.
    assert!(!doc.matches.is_empty());
    let mut ids: Vec<u32> = doc.matches.iter().map(|m| m.track_id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), doc.matches.len());
    let mut pair_dist = Vec::new();
    let mut fitted = 0usize;
    for m in &doc.matches {
        assert!(m.before.is_some() || m.after.is_some());
        let both = m.before.is_some() && m.after.is_some();
        assert_eq!(m.area_change_mm2.is_some(), both, "track {}", m.track_id);
        assert_eq!(m.depth_change_mm.is_some(), both, "track {}", m.track_id);
        let expected: &[&str] = match (&m.before, &m.after) {
            (Some(_), Some(_)) => &["improved", "worsened", "stable"],
            (Some(_), None) => &["resolved", "out_of_view"],
            _ => &["new", "out_of_view"],
        };
        assert!(expected.contains(&m.status.as_str()), "{m:?}");
        if let (Some(b), Some(a), Some(d)) = (&m.before, &m.after, m.depth_change_mm) {
            // The after scar is reported in before-image pixels: its centroid lies within the
            // scar's own size of the before one (two outlines of one scar may differ, e.g.
            // where one floods a trough, but not by more than the larger of them is wide).
            let dist =
                (a.centroid_px[0] - b.centroid_px[0]).hypot(a.centroid_px[1] - b.centroid_px[1]);
            let area_px = b.area_mm2.unwrap().max(a.area_mm2.unwrap()) / (0.05 * 0.05);
            let diameter_px = 2.0 * (area_px / std::f64::consts::PI).sqrt();
            assert!(
                dist < diameter_px.max(20.0),
                "track {} centroids {dist:.1} px apart, diameter {diameter_px:.1} px",
                m.track_id
            );
            pair_dist.push(dist);
            // Changes are differences of the paired figures (both photos measured over the
            // same support), not of the single-photo fields.
            let basis = &m.change.as_ref().expect("change").basis;
            assert_eq!(basis.method, "paired", "track {}", m.track_id);
            let dd = basis.depth_after_mm.unwrap() - basis.depth_before_mm.unwrap();
            assert!((d - dd).abs() < 1e-9);
            let da = basis.area_after_mm2.unwrap() - basis.area_before_mm2.unwrap();
            assert!((m.area_change_mm2.unwrap() - da).abs() < 1e-9);
            // The paired figures measure the same scars: the same order of size as the
            // single-photo ones.
            let ratio = basis.depth_before_mm.unwrap() / b.depth_mm.unwrap();
            assert!((0.5..2.0).contains(&ratio), "track {}: {ratio}", m.track_id);
            // Where the shape fit was used it explains most of the later relief, within the
            // ratios it searches.
            if let Some(f) = &basis.shape_fit {
                fitted += 1;
                assert!((0.6..=1.6).contains(&f.width_ratio), "{f:?}");
                assert!(f.depth_ratio > 0.0 && (0.5..=1.0).contains(&f.r2), "{f:?}");
            }
            assert!(m.depth_change_pct.is_some() && m.area_change_pct.is_some());
            assert!(a.area_mm2.is_some());
        }
    }
    // In the before frame the pairs coincide: the median pair lies well within the 50 px the
    // after photo was moved by (reported in the after frame, it would lie ~50 px off).
    pair_dist.sort_by(f64::total_cmp);
    assert!(pair_dist.len() >= 5, "{} pairs", pair_dist.len());
    assert!(fitted >= 1, "no paired change used the shape fit");
    let median = pair_dist[pair_dist.len() / 2];
    assert!(median < 12.0, "median pair {median:.1} px apart");
    let c = &doc.summary.counts_by_status;
    assert_eq!(
        c.improved + c.worsened + c.stable + c.resolved + c.new + c.out_of_view,
        doc.matches.len()
    );
    assert!(doc.summary.total_area_change_mm2.is_some());
    assert!(doc.summary.total_volume_change_mm3.is_some());
    let _ = &doc.warnings;
    // Overlay: before and after side by side.
    let img = image::open(&png).expect("overlay is a PNG");
    assert_eq!((img.width(), img.height()), (2 * 1000 + 8, 750));
}

#[test]
fn comparing_photos_of_different_subjects_is_refused_with_exit_code_1() {
    let out = scarscope()
        .arg("compare")
        .arg("fixtures/study/S01/s1/left_cheek.jpg")
        .arg("fixtures/study/S02/s2/left_cheek.jpg")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("do not show the same skin"), "{err}");
    assert!(out.stdout.is_empty(), "no document for a refused pair");
}

#[test]
fn photos_taken_from_another_distance_register_when_both_pixel_sizes_are_given() {
    // The second session shrunk to 0.8 of its size, as if photographed from 1.25 × farther:
    // with both pixel sizes given, registration compares the photos at one physical scale.
    let dir = TempDir::new().expect("temp dir");
    let img = image::open("fixtures/study/S01/s2/left_cheek.jpg").expect("fixture decodes");
    let (w, h) = (img.width() * 4 / 5, img.height() * 4 / 5);
    let small = dir.path().join("far.png");
    img.resize_exact(w, h, image::imageops::FilterType::Lanczos3)
        .save(&small)
        .expect("written");
    // The session's own pixel size (fixtures/study/study.toml) at 0.8 of the pixels.
    let after_mm = 0.049039 * f64::from(img.width()) / f64::from(w);
    let json = dir.path().join("c.json");
    let out = scarscope()
        .arg("compare")
        .arg("fixtures/study/S01/s1/left_cheek.jpg")
        .arg(&small)
        .args(["--mm-per-px", "0.05", "--after-mm-per-px"])
        .arg(after_mm.to_string())
        .arg("--out")
        .arg(&json)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("written")).expect("JSON");
    let reg = &doc["registration"];
    let m = reg["matrix"].as_array().expect("matrix");
    let (a, b) = (m[0][0].as_f64().unwrap(), m[1][0].as_f64().unwrap());
    let scale = a.hypot(b);
    // One after pixel spans after_mm / 0.05 before pixels.
    let want = after_mm / 0.05;
    assert!(
        (scale / want - 1.0).abs() < 0.005,
        "scale {scale}, want {want}"
    );
    assert!(reg["residual_px"].as_f64().unwrap() < 1.0, "{reg}");
}

#[test]
fn compare_is_deterministic() {
    let run = || {
        scarscope()
            .arg("compare")
            .arg("fixtures/study/S02/s1/left_cheek.jpg")
            .arg("fixtures/study/S02/s3/left_cheek.jpg")
            .args(["--mm-per-px", "0.05"])
            .output()
            .expect("runs")
    };
    let (a, b) = (run(), run());
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    assert_eq!(a.stdout, b.stdout);
}

#[test]
fn compare_timings_name_every_stage_on_stderr_and_leave_the_document_unchanged() {
    let dir = TempDir::new().expect("temp dir");
    let study = Path::new("fixtures/study/S01");
    let run = |out: &Path, timings: bool| {
        let mut c = scarscope();
        c.arg("compare")
            .arg(study.join("s1/left_cheek.jpg"))
            .arg(study.join("s2/left_cheek.jpg"))
            .arg("--out")
            .arg(out);
        if timings {
            c.arg("--timings");
        }
        let o = c.output().expect("runs");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let (plain, timed) = (dir.path().join("a.json"), dir.path().join("b.json"));
    assert!(!run(&plain, false).contains("stages_s"));
    let err = run(&timed, true);
    let line = err
        .lines()
        .find(|l| l.starts_with('{'))
        .expect("a JSON line of timings");
    let v: serde_json::Value = serde_json::from_str(line).expect("timings parse");
    for stage in [
        "decode",
        "reduce",
        "register",
        "normalise",
        "segment",
        "relief gain",
        "track",
        "report",
        "write",
    ] {
        let t = v["stages_s"][stage].as_f64();
        assert!(t.is_some_and(|t| t >= 0.0), "stage {stage} in {line}");
    }
    assert_eq!(
        std::fs::read(&plain).expect("plain"),
        std::fs::read(&timed).expect("timed")
    );
}
