//! Float filters on `Array2<f32>` planes: Gaussian blur with complete kernels (separable for
//! small σ, a box cascade for large σ), box downsampling, gradients and local statistics.
//! Every filter takes a plane and returns a new plane; rows run in parallel with rayon, and
//! each output value is computed by one thread in a fixed order, so results never depend on
//! the thread count.

use ndarray::{Array2, ArrayView2, Axis, Zip};
use rayon::prelude::*;

/// Gaussian blur with a kernel reaching 3.5 σ (borders replicate the edge pixel). Large σ
/// switches to a cascade of box filters, which costs the same whatever σ.
pub fn gaussian(src: &ArrayView2<f32>, sigma: f32) -> Array2<f32> {
    if sigma < 0.3 {
        return src.to_owned();
    }
    if sigma > 6.0 {
        return box_cascade(src, sigma);
    }
    let rad = (3.5 * sigma).ceil() as usize;
    let mut k: Vec<f32> = (0..=2 * rad)
        .map(|i| {
            let d = i as f32 - rad as f32;
            (-(d * d) / (2.0 * sigma * sigma)).exp()
        })
        .collect();
    let s: f32 = k.iter().sum();
    k.iter_mut().for_each(|v| *v /= s);
    let tmp = convolve_rows(src, &k);
    convolve_cols(&tmp.view(), &k)
}

fn convolve_rows(src: &ArrayView2<f32>, k: &[f32]) -> Array2<f32> {
    let (h, w) = src.dim();
    let rad = k.len() / 2;
    let mut out = Array2::<f32>::zeros((h, w));
    out.axis_iter_mut(Axis(0))
        .into_par_iter()
        .zip(src.axis_iter(Axis(0)).into_par_iter())
        .for_each_init(
            || (vec![0f32; w + 2 * rad], vec![0f32; w]),
            |(buf, acc), (mut o, r)| {
                // Pad the row once so the inner loop has no bounds logic.
                let first = r[0];
                let last = r[w - 1];
                for i in 0..rad {
                    buf[i] = first;
                    buf[rad + w + i] = last;
                }
                for (b, v) in buf[rad..rad + w].iter_mut().zip(r.iter()) {
                    *b = *v;
                }
                // Tap by tap across the whole row, so the loop vectorises over x; each output
                // still sums its products in tap order from −0.0, exactly as
                // `win.iter().zip(k).map(|(a, b)| a * b).sum()` would.
                acc.iter_mut().for_each(|a| *a = -0.0);
                for (j, kv) in k.iter().enumerate() {
                    for (a, v) in acc.iter_mut().zip(&buf[j..j + w]) {
                        *a += v * kv;
                    }
                }
                for (ov, a) in o.iter_mut().zip(acc.iter()) {
                    *ov = *a;
                }
            },
        );
    out
}

fn convolve_cols(src: &ArrayView2<f32>, k: &[f32]) -> Array2<f32> {
    let (h, w) = src.dim();
    let rad = k.len() / 2;
    let mut out = Array2::<f32>::zeros((h, w));
    out.axis_iter_mut(Axis(0))
        .into_par_iter()
        .enumerate()
        .for_each(|(y, mut o)| {
            let orow = o.as_slice_mut();
            let mut acc = vec![0f32; w];
            for (j, kv) in k.iter().enumerate() {
                let yy = (y as isize + j as isize - rad as isize).clamp(0, h as isize - 1) as usize;
                let r = src.row(yy);
                // On a contiguous row the loop vectorises; ndarray's iterator does not.
                match r.as_slice() {
                    Some(r) => {
                        for (a, v) in acc.iter_mut().zip(r) {
                            *a += kv * v;
                        }
                    }
                    None => {
                        for (a, v) in acc.iter_mut().zip(r.iter()) {
                            *a += kv * v;
                        }
                    }
                }
            }
            if let Some(orow) = orow {
                orow.copy_from_slice(&acc);
            } else {
                for (ov, a) in o.iter_mut().zip(acc) {
                    *ov = a;
                }
            }
        });
    out
}

