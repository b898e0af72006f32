//! Single-photo analysis: runs the stages in order on one loaded photo —
//! normalize → intrinsics → (light estimate) → relief → segment → measure — and returns the
//! scars, the light and calibration used, a summary and the warnings a reader must see.

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use crate::intrinsics::{separate, Intrinsics};
use crate::load::{PlaneSource, Reduced};
use crate::measure::{measure, MeasureContext, PitReading, Scar, ScarType};
use crate::normalize::{normalize_reduced, CEIL, FLOOR};
use crate::pitfit::{estimate_elevation, fit_pits, PitFit, PitFitOptions};
use crate::relief::{
    estimate_azimuth, relief_on_surface_reading, Light, LightSource, ReliefParams, ShadingCosines,
    ASSUMED_ELEVATION_DEG, TILT_SHARE,
};
use crate::segment::{segment, Regions, SegmentParams};
use crate::symmetry::{symmetric_relief_keeping_cosines, ScarLabels};
use crate::timings::Timings;
use crate::validate::{check_params, check_reduced, empty_result_warning, Unmeasurable};

/// Why a photo could not be analysed at all.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum AnalysisError {
    /// Too small to hold even one scar at the processing scale.
    #[error("the photo is {width}×{height} px, too small to analyse (at least {min} px per side at the processing scale is needed)")]
    TooSmall {
        /// Width, px.
        width: usize,
        /// Height, px.
        height: usize,
        /// Minimum side at the processing scale.
        min: usize,
    },
    /// A parameter is out of its meaningful range.
    #[error("invalid parameter {name}: {reason}")]
    InvalidParameter {
        /// The parameter.
        name: &'static str,
        /// Why.
        reason: String,
    },
    /// The photo holds nothing that can be measured (blank, flat, clipped); refused rather
    /// than reported as "0 scars".
    #[error("nothing measurable here: {0}")]
    NothingMeasurable(#[from] Unmeasurable),
}

/// Where the pixel scale came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Calibration {
    /// Size of one camera pixel on the skin, mm (null: uncalibrated, mm figures absent).
    pub mm_per_px: Option<f64>,
    /// "command line", "manifest", … or "none".
    pub source: String,
}

/// Parameters of one analysis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AnalyzeParams {
    /// Pixel scale, if known.
    pub calibration: Calibration,
    /// Light azimuth, degrees (None: estimate).
    pub light_azimuth_deg: Option<f64>,
    /// Light elevation, degrees (None: assume a typical clinical value).
    pub light_elevation_deg: Option<f64>,
    /// Ambient light as a fraction of the key light (physical model).
    pub ambient: f64,
    /// Share (0–1) of the healthy skin's smooth brightness read as the skin's tilt to the
    /// light; the rest is read as the light's fall-off or vignetting ([`TILT_SHARE`]: one
    /// photo cannot tell them apart). 1 suits even lighting (diffuse panels, lens corrections
    /// on), 0 flat skin under a flash.
    #[serde(default = "crate::relief::default_tilt_share")]
    pub tilt_share: f64,
    /// Target size of a processing pixel, mm (photos are box-downsampled towards it).
    pub processing_mm_per_px: f64,
    /// Depth a scar must reach at least, mm.
    pub min_depth_mm: f64,
    /// Depth a scar must reach in noise σ of the photo's healthy skin.
    pub noise_k: f64,
    /// Smallest footprint diameter kept, mm.
    pub min_diameter_mm: f64,
    /// Field of view assumed when uncalibrated, mm along the long side (sets filter scales only).
    pub assumed_field_mm: f64,
}

impl Default for AnalyzeParams {
    fn default() -> Self {
        AnalyzeParams {
            calibration: Calibration {
                mm_per_px: None,
                source: "none".into(),
            },
            light_azimuth_deg: None,
            light_elevation_deg: None,
            ambient: ReliefParams::default().ambient,
            tilt_share: TILT_SHARE,
            processing_mm_per_px: 0.1,
            min_depth_mm: 0.05,
            noise_k: 5.0,
            min_diameter_mm: 0.35,
            assumed_field_mm: 60.0,
        }
    }
}

