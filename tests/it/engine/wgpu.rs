//! `--device wgpu` end to end through the real CLI (lavapipe on CI): the quickstart's FCOS and
//! the two-stage quickstart's Faster R-CNN, shortened (2 epochs of 4 iterations), train on the
//! adapter with the loss curve of the same run on the CPU over their first iterations (f32
//! both sides; the two backends sum in different orders, and the second stage's sampled RoIs
//! follow the proposals, so the curves may part slowly: 1e-3 relative over 3 iterations), and
//! the eval hook's COCO metrics on the adapter agree with the CPU's; the run names the adapter
//! it uses; `mmrun devices` lists it. The parameters stay on the adapter between steps
//! (`engine::device_params`): the trained weights agree with the CPU run's, and a run stopped
//! and resumed ends with the weights of the straight run, bit for bit. With its bindings capped
//! below the size of a batch (`MMRUN_WGPU_MAX_BINDING`, as a DX12 adapter's 128 MiB caps a
//! full-size batch), the quickstart runs its large ops in slabs with the uncapped curve.

use super::detector::{dataset, deviation, exec, log_records, run_with_sets, small_variant_sets};
use crate::bin::mmrun_env;

/// Relative agreement of each logged loss term per iteration, over the first `COMPARED`.
const CURVE_RTOL: f64 = 1e-3;
const COMPARED: usize = 3;
/// Absolute agreement of the final bbox_mAP (near-equal weights may still rank a box
/// differently).
const MAP_ATOL: f64 = 0.02;

