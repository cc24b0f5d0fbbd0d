//! The first process of a session's container, held through a `/proc/PID` directory handle.
//!
//! A handle on `/proc/PID` is bound to one process: once it exits, opening anything through the
//! handle fails, whoever gets the pid next. Everything the agent learns about a session's
//! process goes through one handle, so it is all about the same process: that it sits in the
//! session's cgroup, that its mounts are the directories that were checked, that it runs under a
//! seccomp filter, and its network namespace, where the session's listeners are opened (never
//! the agent's own, the host's).

use std::{
    ffi::CStr,
    fs::File,
    io,
    os::{
        fd::{AsRawFd as _, FromRawFd as _},
        unix::fs::MetadataExt as _,
    },
    path::Path,
};

use super::access::{FileId, MountCheck};

pub struct SessionProcess {
    pid: i64,
    dir: File,
}

impl SessionProcess {
    /// Opens process `pid`, which must be in `cgroup` (relative to the cgroup v2 root) or below.
    pub fn open(pid: i64, cgroup: &Path) -> io::Result<SessionProcess> {
        let dir = File::open(format!("/proc/{pid}"))?;
        let cgroups = io::read_to_string(open_at(&dir, c"cgroup")?)?;
        if !in_cgroup(&cgroups, cgroup) {
            return Err(io::Error::other(format!(
                "process {pid} is not in the session's cgroup {}",
                cgroup.display()
            )));
        }
        Ok(SessionProcess { pid, dir })
    }

    /// Checks that each of `mounts` shows, inside the process's root, the file that was checked
    /// for it (Docker resolved the path again when it mounted; see
    /// [`super::access::Mountable`]).
    pub fn verify_mounts(&self, mounts: &[MountCheck]) -> io::Result<()> {
        // The process's root, entered once: every path below is resolved inside it.
        let root = open_at(&self.dir, c"root")?;
        for mount in mounts {
            let seen = file_in_root(&root, &mount.container)?;
            if seen != mount.file {
                return Err(io::Error::other(format!(
                    "{} is not the directory that was checked (replaced before Docker mounted \
                     it?)",
                    mount.container.display()
                )));
            }
        }
        Ok(())
    }

    /// Checks that the process runs under a seccomp filter (`Seccomp: 2` in its `status`); the
    /// error says what it runs under instead.
    pub fn verify_seccomp_filter(&self) -> io::Result<()> {
        let status = io::read_to_string(open_at(&self.dir, c"status")?)?;
        match super::seccomp::mode_in_status(&status) {
            Some(super::seccomp::FILTER_MODE) => Ok(()),
            mode => Err(io::Error::other(format!(
                "process {} runs without a seccomp filter (Seccomp: {}); hh's profile was not \
                 applied (a Docker daemon with seccomp disabled, or a runtime without it)",
                self.pid,
                mode.unwrap_or("missing")
            ))),
        }
    }

    /// The process's network namespace, open; refused when it is the agent's own.
    pub fn network_namespace(&self) -> io::Result<File> {
        let namespace = open_at(&self.dir, c"ns/net")?;
        let own = std::fs::metadata("/proc/self/ns/net")?;
        let theirs = namespace.metadata()?;
        if (own.dev(), own.ino()) == (theirs.dev(), theirs.ino()) {
            return Err(io::Error::other(format!(
                "process {} shares the agent's network namespace",
                self.pid
            )));
        }
        Ok(namespace)
    }
}

/// Opens `name` relative to the directory `dir`, read-only (`ns/net` is one of procfs's own
/// links, which must be followed to reach the namespace).
fn open_at(dir: &File, name: &CStr) -> io::Result<File> {
    // SAFETY: a valid directory descriptor and a NUL-terminated name; the returned descriptor is
    // owned by the `File`.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and nothing else owns it.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// The identity of the file at `path` inside the directory `root`, resolved as if `root` were
/// `/` (as Docker resolved it when it mounted): an image's symlink such as `/workspace ->
/// /home/x` leads to the container's `/home/x`, never the host's, and no procfs magic link is
/// followed on the way. A user may build the image, so its links are the user's.
fn file_in_root(root: &File, path: &Path) -> io::Result<FileId> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    let found = rustix::fs::openat2(
        root,
        path,
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )?;
    let stat = rustix::fs::fstat(&found)?;
    Ok(FileId {
        dev: stat.st_dev,
        ino: stat.st_ino,
    })
}

