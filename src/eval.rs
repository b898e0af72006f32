//! Evaluation: phantom truth + an analysis result → detection, size, depth, type and light
//! scores. Used by the tests and by `scarscope eval`; it only reads what the analysis wrote.

use serde::{Deserialize, Serialize};

use crate::measure::ScarType;
use crate::phantom::{PhotoTruth, SubjectConfig};

/// The part of a measured scar that evaluation needs (read back from JSON or taken directly).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScarObs {
    /// Centroid, camera px.
    pub centroid_px: [f64; 2],
    /// Area, mm².
    pub area_mm2: Option<f64>,
    /// Max depth, mm.
    pub depth_mm: Option<f64>,
    /// Type.
    #[serde(rename = "type")]
    pub kind: ScarType,
}

/// Scores of one photo.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalScores {
    /// True scars ≥ `min_diameter_mm` wide.
    pub n_true: usize,
    /// Detections (excluding those matched to true scars below the size floor).
    pub n_detected: usize,
    /// Matched pairs among the scored scars.
    pub true_positives: usize,
    /// Precision.
    pub precision: f64,
    /// Recall.
    pub recall: f64,
    /// F1.
    pub f1: f64,
    /// Unmatched detections per 10 cm² of photographed skin.
    pub false_positives_per_10cm2: f64,
    /// Median |area − true| / true over matched pairs.
    pub median_rel_area_error: Option<f64>,
    /// Median |depth − true| / true over matched pairs.
    pub median_rel_depth_error: Option<f64>,
    /// Median (depth − true) / true: the sign shows a bias.
    pub median_depth_bias: Option<f64>,
    /// Spearman rank correlation of measured and true max depth.
    pub depth_spearman: Option<f64>,
    /// Fraction of matched pairs whose type is right.
    pub type_accuracy: Option<f64>,
    /// Matched pairs (true id, index of detection).
    pub matches: Vec<(u32, usize)>,
}

/// Score detections against truth: one-to-one matching by distance (closest pairs first), a
/// pair counts when the centroids lie within max(1 mm, true radius).
pub fn evaluate(truth: &PhotoTruth, found: &[ScarObs], min_diameter_mm: f64) -> EvalScores {
    let mm = truth.mm_per_px;
    let live: Vec<_> = truth
        .scars
        .iter()
        .filter(|s| !s.resolved && s.area_px > 0.0)
        .collect();
    let mut pairs: Vec<(f64, usize, usize)> = Vec::new();
    for (ti, t) in live.iter().enumerate() {
        let tol_px = (1.0f64).max(0.5 * t.equivalent_diameter_mm) / mm;
        for (fi, f) in found.iter().enumerate() {
            let d =
                (t.centroid_px[0] - f.centroid_px[0]).hypot(t.centroid_px[1] - f.centroid_px[1]);
            if d <= tol_px {
                pairs.push((d, ti, fi));
            }
        }
    }
    pairs.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let mut t_used = vec![false; live.len()];
    let mut f_used = vec![false; found.len()];
    let mut matched = Vec::new();
    for (_, ti, fi) in pairs {
        if !t_used[ti] && !f_used[fi] {
            t_used[ti] = true;
            f_used[fi] = true;
            matched.push((ti, fi));
        }
    }
    let big = |ti: usize| live[ti].equivalent_diameter_mm >= min_diameter_mm;
    let n_true = (0..live.len()).filter(|&i| big(i)).count();
    let small_matched = matched.iter().filter(|(ti, _)| !big(*ti)).count();
    let n_detected = found.len() - small_matched;
    let tp = matched.iter().filter(|(ti, _)| big(*ti)).count();
    let precision = if n_detected > 0 {
        tp as f64 / n_detected as f64
    } else {
        1.0
    };
    let recall = if n_true > 0 {
        tp as f64 / n_true as f64
    } else {
        1.0
    };
    let f1 = if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    };
    let area_cm2 = truth.width as f64 * truth.height as f64 * mm * mm / 100.0;
    let fp = found.len() - matched.len();
    let mut area_err = Vec::new();
    let mut depth_err = Vec::new();
    let mut depth_bias = Vec::new();
    let mut dpairs = Vec::new();
    let mut type_ok = 0usize;
    for &(ti, fi) in &matched {
        let t = live[ti];
        let f = &found[fi];
        if let Some(a) = f.area_mm2 {
            area_err.push((a - t.area_mm2).abs() / t.area_mm2);
        }
        if let Some(d) = f.depth_mm {
            depth_err.push((d - t.depth_mm).abs() / t.depth_mm);
            depth_bias.push((d - t.depth_mm) / t.depth_mm);
            dpairs.push((d, t.depth_mm));
        }
        if f.kind == t.kind {
            type_ok += 1;
        }
    }
    EvalScores {
        n_true,
        n_detected,
        true_positives: tp,
        precision,
        recall,
        f1,
        false_positives_per_10cm2: fp as f64 / area_cm2 * 10.0,
        median_rel_area_error: median(&mut area_err),
        median_rel_depth_error: median(&mut depth_err),
        median_depth_bias: median(&mut depth_bias),
        depth_spearman: spearman(&dpairs),
        type_accuracy: (!matched.is_empty()).then(|| type_ok as f64 / matched.len() as f64),
        matches: matched.iter().map(|&(ti, fi)| (live[ti].id, fi)).collect(),
    }
}

