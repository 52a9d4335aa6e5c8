//! How the CUDA backend may compute: [`CudaOptions`], made from the recipe's `runtime.tf32`
//! and `runtime.deterministic` and the `MMRUN_CUDA_CONV` environment variable.
//!
//! The defaults of a recipe are PyTorch's for training: TF32 tensor cores allowed, cuDNN with
//! benchmarked algorithms. [`CudaOptions::STRICT`] is what the parity tests open: f32 math
//! everywhere, so the CPU reference's tolerances hold.

/// Which convolution implementation runs (`MMRUN_CUDA_CONV`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ConvChoice {
    /// cuDNN where libcudnn loads, otherwise im2col + cuBLAS.
    #[default]
    Auto,
    /// cuDNN, or an error when it does not load.
    Cudnn,
    /// The im2col (`kernels/conv.ptx`) + cuBLAS path: no cuDNN needed.
    Im2col,
}

/// The environment variable that picks the convolution path.
pub const CONV_ENV: &str = "MMRUN_CUDA_CONV";

impl ConvChoice {
    /// Reads `MMRUN_CUDA_CONV` (`auto`, `cudnn` or `im2col`; unset is `auto`).
    pub fn from_env() -> Result<Self, String> {
        match std::env::var(CONV_ENV) {
            Err(std::env::VarError::NotPresent) => Ok(ConvChoice::Auto),
            Err(std::env::VarError::NotUnicode(_)) => Err(format!("{CONV_ENV} is not valid UTF-8")),
            Ok(v) => Self::parse(&v),
        }
    }

    /// Parses a value of `MMRUN_CUDA_CONV`.
    pub fn parse(v: &str) -> Result<Self, String> {
        match v {
            "auto" | "" => Ok(ConvChoice::Auto),
            "cudnn" => Ok(ConvChoice::Cudnn),
            "im2col" => Ok(ConvChoice::Im2col),
            other => Err(format!(
                "{CONV_ENV}={other:?}: expected `auto`, `cudnn` or `im2col`"
            )),
        }
    }
}

/// The CUDA backend's numerics and convolution path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CudaOptions {
    /// TF32 tensor-core math for f32 GEMMs and convolutions (PyTorch's `allow_tf32`): inputs
    /// rounded to 10 mantissa bits, products accumulated in f32.
    pub tf32: bool,
    /// Only algorithms cuDNN reports deterministic (PyTorch's `cudnn.deterministic`).
    pub deterministic: bool,
    pub conv: ConvChoice,
}

impl CudaOptions {
    /// Strict f32 everywhere, any cuDNN algorithm: what the CPU-parity tests open.
    pub const STRICT: CudaOptions = CudaOptions {
        tf32: false,
        deterministic: false,
        conv: ConvChoice::Auto,
    };

    /// A recipe's settings (`runtime.tf32`, `runtime.deterministic`) with the convolution
    /// path of the environment.
    pub fn from_runtime(tf32: bool, deterministic: bool) -> Result<Self, String> {
        Ok(CudaOptions {
            tf32,
            deterministic,
            conv: ConvChoice::from_env()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conv_choices_parse_and_a_misspelling_names_the_variable() {
        assert_eq!(ConvChoice::parse("cudnn"), Ok(ConvChoice::Cudnn));
        assert_eq!(ConvChoice::parse("im2col"), Ok(ConvChoice::Im2col));
        assert_eq!(ConvChoice::parse("auto"), Ok(ConvChoice::Auto));
        let e = ConvChoice::parse("cuDNN").unwrap_err();
        assert!(e.contains("MMRUN_CUDA_CONV") && e.contains("im2col"), "{e}");
    }
}
