//! Study layer, first half: a study folder and its optional manifest → a checked plan of work.
//!
//! Input is `STUDY/<subject>/<session>/<view>.<ext>` plus `STUDY/study.toml`; output is a
//! [`Study`]: subjects in a stable order, each with its sessions in clinical order (manifest
//! dates, else natural sort of the folder names: `s2` before `s10`), the photos of each session
//! keyed by view (the file stem), the analysis parameters of every photo (command line over
//! session over subject over manifest defaults), and every oddity found on the way as a warning
//! or a [`Failure`] — never a crash. [`crate::batch`] then runs the plan.
//!
//! Hygiene: hidden entries, stray files, non-image files and empty folders are skipped with a
//! warning; symbolic links are followed only when they resolve inside the study (so a link out
//! of it is refused and a link loop is reported, not followed — and the walk has a fixed depth
//! of three, so nothing can make it hang). Names may be any bytes: outputs are named by
//! [`safe_name`], which cannot leave the output folder.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};
use sha2::{Digest, Sha256};

use crate::analyze::{AnalyzeParams, Calibration};

/// Name of the manifest file at the study root.
pub const MANIFEST_NAME: &str = "study.toml";

/// File extensions (lower case) taken as photos; the loader still checks the content.
pub const IMAGE_EXTENSIONS: [&str; 6] = ["jpg", "jpeg", "png", "tif", "tiff", "webp"];

/// Why a study cannot be planned at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StudyError {
    /// The study root cannot be read.
    #[error("{}: cannot read the study folder: {source}", .path.display())]
    Root {
        /// The study root as given.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The study root is not a folder.
    #[error("{}: is not a folder; give the study folder (STUDY/<subject>/<session>/<view>.jpg)", .path.display())]
    NotAFolder {
        /// The path given.
        path: PathBuf,
    },
    /// The manifest cannot be read.
    #[error("{}: cannot read the manifest: {source}", .path.display())]
    ManifestIo {
        /// The manifest.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The manifest is not valid; `line` and `key` say where.
    #[error("{}{}{}: {message}", .path.display(), .line.map(|l| format!(" line {l}")).unwrap_or_default(), .key.as_ref().map(|k| format!(", key `{k}`")).unwrap_or_default())]
    Manifest {
        /// The manifest.
        path: PathBuf,
        /// 1-based line of the offending value, when known.
        line: Option<usize>,
        /// Dotted key of the offending value, when known.
        key: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// `--shard` is not `I/N` with 1 ≤ I ≤ N.
    #[error("invalid shard `{0}`: expected I/N with 1 <= I <= N, e.g. 2/3")]
    Shard(String),
}

/// One thing that could not be processed: which file, at which stage, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Failure {
    /// The file or folder, relative to the study root (absolute with `--absolute-paths`).
    pub path: String,
    /// Stage that failed: "walk", "load", "analyze", "register", "track" or "write".
    pub stage: String,
    /// The cause in plain words.
    pub error: String,
}

/// Settings a manifest level (defaults, subject, session) or the command line may give.
/// `None` leaves the value to the level below.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Settings {
    /// Views to include (file stems); others are skipped with a warning.
    pub views: Option<Vec<String>>,
    /// Size of one camera pixel on the skin, mm.
    pub mm_per_px: Option<f64>,
    /// Key-light azimuth, degrees (DOMAIN.md §4 convention).
    pub light_azimuth_deg: Option<f64>,
    /// Key-light elevation, degrees above the skin.
    pub light_elevation_deg: Option<f64>,
    /// Ambient light as a fraction of the key light.
    pub ambient: Option<f64>,
    /// Share of the skin's smooth brightness read as tilt (0–1).
    pub tilt_share: Option<f64>,
    /// Target processing pixel size, mm.
    pub processing_mm_per_px: Option<f64>,
    /// Smallest scar depth kept, mm.
    pub min_depth_mm: Option<f64>,
    /// Detection threshold in noise σ.
    pub noise_k: Option<f64>,
    /// Smallest footprint diameter kept, mm.
    pub min_diameter_mm: Option<f64>,
}

impl Settings {
    /// `self` with every value `over` gives replaced by it.
    pub fn overridden_by(&self, over: &Settings) -> Settings {
        Settings {
            views: over.views.clone().or_else(|| self.views.clone()),
            mm_per_px: over.mm_per_px.or(self.mm_per_px),
            light_azimuth_deg: over.light_azimuth_deg.or(self.light_azimuth_deg),
            light_elevation_deg: over.light_elevation_deg.or(self.light_elevation_deg),
            ambient: over.ambient.or(self.ambient),
            tilt_share: over.tilt_share.or(self.tilt_share),
            processing_mm_per_px: over.processing_mm_per_px.or(self.processing_mm_per_px),
            min_depth_mm: over.min_depth_mm.or(self.min_depth_mm),
            noise_k: over.noise_k.or(self.noise_k),
            min_diameter_mm: over.min_diameter_mm.or(self.min_diameter_mm),
        }
    }

