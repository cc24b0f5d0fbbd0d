//! Strict HTTP/1.x request heads: bytes in, a typed [`RequestHead`] out, or a refusal.
//!
//! Owns the reading of a request head and nothing else: no socket, no clock. "Incomplete" (read
//! more) is `Ok(None)`, distinct from "invalid" (`Err`, answer 400 and close), as in
//! tokio-rs/mini-redis `src/frame.rs`. The proxy stands between a client and an upstream that may
//! read the same bytes differently, so every ambiguity that could let the two disagree about where
//! a message ends is refused instead of repaired (request smuggling; RFC 9112 §6.3, §11.2):
//!
//! - line endings are CRLF only: a bare LF or bare CR anywhere in the head is refused (RFC 9112
//!   §2.2 allows accepting bare LF; we do not), as is obs-fold (§5.2) and an empty line before the
//!   request line;
//! - the request line is exactly `method SP target SP HTTP/1.0|HTTP/1.1` (§3);
//! - field names are tokens with no whitespace before the colon (§5.1); values hold no CTL but HTAB;
//! - no field name spells `Transfer-Encoding` or `Content-Length` with other punctuation
//!   (`Transfer_Encoding`): hh frames without it, a server that folds `_` to `-` (CGI style)
//!   frames with it ([`is_framing_lookalike`]);
//! - `Content-Length` appears at most once and is plain digits (§6.3 item 5); `Transfer-Encoding`
//!   appears at most once, is exactly `chunked`, never beside `Content-Length`, never in HTTP/1.0
//!   (§6.1);
//! - HTTP/1.1 needs exactly one `Host`, and no request has two (RFC 9112 §3.2);
//! - `Connection` may not name `Host` or `Content-Length`: stripping them as hop-by-hop would
//!   change the message's framing on the way upstream;
//! - the head is bounded in bytes and in header count ([`Limits`]).
//!
//! Bodies are not read here: [`BodyFraming`] says how the caller reads one, and
//! [`check_bytes_after_message`] refuses bytes after the body of a message whose connection ends
//! with it. [`strip_hop_by_hop`] removes the fields that must not be forwarded. Tokenizing is
//! written by hand rather than with `httparse`, which accepts bare LF and would need the same byte
//! checks again.

use std::fmt;

/// Bounds on what one request head may cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The longest head, request line and final empty line included.
    pub max_head_bytes: usize,
    /// The most header fields.
    pub max_headers: usize,
}

impl Default for Limits {
    /// 32 KiB and 100 fields: hyper's default field count, and more head than any real client sends.
    fn default() -> Self {
        Self {
            max_head_bytes: 32 * 1024,
            max_headers: 100,
        }
    }
}

/// The two HTTP/1 versions a request may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    Http10,
    Http11,
}

impl Version {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http10 => "HTTP/1.0",
            Self::Http11 => "HTTP/1.1",
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One header field as it was sent: name case kept, value without surrounding whitespace.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Header {
    /// A token (RFC 9110 §5.1), so always ASCII.
    pub name: String,
    /// Visible ASCII, SP, HTAB or obs-text (bytes ≥ 0x80), neither starting nor ending with SP/HTAB.
    pub value: Vec<u8>,
}

impl Header {
    pub fn new(name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
        }
    }

    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }
}

/// How the body that follows a head is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BodyFraming {
    /// No body: a request with neither `Content-Length` nor `Transfer-Encoding`.
    None,
    /// Exactly this many bytes.
    ContentLength(u64),
    /// `Transfer-Encoding: chunked`: chunks until the zero-length one and its trailers.
    Chunked,
}

/// A request head that passed every check in this module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// A token, case kept (methods are case-sensitive, RFC 9110 §9.1).
    pub method: String,
    /// Visible ASCII, as sent (origin, absolute, authority or asterisk form).
    pub target: String,
    pub version: Version,
    /// In the order sent.
    pub headers: Vec<Header>,
    /// Derived from the headers by [`parse_request_head`].
    pub framing: BodyFraming,
    /// Whether the connection stays open after this message (RFC 9112 §9.3), derived likewise.
    pub persistent: bool,
}

