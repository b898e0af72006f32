//! Accuracy of single-photo analysis on the phantom grid of the analysis issue (12 photos:
//! 10/20/40 px/mm, light elevation 25–60°, azimuths drawn at random, skin from very light to
//! very dark, each analysed with the light given and estimated), plus pigment-only phantoms and
//! a frontally lit photo, and the same grid with the skin casting shadows on itself. Truth
//! comes from the phantom's own height field.
//!
//! `cargo run --release --example accuracy` prints the same figures case by case.

use std::sync::OnceLock;

use scarscope::analyze::{analyze, AnalyzeParams, Calibration};
use scarscope::eval::{
    evaluate, grid_case, grid_case_with, grid_config, grid_subject, summarize_grid, GridCase,
    GridSummary, ScarObs,
};
use scarscope::load::{load_bytes, LoadLimits};
use scarscope::phantom::{Subject, SubjectConfig};

const CASES: usize = 12;
const W: usize = 900;
const H: usize = 700;

fn grid(scars: bool) -> Vec<GridCase> {
    (0..CASES)
        .flat_map(|i| grid_case(i, scars, W, H).expect("phantom photo analyses"))
        .collect()
}

fn scarred() -> &'static Vec<GridCase> {
    static G: OnceLock<Vec<GridCase>> = OnceLock::new();
    G.get_or_init(|| grid(true))
}

fn summary(given: bool) -> GridSummary {
    let cases: Vec<&GridCase> = scarred()
        .iter()
        .filter(|c| c.light_given == given)
        .collect();
    let s = summarize_grid(&cases);
    eprintln!("light given {given}: {s:?}");
    s
}

#[test]
fn light_azimuth_is_estimated_within_15_degrees_on_at_least_90_percent_of_photos() {
    assert!(summary(false).azimuth_within_15 >= 0.9);
}

#[test]
fn scar_type_is_right_for_at_least_80_percent_of_found_scars() {
    for given in [true, false] {
        let s = summary(given);
        assert!(s.type_accuracy >= 0.8, "given {given}: {s:?}");
    }
}

#[test]
fn median_depth_error_is_within_30_percent_with_light_given_and_40_percent_estimated() {
    assert!(summary(true).depth_error <= 0.30);
    assert!(summary(false).depth_error <= 0.40);
}

/// The issue's targets are F1 ≥ 0.90, area error ≤ 15 % and depth Spearman ≥ 0.85. Measured
/// 2026-11-29 with the light's elevation read from the pits when not given (README, "The
/// light's elevation from the pits"), light given / estimated: F1 0.936 / 0.942, area error
/// over all matched scars 0.113 / 0.096, Spearman 0.857 / 0.861 per photo, 0.80 / 0.83
/// pooled (with 42° assumed instead, estimated: 0.851 per photo, 0.74 pooled, which the
/// pooled floor of 0.78 fails; without the pit fit 0.78 / 0.78 per photo). F1, area error
/// and the per-photo Spearman are held to the targets themselves; the pooled Spearman, which
/// the issue does not name, to a floor below its measured values.
#[test]
fn detection_area_and_depth_ranking_meet_the_targets_or_hold_their_floors() {
    for given in [true, false] {
        let s = summary(given);
        assert!(s.f1 >= 0.90, "given {given}: {s:?}");
        assert!(s.area_error_pooled <= 0.15, "given {given}: {s:?}");
        assert!(s.depth_spearman >= 0.85, "given {given}: {s:?}");
        assert!(s.depth_spearman_pooled >= 0.78, "given {given}: {s:?}");
    }
}

/// Without the light's elevation given it is read from the pits' shading (README, "The
/// light's elevation from the pits"). Measured 2026-11-29 on the 12 photos: median error
/// 3.7°, against 10.5° for the 42° that was assumed before.
#[test]
fn the_light_elevation_is_read_from_the_pits_closer_than_assuming_it() {
    let s = summary(false);
    assert!(s.elevation_error_deg <= 6.0, "{s:?}");
    assert!(
        s.elevation_error_deg <= 0.5 * s.elevation_assumed_error_deg,
        "{s:?}"
    );
}

/// Real photos and ray-traced renderings have cast shadows; the phantom draws them on request.
/// Measured 2026-11-29 with the light's elevation read from the pits when not given, light
/// given / estimated: F1 0.942 / 0.933, depth error 0.145 / 0.179, Spearman 0.876 / 0.887 per
/// photo, 0.81 / 0.81 pooled, elevation error 3.3° (median), azimuth 12/12 (before the
/// elevation was read: estimated depth error 0.35, pooled Spearman 0.75). F1 and area error
/// are held to the issue's targets, Spearman to floors below its measured values; the
/// depth-error bounds are the issue's own.
#[test]
fn with_cast_shadows_the_grid_keeps_its_measured_figures() {
    let cases: Vec<GridCase> = (0..CASES)
        .flat_map(|i| {
            let cfg = SubjectConfig {
                cast_shadows: true,
                ..grid_config(i, true, W, H)
            };
            grid_case_with(i, &cfg).expect("phantom photo analyses")
        })
        .collect();
    for given in [true, false] {
        let c: Vec<&GridCase> = cases.iter().filter(|c| c.light_given == given).collect();
        let s = summarize_grid(&c);
        eprintln!("cast shadows, light given {given}: {s:?}");
        assert!(s.f1 >= 0.90, "given {given}: {s:?}");
        assert!(s.area_error <= 0.15, "given {given}: {s:?}");
        assert!(s.depth_spearman >= 0.85, "given {given}: {s:?}");
        assert!(s.depth_spearman_pooled >= 0.78, "given {given}: {s:?}");
        let bound = if given { 0.30 } else { 0.40 };
        assert!(s.depth_error <= bound, "given {given}: {s:?}");
        assert!(s.azimuth_within_15 >= 0.9, "given {given}: {s:?}");
    }
}

