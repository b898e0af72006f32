//! Normalisation: linear-light RGB planes at camera resolution → optical-density planes at the
//! processing resolution, with the smooth illumination field (flash fall-off, vignetting),
//! exposure and white balance removed, so that healthy skin reads 0 in every channel.
//!
//! In optical density (−ln of linear light) every multiplicative effect becomes additive: a
//! smooth lighting field, an exposure change and a white-balance gain are all removed by
//! subtracting a per-channel low-pass estimate taken at a scale well above the largest scar.
//! A channel clipped by over-exposure is first rebuilt from the other two where they are not
//! (see `restore_saturated`).

use ndarray::{Array2, Zip};

use crate::filters::{dilate, robust_median, wide_gaussian};
use crate::load::{PlaneSource, Reduced};

/// Optical densities relative to the photo's own healthy skin.
#[derive(Debug, Clone)]
pub struct Normalized {
    /// High-passed optical density per channel (R, G, B); healthy skin ≈ 0, darker > 0.
    pub od: [Array2<f32>; 3],
    /// Median optical density of the skin per channel (before high-pass), for colour reports.
    pub skin_od: [f32; 3],
    /// The smooth field removed from each channel (optical density, low-passed at the
    /// normalisation scale): lighting fall-off and the shading of the skin's own large-scale
    /// tilt (a cheek facing away from the light is darker), which the relief stage needs.
    pub flat_od: [Array2<f32>; 3],
    /// Fraction of pixels clipped to black or white in any channel.
    pub clipped_fraction: f32,
    /// Integer downsampling factor from camera pixels to processing pixels.
    pub factor: usize,
}

/// Darkest linear value kept: below it the sensor carries no information.
pub const FLOOR: f32 = 1.0 / 4096.0;

/// Linear value at or above which a channel counts as saturated.
pub const CEIL: f32 = 0.999;

/// Largest deviation from healthy skin kept, optical density (a factor of e² ≈ 7.4).
const MAX_OD_DEVIATION: f32 = 2.0;

/// Downsample by `factor`, take optical density, and remove each channel's smooth field with a
/// Gaussian of `flat_sigma_px` processing pixels. The source is either full planes or a
/// decoded photo reduced in one pass (see [`PlaneSource`]); the result is the same.
pub fn normalize<P: PlaneSource + ?Sized>(
    planes: &P,
    factor: usize,
    flat_sigma_px: f32,
) -> Normalized {
    normalize_reduced(planes.reduce(factor, FLOOR, CEIL), factor, flat_sigma_px)
}

/// [`normalize`] of planes already reduced by `factor` with [`FLOOR`] and [`CEIL`] as the
/// clipping limits: lets the analysis reduce a photo once for both the input checks and this
/// stage.
pub fn normalize_reduced(reduced: Reduced, factor: usize, flat_sigma_px: f32) -> Normalized {
    let Reduced {
        planes: small,
        clipped,
        total,
    } = reduced;
    let total = total.max(1);
    let mut skin_od = [0f32; 3];
    let small = restore_saturated(small, flat_sigma_px);
    let (od, fields): (Vec<Array2<f32>>, Vec<Array2<f32>>) = small
        .into_iter()
        .enumerate()
        .map(|(c, small)| {
            let mut d = small;
            let med = robust_median(&d.view());
            skin_od[c] = med;
            let field = wide_gaussian(&d.view(), flat_sigma_px);
            Zip::from(&mut d).and(&field).par_for_each(|v, f| *v -= f);
            // The low-pass mixes scars into the reference; the median re-centres healthy skin.
            let m = robust_median(&d.view());
            // A pixel cannot be more than a few OD off healthy skin; beyond that it is a
            // clipped or quantised-to-zero value, not information.
            d.par_mapv_inplace(|v| (v - m).clamp(-MAX_OD_DEVIATION, MAX_OD_DEVIATION));
            (d, field)
        })
        .unzip();
    let three = |v: Vec<Array2<f32>>| -> [Array2<f32>; 3] {
        let mut it = v.into_iter();
        match (it.next(), it.next(), it.next()) {
            (Some(r), Some(g), Some(b)) => [r, g, b],
            _ => unreachable!("three channels were mapped"),
        }
    };
    Normalized {
        od: three(od),
        skin_od,
        flat_od: three(fields),
        clipped_fraction: clipped as f32 / total as f32,
        factor,
    }
}

