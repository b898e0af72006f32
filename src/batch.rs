//! Study layer, second half: runs one subject of a planned [`Study`] — every view of every
//! session loaded, analysed and drawn in turn (one full-resolution photo in memory at a time;
//! of the pixels only the baseline's small registration plane and its relief and label maps
//! are kept), registered onto the view's baseline ([`crate::register`]) and tracked over the
//! sessions ([`crate::track`]), each change measured paired as `compare` does
//! ([`crate::change`]), then the subject's [`SubjectDoc`] built. The caller decides
//! which subjects run where (threads, shards, resume) and writes the documents.
//!
//! A subject's [`fingerprint`] hashes everything its outputs depend on, so a finished subject
//! can be recognised and skipped by `--resume`.
//!
//! Memory is bounded by the subjects in flight, not by the study: once a subject's document
//! is written, a run keeps only its [`Kept`] (summary and failures, for `study.json`), and
//! [`write_scars_csv`] streams `scars.csv` at the end by reading the written documents back
//! one at a time.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use serde::Serialize;

use ndarray::Array2;

use crate::analyze::{
    analyze_keeping_relief_timed, processing_factor, Analysis, AnalyzeParams, ReliefMap,
};
use crate::change::{relief_gain, SessionMaps};
use crate::load::{decode_bytes, LoadLimits, PlaneSource, MAX_FILE_BYTES};
use crate::pitfit::PitFit;
use crate::register::{register_scaled, RegisterParams, Registration, RegistrationPlane};
use crate::relief::ShadingCosines;
use crate::report::overlay::{draw_overlay, write_png};
use crate::report::study::{
    scars_csv_rows, subject_doc_rel, PhotoStatus, Provenance, SessionEntry, SubjectDigest,
    SubjectDoc, TrackingInfo, ViewDoc, ViewSession, CSV_HEADER,
};
use crate::report::{analyze_doc, write_atomic_with, AnalyzeDoc, Tool, WriteError, SCHEMA_VERSION};
use crate::study::{hex_sha256, Failure, Settings, Study, SubjectPlan};
use crate::timings::Timings;
use crate::track::{track_series_with_pairs, PairedFigures, SessionInput, TrackParams};

/// How a batch runs, beyond the study itself.
#[derive(Debug, Clone)]
pub struct BatchConfig {
    /// Settings from the command line; they override the manifest.
    pub overrides: Settings,
    /// Loader limits.
    pub limits: LoadLimits,
    /// Record absolute paths instead of paths relative to the study root.
    pub absolute_paths: bool,
    /// Output folder.
    pub out: PathBuf,
    /// Admission of photos to their heavy section, shared by the jobs of a run.
    pub gate: Arc<PhotoGate>,
}

/// Admission of photos to their heavy section — from the decoded photo to its overlay and
/// registration plane: the analysis planes, their transients, the overlay's planes. A
/// run's memory is the sum of what its jobs hold at the same moment, and a photo's heavy
/// section grows with its processing plane (pixels after the analysis' reduction). In a
/// study that mixes sizes (a pixel size just above or below a multiple of the processing
/// scale halves the reduction), a long run sooner or later has two of its largest photos
/// at their peak together, which a short run rarely does: peak memory then grows with the
/// study's length. The gate admits a photo while the processing pixels in flight, its own
/// included, stay within the largest photo seen plus `jobs − 1` times the mean photo
/// seen. Photos of one size never wait; a photo much larger than the mean waits while
/// another such photo is in its heavy section. A job alone always enters. Scheduling only:
/// no result depends on it.
#[derive(Debug)]
pub struct PhotoGate {
    jobs: u64,
    state: Mutex<GateState>,
    freed: Condvar,
}

/// What the gate knows: processing pixels in flight, and of the photos admitted so far the
/// largest, the sum and the count.
#[derive(Debug, Default)]
struct GateState {
    in_flight: u64,
    largest: u64,
    sum: u64,
    count: u64,
}

