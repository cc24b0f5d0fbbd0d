//! What makes a WebSocket upgrade real (RFC 6455 §4): once a tunnel turns to frames, no request
//! check sees its bytes again, so the turn is taken only for a real handshake.
//!
//! - The request ([`asked`]): HTTP/1.1 `GET`, `Connection: upgrade`, `Upgrade: websocket`, one
//!   `Sec-WebSocket-Key` that is 16 bytes in base64, `Sec-WebSocket-Version: 13`, and no body.
//!   A request that asks for WebSocket any other way is refused (`400`), never forwarded.
//! - The answer ([`accepted`]): a `101` whose one `Sec-WebSocket-Accept` is the key's (SHA-1 of
//!   the key and the RFC's GUID, in base64). Any other `101` is refused (`502`) and the upstream
//!   connection dropped.
//!
//! Pure: headers in, a verdict out.

use base64::{Engine as _, engine::general_purpose::STANDARD};
use hyper::{
    Method, Version,
    header::{self, HeaderMap, HeaderName},
};

/// RFC 6455 §1.3.
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

const KEY: HeaderName = HeaderName::from_static("sec-websocket-key");
const VERSION: HeaderName = HeaderName::from_static("sec-websocket-version");
const ACCEPT: HeaderName = HeaderName::from_static("sec-websocket-accept");

/// What a request asks of an upgrade.
#[derive(Debug, PartialEq, Eq)]
pub enum Asked {
    /// No WebSocket upgrade (other `Upgrade` values are hop-by-hop and stripped).
    Nothing,
    /// A real WebSocket handshake; the key its answer must match.
    WebSocket { key: String },
    /// WebSocket asked for in a way a real client does not: refused, with why.
    Invalid(&'static str),
}

/// Whether the request (its method, version, headers and announced body) asks for a WebSocket,
/// and whether it asks properly.
pub fn asked(method: &Method, version: Version, headers: &HeaderMap, has_body: bool) -> Asked {
    let upgrade_websocket = tokens(headers, &header::UPGRADE).any(|t| {
        // `websocket`, or a versioned `websocket/13`: either asks for frames.
        t.split('/')
            .next()
            .is_some_and(|name| name.eq_ignore_ascii_case("websocket"))
    });
    if !upgrade_websocket {
        // A stray Sec-WebSocket-Key with no upgrade asks for nothing.
        return Asked::Nothing;
    }
    if version != Version::HTTP_11 {
        return Asked::Invalid("a WebSocket upgrade needs HTTP/1.1");
    }
    if method != Method::GET {
        return Asked::Invalid("a WebSocket upgrade is a GET");
    }
    if !tokens(headers, &header::CONNECTION).any(|t| t.eq_ignore_ascii_case("upgrade")) {
        return Asked::Invalid("a WebSocket upgrade needs `Connection: upgrade`");
    }
    let mut upgrades = headers.get_all(header::UPGRADE).iter();
    let one_upgrade = upgrades
        .next()
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.trim().eq_ignore_ascii_case("websocket"))
        && upgrades.next().is_none();
    if !one_upgrade {
        return Asked::Invalid("a WebSocket upgrade asks for `websocket` alone");
    }
    let Some(key) = only(headers, &KEY) else {
        return Asked::Invalid("a WebSocket upgrade needs one Sec-WebSocket-Key");
    };
    if !STANDARD.decode(key).is_ok_and(|nonce| nonce.len() == 16) {
        return Asked::Invalid("Sec-WebSocket-Key is not 16 bytes in base64");
    }
    if only(headers, &VERSION) != Some("13") {
        return Asked::Invalid("a WebSocket upgrade needs Sec-WebSocket-Version: 13");
    }
    if has_body {
        return Asked::Invalid("a WebSocket upgrade carries no body");
    }
    Asked::WebSocket { key: key.into() }
}

