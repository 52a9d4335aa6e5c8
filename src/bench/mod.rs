//! The benchmarks behind `mmrun bench AREA`: each prints a ratio against a peer measured in
//! the same run (PyTorch, pycocotools, …) or against a hardware limit, with the machine it ran
//! on. Each area owns its own file; the CLI parses the arguments declared here and turns the
//! [`Outcome`] into its exit code.
//!
//! Every area reports through one [`Report`]: its lines for people, and the same facts as
//! fields. `--format text` (the default) prints the lines on stdout, as they always were.
//! `--format json` sends those lines to stderr instead (they still show progress on a
//! terminal) and, when the area ends, whatever its outcome, prints one JSON object on stdout (a
//! bad `MMRUN_CPU_ISA` stops `mmrun` before any area starts, with no object):
//!
//! ```json
//! {"area": "train",
//!  "machine": {"cpu": "…", "cpu_features": ["sse4.2", "avx2"], "mmrun_cpu_kernels": "…",
//!              "mmrun_cpu_elementwise": "…", "peer_build": null},
//!  "settings": {"batch": 2, "threads": 2, …},
//!  "results": {"mmrun_s_per_iter": 0.91, …},
//!  "ratios": {"mmrun_throughput_vs_pytorch": 1.04},
//!  "warnings": [], "errors": [], "outcome": "done"}
//! ```
//!
//! Measurements carry their unit in their key (`_s`, `_ms`, `_gflop_per_s`, `_images_per_s`,
//! `_gb_per_s`); a value that is not a finite number is `null`. Errors and warnings go to
//! stderr in both formats, and into `errors` and `warnings`. `outcome` is `done`, `problems` or
//! `cannot_run`, as the exit code says.

mod core;
mod cuda;
mod data;
mod eval;
mod fusion;
pub mod machine;
mod recipe;
mod train;

pub use crate::util::console::Format;
use serde_json::{Map, Value};
use std::fmt::Display;

/// Arguments of `mmrun bench`.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    area: Area,
    /// Output format: text, or one JSON object on stdout when the benchmark ends (the machine,
    /// the settings, each measurement, each ratio, the outcome), the text lines then going to
    /// stderr.
    #[arg(long, value_enum, default_value = "text", global = true)]
    format: Format,
}

#[derive(clap::Subcommand)]
enum Area {
    /// Recipe parsing and checking time.
    Recipe(recipe::Args),
    /// Conv2d forward/backward GFLOP/s against PyTorch.
    Core(core::Args),
    /// Input pipeline images/s against PyTorch's DataLoader.
    Data(data::Args),
    /// COCO evaluation time against pycocotools and faster-coco-eval.
    Eval(eval::Args),
    /// Training iterations per second against torchvision.
    Train(train::Args),
    /// The CPU training step with fused elementwise chains against its ops one by one.
    Fusion(fusion::Args),
    /// CUDA kernels bandwidth and training step against PyTorch.
    Cuda(cuda::Args),
}

impl Area {
    /// The area's name on the command line (`area` in the JSON report).
    fn name(&self) -> &'static str {
        match self {
            Area::Recipe(_) => "recipe",
            Area::Core(_) => "core",
            Area::Data(_) => "data",
            Area::Eval(_) => "eval",
            Area::Train(_) => "train",
            Area::Fusion(_) => "fusion",
            Area::Cuda(_) => "cuda",
        }
    }
}

/// How a benchmark ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Measured and printed.
    Done,
    /// Measured, but a result was wrong (e.g. mmrun's metrics differ from the peer's).
    Problems,
    /// Could not measure (no peer, bad arguments, a failed run); the reason was printed.
    CannotRun,
}

impl Outcome {
    /// `outcome` in the JSON report.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::Problems => "problems",
            Outcome::CannotRun => "cannot_run",
        }
    }
}

/// What one benchmark reports, in both formats: the lines for people (printed as they come)
/// and the facts behind them (printed as one JSON object by [`Report::finish`] under
/// `--format json`). See the module docs for the object's shape.
#[derive(Debug)]
pub struct Report {
    format: Format,
    area: &'static str,
    machine: Map<String, Value>,
    settings: Map<String, Value>,
    results: Map<String, Value>,
    ratios: Map<String, Value>,
    warnings: Vec<String>,
    errors: Vec<String>,
}

/// `v` as JSON; a float that is not finite (or anything that does not serialise) is `null`.
fn json(v: impl serde::Serialize) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

impl Report {
    /// An empty report of `area`, with the CPU already named (model, instruction sets, the
    /// ISA of mmrun's kernels: cheap, and what every ratio depends on).
    pub fn new(area: &'static str, format: Format) -> Report {
        let mut machine = Map::new();
        machine.insert("cpu".into(), json(machine::cpu_model()));
        machine.insert("cpu_features".into(), json(machine::cpu_isa()));
        machine.insert("mmrun_cpu_kernels".into(), json(machine::mmrun_isa()));
        let fusion = crate::backend::cpu::fused::describe();
        machine.insert("mmrun_cpu_elementwise".into(), json(fusion));
        machine.insert("peer_build".into(), Value::Null);
        Report {
            format,
            area,
            machine,
            settings: Map::new(),
            results: Map::new(),
            ratios: Map::new(),
            warnings: Vec::new(),
            errors: Vec::new(),
        }
    }

