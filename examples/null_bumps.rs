//! Development aid: what sets the seed threshold of one grid photo? `cargo run --release
//! --example null_bumps [CASE]` analyses grid case CASE (900 × 700, light given) and prints the
//! seed SNR the mirror null chose, the strongest bump cores of the null sample with the
//! distance and bearing (degrees, screen convention like the light's azimuth) from the nearest
//! true scar, and for every true scar its best depression SNR within its radius and whether it
//! was labelled. `PROFILE=1` also prints, for each icepick, the relief, the true height and the
//! shading along the light through its centre (light side first, steps of half a radius).
use scarscope::analyze::analyze_keeping_relief;
use scarscope::eval::{grid_config, grid_subject};
use scarscope::load::{load_bytes, LoadLimits};
use scarscope::phantom::ScarType;

fn main() {
    let i: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(6);
    let cfg = grid_config(i, true, 900, 700);
    let s = grid_subject(i, &cfg);
    let truth = s.truth(0, "cheek");
    let img = load_bytes(
        &s.render_jpeg(0),
        std::path::Path::new("grid.jpg"),
        &LoadLimits::default(),
    )
    .expect("phantom photo decodes");
    let p = scarscope::eval::phantom_params(&truth, true);
    let (a, r) = analyze_keeping_relief(&img.planes, &p).expect("phantom photo analyses");
    let f = a.processing.factor as f64;
    let unit = a.processing.mm_per_px;
    let reg = &a.regions;
    println!(
        "case {i}: seed SNR {:.2}, light azimuth {:.1}°, elevation {:.1}°",
        reg.seed_snr, truth.light.azimuth_deg, truth.light.elevation_deg
    );
    let mut bumps = reg.bumps.clone();
    bumps.sort_by(|a, b| b.1.total_cmp(&a.1));
    for ((bx, by), v) in bumps.iter().take(12) {
        let (bx, by) = (*bx as f64 * f, *by as f64 * f);
        let near = truth.scars.iter().min_by(|p, q| {
            let d = |t: &scarscope::phantom::TruthScar| {
                (t.centroid_px[0] - bx).hypot(t.centroid_px[1] - by)
            };
            d(p).total_cmp(&d(q))
        });
        if let Some(t) = near {
            let (dx, dy) = (bx - t.centroid_px[0], t.centroid_px[1] - by);
            println!(
                "bump SNR {v:5.2}: {:.2} mm from true {} ({:.2} mm wide), bearing {:.0}° from it",
                dx.hypot(dy) * truth.mm_per_px,
                t.kind.as_str(),
                t.equivalent_diameter_mm,
                dy.atan2(dx).to_degrees()
            );
        }
    }
    let (h, w) = reg.snr.dim();
    let az = truth.light.azimuth_deg.to_radians();
    // Towards the light in image axes (y down).
    let (ux, uy) = (az.cos(), -az.sin());
    for t in &truth.scars {
        let (cx, cy) = (t.centroid_px[0] / f, t.centroid_px[1] / f);
        let rad = (t.equivalent_diameter_mm / 2.0 / unit).max(1.0);
        let (mut best, mut lab) = (f32::MIN, 0);
        for y in ((cy - rad).max(0.0) as usize)..((cy + rad) as usize).min(h) {
            for x in ((cx - rad).max(0.0) as usize)..((cx + rad) as usize).min(w) {
                if (x as f64 - cx).hypot(y as f64 - cy) <= rad {
                    best = best.max(reg.snr[[y, x]]);
                    lab = lab.max(reg.labels[[y, x]]);
                }
            }
        }
        println!(
            "{:8} {:.2} mm wide, {:.3} mm deep: best SNR {best:5.2}, {}",
            t.kind.as_str(),
            t.equivalent_diameter_mm,
            t.depth_mm,
            if lab > 0 { "found" } else { "missed" }
        );
        if std::env::var("PROFILE").is_ok() && t.kind == ScarType::Icepick {
            let (mut rec, mut tru, mut shd) = (String::new(), String::new(), String::new());
            for k in -12..=12 {
                let k = -(k as f64) * 0.5 * rad;
                let (x, y) = (cx + k * ux, cy + k * uy);
                let (xi, yi) = (x.round(), y.round());
                if xi < 0.0 || yi < 0.0 || xi as usize >= w || yi as usize >= h {
                    continue;
                }
                let (xi, yi) = (xi as usize, yi as usize);
                rec += &format!("{:6.2}", r.height[[yi, xi]]);
                tru += &format!("{:6.2}", s.height(0, x * unit, y * unit));
                shd += &format!("{:6.2}", a.intrinsics.shading[[yi, xi]]);
            }
            println!("  relief  {rec}\n  true    {tru}\n  shading {shd}");
        }
    }
}
