//! Paired change measurement: the relief maps of two sessions + the registration + one
//! tracked scar → both sessions measured over the same support, so that errors common to the
//! two measurements cancel in the change.
//!
//! Two independent single-photo measurements of one scar differ by more than the scar changed:
//! each picks its own reference ring, its own footprint outline from its own segmentation, and
//! its own noise. Here everything is done once, in the baseline's processing grid: the later
//! session's relief is resampled there through the registration (bilinear); the support is the
//! union of the two footprints; one reference ring — healthy skin in both sessions around the
//! support — gives each session's reference plane (least squares); depth is that plane minus
//! the height. Each session's footprint then follows the same rule (DOMAIN.md §4, relative to
//! its own maximum depth): the connected set around its deepest point lying deeper than a
//! fraction of that maximum, within the support grown by a margin that lets a scar grow. The
//! fraction is the same in both sessions: 10 %, or `RING_K` ring σ over the maximum where that
//! is larger in either. Area, maximum
//! and mean depth and volume follow. Each session's noise is the ring's scatter about its
//! plane, which the caller turns into the uncertainty of the change. The later scar is also
//! fitted as the baseline's scaled in width and depth about its centre ([`ScaleFit`]): a
//! second reading of the area and depth ratios from the whole shape.

use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};

use crate::analyze::{Analysis, ReliefMap};
use crate::filters::{bilinear, dilate, gaussian_separable, solve3};
use crate::pitfit::{refit_pit, PitFit};
use crate::register::Affine;
use crate::relief::ShadingCosines;
use rayon::prelude::*;

/// Ring noise σ a footprint pixel must lie below the reference (segmentation's `ring_k`).
const RING_K: f64 = 2.0;

/// Share of the log area ratio taken from the pit outlines' ratio ([`PairedMeasure::after_area`]:
/// the paired pit's, [`paired_pit`], else the two photos' own accepted models'). Their ratio's
/// errors are smaller than the relief readings' (measured on phantom series with the own
/// models, icepicks and boxcars: log σ 0.12 / 0.09 against 0.14 / 0.10) and partly
/// independent of them; area-change Spearman, mean over four seed sets, 0.774 (relief
/// readings only) → 0.815 / 0.810 at weights ¾ / 1 with the own models (weight ½ on three of
/// the sets: 0.827 / 0.893 / 0.778 against 0.844 / 0.901 / 0.776 at ¾); 0.855 with the
/// paired pit at ¾. Since the pit fit searches beside its descent ([`crate::pitfit`]), the
/// outlines alone are best (four seed sets 500–505 / 520–525 / 506–511 / 510–514 at weights
/// ½ / ¾ / 1: 0.830 / 0.861 / 0.871, 0.909 / 0.921 / 0.923, 0.749 / 0.822 / 0.853, 0.774 /
/// 0.808 / 0.828), so where both sessions have one, the relief readings are left out.
pub const PIT_AREA_WEIGHT: f64 = 1.0;

/// One session's relief and labels at its processing resolution, borrowed for a comparison.
#[derive(Debug, Clone, Copy)]
pub struct SessionMaps<'a> {
    /// Height, up positive, relief units (mm, assumed mm when uncalibrated).
    pub height: ArrayView2<'a, f32>,
    /// Scar labels of the same grid (0 = healthy skin).
    pub labels: ArrayView2<'a, u32>,
    /// Label of each scar of the session's list.
    pub scar_labels: &'a [u32],
    /// Camera pixels per processing pixel.
    pub factor: usize,
    /// Relief units per processing pixel.
    pub unit_per_px: f64,
    /// Light azimuth of the session (degrees, DOMAIN.md §4, in its own photo's frame).
    pub light_azimuth_deg: f64,
    /// The light cosines of the same grid, where kept (pit refits, [`paired_pit`]).
    pub cosines: Option<&'a ShadingCosines>,
    /// Accepted pit models per label (index label − 1), processing pixels; may be empty.
    pub pits: &'a [Option<PitFit>],
}

impl<'a> SessionMaps<'a> {
    /// The maps of an analysis and the relief map kept with it.
    pub fn new(a: &'a Analysis, r: &'a ReliefMap) -> Self {
        SessionMaps {
            height: r.height.view(),
            labels: a.regions.labels.view(),
            scar_labels: &r.scar_labels,
            factor: a.processing.factor.max(1),
            unit_per_px: a.processing.mm_per_px,
            light_azimuth_deg: a.light.azimuth_deg,
            cosines: Some(&r.cosines),
            pits: &r.pits,
        }
    }
}

/// One session's measurement over the common support.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SupportMeasure {
    /// Footprint area, baseline camera pixels.
    pub area_px: f64,
    /// Footprint area, relief units² (baseline scale).
    pub area: f64,
    /// Maximum depth, relief units (this session's scale).
    pub depth: f64,
    /// Mean depth over the footprint, relief units.
    pub mean_depth: f64,
    /// Depth integrated over the footprint, relief units³.
    pub volume: f64,
    /// Scatter of the reference ring about its plane: the depth noise, relief units.
    pub ring_sd: f64,
}

/// Both sessions measured over one support.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairedMeasure {
    /// The baseline session, outlined at the level common to both sessions.
    pub before: SupportMeasure,
    /// The later session, outlined at the level common to both sessions.
    pub after: SupportMeasure,
    /// Processing pixels in the union of the two footprints.
    pub support_px: usize,
    /// The later relief as the baseline's scar scaled in depth and width, where it fits.
    pub fit: Option<ScaleFit>,
}

/// The later session's scar fitted as the baseline's scaled about its centre:
/// after(x) ≈ `depth_ratio` · before(c + (x − c) / `width_ratio`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ScaleFit {
    /// Depth (amplitude) ratio after / before, in the two photos' own relief scales (the
    /// relief scale between sessions is applied afterwards).
    pub depth_ratio: f64,
    /// Width ratio after / before (area ratio is its square).
    pub width_ratio: f64,
    /// Share of the later relief's energy over the fitted area the model explains.
    pub r2: f64,
}

/// How far beyond the ring the window reaches for the fit's source pixels, in scar sizes: the
/// ring reaches a scar size from the centre, and the smallest width ratio samples the
/// baseline 1 / `FIT_MIN_RATIO` as far out.
const FIT_MARGIN: f64 = 0.8;
/// Smallest width ratio the fit tries (a scar that lost more than 40 % of its width is
/// measured from its footprints alone).
const FIT_MIN_RATIO: f64 = 0.6;
/// Largest width ratio the fit tries.
const FIT_MAX_RATIO: f64 = 1.6;
/// Steps of the width-ratio grid (0.02 each).
const FIT_STEPS: usize = 50;
/// Share of the later relief's energy the fit must explain to be used.
pub const FIT_MIN_R2: f64 = 0.5;

