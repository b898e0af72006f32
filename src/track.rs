//! Tracking: the scars of every session (each with its registration onto the baseline) →
//! tracks with stable ids, and per session each track's status and change since baseline.
//!
//! Scars are compared in baseline pixel coordinates. Session k's scars are assigned to the
//! tracks known so far by a globally optimal one-to-one assignment (Hungarian algorithm) of
//! centroid distance relative to a gate, plus a small size-mismatch term; the gate is the larger
//! equivalent radius of the two scars plus a tolerance from the registration residual. A scar
//! left without a track starts a new one; a track left without a scar is resolved where the
//! session shows its skin, and out of view where it does not.
//!
//! Changes: where both sessions' relief maps are given ([`track_series_with_maps`], as
//! `compare` does, or [`track_series_with_pairs`], as `batch` does while it keeps only the
//! baseline's maps), the two scars are measured over their common support
//! ([`crate::change`]): the same reference ring, the same footprint rule; the later area is the
//! baseline footprint scaled by the geometric mean of the area ratios measured (effective
//! areas, volume / depth; the shape fit's squared width ratio where it fits; the footprints;
//! and, weighted ¾, the pit outlines' area ratio: the paired pit's, [`crate::change::paired_pit`],
//! else the two photos' own models' where both were accepted); the later depth takes in the
//! shape fit's depth ratio and the paired pit's (its refit depth is the later photo's own
//! reading). Otherwise each session's single-photo figures are subtracted.
//!
//! Status rule (also in the README): a change counts only when it exceeds `k_sigma` times its
//! combined one-σ uncertainty √(σ_before² + σ_after²). Depth uses, paired, each session's ring
//! noise ⊕ `depth_rel_uncertainty` × depth, single-photo each scar's stated
//! `depth_uncertainty_mm`; area uses a boundary uncertainty of one processing pixel along the
//! perimeter plus a relative repeatability term.
//! Improved: depth or area decreased significantly and neither increased significantly;
//! worsened: the mirror image; anything else: stable.

use serde::{Deserialize, Serialize};

use crate::change::{
    measure_pair, paired_pit, PairedMeasure, PairedPit, ReliefGain, ScaleFit, SessionMaps,
    SupportMeasure,
};
use crate::measure::Scar;
use crate::register::Affine;

/// One session's input to tracking.
#[derive(Debug, Clone)]
pub struct SessionInput<'a> {
    /// The session's scars, in its own pixel coordinates.
    pub scars: &'a [Scar],
    /// Session pixels → baseline pixels (identity for the baseline).
    pub to_baseline: Affine,
    /// Registration residual, baseline px (0 for the baseline).
    pub residual_px: f64,
    /// Session frame width, px.
    pub width: usize,
    /// Session frame height, px.
    pub height: usize,
    /// Camera pixel size, mm (None when uncalibrated: changes are then in pixel units).
    pub mm_per_px: Option<f64>,
    /// Size of the analysis' processing pixel, in this session's camera pixels.
    pub processing_factor: usize,
    /// This session's relief scale against the baseline's ([`crate::change::relief_gain`]);
    /// None for the baseline or where it could not be measured. When applied, the session's
    /// depths, mean depths and volumes are multiplied by it before any change is taken.
    pub relief_gain: Option<ReliefGain>,
}

/// Weight of the refitted pit's depth ratio ([`crate::change::paired_pit`]) in the later
/// depth: the later side moves this far towards the baseline's depth times that ratio, after
/// its own readings and the shape fit's are mixed. Of the later depth's readings its ratio
/// errs least (phantom series, four seed sets, 2026-11-29: log σ of the depth-ratio error
/// 0.17 against 0.22–0.24 for the relief's deepest point, the scar's own depth and the shape
/// fit, errors correlated 0.42–0.84), and the minimum-variance mix of the four readings under
/// their measured error covariance gives it 0.74. Depth-change Spearman on those sets: mean
/// 0.691 without it; 0.729 at ½ when it was introduced, 0.748 at ½ and 0.758 at ¾ now (0.760
/// at 1, where one more reading's weight rests on a single fit); on two seed sets not used to
/// choose it, ½ → ¾ moved it by −0.004 and +0.010, so the gain is small.
pub const PIT_DEPTH_WEIGHT: f64 = 0.75;

/// Parameters of tracking and of the status rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TrackParams {
    /// A change is significant beyond this many combined σ.
    pub k_sigma: f64,
    /// Relative one-σ repeatability of a scar's area between sessions.
    pub area_rel_uncertainty: f64,
    /// Relative one-σ repeatability of a paired depth between sessions lit differently (the
    /// shading model's error, beyond the ring noise measured per scar).
    pub depth_rel_uncertainty: f64,
    /// Smallest gate radius, mm (uncalibrated: 1 % of the baseline diagonal).
    pub min_gate_mm: f64,
    /// Registration residuals added to the gate.
    pub gate_residuals: f64,
    /// Weight of |ln(area ratio)| in the assignment cost.
    pub size_weight: f64,
}

impl Default for TrackParams {
    fn default() -> Self {
        TrackParams {
            k_sigma: 2.0,
            area_rel_uncertainty: 0.25,
            depth_rel_uncertainty: 0.25,
            min_gate_mm: 0.75,
            gate_residuals: 3.0,
            size_weight: 0.15,
        }
    }
}

/// How a scar changed since baseline.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Shallower or smaller beyond the uncertainty.
    Improved,
    /// Deeper or larger beyond the uncertainty.
    Worsened,
    /// Within the uncertainty (or depth and area disagree).
    Stable,
    /// Present at baseline, gone in this session although its skin is in view.
    Resolved,
    /// Absent at baseline although its skin was in view, present now.
    New,
    /// Its skin is outside one of the two photos: nothing can be said.
    OutOfView,
}

impl Status {
    /// Name as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Improved => "improved",
            Status::Worsened => "worsened",
            Status::Stable => "stable",
            Status::Resolved => "resolved",
            Status::New => "new",
            Status::OutOfView => "out_of_view",
        }
    }
}

