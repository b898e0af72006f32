//! Peak memory of `scarscope batch` against the study's size: phantom studies of 10 and 100
//! photos (5 and 50 subjects × 2 sessions, 800×600 px, same seed) each run by the real binary
//! with `--jobs 1` and `--jobs 2`. The peak resident set size of the child process comes from
//! the kernel (`wait4`'s `ru_maxrss`). The studies are written by the binary's `synth` in
//! a child process too: at `exec` the kernel carries the spawning process's own peak into
//! the child's `ru_maxrss`, so this process must stay small (rendering 100 phantom photos
//! in-process made every figure read 102 MiB). Memory must be
//! bounded by the jobs in flight: the 100-photo study may use at most 10 % more than the
//! 10-photo one (issue 5). Also prints photos per second of each run (one run each; the
//! criterion bench `batch` is the careful throughput figure).
//!
//! `cargo bench --bench batch_memory` (a few minutes; prints a table, exits 1 if the bound
//! is broken). `SCARSCOPE_BIN=path/to/scarscope` measures another build instead (before and
//! after a change). Not run by `cargo test`; CI only compiles it.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

/// The binary measured: this build, or another one for a before/after comparison.
fn bin() -> std::ffi::OsString {
    std::env::var_os("SCARSCOPE_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_scarscope").into())
}

/// Run `batch` on `study` and return (peak RSS in KiB, wall seconds).
fn run_batch(study: &Path, out: &Path, jobs: usize) -> (i64, f64) {
    let start = Instant::now();
    let child = Command::new(bin())
        .arg("batch")
        .arg(study)
        .arg("--out")
        .arg(out)
        .args(["--jobs", &jobs.to_string(), "--quiet"])
        .stdout(Stdio::null())
        .spawn()
        .expect("scarscope starts");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: `rusage` is plain old data the kernel fills; `pid` is our own child, reaped
    // here exactly once (the `Child` handle is never waited on).
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = start.elapsed().as_secs_f64();
    assert_eq!(reaped, pid, "wait4 failed");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "batch failed: status {status}"
    );
    drop(child);
    (usage.ru_maxrss, wall)
}

fn main() {
    let dir = tempfile::TempDir::new().expect("temp dir");
    let mut peaks = std::collections::BTreeMap::new();
    println!("| photos (800×600) | --jobs | peak RSS | wall | photos/s |");
    println!("|---|---|---|---|---|");
    for subjects in [5, 50] {
        let study = dir.path().join(format!("study{subjects}"));
        let made = Command::new(bin())
            .arg("synth")
            .arg(&study)
            .args(["--subjects", &subjects.to_string(), "--sessions", "2"])
            .args(["--width", "800", "--height", "600", "--px-per-mm", "20"])
            .args(["--scars", "12", "--seed", "9"])
            .stdout(Stdio::null())
            .status()
            .expect("synth runs");
        assert!(made.success(), "phantom study not written");
        let photos = subjects * 2;
        for jobs in [1, 2] {
            let out = dir.path().join(format!("out{subjects}_{jobs}"));
            let (kib, wall) = run_batch(&study, &out, jobs);
            println!(
                "| {photos} | {jobs} | {:.1} MiB | {wall:.1} s | {:.2} |",
                kib as f64 / 1024.0,
                photos as f64 / wall
            );
            peaks.insert((photos, jobs), kib);
        }
    }
    let mut ok = true;
    for jobs in [1, 2] {
        let (small, large) = (peaks[&(10, jobs)], peaks[&(100, jobs)]);
        let growth = 100.0 * (large as f64 / small as f64 - 1.0);
        let holds = large as f64 <= 1.10 * small as f64;
        ok &= holds;
        println!(
            "--jobs {jobs}: 100 photos use {growth:+.1} % of the 10-photo peak (bound +10 %): {}",
            if holds { "holds" } else { "BROKEN" }
        );
    }
    if !ok {
        drop(dir); // `exit` skips destructors: remove the studies first
        std::process::exit(1);
    }
}
