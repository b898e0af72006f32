//! HTML reports people look at: `report/index.html` for a study, `report/subjects/<name>.html`
//! per subject, and one page for a `compare` pair.
//!
//! Data flows one way: the documents as written to disk ([`SubjectDoc`], [`StudyDoc`],
//! [`CompareDoc`]) and the overlay images → a page model of plain strings (numbers formatted
//! here, so the same documents give the same bytes) → minijinja templates with HTML
//! auto-escaping (embedded with `include_str!`). Pages are self-contained: CSS inline, plots
//! inline SVG ([`super::plot`]), overlays re-encoded as small JPEG `data:` URIs with every
//! scar's track id drawn over them as SVG, no script and no network access. One subject is
//! in memory at a time.

use std::path::{Component, Path, PathBuf};

use base64::Engine as _;
use image::codecs::jpeg::JpegEncoder;
use image::imageops::FilterType;
use image::RgbImage;
use minijinja::value::Serde;
use minijinja::{context, AutoEscape, Environment, Value};
use serde::Serialize;

use super::compare::CompareDoc;
use super::overlay::type_color;
use super::plot::{line_plot, PlotError, Series};
use super::study::{summarize_subject, PhotoStatus, StudyDoc, SubjectDoc, ViewDoc};
use super::{write_atomic, WriteError};
use crate::measure::Scar;
use crate::relief::{Light, LightSource};
use crate::study::Failure;

/// Longest side of an overlay as embedded in a page, px (the full-size PNG stays on disk).
pub const THUMB_LONG_SIDE: u32 = 720;
/// JPEG quality of the embedded overlays.
const THUMB_QUALITY: u8 = 82;

