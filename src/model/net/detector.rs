//! Whole detectors: config → validated [`Detector`] → train graph (forward, mmdetection's
//! losses with `avg_factor`, backward) or eval graph (raw per-level head outputs for
//! [`crate::model::postprocess`]), plus the feeds a batch of [`DenseTargets`] becomes.

use super::fcos_head::build_fcos_head;
use super::fpn::{build_fpn, end_level};
use super::head_checks::{
    check_bbox_loss, check_cls_loss, check_head_common, check_no_debug, check_same_anchor_count,
    delta_coder, rpn_targets,
};
use super::layers::Layers;
use super::losses::{fcos_losses, finish, retina_losses, rpn_loss_terms};
use super::resnet::{build_resnet, stage_channels};
use super::retina_head::build_retina_head;
use super::rpn_head::build_rpn_head;
use crate::graph::{Graph, GraphBuilder, GraphError, NodeId};
use crate::ir::{DType, HostTensor, LengthMismatch, Precision};
use crate::model::anchor::{AnchorError, AnchorGenerator, point_grid};
use crate::model::assign::fcos::FcosTargetConfig;
use crate::model::config::{
    BackboneConfig, BoxCoderConfig, DetectorConfig, HeadConfig, LossConfig, ModelConfigError,
    NeckConfig,
};
use crate::model::rcnn::RcnnTargetConfig;
use crate::model::target::{AnchorTargetConfig, DenseTargets, TargetBuilder};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The train graph's feed of the loss scale (f16 training: the gradients are of `loss × loss_scale`).
pub const LOSS_SCALE: &str = "loss_scale";

/// Which graph to build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GraphMode {
    /// Forward, losses, backward: outputs `loss` and [`Detector::loss_names`].
    Train,
    /// Forward only: outputs `cls_score.{l}`, `bbox_pred.{l}` (`centerness.{l}`) per level; a
    /// two-stage detector's also the levels its RoI head reads (`feat.{l}`).
    Eval,
}

/// Names of the raw head outputs of one level in an eval graph.
#[derive(Clone, Debug, PartialEq)]
pub struct HeadOutputs {
    pub cls: String,
    pub reg: String,
    pub centerness: Option<String>,
    /// `(h, w)` of the level.
    pub size: (usize, usize),
}

/// A built graph with what its feeds and outputs look like.
#[derive(Clone, Debug)]
pub struct BuiltGraph {
    pub graph: Graph,
    /// Per level `(h, w)`.
    pub featmap_sizes: Vec<(usize, usize)>,
    /// Priors per image over all levels (anchors or points).
    pub num_priors: usize,
    /// Eval graphs: output names per level.
    pub heads: Vec<HeadOutputs>,
}

/// A validated detector config.
#[derive(Clone, Debug)]
pub struct Detector {
    pub cfg: DetectorConfig,
    pub(super) targets: TargetBuilder,
    /// A two-stage detector's second-stage targets.
    pub(super) rcnn: Option<Arc<RcnnTargetConfig>>,
    precision: Precision,
    /// Ranks of the data-parallel run its train graphs are for (sync batch norm).
    ranks: usize,
}

