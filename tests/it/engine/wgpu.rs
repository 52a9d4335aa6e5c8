//! `--device wgpu` end to end through the real CLI (lavapipe on CI): the quickstart's FCOS and
//! the two-stage quickstart's Faster R-CNN, shortened (2 epochs of 4 iterations), train on the
//! adapter with the loss curve of the same run on the CPU over their first iterations (f32
//! both sides; the two backends sum in different orders, and the second stage's sampled RoIs
//! follow the proposals, so the curves may part slowly: 1e-3 relative over 3 iterations), and
//! the eval hook's COCO metrics on the adapter agree with the CPU's; the run names the adapter
//! it uses; `mmrun devices` lists it.

use super::detector::{dataset, log_records, run_with_sets, small_variant_sets};

/// Relative agreement of each logged loss term per iteration, over the first `COMPARED`.
const CURVE_RTOL: f64 = 1e-3;
const COMPARED: usize = 3;
/// Absolute agreement of the final bbox_mAP (near-equal weights may still rank a box
/// differently).
const MAP_ATOL: f64 = 0.02;

/// The train records' loss terms of a run on `device`, after checking the run named it.
fn curve(
    recipe: &str,
    device: &str,
    sets: &[String],
    dir: &std::path::Path,
) -> Vec<serde_json::Value> {
    let work = dir.join(device.replace(':', "_"));
    let w = work.to_str().unwrap();
    let args = ["exec", recipe, "--device", device, "--work-dir", w];
    let (code, text) = run_with_sets(&args, sets);
    assert_eq!(code, 0, "{device}: {text}");
    if device != "cpu" {
        assert!(
            text.contains(&format!("device: {device} (")),
            "the adapter is named: {text}"
        );
    }
    let recs = log_records(&work);
    let train = recs.iter().filter(|r| r["mode"] == "train").count();
    assert_eq!(train, 8, "{device}: one record per iteration");
    recs
}

/// The final val record's bbox_mAP.
fn final_map(recs: &[serde_json::Value]) -> f64 {
    let val = recs
        .iter()
        .rfind(|r| r["mode"] == "val")
        .expect("a val record");
    val["bbox_mAP"].as_f64().expect("bbox_mAP")
}

fn same_curve(test: &str, recipe: &str, terms: &[&str]) {
    if crate::backend::harness::wgpu(test).is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dataset(dir.path());
    let sets = small_variant_sets(&root);
    let cpu = curve(recipe, "cpu", &sets, dir.path());
    let gpu = curve(recipe, "wgpu", &sets, dir.path());
    let (mc, mg) = (final_map(&cpu), final_map(&gpu));
    eprintln!("{test}: final bbox_mAP: cpu {mc}, wgpu {mg}");
    assert!(
        (0.0..=1.0).contains(&mg) && (mc - mg).abs() <= MAP_ATOL,
        "cpu {mc}, wgpu {mg}"
    );
    let train = |recs: Vec<serde_json::Value>| -> Vec<serde_json::Value> {
        recs.into_iter()
            .filter(|r| r["mode"] == "train")
            .take(COMPARED)
            .collect()
    };
    let (cpu, gpu) = (train(cpu), train(gpu));
    for (i, (c, g)) in cpu.iter().zip(&gpu).enumerate() {
        for &k in terms {
            let (c, g) = (c[k].as_f64().unwrap(), g[k].as_f64().unwrap());
            eprintln!("{test}: iteration {}: {k}: cpu {c:.7}, wgpu {g:.7}", i + 1);
            assert!(c.is_finite() && c > 0.0, "{k} = {c}");
            assert!(
                (c - g).abs() <= CURVE_RTOL * c.abs(),
                "iteration {}: {k}: wgpu {g}, cpu {c}",
                i + 1
            );
        }
    }
}

#[test]
fn quickstart_trains_on_wgpu_with_the_cpu_loss_curve() {
    same_curve(
        "quickstart_trains_on_wgpu_with_the_cpu_loss_curve",
        "pipelines/quickstart.recipe",
        &["loss_cls", "loss_bbox", "loss_centerness", "loss"],
    );
}

#[test]
fn faster_rcnn_trains_on_wgpu_with_the_cpu_loss_curve() {
    same_curve(
        "faster_rcnn_trains_on_wgpu_with_the_cpu_loss_curve",
        "pipelines/quickstart_two_stage.recipe",
        &[
            "loss_rpn_cls",
            "loss_rpn_bbox",
            "loss_cls",
            "loss_bbox",
            "loss",
        ],
    );
}

#[test]
fn devices_lists_the_adapters_by_the_names_device_takes() {
    let test = "devices_lists_the_adapters_by_the_names_device_takes";
    if crate::backend::harness::wgpu(test).is_none() {
        return;
    }
    let (code, out) = super::detector::mmrun(&["devices"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.lines().any(|l| l.starts_with("cpu ")), "{out}");
    assert!(out.lines().any(|l| l.starts_with("wgpu:0 ")), "{out}");
    // A misspelt adapter is refused before any work, naming what there is.
    let (code, out) = super::detector::mmrun(&[
        "exec",
        "pipelines/quickstart.recipe",
        "--device",
        "wgpu:no-such-adapter",
        "--dry-run",
    ]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("no adapter's name contains `no-such-adapter`") && out.contains("wgpu:"),
        "{out}"
    );
}
