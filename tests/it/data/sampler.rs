//! Samplers: the distributed split across world sizes, epochs, and exact resume.

use mmrun::data::{BatchSampler, SamplerConfig, SamplerState};
use std::collections::BTreeSet;

fn groups(n: usize) -> Vec<u8> {
    // A mix of landscape (1) and portrait (0) images, uneven group sizes.
    (0..n).map(|i| u8::from(i % 3 != 0)).collect()
}

fn configs() -> Vec<SamplerConfig> {
    vec![
        SamplerConfig::SequentialSampler {},
        SamplerConfig::RandomSampler { shuffle: true },
        SamplerConfig::GroupSampler { shuffle: true },
    ]
}

#[test]
fn distributed_split_covers_every_index_with_equal_counts() {
    let n = 23;
    let g = groups(n);
    for cfg in configs() {
        for world in [1usize, 2, 4] {
            for bs in [1usize, 2, 3] {
                let per_rank: Vec<Vec<Vec<usize>>> = (0..world)
                    .map(|r| {
                        BatchSampler::new(&cfg, g.clone(), bs, r, world, 7)
                            .unwrap()
                            .epoch_batches(0)
                    })
                    .collect();
                let counts: Vec<usize> = per_rank.iter().map(Vec::len).collect();
                assert!(
                    counts.iter().all(|&c| c == counts[0]),
                    "{cfg:?} w{world}: {counts:?}"
                );
                let expect = BatchSampler::new(&cfg, g.clone(), bs, 0, world, 7)
                    .unwrap()
                    .batches_per_epoch();
                assert_eq!(counts[0], expect, "{cfg:?} world {world} bs {bs}");
                let seen: BTreeSet<usize> = per_rank.iter().flatten().flatten().copied().collect();
                assert_eq!(seen, (0..n).collect(), "{cfg:?} world {world} bs {bs}");
                for b in per_rank.iter().flatten() {
                    assert_eq!(b.len(), bs, "every batch is full");
                    if cfg == (SamplerConfig::GroupSampler { shuffle: true }) {
                        assert!(
                            b.iter().all(|&i| g[i] == g[b[0]]),
                            "one aspect group per batch"
                        );
                    }
                }
                // Padding repeats as few images as possible.
                let total: usize = counts.iter().sum::<usize>() * bs;
                assert!(total < n + bs * world * 2, "{total} slots for {n} images");
            }
        }
    }
}

#[test]
fn epochs_reshuffle_from_seed_and_epoch() {
    let g = groups(40);
    for world in [1usize, 2, 4] {
        let s = BatchSampler::new(
            &SamplerConfig::GroupSampler { shuffle: true },
            g.clone(),
            2,
            world - 1,
            world,
            3,
        )
        .unwrap();
        assert_ne!(s.epoch_batches(0), s.epoch_batches(1), "world {world}");
        let again = BatchSampler::new(
            &SamplerConfig::GroupSampler { shuffle: true },
            g.clone(),
            2,
            world - 1,
            world,
            3,
        )
        .unwrap();
        assert_eq!(
            s.epoch_batches(5),
            again.epoch_batches(5),
            "a pure function of seed+epoch"
        );
        let other = BatchSampler::new(
            &SamplerConfig::GroupSampler { shuffle: true },
            g.clone(),
            2,
            world - 1,
            world,
            4,
        )
        .unwrap();
        assert_ne!(
            s.epoch_batches(0),
            other.epoch_batches(0),
            "the seed matters"
        );
    }
    let seq = BatchSampler::new(&SamplerConfig::SequentialSampler {}, g, 4, 0, 1, 3).unwrap();
    assert_eq!(seq.epoch_batches(0), seq.epoch_batches(1));
    assert_eq!(seq.epoch_batches(0)[0], vec![0, 1, 2, 3]);
}

