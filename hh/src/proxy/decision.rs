//! The proxy's one decision: a canonical [`Request`] in, a final [`Ruling`] out, and its audit line.
//!
//! Both front-door paths (absolute-form HTTP, CONNECT: raw TCP or each intercepted request) call
//! [`DecisionEngine::decide`]; the CONNECT path may first call [`DecisionEngine::refuse_early`],
//! which answers only when a deny rule covers the whole `host:port` (then every request through
//! the tunnel would be denied anyway, so the client gets its 403 before any tunnel exists).
//! Both consult [`Policy::decide`] through the same private function.
//!
//! Unknown means ask; no answer means deny. An ask goes to the [`Approvals`] broker and waits
//! there for a person (`hh approvals`, the TUI) until its timeout. An answer "forever" appends
//! its rule to the rules file ([`store::append_rule`]) before the request goes on, and the
//! ruling names the rule as the file now reads; a rule that cannot be saved denies.
//!
//! Every final ruling is one [`Event::Decision`] for subscribers and, when an audit log is open,
//! one audit line: a [`Ticket`] goes with the request and writes the line when dropped, with the
//! bytes each way and the duration, however the exchange ends.
//!
//! The text of a denial is written here too: what was blocked, which rule (or "ask timed out"),
//! and the command a person runs to allow it, so an agent reading the 403 can pass it on.

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Instant, SystemTime, UNIX_EPOCH},
};

use tokio::sync::broadcast;

use super::{
    approvals::{Approvals, Outcome, Outgoing, Question, suggested_rule},
    push_guard::PushGuard,
};
use crate::{
    api::protocol::{DecisionEvent, Event},
    audit::{self, AuditLog, AuditRecord},
    rules::{
        Action, Host, Layer, Method, NormPath, Policy, RawRefusal, Request, Rule, TrustError,
        TrustStore, Verdict, file::RulesFile, policy::RuleOrigin, store,
    },
};

/// Where the current policy comes from: a file watcher, or a fixed policy.
pub type PolicyFn = Arc<dyn Fn() -> Arc<Policy> + Send + Sync>;

/// Called once the engine has appended a rule, so the policy source looks at its files now
/// instead of at its next interval ([`crate::rules::WatchedPolicy::look_now`]).
pub type RulesWrittenFn = Arc<dyn Fn() + Send + Sync>;

/// How an audit line (and a decision event) names a denial no rule decided: no one answered,
/// too many were waiting, a person denied it once.
pub const ASK_TIMED_OUT: &str = "ask: timed out";
pub const ASK_QUEUE_FULL: &str = "ask: too many pending approvals";
pub const ASK_DENIED_ONCE: &str = "ask: denied once by a person";

/// The final word on a request: allow or deny, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ruling {
    pub allowed: bool,
    /// The rule that decided (also one a person just added "forever"); `None` when a person's
    /// answer for this request alone, or its absence, decided.
    pub rule: Option<RuleOrigin>,
    /// How the ask went, when no rule matched at first.
    pub asked: Option<Asked>,
    /// Refused before any rule or person could decide (raw TCP on a web port).
    pub refusal: Option<RawRefusal>,
    /// Decided outside the rules files, and why: refused by git mode's push guard
    /// ([`PushGuard`]) before any rule, or allowed by a person's grant where a prompt would be.
    pub outside_rules: Option<String>,
}

/// How an ask ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Asked {
    /// A person allowed or denied this request only.
    Once,
    /// A person added a rule, which [`Ruling::rule`] names.
    Forever,
    /// No answer within the ask timeout.
    TimedOut,
    /// Too many requests were already waiting for an answer.
    QueueFull,
    /// A person answered "forever", but the rule could not be saved; the text says why.
    NotSaved(String),
    /// A person allowed it and granted its rule for a while; the text says which.
    Granted(String),
}

impl Ruling {
    fn by_rule(allowed: bool, rule: Option<&RuleOrigin>) -> Ruling {
        Ruling {
            allowed,
            rule: rule.cloned(),
            asked: None,
            refusal: None,
            outside_rules: None,
        }
    }

    fn asked(allowed: bool, asked: Asked) -> Ruling {
        Ruling {
            allowed,
            rule: None,
            asked: Some(asked),
            refusal: None,
            outside_rules: None,
        }
    }

