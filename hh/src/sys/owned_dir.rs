//! A directory that belongs to a user, worked in by a root process on that user's behalf through
//! one descriptor.
//!
//! The agent runs as root and writes into directories its users own (a workspace's rules file).
//! A path is a promise that a user can break between two uses of it: swap a component for a
//! symlink and root's next `open`, `chown` or `rename` lands on a file of the attacker's choice.
//! So an [`OwnedDir`] is opened once with no symlink in any component (`openat2` with
//! `RESOLVE_NO_SYMLINKS`), its owner is checked with `fstat` on that descriptor, and every later
//! move is relative to it with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`: reads, a temp file made
//! `O_EXCL|O_NOFOLLOW` and given to the directory's owner by `fchown` on its descriptor, then
//! `renameat` within the directory. Nothing is ever changed by path.

use std::{
    fs::File,
    io::{self, Read as _, Write as _},
    os::fd::{AsFd as _, OwnedFd},
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
};

use rustix::fs::{self as rfs, Mode, OFlags, ResolveFlags};

/// Why a user's directory or a file in it could not be used. Every variant names the path.
#[derive(Debug, thiserror::Error)]
pub enum OwnedDirError {
    #[error("cannot {op} {}: {source}", .path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error(
        "{}: a component of the path is a symbolic link (or the name is one); hh acts on it \
         as root and will not follow it",
        .path.display()
    )]
    Symlink { path: PathBuf },
    #[error("{} belongs to uid {owner}, not to uid {expected}", .path.display())]
    WrongOwner {
        path: PathBuf,
        owner: u32,
        expected: u32,
    },
    #[error("{} is not a regular file", .path.display())]
    NotAFile { path: PathBuf },
    #[error("{} has other names (hard links); hh reads it as root and will not", .path.display())]
    HardLinked { path: PathBuf },
    #[error("{} is larger than {limit} bytes", .path.display())]
    TooLarge { path: PathBuf, limit: u64 },
    #[error("`{name}` is not a plain file name")]
    BadName { name: String },
}

/// A directory entry as `lstat` sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub dev: u64,
    pub ino: u64,
    pub kind: rfs::FileType,
}

/// A directory held open, with the owner it had when it was opened.
#[derive(Debug)]
pub struct OwnedDir {
    path: PathBuf,
    fd: OwnedFd,
    uid: u32,
    gid: u32,
}

/// Resolution for every open beneath an [`OwnedDir`]: never a symlink, never out of it.
const BENEATH: ResolveFlags = ResolveFlags::BENEATH.union(ResolveFlags::NO_SYMLINKS);

impl OwnedDir {
    /// Opens the directory at `path` (absolute, and no symlink in any component: a path a
    /// user could have pointed elsewhere is refused, not followed) and checks that `expected`
    /// owns it (any owner when `None`).
    pub fn open(path: &Path, expected: Option<u32>) -> Result<OwnedDir, OwnedDirError> {
        if !path.is_absolute() {
            return Err(OwnedDirError::Io {
                op: "open",
                path: path.to_path_buf(),
                source: io::Error::new(io::ErrorKind::InvalidInput, "not an absolute path"),
            });
        }
        let fd = rfs::openat2(
            rfs::CWD,
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::NO_SYMLINKS,
        )
        .map_err(|errno| refused(path, "open", errno))?;
        Self::from_fd(path.to_path_buf(), fd, expected)
    }

    fn from_fd(path: PathBuf, fd: OwnedFd, expected: Option<u32>) -> Result<Self, OwnedDirError> {
        let stat = rfs::fstat(&fd).map_err(|errno| refused(&path, "stat", errno))?;
        if let Some(expected) = expected
            && stat.st_uid != expected
        {
            return Err(OwnedDirError::WrongOwner {
                path,
                owner: stat.st_uid,
                expected,
            });
        }
        Ok(OwnedDir {
            path,
            fd,
            uid: stat.st_uid,
            gid: stat.st_gid,
        })
    }

    /// Where the directory was when it was opened (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory's owner (uid) when it was opened.
    pub fn owner(&self) -> u32 {
        self.uid
    }

