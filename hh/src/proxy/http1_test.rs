//! Tests for `http1.rs`: one table of refused heads (checked by the parser and again over a real
//! loopback socket), accepted heads, incompleteness, hop-by-hop stripping, and property tests.

use std::time::Duration;

use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;

fn parse(bytes: &[u8]) -> Result<Option<(RequestHead, usize)>, Http1Error> {
    parse_request_head(bytes, &Limits::default())
}

fn parse_complete(bytes: &[u8]) -> (RequestHead, usize) {
    parse(bytes)
        .unwrap_or_else(|error| panic!("{:?} refused: {error}", lossy(bytes)))
        .unwrap_or_else(|| panic!("{:?} incomplete", lossy(bytes)))
}

/// Every request that must be refused, with the refusal; each case is sent as raw bytes.
fn refused_requests() -> Vec<(&'static str, Vec<u8>, Http1Error)> {
    use Http1Error as E;
    let many_headers: String = (0..101).map(|i| format!("X-{i}: v\r\n")).collect();
    let huge_value = "a".repeat(33 * 1024);
    let cases: Vec<(&'static str, String, Http1Error)> = vec![
        (
            "content-length with transfer-encoding",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n".into(),
            E::ContentLengthWithTransferEncoding,
        ),
        (
            "transfer-encoding before content-length",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n".into(),
            E::ContentLengthWithTransferEncoding,
        ),
        (
            "duplicate equal content-length",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n".into(),
            E::DuplicateContentLength,
        ),
        (
            "duplicate different content-length",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\ncontent-length: 6\r\n\r\n".into(),
            E::DuplicateContentLength,
        ),
        (
            "content-length as a list",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n".into(),
            E::InvalidContentLength { value: "5, 5".into() },
        ),
        (
            "content-length with a plus sign",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n".into(),
            E::InvalidContentLength { value: "+5".into() },
        ),
        (
            "negative content-length",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n".into(),
            E::InvalidContentLength { value: "-1".into() },
        ),
        (
            "content-length with a space inside",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 0\r\n\r\n".into(),
            E::InvalidContentLength { value: "1 0".into() },
        ),
        (
            "hexadecimal content-length",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n".into(),
            E::InvalidContentLength { value: "0x10".into() },
        ),
        (
            "empty content-length",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n".into(),
            E::InvalidContentLength { value: "".into() },
        ),
        (
            "content-length past 64 bits",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551616\r\n\r\n".into(),
            E::InvalidContentLength { value: "18446744073709551616".into() },
        ),
        (
            "gzip transfer-encoding",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n".into(),
            E::UnsupportedTransferEncoding { value: "gzip".into() },
        ),
        (
            "gzip then chunked transfer-encoding",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n".into(),
            E::UnsupportedTransferEncoding { value: "gzip, chunked".into() },
        ),
        (
            "chunked twice in one transfer-encoding",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n".into(),
            E::UnsupportedTransferEncoding { value: "chunked, chunked".into() },
        ),
        (
            "transfer-encoding with a prefix glued on",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n".into(),
            E::UnsupportedTransferEncoding { value: "xchunked".into() },
        ),
        (
            "two transfer-encoding fields",
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n".into(),
            E::DuplicateTransferEncoding,
        ),
        (
            "transfer-encoding in http/1.0",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n".into(),
            E::TransferEncodingInHttp10,
        ),
        (
            "bare lf after the request line",
            "GET / HTTP/1.1\nHost: a\r\n\r\n".into(),
            E::BareLf { offset: 14 },
        ),
        (
            "bare lf after a header",
            "GET / HTTP/1.1\r\nHost: a\n\r\n".into(),
            E::BareLf { offset: 23 },
        ),
        (
            "bare lf as the final empty line",
            "GET / HTTP/1.1\r\nHost: a\r\n\n".into(),
            E::BareLf { offset: 25 },
        ),
        (
            "bare lf lines only",
            "GET / HTTP/1.1\nHost: a\n\n".into(),
            E::BareLf { offset: 14 },
        ),
        (
            "bare cr inside a header value",
            "GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n".into(),
            E::BareCr { offset: 23 },
        ),
        (
            "obs-fold with a space",
            "GET / HTTP/1.1\r\nHost: a\r\nX-Long: one\r\n two\r\n\r\n".into(),
            E::ObsFold { line: 3 },
        ),
        (
            "obs-fold with a tab",
            "GET / HTTP/1.1\r\nHost: a\r\n\tX-Long: one\r\n\r\n".into(),
            E::ObsFold { line: 2 },
        ),
        (
            "space inside a header name",
            "GET / HTTP/1.1\r\nHost: a\r\nX Y: 1\r\n\r\n".into(),
            E::InvalidHeaderName { name: "X Y".into() },
        ),
        (
            "nul in a header name",
            "GET / HTTP/1.1\r\nHost: a\r\nX\0Y: 1\r\n\r\n".into(),
            E::InvalidHeaderName { name: "X\0Y".into() },
        ),
        (
            "brackets in a header name",
            "GET / HTTP/1.1\r\nHost: a\r\n[x]: 1\r\n\r\n".into(),
            E::InvalidHeaderName { name: "[x]".into() },
        ),
        (
            "non-ascii header name",
            "GET / HTTP/1.1\r\nHost: a\r\nXé: 1\r\n\r\n".into(),
            E::InvalidHeaderName { name: "Xé".into() },
        ),
        (
            "empty header name",
            "GET / HTTP/1.1\r\nHost: a\r\n: 1\r\n\r\n".into(),
            E::InvalidHeaderName { name: "".into() },
        ),
        (
            "header line without a colon",
            "GET / HTTP/1.1\r\nHost: a\r\nX-Nothing\r\n\r\n".into(),
            E::MissingColon { line: 2 },
        ),
        (
            "space before the colon",
            "GET / HTTP/1.1\r\nHost : a\r\n\r\n".into(),
            E::WhitespaceBeforeColon { name: "Host ".into() },
        ),
        (
            "tab before the colon",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length\t: 5\r\n\r\n".into(),
            E::WhitespaceBeforeColon { name: "Content-Length\t".into() },
        ),
        (
            "transfer-encoding spelled with an underscore",
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer_Encoding: chunked\r\n\r\n".into(),
            E::FramingLookalike { name: "Transfer_Encoding".into() },
        ),
        (
            "content-length spelled with a dot",
            "POST / HTTP/1.1\r\nHost: a\r\ncontent.length: 5\r\n\r\n".into(),
            E::FramingLookalike { name: "content.length".into() },
        ),
        (
            "control character in a header value",
            "GET / HTTP/1.1\r\nHost: a\r\nX-Y: a\x01b\r\n\r\n".into(),
            E::InvalidHeaderValue { name: "X-Y".into() },
        ),
        (
            "nul in a header value",
            "GET / HTTP/1.1\r\nHost: a\0b\r\n\r\n".into(),
            E::InvalidHeaderValue { name: "Host".into() },
        ),
        (
            "delete in a header value",
            "GET / HTTP/1.1\r\nHost: a\r\nX-Y: \x7f\r\n\r\n".into(),
            E::InvalidHeaderValue { name: "X-Y".into() },
        ),
        (
            "http/1.1 without host",
            "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n".into(),
            E::MissingHost,
        ),
        (
            "two hosts",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".into(),
            E::DuplicateHost,
        ),
        (
            "two equal hosts in http/1.0",
            "GET / HTTP/1.0\r\nHost: a\r\nhost: a\r\n\r\n".into(),
            E::DuplicateHost,
        ),
        (
            "two spaces after the method",
            "GET  / HTTP/1.1\r\nHost: a\r\n\r\n".into(),
            E::InvalidRequestLine { reason: "not exactly three parts separated by single spaces" },
        ),
        (
            "trailing space after the version",
            "GET / HTTP/1.1 \r\nHost: a\r\n\r\n".into(),
            E::InvalidRequestLine { reason: "not exactly three parts separated by single spaces" },
        ),
        (
            "leading space before the method",
            " GET / HTTP/1.1\r\nHost: a\r\n\r\n".into(),
            E::InvalidRequestLine { reason: "not exactly three parts separated by single spaces" },
        ),
        (
            "tab between target and version",
            "GET /\tHTTP/1.1\r\nHost: a\r\n\r\n".into(),
            E::InvalidRequestLine { reason: "not exactly three parts separated by single spaces" },
        ),
        (
            "http/0.9 style request line",
            "GET /\r\n\r\n".into(),
            E::InvalidRequestLine { reason: "not exactly three parts separated by single spaces" },
        ),
        (
            "empty line before the request line",
            "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n".into(),
            E::InvalidRequestLine { reason: "empty line before the request line" },
        ),
        (
            "http/2.0",
            "GET / HTTP/2.0\r\nHost: a\r\n\r\n".into(),
            E::UnsupportedVersion { version: "HTTP/2.0".into() },
        ),
        (
            "http/1.2",
            "GET / HTTP/1.2\r\nHost: a\r\n\r\n".into(),
            E::UnsupportedVersion { version: "HTTP/1.2".into() },
        ),
        (
            "lowercase version",
            "GET / http/1.1\r\nHost: a\r\n\r\n".into(),
            E::UnsupportedVersion { version: "http/1.1".into() },
        ),
        (
            "version with a leading zero",
            "GET / HTTP/01.1\r\nHost: a\r\n\r\n".into(),
            E::UnsupportedVersion { version: "HTTP/01.1".into() },
        ),
        (
            "method with a slash",
            "GE/T / HTTP/1.1\r\nHost: a\r\n\r\n".into(),
            E::InvalidMethod { method: "GE/T".into() },
        ),
        (
            "target with a control character",
            "GET /a\x01b HTTP/1.1\r\nHost: a\r\n\r\n".into(),
            E::InvalidTarget { method: "GET".into(), target: "/a\u{1}b".into() },
        ),
        (
            "relative target",
            "GET index.html HTTP/1.1\r\nHost: a\r\n\r\n".into(),
            E::InvalidTarget { method: "GET".into(), target: "index.html".into() },
        ),
        (
            "asterisk target for get",
            "GET * HTTP/1.1\r\nHost: a\r\n\r\n".into(),
            E::InvalidTarget { method: "GET".into(), target: "*".into() },
        ),
        (
            "origin-form target for connect",
            "CONNECT /x HTTP/1.1\r\nHost: a\r\n\r\n".into(),
            E::InvalidTarget { method: "CONNECT".into(), target: "/x".into() },
        ),
        (
            "connection naming content-length",
            "POST / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Content-Length\r\nContent-Length: 3\r\n\r\n".into(),
            E::ConnectionNamesEndToEndField { name: "content-length".into() },
        ),
        (
            "connection naming host",
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: host\r\n\r\n".into(),
            E::ConnectionNamesEndToEndField { name: "host".into() },
        ),
        (
            "connection option that is not a token",
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: a b\r\n\r\n".into(),
            E::InvalidConnectionOption { value: "a b".into() },
        ),
        (
            "more than 100 header fields",
            format!("GET / HTTP/1.1\r\nHost: a\r\n{many_headers}\r\n"),
            E::TooManyHeaders { limit: 100 },
        ),
        (
            "head longer than 32 KiB",
            format!("GET / HTTP/1.1\r\nHost: a\r\nX-Big: {huge_value}\r\n\r\n"),
            E::HeadTooLarge { limit: 32 * 1024 },
        ),
    ];
    cases
        .into_iter()
        .map(|(name, text, error)| (name, text.into_bytes(), error))
        .collect()
}

