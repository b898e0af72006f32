//! Segmentation: relief map → labelled depressed regions, one label per scar.
//!
//! Integrated shading carries noise whose power grows towards long wavelengths (a random walk
//! along the light), so a single depth threshold either drowns small scars or invents large
//! ones. Detection therefore works in scale space: at each scale σ (icepick to rolling), a
//! difference of Gaussians of the relief compares a disc of radius ~σ with its surroundings,
//! and is divided by its own robust noise level, measured on the photo itself (scales wide
//! enough run on a Gaussian pyramid, a quarter of the pixels per octave, and are
//! interpolated back). Each pixel
//! keeps its best scale's signal-to-noise ratio. Scar cores are flooded from the strongest
//! responses downwards (a union-find watershed: two cores merge only when the ridge between
//! them is shallow compared with the weaker one, so neighbouring scars stay apart while a
//! noisy floor stays one scar).
//!
//! Each core then grows its footprint by the rule of DOMAIN.md §4: depth is taken against a
//! plane fitted to the healthy skin around the core, and the footprint is the connected set
//! deeper than 10 % of the core's maximum (and above that ring's own noise), never entering
//! a neighbour or a weaker core the threshold dropped. A core whose 10 % level is lost in that
//! noise must also stand out on the relief smoothed at its own scale, or it is no scar.

use std::cmp::Ordering;

use image::{GrayImage, Luma};
use imageproc::distance_transform::{euclidean_squared_distance_transform, Norm};
use imageproc::morphology::open;
use imageproc::region_labelling::{connected_components, Connectivity};
use ndarray::{Array2, ArrayView2, Axis, Zip};
use rayon::prelude::*;

use crate::filters::{
    closing, gaussian, gaussian_separable, robust_stats, standard_slice, upsample_into,
};

/// Parameters of segmentation (scales in processing pixels, depths in relief units).
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentParams {
    /// Scales (Gaussian σ, px) of the detection, smallest first.
    pub scales_px: Vec<f32>,
    /// Ratio of the surround σ to the centre σ of each difference of Gaussians.
    pub surround_ratio: f32,
    /// Signal-to-noise ratio a core must reach at least (the floor of the mirror threshold).
    pub snr_seed: f32,
    /// Share of false scars tolerated among those kept (mirror-null threshold).
    pub fdr: f32,
    /// Signal-to-noise ratio down to which a core is flooded.
    pub snr_extent: f32,
    /// Depth a scar must reach regardless of noise (relief units).
    pub min_depth: f32,
    /// Smallest footprint kept, px.
    pub min_area_px: usize,
    /// Half-width (px) of the closing that removes furrows before footprints are traced.
    pub furrow_px: usize,
    /// A footprint pixel must lie this many ring noise σ below the reference (besides the
    /// 10 % rule), so the outline follows the scar rather than the noise around it.
    pub ring_k: f32,
    /// Light azimuth the relief was integrated along (degrees, DOMAIN.md §4), where known:
    /// the mirror null then tells a pit's own ridge from texture ([`ridge_null`]).
    pub light_azimuth_deg: Option<f64>,
}

/// Labelled scars.
#[derive(Debug, Clone)]
pub struct Regions {
    /// Best-scale signal-to-noise ratio of a depression at each pixel.
    pub snr: Array2<f32>,
    /// 0 = healthy skin, 1..=count = scar footprints.
    pub labels: Array2<u32>,
    /// Number of scars.
    pub count: usize,
    /// Median over scales of the robust depth noise (relief units).
    pub noise: f32,
    /// Depth at the detection scale that a core's SNR threshold corresponds to, at the
    /// finest scale (relief units).
    pub threshold: f32,
    /// Seed SNR the mirror null set (≥ the configured floor).
    pub seed_snr: f32,
    /// Depression cores at or above the floor but below the seed: held back because the
    /// photo's bumps were as strong (they may be scars the texture hides).
    pub held_back: usize,
    /// Independent bump cores (peak pixel (x, y), peak SNR), from which the mirror null is
    /// drawn (less the ridges pits leave on their light side, [`SegmentParams::light_azimuth_deg`]).
    pub bumps: Vec<((usize, usize), f32)>,
}

/// Best-scale signal-to-noise ratios of depressions and of bumps, and the noise level.
pub struct ScaleSpace {
    /// Best-scale SNR of a depression at each pixel.
    pub dips: Array2<f32>,
    /// Best-scale SNR of a bump at each pixel (the mirror image: the null for depressions).
    pub bumps: Array2<f32>,

    /// Median over scales of the robust noise of the difference of Gaussians.
    pub noise: f32,
    /// Robust noise at the finest scale.
    pub fine_noise: f32,
}

/// Window (Gaussian σ, in surround σ) over which the local noise of a response is pooled:
/// wide enough to hold dozens of independent samples of that scale.
const LOCAL_NOISE_WINDOW: f32 = 4.0;

/// Smallest centre σ, in pixels of the level it is computed on, of a scale computed on a
/// coarser level of the pyramid: a Gaussian that wide is sampled finely enough on that level
/// for its response to be interpolated back to full resolution (bilinear error under 1 % of
/// the response's peak).
const MIN_LEVEL_SIGMA: f32 = 2.5;

/// Noise of a response is not the same everywhere in a photo (exposure and light fall-off,
/// local light elevation on curved skin, focus): the local mean absolute deviation of `d`
/// from `med`, each pixel clipped at 3 `sd` so scars do not count as noise, pooled with a
/// Gaussian of `window` px, relative to the same statistic over the whole plane, kept within
/// 1/3…3. Written into `out` (the shape of `d`).
fn local_noise_ratio_into(d: &Array2<f32>, med: f32, sd: f32, window: f32, out: &mut Array2<f32>) {
    let cap = 3.0 * sd;
    let (h, w) = d.dim();
    // The window is wide, so the pooling runs on a grid a quarter of it apart and is
    // interpolated back; block sums of the clipped deviations are made in one pass.
    let f = ((window / 4.0) as usize).max(1);
    let (ch, cw) = (h.div_ceil(f), w.div_ceil(f));
    let view = d.view();
    let src = standard_slice(&view);
    let mut sums = Array2::<f32>::zeros((ch, cw));
    sums.axis_iter_mut(Axis(0))
        .into_par_iter()
        .enumerate()
        .for_each(|(cy, mut o)| {
            let mut acc = vec![0f32; cw];
            for y in cy * f..((cy + 1) * f).min(h) {
                for (chunk, a) in src[y * w..(y + 1) * w].chunks(f).zip(acc.iter_mut()) {
                    *a += chunk.iter().map(|v| (v - med).abs().min(cap)).sum::<f32>();
                }
            }
            let rows = (((cy + 1) * f).min(h) - cy * f) as f32;
            for (cx, (ov, a)) in o.iter_mut().zip(acc).enumerate() {
                let cols = (((cx + 1) * f).min(w) - cx * f) as f32;
                *ov = a / (rows * cols);
            }
        });
    // Whole-plane mean from the block means weighted by the pixels they hold.
    let mut total = 0f64;
    for ((cy, cx), v) in sums.indexed_iter() {
        let rows = ((cy + 1) * f).min(h) - cy * f;
        let cols = ((cx + 1) * f).min(w) - cx * f;
        total += *v as f64 * (rows * cols) as f64;
    }
    let g = ((total / (h * w).max(1) as f64) as f32).max(1e-12);
    let mut coarse = gaussian(&sums.view(), window / f as f32);
    coarse.mapv_inplace(|v| (v / g).clamp(1.0 / 3.0, 3.0));
    upsample_into(&coarse, f, (f as f32 - 1.0) / 2.0, out);
}

/// Pyramid level (a power of two) a scale of centre σ `s` px is computed on: the coarsest
/// on which its centre σ is still at least [`MIN_LEVEL_SIGMA`] px.
fn level_factor(s: f32) -> usize {
    let mut f = 1usize;
    while s / (2 * f) as f32 >= MIN_LEVEL_SIGMA {
        f *= 2;
    }
    f
}

