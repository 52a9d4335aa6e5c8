//! Image decoding, strict about damaged files: a truncated or corrupt PNG or JPEG is an
//! error naming the file (the loader's `on_bad_sample` decides whether it stops the run or
//! is skipped), never an image padded with grey where data was missing.
//!
//! JPEG goes to zune-jpeg directly in strict mode: through `image` (non-strict) a file cut
//! in half decodes "fine" with its lower part grey. Strict mode fails on entropy-coded data
//! that ends early or does not decode; a file whose last scan is not followed by an EOI
//! marker is refused too (strict mode accepts a file missing only its last bytes). Strict
//! mode also refuses stray bytes between header segments, which libjpeg (and so
//! mmdetection) accepts with a warning: those files are decoded again leniently, the EOI
//! check still applied. PNG through `image` is already strict (chunk CRCs, end of data).
//!
//! The third-party decoders are not trusted not to panic on crafted input (fuzzing found
//! index and unwrap panics inside zune-jpeg's IDCT): each decode runs under
//! [`std::panic::catch_unwind`], and a panic becomes a [`DataError::Decode`] naming the file,
//! so `on_bad_sample` treats it like any other damaged image.
//!
//! Output buffers are allocated fallibly ([`super::limits`]) after the header gave the size,
//! and images over [`MAX_DECODED_BYTES`] are refused before decoding.

use super::error::{DataError, Result};
use super::image::Image;
use super::limits::{self, MAX_DECODED_BYTES};
use image::ImageDecoder;
use std::path::Path;
use zune_jpeg::JpegDecoder;
use zune_jpeg::zune_core::bytestream::ZCursor;
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;

/// Decode PNG or JPEG bytes as 8-bit RGB; `path` names the file in errors.
pub fn decode(path: &Path, bytes: &[u8]) -> Result<Image> {
    let err = |m: String| DataError::Decode {
        path: path.to_path_buf(),
        message: m,
    };
    let decoder = match image::guess_format(bytes).map_err(|e| err(e.to_string()))? {
        image::ImageFormat::Jpeg => decode_jpeg,
        image::ImageFormat::Png => decode_png,
        f => {
            return Err(err(format!(
                "{f:?} images are not supported (PNG and JPEG are)"
            )));
        }
    };
    contain_panics(|| decoder(path, bytes))
        .unwrap_or_else(|m| Err(err(format!("corrupt image: the decoder panicked: {m}"))))
}

thread_local! {
    /// Set while this thread runs a decoder, so the panic hook stays quiet for a panic that
    /// is caught and reported as a decode error.
    static DECODING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Run `f`, returning a panic's message as `Err` instead of unwinding further.
fn contain_panics<T>(f: impl FnOnce() -> T) -> std::result::Result<T, String> {
    static QUIET_HOOK: std::sync::Once = std::sync::Once::new();
    QUIET_HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !DECODING.with(|d| d.get()) {
                previous(info);
            }
        }));
    });
    DECODING.with(|d| d.set(true));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    DECODING.with(|d| d.set(false));
    result.map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".into())
    })
}

/// Refuse a decoded size over the limit, then allocate its buffer.
fn buffer(path: &Path, w: usize, h: usize, channels: usize) -> Result<Vec<u8>> {
    let what = || format!("{}: a decoded {w}x{h} image", path.display());
    let n = limits::product(&[w, h, channels], what)?;
    if n > MAX_DECODED_BYTES {
        return Err(DataError::Decode {
            path: path.to_path_buf(),
            message: format!(
                "{w}x{h} pixels is larger than the {} a decoded image may take",
                limits::human_bytes(MAX_DECODED_BYTES as u128)
            ),
        });
    }
    limits::zeroed(n, 0u8, what)
}