/// One photo of the accuracy grid, analysed with or without the light direction.
#[derive(Debug, Clone)]
pub struct GridCase {
    /// Case index (the phantom seed is 1000 + index).
    pub index: usize,
    /// Resolution, px per mm.
    pub px_per_mm: f64,
    /// True light elevation, degrees.
    pub elevation_deg: f64,
    /// True light azimuth, degrees (drawn by the phantom: all azimuths occur).
    pub azimuth_deg: f64,
    /// Healthy-skin melanin of the phantom (0.08 very light … 2.0 very dark).
    pub skin_melanin: f64,
    /// Whether the light direction was given to the analysis.
    pub light_given: bool,
    /// Scores against the phantom's truth.
    pub scores: EvalScores,
    /// |estimated − true| azimuth, degrees (0 when given).
    pub azimuth_error_deg: f64,
    /// |estimated (or assumed) − true| elevation, degrees (0 when given).
    pub elevation_error_deg: f64,
    /// Photographed skin, cm².
    pub area_cm2: f64,
    /// Number of false detections (all sizes).
    pub false_positives: usize,
    /// Every matched scar: truth next to measurement.
    pub pairs: Vec<MatchedPair>,
}

/// One true scar and the detection matched to it.
#[derive(Debug, Clone, PartialEq)]
pub struct MatchedPair {
    /// True type.
    pub kind: ScarType,
    /// True equivalent diameter, mm.
    pub diameter_mm: f64,
    /// True maximum depth, mm.
    pub depth_mm: f64,
    /// Measured maximum depth, mm.
    pub measured_depth_mm: Option<f64>,
    /// True footprint area, mm².
    pub area_mm2: f64,
    /// Measured footprint area, mm².
    pub measured_area_mm2: Option<f64>,
    /// Measured type.
    pub measured_kind: ScarType,
}

/// Pooled figures over grid cases.
#[derive(Debug, Clone, PartialEq)]
pub struct GridSummary {
    /// Pooled precision over scars ≥ the size floor.
    pub precision: f64,
    /// Pooled recall.
    pub recall: f64,
    /// Pooled F1.
    pub f1: f64,
    /// Median over photos of the median relative area error.
    pub area_error: f64,
    /// Median relative area error over all matched scars of all photos pooled (steadier than
    /// the median over photos, which one photo can move when there are few).
    pub area_error_pooled: f64,
    /// Median over photos of the median relative depth error.
    pub depth_error: f64,
    /// Median relative depth error over all matched scars pooled.
    pub depth_error_pooled: f64,
    /// Median over photos of the depth Spearman correlation.
    pub depth_spearman: f64,
    /// Spearman correlation of measured and true max depth over all matched scars of all
    /// photos pooled (NaN when fewer than two).
    pub depth_spearman_pooled: f64,
    /// Pooled type accuracy over matched scars.
    pub type_accuracy: f64,
    /// Share of photos whose azimuth is within 15° (estimated cases).
    pub azimuth_within_15: f64,
    /// Median |estimated − true| elevation over the estimated cases, degrees (0 without any).
    pub elevation_error_deg: f64,
    /// Median |assumed − true| elevation over the same cases, had
    /// [`crate::relief::ASSUMED_ELEVATION_DEG`] been taken, degrees.
    pub elevation_assumed_error_deg: f64,
    /// False detections per 10 cm², pooled over the photographed area.
    pub false_positives_per_10cm2: f64,
}

