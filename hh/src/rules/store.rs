//! Rules files on disk: loading them, appending a "forever" rule safely, and a holder that
//! picks up a file changed on disk without a restart. The only module of [`super`] with I/O.
//!
//! - **Append** ([`append_rule`]): an exclusive `flock` on a sidecar lock file
//!   (`.harness-rules.toml.lock`; the rules file itself is replaced by rename, so a lock on it
//!   would not hold), then read, edit with toml_edit, write a temp file in the same directory,
//!   fsync it, rename it over the file, fsync the directory. Two sessions appending at once lose
//!   nothing. Every open uses `O_NOFOLLOW`, so a symlink planted where the rules file or the lock
//!   should be cannot redirect a write made by a root process. When root (the agent) writes, the
//!   new file and the lock go to the previous owner (or the directory's), so the user can still
//!   edit their rules and take the lock (a read descriptor is enough for `flock`).
//! - **Watch** ([`WatchedPolicy`]): whoever holds the rules asks for the current [`Policy`]; at
//!   most once per interval (1 s) it compares each file's identity (device, inode, mtime, length)
//!   with the last one seen and recompiles when one changed. A file that no longer parses keeps
//!   the last good policy, and the error is kept for the UI to show.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Read as _, Write as _},
    os::unix::fs::{MetadataExt as _, OpenOptionsExt as _},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use super::{
    file::{RulesFile, RulesFileError, append_rule as append_to_text, parse_rules_file},
    grammar::{Action, Rule, RuleError},
    policy::{Layer, LayerRules, Policy},
    trust::{MAX_RULES_FILE, TrustStore},
};

/// How long an append waits for the sidecar lock before it gives up with an error.
const LOCK_WAIT: Duration = Duration::from_secs(10);

/// How often a [`WatchedPolicy`] looks at its files at most.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// A rules file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{}: could not {action}: {source}", path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        source: io::Error,
    },
    #[error(transparent)]
    File(#[from] RulesFileError),
    #[error(transparent)]
    Trusted(Box<super::trust::TrustError>),
    #[error("{origin}: rule {index} `{text}`: {error}")]
    TemplateRule {
        origin: String,
        index: usize,
        text: String,
        error: RuleError,
    },
}

fn io_error<'a>(path: &'a Path, action: &'static str) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        action,
        source,
    }
}

/// Reads a file without following a symlink in its last component; `None` if it is missing.
fn read_nofollow(path: &Path) -> Result<Option<String>, StoreError> {
    // O_NONBLOCK: a FIFO planted at the path must not hang the reader (which may hold the
    // policy of every request); it is refused below as not a regular file.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path);
    let file = match file {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(io_error(path, "open")(error)),
    };
    let meta = file.metadata().map_err(io_error(path, "stat"))?;
    if !meta.is_file() {
        let refused = io::Error::new(io::ErrorKind::InvalidInput, "not a regular file");
        return Err(io_error(path, "read")(refused));
    }
    let mut text = String::new();
    file.take(MAX_RULES_FILE + 1)
        .read_to_string(&mut text)
        .map_err(io_error(path, "read"))?;
    if text.len() as u64 > MAX_RULES_FILE {
        let refused = io::Error::new(io::ErrorKind::InvalidData, "larger than 4 MiB");
        return Err(io_error(path, "read")(refused));
    }
    Ok(Some(text))
}

/// Loads a rules file; a missing file has no rules.
pub fn load_rules(path: &Path) -> Result<RulesFile, StoreError> {
    match read_nofollow(path)? {
        Some(text) => Ok(parse_rules_file(&text, path)?),
        None => Ok(RulesFile::default()),
    }
}

/// The sidecar lock file of a rules file: `.NAME.lock` beside it.
pub fn lock_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.lock"))
}

/// An exclusive `flock` held until dropped (closing the descriptor releases it).
struct Lock {
    _file: File,
}

impl Lock {
    fn acquire(path: &Path) -> Result<Lock, StoreError> {
        Self::acquire_within(path, LOCK_WAIT)
    }

