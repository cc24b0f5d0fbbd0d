//! The WHATWG URL standard's host vectors (`wpt-hosts.json` of the shared corpora, from web-platform-tests)
//! against hh's host decisions, three ways: the rules library (every vector), `hh rules check`
//! (every `urltestdata` and `toascii` vector that fits in an argument, one `IdnaTestV2` vector
//! in [`IDNA_SAMPLE`]) and `hh proxy` (the ASCII names a client can put in a request line,
//! through absolute-form and a CONNECT tunnel with TLS).
//!
//! A vector is a URL and what the standard makes of it: host H and port P, or a failure. hh
//! agrees when it decides the URL as H:P (a rule for exactly H:P allows it), or refuses a URL
//! the standard rejects. hh may also refuse a URL whose H it cannot name at all (a label
//! longer than 63 bytes, a character no DNS name has, a name its IDNA check refuses: see
//! `hh::rules::host`): no rule can allow such a host, so refusing it is the only decision.
//! Every other difference is listed, with its reason, in `data/wpt-hosts-divergences.json`
//! (the expected-failures file of servo/rust-url's `tests/wpt.rs`); a listed vector that agrees
//! fails the test too, so the list only shrinks.
//!
//! `toascii` and `IdnaTestV2` give a host alone: it is parsed as `new URL()` parses it in
//! web-platform-tests (`url/toascii.window.js`, `url/IdnaTestV2.window.js`), as
//! `https://HOST/x` with `:/?#\` percent-encoded.

use std::collections::BTreeMap;

use hh::rules::{Host, Request};
use serde::Deserialize;

use crate::strict_http::{Read, read_request};

#[derive(Deserialize)]
struct WptHosts {
    urltestdata: Vec<UrlTest>,
    toascii: Vec<HostTest>,
    #[serde(rename = "IdnaTestV2")]
    idna: Vec<HostTest>,
}

/// A URL, and either what the standard serializes it to or `failure`.
#[derive(Deserialize)]
struct UrlTest {
    input: String,
    href: Option<String>,
    hostname: Option<String>,
}

/// A host, and its ASCII form (`None`: the standard rejects it).
#[derive(Deserialize)]
struct HostTest {
    input: String,
    output: Option<String>,
}

/// One vector: a URL and what the standard makes of it.
#[derive(Clone, Debug)]
struct Vector {
    section: &'static str,
    /// The corpus's input (a URL, or a host for `toascii` and `IdnaTestV2`).
    input: String,
    /// The URL hh is asked about.
    url: String,
    /// `Some((H, P))`, or `None` when the standard rejects the URL.
    expected: Option<(String, u16)>,
}

/// Every vector of the corpus. Empty hosts are skipped, as web-platform-tests skips them (a
/// URL cannot carry one).
fn vectors() -> Option<Vec<Vector>> {
    let text = replace_lone_surrogates(&super::shared_corpus("wpt-hosts.json")?);
    let wpt: WptHosts = serde_json::from_str(&text).expect("the WPT corpus");
    let mut vectors = Vec::new();
    for test in wpt.urltestdata {
        let expected = match (&test.hostname, &test.href) {
            (Some(hostname), Some(href)) => Some((hostname.clone(), port_of(href))),
            _ => None,
        };
        vectors.push(Vector {
            section: "urltestdata",
            url: test.input.clone(),
            input: test.input,
            expected,
        });
    }
    for (section, tests) in [("toascii", wpt.toascii), ("IdnaTestV2", wpt.idna)] {
        for test in tests.into_iter().filter(|test| !test.input.is_empty()) {
            vectors.push(Vector {
                section,
                url: format!("https://{}/x", encode_host_ending(&test.input)),
                expected: test.output.map(|host| (host, 443)),
                input: test.input,
            });
        }
    }
    Some(vectors)
}

