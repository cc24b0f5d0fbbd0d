//! The `sk_msg` splice (`hh_common::splice`) against plain TCP, for issue #7's decision: two
//! sessions side by side, one loaded with splicing off and one with it on, each with the
//! stand-in proxy of the splice test (`tests/support/kernel.rs` `serve_frames`) listening in
//! the session (namespace and cgroup, as the splice needs). A client process in the session
//! dials 203.0.113.10:80 (redirected) and times:
//! - keep-alive: one connection, `EXCHANGES` sequential request/response rounds of 64 B each
//!   way (and 16 KiB each way, for regressions with larger messages); p50 and p99 per round;
//! - connect + one 1-byte round + close (RST): the splice adds sockhash inserts and a psock
//!   per socket, so a slower connection rate counts against it;
//! - flow control: how much a client can queue against a proxy that stopped reading (TCP
//!   bounds it by the socket buffers; a spliced message is charged to the receiving socket
//!   without any per-socket bound, `bpf_tcp_ingress` in net/ipv4/tcp_bpf.c).
//!
//! Rounds alternate off/on so machine noise hits both alike; the table shows the medians over
//! rounds and on/off ratios, then what the splice maps still hold (target: nothing).

use std::{
    collections::BTreeMap,
    fs::File,
    io::{ErrorKind, Write as _},
    net::{Ipv4Addr, SocketAddrV4, TcpStream},
    os::fd::AsRawFd as _,
    path::PathBuf,
    sync::mpsc,
    time::{Duration, Instant},
};

use hh::{
    enforce::ebpf::{LoadOptions, Ports, Programs, SessionLinks, Splice},
    sys::netns::listen_in_cgroup,
};

use crate::{
    run_client_process,
    support::kernel::{
        Cgroup, NetNs, STALL, STALL_FOR, close_with_rst, request_frame, serve_frames,
    },
};

/// Set in the client process: `MODE NETNS_PATH CGROUP_DIR COUNT REQUEST REPLY`.
pub const CHILD_ENV: &str = "HH_BENCH_SPLICE_CLIENT";
const ROUNDS: usize = 11;
const EXCHANGES: usize = 3_000;
const LARGE_EXCHANGES: usize = 1_000;
const CONNECTIONS: usize = 1_000;
const WARMUP: usize = 200;
/// The most a flooding client sends (the splice's queue would otherwise grow to the host's
/// TCP memory limit).
const FLOOD_LIMIT: usize = 64 << 20;
/// Where the client dials: any non-loopback address is redirected to the session proxy.
const TARGET: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(203, 0, 113, 10), 80);
/// No connect or round takes this long unless a message was lost or is stuck; the client then
/// fails saying where instead of waiting for ever.
const ROUND_TIMEOUT: Duration = Duration::from_secs(5);

/// One session with the programs loaded one way.
struct Side {
    splice: Splice,
    programs: Programs,
    netns: NetNs,
    cgroup: Cgroup,
    _links: SessionLinks,
    /// What the stand-in proxy said of each connection it served, for a failure's report.
    outcomes: mpsc::Receiver<Result<u64, String>>,
}

impl Side {
    fn new(ports: Ports, splice: Splice) -> Self {
        let options = LoadOptions {
            splice,
            ..LoadOptions::default()
        };
        let mut programs = Programs::load_with(ports, &options).expect("load programs");
        let netns = NetNs::new();
        let cgroup = Cgroup::new();
        let links = programs.attach(&cgroup.path).expect("attach");
        let listener = listen_in_cgroup(
            &netns.path(),
            &cgroup.path,
            SocketAddrV4::new(Ipv4Addr::LOCALHOST, ports.proxy),
        )
        .expect("open the proxy listener in the session");
        let outcomes = serve_frames(listener, 1, Duration::ZERO);
        Self {
            splice,
            programs,
            netns,
            cgroup,
            _links: links,
            outcomes,
        }
    }

    /// Runs a client process in this session; returns the numbers it printed. A client that
    /// failed or passed its deadline fails the bench with what it said and what the splice
    /// maps hold.
    fn client(&self, mode: &str, count: usize, request: usize, reply: usize) -> Vec<f64> {
        match self.try_client(mode, count, request, reply) {
            Ok(numbers) => numbers,
            Err(why) => panic!("{why}"),
        }
    }

