//! One change method: `scarscope batch` measures each tracked scar's change over the common
//! support of the two sessions, as `scarscope compare` does, so the same pair of photos gives
//! the same per-scar changes in a subject document and in a compare document. Also: the lock
//! file a run takes is gone when the run ends. Real binary, two sessions of the demo study
//! (fixtures/study/S01).

use std::path::Path;

use assert_cmd::Command;
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
    let subject = json(&out.join("subjects/A.json"));
    let compare = json(&cmp);
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
