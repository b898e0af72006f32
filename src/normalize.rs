//! Normalisation: linear-light RGB planes at camera resolution → optical-density planes at the
//! processing resolution, with the smooth illumination field (flash fall-off, vignetting),
//! exposure and white balance removed, so that healthy skin reads 0 in every channel.
//!
//! In optical density (−ln of linear light) every multiplicative effect becomes additive: a
//! smooth lighting field, an exposure change and a white-balance gain are all removed by
//! subtracting a per-channel low-pass estimate taken at a scale well above the largest scar.

use ndarray::{Array2, Zip};

use crate::filters::{robust_median, wide_gaussian};
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
    let (od, fields): (Vec<Array2<f32>>, Vec<Array2<f32>>) = small
        .into_iter()
        .enumerate()
        .map(|(c, small)| {
            let mut d = small;
            d.par_mapv_inplace(|v| -(v.max(FLOOR)).ln());
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
}
