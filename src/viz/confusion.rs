//! The confusion-matrix picture, laid out as mmdetection's `plot_confusion_matrix` draws it:
//! a bold title, one square cell per (ground truth, prediction) pair coloured by its row
//! percentage on matplotlib's `plasma` map, the whole percentage (`int()`, `-1%` for a row
//! without counts) in each cell, predicted classes along the top, ground-truth classes down
//! the left, and a colour bar. This file draws only; the counts come from
//! `crate::eval::confusion`.

use super::{Picture, PictureError, font};
use plotters::prelude::*;
use plotters::style::FontTransform;
use std::path::{Path, PathBuf};

/// Pixels per cell side.
const CELL: i32 = 44;
/// The most rows (classes and background) a picture is drawn for: 8,800 pixels a side.
const MAX_DRAWN_LABELS: usize = 201;
const MARGIN: i32 = 12;
const BAR_WIDTH: i32 = 16;

/// matplotlib's `plasma` at 0, 1/16, …, 1 (its 256-entry table sampled every 16th entry).
const PLASMA: [[u8; 3]; 17] = [
    [13, 8, 135],
    [49, 5, 151],
    [76, 2, 161],
    [102, 0, 167],
    [126, 3, 168],
    [149, 17, 161],
    [170, 35, 149],
    [188, 53, 135],
    [204, 71, 120],
    [218, 90, 106],
    [230, 108, 92],
    [240, 128, 78],
    [248, 149, 64],
    [253, 172, 51],
    [253, 197, 39],
    [248, 223, 37],
    [240, 249, 33],
];

/// `plasma` at `t` in [0, 1] (linear between the table's entries; NaN draws as the low end,
/// as matplotlib's default "bad" colour would be transparent).
pub fn plasma(t: f64) -> [u8; 3] {
    let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) };
    let x = t * (PLASMA.len() - 1) as f64;
    let i = (x.floor() as usize).min(PLASMA.len() - 2);
    let f = x - i as f64;
    let (a, b) = (PLASMA[i], PLASMA[i + 1]);
    [0, 1, 2].map(|c| (a[c] as f64 + (b[c] as f64 - a[c] as f64) * f).round() as u8)
}

