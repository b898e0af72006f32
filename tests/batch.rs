//! `scarscope batch`, `merge` and `schema` driven end to end on a generated phantom study of
//! 7 subjects × 3 sessions × 2 views (400×300 px) seasoned with what real study folders hold:
//! a corrupt photo, an empty session, stray and hidden files, a link loop, a link out of the
//! study, and subject names with odd, non-ASCII and non-UTF-8 characters.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

use assert_cmd::Command;
use serde_json::Value;
use tempfile::TempDir;

mod common;
use common::{assert_same_tree, tree};

fn scarscope() -> Command {
    Command::cargo_bin("scarscope").expect("the scarscope binary is built")
}

fn synth(dir: &Path, subjects: &str, seed: &str) {
    scarscope()
        .arg("synth")
        .arg(dir)
        .args(["--subjects", subjects, "--sessions", "3", "--width", "400"])
        .args(["--height", "300", "--px-per-mm", "20", "--scars", "6"])
        .args(["--seed", seed])
        .assert()
        .success();
}

/// Name of the subject folder that is not UTF-8.
#[cfg(unix)]
fn non_utf8_name() -> std::ffi::OsString {
    use std::os::unix::ffi::OsStringExt;
    std::ffi::OsString::from_vec(b"S07-\xff\xfe".to_vec())
}

/// The hostile study, generated once per test binary (tests only read it).
fn study() -> &'static Path {
    static STUDY: OnceLock<(TempDir, PathBuf)> = OnceLock::new();
    &STUDY
        .get_or_init(|| {
            let dir = TempDir::new().expect("temp dir");
            let root = dir.path().join("study");
            let right = dir.path().join("right");
            synth(&root, "5", "21");
            synth(&right, "5", "22");
            // The second view of every subject comes from the other phantom set.
            for s in 1..=5 {
                for k in 1..=3 {
                    let from = right.join(format!("S{s:02}/s{k}/left_cheek.jpg"));
                    let to = root.join(format!("S{s:02}/s{k}/right_cheek.jpg"));
                    std::fs::copy(from, to).expect("copy view");
                }
            }
            let manifest = std::fs::read_to_string(root.join("study.toml")).expect("manifest");
            // No view list: every view found is analysed.
            let manifest = manifest.replace("views = [\"left_cheek\"]", "");
            std::fs::write(root.join("study.toml"), manifest).expect("manifest");
            // A corrupt photo: the first 600 bytes of a JPEG.
            let bad = root.join("S03/s2/left_cheek.jpg");
            let bytes = std::fs::read(&bad).expect("photo");
            std::fs::write(&bad, &bytes[..600]).expect("truncate");
            // An empty session, stray files, a hidden file.
            std::fs::create_dir_all(root.join("S04/s4")).expect("empty session");
            std::fs::write(root.join("README.txt"), "notes").expect("stray");
            std::fs::write(root.join("S02/notes.txt"), "notes").expect("stray");
            std::fs::write(root.join("S02/s1/Thumbs.db"), "x").expect("stray");
            std::fs::write(root.join("S01/s2/.DS_Store"), "x").expect("hidden");
            #[cfg(unix)]
            {
                use std::os::unix::fs::symlink;
                // A loop (the subject inside itself), a self-referencing link, a link out.
                symlink(root.join("S05"), root.join("S05/loop")).expect("link");
                symlink("self.jpg", root.join("S05/s1/self.jpg")).expect("link");
                std::fs::write(dir.path().join("outside.jpg"), &bytes).expect("outside");
                symlink(
                    dir.path().join("outside.jpg"),
                    root.join("S01/s1/outside.jpg"),
                )
                .expect("link");
                // Odd names: separators, quotes, non-ASCII, non-UTF-8.
                for name in [std::ffi::OsString::from("Zoë, \"quoted\""), non_utf8_name()] {
                    let photo = root.join("S01/s1/left_cheek.jpg");
                    let ses = root.join(&name).join("s1");
                    std::fs::create_dir_all(&ses).expect("odd subject");
                    std::fs::copy(&photo, ses.join("left_cheek.jpg")).expect("copy");
                    std::fs::copy(&photo, ses.join("..evil.jpg")).expect("copy");
                    std::fs::copy(&photo, ses.join("-x y.jpeg")).expect("copy");
                    std::fs::copy(&photo, ses.join("a:b.JPG")).expect("copy");
                }
            }
            (dir, root)
        })
        .1
}

