//! The server name a TLS ClientHello asks for, read from bytes the proxy peeked at (not
//! consumed), for connections it splices without terminating (`bypass_proxy`).
//!
//! Only the first record is read, and only what RFC 8446 §4.1.2 and RFC 6066 §3 lay out; any
//! length that runs past its container is malformed. The caller bounds how many bytes it peeks.

/// What the peeked bytes say.
#[derive(Debug, PartialEq, Eq)]
pub enum Hello {
    /// The record is not complete yet; peek again once more bytes arrived.
    Incomplete,
    /// A whole ClientHello; its `host_name` server name, if it has one.
    ServerName(Option<String>),
    /// Not a TLS ClientHello, or malformed.
    Malformed,
}

/// The largest ClientHello record hh reads (a record is at most 2^14 bytes of plaintext).
pub const MAX_RECORD: usize = 5 + (1 << 14);

pub fn parse(bytes: &[u8]) -> Hello {
    let Some(header) = bytes.get(..5) else {
        return if bytes.first().is_none_or(|&b| b == 0x16) {
            Hello::Incomplete
        } else {
            Hello::Malformed
        };
    };
    if header[0] != 0x16 {
        return Hello::Malformed;
    }
    let record_len = usize::from(u16::from_be_bytes([header[3], header[4]]));
    if record_len > 1 << 14 {
        return Hello::Malformed;
    }
    let Some(record) = bytes.get(5..5 + record_len) else {
        return Hello::Incomplete;
    };
    match server_name(record) {
        Some(name) => Hello::ServerName(name),
        None => Hello::Malformed,
    }
}

/// `None`: malformed. `Some(None)`: a ClientHello without a host name.
fn server_name(record: &[u8]) -> Option<Option<String>> {
    let mut r = Reader(record);
    if r.u8()? != 1 {
        return None; // not a ClientHello
    }
    let body_len = r.u24()?;
    // A ClientHello spread over several records is legal but unusual; refuse it rather than
    // decide on part of one.
    let mut body = Reader(r.take(body_len)?);
    body.take(2 + 32)?; // legacy_version, random
    let session_id = usize::from(body.u8()?);
    body.take(session_id)?;
    let suites = body.u16()?;
    body.take(suites)?;
    let compression = usize::from(body.u8()?);
    body.take(compression)?;
    if body.0.is_empty() {
        return Some(None); // no extensions at all
    }
    let extensions_len = body.u16()?;
    let mut extensions = Reader(body.take(extensions_len)?);
    while !extensions.0.is_empty() {
        let kind = extensions.u16()?;
        let len = extensions.u16()?;
        let data = extensions.take(len)?;
        if kind != 0 {
            continue;
        }
        let mut list = Reader(data);
        let list_len = list.u16()?;
        let mut names = Reader(list.take(list_len)?);
        while !names.0.is_empty() {
            let name_type = names.u8()?;
            let len = names.u16()?;
            let name = names.take(len)?;
            if name_type == 0 {
                return Some(Some(String::from_utf8(name.to_vec()).ok()?));
            }
        }
        return Some(None);
    }
    Some(None)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u16(&mut self) -> Option<usize> {
        let b = self.take(2)?;
        Some(usize::from(u16::from_be_bytes([b[0], b[1]])))
    }
    fn u24(&mut self) -> Option<usize> {
        let b = self.take(3)?;
        Some((usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2]))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls::pki_types::ServerName;

    use super::*;

    /// The first flight of a real rustls client for `name`.
    fn client_hello(name: &str) -> Vec<u8> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let name = ServerName::try_from(name.to_owned()).unwrap();
        let mut client = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
        let mut out = Vec::new();
        client.write_tls(&mut out).unwrap();
        out
    }

    #[test]
    fn a_rustls_client_hello_names_its_server() {
        let hello = client_hello("api.example.test");
        assert_eq!(
            parse(&hello),
            Hello::ServerName(Some("api.example.test".into()))
        );
    }

    #[test]
    fn an_ip_literal_client_hello_has_no_name() {
        assert_eq!(parse(&client_hello("192.0.2.7")), Hello::ServerName(None));
    }

    #[test]
    fn every_prefix_is_incomplete_and_never_a_name() {
        let hello = client_hello("api.example.test");
        for end in 0..hello.len() {
            assert_eq!(parse(&hello[..end]), Hello::Incomplete, "prefix {end}");
        }
    }

    #[test]
    fn corrupted_lengths_are_malformed_not_panics() {
        let hello = client_hello("api.example.test");
        for i in 5..hello.len() {
            for value in [0x00, 0xff] {
                let mut bad = hello.clone();
                bad[i] = value;
                // Whatever it says, it must not panic; a changed name byte may still parse.
                let _ = parse(&bad);
            }
        }
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Hello::Malformed);
    }
}