/// Phantom configuration of grid case `i` (see [`grid_case`]): 10/20/40 px/mm in turn, light
/// elevation 25–60°, skin from very light to very dark, one session, the light's azimuth
/// drawn by the phantom.
pub fn grid_config(i: usize, scars: bool, width: usize, height: usize) -> SubjectConfig {
    SubjectConfig {
        width,
        height,
        px_per_mm: [10.0, 20.0, 40.0][i % 3],
        n_scars: 25,
        sessions: 1,
        light_elevation_deg: Some(25.0 + 35.0 * ((i * 7) % 11) as f64 / 10.0),
        skin_melanin: Some([0.08, 0.6, 1.2, 2.0][(i / 3) % 4]),
        scars,
        ..Default::default()
    }
}

/// The accuracy grid of the analysis issue: case `i` cycles resolution 10/20/40 px/mm,
/// elevation over 25–60°, skin from very light to very dark; the phantom draws the azimuth.
/// Each photo is analysed twice, with the light given and estimated. `scars == false` makes
/// pigment-only phantoms (erythema, melanin spots, no depressions). Returns the cases in
/// order. Width × height of each photo in px.
pub fn grid_case(
    i: usize,
    scars: bool,
    width: usize,
    height: usize,
) -> Result<[GridCase; 2], crate::error::Error> {
    grid_case_with(i, &grid_config(i, scars, width, height))
}

/// The phantom of grid case `i` under configuration `cfg` (seed 1000 + `i`): what
/// [`grid_case_with`] analyses, for tools that want the photo or its truth themselves.
pub fn grid_subject(i: usize, cfg: &SubjectConfig) -> crate::phantom::Subject {
    crate::phantom::Subject::generate("grid", 1000 + i as u64, cfg)
}

/// [`grid_case`] of a given phantom configuration (e.g. [`grid_config`] with cast shadows);
/// `i` picks the phantom's seed as in [`grid_case`].
pub fn grid_case_with(i: usize, cfg: &SubjectConfig) -> Result<[GridCase; 2], crate::error::Error> {
    use crate::analyze::analyze;
    use crate::load::{load_bytes, LoadLimits};
    let (width, height) = (cfg.width, cfg.height);
    let (ppm, mel) = (cfg.px_per_mm, cfg.skin_melanin.unwrap_or(f64::NAN));
    let el = cfg.light_elevation_deg.unwrap_or(f64::NAN);
    let subject = grid_subject(i, cfg);
    let jpg = subject.render_jpeg(0);
    let truth = subject.truth(0, "cheek");
    let path = std::path::Path::new("grid.jpg");
    let img = load_bytes(&jpg, path, &LoadLimits::default())?;
    let area_cm2 = (width as f64 * truth.mm_per_px) * (height as f64 * truth.mm_per_px) / 100.0;
    let run = |given: bool| -> Result<GridCase, crate::error::Error> {
        let p = phantom_params(&truth, given);
        let a = analyze(&img.planes, &p).map_err(|source| crate::error::Error::Analysis {
            path: path.to_path_buf(),
            source,
        })?;
        let obs: Vec<ScarObs> = a.scars.iter().map(ScarObs::from).collect();
        let scores = evaluate(&truth, &obs, 1.0);
        let pairs = scores
            .matches
            .iter()
            .filter_map(|&(tid, fi)| {
                let t = truth.scars.iter().find(|t| t.id == tid)?;
                let f = obs.get(fi)?;
                Some(MatchedPair {
                    kind: t.kind,
                    diameter_mm: t.equivalent_diameter_mm,
                    depth_mm: t.depth_mm,
                    measured_depth_mm: f.depth_mm,
                    area_mm2: t.area_mm2,
                    measured_area_mm2: f.area_mm2,
                    measured_kind: f.kind,
                })
            })
            .collect();
        let d = (a.light.azimuth_deg - truth.light.azimuth_deg).rem_euclid(360.0);
        Ok(GridCase {
            index: i,
            px_per_mm: ppm,
            elevation_deg: el,
            azimuth_deg: truth.light.azimuth_deg,
            skin_melanin: mel,
            light_given: given,
            azimuth_error_deg: d.min(360.0 - d),
            elevation_error_deg: (a.light.elevation_deg - truth.light.elevation_deg).abs(),
            area_cm2,
            false_positives: (scores.false_positives_per_10cm2 * area_cm2 / 10.0).round() as usize,
            scores,
            pairs,
        })
    };
    Ok([run(true)?, run(false)?])
}

