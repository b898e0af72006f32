//! The `batch` documents: one `subjects/<id>.json` per subject (sessions in order, per view the
//! analysis of every session and the tracks of each scar over them), one `study.json`
//! (summary per subject and session, every failure), and the tidy `scars.csv`.
//!
//! `study.json` and `scars.csv` are built from the subject documents alone (plus the walk's
//! study-level warnings), which is what lets `--resume` skip finished subjects and `merge`
//! rebuild exactly what a single run writes from shard outputs. Neither needs every document
//! at once: `study.json` from one small [`SubjectDigest`] per subject, `scars.csv` from one
//! subject's rows ([`scars_csv_rows`]) at a time.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{AnalyzeDoc, Tool};
use crate::register::Registration;
use crate::study::{Failure, SessionOrder, Settings, Shard};
use crate::track::{ChangeSummary, Track, TrackParams};

/// Whether a photo was analysed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PhotoStatus {
    /// Analysed; `analysis` holds the result.
    Analysed,
    /// The photo exists but could not be loaded or analysed (see the subject's `failures`).
    Failed,
    /// The session has no photo of this view.
    Missing,
}

/// One session of a subject, in clinical order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SessionEntry {
    /// The session folder's name.
    pub session: String,
    /// Its date from the manifest (`YYYY-MM-DD`), if given.
    pub date: Option<String>,
    /// Photos found in it (one per view).
    pub photos: usize,
}

/// One view in one session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ViewSession {
    /// The session folder's name.
    pub session: String,
    /// Analysed, failed or missing.
    pub status: PhotoStatus,
    /// The overlay image, relative to the output folder.
    pub overlay: Option<String>,
    /// This photo's pixels → the view's baseline photo's pixels (identity for the baseline;
    /// null when the photo could not be registered, see `failures`).
    pub registration: Option<Registration>,
    /// This photo's relief scale against the baseline photo's, measured on the healthy skin
    /// both show (`change::relief_gain`); null for the baseline, when the photo was not
    /// registered, or when it could not be measured.
    #[serde(default)]
    pub relief_gain: Option<crate::change::ReliefGain>,
    /// The `analyze` document of the photo (its `input.path` relative to the study root
    /// unless `--absolute-paths`).
    pub analysis: Option<AnalyzeDoc>,
}

/// How the scars of a view were tracked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TrackingInfo {
    /// "tracked" (every session with a photo of this view), "partial" (some sessions could
    /// not be analysed or registered; `note` says which) or "unavailable" (no photo).
    pub status: String,
    /// Why sessions are missing from the tracks.
    pub note: Option<String>,
    /// The baseline session: the first whose photo was analysed and registrable.
    pub baseline: Option<String>,
    /// Sessions the tracks cover, in order: `observations[i]`, `status[i]`, `changes[i]` of a
    /// track and `summaries[].session == i` refer to `sessions[i]`.
    pub sessions: Vec<String>,
    /// Parameters of tracking and of the change-status rule.
    pub parameters: TrackParams,
}

/// One view of a subject over all sessions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ViewDoc {
    /// The view (file stem).
    pub view: String,
    /// One entry per session of the subject, in the subject's session order.
    pub sessions: Vec<ViewSession>,
    /// Which sessions the tracks cover.
    pub tracking: TrackingInfo,
    /// Each scar followed over the tracked sessions, with per-session status and change
    /// since baseline.
    pub tracks: Vec<Track>,
    /// Per tracked session after baseline: counts by status and total changes.
    pub summaries: Vec<ChangeSummary>,
}

/// What every batch document records about its provenance (audit trail).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Provenance {
    /// SHA-256 of `study.toml`, if the study has one.
    pub manifest_sha256: Option<String>,
    /// Settings given on the command line (they override the manifest).
    pub overrides: Settings,
    /// Whether paths are absolute (`--absolute-paths`) rather than relative to the study root.
    pub absolute_paths: bool,
    /// Largest photo accepted, pixels.
    pub max_pixels: u64,
}

/// `subjects/<id>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SubjectDoc {
    /// [`super::SCHEMA_VERSION`].
    pub schema_version: String,
    /// The program that wrote it.
    pub tool: Tool,
    /// The subject folder's name.
    pub subject: String,
    /// Position of the subject in the study (natural order of folder names), 0-based.
    pub order: usize,
    /// File-system-safe name its outputs carry.
    pub output_name: String,
    /// SHA-256 over everything this document depends on: tool version, inputs' SHA-256s,
    /// manifest hash, parameters, the walk's findings. `--resume` compares it.
    pub fingerprint: String,
    /// Manifest hash, command-line settings, path mode.
    pub provenance: Provenance,
    /// How sessions were ordered.
    pub session_order: SessionOrder,
    /// Sessions in order; the first is the baseline.
    pub sessions: Vec<SessionEntry>,
    /// Per view: every session's analysis and the tracks.
    pub views: Vec<ViewDoc>,
    /// Things the reader must know (skipped files, empty sessions, ...).
    pub warnings: Vec<String>,
    /// What could not be processed.
    pub failures: Vec<Failure>,
}

