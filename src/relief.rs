//! Relief: shading + light direction → a height map in millimetres, with its noise level.
//!
//! Lambertian skin under a key light of azimuth a and elevation e, plus ambient α (a fraction
//! of the key light), gives a ratio to flat skin of R = (sin(e − φ) + α)/(sin e + α), where
//! tan φ is the slope of the surface along the in-plane direction u towards the light. The
//! ratio is inverted pixel by pixel for that slope (exact in 1-D, so steep scar walls are not
//! flattened by a linearisation), then the slope field is integrated in the Fourier domain:
//! Z = −i k_u G / (k_u² + ε k_v² + k_c²). The small ε damps streaks across the light, k_c
//! forgets offsets longer than a few centimetres; for round scars the ε term shrinks depths by
//! exactly 1/(1 + √ε), which is corrected.
//!
//! When the light is not given, its azimuth is estimated: shading is the derivative of the
//! relief along u, so the energy of its gradient is concentrated along u (structure tensor);
//! which end of that axis the light comes from is decided by how the dark walls bend, since
//! depressions dominate scarred skin and a depression's dark wall hugs it on the light's
//! side. Elevation cannot be recovered from one Lambertian image (the bas-relief ambiguity:
//! relief scale and cot e trade off), so without it a typical clinical elevation is assumed
//! and the depth uncertainty widened accordingly.

use std::sync::Arc;

use ndarray::{Array2, ArrayView2, Axis, Zip};
use rayon::prelude::*;
use realfft::RealFftPlanner;
use rustfft::num_complex::Complex32;
use rustfft::FftPlanner;
use serde::{Deserialize, Serialize};

use crate::filters::{gaussian, gradient, robust_median, robust_stats, wide_gaussian};

/// Where a light direction came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LightSource {
    /// Given by the user (command line or manifest).
    Given,
    /// Estimated from the photo.
    Estimated,
    /// Neither given nor estimable: a typical value assumed.
    Assumed,
}

/// Key-light direction used for one photo.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Light {
    /// Azimuth, degrees counter-clockwise on screen from the right edge.
    pub azimuth_deg: f64,
    /// Elevation above the skin plane, degrees.
    pub elevation_deg: f64,
    /// Source of the azimuth.
    pub source: LightSource,
    /// Source of the elevation.
    pub elevation_source: LightSource,
    /// Confidence in [0, 1] of the azimuth (1 when given).
    pub confidence: f64,
}

/// Elevation assumed when none is given: the geometric middle of clinical raking light
/// (25–60°) in cot e, which is what scales depth.
pub const ASSUMED_ELEVATION_DEG: f64 = 42.0;

/// Result of the azimuth estimate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AzimuthEstimate {
    /// Azimuth, degrees in [0, 360).
    pub azimuth_deg: f64,
    /// Confidence in [0, 1].
    pub confidence: f64,
    /// Directional anisotropy of the shading gradient, (λ1 − λ2)/(λ1 + λ2).
    pub anisotropy: f64,
    /// Mean bend of the dark walls about the chosen azimuth ([`crescent_bend`]; negative:
    /// the bend of depressions lit from there, as expected).
    pub bend: f64,
    /// RMS of band-passed shading (optical density): the relief signal's strength.
    pub relief_signal: f64,
}

/// Band-pass of the shading at scar scales: finer than pores' noise, coarser than the
/// lighting residue.
fn band_pass(shading: &ArrayView2<f32>, mm_per_px: f64) -> Array2<f32> {
    // Fine end above pores and furrows (0.1–0.2 mm), whose texture is strongly directional.
    let s_fine = (0.2 / mm_per_px) as f32;
    let s_coarse = (2.5 / mm_per_px) as f32;
    let a = gaussian(shading, s_fine);
    let b = wide_gaussian(shading, s_coarse);
    let mut out = a;
    Zip::from(&mut out).and(&b).par_for_each(|o, c| *o -= c);
    out
}

/// Estimate the light's azimuth from shading (see the module notes).
pub fn estimate_azimuth(shading: &ArrayView2<f32>, mm_per_px: f64) -> AzimuthEstimate {
    let bp = band_pass(shading, mm_per_px);
    let (gx, gy) = gradient(&bp.view());
    let (jxx, jxy, jyy) = gx
        .axis_iter(Axis(0))
        .into_par_iter()
        .zip(gy.axis_iter(Axis(0)).into_par_iter())
        .map(|(rx, ry)| {
            let mut a = (0f64, 0f64, 0f64);
            for (x, y) in rx.iter().zip(ry.iter()) {
                let (x, y) = (*x as f64, *y as f64);
                // Weighting by |∇|² lets the strong walls of scars outvote skin texture.
                let m = x * x + y * y;
                a.0 += m * x * x;
                a.1 += m * x * y;
                a.2 += m * y * y;
            }
            a
        })
        .collect::<Vec<_>>()
        .into_iter()
        .fold((0.0, 0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1, a.2 + b.2));
    let tr = jxx + jyy;
    let diff = ((jxx - jyy).powi(2) + 4.0 * jxy * jxy).sqrt();
    let anisotropy = if tr > 0.0 { diff / tr } else { 0.0 };
    // Principal axis angle in image axes (y down), then to the screen convention (y up).
    let theta = 0.5 * (2.0 * jxy).atan2(jxx - jyy);
    let mut az = -theta;
    // Sign: which way the dark walls bend (see `crescent_bend`).
    let bend = crescent_bend(&bp.view(), az);
    if bend.mean > 0.0 {
        az += std::f64::consts::PI;
    }
    let (_, sd) = robust_stats(&bp.view());
    let az_deg = az.to_degrees().rem_euclid(360.0);
    // Isotropic relief lit from one side gives anisotropy 0.5. The sign is as trustworthy as
    // the dark blobs agree on their bend: tanh(0.851 t) ≈ erf(t / √2) = 1 − P(a mean at
    // least that far from 0 by chance, either side), t the weighted mean over its standard
    // error.
    let conf_axis = (anisotropy / 0.35).min(1.0);
    let conf_sign = (0.851 * bend.t.abs()).tanh();
    AzimuthEstimate {
        azimuth_deg: az_deg,
        confidence: conf_axis * conf_sign,
        anisotropy,
        bend: -bend.mean.abs(),
        relief_signal: sd as f64,
    }
}