    /// The directory's (device, inode).
    pub fn id(&self) -> Result<(u64, u64), OwnedDirError> {
        let stat = rfs::fstat(&self.fd).map_err(|errno| refused(&self.path, "stat", errno))?;
        Ok((stat.st_dev, stat.st_ino))
    }

    /// What `name` is, without following it: `None` when there is nothing.
    pub fn entry(&self, name: &str) -> Result<Option<Entry>, OwnedDirError> {
        let path = self.child(name)?;
        match rfs::statat(&self.fd, name, rfs::AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => Ok(Some(Entry {
                dev: stat.st_dev,
                ino: stat.st_ino,
                kind: rfs::FileType::from_raw_mode(stat.st_mode),
            })),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(errno) => Err(refused(&path, "stat", errno)),
        }
    }

    /// The subdirectory `name`, owned by the same user; `None` when there is none.
    pub fn subdir(&self, name: &str) -> Result<Option<OwnedDir>, OwnedDirError> {
        self.subdir_owned_by(name, Some(self.uid))
    }

    /// The subdirectory `name`, owned by `expected` (anyone when `None`); `None` when there
    /// is none.
    pub fn subdir_owned_by(
        &self,
        name: &str,
        expected: Option<u32>,
    ) -> Result<Option<OwnedDir>, OwnedDirError> {
        let path = self.child(name)?;
        match rfs::openat2(
            &self.fd,
            name,
            // No O_NOFOLLOW: with O_PATH it would open a symlink itself; RESOLVE_NO_SYMLINKS
            // refuses one (ELOOP) instead.
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            BENEATH,
        ) {
            Ok(fd) => Self::from_fd(path, fd, expected).map(Some),
            Err(rustix::io::Errno::NOENT) => Ok(None),
            Err(errno) => Err(refused(&path, "open", errno)),
        }
    }

