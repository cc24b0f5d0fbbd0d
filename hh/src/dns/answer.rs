//! [`answer()`]: one query datagram in, one response datagram out. Pure: no socket, no clock; the
//! only state it touches is the [`SyntheticAddresses`] table.
//!
//! The rules, in the order they apply (each response echoes the ID, the RD bit and — when there is
//! exactly one — the question, and sets RA):
//!
//! | Query                                                  | Response                         |
//! |--------------------------------------------------------|----------------------------------|
//! | under 12 bytes, or QR=1 (a response)                   | none: dropped silently           |
//! | header parses, the rest does not                       | FORMERR                          |
//! | opcode other than QUERY                                | NOTIMP                           |
//! | zero or several questions                              | FORMERR                          |
//! | EDNS version other than 0                              | BADVERS (RFC 6891 §6.1.3)        |
//! | class other than IN                                    | REFUSED                          |
//! | name fails [`Host::parse`], is an IP literal, the root, or breaks a [`Limits`] length cap | REFUSED |
//! | `localhost` or `*.localhost`, type A                   | 127.0.0.1 (RFC 6761 §6.3)        |
//! | any other name, type A                                 | one A record from the range      |
//! | any name, any other type (AAAA, HTTPS, SVCB, MX, …)    | NOERROR, no answer (NODATA)      |
//!
//! Decisions, and why:
//! - A bad name gets REFUSED, not FORMERR: the message is well formed, the stub declines to serve
//!   that name ([RFC 1035 §4.1.1](https://www.rfc-editor.org/rfc/rfc1035#section-4.1.1): "for
//!   policy reasons"). Only bytes that do not parse as a DNS message get FORMERR.
//! - Names are checked label by label before [`Host::parse`]: only `A-Z a-z 0-9 - _` are
//!   accepted, so a label holding a dot or a control byte cannot turn into a different name once
//!   printed. The caps of [`Limits`] then apply to the *canonical* name.
//! - Types other than A get NODATA, not NOTIMP: NOTIMP is for kinds of query (opcodes), and
//!   resolvers treat it as a broken server and give up on the whole lookup, while NODATA is the
//!   true "no such record here". AAAA must be empty so clients use IPv4, which the kernel
//!   redirects; HTTPS and SVCB must be empty so no client learns an address hint or an ECH
//!   config that bypasses the name ([RFC 9460](https://www.rfc-editor.org/rfc/rfc9460)).
//! - No SOA record comes with NODATA: the answers are never cached for long by anyone but the
//!   client, so negative-caching TTLs ([RFC 2308](https://www.rfc-editor.org/rfc/rfc2308)) do not
//!   matter here.
//! - Nothing is resolved upstream: policy-gated resolution is a later step (see [`super`]).

use std::net::Ipv4Addr;

use hickory_proto::{
    op::{Edns, Header, Message, MessageType, OpCode, Query, ResponseCode},
    rr::{DNSClass, Name, RData, Record, RecordType, rdata::A},
    serialize::binary::{BinDecodable, BinDecoder},
};

use super::{Limits, synthetic::SyntheticAddresses};
use crate::rules::host::Host;

/// The EDNS UDP payload size the stub advertises: the DNS Flag Day 2020 value. Its responses are
/// far smaller anyway (one question, at most one A record).
const EDNS_PAYLOAD: u16 = 1232;

/// The response to `query`, or `None` when it must be dropped without a word (not a query at
/// all, or a response). Never panics, whatever the bytes.
pub fn answer(query: &[u8], addresses: &SyntheticAddresses, limits: &Limits) -> Option<Vec<u8>> {
    let header = Header::read(&mut BinDecoder::new(query)).ok()?;
    if header.metadata.message_type != MessageType::Query {
        // Answering a response could loop two stubs (or a spoofed peer) into a storm.
        return None;
    }
    let mut response = Message::response(header.metadata.id, header.metadata.op_code);
    response.metadata.recursion_desired = header.metadata.recursion_desired;
    response.metadata.recursion_available = true;
    response.metadata.response_code = match Message::from_vec(query) {
        Err(_) => ResponseCode::FormErr,
        Ok(message) => respond(&message, &mut response, addresses, limits),
    };
    response.to_vec().ok()
}

