//! The agent's config file, live. Every request reads the file as it is now, for the user who
//! asks (`~` is their home), so a workspace or template added since the agent started counts
//! at once and no change needs a restart (which would stop every session). A version that no
//! longer loads (cannot be read or parsed) does not lock the users out: their requests use the
//! last version that loaded, and are told where it is broken (not the message, which can quote
//! the file). SIGHUP, or a change of the file (looked at every second), makes the agent
//! check the file at once and log what it found, so a mistake shows in the log when it is
//! made rather than at the next session start. Sessions never depend on the file once started:
//! a reload, or a workspace removed from it, leaves running sessions running.

use std::{
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime},
};

use tokio::signal::unix::{SignalKind, signal};

use crate::config::{self, Config, ConfigError, Env};

/// The config text a session started with, in its (root's) session directory: a restarted
/// agent adopts the session under it, not under the file as it reads then, so that no
/// reload — not even one across a restart — changes a running session.
pub const SNAPSHOT: &str = "config.toml";

/// How often the file's metadata is compared (cheap: one `stat`).
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// The config as one request sees it.
pub struct ForUser {
    pub config: Config,
    /// The text it was read from (a session keeps it: [`SNAPSHOT`]).
    pub text: String,
    /// Set when the file as it reads now does not load and the last version that did was
    /// used instead: why, for the user to see.
    pub stale: Option<String>,
}

/// The file and the last version of it that loaded.
pub struct LiveConfig {
    path: PathBuf,
    last_good: Mutex<Option<Good>>,
    /// Numbers each read of the file, so that a slow reader never replaces the version a
    /// later read remembered with the older one it read.
    reads: AtomicU64,
}

#[derive(Clone)]
struct Good {
    text: String,
    /// When it was first seen loading (for messages).
    since: SystemTime,
    /// The read it came from.
    read: u64,
}

impl LiveConfig {
    /// `text`: the file as the agent read it at start; kept as the first version that loaded
    /// if it parses.
    pub fn new(path: PathBuf, text: Option<String>, env: &Env) -> LiveConfig {
        let text = text.filter(|text| config::load::parse(text, &path, env).is_ok());
        LiveConfig {
            last_good: Mutex::new(text.map(|text| Good {
                text,
                since: SystemTime::now(),
                read: 0,
            })),
            path,
            reads: AtomicU64::new(1),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The config for a user whose `~` is `env`'s home: the file as it reads now. Only when
    /// that version is broken for everyone (it cannot be read, or it does not parse) is the
    /// last version that loaded used instead, with why in [`ForUser::stale`]. A version that
    /// parses but fails this user's checks (a path of theirs) is their error: falling back
    /// then would let a user choose, by breaking their own path, to run under a version root
    /// replaced.
    pub fn for_user(&self, env: &Env) -> Result<ForUser, ConfigError> {
        let read = self.reads.fetch_add(1, Ordering::Relaxed);
        let broken = match std::fs::read_to_string(&self.path) {
            Ok(text) => match config::load::parse(&text, &self.path, env) {
                Ok(_) => {
                    let checked = config::load::check(&text, &self.path, env);
                    self.remember(text.clone(), read);
                    return checked.map(|config| ForUser {
                        config,
                        text,
                        stale: None,
                    });
                }
                Err(error) => error,
            },
            Err(reason) => ConfigError::Read {
                file: self.path.clone(),
                reason,
            },
        };
        let Some(good) = self.good() else {
            return Err(broken);
        };
        match config::load::check(&good.text, &self.path, env) {
            Ok(config) => Ok(ForUser {
                config,
                text: good.text.clone(),
                stale: Some(format!(
                    "{} does not load ({}); until it is fixed, the agent uses the version \
                     that loaded last ({})",
                    self.path.display(),
                    where_broken(&broken),
                    describe_time(good.since)
                )),
            }),
            Err(_) => Err(broken),
        }
    }

    fn good(&self) -> Option<Good> {
        self.last_good
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Keeps `text` (which parses) from read number `read` as the last version that loaded,
    /// unless a later read already gave one.
    fn remember(&self, text: String, read: u64) {
        let mut last = self
            .last_good
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match last.as_mut() {
            Some(good) if good.read > read => {}
            Some(good) if good.text == text => good.read = read,
            _ => {
                *last = Some(Good {
                    text,
                    since: SystemTime::now(),
                    read,
                });
            }
        }
    }

    /// Checks the file as it reads now (as `env`'s user: the agent's own) and logs the
    /// outcome; `restart_only` names what changed that only a restart applies.
    pub fn check_now(&self, env: &Env, restart_only: impl Fn(&Config) -> Vec<String>) {
        let read = self.reads.fetch_add(1, Ordering::Relaxed);
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(reason) => {
                tracing::warn!(
                    file = %self.path.display(),
                    %reason,
                    "the config cannot be read; new requests use the version that loaded last"
                );
                return;
            }
        };
        // Syntax, schema and rules: what is wrong for every user. Paths are each user's
        // (`~`) and are checked per request.
        match config::load::parse(&text, &self.path, env) {
            Ok(config) => {
                // Paths are checked per user; what fails for every user (a workspace under
                // /etc) shows here already.
                if let Err(error) = config::load::check(&text, &self.path, env) {
                    tracing::warn!(%error, "the config loads, but requests will fail");
                }
                tracing::info!(
                    file = %self.path.display(),
                    workspaces = config.workspaces.len(),
                    templates = config.container_profiles.len(),
                    "config reloaded: new requests use it, running sessions are unchanged"
                );
                for key in restart_only(&config) {
                    tracing::warn!(
                        file = %self.path.display(),
                        key,
                        "changed; this takes effect when the agent restarts"
                    );
                }
                self.remember(text, read);
            }
            Err(error) => tracing::warn!(
                %error,
                "the config does not load; new requests use the version that loaded last"
            ),
        }
    }
}

/// Watches `config` until the process ends: on SIGHUP and when the file changes (its inode,
/// size or modification time), [`LiveConfig::check_now`].
pub fn watch(
    config: Arc<LiveConfig>,
    env: Env,
    restart_only: impl Fn(&Config) -> Vec<String> + Send + 'static,
) -> std::io::Result<()> {
    let mut hangups = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        let mut seen = identity(config.path());
        loop {
            let hangup = tokio::select! {
                _ = hangups.recv() => true,
                () = tokio::time::sleep(LOOK_EVERY) => false,
            };
            let now = identity(config.path());
            if hangup || now != seen {
                seen = now;
                let config = config.clone();
                let env = env.clone();
                let restart_only = &restart_only;
                tokio::task::block_in_place(|| config.check_now(&env, restart_only));
            }
        }
    });
    Ok(())
}