    fn acquire_within(path: &Path, wait: Duration) -> Result<Lock, StoreError> {
        let create = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path);
        let file = match create {
            Ok(file) => {
                hand_to_owner_of_dir(&file, path);
                file
            }
            // Created by another user (the root agent, say): flock needs only a read descriptor.
            Err(error) if error.kind() == io::ErrorKind::PermissionDenied => OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(path)
                .map_err(io_error(path, "open the lock file"))?,
            Err(error) => return Err(io_error(path, "open the lock file")(error)),
        };
        // Non-blocking tries until a deadline: whoever can open the lock (the user, for a file
        // a root agent writes) must not be able to stall the writer forever.
        let deadline = Instant::now() + wait;
        loop {
            let result =
                rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive);
            let Err(errno) = result else {
                return Ok(Lock { _file: file });
            };
            let error = io::Error::from(errno);
            match error.kind() {
                io::ErrorKind::Interrupted => {}
                io::ErrorKind::WouldBlock if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                io::ErrorKind::WouldBlock => {
                    let held = io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("another process held it for {} ms", wait.as_millis()),
                    );
                    return Err(io_error(path, "lock")(held));
                }
                _ => return Err(io_error(path, "lock")(error)),
            }
        }
    }
}

/// Appends `rule` to the `action` list of the rules file at `path` (created if missing), under
/// the sidecar lock, atomically. Returns false when an equal rule was already there.
pub fn append_rule(path: &Path, action: Action, rule: &Rule) -> Result<bool, StoreError> {
    create_rules_dir(path)?;
    let _lock = Lock::acquire(&lock_path(path))?;
    let text = read_nofollow(path)?.unwrap_or_default();
    let Some(new_text) = append_to_text(&text, path, action, rule)? else {
        return Ok(false);
    };
    write_atomically(path, new_text.as_bytes())?;
    Ok(true)
}

/// Temp file in the same directory, fsync, rename over `path`, fsync the directory. Keeps the
/// old file's permission bits (0644 for a new file).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    // Keep the mode of a regular file only, without execute, setuid or setgid bits: a symlink
    // reports 0777, which must never become the mode of the file written in its place.
    let existing = fs::symlink_metadata(path)
        .ok()
        .filter(|meta| meta.file_type().is_file());
    let mode = existing.as_ref().map_or(0o644, |meta| meta.mode() & 0o666);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut attempt = 0u32;
    let (temp_path, mut temp) = loop {
        let temp_path = dir.join(format!(".{name}.{}.{attempt}.tmp", std::process::id()));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&temp_path)
        {
            Ok(file) => break (temp_path, file),
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists && attempt < 100 => {
                attempt += 1
            }
            Err(error) => return Err(io_error(&temp_path, "create")(error)),
        }
    };
    // Root (the agent) writing a user's file keeps it the user's: same owner as before, or the
    // directory's owner for a new file. Otherwise the user could no longer edit their rules.
    let owner = existing
        .as_ref()
        .map(|meta| (meta.uid(), meta.gid()))
        .or_else(|| fs::metadata(dir).ok().map(|meta| (meta.uid(), meta.gid())));
    let written = chown_if_root(&temp, owner)
        .and_then(|()| temp.write_all(bytes))
        .and_then(|()| temp.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode)))
        .and_then(|()| temp.sync_all());
    if let Err(error) = written {
        let _ = fs::remove_file(&temp_path);
        return Err(io_error(&temp_path, "write")(error));
    }
    drop(temp);
    if let Err(error) = fs::rename(&temp_path, path) {
        let _ = fs::remove_file(&temp_path);
        return Err(io_error(path, "replace")(error));
    }
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error(dir, "fsync the directory"))?;
    Ok(())
}

/// When running as root, gives `file` to `owner` (uid, gid).
/// A workspace's first rule creates its rules directory (`.hh/`): one level only (a missing
/// workspace stays an error), owned like the directory above it when root makes it.
fn create_rules_dir(path: &Path) -> Result<(), StoreError> {
    let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) else {
        return Ok(());
    };
    if fs::symlink_metadata(dir).is_ok() {
        return Ok(());
    }
    match fs::create_dir(dir) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
        Err(error) => return Err(io_error(dir, "create")(error)),
    }
    let owner = dir
        .parent()
        .and_then(|parent| fs::metadata(parent).ok())
        .map(|meta| (meta.uid(), meta.gid()));
    if let Ok(handle) = File::open(dir) {
        let _ = chown_if_root(&handle, owner);
    }
    Ok(())
}