/// The picture of a row-normalised matrix (`percent[gt][pred]` in 0..=100, NaN for a row
/// without counts) whose rows and columns are named by `labels` (background last).
pub fn draw(labels: &[String], percent: &[Vec<f64>], title: &str) -> Result<Picture, PictureError> {
    // A cell per pair keeps the numbers legible; past this the picture would be tens of
    // thousands of pixels a side (LVIS: 1,203 classes), so it is refused, not attempted.
    if labels.len() > MAX_DRAWN_LABELS {
        return Err(PictureError::TooManyClasses {
            classes: labels.len() - 1,
            max: MAX_DRAWN_LABELS - 1,
        });
    }
    let n = labels.len() as i32;
    if percent.len() != labels.len() || percent.iter().any(|r| r.len() != labels.len()) {
        return Err(PictureError::MatrixShape {
            labels: labels.len(),
        });
    }
    let label_font = (font(), 13).into_font();
    let title_font = (font(), 16, FontStyle::Bold).into_font();
    let cell_font = (font(), 11).into_font();
    // Measure the labels on a scratch area: the margins follow the longest name.
    let longest = labels
        .iter()
        .map(|l| text_width(l, &label_font))
        .max()
        .unwrap_or(0);
    let left = MARGIN + 18 + longest + 6;
    let top = MARGIN + 24 + 18 + longest + 6;
    let grid = n * CELL;
    let width = (left + grid + 20 + BAR_WIDTH + 40 + MARGIN) as u32;
    let height = (top + grid + MARGIN) as u32;
    let mut pic = Picture::filled(width, height, [255, 255, 255]);
    {
        let root = BitMapBackend::with_buffer(&mut pic.rgb, (width, height)).into_drawing_area();
        let e = |e: DrawingAreaErrorKind<_>| PictureError::draw("the confusion matrix", e);
        let tw = text_width(title, &title_font);
        let title_x = (left + grid / 2 - tw / 2).max(MARGIN);
        root.draw_text(title, &title_font.color(&BLACK), (title_x, MARGIN))
            .map_err(e)?;
        let axis = label_font.color(&BLACK);
        let xl = "Prediction Label";
        let xw = text_width(xl, &label_font);
        root.draw_text(xl, &axis, (left + grid / 2 - xw / 2, MARGIN + 24))
            .map_err(e)?;
        let yl = "Ground Truth Label";
        let yw = text_width(yl, &label_font);
        let vertical = axis.transform(FontTransform::Rotate270);
        root.draw_text(yl, &vertical, (MARGIN, top + grid / 2 + yw / 2))
            .map_err(e)?;
        for (k, name) in labels.iter().enumerate() {
            let k = k as i32;
            let w = text_width(name, &label_font);
            // Column names read upwards above their column; row names end at the grid.
            root.draw_text(name, &vertical, (left + k * CELL + CELL / 2 - 7, top - 6))
                .map_err(e)?;
            root.draw_text(name, &axis, (left - 6 - w, top + k * CELL + CELL / 2 - 7))
                .map_err(e)?;
        }
        for (i, row) in percent.iter().enumerate() {
            for (j, &v) in row.iter().enumerate() {
                let (x, y) = (left + j as i32 * CELL, top + i as i32 * CELL);
                let c = plasma(v / 100.0);
                root.draw(&Rectangle::new(
                    [(x, y), (x + CELL, y + CELL)],
                    RGBColor(c[0], c[1], c[2]).filled(),
                ))
                .map_err(e)?;
                let text = if v.is_nan() {
                    "-1%".to_string()
                } else {
                    format!("{}%", v.trunc() as i64)
                };
                // mmdetection writes white; dark text on the bright end keeps it readable.
                let bright = 0.299 * c[0] as f64 + 0.587 * c[1] as f64 + 0.114 * c[2] as f64;
                let ink = if bright > 170.0 { BLACK } else { WHITE };
                let w = text_width(&text, &cell_font);
                root.draw_text(
                    &text,
                    &cell_font.color(&ink),
                    (x + CELL / 2 - w / 2, y + CELL / 2 - 6),
                )
                .map_err(e)?;
            }
        }
        // Cell borders (the script's minor grid).
        for k in 0..=n {
            let grey = RGBColor(176, 176, 176);
            let (a, b) = (left + k * CELL, top + k * CELL);
            root.draw(&PathElement::new(
                vec![(a, top), (a, top + grid)],
                grey.stroke_width(1),
            ))
            .map_err(e)?;
            root.draw(&PathElement::new(
                vec![(left, b), (left + grid, b)],
                grey.stroke_width(1),
            ))
            .map_err(e)?;
        }
        // The colour bar: 0 at the bottom, 100 at the top.
        let bx = left + grid + 20;
        for y in 0..grid {
            let c = plasma(1.0 - y as f64 / (grid - 1).max(1) as f64);
            root.draw(&Rectangle::new(
                [(bx, top + y), (bx + BAR_WIDTH, top + y + 1)],
                RGBColor(c[0], c[1], c[2]).filled(),
            ))
            .map_err(e)?;
        }
        let small = (font(), 11).into_font().color(&BLACK);
        for tick in [0, 20, 40, 60, 80, 100] {
            let y = top + grid - 1 - (tick * (grid - 1)) / 100;
            root.draw(&PathElement::new(
                vec![(bx + BAR_WIDTH, y), (bx + BAR_WIDTH + 4, y)],
                BLACK.stroke_width(1),
            ))
            .map_err(e)?;
            root.draw_text(&tick.to_string(), &small, (bx + BAR_WIDTH + 6, y - 6))
                .map_err(e)?;
        }
        root.present().map_err(e)?;
    }
    Ok(pic)
}

/// [`draw`]s the matrix into `dir/confusion_matrix.png` (the folder made if missing, as
/// mmdetection's script saves it) and returns the file's path.
pub fn save(
    dir: &Path,
    labels: &[String],
    percent: &[Vec<f64>],
    title: &str,
) -> Result<PathBuf, PictureError> {
    std::fs::create_dir_all(dir).map_err(|source| PictureError::Folder {
        dir: dir.to_path_buf(),
        verb: "create",
        source,
    })?;
    let path = dir.join("confusion_matrix.png");
    draw(labels, percent, title)?.save_png(&path)?;
    Ok(path)
}

/// The width in pixels `text` takes in `style`.
fn text_width(text: &str, style: &FontDesc) -> i32 {
    style
        .box_size(text)
        .map(|(w, _)| w as i32)
        .unwrap_or(8 * text.len() as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_take_the_plasma_colour_of_their_row_percentage() {
        let labels: Vec<String> = ["circle", "square", "background"].map(String::from).into();
        let percent = vec![
            vec![100.0, 0.0, 0.0],
            vec![50.0, 25.0, 25.0],
            vec![f64::NAN, f64::NAN, f64::NAN],
        ];
        let pic = draw(&labels, &percent, "Normalized Confusion Matrix").unwrap();
        // Find the grid from the top-left cell (yellow: 100%): the leftmost yellow pixel (the
        // colour bar's yellow top is to the right of the grid).
        let yellow = plasma(1.0);
        let found = (0..pic.width)
            .flat_map(|x| (0..pic.height).map(move |y| (x, y)))
            .find(|&(x, y)| pic.pixel(x, y) == yellow);
        let (x, y) = found.expect("a 100% cell is drawn in plasma's yellow");
        let (x, y) = (x + 4, y + 4);
        assert_eq!(pic.pixel(x + CELL as u32, y), plasma(0.0));
        assert_eq!(pic.pixel(x, y + CELL as u32), plasma(0.5));
        assert_eq!(plasma(0.0), PLASMA[0]);
        assert_eq!(plasma(1.0), PLASMA[16]);
        assert!(draw(&labels, &percent[..2], "t").is_err());
    }
}
