//! Unit tests of the tensor ops' host-side shape logic (`plan.rs`): the collapsed kernel
//! decode against a plain index mapping, and every plan run on the host against the CPU
//! reference (`backend::cpu::elementwise`) on random shapes.

use super::*;
use crate::backend::cpu::elementwise as cpu;
use crate::util::rng::Rng;

fn rng() -> Rng {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    crate::errln!("seed {seed}");
    Rng::seed(seed)
}

fn shape(rng: &mut Rng, rank: usize) -> Vec<usize> {
    (0..rank).map(|_| 1 + rng.below(4) as usize).collect()
}

/// Runs a strided index space the way the kernel does (collapsed, u32 decode).
fn run_copy(src: &[f64], src_base: usize, dst: &mut [f64], dst_base: usize, m: &Strided) {
    let k = m.kernel("test").expect("kernel params");
    assert_eq!(k.n as usize, m.numel());
    for i in 0..k.n {
        let (a, b) = k.offsets(i);
        dst[dst_base + b as usize] = src[src_base + a as usize];
    }
}

/// The plain (uncollapsed) mapping: the reference for [`Strided::collapse`].
fn naive(m: &Strided, mut i: usize) -> (usize, usize) {
    let (mut a, mut b) = (0, 0);
    for k in (0..m.dims.len()).rev() {
        let r = i % m.dims[k];
        i /= m.dims[k];
        a += r * m.a[k];
        b += r * m.b[k];
    }
    (a, b)
}

#[test]
fn collapsed_kernel_decode_matches_the_plain_mapping() {
    let mut rng = rng();
    for _ in 0..400 {
        let rank = rng.below(9) as usize;
        let dims = shape(&mut rng, rank);
        // Operand a: a random permutation of contiguous strides with random broadcast
        // zeros; operand b: contiguous, or slice-like (a larger parent's strides).
        let mut perm: Vec<usize> = (0..rank).collect();
        rng.shuffle(&mut perm);
        let pst = contiguous(&perm.iter().map(|&p| dims[p]).collect::<Vec<_>>());
        let mut a = vec![0; rank];
        for (i, &p) in perm.iter().enumerate() {
            a[p] = if rng.below(4) == 0 { 0 } else { pst[i] };
        }
        let parent: Vec<usize> = dims.iter().map(|&d| d + rng.below(2) as usize).collect();
        let b = if rng.below(2) == 0 {
            contiguous(&dims)
        } else {
            contiguous(&parent)
        };
        let m = Strided { dims, a, b };
        let c = m.collapse();
        assert!(c.dims.iter().all(|&d| d > 1), "{c:?}");
        assert_eq!(c.numel(), m.numel());
        match m.kernel("t") {
            Ok(k) => {
                assert!((1..=MAX_RANK as u32).contains(&k.rank));
                for i in 0..m.numel() {
                    let (ka, kb) = k.offsets(i as u32);
                    assert_eq!((ka as usize, kb as usize), naive(&m, i), "{m:?} i={i}");
                }
            }
            Err(e) => {
                assert!(c.dims.len() > MAX_RANK, "{e}");
                assert!(matches!(e, ShapeError::Rank { .. }), "{e}");
                assert!(e.to_string().contains("rank"), "{e}");
            }
        }
    }
}

#[test]
fn contiguous_copies_collapse_to_rank_one() {
    let m = Strided {
        dims: vec![2, 1, 3, 4],
        a: contiguous(&[2, 1, 3, 4]),
        b: contiguous(&[2, 1, 3, 4]),
    };
    let k = m.kernel("t").unwrap();
    assert_eq!((k.rank, k.dims[0], k.a[0], k.b[0]), (1, 24, 1, 1));
    // A scalar (and any all-ones shape) is one element at offset 0.
    let s = Strided {
        dims: vec![],
        a: vec![],
        b: vec![],
    };
    let k = s.kernel("t").unwrap();
    assert_eq!((k.n, k.rank, k.offsets(0)), (1, 1, (0, 0)));
}

#[test]
fn too_many_dims_and_too_many_elements_are_errors() {
    // Rank 7 with every dim a different broadcast pattern cannot merge.
    let dims = vec![2; 7];
    let a: Vec<usize> = (0..7)
        .map(|i| if i % 2 == 0 { 0 } else { 1 << i })
        .collect();
    let m = Strided {
        b: contiguous(&dims),
        dims,
        a,
    };
    let e = m.kernel("op").unwrap_err();
    assert!(matches!(e, ShapeError::Rank { rank: 7, .. }), "{e}");
    assert!(e.to_string().contains("rank 7"), "{e}");
    let big = Strided {
        dims: vec![1 << 16, 1 << 16],
        a: vec![1 << 16, 1],
        b: vec![1 << 16, 1],
    };
    let e = big.kernel("op").unwrap_err();
    assert!(matches!(e, ShapeError::TooLarge { .. }), "{e}");
    assert!(e.to_string().contains("exceed"), "{e}");
}