/// A page could not be built or written.
#[derive(Debug, thiserror::Error)]
pub enum HtmlError {
    /// A template failed to render (a bug in scarscope).
    #[error("cannot render the {page} page: {source}")]
    Template {
        /// Which page.
        page: &'static str,
        /// What minijinja said.
        #[source]
        source: minijinja::Error,
    },
    /// A plot could not be drawn.
    #[error(transparent)]
    Plot(#[from] PlotError),
    /// The page could not be written.
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// Folder of the report inside a batch output folder.
pub const REPORT_DIR: &str = "report";

/// Path of a subject's page relative to the output folder.
pub fn subject_page_rel(output_name: &str) -> String {
    format!("{REPORT_DIR}/subjects/{output_name}.html")
}

/// Percent-encode everything but RFC 3986 unreserved characters, for a link path segment.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Render `subject`'s page; overlays are read from `out` (the batch output folder).
///
/// # Errors
///
/// [`HtmlError`] if a plot or the template fails. A missing or unreadable overlay is shown
/// as such on the page, not an error.
pub fn subject_page(out: &Path, doc: &SubjectDoc) -> Result<String, HtmlError> {
    let summary = summarize_subject(doc);
    let sessions: Vec<SessionRow> = summary
        .sessions
        .iter()
        .map(|s| SessionRow {
            session: s.session.clone(),
            date: s.date.clone().unwrap_or_default(),
            photos: s.photos,
            analysed: s.analysed,
            scars: s.scars,
            total_area: fmt_opt(s.total_area_mm2, 2),
        })
        .collect();
    let mut views = Vec::with_capacity(doc.views.len());
    for (k, v) in doc.views.iter().enumerate() {
        views.push(subject_view(out, v, k)?);
    }
    render(
        "subject.html",
        "subject",
        context! {
            version => env!("CARGO_PKG_VERSION"),
            subject => doc.subject.as_str(),
            index_href => "../index.html",
            order => doc.order + 1,
            session_order => serde_json::to_string(&doc.session_order)
                .unwrap_or_default()
                .trim_matches('"')
                .replace('_', " "),
            sessions => Serde(&sessions),
            views => Serde(&views),
            warnings => Serde(&doc.warnings),
            failures => Serde(&doc.failures),
        },
    )
}

/// Render `subject`'s page and write it to `out/report/subjects/<output_name>.html`.
///
/// # Errors
///
/// As [`subject_page`], plus [`HtmlError::Write`].
pub fn write_subject_page(out: &Path, doc: &SubjectDoc) -> Result<PathBuf, HtmlError> {
    let html = subject_page(out, doc)?;
    let path = out.join(subject_page_rel(&doc.output_name));
    write_atomic(&path, html.as_bytes())?;
    Ok(path)
}

/// Render the study's index page from `study.json`.
///
/// # Errors
///
/// [`HtmlError::Template`] if the template fails.
pub fn study_index(study: &StudyDoc) -> Result<String, HtmlError> {
    #[derive(Serialize)]
    struct SubjectRow {
        subject: String,
        /// Percent-encoded, so safe in an attribute as it is.
        #[serde(serialize_with = "safe")]
        href: String,
        views: String,
        sessions: Vec<SessionRow>,
        failures: usize,
        warnings: usize,
    }
    let subjects: Vec<SubjectRow> = study
        .subjects
        .iter()
        .map(|s| {
            let name = s
                .document
                .strip_prefix("subjects/")
                .and_then(|d| d.strip_suffix(".json"))
                .unwrap_or(&s.document);
            SubjectRow {
                subject: s.subject.clone(),
                href: format!("subjects/{}.html", percent_encode(name)),
                views: s.views.join(", "),
                sessions: s
                    .sessions
                    .iter()
                    .map(|x| SessionRow {
                        session: x.session.clone(),
                        date: x.date.clone().unwrap_or_default(),
                        photos: x.photos,
                        analysed: x.analysed,
                        scars: x.scars,
                        total_area: fmt_opt(x.total_area_mm2, 2),
                    })
                    .collect(),
                failures: s.failures,
                warnings: s.warnings,
            }
        })
        .collect();
    let title = study
        .study
        .name
        .clone()
        .unwrap_or_else(|| study.study.root.clone());
    render(
        "index.html",
        "index",
        context! {
            version => env!("CARGO_PKG_VERSION"),
            title,
            root => study.study.root.as_str(),
            shard => study.shard.map(|s| format!("{}/{}", s.index, s.count)),
            totals => Serde(study.totals),
            subjects => Serde(&subjects),
            warnings => Serde(&study.warnings),
            failures => Serde(&study.failures),
        },
    )
}

/// Render the study's index page and write it to `out/report/index.html`.
///
/// # Errors
///
/// As [`study_index`], plus [`HtmlError::Write`].
pub fn write_study_index(out: &Path, study: &StudyDoc) -> Result<PathBuf, HtmlError> {
    let html = study_index(study)?;
    let path = out.join(REPORT_DIR).join("index.html");
    write_atomic(&path, html.as_bytes())?;
    Ok(path)
}

/// Render the page of one `compare` pair; `overlay` is the side-by-side overlay image.
///
/// # Errors
///
/// [`HtmlError`] if a plot or the template fails.
pub fn compare_page(doc: &CompareDoc, overlay: Option<&RgbImage>) -> Result<String, HtmlError> {
    let columns = vec!["before".to_string(), "after".to_string()];
    let mm =
        doc.calibration.before.mm_per_px.is_some() && doc.calibration.after.mm_per_px.is_some();
    let units = Units::new(mm);
    let rows: Vec<Row> = doc
        .matches
        .iter()
        .map(|m| {
            let kind = m
                .before
                .as_ref()
                .or(m.after.as_ref())
                .map(|s| s.kind.as_str());
            let before = Cell::seen(m.before.as_ref(), mm, "", "baseline");
            let after = match &m.after {
                Some(s) => Cell {
                    change: fmt_change(m.area_change_mm2, m.depth_change_mm, mm, m.change.as_ref()),
                    basis: fmt_basis(m.change.as_ref().map(|c| &c.basis)),
                    status: m.status.clone(),
                    ..Cell::seen(Some(s), mm, "", "")
                },
                None => Cell::absent(&m.status),
            };
            Row {
                track: m.track_id,
                kind: kind.unwrap_or("").to_string(),
                cells: vec![before, after],
            }
        })
        .collect();
    let scar_series: Vec<(Option<&Scar>, Vec<Option<&Scar>>)> = doc
        .matches
        .iter()
        .map(|m| {
            (
                m.before.as_ref().or(m.after.as_ref()),
                vec![m.before.as_ref(), m.after.as_ref()],
            )
        })
        .collect();
    let all_before: Vec<&Scar> = doc
        .matches
        .iter()
        .filter_map(|m| m.before.as_ref())
        .collect();
    let all_after: Vec<&Scar> = doc
        .matches
        .iter()
        .filter_map(|m| m.after.as_ref())
        .collect();
    let plots = plots(&columns, &scar_series, &[all_before, all_after], &units)?;
    let pictures = vec![match overlay {
        Some(img) => {
            let (uri, width, height) = thumbnail(img, 2 * THUMB_LONG_SIDE);
            Picture {
                caption: "before | after".into(),
                detail: "after warped onto the before frame; numbers are track ids".into(),
                uri: Some(uri),
                width,
                height,
                labels: Vec::new(),
                note: String::new(),
            }
        }
        None => Picture::placeholder("before | after", "no overlay"),
    }];
    let reg = &doc.registration;
    let calibration = vec![
        cal_row(
            &columns[0],
            &doc.inputs.before.path,
            (doc.inputs.before.width, doc.inputs.before.height),
            &doc.calibration.before.mm_per_px,
            &doc.calibration.before.source,
            &doc.light.before,
            "baseline".into(),
        ),
        cal_row(
            &columns[1],
            &doc.inputs.after.path,
            (doc.inputs.after.width, doc.inputs.after.height),
            &doc.calibration.after.mm_per_px,
            &doc.calibration.after.source,
            &doc.light.after,
            fmt_registration(reg.scale, reg.rotation_deg, reg.residual_px, &reg.method)
                + &fmt_relief_gain(doc.summary.relief_gain.as_ref()),
        ),
    ];
    let view = ViewModel {
        title: "Comparison".into(),
        anchor: "comparison".into(),
        tracking: format!("{} tracks; {}", doc.matches.len(), doc.summary.status_rule),
        note: None,
        warnings: Vec::new(),
        pictures,
        columns,
        area_unit: units.area,
        depth_unit: units.depth,
        rows,
        plots,
        calibration,
    };
    render(
        "compare.html",
        "compare",
        context! {
            version => env!("CARGO_PKG_VERSION"),
            before => doc.inputs.before.path.as_str(),
            after => doc.inputs.after.path.as_str(),
            counts => Serde(doc.summary.counts_by_status),
            views => Serde(vec![view]),
            warnings => Serde(&doc.warnings),
            failures => Serde(Vec::<Failure>::new()),
        },
    )
}

/// One session in a summary table.
#[derive(Debug, Serialize)]
struct SessionRow {
    session: String,
    date: String,
    photos: usize,
    analysed: usize,
    scars: usize,
    total_area: String,
}

/// One view's section of a page.
#[derive(Debug, Serialize)]
struct ViewModel {
    title: String,
    anchor: String,
    tracking: String,
    note: Option<String>,
    /// Warnings of the photos' analyses, each prefixed with its session.
    warnings: Vec<String>,
    pictures: Vec<Picture>,
    /// Sessions of the scar table and plots.
    columns: Vec<String>,
    area_unit: &'static str,
    depth_unit: &'static str,
    rows: Vec<Row>,
    plots: Vec<Plot>,
    calibration: Vec<CalRow>,
}

/// One overlay: the embedded image and the labels drawn over it (image pixel coordinates).
#[derive(Debug, Serialize)]
struct Picture {
    caption: String,
    detail: String,
    /// `data:` URI of the JPEG (marked safe: base64 only).
    #[serde(serialize_with = "safe_opt")]
    uri: Option<String>,
    width: u32,
    height: u32,
    labels: Vec<Label>,
    /// Why there is no image.
    note: String,
}

impl Picture {
    fn placeholder(caption: &str, note: &str) -> Picture {
        Picture {
            caption: caption.to_string(),
            detail: String::new(),
            uri: None,
            width: 0,
            height: 0,
            labels: Vec::new(),
            note: note.to_string(),
        }
    }
}

/// A track id drawn over an overlay.
#[derive(Debug, Serialize)]
struct Label {
    x: String,
    y: String,
    text: String,
    class: &'static str,
    title: String,
}

/// One row of the scar table: a track over the sessions.
#[derive(Debug, Serialize)]
struct Row {
    track: u32,
    kind: String,
    cells: Vec<Cell>,
}

/// One session of a track.
#[derive(Debug, Serialize)]
struct Cell {
    area: String,
    depth: String,
    change: String,
    /// How the change was measured (shown when the pointer rests on it).
    basis: String,
    status: String,
}

impl Cell {
    /// A session where the scar was seen (`s`), with the given change and status texts.
    fn seen(s: Option<&Scar>, mm: bool, change: &str, status: &str) -> Cell {
        match s {
            Some(s) => Cell {
                area: fmt_opt(area_of(s, mm), 2),
                depth: fmt_opt(depth_of(s, mm), 3),
                change: change.to_string(),
                basis: String::new(),
                status: status.to_string(),
            },
            None => Cell::absent(status),
        }
    }

    /// A session where the scar was not seen.
    fn absent(status: &str) -> Cell {
        Cell {
            area: "–".into(),
            depth: "–".into(),
            change: String::new(),
            basis: String::new(),
            status: status.to_string(),
        }
    }
}

/// A plot and its caption.
#[derive(Debug, Serialize)]
struct Plot {
    /// The SVG (marked safe: plotters escapes its text).
    #[serde(serialize_with = "safe")]
    svg: String,
    caption: String,
}

/// Calibration and light of one photo.
#[derive(Debug, Serialize)]
struct CalRow {
    session: String,
    photo: String,
    size: String,
    mm_per_px: String,
    light: String,
    registration: String,
}

/// Units of a view's figures: mm when every photo is calibrated, else camera pixels.
struct Units {
    mm: bool,
    area: &'static str,
    depth: &'static str,
}

impl Units {
    fn new(mm: bool) -> Units {
        if mm {
            Units {
                mm,
                area: "mm²",
                depth: "mm",
            }
        } else {
            Units {
                mm,
                area: "px²",
                depth: "px",
            }
        }
    }
}

fn safe<S: serde::Serializer>(v: &str, s: S) -> Result<S::Ok, S::Error> {
    Value::from_safe_string(v.to_string()).serialize(s)
}

fn safe_opt<S: serde::Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => safe(v, s),
        None => s.serialize_none(),
    }
}

