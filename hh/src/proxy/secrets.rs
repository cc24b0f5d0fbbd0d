//! Credential injection: secrets that never enter the session.
//!
//! A `[[secrets]]` entry names a variable of the `hh` client's environment (its value goes to
//! the agent with the start, and lives in the agent's memory only) and where the value may go:
//! hosts, optionally one header and a path prefix. The session's environment has a placeholder
//! in that variable instead, so its agent sends the placeholder as it would the key. After the
//! policy allowed a request, [`Secrets::fill`] looks for placeholders in it:
//!
//! - in a header of a request the secret may go in — over HTTPS, to one of its hosts, in its
//!   header (`authorization` or `x-api-key` unless the entry names one), under its path prefix
//!   in every reading of the path, not a `TRACE` — and in one of the forms credentials take
//!   (the header's whole value; `Bearer` or `token` and it; the password of `Basic`
//!   credentials), the placeholder is replaced by the value, in a header value marked
//!   sensitive. The forms are few on purpose: a value the session wrapped in text of its own,
//!   or put in a header a server might quote back in an error, is how an API would echo the
//!   key to the session;
//! - anywhere else (another host, plain HTTP, another header or form, the URL) the request is
//!   refused, and its audit line says which secret's placeholder went where: a finding.
//!
//! Bodies are not read for placeholders (a placeholder in a body leaves as it is, never the
//! value), nor are connections spliced unread (`bypass_proxy`). A session that starts when the
//! agent was restarted keeps its placeholders but the agent no longer has the values: such
//! requests are refused, saying so. The value is never logged, audited or shown in a prompt
//! (prompts are decided before it is put in). An endpoint that echoes request headers back
//! would show it to the session: scope secrets to APIs that do not.

use base64::Engine as _;
use hyper::{
    Uri,
    header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue},
};

use crate::{
    api::protocol::SecretValue,
    config::SecretSpec,
    rules::{DomainPattern, Request},
};

/// The most a secret's value may hold (a header value's worth).
pub const MAX_VALUE: usize = 8 * 1024;

/// The headers a secret may go in when its entry names none.
const DEFAULT_HEADERS: [&str; 2] = ["authorization", "x-api-key"];

/// One secret of one session.
pub struct SessionSecret {
    pub name: String,
    /// What the session has instead of the value.
    pub placeholder: String,
    /// `None` for a session adopted after a restart: the agent keeps no secret on disk.
    value: Option<SecretValue>,
    hosts: Vec<DomainPattern>,
    header: Option<HeaderName>,
    path_prefix: Option<String>,
}

impl SessionSecret {
    /// `spec` (checked when the config loaded) with this session's placeholder and value.
    pub fn new(spec: &SecretSpec, placeholder: String, value: Option<SecretValue>) -> Self {
        SessionSecret {
            name: spec.name.clone(),
            placeholder,
            value,
            hosts: spec
                .hosts
                .iter()
                .filter_map(|host| DomainPattern::parse(host).ok())
                .collect(),
            header: spec
                .header
                .as_deref()
                .and_then(|header| HeaderName::from_bytes(header.as_bytes()).ok()),
            path_prefix: spec.path_prefix.clone(),
        }
    }

    /// Why `request` (over HTTPS when `https`) may not carry this secret in header `name`;
    /// `None` when it may.
    fn out_of_scope(&self, request: &Request, https: bool, name: &HeaderName) -> Option<String> {
        let allowed_hosts = || {
            self.hosts
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        if !https {
            return Some("over plain HTTP (a secret goes over HTTPS only)".into());
        }
        if !self.hosts.iter().any(|host| host.matches(&request.host)) {
            return Some(format!(
                "to {} (it may go to {} only)",
                request.host,
                allowed_hosts()
            ));
        }
        match &self.header {
            Some(header) if header != name => {
                return Some(format!("in header {name} (it may go in {header} only)"));
            }
            None if !DEFAULT_HEADERS.contains(&name.as_str()) => {
                return Some(format!(
                    "in header {name} (it may go in {} only)",
                    DEFAULT_HEADERS.join(" or ")
                ));
            }
            _ => {}
        }
        if request
            .http
            .as_ref()
            .is_some_and(|http| matches!(http.method.as_str(), "TRACE" | "TRACK"))
        {
            return Some("in a TRACE or TRACK request (which echoes its headers back)".into());
        }
        if let (Some(prefix), Some(http)) = (&self.path_prefix, &request.http)
            && !http
                .path
                .readings()
                .all(|reading| reading.starts_with(prefix.as_str()))
        {
            return Some(format!(
                "to path {} (it may go under {prefix} only)",
                http.path
            ));
        }
        None
    }
}

/// A session's secrets.
#[derive(Default)]
pub struct Secrets(Vec<SessionSecret>);

impl Secrets {
    pub fn new(secrets: Vec<SessionSecret>) -> Secrets {
        Secrets(secrets)
    }

