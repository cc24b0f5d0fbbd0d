//! The request-smuggling corpus (`smuggling-corpus.json` of the shared corpora) through `hh proxy`, three ways:
//! absolute-form plain HTTP, a CONNECT tunnel carrying plain HTTP (as to port 80), and one
//! carrying TLS (hh's CA trusted by the client, the upstream's test CA by hh).
//!
//! The policy allows the host `smuggle.test` (every path) and denies the paths each payload's
//! second request aims at (`/admin*`, and the corpus's own `/evil*`, `/bad_path*`, `/flag*`).
//! Every payload carries such a second request: the corpus's own, or `GET /admin` placed where a
//! server that frames the first request another way than hh would read it as a request. `Host`
//! fields name the allowed host, so only framing and paths stand in a smuggled request's way.
//!
//! The verdict comes from the upstream's side ([`RecordingUpstream`], reading with
//! [`strict_http`]), for every case: each upstream connection holds one request that no server
//! could frame another way, and nothing after it; no request for a denied path arrives; and one
//! request of the payload arrives at most, unless hh itself read the payload as several
//! requests and answered each (see [`judge`]). A refused payload (a 4xx, a closed connection)
//! sends nothing at all.
//!
//! In a tunnel the payload is followed by a last request (`GET /follow-up`, `Connection:
//! close`), as a client's next request would follow it on a kept-alive connection: it ends the
//! tunnel without a half-close, and a payload whose tail waits for more bytes gets them, as
//! on a real connection.

use std::{collections::BTreeMap, fmt::Write as _};

use serde::Deserialize;

use crate::{
    proxy::RunningProxy,
    recording_upstream::{Received, RecordingUpstream},
    strict_http::{Read, read_request},
};

/// The host every payload targets, pinned to 127.0.0.1.
const HOST: &str = "smuggle.test";

/// Paths no request may reach upstream (decoded, any case): the policy denies them.
const DENIED: [&str; 4] = ["/admin", "/evil", "/bad_path", "/flag"];

#[derive(Deserialize)]
struct Corpus {
    /// Whole raw requests (narfindustries/http-garden TROPHIES.md).
    garden: Vec<Raw>,
    /// Request heads with `@@T@@` (target), `@@H@@` (host), `@@CL@@` (Content-Length)
    /// placeholders (PortSwigger/http-request-smuggler DesyncBox); `te`: the permutation
    /// obfuscates `Transfer-Encoding` (else `Content-Length`).
    portswigger: Vec<Template>,
    /// `Transfer-Encoding` header lines, mangled (defparam/smuggler configs).
    smuggler: Vec<Gadget>,
    /// An upgrade request and what follows it on the connection; `@@H2@@` stands for an
    /// HTTP/2 connection (0ang3el/websocket-smuggle, BishopFox/h2csmuggler).
    upgrade: Vec<Upgrade>,
}

#[derive(Deserialize)]
struct Raw {
    id: String,
    raw: String,
}

#[derive(Deserialize)]
struct Template {
    id: String,
    head: String,
    te: bool,
}

#[derive(Deserialize)]
struct Gadget {
    id: String,
    gadget: String,
}

#[derive(Deserialize)]
struct Upgrade {
    id: String,
    req1: String,
    req2: String,
}

/// The corpus's strings hold bytes, one char each (`\u00ff` is the byte 0xff).
fn bytes(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).expect("corpus chars are bytes"))
        .collect()
}

/// How a client reaches the upstream through hh.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Transport {
    AbsoluteForm,
    ConnectPlain,
    ConnectTls,
}

impl Transport {
    const ALL: [Transport; 3] = [
        Transport::AbsoluteForm,
        Transport::ConnectPlain,
        Transport::ConnectTls,
    ];

    fn name(self) -> &'static str {
        match self {
            Transport::AbsoluteForm => "absolute-form",
            Transport::ConnectPlain => "CONNECT+HTTP",
            Transport::ConnectTls => "CONNECT+TLS",
        }
    }
}

/// Where payloads go: the authority their `Host` fields name, and for absolute-form the
/// scheme and authority put before their first target.
struct Place {
    authority: String,
    absolute: Option<String>,
}