fn data(rng: &mut Rng, n: usize) -> Vec<f64> {
    (0..n).map(|_| rng.range_f64(-1.0, 1.0)).collect()
}

/// Executes a layout plan on the host the way `tensor.rs` does on the device.
fn run_layout(plan: &LayoutPlan, xs: &[Vec<f64>], n_out: usize) -> Vec<f64> {
    let mut out = vec![f64::NAN; n_out];
    match plan {
        LayoutPlan::Memcpy { n } => out[..*n].copy_from_slice(&xs[0][..*n]),
        LayoutPlan::Copies { zero, copies } => {
            if *zero {
                out.fill(0.0);
            }
            for c in copies {
                run_copy(&xs[c.input], c.src_base, &mut out, c.dst_base, &c.map);
            }
        }
    }
    out
}

#[test]
fn layout_plans_match_the_cpu_reference() {
    let mut rng = rng();
    for _ in 0..300 {
        let rank = 1 + rng.below(5) as usize;
        let sx = shape(&mut rng, rank);
        let x = data(&mut rng, sx.iter().product());
        let axis = rng.below(rank as u64) as usize;
        let (op, ins, so, want): (LayoutOp, Vec<Vec<usize>>, Vec<usize>, Vec<f64>) =
            match rng.below(5) {
                0 => {
                    let mut perm: Vec<usize> = (0..rank).collect();
                    rng.shuffle(&mut perm);
                    let so: Vec<usize> = perm.iter().map(|&p| sx[p]).collect();
                    let mut want = vec![0.0; x.len()];
                    cpu::permute(&x, &sx, &perm, &mut want);
                    (LayoutOp::Permute { perm }, vec![sx.clone()], so, want)
                }
                1 => {
                    let start = rng.below(sx[axis] as u64 + 1) as usize;
                    let end = start + rng.below((sx[axis] - start) as u64 + 1) as usize;
                    let mut so = sx.clone();
                    so[axis] = end - start;
                    let mut want = vec![0.0; so.iter().product()];
                    cpu::slice(&x, &sx, axis, start, end, &mut want);
                    (
                        LayoutOp::Slice { axis, start, end },
                        vec![sx.clone()],
                        so,
                        want,
                    )
                }
                2 => {
                    let start = rng.below(3) as usize;
                    let mut so = sx.clone();
                    so[axis] += start + rng.below(3) as usize;
                    let mut want = vec![0.0; so.iter().product()];
                    cpu::slice_pad(&x, &sx, axis, start, &mut want, &so);
                    (
                        LayoutOp::SlicePad { axis, start },
                        vec![sx.clone()],
                        so,
                        want,
                    )
                }
                3 => {
                    let mut so = sx.clone();
                    for d in so.iter_mut() {
                        if rng.below(2) == 0 {
                            *d += 1 + rng.below(3) as usize;
                        }
                    }
                    let mut sx1 = sx.clone();
                    for (d, o) in sx1.iter_mut().zip(&so) {
                        if d != o {
                            *d = 1;
                        }
                    }
                    let extra_rank = rng.below(3) as usize;
                    let extra = shape(&mut rng, extra_rank);
                    let so: Vec<usize> = extra.into_iter().chain(so).collect();
                    let x1: Vec<f64> = x[..sx1.iter().product()].to_vec();
                    let mut want = vec![0.0; so.iter().product()];
                    cpu::broadcast_to(&x1, &sx1, &mut want, &so);
                    let plan = plan_layout(&LayoutOp::BroadcastTo, &[&sx1], &so).unwrap();
                    let got = run_layout(&plan, &[x1], want.len());
                    assert_eq!(got, want, "broadcast_to {sx1:?} -> {so:?}");
                    continue;
                }
                _ => {
                    let shapes: Vec<Vec<usize>> = (0..3)
                        .map(|_| {
                            let mut s = sx.clone();
                            s[axis] = rng.below(4) as usize;
                            s
                        })
                        .collect();
                    let xs: Vec<Vec<f64>> = shapes
                        .iter()
                        .map(|s| data(&mut rng, s.iter().product()))
                        .collect();
                    let mut so = sx.clone();
                    so[axis] = shapes.iter().map(|s| s[axis]).sum();
                    let mut want = vec![0.0; so.iter().product()];
                    let refs: Vec<&[f64]> = xs.iter().map(|v| v.as_slice()).collect();
                    let srefs: Vec<&[usize]> = shapes.iter().map(|v| v.as_slice()).collect();
                    cpu::concat(&refs, &srefs, axis, &mut want);
                    let plan = plan_layout(&LayoutOp::Concat { axis }, &srefs, &so).unwrap();
                    assert_eq!(
                        run_layout(&plan, &xs, want.len()),
                        want,
                        "concat {shapes:?}"
                    );
                    continue;
                }
            };
        let refs: Vec<&[usize]> = ins.iter().map(|v| v.as_slice()).collect();
        let plan = plan_layout(&op, &refs, &so).unwrap_or_else(|e| panic!("{op:?}: {e}"));
        assert_eq!(
            run_layout(&plan, &[x], want.len()),
            want,
            "{op:?} of {sx:?}"
        );
    }
}

