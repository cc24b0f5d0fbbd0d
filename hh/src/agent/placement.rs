//! Where a session's cgroup lives, for each of Docker's cgroup drivers, and how it goes away.
//!
//! The agent creates the session's cgroup v2 directory and attaches the programs to it before
//! the container exists; Docker is told to put the container below it (`--cgroup-parent`). The
//! two drivers spell that parent differently: `cgroupfs` takes a path (`/hh/ID`), `systemd` a
//! slice name (`hh-ID.slice`, which systemd places at `hh.slice/hh-ID.slice`).
//!
//! On a hybrid host (v1 controllers beside cgroup2), runc also makes the parent in every v1
//! hierarchy; removal cleans those too, so nothing is left after a session.

use std::{
    io,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use crate::sys::mountinfo;

/// The top-level group every session sits under.
pub const GROUP: &str = "hh";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Driver {
    Cgroupfs,
    Systemd,
}

impl Driver {
    /// Docker's name for it (`docker info`); anything but `systemd` places like cgroupfs.
    pub fn from_docker(name: &str) -> Driver {
        if name == "systemd" {
            Driver::Systemd
        } else {
            Driver::Cgroupfs
        }
    }
}

/// One session's cgroup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    /// Relative to a hierarchy's root.
    pub relative: PathBuf,
    /// What Docker gets as the cgroup parent.
    pub docker_parent: String,
}

impl Placement {
    /// `group` is [`GROUP`] unless tests isolate agents from each other; `id` is hex.
    pub fn new(driver: Driver, group: &str, id: &str) -> Placement {
        match driver {
            Driver::Cgroupfs => Placement {
                relative: Path::new(group).join(id),
                docker_parent: format!("/{group}/{id}"),
            },
            Driver::Systemd => Placement {
                relative: Path::new(&format!("{group}.slice")).join(format!("{group}-{id}.slice")),
                docker_parent: format!("{group}-{id}.slice"),
            },
        }
    }

    /// The cgroup v2 directory under `root`.
    pub fn dir(&self, root: &Path) -> PathBuf {
        root.join(&self.relative)
    }

    /// Creates the v2 directory (and its group) under `root`.
    pub fn create(&self, root: &Path) -> io::Result<PathBuf> {
        let dir = self.dir(root);
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    /// Removes the session's directories in cgroup2 under `root` and in every v1 hierarchy,
    /// children first (Docker removes the container's own cgroup asynchronously, so an
    /// emptying cgroup is retried for a few seconds). Missing directories are fine.
    pub fn remove(&self, root: &Path) -> io::Result<()> {
        let mut roots = vec![root.to_path_buf()];
        if let Ok(mounts) = mountinfo::read() {
            roots.extend(
                mounts
                    .into_iter()
                    .filter(|mount| mount.fs_type == "cgroup")
                    .map(|mount| mount.mount_point),
            );
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut last_error = None;
        for hierarchy in roots {
            let dir = hierarchy.join(&self.relative);
            loop {
                match remove_tree(&dir) {
                    Ok(()) => break,
                    Err(error) if Instant::now() < deadline => {
                        last_error = Some(error);
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    Err(error) => return Err(error),
                }
            }
        }
        drop(last_error);
        Ok(())
    }

    /// Whether the v2 directory exists (a session left behind).
    pub fn exists(&self, root: &Path) -> bool {
        self.dir(root).is_dir()
    }
}

/// Removes an (empty of processes) cgroup directory and its child cgroups. cgroupfs lets only
/// `rmdir` remove a cgroup; its files go with it.
fn remove_tree(dir: &Path) -> io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(error),
    };
    for entry in entries {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            remove_tree(&entry.path())?;
        }
    }
    match std::fs::remove_dir(dir) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => Err(error),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroupfs_parent_is_a_path_under_the_group() {
        let placement = Placement::new(Driver::Cgroupfs, GROUP, "0123abcd");
        assert_eq!(placement.docker_parent, "/hh/0123abcd");
        assert_eq!(
            placement.dir(Path::new("/sys/fs/cgroup")),
            Path::new("/sys/fs/cgroup/hh/0123abcd")
        );
    }

    #[test]
    fn systemd_parent_is_a_slice_systemd_nests_by_its_dashes() {
        let placement = Placement::new(Driver::Systemd, GROUP, "0123abcd");
        assert_eq!(placement.docker_parent, "hh-0123abcd.slice");
        assert_eq!(
            placement.dir(Path::new("/sys/fs/cgroup")),
            Path::new("/sys/fs/cgroup/hh.slice/hh-0123abcd.slice")
        );
    }

    #[test]
    fn unknown_drivers_place_like_cgroupfs() {
        assert_eq!(Driver::from_docker("none"), Driver::Cgroupfs);
        assert_eq!(Driver::from_docker("systemd"), Driver::Systemd);
    }
}