impl PhotoGate {
    /// A gate for `jobs` parallel jobs.
    pub fn new(jobs: usize) -> Self {
        PhotoGate {
            jobs: jobs.max(1) as u64,
            state: Mutex::new(GateState::default()),
            freed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wait until a photo of `weight` processing pixels may enter its heavy section; the
    /// returned pass lets the next one in when dropped (also when unwinding).
    ///
    /// On a rayon worker the wait runs the pool's pending parallel work meanwhile (the
    /// admitted photos' row and tile tasks), so the thread is not lost to the run. Call it
    /// only where no photo of this gate can be suspended below the caller on the same
    /// thread: from a job at the bottom of its worker's stack (as `batch` runs each lane,
    /// one per worker, with [`rayon::ThreadPool::broadcast`]) or from outside any pool.
    /// Never from inside a task another job could be waiting for (e.g. one subject of a
    /// `par_iter` over subjects): a worker waiting in a join could take that task on top
    /// of an admitted photo, and the task would wait here for the photo it buried.
    pub fn enter(&self, weight: u64) -> GatePass<'_> {
        self.record(weight);
        loop {
            if let Some(pass) = self.admit(&mut self.lock(), weight) {
                return pass;
            }
            // On a worker: help with the admitted photos' parallel work, and when there is
            // none sleep until a pass is returned or briefly (new work in the pool wakes
            // nobody here). Outside a pool: sleep until a pass is returned.
            let patience = match rayon::yield_now() {
                Some(rayon::Yield::Executed) => continue,
                Some(rayon::Yield::Idle) => Some(std::time::Duration::from_millis(1)),
                None => None,
            };
            let s = self.lock();
            if !self.fits(&s, weight) {
                match patience {
                    Some(d) => drop(self.freed.wait_timeout(s, d)),
                    None => drop(self.freed.wait(s)),
                }
            }
        }
    }

    /// Count a photo of `weight` among those seen.
    fn record(&self, weight: u64) {
        let mut s = self.lock();
        s.largest = s.largest.max(weight);
        s.sum += weight;
        s.count += 1;
    }

    /// Admit a recorded photo of `weight` if it fits now.
    #[cfg(test)]
    fn try_admit(&self, weight: u64) -> Option<GatePass<'_>> {
        self.admit(&mut self.lock(), weight)
    }

    /// Whether a photo of `weight` fits beside the photos in flight with the state `s`.
    fn fits(&self, s: &GateState, weight: u64) -> bool {
        let mean = s.sum as f64 / s.count.max(1) as f64;
        let budget = s.largest as f64 + (self.jobs - 1) as f64 * mean;
        s.in_flight == 0 || (s.in_flight + weight) as f64 <= budget
    }

    /// Admit a recorded photo of `weight` if it fits with the state `s`.
    fn admit(&self, s: &mut GateState, weight: u64) -> Option<GatePass<'_>> {
        self.fits(s, weight).then(|| {
            s.in_flight += weight;
            GatePass { gate: self, weight }
        })
    }
}

/// A photo's admission to its heavy section ([`PhotoGate::enter`]).
#[derive(Debug)]
pub struct GatePass<'a> {
    gate: &'a PhotoGate,
    weight: u64,
}

impl Drop for GatePass<'_> {
    fn drop(&mut self) {
        self.gate.lock().in_flight -= self.weight;
        self.gate.freed.notify_all();
        return_free_memory();
    }
}

/// Hand the free pages of the allocator's heaps back to the system once a photo's heavy
/// section is over: glibc keeps freed planes in per-thread heaps, so without this the resident
/// size of a 2-job run creeps up to both jobs' largest moments ever. A lower mmap threshold
/// did the same but made every plane allocation fault in fresh pages (batch 40 % slower).
fn return_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only releases free memory of the allocator; it has no
    // memory-safety preconditions and is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}

impl BatchConfig {
    /// The provenance block every batch document carries.
    pub fn provenance(&self, study: &Study) -> Provenance {
        Provenance {
            manifest_sha256: study.manifest.as_ref().map(|m| m.sha256.clone()),
            overrides: self.overrides.clone(),
            absolute_paths: self.absolute_paths,
            max_pixels: self.limits.max_pixels,
        }
    }
}

