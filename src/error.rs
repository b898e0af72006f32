//! Error types. Every error that concerns one photo carries that photo's path as a typed field,
//! so a study can list failures by file without parsing messages, and its `Display` names the
//! file and the cause in plain words.

use std::path::{Path, PathBuf};

use crate::analyze::AnalysisError;
use crate::report::WriteError;

/// Why a photo could not be turned into linear-light planes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The file could not be opened or read.
    #[error("{}: cannot read the file: {source}", .path.display())]
    Io {
        /// The photo.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },

    /// The file is bigger on disk than one photo may be; refused before reading it.
    #[error(
        "{}: the file is {} on disk, above the limit of {} for one photo",
        .path.display(),
        human_bytes(*.bytes),
        human_bytes(*.max_bytes)
    )]
    FileTooLarge {
        /// The photo.
        path: PathBuf,
        /// Its size on disk.
        bytes: u64,
        /// The largest size accepted.
        max_bytes: u64,
    },

    /// The file has no bytes at all.
    #[error("{}: the file is empty (0 bytes)", .path.display())]
    Empty {
        /// The photo.
        path: PathBuf,
    },

    /// The content is not recognisably any image format (text, random bytes, ...). The file
    /// name's extension is deliberately not trusted.
    #[error(
        "{}: not an image: the content is not JPEG, PNG, TIFF or WebP, whatever the file name says",
        .path.display()
    )]
    UnknownFormat {
        /// The photo.
        path: PathBuf,
    },

    /// The content is a known image format that scarscope does not read (GIF, BMP, ...).
    #[error(
        "{}: this is a {format} image; scarscope reads JPEG, PNG, TIFF and WebP",
        .path.display()
    )]
    UnsupportedFormat {
        /// The photo.
        path: PathBuf,
        /// The format found, e.g. "GIF".
        format: String,
    },

    /// The format is supported but this file uses a variant of it that the decoder does not
    /// handle (e.g. a TIFF colour model or compression, a JPEG coding mode).
    #[error(
        "{}: this {format} file uses a feature scarscope cannot decode: {message}",
        .path.display()
    )]
    UnsupportedFeature {
        /// The photo.
        path: PathBuf,
        /// "JPEG", "PNG", "TIFF" or "WebP".
        format: String,
        /// The decoder's description of the feature.
        message: String,
    },

    /// The header claims more pixels than allowed; refused before any pixel buffer exists.
    #[error(
        "{}: header claims {width}×{height} pixels ({}), above the limit of {} (raise it with --max-megapixels)",
        .path.display(),
        megapixels(u64::from(*.width) * u64::from(*.height)),
        megapixels(*.max_pixels)
    )]
    TooLarge {
        /// The photo.
        path: PathBuf,
        /// Width claimed by the header, as stored (before orientation).
        width: u32,
        /// Height claimed by the header, as stored (before orientation).
        height: u32,
        /// The largest pixel count accepted.
        max_pixels: u64,
    },

    /// Decoding and converting this image would need more memory than the budget allows;
    /// refused before any pixel buffer exists.
    #[error(
        "{}: decoding {width}×{height} pixels needs about {} of memory, above the budget of {} \
         (raise it with --max-memory-mib)",
        .path.display(),
        human_bytes(*.needed_bytes),
        human_bytes(*.budget_bytes)
    )]
    MemoryBudget {
        /// The photo.
        path: PathBuf,
        /// Width claimed by the header.
        width: u32,
        /// Height claimed by the header.
        height: u32,
        /// Estimated peak bytes for the decoded buffer plus the three f32 planes.
        needed_bytes: u64,
        /// The budget.
        budget_bytes: u64,
    },

    /// A decoder refused to go on because one of its own allocation limits was hit (the second
    /// line of defence behind [`LoadError::TooLarge`] and [`LoadError::MemoryBudget`]).
    #[error(
        "{}: the {format} decoder stopped at its memory limit: {message}",
        .path.display()
    )]
    DecoderLimit {
        /// The photo.
        path: PathBuf,
        /// "JPEG", "PNG", "TIFF" or "WebP".
        format: String,
        /// The decoder's message.
        message: String,
    },

    /// The data is truncated or corrupt.
    #[error(
        "{}: the {format} data is truncated or corrupt: {message}",
        .path.display()
    )]
    Decode {
        /// The photo.
        path: PathBuf,
        /// "JPEG", "PNG", "TIFF" or "WebP".
        format: String,
        /// What the decoder (or our own structure check) found.
        message: String,
    },

    /// The orientation metadata could not be read.
    #[error("{}: cannot read the EXIF orientation: {message}", .path.display())]
    Orientation {
        /// The photo.
        path: PathBuf,
        /// The decoder's message.
        message: String,
    },
}

