//! The commented starter config `hh init` writes: every key, its default and what it means.
//! It must load without error (tested below and in `tests/config_cli.rs`).

/// The text of a new `harness-hat.toml`.
pub const STARTER_CONFIG: &str = r#"# harness-hat.toml: the hh manager's config.
# Unknown keys are errors, so a typo cannot silently weaken the policy.
# `~` and `$HOME` expand in paths.

version = 1

# Where the container image stems (Dockerfiles) live.
docker_dir = "~/.config/harness-hat/docker"
# Where the terminal UI writes its log (tui.log; $HH_LOG_FILE overrides it). The agent keeps
# the audit log in its own state directory.
log_dir = "~/.local/state/harness-hat/logs"
# Where hh makes the clones git-mode workspaces' sessions work on (0700).
clones_dir = "~/.local/state/harness-hat/clones"

[manager]
# Rules for every workspace; a deny here wins everywhere.
global_rules_file = "~/.config/harness-hat/harness-rules.toml"

[images]
# Root's image builds (`sudo hh image build`) only; a user's builds run on the engine's bridge.
# With build_network "host" their steps run on the host's network, for a host that reaches the
# package registries only through its own set-up (a corporate proxy, an egress that intercepts
# TLS). host_ca_bundle lends the steps that ask for it (`RUN --mount=type=secret,id=host-ca`,
# as the shipped stems do) a PEM bundle at /run/secrets/host-ca: in no layer of the image. It
# must be a file root owns that no one else may write.
build_network = "bridge"
# host_ca_bundle = "/etc/ssl/certs/ca-certificates.crt"

[defaults.control]
# The control server each session talks to (`killme`), on the session's own loopback:
# 127.0.0.1 is the only server_host.
server_port = 7878
server_host = "127.0.0.1"
# The variable that holds the control token inside a session.
token_env_var = "HARNESS_HAT_TOKEN"
# `hh proxy --listen` on an address that is not loopback is refused unless this is true.
allow_remote_control = false

[defaults.proxy]
# Each session's proxy, on the session's own loopback: 127.0.0.1 is the only proxy_host.
proxy_port = 28781
proxy_host = "127.0.0.1"
# Nothing leaves a session except through the proxy; false is refused.
strict_network = true

[defaults.containers]
# Host environment variables copied into every session.
env_passthrough = ["TERM", "LANG"]
# Hosts whose TLS is passed through after the SNI check instead of being terminated
# (`host` or `*.suffix`).
bypass_proxy = []
# Host ports a session reaches on its own loopback: PORT (the same on both sides), or a table
# naming the session's port and the host's (the rust template below has one).
localhost_forwards = []
# A session of a coding agent (--harness) gets its own copy of your config of that agent
# (~/.claude and ~/.claude.json, ~/.codex, ~/.gemini, ~/.config/opencode and
# ~/.local/share/opencode, ~/.pi: your login, settings and history), made for that session
# alone; false starts it from an empty home.
seed_harness_config = false
# Sessions commit as you: your git user.name and user.email (read as you, in the workspace)
# become git's author and committer there; your ~/.gitconfig itself stays out.
git_identity = true
# Claude Code in a session runs under hh's managed settings (read-only at
# /etc/claude-code/managed-settings.json): it may not read environment variables, .env files or
# credential files, nor ask cloud metadata, and hh's PreToolUse hook refuses such commands.
agent_guards = true

# Paths given to every session. mode is "ro" (default) or "rw"; seed = true copies the
# path in once at start instead of mounting it. Paths may not contain `:` or `,`.
# [[defaults.containers.mounts]]
# host = "~/.gitconfig"
# container = "/home/agent/.gitconfig"
# mode = "ro"
# seed = true

# Coding agents besides the built-in ones (claude, codex, gemini, opencode, pi), run with
# --harness NAME: the interactive and one_shot commands (the prompt is added last), auth_env
# passed from your environment to its sessions only, env set in them, allow and deny its policy
# layer, global_instructions the file under the home where its sessions get hh's network note.
# [harnesses.aider]
# interactive = ["aider"]
# one_shot = ["aider", "--yes-always", "--message"]
# auth_env = ["OPENAI_API_KEY"]
# allow = ["domain=api.openai.com port=443"]
# global_instructions = ".aider/CONVENTIONS.md"
# seed = [".aider.conf.yml"]

# Container templates. `image` is a stem under docker_dir; memory and cpus limit the container;
# starter_network_allowlist is the template's layer of allow rules (same grammar as
# harness-rules.toml).
[container_profiles.default]
image = "default"
memory = "6g"
cpus = "3"
starter_network_allowlist = []
bypass_proxy = []
env = {}

# [container_profiles.rust]
# image = "rust"
# memory = "8g"
# cpus = "4"
# starter_network_allowlist = ["domain=crates.io,*.crates.io", "domain=static.rust-lang.org"]
# env = { CARGO_TERM_COLOR = "always" }
# protected_paths = [".envrc"]   # read-only in this template's sessions, besides the workspace's
# localhost_forwards = [{ container_port = 11434, host_port = 11434 }]

# Secrets sessions never see: the variable is read from your environment when you start a
# session; the session gets a placeholder in it, which the proxy replaces with the value only in
# HTTPS requests to the hosts named (in the header named, under the path prefix); a placeholder
# sent anywhere else is refused and audited.
# [[secrets]]
# name = "anthropic"
# env = "ANTHROPIC_API_KEY"
# hosts = ["api.anthropic.com"]
# header = "x-api-key"
# path_prefix = "/v1/"

