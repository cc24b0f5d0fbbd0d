//! Every key of `harness-hat.toml`, its type and its default. Unknown keys are errors
//! (`deny_unknown_fields`): a typo must not silently weaken the policy.
//!
//! Deserializing only checks shapes and types; [`super::load`] then expands `~` / `$HOME` and
//! makes the checks that need more than one key or the filesystem.

use std::{collections::BTreeMap, fmt, path::PathBuf};

use serde::{Deserialize, Deserializer, de};

/// The only config version so far.
pub const CONFIG_VERSION: u32 = 1;

/// The manager's config.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub version: u32,
    /// Where the container image stems (Dockerfiles) live.
    #[serde(default = "default_docker_dir")]
    pub docker_dir: PathBuf,
    /// Where the terminal UI writes its log (`tui.log`; `$HH_LOG_FILE` overrides it). The
    /// agent's audit log is in the agent's state directory.
    #[serde(default = "default_log_dir")]
    pub log_dir: PathBuf,
    /// Where the client makes the clones git-mode sessions work on (0700, yours).
    #[serde(default = "default_clones_dir")]
    pub clones_dir: PathBuf,
    #[serde(default)]
    pub manager: Manager,
    #[serde(default)]
    pub images: Images,
    #[serde(default)]
    pub defaults: Defaults,
    /// Container templates by name (`[container_profiles.rust]`).
    #[serde(default)]
    pub container_profiles: BTreeMap<String, Profile>,
    /// Coding agents besides the built-in ones, by name (`[harnesses.aider]`).
    #[serde(default)]
    pub harnesses: BTreeMap<String, HarnessConfig>,
    #[serde(default)]
    pub workspaces: Vec<Workspace>,
    /// Secrets the session never sees: it gets a placeholder, the proxy puts the real value
    /// into the requests it may go in ([`crate::proxy::secrets`]).
    #[serde(default)]
    pub secrets: Vec<SecretSpec>,
}

/// A secret kept out of sessions: where its value comes from and where it may go.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSpec {
    /// Its name (lowercase letters, digits, `-`, `_`), for messages and the audit log.
    pub name: String,
    /// The variable that holds it in the `hh` client's environment; in the session the same
    /// variable holds the placeholder.
    pub env: String,
    /// The hosts it may be sent to (`host` or `*.suffix`), over HTTPS.
    pub hosts: Vec<String>,
    /// The one header it may be sent in (`x-api-key`, `authorization`); any header when unset.
    #[serde(default)]
    pub header: Option<String>,
    /// Only in requests under this path (`/v1/`).
    #[serde(default)]
    pub path_prefix: Option<String>,
}

fn default_docker_dir() -> PathBuf {
    "~/.config/harness-hat/docker".into()
}

fn default_log_dir() -> PathBuf {
    "~/.local/state/harness-hat/logs".into()
}

fn default_clones_dir() -> PathBuf {
    "~/.local/state/harness-hat/clones".into()
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manager {
    /// Rules that hold for every workspace; a deny here wins everywhere.
    #[serde(default = "default_global_rules_file")]
    pub global_rules_file: PathBuf,
}

fn default_global_rules_file() -> PathBuf {
    "~/.config/harness-hat/harness-rules.toml".into()
}

impl Default for Manager {
    fn default() -> Manager {
        Manager {
            global_rules_file: default_global_rules_file(),
        }
    }
}

/// A coding agent of the config's (`[harnesses.NAME]`), run like a built-in one
/// (`--harness NAME`, see [`crate::harness`]).
#[derive(Clone, Debug, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HarnessConfig {
    /// What people call it (default: its name).
    pub title: Option<String>,
    /// The command of an interactive session (run in the session's tmux).
    pub interactive: Vec<String>,
    /// The command that answers one prompt; the prompt is added as its last argument.
    pub one_shot: Vec<String>,
    /// Its configuration directory under the home, and the project instructions file it reads.
    pub config_dir: Option<String>,
    pub instructions_file: Option<String>,
    /// Its user-level instructions file under the home, where sessions get hh's network note.
    pub global_instructions: Option<String>,
    /// Its config under the home (files or directories), copied into each of its sessions
    /// with `seed_harness_config`.
    #[serde(default)]
    pub seed: Vec<String>,
    /// Variables passed from the client's environment to sessions of this harness only.
    #[serde(default)]
    pub auth_env: Vec<String>,
    /// Set in every session of this harness.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Its policy layer: rules allowed (its API) and denied (its telemetry).
    #[serde(default)]
    pub allow: Vec<String>,
    #[serde(default)]
    pub deny: Vec<String>,
}

