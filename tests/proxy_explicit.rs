//! `hh proxy` as an explicit proxy, end to end: the real binary, real curl, real TLS, loopback only.
//!
//! Each test starts a local upstream (HTTPS with a CA made here, and plain HTTP, both answering
//! `upstream saw METHOD PATH host=HOST`), then `hh proxy` on 127.0.0.1:0 with a rules file, the
//! test names pinned to loopback addresses by `--resolve`, loopback granted by `--dial-grant`, the
//! test CA trusted by `--upstream-ca`, and a one-second ask timeout.

mod support;

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpStream as StdTcpStream},
    path::{Path, PathBuf},
    process::{Child, Command},
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use support::upstream::{Upstream, start_upstream, start_upstream_offering};

/// Every name a test uses, and the addresses `--resolve` pins them to.
const RESOLVE: [(&str, &str); 10] = [
    ("web.test", "127.0.0.1"),
    ("pipe.test", "127.0.0.1"),
    ("allowed.test", "127.0.0.1"),
    ("ahead.test", "127.0.0.1"),
    ("mixed.test", "127.0.0.1"),
    ("loop.test", "127.0.0.1"),
    ("denied.test", "127.0.0.1"),
    ("unknown.test", "127.0.0.1"),
    ("raw.test", "127.0.0.1"),
    ("meta.test", "169.254.169.254"),
];

