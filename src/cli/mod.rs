//! Command-line interface: clap derive types, one file per subcommand. Each turns its
//! arguments into a checked configuration and calls the library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod analyze;
mod batch;
mod compare;
mod eval;
mod merge;
mod schema;
mod synth;

/// Measure atrophic acne scars in skin photographs and track them across sessions.
#[derive(Debug, Parser)]
#[command(name = "scarscope", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Measure the scars in photos and write the JSON report (and overlays).
    Analyze(analyze::AnalyzeArgs),
    /// Register a later photo onto an earlier one, track every scar and report its change.
    Compare(compare::CompareArgs),
    /// Score an analyze report against a synthetic photo's ground truth.
    Eval(eval::EvalArgs),
    /// Write a synthetic study (phantom photos + ground truth).
    Synth(synth::SynthArgs),
    /// Analyse a whole study folder: every subject, session and view; tidy outputs.
    Batch(batch::BatchArgs),
    /// Combine the outputs of `batch --shard I/N` runs into one study output.
    Merge(merge::MergeArgs),
    /// Print the JSON Schema of a document scarscope writes.
    Schema(schema::SchemaArgs),
}

/// Run the parsed command; the exit code says whether anything failed.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Analyze(a) => analyze::run(a),
        Command::Compare(a) => compare::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Synth(a) => synth::run(a),
        Command::Batch(a) => batch::run(a),
        Command::Merge(a) => merge::run(a),
        Command::Schema(a) => schema::run(a),
    }
}