fn area_of(s: &Scar, mm: bool) -> Option<f64> {
    if mm {
        s.area_mm2
    } else {
        Some(s.area_px)
    }
}

fn depth_of(s: &Scar, mm: bool) -> Option<f64> {
    if mm {
        s.depth_mm
    } else {
        Some(s.depth_px)
    }
}

fn fmt_opt(v: Option<f64>, decimals: usize) -> String {
    match v.filter(|v| v.is_finite()) {
        Some(v) => fmt_num(v, decimals),
        None => "–".into(),
    }
}

/// A number with a true minus sign, and no "-0".
fn fmt_num(v: f64, decimals: usize) -> String {
    let s = format!("{v:.decimals$}");
    match s.strip_prefix('-') {
        Some(rest) if rest.chars().all(|c| c == '0' || c == '.') => rest.to_string(),
        Some(rest) => format!("−{rest}"),
        None => s,
    }
}

fn signed(v: f64, decimals: usize) -> String {
    let s = fmt_num(v, decimals);
    if s.starts_with('−') || s.chars().all(|c| c == '0' || c == '.') {
        s
    } else {
        format!("+{s}")
    }
}

/// "Δarea / Δdepth" in the view's units.
fn fmt_change(
    area_mm2: Option<f64>,
    depth_mm: Option<f64>,
    mm: bool,
    change: Option<&crate::track::Change>,
) -> String {
    let (a, d) = if mm {
        (area_mm2, depth_mm)
    } else {
        (
            change.map(|c| c.area_change_px),
            change.map(|c| c.depth_change_px),
        )
    };
    match (a, d) {
        (None, None) => String::new(),
        (a, d) => format!(
            "{} / {}",
            a.map_or_else(|| "–".into(), |v| signed(v, 2)),
            d.map_or_else(|| "–".into(), |v| signed(v, 3))
        ),
    }
}

