//! Line charts of scalars over a run — losses, metrics, the learning rate: one chart per key,
//! stacked vertically, each run a line in its own colour with a legend, as mmdetection's
//! `analyze_logs.py plot_curve` and mmcv's LR visualisation draw them. This file draws; what
//! the values are comes from `train_log` (a run's log) or the schedule a plan compiles.

use super::{Picture, PictureError, class_colour, font};
use plotters::prelude::*;

/// One line: its legend name and `(x, y)` points in x order.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// One chart: its title (the key), the x axis's name and its lines.
#[derive(Clone, Debug, PartialEq)]
pub struct Panel {
    pub title: String,
    pub x_label: String,
    pub series: Vec<Series>,
}

/// Picture width and each chart's height, in pixels.
pub const WIDTH: u32 = 900;
pub const PANEL_HEIGHT: u32 = 300;

/// The charts stacked top to bottom. A chart without points is an error naming it.
pub fn draw(panels: &[Panel]) -> Result<Picture, PictureError> {
    if panels.is_empty() {
        return Err(PictureError::NothingToPlot);
    }
    let height = PANEL_HEIGHT * panels.len() as u32;
    let mut pic = Picture::filled(WIDTH, height, [255, 255, 255]);
    {
        let root = BitMapBackend::with_buffer(&mut pic.rgb, (WIDTH, height)).into_drawing_area();
        let areas = root.split_evenly((panels.len(), 1));
        for (panel, area) in panels.iter().zip(&areas) {
            draw_panel(panel, area)?;
        }
        root.present()
            .map_err(|e| PictureError::draw("the curves", e))?;
    }
    Ok(pic)
}

/// The smallest and largest value, widened when they are equal (a flat line still gets an
/// axis) and by a margin so lines do not touch the frame.
fn range(values: impl Iterator<Item = f64>, margin: f64) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo <= f64::EPSILON * hi.abs().max(1.0) {
        let pad = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        return (lo - pad, hi + pad);
    }
    let pad = (hi - lo) * margin;
    (lo - pad, hi + pad)
}

/// Tick labels of an axis spanning `lo..hi`: exponent form when its numbers are small or
/// large (learning rates), else plain with the trailing zeros dropped.
fn tick(lo: f64, hi: f64) -> impl Fn(&f64) -> String {
    let big = lo.abs().max(hi.abs());
    let exponent = big != 0.0 && !(1e-2..1e5).contains(&big);
    move |v: &f64| {
        if exponent {
            format!("{v:.1e}")
        } else if v.fract() == 0.0 || v.abs() >= 100.0 {
            format!("{v:.0}")
        } else {
            let s = format!("{v:.4}");
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        }
    }
}

/// Where the legend goes: away from where the lines end (a rising metric ends high).
fn legend_corner(panel: &Panel, y0: f64, y1: f64) -> SeriesLabelPosition {
    let ends: Vec<f64> = (panel.series.iter())
        .flat_map(|s| s.points.iter().rev().take((s.points.len() / 5).max(1)))
        .map(|p| p.1)
        .filter(|v| v.is_finite())
        .collect();
    let mean = ends.iter().sum::<f64>() / ends.len().max(1) as f64;
    if mean > (y0 + y1) / 2.0 {
        SeriesLabelPosition::LowerRight
    } else {
        SeriesLabelPosition::UpperRight
    }
}

fn draw_panel<DB: DrawingBackend>(
    panel: &Panel,
    area: &DrawingArea<DB, plotters::coord::Shift>,
) -> Result<(), PictureError> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| {
        PictureError::draw(format!("the `{}` chart", panel.title), e)
    };
    let all = || panel.series.iter().flat_map(|s| s.points.iter());
    if all().next().is_none() {
        return Err(PictureError::NoValues {
            chart: panel.title.clone(),
        });
    }
    let (x0, x1) = range(all().map(|p| p.0), 0.0);
    let (y0, y1) = range(all().map(|p| p.1), 0.05);
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, (font(), 18).into_font())
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(72)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(e)?;
    let label = (font(), 13).into_font();
    chart
        .configure_mesh()
        .x_desc(&panel.x_label)
        .x_label_formatter(&tick(x0, x1))
        .y_label_formatter(&tick(y0, y1))
        .label_style(label.clone())
        .axis_desc_style(label.clone())
        .light_line_style(TRANSPARENT)
        .bold_line_style(RGBColor(214, 214, 214))
        .draw()
        .map_err(e)?;
    for (k, s) in panel.series.iter().enumerate() {
        let [r, g, b] = class_colour(k);
        let colour = RGBColor(r, g, b);
        let points = s.points.iter().copied().filter(|p| p.1.is_finite());
        let line = chart
            .draw_series(LineSeries::new(points, colour.stroke_width(2)))
            .map_err(e)?;
        line.label(&s.name).legend(move |(x, y)| {
            PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
        });
        // A lone point (one epoch's metric) is no line: mark it.
        if s.points.len() == 1 {
            chart
                .draw_series(s.points.iter().map(|&p| Circle::new(p, 4, colour.filled())))
                .map_err(e)?;
        }
    }
    chart
        .configure_series_labels()
        .label_font(label)
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(180, 180, 180))
        .position(legend_corner(panel, y0, y1))
        .draw()
        .map_err(e)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_runs_draw_in_their_own_colours() {
        let series = |name: &str, k: f64| Series {
            name: name.into(),
            points: (0..50).map(|i| (i as f64, k / (1.0 + i as f64))).collect(),
        };
        let panels = vec![
            Panel {
                title: "loss".into(),
                x_label: "iter".into(),
                series: vec![series("a", 3.0), series("b", 2.0)],
            },
            Panel {
                title: "bbox_mAP".into(),
                x_label: "epoch".into(),
                series: vec![Series {
                    name: "a".into(),
                    points: vec![(1.0, 0.5)],
                }],
            },
        ];
        let pic = draw(&panels).unwrap();
        assert_eq!((pic.width, pic.height), (WIDTH, 2 * PANEL_HEIGHT));
        let count = |c: [u8; 3]| pic.rgb.chunks(3).filter(|p| *p == c).count();
        assert!(count(class_colour(0)) > 200, "run a's line");
        assert!(count(class_colour(1)) > 200, "run b's line");
        let empty = Panel {
            title: "lr".into(),
            x_label: "iter".into(),
            series: vec![],
        };
        let e = draw(&[empty]).unwrap_err();
        assert!(
            matches!(&e, PictureError::NoValues { chart } if chart == "lr"),
            "{e}"
        );
        assert_eq!(e.to_string(), "`lr` has no values to plot");
    }

    #[test]
    fn flat_and_tiny_ranges_get_an_axis() {
        assert_eq!(range([2.0, 2.0].into_iter(), 0.0), (1.8, 2.2));
        assert_eq!(range([0.0].into_iter(), 0.0), (-1.0, 1.0));
        assert_eq!(tick(0.0, 0.002)(&0.0002), "2.0e-4");
        assert_eq!(tick(0.0, 0.02)(&0.008), "0.008");
        assert_eq!(tick(0.0, 1.0)(&0.25), "0.25");
        assert_eq!(tick(0.0, 2000.0)(&1200.0), "1200");
    }
}
