//! Change plots for the HTML report: one value per session for each scar (thin lines coloured
//! by type) and for the total (a bold black line), drawn as SVG with plotters' SVG backend.
//!
//! Input is plain series of optional values (a gap where a scar was not seen); output is an
//! SVG document as a string, the same bytes for the same series.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Width of every plot, SVG user units.
pub const PLOT_WIDTH: u32 = 560;
/// Height of every plot, SVG user units.
pub const PLOT_HEIGHT: u32 = 280;

/// One line of a plot.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// One value per session; `None` where there is nothing to plot.
    pub values: Vec<Option<f64>>,
    /// Line colour, sRGB.
    pub color: [u8; 3],
    /// A bold line (the total) rather than a thin one (a scar).
    pub bold: bool,
}

/// Plotting failed inside plotters (it only fails on a broken writer, which a string is not).
#[derive(Debug, thiserror::Error)]
#[error("cannot draw the plot `{title}`: {message}")]
pub struct PlotError {
    /// The plot's title.
    pub title: String,
    /// What plotters said.
    pub message: String,
}

/// Draw `series` over `sessions` (x: session order, labelled with the names; y: from 0).
///
/// # Errors
///
/// [`PlotError`] if plotters reports a drawing error.
pub fn line_plot(
    title: &str,
    y_label: &str,
    sessions: &[String],
    series: &[Series],
) -> Result<String, PlotError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (PLOT_WIDTH, PLOT_HEIGHT)).into_drawing_area();
        draw(&root, title, y_label, sessions, series).map_err(|e| PlotError {
            title: title.to_string(),
            message: e.to_string(),
        })?;
        root.present().map_err(|e| PlotError {
            title: title.to_string(),
            message: e.to_string(),
        })?;
    }
    Ok(svg)
}

type DrawResult = Result<(), DrawingAreaErrorKind<std::io::Error>>;

fn draw(
    root: &DrawingArea<SVGBackend<'_>, Shift>,
    title: &str,
    y_label: &str,
    sessions: &[String],
    series: &[Series],
) -> DrawResult {
    root.fill(&WHITE)?;
    let n = sessions.len().max(1);
    let top = series
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .copied()
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    let y_max = if top > 0.0 { top * 1.1 } else { 1.0 };
    let x_range = -0.35f64..(n as f64 - 0.65);
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 17))
        .margin(8)
        .margin_right(16)
        .x_label_area_size(26)
        .y_label_area_size(54)
        .build_cartesian_2d(x_range, 0f64..y_max)?;
    // Session names are drawn by hand at their exact positions: automatic ticks on a float
    // axis would fall between sessions.
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_labels(6)
        .y_desc(y_label)
        .label_style(("sans-serif", 13))
        .light_line_style(RGBColor(236, 236, 236))
        .draw()?;
    let grid = RGBColor(200, 200, 200).stroke_width(1);
    for (i, name) in sessions.iter().enumerate() {
        let x = i as f64;
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(x, 0.0), (x, y_max)],
            grid,
        )))?;
        let (px, py) = chart.backend_coord(&(x, 0.0));
        root.draw(&Text::new(
            name.clone(),
            (px, py + 6),
            ("sans-serif", 13)
                .into_font()
                .color(&BLACK)
                .pos(Pos::new(HPos::Center, VPos::Top)),
        ))?;
    }
    // Thin lines first, bold (totals) over them.
    for s in series
        .iter()
        .filter(|s| !s.bold)
        .chain(series.iter().filter(|s| s.bold))
    {
        let [r, g, b] = s.color;
        let color = RGBColor(r, g, b);
        let (line, radius) = if s.bold {
            (color.stroke_width(3), 4)
        } else {
            (color.mix(0.75).stroke_width(1), 2)
        };
        for run in runs(&s.values) {
            if run.len() > 1 {
                chart.draw_series(std::iter::once(PathElement::new(run.clone(), line)))?;
            }
            chart.draw_series(
                run.iter()
                    .map(|&p| Circle::new(p, radius, line.color.filled())),
            )?;
        }
    }
    Ok(())
}

/// Consecutive sessions with a finite value, as (session index, value) points.
fn runs(values: &[Option<f64>]) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut current = Vec::new();
    for (i, v) in values.iter().enumerate() {
        match v.filter(|v| v.is_finite()) {
            Some(v) => current.push((i as f64, v)),
            None if !current.is_empty() => out.push(std::mem::take(&mut current)),
            None => {}
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions() -> Vec<String> {
        ["s1", "s2", "s<3>"].iter().map(|s| s.to_string()).collect()
    }

    fn sample() -> Vec<Series> {
        vec![
            Series {
                values: vec![Some(1.0), None, Some(0.5)],
                color: [0xE6, 0x9F, 0x00],
                bold: false,
            },
            Series {
                values: vec![Some(3.0), Some(2.0), Some(1.5)],
                color: [0, 0, 0],
                bold: true,
            },
        ]
    }

    #[test]
    fn gaps_split_a_line_into_runs() {
        let r = runs(&[
            Some(1.0),
            None,
            Some(2.0),
            Some(f64::NAN),
            Some(3.0),
            Some(4.0),
        ]);
        assert_eq!(
            r,
            vec![
                vec![(0.0, 1.0)],
                vec![(2.0, 2.0)],
                vec![(4.0, 3.0), (5.0, 4.0)]
            ]
        );
    }

    #[test]
    fn plot_is_a_well_formed_nonempty_svg_with_escaped_labels() {
        let svg = line_plot("Area <per> scar", "area, mm²", &sessions(), &sample()).expect("plot");
        assert!(svg.starts_with("<svg"), "{}", &svg[..40.min(svg.len())]);
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("viewBox=\"0 0 560 280\""));
        // Lines and points were drawn, and text is escaped.
        assert!(svg.contains("<polyline") || svg.contains("<path"));
        assert!(svg.contains("<circle"));
        assert!(svg.contains("s&lt;3&gt;") && !svg.contains("s<3>"));
        assert!(svg.contains("Area &lt;per&gt; scar"));
        // Balanced tags: every opened element is closed.
        let opened = svg.matches('<').count() - svg.matches("</").count();
        let closed = svg.matches("</").count() + svg.matches("/>").count();
        assert_eq!(opened, closed, "unbalanced SVG");
    }

    #[test]
    fn same_series_give_the_same_bytes_and_empty_input_still_draws_axes() {
        let a = line_plot("t", "y", &sessions(), &sample()).expect("plot");
        let b = line_plot("t", "y", &sessions(), &sample()).expect("plot");
        assert_eq!(a, b);
        let empty = line_plot("t", "y", &[], &[]).expect("plot");
        assert!(empty.contains("</svg>"));
    }
}
