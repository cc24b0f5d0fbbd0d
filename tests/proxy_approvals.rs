//! Approvals end to end: the real `hh proxy --api-socket`, real curl through it, a local TLS
//! upstream, and the real `hh approvals` answering on the socket. Loopback only.
//!
//! No rule covers `unknown.test`, so each request to it waits for an answer; `--resolve` pins the
//! test names to 127.0.0.1, `--dial-grant` lets the proxy dial it, `--upstream-ca` trusts the
//! upstream's test CA.

mod support;

use std::{
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, Output},
    sync::atomic::Ordering,
    thread::JoinHandle,
    time::{Duration, Instant},
};

use hh::api::{
    client::Client,
    protocol::{Answer, ClientRequest, Event},
};
use serde_json::Value;
use support::upstream::{Upstream, start_upstream};

const NAMES: [&str; 2] = ["unknown.test", "other.test"];

/// The rules file every test starts with: comments that an append must keep, no rule for the
/// test names.
const RULES: &str = "# Our rules: keep this comment.\nversion = 1\n\n[network]\n\
                     # Hosts we trust.\nallowlist = [\"domain=example.invalid\"]\ndenylist = []\n";

/// A running `hh proxy` serving approvals on its own socket, killed on drop.
struct Proxy {
    child: Child,
    addr: SocketAddr,
    state: PathBuf,
    socket: PathBuf,
    rules: PathBuf,
    upstream: Upstream,
    _dir: tempfile::TempDir,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_proxy(ask_timeout_secs: u32) -> Proxy {
    let upstream = start_upstream(&NAMES);
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.toml");
    std::fs::write(&rules, RULES).unwrap();
    let ca = dir.path().join("test-ca.pem");
    std::fs::write(&ca, &upstream.ca_pem).unwrap();
    let state = dir.path().join("state");
    let socket = dir.path().join("run").join("api.sock");

    let mut command = support::hh();
    command.args([
        "proxy",
        "--listen",
        "127.0.0.1:0",
        "--dial-grant",
        "127.0.0.1/32",
    ]);
    command.args(["--ask-timeout", &ask_timeout_secs.to_string()]);
    command.arg("--rules").arg(&rules);
    command.arg("--state-dir").arg(&state);
    command.arg("--upstream-ca").arg(&ca);
    command.arg("--api-socket").arg(&socket);
    for name in NAMES {
        command.arg("--resolve").arg(format!("{name}=127.0.0.1"));
    }
    let (child, addr) = support::spawn_announcing(&mut command, "listening on ");
    let addr = addr.parse().unwrap();
    Proxy {
        child,
        addr,
        state,
        socket,
        rules,
        upstream,
        _dir: dir,
    }
}

impl Proxy {
    fn url(&self, host: &str, path: &str) -> String {
        format!("https://{host}:{}{path}", self.upstream.tls_port)
    }

    /// Starts curl through the proxy on its own thread: it blocks while its request waits.
    fn fetch(&self, url: String) -> JoinHandle<Fetched> {
        let (addr, ca) = (self.addr, self.state.join("ca.pem"));
        std::thread::spawn(move || curl(addr, &ca, &url))
    }

    /// Runs `hh approvals ARGS` against this proxy's socket.
    fn approvals(&self, args: &[&str]) -> Output {
        support::hh()
            .env("HH_AGENT_SOCKET", &self.socket)
            .arg("approvals")
            .args(args)
            .output()
            .expect("hh approvals runs")
    }

    /// `hh approvals --json`, parsed.
    fn pending(&self) -> Vec<Value> {
        let output = self.approvals(&["--json"]);
        assert_eq!(output.status.code(), Some(0), "{output:?}");
        serde_json::from_slice::<Vec<Value>>(&output.stdout).unwrap()
    }

