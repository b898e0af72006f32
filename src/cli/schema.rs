//! `scarscope schema [analyze|compare|subject|study]`: print the JSON Schema (2020-12) of a
//! document the tool writes, generated from the Rust types that serialise it.

use std::process::ExitCode;

use clap::{Args, ValueEnum};
use scarscope::report::compare::CompareDoc;
use scarscope::report::study::{StudyDoc, SubjectDoc};
use scarscope::report::AnalyzeDoc;

/// Which document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Document {
    /// The `analyze` document of one photo.
    Analyze,
    /// The `compare` document of two sessions.
    Compare,
    /// `subjects/<id>.json` written by `batch`.
    Subject,
    /// `study.json` written by `batch` and `merge`.
    Study,
}

/// Arguments of `schema`.
#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// The document whose schema to print.
    #[arg(value_enum, default_value = "analyze")]
    document: Document,
}

/// The schema of `doc` as a JSON value, or why there is none.
pub fn schema_of(doc: Document) -> anyhow::Result<serde_json::Value> {
    let schema = match doc {
        Document::Analyze => schemars::schema_for!(AnalyzeDoc),
        Document::Subject => schemars::schema_for!(SubjectDoc),
        Document::Study => schemars::schema_for!(StudyDoc),
        Document::Compare => schemars::schema_for!(CompareDoc),
    };
    Ok(schema.to_value())
}

/// Run `schema`.
pub fn run(a: SchemaArgs) -> anyhow::Result<ExitCode> {
    let v = schema_of(a.document)?;
    let mut text = serde_json::to_string_pretty(&v)?;
    text.push('\n');
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}
