//! ONNX export of a detector's inference network: the eval graph `mmrun test` runs (backbone,
//! neck, and the head's raw per-level outputs), written as an ONNX model at opset
//! [`OPSET`] with the weights as initializers. Post-processing (priors, box decoding,
//! score threshold, NMS) stays with the caller, as `docs/onnx.md` describes.
//!
//! Owns the translation and the protobuf encoding (`proto`, by hand: no protoc, no codegen);
//! does not read checkpoints or recipes (the CLI hands it a model config and weights).
//! Single-stage detectors (RetinaNet, FCOS) and a lone RPN export; Faster R-CNN is refused:
//! its second stage runs RoIAlign over proposals chosen by NMS on the host, which is not
//! part of the graph.

mod proto;
mod translate;

use crate::graph::Graph;
use crate::ir::DType;
use crate::model::config::DetectorConfig;
use crate::model::net::{Detector, GraphMode};
use crate::model::weights::StateDict;

/// The ONNX operator set the files import (the default domain).
pub const OPSET: i64 = 17;
/// The ONNX IR version that goes with [`OPSET`] (onnx 1.12+).
pub const IR_VERSION: i64 = 8;
/// The name of the exported model's image input.
pub const INPUT: &str = "input";

/// Why a model cannot be exported.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    #[error("op `{op}` (in `{scope}`) has no ONNX translation{why}")]
    Unsupported {
        op: &'static str,
        scope: String,
        why: String,
    },
    #[error("the weights have no `{0}`, which the model needs")]
    MissingWeight(String),
    #[error("weight `{name}` is {got:?} but the model needs {want:?}")]
    WeightShape {
        name: String,
        got: Vec<usize>,
        want: Vec<usize>,
    },
    #[error("{0}")]
    Model(String),
}

/// An exported model and what its graph looks like.
#[derive(Clone, Debug)]
pub struct Exported {
    /// The `.onnx` file's bytes.
    pub bytes: Vec<u8>,
    /// The shape of [`INPUT`]: `[1, C, H, W]`.
    pub input: Vec<usize>,
    /// Output names and shapes, in order (`cls_score.{l}`, `bbox_pred.{l}`, `centerness.{l}`).
    pub outputs: Vec<(String, Vec<usize>)>,
}

/// The ONNX model of `graph` with `weights` as its parameters: `inputs` names each feed in
/// the file, the graph's outputs keep their names. `metadata` goes in `metadata_props`.
pub fn export_graph(
    graph: &Graph,
    weights: &StateDict,
    inputs: &[(&str, &str)],
    doc: &str,
    metadata: &[(String, String)],
) -> Result<Vec<u8>, OnnxError> {
    let parts = translate::translate(graph, weights, inputs)?;
    Ok(proto::model(
        "mmrun", parts, IR_VERSION, OPSET, doc, metadata,
    ))
}

/// The inference network of detector `cfg` for one image of `hw` pixels (already resized,
/// normalised and padded as the recipe's test pipeline does), with the checkpoint's `weights`.
pub fn export_detector(
    cfg: &DetectorConfig,
    weights: &StateDict,
    hw: (usize, usize),
    metadata: &[(String, String)],
) -> Result<Exported, OnnxError> {
    if let DetectorConfig::FasterRcnn(_) = cfg {
        return Err(OnnxError::Model(
            "faster_rcnn cannot be exported: its second stage runs RoIAlign over proposals that \
             NMS picks on the host, outside the graph; single-stage detectors (retinanet, fcos) \
             and a lone rpn export"
                .into(),
        ));
    }
    let detector = Detector::new(cfg.clone()).map_err(|e| OnnxError::Model(e.to_string()))?;
    let built = (detector.build(GraphMode::Eval, 1, hw, DType::F32))
        .map_err(|e| OnnxError::Model(format!("at {}x{}: {e}", hw.0, hw.1)))?;
    let g = &built.graph;
    let img = g.inputs.get("img").map(|&id| g.shape(id).to_vec());
    let input = img.ok_or_else(|| OnnxError::Model("the eval graph has no `img` feed".into()))?;
    let mut meta = vec![
        ("detector".to_string(), cfg.type_name().to_string()),
        ("outputs".into(), output_doc(cfg)),
    ];
    meta.extend(metadata.iter().cloned());
    let doc = format!(
        "{} inference network exported by mmrun: raw per-level head outputs; decoding and NMS are the caller's",
        cfg.type_name()
    );
    let bytes = export_graph(g, weights, &[("img", INPUT)], &doc, &meta)?;
    let outputs = g
        .outputs
        .iter()
        .map(|(n, id)| (n.clone(), g.shape(*id).to_vec()))
        .collect();
    Ok(Exported {
        bytes,
        input,
        outputs,
    })
}

/// What the outputs of `cfg`'s network hold, for the file's metadata.
fn output_doc(cfg: &DetectorConfig) -> String {
    match cfg {
        DetectorConfig::Fcos(_) => "per level l: cls_score.l [1, C, h, w] logits; bbox_pred.l \
            [1, 4, h, w] distances (left, top, right, bottom) to the point, in units of the \
            level's stride when norm_on_bbox; centerness.l [1, 1, h, w] logits"
            .into(),
        _ => "per level l: cls_score.l [1, A*C, h, w] logits; bbox_pred.l [1, A*4, h, w] \
            deltas (dx, dy, dw, dh) of the level's anchors"
            .into(),
    }
}