    /// What the audit line and the activity view show as the deciding rule.
    fn rule_text(&self) -> Option<String> {
        if let Some(rule) = &self.rule {
            return Some(rule.to_string());
        }
        if let Some(refusal) = &self.refusal {
            return Some(format!("refused: {refusal}"));
        }
        if let Some(why) = &self.outside_rules {
            return Some(why.clone());
        }
        let verb = if self.allowed { "allowed" } else { "denied" };
        self.asked.as_ref().map(|asked| match asked {
            // `Forever` always comes with the rule it added, printed above.
            Asked::Once | Asked::Forever if !self.allowed => ASK_DENIED_ONCE.into(),
            Asked::Once | Asked::Forever => format!("ask: {verb} once by a person"),
            Asked::TimedOut => ASK_TIMED_OUT.into(),
            Asked::QueueFull => ASK_QUEUE_FULL.into(),
            Asked::NotSaved(why) => format!("ask: forever rule not saved: {why}"),
            Asked::Granted(grant) => format!("ask: allowed by a person {grant}"),
        })
    }

    /// Whether this ruling lets the proxy dial `host` although the SSRF guard would refuse it:
    /// only when `host` is an IP literal that the allowing rule names exactly. `domain=*` names
    /// no address, and a *name* resolving to a private address is never granted this way.
    pub fn grants_dial(&self, host: &Host) -> bool {
        self.allowed
            && host.ip().is_some_and(|ip| {
                self.rule
                    .as_ref()
                    .is_some_and(|rule| rule.named_ips.contains(&ip))
            })
    }
}