/// How a change was measured, in words: the paired measurement or each photo's own figures,
/// and the shape fit's ratios where it was used.
fn fmt_basis(basis: Option<&crate::track::ChangeBasis>) -> String {
    let Some(b) = basis else {
        return String::new();
    };
    let method = match b.method.as_str() {
        "paired" => "both photos measured over the same support",
        "single_photo" => "each photo's own figures",
        other => other,
    };
    let mut out = match &b.shape_fit {
        Some(f) => format!(
            "{method}; shape fit: later scar = baseline × {} wide, × {} deep (explains {} % of it)",
            fmt_num(f.width_ratio, 2),
            fmt_num(f.depth_ratio, 2),
            fmt_num(100.0 * f.r2, 0)
        ),
        None => method.to_string(),
    };
    if let Some(q) = &b.paired_pit {
        out.push_str(&format!(
            "; pit model refitted on the later photo: × {} area, × {} deep (explains {} % of it)",
            fmt_num(q.area_ratio, 2),
            fmt_num(q.depth_ratio, 2),
            fmt_num(100.0 * q.explained, 0)
        ));
    }
    out
}

fn fmt_registration(scale: f64, rotation_deg: f64, residual_px: f64, method: &str) -> String {
    format!(
        "scale {}, rotation {}°, residual {} px ({method})",
        fmt_num(scale, 4),
        fmt_num(rotation_deg, 2),
        fmt_num(residual_px, 2)
    )
}

/// The later photo's relief scale against the baseline's, as appended to its registration.
fn fmt_relief_gain(g: Option<&crate::change::ReliefGain>) -> String {
    match g {
        Some(g) if g.applied => format!(
            "; relief scale ×{} ± {} applied to its depths (texture correlation {})",
            fmt_num(g.gain, 3),
            fmt_num(g.sd, 3),
            fmt_num(g.correlation, 2)
        ),
        Some(g) => format!(
            "; relief scale not applied (texture correlation {} < {})",
            fmt_num(g.correlation, 2),
            crate::change::MIN_GAIN_CORRELATION
        ),
        None => "; relief scale not measured".into(),
    }
}

