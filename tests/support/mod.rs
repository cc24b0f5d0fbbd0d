//! Shared by the end-to-end tests: the real binary, and the root requirement.
#![allow(dead_code, reason = "each test file uses its own subset")]

pub mod kernel;
pub mod leftovers;
pub mod llm;
pub mod session_world;
pub mod tmux;
pub mod upstream;
pub mod user_world;
pub mod users;

use std::{
    io::{BufRead as _, BufReader},
    process::{Child, Command, Output, Stdio},
};

/// The `hh` binary cargo built for this test run.
pub fn hh() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hh"))
}

/// Runs `hh` with `args` and returns its output.
pub fn run_hh(args: &[&str]) -> Output {
    hh().args(args).output().expect("the hh binary runs")
}

/// True when this process is root. Tests that need root call [`require_root`].
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Returns whether a root-only test may run. Outside CI a non-root run skips, saying why; in CI
/// (`CI` set, and CI runs as root) a missing privilege is a failure, never a silent skip.
pub fn require_root(test: &str) -> bool {
    if is_root() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{test} needs root, and CI must run it as root"
    );
    eprintln!("skipping {test}: needs root (eBPF, cgroups); CI runs it as root");
    false
}

/// Runs `docker ARGS`; panics with its stderr when it fails, else returns its trimmed stdout.
pub fn docker(args: &[&str]) -> String {
    let output = Command::new("docker")
        .args(args)
        .output()
        .expect("docker runs");
    assert!(
        output.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Spawns `command` (stdout piped, stderr inherited) and reads its first stdout line, which
/// must start with `announcement` (`listening on `, `hh agent: listening on `); returns the
/// child and the rest of that line.
pub fn spawn_announcing(command: &mut Command, announcement: &str) -> (Child, String) {
    spawn_announcing_to(command, announcement, Stdio::inherit())
}

/// [`spawn_announcing`] with the command's stderr going to `stderr` (a log file).
pub fn spawn_announcing_to(
    command: &mut Command,
    announcement: &str,
    stderr: Stdio,
) -> (Child, String) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("the command starts");
    leftovers::record(leftovers::Made::Process(child.id()));
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let rest = line
        .trim()
        .strip_prefix(announcement)
        .unwrap_or_else(|| panic!("expected `{announcement}…`, the command printed `{line}`"))
        .to_owned();
    (child, rest)
}

/// `hh rules trust` arguments that trust, for `workspace`, exactly the versions `hh rules
/// status --json` printed (`status_json`) for the files not in force: what a person does
/// after looking, without a terminal to answer on.
pub fn trust_args(workspace: &str, status_json: &[u8]) -> Vec<String> {
    let files: Vec<serde_json::Value> = serde_json::from_slice(status_json).unwrap_or_else(|e| {
        panic!(
            "status --json: {e}: {}",
            String::from_utf8_lossy(status_json)
        )
    });
    let mut args: Vec<String> = ["rules", "trust", "--workspace", workspace]
        .map(String::from)
        .to_vec();
    for file in files.iter().filter(|file| file["in_force"] == false) {
        args.push("--sha256".into());
        args.push(file["sha256"].as_str().unwrap().into());
    }
    args
}
