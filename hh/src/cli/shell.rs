//! `hh shell [ID] [-- CMD…]`: a shell (or CMD) in one of your running sessions, through
//! `docker exec` as the session's user; with no id, the list of your sessions.
//!
//! The agent says which sessions are yours (`SO_PEERCRED`); the exec itself needs access to
//! Docker (root or the `docker` group).

use std::{
    io::IsTerminal as _,
    process::{Command, ExitCode},
};

use anyhow::{Context as _, anyhow};

use super::session::{list, print_table};
use crate::api::protocol::SessionInfo;

#[derive(clap::Args, Debug)]
pub struct Options {
    /// The session's id or name.
    id: Option<String>,
    /// The command to run (default: bash, else sh).
    #[arg(last = true)]
    command: Vec<String>,
}

pub fn run(options: &Options) -> anyhow::Result<ExitCode> {
    let sessions = list()?;
    let Some(wanted) = &options.id else {
        print_table(&mut std::io::stdout().lock(), &sessions)?;
        return Ok(ExitCode::SUCCESS);
    };
    let session = sessions
        .iter()
        .find(|s| &s.id == wanted || &s.name == wanted)
        .ok_or_else(|| anyhow!("no running session `{wanted}` of yours (see `hh shell`)"))?;
    exec_in(session, &options.command)
}

/// Runs `command` (or a shell) in the session with this terminal; CMD's exit status is ours.
pub(super) fn exec_in(session: &SessionInfo, command: &[String]) -> anyhow::Result<ExitCode> {
    let mut exec = Command::new("docker");
    exec.arg("exec").arg("-i");
    if std::io::stdin().is_terminal() && std::io::stdout().is_terminal() {
        exec.arg("-t");
    }
    exec.args(["-w", "/workspace", &session.container_id]);
    if command.is_empty() {
        exec.args([
            "sh",
            "-c",
            "command -v bash >/dev/null && exec bash -l || exec sh -l",
        ]);
    } else {
        exec.args(command);
    }
    let status = exec
        .status()
        .context("cannot run `docker exec` (is the docker CLI installed and may you use it?)")?;
    Ok(match status.code() {
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => ExitCode::from(128 + 9),
    })
}
