//! What `hh` and the agent say to each other on the agent's unix socket.
//!
//! One JSON document per line. The client sends a [`ClientRequest`]; the agent answers with one
//! [`Reply`] line. [`ClientRequest::Subscribe`] is the exception: after its `Reply::Ok` the agent
//! keeps writing [`Event`] lines until the client closes the socket.
//!
//! The agent knows who asks from `SO_PEERCRED` alone; nothing in a request claims an identity.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::image::build::{BuildRequest, BuiltImage, StemText};

/// Where `hh agent` listens unless told otherwise (`--socket`, `$HH_AGENT_SOCKET`).
pub const DEFAULT_SOCKET: &str = "/run/hh/agent.sock";

/// The variable that points clients at another socket (tests, several agents on one host).
pub const SOCKET_ENV: &str = "HH_AGENT_SOCKET";

/// The longest request line the agent reads; longer ones are refused.
pub const MAX_LINE: usize = 64 * 1024;

/// One request from a client. Variants without data are written `Name {}` so that
/// `deny_unknown_fields` holds for them too (serde ignores it on unit variants).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientRequest {
    /// Who the agent is and who it takes the client for.
    Hello {},
    /// Start a session; answered once the session is enforced and ready (or failed).
    StartSession(StartSession),
    /// The caller's sessions.
    ListSessions {},
    /// Stop one of the caller's sessions.
    StopSession { id: String },
    /// Requests held for an answer, in the caller's sessions.
    ListApprovals {},
    /// Answer a held request.
    Answer { id: u64, answer: Answer },
    /// The timed and per-session grants in force for the caller's sessions.
    ListGrants {},
    /// End one of them now.
    RevokeGrant { id: u64 },
    /// Rules that would have admitted the workspace's requests of the caller's sessions that
    /// were denied for want of a rule (no one answered, or a person denied them once), in the
    /// last `since_secs` seconds (all the agent remembers when absent).
    SuggestRules {
        workspace: String,
        #[serde(default)]
        since_secs: Option<u64>,
    },
    /// Stream [`Event`]s of the caller's sessions until the client closes the socket.
    Subscribe {},
    /// Run a command in one of the caller's sessions; after `Reply::Ok` the connection carries
    /// the command's terminal as [`super::exec_stream`] frames until it exits.
    Exec(ExecRequest),
    /// Where each rules file of a workspace stands against the version a person trusted.
    RulesStatus { workspace: String },
    /// Trust one rules file of a workspace as it reads now, provided it is the version whose
    /// SHA-256 the person was shown.
    TrustRules {
        workspace: String,
        file: String,
        sha256: String,
    },
    /// Append a rule to the workspace's rules file and its trusted copy (`hh rules add`, the
    /// TUI's rule editor): in force at once, like a "forever" answer.
    AddRule {
        workspace: String,
        /// `allow` or `deny`.
        action: String,
        rule: String,
    },
    /// Build a chain of stems into the caller's images. The agent answers with
    /// [`Reply::BuildOutput`] lines as the engine works, then one [`Reply::ImagesBuilt`] or
    /// [`Reply::Error`].
    BuildImage(BuildRequest),
}

impl ClientRequest {
    /// The request's name, for logs (never its contents).
    pub fn op(&self) -> &'static str {
        match self {
            ClientRequest::Hello {} => "hello",
            ClientRequest::StartSession(_) => "start_session",
            ClientRequest::ListSessions {} => "list_sessions",
            ClientRequest::StopSession { .. } => "stop_session",
            ClientRequest::ListApprovals {} => "list_approvals",
            ClientRequest::Answer { .. } => "answer",
            ClientRequest::ListGrants {} => "list_grants",
            ClientRequest::RevokeGrant { .. } => "revoke_grant",
            ClientRequest::SuggestRules { .. } => "suggest_rules",
            ClientRequest::Subscribe {} => "subscribe",
            ClientRequest::Exec(_) => "exec",
            ClientRequest::RulesStatus { .. } => "rules_status",
            ClientRequest::TrustRules { .. } => "trust_rules",
            ClientRequest::AddRule { .. } => "add_rule",
            ClientRequest::BuildImage(_) => "build_image",
        }
    }
}

