//! Faster R-CNN's second stage in the detector: the RoI head's validation against the RPN and
//! neck, its part of the train graph, the proposals of a batch (an RPN alone shares them), the
//! feeds the host makes for the second stage, the eval graph that reads the first stage's
//! features, and its detections. The step and the eval loop that run these in order are the
//! engine's (`docs/two-stage.md`).

use super::detector::{Detector, FeedError};
use super::layers::Layers;
use super::roi_head::{
    RCNN_BBOX_AVG, RCNN_BBOX_TARGETS, RCNN_BBOX_WEIGHTS, RCNN_CLS, RCNN_CLS_AVG,
    RCNN_LABEL_WEIGHTS, RCNN_LABELS, RCNN_REG, ROI_LEVEL_MASKS, ROIS, build_roi_head,
    extractor_levels, rcnn_losses,
};
use crate::graph::{Graph, GraphBuilder, GraphError, NodeId};
use crate::ir::{DType, HostTensor};
use crate::model::boxes::BBox;
use crate::model::config::{
    BBoxHeadConfig, BoxCoderConfig, BoxSamplerConfig, DetectorConfig, FasterRcnnParts, FpnConfig,
    LossConfig, ModelConfigError, Reduction, RoiExtractorConfig, RoiHeadConfig, RoiLayerConfig,
    RpnHeadConfig, StandardRoiHeadConfig,
};
use crate::model::postprocess::Detections;
use crate::model::proposals::{Proposals, RpnLevel, rpn_proposals};
use crate::model::rcnn::{RcnnTargetConfig, RoiBatch, rcnn_detections, rcnn_samples, roi_batch};
use crate::model::target::{DenseTargets, TargetBuilder};
use crate::util::rng::Rng;
use std::collections::BTreeMap;

/// The name of FPN level `l` as an eval graph outputs it for the second stage.
pub fn feat_name(l: usize) -> String {
    format!("feat.{l}")
}

fn head(p: &FasterRcnnParts) -> &StandardRoiHeadConfig {
    let RoiHeadConfig::StandardRoiHead(h) = &p.roi_head;
    h
}

/// Checks the RoI head against the neck and the RPN's levels and builds its target settings.
pub(super) fn rcnn_targets(
    p: &FasterRcnnParts,
    rpn: &RpnHeadConfig,
    neck: &FpnConfig,
) -> Result<RcnnTargetConfig, ModelConfigError> {
    let h = head(p);
    let RoiExtractorConfig::SingleRoiExtractor(e) = &h.bbox_roi_extractor;
    let RoiLayerConfig::RoiAlign(ra) = &e.roi_layer;
    let BBoxHeadConfig::Shared2fcBboxHead(b) = &h.bbox_head;
    let at = |k: &str, msg: String| ModelConfigError::at(format!("roi_head.{k}"), msg);
    let levels: Vec<f64> = (rpn.anchors().strides.iter()).map(|s| s.wh().0).collect();
    let strides: Vec<f64> = e.featmap_strides.iter().map(|&s| s as f64).collect();
    if strides.is_empty() || levels.len() < strides.len() || levels[..strides.len()] != strides {
        return Err(at(
            "bbox_roi_extractor.featmap_strides",
            format!(
                "{:?} must be the first strides of the neck's levels {levels:?}",
                e.featmap_strides
            ),
        ));
    }
    if e.out_channels != neck.out_channels || b.in_channels != neck.out_channels {
        return Err(at(
            "bbox_head.in_channels",
            format!(
                "the extractor gives {} and the head takes {} channels, but the neck's out_channels is {}",
                e.out_channels, b.in_channels, neck.out_channels
            ),
        ));
    }
    if ra.output_size == 0 || b.roi_feat_size != ra.output_size {
        return Err(at(
            "bbox_head.roi_feat_size",
            format!(
                "{} but the RoI layer outputs {}×{}",
                b.roi_feat_size, ra.output_size, ra.output_size
            ),
        ));
    }
    let BoxCoderConfig::DeltaXywh(coder) = &b.bbox_coder else {
        return Err(at("bbox_head.bbox_coder", "needs delta_xywh".into()));
    };
    if !matches!(
        b.loss_cls,
        LossConfig::CrossEntropyLoss {
            use_sigmoid: false,
            reduction: Reduction::Mean,
            ..
        }
    ) {
        return Err(at(
            "bbox_head.loss_cls",
            "needs cross_entropy_loss with use_sigmoid = false and reduction = mean".into(),
        ));
    }
    if !matches!(
        b.loss_bbox,
        LossConfig::L1Loss {
            reduction: Reduction::Mean,
            ..
        } | LossConfig::SmoothL1Loss {
            reduction: Reduction::Mean,
            ..
        }
    ) {
        return Err(at(
            "bbox_head.loss_bbox",
            "needs l1_loss or smooth_l1_loss with reduction = mean".into(),
        ));
    }
    let BoxSamplerConfig::Random(sampler) = &p.train_cfg.rcnn.sampler;
    if sampler.num == 0 || !(0.0..=1.0).contains(&sampler.pos_fraction) {
        return Err(ModelConfigError::at(
            "train_cfg.rcnn.sampler",
            "needs num >= 1 and pos_fraction in [0, 1]",
        ));
    }
    Ok(RcnnTargetConfig {
        num_classes: b.num_classes,
        assigner: p.train_cfg.rcnn.assigner.clone(),
        sampler: sampler.clone(),
        coder: coder.clone(),
        pos_weight: p.train_cfg.rcnn.pos_weight,
        reg_class_agnostic: b.reg_class_agnostic,
    })
}

