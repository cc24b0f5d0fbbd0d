//! Running commands: one helper that prints what it runs and names the command that failed.

use std::{
    path::PathBuf,
    process::{Command, Output, Stdio},
};

use anyhow::{Context as _, Result, bail};

/// The workspace root: xtask lives one level below it.
pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// How a command reads in messages: program and arguments, shell-like.
pub fn display(command: &Command) -> String {
    let mut words = vec![command.get_program().to_string_lossy().into_owned()];
    words.extend(command.get_args().map(|a| a.to_string_lossy().into_owned()));
    words.join(" ")
}

/// Runs `command` with inherited stdio; fails naming it when it fails.
pub fn run(command: &mut Command) -> Result<()> {
    eprintln!("xtask: $ {}", display(command));
    let status = command
        .status()
        .with_context(|| format!("could not start `{}`", display(command)))?;
    if !status.success() {
        bail!("`{}` failed ({status})", display(command));
    }
    Ok(())
}

/// Runs `command` quietly and returns its output, whatever its status (for probes).
pub fn probe(command: &mut Command) -> Option<Output> {
    command.stdin(Stdio::null()).output().ok()
}

/// Runs `command` quietly; true when it started and exited 0.
pub fn succeeds(command: &mut Command) -> bool {
    probe(command).is_some_and(|output| output.status.success())
}

/// True when this process runs as root (no `sudo` needed for installs).
pub fn is_root() -> bool {
    // /proc/self/status "Uid:" line: real, effective, saved, fs.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("Uid:"))
                .and_then(|uids| uids.split_whitespace().nth(1).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

/// A command that runs as root: directly when we are root, else through `sudo`.
pub fn as_root(program: &str) -> Command {
    if is_root() {
        // spawns: the caller's program
        Command::new(program)
    } else {
        let mut command = Command::new("sudo");
        command.arg(program);
        command
    }
}
