//! Float filters on `Array2<f32>` planes: Gaussian blur with complete kernels (separable for
//! small σ, a box cascade for large σ), box downsampling, gradients and local statistics.
//! Every filter takes a plane and returns a new plane; rows run in parallel with rayon, and
//! each output value is computed by one thread in a fixed order, so results never depend on
//! the thread count.

use ndarray::{Array2, ArrayView2, Axis};
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
    gaussian_separable(src, sigma)
}

/// [`gaussian`] with the sampled kernel at every σ (no box cascade: exact variance, no side
/// lobes, but the cost grows with σ). For small planes, such as coarse pyramid levels.
pub fn gaussian_separable(src: &ArrayView2<f32>, sigma: f32) -> Array2<f32> {
    if sigma < 0.3 {
        return src.to_owned();
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
                {
                    // Pad the row once so the inner loop has no bounds logic.
                    let first = r[0];
                    let last = r[w - 1];
                    for i in 0..rad {
                        buf[i] = first;
                        buf[rad + w + i] = last;
                    }
                    match r.as_slice() {
                        Some(r) => buf[rad..rad + w].copy_from_slice(r),
                        None => {
                            for (b, v) in buf[rad..rad + w].iter_mut().zip(r.iter()) {
                                *b = *v;
                            }
                        }
                    }
                    // Each output sums its products in tap order from −0.0, exactly as
                    // `win.iter().zip(k).map(|(a, b)| a * b).sum()` would.
                    let taps: Vec<&[f32]> = (0..k.len()).map(|j| &buf[j..j + w]).collect();
                    match o.as_slice_mut() {
                        Some(o) => tap_sums(o, &taps, k, -0.0),
                        None => {
                            tap_sums(acc, &taps, k, -0.0);
                            for (ov, a) in o.iter_mut().zip(acc.iter()) {
                                *ov = *a;
                            }
                        }
                    }
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
            {
                let rows: Option<Vec<&[f32]>> = (0..k.len())
                    .map(|j| {
                        let yy = (y as isize + j as isize - rad as isize).clamp(0, h as isize - 1);
                        src.row(yy as usize).to_slice()
                    })
                    .collect();
                if let (Some(rows), Some(orow)) = (&rows, o.as_slice_mut()) {
                    // Each output sums its products in tap order from +0.0.
                    tap_sums(orow, rows, k, 0.0);
                    return;
                }
                let orow = o.as_slice_mut();
                let mut acc = vec![0f32; w];
                for (j, kv) in k.iter().enumerate() {
                    let yy =
                        (y as isize + j as isize - rad as isize).clamp(0, h as isize - 1) as usize;
                    let r = src.row(yy);
                    // On a contiguous row the loop vectorises; ndarray's iterator does not.
                    match r.as_slice() {
                        Some(r) => add_scaled(&mut acc, r, *kv),
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
            }
        });
    out
}

/// Approximate Gaussian by three successive box filters of matched variance (Wells 1986).
fn box_cascade(src: &ArrayView2<f32>, sigma: f32) -> Array2<f32> {
    // Box width w has variance (w² − 1)/12; three passes add up to σ².
    let w = ((12.0 * sigma * sigma / 3.0 + 1.0).sqrt()).round().max(1.0) as usize;
    let r = w / 2;
    // Two buffers, passed back and forth: rows into `a`, columns into `b`, three times.
    let mut a = Array2::<f32>::zeros(src.dim());
    let mut b = Array2::<f32>::zeros(src.dim());
    box_rows_into(&standard_slice(src), r, &mut a);
    for pass in 0..3 {
        if pass > 0 {
            box_rows_into(b.as_slice().unwrap_or(&[]), r, &mut a);
        }
        box_cols_into(a.as_slice().unwrap_or(&[]), r, &mut b);
    }
    b
}

/// Running mean of width 2r+1 along rows, edges replicated. The sum runs in `f64`, started
/// from the window at x = 0 and updated by the pixel entering minus the pixel leaving.
#[cfg(test)]
fn box_rows(src: &ArrayView2<f32>, r: usize) -> Array2<f32> {
    let mut out = Array2::<f32>::zeros(src.dim());
    box_rows_into(&standard_slice(src), r, &mut out);
    out
}

/// [`box_rows`] of the row-major samples `src` (shaped as `out`) into `out`. Each row's
/// running sum is a serial chain: the differences entering − leaving are taken first across
/// the row (vectorised), then four rows' chains run interleaved with nothing else in them,
/// then the sums are scaled across the row (vectorised); the same operations on the same
/// values as one loop doing all three per pixel.
fn box_rows_into(src: &[f32], r: usize, out: &mut Array2<f32>) {
    const ROWS: usize = 4;
    let (h, w) = out.dim();
    let Some(out_s) = out.as_slice_mut() else {
        return;
    };
    if w == 0 || h == 0 || src.len() != out_s.len() {
        return;
    }
    let norm = 1.0 / (2 * r + 1) as f64;
    let pad = w + 2 * r + 2;
    out_s
        .par_chunks_mut(ROWS * w)
        .zip(src.par_chunks(ROWS * w))
        .for_each_init(
            || (vec![0f32; ROWS * pad], vec![0f64; ROWS * w]),
            |(buf, diff), (o, rows)| {
                let mut acc = [0f64; ROWS];
                for (k, (b, row)) in buf
                    .chunks_exact_mut(pad)
                    .zip(rows.chunks_exact(w))
                    .enumerate()
                {
                    let (first, last) = (row[0], row[w - 1]);
                    b[..=r].fill(first);
                    b[r + 1 + w..].fill(last);
                    b[r + 1..r + 1 + w].copy_from_slice(row);
                    acc[k] = b[1..2 * r + 2].iter().map(|v| *v as f64).sum();
                }
                let n = o.len() / w;
                // Entering and leaving samples of output x: b[x + 2r + 2] and b[x + 1].
                for (b, d) in buf.chunks_exact(pad).zip(diff.chunks_exact_mut(w)).take(n) {
                    difference(d, &b[2 * r + 2..2 * r + 2 + w], &b[1..1 + w]);
                }
                // Each difference is replaced by the running sum before it is added.
                if n == ROWS {
                    let (d0, rest) = diff.split_at_mut(w);
                    let (d1, rest) = rest.split_at_mut(w);
                    let (d2, d3) = rest.split_at_mut(w);
                    let [mut a0, mut a1, mut a2, mut a3] = acc;
                    for x in 0..w {
                        let t = [d0[x], d1[x], d2[x], d3[x]];
                        (d0[x], d1[x], d2[x], d3[x]) = (a0, a1, a2, a3);
                        a0 += t[0];
                        a1 += t[1];
                        a2 += t[2];
                        a3 += t[3];
                    }
                } else {
                    for (d, mut a) in diff.chunks_exact_mut(w).zip(acc).take(n) {
                        for v in d.iter_mut() {
                            let t = *v;
                            *v = a;
                            a += t;
                        }
                    }
                }
                scale_to_f32(o, &diff[..o.len()], norm);
            },
        );
}

/// Running mean of width 2r+1 down columns, edges replicated: the same sums as [`box_rows`]
/// on the transpose, computed a band of columns at a time so the inner loop runs along
/// rows (vectorised) instead of striding down a column.
#[cfg(test)]
fn box_cols(src: &ArrayView2<f32>, r: usize) -> Array2<f32> {
    let mut out = Array2::<f32>::zeros(src.dim());
    box_cols_into(&standard_slice(src), r, &mut out);
    out
}

/// [`box_cols`] of the row-major samples `src` (shaped as `out`) into `out`.
fn box_cols_into(src: &[f32], r: usize, out: &mut Array2<f32>) {
    const BAND: usize = 64;
    let (h, w) = out.dim();
    if h == 0 || w == 0 || src.len() != h * w {
        return;
    }
    let norm = 1.0 / (2 * r + 1) as f64;
    let (ri, last) = (r as isize, h as isize - 1);
    out.axis_chunks_iter_mut(Axis(1), BAND)
        .into_par_iter()
        .enumerate()
        .for_each(|(band, mut o)| {
            let (x0, bw) = (band * BAND, o.ncols());
            let row = |i: isize| {
                let y = i.clamp(0, last) as usize * w + x0;
                &src[y..y + bw]
            };
            let mut acc = [-0.0f64; BAND];
            let acc = &mut acc[..bw];
            for i in -ri..=ri {
                for (a, v) in acc.iter_mut().zip(row(i)) {
                    *a += *v as f64;
                }
            }
            for (y, mut orow) in o.axis_iter_mut(Axis(0)).enumerate() {
                if let Some(os) = orow.as_slice_mut() {
                    scale_to_f32(os, acc, norm);
                } else {
                    for (ov, a) in orow.iter_mut().zip(acc.iter()) {
                        *ov = (*a * norm) as f32;
                    }
                }
                let y = y as isize;
                add_difference(acc, row(y + ri + 1), row(y - ri));
            }
        });
}

/// Defines a slice kernel twice from one body: as compiled (baseline x86-64, SSE2) and for
/// AVX2, chosen at run time. Both run the same operations in the same order, element by
/// element (no fused multiply-add is enabled, and Rust never contracts a multiply and an
/// add), so they give the same bits; AVX2 only runs twice as many elements per instruction.
macro_rules! wide_kernel {
    ($(#[$doc:meta])* fn $name:ident($($a:ident: $t:ty),* $(,)?) $body:block) => {
        $(#[$doc])*
        #[inline]
        fn $name($($a: $t),*) {
            #[inline(always)]
            fn body($($a: $t),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2")]
                unsafe fn avx2($($a: $t),*) {
                    body($($a),*)
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the processor supports AVX2 (checked just above).
                    return unsafe { avx2($($a),*) };
                }
            }
            body($($a),*)
        }
    };
}

wide_kernel! {
    /// `out[x] = init + taps[0][x]·k[0] + taps[1][x]·k[1] + …`, added in that order (each
    /// tap's slice at least as long as `out`). Blocks of 32 outputs, then of 8, stay in
    /// registers while every tap is added, instead of a pass over the row per tap.
    fn tap_sums(out: &mut [f32], taps: &[&[f32]], k: &[f32], init: f32) {
        let n = out.len();
        if taps.iter().any(|t| t.len() < n) {
            return;
        }
        // Wide blocks first (enough independent sums to hide the adds' latency), then
        // narrow ones, then single outputs; every output sees the same additions in order.
        let mut x0 = 0;
        macro_rules! blocks {
            ($l:expr) => {
                while x0 + $l <= n {
                    let mut a = [init; $l];
                    for (t, kv) in taps.iter().zip(k) {
                        let v = &t[x0..x0 + $l];
                        for i in 0..$l {
                            a[i] += v[i] * kv;
                        }
                    }
                    out[x0..x0 + $l].copy_from_slice(&a);
                    x0 += $l;
                }
            };
        }
        blocks!(32);
        blocks!(8);
        for (x, o) in out.iter_mut().enumerate().skip(x0) {
            let mut a = init;
            for (t, kv) in taps.iter().zip(k) {
                a += t[x] * kv;
            }
            *o = a;
        }
    }
}

wide_kernel! {
    /// `acc[i] += v[i] * k` (over the shorter of the two).
    fn add_scaled(acc: &mut [f32], v: &[f32], k: f32) {
        for (a, x) in acc.iter_mut().zip(v) {
            *a += x * k;
        }
    }
}

wide_kernel! {
    /// `d[i] = e[i] − l[i]` in `f64`.
    fn difference(d: &mut [f64], e: &[f32], l: &[f32]) {
        for ((d, e), l) in d.iter_mut().zip(e).zip(l) {
            *d = *e as f64 - *l as f64;
        }
    }
}

wide_kernel! {
    /// `acc[i] += p[i] − m[i]`, the difference taken in `f64`.
    fn add_difference(acc: &mut [f64], p: &[f32], m: &[f32]) {
        for ((a, p), m) in acc.iter_mut().zip(p).zip(m) {
            *a += *p as f64 - *m as f64;
        }
    }
}

wide_kernel! {
    /// `o[i] = (a[i] · norm)` rounded to `f32`.
    fn scale_to_f32(o: &mut [f32], a: &[f64], norm: f64) {
        for (o, a) in o.iter_mut().zip(a) {
            *o = (*a * norm) as f32;
        }
    }
}

/// The samples of `src` in row-major order, borrowed when it is already laid out so.
pub(crate) fn standard_slice<'a>(src: &'a ArrayView2<f32>) -> std::borrow::Cow<'a, [f32]> {
    match src.as_slice() {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(src.iter().copied().collect()),
    }
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
            for y in y0..y1 {
                let row = src.row(y);
                match row.as_slice() {
                    // Each block's sum takes its pixels in order, as the general walk does.
                    Some(r) => {
                        for (a, block) in acc.iter_mut().zip(r.chunks(f)) {
                            for v in block {
                                *a += v;
                            }
                        }
                    }
                    None => {
                        for (x, v) in row.iter().enumerate() {
                            acc[x / f] += v;
                        }
                    }
                }
            }
            let rows = (y1 - y0) as u32;
            for (ox, (ov, a)) in o.iter_mut().zip(acc).enumerate() {
                let cols = (((ox + 1) * f).min(w) - ox * f) as u32;
                *ov = a / (rows * cols).max(1) as f32;
            }
        });
    out
}

