//! `scarscope compare BEFORE AFTER`: register the after photo onto the before photo, analyse
//! both, track every scar and write the `compare` JSON document (DOMAIN.md §5), optionally
//! with a side-by-side overlay and an HTML page.

use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use scarscope::compare::{compare_timed, AfterOptions};
use scarscope::load::{decode_path, LoadLimits};
use scarscope::register::RegisterParams;
use scarscope::report::compare::{compare_doc, draw_compare_overlay, CompareParameters, Pair};
use scarscope::report::html::compare_page;
use scarscope::report::overlay::write_png;
use scarscope::report::{to_json_bytes, write_atomic};
use scarscope::timings::Timings;
use scarscope::track::TrackParams;

use super::analyze::{
    params_from, parse_ambient, parse_azimuth, parse_elevation, parse_megapixels, parse_mm_per_px,
    parse_share,
};

const EXIT_CODES: &str = "\
Exit status:
  0  both photos were registered, analysed and compared, and every output written
  1  a photo could not be read or analysed, the photos could not be registered (not the same
     skin, too little overlap), or an output could not be written
  2  usage error: invalid or contradictory arguments; nothing was compared";

/// Arguments of `compare`.
#[derive(Debug, Args)]
#[command(after_help = EXIT_CODES)]
pub struct CompareArgs {
    /// The earlier (baseline) photo.
    #[arg(value_name = "BEFORE")]
    before: PathBuf,
    /// The later photo of the same skin.
    #[arg(value_name = "AFTER")]
    after: PathBuf,
    /// Size of one camera pixel of the before photo on the skin, mm.
    #[arg(long, value_name = "F", allow_negative_numbers = true, value_parser = parse_mm_per_px)]
    mm_per_px: Option<f64>,
    /// Key-light azimuth of the before photo, degrees (0 = from the right, 90 = from the top).
    #[arg(long, value_name = "DEG", allow_negative_numbers = true, value_parser = parse_azimuth)]
    light_azimuth: Option<f64>,
    /// Key-light elevation of the before photo, degrees above the skin.
    #[arg(long, value_name = "DEG", allow_negative_numbers = true, value_parser = parse_elevation)]
    light_elevation: Option<f64>,
    /// Ambient light as a fraction of the key light (both photos).
    #[arg(long, value_name = "F", allow_negative_numbers = true, value_parser = parse_ambient)]
    ambient: Option<f64>,
    /// Share (0–1) of the skin's smooth brightness read as the skin turning from the light
    /// rather than as the light's fall-off (default 0.5; both photos).
    #[arg(long, value_name = "F", allow_negative_numbers = true, value_parser = parse_share)]
    tilt_share: Option<f64>,
    /// Key-light azimuth of the after photo (default: the before azimuth turned by the
    /// registration's rotation, if given).
    #[arg(long, value_name = "DEG", allow_negative_numbers = true, value_parser = parse_azimuth)]
    after_light_azimuth: Option<f64>,
    /// Key-light elevation of the after photo (default: the before elevation).
    #[arg(long, value_name = "DEG", allow_negative_numbers = true, value_parser = parse_elevation)]
    after_light_elevation: Option<f64>,
    /// Pixel size of the after photo, mm (default: the before pixel size times the
    /// registration's scale).
    #[arg(long, value_name = "F", allow_negative_numbers = true, value_parser = parse_mm_per_px)]
    after_mm_per_px: Option<f64>,
    /// Where the JSON goes: a file, or `-` for standard output (default).
    #[arg(long, value_name = "FILE.json")]
    out: Option<PathBuf>,
    /// Write the side-by-side overlay PNG here.
    #[arg(long, value_name = "FILE.png")]
    overlay: Option<PathBuf>,
    /// Write a self-contained HTML page of the comparison here (overlay, table, plots).
    #[arg(long, value_name = "FILE.html")]
    html: Option<PathBuf>,
    /// Refuse photos with more pixels than this, megapixels, before decoding them.
    #[arg(long, value_name = "N", default_value_t = 100.0, value_parser = parse_megapixels)]
    max_megapixels: f64,
    /// Print per-stage wall times as one JSON line on standard error (stages of the two
    /// photos summed).
    #[arg(long)]
    timings: bool,
}

