//! Study throughput of `scarscope batch`: a phantom study of 4 subjects × 2 sessions × 1 view
//! (8 photos, 600×450 px) run end to end by the real binary with `--jobs 1` and `--jobs 2`.
//! Criterion reports photos per second (throughput in elements).
//!
//! `cargo bench --bench batch`

use std::path::Path;
use std::process::Command;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use scarscope::synth::{write_study, SynthOptions};

fn run_batch(study: &Path, out: &Path, jobs: usize) {
    let status = Command::new(env!("CARGO_BIN_EXE_scarscope"))
        .arg("batch")
        .arg(study)
        .arg("--out")
        .arg(out)
        .args(["--jobs", &jobs.to_string(), "--quiet"])
        .stdout(std::process::Stdio::null())
        .status()
        .expect("scarscope runs");
    assert!(status.success(), "batch failed: {status}");
}

/// One criterion group timing `batch` on `study` at `--jobs 1` and `--jobs 2`, in photos/s.
fn jobs_1_and_2(c: &mut Criterion, name: &str, study: &Path, scratch: &Path, photos: usize) {
    let mut g = c.benchmark_group(name);
    g.sample_size(10);
    g.throughput(Throughput::Elements(photos as u64));
    for jobs in [1, 2] {
        let out = scratch.join(format!("out{jobs}"));
        g.bench_function(format!("jobs_{jobs}"), |b| {
            b.iter(|| run_batch(study, &out, jobs))
        });
    }
    g.finish();
}

fn study_throughput(c: &mut Criterion) {
    let dir = tempfile::TempDir::new().expect("temp dir");
    let study = dir.path().join("study");
    let opts = SynthOptions {
        subjects: 4,
        sessions: 2,
        seed: 5,
        width: 600,
        height: 450,
        px_per_mm: 20.0,
        scars: 12,
        cast_shadows: false,
    };
    let photos = write_study(&study, &opts).expect("phantom study written");
    jobs_1_and_2(c, "batch_study", &study, dir.path(), photos);
}

/// Issue 7's batch figure: 20 photos of 3 MP (10 subjects × 2 sessions, 2000×1500 px), run
/// by the real binary at 1 and 2 jobs; 2 jobs should give at least 1.8× the photos per second.
/// The study is rendered once into the target folder (phantom rendering at 3 MP is slow).
fn batch_20_photos_3mp(c: &mut Criterion) {
    let study = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench_study_20x3mp_v1");
    let opts = SynthOptions {
        subjects: 10,
        sessions: 2,
        seed: 7,
        width: 2000,
        height: 1500,
        px_per_mm: 20.0,
        scars: 12,
        cast_shadows: false,
    };
    let photos = if study.join(".complete").exists() {
        opts.subjects * opts.sessions
    } else {
        let _ = std::fs::remove_dir_all(&study);
        let n = write_study(&study, &opts).expect("phantom study written");
        std::fs::write(study.join(".complete"), b"").expect("marker written");
        n
    };
    let dir = tempfile::TempDir::new().expect("temp dir");
    jobs_1_and_2(c, "batch_20_photos_3mp", &study, dir.path(), photos);
}

criterion_group!(benches, study_throughput, batch_20_photos_3mp);
criterion_main!(benches);