/// How root's image builds reach the network (`sudo hh image build`). A user's builds always
/// run on the engine's bridge with nothing of the host's: the host's network would give their
/// build steps the host's loopback services.
#[derive(Clone, Debug, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Images {
    /// Where root's build steps run: the engine's `bridge` (default) or the host's network
    /// (`host`), for a host that reaches package registries only through its own set-up.
    #[serde(default)]
    pub build_network: BuildNetwork,
    /// A PEM bundle lent to root's build steps as the build secret `host-ca`
    /// (`RUN --mount=type=secret,id=host-ca`, at `/run/secrets/host-ca`): present while a
    /// step runs, in no layer of the image. For an egress that intercepts TLS with a CA the
    /// host trusts.
    #[serde(default)]
    pub host_ca_bundle: Option<PathBuf>,
}

/// The network of root's build steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BuildNetwork {
    #[default]
    Bridge,
    Host,
}

#[derive(Clone, Debug, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    #[serde(default)]
    pub control: Control,
    #[serde(default)]
    pub proxy: Proxy,
    #[serde(default)]
    pub containers: Containers,
}

/// The control server sessions talk to.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Control {
    pub server_port: u16,
    /// Where the control server listens: the session's own 127.0.0.1 (the only value).
    pub server_host: String,
    /// The variable holding the control token inside a session.
    pub token_env_var: String,
    /// Must be true for `hh proxy --listen` on an address that is not loopback.
    pub allow_remote_control: bool,
}

