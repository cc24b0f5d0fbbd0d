//! Loading `harness-hat.toml`: find it (XDG), read it, deserialize it, expand `~` and `$HOME`,
//! and check what one key's type cannot say. Every error names file, line, column and key.
//!
//! Checks at load:
//! - workspace paths must not lie under `~/.ssh`, `~/.gnupg` or `/etc`, after resolving
//!   symlinks (of the workspace path and of those roots);
//! - mount paths must not contain `:` or `,` (they would split Docker's `--mount`/`-v` syntax)
//!   and the container side must be absolute;
//! - `memory` and `cpus` must be numbers (checked while deserializing);
//! - `server_host` and `proxy_host` must be `127.0.0.1` (sessions' listeners are on their own
//!   loopback), and `strict_network` cannot be `false` (agent mode has no way around the proxy);
//! - template rules, `bypass_proxy` hosts, environment variable names and workspace names must
//!   be valid.

use std::{
    io,
    path::{Path, PathBuf},
};

use toml_edit::Document;

use super::{
    location::{KeySpans, line_column},
    schema::{CONFIG_VERSION, Config, Defaults, LocalhostForward, Mount, Workspace},
};
use crate::rules::{DomainPattern, RULES_DIR_NAME, RULES_FILE_NAME, Rule, RuleError};

/// The config file name, under `$XDG_CONFIG_HOME/harness-hat/`.
pub const CONFIG_FILE_NAME: &str = "harness-hat.toml";

/// The environment a config is read in: only `$HOME` matters for expansion.
#[derive(Clone, Debug, Default)]
pub struct Env {
    pub home: Option<PathBuf>,
    pub xdg_config_home: Option<PathBuf>,
}

impl Env {
    /// This process's environment.
    pub fn from_process() -> Env {
        let var = |name| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        Env {
            home: var("HOME"),
            xdg_config_home: var("XDG_CONFIG_HOME").filter(|p| p.is_absolute()),
        }
    }

    /// `$XDG_CONFIG_HOME/harness-hat/harness-hat.toml`, `$XDG_CONFIG_HOME` defaulting to
    /// `~/.config` ([XDG Base Directory](https://specifications.freedesktop.org/basedir-spec/latest/)).
    pub fn default_config_path(&self) -> Option<PathBuf> {
        let base = self
            .xdg_config_home
            .clone()
            .or_else(|| self.home.as_ref().map(|h| h.join(".config")))?;
        Some(base.join("harness-hat").join(CONFIG_FILE_NAME))
    }
}

/// A config that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `reason`, not `source`: the message says it already, and a source would say it again
    /// in every `{:#}` chain.
    #[error("{}: could not read: {reason}", file.display())]
    Read { file: PathBuf, reason: io::Error },
    #[error("no config path given and neither $XDG_CONFIG_HOME nor $HOME is set")]
    NoDefaultPath,
    #[error("{}:{line}:{column}: {}{kind}", file.display(), key.as_deref().map(|k| format!("`{k}`: ")).unwrap_or_default())]
    Invalid {
        file: PathBuf,
        line: usize,
        column: usize,
        key: Option<String>,
        /// Boxed: keeps `Result<_, ConfigError>` small on the happy path.
        kind: Box<ConfigErrorKind>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigErrorKind {
    #[error("{0}")]
    Syntax(String),
    #[error("{0}")]
    Schema(String),
    #[error("unsupported version {found}; this hh reads version {CONFIG_VERSION}")]
    Version { found: u32 },
    #[error("`{path}` is under {root}, which hh never hands to a session")]
    ForbiddenWorkspace { path: PathBuf, root: PathBuf },
    #[error(
        "`{path}` is not a path inside the workspace: give it relative, of plain names \
         (no leading `/`, `.` or `..`), e.g. \".git/hooks\""
    )]
    ProtectedPath { path: String },
    #[error("`{path}` contains `{character}`, which Docker's mount syntax would split on")]
    MountPathCharacter { path: PathBuf, character: char },
    #[error("`{path}` must be an absolute path")]
    NotAbsolute { path: PathBuf },
    #[error(
        "`{host}`: a session's control server and proxy listen on the session's own 127.0.0.1 \
         (inside its network namespace), so only \"127.0.0.1\" applies; remove the key"
    )]
    SessionLoopbackOnly { host: String },
    #[error(
        "`false` is not supported: nothing leaves a session except through the proxy (its \
         container has Docker's `none` network), so hh is always strict; remove the key"
    )]
    AlwaysStrict,
    #[error("rule `{text}`: {error}")]
    Rule { text: String, error: RuleError },
    #[error("`{value}`: expected a host or `*.suffix` ({reason})")]
    Domain { value: String, reason: String },
    #[error(
        "`{name}` is not an environment variable name (letters, digits, `_`; not starting with a digit)"
    )]
    EnvName { name: String },
    #[error("workspace name `{name}` must be non-empty and unique")]
    WorkspaceName { name: String },
    #[error("port 0 is not a port")]
    PortZero,
    #[error(
        "harness name `{name}` must be lowercase letters, digits, `-` or `_` (at most 40) and \
         not a built-in harness's"
    )]
    HarnessName { name: String },
    #[error("a command of at least one word is needed")]
    EmptyCommand,
    #[error(
        "secret name `{name}` must be lowercase letters, digits, `-` or `_` (at most 40) and unique"
    )]
    SecretName { name: String },
    #[error("`{value}` is not a header name (a token, written in lowercase)")]
    HeaderName { value: String },
    #[error("`{value}` must start with `/`")]
    PathPrefix { value: String },
    #[error("a secret needs at least one host it may be sent to, and `*` is every host")]
    NoHosts,
    #[error("`{name}` holds another secret already")]
    SecretVariable { name: String },
    #[error(
        "`{name}` is not a branch name hh uses (letters, digits, `-._/`, not starting with `-`, `.` or `/`)"
    )]
    BranchName { name: String },
    #[error("a clone takes at least one commit")]
    DepthZero,
    #[error("`{url}` is not a repository URL hh hands to git")]
    GitUrl { url: String },
    #[error("applies to a workspace in git mode only: add `mode = \"git\"`, or remove the key")]
    GitModeOnly,
    #[error("say why the file may be in the workspace")]
    NoReason,
    #[error(
        "`{path}` is not a path under the home: give it relative, of plain names (no leading \
         `/`, `.` or `..`)"
    )]
    HomeRelative { path: String },
    #[error("port {port} is {whose} port inside every session; forward another")]
    ForwardTaken { port: u16, whose: &'static str },
    #[error("port {port} of the session is forwarded twice")]
    ForwardTwice { port: u16 },
    #[error(
        "session port {port} is {whose} port inside every session: publishing it would hand \
         that to whoever reaches the host port; publish another"
    )]
    PublishedTaken { port: u16, whose: &'static str },
}