/// Counts and totals over a photo's scars.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Summary {
    /// Number of scars.
    pub count: usize,
    /// Sum of footprint areas, mm².
    pub total_area_mm2: Option<f64>,
    /// Sum of volumes, mm³.
    pub total_volume_mm3: Option<f64>,
    /// Mean of maximum depths, mm.
    pub mean_depth_mm: Option<f64>,
    /// Counts per type.
    pub counts_by_type: TypeCounts,
    /// ECCA count bin: "<5", "5-20" or ">20".
    pub ecca_count_bin: String,
    /// Goodman–Baron quantitative count bin: "0", "1-10", "11-20" or ">20".
    pub goodman_baron_count_bin: String,
}

/// Scar counts per type.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct TypeCounts {
    /// Icepick scars.
    pub icepick: usize,
    /// Boxcar scars.
    pub boxcar: usize,
    /// Rolling scars.
    pub rolling: usize,
}

/// Scale at which the stages ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Processing {
    /// Camera pixels per processing pixel.
    pub factor: usize,
    /// Size of a processing pixel, mm (assumed when uncalibrated).
    pub mm_per_px: f64,
    /// Whether `mm_per_px` is assumed rather than calibrated.
    pub scale_assumed: bool,
    /// Robust σ of depth over healthy skin, mm.
    pub depth_noise_mm: f64,
    /// Depth threshold a scar had to clear, mm.
    pub depth_threshold_mm: f64,
    /// Optical-density RMS of the relief signal at scar scales.
    pub relief_signal: f64,
    /// Anisotropy of shading (0 = no directional light).
    pub shading_anisotropy: f64,
}

/// Everything one analysis produces.
#[derive(Debug, Clone)]
pub struct Analysis {
    /// Scars, ids 1.. in raster order.
    pub scars: Vec<Scar>,
    /// Light used.
    pub light: Light,
    /// Calibration used.
    pub calibration: Calibration,
    /// Processing scale and signal figures.
    pub processing: Processing,
    /// Summary.
    pub summary: Summary,
    /// Things the reader must know.
    pub warnings: Vec<String>,
    /// Labels at processing resolution (for overlays).
    pub regions: Regions,
    /// Shading and chromophores (for overlays and reports).
    pub intrinsics: Intrinsics,
}

/// Summarise a list of scars.
pub fn summarize(scars: &[Scar], calibrated: bool) -> Summary {
    let mut counts = TypeCounts::default();
    for s in scars {
        match s.kind {
            ScarType::Icepick => counts.icepick += 1,
            ScarType::Boxcar => counts.boxcar += 1,
            ScarType::Rolling => counts.rolling += 1,
        }
    }
    let n = scars.len();
    let sum = |f: fn(&Scar) -> Option<f64>| -> Option<f64> {
        // A fold from +0.0: `sum()` of nothing is −0.0, which would print as "-0.0 mm²".
        calibrated.then(|| scars.iter().filter_map(f).fold(0.0, |a, b| a + b))
    };
    Summary {
        count: n,
        total_area_mm2: sum(|s| s.area_mm2),
        total_volume_mm3: sum(|s| s.volume_mm3),
        mean_depth_mm: if n > 0 {
            sum(|s| s.depth_mm).map(|v| v / n as f64)
        } else {
            None
        },
        counts_by_type: counts,
        ecca_count_bin: match n {
            0..=4 => "<5",
            5..=20 => "5-20",
            _ => ">20",
        }
        .into(),
        goodman_baron_count_bin: match n {
            0 => "0",
            1..=10 => "1-10",
            11..=20 => "11-20",
            _ => ">20",
        }
        .into(),
    }
}

/// Full-resolution pixels per processing pixel (along a side) of a valid `width`×`height`
/// photo under `p`: the factor [`analyze`] reduces the photo by before its stages run, so
/// the analysis planes hold about (width / factor)·(height / factor) pixels each. Invalid
/// parameters give 1 (the analysis rejects them anyway).
pub fn processing_factor(p: &AnalyzeParams, width: usize, height: usize) -> usize {
    processing_reduction(p, width, height).map_or(1, |r| r.0)
}

/// Analyse one photo.
pub fn analyze<P: PlaneSource + ?Sized>(
    planes: &P,
    p: &AnalyzeParams,
) -> Result<Analysis, AnalysisError> {
    analyze_timed(planes, p, &mut Timings::new())
}

/// Camera pixels per processing pixel.
fn factor_of(processing_mm_per_px: f64, cam_mm: f64) -> usize {
    ((processing_mm_per_px / cam_mm).floor() as usize).max(1)
}