impl Default for Control {
    fn default() -> Control {
        Control {
            server_port: 7878,
            server_host: "127.0.0.1".into(),
            token_env_var: "HARNESS_HAT_TOKEN".into(),
            allow_remote_control: false,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Proxy {
    pub proxy_port: u16,
    /// Where a session's proxy listens: the session's own 127.0.0.1 (the only value).
    pub proxy_host: String,
    /// Traffic that cannot go through the proxy is dropped; `false` is refused (agent mode has
    /// no way around the proxy).
    pub strict_network: bool,
}

impl Default for Proxy {
    fn default() -> Proxy {
        Proxy {
            proxy_port: 28781,
            proxy_host: "127.0.0.1".into(),
            strict_network: true,
        }
    }
}

/// Settings every container gets; a profile adds to them.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Containers {
    /// Host environment variables copied into the session.
    pub env_passthrough: Vec<String>,
    /// Hosts whose TLS is spliced, not terminated (after the SNI check): `host` or `*.suffix`.
    pub bypass_proxy: Vec<String>,
    /// Host ports reachable from the session on its own loopback: `PORT` (the same port on
    /// both sides) or `{ container_port = C, host_port = H }`, the seed's form.
    pub localhost_forwards: Vec<LocalhostForward>,
    pub mounts: Vec<Mount>,
    /// A session of a harness gets a copy of your own config of that harness (its `seed`
    /// paths under your home, e.g. `~/.claude` and `~/.claude.json`: your login, settings and
    /// history), made for that session alone; off, it starts from an empty home.
    pub seed_harness_config: bool,
    /// Sessions commit as you: your `user.name` and `user.email` as git's author and committer
    /// variables ([`crate::git_identity`]).
    pub git_identity: bool,
    /// Coding agents in sessions get hh's tool guards: for Claude Code, managed settings
    /// (read-only at `/etc/claude-code/managed-settings.json`) that deny reading environment
    /// variables and credential files and run hh's PreToolUse hook
    /// ([`crate::agent::session_files`]).
    pub agent_guards: bool,
}

impl Default for Containers {
    fn default() -> Containers {
        Containers {
            env_passthrough: Vec::new(),
            bypass_proxy: Vec::new(),
            localhost_forwards: Vec::new(),
            mounts: Vec::new(),
            seed_harness_config: false,
            git_identity: true,
            agent_guards: true,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mount {
    pub host: PathBuf,
    pub container: PathBuf,
    #[serde(default)]
    pub mode: MountMode,
    /// Copy the host path into the container once at start instead of bind-mounting it.
    #[serde(default)]
    pub seed: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize)]
pub enum MountMode {
    #[default]
    #[serde(rename = "ro")]
    ReadOnly,
    #[serde(rename = "rw")]
    ReadWrite,
}

/// A container template.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// The image stem under `docker_dir` (`default`, `rust`, `go`, …).
    pub image: String,
    pub memory: Option<Memory>,
    pub cpus: Option<Cpus>,
    /// Allow rules this template brings (the template layer of the policy).
    #[serde(default)]
    pub starter_network_allowlist: Vec<String>,
    #[serde(default)]
    pub bypass_proxy: Vec<String>,
    #[serde(default)]
    pub mounts: Vec<Mount>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Forwards this template adds to `[defaults.containers] localhost_forwards`.
    #[serde(default)]
    pub localhost_forwards: Vec<LocalhostForward>,
    /// Paths this template's sessions also see read-only in their workspace, besides the
    /// workspace's own `protected_paths` (e.g. `.envrc` for a stem whose users run direnv).
    #[serde(default)]
    pub protected_paths: Vec<String>,
    /// Its sessions see the workspace at its host path instead of `/workspace` (a workspace's
    /// own setting wins): agents key their history and `--resume` on the working directory,
    /// so with `/workspace` everywhere every project's history is one.
    #[serde(default)]
    pub mount_at_host_path: Option<bool>,
}

/// A session's `127.0.0.1:container_port` relayed to the host's `127.0.0.1:host_port`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalhostForward {
    pub container_port: u16,
    pub host_port: u16,
}

impl<'de> Deserialize<'de> for LocalhostForward {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<LocalhostForward, D::Error> {
        deserializer.deserialize_any(ForwardVisitor)
    }
}

struct ForwardVisitor;

impl<'de> de::Visitor<'de> for ForwardVisitor {
    type Value = LocalhostForward;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a port, or { container_port = PORT, host_port = PORT }")
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<LocalhostForward, E> {
        let port = u16::try_from(value)
            .map_err(|_| E::invalid_value(de::Unexpected::Signed(value), &self))?;
        Ok(LocalhostForward {
            container_port: port,
            host_port: port,
        })
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<LocalhostForward, E> {
        let port = u16::try_from(value)
            .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(value), &self))?;
        Ok(LocalhostForward {
            container_port: port,
            host_port: port,
        })
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<LocalhostForward, A::Error> {
        let (mut container_port, mut host_port) = (None, None);
        while let Some(key) = map.next_key::<String>()? {
            let slot = match key.as_str() {
                "container_port" => &mut container_port,
                "host_port" => &mut host_port,
                other => {
                    return Err(de::Error::unknown_field(
                        other,
                        &["container_port", "host_port"],
                    ));
                }
            };
            if slot.replace(map.next_value::<u16>()?).is_some() {
                return Err(de::Error::duplicate_field("port"));
            }
        }
        Ok(LocalhostForward {
            container_port: container_port
                .ok_or_else(|| de::Error::missing_field("container_port"))?,
            host_port: host_port.ok_or_else(|| de::Error::missing_field("host_port"))?,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workspace {
    pub name: String,
    pub canonical_path: PathBuf,
    /// Paths under the workspace (relative) that sessions see read-only, because tools on the
    /// host run what they say: git runs `.git/config`'s `core.fsmonitor` and `.git/hooks/*`.
    /// Setting the key replaces the default; `[]` protects nothing (and session start says so).
    #[serde(default = "default_protected_paths")]
    pub protected_paths: Vec<String>,
    /// Sessions see the workspace at its host path instead of `/workspace` (see the
    /// template's key of the same name, which this one overrides).
    #[serde(default)]
    pub mount_at_host_path: Option<bool>,
    /// Files whose names say they hold secrets that are meant to be in the workspace (test
    /// fixtures, a sample key): not reported before a start ([`crate::sensitive`]).
    #[serde(default)]
    pub sensitive_allow: Vec<SensitiveAllow>,
    /// Whether sessions work in the workspace itself or on a clone of its repository.
    #[serde(default)]
    pub mode: WorkspaceMode,
    /// git mode: what a session leaves uncommitted is committed when it stops (in the
    /// session, as its user), so that it comes back with its branch.
    #[serde(default)]
    pub commit_on_exit: bool,
    /// The message of that commit; `{session}` and `{workspace}` are replaced.
    #[serde(default = "default_commit_message")]
    pub commit_message: String,
    /// git mode: the branches that came back are pushed to the repository's `origin` (from
    /// the host, with your credentials); a failed push keeps them and saves a bundle.
    #[serde(default)]
    pub push_on_exit: bool,
    /// git mode: where the repository comes from when `canonical_path` has none yet (cloned
    /// there by the first start, as you, with your credentials).
    #[serde(default)]
    pub git_url: Option<String>,
    /// git mode: the branch sessions start on (default: the repository's `HEAD`).
    #[serde(default)]
    pub branch: Option<String>,
    /// git mode: how many commits of history clones take (default: all).
    #[serde(default)]
    pub clone_depth: Option<u32>,
    /// Session ports published on the host (`[ADDRESS:]HOST_PORT:SESSION_PORT`, the address
    /// 127.0.0.1 unless given): a dev server in the session, reached from the host.
    #[serde(default)]
    pub ports: Vec<PublishedPort>,
    /// A shell command each session runs first, in its workspace, as its user, once its
    /// network is enforced: a session whose `pre_start` fails does not start.
    #[serde(default)]
    pub pre_start: Option<String>,
}

/// A session's `127.0.0.1:session_port` reachable on the host at `address:host_port`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublishedPort {
    pub address: std::net::Ipv4Addr,
    pub host_port: u16,
    pub session_port: u16,
}

/// The lowest host port hh publishes on: below it only root may listen, and a session's owner
/// must not get root's ports through the agent.
pub const FIRST_PUBLISHED_PORT: u16 = 1024;

impl PublishedPort {
    /// Reads `[ADDRESS:]HOST_PORT:SESSION_PORT`.
    pub fn parse(text: &str) -> Result<PublishedPort, String> {
        let parts: Vec<&str> = text.split(':').collect();
        let (address, host, session) = match parts.as_slice() {
            [host, session] => (std::net::Ipv4Addr::LOCALHOST, *host, *session),
            [address, host, session] => (
                address
                    .parse()
                    .map_err(|_| format!("`{address}` is not an IPv4 address"))?,
                *host,
                *session,
            ),
            _ => return Err("expected [ADDRESS:]HOST_PORT:SESSION_PORT".into()),
        };
        let port = |text: &str| match text.parse::<u16>() {
            Ok(0) | Err(_) => Err(format!("`{text}` is not a port (1-65535)")),
            Ok(port) => Ok(port),
        };
        let (host_port, session_port) = (port(host)?, port(session)?);
        if host_port < FIRST_PUBLISHED_PORT {
            return Err(format!(
                "host port {host_port} is below {FIRST_PUBLISHED_PORT}, which only root may \
                 listen on; pick one from {FIRST_PUBLISHED_PORT} up"
            ));
        }
        Ok(PublishedPort {
            address,
            host_port,
            session_port,
        })
    }
}

impl fmt::Display for PublishedPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{} -> session port {}",
            self.address, self.host_port, self.session_port
        )
    }
}

impl<'de> Deserialize<'de> for PublishedPort {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<PublishedPort, D::Error> {
        let text = String::deserialize(deserializer)?;
        PublishedPort::parse(&text).map_err(de::Error::custom)
    }
}

/// How a workspace reaches its sessions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkspaceMode {
    /// The directory itself, read-write (its `protected_paths` read-only).
    #[default]
    Bind,
    /// A clone of its repository per session ([`crate::git_workspace`]): the host's `.git`,
    /// its config and hooks, is never in the session; the work comes back as branches
    /// `hh/SESSION/*` of the repository, without touching its working tree.
    Git,
}

fn default_commit_message() -> String {
    "hh: work of session {session} in {workspace}".to_owned()
}

/// A file of the workspace the sensitive-file scan leaves out, and why.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SensitiveAllow {
    /// Relative to the workspace.
    pub path: String,
    /// Why it may be there (required: an allowlist entry says why).
    pub reason: String,
}

