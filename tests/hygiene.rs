//! Study and output hygiene (issue 8), driven through the real binary on small phantom
//! studies: unreadable photos, folders and manifests; an output folder that cannot be
//! written (permissions, read-only file system) or fills up; a full output file; the
//! permissions outputs get; manifest values and links that try to leave the study; non-ASCII
//! and non-UTF-8 file names; the audit trail of batch documents.
//!
//! Root reads and writes through any permission bits, and CI runs as root, so permission
//! cases run the binary as `nobody` through `setpriv` (util-linux) when the tests run as root.
//! Full and read-only file systems are real: a small tmpfs mounted in a private mount
//! namespace (`unshare`), which disappears with the process. A test fails loudly when these
//! tools are missing; it never passes without exercising the error path.
#![cfg(unix)]

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use sha2::{Digest, Sha256};
use tempfile::TempDir;

mod common;
use common::{assert_same_tree, tree};

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_scarscope"))
}

/// A phantom study of `subjects` × 2 sessions × 1 view (300×225 px) in `dir/study`, readable
/// by every user (the temporary folder itself is private by default).
fn study(dir: &TempDir, subjects: usize) -> PathBuf {
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let root = dir.path().join("study");
    let o = Command::new(bin())
        .arg("synth")
        .arg(&root)
        .args(["--subjects", &subjects.to_string(), "--sessions", "2"])
        .args(["--width", "300", "--height", "225", "--px-per-mm", "20"])
        .args(["--scars", "6", "--seed", "3"])
        .output()
        .expect("synth runs");
    assert!(o.status.success(), "{o:?}");
    root
}

fn batch(study: &Path, out: &Path, extra: &[&str]) -> Output {
    Command::new(bin())
        .arg("batch")
        .arg(study)
        .arg("--out")
        .arg(out)
        .args(["--jobs", "1"])
        .args(extra)
        .output()
        .expect("runs")
}

/// `batch` that must succeed (exit 0).
fn batch_ok(study: &Path, out: &Path, extra: &[&str]) {
    let o = batch(study, out, extra);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).expect("readable")).expect("JSON")
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn is_root() -> bool {
    // /proc/self belongs to the effective user of the process looking at it.
    std::fs::metadata("/proc/self").expect("procfs").uid() == 0
}

/// The user `nobody`.
const NOBODY: u32 = 65534;

/// `scarscope` run as an unprivileged user: as root, through `setpriv` as `nobody`; otherwise
/// as the current user (permission bits already apply). Panics when `setpriv` is missing.
fn unprivileged() -> Command {
    if !is_root() {
        return Command::new(bin());
    }
    let probe = Command::new("setpriv").arg("--version").output();
    assert!(
        probe.is_ok_and(|o| o.status.success()),
        "setpriv (Debian package util-linux) is needed to run scarscope without root's \
         privileges; without it the permission tests cannot test anything"
    );
    let mut c = Command::new("setpriv");
    c.arg(format!("--reuid={NOBODY}"))
        .arg(format!("--regid={NOBODY}"))
        .arg("--clear-groups")
        .arg(bin());
    c
}

/// An output folder the unprivileged user may write into.
fn writable_out(dir: &TempDir, name: &str) -> PathBuf {
    let out = dir.path().join(name);
    std::fs::create_dir_all(&out).expect("mkdir");
    if is_root() {
        std::os::unix::fs::chown(&out, Some(NOBODY), Some(NOBODY)).expect("chown");
    }
    out
}

/// What a run on a small file system left behind.
struct TmpfsRun {
    /// Where the tmpfs was mounted (the paths the errors name).
    out: PathBuf,
    /// A normal folder the steps copy into what must outlive the mount.
    save: PathBuf,
    /// Exit status of the run under test, as the steps recorded it in `$SAVE/status`.
    status: String,
    /// Its stderr (`$SAVE/stderr`).
    stderr: String,
}

