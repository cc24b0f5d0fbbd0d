//! [`Policy`]: every layer's rules compiled into one index, and [`Policy::decide`], the one
//! decision function the proxy calls for HTTP requests and raw connections alike.
//!
//! Deny wins over allow, in any layer; no match means ask. When several rules match, the one
//! reported is the first in layer order (global, workspace, template), then list order, so the
//! log line and the prompt always name the same rule.
//!
//! The index keeps, per action, a hash map from exact host to rule numbers, a hash map from
//! domain suffix to rule numbers (looked up for each proper suffix of the host, label by label
//! from the left, so `*.crates.io` is found for `static.crates.io` but not for `crates.io`),
//! and a list of the rules that name no domain or `*`. Only those candidates are checked in
//! full, so a decision costs a few hash lookups however many rules there are.
//! [`Policy::decide_by_scan`] is the obviously right linear scan the index is tested and
//! benchmarked against.

use std::{
    collections::HashMap,
    fmt,
    hash::{BuildHasherDefault, Hasher},
    net::IpAddr,
    sync::Arc,
};

use super::{
    canonical::Request,
    grammar::{Action, DomainPattern, Rule, WEB_PORTS},
};

/// Where a rule comes from, in the order decisions report them.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub enum Layer {
    /// The manager's global rules file (`[manager] global_rules_file`).
    Global,
    /// The workspace's `harness-rules.toml`.
    Workspace,
    /// The container profile's `starter_network_allowlist`.
    Template,
    /// The session's coding agent: its API allowed, its telemetry denied (built into hh).
    Harness,
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layer::Global => "global",
            Layer::Workspace => "workspace",
            Layer::Template => "template",
            Layer::Harness => "harness",
        })
    }
}

/// Which rule decided: enough for a log line or a prompt to show it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct RuleOrigin {
    pub layer: Layer,
    /// The file (or config key) the rule was read from.
    pub source: Arc<str>,
    pub action: Action,
    /// The rule's position in its list (`allowlist` or `denylist`), from 0.
    pub index: usize,
    /// The rule as written.
    pub text: Box<str>,
    /// The IP literals the rule names exactly (`domain=10.0.0.5`): naming an address is what
    /// lets the proxy dial it although the SSRF guard refuses such addresses otherwise.
    pub named_ips: Box<[IpAddr]>,
    /// A `proto=tcp` rule: as a deny, it is about unparsed connections only.
    pub raw_tcp: bool,
}

/// The IP literals among a rule's exact domains.
fn named_ips(rule: &Rule) -> Box<[IpAddr]> {
    rule.domains
        .iter()
        .flatten()
        .filter_map(|domain| match domain {
            DomainPattern::Exact(host) => host.ip(),
            _ => None,
        })
        .collect()
}

impl fmt::Display for RuleOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}[{}]: {}",
            self.layer,
            self.source,
            self.action.list_name(),
            self.index,
            self.text
        )
    }
}

/// The verdict of a decision.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Verdict {
    Allow,
    Deny,
    /// No rule decided: ask the user (no answer means deny).
    Ask,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
            Verdict::Ask => "ask",
        })
    }
}

/// A verdict and the rule that decided it (`None` for [`Verdict::Ask`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Decision<'p> {
    pub verdict: Verdict,
    pub rule: Option<&'p RuleOrigin>,
}

/// Why raw TCP was refused without a rule deciding it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RawRefusal {
    /// Unparsed bytes on a web port, and no `proto=tcp` rule admits them.
    WebPort,
}

impl fmt::Display for RawRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RawRefusal::WebPort => f.write_str(
                "neither TLS nor HTTP on a web port (only a `proto=tcp` rule admits raw TCP there)",
            ),
        }
    }
}

/// One layer's rules, parsed, before compilation.
#[derive(Clone, Debug)]
pub struct LayerRules {
    pub layer: Layer,
    pub source: Arc<str>,
    pub allow: Vec<(Rule, String)>,
    pub deny: Vec<(Rule, String)>,
}