/// Analysis parameters for a phantom photo: its true calibration, and its true light
/// direction when `light_given` (otherwise the analysis estimates it).
pub fn phantom_params(
    truth: &crate::phantom::PhotoTruth,
    light_given: bool,
) -> crate::analyze::AnalyzeParams {
    crate::analyze::AnalyzeParams {
        calibration: crate::analyze::Calibration {
            mm_per_px: Some(truth.mm_per_px),
            source: "phantom".into(),
        },
        light_azimuth_deg: light_given.then_some(truth.light.azimuth_deg),
        light_elevation_deg: light_given.then_some(truth.light.elevation_deg),
        ..Default::default()
    }
}

/// Pool grid cases into the figures the analysis issue states.
pub fn summarize_grid(cases: &[&GridCase]) -> GridSummary {
    let tp: usize = cases.iter().map(|c| c.scores.true_positives).sum();
    let nt: usize = cases.iter().map(|c| c.scores.n_true).sum();
    let nd: usize = cases.iter().map(|c| c.scores.n_detected).sum();
    let precision = if nd > 0 { tp as f64 / nd as f64 } else { 1.0 };
    let recall = if nt > 0 { tp as f64 / nt as f64 } else { 1.0 };
    let f1 = if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    };
    let med = |f: &dyn Fn(&EvalScores) -> Option<f64>| {
        let mut v: Vec<f64> = cases.iter().filter_map(|c| f(&c.scores)).collect();
        median(&mut v).unwrap_or(f64::NAN)
    };
    // Every matched scar of every photo.
    let all_pairs = || cases.iter().flat_map(|c| c.pairs.iter());
    let pooled = |f: &dyn Fn(&MatchedPair) -> Option<f64>| {
        let mut v: Vec<f64> = all_pairs().filter_map(f).collect();
        median(&mut v).unwrap_or(f64::NAN)
    };
    let (mut ok, mut n) = (0.0, 0.0);
    for c in cases {
        if let Some(t) = c.scores.type_accuracy {
            ok += t * c.scores.matches.len() as f64;
            n += c.scores.matches.len() as f64;
        }
    }
    let est: Vec<_> = cases.iter().filter(|c| !c.light_given).collect();
    let az_ok = est.iter().filter(|c| c.azimuth_error_deg <= 15.0).count();
    let fp: usize = cases.iter().map(|c| c.false_positives).sum();
    let area: f64 = cases.iter().map(|c| c.area_cm2).sum();
    GridSummary {
        precision,
        recall,
        f1,
        area_error: med(&|s| s.median_rel_area_error),
        area_error_pooled: pooled(&|p| {
            p.measured_area_mm2
                .map(|a| (a - p.area_mm2).abs() / p.area_mm2)
        }),
        depth_error: med(&|s| s.median_rel_depth_error),
        depth_error_pooled: pooled(&|p| {
            p.measured_depth_mm
                .map(|d| (d - p.depth_mm).abs() / p.depth_mm)
        }),
        depth_spearman: med(&|s| s.depth_spearman),
        depth_spearman_pooled: {
            let all: Vec<(f64, f64)> = all_pairs()
                .filter_map(|p| p.measured_depth_mm.map(|d| (d, p.depth_mm)))
                .collect();
            spearman(&all).unwrap_or(f64::NAN)
        },
        type_accuracy: if n > 0.0 { ok / n } else { f64::NAN },
        azimuth_within_15: if est.is_empty() {
            1.0
        } else {
            az_ok as f64 / est.len() as f64
        },
        elevation_error_deg: {
            let mut v: Vec<f64> = est.iter().map(|c| c.elevation_error_deg).collect();
            median(&mut v).unwrap_or(0.0)
        },
        elevation_assumed_error_deg: {
            let assumed = crate::relief::ASSUMED_ELEVATION_DEG;
            let mut v: Vec<f64> = est
                .iter()
                .map(|c| (assumed - c.elevation_deg).abs())
                .collect();
            median(&mut v).unwrap_or(0.0)
        },
        false_positives_per_10cm2: if area > 0.0 {
            fp as f64 / area * 10.0
        } else {
            0.0
        },
    }
}