    fn try_client(
        &self,
        mode: &str,
        count: usize,
        request: usize,
        reply: usize,
    ) -> Result<Vec<f64>, String> {
        let spec = format!(
            "{mode} {} {} {count} {request} {reply}",
            self.netns.path().display(),
            self.cgroup.path.display()
        );
        let what = format!("splice {}, {mode}", splice_name(self.splice));
        // The client checks every byte and fails on a wrong one: the proxy's outcomes only
        // help to say where a failed one stopped.
        while self.outcomes.try_recv().is_ok() {}
        let stdout = run_client_process(CHILD_ENV, spec, &what).map_err(|why| {
            // The proxy's side of the failed connection ends when the client's does.
            std::thread::sleep(Duration::from_secs(2));
            let mut seen = BTreeMap::<String, usize>::new();
            for outcome in self.outcomes.try_iter() {
                let said = outcome.map_or_else(|error| error, |rounds| format!("{rounds} rounds"));
                *seen.entry(said).or_default() += 1;
            }
            format!(
                "{why}\nthe proxy's ends of this client's connections: {seen:?}\nsplice {}: \
                 {:?}; left in the splice maps: {:?}",
                splice_name(self.splice),
                self.programs.stats(),
                self.programs.splice_entries()
            )
        })?;
        Ok(stdout
            .split_whitespace()
            .map(|number| number.parse().expect("the client prints numbers"))
            .collect())
    }
}

/// One measured quantity: per round, off and on.
struct Series {
    name: &'static str,
    off: Vec<f64>,
    on: Vec<f64>,
}

pub fn run(ports: Ports) {
    let sides = [Side::new(ports, Splice::Off), Side::new(ports, Splice::On)];
    let mut series: Vec<Series> = [
        "keep-alive 64 B, p50 µs per round",
        "keep-alive 64 B, p99 µs per round",
        "keep-alive 16 KiB, p50 µs per round",
        "keep-alive 16 KiB, p99 µs per round",
        "connect + 1-byte round + close, µs per connection",
        "MiB a client queues against a stalled proxy",
    ]
    .into_iter()
    .map(|name| Series {
        name,
        off: Vec::new(),
        on: Vec::new(),
    })
    .collect();
    for side in &sides {
        side.client("keepalive", WARMUP, 64, 64);
        side.client("connect", WARMUP, 1, 1);
    }
    for _ in 0..ROUNDS {
        for side in &sides {
            let [small, large, connect, flood] = round_cases()
                .map(|(mode, count, request, reply)| side.client(mode, count, request, reply));
            let values = [small[0], small[1], large[0], large[1], connect[0], flood[0]];
            for (series, value) in series.iter_mut().zip(values) {
                match side.splice {
                    Splice::Off => series.off.push(value),
                    Splice::On => series.on.push(value),
                }
            }
        }
    }
    println!(
        "\nsk_msg splice, {ROUNDS} interleaved rounds ({EXCHANGES} × 64 B, {LARGE_EXCHANGES} × \
         16 KiB, {CONNECTIONS} connections per round), medians over rounds\n"
    );
    println!("| measure | splice off | splice on | on / off |");
    println!("|---|---:|---:|---:|");
    for series in &mut series {
        let (off, on) = (median(&mut series.off), median(&mut series.on));
        println!("| {} | {off:.1} | {on:.1} | {:.2} |", series.name, on / off);
    }
    // The stalled proxies close last; then every socket of the session is gone.
    std::thread::sleep(STALL_FOR + Duration::from_millis(200));
    let on = &sides[1].programs;
    let stats = on.stats().expect("stats");
    println!(
        "\nsplice on: {} connections spliced, {} declined; left in the splice maps: {:?} \
         (target: none)",
        stats.spliced,
        stats.splice_declined,
        on.splice_entries().expect("splice maps")
    );
}

/// Set to a count, the bench runs only the splice-on side's rounds (every case of a round, in
/// the bench's order), that many times, and stops at the first client that fails (issue 22's
/// reproduction).
pub const SOAK_ENV: &str = "HH_BENCH_SPLICE_SOAK";

/// `rounds` rounds of every case with splicing on, reporting the first failure.
pub fn soak(ports: Ports, rounds: usize) {
    let side = Side::new(ports, Splice::On);
    let started = Instant::now();
    for round in 0..rounds {
        for (mode, count, request, reply) in round_cases() {
            if let Err(why) = side.try_client(mode, count, request, reply) {
                eprintln!("splice soak: round {round} of {rounds}, {mode}: {why}");
                std::process::exit(1);
            }
        }
    }
    println!(
        "splice soak: {rounds} rounds, every client answered, in {:?}; {:?}",
        started.elapsed(),
        side.programs.stats()
    );
}

