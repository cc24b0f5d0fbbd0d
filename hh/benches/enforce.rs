//! `cargo xtask bench enforce`: what the eBPF redirect costs a connection, on the real kernel.
//!
//! A client process in a fresh network namespace does connect → read one byte → close (RST, so
//! no TIME_WAIT piles up) in a loop against a "proxy" listener bound inside that namespace, which
//! accepts, looks up the original destination (as the real proxy does), writes one byte and
//! closes. Three cases, interleaved round by round so machine noise hits all alike:
//! - direct: the client is outside the session cgroup and dials 127.0.0.1:PROXY itself;
//! - skip path: inside the cgroup, dialing 127.0.0.1:PROXY (connect4 runs, rewrites nothing);
//! - redirected: inside the cgroup, dialing 203.0.113.10:80 (connect4 rewrites, sock_ops keys
//!   the original destination, the proxy takes it).
//!
//! Needs root. Prints a Markdown table with medians and ratios, then the map entry counts left
//! after every connection closed (target: 0).

use std::{
    fs::File,
    io::{Read as _, Write as _},
    net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream},
    os::fd::AsRawFd as _,
    path::PathBuf,
    process::Command,
    sync::Arc,
    time::{Duration, Instant},
};

use hh::{
    enforce::ebpf::{Ports, Programs},
    sys,
};

#[path = "../../tests/support/kernel.rs"]
#[allow(
    dead_code,
    reason = "the benchmark needs the fixtures, not the test servers"
)]
mod kernel;
#[path = "enforce/splice.rs"]
mod splice;

use kernel::{Cgroup, NetNs};

const PORTS: Ports = Ports {
    proxy: 15001,
    dns: 15053,
};
const ROUNDS: usize = 7;
const PER_ROUND: usize = 1_500;
const WARMUP: usize = 200;
/// Set in the client process: `NETNS_PATH CGROUP_DIR|- HOST PORT COUNT`.
const CHILD_ENV: &str = "HH_BENCH_ENFORCE_CLIENT";

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

    let cases: [(&str, bool, &str, u16); 3] = [
        (
            "direct (outside the session)",
            false,
            "127.0.0.1",
            PORTS.proxy,
        ),
        (
            "in session, loopback (skip path)",
            true,
            "127.0.0.1",
            PORTS.proxy,
        ),
        ("in session, redirected", true, "203.0.113.10", 80),
    ];
    for (_, in_cgroup, host, port) in cases {
        run_client(&netns, in_cgroup, host, port, WARMUP);
    }
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); cases.len()];
    for _ in 0..ROUNDS {
        for (index, (_, in_cgroup, host, port)) in cases.iter().enumerate() {
            let elapsed = run_client(&netns, *in_cgroup, host, *port, PER_ROUND);
            samples[index].push(elapsed.as_nanos() as f64 / PER_ROUND as f64 / 1_000.0);
        }
    }
    let medians: Vec<f64> = samples.iter_mut().map(|s| median(s)).collect();
    println!(
        "\nconnect + 1-byte reply + close, {ROUNDS} rounds × {PER_ROUND} connections, medians\n"
    );
    println!("| case | µs per connection (median) | range | connections/s | rate vs direct |");
    println!("|---|---:|---:|---:|---:|");
    for (index, (name, ..)) in cases.iter().enumerate() {
        let (low, high) = range(&samples[index]);
        println!(
            "| {name} | {:.1} | {low:.1}–{high:.1} | {:.0} | {:.2}× |",
            medians[index],
            1e6 / medians[index],
            medians[0] / medians[index]
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

/// Runs `count` connections from a fresh client process; returns the time it measured.
fn run_client(fixture: &Fixture, in_cgroup: bool, host: &str, port: u16, count: usize) -> Duration {
    let cgroup = if in_cgroup {
        fixture.cgroup.path.display().to_string()
    } else {
        "-".into()
    };
    let spec = format!(
        "{} {cgroup} {host} {port} {count}",
        fixture.netns.path().display()
    );
    let output = Command::new(std::env::current_exe().expect("own path"))
        .env(CHILD_ENV, spec)
        .output()
        .expect("client runs");
    assert!(
        output.status.success(),
        "client failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let nanos: u64 = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .expect("client prints nanoseconds");
    Duration::from_nanos(nanos)
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
    let started = Instant::now();
    for _ in 0..count {
        let mut stream = TcpStream::connect(target).expect("connect");
        let mut byte = [0u8; 1];
        stream.read_exact(&mut byte).expect("reply");
        // RST on close: no TIME_WAIT, so thousands of rounds do not exhaust ports.
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: a valid `linger` of the size passed, on a socket we own.
        let rc = unsafe {
            libc::setsockopt(
                stream.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&linger as *const libc::linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0, "SO_LINGER");
    }
    print!("{}", started.elapsed().as_nanos());
}
