//! A session's memory and CPU use, read from its cgroup: cgroup v2 files when the controllers
//! are there, else the v1 hierarchies of a hybrid host.

use std::path::Path;

use crate::sys::mountinfo;

/// Bytes of memory the session's processes use now.
pub fn memory_bytes(v2_dir: &Path, relative: &Path) -> Option<u64> {
    read_u64(&v2_dir.join("memory.current"))
        .or_else(|| read_u64(&v1_dir("memory", relative)?.join("memory.usage_in_bytes")))
}

/// The memory limit in bytes (`None`: unlimited or unreadable).
pub fn memory_limit(v2_dir: &Path, relative: &Path) -> Option<u64> {
    read_u64(&v2_dir.join("memory.max"))
        .or_else(|| read_u64(&v1_dir("memory", relative)?.join("memory.limit_in_bytes")))
}

/// CPU time used by the session, in microseconds.
pub fn cpu_usec(v2_dir: &Path, relative: &Path) -> Option<u64> {
    if let Ok(stat) = std::fs::read_to_string(v2_dir.join("cpu.stat"))
        && let Some(usec) = stat
            .lines()
            .find_map(|line| line.strip_prefix("usage_usec "))
            .and_then(|value| value.trim().parse().ok())
    {
        return Some(usec);
    }
    read_u64(&v1_dir("cpuacct", relative)?.join("cpuacct.usage")).map(|ns| ns / 1000)
}

/// The v1 hierarchy directory holding `controller` for `relative`, on a hybrid host.
fn v1_dir(controller: &str, relative: &Path) -> Option<std::path::PathBuf> {
    let mounts = mountinfo::read().ok()?;
    mounts
        .into_iter()
        .filter(|mount| mount.fs_type == "cgroup")
        .map(|mount| mount.mount_point)
        .find(|point| {
            point
                .file_name()
                .is_some_and(|name| name.to_string_lossy().split(',').any(|c| c == controller))
        })
        .map(|point| point.join(relative))
}

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}
