//! The seed design's enforcement as a baseline: tun2proxy and iptables inside the container.
//!
//! Harness Hat (the seed) set up every strict-network container in its entrypoint with
//! - an `HH_EGRESS` chain jumped to from `OUTPUT`: accept `lo`, `tun0` and established flows
//!   (conntrack), reject the rest; the same for IPv6;
//! - `tun2proxy-bin --setup --proxy http://USER:PASS@PROXY --dns virtual --bypass PROXY`, logging
//!   to a file: tun2proxy owns `tun0` and the routes that send all other traffic into it, and
//!   relays every TCP connection its user-space stack terminates through an HTTP CONNECT.
//!
//! Here the container is the local test image with `--network none` (only `lo`), `NET_ADMIN` and
//! `/dev/net/tun`. The tun2proxy binary `cargo xtask bench enforce` installs is bind-mounted in
//! (host and image are the same Debian), and the rules are set with the host's iptables in the
//! container's namespace (the image has none). The proxy is a stand-in bound on the container's
//! 127.0.0.1 by this process: it answers the CONNECT, writes one byte and closes, the work the hh
//! cases' stand-in does. tun2proxy reaches it over `lo`, not its own TUN: the kernel looks up
//! the `local` routing table (127.0.0.0/8) before the routes tun2proxy adds.
//!
//! One wrinkle: tun2proxy 0.8.7 drops bytes that arrive in the same read as the proxy's `200`
//! (its handshake keeps them in a buffer that nothing forwards), so a byte written right after
//! the reply is often lost and the client sees EOF. A real upstream's first byte comes at least
//! one upstream round trip later. The stand-in therefore writes its byte only once tun2proxy has
//! read the whole reply, which it learns from the kernel ([`SockDiag`]): one query or a few,
//! each a netlink round trip of a few µs, counted in this case's time. That leaves a window of
//! about one in 10,000: a byte that lands while tun2proxy's `read` is still inside the kernel
//! is copied by that same read and lost. The client counts such connections as lost.

use std::{
    io::{Read as _, Write as _},
    net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use hh::sys;

use super::{
    destination,
    sock_diag::SockDiag,
    support::{docker, kernel, leftovers, session_world},
};

/// Where the stand-in proxy listens, inside the container's namespace.
const STAND_IN: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 3128);
/// Where the bind-mounted binary sits in the container.
const BINARY_IN_CONTAINER: &str = "/usr/local/bin/tun2proxy-bin";
const TUN: &str = "tun0";
/// More than the bench's connections (see [`Baseline::start_tun2proxy`]).
const MAX_SESSIONS: usize = 100_000;
/// The stand-in's answer to every CONNECT.
const ESTABLISHED: &[u8] = b"HTTP/1.1 200 Connection established\r\n\r\n";
/// The seed's egress filter, minus its accepts for Docker's DNS, the proxy and the exec bridge
/// (none exists in a `--network none` container; the proxy is on `lo`). Run with `iptables` and
/// `ip6tables` alike.
const EGRESS_RULES: &[&[&str]] = &[
    &["-N", "HH_EGRESS"],
    &["-I", "OUTPUT", "1", "-j", "HH_EGRESS"],
    &["-A", "HH_EGRESS", "-o", "lo", "-j", "ACCEPT"],
    &["-A", "HH_EGRESS", "-o", TUN, "-j", "ACCEPT"],
    &[
        "-A",
        "HH_EGRESS",
        "-m",
        "conntrack",
        "--ctstate",
        "ESTABLISHED,RELATED",
        "-j",
        "ACCEPT",
    ],
    &["-A", "HH_EGRESS", "-j", "REJECT"],
];

/// A running container with tun2proxy and the filter set up; removed on drop.
pub struct Baseline {
    container: String,
    /// The container's first process, whose `/proc` entry names its network namespace.
    pid: String,
}

impl Baseline {
    /// Starts the container and everything in it. `Err` says what is missing to run this
    /// baseline at all (binary, Docker, image); a set-up that fails once they are there panics.
    pub fn start() -> Result<Baseline, String> {
        let binary = binary()?;
        if !session_world::build_test_stem() {
            return Err("no Docker engine or no test image".into());
        }
        let label = leftovers::container_label();
        let container = docker(&[
            "run",
            "-d",
            "--label",
            &label,
            "--network",
            "none",
            "--cap-add",
            "NET_ADMIN",
            "--device",
            "/dev/net/tun",
            "-v",
            &format!("{}:{BINARY_IN_CONTAINER}:ro", binary.display()),
            session_world::TEST_IMAGE,
            "sleep",
            "infinity",
        ]);
        let pid = docker(&["inspect", "-f", "{{.State.Pid}}", &container]);
        let baseline = Baseline { container, pid };
        serve_stand_in(&baseline.netns());
        filter_egress(&baseline.netns());
        baseline.start_tun2proxy();
        Ok(baseline)
    }

    /// The container's network namespace, for the client to join.
    pub fn netns(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/net", self.pid))
    }

    /// SYNs the container's kernel sent again (`TCPSynRetrans`): a client whose SYN tun2proxy
    /// lost waits 1 s for the retransmit.
    pub fn syn_retransmits(&self) -> u64 {
        // Its namespace's counters, as /proc/net/netstat shows them inside.
        let netstat = format!("/proc/{}/net/netstat", self.pid);
        let text = std::fs::read_to_string(netstat).expect("the container's /proc/net/netstat");
        tcp_ext(&text, "TCPSynRetrans").expect("TcpExt: TCPSynRetrans")
    }