/// An eval graph's outputs of the levels the RoI head reads.
pub(super) fn feature_outputs(
    l: &mut Layers<'_>,
    p: &FasterRcnnParts,
    levels: &[NodeId],
) -> Result<(), GraphError> {
    for (i, &x) in levels.iter().take(extractor_levels(head(p))).enumerate() {
        l.b.output(&feat_name(i), x)?;
    }
    Ok(())
}

/// The train graph's second stage on `batch · sampler.num` RoIs: its loss terms (and its class
/// scores as the output `rcnn_cls_score`).
pub(super) fn rcnn_train(
    l: &mut Layers<'_>,
    p: &FasterRcnnParts,
    levels: &[NodeId],
    batch: usize,
) -> Result<[(&'static str, NodeId); 2], GraphError> {
    let BoxSamplerConfig::Random(s) = &p.train_cfg.rcnn.sampler;
    let (cls, reg) = build_roi_head(l, head(p), levels, batch * s.num)?;
    // The scores are an output too: the step reports their accuracy (`acc`) as mmdetection.
    l.b.output(RCNN_CLS, cls)?;
    let (loss_cls, loss_bbox) = rcnn_losses(l, head(p), cls, reg)?;
    Ok([("loss_cls", loss_cls), ("loss_bbox", loss_bbox)])
}

/// One image's RPN outputs out of a batch's, as `rpn_proposals` reads them.
fn rpn_levels<'a>(
    outputs: &'a BTreeMap<String, HostTensor>,
    sizes: &[(usize, usize)],
    n: usize,
    i: usize,
) -> Result<Vec<RpnLevel<'a>>, FeedError> {
    let per = |name: String| -> Result<&'a [f32], FeedError> {
        let v =
            (outputs.get(&name).and_then(|t| t.as_f32())).ok_or(FeedError::MissingOutput(name))?;
        let k = v.len() / n;
        Ok(&v[i * k..(i + 1) * k])
    };
    (sizes.iter().enumerate())
        .map(|(l, &(h, w))| {
            Ok(RpnLevel {
                cls: per(format!("cls_score.{l}"))?,
                reg: per(format!("bbox_pred.{l}"))?,
                h,
                w,
            })
        })
        .collect()
}

/// The sampled RoIs' class labels and label weights of one train step (padding rows weigh 0).
pub struct SampledLabels {
    labels: Vec<i32>,
    weights: Vec<f32>,
}

/// A named tensor of a feed or output map.
fn get<'a>(m: &'a BTreeMap<String, HostTensor>, name: &str) -> Result<&'a HostTensor, FeedError> {
    m.get(name)
        .ok_or_else(|| FeedError::MissingOutput(name.to_string()))
}

impl Detector {
    fn two_stage(&self) -> Option<(&FasterRcnnParts, &RcnnTargetConfig)> {
        match (&self.cfg, &self.rcnn) {
            (DetectorConfig::FasterRcnn(p), Some(r)) => Some((p, r)),
            _ => None,
        }
    }

