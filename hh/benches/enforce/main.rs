//! `cargo xtask bench enforce`: what the eBPF redirect costs a connection, on the real kernel.
//!
//! A client process in a fresh network namespace does connect → read one byte → close (RST, so
//! no TIME_WAIT piles up) in a loop against a "proxy" listener bound inside that namespace, which
//! accepts, looks up the original destination (as the real proxy does), writes one byte and
//! closes. Three cases, interleaved round by round so machine noise hits all alike:
//! - direct: the client is outside the session cgroup and dials 127.0.0.1:PROXY itself;
//! - skip path: inside the cgroup, dialing 127.0.0.1:PROXY (connect4 runs, rewrites nothing);
//! - redirected: inside the cgroup, dialing 203.0.113.10:80 (connect4 rewrites, sock_ops keys
//!   the original destination, the proxy takes it);
//! - the seed design (tun2proxy + iptables inside a container, [`tun2proxy`]): the client joins
//!   the container's namespace and dials 203.0.113.10:80, which is routed into tun2proxy's TUN
//!   device and from there through a stand-in HTTP proxy. Left out, saying why, when Docker, the
//!   test image or the tun2proxy binary is missing.
//!
//! Needs root. Prints a Markdown table with medians and ratios, then the map entry counts left
//! after every connection closed (target: 0).

mod sock_diag;
mod splice;
mod tun2proxy;

use std::{
    fs::File,
    io::{ErrorKind, Read as _, Write as _},
    net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream},
    os::fd::AsRawFd as _,
    path::PathBuf,
    process::{Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use hh::{
    enforce::ebpf::{Ports, Programs},
    sys,
};

#[path = "../../../tests/support/mod.rs"]
mod support;

use support::kernel::{Cgroup, NetNs, close_with_rst};

const PORTS: Ports = Ports {
    proxy: 15001,
    dns: 15053,
};
const ROUNDS: usize = 7;
const PER_ROUND: usize = 1_500;
const WARMUP: usize = 200;
/// Set in the client process: `NETNS_PATH CGROUP_DIR|- HOST PORT COUNT`.
const CHILD_ENV: &str = "HH_BENCH_ENFORCE_CLIENT";
/// The stand-in proxy, bound in the session's namespace.
const PROXY: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::LOCALHOST, PORTS.proxy);
/// No connection takes this long unless a case is broken (a lost reply); then the client says so
/// instead of hanging the bench.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);
const REDIRECTED: &str = "in session, redirected";
const TUN2PROXY: &str = "seed design: tun2proxy + iptables (container)";

/// One way to connect: from which namespace (and cgroup, if any), to which address in a round.
struct Case {
    name: &'static str,
    netns: PathBuf,
    cgroup: Option<PathBuf>,
    target: fn(usize) -> SocketAddrV4,
}

/// What a redirected client dials in `round` (0 is the warm-up): TEST-NET-3, never routed
/// anywhere real. A new address each round keeps every 4-tuple new to tun2proxy, whose stack
/// drops the SYN of a connection that reuses the ports of an earlier RST-closed one (see
/// [`tun2proxy`]); the hh case dials the same addresses.
fn destination(round: usize) -> SocketAddrV4 {
    let host = u8::try_from(10 + round).expect("a few rounds");
    SocketAddrV4::new(Ipv4Addr::new(203, 0, 113, host), 80)
}