    /// The regular file `name`, at most `limit` bytes; `None` when there is none. A FIFO or a
    /// device there is refused without blocking on it.
    pub fn read(&self, name: &str, limit: u64) -> Result<Option<Vec<u8>>, OwnedDirError> {
        let path = self.child(name)?;
        let fd = match rfs::openat2(
            &self.fd,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
            BENEATH,
        ) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) => return Ok(None),
            Err(errno) => return Err(refused(&path, "open", errno)),
        };
        let stat = rfs::fstat(&fd).map_err(|errno| refused(&path, "stat", errno))?;
        if !rfs::FileType::from_raw_mode(stat.st_mode).is_file() {
            return Err(OwnedDirError::NotAFile { path });
        }
        // A second name is a hard link, maybe to a file its maker cannot read (where
        // protected_hardlinks is off): root must not read it for them.
        if stat.st_nlink != 1 {
            return Err(OwnedDirError::HardLinked { path });
        }
        let mut bytes = Vec::new();
        File::from(fd)
            .take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(io_at("read", &path))?;
        if bytes.len() as u64 > limit {
            return Err(OwnedDirError::TooLarge { path, limit });
        }
        Ok(Some(bytes))
    }

    /// Replaces (or creates) the file `name` with `bytes`, atomically: a temp file in this
    /// directory owned by the directory's owner, mode 0644 or the old file's permission bits,
    /// fsynced, renamed over `name`, then the directory fsynced.
    pub fn replace(&self, name: &str, bytes: &[u8]) -> Result<(), OwnedDirError> {
        let path = self.child(name)?;
        let mode = match rfs::openat2(
            &self.fd,
            name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
            BENEATH,
        ) {
            Ok(old) => {
                // O_PATH|O_NOFOLLOW opens a symlink itself rather than failing.
                let stat = rfs::fstat(&old).map_err(|errno| refused(&path, "stat", errno))?;
                match rfs::FileType::from_raw_mode(stat.st_mode) {
                    rfs::FileType::RegularFile => stat.st_mode & 0o666,
                    rfs::FileType::Symlink => return Err(OwnedDirError::Symlink { path }),
                    _ => return Err(OwnedDirError::NotAFile { path }),
                }
            }
            Err(rustix::io::Errno::NOENT) => 0o644,
            Err(errno) => return Err(refused(&path, "open", errno)),
        };
        let (temp_name, temp) = self.create_temp(name)?;
        let temp_path = self.path.join(&temp_name);
        let written = self
            .give_to_owner(&temp, mode)
            .and_then(|()| {
                let mut file = File::from(temp);
                file.write_all(bytes)?;
                file.sync_all()
            })
            .map_err(io_at("write", &temp_path));
        let renamed = written.and_then(|()| {
            rfs::renameat(&self.fd, &temp_name, &self.fd, name)
                .map_err(|errno| refused(&path, "replace", errno))
        });
        if let Err(error) = renamed {
            let _ = rfs::unlinkat(&self.fd, &temp_name, rfs::AtFlags::empty());
            return Err(error);
        }
        self.sync()
    }

    /// A new file beside `name`, made with `O_EXCL|O_NOFOLLOW` (nothing planted there is
    /// reused) and mode 0600 until it is given away.
    fn create_temp(&self, name: &str) -> Result<(String, OwnedFd), OwnedDirError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        for _ in 0..100 {
            let temp_name = format!(
                ".{name}.{}.{}.tmp",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            );
            match rfs::openat2(
                &self.fd,
                temp_name.as_str(),
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
                BENEATH,
            ) {
                Ok(fd) => return Ok((temp_name, fd)),
                Err(rustix::io::Errno::EXIST) => continue,
                Err(errno) => return Err(refused(&self.path.join(&temp_name), "create", errno)),
            }
        }
        Err(OwnedDirError::Io {
            op: "create a temp file in",
            path: self.path.clone(),
            source: io::Error::new(io::ErrorKind::AlreadyExists, "100 names taken"),
        })
    }

    /// Owner and mode on the file's own descriptor: the directory's owner keeps their file.
    fn give_to_owner(&self, file: &OwnedFd, mode: u32) -> io::Result<()> {
        if rustix::process::geteuid().is_root() {
            rfs::fchown(
                file,
                Some(rfs::Uid::from_raw(self.uid)),
                Some(rfs::Gid::from_raw(self.gid)),
            )?;
        }
        rfs::fchmod(file, Mode::from_raw_mode(mode))?;
        Ok(())
    }

    fn sync(&self) -> Result<(), OwnedDirError> {
        // An O_PATH descriptor cannot be fsynced; "." reopened beneath it is the same directory.
        rfs::openat2(
            &self.fd,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            BENEATH,
        )
        .and_then(|dir| rfs::fsync(dir.as_fd()))
        .map_err(|errno| refused(&self.path, "fsync", errno))
    }

    fn child(&self, name: &str) -> Result<PathBuf, OwnedDirError> {
        let plain = !name.is_empty()
            && name != "."
            && name != ".."
            && !name.contains('/')
            && !name.contains('\0');
        if !plain {
            return Err(OwnedDirError::BadName { name: name.into() });
        }
        Ok(self.path.join(name))
    }
}

/// Moves the entry `name` of directory `from` into directory `to` (same filesystem), never
/// replacing anything there, and returns the moved entry's (device, inode). A symlink is moved
/// too but then refused: whoever resolves `to/name` later must find the file that was made.
pub fn move_entry(from: &Path, to: &Path, name: &str) -> Result<(u64, u64), OwnedDirError> {
    let from = OwnedDir::open(from, None)?;
    let to = OwnedDir::open(to, None)?;
    let path = to.child(name)?;
    from.child(name)?;
    rfs::renameat_with(&from.fd, name, &to.fd, name, rfs::RenameFlags::NOREPLACE)
        .map_err(|errno| refused(&path, "move into", errno))?;
    let stat = rfs::statat(&to.fd, name, rfs::AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|errno| refused(&path, "stat", errno))?;
    if rfs::FileType::from_raw_mode(stat.st_mode) == rfs::FileType::Symlink {
        return Err(OwnedDirError::Symlink { path });
    }
    Ok((stat.st_dev, stat.st_ino))
}

fn io_at<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> OwnedDirError + 'a {
    move |source| OwnedDirError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// `ELOOP` is what `RESOLVE_NO_SYMLINKS` and `O_NOFOLLOW` answer for a link: say so plainly.
