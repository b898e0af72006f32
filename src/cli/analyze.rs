//! `scarscope analyze PHOTO...`: measure the scars of one or more photos and write the
//! `analyze` JSON document of each (DOMAIN.md §5), optionally with an overlay image.
//!
//! The arguments are checked into a [`Config`] before any photo is opened. Photos are then
//! processed one after another (each analysis is parallel inside); a photo that cannot be
//! loaded or analysed is reported on stderr and the others still run.

use std::collections::BTreeMap;
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, ensure, Context};
use clap::Args;
use image::RgbImage;
use scarscope::analyze::{
    analyze_reduced_timed, analyze_timed, processing_reduction, AnalyzeParams, Calibration,
};
use scarscope::error::Error;
use scarscope::load::{decode_path, DecodedImage, LoadLimits, PlaneSource};
use scarscope::relief::LightSource;
use scarscope::report::overlay::{draw_overlay, write_png};
use scarscope::report::{analyze_doc, to_json_bytes, write_atomic, AnalyzeDoc};
use scarscope::timings::Timings;

/// Exit status, shown after `--help`.
const EXIT_CODES: &str = "\
Exit status:
  0  every photo was analysed and every output written
  1  at least one photo could not be read or analysed, or an output could not be written
     (the other photos are still processed and written)
  2  usage error: invalid or contradictory arguments; nothing was analysed";

/// Arguments of `analyze`.
#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES)]
pub struct AnalyzeArgs {
    /// Photos to analyse (JPEG, PNG, TIFF or WebP).
    #[arg(value_name = "PHOTO", required = true)]
    photos: Vec<PathBuf>,
    /// Scale and light.
    #[command(flatten)]
    photo: PhotoOptions,
    /// Where the JSON goes: a file, or `-` for standard output (default). One photo gives
    /// one document; several give a JSON array of the documents of those that succeeded.
    #[arg(long, value_name = "FILE.json", conflicts_with = "out_dir")]
    out: Option<PathBuf>,
    /// Write `<stem>.json` and `<stem>.overlay.png` for each photo into this folder instead.
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,
    /// Write an overlay PNG (outlines, ids, legend) here; only with a single photo.
    #[arg(long, value_name = "FILE.png", conflicts_with = "out_dir")]
    overlay: Option<PathBuf>,
    /// Refuse photos with more pixels than this, megapixels, before decoding them.
    #[arg(long, value_name = "N", default_value_t = 100.0, value_parser = parse_megapixels)]
    max_megapixels: f64,
    /// Refuse photos whose decoding would need more memory than this, MiB (decoded buffer,
    /// decoder state and the three f32 planes), before decoding them.
    #[arg(long, value_name = "MIB", default_value_t = LoadLimits::default().max_alloc_bytes >> 20, value_parser = parse_memory_mib)]
    max_memory_mib: u64,
    /// Print each photo's per-stage wall times (decode, normalise, intrinsics, light, relief,
    /// segment, symmetry, pit fit, measure, report, overlay, write) as one JSON line on stderr.
    #[arg(long)]
    timings: bool,
}

/// Scale and light options shared by `analyze` and `batch` (in `batch` they override the
/// manifest).
#[derive(Debug, Clone, Args)]
pub(crate) struct PhotoOptions {
    /// Size of one camera pixel on the skin, mm (0 < F < 10). Without it, mm figures are
    /// absent (null) and the report says so.
    #[arg(long, value_name = "F", allow_negative_numbers = true, value_parser = parse_mm_per_px)]
    pub(crate) mm_per_px: Option<f64>,
    /// Key-light azimuth, degrees counter-clockwise on screen from the right edge (0 = from
    /// the right, 90 = from the top). Estimated from the photo when absent.
    #[arg(long, value_name = "DEG", allow_negative_numbers = true, value_parser = parse_azimuth)]
    pub(crate) light_azimuth: Option<f64>,
    /// Key-light elevation above the skin plane, degrees (1–89; 90 would be frontal).
    /// A typical clinical value is assumed when absent.
    #[arg(long, value_name = "DEG", allow_negative_numbers = true, value_parser = parse_elevation)]
    pub(crate) light_elevation: Option<f64>,
    /// Ambient light as a fraction of the key light (0–1).
    #[arg(long, value_name = "F", allow_negative_numbers = true, value_parser = parse_ambient)]
    pub(crate) ambient: Option<f64>,
    /// Share (0–1) of the skin's smooth brightness read as the skin turning from the light
    /// rather than as the light's fall-off (default 0.5: one photo cannot tell them apart;
    /// 1 for even lighting, 0 for flat skin).
    #[arg(long, value_name = "F", allow_negative_numbers = true, value_parser = parse_share)]
    pub(crate) tilt_share: Option<f64>,
}

