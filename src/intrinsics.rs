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

use ndarray::{aview1, Array2, Axis, Zip};

use crate::filters::{downsample, gaussian, gaussian_separable, robust_median, robust_stats};
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

/// How much smoother than the chroma the copy is on which the pigment weights are fitted.
const PIGMENT_FIT_SMOOTHING: f32 = 4.0;
/// Reweighted refits of the pigment weights.
const ROBUST_ITERATIONS: usize = 3;
/// Residuals (the shading) beyond this many robust standard deviations (1.4826 MAD) get no
/// weight in the refit: the shadows and lit walls of scars, tenths of an optical density,
/// not the few hundredths a pigment mark leaves under a first fit.
const ROBUST_CUTOFF_MADS: f64 = 20.0;
/// The cutoff never falls below this optical density (where pixel noise and texture are nearly
/// absent the MAD is, and every pigment mark's small misfit would be cut away with the scars).
const MIN_CUTOFF_OD: f64 = 0.1;

/// Weights (w1, w2) of the chromatic differences that best predict the grey measure, by
/// (weighted) least squares with a small ridge term: without pigment contrast the weights fall
/// to zero instead of fitting noise. Samples are [grey, c1, c2].
fn pigment_fit(samples: &[[f64; 3]], weights: Option<&[f64]>) -> (f64, f64) {
    let (mut s11, mut s12, mut s22, mut s1l, mut s2l, mut cnt) =
        (0f64, 0f64, 0f64, 0f64, 0f64, 0f64);
    for (i, [l, c1, c2]) in samples.iter().enumerate() {
        let wt = weights.map_or(1.0, |w| w[i]);
        s11 += wt * c1 * c1;
        s12 += wt * c1 * c2;
        s22 += wt * c2 * c2;
        s1l += wt * c1 * l;
        s2l += wt * c2 * l;
        cnt += wt;
    }
    let cnt = cnt.max(1e-12);
    let (s11, s12, s22, s1l, s2l) = (s11 / cnt, s12 / cnt, s22 / cnt, s1l / cnt, s2l / cnt);
    let lambda = 0.01 * (s11 + s22) / 2.0 + 1e-8;
    let (a11, a22) = (s11 + lambda, s22 + lambda);
    let det = a11 * a22 - s12 * s12;
    if det.abs() > 1e-18 {
        ((a22 * s1l - s12 * s2l) / det, (a11 * s2l - s12 * s1l) / det)
    } else {
        (0.0, 0.0)
    }
}

