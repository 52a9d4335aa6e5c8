//! Image decoding: good files decode exactly as `image` decodes them; truncated or garbled
//! JPEG and PNG files are errors naming the file (before, a JPEG cut in half decoded with a
//! grey lower part and trained silently).

use image::codecs::jpeg::JpegEncoder;
use image::{ColorType, ImageEncoder};
use mmrun::data::image::{Pixels, decode_image};
use std::path::Path;

fn noise(w: u32, h: u32, channels: usize) -> Vec<u8> {
    let mut s = 12345u32;
    (0..(w * h) as usize * channels)
        .map(|i| {
            s = s.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            // Smooth gradients plus noise: compresses like a photo, exercises every channel.
            ((i % 97) as u32 * 2 + (s >> 27)) as u8
        })
        .collect()
}

fn jpeg(w: u32, h: u32, color: ColorType) -> Vec<u8> {
    let mut out = vec![];
    let px = noise(w, h, color.channel_count() as usize);
    JpegEncoder::new_with_quality(&mut out, 90)
        .write_image(&px, w, h, color.into())
        .unwrap();
    out
}

fn png(w: u32, h: u32, color: ColorType) -> Vec<u8> {
    let mut out = vec![];
    let px = noise(w, h, color.bytes_per_pixel() as usize);
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(&px, w, h, color.into())
        .unwrap();
    out
}

/// What `image` makes of the bytes (the decoder used before).
fn reference(bytes: &[u8]) -> Vec<u8> {
    image::load_from_memory(bytes).unwrap().to_rgb8().into_raw()
}

fn decoded(bytes: &[u8]) -> Vec<u8> {
    let img = decode_image(Path::new("x"), bytes).unwrap();
    match img.pixels {
        Pixels::U8(d) => d,
        Pixels::F32(_) => panic!("decoded as f32"),
    }
}

#[test]
fn good_files_decode_as_the_image_crate_decodes_them() {
    for color in [ColorType::Rgb8, ColorType::L8] {
        let b = jpeg(67, 41, color);
        assert_eq!(decoded(&b), reference(&b), "jpeg {color:?}");
    }
    for color in [
        ColorType::Rgb8,
        ColorType::L8,
        ColorType::La8,
        ColorType::Rgba8,
        ColorType::L16,
        ColorType::Rgb16,
        ColorType::Rgba16,
    ] {
        let b = png(23, 17, color);
        assert_eq!(decoded(&b), reference(&b), "png {color:?}");
    }
}

#[test]
fn lenient_where_libjpeg_is_lenient() {
    let b = jpeg(64, 48, ColorType::Rgb8);
    let want = reference(&b);
    // Bytes after the end-of-image marker.
    let mut trailing = b.clone();
    trailing.extend_from_slice(&[0; 16]);
    assert_eq!(decoded(&trailing), want);
    // Stray bytes between two header segments (libjpeg: "extraneous bytes before marker").
    let dqt = b.windows(2).position(|m| m == [0xFF, 0xDB]).unwrap();
    let stray = [&b[..dqt], &[0, 0, 0][..], &b[dqt..]].concat();
    assert_eq!(decoded(&stray), want);
}

fn decode_error(name: &str, bytes: &[u8]) -> String {
    match decode_image(Path::new(name), bytes) {
        Ok(img) => panic!("{name}: decoded a damaged file as {}x{}", img.w, img.h),
        Err(e) => e.to_string(),
    }
}

#[test]
fn truncated_and_garbled_jpegs_are_errors_naming_the_file() {
    let b = jpeg(160, 120, ColorType::Rgb8);
    for (what, bytes) in [
        ("half", b[..b.len() / 2].to_vec()),
        ("most", b[..b.len() * 9 / 10].to_vec()),
        ("no-eoi", b[..b.len() - 2].to_vec()),
        ("headers", b[..200].to_vec()),
    ] {
        let name = format!("{what}.jpg");
        let e = decode_error(&name, &bytes);
        assert!(e.contains(&name) && e.contains("JPEG"), "{what}: {e}");
    }
    // A marker in the middle of the entropy-coded data.
    let mut g = b.clone();
    let mid = g.len() / 2;
    g[mid..mid + 2].copy_from_slice(&[0xFF, 0xC4]);
    let e = decode_error("garbled.jpg", &g);
    assert!(e.contains("garbled.jpg"), "{e}");
}

#[test]
fn truncated_and_garbled_pngs_are_errors_naming_the_file() {
    let b = png(64, 48, ColorType::Rgb8);
    let e = decode_error("half.png", &b[..b.len() / 2]);
    assert!(e.contains("half.png"), "{e}");
    let e = decode_error("no-iend.png", &b[..b.len() - 12]);
    assert!(e.contains("no-iend.png"), "{e}");
    let mut g = b.clone();
    let mid = g.len() / 2;
    g[mid] ^= 0x10;
    let e = decode_error("garbled.png", &g);
    assert!(e.contains("garbled.png"), "{e}");
}
