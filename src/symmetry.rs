//! Symmetry: shading + the first relief + scar footprints → a relief whose scar walls are
//! read in mirrored pairs.
//!
//! One Lambertian brightness fixes a wall's slope only within two limits: the wall turned from
//! the light is black once it is steeper than the light's elevation e (attached shadow: a
//! lower bound), and the wall turned towards it brightens only until its normal points at the
//! light (slope 90° − e) and dims beyond, so each brightness there has a gentle and a steep
//! reading. A depressed scar is close to round: at c + r its surface rises outward with the
//! slope it has at c − r. Each pixel's gradient is therefore taken along the outward radius,
//! and its size is the one that best explains both its own brightness and that of its mirror
//! pixel (least squares in brightness; a pixel darker than the ambient light could make a
//! shadow only says it is at least that steep). Under light above 45° a wall in attached
//! shadow is steeper than e > 90° − e, so its lit mirror is on the steep branch; under lower
//! light the shadowed side at least takes what its lit mirror says instead of its lower bound;
//! and the slope across the light no longer comes from the under-read relief itself (which let
//! a too-shallow pit explain its own shading). The centre is searched along the light around
//! the pit's centre on the first relief (the depth-weighted centroid of the footprint's deeper
//! half, so a footprint that took in a shallow neighbour is still paired about its pit) for
//! the pairing that explains the shading best. Only the slopes
//! within each footprint (grown by a quarter of its radius) and their mirrors change (not
//! where a mirror falls in another scar, `paired_set`); the
//! rest of the slope field is the relief stage's own last pass ([`ShadingReading`], kept so
//! that nothing is read twice), and the field is integrated once more as in
//! [`crate::relief`].

use image::{GrayImage, Luma};
use imageproc::distance_transform::euclidean_squared_distance_transform;
use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

use crate::filters::{bilinear, robust_stats};
use crate::relief::{integrate_slope, ReliefParams, ShadingCosines, ShadingReading};

/// A scar whose pairs miss their brightness by more than this many times the skin's
/// brightness scatter (RMS over its footprint) keeps its own readings — it is not symmetric
/// enough — when they also miss a large part of its contrast ([`MAX_UNEXPLAINED`]).
/// Symmetric phantom scars miss by 0.3–1.9 times the scatter (12-photo grid, 515 scars).
const MAX_MISFIT: f64 = 3.0;

/// … and leave more than this fraction of its shading contrast (RMS of the brightness's
/// departure from flat skin over the footprint) unexplained. Measured in the unit tests: an
/// exact cone misses by 0.04–0.05 of its contrast (pixels straddling rim and tip), a pit
/// whose deepest point sits at 0.6 of its radius from the centre by 0.26; the bound is
/// about their geometric mean.
const MAX_UNEXPLAINED: f64 = 0.12;

/// Largest slope magnitude read (as in the relief stage).
const MAX_SLOPE: f64 = 4.0;

/// Predicted cos(normal, light) of a pixel whose gradient has magnitude `s` and component
/// `s·c` along the light (c: cosine between the gradient and the light's in-plane direction).
fn predicted(se: f64, ce: f64, s: f64, c: f64) -> f64 {
    ((se - ce * c * s) / (1.0 + s * s).sqrt()).max(0.0)
}

/// Gradient magnitudes s (gradient along a direction whose cosine with the light's in-plane
/// direction is `c`) that give cos(normal, light) = m: up to two; in attached shadow (m = 0)
/// the gentlest that is dark.
fn roots(se: f64, ce: f64, m: f64, c: f64, out: &mut Vec<f64>) {
    let mut push = |s: f64| {
        if s.is_finite() && se - ce * c * s >= -1e-12 && s.abs() <= MAX_SLOPE {
            out.push(s);
        }
    };
    if m <= 0.0 {
        if c.abs() > 1e-6 {
            push(se / (ce * c));
        }
        return;
    }
    let a = ce * ce * c * c - m * m;
    let b = se * ce * c;
    let cc = se * se - m * m;
    if a.abs() < 1e-12 {
        if b.abs() > 1e-12 {
            push(cc / (2.0 * b));
        }
        return;
    }
    let disc = b * b - a * cc;
    if disc < 0.0 {
        // Brighter than any gradient along this direction can make it: the brightest one.
        push(b / a);
        return;
    }
    let r = disc.sqrt();
    push((b - r) / a);
    push((b + r) / a);
}