/// Bilinear interpolation of a grid whose cell j sits at pixel j·f + `offset` back onto the
/// `out` grid, clamped at the edges (block means of `f`×`f` pixels: offset (f − 1)/2;
/// samples taken every f pixels from pixel 0: offset 0).
pub fn upsample_into(grid: &Array2<f32>, f: usize, offset: f32, out: &mut Array2<f32>) {
    let (ch, cw) = grid.dim();
    if ch == 0 || cw == 0 {
        out.fill(0.0);
        return;
    }
    let at = |i: usize, n: usize| -> (usize, usize, f32) {
        let t = ((i as f32 - offset) / f as f32).max(0.0);
        let j0 = (t as usize).min(n - 1);
        (j0, (j0 + 1).min(n - 1), (t - j0 as f32).min(1.0))
    };
    // Runs of pixels between the same two grid columns, so the inner loop streams over the
    // weights with its four grid values fixed (and vectorises).
    let xs: Vec<(usize, usize, f32)> = (0..out.ncols()).map(|x| at(x, cw)).collect();
    let fxs: Vec<f32> = xs.iter().map(|t| t.2).collect();
    let mut runs: Vec<(usize, usize, usize, usize)> = Vec::new();
    for (x, &(x0, x1, _)) in xs.iter().enumerate() {
        match runs.last_mut() {
            Some(r) if r.2 == x0 && r.3 == x1 => r.1 = x + 1,
            _ => runs.push((x, x + 1, x0, x1)),
        }
    }
    out.axis_iter_mut(Axis(0))
        .into_par_iter()
        .enumerate()
        .for_each(|(y, mut row)| {
            let (y0, y1, fy) = at(y, ch);
            let (r0, r1) = (grid.row(y0), grid.row(y1));
            let Some(row) = row.as_slice_mut() else {
                return;
            };
            for &(s, e, x0, x1) in &runs {
                let (a, b, c, d) = (r0[x0], r0[x1], r1[x0], r1[x1]);
                for (o, &fx) in row[s..e].iter_mut().zip(&fxs[s..e]) {
                    let top = a * (1.0 - fx) + b * fx;
                    let bot = c * (1.0 - fx) + d * fx;
                    *o = top * (1.0 - fy) + bot * fy;
                }
            }
        });
}

