//! Pictures: what mmrun draws for people to look at — loss and metric curves, images with
//! boxes and class names, confusion matrices. This module owns the canvas (an RGB buffer
//! plotters draws into), the font compiled into the binary, the class colour palette and PNG
//! encoding; the pictures themselves live in the submodules. It depends on nothing but `util`,
//! so the CLI and the engine's hooks can both draw.

pub mod boxes;
pub mod confusion;
pub mod curves;
mod error;
pub mod train_log;

pub use error::{PictureError, TrainLogError};

use plotters::style::FontStyle;
use std::path::Path;
use std::sync::OnceLock;

/// The font family every picture's text uses: DejaVu Sans, compiled in and registered with
/// plotters on first use (no system fonts are read).
pub fn font() -> &'static str {
    static REGISTERED: OnceLock<()> = OnceLock::new();
    REGISTERED.get_or_init(|| {
        for style in [FontStyle::Normal, FontStyle::Bold] {
            let bytes = match style {
                FontStyle::Bold => dejavu::sans::bold(),
                _ => dejavu::sans::regular(),
            };
            // The bytes are a valid TrueType font shipped by the `dejavu` crate.
            plotters::style::register_font(FAMILY, style, bytes)
                .unwrap_or_else(|_| unreachable!("DejaVu Sans is a valid TrueType font"));
        }
    });
    FAMILY
}

const FAMILY: &str = "DejaVu Sans";

/// An RGB picture: `width × height` pixels, row-major, three bytes each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Picture {
    pub width: u32,
    pub height: u32,
    pub rgb: Vec<u8>,
}

impl Picture {
    /// A picture filled with one colour.
    pub fn filled(width: u32, height: u32, colour: [u8; 3]) -> Picture {
        let rgb = colour.repeat(width as usize * height as usize);
        Picture { width, height, rgb }
    }

    /// The colour of pixel `(x, y)`.
    pub fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        let i = 3 * (y as usize * self.width as usize + x as usize);
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }

    /// The picture encoded as PNG.
    pub fn to_png(&self) -> Result<Vec<u8>, image::ImageError> {
        use image::ImageEncoder;
        let mut out = Vec::new();
        image::codecs::png::PngEncoder::new(&mut out).write_image(
            &self.rgb,
            self.width,
            self.height,
            image::ExtendedColorType::Rgb8,
        )?;
        Ok(out)
    }

    /// Writes the picture as a PNG file, making its folder if needed (atomically: a reader
    /// never sees half a file).
    pub fn save_png(&self, path: &Path) -> Result<(), PictureError> {
        let bytes = self.to_png().map_err(|source| PictureError::Encode {
            path: path.to_path_buf(),
            source,
        })?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| PictureError::Folder {
                dir: dir.to_path_buf(),
                verb: "make",
                source,
            })?;
        }
        crate::util::atomic_file::write_atomic(path, &bytes).map_err(|source| PictureError::Write {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// The colour class `index` is drawn in: a fixed palette of well-separated hues (matplotlib's
/// `tab20` order), repeated past twenty classes.
pub fn class_colour(index: usize) -> [u8; 3] {
    const TAB20: [[u8; 3]; 20] = [
        [31, 119, 180],
        [255, 127, 14],
        [44, 160, 44],
        [214, 39, 40],
        [148, 103, 189],
        [140, 86, 75],
        [227, 119, 194],
        [127, 127, 127],
        [188, 189, 34],
        [23, 190, 207],
        [174, 199, 232],
        [255, 187, 120],
        [152, 223, 138],
        [255, 152, 150],
        [197, 176, 213],
        [196, 156, 148],
        [247, 182, 210],
        [199, 199, 199],
        [219, 219, 141],
        [158, 218, 229],
    ];
    TAB20[index % TAB20.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use plotters::prelude::*;

    #[test]
    fn text_renders_with_the_compiled_in_font() {
        let mut pic = Picture::filled(60, 20, [255, 255, 255]);
        {
            let root = BitMapBackend::with_buffer(&mut pic.rgb, (60, 20)).into_drawing_area();
            let style = (font(), 14).into_font().color(&BLACK);
            root.draw_text("Ag", &style, (2, 2)).unwrap();
            root.present().unwrap();
        }
        let dark = pic.rgb.chunks(3).filter(|p| p[0] < 128).count();
        assert!(dark > 10, "no glyph pixels drawn ({dark})");
        let png = pic.to_png().unwrap();
        assert_eq!(&png[1..4], b"PNG");
    }
}
