//! The confusion matrix against mmdetection 2.28.2's own `analyze_per_img_dets`, run live:
//! the function is cut out of the installed wheel's `tools/analysis_tools/confusion_matrix.py`
//! with Python's `ast` (importing mmdet needs mmcv, which is not installed) together with the
//! numpy `bbox_overlaps` that script imports, and both sides count the same random images.
//! Then `mmrun eval confusion` on the results `mmrun test` wrote.

use crate::engine::detector::{dataset, exec, mmrun, overrides_stepped, test_quickstart};
use mmrun::eval::confusion::{ConfusionMatrix, ConfusionParams, ImageInput};
use std::process::Command;

/// Python that finds the mmdet package, extracts the two functions and evaluates the images
/// of the JSON on stdin; prints the matrix as JSON.
const REFERENCE: &str = r#"
import ast, importlib.util, json, sys
import numpy as np
spec = importlib.util.find_spec('mmdet')
root = spec.submodule_search_locations[0]
def extract(path, names):
    tree = ast.parse(open(root + '/' + path).read())
    body = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in names]
    assert len(body) == len(names), (path, names)
    return compile(ast.Module(body=body, type_ignores=[]), path, 'exec')
ns = {'np': np}
exec(extract('core/evaluation/bbox_overlaps.py', ['bbox_overlaps']), ns)
script = '.mim/tools/analysis_tools/confusion_matrix.py'
src = open(root + '/' + script).read()
assert 'from mmdet.core.evaluation.bbox_overlaps import bbox_overlaps' in src
exec(extract(script, ['analyze_per_img_dets']), ns)
case = json.load(sys.stdin)
n = case['num_classes']
cm = np.zeros(shape=[n + 1, n + 1])
for img in case['images']:
    gt = np.array(img['gt_bboxes'], dtype=np.float32).reshape(-1, 4)
    labels = np.array(img['gt_labels'], dtype=np.int64)
    result = [np.array(d, dtype=np.float32).reshape(-1, 5) for d in img['dets']]
    ns['analyze_per_img_dets'](cm, gt, labels, result, case['score_thr'], case['tp_iou_thr'], None)
print(json.dumps(cm.astype(np.int64).tolist()))
"#;