/// The factor [`analyze`] will reduce a `w`×`h` photo by with parameters `p` (the
/// `processing.factor` of its result), and the clipping limits it reduces with; None when the
/// calibration is not a plausible pixel size (the analysis then refuses the photo). Lets a
/// caller make that reduction ahead of the analysis ([`crate::load::Prereduced`]).
pub fn processing_reduction(p: &AnalyzeParams, w: usize, h: usize) -> Option<(usize, f32, f32)> {
    let cam_mm = match p.calibration.mm_per_px {
        Some(v) if v.is_finite() && v > 0.0 && v < 10.0 => v,
        Some(_) => return None,
        None => p.assumed_field_mm / w.max(h).max(1) as f64,
    };
    Some((factor_of(p.processing_mm_per_px, cam_mm), FLOOR, CEIL))
}

/// [`analyze`], adding the wall time of each stage to `t`: normalise, intrinsics, light (the
/// band-pass filters and structure tensor of the azimuth estimate), relief, segment, measure.
pub fn analyze_timed<P: PlaneSource + ?Sized>(
    planes: &P,
    p: &AnalyzeParams,
    t: &mut Timings,
) -> Result<Analysis, AnalysisError> {
    let reduce = |f: usize, lo: f32, hi: f32| Ok(planes.reduce(f, lo, hi));
    analyze_inner(planes.width(), planes.height(), reduce, p, t, false).map(|(a, _)| a)
}

/// The relief map of one analysis at processing resolution, kept on request
/// ([`analyze_keeping_relief`]) so that two sessions can be measured over the same support
/// ([`crate::change`]). Small next to the photo (one f32 per processing pixel); callers keep
/// it only while they compare.
#[derive(Debug, Clone)]
pub struct ReliefMap {
    /// Height, up positive, in mm (assumed mm when uncalibrated), one value per processing
    /// pixel (the grid of `Analysis::regions.labels`).
    pub height: Array2<f32>,
    /// Label in `Analysis::regions.labels` of each scar, parallel to `Analysis::scars`.
    pub scar_labels: Vec<u32>,
    /// The light cosines the pit models were fitted to (same grid), so that a pit fitted on
    /// another session can be refitted here ([`crate::pitfit::refit_pit`]).
    pub cosines: ShadingCosines,
    /// Per label (index label − 1): the accepted pit model ([`crate::pitfit`]), processing
    /// pixels; None where none was fitted or it explained too little.
    pub pits: Vec<Option<PitFit>>,
}

/// [`analyze`], also returning the relief map the scars were measured on.
pub fn analyze_keeping_relief<P: PlaneSource + ?Sized>(
    planes: &P,
    p: &AnalyzeParams,
) -> Result<(Analysis, ReliefMap), AnalysisError> {
    analyze_keeping_relief_timed(planes, p, &mut Timings::new())
}

/// [`analyze_keeping_relief`], adding the wall time of each stage to `t`.
///
/// # Errors
///
/// As [`analyze`].
pub fn analyze_keeping_relief_timed<P: PlaneSource + ?Sized>(
    planes: &P,
    p: &AnalyzeParams,
    t: &mut Timings,
) -> Result<(Analysis, ReliefMap), AnalysisError> {
    let reduce = |f: usize, lo: f32, hi: f32| Ok(planes.reduce(f, lo, hi));
    let (a, kept) = analyze_inner(planes.width(), planes.height(), reduce, p, t, true)?;
    let scar_labels = scar_labels(&a.scars, &a.regions.labels, a.processing.factor);
    let dim = a.regions.labels.dim();
    let (height, cosines, pits) = kept.unwrap_or_else(|| {
        let cosines = ShadingCosines {
            cos_nl: Array2::zeros(dim),
            local_se: Array2::zeros(dim),
        };
        (Array2::zeros(dim), cosines, Vec::new())
    });
    Ok((
        a,
        ReliefMap {
            height,
            scar_labels,
            cosines,
            pits,
        },
    ))
}

/// Label of each scar: the label covering most of its bounding box (a footprint lies inside
/// its label's region and fills most of its box; labels are not kept by measurement).
fn scar_labels(scars: &[Scar], labels: &Array2<u32>, factor: usize) -> Vec<u32> {
    let (h, w) = labels.dim();
    scars
        .iter()
        .map(|s| {
            let f = factor.max(1);
            let [x0, y0, x1, y1] = s.bbox_px.map(|v| v as usize / f);
            let mut counts: std::collections::BTreeMap<u32, usize> = Default::default();
            for y in y0..=y1.min(h.saturating_sub(1)) {
                for x in x0..=x1.min(w.saturating_sub(1)) {
                    let l = labels[[y, x]];
                    if l != 0 {
                        *counts.entry(l).or_default() += 1;
                    }
                }
            }
            counts
                .into_iter()
                .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
                .map_or(0, |(l, _)| l)
        })
        .collect()
}

