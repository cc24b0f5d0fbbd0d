//! `hh session start|list|stop`: sessions through the agent.

use std::{
    collections::BTreeMap,
    io::{IsTerminal as _, Write as _},
    process::ExitCode,
};

use anyhow::bail;

use super::{client_runtime, shell};
use crate::api::{
    client::{Client, socket_path},
    protocol::{ClientRequest, Reply, SessionInfo, StartSession},
};

#[derive(clap::Args, Debug)]
pub struct Options {
    #[command(subcommand)]
    command: SessionCommand,
}

#[derive(clap::Subcommand, Debug)]
enum SessionCommand {
    /// Start a session; without --detach, open a shell (or run CMD) in it and stop it after.
    Start(StartOptions),
    /// List your sessions.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Stop a session: its container, cgroup and files are removed (in git mode, its branches
    /// come back into the repository first).
    Stop { id: String },
}

#[derive(clap::Args, Debug)]
struct StartOptions {
    #[arg(long)]
    workspace: String,
    #[arg(long)]
    template: String,
    #[arg(long)]
    name: Option<String>,
    /// Leave the session running and print its id (last line); CMD becomes its main process.
    #[arg(long)]
    detach: bool,
    /// Start this coding agent in the session's tmux (`claude`, `codex`, `gemini`, `opencode`,
    /// `pi`): its credentials pass through from your environment, its API is allowed and its
    /// telemetry denied. Without --detach you are attached to it; `hh attach ID` returns.
    #[arg(long, value_name = "NAME")]
    harness: Option<String>,
    /// Start even when the workspace holds files whose names say they are secrets (without it,
    /// an interactive start asks first when one is of high severity).
    #[arg(long)]
    yes: bool,
    /// Work on a clone of the workspace's repository (as its `mode = "git"` does): the host's
    /// `.git` stays out of the session; its branches come back as `hh/NAME/…` when it stops.
    #[arg(long)]
    git: bool,
    /// The command to run (default: a shell).
    #[arg(last = true)]
    command: Vec<String>,
}