fn light_source(s: LightSource) -> &'static str {
    match s {
        LightSource::Given => "given",
        LightSource::Estimated => "estimated",
        LightSource::Assumed => "assumed",
    }
}

fn cal_row(
    session: &str,
    photo: &str,
    (w, h): (u32, u32),
    mm_per_px: &Option<f64>,
    source: &str,
    light: &Light,
    registration: String,
) -> CalRow {
    CalRow {
        session: session.to_string(),
        photo: photo.to_string(),
        size: format!("{w}×{h}"),
        mm_per_px: match mm_per_px {
            Some(v) => format!("{} ({source})", fmt_num(*v, 5)),
            None => format!("none ({source}): figures in pixels"),
        },
        light: format!(
            "azimuth {}° ({}, confidence {}), elevation {}° ({})",
            fmt_num(light.azimuth_deg, 1),
            light_source(light.source),
            fmt_num(light.confidence, 2),
            fmt_num(light.elevation_deg, 1),
            light_source(light.elevation_source)
        ),
        registration,
    }
}

/// The four plots of a view: each scar's area and depth over the sessions, then the total
/// area and the mean depth of every scar found in each session.
/// `tracks[i] = (scar giving the type, per-session scar)`; `per_session[k]` = the scars of
/// session `k`.
fn plots(
    sessions: &[String],
    tracks: &[(Option<&Scar>, Vec<Option<&Scar>>)],
    per_session: &[Vec<&Scar>],
    units: &Units,
) -> Result<Vec<Plot>, PlotError> {
    let scar_lines = |f: &dyn Fn(&Scar) -> Option<f64>| -> Vec<Series> {
        tracks
            .iter()
            .map(|(kind, obs)| Series {
                values: obs.iter().map(|s| s.and_then(f)).collect(),
                color: kind.map_or([128, 128, 128], |s| type_color(s.kind).0),
                bold: false,
            })
            .collect()
    };
    let mm = units.mm;
    let area = |s: &Scar| area_of(s, mm);
    let depth = |s: &Scar| depth_of(s, mm);
    let total = |values: Vec<Option<f64>>| {
        vec![Series {
            values,
            color: [0, 0, 0],
            bold: true,
        }]
    };
    let total_area: Vec<Option<f64>> = per_session
        .iter()
        .map(|scars| scars.iter().map(|s| area(s)).sum::<Option<f64>>())
        .collect();
    let mean_depth: Vec<Option<f64>> = per_session
        .iter()
        .map(|scars| {
            let d: Option<Vec<f64>> = scars.iter().map(|s| depth(s)).collect();
            d.filter(|d| !d.is_empty())
                .map(|d| d.iter().sum::<f64>() / d.len() as f64)
        })
        .collect();
    let a_unit = format!("area, {}", units.area);
    let d_unit = format!("max depth, {}", units.depth);
    Ok(vec![
        Plot {
            svg: line_plot("Area of each scar", &a_unit, sessions, &scar_lines(&area))?,
            caption: "one line per track, coloured by type (orange icepick, blue boxcar, purple rolling); a gap where the scar was not seen".into(),
        },
        Plot {
            svg: line_plot("Max depth of each scar", &d_unit, sessions, &scar_lines(&depth))?,
            caption: "one line per track, coloured by type".into(),
        },
        Plot {
            svg: line_plot("Total scar area", &a_unit, sessions, &total(total_area))?,
            caption: "sum over every scar found in the session's photo".into(),
        },
        Plot {
            svg: line_plot("Mean max depth", &d_unit, sessions, &total(mean_depth))?,
            caption: "mean of the maximum depths of every scar found in the session's photo".into(),
        },
    ])
}