/// Whether a `/proc/PID/cgroup` text puts the process in `cgroup` (a path relative to the
/// cgroup v2 root) or below it: its unified-hierarchy line (`0::/PATH`).
fn in_cgroup(proc_cgroup: &str, cgroup: &Path) -> bool {
    let expected = Path::new("/").join(cgroup);
    proc_cgroup
        .lines()
        .filter_map(|line| line.strip_prefix("0::"))
        .any(|path| Path::new(path.trim_end()).starts_with(&expected))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_replaced_after_its_check_is_seen_through_the_process_root() {
        let dir = tempfile::tempdir().unwrap();
        let workspace = dir.path().join("workspace");
        std::fs::create_dir(&workspace).unwrap();
        let checked = std::fs::metadata(&workspace).unwrap();
        let checked = FileId {
            dev: checked.dev(),
            ino: checked.ino(),
        };
        let process = File::open("/proc/self").unwrap();
        let root = open_at(&process, c"root").unwrap();
        assert_eq!(file_in_root(&root, &workspace).unwrap(), checked);
        // Swapped for a symlink to another directory, as a user owning the parent could.
        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::fs::rename(&workspace, dir.path().join("moved")).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &workspace).unwrap();
        assert_ne!(file_in_root(&root, &workspace).unwrap(), checked);
    }

    #[test]
    fn an_images_absolute_symlink_leads_inside_the_container_root_not_the_hosts() {
        // A container root whose `/workspace` is a link to `/tmp` (a user's image may be so):
        // Docker mounted the workspace at the container's /tmp, and that is what must be
        // compared, not the host's /tmp (which an attacker can arrange to be the checked one).
        let container = tempfile::tempdir().unwrap();
        std::fs::create_dir(container.path().join("tmp")).unwrap();
        std::os::unix::fs::symlink("/tmp", container.path().join("workspace")).unwrap();
        let root = File::open(container.path()).unwrap();
        let inside = std::fs::metadata(container.path().join("tmp")).unwrap();
        let host = std::fs::metadata("/tmp").unwrap();
        let seen = file_in_root(&root, Path::new("/workspace")).unwrap();
        assert_eq!((seen.dev, seen.ino), (inside.dev(), inside.ino()));
        assert_ne!((seen.dev, seen.ino), (host.dev(), host.ino()));
        // `..` cannot climb out of it either.
        let climbed = file_in_root(&root, Path::new("/../../tmp")).unwrap();
        assert_eq!((climbed.dev, climbed.ino), (inside.dev(), inside.ino()));
    }

    #[test]
    fn the_unified_line_decides_which_cgroup_a_process_is_in() {
        let hybrid = "12:memory:/hh/s1/docker-abc\n1:name=systemd:/hh/s1/abc\n0::/hh/s1/abc\n";
        assert!(in_cgroup(hybrid, Path::new("hh/s1")));
        // A prefix of a name is not a parent.
        assert!(!in_cgroup(hybrid, Path::new("hh/s")));
        assert!(!in_cgroup(hybrid, Path::new("hh/s2")));
        // v1 lines alone say nothing about the hierarchy the programs are attached in.
        assert!(!in_cgroup("12:memory:/hh/s1/abc\n", Path::new("hh/s1")));
        let systemd = "0::/hh.slice/hh-s1.slice/docker-abc.scope\n";
        assert!(in_cgroup(systemd, Path::new("hh.slice/hh-s1.slice")));
    }
}
