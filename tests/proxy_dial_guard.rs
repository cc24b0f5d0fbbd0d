//! The proxy's dial guard end to end: the real `hh proxy`, real curl, real sockets.
//!
//! - A deny rule on an IP literal holds for every name that resolves to that address: the
//!   proxy refuses the dial (a 403 that names the rule) although another rule allows the name and
//!   a grant covers the address.
//! - The host's own addresses are refused even inside a granted block: the proxy runs in a
//!   network namespace made here whose veth interface carries `10.77.0.1` and `fd77::1` (the
//!   "host"'s addresses) and `10.78.0.1`; an upstream listens on all three. Only an exact grant
//!   opens one of them. Nothing leaves the namespace: it has no route anywhere else.

mod support;

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpListener},
    process::{Child, Command},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use support::{kernel::NetNs, require_root, upstream::start_upstream};

/// A running `hh proxy`, killed on drop.
struct Proxy {
    child: Child,
    addr: SocketAddr,
    state: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `program`, or `ip netns exec NETNS program` when a namespace is given.
fn in_netns(netns: Option<&str>, program: &str) -> Command {
    match netns {
        Some(name) => {
            let mut command = Command::new("ip");
            command.args(["netns", "exec", name, program]);
            command
        }
        // spawns: hh, curl
        None => Command::new(program),
    }
}

/// `hh proxy` (in `netns` when given) with `rules` and `args`.
fn start_proxy(netns: Option<&str>, rules: &str, args: &[String]) -> Proxy {
    let dir = tempfile::tempdir().unwrap();
    let rules_file = dir.path().join("rules.toml");
    std::fs::write(&rules_file, rules).unwrap();
    let state = dir.path().join("state");
    let mut command = in_netns(netns, env!("CARGO_BIN_EXE_hh"));
    command.args(["proxy", "--listen", "127.0.0.1:0", "--ask-timeout", "1"]);
    command.arg("--rules").arg(&rules_file);
    command.arg("--state-dir").arg(&state);
    command.args(args);
    let (child, addr) = support::spawn_announcing(&mut command, "listening on ");
    Proxy {
        child,
        addr: addr.parse().unwrap(),
        state,
        _dir: dir,
    }
}

/// curl through `proxy` (in `netns` when given): the status and the body.
fn curl(netns: Option<&str>, proxy: &Proxy, url: &str, extra: &[&str]) -> (u16, String) {
    let output = in_netns(netns, "curl")
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .args(["-sS", "--max-time", "20", "--proxy"])
        .arg(format!("http://{}", proxy.addr))
        .arg("--cacert")
        .arg(proxy.state.join("ca.pem"))
        .args(["-w", "\n%{http_code}"])
        .args(extra)
        .arg(url)
        .output()
        .expect("curl runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, status) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
    let status = status.parse().unwrap_or_else(|_| {
        panic!(
            "curl {url}: no status in `{stdout}`; stderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (status, body.to_owned())
}

#[test]
fn a_name_resolving_to_an_address_a_deny_rule_names_is_refused_when_the_proxy_dials_it() {
    let upstream = start_upstream(&["alias.test"]);
    let (tls, http) = (upstream.tls_port, upstream.http_port);
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("upstream-ca.pem");
    std::fs::write(&ca, &upstream.ca_pem).unwrap();
    // The name is allowed, its address granted: only the deny rule on the literal stands between.
    let rules = format!(
        "version = 1\n[network]\nallowlist = [\"domain=alias.test port={tls},{http}\"]\n\
         denylist = [\"domain=127.0.0.1\"]\n"
    );
    let args = [
        "--dial-grant".to_owned(),
        "127.0.0.1/32".to_owned(),
        "--resolve".to_owned(),
        "alias.test=127.0.0.1".to_owned(),
        "--upstream-ca".to_owned(),
        ca.display().to_string(),
    ];
    let proxy = start_proxy(None, &rules, &args);
    for url in [
        format!("http://alias.test:{http}/plain"),
        format!("https://alias.test:{tls}/tunneled"),
    ] {
        let (status, body) = curl(None, &proxy, &url, &[]);
        assert_eq!(status, 403, "{url}: {body}");
        assert!(
            body.contains("refusing to dial 127.0.0.1: an address a deny rule names")
                && body.contains("denylist[0]: domain=127.0.0.1"),
            "{url}: {body}"
        );
    }
    assert_eq!(upstream.hits.load(Ordering::SeqCst), 0);
    // The audit line says why, in place of the allowing rule.
    let audit = std::fs::read_to_string(proxy.state.join("audit.jsonl")).unwrap();
    assert!(
        audit.contains("ssrf guard: refusing to dial 127.0.0.1: an address a deny rule names"),
        "{audit}"
    );
}

/// Accepts on `listener` forever, answering each connection with one HTTP response; counts them.
fn serve_counting(listener: TcpListener, hits: Arc<AtomicUsize>) {
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            hits.fetch_add(1, Ordering::SeqCst);
            let mut head = [0u8; 4096];
            let _ = stream.read(&mut head);
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nreached\n",
            );
        }
    });
}

#[test]
fn the_hosts_own_addresses_are_refused_even_inside_a_granted_block() {
    if !require_root("dial guard netns") {
        return;
    }
    let netns = NetNs::new();
    let ip = |args: &[&str]| {
        support::kernel::run(Command::new("ip").arg("-n").arg(&netns.name).args(args));
    };
    // A veth pair with both ends in the namespace: an interface like a host's uplink, whose
    // peer is the namespace itself.
    ip(&[
        "link", "add", "hhv0", "type", "veth", "peer", "name", "hhv1",
    ]);
    ip(&["addr", "add", "10.77.0.1/24", "dev", "hhv0"]);
    ip(&["addr", "add", "10.78.0.1/24", "dev", "hhv0"]);
    ip(&["addr", "add", "fd77::1/64", "dev", "hhv0", "nodad"]);
    ip(&["link", "set", "hhv0", "up"]);
    ip(&["link", "set", "hhv1", "up"]);
    let port = 18080;
    let hits = Arc::new(AtomicUsize::new(0));
    for addr in ["10.77.0.1", "10.78.0.1", "[fd77::1]"] {
        let bind = format!("{addr}:{port}");
        let listener =
            hh::sys::netns::bind_in(&netns.path(), move || TcpListener::bind(bind)).unwrap();
        serve_counting(listener, Arc::clone(&hits));
    }
    let rules = format!(
        "version = 1\n[network]\n\
         allowlist = [\"domain=own.test,own6.test,mapped.test,exact.test port={port}\"]\n"
    );
    let args: Vec<String> = [
        "--dial-grant=10.77.0.0/16",
        "--dial-grant=fd77::/16",
        "--dial-grant=10.78.0.1/32",
        "--resolve=own.test=10.77.0.1",
        "--resolve=own6.test=fd77::1",
        "--resolve=mapped.test=::ffff:10.77.0.1",
        "--resolve=exact.test=10.78.0.1",
    ]
    .map(String::from)
    .to_vec();
    let inside = Some(netns.name.as_str());
    let proxy = start_proxy(inside, &rules, &args);
    for (name, shown) in [
        ("own.test", "10.77.0.1"),
        ("own6.test", "fd77::1"),
        ("mapped.test", "::ffff:10.77.0.1"),
    ] {
        let url = format!("http://{name}:{port}/x");
        let (status, body) = curl(inside, &proxy, &url, &[]);
        assert_eq!(status, 403, "{url}: {body}");
        assert!(
            body.contains(&format!("refusing to dial {shown}"))
                && body.contains("an address of the proxy's own host"),
            "{url}: {body}"
        );
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0, "a host address was dialed");
    // A grant of exactly that address is what opens one.
    let (status, body) = curl(inside, &proxy, &format!("http://exact.test:{port}/x"), &[]);
    assert_eq!((status, body.as_str()), (200, "reached\n"));
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}