/// Separate shading from pigment.
///
/// The grey measure is a weighted mean of the channel densities, weighted by each channel's
/// signal (skin reflectance squared): on dark skin the blue channel is a few code values deep
/// and would otherwise dominate the noise. The chromatic differences that predict its pigment
/// part are smoothed with `chroma_sigma_px` (JPEG already halves colour resolution), so their
/// pixel noise is not amplified into shading: melanin's colour vector lies close to grey and
/// the pigment weights are large. The weights are fitted on a copy smoothed further and refitted
/// robustly (Tukey's biweight on the shading residual), so the shadows of scars that are also
/// red or brown do not pull them.
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
    // The weights are fitted on a coarser copy, smoothed PIGMENT_FIT_SMOOTHING times further:
    // pixel noise in the chromatic differences would bias the weights towards zero (errors
    // in variables), and pigment marks are broad. The copy is block-averaged first, so the
    // extra smoothing costs little.
    let sf = chroma_sigma_px * PIGMENT_FIT_SMOOTHING;
    let blk = ((sf / 2.0).floor() as usize).max(1);
    let held = (blk * blk - 1) as f32 / 12.0;
    let coarse = |x: &Array2<f32>, already: f32| {
        let c = downsample(&x.view(), blk);
        let rest = (sf * sf - already * already - held).max(0.0).sqrt() / blk as f32;
        if rest > 0.3 {
            gaussian_separable(&c.view(), rest)
        } else {
            c
        }
    };
    let (lf, c1f, c2f) = (
        coarse(&grey, 0.0),
        coarse(&c1s, chroma_sigma_px),
        coarse(&c2s, chroma_sigma_px),
    );
    // The grey measure regressed on the chromatic differences (a subsample is plenty).
    let step = (lf.len() / 100_000).max(1);
    let samples: Vec<[f64; 3]> = lf
        .iter()
        .zip(c1f.iter())
        .zip(c2f.iter())
        .step_by(step)
        .map(|((l, c1), c2)| [*l as f64, *c1 as f64, *c2 as f64])
        .collect();
    drop((lf, c1f, c2f));
    let (mut w1, mut w2) = pigment_fit(&samples, None);
    // Scars are where shading is strong, and they are often red or brown: their shadows,
    // correlated with their erythema, would pull the weights. Shading is sparse and large
    // there, so the fit is refined with Tukey's biweight on its residual (the shading).
    for _ in 0..ROBUST_ITERATIONS {
        let res: Vec<f64> = samples
            .iter()
            .map(|[l, c1, c2]| l - w1 * c1 - w2 * c2)
            .collect();
        // Location and scale in f32: their rounding is far below the residuals' spread.
        let buf: Vec<f32> = res.iter().map(|v| *v as f32).collect();
        let (med, sd) = robust_stats(&aview1(&buf).insert_axis(Axis(0)));
        let med = f64::from(med);
        let c = (ROBUST_CUTOFF_MADS * f64::from(sd)).max(MIN_CUTOFF_OD);
        let wts: Vec<f64> = res
            .iter()
            .map(|v| {
                let u = (v - med) / c;
                if u.abs() < 1.0 {
                    (1.0 - u * u).powi(2)
                } else {
                    0.0
                }
            })
            .collect();
        (w1, w2) = pigment_fit(&samples, Some(&wts));
    }
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

    /// Densities shade + m·melanin + e·haemoglobin with arbitrary colour vectors (not the
    /// phantom's), healthy skin at zero.
    fn planes(
        h: usize,
        w: usize,
        shade: impl Fn(usize, usize) -> f32,
        m: impl Fn(usize, usize) -> f32,
        e: impl Fn(usize, usize) -> f32,
    ) -> Normalized {
        let (mel, hae) = ([0.9f32, 1.3, 1.8], [0.3f32, 1.1, 0.6]);
        let mk = |c: usize| {
            Array2::from_shape_fn((h, w), |(y, x)| {
                shade(y, x) + m(y, x) * mel[c] + e(y, x) * hae[c]
            })
        };
        Normalized {
            od: [mk(0), mk(1), mk(2)],
            skin_od: [0.0; 3],
            flat_od: [
                Array2::zeros((h, w)),
                Array2::zeros((h, w)),
                Array2::zeros((h, w)),
            ],
            clipped_fraction: 0.0,
            factor: 1,
        }
    }

    /// Scars whose shadows sit on red halos: the plain least-squares fit takes part of the
    /// shadows for pigment (the weights move), the robust fit does not.
    #[test]
    fn shadows_on_red_halos_do_not_pull_the_pigment_weights() {
        let (h, w) = (240, 240);
        let blob = |y: usize, x: usize, cy: f32, cx: f32, r: f32| {
            (-((x as f32 - cx).powi(2) + (y as f32 - cy).powi(2)) / (2.0 * r * r)).exp()
        };
        let scars = [
            (60.0, 60.0),
            (60.0, 180.0),
            (180.0, 60.0),
            (180.0, 180.0),
            (120.0, 120.0),
        ];
        let m = |y: usize, x: usize| {
            0.4 * blob(y, x, 30.0, 120.0, 12.0) + 0.5 * blob(y, x, 210.0, 120.0, 9.0)
        };
        let e = |y: usize, x: usize| {
            scars
                .iter()
                .map(|&(cy, cx)| 0.5 * blob(y, x, cy, cx, 14.0))
                .sum::<f32>()
                + 0.3 * blob(y, x, 120.0, 30.0, 12.0)
        };
        // Each scar: a cast shadow (+1 OD) over a 9 px disc, a lit crescent beside it.
        let shade = |y: usize, x: usize| {
            let mut s = 0.0;
            for &(cy, cx) in &scars {
                let r = ((x as f32 - cx).powi(2) + (y as f32 - cy).powi(2)).sqrt();
                if r < 9.0 {
                    s += if x as f32 > cx - 3.0 { 1.0 } else { -0.3 };
                }
            }
            // Texture and noise, so the residual has a spread.
            s + 0.01 * ((x * 7 + y * 13) as f32 * 0.9).sin()
        };
        let n = planes(h, w, shade, m, e);
        // Grey = mean density (skin_od 0 weighs the channels equally); solving
        // w1·(r−g) + w2·(g−b) = grey for both chromophores gives the true weights.
        let truth = [-5.0f64 / 3.0, -4.0 / 3.0];
        let i = separate(&n, 1.0);
        let err = |wt: [f64; 2]| ((wt[0] - truth[0]).powi(2) + (wt[1] - truth[1]).powi(2)).sqrt();
        let robust = err([i.pigment_weights[0] as f64, i.pigment_weights[1] as f64]);
        // A plain (unweighted) least-squares fit, on the unsmoothed pixels.
        let samples: Vec<[f64; 3]> = (0..h * w)
            .map(|k| {
                let (y, x) = (k / w, k % w);
                let (r, g, b) = (
                    n.od[0][[y, x]] as f64,
                    n.od[1][[y, x]] as f64,
                    n.od[2][[y, x]] as f64,
                );
                [(r + g + b) / 3.0, r - g, g - b]
            })
            .collect();
        let plain = err(pigment_fit(&samples, None).into());
        assert!(
            robust < 0.1,
            "robust weights {:?} vs {truth:?}",
            i.pigment_weights
        );
        assert!(
            plain > 3.0 * robust,
            "plain fit error {plain} vs robust {robust}"
        );
    }

    /// Pigment patches with arbitrary chromophore vectors and an independent shading pattern:
    /// the shading comes back, the pigment does not leak into it.
    #[test]
    fn pigment_patches_do_not_leak_into_shading() {
        let (h, w) = (200, 200);
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
        let n = planes(h, w, shade, m, e);
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
