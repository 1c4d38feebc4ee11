//! `replay --plot out.svg`: the replayed series as an SVG chart, to be read at a glance.
//! The series is a line, each flagged sample a red dot, and the samples each window decided
//! alternate between plain and shaded bands, so one sees which window judged what. Drawn
//! with `plotters`' SVG backend alone: no fonts are bundled, text stays `<text>` for the
//! viewer to render.
//!
//! The flagged samples are the replay's own (`ReplaySummary::flagged`, collected as the
//! verdict lines are written), so the plot shows exactly what was written.

use std::ops::Range;

use plotters::prelude::*;
use thiserror::Error;

use crate::support::timestamp::Civil;
use crate::window::{WindowError, WindowSpec, Windower};

/// Pixels: wide enough for two weeks of hourly samples to keep their shape.
const SIZE: (u32, u32) = (1200, 480);
/// The series' colour (a dark blue) and the anomalies' (a strong red).
const LINE: RGBColor = RGBColor(31, 86, 160);
const ANOMALY: RGBColor = RGBColor(214, 39, 40);
/// Anomaly dots' radius; the legend's dot is smaller, so the two can be told apart.
pub const ANOMALY_RADIUS: u32 = 4;

#[derive(Debug, Error)]
pub enum PlotError {
    #[error("nothing to plot: the series is empty")]
    Empty,
    #[error("cannot draw the plot: {0}")]
    Draw(String),
    #[error(transparent)]
    Window(#[from] WindowError),
}

/// What to draw.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PlotInput {
    pub title: String,
    /// Unix ms, increasing.
    pub timestamps: Vec<i64>,
    pub values: Vec<f32>,
    /// Indices of the flagged samples.
    pub anomalies: Vec<usize>,
    /// The samples each window decided, in order: they partition the series.
    pub decided: Vec<Range<usize>>,
}

/// The ranges each window decides for a series of `len` samples, as `replay` runs them:
/// without a spec the whole series is one window.
pub fn decided_ranges(
    len: usize,
    spec: Option<WindowSpec>,
) -> Result<Vec<Range<usize>>, WindowError> {
    if len == 0 {
        return Ok(Vec::new());
    }
    let spec = match spec {
        Some(spec) => spec,
        None => WindowSpec::new(len, len)?,
    };
    let mut windower = Windower::new(spec);
    let mut plans: Vec<_> = (0..len).filter_map(|_| windower.push()).collect();
    plans.extend(windower.finish());
    Ok(plans
        .into_iter()
        .map(|plan| plan.decide_from as usize..plan.end as usize)
        .collect())
}

