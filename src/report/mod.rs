//! Output side of the pipeline: serde types of the JSON contract (DOMAIN.md §5), the overlay
//! drawing ([`overlay`]), and the atomic file writer every output goes through (temporary file
//! in the same folder, then rename).
//!
//! Documents are plain data built from an analysis and serialised with serde_json in field
//! declaration order, so the same input gives the same bytes.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::analyze::{Analysis, AnalyzeParams, Calibration, Processing, Summary};
use crate::load::ImageMeta;
use crate::measure::Scar;
use crate::relief::Light;

mod font;
pub mod overlay;
pub mod study;

/// Version of the JSON documents' layout: fields may be added freely; a rename or removal
/// bumps it.
pub const SCHEMA_VERSION: &str = "1.0.0";

/// Name and version of the program that wrote a document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Tool {
    /// Always "scarscope".
    pub name: String,
    /// The crate version.
    pub version: String,
}

impl Tool {
    /// This build of scarscope.
    pub fn current() -> Self {
        Tool {
            name: env!("CARGO_PKG_NAME").into(),
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

/// The photo a document is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Input {
    /// The path as given on the command line (lossy UTF-8).
    pub path: String,
    /// Width after orientation, px.
    pub width: u32,
    /// Height after orientation, px.
    pub height: u32,
    /// SHA-256 of the file bytes, lowercase hex.
    pub sha256: String,
    /// EXIF orientation applied, 1–8.
    pub orientation: u8,
    /// "jpeg", "png", "tiff" or "webp".
    pub format: String,
    /// Bits per sample as stored.
    pub bit_depth: u8,
    /// Colour model and depth as stored, e.g. "rgb8".
    pub color: String,
}

impl From<&ImageMeta> for Input {
    fn from(m: &ImageMeta) -> Self {
        Input {
            path: m.path.to_string_lossy().into_owned(),
            width: m.width,
            height: m.height,
            sha256: m.sha256.clone(),
            orientation: m.orientation,
            format: m.format.clone(),
            bit_depth: m.bit_depth,
            color: m.color.clone(),
        }
    }
}

/// The `analyze` document: one photo's scars and everything needed to trust or reproduce them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AnalyzeDoc {
    /// [`SCHEMA_VERSION`].
    pub schema_version: String,
    /// The program that wrote it.
    pub tool: Tool,
    /// The photo.
    pub input: Input,
    /// Parameters the analysis ran with.
    pub parameters: AnalyzeParams,
    /// Pixel scale used and where it came from.
    pub calibration: Calibration,
    /// Key light used and where it came from.
    pub light: Light,
    /// Processing scale and signal figures.
    pub processing: Processing,
    /// Things the reader must know (missing calibration, weak relief, ...).
    pub warnings: Vec<String>,
    /// The scars, ids 1.. in raster order of their centroids.
    pub scars: Vec<Scar>,
    /// Counts and totals.
    pub summary: Summary,
}

/// Build the `analyze` document of one photo.
pub fn analyze_doc(meta: &ImageMeta, params: &AnalyzeParams, a: &Analysis) -> AnalyzeDoc {
    AnalyzeDoc {
        schema_version: SCHEMA_VERSION.into(),
        tool: Tool::current(),
        input: Input::from(meta),
        parameters: params.clone(),
        calibration: a.calibration.clone(),
        light: a.light,
        processing: a.processing.clone(),
        warnings: a.warnings.clone(),
        scars: a.scars.clone(),
        summary: a.summary.clone(),
    }
}

/// Serialise a document as pretty JSON with a final newline: the bytes every JSON output has.
///
/// # Errors
///
/// Only if a value's `Serialize` implementation fails, which the report types never do.
pub fn to_json_bytes<T: Serialize + ?Sized>(doc: &T) -> Result<Vec<u8>, serde_json::Error> {
    let mut bytes = serde_json::to_vec_pretty(doc)?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// A file could not be written.
#[derive(Debug, thiserror::Error)]
#[error("{}: cannot write: {source}", path.display())]
pub struct WriteError {
    /// The file we were writing.
    pub path: PathBuf,
    /// The cause.
    #[source]
    pub source: std::io::Error,
}

/// Write `bytes` to `path` atomically: readers see the old file or the new one, never half.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    let err = |source| WriteError {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(err)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".scarscope-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(err)?;
    tmp.write_all(bytes).map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_keeps_the_path_as_given_and_json_ends_with_a_newline() {
        let meta = ImageMeta {
            path: PathBuf::from("photos/left cheek.jpg"),
            width: 4,
            height: 3,
            sha256: "ab".into(),
            orientation: 6,
            format: "jpeg".into(),
            bit_depth: 8,
            color: "rgb8".into(),
        };
        let input = Input::from(&meta);
        assert_eq!(input.path, "photos/left cheek.jpg");
        let bytes = to_json_bytes(&input).expect("serialises");
        let text = String::from_utf8(bytes).expect("utf-8");
        assert!(text.ends_with("}\n"));
        // Fields in declaration order: path first, colour last.
        assert!(text.find("\"path\"") < text.find("\"sha256\""));
        assert!(text.find("\"bit_depth\"") < text.find("\"color\""));
    }
}
