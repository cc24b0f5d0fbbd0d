//! The approvals broker: requests no rule decided wait here for a person's answer.
//!
//! [`Approvals::ask`] holds a request until [`Approvals::answer`] is called for its prompt or the
//! timeout passes (no answer means deny). Identical questions (same session, method, host, path
//! and port, and the same query string and body size: [`Outgoing`]) share one prompt: `waiting`
//! counts them and one answer releases them all. A request whose body length is not known ahead
//! shares no prompt, since nothing tells two such bodies apart. The queue of distinct prompts is
//! bounded; a question past it is denied at once.
//!
//! A prompt shows what leaves besides what rules decide on: the query string and the body size.
//! One for the proxy host's loopback (`127.0.0.1`, `::1`, `localhost`) says so: a session's own
//! loopback never reaches the proxy, so such a request is for services on the host.
//!
//! An answer "forever" carries a rule. It must parse and must cover the held request (checked by
//! deciding the request against a policy of that one rule, so no matching is re-implemented
//! here); otherwise the answer is refused and the request keeps waiting. Writing the rule to
//! the rules file is the caller's job ([`super::decision`]): this module does no I/O besides
//! tokio's sync and time, so it is tested with a paused clock.
//!
//! Subscribers hear [`Event::ApprovalPending`] when a prompt appears or its `waiting` changes,
//! and [`Event::ApprovalResolved`] when it is answered, times out or every waiter has gone.
//!
//! An answer "for 10 minutes / 1 hour / this session" ([`Answer::AllowFor`]) allows the request
//! and records a grant: the session's later requests its rule covers are allowed without a
//! prompt ([`Approvals::granted`]) until the grant expires (on tokio's clock, so exactly when
//! tested with a paused one), is revoked, or the session ends. A grant is consulted only where a
//! prompt would be: a rule of the files, a deny above all, still decides first.

use std::{
    collections::{BTreeMap, HashMap},
    path::PathBuf,
    sync::{Mutex, MutexGuard},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use tokio::{
    sync::{broadcast, watch},
    time::Instant,
};

use crate::{
    api::protocol::{Answer, BodySize, Event, GrantFor, GrantInfo, PendingApproval},
    rules::{Action, Host, Layer, LayerRules, Policy, Request, Rule, RuleError, Verdict},
};

/// How many distinct prompts of one session may wait at once unless told otherwise.
pub const DEFAULT_CAPACITY: usize = 64;

/// What a request sends besides what rules decide on: shown in its prompt, and part of what
/// makes two requests one prompt.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Outgoing {
    /// The query string as sent, without its `?`.
    pub query: Option<String>,
    pub body: BodySize,
}

impl Outgoing {
    /// The query of a request target or URL (`/p?q=1#f` → `q=1`); `None` without a `?`.
    pub fn query_of(target: &str) -> Option<String> {
        let before_fragment = target.split_once('#').map_or(target, |(before, _)| before);
        before_fragment
            .split_once('?')
            .map(|(_, query)| query.to_owned())
    }
}

/// A request no rule decided, as it is put to a person.
#[derive(Clone, Debug)]
pub struct Question {
    pub session: String,
    pub request: Request,
    /// What else it sends (none for a connection decided before any HTTP).
    pub outgoing: Outgoing,
    /// The bytes will be spliced unparsed: a rule answering it is checked as
    /// [`Policy::decide_opaque`] would read it.
    pub opaque: bool,
    /// The rules file an answer "forever" is appended to.
    pub rules_file: PathBuf,
    /// The layer that file belongs to: the one that decides the request once answered forever.
    pub rules_layer: Layer,
    /// The process that made the request, when the front door learnt it.
    pub process: Option<std::sync::Arc<super::client_process::ClientProcess>>,
}

/// What became of a question.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Allow or deny this request (and those sharing its prompt) only.
    Once(Action),
    /// Append `rule` to the rules file as `action`, then act on it. The rule covers the request.
    Forever(Action, Rule),
    /// Allowed, and `rule` granted to the session for a while (grant `id`).
    Granted {
        id: u64,
        rule: Rule,
        duration: GrantFor,
    },
    /// No answer within the timeout: deny.
    TimedOut,
    /// Too many prompts were waiting: denied without asking.
    QueueFull,
}

