//! The shared backend suite: every op family of `backend::Backend` checked op by op against
//! the CPU backend in f64, on every backend — the CPU (its f32 path) always, CUDA where a
//! device is present, wgpu where an adapter is (lavapipe on CI), the next backend by one more `impl Suite` and one more arm in `suite!`.
//! Each test is a function generic over the backend; `suite!` instantiates it once per
//! backend, as `backend::<family>::cpu::<test>` and `backend::<family>::cuda::<test>`.

#[cfg(feature = "cuda")]
mod cuda_paths;
mod fused;
#[cfg(any(feature = "wgpu", feature = "cuda"))]
mod half;
pub(crate) mod harness;
mod loss;
mod nn;
mod optim;
#[cfg(feature = "wgpu")]
mod slabs;
mod tensor;
mod torch_losses;
pub(crate) mod train_step;

/// One `#[test]` per backend for each generic test function named.
macro_rules! suite {
    ($($test:ident),* $(,)?) => {
        mod cpu {
            $(
                #[test]
                fn $test() {
                    super::$test(&mmrun::backend::cpu::CpuBackend);
                }
            )*
        }

        #[cfg(feature = "cuda")]
        mod cuda {
            $(
                #[test]
                fn $test() {
                    let name = concat!(module_path!(), "::", stringify!($test));
                    if let Some(be) = crate::backend::harness::cuda(name) {
                        super::$test(&be);
                    }
                }
            )*
        }

        #[cfg(feature = "wgpu")]
        mod wgpu {
            $(
                #[test]
                fn $test() {
                    let name = concat!(module_path!(), "::", stringify!($test));
                    if let Some(be) = crate::backend::harness::wgpu(name) {
                        super::$test(&be);
                    }
                }
            )*
        }
    };
}
use suite;
