//! One change method: `scarscope batch` measures each tracked scar's change over the common
//! support of the two sessions, as `scarscope compare` does, so the same pair of photos gives
//! the same per-scar changes in a subject document and in a compare document. Also: the lock
//! file a run takes is gone when the run ends. Real binary, two sessions of the demo study
//! (fixtures/study/S01); and a three-session phantom subject whose tracks and per-session
//! changes from `batch` (which tracks each session as it comes, keeping only the baseline's
//! maps) equal those of the whole series tracked at once with every session's maps, as
//! `compare` tracks its pair.

use std::path::Path;

use assert_cmd::Command;
use scarscope::analyze::analyze_keeping_relief;
use scarscope::change::SessionMaps;
use scarscope::compare::session_input;
use scarscope::load::{decode_path, LoadLimits, PlaneSource};
use scarscope::phantom::{Subject, SubjectConfig};
use scarscope::register::{register_scaled, RegisterParams, Registration, RegistrationPlane};
use scarscope::study::{Settings, Study};
use scarscope::track::{set_relief_gains, track_series_with_maps, TrackParams};
use serde_json::Value;
use tempfile::TempDir;

fn scarscope() -> Command {
    Command::cargo_bin("scarscope").expect("the scarscope binary is built")
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).expect("document written")).expect("JSON")
}

#[test]
fn batch_changes_of_a_two_session_subject_equal_those_of_compare_on_the_same_pair() {
    let dir = TempDir::new().expect("temp dir");
    let demo = Path::new("fixtures/study/S01");
    let study = dir.path().join("study");
    for s in ["s1", "s2"] {
        std::fs::create_dir_all(study.join("A").join(s)).expect("mkdir");
        std::fs::copy(
            demo.join(s).join("left_cheek.jpg"),
            study.join("A").join(s).join("left_cheek.jpg"),
        )
        .expect("copy");
    }
    // The same settings for both photos in both commands.
    let out = dir.path().join("out");
    scarscope()
        .arg("batch")
        .arg(&study)
        .arg("--out")
        .arg(&out)
        .args(["--quiet", "--jobs", "2", "--mm-per-px", "0.05"])
        .assert()
        .success();
    assert!(
        !out.join(".scarscope.lock").exists(),
        "the lock file is removed when the run ends"
    );
    let cmp = dir.path().join("c.json");
    scarscope()
        .arg("compare")
        .arg(demo.join("s1/left_cheek.jpg"))
        .arg(demo.join("s2/left_cheek.jpg"))
        .args(["--mm-per-px", "0.05", "--after-mm-per-px", "0.05", "--out"])
        .arg(&cmp)
        .assert()
        .success();
    assert_batch_pair_equals_compare(&json(&out.join("subjects/A.json")), &json(&cmp));
}

/// The second session of subject A in a batch document has the registration, tracks, changes
/// and statuses of the compare document of the same pair, and most changes are paired.
fn assert_batch_pair_equals_compare(subject: &Value, compare: &Value) {
    let view = &subject["views"][0];
    assert_eq!(view["tracking"]["status"], "tracked");
    assert_eq!(
        view["sessions"][1]["registration"]["matrix"], compare["registration"]["matrix"],
        "the same registration"
    );
    let tracks = view["tracks"].as_array().expect("tracks");
    let matches = compare["matches"].as_array().expect("matches");
    assert_eq!(tracks.len(), matches.len(), "the same tracks");
    let mut paired = 0;
    for (t, m) in tracks.iter().zip(matches) {
        assert_eq!(t["track_id"], m["track_id"]);
        let (b, c) = (&t["changes"][1], &m["change"]);
        assert_eq!(b, c, "change of track {}", m["track_id"]);
        if !c.is_null() {
            assert_eq!(t["status"][1], m["status"], "track {}", m["track_id"]);
            paired += usize::from(c["basis"]["method"] == "paired");
        }
    }
    assert!(
        paired >= 5,
        "most changes measured paired: {paired} of {}",
        matches.len()
    );
}

