//! Tests and benchmarks leave nothing on the host (`support/leftovers.rs`), on the real
//! system: a run ended by SIGTERM removes its namespace and cgroup before it exits, and what a
//! SIGKILLed run left is removed by the next run. The runs are child processes of this test
//! (its own binary, told by an environment variable what to be).

mod support;

use std::{
    io::{BufRead as _, BufReader},
    os::unix::process::ExitStatusExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use support::kernel::{Cgroup, NetNs};

/// Set in a child: `hold` (make a namespace and a cgroup, say their names, wait) or `touch`
/// (make and drop a namespace, exit).
const CHILD: &str = "HH_LEFTOVERS_CHILD";

fn main() {
    match std::env::var(CHILD).as_deref() {
        Ok("hold") => {
            let (netns, cgroup) = (NetNs::new(), Cgroup::new());
            println!("{} {}", netns.name, cgroup.path.display());
            std::thread::sleep(Duration::from_secs(120));
            return;
        }
        Ok("touch") => {
            drop(NetNs::new());
            return;
        }
        _ => {}
    }
    if !support::require_root("leftovers") {
        return;
    }
    an_interrupted_run_removes_what_it_made();
    what_a_killed_run_made_goes_with_the_next_run();
    println!("leftovers: 2 tests passed");
}

fn an_interrupted_run_removes_what_it_made() {
    let (mut child, netns, cgroup) = hold();
    // SAFETY: kill on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    // It died of the signal (after removing its things), as a parent should see it.
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}");
    assert!(!netns.exists(), "{} left", netns.display());
    assert!(!cgroup.exists(), "{} left", cgroup.display());
}

fn what_a_killed_run_made_goes_with_the_next_run() {
    let (mut child, netns, cgroup) = hold();
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    // SIGKILL gives a process no chance: its things are still there…
    assert!(netns.exists() && cgroup.exists());
    // …until the next run starts.
    // spawns: hh
    let next = Command::new(std::env::current_exe().unwrap())
        .env(CHILD, "touch")
        .output()
        .unwrap();
    assert!(next.status.success(), "{next:?}");
    let said = String::from_utf8_lossy(&next.stderr);
    assert!(said.contains("removed what a killed run"), "{said}");
    assert!(!netns.exists(), "{} left", netns.display());
    assert!(!cgroup.exists(), "{} left", cgroup.display());
}

/// A child that made a namespace and a cgroup: it, the namespace's path, the cgroup's.
fn hold() -> (Child, PathBuf, PathBuf) {
    // spawns: hh
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(CHILD, "hold")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let (netns, cgroup) = line.trim().split_once(' ').expect("NETNS CGROUP");
    let (netns, cgroup) = (
        Path::new("/var/run/netns").join(netns),
        PathBuf::from(cgroup),
    );
    assert!(netns.exists() && cgroup.exists(), "{line}");
    (child, netns, cgroup)
}
