//! `hh run --workspace W --harness NAME [--setup-script CMD] [--timeout SECS] PROMPT`: one
//! prompt to a coding agent in a fresh session, headless. The setup script runs first in
//! `/workspace` (a failure stops the run with its stderr); the agent's output streams to ours
//! as it comes, with each request the session was refused; hh exits with the agent's status;
//! the session is removed afterwards unless `--keep`.
//!
//! `--json`: one JSON object per line instead — `started`, `output` (`stream`, `text`),
//! `denied` (`method`, `host`, `path`, `port`), `setup_failed`, `timed_out`, `finished`
//! (`status`), and in git mode `git` (`message`: the commit on exit, the branches that came
//! back, the push).

use std::{
    io::Write as _,
    process::ExitCode,
    sync::{Arc, Mutex, mpsc},
    time::Duration,
};

use anyhow::bail;
use serde_json::json;

use super::git::GitEventKind;
use super::{
    session::{call, passthrough_env},
    shell::{OutputStream, exec_with_output},
};
use crate::{
    api::{
        client::{Client, socket_path},
        protocol::{ClientRequest, Event, Reply, StartSession},
    },
    harness::Harness,
};

#[derive(clap::Args, Debug)]
pub struct Options {
    #[arg(long)]
    workspace: String,
    /// The container profile (`[container_profiles.NAME]`).
    #[arg(long, default_value = "default")]
    template: String,
    /// The coding agent (`claude`, `codex`, `gemini`, `opencode`, `pi`).
    #[arg(long)]
    harness: String,
    /// A shell command run first in the session's workspace; a non-zero exit stops the run.
    #[arg(long, value_name = "CMD")]
    setup_script: Option<String>,
    /// Stop the agent after this many seconds (exit status 124).
    #[arg(long, value_name = "SECS")]
    timeout: Option<u64>,
    /// Leave the session running afterwards (its id is printed last, on stderr).
    #[arg(long)]
    keep: bool,
    /// JSON lines on stdout instead of the agent's own output.
    #[arg(long)]
    json: bool,
    /// What to ask.
    prompt: String,
}

/// The exit status of a run stopped by `--timeout` (as timeout(1)).
const TIMED_OUT: u8 = 124;

pub fn run(options: &Options, config: Option<&std::path::Path>) -> anyhow::Result<ExitCode> {
    let config = super::session::own_config(config);
    let config = config.as_ref();
    let harness = super::session::harness_named(&options.harness, config)?;
    let report = Report::new(options.json);
    // Headless: said, never asked.
    let clone = super::session::git_mode(config, &options.workspace)
        .then(|| {
            report.event(json!({"event": "git", "kind": GitEventKind::CloneStarted,
                                "message": format!("cloning workspace {}", options.workspace)}));
            let clone = super::session::make_clone(config, &options.workspace)?;
            report.event(json!({"event": "git", "kind": GitEventKind::CloneFinished,
                                "message": format!("cloned into {}", clone.path.display()),
                                "clone": clone.path, "origin": clone.origin}));
            anyhow::Ok(clone)
        })
        .transpose()?;
    let clone_path = clone.as_ref().map(|clone| clone.path.clone());
    super::session::sensitive_files_ok(config, &options.workspace, clone_path.as_deref(), false)?;
    let harness = &harness;
    let info = match call(ClientRequest::StartSession(StartSession {
        workspace: options.workspace.clone(),
        template: options.template.clone(),
        name: None,
        command: Vec::new(),
        env: passthrough_env(config, &options.workspace, Some(harness)),
        harness: Some(harness.name.to_owned()),
        git_clone: clone_path.clone(),
        git_origin: clone.as_ref().and_then(|clone| clone.origin.clone()),
        secrets: super::session::secret_values(config),
    }))
    .inspect_err(|_| {
        if let Some(clone) = &clone_path {
            let _ = std::fs::remove_dir_all(clone);
        }
    })? {
        Reply::Session(info) => info,
        other => bail!("unexpected reply from the agent: {other:?}"),
    };
    for notice in &info.notices {
        eprintln!("hh run: {notice}");
    }
    let id = info.id.clone();
    report.event(
        json!({"event": "started", "session": id, "harness": harness.name, "image": info.image,
               "git": info.git}),
    );
    watch_denials(&id, report.clone())?;
    let outcome = run_in(&id, harness, options, &report);
    if options.keep {
        eprintln!("hh run: session kept: {id}");
    } else {
        match super::session::stop_session(&info, config) {
            Ok(said) => {
                for line in said {
                    report
                        .event(json!({"event": "git", "kind": line.kind, "message": line.message}));
                    eprintln!("hh run: {line}");
                }
            }
            Err(error) => eprintln!("hh run: could not stop session {id}: {error:#}"),
        }
    }
    let (status, finished) = outcome?;
    if let Some(status) = finished {
        report.event(json!({"event": "finished", "status": status}));
    }
    Ok(ExitCode::from(status))
}

