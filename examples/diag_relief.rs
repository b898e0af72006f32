//! Development aid: compare the recovered relief with the phantom's true height field.
//! `cargo run --release --example diag_relief SEED PPM EL` (env NOSCARS=1, MEL=…, PIG=…;
//! the rendering: NOISE=… sensor noise, JPQ=… JPEG quality, SSS=… sub-surface blur mm,
//! SPEC=… sheen, FALL=… fall-off; the analysis: CS=… chroma smoothing mm, NOPIGW=1 no pigment
//! removal, AMB=… ambient, EPS=… integration ε)
mod common;
use common::save;
use ndarray::Array2;
use scarscope::filters::{gaussian, robust_stats};
use scarscope::intrinsics::separate;
use scarscope::load::{load_bytes, LoadLimits};
use scarscope::normalize::normalize;
use scarscope::phantom::{Subject, SubjectConfig};
use scarscope::relief::{relief, ReliefParams};
use std::path::Path;

fn dog(a: &Array2<f32>, s: f32) -> Array2<f32> {
    let c = gaussian(&a.view(), s);
    let o = gaussian(&a.view(), 2.5 * s);
    &o - &c
}
fn corr(a: &Array2<f32>, b: &Array2<f32>) -> f64 {
    let n = a.len() as f64;
    let ma = a.iter().map(|v| *v as f64).sum::<f64>() / n;
    let mb = b.iter().map(|v| *v as f64).sum::<f64>() / n;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b.iter()) {
        let (x, y) = (*x as f64 - ma, *y as f64 - mb);
        sab += x * y;
        saa += x * x;
        sbb += y * y;
    }
    sab / (saa * sbb).sqrt()
}
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let i: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let ppm: f64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10.0);
    let el: f64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(40.0);
    let env = |k: &str| std::env::var(k).ok().and_then(|s| s.parse::<f64>().ok());
    let cfg = SubjectConfig {
        width: 900,
        height: 700,
        px_per_mm: ppm,
        n_scars: 25,
        sessions: 1,
        light_elevation_deg: Some(el),
        pigment: env("PIG").unwrap_or(1.0),
        scars: std::env::var("NOSCARS").is_err(),
        skin_melanin: env("MEL"),
        ..Default::default()
    };
    let mut s = Subject::generate("x", 1000 + i, &cfg);
    if let Some(v) = env("NOISE") {
        s.sessions[0].noise = v;
    }
    if let Some(v) = env("JPQ") {
        s.sessions[0].jpeg_quality = v as u8;
    }
    if let Some(v) = env("SSS") {
        s.sessions[0].sss_mm = v;
    }
    if let Some(v) = env("SPEC") {
        s.sessions[0].specular = v;
    }
    if let Some(v) = env("FALL") {
        s.sessions[0].falloff = v;
    }
    println!("session {:?}", s.sessions[0]);
    let jpg = s.render_jpeg(0);
    let truth = s.truth(0, "v");
    let img = load_bytes(&jpg, Path::new("x.jpg"), &LoadLimits::default()).unwrap();
    let mm = truth.mm_per_px;
    let factor = ((0.1 / mm).floor() as usize).max(1);
    let unit = mm * factor as f64;
    let n = normalize(&img.planes, factor, (8.0 / unit) as f32);
    let intr = separate(&n, (env("CS").unwrap_or(0.15) / unit).max(1.0) as f32);
    let mut shading = intr.shading.clone();
    if std::env::var("NOPIGW").is_ok() {
        let cs = (0.15 / unit).max(1.0) as f32;
        let c1 = gaussian(&(&n.od[0] - &n.od[1]).view(), cs);
        let c2 = gaussian(&(&n.od[1] - &n.od[2]).view(), cs);
        let [w1, w2] = intr.pigment_weights;
        ndarray::Zip::from(&mut shading)
            .and(&c1)
            .and(&c2)
            .for_each(|s, a, b| *s += w1 * a + w2 * b);
        println!("weights {:?} removed", intr.pigment_weights);
    }
    let rel = relief(
        &shading.view(),
        truth.light.azimuth_deg,
        truth.light.elevation_deg,
        unit,
        &ReliefParams {
            ambient: env("AMB").unwrap_or(0.1),
            epsilon: env("EPS").unwrap_or(0.03),
            ..Default::default()
        },
    );
    let (h, w) = rel.height.dim();
    let f = factor as f64;
    let tz = Array2::from_shape_fn((h, w), |(y, x)| {
        let cx = (x as f64 * f + (f - 1.0) / 2.0) * mm;
        let cy = (y as f64 * f + (f - 1.0) / 2.0) * mm;
        s.height(0, cx, cy) as f32
    });
    let hz = Array2::from_shape_fn((h, w), |(y, x)| {
        let cx = (x as f64 * f + (f - 1.0) / 2.0) * mm;
        let cy = (y as f64 * f + (f - 1.0) / 2.0) * mm;
        s.healthy_height(cx, cy) as f32
    });
    println!("factor {factor} unit {unit} light {:?}", truth.light);
    for smm in [0.2f32, 0.45, 1.0, 2.25] {
        let sp = smm / unit as f32;
        let dt = dog(&tz, sp);
        let dh = dog(&hz, sp);
        let dr = dog(&rel.height, sp);
        let m = ((7.5 * sp) as usize).min(h / 3);
        let crop = |a: &Array2<f32>| a.slice(ndarray::s![m..h - m, m..w - m]).to_owned();
        let (dt, dh, dr) = (crop(&dt), crop(&dh), crop(&dr));
        let mut err = &dr - &dt;
        let (me, _) = robust_stats(&err.view());
        err.mapv_inplace(|v| v - me);
        let (_, sd_t) = robust_stats(&dt.view());
        let (_, sd_h) = robust_stats(&dh.view());
        let (_, sd_e) = robust_stats(&err.view());
        let (_, sd_r) = robust_stats(&dr.view());
        let maxe = err.iter().fold(0f32, |m, v| m.max(v.abs()));
        println!(
            "scale {smm:.2} mm: corr {:.3} sd true {sd_t:.4} healthy {sd_h:.4} recovered {sd_r:.4} err {sd_e:.4} max|err| {maxe:.3}",
            corr(&dr, &dt)
        );
        if (smm - 2.25).abs() < 0.01 {
            save(&err, -0.05, 0.05, "/tmp/diag_err1.png");
            save(&dt, -0.1, 0.3, "/tmp/diag_true1.png");
            save(&dr, -0.1, 0.3, "/tmp/diag_rec1.png");
        }
    }
    save(&intr.shading, -0.3, 0.3, "/tmp/diag_shading.png");
    // Side-by-side crops (true | recovered) around the first scars, each with its own range.
    let mut tiles = Vec::new();
    for t in truth.scars.iter().take(8) {
        let r = ((0.9 * t.equivalent_diameter_mm / unit) as usize).max(12);
        let (cx, cy) = (
            (t.centroid_px[0] / f) as usize,
            (t.centroid_px[1] / f) as usize,
        );
        if cx < r || cy < r || cx + r >= w || cy + r >= h {
            continue;
        }
        let sl = ndarray::s![cy - r..cy + r, cx - r..cx + r];
        let a = tz.slice(sl).to_owned();
        let b = rel.height.slice(sl).to_owned();
        let norm = |m: &Array2<f32>| {
            let lo = m.iter().fold(f32::MAX, |x, v| x.min(*v));
            let hi = m.iter().fold(f32::MIN, |x, v| x.max(*v));
            m.mapv(|v| (v - lo) / (hi - lo).max(1e-6))
        };
        // Row profiles through the centre along x, printed for the record.
        let ta = norm(&a);
        let tb = norm(&b);
        println!(
            "scar {} {:?} d {:.2} depth {:.2}: true min {:.3} rec min {:.3}",
            t.id,
            t.kind,
            t.equivalent_diameter_mm,
            t.depth_mm,
            a[[r, r]] - (a[[r, 0]] + a[[r, 2 * r - 1]]) / 2.0,
            b[[r, r]] - (b[[r, 0]] + b[[r, 2 * r - 1]]) / 2.0
        );
        tiles.push((ta, tb));
        // Radial profiles (mean per 0.1 mm ring) relative to the ring at 1.2–1.6 radii.
        let rad = 0.5 * t.equivalent_diameter_mm / unit;
        let n = (2.0 * rad) as usize + 2;
        let (mut pa, mut pb, mut cnt) = (vec![0f64; n], vec![0f64; n], vec![0f64; n]);
        for y in 0..2 * r {
            for x in 0..2 * r {
                let d = ((x as f64 - r as f64).powi(2) + (y as f64 - r as f64).powi(2)).sqrt();
                let k = d as usize;
                if k < n {
                    pa[k] += a[[y, x]] as f64;
                    pb[k] += b[[y, x]] as f64;
                    cnt[k] += 1.0;
                }
            }
        }
        let lo = (1.2 * rad) as usize;
        let base = |p: &Vec<f64>| {
            let v: Vec<f64> = (lo.min(n - 1)..n).map(|k| p[k] / cnt[k].max(1.0)).collect();
            v.iter().sum::<f64>() / v.len().max(1) as f64
        };
        let (ba, bb) = (base(&pa), base(&pb));
        let da: Vec<f64> = (0..n).map(|k| ba - pa[k] / cnt[k].max(1.0)).collect();
        let db: Vec<f64> = (0..n).map(|k| bb - pb[k] / cnt[k].max(1.0)).collect();
        let (ma, mb) = (
            da.iter().cloned().fold(0.0, f64::max),
            db.iter().cloned().fold(0.0, f64::max),
        );
        println!(
            "  r/R : {}",
            (0..n)
                .map(|k| format!("{:5.2}", k as f64 / rad))
                .collect::<Vec<_>>()
                .join(" ")
        );
        println!(
            "  true: {}",
            da.iter()
                .map(|v| format!("{:5.2}", v / ma))
                .collect::<Vec<_>>()
                .join(" ")
        );
        println!(
            "  rec : {}",
            db.iter()
                .map(|v| format!("{:5.2}", v / mb))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    let th = 80usize;
    let mut img = image::GrayImage::new((2 * th) as u32, (th * tiles.len().max(1)) as u32);
    for (k, (a, b)) in tiles.iter().enumerate() {
        for (j, m) in [a, b].iter().enumerate() {
            let n = m.dim().0;
            for y in 0..th {
                for x in 0..th {
                    let v = m[[y * n / th, x * n / th]];
                    img.put_pixel(
                        (j * th + x) as u32,
                        (k * th + y) as u32,
                        image::Luma([(v * 255.0) as u8]),
                    );
                }
            }
        }
    }
    img.save("/tmp/diag_tiles.png").unwrap();
}