/// How the dark walls bend about an axis ([`crescent_bend`]).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Bend {
    /// Mass-weighted mean over the dark blobs of each one's normalised third moment.
    mean: f64,
    /// That mean over its standard error (0 with fewer than two blobs).
    t: f64,
}

/// Which side of the axis `az` (radians, screen convention) the light comes from, read from
/// how the dark parts of the band-passed optical density `bp` bend. A depression lit from +u
/// is dark on the wall facing away from the light — the wall nearer the light — and that dark
/// part hugs the pit: a crescent or half disc whose middle lies towards the light and whose
/// horns curve back, a negative third moment (u − ū)(v − v̄)² about its own centroid (−0.69
/// of σ_u σ_v² for a thin half-circle arc). A bump's dark side bends the other way, and
/// furrows, straight, not at all. Each blob darker than 2 robust σ contributes its
/// normalised moment, weighted by its dark mass. Unlike the skewness of the relief the light
/// implies (the test before 2026-11-29), this does not depend on how strongly each wall
/// shades: under steep light the wall facing the light is past the brightest normal and
/// reads gentle, its pit leaves a ridge stronger than itself, and the skewness chose the
/// opposite side on four of eight independent renderings at 55–65°.
fn crescent_bend(bp: &ArrayView2<f32>, az: f64) -> Bend {
    use image::{GrayImage, Luma};
    use imageproc::region_labelling::{connected_components, Connectivity};
    let none = Bend { mean: 0.0, t: 0.0 };
    let (h, w) = bp.dim();
    let (med, sd) = robust_stats(bp);
    let thr = med + 2.0 * sd;
    let mask = GrayImage::from_fn(w as u32, h as u32, |x, y| {
        Luma([u8::from(bp[[y as usize, x as usize]] > thr) * 255])
    });
    let comps = connected_components(&mask, Connectivity::Eight, Luma([0u8]));
    let n = comps.pixels().map(|p| p[0]).max().unwrap_or(0) as usize;
    if n == 0 {
        return none;
    }
    // Along the axis (u, towards az) and across it (v), pixel axes x right, y down.
    let (cu, cv) = (az.cos(), -az.sin());
    let uv = |x: u32, y: u32| {
        let (x, y) = (f64::from(x), f64::from(y));
        (x * cu + y * cv, -x * cv + y * cu)
    };
    let dark = |x: u32, y: u32| f64::from(bp[[y as usize, x as usize]] - thr);
    // Per blob: mass and first moments, then central second and third moments.
    let mut first = vec![[0f64; 3]; n];
    for (x, y, p) in comps.enumerate_pixels() {
        if p[0] > 0 {
            let (m, (u, v)) = (dark(x, y), uv(x, y));
            let a = &mut first[p[0] as usize - 1];
            a[0] += m;
            a[1] += m * u;
            a[2] += m * v;
        }
    }
    let mut central = vec![[0f64; 3]; n];
    for (x, y, p) in comps.enumerate_pixels() {
        if p[0] > 0 {
            let a = first[p[0] as usize - 1];
            let (m, (u, v)) = (dark(x, y), uv(x, y));
            let (du, dv) = (u - a[1] / a[0], v - a[2] / a[0]);
            let b = &mut central[p[0] as usize - 1];
            b[0] += m * du * du;
            b[1] += m * dv * dv;
            b[2] += m * du * dv * dv;
        }
    }
    let blobs: Vec<(f64, f64)> = first
        .iter()
        .zip(&central)
        .filter(|(a, b)| a[0] > 0.0 && b[0] > 0.0 && b[1] > 0.0)
        .map(|(a, b)| {
            let (su2, sv2) = (b[0] / a[0], b[1] / a[0]);
            (a[0], b[2] / a[0] / (su2.sqrt() * sv2))
        })
        .collect();
    let mass: f64 = blobs.iter().map(|b| b.0).sum();
    if blobs.len() < 2 || mass <= 0.0 {
        return none;
    }
    let mean = blobs.iter().map(|(m, k)| m * k).sum::<f64>() / mass;
    let var = blobs
        .iter()
        .map(|(m, k)| (m * (k - mean)).powi(2))
        .sum::<f64>()
        / (mass * mass);
    Bend {
        mean,
        t: if var > 0.0 { mean / var.sqrt() } else { 0.0 },
    }
}

/// Length (mm) over which the integration carries an offset along the light: the radius of
/// the largest scar the tool measures (an 8 mm rolling scar). A scar's relief lies within
/// its radius of its rim, while errors that do not close — integrated noise, a trench behind a
/// wall whose shading under-reads — would otherwise run on along the light, where footprints
/// flood them. Scars as wide as that lose some depth (rolling scars on the phantom grid read
/// about 0.07 of their depth less than with a 6.4 mm memory).
pub const INTEGRATION_MEMORY_MM: f64 = 4.0;

