//! The merged tree: recipe values after imports and overrides are applied, before references
//! are resolved and before types are checked. Every node keeps where it was written.

use super::diag::{Diagnostic, Diagnostics, FileId, Loc};
use crate::syntax::{Assign, Item, Key, Number, Seg, Unit, Value, ValueKind};

/// A value in the merged tree.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub kind: NodeKind,
    pub loc: Loc,
}

/// A path segment with the place it was written.
#[derive(Clone, Debug, PartialEq)]
pub struct PathSeg {
    pub seg: Seg,
    pub loc: Loc,
}

#[derive(Clone, Debug, PartialEq)]
pub enum NodeKind {
    Null,
    /// A value that could not be computed (an unbound reference, a cycle); already reported,
    /// so later stages accept it silently.
    Poison,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// Unescaped text, still holding `${...}` until references are resolved.
    Str(String),
    Quantity(u64, Unit),
    Phase(String, u64, Unit),
    List(Vec<Node>),
    /// An untyped record (`ty == None`) or a component instance.
    Record {
        ty: Option<(String, Loc)>,
        fields: Vec<Field>,
    },
    Ref(Vec<PathSeg>),
    Symbol(String),
    Call(String, Loc, Vec<Node>),
}

/// A key of a record and its value.
#[derive(Clone, Debug, PartialEq)]
pub struct Field {
    pub key: String,
    pub key_loc: Loc,
    pub value: Node,
}

impl Node {
    pub fn empty_record(loc: Loc) -> Node {
        Node {
            kind: NodeKind::Record {
                ty: None,
                fields: Vec::new(),
            },
            loc,
        }
    }
    pub fn fields(&self) -> Option<&[Field]> {
        match &self.kind {
            NodeKind::Record { fields, .. } => Some(fields),
            _ => None,
        }
    }
    pub fn field(&self, key: &str) -> Option<&Field> {
        self.fields()?.iter().find(|f| f.key == key)
    }
    /// A short name for the kind of value, for messages.
    pub fn describe(&self) -> &'static str {
        match &self.kind {
            NodeKind::Null | NodeKind::Poison => "`none`",
            NodeKind::Bool(_) => "a boolean",
            NodeKind::Int(_) => "an integer",
            NodeKind::Float(_) => "a float",
            NodeKind::Str(_) => "a string",
            NodeKind::Quantity(..) => "a training length",
            NodeKind::Phase(..) => "a workflow phase",
            NodeKind::List(_) => "a list",
            NodeKind::Record { ty: None, .. } => "a record",
            NodeKind::Record { ty: Some(_), .. } => "a component",
            NodeKind::Ref(_) => "a reference",
            NodeKind::Symbol(_) => "a name",
            NodeKind::Call(..) => "a call",
        }
    }
}

/// Converts an AST value into a node; record bodies are built by applying their items in
/// order with the same merge rules as top-level bindings.
pub fn lower_value(v: &Value, file: FileId, diags: &mut Diagnostics) -> Node {
    let loc = Loc::new(file, v.span);
    let kind = match &v.kind {
        ValueKind::Number {
            value: Number::Int(i),
            ..
        } => NodeKind::Int(*i),
        ValueKind::Number {
            value: Number::Float(f),
            ..
        } => NodeKind::Float(*f),
        ValueKind::Str { text } => NodeKind::Str(text.clone()),
        ValueKind::Bool(b) => NodeKind::Bool(*b),
        ValueKind::None => NodeKind::Null,
        ValueKind::List(items) => {
            NodeKind::List(items.iter().map(|x| lower_value(x, file, diags)).collect())
        }
        ValueKind::Record(items) => {
            let mut n = Node::empty_record(loc);
            apply_items(&mut n, items, file, diags);
            n.kind
        }
        ValueKind::Component { name, items } => {
            let mut n = Node {
                kind: NodeKind::Record {
                    ty: Some((name.name.clone(), Loc::new(file, name.span))),
                    fields: Vec::new(),
                },
                loc,
            };
            apply_items(&mut n, items, file, diags);
            n.kind
        }
        ValueKind::Call { name, args } => NodeKind::Call(
            name.name.clone(),
            Loc::new(file, name.span),
            args.iter().map(|a| lower_value(a, file, diags)).collect(),
        ),
        ValueKind::Quantity { count, unit } => NodeKind::Quantity(*count, *unit),
        ValueKind::Phase { name, count, unit } => NodeKind::Phase(name.name.clone(), *count, *unit),
        ValueKind::Ref(keys) => NodeKind::Ref(segs(keys, file)),
        ValueKind::Symbol(id) => NodeKind::Symbol(id.name.clone()),
    };
    Node { kind, loc }
}