fn decode_jpeg(path: &Path, bytes: &[u8]) -> Result<Image> {
    let err = |m: String| DataError::Decode {
        path: path.to_path_buf(),
        message: m,
    };
    if !ends_with_eoi(bytes) {
        return Err(err(
            "truncated JPEG: no end-of-image marker after the last scan".into(),
        ));
    }
    let run = |strict: bool| -> Result<Image> {
        let opts = DecoderOptions::default()
            .set_strict_mode(strict)
            .set_max_width(usize::from(u16::MAX))
            .set_max_height(usize::from(u16::MAX))
            .jpeg_set_out_colorspace(ColorSpace::RGB);
        let mut d = JpegDecoder::new_with_options(ZCursor::new(bytes), opts);
        d.decode_headers()
            .map_err(|e| err(format!("bad JPEG: {e}")))?;
        let (w, h) = d
            .dimensions()
            .ok_or_else(|| err("bad JPEG: no frame header".into()))?;
        let mut buf = buffer(path, w, h, 3)?;
        d.decode_into(&mut buf)
            .map_err(|e| err(format!("truncated or corrupt JPEG data: {e}")))?;
        Ok(Image::from_u8(h, w, buf))
    };
    match run(true) {
        Err(DataError::Decode { message, .. })
            if message.contains("Extra bytes between headers") =>
        {
            run(false)
        }
        r => r,
    }
}

/// Whether an EOI marker (`FF D9`) follows the last start-of-scan (`FF DA`). Entropy-coded
/// data stuffs every `FF` with `00`, so neither marker can occur inside a scan; an embedded
/// EXIF thumbnail's markers come before the main image's scans.
fn ends_with_eoi(bytes: &[u8]) -> bool {
    let last_sos = bytes.windows(2).rposition(|m| m == [0xFF, 0xDA]);
    let Some(sos) = last_sos else {
        return false;
    };
    bytes[sos..].windows(2).any(|m| m == [0xFF, 0xD9])
}

fn decode_png(path: &Path, bytes: &[u8]) -> Result<Image> {
    let err = |e: image::ImageError| DataError::Decode {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let d = image::codecs::png::PngDecoder::new(std::io::Cursor::new(bytes)).map_err(err)?;
    let (w, h) = d.dimensions();
    let (w, h) = (w as usize, h as usize);
    let color = d.color_type();
    let mut raw = buffer(path, w, h, usize::from(color.bytes_per_pixel()))?;
    d.read_image(&mut raw).map_err(err)?;
    let rgb = match color {
        image::ColorType::Rgb8 => raw,
        other => {
            let mut out = buffer(path, w, h, 3)?;
            to_rgb8(&raw, other, &mut out).map_err(|m| DataError::Decode {
                path: path.to_path_buf(),
                message: m,
            })?;
            out
        }
    };
    Ok(Image::from_u8(h, w, rgb))
}

/// Convert decoded pixels to RGB8 as `image`'s `to_rgb8` does: gray replicated, alpha
/// dropped, 16-bit values rounded to 8 bits (`(v + 128) / 257`).
fn to_rgb8(raw: &[u8], color: image::ColorType, out: &mut [u8]) -> std::result::Result<(), String> {
    use image::ColorType as C;
    let u16s = |i: usize| {
        let v = u16::from_ne_bytes([raw[2 * i], raw[2 * i + 1]]);
        ((u32::from(v) + 128) / 257) as u8
    };
    let (channels, wide) = match color {
        C::L8 => (1, false),
        C::La8 => (2, false),
        C::Rgb8 => (3, false),
        C::Rgba8 => (4, false),
        C::L16 => (1, true),
        C::La16 => (2, true),
        C::Rgb16 => (3, true),
        C::Rgba16 => (4, true),
        other => return Err(format!("unsupported pixel format {other:?}")),
    };
    let sample = |i: usize| if wide { u16s(i) } else { raw[i] };
    for (p, px) in out.chunks_exact_mut(3).enumerate() {
        let base = p * channels;
        if channels < 3 {
            px.fill(sample(base));
        } else {
            for (c, v) in px.iter_mut().enumerate() {
                *v = sample(base + c);
            }
        }
    }
    Ok(())
}
