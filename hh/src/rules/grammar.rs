//! The rule grammar: `method=GET,POST domain=api.example.com path=/api/*,/auth/* port=443,8443`.
//!
//! A rule is space-separated `key=value` terms, each value a comma list; each key at most once:
//!
//! - `method`: HTTP method tokens (uppercased).
//! - `domain`: an exact host (canonicalized like a request's, so `0x7f.1` means `127.0.0.1`),
//!   `*` for any host, or `*.suffix` for the subdomains of `suffix`, never `suffix` itself.
//! - `path`: an absolute path, exact, or with `*` wildcards that match any run of characters,
//!   `/` included. Written in the routed form of [`super::NormPath`] (decoded, dots resolved).
//! - `port`: port numbers.
//! - `proto=tcp`: the rule is about unparsed TCP, bytes that are neither TLS nor HTTP/1. Only
//!   such a rule admits them on a web port ([`Policy::decide_raw`]); it cannot have `method`
//!   or `path` terms (raw bytes have neither). As an allow rule it admits the host's parsed
//!   requests too (it is wider than the same rule without `proto`); as a deny rule it denies
//!   only the unparsed connections.
//!
//! A missing term matches anything, except `port`: an allow rule without `port` admits only the
//! web ports 80 and 443, so raw TCP to another port is always an explicit choice; a deny rule
//! without `port` denies every port. A rule with `method` or `path` only matches HTTP requests.
//!
//! [`Policy::decide_raw`]: super::Policy::decide_raw
//!
//! [`Rule`]'s `Display` prints the canonical text, which parses back to the same rule.

use std::fmt;

use super::{
    canonical::{Method, NormPath, Request, parse_port},
    host::{Host, HostError},
};

/// The ports an allow rule without a `port` term admits.
pub const WEB_PORTS: [u16; 2] = [80, 443];

/// What a rule does when it matches.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub enum Action {
    Allow,
    Deny,
}

impl Action {
    /// The list a rule of this action lives in, in `harness-rules.toml`'s `[network]` table.
    pub fn list_name(self) -> &'static str {
        match self {
            Action::Allow => "allowlist",
            Action::Deny => "denylist",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Allow => "allow",
            Action::Deny => "deny",
        })
    }
}

/// One `domain` value.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum DomainPattern {
    /// `*`: any host.
    Any,
    /// An exact host or IP literal.
    Exact(Host),
    /// `*.suffix`: every name that ends in `.suffix`, never `suffix` itself.
    Subdomains(Host),
}

impl DomainPattern {
    /// Parses one `domain` value; the error says what was expected.
    pub fn parse(value: &str) -> Result<DomainPattern, String> {
        if value == "*" {
            return Ok(DomainPattern::Any);
        }
        let describe = |e: HostError| e.to_string();
        if let Some(suffix) = value.strip_prefix("*.") {
            let suffix = Host::parse(suffix).map_err(describe)?;
            if !suffix.is_name() {
                return Err("`*.` takes a domain name, not an IP address".into());
            }
            return Ok(DomainPattern::Subdomains(suffix));
        }
        if value.contains('*') {
            return Err("`*` may only stand alone or start `*.suffix`".into());
        }
        Host::parse(value)
            .map(DomainPattern::Exact)
            .map_err(describe)
    }

    pub fn matches(&self, host: &Host) -> bool {
        match self {
            DomainPattern::Any => true,
            DomainPattern::Exact(exact) => exact == host,
            DomainPattern::Subdomains(suffix) => {
                let (name, suffix) = (host.as_str(), suffix.as_str());
                host.is_name()
                    && name.len() > suffix.len() + 1
                    && name.ends_with(suffix)
                    && name.as_bytes()[name.len() - suffix.len() - 1] == b'.'
            }
        }
    }
}

impl fmt::Display for DomainPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DomainPattern::Any => f.write_str("*"),
            DomainPattern::Exact(host) => write!(f, "{host}"),
            DomainPattern::Subdomains(suffix) => write!(f, "*.{suffix}"),
        }
    }
}

/// One `path` value: literal pieces between `*` wildcards.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct PathPattern {
    text: Box<str>,
}

