//! Liveness analysis and static buffer reuse. Only nodes that an output, a gradient or an
//! effect needs are executed; each executed node's result is assigned a slot, and a slot is
//! reused once every consumer of its previous value has run. Parameters and feeds live in
//! their own buffers (they are external to the plan).

use super::builder::{Graph, NodeId};
use crate::ir::op::Op;
use crate::ir::{DType, numel};

/// Where each node's result lives, and what that costs.
#[derive(Clone, Debug, PartialEq)]
pub struct MemoryPlan {
    /// Nodes to execute, in order.
    pub schedule: Vec<NodeId>,
    /// Slot of each node's result (None: not executed, or an external parameter/feed).
    pub slot_of: Vec<Option<usize>>,
    /// Elements and dtype of each slot.
    pub slots: Vec<(DType, usize)>,
    /// Bytes of all slots together: the planned peak of intermediate memory.
    pub peak_bytes: usize,
    /// Bytes the executed intermediates would take without reuse.
    pub total_bytes: usize,
    /// Bytes of parameters and feeds the graph reads.
    pub external_bytes: usize,
}

fn is_external(op: &Op) -> bool {
    matches!(op, Op::Param { .. } | Op::Input { .. })
}

/// The nodes an output, a gradient or an effect depends on: what a run executes.
pub(super) fn needed_nodes(graph: &Graph) -> Vec<bool> {
    let mut needed = vec![false; graph.nodes.len()];
    let roots = (graph.outputs.iter().map(|(_, id)| id))
        .chain(graph.grads.iter().map(|(_, id)| id))
        .chain(&graph.effects);
    for r in roots {
        needed[r.0] = true;
    }
    for i in (0..graph.nodes.len()).rev() {
        if needed[i] {
            for j in &graph.nodes[i].inputs {
                needed[j.0] = true;
            }
        }
    }
    needed
}

impl MemoryPlan {
    /// Plans `graph`.
    pub fn new(graph: &Graph) -> Self {
        let n = graph.nodes.len();
        let mut roots: Vec<NodeId> = graph.outputs.iter().map(|(_, id)| *id).collect();
        roots.extend(graph.grads.iter().map(|(_, id)| *id));
        roots.extend(graph.effects.iter().copied());
        let needed = needed_nodes(graph);
        // Last consumer of each value; roots stay alive to the end.
        let mut last_use = vec![0usize; n];
        for (i, node) in graph.nodes.iter().enumerate() {
            if needed[i] {
                for j in &node.inputs {
                    last_use[j.0] = last_use[j.0].max(i);
                }
            }
        }
        for r in &roots {
            last_use[r.0] = usize::MAX;
        }
        let mut slots: Vec<(DType, usize)> = Vec::new();
        let mut free: Vec<usize> = Vec::new();
        let mut slot_of = vec![None; n];
        let mut schedule = Vec::new();
        let (mut total, mut external) = (0usize, 0usize);
        // Values whose last consumer is node i are released right after i runs.
        let mut release_at: Vec<Vec<usize>> = vec![Vec::new(); n];
        for i in 0..n {
            if needed[i] && last_use[i] != usize::MAX && last_use[i] > i {
                release_at[last_use[i]].push(i);
            }
        }
        for i in 0..n {
            if !needed[i] {
                continue;
            }
            schedule.push(NodeId(i));
            let node = &graph.nodes[i];
            let len = numel(&node.shape);
            let bytes = len * node.dtype.size_bytes();
            if is_external(&node.op) {
                external += bytes;
                continue;
            }
            total += bytes;
            // Best fit among free slots of the same dtype; else grow the largest; else new.
            let same: Vec<usize> = free
                .iter()
                .copied()
                .filter(|&s| slots[s].0 == node.dtype)
                .collect();
            let pick = same
                .iter()
                .copied()
                .filter(|&s| slots[s].1 >= len)
                .min_by_key(|&s| (slots[s].1, s))
                .or_else(|| {
                    same.iter()
                        .copied()
                        .max_by_key(|&s| (slots[s].1, usize::MAX - s))
                });
            let s = match pick {
                Some(s) => {
                    free.retain(|&f| f != s);
                    slots[s].1 = slots[s].1.max(len);
                    s
                }
                None => {
                    slots.push((node.dtype, len));
                    slots.len() - 1
                }
            };
            slot_of[i] = Some(s);
            for &j in &release_at[i] {
                if let Some(sj) = slot_of[j] {
                    free.push(sj);
                }
            }
            // A result nobody reads (cannot happen for needed nodes but effects) frees at once.
            if last_use[i] != usize::MAX && last_use[i] <= i {
                free.push(s);
            }
        }
        let peak = slots.iter().map(|(d, l)| d.size_bytes() * l).sum();
        MemoryPlan {
            schedule,
            slot_of,
            slots,
            peak_bytes: peak,
            total_bytes: total,
            external_bytes: external,
        }
    }

    /// One line summary: `slots 12, peak 3.1 MiB of 9.8 MiB intermediates, params+feeds 1.2 MiB`.
    pub fn summary(&self) -> String {
        format!(
            "memory: {} slots, planned peak {} of {} intermediates without reuse, params+feeds {}",
            self.slots.len(),
            fmt_bytes(self.peak_bytes),
            fmt_bytes(self.total_bytes),
            fmt_bytes(self.external_bytes)
        )
    }
}

/// Bytes in binary units with one decimal.
pub(crate) fn fmt_bytes(b: usize) -> String {
    let units = ["B", "KiB", "MiB", "GiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::GraphBuilder;
    use crate::ir::DType;

    #[test]
    fn a_chain_reuses_two_slots_and_outputs_stay_alive() {
        let mut b = GraphBuilder::new(DType::F32);
        let x = b.input("x", &[4, 4], DType::F32).unwrap();
        let mut y = x;
        for _ in 0..6 {
            y = b.relu(y).unwrap();
        }
        let keep = b.scale(x, 2.0).unwrap();
        b.output("y", y).unwrap();
        b.output("keep", keep).unwrap();
        let g = b.finish();
        let plan = MemoryPlan::new(&g);
        // The chain ping-pongs between two slots; the second output takes the slot freed by
        // the chain's second-to-last value.
        assert_eq!(plan.slots.len(), 2, "{plan:?}");
        assert_eq!(plan.peak_bytes, 2 * 64);
        assert_eq!(plan.total_bytes, 7 * 64);
        assert_eq!(plan.external_bytes, 64);
        let ks = plan.slot_of[keep.0].unwrap();
        let ys = plan.slot_of[y.0].unwrap();
        assert_ne!(ks, ys);
    }

    #[test]
    fn unused_nodes_are_not_scheduled() {
        let mut b = GraphBuilder::new(DType::F32);
        let x = b.input("x", &[2], DType::F32).unwrap();
        let _dead = b.exp(x).unwrap();
        let y = b.relu(x).unwrap();
        b.output("y", y).unwrap();
        let plan = MemoryPlan::new(&b.finish());
        assert_eq!(plan.schedule.len(), 2);
    }
}
