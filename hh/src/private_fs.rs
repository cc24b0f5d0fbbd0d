//! Files only this user may read, in a directory only this user may change, never through a
//! symbolic link.
//!
//! Owns the few filesystem moves that secrets and logs need: a [`PrivateDir`] is created 0700 (or,
//! when it exists, checked: a real directory, ours, writable by nobody else) and then held open,
//! so every file inside it is opened relative to that descriptor (`openat`) with `O_NOFOLLOW`:
//! swapping a path component for a symlink after the check changes nothing. New files appear
//! atomically (temp name, fsync, then link or rename); existing private files are refused when they
//! are symlinks, not ours, or readable by others. The CA key (`tls::ca`) and the audit log
//! (`audit`) use it; what goes in the files is theirs.

use std::ffi::CString;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::os::unix::fs::{
    DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _,
};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Why a private directory or file could not be used. Every variant names the path.
#[derive(Debug, thiserror::Error)]
pub enum PrivateFsError {
    #[error("cannot {op} {}: {source}", .path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{} is a symbolic link; refusing to follow it", .path.display())]
    Symlink { path: PathBuf },
    #[error("{} is not a directory", .path.display())]
    NotADirectory { path: PathBuf },
    #[error("{} is not a regular file", .path.display())]
    NotAFile { path: PathBuf },
    #[error("{} belongs to uid {owner}, not to uid {expected}", .path.display())]
    WrongOwner {
        path: PathBuf,
        owner: u32,
        expected: u32,
    },
    #[error(
        "{} has mode {mode:04o}, which lets other users {what} it; `chmod {fix:o}` it or remove it",
        .path.display()
    )]
    TooOpen {
        path: PathBuf,
        mode: u32,
        what: &'static str,
        fix: u32,
    },
    #[error("{} already exists", .path.display())]
    AlreadyExists { path: PathBuf },
    #[error("`{name}` is not a plain file name")]
    BadName { name: String },
}

/// A directory that is ours and that no one else may write, held open.
#[derive(Debug)]
pub struct PrivateDir {
    path: PathBuf,
    dir: File,
}