/// Anti-aliasing blur of pyramid level f (f = 2, 4, …): a Gaussian of σ = `LEVEL_BLUR`·f
/// full-resolution pixels before sampling every f-th pixel, which leaves ~1 % of the
/// amplitude at the level's Nyquist frequency (box averaging would fold image noise back
/// into the bands the coarse scales measure).
const LEVEL_BLUR: f32 = 1.0;

/// The next pyramid level: `prev` (level f, or full resolution for f = 1) blurred up to the
/// anti-aliasing σ of level 2f and sampled every second pixel.
fn next_level(prev: &ArrayView2<f32>, f: usize) -> Array2<f32> {
    // Variance in level-f pixels still to add: (2f·b)² − (f·b)² (none at full resolution).
    let b = LEVEL_BLUR;
    let sigma = if f == 1 { 2.0 * b } else { b * 3f32.sqrt() };
    let blurred = gaussian(prev, sigma);
    let (h, w) = blurred.dim();
    Array2::from_shape_fn((h.div_ceil(2), w.div_ceil(2)), |(y, x)| {
        blurred[[2 * y, 2 * x]]
    })
}

/// Response (surround − centre) of scale `s` on `plane`, a level of the pyramid `f` times
/// coarser than full resolution: the Gaussians are narrowed by the blur the level already
/// holds, so the response equals the full-resolution one sampled every f pixels. Positive
/// in a depression.
fn level_response(plane: &ArrayView2<f32>, f: usize, s: f32, surround_ratio: f32) -> Array2<f32> {
    let held = if f == 1 {
        0.0
    } else {
        (LEVEL_BLUR * f as f32).powi(2)
    };
    let level_sigma = |sigma: f32| (sigma * sigma - held).max(0.0).sqrt() / f as f32;
    // On a coarse level the planes are small, so the sampled kernel (exact variance) costs
    // little; at full resolution a wide σ takes the box cascade.
    let blur = |sigma: f32| {
        if f == 1 {
            gaussian(plane, sigma)
        } else {
            gaussian_separable(plane, sigma)
        }
    };
    let c = blur(level_sigma(s));
    let mut d = blur(level_sigma(s * surround_ratio));
    Zip::from(&mut d).and(&c).par_for_each(|a, b| *a -= b);
    d
}

/// SNR of scale `s` on `plane` (level `f` of the pyramid, see [`level_response`]): the
/// response less its median, over its robust noise scaled by the local noise; and that
/// robust noise.
fn snr_on_level(
    plane: &ArrayView2<f32>,
    f: usize,
    s: f32,
    p: &SegmentParams,
) -> (Array2<f32>, f32) {
    let mut d = level_response(plane, f, s, p.surround_ratio);
    let (med, sd) = robust_stats(&d.view());
    let sd = sd.max(1e-9);
    let mut local = Array2::<f32>::zeros(d.dim());
    let window = s * p.surround_ratio * LOCAL_NOISE_WINDOW / f as f32;
    local_noise_ratio_into(&d, med, sd, window, &mut local);
    Zip::from(&mut d)
        .and(&local)
        .par_for_each(|v, r| *v = (*v - med) / (sd * r));
    (d, sd)
}

/// Best-scale SNR of depressions and bumps over the scales of `p`. Fine scales run at full
/// resolution; a coarse scale runs on a level of a Gaussian pyramid (a quarter of the
/// pixels per octave) and its SNR is interpolated back, so every scale costs about the same
/// whatever its σ while the result stays that of a full-resolution filter.
pub fn scale_space_snr(height: &ArrayView2<f32>, p: &SegmentParams) -> ScaleSpace {
    let mut dips = Array2::<f32>::from_elem(height.dim(), f32::MIN);
    let mut bumps = Array2::<f32>::from_elem(height.dim(), f32::MIN);
    let mut noises = Vec::new();
    // levels[k]: the relief at level 2^(k+1) (see `next_level`).
    let mut levels: Vec<Array2<f32>> = Vec::new();
    let mut up = Array2::<f32>::zeros(height.dim());
    for &s in &p.scales_px {
        let f = level_factor(s);
        let k = f.trailing_zeros() as usize;
        while levels.len() < k {
            let next = match levels.last() {
                Some(l) => next_level(&l.view(), 1 << levels.len()),
                None => next_level(height, 1),
            };
            levels.push(next);
        }
        let plane = if k == 0 {
            height.view()
        } else {
            levels[k - 1].view()
        };
        let (snr, sd) = snr_on_level(&plane, f, s, p);
        noises.push(sd);
        let full = if f == 1 {
            &snr
        } else {
            upsample_into(&snr, f, 0.0, &mut up);
            &up
        };
        Zip::from(&mut dips)
            .and(&mut bumps)
            .and(full)
            .par_for_each(|b, u, v| {
                *b = b.max(*v);
                *u = u.max(-*v);
            });
    }
    let fine_noise = noises.first().copied().unwrap_or(0.0);
    let mut sorted = noises.clone();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let noise = sorted.get(sorted.len() / 2).copied().unwrap_or(0.0);
    ScaleSpace {
        dips,
        bumps,
        noise,
        fine_noise,
    }
}

/// Fewest bump cores from which the null's tail is fitted rather than counted.
const MIN_TAIL_SAMPLE: usize = 5;

/// Seed threshold from the mirror null: healthy skin and image noise make bumps as often as
/// dips, while scars make only dips. The threshold is the lowest SNR at which the bumps
/// expected above it number at most `fdr` times the dip cores above it, so the expected share
/// of false scars among those kept is about `fdr` whatever the texture, camera or resolution.
/// Never below `floor`.
///
/// The bumps above a threshold are counted, but never more of them than the exponential
/// tail fitted to all bump cores above `floor` predicts (rate ln 2 over their median excess, a
/// fit a few outliers cannot move): a lone bump far stronger than the texture's own tail (a
/// mole, a papule, the ridge an unbalanced pit leaves beside it) is a feature, not evidence
/// that dips as strong are noise, and counted it would alone demand ten dips above it. Where
/// half the bumps are that strong, they are the texture, and the fit says so. With fewer than
/// `MIN_TAIL_SAMPLE` bump cores no tail is fitted and the bumps are counted.
pub fn mirror_threshold(dip_peaks: &[f32], bump_peaks: &[f32], fdr: f32, floor: f32) -> f32 {
    let mut d: Vec<f32> = dip_peaks.iter().copied().filter(|v| *v >= floor).collect();
    let mut b: Vec<f32> = bump_peaks.iter().copied().filter(|v| *v >= floor).collect();
    d.sort_by(|x, y| y.total_cmp(x));
    b.sort_by(|x, y| y.total_cmp(x));
    // The fitted tail (count, rate), when there are bumps enough to fit it.
    let tail = (b.len() >= MIN_TAIL_SAMPLE).then(|| {
        let n = b.len();
        // The median bump (b is sorted strongest first; the median is the same).
        let excess_median = 0.5 * (b[(n - 1) / 2] + b[n / 2]) - floor;
        (n as f32, std::f32::consts::LN_2 / excess_median.max(1e-3))
    });
    let mut best = f32::INFINITY;
    let mut nb = 0usize;
    for (i, &t) in d.iter().enumerate() {
        // Null bumps at or above t: those counted, but never more than the texture's fitted
        // tail predicts.
        while nb < b.len() && b[nb] >= t {
            nb += 1;
        }
        let expected = match tail {
            Some((n, rate)) => (nb as f32).min(n * (-rate * (t - floor)).exp()),
            None => nb as f32,
        };
        if expected <= fdr * (i + 1) as f32 {
            best = t;
        }
    }
    if best.is_finite() {
        best.max(floor)
    } else {
        // Nothing can be kept: a finite threshold just above every core, so reports stay
        // finite numbers.
        let top = d.iter().chain(&b).fold(floor, |m, v| m.max(*v));
        top + top.abs() * 1e-6 + 1e-6
    }
}

struct Basin {
    peak: f32,
    parent: u32,
}

fn find(b: &mut [Basin], mut i: u32) -> u32 {
    while b[i as usize].parent != i {
        let p = b[i as usize].parent;
        b[i as usize].parent = b[p as usize].parent;
        i = p;
    }
    i
}