/// Block mean at or above which a channel of a processing pixel is taken as saturated. Below
/// [`CEIL`] so that a block most of whose pixels clipped counts too (8-bit sRGB 252 and up,
/// where JPEG ringing leaves a clipped patch); the blocks at a patch's rim, less clipped, are
/// taken in by growing the mask by one pixel.
const SATURATED: f32 = 0.97;

/// Share of the normalisation scale over which the colour of the skin under a saturated
/// channel is borrowed from unsaturated skin around it (0.5 mm at the analysis' 8 mm): finer
/// than pigment marks change, coarser than pixel noise.
const CHROMA_SCALE: f32 = 1.0 / 16.0;

/// Linear planes → optical-density planes, with every saturated channel rebuilt from the
/// unsaturated ones where the pixel has them.
///
/// A flash photo over-exposed by a stop clips the red channel of light skin over whole lit
/// cheeks. A clipped channel holds only a bound (the light was at least that bright), and
/// read as a value it flattens the shading in that channel: the walls facing the light lose
/// their brightening, the pigment fit is skewed, and scars near the patch read shallower or
/// vanish. Under the dichromatic reflection model (Shafer 1985) every pixel of one surface is
/// a mix of two colours, its body colour scaled by the shading and the light's colour scaled
/// by the sheen, so any channel is a fixed linear combination of the other two wherever the
/// body colour holds: `c = α·k₁ + β·k₂`. The combination is fitted by least squares on the
/// unsaturated pixels nearby, with Gaussian weights at the finest of the octaves from
/// [`CHROMA_SCALE`] of the normalisation scale up to the whole of it that has enough support
/// ([`MIN_SUPPORT`]); a small ridge ([`RIDGE`]) pulls it towards the plain ratio model
/// (κ, 0), which keeps it defined where the two channels are nearly proportional. A pixel with
/// only one unsaturated channel takes the local ratio to it. A rebuilt value is never below
/// the one read (the channel was at least that bright); where all three channels saturated, or
/// no octave has support, the reading stays. The octaves are taken one at a time, each
/// filling the pixels it supports, so at most twelve planes are held whatever their number.
fn restore_saturated(mut planes: [Array2<f32>; 3], flat_sigma_px: f32) -> [Array2<f32>; 3] {
    let saturated: Vec<Option<Array2<bool>>> = planes
        .iter()
        .map(|p| {
            let m = p.mapv(|v| v >= SATURATED);
            m.iter().any(|&b| b).then(|| dilate(&m, 1))
        })
        .collect();
    let free = |c: usize, i: (usize, usize)| saturated[c].as_ref().is_none_or(|m| !m[i]);
    let rebuilt: Vec<Option<Array2<f32>>> = (0..3)
        .map(|c| {
            let sat_c = saturated[c].as_ref()?;
            let (k1, k2) = match c {
                0 => (1, 2),
                1 => (0, 2),
                _ => (0, 1),
            };
            let (pc, pa, pb) = (&planes[c], &planes[k1], &planes[k2]);
            let fit_px =
                Array2::from_shape_fn(sat_c.dim(), |i| !sat_c[i] && free(k1, i) && free(k2, i));
            let products = Products::new(pc, pa, pb, &fit_px)?;
            let mut out = pc.clone();
            // Saturated pixels not yet filled (or found to have no unsaturated reference).
            let mut open =
                Array2::from_shape_fn(sat_c.dim(), |i| sat_c[i] && (free(k1, i) || free(k2, i)));
            let mut sigma = CHROMA_SCALE * flat_sigma_px;
            loop {
                let sums = products.blurred(sigma.max(1.0));
                Zip::indexed(&mut out).and(&mut open).for_each(|i, v, o| {
                    if !*o {
                        return;
                    }
                    let s = sums.each_ref().map(|p| p[i]);
                    if s[5] < MIN_SUPPORT {
                        return;
                    }
                    *o = false;
                    let (a, b) = (pa[i], pb[i]);
                    let p = match (free(k1, i), free(k2, i)) {
                        (true, true) => mix(s, a, b),
                        (true, false) => ratio(s[0], s[3], a),
                        _ => ratio(s[2], s[4], b),
                    };
                    if let Some(p) = p {
                        *v = v.max(p);
                    }
                });
                if sigma >= flat_sigma_px || !open.iter().any(|&o| o) {
                    break;
                }
                sigma = (2.0 * sigma).min(flat_sigma_px);
            }
            Some(out)
        })
        .collect();
    for (p, r) in planes.iter_mut().zip(rebuilt) {
        if let Some(r) = r {
            *p = r;
        }
    }
    planes.map(|mut p| {
        p.par_mapv_inplace(|v| -(v.max(FLOOR)).ln());
        p
    })
}

