//! Trust on change: the rules in force are the last version of each rules file a person trusted,
//! never the file as it reads now.
//!
//! A workspace's `harness-rules.toml` lives in the workspace, which its sessions write and which
//! `git pull`, `git stash` or an editor change under everyone's feet. So the agent keeps, in its
//! own state directory (root's, 0700), a copy of each rules file as a person last trusted it; a
//! session's policy is compiled from those copies ([`super::PolicySources::trust`]). A change to
//! the file that hh did not write takes no effect until a person trusts it (`hh rules trust`,
//! which shows the diff first), like direnv's `allow`. A "forever" answer appends its rule to the
//! file and to the trusted copy in one step ([`TrustStore::append`]), so it takes effect at once
//! without trusting anything else that changed in the file meanwhile.
//!
//! The live file is read by root on a user's behalf, through [`OwnedDir`]: its directory must
//! belong to that user, and nothing on the way may be a symlink.

use std::{
    fs::File,
    io,
    os::unix::ffi::OsStrExt as _,
    path::{Path, PathBuf},
};

use super::{
    diff::line_diff,
    file::{RulesFile, RulesFileError, append_rule as append_to_text, parse_rules_file},
    grammar::{Action, Rule},
};
use crate::{
    private_fs::{PrivateDir, PrivateFsError},
    sys::owned_dir::{OwnedDir, OwnedDirError},
};

/// The largest rules file read; a policy is a few kilobytes, so more is a mistake or an attack.
pub const MAX_RULES_FILE: u64 = 4 << 20;

/// Why a rules file could not be read, trusted or written.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error(transparent)]
    Store(#[from] PrivateFsError),
    #[error(transparent)]
    Dir(#[from] OwnedDirError),
    #[error(transparent)]
    File(#[from] RulesFileError),
    #[error("{}: not UTF-8 text", .path.display())]
    NotText { path: PathBuf },
    #[error("{}: cannot lock the trust store: {source}", .path.display())]
    Lock { path: PathBuf, source: io::Error },
    #[error(
        "{} changed since it was shown (sha256 now {now}); look again with `hh rules status`",
        .path.display()
    )]
    Moved { path: PathBuf, now: String },
    #[error("{} has no directory to live in", .path.display())]
    NoDirectory { path: PathBuf },
}

/// Where a rules file stands against its trusted copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Standing {
    /// The rules file, as configured.
    pub live: PathBuf,
    /// Whether the file reads as the trusted copy (a missing file reads as an empty one).
    pub in_force: bool,
    /// SHA-256 of the file as it reads now (of nothing, when missing): what a trust names.
    pub live_sha256: String,
    /// Whether a person ever trusted a version of this file.
    pub ever_trusted: bool,
    /// From the trusted version to the file as it reads now; empty when in force.
    pub diff: String,
    /// Why the file as it reads now cannot be trusted (it does not parse).
    pub error: Option<String>,
}

/// What [`TrustStore::append`] did.
#[derive(Debug)]
pub struct Appended {
    /// The trusted rules of the file as they now are (what decides).
    pub rules: RulesFile,
    /// Whether the trusted copy changed (false: an equal rule was there).
    pub changed: bool,
    /// Why the live file could not take the rule too, when it could not.
    pub file_note: Option<String>,
}

/// The agent's trusted copies of rules files, one per file, in a private directory.
#[derive(Debug)]
pub struct TrustStore {
    dir: PrivateDir,
}

impl TrustStore {
    /// Opens (or creates, 0700) the store at `dir`.
    pub fn open(dir: &Path) -> Result<TrustStore, TrustError> {
        Ok(TrustStore {
            dir: PrivateDir::open_or_create(dir)?,
        })
    }

    /// Where the trusted copy of `live` is kept: what a policy reads and watches.
    pub fn copy_path(&self, live: &Path) -> PathBuf {
        self.dir.path().join(copy_name(live))
    }

