//! `hh` with no arguments: the terminal UI, a client of the agent.
//!
//! # Layout
//! - [`app`]: the state and its pure update (keys and agent messages in, effects out).
//! - [`approval_queue`], [`activity_log`], [`session_table`]: the held requests, the live
//!   decisions, the sessions.
//! - [`rule_editor`]: the "forever" rule choices and the exact rule text they give.
//! - [`workspace_edit`]: adding and removing workspaces in the config, comments kept.
//! - [`agent_link`]: background tasks that talk to the agent and feed one channel.
//! - [`terminal`]: enter, restore (panic, SIGTERM), hand the terminal to `hh shell`.
//! - `view`: drawing, one module per screen.
//!
//! This module is the run loop, the only code that touches the terminal, the disk and the
//! agent link: it draws (when something changed, or every [`CLOCK`]), waits at most [`TICK`] for a key,
//! drains the agent channel without waiting, and performs the [`Effect`]s the state asks for.
//!
//! Prompt latency (from an `ApprovalPending` event read off the socket to the end of the draw
//! that shows it) is logged at info level as `approval prompt drawn` with `latency_ms`, and
//! shown at the bottom of the Approvals screen. Logs go to `$HH_LOG_FILE` when set, else to
//! `tui.log` in the config's `log_dir` (the terminal is the TUI's).

pub mod activity_log;
pub mod agent_link;
pub mod app;
pub mod approval_queue;
pub mod rule_editor;
pub mod session_table;
pub mod terminal;
pub mod view;
pub mod workspace_edit;

