//! `hh doctor`: can this host run hh, and in which mode?
//!
//! Each check does the real thing (a real bpf syscall, a real program load, a real cgroup attach,
//! a real request to the Docker engine) and reports one line with a fix. The verdict:
//! - **agent mode** needs the bpf syscall, cgroup v2, bpffs, every embedded program loading,
//!   sockmap + sk_msg, cgroup attachment, and a Docker engine;
//! - otherwise hh cannot run sessions here.
//!
//! `agent-socket` says whether an agent answers the invoking user on its socket, which is all a
//! user needs (sessions, shells and image builds go through the agent, never the Docker socket). (A TUN mode for hosts without eBPF, such as Docker
//!   Desktop, is planned and not built: the doctor does not offer it.)

mod agent_socket;
mod docker;
pub mod session_trust;

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::{
    enforce::ebpf,
    sys::{bpf, cgroup, mountinfo},
};

/// What the checks may be pointed at instead of what the host detects.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    /// cgroup v2 root to use instead of the one found in the mount table.
    pub cgroup_root: Option<PathBuf>,
    /// Docker endpoint (`unix:///path`) instead of `$DOCKER_HOST` or the default socket.
    pub docker_host: Option<String>,
    /// The agent's socket to ask (`$HH_AGENT_SOCKET`, else the default).
    pub agent_socket: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    /// Works, but something is worth knowing.
    Warn,
    Fail,
    /// Not run because a check it depends on failed.
    Skip,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub detail: String,
    /// What to do about a failure or warning.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// eBPF enforcement by `hh agent`.
    Agent,
    /// Neither: sessions cannot run here.
    None,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub mode: Mode,
    pub checks: Vec<Check>,
}

impl Report {
    pub fn check(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|check| check.name == name)
    }

    pub fn passed(&self, name: &str) -> bool {
        self.check(name)
            .is_some_and(|check| matches!(check.status, Status::Pass | Status::Warn))
    }
}

/// Checks that agent mode needs, in the order they run.
const AGENT_NEEDS: &[&str] = &[
    "bpf-syscall",
    "cgroup2",
    "bpffs",
    "programs",
    "sockmap",
    "cgroup-attach",
    "docker",
];

/// Runs every check.
pub fn diagnose(inputs: &Inputs) -> Report {
    let mut checks = vec![kernel(), check_bpf_syscall()];
    let mounts = mountinfo::read().unwrap_or_default();
    let (cgroup_check, cgroup_root) = check_cgroup2(&mounts, inputs.cgroup_root.as_deref());
    checks.push(cgroup_check);
    checks.push(check_btf());
    checks.push(check_bpffs(&mounts));
    checks.extend(check_programs(cgroup_root.as_deref()));
    checks.push(docker::check(inputs.docker_host.as_deref()));
    let socket = inputs
        .agent_socket
        .clone()
        .unwrap_or_else(crate::api::client::socket_path);
    checks.push(agent_socket::check(&socket));
    checks.push(check_service());

    let mut report = Report {
        mode: Mode::None,
        checks,
    };
    report.mode = if AGENT_NEEDS.iter().all(|name| report.passed(name)) {
        Mode::Agent
    } else {
        Mode::None
    };
    report
}

fn pass(name: &'static str, detail: impl Into<String>) -> Check {
    Check {
        name,
        status: Status::Pass,
        detail: detail.into(),
        fix: None,
    }
}

fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
    Check {
        name,
        status: Status::Fail,
        detail: detail.into(),
        fix: Some(fix.into()),
    }
}

fn skip(name: &'static str, because: &str) -> Check {
    Check {
        name,
        status: Status::Skip,
        detail: format!("not run: {because}"),
        fix: None,
    }
}

/// Whether the agent is installed as a systemd service, and running as one (a warning, never
/// a failure: `sudo hh agent` in a terminal works as well).
fn check_service() -> Check {
    use crate::cli::service::{UNIT_DIR, UNIT_NAME, systemd_runs};
    let unit = Path::new(UNIT_DIR).join(UNIT_NAME);
    let warn = |detail: String, fix: &str| Check {
        name: "service",
        status: Status::Warn,
        detail,
        fix: Some(fix.into()),
    };
    if !unit.exists() {
        return warn(
            format!(
                "{} is not installed: the agent runs only while `sudo hh agent` does",
                unit.display()
            ),
            "sudo hh --config CONFIG service install",
        );
    }
    if !systemd_runs() {
        return warn(
            format!(
                "{} is installed, but systemd does not run on this host",
                unit.display()
            ),
            "start the agent with `sudo hh --config CONFIG agent`",
        );
    }
    // spawns: systemctl
    let state = std::process::Command::new("systemctl")
        .args(["is-active", UNIT_NAME])
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
        .unwrap_or_else(|error| format!("unknown ({error})"));
    if state == "active" {
        pass("service", format!("{UNIT_NAME} is active"))
    } else {
        warn(
            format!("{UNIT_NAME} is installed but {state}"),
            "sudo systemctl enable --now hh-agent.service; journalctl -u hh-agent says why it stopped",
        )
    }
}

fn kernel() -> Check {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|text| text.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into());
    pass("kernel", format!("Linux {release}"))
}

