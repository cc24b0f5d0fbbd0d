//! Canonical request values: [`Method`], [`NormPath`] and the [`Request`] a decision is made on.
//!
//! Each type is made only by its constructor, so nothing downstream can decide on a raw string.
//! Hosts live in [`super::host`].
//!
//! # Paths, encoded slashes and double encoding
//!
//! A server may decode a path once or twice, may or may not treat `%2F` (and `\`) as a
//! separator, and resolves `..` before or after decoding, and may drop `;params`. hh cannot know which, so
//! a path has several *readings* and a request is decided on all of them ([`super::Policy::decide`]): it is denied
//! when **any** reading is denied, allowed only when **every** reading is allowed, and asked
//! otherwise. No reading can reach a denied path, and an allow rule cannot be stretched by an
//! encoding trick.
//!
//! - The *routed* reading ([`NormPath::as_str`]): query and fragment stripped, percent-decoded
//!   once, except that `%2F` (`/`), `%5C` (`\`), `%25` (`%`), `%3F` (`?`) and `%23` (`#`) stay
//!   encoded (uppercase), because decoding them would change where a segment or the path ends,
//!   or create a new escape (a lone `%` is
//!   written `%25` for the same reason); then `//` collapsed
//!   and `.` / `..` resolved without climbing above `/`. This is what most servers route on, and
//!   the form rules are written in (a rule for a literal `%2F` writes `%2F`).
//!   `*` stays encoded as well (`%2A`), so a rule's `%2A` is a literal star, not a wildcard.
//! - *Partial* readings, for servers that decode again: each further round also decodes `%25`
//!   but still keeps the separators, so `grp%252Fsecret` is also read as `grp%2Fsecret`.
//! - The *decoded* reading: decoded until nothing changes (double, triple encoding), `\` taken
//!   as `/`, then collapsed and resolved the same way.
//! - Each of these with `;params` dropped from every segment (servlet containers route
//!   `/public/..;/admin` to `/admin`).
//!
//! Only readings that differ from the routed one are kept.
//!
//! Refused outright ([`PathError`]): a path that does not start with `/`, one that decodes to
//! bytes that are not UTF-8 or to control characters (NUL, CR, LF, …), and one still changing
//! after [`MAX_DECODE_ROUNDS`] rounds of decoding.

use std::{fmt, net::IpAddr};

use super::host::{Host, HostError};

/// Rounds of percent-decoding after which a path that still changes is refused.
pub const MAX_DECODE_ROUNDS: usize = 8;

/// An HTTP method: a token ([RFC 9110 §9.1](https://www.rfc-editor.org/rfc/rfc9110#section-9.1)),
/// uppercased so `get` cannot slip past a rule for `GET` on a server that ignores case.
#[derive(Clone, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct Method(Box<str>);

/// Why a method was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{method}` is not an HTTP method (a token of letters, digits and !#$%&'*+-.^_`|~)")]
pub struct MethodError {
    pub method: String,
}