/// Requests whose head is fine but that carry bytes after the body of a closing message.
fn smuggling_after_body() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "bytes after a content-length body with connection close",
            b"POST / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 3\r\n\r\nabcGET /admin HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
        ),
        (
            "bytes after an http/1.0 request without keep-alive",
            b"GET / HTTP/1.0\r\nHost: a\r\n\r\nGET /admin HTTP/1.0\r\n\r\n".to_vec(),
        ),
    ]
}

#[test]
fn every_ambiguous_or_malformed_head_is_refused_with_its_reason() {
    for (name, bytes, expected) in refused_requests() {
        assert_eq!(parse(&bytes).map(|_| ()), Err(expected), "{name}");
    }
}

#[test]
fn well_formed_heads_are_accepted_with_their_framing_and_persistence() {
    let cases: [(&str, &str, BodyFraming, bool); 10] = [
        (
            "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
            "GET",
            BodyFraming::None,
            true,
        ),
        (
            "POST /x?y=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 007\r\n\r\n",
            "POST",
            BodyFraming::ContentLength(7),
            true,
        ),
        (
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ChUnKeD \r\n\r\n",
            "POST",
            BodyFraming::Chunked,
            true,
        ),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            "GET",
            BodyFraming::None,
            false,
        ),
        ("GET / HTTP/1.0\r\n\r\n", "GET", BodyFraming::None, false),
        (
            "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
            "GET",
            BodyFraming::None,
            true,
        ),
        (
            "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
            "CONNECT",
            BodyFraming::None,
            true,
        ),
        (
            "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
            "OPTIONS",
            BodyFraming::None,
            true,
        ),
        (
            "GET http://a/b HTTP/1.1\r\nHost: a\r\nX-Empty:\r\nX-Utf8: caf\u{e9}\r\n\r\n",
            "GET",
            BodyFraming::None,
            true,
        ),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: , keep-alive,,\r\n\r\n",
            "GET",
            BodyFraming::None,
            true,
        ),
    ];
    for (text, method, framing, persistent) in cases {
        let (head, len) = parse_complete(text.as_bytes());
        assert_eq!(len, text.len(), "{text:?}");
        assert_eq!(head.method, method, "{text:?}");
        assert_eq!(head.framing, framing, "{text:?}");
        assert_eq!(head.persistent, persistent, "{text:?}");
    }
}