pub fn run(options: &Options, config: Option<&std::path::Path>) -> anyhow::Result<ExitCode> {
    match &options.command {
        SessionCommand::Start(start) => run_start(start, config),
        SessionCommand::List { json } => print_list(*json),
        SessionCommand::Stop { id } => {
            let info = find(id)?;
            let config = own_config(config);
            for line in stop_session(&info, config.as_ref())? {
                eprintln!("hh: {line}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn run_start(options: &StartOptions, config: Option<&std::path::Path>) -> anyhow::Result<ExitCode> {
    let config = own_config(config);
    let config = config.as_ref();
    let interactive =
        !options.detach && std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    let clone = (options.git || git_mode(config, &options.workspace))
        .then(|| make_clone(config, &options.workspace))
        .transpose()?;
    start_with_clone(options, config, interactive, clone.as_ref())
}

fn start_with_clone(
    options: &StartOptions,
    config: Option<&crate::config::Config>,
    interactive: bool,
    prepared: Option<&crate::git_workspace::PreparedClone>,
) -> anyhow::Result<ExitCode> {
    let clone = prepared.map(|prepared| prepared.path.as_path());
    // A clone no session got is removed; one a session got stays until it is brought back.
    let discard_clone = || {
        if let Some(clone) = clone {
            let _ = std::fs::remove_dir_all(clone);
        }
    };
    let ask = interactive && !options.yes;
    if !sensitive_files_ok(config, &options.workspace, clone, ask).unwrap_or(false) {
        discard_clone();
        eprintln!("hh: the session was not started");
        return Ok(ExitCode::FAILURE);
    }
    let harness = options
        .harness
        .as_deref()
        .map(|name| harness_named(name, config))
        .transpose()
        .inspect_err(|_| discard_clone())?;
    let harness = harness.as_ref();
    if harness.is_some() && !options.command.is_empty() {
        discard_clone();
        bail!("--harness starts the coding agent; give either it or a command");
    }
    let command = match harness {
        Some(harness) => harness.interactive_container_command(),
        None if options.detach => options.command.clone(),
        None => Vec::new(),
    };
    let request = StartSession {
        workspace: options.workspace.clone(),
        template: options.template.clone(),
        name: options.name.clone(),
        command,
        env: passthrough_env(config, &options.workspace, harness),
        harness: harness.map(|harness| harness.name.to_owned()),
        git_clone: clone.map(std::path::Path::to_path_buf),
        git_origin: prepared.and_then(|prepared| prepared.origin.clone()),
        secrets: secret_values(config),
    };
    let info = match call(ClientRequest::StartSession(request)).inspect_err(|_| discard_clone())? {
        Reply::Session(info) => info,
        other => bail!("unexpected reply from the agent: {other:?}"),
    };
    for notice in &info.notices {
        eprintln!("hh: {notice}");
    }
    warn_untrusted_rules(&options.workspace);
    if !info.image.is_empty() {
        eprintln!("hh: the session runs image {}", info.image);
    }
    if !info.ports.is_empty() {
        eprintln!("hh: published on the host: {}", info.ports.join(", "));
    }
    if let Some(git) = &info.git {
        eprintln!(
            "hh: the session works on its own clone of {} (at {}); the repository's .git is \
             not in it. When it stops, its branches come back as {}…",
            git.repository.display(),
            git.clone.display(),
            crate::git_workspace::branch_prefix(&info.name)
        );
    } else if info.protected_paths.is_empty() {
        eprintln!(
            "hh: nothing in workspace {} is read-only in the session (no protected path \
             exists there, or protected_paths = []): what a session writes there, such as \
             .git/config or .git/hooks, may run code when you use host tools in it",
            options.workspace
        );
    } else {
        eprintln!(
            "hh: read-only in the session: {}",
            info.protected_paths.join(", ")
        );
    }
    if options.detach {
        println!("{}", info.id);
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(harness) = harness {
        let status = shell::exec_in(
            &info.id,
            &["tmux", "attach-session", "-t", "hh"].map(str::to_owned),
        );
        // Detached from tmux with the agent still running: the session stays for `hh attach`.
        let running = shell::exec_quiet(
            &info.id,
            &["tmux", "has-session", "-t", "hh"].map(str::to_owned),
        )
        .is_ok_and(|code| code == 0);
        if running {
            eprintln!(
                "hh: {} keeps running in session {}; `hh attach {}` returns to it",
                harness.title, info.id, info.id
            );
            return status;
        }
        for line in stop_session(&info, config)? {
            eprintln!("hh: {line}");
        }
        return status;
    }
    let status = shell::exec_in(&info.id, &options.command);
    let stopped = stop_session(&info, config);
    let code = status?;
    for line in stopped? {
        eprintln!("hh: {line}");
    }
    Ok(code)
}

/// `hh session list` and `hh ps`: your sessions, as a table or JSON.
pub(super) fn print_list(json: bool) -> anyhow::Result<ExitCode> {
    let sessions = list()?;
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&sessions)?)?;
    } else {
        print_table(&mut out, &sessions)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether your config puts `workspace` in git mode.
pub(crate) fn git_mode(config: Option<&crate::config::Config>, workspace: &str) -> bool {
    config
        .and_then(|config| config.workspace(workspace))
        .is_some_and(|workspace| workspace.mode == crate::config::WorkspaceMode::Git)
}

/// The clone a git-mode session of `workspace` works on, made now from the repository your
/// config names.
pub(crate) fn make_clone(
    config: Option<&crate::config::Config>,
    workspace: &str,
) -> anyhow::Result<crate::git_workspace::PreparedClone> {
    let Some(config) = config else {
        bail!("git mode: hh needs your config to find workspace {workspace}'s repository");
    };
    let Some(found) = config.workspace(workspace) else {
        bail!("git mode: your config has no workspace {workspace}");
    };
    Ok(crate::git_workspace::prepare(
        &found.canonical_path,
        &config.clones_dir,
        workspace,
        &crate::git_workspace::CloneSource::of(found),
    )?)
}

/// Stops session `info`: in git mode as [`super::git::stop_session`] says, else directly.
pub(crate) fn stop_session(
    info: &SessionInfo,
    config: Option<&crate::config::Config>,
) -> anyhow::Result<Vec<super::git::GitEvent>> {
    if info.git.is_some() {
        return super::git::stop_session(info, config);
    }
    call(ClientRequest::StopSession {
        id: info.id.clone(),
    })?;
    Ok(Vec::new())
}

/// Your session `wanted` (id or name).
pub(super) fn find(wanted: &str) -> anyhow::Result<SessionInfo> {
    list()?
        .into_iter()
        .find(|info| info.id == wanted || info.name == wanted)
        .ok_or_else(|| anyhow::anyhow!("you have no session {wanted} (`hh session list`)"))
}

/// Says which rules files of the workspace are not in force as they read (a change nobody
/// trusted yet): the session runs the trusted versions, which may surprise.
fn warn_untrusted_rules(workspace: &str) {
    let request = ClientRequest::RulesStatus {
        workspace: workspace.to_owned(),
    };
    let Ok(Reply::Rules { files }) = call(request) else {
        return;
    };
    for file in files.iter().filter(|file| !file.in_force) {
        let what = if file.ever_trusted {
            "changed since it was trusted; the trusted version (and its deny rules as it reads) \
             is in force"
        } else {
            "was never trusted; only its deny rules are in force"
        };
        eprintln!(
            "hh: {} {what}. See `hh rules status --workspace {workspace}`",
            file.file
        );
    }
}

/// Your own config, read once for a start: `None` when there is none, or (said) when it does
/// not load — nothing of it is passed then, not silently an empty list.
pub(super) fn own_config(path: Option<&std::path::Path>) -> Option<crate::config::Config> {
    match super::load_config(path) {
        Ok((config, _)) => Some(config),
        Err(error) => {
            if !matches!(
                error.downcast_ref::<crate::config::ConfigError>(),
                Some(crate::config::ConfigError::NoDefaultPath)
            ) && !is_missing_file(&error)
            {
                eprintln!("hh: no env_passthrough from your config: {error:#}");
            }
            None
        }
    }
}

/// Says which files of `workspace` (in your config) have names that say they hold secrets,
/// which the session can read; when `ask` and one is of high severity, asks whether to start
/// anyway. Whether to go on.
pub(super) fn sensitive_files_ok(
    config: Option<&crate::config::Config>,
    workspace: &str,
    clone: Option<&std::path::Path>,
    ask: bool,
) -> anyhow::Result<bool> {
    use std::io::BufRead as _;
    let Some(workspace) = config.and_then(|config| config.workspace(workspace)) else {
        return Ok(true);
    };
    let allowed: Vec<std::path::PathBuf> = workspace
        .sensitive_allow
        .iter()
        .map(|allowed| allowed.path.clone().into())
        .collect();
    // What the session will see: the workspace, or in git mode its clone.
    let found = crate::sensitive::scan(clone.unwrap_or(&workspace.canonical_path), &allowed);
    if found.is_empty() {
        return Ok(true);
    }
    let mut err = std::io::stderr().lock();
    writeln!(
        err,
        "hh: workspace {} holds files whose names say they are secrets; the session, and any \
         agent in it, can read them:",
        workspace.name
    )?;
    for finding in &found {
        let severity = match finding.severity {
            crate::sensitive::Severity::High => "high",
            crate::sensitive::Severity::Medium => "medium",
            crate::sensitive::Severity::Low => "low",
        };
        writeln!(
            err,
            "  {severity:<6} {}  ({})",
            finding.path.display(),
            finding.kind
        )?;
    }
    writeln!(
        err,
        "  (move them out, or list each in the workspace's sensitive_allow with a reason)"
    )?;
    let high = found
        .iter()
        .any(|finding| finding.severity == crate::sensitive::Severity::High);
    if !(ask && high) {
        return Ok(true);
    }
    write!(err, "hh: start the session anyway? [y/N] ")?;
    err.flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

/// The harness `name`, built in or of your config's `[harnesses]` (without a config, the
/// built-in ones; the agent, whose config decides, says if it knows none).
pub(super) fn harness_named(
    name: &str,
    config: Option<&crate::config::Config>,
) -> anyhow::Result<crate::harness::Harness> {
    let none = BTreeMap::new();
    let defined = config.map_or(&none, |config| &config.harnesses);
    Ok(crate::harness::find(name, defined)?)
}

/// The client's values for the config's `env_passthrough` names and the harness's credentials
/// (the agent keeps only those too), and the git identity; nothing else of the client's
/// environment leaves this process.
pub(crate) fn passthrough_env(
    config: Option<&crate::config::Config>,
    workspace: &str,
    harness: Option<&crate::harness::Harness>,
) -> BTreeMap<String, String> {
    let configured = config.map_or(&[][..], |config| {
        config.defaults.containers.env_passthrough.as_slice()
    });
    let credentials = harness.map_or(&[][..], |harness| harness.auth_env.as_slice());
    let mut env: BTreeMap<String, String> = configured
        .iter()
        .chain(credentials)
        .filter(|name| !is_secret_variable(config, name))
        .filter_map(|name| Some((name.clone(), std::env::var(name).ok()?)))
        .collect();
    // git_identity is on unless a config says otherwise.
    if config.is_none_or(|config| config.defaults.containers.git_identity) {
        let dir = config
            .and_then(|config| config.workspace(workspace))
            .map(|workspace| workspace.canonical_path.as_path());
        env.extend(crate::git_identity::env(dir));
    }
    env
}

/// Whether `name` holds one of the config's `[[secrets]]`: its value goes as a secret, never
/// as an environment variable of the session.
fn is_secret_variable(config: Option<&crate::config::Config>, name: &str) -> bool {
    config.is_some_and(|config| config.secrets.iter().any(|secret| secret.env == name))
}

/// Your values of the config's `[[secrets]]` (those set in your environment), by name: the
/// agent's proxy puts them into the requests they may go in; the session sees placeholders.
pub(crate) fn secret_values(
    config: Option<&crate::config::Config>,
) -> BTreeMap<String, crate::api::protocol::SecretValue> {
    config
        .map(|config| config.secrets.as_slice())
        .unwrap_or_default()
        .iter()
        .filter_map(|secret| {
            let value = std::env::var(&secret.env)
                .ok()
                .filter(|value| !value.is_empty())?;
            Some((
                secret.name.clone(),
                crate::api::protocol::SecretValue(value),
            ))
        })
        .collect()
}

fn is_missing_file(error: &anyhow::Error) -> bool {
    matches!(
        error.downcast_ref::<crate::config::ConfigError>(),
        Some(crate::config::ConfigError::Read { reason, .. })
            if reason.kind() == std::io::ErrorKind::NotFound
    )
}

/// The caller's sessions.
pub(super) fn list() -> anyhow::Result<Vec<SessionInfo>> {
    match call(ClientRequest::ListSessions {})? {
        Reply::Sessions { sessions } => Ok(sessions),
        other => bail!("unexpected reply from the agent: {other:?}"),
    }
}

/// One request to the agent on a fresh connection.
pub(super) fn call(request: ClientRequest) -> anyhow::Result<Reply> {
    client_runtime()?.block_on(async {
        let mut client = Client::connect(&socket_path()).await?;
        Ok(client.call(&request).await?)
    })
}

pub(super) fn print_table(
    out: &mut impl std::io::Write,
    sessions: &[SessionInfo],
) -> std::io::Result<()> {
    if sessions.is_empty() {
        return writeln!(
            out,
            "no sessions (start one with `hh session start --workspace W --template T`)"
        );
    }
    writeln!(
        out,
        "{:<14} {:<24} {:<16} {:<12} {:>10}",
        "ID", "NAME", "WORKSPACE", "TEMPLATE", "MEMORY"
    )?;
    for s in sessions {
        let memory = s.memory_bytes.map_or_else(
            || "-".to_owned(),
            |bytes| format!("{} MiB", bytes / (1024 * 1024)),
        );
        let workspace = match &s.git {
            Some(_) => format!("{} (git)", s.workspace),
            None => s.workspace.clone(),
        };
        writeln!(
            out,
            "{:<14} {:<24} {:<16} {:<12} {:>10}",
            s.id, s.name, workspace, s.template, memory
        )?;
    }
    Ok(())
}
