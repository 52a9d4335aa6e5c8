//! Timing of compiled against interpreted schedule expressions, for `mmrun bench` (the CLI
//! prints [`ExprTiming::ratio`]).

use super::compile_expr;
use crate::schedule::expr::{Vars, parse};
use std::hint::black_box;
use std::time::Instant;

/// Nanoseconds per evaluation of one expression.
#[derive(Clone, Copy, Debug)]
pub struct ExprTiming {
    pub jit_ns: f64,
    pub interp_ns: f64,
}

impl ExprTiming {
    /// How many times faster the compiled code is.
    pub fn ratio(&self) -> f64 {
        self.interp_ns / self.jit_ns
    }
}

/// Evaluates `src` `evals` times compiled and `evals` times interpreted, over a sweep of
/// iterations, and returns the time per evaluation of each.
pub fn time_expr(src: &str, evals: u64) -> Result<ExprTiming, String> {
    let e = parse(src).map_err(|e| e.to_string())?;
    let c = compile_expr(&e).map_err(|e| e.to_string())?;
    let vars = |i: u64| Vars {
        epoch: (i / 1000) as f64,
        iter: i as f64,
        progress: i as f64 / evals as f64,
        base: 0.02,
        max_epochs: (evals / 1000 + 1) as f64,
        max_iters: evals as f64,
    };
    let time = |f: &dyn Fn(&Vars) -> f64| {
        let t = Instant::now();
        let mut acc = 0.0;
        for i in 0..evals {
            acc += f(black_box(&vars(i)));
        }
        black_box(acc);
        t.elapsed().as_nanos() as f64 / evals as f64
    };
    // Warm both paths first (page faults, branch predictors).
    time(&|v| c.call(v));
    time(&|v| e.eval(v));
    Ok(ExprTiming {
        jit_ns: time(&|v| c.call(v)),
        interp_ns: time(&|v| e.eval(v)),
    })
}

#[cfg(test)]
mod tests {
    /// Prints the timing; run with `--release -- --ignored --nocapture`. Not an assertion:
    /// timings belong to `mmrun bench`.
    #[test]
    #[ignore]
    fn print_expr_timing() {
        for src in [
            "base_lr * (1 - progress) ^ 0.9",
            "if(iter < 500, base_lr * (0.001 + 0.999 * iter / 500), \
             0.5 * base_lr * (1 + cos(3.141592653589793 * progress)))",
            "base_lr * 0.1 ^ ((epoch >= 8) + (epoch >= 11)) * min(1, (iter + 1) / 500)",
        ] {
            let t = super::time_expr(src, 2_000_000).unwrap();
            crate::outln!(
                "{src}\n  jit {:.2} ns, interpreter {:.2} ns, ratio {:.2}x",
                t.jit_ns,
                t.interp_ns,
                t.ratio()
            );
        }
    }
}
