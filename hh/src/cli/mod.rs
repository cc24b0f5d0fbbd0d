//! The command line: one module per subcommand, each with its own clap options.

mod approvals;
mod doctor;
mod init;
mod proxy;
mod rules;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

/// Exit status for an error that stopped a command (bad input, I/O failure).
pub const EXIT_ERROR: u8 = 3;

#[derive(Parser, Debug)]
#[command(
    name = "hh",
    version,
    about = "Run coding agents in sessions whose network hh enforces"
)]
pub struct Cli {
    /// The manager's config file (default: $XDG_CONFIG_HOME/harness-hat/harness-hat.toml).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check whether this host can run hh, and in which mode (agent or TUN fallback).
    Doctor(doctor::Options),
    /// Write a commented starter harness-hat.toml (default ./harness-hat.toml).
    Init(init::Options),
    /// Check a request against the rules, or add a rule to a workspace's harness-rules.toml.
    Rules(rules::Options),
    /// Run the MITM proxy standalone, as an explicit HTTP proxy (CONNECT and absolute-form).
    Proxy(proxy::Options),
    /// List the requests waiting for an answer, or answer one (allow/deny ID [--forever]).
    Approvals(approvals::Options),
}

/// Runs the parsed command line; the exit code is the command's verdict.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    init_logging();
    match cli.command {
        Command::Doctor(options) => doctor::run(&options),
        Command::Init(options) => init::run(&options, cli.config.as_deref()),
        Command::Rules(options) => rules::run(&options, cli.config.as_deref()),
        Command::Proxy(options) => proxy::run(&options),
        Command::Approvals(options) => approvals::run(&options),
    }
}

/// Logs go to stderr, filtered by `HH_LOG` (e.g. `HH_LOG=hh=debug`); quiet by default.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // A second call (tests calling `run` twice) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