fn chown_if_root(file: &File, owner: Option<(u32, u32)>) -> io::Result<()> {
    let root = rustix::process::geteuid().is_root();
    match owner {
        Some((uid, gid)) if root => std::os::unix::fs::fchown(file, Some(uid), Some(gid)),
        _ => Ok(()),
    }
}

/// A new lock file made by root belongs to the directory's owner, like the rules file.
fn hand_to_owner_of_dir(file: &File, path: &Path) {
    let owner = path
        .parent()
        .and_then(|dir| fs::metadata(dir).ok())
        .map(|meta| (meta.uid(), meta.gid()));
    if let Err(error) = chown_if_root(file, owner) {
        tracing::warn!(path = %path.display(), %error, "could not hand the lock file to the directory's owner");
    }
}

/// What a policy is built from: the global file, the workspace's files, and the template's
/// rules.
#[derive(Clone, Debug, Default)]
pub struct PolicySources {
    /// The global rules file (missing file = no rules).
    pub global: Option<PathBuf>,
    /// The workspace's rules files (missing file = no rules).
    pub workspace: Vec<PathBuf>,
    /// The template's allow rules and where they come from (e.g. `harness-hat.toml
    /// container_profiles.rust.starter_network_allowlist`).
    pub template: Option<(String, Vec<String>)>,
    /// The session's coding agent, whose built-in layer allows its API and denies its
    /// telemetry ([`crate::harness`]).
    pub harness: Option<crate::harness::Harness>,
    /// When set, each file's rules are its trusted copy in this store, never the file as it
    /// reads now ([`super::trust`]): what the agent's sessions run under. Only the deny rules
    /// of the file as it reads count besides: a tightening needs nobody's trust. `None`: the
    /// files are read live (`hh proxy`, `hh rules check`, run by a person for their own
    /// processes).
    pub trust: Option<Arc<TrustStore>>,
    /// With `trust`: the user whose directories the files must be in, to read them as they
    /// are (`None`: any, for root's sessions).
    pub owner: Option<u32>,
}

impl PolicySources {
    /// Each file layer's rules file, as configured (what errors and rule origins name).
    fn files(&self) -> impl Iterator<Item = (Layer, &Path)> {
        let global = self
            .global
            .iter()
            .map(|path| (Layer::Global, path.as_path()));
        let workspace = self
            .workspace
            .iter()
            .map(|path| (Layer::Workspace, path.as_path()));
        global.chain(workspace)
    }

    /// What a change shows in: each file, and its trusted copy when there is a store.
    fn read_paths(&self) -> impl Iterator<Item = PathBuf> + '_ {
        self.files().flat_map(|(_, path)| {
            let copy = self.trust.as_ref().map(|store| store.copy_path(path));
            std::iter::once(path.to_path_buf()).chain(copy)
        })
    }

    fn rules_of(&self, path: &Path) -> Result<RulesFile, StoreError> {
        match &self.trust {
            Some(store) => store
                .trusted_rules(path)
                .map_err(|error| StoreError::Trusted(Box::new(error))),
            None => load_rules(path),
        }
    }

    /// Reads every source and compiles the policy.
    pub fn load(&self) -> Result<Policy, StoreError> {
        let mut layers = Vec::new();
        for (layer, path) in self.files() {
            let source = path.display().to_string();
            layers.push(self.rules_of(path)?.into_layer(layer, &source));
            if let Some(store) = &self.trust {
                // The file's deny rules as it reads now: in force without trust. A file that
                // cannot be read or parsed adds none (its trusted version still counts).
                match store.live_denies(path, self.owner) {
                    Ok(denies) => layers.push(denies.into_layer(layer, &source)),
                    Err(error) => {
                        tracing::debug!(file = %path.display(), %error, "no deny rules read from the file as it is");
                    }
                }
            }
        }
        if let Some((source, rules)) = &self.template {
            let mut layer = LayerRules::new(Layer::Template, source.as_str());
            for (index, text) in rules.iter().enumerate() {
                let rule = Rule::parse(text).map_err(|error| StoreError::TemplateRule {
                    origin: source.clone(),
                    index,
                    text: text.clone(),
                    error,
                })?;
                layer.push(Action::Allow, rule, text.clone());
            }
            layers.push(layer);
        }
        if let Some(harness) = &self.harness {
            layers.push(harness.policy_layer());
        }
        Ok(Policy::new(layers))
    }
}

