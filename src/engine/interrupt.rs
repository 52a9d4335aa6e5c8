//! Graceful interrupt: Ctrl-C or SIGTERM sets a flag; the runner finishes the current
//! iteration, writes a checkpoint and stops with the path to resume from. A second signal
//! while the first is being handled exits at once.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);
static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();

/// Install the signal handler (once per process; later calls return the first outcome).
pub fn install() -> Result<(), String> {
    INSTALLED
        .get_or_init(|| {
            ctrlc::set_handler(|| {
                if REQUESTED.swap(true, Ordering::SeqCst) {
                    crate::errln!("\nsecond interrupt: exiting without a checkpoint");
                    std::process::exit(130);
                }
                crate::errln!("\ninterrupt: finishing this iteration and writing a checkpoint");
            })
            .map_err(|e| format!("cannot install the interrupt handler: {e}"))
        })
        .clone()
}

/// Whether a stop was requested.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// Request a stop as a signal would (tests, embedding programs).
pub fn request() {
    REQUESTED.store(true, Ordering::SeqCst);
}

/// Forget a handled request.
pub fn clear() {
    REQUESTED.store(false, Ordering::SeqCst);
}
