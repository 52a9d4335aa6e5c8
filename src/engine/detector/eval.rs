//! Evaluation of a detector task: the eval graphs of each batch shape, decoding their outputs
//! into detections (one-stage post-processing, an RPN's proposals, a two-stage detector's
//! second stage), gathering the ranks' results, and VOC mAP over the val records.

use super::{DetectorTask, EvalGraph, ImageResult, err};
use crate::data::Dataset;
use crate::engine::on_device::executor_on;
use crate::engine::params::ParamSet;
use crate::engine::step::ShapeKey;
use crate::engine::task::{Metrics, TaskError};
use crate::ir::DType;
use crate::model::anchor::point_grid;
use crate::model::config::DetectorConfig;
use crate::model::net::{GraphMode, feat_name};
use crate::model::postprocess::{Decoder, Detections, LevelOutput, postprocess};
use crate::model::proposals::Proposals;
use crate::model::target::TargetBuilder;
use std::collections::HashMap;
impl DetectorTask {
    pub(super) fn eval_graph(&mut self, key: ShapeKey) -> Result<(), TaskError> {
        if !self.eval_graphs.contains_key(&key) {
            let built = (self.step.detector())
                .build(GraphMode::Eval, key.0, (key.1, key.2), DType::F32)
                .map_err(|e| err(format!("building the eval graph for {key:?}: {e}")))?;
            self.eval_graphs.insert(
                key,
                EvalGraph {
                    heads: built.heads,
                    featmap_sizes: built.featmap_sizes,
                    exec: executor_on(self.step.device(), built.graph),
                },
            );
        }
        Ok(())
    }

    /// Post-process image `i` of an eval batch of `n` images.
    pub(super) fn decode(
        &self,
        g: &EvalGraph,
        out: &crate::engine::RunOutputs,
        n: usize,
        i: usize,
        meta: &crate::data::ImageMeta,
    ) -> Result<Detections, TaskError> {
        let per = |name: &str| -> Result<&[f32], TaskError> {
            let v = out
                .outputs
                .get(name)
                .and_then(|t| t.as_f32())
                .ok_or_else(|| err(format!("the eval graph has no f32 output `{name}`")))?;
            let k = v.len() / n;
            Ok(&v[i * k..(i + 1) * k])
        };
        let mut levels = Vec::with_capacity(g.heads.len());
        for h in &g.heads {
            levels.push(LevelOutput {
                cls: per(&h.cls)?,
                reg: per(&h.reg)?,
                centerness: match &h.centerness {
                    Some(c) => Some(per(c)?),
                    None => None,
                },
                h: h.size.0,
                w: h.size.1,
            });
        }
        let detector = self.step.detector();
        let img_shape = (meta.img_shape[0], meta.img_shape[1]);
        let nc = detector.num_classes();
        let dets = match (&detector.cfg, detector.target_builder()) {
            (DetectorConfig::Retinanet(p) | DetectorConfig::Fcos(p), TargetBuilder::Anchor(t)) => {
                let anchors = t
                    .anchor_generator
                    .grid_anchors(&g.featmap_sizes)
                    .map_err(err)?;
                let dec = Decoder::Delta {
                    anchors: &anchors,
                    coder: &t.bbox_coder,
                };
                postprocess(
                    &levels,
                    &dec,
                    nc,
                    &p.test_cfg,
                    img_shape,
                    meta.scale_factor,
                    true,
                )
            }
            (DetectorConfig::Retinanet(p) | DetectorConfig::Fcos(p), TargetBuilder::Point(t)) => {
                let strides: Vec<(f64, f64)> = t.strides.iter().map(|&s| (s, s)).collect();
                let pts = point_grid(&strides, &g.featmap_sizes, 0.5);
                let coder = Default::default();
                let scale: Vec<f32> = t
                    .strides
                    .iter()
                    .map(|&s| if t.norm_on_bbox { s as f32 } else { 1.0 })
                    .collect();
                let dec = Decoder::Distance {
                    points: &pts,
                    coder: &coder,
                    scale: &scale,
                };
                postprocess(
                    &levels,
                    &dec,
                    nc,
                    &p.test_cfg,
                    img_shape,
                    meta.scale_factor,
                    true,
                )
            }
            (DetectorConfig::Rpn(_) | DetectorConfig::FasterRcnn(_), _) => {
                return Err(err("one-stage decoding asked of a detector with an RPN"));
            }
        };
        dets.map_err(err)
    }
}