fn neighbours(i: usize, w: usize, h: usize) -> [Option<usize>; 4] {
    let (y, x) = (i / w, i % w);
    [
        (x > 0).then(|| i - 1),
        (x + 1 < w).then(|| i + 1),
        (y > 0).then(|| i - w),
        (y + 1 < h).then(|| i + w),
    ]
}

/// Flood the SNR map from its maxima down to `extent`; returns core labels (0 = none,
/// 1..=n) and each core's peak SNR. Cores peaking below `seed` join their neighbour or vanish.
fn cores(snr: &Array2<f32>, extent: f32, seed: f32) -> (Vec<u32>, Vec<f32>) {
    let (h, w) = snr.dim();
    let view = snr.view();
    let flat = standard_slice(&view);
    // Strongest first, ties by position: one u64 per pixel (the value's order key inverted,
    // then the index) sorts faster than comparing through the plane.
    let order_key = |v: f32| {
        let b = v.to_bits();
        if b >> 31 == 1 {
            !b
        } else {
            b | 0x8000_0000
        }
    };
    let mut keyed: Vec<u64> = (0..flat.len() as u32)
        .filter(|&i| flat[i as usize] > extent)
        .map(|i| (u64::from(!order_key(flat[i as usize])) << 32) | u64::from(i))
        .collect();
    keyed.sort_unstable();
    let order: Vec<u32> = keyed.iter().map(|k| *k as u32).collect();
    drop(keyed);
    let mut lab = vec![u32::MAX; flat.len()];
    let mut basins: Vec<Basin> = Vec::new();
    for &iu in &order {
        let i = iu as usize;
        let v = flat[i];
        let mut roots: Vec<u32> = Vec::with_capacity(4);
        for j in neighbours(i, w, h).into_iter().flatten() {
            if lab[j] != u32::MAX {
                let r = find(&mut basins, lab[j]);
                if !roots.contains(&r) {
                    roots.push(r);
                }
            }
        }
        if roots.is_empty() {
            basins.push(Basin {
                peak: v,
                parent: basins.len() as u32,
            });
            lab[i] = basins.len() as u32 - 1;
            continue;
        }
        roots.sort_by(|a, b| {
            basins[*b as usize]
                .peak
                .partial_cmp(&basins[*a as usize].peak)
                .unwrap_or(Ordering::Equal)
                .then(a.cmp(b))
        });
        let main = roots[0];
        for &r in &roots[1..] {
            let pr = basins[r as usize].peak;
            // A weak core, or one separated by a shallow ridge, is part of its neighbour.
            if pr < seed || pr - v < (0.35 * pr).max(2.0) {
                basins[r as usize].parent = main;
            }
        }
        lab[i] = main;
    }
    let mut new_id = vec![0u32; basins.len()];
    let mut peaks = Vec::new();
    let mut out = vec![0u32; flat.len()];
    for i in 0..flat.len() {
        if lab[i] == u32::MAX {
            continue;
        }
        let r = find(&mut basins, lab[i]) as usize;
        if basins[r].peak < seed {
            continue;
        }
        if new_id[r] == 0 {
            peaks.push(basins[r].peak);
            new_id[r] = peaks.len() as u32;
        }
        out[i] = new_id[r];
    }
    (out, peaks)
}

/// Bounding boxes (x0, y0, x1, y1) of labels 1..=n.
fn label_boxes(labels: &[u32], n: usize, w: usize) -> Vec<(usize, usize, usize, usize)> {
    let mut boxes = vec![(usize::MAX, usize::MAX, 0usize, 0usize); n];
    for (i, &l) in labels.iter().enumerate() {
        if l > 0 {
            let b = &mut boxes[l as usize - 1];
            let (y, x) = (i / w, i % w);
            b.0 = b.0.min(x);
            b.1 = b.1.min(y);
            b.2 = b.2.max(x);
            b.3 = b.3.max(y);
        }
    }
    boxes
}

/// Peak pixel (x, y) of each label 1..=n.
fn label_peaks(labels: &[u32], snr: &[f32], n: usize, w: usize) -> Vec<(usize, usize)> {
    let mut best = vec![(f32::MIN, 0usize); n];
    for (i, (&l, &v)) in labels.iter().zip(snr).enumerate() {
        if l > 0 && v > best[l as usize - 1].0 {
            best[l as usize - 1] = (v, i);
        }
    }
    best.into_iter().map(|(_, i)| (i % w, i / w)).collect()
}

/// Peaks of the bump cores that are features of their own: a bump that surrounds a stronger
/// depression is that depression's rim in the difference of Gaussians, not skin texture.
fn independent_bumps(
    bumps: &Array2<f32>,
    p: &SegmentParams,
    dip_pos: &[(usize, usize)],
    dip_peaks: &[f32],
) -> Vec<Core> {
    let w = bumps.dim().1;
    let (lab, peaks) = cores(bumps, p.snr_extent, p.snr_seed);
    let boxes = label_boxes(&lab, peaks.len(), w);
    let view = bumps.view();
    let flat = standard_slice(&view);
    let pos = label_peaks(&lab, &flat, peaks.len(), w);
    peaks
        .iter()
        .zip(&boxes)
        .zip(pos)
        .filter(|((pk, b), _)| {
            let (mx, my) = ((b.2 - b.0) / 2 + 1, (b.3 - b.1) / 2 + 1);
            !dip_pos.iter().zip(dip_peaks).any(|(&(x, y), dp)| {
                dp >= *pk && x + mx >= b.0 && x <= b.2 + mx && y + my >= b.1 && y <= b.3 + my
            })
        })
        .map(|((pk, b), xy)| Core {
            pos: xy,
            peak: *pk,
            half: half_extent(*b),
        })
        .collect()
}

/// One core of the detection: its peak pixel (x, y), peak SNR and half extent (px).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Core {
    pos: (usize, usize),
    peak: f32,
    half: f32,
}

/// Half the larger side of a bounding box (x0, y0, x1, y1), px.
fn half_extent(b: (usize, usize, usize, usize)) -> f32 {
    0.5 * (b.2.saturating_sub(b.0)).max(b.3.saturating_sub(b.1)) as f32 + 0.5
}

/// Whether core `to` lies next to core `from` on the light's side: their peaks no farther
/// apart than the two half extents and two pixels, the direction within 45° of `toward`
/// (the unit vector towards the light, pixel axes).
fn next_towards(from: &Core, to: &Core, toward: [f32; 2]) -> bool {
    let v = [
        to.pos.0 as f32 - from.pos.0 as f32,
        to.pos.1 as f32 - from.pos.1 as f32,
    ];
    let d = v[0].hypot(v[1]);
    let along = v[0] * toward[0] + v[1] * toward[1];
    d > 0.0 && d <= from.half + to.half + 2.0 && along >= d * std::f32::consts::FRAC_1_SQRT_2
}

/// The null sample of the mirror threshold, with a pit's own ridge told from texture.
///
/// Shading read along the light leaves a steep pit unbalanced: the wall facing the light,
/// steeper than 90° − elevation, is past the brightest normal and reads gentle, so the
/// integrated relief climbs out of the pit higher than it went in, and a ridge stands next
/// to it on the light's side — as strong as the pit, often stronger at the detection scales.
/// Counted as texture, such ridges alone raised the threshold above every scar of a photo (a
/// light-skinned cheek at 40 px/mm under 60° light lost all 20 of its scars). A bump core
/// next to a dip core on the dip's light side is therefore that dip's ridge and left out of
/// the null. Texture makes such pairs too, so the null loses a few of its own bumps (false
/// scars on the 36 pigment-only phantoms, per 10 cm², light given / estimated: 0.09 / 0.12 →
/// 0.09 / 0.14). Standing the mirrored pairs' dips (a dip next to a bump on the bump's light
/// side) in for the bumps left out would keep the null exact for texture, but real pits
/// whose rim peaks on their shadow side are such dips: recall fell (36-photo grid F1 0.930 →
/// 0.922 with the light given). Without a light direction the bumps are the null.
fn ridge_null(dips: &[Core], bumps: &[Core], light_azimuth_deg: Option<f64>) -> Vec<f32> {
    let Some(az) = light_azimuth_deg.filter(|a| a.is_finite()) else {
        return bumps.iter().map(|b| b.peak).collect();
    };
    let a = az.to_radians();
    // Towards the light in pixel axes (x right, y down; azimuth counter-clockwise on screen).
    let toward = [a.cos() as f32, -a.sin() as f32];
    bumps
        .iter()
        .filter(|b| !dips.iter().any(|d| next_towards(d, b, toward)))
        .map(|b| b.peak)
        .collect()
}