/// [`analyze_timed`] of a `width`×`height` photo whose reduction by [`processing_reduction`]
/// is already made (so the photo itself can be dropped before the analysis runs, and its
/// memory reused by the analysis).
///
/// # Errors
///
/// As [`analyze`]; also when `reduced` is not the size that reduction gives.
pub fn analyze_reduced_timed(
    reduced: Reduced,
    width: usize,
    height: usize,
    p: &AnalyzeParams,
    t: &mut Timings,
) -> Result<Analysis, AnalysisError> {
    let reduce = move |f: usize, _: f32, _: f32| {
        let want = (height.div_ceil(f.max(1)), width.div_ceil(f.max(1)));
        let dims = reduced.planes.iter().map(|c| c.dim());
        if dims.clone().all(|d| d == want) {
            Ok(reduced)
        } else {
            Err(AnalysisError::InvalidParameter {
                name: "reduced",
                reason: format!(
                    "planes of {:?} are not the reduction by {f} of a {width}×{height} photo",
                    dims.collect::<Vec<_>>()
                ),
            })
        }
    };
    analyze_inner(width, height, reduce, p, t, false).map(|(a, _)| a)
}

/// What an analysis keeps for paired change: its first relief, its light cosines and its
/// accepted pit models per label.
type KeptMaps = (Array2<f32>, ShadingCosines, Vec<Option<PitFit>>);