/// Weight (of a Gaussian's unit mass) on unsaturated pixels below which a local fit of
/// [`restore_saturated`] rests on too few of them and the next octave is tried.
const MIN_SUPPORT: f32 = 0.05;

/// Ridge of [`restore_saturated`]'s fit, relative to the mean square of the reference channels.
const RIDGE: f64 = 1e-3;

/// The products a least-squares fit of `c` on `k₁`, `k₂` needs, over the pixels it may use
/// (zero elsewhere): [k₁k₁, k₁k₂, k₂k₂, ck₁, ck₂, 1].
struct Products([Array2<f32>; 6]);

impl Products {
    /// None when no pixel may be used.
    fn new(
        c: &Array2<f32>,
        k1: &Array2<f32>,
        k2: &Array2<f32>,
        use_px: &Array2<bool>,
    ) -> Option<Self> {
        if !use_px.iter().any(|&u| u) {
            return None;
        }
        let prod = |f: fn(f32, f32, f32) -> f32| {
            Zip::from(c)
                .and(k1)
                .and(k2)
                .and(use_px)
                .par_map_collect(|&c, &a, &b, &u| if u { f(c, a, b) } else { 0.0 })
        };
        Some(Products([
            prod(|_, a, _| a * a),
            prod(|_, a, b| a * b),
            prod(|_, _, b| b * b),
            prod(|c, a, _| c * a),
            prod(|c, _, b| c * b),
            prod(|_, _, _| 1.0),
        ]))
    }

    /// Their Gaussian-weighted sums per pixel at `sigma` processing pixels.
    fn blurred(&self, sigma: f32) -> [Array2<f32>; 6] {
        self.0.each_ref().map(|p| wide_gaussian(&p.view(), sigma))
    }
}

/// `α·a + β·b` with the least-squares (α, β) of the sums `s` ([`Products`] order), ridged
/// towards the ratio model (κ, 0).
fn mix(s: [f32; 6], a: f32, b: f32) -> Option<f32> {
    let [aa, ab, bb, ca, cb, _] = s.map(f64::from);
    if aa <= 0.0 {
        return None;
    }
    let kappa = ca / aa;
    let ridge = RIDGE * (aa + bb);
    let (m11, m22) = (aa + ridge, bb + ridge);
    let ca = ca + ridge * kappa;
    let det = m11 * m22 - ab * ab;
    if det <= 0.0 {
        return None;
    }
    let alpha = (ca * m22 - cb * ab) / det;
    let beta = (cb * m11 - ca * ab) / det;
    Some((alpha * f64::from(a) + beta * f64::from(b)) as f32)
}

