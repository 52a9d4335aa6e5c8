//! The image a sample carries through the pipeline: interleaved RGB (HWC), 8-bit until a
//! transform needs floats (photometric distortion, normalize), then f32.

use super::error::{DataError, Result};
use std::path::Path;

/// Pixel storage: 8-bit as decoded, or f32 after a float transform.
#[derive(Clone, Debug, PartialEq)]
pub enum Pixels {
    U8(Vec<u8>),
    F32(Vec<f32>),
}

/// An interleaved 3-channel image, `h × w × 3`, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Image {
    pub h: usize,
    pub w: usize,
    pub pixels: Pixels,
}

impl Image {
    /// A 3-channel 8-bit image from interleaved data (`data.len() == h * w * 3`).
    pub fn from_u8(h: usize, w: usize, data: Vec<u8>) -> Self {
        debug_assert_eq!(data.len(), h * w * 3);
        Image {
            h,
            w,
            pixels: Pixels::U8(data),
        }
    }
    /// A 3-channel f32 image from interleaved data.
    pub fn from_f32(h: usize, w: usize, data: Vec<f32>) -> Self {
        debug_assert_eq!(data.len(), h * w * 3);
        Image {
            h,
            w,
            pixels: Pixels::F32(data),
        }
    }
    /// Convert to f32 in place (values unchanged, 0..255).
    ///
    /// # Panics
    /// If the f32 copy cannot be allocated ([`try_make_f32`](Self::try_make_f32) errs).
    pub fn make_f32(&mut self) {
        self.try_make_f32().unwrap_or_else(|e| panic!("{e}"))
    }
    /// Convert to f32 in place; a copy too large to allocate is an error.
    pub fn try_make_f32(&mut self) -> Result<()> {
        if let Pixels::U8(d) = &self.pixels {
            let what = || format!("a {}x{} image as f32", self.w, self.h);
            let mut f = super::limits::with_capacity(d.len(), what)?;
            f.extend(d.iter().map(|&v| v as f32));
            self.pixels = Pixels::F32(f);
        }
        Ok(())
    }
    /// The pixels as f32 (a copy for 8-bit images).
    pub fn to_f32_vec(&self) -> Vec<f32> {
        match &self.pixels {
            Pixels::U8(d) => d.iter().map(|&v| v as f32).collect(),
            Pixels::F32(d) => d.clone(),
        }
    }
    /// The value at `(y, x, c)` as f32.
    pub fn get(&self, y: usize, x: usize, c: usize) -> f32 {
        let i = (y * self.w + x) * 3 + c;
        match &self.pixels {
            Pixels::U8(d) => d[i] as f32,
            Pixels::F32(d) => d[i],
        }
    }
}

/// Read and decode a PNG or JPEG file as 8-bit RGB (gray and RGBA are converted).
pub fn load_image(path: &Path) -> Result<Image> {
    let bytes = crate::util::read::regular_file(path, super::limits::MAX_IMAGE_FILE_BYTES)
        .map_err(|e| DataError::io(path, e))?;
    decode_image(path, &bytes)
}

/// Decode image bytes; `path` only names the file in errors. A truncated or corrupt file is
/// an error (a bad sample), never an image with a grey band where data was missing.
pub fn decode_image(path: &Path, bytes: &[u8]) -> Result<Image> {
    super::decode::decode(path, bytes)
}