/// Fit the later relief `d[1]` as the baseline's `d[0]` scaled in width about the baseline
/// scar's centre (depth-weighted centroid over the `support`) and in depth, by least squares
/// over the window's `inner` pixels: for each width ratio on a grid the best depth ratio is
/// linear, and the width ratio explaining the most of the later relief wins (refined by a
/// parabola). Both reliefs are smoothed a little first, so that the skin's texture — the same
/// in both photos — does not pull the width ratio to exactly 1. NaN marks pixels either photo
/// cannot use; a pixel counts only where every width ratio finds its source, so all ratios
/// are judged on the same pixels. None when the best ratio lies on the grid's edge or the
/// baseline shows no depression.
fn fit_scaling(
    d: [Array2<f32>; 2],
    support: &Array2<bool>,
    inner: &Array2<bool>,
    r_eq: f64,
) -> Option<ScaleFit> {
    // Smoothing widens both shapes by σ, which pulls the width ratio towards 1: kept small
    // (a tenth of the radius; measured: 0.15 or 0.25 of it ranked area changes worse).
    let sigma = (0.1 * r_eq).max(0.5) as f32;
    let smooth = |v: &Array2<f32>| {
        let m = v.mapv(|x| if x.is_finite() { 1f32 } else { 0.0 });
        let vm = v.mapv(|x| if x.is_finite() { x } else { 0.0 });
        let (num, den) = (
            gaussian_separable(&vm.view(), sigma),
            gaussian_separable(&m.view(), sigma),
        );
        let mut out = num;
        for ((o, d), x) in out.iter_mut().zip(den.iter()).zip(v.iter()) {
            *o = if x.is_finite() && *d > 0.25 {
                *o / d
            } else {
                f32::NAN
            };
        }
        out
    };
    let [s0, s1] = [smooth(&d[0]), smooth(&d[1])];
    let (mut wsum, mut cx, mut cy) = (0f64, 0f64, 0f64);
    for ((j, i), v) in s0.indexed_iter() {
        if support[[j, i]] && v.is_finite() && *v > 0.0 {
            let w = *v as f64;
            wsum += w;
            cx += w * i as f64;
            cy += w * j as f64;
        }
    }
    if wsum <= 0.0 {
        return None;
    }
    let (cx, cy) = (cx / wsum, cy / wsum);
    let ratios: Vec<f64> = (0..=FIT_STEPS)
        .map(|k| FIT_MIN_RATIO + (FIT_MAX_RATIO - FIT_MIN_RATIO) * k as f64 / FIT_STEPS as f64)
        .collect();
    let mut sxy = vec![0f64; ratios.len()];
    let mut syy = vec![0f64; ratios.len()];
    let mut sxx = 0f64;
    let mut buf = vec![0f64; ratios.len()];
    let view = s0.view();
    for ((j, i), &y) in s1.indexed_iter() {
        if !inner[[j, i]] || !y.is_finite() {
            continue;
        }
        let (dx, dy) = (i as f64 - cx, j as f64 - cy);
        let ok = ratios.iter().zip(buf.iter_mut()).all(|(r, b)| {
            match bilinear(&view, cx + dx / r, cy + dy / r) {
                Some(v) if v.is_finite() => {
                    *b = v;
                    true
                }
                _ => false,
            }
        });
        if !ok {
            continue;
        }
        let y = y as f64;
        sxx += y * y;
        for ((a, b), v) in sxy.iter_mut().zip(syy.iter_mut()).zip(&buf) {
            *a += y * v;
            *b += v * v;
        }
    }
    let crit: Vec<f64> = sxy
        .iter()
        .zip(&syy)
        .map(|(a, b)| if *a > 0.0 && *b > 0.0 { a * a / b } else { 0.0 })
        .collect();
    let (k, best) = crit.iter().enumerate().fold(
        (0, 0f64),
        |acc, (k, c)| if *c > acc.1 { (k, *c) } else { acc },
    );
    if best <= 0.0 || k == 0 || k == ratios.len() - 1 || sxx <= 0.0 {
        return None;
    }
    let (a, b, c) = (crit[k - 1], crit[k], crit[k + 1]);
    let den = a - 2.0 * b + c;
    let off = if den < 0.0 {
        (0.5 * (a - c) / den).clamp(-0.5, 0.5)
    } else {
        0.0
    };
    let step = ratios[1] - ratios[0];
    let width_ratio = ratios[k] + off * step;
    // Depth ratio at the refined width: interpolate the sums linearly.
    let lerp = |v: &[f64]| {
        if off >= 0.0 {
            v[k] + off * (v[k + 1] - v[k])
        } else {
            v[k] - off * (v[k - 1] - v[k])
        }
    };
    let depth_ratio = lerp(&sxy) / lerp(&syy);
    Some(ScaleFit {
        depth_ratio,
        width_ratio,
        r2: (best / sxx).min(1.0),
    })
}

/// What the window knows about one pixel.
#[derive(Debug, Clone, Copy, Default)]
struct Px {
    /// Both sessions see the pixel.
    valid: bool,
    /// Within the measurement window (the ring's reach); outside only the fit looks.
    inner: bool,
    /// In either footprint of the tracked scar.
    support: bool,
    /// In another scar's region in either session.
    other: bool,
    z: [f64; 2],
}

/// Measure scar `b` of `before` and scar `a` of `after` over their common support;
/// `to_baseline` maps `after` camera pixels to `before` camera pixels. None when the scars
/// have no label, the window has no usable ring, or neither session is deeper than its plane.
pub fn measure_pair(
    before: &SessionMaps,
    b: usize,
    after: &SessionMaps,
    a: usize,
    to_baseline: &Affine,
    b_bbox: [u32; 4],
    a_bbox: [u32; 4],
) -> Option<PairedMeasure> {
    let lb = *before.scar_labels.get(b)?;
    let la = *after.scar_labels.get(a)?;
    if lb == 0 || la == 0 {
        return None;
    }
    let inv = to_baseline.inverse()?;
    let (h0, w0) = before.labels.dim();
    let (h1, w1) = after.labels.dim();
    if h0 == 0 || w0 == 0 || before.height.dim() != (h0, w0) || after.height.dim() != (h1, w1) {
        return None;
    }
    let (f0, f1) = (before.factor as f64, after.factor as f64);
    // Union of the two boxes in baseline processing pixels.
    let to_p0 = |c: f64| (c - (f0 - 1.0) / 2.0) / f0;
    let mut bx = [
        b_bbox[0] as f64 / f0,
        b_bbox[1] as f64 / f0,
        b_bbox[2] as f64 / f0,
        b_bbox[3] as f64 / f0,
    ];
    for (cx, cy) in [
        (a_bbox[0], a_bbox[1]),
        (a_bbox[2], a_bbox[1]),
        (a_bbox[0], a_bbox[3]),
        (a_bbox[2], a_bbox[3]),
    ] {
        let q = to_baseline.apply([cx as f64, cy as f64]);
        let (x, y) = (to_p0(q[0]), to_p0(q[1]));
        bx = [bx[0].min(x), bx[1].min(y), bx[2].max(x), bx[3].max(y)];
    }
    // The ring: the box grown by half its size (as single-photo measurement does). The
    // window reaches further, for the shape fit's source pixels (`fit_scaling`).
    let size = (bx[2] - bx[0]).max(bx[3] - bx[1]);
    let m = (0.5 * size).max(3.0).ceil();
    let m_fit = (m + FIT_MARGIN * size).ceil();
    let x0 = (bx[0] - m_fit).floor().max(0.0) as usize;
    let y0 = (bx[1] - m_fit).floor().max(0.0) as usize;
    let x1 = ((bx[2] + m_fit).ceil().max(0.0) as usize).min(w0 - 1);
    let y1 = ((bx[3] + m_fit).ceil().max(0.0) as usize).min(h0 - 1);
    if x0 > x1 || y0 > y1 {
        return None;
    }
    let inner_box = [bx[0] - m, bx[1] - m, bx[2] + m, bx[3] + m];
    let (ww, wh) = (x1 - x0 + 1, y1 - y0 + 1);
    let mut win = Array2::<Px>::default((wh, ww));
    for ((j, i), px) in win.indexed_iter_mut() {
        let (x, y) = (x0 + i, y0 + j);
        let l0 = before.labels[[y, x]];
        // Baseline camera → after camera → after processing pixel.
        let c = [
            x as f64 * f0 + (f0 - 1.0) / 2.0,
            y as f64 * f0 + (f0 - 1.0) / 2.0,
        ];
        let q = inv.apply(c);
        let (qx, qy) = (
            (q[0] - (f1 - 1.0) / 2.0) / f1,
            (q[1] - (f1 - 1.0) / 2.0) / f1,
        );
        let Some(z1) = bilinear(&after.height, qx, qy) else {
            continue;
        };
        let l1 = after.labels[[
            (qy.round() as usize).min(h1 - 1),
            (qx.round() as usize).min(w1 - 1),
        ]];
        *px = Px {
            valid: true,
            inner: (x as f64) >= inner_box[0].floor()
                && (x as f64) <= inner_box[2].ceil()
                && (y as f64) >= inner_box[1].floor()
                && (y as f64) <= inner_box[3].ceil(),
            support: l0 == lb || l1 == la,
            other: (l0 != 0 && l0 != lb) || (l1 != 0 && l1 != la),
            z: [before.height[[y, x]] as f64, z1],
        };
    }
    let support_px = win.iter().filter(|p| p.support).count();
    if support_px == 0 {
        return None;
    }
    // Ring pixels keep one pixel away from the support: its outline is only just deeper
    // than the 10 % rule and would pull the plane down.
    let near = dilate(&win.mapv(|p| p.support), 1);
    let (cx, cy) = ((ww as f64 - 1.0) / 2.0, (wh as f64 - 1.0) / 2.0);
    let mut ata = [[0f64; 3]; 3];
    let mut atb = [[0f64; 3]; 2];
    let mut n_ring = 0usize;
    for ((j, i), p) in win.indexed_iter() {
        if !p.valid || !p.inner || p.other || near[[j, i]] {
            continue;
        }
        let v = [1.0, i as f64 - cx, j as f64 - cy];
        for r in 0..3 {
            for c in 0..3 {
                ata[r][c] += v[r] * v[c];
            }
            for (b, z) in atb.iter_mut().zip(p.z) {
                b[r] += v[r] * z;
            }
        }
        n_ring += 1;
    }
    if n_ring < 8 {
        return None;
    }
    let planes = [solve3(ata, atb[0])?, solve3(ata, atb[1])?];
    let plane_at = |s: usize, i: usize, j: usize| {
        let p = planes[s];
        p[0] + p[1] * (i as f64 - cx) + p[2] * (j as f64 - cy)
    };
    let mut ring_var = [0f64; 2];
    for ((j, i), p) in win.indexed_iter() {
        if p.valid && p.inner && !p.other && !near[[j, i]] {
            for (s, v) in ring_var.iter_mut().enumerate() {
                *v += (p.z[s] - plane_at(s, i, j)).powi(2);
            }
        }
    }
    // The search area: the support grown so that a scar that widened is followed, but not
    // into other scars or skin one photo does not show.
    let r_eq = (support_px as f64 / std::f64::consts::PI).sqrt();
    let grow = (0.25 * r_eq).round().max(1.0) as usize;
    let search = {
        let mut s = dilate(&win.mapv(|p| p.support), grow);
        for (v, p) in s.iter_mut().zip(win.iter()) {
            *v = *v && p.valid && p.inner && !p.other;
        }
        s
    };
    let unit0 = before.unit_per_px;
    let ring_sd_of = |s: usize| (ring_var[s] / (n_ring as f64 - 3.0).max(1.0)).sqrt();
    let depth_of = |s: usize| {
        let depth = Array2::from_shape_fn((wh, ww), |(j, i)| {
            let p = &win[[j, i]];
            if search[[j, i]] {
                plane_at(s, i, j) - p.z[s]
            } else {
                f64::NEG_INFINITY
            }
        });
        // Deepest point within the support itself.
        let mut best: Option<((usize, usize), f64)> = None;
        for ((j, i), d) in depth.indexed_iter() {
            if win[[j, i]].support && best.is_none_or(|(_, m)| *d > m) {
                best = Some(((j, i), *d));
            }
        }
        best.map(|b| (depth, b))
    };
    let (d0, d1) = (depth_of(0)?, depth_of(1)?);
    // Both outlines are traced at the same fraction of their own depth: 10 %, or (as
    // single-photo segmentation does) RING_K ring noise σ below the reference where that is
    // deeper, taken from whichever photo needs the larger fraction. Each at its own level, a
    // scar that became shallower (its noise a larger share of its depth) would be outlined
    // at a higher level after than before and read as shrinking. Where the noise is a large
    // share of the depth in either photo both outlines are traced high: the area ratio stays
    // right, the areas themselves cover only the scar's deeper part.
    let level = [&d0, &d1]
        .iter()
        .enumerate()
        .filter(|(_, d)| d.1 .1 > 0.0)
        .map(|(s, d)| RING_K * ring_sd_of(s) / d.1 .1)
        .fold(0.1f64, f64::max);
    let one = |s: usize,
               (depth, (start, max)): &(Array2<f64>, ((usize, usize), f64))|
     -> Option<SupportMeasure> {
        let (start, max) = (*start, *max);
        let ring_sd = ring_sd_of(s);
        if max <= 0.0 {
            return Some(SupportMeasure {
                area_px: 0.0,
                area: 0.0,
                depth: 0.0,
                mean_depth: 0.0,
                volume: 0.0,
                ring_sd,
            });
        }
        // The common level (above): the outline follows the scar, not the noise around it.
        let thr = level * max;
        let mut seen = Array2::<bool>::default((wh, ww));
        let mut stack = vec![start];
        seen[start] = true;
        let (mut n, mut sd) = (0usize, 0f64);
        while let Some((j, i)) = stack.pop() {
            n += 1;
            sd += depth[[j, i]];
            let nb = [
                (j, i.wrapping_sub(1)),
                (j, i + 1),
                (j.wrapping_sub(1), i),
                (j + 1, i),
            ];
            for (y, x) in nb {
                if y < wh && x < ww && !seen[[y, x]] && depth[[y, x]] > thr {
                    seen[[y, x]] = true;
                    stack.push((y, x));
                }
            }
        }
        Some(SupportMeasure {
            area_px: n as f64 * f0 * f0,
            area: n as f64 * unit0 * unit0,
            depth: max,
            mean_depth: sd / n as f64,
            volume: sd * unit0 * unit0,
            ring_sd,
        })
    };
    let fit = {
        let full = |s: usize| {
            Array2::from_shape_fn((wh, ww), |(j, i)| {
                let p = &win[[j, i]];
                if p.valid && !p.other {
                    (plane_at(s, i, j) - p.z[s]) as f32
                } else {
                    f32::NAN
                }
            })
        };
        let support = win.mapv(|p| p.support);
        let inner = win.mapv(|p| p.inner);
        fit_scaling([full(0), full(1)], &support, &inner, r_eq)
    };
    Some(PairedMeasure {
        before: one(0, &d0)?,
        after: one(1, &d1)?,
        support_px,
        fit,
    })
}