impl Place {
    fn new(transport: Transport, upstream: &RecordingUpstream) -> Place {
        let port = match transport {
            Transport::ConnectTls => upstream.tls_port,
            _ => upstream.http_port,
        };
        let authority = format!("{HOST}:{port}");
        let absolute =
            (transport == Transport::AbsoluteForm).then(|| format!("http://{authority}"));
        Place {
            authority,
            absolute,
        }
    }

    /// The first request's target as this transport sends it.
    fn target(&self, path: &str) -> String {
        format!("{}{path}", self.absolute.as_deref().unwrap_or(""))
    }

    /// The request each payload smuggles: allowed host, denied path.
    fn smuggled(&self) -> String {
        format!("GET /admin HTTP/1.1\r\nHost: {}\r\n\r\n", self.authority)
    }
}

/// One payload, named by its corpus section and id.
struct Case {
    section: &'static str,
    id: String,
    bytes: Vec<u8>,
}

/// Every payload of the corpus, placed for one transport.
fn cases(corpus: &Corpus, place: &Place) -> Vec<Case> {
    let mut cases = Vec::new();
    for raw in &corpus.garden {
        let bytes = place_raw(&bytes(&raw.raw), place);
        cases.push(case("garden", &raw.id, bytes));
    }
    for template in &corpus.portswigger {
        for (variant, bytes) in fill_template(template, place) {
            cases.push(case(
                "portswigger",
                &format!("{}/{variant}", template.id),
                bytes,
            ));
        }
    }
    for gadget in &corpus.smuggler {
        cases.push(case(
            "smuggler",
            &gadget.id,
            with_gadget(&gadget.gadget, place),
        ));
    }
    for upgrade in &corpus.upgrade {
        cases.push(case("upgrade", &upgrade.id, upgrade_pair(upgrade, place)));
    }
    cases
}

fn case(section: &'static str, id: &str, bytes: Vec<u8>) -> Case {
    Case {
        section,
        id: id.to_owned(),
        bytes,
    }
}

/// A raw payload for `place`: its `Host` values name the allowed authority (so only framing and
/// paths stand between its requests and the upstream), and for absolute-form its first
/// origin-form target gets the scheme and authority. Everything else stays byte for byte.
fn place_raw(raw: &[u8], place: &Place) -> Vec<u8> {
    let mut out = name_allowed_host(raw, &place.authority);
    if let Some(absolute) = &place.absolute {
        let first_line_end = out.iter().position(|&b| b == b'\n').unwrap_or(out.len());
        let target = out[..first_line_end].iter().position(|&b| b == b' ');
        if let Some(at) = target.map(|space| space + 1)
            && out.get(at) == Some(&b'/')
        {
            out.splice(at..at, absolute.bytes());
        }
    }
    out
}

/// Replaces the host name (the run of name characters after `Host:` and optional whitespace)
/// of every `Host` field line with `authority`, keeping what follows it.
fn name_allowed_host(raw: &[u8], authority: &str) -> Vec<u8> {
    let is_name = |b: &u8| b.is_ascii_alphanumeric() || b".-_:".contains(b);
    let mut out = Vec::with_capacity(raw.len() + 64);
    let mut at = 0;
    while at < raw.len() {
        let line_start = at == 0 || raw[at - 1] == b'\n';
        let field = raw.get(at..at + 5);
        if line_start && field.is_some_and(|f| f.eq_ignore_ascii_case(b"host:")) {
            let mut value = at + 5;
            while raw.get(value).is_some_and(|b| *b == b' ' || *b == b'\t') {
                value += 1;
            }
            let name_len = raw[value..].iter().take_while(|b| is_name(b)).count();
            if name_len > 0 {
                out.extend_from_slice(&raw[at..value]);
                out.extend_from_slice(authority.as_bytes());
                at = value + name_len;
                continue;
            }
        }
        out.push(raw[at]);
        at += 1;
    }
    out
}