#[test]
fn binary_plans_match_the_cpu_reference() {
    let mut rng = rng();
    for _ in 0..300 {
        let rank = rng.below(6) as usize;
        let so = shape(&mut rng, rank);
        // Each input: a suffix of the output's axes, some set to 1 (broadcast).
        let side = |rng: &mut Rng| -> Vec<usize> {
            let keep = rng.below(so.len() as u64 + 1) as usize;
            so[so.len() - keep..]
                .iter()
                .map(|&d| if rng.below(3) == 0 { 1 } else { d })
                .collect()
        };
        let (sa, sb) = (side(&mut rng), side(&mut rng));
        let a = data(&mut rng, sa.iter().product());
        let b = data(&mut rng, sb.iter().product());
        let n: usize = so.iter().product();
        let mut want = vec![0.0; n];
        let op = crate::ir::op::BinaryOp::Sub;
        cpu::binary(op, &a, &sa, &b, &sb, &mut want, &so);
        let k = plan_binary(&sa, &sb, &so).unwrap().kernel("t").unwrap();
        assert_eq!(k.n as usize, n);
        let got: Vec<f64> = (0..k.n)
            .map(|i| {
                let (oa, ob) = k.offsets(i);
                a[oa as usize] - b[ob as usize]
            })
            .collect();
        assert_eq!(got, want, "{sa:?} - {sb:?} -> {so:?}");
    }
    assert!(plan_binary(&[3], &[2], &[3]).is_err());
    assert!(plan_binary(&[2, 3], &[3], &[3]).is_err());
}

#[test]
fn reduce_plans_match_the_cpu_reference() {
    let mut rng = rng();
    for _ in 0..300 {
        let rank = rng.below(6) as usize;
        let sx = shape(&mut rng, rank);
        let axes: Vec<usize> = (0..rank).filter(|_| rng.below(2) == 0).collect();
        let x = data(&mut rng, sx.iter().product());
        let rows: usize = (0..rank)
            .filter(|i| !axes.contains(i))
            .map(|i| sx[i])
            .product();
        let mut want = vec![0.0; rows];
        cpu::sum_axes(&x, &sx, &axes, &mut want);
        let plan = plan_reduce(&sx, &axes, rows).unwrap();
        assert_eq!(plan.rows * plan.len, x.len());
        let mut scratch = vec![f64::NAN; x.len()];
        let src = match &plan.gather {
            Some(m) => {
                run_copy(&x, 0, &mut scratch, 0, m);
                &scratch
            }
            None => &x,
        };
        // Row sums through the chunking the kernel uses (few blocks to force chunks).
        let (nch, chunk) = row_chunks(plan.rows, plan.len, 3);
        assert!(nch * chunk >= plan.len && (nch - 1) * chunk < plan.len.max(1));
        let got: Vec<f64> = (0..plan.rows)
            .map(|r| {
                (0..nch)
                    .map(|c| {
                        let (s, e) = (c * chunk, ((c + 1) * chunk).min(plan.len));
                        (s..e).map(|j| src[r * plan.len + j]).sum::<f64>()
                    })
                    .sum()
            })
            .collect();
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() <= 1e-12 * (1.0 + w.abs()), "{sx:?} {axes:?}");
        }
    }
    assert!(plan_reduce(&[2, 3], &[1, 0], 2).is_err());
    assert!(plan_reduce(&[2, 3], &[2], 2).is_err());
    assert!(plan_reduce(&[2, 3], &[1], 3).is_err());
}

#[test]
fn long_rows_are_chunked() {
    assert_eq!(row_chunks(1, 1 << 20, 528), (256, 4096));
    assert_eq!(row_chunks(1000, 1 << 20, 528), (1, 1 << 20));
    assert_eq!(row_chunks(4, 100, 528), (1, 100));
    let (n, c) = row_chunks(3, 1_000_003, 64);
    assert!(n * c >= 1_000_003 && c >= 4096 && n == 22);
}
