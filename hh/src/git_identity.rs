//! The user's git identity in their sessions (`git_identity`, on by default): the client reads
//! `user.name` and `user.email` as the user (`git config`, in the workspace, so its own config
//! counts) and sends them as git's author and committer variables, which the agent passes to
//! the session only under these four names and only when they are plain text. Commits made in a
//! session are then the user's, as on the host, without the host's `~/.gitconfig` (which can
//! run programs: `core.fsmonitor`, credential helpers) in the session.

use std::{collections::BTreeMap, path::Path, process::Command};

/// The variables a session's git takes the identity from.
pub const VARIABLES: [&str; 4] = [
    "GIT_AUTHOR_NAME",
    "GIT_AUTHOR_EMAIL",
    "GIT_COMMITTER_NAME",
    "GIT_COMMITTER_EMAIL",
];

/// The longest value passed.
const MAX_VALUE: usize = 256;

/// Whether `value` may be passed: short, and no control character (a newline would be a second
/// header line in a commit object).
pub fn is_plain(value: &str) -> bool {
    !value.is_empty() && value.len() <= MAX_VALUE && !value.chars().any(char::is_control)
}

/// The user's identity as git variables; empty where git is missing or has none.
pub fn env(workspace: Option<&Path>) -> BTreeMap<String, String> {
    let read = |key: &str| {
        let mut git = Command::new("git");
        if let Some(dir) = workspace.filter(|dir| dir.is_dir()) {
            git.arg("-C").arg(dir);
        }
        let output = git.args(["config", "--get", key]).output().ok()?;
        let value = String::from_utf8(output.stdout).ok()?;
        let value = value.trim_end_matches('\n');
        (output.status.success() && is_plain(value)).then(|| value.to_owned())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_short_text_is_an_identity() {
        assert!(is_plain("Ada Lovelace"));
        assert!(is_plain("ada@example.test"));
        for bad in ["", "a\nb", "a\rb", "x\u{7}", &"a".repeat(300)] {
            assert!(!is_plain(bad), "{bad:?}");
        }
    }
}