/// What a session is made of; names refer to the agent's config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartSession {
    pub workspace: String,
    pub template: String,
    #[serde(default)]
    pub name: Option<String>,
    /// The command the session runs instead of an idle shell host; empty for none.
    #[serde(default)]
    pub command: Vec<String>,
    /// The client's own values for the config's `env_passthrough` names and the harness's
    /// credentials (never the agent's).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// The coding agent the session is for ([`crate::harness`]): its credentials pass
    /// through, its policy layer applies.
    #[serde(default)]
    pub harness: Option<String>,
    /// git mode: the clone of the workspace's repository the client made for this session
    /// ([`crate::git_workspace`]), mounted instead of the workspace.
    #[serde(default)]
    pub git_clone: Option<std::path::PathBuf>,
    /// git mode: the repository's `origin`, where the session may push (no password).
    #[serde(default)]
    pub git_origin: Option<String>,
    /// The client's values of the config's `[[secrets]]`, by name: the proxy's to put into
    /// requests; the session gets placeholders.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, SecretValue>,
}

/// A secret's value: never shown (`Debug` says `[redacted]`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretValue(pub String);

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A command to run in a session (`hh shell`, `hh attach`), as the session's own user, in
/// `/workspace`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecRequest {
    /// The session's id or name.
    pub session: String,
    /// The program and its arguments (the client picks a shell when the user named none).
    pub command: Vec<String>,
    /// Whether the client has a terminal: then the command gets one of this size.
    pub tty: bool,
    #[serde(default)]
    pub columns: u16,
    #[serde(default)]
    pub rows: u16,
    /// The client's `TERM`, for a TTY.
    #[serde(default)]
    pub term: Option<String>,
}

/// The agent's one-line answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case", deny_unknown_fields)]
#[allow(
    clippy::large_enum_variant,
    reason = "a reply lives for one write or read; never stored in bulk"
)]
pub enum Reply {
    Ok,
    Hello(AgentHello),
    Session(SessionInfo),
    Sessions {
        sessions: Vec<SessionInfo>,
    },
    Approvals {
        pending: Vec<PendingApproval>,
    },
    Grants {
        grants: Vec<GrantInfo>,
    },
    Suggestions {
        suggestions: Vec<SuggestedRule>,
    },
    Rules {
        files: Vec<RulesFileStatus>,
    },
    /// An [`ClientRequest::AddRule`] done; `added` is false when an equal rule was there.
    RuleAdded {
        file: String,
        added: bool,
        /// When the rule is in force but the file itself could not take it (a session broke
        /// it): why.
        #[serde(default)]
        note: Option<String>,
    },
    /// What the engine printed while building (a [`ClientRequest::BuildImage`] goes on).
    BuildOutput {
        text: String,
    },
    /// A [`ClientRequest::BuildImage`] done: what each stem was built into.
    ImagesBuilt {
        images: Vec<BuiltImage>,
    },
    /// The request was refused or failed; the text says why and what to do.
    Error {
        message: String,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentHello {
    pub version: String,
    /// The uid the agent saw on the socket.
    pub peer_uid: u32,
    /// `agent` (eBPF) or `proxy` (an explicit `hh proxy` that serves approvals only).
    pub mode: String,
}

/// A session as clients see it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionInfo {
    pub id: String,
    pub name: String,
    pub workspace: String,
    pub template: String,
    pub owner_uid: u32,
    pub container_id: String,
    /// Seconds since the Unix epoch.
    pub started_at: u64,
    pub state: SessionState,
    /// Read from the session's cgroup when listed; `None` when it could not be read.
    #[serde(default)]
    pub memory_bytes: Option<u64>,
    #[serde(default)]
    pub cpu_usec: Option<u64>,
    #[serde(default)]
    pub allowed: u64,
    #[serde(default)]
    pub denied: u64,
    /// Paths of the workspace the session sees read-only (its `protected_paths` that exist).
    #[serde(default)]
    pub protected_paths: Vec<String>,
    /// The coding agent it is for, if any.
    #[serde(default)]
    pub harness: Option<String>,
    /// The image it runs, by the name it was started from (`hh-test:u1000` is the owner's own
    /// build, `hh-test` root's).
    #[serde(default)]
    pub image: String,
    /// The workspace's ports published on the host (`127.0.0.1:8080 -> session port 3000`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<String>,
    /// git mode: the session's clone and the repository its work comes back to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<GitClone>,
    /// What the agent wants the person who started it to know (the config it used was not
    /// the file as it reads now, and why); only in the reply to a start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<String>,
}

/// Where a git-mode session works, and where its work goes back to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitClone {
    /// The session's own clone on the host (what it sees as its workspace).
    pub clone: std::path::PathBuf,
    /// The workspace's repository, whose `.git` the session never sees.
    pub repository: std::path::PathBuf,
    /// The repository's `origin` (without a password), the one place the session may push.
    #[serde(default)]
    pub origin: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    Starting,
    Running,
    Stopping,
}

