//! Overlay drawing: the photo with every scar's footprint outlined in its type's colour,
//! numbered with its id, and a legend box. Input is the linear-light planes and the
//! [`Analysis`]; output is an 8-bit sRGB image of the photo's size (PNG writing carries no
//! metadata of the input).
//!
//! Outlines come from the label map, which is at processing resolution: label pixel
//! `(py, px)` covers camera pixels `[py·f, py·f + f) × [px·f, px·f + f)` with `f` the
//! processing factor. [`Scar`] does not record its label, so each scar is matched to the
//! label whose region holds most of the scar's footprint box (a footprint is a subset of one
//! label's region, so that label's bounding box contains the scar's); ties go to the label
//! nearest the scar's centroid, and each label serves at most one scar.
//!
//! Colours are the Okabe–Ito colour-blind-safe orange, sky blue and reddish purple, each
//! line and glyph sandwiched in a near-black halo so it reads on light and dark skin.

use std::path::Path;

use image::codecs::png::PngEncoder;
use image::{ExtendedColorType, ImageEncoder, Rgb, RgbImage};
use ndarray::Array2;
use rayon::prelude::*;

use super::{font, write_atomic, WriteError};
use crate::analyze::Analysis;
use crate::load::{linear_to_srgb_u8_fast, RgbPlanes};
use crate::measure::{Scar, ScarType};

/// Outline and label colour of icepick scars (#E69F00, orange).
pub const ICEPICK_COLOR: Rgb<u8> = Rgb([0xE6, 0x9F, 0x00]);
/// Outline and label colour of boxcar scars (#56B4E9, sky blue).
pub const BOXCAR_COLOR: Rgb<u8> = Rgb([0x56, 0xB4, 0xE9]);
/// Outline and label colour of rolling scars (#CC79A7, reddish purple).
pub const ROLLING_COLOR: Rgb<u8> = Rgb([0xCC, 0x79, 0xA7]);
/// Halo around every line and glyph.
pub(crate) const HALO: Rgb<u8> = Rgb([16, 16, 16]);
/// Legend text.
pub(crate) const TEXT: Rgb<u8> = Rgb([240, 240, 240]);

/// Colour of a scar type on the overlay.
pub fn type_color(kind: ScarType) -> Rgb<u8> {
    match kind {
        ScarType::Icepick => ICEPICK_COLOR,
        ScarType::Boxcar => BOXCAR_COLOR,
        ScarType::Rolling => ROLLING_COLOR,
    }
}

/// Line widths and text size for a photo, so marks stay visible at any resolution.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Style {
    /// Coloured outline thickness, px.
    pub(crate) line: i64,
    /// Dark halo thickness on each side of the outline, px.
    pub(crate) halo: i64,
    /// Camera pixels per font cell.
    pub(crate) scale: u32,
}

impl Style {
    pub(crate) fn for_size(w: u32, h: u32) -> Self {
        let long = w.max(h);
        let line = if long < 1000 {
            1
        } else {
            (long / 1000).clamp(2, 4)
        };
        Style {
            line: i64::from(line),
            halo: i64::from(line.div_ceil(2)),
            scale: (long / 700).max(1),
        }
    }
}

/// Encode `img` as PNG in memory and write it atomically to `path`. Only the pixels are
/// written: no metadata chunk (EXIF, text, ICC) is carried over from the input photo.
///
/// # Errors
///
/// [`WriteError`] naming `path` if encoding or writing fails.
pub fn write_png(img: &RgbImage, path: &Path) -> Result<(), WriteError> {
    let mut bytes = Vec::new();
    PngEncoder::new(&mut bytes)
        .write_image(
            img.as_raw(),
            img.width(),
            img.height(),
            ExtendedColorType::Rgb8,
        )
        .map_err(|e| WriteError {
            path: path.to_path_buf(),
            source: std::io::Error::other(e),
        })?;
    write_atomic(path, &bytes)
}