/// Spread (one σ of the natural logarithm) of the relief scale between two photos of the
/// same skin, the prior [`relief_gain`] weighs its measurement against. Each photo's depths
/// carry a scale of their own (the ambient light's share, scattering under the skin, the
/// exposure): on phantom series (light given) the part of the error of later / baseline
/// single-photo depth ratios shared by all scars of one session pair has log σ 0.12–0.22
/// over four seed sets (0.22 / 0.21 / 0.20 / 0.12, 2026-11-29). Measured on phantom series
/// (depth-change Spearman, four seed sets, mean): measured ratio applied as it is 0.729,
/// weighed with τ = 0.15 / 0.2 / 0.3: — / 0.752 / 0.744.
pub const GAIN_PRIOR_LOG_SD: f64 = 0.2;

/// A measured relief factor with relative one-σ uncertainty `rel`, weighed against the
/// spread of relief scale between photos (a normal prior on its logarithm about 0, σ
/// [`GAIN_PRIOR_LOG_SD`]): the posterior log factor is the measured one times
/// k = τ² / (τ² + σ²), its σ the measured one times √k. Returns (factor, its one-σ).
fn weigh_gain(measured: f64, rel: f64) -> (f64, f64) {
    let t2 = GAIN_PRIOR_LOG_SD * GAIN_PRIOR_LOG_SD;
    let k = t2 / (t2 + rel * rel);
    let gain = measured.powf(k);
    (gain, gain * rel * k.sqrt())
}

/// Smallest correlation of the two sessions' healthy texture for [`relief_gain`] to be
/// applied: below it the texture is mostly noise in one photo or the other, and the
/// amplitude ratio would measure the noise.
pub const MIN_GAIN_CORRELATION: f64 = 0.5;

/// Extra blur tried on either photo to match their sharpness, baseline processing pixels:
/// up to 1.5 (0.15 mm at the default processing scale; sub-surface scattering, focus and
/// compression differ between photos by less).
const MAX_EXTRA_BLUR_PX: f64 = 1.5;

/// Step of the extra-blur search, baseline processing pixels (refined by a parabola).
const BLUR_STEP_PX: f64 = 0.5;

/// Smoothing of the mixed derivative: the finest scale the reliefs resolve, one baseline
/// processing pixel.
const GAIN_SIGMA_PX: f64 = 1.0;

/// Windows per side [`relief_gain`] compares at most, and their largest side (baseline
/// processing pixels): up to 16 windows of 128 px, about 0.26 M pixels on any photo.
const GAIN_TILES: usize = 4;
const GAIN_TILE_PX: usize = 128;

/// One scar's pit in two sessions measured as one shape ([`paired_pit`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairedPit {
    /// The baseline's accepted pit model, baseline processing pixels.
    pub before: PitFit,
    /// That model refitted on the later session with its shape held, later processing pixels.
    pub after: PitFit,
    /// Ratio of the later pit outline's area to the baseline's, later processing pixels² per
    /// baseline processing pixel²: the geometric mean of the forward reading (`after` over
    /// `before`) and, where the later photo has its own accepted model, the backward one (that
    /// model over its refit on the baseline).
    pub area_ratio: f64,
}

/// The baseline's pit model of scar `b` refitted on the later session's shading with its
/// shape held ([`refit_pit`]: centre, support radius and depth free, ellipticity and shape
/// exponent the baseline's); `to_baseline` maps `after` camera pixels to `before` camera
/// pixels. The two depths and outlines are then of one shape, so their ratios are not mixed
/// with a change of fitted shape between two independent fits. Where the later photo has its
/// own accepted model, it is refitted on the baseline the same way, a second reading of the
/// area ratio (measured on phantom series: area-change Spearman up by 0.008–0.026 on each of
/// four seed sets; as a second depth reading, measured before the relief scale was weighed,
/// it moved depth-change Spearman by −0.015 to +0.008, so the depth stays the forward one's). None where the baseline has no accepted
/// model, the later session keeps no cosines, or the refit explains less than
/// [`crate::pitfit::PIT_MIN_EXPLAINED`] of the later shading.
pub fn paired_pit(
    before: &SessionMaps,
    b: usize,
    after: &SessionMaps,
    a: usize,
    to_baseline: &Affine,
) -> Option<PairedPit> {
    let lb = *before.scar_labels.get(b)?;
    let la = *after.scar_labels.get(a)?;
    if lb == 0 || la == 0 {
        return None;
    }
    let model = (*before.pits.get(lb as usize - 1)?)?;
    let refit = refit_mapped(&model, before, after, la, &to_baseline.inverse()?)?;
    let forward = refit.area_px / model.area_px;
    let backward = after
        .pits
        .get(la as usize - 1)
        .copied()
        .flatten()
        .and_then(|own| {
            let back = refit_mapped(&own, after, before, lb, to_baseline)?;
            Some(own.area_px / back.area_px)
        })
        .filter(|r| r.is_finite() && *r > 0.0);
    let area_ratio = match backward {
        Some(r) => (forward * r).sqrt(),
        None => forward,
    };
    (area_ratio.is_finite() && area_ratio > 0.0).then_some(PairedPit {
        before: model,
        after: refit,
        area_ratio,
    })
}