/// Mount a tmpfs of `kib` KiB on `dir/out` in a private mount namespace (the mount vanishes
/// with it) and run the shell `steps` there with `BIN`, `STUDY` (= `root`), `OUT` and `SAVE`
/// (= `dir/save`, created) in the environment. As root a plain mount namespace; otherwise
/// inside a user namespace mapping the user to root. Panics when the mount is impossible.
fn on_tmpfs(dir: &TempDir, root: &Path, kib: usize, steps: &str) -> TmpfsRun {
    let (out, save) = (dir.path().join("out"), dir.path().join("save"));
    std::fs::create_dir_all(&out).expect("mkdir");
    std::fs::create_dir_all(&save).expect("mkdir");
    let script =
        format!("mount -t tmpfs -o size={kib}k tmpfs \"$OUT\" || exit 97\n{steps}\nexit 0\n");
    let mut c = Command::new("unshare");
    if !is_root() {
        c.args(["--user", "--map-root-user"]);
    }
    c.args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .env("BIN", bin())
        .env("STUDY", root)
        .env("OUT", &out)
        .env("SAVE", &save);
    let o = c.output().expect(
        "unshare (util-linux) is needed to mount a small file system for this test; \
         without it the test cannot test anything",
    );
    assert_ne!(
        o.status.code(),
        Some(97),
        "could not mount a tmpfs in a private mount namespace (needs root, or user \
         namespaces): {}",
        stderr(&o)
    );
    assert!(o.status.success(), "{o:?}");
    let read = |name: &str| std::fs::read_to_string(save.join(name)).expect(name);
    TmpfsRun {
        status: read("status").trim().to_string(),
        stderr: read("stderr"),
        out,
        save,
    }
}

/// No temporary file of an interrupted write is left among `files`.
fn no_temporaries(files: &std::collections::BTreeMap<PathBuf, Vec<u8>>) {
    for k in files.keys() {
        let name = k.file_name().map(|n| n.to_string_lossy().into_owned());
        assert!(
            !name.is_some_and(|n| n.starts_with(".scarscope-")),
            "temporary file left: {}",
            k.display()
        );
    }
}

#[test]
fn unreadable_photos_and_folders_are_failures_naming_them_and_the_rest_is_analysed() {
    let dir = TempDir::new().expect("temp");
    let root = study(&dir, 3);
    let deny = |p: &Path| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o000)).expect("chmod")
    };
    deny(&root.join("S02/s1/left_cheek.jpg"));
    deny(&root.join("S03/s2"));
    let out = writable_out(&dir, "out");
    let o = unprivileged()
        .arg("batch")
        .arg(&root)
        .arg("--out")
        .arg(&out)
        .args(["--jobs", "1"])
        .output()
        .expect("runs");
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("S02/s1/left_cheek.jpg") && err.contains("Permission denied"),
        "{err}"
    );
    let doc = json(&out.join("study.json"));
    let failures: Vec<(String, String, String)> = doc["failures"]
        .as_array()
        .expect("failures[]")
        .iter()
        .map(|f| {
            let s = |k: &str| f[k].as_str().unwrap_or("").to_string();
            (s("path"), s("stage"), s("error"))
        })
        .collect();
    assert_eq!(failures.len(), 2, "{failures:?}");
    assert_eq!(
        (failures[0].0.as_str(), failures[0].1.as_str()),
        ("S02/s1/left_cheek.jpg", "load")
    );
    assert!(failures[0].2.contains("Permission denied"), "{failures:?}");
    assert_eq!(
        (failures[1].0.as_str(), failures[1].1.as_str()),
        ("S03/s2", "walk")
    );
    assert!(
        failures[1].2.contains("cannot read the session folder")
            && failures[1].2.contains("Permission denied"),
        "{failures:?}"
    );
    assert_eq!(doc["totals"]["analysed"], 4, "every other photo analysed");
}

#[test]
fn an_unreadable_manifest_stops_the_run_with_exit_2_naming_it() {
    let dir = TempDir::new().expect("temp");
    let root = study(&dir, 1);
    let manifest = root.join("study.toml");
    std::fs::set_permissions(&manifest, std::fs::Permissions::from_mode(0o000)).expect("chmod");
    let out = writable_out(&dir, "out");
    let o = unprivileged()
        .arg("batch")
        .arg(&root)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("runs");
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("study.toml") && err.contains("Permission denied"),
        "{err}"
    );
    assert!(!out.join("study.json").exists());
}

