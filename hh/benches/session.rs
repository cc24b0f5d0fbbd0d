//! `cargo xtask bench session`: how long a session takes from command to a ready shell, against
//! a plain `docker run` of the same image in the same run (root, Docker, the local test stem).
//!
//! - hh: `hh session start --detach` (cgroup, programs attached and pinned, container, netns
//!   listeners, canary) then `hh shell ID -- true` (the first command in the session);
//! - docker: `docker run -d --network none IMAGE sleep infinity` then `docker exec ID true`.
//!
//! Rounds alternate the two so machine noise hits both alike; the table reports medians and
//! the ratio (target ≤ 1.3×).

#[path = "../../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::{
    docker,
    session_world::{TEST_IMAGE, World, build_test_stem},
};

const ROUNDS: usize = 9;

fn main() {
    if !support::require_root("bench session") || !build_test_stem() {
        return;
    }
    let world = World::new("b");
    let agent = world.agent();
    let label = support::leftovers::container_label();
    let mut hh_times = Vec::new();
    let mut docker_times = Vec::new();
    for round in 0..ROUNDS {
        let started = Instant::now();
        let id = world.start_session();
        let (code, out) = world.shell(&id, &["true"]);
        let took = started.elapsed();
        assert_eq!(code, 0, "{out}");
        stop(&world, &id);

        let started = Instant::now();
        let container = docker(&[
            "run",
            "-d",
            "--label",
            &label,
            "--network",
            "none",
            TEST_IMAGE,
            "sleep",
            "infinity",
        ]);
        docker(&["exec", &container, "true"]);
        let plain = started.elapsed();
        docker(&["rm", "-f", &container]);

        eprintln!("round {round}: hh {took:?}, docker {plain:?}");
        hh_times.push(took);
        docker_times.push(plain);
    }
    agent.terminate();
    let hh = median(&mut hh_times);
    let plain = median(&mut docker_times);
    println!("\n| case | command → shell ready (median of {ROUNDS}) | vs docker run |");
    println!("|---|---:|---:|");
    println!("| docker run + exec | {} ms | 1.00× |", plain.as_millis());
    println!(
        "| hh session start + hh shell | {} ms | {:.2}× |",
        hh.as_millis(),
        hh.as_secs_f64() / plain.as_secs_f64()
    );
}

fn stop(world: &World, id: &str) {
    let output = world.hh(&["session", "stop", id]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}
