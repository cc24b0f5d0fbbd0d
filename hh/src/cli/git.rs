//! `hh snapshot ID NAME`, `hh restore ID NAME`, `hh diff ID [NAME] [--stat]`: checkpoints of a
//! git-mode session's work ([`crate::git_workspace`]), made and read inside the session, as its
//! user, so that no host git ever runs in its clone.

use std::{
    io::{IsTerminal as _, Write as _},
    process::ExitCode,
};

use anyhow::bail;

use super::{
    session::find,
    shell::{OutputStream, exec_with_output},
};
use crate::git_workspace::{self, SessionScript};

#[derive(clap::Args, Debug)]
pub struct SnapshotOptions {
    /// The session's id or name.
    id: String,
    /// The snapshot's name (letters, digits, `.`, `_`, `-`); an existing one is replaced.
    name: String,
}

#[derive(clap::Args, Debug)]
pub struct RestoreOptions {
    /// The session's id or name.
    id: String,
    /// The snapshot to go back to (what is there now is kept as snapshot `before-restore`).
    name: String,
}

#[derive(clap::Args, Debug)]
pub struct DiffOptions {
    /// The session's id or name.
    id: String,
    /// Compare with this snapshot instead of the clone's start.
    name: Option<String>,
    /// Changed files and counts instead of the whole diff.
    #[arg(long)]
    stat: bool,
}

pub fn snapshot(options: &SnapshotOptions) -> anyhow::Result<ExitCode> {
    git_workspace::check_snapshot_name(&options.name)?;
    run(&options.id, SessionScript::Snapshot, &[&options.name])
}

pub fn restore(options: &RestoreOptions) -> anyhow::Result<ExitCode> {
    git_workspace::check_snapshot_name(&options.name)?;
    run(&options.id, SessionScript::Restore, &[&options.name])
}

pub fn diff(options: &DiffOptions) -> anyhow::Result<ExitCode> {
    let mut args = Vec::new();
    if let Some(name) = &options.name {
        git_workspace::check_snapshot_name(name)?;
        args.push(name.as_str());
    }
    if options.stat {
        args.push("--stat");
    }
    run(&options.id, SessionScript::Diff, &args)
}

/// Runs `script` in git-mode session `id`; its output here as it comes (what reaches a
/// terminal made safe for it: the session wrote the files the diff shows), its status ours.
fn run(id: &str, script: SessionScript, args: &[&str]) -> anyhow::Result<ExitCode> {
    let info = find(id)?;
    if info.git.is_none() {
        bail!(
            "session {id} works in its workspace itself; snapshots, restores and diffs are for \
             git mode (`mode = \"git\"` or `hh session start --git`)"
        );
    }
    let (out_tty, err_tty) = (
        std::io::stdout().is_terminal(),
        std::io::stderr().is_terminal(),
    );
    let command = git_workspace::session_command(script, args);
    let status = exec_with_output(&info.id, &command, &mut |stream, bytes| {
        let (tty, mut sink): (bool, Box<dyn std::io::Write>) = match stream {
            OutputStream::Stdout => (out_tty, Box::new(std::io::stdout().lock())),
            OutputStream::Stderr => (err_tty, Box::new(std::io::stderr().lock())),
        };
        if tty {
            sink.write_all(&git_workspace::for_terminal(bytes))?;
        } else {
            sink.write_all(bytes)?;
        }
        sink.flush()
    })?;
    Ok(ExitCode::from(u8::try_from(status).unwrap_or(1)))
}
