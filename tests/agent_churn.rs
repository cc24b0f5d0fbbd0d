//! Thousands of sessions come and go without leaving anything in the kernel: each cycle runs
//! the agent's own per-session steps (cgroup placement, attach, pin, unpin, remove) and, at the
//! end, the system's bpf links, the pins and the cgroup directories are what they were.
//!
//! Alone in its test binary: it counts every bpf link on the host, which tests attaching
//! programs in parallel would disturb.

mod support;

use hh::{
    agent::placement::{Driver, Placement},
    enforce::ebpf::{Ports, Programs, unpin_session},
    sys,
};

const SESSIONS: usize = 2_000;

fn links_on_host() -> usize {
    aya::programs::loaded_links().filter(Result::is_ok).count()
}

#[test]
fn two_thousand_sessions_leave_no_link_pin_or_cgroup_behind() {
    if !support::require_root("agent churn") {
        return;
    }
    let (root, _) = sys::cgroup::detect_root().unwrap();
    let group = format!("hhchurn{}", std::process::id());
    let pins = std::path::PathBuf::from(format!("/sys/fs/bpf/{group}"));
    sys::bpffs::ensure_mounted(std::path::Path::new("/sys/fs/bpf")).unwrap();
    let mut programs = Programs::load(Ports {
        proxy: 28781,
        dns: 53,
    })
    .unwrap();
    let links_before = links_on_host();

    for n in 0..SESSIONS {
        let id = format!("{n:012x}");
        let placement = Placement::new(Driver::Cgroupfs, &group, &id);
        let dir = placement.create(&root).unwrap();
        let links = programs.attach(&dir).unwrap();
        let per_session = links.len();
        assert!(
            per_session >= 7,
            "every session program is attached: {per_session}"
        );
        let session_pins = pins.join(&id);
        links.pin(&session_pins).unwrap();
        if n == 0 {
            assert_eq!(
                links_on_host(),
                links_before + per_session,
                "a session holds its links"
            );
        }
        unpin_session(&session_pins).unwrap();
        placement.remove(&root).unwrap();
    }

    assert_eq!(links_on_host(), links_before, "links leaked");
    let left: Vec<_> = std::fs::read_dir(root.join(&group))
        .unwrap()
        .flatten()
        .filter(|entry| entry.path().is_dir())
        .collect();
    assert!(left.is_empty(), "cgroups left: {}", left.len());
    let pinned: Vec<_> = std::fs::read_dir(&pins)
        .map(|entries| entries.flatten().collect())
        .unwrap_or_default();
    assert!(pinned.is_empty(), "pins left: {}", pinned.len());
    std::fs::remove_dir(root.join(&group)).unwrap();
    let _ = std::fs::remove_dir(&pins);
}