/// Change of one scar between baseline and a session (after − before). mm figures are null
/// without calibration; the px figures are in baseline pixels and always present.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Change {
    /// Footprint area change, mm².
    pub area_change_mm2: Option<f64>,
    /// Footprint area change, % of baseline.
    pub area_change_pct: Option<f64>,
    /// One-σ uncertainty of the area change, mm².
    pub area_change_uncertainty_mm2: Option<f64>,
    /// Maximum depth change, mm (negative: shallower).
    pub depth_change_mm: Option<f64>,
    /// Maximum depth change, % of baseline.
    pub depth_change_pct: Option<f64>,
    /// One-σ uncertainty of the depth change, mm.
    pub depth_change_uncertainty_mm: Option<f64>,
    /// Mean depth change, mm.
    pub mean_depth_change_mm: Option<f64>,
    /// Mean depth change, %.
    pub mean_depth_change_pct: Option<f64>,
    /// Volume change, mm³.
    pub volume_change_mm3: Option<f64>,
    /// Volume change, %.
    pub volume_change_pct: Option<f64>,
    /// Redness index change (index points).
    pub redness_change: f64,
    /// Redness change, % of |baseline| (null when baseline redness is ~0).
    pub redness_change_pct: Option<f64>,
    /// Pigment index change (index points).
    pub pigment_change: f64,
    /// Pigment change, % of |baseline| (null when baseline pigment is ~0).
    pub pigment_change_pct: Option<f64>,
    /// Area change in baseline pixels.
    pub area_change_px: f64,
    /// Depth change in baseline pixels.
    pub depth_change_px: f64,
    /// The figures the changes are differences of.
    pub basis: ChangeBasis,
}

/// How a change was measured, and the before and after figures it is the difference of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ChangeBasis {
    /// "paired" (both photos measured over the same support, see the README; maximum depths
    /// the mean of that reading and each scar's own) or "single_photo" (each scar's own
    /// analysis figures).
    pub method: String,
    /// Area before, mm² (the after area is before + change).
    pub area_before_mm2: Option<f64>,
    /// Area after, mm².
    pub area_after_mm2: Option<f64>,
    /// Maximum depth before, mm.
    pub depth_before_mm: Option<f64>,
    /// Maximum depth after, mm.
    pub depth_after_mm: Option<f64>,
    /// The shape fit of a paired change where it was used (later scar ≈ the baseline's
    /// scaled in width and depth; its ratios enter the area and the later depth, see the
    /// README's "Shape fit"); null otherwise.
    #[serde(default)]
    pub shape_fit: Option<ScaleFit>,
    /// The scar's pit model refitted on the later photo where it was used (its ratios enter
    /// the area and the later depth, see the README's "The paired pit"); null otherwise.
    #[serde(default)]
    pub paired_pit: Option<PitChange>,
}

/// What a paired pit ([`crate::change::paired_pit`]) read of one scar's change.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PitChange {
    /// Later depth over baseline depth of the one pit shape (before the relief scale between
    /// sessions is applied).
    pub depth_ratio: f64,
    /// Later area over baseline area of the pit outlines (10 % level), in the baseline's
    /// pixels.
    pub area_ratio: f64,
    /// Share of the later photo's shading contrast around the scar the refitted pit explains.
    pub explained: f64,
}

/// One observation of a track in a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Observation {
    /// Index of the scar in that session's list.
    pub index: usize,
    /// The scar's id in that session's analysis.
    pub scar_id: u32,
    /// Centroid in baseline pixels.
    pub centroid_baseline_px: [f64; 2],
}

/// One scar followed over the sessions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Track {
    /// Stable id: baseline scars 1.. in their raster order, then new ones in order of appearance.
    pub track_id: u32,
    /// Per session: the scar seen there, if any.
    pub observations: Vec<Option<Observation>>,
    /// Per session: status relative to baseline (None where nothing is known yet).
    pub status: Vec<Option<Status>>,
    /// Per session: change since baseline where the scar is seen in both.
    pub changes: Vec<Option<Change>>,
}

/// Counts of tracks by status in one session.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct StatusCounts {
    /// Improved.
    pub improved: usize,
    /// Worsened.
    pub worsened: usize,
    /// Stable.
    pub stable: usize,
    /// Resolved.
    pub resolved: usize,
    /// New.
    pub new: usize,
    /// Out of view.
    pub out_of_view: usize,
}

/// Total scar area and volume before and after, over the skin both photos show (null
/// without calibration).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Totals {
    /// Total scar area at baseline, mm².
    pub total_area_before_mm2: Option<f64>,
    /// Total scar area in the session, mm².
    pub total_area_after_mm2: Option<f64>,
    /// Total area change, mm².
    pub total_area_change_mm2: Option<f64>,
    /// Total area change, %.
    pub total_area_change_pct: Option<f64>,
    /// Total scar volume at baseline, mm³.
    pub total_volume_before_mm3: Option<f64>,
    /// Total scar volume in the session, mm³.
    pub total_volume_after_mm3: Option<f64>,
    /// Total volume change, mm³.
    pub total_volume_change_mm3: Option<f64>,
    /// Total volume change, %.
    pub total_volume_change_pct: Option<f64>,
}

/// One session's change summary against baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ChangeSummary {
    /// Session index.
    pub session: usize,
    /// The session's relief scale against the baseline's, applied to its depths and volumes
    /// (null where it could not be measured; see `change::relief_gain`).
    #[serde(default)]
    pub relief_gain: Option<ReliefGain>,
    /// Tracks by status.
    pub counts: StatusCounts,
    /// Totals over the common view.
    #[serde(flatten)]
    pub totals: Totals,
}

/// Tracks over a series of sessions, with one summary per session after baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Series {
    /// Tracks ordered by id.
    pub tracks: Vec<Track>,
    /// Summaries of sessions 1.. against baseline.
    pub summaries: Vec<ChangeSummary>,
}

/// Everything tracking needs of one scar, in baseline terms.
#[derive(Debug, Clone, Copy)]
struct Obs {
    c: [f64; 2],
    /// Equivalent radius, baseline px.
    radius: f64,
    area_px: f64,
}

fn obs_of(s: &Scar, m: &Affine) -> Obs {
    let sc = m.scale();
    let area_px = s.area_px * sc * sc;
    Obs {
        c: m.apply(s.centroid_px),
        radius: (area_px / std::f64::consts::PI).sqrt(),
        area_px,
    }
}

/// Whether baseline point `q` lies inside session `s`'s frame.
fn in_view(s: &SessionInput, q: [f64; 2]) -> bool {
    let Some(inv) = s.to_baseline.inverse() else {
        return false;
    };
    let p = inv.apply(q);
    p[0] >= -0.5 && p[1] >= -0.5 && p[0] <= s.width as f64 - 0.5 && p[1] <= s.height as f64 - 0.5
}

