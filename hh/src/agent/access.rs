//! What a client may ask the agent to mount: only paths that user could read themselves, and
//! never a container runtime's socket (whoever holds it owns the host).
//!
//! The agent runs as root, so the kernel would let it read anything; these checks stand in for
//! the user's own permissions, from the mode bits along the canonical path.

use std::{
    fs,
    os::unix::fs::{FileTypeExt as _, MetadataExt as _},
    path::{Path, PathBuf},
};

/// Sockets whose holder controls the host; mounting them, or a directory above them, is refused.
const RUNTIME_SOCKETS: &[&str] = &[
    "/run/docker.sock",
    "/var/run/docker.sock",
    "/run/containerd/containerd.sock",
    "/run/podman/podman.sock",
    "/run/crio/crio.sock",
];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AccessError {
    #[error("{path}: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error(
        "{path} is or contains a container runtime socket ({socket}); a session may not mount it"
    )]
    RuntimeSocket { path: PathBuf, socket: PathBuf },
    #[error("{path} is a socket; a session may not mount sockets")]
    Socket { path: PathBuf },
}

/// The client's identity for permission checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub uid: u32,
    /// Primary and supplementary groups.
    pub groups: Vec<u32>,
}

impl Identity {
    /// The groups of process `pid` (its `Groups:` line) plus `gid`.
    pub fn of_process(uid: u32, gid: u32, pid: Option<i32>) -> Identity {
        let mut groups = vec![gid];
        // The pid was the peer's at connect time; it may have exited and its number been
        // reused. Its groups count only while its real and effective ids are still the peer's.
        let status = pid.and_then(|pid| fs::read_to_string(format!("/proc/{pid}/status")).ok());
        if let Some(status) = status
            && ids_are(&status, "Uid:", uid)
            && ids_are(&status, "Gid:", gid)
            && let Some(line) = status.lines().find_map(|line| line.strip_prefix("Groups:"))
        {
            groups.extend(
                line.split_whitespace()
                    .filter_map(|g| g.parse::<u32>().ok()),
            );
        }
        Identity { uid, groups }
    }
}

/// Whether every id on the `key` line of a `/proc/PID/status` (real, effective, saved, fs) is
/// `id`.
fn ids_are(status: &str, key: &str, id: u32) -> bool {
    status
        .lines()
        .find_map(|line| line.strip_prefix(key))
        .is_some_and(|ids| {
            let ids: Vec<&str> = ids.split_whitespace().collect();
            !ids.is_empty() && ids.iter().all(|value| value.parse() == Ok(id))
        })
}

/// Checks that `identity` could read `path` (and list it, when a directory), and that it is no
/// runtime socket nor above one. Returns the canonical path, which is what gets mounted (a
/// symlink swapped later cannot redirect the mount).
pub fn check_mountable(path: &Path, identity: &Identity) -> Result<PathBuf, AccessError> {
    let unreadable = |reason: String| AccessError::Unreadable {
        path: path.to_path_buf(),
        reason,
    };
    let canonical = fs::canonicalize(path).map_err(|error| unreadable(error.to_string()))?;
    let meta = fs::metadata(&canonical).map_err(|error| unreadable(error.to_string()))?;
    if meta.file_type().is_socket() {
        return Err(AccessError::Socket { path: canonical });
    }
    for socket in RUNTIME_SOCKETS {
        let socket = Path::new(socket);
        let Ok(real) = fs::canonicalize(socket) else {
            continue;
        };
        if real.starts_with(&canonical) || socket.starts_with(&canonical) {
            return Err(AccessError::RuntimeSocket {
                path: canonical,
                socket: real,
            });
        }
    }
    if identity.uid == 0 {
        return Ok(canonical);
    }
    // Every directory above must let the user through (x); the path itself must be readable,
    // and listable when it is a directory.
    let mut ancestors: Vec<&Path> = canonical.ancestors().skip(1).collect();
    ancestors.reverse();
    for dir in ancestors {
        let meta = fs::metadata(dir).map_err(|error| unreadable(error.to_string()))?;
        if !permits(&meta, identity, 0o1) {
            return Err(unreadable(format!(
                "uid {} may not enter {}",
                identity.uid,
                dir.display()
            )));
        }
    }
    let wanted = if meta.is_dir() { 0o5 } else { 0o4 };
    if !permits(&meta, identity, wanted) {
        return Err(unreadable(format!("uid {} may not read it", identity.uid)));
    }
    Ok(canonical)
}

/// Whether the mode bits grant `identity` every bit of `wanted` (an `rwx` triple, 0o7 max),
/// picking the owner, group or other class as the kernel does.
fn permits(meta: &fs::Metadata, identity: &Identity, wanted: u32) -> bool {
    let mode = meta.mode();
    let class = if meta.uid() == identity.uid {
        mode >> 6
    } else if identity.groups.contains(&meta.gid()) {
        mode >> 3
    } else {
        mode
    };
    class & wanted == wanted
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn nobody() -> Identity {
        Identity {
            uid: 65534,
            groups: vec![65534],
        }
    }

    #[test]
    fn a_private_directory_is_not_mountable_by_another_user() {
        let dir = tempfile::tempdir().unwrap();
        let private = dir.path().join("private");
        fs::create_dir(&private).unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(&private, fs::Permissions::from_mode(0o700)).unwrap();
        let error = check_mountable(&private, &nobody()).unwrap_err();
        assert!(matches!(error, AccessError::Unreadable { .. }), "{error}");
        fs::set_permissions(&private, fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(
            check_mountable(&private, &nobody()).unwrap(),
            private.canonicalize().unwrap()
        );
    }

    #[test]
    fn a_closed_parent_hides_an_open_child() {
        let dir = tempfile::tempdir().unwrap();
        let child = dir.path().join("child");
        fs::create_dir(&child).unwrap();
        fs::set_permissions(&child, fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).unwrap();
        assert!(check_mountable(&child, &nobody()).is_err());
    }

    #[test]
    fn group_bits_count_for_a_member() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        fs::write(&file, "x").unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o640)).unwrap();
        let gid = fs::metadata(&file).unwrap().gid();
        let member = Identity {
            uid: 65534,
            groups: vec![gid],
        };
        assert!(check_mountable(&file, &member).is_ok());
        assert!(check_mountable(&file, &nobody()).is_err() || gid == 65534);
    }

    #[test]
    fn a_directory_above_the_docker_socket_is_refused() {
        let root = Identity {
            uid: 0,
            groups: vec![0],
        };
        if !Path::new("/var/run/docker.sock").exists() && !Path::new("/run/docker.sock").exists() {
            // Without a Docker socket on this host the check has nothing to find; the socket
            // check below still runs.
            return;
        }
        let error = check_mountable(Path::new("/run"), &root).unwrap_err();
        assert!(
            matches!(error, AccessError::RuntimeSocket { .. }),
            "{error}"
        );
        let error = check_mountable(Path::new("/"), &root).unwrap_err();
        assert!(
            matches!(error, AccessError::RuntimeSocket { .. }),
            "{error}"
        );
    }

    #[test]
    fn a_socket_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let root = Identity {
            uid: 0,
            groups: vec![0],
        };
        assert!(matches!(
            check_mountable(&path, &root).unwrap_err(),
            AccessError::Socket { .. }
        ));
    }
}