fn batch(out: &Path, extra: &[&str]) -> Output {
    scarscope()
        .arg("batch")
        .arg(study())
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .expect("runs")
}

/// One uninterrupted run with `--jobs 1`, shared by the comparisons.
fn reference() -> &'static Path {
    static REF: OnceLock<PathBuf> = OnceLock::new();
    REF.get_or_init(|| {
        let dir = TempDir::new().expect("temp").keep();
        let out = dir.join("out");
        let o = batch(&out, &["--jobs", "1", "--quiet"]);
        assert_eq!(
            o.status.code(),
            Some(1),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        out
    })
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).expect("readable")).expect("JSON")
}

fn schema(doc: &str) -> jsonschema::Validator {
    let o = scarscope().args(["schema", doc]).output().expect("runs");
    assert!(o.status.success());
    let v: Value = serde_json::from_slice(&o.stdout).expect("schema is JSON");
    jsonschema::validator_for(&v).expect("a valid schema")
}

fn assert_valid(v: &jsonschema::Validator, doc: &Value, what: &str) {
    let errors: Vec<String> = v.iter_errors(doc).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{what}: {errors:?}");
}

#[test]
fn hostile_study_lists_exactly_the_corrupt_photo_and_reports_every_other_subject() {
    let out = reference();
    let study_doc = json(&out.join("study.json"));
    let failures = study_doc["failures"].as_array().expect("failures[]");
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0]["path"], "S03/s2/left_cheek.jpg");
    assert_eq!(failures[0]["stage"], "load");
    assert!(!failures[0]["error"].as_str().unwrap_or("").is_empty());
    // 5 phantom subjects + 2 odd names; the loop folder inside S05 is not a subject.
    let subjects = study_doc["subjects"].as_array().expect("subjects");
    let ids: Vec<&str> = subjects
        .iter()
        .filter_map(|s| s["subject"].as_str())
        .collect();
    assert_eq!(ids.len(), 7, "{ids:?}");
    assert_eq!(&ids[..5], ["S01", "S02", "S03", "S04", "S05"]);
    assert_eq!(study_doc["totals"]["analysed"], 5 * 3 * 2 - 1 + 2 * 3);
    let warnings = study_doc["warnings"].to_string();
    assert!(
        warnings.contains("README.txt") && warnings.contains(".truth"),
        "{warnings}"
    );
    // Per-subject warnings name each oddity.
    let sub = |id: &str| {
        let s = subjects
            .iter()
            .find(|s| s["subject"] == id)
            .expect("listed");
        json(&out.join(s["document"].as_str().expect("path")))
    };
    let w = |id: &str| sub(id)["warnings"].to_string();
    assert!(
        w("S04").contains("S04/s4") && w("S04").contains("empty session"),
        "{}",
        w("S04")
    );
    assert!(w("S02").contains("notes.txt") && w("S02").contains("Thumbs.db"));
    assert!(w("S01").contains("out of the study") && w("S01").contains(".DS_Store"));
    assert!(w("S05").contains("self.jpg"), "{}", w("S05"));
    // The corrupt photo's subject still has every other photo analysed, in session order.
    let s3 = sub("S03");
    let left = &s3["views"][0];
    assert_eq!(left["view"], "left_cheek");
    let statuses: Vec<&str> = left["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .filter_map(|s| s["status"].as_str())
        .collect();
    assert_eq!(statuses, ["analysed", "failed", "analysed"]);
    assert_eq!(s3["views"][1]["view"], "right_cheek");
    // Tracked over the sessions that could be: partial where a photo failed.
    assert_eq!(left["tracking"]["status"], "partial");
    assert_eq!(
        left["tracking"]["sessions"],
        serde_json::json!(["s1", "s3"])
    );
    assert!(left["tracking"]["note"]
        .as_str()
        .unwrap_or("")
        .contains("s2 (photo failed)"));
    let right = &s3["views"][1];
    assert_eq!(right["tracking"]["status"], "tracked");
    assert_eq!(right["tracking"]["baseline"], "s1");
    let tracks = right["tracks"].as_array().expect("tracks");
    assert!(!tracks.is_empty());
    for t in tracks {
        assert_eq!(t["observations"].as_array().map(Vec::len), Some(3));
    }
    let reg = &right["sessions"][2]["registration"];
    assert!(
        reg["residual_px"].as_f64().is_some_and(|r| r < 2.0),
        "{reg}"
    );
    // Paths are relative to the study root.
    let path = &left["sessions"][0]["analysis"]["input"]["path"];
    assert_eq!(path, "S03/s1/left_cheek.jpg");
}