/// `v` times the local ratio Σck / Σkk of the channel to one reference.
fn ratio(kk: f32, ck: f32, v: f32) -> Option<f32> {
    (kk > 0.0).then(|| ck / kk * v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::RgbPlanes;

    #[test]
    fn smooth_lighting_exposure_and_white_balance_are_removed() {
        let (h, w) = (120, 160);
        let field = |_y: usize, x: usize| 0.6 * (1.0 - 0.3 * ((x as f32 - 80.0) / 100.0).powi(2));
        let spot = |y: usize, x: usize| {
            if (y as i32 - 60).pow(2) + (x as i32 - 80).pow(2) < 25 {
                0.7
            } else {
                1.0
            }
        };
        let wb = [1.2f32, 1.0, 0.8];
        let mk = |c: usize| {
            Array2::from_shape_fn((h, w), |(y, x)| wb[c] * field(y, x) * spot(y, x) * 0.5)
        };
        let planes = RgbPlanes {
            r: mk(0),
            g: mk(1),
            b: mk(2),
        };
        let n = normalize(&planes, 1, 20.0);
        for c in 0..3 {
            // Healthy skin far from the spot reads ≈ 0, the spot reads its own density.
            assert!(
                n.od[c][[20, 20]].abs() < 0.01,
                "channel {c}: {}",
                n.od[c][[20, 20]]
            );
            let spot_od = -(0.7f32).ln();
            assert!((n.od[c][[60, 80]] - spot_od).abs() < 0.03);
        }
    }

    /// Shading (grey, the same in every channel) of a field of pits and bumps, times a
    /// pigment that changes slowly and reddens one side, plus a white sheen that is strongest
    /// where the skin is brightest; red exposed so that it clips over the lit walls.
    fn scene() -> ([Array2<f32>; 3], Array2<f32>) {
        let (h, w) = (120, 160);
        let shading = Array2::from_shape_fn((h, w), |(y, x)| {
            let (fx, fy) = (x as f32 / 7.0, y as f32 / 9.0);
            1.0 + 0.45 * fx.sin() * fy.cos()
        });
        let red_gain = Array2::from_shape_fn((h, w), |(_, x)| 1.3 + 0.3 * (x as f32 / 160.0));
        let sheen = |s: f32| 0.1 * s * s;
        let true_r = Zip::from(&shading)
            .and(&red_gain)
            .map_collect(|&s, g| -(0.6 * s * g + sheen(s)).ln());
        let r = Zip::from(&shading)
            .and(&red_gain)
            .map_collect(|&s, g| (0.6 * s * g + sheen(s)).min(1.0));
        let g = shading.mapv(|s| 0.4 * s + sheen(s));
        let b = shading.mapv(|s| 0.3 * s + sheen(s));
        ([r, g, b], true_r)
    }

    #[test]
    fn a_clipped_channel_is_rebuilt_from_the_others_with_the_local_colour() {
        let (planes, true_r) = scene();
        let clipped = planes[0].iter().filter(|&&v| v >= 1.0).count();
        assert!(
            clipped > planes[0].len() / 3,
            "the scene clips red ({clipped} px)"
        );
        let plain = -(planes[0].mapv(|v| v.max(FLOOR)).mapv(f32::ln));
        let od = restore_saturated(planes, 20.0);
        let err = |d: &Array2<f32>| {
            let mut e: Vec<f32> = Zip::from(d)
                .and(&true_r)
                .map_collect(|a, t| (a - t).abs())
                .into_iter()
                .collect();
            e.sort_by(f32::total_cmp);
            e[e.len() * 95 / 100]
        };
        let (before, after) = (err(&plain), err(&od[0]));
        assert!(
            before > 0.2,
            "clipping loses {before} OD at the 95th percentile"
        );
        // Measured (45 % of red clipped): 0.053 at the 95th percentile, against 0.34 read as
        // clipped. The ridge towards the ratio model leaves some of the sheen unmodelled: with
        // a ridge of 10⁻⁵ it reads 0.033 here, but the compare seed sets read worse (depth
        // change 0.650 / 0.732 against 0.665 / 0.741 on 506 / 510), so the bound sits above
        // the ridge that was kept, not at the scene's best.
        assert!(
            after < 0.08,
            "rebuilt red is off by {after} OD (was {before})"
        );
    }
}