/// A DesyncBox permutation with its placeholders filled. A `Transfer-Encoding` permutation gets
/// both classic bodies: CL.TE (`Content-Length` covers a last chunk and then the smuggled
/// request, which a server reading the chunks sees as the next request) and TE.CL (the smuggled
/// request is chunk data, which a server reading `Content-Length` sees as the next request). A
/// `Content-Length` permutation's body is the smuggled request, the whole of it counted.
fn fill_template(template: &Template, place: &Place) -> Vec<(&'static str, Vec<u8>)> {
    let smuggled = place.smuggled();
    let bodies = if template.te {
        let cl_te = format!("0\r\n\r\n{smuggled}");
        let size_line = format!("{:x}\r\n", smuggled.len());
        let te_cl = format!("{size_line}{smuggled}\r\n0\r\n\r\n");
        vec![
            ("cl.te", cl_te.len(), cl_te),
            ("te.cl", size_line.len(), te_cl),
        ]
    } else {
        vec![("cl", smuggled.len(), smuggled.clone())]
    };
    bodies
        .into_iter()
        .map(|(variant, length, body)| {
            let head = template
                .head
                .replace("@@T@@", &place.target("/"))
                .replace("@@H@@", &place.authority)
                .replace("@@CL@@", &length.to_string());
            let mut payload = bytes(&head);
            payload.extend_from_slice(body.as_bytes());
            (variant, payload)
        })
        .collect()
}

/// A smuggler gadget as the one `Transfer-Encoding` line of a POST whose `Content-Length`
/// covers a CL.TE body (see [`fill_template`]).
fn with_gadget(gadget: &str, place: &Place) -> Vec<u8> {
    let body = format!("0\r\n\r\n{}", place.smuggled());
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\n",
        place.target("/"),
        place.authority,
        body.len()
    );
    let mut payload = head.into_bytes();
    payload.extend(bytes(gadget));
    payload.extend_from_slice(b"\r\n\r\n");
    payload.extend_from_slice(body.as_bytes());
    payload
}

/// An upgrade request and what its author sent after it, as one write: a proxy that took the
/// upgrade for done would pass the rest through unread.
fn upgrade_pair(upgrade: &Upgrade, place: &Place) -> Vec<u8> {
    let mut payload = place_raw(&bytes(&upgrade.req1), place);
    if upgrade.req2 == "@@H2@@" {
        payload.extend(h2_request(&place.authority, "/admin"));
    } else {
        payload.extend(name_allowed_host(&bytes(&upgrade.req2), &place.authority));
    }
    payload
}

/// What h2csmuggler sends once its h2c upgrade is answered: the HTTP/2 connection preface, an
/// empty SETTINGS frame and a HEADERS frame for `GET path` (RFC 9113 §3.4, §6.2, §6.5), the
/// fields as HPACK literals without indexing (RFC 7541 §6.2.2).
fn h2_request(authority: &str, path: &str) -> Vec<u8> {
    let mut block = Vec::new();
    for (name, value) in [
        (":method", "GET"),
        (":scheme", "http"),
        (":authority", authority),
        (":path", path),
    ] {
        block.push(0x00);
        for text in [name, value] {
            block.push(u8::try_from(text.len()).unwrap());
            block.extend_from_slice(text.as_bytes());
        }
    }
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend_from_slice(&[0, 0, 0, 0x4, 0, 0, 0, 0, 0]);
    let len = u32::try_from(block.len()).unwrap().to_be_bytes();
    // HEADERS, END_STREAM | END_HEADERS, stream 1.
    out.extend_from_slice(&[len[1], len[2], len[3], 0x1, 0x5, 0, 0, 0, 1]);
    out.extend(block);
    out
}

/// The last request of a tunnel's bytes (see the module comment).
fn follow_up(place: &Place) -> Vec<u8> {
    format!(
        "GET /follow-up HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        place.authority
    )
    .into_bytes()
}

/// What became of one case on one transport, judged from the upstream's side.
#[derive(Default)]
struct Judged {
    /// Requests of the payload that reached the upstream.
    forwarded: usize,
    /// Connections that ended before a whole message (hh relayed a body the client cut short).
    incomplete: usize,
    violations: Vec<String>,
}