/// Approximate Gaussian by three successive box filters of matched variance (Wells 1986).
fn box_cascade(src: &ArrayView2<f32>, sigma: f32) -> Array2<f32> {
    // Box width w has variance (w² − 1)/12; three passes add up to σ².
    let w = ((12.0 * sigma * sigma / 3.0 + 1.0).sqrt()).round().max(1.0) as usize;
    let r = w / 2;
    let mut a = box_cols(&box_rows(src, r).view(), r);
    for _ in 1..3 {
        a = box_cols(&box_rows(&a.view(), r).view(), r);
    }
    a
}

/// Running mean of width 2r+1 along rows, edges replicated. The sum runs in `f64`, started
/// from the window at x = 0 and updated by the pixel entering minus the pixel leaving.
fn box_rows(src: &ArrayView2<f32>, r: usize) -> Array2<f32> {
    let (h, w) = src.dim();
    let mut out = Array2::<f32>::zeros((h, w));
    if w == 0 {
        return out;
    }
    let norm = 1.0 / (2 * r + 1) as f64;
    out.axis_iter_mut(Axis(0))
        .into_par_iter()
        .zip(src.axis_iter(Axis(0)).into_par_iter())
        .for_each_init(
            || vec![0f32; w + 2 * r + 2],
            |buf, (mut o, row)| {
                // buf[i + r + 1] is the pixel at x = i, edges replicated, so the loop below
                // needs no clamping.
                let (first, last) = (row[0], row[w - 1]);
                buf[..=r].fill(first);
                buf[r + 1 + w..].fill(last);
                for (b, v) in buf[r + 1..r + 1 + w].iter_mut().zip(row.iter()) {
                    *b = *v;
                }
                let mut acc: f64 = buf[1..2 * r + 2].iter().map(|v| *v as f64).sum();
                for (x, ov) in o.iter_mut().enumerate() {
                    *ov = (acc * norm) as f32;
                    acc += buf[x + 2 * r + 2] as f64 - buf[x + 1] as f64;
                }
            },
        );
    out
}

/// Running mean of width 2r+1 down columns, edges replicated: the same sums as [`box_rows`]
/// on the transpose, computed a band of columns at a time so the inner loop runs along
/// rows (vectorised) instead of striding down a column.
fn box_cols(src: &ArrayView2<f32>, r: usize) -> Array2<f32> {
    const BAND: usize = 64;
    let (h, w) = src.dim();
    let mut out = Array2::<f32>::zeros((h, w));
    if h == 0 || w == 0 {
        return out;
    }
    let norm = 1.0 / (2 * r + 1) as f64;
    let (r, last) = (r as isize, h as isize - 1);
    out.axis_chunks_iter_mut(Axis(1), BAND)
        .into_par_iter()
        .zip(src.axis_chunks_iter(Axis(1), BAND).into_par_iter())
        .for_each(|(mut o, s)| {
            let row = |i: isize| s.row(i.clamp(0, last) as usize);
            // −0.0 is where `Iterator::sum` starts, as in box_rows.
            let mut acc = vec![-0.0f64; s.ncols()];
            for i in -r..=r {
                for (a, v) in acc.iter_mut().zip(row(i)) {
                    *a += *v as f64;
                }
            }
            for (y, mut orow) in o.axis_iter_mut(Axis(0)).enumerate() {
                for (ov, a) in orow.iter_mut().zip(&acc) {
                    *ov = (*a * norm) as f32;
                }
                let y = y as isize;
                for ((a, p), m) in acc.iter_mut().zip(row(y + r + 1)).zip(row(y - r)) {
                    *a += *p as f64 - *m as f64;
                }
            }
        });
    out
}