/// Gaussian blur of a wide σ (tens of pixels and more) through a coarse grid: the plane is
/// averaged over blocks of about σ/8 pixels, blurred there with the sampled kernel of the
/// remaining variance, and interpolated back. For fields far smoother than a pixel (lighting,
/// large-scale tilt), at a small fraction of the cost of a full-resolution blur; small σ
/// falls back to [`gaussian`].
pub fn wide_gaussian(src: &ArrayView2<f32>, sigma: f32) -> Array2<f32> {
    let f = (sigma / 8.0).floor() as usize;
    if f < 2 {
        return gaussian(src, sigma);
    }
    let coarse = downsample(src, f);
    // A block mean holds the variance (f² − 1)/12 of a uniform window.
    let held = (f * f - 1) as f32 / 12.0;
    let blurred = gaussian_separable(&coarse.view(), (sigma * sigma - held).sqrt() / f as f32);
    let mut out = Array2::<f32>::zeros(src.dim());
    upsample_into(&blurred, f, (f as f32 - 1.0) / 2.0, &mut out);
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
    // Row slices (the same differences as indexing pixel by pixel, without its checks).
    let src = standard_slice(src);
    gx.axis_iter_mut(Axis(0))
        .into_par_iter()
        .zip(gy.axis_iter_mut(Axis(0)).into_par_iter())
        .enumerate()
        .for_each(|(y, (mut rx, mut ry))| {
            let row = &src[y * w..(y + 1) * w];
            let (a, b) = (y.saturating_sub(1), (y + 1).min(h - 1));
            let (above, below) = (&src[a * w..(a + 1) * w], &src[b * w..(b + 1) * w]);
            let dy = (b - a) as f32;
            if let (Some(rx), Some(ry)) = (rx.as_slice_mut(), ry.as_slice_mut()) {
                rx[0] = (row[1] - row[0]) / 1.0;
                for x in 1..w - 1 {
                    rx[x] = (row[x + 1] - row[x - 1]) / 2.0;
                }
                rx[w - 1] = (row[w - 1] - row[w - 2]) / 1.0;
                for ((g, p), m) in ry.iter_mut().zip(below).zip(above) {
                    *g = (p - m) / dy;
                }
            }
        });
    (gx, gy)
}