/// Judges the connections of one case (see the module comment) and what the client got back,
/// `answers`.
///
/// More than one request of a payload may reach the upstream only when hh read the payload as
/// that many requests, decided each and relayed each one's answer, in order (a pipeline, such as
/// `garden-server-48`). A request hh did not decide could only ride on a connection hh opened
/// for one it did (the upstream answers one request per connection), as bytes after that
/// request: a violation of their own.
fn judge(connections: &[&Received], answers: &[u8]) -> Judged {
    let mut judged = Judged::default();
    let mut answers_due: Vec<String> = Vec::new();
    for received in connections.iter().filter(|r| !r.bytes.is_empty()) {
        let head = match read_request(&received.bytes) {
            Read::Request { head, len } => {
                if len < received.bytes.len() {
                    let extra = String::from_utf8_lossy(&received.bytes[len..]);
                    judged
                        .violations
                        .push(format!("bytes after the request: {extra:?}"));
                }
                if !head.target.starts_with("/follow-up") {
                    judged.forwarded += 1;
                    answers_due.push(format!("upstream saw {} {}\n", head.method, head.target));
                }
                head
            }
            Read::Incomplete(Some(head)) => {
                judged.incomplete += 1;
                head
            }
            Read::Incomplete(None) => {
                let partial = String::from_utf8_lossy(&received.bytes);
                judged
                    .violations
                    .push(format!("a partial head: {partial:?}"));
                continue;
            }
            Read::Ambiguous(why) => {
                let sent = String::from_utf8_lossy(&received.bytes);
                judged
                    .violations
                    .push(format!("ambiguous ({why}): {sent:?}"));
                continue;
            }
        };
        if is_denied(&head.target) {
            let (method, target) = (&head.method, &head.target);
            judged.violations.push(format!(
                "a denied path reached the upstream: {method} {target}"
            ));
        }
    }
    if judged.forwarded > 1 {
        let mut relayed = String::from_utf8_lossy(answers).into_owned();
        for answer in answers_due {
            match relayed.find(&answer) {
                Some(at) => drop(relayed.drain(..at + answer.len())),
                None => judged.violations.push(format!(
                    "{} requests of one payload reached the upstream, and the client never got \
                     the answer to `{}`",
                    judged.forwarded,
                    answer.trim_end()
                )),
            }
        }
    }
    judged
}