/// Reads and checks the config at `path`, expanding `~` and `$HOME` from `env`.
pub fn load(path: &Path, env: &Env) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|reason| ConfigError::Read {
        file: path.into(),
        reason,
    })?;
    check(&text, path, env)
}

/// Every check [`load`] makes, on text not yet written to `path` (the TUI validates an edit
/// before it replaces the file).
pub fn check(text: &str, path: &Path, env: &Env) -> Result<Config, ConfigError> {
    let config = parse(text, path, env)?;
    check_workspace_paths(&config, text, path, env)?;
    Ok(config)
}

/// Parses, expands and checks a config's text without touching the filesystem (the workspace
/// path check, which resolves symlinks, is [`load`]'s).
pub fn parse(text: &str, file: &Path, env: &Env) -> Result<Config, ConfigError> {
    let invalid_at = |offset: usize, key: Option<String>, kind| {
        let (line, column) = line_column(text, offset);
        ConfigError::Invalid {
            file: file.into(),
            line,
            column,
            key,
            kind: Box::new(kind),
        }
    };
    let document = Document::parse(text).map_err(|e| {
        invalid_at(
            e.span().map_or(0, |s| s.start),
            None,
            ConfigErrorKind::Syntax(e.message().trim().into()),
        )
    })?;
    let spans = KeySpans::new(&document);
    let mut config: Config = toml_edit::de::from_str(text).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        let key = spans.key_at(offset).map(String::from);
        invalid_at(
            offset,
            key,
            ConfigErrorKind::Schema(e.message().trim().into()),
        )
    })?;
    let invalid = |key: String, kind| {
        let offset = spans.span_of(&key).map_or(0, |s| s.start);
        invalid_at(offset, Some(key), kind)
    };
    if config.version != CONFIG_VERSION {
        return Err(invalid(
            "version".into(),
            ConfigErrorKind::Version {
                found: config.version,
            },
        ));
    }

    expand(&mut config.docker_dir, env);
    expand(&mut config.log_dir, env);
    expand(&mut config.clones_dir, env);
    expand(&mut config.manager.global_rules_file, env);
    if let Some(bundle) = &mut config.images.host_ca_bundle {
        expand(bundle, env);
        if !bundle.is_absolute() {
            return Err(invalid(
                "images.host_ca_bundle".into(),
                ConfigErrorKind::NotAbsolute {
                    path: bundle.clone(),
                },
            ));
        }
    }
    for (key, path) in [
        ("docker_dir", &config.docker_dir),
        ("log_dir", &config.log_dir),
        ("clones_dir", &config.clones_dir),
        (
            "manager.global_rules_file",
            &config.manager.global_rules_file,
        ),
    ] {
        if !path.is_absolute() {
            return Err(invalid(
                key.into(),
                ConfigErrorKind::NotAbsolute { path: path.clone() },
            ));
        }
    }

    let control = &config.defaults.control;
    // In agent mode a session's control server and proxy listen on the session's own
    // 127.0.0.1, inside its network namespace: no other address can apply, and accepting one
    // would be a silent default.
    for (key, host) in [
        ("defaults.control.server_host", &control.server_host),
        (
            "defaults.proxy.proxy_host",
            &config.defaults.proxy.proxy_host,
        ),
    ] {
        if host != "127.0.0.1" && host != "localhost" {
            return Err(invalid(
                key.into(),
                ConfigErrorKind::SessionLoopbackOnly { host: host.clone() },
            ));
        }
    }
    if !config.defaults.proxy.strict_network {
        return Err(invalid(
            "defaults.proxy.strict_network".into(),
            ConfigErrorKind::AlwaysStrict,
        ));
    }
    for (key, port) in [
        ("defaults.control.server_port", control.server_port),
        (
            "defaults.proxy.proxy_port",
            config.defaults.proxy.proxy_port,
        ),
    ] {
        if port == 0 {
            return Err(invalid(key.into(), ConfigErrorKind::PortZero));
        }
    }

    if !is_env_name(&control.token_env_var) {
        let kind = ConfigErrorKind::EnvName {
            name: control.token_env_var.clone(),
        };
        return Err(invalid("defaults.control.token_env_var".into(), kind));
    }

    check_forwards(
        &[],
        &config.defaults.containers.localhost_forwards,
        "defaults.containers.localhost_forwards",
        &config.defaults,
        &invalid,
    )?;
    let containers = &mut config.defaults.containers;
    check_env_names(
        &containers.env_passthrough,
        "defaults.containers.env_passthrough",
        &invalid,
    )?;
    check_domains(
        &containers.bypass_proxy,
        "defaults.containers.bypass_proxy",
        &invalid,
    )?;
    check_mounts(
        &mut containers.mounts,
        "defaults.containers.mounts",
        env,
        &invalid,
    )?;

    for (name, profile) in &mut config.container_profiles {
        let base = format!("container_profiles.{name}");
        for (i, text) in profile.starter_network_allowlist.iter().enumerate() {
            Rule::parse(text).map_err(|error| {
                let kind = ConfigErrorKind::Rule {
                    text: text.clone(),
                    error,
                };
                invalid(format!("{base}.starter_network_allowlist[{i}]"), kind)
            })?;
        }
        check_domains(
            &profile.bypass_proxy,
            &format!("{base}.bypass_proxy"),
            &invalid,
        )?;
        check_mounts(
            &mut profile.mounts,
            &format!("{base}.mounts"),
            env,
            &invalid,
        )?;
        for (j, path) in profile.protected_paths.iter().enumerate() {
            if !is_plain_relative(path) {
                return Err(invalid(
                    format!("{base}.protected_paths[{j}]"),
                    ConfigErrorKind::ProtectedPath { path: path.clone() },
                ));
            }
        }
        let names: Vec<String> = profile.env.keys().cloned().collect();
        check_env_names(&names, &format!("{base}.env"), &invalid)?;
        check_forwards(
            &config.defaults.containers.localhost_forwards,
            &profile.localhost_forwards,
            &format!("{base}.localhost_forwards"),
            &config.defaults,
            &invalid,
        )?;
    }

    for (name, harness) in &config.harnesses {
        let base = format!("harnesses.{name}");
        let valid_name = !name.is_empty()
            && name.len() <= 40
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !valid_name || crate::harness::built_in_names().contains(&name.as_str()) {
            return Err(invalid(
                base,
                ConfigErrorKind::HarnessName { name: name.clone() },
            ));
        }
        for (key, command) in [
            ("interactive", &harness.interactive),
            ("one_shot", &harness.one_shot),
        ] {
            if command.is_empty() || command[0].is_empty() {
                return Err(invalid(
                    format!("{base}.{key}"),
                    ConfigErrorKind::EmptyCommand,
                ));
            }
        }
        for (key, rules) in [("allow", &harness.allow), ("deny", &harness.deny)] {
            for (i, text) in rules.iter().enumerate() {
                Rule::parse(text).map_err(|error| {
                    let kind = ConfigErrorKind::Rule {
                        text: text.clone(),
                        error,
                    };
                    invalid(format!("{base}.{key}[{i}]"), kind)
                })?;
            }
        }
        check_env_names(&harness.auth_env, &format!("{base}.auth_env"), &invalid)?;
        for (i, path) in harness.seed.iter().enumerate() {
            if !is_plain_relative(path) {
                return Err(invalid(
                    format!("{base}.seed[{i}]"),
                    ConfigErrorKind::HomeRelative { path: path.clone() },
                ));
            }
        }
        let names: Vec<String> = harness.env.keys().cloned().collect();
        check_env_names(&names, &format!("{base}.env"), &invalid)?;
        for (key, path) in [
            ("config_dir", &harness.config_dir),
            ("instructions_file", &harness.instructions_file),
            ("global_instructions", &harness.global_instructions),
        ] {
            if let Some(path) = path
                && !is_plain_relative(path)
            {
                return Err(invalid(
                    format!("{base}.{key}"),
                    ConfigErrorKind::HomeRelative { path: path.clone() },
                ));
            }
        }
    }

    check_secrets(&config.secrets, &invalid)?;
    for (index, workspace) in config.workspaces.iter().enumerate() {
        let key = |field: &str| format!("workspaces[{index}].{field}");
        if let Some(branch) = &workspace.branch {
            let plain = !branch.is_empty()
                && !branch.starts_with(['-', '.', '/'])
                && !branch.contains("..")
                && branch
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._/".contains(&b));
            if !plain {
                return Err(invalid(
                    key("branch"),
                    ConfigErrorKind::BranchName {
                        name: branch.clone(),
                    },
                ));
            }
        }
        if workspace.clone_depth == Some(0) {
            return Err(invalid(key("clone_depth"), ConfigErrorKind::DepthZero));
        }
        if let Some(url) = &workspace.git_url
            && (url.is_empty() || url.starts_with('-') || url.chars().any(char::is_control))
        {
            return Err(invalid(
                key("git_url"),
                ConfigErrorKind::GitUrl { url: url.clone() },
            ));
        }
    }

    for (index, workspace) in config.workspaces.iter().enumerate() {
        for (i, published) in workspace.ports.iter().enumerate() {
            let port = published.session_port;
            let taken = [
                (config.defaults.proxy.proxy_port, "the proxy's"),
                (config.defaults.control.server_port, "the control server's"),
                (53, "the DNS stub's"),
            ];
            let forwarded = config
                .defaults
                .containers
                .localhost_forwards
                .iter()
                .any(|forward| forward.container_port == port)
                .then_some((port, "a forward's (localhost_forwards)"));
            if let Some((_, whose)) = taken
                .into_iter()
                .chain(forwarded)
                .find(|(taken, _)| *taken == port)
            {
                return Err(invalid(
                    format!("workspaces[{index}].ports[{i}]"),
                    ConfigErrorKind::PublishedTaken { port, whose },
                ));
            }
        }
        if workspace
            .pre_start
            .as_ref()
            .is_some_and(|command| command.trim().is_empty())
        {
            return Err(invalid(
                format!("workspaces[{index}].pre_start"),
                ConfigErrorKind::EmptyCommand,
            ));
        }
        if workspace.mode != super::WorkspaceMode::Git {
            let set = [
                ("commit_on_exit", workspace.commit_on_exit),
                ("push_on_exit", workspace.push_on_exit),
                ("git_url", workspace.git_url.is_some()),
                ("branch", workspace.branch.is_some()),
                ("clone_depth", workspace.clone_depth.is_some()),
            ];
            if let Some((key, _)) = set.iter().find(|(_, on)| *on) {
                return Err(invalid(
                    format!("workspaces[{index}].{key}"),
                    ConfigErrorKind::GitModeOnly,
                ));
            }
        }
        for (i, allowed) in workspace.sensitive_allow.iter().enumerate() {
            let key = format!("workspaces[{index}].sensitive_allow[{i}]");
            if !is_plain_relative(&allowed.path) {
                return Err(invalid(
                    format!("{key}.path"),
                    ConfigErrorKind::ProtectedPath {
                        path: allowed.path.clone(),
                    },
                ));
            }
            if allowed.reason.trim().is_empty() {
                return Err(invalid(format!("{key}.reason"), ConfigErrorKind::NoReason));
            }
        }
    }

    for i in 0..config.workspaces.len() {
        let workspace = &mut config.workspaces[i];
        expand(&mut workspace.canonical_path, env);
        let key = format!("workspaces[{i}]");
        if !workspace.canonical_path.is_absolute() {
            let kind = ConfigErrorKind::NotAbsolute {
                path: workspace.canonical_path.clone(),
            };
            return Err(invalid(format!("{key}.canonical_path"), kind));
        }
        for (j, path) in workspace.protected_paths.iter().enumerate() {
            if !is_plain_relative(path) {
                return Err(invalid(
                    format!("{key}.protected_paths[{j}]"),
                    ConfigErrorKind::ProtectedPath { path: path.clone() },
                ));
            }
        }
        let name = &config.workspaces[i].name;
        if name.trim().is_empty() || config.workspaces[..i].iter().any(|w| &w.name == name) {
            return Err(invalid(
                format!("{key}.name"),
                ConfigErrorKind::WorkspaceName { name: name.clone() },
            ));
        }
    }
    Ok(config)
}