/// Binary dilation by a square of half-width `r` (separable running OR).
pub(crate) fn dilate(m: &Array2<bool>, r: usize) -> Array2<bool> {
    let (h, w) = m.dim();
    let mut rows = Array2::<bool>::default((h, w));
    let mut line = Vec::with_capacity(w.max(h));
    for (src, mut dst) in m.rows().into_iter().zip(rows.rows_mut()) {
        line.clear();
        line.extend(src.iter().copied());
        dilate_line(&line, r, |x, v| dst[x] = v);
    }
    let mut out = Array2::<bool>::default((h, w));
    for (src, mut dst) in rows.columns().into_iter().zip(out.columns_mut()) {
        line.clear();
        line.extend(src.iter().copied());
        dilate_line(&line, r, |y, v| dst[y] = v);
    }
    out
}

/// One line of [`dilate`]: `set(i, any of line[i − r ..= i + r])`, from a running count of the
/// set values in the window.
fn dilate_line(line: &[bool], r: usize, mut set: impl FnMut(usize, bool)) {
    let n = line.len();
    // Set values in [0, r) before the first output.
    let mut count = line[..r.min(n)].iter().filter(|&&v| v).count();
    for i in 0..n {
        if let Some(&v) = line.get(i + r) {
            count += usize::from(v);
        }
        if i > r {
            count -= usize::from(line[i - r - 1]);
        }
        set(i, count > 0);
    }
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
    select_total(&mut values[..n], n / 2)
}

