//! The console: every line mmrun prints goes through here, so a closed or failing stdout or
//! stderr never panics (Rust's `println!` panics on `EPIPE`, which is what
//! `mmrun exec R | head -1` produces).
//!
//! What happens when a stream fails is the command's choice, set once at start
//! ([`set_on_closed`]):
//! - [`OnClosed::Exit`], for commands that only print (`check`, `explain`, `plan`, `eval`):
//!   a closed pipe ends the process quietly with [`EXIT_CLOSED_PIPE`], as Unix tools end on
//!   `SIGPIPE`; any other write error is reported on the other stream and exits with 2.
//! - [`OnClosed::Continue`], for commands whose work is files (`exec`, `test`, `data`,
//!   `bench`): later output to that stream is dropped, a one-line notice goes to the other
//!   stream, and the work goes on — a training run keeps writing its logs and checkpoints.

use std::fmt;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

/// What a failed console write does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnClosed {
    /// End the process (commands that only print).
    Exit,
    /// Drop the stream's output and go on (commands whose work is files).
    Continue,
}

/// Exit status after a closed pipe: what a shell reports for a process ended by `SIGPIPE`.
pub const EXIT_CLOSED_PIPE: i32 = 141;

static POLICY: AtomicU8 = AtomicU8::new(0);
static STDOUT_GONE: AtomicBool = AtomicBool::new(false);
static STDERR_GONE: AtomicBool = AtomicBool::new(false);

/// Choose what a failed console write does, for the rest of the process.
pub fn set_on_closed(policy: OnClosed) {
    POLICY.store(policy as u8, Ordering::SeqCst);
}

fn policy() -> OnClosed {
    if POLICY.load(Ordering::SeqCst) == OnClosed::Continue as u8 {
        OnClosed::Continue
    } else {
        OnClosed::Exit
    }
}

/// Which console stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Out,
    Err,
}

impl Stream {
    fn gone(self) -> &'static AtomicBool {
        match self {
            Stream::Out => &STDOUT_GONE,
            Stream::Err => &STDERR_GONE,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Stream::Out => "stdout",
            Stream::Err => "stderr",
        }
    }
    fn other(self) -> Stream {
        match self {
            Stream::Out => Stream::Err,
            Stream::Err => Stream::Out,
        }
    }
}

/// Drop everything later written to stdout (the ranks of a data-parallel run other than 0:
/// rank 0 reports for all of them).
pub fn quiet_stdout() {
    STDOUT_GONE.store(true, Ordering::SeqCst);
}

/// Whether writes to `stream` have failed (and are being dropped).
pub fn is_closed(stream: Stream) -> bool {
    stream.gone().load(Ordering::SeqCst)
}

fn try_write(stream: Stream, args: fmt::Arguments<'_>) -> io::Result<()> {
    match stream {
        Stream::Out => {
            let mut o = io::stdout().lock();
            o.write_fmt(args)?;
            o.flush()
        }
        Stream::Err => {
            let mut e = io::stderr().lock();
            e.write_fmt(args)?;
            e.flush()
        }
    }
}

/// Write to a console stream; never panics. Used through [`out!`], [`outln!`], [`err!`],
/// [`errln!`].
pub fn write(stream: Stream, args: fmt::Arguments<'_>) {
    if is_closed(stream) {
        return;
    }
    // Above any progress bar on screen (only the write: the error path below writes again).
    let Err(e) = super::progress::lifted(|| try_write(stream, args)) else {
        return;
    };
    if stream.gone().swap(true, Ordering::SeqCst) {
        return;
    }
    let other = stream.other();
    match policy() {
        OnClosed::Exit if e.kind() == io::ErrorKind::BrokenPipe => {
            std::process::exit(EXIT_CLOSED_PIPE)
        }
        OnClosed::Exit => {
            write(
                other,
                format_args!("error: cannot write to {}: {e}\n", stream.name()),
            );
            std::process::exit(2)
        }
        OnClosed::Continue => write(
            other,
            format_args!(
                "warning: cannot write to {} ({e}); its output is dropped from here on, the work goes on\n",
                stream.name()
            ),
        ),
    }
}

/// `print!` that never panics.
#[macro_export]
macro_rules! out {
    ($($t:tt)*) => { $crate::util::console::write($crate::util::console::Stream::Out, format_args!($($t)*)) };
}

/// `println!` that never panics.
#[macro_export]
macro_rules! outln {
    () => { $crate::util::console::write($crate::util::console::Stream::Out, format_args!("\n")) };
    ($($t:tt)*) => { $crate::util::console::write($crate::util::console::Stream::Out, format_args!("{}\n", format_args!($($t)*))) };
}

/// `eprint!` that never panics.
#[macro_export]
macro_rules! err {
    ($($t:tt)*) => { $crate::util::console::write($crate::util::console::Stream::Err, format_args!($($t)*)) };
}

/// `eprintln!` that never panics.
#[macro_export]
macro_rules! errln {
    () => { $crate::util::console::write($crate::util::console::Stream::Err, format_args!("\n")) };
    ($($t:tt)*) => { $crate::util::console::write($crate::util::console::Stream::Err, format_args!("{}\n", format_args!($($t)*))) };
}

/// How a command reports: text for people, JSON for scripts (one object per report, one per
/// line when there are several).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Text (`human` is accepted too).
    #[default]
    #[value(alias = "human")]
    Text,
    /// JSON.
    Json,
}