impl Method {
    pub fn parse(input: &str) -> Result<Method, MethodError> {
        let is_tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if input.is_empty() || !input.bytes().all(is_tchar) {
            return Err(MethodError {
                method: input.into(),
            });
        }
        Ok(Method(input.to_ascii_uppercase().into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A normalized absolute path, with its other readings when decoding further changes it (see
/// the module doc).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct NormPath {
    routed: Box<str>,
    decoded: Option<Box<str>>,
    /// Every other distinct reading (partial decodings, `;params` stripped), `decoded` included.
    others: Box<[Box<str>]>,
}

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path `{path}` does not start with `/`")]
    NotAbsolute { path: String },
    #[error("path `{path}` decodes to bytes that are not UTF-8")]
    NotUtf8 { path: String },
    #[error("path `{path}` decodes to a control character")]
    ControlCharacter { path: String },
    #[error("path `{path}` is still percent-encoded after {MAX_DECODE_ROUNDS} rounds of decoding")]
    TooDeeplyEncoded { path: String },
}

impl NormPath {
    /// Normalizes a request target's path (`/a/b?q#f`); `""` is `/`.
    pub fn parse(raw: &str) -> Result<NormPath, PathError> {
        let end = raw.find(['?', '#']).unwrap_or(raw.len());
        let path = &raw[..end];
        if path.is_empty() {
            return Ok(NormPath {
                routed: "/".into(),
                decoded: None,
                others: Box::default(),
            });
        }
        if !path.starts_with('/') {
            return Err(PathError::NotAbsolute { path: raw.into() });
        }
        let first = decode_routed(path, raw)?;
        let routed = resolve_dots(&first);
        // Readings before dot resolution: the routed one, then those of a server that decodes
        // again (each round also decodes `%25`, still keeping separators, so `%252F` is read as
        // the `%2F` a deny rule names), and last the fully decoded one.
        let mut unresolved = vec![first.clone()];
        let mut partial = first;
        for round in 0.. {
            let next = decode_partial(&partial, raw)?;
            if next == partial {
                break;
            }
            if round >= MAX_DECODE_ROUNDS {
                return Err(PathError::TooDeeplyEncoded { path: raw.into() });
            }
            unresolved.push(next.clone());
            partial = next;
        }
        let mut decoded = path.to_string();
        let mut rounds = 0;
        loop {
            let next = decode_all(&decoded, raw)?;
            if next == decoded {
                break;
            }
            rounds += 1;
            if rounds > MAX_DECODE_ROUNDS {
                return Err(PathError::TooDeeplyEncoded { path: raw.into() });
            }
            decoded = next;
        }
        let decoded = decoded.replace('\\', "/");
        let decoded_reading = resolve_dots(&decoded);
        unresolved.push(decoded);
        // Servlet containers and others drop `;params` from each segment before resolving
        // dots: `/public/..;/admin` is `/admin` there.
        let mut others: Vec<Box<str>> = Vec::new();
        for text in &unresolved {
            for candidate in [resolve_dots(text), resolve_dots(&strip_params(text))] {
                if *candidate != *routed && !others.iter().any(|seen| **seen == *candidate) {
                    others.push(candidate.into());
                }
            }
        }
        Ok(NormPath {
            decoded: (decoded_reading != routed).then(|| decoded_reading.into_boxed_str()),
            routed: routed.into(),
            others: others.into(),
        })
    }

    /// The routed reading, the canonical form shown in logs and prompts.
    pub fn as_str(&self) -> &str {
        &self.routed
    }

    /// Every reading a decision must consider: the routed one first, then every other one.
    pub fn readings(&self) -> impl Iterator<Item = &str> {
        std::iter::once(&*self.routed).chain(self.others.iter().map(|reading| &**reading))
    }

    /// The fully decoded reading, when it differs from the routed one.
    pub fn decoded(&self) -> Option<&str> {
        self.decoded.as_deref()
    }
}

impl fmt::Display for NormPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.routed)
    }
}

fn hex_value(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// One round of percent-decoding; `keep` says which decoded bytes stay encoded (uppercased).
/// In the routed reading (`routed`), a `%` that starts no escape is written `%25`, so decoding
/// cannot create a new escape from the bytes around it (`%%341` would otherwise become `%41`).
fn decode_once(
    input: &str,
    original: &str,
    routed: bool,
    keep: impl Fn(u8) -> bool,
) -> Result<String, PathError> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex_value),
                bytes.get(i + 2).copied().and_then(hex_value),
            )
        {
            let byte = hi << 4 | lo;
            if keep(byte) {
                out.extend_from_slice(format!("%{byte:02X}").as_bytes());
            } else {
                out.push(byte);
            }
            i += 3;
        } else if routed && bytes[i] == b'%' {
            out.extend_from_slice(b"%25");
            i += 1;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let out = String::from_utf8(out).map_err(|_| PathError::NotUtf8 {
        path: original.into(),
    })?;
    if out.chars().any(char::is_control) {
        return Err(PathError::ControlCharacter {
            path: original.into(),
        });
    }
    Ok(out)
}

/// The routed reading's decoding. `*` stays encoded too, so a `%2A` in a rule's path is a
/// literal star, never a wildcard.
fn decode_routed(input: &str, original: &str) -> Result<String, PathError> {
    decode_once(input, original, true, |b| {
        matches!(b, b'/' | b'\\' | b'%' | b'?' | b'#' | b'*')
    })
}

/// A further round of a server that decodes again: `%25` is decoded now, separators are not.
fn decode_partial(input: &str, original: &str) -> Result<String, PathError> {
    decode_once(input, original, false, |b| {
        matches!(b, b'/' | b'\\' | b'?' | b'#' | b'*')
    })
}