impl LayerRules {
    pub fn new(layer: Layer, source: impl Into<Arc<str>>) -> LayerRules {
        LayerRules {
            layer,
            source: source.into(),
            allow: Vec::new(),
            deny: Vec::new(),
        }
    }

    /// Adds a rule with its text as written.
    pub fn push(&mut self, action: Action, rule: Rule, text: impl Into<String>) {
        let list = match action {
            Action::Allow => &mut self.allow,
            Action::Deny => &mut self.deny,
        };
        list.push((rule, text.into()));
    }
}

struct Entry {
    rule: Rule,
    origin: RuleOrigin,
}

/// The Fx hash (rustc's): a multiply and a rotate per word, several times faster than SipHash
/// on short host names. Flooding is no concern here: only rule domains, which the user wrote,
/// are ever inserted; a request's host is only looked up.
#[derive(Default)]
struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let word = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
            self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
        }
        for &byte in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(byte)).wrapping_mul(SEED);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type FxMap<V> = HashMap<Box<str>, V, BuildHasherDefault<FxHasher>>;

/// Rule numbers per domain key, each list in ascending order (layer order, then list order).
#[derive(Default)]
struct Index {
    exact: FxMap<Vec<u32>>,
    suffix: FxMap<Vec<u32>>,
    any: Vec<u32>,
}

impl Index {
    fn insert(&mut self, id: u32, rule: &Rule) {
        let Some(domains) = &rule.domains else {
            self.any.push(id);
            return;
        };
        for domain in domains {
            let list = match domain {
                DomainPattern::Any => &mut self.any,
                DomainPattern::Exact(host) => self.exact.entry(host.as_str().into()).or_default(),
                DomainPattern::Subdomains(suffix) => {
                    self.suffix.entry(suffix.as_str().into()).or_default()
                }
            };
            // A rule listing two patterns that both land in one list appears once.
            if list.last() != Some(&id) {
                list.push(id);
            }
        }
    }

    /// The lowest-numbered rule among the candidates that matches in full.
    fn first_match(&self, entries: &[Entry], request: &Request, path: Option<&str>) -> Option<u32> {
        let check = |list: &[u32]| {
            list.iter().copied().find(|&id| {
                let entry = &entries[id as usize];
                entry.rule.matches(entry.origin.action, request, path)
            })
        };
        let mut best = check(&self.any);
        let mut consider = |list: Option<&Vec<u32>>| {
            if let Some(list) = list {
                // Lists are sorted, so only the ids below the current best can improve it.
                let bound = best.map_or(list.len(), |b| list.partition_point(|&id| id < b));
                if let Some(id) = check(&list[..bound]) {
                    best = Some(id);
                }
            }
        };
        let name = request.host.as_str();
        if !self.exact.is_empty() {
            consider(self.exact.get(name));
        }
        if request.host.is_name() && !self.suffix.is_empty() {
            let mut rest = name;
            while let Some(dot) = rest.find('.') {
                rest = &rest[dot + 1..];
                consider(self.suffix.get(rest));
            }
        }
        best
    }
}

/// Every layer's rules, compiled. Immutable: a changed file makes a new `Policy`.
pub struct Policy {
    entries: Vec<Entry>,
    deny: Index,
    allow: Index,
}

impl Policy {
    /// Compiles layers (in any order; they are sorted by [`Layer`], stably).
    pub fn new(mut layers: Vec<LayerRules>) -> Policy {
        layers.sort_by_key(|layer| layer.layer);
        let mut policy = Policy {
            entries: Vec::new(),
            deny: Index::default(),
            allow: Index::default(),
        };
        for layer in layers {
            for (action, list) in [(Action::Deny, layer.deny), (Action::Allow, layer.allow)] {
                for (index, (rule, text)) in list.into_iter().enumerate() {
                    let id = u32::try_from(policy.entries.len()).expect("fewer than 2^32 rules");
                    match action {
                        Action::Deny => policy.deny.insert(id, &rule),
                        Action::Allow => policy.allow.insert(id, &rule),
                    }
                    let origin = RuleOrigin {
                        layer: layer.layer,
                        source: layer.source.clone(),
                        action,
                        index,
                        text: text.into(),
                        named_ips: named_ips(&rule),
                        raw_tcp: rule.raw_tcp,
                    };
                    policy.entries.push(Entry { rule, origin });
                }
            }
        }
        policy
    }

