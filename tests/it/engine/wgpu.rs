//! `--device wgpu` end to end through the real CLI (lavapipe on CI): the quickstart's FCOS and
//! the two-stage quickstart's Faster R-CNN, shortened (2 epochs of 4 iterations), train on the
//! adapter with the loss curve of the same run on the CPU over their first iterations (f32
//! both sides; the two backends sum in different orders, and the second stage's sampled RoIs
//! follow the proposals, so the curves may part slowly: 1e-3 relative over 3 iterations), and
//! the eval hook's COCO metrics on the adapter agree with the CPU's; the run names the adapter
//! it uses; `mmrun devices` lists it. The parameters stay on the adapter between steps
//! (`engine::device_params`): the trained weights agree with the CPU run's, and a run stopped
//! and resumed ends with the weights of the straight run, bit for bit.

use super::detector::{dataset, deviation, exec, log_records, run_with_sets, small_variant_sets};

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
        assert!(
            text.contains("parameters: kept on the device between steps"),
            "{text}"
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

/// The quickstart (FCOS: clipping by norm, momentum SGD, GN head, BN backbone; EMA added) with
/// its parameters kept on the adapter: after 8 iterations its weights are the CPU run's within
/// f32 drift, and a run stopped after 5 iterations (its checkpoint at 3) and resumed ends with
/// exactly the straight run's weights — the checkpoint read the values and momentum back, and
/// the resumed run uploaded them again.
#[test]
fn parameters_stay_on_the_device_and_resume_exactly() {
    if crate::backend::harness::wgpu("parameters_stay_on_the_device_and_resume_exactly").is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dataset(dir.path());
    let mut sets = small_variant_sets(&root);
    sets.push("hooks.checkpoint.every=3 iters".into());
    // EMA reads the values back after every step, the optimizer's state stays behind on the
    // device until a checkpoint needs it.
    sets.push("hooks.ema=ema {}".into());
    let run = |name: &str, device: &str, extra: &[&str]| {
        let work = dir.path().join(name);
        let mut args = vec!["--device", device];
        args.extend_from_slice(extra);
        let (code, text) = exec(&work, &sets, &args);
        assert_eq!(code, 0, "{name}: {text}");
        (work, text)
    };
    let (cpu, _) = run("cpu", "cpu", &[]);
    let (straight, text) = run("straight", "wgpu", &[]);
    assert!(
        text.contains("parameters: kept on the device between steps"),
        "{text}"
    );
    let last = |w: &std::path::Path| w.join("checkpoints/iter_8");
    let (worst, _) = deviation(&last(&cpu), &last(&straight));
    eprintln!("wgpu against cpu after 8 iterations: worst |a - b| / max(1, |a|) = {worst:.3e}");
    assert!(
        worst < 1e-3,
        "the adapter's weights drifted from the CPU's: {worst}"
    );
    let (resumed, _) = run("resumed", "wgpu", &["--max-iters", "5"]);
    assert!(resumed.join("checkpoints/iter_3").is_dir());
    let (_, text) = run("resumed", "wgpu", &["--resume", "auto"]);
    assert!(text.contains("iter_3"), "resumed from iteration 3: {text}");
    assert_eq!(
        deviation(&last(&straight), &last(&resumed)),
        (0.0, 0),
        "the resumed run's weights differ from the straight run's"
    );
}