/// `model` (processing pixels of a grid of `from` = (camera pixels per processing pixel,
/// relief units per processing pixel)) in the processing pixels of the grid `to`, `m` mapping
/// `from` camera pixels to `to` camera pixels: centre through `m`, the support ellipse
/// ρ² = dᵀ M d / R² through its linear part, the depth through the two units. None where `m`
/// is singular.
fn map_pit(model: &PitFit, from: (usize, f64), to: (usize, f64), m: &Affine) -> Option<PitFit> {
    let back = m.inverse()?;
    let (f0, f1) = (from.0.max(1) as f64, to.0.max(1) as f64);
    // Centre: `from` processing → camera → `to` camera → `to` processing pixels.
    let cam = |v: f64, f: f64| v * f + (f - 1.0) / 2.0;
    let q = m.apply([cam(model.centre_px[0], f0), cam(model.centre_px[1], f0)]);
    let centre = q.map(|v| (v - (f1 - 1.0) / 2.0) / f1);
    // Support: d = L d' with L the linear map of `to` processing pixels to `from` ones, so
    // the form becomes N = Lᵀ M L, rescaled to trace 2 (R absorbs the scale).
    let bm = &back.0;
    let k = f1 / f0;
    let l = [[k * bm[0][0], k * bm[0][1]], [k * bm[1][0], k * bm[1][1]]];
    let [e1, e2] = model.ellipticity;
    let mm = [[1.0 + e1, e2], [e2, 1.0 - e1]];
    // M L, then Lᵀ (M L).
    let ml = [0, 1].map(|p| [0, 1].map(|j| mm[p][0] * l[0][j] + mm[p][1] * l[1][j]));
    let n = [0, 1].map(|i| [0, 1].map(|j| l[0][i] * ml[0][j] + l[1][i] * ml[1][j]));
    let t = 0.5 * (n[0][0] + n[1][1]);
    if !(t.is_finite() && t > 0.0) {
        return None;
    }
    Some(PitFit {
        centre_px: centre,
        depth_px: model.depth_px * from.1 / to.1,
        radius_px: model.radius_px / t.sqrt(),
        ellipticity: [0.5 * (n[0][0] - n[1][1]) / t, n[0][1] / t],
        ..*model
    })
}

/// `model`, fitted on `from`, mapped into `to`'s processing pixels (`m`: `from` camera
/// pixels → `to` camera pixels) and refitted there on the scar of label `label` with its
/// shape held; None where it explains less than [`crate::pitfit::PIT_MIN_EXPLAINED`].
fn refit_mapped(
    model: &PitFit,
    from: &SessionMaps,
    to: &SessionMaps,
    label: u32,
    m: &Affine,
) -> Option<PitFit> {
    let cosines = to.cosines?;
    let mapped = map_pit(
        model,
        (from.factor, from.unit_per_px),
        (to.factor, to.unit_per_px),
        m,
    )?;
    let refit = refit_pit(cosines, &to.labels, label, to.light_azimuth_deg, &mapped)?;
    refit.accepted().then_some(refit)
}

/// How a later session's relief scale compares with the baseline's ([`relief_gain`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ReliefGain {
    /// Factor that puts the later session's heights on the baseline's scale (its depths,
    /// mean depths and volumes are multiplied by it when `applied`): `measured` weighed
    /// against the spread of relief scale between photos ([`GAIN_PRIOR_LOG_SD`]), the less
    /// the more uncertain it is.
    pub gain: f64,
    /// The two textures' amplitude ratio as measured.
    #[serde(default)]
    pub measured: f64,
    /// One-σ uncertainty of the factor: sampling, plus the share of the texture the two
    /// photos do not have in common (1 − correlation), which may bias the amplitude ratio;
    /// after the weighing against the prior spread.
    pub sd: f64,
    /// Correlation of the two sessions' healthy texture (mixed second derivative).
    pub correlation: f64,
    /// Healthy baseline processing pixels compared.
    pub pixels: usize,
    /// Blur added to match the two photos' sharpness, baseline processing pixels: positive
    /// on the later photo, negative on the baseline.
    pub matched_blur_px: f64,
    /// Whether the factor was applied (correlation at least [`MIN_GAIN_CORRELATION`]).
    pub applied: bool,
}

impl ReliefGain {
    /// The factor to apply to the later session's depths: `gain` when applied, else 1.
    pub fn factor(&self) -> f64 {
        if self.applied {
            self.gain
        } else {
            1.0
        }
    }

    /// Relative one-σ uncertainty of [`ReliefGain::factor`] (0 when not applied).
    pub fn rel_sd(&self) -> f64 {
        if self.applied && self.gain > 0.0 {
            self.sd / self.gain
        } else {
            0.0
        }
    }
}

/// The second derivative ∂u∂v of `h` smoothed by a Gaussian of `sigma` px, per px².
fn mixed_derivative(h: &ArrayView2<f32>, sigma: f64, u: [f64; 2], v: [f64; 2]) -> Array2<f32> {
    let g = crate::filters::gaussian(h, sigma as f32);
    let (hh, ww) = g.dim();
    let (cxx, cxy, cyy) = (
        (u[0] * v[0]) as f32,
        (u[0] * v[1] + u[1] * v[0]) as f32,
        (u[1] * v[1]) as f32,
    );
    let mut out = Array2::<f32>::zeros((hh, ww));
    if hh < 3 || ww < 3 {
        return out;
    }
    for (y, mut row) in out.outer_iter_mut().enumerate().take(hh - 1).skip(1) {
        let (up, mid, down) = (g.row(y - 1), g.row(y), g.row(y + 1));
        for x in 1..ww - 1 {
            let c = mid[x];
            let gxx = mid[x + 1] - 2.0 * c + mid[x - 1];
            let gyy = down[x] - 2.0 * c + up[x];
            let gxy = 0.25 * (down[x + 1] - down[x - 1] - up[x + 1] + up[x - 1]);
            row[x] = cxx * gxx + cxy * gxy + cyy * gyy;
        }
    }
    out
}