/// A file's identity as far as change detection goes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct FileId {
    dev: u64,
    ino: u64,
    mtime: i64,
    mtime_nsec: i64,
    len: u64,
}

fn identity(path: &Path) -> Option<FileId> {
    let meta = fs::symlink_metadata(path).ok()?;
    Some(FileId {
        dev: meta.dev(),
        ino: meta.ino(),
        mtime: meta.mtime(),
        mtime_nsec: meta.mtime_nsec(),
        len: meta.len(),
    })
}

struct WatchState {
    policy: Arc<Policy>,
    seen: Vec<Option<FileId>>,
    checked: Instant,
    error: Option<String>,
}

/// A [`Policy`] kept in step with its files (see the module doc). Shareable across threads.
pub struct WatchedPolicy {
    sources: PolicySources,
    interval: Duration,
    state: Mutex<WatchState>,
}

impl WatchedPolicy {
    /// Loads the policy; fails if a source is invalid now.
    pub fn load(sources: PolicySources) -> Result<WatchedPolicy, StoreError> {
        let seen = sources.read_paths().map(|path| identity(&path)).collect();
        let policy = Arc::new(sources.load()?);
        let state = WatchState {
            policy,
            seen,
            checked: Instant::now(),
            error: None,
        };
        Ok(WatchedPolicy {
            sources,
            interval: WATCH_INTERVAL,
            state: Mutex::new(state),
        })
    }

    /// Looks at the files at most once per `interval` (default [`WATCH_INTERVAL`]).
    pub fn with_interval(mut self, interval: Duration) -> WatchedPolicy {
        self.interval = interval;
        self
    }

    /// The current policy, reloaded first if a file changed since the last look.
    pub fn current(&self) -> Arc<Policy> {
        self.look(false)
    }

    /// The current policy, looking at the files now whatever the interval: for the writer of a
    /// rule (an approval "forever"), whose next request must see it.
    pub fn look_now(&self) -> Arc<Policy> {
        self.look(true)
    }