    /// A policy with no rules: every request is asked.
    pub fn empty() -> Policy {
        Policy::new(Vec::new())
    }

    /// How many rules, all layers together.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Allow, deny or ask for `request`, and which rule decided.
    ///
    /// A path with two readings (see [`super::canonical`]) is denied if either is denied and
    /// allowed only if both are allowed.
    pub fn decide(&self, request: &Request) -> Decision<'_> {
        self.decide_with(request, |path| self.decide_one(request, path))
    }

    /// The decision for bytes hh will not parse (a raw TCP splice, a `bypass_proxy` host): as
    /// [`Policy::decide`], except that a deny rule whose `domain` and `port` match denies even
    /// when it also has `method` or `path` terms, because nothing would enforce those on an
    /// opaque stream (`domain=x path=/admin/*` must not be reachable by splicing to `x`).
    pub fn decide_opaque(&self, request: &Request) -> Decision<'_> {
        let decision = self.decide(request);
        if decision.verdict != Verdict::Allow {
            return decision;
        }
        // A scan, not the index: opaque connections are rare, and this path must stay obvious.
        match self.entries.iter().find(|entry| {
            entry.origin.action == Action::Deny
                && entry.rule.matches_connection(Action::Deny, request)
        }) {
            Some(entry) => Decision {
                verdict: Verdict::Deny,
                rule: Some(&entry.origin),
            },
            None => decision,
        }
    }

    /// The decision for raw TCP: bytes that are neither TLS nor HTTP/1, which hh can only
    /// splice. As [`Policy::decide_opaque`], and on a web port of the host (80, 443, or a port an
    /// HTTP rule for the host names) only an allow rule with `proto=tcp` admits them, and no
    /// one is asked: an allowed web host's port must not become a pipe for another protocol
    /// (a TLS alert record, then a handshake with another name, reaches every tenant of a CDN
    /// edge). Elsewhere (`domain=x port=22`) the port's own rule admits them, as before.
    pub fn decide_raw(&self, request: &Request) -> Result<Decision<'_>, RawRefusal> {
        let decision = self.decide_opaque(request);
        if decision.verdict == Verdict::Deny || !self.is_web_port(&request.host, request.port) {
            return Ok(decision);
        }
        self.entries
            .iter()
            .find(|entry| {
                entry.origin.action == Action::Allow
                    && entry.rule.raw_tcp
                    && entry.rule.matches(Action::Allow, request, None)
            })
            .map(|entry| Decision {
                verdict: Verdict::Allow,
                rule: Some(&entry.origin),
            })
            .ok_or(RawRefusal::WebPort)
    }

    /// Whether `port` is a web port of `host`: 80 and 443 always, and any port that an allow
    /// rule with `method` or `path` terms names for the host.
    pub fn is_web_port(&self, host: &super::Host, port: u16) -> bool {
        WEB_PORTS.contains(&port)
            || self.entries.iter().any(|entry| {
                let rule = &entry.rule;
                entry.origin.action == Action::Allow
                    && (rule.methods.is_some() || rule.paths.is_some())
                    && rule
                        .ports
                        .as_ref()
                        .is_some_and(|ports| ports.contains(&port))
                    && rule
                        .domains
                        .as_ref()
                        .is_none_or(|domains| domains.iter().any(|d| d.matches(host)))
            })
    }

    /// Whether an allow rule names the address `ip` exactly (`domain=10.0.0.5`): only such a
    /// rule lets the proxy dial an address its guard refuses.
    pub fn allow_names(&self, ip: IpAddr) -> bool {
        self.entries.iter().any(|entry| {
            entry.origin.action == Action::Allow && entry.origin.named_ips.contains(&ip)
        })
    }

    /// The first deny rule that names the address `ip` exactly (`domain=10.0.0.5`) and whose
    /// `port` term covers `port` (a deny rule without one covers every port), whatever its
    /// `method` and `path` terms say: what the proxy checks at dial time for the address a *name*
    /// resolved to, where one connection carries requests such terms could not tell apart.
    pub fn deny_naming(&self, ip: IpAddr, port: u16) -> Option<&RuleOrigin> {
        let host = super::Host::from_ip(ip);
        let connection = Request::tcp(host.clone(), port);
        self.deny
            .exact
            .get(host.as_str())?
            .iter()
            .map(|&id| &self.entries[id as usize])
            .find(|entry| {
                entry.origin.named_ips.contains(&ip)
                    && entry.rule.matches_connection(Action::Deny, &connection)
            })
            .map(|entry| &entry.origin)
    }

    /// The same decision by a linear scan over every rule: the reference the index is checked
    /// against in tests and benchmarks.
    pub fn decide_by_scan(&self, request: &Request) -> Decision<'_> {
        self.decide_with(request, |path| {
            let first = |action: Action| {
                self.entries
                    .iter()
                    .find(|e| e.origin.action == action && e.rule.matches(action, request, path))
                    .map(|e| &e.origin)
            };
            if let Some(origin) = first(Action::Deny) {
                return Decision {
                    verdict: Verdict::Deny,
                    rule: Some(origin),
                };
            }
            match first(Action::Allow) {
                Some(origin) => Decision {
                    verdict: Verdict::Allow,
                    rule: Some(origin),
                },
                None => Decision {
                    verdict: Verdict::Ask,
                    rule: None,
                },
            }
        })
    }

    fn decide_with<'p>(
        &'p self,
        request: &Request,
        one: impl Fn(Option<&str>) -> Decision<'p>,
    ) -> Decision<'p> {
        let Some(http) = &request.http else {
            return one(None);
        };
        // Deny if any reading is denied; allow only if every reading is allowed; else ask.
        let mut decisions = http.path.readings().map(|path| one(Some(path)));
        let first = decisions
            .next()
            .expect("a path has at least its routed reading");
        let mut all_allowed = first.verdict == Verdict::Allow;
        if first.verdict == Verdict::Deny {
            return first;
        }
        for decision in decisions {
            match decision.verdict {
                Verdict::Deny => return decision,
                Verdict::Allow => {}
                Verdict::Ask => all_allowed = false,
            }
        }
        if all_allowed {
            first
        } else {
            Decision {
                verdict: Verdict::Ask,
                rule: None,
            }
        }
    }

    fn decide_one(&self, request: &Request, path: Option<&str>) -> Decision<'_> {
        let origin = |id: u32| Some(&self.entries[id as usize].origin);
        if let Some(id) = self.deny.first_match(&self.entries, request, path) {
            return Decision {
                verdict: Verdict::Deny,
                rule: origin(id),
            };
        }
        if let Some(id) = self.allow.first_match(&self.entries, request, path) {
            return Decision {
                verdict: Verdict::Allow,
                rule: origin(id),
            };
        }
        Decision {
            verdict: Verdict::Ask,
            rule: None,
        }
    }
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("rules", &self.entries.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::rules::{Host, Method, NormPath};

    fn layer(layer: Layer, allow: &[&str], deny: &[&str]) -> LayerRules {
        let mut rules = LayerRules::new(layer, format!("{layer}.toml"));
        for (action, list) in [(Action::Allow, allow), (Action::Deny, deny)] {
            for text in list {
                rules.push(action, Rule::parse(text).unwrap(), *text);
            }
        }
        rules
    }

    fn decide(policy: &Policy, method: &str, url: &str) -> (Verdict, Option<String>) {
        let request = Request::from_url(method, url).unwrap();
        let decision = policy.decide(&request);
        assert_eq!(
            decision,
            policy.decide_by_scan(&request),
            "index and scan disagree on {url}"
        );
        (
            decision.verdict,
            decision
                .rule
                .map(|r| format!("{} {}[{}]", r.layer, r.action.list_name(), r.index)),
        )
    }

    #[test]
    fn a_deny_rule_naming_an_address_is_found_for_that_address_and_port_only() {
        let policy = Policy::new(vec![layer(
            Layer::Workspace,
            &["domain=10.0.0.9"],
            &[
                "domain=*",
                "domain=10.0.0.5 path=/admin/*",
                "domain=10.0.0.6,a.test port=8080",
                "domain=*.test",
            ],
        )]);
        let found = |ip: &str, port| {
            policy
                .deny_naming(ip.parse().unwrap(), port)
                .map(|rule| rule.text.to_string())
        };
        // Path terms do not narrow it: a connection to a name carries any path.
        assert_eq!(
            found("10.0.0.5", 443).as_deref(),
            Some("domain=10.0.0.5 path=/admin/*")
        );
        assert_eq!(
            found("10.0.0.6", 8080).as_deref(),
            Some("domain=10.0.0.6,a.test port=8080")
        );
        assert_eq!(found("10.0.0.6", 443), None);
        // `domain=*` names no address; an allow rule naming one is not a deny.
        assert_eq!(found("10.0.0.7", 443), None);
        assert_eq!(found("10.0.0.9", 443), None);
    }

    #[test]
    fn deny_wins_over_allow_and_no_match_asks() {
        let policy = Policy::new(vec![layer(
            Layer::Workspace,
            &[
                "method=GET,POST domain=api.github.com path=/repos/* port=443",
                "domain=*.crates.io",
            ],
            &[
                "domain=*.evil.example",
                "domain=static.crates.io path=/secret/*",
            ],
        )]);
        let cases = [
            (
                "GET",
                "https://api.github.com/repos/a/b",
                Verdict::Allow,
                Some("workspace allowlist[0]"),
            ),
            (
                "DELETE",
                "https://api.github.com/repos/a/b",
                Verdict::Ask,
                None,
            ),
            (
                "GET",
                "https://static.crates.io/x",
                Verdict::Allow,
                Some("workspace allowlist[1]"),
            ),
            (
                "GET",
                "https://static.crates.io/secret/k",
                Verdict::Deny,
                Some("workspace denylist[1]"),
            ),
            ("GET", "https://crates.io/", Verdict::Ask, None),
            (
                "GET",
                "https://a.evil.example/",
                Verdict::Deny,
                Some("workspace denylist[0]"),
            ),
            (
                "GET",
                "http://a.evil.example:9999/",
                Verdict::Deny,
                Some("workspace denylist[0]"),
            ),
            ("GET", "https://evil.example/", Verdict::Ask, None),
        ];
        for (method, url, verdict, rule) in cases {
            assert_eq!(
                decide(&policy, method, url),
                (verdict, rule.map(String::from)),
                "{method} {url}"
            );
        }
    }

    #[test]
    fn a_deny_in_any_layer_wins_and_the_first_layer_is_reported() {
        let policy = Policy::new(vec![
            layer(Layer::Template, &["domain=*"], &[]),
            layer(Layer::Workspace, &["domain=a.com"], &["domain=*.b.com"]),
            layer(Layer::Global, &[], &["domain=x.b.com"]),
        ]);
        let cases = [
            (
                "https://x.b.com/",
                Verdict::Deny,
                Some("global denylist[0]"),
            ),
            (
                "https://y.b.com/",
                Verdict::Deny,
                Some("workspace denylist[0]"),
            ),
            (
                "https://a.com/",
                Verdict::Allow,
                Some("workspace allowlist[0]"),
            ),
            (
                "https://c.com/",
                Verdict::Allow,
                Some("template allowlist[0]"),
            ),
            ("http://c.com:22/", Verdict::Ask, None),
        ];
        for (url, verdict, rule) in cases {
            assert_eq!(
                decide(&policy, "GET", url),
                (verdict, rule.map(String::from)),
                "{url}"
            );
        }
    }

    #[test]
    fn an_exact_deny_path_covers_its_trailing_slash_but_an_allow_path_does_not() {
        let policy = Policy::new(vec![layer(
            Layer::Workspace,
            &["domain=a.test path=/public", "domain=b.test"],
            &["domain=b.test path=/admin"],
        )]);
        let cases = [
            ("https://b.test/admin", Verdict::Deny),
            ("https://b.test/admin/", Verdict::Deny),
            ("https://b.test/admin/.", Verdict::Deny),
            ("https://b.test/administrator", Verdict::Allow),
            ("https://a.test/public", Verdict::Allow),
            ("https://a.test/public/", Verdict::Ask),
        ];
        for (url, verdict) in cases {
            assert_eq!(decide(&policy, "GET", url).0, verdict, "{url}");
        }
    }

    #[test]
    fn an_opaque_connection_is_denied_by_a_deny_rule_it_could_not_honour() {
        let policy = Policy::new(vec![layer(
            Layer::Workspace,
            &["domain=x.test port=80,443", "domain=y.test"],
            &[
                "domain=x.test path=/admin/*",
                "method=DELETE domain=y.test port=443",
            ],
        )]);
        let tcp = |host: &str, port: u16| Request::tcp(Host::parse(host).unwrap(), port);
        // Parsed HTTP is decided per request; a raw connection is all or nothing.
        assert_eq!(policy.decide(&tcp("x.test", 80)).verdict, Verdict::Allow);
        assert_eq!(
            policy.decide_opaque(&tcp("x.test", 80)).verdict,
            Verdict::Deny
        );
        assert_eq!(
            policy.decide_opaque(&tcp("y.test", 443)).verdict,
            Verdict::Deny
        );
        // The DELETE rule names port 443 only.
        assert_eq!(
            policy.decide_opaque(&tcp("y.test", 80)).verdict,
            Verdict::Allow
        );
    }

    #[test]
    fn raw_tcp_on_a_web_port_needs_a_proto_tcp_rule() {
        let policy = Policy::new(vec![layer(
            Layer::Workspace,
            &[
                "domain=web.test",
                "domain=ssh.test port=22",
                "domain=api.test port=8080",
                "domain=api.test path=/v1/* port=8080",
                "domain=pipe.test port=443 proto=tcp",
            ],
            &["domain=ssh.test port=22 proto=tcp"],
        )]);
        let tcp = |host: &str, port: u16| Request::tcp(Host::parse(host).unwrap(), port);
        let raw = |host: &str, port: u16| policy.decide_raw(&tcp(host, port)).map(|d| d.verdict);
        // `domain=web.test` admits web.test's HTTP on 443, not raw bytes there.
        assert_eq!(policy.decide(&tcp("web.test", 443)).verdict, Verdict::Allow);
        assert_eq!(raw("web.test", 443), Err(RawRefusal::WebPort));
        // No rule and a web port: refused, not asked (an answer could not make a rule for it).
        assert_eq!(raw("nobody.test", 80), Err(RawRefusal::WebPort));
        // Elsewhere no rule means ask, as for any connection.
        assert_eq!(raw("nobody.test", 5432), Ok(Verdict::Ask));
        // An HTTP rule naming a port makes it a web port of its hosts.
        assert!(policy.is_web_port(&Host::parse("api.test").unwrap(), 8080));
        assert!(!policy.is_web_port(&Host::parse("other.test").unwrap(), 8080));
        assert_eq!(raw("api.test", 8080), Err(RawRefusal::WebPort));
        assert_eq!(raw("pipe.test", 443), Ok(Verdict::Allow));
        // A `proto=tcp` deny denies the raw connection only.
        assert_eq!(raw("ssh.test", 22), Ok(Verdict::Deny));
        let get = Request::from_url("GET", "http://ssh.test:22/").unwrap();
        assert_eq!(policy.decide(&get).verdict, Verdict::Allow);
    }

    #[test]
    fn a_deny_path_holds_in_any_ascii_case_and_an_allow_path_does_not_widen() {
        let policy = Policy::new(vec![layer(
            Layer::Workspace,
            &["domain=a.test", "domain=b.test path=/Repos/*"],
            &["domain=a.test path=/admin/*"],
        )]);
        let decide = |url: &str| {
            policy
                .decide(&Request::from_url("GET", url).unwrap())
                .verdict
        };
        for url in [
            "https://a.test/admin/x",
            "https://a.test/ADMIN/x",
            "https://a.test/Admin/",
        ] {
            assert_eq!(decide(url), Verdict::Deny, "{url}");
        }
        assert_eq!(decide("https://a.test/adminx"), Verdict::Allow);
        assert_eq!(decide("https://b.test/Repos/x"), Verdict::Allow);
        assert_eq!(decide("https://b.test/repos/x"), Verdict::Ask);
    }

    #[test]
    fn a_deny_rule_naming_an_encoded_slash_holds_against_double_encoding() {
        let policy = Policy::new(vec![layer(
            Layer::Workspace,
            &["domain=gl.test"],
            &["domain=gl.test path=/api/grp%2Fsecret/*"],
        )]);
        for url in [
            "https://gl.test/api/grp%2Fsecret/issues",
            "https://gl.test/api/grp%252Fsecret/issues",
            "https://gl.test/api/grp%25252Fsecret/issues",
        ] {
            assert_eq!(decide(&policy, "GET", url).0, Verdict::Deny, "{url}");
        }
    }

    #[test]
    fn encoded_slashes_and_double_encoding_cannot_reach_a_denied_path() {
        let policy = Policy::new(vec![layer(
            Layer::Workspace,
            &["domain=a.com path=/public/*", "domain=b.com"],
            &["domain=b.com path=/admin/*"],
        )]);
        let cases = [
            ("https://a.com/public/x", Verdict::Allow),
            ("https://a.com/public/../admin", Verdict::Ask),
            ("https://a.com/public/%2e%2e/admin", Verdict::Ask),
            ("https://a.com/public%2F..%2Fadmin/x", Verdict::Ask),
            ("https://a.com/public/%252e%252e/admin", Verdict::Ask),
            ("https://a.com/public/a%2Fb", Verdict::Allow),
            ("https://b.com/admin/x", Verdict::Deny),
            ("https://b.com/%61dmin/x", Verdict::Deny),
            ("https://b.com/%2561dmin/x", Verdict::Deny),
            ("https://b.com/x/..%2Fadmin/x", Verdict::Deny),
            ("https://b.com/x%5C..%5Cadmin/x", Verdict::Deny),
            ("https://b.com/x/%252e%252e/admin/x", Verdict::Deny),
            ("https://b.com/admin%2Fx", Verdict::Deny),
            // Deny patterns fold ASCII case (servers that route case-insensitively).
            ("https://b.com/ADMIN/x", Verdict::Deny),
            ("https://a.com/public/..;/admin", Verdict::Ask),
            ("https://a.com/public/%2e%2e;/admin", Verdict::Ask),
            ("https://b.com/admin;x/y", Verdict::Deny),
            ("https://b.com/admin%3bx/y", Verdict::Deny),
        ];
        for (url, verdict) in cases {
            assert_eq!(decide(&policy, "GET", url).0, verdict, "{url}");
        }
    }

    #[test]
    fn raw_tcp_is_decided_by_rules_without_method_or_path() {
        let policy = Policy::new(vec![layer(
            Layer::Workspace,
            &["domain=db.example port=5432", "domain=web.example path=/*"],
            &["method=POST"],
        )]);
        let tcp = |host: &str, port| {
            policy
                .decide(&Request::tcp(Host::parse(host).unwrap(), port))
                .verdict
        };
        assert_eq!(tcp("db.example", 5432), Verdict::Allow);
        assert_eq!(tcp("db.example", 443), Verdict::Ask);
        assert_eq!(tcp("web.example", 443), Verdict::Ask);
    }

    // --- properties ---------------------------------------------------------------------------

    fn arb_host() -> impl Strategy<Value = String> {
        prop::sample::select(vec![
            "a.com",
            "x.a.com",
            "y.x.a.com",
            "b.com",
            "x.b.com",
            "a.org",
            "127.0.0.1",
            "10.0.0.1",
            "::1",
        ])
        .prop_map(String::from)
    }

    fn arb_rule() -> impl Strategy<Value = String> {
        let domain = prop::sample::select(vec![
            "",
            "domain=* ",
            "domain=a.com ",
            "domain=*.a.com ",
            "domain=x.a.com,b.com ",
            "domain=*.com ",
            "domain=127.1 ",
            "domain=[::1] ",
            "domain=*.x.a.com,a.org ",
        ]);
        let method = prop::sample::select(vec!["", "method=GET ", "method=POST,PUT "]);
        let path = prop::sample::select(vec![
            "",
            "path=/x/* ",
            "path=/x,/y ",
            "path=* ",
            "path=/*/z ",
        ]);
        let port = prop::sample::select(vec!["", "port=443 ", "port=80,22 "]);
        (domain, method, path, port)
            .prop_map(|(d, m, p, o)| format!("{d}{m}{p}{o}"))
            .prop_filter("not empty", |t| !t.trim().is_empty())
    }

    fn arb_request() -> impl Strategy<Value = Request> {
        let method = prop::sample::select(vec!["GET", "POST", "PUT"]);
        let path = prop::sample::select(vec![
            "/",
            "/x/1",
            "/x",
            "/y",
            "/q/z",
            "/x%2F..%2Fy",
            "/%2578/1",
        ]);
        let port = prop::sample::select(vec![80u16, 443, 22, 8080]);
        (arb_host(), prop::option::of((method, path)), port).prop_map(|(host, http, port)| {
            let host = Host::parse(&host).unwrap();
            match http {
                Some((method, path)) => Request::http(
                    Method::parse(method).unwrap(),
                    host,
                    port,
                    NormPath::parse(path).unwrap(),
                ),
                None => Request::tcp(host, port),
            }
        })
    }

    fn arb_layers() -> impl Strategy<Value = Vec<LayerRules>> {
        let list = || prop::collection::vec(arb_rule(), 0..6);
        prop::collection::vec((list(), list()), 1..4).prop_map(|layers| {
            layers
                .into_iter()
                .zip([Layer::Global, Layer::Workspace, Layer::Template])
                .map(|((allow, deny), name)| {
                    let allow: Vec<&str> = allow.iter().map(String::as_str).collect();
                    let deny: Vec<&str> = deny.iter().map(String::as_str).collect();
                    layer(name, &allow, &deny)
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn the_index_decides_exactly_like_a_linear_scan(layers in arb_layers(), request in arb_request()) {
            let policy = Policy::new(layers);
            prop_assert_eq!(policy.decide(&request), policy.decide_by_scan(&request));
        }

        #[test]
        fn deny_wins_whenever_any_deny_rule_matches(layers in arb_layers(), request in arb_request()) {
            let any_deny = layers.iter().any(|l| l.deny.iter().any(|(rule, _)| {
                match &request.http {
                    None => rule.matches(Action::Deny, &request, None),
                    Some(http) => http.path.readings().any(|p| rule.matches(Action::Deny, &request, Some(p))),
                }
            }));
            let policy = Policy::new(layers);
            prop_assert_eq!(policy.decide(&request).verdict == Verdict::Deny, any_deny);
        }

        #[test]
        fn canonical_forms_of_one_name_decide_alike(
            layers in arb_layers(),
            (plain, variant) in prop::sample::select(vec![
                ("a.com", "A.COM."), ("x.a.com", "X.a.Com"), ("127.0.0.1", "0x7f.1"), ("127.0.0.1", "2130706433"),
                ("127.0.0.1", "0177.0.0.1"), ("127.0.0.1", "[::ffff:127.0.0.1]"), ("::1", "[0:0::1]"),
            ]),
            port in prop::sample::select(vec![80u16, 443, 22]),
        ) {
            let policy = Policy::new(layers);
            let request = |host: &str| Request::tcp(Host::parse(host).unwrap(), port);
            prop_assert_eq!(policy.decide(&request(plain)), policy.decide(&request(variant)));
        }
    }
}