/// The train records' loss terms of a run on `device` (its bindings capped at `cap` where
/// given), after checking the run named it.
fn curve(
    recipe: &str,
    device: &str,
    sets: &[String],
    dir: &std::path::Path,
    cap: Option<u64>,
) -> Vec<serde_json::Value> {
    let name = device.replace(':', "_") + if cap.is_some() { "_capped" } else { "" };
    let work = dir.join(name);
    let w = work.to_str().unwrap();
    let mut args = vec!["exec", recipe, "--device", device, "--work-dir", w];
    for s in sets {
        args.extend(["--set", s.as_str()]);
    }
    let env = cap.map(|c| c.to_string());
    let (code, text) = mmrun_env(&args, &[("MMRUN_WGPU_MAX_BINDING", env.as_deref())]);
    assert_eq!(code, 0, "{device}: {text}");
    if device != "cpu" {
        assert!(
            text.contains(&format!("device: {device} (")),
            "the adapter is named: {text}"
        );
        // f16's loss scaling reads the gradients on the host (the log says why).
        let scaled = sets.iter().any(|s| s == "runtime.precision=fp16");
        assert_eq!(
            text.contains("parameters: kept on the device between steps"),
            !scaled,
            "{text}"
        );
    }
    if let Some(cap) = cap {
        let shown = mmrun::util::units::human_bytes(u128::from(cap));
        assert!(text.contains(&format!("bindings up to {shown},")), "{text}");
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

/// The run on the adapter has the CPU run's loss curve and mAP.
fn same_curve(test: &str, recipe: &str, terms: &[&str]) {
    if crate::backend::harness::wgpu(test).is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dataset(dir.path());
    let sets = small_variant_sets(&root);
    let cpu = curve(recipe, "cpu", &sets, dir.path(), None);
    let gpu = curve(recipe, "wgpu", &sets, dir.path(), None);
    compare(test, "wgpu", &cpu, &gpu, terms);
}

/// The bytes of a batch's images, from `mmrun plan`'s `batch: N x C x H x W` line.
fn batch_bytes(recipe: &str, sets: &[String]) -> u64 {
    let (code, text) = run_with_sets(&["plan", recipe], sets);
    assert_eq!(code, 0, "{text}");
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("batch: "))
        .unwrap_or_else(|| panic!("no batch line: {text}"));
    let dims: Vec<u64> = line
        .split(" x ")
        .map(|d| d.trim().parse().unwrap())
        .collect();
    4 * dims.iter().product::<u64>()
}

/// `gpu`'s final mAP and first loss terms against `cpu`'s.
fn compare(
    test: &str,
    label: &str,
    cpu: &[serde_json::Value],
    gpu: &[serde_json::Value],
    terms: &[&str],
) {
    let (mc, mg) = (final_map(cpu), final_map(gpu));
    eprintln!("{test}: final bbox_mAP: cpu {mc}, {label} {mg}");
    assert!(
        (0.0..=1.0).contains(&mg) && (mc - mg).abs() <= MAP_ATOL,
        "cpu {mc}, {label} {mg}"
    );
    let train = |recs: &[serde_json::Value]| -> Vec<serde_json::Value> {
        recs.iter()
            .filter(|r| r["mode"] == "train")
            .take(COMPARED)
            .cloned()
            .collect()
    };
    let (cpu, gpu) = (train(cpu), train(gpu));
    assert_eq!(gpu.len(), COMPARED, "{label}: train records");
    for (i, (c, g)) in cpu.iter().zip(&gpu).enumerate() {
        for &k in terms {
            let (c, g) = (c[k].as_f64().unwrap(), g[k].as_f64().unwrap());
            eprintln!(
                "{test}: iteration {}: {k}: cpu {c:.7}, {label} {g:.7}",
                i + 1
            );
            assert!(c.is_finite() && c > 0.0, "{k} = {c}");
            assert!(
                (c - g).abs() <= CURVE_RTOL * c.abs(),
                "iteration {}: {k}: {label} {g}, cpu {c}",
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

/// bf16 and f16 (half-precision storage, f32 arithmetic: `backend::wgpu::half`) train the
/// shortened quickstart on the adapter with the CPU's loss curve in the same precision.
#[test]
fn mixed_precision_trains_on_wgpu_with_the_cpu_loss_curve() {
    let test = "mixed_precision_trains_on_wgpu_with_the_cpu_loss_curve";
    if crate::backend::harness::wgpu(test).is_none() {
        return;
    }
    const RECIPE: &str = "pipelines/quickstart.recipe";
    let dir = tempfile::tempdir().unwrap();
    let root = dataset(dir.path());
    for precision in ["bf16", "fp16"] {
        let mut sets = small_variant_sets(&root);
        sets.push(format!("runtime.precision={precision}"));
        let at = dir.path().join(precision);
        std::fs::create_dir_all(&at).unwrap();
        let cpu = curve(RECIPE, "cpu", &sets, &at, None);
        let gpu = curve(RECIPE, "wgpu", &sets, &at, None);
        let terms = ["loss_cls", "loss_bbox", "loss_centerness", "loss"];
        compare(test, &format!("wgpu {precision}"), &cpu, &gpu, &terms);
    }
}

/// The quickstart at its own 160 × 160 (a batch of 4 images is 1.2 MB, its largest weight
/// less than 1 MiB) on the adapter with its bindings capped at 1 MiB: the large ops run in
/// slabs, with the CPU's loss curve and mAP.
#[test]
fn quickstart_with_bindings_smaller_than_a_batch_trains_with_the_cpu_loss_curve() {
    let test = "quickstart_with_bindings_smaller_than_a_batch_trains_with_the_cpu_loss_curve";
    if crate::backend::harness::wgpu(test).is_none() {
        return;
    }
    const RECIPE: &str = "pipelines/quickstart.recipe";
    const CAP: u64 = 1 << 20;
    let dir = tempfile::tempdir().unwrap();
    let root = dataset(dir.path());
    let sets: Vec<String> = small_variant_sets(&root)
        .into_iter()
        .filter(|s| !s.contains(".pipeline="))
        .collect();
    let batch = batch_bytes(RECIPE, &sets);
    assert!(
        batch > CAP,
        "a batch of {batch} bytes fits {CAP}: nothing splits"
    );
    let cpu = curve(RECIPE, "cpu", &sets, dir.path(), None);
    let capped = curve(RECIPE, "wgpu", &sets, dir.path(), Some(CAP));
    let terms = ["loss_cls", "loss_bbox", "loss_centerness", "loss"];
    compare(test, "wgpu capped at 1 MiB", &cpu, &capped, &terms);
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

#[test]
fn a_max_binding_that_is_not_a_byte_count_stops_the_run_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("bad");
    let args = [
        "exec",
        "pipelines/quickstart.recipe",
        "--device",
        "wgpu",
        "--work-dir",
        work.to_str().unwrap(),
    ];
    let (code, text) = mmrun_env(&args, &[("MMRUN_WGPU_MAX_BINDING", Some("12 MB"))]);
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("MMRUN_WGPU_MAX_BINDING=\"12 MB\": expected a number of bytes"),
        "{text}"
    );
    assert!(!work.exists(), "the work dir was made");
}
