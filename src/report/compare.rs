//! The `compare` document (DOMAIN.md §5) and its overlay: before and after side by side, the
//! after photo warped onto the before frame, each track's id on both, colour by status.

use image::{Rgb, RgbImage};
use serde::{Deserialize, Serialize};

use super::overlay::{draw_text, fill_rect, shade_rect, to_srgb, Style, HALO, TEXT};
use super::{font, Input, Tool, SCHEMA_VERSION};
use crate::analyze::{AnalyzeParams, Calibration, Summary};
use crate::compare::Comparison;
use crate::load::{ImageMeta, RgbPlanes};
use crate::measure::Scar;
use crate::register::{Affine, RegisterParams, Registration};
use crate::relief::Light;
use crate::track::{Change, StatusCounts, Totals, TrackParams};

/// The two photos.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Pair<T> {
    /// Before (baseline).
    pub before: T,
    /// After (the later session).
    pub after: T,
}

/// Parameters of a comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CompareParameters {
    /// Analysis of each photo.
    pub analysis: Pair<AnalyzeParams>,
    /// Registration.
    pub registration: RegisterParams,
    /// Tracking and the status rule.
    pub tracking: TrackParams,
}

/// One track of the comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MatchDoc {
    /// Track id (before scars 1.. in their order, then new ones).
    pub track_id: u32,
    /// improved | worsened | stable | resolved | new | out_of_view.
    pub status: String,
    /// The before scar (before-image pixels).
    pub before: Option<Scar>,
    /// The after scar with `centroid_px`, `bbox_px` and `area_px` in before-image pixels
    /// (mm figures as measured on the after photo).
    pub after: Option<Scar>,
    /// The after scar's centroid in the after photo's own pixels.
    pub after_centroid_own_px: Option<[f64; 2]>,
    /// Area change, mm².
    pub area_change_mm2: Option<f64>,
    /// Area change, %.
    pub area_change_pct: Option<f64>,
    /// Max depth change, mm (negative: shallower).
    pub depth_change_mm: Option<f64>,
    /// Max depth change, %.
    pub depth_change_pct: Option<f64>,
    /// Every change figure with its uncertainty (null unless seen in both photos).
    pub change: Option<Change>,
}

/// Summary of a comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CompareSummary {
    /// Tracks by status.
    pub counts_by_status: StatusCounts,
    /// Totals over the skin both photos show.
    #[serde(flatten)]
    pub totals: Totals,
    /// The rule that set each status.
    pub status_rule: String,
    /// The after photo's relief scale against the before photo's (`change::relief_gain`),
    /// applied to its depths and volumes before any change is taken; null where it could not
    /// be measured.
    #[serde(default)]
    pub relief_gain: Option<crate::change::ReliefGain>,
    /// Each photo's own analysis summary.
    pub analyses: Pair<Summary>,
}

/// The `compare` document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CompareDoc {
    /// [`SCHEMA_VERSION`].
    pub schema_version: String,
    /// The program that wrote it.
    pub tool: Tool,
    /// The photos.
    pub inputs: Pair<Input>,
    /// Parameters used.
    pub parameters: CompareParameters,
    /// Pixel scale of each photo and its source.
    pub calibration: Pair<Calibration>,
    /// Key light of each photo.
    pub light: Pair<Light>,
    /// After-image pixels → before-image pixels.
    pub registration: Registration,
    /// Things the reader must know.
    pub warnings: Vec<String>,
    /// One entry per track.
    pub matches: Vec<MatchDoc>,
    /// Totals and counts.
    pub summary: CompareSummary,
}

/// The status rule in words, with the parameters used.
pub fn status_rule(p: &TrackParams) -> String {
    format!(
        "both photos are measured over the same support (one reference ring, one footprint rule), the after photo's depths and volumes first put on the before photo's relief scale (summary.relief_gain, where applied); a change counts when it exceeds {:.1} × its combined one-sigma uncertainty sqrt(u_before² + u_after²); depth uses the ring noise of each photo plus {:.0} % of the depth, area uses {:.0} % of the area plus one processing pixel along the perimeter; improved = depth or area down and neither up, worsened = the reverse, otherwise stable",
        p.k_sigma,
        100.0 * p.depth_rel_uncertainty,
        100.0 * p.area_rel_uncertainty
    )
}