    /// Puts each secret's value where `request` (allowed, over HTTPS when `https`) carries its
    /// placeholder and may carry the secret; the names of the secrets put in. `Err`: why the
    /// request is refused (a placeholder where its secret may not go).
    pub fn fill(
        &self,
        request: &Request,
        https: bool,
        uri: &Uri,
        headers: &mut HeaderMap,
    ) -> Result<Vec<String>, String> {
        let mut filled = Vec::new();
        for secret in &self.0 {
            let placeholder = secret.placeholder.as_bytes();
            if contains(uri.to_string().as_bytes(), placeholder) {
                return Err(format!(
                    "secret {}'s placeholder is in the request's URL; it is put in headers only",
                    secret.name
                ));
            }
            let names: Vec<HeaderName> = headers.keys().cloned().collect();
            for name in names {
                let values: Vec<HeaderValue> = headers.get_all(&name).iter().cloned().collect();
                let mut replaced = Vec::with_capacity(values.len());
                let mut changed = false;
                for value in values {
                    let Some(carried) = placeholder_in(&name, value.as_bytes(), placeholder) else {
                        replaced.push(value);
                        continue;
                    };
                    if let Some(why) = secret.out_of_scope(request, https, &name) {
                        return Err(format!(
                            "secret {}'s placeholder was sent {why}",
                            secret.name
                        ));
                    }
                    let Some(with) = carried else {
                        return Err(format!(
                            "secret {}'s placeholder was sent in header {name} in a form hh does \
                             not fill (the header's whole value, `Bearer` or `token` and it, or \
                             the password of Basic credentials)",
                            secret.name
                        ));
                    };
                    let Some(real) = &secret.value else {
                        return Err(format!(
                            "secret {}: the hh agent restarted since this session started and \
                             keeps no secret; start a new session",
                            secret.name
                        ));
                    };
                    let mut value = HeaderValue::from_bytes(&with.put(placeholder, &real.0))
                        .map_err(|_| {
                            format!("secret {}: its value is no header value", secret.name)
                        })?;
                    value.set_sensitive(true);
                    replaced.push(value);
                    changed = true;
                }
                if changed {
                    headers.remove(&name);
                    for value in replaced {
                        headers.append(name.clone(), value);
                    }
                    filled.push(secret.name.clone());
                }
            }
        }
        Ok(filled)
    }
}

impl Secrets {
    /// For a request hh never fills (plain HTTP through the explicit front door): which secret's
    /// placeholder its target or a header value carries, as the refusal's text.
    pub fn carried_over_plain_http<'a>(
        &self,
        target: &str,
        values: impl Iterator<Item = &'a [u8]> + Clone,
    ) -> Option<String> {
        self.0.iter().find_map(|secret| {
            let placeholder = secret.placeholder.as_bytes();
            let carried = contains(target.as_bytes(), placeholder)
                || values.clone().any(|value| {
                    contains(value, placeholder)
                        || basic_credentials(value).is_some_and(|decoded| contains(&decoded, placeholder))
                });
            carried.then(|| {
                format!(
                    "secret {}'s placeholder was sent over plain HTTP (a secret goes over HTTPS only)",
                    secret.name
                )
            })
        })
    }
}

/// Where a header value carries a placeholder.
enum Carried {
    /// In the value as it is.
    Plain(Vec<u8>),
    /// Inside `Basic` credentials (`user:password`, base64).
    Basic(Vec<u8>),
}

impl Carried {
    /// The header value with `placeholder` replaced by `real`.
    fn put(&self, placeholder: &[u8], real: &str) -> Vec<u8> {
        match self {
            Carried::Plain(value) => replace(value, placeholder, real.as_bytes()),
            Carried::Basic(credentials) => {
                let filled = replace(credentials, placeholder, real.as_bytes());
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(filled)
                )
                .into_bytes()
            }
        }
    }
}