/// A running `hh proxy`, killed on drop.
struct Proxy {
    child: Child,
    addr: SocketAddr,
    state: PathBuf,
    upstream: Upstream,
    _dir: tempfile::TempDir,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_proxy() -> Proxy {
    start_proxy_with(true)
}

/// `dial_grant`: whether `--dial-grant 127.0.0.1/32` lets the proxy dial the loopback upstreams
/// whatever rule allowed the request.
fn start_proxy_with(dial_grant: bool) -> Proxy {
    let names: Vec<&str> = RESOLVE.iter().map(|(name, _)| *name).collect();
    start_proxy_for(start_upstream(&names), dial_grant, &[])
}

/// `hh proxy` for `upstream`, with `extra` arguments.
fn start_proxy_for(upstream: Upstream, dial_grant: bool, extra: &[&str]) -> Proxy {
    let dir = tempfile::tempdir().unwrap();
    let (tls, http, echo) = (upstream.tls_port, upstream.http_port, upstream.echo_port);
    let rules = dir.path().join("rules.toml");
    std::fs::write(
        &rules,
        format!(
            "version = 1\n[network]\n\
             allowlist = [\"domain=allowed.test path=/ok/* port={tls},{http}\", \
             \"domain=meta.test port={tls},{http}\", \"domain=raw.test port={http}\", \
             \"domain=127.0.0.1 path=/named/* port={http}\", \"domain=loop.test port={http}\", \
             \"domain=mixed.test port={http}\", \"domain=ahead.test port={tls}\", \
             \"domain=127.0.0.1 path=/named/* port={tls}\", \"domain=* path=/any/* port={tls}\", \
             \"domain=raw.test port={echo}\", \"domain=web.test port={echo}\", \
             \"domain=web.test path=/api/* port={echo}\", \"domain=pipe.test port={echo} proto=tcp\", \
             \"domain=pipe.test path=/api/* port={echo}\"]\n\
             denylist = [\"domain=denied.test\", \"domain=allowed.test path=/secret/*\", \
             \"domain=mixed.test path=/secret/*\"]\n"
        ),
    )
    .unwrap();
    let ca = dir.path().join("test-ca.pem");
    std::fs::write(&ca, &upstream.ca_pem).unwrap();
    let state = dir.path().join("state");

    let mut command = support::hh();
    command.args(["proxy", "--listen", "127.0.0.1:0", "--ask-timeout", "1"]);
    command.arg("--rules").arg(&rules);
    command.arg("--state-dir").arg(&state);
    command.arg("--upstream-ca").arg(&ca);
    if dial_grant {
        command.args(["--dial-grant", "127.0.0.1/32"]);
    }
    command.args(extra);
    for (name, ip) in RESOLVE {
        command.arg("--resolve").arg(format!("{name}={ip}"));
    }
    let (child, addr) = support::spawn_announcing(&mut command, "listening on ");
    let addr = addr.parse().unwrap();
    Proxy {
        child,
        addr,
        state,
        upstream,
        _dir: dir,
    }
}

/// What curl got: the status and the body.
struct Fetched {
    status: u16,
    body: String,
    took: Duration,
}

/// curl through `proxy`, trusting its CA, writing out `write_out` after each transfer.
fn curl_via(proxy: &Proxy, write_out: &str) -> Command {
    let mut command = Command::new("curl");
    command
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .args(["-sS", "--max-time", "20", "--proxy"])
        .arg(format!("http://{}", proxy.addr))
        .arg("--cacert")
        .arg(proxy.state.join("ca.pem"))
        .args(["-w", write_out]);
    command
}

fn curl(proxy: &Proxy, url: &str, extra: &[&str]) -> Fetched {
    let started = Instant::now();
    let output = curl_via(proxy, "\n%{http_code}")
        .args(extra)
        .arg(url)
        .output()
        .expect("curl runs");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let (body, status) = stdout.rsplit_once('\n').unwrap();
    Fetched {
        status: status.parse().unwrap_or_else(|_| {
            panic!(
                "curl {url}: no status in `{stdout}`; stderr: {}",
                String::from_utf8_lossy(&output.stderr)
            )
        }),
        body: body.to_owned(),
        took: started.elapsed(),
    }
}

/// Sends `bytes` straight to the proxy and reads until it closes.
fn raw_exchange(proxy: &Proxy, bytes: &[u8]) -> String {
    let mut stream = StdTcpStream::connect(proxy.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// One curl for all of `urls` (so it reuses one tunnel when they share a host), with `extra`
/// flags; each transfer's output ends with `[STATUS NEW_CONNECTIONS]`.
fn curl_in_one_tunnel(proxy: &Proxy, extra: &[&str], urls: &[String]) -> String {
    let output = curl_via(proxy, "[%{http_code} %{num_connects}]\n")
        .args(extra)
        .args(urls)
        .output()
        .expect("curl runs");
    String::from_utf8(output.stdout).unwrap()
}

/// The audit lines once there are `count` of them: a line is written when its exchange is over,
/// which may be just after the client has its answer.
fn audit_lines_eventually(state: &Path, count: usize) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let lines = audit_lines(state);
        if lines.len() >= count || Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn audit_lines(state: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(state.join("audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).expect("each audit line is JSON"))
        .collect()
}

#[test]
fn an_allowed_https_request_reaches_the_upstream_through_the_tunnel() {
    let proxy = start_proxy();
    let url = format!("https://allowed.test:{}/ok/1?q=2", proxy.upstream.tls_port);
    let fetched = curl(&proxy, &url, &[]);
    assert_eq!(fetched.status, 200, "{}", fetched.body);
    let port = proxy.upstream.tls_port;
    assert_eq!(
        fetched.body,
        format!("upstream saw GET /ok/1?q=2 host=allowed.test:{port}\n")
    );
}

#[test]
fn a_request_denied_inside_the_tunnel_gets_403_naming_the_rule() {
    let proxy = start_proxy();
    let url = format!(
        "https://allowed.test:{}/secret/key",
        proxy.upstream.tls_port
    );
    let fetched = curl(&proxy, &url, &[]);
    assert_eq!(fetched.status, 403, "{}", fetched.body);
    assert!(
        fetched.body.contains("hh blocked GET allowed.test:"),
        "{}",
        fetched.body
    );
    assert!(
        fetched
            .body
            .contains("denylist[1]: domain=allowed.test path=/secret/*"),
        "{}",
        fetched.body
    );
    assert_eq!(proxy.upstream.hits.load(Ordering::SeqCst), 0);
}

#[test]
fn a_connect_to_a_denied_host_is_refused_with_403_before_any_tunnel() {
    let proxy = start_proxy();
    let port = proxy.upstream.tls_port;
    let answer = raw_exchange(
        &proxy,
        format!("CONNECT denied.test:{port} HTTP/1.1\r\nHost: denied.test:{port}\r\n\r\n")
            .as_bytes(),
    );
    assert!(answer.starts_with("HTTP/1.1 403 "), "{answer}");
    assert!(
        answer.contains("denylist[0]: domain=denied.test"),
        "{answer}"
    );
    assert_eq!(proxy.upstream.hits.load(Ordering::SeqCst), 0);
}

#[test]
fn an_unknown_host_is_asked_and_denied_when_the_ask_times_out() {
    let proxy = start_proxy();
    let url = format!("https://unknown.test:{}/anything", proxy.upstream.tls_port);
    let fetched = curl(&proxy, &url, &[]);
    assert_eq!(fetched.status, 403, "{}", fetched.body);
    assert!(fetched.body.contains("ask timed out"), "{}", fetched.body);
    assert!(
        fetched
            .body
            .contains("allow 'domain=unknown.test path=* port="),
        "{}",
        fetched.body
    );
    assert!(fetched.took >= Duration::from_secs(1), "{:?}", fetched.took);
    assert_eq!(proxy.upstream.hits.load(Ordering::SeqCst), 0);
}

#[test]
fn a_host_header_naming_another_host_than_the_tunnel_gets_421() {
    let proxy = start_proxy();
    let url = format!("https://allowed.test:{}/ok/1", proxy.upstream.tls_port);
    let fetched = curl(&proxy, &url, &["-H", "Host: other.test"]);
    assert_eq!(fetched.status, 421, "{}", fetched.body);
    assert_eq!(proxy.upstream.hits.load(Ordering::SeqCst), 0);
}

#[test]
fn absolute_form_http_is_forwarded_when_allowed_and_403_when_denied() {
    let proxy = start_proxy();
    let port = proxy.upstream.http_port;
    let allowed = curl(&proxy, &format!("http://allowed.test:{port}/ok/plain"), &[]);
    assert_eq!(allowed.status, 200, "{}", allowed.body);
    assert_eq!(
        allowed.body,
        format!("upstream saw GET /ok/plain host=allowed.test:{port}\n")
    );
    let denied = curl(&proxy, &format!("http://allowed.test:{port}/secret/x"), &[]);
    assert_eq!(denied.status, 403, "{}", denied.body);
    assert!(denied.body.contains("denylist[1]"), "{}", denied.body);
    assert_eq!(proxy.upstream.hits.load(Ordering::SeqCst), 1);
}

#[test]
fn an_allowed_name_resolving_to_the_metadata_address_is_refused_before_dialing() {
    let proxy = start_proxy();
    let port = proxy.upstream.http_port;
    let fetched = curl(
        &proxy,
        &format!("http://meta.test:{port}/latest/meta-data"),
        &[],
    );
    assert_eq!(fetched.status, 403, "{}", fetched.body);
    assert!(fetched.body.contains("169.254.169.254"), "{}", fetched.body);
    // A dial would have waited for a SYN-ACK that never comes; the refusal is immediate.
    assert!(fetched.took < Duration::from_secs(5), "{:?}", fetched.took);
    let tls_port = proxy.upstream.tls_port;
    let fetched = curl(&proxy, &format!("https://meta.test:{tls_port}/"), &[]);
    assert_eq!(fetched.status, 403, "{}", fetched.body);
    assert!(fetched.body.contains("169.254.169.254"), "{}", fetched.body);
    // The audit says what happened: denied by the guard, not allowed.
    let lines = audit_lines_eventually(&proxy.state, 2);
    assert_eq!(lines.len(), 2);
    for line in lines {
        assert_eq!(line["decision"], "deny", "{line}");
        assert!(
            line["rule"].as_str().unwrap().starts_with("ssrf guard: "),
            "{line}"
        );
    }
}

#[test]
fn an_address_a_rule_names_is_dialed_but_a_name_resolving_to_it_is_not() {
    let proxy = start_proxy_with(false);
    let port = proxy.upstream.http_port;
    // `domain=127.0.0.1` names the address: the guard lets that request through.
    let named = curl(&proxy, &format!("http://127.0.0.1:{port}/named/x"), &[]);
    assert_eq!(named.status, 200, "{}", named.body);
    assert_eq!(
        named.body,
        format!("upstream saw GET /named/x host=127.0.0.1:{port}\n")
    );
    // `domain=loop.test` allows a name, not the loopback address it resolves to.
    let by_name = curl(&proxy, &format!("http://loop.test:{port}/x"), &[]);
    assert_eq!(by_name.status, 403, "{}", by_name.body);
    assert!(by_name.body.contains("127.0.0.1"), "{}", by_name.body);
    assert_eq!(proxy.upstream.hits.load(Ordering::SeqCst), 1);
}

/// Opens a CONNECT tunnel to `host:port`, sends `bytes` once it is established (shutting the
/// write side after them with `half_close`, as a raw protocol's client that is done), and reads
/// until the proxy closes.
fn tunnel_exchange(
    proxy: &Proxy,
    host: &str,
    port: u16,
    bytes: &[u8],
    half_close: bool,
) -> Vec<u8> {
    let mut stream = StdTcpStream::connect(proxy.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let connect = format!("CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n");
    stream.write_all(connect.as_bytes()).unwrap();
    let mut established = [0u8; 39];
    stream.read_exact(&mut established).unwrap();
    assert_eq!(&established, b"HTTP/1.1 200 Connection Established\r\n\r\n");
    stream.write_all(bytes).unwrap();
    if half_close {
        stream.shutdown(std::net::Shutdown::Write).unwrap();
    }
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    out
}

/// A TLS warning alert (`close_notify` would end the stream; `user_canceled` is ignored by
/// OpenSSL, BoringSSL and Go), then a request for another host: the shape of the attack that made
/// an allowed web host's port a pipe to every tenant of its CDN edge.
const ALERT_THEN_OTHER_HOST: &[u8] =
    b"\x15\x03\x01\x00\x02\x01\x5aGET /anything HTTP/1.1\r\nHost: evil.example\r\n\r\n";

#[test]
fn raw_tcp_is_spliced_only_where_a_rule_admits_raw_tcp() {
    let proxy = start_proxy();
    let echo = proxy.upstream.echo_port;
    // A port no HTTP rule names, with a rule for it: raw TCP, as git over SSH needs.
    let spliced = tunnel_exchange(&proxy, "raw.test", echo, b"\x00raw bytes", true);
    assert_eq!(spliced, b"echo:\x00raw bytes");
    // A web port of web.test (an HTTP rule names it): bytes that are neither TLS nor HTTP are
    // refused, although a rule allows web.test on that port whole.
    let refused = tunnel_exchange(&proxy, "web.test", echo, ALERT_THEN_OTHER_HOST, true);
    assert_eq!(String::from_utf8_lossy(&refused), "");
    let refused = tunnel_exchange(
        &proxy,
        "web.test",
        echo,
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        true,
    );
    assert_eq!(String::from_utf8_lossy(&refused), "");
    // `proto=tcp` asks for raw TCP on a web port explicitly.
    let piped = tunnel_exchange(&proxy, "pipe.test", echo, ALERT_THEN_OTHER_HOST, true);
    assert_eq!(piped, [b"echo:".as_slice(), ALERT_THEN_OTHER_HOST].concat());
    assert_eq!(
        proxy.upstream.echoed.load(Ordering::SeqCst),
        b"\x00raw bytes".len() + ALERT_THEN_OTHER_HOST.len()
    );
    let lines = audit_lines_eventually(&proxy.state, 4);
    let web: Vec<_> = lines
        .iter()
        .filter(|line| line["host"] == "web.test")
        .collect();
    assert_eq!(web.len(), 2, "{lines:?}");
    for line in web {
        assert_eq!(line["decision"], "deny", "{line}");
        let rule = line["rule"].as_str().unwrap_or_default();
        assert!(rule.contains("proto=tcp"), "{line}");
    }
}

#[test]
fn plain_http_in_a_tunnel_is_parsed_and_each_request_decided() {
    let proxy = start_proxy();
    let port = proxy.upstream.http_port;
    let get = |path: &str, host: &str| {
        let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        let out = tunnel_exchange(&proxy, "allowed.test", port, request.as_bytes(), false);
        String::from_utf8_lossy(&out).into_owned()
    };
    // allowed.test's rule admits /ok/* only: over plain HTTP too, exactly its path.
    let allowed = get("/ok/plain", &format!("allowed.test:{port}"));
    assert!(allowed.starts_with("HTTP/1.1 200 "), "{allowed}");
    assert!(
        allowed.contains(&format!(
            "upstream saw GET /ok/plain host=allowed.test:{port}"
        )),
        "{allowed}"
    );
    let denied = get("/secret/x", &format!("allowed.test:{port}"));
    assert!(denied.starts_with("HTTP/1.1 403 "), "{denied}");
    assert!(denied.contains("denylist[1]"), "{denied}");
    // Another Host than the tunnel's name never reaches the upstream.
    let other = get("/ok/plain", "evil.example");
    assert!(other.starts_with("HTTP/1.1 421 "), "{other}");
    // h2c is not an upgrade hh makes: the request goes on as plain HTTP/1.1.
    let h2c = tunnel_exchange(
        &proxy,
        "allowed.test",
        port,
        format!(
            "GET /ok/h2c HTTP/1.1\r\nHost: allowed.test:{port}\r\nConnection: Upgrade, HTTP2-Settings, close\r\n\
             Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
        )
        .as_bytes(),
        false,
    );
    let h2c = String::from_utf8_lossy(&h2c);
    assert!(h2c.starts_with("HTTP/1.1 200 "), "{h2c}");
    assert_eq!(proxy.upstream.hits.load(Ordering::SeqCst), 2);
    let lines = audit_lines_eventually(&proxy.state, 3);
    let paths: Vec<&str> = lines
        .iter()
        .filter_map(|line| line["path"].as_str())
        .collect();
    assert_eq!(paths, ["/ok/plain", "/secret/x", "/ok/h2c"], "{lines:?}");
}

#[test]
fn fields_that_would_reroute_a_request_upstream_never_reach_it() {
    let proxy = start_proxy();
    let fields = [
        "-H",
        "X-HTTP-Method-Override: DELETE",
        "-H",
        "X-Method-Override: DELETE",
        "-H",
        "X-HTTP-Method: DELETE",
        "-H",
        "X-Original-URL: /secret/x",
        "-H",
        "X-Rewrite-URL: /secret/x",
        "-H",
        "X-Forwarded-Prefix: /secret",
        "-H",
        "X_HTTP_METHOD_OVERRIDE: DELETE",
        "-H",
        "X-Forwarded-Uri: /secret/x",
        "-H",
        "X-Kept: 1",
    ];
    for url in [
        format!("http://mixed.test:{}/ok", proxy.upstream.http_port),
        format!("https://allowed.test:{}/ok/x", proxy.upstream.tls_port),
    ] {
        let fetched = curl(&proxy, &url, &fields);
        assert_eq!(fetched.status, 200, "{}", fetched.body);
        assert!(
            fetched.body.contains(" x=x-kept\n"),
            "{url}: {}",
            fetched.body
        );
    }
}

#[test]
fn a_denied_path_is_denied_in_any_ascii_case() {
    let proxy = start_proxy();
    for url in [
        format!("http://mixed.test:{}/SECRET/x", proxy.upstream.http_port),
        format!("http://mixed.test:{}/Secret/x", proxy.upstream.http_port),
        format!("https://allowed.test:{}/sEcReT/x", proxy.upstream.tls_port),
    ] {
        let fetched = curl(&proxy, &url, &[]);
        assert_eq!(fetched.status, 403, "{url}: {}", fetched.body);
        assert!(fetched.body.contains("secret"), "{}", fetched.body);
    }
    assert_eq!(proxy.upstream.hits.load(Ordering::SeqCst), 0);
}

#[test]
fn every_decision_is_one_audit_line() {
    let proxy = start_proxy();
    let tls = proxy.upstream.tls_port;
    let http = proxy.upstream.http_port;
    curl(&proxy, &format!("https://allowed.test:{tls}/ok/a"), &[]);
    curl(&proxy, &format!("https://allowed.test:{tls}/secret/b"), &[]);
    curl(&proxy, &format!("http://allowed.test:{http}/ok/c"), &[]);
    let lines = audit_lines_eventually(&proxy.state, 3);
    let summary: Vec<(String, String, String)> = lines
        .iter()
        .map(|line| {
            (
                line["decision"].as_str().unwrap().to_owned(),
                line["host"].as_str().unwrap().to_owned(),
                line["path"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let expected = [
        ("allow", "allowed.test", "/ok/a"),
        ("deny", "allowed.test", "/secret/b"),
        ("allow", "allowed.test", "/ok/c"),
    ]
    .map(|(d, h, p)| (d.to_owned(), h.to_owned(), p.to_owned()));
    assert_eq!(summary, expected);
    assert!(
        lines[1]["rule"]
            .as_str()
            .unwrap()
            .contains("path=/secret/*")
    );
    // The allowed exchanges carry their byte counts; the denied one moved nothing.
    for (index, moved) in [(0, true), (1, false), (2, true)] {
        let down = lines[index]["bytes_down"].as_u64().unwrap();
        assert_eq!(down > 0, moved, "{}", lines[index]);
    }
}

type TlsClient = rustls::StreamOwned<rustls::ClientConnection, StdTcpStream>;

/// Opens a CONNECT tunnel to `connect_host` and starts TLS in it with `sni`, trusting hh's CA.
/// The handshake runs on first use.
fn tunnel(proxy: &Proxy, connect_host: &str, sni: &str) -> TlsClient {
    use rustls::pki_types::ServerName;
    let port = proxy.upstream.tls_port;
    let mut stream = StdTcpStream::connect(proxy.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let connect =
        format!("CONNECT {connect_host}:{port} HTTP/1.1\r\nHost: {connect_host}:{port}\r\n\r\n");
    stream.write_all(connect.as_bytes()).unwrap();
    let mut established = [0u8; 39];
    stream.read_exact(&mut established).unwrap();
    assert_eq!(&established, b"HTTP/1.1 200 Connection Established\r\n\r\n");

    let ca_pem = std::fs::read(proxy.state.join("ca.pem")).unwrap();
    let config = support::upstream::client_trusting(&ca_pem, &[]);
    let name = ServerName::try_from(sni.to_owned()).unwrap();
    let connection = rustls::ClientConnection::new(config, name).unwrap();
    rustls::StreamOwned::new(connection, stream)
}

/// One request through a tunnel opened by [`tunnel`]: the response, or the TLS error.
fn tls_through_tunnel(proxy: &Proxy, connect_host: &str, sni: &str) -> Result<String, String> {
    let mut tls = tunnel(proxy, connect_host, sni);
    let port = proxy.upstream.tls_port;
    let request =
        format!("GET /ok/sni HTTP/1.1\r\nHost: {sni}:{port}\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes())
        .map_err(|error| error.to_string())?;
    let mut out = Vec::new();
    match tls.read_to_end(&mut out) {
        Ok(_) => Ok(String::from_utf8_lossy(&out).into_owned()),
        // Servers often close without close_notify; what was read still counts.
        Err(_) if !out.is_empty() => Ok(String::from_utf8_lossy(&out).into_owned()),
        Err(error) => Err(error.to_string()),
    }
}

#[test]
fn a_tls_client_hello_naming_another_host_than_the_connect_is_refused() {
    let proxy = start_proxy();
    let same = tls_through_tunnel(&proxy, "allowed.test", "allowed.test").unwrap();
    assert!(same.starts_with("HTTP/1.1 200 OK"), "{same}");
    let other = tls_through_tunnel(&proxy, "allowed.test", "denied.test");
    // Refused before any certificate is sent: the client sees the connection end, not a bad name.
    let error = other.expect_err("a mismatched SNI gets no TLS session");
    assert!(!error.contains("certificate"), "{error}");
    assert_eq!(proxy.upstream.hits.load(Ordering::SeqCst), 1);
}

#[test]
fn request_bodies_stream_upstream_through_both_doors() {
    let proxy = start_proxy();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::write(&data, vec![b'x'; 3 * 1024 * 1024]).unwrap();
    let upload = format!("@{}", data.display());
    let (tls, http) = (proxy.upstream.tls_port, proxy.upstream.http_port);
    for url in [
        format!("https://allowed.test:{tls}/ok/upload"),
        format!("http://allowed.test:{http}/ok/upload"),
    ] {
        let fetched = curl(&proxy, &url, &["--data-binary", &upload]);
        assert_eq!(fetched.status, 200, "{url}: {}", fetched.body);
        assert!(
            fetched
                .body
                .ends_with(&format!("body={}\n", 3 * 1024 * 1024)),
            "{url}: {}",
            fetched.body
        );
    }
}

#[test]
fn an_ambiguous_request_head_is_refused_with_400_before_any_decision() {
    let proxy = start_proxy();
    let port = proxy.upstream.http_port;
    let answer = raw_exchange(
        &proxy,
        format!(
            "POST http://allowed.test:{port}/ok/x HTTP/1.1\r\nHost: allowed.test\r\n\
             Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        )
        .as_bytes(),
    );
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    assert!(
        answer.contains("both Content-Length and Transfer-Encoding"),
        "{answer}"
    );
    assert_eq!(proxy.upstream.hits.load(Ordering::SeqCst), 0);
    assert!(audit_lines(&proxy.state).is_empty());
}

#[test]
fn each_request_in_one_tunnel_is_decided_on_its_own() {
    let proxy = start_proxy();
    let tls = proxy.upstream.tls_port;
    // One curl, two URLs on the same host: curl reuses the tunnel for the second.
    let stdout = curl_in_one_tunnel(
        &proxy,
        &[],
        &[
            format!("https://allowed.test:{tls}/ok/first"),
            format!("https://allowed.test:{tls}/secret/second"),
        ],
    );
    assert!(stdout.contains("upstream saw GET /ok/first"), "{stdout}");
    assert!(stdout.contains("[200 1]"), "{stdout}");
    assert!(stdout.contains("denylist[1]"), "{stdout}");
    // The second request reused the tunnel (no new connection) and was still denied.
    assert!(stdout.contains("[403 0]"), "{stdout}");
    assert_eq!(proxy.upstream.hits.load(Ordering::SeqCst), 1);
    assert_eq!(audit_lines_eventually(&proxy.state, 2).len(), 2);
}

#[test]
fn allowed_requests_in_one_tunnel_share_one_upstream_connection_and_each_is_decided() {
    let proxy = start_proxy();
    let tls = proxy.upstream.tls_port;
    let stdout = curl_in_one_tunnel(
        &proxy,
        &["--http1.1"],
        &[
            format!("https://allowed.test:{tls}/ok/one"),
            format!("https://allowed.test:{tls}/secret/between"),
            format!("https://allowed.test:{tls}/ok/two"),
            format!("https://allowed.test:{tls}/ok/three"),
        ],
    );
    for path in ["/ok/one", "/ok/two", "/ok/three"] {
        assert!(
            stdout.contains(&format!("upstream saw GET {path}")),
            "{stdout}"
        );
    }
    assert!(
        stdout.contains("[403 0]"),
        "the denied request in between: {stdout}"
    );
    assert_eq!(proxy.upstream.hits.load(Ordering::SeqCst), 3);
    // Kept between requests: one upstream handshake for the whole tunnel.
    assert_eq!(proxy.upstream.tls_connections.load(Ordering::SeqCst), 1);
    assert_eq!(audit_lines_eventually(&proxy.state, 4).len(), 4);
}

#[test]
fn an_unused_kept_upstream_connection_closes_and_the_tunnel_dials_anew() {
    let names: Vec<&str> = RESOLVE.iter().map(|(name, _)| *name).collect();
    let proxy = start_proxy_for(start_upstream(&names), true, &["--upstream-keep", "1"]);
    let tls = proxy.upstream.tls_port;
    // One tunnel, two requests three seconds apart (`--rate 20/m`), past the one-second keep.
    let stdout = curl_in_one_tunnel(
        &proxy,
        &["--http1.1", "--rate", "20/m"],
        &[
            format!("https://allowed.test:{tls}/ok/one"),
            format!("https://allowed.test:{tls}/ok/two"),
        ],
    );
    assert!(stdout.contains("upstream saw GET /ok/one"), "{stdout}");
    assert!(stdout.contains("upstream saw GET /ok/two"), "{stdout}");
    // The client kept its tunnel (no new connection for the second request)…
    assert!(stdout.contains("[200 0]"), "{stdout}");
    // …while the proxy closed the upstream connection it no longer used, and dialed a new one.
    assert_eq!(proxy.upstream.tls_connections.load(Ordering::SeqCst), 2);
}

#[test]
fn a_kept_connection_a_rule_granted_is_not_used_by_a_request_whose_rule_grants_nothing() {
    // No --dial-grant: only a rule naming 127.0.0.1 lets the proxy dial it.
    let proxy = start_proxy_for(start_upstream(&["127.0.0.1"]), false, &[]);
    let tls = proxy.upstream.tls_port;
    let stdout = curl_in_one_tunnel(
        &proxy,
        &["--http1.1"],
        &[
            format!("https://127.0.0.1:{tls}/named/one"),
            format!("https://127.0.0.1:{tls}/any/two"),
        ],
    );
    assert!(stdout.contains("upstream saw GET /named/one"), "{stdout}");
    // The same tunnel, allowed by `domain=*`, which names no address: the loopback connection
    // the first request's rule granted is not reused, and a fresh dial is refused.
    assert!(!stdout.contains("upstream saw GET /any/two"), "{stdout}");
    assert!(stdout.contains("refused to dial"), "{stdout}");
    assert!(stdout.contains("[403 0]"), "{stdout}");
}

#[test]
fn only_a_host_a_rule_admits_is_dialed_before_the_first_request() {
    let proxy = start_proxy();
    let tls = proxy.upstream.tls_port;
    let dialed = || proxy.upstream.tls_connections.load(Ordering::SeqCst);
    // Path-limited (allowed.test allows /ok/* only) and unknown (would be asked) hosts: no
    // upstream connection until a request is decided.
    let _limited = handshaken_tunnel(&proxy, "allowed.test");
    let _unknown = handshaken_tunnel(&proxy, "unknown.test");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(dialed(), 0, "dialed before any request was decided");
    // A host whose plain requests a rule allows: dialed while the client's handshake ran.
    let mut ahead = handshaken_tunnel(&proxy, "ahead.test");
    let deadline = Instant::now() + Duration::from_secs(5);
    while dialed() == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        dialed(),
        1,
        "no upstream connection before the first request"
    );
    assert_eq!(proxy.upstream.hits.load(Ordering::SeqCst), 0);
    // The first request goes on that connection.
    write!(
        ahead,
        "GET /first HTTP/1.1\r\nHost: ahead.test:{tls}\r\n\r\n"
    )
    .unwrap();
    let mut seen = Vec::new();
    let mut chunk = [0u8; 1024];
    while !String::from_utf8_lossy(&seen).contains("upstream saw GET /first") {
        let read = ahead.read(&mut chunk).expect("a response");
        assert!(read > 0, "closed: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&chunk[..read]);
    }
    assert_eq!(dialed(), 1);
}

/// [`tunnel`] with its TLS handshake done and no request sent: what curl cannot be asked to do.
fn handshaken_tunnel(proxy: &Proxy, host: &str) -> TlsClient {
    let mut tls = tunnel(proxy, host, host);
    while tls.conn.is_handshaking() {
        tls.conn
            .complete_io(&mut tls.sock)
            .expect("TLS with hh's leaf");
    }
    tls
}

#[test]
fn a_response_streams_back_before_the_upstream_has_finished_it() {
    let proxy = start_proxy();
    let http = proxy.upstream.http_port;
    let mut stream = StdTcpStream::connect(proxy.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let request =
        format!("GET http://allowed.test:{http}/ok/stream HTTP/1.1\r\nHost: allowed.test\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    // The upstream holds the second part until the first has reached us through the proxy: a
    // proxy that buffered the whole response would time this read out.
    let mut seen = read_until(&mut stream, "upstream saw GET /ok/stream");
    proxy.upstream.release.notify_one();
    stream.read_to_end(&mut seen).unwrap();
    assert!(String::from_utf8_lossy(&seen).contains("second part\n"));
}

#[test]
fn a_response_streams_back_through_the_tunnel_before_the_upstream_has_finished_it() {
    let proxy = start_proxy();
    let mut tls = tunnel(&proxy, "allowed.test", "allowed.test");
    let port = proxy.upstream.tls_port;
    let request = format!("GET /ok/stream HTTP/1.1\r\nHost: allowed.test:{port}\r\n\r\n");
    tls.write_all(request.as_bytes()).unwrap();
    read_until(&mut tls, "upstream saw GET /ok/stream");
    proxy.upstream.release.notify_one();
    read_until(&mut tls, "second part");
}

/// Reads until `needle` has arrived (a read timeout or end of stream fails the test).
fn read_until(stream: &mut impl std::io::Read, needle: &str) -> Vec<u8> {
    let mut seen = Vec::new();
    let mut chunk = [0u8; 1024];
    while !String::from_utf8_lossy(&seen).contains(needle) {
        let read = stream.read(&mut chunk).unwrap_or_else(|error| {
            panic!(
                "waiting for `{needle}`: {error}; got {}",
                String::from_utf8_lossy(&seen)
            )
        });
        assert_ne!(read, 0, "{}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&chunk[..read]);
    }
    seen
}

#[test]
fn an_oversized_request_head_is_refused_with_400() {
    let proxy = start_proxy();
    let port = proxy.upstream.http_port;
    let filler = "x".repeat(40 * 1024);
    let answer = raw_exchange(
        &proxy,
        format!("GET http://allowed.test:{port}/ok/x HTTP/1.1\r\nHost: allowed.test\r\nX-Filler: {filler}\r\n\r\n")
            .as_bytes(),
    );
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    assert!(answer.contains("longer than"), "{answer}");
    assert_eq!(proxy.upstream.hits.load(Ordering::SeqCst), 0);
}

#[test]
fn a_connect_inside_a_tunnel_is_refused() {
    let proxy = start_proxy();
    let mut tls = tunnel(&proxy, "allowed.test", "allowed.test");
    let port = proxy.upstream.tls_port;
    let request = format!("CONNECT raw.test:{port} HTTP/1.1\r\nHost: allowed.test:{port}\r\n\r\n");
    tls.write_all(request.as_bytes()).unwrap();
    let answer = String::from_utf8_lossy(&read_until(&mut tls, "\r\n\r\n")).into_owned();
    assert!(answer.starts_with("HTTP/1.1 405 "), "{answer}");
    assert_eq!(proxy.upstream.hits.load(Ordering::SeqCst), 0);
}

#[test]
fn a_missing_rules_file_stops_the_proxy_at_startup() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.toml");
    let output = support::hh()
        .args(["proxy", "--listen", "127.0.0.1:0", "--rules"])
        .arg(&missing)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("does not exist"), "{stderr}");
}

#[test]
fn an_http2_client_gets_h2_and_the_request_reaches_the_upstream_over_h2() {
    let proxy = start_proxy();
    let url = format!("https://allowed.test:{}/ok/h2", proxy.upstream.tls_port);
    for (flag, status_line) in [("--http2", "\nHTTP/2 200"), ("--http1.1", "\nHTTP/1.1 200")] {
        // -D -: the heads (the CONNECT's and the response's) come before the body.
        let fetched = curl(&proxy, &url, &[flag, "-D", "-"]);
        assert_eq!(fetched.status, 200, "{flag}: {}", fetched.body);
        assert!(
            fetched.body.contains(status_line),
            "{flag}: {}",
            fetched.body
        );
        // Whatever the client speaks, the upstream (which offers h2) is reached over HTTP/2.
        assert!(
            fetched.body.contains("x-upstream-version: HTTP/2.0"),
            "{flag}: {}",
            fetched.body
        );
        let port = proxy.upstream.tls_port;
        assert!(
            fetched.body.contains(&format!(
                "upstream saw GET /ok/h2 host=allowed.test:{port}\n"
            )),
            "{flag}: {}",
            fetched.body
        );
    }
}

/// Opens a CONNECT tunnel to `connect_host` and speaks HTTP/2 in it (ALPN h2), trusting hh's CA.
async fn h2_tunnel(
    proxy: &Proxy,
    connect_host: &str,
) -> hyper::client::conn::http2::SendRequest<http_body_util::Empty<bytes::Bytes>> {
    use rustls::pki_types::ServerName;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let port = proxy.upstream.tls_port;
    let mut stream = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    let connect =
        format!("CONNECT {connect_host}:{port} HTTP/1.1\r\nHost: {connect_host}:{port}\r\n\r\n");
    stream.write_all(connect.as_bytes()).await.unwrap();
    let mut established = [0u8; 39];
    stream.read_exact(&mut established).await.unwrap();
    assert_eq!(&established, b"HTTP/1.1 200 Connection Established\r\n\r\n");
    let ca_pem = std::fs::read(proxy.state.join("ca.pem")).unwrap();
    let config = support::upstream::client_trusting(&ca_pem, &[b"h2"]);
    let name = ServerName::try_from(connect_host.to_owned()).unwrap();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, stream)
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    sender
}

#[test]
fn an_http2_client_reaches_an_http1_only_upstream_with_the_authority_in_host() {
    let names: Vec<&str> = RESOLVE.iter().map(|(name, _)| *name).collect();
    let proxy = start_proxy_for(start_upstream_offering(&names, &[b"http/1.1"]), true, &[]);
    let port = proxy.upstream.tls_port;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (version, body) = runtime.block_on(async {
        let mut sender = h2_tunnel(&proxy, "allowed.test").await;
        let request = hyper::Request::get(format!("https://allowed.test:{port}/ok/down"))
            .body(http_body_util::Empty::new())
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        let version = response.headers()["x-upstream-version"].clone();
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        (version, String::from_utf8_lossy(&body).into_owned())
    });
    assert_eq!(version, "HTTP/1.1");
    // The client sent no Host (HTTP/2 has `:authority`); the proxy wrote one from the checked name.
    assert_eq!(
        body,
        format!("upstream saw GET /ok/down host=allowed.test:{port}\n")
    );
}

#[test]
fn each_stream_of_one_http2_connection_is_checked_for_its_own_authority() {
    let proxy = start_proxy();
    let port = proxy.upstream.tls_port;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut sender = h2_tunnel(&proxy, "allowed.test").await;
        let mut get = async |uri: String| {
            let request = hyper::Request::get(uri)
                .body(http_body_util::Empty::new())
                .unwrap();
            let response = sender.send_request(request).await.unwrap();
            let status = response.status().as_u16();
            let body = http_body_util::BodyExt::collect(response.into_body())
                .await
                .unwrap()
                .to_bytes();
            (status, String::from_utf8_lossy(&body).into_owned())
        };
        let (status, body) = get(format!("https://allowed.test:{port}/ok/first")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body,
            format!("upstream saw GET /ok/first host=allowed.test:{port}\n")
        );
        // The same connection reused for another authority (connection coalescing): 421, even
        // though a rule would allow mixed.test.
        let (status, body) = get(format!("https://mixed.test:{port}/ok/second")).await;
        assert_eq!(status, 421, "{body}");
        assert!(body.contains("mixed.test"), "{body}");
        // A denied path on the right authority is denied by its rule, stream by stream.
        let (status, body) = get(format!("https://allowed.test:{port}/secret/third")).await;
        assert_eq!(status, 403, "{body}");
        assert!(body.contains("denylist[1]"), "{body}");
    });
    assert_eq!(proxy.upstream.hits.load(Ordering::SeqCst), 1);
}

/// The fields of a real WebSocket handshake (RFC 6455 §4.1's example key).
const WEBSOCKET: &str = "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
                         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

/// Sends a WebSocket upgrade for `path` through a tunnel to allowed.test; the response head.
fn websocket_upgrade(tls: &mut TlsClient, port: u16, path: &str) -> String {
    upgrade_with(tls, port, path, WEBSOCKET)
}

/// Sends `GET path` with `fields` through a tunnel to allowed.test; the response head.
fn upgrade_with(tls: &mut TlsClient, port: u16, path: &str, fields: &str) -> String {
    let request = format!("GET {path} HTTP/1.1\r\nHost: allowed.test:{port}\r\n{fields}\r\n");
    tls.write_all(request.as_bytes()).unwrap();
    read_response(tls)
}

/// One response: its head, and its body when it has a `Content-Length`.
fn read_response(stream: &mut impl std::io::Read) -> String {
    let mut seen = read_until(stream, "\r\n\r\n");
    let text = String::from_utf8_lossy(&seen).into_owned();
    let head_end = text.find("\r\n\r\n").unwrap() + 4;
    let length = text[..head_end]
        .lines()
        .find_map(|line| {
            let line = line.to_ascii_lowercase();
            line.strip_prefix("content-length:")
                .map(|value| value.trim().parse::<usize>().unwrap())
        })
        .unwrap_or(0);
    let mut chunk = [0u8; 1024];
    while seen.len() < head_end + length {
        let read = stream.read(&mut chunk).unwrap();
        assert_ne!(read, 0, "{}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&chunk[..read]);
    }
    String::from_utf8_lossy(&seen).into_owned()
}

#[test]
fn a_websocket_upgrade_that_is_not_a_real_handshake_is_refused_and_http_goes_on() {
    let proxy = start_proxy();
    let port = proxy.upstream.tls_port;
    // The websocket-smuggle shapes: a version nobody speaks, no key, a body.
    for fields in [
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 1337\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n",
        &format!("{WEBSOCKET}Transfer-Encoding: chunked\r\n"),
    ] {
        let mut tls = tunnel(&proxy, "allowed.test", "allowed.test");
        let head = upgrade_with(&mut tls, port, "/ok/ws", fields);
        assert!(
            head.starts_with("HTTP/1.1 400 ") || head.starts_with("HTTP/1.1 403 "),
            "{head}"
        );
    }
    // What follows a refused upgrade in the same connection is parsed and decided again.
    let mut tls = tunnel(&proxy, "allowed.test", "allowed.test");
    let head = upgrade_with(
        &mut tls,
        port,
        "/ok/ws",
        "Upgrade: websocket\r\nConnection: Upgrade\r\n",
    );
    assert!(head.starts_with("HTTP/1.1 400 "), "{head}");
    let head = upgrade_with(&mut tls, port, "/secret/flag", "");
    assert!(head.starts_with("HTTP/1.1 403 "), "{head}");
    assert_eq!(proxy.upstream.hits.load(Ordering::SeqCst), 0);
}

#[test]
fn a_101_that_does_not_accept_the_key_gets_the_client_a_502() {
    let proxy = start_proxy();
    let port = proxy.upstream.tls_port;
    let mut tls = tunnel(&proxy, "allowed.test", "allowed.test");
    let response = websocket_upgrade(&mut tls, port, "/ok/badaccept");
    assert!(response.starts_with("HTTP/1.1 502 "), "{response}");
    assert!(response.contains("Sec-WebSocket-Accept"), "{response}");
}

#[test]
fn an_allowed_websocket_upgrade_is_relayed_both_ways() {
    let proxy = start_proxy();
    let port = proxy.upstream.tls_port;
    let mut tls = tunnel(&proxy, "allowed.test", "allowed.test");
    let head = websocket_upgrade(&mut tls, port, "/ok/ws");
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("upgrade: websocket"),
        "{head}"
    );
    // The upstream echoes: bytes cross the proxy both ways after the switch.
    tls.write_all(b"\x81\x04ping").unwrap();
    read_until(&mut tls, "ping");
    assert_eq!(proxy.upstream.hits.load(Ordering::SeqCst), 1);
}

#[test]
fn a_websocket_upgrade_the_policy_denies_never_reaches_the_upstream() {
    let proxy = start_proxy();
    let port = proxy.upstream.tls_port;
    let mut tls = tunnel(&proxy, "allowed.test", "allowed.test");
    let head = websocket_upgrade(&mut tls, port, "/secret/ws");
    assert!(head.starts_with("HTTP/1.1 403 "), "{head}");
    assert_eq!(proxy.upstream.hits.load(Ordering::SeqCst), 0);
}

#[test]
fn an_idle_http2_connection_is_closed_after_the_idle_timeout() {
    let names: Vec<&str> = RESOLVE.iter().map(|(name, _)| *name).collect();
    let proxy = start_proxy_for(start_upstream(&names), true, &["--idle-timeout", "1"]);
    let port = proxy.upstream.tls_port;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut sender = h2_tunnel(&proxy, "allowed.test").await;
        let request = hyper::Request::get(format!("https://allowed.test:{port}/ok/idle"))
            .body(http_body_util::Empty::new())
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), 200);
        drop(response);
        assert!(!sender.is_closed());
        let started = Instant::now();
        while !sender.is_closed() {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "the idle connection is still open"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(started.elapsed() >= Duration::from_millis(500));
    });
}

#[test]
fn an_upstream_switching_protocols_unasked_gets_the_client_a_502() {
    let names: Vec<&str> = RESOLVE.iter().map(|(name, _)| *name).collect();
    let proxy = start_proxy_for(start_upstream_offering(&names, &[b"http/1.1"]), true, &[]);
    let url = format!("https://allowed.test:{}/ok/switch", proxy.upstream.tls_port);
    let fetched = curl(&proxy, &url, &[]);
    assert_eq!(fetched.status, 502, "{}", fetched.body);
    assert!(
        fetched.body.contains("switched protocols although"),
        "{}",
        fetched.body
    );
}

#[test]
fn a_connect_to_a_literal_the_guard_refuses_gets_403_at_connect_time() {
    // 10.1.2.3 is only a value that must be refused: nothing is ever sent there (no grant, no
    // rule names it, and the CONNECT itself is answered 403).
    let proxy = start_proxy_with(false);
    let answer = raw_exchange(
        &proxy,
        b"CONNECT 10.1.2.3:443 HTTP/1.1\r\nHost: 10.1.2.3:443\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 403 "), "{answer}");
    assert!(
        answer.contains("refuses to connect to TCP 10.1.2.3:443"),
        "{answer}"
    );
    assert!(answer.contains("private"), "{answer}");
    assert!(
        answer.contains("allow 'domain=10.1.2.3 port=443'"),
        "{answer}"
    );
    // A literal a rule names is decided inside the tunnel, by that rule.
    let port = proxy.upstream.http_port;
    let named = format!("CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    let mut stream = StdTcpStream::connect(proxy.addr).unwrap();
    stream.write_all(named.as_bytes()).unwrap();
    let mut established = [0u8; 39];
    stream.read_exact(&mut established).unwrap();
    assert_eq!(&established, b"HTTP/1.1 200 Connection Established\r\n\r\n");
    let lines = audit_lines_eventually(&proxy.state, 1);
    assert_eq!(lines[0]["host"], "10.1.2.3", "{lines:?}");
    assert_eq!(lines[0]["decision"], "deny", "{lines:?}");
}

/// 100 requests at once on one HTTP/2 tunnel; how many TLS connections reached the upstream.
fn upstream_connections_for_100_streams(proxy: &Proxy) -> usize {
    let port = proxy.upstream.tls_port;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let sender = h2_tunnel(proxy, "allowed.test").await;
        let mut streams = tokio::task::JoinSet::new();
        for index in 0..100 {
            let mut sender = sender.clone();
            let url = format!("https://allowed.test:{port}/ok/fan/{index}");
            streams.spawn(async move {
                let request = hyper::Request::get(url)
                    .body(http_body_util::Empty::new())
                    .unwrap();
                let response = sender.send_request(request).await.unwrap();
                let status = response.status();
                http_body_util::BodyExt::collect(response.into_body())
                    .await
                    .unwrap();
                status
            });
        }
        for status in streams.join_all().await {
            assert_eq!(status, 200);
        }
    });
    assert_eq!(proxy.upstream.hits.load(Ordering::SeqCst), 100);
    proxy.upstream.tls_connections.load(Ordering::SeqCst)
}

#[test]
fn a_hundred_http2_streams_open_a_bounded_number_of_upstream_connections() {
    // An HTTP/2 upstream carries them all on one connection.
    let proxy = start_proxy();
    assert_eq!(upstream_connections_for_100_streams(&proxy), 1);
    // An HTTP/1.1 upstream needs a connection per request in flight: at most the tunnel's bound.
    let names: Vec<&str> = RESOLVE.iter().map(|(name, _)| *name).collect();
    let proxy = start_proxy_for(start_upstream_offering(&names, &[b"http/1.1"]), true, &[]);
    let opened = upstream_connections_for_100_streams(&proxy);
    eprintln!("100 HTTP/2 streams, an HTTP/1.1 upstream: {opened} upstream connections");
    assert!(
        (1..=hh::proxy::kept_upstream::MAX_TUNNEL_UPSTREAMS).contains(&opened),
        "{opened} upstream connections"
    );
}
