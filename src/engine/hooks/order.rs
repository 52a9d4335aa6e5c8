//! Hook order: the built-in default order, adjusted by `before`/`after` names (a stable
//! topological sort), with clear errors for unknown names, duplicates and cycles.

use super::{Hook, HookOrderError};

/// Built-in hooks in their default order. Across points this reads: guard the losses, step
/// the optimizer, update the EMA, then set the next LR; at epoch end evaluate, decide on
/// stopping, save, and log last so the log shows what happened.
pub const DEFAULT_ORDER: &[&str] = &[
    "nan_guard",
    "optimizer",
    "ema",
    "lr",
    "sampler_seed",
    "eval",
    "early_stopping",
    "checkpoint",
    "log",
];

/// Sort hooks: constraints first, then default order, then registration order.
pub fn order_hooks(hooks: Vec<Box<dyn Hook>>) -> Result<Vec<Box<dyn Hook>>, HookOrderError> {
    let n = hooks.len();
    let names: Vec<String> = hooks.iter().map(|h| h.name().to_string()).collect();
    for (i, a) in names.iter().enumerate() {
        if names[..i].contains(a) {
            return Err(HookOrderError::Twice { name: a.clone() });
        }
    }
    let idx = |name: &str, by: &str| -> Result<usize, HookOrderError> {
        (names.iter().position(|x| x == name)).ok_or_else(|| HookOrderError::Unknown {
            by: by.to_string(),
            name: name.to_string(),
            hooks: names.clone(),
        })
    };
    // edges[a] contains b: a runs before b.
    let mut edges = vec![Vec::new(); n];
    for (i, h) in hooks.iter().enumerate() {
        for b in h.before() {
            edges[i].push(idx(&b, &names[i])?);
        }
        for a in h.after() {
            let j = idx(&a, &names[i])?;
            edges[j].push(i);
        }
    }
    // Rank in the default order (doubled, so custom hooks can sit between built-ins): a
    // custom hook goes just before the earliest built-in it must precede, else just after
    // the latest built-in it must follow, else after all built-ins in registration order.
    let builtin = |name: &str| {
        DEFAULT_ORDER
            .iter()
            .position(|x| *x == name)
            .map(|d| 2 * d + 1)
    };
    let ranks: Vec<usize> = (0..n)
        .map(|i| {
            builtin(&names[i]).unwrap_or_else(|| {
                let h = &hooks[i];
                let before = h.before().iter().filter_map(|b| builtin(b)).min();
                let after = h.after().iter().filter_map(|a| builtin(a)).max();
                match (before, after) {
                    (Some(b), _) => b - 1,
                    (None, Some(a)) => a + 1,
                    (None, None) => 2 * DEFAULT_ORDER.len() + 1,
                }
            })
        })
        .collect();
    let rank = |i: usize| (ranks[i], i);
    let mut indeg = vec![0usize; n];
    for e in &edges {
        for &b in e {
            indeg[b] += 1;
        }
    }
    let mut done = Vec::with_capacity(n);
    let mut ready: Vec<usize> = (0..n).filter(|&i| indeg[i] == 0).collect();
    while !ready.is_empty() {
        ready.sort_by_key(|&i| std::cmp::Reverse(rank(i)));
        let i = ready.pop().unwrap();
        done.push(i);
        for &b in &edges[i] {
            indeg[b] -= 1;
            if indeg[b] == 0 {
                ready.push(b);
            }
        }
    }
    if done.len() < n {
        let among: Vec<String> = (0..n)
            .filter(|i| !done.contains(i))
            .map(|i| names[i].clone())
            .collect();
        return Err(HookOrderError::Cycle { among });
    }
    let mut slots: Vec<Option<Box<dyn Hook>>> = hooks.into_iter().map(Some).collect();
    Ok(done.into_iter().map(|i| slots[i].take().unwrap()).collect())
}
