//! Limits of the CUDA backend that the CPU backend does not have, refused as clear errors.

use mmrun::ir::op::{LayoutOp, Op, UnaryOp};
use mmrun::ir::{DType, HostTensor};

use crate::backend::harness::{Suite, cuda, run_on};

#[test]
fn a_broadcast_that_cannot_collapse_below_rank_7_is_refused() {
    let Some(be) = cuda("cuda::limits::broadcast_rank") else {
        return;
    };
    // 8 alternating broadcast axes cannot collapse below rank 8; the kernels index rank <= 6.
    let src = [2, 1, 2, 1, 2, 1, 2, 1];
    let x = HostTensor::f64(src.to_vec(), vec![1.0; 16]).unwrap();
    let e = run_on(
        &be,
        &Op::Layout(LayoutOp::BroadcastTo),
        &[x],
        &[2; 8],
        DType::F32,
    )
    .unwrap_err();
    assert!(e.to_string().contains("rank"), "{e}");
    be.sync("refused broadcast");
}

#[test]
fn a_cast_to_u8_is_refused() {
    let Some(be) = cuda("cuda::limits::cast_u8") else {
        return;
    };
    let x = HostTensor::f64(vec![2], vec![1.0, 2.0]).unwrap();
    let bad = run_on(
        &be,
        &Op::Unary(UnaryOp::Cast(DType::U8)),
        &[x],
        &[2],
        DType::U8,
    );
    assert!(bad.is_err(), "cast to u8 must be refused");
    be.sync("refused cast");
}
