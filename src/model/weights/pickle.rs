//! A restricted pickle reader for PyTorch state dicts.
//!
//! It *interprets* the pickle opcodes into plain values and never executes anything: the only
//! globals accepted are `collections.OrderedDict`, torch's tensor rebuild functions and storage
//! classes. Any other global (`os.system`, `builtins.eval`, a custom class…) is refused at the
//! `GLOBAL` opcode with an error that names it, before anything after it is read. Opcodes that
//! only make sense for arbitrary objects (`INST`, `OBJ`, `NEWOBJ`, extension registry…) are
//! refused too.
//!
//! Over 600 lines on purpose: the opcode interpreter is one `match` whose arms together make
//! the safety argument (what is accepted, what is refused); it reads best whole.

use std::collections::HashMap;

/// Deepest nesting of containers: dropping, cloning or comparing a value recurses once per
/// level, so a pickle of a million nested lists (2 MB) would overflow the stack. State dicts
/// nest a few levels; mmcv's `meta` a few more.
pub const MAX_DEPTH: u32 = 100;

/// Values the reader may build, counted in units of one scalar or 16 bytes of text. `MEMO`
/// lookups copy whole values, so an 872-byte pickle that memoizes a list and pushes it twice,
/// over and over, doubles its memory at each step; real state dicts need a few thousand units
/// per hundred tensors.
pub const MAX_UNITS: u64 = 1 << 26;

/// A value with its nesting depth and size in units, as the reader tracks them.
struct Slot {
    v: Value,
    depth: u32,
    units: u64,
}

fn leaf(v: Value) -> Slot {
    let units = match &v {
        Value::Str(s) => 1 + s.len() as u64 / 16,
        Value::Bytes(b) => 1 + b.len() as u64 / 16,
        _ => 1,
    };
    Slot { v, depth: 0, units }
}

/// A container of `items`: one level deeper than the deepest, the sum of their units.
fn container(items: Vec<Slot>, make: impl FnOnce(Vec<Value>) -> Value) -> Slot {
    let depth = 1 + items.iter().map(|s| s.depth).max().unwrap_or(0);
    let units = 1 + items.iter().map(|s| s.units).sum::<u64>();
    Slot {
        v: make(items.into_iter().map(|s| s.v).collect()),
        depth,
        units,
    }
}

/// A value on the pickle stack.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    /// Dict and OrderedDict, insertion order kept.
    Dict(Vec<(Value, Value)>),
    /// An accepted global, not yet called.
    Global(Global),
    /// A storage reference from a persistent id: `(dtype, key, numel)`.
    Storage {
        dtype: StorageDtype,
        key: String,
    },
    /// A tensor view of a storage.
    Tensor(TensorRef),
    /// The MARK sentinel (internal).
    Mark,
}

/// The globals a state dict may contain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Global {
    OrderedDict,
    RebuildTensorV2,
    RebuildParameter,
    Storage(StorageDtype),
}

/// Element type of a storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageDtype {
    F32,
    F64,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
}

impl StorageDtype {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            StorageDtype::F64 | StorageDtype::I64 => 8,
            StorageDtype::F32 | StorageDtype::I32 => 4,
            StorageDtype::F16 | StorageDtype::BF16 | StorageDtype::I16 => 2,
            StorageDtype::I8 | StorageDtype::U8 | StorageDtype::Bool => 1,
        }
    }
}

/// A tensor as `_rebuild_tensor_v2(storage, offset, size, stride, …)` describes it.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorRef {
    pub dtype: StorageDtype,
    pub storage_key: String,
    pub offset: usize,
    pub shape: Vec<usize>,
    pub stride: Vec<usize>,
}

/// Why a pickle was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PickleError {
    #[error(
        "refused global `{module}.{name}` at byte {pos}: only tensors, storages and plain containers are allowed in a weights file (nothing was executed)"
    )]
    ForbiddenGlobal {
        module: String,
        name: String,
        pos: usize,
    },
    #[error(
        "refused opcode {op:#04x} ('{ch}') at byte {pos}: it builds arbitrary objects (nothing was executed)"
    )]
    ForbiddenOpcode { op: u8, ch: char, pos: usize },
    #[error("malformed pickle at byte {pos}: {msg}")]
    Malformed { pos: usize, msg: String },
}

fn storage_dtype(name: &str) -> Option<StorageDtype> {
    Some(match name {
        "FloatStorage" => StorageDtype::F32,
        "DoubleStorage" => StorageDtype::F64,
        "HalfStorage" => StorageDtype::F16,
        "BFloat16Storage" => StorageDtype::BF16,
        "LongStorage" => StorageDtype::I64,
        "IntStorage" => StorageDtype::I32,
        "ShortStorage" => StorageDtype::I16,
        "CharStorage" => StorageDtype::I8,
        "ByteStorage" => StorageDtype::U8,
        "BoolStorage" => StorageDtype::Bool,
        _ => return None,
    })
}

