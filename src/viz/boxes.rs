//! Boxes drawn onto images: rectangle outlines in their class colour with a filled tag that
//! names the class (and a prediction's score, `person 0.87`), and the side-by-side picture
//! of ground truth and predictions that `mmrun test --show-dir` and TensorBoard show.
//! Coordinates are image pixels `[x1, y1, x2, y2]` (mmdetection's convention: the box covers
//! columns `x1..x2`); what falls outside the image is clipped, a box wholly outside is skipped.

use super::{Picture, PictureError, class_colour, font};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// One box to draw.
#[derive(Clone, Debug, PartialEq)]
pub struct DrawnBox {
    /// `[x1, y1, x2, y2]` in image pixels.
    pub bbox: [f32; 4],
    /// The class index: picks the colour ([`class_colour`]).
    pub class: usize,
    /// The tag's text: the class name, and the score of a prediction ([`tag_text`]).
    pub text: String,
}

/// A tag's text: `name` for ground truth, `name 0.87` for a prediction.
pub fn tag_text(name: &str, score: Option<f64>) -> String {
    match score {
        Some(s) => format!("{name} {s:.2}"),
        None => name.to_string(),
    }
}

/// Outline thickness in pixels: 2 for the small images detectors train on, growing with the
/// shorter side (about 1/200 of it) so large images keep visible outlines.
pub fn thickness(width: u32, height: u32) -> u32 {
    (width.min(height) / 200).clamp(2, 8)
}

/// Text height in pixels for tags and captions: readable at 100 px, not huge at 1000 px.
fn font_px(width: u32, height: u32) -> u32 {
    (width.min(height) / 16).clamp(10, 28)
}

/// Black or white, whichever reads better on `bg` (by its luminance).
fn ink_on(bg: [u8; 3]) -> [u8; 3] {
    let y = 0.299 * bg[0] as f32 + 0.587 * bg[1] as f32 + 0.114 * bg[2] as f32;
    if y > 150.0 {
        [0, 0, 0]
    } else {
        [255, 255, 255]
    }
}

/// Fills the pixels `x0..x1 × y0..y1` (clipped to the picture) with `colour`.
fn fill(pic: &mut Picture, [x0, y0, x1, y1]: [i64; 4], colour: [u8; 3]) {
    let (w, h) = (pic.width as i64, pic.height as i64);
    let (x0, x1) = (x0.clamp(0, w), x1.clamp(0, w));
    let (y0, y1) = (y0.clamp(0, h), y1.clamp(0, h));
    for y in y0..y1 {
        let row = (y * w) as usize * 3;
        for px in pic.rgb[row + 3 * x0 as usize..row + 3 * x1 as usize].chunks_exact_mut(3) {
            px.copy_from_slice(&colour);
        }
    }
}

/// The pixel span a box covers, clipped to the picture; `None` when nothing of it is inside
/// (or its corners are not numbers).
fn pixel_span(bbox: [f32; 4], width: u32, height: u32) -> Option<[i64; 4]> {
    if bbox.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let [x1, y1, x2, y2] = bbox.map(|v| v.round() as i64);
    let (x1, x2) = (x1.max(0), x2.min(width as i64));
    let (y1, y2) = (y1.max(0), y2.min(height as i64));
    (x1 < x2 && y1 < y2).then_some([x1, y1, x2, y2])
}

/// Writes `text` in `colour` with its top-left corner at `(x, y)` (clipped to the picture).
fn write_text(
    pic: &mut Picture,
    text: &str,
    (x, y): (i32, i32),
    px: u32,
    colour: [u8; 3],
) -> Result<(), PictureError> {
    let (w, h) = (pic.width, pic.height);
    let root = BitMapBackend::with_buffer(&mut pic.rgb, (w, h)).into_drawing_area();
    let style = (font(), px as f64)
        .into_font()
        .color(&RGBColor(colour[0], colour[1], colour[2]))
        .pos(Pos::new(HPos::Left, VPos::Top));
    root.draw_text(text, &style, (x, y))
        .and_then(|()| root.present())
        .map_err(|e| PictureError::draw(format!("the text `{text}`"), e))
}

