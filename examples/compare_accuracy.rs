//! Tracking accuracy on phantom series: `cargo run --release --example compare_accuracy [N] [null]`.
//! N three-session subjects (900×700, 20 px/mm); `null` renders null series (no treatment).
//! Light given (truth) unless LIGHT=estimated; AMBIENT=given also gives each session's ambient
//! light from the truth (otherwise the analysis assumes its default); K=<k_sigma> overrides the status threshold;
//! SEED=<first seed> (default 500) checks other subjects; PAIRS=1 prints each tracked scar's true
//! and estimated depth change (mm) and area change (mm²), then its type, true area, id and
//! session, then (true, estimated) max depth before and after (mm) and area before and after
//! (mm²) as the change states them; `-` where one was not estimated.
use scarscope::eval::{score_phantom_series_with, spearman, SeriesScores};
use scarscope::phantom::{Subject, SubjectConfig};
use scarscope::register::RegisterParams;
use scarscope::track::TrackParams;

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(4);
    let null = std::env::args().nth(2).is_some_and(|s| s == "null");
    let given = std::env::var("LIGHT").map_or(true, |v| v != "estimated");
    let ambient_given = std::env::var("AMBIENT").is_ok_and(|v| v == "given");
    let rp = RegisterParams::default();
    let mut tp = TrackParams::default();
    if let Some(k) = std::env::var("K").ok().and_then(|v| v.parse().ok()) {
        tp.k_sigma = k;
    }
    let first: u64 = std::env::var("SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let mut total = SeriesScores::default();
    for seed in first..first + n {
        let cfg = SubjectConfig {
            width: 900,
            height: 700,
            n_scars: 20,
            sessions: 3,
            treat: !null,
            ..Default::default()
        };
        let s = Subject::generate("c", seed, &cfg);
        let sc = score_phantom_series_with(&s, given, ambient_given, &rp, &tp);
        println!(
            "seed {seed}: surviving {}/{} resolved {}/{} sign {}/{} throughout {}/{} status {:?} rho_d {:?} rho_a {:?}",
            sc.tracked_correctly, sc.surviving, sc.reported_resolved, sc.resolved, sc.sign_right, sc.significant,
            sc.one_track_id, sc.detected_throughout, sc.status_counts,
            spearman(&sc.depth_change_pairs).map(|v| (v * 100.0).round() / 100.0),
            spearman(&sc.area_change_pairs).map(|v| (v * 100.0).round() / 100.0),
        );
        if std::env::var_os("PAIRS").is_some() {
            let f = |v: Option<(f64, f64)>| {
                v.map_or("- -".to_string(), |(t, e)| format!("{t:.4} {e:.4}"))
            };
            for k in &sc.change_scars {
                let dd = k.depths.map_or("- - - -".to_string(), |[b, a]| {
                    format!("{:.4} {:.4} {:.4} {:.4}", b.0, b.1, a.0, a.1)
                });
                let aa = k.areas.map_or("- - - -".to_string(), |[b, a]| {
                    format!("{:.4} {:.4} {:.4} {:.4}", b.0, b.1, a.0, a.1)
                });
                println!(
                    "PAIR {seed} {} {} {} {:.3} id {} session {} {dd} {aa}",
                    f(k.depth_change),
                    f(k.area_change),
                    k.kind.as_str(),
                    k.area_mm2,
                    k.id,
                    k.session
                );
            }
        }
        total.add(sc);
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
