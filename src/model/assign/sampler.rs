//! mmdetection's `RandomSampler` over an assignment: which positives and negatives train.

use crate::model::config::RandomSamplerConfig;
use crate::util::rng::Rng;

/// The sampled priors of one image, each list in ascending index order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sampled {
    pub pos: Vec<usize>,
    pub neg: Vec<usize>,
}

/// Samples an assignment (`gt_inds`: `> 0` positive, `0` negative, `-1` ignored) as
/// `RandomSampler.sample` does: at most `num · pos_fraction` positives (`int()`, truncated),
/// then `num` minus the positives drawn from the negatives, at most `neg_pos_ub` times the
/// positives (at least one) when `neg_pos_ub >= 0`. Each draw is uniform without replacement
/// (`randperm(len)[:k]`); a gallery no larger than its quota is taken whole.
pub fn random_sample(gt_inds: &[i64], cfg: &RandomSamplerConfig, rng: &mut Rng) -> Sampled {
    let pos: Vec<usize> = (0..gt_inds.len()).filter(|&i| gt_inds[i] > 0).collect();
    let neg: Vec<usize> = (0..gt_inds.len()).filter(|&i| gt_inds[i] == 0).collect();
    let pos = choose(pos, (cfg.num as f64 * cfg.pos_fraction) as usize, rng);
    let mut neg_quota = cfg.num.saturating_sub(pos.len());
    if cfg.neg_pos_ub >= 0.0 {
        let upper = (cfg.neg_pos_ub * pos.len().max(1) as f64) as usize;
        neg_quota = neg_quota.min(upper);
    }
    let neg = choose(neg, neg_quota, rng);
    Sampled { pos, neg }
}

/// `k` of `gallery` uniformly without replacement (a partial Fisher–Yates shuffle), sorted.
fn choose(mut gallery: Vec<usize>, k: usize, rng: &mut Rng) -> Vec<usize> {
    if gallery.len() <= k {
        return gallery;
    }
    for i in 0..k {
        let j = i + rng.below((gallery.len() - i) as u64) as usize;
        gallery.swap(i, j);
    }
    gallery.truncate(k);
    gallery.sort_unstable();
    gallery
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(num: usize, pos_fraction: f64, neg_pos_ub: f64) -> RandomSamplerConfig {
        RandomSamplerConfig {
            num,
            pos_fraction,
            neg_pos_ub,
            add_gt_as_proposals: false,
        }
    }

    #[test]
    fn quotas_follow_mmdetection() {
        // 10 positives, 100 negatives, 5 ignored.
        let mut g = vec![1i64; 10];
        g.extend(vec![0; 100]);
        g.extend(vec![-1; 5]);
        let mut rng = Rng::seed(3);
        let s = random_sample(&g, &cfg(16, 0.5, -1.0), &mut rng);
        assert_eq!((s.pos.len(), s.neg.len()), (8, 8));
        assert!(s.pos.iter().all(|&i| i < 10) && s.neg.iter().all(|&i| (10..110).contains(&i)));
        // Few positives: negatives fill the rest of `num`.
        let s = random_sample(&g, &cfg(256, 0.5, -1.0), &mut rng);
        assert_eq!((s.pos.len(), s.neg.len()), (10, 100));
        let s = random_sample(&g, &cfg(64, 0.25, -1.0), &mut rng);
        assert_eq!((s.pos.len(), s.neg.len()), (10, 54));
        // neg_pos_ub caps negatives per positive; with no positives it counts one.
        let s = random_sample(&g, &cfg(256, 0.5, 3.0), &mut rng);
        assert_eq!(s.neg.len(), 30);
        let s = random_sample(&[0; 50], &cfg(256, 0.5, 3.0), &mut rng);
        assert_eq!((s.pos.len(), s.neg.len()), (0, 3));
    }

    #[test]
    fn draws_are_uniform_without_replacement() {
        let g = vec![0i64; 10];
        let mut rng = Rng::seed(7);
        let mut hits = [0usize; 10];
        for _ in 0..20_000 {
            let s = random_sample(&g, &cfg(3, 0.5, -1.0), &mut rng);
            assert_eq!(s.neg.len(), 3);
            assert!(s.neg.windows(2).all(|w| w[0] < w[1]));
            s.neg.iter().for_each(|&i| hits[i] += 1);
        }
        // Each index is drawn with probability 3/10: 6000 expected, sd ≈ 65.
        assert!(hits.iter().all(|&h| (5700..6300).contains(&h)), "{hits:?}");
    }
}
