//! What a client may ask the agent to mount: only paths that user could read themselves, and
//! never a container runtime's socket (whoever holds it owns the host).
//!
//! The agent runs as root, so the kernel would let it read anything. The check is therefore
//! the kernel's own, made with the user's credentials: a short-lived thread takes on the user's
//! filesystem uid, gid and groups and gives up every capability (credentials are per thread
//! at the syscall level), then asks `faccessat2`. Mode bits, POSIX ACLs (which can deny a user
//! what the mode bits grant) and every directory on the way count, as they would for the user.
//! (An LSM still judges by the agent's own label.)

use std::{
    ffi::CString,
    fs,
    os::unix::ffi::OsStrExt as _,
    os::{
        fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
        unix::fs::{FileTypeExt as _, MetadataExt as _},
    },
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
    /// The primary group.
    pub gid: u32,
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
        Identity { uid, gid, groups }
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

/// What a check found mountable: the canonical path, which is what Docker is given, and the
/// file it named when it was checked. Docker resolves the path again when it mounts, and a user
/// who owns a directory on the way can swap it for a symlink in between; the mounted directory
/// must therefore still be this file once the container runs ([`MountCheck`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mountable {
    pub path: PathBuf,
    pub file: FileId,
}

/// A file's identity: its device and inode numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

/// A mount the started container must show: at `container` (a path inside it), the file that
/// was checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountCheck {
    pub container: PathBuf,
    pub file: FileId,
}

/// Checks that `identity` could read `path` (and list it, when a directory), and that it is no
/// runtime socket nor above one.
pub fn check_mountable(path: &Path, identity: &Identity) -> Result<Mountable, AccessError> {
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
        let file = FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        };
        return Ok(Mountable {
            path: canonical,
            file,
        });
    }
    // The path itself must be readable, and listable when it is a directory; the kernel also
    // checks that every directory above lets the user through.
    let wanted = if meta.is_dir() {
        libc::R_OK | libc::X_OK
    } else {
        libc::R_OK
    };
    match access_as(&canonical, identity, wanted) {
        Ok(file) => Ok(Mountable {
            path: canonical,
            file,
        }),
        Err(error) => Err(unreadable(format!(
            "uid {} may not read it: {error}",
            identity.uid
        ))),
    }
}