/// Follow the scars of `sessions` (session 0 is the baseline) and classify every change,
/// each scar measured by its own session's analysis.
pub fn track_series(sessions: &[SessionInput], p: &TrackParams) -> Series {
    track_series_with_maps(sessions, &[], p)
}

/// Each later session's relief scale against the baseline's ([`crate::change::relief_gain`])
/// where both sessions' maps are given (`maps` parallel to `sessions`); other sessions' gains
/// are left as they are.
pub fn set_relief_gains(sessions: &mut [SessionInput], maps: &[Option<SessionMaps>]) {
    let Some(Some(base)) = maps.first() else {
        return;
    };
    for (s, m) in sessions.iter_mut().zip(maps).skip(1) {
        if let Some(m) = m {
            s.relief_gain = crate::change::relief_gain(base, m, &s.to_baseline);
        }
    }
}

/// [`track_series`], measuring each change over the common support of the two sessions
/// ([`crate::change`]) where both sessions' maps are given (`maps` parallel to `sessions`,
/// shorter or `None` where a session has none: its changes use the single-photo figures).
pub fn track_series_with_maps(
    sessions: &[SessionInput],
    maps: &[Option<SessionMaps>],
    p: &TrackParams,
) -> Series {
    track_series_with_pairs(
        sessions,
        &mut |k, bi, ai| {
            let (Some(Some(m0)), Some(Some(mk))) = (maps.first(), maps.get(k)) else {
                return None;
            };
            PairedFigures::measure(m0, bi, mk, ai, &sessions[0], &sessions[k])
        },
        p,
    )
}

/// A paired measurement of one tracked scar ([`crate::change::measure_pair`]) with the grid
/// scales of its two sessions: everything a change needs of the relief maps, so a caller can
/// measure a session's pairs while it holds its maps and drop them before the next session.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairedFigures {
    /// Both sessions over the common support.
    pub measure: PairedMeasure,
    /// Camera pixels per processing pixel: baseline, later session.
    pub factor: [usize; 2],
    /// Relief units per processing pixel: baseline, later session.
    pub unit_per_px: [f64; 2],
    /// The scar's pit in both sessions as one shape ([`crate::change::paired_pit`]).
    pub pit: Option<PairedPit>,
}

impl PairedFigures {
    /// Measure scar `bi` of the baseline (`m0`, `s0`) and scar `ai` of a later session
    /// (`mk`, `sk`) over their common support; None where the pair cannot be measured.
    pub fn measure(
        m0: &SessionMaps,
        bi: usize,
        mk: &SessionMaps,
        ai: usize,
        s0: &SessionInput,
        sk: &SessionInput,
    ) -> Option<Self> {
        let (b, a) = (s0.scars.get(bi)?, sk.scars.get(ai)?);
        measure_pair(m0, bi, mk, ai, &sk.to_baseline, b.bbox_px, a.bbox_px).map(|measure| {
            PairedFigures {
                measure,
                factor: [m0.factor, mk.factor],
                unit_per_px: [m0.unit_per_px, mk.unit_per_px],
                pit: paired_pit(m0, bi, mk, ai, &sk.to_baseline),
            }
        })
    }
}

/// [`track_series`], with the change of scar `bi` of the baseline to scar `ai` of session `k`
/// measured paired wherever `pair(k, bi, ai)` gives its figures (single-photo otherwise).
/// Tracks are assigned session by session, each session from the earlier ones only, so a
/// prefix `sessions[..=k]` gives the same tracks up to session k as the whole series: a
/// caller can track each new session as it comes and measure only that session's pairs.
pub fn track_series_with_pairs(
    sessions: &[SessionInput],
    pair: &mut dyn FnMut(usize, usize, usize) -> Option<PairedFigures>,
    p: &TrackParams,
) -> Series {
    let n_ses = sessions.len();
    if n_ses == 0 {
        return Series {
            tracks: Vec::new(),
            summaries: Vec::new(),
        };
    }
    let base = &sessions[0];
    let diag = (base.width as f64).hypot(base.height as f64);
    let min_gate_px = match base.mm_per_px {
        Some(mm) if mm > 0.0 => p.min_gate_mm / mm,
        _ => 0.01 * diag,
    };
    // Tracks: last observation (baseline coordinates) and per-session observations.
    struct Live {
        last: Obs,
        obs: Vec<Option<Observation>>,
    }
    let mut tracks: Vec<Live> = Vec::new();
    for (k, ses) in sessions.iter().enumerate() {
        let obs: Vec<Obs> = ses
            .scars
            .iter()
            .map(|s| obs_of(s, &ses.to_baseline))
            .collect();
        let tol = min_gate_px + p.gate_residuals * ses.residual_px;
        let n = tracks.len();
        let m = obs.len();
        // cost[i][j] for track i, scar j; None beyond the gate.
        let mut cost = vec![vec![None; m]; n];
        for (i, t) in tracks.iter().enumerate() {
            for (j, o) in obs.iter().enumerate() {
                let gate = t.last.radius.max(o.radius) + tol;
                let d = (t.last.c[0] - o.c[0]).hypot(t.last.c[1] - o.c[1]);
                let ratio = (o.area_px.max(1.0) / t.last.area_px.max(1.0)).ln().abs();
                let c = d / gate + p.size_weight * ratio;
                if d <= gate && c < 1.0 {
                    cost[i][j] = Some(c);
                }
            }
        }
        let assign = assign_with_gate(&cost, n, m);
        let mut taken = vec![false; m];
        for (i, a) in assign.iter().enumerate() {
            if let Some(j) = *a {
                taken[j] = true;
                tracks[i].last = obs[j];
            }
            let o = a.map(|j| Observation {
                index: j,
                scar_id: ses.scars[j].id,
                centroid_baseline_px: obs[j].c,
            });
            tracks[i].obs.push(o);
        }
        // Unmatched scars start tracks, in the order of their ids.
        let mut order: Vec<usize> = (0..m).filter(|j| !taken[*j]).collect();
        order.sort_by_key(|&j| ses.scars[j].id);
        for j in order {
            let mut v = vec![None; k];
            v.push(Some(Observation {
                index: j,
                scar_id: ses.scars[j].id,
                centroid_baseline_px: obs[j].c,
            }));
            tracks.push(Live {
                last: obs[j],
                obs: v,
            });
        }
    }
    let tracks: Vec<Track> = tracks
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            let mut status = vec![None; n_ses];
            let mut changes = vec![None; n_ses];
            let b = t.obs[0].as_ref();
            let where_ = t.last.c;
            for k in 0..n_ses {
                let o = t.obs[k].as_ref();
                let (st, ch) = match (b, o) {
                    (Some(b), Some(a)) if k > 0 => {
                        let ch = change_of(sessions, pair, k, b.index, a.index, p);
                        (Some(classify(&ch, p.k_sigma)), Some(ch.0))
                    }
                    (Some(_), Some(_)) => (None, None),
                    (Some(b), None) => (
                        Some(if in_view(&sessions[k], b.centroid_baseline_px) {
                            Status::Resolved
                        } else {
                            Status::OutOfView
                        }),
                        None,
                    ),
                    (None, Some(a)) => (
                        Some(if in_view(&sessions[0], a.centroid_baseline_px) {
                            Status::New
                        } else {
                            Status::OutOfView
                        }),
                        None,
                    ),
                    (None, None) => {
                        // A track born after baseline that has gone again.
                        let seen_before = t.obs[..k].iter().any(|x| x.is_some());
                        let st = seen_before.then(|| {
                            if in_view(&sessions[k], where_) {
                                Status::Resolved
                            } else {
                                Status::OutOfView
                            }
                        });
                        (st, None)
                    }
                };
                status[k] = st;
                changes[k] = ch;
            }
            Track {
                track_id: i as u32 + 1,
                observations: t.obs,
                status,
                changes,
            }
        })
        .collect();
    let summaries = (1..n_ses)
        .map(|k| summarize(&tracks, sessions, k))
        .collect();
    Series { tracks, summaries }
}

