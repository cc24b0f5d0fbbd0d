//! What a session cannot do besides reaching hosts the rules refuse: real sessions from the `test`
//! stem under a real agent, attacked from inside.
//!
//! - Sessions run under hh's seccomp profile: sockets of any family but `AF_UNIX`, `AF_INET`,
//!   `AF_INET6` and `AF_NETLINK` are refused with `EPERM` (the kernel itself would create an
//!   `AF_VSOCK` socket here, and answer `EAFNOSUPPORT` for `AF_ALG`), and so is io_uring.
//! - A `bypass_proxy` host is spliced only for a ClientHello hh can read whole: one carrying an
//!   Encrypted Client Hello (whose real server name nobody but the upstream can read) is closed
//!   before a byte reaches the upstream.
//! - Plain HTTP is parsed like HTTPS: each request decided by method and path, its Host checked
//!   against the name the session connected to.

mod support;

use std::sync::atomic::Ordering;

use hh::proxy::client_hello::insert_extension;

use support::{
    require_root,
    session_world::{World, build_test_stem},
};

/// Tries each socket family and io_uring_setup; prints one `name=result` per line, the result
/// `ok` or the errno.
const PROBE: &str = r#"
import ctypes, socket
def attempt(name, family, kind):
    try:
        socket.socket(family, kind).close()
        print(f"{name}=ok")
    except OSError as error:
        print(f"{name}={error.errno}")
attempt("AF_UNIX", socket.AF_UNIX, socket.SOCK_STREAM)
attempt("AF_INET", socket.AF_INET, socket.SOCK_STREAM)
attempt("AF_INET6", socket.AF_INET6, socket.SOCK_DGRAM)
attempt("AF_NETLINK", socket.AF_NETLINK, socket.SOCK_RAW)
attempt("AF_VSOCK", 40, socket.SOCK_STREAM)
attempt("AF_ALG", 38, socket.SOCK_SEQPACKET)
attempt("AF_PACKET", 17, socket.SOCK_DGRAM)
attempt("AF_BLUETOOTH", 31, socket.SOCK_STREAM)
libc = ctypes.CDLL(None, use_errno=True)
params = ctypes.create_string_buffer(120)
fd = libc.syscall(425, 8, params)  # io_uring_setup(8, &params)
print("io_uring_setup=" + ("ok" if fd >= 0 else str(ctypes.get_errno())))
status = open("/proc/self/status").read()
print("Seccomp=" + status.split("Seccomp:")[1].split()[0])
"#;

#[test]
fn a_session_may_open_only_inet_unix_and_netlink_sockets_and_no_io_uring() {
    if !require_root("session seccomp") || !build_test_stem() {
        return;
    }
    let world = World::new("sc");
    let agent = world.agent();
    let id = world.start_session();
    let (code, out) = world.shell(&id, &["python3", "-c", PROBE]);
    assert_eq!(code, 0, "{out}");
    let results: Vec<(&str, &str)> = out
        .lines()
        .filter_map(|line| line.split_once('='))
        .collect();
    let eperm = libc::EPERM.to_string();
    let expected = [
        ("AF_UNIX", "ok"),
        ("AF_INET", "ok"),
        ("AF_INET6", "ok"),
        ("AF_NETLINK", "ok"),
        ("AF_VSOCK", eperm.as_str()),
        ("AF_ALG", eperm.as_str()),
        ("AF_PACKET", eperm.as_str()),
        ("AF_BLUETOOTH", eperm.as_str()),
        ("io_uring_setup", eperm.as_str()),
        ("Seccomp", "2"),
    ];
    assert_eq!(results, expected, "{out}");
    // The allowed families still work for what sessions do: a request through the proxy.
    let (code, out) = world.shell(&id, &["curl", "-sS", &world.url("allowed.test", "/after")]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("upstream saw GET /after"), "{out}");
    agent.terminate();
    world.assert_nothing_left();
}

