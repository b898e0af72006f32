//! Development aid: relief, shading and labels of any photo as PNGs under /tmp/pm_*.png.
//! `cargo run --release --example photo_maps PHOTO MM_PER_PX [AZ EL]` (env PX, PY: print SNR /
//! relief / label on a 9×9 grid, every second processing pixel, around that pixel).
mod common;
use common::save_maps;
use scarscope::analyze::{analyze_keeping_relief, AnalyzeParams, Calibration};
use scarscope::load::{load_path, LoadLimits};
use std::path::Path;

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let mm: f64 = a[2].parse().expect("mm per px");
    let p = AnalyzeParams {
        calibration: Calibration {
            mm_per_px: Some(mm),
            source: "cli".into(),
        },
        light_azimuth_deg: a.get(3).and_then(|v| v.parse().ok()),
        light_elevation_deg: a.get(4).and_then(|v| v.parse().ok()),
        ..Default::default()
    };
    let img = load_path(Path::new(&a[1]), &LoadLimits::default()).expect("loads");
    let (r, rm) = analyze_keeping_relief(&img.planes, &p).expect("analyses");
    save_maps(&r, &rm.height, "/tmp/pm");
    println!(
        "seed snr {:.2}, noise {:.4}, {} scars",
        r.regions.seed_snr,
        r.regions.noise,
        r.scars.len()
    );
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<usize>().ok());
    if let (Some(x), Some(y)) = (env("PX"), env("PY")) {
        for yy in (y - 8..=y + 8).step_by(2) {
            let row: Vec<String> = (x - 8..=x + 8)
                .step_by(2)
                .map(|xx| {
                    format!(
                        "{:5.1}/{:+.2}/{}",
                        r.regions.snr[[yy, xx]],
                        rm.height[[yy, xx]],
                        r.regions.labels[[yy, xx]]
                    )
                })
                .collect();
            println!("{}", row.join(" "));
        }
    }
}
