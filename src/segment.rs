//! Segmentation: relief map → labelled depressed regions, one label per scar.
//!
//! The relief is first referred to the local healthy-skin surface (a wide low-pass of the
//! relief that ignores the depressions it finds, so cheek curvature is not depth). Depth is
//! then smoothed just enough to quiet pores, and flooded from its deepest points downwards
//! (a union-find watershed): two basins merge only when the ridge between them is shallow
//! compared with the smaller one, so neighbouring scars stay apart while a noisy floor stays
//! one scar. A basin counts as a scar when its deepest point clears both a noise threshold
//! (from the photo's own healthy skin) and a physical floor, and it then grows down to 10 %
//! of its own depth (the footprint rule of DOMAIN.md §4), never into a neighbour.

use std::cmp::Ordering;

use ndarray::{Array2, ArrayView2, Zip};

use crate::filters::{gaussian, robust_stats};

/// Parameters of segmentation (scales in processing pixels, depths in relief units).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SegmentParams {
    /// σ of the healthy-skin reference surface, px.
    pub background_sigma_px: f32,
    /// σ of the smoothing applied to depth before flooding, px.
    pub smooth_sigma_px: f32,
    /// Depth a scar must reach regardless of noise (relief units).
    pub min_depth: f32,
    /// Scars must reach this many noise σ.
    pub noise_k: f32,
    /// Smallest footprint kept, px.
    pub min_area_px: usize,
}

/// Labelled scars.
#[derive(Debug, Clone)]
pub struct Regions {
    /// Depth below the healthy-skin reference (relief units, positive down).
    pub depth: Array2<f32>,
    /// 0 = healthy skin, 1..=count = scar.
    pub labels: Array2<u32>,
    /// Number of scars.
    pub count: usize,
    /// Robust σ of depth over the photo (relief units).
    pub noise: f32,
    /// Depth threshold that a scar's deepest point had to clear.
    pub threshold: f32,
}

