//! Intrinsic decomposition: normalised optical densities → shading (relief) | melanin |
//! haemoglobin.
//!
//! Shading adds the same optical density to every channel; melanin and haemoglobin add their
//! own colour vectors (Tsumura et al. 1999). Rather than trusting fixed chromophore vectors,
//! which differ between cameras, the pigment part of the mean density is predicted from the
//! two chromatic differences by a least-squares fit over the photo itself (shading carries no
//! colour, so it is uncorrelated with them) and removed. What is left along the grey axis is
//! shading. Redness and pigment are reported as the Dawson erythema and melanin indices
//! (differences of channel densities), which shading does not touch.

use ndarray::{Array2, Zip};

use crate::filters::{gaussian, robust_median};
use crate::normalize::Normalized;

/// Shading and chromophore planes at the processing resolution.
#[derive(Debug, Clone)]
pub struct Intrinsics {
    /// Optical density of shading relative to healthy skin (> 0: darker than flat skin).
    pub shading: Array2<f32>,
    /// Melanin index relative to healthy skin (red-channel density with shading removed).
    pub melanin: Array2<f32>,
    /// Erythema index relative to healthy skin (green minus red density).
    pub erythema: Array2<f32>,
    /// Fitted weights of the two chromatic differences in the mean density.
    pub pigment_weights: [f32; 2],
    /// Optical density of the healthy skin's smooth brightness relative to the photo's median,
    /// with its pigment part removed the same way (> 0: darker). Where it is not lighting
    /// fall-off it is the shading of the skin's large-scale tilt.
    pub flat_shading: Array2<f32>,
}