/// One session in the study summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SessionSummary {
    /// The session folder's name.
    pub session: String,
    /// Date from the manifest.
    pub date: Option<String>,
    /// Photos found.
    pub photos: usize,
    /// Photos analysed.
    pub analysed: usize,
    /// Scars found over all views.
    pub scars: usize,
    /// Their total area, mm² (null if any analysed photo is uncalibrated).
    pub total_area_mm2: Option<f64>,
}

/// One subject in the study summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SubjectSummary {
    /// The subject folder's name.
    pub subject: String,
    /// Its document, relative to the output folder.
    pub document: String,
    /// The document's fingerprint.
    pub fingerprint: String,
    /// Views photographed.
    pub views: Vec<String>,
    /// Sessions in order.
    pub sessions: Vec<SessionSummary>,
    /// Number of failures.
    pub failures: usize,
    /// Number of warnings.
    pub warnings: usize,
}

/// Totals over the study (or shard).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Totals {
    /// Subjects.
    pub subjects: usize,
    /// Sessions with photos.
    pub sessions: usize,
    /// Photos found.
    pub photos: usize,
    /// Photos analysed.
    pub analysed: usize,
    /// Failures (photos or folders).
    pub failures: usize,
    /// Scars found over all photos.
    pub scars: usize,
}

/// The study itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StudyInfo {
    /// The study folder: its name, or its absolute path with `--absolute-paths`.
    pub root: String,
    /// The manifest's `name`.
    pub name: Option<String>,
}

/// `study.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StudyDoc {
    /// [`super::SCHEMA_VERSION`].
    pub schema_version: String,
    /// The program that wrote it.
    pub tool: Tool,
    /// The study.
    pub study: StudyInfo,
    /// Manifest hash, command-line settings, path mode.
    pub provenance: Provenance,
    /// Which share of the subjects this output holds; null for a whole study (or a merge).
    pub shard: Option<Shard>,
    /// Totals.
    pub totals: Totals,
    /// Study-level warnings (stray files, hidden entries, manifest entries without folder).
    pub warnings: Vec<String>,
    /// Subjects in study order.
    pub subjects: Vec<SubjectSummary>,
    /// Every failure, subject by subject, each with its path, stage and error.
    pub failures: Vec<Failure>,
}

/// Path of a subject's document inside the output folder.
pub fn subject_doc_rel(output_name: &str) -> String {
    format!("subjects/{output_name}.json")
}

/// Summarise one subject.
pub fn summarize_subject(d: &SubjectDoc) -> SubjectSummary {
    let sessions = d
        .sessions
        .iter()
        .enumerate()
        .map(|(k, s)| {
            let analyses: Vec<&AnalyzeDoc> = d
                .views
                .iter()
                .filter_map(|v| v.sessions.get(k).and_then(|vs| vs.analysis.as_ref()))
                .collect();
            let total_area_mm2 = analyses
                .iter()
                .map(|a| a.summary.total_area_mm2)
                .sum::<Option<f64>>()
                .filter(|_| !analyses.is_empty());
            SessionSummary {
                session: s.session.clone(),
                date: s.date.clone(),
                photos: s.photos,
                analysed: analyses.len(),
                scars: analyses.iter().map(|a| a.summary.count).sum(),
                total_area_mm2,
            }
        })
        .collect();
    SubjectSummary {
        subject: d.subject.clone(),
        document: subject_doc_rel(&d.output_name),
        fingerprint: d.fingerprint.clone(),
        views: d.views.iter().map(|v| v.view.clone()).collect(),
        sessions,
        failures: d.failures.len(),
        warnings: d.warnings.len(),
    }
}

/// What `study.json` needs of one subject: its summary and its failures. A few hundred bytes
/// whatever the subject's size, so a run keeps one per subject instead of whole documents.
#[derive(Debug, Clone, PartialEq)]
pub struct SubjectDigest {
    /// Position of the subject in the study ([`SubjectDoc::order`]).
    pub order: usize,
    /// File-system-safe name of its outputs ([`SubjectDoc::output_name`]).
    pub output_name: String,
    /// Its line in `study.json`.
    pub summary: SubjectSummary,
    /// Its failures, listed again in `study.json`.
    pub failures: Vec<Failure>,
}

impl SubjectDigest {
    /// Digest a subject's document.
    pub fn of(d: &SubjectDoc) -> Self {
        SubjectDigest {
            order: d.order,
            output_name: d.output_name.clone(),
            summary: summarize_subject(d),
            failures: d.failures.clone(),
        }
    }
}

