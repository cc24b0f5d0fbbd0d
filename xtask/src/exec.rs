//! Running commands: one helper that prints what it runs and names the command that failed.

use std::{
    path::PathBuf,
    process::{Command, Output, Stdio},
    sync::atomic::{AtomicI32, Ordering},
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

/// Runs `command` with stderr inherited and returns its output; fails naming it when it fails.
pub fn output(command: &mut Command) -> Result<Output> {
    eprintln!("xtask: $ {}", display(command));
    let output = command
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("could not start `{}`", display(command)))?;
    if !output.status.success() {
        bail!("`{}` failed ({})", display(command), output.status);
    }
    Ok(output)
}

/// The child [`run_forwarding_signals`] waits for (0: none).
static CHILD: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(signal: libc::c_int) {
    let child = CHILD.load(Ordering::SeqCst);
    if child > 0 {
        // SAFETY: kill(2) is async-signal-safe.
        unsafe { libc::kill(child, signal) };
    }
}

/// [`run`], with SIGINT, SIGTERM and SIGHUP sent to xtask passed on to the child instead of
/// ending xtask: the child decides how to stop (a bench removes what it made first), and
/// xtask reports how it ended.
pub fn run_forwarding_signals(command: &mut Command) -> Result<()> {
    eprintln!("xtask: $ {}", display(command));
    let mut child = command
        .spawn()
        .with_context(|| format!("could not start `{}`", display(command)))?;
    CHILD.store(child.id() as i32, Ordering::SeqCst);
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: `forward` only calls async-signal-safe functions.
        unsafe { libc::signal(signal, forward as *const () as libc::sighandler_t) };
    }
    let status = child.wait();
    CHILD.store(0, Ordering::SeqCst);
    let status = status.with_context(|| format!("waiting for `{}`", display(command)))?;
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
