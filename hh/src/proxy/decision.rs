//! The proxy's one decision: a canonical [`Request`] in, a final [`Ruling`] out, and its audit line.
//!
//! Both front-door paths (absolute-form HTTP, CONNECT: raw TCP or each intercepted request) call
//! [`DecisionEngine::decide`]; the CONNECT path may first call [`DecisionEngine::refuse_early`],
//! which answers only when a deny rule covers the whole `host:port` (then every request through
//! the tunnel would be denied anyway, so the client gets its 403 before any tunnel exists).
//! Both consult [`Policy::decide`] through the same private function.
//!
//! Unknown means ask; no answer means deny. No approver can connect yet (the TUI and control
//! socket are later work), so an ask waits out the ask timeout and then denies, as it will when
//! no one answers. Every final ruling is one audit line when an audit log is open: a [`Ticket`]
//! goes with the request and writes the line when dropped, with the bytes each way and the
//! duration, however the exchange ends.
//!
//! The text of a denial is written here too: what was blocked, which rule (or "ask timed out"),
//! and the command a person runs to allow it, so an agent reading the 403 can pass it on.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use crate::{
    audit::{self, AuditLog, AuditRecord},
    rules::{Action, Host, Policy, Request, Verdict, policy::RuleOrigin},
};

/// Where the current policy comes from: a file watcher, or a fixed policy.
pub type PolicyFn = Arc<dyn Fn() -> Arc<Policy> + Send + Sync>;

/// The final word on a request: allow or deny, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ruling {
    pub allowed: bool,
    /// The rule that decided; `None` when no rule matched and the ask timed out.
    pub rule: Option<RuleOrigin>,
}

impl Ruling {
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

/// Decides requests against the current policy, asks (and times out), and audits.
pub struct DecisionEngine {
    policy: PolicyFn,
    ask_timeout: Duration,
    audit: Option<Arc<AuditLog>>,
    /// Where a person adds a rule: the argument of `hh rules add` (`--rules FILE`).
    rules_target: String,
}

impl DecisionEngine {
    pub fn new(
        policy: PolicyFn,
        ask_timeout: Duration,
        audit: Option<AuditLog>,
        rules_target: String,
    ) -> DecisionEngine {
        DecisionEngine {
            policy,
            ask_timeout,
            audit: audit.map(Arc::new),
            rules_target,
        }
    }

    /// The ruling for `request`: the matching rule's, or, when none matches, the asker's (no
    /// approver yet: wait out the ask timeout, then deny). The ticket writes the audit line.
    pub async fn decide(&self, request: &Request) -> (Ruling, Ticket) {
        self.decide_as(request, false).await
    }

    /// [`DecisionEngine::decide`] for bytes the proxy will splice without parsing them: a
    /// deny rule for the host and port denies even when its method or path terms could only
    /// be checked on parsed HTTP ([`Policy::decide_opaque`]).
    pub async fn decide_opaque(&self, request: &Request) -> (Ruling, Ticket) {
        self.decide_as(request, true).await
    }

    async fn decide_as(&self, request: &Request, opaque: bool) -> (Ruling, Ticket) {
        let started = Instant::now();
        let ruling = match self.consult(request, opaque) {
            Some(ruling) => ruling,
            None => {
                tracing::info!(host = %request.host, port = request.port, "no rule matched; asking");
                tokio::time::sleep(self.ask_timeout).await;
                Ruling {
                    allowed: false,
                    rule: None,
                }
            }
        };
        let ticket = self.ticket(request, &ruling, started);
        (ruling, ticket)
    }

    /// A denial decided by a rule for the connection `request` (no HTTP part), when there is
    /// one; `None` means: open the tunnel and decide each request inside it. Audited when it
    /// denies.
    pub fn refuse_early(&self, request: &Request) -> Option<Ruling> {
        let ruling = self
            .consult(request, false)
            .filter(|ruling| !ruling.allowed)?;
        drop(self.ticket(request, &ruling, Instant::now()));
        Some(ruling)
    }