impl Outcome {
    /// How the outcome reads in [`Event::ApprovalResolved`] and the audit log.
    pub fn describe(&self) -> String {
        match self {
            Outcome::Once(action) => format!("{action} once"),
            Outcome::Forever(action, rule) => format!("{action} forever: {rule}"),
            Outcome::Granted { id, rule, duration } => {
                format!("allow for {}: {rule} (grant {id})", duration.as_str())
            }
            Outcome::TimedOut => "timed out".into(),
            Outcome::QueueFull => "queue full".into(),
        }
    }
}

/// Why an answer was refused. Except for [`AnswerError::Unknown`], the request keeps waiting.
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    #[error("no pending approval {id} (answered, timed out, or never asked)")]
    Unknown { id: u64 },
    #[error("rule `{text}` does not parse: {error}")]
    Rule {
        text: String,
        #[source]
        error: RuleError,
    },
    #[error(
        "rule `{rule}` as a {action} rule does not cover the held request {request} \
         (that rule alone gives {verdict}); give a rule that matches it"
    )]
    DoesNotCover {
        rule: String,
        action: Action,
        request: String,
        verdict: Verdict,
    },
}

/// The fields that make two questions the same prompt.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
struct Key {
    session: String,
    request: Request,
    outgoing: Outgoing,
}

impl Key {
    /// The key `question` shares a prompt under; `None` when it shares none (a body of unknown
    /// length).
    fn of(question: &Question) -> Option<Key> {
        (question.outgoing.body != BodySize::Streamed).then(|| Key {
            session: question.session.clone(),
            request: question.request.clone(),
            outgoing: question.outgoing.clone(),
        })
    }
}

struct Prompt {
    approval: PendingApproval,
    question: Question,
    deadline: Instant,
    outcome: watch::Sender<Option<Outcome>>,
}

#[derive(Default)]
struct State {
    next_id: u64,
    prompts: BTreeMap<u64, Prompt>,
    by_key: HashMap<Key, u64>,
    next_grant: u64,
    grants: Vec<Grant>,
}

/// Requests of `session` that `rule` covers are allowed until `expires` (`None`: until the
/// session ends).
struct Grant {
    id: u64,
    session: String,
    rule: Rule,
    /// Checked as [`Policy::decide_opaque`] reads it for spliced bytes.
    policy: Policy,
    duration: GrantFor,
    expires: Option<Instant>,
    expires_ms: Option<u64>,
}

impl Grant {
    /// Before its end by both clocks: tokio's (monotonic, so tests can pause it) and the wall
    /// clock's (which, unlike the monotonic one, runs on while the machine sleeps).
    fn in_force(&self) -> bool {
        let before_monotonic = self.expires.is_none_or(|expires| Instant::now() < expires);
        let before_wall = self
            .expires_ms
            .is_none_or(|expires| epoch_ms(SystemTime::now()) < expires);
        before_monotonic && before_wall
    }

    fn info(&self) -> GrantInfo {
        GrantInfo {
            id: self.id,
            session: self.session.clone(),
            rule: self.rule.to_string(),
            duration: self.duration.as_str().into(),
            expires_ms: self.expires_ms,
        }
    }
}

impl State {
    /// Removes prompt `id`, tells subscribers (`label`), then hands `outcome` to its waiters, in
    /// that order, so a subscriber hears of the answer before any decision it causes. `None`
    /// when the prompt was already gone.
    fn resolve(
        &mut self,
        events: &broadcast::Sender<Event>,
        id: u64,
        outcome: Outcome,
        label: String,
    ) -> Option<Outcome> {
        let prompt = self.prompts.remove(&id)?;
        let _ = events.send(Event::ApprovalResolved {
            id,
            outcome: label,
            session: prompt.question.session.clone(),
        });
        if let Some(key) = Key::of(&prompt.question) {
            self.by_key.remove(&key);
        }
        // No receiver left is fine: the last waiter may be going away at this moment.
        let _ = prompt.outcome.send(Some(outcome.clone()));
        Some(outcome)
    }
}

/// The pending approvals of one proxy (standalone) or agent. Share it with an `Arc`.
pub struct Approvals {
    capacity: usize,
    timeout: Duration,
    events: broadcast::Sender<Event>,
    state: Mutex<State>,
}