fn resolve_global(module: &str, name: &str) -> Option<Global> {
    match (module, name) {
        ("collections", "OrderedDict") => Some(Global::OrderedDict),
        ("torch._utils", "_rebuild_tensor_v2") => Some(Global::RebuildTensorV2),
        ("torch._utils", "_rebuild_parameter") => Some(Global::RebuildParameter),
        ("torch", n) => storage_dtype(n).map(Global::Storage),
        _ => None,
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn bad<T>(&self, msg: impl Into<String>) -> Result<T, PickleError> {
        Err(PickleError::Malformed {
            pos: self.pos,
            msg: msg.into(),
        })
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], PickleError> {
        // A length field may say 2^64 - 1: compare without adding.
        if n > self.buf.len() - self.pos {
            return self.bad("unexpected end of data");
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, PickleError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, PickleError> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().unwrap()))
    }
    fn u32(&mut self) -> Result<u32, PickleError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> Result<u64, PickleError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn line(&mut self) -> Result<String, PickleError> {
        let start = self.pos;
        while self.pos < self.buf.len() && self.buf[self.pos] != b'\n' {
            self.pos += 1;
        }
        if self.pos >= self.buf.len() {
            return self.bad("unterminated line");
        }
        let s = String::from_utf8_lossy(&self.buf[start..self.pos]).into_owned();
        self.pos += 1;
        Ok(s)
    }
    fn utf8(&mut self, n: usize) -> Result<String, PickleError> {
        let b = self.take(n)?;
        match std::str::from_utf8(b) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => self.bad("invalid UTF-8 string"),
        }
    }
}