    fn look(&self, now: bool) -> Arc<Policy> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if now || state.checked.elapsed() >= self.interval {
            state.checked = Instant::now();
            let seen: Vec<Option<FileId>> = self
                .sources
                .read_paths()
                .map(|path| identity(&path))
                .collect();
            if seen != state.seen {
                match self.sources.load() {
                    Ok(policy) => {
                        tracing::info!(rules = policy.len(), "rules changed on disk; reloaded");
                        state.policy = Arc::new(policy);
                        state.error = None;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "rules changed on disk but do not load; keeping the last good rules");
                        state.error = Some(error.to_string());
                    }
                }
                state.seen = seen;
            }
        }
        state.policy.clone()
    }

    /// Why the last reload failed, while the files stay invalid.
    pub fn last_error(&self) -> Option<String> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .error
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{Request, Verdict};

    #[test]
    fn the_first_rule_of_a_workspace_creates_its_rules_directory_only() {
        let dir = tempfile::tempdir().unwrap();
        let rule = Rule::parse("domain=a.com").unwrap();
        let path = dir.path().join(".hh").join("harness-rules.toml");
        assert!(append_rule(&path, Action::Allow, &rule).unwrap());
        assert!(fs::read_to_string(&path).unwrap().contains("domain=a.com"));
        // One level only: a workspace that does not exist is not made up.
        let missing = dir
            .path()
            .join("gone")
            .join(".hh")
            .join("harness-rules.toml");
        assert!(append_rule(&missing, Action::Allow, &rule).is_err());
        assert!(!dir.path().join("gone").exists());
    }

    fn verdict(policy: &Policy, url: &str) -> Verdict {
        policy
            .decide(&Request::from_url("GET", url).unwrap())
            .verdict
    }

    #[test]
    fn a_lock_held_elsewhere_fails_the_append_after_the_wait_instead_of_hanging() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".harness-rules.toml.lock");
        let held = Lock::acquire(&path).unwrap();
        let started = Instant::now();
        let error = Lock::acquire_within(&path, Duration::from_millis(100))
            .err()
            .expect("the lock is held");
        assert!(error.to_string().contains("held it for 100 ms"), "{error}");
        assert!(started.elapsed() < Duration::from_secs(5));
        drop(held);
        assert!(Lock::acquire_within(&path, Duration::from_millis(100)).is_ok());
    }

    #[test]
    fn a_fifo_at_the_rules_path_is_refused_not_waited_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("harness-rules.toml");
        let c_path = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        let error = load_rules(&path).unwrap_err();
        assert!(error.to_string().contains("not a regular file"), "{error}");
    }

    #[test]
    fn replacing_a_symlink_never_writes_a_world_writable_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere.toml");
        fs::write(&target, "version = 1\n").unwrap();
        let path = dir.path().join("harness-rules.toml");
        std::os::unix::fs::symlink(&target, &path).unwrap();
        write_atomically(&path, b"version = 1\n").unwrap();
        let meta = fs::symlink_metadata(&path).unwrap();
        assert!(
            meta.file_type().is_file(),
            "the symlink was replaced, not followed"
        );
        assert_eq!(meta.mode() & 0o777, 0o644);
        assert_eq!(fs::read_to_string(&target).unwrap(), "version = 1\n");
    }

    #[test]
    fn appending_creates_the_file_and_keeps_what_was_there() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("harness-rules.toml");
        fs::write(&path, "# keep me\nversion = 1\n").unwrap();
        assert!(append_rule(&path, Action::Deny, &Rule::parse("domain=a.com").unwrap()).unwrap());
        assert!(!append_rule(&path, Action::Deny, &Rule::parse("domain=A.com").unwrap()).unwrap());
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# keep me\nversion = 1\n"), "{text}");
        assert_eq!(load_rules(&path).unwrap().deny.len(), 1);
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn a_symlink_in_place_of_the_rules_file_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere.toml");
        fs::write(&target, "").unwrap();
        let path = dir.path().join("harness-rules.toml");
        std::os::unix::fs::symlink(&target, &path).unwrap();
        assert!(append_rule(&path, Action::Allow, &Rule::parse("domain=a.com").unwrap()).is_err());
        assert_eq!(fs::read_to_string(&target).unwrap(), "");
    }

    #[test]
    fn a_root_writer_leaves_the_file_and_lock_to_their_owner() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("harness-rules.toml");
        let root = rustix::process::geteuid().is_root();
        let owner = if root {
            // A user's workspace: the directory and the file belong to uid/gid 4242.
            std::os::unix::fs::chown(dir.path(), Some(4242), Some(4242)).unwrap();
            fs::write(&path, "version = 1\n").unwrap();
            std::os::unix::fs::chown(&path, Some(4242), Some(4242)).unwrap();
            4242
        } else {
            fs::metadata(dir.path()).unwrap().uid()
        };
        append_rule(&path, Action::Allow, &Rule::parse("domain=a.com").unwrap()).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().uid(), owner);
        assert_eq!(fs::metadata(lock_path(&path)).unwrap().uid(), owner);
    }

    #[test]
    fn a_missing_file_has_no_rules() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            load_rules(&dir.path().join("none.toml")).unwrap(),
            RulesFile::default()
        );
    }

    #[test]
    fn a_file_changed_on_disk_is_picked_up_without_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("harness-rules.toml");
        fs::write(&path, "[network]\nallowlist = [\"domain=a.com\"]\n").unwrap();
        let sources = PolicySources {
            workspace: vec![path.clone()],
            ..PolicySources::default()
        };
        let watched = WatchedPolicy::load(sources)
            .unwrap()
            .with_interval(Duration::ZERO);
        assert_eq!(
            verdict(&watched.current(), "https://a.com/"),
            Verdict::Allow
        );

        // Another process appends a deny: the holder sees it on its next look.
        append_rule(&path, Action::Deny, &Rule::parse("domain=a.com").unwrap()).unwrap();
        assert_eq!(verdict(&watched.current(), "https://a.com/"), Verdict::Deny);

        // A broken edit keeps the last good rules and reports why.
        fs::write(&path, "[network]\nallowlist = [\"domain=a.com prt=1\"]\n").unwrap();
        assert_eq!(verdict(&watched.current(), "https://a.com/"), Verdict::Deny);
        assert!(watched.last_error().unwrap().contains("prt"));

        // Deleting the file removes its rules.
        fs::remove_file(&path).unwrap();
        assert_eq!(verdict(&watched.current(), "https://a.com/"), Verdict::Ask);
        assert_eq!(watched.last_error(), None);
    }

    #[test]
    fn with_a_trust_store_only_trusted_versions_are_in_force() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(TrustStore::open(&dir.path().join("trusted")).unwrap());
        let path = dir.path().join("harness-rules.toml");
        fs::write(&path, "[network]\nallowlist = [\"domain=a.com\"]\n").unwrap();
        let sources = PolicySources {
            workspace: vec![path.clone()],
            trust: Some(store.clone()),
            owner: None,
            ..PolicySources::default()
        };
        let watched = WatchedPolicy::load(sources)
            .unwrap()
            .with_interval(Duration::ZERO);
        // Never trusted: no rules.
        assert_eq!(verdict(&watched.current(), "https://a.com/"), Verdict::Ask);
        let seen = store.standing(&path, None).unwrap().live_sha256;
        store.trust(&path, None, &seen).unwrap();
        assert_eq!(
            verdict(&watched.current(), "https://a.com/"),
            Verdict::Allow
        );
        // An edit nobody trusted loosens nothing; its deny rules count at once.
        fs::write(
            &path,
            "[network]\nallowlist = [\"domain=*\"]\ndenylist = [\"domain=a.com path=/x\"]\n",
        )
        .unwrap();
        assert_eq!(verdict(&watched.current(), "https://b.com/"), Verdict::Ask);
        assert_eq!(
            verdict(&watched.current(), "https://a.com/"),
            Verdict::Allow
        );
        assert_eq!(
            verdict(&watched.current(), "https://a.com/x"),
            Verdict::Deny
        );
        // A "forever" answer is in force at once.
        let rule = Rule::parse("domain=c.com").unwrap();
        store.append(&path, None, Action::Allow, &rule).unwrap();
        assert_eq!(
            verdict(&watched.current(), "https://c.com/"),
            Verdict::Allow
        );
        assert_eq!(verdict(&watched.current(), "https://b.com/"), Verdict::Ask);
    }

    #[test]
    fn the_holder_looks_at_most_once_per_interval() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("harness-rules.toml");
        let sources = PolicySources {
            workspace: vec![path.clone()],
            ..PolicySources::default()
        };
        let watched = WatchedPolicy::load(sources)
            .unwrap()
            .with_interval(Duration::from_secs(3600));
        fs::write(&path, "[network]\ndenylist = [\"domain=a.com\"]\n").unwrap();
        assert_eq!(verdict(&watched.current(), "https://a.com/"), Verdict::Ask);
    }

    #[test]
    fn template_rules_are_an_allow_layer_and_bad_ones_are_named() {
        let sources = PolicySources {
            template: Some(("profile rust".into(), vec!["domain=*.crates.io".into()])),
            ..PolicySources::default()
        };
        assert_eq!(
            verdict(&sources.load().unwrap(), "https://static.crates.io/"),
            Verdict::Allow
        );
        let sources = PolicySources {
            template: Some((
                "profile rust".into(),
                vec!["domain=a.com".into(), "domian=x".into()],
            )),
            ..PolicySources::default()
        };
        let error = sources.load().unwrap_err().to_string();
        assert!(
            error.starts_with("profile rust: rule 1 `domian=x`"),
            "{error}"
        );
    }
}
