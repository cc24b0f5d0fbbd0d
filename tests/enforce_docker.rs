//! Agent-mode enforcement from inside a real Docker container (the local `hh-test-base` image):
//! the container runs with `--network none` and a cgroup parent whose cgroup v2 directory has
//! the programs attached *before* the container exists; the session's listeners are bound in the
//! container's own network namespace; the socket client runs in the container (`docker exec`).

mod support;

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::Arc,
};

use hh::{
    enforce::ebpf::{Ports, Programs},
    sys::{cgroup, mountinfo},
};
use serde_json::{Value, json};
use support::{docker, kernel::serve_session, require_root};

const PORTS: Ports = Ports {
    proxy: 15001,
    dns: 15053,
};
const IMAGE: &str = "hh-test-base";
const EPERM: i64 = 1;

/// A container and the cgroup directories made for it; all removed on drop.
struct Container {
    id: String,
    cgroup_name: String,
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.id]).output();
        // The engine leaves the parent it created in every hierarchy (v1 controllers and the
        // unified one on a hybrid host): remove them all.
        for mount in mountinfo::read().unwrap_or_default() {
            if mount.fs_type == "cgroup" || mount.fs_type == "cgroup2" {
                let _ = std::fs::remove_dir(mount.mount_point.join(&self.cgroup_name));
            }
        }
    }
}

fn docker_ready() -> bool {
    let answers = Command::new("docker")
        .args(["image", "inspect", IMAGE])
        .output()
        .is_ok_and(|output| output.status.success());
    assert!(
        answers || std::env::var_os("CI").is_none(),
        "CI must have a Docker engine and the {IMAGE} image (`cargo xtask test` prepares both)"
    );
    if !answers {
        eprintln!("skipping: no Docker engine or no {IMAGE} image (run `cargo xtask image`)");
    }
    answers
}

fn exec_client(container: &Container, ops: &Value) -> Vec<Value> {
    let output = docker(&[
        "exec",
        &container.id,
        "python3",
        "/netclient.py",
        &ops.to_string(),
    ]);
    serde_json::from_str(&output).unwrap_or_else(|error| panic!("{error}: {output}"))
}

#[test]
fn a_real_container_is_redirected_refused_and_resolved_like_any_session() {
    if !require_root("a_real_container_is_redirected_refused_and_resolved_like_any_session")
        || !docker_ready()
    {
        return;
    }
    let (root, _) = cgroup::detect_root().expect("cgroup2 root");
    let cgroup_name = format!("hh-docker-test-{}", std::process::id());
    let session_cgroup: PathBuf = root.join(&cgroup_name);
    std::fs::create_dir(&session_cgroup).expect("create the session cgroup");
    let mut programs = Programs::load(PORTS).expect("load programs");
    let original = Arc::new(programs.original_dst().unwrap());
    // Attached before the container exists: nothing of it runs unenforced.
    let _links = programs.attach(&session_cgroup).expect("attach");

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/support/netclient.py");
    let id = docker(&[
        "run",
        "-d",
        "--network",
        "none",
        "--cgroup-parent",
        &format!("/{cgroup_name}"),
        "-v",
        &format!("{script}:/netclient.py:ro"),
        IMAGE,
        "sleep",
        "120",
    ]);
    let container = Container { id, cgroup_name };
    let pid = docker(&["inspect", "-f", "{{.State.Pid}}", &container.id]);
    // The container's processes are in a cgroup below the one the programs are attached to.
    let membership = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(
        membership.contains(&format!("0::/{}/", container.cgroup_name)),
        "{membership}"
    );
    serve_in_container(&pid, original);

    let results = exec_client(
        &container,
        &json!([
            {"op": "tcp", "host": "203.0.113.10", "port": 443},
            {"op": "tcp", "host": "127.0.0.1", "port": 8080},
            {"op": "udp", "host": "203.0.113.10", "port": 9999},
            {"op": "udp", "host": "203.0.113.53", "port": 53},
            {"op": "tcp", "host": "2001:db8::1", "port": 443, "family": 6},
            {"op": "socket", "kind": "raw"},
        ]),
    );
    assert_eq!(
        results[0]["reply"], "C ORIG 203.0.113.10:443",
        "{results:?}"
    );
    assert_eq!(results[1]["reply"], "LOCAL", "{results:?}");
    assert_eq!(results[2]["errno"], EPERM, "{results:?}");
    assert_eq!(results[3]["reply"], "C DNS ping", "{results:?}");
    assert_eq!(results[3]["from"], json!(["203.0.113.53", 53]));
    assert_eq!(results[4]["errno"], EPERM, "{results:?}");
    // Docker grants CAP_NET_RAW by default: only the sock_create program refuses here.
    assert_eq!(results[5]["errno"], EPERM, "{results:?}");
    let stats = programs.stats().unwrap();
    assert_eq!(stats.redirected, 1);
    assert_eq!(stats.refused_socket, 1);
}

/// Binds the session's listeners in the container's network namespace.
fn serve_in_container(pid: &str, original: Arc<hh::enforce::original_dst::OriginalDst>) {
    let netns = Path::new("/proc").join(pid).join("ns/net");
    serve_session(&netns, "C", PORTS.proxy, PORTS.dns, original);
}
