//! Tracking accuracy on phantom series: `cargo run --release --example compare_accuracy [N] [null]`.
//! N three-session subjects (900×700, 20 px/mm); `null` renders null series (no treatment).
//! Light given (truth) unless LIGHT=estimated. Renders are cached in the temp dir.
use std::path::Path;

use scarscope::analyze::{analyze, AnalyzeParams, Calibration};
use scarscope::compare::session_input;
use scarscope::eval::{evaluate_series, spearman, ScarObs, SeriesScores};
use scarscope::load::{load_bytes, LoadLimits};
use scarscope::phantom::{Subject, SubjectConfig};
use scarscope::register::{register, RegisterParams, Registration, RegistrationPlane};
use scarscope::track::{track_series, TrackParams};

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(4);
    let null = std::env::args().nth(2).is_some_and(|s| s == "null");
    let given = std::env::var("LIGHT").map_or(true, |v| v != "estimated");
    let cache = std::env::temp_dir().join("scarscope-compare-accuracy");
    std::fs::create_dir_all(&cache).unwrap();
    let rp = RegisterParams::default();
    let tp = TrackParams::default();
    let mut total = SeriesScores::default();
    for seed in 500..500 + n {
        let cfg = SubjectConfig {
            width: 900,
            height: 700,
            n_scars: 20,
            sessions: 3,
            treat: !null,
            ..Default::default()
        };
        let s = Subject::generate("c", seed, &cfg);
        let mut truths = Vec::new();
        let mut analyses = Vec::new();
        let mut regs = Vec::new();
        let mut base_plane = None;
        for k in 0..3 {
            let f = cache.join(format!("{seed}_{k}_{null}.jpg"));
            let bytes = std::fs::read(&f).unwrap_or_else(|_| {
                let b = s.render_jpeg(k);
                std::fs::write(&f, &b).unwrap();
                b
            });
            let planes = load_bytes(&bytes, Path::new("x.jpg"), &LoadLimits::default())
                .unwrap()
                .planes;
            let truth = s.truth(k, "v");
            let p = AnalyzeParams {
                calibration: Calibration {
                    mm_per_px: Some(truth.mm_per_px),
                    source: "truth".into(),
                },
                light_azimuth_deg: given.then_some(truth.light.azimuth_deg),
                light_elevation_deg: given.then_some(truth.light.elevation_deg),
                ..Default::default()
            };
            analyses.push(analyze(&planes, &p).unwrap());
            let plane = RegistrationPlane::from_planes(&planes, &rp).unwrap();
            if k == 0 {
                regs.push(Registration::identity());
                base_plane = Some(plane);
            } else {
                regs.push(register(base_plane.as_ref().unwrap(), &plane, &rp).unwrap());
            }
            truths.push(truth);
        }
        let inputs: Vec<_> = (0..3)
            .map(|k| session_input(&analyses[k], &regs[k], 900, 700))
            .collect();
        let series = track_series(&inputs, &tp);
        let found: Vec<Vec<ScarObs>> = analyses
            .iter()
            .map(|a| {
                a.scars
                    .iter()
                    .map(|s| ScarObs {
                        centroid_px: s.centroid_px,
                        area_mm2: s.area_mm2,
                        depth_mm: s.depth_mm,
                        kind: s.kind,
                    })
                    .collect()
            })
            .collect();
        let sc = evaluate_series(&truths, &found, &series);
        println!(
            "seed {seed}: dets {:?} tracks {} surviving {}/{} resolved {}/{} sign {}/{} throughout {}/{} status {:?} rho_d {:?} rho_a {:?}",
            analyses.iter().map(|a| a.scars.len()).collect::<Vec<_>>(),
            series.tracks.len(),
            sc.tracked_correctly, sc.surviving, sc.reported_resolved, sc.resolved, sc.sign_right, sc.significant,
            sc.one_track_id, sc.detected_throughout, sc.status_counts,
            spearman(&sc.depth_change_pairs).map(|v| (v * 100.0).round() / 100.0),
            spearman(&sc.area_change_pairs).map(|v| (v * 100.0).round() / 100.0),
        );
        total.surviving += sc.surviving;
        total.tracked_correctly += sc.tracked_correctly;
        total.resolved += sc.resolved;
        total.reported_resolved += sc.reported_resolved;
        total.significant += sc.significant;
        total.sign_right += sc.sign_right;
        total.detected_throughout += sc.detected_throughout;
        total.one_track_id += sc.one_track_id;
        total.depth_change_pairs.extend(sc.depth_change_pairs);
        total.area_change_pairs.extend(sc.area_change_pairs);
        for (k, v) in sc.status_counts {
            *total.status_counts.entry(k).or_default() += v;
        }
    }
    let frac = |a: usize, b: usize| if b > 0 { a as f64 / b as f64 } else { f64::NAN };
    println!(
        "TOTAL tracked {:.3} ({}/{}) resolved {:.3} ({}/{}) spearman depth {:?} area {:?} sign {:.3} ({}/{}) one-id {:.3} ({}/{}) status {:?}",
        frac(total.tracked_correctly, total.surviving), total.tracked_correctly, total.surviving,
        frac(total.reported_resolved, total.resolved), total.reported_resolved, total.resolved,
        spearman(&total.depth_change_pairs), spearman(&total.area_change_pairs),
        frac(total.sign_right, total.significant), total.sign_right, total.significant,
        frac(total.one_track_id, total.detected_throughout), total.one_track_id, total.detected_throughout,
        total.status_counts
    );
}