    /// Analysis parameters from manifest settings `m` and command-line settings `cli`
    /// (the command line wins); the calibration source says which one gave the scale.
    pub fn analyze_params(m: &Settings, cli: &Settings) -> AnalyzeParams {
        let s = m.overridden_by(cli);
        let d = AnalyzeParams::default();
        let calibration = match (cli.mm_per_px, m.mm_per_px) {
            (Some(v), _) => Calibration {
                mm_per_px: Some(v),
                source: "command line".into(),
            },
            (None, Some(v)) => Calibration {
                mm_per_px: Some(v),
                source: "manifest".into(),
            },
            (None, None) => d.calibration.clone(),
        };
        AnalyzeParams {
            calibration,
            light_azimuth_deg: s.light_azimuth_deg,
            light_elevation_deg: s.light_elevation_deg,
            ambient: s.ambient.unwrap_or(d.ambient),
            tilt_share: s.tilt_share.unwrap_or(d.tilt_share),
            processing_mm_per_px: s.processing_mm_per_px.unwrap_or(d.processing_mm_per_px),
            min_depth_mm: s.min_depth_mm.unwrap_or(d.min_depth_mm),
            noise_k: s.noise_k.unwrap_or(d.noise_k),
            min_diameter_mm: s.min_diameter_mm.unwrap_or(d.min_diameter_mm),
            ..d
        }
    }
}

/// A parsed `study.toml`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Manifest {
    /// The study's name, if given.
    pub name: Option<String>,
    /// SHA-256 of the manifest's bytes, lowercase hex.
    pub sha256: String,
    /// Settings for every photo.
    pub defaults: Settings,
    /// Per-subject overrides, keyed by the subject folder's name.
    pub subjects: BTreeMap<String, SubjectManifest>,
}

/// A subject's entry in the manifest.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SubjectManifest {
    /// Overrides for all of this subject's photos.
    pub settings: Settings,
    /// Per-session entries, keyed by the session folder's name.
    pub sessions: BTreeMap<String, SessionManifest>,
}

/// A session's entry in the manifest.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionManifest {
    /// Date of the session, `YYYY-MM-DD`.
    pub date: Option<String>,
    /// Overrides for this session's photos.
    pub settings: Settings,
}

fn de_checked<'de, D: Deserializer<'de>>(
    d: D,
    ok: fn(f64) -> bool,
    expected: &str,
) -> Result<Option<f64>, D::Error> {
    let v = f64::deserialize(d)?;
    if v.is_finite() && ok(v) {
        Ok(Some(v))
    } else {
        Err(serde::de::Error::custom(format!(
            "{v} is out of range: expected {expected}"
        )))
    }
}

fn de_mm_per_px<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    de_checked(
        d,
        |v| v > 0.0 && v < 10.0,
        "a pixel size above 0 and below 10 mm",
    )
}
fn de_azimuth<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    de_checked(d, |v| (-360.0..=360.0).contains(&v), "-360 to 360 degrees")
}
fn de_elevation<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    de_checked(d, |v| (1.0..=89.0).contains(&v), "1 to 89 degrees")
}
fn de_unit<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    de_checked(d, |v| (0.0..=1.0).contains(&v), "0 to 1")
}
fn de_positive<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    de_checked(d, |v| v > 0.0 && v < 1000.0, "a positive number below 1000")
}
fn de_views<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    let v = Vec::<String>::deserialize(d)?;
    if v.iter().any(|s| s.is_empty()) {
        return Err(serde::de::Error::custom("a view name cannot be empty"));
    }
    Ok(Some(v))
}
fn de_date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let s = String::deserialize(d)?;
    if valid_date(&s) {
        Ok(Some(s))
    } else {
        Err(serde::de::Error::custom(format!(
            "`{s}` is not a date of the form YYYY-MM-DD"
        )))
    }
}

/// `YYYY-MM-DD` with a plausible month and day (dates order sessions by string comparison).
fn valid_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let num = |r: std::ops::Range<usize>| s.get(r).and_then(|t| t.parse::<u32>().ok());
    let digits = b
        .iter()
        .enumerate()
        .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    matches!((num(5..7), num(8..10)), (Some(m), Some(d)) if digits && (1..=12).contains(&m) && (1..=31).contains(&d))
}

