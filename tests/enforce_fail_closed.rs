//! Killing the agent leaves sessions cut off, never open; a restarted agent serves them again.
//!
//! A real agent process (this binary, re-executed with `HH_TEST_AGENT` set) loads the programs
//! with their maps pinned on bpffs, attaches them to a session cgroup, pins the links, binds the
//! session's listeners inside the session's namespace, and is then SIGKILLed. The session must
//! still be redirected (pinned links) to listeners that are gone: connection refused. A second
//! agent (this process) loads with the same pinned maps and binds again: the original
//! destination, written by programs the dead agent attached, is recovered again.
//!
//! `harness = false`: the test needs a second process that is the agent, and this file's own
//! `main` is the simplest honest way to be one. It prints libtest's summary line.

mod support;

use std::{
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::Arc,
};

use hh::{
    enforce::ebpf::{Ports, Programs, unpin_session},
    sys::bpffs,
};
use serde_json::json;
use support::kernel::{Cgroup, NetNs, client, serve_session};

const PORTS: Ports = Ports {
    proxy: 15001,
    dns: 15053,
};
const AGENT_ENV: &str = "HH_TEST_AGENT";
const ECONNREFUSED: i64 = 111;
const ENETUNREACH: i64 = 101;
const EPERM: i64 = 1;

fn main() {
    if let Ok(spec) = std::env::var(AGENT_ENV) {
        return agent(&spec);
    }
    if !support::require_root("killing_the_agent_leaves_sessions_cut_off_and_a_restart_serves_them")
    {
        println!("test result: ok. 0 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out");
        return;
    }
    killing_the_agent_leaves_sessions_cut_off_and_a_restart_serves_them();
    println!("test killing_the_agent_leaves_sessions_cut_off_and_a_restart_serves_them ... ok");
    println!("test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out");
}

/// Pins of this test, removed on drop whatever happened.
struct PinRoot(PathBuf);

impl Drop for PinRoot {
    fn drop(&mut self) {
        let session = self.0.join("session");
        if session.exists() {
            let _ = unpin_session(&session);
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn killing_the_agent_leaves_sessions_cut_off_and_a_restart_serves_them() {
    let bpf = Path::new(bpffs::DEFAULT_MOUNT);
    bpffs::ensure_mounted(bpf).expect("bpffs mounted");
    let pins = PinRoot(bpf.join(format!("hh-test-{}", std::process::id())));
    std::fs::create_dir_all(pins.0.join("maps")).expect("create pin dirs");
    let netns = NetNs::new();
    let cgroup = Cgroup::new();
    let to_anywhere = json!([
        {"op": "tcp", "host": "203.0.113.10", "port": 80},
        {"op": "udp", "host": "203.0.113.10", "port": 9999},
    ]);

    // The first agent: attaches, pins, serves; then it is killed.
    // spawns: hh
    let mut first = Command::new(std::env::current_exe().unwrap())
        .env(
            AGENT_ENV,
            format!(
                "{} {} {}",
                netns.path().display(),
                cgroup.path.display(),
                pins.0.display()
            ),
        )
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the first agent");
    let mut ready = String::new();
    BufReader::new(first.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    assert_eq!(ready.trim(), "ready", "the first agent did not start");
    let results = client(&netns, Some(&cgroup.path), &to_anywhere);
    assert_eq!(
        results[0]["reply"], "FIRST ORIG 203.0.113.10:80",
        "{results:?}"
    );

    first.kill().expect("SIGKILL the agent");
    first.wait().unwrap();
    let results = client(&netns, Some(&cgroup.path), &to_anywhere);
    // Still redirected (the pinned links outlived the agent), to a listener that is gone.
    assert_eq!(results[0]["errno"], ECONNREFUSED, "{results:?}");
    assert_eq!(results[1]["errno"], EPERM, "{results:?}");

    // The restarted agent: same pinned maps, listeners bound again.
    let mut second = Programs::load_pinned(PORTS, &pins.0.join("maps")).expect("reload pinned");
    let original = Arc::new(second.original_dst().unwrap());
    serve_session(&netns.path(), "SECOND", PORTS.proxy, PORTS.dns, original);
    let results = client(&netns, Some(&cgroup.path), &to_anywhere);
    assert_eq!(
        results[0]["reply"], "SECOND ORIG 203.0.113.10:80",
        "{results:?}"
    );

    // Ending the session detaches it: no redirect any more (and no route either).
    unpin_session(&pins.0.join("session")).expect("unpin the session");
    let results = client(&netns, Some(&cgroup.path), &to_anywhere);
    assert_eq!(results[0]["errno"], ENETUNREACH, "{results:?}");
}

/// The first agent's life: `NETNS CGROUP PIN_ROOT`.
fn agent(spec: &str) {
    let fields: Vec<&str> = spec.split(' ').collect();
    let [netns, cgroup, pins] = fields[..] else {
        panic!("bad agent spec `{spec}`");
    };
    let pins = Path::new(pins);
    let mut programs = Programs::load_pinned(PORTS, &pins.join("maps")).expect("load pinned");
    let original = Arc::new(programs.original_dst().unwrap());
    let links = programs.attach(Path::new(cgroup)).expect("attach");
    links.pin(&pins.join("session")).expect("pin the session");
    serve_session(Path::new(netns), "FIRST", PORTS.proxy, PORTS.dns, original);
    println!("ready");
    loop {
        std::thread::park();
    }
}