/// How a path inside the study is written in reports.
pub fn shown_path(study: &Study, cfg: &BatchConfig, rel: &Path) -> PathBuf {
    if cfg.absolute_paths {
        study.root_abs.join(rel)
    } else {
        rel.to_path_buf()
    }
}

/// SHA-256 of a photo, or a description of why it cannot be read (part of the fingerprint).
fn file_hash(path: &Path) -> String {
    match std::fs::read(path) {
        Ok(b) => hex_sha256(&b),
        Err(e) => format!("unreadable: {:?}", e.kind()),
    }
}

/// A session in the fingerprint: name, date, settings, and (view, path, SHA-256) per photo.
type SessionPrint<'a> = (
    &'a str,
    Option<&'a str>,
    &'a Settings,
    Vec<(&'a str, String, String)>,
);

#[derive(Serialize)]
struct FingerprintInput<'a> {
    tool: Tool,
    schema_version: &'static str,
    subject: &'a str,
    order: usize,
    output_name: &'a str,
    provenance: Provenance,
    root: Option<String>,
    sessions: Vec<SessionPrint<'a>>,
    warnings: &'a [String],
    failures: &'a [Failure],
}

/// Hash of everything a subject's outputs depend on: tool and schema version, manifest hash,
/// command-line settings, path mode, each photo's path and SHA-256 with its settings, and the
/// walk's warnings and failures. Reads every photo of the subject (hashing only).
pub fn fingerprint(study: &Study, plan: &SubjectPlan, cfg: &BatchConfig) -> String {
    let input = FingerprintInput {
        tool: Tool::current(),
        schema_version: SCHEMA_VERSION,
        subject: &plan.id,
        order: plan.order,
        output_name: &plan.output_name,
        provenance: cfg.provenance(study),
        root: cfg
            .absolute_paths
            .then(|| study.root_abs.to_string_lossy().into_owned()),
        sessions: plan
            .sessions
            .iter()
            .map(|s| {
                let photos = s
                    .photos
                    .iter()
                    .map(|p| {
                        (
                            p.view.as_str(),
                            p.rel_path.to_string_lossy().into_owned(),
                            file_hash(&study.root.join(&p.rel_path)),
                        )
                    })
                    .collect();
                (s.name.as_str(), s.date.as_deref(), &s.settings, photos)
            })
            .collect(),
        warnings: &plan.warnings,
        failures: &plan.failures,
    };
    hex_sha256(&serde_json::to_vec(&input).unwrap_or_default())
}

/// The `stage` of a failure to write an output (not the input's fault: `--resume` redoes it).
pub const WRITE_STAGE: &str = "write";

/// Path of the overlay of one photo, relative to the output folder.
pub fn overlay_rel(subject: &str, session: &str, view: &str) -> String {
    format!("overlays/{subject}/{session}/{view}.png")
}

/// What a photo leaves for its view: its analysis document, its registration plane (or why
/// it has none) and its maps for paired change measurement.
struct PhotoResult {
    doc: AnalyzeDoc,
    plane: Result<RegistrationPlane, Failure>,
    maps: ViewMaps,
}

/// The relief and label maps of one analysed photo at its processing resolution: what
/// measuring a change over the common support of two sessions needs ([`crate::change`]).
/// `batch` keeps the baseline's while the view's later sessions run, and a later session's
/// only until its scars' changes are measured.
struct ViewMaps {
    height: Array2<f32>,
    labels: Array2<u32>,
    scar_labels: Vec<u32>,
    cosines: ShadingCosines,
    pits: Vec<Option<PitFit>>,
    factor: usize,
    unit_per_px: f64,
    light_azimuth_deg: f64,
}

impl ViewMaps {
    /// Take the label map out of `a` (which is dropped after this), keep the relief map.
    fn take(a: &mut Analysis, r: ReliefMap) -> Self {
        ViewMaps {
            height: r.height,
            labels: std::mem::take(&mut a.regions.labels),
            scar_labels: r.scar_labels,
            cosines: r.cosines,
            pits: r.pits,
            factor: a.processing.factor.max(1),
            unit_per_px: a.processing.mm_per_px,
            light_azimuth_deg: a.light.azimuth_deg,
        }
    }