/// The port of a serialized (canonical) URL: after the host, else the scheme's default.
fn port_of(href: &str) -> u16 {
    let (scheme, rest) = href.split_once("://").expect("an href is absolute");
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let host_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let after_host = host_port
        .rsplit_once(']')
        .map_or(host_port, |(_, after)| after);
    match after_host.rsplit_once(':') {
        Some((_, port)) => port.parse().expect("an href's port is a number"),
        None if matches!(scheme, "https" | "wss") => 443,
        None => 80,
    }
}

/// Percent-encodes what would end the host (`IdnaTestV2.window.js`'s
/// `encodeHostEndingCodePoints`), so all of the input reaches the host parser.
fn encode_host_ending(host: &str) -> String {
    let mut out = String::with_capacity(host.len());
    for c in host.chars() {
        match c {
            ':' | '/' | '?' | '#' | '\\' => out.push_str(&format!("%{:02X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

/// JSON text with every lone UTF-16 surrogate escape (`\ud900` with no partner) replaced by
/// `\ufffd`. A JavaScript string can hold one, a Rust string cannot; `new URL()` takes a
/// USVString, which turns each into U+FFFD (WebIDL §3.2.10), so this is the input the standard
/// parses.
fn replace_lone_surrogates(json: &str) -> String {
    let unit_at = |at: usize| {
        json.get(at..at + 2)
            .filter(|escape| *escape == "\\u")
            .and_then(|_| json.get(at + 2..at + 6))
            .and_then(|hex| u16::from_str_radix(hex, 16).ok())
    };
    let mut out = String::with_capacity(json.len());
    let mut at = 0;
    while let Some(c) = json[at..].chars().next() {
        let unit = (c == '\\').then(|| unit_at(at)).flatten();
        match unit {
            Some(0xd800..=0xdbff) if unit_at(at + 6).is_some_and(is_low_surrogate) => {
                out.push_str(&json[at..at + 12]);
                at += 12;
            }
            Some(unit) if (0xd800..=0xdfff).contains(&unit) => {
                out.push_str("\\ufffd");
                at += 6;
            }
            // Any other escape: its backslash and the character after it, so an escaped
            // backslash is never read as the start of another escape.
            _ if c == '\\' => {
                let next = json[at + 1..].chars().next().map_or(0, char::len_utf8);
                out.push_str(&json[at..at + 1 + next]);
                at += 1 + next;
            }
            _ => {
                out.push(c);
                at += c.len_utf8();
            }
        }
    }
    out
}

fn is_low_surrogate(unit: u16) -> bool {
    (0xdc00..=0xdfff).contains(&unit)
}

/// What hh made of a vector's URL.
#[derive(Debug)]
enum Outcome {
    /// Decided as this host and port.
    Decided(Host, u16),
    /// Decided, but not as the one host and port its rule names: what `hh rules check` can
    /// tell (exit 1 or 2, or 0 under a rule for every host), with its words.
    DecidedOtherwise(String),
    /// Refused, and why.
    Refused(String),
}

/// What the rules library makes of `url`.
fn library_outcome(url: &str) -> Outcome {
    match Request::from_url("GET", url) {
        Ok(request) => Outcome::Decided(request.host, request.port),
        Err(error) => Outcome::Refused(error.to_string()),
    }
}

/// Whether hh's outcome agrees with the standard; `Err` says how it differs.
fn judge(vector: &Vector, outcome: &Outcome) -> Result<(), String> {
    match (&vector.expected, outcome) {
        (None, Outcome::Refused(_)) => Ok(()),
        (None, Outcome::Decided(host, port)) => Err(format!(
            "decided as {host}:{port}; the standard rejects the URL"
        )),
        (None, Outcome::DecidedOtherwise(how)) => {
            Err(format!("decided ({how}); the standard rejects the URL"))
        }
        (Some((expected, expected_port)), Outcome::Decided(host, port)) => {
            match Host::parse(expected) {
                Ok(expected) if expected == *host && expected_port == port => Ok(()),
                _ => Err(format!(
                    "decided as {host}:{port}; the standard says {expected}:{expected_port}"
                )),
            }
        }
        (Some((expected, port)), Outcome::DecidedOtherwise(how)) => Err(format!(
            "decided otherwise ({how}); the standard says {expected}:{port}"
        )),
        (Some((expected, _)), Outcome::Refused(_)) if Host::parse(expected).is_err() => Ok(()),
        (Some((expected, port)), Outcome::Refused(why)) => Err(format!(
            "refused ({why}); the standard says {expected}:{port}"
        )),
    }
}

/// The listed divergences: `(section, input)` → why hh differs.
fn divergences() -> BTreeMap<(String, String), String> {
    #[derive(Deserialize)]
    struct Divergence {
        section: String,
        input: String,
        why: String,
    }
    let text = include_str!("data/wpt-hosts-divergences.json");
    let listed: Vec<Divergence> = serde_json::from_str(text).expect("the divergence list");
    listed
        .into_iter()
        .map(|d| ((d.section, d.input), d.why))
        .collect()
}

/// How a section's vectors ended.
#[derive(Default)]
struct Totals {
    vectors: usize,
    /// Decided as the standard's H:P.
    decided: usize,
    /// Refused, as the standard rejects them.
    rejected: usize,
    /// Refused: the standard's H is no host hh can name.
    unnameable: usize,
    /// Listed in the divergence file.
    listed: usize,
}

/// Judges every `(vector, outcome)`, reports the totals per section and fails on every
/// unlisted difference and on every listed vector that agrees.
fn assert_agrees(what: &str, judged: &[(&Vector, Outcome)]) {
    let listed = divergences();
    let mut totals: BTreeMap<&str, Totals> = BTreeMap::new();
    let mut failures = Vec::new();
    for (vector, outcome) in judged {
        let key = (vector.section.to_owned(), vector.input.clone());
        let counts = totals.entry(vector.section).or_default();
        counts.vectors += 1;
        match (judge(vector, outcome), listed.get(&key)) {
            (Ok(()), None) if !matches!(outcome, Outcome::Refused(_)) => counts.decided += 1,
            (Ok(()), None) if vector.expected.is_none() => counts.rejected += 1,
            (Ok(()), None) => counts.unnameable += 1,
            (Err(_), Some(_)) => counts.listed += 1,
            (Ok(()), Some(why)) => failures.push(format!(
                "{} {:?}: listed as diverging ({why}) but agrees: remove it from the list",
                vector.section, vector.input
            )),
            (Err(how), None) => {
                failures.push(format!("{} {:?}: {how}", vector.section, vector.input));
            }
        }
    }
    let mut report = String::new();
    for (section, counts) in &totals {
        let Totals {
            vectors,
            decided,
            rejected,
            unnameable,
            listed,
        } = counts;
        report.push_str(&format!(
            "{what:>11} {section:>11}: {vectors:>4} vectors: {decided:>4} decided as the \
             standard's host, {rejected:>4} refused as the standard rejects them, \
             {unnameable:>4} refused as hh cannot name the host, {listed:>2} listed divergences\n"
        ));
    }
    eprintln!("WPT hosts:\n{report}");
    assert!(
        failures.is_empty(),
        "{what}: {} vectors differ from the URL standard:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn the_rules_library_decides_every_wpt_host_as_the_url_standard_does() {
    let Some(vectors) = vectors() else {
        return;
    };
    let judged: Vec<(&Vector, Outcome)> = vectors
        .iter()
        .map(|vector| (vector, library_outcome(&vector.url)))
        .collect();
    assert_agrees("library", &judged);
}

/// One IdnaTestV2 vector in this many goes through the real binary (about 670 of 2670; the
/// library test above takes them all): each `hh rules check` is a process of its own.
const IDNA_SAMPLE: usize = 4;

/// The rule that allows exactly what the standard makes of `vector`, `domain=H port=P`, and
/// `true`. When no rule can name that (the standard rejects the URL, H is no host hh can name,
/// P is 0): a rule for every host on the web ports, so that any decision shows (exit 0 or 2),
/// not only an allow, and `false`.
fn rule_for(vector: &Vector) -> (String, bool) {
    match &vector.expected {
        Some((host, port)) if *port != 0 && Host::parse(host).is_ok() => {
            (format!("domain={host} port={port}"), true)
        }
        _ => ("domain=*".to_owned(), false),
    }
}

/// What `hh rules check` says of `vector`, with `rules` (from [`rule_for`]) as the only rules.
fn cli_outcome(vector: &Vector, rules: &std::path::Path, exact: bool) -> Outcome {
    let output = crate::support::hh()
        .args(["rules", "check", "--rules"])
        .arg(rules)
        .args(["--", "GET", &vector.url])
        .output()
        .expect("hh runs");
    let stdout = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    match (output.status.code(), &vector.expected) {
        (Some(0), Some((host, port))) if exact => {
            Outcome::Decided(Host::parse(host).unwrap(), *port)
        }
        (Some(3), _) => Outcome::Refused(String::from_utf8_lossy(&output.stderr).trim().to_owned()),
        (Some(0..=2), _) => Outcome::DecidedOtherwise(stdout),
        (code, _) => panic!("hh rules check {:?} exited with {code:?}", vector.url),
    }
}

#[test]
fn rules_check_decides_wpt_hosts_as_the_url_standard_does() {
    let Some(vectors) = vectors() else {
        return;
    };
    let idna = vectors.iter().filter(|v| v.section == "IdnaTestV2");
    let sampled: Vec<&Vector> = vectors
        .iter()
        .filter(|v| v.section != "IdnaTestV2")
        .chain(idna.step_by(IDNA_SAMPLE))
        // An argument cannot hold a NUL; the library test has these.
        .filter(|v| !v.url.contains('\0'))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let mut files = BTreeMap::new();
    let runs: Vec<(&Vector, std::path::PathBuf, bool)> = sampled
        .iter()
        .map(|&vector| {
            let (rule, exact) = rule_for(vector);
            let count = files.len();
            let file = files.entry(rule.clone()).or_insert_with(|| {
                let file = dir.path().join(format!("rules-{count}.toml"));
                let text = format!("version = 1\n[network]\nallowlist = [\"{rule}\"]\n");
                std::fs::write(&file, text).unwrap();
                file
            });
            (vector, file.clone(), exact)
        })
        .collect();
    // Two at a time: the spawns, not the checks, are the cost.
    let judged: Vec<(&Vector, Outcome)> = std::thread::scope(|scope| {
        let halves: Vec<_> = runs
            .chunks(runs.len().div_ceil(2))
            .map(|half| {
                scope.spawn(move || {
                    half.iter()
                        .map(|(vector, file, exact)| (*vector, cli_outcome(vector, file, *exact)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        halves
            .into_iter()
            .flat_map(|half| half.join().unwrap())
            .collect()
    });
    assert_agrees("rules check", &judged);
}

/// The host-only vectors a client can send through a proxy as they are (about 200): visible
/// ASCII that ends no authority, whose host the library decides as the standard's H, and a DNS
/// name (an IP literal could name an address off this host, which a test never dials). Each
/// with its canonical name.
fn proxy_sample(vectors: &[Vector]) -> Vec<(&Vector, Host)> {
    vectors
        .iter()
        .filter(|v| v.section != "urltestdata")
        .filter(|v| {
            v.input
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b":/?#\\@%[]".contains(&b))
        })
        .filter(|v| judge(v, &library_outcome(&v.url)).is_ok())
        .filter_map(|v| match library_outcome(&v.url) {
            Outcome::Decided(host, _) if host.is_name() => Some((v, host)),
            _ => None,
        })
        .collect()
}

/// How a client names a host to the proxy.
#[derive(Clone, Copy, Debug)]
enum Way {
    /// `GET http://HOST:PORT/x`.
    AbsoluteForm,
    /// `CONNECT HOST:PORT`, TLS with the canonical name as SNI, then `Host: HOST:PORT`.
    ConnectTls,
}

#[test]
fn the_proxy_routes_wpt_hosts_to_the_url_standards_host() {
    let Some(vectors) = vectors() else {
        return;
    };
    let sample = proxy_sample(&vectors);
    // Several inputs may name one host (`A0`, `a0`): one pin, one rule, one name on the leaf.
    let names: Vec<String> = sample
        .iter()
        .map(|(_, host)| host.to_string())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let upstream = crate::recording_upstream::RecordingUpstream::start(&names);
    let (tls, http) = (upstream.tls_port, upstream.http_port);
    let allowlist: Vec<String> = names
        .iter()
        .map(|name| format!("\"domain={name} path=* port={tls},{http}\""))
        .collect();
    let rules = format!(
        "version = 1\n[network]\nallowlist = [{}]\n",
        allowlist.join(", ")
    );
    let proxy = crate::proxy::RunningProxy::start(&rules, &names, &upstream.ca_pem);
    // TLS only for the names a TLS client can send as SNI (rustls refuses `-x`, which hh, like
    // the standard, reads as a name).
    let cases: Vec<(&Vector, &Host, Way)> = sample
        .iter()
        .flat_map(|(vector, host)| {
            let sni = rustls::pki_types::ServerName::try_from(host.as_str()).is_ok();
            let ways = [Some(Way::AbsoluteForm), sni.then_some(Way::ConnectTls)];
            ways.into_iter()
                .flatten()
                .map(move |way| (*vector, host, way))
        })
        .collect();
    let mut answers = Vec::new();
    for (index, (vector, host, way)) in cases.iter().enumerate() {
        upstream.set_case(index);
        let input = &vector.input;
        answers.push(match way {
            Way::AbsoluteForm => proxy.absolute_form(
                format!("GET http://{input}:{http}/x HTTP/1.1\r\nHost: {input}:{http}\r\n\r\n")
                    .as_bytes(),
            ),
            Way::ConnectTls => proxy.connect_tls(
                &format!("{input}:{tls}"),
                host.as_str(),
                format!("GET /x HTTP/1.1\r\nHost: {input}:{tls}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            ),
        });
    }
    drop(proxy);
    let received = upstream.received();
    let mut failures = Vec::new();
    for (index, ((vector, host, way), answer)) in cases.iter().zip(&answers).enumerate() {
        let port = match way {
            Way::AbsoluteForm => http,
            Way::ConnectTls => tls,
        };
        let heads: Vec<Read> = received
            .iter()
            .filter(|r| r.case == index && !r.bytes.is_empty())
            .map(|r| read_request(&r.bytes))
            .collect();
        let reached = match heads.as_slice() {
            [Read::Request { head, .. }] => names_host(&head.host, host, port),
            _ => false,
        };
        let answered = String::from_utf8_lossy(answer).contains("upstream saw GET /x\n");
        if !(reached && answered) {
            failures.push(format!(
                "{} {:?} ({way:?}): the upstream got {heads:?}; the client got {:?}",
                vector.section,
                vector.input,
                String::from_utf8_lossy(answer)
            ));
        }
    }
    let tunnels = cases
        .iter()
        .filter(|(_, _, way)| matches!(way, Way::ConnectTls))
        .count();
    eprintln!(
        "WPT hosts through hh proxy: {} inputs naming {} hosts, {} absolute-form and \
         {tunnels} CONNECT+TLS requests, {} reached another host or none",
        sample.len(),
        names.len(),
        sample.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Whether the `Host` an upstream got, `name:port`, names `host` and `port`.
fn names_host(given: &str, host: &Host, port: u16) -> bool {
    given.rsplit_once(':').is_some_and(|(name, given_port)| {
        Host::parse(name).as_ref() == Ok(host) && given_port == port.to_string()
    })
}