impl LoadError {
    /// The photo this error is about.
    pub fn path(&self) -> &Path {
        match self {
            Self::Io { path, .. }
            | Self::FileTooLarge { path, .. }
            | Self::Empty { path }
            | Self::UnknownFormat { path }
            | Self::UnsupportedFormat { path, .. }
            | Self::UnsupportedFeature { path, .. }
            | Self::TooLarge { path, .. }
            | Self::MemoryBudget { path, .. }
            | Self::DecoderLimit { path, .. }
            | Self::Decode { path, .. }
            | Self::Orientation { path, .. } => path,
        }
    }
}

/// Any scarscope error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A photo could not be loaded.
    #[error(transparent)]
    Load(#[from] LoadError),

    /// A photo was loaded but could not be analysed.
    #[error("{}: cannot analyse: {source}", .path.display())]
    Analysis {
        /// The photo.
        path: PathBuf,
        /// Why.
        #[source]
        source: AnalysisError,
    },

    /// An output file could not be written.
    #[error(transparent)]
    Write(#[from] WriteError),
}

impl Error {
    /// The file this error is about: the photo, or the output that could not be written.
    pub fn path(&self) -> &Path {
        match self {
            Self::Load(e) => e.path(),
            Self::Analysis { path, .. } => path,
            Self::Write(e) => &e.path,
        }
    }
}

/// "10000 MP", "12.3 MP", "0.29 MP": whole numbers without a decimal so a limit reads as
/// typed; two decimals below 10 MP so a small limit and a size just above it stay distinct.
fn megapixels(pixels: u64) -> String {
    let mp = pixels as f64 / 1e6;
    let decimals = if mp < 10.0 { 2 } else { 1 };
    let text = format!("{mp:.decimals$}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text} MP")
}

/// Binary units, one decimal: "2.0 GiB", "300.0 MiB", "512 bytes".
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64;
    let mut unit = "bytes";
    for u in UNITS {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = u;
    }
    format!("{value:.1} {unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_large_message_names_file_size_and_limit() {
        let e = LoadError::TooLarge {
            path: PathBuf::from("photo.jpg"),
            width: 100_000,
            height: 100_000,
            max_pixels: 100_000_000,
        };
        assert_eq!(
            e.to_string(),
            "photo.jpg: header claims 100000×100000 pixels (10000 MP), above the limit of 100 MP \
             (raise it with --max-megapixels)"
        );
        assert_eq!(e.path(), Path::new("photo.jpg"));
    }

    #[test]
    fn analysis_error_names_the_photo_and_the_cause() {
        let e = Error::Analysis {
            path: PathBuf::from("tiny.png"),
            source: AnalysisError::TooSmall {
                width: 10,
                height: 10,
                min: 32,
            },
        };
        assert!(e
            .to_string()
            .starts_with("tiny.png: cannot analyse: the photo is 10×10 px"));
        assert_eq!(e.path(), Path::new("tiny.png"));
    }

    #[test]
    fn human_bytes_uses_binary_units() {
        assert_eq!(human_bytes(512), "512 bytes");
        assert_eq!(human_bytes(2 << 30), "2.0 GiB");
        assert_eq!(human_bytes(300 << 20), "300.0 MiB");
    }

    #[test]
    fn megapixels_keep_enough_decimals_to_tell_a_size_from_its_limit() {
        assert_eq!(megapixels(12_300_000), "12.3 MP");
        assert_eq!(megapixels(4_294_836_225), "4294.8 MP");
        assert_eq!(megapixels(290_000), "0.29 MP");
        assert_eq!(megapixels(300_000), "0.3 MP");
        assert_eq!(megapixels(100_000_000), "100 MP");
    }
}