/// Whether header `name`'s `value` carries `placeholder`: `None` when it does not;
/// `Some(None)` when it does in a form hh does not fill; `Some(Some(how))` when it does in one
/// it fills.
fn placeholder_in(name: &HeaderName, value: &[u8], placeholder: &[u8]) -> Option<Option<Carried>> {
    let basic = (name == AUTHORIZATION)
        .then(|| basic_credentials(value))
        .flatten()
        .filter(|decoded| contains(decoded, placeholder));
    if let Some(decoded) = basic {
        // The password, whole, the user free of it (servers quote user names back, in errors).
        let fills = match decoded.iter().position(|b| *b == b':') {
            Some(colon) => {
                let (user, password) = (&decoded[..colon], &decoded[colon + 1..]);
                password == placeholder && !contains(user, placeholder)
            }
            None => false,
        };
        return Some(fills.then_some(Carried::Basic(decoded)));
    }
    if !contains(value, placeholder) {
        return None;
    }
    let whole = value == placeholder;
    let scheme = value.len() > placeholder.len()
        && value.ends_with(placeholder)
        && matches!(
            std::str::from_utf8(&value[..value.len() - placeholder.len()])
                .map(str::to_ascii_lowercase)
                .as_deref(),
            Ok("bearer " | "token ")
        );
    Some((whole || scheme).then(|| Carried::Plain(value.to_vec())))
}

/// The decoded credentials of an `Authorization: Basic …` value.
fn basic_credentials(value: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(value).ok()?.trim();
    let (scheme, encoded) = text.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && haystack
            .windows(needle.len())
            .any(|window| window == needle)
}

