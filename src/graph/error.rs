//! Errors of graph construction (shape and dtype inference). They are values, not panics, and
//! carry the op, the node name given by the model and the offending shapes so that `plan` and
//! `check` can report them on the recipe span that produced the op.

use crate::ir::DType;

/// A graph-construction error.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GraphError {
    /// Input shapes that the op cannot accept.
    #[error("{op}{}: {message} (input shapes {})", scope_suffix(.scope), fmt_shapes(.shapes))]
    Shape {
        op: &'static str,
        /// The builder's name scope when the op was added (e.g. `neck.fpn_convs.2`).
        scope: String,
        message: String,
        shapes: Vec<Vec<usize>>,
    },
    /// Input dtypes that the op cannot accept.
    #[error("{op}{}: {message} (input dtypes {dtypes:?})", scope_suffix(.scope))]
    DType {
        op: &'static str,
        scope: String,
        message: String,
        dtypes: Vec<DType>,
    },
    /// A parameter declared twice with different shapes or roles.
    #[error("parameter `{name}` declared twice: {message}")]
    Param { name: String, message: String },
    /// An input declared twice, or an id from another graph.
    #[error("{0}")]
    Invalid(String),
}

fn scope_suffix(scope: &str) -> String {
    if scope.is_empty() {
        String::new()
    } else {
        format!(" in `{scope}`")
    }
}

fn fmt_shapes(shapes: &[Vec<usize>]) -> String {
    let parts: Vec<String> = shapes.iter().map(|s| crate::ir::fmt_shape(s)).collect();
    parts.join(", ")
}

impl GraphError {
    /// The op name the error is about, if any.
    pub fn op(&self) -> Option<&'static str> {
        match self {
            GraphError::Shape { op, .. } | GraphError::DType { op, .. } => Some(op),
            _ => None,
        }
    }
    /// The name scope active when the failing op was added.
    pub fn scope(&self) -> Option<&str> {
        match self {
            GraphError::Shape { scope, .. } | GraphError::DType { scope, .. } => Some(scope),
            _ => None,
        }
    }
}