/// Change of scar `bi` of the baseline to scar `ai` of session `k`: paired where both
/// sessions have maps and the pair can be measured, otherwise from the single-photo figures.
fn change_of(
    sessions: &[SessionInput],
    pair: &mut dyn FnMut(usize, usize, usize) -> Option<PairedFigures>,
    k: usize,
    bi: usize,
    ai: usize,
    p: &TrackParams,
) -> (Change, f64, f64) {
    let (bs, ks) = (&sessions[0], &sessions[k]);
    let (b, a) = (&bs.scars[bi], &ks.scars[ai]);
    let sc = ks.to_baseline.scale();
    let paired = pair(k, bi, ai).map(|pf| {
        let calibrated = bs.mm_per_px.is_some() && ks.mm_per_px.is_some();
        let pit = pf
            .pit
            .filter(|q| q.before.depth_px > 0.0 && q.after.depth_px > 0.0);
        // The pit outlines' area ratio, baseline pixels: the paired pit's where the pair has
        // one, else each photo's own model's.
        let pit_ratio = match pit {
            Some(q) => {
                let f = pf.factor[1] as f64 * sc / pf.factor[0] as f64;
                Some(q.area_ratio * f * f)
            }
            None => pit_area_ratio(b, a, sc),
        };
        // The later photo's own depth reading: the refit's where there is one.
        let own_after = match pit {
            Some(q) => Side {
                depth_mm: calibrated.then_some(q.after.depth_px * pf.unit_per_px[1]),
                depth_px: q.after.depth_px * pf.factor[1] as f64 * sc,
                ..single_side(a, ks, sc)
            },
            None => single_side(a, ks, sc),
        };
        // Depth ratio of the one shape in both photos (relief units).
        let pit_depth_ratio = pit.map(|q| {
            q.after.depth_px * pf.unit_per_px[1] / (q.before.depth_px * pf.unit_per_px[0])
        });
        let pit_change = pit
            .zip(pit_ratio)
            .zip(pit_depth_ratio)
            .map(|((q, a), d)| PitChange {
                depth_ratio: d,
                area_ratio: a,
                explained: q.after.explained,
            });
        (
            paired_sides(&pf, pit_ratio, sc, calibrated, p.depth_rel_uncertainty),
            pf.measure.usable_fit(),
            own_after,
            pit_change,
        )
    });
    let (method, fit, pit_change, [before, after]) = match paired {
        Some(([pb, pa], fit, own_after, pit_change)) => {
            let pb = pb.with_own_depth(&single_side(b, bs, 1.0));
            let mut pa = pa.with_own_depth(&own_after);
            if let Some(f) = fit {
                pa = pa.with_ratio_depth(&pb, f.depth_ratio, 0.5);
            }
            let pit_change = pit_change.filter(|c| c.depth_ratio.is_finite());
            if let Some(c) = pit_change {
                pa = pa.with_ratio_depth(&pb, c.depth_ratio, PIT_DEPTH_WEIGHT);
            }
            ("paired", fit, pit_change, [pb, pa])
        }
        None => (
            "single_photo",
            None,
            None,
            [single_side(b, bs, 1.0), single_side(a, ks, sc)],
        ),
    };
    let after = match &ks.relief_gain {
        Some(g) => after.on_baseline_scale(g),
        None => after,
    };
    let mut ch = change(b, a, [before, after], method, p.area_rel_uncertainty);
    ch.0.basis.shape_fit = fit;
    ch.0.basis.paired_pit = pit_change;
    ch
}

/// One side of a change: the figures of one session's scar, baseline pixels for px units.
#[derive(Debug, Clone, Copy)]
struct Side {
    area_mm2: Option<f64>,
    area_px: f64,
    depth_mm: Option<f64>,
    depth_px: f64,
    mean_depth_mm: Option<f64>,
    volume_mm3: Option<f64>,
    /// One-σ depth uncertainty, mm.
    depth_unc_mm: Option<f64>,
    /// One-σ depth uncertainty, baseline px.
    depth_unc_px: f64,
    /// Step of the outline (one processing pixel), baseline pixels.
    edge_px: f64,
    /// The same in mm (None when uncalibrated).
    edge_mm: Option<f64>,
}