/// Declares a manifest table type: the shared settings keys plus `$extra` fields, unknown
/// keys refused, each value range-checked while parsing so errors carry the line.
macro_rules! settings_table {
    ($name:ident { $($extra:tt)* }) => {
        #[derive(Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct $name {
            #[serde(default, deserialize_with = "de_views")]
            views: Option<Vec<String>>,
            #[serde(default, deserialize_with = "de_mm_per_px")]
            mm_per_px: Option<f64>,
            #[serde(default, deserialize_with = "de_azimuth")]
            light_azimuth_deg: Option<f64>,
            #[serde(default, deserialize_with = "de_elevation")]
            light_elevation_deg: Option<f64>,
            #[serde(default, deserialize_with = "de_unit")]
            ambient: Option<f64>,
            #[serde(default, deserialize_with = "de_unit")]
            tilt_share: Option<f64>,
            #[serde(default, deserialize_with = "de_positive")]
            processing_mm_per_px: Option<f64>,
            #[serde(default, deserialize_with = "de_positive")]
            min_depth_mm: Option<f64>,
            #[serde(default, deserialize_with = "de_positive")]
            noise_k: Option<f64>,
            #[serde(default, deserialize_with = "de_positive")]
            min_diameter_mm: Option<f64>,
            $($extra)*
        }
        impl $name {
            fn settings(&self) -> Settings {
                Settings {
                    views: self.views.clone(),
                    mm_per_px: self.mm_per_px,
                    light_azimuth_deg: self.light_azimuth_deg,
                    light_elevation_deg: self.light_elevation_deg,
                    ambient: self.ambient,
                    tilt_share: self.tilt_share,
                    processing_mm_per_px: self.processing_mm_per_px,
                    min_depth_mm: self.min_depth_mm,
                    noise_k: self.noise_k,
                    min_diameter_mm: self.min_diameter_mm,
                }
            }
        }
    };
}

settings_table!(DefaultsTable {});
settings_table!(SubjectTable {
    #[serde(default)]
    sessions: BTreeMap<String, SessionTable>,
});
settings_table!(SessionTable {
    #[serde(default, deserialize_with = "de_date")]
    date: Option<String>,
});

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestFile {
    #[serde(default)]
    schema_version: Option<u32>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    defaults: DefaultsTable,
    #[serde(default)]
    subjects: BTreeMap<String, SubjectTable>,
}

impl Manifest {
    /// Parse manifest text; `path` is used in errors only.
    ///
    /// # Errors
    ///
    /// [`StudyError::Manifest`] with the line and dotted key of the first problem: a syntax
    /// error, an unknown key, a wrong type, a value out of range or an unsupported
    /// `schema_version`.
    pub fn parse(text: &str, path: &Path) -> Result<Manifest, StudyError> {
        let file: ManifestFile = toml::from_str(text).map_err(|e| {
            let (line, key) = match e.span() {
                Some(span) => locate(text, span.start),
                None => (None, None),
            };
            StudyError::Manifest {
                path: path.to_path_buf(),
                line,
                key,
                message: e.message().trim().to_string(),
            }
        })?;
        if let Some(v) = file.schema_version {
            if v != 1 {
                let (line, key) = text
                    .find("schema_version")
                    .map(|at| locate(text, at))
                    .unwrap_or((None, None));
                return Err(StudyError::Manifest {
                    path: path.to_path_buf(),
                    line,
                    key,
                    message: format!(
                        "schema_version {v} is not supported (this scarscope reads 1)"
                    ),
                });
            }
        }
        let subjects = file
            .subjects
            .iter()
            .map(|(id, s)| {
                let sessions = s
                    .sessions
                    .iter()
                    .map(|(name, ses)| {
                        (
                            name.clone(),
                            SessionManifest {
                                date: ses.date.clone(),
                                settings: ses.settings(),
                            },
                        )
                    })
                    .collect();
                (
                    id.clone(),
                    SubjectManifest {
                        settings: s.settings(),
                        sessions,
                    },
                )
            })
            .collect();
        Ok(Manifest {
            name: file.name,
            sha256: hex_sha256(text.as_bytes()),
            defaults: file.defaults.settings(),
            subjects,
        })
    }

    /// Settings of one session: defaults, then the subject's, then the session's.
    pub fn settings_for(&self, subject: &str, session: &str) -> Settings {
        let mut s = self.defaults.clone();
        if let Some(sub) = self.subjects.get(subject) {
            s = s.overridden_by(&sub.settings);
            if let Some(ses) = sub.sessions.get(session) {
                s = s.overridden_by(&ses.settings);
            }
        }
        s
    }

