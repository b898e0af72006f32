//! Measurement: labelled regions + relief + chromophores → one [`Scar`] record per scar.
//!
//! Each scar's depth is taken against a plane fitted by least squares to the healthy skin
//! around it (so curvature and residual tilt are not depth); its footprint is where it lies
//! more than 10 % of its maximum depth below that plane (DOMAIN.md §4). Area, volume, centroid
//! and bounding box follow from the footprint; the type comes from width and profile shape
//! (floor flatness, depth-to-width ratio) with a confidence; redness and pigment are the
//! erythema and melanin indices of the footprint minus those of the surrounding skin.

use ndarray::ArrayView2;
use serde::{Deserialize, Serialize};

use crate::filters::solve3;
pub use crate::phantom::ScarType;
use crate::segment::Regions;

/// One measured scar (the `scars[]` element of the analyze document).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Scar {
    /// 1-based id, in raster order of the scar's centroid within this photo.
    pub id: u32,
    /// Footprint centroid, camera pixels [x, y].
    pub centroid_px: [f64; 2],
    /// Bounding box of the footprint [x0, y0, x1, y1], camera pixels, inclusive.
    pub bbox_px: [u32; 4],
    /// Footprint area in camera pixels.
    pub area_px: f64,
    /// Footprint area, mm² (null without calibration).
    pub area_mm2: Option<f64>,
    /// Diameter of the disc of the same area, mm.
    pub equivalent_diameter_mm: Option<f64>,
    /// Maximum depth below the local healthy surface, mm.
    pub depth_mm: Option<f64>,
    /// Mean depth over the footprint, mm.
    pub mean_depth_mm: Option<f64>,
    /// Depth integrated over the footprint, mm³.
    pub volume_mm3: Option<f64>,
    /// One-σ uncertainty of `depth_mm`, mm.
    pub depth_uncertainty_mm: Option<f64>,
    /// Maximum depth in camera-pixel units (always present; the only depth without calibration).
    pub depth_px: f64,
    /// How the depth was obtained.
    pub depth_basis: String,
    /// Clinical type.
    #[serde(rename = "type")]
    pub kind: ScarType,
    /// Confidence of the type in [0, 1].
    pub type_confidence: f64,
    /// Erythema index of the footprint minus that of the surrounding skin (×100 OD).
    pub redness: f64,
    /// Melanin index of the footprint minus that of the surrounding skin (×100 OD).
    pub pigment: f64,
    /// Fraction of the footprint deeper than 70 % of the maximum (≈0.6 boxcar, ≈0.1 cone).
    pub floor_flatness: f64,
    /// Area of the 10 % outline (DOMAIN.md §4) of the pit model fitted to the scar's shading,
    /// camera pixels²; null where no model was fitted or accepted (`depth_basis` says when
    /// one was). Less exact than the footprint as an area, but read from the whole shape: its
    /// ratio between two sessions is `compare`'s main reading of a small scar's area change.
    #[serde(default)]
    pub pit_model_area_px: Option<f64>,
}

/// Scale and provenance needed to express measurements.
#[derive(Debug, Clone)]
pub struct MeasureContext {
    /// Camera pixels per processing pixel (integer downsampling factor).
    pub factor: usize,
    /// Size of one processing pixel in the relief's units (mm, assumed when uncalibrated).
    pub proc_unit_per_px: f64,
    /// Whether the scale is a real calibration (mm fields are filled only then).
    pub calibrated: bool,
    /// Relative depth uncertainty of the physical model (ambient, scattering, light).
    pub model_rel_uncertainty: f64,
    /// Description of how depth was obtained.
    pub depth_basis: String,
    /// Per label (index label − 1): the scar's accepted pit model ([`crate::pitfit`]);
    /// empty or None where no fit was accepted.
    pub pits: Vec<Option<PitReading>>,
}

/// What the measurement takes of an accepted pit model ([`crate::pitfit::PitFit`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PitReading {
    /// Depth below the surrounding skin, relief units.
    pub depth: f64,
    /// Area of the model's 10 % outline, processing pixels².
    pub area_px: f64,
}