/// Whether `target` names a denied path once percent-decoded (twice, for double encoding), in
/// any case.
fn is_denied(target: &str) -> bool {
    let decoded = percent_decode(&percent_decode(target)).to_ascii_lowercase();
    DENIED.iter().any(|path| decoded.contains(path))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let hex = bytes
            .get(at + 1..at + 3)
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match (bytes[at], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                at += 3;
            }
            (byte, _) => {
                out.push(byte);
                at += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The rules: `smuggle.test` on the upstream's ports, any path, HTTP only (`path=*`: no raw TCP
/// on a port that is not a web port); the smuggled requests' paths denied.
fn rules(upstream: &RecordingUpstream) -> String {
    let (tls, http) = (upstream.tls_port, upstream.http_port);
    let denied: Vec<String> = DENIED
        .iter()
        .map(|path| format!("\"domain={HOST} path={path}*\""))
        .collect();
    format!(
        "version = 1\n[network]\nallowlist = [\"domain={HOST} path=* port={tls},{http}\"]\n\
         denylist = [{}]\n",
        denied.join(", ")
    )
}

/// How one section's cases ended on one transport.
#[derive(Default)]
struct Totals {
    cases: usize,
    /// No request of the payload reached the upstream.
    refused: usize,
    /// Some did (one, or a pipeline hh decided request by request).
    forwarded: usize,
    /// Upstream connections that ended before a whole message.
    cut_short: usize,
}

/// What one transport's run found: per section, the cases and how they ended.
struct Lane {
    transport: Transport,
    totals: BTreeMap<&'static str, Totals>,
    /// `section/id: what happened`, for every violation.
    violations: Vec<(String, String)>,
    /// `section/id` of the payloads hh read as several requests (each decided and answered).
    pipelined: Vec<String>,
}

/// Runs every case through one transport: its own upstream and proxy, the cases one after
/// another (each upstream connection is the case's that was running when it came in), judged
/// once the proxy has stopped and every upstream connection has closed.
fn run_lane(corpus: &Corpus, transport: Transport) -> Lane {
    let upstream = RecordingUpstream::start(&[HOST.to_owned()]);
    let place = Place::new(transport, &upstream);
    let cases = cases(corpus, &place);
    let proxy = RunningProxy::start(&rules(&upstream), &[HOST.to_owned()], &upstream.ca_pem);
    let target = place.authority.clone();
    let mut answers = Vec::with_capacity(cases.len());
    for (index, case) in cases.iter().enumerate() {
        upstream.set_case(index);
        let mut bytes = case.bytes.clone();
        answers.push(match transport {
            Transport::AbsoluteForm => proxy.absolute_form(&bytes),
            Transport::ConnectPlain => {
                bytes.extend(follow_up(&place));
                proxy.connect_plain(&target, &bytes)
            }
            Transport::ConnectTls => {
                bytes.extend(follow_up(&place));
                proxy.connect_tls(&target, HOST, &bytes)
            }
        });
    }
    drop(proxy);
    let received = upstream.received();
    let mut lane = Lane {
        transport,
        totals: BTreeMap::new(),
        violations: Vec::new(),
        pipelined: Vec::new(),
    };
    for (index, case) in cases.iter().enumerate() {
        let connections: Vec<&Received> = received.iter().filter(|r| r.case == index).collect();
        let judged = judge(&connections, &answers[index]);
        let totals = lane.totals.entry(case.section).or_default();
        totals.cases += 1;
        if judged.forwarded == 0 {
            totals.refused += 1;
        } else {
            totals.forwarded += 1;
        }
        totals.cut_short += judged.incomplete;
        let name = format!("{}/{}", case.section, case.id);
        if judged.forwarded > 1 {
            lane.pipelined.push(name.clone());
        }
        for violation in judged.violations {
            lane.violations.push((name.clone(), violation));
        }
    }
    lane
}

#[test]
fn no_smuggling_payload_gets_a_second_request_or_a_denied_path_upstream() {
    let Some(text) = super::shared_corpus("smuggling-corpus.json") else {
        return;
    };
    let corpus: Corpus = serde_json::from_str(&text).expect("the corpus");
    let corpus = &corpus;
    let lanes: Vec<Lane> = std::thread::scope(|scope| {
        let running: Vec<_> = Transport::ALL
            .iter()
            .map(|&transport| scope.spawn(move || run_lane(corpus, transport)))
            .collect();
        running
            .into_iter()
            .map(|lane| lane.join().unwrap())
            .collect()
    });
    let mut report = String::new();
    let mut failures = Vec::new();
    for lane in &lanes {
        for (section, totals) in &lane.totals {
            let Totals {
                cases,
                refused,
                forwarded,
                cut_short,
            } = totals;
            let _ = writeln!(
                report,
                "{:>13} {section:>11}: {cases:>4} cases, {refused:>4} refused, \
                 {forwarded:>4} forwarded, {cut_short} cut short",
                lane.transport.name()
            );
        }
        if !lane.pipelined.is_empty() {
            let _ = writeln!(
                report,
                "{:>13} read as several requests, each decided and answered: {}",
                lane.transport.name(),
                lane.pipelined.join(", ")
            );
        }
        for (case, violation) in &lane.violations {
            failures.push(format!("{} {case}: {violation}", lane.transport.name()));
        }
    }
    eprintln!("smuggling corpus:\n{report}");
    assert!(
        failures.is_empty(),
        "{} violations:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn the_judge_sees_a_smuggled_request_a_denied_path_and_an_undecided_second_request() {
    let connection = |bytes: &str| Received {
        case: 0,
        bytes: bytes.as_bytes().to_vec(),
    };
    let one = connection("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    let smuggled =
        connection("GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /x HTTP/1.1\r\nHost: a\r\n\r\n");
    let denied = connection("GET /%61dmin/x HTTP/1.1\r\nHost: a\r\n\r\n");
    let answered = "upstream saw GET /\nupstream saw GET /\n".as_bytes();
    assert!(judge(&[&one], b"").violations.is_empty());
    assert_eq!(judge(&[&smuggled], b"").violations.len(), 1);
    assert_eq!(judge(&[&denied], b"").violations.len(), 1);
    assert_eq!(
        judge(&[&one, &one], b"upstream saw GET /\n")
            .violations
            .len(),
        1
    );
    let pipelined = judge(&[&one, &one], answered);
    assert!(pipelined.violations.is_empty());
    assert_eq!(pipelined.forwarded, 2);
}