    /// The manifest's date of a session, if any.
    pub fn date_of(&self, subject: &str, session: &str) -> Option<&str> {
        self.subjects
            .get(subject)?
            .sessions
            .get(session)?
            .date
            .as_deref()
    }
}

/// 1-based line of byte `at`, and the dotted key written on that line (table header + key).
fn locate(text: &str, at: usize) -> (Option<usize>, Option<String>) {
    let at = at.min(text.len());
    let before = text.get(..at).unwrap_or("");
    let line_no = before.matches('\n').count() + 1;
    let mut header = String::new();
    let mut key = None;
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if i + 1 > line_no {
            break;
        }
        if t.starts_with('[') {
            header = t.trim_matches(|c| c == '[' || c == ']').trim().to_string();
            key = None;
        }
        if i + 1 == line_no {
            key = t
                .split_once('=')
                .map(|(k, _)| k.trim().trim_matches('"').to_string())
                .filter(|k| !k.is_empty() && !k.starts_with('['));
        }
    }
    let full = match (header.is_empty(), key) {
        (true, k) => k,
        (false, Some(k)) => Some(format!("{header}.{k}")),
        (false, None) => Some(header),
    };
    (Some(line_no), full)
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn hex_sha256(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// `--shard I/N`: process the subjects whose index `k` (0-based, in study order) has
/// `k % count == index - 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Shard {
    /// 1-based shard number.
    pub index: usize,
    /// Number of shards.
    pub count: usize,
}

impl Shard {
    /// Parse `I/N`.
    ///
    /// # Errors
    ///
    /// [`StudyError::Shard`] unless `1 <= I <= N`.
    pub fn parse(s: &str) -> Result<Shard, StudyError> {
        let bad = || StudyError::Shard(s.to_string());
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: usize = i.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if index == 0 || count == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }

    /// Whether the subject at study position `order` belongs to this shard.
    pub fn contains(&self, order: usize) -> bool {
        order % self.count == self.index - 1
    }
}

/// How a subject's sessions were ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionOrder {
    /// By the manifest's dates (all sessions have one).
    ManifestDates,
    /// By natural sort of the folder names.
    NaturalSort,
}

/// A planned study.
#[derive(Debug, Clone)]
pub struct Study {
    /// The study root as given.
    pub root: PathBuf,
    /// The study root, canonical (symbolic links resolved).
    pub root_abs: PathBuf,
    /// The manifest, if there is one.
    pub manifest: Option<Manifest>,
    /// Subjects in study order (natural sort of folder names).
    pub subjects: Vec<SubjectPlan>,
    /// Oddities at the study root (stray files, hidden entries, manifest entries without
    /// folder). Unreadable subject folders are failures of their subject.
    pub warnings: Vec<String>,
}

/// One subject's planned work.
#[derive(Debug, Clone)]
pub struct SubjectPlan {
    /// Position in study order, 0-based (shards and merges use it).
    pub order: usize,
    /// The folder name (lossy UTF-8).
    pub id: String,
    /// File-system-safe name for this subject's outputs.
    pub output_name: String,
    /// Sessions in clinical order.
    pub sessions: Vec<SessionPlan>,
    /// How they were ordered.
    pub session_order: SessionOrder,
    /// Views photographed in any session, in natural order.
    pub views: Vec<String>,
    /// Oddities in this subject's folders.
    pub warnings: Vec<String>,
    /// Photos or folders that cannot be processed (found while walking).
    pub failures: Vec<Failure>,
}

/// One session's planned work.
#[derive(Debug, Clone)]
pub struct SessionPlan {
    /// The folder name (lossy UTF-8).
    pub name: String,
    /// File-system-safe name for this session's outputs.
    pub output_name: String,
    /// Date from the manifest.
    pub date: Option<String>,
    /// Effective manifest settings (defaults ← subject ← session).
    pub settings: Settings,
    /// Photos, sorted by view.
    pub photos: Vec<PhotoPlan>,
}

/// One photo to analyse.
#[derive(Debug, Clone)]
pub struct PhotoPlan {
    /// The view: the file stem (lossy UTF-8).
    pub view: String,
    /// File-system-safe name for this view's outputs.
    pub output_name: String,
    /// Path relative to the study root.
    pub rel_path: PathBuf,
}