impl PrivateDir {
    /// Creates `path` with mode 0700 (its parents with the default mode) or opens the existing one,
    /// refusing a symlink, a non-directory, another user's directory, or one that others may write.
    pub fn open_or_create(path: &Path) -> Result<Self, PrivateFsError> {
        let io = |op, source| PrivateFsError::Io {
            op,
            path: path.to_owned(),
            source,
        };
        if let Some(parent) = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent).map_err(|source| PrivateFsError::Io {
                op: "create",
                path: parent.to_owned(),
                source,
            })?;
        }
        match DirBuilder::new().mode(0o700).create(path) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
            Err(error) => return Err(io("create", error)),
        }
        let dir = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
            .open(path)
            .map_err(|error| match error.raw_os_error() {
                Some(libc::ELOOP) => PrivateFsError::Symlink {
                    path: path.to_owned(),
                },
                Some(libc::ENOTDIR) => classify_not_dir(path),
                _ => io("open", error),
            })?;
        let meta = dir.metadata().map_err(|error| io("stat", error))?;
        if !meta.is_dir() {
            return Err(PrivateFsError::NotADirectory {
                path: path.to_owned(),
            });
        }
        check_owner(path, meta.uid())?;
        if meta.mode() & 0o022 != 0 {
            return Err(PrivateFsError::TooOpen {
                path: path.to_owned(),
                mode: meta.mode() & 0o7777,
                what: "write into",
                fix: 0o700,
            });
        }
        Ok(Self {
            path: path.to_owned(),
            dir,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens `name` for appending, creating it 0600 if missing; an existing one must be a regular
    /// file of ours that others cannot read or write.
    pub fn open_private_append(&self, name: &str) -> Result<File, PrivateFsError> {
        let flags = libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT;
        let file = self.openat(name, flags, 0o600)?;
        self.check_private_file(name, &file)?;
        Ok(file)
    }

    /// Reads `name` if it exists; it must be a regular file of ours that others cannot read.
    pub fn read_private(&self, name: &str) -> Result<Option<Vec<u8>>, PrivateFsError> {
        self.read(name, true)
    }

    /// Reads `name` if it exists, refusing only a symlink or a non-file (for public files).
    pub fn read_public(&self, name: &str) -> Result<Option<Vec<u8>>, PrivateFsError> {
        self.read(name, false)
    }

    /// Writes `name` atomically with `mode`, failing with [`PrivateFsError::AlreadyExists`] if it
    /// exists: temp file (`O_EXCL | O_NOFOLLOW`), fsync, `linkat` (which never replaces), fsync
    /// of the directory.
    pub fn create_new(&self, name: &str, bytes: &[u8], mode: u32) -> Result<(), PrivateFsError> {
        let temp = self.write_temp(name, bytes, mode)?;
        let result = self.link(&temp, name);
        self.unlink(&temp);
        result?;
        self.sync()
    }

    /// Writes `name` atomically with `mode`, replacing what was there: temp file, fsync, `renameat`
    /// (which replaces a symlink itself, never its target), fsync of the directory.
    pub fn replace(&self, name: &str, bytes: &[u8], mode: u32) -> Result<(), PrivateFsError> {
        let temp = self.write_temp(name, bytes, mode)?;
        let from = c_name(&temp)?;
        let to = c_name(name)?;
        let fd = self.dir.as_raw_fd();
        // SAFETY: both names are NUL-terminated C strings that outlive the call; `fd` is open.
        let rc = unsafe { libc::renameat(fd, from.as_ptr(), fd, to.as_ptr()) };
        if rc != 0 {
            let error = io::Error::last_os_error();
            self.unlink(&temp);
            return Err(self.io("rename into", name, error));
        }
        self.sync()
    }

    fn read(&self, name: &str, private: bool) -> Result<Option<Vec<u8>>, PrivateFsError> {
        let mut file = match self.openat(name, libc::O_RDONLY, 0) {
            Ok(file) => file,
            Err(PrivateFsError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                return Ok(None);
            }
            Err(error) => return Err(error),
        };
        if private {
            self.check_private_file(name, &file)?;
        } else if !file
            .metadata()
            .map_err(|error| self.io("stat", name, error))?
            .is_file()
        {
            return Err(PrivateFsError::NotAFile {
                path: self.path.join(name),
            });
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(|error| self.io("read", name, error))?;
        Ok(Some(bytes))
    }

    fn write_temp(&self, name: &str, bytes: &[u8], mode: u32) -> Result<String, PrivateFsError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let temp = format!(
            ".{name}.tmp.{}.{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL;
        let mut file = self.openat(&temp, flags, mode)?;
        // Set the mode on the descriptor: the umask must not decide what a public file looks like.
        let written = file
            .set_permissions(std::fs::Permissions::from_mode(mode))
            .and_then(|()| file.write_all(bytes))
            .and_then(|()| file.sync_all())
            .map_err(|error| self.io("write", &temp, error));
        if let Err(error) = written {
            self.unlink(&temp);
            return Err(error);
        }
        Ok(temp)
    }

    fn link(&self, from: &str, to: &str) -> Result<(), PrivateFsError> {
        let from_c = c_name(from)?;
        let to_c = c_name(to)?;
        let fd = self.dir.as_raw_fd();
        // SAFETY: both names are NUL-terminated C strings that outlive the call; `fd` is open.
        let rc = unsafe { libc::linkat(fd, from_c.as_ptr(), fd, to_c.as_ptr(), 0) };
        if rc != 0 {
            let error = io::Error::last_os_error();
            if error.kind() == io::ErrorKind::AlreadyExists {
                return Err(PrivateFsError::AlreadyExists {
                    path: self.path.join(to),
                });
            }
            return Err(self.io("create", to, error));
        }
        Ok(())
    }

    /// Best effort: a leftover temp file is harmless and named as one.
    fn unlink(&self, name: &str) {
        if let Ok(c) = c_name(name) {
            // SAFETY: `c` is a NUL-terminated C string that outlives the call; the fd is open.
            unsafe { libc::unlinkat(self.dir.as_raw_fd(), c.as_ptr(), 0) };
        }
    }

    fn sync(&self) -> Result<(), PrivateFsError> {
        self.dir.sync_all().map_err(|source| PrivateFsError::Io {
            op: "sync",
            path: self.path.clone(),
            source,
        })
    }

    /// `openat(dir, name, flags | O_NOFOLLOW | O_CLOEXEC, mode)`.
    fn openat(&self, name: &str, flags: libc::c_int, mode: u32) -> Result<File, PrivateFsError> {
        let c = c_name(name)?;
        let flags = flags | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        // SAFETY: `c` is a NUL-terminated C string that outlives the call; the fd is open.
        let fd = unsafe { libc::openat(self.dir.as_raw_fd(), c.as_ptr(), flags, mode) };
        if fd < 0 {
            let error = io::Error::last_os_error();
            if error.raw_os_error() == Some(libc::ELOOP) {
                return Err(PrivateFsError::Symlink {
                    path: self.path.join(name),
                });
            }
            return Err(self.io("open", name, error));
        }
        // SAFETY: `fd` was just returned by openat, is valid, and nothing else owns it.
        Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    fn check_private_file(&self, name: &str, file: &File) -> Result<(), PrivateFsError> {
        let path = self.path.join(name);
        let meta = file
            .metadata()
            .map_err(|error| self.io("stat", name, error))?;
        if !meta.is_file() {
            return Err(PrivateFsError::NotAFile { path });
        }
        check_owner(&path, meta.uid())?;
        if meta.mode() & 0o077 != 0 {
            return Err(PrivateFsError::TooOpen {
                path,
                mode: meta.mode() & 0o7777,
                what: "read or write",
                fix: 0o600,
            });
        }
        Ok(())
    }

    fn io(&self, op: &'static str, name: &str, source: io::Error) -> PrivateFsError {
        PrivateFsError::Io {
            op,
            path: self.path.join(name),
            source,
        }
    }
}

fn check_owner(path: &Path, owner: u32) -> Result<(), PrivateFsError> {
    let expected = rustix::process::geteuid().as_raw();
    if owner != expected {
        return Err(PrivateFsError::WrongOwner {
            path: path.to_owned(),
            owner,
            expected,
        });
    }
    Ok(())
}

/// `ENOTDIR` on open: either the path itself is a file, or it is a symlink (`O_NOFOLLOW` with
/// `O_DIRECTORY` may report either).
fn classify_not_dir(path: &Path) -> PrivateFsError {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => PrivateFsError::Symlink {
            path: path.to_owned(),
        },
        _ => PrivateFsError::NotADirectory {
            path: path.to_owned(),
        },
    }
}

/// A single path component: no `/`, no NUL, not `.` or `..`.
fn c_name(name: &str) -> Result<CString, PrivateFsError> {
    let bad = || PrivateFsError::BadName {
        name: name.to_owned(),
    };
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return Err(bad());
    }
    CString::new(name).map_err(|_| bad())
}

/// The permission bits of `path` itself (not of a symlink's target), for tests of the modes
/// this module promises.
#[cfg(test)]
pub(crate) fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    #[test]
    fn a_new_directory_is_0700_and_new_private_files_are_0600() {
        let temp = tempfile::tempdir().unwrap();
        let path = temp.path().join("state/hh");
        let dir = PrivateDir::open_or_create(&path).unwrap();
        dir.create_new("key", b"secret", 0o600).unwrap();
        drop(dir.open_private_append("log").unwrap());
        assert_eq!(mode(&path), 0o700);
        assert_eq!(mode(&path.join("key")), 0o600);
        assert_eq!(mode(&path.join("log")), 0o600);
        assert_eq!(
            dir.read_private("key").unwrap().as_deref(),
            Some(&b"secret"[..])
        );
        assert_eq!(dir.read_private("missing").unwrap(), None);
    }

    #[test]
    fn create_new_never_replaces_and_leaves_no_temp_file() {
        let temp = tempfile::tempdir().unwrap();
        let dir = PrivateDir::open_or_create(temp.path()).unwrap();
        dir.create_new("key", b"first", 0o600).unwrap();
        let again = dir.create_new("key", b"second", 0o600);
        assert!(
            matches!(again, Err(PrivateFsError::AlreadyExists { .. })),
            "{again:?}"
        );
        assert_eq!(
            dir.read_private("key").unwrap().as_deref(),
            Some(&b"first"[..])
        );
        let names: Vec<_> = std::fs::read_dir(temp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["key"]);
    }

    #[test]
    fn replace_swaps_a_symlink_itself_and_never_writes_through_it() {
        let temp = tempfile::tempdir().unwrap();
        let dir = PrivateDir::open_or_create(&temp.path().join("d")).unwrap();
        let victim = temp.path().join("victim");
        std::fs::write(&victim, b"untouched").unwrap();
        symlink(&victim, temp.path().join("d/ca.pem")).unwrap();
        dir.replace("ca.pem", b"public", 0o644).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"untouched");
        assert_eq!(
            dir.read_public("ca.pem").unwrap().as_deref(),
            Some(&b"public"[..])
        );
        assert_eq!(mode(&temp.path().join("d/ca.pem")), 0o644);
    }

    #[test]
    fn unsafe_directories_and_files_are_refused_with_their_path() {
        let temp = tempfile::tempdir().unwrap();
        let real = temp.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o700)).unwrap();
        let link = temp.path().join("link");
        symlink(&real, &link).unwrap();
        let file = temp.path().join("file");
        std::fs::write(&file, b"").unwrap();
        let open = temp.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();

        let cases: [(&Path, &str); 3] = [
            (&link, "is a symbolic link"),
            (&file, "is not a directory"),
            (&open, "lets other users write into it"),
        ];
        for (path, message) in cases {
            let error = PrivateDir::open_or_create(path).unwrap_err().to_string();
            assert!(error.contains(message), "{}: {error}", path.display());
            assert!(error.contains(&path.display().to_string()), "{error}");
        }

        let dir = PrivateDir::open_or_create(&real).unwrap();
        std::fs::write(real.join("loose"), b"x").unwrap();
        std::fs::set_permissions(real.join("loose"), std::fs::Permissions::from_mode(0o640))
            .unwrap();
        symlink(real.join("loose"), real.join("linked")).unwrap();
        std::fs::create_dir(real.join("sub")).unwrap();
        let cases = [
            ("loose", "lets other users read or write it"),
            ("linked", "is a symbolic link"),
            ("sub", "is not a regular file"),
        ];
        for (name, message) in cases {
            let read = dir.read_private(name).unwrap_err().to_string();
            assert!(read.contains(message), "read {name}: {read}");
            let append = dir.open_private_append(name).unwrap_err().to_string();
            assert!(
                append.contains(message) || name == "sub",
                "append {name}: {append}"
            );
        }
    }

    #[test]
    fn names_with_path_separators_are_refused() {
        let temp = tempfile::tempdir().unwrap();
        let dir = PrivateDir::open_or_create(temp.path()).unwrap();
        for name in ["", ".", "..", "a/b", "/etc/passwd", "a\0b"] {
            let result = dir.read_private(name);
            assert!(
                matches!(result, Err(PrivateFsError::BadName { .. })),
                "{name:?}: {result:?}"
            );
        }
    }
}