/// Fills `response` for a parsed query and returns its code.
fn respond(
    message: &Message,
    response: &mut Message,
    addresses: &SyntheticAddresses,
    limits: &Limits,
) -> ResponseCode {
    if let Some(edns) = &message.edns {
        // RFC 6891 §7: a query with OPT gets a response with OPT.
        let mut ours = Edns::new();
        ours.set_max_payload(EDNS_PAYLOAD);
        response.edns = Some(ours);
        if edns.version() != 0 {
            return ResponseCode::BADVERS;
        }
    }
    let [query] = message.queries.as_slice() else {
        return ResponseCode::FormErr;
    };
    response.queries.push(query.clone());
    if message.metadata.op_code != OpCode::Query {
        return ResponseCode::NotImp;
    }
    if query.query_class() != DNSClass::IN {
        return ResponseCode::Refused;
    }
    let Some(host) = canonical_name(query.name(), limits) else {
        return ResponseCode::Refused;
    };
    if query.query_type() != RecordType::A {
        return ResponseCode::NoError;
    }
    let ip = if is_localhost(&host) {
        Ipv4Addr::LOCALHOST
    } else {
        match addresses.allocate(&host) {
            Ok(ip) => ip,
            // `canonical_name` returns names only; refuse rather than trust that.
            Err(_) => return ResponseCode::Refused,
        }
    };
    response.answers.push(a_record(query, ip, limits.ttl_secs));
    ResponseCode::NoError
}