impl RequestHead {
    /// The values of every field called `name`, in order.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers
            .iter()
            .filter(move |header| header.is(name))
            .map(|header| header.value.as_slice())
    }

    /// The `Host` value, if there is one (there is exactly one on HTTP/1.1).
    pub fn host(&self) -> Option<&[u8]> {
        self.header_values("host").next()
    }

    /// Whether the client asks to switch protocols (`Connection: upgrade` plus an `Upgrade` field).
    pub fn wants_upgrade(&self) -> bool {
        self.headers.iter().any(|header| header.is("upgrade"))
            && connection_tokens(&self.headers).any(|token| token.eq_ignore_ascii_case(b"upgrade"))
    }

    /// Head and body length together, when the head says it: `None` for chunked bodies, whose end
    /// only the chunk decoder finds.
    pub fn message_len(&self, head_len: usize) -> Option<u64> {
        let head_len = u64::try_from(head_len).unwrap_or(u64::MAX);
        match self.framing {
            BodyFraming::None => Some(head_len),
            BodyFraming::ContentLength(body) => Some(head_len.saturating_add(body)),
            BodyFraming::Chunked => None,
        }
    }

    /// The head as it goes on the wire, CRLF line endings and the final empty line included.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.headers.len() * 32);
        out.extend_from_slice(self.method.as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.target.as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.version.as_str().as_bytes());
        out.extend_from_slice(b"\r\n");
        for header in &self.headers {
            out.extend_from_slice(header.name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(&header.value);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out
    }
}

/// Why a request was refused. Every variant means: answer 400 and close the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Http1Error {
    #[error("request head is longer than {limit} bytes")]
    HeadTooLarge { limit: usize },
    #[error("request has more than {limit} header fields")]
    TooManyHeaders { limit: usize },
    #[error("bare LF at byte {offset} of the request head (only CRLF ends a line)")]
    BareLf { offset: usize },
    #[error("bare CR at byte {offset} of the request head")]
    BareCr { offset: usize },
    #[error("malformed request line: {reason}")]
    InvalidRequestLine { reason: &'static str },
    #[error("request method `{method}` is not a token")]
    InvalidMethod { method: String },
    #[error("request target `{target}` is not valid for {method}")]
    InvalidTarget { method: String, target: String },
    #[error("unsupported HTTP version `{version}`")]
    UnsupportedVersion { version: String },
    #[error("obsolete line folding in header line {line}")]
    ObsFold { line: usize },
    #[error("header line {line} has no colon")]
    MissingColon { line: usize },
    #[error("header name `{name}` is not a token")]
    InvalidHeaderName { name: String },
    #[error("whitespace between header name `{name}` and its colon")]
    WhitespaceBeforeColon { name: String },
    #[error("header `{name}` has a control character in its value")]
    InvalidHeaderValue { name: String },
    #[error("header `{name}` is no framing field, but some servers read it as one")]
    FramingLookalike { name: String },
    #[error("request has both Content-Length and Transfer-Encoding")]
    ContentLengthWithTransferEncoding,
    #[error("request has more than one Content-Length")]
    DuplicateContentLength,
    #[error("Content-Length `{value}` is not a plain decimal number that fits 64 bits")]
    InvalidContentLength { value: String },
    #[error("request has more than one Transfer-Encoding")]
    DuplicateTransferEncoding,
    #[error("Transfer-Encoding `{value}` is not exactly `chunked`")]
    UnsupportedTransferEncoding { value: String },
    #[error("Transfer-Encoding in an HTTP/1.0 request")]
    TransferEncodingInHttp10,
    #[error("HTTP/1.1 request without Host")]
    MissingHost,
    #[error("request has more than one Host")]
    DuplicateHost,
    #[error("Connection option `{value}` is not a token")]
    InvalidConnectionOption { value: String },
    #[error("Connection names `{name}`, which must reach the upstream")]
    ConnectionNamesEndToEndField { name: String },
    #[error("{extra} bytes after the body of a request whose connection closes after it")]
    BytesAfterBody { extra: u64 },
}

/// Parses the request head at the start of `buf`.
///
/// `Ok(None)`: the head is not complete yet and nothing so far is wrong; read more and call again
/// with the whole buffer. `Ok(Some((head, len)))`: the head is the first `len` bytes; the body (see
/// [`RequestHead::framing`]) starts at `len`. `Err`: refuse the request.
pub fn parse_request_head(
    buf: &[u8],
    limits: &Limits,
) -> Result<Option<(RequestHead, usize)>, Http1Error> {
    let Some(head_len) = find_head_end(buf, limits)? else {
        return Ok(None);
    };
    // The head without its final CRLF CRLF; bare CR and LF are already refused, so splitting on
    // CRLF is the only reading there is.
    let text = buf.get(..head_len.saturating_sub(4)).unwrap_or_default();
    let mut lines = split_crlf(text);
    let request_line = lines.next().unwrap_or_default();
    let (method, target, version) = parse_request_line(request_line)?;

    let mut headers = Vec::new();
    for (index, line) in lines.enumerate() {
        if headers.len() == limits.max_headers {
            return Err(Http1Error::TooManyHeaders {
                limit: limits.max_headers,
            });
        }
        headers.push(parse_header_line(line, index + 1)?);
    }

    let framing = body_framing(&headers, version)?;
    check_host(&headers, version)?;
    let persistent = persistence(&headers, version)?;
    let head = RequestHead {
        method,
        target,
        version,
        headers,
        framing,
        persistent,
    };
    Ok(Some((head, head_len)))
}