/// One view of a subject.
fn subject_view(out: &Path, v: &ViewDoc, k: usize) -> Result<ViewModel, HtmlError> {
    let tracked = &v.tracking.sessions;
    // The analysis of each tracked session.
    let analyses: Vec<Option<&super::AnalyzeDoc>> = tracked
        .iter()
        .map(|name| {
            v.sessions
                .iter()
                .find(|s| &s.session == name)
                .and_then(|s| s.analysis.as_ref())
        })
        .collect();
    let mm = !analyses.is_empty()
        && analyses
            .iter()
            .all(|a| a.is_some_and(|a| a.calibration.mm_per_px.is_some()));
    let units = Units::new(mm);
    let scar_at = |i: usize, id: u32| -> Option<&Scar> {
        analyses
            .get(i)
            .copied()
            .flatten()?
            .scars
            .iter()
            .find(|s| s.id == id)
    };
    let per_track: Vec<Vec<Option<&Scar>>> = v
        .tracks
        .iter()
        .map(|t| {
            (0..tracked.len())
                .map(|i| {
                    t.observations
                        .get(i)
                        .cloned()
                        .flatten()
                        .and_then(|o| scar_at(i, o.scar_id))
                })
                .collect()
        })
        .collect();
    let rows: Vec<Row> = v
        .tracks
        .iter()
        .zip(&per_track)
        .map(|(t, obs)| {
            let cells = (0..tracked.len())
                .map(|i| {
                    let status = match t.status.get(i).copied().flatten() {
                        Some(st) => st.as_str(),
                        None if i == 0 => "baseline",
                        None => "",
                    };
                    let ch = t.changes.get(i).and_then(|c| c.as_ref());
                    let change = fmt_change(
                        ch.and_then(|c| c.area_change_mm2),
                        ch.and_then(|c| c.depth_change_mm),
                        mm,
                        ch,
                    );
                    Cell {
                        basis: fmt_basis(ch.map(|c| &c.basis)),
                        ..Cell::seen(obs[i], mm, &change, status)
                    }
                })
                .collect();
            Row {
                track: t.track_id,
                kind: obs
                    .iter()
                    .flatten()
                    .next()
                    .map_or("", |s| s.kind.as_str())
                    .to_string(),
                cells,
            }
        })
        .collect();
    let series_input: Vec<(Option<&Scar>, Vec<Option<&Scar>>)> = per_track
        .iter()
        .map(|obs| (obs.iter().flatten().next().copied(), obs.clone()))
        .collect();
    let per_session: Vec<Vec<&Scar>> = analyses
        .iter()
        .map(|a| a.map(|a| a.scars.iter().collect()).unwrap_or_default())
        .collect();
    let plots = plots(tracked, &series_input, &per_session, &units)?;

    let mut pictures = Vec::with_capacity(v.sessions.len());
    let mut calibration = Vec::new();
    for vs in &v.sessions {
        let i = tracked.iter().position(|s| s == &vs.session);
        let (Some(a), PhotoStatus::Analysed) = (&vs.analysis, vs.status) else {
            let note = match vs.status {
                PhotoStatus::Failed => "the photo could not be analysed (see failures)",
                _ => "no photo of this view in this session",
            };
            pictures.push(Picture::placeholder(&vs.session, note));
            continue;
        };
        let img = vs.overlay.as_deref().and_then(|rel| read_overlay(out, rel));
        let mut pic = match &img {
            Some(img) => {
                let (uri, width, height) = thumbnail(img, THUMB_LONG_SIDE);
                Picture {
                    caption: vs.session.clone(),
                    detail: String::new(),
                    uri: Some(uri),
                    width,
                    height,
                    labels: Vec::new(),
                    note: String::new(),
                }
            }
            None => Picture::placeholder(&vs.session, "overlay image missing"),
        };
        drop(img);
        let scale = if a.input.width > 0 {
            f64::from(pic.width) / f64::from(a.input.width)
        } else {
            1.0
        };
        let label = |s: &Scar, text: String, class: &'static str| Label {
            x: fmt_num(s.centroid_px[0] * scale, 1),
            y: fmt_num(s.centroid_px[1] * scale, 1),
            title: format!(
                "{text}: {}, area {} {}, max depth {} {}",
                s.kind.as_str(),
                fmt_opt(area_of(s, mm), 2),
                units.area,
                fmt_opt(depth_of(s, mm), 3),
                units.depth
            ),
            text,
            class,
        };
        match i {
            Some(i) => {
                for (t, obs) in v.tracks.iter().zip(&per_track) {
                    let Some(s) = obs[i] else { continue };
                    let class = match t.status.get(i).copied().flatten() {
                        Some(st) => st.as_str(),
                        None => "baseline",
                    };
                    pic.labels.push(label(s, t.track_id.to_string(), class));
                }
                pic.detail = format!("{} scars, labelled with their track ids", a.scars.len());
            }
            None => {
                for s in &a.scars {
                    pic.labels.push(label(s, s.id.to_string(), "untracked"));
                }
                pic.detail = format!(
                    "{} scars; not tracked (labels are this photo's scar ids)",
                    a.scars.len()
                );
            }
        }
        if pic.uri.is_none() {
            pic.labels.clear();
        }
        pictures.push(pic);
        calibration.push(cal_row(
            &vs.session,
            &a.input.path,
            (a.input.width, a.input.height),
            &a.calibration.mm_per_px,
            &a.calibration.source,
            &a.light,
            vs.registration.as_ref().map_or_else(
                || "not registered".to_string(),
                |r| {
                    let reg = fmt_registration(r.scale, r.rotation_deg, r.residual_px, &r.method);
                    if v.tracking.baseline.as_deref() == Some(vs.session.as_str()) {
                        reg
                    } else {
                        reg + &fmt_relief_gain(vs.relief_gain.as_ref())
                    }
                },
            ),
        ));
    }
    Ok(ViewModel {
        title: format!("View: {}", v.view),
        anchor: format!("view-{k}"),
        tracking: format!(
            "Tracking: {}; {} tracks over {} of {} sessions, baseline {}.",
            v.tracking.status,
            v.tracks.len(),
            tracked.len(),
            v.sessions.len(),
            v.tracking.baseline.as_deref().unwrap_or("none")
        ),
        note: v.tracking.note.clone(),
        warnings: v
            .sessions
            .iter()
            .filter_map(|vs| Some((&vs.session, vs.analysis.as_ref()?)))
            .flat_map(|(name, a)| a.warnings.iter().map(move |w| format!("{name}: {w}")))
            .collect(),
        pictures,
        columns: tracked.clone(),
        area_unit: units.area,
        depth_unit: units.depth,
        rows,
        plots,
        calibration,
    })
}