/// Parameters of the relief stage.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ReliefParams {
    /// Ambient light as a fraction of the key light.
    pub ambient: f64,
    /// Anisotropic regularisation ε of the integration.
    pub epsilon: f64,
    /// Offsets longer than this (mm) are forgotten by the integration: an offset decays over
    /// cutoff / 2π along the light. See [`INTEGRATION_MEMORY_MM`].
    pub cutoff_mm: f64,
    /// Passes that re-invert the shading with the cross-light slope of the previous relief.
    pub cross_slope_passes: usize,
    /// Width (mm) of the band along the photo's edges over which the slopes fade to zero
    /// before integration. See [`integrate_slope`].
    pub edge_taper_mm: f64,
    /// Share of the healthy skin's smooth brightness (in optical density) read as the skin's
    /// tilt to the light; the rest is taken as the light's own fall-off. See [`TILT_SHARE`].
    #[serde(default = "default_tilt_share")]
    pub tilt_share: f64,
}

/// How much of healthy skin's smooth brightness variation is read as tilt to the light (which
/// changes the light's elevation over the skin, and so how much shading a slope casts) rather
/// than as the light's fall-off or the lens's vignetting (which scale every brightness alike
/// and leave the elevation as it is). One photo cannot tell them apart: both are smooth
/// factors on the brightness, and every clinical photo has both (a cheek is curved; a flash
/// falls off with distance, a lens vignettes). Reading all of it as tilt (share 1) gets tilt
/// right and makes every fall-off a wrong elevation; reading none (0) the reverse. An even
/// split in optical density takes the geometric mean of the two readings of each pixel's
/// irradiance, so whichever of them is the truth, the irradiance given to tilt is off by half
/// (in log) of what the wrong extreme makes it; in depth that leaves about a quarter (tilt)
/// to three fifths (fall-off) of the wrong extreme's error, as the unit tests measure. README
/// "Tilt or fall-off" has the grid measurements; not fitted to them.
pub const TILT_SHARE: f64 = 0.5;

/// [`TILT_SHARE`], for serde defaults of the parameter structs that carry the share.
pub(crate) fn default_tilt_share() -> f64 {
    TILT_SHARE
}

impl Default for ReliefParams {
    fn default() -> Self {
        ReliefParams {
            ambient: 0.1,
            epsilon: 0.03,
            cutoff_mm: 2.0 * std::f64::consts::PI * INTEGRATION_MEMORY_MM,
            cross_slope_passes: 1,
            edge_taper_mm: 2.0,
            tilt_share: TILT_SHARE,
        }
    }
}

/// A height map: up positive, mm (or processing pixels when the photo is uncalibrated).
#[derive(Debug, Clone)]
pub struct Relief {
    /// Height relative to the mean surface.
    pub height: Array2<f32>,
    /// Fraction of pixels in attached shadow (slope there is only a lower bound).
    pub shadow_fraction: f64,
}

/// Invert shading for the slope along the light and integrate it into a height map in the
/// units of `unit_per_px` (mm per processing pixel), treating the skin as flat: every pixel
/// sees the light at `elevation_deg`. See [`relief_on_surface`].
pub fn relief(
    shading: &ArrayView2<f32>,
    azimuth_deg: f64,
    elevation_deg: f64,
    unit_per_px: f64,
    p: &ReliefParams,
) -> Relief {
    relief_on_surface(shading, None, azimuth_deg, elevation_deg, unit_per_px, p)
}

/// Lowest and highest local elevation the tilt correction lets the light take, degrees: below,
/// the skin is nearly in its own shadow; above, the light falls along the normal and slopes
/// no longer shade one way.
const LOCAL_ELEVATION_DEG: (f64, f64) = (5.0, 70.0);

/// Sine of the light's elevation over the local skin surface, from the smooth brightness of
/// that skin (`flat`, optical density relative to the photo's median skin, > 0 darker): flat
/// skin returns (sin e + α) times its irradiance relative to the median, minus ambient.
/// Kept within `lo`…`hi` (the sines of [`LOCAL_ELEVATION_DEG`]).
fn local_sin_elevation(se: f64, alpha: f64, flat: f32, lo: f64, hi: f64) -> f64 {
    // The exponential in f32: its rounding is far below the shading's own noise.
    ((se + alpha) * f64::from((-flat).exp()) - alpha).clamp(lo, hi)
}

/// Per pixel, what the shading says of the light over the skin: the cosine between normal
/// and light, and the sine of the light's elevation over the local surface.
struct LightCosines {
    /// cos(normal, light) per pixel, clamped to 0…1 (0: attached shadow) when asked.
    pub cos_nl: Array2<f32>,
    /// Sine of the light's elevation over the local (healthy) surface per pixel.
    pub local_se: Array2<f32>,
    /// Pixels in attached shadow.
    pub shadow: usize,
}

/// [`LightCosines`] of a shading plane (see [`relief_on_surface`] for `flat`).
fn light_cosines(
    shading: &ArrayView2<f32>,
    flat: Option<&ArrayView2<f32>>,
    elevation_deg: f64,
    alpha: f64,
    tilt_share: f64,
    clamp: bool,
) -> LightCosines {
    let se = elevation_deg.clamp(1.0, 89.0).to_radians().sin();
    // Sine of the local elevation per pixel (the photo's own where the skin is taken as flat).
    let local_se = match flat {
        Some(f) if f.dim() == shading.dim() => {
            let (lo, hi) = LOCAL_ELEVATION_DEG;
            let (lo, hi) = (lo.to_radians().sin(), hi.to_radians().sin());
            let share = tilt_share as f32;
            f.mapv(|v| local_sin_elevation(se, alpha, v * share, lo, hi) as f32)
        }
        _ => Array2::from_elem(shading.dim(), se as f32),
    };
    let mut shadow = 0usize;
    let mut cos_nl = Array2::<f32>::zeros(shading.dim());
    Zip::from(&mut cos_nl)
        .and(shading)
        .and(&local_se)
        .for_each(|c, s, le| {
            let arg = f64::from((-*s).exp()) * (*le as f64 + alpha) - alpha;
            if arg <= 0.0 {
                shadow += 1;
            }
            *c = if clamp { arg.clamp(0.0, 1.0) } else { arg } as f32;
        });
    LightCosines {
        cos_nl,
        local_se,
        shadow,
    }
}