/// Where a JSON output goes.
#[derive(Debug, Clone, PartialEq)]
enum Dest {
    Stdout,
    File(PathBuf),
}

/// How outputs are laid out.
#[derive(Debug, Clone, PartialEq)]
enum Output {
    /// One photo: its document (an object) to `json`, its overlay to `overlay` if asked.
    Single {
        json: Dest,
        overlay: Option<PathBuf>,
    },
    /// Several photos: one JSON array of the documents that succeeded.
    Array { json: Dest },
    /// One `<stem>.json` and `<stem>.overlay.png` per photo in `dir`; `stems[i]` is photo i's.
    Dir { dir: PathBuf, stems: Vec<String> },
}

/// The checked configuration of one `analyze` run.
#[derive(Debug, Clone)]
struct Config {
    photos: Vec<PathBuf>,
    params: AnalyzeParams,
    limits: LoadLimits,
    output: Output,
    timings: bool,
}

impl Config {
    /// Check the arguments together; everything that can be refused is refused here.
    fn from_args(a: AnalyzeArgs) -> anyhow::Result<Config> {
        let params = params_from(
            a.photo.mm_per_px,
            a.photo.light_azimuth,
            a.photo.light_elevation,
            a.photo.ambient,
            a.photo.tilt_share,
        );
        let dest = |p: Option<PathBuf>| match p {
            Some(p) if p.as_os_str() != "-" => Dest::File(p),
            _ => Dest::Stdout,
        };
        let output = match (a.out_dir, a.photos.len()) {
            (Some(dir), _) => {
                ensure!(
                    !dir.exists() || dir.is_dir(),
                    "--out-dir {} exists and is not a folder",
                    dir.display()
                );
                Output::Dir {
                    stems: unique_stems(&a.photos)?,
                    dir,
                }
            }
            (None, 1) => Output::Single {
                json: dest(a.out),
                overlay: a.overlay,
            },
            (None, n) => {
                if a.overlay.is_some() {
                    bail!(
                        "--overlay takes one photo but {n} were given; use --out-dir to get an \
                         overlay for each"
                    );
                }
                Output::Array { json: dest(a.out) }
            }
        };
        Ok(Config {
            photos: a.photos,
            params,
            limits: LoadLimits {
                max_pixels: (a.max_megapixels * 1e6).round() as u64,
                max_alloc_bytes: a.max_memory_mib << 20,
            },
            output,
            timings: a.timings,
        })
    }
}

/// Analysis parameters from the command-line options shared by `analyze` and `compare`.
pub(super) fn params_from(
    mm_per_px: Option<f64>,
    light_azimuth: Option<f64>,
    light_elevation: Option<f64>,
    ambient: Option<f64>,
    tilt_share: Option<f64>,
) -> AnalyzeParams {
    let defaults = AnalyzeParams::default();
    AnalyzeParams {
        calibration: match mm_per_px {
            Some(v) => Calibration {
                mm_per_px: Some(v),
                source: "command line".into(),
            },
            None => defaults.calibration.clone(),
        },
        light_azimuth_deg: light_azimuth,
        light_elevation_deg: light_elevation,
        ambient: ambient.unwrap_or(defaults.ambient),
        tilt_share: tilt_share.unwrap_or(defaults.tilt_share),
        ..defaults
    }
}

/// File stems for `--out-dir`, refusing two photos that would write the same files.
fn unique_stems(photos: &[PathBuf]) -> anyhow::Result<Vec<String>> {
    let mut seen: BTreeMap<String, &Path> = BTreeMap::new();
    let mut stems = Vec::with_capacity(photos.len());
    for p in photos {
        let stem = p
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .filter(|s| !s.is_empty())
            .with_context(|| format!("{} has no file name to name its outputs by", p.display()))?;
        if let Some(first) = seen.insert(stem.clone(), p) {
            bail!(
                "{} and {} would both write {stem}.json in --out-dir; analyse them in separate runs",
                first.display(),
                p.display()
            );
        }
        stems.push(stem);
    }
    Ok(stems)
}

fn parse_f64(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number"))?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(format!("`{s}` is not a finite number"))
    }
}

pub(super) fn parse_mm_per_px(s: &str) -> Result<f64, String> {
    let v = parse_f64(s)?;
    if v > 0.0 && v < 10.0 {
        Ok(v)
    } else {
        Err(format!(
            "the pixel size must be above 0 and below 10 mm, not {v}"
        ))
    }
}

pub(super) fn parse_azimuth(s: &str) -> Result<f64, String> {
    let v = parse_f64(s)?;
    if (-360.0..=360.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!(
            "the azimuth must be between -360 and 360 degrees, not {v}"
        ))
    }
}