#[test]
fn header_values_lose_surrounding_whitespace_and_keep_the_rest() {
    let (head, _) = parse_complete(b"GET / HTTP/1.1\r\nHost:  a \t\r\nX-Y:\tb  c\t\r\n\r\n");
    assert_eq!(
        head.headers,
        vec![Header::new("Host", "a"), Header::new("X-Y", "b  c")]
    );
    assert_eq!(head.host(), Some(&b"a"[..]));
}

#[test]
fn every_prefix_of_a_valid_head_is_incomplete_and_the_rest_is_left_for_the_body() {
    let text = b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nbody";
    let head_len = text.len() - 4;
    for end in 0..head_len {
        assert_eq!(parse(&text[..end]), Ok(None), "prefix of {end} bytes");
    }
    let (head, len) = parse_complete(text);
    assert_eq!(len, head_len);
    assert_eq!(head.message_len(len), Some(text.len() as u64));
}

#[test]
fn a_head_that_is_still_too_short_to_judge_waits_but_one_over_the_limit_is_refused() {
    let limits = Limits {
        max_head_bytes: 64,
        max_headers: 2,
    };
    let cases: [(&[u8], Result<bool, Http1Error>); 5] = [
        (b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1", Ok(false)),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n\r\n", Ok(true)),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nX-B: 2\r\n\r\n",
            Err(Http1Error::TooManyHeaders { limit: 2 }),
        ),
        (&[b'a'; 64], Err(Http1Error::HeadTooLarge { limit: 64 })),
        (&[b'a'; 63], Ok(false)),
    ];
    for (bytes, expected) in cases {
        let got = parse_request_head(bytes, &limits).map(|head| head.is_some());
        assert_eq!(got, expected, "{:?}", lossy(bytes));
    }
}