impl Detector {
    /// Validate a config (channel agreement between parts, anchors, losses) and prepare the
    /// target builder.
    pub fn new(cfg: DetectorConfig) -> Result<Self, ModelConfigError> {
        let BackboneConfig::Resnet(bb) = cfg.backbone();
        super::resnet::validate(bb).map_err(|e| e.under("backbone"))?;
        let NeckConfig::Fpn(neck) = cfg.neck();
        end_level(neck).map_err(|e| e.under("neck"))?;
        let chans: Vec<usize> = stage_channels(bb)
            .expect("validated")
            .into_iter()
            .enumerate()
            .filter(|(i, _)| bb.out_indices.contains(i))
            .map(|(_, c)| c)
            .collect();
        if chans != neck.in_channels {
            return Err(ModelConfigError::at(
                "neck.in_channels",
                format!(
                    "{:?} but the backbone's out_indices give {chans:?}",
                    neck.in_channels
                ),
            ));
        }
        check_no_debug(&cfg)?;
        let mut rcnn = None;
        let targets = match (&cfg, cfg.head()) {
            (DetectorConfig::Rpn(p), HeadConfig::RpnHead(h)) => {
                rpn_targets(&p.train_cfg.rpn, h, neck, None)?
            }
            (DetectorConfig::FasterRcnn(p), HeadConfig::RpnHead(h)) => {
                let r = super::two_stage::rcnn_targets(p, h, neck)?;
                let t = rpn_targets(&p.train_cfg.rpn, h, neck, Some(r.num_classes))?;
                rcnn = Some(Arc::new(r));
                t
            }
            (DetectorConfig::Retinanet(parts), HeadConfig::RetinaHead(h)) => {
                let anchor_gen = AnchorGenerator::new(h.anchors()).map_err(|e| {
                    ModelConfigError::at("bbox_head.anchor_generator", e.to_string())
                })?;
                check_head_common(
                    "bbox_head",
                    h.in_channels,
                    neck.out_channels,
                    anchor_gen.num_levels(),
                    neck.num_outs,
                )?;
                let coder = delta_coder(&h.bbox_coder, "bbox_head", "retina_head")?;
                check_cls_loss(&h.loss_cls)?;
                check_bbox_loss(&h.loss_bbox, "bbox_head.loss_bbox")?;
                check_same_anchor_count(&anchor_gen, "bbox_head")?;
                TargetBuilder::Anchor(Arc::new(AnchorTargetConfig {
                    num_classes: h.num_classes,
                    anchor_generator: anchor_gen,
                    assigner: parts.train_cfg.assigner.clone(),
                    bbox_coder: coder,
                    allowed_border: parts.train_cfg.allowed_border as f64,
                    pos_weight: parts.train_cfg.pos_weight,
                    reg_decoded_bbox: h.loss_bbox.on_decoded_boxes(),
                    sampler: None,
                    class_agnostic: false,
                    keep_gt: None,
                }))
            }
            (DetectorConfig::Fcos(_), HeadConfig::FcosHead(h)) => {
                check_head_common(
                    "bbox_head",
                    h.in_channels,
                    neck.out_channels,
                    h.strides.len(),
                    neck.num_outs,
                )?;
                if !matches!(h.bbox_coder, BoxCoderConfig::DistancePoint(_)) {
                    return Err(ModelConfigError::at(
                        "bbox_head.bbox_coder",
                        "fcos_head needs distance_point",
                    ));
                }
                check_cls_loss(&h.loss_cls)?;
                if !matches!(
                    h.loss_bbox,
                    LossConfig::GiouLoss { .. } | LossConfig::IouLoss { .. }
                ) {
                    return Err(ModelConfigError::at(
                        "bbox_head.loss_bbox",
                        "fcos_head needs giou_loss or iou_loss",
                    ));
                }
                if !matches!(
                    h.loss_centerness,
                    LossConfig::CrossEntropyLoss {
                        use_sigmoid: true,
                        ..
                    }
                ) {
                    return Err(ModelConfigError::at(
                        "bbox_head.loss_centerness",
                        "needs cross_entropy_loss with use_sigmoid = true",
                    ));
                }
                let rr = h.regress_ranges();
                if rr.len() != h.strides.len() {
                    return Err(ModelConfigError::at(
                        "bbox_head.regress_ranges",
                        format!("{} ranges for {} strides", rr.len(), h.strides.len()),
                    ));
                }
                TargetBuilder::Point(Arc::new(FcosTargetConfig {
                    num_classes: h.num_classes,
                    strides: h.strides.iter().map(|&s| s as f64).collect(),
                    regress_ranges: rr,
                    center_sampling: h.center_sampling,
                    center_sample_radius: h.center_sample_radius,
                    norm_on_bbox: h.norm_on_bbox,
                }))
            }
            (cfg, _) => {
                let (key, want) = match cfg {
                    DetectorConfig::Retinanet(_) => ("bbox_head", "retina_head"),
                    DetectorConfig::Fcos(_) => ("bbox_head", "fcos_head"),
                    DetectorConfig::Rpn(_) | DetectorConfig::FasterRcnn(_) => {
                        ("rpn_head", "rpn_head")
                    }
                };
                return Err(ModelConfigError::at(
                    key,
                    format!("{} needs {want}", cfg.type_name()),
                ));
            }
        };
        Ok(Self {
            cfg,
            targets,
            rcnn,
            precision: Precision::Fp32,
            ranks: 1,
        })
    }

    /// The per-image target builder for the data loader.
    pub fn target_builder(&self) -> &TargetBuilder {
        &self.targets
    }

    /// Number of classes (1 for an RPN: objectness; a two-stage detector's second stage's).
    pub fn num_classes(&self) -> usize {
        if let Some(r) = &self.rcnn {
            return r.num_classes;
        }
        match self.cfg.head() {
            HeadConfig::RetinaHead(h) => h.num_classes,
            HeadConfig::FcosHead(h) => h.num_classes,
            HeadConfig::RpnHead(h) => h.num_classes,
        }
    }