/// A session photographed from farther away (its photo at 0.8 of the pixels, the manifest
/// giving each session's own pixel size) registers in `batch` at the given scale ratio, as in
/// `compare` with both pixel sizes given, and gives the same registration, tracks and changes.
#[test]
fn batch_registers_a_session_shot_from_farther_at_the_manifests_pixel_sizes() {
    let dir = TempDir::new().expect("temp dir");
    let demo = Path::new("fixtures/study/S01");
    let study = dir.path().join("study");
    for s in ["s1", "s2"] {
        std::fs::create_dir_all(study.join("A").join(s)).expect("mkdir");
    }
    let near = study.join("A/s1/left_cheek.jpg");
    std::fs::copy(demo.join("s1/left_cheek.jpg"), &near).expect("copy");
    let img = image::open(demo.join("s2/left_cheek.jpg")).expect("fixture decodes");
    let (w, h) = (img.width() * 4 / 5, img.height() * 4 / 5);
    let far = study.join("A/s2/left_cheek.png");
    img.resize_exact(w, h, image::imageops::FilterType::Lanczos3)
        .save(&far)
        .expect("written");
    // The session's own pixel size (fixtures/study/study.toml) at 0.8 of the pixels.
    let far_mm = 0.049039 * f64::from(img.width()) / f64::from(w);
    std::fs::write(
        study.join("study.toml"),
        format!(
            "schema_version = 1\n\n[subjects.A.sessions.s1]\nmm_per_px = 0.05\n\n\
             [subjects.A.sessions.s2]\nmm_per_px = {far_mm}\n"
        ),
    )
    .expect("manifest");
    let out = dir.path().join("out");
    let run = scarscope()
        .arg("batch")
        .arg(&study)
        .arg("--out")
        .arg(&out)
        .args(["--quiet", "--jobs", "1"])
        .output()
        .expect("runs");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let subject = json(&out.join("subjects/A.json"));
    let reg = &subject["views"][0]["sessions"][1]["registration"];
    let m = reg["matrix"].as_array().expect("registered");
    let scale = m[0][0].as_f64().unwrap().hypot(m[1][0].as_f64().unwrap());
    assert!(
        (scale / (far_mm / 0.05) - 1.0).abs() < 0.005,
        "scale {scale}, want {}",
        far_mm / 0.05
    );
    let cmp = dir.path().join("c.json");
    scarscope()
        .arg("compare")
        .arg(&near)
        .arg(&far)
        .args(["--mm-per-px", "0.05", "--after-mm-per-px"])
        .arg(far_mm.to_string())
        .arg("--out")
        .arg(&cmp)
        .assert()
        .success();
    assert_batch_pair_equals_compare(&subject, &json(&cmp));
}

