//! Inputs fed half-way through a run: the second stage of a two-stage detector, whose feeds
//! the host makes from the first stage's outputs of the same run.

use super::{Bindings, Bound, Executor, GraphRunError, checked_feed};
use crate::backend::Backend;
use crate::ir::HostTensor;
use std::collections::BTreeMap;

/// Inputs a run is fed half-way (a two-stage detector's second-stage feeds): the graph's
/// inputs named in `names` are made by `make` from the outputs named in `after`, once every
/// node scheduled before the first of those inputs has run. Everything before that point
/// must not read them (the builder declares them where the second stage begins).
pub struct LateFeeds<'f> {
    pub names: Vec<String>,
    pub after: Vec<String>,
    pub make: &'f mut dyn FnMut(&Tensors) -> Result<Tensors, String>,
}

/// Tensors by name (outputs read, feeds made).
pub type Tensors = BTreeMap<String, HostTensor>;

impl<B: Backend> Executor<B> {
    /// Makes `late`'s feeds from the outputs it reads and binds them (uploaded copies: they
    /// are small, and live only for this run).
    pub(super) fn bind_late(
        &mut self,
        late: LateFeeds<'_>,
        bound: &mut Bindings<'_, B::Buffer>,
    ) -> Result<(), GraphRunError> {
        let mut early = BTreeMap::new();
        for name in &late.after {
            let id = (self.graph.outputs.iter())
                .find(|(n, _)| n == name)
                .map(|&(_, id)| id)
                .ok_or_else(|| GraphRunError::NoValue(format!("output `{name}`")))?;
            early.insert(name.clone(), self.fetch(id.0, bound)?);
        }
        let made = (late.make)(&early).map_err(GraphRunError::Late)?;
        for name in &late.names {
            let id = (self.graph.inputs.get(name))
                .ok_or_else(|| GraphRunError::MissingInput(name.clone()))?
                .0;
            let t = checked_feed(&made, name, &self.graph.nodes[id])?;
            let buf = self.backend.upload(t).map_err(|e| self.be(id, e))?;
            bound.insert(id, Bound::Owned(buf));
        }
        Ok(())
    }
}