fn analyze_inner(
    w: usize,
    h: usize,
    reduce: impl FnOnce(usize, f32, f32) -> Result<Reduced, AnalysisError>,
    p: &AnalyzeParams,
    t: &mut Timings,
    keep_relief: bool,
) -> Result<(Analysis, Option<KeptMaps>), AnalysisError> {
    check_params(p)?;
    let calibrated = p.calibration.mm_per_px.is_some();
    let mut warnings = Vec::new();
    let cam_mm = match p.calibration.mm_per_px {
        Some(v) if v.is_finite() && v > 0.0 && v < 10.0 => v,
        Some(v) => {
            return Err(AnalysisError::InvalidParameter {
                name: "mm_per_px",
                reason: format!("{v} is not a plausible pixel size (0 < mm_per_px < 10)"),
            })
        }
        None => {
            warnings.push(format!(
                "no calibration: mm figures are absent; filter scales assume the photo's long side spans {} mm",
                p.assumed_field_mm
            ));
            p.assumed_field_mm / w.max(h).max(1) as f64
        }
    };
    for (name, v, lo, hi) in [
        ("light_azimuth_deg", p.light_azimuth_deg, -360.0, 720.0),
        ("light_elevation_deg", p.light_elevation_deg, 1.0, 89.0),
    ] {
        if let Some(v) = v {
            if !(v.is_finite() && v >= lo && v <= hi) {
                return Err(AnalysisError::InvalidParameter {
                    name,
                    reason: format!("{v} is outside {lo}…{hi}"),
                });
            }
        }
    }
    let factor = factor_of(p.processing_mm_per_px, cam_mm);
    let unit = cam_mm * factor as f64;
    let min_side = 32;
    if w / factor < min_side || h / factor < min_side {
        return Err(AnalysisError::TooSmall {
            width: w,
            height: h,
            min: min_side,
        });
    }
    let px = |mm: f64| (mm / unit) as f32;
    // One reduction to the processing scale serves the input checks and normalisation.
    let reduced = t.time("normalise", || reduce(factor, FLOOR, CEIL))?;
    check_reduced(&reduced, min_side * min_side * factor * factor)?;
    let norm = t.time("normalise", || normalize_reduced(reduced, factor, px(8.0)));
    if norm.clipped_fraction > 0.02 {
        warnings.push(format!(
            "{:.1} % of pixels are clipped to black or white in some channel: a channel clipped alone is rebuilt from the other two, but relief where all are clipped is unknown and depths near clipped patches are less certain",
            100.0 * norm.clipped_fraction
        ));
    }
    let intr = t.time("intrinsics", || separate(&norm, px(0.15).max(1.0)));
    drop(norm);

    let est = t.time("light", || estimate_azimuth(&intr.shading.view(), unit));
    let low_relief = est.relief_signal < 0.004 || est.anisotropy < 0.08;
    if low_relief {
        warnings.push(format!(
            "too little relief signal (shading contrast {:.4} OD, directionality {:.2}): the photo looks frontally lit, cross-polarised or out of focus; scars cannot be measured reliably from it",
            est.relief_signal, est.anisotropy
        ));
    }
    let (azimuth_deg, source, confidence) = match p.light_azimuth_deg {
        Some(a) => (a.rem_euclid(360.0), LightSource::Given, 1.0),
        None => {
            if est.confidence < 0.3 {
                warnings.push(format!(
                    "light azimuth estimated with low confidence ({:.2}); give --light-azimuth if known",
                    est.confidence
                ));
            }
            (est.azimuth_deg, LightSource::Estimated, est.confidence)
        }
    };
    let rp = ReliefParams {
        ambient: p.ambient,
        tilt_share: p.tilt_share,
        ..Default::default()
    };
    let sp = segment_params(p, unit, azimuth_deg);
    // The relief along the light at elevation e, and its segmentation.
    let relief_at = |e: f64, t: &mut Timings| {
        let (rel, reading) = t.time("relief", || {
            // The light's elevation over the skin itself, from how bright the healthy skin is.
            relief_on_surface_reading(
                &intr.shading.view(),
                Some(&intr.flat_shading.view()),
                azimuth_deg,
                e,
                unit,
                &rp,
            )
        });
        let regions = t.time("segment", || segment(&rel.height.view(), &sp));
        (rel, reading, regions)
    };
    // Without the elevation given, scars are found under the assumed one, and the small
    // pits' shading then tells the elevation (crate::pitfit::estimate_elevation); the relief
    // is read again under it. Where too few pits are found the first reading stands.
    let (elevation_deg, elevation_source, elevation_pits, first) = match p.light_elevation_deg {
        Some(e) => (e, LightSource::Given, None, None),
        None => {
            let first = relief_at(ASSUMED_ELEVATION_DEG, t);
            let est = t.time("elevation", || {
                estimate_elevation(
                    &intr.shading.view(),
                    &intr.flat_shading.view(),
                    &first.2.labels.view(),
                    &first.0.height.view(),
                    first.2.count,
                    azimuth_deg,
                    unit,
                    &rp,
                    PIT_MAX_RADIUS_MM / unit,
                    ASSUMED_ELEVATION_DEG,
                )
            });
            match est {
                Some(e) => (e.elevation_deg, LightSource::Estimated, Some(e.pits), None),
                None => (
                    ASSUMED_ELEVATION_DEG,
                    LightSource::Assumed,
                    None,
                    Some(first),
                ),
            }
        }
    };
    let light = Light {
        azimuth_deg,
        elevation_deg,
        source,
        elevation_source,
        confidence,
    };
    let (rel, reading, regions) = match first {
        Some(f) => f,
        None => relief_at(elevation_deg, t),
    };
    if rel.shadow_fraction > 0.01 {
        warnings.push(format!(
            "{:.1} % of the skin is in attached shadow: depths of the steepest walls are lower bounds",
            100.0 * rel.shadow_fraction
        ));
    }
    warnings.extend(held_back_warning(
        regions.count,
        regions.held_back,
        regions.seed_snr,
        sp.snr_seed,
    ));
    // Scar walls read in mirrored pairs (crate::symmetry) for the single-photo measurement.
    // The relief kept for paired change stays the first one: the pairing is confined to each
    // photo's own footprints, which differ between sessions (measured: area-change Spearman
    // 0.73 → 0.72 and 0.69 → 0.57 on two phantom sets when paired on the paired relief).
    let measured_height = t.time("symmetry", || {
        let scars = ScarLabels {
            labels: regions.labels.view(),
            count: regions.count,
            height: rel.height.view(),
        };
        symmetric_relief_keeping_cosines(reading, &scars, azimuth_deg, unit, &rp)
    });
    let (measured_height, reading) = measured_height;
    let pits = t.time("pit fit", || {
        fit_pits(
            &reading,
            &regions.labels.view(),
            &rel.height.view(),
            regions.count,
            azimuth_deg,
            unit,
            PitFitOptions {
                max_radius_px: PIT_MAX_RADIUS_MM / unit,
                search: elevation_source == LightSource::Given,
            },
        )
    });
    // The cosines are dropped here unless kept for paired change.
    let kept_cosines = keep_relief.then_some(reading);
    let pits: Vec<Option<PitFit>> = pits
        .into_iter()
        .map(|f| f.filter(PitFit::accepted))
        .collect();
    let pit_readings: Vec<Option<PitReading>> = pits
        .iter()
        .map(|f| {
            f.map(|f| PitReading {
                depth: f.depth_px * unit,
                area_px: f.area_px,
            })
        })
        .collect();
    // The first relief and the pit models are dropped here unless kept for paired change.
    let kept = kept_cosines.map(|c| (rel.height, c, pits));
    // Depth scales about as tan e: the estimated elevation's error on 36 phantom photos
    // (median 4°, 90th percentile 8.5°) is ±20–25 % of depth at its 90th percentile, the
    // assumed one's (up to 18° over 25–60° light) twice that.
    let model_rel = match (source, elevation_source) {
        (LightSource::Given, LightSource::Given) => 0.25,
        (_, LightSource::Given) => 0.3,
        (_, LightSource::Estimated) => 0.35,
        _ => 0.5,
    };
    let from_pits = elevation_pits
        .map(|n| format!(" from the shading of {n} pits"))
        .unwrap_or_default();
    let depth_basis = format!(
        "shading (Lambertian, ambient {:.2}) integrated along the light, scar walls read in mirrored pairs about each scar's centre; azimuth {} {:.0}°, elevation {} {:.0}°{from_pits}",
        p.ambient,
        source_word(source),
        azimuth_deg,
        source_word(elevation_source),
        elevation_deg
    );
    let ctx = MeasureContext {
        factor,
        proc_unit_per_px: unit,
        calibrated,
        model_rel_uncertainty: model_rel,
        depth_basis,
        pits: pit_readings,
    };
    let scars = t.time("measure", || {
        measure(
            &regions,
            &measured_height.view(),
            &intr.melanin.view(),
            &intr.erythema.view(),
            &ctx,
        )
    });
    warnings.extend(empty_result_warning(scars.len(), low_relief));
    let summary = summarize(&scars, calibrated);
    drop(measured_height);
    let analysis = Analysis {
        scars,
        light,
        calibration: Calibration {
            mm_per_px: p.calibration.mm_per_px,
            source: if calibrated {
                p.calibration.source.clone()
            } else {
                "none".into()
            },
        },
        processing: Processing {
            factor,
            mm_per_px: unit,
            scale_assumed: !calibrated,
            depth_noise_mm: regions.noise as f64,
            depth_threshold_mm: regions.threshold as f64,
            relief_signal: est.relief_signal,
            shading_anisotropy: est.anisotropy,
        },
        summary,
        warnings,
        regions,
        intrinsics: intr,
    };
    Ok((analysis, kept))
}