#[test]
fn resume_from_saved_position_yields_the_remaining_batches_exactly() {
    let g = groups(31);
    for world in [1usize, 2, 4] {
        for rank in 0..world {
            let mut a = BatchSampler::new(
                &SamplerConfig::GroupSampler { shuffle: true },
                g.clone(),
                2,
                rank,
                world,
                11,
            )
            .unwrap();
            a.set_epoch(2);
            let all = a.epoch_batches(2);
            for _ in 0..3.min(all.len()) {
                a.next_batch().unwrap();
            }
            let saved = serde_json::to_string(&a.state()).unwrap();
            let rest: Vec<Vec<usize>> =
                std::iter::from_fn(|| a.next_batch().map(|(_, b)| b)).collect();
            let mut b = BatchSampler::new(
                &SamplerConfig::GroupSampler { shuffle: true },
                g.clone(),
                2,
                rank,
                world,
                11,
            )
            .unwrap();
            b.restore(serde_json::from_str::<SamplerState>(&saved).unwrap());
            let resumed: Vec<Vec<usize>> =
                std::iter::from_fn(|| b.next_batch().map(|(_, b)| b)).collect();
            assert_eq!(resumed, rest, "world {world} rank {rank}");
            assert_eq!(&all[3.min(all.len())..], &rest[..]);
        }
    }
}

#[test]
fn infinite_sampler_rolls_over_epochs_and_resumes_across_the_boundary() {
    let g = groups(9);
    let cfg = SamplerConfig::InfiniteSampler {
        shuffle: true,
        group: true,
    };
    let mut s = BatchSampler::new(&cfg, g.clone(), 2, 0, 1, 5).unwrap();
    let per = s.batches_per_epoch();
    let first: Vec<(SamplerState, Vec<usize>)> =
        (0..per * 3 + 1).map(|_| s.next_batch().unwrap()).collect();
    assert_eq!(first[per].0, SamplerState { epoch: 1, batch: 0 });
    assert_eq!(first[per * 3].0, SamplerState { epoch: 3, batch: 0 });
    let mut r = BatchSampler::new(&cfg, g, 2, 0, 1, 5).unwrap();
    r.restore(first[per - 1].0);
    let resumed: Vec<_> = (0..per + 2).map(|_| r.next_batch().unwrap()).collect();
    assert_eq!(&resumed[..], &first[per - 1..per * 2 + 1]);
}

#[test]
fn bad_sampler_arguments_are_errors() {
    assert!(
        BatchSampler::new(
            &SamplerConfig::GroupSampler { shuffle: true },
            vec![],
            2,
            0,
            1,
            0
        )
        .is_err()
    );
    assert!(
        BatchSampler::new(
            &SamplerConfig::GroupSampler { shuffle: true },
            vec![0],
            0,
            0,
            1,
            0
        )
        .is_err()
    );
    assert!(
        BatchSampler::new(
            &SamplerConfig::GroupSampler { shuffle: true },
            vec![0],
            1,
            2,
            2,
            0
        )
        .is_err()
    );
}

#[test]
fn ranks_deal_out_the_global_batch_one_rank_with_all_of_it_draws() {
    // Data-parallel training equals large-batch training: at every step, the ranks' batches
    // put side by side in rank order are the single rank's batch of world × b images.
    let g = groups(29);
    for cfg in configs() {
        for world in [2usize, 3] {
            for bs in [1usize, 2, 4] {
                for epoch in [0u64, 5] {
                    let one = BatchSampler::new(&cfg, g.clone(), bs * world, 0, 1, 11)
                        .unwrap()
                        .epoch_batches(epoch);
                    let ranks: Vec<Vec<Vec<usize>>> = (0..world)
                        .map(|r| {
                            let s = BatchSampler::new(&cfg, g.clone(), bs, r, world, 11).unwrap();
                            assert_eq!(s.batches_per_epoch(), one.len());
                            s.epoch_batches(epoch)
                        })
                        .collect();
                    for (step, global) in one.iter().enumerate() {
                        let dealt: Vec<usize> =
                            ranks.iter().flat_map(|r| r[step].clone()).collect();
                        assert_eq!(&dealt, global, "{cfg:?} world {world} b {bs} step {step}");
                    }
                }
            }
        }
    }
}
