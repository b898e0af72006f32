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
    };
    let photos = write_study(&study, &opts).expect("phantom study written");
    let mut g = c.benchmark_group("batch_study");
    g.sample_size(10);
    g.throughput(Throughput::Elements(photos as u64));
    for jobs in [1, 2] {
        let out = dir.path().join(format!("out{jobs}"));
        g.bench_function(format!("jobs_{jobs}"), |b| {
            b.iter(|| run_batch(&study, &out, jobs))
        });
    }
    g.finish();
}

criterion_group!(benches, study_throughput);
criterion_main!(benches);