impl Approvals {
    pub fn new(capacity: usize, timeout: Duration, events: broadcast::Sender<Event>) -> Approvals {
        Approvals {
            capacity,
            timeout,
            events,
            state: Mutex::new(State {
                next_id: 1,
                next_grant: 1,
                ..State::default()
            }),
        }
    }

    /// How long a question waits for an answer.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The channel the broker's events (and the engine's decisions) go to.
    pub fn events(&self) -> &broadcast::Sender<Event> {
        &self.events
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent between statements, so a panic elsewhere leaves it usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sends `event`. Callers hold the state lock, so subscribers hear a prompt's events in the
    /// order its state changed (never a stale `waiting` after its resolution).
    fn emit(&self, event: Event) {
        // No subscriber is not an error: the standalone proxy often runs with none.
        let _ = self.events.send(event);
    }

    /// Holds `question` until it is answered or times out.
    pub async fn ask(&self, question: Question) -> Outcome {
        let key = Key::of(&question);
        let (id, deadline, mut outcome) = {
            let mut state = self.lock();
            if let Some(&id) = key.as_ref().and_then(|key| state.by_key.get(key))
                && let Some(prompt) = state.prompts.get_mut(&id)
            {
                prompt.approval.waiting = prompt.approval.waiting.saturating_add(1);
                self.emit(Event::ApprovalPending(prompt.approval.clone()));
                (id, prompt.deadline, prompt.outcome.subscribe())
            } else if state
                .prompts
                .values()
                .filter(|prompt| prompt.question.session == question.session)
                .count()
                >= self.capacity
            {
                drop(state);
                tracing::warn!(
                    session = %question.session,
                    host = %question.request.host,
                    port = question.request.port,
                    capacity = self.capacity,
                    "too many pending approvals; denied without asking"
                );
                return Outcome::QueueFull;
            } else {
                let id = state.next_id;
                state.next_id += 1;
                let deadline = Instant::now() + self.timeout;
                let approval = pending_approval(id, &question, self.timeout);
                let (sender, receiver) = watch::channel(None);
                self.emit(Event::ApprovalPending(approval.clone()));
                if let Some(key) = key {
                    state.by_key.insert(key, id);
                }
                state.prompts.insert(
                    id,
                    Prompt {
                        approval,
                        question,
                        deadline,
                        outcome: sender,
                    },
                );
                (id, deadline, receiver)
            }
        };
        // From here on, a waiter dropped before the answer (its client went away) leaves the
        // prompt; the last one to leave withdraws it.
        let mut waiter = Waiter {
            approvals: self,
            id,
            done: false,
        };
        let answered =
            match tokio::time::timeout_at(deadline, outcome.wait_for(Option::is_some)).await {
                Ok(Ok(seen)) => seen.clone(),
                // Timed out; or the sender is gone, which only a resolved prompt does.
                _ => None,
            };
        waiter.done = true;
        if let Some(answer) = answered {
            return answer;
        }
        // The deadline passed. Every waiter of the prompt has the same one; whichever wakes first
        // resolves it, and the others find the outcome it sent.
        let timed_out = Outcome::TimedOut;
        let label = timed_out.describe();
        if let Some(_resolved) = self.lock().resolve(&self.events, id, timed_out, label) {
            tracing::info!(id, "approval timed out; denied");
        }
        let outcome = outcome.borrow().clone();
        outcome.unwrap_or(Outcome::TimedOut)
    }

    /// The prompts waiting now, oldest first.
    pub fn pending(&self) -> Vec<PendingApproval> {
        self.lock()
            .prompts
            .values()
            .map(|prompt| prompt.approval.clone())
            .collect()
    }

    /// Answers prompt `id`: every request waiting on it gets the outcome. A "forever" rule that
    /// does not parse or does not cover the request is refused, and the prompt keeps waiting.
    pub fn answer(&self, id: u64, answer: Answer) -> Result<Outcome, AnswerError> {
        let mut state = self.lock();
        let prompt = state.prompts.get(&id).ok_or(AnswerError::Unknown { id })?;
        let outcome = match answer {
            Answer::AllowOnce => Outcome::Once(Action::Allow),
            Answer::DenyOnce => Outcome::Once(Action::Deny),
            Answer::AllowForever { rule } => {
                let text = rule.unwrap_or_else(|| prompt.approval.suggested_rule.clone());
                Outcome::Forever(
                    Action::Allow,
                    covering_rule(&prompt.question, Action::Allow, &text)?,
                )
            }
            Answer::AllowFor { duration, rule } => {
                let text = rule.unwrap_or_else(|| prompt.approval.suggested_rule.clone());
                let rule = covering_rule(&prompt.question, Action::Allow, &text)?;
                let session = prompt.question.session.clone();
                let id = state.next_grant;
                state.next_grant += 1;
                let mut layer = LayerRules::new(Layer::Workspace, format!("grant {id}"));
                layer.push(Action::Allow, rule.clone(), rule.to_string());
                state.grants.push(Grant {
                    id,
                    session,
                    rule: rule.clone(),
                    policy: Policy::new(vec![layer]),
                    duration,
                    expires: duration.duration().map(|length| Instant::now() + length),
                    expires_ms: duration
                        .duration()
                        .map(|length| epoch_ms(SystemTime::now() + length)),
                });
                Outcome::Granted { id, rule, duration }
            }
            Answer::DenyForever { rule } => {
                let text = rule.unwrap_or_else(|| {
                    // A deny covers the whole host and port (its CONNECT is refused up front).
                    Rule {
                        paths: None,
                        ..suggested_rule(&prompt.question.request)
                    }
                    .to_string()
                });
                Outcome::Forever(
                    Action::Deny,
                    covering_rule(&prompt.question, Action::Deny, &text)?,
                )
            }
        };
        let label = outcome.describe();
        let resolved = state
            .resolve(&self.events, id, outcome, label)
            .ok_or(AnswerError::Unknown { id })?;
        drop(state);
        tracing::info!(id, outcome = %resolved.describe(), "approval answered");
        Ok(resolved)
    }

    /// The grant that allows `request` of `session` now, if one does: its id and rule. Expired
    /// grants go first. `opaque`: the bytes will be spliced unparsed.
    pub fn granted(&self, session: &str, request: &Request, opaque: bool) -> Option<(u64, Rule)> {
        let mut state = self.lock();
        state.grants.retain(Grant::in_force);
        state
            .grants
            .iter()
            .filter(|grant| grant.session == session)
            .find(|grant| {
                let decision = if opaque {
                    grant.policy.decide_opaque(request)
                } else {
                    grant.policy.decide(request)
                };
                decision.verdict == Verdict::Allow
            })
            .map(|grant| (grant.id, grant.rule.clone()))
    }

    /// The grants in force, oldest first.
    pub fn grants(&self) -> Vec<GrantInfo> {
        let mut state = self.lock();
        state.grants.retain(Grant::in_force);
        state.grants.iter().map(Grant::info).collect()
    }

    /// Ends grant `id` now; whether there was one.
    pub fn revoke(&self, id: u64) -> bool {
        let mut state = self.lock();
        let before = state.grants.len();
        state.grants.retain(|grant| grant.id != id);
        let revoked = state.grants.len() != before;
        if revoked {
            tracing::info!(id, "grant revoked");
        }
        revoked
    }

    /// Ends every grant of `session` (it stopped).
    pub fn end_session(&self, session: &str) {
        self.lock().grants.retain(|grant| grant.session != session);
    }

    /// One waiter of prompt `id` left before it was resolved.
    fn leave(&self, id: u64) {
        let mut state = self.lock();
        let Some(prompt) = state.prompts.get_mut(&id) else {
            return;
        };
        prompt.approval.waiting = prompt.approval.waiting.saturating_sub(1);
        if prompt.approval.waiting == 0 {
            // Nobody would hear the answer: the prompt is withdrawn rather than left to time out.
            let withdrawn = Outcome::Once(Action::Deny);
            let _ = state.resolve(&self.events, id, withdrawn, "withdrawn".into());
        } else {
            self.emit(Event::ApprovalPending(prompt.approval.clone()));
        }
    }
}

/// Leaves the prompt when a waiting `ask` is dropped (its client went away).
struct Waiter<'a> {
    approvals: &'a Approvals,
    id: u64,
    done: bool,
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.approvals.leave(self.id);
        }
    }
}