    fn view(&self) -> SessionMaps<'_> {
        SessionMaps {
            height: self.height.view(),
            labels: self.labels.view(),
            scar_labels: &self.scar_labels,
            factor: self.factor,
            unit_per_px: self.unit_per_px,
            light_azimuth_deg: self.light_azimuth_deg,
            cosines: Some(&self.cosines),
            pits: &self.pits,
        }
    }
}

/// Read, analyse and draw one photo; the overlay is written to `out`. Panics inside the
/// pipeline are caught and reported as this photo's failure. Stages are timed into `t`.
fn run_photo(
    study: &Study,
    cfg: &BatchConfig,
    rel: &Path,
    params: &AnalyzeParams,
    overlay: &Path,
    t: &mut Timings,
) -> Result<PhotoResult, Failure> {
    let shown = shown_path(study, cfg, rel);
    let path = shown.to_string_lossy().into_owned();
    // Errors of the library name the file first; the failure record has it in `path`.
    let fail = |stage: &str, error: String| Failure {
        error: error
            .strip_prefix(&format!("{path}: "))
            .map_or_else(|| error.clone(), str::to_string),
        path: path.clone(),
        stage: stage.into(),
    };
    let full = study.root.join(rel);
    let size = std::fs::metadata(&full)
        .map_err(|e| fail("load", format!("cannot read the file: {e}")))?
        .len();
    if size > MAX_FILE_BYTES {
        return Err(fail(
            "load",
            format!("the file is {size} bytes, above the limit of {MAX_FILE_BYTES} for one photo"),
        ));
    }
    let bytes = t
        .time("read", || std::fs::read(&full))
        .map_err(|e| fail("load", format!("cannot read the file: {e}")))?;
    let work = || -> Result<_, Failure> {
        // Decoded samples, reduced by each stage to its own scale: no full-resolution float
        // planes except the transient ones of the overlay.
        let img = t
            .time("decode", || decode_bytes(&bytes, &shown, &cfg.limits))
            .map_err(|e| fail("load", e.to_string()))?;
        drop(bytes);
        let (w, h) = (img.photo.width(), img.photo.height());
        let f = processing_factor(params, w, h);
        let _pass = t.time("wait", || cfg.gate.enter(((w / f) * (h / f)) as u64));
        let (mut a, relief) = analyze_keeping_relief_timed(&img.photo, params, t).map_err(|e| {
            fail(
                "analyze",
                format!("{}: cannot analyse: {e}", shown.display()),
            )
        })?;
        let doc = t.time("report", || analyze_doc(&img.meta, params, &a));
        let ov = t.time("overlay", || draw_overlay(&img.photo.to_planes(), &a));
        let maps = ViewMaps::take(&mut a, relief);
        drop(a);
        // The small plane registration needs is all that is kept of the pixels. Made after
        // the analysis, not in its reduction pass as `compare` does: two full-resolution
        // reductions at once would raise the job's peak memory more than the pass saves.
        let plane = t
            .time("registration plane", || {
                RegistrationPlane::from_planes(&img.photo, &RegisterParams::default())
            })
            .map_err(|e| fail("register", e.to_string()));
        Ok((doc, ov, plane, maps))
    };
    let (doc, ov, plane, maps) =
        match catch_unwind(AssertUnwindSafe(work)) {
            Ok(r) => r?,
            Err(_) => return Err(fail(
                "analyze",
                "internal error while analysing this photo (a bug in scarscope; please report it)"
                    .into(),
            )),
        };
    t.time("write", || write_png(&ov, overlay))
        .map_err(|e| fail(WRITE_STAGE, e.to_string()))?;
    Ok(PhotoResult { doc, plane, maps })
}