/// Interpret a pickle; returns the top-level value.
pub fn load(buf: &[u8]) -> Result<Value, PickleError> {
    let mut r = Reader { buf, pos: 0 };
    let mut stack: Vec<Slot> = Vec::new();
    let mut memo: HashMap<u64, Slot> = HashMap::new();
    // Units built so far, memo copies included.
    let mut built: u64 = 0;
    loop {
        let op_pos = r.pos;
        let op = r.u8()?;
        macro_rules! push {
            ($slot:expr) => {{
                let slot: Slot = $slot;
                if slot.depth > MAX_DEPTH {
                    return r.bad(format!("containers nested deeper than {MAX_DEPTH}"));
                }
                built += slot.units;
                if built > MAX_UNITS {
                    return r.bad(format!(
                        "the pickle builds more than {MAX_UNITS} values (a memo bomb?)"
                    ));
                }
                stack.push(slot)
            }};
        }
        macro_rules! pop {
            () => {
                match stack.pop() {
                    Some(v) => v,
                    None => return r.bad("stack underflow"),
                }
            };
        }
        macro_rules! pop_mark {
            () => {{
                let Some(m) = stack.iter().rposition(|s| matches!(s.v, Value::Mark)) else {
                    return r.bad("no MARK on the stack");
                };
                let items = stack.split_off(m + 1);
                stack.pop();
                items
            }};
        }
        // Adds to the container on top of the stack, keeping its depth and units.
        macro_rules! extend_top {
            ($items:expr, $what:literal, $add:expr) => {{
                let items: Vec<Slot> = $items;
                let depth = 1 + items.iter().map(|s| s.depth).max().unwrap_or(0);
                let units: u64 = items.iter().map(|s| s.units).sum();
                let Some(top) = stack.last_mut() else {
                    return r.bad(concat!($what, " with nothing to add to"));
                };
                if depth > MAX_DEPTH {
                    return r.bad(format!("containers nested deeper than {MAX_DEPTH}"));
                }
                top.depth = top.depth.max(depth);
                top.units += units;
                let values: Vec<Value> = items.into_iter().map(|s| s.v).collect();
                #[allow(clippy::redundant_closure_call)]
                let ok = ($add)(&mut top.v, values);
                if !ok {
                    return r.bad(concat!($what, " on the wrong kind of value"));
                }
            }};
        }
        match op {
            0x80 => {
                r.u8()?; // PROTO
            }
            0x95 => {
                r.u64()?; // FRAME
            }
            b'.' => {
                return stack
                    .pop()
                    .map_or_else(|| r.bad("empty stack at STOP"), |s| Ok(s.v));
            }
            b'(' => push!(leaf(Value::Mark)),
            b'N' => push!(leaf(Value::None)),
            0x88 => push!(leaf(Value::Bool(true))),
            0x89 => push!(leaf(Value::Bool(false))),
            b'J' => {
                let v = r.u32()? as i32;
                push!(leaf(Value::Int(v as i64)))
            }
            b'K' => {
                let v = r.u8()?;
                push!(leaf(Value::Int(v as i64)))
            }
            b'M' => {
                let v = r.u16()?;
                push!(leaf(Value::Int(v as i64)))
            }
            0x8a => {
                // LONG1: little-endian two's complement of n bytes.
                let n = r.u8()? as usize;
                let b = r.take(n)?;
                if n > 8 {
                    return r.bad("integer too large");
                }
                let mut v: i64 = 0;
                for (i, &x) in b.iter().enumerate() {
                    v |= (x as i64) << (8 * i);
                }
                if n > 0 && n < 8 && b[n - 1] & 0x80 != 0 {
                    v -= 1i64 << (8 * n);
                }
                push!(leaf(Value::Int(v)))
            }
            b'G' => {
                let v = f64::from_be_bytes(r.take(8)?.try_into().unwrap());
                push!(leaf(Value::Float(v)))
            }
            b'X' => {
                let n = r.u32()? as usize;
                let s = r.utf8(n)?;
                push!(leaf(Value::Str(s)))
            }
            0x8c => {
                let n = r.u8()? as usize;
                let s = r.utf8(n)?;
                push!(leaf(Value::Str(s)))
            }
            0x8d => {
                let n = usize::try_from(r.u64()?).unwrap_or(usize::MAX);
                let s = r.utf8(n)?;
                push!(leaf(Value::Str(s)))
            }
            b'U' | b'C' => {
                let n = r.u8()? as usize;
                push!(leaf(Value::Bytes(r.take(n)?.to_vec())))
            }
            b'T' | b'B' => {
                let n = r.u32()? as usize;
                push!(leaf(Value::Bytes(r.take(n)?.to_vec())))
            }
            b')' => push!(container(vec![], Value::Tuple)),
            b']' => push!(container(vec![], Value::List)),
            b'}' => push!(container(vec![], |_| Value::Dict(vec![]))),
            b't' => {
                let items = pop_mark!();
                push!(container(items, Value::Tuple))
            }
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                if stack.len() < n {
                    return r.bad("stack underflow");
                }
                let items = stack.split_off(stack.len() - n);
                push!(container(items, Value::Tuple))
            }
            b'l' => {
                let items = pop_mark!();
                push!(container(items, Value::List))
            }
            b'd' => {
                let items = pop_mark!();
                if !items.len().is_multiple_of(2) {
                    return r.bad("odd number of dict items");
                }
                push!(container(items, |v| Value::Dict(pairs(v))))
            }
            b'a' => {
                let v = pop!();
                extend_top!(
                    vec![v],
                    "APPEND",
                    |top: &mut Value, vs: Vec<Value>| match top {
                        Value::List(l) => {
                            l.extend(vs);
                            true
                        }
                        _ => false,
                    }
                )
            }
            b'e' => {
                let items = pop_mark!();
                extend_top!(
                    items,
                    "APPENDS",
                    |top: &mut Value, vs: Vec<Value>| match top {
                        Value::List(l) => {
                            l.extend(vs);
                            true
                        }
                        _ => false,
                    }
                )
            }
            b's' | b'u' => {
                let items = if op == b's' {
                    let v = pop!();
                    let k = pop!();
                    vec![k, v]
                } else {
                    pop_mark!()
                };
                if !items.len().is_multiple_of(2) {
                    return r.bad("odd number of dict items");
                }
                extend_top!(
                    items,
                    "SETITEM",
                    |top: &mut Value, vs: Vec<Value>| match top {
                        Value::Dict(d) => {
                            d.extend(pairs(vs));
                            true
                        }
                        _ => false,
                    }
                )
            }
            b'q' | b'r' | 0x94 => {
                let k = match op {
                    b'q' => r.u8()? as u64,
                    b'r' => r.u32()? as u64,
                    _ => memo.len() as u64,
                };
                let Some(top) = stack.last() else {
                    return r.bad("MEMOIZE with an empty stack");
                };
                // The memo holds a copy: count it as built.
                built += top.units;
                if built > MAX_UNITS {
                    return r.bad(format!(
                        "the pickle builds more than {MAX_UNITS} values (a memo bomb?)"
                    ));
                }
                let copy = Slot {
                    v: top.v.clone(),
                    depth: top.depth,
                    units: top.units,
                };
                memo.insert(k, copy);
            }
            b'h' | b'j' => {
                let k = if op == b'h' {
                    r.u8()? as u64
                } else {
                    r.u32()? as u64
                };
                let Some(m) = memo.get(&k) else {
                    return r.bad(format!("memo key {k} missing"));
                };
                let copy = Slot {
                    v: Value::None,
                    depth: m.depth,
                    units: m.units,
                };
                // Count before cloning, so a bomb is refused before it allocates.
                if built + copy.units > MAX_UNITS {
                    return r.bad(format!(
                        "the pickle builds more than {MAX_UNITS} values (a memo bomb?)"
                    ));
                }
                push!(Slot {
                    v: m.v.clone(),
                    ..copy
                })
            }
            b'c' => {
                let module = r.line()?;
                let name = r.line()?;
                match resolve_global(&module, &name) {
                    Some(g) => push!(leaf(Value::Global(g))),
                    None => {
                        return Err(PickleError::ForbiddenGlobal {
                            module,
                            name,
                            pos: op_pos,
                        });
                    }
                }
            }
            0x93 => {
                let name = pop!().v;
                let module = pop!().v;
                let (Value::Str(module), Value::Str(name)) = (module, name) else {
                    return r.bad("STACK_GLOBAL needs two strings");
                };
                match resolve_global(&module, &name) {
                    Some(g) => push!(leaf(Value::Global(g))),
                    None => {
                        return Err(PickleError::ForbiddenGlobal {
                            module,
                            name,
                            pos: op_pos,
                        });
                    }
                }
            }
            b'Q' => {
                // BINPERSID: ('storage', StorageClass, key, location, numel)
                let pid = pop!().v;
                let Value::Tuple(t) = pid else {
                    return r.bad("persistent id is not a tuple");
                };
                match t.as_slice() {
                    [
                        Value::Str(tag),
                        Value::Global(Global::Storage(dtype)),
                        Value::Str(key),
                        ..,
                    ] if tag == "storage" => push!(leaf(Value::Storage {
                        dtype: *dtype,
                        key: key.clone(),
                    })),
                    _ => return r.bad("persistent id is not a torch storage"),
                }
            }
            b'R' => {
                let args = pop!().v;
                let f = pop!().v;
                let (Value::Global(g), Value::Tuple(args)) = (f, args) else {
                    return r.bad("REDUCE of something that is not an accepted global");
                };
                push!(leaf(reduce(g, args, &r)?));
            }
            b'b' => {
                // BUILD: set state on the object below. OrderedDict state (`_metadata`) and a
                // tensor's state are dropped; nothing is called.
                let _state = pop!();
                if stack.is_empty() {
                    return r.bad("BUILD with nothing to build");
                }
            }
            _ => {
                return Err(PickleError::ForbiddenOpcode {
                    op,
                    ch: op as char,
                    pos: op_pos,
                });
            }
        }
    }
}

