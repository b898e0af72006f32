//! Accuracy of `analyze` on phantoms over the grid the analysis issue asks for.
//! `cargo run --release --example accuracy [N]`
use std::path::Path;

use scarscope::analyze::{analyze, AnalyzeParams, Calibration};
use scarscope::eval::{evaluate, median, spearman, ScarObs};
use scarscope::load::{load_bytes, LoadLimits};
use scarscope::phantom::{Subject, SubjectConfig};

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(12);
    let mut rows = Vec::new();
    for i in 0..n {
        let ppm = [10.0, 20.0, 40.0][i % 3];
        let el = 25.0 + 35.0 * ((i * 7) % 11) as f64 / 10.0;
        let mel = [0.08, 0.6, 1.2, 2.0][(i / 3) % 4];
        let cfg = SubjectConfig {
            width: 900,
            height: 700,
            px_per_mm: ppm,
            n_scars: 25,
            sessions: 1,
            light_elevation_deg: Some(el),
            skin_melanin: Some(mel),
            scars: std::env::var("NOSCARS").is_err(),
            ..Default::default()
        };
        let s = Subject::generate("x", 1000 + i as u64, &cfg);
        let jpg = s.render_jpeg(0);
        let truth = s.truth(0, "v");
        let img = load_bytes(&jpg, Path::new("x.jpg"), &LoadLimits::default()).unwrap();
        for given in [true, false] {
            let p = AnalyzeParams {
                calibration: Calibration {
                    mm_per_px: Some(truth.mm_per_px),
                    source: "truth".into(),
                },
                light_azimuth_deg: given.then_some(truth.light.azimuth_deg),
                light_elevation_deg: given.then_some(truth.light.elevation_deg),
                ..Default::default()
            };
            let a = analyze(&img.planes, &p).unwrap();
            let obs: Vec<ScarObs> = a
                .scars
                .iter()
                .map(|s| ScarObs {
                    centroid_px: s.centroid_px,
                    area_mm2: s.area_mm2,
                    depth_mm: s.depth_mm,
                    kind: s.kind,
                })
                .collect();
            let e = evaluate(&truth, &obs, 1.0);
            let az_err =
                ((a.light.azimuth_deg - truth.light.azimuth_deg + 540.0).rem_euclid(360.0) - 180.0)
                    .abs();
            println!("case {i:2} ppm {ppm:2} el {el:4.1} mel {mel:.2} given {given:5}: true {:2} found {:2} tp {:2} P {:.2} R {:.2} F1 {:.2} area {:.2} depth {:.2} bias {:+.2} rho {:.2} type {:.2} fp/10cm2 {:.2} az_err {az_err:5.1} conf {:.2} noise {:.3} thr {:.3}",
                e.n_true, a.scars.len(), e.true_positives, e.precision, e.recall, e.f1,
                e.median_rel_area_error.unwrap_or(f64::NAN), e.median_rel_depth_error.unwrap_or(f64::NAN), e.median_depth_bias.unwrap_or(f64::NAN),
                e.depth_spearman.unwrap_or(f64::NAN), e.type_accuracy.unwrap_or(f64::NAN), e.false_positives_per_10cm2, a.light.confidence, a.processing.depth_noise_mm, a.processing.depth_threshold_mm);
            rows.push((given, e, az_err));
        }
    }
    for given in [true, false] {
        let r: Vec<_> = rows.iter().filter(|r| r.0 == given).collect();
        let tp: usize = r.iter().map(|x| x.1.true_positives).sum();
        let nt: usize = r.iter().map(|x| x.1.n_true).sum();
        let nd: usize = r.iter().map(|x| x.1.n_detected).sum();
        let p = tp as f64 / nd as f64;
        let rc = tp as f64 / nt as f64;
        let mut area: Vec<f64> = r.iter().filter_map(|x| x.1.median_rel_area_error).collect();
        let mut dep: Vec<f64> = r
            .iter()
            .filter_map(|x| x.1.median_rel_depth_error)
            .collect();
        let mut rho: Vec<f64> = r.iter().filter_map(|x| x.1.depth_spearman).collect();
        let mut ty: Vec<f64> = r.iter().filter_map(|x| x.1.type_accuracy).collect();
        let az_ok = r.iter().filter(|x| x.2 <= 15.0).count() as f64 / r.len() as f64;
        println!("given {given}: pooled P {p:.3} R {rc:.3} F1 {:.3}; median of per-photo: area {:.3} depth {:.3} rho {:.3} type {:.3}; az within 15°: {az_ok:.2}",
            2.0 * p * rc / (p + rc), median(&mut area).unwrap_or(f64::NAN), median(&mut dep).unwrap_or(f64::NAN), median(&mut rho).unwrap_or(f64::NAN), median(&mut ty).unwrap_or(f64::NAN));
    }
    let _ = spearman;
}