#[test]
fn every_written_document_validates_against_its_schema() {
    let out = reference();
    let (study_s, subject_s, analyze_s) = (schema("study"), schema("subject"), schema("analyze"));
    let study_doc = json(&out.join("study.json"));
    assert_valid(&study_s, &study_doc, "study.json");
    let mut n = 0;
    for e in std::fs::read_dir(out.join("subjects")).expect("subjects/") {
        let doc = json(&e.expect("entry").path());
        assert_valid(&subject_s, &doc, "subject");
        for v in doc["views"].as_array().expect("views") {
            for s in v["sessions"].as_array().expect("sessions") {
                if !s["analysis"].is_null() {
                    assert_valid(&analyze_s, &s["analysis"], "analysis");
                    n += 1;
                }
            }
        }
    }
    assert_eq!(n, 35);
    // A broken document is caught: the check can fail.
    let mut broken = study_doc.clone();
    broken["totals"]["photos"] = Value::from("many");
    assert!(!study_s.is_valid(&broken));
}

#[test]
fn outputs_stay_inside_out_whatever_the_names() {
    let out = reference();
    let parent = out.parent().expect("parent");
    let names: Vec<_> = std::fs::read_dir(parent)
        .expect("readable")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(
        names,
        [std::ffi::OsString::from("out")],
        "nothing written beside --out"
    );
    for (rel, _) in tree(out) {
        let s = rel.to_string_lossy();
        assert!(!s.contains(".."), "{s}");
        assert!(
            rel.components()
                .all(|c| !c.as_os_str().to_string_lossy().starts_with('.')),
            "no hidden output {s}"
        );
    }
    let csv = String::from_utf8(std::fs::read(out.join("scars.csv")).expect("csv")).expect("utf-8");
    assert!(csv.contains("\"Zoë, \"\"quoted\"\"\""), "quoted in the CSV");
    let header = csv.lines().next().expect("header");
    assert!(header.contains("area_mm2") && header.contains("depth_mm"));
    let cols = header.split(',').count();
    let track_col = header
        .split(',')
        .position(|c| c == "track_id")
        .expect("track_id column");
    let tracked_rows = csv
        .lines()
        .skip(1)
        .filter(|l| l.starts_with("S0"))
        .filter(|l| l.split(',').nth(track_col).is_some_and(|v| !v.is_empty()))
        .count();
    assert!(tracked_rows > 10, "rows carry their track id");
    assert!(csv.lines().count() > 10);
    // The odd views still were analysed: their outputs have safe names.
    let study_doc = json(&out.join("study.json"));
    let zoe = study_doc["subjects"]
        .as_array()
        .expect("subjects")
        .iter()
        .find(|s| s["subject"] == "Zoë, \"quoted\"")
        .expect("Zoë listed")
        .clone();
    assert_eq!(zoe["views"].as_array().map(Vec::len), Some(3));
    assert!(cols >= 20);
}