/// Key-value pairs of a flat list of even length (checked by the caller).
fn pairs(items: Vec<Value>) -> Vec<(Value, Value)> {
    let mut it = items.into_iter();
    let mut out = Vec::new();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    out
}

fn as_usizes(v: &Value, r: &Reader<'_>) -> Result<Vec<usize>, PickleError> {
    match v {
        Value::Tuple(t) => t
            .iter()
            .map(|x| match x {
                Value::Int(i) if *i >= 0 => Ok(*i as usize),
                _ => r.bad("tensor size/stride must be non-negative integers"),
            })
            .collect(),
        _ => r.bad("tensor size/stride must be a tuple"),
    }
}

/// "Call" an accepted global: build the value it describes.
fn reduce(g: Global, args: Vec<Value>, r: &Reader<'_>) -> Result<Value, PickleError> {
    match g {
        Global::OrderedDict => match args.as_slice() {
            [] => Ok(Value::Dict(vec![])),
            _ => r.bad("OrderedDict with arguments"),
        },
        Global::RebuildTensorV2 => match args.as_slice() {
            [
                Value::Storage { dtype, key },
                Value::Int(off),
                size,
                stride,
                ..,
            ] if *off >= 0 => {
                let shape = as_usizes(size, r)?;
                let stride = as_usizes(stride, r)?;
                if shape.len() != stride.len() {
                    return r.bad("tensor size and stride differ in rank");
                }
                Ok(Value::Tensor(TensorRef {
                    dtype: *dtype,
                    storage_key: key.clone(),
                    offset: *off as usize,
                    shape,
                    stride,
                }))
            }
            _ => r.bad("_rebuild_tensor_v2 with unexpected arguments"),
        },
        Global::RebuildParameter => match args.into_iter().next() {
            Some(t @ Value::Tensor(_)) => Ok(t),
            _ => r.bad("_rebuild_parameter without a tensor"),
        },
        Global::Storage(_) => r.bad("storage classes cannot be called"),
    }
}
