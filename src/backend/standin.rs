//! The stand-in of a device backend a build leaves out (`cuda`, `wgpu` without their
//! features): a type with no values, so its `Device` variant exists in every build (and
//! matches on it read the same) but can never be made; `Device::open` says how to rebuild.

/// Declares `$ty` as an uninhabited [`crate::backend::Backend`] in the invoking module (every
/// method is unreachable: there is no value to call it on).
macro_rules! uninhabited_backend {
    ($ty:ident) => {
        use std::convert::Infallible;
        use $crate::backend::{
            Backend, BackendError, ParamUpdate, TensorMut, TensorRef, UpdateRule,
        };
        use $crate::ir::op::*;
        use $crate::ir::{DType, HostTensor};

        /// Not in this build: no value of this type exists.
        #[derive(Clone)]
        pub enum $ty {}

        type In<'a> = [TensorRef<'a, Infallible>];
        type Out<'a> = TensorMut<'a, Infallible>;

        impl Backend for $ty {
            type Buffer = Infallible;

            fn name(&self) -> &'static str {
                match *self {}
            }
            fn alloc(&self, _: DType, _: usize) -> Result<Infallible, BackendError> {
                match *self {}
            }
            fn upload(&self, _: &HostTensor) -> Result<Infallible, BackendError> {
                match *self {}
            }
            fn download(
                &self,
                _: &Infallible,
                _: DType,
                _: &[usize],
            ) -> Result<HostTensor, BackendError> {
                match *self {}
            }
            fn fill(&self, _: Out<'_>, _: f64) -> Result<(), BackendError> {
                match *self {}
            }
            fn unary(&self, _: &UnaryOp, _: &In<'_>, _: Out<'_>) -> Result<(), BackendError> {
                match *self {}
            }
            fn binary(&self, _: BinaryOp, _: &In<'_>, _: Out<'_>) -> Result<(), BackendError> {
                match *self {}
            }
            fn reduce(&self, _: &ReduceOp, _: &In<'_>, _: Out<'_>) -> Result<(), BackendError> {
                match *self {}
            }
            fn layout(&self, _: &LayoutOp, _: &In<'_>, _: Out<'_>) -> Result<(), BackendError> {
                match *self {}
            }
            fn matmul(&self, _: &MatmulOp, _: &In<'_>, _: Out<'_>) -> Result<(), BackendError> {
                match *self {}
            }
            fn conv(&self, _: &ConvOp, _: &In<'_>, _: Out<'_>) -> Result<(), BackendError> {
                match *self {}
            }
            fn pool(&self, _: &PoolOp, _: &In<'_>, _: Out<'_>) -> Result<(), BackendError> {
                match *self {}
            }
            fn norm(&self, _: &NormOp, _: &In<'_>, _: Out<'_>) -> Result<(), BackendError> {
                match *self {}
            }
            fn loss(&self, _: &LossOp, _: &In<'_>, _: Out<'_>) -> Result<(), BackendError> {
                match *self {}
            }
            fn update(
                &self,
                _: &UpdateRule,
                _: &mut [ParamUpdate<'_, Infallible>],
            ) -> Result<(), BackendError> {
                match *self {}
            }
        }
    };
}

pub(crate) use uninhabited_backend;