/// Gradient magnitude at a pixel of brightness `m_p` whose mirror pixel has brightness `m_q`,
/// the gradient at p having cosine `c` with the light's in-plane direction (at the mirror:
/// −c), and the misfit of that magnitude. A brightness below `dark` says only that the pixel
/// is at least that dark (the ambient light is not known better than that).
fn pair_slope(se: f64, m_p: f64, m_q: f64, c: f64, dark: f64, buf: &mut Vec<f64>) -> (f64, f64) {
    let ce = (1.0 - se * se).max(0.0).sqrt();
    buf.clear();
    roots(se, ce, m_p.max(dark), c, buf);
    let np = buf.len();
    roots(se, ce, m_q.max(dark), -c, buf);
    let n = buf.len();
    for i in 0..np {
        for j in np..n {
            buf.push(0.5 * (buf[i] + buf[j]));
        }
    }
    buf.push(0.0);
    let misfit = |pred: f64, m: f64| {
        if m < dark {
            (pred - dark).max(0.0)
        } else {
            pred - m
        }
    };
    let cost = |s: f64| {
        let a = misfit(predicted(se, ce, s, c), m_p);
        let b = misfit(predicted(se, ce, s, -c), m_q);
        a * a + b * b
    };
    let mut best = (0f64, f64::INFINITY);
    for &s in buf.iter() {
        let k = cost(s);
        if k < best.1 - 1e-12 || ((k - best.1).abs() <= 1e-12 && s.abs() < best.0.abs()) {
            best = (s, k);
        }
    }
    best
}

/// Bilinear sample of a plane at (x, y), clamped to its edges.
fn sample(a: &ArrayView2<f32>, x: f64, y: f64) -> f64 {
    let (h, w) = a.dim();
    let (x, y) = (x.clamp(0.0, (w - 1) as f64), y.clamp(0.0, (h - 1) as f64));
    bilinear(a, x, y).unwrap_or(0.0)
}

/// One scar's pixels (its footprint grown by a margin), pit centre and equivalent radius.
pub(crate) struct Footprint {
    pub(crate) pixels: Vec<(usize, usize)>,
    pub(crate) centre: (f64, f64),
    pub(crate) radius: f64,
}

/// Footprints of labels 1..=`count`, each grown by a quarter of its equivalent radius (at
/// least two pixels: a cone's wall reaches past its 10 % outline) over healthy skin.
pub(crate) fn footprints(
    labels: &ArrayView2<u32>,
    height: &ArrayView2<f32>,
    count: usize,
) -> Vec<Footprint> {
    let (h, w) = labels.dim();
    // Per label: Σx, Σy, n, x0, x1, y0, y1.
    let mut acc = vec![(0f64, 0f64, 0usize, usize::MAX, 0usize, usize::MAX, 0usize); count];
    for ((y, x), &l) in labels.indexed_iter() {
        if l == 0 || l as usize > count {
            continue;
        }
        let a = &mut acc[l as usize - 1];
        a.0 += x as f64;
        a.1 += y as f64;
        a.2 += 1;
        a.3 = a.3.min(x);
        a.4 = a.4.max(x);
        a.5 = a.5.min(y);
        a.6 = a.6.max(y);
    }
    acc.par_iter()
        .enumerate()
        .map(|(i, a)| {
            let n = a.2 as f64;
            let radius = (n / std::f64::consts::PI).sqrt();
            if a.2 == 0 {
                return Footprint {
                    pixels: Vec::new(),
                    centre: (0.0, 0.0),
                    radius,
                };
            }
            let g = (0.25 * radius).max(2.0);
            let gi = g.ceil() as usize;
            let (x0, x1) = (a.3.saturating_sub(gi), (a.4 + gi).min(w - 1));
            let (y0, y1) = (a.5.saturating_sub(gi), (a.6 + gi).min(h - 1));
            let lab = (i + 1) as u32;
            let mut mask = GrayImage::new((x1 - x0 + 1) as u32, (y1 - y0 + 1) as u32);
            let mut own = Vec::with_capacity(a.2);
            for y in a.5..=a.6 {
                for x in a.3..=a.4 {
                    if labels[[y, x]] == lab {
                        mask.put_pixel((x - x0) as u32, (y - y0) as u32, Luma([255]));
                        own.push((x, y, height[[y, x]]));
                    }
                }
            }
            let dist2 = euclidean_squared_distance_transform(&mask);
            let centre = pit_centre(&own).unwrap_or((a.0 / n, a.1 / n));
            let mut pixels = Vec::new();
            for y in y0..=y1 {
                for x in x0..=x1 {
                    let l = labels[[y, x]];
                    let d2 = dist2.get_pixel((x - x0) as u32, (y - y0) as u32)[0];
                    if (l == lab || l == 0) && d2 <= g * g {
                        pixels.push((x, y));
                    }
                }
            }
            Footprint {
                pixels,
                centre,
                radius,
            }
        })
        .collect()
}