    /// The trusted text of `live`; `None` when no person ever trusted a version of it.
    pub fn trusted(&self, live: &Path) -> Result<Option<String>, TrustError> {
        match self.dir.read_private(&copy_name(live))? {
            Some(bytes) => Ok(Some(text(bytes, &self.copy_path(live))?)),
            None => Ok(None),
        }
    }

    /// The trusted rules of `live` (none when never trusted), errors naming `live`.
    pub fn trusted_rules(&self, live: &Path) -> Result<RulesFile, TrustError> {
        let text = self.trusted(live)?.unwrap_or_default();
        Ok(parse_rules_file(&text, live)?)
    }

    /// The deny rules of `live` as it reads now (nothing else of it): a tightening, in force
    /// without anyone's trust. An error when it cannot be read or does not parse.
    pub fn live_denies(&self, live: &Path, owner: Option<u32>) -> Result<RulesFile, TrustError> {
        let text = read_live(live, owner)?.unwrap_or_default();
        let rules = parse_rules_file(&text, live)?;
        Ok(RulesFile {
            allow: Vec::new(),
            deny: rules.deny,
        })
    }

    /// Where `live` stands; `owner`: the user its directory must belong to (any when `None`).
    pub fn standing(&self, live: &Path, owner: Option<u32>) -> Result<Standing, TrustError> {
        let now = read_live(live, owner)?;
        let trusted = self.trusted(live)?;
        Ok(standing_of(live, now.as_deref(), trusted.as_deref()))
    }

    /// Trusts `live` as it reads now, provided that is the version whose SHA-256 a person was
    /// shown (`seen`); a file that does not parse is never trusted.
    pub fn trust(
        &self,
        live: &Path,
        owner: Option<u32>,
        seen: &str,
    ) -> Result<Standing, TrustError> {
        let _lock = self.lock()?;
        let now = read_live(live, owner)?.unwrap_or_default();
        let sha = sha256_hex(now.as_bytes());
        if sha != seen {
            return Err(TrustError::Moved {
                path: live.to_path_buf(),
                now: sha,
            });
        }
        parse_rules_file(&now, live)?;
        self.dir.replace(&copy_name(live), now.as_bytes(), 0o600)?;
        Ok(standing_of(live, Some(&now), Some(&now)))
    }

    /// Appends `rule` to the `action` list of `live`'s trusted copy and of `live` itself
    /// (created if missing), under the store's lock: the rule is in force at once, and
    /// whatever else changed in the file stays untrusted. The trusted copy comes first: a live
    /// file a session broke (unparsable, replaced by a directory) must not lose a person's
    /// answer; the file is then left as it is and the returned note says why. Returns the
    /// trusted rules as they now are, whether the trusted copy changed, and that note.
    pub fn append(
        &self,
        live: &Path,
        owner: Option<u32>,
        action: Action,
        rule: &Rule,
    ) -> Result<Appended, TrustError> {
        let _lock = self.lock()?;
        // The owner check comes first, for the copy as well: a user may only add to files of
        // a directory they own.
        let (dir, name) = open_parent(live, owner)?;
        let trusted = self.trusted(live)?.unwrap_or_default();
        let changed = match append_to_text(&trusted, live, action, rule)? {
            Some(appended) => {
                self.dir
                    .replace(&copy_name(live), appended.as_bytes(), 0o600)?;
                true
            }
            None => false,
        };
        let written = (|| -> Result<(), TrustError> {
            let now = match dir.read(name, MAX_RULES_FILE)? {
                Some(bytes) => text(bytes, live)?,
                None => String::new(),
            };
            if let Some(appended) = append_to_text(&now, live, action, rule)? {
                dir.replace(name, appended.as_bytes())?;
            }
            Ok(())
        })();
        let file_note = written.err().map(|error| {
            tracing::warn!(file = %live.display(), %error, "rule in force, but not written to the file");
            format!("in force, but {} was left as it is: {error}", live.display())
        });
        Ok(Appended {
            rules: self.trusted_rules(live)?,
            changed,
            file_note,
        })
    }