/// A session's side of each forward must be a free port of its own loopback (not the proxy's,
/// the control server's or the DNS stub's) and appear once, `earlier` (the defaults a template
/// adds to) included; neither side may be 0.
fn check_forwards(
    earlier: &[LocalhostForward],
    forwards: &[LocalhostForward],
    key: &str,
    defaults: &Defaults,
    invalid: &impl Fn(String, ConfigErrorKind) -> ConfigError,
) -> Result<(), ConfigError> {
    let taken = [
        (defaults.proxy.proxy_port, "the proxy's"),
        (defaults.control.server_port, "the control server's"),
        (53, "the DNS stub's"),
    ];
    for (i, forward) in forwards.iter().enumerate() {
        let key = format!("{key}[{i}]");
        if forward.container_port == 0 || forward.host_port == 0 {
            return Err(invalid(key, ConfigErrorKind::PortZero));
        }
        let port = forward.container_port;
        if let Some((_, whose)) = taken.iter().find(|(taken, _)| *taken == port) {
            return Err(invalid(key, ConfigErrorKind::ForwardTaken { port, whose }));
        }
        if earlier
            .iter()
            .chain(&forwards[..i])
            .any(|other| other.container_port == port)
        {
            return Err(invalid(key, ConfigErrorKind::ForwardTwice { port }));
        }
    }
    Ok(())
}

