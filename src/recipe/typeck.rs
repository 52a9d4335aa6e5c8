//! The resolved tree → the JSON config and its span table.

use super::diag::Diagnostics;
use super::spans::{SpanTable, join};
use super::tree::{Node, NodeKind};
use serde_json::{Map, Value};

/// Converts the resolved tree, recording where every value was written.
pub fn check(root: &Node, diags: &mut Diagnostics) -> (Value, SpanTable) {
    let _ = diags;
    let mut spans = SpanTable::default();
    let v = to_json(root, "", &mut spans);
    (v, spans)
}

fn to_json(n: &Node, path: &str, spans: &mut SpanTable) -> Value {
    if !path.is_empty() {
        spans.insert(path, n.loc);
    }
    match &n.kind {
        NodeKind::Null | NodeKind::Ref(_) => Value::Null,
        NodeKind::Bool(b) => Value::Bool(*b),
        NodeKind::Int(i) => Value::from(*i),
        NodeKind::Float(f) => Value::from(*f),
        NodeKind::Str(s) => Value::String(s.replace("\\$", "$")),
        NodeKind::Symbol(s) => Value::String(s.clone()),
        NodeKind::Quantity(c, u) => Value::String(format!("{c} {}", u.name(*c))),
        NodeKind::Phase(m, c, u) => {
            let mut o = Map::new();
            o.insert("mode".into(), Value::String(m.clone()));
            o.insert(
                "length".into(),
                Value::String(format!("{c} {}", u.name(*c))),
            );
            Value::Object(o)
        }
        NodeKind::List(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, x)| to_json(x, &join(path, &i.to_string()), spans))
                .collect(),
        ),
        NodeKind::Record { ty, fields } => {
            let mut o = Map::new();
            if let Some((t, _)) = ty {
                o.insert("type".into(), Value::String(t.clone()));
            }
            for f in fields {
                let p = join(path, &f.key);
                o.insert(f.key.clone(), to_json(&f.value, &p, spans));
            }
            Value::Object(o)
        }
        NodeKind::Call(name, _, args) => {
            let mut o = Map::new();
            o.insert("type".into(), Value::String(name.clone()));
            o.insert(
                "args".into(),
                Value::Array(
                    args.iter()
                        .enumerate()
                        .map(|(i, a)| to_json(a, &join(path, &i.to_string()), spans))
                        .collect(),
                ),
            );
            Value::Object(o)
        }
    }
}
