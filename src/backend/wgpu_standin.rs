//! The stand-in for the wgpu backend in a build without the `wgpu` feature
//! (`backend::standin`).

super::standin::uninhabited_backend!(WgpuBackend);

impl WgpuBackend {
    /// The adapter in words (never called: there is no value to call it on).
    pub fn adapter(&self) -> String {
        match *self {}
    }
}
