//! A restricted pickle reader for PyTorch state dicts.
//!
//! It *interprets* the pickle opcodes into plain values and never executes anything: the only
//! globals accepted are `collections.OrderedDict`, torch's tensor rebuild functions and storage
//! classes. Any other global (`os.system`, `builtins.eval`, a custom class…) is refused at the
//! `GLOBAL` opcode with an error that names it, before anything after it is read. Opcodes that
//! only make sense for arbitrary objects (`INST`, `OBJ`, `NEWOBJ`, extension registry…) are
//! refused too.

use std::collections::HashMap;

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
        if self.pos + n > self.buf.len() {
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
    let mut stack: Vec<Value> = Vec::new();
    let mut memo: HashMap<u64, Value> = HashMap::new();
    loop {
        let op_pos = r.pos;
        let op = r.u8()?;
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
                let Some(m) = stack.iter().rposition(|v| matches!(v, Value::Mark)) else {
                    return r.bad("no MARK on the stack");
                };
                let items = stack.split_off(m + 1);
                stack.pop();
                items
            }};
        }
        match op {
            0x80 => {
                r.u8()?; // PROTO
            }
            0x95 => {
                r.u64()?; // FRAME
            }
            b'.' => return stack.pop().map_or_else(|| r.bad("empty stack at STOP"), Ok),
            b'(' => stack.push(Value::Mark),
            b'N' => stack.push(Value::None),
            0x88 => stack.push(Value::Bool(true)),
            0x89 => stack.push(Value::Bool(false)),
            b'J' => {
                let v = r.u32()? as i32;
                stack.push(Value::Int(v as i64))
            }
            b'K' => {
                let v = r.u8()?;
                stack.push(Value::Int(v as i64))
            }
            b'M' => {
                let v = r.u16()?;
                stack.push(Value::Int(v as i64))
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
                stack.push(Value::Int(v))
            }
            b'G' => {
                let v = f64::from_be_bytes(r.take(8)?.try_into().unwrap());
                stack.push(Value::Float(v))
            }
            b'X' => {
                let n = r.u32()? as usize;
                let s = r.utf8(n)?;
                stack.push(Value::Str(s))
            }
            0x8c => {
                let n = r.u8()? as usize;
                let s = r.utf8(n)?;
                stack.push(Value::Str(s))
            }
            0x8d => {
                let n = r.u64()? as usize;
                let s = r.utf8(n)?;
                stack.push(Value::Str(s))
            }
            b'U' | b'C' => {
                let n = r.u8()? as usize;
                stack.push(Value::Bytes(r.take(n)?.to_vec()))
            }
            b'T' | b'B' => {
                let n = r.u32()? as usize;
                stack.push(Value::Bytes(r.take(n)?.to_vec()))
            }
            b')' => stack.push(Value::Tuple(vec![])),
            b']' => stack.push(Value::List(vec![])),
            b'}' => stack.push(Value::Dict(vec![])),
            b't' => {
                let items = pop_mark!();
                stack.push(Value::Tuple(items))
            }
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                if stack.len() < n {
                    return r.bad("stack underflow");
                }
                let items = stack.split_off(stack.len() - n);
                stack.push(Value::Tuple(items))
            }
            b'l' => {
                let items = pop_mark!();
                stack.push(Value::List(items))
            }
            b'd' => {
                let items = pop_mark!();
                let pairs = pairs(items, &r)?;
                stack.push(Value::Dict(pairs))
            }
            b'a' => {
                let v = pop!();
                match stack.last_mut() {
                    Some(Value::List(l)) => l.push(v),
                    _ => return r.bad("APPEND to a non-list"),
                }
            }
            b'e' => {
                let items = pop_mark!();
                match stack.last_mut() {
                    Some(Value::List(l)) => l.extend(items),
                    _ => return r.bad("APPENDS to a non-list"),
                }
            }
            b's' => {
                let v = pop!();
                let k = pop!();
                match stack.last_mut() {
                    Some(Value::Dict(d)) => d.push((k, v)),
                    _ => return r.bad("SETITEM on a non-dict"),
                }
            }
            b'u' => {
                let items = pop_mark!();
                let p = pairs(items, &r)?;
                match stack.last_mut() {
                    Some(Value::Dict(d)) => d.extend(p),
                    _ => return r.bad("SETITEMS on a non-dict"),
                }
            }
            b'q' => {
                let k = r.u8()? as u64;
                memo.insert(k, stack.last().cloned().unwrap_or(Value::None));
            }
            b'r' => {
                let k = r.u32()? as u64;
                memo.insert(k, stack.last().cloned().unwrap_or(Value::None));
            }
            0x94 => {
                let k = memo.len() as u64;
                memo.insert(k, stack.last().cloned().unwrap_or(Value::None));
            }
            b'h' | b'j' => {
                let k = if op == b'h' {
                    r.u8()? as u64
                } else {
                    r.u32()? as u64
                };
                match memo.get(&k) {
                    Some(v) => stack.push(v.clone()),
                    None => return r.bad(format!("memo key {k} missing")),
                }
            }
            b'c' => {
                let module = r.line()?;
                let name = r.line()?;
                match resolve_global(&module, &name) {
                    Some(g) => stack.push(Value::Global(g)),
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
                let name = pop!();
                let module = pop!();
                let (Value::Str(module), Value::Str(name)) = (module, name) else {
                    return r.bad("STACK_GLOBAL needs two strings");
                };
                match resolve_global(&module, &name) {
                    Some(g) => stack.push(Value::Global(g)),
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
                let pid = pop!();
                let Value::Tuple(t) = pid else {
                    return r.bad("persistent id is not a tuple");
                };
                match t.as_slice() {
                    [
                        Value::Str(tag),
                        Value::Global(Global::Storage(dtype)),
                        Value::Str(key),
                        ..,
                    ] if tag == "storage" => stack.push(Value::Storage {
                        dtype: *dtype,
                        key: key.clone(),
                    }),
                    _ => return r.bad("persistent id is not a torch storage"),
                }
            }
            b'R' => {
                let args = pop!();
                let f = pop!();
                let (Value::Global(g), Value::Tuple(args)) = (f, args) else {
                    return r.bad("REDUCE of something that is not an accepted global");
                };
                stack.push(reduce(g, args, &r)?);
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

fn pairs(items: Vec<Value>, r: &Reader<'_>) -> Result<Vec<(Value, Value)>, PickleError> {
    if !items.len().is_multiple_of(2) {
        return r.bad("odd number of dict items");
    }
    let mut it = items.into_iter();
    let mut out = Vec::new();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    Ok(out)
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