/// Average `f`×`f` blocks (anti-aliased integer downsampling); partial blocks at the right and
/// bottom edges are averaged over the pixels they hold.
pub fn downsample(src: &ArrayView2<f32>, f: usize) -> Array2<f32> {
    if f <= 1 {
        return src.to_owned();
    }
    let (h, w) = src.dim();
    let (oh, ow) = (h.div_ceil(f), w.div_ceil(f));
    let mut out = Array2::<f32>::zeros((oh, ow));
    out.axis_iter_mut(Axis(0))
        .into_par_iter()
        .enumerate()
        .for_each(|(oy, mut o)| {
            let y0 = oy * f;
            let y1 = (y0 + f).min(h);
            let mut acc = vec![0f32; ow];
            let mut cnt = vec![0u32; ow];
            for y in y0..y1 {
                for (x, v) in src.row(y).iter().enumerate() {
                    acc[x / f] += v;
                    cnt[x / f] += 1;
                }
            }
            for ((ov, a), c) in o.iter_mut().zip(acc).zip(cnt) {
                *ov = a / c.max(1) as f32;
            }
        });
    out
}

/// Central-difference gradient (∂/∂x, ∂/∂y) per pixel; one-sided at the borders.
pub fn gradient(src: &ArrayView2<f32>) -> (Array2<f32>, Array2<f32>) {
    let (h, w) = src.dim();
    let mut gx = Array2::<f32>::zeros((h, w));
    let mut gy = Array2::<f32>::zeros((h, w));
    if h < 2 || w < 2 {
        return (gx, gy);
    }
    Zip::indexed(&mut gx).par_for_each(|(y, x), g| {
        let (a, b) = (x.saturating_sub(1), (x + 1).min(w - 1));
        *g = (src[[y, b]] - src[[y, a]]) / (b - a) as f32;
    });
    Zip::indexed(&mut gy).par_for_each(|(y, x), g| {
        let (a, b) = (y.saturating_sub(1), (y + 1).min(h - 1));
        *g = (src[[b, x]] - src[[a, x]]) / (b - a) as f32;
    });
    (gx, gy)
}

/// Median of a sample (NaNs ignored); 0 for an empty sample.
pub fn median(values: &mut [f32]) -> f32 {
    let mut n = values.len();
    let mut i = 0;
    while i < n {
        if values[i].is_nan() {
            values.swap(i, n - 1);
            n -= 1;
        } else {
            i += 1;
        }
    }
    if n == 0 {
        return 0.0;
    }
    let v = &mut values[..n];
    let mid = n / 2;
    let (_, m, _) = v.select_nth_unstable_by(mid, |a, b| a.total_cmp(b));
    *m
}

/// Robust location and scale (median, 1.4826·MAD) of a plane, from a strided subsample so the
/// cost stays small on large photos.
pub fn robust_stats(src: &ArrayView2<f32>) -> (f32, f32) {
    let n = src.len();
    let step = (n / 200_000).max(1);
    let mut v: Vec<f32> = src.iter().step_by(step).copied().collect();
    let med = median(&mut v);
    let mut dev: Vec<f32> = v.iter().map(|x| (x - med).abs()).collect();
    let mad = median(&mut dev);
    (med, 1.4826 * mad)
}

/// Grey-level erosion (`max == false`) or dilation (`max == true`) with a square of side
/// `2 r + 1`, done separably (rows, then columns); borders use the pixels that exist.
pub fn rank_square(src: &ArrayView2<f32>, r: usize, max: bool) -> Array2<f32> {
    let pick = |a: f32, b: f32| if max { a.max(b) } else { a.min(b) };
    let (h, w) = src.dim();
    let mut rows = Array2::<f32>::zeros((h, w));
    Zip::from(rows.rows_mut())
        .and(src.rows())
        .par_for_each(|mut out, inp| {
            for x in 0..w {
                let (a, b) = (x.saturating_sub(r), (x + r).min(w - 1));
                out[x] = (a..=b).fold(inp[a], |m, k| pick(m, inp[k]));
            }
        });
    let mut out = Array2::<f32>::zeros((h, w));
    out.axis_iter_mut(Axis(0))
        .into_par_iter()
        .enumerate()
        .for_each(|(y, mut row)| {
            let (a, b) = (y.saturating_sub(r), (y + r).min(h - 1));
            row.assign(&rows.row(a));
            for k in a + 1..=b {
                Zip::from(&mut row)
                    .and(rows.row(k))
                    .for_each(|o, v| *o = pick(*o, *v));
            }
        });
    out
}

