//! Evaluation: phantom truth + an analysis result → detection, size, depth, type and light
//! scores. Used by the tests and by `scarscope eval`; it only reads what the analysis wrote.

use serde::{Deserialize, Serialize};

use crate::measure::ScarType;
use crate::phantom::PhotoTruth;

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
                if let Some(da) = ch.area_change_mm2 {
                    out.area_change_pairs.push((tk.area_mm2 - ts0.area_mm2, da));
                }
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