/// Whether a `101`'s headers accept the handshake for `key`.
pub fn accepted(headers: &HeaderMap, key: &str) -> bool {
    let upgrade = tokens(headers, &header::UPGRADE).any(|t| t.eq_ignore_ascii_case("websocket"));
    upgrade && only(headers, &ACCEPT) == Some(accept_for(key).as_str())
}

/// The `Sec-WebSocket-Accept` value for `key`.
pub fn accept_for(key: &str) -> String {
    let digest = ring::digest::digest(
        &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        format!("{key}{GUID}").as_bytes(),
    );
    STANDARD.encode(digest.as_ref())
}

/// The comma-separated tokens of every `name` field.
fn tokens<'h>(headers: &'h HeaderMap, name: &HeaderName) -> impl Iterator<Item = &'h str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
}

/// The value of the one `name` field, trimmed; `None` when absent, repeated or not text.
fn only<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Option<&'h str> {
    let mut values = headers.get_all(name).iter();
    let value = values.next()?.to_str().ok()?.trim();
    values.next().is_none().then_some(value)
}

#[cfg(test)]
mod tests {
    use hyper::header::HeaderValue;

    use super::*;

    const RFC_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    fn headers(fields: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in fields {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn real() -> Vec<(&'static str, &'static str)> {
        vec![
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-key", RFC_KEY),
            ("sec-websocket-version", "13"),
        ]
    }

    fn ask(fields: &[(&str, &str)]) -> Asked {
        asked(&Method::GET, Version::HTTP_11, &headers(fields), false)
    }

    #[test]
    fn the_rfc_example_is_accepted_with_the_rfc_answer() {
        assert_eq!(
            ask(&real()),
            Asked::WebSocket {
                key: RFC_KEY.into()
            }
        );
        assert_eq!(accept_for(RFC_KEY), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        let answer = headers(&[
            ("upgrade", "websocket"),
            ("connection", "Upgrade"),
            ("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        ]);
        assert!(accepted(&answer, RFC_KEY));
    }

    #[test]
    fn a_101_with_another_or_no_accept_is_not_accepted() {
        for answer in [
            headers(&[("upgrade", "websocket")]),
            headers(&[("upgrade", "websocket"), ("sec-websocket-accept", "x")]),
            headers(&[("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")]),
            headers(&[
                ("upgrade", "websocket"),
                ("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
                ("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
            ]),
        ] {
            assert!(!accepted(&answer, RFC_KEY), "{answer:?}");
        }
    }

    #[test]
    fn a_smuggling_shaped_upgrade_is_invalid() {
        let without = |name: &str| -> Vec<(&str, &str)> {
            real().into_iter().filter(|(n, _)| *n != name).collect()
        };
        let with = |name: &'static str, value: &'static str| -> Vec<(&str, &str)> {
            let mut fields = without(name);
            fields.push((name, value));
            fields
        };
        for fields in [
            without("sec-websocket-key"),
            without("sec-websocket-version"),
            without("connection"),
            with("sec-websocket-version", "1337"),
            with("sec-websocket-key", "not base64!"),
            with("sec-websocket-key", "c2hvcnQ="),
            with("upgrade", "websocket, h2c"),
        ] {
            assert!(matches!(ask(&fields), Asked::Invalid(_)), "{fields:?}");
        }
        let fields = headers(&real());
        assert!(matches!(
            asked(&Method::GET, Version::HTTP_11, &fields, true),
            Asked::Invalid(_)
        ));
        assert!(matches!(
            asked(&Method::POST, Version::HTTP_11, &fields, false),
            Asked::Invalid(_)
        ));
        assert!(matches!(
            asked(&Method::GET, Version::HTTP_10, &fields, false),
            Asked::Invalid(_)
        ));
    }

    #[test]
    fn other_upgrades_ask_for_nothing() {
        assert_eq!(
            ask(&[
                ("connection", "Upgrade, HTTP2-Settings"),
                ("upgrade", "h2c")
            ]),
            Asked::Nothing
        );
        assert_eq!(ask(&[("accept", "*/*")]), Asked::Nothing);
    }
}