/// Refuses bytes received after the end of a message whose connection closes after it: they can
/// only be a second request smuggled past whatever judged the first.
///
/// `message_len` is head plus body ([`RequestHead::message_len`], or the chunk decoder's count);
/// `received` is every byte read from the connection so far. On a persistent connection the bytes
/// after the body are the next request, which is fine.
pub fn check_bytes_after_message(
    persistent: bool,
    message_len: u64,
    received: u64,
) -> Result<(), Http1Error> {
    if !persistent && received > message_len {
        return Err(Http1Error::BytesAfterBody {
            extra: received - message_len,
        });
    }
    Ok(())
}

/// Fields that describe one connection, never forwarded (RFC 9110 §7.6.1), plus the proxy's own
/// credentials and the non-standard `Proxy-Connection`.
pub(crate) const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
    "proxy-authenticate",
];

/// Fields that ask a server (or a framework in front of it) to route the request by another
/// method or path than its request line's: the proxy decided on the request line, so these
/// never go upstream (OWASP's "HTTP method override" and URL-rewrite header bypasses).
///
/// Compared with `_` read as `-`: CGI-style servers (WSGI, PHP) see `X_HTTP_METHOD_OVERRIDE` and
/// `X-HTTP-Method-Override` alike. A body or query `_method=DELETE` (Rails, Laravel) is the
/// application's own routing, which no field list covers.
pub(crate) const REROUTING: [&str; 14] = [
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "x-original-url",
    "x-rewrite-url",
    "x-original-uri",
    "x-forwarded-prefix",
    "x-forwarded-path",
    "x-override-url",
    "x-original-method",
    "x-forwarded-uri",
    "x-envoy-original-path",
    "x-forwarded-host",
    "x-host",
];

/// Whether the field `name` (any case, `_` or `-`) is one of [`REROUTING`].
pub(crate) fn is_rerouting(name: &str) -> bool {
    REROUTING.iter().any(|field| {
        field.len() == name.len()
            && field.bytes().zip(name.bytes()).all(|(f, n)| {
                let n = if n == b'_' {
                    b'-'
                } else {
                    n.to_ascii_lowercase()
                };
                f == n
            })
    })
}

/// Whether the field `name` spells `Transfer-Encoding` or `Content-Length` once its
/// punctuation is dropped, without being that field (`Transfer_Encoding`, `content.length`).
/// The proxy frames a message without such a field, but a server that reads `_` as `-` (CGI's
/// `HTTP_TRANSFER_ENCODING`) frames it with it: a request smuggled in the body would reach it
/// undecided (PortSwigger's DesyncBox "underjoin" permutation; RFC 9112 §11.2). No client
/// sends one by mistake, so such a request is refused, never repaired.
pub(crate) fn is_framing_lookalike(name: &str) -> bool {
    const FRAMING: [(&str, &str); 2] = [
        ("transferencoding", "transfer-encoding"),
        ("contentlength", "content-length"),
    ];
    let letters = name.bytes().filter(u8::is_ascii_alphanumeric);
    FRAMING.iter().any(|(spelled, field)| {
        !name.eq_ignore_ascii_case(field)
            && letters
                .clone()
                .map(|byte| byte.to_ascii_lowercase())
                .eq(spelled.bytes())
    })
}

/// Fields that `Connection` may never remove: dropping them would change the message upstream.
pub(crate) const END_TO_END: [&str; 2] = ["host", "content-length"];

