//! Graceful interrupt: Ctrl-C or SIGTERM sets a flag; the runner finishes the current
//! iteration, writes a checkpoint and stops with the path to resume from. A second signal
//! while the first is being handled exits at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

static REQUESTED: AtomicBool = AtomicBool::new(false);
static INSTALLED: OnceLock<Result<(), InstallError>> = OnceLock::new();

/// The signal handler could not be installed (the run goes on without graceful interrupts).
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot install the interrupt handler: {source}")]
pub struct InstallError {
    /// What `ctrlc` reported (shared: every later [`install`] returns the first outcome).
    #[source]
    source: Arc<ctrlc::Error>,
}

/// Install the signal handler (once per process; later calls return the first outcome).
pub fn install() -> Result<(), InstallError> {
    INSTALLED
        .get_or_init(|| {
            ctrlc::set_handler(|| {
                if REQUESTED.swap(true, Ordering::SeqCst) {
                    crate::errln!("\nsecond interrupt: exiting without a checkpoint");
                    std::process::exit(130);
                }
                crate::errln!("\ninterrupt: finishing this iteration and writing a checkpoint");
            })
            .map_err(|e| InstallError {
                source: Arc::new(e),
            })
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
