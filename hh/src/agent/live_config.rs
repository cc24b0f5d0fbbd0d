//! The agent's config file, live. Every request reads the file as it is now, for the user who
//! asks (`~` is their home), so a workspace or template added since the agent started counts
//! at once and no change needs a restart (which would stop every session). A version that no
//! longer loads does not lock the users out: their requests use the last version that loaded,
//! and are told so. SIGHUP, or a change of the file (looked at every second), makes the agent
//! check the file at once and log what it found, so a mistake shows in the log when it is
//! made rather than at the next session start. Sessions never depend on the file once started:
//! a reload, or a workspace removed from it, leaves running sessions running.

use std::{
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use tokio::signal::unix::{SignalKind, signal};

use crate::config::{self, Config, ConfigError, Env};

/// How often the file's metadata is compared (cheap: one `stat`).
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// The config as one request sees it.
pub struct ForUser {
    pub config: Config,
    /// Set when the file as it reads now does not load and the last version that did was
    /// used instead: why, for the user to see.
    pub stale: Option<String>,
}

/// The file and the last version of it that loaded.
pub struct LiveConfig {
    path: PathBuf,
    last_good: Mutex<Option<Good>>,
}

#[derive(Clone)]
struct Good {
    text: String,
    /// When it was first seen loading (for messages).
    since: SystemTime,
}

impl LiveConfig {
    /// `text`: the file as the agent read it at start (it loaded, or the agent would not run).
    pub fn new(path: PathBuf, text: Option<String>) -> LiveConfig {
        LiveConfig {
            path,
            last_good: Mutex::new(text.map(|text| Good {
                text,
                since: SystemTime::now(),
            })),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The config for a user whose `~` is `env`'s home: the file as it reads now, or, when
    /// that version does not load but the last one that did loads for this user, that one
    /// (with why in [`ForUser::stale`]). An error when neither loads.
    pub fn for_user(&self, env: &Env) -> Result<ForUser, ConfigError> {
        let now = std::fs::read_to_string(&self.path).map_err(|reason| ConfigError::Read {
            file: self.path.clone(),
            reason,
        });
        let error = match now {
            Ok(text) => match config::load::check(&text, &self.path, env) {
                Ok(config) => {
                    self.remember(text);
                    return Ok(ForUser {
                        config,
                        stale: None,
                    });
                }
                Err(error) => (error, Some(text)),
            },
            Err(error) => (error, None),
        };
        let (error, text_now) = error;
        let Some(good) = self.good() else {
            return Err(error);
        };
        // The same text failing for this user is about this user (a path of theirs), not a
        // broken file: no older version can answer for it.
        if text_now.as_deref() == Some(good.text.as_str()) {
            return Err(error);
        }
        match config::load::check(&good.text, &self.path, env) {
            Ok(config) => Ok(ForUser {
                config,
                stale: Some(format!(
                    "{error}; until it is fixed, the agent uses the version of {} that loaded \
                     last ({})",
                    self.path.display(),
                    describe_time(good.since)
                )),
            }),
            Err(_) => Err(error),
        }
    }

    fn good(&self) -> Option<Good> {
        self.last_good
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn remember(&self, text: String) {
        let mut last = self
            .last_good
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if last.as_ref().is_none_or(|good| good.text != text) {
            *last = Some(Good {
                text,
                since: SystemTime::now(),
            });
        }
    }

    /// Checks the file as it reads now (as `env`'s user: the agent's own) and logs the
    /// outcome; `restart_only` names what changed that only a restart applies.
    pub fn check_now(&self, env: &Env, restart_only: impl Fn(&Config) -> Vec<String>) {
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
                self.remember(text);
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
        let live = LiveConfig::new(path.clone(), None);
        assert!(live.for_user(&env()).unwrap().stale.is_none());
        std::fs::write(&path, "version = 1\n[[workspaces]\n").unwrap();
        let stale = live.for_user(&env()).unwrap().stale.unwrap();
        assert!(stale.contains("harness-hat.toml:2:"), "{stale}");
        assert!(stale.contains("the version of"), "{stale}");
        // Fixed: the file as it reads is used again.
        std::fs::write(&path, GOOD).unwrap();
        assert!(live.for_user(&env()).unwrap().stale.is_none());
    }

    #[test]
    fn with_no_version_that_loaded_a_broken_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("harness-hat.toml");
        std::fs::write(&path, "version = 1\n[[workspaces]\n").unwrap();
        let live = LiveConfig::new(path, None);
        assert!(live.for_user(&env()).is_err());
    }

    #[test]
    fn what_fails_for_one_user_in_the_version_that_loaded_is_their_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("harness-hat.toml");
        // A workspace in this user's `~/.ssh` is refused for them (and only for them, as `~`
        // is each user's home): the same text cannot answer for them.
        let text = "version = 1\n[[workspaces]]\nname = \"w\"\ncanonical_path = \"~/.ssh/ws\"\n";
        std::fs::write(&path, text).unwrap();
        let live = LiveConfig::new(path, Some(text.to_owned()));
        assert!(live.for_user(&env()).is_err());
    }
}