/// Whether python3 with numpy and the mmdet wheel are here (else the skip is reported).
fn reference_available() -> bool {
    let out = Command::new("python3")
        .args([
            "-c",
            "import importlib.util as u, numpy; s = u.find_spec('mmdet'); \
             print('yes' if s else 'no mmdet')",
        ])
        .output();
    let why = match out {
        Ok(o) if o.status.success() && o.stdout.starts_with(b"yes") => return true,
        Ok(o) if o.status.success() => {
            "mmdet 2.28.2 is not installed (pip install --no-deps mmdet==2.28.2)".to_string()
        }
        Ok(o) => format!(
            "numpy is missing: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => format!("python3 cannot run ({e})"),
    };
    crate::support::skip_without_reference("confusion matrix", &why);
    false
}

fn reference(case: &serde_json::Value) -> Vec<Vec<u64>> {
    use std::io::Write;
    let mut child = Command::new("python3")
        .args(["-c", REFERENCE])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let input = case.to_string();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "reference failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A small deterministic generator (splitmix64).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// A value in [lo, hi) that float32 holds exactly.
    fn f32_in(&mut self, lo: f32, hi: f32) -> f64 {
        (lo + (hi - lo) * (self.below(1 << 20) as f32 / (1 << 20) as f32)) as f64
    }
}

/// Images with overlapping boxes of several classes, detections near their ground truth
/// (IoU around the threshold, and exactly on it), boxes on nothing, and scores around the
/// score threshold (and exactly on it).
fn random_images(rng: &mut Rng, classes: usize) -> Vec<ImageInput> {
    (0..40)
        .map(|_| {
            let mut img = ImageInput {
                dets: vec![Vec::new(); classes],
                ..Default::default()
            };
            for _ in 0..rng.below(7) {
                let (x, y) = (rng.f32_in(0.0, 80.0), rng.f32_in(0.0, 80.0));
                let (w, h) = (rng.f32_in(4.0, 40.0), rng.f32_in(4.0, 40.0));
                img.gt_bboxes.push([x, y, x + w, y + h]);
                img.gt_labels.push(rng.below(classes as u64) as usize);
            }
            for _ in 0..rng.below(12) {
                let class = rng.below(classes as u64) as usize;
                let score = match rng.below(5) {
                    0 => 0.3,
                    _ => rng.f32_in(0.1, 0.6),
                };
                let b = match (img.gt_bboxes.is_empty(), rng.below(4)) {
                    (false, 0) => {
                        // The top half of a ground-truth box: IoU exactly 0.5.
                        let g = img.gt_bboxes[rng.below(img.gt_bboxes.len() as u64) as usize];
                        [g[0], g[1], g[2], g[1] + (g[3] - g[1]) / 2.0]
                    }
                    (false, 1 | 2) => {
                        let g = img.gt_bboxes[rng.below(img.gt_bboxes.len() as u64) as usize];
                        let j = |v: f64, rng: &mut Rng| v + rng.f32_in(-6.0, 6.0);
                        [j(g[0], rng), j(g[1], rng), j(g[2], rng), j(g[3], rng)]
                    }
                    _ => {
                        let (x, y) = (rng.f32_in(0.0, 100.0), rng.f32_in(0.0, 100.0));
                        [x, y, x + rng.f32_in(2.0, 30.0), y + rng.f32_in(2.0, 30.0)]
                    }
                };
                img.dets[class].push([b[0], b[1], b[2], b[3], score]);
            }
            img
        })
        .collect()
}

#[test]
fn confusion_matrix_equals_mmdetections_analyze_per_img_dets() {
    if !reference_available() {
        return;
    }
    let seed = crate::support::fresh_seed("confusion_matrix_equals_mmdetections");
    let mut rng = Rng(seed);
    for (classes, score_thr, tp_iou_thr) in [(4, 0.3, 0.5), (3, 0.0, 0.3), (2, 0.45, 0.7)] {
        let images = random_images(&mut rng, classes);
        let params = ConfusionParams {
            score_thr,
            tp_iou_thr,
        };
        let mut ours = ConfusionMatrix::new((0..classes).map(|c| format!("c{c}")).collect());
        for img in &images {
            ours.add_image(img, &params).unwrap();
        }
        let case = serde_json::json!({
            "num_classes": classes,
            "score_thr": score_thr,
            "tp_iou_thr": tp_iou_thr,
            "images": images.iter().map(|i| serde_json::json!({
                "gt_bboxes": i.gt_bboxes,
                "gt_labels": i.gt_labels,
                "dets": i.dets,
            })).collect::<Vec<_>>(),
        });
        let theirs = reference(&case);
        assert_eq!(
            ours.counts, theirs,
            "classes {classes}, score_thr {score_thr}, tp_iou_thr {tp_iou_thr}"
        );
        let total: u64 = ours.counts.iter().flatten().sum();
        assert!(total > 20, "the case exercises the matrix ({total} counts)");
    }
}

#[test]
fn eval_confusion_prints_the_table_and_draws_the_matrix_of_mmrun_test_results() {
    let dir = tempfile::tempdir().unwrap();
    let root = dataset(dir.path());
    let sets = overrides_stepped(&root, 2, 1);
    let work = dir.path().join("w");
    let (code, text) = exec(&work, &sets, &[]);
    assert_eq!(code, 0, "{text}");
    let ckpt = work.join("checkpoints/epoch_2");
    let (code, out) = test_quickstart(&ckpt, &work, &[], &sets);
    assert_eq!(code, 0, "{out}");
    let gt = root.join("annotations/instances_val.json");
    let dt = work.join("results/bbox.json");
    let out_dir = dir.path().join("cm");
    let base = [
        "eval",
        "confusion",
        "--gt",
        gt.to_str().unwrap(),
        "--dt",
        dt.to_str().unwrap(),
        "--score-thr",
        "0.05",
    ];
    let mut a = base.to_vec();
    a.extend(["--out", out_dir.to_str().unwrap()]);
    let (code, table) = mmrun(&a);
    assert_eq!(code, 0, "{table}");
    for name in ["circle", "hexagon", "background"] {
        assert!(table.contains(name), "{table}");
    }
    let png = out_dir.join("confusion_matrix.png");
    let pic = image::open(&png).unwrap().to_rgb8();
    assert!(
        pic.width() > 300 && pic.height() > 300,
        "{:?}",
        pic.dimensions()
    );
    let plasma_low = image::Rgb([13u8, 8, 135]);
    assert!(
        pic.pixels().any(|p| *p == plasma_low),
        "an empty cell in plasma's low end"
    );

    // `--format json`: the same counts as the table, 7 × 7 (six classes and background).
    let mut a = base.to_vec();
    a.extend(["--format", "json"]);
    let (code, out) = mmrun(&a);
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let m: Vec<Vec<u64>> = serde_json::from_value(v["matrix"].clone()).unwrap();
    assert_eq!(m.len(), 7);
    assert_eq!(v["classes"][6], "background");
    let row0: Vec<String> = m[0].iter().map(|c| c.to_string()).collect();
    let line = table.lines().find(|l| l.starts_with("circle")).unwrap();
    assert_eq!(line.split_whitespace().skip(1).collect::<Vec<_>>(), row0);

    // A detection file naming an image the ground truth lacks is refused, naming it.
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"[{"image_id": 99999, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 0.9}]"#,
    )
    .unwrap();
    let (code, out) = mmrun(&[
        "eval",
        "confusion",
        "--gt",
        gt.to_str().unwrap(),
        "--dt",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("image_id 99999"), "{out}");
}
