//! Dump intermediate planes of one phantom as PNGs (development aid): shading, melanin, SNR,
//! labels and relief under /tmp/dbg_*.png. Env SHADOWS=1: the phantom casts shadows.
mod common;
use common::{save, save_maps};
use scarscope::analyze::analyze_keeping_relief;
use scarscope::load::{load_bytes, LoadLimits};
use scarscope::phantom::{Subject, SubjectConfig};
use std::path::Path;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let i: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1);
    let ppm: f64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(20.0);
    let el: f64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(40.0);
    let pig: f64 = std::env::var("PIG")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let cfg = SubjectConfig {
        width: 900,
        height: 700,
        px_per_mm: ppm,
        n_scars: 25,
        sessions: 1,
        light_elevation_deg: Some(el),
        pigment: pig,
        scars: std::env::var("NOSCARS").is_err(),
        skin_melanin: std::env::var("MEL").ok().and_then(|s| s.parse().ok()),
        light_azimuth_deg: std::env::var("AZ").ok().and_then(|s| s.parse().ok()),
        cast_shadows: std::env::var("SHADOWS").is_ok(),
        ..Default::default()
    };
    let s = Subject::generate("x", 1000 + i, &cfg);
    let jpg = s.render_jpeg(0);
    std::fs::write("/tmp/dbg_photo.jpg", &jpg).unwrap();
    let truth = s.truth(0, "v");
    let img = load_bytes(&jpg, Path::new("x.jpg"), &LoadLimits::default()).unwrap();
    let p = scarscope::eval::phantom_params(&truth, true);
    let (a, relief) = analyze_keeping_relief(&img.planes, &p).unwrap();
    {
        let n = scarscope::normalize::normalize(
            &img.planes,
            a.processing.factor,
            (8.0 / a.processing.mm_per_px) as f32,
        );
        for (y, x) in [(240usize, 290usize), (240, 270), (100, 100)] {
            let v: Vec<f32> = (0..3)
                .map(|c| {
                    let mut s = 0.0;
                    for dy in 0..5 {
                        for dx in 0..5 {
                            s += n.od[c][[y + dy - 2, x + dx - 2]];
                        }
                    }
                    s / 25.0
                })
                .collect();
            let f = a.processing.factor;
            println!(
                "raw lin at cam {},{}: {} {} {}",
                x * f,
                y * f,
                img.planes.r[[y * f, x * f]],
                img.planes.g[[y * f, x * f]],
                img.planes.b[[y * f, x * f]]
            );
            let mm = truth.mm_per_px;
            println!(
                "albedo {:?} height {:.3}",
                s.albedo((x * f) as f64 * mm, (y * f) as f64 * mm),
                s.height(0, (x * f) as f64 * mm, (y * f) as f64 * mm)
            );
            println!(
                "od at {y},{x}: {:?} shading {}",
                v,
                a.intrinsics.shading[[y, x]]
            );
        }
    }
    save_maps(&a, &relief.height, "/tmp/dbg");
    save(&a.intrinsics.melanin, -0.5, 0.5, "/tmp/dbg_melanin.png");
    save(&a.regions.snr, -2.0, 10.0, "/tmp/dbg_depth.png");
    println!(
        "seed {} bumps {} light {:?} noise {} thr {} weights {:?}",
        a.regions.seed_snr,
        a.regions.bumps.len(),
        truth.light,
        a.processing.depth_noise_mm,
        a.processing.depth_threshold_mm,
        a.intrinsics.pigment_weights
    );
    let f = a.processing.factor as f64;
    for b in &a.regions.bumps {
        println!(
            "bump at {:.0},{:.0} snr {:.1}",
            b.0 .0 as f64 * f,
            b.0 .1 as f64 * f,
            b.1
        );
    }
    for t in &truth.scars {
        let (cx, cy) = (
            (t.centroid_px[0] / f) as usize,
            (t.centroid_px[1] / f) as usize,
        );
        let r = (0.5 * t.equivalent_diameter_mm / a.processing.mm_per_px) as usize + 1;
        let mut best = f32::MIN;
        for y in cy.saturating_sub(r)..(cy + r).min(a.regions.snr.dim().0) {
            for x in cx.saturating_sub(r)..(cx + r).min(a.regions.snr.dim().1) {
                best = best.max(a.regions.snr[[y, x]]);
            }
        }
        print!("snr {best:.1} ");
        println!(
            "truth {} {:?} c {:.0},{:.0} d {:.2} depth {:.2}",
            t.id, t.kind, t.centroid_px[0], t.centroid_px[1], t.equivalent_diameter_mm, t.depth_mm
        );
    }
    for f in &a.scars {
        println!(
            "found {} {:?} c {:.0},{:.0} d {:.2} depth {:.2}",
            f.id,
            f.kind,
            f.centroid_px[0],
            f.centroid_px[1],
            f.equivalent_diameter_mm.unwrap(),
            f.depth_mm.unwrap()
        );
    }
}
#[allow(dead_code)]
fn probe() {}