/// The [`ShadingCosines`] of a shading plane read under light at `elevation_deg` (see
/// [`relief_on_surface`] for `flat`), without the relief, and not clamped to 0…1: a pixel
/// brighter than a normal facing the light could be, or darker than the ambient alone, is
/// evidence against the elevation, which clamping would hide (with the clamp, the
/// elevation read from the pits of the four 40 px/mm grid photos ran up to 69–72° for true
/// 25–35.5°).
pub fn shading_cosines(
    shading: &ArrayView2<f32>,
    flat: Option<&ArrayView2<f32>>,
    elevation_deg: f64,
    p: &ReliefParams,
) -> ShadingCosines {
    let c = light_cosines(
        shading,
        flat,
        elevation_deg,
        p.ambient.max(0.0),
        p.tilt_share,
        false,
    );
    ShadingCosines {
        cos_nl: c.cos_nl,
        local_se: c.local_se,
    }
}

/// [`relief`] on curved skin. A cheek is not flat: where it turns away from the light the
/// light grazes it at a lower elevation, so the same slope casts more shading, and reading it
/// with the photo's elevation over-states depth (by cot e over cot e_local, a factor of two
/// for a 10° turn under 25° light). `flat` is the healthy skin's smooth brightness (optical
/// density relative to the photo's median, > 0 darker, e.g. [`Intrinsics::flat_shading`]):
/// the local elevation is what makes flat skin that bright. Lighting fall-off cannot be told
/// apart from tilt in one photo: [`ReliefParams::tilt_share`] of the brightness (in optical
/// density) is read as tilt, the rest as fall-off ([`TILT_SHARE`]). Slopes are then taken
/// against the local surface, which is what depth is measured from.
///
/// [`Intrinsics::flat_shading`]: crate::intrinsics::Intrinsics::flat_shading
pub fn relief_on_surface(
    shading: &ArrayView2<f32>,
    flat: Option<&ArrayView2<f32>>,
    azimuth_deg: f64,
    elevation_deg: f64,
    unit_per_px: f64,
    p: &ReliefParams,
) -> Relief {
    relief_on_surface_reading(shading, flat, azimuth_deg, elevation_deg, unit_per_px, p).0
}

/// What the last pass of [`relief_on_surface`] read from the shading, per pixel: kept for
/// [`crate::symmetry`], which reads scar walls again without repeating the whole-plane work.
#[derive(Debug, Clone)]
pub struct ShadingReading {
    /// Slope along the light, minus the photo's median slope (the field that was integrated).
    pub slope: Array2<f32>,
    /// The median slope removed.
    pub median: f32,
    /// cos(normal, light) per pixel, clamped to 0…1 (0: attached shadow).
    pub cos_nl: Array2<f32>,
    /// Sine of the light's elevation over the local (healthy) surface per pixel.
    pub local_se: Array2<f32>,
}

/// The per-pixel light cosines of a [`ShadingReading`] without its slope plane: what later
/// stages that render a model against the same shading need ([`crate::pitfit`]).
#[derive(Debug, Clone)]
pub struct ShadingCosines {
    /// cos(normal, light) per pixel: clamped to 0…1 (0: attached shadow) as the relief stage
    /// reads it, not clamped from [`shading_cosines`].
    pub cos_nl: Array2<f32>,
    /// Sine of the light's elevation over the local (healthy) surface per pixel.
    pub local_se: Array2<f32>,
}

/// [`relief_on_surface`], also returning the last pass's [`ShadingReading`] (the last slope
/// plane is then held until the caller drops the reading).
pub fn relief_on_surface_reading(
    shading: &ArrayView2<f32>,
    flat: Option<&ArrayView2<f32>>,
    azimuth_deg: f64,
    elevation_deg: f64,
    unit_per_px: f64,
    p: &ReliefParams,
) -> (Relief, ShadingReading) {
    let az = azimuth_deg.to_radians();
    let alpha = p.ambient.max(0.0);
    let LightCosines {
        cos_nl,
        local_se,
        shadow,
    } = light_cosines(shading, flat, elevation_deg, alpha, p.tilt_share, true);
    let gain = (1.0 + p.epsilon.sqrt()) as f32;
    let (sv, cv) = (az.sin() as f32, az.cos() as f32);
    // The shading of a wall depends on its slope across the light too: a normal tilted
    // sideways catches less light (n·l = (sin e − cos e·z_u) / √(1 + z_u² + z_v²)). The
    // first pass assumes z_v = 0; later passes take z_v from the relief integrated so far.
    // Without this, both walls of a pit read darker than they are, the pit does not close,
    // and a trench trails away from every scar.
    let mut cross: Option<Array2<f32>> = None;
    let mut z = Array2::<f32>::zeros((0, 0));
    let mut kept = (Array2::<f32>::zeros((0, 0)), 0.0);
    for pass in 0..=p.cross_slope_passes {
        let mut slope = Array2::<f32>::zeros(shading.dim());
        // Each pass's planes are dropped as soon as the next pass no longer needs them.
        match &cross.take() {
            None => Zip::from(&mut slope)
                .and(&cos_nl)
                .and(&local_se)
                .par_for_each(|g, m, le| {
                    // tan(asin le − asin m), by the tangent of a difference: tan(asin x) =
                    // x / √(1 − x²), so no inverse sine or tangent per pixel.
                    let tan_asin = |x: f64| x / (1.0 - x * x).max(1e-24).sqrt();
                    let (ta, tb) = (tan_asin(*le as f64), tan_asin(*m as f64));
                    *g = ((ta - tb) / (1.0 + ta * tb)).clamp(-4.0, 4.0) as f32;
                }),
            Some(zv) => Zip::from(&mut slope)
                .and(&cos_nl)
                .and(zv)
                .and(&local_se)
                .par_for_each(|g, m, v, le| {
                    let le = *le as f64;
                    let lc = (1.0 - le * le).max(0.0).sqrt();
                    *g = slope_along_light(le, lc, *m as f64, (*v as f64).clamp(-4.0, 4.0))
                        .clamp(-4.0, 4.0) as f32;
                }),
        }
        // Slopes of healthy skin average to zero over a photo; remove any bias the model leaves.
        let med = robust_median(&slope.view());
        slope.par_mapv_inplace(|v| v - med);
        drop(std::mem::take(&mut z));
        z = integrate_slope(
            &slope.view(),
            az,
            p.epsilon,
            p.cutoff_mm / unit_per_px,
            p.edge_taper_mm / unit_per_px,
        );
        z.par_mapv_inplace(|v| v * gain);
        if pass == p.cross_slope_passes {
            kept = (slope, med);
            break; // the last pass's cross slope would go unused
        }
        drop(slope);
        let (gx, gy) = gradient(&z.view());
        // v = (sin a, cos a) in image axes, perpendicular to u = (cos a, −sin a).
        cross = Some(
            Zip::from(&gx)
                .and(&gy)
                .par_map_collect(|x, y| x * sv + y * cv),
        );
    }
    let unit = unit_per_px as f32;
    z.par_mapv_inplace(|v| v * unit);
    let relief = Relief {
        height: z,
        shadow_fraction: shadow as f64 / shading.len().max(1) as f64,
    };
    let reading = ShadingReading {
        slope: kept.0,
        median: kept.1,
        cos_nl,
        local_se,
    };
    (relief, reading)
}

