//! The `mmrun` binary: parse arguments, run one command, map its outcome to an exit code
//! (0 clean, 1 problems found, 2 could not run).

fn main() -> std::process::ExitCode {
    mmrun::cli::main()
}