/// Separate shading from pigment.
///
/// The grey measure is a weighted mean of the channel densities, weighted by each channel's
/// signal (skin reflectance squared): on dark skin the blue channel is a few code values deep
/// and would otherwise dominate the noise. The chromatic differences that predict its pigment
/// part are smoothed with `chroma_sigma_px` (JPEG already halves colour resolution), so their
/// pixel noise is not amplified into shading: melanin's colour vector lies close to grey and
/// the pigment weights are large.
pub fn separate(n: &Normalized, chroma_sigma_px: f32) -> Intrinsics {
    let [r, g, b] = &n.od;
    let sig: Vec<f32> = n.skin_od.iter().map(|d| (-2.0 * d).exp()).collect();
    let tot: f32 = sig.iter().sum::<f32>().max(1e-12);
    let a = [sig[0] / tot, sig[1] / tot, sig[2] / tot];
    let grey = Zip::from(r)
        .and(g)
        .and(b)
        .par_map_collect(|rv, gv, bv| a[0] * rv + a[1] * gv + a[2] * bv);
    let c1 = Zip::from(r).and(g).par_map_collect(|rv, gv| rv - gv);
    let c2 = Zip::from(g).and(b).par_map_collect(|gv, bv| gv - bv);
    let c1s = gaussian(&c1.view(), chroma_sigma_px);
    let c2s = gaussian(&c2.view(), chroma_sigma_px);
    drop((c1, c2));
    let ls = gaussian(&grey.view(), chroma_sigma_px);
    // Moments of the grey measure on the chromatic differences (a subsample is plenty).
    let step = (r.len() / 100_000).max(1);
    let (mut s11, mut s12, mut s22, mut s1l, mut s2l, mut cnt) =
        (0f64, 0f64, 0f64, 0f64, 0f64, 0f64);
    for ((l, c1), c2) in ls.iter().zip(c1s.iter()).zip(c2s.iter()).step_by(step) {
        let (l, c1, c2) = (*l as f64, *c1 as f64, *c2 as f64);
        s11 += c1 * c1;
        s12 += c1 * c2;
        s22 += c2 * c2;
        s1l += c1 * l;
        s2l += c2 * l;
        cnt += 1.0;
    }
    let cnt = cnt.max(1.0);
    let (s11, s12, s22, s1l, s2l) = (s11 / cnt, s12 / cnt, s22 / cnt, s1l / cnt, s2l / cnt);
    // Ridge term: without pigment contrast the weights fall to zero instead of fitting noise.
    let lambda = 0.01 * (s11 + s22) / 2.0 + 1e-8;
    let (a11, a22) = (s11 + lambda, s22 + lambda);
    let det = a11 * a22 - s12 * s12;
    let (w1, w2) = if det.abs() > 1e-18 {
        ((a22 * s1l - s12 * s2l) / det, (a11 * s2l - s12 * s1l) / det)
    } else {
        (0.0, 0.0)
    };
    let (w1, w2) = (w1 as f32, w2 as f32);
    let mut shading = grey;
    Zip::from(&mut shading)
        .and(&c1s)
        .and(&c2s)
        .par_for_each(|s, c1, c2| *s -= w1 * c1 + w2 * c2);
    let melanin = Zip::from(r).and(&shading).par_map_collect(|rv, s| rv - s);
    let erythema = Zip::from(g).and(r).par_map_collect(|gv, rv| gv - rv);
    let [fr, fg, fb] = &n.flat_od;
    let mut flat_shading = Zip::from(fr).and(fg).and(fb).par_map_collect(|rv, gv, bv| {
        a[0] * rv + a[1] * gv + a[2] * bv - w1 * (rv - gv) - w2 * (gv - bv)
    });
    let fm = robust_median(&flat_shading.view());
    flat_shading.par_mapv_inplace(|v| v - fm);
    Intrinsics {
        shading,
        melanin,
        erythema,
        pigment_weights: [w1, w2],
        flat_shading,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    /// Pigment patches with arbitrary chromophore vectors and an independent shading pattern:
    /// the shading comes back, the pigment does not leak into it.
    #[test]
    fn pigment_patches_do_not_leak_into_shading() {
        let (h, w) = (200, 200);
        let mel = [0.9f32, 1.3, 1.8];
        let hae = [0.3f32, 1.1, 0.6];
        let shade = |y: usize, x: usize| 0.05 * ((x as f32) * 0.7).sin() * ((y as f32) * 0.3).cos();
        // Pigment marks are blobs a few pixels across or more, like melanin spots and erythema.
        let blob = |y: usize, x: usize, cy: f32, cx: f32, r: f32| {
            (-((x as f32 - cx).powi(2) + (y as f32 - cy).powi(2)) / (2.0 * r * r)).exp()
        };
        let m = |y: usize, x: usize| {
            0.4 * blob(y, x, 60.0, 50.0, 12.0) + 0.5 * blob(y, x, 150.0, 120.0, 6.0)
        };
        let e = |y: usize, x: usize| {
            0.3 * blob(y, x, 80.0, 140.0, 15.0) + 0.4 * blob(y, x, 140.0, 40.0, 8.0)
        };
        let mk = |c: usize| {
            Array2::from_shape_fn((h, w), |(y, x)| {
                shade(y, x) + m(y, x) * mel[c] + e(y, x) * hae[c]
            })
        };
        let n = Normalized {
            od: [mk(0), mk(1), mk(2)],
            skin_od: [0.0; 3],
            flat_od: [
                Array2::zeros((h, w)),
                Array2::zeros((h, w)),
                Array2::zeros((h, w)),
            ],
            clipped_fraction: 0.0,
            factor: 1,
        };
        let i = separate(&n, 1.0);
        // Without the separation the pigment would dominate: check it is removed.
        let raw: f32 = (0..h * w)
            .map(|k| {
                let (y, x) = (k / w, k % w);
                (m(y, x) * 1.333 + e(y, x) * 0.667).powi(2)
            })
            .sum();
        assert!(raw > 4.0 * (0..h * w).map(|k| shade(k / w, k % w).powi(2)).sum::<f32>());
        let mut err = 0f32;
        let mut sig = 0f32;
        for ((y, x), s) in i.shading.indexed_iter() {
            let d = s - shade(y, x);
            err += d * d;
            sig += shade(y, x).powi(2);
        }
        // Residual leak well below the pigment contrast (0.3–0.4 OD) and below the shading.
        assert!(
            (err / sig).sqrt() < 0.35,
            "relative leak {}",
            (err / sig).sqrt()
        );
    }
}