/// A rustls ClientHello for `name`, with `extension` (type, body) added after the others.
fn client_hello_with(name: &str, extension: Option<(u16, &[u8])>) -> Vec<u8> {
    use std::sync::Arc;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let server = rustls::pki_types::ServerName::try_from(name.to_owned()).unwrap();
    let mut client = rustls::ClientConnection::new(Arc::new(config), server).unwrap();
    let mut hello = Vec::new();
    client.write_tls(&mut hello).unwrap();
    match extension {
        None => hello,
        Some((kind, body)) => insert_extension(&hello, kind, body).unwrap(),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Sends the hex-encoded bytes to `host:port` from inside the session and reports how the
/// connection went: the first byte the peer sent (`16` a handshake, `15` an alert, `none`).
const SEND_HELLO: &str = r#"
import socket, sys
hello = bytes.fromhex(sys.argv[1])
s = socket.create_connection((sys.argv[2], int(sys.argv[3])), timeout=10)
s.sendall(hello)
got = b""
try:
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
        if len(got) >= 5:
            break
except (ConnectionResetError, socket.timeout) as error:
    print(f"error {type(error).__name__}")
print(f"first byte {got[:1].hex() or 'none'}, {len(got)} bytes")
"#;

#[test]
fn a_bypass_host_is_closed_for_a_client_hello_with_encrypted_client_hello() {
    if !require_root("session ech") || !build_test_stem() {
        return;
    }
    let world = World::new("ech");
    let agent = world.agent();
    let id = world.start_session();
    let port = world.upstream.tls_port.to_string();
    let send = |hello: &[u8]| {
        let before = world.upstream.tls_connections.load(Ordering::SeqCst);
        let (code, out) = world.shell(
            &id,
            &[
                "python3",
                "-c",
                SEND_HELLO,
                &hex(hello),
                "bypass.test",
                &port,
            ],
        );
        assert_eq!(code, 0, "{out}");
        // The splice dials the upstream once the hello was read; give its accept a moment.
        std::thread::sleep(std::time::Duration::from_millis(300));
        let reached = world.upstream.tls_connections.load(Ordering::SeqCst) - before;
        (reached, out)
    };

    // The same ClientHello without ECH is spliced: the upstream gets it (and answers).
    let (reached, out) = send(&client_hello_with("bypass.test", None));
    assert_eq!(reached, 1, "{out}");
    assert!(out.contains("first byte 16"), "{out}");

    // encrypted_client_hello (0xfe0d): an outer ClientHello (type 0) naming the bypassed host as
    // its public name, what a GREASE ECH looks like too; an inner one (type 1) sent in the clear;
    // the draft ESNI extension (0xffce).
    let outer: &[u8] = &[
        0x00, 0x00, 0x01, 0x00, 0x01, 0x2a, 0x00, 0x01, 0xaa, 0x00, 0x02, 0xbb, 0xcc,
    ];
    let cases: [(&str, u16, &[u8]); 3] = [
        ("ECH outer", 0xfe0d, outer),
        ("ECH inner", 0xfe0d, &[0x01]),
        ("ESNI", 0xffce, &[0x00, 0x00]),
    ];
    for (what, kind, body) in cases {
        let (reached, out) = send(&client_hello_with("bypass.test", Some((kind, body))));
        assert_eq!(reached, 0, "{what} reached the upstream: {out}");
        // A TLS alert (21) is all the client gets before the close.
        assert!(out.contains("first byte 15, 7 bytes"), "{what}: {out}");
    }
    agent.terminate();
    world.assert_nothing_left();
}

#[test]
fn plain_http_from_a_session_is_parsed_and_decided_per_request() {
    if !require_root("plain HTTP in a session") || !build_test_stem() {
        return;
    }
    let world = World::new("ph");
    let agent = world.agent();
    let id = world.start_session();
    let port = world.upstream.http_port;
    let curl = |path: &str, extra: &[&str]| {
        let url = format!("http://allowed.test:{port}{path}");
        let mut command = vec!["curl", "-sS", "-o", "-", "-w", "\n%{http_code}"];
        command.extend_from_slice(extra);
        command.push(&url);
        world.shell(&id, &command).1
    };
    // The rule admits /plain/* on this port: exactly that path, over plain HTTP too.
    let allowed = curl("/plain/x", &[]);
    assert!(
        allowed.contains(&format!(
            "upstream saw GET /plain/x host=allowed.test:{port}"
        )),
        "{allowed}"
    );
    assert!(allowed.trim_end().ends_with("200"), "{allowed}");
    // Another Host than the name the session connected to never reaches the upstream.
    let other = curl("/plain/x", &["-H", "Host: evil.example"]);
    assert!(other.trim_end().ends_with("421"), "{other}");
    // A path no rule admits is asked (and denied when no one answers) with a readable 403.
    let asked = curl("/other", &[]);
    assert!(asked.trim_end().ends_with("403"), "{asked}");
    assert!(asked.contains("hh blocked"), "{asked}");
    assert_eq!(world.upstream.hits.load(Ordering::SeqCst), 1);
    agent.terminate();
    world.assert_nothing_left();
}