/// The sessions of a view that enter tracking (analysed and registered), with their input.
fn tracked_inputs(sessions: &[ViewSession]) -> (Vec<&ViewSession>, Vec<SessionInput<'_>>) {
    sessions
        .iter()
        .filter_map(|e| {
            let (d, r) = (e.analysis.as_ref()?, e.registration.as_ref()?);
            let input = SessionInput {
                scars: &d.scars,
                to_baseline: r.affine(),
                residual_px: r.residual_px,
                width: d.input.width as usize,
                height: d.input.height as usize,
                mm_per_px: d.calibration.mm_per_px,
                processing_factor: d.processing.factor,
                relief_gain: e.relief_gain,
            };
            Some((e, input))
        })
        .unzip()
}

/// Paired measurements of a view's tracked scars, by (tracked session, baseline scar, scar).
type Pairs = HashMap<(usize, usize, usize), PairedFigures>;

/// Track the view's sessions so far and measure, paired, the changes of the last one (whose
/// maps are `last`) against the baseline's maps: the tracks up to a session never depend on
/// later sessions, so these are the pairs the whole series will ask for.
fn measure_last_session(
    sessions: &[ViewSession],
    base: &ViewMaps,
    last: &ViewMaps,
    tp: &TrackParams,
    pairs: &mut Pairs,
) {
    let (_, inputs) = tracked_inputs(sessions);
    let Some(k) = inputs.len().checked_sub(1).filter(|&k| k > 0) else {
        return;
    };
    let (m0, mk) = (base.view(), last.view());
    track_series_with_pairs(
        &inputs,
        &mut |s, bi, ai| {
            if s != k {
                return pairs.get(&(s, bi, ai)).copied();
            }
            let pf = PairedFigures::measure(&m0, bi, &mk, ai, &inputs[0], &inputs[k])?;
            pairs.insert((s, bi, ai), pf);
            Some(pf)
        },
        tp,
    );
}