/// Map an after scar into before-image pixels.
fn to_before(s: &Scar, m: &Affine) -> Scar {
    let [x0, y0, x1, y1] = m.map_box(s.bbox_px.map(f64::from));
    let clamp = |v: f64| v.round().max(0.0) as u32;
    let sc = m.scale();
    Scar {
        centroid_px: m.apply(s.centroid_px),
        bbox_px: [x0, y0, x1, y1].map(clamp),
        area_px: s.area_px * sc * sc,
        depth_px: s.depth_px * sc,
        pit_model_area_px: s.pit_model_area_px.map(|a| a * sc * sc),
        ..s.clone()
    }
}

/// Build the `compare` document.
pub fn compare_doc(
    metas: Pair<&ImageMeta>,
    params: CompareParameters,
    c: &Comparison,
) -> CompareDoc {
    let m = c.registration.affine();
    let mut warnings: Vec<String> = c
        .before
        .warnings
        .iter()
        .map(|w| format!("before: {w}"))
        .chain(c.after.warnings.iter().map(|w| format!("after: {w}")))
        .collect();
    if c.registration.overlap < 0.9 {
        warnings.push(format!(
            "the photos overlap on {:.0} % of the before frame: scars outside the common view are out_of_view",
            100.0 * c.registration.overlap
        ));
    }
    if c.registration.residual_px > 1.5 {
        warnings.push(format!(
            "registration residual {:.1} px is high: skin may have deformed between sessions",
            c.registration.residual_px
        ));
    }
    let matches = c
        .series
        .tracks
        .iter()
        .map(|t| {
            let b = t.observations[0]
                .as_ref()
                .map(|o| c.before.scars[o.index].clone());
            let a = t.observations[1].as_ref().map(|o| &c.after.scars[o.index]);
            let ch = t.changes[1].clone();
            MatchDoc {
                track_id: t.track_id,
                status: t.status[1].map_or("unknown", |s| s.as_str()).into(),
                before: b,
                after: a.map(|s| to_before(s, &m)),
                after_centroid_own_px: a.map(|s| s.centroid_px),
                area_change_mm2: ch.as_ref().and_then(|c| c.area_change_mm2),
                area_change_pct: ch.as_ref().and_then(|c| c.area_change_pct),
                depth_change_mm: ch.as_ref().and_then(|c| c.depth_change_mm),
                depth_change_pct: ch.as_ref().and_then(|c| c.depth_change_pct),
                change: ch,
            }
        })
        .collect();
    let s = c.series.summaries.first();
    let summary = CompareSummary {
        counts_by_status: s.map(|s| s.counts).unwrap_or_default(),
        totals: s.map(|s| s.totals.clone()).unwrap_or_default(),
        status_rule: status_rule(&params.tracking),
        relief_gain: s.and_then(|s| s.relief_gain),
        analyses: Pair {
            before: c.before.summary.clone(),
            after: c.after.summary.clone(),
        },
    };
    CompareDoc {
        schema_version: SCHEMA_VERSION.into(),
        tool: Tool::current(),
        inputs: Pair {
            before: Input::from(metas.before),
            after: Input::from(metas.after),
        },
        parameters: params,
        calibration: Pair {
            before: c.before.calibration.clone(),
            after: c.after.calibration.clone(),
        },
        light: Pair {
            before: c.before.light,
            after: c.after.light,
        },
        registration: c.registration.clone(),
        warnings,
        matches,
        summary,
    }
}

/// Colour of a status on the overlay (Okabe–Ito: green, vermillion, grey, blue, yellow).
pub fn status_color(status: &str) -> Rgb<u8> {
    match status {
        "improved" => Rgb([0x00, 0x9E, 0x73]),
        "worsened" => Rgb([0xD5, 0x5E, 0x00]),
        "resolved" => Rgb([0x56, 0xB4, 0xE9]),
        "new" => Rgb([0xF0, 0xE4, 0x42]),
        "stable" => Rgb([0xBB, 0xBB, 0xBB]),
        _ => Rgb([0x88, 0x88, 0x88]),
    }
}