pub(super) fn parse_elevation(s: &str) -> Result<f64, String> {
    let v = parse_f64(s)?;
    if (1.0..=89.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!(
            "the elevation must be between 1 and 89 degrees above the skin (90 is frontal light, which shows no relief), not {v}"
        ))
    }
}

/// A number from 0 to 1; `what` names it in the refusal.
fn parse_fraction(s: &str, what: &str) -> Result<f64, String> {
    let v = parse_f64(s)?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{what} must be between 0 and 1, not {v}"))
    }
}

pub(super) fn parse_ambient(s: &str) -> Result<f64, String> {
    parse_fraction(s, "the ambient fraction of the key light")
}

pub(super) fn parse_share(s: &str) -> Result<f64, String> {
    parse_fraction(s, "the tilt share")
}

pub(crate) fn parse_megapixels(s: &str) -> Result<f64, String> {
    let v = parse_f64(s)?;
    if v > 0.0 && v <= 10_000.0 {
        Ok(v)
    } else {
        Err(format!(
            "the limit must be above 0 and at most 10000 megapixels, not {v}"
        ))
    }
}

fn parse_memory_mib(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(v) if (1..=1 << 20).contains(&v) => Ok(v),
        _ => Err(format!(
            "the memory limit must be a whole number of MiB from 1 to 1048576, not `{s}`"
        )),
    }
}

/// Run `analyze`.
pub fn run(a: AnalyzeArgs) -> anyhow::Result<ExitCode> {
    crate::retain_freed_memory();
    let cfg = Config::from_args(a)?;
    let mut failed = false;
    let mut docs: Vec<AnalyzeDoc> = Vec::new();
    let want_overlay = match &cfg.output {
        Output::Single { overlay, .. } => overlay.is_some(),
        Output::Array { .. } => false,
        Output::Dir { .. } => true,
    };
    for (i, path) in cfg.photos.iter().enumerate() {
        let mut t = Timings::new();
        let (doc, overlay) = match analyze_one(path, &cfg, want_overlay, &mut t) {
            Ok(done) => done,
            Err(e) => {
                eprintln!("error: {e}");
                failed = true;
                continue;
            }
        };
        eprintln!("{}", summary_line(path, &doc));
        for w in &doc.warnings {
            eprintln!("{}: warning: {w}", path.display());
        }
        let written = t.time("write", || match &cfg.output {
            Output::Single {
                json,
                overlay: dest,
            } => write_json(json, &doc).and_then(|()| match (dest, &overlay) {
                (Some(p), Some(img)) => write_png(img, p).map_err(report_write),
                _ => Ok(()),
            }),
            Output::Array { .. } => {
                docs.push(doc);
                Ok(())
            }
            Output::Dir { dir, stems } => {
                let json = Dest::File(dir.join(format!("{}.json", stems[i])));
                write_json(&json, &doc).and_then(|()| match &overlay {
                    Some(img) => write_png(img, &dir.join(format!("{}.overlay.png", stems[i])))
                        .map_err(report_write),
                    None => Ok(()),
                })
            }
        });
        failed |= written.is_err();
        if cfg.timings {
            print_timings(Some(path), &t);
        }
    }
    if let Output::Array { json } = &cfg.output {
        let mut t = Timings::new();
        failed |= t.time("write", || write_json(json, &docs)).is_err();
        if cfg.timings {
            print_timings(None, &t);
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Load and analyse one photo; draw its overlay if asked. A panic inside the pipeline is
/// caught and reported as this photo's failure so the other photos still run.
fn analyze_one(
    path: &Path,
    cfg: &Config,
    overlay: bool,
    t: &mut Timings,
) -> Result<(AnalyzeDoc, Option<RgbImage>), String> {
    let work = || -> Result<_, Error> {
        // The photo stays in its decoded samples: normalisation converts and downsamples it
        // in one pass, and full-resolution planes are made only for an overlay.
        let img = t.time("decode", || decode_path(path, &cfg.limits))?;
        let (w, h) = (img.photo.width(), img.photo.height());
        let failed = |source| Error::Analysis {
            path: path.to_path_buf(),
            source,
        };
        // Without an overlay the photo is needed only for its reduction: made first, the
        // photo is dropped and the analysis reuses its memory.
        let spec = (!overlay)
            .then(|| processing_reduction(&cfg.params, w, h))
            .flatten();
        let DecodedImage { photo, meta } = img;
        let (a, photo) = match spec {
            Some((f, lo, hi)) => {
                let reduced = t.time("normalise", || photo.reduce(f, lo, hi));
                drop(photo);
                let a = analyze_reduced_timed(reduced, w, h, &cfg.params, t).map_err(failed)?;
                (a, None)
            }
            None => (
                analyze_timed(&photo, &cfg.params, t).map_err(failed)?,
                Some(photo),
            ),
        };
        let doc = t.time("report", || analyze_doc(&meta, &cfg.params, &a));
        let ov = match (overlay, &photo) {
            (true, Some(photo)) => Some(t.time("overlay", || draw_overlay(&photo.to_planes(), &a))),
            _ => None,
        };
        Ok((doc, ov))
    };
    match catch_unwind(AssertUnwindSafe(work)) {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err(format!(
            "{}: internal error while analysing this photo (a bug in scarscope; please report it)",
            path.display()
        )),
    }
}

/// One JSON line on stderr: `{"photo": …, "stages_s": {…}, "total_s": …}` (photo null for
/// the write of a multi-photo array).
fn print_timings(photo: Option<&Path>, t: &Timings) {
    #[derive(serde::Serialize)]
    struct Line<'a> {
        photo: Option<String>,
        #[serde(flatten)]
        timings: &'a Timings,
    }
    let line = Line {
        photo: photo.map(|p| p.display().to_string()),
        timings: t,
    };
    eprintln!(
        "{}",
        serde_json::to_string(&line).unwrap_or_else(|_| "{}".into())
    );
}

/// Print a write failure and pass it on (the exit code becomes 1).
fn report_write(e: scarscope::report::WriteError) {
    eprintln!("error: {e}");
}

/// Serialise `doc` and write it; failures are printed here.
fn write_json<T: serde::Serialize + ?Sized>(dest: &Dest, doc: &T) -> Result<(), ()> {
    let bytes = match to_json_bytes(doc) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: cannot serialise the report: {e}");
            return Err(());
        }
    };
    match dest {
        Dest::File(p) => write_atomic(p, &bytes).map_err(report_write),
        Dest::Stdout => {
            let mut out = std::io::stdout().lock();
            out.write_all(&bytes)
                .and_then(|()| out.flush())
                .map_err(|e| eprintln!("error: cannot write to standard output: {e}"))
        }
    }
}