/// One view of a subject over its sessions: each photo analysed in turn, registered onto the
/// view's baseline (the first session whose photo was analysed and could be registered),
/// then the scars of every registered session tracked, each change measured over the common
/// support of the two sessions as `compare` does. Of the pixels, only the baseline's
/// registration plane and relief and label maps are kept while the sessions run; a later
/// session's maps live until its changes are measured.
fn process_view(
    study: &Study,
    plan: &SubjectPlan,
    cfg: &BatchConfig,
    view: &str,
    failures: &mut Vec<Failure>,
    on_photo: &(dyn Fn() + Sync),
    t: &mut Timings,
) -> ViewDoc {
    let rp = RegisterParams::default();
    let tp = TrackParams::default();
    // The baseline's plane, maps and given pixel size (mm).
    let mut baseline: Option<(RegistrationPlane, ViewMaps, Option<f64>)> = None;
    let mut pairs = Pairs::new();
    let mut sessions = Vec::with_capacity(plan.sessions.len());
    let mut left_out = Vec::new();
    for s in &plan.sessions {
        let mut entry = ViewSession {
            session: s.name.clone(),
            status: PhotoStatus::Missing,
            overlay: None,
            registration: None,
            relief_gain: None,
            analysis: None,
        };
        let Some(p) = s.photos.iter().find(|p| p.view == view) else {
            sessions.push(entry);
            continue;
        };
        let ov_rel = overlay_rel(&plan.output_name, &s.output_name, &p.output_name);
        let params = Settings::analyze_params(&s.settings, &cfg.overrides);
        // Sessions shot from another distance: with both pixel sizes given, registration
        // compares the photos at one physical scale, as `compare` does.
        let given_mm = params
            .calibration
            .mm_per_px
            .filter(|m| m.is_finite() && *m > 0.0);
        let result = run_photo(study, cfg, &p.rel_path, &params, &cfg.out.join(&ov_rel), t);
        on_photo();
        let mut later_maps = None;
        match result {
            Ok(PhotoResult { doc, plane, maps }) => {
                entry.status = PhotoStatus::Analysed;
                entry.overlay = Some(ov_rel);
                entry.analysis = Some(doc);
                let registered = plane.and_then(|plane| match &baseline {
                    None => {
                        baseline = Some((plane, maps, given_mm));
                        Ok(Registration::identity())
                    }
                    Some((base, base_maps, base_mm)) => {
                        let expected_scale = match (given_mm, *base_mm) {
                            (Some(m), Some(b)) => m / b,
                            _ => 1.0,
                        };
                        let reg = t.time("register", || {
                            catch_unwind(AssertUnwindSafe(|| {
                                register_scaled(base, &plane, &rp, expected_scale)
                            }))
                        });
                        let error = match reg {
                            Ok(Ok(r)) => {
                                entry.relief_gain = t.time("relief gain", || {
                                    relief_gain(&base_maps.view(), &maps.view(), &r.affine())
                                });
                                later_maps = Some(maps);
                                return Ok(r);
                            }
                            Ok(Err(e)) => format!("cannot register onto the baseline photo: {e}"),
                            Err(_) => "internal error while registering this photo (a bug in \
                                       scarscope; please report it)"
                                .into(),
                        };
                        Err(Failure {
                            path: shown_path(study, cfg, &p.rel_path)
                                .to_string_lossy()
                                .into_owned(),
                            stage: "register".into(),
                            error,
                        })
                    }
                });
                match registered {
                    Ok(r) => entry.registration = Some(r),
                    Err(f) => {
                        left_out.push(format!("{} (not registered)", s.name));
                        failures.push(f);
                    }
                }
            }
            Err(f) => {
                entry.status = PhotoStatus::Failed;
                left_out.push(format!("{} (photo failed)", s.name));
                failures.push(f);
            }
        }
        sessions.push(entry);
        if let (Some(last), Some((_, base, _))) = (later_maps, &baseline) {
            t.time("change", || {
                measure_last_session(&sessions, base, &last, &tp, &mut pairs)
            });
        }
    }
    drop(baseline);
    let (tracked, inputs) = tracked_inputs(&sessions);
    let series = t.time("track", || {
        track_series_with_pairs(
            &inputs,
            &mut |k, bi, ai| pairs.get(&(k, bi, ai)).copied(),
            &tp,
        )
    });
    let tracking = TrackingInfo {
        status: match (tracked.is_empty(), left_out.is_empty()) {
            (true, _) => "unavailable",
            (false, true) => "tracked",
            (false, false) => "partial",
        }
        .into(),
        note: (!left_out.is_empty())
            .then(|| format!("sessions left out of the tracks: {}", left_out.join(", "))),
        baseline: tracked.first().map(|e| e.session.clone()),
        sessions: tracked.iter().map(|e| e.session.clone()).collect(),
        parameters: tp,
    };
    drop(inputs);
    drop(tracked);
    ViewDoc {
        view: view.to_string(),
        sessions,
        tracking,
        tracks: series.tracks,
        summaries: series.summaries,
    }
}

/// Process one subject: analyse every photo (writing its overlay under `cfg.out`), and build
/// the subject's document. Failures of single photos are recorded in the document; the
/// document itself is not written here. `fp` is the subject's [`fingerprint`]; `on_photo`
/// is called after each photo (for progress bars).
pub fn process_subject(
    study: &Study,
    plan: &SubjectPlan,
    cfg: &BatchConfig,
    fp: String,
    on_photo: &(dyn Fn() + Sync),
) -> SubjectDoc {
    process_subject_timed(study, plan, cfg, fp, on_photo, &mut Timings::new())
}

/// [`process_subject`], adding each stage's wall time (and heap use, with a gauge) to `t`:
/// read, decode, the analysis stages, report, overlay, registration plane, write, register,
/// track.
pub fn process_subject_timed(
    study: &Study,
    plan: &SubjectPlan,
    cfg: &BatchConfig,
    fp: String,
    on_photo: &(dyn Fn() + Sync),
    t: &mut Timings,
) -> SubjectDoc {
    let mut failures = plan.failures.clone();
    let warnings = plan.warnings.clone();
    let views = plan
        .views
        .iter()
        .map(|view| process_view(study, plan, cfg, view, &mut failures, on_photo, t))
        .collect();
    SubjectDoc {
        schema_version: SCHEMA_VERSION.into(),
        tool: Tool::current(),
        subject: plan.id.clone(),
        order: plan.order,
        output_name: plan.output_name.clone(),
        fingerprint: fp,
        provenance: cfg.provenance(study),
        session_order: plan.session_order,
        sessions: plan
            .sessions
            .iter()
            .map(|s| SessionEntry {
                session: s.name.clone(),
                date: s.date.clone(),
                photos: s.photos.len(),
            })
            .collect(),
        views,
        warnings,
        failures,
    }
}

