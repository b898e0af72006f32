//! `scarscope batch STUDY --out DIR`: every view of every subject analysed (and, where the
//! library provides it, registered and tracked), written as `subjects/<id>.json`,
//! `study.json`, `scars.csv`, overlays and the HTML report (`report/`).
//!
//! Subjects run in parallel on one rayon pool of `--jobs` threads, so the machine is never
//! oversubscribed. Each thread runs one lane ([`rayon::ThreadPool::broadcast`]) that pulls
//! subjects in study order; a photo's parallel work (rows, tiles) is shared by every thread
//! that has nothing of its own to do: a lane waiting at the photo gate, or whose lane has run
//! out of subjects, helps the others' photos. A lane runs at the bottom of its thread's stack,
//! so no lane is ever started on top of (and made to wait for) another. Each lane holds at
//! most one photo at a time, so memory is bounded by the jobs, not by the study's size.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use scarscope::batch::{
    fingerprint, finished_subject, lock_output, process_subject_timed, write_scars_csv,
    BatchConfig, Kept, PhotoGate, WRITE_STAGE,
};
use scarscope::load::LoadLimits;
use scarscope::report::study::{study_doc, subject_doc_rel, StudyInfo, SubjectDoc};
use scarscope::report::{to_json_bytes, write_atomic};
use scarscope::study::{Failure, Settings, Shard, Study};
use scarscope::timings::Timings;

use super::analyze::{parse_megapixels, PhotoOptions};

/// Exit status, shown after `--help`.
pub(crate) const EXIT_CODES: &str = "\
Exit status:
  0  every photo was analysed and every output written
  1  something failed (a photo, a folder, an output file): it is listed in study.json
     failures[] and on stderr; everything else was still processed and written
  2  the whole run failed: invalid arguments or manifest, unreadable study folder or
     manifest, output folder locked by another run, not writable or too full for
     study.json and scars.csv; study.json was not written";

/// Arguments of `batch`.
#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES)]
pub struct BatchArgs {
    /// The study folder: STUDY/<subject>/<session>/<view>.<ext>, optional STUDY/study.toml.
    study: PathBuf,
    /// Output folder (created). Holds study.json, scars.csv, subjects/, overlays/, report/.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Parallel jobs (threads); default: all cores.
    #[arg(long, short = 'j', value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    jobs: Option<u16>,
    /// No progress bar or log lines; failures are still printed.
    #[arg(long, short = 'q')]
    quiet: bool,
    /// Skip subjects whose outputs in --out are complete for unchanged inputs.
    #[arg(long)]
    resume: bool,
    /// Process only share I of N of the subjects (1-based), e.g. 2/3; combine with `merge`.
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    shard: Option<Shard>,
    /// Record absolute paths instead of paths relative to the study root.
    #[arg(long)]
    absolute_paths: bool,
    /// Scale and light for every photo (override the manifest).
    #[command(
        flatten,
        next_help_heading = "Scale and light of every photo (override study.toml)"
    )]
    photo: PhotoOptions,
    /// Refuse photos with more pixels than this, megapixels, before decoding them.
    #[arg(long, value_name = "N", default_value_t = 100.0, value_parser = parse_megapixels)]
    max_megapixels: f64,
    /// Print the run's per-stage wall times as one JSON line on stderr: each stage summed
    /// over all photos and subjects (fingerprint, read, decode, wait at the photo gate, the
    /// analysis stages, report, overlay, registration plane, write, register, change, track,
    /// html), then the end of the run (csv, index, study), and the whole run's wall time
    /// (`total_s`). With several jobs the sums exceed the run's wall time.
    #[arg(long)]
    timings: bool,
    /// Test hook: exit abruptly (status 86) once this many subjects have been written, as if
    /// the run had been killed; `--resume` must then finish the job.
    #[arg(long, hide = true, value_name = "N")]
    stop_after: Option<usize>,
}

fn parse_shard(s: &str) -> Result<Shard, String> {
    Shard::parse(s).map_err(|e| e.to_string())
}

/// Status of a run stopped by `--stop-after` (a test hook).
const STOPPED: u8 = 86;

