//! Accuracy of `analyze` on the phantom grid of the analysis issue, case by case and pooled.
//! `cargo run --release --example accuracy [N]` (env NOSCARS=1: pigment-only phantoms).
use scarscope::eval::{grid_case, summarize_grid, GridCase};

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(12);
    let scars = std::env::var("NOSCARS").is_err();
    let mut cases: Vec<GridCase> = Vec::new();
    for i in 0..n {
        for c in grid_case(i, scars, 900, 700).expect("phantom photo analyses") {
            let e = &c.scores;
            let f = |v: Option<f64>| v.map_or("  -  ".into(), |v| format!("{v:5.2}"));
            println!(
                "case {:2} {:2} px/mm el {:4.1} az {:5.1} melanin {:.2} given {:5}: true {:2} tp {:2} P {:.2} R {:.2} F1 {:.2} area {} depth {} bias {} rho {} type {} fp {:2} az_err {:5.1}",
                c.index, c.px_per_mm, c.elevation_deg, c.azimuth_deg, c.skin_melanin, c.light_given,
                e.n_true, e.true_positives, e.precision, e.recall, e.f1,
                f(e.median_rel_area_error), f(e.median_rel_depth_error), f(e.median_depth_bias),
                f(e.depth_spearman), f(e.type_accuracy), c.false_positives, c.azimuth_error_deg
            );
            cases.push(c);
        }
    }
    for given in [true, false] {
        let c: Vec<&GridCase> = cases.iter().filter(|c| c.light_given == given).collect();
        println!("light given {given}: {:?}", summarize_grid(&c));
    }
}