/// The relief of the window (x0, y0)…(x1, y1) (inclusive) of a row-major plane `w` wide.
fn z_win(z: &[f32], w: usize, from: (usize, usize), to: (usize, usize)) -> Array2<f32> {
    Array2::from_shape_fn((to.1 - from.1 + 1, to.0 - from.0 + 1), |(j, i)| {
        z[(from.1 + j) * w + from.0 + i]
    })
}

/// A core's reference: the plane fitted to its healthy ring, the ring's scatter about it, and
/// the deepest point of the core below it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct RingFit {
    /// Plane z = p0 + p1 (x − cx) + p2 (y − cy) about `centre` = (cx, cy).
    plane: [f64; 3],
    centre: (f64, f64),
    /// Ring scatter (relief units); the caller's fallback when the ring has too few pixels.
    ring_sd: f32,
    /// Robust ring scatter (1.4826 × median absolute residual), the fallback likewise.
    ring_robust_sd: f32,
    /// Deepest core pixel below the plane (relief units).
    max_depth: f32,
}

impl RingFit {
    /// Fit on `z` (a window): `ring` and `core` are (x, y) pixels of the window.
    fn new(
        z: &ArrayView2<f32>,
        ring: &[(usize, usize)],
        core: &[(usize, usize)],
        centre: (f64, f64),
        fallback: f32,
    ) -> RingFit {
        let mut ata = [[0f64; 3]; 3];
        let mut atb = [0f64; 3];
        for &(x, y) in ring {
            let v = [1.0, x as f64 - centre.0, y as f64 - centre.1];
            for a in 0..3 {
                for b in 0..3 {
                    ata[a][b] += v[a] * v[b];
                }
                atb[a] += v[a] * z[[y, x]] as f64;
            }
        }
        let plane = crate::filters::solve3(ata, atb).unwrap_or([
            if ring.is_empty() {
                0.0
            } else {
                atb[0] / ring.len() as f64
            },
            0.0,
            0.0,
        ]);
        let mut fit = RingFit {
            plane,
            centre,
            ring_sd: fallback,
            ring_robust_sd: fallback,
            max_depth: f32::MIN,
        };
        if ring.len() > 3 {
            let ss: f32 = ring.iter().map(|&q| fit.depth(z, q).powi(2)).sum();
            fit.ring_sd = (ss / (ring.len() - 3) as f32).sqrt();
            let mut abs: Vec<f32> = ring.iter().map(|&q| fit.depth(z, q).abs()).collect();
            let mid = abs.len() / 2;
            let (_, m, _) = abs.select_nth_unstable_by(mid, f32::total_cmp);
            fit.ring_robust_sd = 1.4826 * *m;
        }
        fit.max_depth = core
            .iter()
            .map(|&q| fit.depth(z, q))
            .fold(f32::MIN, f32::max);
        fit
    }

    /// Depth below the plane at window pixel (x, y).
    fn depth(&self, z: &ArrayView2<f32>, (x, y): (usize, usize)) -> f32 {
        let (p, c) = (self.plane, self.centre);
        (p[0] + p[1] * (x as f64 - c.0) + p[2] * (y as f64 - c.1)) as f32 - z[[y, x]]
    }
}

/// Whether a core stands out of the noise at its own scale. Where its 10 % level lies below
/// `ring_k` ring noise σ (a shallow core, or a noisy photo; σ taken robustly here, so the
/// ridge and trench a scar's own shading leaves in part of its ring do not count as noise),
/// the core is judged again on the relief smoothed over a third of its radius, ring and core
/// refitted there: a scar's gentle profile hardly changes while pixel noise averages out, and
/// a cluster of noise, deepest only pixel by pixel, sinks into its ring. There it must still
/// lie 3 ring σ and `min_depth` deep, as at full resolution.
fn significant_at_own_scale(
    z: &ArrayView2<f32>,
    ring: &[(usize, usize)],
    core: &[(usize, usize)],
    fit: &RingFit,
    p: &SegmentParams,
) -> bool {
    if core.is_empty() {
        return false;
    }
    if p.ring_k * fit.ring_robust_sd <= 0.1 * fit.max_depth {
        return true;
    }
    let (lo, hi) = core.iter().fold(
        ((usize::MAX, usize::MAX), (0usize, 0usize)),
        |(lo, hi), &(x, y)| ((lo.0.min(x), lo.1.min(y)), (hi.0.max(x), hi.1.max(y))),
    );
    let radius = ((hi.0 - lo.0).max(hi.1 - lo.1) as f32 / 2.0).max(1.0);
    let sigma = radius / 3.0;
    if sigma < 1.0 {
        return true;
    }
    let smooth = gaussian(z, sigma);
    let s = RingFit::new(&smooth.view(), ring, core, fit.centre, fit.ring_sd);
    s.max_depth >= p.min_depth.max(3.0 * s.ring_sd)
}

/// A healthy-skin candidate around a core: window pixel (x, y) and its distance from the core.
type Candidate = (usize, usize, f32);

/// The ring: candidates farther than `d_in` from the core and at most `width` beyond that.
fn ring_at(cand: &[Candidate], d_in: f32, width: f32) -> Vec<(usize, usize)> {
    cand.iter()
        .filter(|c| c.2 > d_in && c.2 <= d_in + width)
        .map(|c| (c.0, c.1))
        .collect()
}

/// How far beyond its core (px) a scar's flank reaches, so that the ring its reference plane
/// is fitted on starts on healthy skin. A wide, gentle scar (rolling) has a core well inside
/// its 10 % outline, and a ring right around the core sits on the scar's own flank: the plane
/// lies low and the flank's curvature inflates the ring's scatter. The ring moves out in steps
/// of a quarter of the core's radius `half` (at most to `half`) while the band it leaves
/// behind is still flank: its median lies more than 10 % of the scar's depth below the plane
/// fitted to the skin beyond, and more than 5 % deeper than the next band out (the relief is
/// still rising). Medians, so that a neighbour or a ridge in part of a band does not count;
/// the rise, so that a scar sitting in a broad depression (a plateau, not a flank) keeps the
/// ring that hugs it. Both margins are at least two robust ring σ over √(band pixels).
/// Returns how far the ring moved and, if it moved, the fit on the ring it starts.
fn flank_end(
    z: &ArrayView2<f32>,
    cand: &[Candidate],
    core: &[(usize, usize)],
    centre: (f64, f64),
    half: f32,
    width: f32,
    fallback: f32,
) -> (f32, Option<RingFit>) {
    let step = (half / 4.0).max(1.0);
    let mut d_in = 0f32;
    let mut moved = None;
    while d_in + step <= half {
        let beyond = ring_at(cand, d_in + step, width);
        if beyond.len() < 8 {
            break;
        }
        let outer = RingFit::new(z, &beyond, core, centre, fallback);
        let band_median = |from: f32| -> Option<(f32, usize)> {
            let mut band: Vec<f32> = cand
                .iter()
                .filter(|c| c.2 > from && c.2 <= from + step)
                .map(|c| outer.depth(z, (c.0, c.1)))
                .collect();
            let mid = band.len() / 2;
            (!band.is_empty()).then(|| {
                (
                    *band.select_nth_unstable_by(mid, f32::total_cmp).1,
                    band.len(),
                )
            })
        };
        let (Some((a, na)), Some((b, nb))) = (band_median(d_in), band_median(d_in + step)) else {
            break;
        };
        let noise = 2.0 * outer.ring_robust_sd;
        let deep = a > (0.1 * outer.max_depth).max(noise / (na as f32).sqrt());
        let rising = a - b
            > (0.05 * outer.max_depth).max(noise * (1.0 / na as f32 + 1.0 / nb as f32).sqrt());
        if !(deep && rising) {
            break;
        }
        d_in += step;
        moved = Some(outer);
    }
    (d_in, moved)
}