pub fn segs(keys: &[Key], file: FileId) -> Vec<PathSeg> {
    keys.iter()
        .map(|k| PathSeg {
            seg: k.seg.clone(),
            loc: Loc::new(file, k.span),
        })
        .collect()
}

/// Applies bindings and blocks to a record node. `items` is one `{ ... }` body (the loader
/// applies a file's top-level items one at a time, where repeating a key is an override).
pub fn apply_items(target: &mut Node, items: &[Item], file: FileId, diags: &mut Diagnostics) {
    report_duplicate_keys(items, file, diags);
    for item in items {
        match item {
            Item::Bind {
                path,
                assign,
                value,
                ..
            } => {
                let v = lower_value(value, file, diags);
                bind(target, &segs(path, file), *assign, v, diags);
            }
            Item::Block { path, items, span } => {
                let mut v = Node::empty_record(Loc::new(file, *span));
                apply_items(&mut v, items, file, diags);
                bind(target, &segs(path, file), Assign::Merge, v, diags);
            }
            // The grammar allows these only at the top of a file; `load` handles them.
            Item::Import { .. } | Item::Let { .. } => {}
        }
    }
}

/// E0213 for a key bound twice in one body (`sgd { lr = 0.02, lr = 0.01 }`): mmcv keeps the
/// last silently, which hides the typo of the key meant.
fn report_duplicate_keys(items: &[Item], file: FileId, diags: &mut Diagnostics) {
    let path_of = |item: &Item| match item {
        Item::Bind { path, .. } | Item::Block { path, .. } => Some(path.clone()),
        Item::Import { .. } | Item::Let { .. } => None,
    };
    for (i, item) in items.iter().enumerate() {
        let Some(path) = path_of(item) else { continue };
        let same =
            |k: &[Key]| k.len() == path.len() && k.iter().zip(&path).all(|(a, b)| a.seg == b.seg);
        let Some(first) = items[..i].iter().filter_map(path_of).find(|k| same(k)) else {
            continue;
        };
        let span = |k: &[Key]| k[0].span.to(k[k.len() - 1].span);
        let shown = path
            .iter()
            .map(|k| k.seg.to_string())
            .collect::<Vec<_>>()
            .join(".");
        diags.push(
            Diagnostic::error("E0213", format!("`{shown}` is bound twice in one block"))
                .with_label(Loc::new(file, span(&path)), "bound again here")
                .with_label(Loc::new(file, span(&first)), "first bound here")
                .with_help("keep one of them; mmcv would silently keep the last"),
        );
    }
}

/// Binds `value` at `path` under `root`: records merge key by key (unless the component type
/// changes or the binding is `:=`), everything else replaces.
pub fn bind(
    root: &mut Node,
    path: &[PathSeg],
    assign: Assign,
    value: Node,
    diags: &mut Diagnostics,
) {
    match navigate(root, path, true) {
        Ok(slot) => put(slot, assign, value, diags),
        Err(d) => diags.push(*d),
    }
}

/// Stores a value into an existing slot with merge semantics.
pub fn put(slot: &mut Node, assign: Assign, value: Node, diags: &mut Diagnostics) {
    if assign == Assign::Replace {
        *slot = value;
        return;
    }
    let (
        NodeKind::Record {
            ty: old_ty,
            fields: old,
        },
        NodeKind::Record {
            ty: new_ty,
            fields: new,
        },
    ) = (&mut slot.kind, &value.kind)
    else {
        *slot = value;
        return;
    };
    if let (Some((a, _)), Some((b, _))) = (&old_ty, new_ty)
        && a != b
    {
        // A different component: its parameters mean something else, so nothing carries over
        // (mmcv would merge the keys; say so where the two differ).
        let dropped: Vec<String> = old
            .iter()
            .filter(|f| !new.iter().any(|n| n.key == f.key))
            .map(|f| format!("`{}`", f.key))
            .collect();
        if !dropped.is_empty() {
            let new_loc = new_ty.as_ref().map(|(_, l)| *l);
            diags.push(
                Diagnostic::warning(
                    "E0214",
                    format!("`{b}` replaces `{a}` whole: {} set there do not carry over", dropped.join(", ")),
                )
                .with_label_opt(new_loc, format!("a different component than `{a}`"))
                .with_label(old_ty.as_ref().map_or(slot.loc, |(_, l)| *l), format!("`{a}` was set here"))
                .with_help(format!(
                    "a component of another type starts empty; write in `{b} {{ ... }}` every setting it needs"
                )),
            );
        }
        *slot = value;
        return;
    }
    let NodeKind::Record { ty: new_ty, fields } = value.kind else {
        return;
    };
    if new_ty.is_some() {
        *old_ty = new_ty;
    }
    for f in fields {
        match old.iter_mut().find(|o| o.key == f.key) {
            Some(o) => {
                o.key_loc = f.key_loc;
                put(&mut o.value, Assign::Merge, f.value, diags);
            }
            None => old.push(f),
        }
    }
}

