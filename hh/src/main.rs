//! The `hh` binary: parse flags, run, print the error chain once, pick the exit code.

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = hh::cli::Cli::parse();
    match hh::cli::run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("hh: {error:#}");
            ExitCode::from(hh::cli::EXIT_ERROR)
        }
    }
}
