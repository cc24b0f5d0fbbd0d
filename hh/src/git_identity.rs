//! The user's git identity in their sessions (`git_identity`, on by default): the client reads
//! `user.name` and `user.email` as the user (`git config`, in the workspace, so its own config
//! counts) and sends them as git's author and committer variables, which the agent passes to
//! the session only under these four names and only when they are plain text. Commits made in a
//! session are then the user's, as on the host, without the host's `~/.gitconfig` (which can
//! run programs: `core.fsmonitor`, credential helpers) in the session.

use std::{
    collections::BTreeMap,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

/// The variables a session's git takes the identity from.
pub const VARIABLES: [&str; 4] = [
    "GIT_AUTHOR_NAME",
    "GIT_AUTHOR_EMAIL",
    "GIT_COMMITTER_NAME",
    "GIT_COMMITTER_EMAIL",
];

/// The longest value passed.
const MAX_VALUE: usize = 256;

/// How long one `git config` may take: the workspace's config is the session's to write (a
/// FIFO where git reads would hold every start), so git gets this long and is then killed.
const GIT_TIMEOUT: Duration = Duration::from_secs(3);

/// Whether `value` may be passed: short, and no control character (a newline would be a second
/// header line in a commit object).
pub fn is_plain(value: &str) -> bool {
    !value.is_empty() && value.len() <= MAX_VALUE && !value.chars().any(char::is_control)
}

/// The user's identity as git variables; empty where git is missing or has none.
pub fn env(workspace: Option<&Path>) -> BTreeMap<String, String> {
    let read = |key: &str| {
        let value = output_within(config_command(workspace, key), GIT_TIMEOUT)?;
        let value = value.trim_end_matches('\n');
        is_plain(value).then(|| value.to_owned())
    };
    let mut env = BTreeMap::new();
    if let Some(name) = read("user.name") {
        env.insert("GIT_AUTHOR_NAME".to_owned(), name.clone());
        env.insert("GIT_COMMITTER_NAME".to_owned(), name);
    }
    if let Some(email) = read("user.email") {
        env.insert("GIT_AUTHOR_EMAIL".to_owned(), email.clone());
        env.insert("GIT_COMMITTER_EMAIL".to_owned(), email);
    }
    env
}

/// `git config` for `key` in `workspace` (so that its own config counts), without includes: a
/// config the session wrote must not send git to read other files.
fn config_command(workspace: Option<&Path>, key: &str) -> Command {
    let mut git = Command::new("git");
    if let Some(dir) = workspace.filter(|dir| dir.is_dir()) {
        git.arg("-C").arg(dir);
    }
    git.args(["config", "--no-includes", "--get", key])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    git
}

/// What `command` prints when it succeeds within `limit`; it is killed after that.
fn output_within(mut command: Command, limit: Duration) -> Option<String> {
    use std::io::Read as _;
    let mut child = command.spawn().ok()?;
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    };
    let mut out = String::new();
    // A line of config: small enough for the pipe, read once the process is done.
    child.stdout.take()?.read_to_string(&mut out).ok()?;
    status.success().then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workspace_config_that_hangs_git_or_includes_another_file_gives_nothing_of_it() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path();
        std::fs::create_dir_all(repo.join(".git")).unwrap();
        std::fs::write(repo.join(".git/HEAD"), "ref: refs/heads/main\n").unwrap();
        std::fs::create_dir_all(repo.join(".git/objects")).unwrap();
        std::fs::create_dir_all(repo.join(".git/refs")).unwrap();
        std::fs::write(repo.join("included"), "[user]\n\tname = Included Name\n").unwrap();
        std::fs::write(
            repo.join(".git/config"),
            "[include]\n\tpath = ../included\n",
        )
        .unwrap();
        // The repository's own config is read (not the test's user's).
        let read = |key: &str| {
            let mut git = config_command(Some(repo), key);
            git.env("HOME", repo).env("GIT_CONFIG_NOSYSTEM", "1");
            output_within(git, GIT_TIMEOUT)
        };
        assert_eq!(read("include.path").as_deref(), Some("../included\n"));
        assert_eq!(read("user.name"), None, "an include was followed");
        // A command that does not end in time gives nothing, promptly.
        let started = Instant::now();
        let mut sleeper = Command::new("sleep");
        sleeper.arg("30").stdout(Stdio::piped());
        assert_eq!(output_within(sleeper, Duration::from_millis(200)), None);
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn only_plain_short_text_is_an_identity() {
        assert!(is_plain("Ada Lovelace"));
        assert!(is_plain("ada@example.test"));
        for bad in ["", "a\nb", "a\rb", "x\u{7}", &"a".repeat(300)] {
            assert!(!is_plain(bad), "{bad:?}");
        }
    }
}