/// Build `study.json` from the subjects' digests (in study order) and the study-level facts.
pub fn study_doc<'a>(
    study: StudyInfo,
    provenance: Provenance,
    shard: Option<Shard>,
    warnings: Vec<String>,
    subjects: impl IntoIterator<Item = &'a SubjectDigest>,
) -> StudyDoc {
    let subjects: Vec<&SubjectDigest> = subjects.into_iter().collect();
    let summaries: Vec<SubjectSummary> = subjects.iter().map(|d| d.summary.clone()).collect();
    let failures: Vec<Failure> = subjects
        .iter()
        .flat_map(|d| d.failures.iter().cloned())
        .collect();
    let sessions = summaries.iter().flat_map(|s| &s.sessions);
    let totals = Totals {
        subjects: subjects.len(),
        sessions: sessions.clone().count(),
        photos: sessions.clone().map(|s| s.photos).sum(),
        analysed: sessions.clone().map(|s| s.analysed).sum(),
        failures: failures.len(),
        scars: sessions.map(|s| s.scars).sum(),
    };
    StudyDoc {
        schema_version: super::SCHEMA_VERSION.into(),
        tool: Tool::current(),
        study,
        provenance,
        shard,
        totals,
        warnings,
        subjects: summaries,
        failures,
    }
}

/// Header of `scars.csv`; units are in the column names.
pub const CSV_HEADER: &str = "subject,session,session_index,session_date,view,scar_id,track_id,\
status_vs_baseline,area_change_mm2,depth_change_mm,\
centroid_x_px,centroid_y_px,area_px,area_mm2,equivalent_diameter_mm,depth_mm,mean_depth_mm,\
volume_mm3,depth_uncertainty_mm,depth_px,type,type_confidence,redness_od_x100,pigment_od_x100,\
floor_flatness,mm_per_px,photo";

/// Quote a CSV field when it needs it (RFC 4180).
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn opt(v: Option<f64>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

/// The rows of one subject in the tidy table `scars.csv` (after [`CSV_HEADER`] and a newline,
/// subjects in study order): one row per scar per session per view, each ending in a newline.
/// `track_id`, `status_vs_baseline` and the changes are empty where the session was not
/// tracked (and the changes also where the scar has no baseline counterpart).
pub fn scars_csv_rows(d: &SubjectDoc) -> String {
    let mut out = String::new();
    for v in &d.views {
        for (k, vs) in v.sessions.iter().enumerate() {
            let Some(a) = &vs.analysis else { continue };
            let date = d.sessions.get(k).and_then(|s| s.date.clone());
            for s in &a.scars {
                let track = track_of(v, &vs.session, s.id);
                let status = track
                    .and_then(|(t, i)| t.status.get(i).copied().flatten())
                    .map(|st| st.as_str())
                    .unwrap_or_default();
                let change = track.and_then(|(t, i)| t.changes.get(i).cloned().flatten());
                let row = [
                    csv_field(&d.subject),
                    csv_field(&vs.session),
                    k.to_string(),
                    date.clone().unwrap_or_default(),
                    csv_field(&v.view),
                    s.id.to_string(),
                    track
                        .map(|(t, _)| t.track_id.to_string())
                        .unwrap_or_default(),
                    status.to_string(),
                    opt(change.as_ref().and_then(|c| c.area_change_mm2)),
                    opt(change.as_ref().and_then(|c| c.depth_change_mm)),
                    s.centroid_px[0].to_string(),
                    s.centroid_px[1].to_string(),
                    s.area_px.to_string(),
                    opt(s.area_mm2),
                    opt(s.equivalent_diameter_mm),
                    opt(s.depth_mm),
                    opt(s.mean_depth_mm),
                    opt(s.volume_mm3),
                    opt(s.depth_uncertainty_mm),
                    s.depth_px.to_string(),
                    s.kind.as_str().to_string(),
                    s.type_confidence.to_string(),
                    s.redness.to_string(),
                    s.pigment.to_string(),
                    s.floor_flatness.to_string(),
                    opt(a.calibration.mm_per_px),
                    csv_field(&a.input.path),
                ];
                out.push_str(&row.join(","));
                out.push('\n');
            }
        }
    }
    out
}

/// The track a scar of `session` belongs to, if that session was tracked.
/// Returns the track and the session's index in it.
fn track_of<'a>(v: &'a ViewDoc, session: &str, scar_id: u32) -> Option<(&'a Track, usize)> {
    let i = v.tracking.sessions.iter().position(|s| s == session)?;
    v.tracks.iter().find_map(|t| match t.observations.get(i) {
        Some(Some(o)) if o.scar_id == scar_id => Some((t, i)),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_with_separators_are_quoted() {
        assert_eq!(csv_field("S01"), "S01");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(CSV_HEADER.split(',').count(), 27);
    }
}
