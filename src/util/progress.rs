//! Progress bars on stderr, drawn by indicatif when stderr is a terminal and hidden otherwise
//! (a pipe or a file gets the log lines alone). One look for every bar mmrun draws: done out
//! of total, the rate in the bar's unit, and the ETA as `H:MM:SS` like the log lines.
//!
//! Every line the console prints while a bar is on screen lands above it: `util::console`
//! writes through [`lifted`], which lifts the newest bar shown, so no printer needs to know
//! about bars.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// A progress bar counting `unit`s to a known total.
pub struct Progress {
    bar: ProgressBar,
    id: u64,
}

/// The bars on screen, oldest first (an evaluation's bar, drawn over a training run's line
/// while it runs and cleared after, comes last).
static SHOWN: Mutex<Vec<(u64, ProgressBar)>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(0);
/// Whether bars are drawn at all: a recipe's `hooks.log.progress_bar = false` turns off the
/// evaluation's bar too, not only the training bar.
static ENABLED: AtomicBool = AtomicBool::new(true);

/// Turns every later bar on or off (on by default).
pub fn set_enabled(on: bool) {
    ENABLED.store(on, Ordering::Relaxed);
}

/// Runs `write` with the newest bar on screen lifted, so what it prints appears above it.
pub fn lifted<R>(write: impl FnOnce() -> R) -> R {
    let top = SHOWN
        .lock()
        .ok()
        .and_then(|shown| shown.last().map(|(_, bar)| bar.clone()));
    match top {
        Some(bar) => bar.suspend(write),
        None => write(),
    }
}

impl Progress {
    /// A bar from `done` to `total` (`done > 0` for a resumed run: the rate counts from here).
    /// `label` prefixes the bar (`eval`), `unit` names what is counted (`it`, `img`). Drawn
    /// only when `show` and stderr is a terminal.
    pub fn new(label: &str, unit: &'static str, done: u64, total: u64, show: bool) -> Progress {
        let target = if show && ENABLED.load(Ordering::Relaxed) {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let prefix = if label.is_empty() {
            String::new()
        } else {
            format!("{label} ")
        };
        let template = format!("{prefix}[{{bar:30}}] {{pos}}/{{len}} {{rate}} ETA {{eta_hms}}");
        let style = ProgressStyle::with_template(&template)
            .unwrap_or_else(|e| unreachable!("the template is fixed above: {e}"))
            .progress_chars("# ")
            .with_key("rate", move |s: &ProgressState, w: &mut dyn Write| {
                let _ = match s.pos() {
                    0 => write!(w, "- {unit}/s"),
                    _ => write!(w, "{:.2} {unit}/s", s.per_sec()),
                };
            })
            .with_key("eta_hms", |s: &ProgressState, w: &mut dyn Write| {
                let _ = w.write_str(&hms(s.eta().as_secs_f64()));
            });
        let bar = ProgressBar::with_draw_target(Some(total.max(1)), target)
            .with_style(style)
            .with_position(done.min(total));
        bar.reset_eta();
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        if !bar.is_hidden()
            && let Ok(mut shown) = SHOWN.lock()
        {
            shown.push((id, bar.clone()));
        }
        Progress { bar, id }
    }

    /// Whether the bar is drawn (stderr is a terminal and it was asked for).
    pub fn is_drawn(&self) -> bool {
        !self.bar.is_hidden()
    }

    /// Moves the bar to `done`.
    pub fn set(&self, done: u64) {
        self.bar.set_position(done);
    }

    /// Draws the final state and leaves it on screen; later lines print below it.
    pub fn finish(self) {
        self.bar.finish();
        if self.forget() {
            crate::errln!();
        }
    }

    /// Removes the bar from the screen.
    pub fn clear(self) {
        self.bar.finish_and_clear();
        self.forget();
    }

    /// Takes the bar off the list of bars on screen; whether it was there.
    fn forget(&self) -> bool {
        let Ok(mut shown) = SHOWN.lock() else {
            return false;
        };
        let before = shown.len();
        shown.retain(|(id, _)| *id != self.id);
        shown.len() < before
    }
}

impl Drop for Progress {
    /// A bar dropped on an error path stays on screen as it was; the lines after it go below.
    fn drop(&mut self) {
        if self.forget() {
            self.bar.abandon();
            crate::errln!();
        }
    }
}

/// Seconds as `H:MM:SS`.
pub fn hms(s: f64) -> String {
    let s = s.max(0.0) as u64;
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}