    /// The one call to the policy: `None` means no rule matched (ask).
    fn consult(&self, request: &Request, opaque: bool) -> Option<Ruling> {
        let policy = (self.policy)();
        let decision = if opaque {
            policy.decide_opaque(request)
        } else {
            policy.decide(request)
        };
        let allowed = match decision.verdict {
            Verdict::Allow => true,
            Verdict::Deny => false,
            Verdict::Ask => return None,
        };
        Some(Ruling {
            allowed,
            rule: decision.rule.cloned(),
        })
    }

    fn ticket(&self, request: &Request, ruling: &Ruling, started: Instant) -> Ticket {
        let record = AuditRecord {
            time: SystemTime::now(),
            session: "standalone".into(),
            client_pid: None,
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
            rule: ruling.rule.as_ref().map(ToString::to_string),
            bytes_up: 0,
            bytes_down: 0,
            duration_ms: 0,
        };
        Ticket {
            log: self.audit.clone(),
            record,
            started,
            up: Arc::new(AtomicU64::new(0)),
            down: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The plain-text body of a 403 for `request` denied by `ruling`.
    pub fn denial_text(&self, request: &Request, ruling: &Ruling) -> String {
        let mut text = format!("hh blocked {}\n", describe(request));
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
            None => text.push_str(&format!(
                "rule: no rule matched (ask timed out after {} s with no answer)\n",
                self.ask_timeout.as_secs_f32()
            )),
        }
        if ruling
            .rule
            .as_ref()
            .is_none_or(|rule| rule.action != Action::Deny)
        {
            text.push_str(&format!(
                "To allow it, a person runs:\n  hh rules add {} allow '{}'\n",
                self.rules_target,
                suggested_rule(request)
            ));
        }
        text
    }
}

/// One decision's audit line, written when dropped: exactly once, however the exchange ends.
pub struct Ticket {
    log: Option<Arc<AuditLog>>,
    record: AuditRecord,
    started: Instant,
    /// Bytes from the client to the upstream so far.
    pub up: Arc<AtomicU64>,
    /// Bytes from the upstream to the client so far.
    pub down: Arc<AtomicU64>,
}

impl Ticket {
    /// The allowed request was never sent: the SSRF guard refused the address. The line says
    /// deny, and the guard's reason stands where a rule would (the record has no other field).
    pub fn refused(&mut self, reason: &str) {
        self.record.decision = audit::Decision::Deny;
        self.record.rule = Some(format!("ssrf guard: {reason}"));
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

/// The narrowest rule that allows `request`, in the rule grammar.
fn suggested_rule(request: &Request) -> String {
    match &request.http {
        Some(http) => format!(
            "method={} domain={} path={} port={}",
            http.method.as_str(),
            request.host,
            http.path.as_str(),
            request.port
        ),
        None => format!("domain={} port={}", request.host, request.port),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{Layer, LayerRules, Rule};

    fn engine(allow: &[&str], deny: &[&str]) -> DecisionEngine {
        let mut layer = LayerRules::new(Layer::Workspace, "rules.toml");
        for text in allow {
            layer.push(Action::Allow, Rule::parse(text).unwrap(), *text);
        }
        for text in deny {
            layer.push(Action::Deny, Rule::parse(text).unwrap(), *text);
        }
        let policy = Arc::new(Policy::new(vec![layer]));
        DecisionEngine::new(
            Arc::new(move || policy.clone()),
            Duration::from_millis(10),
            None,
            "--rules rules.toml".into(),
        )
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
    async fn an_unknown_request_is_denied_after_the_ask_times_out() {
        let engine = engine(&[], &[]);
        let request = get("https://b.test/x");
        let (ruling, _) = engine.decide(&request).await;
        assert_eq!(
            ruling,
            Ruling {
                allowed: false,
                rule: None
            }
        );
        let text = engine.denial_text(&request, &ruling);
        assert!(text.contains("ask timed out"), "{text}");
        assert!(
            text.contains(
                "hh rules add --rules rules.toml allow 'method=GET domain=b.test path=/x port=443'"
            ),
            "{text}"
        );
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