/// What a workspace protects unless its config says otherwise.
pub const DEFAULT_PROTECTED_PATHS: [&str; 2] = [".git/config", ".git/hooks"];

fn default_protected_paths() -> Vec<String> {
    DEFAULT_PROTECTED_PATHS.map(String::from).to_vec()
}

/// A memory limit in bytes, written as Docker does: `6g`, `512m`, `1024k`, `1073741824`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Memory(pub u64);

impl Memory {
    pub fn parse(text: &str) -> Option<Memory> {
        let text = text.trim().to_ascii_lowercase();
        let text = text.strip_suffix('b').unwrap_or(&text);
        let (digits, multiplier) = match text.char_indices().last()? {
            (i, 'k') => (&text[..i], 1u64 << 10),
            (i, 'm') => (&text[..i], 1 << 20),
            (i, 'g') => (&text[..i], 1 << 30),
            (i, 't') => (&text[..i], 1 << 40),
            _ => (text, 1),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let bytes = digits.parse::<u64>().ok()?.checked_mul(multiplier)?;
        (bytes > 0).then_some(Memory(bytes))
    }
}

/// A CPU limit (`"3"`, `1.5`): a positive, finite number of CPUs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cpus(pub f64);

impl Cpus {
    pub fn parse(text: &str) -> Option<Cpus> {
        text.trim().parse::<f64>().ok().and_then(Cpus::new)
    }

