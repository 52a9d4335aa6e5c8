//! The stand-in for the CUDA backend in a build without the `cuda` feature
//! (`backend::standin`).

super::standin::uninhabited_backend!(CudaBackend);

impl CudaBackend {
    /// Free device memory in bytes (never called: there is no value to call it on).
    pub fn free_memory(&self) -> Option<u64> {
        match *self {}
    }

    /// The device in words (never called).
    pub fn describe(&self) -> String {
        match *self {}
    }
}