/// Refuses workspace paths under `~/.ssh`, `~/.gnupg` and `/etc`, symlinks resolved.
fn check_workspace_paths(
    config: &Config,
    text: &str,
    file: &Path,
    env: &Env,
) -> Result<(), ConfigError> {
    let mut roots = vec![PathBuf::from("/etc")];
    if let Some(home) = &env.home {
        roots.push(home.join(".ssh"));
        roots.push(home.join(".gnupg"));
    }
    let resolved_roots: Vec<(PathBuf, PathBuf)> = roots
        .into_iter()
        .map(|root| (resolve(&root), root))
        .collect();
    for (i, workspace) in config.workspaces.iter().enumerate() {
        let resolved = resolve(&workspace.canonical_path);
        for (resolved_root, root) in &resolved_roots {
            if resolved.starts_with(resolved_root) || workspace.canonical_path.starts_with(root) {
                let document = Document::parse(text).ok();
                let key = format!("workspaces[{i}].canonical_path");
                let offset = document
                    .as_ref()
                    .and_then(|d| KeySpans::new(d).span_of(&key))
                    .map_or(0, |s| s.start);
                let (line, column) = line_column(text, offset);
                let kind = ConfigErrorKind::ForbiddenWorkspace {
                    path: workspace.canonical_path.clone(),
                    root: root.clone(),
                };
                return Err(ConfigError::Invalid {
                    file: file.into(),
                    line,
                    column,
                    key: Some(key),
                    kind: Box::new(kind),
                });
            }
        }
    }
    Ok(())
}

/// The path with symlinks resolved as far as it exists; the missing rest is appended as is
/// (after removing `.` and `..` lexically).
fn resolve(path: &Path) -> PathBuf {
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = std::fs::canonicalize(&existing) {
            let mut out = real;
            for part in rest.iter().rev() {
                out.push(part);
            }
            return lexical(&out);
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent.to_path_buf();
            }
            _ => return lexical(path),
        }
    }
}

fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// A relative path of plain names: no leading `/`, no `.` or `..`, no empty component.
fn is_plain_relative(path: &str) -> bool {
    !path.is_empty()
        && path
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != ".." && !part.contains('\0'))
}

/// Expands a leading `~` and every `$HOME` / `${HOME}`; without a home, leaves them.
pub fn expand(path: &mut PathBuf, env: &Env) {
    let Some(home) = env.home.as_ref().and_then(|h| h.to_str()) else {
        return;
    };
    let Some(text) = path.to_str() else {
        return;
    };
    let mut text = text.replace("${HOME}", home).replace("$HOME", home);
    if text == "~" {
        text = home.to_string();
    } else if let Some(rest) = text.strip_prefix("~/") {
        text = format!("{home}/{rest}");
    }
    *path = PathBuf::from(text);
}

