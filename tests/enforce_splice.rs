//! Splicing client↔proxy bytes with `sk_msg` (`hh_common::splice`), on the real kernel: a
//! client in a session's cgroup and namespace exchanges request/response rounds of 1 B to
//! 64 KiB with a stand-in proxy whose listener belongs to the session (as the splice needs),
//! and every byte must arrive, in order, in both directions, while the bytes really skip TCP.
//! The client sends before the proxy reads (the proxy waits first) and pipelines requests, so
//! bytes queue on the proxy's side while its socket joins the sockhash.

mod support;

use std::{
    io::{Read as _, Write as _},
    net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream},
    sync::mpsc::Receiver,
    time::{Duration, Instant},
};

use hh::{
    enforce::ebpf::{LoadOptions, Ports, Programs, SessionLinks, Splice, SpliceEntries},
    sys::netns::{bind_in, listen_in_cgroup},
};
use serde_json::{Value, json};
use support::{
    kernel::{Cgroup, NetNs, client, close_with_rst, pattern, serve_frames},
    require_root,
};

const PORTS: Ports = Ports {
    proxy: 15001,
    dns: 15053,
};
const SPLICING: LoadOptions = LoadOptions {
    splice: Splice::On,
    log: None,
    maps_dir: None,
};
/// Long enough that the client's first request is queued before the proxy reads.
const FIRST_READ_DELAY: Duration = Duration::from_millis(50);

/// A session with its stand-in proxy serving.
struct Session {
    netns: NetNs,
    cgroup: Cgroup,
    _links: SessionLinks,
    outcomes: Receiver<Result<u64, String>>,
}

/// Where the stand-in proxy's listener belongs.
#[derive(Clone, Copy, PartialEq)]
enum Listener {
    /// The session's namespace and cgroup, as splicing needs.
    InSession,
    /// The session's namespace only (the agent's own cgroup, as without splicing).
    NamespaceOnly,
}

fn session(programs: &mut Programs, reply_seed: u64) -> Session {
    session_with(programs, reply_seed, Listener::InSession, FIRST_READ_DELAY)
}

fn session_with(
    programs: &mut Programs,
    reply_seed: u64,
    listener: Listener,
    first_read_delay: Duration,
) -> Session {
    let netns = NetNs::new();
    let cgroup = Cgroup::new();
    let links = programs.attach(&cgroup.path).expect("attach");
    let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, PORTS.proxy);
    let listener = match listener {
        Listener::InSession => listen_in_cgroup(&netns.path(), &cgroup.path, addr),
        Listener::NamespaceOnly => bind_in(&netns.path(), move || TcpListener::bind(addr)),
    }
    .expect("open the proxy listener in the session's namespace");
    let outcomes = serve_frames(listener, reply_seed, first_read_delay);
    Session {
        netns,
        cgroup,
        _links: links,
        outcomes,
    }
}

/// Rounds of every size pairing from 1 B to 64 KiB, each direction.
fn rounds() -> Vec<[usize; 2]> {
    let sizes = [1, 7, 64, 1_000, 4_096, 16_384, 65_536];
    let mut rounds = Vec::new();
    for request in sizes {
        for reply in sizes {
            rounds.push([request, reply]);
        }
    }
    rounds
}

/// Three connections: one round at a time, then pipelined by 3 and by 8.
fn exchanges(reply_seed: u64) -> Value {
    let rounds = rounds();
    json!(
        [1, 3, 8]
            .iter()
            .map(|pipeline| json!({
                "op": "exchange", "host": "203.0.113.10", "port": 443,
                "rounds": rounds, "pipeline": pipeline, "reply_seed": reply_seed,
            }))
            .collect::<Vec<_>>()
    )
}

fn run_exchanges(session: &Session, reply_seed: u64) {
    let results = client(
        &session.netns,
        Some(&session.cgroup.path),
        &exchanges(reply_seed),
    );
    for result in &results {
        assert_eq!(result["ok"], true, "{result}");
        assert_eq!(result["rounds"], rounds().len(), "{result}");
    }
    for _ in &results {
        let served = session
            .outcomes
            .recv_timeout(Duration::from_secs(5))
            .expect("the proxy reports each connection");
        assert_eq!(served, Ok(rounds().len() as u64));
    }
}