/// Finds (and, with `create`, makes) the slot a path names.
pub fn navigate<'a>(
    root: &'a mut Node,
    path: &[PathSeg],
    create: bool,
) -> Result<&'a mut Node, Box<Diagnostic>> {
    let mut cur = root;
    for (i, ps) in path.iter().enumerate() {
        let here = || {
            path[..i]
                .iter()
                .map(|p| p.seg.to_string())
                .collect::<Vec<_>>()
                .join(".")
        };
        let desc = cur.describe();
        let cur_loc = cur.loc;
        cur = match (&mut cur.kind, &ps.seg) {
            (NodeKind::Record { fields, .. }, Seg::Name(n)) => {
                let pos = fields.iter().position(|f| &f.key == n);
                match pos {
                    Some(p) => &mut fields[p].value,
                    None if create => {
                        fields.push(Field {
                            key: n.clone(),
                            key_loc: ps.loc,
                            value: Node::empty_record(ps.loc),
                        });
                        &mut fields.last_mut().expect("just pushed").value
                    }
                    None => {
                        return Err(Box::new(
                            Diagnostic::error("E0207", format!("no key `{n}` at `{}`", here()))
                                .with_label(ps.loc, "not bound"),
                        ));
                    }
                }
            }
            (NodeKind::List(items), Seg::Index(k)) => {
                let len = items.len();
                match items.get_mut(*k) {
                    Some(x) => x,
                    None => {
                        return Err(Box::new(
                            Diagnostic::error(
                                "E0208",
                                format!("index {k} is past the end of `{}` ({len} items)", here()),
                            )
                            .with_label(ps.loc, "no such item"),
                        ));
                    }
                }
            }
            (NodeKind::List(items), Seg::Name(n)) => {
                let hits: Vec<usize> = items
                    .iter()
                    .enumerate()
                    .filter(|(_, x)| item_name(x) == Some(n.as_str()))
                    .map(|(i, _)| i)
                    .collect();
                match hits.as_slice() {
                    [one] => {
                        let x = &mut items[*one];
                        // A bare stage (`load_image`) becomes a component so it can take keys.
                        if let NodeKind::Symbol(s) = &x.kind {
                            x.kind = NodeKind::Record {
                                ty: Some((s.clone(), x.loc)),
                                fields: Vec::new(),
                            };
                        }
                        x
                    }
                    [] => {
                        let names: Vec<String> = items
                            .iter()
                            .filter_map(item_name)
                            .map(|s| format!("`{s}`"))
                            .collect();
                        return Err(Box::new(
                            Diagnostic::error(
                                "E0208",
                                format!("no item named `{n}` in the list `{}`", here()),
                            )
                            .with_label(ps.loc, "no such item")
                            .with_label(cur_loc, "the list")
                            .with_help(if names.is_empty() {
                                "the list has no named items".to_string()
                            } else {
                                format!("its items are {}", names.join(", "))
                            }),
                        ));
                    }
                    _ => {
                        return Err(Box::new(
                            Diagnostic::error(
                                "E0208",
                                format!("`{n}` names {} items in `{}`", hits.len(), here()),
                            )
                            .with_label(ps.loc, "ambiguous")
                            .with_help(format!(
                                "address the item by index, e.g. `{}.{}`",
                                here(),
                                hits[0]
                            )),
                        ));
                    }
                }
            }
            (_, seg) => {
                return Err(Box::new(
                    Diagnostic::error(
                        "E0209",
                        format!("cannot bind `{seg}` inside {desc} at `{}`", here()),
                    )
                    .with_label(ps.loc, "this key")
                    .with_label(cur_loc, format!("`{}` is {desc}", here())),
                ));
            }
        };
    }
    Ok(cur)
}

/// The name of a list item that can be addressed by name (a pipeline stage).
pub fn item_name(n: &Node) -> Option<&str> {
    match &n.kind {
        NodeKind::Record {
            ty: Some((t, _)), ..
        } => Some(t),
        NodeKind::Symbol(s) => Some(s),
        _ => None,
    }
}
