//! Device detection never panics; without a driver or device, opening `cuda:0` is an error
//! that says what is missing.

use mmrun::backend::cuda::{CudaDevice, CudaError, parse_device, probe};

#[test]
fn probe_reports_without_panicking() {
    match probe() {
        Ok(n) => eprintln!("probe: {n} CUDA device(s)"),
        Err(e) => {
            let msg = e.to_string();
            eprintln!("probe: {msg}");
            assert!(msg.contains("CUDA"), "unclear message: {msg}");
        }
    }
}

#[test]
fn opening_a_missing_device_is_a_clear_error() {
    let count = probe().unwrap_or(0);
    // An ordinal past the last device always fails, with or without a GPU.
    let Err(e) = CudaDevice::open(count) else {
        panic!("opened a device that does not exist")
    };
    assert!(
        matches!(e, CudaError::NoDriver | CudaError::NoDevice { .. }),
        "unexpected error {e}"
    );
    let msg = e.to_string();
    assert!(msg.contains("CUDA"), "{msg}");
    if count == 0 {
        eprintln!("cuda:0 on this machine: {msg}");
    }
}

#[test]
fn device_names_parse() {
    assert_eq!(parse_device("cpu").unwrap(), None);
    assert_eq!(parse_device("cuda").unwrap(), Some(0));
    assert_eq!(parse_device("cuda:3").unwrap(), Some(3));
    for bad in ["gpu", "cuda:", "cuda:x", "cuda:-1", ""] {
        let e = parse_device(bad).unwrap_err();
        assert!(
            e.to_string().contains("expected `cpu` or `cuda:N`"),
            "{bad}: {e}"
        );
    }
}

#[test]
fn reduction_scale_follows_mmdetection() {
    use mmrun::backend::cuda::loss::Reduction;
    assert_eq!(Reduction::mean().scale(8).unwrap(), 1.0 / 8.0);
    assert_eq!(Reduction::sum().scale(8).unwrap(), 1.0);
    let avg = Reduction {
        mean: true,
        avg_factor: Some(4.0),
        loss_weight: 2.0,
    };
    // weight_reduce_loss divides by avg_factor + finfo(float32).eps.
    assert_eq!(avg.scale(8).unwrap(), 2.0 / (4.0 + f32::EPSILON as f64));
    let bad = Reduction {
        mean: false,
        avg_factor: Some(4.0),
        loss_weight: 1.0,
    };
    assert!(bad.scale(8).unwrap_err().to_string().contains("avg_factor"));
}