/// Waits (briefly: the last close callbacks run after the client exited) for empty maps.
fn assert_maps_empty(programs: &Programs) {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let entries = programs.splice_entries().unwrap();
        if entries == SpliceEntries::default() {
            return;
        }
        assert!(Instant::now() < deadline, "left in the maps: {entries:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn spliced_bytes_arrive_whole_and_in_order_both_ways_and_leave_no_entries() {
    if !require_root("spliced_bytes_arrive_whole_and_in_order…") {
        return;
    }
    let mut programs = Programs::load_with(PORTS, &SPLICING).expect("load");
    let session = session(&mut programs, 100);
    run_exchanges(&session, 100);
    let stats = programs.stats().unwrap();
    assert_eq!(stats.established, 3);
    // Every client was spliced: the proxy end was always in the sockhash before the client's
    // first send, so the bytes above skipped TCP.
    assert_eq!((stats.spliced, stats.splice_declined), (3, 0));
    drop(session);
    assert_maps_empty(&programs);
}

#[test]
fn two_sessions_with_the_same_addresses_splice_only_to_their_own_proxy() {
    if !require_root("two_sessions_with_the_same_addresses_splice…") {
        return;
    }
    let mut programs = Programs::load_with(PORTS, &SPLICING).expect("load");
    // Same proxy address and (likely) the same client ports in both namespaces: only the
    // namespace cookie in the key keeps them apart. Each proxy answers with its own bytes.
    let mut a = session(&mut programs, 100);
    let mut b = session(&mut programs, 200);
    // `&mut`: a session's outcome channel is `Send` but not `Sync`.
    let (a_ref, b_ref) = (&mut a, &mut b);
    std::thread::scope(|scope| {
        scope.spawn(move || run_exchanges(a_ref, 100));
        scope.spawn(move || run_exchanges(b_ref, 200));
    });
    assert_eq!(programs.stats().unwrap().spliced, 6);
    drop((a, b));
    assert_maps_empty(&programs);
}

#[test]
fn clients_whose_proxy_end_is_not_in_the_sockhash_stay_on_tcp() {
    if !require_root("clients_whose_proxy_end_is_not_in_the_sockhash_stay_on_tcp") {
        return;
    }
    let mut programs = Programs::load_with(PORTS, &SPLICING).expect("load");
    // The session's sock_ops never sees sockets of a listener outside its cgroup: each
    // client's first send finds no peer, and the client keeps to TCP for good.
    let session = session_with(
        &mut programs,
        100,
        Listener::NamespaceOnly,
        FIRST_READ_DELAY,
    );
    run_exchanges(&session, 100);
    let stats = programs.stats().unwrap();
    assert_eq!((stats.spliced, stats.splice_declined), (0, 3));
    drop(session);
    assert_maps_empty(&programs);
}

#[test]
fn with_splicing_off_the_same_rounds_go_by_tcp() {
    if !require_root("with_splicing_off_the_same_rounds_go_by_tcp") {
        return;
    }
    let mut programs = Programs::load(PORTS).expect("load");
    let session = session(&mut programs, 100);
    run_exchanges(&session, 100);
    let stats = programs.stats().unwrap();
    assert_eq!((stats.established, stats.spliced), (3, 0));
    assert_eq!(programs.splice_entries().unwrap(), SpliceEntries::default());
}

/// What the one-round stand-in proxy does with its end once it answered.
#[derive(Clone, Copy)]
enum AfterRound {
    /// Keeps it open (unclosed, as a proxy busy elsewhere would) until every connection was
    /// served.
    Hold,
    /// Closes it with a reset.
    Reset,
}

/// A stand-in proxy that answers one round (as [`serve_frames`], reply seed 100) on each of
/// `count` connections, then ends.
fn serve_one_round(listener: TcpListener, count: usize, after: AfterRound) {
    std::thread::spawn(move || {
        let mut held: Vec<TcpStream> = Vec::new();
        for mut stream in listener.incoming().flatten().take(count) {
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut header = [0u8; 8];
            if stream.read_exact(&mut header).is_err() {
                continue;
            }
            let [request, reply] = [&header[..4], &header[4..]]
                .map(|half| u32::from_be_bytes(half.try_into().unwrap()) as usize);
            let mut bytes = vec![0; request];
            if stream.read_exact(&mut bytes).is_err() {
                continue;
            }
            let _ = stream.write_all(&pattern(reply, 100));
            match after {
                AfterRound::Hold => held.push(stream),
                AfterRound::Reset => close_with_rst(stream),
            }
        }
    });
}

fn one_round(extra: Value) -> Value {
    let mut op = json!({
        "op": "exchange", "host": "203.0.113.10", "port": 443,
        "rounds": [[9, 1]], "reply_seed": 100,
    });
    op.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    op
}

/// A session whose stand-in answers one round per connection.
fn one_round_session(
    programs: &mut Programs,
    count: usize,
    after: AfterRound,
) -> (NetNs, Cgroup, SessionLinks) {
    let netns = NetNs::new();
    let cgroup = Cgroup::new();
    let links = programs.attach(&cgroup.path).expect("attach");
    let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, PORTS.proxy);
    let listener = listen_in_cgroup(&netns.path(), &cgroup.path, addr).expect("listener");
    serve_one_round(listener, count, after);
    (netns, cgroup, links)
}

