//! The server name a TLS ClientHello asks for, read from bytes the proxy peeked at (not
//! consumed), for connections it splices without terminating (`bypass_proxy`).
//!
//! Only the first record is read, and only what RFC 8446 §4.1.2 and RFC 6066 §3 lay out; any
//! length that runs past its container is malformed, and so are bytes after the ClientHello, an
//! extension that appears twice (RFC 8446 §4.2: "MUST NOT") and a second `host_name` (RFC 6066
//! §3), since hh and the upstream could read different ones. The caller bounds how many bytes it
//! peeks.
//!
//! A ClientHello that carries Encrypted Client Hello (`encrypted_client_hello`, `0xfe0d`, and
//! `ech_outer_extensions`, `0xfd00`, of draft-ietf-tls-esni, "TLS Encrypted Client Hello") or the
//! older draft ESNI extension (`0xffce`) is [`Hello::EncryptedName`] whatever its cleartext SNI
//! says: the cleartext name is then only the ECH *public name*, and the name the upstream serves
//! is encrypted to it, so hh cannot check it. GREASE ECH (draft-ietf-tls-esni §6.2) is built to
//! look exactly like real ECH and is refused the same.

/// What the peeked bytes say.
#[derive(Debug, PartialEq, Eq)]
pub enum Hello {
    /// The record is not complete yet; peek again once more bytes arrived.
    Incomplete,
    /// A whole ClientHello; its `host_name` server name, if it has one.
    ServerName(Option<String>),
    /// A whole ClientHello whose real server name is encrypted (ECH, ESNI): its cleartext SNI
    /// says nothing about where the connection goes.
    EncryptedName,
    /// Not a TLS ClientHello, or malformed.
    Malformed,
}

/// The largest ClientHello record hh reads (a record is at most 2^14 bytes of plaintext).
pub const MAX_RECORD: usize = 5 + (1 << 14);

/// `server_name` (RFC 6066 §3).
const SERVER_NAME: u16 = 0x0000;
/// `encrypted_client_hello` (draft-ietf-tls-esni §5).
const ENCRYPTED_CLIENT_HELLO: u16 = 0xfe0d;
/// `ech_outer_extensions` (draft-ietf-tls-esni §5.1): belongs only inside an encrypted inner
/// ClientHello.
const ECH_OUTER_EXTENSIONS: u16 = 0xfd00;
/// `encrypted_server_name` of draft-ietf-tls-esni-01..06, which browsers shipped before ECH.
const ENCRYPTED_SERVER_NAME: u16 = 0xffce;

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
    client_hello(record).unwrap_or(Hello::Malformed)
}

/// `None`: malformed.
fn client_hello(record: &[u8]) -> Option<Hello> {
    let mut r = Reader(record);
    if r.u8()? != 1 {
        return None; // not a ClientHello
    }
    let body_len = r.u24()?;
    // A ClientHello spread over several records is legal but unusual; refuse it rather than
    // decide on part of one.
    let mut body = Reader(r.take(body_len)?);
    if !r.0.is_empty() {
        return None; // another handshake message in the first record
    }
    body.take(2 + 32)?; // legacy_version, random
    let session_id = usize::from(body.u8()?);
    body.take(session_id)?;
    let suites = body.u16()?;
    body.take(suites)?;
    let compression = usize::from(body.u8()?);
    body.take(compression)?;
    if body.0.is_empty() {
        return Some(Hello::ServerName(None)); // no extensions at all
    }
    let extensions_len = body.u16()?;
    let mut extensions = Reader(body.take(extensions_len)?);
    if !body.0.is_empty() {
        return None;
    }
    let mut seen: Vec<u16> = Vec::new();
    let mut name = None;
    let mut encrypted = false;
    // Every extension is looked at: an ECH extension after the SNI counts as much as one before.
    while !extensions.0.is_empty() {
        let kind = u16::try_from(extensions.u16()?).ok()?;
        let len = extensions.u16()?;
        let data = extensions.take(len)?;
        if seen.contains(&kind) {
            return None;
        }
        seen.push(kind);
        match kind {
            SERVER_NAME => name = Some(host_name(data)?),
            ENCRYPTED_CLIENT_HELLO | ECH_OUTER_EXTENSIONS | ENCRYPTED_SERVER_NAME => {
                encrypted = true;
            }
            _ => {}
        }
    }
    if encrypted {
        return Some(Hello::EncryptedName);
    }
    Some(Hello::ServerName(name.flatten()))
}

