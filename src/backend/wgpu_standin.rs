//! The stand-in for the wgpu backend in a build without the `wgpu` feature
//! (`backend::standin`).

super::standin::uninhabited_backend!(WgpuBackend);

impl WgpuBackend {
    /// The adapter in words (never called: there is no value to call it on).
    pub fn adapter(&self) -> String {
        match *self {}
    }

    /// The adapter and its binding limit in words (never called, as above).
    pub fn adapter_and_limits(&self) -> String {
        match *self {}
    }
}