/// Batch tracks session k from sessions 0..=k only and measures each session's pairs while it
/// holds that session's maps; tracking the whole series at once with all maps (the library
/// calls `compare` makes, for three sessions) must give the same tracks, statuses, changes
/// and summaries.
#[test]
fn batch_tracks_of_a_three_session_subject_equal_the_whole_series_tracked_at_once() {
    let dir = TempDir::new().expect("temp dir");
    let study_dir = dir.path().join("study");
    // A subject whose scars persist (no treatment) while camera, light and exposure change:
    // every scar is tracked into the third session.
    let cfg = SubjectConfig {
        width: 800,
        height: 600,
        n_scars: 10,
        sessions: 3,
        treat: false,
        ..SubjectConfig::default()
    };
    let subject = Subject::generate("A", 9, &cfg);
    let mut manifest = String::from("schema_version = 1\n");
    for (k, s) in subject.sessions.iter().enumerate() {
        let photo = study_dir.join("A").join(&s.name).join("left_cheek.jpg");
        std::fs::create_dir_all(photo.parent().expect("folder")).expect("mkdir");
        std::fs::write(&photo, subject.render_jpeg(k)).expect("photo written");
        manifest.push_str(&format!(
            "[subjects.A.sessions.{}]\nmm_per_px = {:.6}\n",
            s.name,
            subject.session_mm_per_px(k)
        ));
    }
    std::fs::write(study_dir.join("study.toml"), manifest).expect("manifest written");
    let out = dir.path().join("out");
    scarscope()
        .arg("batch")
        .arg(&study_dir)
        .arg("--out")
        .arg(&out)
        .args(["--quiet", "--jobs", "2"])
        .assert()
        .success();
    let subject = json(&out.join("subjects/A.json"));
    let view = &subject["views"][0];
    assert_eq!(view["tracking"]["status"], "tracked");

    // The reference: every session decoded, analysed and registered onto the baseline with
    // the settings batch uses, then tracked in one call with all three sessions' maps.
    let study = Study::plan(&study_dir).expect("study planned");
    let plan = &study.subjects[0];
    assert_eq!(plan.sessions.len(), 3);
    let rp = RegisterParams::default();
    let mut analyses = Vec::new();
    let mut registrations = Vec::new();
    let mut sizes = Vec::new();
    let mut baseline_plane = None;
    let mut baseline_mm = None;
    for s in &plan.sessions {
        let img = decode_path(
            &study.root.join(&s.photos[0].rel_path),
            &LoadLimits::default(),
        )
        .expect("photo decoded");
        let params = Settings::analyze_params(&s.settings, &Settings::default());
        analyses.push(analyze_keeping_relief(&img.photo, &params).expect("analysed"));
        let plane = RegistrationPlane::from_planes(&img.photo, &rp).expect("plane");
        // Both pixel sizes given: registration at their ratio, as batch and compare do.
        let mm = params.calibration.mm_per_px.expect("the manifest gives it");
        registrations.push(match &baseline_plane {
            None => Registration::identity(),
            Some(base) => register_scaled(base, &plane, &rp, mm / *baseline_mm.get_or_insert(mm))
                .expect("registered"),
        });
        baseline_mm.get_or_insert(mm);
        baseline_plane.get_or_insert(plane);
        sizes.push((img.photo.width(), img.photo.height()));
    }
    let mut inputs: Vec<_> = analyses
        .iter()
        .zip(&registrations)
        .zip(&sizes)
        .map(|(((a, _), reg), &(w, h))| session_input(a, reg, w, h))
        .collect();
    let maps: Vec<_> = analyses
        .iter()
        .map(|(a, r)| Some(SessionMaps::new(a, r)))
        .collect();
    set_relief_gains(&mut inputs, &maps);
    let series = track_series_with_maps(&inputs, &maps, &TrackParams::default());

    let tracks = serde_json::to_value(&series.tracks).expect("tracks serialise");
    let summaries = serde_json::to_value(&series.summaries).expect("summaries serialise");
    for k in 1..3 {
        assert_eq!(
            view["sessions"][k]["registration"]["matrix"],
            serde_json::to_value(&registrations[k]).expect("registration")["matrix"],
            "registration of session {k}"
        );
    }
    assert_eq!(view["tracks"], tracks, "tracks, statuses and changes");
    assert_eq!(view["summaries"], summaries, "per-session summaries");
    // Both later sessions' relief scales were measured and applied, in batch as here.
    for (k, sm) in series.summaries.iter().enumerate() {
        let g = sm.relief_gain.expect("relief scale measured");
        assert!(g.applied, "session {}: {g:?}", k + 1);
        assert_eq!(
            view["sessions"][k + 1]["relief_gain"],
            serde_json::to_value(g).expect("gain")
        );
    }
    // The test can fail only if the series exercises what batch does incrementally: scars
    // followed into the third session with changes measured paired there.
    let paired_in_third = series
        .tracks
        .iter()
        .filter_map(|t| t.changes[2].as_ref())
        .filter(|c| c.basis.method == "paired")
        .count();
    assert!(
        paired_in_third >= 3,
        "changes of session 3 measured paired: {paired_in_third}"
    );
}