/// Run `compare`.
pub fn run(a: CompareArgs) -> anyhow::Result<ExitCode> {
    crate::retain_freed_memory();
    let params = params_from(
        a.mm_per_px,
        a.light_azimuth,
        a.light_elevation,
        a.ambient,
        a.tilt_share,
    );
    let after_opts = AfterOptions {
        light_azimuth_deg: a.after_light_azimuth,
        light_elevation_deg: a.after_light_elevation,
        mm_per_px: a.after_mm_per_px,
    };
    let limits = LoadLimits {
        max_pixels: (a.max_megapixels * 1e6).round() as u64,
        ..LoadLimits::default()
    };
    let rp = RegisterParams::default();
    let tp = TrackParams::default();
    let mut t = Timings::new();
    let work = || -> Result<_, String> {
        // Decoded samples only, each photo decoded once (both at the same time: decoding is
        // serial): the stages reduce them to their scales, and full-resolution planes exist
        // only for the overlay, if one is asked for.
        let (b, f) = t.time("decode", || {
            rayon::join(
                || decode_path(&a.before, &limits),
                || decode_path(&a.after, &limits),
            )
        });
        let b = b.map_err(|e| e.to_string())?;
        let f = f.map_err(|e| e.to_string())?;
        let c = compare_timed(&b.photo, &f.photo, &params, &after_opts, &rp, &tp, &mut t)
            .map_err(|e| format!("{} vs {}: {e}", a.before.display(), a.after.display()))?;
        let doc = t.time("report", || {
            compare_doc(
                Pair {
                    before: &b.meta,
                    after: &f.meta,
                },
                CompareParameters {
                    analysis: Pair {
                        before: params.clone(),
                        after: c.after_params.clone(),
                    },
                    registration: rp.clone(),
                    tracking: tp.clone(),
                },
                &c,
            )
        });
        let ov = (a.overlay.is_some() || a.html.is_some()).then(|| {
            t.time("overlay", || {
                draw_compare_overlay(&b.photo.to_planes(), &f.photo.to_planes(), &doc)
            })
        });
        Ok((doc, ov))
    };
    let (doc, overlay) = match catch_unwind(AssertUnwindSafe(work)) {
        Ok(Ok(done)) => done,
        Ok(Err(e)) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(1));
        }
        Err(_) => {
            eprintln!(
                "error: internal error while comparing (a bug in scarscope; please report it)"
            );
            return Ok(ExitCode::from(1));
        }
    };
    let c = &doc.summary.counts_by_status;
    eprintln!(
        "{} → {}: registered (scale {:.3}, rotation {:.2}°, residual {:.2} px, {} tiles); {} tracks: {} improved, {} worsened, {} stable, {} resolved, {} new",
        a.after.display(),
        a.before.display(),
        doc.registration.scale,
        doc.registration.rotation_deg,
        doc.registration.residual_px,
        doc.registration.inliers,
        doc.matches.len(),
        c.improved,
        c.worsened,
        c.stable,
        c.resolved,
        c.new
    );
    for w in &doc.warnings {
        eprintln!("warning: {w}");
    }
    let mut failed = false;
    let t0 = std::time::Instant::now();
    match to_json_bytes(&doc) {
        Ok(bytes) => match a.out.as_ref().filter(|p| p.as_os_str() != "-") {
            Some(p) => {
                if let Err(e) = write_atomic(p, &bytes) {
                    eprintln!("error: {e}");
                    failed = true;
                }
            }
            None => {
                let mut out = std::io::stdout().lock();
                if let Err(e) = out.write_all(&bytes).and_then(|()| out.flush()) {
                    eprintln!("error: cannot write to standard output: {e}");
                    failed = true;
                }
            }
        },
        Err(e) => {
            eprintln!("error: cannot serialise the report: {e}");
            failed = true;
        }
    }
    if let (Some(p), Some(img)) = (&a.overlay, &overlay) {
        if let Err(e) = write_png(img, p) {
            eprintln!("error: {e}");
            failed = true;
        }
    }
    if let Some(p) = &a.html {
        let written = compare_page(&doc, overlay.as_ref())
            .map_err(|e| e.to_string())
            .and_then(|html| write_atomic(p, html.as_bytes()).map_err(|e| e.to_string()));
        if let Err(e) = written {
            eprintln!("error: {e}");
            failed = true;
        }
    }
    if a.timings {
        t.add("write", t0.elapsed().as_secs_f64());
        eprintln!("{}", t.to_json_line());
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
