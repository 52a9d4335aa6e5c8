//! The checks only building the model can make, on whatever part of the recipe typed cleanly
//! (so they are reported with every other error of the file): the backbone, neck and head
//! graphs are built part by part and the channels and strides they produce compared (E0407,
//! E0408), the pad divisor against the backbone's largest stride (E0409); then, when the
//! whole recipe typed, the model validates its settings (E0501) and its train graph is built
//! at the recipe's batch shape (E0502).

use super::default_shape;
use crate::data::config::{DataConfig, TransformConfig};
use crate::ir::DType;
use crate::model::config::ModelConfigError;
use crate::model::config::{BackboneConfig, DetectorConfig, HeadConfig, NeckConfig};
use crate::model::net::probe::{
    FeatureMap, backbone_outputs, check_backbone, check_neck, known_depth, neck_levels,
};
use crate::model::net::{Detector, GraphMode};
use crate::recipe::{Diagnostic, Diagnostics, SpanTable};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The side of the square image the parts are probed at: a power of two, so every stride
/// up to 4096 divides it exactly.
const PROBE_SIDE: usize = 4096;

struct Ctx<'a> {
    spans: &'a SpanTable,
    diags: &'a mut Diagnostics,
}

fn get<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, k| match v {
        Value::Object(m) => m.get(k),
        Value::Array(a) => a.get(k.parse::<usize>().ok()?),
        _ => None,
    })
}

/// The part at `path` when it typed cleanly (a value with a type error is null in the config
/// and was reported already).
fn typed<T: DeserializeOwned>(config: &Value, path: &str) -> Option<T> {
    serde_json::from_value(get(config, path)?.clone()).ok()
}

/// Runs every model check on `config` (possibly with errors elsewhere).
pub fn check(config: &Value, spans: &SpanTable, diags: &mut Diagnostics) {
    let mut x = Ctx { spans, diags };
    let found = x.diags.0.len();
    let data: Option<DataConfig> = typed(config, "data");
    let Some(backbone) = typed::<BackboneConfig>(config, "model.backbone") else {
        return;
    };
    let Some(outputs) = x.backbone(&backbone) else {
        return;
    };
    if let Some(d) = &data {
        x.pad_divisor(d, &outputs);
        x.image_channels(d, &backbone);
    }
    let neck: Option<NeckConfig> = typed(config, "model.neck");
    let levels = neck.as_ref().and_then(|n| x.neck(n, &backbone, &outputs));
    for key in ["bbox_head", "rpn_head"] {
        let path = format!("model.{key}");
        if let (Some(NeckConfig::Fpn(fpn)), Some(head)) =
            (&neck, typed::<HeadConfig>(config, &path))
        {
            x.head(
                &path,
                &head,
                fpn.out_channels,
                fpn.num_outs,
                levels.as_deref(),
            );
        }
    }
    // The whole model, once its parts agree.
    if x.diags.0.len() == found
        && let (Some(model), Some(data)) = (typed::<DetectorConfig>(config, "model"), &data)
    {
        x.model_builds(model, data);
    }
}