/// Slope along the light, z_u, from the cosine `m` between normal and light and the slope
/// across it, z_v: the root of (sin e − cos e·t)² = m²(1 + z_v² + t²) on the lit branch
/// (sin e − cos e·t ≥ 0). With z_v = 0 it equals tan(e − asin m).
pub(crate) fn slope_along_light(se: f64, ce: f64, m: f64, zv: f64) -> f64 {
    let q2 = 1.0 + zv * zv;
    let a = ce * ce - m * m;
    let disc = (se * se * ce * ce - a * (se * se - m * m * q2)).max(0.0);
    if a.abs() < 1e-9 {
        (se * se - m * m * q2) / (2.0 * se * ce)
    } else {
        (se * ce - disc.sqrt()) / a
    }
}

/// Sizes with only the factors 2, 3 and 5, which rustfft handles fastest.
pub(crate) fn fast_len(n: usize) -> usize {
    let mut m = n.max(2);
    loop {
        let mut k = m;
        for p in [2, 3, 5] {
            while k.is_multiple_of(p) {
                k /= p;
            }
        }
        if k == 1 {
            return m;
        }
        m += 1;
    }
}

/// Integrate a slope field g = ∂z/∂u (u at `azimuth` radians, screen convention) into z,
/// in units of g × pixels. Regularised as described in the module notes.
///
/// The field is zero-padded so the periodic FFT does not wrap scars around, and faded to
/// zero by a cosine taper over the outer `edge_px` pixels (at most a quarter of the photo),
/// which keeps the filters' edge effects of earlier stages out of the relief. The band is
/// narrow on purpose: every slope in it is weakened, so a scar inside it is read shallower
/// or lost (a band an eighth of the photo wide missed half the scars within 3 mm of an edge).
pub fn integrate_slope(
    g: &ArrayView2<f32>,
    azimuth: f64,
    epsilon: f64,
    cutoff_px: f64,
    edge_px: f64,
) -> Array2<f32> {
    let (h, w) = g.dim();
    let pad = ((h.max(w) / 8).clamp(16, 256)).min(h.max(w));
    let (hp, wp) = (fast_len(h + 2 * pad), fast_len(w + 2 * pad));
    let mean = g.iter().map(|v| *v as f64).sum::<f64>() / g.len().max(1) as f64;
    let band = edge_px.round().max(1.0) as usize;
    let taper = |i: usize, n: usize| -> f32 {
        let t = band.min(n / 4).max(1);
        let d = i.min(n - 1 - i);
        if d >= t {
            1.0
        } else {
            (0.5 - 0.5 * (std::f32::consts::PI * (d as f32 + 0.5) / t as f32).cos()).max(0.0)
        }
    };
    let mut buf = Array2::<f32>::zeros((hp, wp));
    let tx: Vec<f32> = (0..w).map(|x| taper(x, w)).collect();
    let m = mean as f32;
    for (y, row) in g.axis_iter(Axis(0)).enumerate() {
        let ty = taper(y, h);
        let mut out = buf.row_mut(y + pad);
        if let Some(out) = out.as_slice_mut() {
            for ((o, v), t) in out[pad..pad + w].iter_mut().zip(row.iter()).zip(&tx) {
                *o = (*v - m) * ty * t;
            }
        }
    }
    let wc = wp / 2 + 1;
    let mut rplan = RealFftPlanner::<f32>::new();
    let r2c = rplan.plan_fft_forward(wp);
    let c2r = rplan.plan_fft_inverse(wp);
    // Row transforms into `rows` (hp × wc), then stored transposed (wc × hp) so column
    // transforms run on contiguous rows. Buffers and scratch are reused per thread.
    let mut rows = Array2::<Complex32>::zeros((hp, wc));
    rows.axis_iter_mut(Axis(0))
        .into_par_iter()
        .zip(buf.axis_iter_mut(Axis(0)).into_par_iter())
        .for_each_init(
            || r2c.make_scratch_vec(),
            |scratch, (mut out, mut input)| {
                if let (Some(i), Some(o)) = (input.as_slice_mut(), out.as_slice_mut()) {
                    // Lengths come from the plan, so the transform cannot fail.
                    let _ = r2c.process_with_scratch(i, o, scratch);
                }
            },
        );
    drop(buf);
    let mut spec = Array2::<Complex32>::zeros((wc, hp));
    transpose_into(&rows, &mut spec);
    let mut cplan = FftPlanner::<f32>::new();
    let fwd: Arc<dyn rustfft::Fft<f32>> = cplan.plan_fft_forward(hp);
    let inv: Arc<dyn rustfft::Fft<f32>> = cplan.plan_fft_inverse(hp);
    let (ca, sa) = (azimuth.cos() as f32, azimuth.sin() as f32);
    let kc2 = {
        let k = 2.0 * std::f64::consts::PI / cutoff_px.max(2.0);
        (k * k) as f32
    };
    let eps = epsilon as f32;
    let norm = 1.0 / (hp as f32 * wp as f32);
    // Wavenumber of each row of the spectrum.
    let kys: Vec<f32> = (0..hp)
        .map(|iy| {
            let fy = if iy <= hp / 2 {
                iy as f32
            } else {
                iy as f32 - hp as f32
            };
            2.0 * std::f32::consts::PI * fy / hp as f32
        })
        .collect();
    let scratch_len = fwd
        .get_inplace_scratch_len()
        .max(inv.get_inplace_scratch_len());
    spec.axis_iter_mut(Axis(0))
        .into_par_iter()
        .enumerate()
        .for_each_init(
            || vec![Complex32::new(0.0, 0.0); scratch_len],
            |scratch, (jx, mut col)| {
                let Some(col) = col.as_slice_mut() else {
                    return;
                };
                fwd.process_with_scratch(col, scratch);
                let kx = 2.0 * std::f32::consts::PI * jx as f32 / wp as f32;
                let nyquist_x = wp % 2 == 0 && jx == wc - 1;
                for (v, &ky) in col.iter_mut().zip(&kys) {
                    // u = (cos a, −sin a) in image axes (y down).
                    let ku = kx * ca - ky * sa;
                    let kv2 = kx * kx + ky * ky - ku * ku;
                    let den = ku * ku + eps * kv2 + kc2;
                    if nyquist_x || den <= 0.0 {
                        *v = Complex32::new(0.0, 0.0);
                    } else {
                        // Z = −i k_u G / den
                        let f = ku / den * norm;
                        *v = Complex32::new(v.im * f, -v.re * f);
                    }
                }
                inv.process_with_scratch(col, scratch);
            },
        );
    // Back to rows (only those of the photo are needed).
    transpose_into(&spec, &mut rows);
    drop(spec);
    let mut z = Array2::<f32>::zeros((h, w));
    z.axis_iter_mut(Axis(0))
        .into_par_iter()
        .enumerate()
        .for_each_init(
            || (vec![0f32; wp], c2r.make_scratch_vec()),
            |(rout, scratch), (y, mut zr)| {
                let mut cin = rows.row(y + pad).to_vec();
                cin[0].im = 0.0;
                if wp % 2 == 0 {
                    cin[wc - 1].im = 0.0;
                }
                let _ = c2r.process_with_scratch(&mut cin, rout, scratch);
                for (x, o) in zr.iter_mut().enumerate() {
                    *o = rout[x + pad];
                }
            },
        );
    z
}