/// A file-system-safe name: letters and digits of any script, `-`, `_` and `.` kept, anything
/// else replaced by `_`; never empty, never starting with `.`, never a path. When anything was
/// changed, 8 hex digits of the raw name's SHA-256 are appended, so two different names never
/// map to the same output.
pub fn safe_name(name: &OsStr) -> String {
    let raw = name.as_encoded_bytes();
    let lossy = name.to_string_lossy();
    let mut out: String = lossy
        .chars()
        .map(|c| {
            if c.is_alphanumeric() && c != '\u{FFFD}' || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with('.') || out.is_empty() {
        out.insert(0, '_');
    }
    if out != lossy || matches!(lossy, std::borrow::Cow::Owned(_)) || out.chars().count() > 100 {
        let short: String = out.chars().take(100).collect();
        out = format!("{short}-{}", &hex_sha256(raw)[..8]);
    }
    out
}

/// Natural order of names: runs of digits compare by value (`s2 < s10`), the rest byte by
/// byte; exact ties fall back to the raw bytes so the order is total.
pub fn natural_cmp(a: &OsStr, b: &OsStr) -> Ordering {
    let (x, y) = (a.as_encoded_bytes(), b.as_encoded_bytes());
    let (mut i, mut j) = (0, 0);
    while i < x.len() && j < y.len() {
        if x[i].is_ascii_digit() && y[j].is_ascii_digit() {
            let si = i;
            while i < x.len() && x[i].is_ascii_digit() {
                i += 1;
            }
            let sj = j;
            while j < y.len() && y[j].is_ascii_digit() {
                j += 1;
            }
            let trim = |s: &[u8]| -> usize { s.iter().take_while(|&&c| c == b'0').count() };
            let (dx, dy) = (&x[si..i], &y[sj..j]);
            let (dx, dy) = (&dx[trim(dx)..], &dy[trim(dy)..]);
            let ord = dx.len().cmp(&dy.len()).then_with(|| dx.cmp(dy));
            if ord != Ordering::Equal {
                return ord;
            }
        } else {
            let ord = x[i].cmp(&y[j]);
            if ord != Ordering::Equal {
                return ord;
            }
            i += 1;
            j += 1;
        }
    }
    (x.len() - i).cmp(&(y.len() - j)).then_with(|| x.cmp(y))
}

/// What a directory entry is, once symbolic links are resolved inside the study.
enum Kind {
    Dir,
    File,
    Skip(String),
}

/// Classify `path`, following a symbolic link only when it resolves inside `root_abs`.
fn kind_of(path: &Path, root_abs: &Path) -> Kind {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) => return Kind::Skip(format!("cannot read it: {e}")),
    };
    if meta.file_type().is_symlink() {
        let target = match fs::canonicalize(path) {
            Ok(t) => t,
            Err(e) => {
                return Kind::Skip(format!(
                    "a symbolic link that is broken or loops ({e}); not followed"
                ))
            }
        };
        if !target.starts_with(root_abs) {
            return Kind::Skip("a symbolic link leading out of the study; not followed".into());
        }
        return match fs::metadata(&target) {
            Ok(m) if m.is_dir() => Kind::Dir,
            Ok(m) if m.is_file() => Kind::File,
            Ok(_) => Kind::Skip("not a regular file or folder".into()),
            Err(e) => Kind::Skip(format!("cannot read it: {e}")),
        };
    }
    if meta.is_dir() {
        Kind::Dir
    } else if meta.is_file() {
        Kind::File
    } else {
        Kind::Skip("not a regular file or folder".into())
    }
}

/// Entries of a folder in natural order of their names.
fn sorted_entries(dir: &Path) -> std::io::Result<Vec<OsString>> {
    let mut names = fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<std::io::Result<Vec<_>>>()?;
    names.sort_by(|a, b| natural_cmp(a, b));
    Ok(names)
}

fn is_hidden(name: &OsStr) -> bool {
    name.as_encoded_bytes().first() == Some(&b'.')
}