/// The `k`-th smallest (from 0) of `v` in [`f32::total_cmp`] order: the value
/// `select_nth_unstable_by(k, total_cmp)` would put at `k`, found by counting the high 16 bits
/// of an order-preserving key and selecting within the one bucket that holds it. Small samples
/// use the selection directly. `k` must be below `v.len()`.
fn select_total(v: &mut [f32], k: usize) -> f32 {
    const SMALL: usize = 8192;
    if v.len() <= SMALL {
        let (_, m, _) = v.select_nth_unstable_by(k, |a, b| a.total_cmp(b));
        return *m;
    }
    // Unsigned order of the key is total_cmp's order.
    let key = |x: f32| {
        let b = x.to_bits();
        if b >> 31 == 1 {
            !b
        } else {
            b | 0x8000_0000
        }
    };
    // The bucket of `pos` in a histogram (its index, and `pos` within it).
    let find = |hist: &[u32], pos: usize| {
        let mut below = 0usize;
        for (i, &c) in hist.iter().enumerate() {
            if below + c as usize > pos {
                return (i as u32, pos - below);
            }
            below += c as usize;
        }
        (hist.len() as u32 - 1, 0)
    };
    // Count the high 16 bits of the keys, then select among the values of the bucket that
    // holds rank k (few, as the bucket spans 1/128 of an octave).
    let mut hist = vec![0u32; 1 << 16];
    for &x in v.iter() {
        hist[(key(x) >> 16) as usize] += 1;
    }
    let (high, k) = find(&hist, k);
    let mut bucket: Vec<f32> = v
        .iter()
        .copied()
        .filter(|&x| key(x) >> 16 == high)
        .collect();
    let (_, m, _) = bucket.select_nth_unstable_by(k, |a, b| a.total_cmp(b));
    let kx = key(*m);
    f32::from_bits(if kx >> 31 == 1 { kx & 0x7fff_ffff } else { !kx })
}