/// Draws `input` as an SVG document.
pub fn render_svg(input: &PlotInput) -> Result<String, PlotError> {
    let (Some(&first), Some(&last)) = (input.timestamps.first(), input.timestamps.last()) else {
        return Err(PlotError::Empty);
    };
    let draw = |e: &dyn std::fmt::Display| PlotError::Draw(e.to_string());
    let finite = || input.values.iter().copied().filter(|v| v.is_finite());
    let (low, high) = finite().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    let (low, high) = if low <= high { (low, high) } else { (0.0, 1.0) };
    let pad = ((high - low) * 0.08).max(1.0);
    // Room below the data for the legend, so it never hides a point.
    let (y0, y1) = (low - 3.5 * pad, high + pad);
    let x_range = first..last.max(first + 1);
    let at = |i: usize| input.timestamps.get(i).copied().unwrap_or(last);

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| draw(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(&input.title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(48)
            .build_cartesian_2d(x_range.clone(), y0..y1)
            .map_err(|e| draw(&e))?;
        let span = x_range.end - x_range.start;
        chart
            .configure_mesh()
            .x_labels(10)
            .y_labels(8)
            .x_label_formatter(&|ms| time_label(*ms, span))
            .y_desc("air quality")
            .light_line_style(RGBColor(235, 235, 235))
            .bold_line_style(RGBColor(215, 215, 215))
            .draw()
            .map_err(|e| draw(&e))?;

        // Every other window's decided samples shaded; a thin line where each window's
        // samples begin.
        let bands = input.decided.iter().enumerate().filter(|(i, _)| i % 2 == 1);
        chart
            .draw_series(bands.map(|(_, range)| {
                let end = if range.end < input.timestamps.len() {
                    at(range.end)
                } else {
                    last
                };
                Rectangle::new(
                    [(at(range.start), y0), (end, y1)],
                    RGBColor(120, 140, 170).mix(0.12).filled(),
                )
            }))
            .map_err(|e| draw(&e))?;
        chart
            .draw_series(input.decided.iter().skip(1).map(|range| {
                let x = at(range.start);
                PathElement::new(vec![(x, y0), (x, y1)], RGBColor(150, 160, 180).mix(0.6))
            }))
            .map_err(|e| draw(&e))?;

        // The series, broken where a value is not finite.
        let mut segments: Vec<Vec<(i64, f32)>> = vec![Vec::new()];
        for (&t, &v) in input.timestamps.iter().zip(&input.values) {
            match segments.last_mut() {
                Some(segment) if v.is_finite() => segment.push((t, v)),
                Some(segment) if !segment.is_empty() => segments.push(Vec::new()),
                _ => {}
            }
        }
        for (i, segment) in segments.into_iter().filter(|s| !s.is_empty()).enumerate() {
            let series = chart
                .draw_series(LineSeries::new(segment, LINE.stroke_width(2)))
                .map_err(|e| draw(&e))?;
            if i == 0 {
                series.label("air quality").legend(|(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], LINE.stroke_width(2))
                });
            }
        }

        let flagged = input
            .anomalies
            .iter()
            .filter_map(|&i| Some((*input.timestamps.get(i)?, *input.values.get(i)?)))
            .filter(|(_, v)| v.is_finite());
        chart
            .draw_series(flagged.map(|point| Circle::new(point, ANOMALY_RADIUS, ANOMALY.filled())))
            .map_err(|e| draw(&e))?
            .label(format!("anomaly ({})", input.anomalies.len()))
            .legend(|(x, y)| Circle::new((x + 9, y), ANOMALY_RADIUS - 1, ANOMALY.filled()));
        if input.decided.len() > 1 {
            // A legend entry for the bands: nothing drawn in the plot area itself.
            chart
                .draw_series(std::iter::empty::<Circle<(i64, f32), u32>>())
                .map_err(|e| draw(&e))?
                .label("samples decided by one window (bands alternate)")
                .legend(|(x, y)| {
                    Rectangle::new(
                        [(x, y - 6), (x + 18, y + 6)],
                        RGBColor(120, 140, 170).mix(0.3).filled(),
                    )
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(190, 190, 190))
            .label_font(("sans-serif", 13))
            .draw()
            .map_err(|e| draw(&e))?;
        root.present().map_err(|e| draw(&e))?;
    }
    Ok(svg)
}

/// A tick label: the date and hour for spans over a day, with minutes below that.
fn time_label(ms: i64, span_ms: i64) -> String {
    let at = Civil::from_unix_millis(ms);
    if span_ms > 2 * 86_400_000 {
        format!("{:02}-{:02} {:02}h", at.month, at.day, at.hour)
    } else {
        format!(
            "{:02}-{:02} {:02}:{:02}",
            at.month, at.day, at.hour, at.minute
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decided_ranges_partition_the_series() {
        let spec = WindowSpec::new(168, 24).unwrap();
        let ranges = decided_ranges(336, Some(spec)).unwrap();
        assert_eq!(ranges.first(), Some(&(0..168)));
        assert_eq!(ranges.get(1), Some(&(168..192)));
        assert_eq!(ranges.last().map(|r| r.end), Some(336));
        assert!(ranges.windows(2).all(|w| w[0].end == w[1].start));
        assert_eq!(decided_ranges(10, None).unwrap(), vec![0..10]);
    }

    #[test]
    fn an_empty_series_is_an_error() {
        assert!(matches!(
            render_svg(&PlotInput::default()),
            Err(PlotError::Empty)
        ));
    }
}