/// `dst` = `src` transposed (shapes (r, c) and (c, r)), in tiles that stay in cache.
fn transpose_into(src: &Array2<Complex32>, dst: &mut Array2<Complex32>) {
    const T: usize = 32;
    let (r, c) = src.dim();
    if dst.dim() != (c, r) {
        return;
    }
    dst.axis_chunks_iter_mut(Axis(0), T)
        .into_par_iter()
        .enumerate()
        .for_each(|(bj, mut block)| {
            let j0 = bj * T;
            let nj = block.nrows();
            for i0 in (0..r).step_by(T) {
                for i in i0..(i0 + T).min(r) {
                    let srow = src.row(i);
                    for dj in 0..nj {
                        block[[dj, i]] = srow[j0 + dj];
                    }
                }
            }
        });
}

#[cfg(test)]
mod tests {
    #[test]
    fn slope_inversion_with_cross_slope_reproduces_the_lambertian_shading() {
        let e = 40f64.to_radians();
        let (se, ce) = (e.sin(), e.cos());
        for (zu, zv) in [
            (0.0, 0.0),
            (0.3, 0.0),
            (-0.5, 0.2),
            (0.4, 0.6),
            (0.6, -0.8),
            (-1.0, 0.5),
        ] {
            let m = (se - ce * zu) / (1.0f64 + zu * zu + zv * zv).sqrt();
            let t = slope_along_light(se, ce, m, zv);
            assert!((t - zu).abs() < 1e-9, "z_u {zu} z_v {zv}: got {t}");
        }
        // Without a cross slope it is the one-dimensional inversion.
        let m = 0.5;
        let phi = e - f64::asin(m);
        assert!((slope_along_light(se, ce, m, 0.0) - phi.tan()).abs() < 1e-12);
    }

    use super::*;

    fn pit(h: usize, w: usize, r: f32, d: f32) -> Array2<f32> {
        Array2::from_shape_fn((h, w), |(y, x)| {
            let rr =
                ((x as f32 - w as f32 / 2.0).powi(2) + (y as f32 - h as f32 / 2.0).powi(2)).sqrt();
            -d * (-(rr / r).powi(2)).exp()
        })
    }