#[test]
fn an_output_folder_without_write_permission_is_refused_with_exit_2_and_earlier_results_kept() {
    let dir = TempDir::new().expect("temp");
    let root = study(&dir, 2);
    let out = dir.path().join("out");
    batch_ok(&root, &out, &[]);
    let before = tree(&out);
    // Read-only for everyone: every file and folder loses its write bits.
    fn read_only(p: &Path) {
        let meta = std::fs::metadata(p).expect("exists");
        if meta.is_dir() {
            for e in std::fs::read_dir(p).expect("readable") {
                read_only(&e.expect("entry").path());
            }
        }
        let mode = meta.permissions().mode() & !0o222;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }
    read_only(&out);
    for extra in [&[][..], &["--resume"][..]] {
        let o = unprivileged()
            .arg("batch")
            .arg(&root)
            .arg("--out")
            .arg(&out)
            .args(extra)
            .output()
            .expect("runs");
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(
            err.contains(&out.display().to_string()) && err.contains("Permission denied"),
            "{err}"
        );
        assert_eq!(tree(&out), before, "nothing changed, nothing lost");
    }
}

#[test]
fn a_read_only_file_system_is_refused_with_exit_2_and_earlier_results_kept() {
    let dir = TempDir::new().expect("temp");
    let root = study(&dir, 2);
    let steps = r#"
        "$BIN" batch "$STUDY" --out "$OUT" --jobs 1 --quiet >/dev/null || exit 98
        cp -a "$OUT" "$SAVE/before"
        mount -o remount,ro "$OUT" || exit 99
        "$BIN" batch "$STUDY" --out "$OUT" --jobs 1 --resume 2>"$SAVE/stderr"
        echo $? >"$SAVE/status"
        cp -a "$OUT" "$SAVE/after"
    "#;
    let TmpfsRun {
        out,
        save,
        status,
        stderr: err,
    } = on_tmpfs(&dir, &root, 16 * 1024, steps);
    assert_eq!(status, "2", "{err}");
    assert!(
        err.contains(&out.display().to_string()) && err.contains("Read-only file system"),
        "{err}"
    );
    assert!(save.join("before/study.json").is_file());
    assert_same_tree(&save.join("before"), &save.join("after"));
}

#[test]
fn a_full_output_folder_gives_clear_errors_keeps_only_complete_files_and_resume_finishes_the_job() {
    let dir = TempDir::new().expect("temp");
    let root = study(&dir, 3);
    let reference = dir.path().join("reference");
    batch_ok(&root, &reference, &[]);
    let want = tree(&reference);
    // Room for about half of the outputs.
    let total: usize = want.values().map(Vec::len).sum();
    let kib = (total / 2 / 4096 + 1) * 4;
    let steps = r#"
        "$BIN" batch "$STUDY" --out "$OUT" --jobs 1 2>"$SAVE/stderr"
        echo $? >"$SAVE/status"
        cp -a "$OUT" "$SAVE/out"
    "#;
    let TmpfsRun {
        out,
        save,
        status,
        stderr: err,
    } = on_tmpfs(&dir, &root, kib, steps);
    // Clear errors: the file that could not be written and why, no temporary names.
    assert!(
        err.contains("cannot write: No space left on device"),
        "{err}"
    );
    assert!(err.contains(&out.display().to_string()), "{err}");
    assert!(!err.contains(".scarscope-"), "{err}");
    let got = tree(&save.join("out"));
    no_temporaries(&got);
    // Whatever was written is complete: overlays are the reference's bytes, subject documents
    // are the reference's or record their write failures.
    let mut overlays = 0;
    for (k, v) in &got {
        let name = k.to_string_lossy();
        if name.starts_with("overlays/") {
            assert!(v == &want[k], "{name} is not complete");
            overlays += 1;
        } else if name.starts_with("subjects/") && v != &want[k] {
            let doc: Value = serde_json::from_slice(v).expect("a complete document");
            let n = doc["failures"]
                .as_array()
                .expect("failures")
                .iter()
                .filter(|f| f["stage"] == "write")
                .count();
            assert!(n > 0, "{name} differs without a write failure");
        }
    }
    let write_failures = err.matches("No space left on device").count();
    assert!(overlays > 0 && write_failures > 0, "half full: {err}");
    match status.as_str() {
        // study.json fitted: it lists the write failures.
        "1" => {
            let doc: Value =
                serde_json::from_slice(&got[Path::new("study.json")]).expect("study.json");
            let failures = doc["failures"].as_array().expect("failures");
            assert!(!failures.is_empty());
            // Photos' outputs fail at "write", the HTML report's pages at "report": every one
            // for the full disk.
            assert!(
                failures.iter().all(|f| {
                    (f["stage"] == "write" || f["stage"] == "report")
                        && f["error"]
                            .as_str()
                            .is_some_and(|e| e.contains("cannot write: No space left on device"))
                }),
                "{failures:?}"
            );
        }
        // It did not: the run failed as a whole, naming the file.
        "2" => assert!(
            err.contains("study.json: cannot write") || err.contains("scars.csv: cannot write"),
            "{err}"
        ),
        s => panic!("exit status {s}: {err}"),
    }
    // With room again, --resume redoes what was not written and ends as one clean run.
    let resumed = dir.path().join("resumed");
    let o = Command::new("cp")
        .arg("-a")
        .arg(save.join("out"))
        .arg(&resumed)
        .status()
        .expect("cp");
    assert!(o.success());
    batch_ok(&root, &resumed, &["--resume"]);
    assert_same_tree(&reference, &resumed);
}