/// The canonical [`Host`] for a queried name, if it is a name the stub serves: plain labels,
/// canonicalizes, is no IP literal and fits the caps of `limits`.
fn canonical_name(name: &Name, limits: &Limits) -> Option<Host> {
    let mut text = String::with_capacity(name.len());
    for label in name.iter() {
        let plain = label
            .iter()
            .all(|&byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_');
        if !plain {
            return None;
        }
        if !text.is_empty() {
            text.push('.');
        }
        // Checked just above: every byte is ASCII.
        text.push_str(std::str::from_utf8(label).ok()?);
    }
    let host = Host::parse(&text).ok().filter(Host::is_name)?;
    let canonical = host.as_str();
    let fits = canonical.len() <= limits.max_name_len
        && canonical
            .split('.')
            .all(|label| label.len() <= limits.max_label_len);
    fits.then_some(host)
}

/// `localhost` and every name under it ([RFC 6761 §6.3](https://www.rfc-editor.org/rfc/rfc6761#section-6.3)):
/// the container's own loopback, which the kernel leaves alone.
fn is_localhost(host: &Host) -> bool {
    let name = host.as_str();
    name == "localhost" || name.ends_with(".localhost")
}

/// The A record answering `query`, under the name exactly as asked (case included: clients that
/// randomize case, [draft-vixie-dnsext-dns0x20](https://datatracker.ietf.org/doc/html/draft-vixie-dnsext-dns0x20-00), compare it).
fn a_record(query: &Query, ip: Ipv4Addr, ttl_secs: u32) -> Record {
    Record::from_rdata(query.name().clone(), ttl_secs, RData::A(A(ip)))
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;

    fn query_bytes(name: &str, query_type: RecordType) -> Vec<u8> {
        query_name_bytes(Name::from_ascii(name).unwrap(), query_type)
    }

    fn query_name_bytes(name: Name, query_type: RecordType) -> Vec<u8> {
        let mut message = Message::query();
        message.metadata.id = 0x1234;
        message.metadata.recursion_desired = true;
        message.add_query(Query::query(name, query_type));
        message.to_vec().unwrap()
    }

    /// A name made of raw label bytes, which `Name::from_ascii` would refuse to build.
    fn raw(labels: &[&[u8]]) -> Name {
        Name::from_labels(labels.iter().copied()).unwrap()
    }

    fn ask(addresses: &SyntheticAddresses, bytes: &[u8]) -> Message {
        let response = answer(bytes, addresses, &Limits::default()).expect("a response");
        Message::from_vec(&response).expect("the response parses")
    }

    fn a_addresses(message: &Message) -> Vec<Ipv4Addr> {
        message
            .answers
            .iter()
            .filter_map(|record| match record.data {
                RData::A(A(ip)) => Some(ip),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn an_a_query_gets_one_synthetic_address_that_maps_back_to_the_name() {
        let addresses = SyntheticAddresses::default();
        let response = ask(&addresses, &query_bytes("Example.TEST.", RecordType::A));
        assert_eq!(response.metadata.id, 0x1234);
        assert_eq!(response.metadata.message_type, MessageType::Response);
        assert_eq!(response.metadata.response_code, ResponseCode::NoError);
        assert!(response.metadata.recursion_available);
        assert!(response.metadata.recursion_desired);
        assert_eq!(response.queries.len(), 1);
        assert_eq!(response.queries[0].name().to_ascii(), "Example.TEST.");
        assert_eq!(response.answers.len(), 1);
        let record = &response.answers[0];
        assert_eq!(record.ttl, Limits::default().ttl_secs);
        assert_eq!(record.name.to_ascii(), "Example.TEST.");
        let ips = a_addresses(&response);
        assert_eq!(ips, [Ipv4Addr::new(198, 18, 0, 1)]);
        assert_eq!(
            addresses.name_of(ips[0]),
            Some(Host::parse("example.test").unwrap())
        );
    }

    #[test]
    fn asking_twice_gives_the_same_address_and_other_names_get_others() {
        let addresses = SyntheticAddresses::default();
        let first = a_addresses(&ask(&addresses, &query_bytes("a.test.", RecordType::A)));
        let again = a_addresses(&ask(&addresses, &query_bytes("A.test", RecordType::A)));
        let other = a_addresses(&ask(&addresses, &query_bytes("b.test.", RecordType::A)));
        assert_eq!(first, again);
        assert_ne!(first, other);
    }

    #[test]
    fn every_type_but_a_gets_nodata_and_allocates_nothing() {
        let types = [
            RecordType::AAAA,
            RecordType::HTTPS,
            RecordType::SVCB,
            RecordType::MX,
            RecordType::TXT,
            RecordType::CNAME,
            RecordType::NS,
            RecordType::PTR,
            RecordType::ANY,
            RecordType::Unknown(65_000),
        ];
        let addresses = SyntheticAddresses::default();
        for query_type in types {
            let response = ask(&addresses, &query_bytes("example.test.", query_type));
            assert_eq!(
                response.metadata.response_code,
                ResponseCode::NoError,
                "{query_type}"
            );
            assert!(response.answers.is_empty(), "{query_type}");
            assert!(response.authorities.is_empty(), "{query_type}");
            assert_eq!(response.queries[0].query_type(), query_type);
        }
        assert!(addresses.is_empty());
    }

    #[test]
    fn https_and_svcb_are_types_65_and_64() {
        assert_eq!(u16::from(RecordType::HTTPS), 65);
        assert_eq!(u16::from(RecordType::SVCB), 64);
    }

    #[test]
    fn localhost_names_get_the_loopback_address() {
        let addresses = SyntheticAddresses::default();
        for name in ["localhost.", "LocalHost", "db.localhost."] {
            let response = ask(&addresses, &query_bytes(name, RecordType::A));
            assert_eq!(a_addresses(&response), [Ipv4Addr::LOCALHOST], "{name}");
        }
        assert!(addresses.is_empty());
    }

    #[test]
    fn names_the_stub_does_not_serve_are_refused() {
        let long_label = "a".repeat(40);
        let ascii = |name: &str| Name::from_ascii(name).unwrap();
        let cases: Vec<(&str, Name)> = vec![
            ("the root", Name::root()),
            ("an IPv4 literal", ascii("1.2.3.4.")),
            ("a name ending in a number", ascii("foo.1.")),
            ("a bad punycode label", ascii("xn--a.test.")),
            (
                "a label over the cap",
                ascii(&format!("{long_label}.test.")),
            ),
            (
                "a name over the cap",
                ascii(&format!("{0}.{0}.{0}.test.", "b".repeat(30))),
            ),
            ("a space in a label", raw(&[b"a b", b"test"])),
            ("a dot inside a label", raw(&[b"a.b", b"test"])),
            ("a backslash", raw(&[b"a\\046b", b"test"])),
            ("a control byte", raw(&[b"a\0b", b"test"])),
            ("a non-ASCII byte", raw(&[b"caf\xe9", b"test"])),
            (
                "UTF-8 that IDNA would accept",
                raw(&["café".as_bytes(), b"test"]),
            ),
        ];
        let limits = Limits {
            max_label_len: 39,
            max_name_len: 90,
            ..Limits::default()
        };
        let addresses = SyntheticAddresses::default();
        for (case, name) in cases {
            let bytes = query_name_bytes(name, RecordType::A);
            let response = answer(&bytes, &addresses, &limits).expect(case);
            let response = Message::from_vec(&response).unwrap();
            assert_eq!(
                response.metadata.response_code,
                ResponseCode::Refused,
                "{case}"
            );
            assert!(response.answers.is_empty(), "{case}");
            assert_eq!(response.queries.len(), 1, "{case}");
        }
        assert!(addresses.is_empty());
    }

    #[test]
    fn the_longest_names_rfc_1035_allows_are_answered_within_512_bytes() {
        // Four labels of 63, 63, 63 and 61 bytes: 253 bytes of text.
        let name = format!("{0}.{0}.{0}.{1}.", "a".repeat(63), "b".repeat(61));
        let bytes = query_bytes(&name, RecordType::A);
        let response = answer(&bytes, &SyntheticAddresses::default(), &Limits::default()).unwrap();
        assert!(response.len() <= 512, "{} bytes", response.len());
        assert_eq!(a_addresses(&Message::from_vec(&response).unwrap()).len(), 1);
    }

    #[test]
    fn a_label_of_64_bytes_does_not_even_parse_and_gets_formerr() {
        let mut bytes = query_bytes("x.test.", RecordType::A);
        // Question name starts right after the 12-byte header: length byte 1, "x". Replace it
        // with a 64-byte label (length byte 0x40, an extended-label type in RFC 6891 terms).
        let mut long = vec![64u8];
        long.extend(std::iter::repeat_n(b'a', 64));
        bytes.splice(12..14, long);
        let response = ask(&SyntheticAddresses::default(), &bytes);
        assert_eq!(response.metadata.response_code, ResponseCode::FormErr);
        assert_eq!(response.metadata.id, 0x1234);
    }

    #[test]
    fn malformed_messages_are_dropped_or_get_formerr() {
        let good = query_bytes("example.test.", RecordType::A);
        let mut response_bit = good.clone();
        response_bit[2] |= 0x80;
        // The 12-byte header of `good` (one question), then a hand-made question.
        let with_question = |name: &[u8]| {
            let mut bytes = good[..12].to_vec();
            bytes.extend_from_slice(name);
            bytes.extend_from_slice(&[0, 1, 0, 1]); // type A, class IN
            bytes
        };
        // Five labels of 63 bytes: 320 bytes on the wire, over the 255 of RFC 1035 §3.1.
        let mut too_long = Vec::new();
        for _ in 0..5 {
            too_long.push(63);
            too_long.extend(std::iter::repeat_n(b'a', 63));
        }
        too_long.push(0);
        let cases: Vec<(&str, Vec<u8>, Option<ResponseCode>)> = vec![
            (
                "a name over 255 bytes on the wire",
                with_question(&too_long),
                Some(ResponseCode::FormErr),
            ),
            (
                "a compression pointer to itself",
                with_question(&[0xc0, 12]),
                Some(ResponseCode::FormErr),
            ),
            (
                "a compression pointer past the end",
                with_question(&[0xc0, 0xff]),
                Some(ResponseCode::FormErr),
            ),
            ("an empty datagram", vec![], None),
            ("half a header", good[..6].to_vec(), None),
            ("a response", response_bit, None),
            (
                "a header with a missing question",
                good[..12].to_vec(),
                Some(ResponseCode::FormErr),
            ),
            (
                "a truncated question",
                good[..20].to_vec(),
                Some(ResponseCode::FormErr),
            ),
        ];
        let addresses = SyntheticAddresses::default();
        let limits = Limits::default();
        for (case, bytes, expected) in cases {
            let code = answer(&bytes, &addresses, &limits)
                .map(|response| Message::from_vec(&response).unwrap().metadata.response_code);
            assert_eq!(code, expected, "{case}");
        }
    }

    #[test]
    fn only_one_question_of_class_in_with_opcode_query_is_answered() {
        let name = Name::from_ascii("example.test.").unwrap();
        let one = Query::query(name.clone(), RecordType::A);
        let mut chaos = one.clone();
        chaos.set_query_class(DNSClass::CH);
        let cases: Vec<(&str, OpCode, Vec<Query>, ResponseCode)> = vec![
            ("no question", OpCode::Query, vec![], ResponseCode::FormErr),
            (
                "two questions",
                OpCode::Query,
                vec![one.clone(), one.clone()],
                ResponseCode::FormErr,
            ),
            (
                "an UPDATE",
                OpCode::Update,
                vec![one.clone()],
                ResponseCode::NotImp,
            ),
            (
                "a NOTIFY",
                OpCode::Notify,
                vec![one.clone()],
                ResponseCode::NotImp,
            ),
            (
                "class CH",
                OpCode::Query,
                vec![chaos],
                ResponseCode::Refused,
            ),
            ("class IN", OpCode::Query, vec![one], ResponseCode::NoError),
        ];
        for (case, op_code, queries, expected) in cases {
            let mut message = Message::new(7, MessageType::Query, op_code);
            message.queries = queries;
            let response = ask(&SyntheticAddresses::default(), &message.to_vec().unwrap());
            assert_eq!(response.metadata.response_code, expected, "{case}");
            assert_eq!(response.metadata.id, 7, "{case}");
            assert_eq!(response.metadata.op_code, op_code, "{case}");
        }
    }

    #[test]
    fn an_edns_query_gets_edns_back_and_an_unknown_version_gets_badvers() {
        let cases = [
            (0u8, ResponseCode::NoError, 1usize),
            (1, ResponseCode::BADVERS, 0),
        ];
        for (version, expected, answers) in cases {
            let mut message = Message::query();
            message.add_query(Query::query(
                Name::from_ascii("e.test.").unwrap(),
                RecordType::A,
            ));
            let mut edns = Edns::new();
            edns.set_version(version);
            message.edns = Some(edns);
            let response = ask(&SyntheticAddresses::default(), &message.to_vec().unwrap());
            // BADVERS and BADSIG share the value 16 (RFC 6891, RFC 8945); hickory reads it back as
            // BADSIG.
            let code = u16::from(response.metadata.response_code);
            assert_eq!(code, u16::from(expected), "version {version}");
            assert_eq!(response.answers.len(), answers, "version {version}");
            let edns = response.edns.expect("an OPT record");
            assert_eq!(edns.version(), 0);
            assert_eq!(edns.max_payload(), EDNS_PAYLOAD);
        }
    }

    #[test]
    fn the_configured_ttl_is_the_answer_ttl() {
        let limits = Limits {
            ttl_secs: 42,
            ..Limits::default()
        };
        let bytes = query_bytes("ttl.test.", RecordType::A);
        let response = answer(&bytes, &SyntheticAddresses::default(), &limits).unwrap();
        assert_eq!(Message::from_vec(&response).unwrap().answers[0].ttl, 42);
    }

    proptest! {
        #[test]
        fn answer_never_panics_and_only_answers_queries(
            bytes in proptest::collection::vec(any::<u8>(), 0..600),
        ) {
            let addresses = SyntheticAddresses::new(Ipv4Addr::new(10, 0, 0, 0), 24, 4).unwrap();
            if let Some(response) = answer(&bytes, &addresses, &Limits::default()) {
                prop_assert!(bytes.len() >= 12);
                prop_assert_eq!(bytes[2] & 0x80, 0);
                prop_assert_eq!(&response[..2], &bytes[..2]);
                prop_assert!(response[2] & 0x80 != 0);
            }
        }

        #[test]
        fn answer_never_panics_on_a_valid_query_with_mutated_bytes(
            flips in proptest::collection::vec((0usize..64, any::<u8>()), 1..8),
        ) {
            let mut bytes = query_bytes("mutate.example.test.", RecordType::A);
            for (at, byte) in flips {
                let at = at % bytes.len();
                bytes[at] = byte;
            }
            let _ = answer(&bytes, &SyntheticAddresses::default(), &Limits::default());
        }

        #[test]
        fn an_answered_name_maps_back_from_its_address(
            name in "[a-z][a-z0-9-]{0,20}(\\.[a-z][a-z0-9]{0,10}){0,3}\\.test",
        ) {
            let addresses = SyntheticAddresses::default();
            let response = ask(&addresses, &query_bytes(&name, RecordType::A));
            let ips = a_addresses(&response);
            prop_assert_eq!(ips.len(), 1);
            let expected = Host::parse(&name).unwrap();
            prop_assert_eq!(addresses.name_of(ips[0]), Some(expected));
        }
    }
}