/// The finished document of a subject in `out`, if it is complete for unchanged inputs: it
/// parses, its fingerprint is `fp`, no output of it failed to be written (a full or
/// read-only folder: the photo is redone) and every overlay it lists exists.
pub fn finished_subject(out: &Path, plan: &SubjectPlan, fp: &str) -> Option<SubjectDoc> {
    let bytes = std::fs::read(out.join(subject_doc_rel(&plan.output_name))).ok()?;
    let doc: SubjectDoc = serde_json::from_slice(&bytes).ok()?;
    if doc.fingerprint != fp || doc.failures.iter().any(|f| f.stage == WRITE_STAGE) {
        return None;
    }
    let overlays_present = doc
        .views
        .iter()
        .flat_map(|v| &v.sessions)
        .filter_map(|s| s.overlay.as_ref())
        .all(|o| out.join(o).is_file());
    overlays_present.then_some(doc)
}

/// What a run keeps of a finished subject until the end: its digest for `study.json` and,
/// only when its document could not be written, its `scars.csv` rows (otherwise they are
/// read back from the document).
#[derive(Debug, Clone)]
pub struct Kept {
    /// Summary and failures.
    pub digest: SubjectDigest,
    /// The subject's rows of `scars.csv`, when its document is not in the output folder.
    pub rows: Option<String>,
}

impl Kept {
    /// Keep what the end of the run needs of `doc`; `written` says whether the document is
    /// in the output folder (then its rows are read back from there).
    pub fn new(doc: &SubjectDoc, written: bool) -> Self {
        Kept {
            digest: SubjectDigest::of(doc),
            rows: (!written).then(|| scars_csv_rows(doc)),
        }
    }
}

/// Write `out/scars.csv` atomically, streaming: the header, then each subject's rows in the
/// order given, from its rows kept in memory or else from its document `out/subjects/<id>.json`
/// read back (one document in memory at a time).
///
/// # Errors
///
/// [`WriteError`] for `scars.csv`: it cannot be written, or a subject's document cannot be
/// read back (the cause names the document). No partial `scars.csv` is left.
pub fn write_scars_csv(out: &Path, subjects: &[Kept]) -> Result<(), WriteError> {
    write_atomic_with(&out.join("scars.csv"), |w| {
        w.write_all(CSV_HEADER.as_bytes())?;
        w.write_all(b"\n")?;
        for k in subjects {
            let read_back;
            let rows = match &k.rows {
                Some(rows) => rows,
                None => {
                    let path = out.join(subject_doc_rel(&k.digest.output_name));
                    let named = |e: &dyn std::fmt::Display| {
                        std::io::Error::other(format!("{}: {e}", path.display()))
                    };
                    let bytes = std::fs::read(&path).map_err(|e| {
                        std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
                    })?;
                    let doc: SubjectDoc = serde_json::from_slice(&bytes).map_err(|e| named(&e))?;
                    read_back = scars_csv_rows(&doc);
                    &read_back
                }
            };
            w.write_all(rows.as_bytes())?;
        }
        Ok(())
    })
}

/// Name of the lock file a run holds in its output folder.
pub const LOCK_FILE: &str = ".scarscope.lock";

/// Another run holds the output folder, or the lock cannot be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another scarscope process is writing into the folder.
    #[error("{}: another scarscope run ({holder}) is writing into this output folder; wait for it to finish or choose another --out", .dir.display())]
    Busy {
        /// The output folder.
        dir: PathBuf,
        /// What the lock file says about its holder.
        holder: String,
    },
    /// The folder or lock file cannot be created.
    #[error("{}: cannot create the output folder or its lock file: {source}", .dir.display())]
    Io {
        /// The output folder.
        dir: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
}

