//! The "forever" rule editor: from one request (host, port, method, path), the few choices a
//! person makes to widen or narrow a rule (exact host or `*.parent`, with or without the port,
//! any path, the exact path or a path prefix, with or without the method), and the exact rule text
//! those choices give, parsed and printed by the real grammar ([`Rule`]).
//!
//! Pure: no I/O. The agent stays the judge (it refuses a rule that does not cover the held
//! request); the editor says so before the answer is sent, with the same matcher.

use crate::rules::{Action, Host, Method, NormPath, Request, Rule, WEB_PORTS};

/// The request a rule is made for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleTarget {
    pub host: String,
    pub port: u16,
    /// `None` for a raw TCP connection.
    pub method: Option<String>,
    pub path: Option<String>,
}

/// The editor's state: the choices, and the agent's suggestion shown until one is changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleEditor {
    target: RuleTarget,
    action: Action,
    /// The agent's suggested rule; used as is while `touched` is false.
    suggested: Option<String>,
    touched: bool,
    /// Index into [`domain_choices`]: 0 is the exact host.
    domain: usize,
    with_port: bool,
    /// Index into [`path_choices`]: 0 is any path.
    path: usize,
    with_method: bool,
}

/// The rule the editor's choices give.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EditedRule {
    /// The canonical text, as it will be appended (or the error the grammar gave).
    pub text: Result<String, String>,
    /// Whether the rule matches the request it is made for.
    pub covers: bool,
}

impl RuleEditor {
    pub fn new(target: RuleTarget, action: Action, suggested: Option<String>) -> RuleEditor {
        // An allow rule without `port` admits only the web ports: keep the port when the request
        // used another one, so the default choice still covers it.
        let with_port = !WEB_PORTS.contains(&target.port);
        RuleEditor {
            target,
            action,
            touched: suggested.is_none(),
            suggested,
            domain: 0,
            with_port,
            path: 0,
            with_method: false,
        }
    }

    pub fn action(&self) -> Action {
        self.action
    }

    pub fn target(&self) -> &RuleTarget {
        &self.target
    }

    /// True while the agent's suggestion is shown unchanged.
    pub fn is_suggested(&self) -> bool {
        !self.touched
    }

    /// Exact host → `*.parent` → `*.grandparent` … → exact host.
    pub fn cycle_domain(&mut self) {
        self.touch();
        self.domain = (self.domain + 1) % domain_choices(&self.target.host).len();
    }

    pub fn toggle_port(&mut self) {
        self.touch();
        self.with_port = !self.with_port;
    }

    /// Any path → exact path → longest prefix … → shortest prefix → any path.
    pub fn cycle_path(&mut self) {
        self.touch();
        self.path = (self.path + 1) % path_choices(self.target.path.as_deref()).len();
    }

    pub fn toggle_method(&mut self) {
        self.touch();
        if self.target.method.is_some() {
            self.with_method = !self.with_method;
        }
    }

    pub fn toggle_action(&mut self) {
        self.action = match self.action {
            Action::Allow => Action::Deny,
            Action::Deny => Action::Allow,
        };
    }

    fn touch(&mut self) {
        self.touched = true;
    }

    /// The rule text before it is parsed: the suggestion, or the choices' terms.
    fn raw_text(&self) -> String {
        if let (false, Some(suggested)) = (self.touched, &self.suggested) {
            return suggested.clone();
        }
        let mut terms = Vec::new();
        if let (true, Some(method)) = (self.with_method, &self.target.method) {
            terms.push(format!("method={method}"));
        }
        let domains = domain_choices(&self.target.host);
        let domain = domains.get(self.domain).unwrap_or(&domains[0]);
        terms.push(format!("domain={domain}"));
        if let Some(Some(path)) = path_choices(self.target.path.as_deref()).get(self.path) {
            terms.push(format!("path={}", encode_path(path)));
        }
        if self.with_port {
            terms.push(format!("port={}", self.target.port));
        }
        terms.join(" ")
    }

    /// The rule as it would be written, and whether it covers the request.
    pub fn rule(&self) -> EditedRule {
        let raw = self.raw_text();
        match Rule::parse(&raw) {
            Ok(rule) => EditedRule {
                covers: covers(&rule, self.action, &self.target),
                text: Ok(rule.to_string()),
            },
            Err(error) => EditedRule {
                text: Err(format!("`{raw}`: {error}")),
                covers: false,
            },
        }
    }

    /// The `rule` field of the answer: `None` keeps the agent's suggestion.
    pub fn answer_rule(&self) -> Option<String> {
        if self.is_suggested() {
            return None;
        }
        self.rule().text.ok()
    }
}

/// The exact host, then `*.parent` for every parent of two labels or more (never `*.com`).
/// An IP address has only itself.
pub fn domain_choices(host: &str) -> Vec<String> {
    let mut choices = vec![host.to_string()];
    if Host::parse(host).is_ok_and(|h| h.is_name()) {
        let mut rest = host;
        while let Some((_, parent)) = rest.split_once('.') {
            if !parent.contains('.') {
                break;
            }
            choices.push(format!("*.{parent}"));
            rest = parent;
        }
    }
    choices
}