fn check_bpf_syscall() -> Check {
    const NAME: &str = "bpf-syscall";
    match bpf::probe_syscall() {
        Ok(()) => pass(NAME, "bpf(2) works for this process"),
        Err(error @ bpf::BpfProbeError::NotPermitted) => {
            fail(NAME, error.to_string(), "run as root: sudo hh doctor")
        }
        Err(error) => fail(
            NAME,
            format!("{:#}", anyhow::Error::from(error)),
            "use a kernel with CONFIG_BPF_SYSCALL=y (hh has no mode without eBPF yet)",
        ),
    }
}

/// The cgroup2 check, and the root it found (for the attach check).
fn check_cgroup2(mounts: &[mountinfo::Mount], given: Option<&Path>) -> (Check, Option<PathBuf>) {
    const NAME: &str = "cgroup2";
    let (root, layout) = match given {
        Some(path) => (path.to_path_buf(), None),
        None => match cgroup::find_cgroup2(mounts) {
            Some((root, layout)) => (root, Some(layout)),
            None => {
                let check = fail(
                    NAME,
                    cgroup::CgroupError::NotMounted.to_string(),
                    "mount it: mount -t cgroup2 none /sys/fs/cgroup/unified (or boot with \
                     systemd.unified_cgroup_hierarchy=1)",
                );
                return (check, None);
            }
        },
    };
    if let Err(error) = cgroup::verify_cgroup2(&root) {
        let fix = "point hh at the cgroup2 mount point (see `findmnt -t cgroup2`)";
        return (
            fail(NAME, format!("{:#}", anyhow::Error::from(error)), fix),
            None,
        );
    }
    let how = match layout {
        Some(cgroup::Layout::Hybrid) => " (hybrid: cgroup v1 controllers mounted beside it)",
        Some(cgroup::Layout::Unified) => " (unified)",
        None => " (given)",
    };
    (pass(NAME, format!("{}{how}", root.display())), Some(root))
}

fn check_btf() -> Check {
    const NAME: &str = "btf";
    const VMLINUX: &str = "/sys/kernel/btf/vmlinux";
    if Path::new(VMLINUX).is_file() {
        pass(NAME, format!("{VMLINUX} present"))
    } else {
        // hh's programs use no CO-RE relocations today, so this only warns.
        Check {
            name: NAME,
            status: Status::Warn,
            detail: format!("{VMLINUX} missing: the kernel has no BTF"),
            fix: Some("use a kernel built with CONFIG_DEBUG_INFO_BTF=y".into()),
        }
    }
}

fn check_bpffs(mounts: &[mountinfo::Mount]) -> Check {
    const NAME: &str = "bpffs";
    if let Some(mount) = mounts.iter().find(|mount| mount.fs_type == "bpf") {
        return pass(NAME, format!("mounted at {}", mount.mount_point.display()));
    }
    // The agent pins its programs on bpffs (so sessions stay cut off if it dies) and mounts it
    // itself when it is missing; what must hold is that the kernel offers the filesystem.
    let filesystems = std::fs::read_to_string("/proc/filesystems").unwrap_or_default();
    if filesystems
        .lines()
        .any(|line| line.split_whitespace().last() == Some("bpf"))
    {
        Check {
            name: NAME,
            status: Status::Warn,
            detail: "not mounted; the kernel supports it and `hh agent` mounts it at /sys/fs/bpf"
                .into(),
            fix: Some("to mount it now: sudo mount -t bpf bpf /sys/fs/bpf".into()),
        }
    } else {
        fail(
            NAME,
            "the kernel offers no bpf filesystem (/proc/filesystems)",
            "use a kernel with CONFIG_BPF_SYSCALL=y",
        )
    }
}

/// Loads every embedded program, then attaches sk_msg to its sockhash and connect4 to a
/// throwaway cgroup.
fn check_programs(cgroup_root: Option<&Path>) -> Vec<Check> {
    let started = std::time::Instant::now();
    let mut object = match ebpf::Programs::load(ebpf::Ports { proxy: 1, dns: 2 }) {
        Ok(object) => object,
        Err(error) => {
            return vec![
                fail(
                    "programs",
                    format!("{:#}", anyhow::Error::from(error)),
                    "run as root; on an old kernel, upgrade (hh needs cgroup sock_addr, sock, \
                     sock_ops and sk_msg programs)",
                ),
                skip("sockmap", "the programs did not load"),
                skip("cgroup-attach", "the programs did not load"),
            ];
        }
    };
    let names: Vec<String> = object
        .loaded
        .iter()
        .map(|(name, kind)| format!("{name} ({kind})"))
        .collect();
    let programs = pass(
        "programs",
        format!(
            "{} loaded in {} ms: {}",
            names.len(),
            started.elapsed().as_millis(),
            names.join(", ")
        ),
    );
    let sockmap = match object.probe_sk_msg() {
        Ok(()) => pass("sockmap", "sk_msg attached to a sockhash"),
        Err(error) => fail(
            "sockmap",
            format!("{:#}", anyhow::Error::from(error)),
            "use a kernel with CONFIG_BPF_STREAM_PARSER / sockmap support",
        ),
    };
    let attach = match cgroup_root {
        None => skip("cgroup-attach", "no cgroup2 root"),
        Some(root) => match object.probe_cgroup_attach(root) {
            Ok(()) => pass(
                "cgroup-attach",
                "every session program attached to and detached from a scratch cgroup",
            ),
            Err(error) => fail(
                "cgroup-attach",
                format!("{:#}", anyhow::Error::from(error)),
                "run as root with write access to the cgroup2 root",
            ),
        },
    };
    vec![programs, sockmap, attach]
}
