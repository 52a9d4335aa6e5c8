//! `image_decode`: bytes as an image file, decoded by `decode_image` (what the data loader's
//! `load_image` does with the bytes it reads) and, when they decode, sent through two
//! loader pipelines (resize/flip/photometric/normalize/pad, and grayscale/crop/fixed resize/
//! fixed pad) with boxes at the corners. Properties: no panic; a decode or pipeline error
//! names the file; a decoded image holds exactly `h × w × 3` bytes; a sample's pixels,
//! boxes and labels agree in size and the boxes are finite and inside the image.
//!
//! Shared by the cargo-fuzz target and `tests/it/fuzz/image_decode.rs`.

use mmrun::data::image::decode_image;
use mmrun::data::{Pipeline, Pixels, Record, TransformConfig};
use mmrun::util::rng::Rng;
use std::path::Path;

/// Images with more pixels than this are only decoded, not transformed (keeps one run
/// short; the decoder's own allocation limit still applies to them).
const MAX_PIPELINE_PIXELS: usize = 1 << 22;

fn pipelines() -> Vec<Pipeline> {
    let configs = [
        serde_json::json!([
            {"type": "load_image"},
            {"type": "load_annotations"},
            {"type": "resize", "scale": [96, 64], "keep_ratio": true},
            {"type": "random_flip", "prob": 0.5, "direction": ["horizontal", "vertical", "diagonal"]},
            {"type": "photometric_distortion"},
            {"type": "normalize", "mean": [123.675, 116.28, 103.53], "std": [58.395, 57.12, 57.375]},
            {"type": "pad", "size_divisor": 32}
        ]),
        serde_json::json!([
            {"type": "load_image", "to_float32": true, "color_type": "grayscale"},
            {"type": "load_annotations"},
            {"type": "random_crop", "crop_size": [0.3, 0.3], "crop_type": "relative_range", "allow_negative_crop": true},
            {"type": "resize", "scale": [48, 40], "keep_ratio": false},
            {"type": "pad", "size": [64, 64]}
        ]),
    ];
    configs
        .into_iter()
        .map(|c| {
            // Written as a recipe would: the registry fills in what it leaves out.
            let transforms = mmrun::registry::Ty::List(&mmrun::registry::Ty::Comp(
                mmrun::registry::Category::Transform,
            ));
            let c = mmrun::registry::complete(&transforms, &c);
            let cfg: Vec<TransformConfig> = serde_json::from_value(c).expect("a fixed pipeline");
            Pipeline::new(&cfg).expect("a fixed pipeline")
        })
        .collect()
}

/// Run one input, and when it is a PNG whose chunk checksums are wrong, the same input with
/// the checksums recomputed (so that mutations reach the chunk parsers and the inflater, not
/// only the CRC check). Panics (the finding) when a property does not hold.
pub fn run(data: &[u8]) {
    run_one(data);
    if let Some(fixed) = fix_png_crcs(data) {
        run_one(&fixed);
    }
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in bytes {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xEDB8_8320
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// A copy of a PNG with every complete chunk's CRC recomputed; `None` when `data` is not a
/// PNG or its CRCs are already right.
pub fn fix_png_crcs(data: &[u8]) -> Option<Vec<u8>> {
    const SIG: &[u8] = b"\x89PNG\r\n\x1a\n";
    if !data.starts_with(SIG) {
        return None;
    }
    let mut out = data.to_vec();
    let mut at = SIG.len();
    while at + 12 <= out.len() {
        let len = u32::from_be_bytes(out[at..at + 4].try_into().ok()?) as usize;
        let end = at.checked_add(8)?.checked_add(len)?;
        if end + 4 > out.len() {
            break;
        }
        let crc = crc32(&out[at + 4..end]).to_be_bytes();
        out[end..end + 4].copy_from_slice(&crc);
        at = end + 4;
    }
    (out != data).then_some(out)
}

fn run_one(data: &[u8]) {
    let path = Path::new("fuzz-input/image.png");
    let name = path.display().to_string();
    let img = match decode_image(path, data) {
        Err(e) => {
            let m = e.to_string();
            assert!(m.contains(&name), "the error does not name the file: {m}");
            return;
        }
        Ok(img) => img,
    };
    let Pixels::U8(px) = &img.pixels else {
        panic!("decoded to f32 pixels");
    };
    assert_eq!(px.len(), img.h * img.w * 3, "{}x{} image", img.w, img.h);
    if img.h * img.w > MAX_PIPELINE_PIXELS {
        return;
    }
    let (w, h) = (img.w as f32, img.h as f32);
    let rec = Record {
        id: 1,
        file_name: "image.png".into(),
        path: path.to_path_buf(),
        width: img.w as u32,
        height: img.h as u32,
        boxes: vec![[0.0, 0.0, w, h], [0.0, 0.0, w.min(1.0), h.min(1.0)]],
        labels: vec![0, 1],
        ignored: vec![[w / 2.0, h / 2.0, w, h]],
        ignored_labels: vec![0],
    };
    for (k, p) in pipelines().iter().enumerate() {
        let mut rng = Rng::seed(k as u64);
        match p.run_on(&rec, img.clone(), &mut rng) {
            Err(e) => {
                let m = e.to_string();
                assert!(
                    m.contains(&name),
                    "pipeline {k}: the error does not name the file: {m}"
                );
            }
            Ok(s) => {
                let n = match &s.image.pixels {
                    Pixels::U8(d) => d.len(),
                    Pixels::F32(d) => d.len(),
                };
                assert_eq!(n, s.image.h * s.image.w * 3, "pipeline {k}: pixel count");
                assert_eq!(s.boxes.len(), s.labels.len(), "pipeline {k}");
                let (sw, sh) = (s.image.w as f32, s.image.h as f32);
                for b in s.boxes.iter().chain(&s.ignored) {
                    assert!(
                        b.iter().all(|v| v.is_finite())
                            && 0.0 <= b[0]
                            && b[0] <= b[2]
                            && b[2] <= sw
                            && 0.0 <= b[1]
                            && b[1] <= b[3]
                            && b[3] <= sh,
                        "pipeline {k}: box {b:?} outside the {sw}x{sh} sample"
                    );
                }
            }
        }
    }
}