impl Side {
    /// The paired side with its maximum depth the mean of the paired reading (the relief's
    /// deepest point over the common support) and the scar's own single-photo depth (read
    /// with its walls paired and its floor fitted, `symmetry`): two readings of one depth
    /// whose errors are partly independent. Its uncertainty stays the paired reading's.
    fn with_own_depth(self, own: &Side) -> Side {
        Side {
            depth_mm: match (self.depth_mm, own.depth_mm) {
                (Some(p), Some(o)) => Some(0.5 * (p + o)),
                (p, _) => p,
            },
            depth_px: 0.5 * (self.depth_px + own.depth_px),
            ..self
        }
    }

    /// The later side with its maximum depth moved by `weight` towards the baseline's depth
    /// `before` times `ratio`, a reading of the depth ratio from the whole scar shape (the
    /// shape fit's, [`crate::change`], or the refitted pit's, [`crate::change::paired_pit`]):
    /// the amplitude of the whole shape rather than its deepest point. Uncertainty unchanged.
    /// The ratio compares the two photos as they stand, so the result is in the later
    /// session's relief units like its own reading; the relief scale is applied after.
    fn with_ratio_depth(self, before: &Side, ratio: f64, weight: f64) -> Side {
        let mix = |own: f64, b: f64| (1.0 - weight) * own + weight * ratio * b;
        Side {
            depth_mm: match (self.depth_mm, before.depth_mm) {
                (Some(own), Some(b)) => Some(mix(own, b)),
                (own, _) => own,
            },
            depth_px: mix(self.depth_px, before.depth_px),
            ..self
        }
    }

    /// The side with its depths, mean depth and volume on the baseline's relief scale, and
    /// the factor's uncertainty added to the depth uncertainty.
    fn on_baseline_scale(self, g: &ReliefGain) -> Side {
        let (f, rel) = (g.factor(), g.rel_sd());
        let unc = |u: f64, d: f64| (u * f).hypot(rel * d * f);
        Side {
            depth_mm: self.depth_mm.map(|d| d * f),
            depth_px: self.depth_px * f,
            mean_depth_mm: self.mean_depth_mm.map(|d| d * f),
            volume_mm3: self.volume_mm3.map(|v| v * f),
            depth_unc_mm: self.depth_unc_mm.zip(self.depth_mm).map(|(u, d)| unc(u, d)),
            depth_unc_px: unc(self.depth_unc_px, self.depth_px),
            ..self
        }
    }
}

/// A scar as the single-photo analysis measured it; `sc` = baseline px per session px.
fn single_side(s: &Scar, ses: &SessionInput, sc: f64) -> Side {
    let rel = match (s.depth_uncertainty_mm, s.depth_mm) {
        (Some(u), Some(d)) if d > 0.0 => u / d,
        _ => 0.5,
    };
    Side {
        area_mm2: s.area_mm2,
        area_px: s.area_px * sc * sc,
        depth_mm: s.depth_mm,
        depth_px: s.depth_px * sc,
        mean_depth_mm: s.mean_depth_mm,
        volume_mm3: s.volume_mm3,
        depth_unc_mm: s.depth_uncertainty_mm,
        depth_unc_px: rel * s.depth_px * sc,
        edge_px: ses.processing_factor as f64 * sc,
        edge_mm: ses.mm_per_px.map(|mm| ses.processing_factor as f64 * mm),
    }
}

/// Ratio of the later scar's pit-model area (scaled to baseline pixels by `sc`) to the
/// baseline's, where both photos' pit models were accepted.
fn pit_area_ratio(b: &Scar, a: &Scar, sc: f64) -> Option<f64> {
    let (pb, pa) = (b.pit_model_area_px?, a.pit_model_area_px?);
    (pb > 0.0 && pa > 0.0).then(|| pa * sc * sc / pb)
}

/// The two sides of a paired measurement ([`crate::change`]): both over the same support,
/// areas in the baseline's scale; depth uncertainty = ring noise ⊕ `rel` × depth.
fn paired_sides(
    pf: &PairedFigures,
    pit_ratio: Option<f64>,
    sc: f64,
    calibrated: bool,
    rel: f64,
) -> [Side; 2] {
    let pm = &pf.measure;
    let (after_area, after_area_px) = pm.after_area(pit_ratio);
    let mm = |v: f64| calibrated.then_some(v);
    let side = |m: &SupportMeasure, area: f64, area_px: f64, own: usize, s: f64| {
        // Relief units → baseline camera pixels.
        let to_px = pf.factor[own] as f64 / pf.unit_per_px[own] * s;
        let unc = m.ring_sd.hypot(rel * m.depth);
        Side {
            area_mm2: mm(area),
            area_px,
            depth_mm: mm(m.depth),
            depth_px: m.depth * to_px,
            mean_depth_mm: mm(m.mean_depth),
            volume_mm3: mm(m.volume),
            depth_unc_mm: mm(unc),
            depth_unc_px: unc * to_px,
            // The outline is traced on the baseline's grid in both sessions.
            edge_px: pf.factor[0] as f64,
            edge_mm: mm(pf.unit_per_px[0]),
        }
    };
    let before = side(&pm.before, pm.before.area, pm.before.area_px, 0, 1.0);
    let after = side(&pm.after, after_area, after_area_px, 1, sc);
    [before, after]
}

