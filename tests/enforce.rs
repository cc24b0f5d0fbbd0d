//! Agent-mode enforcement on the real kernel, without Docker: the embedded eBPF programs attached
//! to a throwaway cgroup, a client process in that cgroup and in a fresh network namespace, and
//! the session's listeners bound inside that namespace. Every address below 127.0.0.0/8 is only
//! ever a *destination the client asks for*: the namespace has nothing but `lo`, so a connect
//! that were not redirected could not leave it (it fails with ENETUNREACH).

mod support;

use std::sync::Arc;

use hh::enforce::ebpf::{Ports, Programs, SessionLinks};
use serde_json::{Value, json};
use support::{
    kernel::{Cgroup, NetNs, client, serve_session},
    require_root,
};

const PORTS: Ports = Ports {
    proxy: 15001,
    dns: 15053,
};
const EPERM: i64 = 1;
const ENETUNREACH: i64 = 101;

/// One session: namespace, cgroup with the programs attached, listeners serving.
struct Session {
    netns: NetNs,
    cgroup: Cgroup,
    _links: SessionLinks,
}

fn session(programs: &mut Programs) -> Session {
    let netns = NetNs::new();
    let cgroup = Cgroup::new();
    let links = programs
        .attach(&cgroup.path)
        .expect("attach to the session cgroup");
    assert_eq!(links.len(), 8);
    Session {
        netns,
        cgroup,
        _links: links,
    }
}

fn start(tag: &'static str) -> (Programs, Session) {
    let mut programs = Programs::load(PORTS).expect("load the embedded programs");
    let original = Arc::new(programs.original_dst().expect("original-destination map"));
    let session = session(&mut programs);
    serve_session(&session.netns.path(), tag, PORTS.proxy, PORTS.dns, original);
    (programs, session)
}

fn in_session(session: &Session, ops: Value) -> Vec<Value> {
    client(&session.netns, Some(&session.cgroup.path), &ops)
}

fn refused_with(result: &Value, errno: i64) {
    assert_eq!(result["ok"], false, "{result}");
    assert_eq!(result["errno"], errno, "{result}");
}

#[test]
fn a_tcp_connect_anywhere_lands_in_the_session_proxy_with_its_original_destination() {
    if !require_root("a_tcp_connect_anywhere_lands_in_the_session_proxy…") {
        return;
    }
    let (programs, session) = start("A");
    let results = in_session(
        &session,
        json!([
            {"op": "tcp", "host": "203.0.113.10", "port": 80},
            {"op": "tcp", "host": "198.51.100.7", "port": 5432},
            {"op": "tcp", "host": "::ffff:203.0.113.10", "port": 443, "family": 6},
            {"op": "tcp", "host": "127.0.0.1", "port": 8080},
            {"op": "tcp", "host": "127.0.0.1", "port": PORTS.proxy},
        ]),
    );
    assert_eq!(results[0]["reply"], "A ORIG 203.0.113.10:80");
    assert_eq!(results[1]["reply"], "A ORIG 198.51.100.7:5432");
    // A v4-mapped destination on an IPv6 socket runs connect6 only, and is redirected there.
    assert_eq!(results[2]["reply"], "A ORIG 203.0.113.10:443");
    // The session's own loopback is untouched: dev servers keep working…
    assert_eq!(results[3]["reply"], "LOCAL");
    // …and a client that dials the proxy itself is an explicit-proxy client.
    assert_eq!(results[4]["reply"], "A DIRECT");
    let stats = programs.stats().unwrap();
    assert_eq!(stats.redirected, 3);
    assert_eq!(stats.established, 3);
}

#[test]
fn udp_is_refused_except_dns_which_reaches_the_stub_whatever_resolver_was_asked() {
    if !require_root("udp_is_refused_except_dns…") {
        return;
    }
    let (programs, session) = start("A");
    let results = in_session(
        &session,
        json!([
            {"op": "udp", "host": "203.0.113.10", "port": 9999},
            {"op": "udp", "host": "203.0.113.10", "port": 9999, "connect": true},
            {"op": "udp", "host": "::ffff:203.0.113.10", "port": 9999, "family": 6},
            {"op": "udp", "host": "203.0.113.53", "port": 53},
            {"op": "udp", "host": "198.51.100.1", "port": 53, "connect": true},
            {"op": "udp", "host": "::ffff:203.0.113.53", "port": 53, "family": 6},
        ]),
    );
    for refused in &results[..3] {
        refused_with(refused, EPERM);
    }
    // The reply comes from the stub but reads as the resolver's, as resolvers require.
    assert_eq!(results[3]["reply"], "A DNS ping");
    assert_eq!(results[3]["from"], json!(["203.0.113.53", 53]));
    assert_eq!(results[4]["reply"], "A DNS ping");
    assert_eq!(results[5]["reply"], "A DNS ping");
    assert_eq!(results[5]["from"], json!(["::ffff:203.0.113.53", 53]));
    let stats = programs.stats().unwrap();
    assert_eq!(stats.refused_udp, 3);
    assert_eq!(stats.dns_redirected, 3);
}