impl PathPattern {
    fn parse(value: &str) -> Result<PathPattern, String> {
        if value == "*" {
            return Ok(PathPattern { text: "*".into() });
        }
        if !value.starts_with('/') {
            return Err("a path starting with `/` (or `*`)".into());
        }
        if value.contains(['?', '#']) {
            return Err(
                "a path without `?` or `#` (queries and fragments are never matched)".into(),
            );
        }
        // Written like the routed reading: decoded once, dots resolved. A pattern that the
        // normalizer would change is normalized here, so `path=/a/./b` means `/a/b`.
        let normalized = NormPath::parse(value).map_err(|e| format!("a valid path ({e})"))?;
        Ok(PathPattern {
            text: normalized.as_str().into(),
        })
    }

    /// `*`: every path.
    pub fn any() -> PathPattern {
        PathPattern { text: "*".into() }
    }

    /// Glob match: `*` matches any run of characters, `/` included.
    pub fn matches(&self, path: &str) -> bool {
        glob_match(self.text.as_bytes(), path.as_bytes())
    }

    /// [`PathPattern::matches`], except that a deny pattern also covers its path with a trailing
    /// `/` (`path=/admin` denies `/admin/` too: most servers route both alike). An allow pattern
    /// is not widened.
    ///
    /// A deny pattern also matches whatever the ASCII case: many servers route paths
    /// case-insensitively (GitHub's API does for owners and repositories), so `/Admin` must not
    /// slip past `path=/admin*`.
    pub fn matches_as(&self, action: Action, path: &str) -> bool {
        if action == Action::Allow {
            return self.matches(path);
        }
        let folded = |text: &str| {
            glob_match_by(self.text.as_bytes(), text.as_bytes(), |a, b| {
                a.eq_ignore_ascii_case(&b)
            })
        };
        folded(path)
            || path
                .strip_suffix('/')
                .is_some_and(|bare| !bare.is_empty() && folded(bare))
    }
}

/// Prints the pattern so it parses back: a space or a comma (decoded from `%20`, `%2C`) would
/// split the rule's terms or the value list, and a `?` or `#` would start a query or fragment,
/// so they are written percent-encoded.
impl fmt::Display for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.text.chars() {
            if matches!(c, ',' | '?' | '#') || c.is_ascii_whitespace() {
                write!(f, "%{:02X}", c as u32)?;
            } else {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

/// Iterative wildcard match with one backtrack point: linear in practice, never exponential.
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    glob_match_by(pattern, text, |a, b| a == b)
}

/// [`glob_match`] with `same` deciding whether a pattern byte matches a text byte.
fn glob_match_by(pattern: &[u8], text: &[u8], same: impl Fn(u8, u8) -> bool) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && same(pattern[p], text[t]) {
            p += 1;
            t += 1;
        } else if let Some((star_p, star_t)) = star {
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

/// A parsed rule. `None` for a term that was not written.
#[derive(Clone, PartialEq, Eq, Hash, Debug, Default)]
pub struct Rule {
    pub methods: Option<Vec<Method>>,
    pub domains: Option<Vec<DomainPattern>>,
    pub paths: Option<Vec<PathPattern>>,
    pub ports: Option<Vec<u16>>,
    /// `proto=tcp`: a rule for unparsed TCP (see the module docs).
    pub raw_tcp: bool,
}

/// Why a rule did not parse: where (1-based character column in the rule) and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {kind}")]
pub struct RuleError {
    pub column: usize,
    pub kind: RuleErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleErrorKind {
    #[error(
        "the rule is empty; expected terms like `domain=example.com` (`domain=*` for any host)"
    )]
    Empty,
    #[error("`{term}` is not a `key=value` term")]
    NotKeyValue { term: String },
    #[error("unknown key `{key}`; expected method, domain, path, port or proto")]
    UnknownKey { key: String },
    #[error("`{key}` appears twice; put every value in one comma list")]
    DuplicateKey { key: String },
    #[error("`{key}` has an empty value in its list")]
    EmptyValue { key: String },
    #[error("`{value}` is not an HTTP method")]
    Method { value: String },
    #[error("domain `{value}`: expected a host, `*` or `*.suffix`: {reason}")]
    Domain { value: String, reason: String },
    #[error("path `{value}`: expected {expected}")]
    Path { value: String, expected: String },
    #[error("port `{value}`: expected a number from 1 to 65535")]
    Port { value: String },
    #[error("proto `{value}`: expected `tcp` (unparsed TCP; parsed HTTP needs no proto term)")]
    Proto { value: String },
    #[error(
        "`proto=tcp` cannot go with `method` or `path`: unparsed bytes have neither; \
         write two rules"
    )]
    ProtoWithHttpTerms,
}