/// Depth below the healthy-skin reference surface.
pub fn depth_map(height: &ArrayView2<f32>, sigma_px: f32) -> Array2<f32> {
    // First pass: reference from everything.
    let bg0 = gaussian(height, sigma_px);
    let d0 = Zip::from(&bg0).and(height).map_collect(|b, z| b - z);
    let (_, sd) = robust_stats(&d0.view());
    // Second pass: normalised convolution that leaves out clear depressions and bumps, so
    // neither drags the reference towards itself.
    let cut = 2.5 * sd;
    let wts = d0.mapv(|d| if d.abs() > cut { 0.0f32 } else { 1.0 });
    let zw = Zip::from(height).and(&wts).map_collect(|z, w| z * w);
    let num = gaussian(&zw.view(), sigma_px);
    let den = gaussian(&wts.view(), sigma_px);
    Zip::from(&num)
        .and(&den)
        .and(height)
        .and(&bg0)
        .map_collect(|n, d, z, b| {
            let reference = if *d > 0.05 { n / d } else { *b };
            reference - z
        })
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

/// Segment the relief into scars.
pub fn segment(height: &ArrayView2<f32>, p: &SegmentParams) -> Regions {
    let depth = depth_map(height, p.background_sigma_px);
    let ds = gaussian(&depth.view(), p.smooth_sigma_px);
    let (h, w) = ds.dim();
    let (_, noise) = robust_stats(&ds.view());
    let t_hi = (p.noise_k * noise).max(p.min_depth);
    let t_lo = (0.5 * t_hi).max(1.5 * noise);

    // Pixels deep enough to belong to some basin, deepest first (ties by index: deterministic).
    let flat = ds
        .as_slice()
        .map(|s| s.to_vec())
        .unwrap_or_else(|| ds.iter().copied().collect());
    let mut order: Vec<u32> = (0..flat.len() as u32)
        .filter(|&i| flat[i as usize] > 0.1 * t_hi.min(t_lo))
        .collect();
    order.sort_unstable_by(|&a, &b| {
        flat[b as usize]
            .partial_cmp(&flat[a as usize])
            .unwrap_or(Ordering::Equal)
            .then(a.cmp(&b))
    });

    let mut lab = vec![u32::MAX; flat.len()];
    let mut basins: Vec<Basin> = Vec::new();
    let nbrs = |i: usize| -> [Option<usize>; 4] {
        let (y, x) = (i / w, i % w);
        [
            (x > 0).then(|| i - 1),
            (x + 1 < w).then(|| i + 1),
            (y > 0).then(|| i - w),
            (y + 1 < h).then(|| i + w),
        ]
    };
    // Phase 1: flood above t_lo, merging basins separated by shallow ridges.
    for &iu in &order {
        let i = iu as usize;
        let v = flat[i];
        if v <= t_lo {
            break;
        }
        let mut roots: Vec<u32> = Vec::with_capacity(4);
        for j in nbrs(i).into_iter().flatten() {
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
        // Deepest basin first; merge the others into it when their dynamic is small.
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
            let dynamic = pr - v;
            if pr < t_hi || dynamic < (0.3 * pr).max(2.0 * noise) {
                basins[r as usize].parent = main;
            }
        }
        lab[i] = main;
    }
    // Phase 2: each scar grows down to 10 % of its own depth, first come first served.
    for &iu in &order {
        let i = iu as usize;
        if lab[i] != u32::MAX {
            continue;
        }
        let v = flat[i];
        let mut best: Option<u32> = None;
        for j in nbrs(i).into_iter().flatten() {
            if lab[j] != u32::MAX {
                let r = find(&mut basins, lab[j]);
                if basins[r as usize].peak >= t_hi && v > 0.1 * basins[r as usize].peak {
                    best = match best {
                        Some(b) if basins[b as usize].peak >= basins[r as usize].peak => Some(b),
                        _ => Some(r),
                    };
                }
            }
        }
        if let Some(b) = best {
            lab[i] = b;
        }
    }
    // Compact labels for basins deep enough and large enough, in raster order of first pixel.
    let mut sizes = vec![0usize; basins.len()];
    let mut root_of = vec![0u32; flat.len()];
    for i in 0..flat.len() {
        if lab[i] != u32::MAX {
            let r = find(&mut basins, lab[i]);
            root_of[i] = r;
            sizes[r as usize] += 1;
        }
    }
    let mut new_id = vec![0u32; basins.len()];
    let mut count = 0u32;
    let mut labels = Array2::<u32>::zeros((h, w));
    for (i, l) in labels.iter_mut().enumerate() {
        if lab[i] == u32::MAX {
            continue;
        }
        let r = root_of[i] as usize;
        if basins[r].peak < t_hi || sizes[r] < p.min_area_px {
            continue;
        }
        if new_id[r] == 0 {
            count += 1;
            new_id[r] = count;
        }
        *l = new_id[r];
    }
    Regions {
        depth,
        labels,
        count: count as usize,
        noise,
        threshold: t_hi,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> SegmentParams {
        SegmentParams {
            background_sigma_px: 40.0,
            smooth_sigma_px: 1.0,
            min_depth: 0.05,
            noise_k: 4.0,
            min_area_px: 4,
        }
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
            v
        });
        let r = segment(&z.view(), &params());
        assert_eq!(r.count, 3, "labels found: {}", r.count);
        assert_ne!(r.labels[[60, 80]], r.labels[[60, 104]]);
        assert_eq!(r.labels[[25, 155]], r.labels[[35, 175]]);
        assert_eq!(r.labels[[5, 5]], 0);
    }

    #[test]
    fn a_bump_is_not_a_scar() {
        let z = Array2::from_shape_fn((80, 80), |(y, x)| {
            let r2 = (x as f32 - 40.0).powi(2) + (y as f32 - 40.0).powi(2);
            0.5 * (-(r2) / 50.0).exp()
        });
        assert_eq!(segment(&z.view(), &params()).count, 0);
    }
}
