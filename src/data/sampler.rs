//! Batch samplers: sequential, shuffled, aspect-ratio grouped, split over distributed ranks,
//! finite (one epoch) or infinite (epochs follow each other). An epoch's batches are a pure
//! function of (seed, epoch, rank, world), so a position `(epoch, batch)` saved in a
//! checkpoint restores the exact remaining batches without touching any data.
//!
//! With `world` ranks of `b` images each, every step's global batch of `world·b` images is
//! formed exactly as one rank with batch `world·b` would form it, then dealt: rank `r` takes
//! slots `r·b .. (r+1)·b`. So N ranks and one rank see the same images in the same steps
//! (data-parallel training equals large-batch training), and the ranks' shards are disjoint
//! up to the wrap-around padding.
//!
//! Every batch is full (static shapes): like mmdetection's group samplers, each group (or
//! the whole index list) is padded by wrapping around to a multiple of the global batch size.

use super::config::SamplerConfig;
use super::error::{DataError, Result};
use super::limits::MAX_BATCH;
use crate::util::rng::Rng;
use serde::{Deserialize, Serialize};

/// A sampler position: the next batch to hand out is batch `batch` of epoch `epoch`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SamplerState {
    pub epoch: u64,
    pub batch: u64,
}

/// Draws batches of dataset indices for one rank.
#[derive(Clone, Debug)]
pub struct BatchSampler {
    shuffle: bool,
    group: bool,
    infinite: bool,
    batch_size: usize,
    rank: usize,
    world: usize,
    seed: u64,
    /// Aspect-ratio group of each dataset index.
    groups: Vec<u8>,
    state: SamplerState,
    /// The current epoch's batches for this rank (cache of `epoch_batches(state.epoch)`).
    cache: Option<(u64, Vec<Vec<usize>>)>,
}

impl BatchSampler {
    /// A sampler over a dataset whose images have the given aspect groups
    /// ([`super::Dataset::aspect_groups`]), for `rank` of `world`.
    pub fn new(
        cfg: &SamplerConfig,
        groups: Vec<u8>,
        batch_size: usize,
        rank: usize,
        world: usize,
        seed: u64,
    ) -> Result<BatchSampler> {
        if groups.is_empty() {
            return Err(DataError::Config("the dataset has no images".into()));
        }
        if batch_size > MAX_BATCH {
            return Err(DataError::Config(format!(
                "`data.samples_per_gpu` = {batch_size} is more than the {MAX_BATCH} images a batch may hold"
            )));
        }
        if batch_size == 0 || world == 0 || rank >= world {
            return Err(DataError::Config(format!(
                "sampler: needs batch size > 0 and rank < world (batch {batch_size}, rank {rank}, world {world})"
            )));
        }
        let (shuffle, group, infinite) = match cfg {
            SamplerConfig::SequentialSampler {} => (false, false, false),
            SamplerConfig::RandomSampler { shuffle } => (*shuffle, false, false),
            SamplerConfig::GroupSampler { shuffle } => (*shuffle, true, false),
            SamplerConfig::InfiniteSampler { shuffle, group } => (*shuffle, *group, true),
        };
        Ok(BatchSampler {
            shuffle,
            group,
            infinite,
            batch_size,
            rank,
            world,
            seed,
            groups,
            state: SamplerState::default(),
            cache: None,
        })
    }

    /// Whether epochs roll over without end.
    pub fn is_infinite(&self) -> bool {
        self.infinite
    }
    /// Images per batch.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }
    /// `(rank, world)`.
    pub fn rank_world(&self) -> (usize, usize) {
        (self.rank, self.world)
    }
    /// The seed the permutations derive from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Images in one step over all ranks.
    pub fn global_batch_size(&self) -> usize {
        self.batch_size * self.world
    }

    /// Number of batches each rank gets per epoch (the same for every epoch).
    pub fn batches_per_epoch(&self) -> usize {
        let bs = self.global_batch_size();
        if self.group {
            let ones = self.groups.iter().filter(|&&g| g == 1).count();
            ones.div_ceil(bs) + (self.groups.len() - ones).div_ceil(bs)
        } else {
            self.groups.len().div_ceil(bs)
        }
    }

    /// This rank's batches of `epoch`, in order: its slice of each global batch.
    pub fn epoch_batches(&self, epoch: u64) -> Vec<Vec<usize>> {
        let (b, r) = (self.batch_size, self.rank);
        (self.global_batches(epoch).into_iter())
            .map(|g| g[r * b..(r + 1) * b].to_vec())
            .collect()
    }

    /// The global batches of `epoch` (`world·b` images each), as one rank would draw them.
    fn global_batches(&self, epoch: u64) -> Vec<Vec<usize>> {
        let bs = self.global_batch_size();
        let mut rng = Rng::stream(self.seed, epoch);
        let mut batches: Vec<Vec<usize>> = Vec::new();
        if self.group {
            for g in [0u8, 1] {
                let mut idx: Vec<usize> = (0..self.groups.len())
                    .filter(|&i| self.groups[i] == g)
                    .collect();
                if idx.is_empty() {
                    continue;
                }
                if self.shuffle {
                    rng.shuffle(&mut idx);
                }
                let padded = wrap_to(&idx, idx.len().div_ceil(bs) * bs);
                batches.extend(padded.chunks(bs).map(<[usize]>::to_vec));
            }
            if self.shuffle {
                rng.shuffle(&mut batches);
            }
        } else {
            let mut idx: Vec<usize> = (0..self.groups.len()).collect();
            if self.shuffle {
                rng.shuffle(&mut idx);
            }
            let padded = wrap_to(&idx, idx.len().div_ceil(bs) * bs);
            batches.extend(padded.chunks(bs).map(<[usize]>::to_vec));
        }
        batches
    }

    /// The position of the next batch.
    pub fn state(&self) -> SamplerState {
        self.state
    }

    /// Restore a saved position (resume). No data is read.
    pub fn restore(&mut self, state: SamplerState) {
        self.state = state;
    }

    /// Start `epoch` from its first batch (mmdetection's `DistSamplerSeedHook`).
    pub fn set_epoch(&mut self, epoch: u64) {
        self.state = SamplerState { epoch, batch: 0 };
    }

    /// The batches left in the current epoch from the current position.
    pub fn remaining(&mut self) -> Vec<Vec<usize>> {
        let pos = self.state.batch as usize;
        let b = self.current();
        b.get(pos.min(b.len())..).unwrap_or(&[]).to_vec()
    }

    fn current(&mut self) -> &Vec<Vec<usize>> {
        let e = self.state.epoch;
        if self.cache.as_ref().is_none_or(|(ce, _)| *ce != e) {
            self.cache = Some((e, self.epoch_batches(e)));
        }
        &self.cache.as_ref().expect("filled above").1
    }

    /// The next batch and its position, advancing. A finite sampler returns `None` at the
    /// end of an epoch (call [`set_epoch`](Self::set_epoch) for the next one); an infinite
    /// one moves on to the next epoch.
    pub fn next_batch(&mut self) -> Option<(SamplerState, Vec<usize>)> {
        loop {
            let pos = self.state;
            let b = self.current().get(pos.batch as usize).cloned();
            match b {
                Some(b) => {
                    self.state.batch += 1;
                    return Some((pos, b));
                }
                None if self.infinite => self.set_epoch(pos.epoch + 1),
                None => return None,
            }
        }
    }
}

/// `items` repeated cyclically to length `n` (`n >= items.len()`, items non-empty).
fn wrap_to<T: Clone>(items: &[T], n: usize) -> Vec<T> {
    items.iter().cycle().take(n).cloned().collect()
}