/// The size of `text` at `px` pixels.
fn text_size(text: &str, px: u32) -> Result<(u32, u32), PictureError> {
    (font(), px as f64)
        .into_font()
        .box_size(text)
        .map_err(|e| PictureError::Measure {
            text: text.to_string(),
            message: e.to_string(),
        })
}

/// Draws `boxes` onto `pic`: every outline first, then every tag (so no outline crosses a
/// tag), in the order given (later ones on top). A tag sits on the box's top-left corner,
/// above the box where there is room, inside it otherwise. Returns how many boxes were drawn
/// (those with some part inside the picture).
pub fn draw_boxes(pic: &mut Picture, boxes: &[DrawnBox]) -> Result<usize, PictureError> {
    let (w, h) = (pic.width, pic.height);
    let t = thickness(w, h) as i64;
    let px = font_px(w, h);
    let shown: Vec<(&DrawnBox, [i64; 4])> = (boxes.iter())
        .filter_map(|b| Some((b, pixel_span(b.bbox, w, h)?)))
        .collect();
    for (b, [x1, y1, x2, y2]) in &shown {
        let c = class_colour(b.class);
        // Outlines grow inwards from the box's edges, so the box's own pixels are the ones
        // coloured; a box thinner than two lines is filled.
        let (tx, ty) = (t.min(x2 - x1), t.min(y2 - y1));
        fill(pic, [*x1, *y1, *x2, y1 + ty], c);
        fill(pic, [*x1, y2 - ty, *x2, *y2], c);
        fill(pic, [*x1, *y1, x1 + tx, *y2], c);
        fill(pic, [x2 - tx, *y1, *x2, *y2], c);
    }
    let pad = (px / 5).max(1) as i64;
    for (b, [x1, y1, _, _]) in &shown {
        if b.text.is_empty() {
            continue;
        }
        let c = class_colour(b.class);
        let (tw, th) = text_size(&b.text, px)?;
        let (tw, th) = (tw as i64 + 2 * pad, th as i64 + 2 * pad);
        let top = if y1 - th >= 0 { y1 - th } else { *y1 };
        fill(pic, [*x1, top, x1 + tw, top + th], c);
        write_text(
            pic,
            &b.text,
            ((x1 + pad) as i32, (top + pad) as i32),
            px,
            ink_on(c),
        )?;
    }
    Ok(shown.len())
}