/// A binary mask of the window `(x0, y0, x1, y1)`: 255 where `inside(x, y)` holds for a pixel
/// of the part `search` of it (image coordinates), 0 elsewhere.
fn window_mask(
    (x0, y0, x1, y1): (usize, usize, usize, usize),
    search: (usize, usize, usize, usize),
    inside: impl Fn(usize, usize) -> bool,
) -> GrayImage {
    let mut mask = GrayImage::new((x1 - x0 + 1) as u32, (y1 - y0 + 1) as u32);
    for y in search.1..=search.3 {
        for x in search.0..=search.2 {
            if inside(x, y) {
                mask.put_pixel((x - x0) as u32, (y - y0) as u32, Luma([255]));
            }
        }
    }
    mask
}

/// Cut the thin tails off footprint `id` (inside the window `(x0, y0, x1, y1)`): a binary
/// opening with a disc of a quarter of its equivalent radius, then only the largest part
/// kept. A scar is a compact depression; a part of its outline narrower than half its radius
/// is where the flood followed something else at the outline's level: the trench an
/// under-read wall leaves along the light, a furrow, or noise. An ellipse of axis ratio 1 : 2
/// is not touched (its tightest curvature radius is 0.35 of its equivalent radius). Returns
/// the new size.
fn open_footprint(
    labels: &mut [u32],
    id: u32,
    (x0, y0, x1, y1): (usize, usize, usize, usize),
    w: usize,
    size: usize,
) -> usize {
    let r_eq = (size as f32 / std::f32::consts::PI).sqrt();
    let k = (0.25 * r_eq).floor().min(255.0) as u8;
    if k < 1 {
        return size;
    }
    let mask = window_mask((x0, y0, x1, y1), (x0, y0, x1, y1), |x, y| {
        labels[y * w + x] == id
    });
    let opened = open(&mask, Norm::L2, k);
    let comps = connected_components(&opened, Connectivity::Four, Luma([0u8]));
    let mut counts = std::collections::BTreeMap::new();
    for p in comps.pixels() {
        if p[0] > 0 {
            *counts.entry(p[0]).or_insert(0usize) += 1;
        }
    }
    let Some((&best, _)) = counts.iter().max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0))) else {
        return size;
    };
    let mut kept = 0;
    for y in y0..=y1 {
        for x in x0..=x1 {
            let i = y * w + x;
            if labels[i] == id {
                if comps.get_pixel((x - x0) as u32, (y - y0) as u32)[0] == best {
                    kept += 1;
                } else {
                    labels[i] = 0;
                }
            }
        }
    }
    kept
}

