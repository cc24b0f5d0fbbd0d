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
}

pub fn run(options: &Options) -> anyhow::Result<ExitCode> {
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

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}