fn refused(path: &Path, op: &'static str, errno: rustix::io::Errno) -> OwnedDirError {
    if errno == rustix::io::Errno::LOOP {
        return OwnedDirError::Symlink {
            path: path.to_path_buf(),
        };
    }
    io_at(op, path)(errno.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};

    #[test]
    fn reads_and_replaces_beneath_the_directory_keeping_the_mode() {
        let dir = tempfile::tempdir().unwrap();
        let owned = OwnedDir::open(dir.path(), None).unwrap();
        assert_eq!(owned.read("rules.toml", 100).unwrap(), None);
        owned.replace("rules.toml", b"one").unwrap();
        assert_eq!(owned.read("rules.toml", 100).unwrap().unwrap(), b"one");
        let file = dir.path().join("rules.toml");
        assert_eq!(std::fs::metadata(&file).unwrap().mode() & 0o777, 0o644);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        owned.replace("rules.toml", b"two").unwrap();
        assert_eq!(std::fs::read(&file).unwrap(), b"two");
        assert_eq!(std::fs::metadata(&file).unwrap().mode() & 0o777, 0o600);
        // No temp file is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(names.len(), 1);
        assert!(matches!(
            owned.read("rules.toml", 2),
            Err(OwnedDirError::TooLarge { .. })
        ));
    }

    #[test]
    fn a_moved_entry_is_named_by_its_inode_and_a_moved_symlink_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (dir.path().join("from"), dir.path().join("to"));
        std::fs::create_dir(&from).unwrap();
        std::fs::create_dir(&to).unwrap();
        std::fs::write(from.join("0"), "copy").unwrap();
        let inode = std::fs::metadata(from.join("0")).unwrap().ino();
        let (_, moved) = move_entry(&from, &to, "0").unwrap();
        assert_eq!(moved, inode);
        assert_eq!(std::fs::read(to.join("0")).unwrap(), b"copy");
        std::os::unix::fs::symlink("/etc/passwd", from.join("1")).unwrap();
        assert!(matches!(
            move_entry(&from, &to, "1"),
            Err(OwnedDirError::Symlink { .. })
        ));
        // Nothing already there is replaced.
        std::fs::write(from.join("0"), "again").unwrap();
        assert!(move_entry(&from, &to, "0").is_err());
        assert_eq!(std::fs::read(to.join("0")).unwrap(), b"copy");
    }

    #[test]
    fn refuses_symlinks_other_names_and_other_owners() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, "secret").unwrap();
        std::os::unix::fs::symlink(&target, dir.path().join("link")).unwrap();
        std::fs::create_dir(dir.path().join("real")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("real"), dir.path().join("dirlink")).unwrap();
        let owned = OwnedDir::open(dir.path(), None).unwrap();
        assert!(matches!(
            owned.read("link", 100),
            Err(OwnedDirError::Symlink { .. })
        ));
        assert!(matches!(
            owned.replace("link", b"x"),
            Err(OwnedDirError::Symlink { .. })
        ));
        assert_eq!(std::fs::read(&target).unwrap(), b"secret");
        assert!(matches!(
            owned.subdir("dirlink"),
            Err(OwnedDirError::Symlink { .. })
        ));
        assert!(owned.subdir("real").unwrap().is_some());
        assert!(owned.subdir("missing").unwrap().is_none());
        // A symlink anywhere on the way is refused too, not followed.
        assert!(matches!(
            OwnedDir::open(&dir.path().join("dirlink"), None),
            Err(OwnedDirError::Symlink { .. })
        ));
        std::fs::hard_link(&target, dir.path().join("real/linked")).unwrap();
        let real = owned.subdir("real").unwrap().unwrap();
        assert!(matches!(
            real.read("linked", 100),
            Err(OwnedDirError::HardLinked { .. })
        ));
        for name in ["", ".", "..", "a/b"] {
            assert!(matches!(
                owned.read(name, 1),
                Err(OwnedDirError::BadName { .. })
            ));
        }
        let me = std::fs::metadata(dir.path()).unwrap().uid();
        assert!(matches!(
            OwnedDir::open(dir.path(), Some(me + 1)),
            Err(OwnedDirError::WrongOwner { .. })
        ));
        std::fs::create_dir(dir.path().join("fifo-dir")).unwrap();
        let fifo = dir.path().join("fifo-dir/f");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: mkfifo on a NUL-terminated path we own.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        let sub = owned.subdir("fifo-dir").unwrap().unwrap();
        assert!(matches!(
            sub.read("f", 10),
            Err(OwnedDirError::NotAFile { .. })
        ));
    }
}