    /// The format the report is printed in.
    pub fn format(&self) -> Format {
        self.format
    }

    fn stream(&self) -> crate::util::console::Stream {
        use crate::util::console::Stream;
        match self.format {
            Format::Text => Stream::Out,
            Format::Json => Stream::Err,
        }
    }

    /// A line for people: stdout in text, stderr under `--format json`.
    pub fn line(&self, text: impl Display) {
        crate::util::console::write(self.stream(), format_args!("{text}\n"));
    }

    /// Text for people as it is (no newline added), where [`Report::line`] goes.
    pub fn text(&self, text: impl Display) {
        crate::util::console::write(self.stream(), format_args!("{text}"));
    }

    /// The machine header ([`machine::header`]) as lines, and the PyTorch build it names (with
    /// a `python` to ask) as `machine.peer_build`: `torch … (ATen CPU capability …)`, or
    /// `PyTorch build unknown (why)`.
    pub fn header(&mut self, python: Option<&str>) {
        let lines = machine::header(python);
        for l in &lines {
            self.line(l);
        }
        let peer = lines.iter().find_map(|l| l.strip_prefix("peer: "));
        self.machine("peer_build", peer);
    }

    /// A fact about the machine beyond the CPU (`device` for a GPU).
    pub fn machine(&mut self, key: &str, v: impl serde::Serialize) {
        self.machine.insert(key.into(), json(v));
    }

    /// What was measured, and how: shapes, batch, threads, iterations…
    pub fn setting(&mut self, key: &str, v: impl serde::Serialize) {
        self.settings.insert(key.into(), json(v));
    }

    /// A measurement (its unit in its key) or a fact measured with it (a peer's version).
    pub fn result(&mut self, key: &str, v: impl serde::Serialize) {
        self.results.insert(key.into(), json(v));
    }

    /// A ratio the text prints on a `ratio` line or column.
    pub fn ratio(&mut self, key: &str, v: f64) {
        self.ratios.insert(key.into(), json(v));
    }

    /// A warning or note, printed on stderr as it is written and kept in `warnings`.
    pub fn warning(&mut self, text: String) {
        crate::errln!("{text}");
        self.warnings.push(text);
    }

    /// An error, printed on stderr as `error: {msg}` and kept in `errors`.
    pub fn error(&mut self, msg: impl Display) {
        let msg = msg.to_string();
        crate::errln!("error: {msg}");
        self.errors.push(msg);
    }

    /// Text already written for people (rendered diagnostics), printed on stderr as it is and
    /// kept in `errors`.
    pub fn error_text(&mut self, text: String) {
        crate::err!("{text}");
        self.errors.push(text);
    }

    /// The JSON object of the report, ended by `outcome`.
    pub fn to_json(&self, outcome: Outcome) -> Value {
        serde_json::json!({
            "area": self.area,
            "machine": self.machine,
            "settings": self.settings,
            "results": self.results,
            "ratios": self.ratios,
            "warnings": self.warnings,
            "errors": self.errors,
            "outcome": outcome.name(),
        })
    }

    /// Ends the report: under `--format json`, its object on one line of stdout.
    pub fn finish(self, outcome: Outcome) -> Outcome {
        if self.format == Format::Json {
            crate::outln!("{}", self.to_json(outcome));
        }
        outcome
    }
}

/// The 1-, 5- and 15-minute load averages (`/proc/loadavg`), `null` each where unknown.
fn load_average() -> Vec<Option<f64>> {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut v: Vec<Option<f64>> = text
        .split_whitespace()
        .take(3)
        .map(|x| x.parse().ok())
        .collect();
    v.resize(3, None);
    v
}

/// Runs the benchmark `args` names.
pub fn run(args: Args) -> Outcome {
    let mut report = Report::new(args.area.name(), args.format);
    let outcome = match args.area {
        Area::Recipe(a) => recipe::run(a, &mut report),
        Area::Core(a) => core::run(a, &mut report),
        Area::Data(a) => data::run(a, &mut report),
        Area::Eval(a) => eval::run(a, &mut report),
        Area::Train(a) => train::run(a, &mut report),
        Area::Fusion(a) => fusion::run(a, &mut report),
        Area::Cuda(a) => cuda::run(a, &mut report),
    };
    report.finish(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_is_one_object_with_its_sections() {
        let mut r = Report::new("core", Format::Json);
        r.setting("threads", 2);
        r.result("mmrun_s", 0.5);
        r.result("nan_s", f64::NAN);
        r.ratio("mmrun_vs_torch", 1.25);
        r.errors.push("x".into());
        let v = r.to_json(Outcome::Problems);
        assert_eq!(v["area"], "core");
        assert_eq!(v["outcome"], "problems");
        assert_eq!(v["settings"]["threads"], 2);
        assert_eq!(v["results"]["mmrun_s"], 0.5);
        assert!(v["results"]["nan_s"].is_null());
        assert_eq!(v["ratios"]["mmrun_vs_torch"], 1.25);
        assert_eq!(v["errors"][0], "x");
        assert_eq!(v["machine"]["cpu"], machine::cpu_model().as_str());
        assert!(v["machine"]["peer_build"].is_null());
        assert_eq!(load_average().len(), 3);
    }
}