#[test]
fn bytes_after_the_body_are_refused_only_when_the_connection_closes() {
    let cases = [
        (false, 10, 10, Ok(())),
        (false, 10, 11, Err(Http1Error::BytesAfterBody { extra: 1 })),
        (true, 10, 50, Ok(())),
        (false, 10, 3, Ok(())),
    ];
    for (persistent, message_len, received, expected) in cases {
        assert_eq!(
            check_bytes_after_message(persistent, message_len, received),
            expected,
            "persistent={persistent} message_len={message_len} received={received}"
        );
    }
}

#[test]
fn hop_by_hop_fields_and_those_connection_names_are_stripped() {
    let cases: [(&str, bool, &[&str]); 3] = [
        (
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: X-Secret, keep-alive\r\nKeep-Alive: 5\r\n\
             X-Secret: 1\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\nTrailer: X\r\n\
             Proxy-Authorization: Basic x\r\nUpgrade: websocket\r\nAccept: */*\r\n\r\n",
            false,
            &["Host", "Accept"],
        ),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
            true,
            &["Host", "Upgrade"],
        ),
        (
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n",
            false,
            &["Host", "X-A"],
        ),
    ];
    for (text, keep_upgrade, kept) in cases {
        let (mut head, _) = parse_complete(text.as_bytes());
        strip_hop_by_hop(&mut head.headers, keep_upgrade);
        let names: Vec<&str> = head.headers.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, kept, "{text:?}");
    }
}

#[test]
fn stripping_never_removes_host_or_content_length_even_when_named() {
    let mut headers = vec![
        Header::new("Connection", "host, content-length"),
        Header::new("Host", "a"),
        Header::new("Content-Length", "3"),
    ];
    strip_hop_by_hop(&mut headers, false);
    assert_eq!(
        headers,
        vec![Header::new("Host", "a"), Header::new("Content-Length", "3")]
    );
}

#[test]
fn an_upgrade_request_is_recognised() {
    let cases = [
        (
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
            true,
        ),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n",
            false,
        ),
        (
            "GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n\r\n",
            false,
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(
            parse_complete(text.as_bytes()).0.wants_upgrade(),
            expected,
            "{text:?}"
        );
    }
}

// ---- properties ----

fn token() -> impl Strategy<Value = String> {
    "[!#$%&'*+.^_`|~0-9A-Za-z-]{1,16}"
}

fn header_value() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        8 => 0x21_u8..=0x7e,
        1 => 0x80_u8..=0xff,
        1 => Just(b' '),
        1 => Just(b'\t'),
    ];
    prop::collection::vec(byte, 0..40).prop_map(|value| trim_ows(&value).to_vec())
}

/// An extension field: any token but the names with framing or routing meaning.
fn plain_header() -> impl Strategy<Value = Header> {
    (token(), header_value())
        .prop_filter(
            "framing and routing fields are generated apart",
            |(name, _)| {
                !["host", "content-length", "transfer-encoding", "connection"]
                    .iter()
                    .any(|special| name.eq_ignore_ascii_case(special))
            },
        )
        .prop_map(|(name, value)| Header { name, value })
}

prop_compose! {
    fn well_formed_head()(
        method in token().prop_filter("CONNECT and OPTIONS take other targets", |m| m != "CONNECT" && m != "OPTIONS"),
        path in "/[!-~]{0,40}",
        http11 in any::<bool>(),
        host in "[a-z0-9.-]{1,30}",
        mut headers in prop::collection::vec(plain_header(), 0..20),
        framing in prop_oneof![
            Just(BodyFraming::None),
            any::<u64>().prop_map(BodyFraming::ContentLength),
            Just(BodyFraming::Chunked),
        ],
        close in any::<bool>(),
        at in any::<prop::sample::Index>(),
    ) -> RequestHead {
        let version = if http11 { Version::Http11 } else { Version::Http10 };
        let framing = match framing {
            BodyFraming::Chunked if version == Version::Http10 => BodyFraming::None,
            other => other,
        };
        let mut special = vec![Header::new("Host", host)];
        match framing {
            BodyFraming::None => {}
            BodyFraming::ContentLength(len) => special.push(Header::new("Content-Length", len.to_string())),
            BodyFraming::Chunked => special.push(Header::new("Transfer-Encoding", "chunked")),
        }
        special.push(Header::new("Connection", if close { "close" } else { "keep-alive" }));
        for header in special {
            let position = at.index(headers.len() + 1);
            headers.insert(position, header);
        }
        RequestHead {
            method,
            target: path,
            version,
            headers,
            framing,
            persistent: !close,
        }
    }
}

proptest! {
    #[test]
    fn parsing_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = parse(&bytes);
    }

    #[test]
    fn a_printed_well_formed_head_parses_back_to_itself(head in well_formed_head()) {
        let bytes = head.to_bytes();
        let (parsed, len) = parse(&bytes)
            .map_err(|error| TestCaseError::fail(format!("refused: {error}")))?
            .ok_or_else(|| TestCaseError::fail("incomplete"))?;
        prop_assert_eq!(len, bytes.len());
        prop_assert_eq!(parsed, head);
    }

    #[test]
    fn a_mutated_head_is_refused_or_parses_to_a_head_that_prints_and_parses_stably(
        head in well_formed_head(),
        position in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        insert in any::<bool>(),
    ) {
        let mut bytes = head.to_bytes();
        let at = position.index(bytes.len());
        if insert { bytes.insert(at, byte) } else { bytes[at] = byte }
        if let Ok(Some((parsed, _))) = parse(&bytes) {
            let again = parse(&parsed.to_bytes());
            prop_assert_eq!(again.map(|found| found.map(|(head, _)| head)), Ok(Some(parsed)));
        }
    }
}

// ---- over a real socket ----

const BAD_REQUEST: &[u8] =
    b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
const OK: &[u8] = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";

/// A one-request-per-connection server that reads with this module and answers 400 on refusal.
async fn serve(listener: TcpListener) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        tokio::spawn(async move {
            let verdict = read_one_request(&mut stream).await;
            let answer = if verdict.is_ok() { OK } else { BAD_REQUEST };
            let _ = stream.write_all(answer).await;
            let _ = stream.shutdown().await;
            // Drain what the client still sends: closing with unread bytes makes the kernel send
            // RST, which can destroy the 400 before the client reads it.
            let mut sink = [0_u8; 4096];
            let drain = async { while let Ok(1..) = stream.read(&mut sink).await {} };
            let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
        });
    }
}

async fn read_one_request(stream: &mut TcpStream) -> Result<(), Http1Error> {
    let limits = Limits::default();
    let mut buf = Vec::new();
    let mut chunk = [0_u8; 4096];
    let (head, head_len) = loop {
        if let Some(found) = parse_request_head(&buf, &limits)? {
            break found;
        }
        let read = stream.read(&mut chunk).await.unwrap_or(0);
        if read == 0 {
            return Err(Http1Error::InvalidRequestLine {
                reason: "connection closed before the head ended",
            });
        }
        buf.extend_from_slice(&chunk[..read]);
    };
    let Some(message_len) = head.message_len(head_len) else {
        return Ok(()); // chunked bodies are the chunk decoder's job
    };
    if !head.persistent {
        // The client has nothing more to send: read until it shuts its side, then judge.
        let until_eof = async {
            while let Ok(read @ 1..) = stream.read(&mut chunk).await {
                buf.extend_from_slice(&chunk[..read]);
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(5), until_eof).await;
    }
    check_bytes_after_message(head.persistent, message_len, buf.len() as u64)
}

async fn exchange(addr: std::net::SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr)
        .await
        .expect("connect to the test server");
    // The server may answer and close before reading everything (a refusal mid-head); a failed
    // write is then expected, the answer is what counts.
    let _ = stream.write_all(request).await;
    let _ = stream.shutdown().await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "server neither answered nor closed");
    answer
}

#[tokio::test]
async fn every_refused_request_sent_over_a_socket_gets_400_and_a_close() {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local address");
    let server = tokio::spawn(serve(listener));

    let good = b"POST / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 3\r\n\r\nabc";
    assert_eq!(
        exchange(addr, good).await,
        OK,
        "the server accepts a clean request"
    );

    let refused = refused_requests()
        .into_iter()
        .map(|(name, bytes, _)| (name, bytes))
        .chain(smuggling_after_body());
    for (name, bytes) in refused {
        // read_to_end returning means the server closed the connection after its answer.
        assert_eq!(exchange(addr, &bytes).await, BAD_REQUEST, "{name}");
    }
    server.abort();
}

#[test]
fn framing_fields_spelled_with_other_punctuation_are_known_and_the_fields_themselves_are_not() {
    for name in [
        "Transfer_Encoding",
        "transfer.encoding",
        "TransferEncoding",
        "Content_Length",
        "content-length-",
        "-Content~Length",
    ] {
        assert!(is_framing_lookalike(name), "{name}");
    }
    for name in [
        "Transfer-Encoding",
        "CONTENT-LENGTH",
        "Content-Encoding",
        "Transfer-Encodings",
        "X-Content-Length",
        "te",
    ] {
        assert!(!is_framing_lookalike(name), "{name}");
    }
}

#[test]
fn rerouting_fields_are_known_in_any_case_and_with_underscores() {
    for name in [
        "x-http-method-override",
        "X-HTTP-Method-Override",
        "X_HTTP_METHOD_OVERRIDE",
        "x-original-url",
        "X-Forwarded-Uri",
    ] {
        assert!(is_rerouting(name), "{name}");
    }
    for name in [
        "x-request-id",
        "x-http-method-overrides",
        "accept",
        "x_original_ur",
    ] {
        assert!(!is_rerouting(name), "{name}");
    }
}