/// The depth-weighted centroid of the part of a label deeper than its median height (each
/// pixel (x, y, height) weighted by how far it lies below that median): the pit's centre even
/// where the label took in a shallow tail. None when no pixel lies below the median.
fn pit_centre(own: &[(usize, usize, f32)]) -> Option<(f64, f64)> {
    let mut zs: Vec<f32> = own.iter().map(|p| p.2).collect();
    zs.sort_by(f32::total_cmp);
    let zmed = f64::from(*zs.get(zs.len() / 2)?);
    let (mut sw, mut swx, mut swy) = (0f64, 0f64, 0f64);
    for &(x, y, z) in own {
        let wt = (zmed - f64::from(z)).max(0.0);
        sw += wt;
        swx += wt * x as f64;
        swy += wt * y as f64;
    }
    (sw > 0.0).then(|| (swx / sw, swy / sw))
}

/// The scars a relief is paired over: the segmentation's labels and the relief they were
/// found on (whose depths place each pit's centre).
#[derive(Debug, Clone, Copy)]
pub struct ScarLabels<'a> {
    /// Label per pixel, 0 = healthy skin, 1..=`count` = one scar region each.
    pub labels: ArrayView2<'a, u32>,
    /// Number of labels.
    pub count: usize,
    /// The relief the labels were found on (same grid), up positive.
    pub height: ArrayView2<'a, f32>,
}

/// The pixels whose slopes a scar's pairing replaces: its (grown) footprint `pixels` made
/// symmetric about `centre` — a pixel whose mirror kept its own reading would leave the pit
/// open — except where the mirror lies in another scar (label neither 0 nor `lab`): that
/// pixel and its mirror are left alone, since the other scar's walls are not this one's and
/// its own pairing must not be overwritten.
fn paired_set(
    pixels: &[(usize, usize)],
    centre: (f64, f64),
    labels: &ArrayView2<u32>,
    lab: u32,
) -> std::collections::BTreeSet<(usize, usize)> {
    let mut set = std::collections::BTreeSet::new();
    for &px in pixels {
        match mirror(centre, px, labels) {
            Some((_, lm)) if lm != 0 && lm != lab => continue,
            Some((m, _)) => {
                set.insert(m);
            }
            None => {}
        }
        set.insert(px);
    }
    set
}

/// The pixel mirroring `(x, y)` through `centre` and its label; None outside the grid.
fn mirror(
    centre: (f64, f64),
    (x, y): (usize, usize),
    labels: &ArrayView2<u32>,
) -> Option<((usize, usize), u32)> {
    let (h, w) = labels.dim();
    let (mx, my) = (
        (2.0 * centre.0 - x as f64).round(),
        (2.0 * centre.1 - y as f64).round(),
    );
    if mx >= 0.0 && my >= 0.0 && (mx as usize) < w && (my as usize) < h {
        let (mx, my) = (mx as usize, my as usize);
        Some(((mx, my), labels[[my, mx]]))
    } else {
        None
    }
}

