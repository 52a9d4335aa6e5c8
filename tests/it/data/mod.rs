//! Integration tests of the `data` area: datasets and bad data, transforms (property tests),
//! samplers, the loader, the generated shapes dataset, the config schema.

mod bad_data;
mod config;
mod duplicates;
mod hostile;
mod images;
mod loader;
mod sampler;
mod synth;
mod transforms;
mod voc_xml;

use mmrun::data::synth::{SynthOptions, generate};
use std::path::Path;

/// A small generated dataset under `dir`.
pub fn small_synth(dir: &Path, images: usize, seed: u64) -> mmrun::data::SynthSummary {
    let opts = SynthOptions {
        images,
        seed,
        min_side: 40,
        max_side: 72,
        ..Default::default()
    };
    generate(dir, &opts).expect("generate")
}