/// Drops `;params` from every segment (`/a;x/b;y` → `/a/b`).
fn strip_params(path: &str) -> String {
    path.split('/')
        .map(|segment| segment.split(';').next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("/")
}

fn decode_all(input: &str, original: &str) -> Result<String, PathError> {
    decode_once(input, original, false, |_| false)
}

/// Collapses empty segments and resolves `.` and `..` (RFC 3986 §5.2.4), never above `/`. A
/// trailing `/` (or a final `.`/`..`) is kept as a trailing `/`.
fn resolve_dots(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    let mut trailing = false;
    for segment in path.split('/').skip(1) {
        trailing = false;
        match segment {
            "" | "." => trailing = true,
            ".." => {
                segments.pop();
                trailing = true;
            }
            _ => segments.push(segment),
        }
    }
    let mut out = String::with_capacity(path.len());
    for segment in &segments {
        out.push('/');
        out.push_str(segment);
    }
    if trailing || segments.is_empty() {
        out.push('/');
    }
    out
}

/// What a request is decided on: a canonical host, a port and, for HTTP, method and path.
///
/// A raw TCP connection (no HTTP seen, or a CONNECT before its tunnel is opened) has no `http`
/// part: only rules without `method` and `path` terms match it.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Request {
    pub host: Host,
    pub port: u16,
    pub http: Option<HttpTarget>,
}

/// The HTTP part of a [`Request`].
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct HttpTarget {
    pub method: Method,
    pub path: NormPath,
}

/// Why a URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("`{url}` is not an absolute http(s) URL (scheme://host[:port][/path])")]
    NotAbsolute { url: String },
    #[error("scheme `{scheme}` is not http, https, ws or wss")]
    Scheme { scheme: String },
    #[error("port `{port}` is not a number from 1 to 65535")]
    Port { port: String },
    #[error(transparent)]
    Host(#[from] HostError),
    #[error(transparent)]
    Path(#[from] PathError),
    #[error(transparent)]
    Method(#[from] MethodError),
}

impl Request {
    /// A raw TCP connection to `host:port`.
    pub fn tcp(host: Host, port: u16) -> Request {
        Request {
            host,
            port,
            http: None,
        }
    }

    /// An HTTP request.
    pub fn http(method: Method, host: Host, port: u16, path: NormPath) -> Request {
        Request {
            host,
            port,
            http: Some(HttpTarget { method, path }),
        }
    }

    /// Canonicalizes `METHOD URL` as `hh rules check` and the proxy's absolute-form requests see
    /// them. User info (`user@`) is dropped; the default port follows the scheme.
    pub fn from_url(method: &str, url: &str) -> Result<Request, UrlError> {
        let method = Method::parse(method)?;
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| UrlError::NotAbsolute { url: url.into() })?;
        let default_port = match scheme.to_ascii_lowercase().as_str() {
            "http" | "ws" => 80,
            "https" | "wss" => 443,
            _ => {
                return Err(UrlError::Scheme {
                    scheme: scheme.into(),
                });
            }
        };
        // For http(s) and ws(s), `\` is a `/` (WHATWG URL), so `http://a.com\@b.com/` goes to
        // a.com, as a browser or curl would.
        let rest = rest.replace('\\', "/");
        let rest = rest.as_str();
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, target) = rest.split_at(authority_end);
        // The last `@` ends the user info (WHATWG URL), so `http://a.com@b.com/` goes to b.com.
        let host_port = authority
            .rsplit_once('@')
            .map_or(authority, |(_, host_port)| host_port);
        let (host, port) = split_host_port(host_port, url)?;
        let port = match port {
            None | Some("") => default_port,
            Some(port) => parse_port(port)?,
        };
        let host = Host::parse(host)?;
        let path = NormPath::parse(target)?;
        Ok(Request::http(method, host, port, path))
    }

    /// The address, when the host is an IP literal.
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.ip()
    }
}