#[test]
fn a_full_output_file_gives_a_clear_error_and_exit_1_and_the_device_stays_a_device() {
    use std::os::unix::fs::FileTypeExt;
    let dir = TempDir::new().expect("temp");
    let root = study(&dir, 1);
    let o = Command::new(bin())
        .arg("analyze")
        .arg(root.join("S01/s1/left_cheek.jpg"))
        .args(["--out", "/dev/full"])
        .output()
        .expect("runs");
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("/dev/full: cannot write: No space left on device"),
        "{err}"
    );
    let kind = std::fs::symlink_metadata("/dev/full")
        .expect("exists")
        .file_type();
    assert!(kind.is_char_device(), "/dev/full was replaced: {kind:?}");
}

#[test]
fn outputs_get_the_permissions_of_ordinary_files_not_private_0600() {
    let dir = TempDir::new().expect("temp");
    let root = study(&dir, 1);
    let out = dir.path().join("out");
    let o = Command::new("sh")
        .args(["-c", r#"umask 022 && exec "$@""#, "sh"])
        .arg(bin())
        .arg("batch")
        .arg(&root)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let t = tree(&out);
    assert!(t.len() >= 5, "{:?}", t.keys());
    for k in t.keys() {
        let mode = std::fs::metadata(out.join(k))
            .expect("exists")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644, "{}", k.display());
    }
    // The study's photos, written by `synth` through the same writer, too.
    let photo = std::fs::metadata(root.join("S01/s1/left_cheek.jpg")).expect("photo");
    assert_eq!(photo.permissions().mode() & 0o777, 0o644);
}

/// Every path under `dir`, relative, folders included.
fn all_paths(dir: &Path) -> Vec<PathBuf> {
    let mut acc = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("readable") {
            let p = e.expect("entry").path();
            acc.push(p.strip_prefix(dir).expect("inside").to_path_buf());
            if std::fs::symlink_metadata(&p).expect("exists").is_dir() {
                stack.push(p);
            }
        }
    }
    acc.sort();
    acc
}