/// An exclusive hold on an output folder: an advisory `flock` on its lock file, so a killed
/// run never leaves a stale lock behind. Dropping it (the run ended, successfully or not)
/// removes the lock file it created and releases the lock.
#[derive(Debug)]
pub struct OutputLock {
    file: std::fs::File,
    path: PathBuf,
}

impl Drop for OutputLock {
    fn drop(&mut self) {
        // Removed while still held, and only if the path is still this lock's file: a run
        // that opens the path meanwhile finds it gone once it holds the lock and retries.
        if same_file(&self.file, &self.path) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Whether `path` names the open `file` (not a file created there since, nor nothing).
fn same_file(file: &std::fs::File, path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (file.metadata(), std::fs::symlink_metadata(path)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        path.is_file()
    }
}

/// Create `dir` if needed and take its lock; then remove temporary files a killed run may
/// have left (`.scarscope-*.tmp`: outputs are renamed into place only when complete).
///
/// # Errors
///
/// [`LockError::Busy`] when another process holds the lock, [`LockError::Io`] when the folder
/// or the lock file cannot be created.
pub fn lock_output(dir: &Path) -> Result<OutputLock, LockError> {
    use std::io::{Read, Seek, Write};
    let io = |source| LockError::Io {
        dir: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let path = dir.join(LOCK_FILE);
    let mut file = loop {
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = match holder.trim() {
                    "" => "process unknown".to_string(),
                    h => h.to_string(),
                };
                return Err(LockError::Busy {
                    dir: dir.to_path_buf(),
                    holder,
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        // The run that held the lock may have removed its file between our open and our
        // lock: then this lock guards nothing; take the one at the path now.
        if same_file(&file, &path) {
            break file;
        }
    };
    file.set_len(0).map_err(io)?;
    file.rewind().map_err(io)?;
    writeln!(file, "pid {}", std::process::id()).map_err(io)?;
    remove_stale_temporaries(dir, 4);
    Ok(OutputLock { file, path })
}

/// Remove `.scarscope-*.tmp` files left by a killed run, `depth` folder levels deep.
fn remove_stale_temporaries(dir: &Path, depth: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let n = name.to_string_lossy();
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_file() && n.starts_with(".scarscope-") && n.ends_with(".tmp") {
            let _ = std::fs::remove_file(e.path());
        } else if ft.is_dir() && depth > 0 {
            remove_stale_temporaries(&e.path(), depth - 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Record a photo and try to admit it at once.
    fn arrive(g: &PhotoGate, weight: u64) -> Option<GatePass<'_>> {
        g.record(weight);
        g.try_admit(weight)
    }

    #[test]
    fn photos_of_one_size_never_wait() {
        let g = PhotoGate::new(3);
        let passes: Vec<_> = (0..3).map(|_| arrive(&g, 100)).collect();
        assert!(passes.iter().all(Option::is_some));
        assert_eq!(g.lock().in_flight, 300);
    }

    #[test]
    fn two_of_the_largest_photos_are_never_inside_together_when_smaller_ones_exist() {
        let g = PhotoGate::new(2);
        let small = arrive(&g, 1);
        assert!(arrive(&g, 1).is_some(), "two small photos fit");
        // A large one enters beside a small one: 4 + 1 within 4 + mean(1, 1, 4) = 6.
        let large = arrive(&g, 4);
        assert!(large.is_some() && small.is_some());
        drop(small);
        // A second large one: 4 + 4 above 4 + mean(1, 1, 4, 4) = 6.5; it waits.
        g.record(4);
        assert!(g.try_admit(4).is_none());
        drop(large);
        let second = g.try_admit(4);
        assert!(second.is_some(), "enters once the first has left");
        assert_eq!(g.lock().in_flight, 4);
        drop(second);
        assert_eq!(g.lock().in_flight, 0, "a pass gives its weight back");
    }
}