    #[test]
    fn integrating_the_directional_derivative_recovers_a_round_pit_at_any_azimuth() {
        let z = pit(160, 200, 12.0, 3.0);
        let (gx, gy) = gradient(&z.view());
        for az_deg in [0.0f64, 37.0, 90.0, 200.0, 300.0] {
            let a = az_deg.to_radians();
            let (c, s) = (a.cos() as f32, a.sin() as f32);
            let g = Zip::from(&gx).and(&gy).map_collect(|x, y| x * c - y * s);
            let mut zr = integrate_slope(&g.view(), a, 0.03, 1000.0, 20.0);
            zr.mapv_inplace(|v| v * (1.0 + 0.03f32.sqrt()));
            let depth = zr[[0, 0]] - zr[[80, 100]];
            assert!((depth - 3.0).abs() < 0.3, "az {az_deg}: depth {depth}");
        }
    }

    /// A pit 3 mm from the photo's edge reads as deep as one in the middle, at the default
    /// edge band (2 mm at 0.1 mm per pixel); a band an eighth of the photo wide (as the
    /// integration once used) reads it at under half its depth.
    #[test]
    fn a_pit_near_the_edge_reads_as_deep_as_one_in_the_middle() {
        let (h, w, r, d) = (450usize, 600usize, 10.0f32, 3.0f32);
        let pit_at = |cx: f32, cy: f32| {
            Array2::from_shape_fn((h, w), |(y, x)| {
                let rr = ((x as f32 - cx).powi(2) + (y as f32 - cy).powi(2)).sqrt();
                -d * (-(rr / r).powi(2)).exp()
            })
        };
        let a = 30f64.to_radians();
        let (c, s) = (a.cos() as f32, a.sin() as f32);
        let depth = |z: &Array2<f32>, (cx, cy): (usize, usize), edge_px: f64| {
            let (gx, gy) = gradient(&z.view());
            let g = Zip::from(&gx).and(&gy).map_collect(|x, y| x * c - y * s);
            let zr = integrate_slope(&g.view(), a, 0.03, 400.0, edge_px);
            // Against the mean of a ring 3 radii out, inside the photo.
            let ring: Vec<f32> = (0..16)
                .map(|k| {
                    let t = k as f32 * std::f32::consts::PI / 8.0;
                    let x = (cx as f32 + 3.0 * r * t.cos()).clamp(0.0, w as f32 - 1.0);
                    let y = (cy as f32 + 3.0 * r * t.sin()).clamp(0.0, h as f32 - 1.0);
                    zr[[y as usize, x as usize]]
                })
                .collect();
            ring.iter().sum::<f32>() / ring.len() as f32 - zr[[cy, cx]]
        };
        let edge_px = ReliefParams::default().edge_taper_mm / 0.1;
        let middle = depth(&pit_at(300.0, 225.0), (300, 225), edge_px);
        let near = pit_at(30.0, 225.0);
        let at_edge = depth(&near, (30, 225), edge_px);
        let wide_band = depth(&near, (30, 225), (w / 8) as f64);
        assert!(
            (at_edge - middle).abs() < 0.1 * middle,
            "edge {at_edge} middle {middle}"
        );
        assert!(
            wide_band < 0.5 * middle,
            "wide band {wide_band} middle {middle}"
        );
    }

    /// A pit under a Gaussian light on skin whose smooth brightness is `od` darker than the
    /// photo's median, where that darkening comes from the skin turning away from the light
    /// by `tilt` (radians) and from fall-off `od_falloff` (optical density) together; returns
    /// (true depth, read with the photo's elevation, read with all of `od` as tilt, read with
    /// the default [`TILT_SHARE`]).
    fn pit_on_darkened_skin(tilt: f64, od_falloff: f64) -> (f64, f64, f64, f64) {
        let (n, unit) = (200usize, 0.05);
        let (e, alpha) = (35f64.to_radians(), 0.1);
        let (r0, depth) = (1.0, 0.2);
        // Light from the right (azimuth 0); the skin's normal leans away from it by `tilt`.
        let l = [e.cos(), 0.0, e.sin()];
        let lit = |zx: f64, zy: f64| {
            // Surface z = tan(tilt)·x + pit (rising towards the light): the pit's slopes add to the skin's own.
            let (gx, gy) = (zx + tilt.tan(), zy);
            let nn = (1.0 + gx * gx + gy * gy).sqrt();
            ((-gx * l[0] - gy * l[1] + l[2]) / nn).max(0.0) + alpha
        };
        let flat_irr = lit(0.0, 0.0);
        // Normalisation leaves the shading relative to the skin around it: fall-off cancels.
        let shading = Array2::from_shape_fn((n, n), |(y, x)| {
            let (dx, dy) = ((x as f64 - 100.0) * unit, (y as f64 - 100.0) * unit);
            let r2 = (dx * dx + dy * dy) / (r0 * r0);
            let g = depth * 2.0 / (r0 * r0) * (-r2).exp();
            (-(lit(g * dx, g * dy) / flat_irr).ln()) as f32
        });
        // Brightness of the skin against skin facing the light at elevation e, unlit by
        // nothing: the tilt's part and the fall-off's part.
        let od = (-(flat_irr / (e.sin() + alpha)).ln() + od_falloff) as f32;
        let flat = Array2::from_elem((n, n), od);
        let read = |r: &Relief| {
            let z = &r.height;
            let ring = (z[[100, 10]] + z[[100, 190]] + z[[10, 100]] + z[[190, 100]]) / 4.0;
            (ring - z[[100, 100]]) as f64
        };
        let p = ReliefParams::default();
        let all_tilt = ReliefParams {
            tilt_share: 1.0,
            ..p
        };
        let on = |p: &ReliefParams| {
            read(&relief_on_surface(
                &shading.view(),
                Some(&flat.view()),
                0.0,
                35.0,
                unit,
                p,
            ))
        };
        let plain = read(&relief(&shading.view(), 0.0, 35.0, unit, &p));
        (depth, plain, on(&all_tilt), on(&p))
    }