/// The `[[secrets]]`: names unique and plain, variables valid names, hosts patterns, header
/// names tokens, path prefixes absolute.
fn check_secrets(
    secrets: &[super::schema::SecretSpec],
    invalid: &impl Fn(String, ConfigErrorKind) -> ConfigError,
) -> Result<(), ConfigError> {
    for (i, secret) in secrets.iter().enumerate() {
        let key = |field: &str| format!("secrets[{i}].{field}");
        let plain = !secret.name.is_empty()
            && secret.name.len() <= 40
            && secret
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        let repeated = secrets[..i].iter().any(|other| other.name == secret.name);
        if !plain || repeated {
            return Err(invalid(
                key("name"),
                ConfigErrorKind::SecretName {
                    name: secret.name.clone(),
                },
            ));
        }
        if !is_env_name(&secret.env) {
            return Err(invalid(
                key("env"),
                ConfigErrorKind::EnvName {
                    name: secret.env.clone(),
                },
            ));
        }
        if secrets[..i].iter().any(|other| other.env == secret.env) {
            return Err(invalid(
                key("env"),
                ConfigErrorKind::SecretVariable {
                    name: secret.env.clone(),
                },
            ));
        }
        if secret.hosts.is_empty() || secret.hosts.iter().any(|host| host.trim() == "*") {
            return Err(invalid(key("hosts"), ConfigErrorKind::NoHosts));
        }
        check_domains(&secret.hosts, &key("hosts"), invalid)?;
        if let Some(header) = &secret.header {
            let token = !header.is_empty()
                && header.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b"!#$%&'*+-.^_`|~".contains(&b)
                });
            if !token {
                return Err(invalid(
                    key("header"),
                    ConfigErrorKind::HeaderName {
                        value: header.clone(),
                    },
                ));
            }
        }
        if let Some(prefix) = &secret.path_prefix
            && !prefix.starts_with('/')
        {
            return Err(invalid(
                key("path_prefix"),
                ConfigErrorKind::PathPrefix {
                    value: prefix.clone(),
                },
            ));
        }
    }
    Ok(())
}

