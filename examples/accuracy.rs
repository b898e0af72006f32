//! Accuracy of `analyze` on the phantom grid of the analysis issue, case by case, pooled, and
//! broken down by scar type and light elevation (measured / true depth and area, light given).
//! `cargo run --release --example accuracy [N]` (env NOSCARS=1: pigment-only phantoms;
//! SHADOWS=1: the phantom's skin casts shadows on itself; ONLY=i: case i alone; SAVE=DIR: each
//! case's photo and truth written to DIR/g{i}.jpg and DIR/g{i}.truth.json).
use scarscope::eval::{
    grid_case_with, grid_config, grid_subject, median, summarize_grid, GridCase, MatchedPair,
};
use scarscope::measure::ScarType;
use scarscope::phantom::SubjectConfig;

fn ratios(pairs: &[&MatchedPair], f: fn(&MatchedPair) -> Option<f64>) -> String {
    let mut v: Vec<f64> = pairs.iter().filter_map(|p| f(p)).collect();
    v.sort_by(f64::total_cmp);
    match median(&mut v.clone()) {
        Some(m) => format!(
            "median {m:.2} (quartiles {:.2}–{:.2})",
            v[v.len() / 4],
            v[(3 * v.len() / 4).min(v.len() - 1)]
        ),
        None => "-".into(),
    }
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(12);
    let scars = std::env::var("NOSCARS").is_err();
    let shadows = std::env::var("SHADOWS").is_ok();
    let mut cases: Vec<GridCase> = Vec::new();
    let only: Option<usize> = std::env::var("ONLY").ok().and_then(|v| v.parse().ok());
    for i in 0..n {
        if only.is_some_and(|o| o != i) {
            continue;
        }
        let cfg = SubjectConfig {
            cast_shadows: shadows,
            ..grid_config(i, scars, 900, 700)
        };
        if let Ok(dir) = std::env::var("SAVE") {
            let subject = grid_subject(i, &cfg);
            let truth = subject.truth(0, "cheek");
            std::fs::write(format!("{dir}/g{i}.jpg"), subject.render_jpeg(0)).expect("writes");
            std::fs::write(
                format!("{dir}/g{i}.truth.json"),
                serde_json::to_string(&truth).expect("serialises"),
            )
            .expect("writes");
        }
        for c in grid_case_with(i, &cfg).expect("phantom photo analyses") {
            let e = &c.scores;
            let f = |v: Option<f64>| v.map_or("  -  ".into(), |v| format!("{v:5.2}"));
            println!(
                "case {:2} {:2} px/mm el {:4.1} az {:5.1} melanin {:.2} given {:5}: true {:2} tp {:2} P {:.2} R {:.2} F1 {:.2} area {} depth {} bias {} rho {} type {} fp {:2} az_err {:5.1}",
                c.index, c.px_per_mm, c.elevation_deg, c.azimuth_deg, c.skin_melanin, c.light_given,
                e.n_true, e.true_positives, e.precision, e.recall, e.f1,
                f(e.median_rel_area_error), f(e.median_rel_depth_error), f(e.median_depth_bias),
                f(e.depth_spearman), f(e.type_accuracy), c.false_positives, c.azimuth_error_deg
            );
            if std::env::var("DUMP").is_ok() {
                for p in &c.pairs {
                    eprintln!(
                        "PAIR {} {} {:.0} {:.2} {} {:.2} {:.3} {:.3} {:.2} {:.2} {}",
                        c.index,
                        c.light_given,
                        c.px_per_mm,
                        c.skin_melanin,
                        p.kind.as_str(),
                        c.elevation_deg,
                        p.depth_mm,
                        p.measured_depth_mm.unwrap_or(f64::NAN),
                        p.area_mm2,
                        p.measured_area_mm2.unwrap_or(f64::NAN),
                        p.measured_kind.as_str()
                    );
                }
            }
            cases.push(c);
        }
    }
    for given in [true, false] {
        let c: Vec<&GridCase> = cases.iter().filter(|c| c.light_given == given).collect();
        println!("light given {given}: {:?}", summarize_grid(&c));
    }
    // Detection by resolution and by light elevation (the grid's hard corners).
    for given in [true, false] {
        type Select = Box<dyn Fn(&GridCase) -> bool>;
        let groups: [(&str, Select); 6] = [
            ("10 px/mm", Box::new(|c| c.px_per_mm == 10.0)),
            ("20 px/mm", Box::new(|c| c.px_per_mm == 20.0)),
            ("40 px/mm", Box::new(|c| c.px_per_mm == 40.0)),
            ("el 25–37°", Box::new(|c| c.elevation_deg < 37.0)),
            (
                "el 37–48°",
                Box::new(|c| (37.0..48.0).contains(&c.elevation_deg)),
            ),
            ("el 48–60°", Box::new(|c| c.elevation_deg >= 48.0)),
        ];
        for (name, sel) in &groups {
            let c: Vec<&GridCase> = cases
                .iter()
                .filter(|c| c.light_given == given && sel(c))
                .collect();
            let g = summarize_grid(&c);
            println!(
                "by {name:9} given {given:5}: photos {:2} P {:.2} R {:.2} F1 {:.2} area {:.2} depth {:.2} rho {:.2}",
                c.len(), g.precision, g.recall, g.f1, g.area_error, g.depth_error, g.depth_spearman
            );
        }
    }
    // Where the errors come from: measured / true, by type and by light elevation.
    let depth = |p: &MatchedPair| p.measured_depth_mm.map(|d| d / p.depth_mm);
    let area = |p: &MatchedPair| p.measured_area_mm2.map(|a| a / p.area_mm2);
    for kind in [ScarType::Icepick, ScarType::Boxcar, ScarType::Rolling] {
        for (lo, hi) in [(0.0, 40.0), (40.0, 90.0)] {
            let sel: Vec<&MatchedPair> = cases
                .iter()
                .filter(|c| c.light_given && c.elevation_deg >= lo && c.elevation_deg < hi)
                .flat_map(|c| c.pairs.iter())
                .filter(|p| p.kind == kind)
                .collect();
            println!(
                "{:8} elevation {lo:2}–{hi:2}°: n {:3}, depth measured/true {}, area measured/true {}",
                kind.as_str(),
                sel.len(),
                ratios(&sel, depth),
                ratios(&sel, area)
            );
        }
    }
}
