//! cgroup v2: where it is mounted, and whether a path really is one.
//!
//! Hosts differ: unified hosts mount cgroup2 at `/sys/fs/cgroup`, hybrid ones (v1 controllers
//! beside it) at `/sys/fs/cgroup/unified`. hh never assumes either; it reads the mount table.

use std::{
    ffi::CString,
    os::unix::ffi::OsStrExt as _,
    path::{Path, PathBuf},
};

use super::mountinfo::Mount;

/// `statfs(2)` magic of a cgroup2 filesystem (linux/magic.h).
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("no cgroup2 filesystem is mounted (looked in /proc/self/mountinfo)")]
    NotMounted,
    #[error("reading /proc/self/mountinfo")]
    Mountinfo(#[source] std::io::Error),
    #[error("{path} does not exist or cannot be read")]
    Missing {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a cgroup2 filesystem (statfs type {fs_type:#x})")]
    NotCgroup2 { path: PathBuf, fs_type: i64 },
}

/// How cgroup v2 sits on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// cgroup2 is the only hierarchy.
    Unified,
    /// cgroup v1 controllers are mounted beside cgroup2 (e.g. `/sys/fs/cgroup/unified`).
    Hybrid,
}

/// The first cgroup2 mount point in a mount table, and whether v1 hierarchies sit beside it.
pub fn find_cgroup2(mounts: &[Mount]) -> Option<(PathBuf, Layout)> {
    let root = mounts.iter().find(|mount| mount.fs_type == "cgroup2")?;
    let layout = if mounts.iter().any(|mount| mount.fs_type == "cgroup") {
        Layout::Hybrid
    } else {
        Layout::Unified
    };
    Some((root.mount_point.clone(), layout))
}

/// Detects the cgroup2 root from this process's mount table.
pub fn detect_root() -> Result<(PathBuf, Layout), CgroupError> {
    let mounts = super::mountinfo::read().map_err(CgroupError::Mountinfo)?;
    find_cgroup2(&mounts).ok_or(CgroupError::NotMounted)
}

/// Checks that `path` exists and is a cgroup2 filesystem (a root or any cgroup below it).
pub fn verify_cgroup2(path: &Path) -> Result<(), CgroupError> {
    let fs_type = statfs_type(path).map_err(|source| CgroupError::Missing {
        path: path.to_path_buf(),
        source,
    })?;
    if fs_type != CGROUP2_SUPER_MAGIC {
        return Err(CgroupError::NotCgroup2 {
            path: path.to_path_buf(),
            fs_type,
        });
    }
    Ok(())
}

/// The filesystem type of `path` (`statfs(2)` `f_type`).
pub fn statfs_type(path: &Path) -> std::io::Result<i64> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    let mut stats = std::mem::MaybeUninit::<libc::statfs>::uninit();
    // SAFETY: `c_path` is NUL-terminated and `stats` is large enough for the kernel to fill.
    let rc = unsafe { libc::statfs(c_path.as_ptr(), stats.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: statfs returned 0, so it filled `stats`.
    Ok(unsafe { stats.assume_init() }.f_type)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(point: &str, fs_type: &str) -> Mount {
        Mount {
            mount_point: PathBuf::from(point),
            fs_type: fs_type.into(),
        }
    }

    #[test]
    fn a_unified_host_has_cgroup2_at_sys_fs_cgroup() {
        let mounts = [mount("/sys", "sysfs"), mount("/sys/fs/cgroup", "cgroup2")];
        assert_eq!(
            find_cgroup2(&mounts),
            Some((PathBuf::from("/sys/fs/cgroup"), Layout::Unified))
        );
    }

    #[test]
    fn a_hybrid_host_has_cgroup2_beside_v1_controllers() {
        let mounts = [
            mount("/sys/fs/cgroup", "tmpfs"),
            mount("/sys/fs/cgroup/memory", "cgroup"),
            mount("/sys/fs/cgroup/unified", "cgroup2"),
        ];
        assert_eq!(
            find_cgroup2(&mounts),
            Some((PathBuf::from("/sys/fs/cgroup/unified"), Layout::Hybrid))
        );
    }

    #[test]
    fn a_host_without_cgroup2_has_no_root() {
        assert_eq!(find_cgroup2(&[mount("/sys/fs/cgroup/cpu", "cgroup")]), None);
    }

    #[test]
    fn a_path_that_does_not_exist_is_refused_naming_it() {
        let error = verify_cgroup2(Path::new("/nonexistent/hh-cgroup")).unwrap_err();
        assert!(matches!(error, CgroupError::Missing { .. }));
        assert!(error.to_string().contains("/nonexistent/hh-cgroup"));
    }

    #[test]
    fn a_directory_on_another_filesystem_is_not_cgroup2() {
        let dir = tempfile::tempdir().unwrap();
        let error = verify_cgroup2(dir.path()).unwrap_err();
        assert!(matches!(error, CgroupError::NotCgroup2 { .. }), "{error}");
    }
}