/// Letters, digits and `_`, not starting with a digit (POSIX.1 §8.1, portable names).
fn is_env_name(name: &str) -> bool {
    name.bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn check_env_names(
    names: &[String],
    key: &str,
    invalid: &impl Fn(String, ConfigErrorKind) -> ConfigError,
) -> Result<(), ConfigError> {
    for (i, name) in names.iter().enumerate() {
        if !is_env_name(name) {
            let key = if key.ends_with(".env") {
                format!("{key}.{name}")
            } else {
                format!("{key}[{i}]")
            };
            return Err(invalid(
                key,
                ConfigErrorKind::EnvName { name: name.clone() },
            ));
        }
    }
    Ok(())
}

fn check_domains(
    values: &[String],
    key: &str,
    invalid: &impl Fn(String, ConfigErrorKind) -> ConfigError,
) -> Result<(), ConfigError> {
    for (i, value) in values.iter().enumerate() {
        DomainPattern::parse(value).map_err(|reason| {
            invalid(
                format!("{key}[{i}]"),
                ConfigErrorKind::Domain {
                    value: value.clone(),
                    reason,
                },
            )
        })?;
    }
    Ok(())
}

fn check_mounts(
    mounts: &mut [Mount],
    key: &str,
    env: &Env,
    invalid: &impl Fn(String, ConfigErrorKind) -> ConfigError,
) -> Result<(), ConfigError> {
    for (i, mount) in mounts.iter_mut().enumerate() {
        expand(&mut mount.host, env);
        for (side, path) in [("host", &mount.host), ("container", &mount.container)] {
            let key = format!("{key}[{i}].{side}");
            if let Some(character) = path
                .to_string_lossy()
                .chars()
                .find(|c| matches!(c, ':' | ','))
            {
                return Err(invalid(
                    key,
                    ConfigErrorKind::MountPathCharacter {
                        path: path.clone(),
                        character,
                    },
                ));
            }
            if !path.is_absolute() {
                return Err(invalid(
                    key,
                    ConfigErrorKind::NotAbsolute { path: path.clone() },
                ));
            }
        }
    }
    Ok(())
}

impl Config {
    /// The workspace called `name`.
    pub fn workspace(&self, name: &str) -> Option<&Workspace> {
        self.workspaces.iter().find(|w| w.name == name)
    }
}

impl Workspace {
    /// The workspace's rules file, `CANONICAL_PATH/harness-rules.toml` (committed with the
    /// source, like the seed config says): where "forever" answers and `hh rules add` go.
    pub fn rules_file(&self) -> PathBuf {
        self.canonical_path.join(RULES_FILE_NAME)
    }

    /// Where earlier versions of hh kept the workspace's rules, `CANONICAL_PATH/.hh/
    /// harness-rules.toml`: still read (`hh rules migrate` moves it to [`Self::rules_file`]).
    pub fn legacy_rules_file(&self) -> PathBuf {
        self.canonical_path
            .join(RULES_DIR_NAME)
            .join(RULES_FILE_NAME)
    }

    /// Every rules file of the workspace, in the order their rules are listed.
    pub fn rules_files(&self) -> Vec<PathBuf> {
        vec![self.rules_file(), self.legacy_rules_file()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::schema::{Cpus, Memory, MountMode};

    fn env() -> Env {
        Env {
            home: Some("/home/u".into()),
            xdg_config_home: None,
        }
    }

    fn parse_ok(text: &str) -> Config {
        parse(text, Path::new("hh.toml"), &env()).unwrap_or_else(|e| panic!("{e}"))
    }

    fn parse_err(text: &str) -> String {
        parse(text, Path::new("hh.toml"), &env())
            .expect_err(text)
            .to_string()
    }

    const SEED: &str = r#"version = 1
docker_dir = "~/.config/harness-hat/docker"
log_dir = "$HOME/logs"

[manager]
global_rules_file = "~/.config/harness-hat/harness-rules.toml"

[defaults.control]
server_port = 7878
server_host = "127.0.0.1"
token_env_var = "HARNESS_HAT_TOKEN"
allow_remote_control = false

[defaults.proxy]
proxy_port = 28781
proxy_host = "127.0.0.1"
strict_network = true

[defaults.containers]
env_passthrough = ["TERM", "LANG"]
bypass_proxy = ["*.googleapis.com", "example.com"]
localhost_forwards = [5432, 6379]

[[defaults.containers.mounts]]
host = "~/.gitconfig"
container = "/home/agent/.gitconfig"
mode = "ro"
seed = true

[container_profiles.rust]
image = "rust"
memory = "6g"
cpus = "3"
starter_network_allowlist = ["domain=*.crates.io", "domain=static.rust-lang.org"]
bypass_proxy = []
env = { CARGO_TERM_COLOR = "always" }

[[container_profiles.rust.mounts]]
host = "${HOME}/.cargo/registry"
container = "/home/agent/.cargo/registry"
mode = "rw"

[[workspaces]]
name = "hh"
canonical_path = "~/src/hh"
"#;

    #[test]
    fn every_key_of_the_seed_example_parses_and_means_what_it_says() {
        let config = parse_ok(SEED);
        assert_eq!(
            config.docker_dir,
            Path::new("/home/u/.config/harness-hat/docker")
        );
        assert_eq!(config.log_dir, Path::new("/home/u/logs"));
        assert_eq!(
            config.manager.global_rules_file,
            Path::new("/home/u/.config/harness-hat/harness-rules.toml")
        );
        let control = &config.defaults.control;
        assert_eq!(
            (control.server_port, control.server_host.as_str()),
            (7878, "127.0.0.1")
        );
        assert_eq!(
            (control.token_env_var.as_str(), control.allow_remote_control),
            ("HARNESS_HAT_TOKEN", false)
        );
        let proxy = &config.defaults.proxy;
        assert_eq!(
            (
                proxy.proxy_port,
                proxy.proxy_host.as_str(),
                proxy.strict_network
            ),
            (28781, "127.0.0.1", true)
        );
        let containers = &config.defaults.containers;
        assert_eq!(containers.env_passthrough, ["TERM", "LANG"]);
        assert_eq!(containers.bypass_proxy, ["*.googleapis.com", "example.com"]);
        let ports: Vec<(u16, u16)> = containers
            .localhost_forwards
            .iter()
            .map(|f| (f.container_port, f.host_port))
            .collect();
        assert_eq!(ports, [(5432, 5432), (6379, 6379)]);
        let mount = &containers.mounts[0];
        assert_eq!(mount.host, Path::new("/home/u/.gitconfig"));
        assert_eq!((mount.mode, mount.seed), (MountMode::ReadOnly, true));
        let rust = &config.container_profiles["rust"];
        assert_eq!(rust.image, "rust");
        assert_eq!(rust.memory, Some(Memory(6 << 30)));
        assert_eq!(rust.cpus, Some(Cpus(3.0)));
        assert_eq!(rust.starter_network_allowlist.len(), 2);
        assert_eq!(rust.env["CARGO_TERM_COLOR"], "always");
        assert_eq!(rust.mounts[0].host, Path::new("/home/u/.cargo/registry"));
        assert_eq!(rust.mounts[0].mode, MountMode::ReadWrite);
        let workspace = config.workspace("hh").unwrap();
        assert_eq!(workspace.canonical_path, Path::new("/home/u/src/hh"));
        assert_eq!(
            workspace.rules_file(),
            Path::new("/home/u/src/hh/harness-rules.toml")
        );
        assert_eq!(
            workspace.legacy_rules_file(),
            Path::new("/home/u/src/hh/.hh/harness-rules.toml")
        );
    }

    #[test]
    fn a_harness_of_the_config_is_checked_key_by_key() {
        let ok = parse_ok(
            "version = 1\n[harnesses.aider]\ninteractive = [\"aider\"]\n\
             one_shot = [\"aider\", \"--message\"]\nauth_env = [\"OPENAI_API_KEY\"]\n\
             allow = [\"domain=api.openai.com port=443\"]\nglobal_instructions = \".aider/notes.md\"\n",
        );
        assert_eq!(ok.harnesses["aider"].one_shot, ["aider", "--message"]);
        for (text, key) in [
            (
                "[harnesses.claude]\ninteractive = [\"x\"]\none_shot = [\"x\"]\n",
                "harnesses.claude",
            ),
            (
                "[harnesses.Big]\ninteractive = [\"x\"]\none_shot = [\"x\"]\n",
                "harnesses.Big",
            ),
            (
                "[harnesses.a]\ninteractive = []\none_shot = [\"x\"]\n",
                "harnesses.a.interactive",
            ),
            (
                "[harnesses.a]\ninteractive = [\"x\"]\none_shot = [\"x\"]\nallow = [\"port=nope\"]\n",
                "harnesses.a.allow[0]",
            ),
            (
                "[harnesses.a]\ninteractive = [\"x\"]\none_shot = [\"x\"]\nauth_env = [\"1X\"]\n",
                "harnesses.a.auth_env[0]",
            ),
            (
                "[harnesses.a]\ninteractive = [\"x\"]\none_shot = [\"x\"]\nglobal_instructions = \"../x\"\n",
                "harnesses.a.global_instructions",
            ),
            (
                "[harnesses.a]\ninteractive = [\"x\"]\none_shot = [\"x\"]\ncolour = 1\n",
                "colour",
            ),
            (
                "[harnesses.a]\ninteractive = [\"x\"]\none_shot = [\"x\"]\nseed = [\"/etc\"]\n",
                "harnesses.a.seed[0]",
            ),
        ] {
            let error = parse_err(&format!("version = 1\n{text}"));
            assert!(error.contains(key), "{key} in {error}");
        }
    }

    #[test]
    fn root_builds_network_and_bundle_are_checked() {
        use crate::config::schema::BuildNetwork;
        let config = parse_ok(
            "version = 1\n[images]\nbuild_network = \"host\"\nhost_ca_bundle = \"~/ca.pem\"\n",
        );
        assert_eq!(config.images.build_network, BuildNetwork::Host);
        assert_eq!(
            config.images.host_ca_bundle.as_deref(),
            Some(Path::new("/home/u/ca.pem"))
        );
        assert_eq!(
            parse_ok("version = 1\n").images.build_network,
            BuildNetwork::Bridge
        );
        let error = parse_err("version = 1\n[images]\nbuild_network = \"none\"\n");
        assert!(
            error.contains("hh.toml:3") && error.contains("build_network"),
            "{error}"
        );
        let error = parse_err("version = 1\n[images]\nhost_ca_bundle = \"ca.pem\"\n");
        assert!(error.contains("images.host_ca_bundle"), "{error}");
    }

    #[test]
    fn a_minimal_config_takes_the_defaults() {
        let config = parse_ok("version = 1\n");
        assert_eq!(config.defaults.proxy.proxy_port, 28781);
        assert_eq!(config.defaults.control.server_port, 7878);
        assert!(config.defaults.proxy.strict_network);
        assert_eq!(
            config.log_dir,
            Path::new("/home/u/.local/state/harness-hat/logs")
        );
    }

    #[test]
    fn errors_name_file_line_column_and_key() {
        let cases = [
            (
                "version = 2\n",
                "hh.toml:1:1: `version`: unsupported version 2",
            ),
            (
                "version = 1\ndocker_dri = \"/x\"\n",
                "hh.toml:2:1: `docker_dri`: unknown field `docker_dri`",
            ),
            (
                "version = 1\n[defaults.proxy]\nstrict_netwrk = false\n",
                "hh.toml:3:1: `defaults.proxy.strict_netwrk`: unknown field",
            ),
            (
                "version = 1\n[defaults.proxy]\nproxy_port = \"x\"\n",
                "hh.toml:3:14: `defaults.proxy.proxy_port`: invalid type",
            ),
            (
                "version = 1\n[defaults.proxy]\nproxy_port = 70000\n",
                "hh.toml:3:14: `defaults.proxy.proxy_port`: ",
            ),
            (
                "version = 1\n[defaults.proxy]\nproxy_port = 0\n",
                "hh.toml:3:1: `defaults.proxy.proxy_port`: port 0",
            ),
            (
                "version = 1\n[container_profiles.x]\nimage = \"x\"\nmemory = \"6q\"\n",
                "hh.toml:4:10: `container_profiles.x.memory`: invalid value",
            ),
            (
                "version = 1\n[container_profiles.x]\nimage = \"x\"\ncpus = \"many\"\n",
                "hh.toml:4:8: `container_profiles.x.cpus`: invalid value",
            ),
            (
                "version = 1\n[container_profiles.x]\nimage = \"x\"\nstarter_network_allowlist = [\"domian=a\"]\n",
                "hh.toml:4:30: `container_profiles.x.starter_network_allowlist[0]`: rule `domian=a`",
            ),
            (
                "version = 1\n[defaults.control]\nserver_host = \"0.0.0.0\"\n",
                "hh.toml:3:1: `defaults.control.server_host`: `0.0.0.0`: a session's control server",
            ),
            (
                "version = 1\n[defaults.proxy]\nproxy_host = \"192.168.1.2\"\n",
                "hh.toml:3:1: `defaults.proxy.proxy_host`: `192.168.1.2`: a session's control",
            ),
            (
                "version = 1\n[defaults.control]\nserver_host = \"0.0.0.0\"\nallow_remote_control = true\n",
                "hh.toml:3:1: `defaults.control.server_host`: `0.0.0.0`: a session's control server",
            ),
            (
                "version = 1\n[defaults.proxy]\nproxy_host = \"127.0.0.2\"\n",
                "hh.toml:3:1: `defaults.proxy.proxy_host`: `127.0.0.2`: a session's control",
            ),
            (
                "version = 1\n[[workspaces]]\nname = \"w\"\ncanonical_path = \"/w\"\nprotected_paths = [\".git/config\", \"../x\"]\n",
                "hh.toml:5:35: `workspaces[0].protected_paths[1]`: `../x` is not a path inside the workspace",
            ),
            (
                "version = 1\n[[secrets]]\nname = \"Key\"\nenv = \"K\"\nhosts = [\"a.test\"]\n",
                "hh.toml:3:1: `secrets[0].name`: secret name `Key` must be lowercase",
            ),
            (
                "version = 1\n[[secrets]]\nname = \"k\"\nenv = \"1K\"\nhosts = [\"a.test\"]\n",
                "hh.toml:4:1: `secrets[0].env`: `1K` is not an environment variable name",
            ),
            (
                "version = 1\n[[secrets]]\nname = \"k\"\nenv = \"K\"\nhosts = []\n",
                "hh.toml:5:1: `secrets[0].hosts`: a secret needs at least one host",
            ),
            (
                "version = 1\n[[secrets]]\nname = \"k\"\nenv = \"K\"\nhosts = [\"a.test\"]\nheader = \"X Key\"\n",
                "hh.toml:6:1: `secrets[0].header`: `X Key` is not a header name",
            ),
            (
                "version = 1\n[[secrets]]\nname = \"k\"\nenv = \"K\"\nhosts = [\"a.test\"]\npath_prefix = \"v1\"\n",
                "hh.toml:6:1: `secrets[0].path_prefix`: `v1` must start with `/`",
            ),
            (
                "version = 1\n[[secrets]]\nname = \"k\"\nenv = \"K\"\nhosts = [\"a.test\"]\n[[secrets]]\nname = \"j\"\nenv = \"K\"\nhosts = [\"a.test\"]\n",
                "hh.toml:8:1: `secrets[1].env`: `K` holds another secret already",
            ),
            (
                "version = 1\n[[workspaces]]\nname = \"w\"\ncanonical_path = \"/w\"\nsensitive_allow = [{ path = \"k.pem\", reason = \" \" }]\n",
                "hh.toml:5:38: `workspaces[0].sensitive_allow[0].reason`: say why",
            ),
            (
                "version = 1\n[[workspaces]]\nname = \"w\"\ncanonical_path = \"/w\"\nports = [\"8080:3000\", \"18080:28781\"]\n",
                "hh.toml:5:23: `workspaces[0].ports[1]`: session port 28781 is the proxy's port",
            ),
            (
                "version = 1\n[[workspaces]]\nname = \"w\"\ncanonical_path = \"/w\"\ncommit_on_exit = true\n",
                "hh.toml:5:1: `workspaces[0].commit_on_exit`: applies to a workspace in git mode only",
            ),
            (
                "version = 1\n[defaults.containers]\nlocalhost_forwards = [11434, 28781]\n",
                "hh.toml:3:30: `defaults.containers.localhost_forwards[1]`: port 28781 is the proxy's",
            ),
            (
                "version = 1\n[defaults.containers]\nlocalhost_forwards = [11434, 11434]\n",
                "hh.toml:3:30: `defaults.containers.localhost_forwards[1]`: port 11434 of the session is forwarded twice",
            ),
            (
                "version = 1\n[defaults.containers]\nlocalhost_forwards = [11434]\n[container_profiles.x]\nimage = \"x\"\nlocalhost_forwards = [{ container_port = 11434, host_port = 8080 }]\n",
                "hh.toml:6:23: `container_profiles.x.localhost_forwards[0]`: port 11434 of the session is forwarded twice",
            ),
            (
                "version = 1\n[defaults.containers]\nlocalhost_forwards = [{ container_port = 1, hostport = 2 }]\n",
                "hh.toml:3:23: `defaults.containers.localhost_forwards[0]`: unknown field `hostport`, expected `container_port` or `host_port`",
            ),
            (
                "version = 1\n[defaults.proxy]\nstrict_network = false\n",
                "hh.toml:3:1: `defaults.proxy.strict_network`: `false` is not supported",
            ),
            (
                "version = 1\n[[defaults.containers.mounts]]\nhost = \"/a:b\"\ncontainer = \"/c\"\n",
                "hh.toml:3:1: `defaults.containers.mounts[0].host`: `/a:b` contains `:`",
            ),
            (
                "version = 1\n[[defaults.containers.mounts]]\nhost = \"/a\"\ncontainer = \"/c,d\"\n",
                "hh.toml:4:1: `defaults.containers.mounts[0].container`: `/c,d` contains `,`",
            ),
            (
                "version = 1\n[[defaults.containers.mounts]]\nhost = \"/a\"\ncontainer = \"/c\"\nmode = \"rx\"\n",
                "hh.toml:5:8: `defaults.containers.mounts[0].mode`: unknown variant",
            ),
            (
                "version = 1\n[[workspaces]]\nname = \"a\"\ncanonical_path = \"rel\"\n",
                "hh.toml:4:1: `workspaces[0].canonical_path`: `rel` must be an absolute path",
            ),
            (
                "version = 1\n[[workspaces]]\nname = \"a\"\ncanonical_path = \"/a\"\n[[workspaces]]\nname = \"a\"\ncanonical_path = \"/b\"\n",
                "hh.toml:6:1: `workspaces[1].name`: workspace name `a`",
            ),
            (
                "version = 1\n[defaults.containers]\nenv_passthrough = [\"OK\", \"1BAD\"]\n",
                "hh.toml:3:26: `defaults.containers.env_passthrough[1]`: `1BAD`",
            ),
            (
                "version = 1\n[defaults.containers]\nbypass_proxy = [\"a*.com\"]\n",
                "hh.toml:3:17: `defaults.containers.bypass_proxy[0]`: `a*.com`",
            ),
            ("version = 1\n[manager\n", "hh.toml:2:9: "),
            (
                "version = 1\n[defaults.control]\ntoken_env_var = \"A-B\"\n",
                "hh.toml:3:1: `defaults.control.token_env_var`: `A-B` is not",
            ),
        ];
        for (text, message) in cases {
            let error = parse_err(text);
            assert!(
                error.starts_with(message),
                "{text:?}\n  got:  {error}\n  want: {message}"
            );
        }
    }

    #[test]
    fn the_sessions_own_loopback_is_the_only_listen_address() {
        for host in ["localhost", "127.0.0.1"] {
            let config = parse_ok(&format!(
                "version = 1\n[defaults.control]\nserver_host = \"{host}\"\n[defaults.proxy]\nproxy_host = \"{host}\"\n"
            ));
            assert_eq!(config.defaults.proxy.proxy_host, host);
        }
    }

    #[test]
    fn tilde_and_home_expand_only_where_they_mean_home() {
        let cases = [
            ("~", "/home/u"),
            ("~/x", "/home/u/x"),
            ("$HOME/x", "/home/u/x"),
            ("${HOME}/x", "/home/u/x"),
            ("/a/~/b", "/a/~/b"),
            ("~other/x", "~other/x"),
        ];
        for (input, expanded) in cases {
            let mut path = PathBuf::from(input);
            expand(&mut path, &env());
            assert_eq!(path, Path::new(expanded), "{input}");
        }
    }

    #[test]
    fn workspaces_under_ssh_gnupg_or_etc_are_refused_even_through_symlinks() {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir(home.path().join(".ssh")).unwrap();
        std::os::unix::fs::symlink(home.path().join(".ssh"), home.path().join("innocent")).unwrap();
        std::os::unix::fs::symlink("/etc", home.path().join("config")).unwrap();
        std::fs::create_dir(home.path().join("src")).unwrap();
        let env = Env {
            home: Some(home.path().into()),
            xdg_config_home: None,
        };
        let file = home.path().join("harness-hat.toml");
        let write_and_load = |path: &str| {
            std::fs::write(
                &file,
                format!("version = 1\n[[workspaces]]\nname = \"w\"\ncanonical_path = \"{path}\"\n"),
            )
            .unwrap();
            load(&file, &env)
        };
        for path in [
            "~/.ssh",
            "~/.ssh/keys",
            "~/innocent/x",
            "~/config",
            "/etc",
            "/etc/../etc/ssh",
            "~/.gnupg/x",
        ] {
            let error = write_and_load(path).expect_err(path).to_string();
            assert!(
                error.contains(":4:1: `workspaces[0].canonical_path`:"),
                "{path}: {error}"
            );
            assert!(
                error.contains("which hh never hands to a session"),
                "{path}: {error}"
            );
        }
        for path in ["~/src", "~/src/new", "/tmp/x"] {
            write_and_load(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        }
    }

    #[test]
    fn the_default_path_follows_xdg() {
        let env = Env {
            home: Some("/home/u".into()),
            xdg_config_home: None,
        };
        assert_eq!(
            env.default_config_path().unwrap(),
            Path::new("/home/u/.config/harness-hat/harness-hat.toml")
        );
        let env = Env {
            home: Some("/home/u".into()),
            xdg_config_home: Some("/x".into()),
        };
        assert_eq!(
            env.default_config_path().unwrap(),
            Path::new("/x/harness-hat/harness-hat.toml")
        );
        assert_eq!(Env::default().default_config_path(), None);
    }
}