/// Whether `identity` may access `path` as `wanted` says, asked on a thread of its own that
/// takes on the identity's filesystem credentials and then ends (so no other thread ever runs
/// with them, and none is left holding them); and the identity of the file so checked.
fn access_as(path: &Path, identity: &Identity, wanted: i32) -> std::io::Result<FileId> {
    let path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    let identity = identity.clone();
    std::thread::spawn(move || {
        become_for_files(&identity)?;
        // Opened as the user (so every directory on the way is checked as theirs), then checked
        // and identified through the one descriptor: the answer and the identity are of the
        // same file, whatever is renamed meanwhile.
        // SAFETY: a NUL-terminated path; the descriptor is owned by the `OwnedFd`.
        let fd = unsafe {
            libc::open(
                path.as_ptr(),
                libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` was just opened and nothing else owns it.
        let file = unsafe { OwnedFd::from_raw_fd(fd) };
        // The system call itself, not glibc's `faccessat`: where the kernel lacks faccessat2,
        // glibc would answer AT_EACCESS from the mode bits and the effective uid (root here),
        // which is the very check this replaces. Without faccessat2 (Linux < 5.8) this fails
        // (ENOSYS), and the mount is refused.
        // SAFETY: an open descriptor and an empty NUL-terminated path; AT_EACCESS makes the
        // kernel use this thread's current (filesystem) credentials rather than its real ids.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_faccessat2,
                file.as_raw_fd(),
                c"".as_ptr(),
                wanted,
                libc::AT_EACCESS | libc::AT_EMPTY_PATH,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let meta = std::fs::File::from(file).metadata()?;
        Ok(FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        })
    })
    .join()
    .unwrap_or_else(|_| Err(std::io::Error::other("the access check panicked")))
}

/// Gives the calling thread `identity`'s groups, filesystem gid and filesystem uid, by the raw
/// system calls: they change this thread only (glibc's wrappers would change every thread of
/// the agent). Fails, rather than checking as root, when the kernel did not take them.
fn become_for_files(identity: &Identity) -> std::io::Result<()> {
    let groups: Vec<libc::gid_t> = identity.groups.clone();
    // SAFETY: a valid array of `groups.len()` gids.
    let rc = unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // setfsgid/setfsuid return the previous id and report no error: ask again with an id that
    // cannot be set (-1) to read back the one in force.
    // SAFETY: these calls take an id and have no memory effects.
    let (gid, uid) = unsafe {
        libc::syscall(libc::SYS_setfsgid, identity.gid);
        let gid = libc::syscall(libc::SYS_setfsgid, u32::MAX);
        libc::syscall(libc::SYS_setfsuid, identity.uid);
        let uid = libc::syscall(libc::SYS_setfsuid, u32::MAX);
        (gid, uid)
    };
    if gid != i64::from(identity.gid) || uid != i64::from(identity.uid) {
        return Err(std::io::Error::other(format!(
            "cannot take on uid {} gid {} for the check",
            identity.uid, identity.gid
        )));
    }
    drop_capabilities()
}

/// Empties this thread's effective capabilities and checks that they are empty. The fsuid
/// switch alone drops only the filesystem ones, and not at all under `SECURE_NO_SETUID_FIXUP`.
fn drop_capabilities() -> std::io::Result<()> {
    /// `_LINUX_CAPABILITY_VERSION_3`: two 32-bit words per set.
    const VERSION_3: u32 = 0x2008_0522;
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let mut header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: a version-3 header and the two data words that version takes; pid 0 is this
    // thread.
    let rc = unsafe { libc::syscall(libc::SYS_capget, &raw mut header, data.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    for word in &mut data {
        word.effective = 0;
    }
    // SAFETY: as above; lowering the effective set needs no privilege.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &raw mut header, data.as_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut check = [Data::default(); 2];
    // SAFETY: as above.
    let rc = unsafe { libc::syscall(libc::SYS_capget, &raw mut header, check.as_mut_ptr()) };
    if rc != 0 || check.iter().any(|word| word.effective != 0) {
        return Err(std::io::Error::other(
            "cannot drop the capabilities for the check",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    /// The checks take on another user's credentials, which needs root (the agent is root).
    /// Outside CI a non-root run skips them and says so; in CI (root) they always run.
    fn as_root() -> bool {
        let root = rustix::process::geteuid().is_root();
        assert!(
            root || std::env::var_os("CI").is_none(),
            "CI runs the agent's access checks as root"
        );
        if !root {
            eprintln!("skipped: checking as another user needs root");
        }
        root
    }

    /// Sets `path`'s POSIX access ACL (the `system.posix_acl_access` xattr, in the kernel's
    /// format: version 2, then tag/perm/id entries in tag order) to the owner's mode bits plus
    /// `user` with `perm`, the owning group and others with `rest`.
    fn set_acl(path: &Path, user: u32, perm: u16, rest: u16) {
        const USER_OBJ: u16 = 0x01;
        const USER: u16 = 0x02;
        const GROUP_OBJ: u16 = 0x04;
        const MASK: u16 = 0x10;
        const OTHER: u16 = 0x20;
        const UNDEFINED_ID: u32 = u32::MAX;
        let mut xattr = 2u32.to_le_bytes().to_vec();
        for (tag, perm, id) in [
            (USER_OBJ, 7, UNDEFINED_ID),
            (USER, perm, user),
            (GROUP_OBJ, rest, UNDEFINED_ID),
            (MASK, 7, UNDEFINED_ID),
            (OTHER, rest, UNDEFINED_ID),
        ] {
            xattr.extend_from_slice(&tag.to_le_bytes());
            xattr.extend_from_slice(&perm.to_le_bytes());
            xattr.extend_from_slice(&id.to_le_bytes());
        }
        let path = CString::new(path.as_os_str().as_bytes()).unwrap();
        // SAFETY: NUL-terminated name and path; `xattr` is valid for its length.
        let rc = unsafe {
            libc::setxattr(
                path.as_ptr(),
                c"system.posix_acl_access".as_ptr(),
                xattr.as_ptr().cast(),
                xattr.len(),
                0,
            )
        };
        assert_eq!(rc, 0, "setxattr: {}", std::io::Error::last_os_error());
    }

    #[test]
    fn an_acl_denying_the_user_wins_over_open_mode_bits() {
        if !as_root() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let shut = dir.path().join("shut");
        fs::create_dir(&shut).unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        // Others may read it by the mode bits; the ACL names nobody and gives them nothing.
        set_acl(&shut, 65534, 0, 5);
        let error = check_mountable(&shut, &nobody()).unwrap_err();
        assert!(matches!(error, AccessError::Unreadable { .. }), "{error}");
    }

    #[test]
    fn an_acl_granting_the_user_counts_despite_closed_mode_bits() {
        if !as_root() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("shared");
        fs::create_dir(&shared).unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        // Closed to group and others, open to nobody by name.
        set_acl(&shared, 65534, 5, 0);
        assert_eq!(
            check_mountable(&shared, &nobody()).unwrap().path,
            shared.canonicalize().unwrap()
        );
    }

    fn nobody() -> Identity {
        Identity {
            uid: 65534,
            gid: 65534,
            groups: vec![65534],
        }
    }

    #[test]
    fn a_private_directory_is_not_mountable_by_another_user() {
        if !as_root() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let private = dir.path().join("private");
        fs::create_dir(&private).unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(&private, fs::Permissions::from_mode(0o700)).unwrap();
        let error = check_mountable(&private, &nobody()).unwrap_err();
        assert!(matches!(error, AccessError::Unreadable { .. }), "{error}");
        fs::set_permissions(&private, fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(
            check_mountable(&private, &nobody()).unwrap().path,
            private.canonicalize().unwrap()
        );
    }

    #[test]
    fn a_closed_parent_hides_an_open_child() {
        if !as_root() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let child = dir.path().join("child");
        fs::create_dir(&child).unwrap();
        fs::set_permissions(&child, fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).unwrap();
        assert!(check_mountable(&child, &nobody()).is_err());
    }

    #[test]
    fn group_bits_count_for_a_member() {
        if !as_root() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        fs::write(&file, "x").unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o640)).unwrap();
        let gid = fs::metadata(&file).unwrap().gid();
        let member = Identity {
            uid: 65534,
            gid,
            groups: vec![gid],
        };
        assert!(check_mountable(&file, &member).is_ok());
        assert!(check_mountable(&file, &nobody()).is_err() || gid == 65534);
    }

    #[test]
    fn a_directory_above_the_docker_socket_is_refused() {
        let root = Identity {
            uid: 0,
            gid: 0,
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
            gid: 0,
            groups: vec![0],
        };
        assert!(matches!(
            check_mountable(&path, &root).unwrap_err(),
            AccessError::Socket { .. }
        ));
    }
}
