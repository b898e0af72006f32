//! `scarscope eval TRUTH.json RESULT.json`: score an `analyze` document against the ground
//! truth of a phantom photo (written by `scarscope synth`) and print the scores as JSON.
//!
//! The result is read through a minimal mirror of the `analyze` document, so any document
//! that carries `scars[].{centroid_px, area_mm2, depth_mm, type}` and `light.azimuth_deg` can
//! be scored, whatever else it holds.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, ensure, Context};
use clap::Args;
use scarscope::eval::{evaluate, EvalScores, ScarObs};
use scarscope::phantom::PhotoTruth;
use scarscope::report::{to_json_bytes, Tool, SCHEMA_VERSION};
use serde::{Deserialize, Serialize};

/// Exit status, shown after `--help`.
const EXIT_CODES: &str = "\
Exit status:
  0  scores printed
  1  a file could not be read or is not what it should be
  2  usage error: invalid arguments";

/// Arguments of `eval`.
#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES)]
pub struct EvalArgs {
    /// Ground truth of the photo (`.truth/<subject>/<session>/<view>.json` of a synthetic study).
    truth: PathBuf,
    /// The `analyze` document of the same photo (one document, or an array holding one).
    result: PathBuf,
    /// True scars narrower than this (mm) are not counted as missed, nor their detections
    /// as false.
    #[arg(long, value_name = "MM", default_value_t = 1.0, value_parser = parse_min_diameter)]
    min_diameter_mm: f64,
}

fn parse_min_diameter(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && (0.0..=100.0).contains(&v) => Ok(v),
        _ => Err(format!("`{s}` is not a diameter between 0 and 100 mm")),
    }
}

/// The part of an `analyze` document that scoring reads.
#[derive(Debug, Deserialize)]
struct ResultMirror {
    scars: Vec<ScarObs>,
    light: LightMirror,
}

#[derive(Debug, Deserialize)]
struct LightMirror {
    azimuth_deg: f64,
    source: Option<String>,
}

/// What `eval` prints.
#[derive(Debug, Serialize)]
struct EvalDoc {
    schema_version: &'static str,
    tool: Tool,
    truth: String,
    result: String,
    min_diameter_mm: f64,
    scores: EvalScores,
    /// Smallest angle between the true and the reported light azimuth, degrees (0–180).
    light_azimuth_error_deg: f64,
    /// Whether the reported azimuth was given or estimated.
    light_source: Option<String>,
}

/// Run `eval`; unreadable or malformed files give exit code 1.
pub fn run(a: EvalArgs) -> anyhow::Result<ExitCode> {
    match score(&a) {
        Ok(doc) => {
            let bytes = to_json_bytes(&doc).context("serialising the scores")?;
            use std::io::Write;
            std::io::stdout()
                .lock()
                .write_all(&bytes)
                .context("writing to standard output")?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            Ok(ExitCode::from(1))
        }
    }
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path, what: &str) -> anyhow::Result<T> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("{}: not {what}", path.display()))
}

fn score(a: &EvalArgs) -> anyhow::Result<EvalDoc> {
    let truth: PhotoTruth = read_json(&a.truth, "a phantom truth file")?;
    // One document, or an array of them when several photos were analysed together.
    let value: serde_json::Value = read_json(&a.result, "JSON")?;
    let value = match value {
        serde_json::Value::Array(mut v) => {
            ensure!(
                v.len() == 1,
                "{}: holds {} documents; eval scores one photo at a time",
                a.result.display(),
                v.len()
            );
            v.remove(0)
        }
        v => v,
    };
    let result = ResultMirror::deserialize(value)
        .with_context(|| format!("{}: not an analyze document", a.result.display()))?;
    if !result.light.azimuth_deg.is_finite() {
        bail!("{}: the light azimuth is not a number", a.result.display());
    }
    let scores = evaluate(&truth, &result.scars, a.min_diameter_mm);
    let diff = (result.light.azimuth_deg - truth.light.azimuth_deg).rem_euclid(360.0);
    Ok(EvalDoc {
        schema_version: SCHEMA_VERSION,
        tool: Tool::current(),
        truth: a.truth.to_string_lossy().into_owned(),
        result: a.result.to_string_lossy().into_owned(),
        min_diameter_mm: a.min_diameter_mm,
        scores,
        light_azimuth_error_deg: diff.min(360.0 - diff),
        light_source: result.light.source,
    })
}