/// What tells one version of the file from the next without reading it.
fn identity(path: &Path) -> Option<(u64, u64, u64, i64, i64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((
        meta.dev(),
        meta.ino(),
        meta.size(),
        meta.mtime(),
        meta.mtime_nsec(),
    ))
}

/// Where a broken version is broken, for users: file, line, column and key, never the
/// message (a parse error can quote the file's values, and the file is root's: a template's
/// `env` may hold a secret). The agent's log has the whole error.
fn where_broken(error: &ConfigError) -> String {
    match error {
        ConfigError::Invalid {
            file,
            line,
            column,
            key,
            ..
        } => match key {
            Some(key) => format!("{}:{line}:{column}, key `{key}`", file.display()),
            None => format!("{}:{line}:{column}", file.display()),
        },
        ConfigError::Read { reason, .. } => format!("cannot be read: {}", reason.kind()),
        _ => "see the agent's log".to_owned(),
    }
}

fn describe_time(time: SystemTime) -> String {
    let ago = SystemTime::now()
        .duration_since(time)
        .unwrap_or_default()
        .as_secs();
    match ago {
        0..=119 => format!("{ago} s ago"),
        120..=7199 => format!("{} min ago", ago / 60),
        _ => format!("{} h ago", ago / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "version = 1\n";

    fn env() -> Env {
        Env {
            home: Some("/nonexistent-home".into()),
            xdg_config_home: None,
        }
    }

    #[test]
    fn a_broken_version_falls_back_to_the_last_good_one_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("harness-hat.toml");
        std::fs::write(&path, GOOD).unwrap();
        let live = LiveConfig::new(path.clone(), Some(GOOD.to_owned()), &env());
        assert!(live.for_user(&env()).unwrap().stale.is_none());
        std::fs::write(&path, "version = 1\n[[workspaces]\n").unwrap();
        let stale = live.for_user(&env()).unwrap().stale.unwrap();
        assert!(stale.contains("harness-hat.toml:2:"), "{stale}");
        assert!(stale.contains("the version that loaded last"), "{stale}");
        // Where, not what: the message could quote the file.
        assert!(!stale.contains("expected"), "{stale}");
        // Fixed: the file as it reads is used again.
        std::fs::write(&path, GOOD).unwrap();
        assert!(live.for_user(&env()).unwrap().stale.is_none());
    }

    #[test]
    fn with_no_version_that_loaded_a_broken_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("harness-hat.toml");
        std::fs::write(&path, "version = 1\n[[workspaces]\n").unwrap();
        let live = LiveConfig::new(path, None, &env());
        assert!(live.for_user(&env()).is_err());
    }

    #[test]
    fn what_fails_for_one_user_in_the_version_that_loaded_is_their_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("harness-hat.toml");
        // A workspace in this user's `~/.ssh` is refused for them (and only for them, as `~`
        // is each user's home).
        let text = "version = 1\n[[workspaces]]\nname = \"w\"\ncanonical_path = \"~/.ssh/ws\"\n";
        std::fs::write(&path, text).unwrap();
        // A version that loaded before: the user still gets their error, not that version.
        let live = LiveConfig::new(path, Some(GOOD.to_owned()), &env());
        assert!(live.for_user(&env()).is_err());
    }

    #[test]
    fn a_slow_reader_never_puts_back_an_older_version() {
        let live = LiveConfig::new("/nonexistent".into(), None, &env());
        live.remember("second".into(), 2);
        live.remember("first".into(), 1);
        assert_eq!(live.good().unwrap().text, "second");
        live.remember("third".into(), 3);
        assert_eq!(live.good().unwrap().text, "third");
    }
}