/// Median of a sample; None when empty.
pub fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    })
}

fn ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].partial_cmp(&v[b]).unwrap_or(std::cmp::Ordering::Equal));
    let mut r = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && v[idx[j + 1]] == v[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for k in i..=j {
            r[idx[k]] = avg;
        }
        i = j + 1;
    }
    r
}

/// Spearman rank correlation (ties averaged); None for fewer than 3 pairs.
pub fn spearman(pairs: &[(f64, f64)]) -> Option<f64> {
    if pairs.len() < 3 {
        return None;
    }
    let a: Vec<f64> = pairs.iter().map(|p| p.0).collect();
    let b: Vec<f64> = pairs.iter().map(|p| p.1).collect();
    let (ra, rb) = (ranks(&a), ranks(&b));
    let n = ra.len() as f64;
    let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let (mut num, mut da, mut db) = (0.0, 0.0, 0.0);
    for (x, y) in ra.iter().zip(&rb) {
        num += (x - ma) * (y - mb);
        da += (x - ma).powi(2);
        db += (y - mb).powi(2);
    }
    (da > 0.0 && db > 0.0).then(|| num / (da * db).sqrt())
}

/// Tracking scores of one phantom series (session 0 = baseline) against its truth. Only true
/// scars detected in the sessions concerned are scored, so detection errors of the single-photo
/// analysis do not count as tracking errors (they are reported by [`evaluate`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SeriesScores {
    /// Surviving true scars detected at baseline and in a later session, per such pair.
    pub surviving: usize,
    /// Of those, how many the baseline detection's track also holds the later detection.
    pub tracked_correctly: usize,
    /// Scars resolved in a later session that were detected at baseline.
    pub resolved: usize,
    /// Of those, how many were reported resolved.
    pub reported_resolved: usize,
    /// (true, estimated) max-depth change, mm, for correctly tracked scars.
    pub depth_change_pairs: Vec<(f64, f64)>,
    /// (true, estimated) area change, mm², for correctly tracked scars.
    pub area_change_pairs: Vec<(f64, f64)>,
    /// Every correctly tracked scar with a change, with both its pairs (the two pair lists
    /// above hold only the figures that exist, so they do not line up one to one).
    pub change_scars: Vec<ChangeScar>,
    /// Correctly tracked scars whose true depth change exceeds the stated uncertainty.
    pub significant: usize,
    /// Of those, how many have the right sign of depth change.
    pub sign_right: usize,
    /// Correctly tracked scars, by reported status name.
    pub status_counts: std::collections::BTreeMap<String, usize>,
    /// True scars detected in every session.
    pub detected_throughout: usize,
    /// Of those, how many kept one track id through all sessions.
    pub one_track_id: usize,
}

/// A true scar whose change was scored, and in which later session.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ChangeScar {
    /// True type.
    pub kind: ScarType,
    /// True baseline area, mm².
    pub area_mm2: f64,
    /// True id.
    pub id: u32,
    /// Index of the later session.
    pub session: usize,
    /// (true, estimated) max-depth change, mm, when estimated.
    pub depth_change: Option<(f64, f64)>,
    /// (true, estimated) area change, mm², when estimated.
    pub area_change: Option<(f64, f64)>,
    /// (true, estimated) max depth before and after, mm, as the change states them.
    pub depths: Option<[(f64, f64); 2]>,
    /// (true, estimated) area before and after, mm², as the change states them.
    pub areas: Option<[(f64, f64); 2]>,
}