    /// Held while a copy is read, compared and replaced: two answers at once lose nothing.
    fn lock(&self) -> Result<File, TrustError> {
        let file = self.dir.open_private_append("trust.lock")?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive).map_err(|errno| {
            TrustError::Lock {
                path: self.dir.path().to_path_buf(),
                source: errno.into(),
            }
        })?;
        Ok(file)
    }
}

fn standing_of(live: &Path, now: Option<&str>, trusted: Option<&str>) -> Standing {
    let now_text = now.unwrap_or("");
    let trusted_text = trusted.unwrap_or("");
    let error = parse_rules_file(now_text, live)
        .err()
        .map(|error| error.to_string());
    Standing {
        live: live.to_path_buf(),
        in_force: now_text == trusted_text,
        live_sha256: sha256_hex(now_text.as_bytes()),
        ever_trusted: trusted.is_some(),
        diff: line_diff(trusted_text, now_text),
        error,
    }
}

/// The live file as it reads now, through its directory's descriptor; `None` when the file or
/// its directory is missing.
fn read_live(live: &Path, owner: Option<u32>) -> Result<Option<String>, TrustError> {
    let (dir, name) = match open_parent(live, owner) {
        Ok(opened) => opened,
        Err(TrustError::Dir(OwnedDirError::Io { source, .. }))
            if source.kind() == io::ErrorKind::NotFound =>
        {
            return Ok(None);
        }
        Err(error) => return Err(error),
    };
    match dir.read(name, MAX_RULES_FILE)? {
        Some(bytes) => Ok(Some(text(bytes, live)?)),
        None => Ok(None),
    }
}

fn open_parent(live: &Path, owner: Option<u32>) -> Result<(OwnedDir, &str), TrustError> {
    let no_dir = || TrustError::NoDirectory {
        path: live.to_path_buf(),
    };
    let parent = live
        .parent()
        .filter(|parent| parent.is_absolute())
        .ok_or_else(no_dir)?;
    let name = live
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(no_dir)?;
    Ok((OwnedDir::open(parent, owner)?, name))
}

fn text(bytes: Vec<u8>, path: &Path) -> Result<String, TrustError> {
    String::from_utf8(bytes).map_err(|_| TrustError::NotText {
        path: path.to_path_buf(),
    })
}