fn main() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        return client(&spec);
    }
    if let Ok(spec) = std::env::var(splice::CHILD_ENV) {
        return splice::client(&spec);
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("bench enforce needs root (eBPF, cgroups, namespaces); skipped");
        return;
    }
    if let Ok(rounds) = std::env::var(splice::SOAK_ENV) {
        return splice::soak(PORTS, rounds.parse().expect("a count of rounds"));
    }
    let netns = Fixture {
        netns: NetNs::new(),
        cgroup: Cgroup::new(),
    };
    let mut programs = Programs::load(PORTS).expect("load programs");
    let original = Arc::new(programs.original_dst().expect("original-destination map"));
    let _links = programs.attach(&netns.cgroup.path).expect("attach");
    let listener = sys::netns::bind_in(&netns.netns.path(), || {
        TcpListener::bind((Ipv4Addr::LOCALHOST, PORTS.proxy))
    })
    .expect("bind the proxy listener in the namespace");
    let lookups = original.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            let Ok(peer) = stream.peer_addr() else {
                continue;
            };
            let _ = lookups.take(&stream, peer);
            let _ = stream.write_all(b"x");
        }
    });

    let in_session = |name, target| Case {
        name,
        netns: netns.netns.path(),
        cgroup: Some(netns.cgroup.path.clone()),
        target,
    };
    let mut cases = vec![
        Case {
            name: "direct (outside the session)",
            netns: netns.netns.path(),
            cgroup: None,
            target: |_| PROXY,
        },
        in_session("in session, loopback (skip path)", |_| PROXY),
        in_session(REDIRECTED, destination),
    ];
    // The container goes on drop, so also when a client's assertion panics below.
    let seed = tun2proxy::Baseline::start()
        .inspect_err(|why| eprintln!("bench enforce: no tun2proxy baseline: {why}"))
        .ok();
    if let Some(seed) = &seed {
        cases.push(Case {
            name: TUN2PROXY,
            netns: seed.netns(),
            cgroup: None,
            target: destination,
        });
    }
    for case in &cases {
        run_client(case, 0, WARMUP);
    }
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    let mut lost = vec![0; cases.len()];
    for round in 1..=ROUNDS {
        for (index, case) in cases.iter().enumerate() {
            let run = run_client(case, round, PER_ROUND);
            samples[index].push(run.elapsed.as_nanos() as f64 / PER_ROUND as f64 / 1_000.0);
            lost[index] += run.lost;
        }
    }
    let medians: Vec<f64> = samples.iter_mut().map(|s| median(s)).collect();
    println!(
        "\nconnect + 1-byte reply + close, {ROUNDS} rounds × {PER_ROUND} connections, medians\n"
    );
    println!("| case | µs per connection (median) | range | connections/s | rate vs direct |");
    println!("|---|---:|---:|---:|---:|");
    for (index, case) in cases.iter().enumerate() {
        let (low, high) = range(&samples[index]);
        println!(
            "| {} | {:.1} | {low:.1}–{high:.1} | {:.0} | {:.2}× |",
            case.name,
            medians[index],
            1e6 / medians[index],
            medians[0] / medians[index]
        );
    }
    let median_of = |name| {
        let index = cases.iter().position(|case| case.name == name)?;
        Some(medians[index])
    };
    if let (Some(hh), Some(seed)) = (median_of(REDIRECTED), median_of(TUN2PROXY)) {
        println!(
            "\nhh redirected vs tun2proxy: {:.1}× (target ≥ 3×)",
            seed / hh
        );
    }
    for (case, lost) in cases.iter().zip(lost).filter(|(_, lost)| *lost > 0) {
        println!(
            "{}: {lost} of {} connections ended without the byte (target 0)",
            case.name,
            ROUNDS * PER_ROUND
        );
    }
    if let Some(seed) = &seed {
        println!(
            "tun2proxy's container retransmitted {} SYNs (each stalls a connection 1 s; target 0)",
            seed.syn_retransmits()
        );
    }
    // Every client closed; give the last FIN/RST callbacks a moment.
    std::thread::sleep(Duration::from_millis(200));
    let stats = programs.stats().expect("stats");
    println!(
        "\nafter {} redirected connections: {} original-destination entries, {} connecting \
         entries left (target 0); sock_ops saw {} established",
        stats.redirected,
        original.len(),
        programs.connecting_len().expect("connecting map"),
        stats.established
    );
    splice::run(PORTS);
}

fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn range(samples: &[f64]) -> (f64, f64) {
    let low = samples.iter().copied().fold(f64::INFINITY, f64::min);
    let high = samples.iter().copied().fold(0.0, f64::max);
    (low, high)
}

/// The session a benchmark runs in: a fresh namespace (only `lo`) and a cgroup, the same
/// fixtures the enforcement tests use, removed on drop.
struct Fixture {
    netns: NetNs,
    cgroup: Cgroup,
}