/// Segment the relief into scar footprints.
pub fn segment(height: &ArrayView2<f32>, p: &SegmentParams) -> Regions {
    let (h, w) = height.dim();
    let ss = scale_space_snr(height, p);
    let (noise, fine_noise) = (ss.noise, ss.fine_noise);
    let snr = ss.dips;
    let (mut core, peak) = cores(&snr, p.snr_extent, p.snr_seed);
    let snr_view = snr.view();
    let snr_flat = standard_slice(&snr_view);
    let dip_pos = label_peaks(&core, &snr_flat, peak.len(), w);
    let bump_cores = independent_bumps(&ss.bumps, p, &dip_pos, &peak);
    drop(ss.bumps);
    let dip_cores: Vec<Core> = label_boxes(&core, peak.len(), w)
        .into_iter()
        .zip(&dip_pos)
        .zip(&peak)
        .map(|((b, &pos), &pk)| Core {
            pos,
            peak: pk,
            half: half_extent(b),
        })
        .collect();
    let null = ridge_null(&dip_cores, &bump_cores, p.light_azimuth_deg);
    let seed = mirror_threshold(&peak, &null, p.fdr, p.snr_seed);
    // Cores below the threshold are dropped. They are still features of their own (a weak
    // depression or texture, separated from every kept core by a ridge), so no footprint
    // floods through them: at low resolution and steep light a deep scar's 10 % level sits in
    // the noise and would otherwise spread over every weak dip around it.
    let mut dropped = vec![false; core.len()];
    for (l, d) in core.iter_mut().zip(dropped.iter_mut()) {
        if *l > 0 && peak[*l as usize - 1] < seed {
            *l = 0;
            *d = true;
        }
    }
    let n_cores = peak.len();
    let boxes = label_boxes(&core, n_cores, w);
    let mut order: Vec<usize> = (0..n_cores).filter(|&k| peak[k] >= seed).collect();
    order.sort_by(|&a, &b| peak[b].total_cmp(&peak[a]).then(a.cmp(&b)));

    // Footprints are traced on the relief with valleys narrower than a scar wall filled
    // (a grey-level closing): skin furrows and pores next to a scar are real depressions, but
    // they are not part of it, and without this a footprint leaks along every furrow it
    // touches.
    let closed = if p.furrow_px > 0 {
        closing(height, p.furrow_px)
    } else {
        height.to_owned()
    };
    let z: Vec<f32> = closed.iter().copied().collect();
    drop(closed);
    let mut labels = vec![0u32; w * h];
    let mut next = 0u32;
    let mut stack = Vec::new();
    for k in order {
        let lab = k as u32 + 1;
        let (x0, y0, x1, y1) = boxes[k];
        let half = (x1 - x0).max(y1 - y0) / 2 + 1;
        // The ring is `m` wide; it may start up to `half` (the core's radius) beyond the core,
        // where the scar's own flank ends (below).
        let m = half.max(4);
        let reach = m + half;
        let (wx0, wy0) = (x0.saturating_sub(reach), y0.saturating_sub(reach));
        let (wx1, wy1) = ((x1 + reach).min(w - 1), (y1 + reach).min(h - 1));
        let (cx, cy) = ((x0 + x1) as f64 / 2.0, (y0 + y1) as f64 / 2.0);
        let inner: Vec<(usize, usize)> = (y0..=y1)
            .flat_map(|y| (x0..=x1).map(move |x| (x, y)))
            .filter(|&(x, y)| core[y * w + x] == lab && labels[y * w + x] == 0)
            .map(|(x, y)| (x - wx0, y - wy0))
            .collect();
        // Distance of every window pixel from the core.
        let mask = window_mask((wx0, wy0, wx1, wy1), (x0, y0, x1, y1), |x, y| {
            core[y * w + x] == lab
        });
        let dist2 = euclidean_squared_distance_transform(&mask);
        let dist = |xw: usize, yw: usize| dist2.get_pixel(xw as u32, yw as u32)[0].sqrt() as f32;
        // Healthy-skin candidates (window coordinates, distance from the core): not in any
        // core, not claimed, no depression signal.
        let cand: Vec<Candidate> = (wy0..=wy1)
            .flat_map(|y| (wx0..=wx1).map(move |x| (x, y)))
            .filter(|&(x, y)| {
                let i = y * w + x;
                core[i] == 0 && labels[i] == 0 && snr_flat[i] <= p.snr_extent
            })
            .map(|(x, y)| (x - wx0, y - wy0, dist(x - wx0, y - wy0)))
            .collect();
        let win = z_win(&z, w, (wx0, wy0), (wx1, wy1));
        let window = win.view();
        let centre = (cx - wx0 as f64, cy - wy0 as f64);
        // Whether the core is a scar is judged on the ring right around it, as it is for a
        // bump (the mirror null): the footprint's reference below may move further out.
        let ring = ring_at(&cand, 0.0, m as f32);
        let fit = RingFit::new(&window, &ring, &inner, centre, fine_noise);
        if fit.max_depth < p.min_depth.max(3.0 * fit.ring_sd)
            || !significant_at_own_scale(&window, &ring, &inner, &fit, p)
        {
            continue;
        }
        let (d_in, moved) = flank_end(
            &window,
            &cand,
            &inner,
            centre,
            half as f32,
            m as f32,
            fine_noise,
        );
        let reach_to = d_in + m as f32;
        let fit = moved.unwrap_or(fit);
        let (ring_sd, max_d) = (fit.ring_sd, fit.max_depth);
        let depth_at = |i: usize| -> f32 { fit.depth(&window, (i % w - wx0, i / w - wy0)) };
        let thr = (0.1 * max_d).max(p.ring_k * ring_sd);
        next += 1;
        let id = next;
        stack.clear();
        for y in y0..=y1 {
            for x in x0..=x1 {
                let i = y * w + x;
                if core[i] == lab && labels[i] == 0 && depth_at(i) > thr {
                    labels[i] = id;
                    stack.push(i);
                }
            }
        }
        let mut size = stack.len();
        while let Some(i) = stack.pop() {
            for j in neighbours(i, w, h).into_iter().flatten() {
                let (y, x) = (j / w, j % w);
                if x < wx0 || x > wx1 || y < wy0 || y > wy1 || dist(x - wx0, y - wy0) > reach_to {
                    continue;
                }
                if labels[j] == 0
                    && ((core[j] == 0 && !dropped[j]) || core[j] == lab)
                    && depth_at(j) > thr
                {
                    labels[j] = id;
                    stack.push(j);
                    size += 1;
                }
            }
        }
        if size >= p.min_area_px {
            size = open_footprint(&mut labels, id, (wx0, wy0, wx1, wy1), w, size);
        }
        if size < p.min_area_px {
            for l in labels.iter_mut() {
                if *l == id {
                    *l = 0;
                }
            }
            next -= 1;
        }
    }
    // Renumber in raster order so labels do not depend on growth order.
    let mut map = vec![0u32; next as usize + 1];
    let mut count = 0u32;
    for l in labels.iter_mut() {
        if *l > 0 {
            if map[*l as usize] == 0 {
                count += 1;
                map[*l as usize] = count;
            }
            *l = map[*l as usize];
        }
    }
    let labels = Array2::from_shape_vec((h, w), labels).unwrap_or_else(|_| Array2::zeros((h, w)));
    Regions {
        snr,
        labels,
        count: count as usize,
        noise,
        threshold: seed * fine_noise,
        seed_snr: seed,
        held_back: peak
            .iter()
            .filter(|&&v| v >= p.snr_seed && v < seed)
            .count(),
        bumps: bump_cores.iter().map(|b| (b.pos, b.peak)).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> SegmentParams {
        SegmentParams {
            scales_px: vec![1.5, 2.25, 3.4, 5.0, 7.6],
            surround_ratio: 2.5,
            snr_seed: 5.0,
            fdr: 0.1,
            snr_extent: 2.5,
            min_depth: 0.05,
            min_area_px: 4,
            furrow_px: 1,
            ring_k: 2.0,
            light_azimuth_deg: None,
        }
    }

    /// Deterministic pseudo-noise so the SNR has a floor to work against.
    fn noise(y: usize, x: usize) -> f32 {
        let v = ((x * 7919 + y * 104_729) % 1000) as f32 / 1000.0 - 0.5;
        0.01 * v
    }

    /// Uniform pseudo-random noise in [−0.5, 0.5) per pixel (an integer hash, no pattern).
    fn hash_noise(y: usize, x: usize) -> f32 {
        let mut v = (y as u64) << 32 | x as u64;
        v = (v ^ (v >> 33)).wrapping_mul(0xff51_afd7_ed55_8ccd);
        v = (v ^ (v >> 33)).wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        v ^= v >> 33;
        (v >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    }

    #[test]
    fn a_shallow_broad_pit_stands_out_at_its_own_scale_and_a_noise_cluster_does_not() {
        let n = 61;
        let c = 30.0f64;
        let amp = 0.04f32; // noise σ = amp / √12 ≈ 0.0115
        let pit = |y: usize, x: usize| {
            let r2 = (x as f64 - c).powi(2) + (y as f64 - c).powi(2);
            -0.03 * (-r2 / (2.0 * 64.0)).exp() as f32
        };
        let r = |x: usize, y: usize| (x as f64 - c).hypot(y as f64 - c);
        let ring: Vec<(usize, usize)> = (0..n)
            .flat_map(|y| (0..n).map(move |x| (x, y)))
            .filter(|&(x, y)| (20.0..30.0).contains(&r(x, y)))
            .collect();
        let core: Vec<(usize, usize)> = (0..n)
            .flat_map(|y| (0..n).map(move |x| (x, y)))
            .filter(|&(x, y)| r(x, y) <= 10.0)
            .collect();
        // No depth floor: the noise alone must decide.
        let p = SegmentParams {
            min_depth: 0.0,
            ..params()
        };
        // Without the pit, three isolated pixels of the core lie 4 σ deep: deep pixel by pixel
        // (the full-resolution test passes), nothing at the core's scale.
        let spikes = [(26, 31), (33, 27), (30, 35)];
        for (with_pit, expect) in [(true, true), (false, false)] {
            let z = Array2::from_shape_fn((n, n), |(y, x)| {
                let v = amp * hash_noise(y, x);
                if with_pit {
                    v + pit(y, x)
                } else if spikes.contains(&(x, y)) {
                    -0.046
                } else {
                    v
                }
            });
            let fit = RingFit::new(&z.view(), &ring, &core, (c, c), 0.0);
            // At full resolution both pass the 3 σ test and neither reaches the 10 % rule's
            // margin over the noise: the decision is the smoothed one's.
            assert!(fit.max_depth >= 3.0 * fit.ring_sd, "{with_pit}: {fit:?}");
            assert!(
                p.ring_k * fit.ring_robust_sd > 0.1 * fit.max_depth,
                "{with_pit}: {fit:?}"
            );
            assert_eq!(
                significant_at_own_scale(&z.view(), &ring, &core, &fit, &p),
                expect,
                "pit {with_pit}: {fit:?}"
            );
        }
    }

    /// An icepick whose core sprawls along a trough (its box five times the pit) and whose
    /// ring holds the ridge its own shading leaves on the light side: the ridge is a tenth of
    /// the ring, yet it inflates the ring's RMS past the 10 % rule's margin, and smoothing over
    /// a third of the sprawl would flatten the pit. The robust scatter sees the ring's noise.
    #[test]
    fn a_ridge_in_part_of_the_ring_does_not_send_a_clear_pit_to_the_smoothed_test() {
        let n = 91;
        let c = 45.0f64;
        let r = |x: usize, y: usize| (x as f64 - c).hypot(y as f64 - c);
        let z = Array2::from_shape_fn((n, n), |(y, x)| {
            let rr = r(x, y);
            let mut v = 0.01 * hash_noise(y, x) - (-(rr / 5.0).powi(2)).exp() as f32 * 0.4;
            // Shallow trough the core sprawls along (a tenth of the pit's depth).
            if (40..50).contains(&y) && (5..=85).contains(&x) {
                v -= 0.04;
            }
            // The ridge on the light side, in part of the ring.
            if x > 75 && (30..60).contains(&y) {
                v += 0.12;
            }
            v
        });
        let core: Vec<(usize, usize)> = (0..n)
            .flat_map(|y| (0..n).map(move |x| (x, y)))
            .filter(|&(x, y)| r(x, y) <= 8.0 || ((40..50).contains(&y) && (5..=85).contains(&x)))
            .collect();
        let ring: Vec<(usize, usize)> = (0..n)
            .flat_map(|y| (0..n).map(move |x| (x, y)))
            .filter(|&(x, y)| (34.0..44.0).contains(&r(x, y)) && !(40..50).contains(&y))
            .collect();
        let p = params();
        let fit = RingFit::new(&z.view(), &ring, &core, (c, c), 0.0);
        // The ring's RMS sends the core to the smoothed test, which would drop it.
        assert!(p.ring_k * fit.ring_sd > 0.1 * fit.max_depth, "{fit:?}");
        let smooth = gaussian(&z.view(), 80.0 / 2.0 / 3.0);
        let s = RingFit::new(&smooth.view(), &ring, &core, (c, c), fit.ring_sd);
        assert!(
            s.max_depth < p.min_depth.max(3.0 * s.ring_sd),
            "smoothed {s:?}"
        );
        // Its robust scatter does not.
        assert!(
            p.ring_k * fit.ring_robust_sd <= 0.1 * fit.max_depth,
            "{fit:?}"
        );
        assert!(significant_at_own_scale(&z.view(), &ring, &core, &fit, &p));
    }

    #[test]
    fn a_coarse_scale_on_the_pyramid_reads_as_at_full_resolution() {
        // Pits of radius ~2σ on noisy skin: the response of a coarse scale computed on its
        // pyramid level must equal the full-resolution response with exact Gaussians at
        // the level's samples, at every pit and over the plane away from its borders (where
        // the two extend the plane differently).
        let (h, w) = (400, 520);
        let s = 11.0f32;
        let pits = [
            (180.0, 152.0, 0.3),
            (300.0, 200.0, 0.15),
            (400.0, 260.0, 0.5),
        ];
        let border = 100;
        let z = Array2::from_shape_fn((h, w), |(y, x)| {
            let mut v = 20.0 * noise(y, x) + 5.0 * noise(y / 3, x / 3);
            for (px, py, d) in pits {
                let r2 = (x as f32 - px).powi(2) + (y as f32 - py).powi(2);
                v -= d * (-r2 / (2.0 * (2.0 * s).powi(2))).exp();
            }
            v
        });
        let f = level_factor(s);
        assert_eq!(f, 4, "σ {s} runs two octaves down");
        let mut full = gaussian_separable(&z.view(), 2.5 * s);
        full -= &gaussian_separable(&z.view(), s);
        let l1 = next_level(&z.view(), 1);
        let l2 = next_level(&l1.view(), 2);
        let coarse = level_response(&l2.view(), f, s, 2.5);
        let (mut err, mut sig) = (0f64, 0f64);
        for ((y, x), c) in coarse.indexed_iter() {
            let (y, x) = (f * y, f * x);
            if y < border || x < border || y + border >= h || x + border >= w {
                continue;
            }
            let r = full[[y, x]];
            err += f64::from(c - r).powi(2);
            sig += f64::from(r).powi(2);
        }
        assert!(
            (err / sig).sqrt() < 0.02,
            "rms error {}",
            (err / sig).sqrt()
        );
        for (px, py, d) in pits {
            let (x, y) = (px as usize, py as usize);
            let (r, c) = (full[[y, x]], coarse[[y / f, x / f]]);
            // A Gaussian pit of σ 2s reads 0.41 of its depth in this difference of Gaussians.
            assert!(r > 0.35 * d, "pit at ({px}, {py}) responds {r}");
            assert!(
                (c / r - 1.0).abs() < 0.02,
                "pit at ({px}, {py}): {c} vs {r}"
            );
        }
        // Interpolated back, the pits keep their response.
        let mut up = Array2::<f32>::zeros((h, w));
        upsample_into(&coarse, f, 0.0, &mut up);
        for (px, py, _) in pits {
            let (x, y) = (px as usize + 2, py as usize + 1);
            assert!((up[[y, x]] / full[[y, x]] - 1.0).abs() < 0.03);
        }
    }

    /// The mirror null leaves out a bump next to a dip on the dip's light side (its ridge) and
    /// keeps bumps elsewhere: on the dip's shadow side, off the light's axis, or far away.
    #[test]
    fn a_pits_ridge_on_its_light_side_is_left_out_of_the_null() {
        let core = |x: usize, y: usize, peak: f32, half: f32| Core {
            pos: (x, y),
            peak,
            half,
        };
        let dips = [core(50, 50, 9.0, 4.0)];
        let bumps = [
            core(57, 45, 12.0, 3.0), // towards the light (azimuth 40°: up and right)
            core(43, 55, 11.0, 3.0), // on the shadow side
            core(50, 60, 10.0, 3.0), // beside it, across the light
            core(80, 20, 8.0, 3.0),  // on the light's axis but far away
        ];
        let mut null = ridge_null(&dips, &bumps, Some(40.0));
        null.sort_by(f32::total_cmp);
        assert_eq!(null, vec![8.0, 10.0, 11.0]);
        // Lit from the other side, the other bump is the ridge.
        let mut null = ridge_null(&dips, &bumps, Some(220.0));
        null.sort_by(f32::total_cmp);
        assert_eq!(null, vec![8.0, 10.0, 12.0]);
        assert_eq!(ridge_null(&dips, &bumps, None).len(), 4);
    }

    #[test]
    fn two_touching_pits_stay_two_scars_and_a_flat_floor_stays_one() {
        let (h, w) = (120, 200);
        let z = Array2::from_shape_fn((h, w), |(y, x)| {
            let r1 = ((x as f32 - 80.0).powi(2) + (y as f32 - 60.0).powi(2)).sqrt();
            let r2 = ((x as f32 - 104.0).powi(2) + (y as f32 - 60.0).powi(2)).sqrt();
            // Two Gaussian pits 24 px apart (σ 6 px) and a flat-floored box with ripples.
            let mut v = -0.4 * (-(r1 * r1) / 72.0).exp() - 0.3 * (-(r2 * r2) / 72.0).exp();
            if (20..40).contains(&y) && (150..180).contains(&x) {
                v -= 0.3 + 0.01 * ((x as f32) * 1.7).sin();
            }
            v + noise(y, x)
        });
        let r = segment(&z.view(), &params());
        assert_eq!(r.count, 3, "labels found: {}", r.count);
        assert_ne!(r.labels[[60, 80]], r.labels[[60, 104]]);
        assert_ne!(r.labels[[60, 80]], 0);
        assert_eq!(r.labels[[25, 155]], r.labels[[35, 175]]);
        assert_ne!(r.labels[[25, 155]], 0);
        assert_eq!(r.labels[[5, 5]], 0);
    }

    #[test]
    fn mirror_threshold_keeps_dips_above_the_texture_and_all_dips_on_clean_skin() {
        let dips = [20.0, 15.0, 6.0, 5.5];
        // Bumps as strong as the two weak dips: those dips are as likely texture as scars.
        assert_eq!(mirror_threshold(&dips, &[6.2, 5.1], 0.1, 5.0), 15.0);
        // No bumps at all: every dip above the floor is kept.
        assert_eq!(mirror_threshold(&dips, &[], 0.1, 5.0), 5.5);
        // Nothing but texture: nothing is kept.
        assert!(mirror_threshold(&[], &[7.0], 0.1, 5.0) > 7.0);
        assert!(mirror_threshold(&[6.0, 5.5], &[7.0, 6.5], 0.1, 5.0) > 7.0);
    }

    #[test]
    fn a_lone_strong_bump_does_not_set_the_threshold_but_a_heavy_bump_tail_does() {
        let dips = [30.0, 25.0, 20.0, 18.0, 14.0, 12.0, 11.0, 10.0, 9.0];
        // Texture bumps spread over 5…6.9: none above 9, so 9 dips above it are enough.
        let texture: Vec<f32> = (0..20).map(|i| 5.0 + 0.1 * i as f32).collect();
        assert_eq!(mirror_threshold(&dips, &texture, 0.1, 5.0), 9.0);
        // One feature bump at 15 on top: counted, it alone would lift the threshold to 18;
        // the texture's tail expects 0.65 bumps above 10 and 1.3 above 9.
        let mut with_feature = texture.clone();
        with_feature.push(15.0);
        assert_eq!(mirror_threshold(&dips, &with_feature, 0.1, 5.0), 10.0);
        assert_eq!(mirror_threshold(&dips, &[15.0, 6.0, 5.0], 0.1, 5.0), 18.0);
        // Texture whose bumps reach far (5…15): dips no stronger than it are not kept.
        let rough: Vec<f32> = (0..20).map(|i| 5.0 + 0.5 * i as f32).collect();
        assert!(mirror_threshold(&dips, &rough, 0.1, 5.0) > 14.0);
    }

    #[test]
    fn a_bump_is_not_a_scar() {
        let z = Array2::from_shape_fn((80, 80), |(y, x)| {
            let r2 = (x as f32 - 40.0).powi(2) + (y as f32 - 40.0).powi(2);
            0.5 * (-(r2) / 50.0).exp() + noise(y, x)
        });
        assert_eq!(segment(&z.view(), &params()).count, 0);
    }

    #[test]
    fn a_footprint_does_not_flood_through_a_weak_dip_the_threshold_dropped() {
        // A deep cone with a shallow pit touching its rim, and eight bumps as strong as that
        // pit elsewhere (the texture itself, not a lone feature): the mirror null drops the
        // pit, and the cone's footprint must stop at it although the pit is deeper than 10 %
        // of the cone.
        let gauss = |x: f32, y: f32, cx: f32, cy: f32, a: f32| {
            a * (-((x - cx).powi(2) + (y - cy).powi(2)) / 18.0).exp()
        };
        let z = Array2::from_shape_fn((120, 160), |(y, x)| {
            let (xf, yf) = (x as f32, y as f32);
            let r = ((xf - 50.0).powi(2) + (yf - 60.0).powi(2)).sqrt();
            let mut v = -2.0 * (1.0 - r / 20.0).max(0.0) - gauss(xf, yf, 72.0, 60.0, 0.3);
            for (cx, cy) in [
                (120.0, 20.0),
                (130.0, 60.0),
                (120.0, 100.0),
                (20.0, 15.0),
                (20.0, 105.0),
                (150.0, 105.0),
                (150.0, 35.0),
                (95.0, 15.0),
            ] {
                v += gauss(xf, yf, cx, cy, 0.25);
            }
            v + noise(y, x)
        });
        let r = segment(&z.view(), &params());
        let cone = r.labels[[60, 50]];
        assert_ne!(cone, 0);
        assert!(
            r.seed_snr > r.snr[[60, 72]],
            "the pit must be below the threshold"
        );
        assert_ne!(
            r.labels[[60, 73]],
            cone,
            "the footprint flooded the dropped pit"
        );
    }

    /// Relief noise for the tests: white noise of amplitude `amp` smoothed over 1.5 px, as
    /// skin texture and integrated pixel noise are correlated over a few pixels.
    fn texture(n: usize, amp: f32) -> Array2<f32> {
        let white = Array2::from_shape_fn((n, n), |(y, x)| amp * hash_noise(y, x));
        gaussian(&white.view(), 1.5)
    }

    #[test]
    fn a_rolling_scar_is_outlined_to_its_ten_percent_level() {
        // Gaussian bowl 1 deep whose 10 % level is at r = 24 px, in texture. Its core (where
        // the signal clears the flood level) ends well inside that level, on its own flank:
        // with the ring right around the core the outline takes 0.62 of the area (checked),
        // with the ring moved off the flank 0.73 (the 2 σ noise rule takes most of the rest;
        // the ragged edge it leaves is opened: 0.83 without the opening).
        let (n, c, r10) = (161, 80.0f32, 24.0f32);
        let tex = texture(n, 1.5);
        let z = Array2::from_shape_fn((n, n), |(y, x)| {
            let r2 = (x as f32 - c).powi(2) + (y as f32 - c).powi(2);
            -(-r2 / (r10 * r10) * std::f32::consts::LN_10).exp() + tex[[y, x]]
        });
        let r = segment(&z.view(), &params());
        assert_eq!(r.count, 1, "{:?}", r.bumps);
        let area = r.labels.iter().filter(|&&l| l == 1).count() as f32;
        let expect = std::f32::consts::PI * r10 * r10;
        assert!(
            area / expect > 0.68 && area / expect < 1.15,
            "area {area} vs {expect}"
        );
    }

    #[test]
    fn the_ring_moves_off_a_flank_but_not_off_a_hollow_around_the_pit() {
        // Core = the disc r ≤ `rc`; candidates = every other pixel, at r − rc from the core.
        let (n, c) = (81, 40.0f32);
        let rad = |x: usize, y: usize| ((x as f32 - c).powi(2) + (y as f32 - c).powi(2)).sqrt();
        // How far the ring moves out around a core of radius `rc` (ring as wide as the core).
        let ring_start = |z: &Array2<f32>, rc: f32| {
            let pixels = (0..n).flat_map(|y| (0..n).map(move |x| (x, y)));
            let core: Vec<(usize, usize)> =
                pixels.clone().filter(|&(x, y)| rad(x, y) <= rc).collect();
            let cand: Vec<Candidate> = pixels
                .filter(|&(x, y)| rad(x, y) > rc)
                .map(|(x, y)| (x, y, rad(x, y) - rc))
                .collect();
            flank_end(&z.view(), &cand, &core, (c as f64, c as f64), rc, rc, 0.0).0
        };
        let tex = texture(n, 0.05);
        // A Gaussian bowl (10 % level at r = 24) whose core ends at r = 14: 46 % of its depth.
        let bowl = Array2::from_shape_fn((n, n), |(y, x)| {
            -(-(rad(x, y) / 24.0).powi(2) * std::f32::consts::LN_10).exp() + tex[[y, x]]
        });
        let d = ring_start(&bowl, 14.0);
        assert!(d >= 7.0, "bowl: the ring still starts {d} px from the core");
        // A cone (10 % level at r = 9, core up to there) at the bottom of a hollow 0.4 deep
        // whose wall is at r = 16: the ring beyond straddles the wall, so the band around the
        // pit lies deep below its plane, but no deeper than the band beyond it: a floor.
        let pit = Array2::from_shape_fn((n, n), |(y, x)| {
            let r = rad(x, y);
            -(1.0 - r / 10.0).max(0.0) - 0.4 / (1.0 + ((r - 16.0) / 0.7).exp()) + tex[[y, x]]
        });
        let d = ring_start(&pit, 9.0);
        assert_eq!(d, 0.0, "pit in a hollow: the ring moved out {d} px");
    }

    #[test]
    fn a_footprint_loses_its_thin_tail_and_an_ellipse_keeps_its_shape() {
        // Disc of radius 18 px with a tail 5 px wide and 30 px long (the trench an under-read
        // wall leaves along the light), and an ellipse of axes 26 × 13 px, in one label map.
        let (w, h) = (200, 100);
        let mut labels = vec![0u32; w * h];
        for y in 0..h {
            for x in 0..w {
                let (fx, fy) = (x as f32, y as f32);
                let disc = (fx - 50.0).hypot(fy - 50.0) <= 18.0;
                let tail = (48..53).contains(&y) && (50..98).contains(&x);
                let ellipse = ((fx - 150.0) / 26.0).powi(2) + ((fy - 50.0) / 13.0).powi(2) <= 1.0;
                labels[y * w + x] = if disc || tail {
                    1
                } else if ellipse {
                    2
                } else {
                    0
                };
            }
        }
        let count = |labels: &[u32], id: u32| labels.iter().filter(|&&l| l == id).count();
        let (disc_tail, ellipse) = (count(&labels, 1), count(&labels, 2));
        let kept = open_footprint(&mut labels, 1, (0, 0, 110, 99), w, disc_tail);
        assert_eq!(kept, count(&labels, 1));
        let disc = std::f32::consts::PI * 18.0 * 18.0;
        assert!(
            (kept as f32 - disc).abs() / disc < 0.05,
            "{disc_tail} → {kept} pixels, disc {disc}"
        );
        assert!((72..98).all(|x| labels[50 * w + x] == 0), "the tail kept");
        let kept = open_footprint(&mut labels, 2, (110, 0, 199, 99), w, ellipse);
        assert_eq!(kept, ellipse, "the ellipse was trimmed");
    }

    #[test]
    fn footprint_of_a_cone_reaches_ten_percent_of_its_depth() {
        // Cone of radius 20 px: depth > 10 % of max within r < 18 px → area π·18².
        let z = Array2::from_shape_fn((100, 100), |(y, x)| {
            let r = ((x as f32 - 50.0).powi(2) + (y as f32 - 50.0).powi(2)).sqrt();
            -(1.0 - r / 20.0).max(0.0) + noise(y, x)
        });
        let r = segment(&z.view(), &params());
        assert_eq!(r.count, 1);
        let area = r.labels.iter().filter(|&&l| l == 1).count() as f32;
        let expect = std::f32::consts::PI * 18.0 * 18.0;
        assert!(
            (area - expect).abs() / expect < 0.1,
            "area {area} vs {expect}"
        );
    }
}