/// Run `batch`.
pub fn run(a: BatchArgs) -> anyhow::Result<ExitCode> {
    let started = std::time::Instant::now();
    let jobs = match a.jobs {
        Some(j) => usize::from(j),
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let cfg = BatchConfig {
        overrides: Settings {
            mm_per_px: a.photo.mm_per_px,
            light_azimuth_deg: a.photo.light_azimuth,
            light_elevation_deg: a.photo.light_elevation,
            ambient: a.photo.ambient,
            tilt_share: a.photo.tilt_share,
            ..Default::default()
        },
        limits: LoadLimits {
            max_pixels: (a.max_megapixels * 1e6).round() as u64,
            ..LoadLimits::default()
        },
        absolute_paths: a.absolute_paths,
        out: a.out.clone(),
        gate: std::sync::Arc::new(PhotoGate::new(jobs)),
    };
    let study = Study::plan(&a.study)?;
    let _lock = lock_output(&a.out)?;
    for w in &study.warnings {
        if !a.quiet {
            eprintln!("warning: {w}");
        }
    }
    let selected: Vec<usize> = (0..study.subjects.len())
        .filter(|&i| a.shard.is_none_or(|s| s.contains(study.subjects[i].order)))
        .collect();
    let photos: usize = selected
        .iter()
        .flat_map(|&i| &study.subjects[i].sessions)
        .map(|s| s.photos.len())
        .sum();
    let log = Log::new(a.quiet, photos as u64, selected.len());
    // One pool of `jobs` threads, one lane per thread (see the module notes).
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(jobs)
        .build()
        .context("cannot start the worker threads")?;
    let timings = Mutex::new(Timings::new());
    // One small `Kept` per finished subject; its document is dropped once written.
    let slots: Vec<Mutex<Option<Kept>>> = selected.iter().map(|_| Mutex::new(None)).collect();
    let write_failures: Mutex<Vec<Failure>> = Mutex::new(Vec::new());
    let next = AtomicUsize::new(0);
    let written = AtomicUsize::new(0);
    let stop_after = a.stop_after;
    // HTML report: each subject's page, from its document once written (or found complete).
    let page = |doc: &SubjectDoc| {
        if let Err(e) = scarscope::report::html::write_subject_page(&a.out, doc) {
            let f = report_failure(&a.out, &doc.output_name, e);
            log.failure(&f);
            lock(&write_failures).push(f);
        }
    };
    let lane = |t: &mut Timings| loop {
        let k = next.fetch_add(1, Ordering::SeqCst);
        let Some(&i) = selected.get(k) else { break };
        let plan = &study.subjects[i];
        let fp = t.time("fingerprint", || fingerprint(&study, plan, &cfg));
        if a.resume {
            if let Some(doc) = finished_subject(&a.out, plan, &fp) {
                log.subject_done(&doc, true);
                log.skip_photos(plan.sessions.iter().map(|s| s.photos.len()).sum());
                page(&doc);
                *lock(&slots[k]) = Some(Kept::new(&doc, true));
                continue;
            }
        }
        let doc = process_subject_timed(&study, plan, &cfg, fp, &|| log.photo_done(), t);
        for f in doc.failures.iter().filter(|f| f.stage != "walk") {
            log.failure(f);
        }
        let path = a.out.join(subject_doc_rel(&plan.output_name));
        let write = t.time("write", || {
            to_json_bytes(&doc)
                .map_err(|e| e.to_string())
                .and_then(|b| write_atomic(&path, &b).map_err(|e| e.to_string()))
        });
        *lock(&slots[k]) = Some(Kept::new(&doc, write.is_ok()));
        match write {
            Ok(()) => {
                log.subject_done(&doc, false);
                let n = written.fetch_add(1, Ordering::SeqCst) + 1;
                if stop_after.is_some_and(|s| n >= s) {
                    log.finish();
                    std::process::exit(i32::from(STOPPED));
                }
            }
            Err(error) => {
                let f = Failure {
                    path: path.to_string_lossy().into_owned(),
                    stage: WRITE_STAGE.into(),
                    error,
                };
                log.failure(&f);
                lock(&write_failures).push(f);
            }
        }
        t.time("html", || page(&doc));
    };
    // Each thread of the pool runs one lane at the bottom of its stack: the lanes' photo
    // gate may then wait on a worker (helping the other lanes' photos meanwhile), and a
    // thread whose lane has run out of subjects helps the others' photos until they end.
    pool.broadcast(|_| {
        let mut t = Timings::new();
        lane(&mut t);
        lock(&timings).merge(&t);
    });
    drop(pool);
    log.finish();
    let kept: Vec<Kept> = slots
        .into_iter()
        .filter_map(|m| m.into_inner().unwrap_or_else(|p| p.into_inner()))
        .collect();
    let mut doc = study_doc(
        study_info(&study, &cfg),
        cfg.provenance(&study),
        a.shard,
        study.warnings.clone(),
        kept.iter().map(|k| &k.digest),
    );
    let write_failures = write_failures
        .into_inner()
        .unwrap_or_else(|p| p.into_inner());
    doc.totals.failures += write_failures.len();
    doc.failures.extend(write_failures);
    let mut t = timings.into_inner().unwrap_or_else(|p| p.into_inner());
    t.time("csv", || write_scars_csv(&a.out, &kept))?;
    // HTML report: the study's index page (subject pages were written as subjects finished).
    let index = t.time("index", || {
        scarscope::report::html::write_study_index(&a.out, &doc)
            .inspect_err(|e| eprintln!("error: {e}"))
            .ok()
    });
    // study.json last: when it exists, the run finished.
    let json = a.out.join("study.json");
    let bytes = to_json_bytes(&doc)?;
    t.time("study", || write_atomic(&json, &bytes))?;
    if a.timings {
        print_run_timings(&t, started.elapsed().as_secs_f64());
    }
    let t = doc.totals;
    println!(
        "{} subjects, {} of {} photos analysed, {} scars, {} failure{}{}",
        t.subjects,
        t.analysed,
        t.photos,
        t.scars,
        t.failures,
        if t.failures == 1 { "" } else { "s" },
        a.shard
            .map(|s| format!(" (shard {}/{})", s.index, s.count))
            .unwrap_or_default()
    );
    println!(
        "results: {} (summary), {} (one row per scar), {} (per subject), {} (images)",
        json.display(),
        a.out.join("scars.csv").display(),
        a.out.join("subjects").display(),
        a.out.join("overlays").display()
    );
    if let Some(index) = &index {
        println!("report: {} (open in a browser)", index.display());
    }
    Ok(if t.failures > 0 || index.is_none() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// A subject's HTML page could not be written: a failure of stage "report".
pub(crate) fn report_failure(
    out: &std::path::Path,
    output_name: &str,
    e: scarscope::report::html::HtmlError,
) -> Failure {
    Failure {
        path: out
            .join(scarscope::report::html::subject_page_rel(output_name))
            .to_string_lossy()
            .into_owned(),
        stage: "report".into(),
        error: e.to_string(),
    }
}

/// The study block of `study.json`.
pub(crate) fn study_info(study: &Study, cfg: &BatchConfig) -> StudyInfo {
    StudyInfo {
        root: if cfg.absolute_paths {
            study.root_abs.to_string_lossy().into_owned()
        } else {
            study
                .root_abs
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| ".".into())
        },
        name: study.manifest.as_ref().and_then(|m| m.name.clone()),
    }
}

/// The `--timings` line: stage sums as `analyze --timings` prints them, but `total_s` is the
/// run's wall time.
fn print_run_timings(t: &Timings, wall_s: f64) {
    let mut line = serde_json::to_value(t).unwrap_or_default();
    if let Some(o) = line.as_object_mut() {
        o.insert("total_s".into(), wall_s.into());
    }
    eprintln!("{line}");
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Progress: a bar with count, rate and ETA on a terminal; plain lines otherwise; nothing
/// with `--quiet` (failures are always printed).
struct Log {
    quiet: bool,
    bar: Option<ProgressBar>,
    subjects: usize,
    done: AtomicUsize,
}

impl Log {
    fn new(quiet: bool, photos: u64, subjects: usize) -> Log {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let b = ProgressBar::with_draw_target(Some(photos), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{bar:30} {pos}/{len} photos  {per_sec}  ETA {eta}  {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            b.set_style(style);
            b
        });
        Log {
            quiet,
            bar,
            subjects,
            done: AtomicUsize::new(0),
        }
    }

    fn photo_done(&self) {
        if let Some(b) = &self.bar {
            b.inc(1);
        }
    }

    fn skip_photos(&self, n: usize) {
        if let Some(b) = &self.bar {
            b.inc(n as u64);
        }
    }

    fn subject_done(&self, d: &SubjectDoc, skipped: bool) {
        let k = self.done.fetch_add(1, Ordering::SeqCst) + 1;
        let analysed = d
            .views
            .iter()
            .flat_map(|v| &v.sessions)
            .filter(|s| s.analysis.is_some())
            .count();
        let line = if skipped {
            format!("{}: complete from an earlier run, skipped", d.subject)
        } else {
            format!(
                "{}: {} photo{} analysed, {} failure{}",
                d.subject,
                analysed,
                if analysed == 1 { "" } else { "s" },
                d.failures.len(),
                if d.failures.len() == 1 { "" } else { "s" }
            )
        };
        match &self.bar {
            Some(b) => b.set_message(line),
            None if !self.quiet => eprintln!("[{k}/{}] {line}", self.subjects),
            None => {}
        }
    }

    fn failure(&self, f: &Failure) {
        let line = format!("error: {} ({}): {}", f.path, f.stage, f.error);
        match &self.bar {
            Some(b) => b.println(line),
            None => eprintln!("{line}"),
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