fn split_host_port<'a>(
    host_port: &'a str,
    url: &str,
) -> Result<(&'a str, Option<&'a str>), UrlError> {
    if host_port.starts_with('[') {
        let close = host_port
            .find(']')
            .ok_or_else(|| UrlError::NotAbsolute { url: url.into() })?;
        let (host, after) = host_port.split_at(close + 1);
        return match after.strip_prefix(':') {
            Some(port) => Ok((host, Some(port))),
            None if after.is_empty() => Ok((host, None)),
            None => Err(UrlError::NotAbsolute { url: url.into() }),
        };
    }
    Ok(match host_port.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (host_port, None),
    })
}

/// A port number 1..=65535 in decimal.
pub fn parse_port(text: &str) -> Result<u16, UrlError> {
    match text.parse::<u16>() {
        Ok(port) if port != 0 && text.bytes().all(|b| b.is_ascii_digit()) => Ok(port),
        _ => Err(UrlError::Port { port: text.into() }),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    type Expect = fn(&PathError) -> bool;

    #[test]
    fn paths_are_stripped_decoded_collapsed_and_resolved() {
        let cases = [
            ("", "/"),
            ("/", "/"),
            ("/a/b?x=1#f", "/a/b"),
            ("/a#f?x", "/a"),
            ("/a//b///c", "/a/b/c"),
            ("/a/./b", "/a/b"),
            ("/a/b/../c", "/a/c"),
            ("/../../etc/passwd", "/etc/passwd"),
            ("/a/..", "/"),
            ("/a/b/..", "/a/"),
            ("/a/", "/a/"),
            ("/a/.", "/a/"),
            ("/%61%62c", "/abc"),
            ("/%2e%2e/%2E%2E/x", "/x"),
            ("/a/%2e/b", "/a/b"),
            ("/caf%C3%A9", "/café"),
            ("/a%20b", "/a b"),
        ];
        for (raw, routed) in cases {
            let path = NormPath::parse(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
            assert_eq!(path.as_str(), routed, "{raw}");
            assert_eq!(path.decoded(), None, "{raw}");
        }
    }

    #[test]
    fn encoded_slashes_and_double_encoding_give_a_second_reading() {
        let cases = [
            ("/a%2Fb", "/a%2Fb", "/a/b"),
            ("/a%2fb", "/a%2Fb", "/a/b"),
            ("/public%2F..%2Fadmin", "/public%2F..%2Fadmin", "/admin"),
            ("/a%5Cb", "/a%5Cb", "/a/b"),
            ("/a\\..\\admin", "/a\\..\\admin", "/admin"),
            ("/%2561dmin", "/%2561dmin", "/admin"),
            ("/%252e%252e/admin", "/%252e%252e/admin", "/admin"),
            ("/x/%25252e%25252e/y", "/x/%25252e%25252e/y", "/y"),
            ("/100%", "/100%25", "/100%"),
            ("/%zz", "/%25zz", "/%zz"),
            ("/a%23b%3fc", "/a%23b%3Fc", "/a#b?c"),
            ("/%%341", "/%2541", "/A"),
        ];
        for (raw, routed, decoded) in cases {
            let path = NormPath::parse(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
            assert_eq!(path.as_str(), routed, "{raw}");
            assert_eq!(path.decoded(), Some(decoded), "{raw}");
            assert_eq!(path.readings().next(), Some(routed), "{raw}");
            assert!(path.readings().any(|reading| reading == decoded), "{raw}");
        }
    }

    #[test]
    fn partial_decodings_and_stripped_params_are_readings_too() {
        let cases = [
            // A server that decodes twice but keeps the encoded slash it then finds.
            ("/api/grp%252Fsecret/x", "/api/grp%2Fsecret/x"),
            ("/api/grp%25252Fsecret/x", "/api/grp%2Fsecret/x"),
            // Servlet containers drop `;params` before resolving dots.
            ("/public/..;/admin", "/admin"),
            ("/public/%2e%2e;/admin", "/admin"),
            ("/admin;jsessionid=1", "/admin"),
            ("/admin%3bx", "/admin"),
        ];
        for (raw, reading) in cases {
            let path = NormPath::parse(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
            let readings: Vec<_> = path.readings().collect();
            assert!(readings.contains(&reading), "{raw}: {readings:?}");
        }
    }

    #[test]
    fn an_encoded_star_stays_a_literal_star() {
        assert_eq!(NormPath::parse("/p%2A").unwrap().as_str(), "/p%2A");
        assert_eq!(NormPath::parse("/p%2a").unwrap().as_str(), "/p%2A");
    }

    #[test]
    fn unsafe_paths_are_refused() {
        let nested = format!("/%{}41", "25".repeat(MAX_DECODE_ROUNDS + 1));
        let cases: [(&str, Expect); 6] = [
            ("relative", |e| matches!(e, PathError::NotAbsolute { .. })),
            ("*", |e| matches!(e, PathError::NotAbsolute { .. })),
            ("/%00", |e| matches!(e, PathError::ControlCharacter { .. })),
            ("/a%0d%0aSet-Cookie", |e| {
                matches!(e, PathError::ControlCharacter { .. })
            }),
            ("/%ff", |e| matches!(e, PathError::NotUtf8 { .. })),
            (&nested, |e| matches!(e, PathError::TooDeeplyEncoded { .. })),
        ];
        for (raw, expected) in cases {
            match NormPath::parse(raw) {
                Ok(path) => panic!("{raw:?} was accepted as {path}"),
                Err(error) => assert!(expected(&error), "{raw:?}: {error:?}"),
            }
        }
    }

    #[test]
    fn methods_are_tokens_and_uppercased() {
        assert_eq!(
            Method::parse("get").map(|m| m.to_string()),
            Ok("GET".into())
        );
        assert_eq!(
            Method::parse("PROPFIND").map(|m| m.to_string()),
            Ok("PROPFIND".into())
        );
        for bad in ["", "GE T", "GET\r", "G(ET"] {
            assert!(Method::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn urls_canonicalize_host_port_and_path() {
        let cases = [
            (
                "https://API.GitHub.com./repos/a/../b?x#y",
                "api.github.com",
                443,
                "/repos/b",
            ),
            ("http://example.com", "example.com", 80, "/"),
            ("http://example.com:8080/x", "example.com", 8080, "/x"),
            ("HTTPS://example.com:/x", "example.com", 443, "/x"),
            ("http://user:pw@evil.com@good.com/", "good.com", 80, "/"),
            ("http://[::ffff:127.0.0.1]:81/", "127.0.0.1", 81, "/"),
            ("http://0x7f.1/", "127.0.0.1", 80, "/"),
            ("http://2130706433/", "127.0.0.1", 80, "/"),
            (
                "wss://bücher.example/ws",
                "xn--bcher-kva.example",
                443,
                "/ws",
            ),
            ("http://example.com?q", "example.com", 80, "/"),
            ("http://a.com\\@b.com/x", "a.com", 80, "/@b.com/x"),
            ("http://a.com\\x\\..\\y", "a.com", 80, "/y"),
        ];
        for (url, host, port, path) in cases {
            let request = Request::from_url("get", url).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(request.host.as_str(), host, "{url}");
            assert_eq!(request.port, port, "{url}");
            let http = request.http.expect("an HTTP request");
            assert_eq!(http.path.as_str(), path, "{url}");
            assert_eq!(http.method.as_str(), "GET");
        }
    }

    #[test]
    fn malformed_urls_are_refused() {
        for url in [
            "example.com/x",
            "ftp://example.com/",
            "http://example.com:0/",
            "http://example.com:65536/",
            "http://example.com:+80/",
            "http://[::1/",
            "http://[::1]x/",
            "http:///x",
            "http://exa mple.com/",
            "http://example.com/%00",
        ] {
            assert!(Request::from_url("GET", url).is_err(), "{url}");
        }
    }

    proptest! {
        #[test]
        fn path_normalization_is_idempotent_and_never_leaves_the_root(raw in "(/|[a-c]|\\.|%2[eEfF5]|%5[cC]|%25|\\\\|%)*") {
            let raw = format!("/{raw}");
            if let Ok(path) = NormPath::parse(&raw) {
                for reading in path.readings() {
                    prop_assert!(reading.starts_with('/'));
                    prop_assert!(!reading.contains("//"), "{reading}");
                    prop_assert!(reading.split('/').all(|s| s != "." && s != ".."), "{reading}");
                }
                let again = NormPath::parse(path.as_str()).unwrap();
                prop_assert_eq!(again.as_str(), path.as_str());
                if let Some(decoded) = path.decoded() {
                    // Fully decoded: nothing left that a further round would change.
                    prop_assert_eq!(decode_all(decoded, decoded).unwrap(), decoded);
                }
            }
        }
    }
}
