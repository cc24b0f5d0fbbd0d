//! The command line: one module per subcommand, each with its own clap options.

mod agent;
mod approvals;
mod completions;
mod doctor;
pub(crate) mod git;
mod image;
pub(crate) mod init;
mod proxy;
mod rules;
mod run;
pub(crate) mod service;
pub(crate) mod session;
mod shell;

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use crate::config::{self, Config, Env};

use clap::{Parser, Subcommand};

/// Exit status for an error that stopped a command (bad input, I/O failure).
pub const EXIT_ERROR: u8 = 3;

#[derive(Parser, Debug)]
#[command(
    name = "hh",
    version,
    about = "Run coding agents in sessions whose network hh enforces",
    after_help = "Without a command, hh opens the terminal UI (agent socket: $HH_AGENT_SOCKET, default /run/hh/agent.sock)."
)]
pub struct Cli {
    /// The manager's config file (default: $XDG_CONFIG_HOME/harness-hat/harness-hat.toml).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Without a subcommand, `hh` opens the terminal UI.
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check whether this host can run hh's agent mode (eBPF enforcement).
    Doctor(doctor::Options),
    /// Write a commented starter harness-hat.toml (default ./harness-hat.toml).
    Init(init::Options),
    /// Check requests against the rules; add, review, trust and migrate rules files.
    Rules(rules::Options),
    /// Run the MITM proxy standalone, as an explicit HTTP proxy (CONNECT and absolute-form).
    Proxy(proxy::Options),
    /// Run the host agent (root): eBPF enforcement, sessions, proxy, DNS and control servers.
    Agent(agent::Options),
    /// The agent as a systemd service: print its unit, or install, enable and start it.
    Service(service::Options),
    /// Start, list and stop sessions (through the agent).
    Session(session::Options),
    /// Your sessions (`hh session list`).
    Ps {
        #[arg(long)]
        json: bool,
    },
    /// Ask a coding agent one prompt in a fresh session, headless; its output streams here.
    Run(run::Options),
    /// Open a shell (or run a command) in a running session; with no id, list sessions.
    Shell(shell::Options),
    /// Attach to a session's own terminal (its tmux session `hh`, made on first attach).
    Attach(shell::AttachOptions),
    /// Keep a git-mode session's working tree as a named snapshot (inside the session).
    Snapshot(git::SnapshotOptions),
    /// Bring a git-mode session's working tree back to a snapshot.
    Restore(git::RestoreOptions),
    /// What a git-mode session changed since its clone was made (or since a snapshot).
    Diff(git::DiffOptions),
    /// Build the session images from their Dockerfile stems.
    Image(image::Options),
    /// List the requests waiting for an answer, or answer one (allow/deny ID [--forever]).
    Approvals(approvals::Options),
    /// Print the completion script of a shell (bash, zsh, fish, elvish, powershell).
    Completions(completions::Options),
    /// Print the man page hh(1) in roff (what the .deb installs).
    #[command(hide = true)]
    Manpage,
}

/// Runs the parsed command line; the exit code is the command's verdict.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let Some(command) = cli.command else {
        init_tui_logging(cli.config.as_deref());
        return crate::tui::run(cli.config.as_deref());
    };
    init_logging();
    match command {
        Command::Doctor(options) => doctor::run(&options),
        Command::Init(options) => init::run(&options, cli.config.as_deref()),
        Command::Rules(options) => rules::run(&options, cli.config.as_deref()),
        Command::Proxy(options) => proxy::run(&options, cli.config.as_deref()),
        Command::Agent(options) => agent::run(&options, cli.config.as_deref()),
        Command::Service(options) => service::run(&options, cli.config.as_deref()),
        Command::Session(options) => session::run(&options, cli.config.as_deref()),
        Command::Ps { json } => session::print_list(json),
        Command::Run(options) => run::run(&options, cli.config.as_deref()),
        Command::Shell(options) => shell::run(&options),
        Command::Attach(options) => shell::attach(&options),
        Command::Snapshot(options) => git::snapshot(&options),
        Command::Restore(options) => git::restore(&options),
        Command::Diff(options) => git::diff(&options),
        Command::Image(options) => image::run(&options, cli.config.as_deref()),
        Command::Approvals(options) => approvals::run(&options),
        Command::Completions(options) => completions::run(&options),
        Command::Manpage => completions::manpage(),
    }
}

/// The config at `path`, else at the default place; with the path it was read from.
pub(crate) fn load_config(path: Option<&Path>) -> anyhow::Result<(Config, PathBuf)> {
    let env = Env::from_process();
    let path = match path {
        Some(path) => path.to_path_buf(),
        None => env
            .default_config_path()
            .ok_or(config::ConfigError::NoDefaultPath)?,
    };
    let config = config::load(&path, &env)?;
    Ok((config, path))
}

/// A current-thread runtime for a client command (one connection at a time).
pub(crate) fn client_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    use anyhow::Context as _;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// The TUI owns the terminal: logs go to `$HH_LOG_FILE` (appended) when set, else to `tui.log`
/// in the config's `log_dir` (a 0700 directory, a 0600 file, no symlink followed), else nowhere.
/// `HH_LOG` filters them as for the subcommands (e.g. `HH_LOG=hh=info` for prompt latency).
fn init_tui_logging(config: Option<&Path>) {
    let file = match std::env::var_os("HH_LOG_FILE") {
        Some(path) => std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .ok(),
        None => load_config(config).ok().and_then(|(config, _)| {
            crate::private_fs::PrivateDir::open_or_create(&config.log_dir)
                .and_then(|dir| dir.open_private_append(TUI_LOG))
                .ok()
        }),
    };
    let Some(file) = file else {
        return;
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("HH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("hh=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file))
        .try_init();
}

/// The TUI's log file in the config's `log_dir`.
pub const TUI_LOG: &str = "tui.log";

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