/// Why a rule answered "forever" did not take effect.
#[derive(Debug, thiserror::Error)]
enum PersistError {
    #[error("cannot append it: {0}")]
    Append(#[source] store::StoreError),
    #[error("appended, but the file no longer loads: {0}")]
    Reread(#[source] store::StoreError),
    #[error("cannot append it: {0}")]
    Trusted(#[source] TrustError),
    #[error("the rules writer failed: {0}")]
    Writer(#[source] tokio::task::JoinError),
    #[error("appended, but {file} no longer decides the request (edited meanwhile?)")]
    Lost { file: String },
}

/// The layer of [`EngineSetup::rules_file`], where answers "forever" go: a person's answer is
/// their workspace's policy (the agent's workspace rules, `hh proxy`'s first `--rules` file).
const FOREVER_LAYER: Layer = Layer::Workspace;

/// What a [`DecisionEngine`] is made of.
pub struct EngineSetup {
    /// The hh session every request of this engine belongs to (`standalone` for `hh proxy`).
    pub session: String,
    pub policy: PolicyFn,
    pub approvals: Arc<Approvals>,
    /// The rules file an answer "forever" is appended to.
    pub rules_file: PathBuf,
    /// How that file is written.
    pub rules_writer: RulesWriter,
    /// How a person names that file to `hh rules add` (`--rules FILE`, `--workspace NAME`).
    pub rules_target: String,
    pub audit: Option<AuditLog>,
    /// `None` when the policy source needs no nudge (a fixed policy).
    pub on_rules_written: Option<RulesWrittenFn>,
    /// git mode: pushes only to the workspace's origin, decided before the rules.
    pub push_guard: Option<PushGuard>,
    /// The agent's tool calls running in the session, named in each audit line.
    pub tool_calls: Option<Arc<super::tool_calls::ToolCalls>>,
}

/// How an answer "forever" reaches the rules file.
#[derive(Clone)]
pub enum RulesWriter {
    /// Straight to the file, under its sidecar lock (`hh proxy`: a person's own process,
    /// whose policy is the file as it reads).
    Live,
    /// To the file and its trusted copy in one step (the agent's sessions, whose policy is
    /// the trusted copies): `owner` is the user the file's directory must belong to.
    Trusted {
        store: Arc<TrustStore>,
        owner: Option<u32>,
    },
}

impl RulesWriter {
    /// Appends `rule`; the rules of `file` as they now decide.
    fn append(&self, file: &Path, action: Action, rule: &Rule) -> Result<RulesFile, PersistError> {
        match self {
            RulesWriter::Live => {
                store::append_rule(file, action, rule).map_err(PersistError::Append)?;
                store::load_rules(file).map_err(PersistError::Reread)
            }
            RulesWriter::Trusted { store, owner } => store
                .append(file, *owner, action, rule)
                .map(|appended| appended.rules)
                .map_err(PersistError::Trusted),
        }
    }
}

/// Decides requests against the current policy, asks (and times out), and audits.
pub struct DecisionEngine {
    session: String,
    policy: PolicyFn,
    approvals: Arc<Approvals>,
    rules_file: PathBuf,
    rules_writer: RulesWriter,
    rules_target: String,
    audit: Option<Arc<AuditLog>>,
    on_rules_written: Option<RulesWrittenFn>,
    push_guard: Option<PushGuard>,
    tool_calls: Option<Arc<super::tool_calls::ToolCalls>>,
}

impl DecisionEngine {
    pub fn new(setup: EngineSetup) -> DecisionEngine {
        DecisionEngine {
            session: setup.session,
            policy: setup.policy,
            approvals: setup.approvals,
            rules_file: setup.rules_file,
            rules_writer: setup.rules_writer,
            rules_target: setup.rules_target,
            audit: setup.audit.map(Arc::new),
            on_rules_written: setup.on_rules_written,
            push_guard: setup.push_guard,
            tool_calls: setup.tool_calls,
        }
    }

    /// The ruling for `request`: the matching rule's, or, when none matches, a person's answer
    /// through the approvals broker (none within the timeout: deny). The ticket writes the
    /// audit line.
    pub async fn decide(&self, request: &Request) -> (Ruling, Ticket) {
        self.decide_kind(request, Outgoing::default(), Kind::Parsed)
            .await
    }

    /// [`DecisionEngine::decide`] for a request that also sends `outgoing` (its query string,
    /// its body): a prompt shows them, and requests that differ in them are asked apart. Every
    /// parsed HTTP request is decided through here.
    pub async fn decide_sending(&self, request: &Request, outgoing: Outgoing) -> (Ruling, Ticket) {
        self.decide_kind(request, outgoing, Kind::Parsed).await
    }

    /// [`DecisionEngine::decide`] for bytes the proxy will splice without parsing them: a
    /// deny rule for the host and port denies even when its method or path terms could only
    /// be checked on parsed HTTP ([`Policy::decide_opaque`]).
    pub async fn decide_opaque(&self, request: &Request) -> (Ruling, Ticket) {
        self.decide_kind(request, Outgoing::default(), Kind::Opaque)
            .await
    }

    /// The decision for raw TCP, bytes that are neither TLS nor HTTP/1 ([`Policy::decide_raw`]):
    /// on a web port only a `proto=tcp` rule admits them, and no one is asked.
    pub async fn decide_raw(&self, request: &Request) -> (Ruling, Ticket) {
        self.decide_kind(request, Outgoing::default(), Kind::Raw)
            .await
    }

    async fn decide_kind(
        &self,
        request: &Request,
        outgoing: Outgoing,
        kind: Kind,
    ) -> (Ruling, Ticket) {
        let started = Instant::now();
        let guarded = self
            .push_guard
            .as_ref()
            .filter(|_| kind == Kind::Parsed)
            .and_then(|guard| guard.refuses(request));
        if let Some(why) = guarded {
            let ruling = Ruling {
                allowed: false,
                rule: None,
                asked: None,
                refusal: None,
                outside_rules: Some(why),
            };
            let ticket = self.ticket(request, &ruling, started);
            return (ruling, ticket);
        }
        let ruling = match decide_with(&(self.policy)(), request, kind) {
            Decided::Ruling(ruling) => ruling,
            Decided::Ask => {
                match self
                    .approvals
                    .granted(&self.session, request, kind != Kind::Parsed)
                {
                    Some((id, rule)) => Ruling {
                        allowed: true,
                        rule: None,
                        asked: None,
                        refusal: None,
                        outside_rules: Some(format!("grant {id}: allow {rule}")),
                    },
                    None => self.ask(request, outgoing, kind).await,
                }
            }
        };
        let ticket = self.ticket(request, &ruling, started);
        (ruling, ticket)
    }

    async fn ask(&self, request: &Request, outgoing: Outgoing, kind: Kind) -> Ruling {
        tracing::info!(host = %request.host, port = request.port, "no rule matched; asking");
        let question = Question {
            session: self.session.clone(),
            request: request.clone(),
            outgoing,
            opaque: kind != Kind::Parsed,
            rules_file: self.rules_file.clone(),
            rules_layer: FOREVER_LAYER,
            process: super::client_process::current(),
        };
        match self.approvals.ask(question).await {
            Outcome::Once(action) => Ruling::asked(action == Action::Allow, Asked::Once),
            Outcome::Granted { id, rule, duration } => Ruling::asked(
                true,
                Asked::Granted(format!("for {}: {rule} (grant {id})", duration.as_str())),
            ),
            Outcome::TimedOut => Ruling::asked(false, Asked::TimedOut),
            Outcome::QueueFull => Ruling::asked(false, Asked::QueueFull),
            Outcome::Forever(action, rule) => {
                match self.persist(action, rule, request, kind).await {
                    Ok(ruling) => ruling,
                    Err(error) => {
                        tracing::error!(
                            file = %self.rules_file.display(),
                            %error,
                            "cannot save the rule a person answered; denied"
                        );
                        Ruling::asked(false, Asked::NotSaved(error.to_string()))
                    }
                }
            }
        }
    }

    /// Appends `rule` to the rules file, then decides `request` by that file as it now reads,
    /// so the ruling names the rule's real place in it. The file is blocking I/O (a lock that
    /// may wait, fsyncs): it runs off the async workers. Every waiter sharing one prompt comes
    /// here; the append of a rule already in the file changes nothing, so that is harmless.
    async fn persist(
        &self,
        action: Action,
        rule: Rule,
        request: &Request,
        kind: Kind,
    ) -> Result<Ruling, PersistError> {
        let file = self.rules_file.clone();
        let writer = self.rules_writer.clone();
        let request = request.clone();
        let decided = tokio::task::spawn_blocking(move || {
            let layer = writer
                .append(&file, action, &rule)?
                .into_layer(Layer::Workspace, &file.display().to_string());
            Ok(decide_with(&Policy::new(vec![layer]), &request, kind))
        })
        .await
        .map_err(PersistError::Writer)??;
        if let Some(written) = &self.on_rules_written {
            written();
        }
        match decided {
            Decided::Ruling(mut ruling) => {
                ruling.asked = Some(Asked::Forever);
                Ok(ruling)
            }
            // The rule was checked to cover the request; a file edited at that very moment
            // could still lose it.
            Decided::Ask => Err(PersistError::Lost {
                file: self.rules_file.display().to_string(),
            }),
        }
    }

    /// A denial decided by a rule for the connection `request` (no HTTP part), when there is
    /// one; `None` means: open the tunnel and decide each request inside it. Audited when it
    /// denies.
    pub fn refuse_early(&self, request: &Request) -> Option<Ruling> {
        // A `proto=tcp` deny is about raw bytes, which a tunnel may or may not carry: decided
        // once its first bytes are read.
        let ruling = self.consult(request).filter(|ruling| {
            !ruling.allowed && !ruling.rule.as_ref().is_some_and(|rule| rule.raw_tcp)
        })?;
        drop(self.ticket(request, &ruling, Instant::now()));
        Some(ruling)
    }

    /// A CONNECT to the literal `request.host` that the SSRF guard refuses (`refused`) and no
    /// allow rule names: every request in that tunnel would be refused at dial time, so it is
    /// refused now, audited like a refused dial; the text of its 403. `None` when a rule names
    /// the address (its requests are decided inside the tunnel).
    pub fn refuse_literal(&self, request: &Request, refused: &str) -> Option<String> {
        let ip = request.host.ip()?;
        if (self.policy)().allow_names(ip) {
            return None;
        }
        let ruling = Ruling {
            allowed: false,
            rule: None,
            asked: None,
            refusal: None,
            outside_rules: None,
        };
        let mut ticket = self.ticket(request, &ruling, Instant::now());
        ticket.refused(refused);
        Some(format!(
            "hh refuses to connect to {}: {refused}\n\
             To allow it, a person adds a rule naming the address:\n  hh rules add {} allow '{}'\n",
            describe(request),
            self.rules_target,
            Rule {
                ports: Some(vec![request.port]),
                ..suggested_rule(request)
            }
        ))
    }

    /// Whether a rule already allows plain requests to `host:port` (a `GET /` stands for
    /// them): then connecting to that upstream before the tunnel's first request is decided
    /// tells it nothing a moment's wait would not. Hosts that would be asked about, that only
    /// some paths or methods are allowed on, or that a deny covers, are not admitted. Not
    /// audited: it decides no request.
    pub fn admits_host(&self, host: &Host, port: u16) -> bool {
        let Ok(path) = NormPath::parse("/") else {
            return false;
        };
        let Ok(get) = Method::parse("GET") else {
            return false;
        };
        let plain = Request::http(get, host.clone(), port, path);
        self.consult(&plain).is_some_and(|ruling| ruling.allowed)
    }

    /// The current policy's ruling for `request` read as parsed HTTP: `None` means no rule
    /// matched (ask).
    fn consult(&self, request: &Request) -> Option<Ruling> {
        match decide_with(&(self.policy)(), request, Kind::Parsed) {
            Decided::Ruling(ruling) => Some(ruling),
            Decided::Ask => None,
        }
    }

    fn ticket(&self, request: &Request, ruling: &Ruling, started: Instant) -> Ticket {
        let process = super::client_process::current();
        let record = AuditRecord {
            time: SystemTime::now(),
            session: self.session.clone(),
            client_pid: process.as_ref().and_then(|process| process.pid),
            client_host_pid: process.as_ref().map(|process| process.host_pid),
            client_comm: process.as_ref().map(|process| process.comm.clone()),
            client_cmdline: process.as_ref().and_then(|process| process.cmdline.clone()),
            tool_use_ids: self
                .tool_calls
                .as_ref()
                .map(|calls| calls.running())
                .unwrap_or_default(),
            method: request
                .http
                .as_ref()
                .map(|http| http.method.as_str().into()),
            host: request.host.as_str().into(),
            path: request.http.as_ref().map(|http| http.path.as_str().into()),
            port: request.port,
            decision: if ruling.allowed {
                audit::Decision::Allow
            } else {
                audit::Decision::Deny
            },
            rule: ruling.rule_text(),
            bytes_up: 0,
            bytes_down: 0,
            duration_ms: 0,
        };
        let events = self.approvals.events().clone();
        let process = process.as_ref().map(|process| process.describe());
        send_decision(&events, &record, process.clone());
        Ticket {
            log: self.audit.clone(),
            events,
            record,
            process,
            started,
            up: Arc::new(AtomicU64::new(0)),
            down: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The plain-text body of a 403 for `request` denied by `ruling`.
    pub fn denial_text(&self, request: &Request, ruling: &Ruling) -> String {
        let mut text = format!("hh blocked {}\n", describe(request));
        if let Some(guard) = ruling.outside_rules.as_ref().filter(|_| !ruling.allowed) {
            text.push_str(&format!(
                "{guard}\nNo rule allows it: the branches of a git-mode session come back to the \
                 workspace's repository when it stops, and are pushed from there.\n"
            ));
            return text;
        }
        match &ruling.rule {
            Some(rule) => {
                text.push_str(&format!("rule: {rule}\n"));
                if rule.action == Action::Deny {
                    text.push_str(
                        "A deny rule wins over any allow rule: a person must remove or narrow it \
                         in that file.\n",
                    );
                }
            }
            None if ruling.refusal.is_some() => {
                if let Some(refusal) = &ruling.refusal {
                    text.push_str(&format!("refused: {refusal}\n"));
                }
            }
            None => text.push_str(&match &ruling.asked {
                Some(Asked::TimedOut) | None => format!(
                    "rule: no rule matched, and no one answered within {} s (ask timed out)\n",
                    self.approvals.timeout().as_secs_f32()
                ),
                Some(Asked::Once | Asked::Forever | Asked::Granted(_)) => {
                    "rule: no rule matched, and a person denied it (once)\n".into()
                }
                Some(Asked::QueueFull) => "rule: no rule matched, and too many requests were \
                                          already waiting for an answer (denied without asking)\n"
                    .into(),
                Some(Asked::NotSaved(why)) => format!(
                    "rule: no rule matched; a person answered \"forever\" but the rule could \
                     not be saved: {why}\n"
                ),
            }),
        }
        if ruling.refusal.is_some() {
            text.push_str(&format!(
                "To allow raw TCP there, a person adds a rule:\n  hh rules add {} allow '{}'\n",
                self.rules_target,
                Rule {
                    ports: Some(vec![request.port]),
                    raw_tcp: true,
                    ..suggested_rule(request)
                }
            ));
        } else if ruling
            .rule
            .as_ref()
            .is_none_or(|rule| rule.action != Action::Deny)
        {
            text.push_str(&format!(
                "To allow it, a person answers the prompt while the request waits \
                 (`hh approvals`, then `hh approvals allow ID`), or adds a rule:\n  \
                 hh rules add {} allow '{}'\n",
                self.rules_target,
                suggested_rule(request)
            ));
        }
        text
    }
}

/// What the bytes being decided are, which picks the policy's decision function.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A parsed HTTP request ([`Policy::decide`]).
    Parsed,
    /// TLS spliced unterminated for `bypass_proxy` ([`Policy::decide_opaque`]).
    Opaque,
    /// Neither TLS nor HTTP ([`Policy::decide_raw`]).
    Raw,
}

/// A policy's answer before anyone is asked.
enum Decided {
    Ruling(Ruling),
    /// No rule matched.
    Ask,
}

/// `policy`'s ruling for `request`.
fn decide_with(policy: &Policy, request: &Request, kind: Kind) -> Decided {
    let decision = match kind {
        Kind::Parsed => policy.decide(request),
        Kind::Opaque => policy.decide_opaque(request),
        Kind::Raw => match policy.decide_raw(request) {
            Ok(decision) => decision,
            Err(refusal) => {
                return Decided::Ruling(Ruling {
                    allowed: false,
                    rule: None,
                    asked: None,
                    refusal: Some(refusal),
                    outside_rules: None,
                });
            }
        },
    };
    let allowed = match decision.verdict {
        Verdict::Allow => true,
        Verdict::Deny => false,
        Verdict::Ask => return Decided::Ask,
    };
    Decided::Ruling(Ruling::by_rule(allowed, decision.rule))
}

/// Tells subscribers about one decision (the audit record minus byte counts). Nobody listening
/// is fine.
fn send_decision(events: &broadcast::Sender<Event>, record: &AuditRecord, process: Option<String>) {
    let time_ms = record.time.duration_since(UNIX_EPOCH).map_or(0, |since| {
        u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
    });
    let decision = match record.decision {
        audit::Decision::Allow => "allow",
        audit::Decision::Deny => "deny",
        audit::Decision::Ask => "ask",
    };
    let _ = events.send(Event::Decision(DecisionEvent {
        process,
        time_ms,
        session: record.session.clone(),
        method: record.method.clone(),
        host: record.host.clone(),
        path: record.path.clone(),
        port: record.port,
        decision: decision.into(),
        rule: record.rule.clone(),
    }));
}

/// One decision's audit line, written when dropped: exactly once, however the exchange ends.
pub struct Ticket {
    log: Option<Arc<AuditLog>>,
    events: broadcast::Sender<Event>,
    record: AuditRecord,
    /// The client process as events name it.
    process: Option<String>,
    started: Instant,
    /// Bytes from the client to the upstream so far.
    pub up: Arc<AtomicU64>,
    /// Bytes from the upstream to the client so far.
    pub down: Arc<AtomicU64>,
}

impl Ticket {
    /// The allowed request was never sent: the SSRF guard refused the address (or a deny rule
    /// naming the address the host resolved to did). The line says deny, and the guard's reason
    /// stands where a rule would (the record has no other field).
    /// Subscribers hear the corrected decision.
    pub fn refused(&mut self, reason: &str) {
        self.record.decision = audit::Decision::Deny;
        self.record.rule = Some(format!("ssrf guard: {reason}"));
        send_decision(&self.events, &self.record, self.process.clone());
    }

    /// The allowed request was refused before it was sent, for `why` (a secret's placeholder
    /// where the secret may not go): the line says deny, with why.
    pub fn refused_by(&mut self, why: String) {
        self.record.decision = audit::Decision::Deny;
        self.record.rule = Some(why);
        send_decision(&self.events, &self.record, self.process.clone());
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let Some(log) = &self.log else { return };
        self.record.bytes_up = self.up.load(Ordering::Relaxed);
        self.record.bytes_down = self.down.load(Ordering::Relaxed);
        self.record.duration_ms =
            u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        if let Err(error) = log.record(&self.record) {
            tracing::error!(error = %error, "cannot write the audit log");
        }
    }
}

/// `GET example.com:443 /path`, or `TCP example.com:22` for a raw connection.
pub fn describe(request: &Request) -> String {
    match &request.http {
        Some(http) => format!(
            "{} {}:{} {}",
            http.method.as_str(),
            request.host,
            request.port,
            http.path.as_str()
        ),
        None => format!("TCP {}:{}", request.host, request.port),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{
        api::protocol::Answer,
        rules::{LayerRules, Rule},
    };

    fn engine(allow: &[&str], deny: &[&str]) -> DecisionEngine {
        engine_with(
            allow,
            deny,
            PathBuf::from("rules.toml"),
            Duration::from_millis(10),
        )
    }

    fn engine_with(
        allow: &[&str],
        deny: &[&str],
        rules_file: PathBuf,
        timeout: Duration,
    ) -> DecisionEngine {
        let mut layer = LayerRules::new(Layer::Workspace, "rules.toml");
        for text in allow {
            layer.push(Action::Allow, Rule::parse(text).unwrap(), *text);
        }
        for text in deny {
            layer.push(Action::Deny, Rule::parse(text).unwrap(), *text);
        }
        let policy = Arc::new(Policy::new(vec![layer]));
        let (events, _) = broadcast::channel(64);
        DecisionEngine::new(EngineSetup {
            session: "s1".into(),
            policy: Arc::new(move || policy.clone()),
            approvals: Arc::new(Approvals::new(8, timeout, events)),
            rules_target: format!("--rules {}", rules_file.display()),
            rules_file,
            rules_writer: RulesWriter::Live,
            audit: None,
            on_rules_written: None,
            push_guard: None,
            tool_calls: None,
        })
    }

    /// Answers the first prompt once it appears.
    async fn answer_when_asked(engine: &DecisionEngine, answer: Answer) {
        let id = loop {
            if let Some(pending) = engine.approvals.pending().first() {
                break pending.id;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        engine.approvals.answer(id, answer).unwrap();
    }

    fn get(url: &str) -> Request {
        Request::from_url("GET", url).unwrap()
    }

    #[tokio::test]
    async fn an_allow_rule_allows_and_names_itself() {
        let engine = engine(&["domain=a.test path=/ok/*"], &[]);
        let (ruling, _) = engine.decide(&get("https://a.test/ok/1")).await;
        assert!(ruling.allowed);
        assert_eq!(
            ruling.rule.unwrap().text.as_ref(),
            "domain=a.test path=/ok/*"
        );
    }

    #[tokio::test]
    async fn only_an_ip_literal_the_allowing_rule_names_is_granted_past_the_ssrf_guard() {
        let engine = engine(&["domain=192.0.2.5,b.test", "domain=* port=8080"], &[]);
        let cases = [
            ("http://192.0.2.5/", true),
            // Allowed, but by `domain=*`, which names no address.
            ("http://192.0.2.6:8080/", false),
            // A name never grants the address it resolves to.
            ("http://b.test/", false),
        ];
        for (url, granted) in cases {
            let request = get(url);
            let (ruling, _) = engine.decide(&request).await;
            assert!(ruling.allowed, "{url}");
            assert_eq!(ruling.grants_dial(&request.host), granted, "{url}");
        }
    }

    #[tokio::test]
    async fn a_grant_answers_where_a_prompt_would_and_never_over_a_deny_rule() {
        let engine = engine(&[], &["domain=a.test path=/admin/*"]);
        let first = get("https://a.test/pkg/1");
        let answer = Answer::AllowFor {
            duration: crate::api::protocol::GrantFor::Session,
            rule: Some("domain=a.test".into()),
        };
        let (ruling, _) = tokio::join!(engine.decide(&first), answer_when_asked(&engine, answer)).0;
        assert!(ruling.allowed);
        assert!(
            matches!(&ruling.asked, Some(Asked::Granted(text)) if text.contains("domain=a.test"))
        );
        // No prompt now: the grant answers, and the audit line names it.
        let (ruling, _) = engine.decide(&get("https://a.test/pkg/2")).await;
        assert!(ruling.allowed);
        assert!(engine.approvals.pending().is_empty());
        assert!(
            ruling
                .rule_text()
                .unwrap()
                .starts_with("grant 1: allow domain=a.test")
        );
        // The deny rule still decides first.
        let (ruling, _) = engine.decide(&get("https://a.test/admin/x")).await;
        assert!(!ruling.allowed);
        assert!(ruling.rule.is_some_and(|rule| rule.action == Action::Deny));
    }

    #[tokio::test]
    async fn an_unknown_request_is_denied_after_the_ask_times_out() {
        let engine = engine(&[], &[]);
        let request = get("https://b.test/x");
        let (ruling, _) = engine.decide(&request).await;
        assert_eq!(ruling, Ruling::asked(false, Asked::TimedOut));
        let text = engine.denial_text(&request, &ruling);
        assert!(text.contains("ask timed out"), "{text}");
        assert!(text.contains("hh approvals allow ID"), "{text}");
        assert!(
            text.contains("hh rules add --rules rules.toml allow 'domain=b.test'"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn allow_forever_appends_the_rule_before_the_request_goes_on_and_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("rules.toml");
        let before = "# kept\nversion = 1\n[network]\nallowlist = [\"domain=x.test\"] # x\n";
        std::fs::write(&file, before).unwrap();
        let engine = engine_with(&[], &[], file.clone(), Duration::from_secs(10));
        let mut events = engine.approvals.events().subscribe();
        let request = get("https://b.test:8443/x");
        let (ruling, _) = tokio::join!(
            engine.decide(&request),
            answer_when_asked(&engine, Answer::AllowForever { rule: None })
        )
        .0;
        assert!(ruling.allowed);
        assert_eq!(ruling.asked, Some(Asked::Forever));
        let rule = ruling.rule.unwrap();
        assert_eq!(
            (rule.index, rule.text.as_ref()),
            (1, "domain=b.test path=* port=8443")
        );
        let after = std::fs::read_to_string(&file).unwrap();
        assert!(after.starts_with("# kept\n"), "{after}");
        assert!(after.contains("\"domain=x.test\""), "{after}");
        assert!(after.contains("domain=b.test path=* port=8443"), "{after}");
        let decisions: Vec<DecisionEvent> = std::iter::from_fn(|| events.try_recv().ok())
            .filter_map(|event| match event {
                Event::Decision(decision) => Some(decision),
                _ => None,
            })
            .collect();
        assert_eq!(decisions.len(), 1, "{decisions:?}");
        assert_eq!(decisions[0].session, "s1");
        assert_eq!(decisions[0].decision, "allow");
        assert!(
            decisions[0]
                .rule
                .as_deref()
                .is_some_and(|rule| rule.ends_with("allowlist[1]: domain=b.test path=* port=8443")),
            "{decisions:?}"
        );
    }

    #[tokio::test]
    async fn a_forever_rule_that_cannot_be_saved_denies_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        // Two levels missing: a rules file creates its own directory, never a missing workspace.
        let file = dir
            .path()
            .join("missing-dir")
            .join(".hh")
            .join("rules.toml");
        let engine = engine_with(&[], &[], file, Duration::from_secs(10));
        let request = get("https://b.test/x");
        let (ruling, _) = tokio::join!(
            engine.decide(&request),
            answer_when_asked(&engine, Answer::AllowForever { rule: None })
        )
        .0;
        assert!(!ruling.allowed);
        assert!(
            matches!(&ruling.asked, Some(Asked::NotSaved(why)) if why.contains("missing-dir")),
            "{ruling:?}"
        );
        let text = engine.denial_text(&request, &ruling);
        assert!(text.contains("could not be saved"), "{text}");
    }

    #[tokio::test]
    async fn deny_once_denies_without_touching_the_rules_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("rules.toml");
        let engine = engine_with(&[], &[], file.clone(), Duration::from_secs(10));
        let request = get("https://b.test/x");
        let (ruling, _) = tokio::join!(
            engine.decide(&request),
            answer_when_asked(&engine, Answer::DenyOnce)
        )
        .0;
        assert_eq!(ruling, Ruling::asked(false, Asked::Once));
        assert!(
            engine
                .denial_text(&request, &ruling)
                .contains("a person denied it"),
        );
        assert!(!file.exists());
    }

    #[test]
    fn a_connection_is_refused_early_only_by_a_deny_rule() {
        let engine = engine(&["domain=a.test"], &["domain=d.test"]);
        let host = |name| crate::rules::Host::parse(name).unwrap();
        assert_eq!(
            engine.refuse_early(&Request::tcp(host("a.test"), 443)),
            None
        );
        assert_eq!(
            engine.refuse_early(&Request::tcp(host("u.test"), 443)),
            None
        );
        let denied = engine
            .refuse_early(&Request::tcp(host("d.test"), 443))
            .unwrap();
        assert!(!denied.allowed);
        let text = engine.denial_text(&Request::tcp(host("d.test"), 443), &denied);
        assert!(text.contains("denylist[0]: domain=d.test"), "{text}");
        assert!(!text.contains("To allow it"), "{text}");
    }
}
