//! `image_decode` (the loader's image decoding and pipelines): the committed corpus, byte
//! mutations of it and freshly encoded images of random size and colour type never panic,
//! errors name the file, and what decodes goes through the loader pipelines consistently.

use super::{committed_inputs, config, corpus, edits, mutate, save_seeds, write_seeds};
use image::{DynamicImage, ImageFormat};
use mmrun::data::image::decode_image;
use proptest::prelude::*;
use std::io::Cursor;
use std::path::Path;

#[path = "../../../fuzz/harness/image_decode.rs"]
mod harness;

/// A `w × h` test pattern as colour type `color` (0-6), encoded as PNG or JPEG (JPEG takes
/// only 8-bit gray and RGB; other colour types become RGB).
fn encode(w: u32, h: u32, color: u8, jpeg: bool) -> Vec<u8> {
    let rgb = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([
            (x * 37 + y) as u8,
            (y * 53) as u8,
            ((x ^ y) as u8).wrapping_mul(9),
        ])
    });
    let img = DynamicImage::ImageRgb8(rgb);
    let img = match color {
        0 => DynamicImage::ImageLuma8(img.to_luma8()),
        1 => DynamicImage::ImageLumaA8(img.to_luma_alpha8()),
        2 => img,
        3 => DynamicImage::ImageRgba8(img.to_rgba8()),
        4 => DynamicImage::ImageLuma16(img.to_luma16()),
        5 => DynamicImage::ImageRgb16(img.to_rgb16()),
        _ => DynamicImage::ImageRgba16(img.to_rgba16()),
    };
    let (img, format) = if jpeg {
        let img = match img {
            DynamicImage::ImageLuma8(_) => img,
            other => DynamicImage::ImageRgb8(other.to_rgb8()),
        };
        (img, ImageFormat::Jpeg)
    } else {
        (img, ImageFormat::Png)
    };
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).expect("encode a test image");
    out.into_inner()
}

fn regenerate_seeds() {
    let names = [
        "gray",
        "gray_alpha",
        "rgb",
        "rgba",
        "gray16",
        "rgb16",
        "rgba16",
    ];
    let mut seeds: Vec<(String, Vec<u8>)> = vec![];
    for (c, n) in names.iter().enumerate() {
        seeds.push((format!("{n}_9x7.png"), encode(9, 7, c as u8, false)));
    }
    seeds.push(("rgb_1x1.png".into(), encode(1, 1, 2, false)));
    seeds.push(("rgb_40x3.png".into(), encode(40, 3, 2, false)));
    seeds.push(("rgb_17x9.jpg".into(), encode(17, 9, 2, true)));
    seeds.push(("gray_8x8.jpg".into(), encode(8, 8, 0, true)));
    seeds.push(("rgb_2x33.jpg".into(), encode(2, 33, 2, true)));
    let seeds: Vec<(&str, Vec<u8>)> = seeds.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    save_seeds("image_decode", &seeds);
}

#[test]
fn corpus_replays_without_panic() {
    if write_seeds() {
        regenerate_seeds();
    }
    let mut decoded = 0;
    for (path, bytes) in committed_inputs("image_decode") {
        eprintln!("{}", path.display());
        harness::run(&bytes);
        decoded += usize::from(decode_image(Path::new("x"), &bytes).is_ok());
    }
    assert!(decoded >= 10, "only {decoded} seeds decode");
}

#[test]
fn png_checksums_are_recomputed_so_mutations_reach_the_decoder() {
    let png = encode(9, 7, 2, false);
    assert_eq!(
        harness::fix_png_crcs(&png),
        None,
        "a valid PNG is left alone"
    );
    // Change the height in IHDR (bytes 8..12 of its data) from 7 to 6: the stored CRC no
    // longer matches, and the decoder stops there.
    let ihdr = png.windows(4).position(|w| w == b"IHDR").unwrap();
    let mut bad = png.clone();
    assert_eq!(bad[ihdr + 11], 7);
    bad[ihdr + 11] = 6;
    let first = decode_image(Path::new("x.png"), &bad)
        .unwrap_err()
        .to_string();
    assert!(first.to_lowercase().contains("crc"), "{first}");
    let fixed = harness::fix_png_crcs(&bad).expect("checksums recomputed");
    // Past the CRC check, the damage reaches the inflater (which may or may not accept it).
    let e = decode_image(Path::new("x.png"), &fixed)
        .err()
        .map(|e| e.to_string());
    assert!(
        e.as_deref()
            .is_none_or(|m| !m.to_lowercase().contains("crc")),
        "{e:?}"
    );
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn mutated_corpus_never_panics(pick in any::<prop::sample::Index>(), e in edits()) {
        let seeds = corpus("image_decode");
        let (_, seed) = &seeds[pick.index(seeds.len())];
        harness::run(&mutate(seed, &e));
    }

    #[test]
    fn encoded_images_decode_and_transform(
        w in 1u32..48,
        h in 1u32..48,
        color in 0u8..7,
        jpeg in any::<bool>(),
        e in prop::option::weighted(0.5, edits()),
    ) {
        let bytes = encode(w, h, color, jpeg);
        if e.is_none() {
            let img = decode_image(Path::new("x.png"), &bytes).expect("a valid image decodes");
            prop_assert_eq!((img.w, img.h), (w as usize, h as usize));
        }
        harness::run(&mutate(&bytes, e.as_deref().unwrap_or_default()));
    }
}

#[test]
fn jpegs_that_panic_the_decoder_are_decode_errors_naming_the_file() {
    let mut panicked = 0;
    for name in [
        "zune_jpeg_idct_avx2_unwrap.jpg",
        "zune_jpeg_idct_scalar_index.jpg",
    ] {
        let file = super::root()
            .join("tests/fixtures/fuzz/image_decode")
            .join(name);
        let found = std::fs::read(&file).unwrap();
        // As found they lack an end-of-image marker (refused before decoding); with one
        // appended they reach the decoder, which panics on them.
        let mut ended = found.clone();
        ended.extend([0xFF, 0xD9]);
        for bytes in [found, ended] {
            let e = decode_image(Path::new("images/bad.jpg"), &bytes)
                .expect_err("a JPEG that panics zune-jpeg does not decode")
                .to_string();
            assert!(e.contains("images/bad.jpg"), "{name}: {e}");
            panicked += usize::from(e.contains("the decoder panicked"));
        }
    }
    assert!(panicked > 0, "no input reached the decoder's panic");
}