/// The `host_name` of a `server_name` extension body; `None`: malformed (or two host names).
fn host_name(data: &[u8]) -> Option<Option<String>> {
    let mut list = Reader(data);
    let list_len = list.u16()?;
    let mut names = Reader(list.take(list_len)?);
    if !list.0.is_empty() {
        return None;
    }
    let mut found = None;
    while !names.0.is_empty() {
        let name_type = names.u8()?;
        let len = names.u16()?;
        let name = names.take(len)?;
        if name_type == 0 {
            if found.is_some() {
                return None;
            }
            found = Some(String::from_utf8(name.to_vec()).ok()?);
        }
    }
    Some(found)
}

/// `record` (one whole ClientHello record) with one more extension, `kind` with `body`, after
/// the others and every length around it fixed: how the tests (unit and end to end) make
/// ClientHellos no TLS library here would send. `None` when `record` is not such a record.
pub fn insert_extension(record: &[u8], kind: u16, body: &[u8]) -> Option<Vec<u8>> {
    let added = u16::try_from(4 + body.len()).ok()?;
    let mut r = Reader(record.get(5..)?);
    r.take(4 + 2 + 32)?; // handshake header, legacy_version, random
    let session_id = usize::from(r.u8()?);
    r.take(session_id)?;
    let suites = r.u16()?;
    r.take(suites)?;
    let compression = usize::from(r.u8()?);
    r.take(compression)?;
    let at = record.len() - r.0.len();
    let extensions_len = r.u16()?;
    let mut out = record.to_vec();
    let grow_u16 = |out: &mut [u8], at: usize| -> Option<()> {
        let value = u16::from_be_bytes([out[at], out[at + 1]]).checked_add(added)?;
        out[at..at + 2].copy_from_slice(&value.to_be_bytes());
        Some(())
    };
    grow_u16(&mut out, 3)?; // record length
    grow_u16(&mut out, at)?; // extensions length
    let handshake_len = u32::from_be_bytes([0, out[6], out[7], out[8]]) + u32::from(added);
    out[6..9].copy_from_slice(&handshake_len.to_be_bytes()[1..]);
    let end = at + 2 + extensions_len;
    let mut extension = kind.to_be_bytes().to_vec();
    extension.extend_from_slice(&u16::try_from(body.len()).ok()?.to_be_bytes());
    extension.extend_from_slice(body);
    out.splice(end..end, extension);
    Some(out)
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

    /// The server name rustls's own server side reads from `bytes` (its `Acceptor`, what a
    /// terminated connection's certificate is chosen by); `None` when it takes no ClientHello.
    fn rustls_sni(bytes: &[u8]) -> Option<Option<String>> {
        let mut acceptor = rustls::server::Acceptor::default();
        let mut reader = bytes;
        acceptor.read_tls(&mut reader).ok()?;
        let accepted = acceptor.accept().ok()??;
        Some(accepted.client_hello().server_name().map(str::to_owned))
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

        /// Bytes from the network never panic the reader.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            let _ = parse(&bytes);
        }

        /// A real ClientHello with bytes changed here and there: whenever hh reads a server
        /// name from it, rustls (which terminates the connection, and so picks the leaf by
        /// the name it reads) reads that same name (up to ASCII case), or refuses the hello. hh never splices a
        /// connection by a name the TLS stack would read otherwise.
        #[test]
        fn where_hh_reads_a_name_rustls_reads_the_same(
            label in "[a-z]{1,12}",
            flips in proptest::collection::vec((0usize..4096, proptest::prelude::any::<u8>()), 1..4),
        ) {
            let name = format!("{label}.example.test");
            let mut hello = client_hello(&name);
            for (at, byte) in flips {
                let at = at % hello.len();
                hello[at] = byte;
            }
            // Names compare without ASCII case (rustls lowers them; hh's callers fold them).
            if let Hello::ServerName(ours) = parse(&hello)
                && let Some(theirs) = rustls_sni(&hello)
            {
                proptest::prop_assert_eq!(
                    ours.map(|name| name.to_ascii_lowercase()),
                    theirs
                );
            }
        }
    }

    #[test]
    fn unchanged_hellos_read_alike_here_and_in_rustls() {
        for name in ["api.example.test", "a.b.c.example.test", "x.test"] {
            let hello = client_hello(name);
            assert_eq!(rustls_sni(&hello), Some(Some(name.to_owned())));
            assert_eq!(parse(&hello), Hello::ServerName(Some(name.to_owned())));
        }
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

    /// What a client offering ECH sends as `encrypted_client_hello` in its outer ClientHello
    /// (type 0, a cipher suite, a config id, an encapsulated key, a payload): a GREASE ECH has
    /// the very same shape, with random bytes.
    const ECH_OUTER: &[u8] = &[
        0x00, 0x00, 0x01, 0x00, 0x01, 0x2a, 0x00, 0x02, 0xaa, 0xbb, 0x00, 0x03, 0x01, 0x02, 0x03,
    ];

    #[test]
    fn a_client_hello_carrying_ech_or_esni_has_an_encrypted_name_whatever_its_sni_says() {
        let hello = client_hello("public.example.test");
        let cases: [(&str, u16, &[u8]); 4] = [
            ("ECH outer (or GREASE)", 0xfe0d, ECH_OUTER),
            ("ECH inner, in the clear", 0xfe0d, &[0x01]),
            ("ech_outer_extensions", 0xfd00, &[0x02, 0x00, 0x00]),
            ("draft ESNI", 0xffce, &[0x00, 0x00]),
        ];
        for (what, kind, body) in cases {
            let with = insert_extension(&hello, kind, body).unwrap();
            assert_eq!(parse(&with), Hello::EncryptedName, "{what}");
            // The whole record is needed to know: every prefix is still incomplete.
            assert_eq!(parse(&with[..with.len() - 1]), Hello::Incomplete, "{what}");
        }
        // Another unknown extension changes nothing.
        let with = insert_extension(&hello, 0x7a7a, &[]).unwrap();
        assert_eq!(
            parse(&with),
            Hello::ServerName(Some("public.example.test".into()))
        );
    }

    #[test]
    fn a_repeated_extension_or_a_second_host_name_is_malformed() {
        let hello = client_hello("a.example.test");
        // A second server_name naming another host: which one would the upstream read?
        let mut other = vec![0x00, 0x11, 0x00, 0x00, 0x0e];
        other.extend_from_slice(b"b.example.test");
        let twice = insert_extension(&hello, 0x0000, &other).unwrap();
        assert_eq!(parse(&twice), Hello::Malformed);
        // One server_name extension listing two host names.
        let mut two_names = vec![0x00, 0x22];
        for name in [b"a.example.test", b"b.example.test"] {
            two_names.extend_from_slice(&[0x00, 0x00, 0x0e]);
            two_names.extend_from_slice(name);
        }
        let no_sni = client_hello("192.0.2.7");
        let listed = insert_extension(&no_sni, 0x0000, &two_names).unwrap();
        assert_eq!(parse(&listed), Hello::Malformed);
        // The same extension with one of them is read.
        let mut one_name = vec![0x00, 0x11, 0x00, 0x00, 0x0e];
        one_name.extend_from_slice(b"a.example.test");
        let listed = insert_extension(&no_sni, 0x0000, &one_name).unwrap();
        assert_eq!(
            parse(&listed),
            Hello::ServerName(Some("a.example.test".into()))
        );
    }

    #[test]
    fn bytes_after_the_client_hello_in_its_record_are_malformed() {
        let mut hello = client_hello("a.example.test");
        hello.extend_from_slice(&[0x01, 0x00, 0x00, 0x00]);
        let len = u16::from_be_bytes([hello[3], hello[4]]) + 4;
        hello[3..5].copy_from_slice(&len.to_be_bytes());
        assert_eq!(parse(&hello), Hello::Malformed);
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