/// `None` (any path), the exact path, then the prefixes `/a/b/*`, `/a/*`, from longest.
pub fn path_choices(path: Option<&str>) -> Vec<Option<String>> {
    let mut choices = vec![None];
    let Some(path) = path else {
        return choices;
    };
    let path = path.split(['?', '#']).next().unwrap_or(path);
    if !path.starts_with('/') {
        return choices;
    }
    choices.push(Some(path.to_string()));
    let mut rest = path.trim_end_matches('/');
    while let Some((parent, _)) = rest.rsplit_once('/') {
        if parent.is_empty() {
            break;
        }
        choices.push(Some(format!("{parent}/*")));
        rest = parent;
    }
    choices
}

/// A path as a `path=` value: the characters that would split the rule's terms or its comma
/// list (or start a query), and `%` itself, are percent-encoded; the grammar decodes them once.
fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if matches!(c, ',' | '?' | '#' | '%') || c.is_ascii_whitespace() {
            out.push_str(&format!("%{:02X}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether `rule` acting as `action` matches the request `target` describes.
fn covers(rule: &Rule, action: Action, target: &RuleTarget) -> bool {
    let Ok(host) = Host::parse(&target.host) else {
        return false;
    };
    let http = match (&target.method, &target.path) {
        (Some(method), Some(path)) => match (Method::parse(method), NormPath::parse(path)) {
            (Ok(method), Ok(path)) => Some((method, path)),
            _ => return false,
        },
        _ => None,
    };
    match http {
        Some((method, path)) => {
            let reading = path.as_str().to_string();
            let request = Request::http(method, host, target.port, path);
            rule.matches(action, &request, Some(&reading))
        }
        None => rule.matches(action, &Request::tcp(host, target.port), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(host: &str, port: u16, method: Option<&str>, path: Option<&str>) -> RuleTarget {
        RuleTarget {
            host: host.into(),
            port,
            method: method.map(Into::into),
            path: path.map(Into::into),
        }
    }

    fn get(host: &str, path: &str) -> RuleTarget {
        target(host, 443, Some("GET"), Some(path))
    }

    #[test]
    fn domains_widen_to_parents_of_two_labels_or_more() {
        assert_eq!(
            domain_choices("a.b.example.com"),
            ["a.b.example.com", "*.b.example.com", "*.example.com"]
        );
        assert_eq!(domain_choices("example.com"), ["example.com"]);
        assert_eq!(domain_choices("10.0.0.1"), ["10.0.0.1"]);
    }

    #[test]
    fn paths_offer_any_exact_and_each_prefix() {
        let some = |s: &str| Some(s.to_string());
        assert_eq!(
            path_choices(Some("/repos/a/b?x=1")),
            [
                None,
                some("/repos/a/b"),
                some("/repos/a/*"),
                some("/repos/*")
            ]
        );
        assert_eq!(path_choices(Some("/")), [None, some("/")]);
        assert_eq!(path_choices(None), [None]);
    }

    #[test]
    fn the_suggestion_is_kept_until_a_choice_changes() {
        let editor = RuleEditor::new(
            get("api.example.com", "/v1/x"),
            Action::Allow,
            Some("domain=api.example.com".into()),
        );
        assert!(editor.is_suggested());
        assert_eq!(editor.answer_rule(), None);
        assert_eq!(editor.rule().text.as_deref(), Ok("domain=api.example.com"));
        assert!(editor.rule().covers);
    }

    #[test]
    fn choices_give_the_exact_canonical_rule_text() {
        let mut editor = RuleEditor::new(get("api.example.com", "/v1/x/y"), Action::Allow, None);
        assert_eq!(editor.rule().text.as_deref(), Ok("domain=api.example.com"));
        editor.cycle_domain();
        editor.cycle_path();
        editor.cycle_path();
        editor.toggle_method();
        editor.toggle_port();
        assert_eq!(
            editor.answer_rule().as_deref(),
            Some("method=GET domain=*.example.com path=/v1/x/* port=443")
        );
        assert!(editor.rule().covers);
    }

    #[test]
    fn an_allow_rule_without_port_does_not_cover_a_non_web_port() {
        let mut editor = RuleEditor::new(
            target("db.internal.test", 5432, None, None),
            Action::Allow,
            None,
        );
        assert_eq!(
            editor.rule().text.as_deref(),
            Ok("domain=db.internal.test port=5432")
        );
        assert!(editor.rule().covers);
        editor.toggle_port();
        assert_eq!(editor.rule().text.as_deref(), Ok("domain=db.internal.test"));
        assert!(!editor.rule().covers);
        editor.toggle_action();
        assert!(
            editor.rule().covers,
            "a deny rule without port denies every port"
        );
    }

    #[test]
    fn paths_with_separators_are_encoded_so_they_parse_back() {
        let mut editor = RuleEditor::new(get("a.test", "/a b,c"), Action::Allow, None);
        editor.cycle_path();
        assert_eq!(
            editor.rule().text.as_deref(),
            Ok("domain=a.test path=/a%20b%2Cc")
        );
        assert!(editor.rule().covers);
    }

    #[test]
    fn a_bad_host_gives_an_error_not_a_panic() {
        let mut editor = RuleEditor::new(get("bad host", "/"), Action::Allow, None);
        editor.cycle_domain();
        editor.cycle_path();
        assert!(editor.rule().text.is_err());
        assert!(!editor.rule().covers);
        assert_eq!(editor.answer_rule(), None);
    }
}