/// Removes the hop-by-hop fields, every field that `Connection` names, and the fields that
/// would re-route the request upstream ([`REROUTING`]).
///
/// `Transfer-Encoding` goes too: the forwarder frames the body again from [`BodyFraming`]. With
/// `keep_upgrade` (the proxy is relaying a protocol switch) the `Upgrade` field stays, and the
/// forwarder adds its own `Connection: upgrade`. `Host` and `Content-Length` are never removed,
/// even when named (the parser refuses that anyway).
pub fn strip_hop_by_hop(headers: &mut Vec<Header>, keep_upgrade: bool) {
    let named: Vec<String> = connection_tokens(headers)
        .map(|token| lossy(token).to_ascii_lowercase())
        .collect();
    headers.retain(|header| {
        let name = header.name.to_ascii_lowercase();
        if END_TO_END.contains(&name.as_str()) {
            return true;
        }
        if keep_upgrade && name == "upgrade" {
            return true;
        }
        !HOP_BY_HOP.contains(&name.as_str()) && !is_rerouting(&name) && !named.contains(&name)
    });
}

/// Finds the end of the head (`\r\n\r\n`), refusing bare CR or LF on the way.
fn find_head_end(buf: &[u8], limits: &Limits) -> Result<Option<usize>, Http1Error> {
    let window = &buf[..buf.len().min(limits.max_head_bytes)];
    for (offset, &byte) in window.iter().enumerate() {
        match byte {
            b'\n' => {
                if offset == 0 || window[offset - 1] != b'\r' {
                    return Err(Http1Error::BareLf { offset });
                }
                if offset >= 3 && &window[offset - 3..=offset] == b"\r\n\r\n" {
                    return Ok(Some(offset + 1));
                }
            }
            b'\r' => {
                if let Some(&next) = buf.get(offset + 1)
                    && next != b'\n'
                {
                    return Err(Http1Error::BareCr { offset });
                }
            }
            _ => {}
        }
    }
    if buf.len() >= limits.max_head_bytes {
        return Err(Http1Error::HeadTooLarge {
            limit: limits.max_head_bytes,
        });
    }
    Ok(None)
}

fn split_crlf(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let current = rest?;
        match current.windows(2).position(|pair| pair == b"\r\n") {
            Some(at) => {
                rest = current.get(at + 2..);
                current.get(..at)
            }
            None => {
                rest = None;
                Some(current)
            }
        }
    })
}

fn parse_request_line(line: &[u8]) -> Result<(String, String, Version), Http1Error> {
    if line.is_empty() {
        return Err(Http1Error::InvalidRequestLine {
            reason: "empty line before the request line",
        });
    }
    let parts: Vec<&[u8]> = line.split(|&byte| byte == b' ').collect();
    let [method, target, version] = parts.as_slice() else {
        return Err(Http1Error::InvalidRequestLine {
            reason: "not exactly three parts separated by single spaces",
        });
    };
    if method.is_empty() || target.is_empty() || version.is_empty() {
        return Err(Http1Error::InvalidRequestLine {
            reason: "not exactly three parts separated by single spaces",
        });
    }
    let version = match *version {
        b"HTTP/1.1" => Version::Http11,
        b"HTTP/1.0" => Version::Http10,
        other => {
            return Err(Http1Error::UnsupportedVersion {
                version: lossy(other),
            });
        }
    };
    if !method.iter().all(|&byte| is_tchar(byte)) {
        return Err(Http1Error::InvalidMethod {
            method: lossy(method),
        });
    }
    let method = lossy(method);
    if !target.iter().all(|byte| (0x21..=0x7e).contains(byte)) || !target_fits(&method, target) {
        return Err(Http1Error::InvalidTarget {
            method,
            target: lossy(target),
        });
    }
    Ok((method, lossy(target), version))
}

/// The request-target forms of RFC 9112 §3.2: authority form only for CONNECT, `*` only for
/// OPTIONS, otherwise an absolute path or an absolute URI.
fn target_fits(method: &str, target: &[u8]) -> bool {
    let absolute_uri = target
        .windows(3)
        .position(|window| window == b"://")
        .is_some_and(|at| at > 0 && target[..at].iter().all(u8::is_ascii_alphabetic));
    match method {
        "CONNECT" => !target.starts_with(b"/") && !absolute_uri && target != b"*",
        "OPTIONS" if target == b"*" => true,
        _ => target.starts_with(b"/") || absolute_uri,
    }
}

fn parse_header_line(line: &[u8], number: usize) -> Result<Header, Http1Error> {
    if line
        .first()
        .is_some_and(|&byte| byte == b' ' || byte == b'\t')
    {
        return Err(Http1Error::ObsFold { line: number });
    }
    let Some(colon) = line.iter().position(|&byte| byte == b':') else {
        return Err(Http1Error::MissingColon { line: number });
    };
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    if name
        .last()
        .is_some_and(|&byte| byte == b' ' || byte == b'\t')
    {
        return Err(Http1Error::WhitespaceBeforeColon { name: lossy(name) });
    }
    if name.is_empty() || !name.iter().all(|&byte| is_tchar(byte)) {
        return Err(Http1Error::InvalidHeaderName { name: lossy(name) });
    }
    let name = lossy(name);
    if is_framing_lookalike(&name) {
        return Err(Http1Error::FramingLookalike { name });
    }
    let value = trim_ows(value);
    if !value.iter().all(|&byte| is_field_byte(byte)) {
        return Err(Http1Error::InvalidHeaderValue { name });
    }
    Ok(Header {
        name,
        value: value.to_vec(),
    })
}

