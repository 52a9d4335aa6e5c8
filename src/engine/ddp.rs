//! Data-parallel training's arithmetic over the ranks' [`Dist`], as PyTorch's
//! `DistributedDataParallel` and mmcv's distributed runner do it: parameters and buffers
//! broadcast from rank 0 at the start, gradients averaged in ~25 MB buckets in reverse
//! parameter order (each rank divides by the world size, then the ranks sum), buffers (batch
//! norm statistics) broadcast from rank 0 after each step, and the logged losses averaged
//! over ranks (mmcv's `_parse_losses`).
//!
//! The buckets are reduced after the backward pass, not overlapped with it: the graph
//! executor runs the backward as one call.

use crate::dist::{Dist, DistError};
use crate::engine::params::{ParamKind, ParamSet};

/// PyTorch DDP's default `bucket_cap_mb`.
const BUCKET_BYTES: usize = 25 * 1024 * 1024;

/// The data-parallel operations of one rank.
#[derive(Clone)]
pub struct DataParallel {
    dist: Dist,
}

impl DataParallel {
    pub fn new(dist: Dist) -> Self {
        DataParallel { dist }
    }

    pub fn dist(&self) -> &Dist {
        &self.dist
    }

    /// Every value (parameters and buffers) from rank 0, so all ranks start alike.
    pub fn broadcast_params(&self, params: &mut ParamSet) -> Result<(), DistError> {
        for p in params.iter_mut() {
            self.dist.broadcast_f32(p.values_mut(), 0)?;
        }
        Ok(())
    }

    /// Buffers (running statistics) from rank 0.
    pub fn broadcast_buffers(&self, params: &mut ParamSet) -> Result<(), DistError> {
        for p in params.iter_mut().filter(|p| p.kind == ParamKind::Buffer) {
            self.dist.broadcast_f32(p.values_mut(), 0)?;
        }
        Ok(())
    }

    /// Each trainable gradient replaced by its mean over ranks. Every rank receives the same
    /// bits, so the ranks' weights stay identical.
    pub fn average_gradients(&self, params: &mut ParamSet) -> Result<(), DistError> {
        let inv = 1.0 / self.dist.world() as f32;
        let order: Vec<usize> = (0..params.len())
            .rev()
            .filter(|&i| !params.at(i).grad.is_empty())
            .collect();
        let cap = BUCKET_BYTES / size_of::<f32>();
        let mut bucket: Vec<f32> = Vec::with_capacity(cap);
        let mut members: Vec<usize> = Vec::new();
        for (k, &i) in order.iter().enumerate() {
            bucket.extend(params.at(i).grad.iter().map(|&g| g * inv));
            members.push(i);
            if bucket.len() >= cap || k + 1 == order.len() {
                self.dist.all_reduce_sum_f32(&mut bucket)?;
                let mut at = 0;
                for &j in &members {
                    let g = &mut params.at_mut(j).grad;
                    let n = g.len();
                    g.copy_from_slice(&bucket[at..at + n]);
                    at += n;
                }
                bucket.clear();
                members.clear();
            }
        }
        Ok(())
    }

    /// Whether every rank holds the same bits in every value (parameters and buffers): the
    /// digest they share, or an error naming the ranks that differ from rank 0.
    pub fn check_in_sync(&self, params: &ParamSet) -> Result<String, DistError> {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for p in params.iter() {
            h.update(p.name.as_bytes());
            h.update(bytemuck::cast_slice::<f32, u8>(p.values()));
        }
        let mine: Vec<u8> = h.finalize().to_vec();
        let all = self.dist.all_gather_bytes(&mine)?;
        let differ: Vec<String> = (all.iter().enumerate())
            .filter(|(_, d)| **d != all[0])
            .map(|(r, _)| r.to_string())
            .collect();
        if !differ.is_empty() {
            return Err(DistError::Comm {
                rank: self.dist.rank(),
                message: format!(
                    "the weights of rank(s) {} differ from rank 0's: the ranks diverged",
                    differ.join(", ")
                ),
            });
        }
        Ok(mine.iter().take(8).map(|b| format!("{b:02x}")).collect())
    }

    /// The mean of each value over ranks.
    pub fn mean(&self, values: &mut [f64]) -> Result<(), DistError> {
        self.dist.all_reduce_sum_f64(values)?;
        let w = self.dist.world() as f64;
        values.iter_mut().for_each(|v| *v /= w);
        Ok(())
    }

    /// Whether any rank's flag is set.
    pub fn any(&self, flags: &mut [bool]) -> Result<(), DistError> {
        let mut v: Vec<u64> = flags.iter().map(|&f| u64::from(f)).collect();
        self.dist.all_reduce_max_u64(&mut v)?;
        flags.iter_mut().zip(v).for_each(|(f, x)| *f = x != 0);
        Ok(())
    }
}
