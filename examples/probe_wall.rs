//! One scar rendered with exact Lambertian shading (no noise, no texture, no pigment), put
//! through `relief()` alone: how much of the depth error is the inversion's own.
//! `cargo run --release --example probe_wall -- KIND DIAM_MM DEPTH_MM ELEVATION SUPERSAMPLE`
//! (KIND 0 icepick, 1 boxcar, 2 rolling; profiles as the phantom's). Prints the depth read
//! against a ring at 2.5–4 radii and the relief along the light through the centre.
use ndarray::Array2;
use scarscope::relief::{relief, ReliefParams};
fn main() {
    let a: Vec<f64> = std::env::args()
        .skip(1)
        .filter_map(|s| s.parse().ok())
        .collect();
    if a.len() < 5 {
        eprintln!("usage: probe_wall KIND DIAM_MM DEPTH_MM ELEVATION SUPERSAMPLE");
        std::process::exit(2);
    }
    let (kind, diam, depth, el, ss) = (a[0] as u32, a[1], a[2], a[3], a[4] as usize);
    let unit = 0.1; // mm per px
    let n = 300usize;
    let r0 = 0.5 * diam;
    let prof = |r: f64| -> f64 {
        let rho = r / r0;
        match kind {
            0 => {
                let rc = 1.0 / 0.9;
                let t = rho.hypot(0.05 * rc);
                let t0 = 0.05 * rc;
                ((rc - t) / (rc - t0)).clamp(0.0, 1.0)
            }
            1 => {
                const S: f64 = 0.055;
                let rr = 1.0 - S * 9f64.ln();
                let f = |r: f64| 1.0 / (1.0 + ((r - rr) / S).exp());
                if rho > 1.6 {
                    0.0
                } else {
                    f(rho) / f(0.0)
                }
            }
            _ => {
                if rho > 2.2 {
                    0.0
                } else {
                    (-rho * rho * std::f64::consts::LN_10).exp()
                }
            }
        }
    };
    let c = n as f64 * unit / 2.0;
    let z = |x: f64, y: f64| -depth * prof((x - c).hypot(y - c));
    let (az, e) = (30f64.to_radians(), el.to_radians());
    let l = [e.cos() * az.cos(), -e.cos() * az.sin(), e.sin()];
    let alpha = 0.1;
    let h = 1e-3;
    let shade = Array2::from_shape_fn((n, n), |(iy, ix)| {
        let mut acc = 0.0;
        for sy in 0..ss {
            for sx in 0..ss {
                let x = (ix as f64 + (sx as f64 + 0.5) / ss as f64) * unit;
                let y = (iy as f64 + (sy as f64 + 0.5) / ss as f64) * unit;
                let zx = (z(x + h, y) - z(x - h, y)) / (2.0 * h);
                let zy = (z(x, y + h) - z(x, y - h)) / (2.0 * h);
                let nn = (1.0 + zx * zx + zy * zy).sqrt();
                let ndl = (-zx * l[0] - zy * l[1] + l[2]) / nn;
                acc += ndl.max(0.0) + alpha;
            }
        }
        (-(acc / (ss * ss) as f64 / (e.sin() + alpha)).ln()) as f32
    });
    let rel = relief(&shade.view(), 30.0, el, unit, &ReliefParams::default());
    let m = n / 2;
    let ctr = rel.height[[m, m]];
    let mut ring = 0.0;
    let mut k = 0.0;
    for iy in 0..n {
        for ix in 0..n {
            let r = ((ix as f64 + 0.5) * unit - c).hypot((iy as f64 + 0.5) * unit - c);
            if r > 2.5 * r0 + 0.5 && r < 4.0 * r0 + 1.5 {
                ring += rel.height[[iy, ix]] as f64;
                k += 1.0;
            }
        }
    }
    let ring = ring / k;
    let mut mn = f32::MAX;
    for v in rel.height.iter() {
        mn = mn.min(*v);
    }
    // profile along u through the centre
    let (ux, uy) = (az.cos(), -az.sin());
    let pr: Vec<String> = (-12..=12)
        .map(|t| {
            let d = t as f64 * r0 / 4.0 / unit;
            let x = (m as f64 + d * ux) as usize;
            let y = (m as f64 + d * uy) as usize;
            format!("{:.2}", rel.height[[y, x]] as f64 - ring)
        })
        .collect();
    println!("kind {kind} diam {diam} depth {depth} el {el}: measured {:.3} (min {:.3}) ratio {:.2} shadow {:.4}\n  profile along u (−3R…3R): {}", ring - ctr as f64, ring - mn as f64, (ring - mn as f64) / depth, rel.shadow_fraction, pr.join(" "));
}