fn source_word(s: LightSource) -> &'static str {
    match s {
        LightSource::Given => "given",
        LightSource::Estimated => "estimated",
        LightSource::Assumed => "assumed",
    }
}

/// One human-readable line: counts by type, total area, the light and where it came from.
fn summary_line(path: &Path, d: &AnalyzeDoc) -> String {
    let s = &d.summary;
    let c = &s.counts_by_type;
    let area = match s.total_area_mm2 {
        Some(v) => format!("total {v:.1} mm²"),
        None => "area unknown (no calibration)".into(),
    };
    let l = &d.light;
    let az_how = match l.source {
        LightSource::Estimated => format!("estimated, confidence {:.1}", l.confidence),
        other => source_word(other).into(),
    };
    format!(
        "{}: {} scar{} ({} icepick, {} boxcar, {} rolling), {area}; light az {:.0}° ({az_how}) el {:.0}° ({})",
        path.display(),
        s.count,
        if s.count == 1 { "" } else { "s" },
        c.icepick,
        c.boxcar,
        c.rolling,
        l.azimuth_deg,
        l.elevation_deg,
        source_word(l.elevation_source)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_arguments_outside_their_range_are_refused() {
        assert!(parse_mm_per_px("-1").is_err());
        assert!(parse_mm_per_px("0").is_err());
        assert!(parse_mm_per_px("nan").is_err());
        assert_eq!(parse_mm_per_px("0.05"), Ok(0.05));
        assert!(parse_elevation("90").is_err());
        assert!(parse_elevation("0").is_err());
        assert!(parse_ambient("1.5").is_err());
        assert!(parse_share("1.5").is_err());
        assert!(parse_share("-0.1").is_err());
        assert_eq!(parse_share("0"), Ok(0.0));
        assert!(parse_megapixels("0").is_err());
        assert!(parse_memory_mib("0").is_err());
        assert!(parse_memory_mib("1.5").is_err());
        assert_eq!(parse_memory_mib("4096"), Ok(4096));
        assert_eq!(parse_azimuth("-30"), Ok(-30.0));
    }

    #[test]
    fn two_photos_with_the_same_stem_cannot_share_an_out_dir() {
        let photos = [PathBuf::from("a/left.jpg"), PathBuf::from("b/left.png")];
        assert!(unique_stems(&photos).is_err());
        let photos = [PathBuf::from("a/left.jpg"), PathBuf::from("a/right.jpg")];
        assert_eq!(
            unique_stems(&photos).ok(),
            Some(vec!["left".into(), "right".into()])
        );
    }
}