/// Scars up to this equivalent radius (mm) get a pit model fitted to their shading
/// ([`crate::pitfit`]): icepicks and boxcars, steep-walled (the classifier's boxcar / rolling
/// boundary lies near 4.2 mm wide); rolling scars, wider and gentle, are read well pixel by
/// pixel and their smooth rims are not of the model's family.
pub const PIT_MAX_RADIUS_MM: f64 = 2.0;

/// Segmentation parameters of an analysis at `unit` mm per processing pixel: detection
/// scales from the smallest icepick (0.5 mm) to the largest rolling scar (8 mm) — a difference
/// of Gaussians with centre σ responds best to a pit of radius ≈ 1.5–2 σ — and the noise,
/// size and footprint rules; `azimuth_deg` is the light the relief was integrated along.
pub fn segment_params(p: &AnalyzeParams, unit: f64, azimuth_deg: f64) -> SegmentParams {
    let px = |mm: f64| (mm / unit) as f32;
    let mut scales_px = Vec::new();
    // Pores (0.1–0.2 mm) are real depressions but not scars: the finest scale sits above them.
    let mut s_mm = 0.2;
    while s_mm <= 2.4 {
        let s = px(s_mm).max(0.8);
        if scales_px.last().is_none_or(|l: &f32| s > l * 1.2) {
            scales_px.push(s);
        }
        s_mm *= 1.5;
    }
    SegmentParams {
        scales_px,
        surround_ratio: 2.5,
        snr_seed: p.noise_k as f32,
        fdr: 0.1,
        snr_extent: 0.5 * p.noise_k as f32,
        min_depth: p.min_depth_mm as f32,
        min_area_px: (std::f64::consts::PI * (0.5 * p.min_diameter_mm / unit).powi(2)).ceil()
            as usize,
        // Furrows are 0.05–0.15 mm wide; scar walls are wider.
        furrow_px: (0.1 / unit).round().max(1.0) as usize,
        ring_k: 2.0,
        light_azimuth_deg: Some(azimuth_deg),
    }
}