/// `time` in milliseconds since the Unix epoch.
fn epoch_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |since| {
        u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
    })
}

fn pending_approval(id: u64, question: &Question, timeout: Duration) -> PendingApproval {
    let request = &question.request;
    let deadline_ms = epoch_ms(SystemTime::now() + timeout);
    PendingApproval {
        id,
        session: question.session.clone(),
        method: request.http.as_ref().map(|http| http.method.to_string()),
        host: request.host.to_string(),
        path: request.http.as_ref().map(|http| http.path.to_string()),
        port: request.port,
        waiting: 1,
        deadline_ms,
        rules_file: question.rules_file.display().to_string(),
        layer: question.rules_layer.to_string(),
        suggested_rule: suggested_rule(request).to_string(),
        query: question.outgoing.query.as_deref().map(printable),
        body: question.outgoing.body,
        process: question.process.as_ref().map(|process| process.describe()),
        note: host_loopback(&request.host).then(|| {
            format!(
                "{} is the loopback of the proxy's host, not the session's own (a session's \
                 loopback never reaches the proxy): allowing it lets the session reach services \
                 on that machine",
                request.host
            )
        }),
    }
}

/// `text` with every control character percent-encoded, so that a query shown on a terminal
/// cannot move its cursor or hide what follows (parsers refuse most such bytes already).
fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            let mut bytes = [0u8; 4];
            for byte in c.encode_utf8(&mut bytes).bytes() {
                out.push_str(&format!("%{byte:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether `host` names the proxy host's loopback: a loopback literal (its IPv4-mapped forms
/// too) or `localhost` and its subdomains (RFC 6761 §6.3).
fn host_loopback(host: &Host) -> bool {
    match host.ip() {
        Some(ip) => {
            ip.is_loopback()
                || super::ssrf::same_host_ipv4(ip).is_some_and(|(_, v4)| v4.is_loopback())
        }
        None => host.as_str() == "localhost" || host.as_str().ends_with(".localhost"),
    }
}

pub use crate::rules::suggest::suggested_rule;

/// Parses `text` and checks that, as an `action` rule, it decides `question`'s request that
/// way on its own.
fn covering_rule(question: &Question, action: Action, text: &str) -> Result<Rule, AnswerError> {
    let rule = Rule::parse(text).map_err(|error| AnswerError::Rule {
        text: text.into(),
        error,
    })?;
    let mut layer = LayerRules::new(
        question.rules_layer,
        question.rules_file.display().to_string(),
    );
    layer.push(action, rule.clone(), text);
    let policy = Policy::new(vec![layer]);
    let verdict = if question.opaque {
        policy.decide_opaque(&question.request).verdict
    } else {
        policy.decide(&question.request).verdict
    };
    let wanted = match action {
        Action::Allow => Verdict::Allow,
        Action::Deny => Verdict::Deny,
    };
    if verdict != wanted {
        return Err(AnswerError::DoesNotCover {
            rule: text.into(),
            action,
            request: super::decision::describe(&question.request),
            verdict,
        });
    }
    Ok(rule)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn question(session: &str, method: &str, url: &str) -> Question {
        Question {
            process: None,
            session: session.into(),
            request: Request::from_url(method, url).unwrap(),
            outgoing: Outgoing {
                query: Outgoing::query_of(url),
                body: BodySize::None,
            },
            opaque: false,
            rules_file: PathBuf::from("rules.toml"),
            rules_layer: Layer::Workspace,
        }
    }

    fn broker(capacity: usize) -> (Arc<Approvals>, broadcast::Receiver<Event>) {
        let (events, receiver) = broadcast::channel(64);
        let approvals = Approvals::new(capacity, Duration::from_secs(60), events);
        (Arc::new(approvals), receiver)
    }

    /// Lets spawned `ask`s run until they wait.
    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    fn spawn_ask(
        approvals: &Arc<Approvals>,
        question: Question,
    ) -> tokio::task::JoinHandle<Outcome> {
        let approvals = Arc::clone(approvals);
        tokio::spawn(async move { approvals.ask(question).await })
    }

    #[tokio::test(start_paused = true)]
    async fn a_grant_lets_its_sessions_requests_through_until_it_expires_to_the_second() {
        let (approvals, _events) = broker(8);
        let held = spawn_ask(&approvals, question("s1", "GET", "https://a.test/x"));
        settle().await;
        let id = approvals.pending()[0].id;
        let answer = Answer::AllowFor {
            duration: GrantFor::TenMinutes,
            rule: None,
        };
        approvals.answer(id, answer).unwrap();
        assert!(matches!(
            held.await.unwrap(),
            Outcome::Granted {
                duration: GrantFor::TenMinutes,
                ..
            }
        ));
        let later = Request::from_url("POST", "https://a.test/other/path").unwrap();
        let elsewhere = Request::from_url("GET", "https://b.test/x").unwrap();
        let (grant, rule) = approvals.granted("s1", &later, false).unwrap();
        assert_eq!(rule.to_string(), "domain=a.test");
        assert_eq!(
            approvals.granted("s2", &later, false),
            None,
            "another session's"
        );
        assert_eq!(
            approvals.granted("s1", &elsewhere, false),
            None,
            "another host"
        );
        let listed = approvals.grants();
        assert_eq!(listed.len(), 1);
        assert_eq!((listed[0].id, listed[0].duration.as_str()), (grant, "10m"));
        // In force until the last instant of its ten minutes, and not a moment after.
        tokio::time::advance(Duration::from_secs(600) - Duration::from_millis(1)).await;
        assert!(approvals.granted("s1", &later, false).is_some());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(approvals.granted("s1", &later, false), None);
        assert!(approvals.grants().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_grant_ends_when_revoked_or_with_its_session_and_covers_only_what_it_says() {
        let (approvals, _events) = broker(8);
        let grant = |url: &str, duration, rule: Option<&str>| {
            let approvals = Arc::clone(&approvals);
            let url = url.to_owned();
            let rule = rule.map(str::to_owned);
            async move {
                let held = spawn_ask(&approvals, question("s1", "GET", &url));
                settle().await;
                let id = approvals.pending()[0].id;
                approvals
                    .answer(id, Answer::AllowFor { duration, rule })
                    .map(|_| held)
            }
        };
        let held = grant(
            "https://a.test/pkg/x",
            GrantFor::Session,
            Some("domain=a.test path=/pkg/*"),
        )
        .await
        .unwrap();
        held.await.unwrap();
        let inside = Request::from_url("GET", "https://a.test/pkg/y").unwrap();
        let outside = Request::from_url("GET", "https://a.test/admin").unwrap();
        assert!(approvals.granted("s1", &inside, false).is_some());
        assert_eq!(approvals.granted("s1", &outside, false), None);
        // A session grant has no end of its own.
        tokio::time::advance(Duration::from_secs(86_400)).await;
        assert!(approvals.granted("s1", &inside, false).is_some());
        assert_eq!(approvals.grants()[0].expires_ms, None);
        approvals.end_session("s1");
        assert_eq!(approvals.granted("s1", &inside, false), None);

        // A rule that does not cover the held request is refused, and it keeps waiting.
        let refused = grant("https://a.test/x", GrantFor::Hour, Some("domain=b.test")).await;
        assert!(matches!(refused, Err(AnswerError::DoesNotCover { .. })));
        let id = approvals.pending()[0].id;
        approvals
            .answer(
                id,
                Answer::AllowFor {
                    duration: GrantFor::Hour,
                    rule: None,
                },
            )
            .unwrap();
        let grant_id = approvals.grants()[0].id;
        assert!(approvals.revoke(grant_id));
        assert!(!approvals.revoke(grant_id));
        assert_eq!(
            approvals.granted(
                "s1",
                &Request::from_url("GET", "https://a.test/x").unwrap(),
                false
            ),
            None
        );
    }

    #[tokio::test(start_paused = true)]
    async fn identical_questions_share_one_prompt_and_one_answer() {
        let (approvals, mut events) = broker(8);
        let first = spawn_ask(&approvals, question("s1", "GET", "https://a.test/x"));
        let second = spawn_ask(&approvals, question("s1", "GET", "https://a.test/x"));
        // Another session, method or path is another prompt.
        let other = spawn_ask(&approvals, question("s2", "GET", "https://a.test/x"));
        settle().await;
        let pending = approvals.pending();
        assert_eq!(pending.len(), 2, "{pending:?}");
        assert_eq!(pending[0].waiting, 2);
        assert_eq!(pending[0].suggested_rule, "domain=a.test");
        assert_eq!(pending[1].waiting, 1);

        approvals.answer(pending[0].id, Answer::AllowOnce).unwrap();
        assert_eq!(first.await.unwrap(), Outcome::Once(Action::Allow));
        assert_eq!(second.await.unwrap(), Outcome::Once(Action::Allow));
        assert_eq!(approvals.pending().len(), 1);
        assert!(!other.is_finished());

        let mut seen = Vec::new();
        while let Ok(event) = events.try_recv() {
            seen.push(event);
        }
        let waiting: Vec<u32> = seen
            .iter()
            .filter_map(|event| match event {
                Event::ApprovalPending(approval) if approval.id == pending[0].id => {
                    Some(approval.waiting)
                }
                _ => None,
            })
            .collect();
        assert_eq!(waiting, [1, 2]);
        assert!(seen.contains(&Event::ApprovalResolved {
            id: pending[0].id,
            outcome: "allow once".into(),
            session: pending[0].session.clone(),
        }));
    }

    #[tokio::test(start_paused = true)]
    async fn questions_differing_in_query_or_body_size_get_prompts_of_their_own() {
        let (approvals, _events) = broker(8);
        let with_body = |url: &str, body| Question {
            process: None,
            outgoing: Outgoing {
                query: Outgoing::query_of(url),
                body,
            },
            ..question("s1", "POST", url)
        };
        let asks = [
            with_body("https://a.test/x?page=1", BodySize::None),
            with_body("https://a.test/x?page=1", BodySize::None),
            with_body("https://a.test/x?page=2", BodySize::None),
            with_body("https://a.test/x", BodySize::None),
            with_body("https://a.test/x?", BodySize::None),
            with_body("https://a.test/x", BodySize::Bytes(10)),
            with_body("https://a.test/x", BodySize::Bytes(10)),
            with_body("https://a.test/x", BodySize::Bytes(11)),
            // Two bodies of unknown length may differ in anything: never one prompt.
            with_body("https://a.test/x", BodySize::Streamed),
            with_body("https://a.test/x", BodySize::Streamed),
        ];
        let _held: Vec<_> = asks
            .into_iter()
            .map(|question| spawn_ask(&approvals, question))
            .collect();
        settle().await;
        let shown: Vec<(Option<String>, BodySize, u32)> = approvals
            .pending()
            .into_iter()
            .map(|pending| (pending.query, pending.body, pending.waiting))
            .collect();
        let q = |text: &str| Some(text.to_owned());
        assert_eq!(
            shown,
            [
                (q("page=1"), BodySize::None, 2),
                (q("page=2"), BodySize::None, 1),
                (None, BodySize::None, 1),
                (q(""), BodySize::None, 1),
                (None, BodySize::Bytes(10), 2),
                (None, BodySize::Bytes(11), 1),
                (None, BodySize::Streamed, 1),
                (None, BodySize::Streamed, 1),
            ]
        );
    }

    #[test]
    fn a_shown_query_has_no_control_characters() {
        assert_eq!(printable("a=1&b=\u{1b}[2J\u{85}x"), "a=1&b=%1B[2J%C2%85x");
    }

    #[tokio::test(start_paused = true)]
    async fn a_prompt_for_the_proxy_hosts_loopback_says_so() {
        let (approvals, _events) = broker(8);
        let urls = [
            "http://127.0.0.1:5432/",
            "http://[::1]:6379/",
            "http://[::ffff:127.0.0.2]/",
            "http://localhost:8080/",
            "http://db.localhost/",
            "http://a.test/",
        ];
        for url in urls {
            let _held = spawn_ask(&approvals, question("s", "GET", url));
        }
        settle().await;
        let notes: Vec<bool> = approvals
            .pending()
            .iter()
            .map(|pending| {
                pending
                    .note
                    .as_deref()
                    .is_some_and(|note| note.contains("is the loopback of the proxy's host"))
            })
            .collect();
        assert_eq!(notes, [true, true, true, true, true, false]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_distinct_question_past_the_session_capacity_is_denied_at_once() {
        let (approvals, _events) = broker(1);
        let _held = spawn_ask(&approvals, question("s", "GET", "https://a.test/"));
        settle().await;
        let outcome = approvals.ask(question("s", "GET", "https://b.test/")).await;
        assert_eq!(outcome, Outcome::QueueFull);
        // The bound is per session: another session's question is still asked.
        let _other = spawn_ask(&approvals, question("t", "GET", "https://b.test/"));
        settle().await;
        assert_eq!(approvals.pending().len(), 2);
        // Joining the prompt already there is not a new one, so it is never refused.
        let joined = spawn_ask(&approvals, question("s", "GET", "https://a.test/"));
        settle().await;
        assert_eq!(approvals.pending()[0].waiting, 2);
        drop(joined);
    }

    #[tokio::test(start_paused = true)]
    async fn no_answer_within_the_timeout_denies_every_waiter() {
        let (approvals, mut events) = broker(8);
        let first = spawn_ask(&approvals, question("s", "GET", "https://a.test/"));
        let second = spawn_ask(&approvals, question("s", "GET", "https://a.test/"));
        settle().await;
        tokio::time::advance(Duration::from_secs(59)).await;
        settle().await;
        assert!(!first.is_finished());
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(first.await.unwrap(), Outcome::TimedOut);
        assert_eq!(second.await.unwrap(), Outcome::TimedOut);
        assert!(approvals.pending().is_empty());
        let resolved = std::iter::from_fn(|| events.try_recv().ok())
            .filter(|event| matches!(event, Event::ApprovalResolved { .. }))
            .count();
        assert_eq!(resolved, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn an_unknown_id_is_an_error() {
        let (approvals, _events) = broker(8);
        let error = approvals.answer(42, Answer::AllowOnce).unwrap_err();
        assert!(matches!(error, AnswerError::Unknown { id: 42 }), "{error}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_forever_rule_must_parse_and_cover_the_request_or_the_request_keeps_waiting() {
        let (approvals, _events) = broker(8);
        let held = spawn_ask(&approvals, question("s", "POST", "https://a.test:8443/up"));
        settle().await;
        let id = approvals.pending()[0].id;
        assert_eq!(
            approvals.pending()[0].suggested_rule,
            "domain=a.test path=* port=8443"
        );
        let refused = [
            ("domain=", "does not parse"),
            // An allow rule without `port` admits only 80 and 443.
            ("domain=a.test", "does not cover"),
            ("domain=b.test port=8443", "does not cover"),
            ("method=GET domain=a.test port=8443", "does not cover"),
        ];
        for (rule, why) in refused {
            let answer = Answer::AllowForever {
                rule: Some(rule.into()),
            };
            let error = approvals.answer(id, answer).unwrap_err().to_string();
            assert!(error.contains(why), "{rule}: {error}");
        }
        assert_eq!(approvals.pending().len(), 1);
        let answer = Answer::AllowForever {
            rule: Some("domain=*.test port=8443 path=/up".into()),
        };
        approvals.answer(id, answer).unwrap();
        let Outcome::Forever(Action::Allow, rule) = held.await.unwrap() else {
            panic!("expected allow forever");
        };
        assert_eq!(rule.to_string(), "domain=*.test path=/up port=8443");
    }

    #[tokio::test(start_paused = true)]
    async fn deny_forever_defaults_to_the_suggested_rule() {
        let (approvals, _events) = broker(8);
        let held = spawn_ask(&approvals, question("s", "GET", "http://a.test/"));
        settle().await;
        let id = approvals.pending()[0].id;
        approvals
            .answer(id, Answer::DenyForever { rule: None })
            .unwrap();
        let expected = Outcome::Forever(Action::Deny, Rule::parse("domain=a.test").unwrap());
        assert_eq!(held.await.unwrap(), expected);
        let again = approvals.answer(id, Answer::AllowOnce).unwrap_err();
        assert!(matches!(again, AnswerError::Unknown { .. }), "{again}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_last_waiter_leaving_withdraws_the_prompt() {
        let (approvals, mut events) = broker(8);
        let first = spawn_ask(&approvals, question("s", "GET", "https://a.test/"));
        let second = spawn_ask(&approvals, question("s", "GET", "https://a.test/"));
        settle().await;
        first.abort();
        settle().await;
        assert_eq!(approvals.pending()[0].waiting, 1);
        second.abort();
        settle().await;
        assert!(approvals.pending().is_empty());
        let last = std::iter::from_fn(|| events.try_recv().ok()).last();
        assert!(
            matches!(&last, Some(Event::ApprovalResolved { outcome, .. }) if outcome == "withdrawn"),
            "{last:?}"
        );
    }
}