    fn new(value: f64) -> Option<Cpus> {
        (value.is_finite() && value > 0.0 && value <= 4096.0).then_some(Cpus(value))
    }
}

/// Accepts a string or a number; `parse` gives the meaning.
struct NumberOrString<T> {
    expecting: &'static str,
    parse: fn(&str) -> Option<T>,
}

impl<T> de::Visitor<'_> for NumberOrString<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<T, E> {
        (self.parse)(value).ok_or_else(|| E::invalid_value(de::Unexpected::Str(value), &self))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<T, E> {
        (self.parse)(&value.to_string())
            .ok_or_else(|| E::invalid_value(de::Unexpected::Signed(value), &self))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<T, E> {
        (self.parse)(&value.to_string())
            .ok_or_else(|| E::invalid_value(de::Unexpected::Unsigned(value), &self))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<T, E> {
        (self.parse)(&value.to_string())
            .ok_or_else(|| E::invalid_value(de::Unexpected::Float(value), &self))
    }
}

impl<'de> Deserialize<'de> for Memory {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Memory, D::Error> {
        deserializer.deserialize_any(NumberOrString {
            expecting: "a memory size like \"6g\", \"512m\" or a number of bytes",
            parse: Memory::parse,
        })
    }
}

impl<'de> Deserialize<'de> for Cpus {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Cpus, D::Error> {
        deserializer.deserialize_any(NumberOrString {
            expecting: "a positive number of CPUs like \"3\" or 1.5",
            parse: Cpus::parse,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes_parse_like_docker() {
        let cases = [
            ("6g", Some(6 << 30)),
            ("6G", Some(6 << 30)),
            ("6gb", Some(6 << 30)),
            ("512m", Some(512 << 20)),
            ("1024k", Some(1 << 20)),
            ("1073741824", Some(1 << 30)),
            ("0", None),
            ("", None),
            ("g", None),
            ("6x", None),
            ("-1g", None),
            ("1.5g", None),
            ("99999999999999t", None),
        ];
        for (text, bytes) in cases {
            assert_eq!(Memory::parse(text).map(|m| m.0), bytes, "{text}");
        }
    }

    #[test]
    fn cpus_are_positive_finite_numbers() {
        let cases = [
            ("3", Some(3.0)),
            ("1.5", Some(1.5)),
            ("0", None),
            ("-1", None),
            ("inf", None),
            ("NaN", None),
            ("x", None),
        ];
        for (text, cpus) in cases {
            assert_eq!(Cpus::parse(text).map(|c| c.0), cpus, "{text}");
        }
    }

    #[test]
    fn a_published_port_is_loopback_unless_it_names_an_address() {
        assert_eq!(
            PublishedPort::parse("8080:3000").unwrap(),
            PublishedPort {
                address: std::net::Ipv4Addr::LOCALHOST,
                host_port: 8080,
                session_port: 3000
            }
        );
        // Parsed only: nothing binds it.
        assert_eq!(
            PublishedPort::parse("0.0.0.0:8080:3000").unwrap().address,
            std::net::Ipv4Addr::UNSPECIFIED
        );
        for bad in [
            "8080",
            "80:3000",
            "8080:0",
            "x:8080:3000",
            "::1:8080:3000",
            "8080:70000",
        ] {
            assert!(PublishedPort::parse(bad).is_err(), "{bad}");
        }
    }
}