/// What to say when the mirror null (`segment`) held back depressions that reached the
/// detection floor (`floor` σ) but not the threshold the photo's own bumps set (`seed` σ):
/// always when that leaves no scar at all (never a silent "no scars"), and when the threshold
/// rose to more than twice the floor (on the 36-photo phantom grid it stays within 1.5×,
/// on its 36 pigment-only phantoms within 2×).
pub fn held_back_warning(count: usize, held: usize, seed: f32, floor: f32) -> Option<String> {
    if held == 0 {
        return None;
    }
    let what = if held == 1 {
        "1 depression".to_string()
    } else {
        format!("{held} depressions")
    };
    if count == 0 {
        Some(format!(
            "no scar reported, but {what} reached {floor:.1}–{seed:.1} σ: the photo shows bumps as strong, so they cannot be told from skin texture; if scars are visible, check the light direction and the focus"
        ))
    } else if seed > 2.0 * floor {
        Some(format!(
            "{what} of {floor:.1}–{seed:.1} σ held back: the photo's own bumps reach {seed:.1} σ (texture, papules or artefacts), more than twice the usual threshold; shallow scars may be missing"
        ))
    } else {
        None
    }
}

fn source_word(s: LightSource) -> &'static str {
    match s {
        LightSource::Given => "given",
        LightSource::Estimated => "estimated",
        LightSource::Assumed => "assumed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depressions_held_back_by_the_null_are_never_silent_when_no_scar_is_left() {
        let none = held_back_warning(0, 3, 12.4, 5.0).expect("no scar left: a warning");
        assert!(
            none.contains("no scar reported, but 3 depressions"),
            "{none}"
        );
        assert!(
            held_back_warning(0, 0, 5.0, 5.0).is_none(),
            "nothing held back"
        );
        let raised = held_back_warning(4, 2, 11.0, 5.0).expect("threshold above 2× floor");
        assert!(
            raised.contains("2 depressions of 5.0–11.0 σ held back"),
            "{raised}"
        );
        assert!(
            held_back_warning(4, 2, 7.0, 5.0).is_none(),
            "an ordinary threshold"
        );
    }

    #[test]
    fn a_prepared_reduction_gives_the_same_analysis_and_a_wrong_one_is_refused() {
        // A rendered phantom with scars, so the two analyses have something to agree on.
        let cfg = crate::phantom::SubjectConfig {
            width: 400,
            height: 300,
            px_per_mm: 20.0,
            sessions: 1,
            ..Default::default()
        };
        let subject = crate::phantom::Subject::generate("prepared", 3, &cfg);
        let planes = crate::load::load_bytes(
            &subject.render_jpeg(0),
            std::path::Path::new("prepared.jpg"),
            &crate::load::LoadLimits::default(),
        )
        .expect("phantom decodes")
        .planes;
        let (w, h) = (planes.width(), planes.height());
        let p = AnalyzeParams {
            calibration: Calibration {
                mm_per_px: Some(1.0 / 20.0),
                source: "phantom".into(),
            },
            ..Default::default()
        };
        let direct = analyze(&planes, &p).expect("analyses");
        assert!(
            !direct.scars.is_empty(),
            "the phantom's scars are found: {:?}",
            direct.warnings
        );
        let (f, lo, hi) = processing_reduction(&p, w, h).expect("valid calibration");
        let prepared =
            analyze_reduced_timed(planes.reduce(f, lo, hi), w, h, &p, &mut Timings::new())
                .expect("analyses");
        assert_eq!(
            format!("{:?}", direct.scars),
            format!("{:?}", prepared.scars)
        );
        assert_eq!(direct.warnings, prepared.warnings);
        let wrong = planes.reduce(f + 1, lo, hi);
        assert!(matches!(
            analyze_reduced_timed(wrong, w, h, &p, &mut Timings::new()),
            Err(AnalysisError::InvalidParameter {
                name: "reduced",
                ..
            })
        ));
    }
}
