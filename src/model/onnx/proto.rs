//! The few ONNX messages an export writes (`ModelProto`, `GraphProto`, `NodeProto`,
//! `AttributeProto`, `TensorProto`, `ValueInfoProto`) with the field numbers of
//! `onnx/onnx.proto` (onnx 1.23), encoded through `util::protobuf`. Nothing here knows mmrun's
//! graph; `translate` decides what to write.

pub use crate::util::protobuf::Msg;

/// `TensorProto.DataType` values used here.
pub const FLOAT: i64 = 1;
pub const INT64: i64 = 7;

/// A `TensorProto` with its data as little-endian `raw_data`.
pub fn tensor(name: &str, dims: &[usize], data_type: i64, raw: &[u8]) -> Msg {
    let mut t = Msg::new();
    for &d in dims {
        t.int(1, d as i64);
    }
    t.int(2, data_type).str(8, name).bytes(9, raw);
    t
}

/// An f32 tensor.
pub fn f32_tensor(name: &str, dims: &[usize], data: &[f32]) -> Msg {
    let raw: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    tensor(name, dims, FLOAT, &raw)
}

/// An i64 tensor.
pub fn i64_tensor(name: &str, dims: &[usize], data: &[i64]) -> Msg {
    let raw: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    tensor(name, dims, INT64, &raw)
}

/// A node attribute's value.
#[derive(Clone, Debug, PartialEq)]
pub enum Attr {
    Int(i64),
    Float(f32),
    Ints(Vec<i64>),
    Str(String),
}

/// An `AttributeProto` (`type` is `AttributeType`: FLOAT 1, INT 2, STRING 3, INTS 7).
fn attribute(name: &str, value: &Attr) -> Msg {
    let mut a = Msg::new();
    a.str(1, name);
    match value {
        Attr::Float(f) => a.int(20, 1).float(2, *f),
        Attr::Int(i) => a.int(20, 2).int(3, *i),
        Attr::Str(s) => a.int(20, 3).str(4, s),
        Attr::Ints(v) => a.int(20, 7).ints(8, v),
    };
    a
}

/// A `NodeProto` of the default domain.
pub fn node(
    op_type: &str,
    name: &str,
    inputs: &[&str],
    outputs: &[&str],
    attrs: &[(&str, Attr)],
) -> Msg {
    let mut n = Msg::new();
    for i in inputs {
        n.str(1, i);
    }
    for o in outputs {
        n.str(2, o);
    }
    n.str(3, name).str(4, op_type);
    for (k, v) in attrs {
        n.msg(5, &attribute(k, v));
    }
    n
}

/// A `ValueInfoProto` of a tensor with a static shape.
pub fn value_info(name: &str, elem_type: i64, dims: &[usize]) -> Msg {
    let mut shape = Msg::new();
    for &d in dims {
        let mut dim = Msg::new();
        dim.int(1, d as i64);
        shape.msg(1, &dim);
    }
    let mut tensor_type = Msg::new();
    tensor_type.int(1, elem_type).msg(2, &shape);
    let mut ty = Msg::new();
    ty.msg(1, &tensor_type);
    let mut v = Msg::new();
    v.str(1, name).msg(2, &ty);
    v
}

/// The parts of a `GraphProto`.
#[derive(Debug, Default)]
pub struct GraphParts {
    pub nodes: Vec<Msg>,
    pub initializers: Vec<Msg>,
    pub inputs: Vec<Msg>,
    pub outputs: Vec<Msg>,
}

/// A whole `ModelProto`: IR version `ir_version`, the default domain at `opset`, and
/// `metadata` as `metadata_props`.
pub fn model(
    graph_name: &str,
    parts: GraphParts,
    ir_version: i64,
    opset: i64,
    doc: &str,
    metadata: &[(String, String)],
) -> Vec<u8> {
    let mut g = Msg::new();
    for n in &parts.nodes {
        g.msg(1, n);
    }
    g.str(2, graph_name);
    for t in &parts.initializers {
        g.msg(5, t);
    }
    for v in &parts.inputs {
        g.msg(11, v);
    }
    for v in &parts.outputs {
        g.msg(12, v);
    }
    let mut opset_id = Msg::new();
    opset_id.str(1, "").int(2, opset);
    let mut m = Msg::new();
    m.int(1, ir_version)
        .str(2, "mmrun")
        .str(3, env!("CARGO_PKG_VERSION"))
        .str(6, doc)
        .msg(7, &g)
        .msg(8, &opset_id);
    for (k, v) in metadata {
        let mut e = Msg::new();
        e.str(1, k).str(2, v);
        m.msg(14, &e);
    }
    m.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_negative_ints_use_protobuf_encoding() {
        let mut m = Msg::new();
        m.int(1, 300);
        assert_eq!(m.clone().into_bytes(), [0x08, 0xac, 0x02]);
        let mut n = Msg::new();
        n.int(1, -1);
        let b = n.into_bytes();
        assert_eq!(b.len(), 11, "-1 is ten varint bytes after the key");
        assert_eq!(b[10], 0x01);
    }
}