/// Whether the mirror of `px` through `centre` lies in a scar other than `lab`.
fn mirror_in_other_scar(
    centre: (f64, f64),
    px: (usize, usize),
    labels: &ArrayView2<u32>,
    lab: u32,
) -> bool {
    mirror(centre, px, labels).is_some_and(|(_, lm)| lm != 0 && lm != lab)
}

/// The relief of [`crate::relief::relief_on_surface_reading`] (its `reading` taken over,
/// `unit_per_px` as given to it) with the slopes inside each scar footprint of `scars` read
/// in mirrored pairs (see the module notes), integrated again.
pub fn symmetric_relief(
    reading: ShadingReading,
    scars: &ScarLabels,
    azimuth_deg: f64,
    unit_per_px: f64,
    p: &ReliefParams,
) -> Array2<f32> {
    paired_relief(reading, scars, azimuth_deg, unit_per_px, p, MAX_MISFIT).0
}

/// [`symmetric_relief`], also handing back the reading's light cosines (its slope plane is
/// consumed) for the stages that read the same shading again.
pub fn symmetric_relief_keeping_cosines(
    reading: ShadingReading,
    scars: &ScarLabels,
    azimuth_deg: f64,
    unit_per_px: f64,
    p: &ReliefParams,
) -> (Array2<f32>, ShadingCosines) {
    paired_relief(reading, scars, azimuth_deg, unit_per_px, p, MAX_MISFIT)
}

