//! Datasets (COCO, VOC, generated shapes), transforms, samplers and the loader.
//!
//! Owns reading annotation files into [`Dataset`]s, the transform [`Pipeline`] that moves
//! boxes with pixels, the [`BatchSampler`] (shuffled / grouped / distributed / infinite, with
//! an exact resumable position), the threaded [`Loader`] that collates padded batches and
//! runs the caller's target closure in its workers, and the synthetic shapes dataset.
//! Knows nothing about models: target assignment is a closure it is given.

pub mod coco;
pub mod config;
pub mod dataset;
mod decode;
pub mod error;
pub mod image;
pub mod limits;
pub mod loader;
pub mod sample;
pub mod sampler;
pub mod synth;
pub mod transforms;
pub mod voc;
mod xml;

pub use coco::{ReadOptions, read_coco};
pub use config::{DataConfig, DatasetConfig, DatasetParams, SamplerConfig, TransformConfig};
pub use dataset::{BoxXyxy, ClassCount, Dataset, DatasetCounts, Record};
pub use error::{BadSampleLog, DataError, OnBadSample, Result, SkipCount};
pub use image::{Image, Pixels};
pub use loader::{Batch, Loader, LoaderOptions, TargetFn, build_dataset};
pub use sample::{ImageMeta, Sample};
pub use sampler::{BatchSampler, SamplerState};
pub use synth::{SynthOptions, SynthSummary, generate, generate_if_missing};
pub use transforms::{Pipeline, Transform};
pub use voc::read_voc;
pub use xml::XmlError;