impl Ctx<'_> {
    fn err(&self, code: &'static str, path: &str, msg: String, label: &str) -> Diagnostic {
        Diagnostic::error(code, msg).with_label_opt(self.spans.nearest(path), label.to_string())
    }

    /// Labels every path of `paths` the recipe wrote (defaults have no text), or `fallback`
    /// when it wrote none of them: the message names every setting involved.
    fn with_written(
        &self,
        mut d: Diagnostic,
        paths: &[(&str, String)],
        fallback: (&str, String),
    ) -> Diagnostic {
        let mut any = false;
        for (p, label) in paths {
            if let Some(l) = self.spans.get(p) {
                d = d.with_label(l, label.clone());
                any = true;
            }
        }
        if any {
            d
        } else {
            d.with_label_opt(self.spans.nearest(fallback.0), fallback.1)
        }
    }

    /// E0501 for a part (`model.backbone`) that cannot be built: labelled on each of its
    /// settings the message names that the recipe wrote (the user's line first), else on
    /// the part.
    fn cannot_build(&self, part: &str, what: &str, why: &str) -> Diagnostic {
        let why = why.strip_prefix(&format!("{what}: ")).unwrap_or(why);
        let mut d = Diagnostic::error("E0501", format!("the {what} cannot be built: {why}"));
        let mut any = false;
        for word in why.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            let path = format!("{part}.{word}");
            if (word.contains('_') || word.len() > 3)
                && let Some(l) = self.spans.get(&path)
            {
                d = d.with_label(l, format!("the {what} cannot be built with this"));
                any = true;
            }
        }
        if any {
            d
        } else {
            d.with_label_opt(self.spans.nearest(part), format!("this {what}"))
        }
    }

    /// E0501 on the one setting of a part (`what`: `backbone`) that its own checks refuse.
    fn refused_setting(&mut self, what: &str, e: ModelConfigError) {
        let label = format!("the {what} cannot be built with this");
        let msg = format!("the {what} cannot be built: {}", e.msg);
        let mut d = self.err("E0501", &format!("model.{}", e.path), msg, &label);
        for p in &e.also {
            if let Some(l) = self.spans.get(&format!("model.{p}")) {
                d = d.with_label(l, label.clone());
            }
        }
        self.diags.push(d);
    }

    /// The backbone's outputs, built at the probe size; E0304/E0501 when it cannot be built.
    fn backbone(&mut self, backbone: &BackboneConfig) -> Option<Vec<FeatureMap>> {
        let BackboneConfig::Resnet(bb) = backbone;
        if !known_depth(bb.depth) {
            let d = self
                .err(
                    "E0304",
                    "model.backbone.depth",
                    format!("there is no ResNet of depth {}", bb.depth),
                    "unknown depth",
                )
                .with_help("depths are 18, 34, 50, 101 and 152");
            self.diags.push(d);
            return None;
        }
        if let Err(e) = check_backbone(backbone) {
            self.refused_setting("backbone", e);
            return None;
        }
        match backbone_outputs(backbone, (PROBE_SIDE, PROBE_SIDE)) {
            Ok(o) => Some(o),
            Err(e) => {
                let d = self.cannot_build("model.backbone", "backbone", &e);
                self.diags.push(d);
                None
            }
        }
    }

    /// The neck's level strides; E0407 when its `in_channels` are not the backbone's.
    fn neck(
        &mut self,
        neck: &NeckConfig,
        backbone: &BackboneConfig,
        outputs: &[FeatureMap],
    ) -> Option<Vec<usize>> {
        let NeckConfig::Fpn(fpn) = neck;
        let chans: Vec<usize> = outputs.iter().map(|m| m.channels).collect();
        if fpn.in_channels != chans {
            let BackboneConfig::Resnet(bb) = backbone;
            let (depth, base, idx) = (bb.depth, bb.base_channels, &bb.out_indices);
            let d = self
                .err(
                    "E0407",
                    "model.neck.in_channels",
                    format!(
                        "the neck takes {:?} channels but the backbone gives {chans:?}",
                        fpn.in_channels
                    ),
                    "does not match the backbone",
                )
                .with_help(format!("set `in_channels = {chans:?}`"));
            let d = self.with_written(
                d,
                &[
                    ("model.backbone.depth", format!("depth {depth}")),
                    (
                        "model.backbone.base_channels",
                        format!("base_channels {base}"),
                    ),
                    ("model.backbone.out_indices", format!("out_indices {idx:?}")),
                ],
                (
                    "model.backbone",
                    format!("resnet-{depth}, base_channels {base}, out_indices {idx:?}"),
                ),
            );
            self.diags.push(d);
        }
        if let Err(e) = check_neck(neck) {
            self.refused_setting("neck", e);
            return None;
        }
        match neck_levels(neck, outputs, PROBE_SIDE) {
            Ok(levels) => Some(levels.iter().map(|m| m.stride).collect()),
            // Fewer inputs than outputs: reported above as a channel mismatch.
            Err(_) if fpn.in_channels.len() != outputs.len() => None,
            Err(e) => {
                let d = self.cannot_build("model.neck", "neck", &e);
                self.diags.push(d);
                None
            }
        }
    }

    /// E0407 for a head that does not take the neck's channels, E0408 for head strides that
    /// are not the neck's level strides.
    fn head(
        &mut self,
        key: &str,
        head: &HeadConfig,
        neck_out: usize,
        num_outs: usize,
        levels: Option<&[usize]>,
    ) {
        let square = |a: &crate::model::anchor::AnchorGeneratorConfig| {
            (a.strides.iter())
                .map(|s| match s.wh() {
                    (w, h) if w == h && w.fract() == 0.0 && w >= 0.0 => Some(w as usize),
                    _ => None,
                })
                .collect::<Option<Vec<usize>>>()
        };
        let anchor_strides = format!("{key}.anchor_generator.strides");
        let (in_channels, strides, path, what) = match head {
            HeadConfig::RetinaHead(h) => (
                h.in_channels,
                square(h.anchors()),
                anchor_strides,
                "anchor strides",
            ),
            HeadConfig::RpnHead(h) => (
                h.in_channels,
                square(h.anchors()),
                anchor_strides,
                "anchor strides",
            ),
            HeadConfig::FcosHead(h) => (
                h.in_channels,
                Some(h.strides.clone()),
                format!("{key}.strides"),
                "head strides",
            ),
        };
        if in_channels != neck_out {
            let d = self
                .err(
                    "E0407",
                    &format!("{key}.in_channels"),
                    format!("the head takes {in_channels} channels but the neck gives {neck_out}"),
                    "does not match the neck",
                )
                .with_help(format!("set `in_channels = {neck_out}`"));
            self.diags.push(d);
        }
        if let (Some(hs), Some(levels)) = (strides, levels)
            && hs != levels
        {
            let d = self
                .err(
                    "E0408",
                    &path,
                    format!(
                        "the {what} are {hs:?} but the neck's {num_outs} levels have strides \
                         {levels:?}"
                    ),
                    "does not match the neck levels",
                )
                .with_label_opt(self.spans.nearest("model.neck.num_outs"), "levels")
                .with_help(format!("set `strides = {levels:?}`"));
            self.diags.push(d);
        }
    }

    /// The loader's images have three channels (`load_image` decodes RGB; `grayscale` repeats
    /// the luminance in all three): E0407 for a backbone that takes another count.
    fn image_channels(&mut self, data: &DataConfig, backbone: &BackboneConfig) {
        let BackboneConfig::Resnet(bb) = backbone;
        if bb.in_channels == 3 || data.train.is_none() && data.val.is_none() {
            return;
        }
        let d = self
            .err(
                "E0407",
                "model.backbone.in_channels",
                format!(
                    "the backbone takes {} channels but the data pipeline gives 3",
                    bb.in_channels
                ),
                "does not match the images",
            )
            .with_help(
                "set `in_channels = 3`: `load_image` decodes RGB, and `color_type = grayscale` \
                 repeats the luminance in all three channels",
            );
        self.diags.push(d);
    }

    /// The backbone's stages need inputs divisible by their stride (the extra FPN levels come
    /// from stride-2 convs, which pad themselves).
    fn pad_divisor(&mut self, data: &DataConfig, outputs: &[FeatureMap]) {
        let largest = outputs.iter().map(|m| m.stride).max().unwrap_or(1).max(1);
        let splits = [
            ("train", &data.train),
            ("val", &data.val),
            ("test", &data.test),
        ];
        for (split, ds) in splits {
            let Some(ds) = ds else { continue };
            for (i, stage) in ds.params().pipeline.iter().enumerate() {
                let TransformConfig::Pad(p) = stage else {
                    continue;
                };
                let Some(div) = p.size_divisor else { continue };
                if !(div as usize).is_multiple_of(largest) {
                    let path = format!("data.{split}.pipeline.{i}.size_divisor");
                    let d = self
                        .err(
                            "E0409",
                            &path,
                            format!(
                                "pad size_divisor {div} is not a multiple of the largest \
                                 backbone stride {largest}"
                            ),
                            "bad divisor",
                        )
                        .with_help(format!("use a multiple of {largest}"));
                    self.diags.push(d);
                }
            }
        }
    }

    /// E0501 for settings the model refuses, E0502 for a train graph that cannot be built
    /// at the recipe's batch shape.
    fn model_builds(&mut self, model: DetectorConfig, data: &DataConfig) {
        let det = match Detector::new(model) {
            Ok(d) => d,
            Err(e) => {
                let d = self.err(
                    "E0501",
                    &format!("model.{}", e.path),
                    e.to_string(),
                    "the model cannot be built with this",
                );
                self.diags.push(d);
                return;
            }
        };
        let shape = default_shape(data);
        if let Err(e) = det.build(GraphMode::Train, shape.batch, shape.hw, DType::F32) {
            let (h, w) = shape.hw;
            let d = self
                .err(
                    "E0502",
                    "model",
                    format!(
                        "the model's train graph cannot be built for a batch of {} x 3 x {h} x \
                         {w}: {e}",
                        shape.batch
                    ),
                    "this model",
                )
                .with_help(
                    "the batch shape comes from `data.samples_per_gpu` and the largest size \
                     `data.train.pipeline` can make (`mmrun plan` shows it)",
                );
            self.diags.push(d);
        }
    }
}