/// Draw the overlay of one analysed photo.
pub fn draw_overlay(planes: &RgbPlanes, a: &Analysis) -> RgbImage {
    let mut img = to_srgb(planes);
    let (w, h) = img.dimensions();
    let style = Style::for_size(w, h);
    let labels = &a.regions.labels;
    let f = a.processing.factor.max(1);
    let boxes = label_boxes(labels);
    let matched = match_labels(labels, &boxes, f, &a.scars);
    let map = LabelMap { labels, f };

    // Halos first, outlines over them, so a line crossing another scar's halo stays visible.
    for pass in [Pass::Halo, Pass::Line] {
        for (scar, &label) in a.scars.iter().zip(&matched) {
            let Some(label) = label else { continue };
            if let Some(Some(b)) = boxes.get(label as usize) {
                let camera_box = b.map(|v| (v * f) as i64);
                let camera_box = [
                    camera_box[0],
                    camera_box[1],
                    camera_box[2] + f as i64 - 1,
                    camera_box[3] + f as i64 - 1,
                ];
                outline(
                    &mut img,
                    &map,
                    camera_box,
                    label,
                    type_color(scar.kind),
                    style,
                    pass,
                );
            }
        }
    }
    // The legend goes on top last, but ids keep clear of where it will be.
    let mut placed = Vec::with_capacity(a.scars.len() + 1);
    placed.push(legend(&mut img, a, style, false));
    for scar in &a.scars {
        number(&mut img, scar, style, &mut placed);
    }
    legend(&mut img, a, style, true);
    img
}

/// Linear planes → 8-bit sRGB, row by row in parallel.
pub(crate) fn to_srgb(planes: &RgbPlanes) -> RgbImage {
    let (w, h) = (planes.width(), planes.height());
    let mut buf = vec![0u8; w * h * 3];
    if w > 0 {
        buf.par_chunks_exact_mut(w * 3)
            .enumerate()
            .for_each(|(y, row)| {
                let (r, g, b) = (planes.r.row(y), planes.g.row(y), planes.b.row(y));
                for (((px, &r), &g), &b) in row.chunks_exact_mut(3).zip(&r).zip(&g).zip(&b) {
                    px[0] = linear_to_srgb_u8_fast(r);
                    px[1] = linear_to_srgb_u8_fast(g);
                    px[2] = linear_to_srgb_u8_fast(b);
                }
            });
    }
    // The buffer length is exactly w·h·3, so this cannot fail; an empty image is the fallback.
    RgbImage::from_raw(w as u32, h as u32, buf).unwrap_or_default()
}

/// The label map seen at camera resolution.
struct LabelMap<'a> {
    labels: &'a Array2<u32>,
    f: usize,
}

impl LabelMap<'_> {
    /// Label covering camera pixel `(x, y)`; 0 outside the map (including the strip the
    /// integer downsampling left uncovered).
    fn at(&self, x: i64, y: i64) -> u32 {
        if x < 0 || y < 0 {
            return 0;
        }
        let (px, py) = (x as usize / self.f, y as usize / self.f);
        self.labels.get([py, px]).copied().unwrap_or(0)
    }
}

/// Bounding box `[x0, y0, x1, y1]` (inclusive, processing pixels) of every label, indexed by
/// label value; `None` for values absent from the map.
fn label_boxes(labels: &Array2<u32>) -> Vec<Option<[usize; 4]>> {
    let mut boxes: Vec<Option<[usize; 4]>> = Vec::new();
    for ((y, x), &l) in labels.indexed_iter() {
        if l == 0 {
            continue;
        }
        let l = l as usize;
        if boxes.len() <= l {
            boxes.resize(l + 1, None);
        }
        boxes[l] = Some(match boxes[l] {
            None => [x, y, x, y],
            Some([x0, y0, x1, y1]) => [x0.min(x), y0.min(y), x1.max(x), y1.max(y)],
        });
    }
    boxes
}