# Workspaces: a name and the directory handed to the session. Its network rules live in
# CANONICAL_PATH/harness-rules.toml; sessions run the version you last trusted
# (`hh rules status` / `hh rules trust`). Paths under ~/.ssh, ~/.gnupg and /etc are refused.
# protected_paths (relative) are read-only in sessions, because host tools run them; the
# default is [".git/config", ".git/hooks"], [] protects nothing. Sessions see the workspace at
# /workspace unless mount_at_host_path is true (here or in the template; the workspace's wins):
# then at its host path, so that agents, which key history and --resume on the working
# directory, keep one history per project.
# [[workspaces]]
# name = "my-project"
# canonical_path = "~/src/my-project"
# protected_paths = [".git/config", ".git/hooks", ".envrc"]
# mount_at_host_path = true
# Before a start, hh names the workspace's files whose names say they hold secrets (.env, keys,
# cloud credentials, package tokens; an interactive start asks when one is of high severity):
# sensitive_allow lists those meant to be there, each with the reason.
# sensitive_allow = [{ path = "tests/fixtures/key.pem", reason = "the tests' own key" }]
# In git mode each session works on its own clone of the repository (made as you under
# clones_dir); the repository's .git is never in the session. When it stops, its branches come
# back as hh/SESSION/BRANCH (your working tree untouched); commit_on_exit commits what it left
# uncommitted first, push_on_exit pushes the branches to origin (a failed push keeps them and
# saves a bundle). `hh snapshot`, `hh restore` and `hh diff` work on a running one.
# mode = "git"
# commit_on_exit = true
# commit_message = "hh: work of session {session} in {workspace}"
# push_on_exit = false
# git_url = "https://github.com/me/my-project.git"   # cloned to canonical_path when empty
# branch = "main"                                    # the branch sessions start on
# clone_depth = 50                                   # how much history clones take
# Session ports published on the host while a session runs ([ADDRESS:]HOST_PORT:SESSION_PORT;
# the address 127.0.0.1 unless given, host ports from 1024 up):
# ports = ["8080:3000"]
# A shell command each session runs first (in the workspace, as its user, its network already
# enforced); when it fails the session does not start:
# pre_start = "redis-server --daemonize yes"
"#;

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{Env, load::parse};

    #[test]
    fn the_starter_config_loads_without_error() {
        let env = Env {
            home: Some("/home/u".into()),
            xdg_config_home: None,
        };
        let config = parse(STARTER_CONFIG, Path::new("harness-hat.toml"), &env).unwrap();
        assert_eq!(config.defaults.proxy.proxy_port, 28781);
        assert!(config.container_profiles.contains_key("default"));
    }

    /// `key = value`, as opposed to prose.
    fn is_assignment(line: &str) -> bool {
        line.split_once(" = ").is_some_and(|(key, _)| {
            !key.is_empty() && key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
        })
    }

    #[test]
    fn the_commented_examples_load_when_uncommented() {
        let uncommented: String = STARTER_CONFIG
            .lines()
            .map(|line| match line.strip_prefix("# ") {
                Some(rest) if rest.starts_with('[') || is_assignment(rest) => rest,
                _ => line,
            })
            .map(|line| format!("{line}\n"))
            .collect();
        let env = Env {
            home: Some("/home/u".into()),
            xdg_config_home: None,
        };
        let config = parse(&uncommented, Path::new("harness-hat.toml"), &env).unwrap();
        assert_eq!(config.workspaces.len(), 1);
        assert_eq!(config.defaults.containers.mounts.len(), 1);
        assert!(config.container_profiles.contains_key("rust"));
    }

    /// Every key (at any depth) of a TOML document.
    fn keys_of(table: &dyn toml_edit::TableLike, into: &mut Vec<String>) {
        for (key, item) in table.iter() {
            into.push(key.to_owned());
            if let Some(inner) = item.as_table_like() {
                keys_of(inner, into);
            }
            if let Some(array) = item.as_array_of_tables() {
                for inner in array {
                    keys_of(inner, into);
                }
            }
            for value in item.as_array().into_iter().flatten() {
                if let Some(inner) = value.as_inline_table() {
                    keys_of(inner, into);
                }
            }
        }
    }

    #[test]
    fn the_comments_name_only_keys_the_loader_reads() {
        let uncommented: String = STARTER_CONFIG
            .lines()
            .map(|line| match line.strip_prefix("# ") {
                Some(rest) if rest.starts_with('[') || is_assignment(rest) => rest,
                _ => line,
            })
            .map(|line| format!("{line}\n"))
            .collect();
        // Every key of the uncommented starter loads (`deny_unknown_fields`) and is used.
        let document = toml_edit::Document::parse(uncommented.as_str()).unwrap();
        let mut known = Vec::new();
        keys_of(document.as_table(), &mut known);
        assert!(known.iter().any(|key| key == "localhost_forwards"));
        // A snake_case word in a comment is a key name: it must be one the loader reads.
        let mut named = Vec::new();
        for line in STARTER_CONFIG
            .lines()
            .filter(|l| l.trim_start().starts_with('#'))
        {
            for word in line.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                let snake = word.contains('_')
                    && word
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
                if snake && !known.iter().any(|key| key == word) {
                    named.push(format!("{word} (in `{line}`)"));
                }
            }
        }
        assert!(named.is_empty(), "comments name unknown keys: {named:?}");
    }
}