/// One round's clients: mode, count, request and reply bytes.
fn round_cases() -> [(&'static str, usize, usize, usize); 4] {
    [
        ("keepalive", EXCHANGES, 64, 64),
        ("keepalive", LARGE_EXCHANGES, 16_384, 16_384),
        ("connect", CONNECTIONS, 1, 1),
        ("flood", FLOOD_LIMIT, 0, 0),
    ]
}

fn splice_name(splice: Splice) -> &'static str {
    match splice {
        Splice::Off => "off",
        Splice::On => "on",
    }
}

fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// The client process: joins the session, runs the mode, prints its numbers.
pub fn client(spec: &str) {
    let fields: Vec<&str> = spec.split(' ').collect();
    let [mode, netns, cgroup, count, request, reply] = fields[..] else {
        panic!("bad client spec `{spec}`");
    };
    join(netns, cgroup);
    let [count, request, reply] =
        [count, request, reply].map(|field| field.parse::<usize>().expect("a number"));
    match mode {
        "keepalive" => {
            let mut stream = dial(mode, 0);
            stream.set_nodelay(true).expect("TCP_NODELAY");
            let mut micros: Vec<f64> = (0..count as u64)
                .map(|round| {
                    let started = Instant::now();
                    if let Err(why) = request_frame(&mut stream, round, request, reply, 1) {
                        fail(mode, 0, &stream, &why);
                    }
                    started.elapsed().as_nanos() as f64 / 1_000.0
                })
                .collect();
            micros.sort_by(f64::total_cmp);
            let percentile = |p: usize| micros[(micros.len() * p / 100).min(micros.len() - 1)];
            print!("{} {}", percentile(50), percentile(99));
        }
        "connect" => {
            let started = Instant::now();
            for index in 0..count {
                let mut stream = dial(mode, index);
                let round = Instant::now();
                if let Err(why) = request_frame(&mut stream, 0, request, reply, 1) {
                    fail(
                        mode,
                        index,
                        &stream,
                        &format!("{why} (after {:?})", round.elapsed()),
                    );
                }
                close_with_rst(stream);
            }
            print!(
                "{}",
                started.elapsed().as_nanos() as f64 / count as f64 / 1_000.0
            );
        }
        "flood" => {
            let mut stream = dial(mode, 0);
            let mut header = [0u8; 8];
            header[4..].copy_from_slice(&STALL.to_be_bytes());
            stream.write_all(&header).expect("stall request");
            // Until one write blocks for a second: the proxy is not reading.
            stream
                .set_write_timeout(Some(Duration::from_secs(1)))
                .expect("SO_SNDTIMEO");
            let chunk = vec![0u8; 64 << 10];
            let mut sent = 0;
            while sent < count {
                match stream.write(&chunk) {
                    Ok(written) => sent += written,
                    Err(error) if error.kind() == ErrorKind::WouldBlock => break,
                    Err(error) => panic!("flood: {error}"),
                }
            }
            print!("{}", sent as f64 / (1 << 20) as f64);
            close_with_rst(stream);
        }
        other => panic!("unknown client mode `{other}`"),
    }
}

/// Connects to [`TARGET`] within [`ROUND_TIMEOUT`], with reads and writes bounded by it too.
fn dial(mode: &str, index: usize) -> TcpStream {
    let stream =
        TcpStream::connect_timeout(&TARGET.into(), ROUND_TIMEOUT).unwrap_or_else(|error| {
            eprintln!("{mode}: connection {index} to {TARGET}: connect: {error}");
            std::process::exit(1)
        });
    stream
        .set_read_timeout(Some(ROUND_TIMEOUT))
        .expect("SO_RCVTIMEO");
    stream
        .set_write_timeout(Some(ROUND_TIMEOUT))
        .expect("SO_SNDTIMEO");
    stream
}

/// Ends the client with what failed: which case, which connection, how far its round got.
fn fail(mode: &str, index: usize, stream: &TcpStream, why: &str) -> ! {
    eprintln!(
        "{mode}: connection {index} ({:?} to {TARGET}): {why}",
        stream.local_addr()
    );
    std::process::exit(1)
}

fn join(netns: &str, cgroup: &str) {
    let namespace = File::open(netns).expect("open netns");
    // SAFETY: setns on a namespace file we hold; this process has one thread here.
    assert_eq!(
        unsafe { libc::setns(namespace.as_raw_fd(), libc::CLONE_NEWNET) },
        0
    );
    std::fs::write(PathBuf::from(cgroup).join("cgroup.procs"), "0").expect("join cgroup");
}
