//! Development aid: where does depth error come from? For the phantom grid (light given), each
//! matched scar's depth is measured three ways: by the pipeline; by the same measurement
//! (same labels, same ring plane) on the phantom's TRUE height field at the processing grid
//! (measurement error alone); and the truth. `cargo run --release --example depth_chain [N]`
//! prints one line per scar: `CHAIN case kind ppm el diam true oracle pipeline …` (SHADOWS=1:
//! the phantom casts shadows; PMM=…: processing pixel size, mm; TILT_SHARE=…: share of the
//! skin's smooth brightness read as tilt), and at the
//! end the median log ratio of pipeline and oracle to true depth by true type (`BIAS` lines;
//! IDEAL=sss,amb,… re-renders with those camera effects switched off, see below), and the
//! median per-case depth Spearman and depth error over all matched scars and over
//! those whose steepest wall is gentler than both limits of one Lambertian image (the light's
//! elevation e, beyond which the wall turned from the light is in attached shadow, and 90° − e,
//! beyond which the wall turned towards it is past the brightest normal).
use ndarray::Array2;
use scarscope::analyze::analyze_keeping_relief;
use scarscope::eval::{evaluate, grid_config, grid_subject, ScarObs};
use scarscope::load::{load_bytes, LoadLimits};
use scarscope::measure::{measure, MeasureContext};
use scarscope::phantom::SubjectConfig;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(12);
    let first: usize = std::env::var("FIRST")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // (true, pipeline, identifiable) per case.
    let mut cases: Vec<Vec<(f64, f64, bool)>> = Vec::new();
    // ln(pipeline / true depth) and ln(oracle / true depth) per true type.
    let mut by_kind: std::collections::BTreeMap<&str, Vec<(f64, Option<f64>)>> = Default::default();
    for i in first..n {
        let mut case = Vec::new();
        let cfg = SubjectConfig {
            pigment: std::env::var("PIG")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(1.0),
            cast_shadows: std::env::var("SHADOWS").is_ok(),
            ..grid_config(i, true, 900, 700)
        };
        let (ppm, el) = (cfg.px_per_mm, cfg.light_elevation_deg.unwrap_or(f64::NAN));
        let mut s = grid_subject(i, &cfg);
        // IDEAL=noise,spec,sss,fall,jpeg,amb,ev switches those rendering effects off (amb: the
        // ambient light at the analysis's assumed 0.1; ev: no exposure error).
        let ideal_var = std::env::var("IDEAL").unwrap_or_default();
        let ideal: Vec<&str> = ideal_var.split(',').map(str::trim).collect();
        for ses in s.sessions.iter_mut() {
            if ideal.contains(&"amb") {
                ses.ambient = 0.1;
            }
            if ideal.contains(&"ev") {
                ses.exposure_ev = 0.0;
            }
            if ideal.contains(&"noise") {
                ses.noise = 0.0;
            }
            if ideal.contains(&"spec") {
                ses.specular = 0.0;
            }
            if ideal.contains(&"sss") {
                ses.sss_mm = 1e-6;
            }
            if ideal.contains(&"fall") {
                ses.falloff = 0.0;
            }
            if ideal.contains(&"jpeg") {
                ses.jpeg_quality = 100;
            }
        }
        let jpg = s.render_jpeg(0);
        let truth = s.truth(0, "cheek");
        let img = load_bytes(&jpg, std::path::Path::new("g.jpg"), &LoadLimits::default())
            .expect("phantom decodes");
        let mut p = scarscope::eval::phantom_params(&truth, true);
        if let Some(v) = std::env::var("PMM").ok().and_then(|v| v.parse().ok()) {
            p.processing_mm_per_px = v;
        }
        if let Some(v) = std::env::var("TILT_SHARE")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            p.tilt_share = v;
        }
        let (a, rm) = analyze_keeping_relief(&img.planes, &p).expect("analyses");
        let f = a.processing.factor as f64;
        let mm = truth.mm_per_px;
        let (h, w) = rm.height.dim();
        let tz = Array2::from_shape_fn((h, w), |(y, x)| {
            // Mean of the camera pixels a processing pixel covers (as the reduction does).
            let mut acc = 0.0;
            for j in 0..a.processing.factor {
                for k in 0..a.processing.factor {
                    let cx = (x as f64 * f + k as f64) * mm;
                    let cy = (y as f64 * f + j as f64) * mm;
                    acc += s.height(0, cx, cy);
                }
            }
            (acc / (f * f)) as f32
        });
        let ctx = MeasureContext {
            factor: a.processing.factor,
            proc_unit_per_px: mm * f,
            calibrated: true,
            model_rel_uncertainty: 0.25,
            depth_basis: String::new(),
            pits: Vec::new(),
        };
        let oracle = measure(
            &a.regions,
            &tz.view(),
            &a.intrinsics.melanin.view(),
            &a.intrinsics.erythema.view(),
            &ctx,
        );
        // The relief's error, split into bands: true height plus only part of the error.
        let err = &rm.height - &tz;
        let mut extra: Vec<Vec<scarscope::measure::Scar>> = Vec::new();
        for smm in [0.5f64, 1.5] {
            let lo = scarscope::filters::gaussian(&err.view(), (smm / (mm * f)) as f32);
            let hi = &err - &lo;
            for part in [lo, hi] {
                let m = &tz + &part;
                extra.push(measure(
                    &a.regions,
                    &m.view(),
                    &a.intrinsics.melanin.view(),
                    &a.intrinsics.erythema.view(),
                    &ctx,
                ));
            }
        }
        // Cue A: local contrast of the skin texture's shading (0.1–0.5 mm band), healthy
        // pixels only, pooled over ~4 mm, relative to the photo's median.
        let up = mm * f;
        let g = scarscope::filters::gaussian;
        let sh = &a.intrinsics.shading;
        let band = &g(&sh.view(), (0.1 / up) as f32) - &g(&sh.view(), (0.5 / up) as f32);
        let healthy = a.regions.labels.mapv(|l| if l == 0 { 1f32 } else { 0.0 });
        let e2 = &band * &band * &healthy;
        let pool = (4.0 / up) as f32;
        let num = g(&e2.view(), pool);
        let den = g(&healthy.view(), pool);
        let contrast = ndarray::Zip::from(&num)
            .and(&den)
            .map_collect(|n, d| (n / d.max(1e-3)).max(1e-12).sqrt());
        let cmed = scarscope::filters::robust_median(&contrast.view());
        // Cue B: local brightness of the photo (green OD low-passed at 8 mm), relative.
        let raw = scarscope::normalize::normalize(&img.planes, a.processing.factor, 1e5);
        let bright = g(&raw.od[1].view(), (8.0 / up) as f32);
        let bmed = scarscope::filters::robust_median(&bright.view());
        let obs = |v: &[scarscope::measure::Scar]| -> Vec<ScarObs> {
            v.iter()
                .map(|s| ScarObs {
                    centroid_px: s.centroid_px,
                    area_mm2: s.area_mm2,
                    depth_mm: s.depth_mm,
                    kind: s.kind,
                })
                .collect()
        };
        let (po, oo) = (obs(&a.scars), obs(&oracle));
        let ep = evaluate(&truth, &po, 1.0);
        let eo = evaluate(&truth, &oo, 1.0);
        let ex: Vec<(Vec<ScarObs>, scarscope::eval::EvalScores)> = extra
            .iter()
            .map(|v| {
                let o = obs(v);
                let e = evaluate(&truth, &o, 1.0);
                (o, e)
            })
            .collect();
        // Misses (true scars ≥ 1 mm not matched) and false detections, with what is near them.
        for t in truth
            .scars
            .iter()
            .filter(|t| !t.resolved && t.area_px > 0.0)
        {
            if t.equivalent_diameter_mm < 1.0 || ep.matches.iter().any(|m| m.0 == t.id) {
                continue;
            }
            let near = po
                .iter()
                .map(|o| {
                    (o.centroid_px[0] - t.centroid_px[0]).hypot(o.centroid_px[1] - t.centroid_px[1])
                        * mm
                })
                .fold(f64::MAX, f64::min);
            println!(
                "MISS {i} {} {ppm} {el:.1} {:.2} {:.3} nearest_mm {near:.2}",
                t.kind.as_str(),
                t.equivalent_diameter_mm,
                t.depth_mm
            );
        }
        for (fi, o) in po.iter().enumerate() {
            if ep.matches.iter().any(|m| m.1 == fi) {
                continue;
            }
            let near = truth
                .scars
                .iter()
                .map(|t| {
                    (
                        (o.centroid_px[0] - t.centroid_px[0])
                            .hypot(o.centroid_px[1] - t.centroid_px[1])
                            * mm,
                        t.equivalent_diameter_mm,
                    )
                })
                .fold((f64::MAX, 0.0), |a, b| if b.0 < a.0 { b } else { a });
            println!(
                "FP {i} {ppm} {el:.1} diam {:.2} depth {:.3} nearest_true_mm {:.2} (its diam {:.2})",
                a.scars[fi].equivalent_diameter_mm.unwrap_or(f64::NAN),
                o.depth_mm.unwrap_or(f64::NAN),
                near.0,
                near.1
            );
        }
        for &(tid, fi) in &ep.matches {
            let exd: Vec<String> = ex
                .iter()
                .map(|(o, e)| {
                    let d = e
                        .matches
                        .iter()
                        .find(|m| m.0 == tid)
                        .and_then(|m| o[m.1].depth_mm);
                    format!("{:.3}", d.unwrap_or(f64::NAN))
                })
                .collect();
            let t = truth.scars.iter().find(|t| t.id == tid).expect("match");
            let od = eo
                .matches
                .iter()
                .find(|m| m.0 == tid)
                .and_then(|m| oo[m.1].depth_mm);
            if let Ok(spec) = std::env::var("PROFILE") {
                let v: Vec<f64> = spec.split(',').filter_map(|x| x.parse().ok()).collect();
                if v.len() == 3
                    && v[0] as usize == i
                    && t.equivalent_diameter_mm >= v[1]
                    && t.equivalent_diameter_mm <= v[2]
                {
                    let az = truth.light.azimuth_deg.to_radians();
                    let (ux, uy) = (az.cos(), -az.sin());
                    let (cx, cy) = (t.centroid_px[0] / f, t.centroid_px[1] / f);
                    let rpx = t.equivalent_diameter_mm / (mm * f);
                    let lab = a.regions.labels[[cy as usize, cx as usize]];
                    // Along the light (u) and across it (v); * marks the scar's label.
                    for (dir, (dx, dy)) in [("along u ", (ux, uy)), ("across v", (-uy, ux))] {
                        for (name, map) in [("true", &tz), ("rec ", &rm.height)] {
                            let pr: Vec<String> = (-16..=16)
                                .map(|k| {
                                    let d = k as f64 * rpx / 8.0;
                                    let (x, y) = (cx + d * dx, cy + d * dy);
                                    if x < 0.0 || y < 0.0 || x as usize >= w || y as usize >= h {
                                        return "  .  ".into();
                                    }
                                    let (x, y) = (x as usize, y as usize);
                                    let on = lab > 0 && a.regions.labels[[y, x]] == lab;
                                    format!("{:5.2}{}", map[[y, x]], if on { '*' } else { ' ' })
                                })
                                .collect();
                            println!("  {name} {dir} (−2D…2D): {}", pr.join(""));
                        }
                    }
                }
            }
            // Tilt of the healthy surface at the scar (curvature), and the depth factor it
            // implies for an inversion that assumes flat skin (linearised Lambertian).
            let (sx, sy) = (t.centroid_px[0] * mm, t.centroid_px[1] * mm);
            let (mut gx, mut gy) = (0.0, 0.0);
            for oy in -2..=2 {
                for ox in -2..=2 {
                    let (x, y) = (sx + ox as f64 * 1.3, sy + oy as f64 * 1.3);
                    gx += (s.healthy_height(x + 2.5, y) - s.healthy_height(x - 2.5, y)) / 5.0;
                    gy += (s.healthy_height(x, y + 2.5) - s.healthy_height(x, y - 2.5)) / 5.0;
                }
            }
            let (gx, gy) = (gx / 25.0, gy / 25.0);
            let (e, az) = (
                truth.light.elevation_deg.to_radians(),
                truth.light.azimuth_deg.to_radians(),
            );
            let l = [e.cos() * az.cos(), -e.cos() * az.sin(), e.sin()];
            let nn = (1.0 + gx * gx + gy * gy).sqrt();
            let ndl = (-gx * l[0] - gy * l[1] + l[2]) / nn;
            let al = truth.light.ambient;
            let gfn = |se: f64| (1.0 - se * se).max(0.0).sqrt() / (se + al);
            let tilt_factor = gfn(ndl) / gfn(e.sin());
            let (px, py) = (
                ((t.centroid_px[0] / f) as usize).min(w - 1),
                ((t.centroid_px[1] / f) as usize).min(h - 1),
            );
            let cue_a = contrast[[py, px]] / cmed;
            // Flat skin at (sin e + α); brighter skin (lower OD) faces the light more.
            let se_eff = (e.sin() + al) * (-(bright[[py, px]] - bmed) as f64).exp() - al;
            let cue_b = gfn(se_eff.clamp(0.05, 1.0)) / gfn(e.sin());
            let wall = s
                .scars
                .iter()
                .zip(&s.states[0])
                .find(|(sc, _)| sc.id == tid)
                .map(|(sc, st)| sc.steepest_wall_deg(*st))
                .unwrap_or(f64::NAN);
            if let Some(d) = po[fi].depth_mm {
                case.push((t.depth_mm, d, wall < el.min(90.0 - el)));
                if d > 0.0 && t.depth_mm > 0.0 {
                    let o = od.filter(|o| *o > 0.0).map(|o| (o / t.depth_mm).ln());
                    by_kind
                        .entry(t.kind.as_str())
                        .or_default()
                        .push(((d / t.depth_mm).ln(), o));
                }
            }
            println!(
                "CHAIN {i} {} {ppm} {el:.1} {:.2} {:.3} {:.3} {:.3} {:.2} {:.2} {} {tilt_factor:.3} {cue_a:.3} {cue_b:.3} wall {wall:.1}",
                t.kind.as_str(),
                t.equivalent_diameter_mm,
                t.depth_mm,
                od.unwrap_or(f64::NAN),
                po[fi].depth_mm.unwrap_or(f64::NAN),
                t.area_mm2,
                po[fi].area_mm2.unwrap_or(f64::NAN),
                exd.join(" ")
            );
        }
        cases.push(case);
    }
    let summary = |name: &str, keep: &dyn Fn(bool) -> bool| {
        let mut rhos: Vec<f64> = Vec::new();
        let mut errs: Vec<f64> = Vec::new();
        let mut n = 0;
        for c in &cases {
            let pairs: Vec<(f64, f64)> =
                c.iter().filter(|p| keep(p.2)).map(|p| (p.0, p.1)).collect();
            n += pairs.len();
            errs.extend(pairs.iter().map(|p| (p.1 / p.0 - 1.0).abs()));
            if pairs.len() >= 5 {
                rhos.extend(scarscope::eval::spearman(&pairs));
            }
        }
        let med = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
        };
        println!(
            "SUMMARY {name}: scars {n}, cases with ≥ 5 {}, depth Spearman median {:.2}, depth error median {:.2}",
            rhos.len(),
            med(&mut rhos),
            med(&mut errs)
        );
    };
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    for (kind, v) in &by_kind {
        println!(
            "BIAS {kind}: scars {}, median ln(pipeline / true depth) {:.3}, ln(oracle / true depth) {:.3}",
            v.len(),
            median(v.iter().map(|p| p.0).collect()),
            median(v.iter().filter_map(|p| p.1).collect())
        );
    }
    let all: Vec<f64> = by_kind.values().flatten().map(|p| p.0).collect();
    let n_all = all.len();
    println!(
        "BIAS all: scars {n_all}, median ln(pipeline / true depth) {:.3}",
        median(all)
    );
    summary("all", &|_| true);
    summary("walls within both limits", &|ok| ok);
    summary("walls beyond a limit", &|ok| !ok);
}
