//! Property tests: boxes follow the pixels through random transform chains; flip twice is
//! the identity; resize then un-resize of predictions restores boxes.

use mmrun::data::config::{CropType, FlipDirection, MultiscaleMode};
use mmrun::data::transforms::{CropOp, FlipOp, PadOp, ResizeOp, Transform, apply_flip};
use mmrun::data::{BoxXyxy, Image, ImageMeta, Pixels, Sample};
use mmrun::util::rng::Rng;
use proptest::prelude::*;

fn inside(b: &BoxXyxy, x: usize, y: usize) -> bool {
    let (cx, cy) = (x as f32 + 0.5, y as f32 + 0.5);
    cx >= b[0] && cx <= b[2] && cy >= b[1] && cy <= b[3]
}

/// An image whose pixels are 255 inside the box (pixel centres) and 0 outside.
fn mask_image(h: usize, w: usize, b: &BoxXyxy) -> Image {
    let mut d = vec![0u8; h * w * 3];
    for y in 0..h {
        for x in 0..w {
            if inside(b, x, y) {
                d[(y * w + x) * 3..(y * w + x) * 3 + 3].fill(255);
            }
        }
    }
    Image::from_u8(h, w, d)
}

fn sample(img: Image, boxes: Vec<BoxXyxy>) -> Sample {
    let labels = vec![0; boxes.len()];
    Sample {
        meta: ImageMeta::new(1, "mask.png", img.h, img.w),
        image: img,
        boxes,
        labels,
        ignored: vec![],
    }
}

fn dir_of(k: u8) -> FlipDirection {
    [
        FlipDirection::Horizontal,
        FlipDirection::Vertical,
        FlipDirection::Diagonal,
    ][k as usize % 3]
}

fn near_edge(b: &BoxXyxy, x: usize, y: usize, tol: f32) -> bool {
    let (cx, cy) = (x as f32 + 0.5, y as f32 + 0.5);
    let in_x = cx >= b[0] - tol && cx <= b[2] + tol;
    let in_y = cy >= b[1] - tol && cy <= b[3] + tol;
    let near_x = (cx - b[0]).abs() <= tol || (cx - b[2]).abs() <= tol;
    let near_y = (cy - b[1]).abs() <= tol || (cy - b[3]).abs() <= tol;
    (near_x && in_y) || (near_y && in_x)
}