    /// A pit on skin that turns away from the light: its shading (relative to the tilted skin
    /// around it, as normalisation leaves it) over-states depth when read with the photo's
    /// elevation; read with the local elevation implied by the skin's brightness it is right,
    /// and with half of that brightness read as tilt most of the error is gone (a quarter of
    /// it is left, in log: the shading a slope casts grows faster than linearly as the light
    /// grazes).
    #[test]
    fn pit_on_skin_turned_away_from_the_light_reads_its_depth_with_the_local_elevation() {
        let (depth, plain, all_tilt, shared) = pit_on_darkened_skin(12f64.to_radians(), 0.0);
        assert!(
            plain > 1.3 * depth,
            "flat-skin reading {plain} (true {depth})"
        );
        assert!(
            (all_tilt - depth).abs() < 0.15 * depth,
            "local reading {all_tilt} (true {depth})"
        );
        let (full, half) = ((plain / depth).ln(), (shared / depth).ln());
        assert!(
            half > 0.0 && half < 0.7 * full,
            "shared reading {shared}: log error {half} against {full} read flat"
        );
    }

    /// The same darkening from the light's fall-off alone (skin facing the light as the photo
    /// says): read all as tilt, the depth is under-stated; the even split leaves about 60 % of
    /// that error (in log).
    #[test]
    fn fall_off_read_as_tilt_under_states_depth_and_the_split_halves_it() {
        // The optical density a 12° turn away from 35° light gives (ambient 0.1).
        let (e, t, alpha) = (35f64.to_radians(), 12f64.to_radians(), 0.1);
        let od = -(((e - t).sin() + alpha) / (e.sin() + alpha)).ln();
        let (depth, plain, all_tilt, shared) = pit_on_darkened_skin(0.0, od);
        assert!(
            (plain - depth).abs() < 0.1 * depth,
            "flat-skin reading {plain} (true {depth})"
        );
        assert!(
            all_tilt < depth / 1.3,
            "all-tilt reading {all_tilt} (true {depth})"
        );
        let (full, half) = ((all_tilt / depth).ln(), (shared / depth).ln());
        assert!(
            half < 0.0 && half > 0.7 * full,
            "shared reading {shared}: log error {half} against {full} read as tilt"
        );
    }

    /// Steep pits (walls up to 63°) under 60° light, shaded by the full Lambertian model: the
    /// wall facing the light is past the brightest normal, so it shades little, while the
    /// other wall goes dark. The side the light comes from is still found from every azimuth.
    #[test]
    fn under_steep_light_the_light_side_of_steep_pits_is_found() {
        let (h, w) = (300, 300);
        let mut z = Array2::<f32>::zeros((h, w));
        for i in 0..16 {
            let cx = 35.0 + 70.0 * (i % 4) as f32 + 6.0 * (i as f32).sin();
            let cy = 35.0 + 72.0 * (i / 4) as f32 + 5.0 * (i as f32).cos();
            Zip::indexed(&mut z).for_each(|(y, x), v| {
                let r2 = (x as f32 - cx).powi(2) + (y as f32 - cy).powi(2);
                // A paraboloid 8 px deep and 8 px in radius: slope 2 at the rim.
                *v -= (8.0 * (1.0 - r2 / 64.0)).max(0.0);
            });
        }
        let (gx, gy) = gradient(&z.view());
        let (e, alpha) = (60f64.to_radians(), 0.1);
        for az in [30.0, 130.0, 250.0, 330.0] {
            let a = f64::to_radians(az);
            // Towards the light in pixel axes (y down), and up.
            let l = [e.cos() * a.cos(), -e.cos() * a.sin(), e.sin()];
            let sh = Zip::from(&gx).and(&gy).map_collect(|&zx, &zy| {
                let (zx, zy) = (f64::from(zx), f64::from(zy));
                let cos =
                    ((-zx * l[0] - zy * l[1] + l[2]) / (1.0 + zx * zx + zy * zy).sqrt()).max(0.0);
                (-((cos + alpha) / (e.sin() + alpha)).ln()) as f32
            });
            let est = estimate_azimuth(&sh.view(), 0.1);
            let err = ((est.azimuth_deg - az + 540.0) % 360.0 - 180.0).abs();
            assert!(err < 5.0, "light from {az}°: estimated {}", est.azimuth_deg);
            assert!(est.confidence > 0.5, "light from {az}°: {est:?}");
        }
    }

    #[test]
    fn azimuth_of_a_lit_pit_field_is_found_within_a_few_degrees() {
        // A field of pits shaded by the linear model under light from 130°.
        let (h, w) = (300, 300);
        let mut z = Array2::<f32>::zeros((h, w));
        for i in 0..16 {
            let cx = 30.0 + 60.0 * (i % 4) as f32 + 5.0 * (i as f32).sin();
            let cy = 40.0 + 70.0 * (i / 4) as f32;
            Zip::indexed(&mut z).for_each(|(y, x), v| {
                let r2 = (x as f32 - cx).powi(2) + (y as f32 - cy).powi(2);
                *v -= 0.6 * (-(r2 / 64.0)).exp();
            });
        }
        let a = 130f64.to_radians();
        let (gx, gy) = gradient(&z.view());
        // Shading density ≈ slope along u × tan e: positive where the surface faces away.
        let sh = Zip::from(&gx)
            .and(&gy)
            .map_collect(|x, y| 0.5 * (x * a.cos() as f32 - y * a.sin() as f32));
        let est = estimate_azimuth(&sh.view(), 0.1);
        let err = ((est.azimuth_deg - 130.0 + 540.0) % 360.0 - 180.0).abs();
        assert!(err < 5.0, "estimated {}", est.azimuth_deg);
        assert!(est.confidence > 0.5);
    }
}