    /// The loss terms the train graph outputs besides their sum `loss`, in log order
    /// (mmdetection's names).
    pub fn loss_names(&self) -> &'static [&'static str] {
        match self.cfg.head() {
            HeadConfig::RetinaHead(_) => &["loss_cls", "loss_bbox"],
            HeadConfig::FcosHead(_) => &["loss_cls", "loss_bbox", "loss_centerness"],
            HeadConfig::RpnHead(_) if self.rcnn.is_some() => {
                &["loss_rpn_cls", "loss_rpn_bbox", "loss_cls", "loss_bbox"]
            }
            HeadConfig::RpnHead(_) => &["loss_rpn_cls", "loss_rpn_bbox"],
        }
    }

    /// The detector with its graphs built in `precision` (autocast convolutions; with f16, a
    /// train graph scales its loss by the `loss_scale` feed before the backward pass).
    pub fn with_precision(mut self, precision: Precision) -> Self {
        self.precision = precision;
        self
    }

    /// Train graphs for one rank of `ranks` (sync batch norm averages over them).
    pub fn with_ranks(mut self, ranks: usize) -> Self {
        self.ranks = ranks.max(1);
        self
    }

    /// The arithmetic the graphs are built in.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Build the train or eval graph for a batch of `batch` images padded to `(h, w)`.
    pub fn build(
        &self,
        mode: GraphMode,
        batch: usize,
        hw: (usize, usize),
        float: DType,
    ) -> Result<BuiltGraph, GraphError> {
        let mut b = GraphBuilder::new(float);
        b.set_autocast(self.precision.autocast())?;
        let BackboneConfig::Resnet(bb) = self.cfg.backbone();
        let NeckConfig::Fpn(neck) = self.cfg.neck();
        let img = b.input("img", &[batch, bb.in_channels, hw.0, hw.1], float)?;
        let mut l = Layers {
            b: &mut b,
            train: mode == GraphMode::Train,
            ranks: self.ranks,
        };
        let feats = build_resnet(&mut l, bb, img)?;
        let levels = build_fpn(&mut l, neck, &feats)?;
        let sizes: Vec<(usize, usize)> = levels
            .iter()
            .map(|&x| (l.b.shape(x)[2], l.b.shape(x)[3]))
            .collect();
        let expected = self.targets.featmap_sizes(hw);
        if sizes != expected {
            return Err(GraphError::Invalid(format!(
                "feature map sizes {sizes:?} differ from the strides' {expected:?} (head strides must match the neck levels)"
            )));
        }
        let mut heads = Vec::new();
        let num_priors;
        match self.cfg.head() {
            HeadConfig::RpnHead(h) => {
                let TargetBuilder::Anchor(t) = &self.targets else {
                    unreachable!("checked in new")
                };
                let a = t.anchor_generator.num_base_anchors()[0];
                let outs = build_rpn_head(&mut l, h, a, &levels)?;
                num_priors = sizes.iter().map(|(y, x)| y * x * a).sum();
                match (mode, &self.cfg) {
                    (GraphMode::Eval, _) => {
                        for (i, &(c, r)) in outs.iter().enumerate() {
                            heads.push(eval_outputs(l.b, i, c, r, None, sizes[i])?);
                        }
                        if let DetectorConfig::FasterRcnn(p) = &self.cfg {
                            super::two_stage::feature_outputs(&mut l, p, &levels)?;
                        }
                    }
                    (GraphMode::Train, cfg) => {
                        let mut terms =
                            rpn_loss_terms(l.b, h, t, &outs, batch, num_priors)?.to_vec();
                        if let DetectorConfig::FasterRcnn(p) = cfg {
                            // The RPN maps the second stage's proposals are made from, read
                            // half-way through the run (`Detector::rcnn_late_feeds`).
                            for (i, &(c, r)) in outs.iter().enumerate() {
                                heads.push(eval_outputs(l.b, i, c, r, None, sizes[i])?);
                            }
                            terms.extend(super::two_stage::rcnn_train(&mut l, p, &levels, batch)?);
                        }
                        let total = finish(l.b, &terms)?;
                        backward(l.b, total, self.precision)?;
                    }
                }
            }
            HeadConfig::RetinaHead(h) => {
                let TargetBuilder::Anchor(t) = &self.targets else {
                    unreachable!("checked in new")
                };
                let a = t.anchor_generator.num_base_anchors()[0];
                let outs = build_retina_head(&mut l, h, a, &levels)?;
                num_priors = sizes.iter().map(|(y, x)| y * x * a).sum();
                match mode {
                    GraphMode::Eval => {
                        for (i, &(c, r)) in outs.iter().enumerate() {
                            heads.push(eval_outputs(l.b, i, c, r, None, sizes[i])?);
                        }
                    }
                    GraphMode::Train => {
                        let total = retina_losses(l.b, h, t, &outs, batch, num_priors)?;
                        backward(l.b, total, self.precision)?;
                    }
                }
            }
            HeadConfig::FcosHead(h) => {
                let outs = build_fcos_head(&mut l, h, &levels)?;
                num_priors = sizes.iter().map(|(y, x)| y * x).sum();
                match mode {
                    GraphMode::Eval => {
                        for (i, o) in outs.iter().enumerate() {
                            heads.push(eval_outputs(
                                l.b,
                                i,
                                o.cls,
                                o.reg,
                                Some(o.centerness),
                                sizes[i],
                            )?);
                        }
                    }
                    GraphMode::Train => {
                        let total = fcos_losses(l.b, h, &outs, batch, num_priors)?;
                        backward(l.b, total, self.precision)?;
                    }
                }
            }
        }
        Ok(BuiltGraph {
            graph: b.finish(),
            featmap_sizes: sizes,
            num_priors,
            heads,
        })
    }

    /// The loss normalisers of a batch, as this rank counts them. FCOS-style heads average
    /// theirs over the ranks of a data-parallel run before use (mmdetection's
    /// `reduce_mean(num_pos)`); anchor heads do not (its `AnchorHead`).
    pub fn loss_normalisers(&self, targets: &[DenseTargets]) -> LossNormalisers {
        match &self.targets {
            // mmdetection: sum over images of max(num_pos, 1), plus the same of the negatives
            // when a sampler picks them (`num_total_samples`).
            TargetBuilder::Anchor(t) => {
                let pos: usize = targets.iter().map(|t| t.num_pos.max(1)).sum();
                let neg: usize = match t.sampler {
                    Some(_) => targets.iter().map(|t| t.num_neg.max(1)).sum(),
                    None => 0,
                };
                LossNormalisers {
                    counts: vec![(pos + neg) as f64],
                    mean_over_ranks: false,
                }
            }
            TargetBuilder::Point(_) => {
                let num_pos: usize = targets.iter().map(|t| t.num_pos).sum();
                let csum: f64 = (targets.iter())
                    .flat_map(|t| t.centerness.iter())
                    .map(|&v| v as f64)
                    .sum();
                LossNormalisers {
                    counts: vec![num_pos as f64, csum],
                    mean_over_ranks: true,
                }
            }
        }
    }

    /// The train graph's feeds for a batch: `img` (`[B, C, H, W]`, already normalised and
    /// padded), the stacked targets of each image and the batch's loss normalisers.
    pub fn train_feeds(
        &self,
        img: HostTensor,
        targets: &[DenseTargets],
        batch_shape: (usize, usize),
        norms: &LossNormalisers,
    ) -> Result<BTreeMap<String, HostTensor>, FeedError> {
        let c = self.targets.num_classes();
        let n = targets.first().map_or(0, |t| t.labels.len());
        if targets.iter().any(|t| t.labels.len() != n) {
            return Err(FeedError::MixedTargetLengths);
        }
        let m = n * targets.len();
        let mut f = BTreeMap::new();
        f.insert("img".into(), img);
        let onehot: Vec<f32> = targets.iter().flat_map(|t| t.one_hot(c)).collect();
        feed(&mut f, "labels_onehot", vec![m, c], onehot)?;
        let lw: Vec<f32> = targets
            .iter()
            .flat_map(|t| t.label_weights.iter().copied())
            .collect();
        feed(&mut f, "label_weights", vec![m, 1], lw)?;
        let bt: Vec<f32> = targets
            .iter()
            .flat_map(|t| t.bbox_targets.iter().flatten().copied())
            .collect();
        feed(&mut f, "bbox_targets", vec![m, 4], bt)?;
        let bw: Vec<f32> = targets
            .iter()
            .flat_map(|t| t.bbox_weights.iter().flat_map(|&w| [w; 4]))
            .collect();
        feed(&mut f, "bbox_weights", vec![m, 4], bw)?;
        let sizes = self.targets.featmap_sizes(batch_shape);
        match &self.targets {
            TargetBuilder::Anchor(t) => {
                f.insert(
                    "avg_factor".into(),
                    HostTensor::scalar(DType::F32, norms.counts[0]),
                );
                if t.reg_decoded_bbox {
                    let anchors = t.anchor_generator.grid_anchors(&sizes)?;
                    let one: Vec<f32> = anchors.into_iter().flatten().flatten().collect();
                    let all: Vec<f32> = (0..targets.len())
                        .flat_map(|_| one.iter().copied())
                        .collect();
                    feed(&mut f, "anchors", vec![m, 4], all)?;
                }
            }
            TargetBuilder::Point(t) => {
                let (num_pos, csum) = (norms.counts[0], norms.counts[1]);
                f.insert(
                    "avg_factor".into(),
                    HostTensor::scalar(DType::F32, num_pos.max(1.0)),
                );
                let ctr: Vec<f32> = targets
                    .iter()
                    .flat_map(|t| t.centerness.iter().copied())
                    .collect();
                f.insert(
                    "bbox_avg_factor".into(),
                    HostTensor::scalar(DType::F32, csum.max(1e-6)),
                );
                feed(&mut f, "centerness_targets", vec![m, 1], ctr)?;
                let strides: Vec<(f64, f64)> = t.strides.iter().map(|&s| (s, s)).collect();
                let pts = point_grid(&strides, &sizes, 0.5);
                // Points in stride units when targets are normalised by the stride.
                let mut one = Vec::with_capacity(n * 2);
                for (lvl, p) in pts.iter().enumerate() {
                    let s = if t.norm_on_bbox {
                        t.strides[lvl] as f32
                    } else {
                        1.0
                    };
                    one.extend(p.iter().flat_map(|q| [q[0] / s, q[1] / s]));
                }
                let all: Vec<f32> = (0..targets.len())
                    .flat_map(|_| one.iter().copied())
                    .collect();
                feed(&mut f, "points", vec![m, 2], all)?;
            }
        }
        Ok(f)
    }
}

