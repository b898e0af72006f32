//! Where the single-photo depth bias comes from: `cargo run --release --example
//! depth_bias_sources [N] [EFFECTS]`. Renders the first N grid phantoms (default 12) with
//! the effects named in EFFECTS (comma-separated) switched off — `amb` (ambient light set to
//! the analysis's assumed 0.1), `sss` (subsurface scattering), `spec` (specular sheen),
//! `fall` (illumination fall-off), `noise`, `jpeg` (quality 100), `ev` (exposure error) —
//! analyses each with the light given and prints each photo's median depth bias and the
//! median log ratio of measured to true depth over all matched scars, and by true type.
use scarscope::analyze::analyze;
use scarscope::eval::{evaluate, grid_config, grid_subject, phantom_params, ScarObs};
use scarscope::load::{load_bytes, LoadLimits};

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(12);
    let off = std::env::args().nth(2).unwrap_or_default();
    let mut logs = vec![];
    let mut by_kind: std::collections::BTreeMap<&str, Vec<f64>> = Default::default();
    for i in 0..n {
        let mut s = grid_subject(i, &grid_config(i, true, 900, 700));
        let ses = &mut s.sessions[0];
        for w in off.split(',').filter(|w| !w.is_empty()) {
            match w {
                "amb" => ses.ambient = 0.1,
                "sss" => ses.sss_mm = 0.0,
                "spec" => ses.specular = 0.0,
                "fall" => ses.falloff = 0.0,
                "noise" => ses.noise = 0.0,
                "jpeg" => ses.jpeg_quality = 100,
                "ev" => ses.exposure_ev = 0.0,
                other => panic!("unknown effect {other}"),
            }
        }
        let truth = s.truth(0, "cheek");
        let img = load_bytes(
            &s.render_jpeg(0),
            std::path::Path::new("grid.jpg"),
            &LoadLimits::default(),
        )
        .expect("phantom decodes");
        let a = analyze(&img.planes, &phantom_params(&truth, true)).expect("phantom analyses");
        let obs: Vec<ScarObs> = a.scars.iter().map(ScarObs::from).collect();
        let sc = evaluate(&truth, &obs, 1.0);
        for &(tid, fi) in &sc.matches {
            let t = truth.scars.iter().find(|t| t.id == tid);
            if let (Some(t), Some(d)) = (t, obs[fi].depth_mm) {
                if d > 0.0 && t.depth_mm > 0.0 {
                    logs.push((d / t.depth_mm).ln());
                    by_kind
                        .entry(t.kind.as_str())
                        .or_default()
                        .push((d / t.depth_mm).ln());
                }
            }
        }
        println!("photo {i} median depth bias {:?}", sc.median_depth_bias);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    for (kind, v) in &mut by_kind {
        println!(
            "{kind}: scars {} median ln(measured / true depth) {:.3}",
            v.len(),
            median(v)
        );
    }
    println!(
        "TOTAL off [{off}] scars {} median ln(measured / true depth) {:.3}",
        logs.len(),
        median(&mut logs)
    );
}