/// One random stage of a chain: 0 resize, 1 flip, 2 crop, 3 pad.
fn stage(kind: u8, p: u32, keep_ratio: bool) -> Transform {
    match kind {
        0 => Transform::Resize(ResizeOp {
            scales: vec![[(20 + p % 150) as f64, (15 + (p / 7) % 120) as f64]],
            keep_ratio,
            mode: MultiscaleMode::Range,
            ratio_range: None,
            clip_border: true,
        }),
        1 => Transform::Flip(FlipOp {
            prob: 1.0,
            directions: vec![dir_of(p as u8)],
        }),
        2 => Transform::Crop(CropOp {
            crop_size: [0.5, 0.5],
            crop_type: CropType::RelativeRange,
            allow_negative_crop: true,
            clip_border: true,
        }),
        _ => Transform::Pad(PadOp {
            size: None,
            size_divisor: Some(1 + p % 16),
            pad_val: 0.0,
        }),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    /// Render the box into a mask, transform both, and the mask's pixels are the box's
    /// pixels (up to half a pixel at the edges, where bilinear resampling meets the
    /// threshold). Chains hold at most one resize: a second one would resample an already
    /// interpolated mask.
    #[test]
    fn boxes_land_on_the_same_pixels(
        h in 8usize..60, w in 8usize..60,
        bx in (0u32..1000, 0u32..1000, 0u32..1000, 0u32..1000),
        chain in proptest::collection::vec((0u8..4, 0u32..10_000), 1..5),
        keep_ratio in any::<bool>(), seed in any::<u64>(),
    ) {
        let (a, c) = ((bx.0 as usize) % w, (bx.1 as usize) % w);
        let (b2, d) = ((bx.2 as usize) % h, (bx.3 as usize) % h);
        let b = [a.min(c) as f32, b2.min(d) as f32, (a.max(c) + 1) as f32, (b2.max(d) + 1) as f32];
        let mut s = sample(mask_image(h, w, &b), vec![b]);
        let mut rng = Rng::seed(seed);
        let mut resized = false;
        for (kind, p) in chain {
            if kind == 0 && resized { continue; }
            resized |= kind == 0;
            stage(kind, p, keep_ratio).apply(&mut s, &mut rng).unwrap();
        }
        let (oh, ow) = (s.image.h, s.image.w);
        let boxes = s.boxes.clone();
        let mut bad = vec![];
        for y in 0..oh {
            for x in 0..ow {
                let on = s.image.get(y, x, 0) >= 127.5;
                let want = boxes.iter().any(|bb| inside(bb, x, y));
                // Bilinear blur multiplies the two 1-D edge profiles near a corner, so there
                // the threshold may fall up to one source pixel inside.
                let (sx, sy) = (s.meta.scale_factor[0].max(1.0), s.meta.scale_factor[1].max(1.0));
                let corner = |bb: &BoxXyxy| {
                    let (cx, cy) = (x as f32 + 0.5, y as f32 + 0.5);
                    (cx - bb[0]).abs().min((cx - bb[2]).abs()) <= sx + 0.5
                        && (cy - bb[1]).abs().min((cy - bb[3]).abs()) <= sy + 0.5
                };
                if on != want && !boxes.iter().any(|bb| near_edge(bb, x, y, 0.51) || corner(bb)) {
                    bad.push((x, y, on));
                }
            }
        }
        prop_assert!(bad.is_empty(), "box {:?} -> {:?} on {}x{}: pixels off {:?}", b, boxes, oh, ow, &bad[..bad.len().min(8)]);
        // The box was kept iff some of its pixels survived.
        if boxes.is_empty() {
            let lit = (0..oh).flat_map(|y| (0..ow).map(move |x| (x, y))).filter(|&(x, y)| s.image.get(y, x, 0) >= 127.5).count();
            prop_assert!(lit <= 2 * (oh + ow), "box dropped but {} pixels lit", lit);
        }
    }

    #[test]
    fn flip_twice_is_identity(
        h in 1usize..40, w in 1usize..40, k in 0u8..3, seed in any::<u64>(),
    ) {
        let mut rng = Rng::seed(seed);
        let data: Vec<u8> = (0..h * w * 3).map(|_| rng.below(256) as u8).collect();
        let boxes: Vec<BoxXyxy> = (0..5).map(|_| {
            let x1 = rng.uniform_f32() * w as f32; let y1 = rng.uniform_f32() * h as f32;
            [x1, y1, x1 + rng.uniform_f32() * (w as f32 - x1), y1 + rng.uniform_f32() * (h as f32 - y1)]
        }).collect();
        let orig = sample(Image::from_u8(h, w, data), boxes);
        let mut s = orig.clone();
        apply_flip(&mut s, dir_of(k));
        prop_assert!(s.boxes.iter().all(|b| b[0] <= b[2] && b[1] <= b[3]));
        apply_flip(&mut s, dir_of(k));
        prop_assert_eq!(&s.image, &orig.image);
        for (a, b) in s.boxes.iter().zip(&orig.boxes) {
            for i in 0..4 { prop_assert!((a[i] - b[i]).abs() < 1e-4, "{:?} vs {:?}", a, b); }
        }
        prop_assert!(!s.meta.flip);
    }

    /// Predictions made on the network input map back to the original image within 1 px.
    #[test]
    fn resize_then_unresize_restores_boxes(
        h in 10usize..500, w in 10usize..500,
        sw in 32u32..1400, sh in 32u32..1400, keep_ratio in any::<bool>(),
        flip in proptest::option::of(0u8..3), seed in any::<u64>(),
    ) {
        let mut rng = Rng::seed(seed);
        let boxes: Vec<BoxXyxy> = (0..6).map(|_| {
            let x1 = rng.uniform_f32() * w as f32; let y1 = rng.uniform_f32() * h as f32;
            [x1, y1, x1 + rng.uniform_f32() * (w as f32 - x1), y1 + rng.uniform_f32() * (h as f32 - y1)]
        }).collect();
        let mut s = sample(Image::from_u8(h, w, vec![0; h * w * 3]), boxes.clone());
        stage(0, 0, keep_ratio); // keep the helper exercised for both modes
        let resize = Transform::Resize(ResizeOp {
            scales: vec![[sw as f64, sh as f64]], keep_ratio,
            mode: MultiscaleMode::Range, ratio_range: None, clip_border: true,
        });
        resize.apply(&mut s, &mut rng).unwrap();
        if let Some(k) = flip { apply_flip(&mut s, dir_of(k)); }
        Transform::Pad(PadOp { size: None, size_divisor: Some(32), pad_val: 0.0 }).apply(&mut s, &mut rng).unwrap();
        let [ph, pw, _] = s.meta.pad_shape;
        prop_assert!(ph % 32 == 0 && pw % 32 == 0);
        if keep_ratio {
            let [ih, iw, _] = s.meta.img_shape;
            let (long, short) = (sw.max(sh) as usize, sw.min(sh) as usize);
            prop_assert!(ih.max(iw) <= long + 1 && ih.min(iw) <= short + 1);
        }
        // The transformed GT boxes play the role of perfect predictions.
        let back = s.meta.unmap_boxes(&s.boxes);
        for (a, b) in back.iter().zip(&boxes) {
            for i in 0..4 { prop_assert!((a[i] - b[i]).abs() <= 1.0, "{:?} vs {:?}", a, b); }
        }
    }
}

#[test]
fn resize_matches_opencv_half_pixel_bilinear_on_a_known_case() {
    // 1x2 -> 1x4: cv2.resize(np.array([[0, 100]]), (4, 1), interpolation=INTER_LINEAR)
    // gives [0, 25, 75, 100].
    let img = Image::from_u8(1, 2, vec![0, 0, 0, 100, 100, 100]);
    let out = mmrun::data::transforms::resize_image(&img, 1, 4);
    let Pixels::U8(d) = out.pixels else { panic!() };
    let r: Vec<u8> = d.chunks(3).map(|p| p[0]).collect();
    assert_eq!(r, [0, 25, 75, 100]);
}

#[test]
fn keep_ratio_resize_follows_mmcv_rescale() {
    // mmcv.imrescale of a 480x640 (h x w) image to (1333, 800): factor min(1333/640,
    // 800/480) = 1.6667 -> 800 x 1067.
    let op = ResizeOp {
        scales: vec![[1333.0, 800.0]],
        keep_ratio: true,
        mode: MultiscaleMode::Range,
        ratio_range: None,
        clip_border: true,
    };
    assert_eq!(op.output_size(480, 640, [1333.0, 800.0]), (800, 1067));
    assert_eq!(op.output_size(427, 640, [1333.0, 800.0]), (800, 1199));
    assert_eq!(op.output_size(640, 480, [1333.0, 800.0]), (1067, 800));
}

fn resize_op(scales: Vec<[f64; 2]>, mode: MultiscaleMode, ratio: Option<[f64; 2]>) -> ResizeOp {
    ResizeOp {
        scales,
        keep_ratio: true,
        mode,
        ratio_range: ratio,
        clip_border: true,
    }
}

#[test]
fn multiscale_range_value_and_ratio_modes_draw_inside_their_sets() {
    let mut rng = Rng::seed(1);
    let mk = || {
        sample(
            Image::from_u8(100, 200, vec![0; 100 * 200 * 3]),
            vec![[10.0, 10.0, 50.0, 50.0]],
        )
    };
    // range: long edge of the result 1333, short edge drawn from [640, 800].
    let op = resize_op(
        vec![[1333.0, 640.0], [1333.0, 800.0]],
        MultiscaleMode::Range,
        None,
    );
    let mut shorts = std::collections::BTreeSet::new();
    for _ in 0..200 {
        // A square image ends up at the drawn short edge.
        let mut s = sample(Image::from_u8(50, 50, vec![0; 50 * 50 * 3]), vec![]);
        op.apply(&mut s, &mut rng).unwrap();
        let [h, w, _] = s.meta.img_shape;
        assert!(h == w && (640..=800).contains(&h), "{h}x{w}");
        shorts.insert(h);
    }
    assert!(shorts.len() > 50, "many scales drawn: {}", shorts.len());
    // value: only the listed scales.
    let op = resize_op(
        vec![[300.0, 300.0], [600.0, 600.0]],
        MultiscaleMode::Value,
        None,
    );
    for _ in 0..50 {
        let mut s = mk();
        op.apply(&mut s, &mut rng).unwrap();
        assert!(
            [[150, 300, 3], [300, 600, 3]].contains(&s.meta.img_shape),
            "{:?}",
            s.meta.img_shape
        );
    }
    // ratio_range: the scale times a factor in [0.5, 1.5].
    let op = resize_op(
        vec![[400.0, 400.0]],
        MultiscaleMode::Range,
        Some([0.5, 1.5]),
    );
    for _ in 0..50 {
        let mut s = mk();
        op.apply(&mut s, &mut rng).unwrap();
        let w = s.meta.img_shape[1];
        assert!((200..=600).contains(&w), "{w}");
        assert!((s.boxes[0][2] - 50.0 * s.meta.scale_factor[0]).abs() < 1e-3);
    }
}

#[test]
fn random_crop_keeps_a_box_unless_negative_crops_are_allowed() {
    let mut rng = Rng::seed(2);
    let op = CropOp {
        crop_size: [20.0, 20.0],
        crop_type: CropType::Absolute,
        allow_negative_crop: false,
        clip_border: true,
    };
    let mut fallbacks = 0;
    for _ in 0..100 {
        let mut s = sample(
            Image::from_u8(100, 100, vec![0; 100 * 100 * 3]),
            vec![[40.0, 40.0, 60.0, 60.0], [0.0, 0.0, 5.0, 5.0]],
        );
        s.labels = vec![3, 4];
        let before = s.clone();
        op.apply(&mut s, &mut rng).unwrap();
        if s.image.h == 100 {
            // Ten windows without a box: the sample is left uncropped.
            assert_eq!(s, before);
            fallbacks += 1;
            continue;
        }
        assert_eq!((s.image.h, s.image.w), (20, 20));
        assert!(!s.boxes.is_empty());
        assert_eq!(s.boxes.len(), s.labels.len());
        for b in &s.boxes {
            assert!(
                b[0] >= 0.0 && b[2] <= 20.0 && b[0] < b[2] && b[1] < b[3],
                "{b:?}"
            );
        }
    }
    assert!(fallbacks < 25, "{fallbacks} of 100 crops fell back");
}

#[test]
fn photometric_distortion_is_deterministic_per_stream_and_keeps_geometry() {
    use mmrun::data::config::PhotometricDistortion;
    let cfg = PhotometricDistortion {
        brightness_delta: 32.0,
        contrast_range: [0.5, 1.5],
        saturation_range: [0.5, 1.5],
        hue_delta: 18.0,
    };
    let base = Image::from_u8(4, 5, (0..60).map(|v| (v * 4) as u8).collect());
    let run = |seed| {
        let mut img = base.clone();
        mmrun::data::transforms::photometric_distortion(&mut img, &cfg, &mut Rng::seed(seed))
            .unwrap();
        img
    };
    assert_eq!(run(5), run(5));
    assert!((0..20).any(|s| run(s) != run(s + 1)));
    assert_eq!((run(5).h, run(5).w), (4, 5));
}