/// A batch's loss normalisers before the graph sees them: the anchor heads' `Σ max(num_pos,
/// 1)`, or the point heads' positive count and centerness-target sum (clamped to 1 and 1e-6
/// after any averaging over ranks).
#[derive(Clone, Debug, PartialEq)]
pub struct LossNormalisers {
    pub counts: Vec<f64>,
    /// Whether a data-parallel run replaces `counts` by their mean over ranks.
    pub mean_over_ranks: bool,
}

/// The backward pass from the total loss; with loss scaling (f16), from `total × loss_scale`,
/// the scale fed each step by the optimizer's loss scaler.
fn backward(b: &mut GraphBuilder, total: NodeId, precision: Precision) -> Result<(), GraphError> {
    if !precision.needs_loss_scale() {
        return b.backward(total);
    }
    let scale = b.input(LOSS_SCALE, &[], DType::F32)?;
    let scaled = b.mul(total, scale)?;
    b.backward(scaled)
}

fn eval_outputs(
    b: &mut GraphBuilder,
    lvl: usize,
    cls: NodeId,
    reg: NodeId,
    ctr: Option<NodeId>,
    size: (usize, usize),
) -> Result<HeadOutputs, GraphError> {
    let (c, r) = (format!("cls_score.{lvl}"), format!("bbox_pred.{lvl}"));
    b.output(&c, cls)?;
    b.output(&r, reg)?;
    let centerness = match ctr {
        Some(x) => {
            let n = format!("centerness.{lvl}");
            b.output(&n, x)?;
            Some(n)
        }
        None => None,
    };
    Ok(HeadOutputs {
        cls: c,
        reg: r,
        centerness,
        size,
    })
}

/// Why a batch's targets cannot become the train graph's feeds.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("targets of one batch differ in length (different shape buckets?)")]
    MixedTargetLengths,
    #[error("feed `{name}`: {source}")]
    Length {
        name: &'static str,
        source: LengthMismatch,
    },
    #[error(transparent)]
    Anchors(#[from] AnchorError),
    #[error("the first stage's outputs have no `{0}`")]
    MissingOutput(String),
    #[error("{0}")]
    Proposals(String),
    #[error("second-stage feeds asked of a detector with one stage")]
    NotTwoStage,
}

/// Adds the f32 feed `name` of `shape`.
fn feed(
    feeds: &mut BTreeMap<String, HostTensor>,
    name: &'static str,
    shape: Vec<usize>,
    data: Vec<f32>,
) -> Result<(), FeedError> {
    let t = HostTensor::f32(shape, data).map_err(|source| FeedError::Length { name, source })?;
    feeds.insert(name.into(), t);
    Ok(())
}