/// One copy per configured path: the first 32 hex digits of the path's SHA-256.
fn copy_name(live: &Path) -> String {
    let digest = sha256_hex(live.as_os_str().as_bytes());
    format!("{}.toml", &digest[..32])
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    digest
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &str = "# team rules\n[network]\nallowlist = [\"domain=a.test\"]\n";

    fn store() -> (tempfile::TempDir, TrustStore, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let store = TrustStore::open(&dir.path().join("trusted")).unwrap();
        std::fs::create_dir(dir.path().join("ws")).unwrap();
        let live = dir.path().join("ws/harness-rules.toml");
        (dir, store, live)
    }

    #[test]
    fn a_file_is_in_force_only_as_trusted() {
        let (_dir, store, live) = store();
        // Nothing on either side: in force, as no rules.
        let standing = store.standing(&live, None).unwrap();
        assert!(standing.in_force && !standing.ever_trusted, "{standing:?}");
        std::fs::write(&live, RULES).unwrap();
        let standing = store.standing(&live, None).unwrap();
        assert!(!standing.in_force, "{standing:?}");
        assert!(standing.diff.contains("+ allowlist"), "{}", standing.diff);
        assert!(store.trusted_rules(&live).unwrap().allow.is_empty());
        // Trusting names the version shown; another one is refused.
        let wrong = store.trust(&live, None, &sha256_hex(b"other"));
        assert!(matches!(wrong, Err(TrustError::Moved { .. })), "{wrong:?}");
        let trusted = store.trust(&live, None, &standing.live_sha256).unwrap();
        assert!(trusted.in_force);
        assert_eq!(store.trusted_rules(&live).unwrap().allow.len(), 1);
        // A later edit is not in force; the trusted copy is.
        std::fs::write(&live, RULES.replace("a.test", "*")).unwrap();
        let standing = store.standing(&live, None).unwrap();
        assert!(!standing.in_force);
        assert!(standing.diff.contains("- allowlist = [\"domain=a.test\"]"));
        assert!(standing.diff.contains("+ allowlist = [\"domain=*\"]"));
        let rules = store.trusted_rules(&live).unwrap();
        assert_eq!(rules.allow[0].rule.to_string(), "domain=a.test");
    }

    #[test]
    fn an_unparsable_file_is_never_trusted() {
        let (_dir, store, live) = store();
        std::fs::write(&live, "[network\n").unwrap();
        let standing = store.standing(&live, None).unwrap();
        assert!(standing.error.is_some(), "{standing:?}");
        let refused = store.trust(&live, None, &standing.live_sha256);
        assert!(matches!(refused, Err(TrustError::File(_))), "{refused:?}");
        assert_eq!(store.trusted(&live).unwrap(), None);
    }

    #[test]
    fn append_puts_the_rule_in_force_without_trusting_other_edits() {
        let (_dir, store, live) = store();
        std::fs::write(&live, RULES).unwrap();
        let seen = store.standing(&live, None).unwrap().live_sha256;
        store.trust(&live, None, &seen).unwrap();
        // An untrusted edit, then a "forever" answer.
        std::fs::write(&live, format!("{RULES}# from the session\n")).unwrap();
        std::fs::write(
            &live,
            RULES.replace("[\"domain=a.test\"]", "[\"domain=a.test\", \"domain=*\"]"),
        )
        .unwrap();
        let rule = Rule::parse("domain=b.test").unwrap();
        let appended = store.append(&live, None, Action::Allow, &rule).unwrap();
        assert!(appended.changed && appended.file_note.is_none());
        let names: Vec<String> = appended
            .rules
            .allow
            .iter()
            .map(|w| w.rule.to_string())
            .collect();
        assert_eq!(names, ["domain=a.test", "domain=b.test"]);
        let now = std::fs::read_to_string(&live).unwrap();
        assert!(
            now.contains("domain=*") && now.contains("domain=b.test"),
            "{now}"
        );
        assert!(now.starts_with("# team rules"), "{now}");
        assert!(!store.standing(&live, None).unwrap().in_force);
        // Appending again changes nothing.
        assert!(
            !store
                .append(&live, None, Action::Allow, &rule)
                .unwrap()
                .changed
        );
        // A file the session broke does not lose a person's answer: in force, and said so.
        std::fs::write(&live, "[network\n").unwrap();
        let rule = Rule::parse("domain=c.test").unwrap();
        let appended = store.append(&live, None, Action::Allow, &rule).unwrap();
        assert!(appended.changed, "{appended:?}");
        assert!(appended.file_note.unwrap().contains("left as it is"));
        assert_eq!(appended.rules.allow.len(), 3);
        assert_eq!(std::fs::read_to_string(&live).unwrap(), "[network\n");
    }

    #[test]
    fn a_symlinked_rules_file_or_directory_is_refused() {
        let (dir, store, live) = store();
        let elsewhere = dir.path().join("elsewhere.toml");
        std::fs::write(&elsewhere, RULES).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &live).unwrap();
        let rule = Rule::parse("domain=b.test").unwrap();
        assert!(matches!(
            store.standing(&live, None),
            Err(TrustError::Dir(OwnedDirError::Symlink { .. }))
        ));
        // The person's rule is in force; the file it would go to is not written through.
        let appended = store.append(&live, None, Action::Allow, &rule).unwrap();
        assert!(appended.file_note.unwrap().contains("symbolic link"));
        assert_eq!(std::fs::read_to_string(&elsewhere).unwrap(), RULES);
        // A symlinked directory on the way refuses the append as a whole.
        let linked_dir = dir.path().join("linked-ws");
        std::os::unix::fs::symlink(dir.path().join("ws"), &linked_dir).unwrap();
        assert!(matches!(
            store.append(
                &linked_dir.join("harness-rules.toml"),
                None,
                Action::Allow,
                &rule
            ),
            Err(TrustError::Dir(OwnedDirError::Symlink { .. }))
        ));
    }
}
