//! `hh rules suggest`: rules proposed from what was denied for want of one.
//!
//! Each denied request stands for the rule a prompt would have suggested for it
//! ([`suggested_rule`]: its exact host, its port unless a web port): none is broader than the
//! host a request named, so a suggestion never admits a neighbour the session never asked for
//! (`*.domain` widening is a person's choice, in the TUI's rule editor). Requests that come to
//! the same rule are one suggestion, counted; the suggestions come most-covering first.

use super::{DomainPattern, PathPattern, Request, Rule, WEB_PORTS};

/// The narrowest rule worth keeping for `request`'s host: that exact host, and its port unless
/// it is a web port (an allow rule without `port` admits exactly 80 and 443; a deny rule
/// without `port` denies every port, so it covers this one too).
///
/// For a parsed request on another port, the rule says `path=*`: it admits the host's HTTP there
/// and makes the port a web port of the host, so it does not also admit raw TCP (bytes that are
/// neither TLS nor HTTP) to it, which the person answering was not asked about.
pub fn suggested_rule(request: &Request) -> Rule {
    let web_port = WEB_PORTS.contains(&request.port);
    Rule {
        domains: Some(vec![DomainPattern::Exact(request.host.clone())]),
        ports: (!web_port).then(|| vec![request.port]),
        paths: (request.http.is_some() && !web_port).then(|| vec![PathPattern::any()]),
        ..Rule::default()
    }
}

/// One proposed rule and what it would have admitted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Suggestion {
    pub rule: Rule,
    /// How many of the denied requests it covers.
    pub covers: usize,
    /// A few of them, as `METHOD host:port/path` (`TCP host:port` for raw connections).
    pub examples: Vec<String>,
}

/// How many examples a suggestion keeps.
const EXAMPLES: usize = 3;

/// The fewest host-wide rules that would have admitted every request of `denied`.
pub fn suggest(denied: &[Request]) -> Vec<Suggestion> {
    let mut suggestions: Vec<Suggestion> = Vec::new();
    for request in denied {
        let rule = suggested_rule(request);
        let example = describe(request);
        match suggestions.iter_mut().find(|found| found.rule == rule) {
            Some(found) => {
                found.covers += 1;
                if found.examples.len() < EXAMPLES && !found.examples.contains(&example) {
                    found.examples.push(example);
                }
            }
            None => suggestions.push(Suggestion {
                rule,
                covers: 1,
                examples: vec![example],
            }),
        }
    }
    // Most-covering first; equal counts keep the order they were first denied in.
    suggestions.sort_by_key(|suggestion| std::cmp::Reverse(suggestion.covers));
    suggestions
}

fn describe(request: &Request) -> String {
    match &request.http {
        Some(http) => format!(
            "{} {}:{}{}",
            http.method, request.host, request.port, http.path
        ),
        None => format!("TCP {}:{}", request.host, request.port),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{Action, Layer, LayerRules, Policy, Verdict};

    fn get(url: &str) -> Request {
        Request::from_url("GET", url).unwrap()
    }

    #[test]
    fn the_fewest_host_rules_cover_every_denied_request_and_no_more() {
        let denied = [
            get("https://registry.npmjs.org/left-pad"),
            get("https://registry.npmjs.org/lodash"),
            get("https://registry.npmjs.org/lodash"),
            get("https://cdn.example.test:8443/lib.js"),
            Request::from_url("POST", "https://registry.npmjs.org/-/v1/login").unwrap(),
        ];
        let suggestions = suggest(&denied);
        let rules: Vec<String> = suggestions.iter().map(|s| s.rule.to_string()).collect();
        assert_eq!(
            rules,
            [
                "domain=registry.npmjs.org",
                "domain=cdn.example.test path=* port=8443"
            ]
        );
        assert_eq!(suggestions[0].covers, 4);
        assert_eq!(
            suggestions[0].examples,
            [
                "GET registry.npmjs.org:443/left-pad",
                "GET registry.npmjs.org:443/lodash",
                "POST registry.npmjs.org:443/-/v1/login"
            ]
        );
        // Together they admit every denied request; a neighbour host stays unknown.
        let mut layer = LayerRules::new(Layer::Workspace, "suggested");
        for suggestion in &suggestions {
            layer.push(
                Action::Allow,
                suggestion.rule.clone(),
                suggestion.rule.to_string(),
            );
        }
        let policy = Policy::new(vec![layer]);
        for request in &denied {
            assert_eq!(
                policy.decide(request).verdict,
                Verdict::Allow,
                "{request:?}"
            );
        }
        assert_eq!(
            policy.decide(&get("https://evil.npmjs.org/")).verdict,
            Verdict::Ask
        );
    }
}