#[test]
fn path_traversal_in_manifest_values_cannot_write_outside_out() {
    let dir = TempDir::new().expect("temp");
    let root = study(&dir, 2);
    let manifest = std::fs::read_to_string(root.join("study.toml")).expect("manifest");
    let manifest = manifest
        .replace(
            "name = \"synthetic study\"",
            "name = \"../../escaped/../../etc/evil\"",
        )
        .replace(
            "views = [\"left_cheek\"]",
            "views = [\"left_cheek\", \"../../escaped\", \"/tmp/evil\"]",
        )
        + "\n[subjects.\"../../escaped\".sessions.\"../s1\"]\ndate = \"2026-01-11\"\n\
           \n[subjects.S01.sessions.\"../../../escaped\"]\ndate = \"2026-01-12\"\n";
    std::fs::write(root.join("study.toml"), manifest).expect("manifest");
    let before_study = all_paths(&root);
    let out = dir.path().join("work/out");
    let o = batch(&root, &out, &[]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    // Nothing beside `out`, nothing new in the study.
    let top: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .expect("readable")
        .map(|e| PathBuf::from(e.expect("entry").file_name()))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(top, [PathBuf::from("study"), PathBuf::from("work")]);
    let work: Vec<_> = std::fs::read_dir(dir.path().join("work"))
        .expect("readable")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(work, ["out"]);
    assert_eq!(all_paths(&root), before_study);
    for p in all_paths(&out) {
        assert!(
            p.components()
                .all(|c| matches!(c, std::path::Component::Normal(_))),
            "{}",
            p.display()
        );
    }
    // The entries that match no folder are reported, not followed.
    let doc = json(&out.join("study.json"));
    assert_eq!(doc["totals"]["analysed"], 4);
    assert!(
        doc["warnings"].to_string().contains("escaped"),
        "{}",
        doc["warnings"]
    );
}

#[test]
fn links_leaving_the_study_are_refused_and_their_targets_never_read() {
    let dir = TempDir::new().expect("temp");
    let root = study(&dir, 2);
    // A whole subject and a session folder outside the study, linked in; a photo linked in.
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(outside.join("S09/s1")).expect("mkdir");
    let photo = std::fs::read(root.join("S01/s1/left_cheek.jpg")).expect("photo");
    std::fs::write(outside.join("S09/s1/left_cheek.jpg"), &photo).expect("write");
    std::os::unix::fs::symlink(outside.join("S09"), root.join("S09")).expect("link");
    std::os::unix::fs::symlink(outside.join("S09/s1"), root.join("S02/s3")).expect("link");
    std::os::unix::fs::symlink(
        outside.join("S09/s1/left_cheek.jpg"),
        root.join("S01/s2/right_cheek.jpg"),
    )
    .expect("link");
    // A link that stays inside the study is followed.
    std::os::unix::fs::symlink(root.join("S01/s1"), root.join("S01/s3")).expect("link");
    let out = dir.path().join("out");
    batch_ok(&root, &out, &[]);
    let doc = json(&out.join("study.json"));
    let ids: Vec<&str> = doc["subjects"]
        .as_array()
        .expect("subjects")
        .iter()
        .filter_map(|s| s["subject"].as_str())
        .collect();
    assert_eq!(ids, ["S01", "S02"]);
    let all = doc.to_string()
        + &std::fs::read_to_string(out.join("subjects/S01.json")).expect("S01")
        + &std::fs::read_to_string(out.join("subjects/S02.json")).expect("S02");
    for link in ["S09", "S02/s3", "S01/s2/right_cheek.jpg"] {
        let warned = all
            .split(link)
            .skip(1)
            .any(|rest| rest.contains("leading out of the study"));
        assert!(warned, "{link} not reported: {all}");
    }
    assert!(!out.join("overlays/S09").exists());
    assert!(!out.join("overlays/S02/s3").exists());
    assert!(!out.join("overlays/S01/s2/right_cheek.png").exists());
    // The inside link's session is analysed: S01 has s1, s2 and s3.
    let s01 = json(&out.join("subjects/S01.json"));
    assert_eq!(s01["sessions"].as_array().map(Vec::len), Some(3));
    assert_eq!(doc["totals"]["analysed"], 5);
}

#[test]
fn non_ascii_and_non_utf8_file_names_are_analysed_with_safe_output_names() {
    use std::os::unix::ffi::OsStringExt;
    let dir = TempDir::new().expect("temp");
    let root = study(&dir, 1);
    let manifest = std::fs::read_to_string(root.join("study.toml")).expect("manifest");
    std::fs::write(
        root.join("study.toml"),
        manifest.replace("views = [\"left_cheek\"]", ""),
    )
    .expect("manifest");
    let non_utf8 = std::ffi::OsString::from_vec(b"joue-\xe9\xff.jpg".to_vec());
    for session in ["s1", "s2"] {
        let ses = root.join("S01").join(session);
        let photo = ses.join("left_cheek.jpg");
        std::fs::copy(&photo, ses.join("joue_gauche_é_頬.jpg")).expect("copy");
        std::fs::copy(&photo, ses.join(&non_utf8)).expect("copy");
    }
    let out = dir.path().join("out");
    batch_ok(&root, &out, &[]);
    let s01 = json(&out.join("subjects/S01.json"));
    let views: Vec<&str> = s01["views"]
        .as_array()
        .expect("views")
        .iter()
        .filter_map(|v| v["view"].as_str())
        .collect();
    assert_eq!(views.len(), 3, "{views:?}");
    assert!(views.contains(&"joue_gauche_é_頬"), "{views:?}");
    assert!(views.iter().any(|v| v.starts_with("joue-")), "{views:?}");
    for v in s01["views"].as_array().expect("views") {
        for s in v["sessions"].as_array().expect("sessions") {
            assert_eq!(s["status"], "analysed", "{}", v["view"]);
            let overlay = s["overlay"].as_str().expect("overlay");
            assert!(out.join(overlay).is_file(), "{overlay}");
            assert!(
                overlay
                    .chars()
                    .all(|c| c.is_alphanumeric() || "/._-".contains(c)),
                "{overlay}"
            );
        }
    }
    // `analyze` takes the non-UTF-8 path on the command line too.
    let o = Command::new(bin())
        .arg("analyze")
        .arg(root.join("S01/s1").join(&non_utf8))
        .arg("--out")
        .arg(dir.path().join("one.json"))
        .output()
        .expect("runs");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(json(&dir.path().join("one.json"))["input"]["path"]
        .as_str()
        .is_some_and(|p| p.contains("joue-")));
}

#[test]
fn batch_documents_record_tool_version_parameters_input_sha256s_and_manifest_hash() {
    let dir = TempDir::new().expect("temp");
    let root = study(&dir, 2);
    let out = dir.path().join("out");
    batch_ok(&root, &out, &["--light-elevation", "40"]);
    let manifest_sha = sha256_hex(&std::fs::read(root.join("study.toml")).expect("manifest"));
    let study_doc = json(&out.join("study.json"));
    let mut docs = vec![("study.json".to_string(), study_doc.clone())];
    for s in study_doc["subjects"].as_array().expect("subjects") {
        let rel = s["document"].as_str().expect("document");
        docs.push((rel.to_string(), json(&out.join(rel))));
    }
    assert_eq!(docs.len(), 3);
    for (name, d) in &docs {
        assert_eq!(d["tool"]["name"], "scarscope", "{name}");
        assert_eq!(d["tool"]["version"], env!("CARGO_PKG_VERSION"), "{name}");
        assert_eq!(
            d["provenance"]["manifest_sha256"],
            manifest_sha.as_str(),
            "{name}"
        );
        assert_eq!(
            d["provenance"]["overrides"]["light_elevation_deg"], 40.0,
            "{name}: command-line parameters"
        );
    }
    let mut photos = 0;
    for (_, d) in &docs[1..] {
        assert!(d["fingerprint"].as_str().is_some_and(|f| f.len() == 64));
        for v in d["views"].as_array().expect("views") {
            for s in v["sessions"].as_array().expect("sessions") {
                let a = &s["analysis"];
                let path = a["input"]["path"].as_str().expect("relative path");
                let bytes = std::fs::read(root.join(path)).expect("the photo it names");
                assert_eq!(a["input"]["sha256"], sha256_hex(&bytes).as_str(), "{path}");
                assert_eq!(a["tool"]["version"], env!("CARGO_PKG_VERSION"));
                assert!(
                    a["parameters"].is_object()
                        && a["parameters"]["processing_mm_per_px"].is_number()
                );
                assert!(
                    a["calibration"]["mm_per_px"].is_number(),
                    "manifest scale used"
                );
                photos += 1;
            }
        }
    }
    assert_eq!(photos, 4);
}

#[test]
fn json_paths_are_relative_to_the_study_unless_absolute_paths_is_given() {
    let dir = TempDir::new().expect("temp");
    let root = study(&dir, 1);
    let canonical = root.canonicalize().expect("canonical");
    for (extra, name) in [(&[][..], "rel"), (&["--absolute-paths"][..], "abs")] {
        let out = dir.path().join(name);
        batch_ok(&root, &out, extra);
        let study_doc = json(&out.join("study.json"));
        let s01 = json(&out.join("subjects/S01.json"));
        let path = s01["views"][0]["sessions"][0]["analysis"]["input"]["path"]
            .as_str()
            .expect("path")
            .to_string();
        let study_root = study_doc["study"]["root"].as_str().expect("root");
        if extra.is_empty() {
            assert_eq!(path, "S01/s1/left_cheek.jpg");
            assert_eq!(study_root, "study", "the folder's name only");
        } else {
            assert_eq!(Path::new(&path), canonical.join("S01/s1/left_cheek.jpg"));
            assert_eq!(Path::new(study_root), canonical);
        }
        // Nothing of the machine's folders leaks into relative documents.
        let parent = dir.path().display().to_string();
        let all = std::fs::read_to_string(out.join("study.json")).expect("study.json")
            + &std::fs::read_to_string(out.join("subjects/S01.json")).expect("S01")
            + &std::fs::read_to_string(out.join("scars.csv")).expect("csv");
        assert_eq!(all.contains(&parent), !extra.is_empty(), "{name}");
    }
}
