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
