//! The elementwise fusion pass: a chain of elementwise ops whose intermediate values nothing
//! else reads becomes one [`Op::Fused`] node, for a backend that runs such a chain in one pass
//! over memory instead of storing and reloading every intermediate tensor.
//!
//! A node joins the chain of its consumer when the backend takes its op and dtype, it has
//! exactly one consumer, it is not an output, a gradient or an effect, it and every input it
//! reads have its consumer's shape and dtype (no broadcasting inside a chain), and the chain's
//! nodes run back to back (nothing else runs between them, so no input of the chain is kept
//! alive across other work). Node ids are
//! kept: a chain's last node becomes the fused node and reads the chain's inputs, and its
//! other nodes stay in the graph unreached, so the memory plan neither runs nor stores them
//! and keeps the chain's inputs alive until the fused node has run.

use super::builder::{Graph, Node, NodeId};
use super::memory::needed_nodes;
use crate::ir::op::Op;
use crate::ir::{DType, FusedElementwise, FusedOp, FusedStep};
use std::collections::BTreeSet;

/// `graph` with its fusable chains of two or more ops fused; `fusable` says which ops the
/// backend takes on which dtype (unary and binary ops only are ever asked about).
pub fn fuse_elementwise(mut graph: Graph, fusable: impl Fn(&Op, DType) -> bool) -> Graph {
    let n = graph.nodes.len();
    let needed = needed_nodes(&graph);
    let mut consumers = vec![0usize; n];
    for (i, node) in graph.nodes.iter().enumerate() {
        if needed[i] {
            let mut ins: Vec<usize> = node.inputs.iter().map(|j| j.0).collect();
            ins.sort_unstable();
            ins.dedup();
            ins.into_iter().for_each(|j| consumers[j] += 1);
        }
    }
    let mut kept = vec![false; n];
    for id in graph.outputs.iter().map(|(_, id)| id) {
        kept[id.0] = true;
    }
    for id in graph.grads.iter().map(|(_, id)| id).chain(&graph.effects) {
        kept[id.0] = true;
    }
    let candidate: Vec<bool> = (0..n)
        .map(|i| needed[i] && elementwise_alone(&graph, &graph.nodes[i], &fusable))
        .collect();
    // Position of each node among those a run executes (feeds and parameters are bound, not
    // run): a chain takes only nodes that run back to back, so fusing never keeps a chain's
    // inputs alive across other work (a gradient summed over pyramid levels stays a running
    // sum instead of holding every level's gradient to the end).
    let mut position = vec![0usize; n];
    let mut runs = 0;
    for i in 0..n {
        position[i] = runs;
        if needed[i] && !matches!(graph.nodes[i].op, Op::Input { .. } | Op::Param { .. }) {
            runs += 1;
        }
    }
    let mut absorbed = vec![false; n];
    for root in (0..n).rev() {
        if !candidate[root] || absorbed[root] {
            continue;
        }
        let mut members = BTreeSet::from([root]);
        // Expanded latest first, each member's inputs latest first.
        let mut next = Some(root);
        while let Some(m) = next {
            let mut ins: Vec<usize> = graph.nodes[m].inputs.iter().map(|j| j.0).collect();
            ins.sort_unstable_by(|a, b| b.cmp(a));
            for j in ins {
                let back_to_back =
                    || members.range(j + 1..m).count() == position[m] - position[j] - 1;
                if candidate[j]
                    && consumers[j] == 1
                    && !kept[j]
                    && !members.contains(&j)
                    && back_to_back()
                {
                    members.insert(j);
                }
            }
            next = members.range(..m).next_back().copied();
        }
        if members.len() < 2 {
            continue;
        }
        let members: Vec<usize> = members.into_iter().collect();
        members.iter().for_each(|&m| absorbed[m] = true);
        let (chain, inputs) = chain_of(&graph, &members);
        let node = &mut graph.nodes[root];
        node.op = Op::Fused(chain);
        node.inputs = inputs;
    }
    graph
}

/// Whether `node` is a unary or binary op the backend takes, every input of its shape and
/// dtype.
fn elementwise_alone(graph: &Graph, node: &Node, fusable: &impl Fn(&Op, DType) -> bool) -> bool {
    matches!(node.op, Op::Unary(_) | Op::Binary(_))
        && fusable(&node.op, node.dtype)
        && node.inputs.iter().all(|j| {
            let input = &graph.nodes[j.0];
            input.shape == node.shape && input.dtype == node.dtype
        })
}

/// The chain of `members` (sorted, the last one the root) and the nodes it reads.
fn chain_of(graph: &Graph, members: &[usize]) -> (FusedElementwise, Vec<NodeId>) {
    let mut inputs: Vec<NodeId> = Vec::new();
    for &m in members {
        for &j in &graph.nodes[m].inputs {
            if !members.contains(&j.0) && !inputs.contains(&j) {
                inputs.push(j);
            }
        }
    }
    let value_of = |j: NodeId| match inputs.iter().position(|&x| x == j) {
        Some(k) => k,
        None => inputs.len() + members.iter().position(|&m| m == j.0).expect("a member"),
    };
    let steps = (members.iter())
        .map(|&m| {
            let node = &graph.nodes[m];
            let op = match &node.op {
                Op::Unary(u) => FusedOp::Unary(u.clone()),
                Op::Binary(b) => FusedOp::Binary(*b),
                other => unreachable!("only elementwise ops are members, not {}", other.name()),
            };
            FusedStep {
                op,
                args: node.inputs.iter().map(|&j| value_of(j)).collect(),
            }
        })
        .collect();
    let chain = FusedElementwise {
        inputs: inputs.len(),
        steps,
    };
    (chain, inputs)
}