/// The factor that puts `after`'s relief on `before`'s scale, from the healthy skin both
/// photos show. Each session's relief is right along its own light direction u_k but scaled
/// by whatever set that photo's shading contrast (the ambient light's share, an assumed or
/// estimated elevation): ∂_{u_k} h_k ≈ g_k ∂_{u_k} h. The mixed derivative ∂_{u_0} ∂_{u_1} of
/// either session's relief is then g_k ∂_{u_0} ∂_{u_1} h whatever the two directions
/// (derivatives commute), so over healthy texture the two maps of it differ by g_0 / g_1
/// alone: the comparison needs neither isotropic texture nor the same light. It is made at
/// the finest scale the reliefs resolve (one baseline processing pixel), after blurring the
/// sharper photo to match the other (the extra blur that best correlates the two maps:
/// scattering under the skin and focus differ between photos and weigh on fine texture);
/// the factor is the ratio of the two maps' amplitudes. `to_baseline` maps `after` camera
/// pixels to `before` camera pixels. None without enough shared healthy skin or with a flat
/// texture in either photo; not `applied` below [`MIN_GAIN_CORRELATION`].
pub fn relief_gain(
    before: &SessionMaps,
    after: &SessionMaps,
    to_baseline: &Affine,
) -> Option<ReliefGain> {
    let inv = to_baseline.inverse()?;
    let (h0, w0) = before.height.dim();
    let (h1, w1) = after.height.dim();
    if before.labels.dim() != (h0, w0) || after.labels.dim() != (h1, w1) {
        return None;
    }
    let (f0, f1) = (before.factor as f64, after.factor as f64);
    // Baseline processing pixels per later processing pixel.
    let b_per_a = f1 * to_baseline.scale() / f0;
    if !(b_per_a.is_finite() && b_per_a > 0.0) {
        return None;
    }
    let theta = to_baseline.rotation_deg().to_radians();
    let dir = |az: f64| {
        let a = az.to_radians();
        [a.cos(), -a.sin()]
    };
    let rot = |v: [f64; 2], t: f64| {
        let (sn, cs) = t.sin_cos();
        [cs * v[0] - sn * v[1], sn * v[0] + cs * v[1]]
    };
    let (u0, u1) = (dir(before.light_azimuth_deg), dir(after.light_azimuth_deg));
    // Each photo's own directions: the later one's turned into the baseline frame and back.
    let (v0, v1) = ((u0, rot(u1, theta)), (rot(u0, -theta), u1));
    // Healthy skin in both photos, kept clear of scars by the widest smoothing's reach.
    let widest = (GAIN_SIGMA_PX * GAIN_SIGMA_PX + MAX_EXTRA_BLUR_PX * MAX_EXTRA_BLUR_PX).sqrt();
    let (r0, r1) = (
        (3.0 * widest).ceil() as usize + 1,
        (3.0 * widest / b_per_a).ceil() as usize + 1,
    );
    // Crop margins: both smoothings' reach (the derivative's, then the matching blur's),
    // which also covers the scars' clearance.
    let reach = 3.0 * (GAIN_SIGMA_PX + MAX_EXTRA_BLUR_PX) + 2.0;
    let m0 = (reach.ceil() as usize).max(r0);
    let m1 = ((reach / b_per_a).ceil() as usize).max(r1);
    // Baseline processing pixel → later processing pixel (pixel centres).
    let centre = |f: f64| Affine([[f, 0.0, (f - 1.0) / 2.0], [0.0, f, (f - 1.0) / 2.0]]);
    let proc = centre(f1).inverse()?.compose(&inv.compose(&centre(f0)));
    let to_after = |x: usize, y: usize| proc.apply([x as f64, y as f64]);
    // Later-session second derivatives per baseline pixel².
    let to_base2 = (1.0 / (b_per_a * b_per_a)) as f32;
    let tiles: Vec<GainTile> = tile_boxes(w0, h0, m0)
        .into_par_iter()
        .filter_map(|[x0, y0, x1, y1]| {
            // The later photo's crop: the tile's corners mapped, grown by its margin.
            let [lx, ly, hx, hy] =
                proc.map_box([x0 as f64, y0 as f64, (x1 - 1) as f64, (y1 - 1) as f64]);
            let clampi = |v: f64, n: usize| v.clamp(0.0, n as f64) as usize;
            let (ax0, ay0) = (
                clampi(lx.floor() - m1 as f64, w1),
                clampi(ly.floor() - m1 as f64, h1),
            );
            let (ax1, ay1) = (
                clampi(hx.ceil() + 1.0 + m1 as f64, w1),
                clampi(hy.ceil() + 1.0 + m1 as f64, h1),
            );
            if ax0 >= ax1 || ay0 >= ay1 {
                return None;
            }
            let (cy0, cx0) = (y0 - m0, x0 - m0);
            let win0 = ndarray::s![cy0..y1 + m0, cx0..x1 + m0];
            let win1 = ndarray::s![ay0..ay1, ax0..ax1];
            let near0 = dilate(&before.labels.slice(win0).mapv(|l| l != 0), r0);
            let near1 = dilate(&after.labels.slice(win1).mapv(|l| l != 0), r1);
            let m = m1 as f64;
            let mut samples = Vec::new();
            for y in y0..y1 {
                for x in x0..x1 {
                    if near0[[y - cy0, x - cx0]] {
                        continue;
                    }
                    let [qx, qy] = to_after(x, y);
                    if qx >= m
                        && qy >= m
                        && qx <= (w1 - 1) as f64 - m
                        && qy <= (h1 - 1) as f64 - m
                        && !near1[[qy.round() as usize - ay0, qx.round() as usize - ax0]]
                    {
                        samples.push(([y - cy0, x - cx0], [qx - ax0 as f64, qy - ay0 as f64]));
                    }
                }
            }
            if samples.is_empty() {
                return None;
            }
            let crop0 = before.height.slice(win0);
            let crop1 = after.height.slice(win1);
            let mut d1 = mixed_derivative(&crop1, GAIN_SIGMA_PX / b_per_a, v1.0, v1.1);
            d1.mapv_inplace(|v| v * to_base2);
            Some(GainTile {
                d0: mixed_derivative(&crop0, GAIN_SIGMA_PX, v0.0, v0.1),
                d1,
                samples,
            })
        })
        .collect();
    let pixels: usize = tiles.iter().map(|t| t.samples.len()).sum();
    if pixels < 100 {
        return None;
    }
    // Signed extra blur t, baseline pixels: on the later photo when positive, on the
    // baseline when negative. The derivative maps are blurred (Gaussians compose).
    let eval = |t: f64| {
        let parts: Vec<[f64; 3]> = tiles
            .par_iter()
            .map(|tile| {
                let blurred;
                let (d0, d1) = if t > 0.0 {
                    blurred = gaussian_separable(&tile.d1.view(), (t / b_per_a) as f32);
                    (&tile.d0, &blurred)
                } else if t < 0.0 {
                    blurred = gaussian_separable(&tile.d0.view(), (-t) as f32);
                    (&blurred, &tile.d1)
                } else {
                    (&tile.d0, &tile.d1)
                };
                let mut s = [0f64; 3];
                for &([y, x], [qx, qy]) in &tile.samples {
                    if let Some(yv) = bilinear(&d1.view(), qx, qy) {
                        let xv = d0[[y, x]] as f64;
                        s[0] += xv * xv;
                        s[1] += yv * yv;
                        s[2] += xv * yv;
                    }
                }
                s
            })
            .collect();
        let s = parts
            .iter()
            .fold([0f64; 3], |a, p| [a[0] + p[0], a[1] + p[1], a[2] + p[2]]);
        let corr = if s[0] > 0.0 && s[1] > 0.0 {
            s[2] / (s[0] * s[1]).sqrt()
        } else {
            f64::NEG_INFINITY
        };
        (corr, s)
    };
    // Climb from no extra blur along the grid of steps: where the correlation of the two
    // blurred maps has a single peak (their sharpness matched), the climb stops at the step
    // the whole grid would pick, after 3–5 of its 7 evaluations.
    let n_steps = (MAX_EXTRA_BLUR_PX / BLUR_STEP_PX).round() as i32;
    // (extra blur, (correlation, sums)) of each step, once evaluated.
    type Step = (f64, (f64, [f64; 3]));
    let mut grid: Vec<Option<Step>> = vec![None; (2 * n_steps + 1) as usize];
    let mut value = |i: i32| -> Step {
        let slot = &mut grid[(i + n_steps) as usize];
        *slot.get_or_insert_with(|| {
            let t = f64::from(i) * BLUR_STEP_PX;
            (t, eval(t))
        })
    };
    let mut best: i32 = 0;
    for dir in [-1, 1] {
        while (best + dir).abs() <= n_steps && value(best + dir).1 .0 > value(best).1 .0 {
            best += dir;
        }
        if best != 0 {
            break;
        }
    }
    // Refine between the neighbours of the best step (parabola through the three; both were
    // evaluated by the climb).
    let mut pick = value(best);
    if best.abs() < n_steps {
        let (ym, y0, yp) = (value(best - 1).1 .0, pick.1 .0, value(best + 1).1 .0);
        let den = ym - 2.0 * y0 + yp;
        if den < 0.0 {
            let t = pick.0 + 0.5 * BLUR_STEP_PX * (ym - yp) / den;
            let refined = eval(t);
            if refined.0 > pick.1 .0 {
                pick = (t, refined);
            }
        }
    }
    let (t, (correlation, [sxx, syy, _])) = pick;
    // Both sums are positive unless one photo's texture is flat (then there is nothing to
    // compare); an uncorrelated pair is still reported, not applied.
    if !(sxx > 0.0 && syy > 0.0) {
        return None;
    }
    let measured = (sxx / syy).sqrt();
    // Independent samples: about one per smoothing disc (σ = 1 px).
    let n_eff = (pixels as f64 / (4.0 * std::f64::consts::PI)).max(1.0);
    let sampling = ((1.0 - correlation * correlation) / n_eff).sqrt();
    let rel = (1.0 - correlation).hypot(sampling);
    let (gain, sd) = weigh_gain(measured, rel);
    Some(ReliefGain {
        gain,
        measured,
        sd,
        correlation,
        pixels,
        matched_blur_px: t,
        applied: correlation >= MIN_GAIN_CORRELATION,
    })
}

/// One window of [`relief_gain`]: both photos' mixed derivatives over it (each with its
/// margin) and the healthy pixels compared (baseline crop index, later crop position).
struct GainTile {
    d0: Array2<f32>,
    d1: Array2<f32>,
    samples: Vec<([usize; 2], [f64; 2])>,
}

/// Windows [`relief_gain`] compares, `[x0, y0, x1, y1)` in a `w`×`h` map, each at least
/// `margin` from the border: the whole interior cut into up to `GAIN_TILES`² windows of at
/// most `GAIN_TILE_PX` a side, spread evenly over it (a bounded cost on any photo).
fn tile_boxes(w: usize, h: usize, margin: usize) -> Vec<[usize; 4]> {
    let spans = |n: usize| -> Vec<(usize, usize)> {
        let inner = n.saturating_sub(2 * margin);
        if inner == 0 {
            return Vec::new();
        }
        let count = inner.div_ceil(GAIN_TILE_PX).min(GAIN_TILES);
        // Rounded down, so that `count` windows fit without sharing a pixel.
        let size = (inner / count).min(GAIN_TILE_PX);
        let room = inner - size;
        (0..count)
            .map(|i| {
                let start = margin
                    + if count > 1 {
                        i * room / (count - 1)
                    } else {
                        room / 2
                    };
                (start, start + size)
            })
            .collect()
    };
    let (xs, ys) = (spans(w), spans(h));
    ys.iter()
        .flat_map(|&(y0, y1)| xs.iter().map(move |&(x0, x1)| [x0, y0, x1, y1]))
        .collect()
}

impl SupportMeasure {
    /// Effective area, volume / maximum depth (relief units²): the area of a flat-floored
    /// scar of the same volume and depth. Integral quantities, so less sensitive to where the
    /// noisy outline falls than the footprint count.
    pub fn effective_area(&self) -> Option<f64> {
        (self.depth > 0.0 && self.volume > 0.0).then(|| self.volume / self.depth)
    }
}