impl Rule {
    /// Parses a rule's text.
    pub fn parse(text: &str) -> Result<Rule, RuleError> {
        let mut rule = Rule::default();
        let mut any = false;
        let mut proto_column = 1;
        for (offset, term) in split_terms(text) {
            any = true;
            let column = text[..offset].chars().count() + 1;
            let error = |kind| RuleError { column, kind };
            let (key, value) = term
                .split_once('=')
                .ok_or_else(|| error(RuleErrorKind::NotKeyValue { term: term.into() }))?;
            let values: Vec<&str> = value.split(',').collect();
            if values.iter().any(|v| v.is_empty()) {
                return Err(error(RuleErrorKind::EmptyValue { key: key.into() }));
            }
            let duplicate = || error(RuleErrorKind::DuplicateKey { key: key.into() });
            match key {
                "method" => {
                    let methods = values
                        .iter()
                        .map(|v| {
                            Method::parse(v)
                                .map_err(|_| error(RuleErrorKind::Method { value: (*v).into() }))
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    set_once(&mut rule.methods, methods).ok_or_else(duplicate)?;
                }
                "domain" => {
                    let domains = values
                        .iter()
                        .map(|v| {
                            DomainPattern::parse(v).map_err(|reason| {
                                error(RuleErrorKind::Domain {
                                    value: (*v).into(),
                                    reason,
                                })
                            })
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    set_once(&mut rule.domains, domains).ok_or_else(duplicate)?;
                }
                "path" => {
                    let paths = values
                        .iter()
                        .map(|v| {
                            PathPattern::parse(v).map_err(|expected| {
                                error(RuleErrorKind::Path {
                                    value: (*v).into(),
                                    expected,
                                })
                            })
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    set_once(&mut rule.paths, paths).ok_or_else(duplicate)?;
                }
                "port" => {
                    let ports = values
                        .iter()
                        .map(|v| {
                            parse_port(v)
                                .map_err(|_| error(RuleErrorKind::Port { value: (*v).into() }))
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    set_once(&mut rule.ports, ports).ok_or_else(duplicate)?;
                }
                "proto" => {
                    if rule.raw_tcp {
                        return Err(duplicate());
                    }
                    if values != ["tcp"] {
                        return Err(error(RuleErrorKind::Proto {
                            value: value.into(),
                        }));
                    }
                    rule.raw_tcp = true;
                    proto_column = column;
                }
                _ => return Err(error(RuleErrorKind::UnknownKey { key: key.into() })),
            }
        }
        if !any {
            return Err(RuleError {
                column: 1,
                kind: RuleErrorKind::Empty,
            });
        }
        if rule.raw_tcp && (rule.methods.is_some() || rule.paths.is_some()) {
            return Err(RuleError {
                column: proto_column,
                kind: RuleErrorKind::ProtoWithHttpTerms,
            });
        }
        Ok(rule)
    }

    /// Whether this rule, acting as `action`, matches `request` on the given path reading.
    pub fn matches(&self, action: Action, request: &Request, path: Option<&str>) -> bool {
        if !self.matches_connection(action, request) {
            return false;
        }
        if self.raw_tcp && action == Action::Deny && request.http.is_some() {
            // A `proto=tcp` deny is about unparsed bytes only.
            return false;
        }
        if let Some(methods) = &self.methods {
            match &request.http {
                Some(http) if methods.contains(&http.method) => {}
                _ => return false,
            }
        }
        if let Some(paths) = &self.paths {
            match path {
                Some(path) if paths.iter().any(|p| p.matches_as(action, path)) => {}
                _ => return false,
            }
        }
        true
    }
}

impl Rule {
    /// Whether the rule's `domain` and `port` terms match `request`, whatever its `method` and
    /// `path` terms say: all that can be known of bytes hh does not parse.
    pub fn matches_connection(&self, action: Action, request: &Request) -> bool {
        let port_ok = match &self.ports {
            Some(ports) => ports.contains(&request.port),
            None => action == Action::Deny || WEB_PORTS.contains(&request.port),
        };
        port_ok
            && self
                .domains
                .as_ref()
                .is_none_or(|domains| domains.iter().any(|d| d.matches(&request.host)))
    }
}

fn set_once<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(value);
    Some(())
}

/// The terms of a rule with their byte offsets; any ASCII whitespace separates terms.
fn split_terms(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.split(|c: char| c.is_ascii_whitespace())
        .filter(|term| !term.is_empty())
        .map(move |term| (term.as_ptr() as usize - text.as_ptr() as usize, term))
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn list<T: fmt::Display>(items: &[T]) -> String {
            items
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        }
        let mut terms = Vec::new();
        if let Some(methods) = &self.methods {
            terms.push(format!("method={}", list(methods)));
        }
        if let Some(domains) = &self.domains {
            terms.push(format!("domain={}", list(domains)));
        }
        if let Some(paths) = &self.paths {
            terms.push(format!("path={}", list(paths)));
        }
        if let Some(ports) = &self.ports {
            terms.push(format!("port={}", list(ports)));
        }
        if self.raw_tcp {
            terms.push("proto=tcp".into());
        }
        f.write_str(&terms.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn matches(action: Action, rule: &str, method: &str, url: &str) -> bool {
        let rule = Rule::parse(rule).unwrap_or_else(|e| panic!("{rule}: {e}"));
        let request = Request::from_url(method, url).unwrap();
        let path = request.http.as_ref().map(|h| h.path.as_str().to_string());
        rule.matches(action, &request, path.as_deref())
    }

    #[test]
    fn every_grammar_form_parses_to_its_canonical_text() {
        let cases = [
            ("domain=api.github.com", "domain=api.github.com"),
            ("domain=*", "domain=*"),
            ("domain=*.crates.io", "domain=*.crates.io"),
            ("domain=API.GitHub.COM.", "domain=api.github.com"),
            ("domain=bücher.example", "domain=xn--bcher-kva.example"),
            ("domain=0x7f.1", "domain=127.0.0.1"),
            ("domain=[::1]", "domain=::1"),
            ("domain=a.com,*.b.com,*", "domain=a.com,*.b.com,*"),
            ("method=get,Post", "method=GET,POST"),
            ("path=/repos/*", "path=/repos/*"),
            ("path=/api/*,/auth/*", "path=/api/*,/auth/*"),
            ("path=*", "path=*"),
            ("path=/a/./b//c", "path=/a/b/c"),
            ("path=/%61pi", "path=/api"),
            ("path=/a%20b,/c%2cd", "path=/a%20b,/c%2Cd"),
            ("path=/a%3fb%23c", "path=/a%3Fb%23c"),
            ("port=443,8443", "port=443,8443"),
            (
                "port=443 method=GET,POST path=/repos/* domain=api.github.com",
                "method=GET,POST domain=api.github.com path=/repos/* port=443",
            ),
            ("  domain=a.com \t port=22  ", "domain=a.com port=22"),
            (
                "proto=tcp port=22 domain=a.com",
                "domain=a.com port=22 proto=tcp",
            ),
        ];
        for (text, canonical) in cases {
            let rule = Rule::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(rule.to_string(), canonical, "{text}");
            assert_eq!(Rule::parse(canonical).as_ref(), Ok(&rule), "{text}");
        }
    }

    #[test]
    fn parse_errors_name_the_column_and_what_was_expected() {
        let cases = [
            ("", 1, "the rule is empty"),
            ("   ", 1, "the rule is empty"),
            ("domain", 1, "is not a `key=value` term"),
            ("domain=a.com hosts=b", 14, "unknown key `hosts`"),
            ("domain=a.com domain=b.com", 14, "appears twice"),
            ("port=443,", 1, "empty value"),
            ("domain=a.com proto=udp", 14, "expected `tcp`"),
            ("domain=a.com proto=tcp proto=tcp", 24, "appears twice"),
            ("proto=tcp path=/x", 1, "cannot go with"),
            ("method=GET proto=tcp", 12, "cannot go with"),
            ("domain=", 1, "empty value"),
            ("method=GE(T", 1, "not an HTTP method"),
            ("domain=a*.com", 1, "may only stand alone"),
            ("domain=*.1.2.3.4", 1, "not an IP address"),
            ("domain=a..b", 1, "empty label"),
            ("domain=a<b.com", 1, "IDNA"),
            ("path=api", 1, "starting with `/`"),
            ("path=/a?b", 1, "without `?`"),
            ("port=0", 1, "from 1 to 65535"),
            ("port=65536", 1, "from 1 to 65535"),
            ("port=http", 1, "from 1 to 65535"),
            ("domain=é.com port=x", 14, "port `x`"),
        ];
        for (text, column, message) in cases {
            let error = Rule::parse(text).expect_err(text);
            assert_eq!(error.column, column, "{text}: {error}");
            assert!(error.to_string().contains(message), "{text}: {error}");
        }
    }

    #[test]
    fn subdomain_patterns_never_match_the_apex() {
        assert!(matches(
            Action::Allow,
            "domain=*.crates.io",
            "GET",
            "https://static.crates.io/"
        ));
        assert!(matches(
            Action::Allow,
            "domain=*.crates.io",
            "GET",
            "https://a.b.crates.io/"
        ));
        assert!(!matches(
            Action::Allow,
            "domain=*.crates.io",
            "GET",
            "https://crates.io/"
        ));
        assert!(!matches(
            Action::Allow,
            "domain=*.crates.io",
            "GET",
            "https://evilcrates.io/"
        ));
        assert!(!matches(
            Action::Allow,
            "domain=*.crates.io",
            "GET",
            "https://crates.io.evil.com/"
        ));
    }

    #[test]
    fn exact_domains_match_only_that_host_in_any_spelling() {
        assert!(matches(
            Action::Allow,
            "domain=api.github.com",
            "GET",
            "https://API.GITHUB.COM./x"
        ));
        assert!(!matches(
            Action::Allow,
            "domain=api.github.com",
            "GET",
            "https://x.api.github.com/"
        ));
        assert!(matches(
            Action::Deny,
            "domain=127.0.0.1",
            "GET",
            "http://2130706433/"
        ));
        assert!(matches(
            Action::Deny,
            "domain=127.0.0.1",
            "GET",
            "http://[::ffff:127.0.0.1]/"
        ));
        assert!(matches(
            Action::Deny,
            "domain=127.0.0.1",
            "GET",
            "http://0177.0.0.1/"
        ));
    }

    #[test]
    fn a_missing_port_means_web_ports_for_allow_and_every_port_for_deny() {
        assert!(matches(
            Action::Allow,
            "domain=a.com",
            "GET",
            "https://a.com/"
        ));
        assert!(matches(
            Action::Allow,
            "domain=a.com",
            "GET",
            "http://a.com/"
        ));
        assert!(!matches(
            Action::Allow,
            "domain=a.com",
            "GET",
            "http://a.com:22/"
        ));
        assert!(matches(
            Action::Deny,
            "domain=a.com",
            "GET",
            "http://a.com:22/"
        ));
        assert!(matches(
            Action::Allow,
            "domain=a.com port=22",
            "GET",
            "http://a.com:22/"
        ));
        assert!(!matches(
            Action::Allow,
            "domain=a.com port=22",
            "GET",
            "https://a.com/"
        ));
    }

    #[test]
    fn methods_and_paths_must_match_when_written() {
        let rule = "method=GET,POST domain=api.github.com path=/repos/* port=443";
        assert!(matches(
            Action::Allow,
            rule,
            "GET",
            "https://api.github.com/repos/a/b"
        ));
        assert!(matches(
            Action::Allow,
            rule,
            "post",
            "https://api.github.com/repos/"
        ));
        assert!(!matches(
            Action::Allow,
            rule,
            "DELETE",
            "https://api.github.com/repos/a"
        ));
        assert!(!matches(
            Action::Allow,
            rule,
            "GET",
            "https://api.github.com/repos"
        ));
        assert!(!matches(
            Action::Allow,
            rule,
            "GET",
            "https://api.github.com/user"
        ));
        assert!(!matches(
            Action::Allow,
            rule,
            "GET",
            "http://api.github.com:80/repos/a"
        ));
        assert!(matches(
            Action::Allow,
            "path=/a/*/c",
            "GET",
            "https://x.com/a/b/b/c"
        ));
        assert!(!matches(
            Action::Allow,
            "path=/a/*/c",
            "GET",
            "https://x.com/a/b/c/d"
        ));
        assert!(matches(
            Action::Allow,
            "path=/exact",
            "GET",
            "https://x.com/exact?q=1"
        ));
        assert!(!matches(
            Action::Allow,
            "path=/exact",
            "GET",
            "https://x.com/exact/"
        ));
    }

    #[test]
    fn raw_tcp_matches_only_rules_without_method_or_path() {
        let tcp = Request::tcp(Host::parse("db.example").unwrap(), 5432);
        let parse = |text| Rule::parse(text).unwrap();
        assert!(parse("domain=db.example port=5432").matches(Action::Allow, &tcp, None));
        assert!(!parse("domain=db.example port=5432 path=*").matches(Action::Allow, &tcp, None));
        assert!(!parse("method=GET port=5432").matches(Action::Deny, &tcp, None));
        assert!(parse("domain=*.example").matches(Action::Deny, &tcp, None));
    }

    #[test]
    fn glob_matching_handles_stars_anywhere() {
        let cases = [
            ("*", "", true),
            ("*", "/anything/at/all", true),
            ("/a*", "/a", true),
            ("/a*b*c", "/axxbyyc", true),
            ("/a*b*c", "/axxbyy", false),
            ("/*.json", "/x/y.json", true),
            ("/*.json", "/x/y.json/z", false),
            ("**", "/x", true),
        ];
        for (pattern, text, expected) in cases {
            assert_eq!(
                glob_match(pattern.as_bytes(), text.as_bytes()),
                expected,
                "{pattern} {text}"
            );
        }
    }

    fn arb_rule_text() -> impl Strategy<Value = String> {
        let method = prop::collection::vec(
            prop::sample::select(vec!["GET", "post", "PUT", "DELETE"]),
            1..3,
        );
        let domain = prop::collection::vec(
            prop::sample::select(vec!["*", "a.com", "*.b.com", "B.com.", "127.1", "[::1]"]),
            1..3,
        );
        let path = prop::collection::vec(
            prop::sample::select(vec!["*", "/x", "/x/*", "/a/./b", "/%61"]),
            1..3,
        );
        let port = prop::collection::vec(prop::sample::select(vec!["80", "443", "22"]), 1..3);
        (
            prop::option::of(method),
            prop::option::of(domain),
            prop::option::of(path),
            prop::option::of(port),
        )
            .prop_filter("at least one term", |(a, b, c, d)| {
                a.is_some() || b.is_some() || c.is_some() || d.is_some()
            })
            .prop_map(|(method, domain, path, port)| {
                let mut terms = Vec::new();
                for (key, values) in [
                    ("method", method),
                    ("domain", domain),
                    ("path", path),
                    ("port", port),
                ] {
                    if let Some(values) = values {
                        terms.push(format!("{key}={}", values.join(",")));
                    }
                }
                terms.reverse();
                terms.join(" ")
            })
    }

    proptest! {
        #[test]
        fn parse_print_parse_gives_back_the_same_rule(text in arb_rule_text()) {
            let rule = Rule::parse(&text).unwrap();
            prop_assert_eq!(Rule::parse(&rule.to_string()), Ok(rule));
        }

        #[test]
        fn arbitrary_text_never_panics_the_parser(text in "\\PC{0,40}") {
            if let Ok(rule) = Rule::parse(&text) {
                prop_assert_eq!(Rule::parse(&rule.to_string()), Ok(rule));
            }
        }
    }
}