    /// Whether the detector has a second stage ([`Detector::rcnn_train_feeds`] before each
    /// train step, [`Detector::rcnn_eval_graph`] after each eval run).
    pub fn is_two_stage(&self) -> bool {
        self.two_stage().is_some()
    }

    /// Each image's proposals from a batch's first-stage `outputs` (`img_shapes`: each image's
    /// `img_shape`), made with `train_cfg.rpn_proposal` (`train`) or `test_cfg.rpn`, on the
    /// network's input scale. The anchors are made once for the batch.
    pub fn batch_proposals(
        &self,
        outputs: &BTreeMap<String, HostTensor>,
        batch_shape: (usize, usize),
        img_shapes: &[(usize, usize)],
        train: bool,
    ) -> Result<Vec<Proposals>, FeedError> {
        let TargetBuilder::Anchor(t) = &self.targets else {
            return Err(FeedError::NotTwoStage);
        };
        let cfg = match (&self.cfg, train) {
            (DetectorConfig::FasterRcnn(p), true) => p.train_cfg.rpn_proposal.proposals(),
            (DetectorConfig::FasterRcnn(p), false) => p.test_cfg.rpn.proposals(),
            (DetectorConfig::Rpn(p), _) => p.test_cfg.rpn.proposals(),
            _ => return Err(FeedError::NotTwoStage),
        };
        let sizes = self.targets.featmap_sizes(batch_shape);
        let anchors = t.anchor_generator.grid_anchors(&sizes)?;
        let n = img_shapes.len();
        (img_shapes.iter().enumerate())
            .map(|(i, &img_shape)| {
                let levels = rpn_levels(outputs, &sizes, n, i)?;
                rpn_proposals(&levels, &anchors, &t.bbox_coder, &cfg, img_shape)
                    .map_err(|e| FeedError::Proposals(e.to_string()))
            })
            .collect()
    }

    /// The train graph's inputs a two-stage step feeds half-way ([`crate::engine::LateFeeds`]
    /// `names`), and the outputs they are made from (`after`: the RPN maps of every level).
    pub fn rcnn_late_feeds(&self) -> (Vec<String>, Vec<String>) {
        let levels = match &self.targets {
            TargetBuilder::Anchor(t) => t.anchor_generator.num_levels(),
            TargetBuilder::Point(t) => t.strides.len(),
        };
        let names = [
            ROIS,
            ROI_LEVEL_MASKS,
            RCNN_LABELS,
            RCNN_LABEL_WEIGHTS,
            RCNN_CLS_AVG,
            RCNN_BBOX_TARGETS,
            RCNN_BBOX_WEIGHTS,
            RCNN_BBOX_AVG,
        ];
        let after = (0..levels)
            .flat_map(|l| [format!("cls_score.{l}"), format!("bbox_pred.{l}")])
            .collect();
        (names.iter().map(|n| n.to_string()).collect(), after)
    }

    /// What the second stage's accuracy needs of its feeds: the sampled RoIs' labels and
    /// label weights (kept from the feeds, which the run then consumes).
    pub fn rcnn_sampled_labels(
        &self,
        feeds: &BTreeMap<String, HostTensor>,
    ) -> Result<SampledLabels, FeedError> {
        let labels = get(feeds, RCNN_LABELS)?.to_f64_vec();
        let weights = get(feeds, RCNN_LABEL_WEIGHTS)?.to_f64_vec();
        Ok(SampledLabels {
            labels: labels.iter().map(|&l| l as i32).collect(),
            weights: weights.iter().map(|&w| w as f32).collect(),
        })
    }