/// Change after − before, plus the one-σ uncertainties (depth px, area px) used by the rule.
fn change(b: &Scar, a: &Scar, sides: [Side; 2], method: &str, rel: f64) -> (Change, f64, f64) {
    let [sb, sa] = sides;
    let pct = |d: f64, base: f64| (base.abs() > 1e-12).then(|| 100.0 * d / base);
    let both = |x: Option<f64>, y: Option<f64>| match (x, y) {
        (Some(x), Some(y)) => Some((y - x, x)),
        _ => None,
    };
    let diff = |x, y| both(x, y).map(|(d, _)| d);
    let pc = |x, y| both(x, y).and_then(|(d, base)| pct(d, base));
    // Area: a relative repeatability plus one processing pixel along the perimeter.
    let area_unc_px = |s: &Side| {
        let perim = 2.0 * (std::f64::consts::PI * s.area_px).sqrt();
        (rel * s.area_px).hypot(perim * s.edge_px)
    };
    let sa_px = area_unc_px(&sb).hypot(area_unc_px(&sa));
    let area_unc_mm2 = |s: &Side| -> Option<f64> {
        let (area, edge) = (s.area_mm2?, s.edge_mm?);
        let perim = 2.0 * (std::f64::consts::PI * area).sqrt();
        Some((rel * area).hypot(perim * edge))
    };
    let sa_mm = area_unc_mm2(&sb).zip(area_unc_mm2(&sa));
    let sd_mm = sb.depth_unc_mm.zip(sa.depth_unc_mm);
    let sd_px = sb.depth_unc_px.hypot(sa.depth_unc_px);
    let redness_change = a.redness - b.redness;
    let pigment_change = a.pigment - b.pigment;
    let rp = |d: f64, base: f64| (base.abs() > 0.5).then(|| 100.0 * d / base.abs());
    (
        Change {
            area_change_mm2: diff(sb.area_mm2, sa.area_mm2),
            area_change_pct: pc(sb.area_mm2, sa.area_mm2),
            area_change_uncertainty_mm2: sa_mm.map(|(x, y)| x.hypot(y)),
            depth_change_mm: diff(sb.depth_mm, sa.depth_mm),
            depth_change_pct: pc(sb.depth_mm, sa.depth_mm),
            depth_change_uncertainty_mm: sd_mm.map(|(x, y)| x.hypot(y)),
            mean_depth_change_mm: diff(sb.mean_depth_mm, sa.mean_depth_mm),
            mean_depth_change_pct: pc(sb.mean_depth_mm, sa.mean_depth_mm),
            volume_change_mm3: diff(sb.volume_mm3, sa.volume_mm3),
            volume_change_pct: pc(sb.volume_mm3, sa.volume_mm3),
            redness_change,
            redness_change_pct: rp(redness_change, b.redness),
            pigment_change,
            pigment_change_pct: rp(pigment_change, b.pigment),
            area_change_px: sa.area_px - sb.area_px,
            depth_change_px: sa.depth_px - sb.depth_px,
            basis: ChangeBasis {
                method: method.into(),
                area_before_mm2: sb.area_mm2,
                area_after_mm2: sa.area_mm2,
                depth_before_mm: sb.depth_mm,
                depth_after_mm: sa.depth_mm,
                shape_fit: None,
                paired_pit: None,
            },
        },
        sd_px,
        sa_px,
    )
}

/// The status rule of the module notes.
fn classify(ch: &(Change, f64, f64), k: f64) -> Status {
    let (c, sd_px, sa_px) = ch;
    let z = |d: Option<f64>, u: Option<f64>, d_px: f64, u_px: f64| match (d, u) {
        (Some(d), Some(u)) if u > 0.0 => d / u,
        _ if u_px > 0.0 => d_px / u_px,
        _ => 0.0,
    };
    let zd = z(
        c.depth_change_mm,
        c.depth_change_uncertainty_mm,
        c.depth_change_px,
        *sd_px,
    );
    let za = z(
        c.area_change_mm2,
        c.area_change_uncertainty_mm2,
        c.area_change_px,
        *sa_px,
    );
    let down = zd < -k || za < -k;
    let up = zd > k || za > k;
    match (down, up) {
        (true, false) => Status::Improved,
        (false, true) => Status::Worsened,
        _ => Status::Stable,
    }
}

fn summarize(tracks: &[Track], sessions: &[SessionInput], k: usize) -> ChangeSummary {
    let mut counts = StatusCounts::default();
    let (mut ab, mut aa, mut vb, mut va) = (0.0, 0.0, 0.0, 0.0);
    let calibrated = sessions[0].mm_per_px.is_some() && sessions[k].mm_per_px.is_some();
    let gain = sessions[k].relief_gain.map_or(1.0, |g| g.factor());
    for t in tracks {
        let Some(st) = t.status[k] else { continue };
        match st {
            Status::Improved => counts.improved += 1,
            Status::Worsened => counts.worsened += 1,
            Status::Stable => counts.stable += 1,
            Status::Resolved => counts.resolved += 1,
            Status::New => counts.new += 1,
            Status::OutOfView => counts.out_of_view += 1,
        }
        if st == Status::OutOfView {
            continue;
        }
        if let Some(b) = &t.observations[0] {
            let s = &sessions[0].scars[b.index];
            ab += s.area_mm2.unwrap_or(0.0);
            vb += s.volume_mm3.unwrap_or(0.0);
        }
        if let Some(a) = &t.observations[k] {
            let s = &sessions[k].scars[a.index];
            aa += s.area_mm2.unwrap_or(0.0);
            va += s.volume_mm3.unwrap_or(0.0) * gain;
        }
    }
    let cal = |v: f64| calibrated.then_some(v);
    let pct = |d: f64, b: f64| (calibrated && b > 0.0).then(|| 100.0 * d / b);
    ChangeSummary {
        session: k,
        relief_gain: sessions[k].relief_gain,
        counts,
        totals: Totals {
            total_area_before_mm2: cal(ab),
            total_area_after_mm2: cal(aa),
            total_area_change_mm2: cal(aa - ab),
            total_area_change_pct: pct(aa - ab, ab),
            total_volume_before_mm3: cal(vb),
            total_volume_after_mm3: cal(va),
            total_volume_change_mm3: cal(va - vb),
            total_volume_change_pct: pct(va - vb, vb),
        },
    }
}

/// Assign tracks (rows) to scars (columns) one-to-one, minimising the total cost where each
/// row or column left unassigned costs 0.5 (so a pair is only made when its cost is below 1,
/// the gate). `None` entries are forbidden. Exact (Hungarian algorithm on the padded square
/// matrix); ties resolve the same way every run.
fn assign_with_gate(cost: &[Vec<Option<f64>>], n: usize, m: usize) -> Vec<Option<usize>> {
    let size = n + m;
    if n == 0 || m == 0 {
        return vec![None; n];
    }
    const FORBID: f64 = 1e6;
    let c = |i: usize, j: usize| -> f64 {
        match (i < n, j < m) {
            (true, true) => cost[i][j].unwrap_or(FORBID),
            // Row i unassigned: its own dummy column.
            (true, false) => {
                if j - m == i {
                    0.5
                } else {
                    FORBID
                }
            }
            // Column j unassigned: its own dummy row.
            (false, true) => {
                if i - n == j {
                    0.5
                } else {
                    FORBID
                }
            }
            (false, false) => 0.0,
        }
    };
    let col_of_row = hungarian(size, c);
    (0..n)
        .map(|i| {
            let j = col_of_row[i];
            (j < m && cost[i][j].is_some()).then_some(j)
        })
        .collect()
}

