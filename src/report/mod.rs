//! Output side of the pipeline: serde types of the JSON contract (DOMAIN.md §5), the overlay
//! drawing ([`overlay`]), the HTML pages ([`html`], with [`plot`]), and the atomic file writer every output goes through (temporary file
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

pub mod compare;
mod font;
pub mod html;
pub mod overlay;
pub mod plot;
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
///
/// # Errors
///
/// [`WriteError`] naming `path` when the folder cannot be created or the file cannot be
/// written (read-only folder, full disk, ...); no temporary file is left behind.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    write_atomic_with(path, |w| w.write_all(bytes))
}

/// Like [`write_atomic`], but the content is streamed by `fill` into a buffered writer, so a
/// large output (a study's `scars.csv`) never has to be held in memory whole.
///
/// The file gets the permissions a plain `File::create` gives (0666 less the umask), not the
/// 0600 of a private temporary file. A device or pipe at `path` is written in place.
///
/// # Errors
///
/// [`WriteError`] naming `path` with the first error of `fill` or of the file system; the
/// temporary file is removed and an existing file at `path` is left untouched.
pub fn write_atomic_with(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), WriteError> {
    let err = |source| WriteError {
        path: path.to_path_buf(),
        source,
    };
    // A device or pipe (`--out /dev/null`, a FIFO) is written in place: renaming a temp file
    // over it would replace the device node itself with a regular file.
    if std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir()) {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(err)?;
        let mut w = std::io::BufWriter::new(f);
        fill(&mut w).map_err(err)?;
        return w.flush().map_err(err);
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(err)?;
    let mut builder = tempfile::Builder::new();
    builder.prefix(".scarscope-").suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // Applied at creation, so the umask still applies, as with `File::create`.
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let tmp = builder.tempfile_in(dir).map_err(err)?;
    // Written through the plain `File`: the temporary file's own writer would append its
    // random name to every error, and the message belongs to `path`. On an error `tmp` is
    // dropped, which removes it.
    let mut w = std::io::BufWriter::new(tmp.as_file());
    fill(&mut w).map_err(err)?;
    w.flush().map_err(err)?;
    drop(w);
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

    #[cfg(unix)]
    #[test]
    fn written_files_get_the_permissions_of_a_plain_create_not_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let plain = dir.path().join("plain");
        std::fs::File::create(&plain).expect("created");
        let atomic = dir.path().join("atomic");
        write_atomic(&atomic, b"x").expect("written");
        let mode = |p: &Path| std::fs::metadata(p).expect("exists").permissions().mode() & 0o777;
        assert_eq!(
            mode(&atomic),
            mode(&plain),
            "same as File::create under this umask"
        );
    }

    #[test]
    fn a_failing_stream_leaves_the_old_file_and_no_temporary_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("scars.csv");
        write_atomic(&path, b"old\n").expect("written");
        let e = write_atomic_with(&path, |w| {
            w.write_all(b"half")?;
            Err(std::io::Error::other("disk on fire"))
        })
        .expect_err("the failure is reported");
        assert!(
            e.to_string().contains("scars.csv") && e.to_string().contains("disk on fire"),
            "{e}"
        );
        assert_eq!(std::fs::read(&path).expect("still there"), b"old\n");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("readable")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, [std::ffi::OsString::from("scars.csv")]);
    }

    /// `--out /dev/null` must not turn /dev/null into a regular file; a FIFO stands in for
    /// the device so a regression cannot damage the machine running the test.
    #[cfg(unix)]
    #[test]
    fn writing_to_a_pipe_writes_through_it_instead_of_replacing_it() {
        use std::io::Read;
        use std::os::unix::fs::FileTypeExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let fifo = dir.path().join("pipe");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if !made.is_ok_and(|s| s.success()) {
            return; // no mkfifo here: nothing to test against
        }
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || {
                let mut got = Vec::new();
                std::fs::File::open(&fifo)
                    .and_then(|mut f| f.read_to_end(&mut got))
                    .map(|_| got)
            })
        };
        write_atomic(&fifo, b"{}\n").expect("written");
        // Checked before joining: had the pipe been replaced, the reader would wait forever.
        let kind = std::fs::symlink_metadata(&fifo)
            .expect("still there")
            .file_type();
        assert!(kind.is_fifo(), "the pipe was replaced: {kind:?}");
        let got = reader.join().expect("reader ran").expect("read");
        assert_eq!(got, b"{}\n");
    }
}