/// Two pictures side by side under a caption band: `left` (ground truth) and `right`
/// (predictions), each with its caption. The result is as wide as both together.
pub fn side_by_side(
    left: &Picture,
    right: &Picture,
    captions: [&str; 2],
) -> Result<Picture, PictureError> {
    let px = font_px(left.width.max(right.width), left.height.max(right.height)).min(16);
    let pad = (px / 4).max(2);
    let band = px + 2 * pad;
    let width = left.width + right.width;
    let height = band + left.height.max(right.height);
    let mut out = Picture::filled(width, height, [255, 255, 255]);
    for (pic, x0) in [(left, 0), (right, left.width)] {
        for y in 0..pic.height {
            let src = &pic.rgb[3 * (y * pic.width) as usize..3 * ((y + 1) * pic.width) as usize];
            let at = 3 * ((band + y) * width + x0) as usize;
            out.rgb[at..at + src.len()].copy_from_slice(src);
        }
    }
    for (text, x0, room) in [
        (captions[0], 0, left.width),
        (captions[1], left.width, right.width),
    ] {
        // A caption wider than its picture is set smaller (down to a legible minimum).
        let room = room.saturating_sub(2 * pad).max(1);
        let (tw, _) = text_size(text, px)?;
        let fit = if tw > room { px * room / tw } else { px };
        let top = pad + (px - fit.clamp(7, px)) / 2;
        write_text(
            &mut out,
            text,
            ((x0 + pad) as i32, top as i32),
            fit.clamp(7, px),
            [0, 0, 0],
        )?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GREY: [u8; 3] = [128, 128, 128];

    fn one_box(bbox: [f32; 4], text: &str) -> Picture {
        let mut pic = Picture::filled(64, 48, GREY);
        let b = DrawnBox {
            bbox,
            class: 3,
            text: text.into(),
        };
        assert_eq!(draw_boxes(&mut pic, &[b]).unwrap(), 1);
        pic
    }

    #[test]
    fn outline_pixels_take_the_class_colour_and_the_rest_keeps_the_background() {
        let pic = one_box([10.0, 8.0, 40.0, 30.0], "");
        let c = class_colour(3);
        // The outline: the box's edge pixels and the next one inwards (2 px at this size).
        for y in 8..30 {
            for x in [10, 11, 38, 39] {
                assert_eq!(pic.pixel(x, y), c, "({x}, {y})");
            }
        }
        for x in 10..40 {
            for y in [8, 9, 28, 29] {
                assert_eq!(pic.pixel(x, y), c, "({x}, {y})");
            }
        }
        // Inside and outside the outline, the background.
        for (x, y) in [
            (12, 10),
            (25, 20),
            (37, 27),
            (9, 20),
            (40, 20),
            (25, 7),
            (25, 30),
        ] {
            assert_eq!(pic.pixel(x, y), GREY, "({x}, {y})");
        }
        let coloured = pic.rgb.chunks(3).filter(|p| *p == c).count();
        assert_eq!(coloured, 2 * (30 * 2) + 2 * (18 * 2));
    }

    #[test]
    fn a_tag_is_filled_with_the_class_colour_and_holds_text() {
        let pic = one_box([10.0, 20.0, 40.0, 40.0], "star 0.87");
        let c = class_colour(3);
        // Above the box: the tag's fill, with text in the contrasting ink.
        let tag: Vec<[u8; 3]> = (10..40)
            .flat_map(|x| (10..20).map(move |y| (x, y)))
            .map(|(x, y)| pic.pixel(x, y))
            .collect();
        assert!(tag.iter().filter(|p| **p == c).count() > 100);
        // White ink on this red (glyphs are anti-aliased: count clearly lighter pixels).
        assert_eq!(ink_on(c), [255, 255, 255]);
        assert!(tag.iter().filter(|p| p[1] > 120 && p[2] > 120).count() > 10);
        // Left of the box and below it, untouched.
        assert_eq!(pic.pixel(5, 15), GREY);
        assert_eq!(pic.pixel(25, 45), GREY);
    }

    #[test]
    fn boxes_are_clipped_and_those_outside_skipped() {
        let mut pic = Picture::filled(64, 48, GREY);
        let b = |bbox| DrawnBox {
            bbox,
            class: 0,
            text: String::new(),
        };
        let boxes = [
            b([-20.0, -20.0, 10.0, 10.0]),
            b([70.0, 0.0, 90.0, 10.0]),
            b([0.0, 50.0, 10.0, 60.0]),
            b([f32::NAN, 0.0, 10.0, 10.0]),
        ];
        assert_eq!(draw_boxes(&mut pic, &boxes).unwrap(), 1);
        assert_eq!(pic.pixel(9, 5), class_colour(0));
        assert_eq!(pic.pixel(63, 47), GREY);
    }

    #[test]
    fn side_by_side_is_twice_as_wide_with_a_caption_band() {
        let left = Picture::filled(64, 48, [255, 0, 0]);
        let right = Picture::filled(64, 48, [0, 0, 255]);
        let out = side_by_side(&left, &right, ["ground truth", "predictions"]).unwrap();
        assert_eq!(out.width, 128);
        let band = out.height - 48;
        assert!(band > 8);
        assert_eq!(out.pixel(10, band + 10), [255, 0, 0]);
        assert_eq!(out.pixel(100, band + 10), [0, 0, 255]);
        let ink = (0..band).flat_map(|y| (0..128).map(move |x| (x, y)));
        assert!(
            ink.into_iter()
                .filter(|&(x, y)| out.pixel(x, y)[0] < 100)
                .count()
                > 20
        );
    }
}