#[test]
fn ipv6_off_the_session_loopback_is_refused_at_once() {
    if !require_root("ipv6_off_the_session_loopback_is_refused_at_once") {
        return;
    }
    let (_programs, session) = start("A");
    let results = in_session(
        &session,
        json!([
            {"op": "tcp", "host": "2001:db8::1", "port": 443, "family": 6},
            {"op": "udp", "host": "2001:db8::53", "port": 53, "family": 6},
            {"op": "tcp", "host": "64:ff9b::cb00:710a", "port": 80, "family": 6},
        ]),
    );
    for result in &results {
        refused_with(result, EPERM);
    }
}

#[test]
fn raw_sockets_cannot_be_created_in_a_session() {
    if !require_root("raw_sockets_cannot_be_created_in_a_session") {
        return;
    }
    let (programs, session) = start("A");
    // The client runs as root with CAP_NET_RAW: only the sock_create program can refuse.
    // (AF_PACKET sockets never reach cgroup/sock_create; a session has no interface but `lo`
    // and no CAP_NET_RAW, so they have nothing to send on.)
    let results = in_session(
        &session,
        json!([
            {"op": "socket", "kind": "raw"},
            {"op": "socket", "kind": "tcp"},
        ]),
    );
    refused_with(&results[0], EPERM);
    assert_eq!(results[1]["ok"], true);
    assert_eq!(programs.stats().unwrap().refused_socket, 1);
}

#[test]
fn a_process_outside_the_session_cgroup_is_untouched() {
    if !require_root("a_process_outside_the_session_cgroup_is_untouched") {
        return;
    }
    let (programs, session) = start("A");
    // Same namespace, not in the cgroup: nothing redirects it, and the namespace has no route.
    let results = client(
        &session.netns,
        None,
        &json!([
            {"op": "tcp", "host": "203.0.113.10", "port": 80},
            {"op": "socket", "kind": "raw"},
        ]),
    );
    refused_with(&results[0], ENETUNREACH);
    assert_eq!(results[1]["ok"], true);
    assert_eq!(programs.stats().unwrap().redirected, 0);
}

#[test]
fn two_sessions_land_in_their_own_proxies() {
    if !require_root("two_sessions_land_in_their_own_proxies") {
        return;
    }
    let mut programs = Programs::load(PORTS).expect("load the embedded programs");
    let original = Arc::new(programs.original_dst().unwrap());
    let a = session(&mut programs);
    let b = session(&mut programs);
    // Same proxy port in both namespaces: only the namespace tells the sessions apart.
    serve_session(
        &a.netns.path(),
        "A",
        PORTS.proxy,
        PORTS.dns,
        original.clone(),
    );
    serve_session(&b.netns.path(), "B", PORTS.proxy, PORTS.dns, original);
    let op = json!([{"op": "tcp", "host": "203.0.113.10", "port": 80}]);
    assert_eq!(
        in_session(&a, op.clone())[0]["reply"],
        "A ORIG 203.0.113.10:80"
    );
    assert_eq!(in_session(&b, op)[0]["reply"], "B ORIG 203.0.113.10:80");
}

#[test]
fn no_map_entry_outlives_its_connection() {
    if !require_root("no_map_entry_outlives_its_connection") {
        return;
    }
    let mut programs = Programs::load(PORTS).expect("load the embedded programs");
    let original = Arc::new(programs.original_dst().unwrap());
    let session = session(&mut programs);
    serve_session(
        &session.netns.path(),
        "A",
        PORTS.proxy,
        PORTS.dns,
        original.clone(),
    );
    let results = in_session(
        &session,
        json!([{"op": "repeat_tcp", "host": "203.0.113.10", "port": 80, "count": 500}]),
    );
    assert_eq!(results[0]["ok"], true, "{}", results[0]);
    assert_eq!(programs.stats().unwrap().established, 500);
    assert_eq!(original.len(), 0, "original-destination entries leaked");
    assert_eq!(
        programs.connecting_len().unwrap(),
        0,
        "connecting entries leaked"
    );
}

#[test]
fn detaching_a_session_removes_its_redirect() {
    if !require_root("detaching_a_session_removes_its_redirect") {
        return;
    }
    let (_programs, session) = start("A");
    let Session {
        netns,
        cgroup,
        _links: links,
    } = session;
    drop(links);
    let results = client(
        &netns,
        Some(&cgroup.path),
        &json!([{"op": "tcp", "host": "203.0.113.10", "port": 80}]),
    );
    refused_with(&results[0], ENETUNREACH);
}