/// Score a tracked series against the truth of each session and each session's detections.
pub fn evaluate_series(
    truths: &[PhotoTruth],
    found: &[Vec<ScarObs>],
    series: &crate::track::Series,
) -> SeriesScores {
    use std::collections::BTreeMap;
    let mut out = SeriesScores::default();
    // (session, detection index) → track position; true id → detection index per session.
    let mut track_of: BTreeMap<(usize, usize), usize> = BTreeMap::new();
    for (ti, t) in series.tracks.iter().enumerate() {
        for (k, o) in t.observations.iter().enumerate() {
            if let Some(o) = o {
                track_of.insert((k, o.index), ti);
            }
        }
    }
    let det: Vec<BTreeMap<u32, usize>> = truths
        .iter()
        .zip(found)
        .map(|(t, f)| evaluate(t, f, 0.0).matches.into_iter().collect())
        .collect();
    let Some(base) = truths.first() else {
        return out;
    };
    for ts0 in &base.scars {
        let Some(&j0) = det[0].get(&ts0.id) else {
            continue;
        };
        let Some(&ti) = track_of.get(&(0, j0)) else {
            continue;
        };
        let track = &series.tracks[ti];
        let mut all = true;
        let mut same = true;
        for k in 1..truths.len() {
            let tk = &truths[k].scars.iter().find(|s| s.id == ts0.id);
            let Some(tk) = tk else { continue };
            if tk.resolved {
                all = false;
                out.resolved += 1;
                if track.status[k] == Some(crate::track::Status::Resolved) {
                    out.reported_resolved += 1;
                }
                continue;
            }
            let Some(&jk) = det[k].get(&ts0.id) else {
                all = false;
                continue;
            };
            out.surviving += 1;
            let ok = track.observations[k].as_ref().map(|o| o.index) == Some(jk);
            if !ok {
                same = false;
                continue;
            }
            out.tracked_correctly += 1;
            if let Some(st) = track.status[k] {
                *out.status_counts.entry(st.as_str().into()).or_default() += 1;
            }
            if let Some(ch) = &track.changes[k] {
                let true_dd = tk.depth_mm - ts0.depth_mm;
                if let Some(dd) = ch.depth_change_mm {
                    out.depth_change_pairs.push((true_dd, dd));
                    if let Some(u) = ch.depth_change_uncertainty_mm {
                        if true_dd.abs() > u {
                            out.significant += 1;
                            if dd.signum() == true_dd.signum() {
                                out.sign_right += 1;
                            }
                        }
                    }
                }
                let area_change = ch
                    .area_change_mm2
                    .map(|da| (tk.area_mm2 - ts0.area_mm2, da));
                out.area_change_pairs.extend(area_change);
                out.change_scars.push(ChangeScar {
                    kind: ts0.kind,
                    area_mm2: ts0.area_mm2,
                    id: ts0.id,
                    session: k,
                    depth_change: ch.depth_change_mm.map(|dd| (true_dd, dd)),
                    area_change,
                    depths: ch
                        .basis
                        .depth_before_mm
                        .zip(ch.basis.depth_after_mm)
                        .map(|(b, a)| [(ts0.depth_mm, b), (tk.depth_mm, a)]),
                    areas: ch
                        .basis
                        .area_before_mm2
                        .zip(ch.basis.area_after_mm2)
                        .map(|(b, a)| [(ts0.area_mm2, b), (tk.area_mm2, a)]),
                });
            }
        }
        if all {
            out.detected_throughout += 1;
            if same {
                out.one_track_id += 1;
            }
        }
    }
    out
}

impl From<&crate::measure::Scar> for ScarObs {
    fn from(s: &crate::measure::Scar) -> Self {
        ScarObs {
            centroid_px: s.centroid_px,
            area_mm2: s.area_mm2,
            depth_mm: s.depth_mm,
            kind: s.kind,
        }
    }
}

