//! `hh doctor`: prints the checks, one line each, and exits non-zero when agent mode cannot work.

use std::{path::PathBuf, process::ExitCode};

use crate::doctor::{self, Inputs, Mode, Status};

#[derive(clap::Args, Debug)]
pub struct Options {
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Use this cgroup v2 root instead of the one found in /proc/self/mountinfo.
    #[arg(long, value_name = "PATH")]
    cgroup_root: Option<PathBuf>,
    /// Docker endpoint (unix:///path) instead of $DOCKER_HOST or /var/run/docker.sock.
    #[arg(long, value_name = "URI")]
    docker_host: Option<String>,
    /// Instead of the host: which runtimes in this running session of yours (id or name)
    /// trust the session CA, each tried with a real request through the session's proxy.
    #[arg(long, value_name = "ID")]
    session: Option<String>,
}

pub fn run(options: &Options) -> anyhow::Result<ExitCode> {
    if let Some(session) = &options.session {
        return session_trust(session, options.json);
    }
    let report = doctor::diagnose(&Inputs {
        cgroup_root: options.cgroup_root.clone(),
        docker_host: options.docker_host.clone(),
        agent_socket: None,
    });
    if options.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for check in &report.checks {
            let mark = match check.status {
                Status::Pass => "ok  ",
                Status::Warn => "warn",
                Status::Fail => "FAIL",
                Status::Skip => "skip",
            };
            println!("{mark} {:<14} {}", check.name, check.detail);
            if let Some(fix) = &check.fix {
                println!("     {:<14} fix: {fix}", "");
            }
        }
        println!(
            "{}",
            match report.mode {
                Mode::Agent =>
                    "=> agent mode available: `sudo hh agent` can enforce sessions with eBPF",
                Mode::None if !is_root() && report.passed("agent-socket") => {
                    "=> the agent answers you: sessions, shells and image builds go through it \
                     (`sudo hh doctor` checks the host itself)"
                }
                Mode::None => "=> hh cannot run sessions on this host (see FAIL lines)",
            }
        );
    }
    // For a user, what counts is an agent that answers them: the host checks need root.
    let usable = report.mode == Mode::Agent || (!is_root() && report.passed("agent-socket"));
    Ok(if usable {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `hh doctor --session ID`: the trust probe run in the session as its user, through the
/// agent; fails when a runtime the image has does not trust the session CA.
fn session_trust(session: &str, json: bool) -> anyhow::Result<ExitCode> {
    use crate::doctor::session_trust::{TrustStatus, parse, probe_script};
    let command = ["sh".to_owned(), "-c".to_owned(), probe_script()];
    let mut stdout = Vec::new();
    let status = super::shell::exec_with_output(session, &command, &mut |stream, bytes| {
        if stream == super::shell::OutputStream::Stdout {
            stdout.extend_from_slice(bytes);
        }
        Ok(())
    })?;
    let runtimes = parse(&String::from_utf8_lossy(&stdout));
    if status != 0 || runtimes.is_empty() {
        anyhow::bail!("the trust probe did not run in session {session} (exit status {status})");
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&runtimes)?);
    } else {
        for runtime in &runtimes {
            let mark = match runtime.status {
                TrustStatus::Trusts => "ok    trusts the session CA",
                TrustStatus::Fails => "FAIL  does not trust the session CA",
                TrustStatus::Absent => "-     not in this image",
            };
            println!("{:<8} {mark}", runtime.runtime);
            if !runtime.detail.is_empty() {
                println!("{:<8}       {}", "", runtime.detail);
            }
        }
    }
    let failed = runtimes
        .iter()
        .any(|runtime| runtime.status == TrustStatus::Fails);
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}