/// The setup script, then the agent; the status hh exits with, and the agent's own when it ran
/// to its end (for the `finished` event, the run's last line once the session stopped).
fn run_in(
    id: &str,
    harness: &Harness,
    options: &Options,
    report: &Report,
) -> anyhow::Result<(u8, Option<i32>)> {
    if let Some(script) = &options.setup_script {
        let mut stderr = Vec::new();
        let command = ["sh", "-c", script.as_str()].map(str::to_owned);
        let status = exec_with_output(id, &command, &mut |stream, bytes| {
            if stream == OutputStream::Stderr {
                stderr.extend_from_slice(bytes);
            }
            Ok(())
        })?;
        if status != 0 {
            let stderr = String::from_utf8_lossy(&stderr).into_owned();
            if options.json {
                report.event(json!({"event": "setup_failed", "status": status, "stderr": stderr}));
            } else {
                eprint!("{stderr}");
                eprintln!("hh run: the setup script exited with {status}; the agent did not run");
            }
            return Ok((exit_status(status), None));
        }
    }
    let command = harness.one_shot_command(&options.prompt);
    let (done, finished) = mpsc::channel();
    let session = id.to_owned();
    let agent_report = report.clone();
    std::thread::spawn(move || {
        let mut output = agent_report.output_sink();
        let status = exec_with_output(&session, &command, &mut output);
        let _ = done.send(status);
    });
    let status = match options.timeout {
        Some(seconds) => match finished.recv_timeout(Duration::from_secs(seconds)) {
            Ok(status) => status?,
            Err(_) => {
                report.event(json!({"event": "timed_out", "after_secs": seconds}));
                if !options.json {
                    eprintln!(
                        "hh run: {} still running after {seconds} s; stopped",
                        harness.title
                    );
                }
                return Ok((TIMED_OUT, None));
            }
        },
        None => finished
            .recv()
            .map_err(|_| anyhow::anyhow!("the agent's relay ended without a status"))??,
    };
    Ok((exit_status(status), Some(status)))
}

fn exit_status(status: i32) -> u8 {
    u8::try_from(status).unwrap_or(1)
}

/// Reports each request of session `id` that was refused, from now on (subscribed before the
/// agent starts, so none is missed).
fn watch_denials(id: &str, report: Report) -> anyhow::Result<()> {
    let (ready, subscribed) = mpsc::channel::<anyhow::Result<()>>();
    let session = id.to_owned();
    std::thread::spawn(move || {
        let runtime = match super::client_runtime() {
            Ok(runtime) => runtime,
            Err(error) => {
                let _ = ready.send(Err(error));
                return;
            }
        };
        runtime.block_on(async move {
            let subscription = async {
                let client = Client::connect(&socket_path()).await?;
                client.subscribe().await
            };
            let mut events = match subscription.await {
                Ok(events) => {
                    let _ = ready.send(Ok(()));
                    events
                }
                Err(error) => {
                    let _ = ready.send(Err(error.into()));
                    return;
                }
            };
            while let Ok(event) = events.next().await {
                if let Event::Decision(decision) = event
                    && decision.session == session
                    && decision.decision == "deny"
                {
                    report.denied(&decision);
                }
            }
        });
    });
    subscribed
        .recv()
        .map_err(|_| anyhow::anyhow!("the event subscription ended before it began"))?
}

