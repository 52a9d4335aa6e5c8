//! `mmrun eval`: arguments and output only; the work happens in `crate::eval`.

use crate::eval::EvalError;
use crate::eval::coco::{self, CocoGt, CocoParams, CocoReport};
use crate::eval::json;
use crate::eval::voc::{self, ApMode};
use std::path::PathBuf;

/// Arguments of `mmrun eval`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    kind: Kind,
}

#[derive(clap::Subcommand)]
enum Kind {
    /// COCO bbox mAP (pycocotools-exact) of a results file against COCO annotations.
    Coco(CocoArgs),
    /// Proposal average recall (mmdetection's `proposal`: class-agnostic COCOeval; `--fast`:
    /// its `proposal_fast`).
    Proposal(ProposalArgs),
    /// VOC mAP (mmdetection's `eval_map`) of a COCO results file against COCO annotations;
    /// crowd boxes count as "difficult" (ignored).
    Voc(VocArgs),
    /// The confusion matrix of mmdetection's `tools/analysis_tools/confusion_matrix.py`
    /// (classes + background; rows ground truth, columns predictions) as a table, and its
    /// picture (`confusion_matrix.png`, rows normalised to percentages) in `--out`.
    Confusion(ConfusionArgs),
}

use super::Format;

#[derive(clap::Args)]
struct CocoArgs {
    /// Ground truth: a COCO instances JSON file.
    #[arg(long)]
    gt: PathBuf,
    /// Detections: a COCO results JSON list (image_id, category_id, bbox [x,y,w,h], score).
    #[arg(long)]
    dt: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Also print the per-class AP table.
    #[arg(long)]
    classwise: bool,
}

#[derive(clap::Args)]
struct ProposalArgs {
    /// Ground truth: a COCO instances JSON file.
    #[arg(long)]
    gt: PathBuf,
    /// Proposals: a COCO results JSON list.
    #[arg(long)]
    dt: PathBuf,
    /// Proposal counts (maxDets), e.g. 100,300,1000.
    #[arg(long, value_delimiter = ',', default_value = "100,300,1000", value_parser = count)]
    proposal_nums: Vec<usize>,
    /// mmdetection's `proposal_fast` instead: its own greedy matching (`eval_recalls`) over
    /// IoU 0.5:0.95, every image of the ground-truth file.
    #[arg(long)]
    fast: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

#[derive(clap::Args)]
struct VocArgs {
    /// Ground truth: a COCO instances JSON file.
    #[arg(long)]
    gt: PathBuf,
    /// Detections: a COCO results JSON list.
    #[arg(long)]
    dt: PathBuf,
    /// IoU thresholds, e.g. 0.5 or 0.5,0.75 (one `APxx` each; `mAP` is their mean).
    #[arg(long, value_delimiter = ',', default_value = "0.5", value_parser = iou_thr)]
    iou_thrs: Vec<f64>,
    /// VOC2007's 11-point AP instead of the area under the precision envelope.
    #[arg(long)]
    eleven_points: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

#[derive(clap::Args)]
struct ConfusionArgs {
    /// Ground truth: a COCO instances JSON file (its categories are the classes).
    #[arg(long)]
    gt: PathBuf,
    /// Detections: a COCO results JSON list (`mmrun test` writes one in `<work_dir>/results/`).
    #[arg(long)]
    dt: PathBuf,
    /// Detections scoring below this are left out.
    #[arg(long, default_value = "0.3", value_parser = super::score_thr)]
    score_thr: f64,
    /// A detection matches a ground-truth box at this IoU or more.
    #[arg(long, default_value = "0.5", value_parser = iou_thr)]
    tp_iou_thr: f64,
    /// Folder for `confusion_matrix.png` (created if missing; no picture without it).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Output format: the table, or one JSON object (`classes`, `matrix`).
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

/// An IoU threshold: a number in [0, 1] (clap names the argument and the value on error).
fn iou_thr(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| "expected a number in [0, 1]".to_string())?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err("an IoU threshold must be a number in [0, 1]".into())
    }
}

/// A count of at least 1.
fn count(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err("expected a whole number of at least 1".into()),
    }
}

impl Args {
    /// Whether the command writes files (the confusion matrix's picture), so it keeps working
    /// when stdout goes away.
    pub fn writes_files(&self) -> bool {
        matches!(&self.kind, Kind::Confusion(a) if a.out.is_some())
    }
}

pub fn run(args: Args) -> u8 {
    let result = match args.kind {
        Kind::Coco(a) => run_coco(
            &a.gt,
            &a.dt,
            &CocoParams::default(),
            a.format,
            a.classwise,
            false,
        ),
        Kind::Proposal(a) if a.fast => run_proposal_fast(&a),
        Kind::Proposal(a) => {
            let params = CocoParams::proposal(&a.proposal_nums);
            run_coco(&a.gt, &a.dt, &params, a.format, false, true)
        }
        Kind::Voc(a) => run_voc(&a),
        Kind::Confusion(a) => return run_confusion(&a),
    };
    exit_code(result)
}