/// One rules file against the version of it a person trusted (what is in force).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesFileStatus {
    pub file: String,
    /// `global` or `workspace`.
    pub layer: String,
    /// Whether the file reads as the version in force (a missing file reads as empty).
    pub in_force: bool,
    /// Whether a person ever trusted a version of it (if not, none of it is in force).
    pub ever_trusted: bool,
    /// SHA-256 of the file as it reads now: what `TrustRules` must name.
    pub sha256: String,
    /// From the version in force to the file as it reads now; empty when in force.
    pub diff: String,
    /// Why the file cannot be trusted now (it does not parse, or it cannot be read).
    #[serde(default)]
    pub error: Option<String>,
}

/// A request the proxy holds until someone answers (or the timeout denies it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PendingApproval {
    pub id: u64,
    pub session: String,
    /// `None` for a connection decided before any HTTP (raw TCP).
    pub method: Option<String>,
    pub host: String,
    pub path: Option<String>,
    pub port: u16,
    /// How many identical requests wait on this one prompt (1 = just this one).
    pub waiting: u32,
    /// When the timeout denies it, milliseconds since the Unix epoch.
    pub deadline_ms: u64,
    /// The rules file an answer "forever" is appended to.
    pub rules_file: String,
    /// The rules layer of that file (`workspace`), which decides the request once it is answered
    /// forever; no rule of any layer decides it now.
    pub layer: String,
    /// The rule "forever" would append unless the answer names another (the narrowest one).
    pub suggested_rule: String,
    /// The request's query string as sent (after `?`, without it): it leaves with the request
    /// although no rule decides on it. `None` when the request had none.
    #[serde(default)]
    pub query: Option<String>,
    /// The size of the body the request sends.
    #[serde(default)]
    pub body: BodySize,
    /// What the person must know to answer well, e.g. that `127.0.0.1` is the proxy host's
    /// loopback, not the session's.
    #[serde(default)]
    pub note: Option<String>,
    /// The process in the session that made the request, as the proxy learnt it:
    /// `curl [37] (curl -s https://example.com/)` ([`crate::proxy::client_process`]). Names the
    /// process for a person; nothing is decided on it.
    #[serde(default)]
    pub process: Option<String>,
}

/// The size of a request's body, as its framing gave it before the body was read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BodySize {
    /// No body (or an empty one).
    #[default]
    None,
    /// `Content-Length` bytes (HTTP/1.1, or HTTP/2 with `content-length`).
    Bytes(u64),
    /// Its length was not given ahead (chunked, or an HTTP/2 body without `content-length`).
    Streamed,
}

/// How a person answers a held request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Answer {
    AllowOnce,
    DenyOnce,
    /// Append an allow rule: `rule` when given (it must cover the held request), else the
    /// suggested one.
    AllowForever {
        #[serde(default)]
        rule: Option<String>,
    },
    DenyForever {
        #[serde(default)]
        rule: Option<String>,
    },
    /// Allow it, and every request of the session `rule` covers (the suggested rule when not
    /// given), for `for` without asking again; nothing is written to a rules file.
    AllowFor {
        #[serde(rename = "for")]
        duration: GrantFor,
        #[serde(default)]
        rule: Option<String>,
    },
}