impl SeriesScores {
    /// Pool another series' scores into these.
    pub fn add(&mut self, s: SeriesScores) {
        self.surviving += s.surviving;
        self.tracked_correctly += s.tracked_correctly;
        self.resolved += s.resolved;
        self.reported_resolved += s.reported_resolved;
        self.significant += s.significant;
        self.sign_right += s.sign_right;
        self.detected_throughout += s.detected_throughout;
        self.one_track_id += s.one_track_id;
        self.depth_change_pairs.extend(s.depth_change_pairs);
        self.area_change_pairs.extend(s.area_change_pairs);
        self.change_scars.extend(s.change_scars);
        for (k, v) in s.status_counts {
            *self.status_counts.entry(k).or_default() += v;
        }
    }
}

/// Render every session of a phantom subject, analyse each (calibration from the truth, the
/// light given from the truth when `light_given`), register sessions 1.. onto session 0, track
/// (changes measured paired, as `compare` does) and score the series. Panics only on a phantom that cannot be rendered or analysed.
pub fn score_phantom_series(
    s: &crate::phantom::Subject,
    light_given: bool,
    rp: &crate::register::RegisterParams,
    tp: &crate::track::TrackParams,
) -> SeriesScores {
    score_phantom_series_with(s, light_given, false, rp, tp)
}

/// [`score_phantom_series`], with each session's ambient light (the phantom draws it from
/// 0.05–0.2 of the key light per session) given from the truth when `ambient_given` instead of
/// the analysis's assumed default.
pub fn score_phantom_series_with(
    s: &crate::phantom::Subject,
    light_given: bool,
    ambient_given: bool,
    rp: &crate::register::RegisterParams,
    tp: &crate::track::TrackParams,
) -> SeriesScores {
    use crate::analyze::{analyze_keeping_relief, AnalyzeParams, Calibration};
    use crate::register::{register, Registration, RegistrationPlane};
    let (mut truths, mut analyses, mut regs, mut base) = (vec![], vec![], vec![], None);
    for k in 0..s.sessions.len() {
        let planes = crate::load::load_bytes(
            &s.render_jpeg(k),
            std::path::Path::new("phantom.jpg"),
            &crate::load::LoadLimits::default(),
        )
        .expect("phantom decodes")
        .planes;
        let truth = s.truth(k, "v");
        let p = AnalyzeParams {
            calibration: Calibration {
                mm_per_px: Some(truth.mm_per_px),
                source: "truth".into(),
            },
            light_azimuth_deg: light_given.then_some(truth.light.azimuth_deg),
            light_elevation_deg: light_given.then_some(truth.light.elevation_deg),
            ..Default::default()
        };
        let p = if ambient_given {
            AnalyzeParams {
                ambient: truth.light.ambient,
                ..p
            }
        } else {
            p
        };
        analyses.push(analyze_keeping_relief(&planes, &p).expect("phantom analyses"));
        let plane = RegistrationPlane::from_planes(&planes, rp).expect("registration plane");
        match &base {
            None => {
                regs.push(Registration::identity());
                base = Some(plane);
            }
            Some(b) => regs.push(register(b, &plane, rp).expect("phantom session registers")),
        }
        truths.push(truth);
    }
    let mut inputs: Vec<_> = analyses
        .iter()
        .zip(&regs)
        .map(|((a, _), r)| crate::compare::session_input(a, r, s.width, s.height))
        .collect();
    let maps: Vec<_> = analyses
        .iter()
        .map(|(a, m)| Some(crate::change::SessionMaps::new(a, m)))
        .collect();
    crate::track::set_relief_gains(&mut inputs, &maps);
    let series = crate::track::track_series_with_maps(&inputs, &maps, tp);
    let found: Vec<Vec<ScarObs>> = analyses
        .iter()
        .map(|(a, _)| a.scars.iter().map(ScarObs::from).collect())
        .collect();
    evaluate_series(&truths, &found, &series)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spearman_of_monotone_and_reversed_samples() {
        let p: Vec<(f64, f64)> = (0..6).map(|i| (i as f64, (i * i) as f64)).collect();
        assert!((spearman(&p).unwrap() - 1.0).abs() < 1e-12);
        let q: Vec<(f64, f64)> = (0..6).map(|i| (i as f64, -(i as f64))).collect();
        assert!((spearman(&q).unwrap() + 1.0).abs() < 1e-12);
    }
}