fn exit_code(result: Result<(), EvalError>) -> u8 {
    match result {
        Ok(()) => super::EXIT_OK,
        Err(e) => {
            crate::errln!("error: {e}");
            match e {
                EvalError::Io { .. } | EvalError::Params(_) => super::EXIT_CANNOT_RUN,
                EvalError::Json { .. } | EvalError::Invalid { .. } => super::EXIT_PROBLEMS,
            }
        }
    }
}

fn run_confusion(a: &ConfusionArgs) -> u8 {
    use crate::eval::confusion::{self, ConfusionParams};
    let params = ConfusionParams {
        score_thr: a.score_thr,
        tp_iou_thr: a.tp_iou_thr,
    };
    let matrix = match confusion::from_coco_files(&a.gt, &a.dt, &params) {
        Ok(m) => m,
        Err(e) => return exit_code(Err(e)),
    };
    let labels = matrix.labels();
    match a.format {
        Format::Text => {
            let w = labels.iter().map(|l| l.len()).max().unwrap_or(0).max(6);
            crate::outln!(
                "confusion matrix (rows: ground truth, columns: predictions; score_thr {}, tp_iou_thr {})",
                a.score_thr,
                a.tp_iou_thr
            );
            let head: Vec<String> = labels.iter().map(|l| format!("{l:>w$}")).collect();
            crate::outln!("{:<w$} {}", "", head.join(" "));
            for (l, row) in labels.iter().zip(&matrix.counts) {
                let cells: Vec<String> = row.iter().map(|c| format!("{c:>w$}")).collect();
                crate::outln!("{l:<w$} {}", cells.join(" "));
            }
        }
        Format::Json => {
            let v = serde_json::json!({
                "classes": labels,
                "matrix": matrix.counts,
                "score_thr": a.score_thr,
                "tp_iou_thr": a.tp_iou_thr,
            });
            crate::outln!("{v}");
        }
    }
    let Some(dir) = &a.out else {
        return super::EXIT_OK;
    };
    let title = "Normalized Confusion Matrix";
    let written = crate::viz::confusion::save(dir, &labels, &matrix.row_percentages(), title);
    match written {
        Ok(path) => {
            if a.format == Format::Text {
                crate::outln!("wrote {}", path.display());
            }
            super::EXIT_OK
        }
        Err(e) => {
            crate::errln!("error: {e}");
            super::EXIT_CANNOT_RUN
        }
    }
}

fn run_coco(
    gt_path: &std::path::Path,
    dt_path: &std::path::Path,
    params: &CocoParams,
    format: Format,
    classwise: bool,
    proposal: bool,
) -> Result<(), EvalError> {
    let gt = CocoGt::from_json_path(gt_path)?;
    let dets = coco::load_detections_path(dt_path)?;
    let report = coco::evaluate(&gt, &dets, params)
        .map_err(|e| e.with_origin(&dt_path.display().to_string()))?;
    match format {
        Format::Text => print_text(&report, classwise, proposal),
        Format::Json => crate::outln!(
            "{}",
            serde_json::to_string_pretty(&report.to_json(classwise, proposal)).unwrap_or_default()
        ),
    }
    Ok(())
}

fn run_proposal_fast(a: &ProposalArgs) -> Result<(), EvalError> {
    let metrics = crate::eval::recall::proposal_fast_files(&a.gt, &a.dt, &a.proposal_nums)?;
    print_metrics(&metrics, a.format);
    Ok(())
}

/// Metric lines (`key: value`, 3 decimals) or one JSON object.
fn print_metrics(metrics: &[(String, f64)], format: Format) {
    match format {
        Format::Text => {
            for (k, v) in metrics {
                crate::outln!("{k}: {v:.3}");
            }
        }
        Format::Json => crate::outln!(
            "{}",
            serde_json::to_string_pretty(&json::metrics_object(metrics)).unwrap_or_default()
        ),
    }
}

fn run_voc(a: &VocArgs) -> Result<(), EvalError> {
    let mode = if a.eleven_points {
        ApMode::ElevenPoints
    } else {
        ApMode::Area
    };
    let metrics = voc::from_coco_files(&a.gt, &a.dt, &a.iou_thrs, mode)?;
    print_metrics(&metrics, a.format);
    Ok(())
}

fn print_text(report: &CocoReport, classwise: bool, proposal: bool) {
    crate::out!("{}", report.summary_text());
    if classwise {
        crate::outln!("{:<24} AP", "category");
        for (name, ap) in report.classwise() {
            crate::outln!("{name:<24} {ap:.3}");
        }
    }
    for (k, v) in report.keyed_metrics(proposal) {
        crate::outln!("{k}: {v:.3}");
    }
    if !proposal {
        crate::outln!("bbox_mAP_copypaste: {}", report.copypaste());
    }
}