/// Minimum-cost perfect assignment of an `n`×`n` matrix (Kuhn–Munkres with potentials,
/// O(n³)); returns the column of each row.
fn hungarian(n: usize, c: impl Fn(usize, usize) -> f64) -> Vec<usize> {
    let inf = f64::INFINITY;
    // 1-based arrays as in the classic formulation; p[j] = row matched to column j.
    let mut u = vec![0.0; n + 1];
    let mut v = vec![0.0; n + 1];
    let mut p = vec![0usize; n + 1];
    let mut way = vec![0usize; n + 1];
    for i in 1..=n {
        p[0] = i;
        let mut j0 = 0usize;
        let mut minv = vec![inf; n + 1];
        let mut used = vec![false; n + 1];
        loop {
            used[j0] = true;
            let i0 = p[j0];
            let mut delta = inf;
            let mut j1 = 0usize;
            for j in 1..=n {
                if !used[j] {
                    let cur = c(i0 - 1, j - 1) - u[i0] - v[j];
                    if cur < minv[j] {
                        minv[j] = cur;
                        way[j] = j0;
                    }
                    if minv[j] < delta {
                        delta = minv[j];
                        j1 = j;
                    }
                }
            }
            for j in 0..=n {
                if used[j] {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
            if p[j0] == 0 {
                break;
            }
        }
        loop {
            let j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    let mut col_of_row = vec![0usize; n];
    for j in 1..=n {
        if p[j] > 0 {
            col_of_row[p[j] - 1] = j - 1;
        }
    }
    col_of_row
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A round scar of `diam_mm` and `depth` mm at (x, y) px, 0.05 mm per px.
    fn scar(id: u32, x: f64, y: f64, diam_mm: f64, depth: f64) -> Scar {
        let mm = 0.05;
        let area = std::f64::consts::PI * (0.5 * diam_mm).powi(2);
        Scar {
            id,
            centroid_px: [x, y],
            bbox_px: [0, 0, 1, 1],
            area_px: area / (mm * mm),
            area_mm2: Some(area),
            equivalent_diameter_mm: Some(diam_mm),
            depth_mm: Some(depth),
            mean_depth_mm: Some(0.5 * depth),
            volume_mm3: Some(0.5 * depth * area),
            depth_uncertainty_mm: Some(0.02 + 0.1 * depth),
            depth_px: depth / mm,
            depth_basis: "test".into(),
            kind: crate::measure::ScarType::Boxcar,
            type_confidence: 1.0,
            redness: 0.0,
            pigment: 0.0,
            floor_flatness: 0.5,
            pit_model_area_px: None,
        }
    }

    fn session(scars: &[Scar], shift: f64) -> SessionInput<'_> {
        SessionInput {
            scars,
            to_baseline: Affine([[1.0, 0.0, shift], [0.0, 1.0, 0.0]]),
            residual_px: 0.2,
            width: 400,
            height: 300,
            mm_per_px: Some(0.05),
            processing_factor: 2,
            relief_gain: None,
        }
    }

    /// A side of 2 mm² (800 px) with the given maximum depth and its uncertainty.
    fn side(d: Option<f64>, px: f64, unc: Option<f64>) -> Side {
        Side {
            area_mm2: Some(2.0),
            area_px: 800.0,
            depth_mm: d,
            depth_px: px,
            mean_depth_mm: Some(0.1),
            volume_mm3: Some(0.2),
            depth_unc_mm: unc,
            depth_unc_px: 1.0,
            edge_px: 2.0,
            edge_mm: Some(0.1),
        }
    }

    #[test]
    fn a_paired_depth_is_the_mean_of_both_readings_and_keeps_its_uncertainty() {
        let paired = side(Some(0.4), 8.0, Some(0.05));
        let m = paired.with_own_depth(&side(Some(0.2), 4.0, Some(0.2)));
        assert!((m.depth_mm.unwrap() - 0.3).abs() < 1e-12 && (m.depth_px - 6.0).abs() < 1e-12);
        assert_eq!(m.depth_unc_mm, Some(0.05));
        assert_eq!((m.volume_mm3, m.area_px), (Some(0.2), 800.0));
        // Without its own calibrated depth the paired reading stands.
        let u = side(None, 8.0, None).with_own_depth(&side(None, 4.0, None));
        assert_eq!(u.depth_mm, None);
        assert_eq!(
            paired.with_own_depth(&side(None, 4.0, None)).depth_mm,
            Some(0.4)
        );
    }

    #[test]
    fn a_fitted_depth_ratio_is_averaged_into_the_later_depth() {
        let before = side(Some(0.4), 8.0, Some(0.05));
        // Own reading 0.3; the fit says half the baseline's 0.4: 0.2; mean 0.25.
        let after = side(Some(0.3), 6.0, Some(0.07)).with_ratio_depth(&before, 0.5, 0.5);
        assert!((after.depth_mm.unwrap() - 0.25).abs() < 1e-12, "{after:?}");
        assert!((after.depth_px - 5.0).abs() < 1e-12);
        assert_eq!(after.depth_unc_mm, Some(0.07));
        assert_eq!((after.volume_mm3, after.area_px), (Some(0.2), 800.0));
        let own = side(Some(0.3), 6.0, None).with_ratio_depth(&side(None, 8.0, None), 0.5, 0.5);
        assert_eq!(own.depth_mm, Some(0.3));
    }

    #[test]
    fn three_sessions_keep_one_track_id_per_scar_and_new_scars_get_fresh_ids() {
        let s0 = [
            scar(1, 100.0, 100.0, 3.0, 0.3),
            scar(2, 200.0, 100.0, 3.0, 0.3),
        ];
        // Session 1 is shifted 20 px (its x + 20 = baseline x) and lists the scars the other
        // way round; session 2 adds a new scar and loses scar 1.
        let s1 = [
            scar(1, 180.0, 100.0, 3.0, 0.3),
            scar(2, 80.5, 100.5, 3.0, 0.3),
        ];
        let s2 = [
            scar(1, 70.0, 250.0, 2.0, 0.2),
            scar(2, 200.0, 101.0, 3.0, 0.3),
        ];
        let series = track_series(
            &[session(&s0, 0.0), session(&s1, 20.0), session(&s2, 0.0)],
            &TrackParams::default(),
        );
        let ids = |t: &Track| -> Vec<Option<u32>> {
            t.observations
                .iter()
                .map(|o| o.as_ref().map(|o| o.scar_id))
                .collect()
        };
        assert_eq!(series.tracks.len(), 3);
        assert_eq!(ids(&series.tracks[0]), vec![Some(1), Some(2), None]);
        assert_eq!(ids(&series.tracks[1]), vec![Some(2), Some(1), Some(2)]);
        assert_eq!(ids(&series.tracks[2]), vec![None, None, Some(1)]);
        assert_eq!(series.tracks[0].status[2], Some(Status::Resolved));
        assert_eq!(series.tracks[2].status[2], Some(Status::New));
        assert_eq!(series.tracks[1].status[2], Some(Status::Stable));
        assert_eq!(series.summaries[1].counts.resolved, 1);
    }

    #[test]
    fn a_change_within_the_combined_uncertainty_is_stable_and_beyond_it_is_not() {
        let s0 = [
            scar(1, 100.0, 100.0, 3.0, 0.30),
            scar(2, 200.0, 100.0, 3.0, 0.30),
            scar(3, 300.0, 100.0, 3.0, 0.30),
        ];
        // Depth σ = 0.05 mm each, so 2σ of the change is 0.14 mm.
        let s1 = [
            scar(1, 100.0, 100.0, 3.0, 0.25),
            scar(2, 200.0, 100.0, 3.0, 0.12),
            scar(3, 300.0, 100.0, 3.0, 0.50),
        ];
        let series = track_series(
            &[session(&s0, 0.0), session(&s1, 0.0)],
            &TrackParams::default(),
        );
        let st: Vec<_> = series.tracks.iter().map(|t| t.status[1]).collect();
        assert_eq!(
            st,
            vec![
                Some(Status::Stable),
                Some(Status::Improved),
                Some(Status::Worsened)
            ]
        );
        let c = series.tracks[1].changes[1].as_ref().expect("change");
        assert!((c.depth_change_mm.unwrap() + 0.18).abs() < 1e-12);
        assert!((c.depth_change_pct.unwrap() + 60.0).abs() < 1e-9);
    }

    /// Relief (mm) and labels on a 200×150 processing grid (factor 2, 0.1 mm per processing
    /// pixel) with one Gaussian pit of footprint radius 15 px at (50, 50).
    fn pit_maps(depth: f64) -> (ndarray::Array2<f32>, ndarray::Array2<u32>) {
        let k = std::f64::consts::LN_10 / (15.0f64 * 15.0);
        let g = |y: usize, x: usize| {
            (-k * ((x as f64 - 50.0).powi(2) + (y as f64 - 50.0).powi(2))).exp()
        };
        (
            ndarray::Array2::from_shape_fn((150, 200), |(y, x)| (-depth * g(y, x)) as f32),
            ndarray::Array2::from_shape_fn((150, 200), |(y, x)| u32::from(g(y, x) > 0.1)),
        )
    }

    #[test]
    fn with_relief_maps_the_change_is_measured_paired_not_from_the_single_photo_figures() {
        // The single-photo figures say 0.3 mm, then 0.16 mm; the relief maps say the scar
        // became 0.08 mm deep. Paired, each depth is the mean of both readings: 0.3 before,
        // 0.12 after; the later one is then averaged with the shape fit's reading (depth
        // ratio 0.08 / 0.3 times the baseline's 0.3 = 0.08): 0.10, so −0.20 (−0.22 from the
        // maps alone, −0.14 from the figures alone).
        let mut s0 = [scar(1, 101.0, 101.0, 3.0, 0.3)];
        s0[0].bbox_px = [70, 70, 131, 131];
        let mut s1 = s0.clone();
        s1[0].depth_mm = Some(0.16);
        s1[0].depth_px = 0.16 / 0.05;
        let (z0, l0) = pit_maps(0.3);
        let (z1, l1) = pit_maps(0.08);
        let labels = [1u32];
        let sessions = [session(&s0, 0.0), session(&s1, 0.0)];
        let p = TrackParams::default();
        let maps = [(&z0, &l0), (&z1, &l1)].map(|(z, l)| {
            Some(SessionMaps {
                height: z.view(),
                labels: l.view(),
                scar_labels: &labels,
                factor: 2,
                unit_per_px: 0.1,
                light_azimuth_deg: 0.0,
                cosines: None,
                pits: &[],
            })
        });
        let paired = track_series_with_maps(&sessions, &maps, &p);
        let c = paired.tracks[0].changes[1].as_ref().expect("change");
        assert_eq!(c.basis.method, "paired");
        assert!((c.depth_change_mm.unwrap() + 0.20).abs() < 0.01, "{c:?}");
        // The area comes from the maps alone (the figures' areas are equal, too).
        assert!(c.area_change_pct.unwrap().abs() < 5.0, "{c:?}");
        assert_eq!(paired.tracks[0].status[1], Some(Status::Improved));
        let single = track_series(&sessions, &p);
        let c = single.tracks[0].changes[1].as_ref().expect("change");
        assert_eq!(c.basis.method, "single_photo");
        assert!((c.depth_change_mm.unwrap() + 0.14).abs() < 1e-9, "{c:?}");
    }

    #[test]
    fn a_scar_outside_the_later_frame_is_out_of_view_not_resolved() {
        let s0 = [scar(1, 390.0, 100.0, 2.0, 0.3)];
        let s1: [Scar; 0] = [];
        // The later photo's x = 0 is baseline x = 100 and it is 250 px wide, so it ends
        // before baseline x = 390.
        let mut later = session(&s1, 100.0);
        later.width = 250;
        let series = track_series(&[session(&s0, 0.0), later], &TrackParams::default());
        assert_eq!(series.tracks[0].status[1], Some(Status::OutOfView));
        assert_eq!(series.summaries[0].counts.out_of_view, 1);
    }

    #[test]
    fn hungarian_finds_the_global_optimum_not_the_greedy_one() {
        // Greedy (closest pair first) takes (0,0) at 1 then (1,1) at 10: total 11.
        // Optimal: (0,1) at 2 + (1,0) at 2 = 4.
        let m = [[1.0, 2.0], [2.0, 10.0]];
        assert_eq!(hungarian(2, |i, j| m[i][j]), vec![1, 0]);
    }

    #[test]
    fn gate_leaves_far_pairs_unassigned() {
        let cost = vec![vec![Some(0.2), None], vec![None, None]];
        assert_eq!(assign_with_gate(&cost, 2, 2), vec![Some(0), None]);
    }
}