/// Also: `--timings` prints the run's stages as one JSON line and changes no output.
#[test]
fn jobs_1_and_2_write_byte_identical_outputs() {
    let dir = TempDir::new().expect("temp");
    let out = dir.path().join("out");
    let o = batch(&out, &["--jobs", "2", "--timings"]);
    assert_eq!(o.status.code(), Some(1));
    assert_same_tree(reference(), &out);
    let stderr = String::from_utf8_lossy(&o.stderr);
    let line = stderr
        .lines()
        .rfind(|l| l.starts_with('{'))
        .expect("a timings line on stderr");
    let v: Value = serde_json::from_str(line).expect("the timings line is JSON");
    let stages = v["stages_s"].as_object().expect("stages_s");
    for stage in [
        "fingerprint",
        "decode",
        "wait",
        "segment",
        "overlay",
        "register",
        "relief gain",
        "track",
        "html",
        "csv",
        "study",
    ] {
        let t = stages.get(stage).and_then(Value::as_f64);
        assert!(t.is_some_and(|t| t >= 0.0), "stage {stage}: {t:?}");
    }
    assert!(v["total_s"].as_f64().is_some_and(|t| t > 0.0));
}

#[test]
fn three_shards_merged_equal_one_run() {
    let dir = TempDir::new().expect("temp");
    let mut shards = Vec::new();
    for i in 1..=3 {
        let out = dir.path().join(format!("shard{i}"));
        let o = batch(
            &out,
            &["--jobs", "1", "--quiet", "--shard", &format!("{i}/3")],
        );
        assert!(matches!(o.status.code(), Some(0 | 1)), "{o:?}");
        shards.push(out);
    }
    // Missing shard: refused.
    let o = scarscope()
        .arg("merge")
        .args(&shards[..2])
        .arg("--out")
        .arg(dir.path().join("partial"))
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("missing shard(s): 3/3"));
    let merged = dir.path().join("merged");
    let o = scarscope()
        .arg("merge")
        .args(&shards)
        .arg("--out")
        .arg(&merged)
        .output()
        .expect("runs");
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_same_tree(reference(), &merged);
}

#[test]
fn resume_after_runs_stopped_at_1_half_and_all_but_one_subjects_matches_an_uninterrupted_run() {
    for stop in ["1", "4", "6"] {
        let dir = TempDir::new().expect("temp");
        let out = dir.path().join("out");
        let o = batch(&out, &["--jobs", "1", "--quiet", "--stop-after", stop]);
        assert_eq!(o.status.code(), Some(86), "stopped as if killed");
        assert!(!out.join("study.json").exists(), "the run did not finish");
        let o = batch(&out, &["--jobs", "2", "--resume"]);
        assert_eq!(o.status.code(), Some(1));
        let log = String::from_utf8_lossy(&o.stderr);
        let skipped = log.matches("complete from an earlier run").count();
        assert_eq!(skipped.to_string(), stop, "{log}");
        assert_same_tree(reference(), &out);
    }
}