/// Draw a ring of radius `r` around (cx, cy): the coloured line over a dark halo.
fn ring(img: &mut RgbImage, cx: f64, cy: f64, r: f64, color: Rgb<u8>, st: Style) {
    let (w, h) = (img.width() as i64, img.height() as i64);
    let (line, halo) = (st.line as f64, st.halo as f64);
    let reach = r + line + halo + 1.0;
    for y in ((cy - reach).floor() as i64).max(0)..=((cy + reach).ceil() as i64).min(h - 1) {
        for x in ((cx - reach).floor() as i64).max(0)..=((cx + reach).ceil() as i64).min(w - 1) {
            let d = (x as f64 - cx).hypot(y as f64 - cy) - r;
            if d.abs() <= line / 2.0 + 0.5 {
                img.put_pixel(x as u32, y as u32, color);
            } else if d.abs() <= line / 2.0 + 0.5 + halo {
                img.put_pixel(x as u32, y as u32, HALO);
            }
        }
    }
}

/// Before (left) and after warped onto the before frame (right), each track ringed in its
/// status colour with its id on both sides, and a legend of the statuses.
pub fn draw_compare_overlay(before: &RgbPlanes, after: &RgbPlanes, doc: &CompareDoc) -> RgbImage {
    let left = to_srgb(before);
    let right_src = to_srgb(after);
    let (w, h) = left.dimensions();
    let gap = 8u32;
    let mut img = RgbImage::from_pixel(2 * w + gap, h, Rgb([0, 0, 0]));
    image::imageops::replace(&mut img, &left, 0, 0);
    // Warp the after photo into the before frame (bilinear, black outside).
    let inv = Affine(doc.registration.matrix)
        .inverse()
        .unwrap_or(Affine::IDENTITY);
    let (aw, ah) = right_src.dimensions();
    for y in 0..h {
        for x in 0..w {
            let p = inv.apply([x as f64, y as f64]);
            if p[0] < 0.0 || p[1] < 0.0 || p[0] > (aw - 1) as f64 || p[1] > (ah - 1) as f64 {
                continue;
            }
            let (x0, y0) = (p[0].floor() as u32, p[1].floor() as u32);
            let (x1, y1) = ((x0 + 1).min(aw - 1), (y0 + 1).min(ah - 1));
            let (fx, fy) = (p[0] - x0 as f64, p[1] - y0 as f64);
            let mut px = [0u8; 3];
            for (c, v) in px.iter_mut().enumerate() {
                let g = |xx, yy| f64::from(right_src.get_pixel(xx, yy).0[c]);
                let top = g(x0, y0) * (1.0 - fx) + g(x1, y0) * fx;
                let bot = g(x0, y1) * (1.0 - fx) + g(x1, y1) * fx;
                *v = (top * (1.0 - fy) + bot * fy).round().clamp(0.0, 255.0) as u8;
            }
            img.put_pixel(w + gap + x, y, Rgb(px));
        }
    }
    let st = Style::for_size(w, h);
    let s = i64::from(st.scale);
    for m in &doc.matches {
        let color = status_color(&m.status);
        for (scar, dx) in [(&m.before, 0i64), (&m.after, i64::from(w + gap))] {
            let Some(scar) = scar else { continue };
            let r = (scar.area_px / std::f64::consts::PI).sqrt() + 2.0;
            let (cx, cy) = (scar.centroid_px[0] + dx as f64, scar.centroid_px[1]);
            ring(&mut img, cx, cy, r, color, st);
            let text = m.track_id.to_string();
            let (tw, _) = font::text_size(&text);
            let tx = (cx + r * 0.75) as i64 + s;
            let ty = (cy - r * 0.75) as i64 - 8 * s;
            let tx = tx.min(dx + i64::from(w) - i64::from(tw) * s - s);
            draw_text(&mut img, tx, ty.max(0), &text, st.scale, color, true);
        }
    }
    // Legend at the top left of the before panel.
    let rows = ["improved", "worsened", "stable", "resolved", "new"];
    let c = &doc.summary.counts_by_status;
    let counts = [c.improved, c.worsened, c.stable, c.resolved, c.new];
    let line_h = 10 * s;
    let box_w = 16 * 6 * s;
    shade_rect(&mut img, 0, 0, box_w, line_h * 6 + 2 * s);
    draw_text(
        &mut img,
        2 * s,
        2 * s,
        "before  after",
        st.scale,
        TEXT,
        false,
    );
    for (i, (name, n)) in rows.iter().zip(counts).enumerate() {
        let y = 2 * s + line_h * (i as i64 + 1);
        fill_rect(&mut img, 2 * s, y, 5 * s, 5 * s, status_color(name));
        draw_text(
            &mut img,
            9 * s,
            y,
            &format!("{name} {n}"),
            st.scale,
            TEXT,
            false,
        );
    }
    img
}