fn is_image(name: &Path) -> bool {
    name.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Relative path shown in reports.
fn shown(rel: &Path) -> String {
    rel.to_string_lossy().into_owned()
}

impl Study {
    /// Walk `root`, read its manifest, and plan every subject.
    ///
    /// # Errors
    ///
    /// [`StudyError`] only when nothing can be done: the root cannot be read or is not a
    /// folder, or the manifest is unreadable or invalid. Everything else becomes a warning or
    /// a [`Failure`] in the plan.
    pub fn plan(root: &Path) -> Result<Study, StudyError> {
        let root_err = |source| StudyError::Root {
            path: root.to_path_buf(),
            source,
        };
        let root_abs = fs::canonicalize(root).map_err(root_err)?;
        if !root_abs.is_dir() {
            return Err(StudyError::NotAFolder {
                path: root.to_path_buf(),
            });
        }
        let mpath = root.join(MANIFEST_NAME);
        let manifest = match fs::read(&mpath) {
            Ok(bytes) => {
                let text = String::from_utf8(bytes).map_err(|_| StudyError::Manifest {
                    path: mpath.clone(),
                    line: None,
                    key: None,
                    message: "the manifest is not UTF-8 text".into(),
                })?;
                Some(Manifest::parse(&text, &mpath)?)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(StudyError::ManifestIo {
                    path: mpath,
                    source,
                })
            }
        };
        let mut study = Study {
            root: root.to_path_buf(),
            root_abs,
            manifest,
            subjects: Vec::new(),
            warnings: Vec::new(),
        };
        for name in sorted_entries(root).map_err(root_err)? {
            let rel = PathBuf::from(&name);
            if name == MANIFEST_NAME {
                continue;
            }
            if is_hidden(&name) {
                study
                    .warnings
                    .push(format!("{}: hidden entry skipped", shown(&rel)));
                continue;
            }
            match kind_of(&root.join(&name), &study.root_abs) {
                Kind::Dir => {
                    let order = study.subjects.len();
                    let plan = study.plan_subject(order, &name);
                    study.subjects.push(plan);
                }
                Kind::File => study.warnings.push(format!(
                    "{}: stray file at the study root (subjects are folders); skipped",
                    shown(&rel)
                )),
                Kind::Skip(why) => study.warnings.push(format!("{}: {why}", shown(&rel))),
            }
        }
        if let Some(m) = &study.manifest {
            let ids: BTreeSet<&str> = study.subjects.iter().map(|s| s.id.as_str()).collect();
            for id in m.subjects.keys() {
                if !ids.contains(id.as_str()) {
                    study.warnings.push(format!(
                        "{MANIFEST_NAME}: subject `{id}` has no folder in the study"
                    ));
                }
            }
        }
        if study.subjects.is_empty() {
            study.warnings.push(
                "the study has no subject folders (expected STUDY/<subject>/<session>/<view>.jpg)"
                    .into(),
            );
        }
        Ok(study)
    }

    fn plan_subject(&self, order: usize, name: &OsStr) -> SubjectPlan {
        let id = name.to_string_lossy().into_owned();
        let rel = PathBuf::from(name);
        let mut plan = SubjectPlan {
            order,
            output_name: safe_name(name),
            id: id.clone(),
            sessions: Vec::new(),
            session_order: SessionOrder::NaturalSort,
            views: Vec::new(),
            warnings: Vec::new(),
            failures: Vec::new(),
        };
        let entries = match sorted_entries(&self.root.join(&rel)) {
            Ok(e) => e,
            Err(e) => {
                plan.failures.push(Failure {
                    path: shown(&rel),
                    stage: "walk".into(),
                    error: format!("cannot read the subject folder: {e}"),
                });
                return plan;
            }
        };
        for ses_name in entries {
            let srel = rel.join(&ses_name);
            if is_hidden(&ses_name) {
                plan.warnings
                    .push(format!("{}: hidden entry skipped", shown(&srel)));
                continue;
            }
            match kind_of(&self.root.join(&srel), &self.root_abs) {
                Kind::Dir => {
                    if let Some(s) = self.plan_session(&id, &srel, &ses_name, &mut plan) {
                        plan.sessions.push(s);
                    }
                }
                Kind::File => plan.warnings.push(format!(
                    "{}: stray file in a subject folder (sessions are folders); skipped",
                    shown(&srel)
                )),
                Kind::Skip(why) => plan.warnings.push(format!("{}: {why}", shown(&srel))),
            }
        }
        if plan.sessions.is_empty() {
            plan.warnings.push(format!(
                "{}: no session with photos; nothing to analyse",
                shown(&rel)
            ));
        }
        // Clinical order: the manifest's dates when every session has one.
        if !plan.sessions.is_empty() && plan.sessions.iter().all(|s| s.date.is_some()) {
            plan.sessions.sort_by(|a, b| {
                a.date
                    .cmp(&b.date)
                    .then_with(|| natural_cmp(a.name.as_ref(), b.name.as_ref()))
            });
            plan.session_order = SessionOrder::ManifestDates;
        } else if plan.sessions.iter().any(|s| s.date.is_some()) {
            plan.warnings.push(
                "only some sessions have a date in the manifest: sessions ordered by name".into(),
            );
        }
        let mut views: Vec<String> = plan
            .sessions
            .iter()
            .flat_map(|s| s.photos.iter().map(|p| p.view.clone()))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        views.sort_by(|a, b| natural_cmp(a.as_ref(), b.as_ref()));
        plan.views = views;
        plan
    }

    fn plan_session(
        &self,
        subject: &str,
        srel: &Path,
        ses_name: &OsStr,
        plan: &mut SubjectPlan,
    ) -> Option<SessionPlan> {
        let name = ses_name.to_string_lossy().into_owned();
        let settings = self
            .manifest
            .as_ref()
            .map(|m| m.settings_for(subject, &name))
            .unwrap_or_default();
        let date = self
            .manifest
            .as_ref()
            .and_then(|m| m.date_of(subject, &name))
            .map(str::to_string);
        let entries = match sorted_entries(&self.root.join(srel)) {
            Ok(e) => e,
            Err(e) => {
                plan.failures.push(Failure {
                    path: shown(srel),
                    stage: "walk".into(),
                    error: format!("cannot read the session folder: {e}"),
                });
                return None;
            }
        };
        let mut photos: BTreeMap<String, PhotoPlan> = BTreeMap::new();
        let mut outputs: BTreeMap<String, String> = BTreeMap::new();
        for fname in entries {
            let prel = srel.join(&fname);
            if is_hidden(&fname) {
                plan.warnings
                    .push(format!("{}: hidden entry skipped", shown(&prel)));
                continue;
            }
            match kind_of(&self.root.join(&prel), &self.root_abs) {
                Kind::File if is_image(&prel) => {
                    let stem = prel.file_stem().unwrap_or_default();
                    let view = stem.to_string_lossy().into_owned();
                    if let Some(wanted) = &settings.views {
                        if !wanted.contains(&view) {
                            plan.warnings.push(format!(
                                "{}: view `{view}` is not in the manifest's views; skipped",
                                shown(&prel)
                            ));
                            continue;
                        }
                    }
                    let out = safe_name(stem);
                    if let Some(first) = photos.get(&view) {
                        plan.failures.push(Failure {
                            path: shown(&prel),
                            stage: "walk".into(),
                            error: format!(
                                "a second photo of view `{view}` in this session (the first is {}); only the first is analysed",
                                shown(&first.rel_path)
                            ),
                        });
                        continue;
                    }
                    if let Some(other) = outputs.insert(out.clone(), view.clone()) {
                        plan.failures.push(Failure {
                            path: shown(&prel),
                            stage: "walk".into(),
                            error: format!("view `{view}` and view `{other}` would share output names; skipped"),
                        });
                        continue;
                    }
                    photos.insert(
                        view.clone(),
                        PhotoPlan {
                            view,
                            output_name: out,
                            rel_path: prel,
                        },
                    );
                }
                Kind::File => plan.warnings.push(format!(
                    "{}: not a photo (scarscope reads .jpg, .jpeg, .png, .tif, .tiff, .webp); skipped",
                    shown(&prel)
                )),
                Kind::Dir => plan.warnings.push(format!(
                    "{}: unexpected folder inside a session; skipped",
                    shown(&prel)
                )),
                Kind::Skip(why) => plan.warnings.push(format!("{}: {why}", shown(&prel))),
            }
        }
        if photos.is_empty() {
            plan.warnings.push(format!(
                "{}: empty session (no photos); skipped",
                shown(srel)
            ));
            return None;
        }
        if let Some(wanted) = &settings.views {
            for v in wanted {
                if !photos.contains_key(v) {
                    plan.warnings.push(format!(
                        "{}: no photo of view `{v}` listed in the manifest",
                        shown(srel)
                    ));
                }
            }
        }
        let mut photos: Vec<PhotoPlan> = photos.into_values().collect();
        photos.sort_by(|a, b| natural_cmp(a.view.as_ref(), b.view.as_ref()));
        Some(SessionPlan {
            output_name: safe_name(ses_name),
            name,
            date,
            settings,
            photos,
        })
    }

    /// Number of photos planned over all subjects.
    pub fn photo_count(&self) -> usize {
        self.subjects
            .iter()
            .flat_map(|s| &s.sessions)
            .map(|s| s.photos.len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_sort_puts_s2_before_s10_and_is_total() {
        let mut v: Vec<OsString> = ["s10", "s2", "s1", "S1", "s02", "a"]
            .iter()
            .map(OsString::from)
            .collect();
        v.sort_by(|a, b| natural_cmp(a, b));
        let got: Vec<_> = v.iter().map(|s| s.to_string_lossy().into_owned()).collect();
        assert_eq!(got, ["S1", "a", "s1", "s02", "s2", "s10"]);
    }

    #[test]
    fn safe_name_keeps_plain_names_and_neutralises_the_rest() {
        assert_eq!(safe_name(OsStr::new("S01")), "S01");
        assert_eq!(safe_name(OsStr::new("left_cheek")), "left_cheek");
        assert_eq!(safe_name(OsStr::new("Zoë")), "Zoë");
        for odd in ["..", ".", "a/b", "a\\b", "x:y", "", "-", "a b"] {
            let s = safe_name(OsStr::new(odd));
            assert!(
                !s.contains('/') && !s.contains('\\') && !s.starts_with('.'),
                "{odd:?} → {s}"
            );
            assert!(!s.is_empty());
        }
        assert_ne!(safe_name(OsStr::new("a b")), safe_name(OsStr::new("a_b")));
    }

    #[cfg(unix)]
    #[test]
    fn safe_name_of_non_utf8_bytes_is_unique_and_safe() {
        use std::os::unix::ffi::OsStrExt;
        let a = safe_name(OsStr::from_bytes(b"sub\xffject"));
        let b = safe_name(OsStr::from_bytes(b"sub\xfeject"));
        assert_ne!(a, b);
        assert!(a.starts_with("sub_ject-"));
    }

    #[test]
    fn manifest_errors_name_the_line_and_the_key() {
        let text = "schema_version = 1\n[defaults]\nviews = [\"a\"]\n\n[subjects.S01.sessions.s1]\ndate = \"2026-01-11\"\nmm_per_px = -0.05\n";
        let e = Manifest::parse(text, Path::new("study.toml")).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("line 7"), "{msg}");
        assert!(msg.contains("subjects.S01.sessions.s1.mm_per_px"), "{msg}");
        let text = "[defaults]\nmm_per_pix = 0.05\n";
        let msg = Manifest::parse(text, Path::new("m.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("line 2") && msg.contains("mm_per_pix"),
            "{msg}"
        );
        let text = "[subjects.S01.sessions.s1]\ndate = \"11/01/2026\"\n";
        let msg = Manifest::parse(text, Path::new("m.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("line 2") && msg.contains("YYYY-MM-DD"),
            "{msg}"
        );
    }

    #[test]
    fn manifest_levels_override_in_order() {
        let text = "[defaults]\nmm_per_px = 0.1\nnoise_k = 4.0\n[subjects.A]\nmm_per_px = 0.2\n[subjects.A.sessions.s2]\nmm_per_px = 0.3\ndate = \"2026-02-01\"\n";
        let m = Manifest::parse(text, Path::new("m")).expect("valid");
        assert_eq!(m.settings_for("A", "s2").mm_per_px, Some(0.3));
        assert_eq!(m.settings_for("A", "s1").mm_per_px, Some(0.2));
        assert_eq!(m.settings_for("B", "s1").mm_per_px, Some(0.1));
        assert_eq!(m.settings_for("A", "s2").noise_k, Some(4.0));
        assert_eq!(m.date_of("A", "s2"), Some("2026-02-01"));
        let cli = Settings {
            mm_per_px: Some(0.05),
            ..Default::default()
        };
        let p = Settings::analyze_params(&m.settings_for("A", "s2"), &cli);
        assert_eq!(p.calibration.mm_per_px, Some(0.05));
        assert_eq!(p.calibration.source, "command line");
        let p = Settings::analyze_params(&m.settings_for("A", "s2"), &Settings::default());
        assert_eq!(p.calibration.source, "manifest");
        assert_eq!(p.noise_k, 4.0);
    }

    #[test]
    fn synth_manifest_parses() {
        let text = include_str!("../fixtures/study/study.toml");
        let m = Manifest::parse(text, Path::new("study.toml")).expect("the demo manifest parses");
        assert_eq!(
            m.defaults.views.as_deref(),
            Some(&["left_cheek".to_string()][..])
        );
        assert!(m.date_of("S01", "s3").is_some());
    }

    #[test]
    fn shards_partition_the_subjects() {
        assert!(Shard::parse("0/3").is_err());
        assert!(Shard::parse("4/3").is_err());
        assert!(Shard::parse("x").is_err());
        let shards: Vec<Shard> = (1..=3)
            .map(|i| Shard::parse(&format!("{i}/3")).expect("valid"))
            .collect();
        for k in 0..10 {
            assert_eq!(shards.iter().filter(|s| s.contains(k)).count(), 1);
        }
    }
}