/// The overlay at `rel` under `out`, if it is a readable image inside the folder.
fn read_overlay(out: &Path, rel: &str) -> Option<RgbImage> {
    let p = Path::new(rel);
    if !p.components().all(|c| matches!(c, Component::Normal(_))) {
        return None;
    }
    let img = image::ImageReader::open(out.join(p))
        .ok()?
        .with_guessed_format()
        .ok()?
        .decode()
        .ok()?;
    Some(img.to_rgb8())
}

/// `img` shrunk to at most `long_side` px and encoded as a JPEG `data:` URI, with its size.
fn thumbnail(img: &RgbImage, long_side: u32) -> (String, u32, u32) {
    let (w, h) = img.dimensions();
    let s = (f64::from(long_side) / f64::from(w.max(h).max(1))).min(1.0);
    let (tw, th) = (
        ((f64::from(w) * s).round() as u32).max(1),
        ((f64::from(h) * s).round() as u32).max(1),
    );
    let small;
    let img = if (tw, th) == (w, h) {
        img
    } else {
        small = image::imageops::resize(img, tw, th, FilterType::Triangle);
        &small
    };
    let mut bytes = Vec::new();
    // Encoding into memory cannot fail for an RGB8 image of positive size.
    let ok = JpegEncoder::new_with_quality(&mut bytes, THUMB_QUALITY)
        .encode_image(img)
        .is_ok();
    if !ok || w == 0 || h == 0 {
        return (String::new(), 0, 0);
    }
    let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
    (format!("data:image/jpeg;base64,{b64}"), tw, th)
}

/// The template environment: every template escapes HTML.
fn environment() -> Result<Environment<'static>, minijinja::Error> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    let templates = [
        ("base.html", include_str!("templates/base.html")),
        ("style.css", include_str!("templates/style.css")),
        ("view.html", include_str!("templates/view.html")),
        ("problems.html", include_str!("templates/problems.html")),
        ("subject.html", include_str!("templates/subject.html")),
        ("index.html", include_str!("templates/index.html")),
        ("compare.html", include_str!("templates/compare.html")),
    ];
    for (name, source) in templates {
        env.add_template(name, source)?;
    }
    Ok(env)
}