    /// Starts tun2proxy as the seed did (its log to a file) and waits until it has routed the
    /// redirected cases' address into its TUN device.
    ///
    /// Two flags the seed did not pass, for a tun2proxy 0.8.7 (ipstack 1.0.1) bug: on the
    /// client's RST it marks the connection closed but wakes none of its tasks, so the session
    /// and its socket to the proxy linger until `--tcp-timeout` (600 s). With the seed's
    /// `--max-sessions` 200, the 201st RST-closed connection within 10 minutes is dropped (the
    /// bench makes 10,700), and thousands of lingering sessions make new connections lose SYNs
    /// (1 s to the retransmit each; 10 to 20 per run here, none with a 1 s timeout). A 1 s
    /// `--tcp-timeout` reaps them; no connection here idles that long unless the machine is
    /// starved, and then tun2proxy resets it and the client counts it as lost.
    fn start_tun2proxy(&self) {
        let command = format!(
            "exec {BINARY_IN_CONTAINER} --setup --tun {TUN} --proxy http://hh:bench@{STAND_IN} \
             --dns virtual --bypass {} --max-sessions {MAX_SESSIONS} --tcp-timeout 1 >/tmp/tun2proxy.log 2>&1",
            STAND_IN.ip()
        );
        docker(&["exec", "-d", &self.container, "sh", "-c", &command]);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !routes_into_tun(&self.netns()) {
            assert!(
                Instant::now() < deadline,
                "tun2proxy did not route {} into {TUN} within 20 s; its log:\n{}",
                destination(0),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self) -> String {
        Command::new("docker")
            .args(["exec", &self.container, "cat", "/tmp/tun2proxy.log"])
            .output()
            .map(|output| String::from_utf8_lossy(&output.stdout).into_owned())
            .unwrap_or_default()
    }
}

impl Drop for Baseline {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("tun2proxy's log (last lines):\n{}", tail(&self.log(), 30));
        }
        let _ = Command::new("docker")
            .args(["rm", "-f", &self.container])
            .output();
    }
}

/// One `TcpExt` counter of a `/proc/net/netstat` text (a line of names, then one of values).
fn tcp_ext(netstat: &str, name: &str) -> Option<u64> {
    let mut lines = netstat.lines().filter(|line| line.starts_with("TcpExt:"));
    let (names, values) = (lines.next()?, lines.next()?);
    let at = names.split_whitespace().position(|field| field == name)?;
    values.split_whitespace().nth(at)?.parse().ok()
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The binary `cargo xtask bench enforce` installs (or `HH_BENCH_TUN2PROXY`).
fn binary() -> Result<PathBuf, String> {
    let binary = std::env::var_os("HH_BENCH_TUN2PROXY").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-tools/bin/tun2proxy-bin"),
        PathBuf::from,
    );
    if binary.exists() {
        Ok(binary)
    } else {
        Err(format!(
            "{} missing (`cargo xtask bench enforce` installs it)",
            binary.display()
        ))
    }
}

/// The seed's iptables and ip6tables rules, with the host's binaries in the container's
/// namespace.
fn filter_egress(netns: &Path) {
    for program in ["iptables", "ip6tables"] {
        for rule in EGRESS_RULES {
            kernel::run(in_netns(netns, program).arg("-w").args(*rule));
        }
    }
}

fn in_netns(netns: &Path, program: &str) -> Command {
    let mut command = Command::new("nsenter");
    command
        .arg(format!("--net={}", netns.display()))
        .arg("--")
        .arg(program);
    command
}

fn routes_into_tun(netns: &Path) -> bool {
    in_netns(netns, "ip")
        .args(["-4", "route", "get", &destination(0).ip().to_string()])
        .output()
        .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).contains(&format!("dev {TUN}")))
}

/// The stand-in proxy: bound in the container's namespace, served by a thread of this process.
fn serve_stand_in(netns: &Path) {
    let listener = sys::netns::bind_in(netns, || TcpListener::bind(STAND_IN))
        .expect("bind the stand-in proxy in the container's namespace");
    // Opened there too: sock_diag answers about its own namespace.
    let diag = sys::netns::bind_in(netns, SockDiag::open).expect("sock_diag in the container");
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            if let Err(error) = answer_connect(stream, &diag) {
                eprintln!("stand-in proxy: {error}");
            }
        }
    });
}

/// Reads a CONNECT request's head, accepts it and, once tun2proxy has read that, writes one
/// byte as the "destination" and closes.
fn answer_connect(mut stream: TcpStream, diag: &SockDiag) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut chunk = [0u8; 512];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
        let read = stream.read(&mut chunk)?;
        if read == 0 {
            return Ok(());
        }
        head.extend_from_slice(&chunk[..read]);
    }
    stream.write_all(ESTABLISHED)?;
    let (SocketAddr::V4(ours), SocketAddr::V4(theirs)) =
        (stream.local_addr()?, stream.peer_addr()?)
    else {
        unreachable!("the stand-in listens on IPv4");
    };
    loop {
        let tun2proxy = diag.tcp(theirs, ours)?;
        if tun2proxy.bytes >= ESTABLISHED.len() as u64 && tun2proxy.unread == 0 {
            break;
        }
        std::thread::yield_now();
    }
    stream.write_all(b"x")
}