/// [`symmetric_relief`] with the misfit limit of [`MAX_MISFIT`] as a parameter.
fn paired_relief(
    reading: ShadingReading,
    scars: &ScarLabels,
    azimuth_deg: f64,
    unit_per_px: f64,
    p: &ReliefParams,
    max_misfit: f64,
) -> (Array2<f32>, ShadingCosines) {
    let az = azimuth_deg.to_radians();
    let alpha = p.ambient.max(0.0);
    let ShadingReading {
        mut slope,
        median,
        cos_nl: cos_owned,
        local_se: se_owned,
    } = reading;
    let unit = unit_per_px as f32;
    // u towards the light in image axes (y down).
    let (ux, uy) = (az.cos(), -az.sin());
    let fps = footprints(&scars.labels, &scars.height, scars.count);
    // Up to twice the assumed ambient is plausible: darker than that is only a lower bound.
    let dark = alpha;
    let cos_nl = cos_owned.view();
    let local_se = se_owned.view();
    // Brightness scatter of the photo's (mostly healthy) skin: a scar whose walls, paired, miss
    // their brightness by more than MAX_MISFIT times this is not symmetric enough to pair.
    let noise = f64::from(robust_stats(&cos_nl).1).max(1e-6);
    let labels = &scars.labels;
    let updates: Vec<Vec<((usize, usize), f32)>> = fps
        .par_iter()
        .enumerate()
        .map(|(i, fp)| {
            let lab = (i + 1) as u32;
            if fp.pixels.len() < 4 {
                return Vec::new();
            }
            let mut buf = Vec::with_capacity(12);
            let solve = |c: (f64, f64), (x, y): (usize, usize), buf: &mut Vec<f64>| {
                let (dx, dy) = (x as f64 - c.0, y as f64 - c.1);
                let r = dx.hypot(dy);
                if r < 0.5 {
                    return (0.0, 0.0);
                }
                // Outward radial direction's cosine with u: a pit's gradient points outward.
                let cb = (dx * ux + dy * uy) / r;
                let (mx, my) = (c.0 - dx, c.1 - dy);
                let m_p = f64::from(cos_nl[[y, x]]);
                let m_q = sample(&cos_nl, mx, my);
                let se = 0.5 * (f64::from(local_se[[y, x]]) + sample(&local_se, mx, my));
                let (s, k) = pair_slope(se, m_p, m_q, cb, dark, buf);
                (s * cb, k)
            };
            // Centre: along the light around the pit's centre, the pairing that fits best
            // (mean misfit over the pairs `paired_set` would keep for that centre).
            let reach = 0.3 * fp.radius;
            let steps = (reach / 0.5).ceil().clamp(1.0, 12.0) as i32;
            let mut best = (fp.centre, f64::INFINITY);
            for k in -steps..=steps {
                let d = reach * k as f64 / steps as f64;
                let c = (fp.centre.0 + d * ux, fp.centre.1 + d * uy);
                let (mut cost, mut n) = (0f64, 0usize);
                for &px in &fp.pixels {
                    if mirror_in_other_scar(c, px, labels, lab) {
                        continue;
                    }
                    cost += solve(c, px, &mut buf).1;
                    n += 1;
                }
                let mean = if n > 0 {
                    cost / n as f64
                } else {
                    f64::INFINITY
                };
                if mean < best.1 {
                    best = (c, mean);
                }
            }
            // Misfit per pixel (each pair counted from both ends) against the skin's scatter
            // and against the scar's own shading contrast.
            let n = fp.pixels.len() as f64;
            let rms = (best.1 / 2.0).sqrt();
            let contrast = (fp
                .pixels
                .iter()
                .map(|&(x, y)| f64::from(cos_nl[[y, x]] - local_se[[y, x]]).powi(2))
                .sum::<f64>()
                / n)
                .sqrt();
            if rms > max_misfit * noise && rms > MAX_UNEXPLAINED * contrast {
                return Vec::new();
            }
            paired_set(&fp.pixels, best.0, labels, lab)
                .into_iter()
                .map(|px| (px, solve(best.0, px, &mut buf).0 as f32))
                .collect()
        })
        .collect();
    // The paired slopes take the same bias removal as the rest of the field.
    for u in updates {
        for ((x, y), t) in u {
            slope[[y, x]] = t - median;
        }
    }
    let gain = (1.0 + p.epsilon.sqrt()) as f32;
    let mut z = integrate_slope(
        &slope.view(),
        az,
        p.epsilon,
        p.cutoff_mm / unit_per_px,
        p.edge_taper_mm / unit_per_px,
    );
    z.par_mapv_inplace(|v| v * gain * unit);
    drop(slope);
    (
        z,
        ShadingCosines {
            cos_nl: cos_owned,
            local_se: se_owned,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relief::{relief_on_surface_reading, slope_along_light};

    #[test]
    fn a_pair_reads_the_steep_branch_when_its_mirror_is_in_shadow() {
        // Light at 55°: a wall of 60° turned from it is black; turned towards it it reads
        // 60° or (2·35° − 60° =) 10° on its own.
        let e = 55f64.to_radians();
        let (se, ce) = (e.sin(), e.cos());
        let s = 60f64.to_radians().tan();
        // p on the wall turned towards the light (gradient against u).
        let m_p = predicted(se, ce, s, -1.0);
        let m_q = predicted(se, ce, s, 1.0);
        assert_eq!(m_q, 0.0);
        let mut buf = Vec::new();
        let (got, _) = pair_slope(se, m_p, m_q, -1.0, 0.1, &mut buf);
        assert!((got - s).abs() < 1e-6, "{got} vs {s}");
        let alone = slope_along_light(se, ce, m_p, 0.0);
        assert!(alone > -0.5, "alone {alone}");
    }

    /// Depth of a pit of radius `r` px centred at `c`: the median of the ring 2r–3r minus the
    /// lowest point within r.
    fn pit_depth(z: &Array2<f32>, c: (f64, f64), r: f64) -> f64 {
        let mut ring = Vec::new();
        let mut deepest = f64::INFINITY;
        for ((y, x), v) in z.indexed_iter() {
            let d = (x as f64 - c.0).hypot(y as f64 - c.1);
            if d < r {
                deepest = deepest.min(f64::from(*v));
            } else if d > 2.0 * r && d < 3.0 * r {
                ring.push(f64::from(*v));
            }
        }
        ring.sort_by(f64::total_cmp);
        ring[ring.len() / 2] - deepest
    }

    /// Depth (mm) of an exact Lambertian cone, 1 mm wide with 62° walls (0.94 mm deep) under
    /// light at 55°, read by the relief stage alone and with the walls paired. With `tail`,
    /// its label also takes in a band of flat skin 2.5 radii long beside it (a neighbouring
    /// mark merged by segmentation), which moves the label's centroid 1.3 radii off the pit.
    fn cone_depths(azimuth_deg: f64, tail: bool) -> (f64, f64, f64) {
        let (n, unit, r_px, wall) = (160usize, 0.05f64, 10.0f64, 62f64.to_radians());
        let (e, a, alpha) = (55f64.to_radians(), azimuth_deg.to_radians(), 0.1);
        let (se, ce) = (e.sin(), e.cos());
        let (ux, uy) = (a.cos(), -a.sin());
        let (cx, cy) = (80.3, 79.6);
        let depth = r_px * unit * wall.tan();
        let shading = Array2::from_shape_fn((n, n), |(y, x)| {
            let (dx, dy) = (x as f64 - cx, y as f64 - cy);
            let r = dx.hypot(dy);
            let zu = if r < r_px && r > 0.0 {
                wall.tan() * (dx * ux + dy * uy) / r
            } else {
                0.0
            };
            let g2 = if r < r_px { wall.tan().powi(2) } else { 0.0 };
            let m = ((se - ce * zu) / (1.0 + g2).sqrt()).max(0.0);
            (-((m + alpha) / (se + alpha)).ln()) as f32
        });
        let labels = Array2::from_shape_fn((n, n), |(y, x)| {
            let (dx, dy) = (x as f64 - cx, y as f64 - cy);
            let band = tail && dx > 0.0 && dx < 3.5 * r_px && (dy - 1.5 * r_px).abs() < 0.4 * r_px;
            u32::from(dx.hypot(dy) < 0.9 * r_px || band)
        });
        let p = ReliefParams::default();
        let (plain, reading) =
            relief_on_surface_reading(&shading.view(), None, azimuth_deg, 55.0, unit, &p);
        let plain = plain.height;
        let scars = ScarLabels {
            labels: labels.view(),
            count: 1,
            height: plain.view(),
        };
        let paired = symmetric_relief(reading, &scars, azimuth_deg, unit, &p);
        let read = |z: &Array2<f32>| pit_depth(z, (cx, cy), r_px);
        (read(&plain), read(&paired), depth)
    }

    /// Under light above 45° the wall turned from the light is in attached shadow, and the lit
    /// wall, steeper than the brightest normal, reads its gentle root on its own: the relief
    /// stage alone finds under half the cone's depth. Paired, the lit wall must be steep
    /// enough to shadow its mirror, which leaves only the steep root.
    #[test]
    fn a_steep_cone_under_high_light_reads_its_depth_when_its_walls_are_paired() {
        for az in [0.0, 30.0, 135.0, 250.0] {
            let (plain, paired, truth) = cone_depths(az, false);
            assert!(
                plain < 0.5 * truth,
                "az {az}: plain {plain:.3} of {truth:.3}"
            );
            assert!(
                (paired - truth).abs() < 0.2 * truth,
                "az {az}: paired {paired:.3} of {truth:.3} (plain {plain:.3})"
            );
        }
    }

    /// A scar's pairing leaves alone any pixel whose mirror lies in another scar (in case 8
    /// of the phantom grid a large scar's mirrored set reached over a small icepick 2 mm away
    /// and replaced its walls: 0.438 mm read 0.076, 0.429 with this rule), and the set is
    /// otherwise symmetric about the centre.
    #[test]
    fn pairs_do_not_reach_into_another_scar() {
        // Scar 1: a row of pixels 10..=14 on row 5, centre (12, 5); scar 2 occupies (9, 5).
        let mut labels = Array2::<u32>::zeros((11, 20));
        for x in 11..=13 {
            labels[[5, x]] = 1;
        }
        labels[[5, 9]] = 2;
        let pixels: Vec<(usize, usize)> = (10..=15).map(|x| (x, 5)).collect();
        let set = paired_set(&pixels, (12.0, 5.0), &labels.view(), 1);
        // 15 mirrors onto 9 (scar 2): neither is paired; 10..=14 mirror onto 14..=10.
        let want: std::collections::BTreeSet<(usize, usize)> = (10..=14).map(|x| (x, 5)).collect();
        assert_eq!(set, want);
        // Its own label and healthy skin are paired as before.
        let set = paired_set(&[(15, 5)], (12.0, 5.0), &labels.view(), 2);
        assert!(set.contains(&(9, 5)) && set.contains(&(15, 5)));
    }

    /// A label that took in flat skin beside the pit is paired about the pit's centre (the
    /// depth-weighted centre of the label's deeper half), not the label's centroid.
    #[test]
    fn a_pit_with_a_merged_tail_is_paired_about_its_own_centre() {
        for az in [0.0, 135.0] {
            let (plain, paired, truth) = cone_depths(az, true);
            assert!(
                (paired - truth).abs() < 0.2 * truth,
                "az {az}: paired {paired:.3} of {truth:.3} (plain {plain:.3})"
            );
        }
    }

    /// A pit whose deepest point sits near one end (a wall of 60° on one side, 23° on the
    /// other) is not centrally symmetric: pairing its walls would average them. Its pairs miss
    /// the shading by far more than the skin's scatter, so it keeps its own reading.
    #[test]
    fn an_asymmetric_pit_keeps_its_own_reading() {
        let (n, unit, e, alpha) = (160usize, 0.05f64, 40f64.to_radians(), 0.1);
        let (se, ce) = (e.sin(), e.cos());
        let (cx, cy, r) = (80.0f64, 80.0f64, 12.0f64);
        // Depth along x: apex at x = cx + 0.6 r; walls straight to the rim circle of radius r.
        let (ax, d) = (cx + 0.6 * r, 0.4 * r * 60f64.to_radians().tan() * unit);
        let z = Array2::from_shape_fn((n, n), |(y, x)| {
            let (dx, dy) = (x as f64 - cx, y as f64 - cy);
            if dx.hypot(dy) >= r {
                return 0.0f32;
            }
            // Distance to the rim along the ray from the apex, as a fraction.
            let (px, py) = (x as f64 - ax, y as f64 - cy);
            let rho = px.hypot(py);
            if rho < 1e-9 {
                return -d as f32;
            }
            let ux = px / rho;
            let b = (ax - cx) * ux;
            let t = -b + (b * b - ((ax - cx).powi(2) - r * r)).sqrt();
            (-d * (1.0 - rho / t).max(0.0)) as f32
        });
        let (gx, gy) = crate::filters::gradient(&z.view());
        // Light from +x at 40°, with texture-like noise so the skin has a brightness scatter.
        let shading = Array2::from_shape_fn((n, n), |(y, x)| {
            let (zx, zy) = (f64::from(gx[[y, x]]) / unit, f64::from(gy[[y, x]]) / unit);
            let m = ((se - ce * zx) / (1.0 + zx * zx + zy * zy).sqrt()).max(0.0);
            let tex = 0.01 * (((x * 7919 + y * 104_729) % 97) as f64 / 48.0 - 1.0);
            (-((m + alpha) / (se + alpha)).ln() + tex) as f32
        });
        let labels = Array2::from_shape_fn((n, n), |(y, x)| {
            u32::from((x as f64 - cx).hypot(y as f64 - cy) < 0.9 * r)
        });
        let p = ReliefParams::default();
        let (plain, reading) =
            relief_on_surface_reading(&shading.view(), None, 0.0, 40.0, unit, &p);
        let scars = ScarLabels {
            labels: labels.view(),
            count: 1,
            height: plain.height.view(),
        };
        let unguarded = paired_relief(reading.clone(), &scars, 0.0, unit, &p, f64::INFINITY).0;
        let guarded = symmetric_relief(reading, &scars, 0.0, unit, &p);
        let depth = |z: &Array2<f32>| pit_depth(z, (cx, cy), r);
        let (dp, du, dg) = (depth(&plain.height), depth(&unguarded), depth(&guarded));
        // Measured: truth 0.416, alone 0.296, paired regardless 0.690, guarded 0.296 mm.
        assert!((dg - dp).abs() < 1e-6, "guarded {dg} vs alone {dp}");
        assert!(
            (du - d).abs() > 1.5 * (dp - d).abs(),
            "paired regardless {du}, alone {dp}, truth {d}"
        );
    }
}