fn render(name: &str, page: &'static str, ctx: Value) -> Result<String, HtmlError> {
    environment()
        .and_then(|env| env.get_template(name)?.render(ctx))
        .map_err(|source| HtmlError::Template { page, source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::study::{StudyInfo, Totals};
    use crate::report::Tool;

    #[test]
    fn percent_encoding_keeps_unreserved_characters_only() {
        assert_eq!(percent_encode("S01-a_b.c~"), "S01-a_b.c~");
        assert_eq!(percent_encode("a b\"<é"), "a%20b%22%3C%C3%A9");
    }

    #[test]
    fn a_change_says_how_it_was_measured_and_the_shape_fit_where_used() {
        let mut b = crate::track::ChangeBasis {
            method: "paired".into(),
            area_before_mm2: Some(1.0),
            area_after_mm2: Some(0.7),
            depth_before_mm: Some(0.4),
            depth_after_mm: Some(0.2),
            shape_fit: None,
            paired_pit: None,
        };
        assert_eq!(
            fmt_basis(Some(&b)),
            "both photos measured over the same support"
        );
        b.shape_fit = Some(crate::change::ScaleFit {
            depth_ratio: 0.5,
            width_ratio: 0.84,
            r2: 0.873,
        });
        assert_eq!(
            fmt_basis(Some(&b)),
            "both photos measured over the same support; shape fit: later scar = baseline × 0.84 \
             wide, × 0.50 deep (explains 87 % of it)"
        );
        b.paired_pit = Some(crate::track::PitChange {
            depth_ratio: 0.6,
            area_ratio: 0.7,
            explained: 0.91,
        });
        assert!(
            fmt_basis(Some(&b)).ends_with(
                "; pit model refitted on the later photo: × 0.70 area, × 0.60 deep (explains 91 % \
                 of it)"
            ),
            "{}",
            fmt_basis(Some(&b))
        );
        b.method = "single_photo".into();
        b.shape_fit = None;
        b.paired_pit = None;
        assert_eq!(fmt_basis(Some(&b)), "each photo's own figures");
        assert_eq!(fmt_basis(None), "");
    }

    #[test]
    fn the_relief_scale_reads_applied_not_applied_or_not_measured() {
        let g = crate::change::ReliefGain {
            gain: 1.234,
            measured: 1.3,
            sd: 0.05,
            correlation: 0.93,
            pixels: 1000,
            matched_blur_px: 0.0,
            applied: true,
        };
        assert_eq!(
            fmt_relief_gain(Some(&g)),
            "; relief scale ×1.234 ± 0.050 applied to its depths (texture correlation 0.93)"
        );
        let weak = crate::change::ReliefGain {
            correlation: 0.3,
            applied: false,
            ..g
        };
        assert!(
            fmt_relief_gain(Some(&weak)).contains("not applied (texture correlation 0.30 < 0.5)")
        );
        assert_eq!(fmt_relief_gain(None), "; relief scale not measured");
    }

    #[test]
    fn numbers_use_a_true_minus_and_no_negative_zero() {
        assert_eq!(fmt_num(-1.234, 2), "−1.23");
        assert_eq!(fmt_num(-0.0001, 2), "0.00");
        assert_eq!(signed(0.5, 1), "+0.5");
        assert_eq!(fmt_opt(None, 2), "–");
        assert_eq!(fmt_opt(Some(f64::NAN), 2), "–");
    }

    fn hostile_study() -> StudyDoc {
        let hostile = "<img src=x onerror=alert(1)>\"'";
        StudyDoc {
            schema_version: "1".into(),
            tool: Tool::current(),
            study: StudyInfo {
                root: "<b>root</b>".into(),
                name: Some("<script>alert(1)</script>".into()),
            },
            provenance: crate::report::study::Provenance {
                manifest_sha256: None,
                overrides: Default::default(),
                absolute_paths: false,
                max_pixels: 1,
            },
            shard: None,
            totals: Totals::default(),
            warnings: vec!["<i>warned</i>".into()],
            subjects: vec![crate::report::study::SubjectSummary {
                subject: hostile.into(),
                document: "subjects/_img_\"x.json".into(),
                fingerprint: String::new(),
                views: vec!["left<cheek>".into()],
                sessions: Vec::new(),
                failures: 0,
                warnings: 0,
            }],
            failures: vec![Failure {
                path: "a/<b>.jpg".into(),
                stage: "load".into(),
                error: "bad & broken".into(),
            }],
        }
    }

    #[test]
    fn hostile_names_render_as_text_in_pages_and_links() {
        let html = study_index(&hostile_study()).expect("renders");
        assert!(!html.contains("<img src=x"), "raw markup leaked");
        assert!(!html.contains("<script>alert"), "raw script leaked");
        assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;&quot;&#x27;"));
        assert!(html.contains("href=\"subjects/_img_%22x.html\""));
        assert!(html.contains("&lt;i&gt;warned&lt;&#x2f;i&gt;"));
        assert!(html.contains("bad &amp; broken"));
        // No script anywhere: the page needs none.
        assert!(!html.to_lowercase().contains("<script"));
    }

    #[test]
    fn the_same_document_gives_the_same_bytes() {
        let a = study_index(&hostile_study()).expect("renders");
        let b = study_index(&hostile_study()).expect("renders");
        assert_eq!(a, b);
    }

    #[test]
    fn thumbnails_shrink_to_the_long_side_and_are_jpeg_data_uris() {
        let img = RgbImage::from_fn(1000, 500, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 7])
        });
        let (uri, w, h) = thumbnail(&img, 720);
        assert_eq!((w, h), (720, 360));
        let b64 = uri
            .strip_prefix("data:image/jpeg;base64,")
            .expect("jpeg uri");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("base64");
        let back = image::load_from_memory(&bytes).expect("decodes");
        assert_eq!((back.width(), back.height()), (720, 360));
        assert_eq!(thumbnail(&img, 720).0, uri, "deterministic bytes");
    }
}