#[cfg(unix)]
#[test]
fn resume_after_a_sigkill_mid_run_matches_an_uninterrupted_run() {
    let dir = TempDir::new().expect("temp");
    let out = dir.path().join("out");
    let bin = assert_cmd::cargo::cargo_bin("scarscope");
    let mut child = std::process::Command::new(bin)
        .arg("batch")
        .arg(study())
        .arg("--out")
        .arg(&out)
        .args(["--jobs", "1", "--quiet"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starts");
    // Kill it as soon as the first subject document exists (or whenever it ends).
    let subjects = out.join("subjects");
    while child.try_wait().expect("wait").is_none() {
        let n = std::fs::read_dir(&subjects).map(|d| d.count()).unwrap_or(0);
        if n >= 1 {
            child.kill().expect("kill");
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = child.wait();
    let o = batch(&out, &["--jobs", "1", "--resume", "--quiet"]);
    assert_eq!(o.status.code(), Some(1));
    assert_same_tree(reference(), &out);
}

#[test]
fn resume_redoes_a_subject_whose_photo_changed_and_only_that_one() {
    let dir = TempDir::new().expect("temp");
    let copy = dir.path().join("study");
    copy_dir(study(), &copy, 0);
    let out = dir.path().join("out");
    let run = |extra: &[&str]| {
        scarscope()
            .arg("batch")
            .arg(&copy)
            .arg("--out")
            .arg(&out)
            .args(["--jobs", "1"])
            .args(extra)
            .output()
            .expect("runs")
    };
    run(&[]);
    let before = std::fs::read(out.join("subjects/S02.json")).expect("written");
    std::fs::copy(
        copy.join("S01/s1/left_cheek.jpg"),
        copy.join("S02/s1/left_cheek.jpg"),
    )
    .expect("replace a photo");
    let o = run(&["--resume"]);
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(log.contains("S02: 6 photos analysed"), "{log}");
    assert!(log.contains("S01: complete from an earlier run"), "{log}");
    assert_ne!(
        before,
        std::fs::read(out.join("subjects/S02.json")).expect("written")
    );
}

/// Copy the phantom part of the study (plain files and folders; links and odd names left out).
fn copy_dir(from: &Path, to: &Path, depth: usize) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("readable") {
        let e = e.expect("entry");
        let ft = e.file_type().expect("type");
        let name = e.file_name();
        if depth == 0 && !name.to_string_lossy().starts_with('S') && name != "study.toml" {
            continue;
        }
        if ft.is_dir() {
            copy_dir(&e.path(), &to.join(&name), depth + 1);
        } else if ft.is_file() {
            std::fs::copy(e.path(), to.join(&name)).expect("copy");
        }
    }
}

#[test]
fn a_second_run_into_a_locked_output_folder_is_refused() {
    let dir = TempDir::new().expect("temp");
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).expect("mkdir");
    let held = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(out.join(".scarscope.lock"))
        .expect("lock file");
    held.try_lock().expect("this test holds the lock");
    let o = batch(&out, &["--jobs", "1"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("another scarscope run"), "{err}");
    assert!(!out.join("study.json").exists());
    drop(held);
}

#[test]
fn manifest_errors_stop_the_run_and_name_line_and_key() {
    let dir = TempDir::new().expect("temp");
    let root = dir.path().join("study");
    std::fs::create_dir_all(root.join("A/s1")).expect("mkdir");
    std::fs::write(
        root.join("study.toml"),
        "[defaults]\nviews = [\"left\"]\n\n[subjects.A.sessions.s1]\nlight_elevation_deg = 95\n",
    )
    .expect("manifest");
    let o = scarscope()
        .arg("batch")
        .arg(&root)
        .arg("--out")
        .arg(dir.path().join("out"))
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("line 5"), "{err}");
    assert!(
        err.contains("subjects.A.sessions.s1.light_elevation_deg"),
        "{err}"
    );
}

#[test]
fn the_readme_command_runs_the_demo_study_and_prints_where_the_results_are() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README");
    assert!(
        readme.contains("cargo run --release -- batch fixtures/study --out out"),
        "the README's main command changed: update this test"
    );
    let dir = TempDir::new().expect("temp");
    let out = dir.path().join("out");
    let o = scarscope()
        .arg("batch")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/study"))
        .arg("--out")
        .arg(&out)
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let results = stdout
        .lines()
        .find(|l| l.starts_with("results:"))
        .expect("a results line");
    for f in ["study.json", "scars.csv", "subjects", "overlays"] {
        let path = out.join(f);
        assert!(results.contains(&path.display().to_string()), "{results}");
        assert!(path.exists(), "{}", path.display());
    }
    assert_eq!(json(&out.join("study.json"))["totals"]["subjects"], 2);
}