fn replace(haystack: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len() + with.len());
    let mut rest = haystack;
    while let Some(at) = rest
        .windows(needle.len())
        .position(|window| window == needle)
    {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(with);
        rest = &rest[at + needle.len()..];
    }
    out.extend_from_slice(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLACEHOLDER: &str = "hh-placeholder-anthropic-0123456789abcdef";
    const REAL: &str = "sk-ant-real-key";

    fn secrets(header: Option<&str>, prefix: Option<&str>, value: Option<&str>) -> Secrets {
        let spec = SecretSpec {
            name: "anthropic".into(),
            env: "ANTHROPIC_API_KEY".into(),
            hosts: vec!["api.anthropic.com".into(), "*.claude.test".into()],
            header: header.map(str::to_owned),
            path_prefix: prefix.map(str::to_owned),
        };
        Secrets::new(vec![SessionSecret::new(
            &spec,
            PLACEHOLDER.into(),
            value.map(|value| SecretValue(value.into())),
        )])
    }

    fn fill(
        secrets: &Secrets,
        url: &str,
        https: bool,
        headers: &[(&str, &str)],
    ) -> Result<HeaderMap, String> {
        let request = Request::from_url("POST", url).unwrap();
        let uri: Uri = url.parse().unwrap();
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        secrets.fill(&request, https, &uri, &mut map).map(|_| map)
    }

    #[test]
    fn the_value_goes_where_the_secret_may_go_in_every_form_of_header() {
        let secrets = secrets(None, Some("/v1/"), Some(REAL));
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("ada:{PLACEHOLDER}"));
        let headers = fill(
            &secrets,
            "https://api.anthropic.com/v1/messages",
            true,
            &[
                ("x-api-key", PLACEHOLDER),
                ("authorization", &format!("Bearer {PLACEHOLDER}")),
                ("user-agent", "untouched"),
            ],
        )
        .unwrap();
        assert_eq!(headers["x-api-key"], REAL);
        assert!(headers["x-api-key"].is_sensitive());
        assert_eq!(headers["authorization"], format!("Bearer {REAL}").as_str());
        assert_eq!(headers["user-agent"], "untouched");
        let headers = fill(
            &secrets,
            "https://x.claude.test/v1/a",
            true,
            &[("authorization", &format!("Basic {basic}"))],
        )
        .unwrap();
        let expected = base64::engine::general_purpose::STANDARD.encode(format!("ada:{REAL}"));
        assert_eq!(
            headers["authorization"],
            format!("Basic {expected}").as_str()
        );
    }

    #[test]
    fn a_placeholder_anywhere_else_refuses_the_request_and_says_where_it_went() {
        let scoped = secrets(Some("x-api-key"), Some("/v1/"), Some(REAL));
        let cases = [
            (
                "https://evil.test/v1/messages",
                true,
                "x-api-key",
                "to evil.test",
            ),
            (
                "http://api.anthropic.com/v1/messages",
                false,
                "x-api-key",
                "plain HTTP",
            ),
            (
                "https://api.anthropic.com/v1/messages",
                true,
                "authorization",
                "in header authorization",
            ),
            (
                "https://api.anthropic.com/v2/other",
                true,
                "x-api-key",
                "to path /v2/other",
            ),
            (
                "https://api.anthropic.com/v1/../v2/x",
                true,
                "x-api-key",
                "to path",
            ),
            (
                "https://api.anthropic.com/v1/%2e%2e/v2/x",
                true,
                "x-api-key",
                "to path",
            ),
        ];
        // Unnamed, a secret goes in authorization or x-api-key only, whole or after its
        // scheme: a header an API quotes back in errors, or text of the session's own around
        // the key, would show it to the session.
        let unnamed = secrets(None, None, Some(REAL));
        let echoing = [
            (
                "anthropic-beta",
                PLACEHOLDER.to_owned(),
                "in header anthropic-beta",
            ),
            ("user-agent", PLACEHOLDER.to_owned(), "in header user-agent"),
            (
                "x-api-key",
                format!("{PLACEHOLDER}-and-more"),
                "in a form hh does not fill",
            ),
            (
                "x-api-key",
                format!("junk {PLACEHOLDER}"),
                "in a form hh does not fill",
            ),
            (
                "authorization",
                format!("Bearer {PLACEHOLDER},x"),
                "in a form hh does not fill",
            ),
        ];
        for (header, value, said) in echoing {
            let refused = fill(
                &unnamed,
                "https://api.anthropic.com/v1/messages",
                true,
                &[(header, &value)],
            )
            .unwrap_err();
            assert!(refused.contains(said), "{header}: {value}: {refused}");
        }
        let wrapped = base64::engine::general_purpose::STANDARD
            .encode(format!("{PLACEHOLDER}x:{PLACEHOLDER}"));
        let refused = fill(
            &unnamed,
            "https://api.anthropic.com/v1/messages",
            true,
            &[("authorization", &format!("Basic {wrapped}"))],
        )
        .unwrap_err();
        assert!(refused.contains("in a form hh does not fill"), "{refused}");
        let trace = Request::from_url("TRACE", "https://api.anthropic.com/v1/").unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("x-api-key", HeaderValue::from_static(PLACEHOLDER));
        let refused = unnamed
            .fill(
                &trace,
                true,
                &"https://api.anthropic.com/v1/".parse().unwrap(),
                &mut headers,
            )
            .unwrap_err();
        assert!(refused.contains("TRACE"), "{refused}");
        for (url, https, header, said) in cases {
            let refused = fill(&scoped, url, https, &[(header, PLACEHOLDER)]).unwrap_err();
            assert!(
                refused.contains("secret anthropic's placeholder was sent")
                    && refused.contains(said),
                "{url} {header}: {refused}"
            );
            assert!(!refused.contains(REAL), "{refused}");
        }
        let in_url = fill(
            &scoped,
            &format!("https://api.anthropic.com/v1/x?key={PLACEHOLDER}"),
            true,
            &[],
        )
        .unwrap_err();
        assert!(in_url.contains("in the request's URL"), "{in_url}");
        // No placeholder: nothing to do, wherever it goes.
        assert!(
            fill(
                &scoped,
                "https://evil.test/",
                true,
                &[("x-api-key", "sk-other")]
            )
            .is_ok()
        );
    }

    #[test]
    fn a_placeholder_over_plain_http_is_found_in_the_target_or_any_header() {
        let secrets = secrets(None, None, Some(REAL));
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("u:{PLACEHOLDER}"));
        let in_query = format!("http://a.test/?k={PLACEHOLDER}");
        let basic_value = format!("Basic {basic}");
        let cases: [(&str, Vec<&[u8]>); 3] = [
            (&in_query, vec![]),
            ("http://a.test/", vec![b"x", PLACEHOLDER.as_bytes()]),
            ("http://a.test/", vec![basic_value.as_bytes()]),
        ];
        for (target, values) in cases {
            let found = secrets.carried_over_plain_http(target, values.into_iter());
            assert!(
                found.is_some_and(|why| why.contains("over plain HTTP")),
                "{target}"
            );
        }
        assert_eq!(
            secrets.carried_over_plain_http("http://a.test/", [&b"sk-other"[..]].into_iter()),
            None
        );
    }

    #[test]
    fn a_session_whose_value_the_agent_no_longer_has_is_refused_not_sent_the_placeholder() {
        let secrets = secrets(None, None, None);
        let refused = fill(
            &secrets,
            "https://api.anthropic.com/v1/messages",
            true,
            &[("x-api-key", PLACEHOLDER)],
        )
        .unwrap_err();
        assert!(refused.contains("restarted"), "{refused}");
    }
}