/// For each scar, the label that holds its footprint (see the module notes).
fn match_labels(
    labels: &Array2<u32>,
    boxes: &[Option<[usize; 4]>],
    f: usize,
    scars: &[Scar],
) -> Vec<Option<u32>> {
    let (ph, pw) = labels.dim();
    // (label's box contains the scar's, pixels of the label inside the scar's box,
    //  −distance² to the centroid, scar, label)
    let mut cands: Vec<(bool, usize, i64, usize, u32)> = Vec::new();
    for (si, s) in scars.iter().enumerate() {
        let [x0, y0, x1, y1] = s.bbox_px.map(|v| v as usize / f);
        let (x1, y1) = (x1.min(pw.saturating_sub(1)), y1.min(ph.saturating_sub(1)));
        if x0 > x1 || y0 > y1 {
            continue;
        }
        let (cx, cy) = (s.centroid_px[0] / f as f64, s.centroid_px[1] / f as f64);
        // label → (count, best squared distance in processing px)
        let mut seen: Vec<(u32, usize, f64)> = Vec::new();
        for y in y0..=y1 {
            for x in x0..=x1 {
                let l = labels[[y, x]];
                if l == 0 {
                    continue;
                }
                let d2 = (x as f64 - cx).powi(2) + (y as f64 - cy).powi(2);
                match seen.iter_mut().find(|e| e.0 == l) {
                    Some(e) => {
                        e.1 += 1;
                        e.2 = e.2.min(d2);
                    }
                    None => seen.push((l, 1, d2)),
                }
            }
        }
        for (l, n, d2) in seen {
            let contains = boxes
                .get(l as usize)
                .copied()
                .flatten()
                .is_some_and(|b| b[0] <= x0 && b[1] <= y0 && b[2] >= x1 && b[3] >= y1);
            cands.push((contains, n, -(d2.round() as i64), si, l));
        }
    }
    // Best evidence first; scar index and label break ties so the result is deterministic.
    cands.sort_by(|a, b| {
        (b.0, b.1, b.2)
            .cmp(&(a.0, a.1, a.2))
            .then(a.3.cmp(&b.3))
            .then(a.4.cmp(&b.4))
    });
    let mut out = vec![None; scars.len()];
    let mut used = vec![false; boxes.len()];
    for (_, _, _, si, l) in cands {
        let l_used = &mut used[l as usize];
        if out[si].is_none() && !*l_used {
            out[si] = Some(l);
            *l_used = true;
        }
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Pass {
    Halo,
    Line,
}

/// Paint the outline of one label's region (the inner band of the region, in `line` colour)
/// or, in the halo pass, the dark bands on both sides of it. `camera_box` is the region's
/// bounding box in camera pixels, inclusive.
fn outline(
    img: &mut RgbImage,
    map: &LabelMap<'_>,
    camera_box: [i64; 4],
    label: u32,
    line: Rgb<u8>,
    st: Style,
    pass: Pass,
) {
    let (w, h) = (i64::from(img.width()), i64::from(img.height()));
    let reach = st.line + st.halo;
    let [bx0, by0, bx1, by1] = camera_box;
    let (x0, y0) = ((bx0 - reach).max(0), (by0 - reach).max(0));
    let (x1, y1) = ((bx1 + reach).min(w - 1), (by1 + reach).min(h - 1));
    let color = match pass {
        Pass::Halo => HALO,
        Pass::Line => line,
    };
    for y in y0..=y1 {
        for x in x0..=x1 {
            let inside = map.at(x, y) == label;
            // Chebyshev distance to the nearest pixel on the other side of the boundary.
            let limit = if inside { reach } else { st.halo };
            let d = distance_to(map, x, y, limit, |l| (l == label) != inside);
            let Some(d) = d else { continue };
            let paint = match (pass, inside) {
                (Pass::Line, true) => d <= st.line,
                (Pass::Line, false) => false,
                (Pass::Halo, true) => d > st.line,
                (Pass::Halo, false) => true,
            };
            if paint {
                img.put_pixel(x as u32, y as u32, color);
            }
        }
    }
}

/// Smallest Chebyshev distance ≤ `limit` from `(x, y)` to a pixel whose label satisfies
/// `other` (pixels outside the image count as label 0).
fn distance_to(
    map: &LabelMap<'_>,
    x: i64,
    y: i64,
    limit: i64,
    other: impl Fn(u32) -> bool,
) -> Option<i64> {
    (1..=limit).find(|&d| {
        (-d..=d).any(|k| {
            other(map.at(x + k, y - d))
                || other(map.at(x + k, y + d))
                || other(map.at(x - d, y + k))
                || other(map.at(x + d, y + k))
        })
    })
}

/// Draw `text` with its top-left corner at `(x, y)`, clipped to the image, each glyph cell a
/// `scale`² square, in `color` over a one-cell dark halo when `halo` is set.
pub(crate) fn draw_text(
    img: &mut RgbImage,
    x: i64,
    y: i64,
    text: &str,
    scale: u32,
    color: Rgb<u8>,
    halo: bool,
) {
    let s = i64::from(scale);
    let cells: Vec<(u32, u32)> = font::inked_cells(text).collect();
    if halo {
        let r = ((s + 1) / 2).max(1);
        for &(cx, cy) in &cells {
            let (px, py) = (x + i64::from(cx) * s, y + i64::from(cy) * s);
            fill_rect(img, px - r, py - r, s + 2 * r, s + 2 * r, HALO);
        }
    }
    for &(cx, cy) in &cells {
        fill_rect(
            img,
            x + i64::from(cx) * s,
            y + i64::from(cy) * s,
            s,
            s,
            color,
        );
    }
}

/// Fill a rectangle, clipped to the image.
pub(crate) fn fill_rect(img: &mut RgbImage, x: i64, y: i64, w: i64, h: i64, color: Rgb<u8>) {
    let (iw, ih) = (i64::from(img.width()), i64::from(img.height()));
    for yy in y.max(0)..(y + h).min(ih) {
        for xx in x.max(0)..(x + w).min(iw) {
            img.put_pixel(xx as u32, yy as u32, color);
        }
    }
}

/// Darken a rectangle (a legend background the photo still shows through), clipped.
pub(crate) fn shade_rect(img: &mut RgbImage, x: i64, y: i64, w: i64, h: i64) {
    let (iw, ih) = (i64::from(img.width()), i64::from(img.height()));
    for yy in y.max(0)..(y + h).min(ih) {
        for xx in x.max(0)..(x + w).min(iw) {
            let p = img.get_pixel_mut(xx as u32, yy as u32);
            for c in p.0.iter_mut() {
                *c = (u16::from(*c) * 45 / 255 + 8) as u8;
            }
        }
    }
}

/// Write the scar's id at the first corner of its box (above-right, above-left, below-right,
/// below-left) where it stays inside the image and clear of the ids already placed
/// (`placed`, rectangles `[x0, y0, x1, y1)`); the first corner when none is clear.
fn number(img: &mut RgbImage, scar: &Scar, st: Style, placed: &mut Vec<[i64; 4]>) {
    let text = scar.id.to_string();
    let s = i64::from(st.scale);
    let (tw, th) = font::text_size(&text);
    let (tw, th) = (i64::from(tw) * s, i64::from(th) * s);
    let (w, h) = (i64::from(img.width()), i64::from(img.height()));
    let gap = st.line + st.halo + s;
    let [x0, y0, x1, y1] = scar.bbox_px.map(i64::from);
    let (left, right) = (x0 - gap - tw, x1 + gap);
    let (above, below) = (y0 - gap - th, y1 + gap);
    let corners = [(right, above), (left, above), (right, below), (left, below)];
    let rect = |(x, y): (i64, i64)| {
        let x = x.clamp(0, (w - tw).max(0));
        let y = y.clamp(0, (h - th).max(0));
        // One font cell of margin so neighbouring ids do not touch.
        [x - s, y - s, x + tw + s, y + th + s]
    };
    let fits = |(x, y): (i64, i64)| x >= 0 && y >= 0 && x + tw <= w && y + th <= h;
    let clear = |r: [i64; 4]| {
        placed
            .iter()
            .all(|p| r[2] <= p[0] || p[2] <= r[0] || r[3] <= p[1] || p[3] <= r[1])
    };
    let chosen = corners
        .iter()
        .copied()
        .find(|&c| fits(c) && clear(rect(c)))
        .unwrap_or(corners[0]);
    let r = rect(chosen);
    placed.push(r);
    draw_text(
        img,
        r[0] + s,
        r[1] + s,
        &text,
        st.scale,
        type_color(scar.kind),
        true,
    );
}

/// Legend box in the top-left corner: a swatch, name and count per type, then the scar count
/// and the light used.
/// Returns the box it covers `[x0, y0, x1, y1)`; with `draw` false it only measures.
fn legend(img: &mut RgbImage, a: &Analysis, st: Style, draw: bool) -> [i64; 4] {
    let c = &a.summary.counts_by_type;
    let rows = [
        (ICEPICK_COLOR, format!("icepick {}", c.icepick)),
        (BOXCAR_COLOR, format!("boxcar {}", c.boxcar)),
        (ROLLING_COLOR, format!("rolling {}", c.rolling)),
    ];
    let n = a.summary.count;
    let last = format!(
        "{n} scar{}, light az {:.0}° el {:.0}°",
        if n == 1 { "" } else { "s" },
        a.light.azimuth_deg,
        a.light.elevation_deg
    );
    let s = i64::from(st.scale);
    let line_h = (i64::from(font::GLYPH_H) + 4) * s;
    let pad = 3 * s;
    let swatch = i64::from(font::GLYPH_H) * s;
    let width_of = |t: &str| i64::from(font::text_size(t).0) * s;
    let rows_w = rows
        .iter()
        .map(|(_, t)| swatch + 2 * s + width_of(t))
        .max()
        .unwrap_or(0);
    let box_w = rows_w.max(width_of(&last)) + 2 * pad;
    let box_h = 4 * line_h - 4 * s + 2 * pad;
    let (x0, y0) = (2 * s, 2 * s);
    if !draw {
        return [x0, y0, x0 + box_w, y0 + box_h];
    }
    shade_rect(img, x0, y0, box_w, box_h);
    for (i, (color, text)) in rows.iter().enumerate() {
        let y = y0 + pad + i as i64 * line_h;
        fill_rect(img, x0 + pad, y, swatch, swatch, *color);
        draw_text(
            img,
            x0 + pad + swatch + 2 * s,
            y,
            text,
            st.scale,
            TEXT,
            false,
        );
    }
    draw_text(
        img,
        x0 + pad,
        y0 + pad + 3 * line_h,
        &last,
        st.scale,
        TEXT,
        false,
    );
    [x0, y0, x0 + box_w, y0 + box_h]
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    fn scar(id: u32, bbox: [u32; 4], c: [f64; 2]) -> Scar {
        Scar {
            id,
            centroid_px: c,
            bbox_px: bbox,
            area_px: 1.0,
            area_mm2: None,
            equivalent_diameter_mm: None,
            depth_mm: None,
            mean_depth_mm: None,
            volume_mm3: None,
            depth_uncertainty_mm: None,
            depth_px: 1.0,
            depth_basis: String::new(),
            kind: ScarType::Boxcar,
            type_confidence: 1.0,
            redness: 0.0,
            pigment: 0.0,
            floor_flatness: 0.5,
            pit_model_area_px: None,
        }
    }

    #[test]
    fn scars_match_the_label_that_holds_their_box_at_processing_scale() {
        // Two labels; factor 2, so camera boxes are twice the label coordinates.
        let labels = array![
            [0, 0, 0, 0, 0, 0],
            [0, 7, 7, 0, 3, 0],
            [0, 7, 7, 0, 3, 0],
            [0, 0, 0, 0, 0, 0],
        ];
        let scars = [
            scar(1, [8, 2, 9, 5], [8.5, 3.5]),
            scar(2, [2, 2, 5, 5], [3.5, 3.5]),
        ];
        let boxes = label_boxes(&labels);
        assert_eq!(
            match_labels(&labels, &boxes, 2, &scars),
            vec![Some(3), Some(7)]
        );
    }

    #[test]
    fn a_scar_nested_in_a_big_region_keeps_its_own_label() {
        // Label 1 is a ring around label 2; the small scar's box also overlaps label 1.
        let mut labels = Array2::<u32>::from_elem((10, 10), 1);
        labels.slice_mut(ndarray::s![4..6, 4..7]).fill(2);
        let scars = [
            scar(1, [3, 3, 6, 6], [4.5, 4.5]),
            scar(2, [0, 0, 9, 9], [4.5, 4.5]),
        ];
        let boxes = label_boxes(&labels);
        assert_eq!(
            match_labels(&labels, &boxes, 1, &scars),
            vec![Some(2), Some(1)]
        );
    }

    #[test]
    fn outline_is_drawn_on_the_region_edge_and_not_inside() {
        let mut labels = Array2::<u32>::zeros((40, 40));
        labels.slice_mut(ndarray::s![10..30, 10..30]).fill(1);
        let map = LabelMap {
            labels: &labels,
            f: 1,
        };
        let mut img = RgbImage::new(40, 40);
        let st = Style {
            line: 1,
            halo: 1,
            scale: 1,
        };
        assert_eq!(label_boxes(&labels)[1], Some([10, 10, 29, 29]));
        for pass in [Pass::Halo, Pass::Line] {
            outline(&mut img, &map, [10, 10, 29, 29], 1, BOXCAR_COLOR, st, pass);
        }
        assert_eq!(*img.get_pixel(10, 20), BOXCAR_COLOR);
        assert_eq!(*img.get_pixel(11, 20), HALO);
        assert_eq!(*img.get_pixel(9, 20), HALO);
        assert_eq!(*img.get_pixel(20, 20), Rgb([0, 0, 0]));
        assert_eq!(*img.get_pixel(5, 20), Rgb([0, 0, 0]));
    }
}