/// Bilinear sample of `z` at (x, y); None outside the grid.
pub(crate) fn bilinear(z: &ArrayView2<f32>, x: f64, y: f64) -> Option<f64> {
    let (h, w) = z.dim();
    if !(x >= 0.0 && y >= 0.0 && x <= (w - 1) as f64 && y <= (h - 1) as f64) {
        return None;
    }
    let (x0, y0) = (x.floor() as usize, y.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
    let (fx, fy) = (x - x0 as f64, y - y0 as f64);
    let v = |yy: usize, xx: usize| z[[yy, xx]] as f64;
    Some(
        (1.0 - fy) * ((1.0 - fx) * v(y0, x0) + fx * v(y0, x1))
            + fy * ((1.0 - fx) * v(y1, x0) + fx * v(y1, x1)),
    )
}

/// Robust location and scale (median, 1.4826·MAD) of a plane, from a strided subsample so the
/// cost stays small on large photos.
pub fn robust_stats(src: &ArrayView2<f32>) -> (f32, f32) {
    let mut v = robust_sample(src);
    let med = median(&mut v);
    // The deviations, in place: the median does not depend on their order.
    v.iter_mut().for_each(|x| *x = (*x - med).abs());
    let mad = median(&mut v);
    (med, 1.4826 * mad)
}

/// The location of [`robust_stats`] alone (the same value), without the cost of the scale.
pub fn robust_median(src: &ArrayView2<f32>) -> f32 {
    median(&mut robust_sample(src))
}

/// The strided subsample [`robust_stats`] works on.
fn robust_sample(src: &ArrayView2<f32>) -> Vec<f32> {
    let n = src.len();
    let step = (n / 100_000).max(1);
    match src.as_slice() {
        Some(s) if step == 1 => s.to_vec(),
        Some(s) => s.iter().step_by(step).copied().collect(),
        None => src.iter().step_by(step).copied().collect(),
    }
}

/// Grey-level erosion (`max == false`) or dilation (`max == true`) with a square of side
/// `2 r + 1`, done separably (rows, then columns); borders use the pixels that exist.
pub fn rank_square(src: &ArrayView2<f32>, r: usize, max: bool) -> Array2<f32> {
    if max {
        rank_square_of::<true>(src, r)
    } else {
        rank_square_of::<false>(src, r)
    }
}

/// [`rank_square`] for one rank, so the inner loops vectorise. Each output takes its window's
/// values in increasing index order, starting from the first (as a fold would).
fn rank_square_of<const MAX: bool>(src: &ArrayView2<f32>, r: usize) -> Array2<f32> {
    let pick = |a: f32, b: f32| if MAX { a.max(b) } else { a.min(b) };
    let (h, w) = src.dim();
    let mut out = Array2::<f32>::zeros((h, w));
    if h == 0 || w == 0 {
        return out;
    }
    let src = standard_slice(src);
    let mut rows = vec![0f32; h * w];
    rows.par_chunks_mut(w)
        .zip(src.par_chunks(w))
        .for_each(|(out, inp)| {
            let edge = |x: usize| {
                let (a, b) = (x.saturating_sub(r), (x + r).min(w - 1));
                inp[a..=b].iter().fold(inp[a], |m, v| pick(m, *v))
            };
            if w > 2 * r {
                // Interior outputs x in r..w-r: window x-r..=x+r, taken a tap at a time across
                // the row.
                let inner = &mut out[r..w - r];
                inner.copy_from_slice(&inp[..w - 2 * r]);
                for j in 0..=2 * r {
                    for (o, v) in inner.iter_mut().zip(&inp[j..j + w - 2 * r]) {
                        *o = pick(*o, *v);
                    }
                }
                for x in (0..r).chain(w - r..w) {
                    out[x] = edge(x);
                }
            } else {
                for (x, o) in out.iter_mut().enumerate() {
                    *o = edge(x);
                }
            }
        });
    if let Some(out_s) = out.as_slice_mut() {
        out_s.par_chunks_mut(w).enumerate().for_each(|(y, row)| {
            let (a, b) = (y.saturating_sub(r), (y + r).min(h - 1));
            row.copy_from_slice(&rows[a * w..(a + 1) * w]);
            for k in a + 1..=b {
                for (o, v) in row.iter_mut().zip(&rows[k * w..(k + 1) * w]) {
                    *o = pick(*o, *v);
                }
            }
        });
    }
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

    #[test]
    fn dilation_matches_its_definition() {
        for (h, w) in [(1, 1), (7, 13), (20, 9)] {
            let m = Array2::from_shape_fn((h, w), |(y, x)| (x * 7 + y * 13 + x * y) % 11 == 0);
            for r in [0, 1, 2, 5, 30] {
                let d = dilate(&m, r);
                for ((y, x), &v) in d.indexed_iter() {
                    let want = (y.saturating_sub(r)..=(y + r).min(h - 1))
                        .any(|yy| (x.saturating_sub(r)..=(x + r).min(w - 1)).any(|xx| m[[yy, xx]]));
                    assert_eq!(v, want, "{h}x{w} r {r} at ({y}, {x})");
                }
            }
        }
    }

    #[test]
    fn gradient_is_the_central_difference_and_one_sided_at_borders() {
        for (h, w) in [(2, 2), (3, 5), (17, 40)] {
            let a = Array2::from_shape_fn((h, w), |(y, x)| ((y * 37 + x * 11) % 23) as f32 * 0.3);
            let (gx, gy) = gradient(&a.view());
            for y in 0..h {
                for x in 0..w {
                    let (l, r) = (x.saturating_sub(1), (x + 1).min(w - 1));
                    let (u, d) = (y.saturating_sub(1), (y + 1).min(h - 1));
                    assert_eq!(gx[[y, x]], (a[[y, r]] - a[[y, l]]) / (r - l) as f32);
                    assert_eq!(gy[[y, x]], (a[[d, x]] - a[[u, x]]) / (d - u) as f32);
                }
            }
        }
    }

    #[test]
    fn counting_selection_matches_a_comparison_selection() {
        // Large enough for the counting path; repeated values, signed zeros, both signs,
        // infinities and tiny magnitudes, as total_cmp orders them.
        let mut state = 12345u64;
        let mut v: Vec<f32> = (0..50_000)
            .map(|i| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let u = (state >> 40) as f32 / (1u64 << 24) as f32;
                match i % 11 {
                    0 => 0.0,
                    1 => -0.0,
                    2 => f32::INFINITY,
                    3 => -1e-30 * u,
                    4 => (u * 8.0).round() - 4.0,
                    _ => (u - 0.4) * 3.0,
                }
            })
            .collect();
        for k in [0, 1, 777, 25_000, 31_234, 49_999] {
            let mut a = v.clone();
            let (_, want, _) = a.select_nth_unstable_by(k, |x, y| x.total_cmp(y));
            let got = select_total(&mut v, k);
            assert_eq!(got.to_bits(), want.to_bits(), "k = {k}");
        }
    }
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