struct Acc {
    pix: Vec<(u32, u32)>,
    x0: u32,
    y0: u32,
    x1: u32,
    y1: u32,
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Type from width (mm), floor flatness and depth-to-width ratio, with a confidence.
pub fn classify(diameter_mm: f64, flatness: f64, depth_mm: f64) -> (ScarType, f64) {
    let narrow = sigmoid((1.9 - diameter_mm) / 0.2);
    let wide = sigmoid((diameter_mm - 4.2) / 0.35);
    let mid = (1.0 - narrow - wide).max(0.0);
    let flat = sigmoid((flatness - 0.3) / 0.06);
    let steep = sigmoid((depth_mm / diameter_mm.max(0.1) - 0.15) / 0.05);
    let s_ice = narrow * (1.0 - flat) * (0.5 + 0.5 * steep);
    let s_box = flat * (1.0 - wide) + mid * (1.0 - flat) * 0.6 + narrow * flat * 0.3;
    let s_roll = wide * (1.0 - flat) + wide * flat * 0.4 + mid * (1.0 - flat) * 0.3 * (1.0 - steep);
    let scores = [
        (ScarType::Icepick, s_ice),
        (ScarType::Boxcar, s_box),
        (ScarType::Rolling, s_roll),
    ];
    let total: f64 = scores.iter().map(|s| s.1).sum::<f64>().max(1e-9);
    let best = scores.iter().copied().fold(
        (ScarType::Boxcar, -1.0),
        |a, b| if b.1 > a.1 { b } else { a },
    );
    (best.0, best.1 / total)
}

/// Measure every labelled region.
pub fn measure(
    regions: &Regions,
    height: &ArrayView2<f32>,
    melanin: &ArrayView2<f32>,
    erythema: &ArrayView2<f32>,
    ctx: &MeasureContext,
) -> Vec<Scar> {
    let (h, w) = regions.labels.dim();
    let mut accs: Vec<Acc> = (0..regions.count)
        .map(|_| Acc {
            pix: Vec::new(),
            x0: u32::MAX,
            y0: u32::MAX,
            x1: 0,
            y1: 0,
        })
        .collect();
    for ((y, x), &l) in regions.labels.indexed_iter() {
        if l == 0 {
            continue;
        }
        let a = &mut accs[l as usize - 1];
        let (x, y) = (x as u32, y as u32);
        a.pix.push((x, y));
        a.x0 = a.x0.min(x);
        a.y0 = a.y0.min(y);
        a.x1 = a.x1.max(x);
        a.y1 = a.y1.max(y);
    }
    let f = ctx.factor as f64;
    let unit = ctx.proc_unit_per_px;
    let mut scars: Vec<Scar> = accs
        .iter()
        .enumerate()
        .filter(|(_, a)| !a.pix.is_empty())
        .filter_map(|(li, a)| {
            // Ring of healthy skin around the scar: the box grown by half its size, unlabelled.
            let m = ((a.x1 - a.x0).max(a.y1 - a.y0) / 2).max(3);
            let rx0 = a.x0.saturating_sub(m) as usize;
            let ry0 = a.y0.saturating_sub(m) as usize;
            let rx1 = ((a.x1 + m) as usize).min(w - 1);
            let ry1 = ((a.y1 + m) as usize).min(h - 1);
            let (cx, cy) = ((a.x0 + a.x1) as f64 / 2.0, (a.y0 + a.y1) as f64 / 2.0);
            let mut ata = [[0f64; 3]; 3];
            let mut atb = [0f64; 3];
            let (mut mel_r, mut ery_r, mut n_r) = (0f64, 0f64, 0f64);
            for y in ry0..=ry1 {
                for x in rx0..=rx1 {
                    if regions.labels[[y, x]] != 0 {
                        continue;
                    }
                    let v = [1.0, x as f64 - cx, y as f64 - cy];
                    let z = height[[y, x]] as f64;
                    for i in 0..3 {
                        for j in 0..3 {
                            ata[i][j] += v[i] * v[j];
                        }
                        atb[i] += v[i] * z;
                    }
                    mel_r += melanin[[y, x]] as f64;
                    ery_r += erythema[[y, x]] as f64;
                    n_r += 1.0;
                }
            }
            let plane =
                solve3(ata, atb).unwrap_or([if n_r > 0.0 { atb[0] / n_r } else { 0.0 }, 0.0, 0.0]);
            // Residual scatter of the ring around its plane: the depth noise of this scar.
            let mut ring_var = 0f64;
            for y in ry0..=ry1 {
                for x in rx0..=rx1 {
                    if regions.labels[[y, x]] == 0 {
                        let p = plane[0] + plane[1] * (x as f64 - cx) + plane[2] * (y as f64 - cy);
                        ring_var += (height[[y, x]] as f64 - p).powi(2);
                    }
                }
            }
            let ring_sd = if n_r > 3.0 {
                (ring_var / (n_r - 3.0)).sqrt()
            } else {
                0.0
            };
            let depths: Vec<f64> = a
                .pix
                .iter()
                .map(|&(x, y)| {
                    let p = plane[0] + plane[1] * (x as f64 - cx) + plane[2] * (y as f64 - cy);
                    p - height[[y as usize, x as usize]] as f64
                })
                .collect();
            let max = depths.iter().cloned().fold(f64::MIN, f64::max);
            if max <= 0.0 {
                return None;
            }
            let thr = 0.1 * max;
            let (mut n, mut sx, mut sy, mut sd, mut n70) = (0f64, 0f64, 0f64, 0f64, 0f64);
            let (mut mel, mut ery) = (0f64, 0f64);
            let (mut bx0, mut by0, mut bx1, mut by1) = (u32::MAX, u32::MAX, 0u32, 0u32);
            for (&(x, y), &d) in a.pix.iter().zip(&depths) {
                if d <= thr {
                    continue;
                }
                n += 1.0;
                sx += x as f64;
                sy += y as f64;
                sd += d;
                if d > 0.7 * max {
                    n70 += 1.0;
                }
                mel += melanin[[y as usize, x as usize]] as f64;
                ery += erythema[[y as usize, x as usize]] as f64;
                bx0 = bx0.min(x);
                by0 = by0.min(y);
                bx1 = bx1.max(x);
                by1 = by1.max(y);
            }
            if n < 1.0 {
                return None;
            }
            let area_units = n * unit * unit;
            let diam = 2.0 * (area_units / std::f64::consts::PI).sqrt();
            let flatness = n70 / n;
            let (kind, conf) = classify(diam, flatness, max);
            // A fitted pit model's depth replaces the relief's deepest point; mean depth and
            // volume scale with it (the walls' under-reading lowers the whole pit).
            let (max, scale, pit_area) = match ctx.pits.get(li).copied().flatten() {
                Some(pit) if pit.depth > 0.0 => (pit.depth, pit.depth / max, Some(pit.area_px)),
                _ => (max, 1.0, None),
            };
            let fitted = pit_area.is_some();
            let sd = sd * scale;
            let depth_unc = (ring_sd.powi(2) + (ctx.model_rel_uncertainty * max).powi(2)).sqrt();
            let mm = |v: f64| ctx.calibrated.then_some(v);
            let (mel_ring, ery_ring) = if n_r > 0.0 {
                (mel_r / n_r, ery_r / n_r)
            } else {
                (0.0, 0.0)
            };
            // Processing pixel (i) covers camera pixels i·f … i·f + f − 1, centre i·f + (f−1)/2.
            let to_cam = |v: f64| v * f + (f - 1.0) / 2.0;
            Some(Scar {
                id: 0,
                centroid_px: [to_cam(sx / n), to_cam(sy / n)],
                bbox_px: [
                    bx0 * ctx.factor as u32,
                    by0 * ctx.factor as u32,
                    (bx1 + 1) * ctx.factor as u32 - 1,
                    (by1 + 1) * ctx.factor as u32 - 1,
                ],
                area_px: n * f * f,
                area_mm2: mm(area_units),
                equivalent_diameter_mm: mm(diam),
                depth_mm: mm(max),
                mean_depth_mm: mm(sd / n),
                volume_mm3: mm(sd * unit * unit),
                depth_uncertainty_mm: mm(depth_unc),
                depth_px: max / unit * f,
                depth_basis: if fitted {
                    format!(
                        "{}; depth of a pit model fitted to the scar's shading",
                        ctx.depth_basis
                    )
                } else {
                    ctx.depth_basis.clone()
                },
                kind,
                type_confidence: conf,
                redness: 100.0 * (ery / n - ery_ring),
                pigment: 100.0 * (mel / n - mel_ring),
                floor_flatness: flatness,
                pit_model_area_px: pit_area.map(|a| a * f * f),
            })
        })
        .collect();
    scars.sort_by(|a, b| {
        (a.centroid_px[1], a.centroid_px[0])
            .partial_cmp(&(b.centroid_px[1], b.centroid_px[0]))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    for (i, s) in scars.iter_mut().enumerate() {
        s.id = i as u32 + 1;
    }
    scars
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_follow_width_and_profile() {
        assert_eq!(classify(1.0, 0.1, 0.6).0, ScarType::Icepick);
        assert_eq!(classify(2.8, 0.55, 0.3).0, ScarType::Boxcar);
        assert_eq!(classify(6.5, 0.15, 0.25).0, ScarType::Rolling);
        // A flat-floored 1.7 mm scar is a small boxcar, not an icepick.
        assert_eq!(classify(1.7, 0.6, 0.3).0, ScarType::Boxcar);
    }

    #[test]
    fn plane_solver_recovers_a_tilted_plane() {
        let mut ata = [[0f64; 3]; 3];
        let mut atb = [0f64; 3];
        for y in -3..=3 {
            for x in -3..=3 {
                let v = [1.0, x as f64, y as f64];
                let z = 2.0 + 0.5 * x as f64 - 0.25 * y as f64;
                for i in 0..3 {
                    for j in 0..3 {
                        ata[i][j] += v[i] * v[j];
                    }
                    atb[i] += v[i] * z;
                }
            }
        }
        let p = solve3(ata, atb).unwrap();
        assert!(
            (p[0] - 2.0).abs() < 1e-9 && (p[1] - 0.5).abs() < 1e-9 && (p[2] + 0.25).abs() < 1e-9
        );
    }
}