/// Grey-level closing (dilation, then erosion) with a square of side `2 r + 1`: fills
/// valleys narrower than the square and leaves wider ones and all ridges unchanged.
pub fn closing(src: &ArrayView2<f32>, r: usize) -> Array2<f32> {
    let d = rank_square(src, r, true);
    rank_square(&d.view(), r, false)
}

/// Solve a 3×3 symmetric system by Cramer's rule; None when singular.
pub fn solve3(a: [[f64; 3]; 3], b: [f64; 3]) -> Option<[f64; 3]> {
    let det = |m: &[[f64; 3]; 3]| {
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
            - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    };
    let d = det(&a);
    if d.abs() < 1e-9 {
        return None;
    }
    let mut out = [0f64; 3];
    for (k, o) in out.iter_mut().enumerate() {
        let mut m = a;
        for r in 0..3 {
            m[r][k] = b[r];
        }
        *o = det(&m) / d;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn closing_fills_a_narrow_groove_and_keeps_a_wide_pit() {
        let z = Array2::from_shape_fn((40, 40), |(y, x)| {
            let groove = if x == 10 { -1.0 } else { 0.0 };
            let pit = if (20..30).contains(&x) && (15..25).contains(&y) {
                -1.0
            } else {
                0.0
            };
            groove + pit
        });
        let c = closing(&z.view(), 1);
        assert_eq!(c[[5, 10]], 0.0);
        assert_eq!(c[[20, 25]], -1.0);
        assert_eq!(c[[15, 20]], -1.0);
    }

    #[test]
    fn gaussian_preserves_a_constant_and_the_mass_of_an_impulse() {
        let c = Array2::<f32>::from_elem((40, 50), 3.0);
        let g = gaussian(&c.view(), 2.0);
        assert!(g.iter().all(|v| (v - 3.0).abs() < 1e-5));
        let mut imp = Array2::<f32>::zeros((81, 81));
        imp[[40, 40]] = 1.0;
        for s in [1.5f32, 4.0, 9.0] {
            let g = gaussian(&imp.view(), s);
            let sum: f32 = g.iter().sum();
            assert!((sum - 1.0).abs() < 1e-3, "σ={s}: mass {sum}");
            // Variance along x matches σ² (box cascade within 10 %).
            let var: f32 = g
                .indexed_iter()
                .map(|((_, x), v)| v * (x as f32 - 40.0).powi(2))
                .sum();
            assert!(
                (var.sqrt() - s).abs() / s < 0.1,
                "σ={s}: measured {}",
                var.sqrt()
            );
        }
    }

    #[test]
    fn box_filter_down_columns_equals_along_rows_of_the_transpose_bit_for_bit() {
        let a = Array2::from_shape_fn((70, 150), |(y, x)| ((x * 31 + y * 17) % 23) as f32 * 0.1);
        for r in [0, 1, 4, 40, 90] {
            let cols = box_cols(&a.view(), r);
            let rows_t = box_rows(&a.t().as_standard_layout().view(), r);
            assert_eq!(cols, rows_t.t(), "r = {r}");
        }
    }

    #[test]
    fn downsample_averages_blocks_including_partial_edges() {
        let a = Array2::from_shape_fn((5, 5), |(y, x)| (y * 5 + x) as f32);
        let d = downsample(&a.view(), 2);
        assert_eq!(d.dim(), (3, 3));
        assert_eq!(d[[0, 0]], (0.0 + 1.0 + 5.0 + 6.0) / 4.0);
        assert_eq!(d[[2, 2]], 24.0);
    }

    #[test]
    fn median_and_mad_of_a_known_sample() {
        let mut v = vec![5.0, 1.0, f32::NAN, 3.0, 2.0, 4.0];
        assert_eq!(median(&mut v), 3.0);
        let a = Array2::from_shape_fn((1, 5), |(_, x)| x as f32);
        let (m, s) = robust_stats(&a.view());
        assert_eq!(m, 2.0);
        assert!((s - 1.4826).abs() < 1e-4);
    }
}