/// Issue 22's hang: a client reset its connection while the proxy had not yet closed its end
/// (that end stays in the sockhash until it is closed: the kernel no longer drops entries on
/// unhash), and a new connection from the same port found the old end under its key. Its
/// proxy end could not enter the sockhash, and the client's first message was spliced into
/// the dead socket: lost, with `send` reporting success.
#[test]
fn a_connection_on_the_port_of_a_reset_one_reaches_its_own_proxy_end() {
    if !require_root("a_connection_on_the_port_of_a_reset_one_reaches_its_own_proxy_end") {
        return;
    }
    let mut programs = Programs::load_with(PORTS, &SPLICING).expect("load");
    let (netns, cgroup, links) = one_round_session(&mut programs, 2, AfterRound::Hold);
    let results = client(
        &netns,
        Some(&cgroup.path),
        &json!([
            one_round(json!({"bind_port": 40000, "rst": true})),
            one_round(json!({"bind_port": 40000})),
        ]),
    );
    for result in &results {
        assert_eq!(result["ok"], true, "{results:?}");
    }
    let stats = programs.stats().unwrap();
    assert_eq!(
        (stats.spliced, stats.splice_proxy_refused),
        (2, 0),
        "{stats:?}"
    );
    drop((links, cgroup, netns));
    assert_maps_empty(&programs);
}

/// The other direction: the proxy reset a connection whose client has not closed its socket
/// (again still in the sockhash), and the next connection got the same ephemeral port: the
/// proxy's replies to it must reach it, not the old client socket.
#[test]
fn replies_reach_a_new_client_on_the_port_of_a_reset_one() {
    if !require_root("replies_reach_a_new_client_on_the_port_of_a_reset_one") {
        return;
    }
    let mut programs = Programs::load_with(PORTS, &SPLICING).expect("load");
    let (netns, cgroup, links) = one_round_session(&mut programs, 2, AfterRound::Reset);
    let results = client(
        &netns,
        Some(&cgroup.path),
        &json!([
            // One ephemeral port: the second connection must reuse the first one's.
            {"op": "port_range", "low": 40000, "high": 40000},
            one_round(json!({"hold": true})),
            // The proxy's reset arrives and frees the port.
            {"op": "sleep", "seconds": 0.2},
            one_round(json!({})),
        ]),
    );
    for result in &results {
        assert_eq!(result["ok"], true, "{results:?}");
    }
    assert_eq!(results[1]["port"], results[3]["port"], "{results:?}");
    let stats = programs.stats().unwrap();
    assert_eq!((stats.spliced, stats.splice_declined), (2, 0), "{stats:?}");
    drop((links, cgroup, netns));
    assert_maps_empty(&programs);
}