fn body_framing(headers: &[Header], version: Version) -> Result<BodyFraming, Http1Error> {
    let mut lengths = headers.iter().filter(|header| header.is("content-length"));
    let mut codings = headers
        .iter()
        .filter(|header| header.is("transfer-encoding"));
    let (length, second_length) = (lengths.next(), lengths.next());
    let (coding, second_coding) = (codings.next(), codings.next());

    if length.is_some() && coding.is_some() {
        return Err(Http1Error::ContentLengthWithTransferEncoding);
    }
    if second_length.is_some() {
        return Err(Http1Error::DuplicateContentLength);
    }
    if second_coding.is_some() {
        return Err(Http1Error::DuplicateTransferEncoding);
    }
    if let Some(coding) = coding {
        if version == Version::Http10 {
            return Err(Http1Error::TransferEncodingInHttp10);
        }
        if !coding.value.eq_ignore_ascii_case(b"chunked") {
            return Err(Http1Error::UnsupportedTransferEncoding {
                value: lossy(&coding.value),
            });
        }
        return Ok(BodyFraming::Chunked);
    }
    match length {
        Some(length) => parse_content_length(&length.value).map(BodyFraming::ContentLength),
        None => Ok(BodyFraming::None),
    }
}

/// `1*DIGIT` and nothing else: no sign, no spaces, no list (RFC 9110 §8.6).
fn parse_content_length(value: &[u8]) -> Result<u64, Http1Error> {
    let invalid = || Http1Error::InvalidContentLength {
        value: lossy(value),
    };
    if value.is_empty() {
        return Err(invalid());
    }
    value.iter().try_fold(0_u64, |total, &byte| {
        if !byte.is_ascii_digit() {
            return Err(invalid());
        }
        total
            .checked_mul(10)
            .and_then(|total| total.checked_add(u64::from(byte - b'0')))
            .ok_or_else(invalid)
    })
}

fn check_host(headers: &[Header], version: Version) -> Result<(), Http1Error> {
    match headers.iter().filter(|header| header.is("host")).count() {
        0 if version == Version::Http11 => Err(Http1Error::MissingHost),
        0 | 1 => Ok(()),
        _ => Err(Http1Error::DuplicateHost),
    }
}

/// Checks the `Connection` options and says whether the connection persists (RFC 9112 §9.3).
fn persistence(headers: &[Header], version: Version) -> Result<bool, Http1Error> {
    let (mut close, mut keep_alive) = (false, false);
    for token in connection_tokens(headers) {
        if !token.iter().all(|&byte| is_tchar(byte)) {
            return Err(Http1Error::InvalidConnectionOption {
                value: lossy(token),
            });
        }
        if let Some(name) = END_TO_END
            .iter()
            .find(|name| token.eq_ignore_ascii_case(name.as_bytes()))
        {
            return Err(Http1Error::ConnectionNamesEndToEndField {
                name: (*name).to_owned(),
            });
        }
        close |= token.eq_ignore_ascii_case(b"close");
        keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
    }
    Ok(match version {
        Version::Http11 => !close,
        Version::Http10 => keep_alive && !close,
    })
}

/// The non-empty elements of every `Connection` field (a list; RFC 9110 §5.6.1 lets elements be
/// empty).
fn connection_tokens(headers: &[Header]) -> impl Iterator<Item = &[u8]> {
    headers
        .iter()
        .filter(|header| header.is("connection"))
        .flat_map(|header| header.value.split(|&byte| byte == b','))
        .map(trim_ows)
        .filter(|token| !token.is_empty())
}

/// `tchar` of RFC 9110 §5.6.2.
fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// `field-vchar`, SP or HTAB: visible ASCII, obs-text, and no other control character.
fn is_field_byte(byte: u8) -> bool {
    matches!(byte, b'\t' | b' ' | 0x21..=0x7e | 0x80..=0xff)
}

fn trim_ows(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = bytes {
        bytes = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = bytes {
        bytes = rest;
    }
    bytes
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
#[path = "http1_test.rs"]
mod tests;
