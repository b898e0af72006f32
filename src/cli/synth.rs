//! `scarscope synth OUT`: write a phantom study with its ground truth.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use scarscope::synth::{write_study, SynthOptions};

/// Arguments of `synth`.
#[derive(Debug, Args)]
pub struct SynthArgs {
    /// Output study folder (created; existing photos are overwritten).
    out: PathBuf,
    /// Number of subjects.
    #[arg(long, default_value_t = 2)]
    subjects: usize,
    /// Sessions per subject, baseline included.
    #[arg(long, default_value_t = 3)]
    sessions: usize,
    /// Random seed: same seed, same bytes.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Photo width, px.
    #[arg(long, default_value_t = 1200)]
    width: usize,
    /// Photo height, px.
    #[arg(long, default_value_t = 900)]
    height: usize,
    /// Baseline resolution, px per mm.
    #[arg(long, default_value_t = 20.0)]
    px_per_mm: f64,
    /// Scars per subject (10–40 is typical).
    #[arg(long, default_value_t = 20)]
    scars: usize,
    /// Let the skin cast shadows on itself (a scar's rim darkens its floor under raking light,
    /// as in any real photo or ray-traced rendering); without it each point is shaded by its
    /// normal alone.
    #[arg(long)]
    cast_shadows: bool,
}

/// Run `synth`.
pub fn run(a: SynthArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(a.subjects >= 1, "--subjects must be at least 1");
    anyhow::ensure!(a.sessions >= 1, "--sessions must be at least 1");
    anyhow::ensure!(
        (64..=8000).contains(&a.width) && (64..=8000).contains(&a.height),
        "--width and --height must be between 64 and 8000 px"
    );
    anyhow::ensure!(
        a.px_per_mm.is_finite() && (2.0..=200.0).contains(&a.px_per_mm),
        "--px-per-mm must be between 2 and 200"
    );
    let opts = SynthOptions {
        subjects: a.subjects,
        sessions: a.sessions,
        seed: a.seed,
        width: a.width,
        height: a.height,
        px_per_mm: a.px_per_mm,
        scars: a.scars,
        cast_shadows: a.cast_shadows,
    };
    let n = write_study(&a.out, &opts)
        .with_context(|| format!("writing the synthetic study to {}", a.out.display()))?;
    println!("wrote {n} photos and their truth to {}", a.out.display());
    Ok(ExitCode::SUCCESS)
}