    /// The pending approvals once `ready` holds for them (10 s at most, then the test fails).
    fn pending_when(&self, ready: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let pending = self.pending();
            if ready(&pending) {
                return pending;
            }
            assert!(Instant::now() < deadline, "still pending: {pending:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The id of the one prompt, once there is one.
    fn one_prompt(&self) -> String {
        let pending = self.pending_when(|pending| !pending.is_empty());
        assert_eq!(pending.len(), 1, "{pending:?}");
        pending[0]["id"].to_string()
    }

    fn rules_text(&self) -> String {
        std::fs::read_to_string(&self.rules).unwrap()
    }
}

/// What curl got: the status and the body.
#[derive(Debug)]
struct Fetched {
    status: u16,
    body: String,
}

fn curl(proxy: SocketAddr, ca: &std::path::Path, url: &str) -> Fetched {
    curl_sending(proxy, ca, url, &[])
}

/// [`curl`] with `extra` arguments (a body to send, a method).
fn curl_sending(proxy: SocketAddr, ca: &std::path::Path, url: &str, extra: &[&str]) -> Fetched {
    let output = Command::new("curl")
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .args(["-sS", "--max-time", "30", "--proxy"])
        .arg(format!("http://{proxy}"))
        .arg("--cacert")
        .arg(ca)
        .args(["-w", "\n%{http_code}"])
        .args(extra)
        .arg(url)
        .output()
        .expect("curl runs");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let (body, status) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
    Fetched {
        status: status.parse().unwrap_or_else(|_| {
            panic!(
                "curl {url}: no status in `{stdout}`; stderr: {}",
                String::from_utf8_lossy(&output.stderr)
            )
        }),
        body: body.to_owned(),
    }
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn allow_forever_releases_the_held_request_saves_the_rule_and_the_next_request_is_not_asked() {
    let proxy = start_proxy(20);
    let port = proxy.upstream.tls_port;
    let held = proxy.fetch(proxy.url("unknown.test", "/first"));
    let pending = proxy.pending_when(|pending| !pending.is_empty());
    assert_eq!(pending.len(), 1, "{pending:?}");
    let prompt = &pending[0];
    assert_eq!(prompt["session"], "standalone");
    assert_eq!(prompt["method"], "GET");
    assert_eq!(prompt["host"], "unknown.test");
    assert_eq!(prompt["path"], "/first");
    assert_eq!(prompt["port"], port);
    assert_eq!(prompt["waiting"], 1);
    assert_eq!(
        prompt["suggested_rule"],
        format!("domain=unknown.test path=* port={port}")
    );
    assert_eq!(prompt["rules_file"], proxy.rules.display().to_string());
    assert_eq!(
        prompt["layer"], "workspace",
        "the layer that decides once answered forever"
    );
    assert_eq!(proxy.upstream.hits.load(Ordering::SeqCst), 0);

    let id = prompt["id"].to_string();
    let answered = proxy.approvals(&["allow", &id, "--forever"]);
    assert_eq!(answered.status.code(), Some(0), "{}", stderr(&answered));

    let fetched = held.join().unwrap();
    assert_eq!(fetched.status, 200, "{}", fetched.body);
    assert_eq!(
        fetched.body,
        format!("upstream saw GET /first host=unknown.test:{port}\n")
    );
    let rules = proxy.rules_text();
    assert!(
        rules.starts_with("# Our rules: keep this comment.\n"),
        "{rules}"
    );
    assert!(rules.contains("# Hosts we trust.\n"), "{rules}");
    assert!(rules.contains("\"domain=example.invalid\""), "{rules}");
    assert!(
        rules.contains(&format!("\"domain=unknown.test path=* port={port}\"")),
        "{rules}"
    );

    // Nobody answers now: a second prompt would hold this request until the timeout's 403.
    let second = curl(
        proxy.addr,
        &proxy.state.join("ca.pem"),
        &proxy.url("unknown.test", "/second"),
    );
    assert_eq!(second.status, 200, "{}", second.body);
    assert_eq!(proxy.upstream.hits.load(Ordering::SeqCst), 2);
    let listed = proxy.approvals(&[]);
    assert_eq!(
        String::from_utf8_lossy(&listed.stdout),
        "no pending approvals\n"
    );
}

#[test]
fn deny_once_answers_403_and_leaves_the_rules_file_alone() {
    let proxy = start_proxy(20);
    let held = proxy.fetch(proxy.url("unknown.test", "/nope"));
    let id = proxy.one_prompt();
    let answered = proxy.approvals(&["deny", &id]);
    assert_eq!(answered.status.code(), Some(0), "{}", stderr(&answered));
    let fetched = held.join().unwrap();
    assert_eq!(fetched.status, 403, "{}", fetched.body);
    assert!(
        fetched.body.contains("hh blocked GET unknown.test:"),
        "{}",
        fetched.body
    );
    assert!(
        fetched.body.contains("a person denied it"),
        "{}",
        fetched.body
    );
    assert_eq!(proxy.upstream.hits.load(Ordering::SeqCst), 0);
    assert_eq!(proxy.rules_text(), RULES);
}

#[test]
fn deny_forever_saves_a_deny_rule_that_then_answers_at_once() {
    let proxy = start_proxy(20);
    let held = proxy.fetch(proxy.url("unknown.test", "/a"));
    let id = proxy.one_prompt();
    let answered = proxy.approvals(&["deny", &id, "--forever"]);
    assert_eq!(answered.status.code(), Some(0), "{}", stderr(&answered));
    let fetched = held.join().unwrap();
    assert_eq!(fetched.status, 403, "{}", fetched.body);
    let port = proxy.upstream.tls_port;
    let rule = format!("denylist[0]: domain=unknown.test port={port}");
    assert!(fetched.body.contains(&rule), "{}", fetched.body);
    assert!(
        proxy
            .rules_text()
            .contains(&format!("denylist = [\"domain=unknown.test port={port}\"]")),
        "{}",
        proxy.rules_text()
    );
    // The saved rule covers the whole host and port: the next CONNECT is refused with its 403
    // before any tunnel, and nobody is asked (nobody would answer).
    use std::io::{Read as _, Write as _};
    let started = Instant::now();
    let mut stream = std::net::TcpStream::connect(proxy.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let connect = format!("CONNECT unknown.test:{port} HTTP/1.1\r\nHost: unknown.test\r\n\r\n");
    stream.write_all(connect.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 403 "), "{answer}");
    assert!(answer.contains(&rule), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(proxy.upstream.hits.load(Ordering::SeqCst), 0);
}

#[test]
fn two_identical_requests_share_one_prompt_and_one_answer_releases_both() {
    let proxy = start_proxy(20);
    let url = proxy.url("unknown.test", "/same");
    let first = proxy.fetch(url.clone());
    let second = proxy.fetch(url);
    let pending = proxy.pending_when(|pending| pending.first().is_some_and(|p| p["waiting"] == 2));
    assert_eq!(pending.len(), 1, "{pending:?}");
    let id = pending[0]["id"].to_string();
    let answered = proxy.approvals(&["allow", &id]);
    assert_eq!(answered.status.code(), Some(0), "{}", stderr(&answered));
    for held in [first, second] {
        let fetched = held.join().unwrap();
        assert_eq!(fetched.status, 200, "{}", fetched.body);
    }
    assert_eq!(proxy.upstream.hits.load(Ordering::SeqCst), 2);
    // Allowed once: nothing was written.
    assert_eq!(proxy.rules_text(), RULES);
}

#[test]
fn requests_differing_in_query_string_or_body_size_get_prompts_of_their_own_showing_them() {
    let proxy = start_proxy(30);
    let (addr, ca) = (proxy.addr, proxy.state.join("ca.pem"));
    let send = |url: String, extra: &'static [&'static str]| {
        let ca = ca.clone();
        std::thread::spawn(move || curl_sending(addr, &ca, &url, extra))
    };
    let tunneled = |path: &str| proxy.url("unknown.test", path);
    let plain = format!("http://unknown.test:{}/plain?b=2", proxy.upstream.http_port);
    let held = [
        // Same path, different query strings (through CONNECT + TLS).
        send(tunneled("/q?page=1"), &[]),
        send(tunneled("/q?page=2"), &[]),
        // The same query twice: one prompt, two waiting.
        send(tunneled("/q?page=2"), &[]),
        // Same path, bodies of different sizes.
        send(tunneled("/q"), &["--data-binary", "abc"]),
        send(tunneled("/q"), &["--data-binary", "abcdefgh"]),
        // Absolute-form plain HTTP, with a query and a body.
        send(plain, &["--data-binary", "12345"]),
    ];
    let pending = proxy.pending_when(|pending| {
        pending.len() == 5 && pending.iter().any(|prompt| prompt["waiting"] == 2)
    });
    let mut shown: Vec<String> = pending
        .iter()
        .map(|prompt| {
            format!(
                "{} {} query={} body={} waiting={}",
                prompt["method"].as_str().unwrap(),
                prompt["path"].as_str().unwrap(),
                prompt["query"],
                prompt["body"],
                prompt["waiting"]
            )
        })
        .collect();
    shown.sort();
    assert_eq!(
        shown,
        [
            "GET /q query=\"page=1\" body=\"none\" waiting=1",
            "GET /q query=\"page=2\" body=\"none\" waiting=2",
            "POST /plain query=\"b=2\" body={\"bytes\":5} waiting=1",
            "POST /q query=null body={\"bytes\":3} waiting=1",
            "POST /q query=null body={\"bytes\":8} waiting=1",
        ]
    );
    // `hh approvals` shows them too.
    let listed = String::from_utf8_lossy(&proxy.approvals(&[]).stdout).into_owned();
    assert!(listed.contains("/q?page=1"), "{listed}");
    assert!(listed.contains("8 B"), "{listed}");
    for prompt in &pending {
        let answered = proxy.approvals(&["deny", &prompt["id"].to_string()]);
        assert_eq!(answered.status.code(), Some(0), "{}", stderr(&answered));
    }
    for held in held {
        assert_eq!(held.join().unwrap().status, 403);
    }
    assert_eq!(proxy.upstream.hits.load(Ordering::SeqCst), 0);
}

#[test]
fn a_forever_rule_that_does_not_cover_the_request_is_refused_and_the_request_keeps_waiting() {
    let proxy = start_proxy(20);
    let port = proxy.upstream.tls_port.to_string();
    let held = proxy.fetch(proxy.url("unknown.test", "/api/v1"));
    let id = proxy.one_prompt();
    let refusals = [
        ("domain=other.test", "does not cover"),
        // An allow rule without `port` admits only 80 and 443; the upstream is elsewhere.
        ("domain=unknown.test", "does not cover"),
        ("domain=unknown.test path=/web/* port=1", "does not cover"),
        ("domain==", "does not parse"),
    ];
    for (rule, why) in refusals {
        let refused = proxy.approvals(&["allow", &id, "--forever", "--rule", rule]);
        assert_eq!(refused.status.code(), Some(1), "{rule}: {refused:?}");
        assert!(
            stderr(&refused).contains(why),
            "{rule}: {}",
            stderr(&refused)
        );
    }
    assert_eq!(proxy.pending().len(), 1);
    assert_eq!(proxy.rules_text(), RULES);

    let rule = format!("domain=*.test path=/api/* port={port}");
    let answered = proxy.approvals(&["allow", &id, "--forever", "--rule", &rule]);
    assert_eq!(answered.status.code(), Some(0), "{}", stderr(&answered));
    let fetched = held.join().unwrap();
    assert_eq!(fetched.status, 200, "{}", fetched.body);
    assert!(
        proxy
            .rules_text()
            .contains(&format!("\"domain=*.test path=/api/* port={port}\"")),
        "{}",
        proxy.rules_text()
    );
}

#[test]
fn an_unanswered_request_is_denied_at_the_timeout_with_a_403_saying_how_to_allow_it() {
    let proxy = start_proxy(1);
    let started = Instant::now();
    let held = proxy.fetch(proxy.url("unknown.test", "/late"));
    let id = proxy.one_prompt();
    let fetched = held.join().unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(fetched.status, 403, "{}", fetched.body);
    for needle in [
        "ask timed out",
        "hh approvals allow ID",
        "hh rules add --rules",
    ] {
        assert!(fetched.body.contains(needle), "{needle}: {}", fetched.body);
    }
    assert!(proxy.pending().is_empty());
    // Too late: the prompt is gone.
    let late = proxy.approvals(&["allow", &id]);
    assert_eq!(late.status.code(), Some(1), "{late:?}");
    assert!(
        stderr(&late).contains(&format!("no pending approval {id}")),
        "{}",
        stderr(&late)
    );
    assert_eq!(proxy.upstream.hits.load(Ordering::SeqCst), 0);
}

#[test]
fn a_subscriber_hears_the_prompt_its_answer_and_the_decision() {
    let proxy = start_proxy(20);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = proxy.url("other.test", "/watched");
    let (held, events) = runtime.block_on(async {
        let mut subscription = Client::connect(&proxy.socket)
            .await
            .unwrap()
            .subscribe()
            .await
            .unwrap();
        let held = proxy.fetch(url);
        let mut seen = Vec::new();
        let next = async |subscription: &mut hh::api::client::Subscription| {
            tokio::time::timeout(Duration::from_secs(10), subscription.next())
                .await
                .expect("an event within 10 s")
                .unwrap()
        };
        let Event::ApprovalPending(pending) = next(&mut subscription).await else {
            panic!("the first event is the prompt");
        };
        assert_eq!(pending.host, "other.test");
        let mut client = Client::connect(&proxy.socket).await.unwrap();
        let request = ClientRequest::Answer {
            id: pending.id,
            answer: Answer::AllowOnce,
        };
        client.call(&request).await.unwrap();
        for _ in 0..2 {
            seen.push(next(&mut subscription).await);
        }
        (held, seen)
    });
    assert!(
        matches!(&events[0], Event::ApprovalResolved { outcome, .. } if outcome == "allow once"),
        "{events:?}"
    );
    let Event::Decision(decision) = &events[1] else {
        panic!("then the decision: {events:?}");
    };
    assert_eq!(
        (decision.session.as_str(), decision.host.as_str()),
        ("standalone", "other.test")
    );
    assert_eq!(decision.decision, "allow");
    assert_eq!(
        decision.rule.as_deref(),
        Some("ask: allowed once by a person")
    );
    assert_eq!(held.join().unwrap().status, 200);
}

#[test]
fn hh_approvals_exits_1_when_refused_and_2_without_a_proxy_or_with_bad_usage() {
    let proxy = start_proxy(20);
    let unknown = proxy.approvals(&["allow", "999"]);
    assert_eq!(unknown.status.code(), Some(1), "{unknown:?}");
    assert!(stderr(&unknown).contains("no pending approval 999"));

    let usage = proxy.approvals(&["allow", "1", "--rule", "domain=x.test"]);
    assert_eq!(usage.status.code(), Some(2), "{usage:?}");

    let dir = tempfile::tempdir().unwrap();
    let nobody = support::hh()
        .env("HH_AGENT_SOCKET", dir.path().join("none.sock"))
        .arg("approvals")
        .output()
        .unwrap();
    assert_eq!(nobody.status.code(), Some(2), "{nobody:?}");
    assert!(
        stderr(&nobody).contains("no hh agent answers"),
        "{}",
        stderr(&nobody)
    );
}

#[test]
fn a_raw_tcp_connection_is_asked_without_method_or_path_and_spliced_once_allowed() {
    use std::io::{Read as _, Write as _};
    let proxy = start_proxy(20);
    // A port no HTTP rule names, so not a web port: raw TCP there is asked about.
    let port = proxy.upstream.echo_port;
    let addr = proxy.addr;
    let held = std::thread::spawn(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let connect = format!("CONNECT unknown.test:{port} HTTP/1.1\r\nHost: unknown.test\r\n\r\n");
        stream.write_all(connect.as_bytes()).unwrap();
        let mut established = [0u8; 39];
        stream.read_exact(&mut established).unwrap();
        // Neither TLS nor HTTP: the tunnel carries raw bytes, decided as a connection to host
        // and port.
        stream.write_all(b"\x00raw bytes").unwrap();
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).into_owned()
    });
    let pending = proxy.pending_when(|pending| !pending.is_empty());
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0]["method"], Value::Null);
    assert_eq!(pending[0]["path"], Value::Null);
    assert_eq!(pending[0]["port"], port);
    let listed = proxy.approvals(&[]);
    let table = String::from_utf8_lossy(&listed.stdout);
    assert!(
        table.contains(&format!("TCP unknown.test:{port}")),
        "{table}"
    );
    let id = pending[0]["id"].to_string();
    let answered = proxy.approvals(&["allow", &id]);
    assert_eq!(answered.status.code(), Some(0), "{}", stderr(&answered));
    let answer = held.join().unwrap();
    assert_eq!(answer, "echo:\x00raw bytes");
}

#[test]
fn a_grant_for_a_while_lets_the_paths_it_covers_through_without_asking_until_revoked() {
    let proxy = start_proxy(2);
    let port = proxy.upstream.tls_port;
    let held = proxy.fetch(proxy.url("unknown.test", "/pkg/a"));
    let id = proxy.one_prompt();
    let answered = proxy.approvals(&["allow", &id, "--for", "10m", "--breadth", "prefix"]);
    assert_eq!(answered.status.code(), Some(0), "{}", stderr(&answered));
    assert!(String::from_utf8_lossy(&answered.stdout).contains("allowed for 10m"));
    assert_eq!(held.join().unwrap().status, 200);

    // Under the same directory: through at once (asked, it would be 403 after 2 s).
    let ca = proxy.state.join("ca.pem");
    let started = Instant::now();
    let inside = curl(proxy.addr, &ca, &proxy.url("unknown.test", "/pkg/b"));
    assert_eq!(inside.status, 200, "{}", inside.body);
    assert!(started.elapsed() < Duration::from_secs(2));
    // Outside it: asked, and nobody answers.
    let outside = curl(proxy.addr, &ca, &proxy.url("unknown.test", "/other"));
    assert_eq!(outside.status, 403, "{}", outside.body);

    // Listed with its rule and its end; nothing written to the rules file.
    let listed = proxy.approvals(&["grants", "--json"]);
    assert_eq!(listed.status.code(), Some(0), "{}", stderr(&listed));
    let grants: Vec<Value> = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(grants.len(), 1, "{grants:?}");
    assert_eq!(grants[0]["for"], "10m");
    assert_eq!(
        grants[0]["rule"],
        format!("domain=unknown.test path=/pkg/* port={port}")
    );
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let left = grants[0]["expires_ms"]
        .as_u64()
        .unwrap()
        .saturating_sub(now_ms);
    assert!((590_000..=600_000).contains(&left), "{left} ms left");
    assert_eq!(proxy.rules_text(), RULES);
    let table = String::from_utf8_lossy(&proxy.approvals(&["grants"]).stdout).into_owned();
    assert!(
        table.contains("path=/pkg/*") && table.contains("9m5"),
        "{table}"
    );

    // Revoked: asked again.
    let grant = grants[0]["id"].to_string();
    let revoked = proxy.approvals(&["revoke", &grant]);
    assert_eq!(revoked.status.code(), Some(0), "{}", stderr(&revoked));
    let after = curl(proxy.addr, &ca, &proxy.url("unknown.test", "/pkg/c"));
    assert_eq!(after.status, 403, "{}", after.body);
    let again = proxy.approvals(&["revoke", &grant]);
    assert_eq!(again.status.code(), Some(1), "{}", stderr(&again));
    // A deny cannot be granted for a while.
    let refused = proxy.approvals(&["deny", "1", "--for", "1h"]);
    assert_ne!(refused.status.code(), Some(0));
}