#[test]
fn pigment_only_phantoms_give_at_most_one_false_scar_per_10_cm2() {
    let cases = grid(false);
    for given in [true, false] {
        let c: Vec<&GridCase> = cases.iter().filter(|c| c.light_given == given).collect();
        let s = summarize_grid(&c);
        assert!(s.false_positives_per_10cm2 <= 1.0, "given {given}: {s:?}");
    }
}

/// The phantom's first photo, rendered to JPEG, loaded and analysed at `mm_per_px` with the
/// light (azimuth, elevation in degrees) given or, when None, estimated.
fn analyze_first_photo(
    s: &Subject,
    mm_per_px: f64,
    light: Option<(f64, f64)>,
) -> scarscope::analyze::Analysis {
    let img = load_bytes(
        &s.render_jpeg(0),
        std::path::Path::new("phantom.jpg"),
        &LoadLimits::default(),
    )
    .expect("the phantom's JPEG loads");
    let p = AnalyzeParams {
        calibration: Calibration {
            mm_per_px: Some(mm_per_px),
            source: "phantom".into(),
        },
        light_azimuth_deg: light.map(|l| l.0),
        light_elevation_deg: light.map(|l| l.1),
        ..Default::default()
    };
    analyze(&img.planes, &p).expect("the phantom analyses")
}

/// Over-exposed by a stop, the darkest-skinned phantom of the grid (its camera metered on the
/// skin's green, so red, three times brighter, clips over the lit walls) clips red in 4.6 % of
/// its pixels. Read as values, the clipped reds cost most of the photo's measurement: measured
/// 2026-11-29 with clipped channels read as values, F1 0.76, depth error 0.63, Spearman 0.11,
/// type 0.50; rebuilt from green and blue (`normalize`), 0.96, 0.21, 0.66, 0.84 (at its own
/// exposure: 1.00, 0.13, 0.77, 0.90). Held to the analysis issue's bars.
#[test]
fn a_photo_over_exposed_a_stop_keeps_the_issue_bars() {
    let i = 11;
    let mut s = grid_subject(i, &grid_config(i, true, W, H));
    s.sessions[0].exposure_ev = 1.0;
    let truth = s.truth(0, "cheek");
    let a = analyze_first_photo(
        &s,
        truth.mm_per_px,
        Some((truth.light.azimuth_deg, truth.light.elevation_deg)),
    );
    assert!(
        a.warnings.iter().any(|w| w.contains("clipped")),
        "the photo clips: {:?}",
        a.warnings
    );
    let found: Vec<ScarObs> = a.scars.iter().map(ScarObs::from).collect();
    let sc = evaluate(&truth, &found, 1.0);
    eprintln!("over-exposed: {sc:?}");
    assert!(sc.f1 >= 0.90, "{sc:?}");
    assert!(
        sc.median_rel_depth_error.is_some_and(|e| e <= 0.30),
        "{sc:?}"
    );
    assert!(sc.type_accuracy.is_some_and(|t| t >= 0.80), "{sc:?}");
}

#[test]
fn a_frontally_lit_photo_gets_the_low_relief_warning() {
    let cfg = SubjectConfig {
        width: 600,
        height: 450,
        px_per_mm: 20.0,
        sessions: 1,
        light_elevation_deg: Some(88.0),
        ..Default::default()
    };
    let s = Subject::generate("frontal", 5, &cfg);
    let a = analyze_first_photo(&s, 0.05, None);
    assert!(
        a.warnings.iter().any(|w| w.contains("too little relief")),
        "warnings: {:?}",
        a.warnings
    );
}

/// A light-skinned cheek at 40 px/mm under 60° light (grid case 14 at 1800 × 1400 px, 45 ×
/// 35 mm of skin): each steep pit leaves a ridge on its light side, stronger than the pit at
/// the detection scales, and counted as texture those ridges once raised the mirror null above
/// every scar (0 of 20 found, no warning). Measured 2026-11-29 with the ridges left out of
/// the null: recall 0.95 with the light given, 0.90 estimated.
#[test]
fn under_steep_light_the_ridges_beside_pits_do_not_hide_them() {
    for c in grid_case(14, true, 1800, 1400).expect("phantom photo analyses") {
        eprintln!("light given {}: {:?}", c.light_given, c.scores);
        assert!(c.scores.recall >= 0.8, "light given {}", c.light_given);
    }
}

/// The held-back warning reaches the analysis: pigment-only grid case 9 (10 px/mm, very dark
/// skin, no depressions) has depressions at the detection floor that its own bumps match, and
/// no scar; the analysis says so rather than returning a silent "no scars" (measured
/// 2026-11-29: 1 depression held back with the light given, 2 estimated).
#[test]
fn a_photo_left_without_scars_by_the_mirror_null_says_what_it_held_back() {
    let cfg = grid_config(9, false, W, H);
    let s = scarscope::eval::grid_subject(9, &cfg);
    let truth = s.truth(0, "cheek");
    let light = (truth.light.azimuth_deg, truth.light.elevation_deg);
    let a = analyze_first_photo(&s, truth.mm_per_px, Some(light));
    assert!(a.scars.is_empty(), "{} scars", a.scars.len());
    assert!(
        a.warnings
            .iter()
            .any(|w| w.starts_with("no scar reported, but")),
        "warnings: {:?}",
        a.warnings
    );
}