impl DetectorTask {
    /// The detections of an eval batch of a detector with an RPN, from its eval graph's
    /// `out` (`None` for a one-stage detector: [`DetectorTask::decode`] per image). An RPN's
    /// are its proposals (`test_cfg.rpn`), rescaled to the original image as mmdetection's
    /// `RPN.simple_test` does, as class-0 detections; a two-stage detector's come from its
    /// second stage on those proposals.
    pub(super) fn batch_detections(
        &mut self,
        params: &ParamSet,
        key: ShapeKey,
        out: &crate::engine::RunOutputs,
        metas: &[crate::data::ImageMeta],
    ) -> Result<Option<Vec<Detections>>, TaskError> {
        let det = self.step.detector();
        if !det.cfg.is_proposal_net() && !det.is_two_stage() {
            return Ok(None);
        }
        let img_shapes: Vec<(usize, usize)> = (metas.iter())
            .map(|m| (m.img_shape[0], m.img_shape[1]))
            .collect();
        let props =
            (det.batch_proposals(&out.outputs, (key.1, key.2), &img_shapes, false)).map_err(err)?;
        if !det.is_two_stage() {
            let rescaled = (props.into_iter().zip(metas)).map(|(p, m)| Detections {
                bboxes: (p.boxes.iter())
                    .map(|b| std::array::from_fn(|k| b[k] / m.scale_factor[k]))
                    .collect(),
                labels: vec![0; p.scores.len()],
                scores: p.scores,
            });
            return Ok(Some(rescaled.collect()));
        }
        self.second_stage(params, key, out, metas, &props).map(Some)
    }

    /// A two-stage detector's detections of an eval batch: the second stage on the first
    /// stage's features (`out`) and its proposals.
    fn second_stage(
        &mut self,
        params: &ParamSet,
        key: ShapeKey,
        out: &crate::engine::RunOutputs,
        metas: &[crate::data::ImageMeta],
        props: &[Proposals],
    ) -> Result<Vec<Detections>, TaskError> {
        let det = self.step.detector();
        let n = metas.len();
        let img_shape = |m: &crate::data::ImageMeta| (m.img_shape[0], m.img_shape[1]);
        let refs: Vec<&[[f32; 4]]> = props.iter().map(|p| p.boxes.as_slice()).collect();
        let per = det.rcnn_eval_rois();
        let batch =
            (det.rcnn_roi_batch(&refs, per)).ok_or_else(|| err("not a two-stage detector"))?;
        let mut feeds = det.rcnn_eval_feeds(&batch).map_err(err)?;
        let mut shapes = Vec::new();
        while let Some(t) = out.outputs.get(&feat_name(shapes.len())) {
            feeds.insert(feat_name(shapes.len()), t.clone());
            shapes.push(t.shape.clone());
        }
        if !self.rcnn_graphs.contains_key(&key) {
            let graph = (det.rcnn_eval_graph(n * per, &shapes, DType::F32))
                .map_err(|e| err(format!("building the second stage's eval graph: {e}")))?;
            let exec = executor_on(self.step.device(), graph);
            self.rcnn_graphs.insert(key, exec);
        }
        let exec = self.rcnn_graphs.get_mut(&key).expect("inserted above");
        let o = exec.run(params, &feeds).map_err(err)?;
        let det = self.step.detector();
        (metas.iter().enumerate())
            .map(|(i, m)| {
                det.rcnn_detections_of(
                    &o.outputs,
                    &batch,
                    &props[i].boxes,
                    i,
                    img_shape(m),
                    m.scale_factor,
                )
                .map_err(err)
            })
            .collect()
    }

