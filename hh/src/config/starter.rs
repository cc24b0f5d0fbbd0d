//! The commented starter config `hh init` writes: every key, its default and what it means.
//! It must load without error (tested below and in `tests/config_cli.rs`).

/// The text of a new `harness-hat.toml`.
pub const STARTER_CONFIG: &str = r#"# harness-hat.toml: the hh manager's config.
# Unknown keys are errors, so a typo cannot silently weaken the policy.
# `~` and `$HOME` expand in paths.

version = 1

# Where the container image stems (Dockerfiles) live.
docker_dir = "~/.config/harness-hat/docker"
# Where hh writes its debug and audit logs.
log_dir = "~/.local/state/harness-hat/logs"

[manager]
# Rules for every workspace; a deny here wins everywhere.
global_rules_file = "~/.config/harness-hat/harness-rules.toml"

[defaults.control]
# The control server sessions talk to.
server_port = 7878
server_host = "127.0.0.1"
# The variable that holds the control token inside a session.
token_env_var = "HARNESS_HAT_TOKEN"
# A server_host or proxy_host that is not loopback is refused unless this is true.
allow_remote_control = false

[defaults.proxy]
proxy_port = 28781
proxy_host = "127.0.0.1"
# Drop traffic that cannot go through the proxy instead of letting it through.
strict_network = true

[defaults.containers]
# Host environment variables copied into every session.
env_passthrough = ["TERM", "LANG"]
# Hosts whose TLS is passed through after the SNI check instead of being terminated
# (`host` or `*.suffix`).
bypass_proxy = []
# Host ports a session reaches as its own 127.0.0.1:PORT.
localhost_forwards = []

# Paths given to every session. mode is "ro" (default) or "rw"; seed = true copies the
# path in once at start instead of mounting it. Paths may not contain `:` or `,`.
# [[defaults.containers.mounts]]
# host = "~/.gitconfig"
# container = "/home/agent/.gitconfig"
# mode = "ro"
# seed = true

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

# Workspaces: a name and the directory handed to the session. Its network rules live in
# CANONICAL_PATH/.hh/harness-rules.toml, read-only inside sessions. Paths under ~/.ssh,
# ~/.gnupg and /etc are refused.
# [[workspaces]]
# name = "my-project"
# canonical_path = "~/src/my-project"
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
}