/// How long an [`Answer::AllowFor`] grant lasts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GrantFor {
    #[serde(rename = "10m")]
    TenMinutes,
    #[serde(rename = "1h")]
    Hour,
    /// Until the session ends.
    #[serde(rename = "session")]
    Session,
}

impl GrantFor {
    /// The length of a timed grant; `None` for one that lasts the session.
    pub fn duration(self) -> Option<std::time::Duration> {
        match self {
            GrantFor::TenMinutes => Some(std::time::Duration::from_secs(600)),
            GrantFor::Hour => Some(std::time::Duration::from_secs(3600)),
            GrantFor::Session => None,
        }
    }

    /// As a person writes it (`10m`, `1h`, `session`).
    pub fn as_str(self) -> &'static str {
        match self {
            GrantFor::TenMinutes => "10m",
            GrantFor::Hour => "1h",
            GrantFor::Session => "session",
        }
    }

    pub fn parse(text: &str) -> Option<GrantFor> {
        match text {
            "10m" => Some(GrantFor::TenMinutes),
            "1h" => Some(GrantFor::Hour),
            "session" => Some(GrantFor::Session),
            _ => None,
        }
    }
}

/// A rule [`ClientRequest::SuggestRules`] proposes, and what it would have admitted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuggestedRule {
    pub rule: String,
    /// How many of the denied requests it covers.
    pub covers: u64,
    /// A few of them (`METHOD host:port/path`).
    pub examples: Vec<String>,
}

/// A grant in force: requests of `session` its `rule` covers are allowed without asking.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantInfo {
    pub id: u64,
    pub session: String,
    pub rule: String,
    /// `10m`, `1h` or `session`.
    #[serde(rename = "for")]
    pub duration: String,
    /// When it ends (ms since the Unix epoch); `None`: with the session.
    pub expires_ms: Option<u64>,
}

/// What a subscriber hears.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case", deny_unknown_fields)]
pub enum Event {
    ApprovalPending(PendingApproval),
    /// Answered, timed out or withdrawn: no longer waiting.
    ApprovalResolved {
        id: u64,
        outcome: String,
        /// The session that held it (who may hear of it).
        session: String,
    },
    /// One audit decision.
    Decision(DecisionEvent),
    SessionStarted(SessionInfo),
    SessionEnded {
        id: String,
        reason: String,
        /// Whose session it was (it is gone from every list by now).
        owner_uid: u32,
    },
}

/// One decision as the activity view shows it (the audit line, minus byte counts).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionEvent {
    /// Milliseconds since the Unix epoch.
    pub time_ms: u64,
    pub session: String,
    pub method: Option<String>,
    pub host: String,
    pub path: Option<String>,
    pub port: u16,
    /// `allow` or `deny`.
    pub decision: String,
    pub rule: Option<String>,
    /// The process in the session that made the request, when the proxy learnt it (see
    /// [`PendingApproval::process`]).
    #[serde(default)]
    pub process: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_as_one_line() {
        let request = ClientRequest::Answer {
            id: 7,
            answer: Answer::AllowForever {
                rule: Some("domain=*.example.test".into()),
            },
        };
        let line = serde_json::to_string(&request).unwrap();
        assert!(!line.contains('\n'));
        assert_eq!(
            line,
            r#"{"op":"answer","id":7,"answer":{"kind":"allow_forever","rule":"domain=*.example.test"}}"#
        );
        assert_eq!(
            serde_json::from_str::<ClientRequest>(&line).unwrap(),
            request
        );
    }

    #[test]
    fn unknown_fields_are_refused() {
        let error = serde_json::from_str::<ClientRequest>(r#"{"op":"list_sessions","uid":0}"#)
            .unwrap_err()
            .to_string();
        assert!(error.contains("uid"), "{error}");
    }
}