use std::{
    path::Path,
    process::{Command, ExitCode},
    sync::mpsc::{Receiver, TryRecvError},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::Context as _;
use ratatui::{
    DefaultTerminal,
    crossterm::event::{self, Event as TermEvent},
};

use self::{
    agent_link::{AgentLink, FromAgent},
    app::{App, ConfigState, Effect},
};
use crate::{
    api::{
        client::socket_path,
        protocol::{ClientRequest, StartSession},
    },
    config::{self, Env},
};

/// The longest the loop waits for a key before it looks at the agent channel again: with the
/// draw, the bound on how late a prompt appears (the target is 100 ms).
const TICK: Duration = Duration::from_millis(10);

/// Without keys or messages, the screen is still redrawn this often (remaining times, uptimes).
const CLOCK: Duration = Duration::from_millis(500);

/// Runs the TUI until the user quits (or SIGTERM).
pub fn run(config_path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let env = Env::from_process();
    let config_path = match config_path {
        Some(path) => path.to_path_buf(),
        None => env
            .default_config_path()
            .ok_or(config::ConfigError::NoDefaultPath)?,
    };
    let config = load_config(&config_path, &env);
    let socket = socket_path();
    tracing::info!(config = %config_path.display(), socket = %socket.display(), "terminal UI started");
    // Two workers: the agent link's tasks are light; the UI thread is this one.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let (to_ui, from_agent) = std::sync::mpsc::channel();
    let link = AgentLink::start(runtime.handle(), socket.clone(), to_ui);
    let mut app = App::new(config_path, config, socket, now_ms());

    let mut terminal = terminal::enter().context("cannot set up the terminal")?;
    let result = event_loop(&mut terminal, &mut app, &link, &from_agent, &env);
    terminal::restore();
    runtime.shutdown_background();
    result.map(|()| ExitCode::SUCCESS)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn load_config(path: &Path, env: &Env) -> ConfigState {
    if !path.exists() {
        return ConfigState::Missing;
    }
    match config::load(path, env) {
        Ok(config) => ConfigState::Loaded(Box::new(config)),
        Err(error) => ConfigState::Invalid(error.to_string()),
    }
}

fn event_loop(
    terminal: &mut DefaultTerminal,
    app: &mut App,
    link: &AgentLink,
    from_agent: &Receiver<FromAgent>,
    env: &Env,
) -> anyhow::Result<()> {
    let mut last_draw: Option<Instant> = None;
    // Work that takes a while (a git-mode session's stop) runs beside the loop and says here
    // how it went.
    let (job_done, job_results) = std::sync::mpsc::channel::<String>();
    loop {
        if last_draw.is_none_or(|at| at.elapsed() >= CLOCK) {
            app.now_ms = now_ms();
            let started = Instant::now();
            terminal.draw(|frame| view::render(app, frame))?;
            let drawn = Instant::now();
            last_draw = Some(drawn);
            for (id, latency) in app.approvals.frame_drawn(drawn) {
                tracing::info!(
                    id,
                    latency_ms = latency.as_millis() as u64,
                    draw_ms = (drawn - started).as_millis() as u64,
                    "approval prompt drawn"
                );
            }
        }
        if app.quit || terminal::terminate_requested() {
            return Ok(());
        }
        // Anything that happens below forces a redraw on the next turn.
        if terminal::wait_for_input(TICK)? == terminal::Input::HungUp {
            return Ok(());
        }
        // Zero timeout: takes keys crossterm already buffered and resizes (a signal) as well.
        // Each crossterm poll only once the kernel says the terminal is still there: crossterm
        // spins on a hung-up one (terminal::wait_for_input).
        while terminal::wait_for_input(Duration::ZERO)? == terminal::Input::Check
            && event::poll(Duration::ZERO)?
        {
            last_draw = None;
            if let TermEvent::Key(key) = event::read()?
                && let Some(effect) = app.on_key(key)
            {
                perform(effect, terminal, app, link, env, &job_done);
            }
        }
        app.now_ms = now_ms();
        loop {
            match from_agent.try_recv() {
                Ok(message) => {
                    last_draw = None;
                    app.on_agent(message);
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => anyhow::bail!("the agent link stopped"),
            }
        }
        while let Ok(status) = job_results.try_recv() {
            last_draw = None;
            app.status = Some(status);
        }
    }
}

/// Does what the state asked for and tells it how it went.
fn perform(
    effect: Effect,
    terminal: &mut DefaultTerminal,
    app: &mut App,
    link: &AgentLink,
    env: &Env,
    job_done: &std::sync::mpsc::Sender<String>,
) {
    match effect {
        Effect::Send(request) => link.send(request),
        Effect::StartSession {
            workspace,
            template,
        } => {
            // As `hh session start` does: the user's own values of the passthrough names (never
            // the agent's, never a secret's), the secrets apart, and in git mode a clone.
            let config = app.loaded_config();
            let env = crate::cli::session::passthrough_env(config, &workspace, None);
            let secrets = crate::cli::session::secret_values(config);
            let git_clone = if crate::cli::session::git_mode(config, &workspace) {
                match crate::cli::session::make_clone(config, &workspace) {
                    Ok(prepared) => Some(prepared),
                    Err(error) => {
                        app.status = Some(format!("start session: {error:#}"));
                        return;
                    }
                }
            } else {
                None
            };
            link.send(ClientRequest::StartSession(StartSession {
                workspace,
                template,
                name: None,
                command: Vec::new(),
                env,
                harness: None,
                git_clone: git_clone.as_ref().map(|prepared| prepared.path.clone()),
                git_origin: git_clone.and_then(|prepared| prepared.origin),
                secrets,
            }));
        }
        Effect::StopGitSession(info) => {
            // Commit, bundle and fetch may take minutes: not on the loop's thread.
            app.status = Some(format!(
                "stopping session {}: its work comes back first",
                info.id
            ));
            let config = app.loaded_config().cloned();
            let done = job_done.clone();
            std::thread::spawn(move || {
                let status = match crate::cli::git::stop_session(&info, config.as_ref()) {
                    Ok(said) if said.is_empty() => format!("stopped session {}", info.id),
                    Ok(said) => format!(
                        "stopped session {}: {}",
                        info.id,
                        said.iter()
                            .map(|event| event.message.as_str())
                            .collect::<Vec<_>>()
                            .join("; ")
                    ),
                    Err(error) => format!("stop session {}: {error:#}", info.id),
                };
                let _ = done.send(status);
            });
        }
        Effect::Attach(id) => {
            let config_path = app.config_path.clone();
            let outcome = terminal::suspend(terminal, || {
                let exe = std::env::current_exe()?;
                // spawns: hh
                Command::new(exe)
                    .arg("--config")
                    .arg(&config_path)
                    .arg("shell")
                    .arg(&id)
                    .status()
            });
            app.status = Some(match outcome {
                Ok(Ok(status)) => format!("left session {id} ({status})"),
                Ok(Err(error)) => format!("could not run `hh shell {id}`: {error}"),
                Err(error) => format!("terminal: {error}"),
            });
        }
        Effect::CreateConfig => {
            let path = app.config_path.clone();
            let written = path
                .parent()
                .filter(|dir| !dir.as_os_str().is_empty())
                .map_or(Ok(()), std::fs::create_dir_all)
                .with_context(|| format!("could not create the folder of {}", path.display()))
                .and_then(|()| crate::cli::init::write_starter(&path, false));
            match written {
                Ok(()) => {
                    app.set_config(load_config(&path, env));
                    app.status = Some(format!("wrote {}", path.display()));
                }
                Err(error) => app.status = Some(format!("{error:#}")),
            }
        }
        Effect::ChangeWorkspaces(change) => {
            match workspace_edit::apply(&app.config_path, &change, env) {
                Ok(config) => {
                    app.set_config(ConfigState::Loaded(Box::new(config)));
                    app.status = Some(match change {
                        workspace_edit::WorkspaceChange::Add { name, .. } => {
                            format!("added workspace {name}")
                        }
                        workspace_edit::WorkspaceChange::Remove { name } => {
                            format!("removed workspace {name}")
                        }
                    });
                }
                Err(error) => app.status = Some(error.to_string()),
            }
        }
    }
}