    /// The second stage's classification accuracy (`acc`, percent) of a train run: its class
    /// scores (`outputs`) against the labels it was fed.
    pub fn rcnn_accuracy(
        &self,
        outputs: &BTreeMap<String, HostTensor>,
        sampled: &SampledLabels,
    ) -> Result<f64, FeedError> {
        let scores = get(outputs, RCNN_CLS)?;
        let classes = scores.shape.last().copied().unwrap_or(1).max(1);
        // f32 but for mixed-precision graphs, whose head may output a half type.
        let scores: std::borrow::Cow<'_, [f32]> = match scores.as_f32() {
            Some(v) => v.into(),
            None => scores.to_f64_vec().iter().map(|&v| v as f32).collect(),
        };
        Ok(crate::model::rcnn::rcnn_accuracy(
            &scores,
            classes,
            &sampled.labels,
            &sampled.weights,
        ))
    }

    /// The second stage's train feeds for a batch, from the first stage's outputs of the same
    /// run (the train graph's RPN maps): proposals, sampled RoIs and their targets.
    pub fn rcnn_train_feeds(
        &self,
        rpn: &BTreeMap<String, HostTensor>,
        targets: &[DenseTargets],
        batch_shape: (usize, usize),
    ) -> Result<BTreeMap<String, HostTensor>, FeedError> {
        let (p, r) = self.two_stage().ok_or(FeedError::NotTwoStage)?;
        let n = targets.len();
        let img_shapes: Vec<(usize, usize)> = targets.iter().map(|t| t.img_shape).collect();
        let props = self.batch_proposals(rpn, batch_shape, &img_shapes, true)?;
        let samples: Vec<_> = (targets.iter().zip(&props))
            .map(|(t, p)| rcnn_samples(&p.boxes, &t.gt, r, &mut Rng::seed(t.seed)))
            .collect();
        let per = r.sampler.num;
        let rois: Vec<&[BBox<f32>]> = samples.iter().map(|s| s.rois.as_slice()).collect();
        let mut f = roi_feeds(p, &roi_batch_of(p, &rois, per))?;
        let rows = n * per;
        let k = if r.reg_class_agnostic {
            4
        } else {
            4 * r.num_classes
        };
        let mut labels = vec![r.num_classes as i32; rows];
        let mut lw = vec![0f32; rows];
        let mut bt = vec![0f32; rows * k];
        let mut bw = vec![0f32; rows * k];
        for (i, s) in samples.iter().enumerate() {
            for j in 0..s.rois.len().min(per) {
                let row = i * per + j;
                labels[row] = s.labels[j] as i32;
                lw[row] = s.label_weights[j];
                if j < s.num_pos {
                    let at = row * k + if k == 4 { 0 } else { 4 * s.labels[j] };
                    bt[at..at + 4].copy_from_slice(&s.bbox_targets[j]);
                    bw[at..at + 4].fill(1.0);
                }
            }
        }
        let sampled: usize = samples.iter().map(|s| s.rois.len().min(per)).sum();
        let weighted = lw.iter().filter(|&&w| w > 0.0).count();
        let tensor = |shape: Vec<usize>, data: Vec<f32>, name: &'static str| {
            HostTensor::f32(shape, data).map_err(|source| FeedError::Length { name, source })
        };
        f.insert(
            RCNN_LABELS.into(),
            HostTensor::i32(vec![rows], labels).map_err(|source| FeedError::Length {
                name: RCNN_LABELS,
                source,
            })?,
        );
        f.insert(
            RCNN_LABEL_WEIGHTS.into(),
            tensor(vec![rows], lw, RCNN_LABEL_WEIGHTS)?,
        );
        f.insert(
            RCNN_BBOX_TARGETS.into(),
            tensor(vec![rows, k], bt, RCNN_BBOX_TARGETS)?,
        );
        f.insert(
            RCNN_BBOX_WEIGHTS.into(),
            tensor(vec![rows, k], bw, RCNN_BBOX_WEIGHTS)?,
        );
        // `BBoxHead.loss`: max(Σ(label_weights > 0), 1) and the number of sampled RoIs.
        f.insert(
            RCNN_CLS_AVG.into(),
            HostTensor::scalar(DType::F32, weighted.max(1) as f64),
        );
        f.insert(
            RCNN_BBOX_AVG.into(),
            HostTensor::scalar(DType::F32, sampled.max(1) as f64),
        );
        Ok(f)
    }

    /// RoIs per image of the second stage at test time (`test_cfg.rpn.max_per_img`).
    pub fn rcnn_eval_rois(&self) -> usize {
        match &self.cfg {
            DetectorConfig::FasterRcnn(p) => p.test_cfg.rpn.max_per_img,
            _ => 0,
        }
    }

    /// The second stage's eval graph for `rois` RoIs over features of `feat_shapes` (the eval
    /// graph's `feat.{l}` outputs, fed back as inputs): outputs `rcnn_cls_score`, `rcnn_bbox_pred`.
    pub fn rcnn_eval_graph(
        &self,
        rois: usize,
        feat_shapes: &[Vec<usize>],
        float: DType,
    ) -> Result<Graph, GraphError> {
        let (p, _) = self
            .two_stage()
            .ok_or_else(|| GraphError::Invalid("not a two-stage detector".into()))?;
        let mut b = GraphBuilder::new(float);
        let feats: Vec<NodeId> = (feat_shapes.iter().enumerate())
            .map(|(l, s)| b.input(&feat_name(l), s, float))
            .collect::<Result<_, _>>()?;
        let mut l = Layers {
            b: &mut b,
            train: false,
            ranks: 1,
        };
        let (cls, reg) = build_roi_head(&mut l, head(p), &feats, rois)?;
        b.output(RCNN_CLS, cls)?;
        b.output(RCNN_REG, reg)?;
        Ok(b.finish())
    }

    /// The second stage's feeds for RoIs laid out by [`Detector::rcnn_roi_batch`].
    pub fn rcnn_eval_feeds(
        &self,
        batch: &RoiBatch,
    ) -> Result<BTreeMap<String, HostTensor>, FeedError> {
        let (p, _) = self.two_stage().ok_or(FeedError::NotTwoStage)?;
        roi_feeds(p, batch)
    }

    /// Each image's RoIs padded to `per_image` rows for the second stage.
    pub fn rcnn_roi_batch(&self, rois: &[&[BBox<f32>]], per_image: usize) -> Option<RoiBatch> {
        let (p, _) = self.two_stage()?;
        Some(roi_batch_of(p, rois, per_image))
    }

    /// Image `i`'s detections from the second stage's eval outputs over `batch` (rescaled to
    /// the original image by `scale_factor`).
    pub fn rcnn_detections_of(
        &self,
        out: &BTreeMap<String, HostTensor>,
        batch: &RoiBatch,
        rois: &[BBox<f32>],
        i: usize,
        img_shape: (usize, usize),
        scale_factor: [f32; 4],
    ) -> Result<Detections, FeedError> {
        let (p, r) = self.two_stage().ok_or(FeedError::NotTwoStage)?;
        let get = |name: &str| {
            (out.get(name).and_then(|t| t.as_f32()))
                .ok_or_else(|| FeedError::MissingOutput(name.into()))
        };
        let (cls, reg) = (get(RCNN_CLS)?, get(RCNN_REG)?);
        let per = batch.counts.len().max(1);
        let rows = cls.len() / (r.num_classes + 1);
        let per_image = rows / per;
        let (kc, kr) = (r.num_classes + 1, reg.len() / rows.max(1));
        let n = batch.counts[i];
        let at = i * per_image;
        Ok(rcnn_detections(
            &rois[..n],
            &cls[at * kc..(at + n) * kc],
            &reg[at * kr..(at + n) * kr],
            r.num_classes,
            &r.coder,
            &p.test_cfg.rcnn,
            img_shape,
            scale_factor,
        ))
    }
}

fn roi_batch_of(p: &FasterRcnnParts, rois: &[&[BBox<f32>]], per_image: usize) -> RoiBatch {
    let RoiExtractorConfig::SingleRoiExtractor(e) = &head(p).bbox_roi_extractor;
    roi_batch(
        rois,
        per_image,
        e.featmap_strides.len(),
        e.finest_scale as f32,
    )
}

fn roi_feeds(p: &FasterRcnnParts, b: &RoiBatch) -> Result<BTreeMap<String, HostTensor>, FeedError> {
    let levels = extractor_levels(head(p));
    let rows = b.rois.len() / 5;
    let mut f = BTreeMap::new();
    let t = |shape, data: &[f32], name| {
        HostTensor::f32(shape, data.to_vec()).map_err(|source| FeedError::Length { name, source })
    };
    f.insert(ROIS.into(), t(vec![rows, 5], &b.rois, ROIS)?);
    f.insert(
        ROI_LEVEL_MASKS.into(),
        t(vec![rows, levels], &b.level_masks, ROI_LEVEL_MASKS)?,
    );
    Ok(f)
}