    /// Every rank's evaluated images in the order one process evaluates them (global batch
    /// by global batch, rank by rank), each image once (the last global batch wraps around
    /// to the first images): image ids and their detections.
    pub(super) fn collect_results(
        &self,
        shard: Vec<Vec<ImageResult>>,
    ) -> Result<(Vec<i64>, Vec<crate::model::postprocess::CocoDetection>), TaskError> {
        let shards = match self.step.dist() {
            None => vec![shard],
            Some(d) => {
                let mine = serde_json::to_vec(&shard).map_err(err)?;
                let all = d.all_gather_bytes(&mine).map_err(err)?;
                (all.iter())
                    .map(|b| serde_json::from_slice::<Vec<Vec<ImageResult>>>(b))
                    .collect::<Result<_, _>>()
                    .map_err(|e| err(format!("evaluation results from another rank: {e}")))?
            }
        };
        let batches = shards.iter().map(Vec::len).max().unwrap_or(0);
        let mut seen = std::collections::HashSet::new();
        let (mut img_ids, mut dets) = (Vec::new(), Vec::new());
        let mut shards: Vec<_> = shards.into_iter().map(Vec::into_iter).collect();
        for _ in 0..batches {
            for s in &mut shards {
                for image in s.next().into_iter().flatten() {
                    if seen.insert(image.img_id) {
                        img_ids.push(image.img_id as i64);
                        dets.extend(image.dets);
                    }
                }
            }
        }
        Ok((img_ids, dets))
    }
}

/// VOC mAP at IoU 0.5 (mmdetection's VOC `evaluate`): detections of the evaluated images
/// against their records' boxes, difficult/crowd boxes ignored per class.
pub(super) fn voc_map(
    dataset: &Dataset,
    img_ids: &[i64],
    dets: &[crate::model::postprocess::CocoDetection],
    cat_ids: &[u64],
) -> Result<Metrics, TaskError> {
    use crate::eval::voc::{ApMode, ImageDetections, VocAnnotation, voc_metrics};
    let record_of: HashMap<u64, &crate::data::Record> =
        dataset.records.iter().map(|r| (r.id, r)).collect();
    let slot_of: HashMap<i64, usize> = (img_ids.iter().enumerate()).map(|(k, &i)| (i, k)).collect();
    let label_of: HashMap<u64, usize> =
        (cat_ids.iter().enumerate()).map(|(l, &c)| (c, l)).collect();
    let corners = |b: &[f32; 4]| b.map(f64::from);
    let mut anns = Vec::with_capacity(img_ids.len());
    for &id in img_ids {
        let r = record_of
            .get(&(id as u64))
            .ok_or_else(|| err(format!("image {id} was evaluated but is not in data.val")))?;
        anns.push(VocAnnotation {
            bboxes: r.boxes.iter().map(corners).collect(),
            labels: r.labels.iter().map(|&l| l as usize).collect(),
            bboxes_ignore: r.ignored.iter().map(corners).collect(),
            labels_ignore: r.ignored_labels.iter().map(|&l| l as usize).collect(),
        });
    }
    let mut results: Vec<ImageDetections> = vec![vec![Vec::new(); cat_ids.len()]; img_ids.len()];
    for d in dets {
        let (Some(&k), Some(&l)) = (
            slot_of.get(&(d.image_id as i64)),
            label_of.get(&d.category_id),
        ) else {
            return Err(err(format!(
                "a detection of image {} / category {} has no evaluated image or class",
                d.image_id, d.category_id
            )));
        };
        let [x, y, w, h] = d.bbox;
        results[k][l].push([x, y, x + w, y + h, d.score]);
    }
    let m = voc_metrics(&results, &anns, &[0.5], ApMode::Area).map_err(err)?;
    Ok(m.into_iter().collect())
}