/// Where a run's events go: the terminal (the agent's own output, denials on stderr) or JSON
/// lines on stdout. Shared by the threads that relay output and watch for denials.
#[derive(Clone)]
struct Report {
    json: bool,
    out: Arc<Mutex<()>>,
}

impl Report {
    fn new(json: bool) -> Report {
        Report {
            json,
            out: Arc::new(Mutex::new(())),
        }
    }

    /// A JSON event line (nothing when the output is the terminal's).
    fn event(&self, event: serde_json::Value) {
        if self.json {
            let _held = self.out.lock();
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{event}");
            let _ = out.flush();
        }
    }

    fn denied(&self, decision: &crate::api::protocol::DecisionEvent) {
        if self.json {
            self.event(json!({
                "event": "denied",
                "method": decision.method,
                "host": decision.host,
                "path": decision.path,
                "port": decision.port,
                "rule": decision.rule,
            }));
        } else {
            let _held = self.out.lock();
            eprintln!(
                "hh run: denied {} {}:{}{} ({})",
                decision.method.as_deref().unwrap_or("TCP"),
                decision.host,
                decision.port,
                decision.path.as_deref().unwrap_or(""),
                decision.rule.as_deref().unwrap_or("no rule allows it"),
            );
        }
    }

    /// What relays the agent's output: as is, or as `output` events whose text never splits
    /// a UTF-8 character between two events.
    fn output_sink(&self) -> impl FnMut(OutputStream, &[u8]) -> std::io::Result<()> + use<> {
        let report = self.clone();
        let mut pending: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
        move |stream, bytes| {
            if !report.json {
                let _held = report.out.lock();
                return match stream {
                    OutputStream::Stdout => {
                        let mut out = std::io::stdout().lock();
                        out.write_all(bytes)?;
                        out.flush()
                    }
                    OutputStream::Stderr => {
                        let mut err = std::io::stderr().lock();
                        err.write_all(bytes)?;
                        err.flush()
                    }
                };
            }
            let (index, name) = match stream {
                OutputStream::Stdout => (0, "stdout"),
                OutputStream::Stderr => (1, "stderr"),
            };
            let buffer = &mut pending[index];
            buffer.extend_from_slice(bytes);
            let text = complete_utf8(buffer);
            if !text.is_empty() {
                report.event(json!({"event": "output", "stream": name, "text": text}));
            }
            Ok(())
        }
    }
}

/// Takes the text of `buffer` up to an incomplete UTF-8 character at its end (kept for the
/// next bytes); invalid bytes become U+FFFD.
fn complete_utf8(buffer: &mut Vec<u8>) -> String {
    let keep = match std::str::from_utf8(buffer) {
        Ok(_) => 0,
        Err(error) if error.error_len().is_none() => buffer.len() - error.valid_up_to(),
        Err(_) => 0,
    };
    let rest = buffer.split_off(buffer.len() - keep);
    let text = String::from_utf8_lossy(buffer).into_owned();
    *buffer = rest;
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_character_split_between_chunks_is_sent_whole() {
        let mut buffer = "héllo ✓".as_bytes().to_vec();
        let tail = buffer.split_off(buffer.len() - 2);
        assert_eq!(complete_utf8(&mut buffer), "héllo ");
        assert_eq!(buffer.len(), 1);
        buffer.extend_from_slice(&tail);
        assert_eq!(complete_utf8(&mut buffer), "✓");
        assert!(buffer.is_empty());
        let mut bad = vec![b'a', 0xff, b'b'];
        assert_eq!(complete_utf8(&mut bad), "a\u{fffd}b");
    }
}