/// What one client process measured.
struct Run {
    elapsed: Duration,
    /// Connections that ended (EOF or reset) without the byte.
    lost: usize,
}

/// Runs `count` connections of `case` in `round` from a fresh client process.
fn run_client(case: &Case, round: usize, count: usize) -> Run {
    let cgroup = case
        .cgroup
        .as_deref()
        .map_or_else(|| "-".into(), |path| path.display().to_string());
    let target = (case.target)(round);
    let spec = format!(
        "{} {cgroup} {} {} {count}",
        case.netns.display(),
        target.ip(),
        target.port()
    );
    let stdout =
        run_client_process(CHILD_ENV, spec, case.name).unwrap_or_else(|why| panic!("{why}"));
    let (nanos, lost) = stdout
        .trim()
        .split_once(' ')
        .expect("client prints `NANOSECONDS LOST`");
    Run {
        elapsed: Duration::from_nanos(nanos.parse().expect("nanoseconds")),
        lost: lost.parse().expect("lost count"),
    }
}

/// The client process: join the namespace (and the cgroup), then time the loop.
fn client(spec: &str) {
    let fields: Vec<&str> = spec.split(' ').collect();
    let [netns, cgroup, host, port, count] = fields[..] else {
        panic!("bad client spec `{spec}`");
    };
    let namespace = File::open(netns).expect("open netns");
    // SAFETY: setns on a namespace file we hold; this process has one thread here.
    assert_eq!(
        unsafe { libc::setns(namespace.as_raw_fd(), libc::CLONE_NEWNET) },
        0
    );
    if cgroup != "-" {
        std::fs::write(PathBuf::from(cgroup).join("cgroup.procs"), "0").expect("join cgroup");
    }
    let target = SocketAddrV4::new(host.parse().expect("host"), port.parse().expect("port"));
    let count: usize = count.parse().expect("count");
    let mut lost = 0;
    let started = Instant::now();
    for index in 0..count {
        let mut stream = TcpStream::connect_timeout(&target.into(), REPLY_TIMEOUT)
            .unwrap_or_else(|error| panic!("connection {index} to {target}: connect: {error}"));
        stream
            .set_read_timeout(Some(REPLY_TIMEOUT))
            .expect("SO_RCVTIMEO");
        let mut byte = [0u8; 1];
        // EOF or a reset instead of the byte: counted, not fatal (tun2proxy loses one now and
        // then, see `tun2proxy.rs`); a timeout or another error is a broken case.
        match stream.read(&mut byte) {
            Ok(0) => lost += 1,
            Ok(_) => {}
            Err(error) if error.kind() == ErrorKind::ConnectionReset => lost += 1,
            Err(error) => panic!(
                "connection {index} from {:?}: no reply: {error}",
                stream.local_addr()
            ),
        }
        close_with_rst(stream);
    }
    print!("{} {lost}", started.elapsed().as_nanos());
}

/// The longest any client process runs (the longest takes a few seconds): one that is still
/// running then is stuck, and is killed and reported instead of hanging the bench.
const CLIENT_DEADLINE: Duration = Duration::from_secs(120);

/// Runs this bench's own executable as a client process (`env` set to `spec` tells it which);
/// returns what it printed, or why it failed (its stderr, or the deadline it passed).
fn run_client_process(env: &str, spec: String, what: &str) -> Result<String, String> {
    // spawns: hh
    let mut child = Command::new(std::env::current_exe().expect("own path"))
        .env(env, spec)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| format!("client ({what}) does not start: {error}"))?;
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = drain(child.stdout.take().map(|pipe| Box::new(pipe) as _));
    let stderr = drain(child.stderr.take().map(|pipe| Box::new(pipe) as _));
    let deadline = Instant::now() + CLIENT_DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|error| error.to_string())? {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let (stdout, stderr) = (
        stdout.join().unwrap_or_default(),
        stderr.join().unwrap_or_default(),
    );
    match status {
        Some(status) if status.success() => Ok(stdout),
        Some(status) => Err(format!("client failed ({what}, {status}): {stderr}")),
        None => Err(format!(
            "client ({what}) still running after {CLIENT_DEADLINE:?}, killed: {stderr}"
        )),
    }
}