impl PairedMeasure {
    /// The shape fit where it explains at least [`FIT_MIN_R2`] of the later relief.
    pub fn usable_fit(&self) -> Option<ScaleFit> {
        self.fit
            .filter(|f| f.r2 >= FIT_MIN_R2 && f.depth_ratio > 0.0)
    }

    /// Area of the later session: the baseline footprint area scaled by the area ratio, the
    /// geometric mean of up to three readings whose errors are only partly shared: the ratio
    /// of the two effective areas (volume over maximum depth: a scar's shape scales both
    /// alike, and integral figures depend little on where a noisy outline falls), the shape
    /// fit's squared width ratio where it is usable (the whole shape), and the ratio of the
    /// two footprints traced at the common level (the outlines themselves). Where both
    /// sessions' pit models were accepted, `pit_ratio` (the ratio of their 10 % outline areas,
    /// [`crate::pitfit`]) is a fourth reading, read from the shading itself rather than the
    /// integrated relief; it takes [`PIT_AREA_WEIGHT`] of the log ratio and the other readings
    /// the rest. 0 when the later footprint is empty, 1 when no reading is defined. Relief
    /// units² and baseline camera pixels.
    pub fn after_area(&self, pit_ratio: Option<f64>) -> (f64, f64) {
        let (b, a) = (&self.before, &self.after);
        let effective = match (b.effective_area(), a.effective_area()) {
            (Some(eb), Some(ea)) => Some(ea / eb),
            _ => None,
        };
        let fit = self.usable_fit().map(|f| f.width_ratio * f.width_ratio);
        let footprint = (b.area_px > 0.0 && a.area_px > 0.0).then(|| a.area_px / b.area_px);
        let readings: Vec<f64> = [effective, fit, footprint]
            .into_iter()
            .flatten()
            .filter(|r| r.is_finite() && *r > 0.0)
            .collect();
        let pit = pit_ratio.filter(|r| r.is_finite() && *r > 0.0);
        let ratio = if b.area_px > 0.0 && a.area_px <= 0.0 {
            // Nothing of the scar lies below the later plane: its footprint is gone.
            0.0
        } else {
            let relief = (!readings.is_empty())
                .then(|| readings.iter().map(|r| r.ln()).sum::<f64>() / readings.len() as f64);
            match (relief, pit) {
                (Some(l), Some(pr)) => {
                    ((1.0 - PIT_AREA_WEIGHT) * l + PIT_AREA_WEIGHT * pr.ln()).exp()
                }
                (Some(l), None) => l.exp(),
                (None, Some(pr)) => pr,
                (None, None) => 1.0,
            }
        };
        (self.before.area * ratio, self.before.area_px * ratio)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cone of `radius` and `depth` px at `c` as one photo sees it under light at `az_deg`,
    /// `e_deg` ([`crate::pitfit::tests::cone_scene`]): cosines, height, 10 % outline label 1.
    fn cone_photo(
        size: (usize, usize),
        c: [f64; 2],
        radius: f64,
        depth: f64,
        az_deg: f64,
        e_deg: f64,
    ) -> (ShadingCosines, Array2<f32>, Array2<u32>) {
        let (az, e) = (az_deg.to_radians(), e_deg.to_radians());
        let (cos, labels, height) =
            crate::pitfit::tests::cone_scene(size, (c[0], c[1]), radius, depth, az, e);
        (cos, height, labels)
    }

    /// A Gaussian pit of `depth` and footprint radius `r` (10 % depth) at (cx, cy) on a
    /// tilted plane with a little texture, and its label map (label 1 where deeper than 10 %).
    fn pit(w: usize, h: usize, c: [f64; 2], r: f64, depth: f64) -> (Array2<f32>, Array2<u32>) {
        let k = std::f64::consts::LN_10 / (r * r);
        let z = Array2::from_shape_fn((h, w), |(y, x)| {
            let d2 = (x as f64 - c[0]).powi(2) + (y as f64 - c[1]).powi(2);
            let texture = 0.002 * ((x as f64 * 1.7).sin() + (y as f64 * 2.3).cos());
            (0.001 * x as f64 - depth * (-k * d2).exp() + texture) as f32
        });
        let labels = Array2::from_shape_fn((h, w), |(y, x)| {
            let d2 = (x as f64 - c[0]).powi(2) + (y as f64 - c[1]).powi(2);
            u32::from((-k * d2).exp() > 0.1)
        });
        (z, labels)
    }

    /// The running-count dilation equals the square's definition on scattered masks, at
    /// radii from 0 to beyond the mask.
    fn maps<'a>(z: &'a Array2<f32>, l: &'a Array2<u32>, sl: &'a [u32]) -> SessionMaps<'a> {
        SessionMaps {
            height: z.view(),
            labels: l.view(),
            scar_labels: sl,
            factor: 1,
            unit_per_px: 0.1,
            light_azimuth_deg: 0.0,
            cosines: None,
            pits: &[],
        }
    }

    fn bbox(c: [f64; 2], r: f64) -> [u32; 4] {
        [c[0] - r, c[1] - r, c[0] + r, c[1] + r].map(|v| v.round() as u32)
    }

    /// Before: a pit at (60, 50); after: the same skin shifted by (−7, 4) px, so an after
    /// pixel p shows baseline p + (7, −4).
    fn pair(r1: f64, d1: f64) -> PairedMeasure {
        pair_in_noise(r1, d1, 0.0)
    }

    /// The same with white noise of amplitude `amp` (uniform, σ = amp / √12) on both reliefs.
    fn pair_in_noise(r1: f64, d1: f64, amp: f32) -> PairedMeasure {
        let noise = |z: &mut Array2<f32>, seed: u64| {
            for ((y, x), v) in z.indexed_iter_mut() {
                let mut h = seed ^ ((y as u64) << 32 | x as u64);
                h = (h ^ (h >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
                h = (h ^ (h >> 33)).wrapping_mul(0xc4ce_b9fe_1a85_ec53);
                *v += amp * (((h ^ (h >> 33)) >> 40) as f32 / (1u64 << 24) as f32 - 0.5);
            }
        };
        let sl = [1u32];
        let (c0, c1) = ([60.0, 50.0], [53.0, 54.0]);
        let (mut z0, l0) = pit(120, 100, c0, 12.0, 0.4);
        let (mut z1, l1) = pit(120, 100, c1, r1, d1);
        noise(&mut z0, 1);
        noise(&mut z1, 2);
        let to_base = Affine([[1.0, 0.0, 7.0], [0.0, 1.0, -4.0]]);
        measure_pair(
            &maps(&z0, &l0, &sl),
            0,
            &maps(&z1, &l1, &sl),
            0,
            &to_base,
            bbox(c0, 12.0),
            bbox(c1, r1),
        )
        .expect("measurable")
    }

    #[test]
    fn an_unchanged_scar_on_shifted_skin_measures_the_same_in_both_sessions() {
        let pm = pair(12.0, 0.4);
        assert!((pm.before.depth - 0.4).abs() < 0.02, "{pm:?}");
        assert!(
            (pm.after.depth / pm.before.depth - 1.0).abs() < 0.02,
            "{pm:?}"
        );
        let (area, _) = pm.after_area(None);
        assert!((area / pm.before.area - 1.0).abs() < 0.03, "{pm:?}");
        // The 10 % footprint of a disc of radius 12 px at 0.1 mm per px: ≈ 4.5 mm².
        assert!((pm.before.area / (std::f64::consts::PI * 1.44) - 1.0).abs() < 0.1);
    }

    #[test]
    fn a_shallower_scar_reads_shallower_and_a_narrower_one_smaller() {
        let pm = pair(12.0, 0.2);
        assert!(
            (pm.after.depth / pm.before.depth - 0.5).abs() < 0.03,
            "{pm:?}"
        );
        let (area, _) = pm.after_area(None);
        assert!((area / pm.before.area - 1.0).abs() < 0.1, "{pm:?}");
        let pm = pair(9.6, 0.4);
        let (area, area_px) = pm.after_area(None);
        // Width × 0.8 → area × 0.64.
        assert!((area / pm.before.area - 0.64).abs() < 0.06, "{pm:?}");
        assert!((area_px / pm.before.area_px - area / pm.before.area).abs() < 1e-9);
        assert!(
            (pm.after.depth / pm.before.depth - 1.0).abs() < 0.03,
            "{pm:?}"
        );
    }

    #[test]
    fn a_scar_that_became_shallower_in_the_noise_is_not_read_as_shrinking() {
        // Noise σ ≈ 0.014: 2 σ is 7 % of the depth before (the 10 % rule sets the outline)
        // and 24 % after the scar became 0.12 deep. Outlined at its own level the same scar
        // reads 0.79 of its area after (checked); at the common level 0.90.
        let pm = pair_in_noise(12.0, 0.12, 0.05);
        let (area, _) = pm.after_area(None);
        assert!((area / pm.before.area - 1.0).abs() < 0.15, "{pm:?}");
        assert!(
            (pm.after.depth / pm.before.depth - 0.3).abs() < 0.05,
            "{pm:?}"
        );
    }

    #[test]
    fn the_shape_fit_reads_a_scar_scaled_in_width_and_depth() {
        // Unchanged, in light noise: ratios 1.
        let f = pair_in_noise(12.0, 0.4, 0.01).fit.expect("fitted");
        assert!((f.width_ratio - 1.0).abs() < 0.02, "{f:?}");
        assert!((f.depth_ratio - 1.0).abs() < 0.03, "{f:?}");
        assert!(f.r2 > 0.95, "{f:?}");
        // Width × 0.8 and depth × 0.5 (the Gaussian pit scales exactly). Smoothing both by
        // σ = 1.2 px widens the ratio to ≈ 0.81.
        let pm = pair_in_noise(9.6, 0.2, 0.01);
        let f = pm.usable_fit().expect("usable");
        assert!((f.width_ratio - 0.8).abs() < 0.03, "{f:?}");
        assert!((f.depth_ratio - 0.5).abs() < 0.04, "{f:?}");
        // The later area takes it in: 0.64 of the baseline's.
        let (area, _) = pm.after_area(None);
        assert!((area / pm.before.area - 0.64).abs() < 0.05, "{pm:?}");
        // Grown by 30 %: ratio 1.3.
        let f = pair_in_noise(15.6, 0.4, 0.01).fit.expect("fitted");
        assert!((f.width_ratio - 1.3).abs() < 0.04, "{f:?}");
    }

    #[test]
    fn the_shape_fit_is_not_used_where_the_later_relief_is_noise() {
        // The later session shows no pit at all (its label stays, as if segmentation kept a
        // noise patch): the fit explains little of it and is not used.
        let pm = pair_in_noise(12.0, 0.0, 0.05);
        assert!(pm.usable_fit().is_none(), "{pm:?}");
    }

    #[test]
    fn the_later_area_takes_the_geometric_mean_of_its_readings() {
        let side = |area_px: f64, depth: f64, volume: f64| SupportMeasure {
            area_px,
            area: area_px / 100.0,
            depth,
            mean_depth: 0.0,
            volume,
            ring_sd: 0.01,
        };
        let fit = |r2: f64| ScaleFit {
            depth_ratio: 0.5,
            width_ratio: 0.9,
            r2,
        };
        // Effective areas 0.5 → 0.4 (ratio 0.8), fit 0.9² = 0.81, footprints 100 → 64.
        let mut pm = PairedMeasure {
            before: side(100.0, 1.0, 0.5),
            after: side(64.0, 0.5, 0.2),
            support_px: 100,
            fit: Some(fit(0.9)),
        };
        let want = (0.8f64 * 0.81 * 0.64).cbrt();
        let (area, area_px) = pm.after_area(None);
        assert!((area - want).abs() < 1e-12 && (area_px - 100.0 * want).abs() < 1e-9);
        // Both pit models' area ratio takes its weight of the log ratio; a ratio that is no
        // reading (not finite, not positive) is ignored.
        let w = PIT_AREA_WEIGHT;
        let with_pit = ((1.0 - w) * want.ln() + w * 0.5f64.ln()).exp();
        assert!((pm.after_area(Some(0.5)).0 - with_pit).abs() < 1e-12);
        for bad in [f64::NAN, 0.0, -1.0, f64::INFINITY] {
            assert_eq!(pm.after_area(Some(bad)), pm.after_area(None));
        }
        // A fit that explains too little is left out.
        pm.fit = Some(fit(0.3));
        assert!((pm.after_area(None).0 - (0.8f64 * 0.64).sqrt()).abs() < 1e-12);
        // A later footprint that is empty: the scar's area is gone, whatever the pit models say.
        pm.after = side(0.0, 0.0, 0.0);
        assert_eq!(pm.after_area(None), (0.0, 0.0));
        assert_eq!(pm.after_area(Some(0.9)), (0.0, 0.0));
    }

    #[test]
    fn gain_windows_never_share_a_pixel_and_keep_their_margin() {
        for n in 1..1400usize {
            let margin = 7;
            let boxes = tile_boxes(n, 40, margin);
            let mut xs: Vec<(usize, usize)> = boxes.iter().map(|b| (b[0], b[2])).collect();
            xs.dedup();
            for w in xs.windows(2) {
                assert!(w[0].1 <= w[1].0, "n {n}: {xs:?}");
            }
            for &(a, b) in &xs {
                assert!(a >= margin && b + margin <= n && b > a, "n {n}: {xs:?}");
                assert!(b - a <= GAIN_TILE_PX, "n {n}: {xs:?}");
            }
            // The interior is covered when it fits in GAIN_TILES windows.
            let inner = n.saturating_sub(2 * margin);
            let covered: usize = xs.iter().map(|(a, b)| b - a).sum();
            if inner > 0 && inner <= GAIN_TILES * GAIN_TILE_PX {
                assert!(inner - covered < xs.len(), "n {n}: {xs:?}");
            }
        }
    }

    #[test]
    fn a_scar_without_a_label_is_not_measured() {
        let sl = [0u32];
        let (z, l) = pit(80, 80, [40.0, 40.0], 8.0, 0.3);
        let m = maps(&z, &l, &sl);
        let b = bbox([40.0, 40.0], 8.0);
        assert!(measure_pair(&m, 0, &m, 0, &Affine::IDENTITY, b, b).is_none());
    }

    /// Healthy texture (a sum of sinusoids, wavelengths 5–16 px) in baseline pixel
    /// coordinates, with a pit of label 1 at `pit` (radius 15 px) that does not follow it.
    fn textured(seed: u64) -> impl Fn([f64; 2]) -> f64 {
        let mut state = seed;
        let mut next = move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let waves: Vec<[f64; 4]> = (0..40)
            .map(|_| {
                let (lambda, dir, phase) = (5.0 + 11.0 * next(), 6.3 * next(), 6.3 * next());
                let k = std::f64::consts::TAU / lambda;
                [k * dir.cos(), k * dir.sin(), phase, 0.002 + 0.002 * next()]
            })
            .collect();
        move |p| {
            waves
                .iter()
                .map(|w| w[3] * (w[0] * p[0] + w[1] * p[1] + w[2]).sin())
                .sum()
        }
    }

    /// A baseline and a later relief of the same texture: the later photo framed by
    /// `to_base` (later pixel → baseline pixel), lit from its own azimuth, its heights scaled
    /// by `g` and distorted by a ridge field that is constant along its light direction (what
    /// a single photo's integration cannot see), and a pit inside each scar label that is
    /// not scaled at all. `same` false: the later photo shows a different texture.
    fn gain_of(g: f64, same: bool) -> Option<ReliefGain> {
        gain_of_blurred(g, same, [0.0, 0.0])
    }

    /// [`gain_of`] with each session's relief blurred by a Gaussian of `blur` px (baseline,
    /// later), as a softer focus or more light scattered under the skin would.
    fn gain_of_blurred(g: f64, same: bool, blur: [f32; 2]) -> Option<ReliefGain> {
        let (w, h) = (220usize, 180usize);
        let to_base = Affine::similarity(1.04, 3f64.to_radians(), 12.0, -8.0);
        let from_base = to_base.inverse().unwrap();
        let (az0, az1) = (30f64, 120f64);
        let tex0 = textured(7);
        let tex1 = textured(if same { 7 } else { 8 });
        let c0 = [110.0, 90.0];
        let c1 = from_base.apply(c0);
        let pit = |p: [f64; 2], c: [f64; 2]| {
            let d2 = (p[0] - c[0]).powi(2) + (p[1] - c[1]).powi(2);
            (d2 < 225.0, -0.3 * (-d2 / 60.0).exp())
        };
        let z0 = Array2::from_shape_fn((h, w), |(y, x)| {
            let p = [x as f64, y as f64];
            (tex0(p) + pit(p, c0).1) as f32
        });
        let l0 = Array2::from_shape_fn((h, w), |(y, x)| u32::from(pit([x as f64, y as f64], c0).0));
        // Across the later light: n1 ⟂ u1 = (cos az1, −sin az1).
        let n1 = [az1.to_radians().sin(), az1.to_radians().cos()];
        let z1 = Array2::from_shape_fn((h, w), |(y, x)| {
            let p = [x as f64, y as f64];
            let s = n1[0] * p[0] + n1[1] * p[1];
            let ridge = 0.01 * (0.4 * s).sin() + 0.002 * s;
            (g * tex1(to_base.apply(p)) + ridge + pit(p, c1).1) as f32
        });
        let l1 = Array2::from_shape_fn((h, w), |(y, x)| u32::from(pit([x as f64, y as f64], c1).0));
        let soften = |z: Array2<f32>, s: f32| {
            if s > 0.0 {
                crate::filters::gaussian(&z.view(), s)
            } else {
                z
            }
        };
        let (z0, z1) = (soften(z0, blur[0]), soften(z1, blur[1]));
        let sl = [1u32];
        let m0 = SessionMaps {
            light_azimuth_deg: az0,
            ..maps(&z0, &l0, &sl)
        };
        let m1 = SessionMaps {
            light_azimuth_deg: az1,
            ..maps(&z1, &l1, &sl)
        };
        relief_gain(&m0, &m1, &to_base)
    }

    #[test]
    fn the_relief_gain_recovers_a_later_session_scale_under_other_light_and_framing() {
        for g in [0.7, 1.0, 1.3] {
            let r = gain_of(g, true).expect("enough shared skin");
            assert!(r.applied && r.correlation > 0.95, "{g}: {r:?}");
            assert!((r.factor() * g - 1.0).abs() < 0.03, "{g}: {r:?}");
            assert!(r.matched_blur_px.abs() <= 0.5, "{g}: {r:?}");
            assert!(r.sd < 0.1 * r.gain && r.pixels > 20_000, "{g}: {r:?}");
        }
    }

    /// A photo softer than the other is matched by blurring the sharper one (the search
    /// climbs to it from no blur, either way; the whole grid picks the same steps), and the
    /// scale is still recovered, within the few per cent that a sharpness mismatch leaves
    /// (measured: +3.8 % with the later photo blurred, −6.3 % with the baseline blurred; the
    /// texture's finest waves fade with the blur, the smooth field the later photo cannot
    /// see does not).
    #[test]
    fn the_relief_gain_matches_a_softer_photo_either_way() {
        // The sharper photo is blurred: the baseline (negative) when the later one is soft,
        // whose pixels are 1.04 baseline pixels (the framing of `gain_of`).
        for (blur, want) in [([0.0, 0.75], -0.78), ([0.75, 0.0], 0.75)] {
            let r = gain_of_blurred(1.3, true, blur).expect("enough shared skin");
            assert!(r.applied && r.correlation > 0.99, "{blur:?}: {r:?}");
            assert!(
                r.matched_blur_px * want > 0.0 && (r.matched_blur_px - want).abs() <= 0.3,
                "{blur:?}: matched {} px, want {want}",
                r.matched_blur_px
            );
            assert!((r.factor() * 1.3 - 1.0).abs() < 0.08, "{blur:?}: {r:?}");
        }
        // Equally soft photos: at most one step, for the smoothing the later photo's
        // bilinear resampling adds (measured −0.5: the baseline blurred to match it).
        let r = gain_of_blurred(1.3, true, [0.75, 0.75 / 1.04]).expect("enough shared skin");
        assert!(r.matched_blur_px.abs() <= 0.5, "{r:?}");
        assert!((r.factor() * 1.3 - 1.0).abs() < 0.03, "{r:?}");
    }

    #[test]
    fn an_uncertain_relief_gain_is_weighed_towards_one() {
        let tau = GAIN_PRIOR_LOG_SD;
        // A sure measurement stands.
        let (g, sd) = weigh_gain(1.5, 0.0);
        assert!((g - 1.5).abs() < 1e-12 && sd == 0.0);
        // As uncertain as the prior spread: half of its logarithm, σ / √2.
        let (g, sd) = weigh_gain(1.5, tau);
        assert!((g.ln() - 0.5 * 1.5f64.ln()).abs() < 1e-12, "{g}");
        assert!((sd / g - tau / 2f64.sqrt()).abs() < 1e-12, "{sd}");
        // Far more uncertain: close to 1, either way.
        for m in [0.6, 1.6] {
            let (g, _) = weigh_gain(m, 10.0 * tau);
            assert!((g - 1.0).abs() < 0.01, "{m}: {g}");
        }
    }

    #[test]
    fn the_relief_gain_is_not_applied_between_unrelated_textures() {
        let r = gain_of(0.7, false).expect("measured");
        assert!(!r.applied && r.correlation < 0.3, "{r:?}");
        assert_eq!(r.factor(), 1.0);
        assert_eq!(r.rel_sd(), 0.0);
    }

    #[test]
    fn a_pit_model_maps_through_rotation_scale_and_grids_and_back() {
        let model = PitFit {
            centre_px: [30.0, 20.0],
            depth_px: 6.0,
            radius_px: 8.0,
            ellipticity: [0.3, 0.0],
            shape: 2.0,
            explained: 0.9,
            area_px: 150.0,
        };
        // A quarter turn (x → y): the ellipse's long axis turns with it, e1 changes sign.
        let quarter = Affine([[0.0, -1.0, 100.0], [1.0, 0.0, 0.0]]);
        let q = map_pit(&model, (1, 0.1), (1, 0.1), &quarter).expect("mapped");
        assert!((q.centre_px[0] - 80.0).abs() < 1e-9 && (q.centre_px[1] - 30.0).abs() < 1e-9);
        assert!(
            (q.ellipticity[0] + 0.3).abs() < 1e-9 && q.ellipticity[1].abs() < 1e-9,
            "{q:?}"
        );
        assert!((q.radius_px - 8.0).abs() < 1e-9, "{q:?}");
        // Twice the camera pixels per mm, and a grid reduced by 2 on the far side: the support
        // keeps its processing-pixel size, the depth follows the units.
        let twice = Affine([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0]]);
        let q = map_pit(&model, (1, 0.1), (2, 0.1), &twice).expect("mapped");
        assert!(
            (q.radius_px - 8.0).abs() < 1e-9 && (q.depth_px - 6.0).abs() < 1e-9,
            "{q:?}"
        );
        let q = map_pit(&model, (1, 0.1), (1, 0.05), &twice).expect("mapped");
        assert!(
            (q.radius_px - 16.0).abs() < 1e-9 && (q.depth_px - 12.0).abs() < 1e-9,
            "{q:?}"
        );
        // Any similarity or affine there and back returns the model.
        let m = Affine([[1.1, 0.3, 5.0], [-0.2, 0.9, -7.0]]);
        let there = map_pit(&model, (2, 0.1), (3, 0.15), &m).expect("mapped");
        let back = map_pit(&there, (3, 0.15), (2, 0.1), &m.inverse().expect("regular"))
            .expect("mapped back");
        for (a, b) in [
            (back.centre_px[0], model.centre_px[0]),
            (back.centre_px[1], model.centre_px[1]),
            (back.radius_px, model.radius_px),
            (back.depth_px, model.depth_px),
            (back.ellipticity[0], model.ellipticity[0]),
            (back.ellipticity[1], model.ellipticity[1]),
        ] {
            assert!((a - b).abs() < 1e-9, "{back:?}");
        }
        assert!(map_pit(&model, (1, 0.1), (1, 0.1), &Affine([[0.0; 3]; 2])).is_none());
    }

    #[test]
    fn a_pit_refitted_with_its_shape_held_reads_the_change_of_depth_and_outline() {
        // Baseline: a cone 6 px wide in radius, 8 px deep, under 40° light from 30°. Later:
        // the same scar 5 px wide, 5 px deep, moved by (3, −2) px, under 55° light from 200°.
        let (c0, z0, l0) = cone_photo((48, 44), [22.3, 21.6], 6.0, 8.0, 30.0, 40.0);
        let (c1, z1, l1) = cone_photo((48, 44), [25.3, 19.6], 5.0, 5.0, 200.0, 55.0);
        let fit = |c: &ShadingCosines, z: &Array2<f32>, l: &Array2<u32>, az: f64| {
            let opts = crate::pitfit::PitFitOptions {
                max_radius_px: 10.0,
                search: true,
            };
            crate::pitfit::fit_pits(c, &l.view(), &z.view(), 1, az, 0.1, opts)
        };
        let (p0, p1) = (fit(&c0, &z0, &l0, 30.0), fit(&c1, &z1, &l1, 200.0));
        assert!(p0[0].is_some() && p1[0].is_some(), "{p0:?} {p1:?}");
        let sl = [1u32];
        let m0 = SessionMaps {
            light_azimuth_deg: 30.0,
            cosines: Some(&c0),
            pits: &p0,
            ..maps(&z0, &l0, &sl)
        };
        let m1 = SessionMaps {
            light_azimuth_deg: 200.0,
            cosines: Some(&c1),
            pits: &p1,
            ..maps(&z1, &l1, &sl)
        };
        let to_base = Affine([[1.0, 0.0, -3.0], [0.0, 1.0, 2.0]]);
        let q = paired_pit(&m0, 0, &m1, 0, &to_base).expect("refitted");
        let depth_ratio = q.after.depth_px / q.before.depth_px;
        assert!((depth_ratio / 0.625 - 1.0).abs() < 0.1, "{q:?}");
        assert!((q.area_ratio / (25.0 / 36.0) - 1.0).abs() < 0.12, "{q:?}");
        // The refit sits on the later photo's cone.
        let c = q.after.centre_px;
        assert!(
            (c[0] - 25.3).abs() < 0.7 && (c[1] - 19.6).abs() < 0.7,
            "{q:?}"
        );
        // The shape is the baseline's.
        assert_eq!(q.after.shape, q.before.shape);
        let [e0, e1] = [q.before.ellipticity, q.after.ellipticity];
        assert!(
            (e0[0] - e1[0]).abs() < 1e-9 && (e0[1] - e1[1]).abs() < 1e-9,
            "{q:?}"
        );
        // Without the later cosines, or without a baseline model, nothing is paired.
        let bare = SessionMaps {
            cosines: None,
            ..m1
        };
        assert!(paired_pit(&m0, 0, &bare, 0, &to_base).is_none());
        let none = [None];
        let no_model = SessionMaps { pits: &none, ..m0 };
        assert!(paired_pit(&no_model, 0, &m1, 0, &to_base).is_none());
    }
}
