//! git mode (`mode = "git"`, `hh session start --git`): a session works on its own clone of
//! the workspace's repository, so the host's `.git` — its config, hooks, `commondir`,
//! `modules/` and everything else git reads as instructions — is never in the session.
//!
//! The client makes the clone as the user (`git clone --no-local --single-branch`: objects
//! copied through upload-pack, no hard link shared with the host's repository, only the branch
//! checked out) under `clones_dir`, points its `origin` at the repository's own `origin` (less
//! any password in it), and records where it started (`refs/hh/base`). The agent mounts the
//! clone where the workspace would be.
//!
//! From then on the clone is the session's, and untrusted: not only its config and hooks but
//! what its `.git` *is* (a symlink or a gitfile to another of the user's repositories, a
//! `commondir` or `objects/info/alternates` naming one, a FIFO) is the session's to choose. So
//! no host git ever reads it. What runs in it runs in the session ([`session_command`]:
//! snapshots, restores, diffs, the commit on exit), as the session's user, under a time limit.
//! The work comes back as a bundle the session's git writes to its standard output — only the
//! commits since the clone's start — which the client stores in a private file and fetches
//! into branches `hh/SESSION/*` of the repository, checking every object. The repository's
//! working tree, index and `HEAD` are never touched.

use std::{
    io::Read as _,
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

/// Where the clone started (the repository's `HEAD` then): what `hh diff` compares with.
pub const BASE_REF: &str = "refs/hh/base";

/// The longest a host git command may take: a hostile clone could make upload-pack wait on a
/// FIFO, and a start or stop must end.
const HOST_GIT_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum GitWorkspaceError {
    #[error(
        "{repository}: git mode clones a repository with at least one commit, and this is not \
         one ({reason})"
    )]
    NotARepository { repository: PathBuf, reason: String },
    #[error(
        "{repository} is inside the repository {top}: git mode clones whole repositories (point \
         the workspace's canonical_path at {top})"
    )]
    NotTheTop { repository: PathBuf, top: PathBuf },
    #[error("{path}: {reason}")]
    ClonesDir { path: PathBuf, reason: String },
    #[error("git {what}: {reason}")]
    Git { what: String, reason: String },
    #[error(
        "snapshot name `{0}`: use letters, digits, `.`, `_` and `-` (at most 64, not starting \
         with `.` or `-`)"
    )]
    BadSnapshotName(String),
}

/// A clone made for a session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreparedClone {
    pub path: PathBuf,
    /// The repository's `origin`, as the clone has it (no password): where the session may
    /// push.
    pub origin: Option<String>,
}

/// Where a workspace's repository and its sessions' clones come from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CloneSource {
    /// Cloned to the workspace's path first when nothing is there yet.
    pub git_url: Option<String>,
    /// The branch clones start on (default: the repository's `HEAD`).
    pub branch: Option<String>,
    /// How many commits of history clones take (default: all).
    pub depth: Option<u32>,
}

impl CloneSource {
    /// A workspace's, as its config says.
    pub fn of(workspace: &crate::config::Workspace) -> CloneSource {
        CloneSource {
            git_url: workspace.git_url.clone(),
            branch: workspace.branch.clone(),
            depth: workspace.clone_depth,
        }
    }

    /// `--branch B --depth N` as given.
    fn options(&self) -> Vec<String> {
        let mut options = Vec::new();
        if let Some(branch) = &self.branch {
            options.extend(["--branch".to_owned(), branch.clone()]);
        }
        if let Some(depth) = self.depth {
            options.push(format!("--depth={depth}"));
        }
        options
    }
}

/// The repository at `repository`, cloned from `source`'s URL first when the path has nothing
/// yet (as the user, with their credentials: the host's git, not a session's).
fn fetch_repository(repository: &Path, source: &CloneSource) -> Result<(), GitWorkspaceError> {
    let Some(url) = &source.git_url else {
        return Ok(());
    };
    let empty = match std::fs::read_dir(repository) {
        Ok(mut entries) => entries.next().is_none(),
        Err(error) => error.kind() == std::io::ErrorKind::NotFound,
    };
    if !empty {
        return Ok(());
    }
    let target = repository.to_string_lossy().into_owned();
    let mut args = vec!["clone".to_owned(), "--quiet".to_owned()];
    args.extend(source.options());
    args.extend(["--".to_owned(), url.clone(), target]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    host_git(None, &args).map(|_| ())
}

/// Makes the clone of `repository` a session of `workspace` works on, under `clones_dir`
/// (first cloning the repository itself from `source`'s URL when its path has nothing yet).
pub fn prepare(
    repository: &Path,
    clones_dir: &Path,
    workspace: &str,
    source: &CloneSource,
) -> Result<PreparedClone, GitWorkspaceError> {
    let not_a_repository = |reason: String| GitWorkspaceError::NotARepository {
        repository: repository.to_path_buf(),
        reason,
    };
    fetch_repository(repository, source)?;
    let top = host_git(Some(repository), &["rev-parse", "--show-toplevel"])
        .map_err(|error| not_a_repository(error.to_string()))?;
    let top = PathBuf::from(top.trim_end_matches('\n'));
    let canonical =
        std::fs::canonicalize(repository).map_err(|error| not_a_repository(error.to_string()))?;
    if std::fs::canonicalize(&top).ok().as_deref() != Some(canonical.as_path()) {
        return Err(GitWorkspaceError::NotTheTop {
            repository: repository.to_path_buf(),
            top,
        });
    }
    host_git(
        Some(repository),
        &["rev-parse", "--quiet", "--verify", "HEAD^{commit}"],
    )
    .map_err(|_| not_a_repository("it has no commit yet".into()))?;
    let origin = host_git(Some(repository), &["remote", "get-url", "origin"])
        .ok()
        .map(|url| without_password(url.trim_end_matches('\n')))
        .filter(|url| !url.is_empty());

    let clones = crate::private_fs::PrivateDir::open_or_create(clones_dir).map_err(|error| {
        GitWorkspaceError::ClonesDir {
            path: clones_dir.to_path_buf(),
            reason: error.to_string(),
        }
    })?;
    let clone = clones.path().join(clone_name(workspace));
    let clone_arg = clone.to_string_lossy().into_owned();
    // A file URL: a local path's clone ignores --depth.
    let from = format!("file://{}", canonical.to_string_lossy());
    let mut args: Vec<String> = [
        "clone",
        "--no-local",
        "--no-hardlinks",
        "--single-branch",
        "--no-tags",
        "--quiet",
    ]
    .map(str::to_owned)
    .to_vec();
    args.extend(source.options());
    args.extend(["--".to_owned(), from, clone_arg]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let made = host_git(None, &args).and_then(|_| {
        // The clone is fresh and ours: git may still run in it, until the session has it.
        match &origin {
            Some(url) => host_git(Some(&clone), &["remote", "set-url", "origin", url]),
            None => host_git(Some(&clone), &["remote", "remove", "origin"]),
        }?;
        host_git(Some(&clone), &["update-ref", BASE_REF, "HEAD"])?;
        let start = host_git(Some(&clone), &["rev-parse", "HEAD"])?;
        host_git(
            Some(repository),
            &["update-ref", &base_ref(&clone), start.trim()],
        )
    });
    if let Err(error) = made {
        let _ = std::fs::remove_dir_all(&clone);
        forget_base(repository, &base_ref(&clone));
        return Err(error);
    }
    Ok(PreparedClone {
        path: clone,
        origin,
    })
}

/// `url` without what may be a secret in it: over HTTP(S) the whole user part
/// (`https://TOKEN@host/…`, `https://ada:TOKEN@host/…` → `https://host/…`), elsewhere the
/// password (`ssh://git:pw@host/…` → `ssh://git@host/…`). The clone, and so the session, gets
/// the address, not the secret.
pub fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        // Over HTTP the user part itself may be the token (`https://ghp_…@github.com/…`).
        Some((_, host)) if matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https") => {
            format!("{scheme}://{host}{path}")
        }
        Some((user_info, host)) => {
            let user = user_info
                .split_once(':')
                .map_or(user_info, |(user, _)| user);
            format!("{scheme}://{user}@{host}{path}")
        }
        None => url.to_owned(),
    }
}

/// A fresh name for a clone of `workspace`: its name in plain characters, the time and a
/// random tag.
fn clone_name(workspace: &str) -> String {
    let slug: String = workspace
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let tag = crate::agent::random_hex(4).unwrap_or_else(|_| std::process::id().to_string());
    format!("{slug}-{seconds}-{tag}")
}

/// The branches of `session` in `repository` (`hh/SESSION/…`), as their short names.
pub fn branch_prefix(session: &str) -> String {
    format!("hh/{session}/")
}

/// The ref of the repository that names where a clone started (its `refs/hh/base`), so that
/// its work can be checked against that commit alone ([`bring_back`]); removed once done.
pub fn base_ref(clone: &Path) -> String {
    let name = clone
        .file_name()
        .map_or_else(String::new, |name| name.to_string_lossy().into_owned());
    format!("refs/hh/bases/{name}")
}

/// How a bundle file starts (`git bundle create` writes version 2 unless asked otherwise; v3
/// can carry a filter, which leaves objects out).
const BUNDLE_SIGNATURE: &[u8] = b"# v2 git bundle\n";

/// Fetches the branches of `bundle` (what [`SessionScript::Bundle`] wrote, stored by the
/// client in a private file) into `repository` as `hh/SESSION/BRANCH`, fast-forwards only; the
/// session's branches now there. No git reads the clone.
///
/// The bundle is the session's to write, so it is taken apart in quarantine first: it must be
/// a bundle (not a gitfile naming a repository, which `git fetch` would follow), and it is
/// fetched into a fresh bare repository `quarantine` that holds nothing but the clone's start
/// (`base`, shallow), every object checked there (`fsck`, whatever git's version does for
/// bundles), so that its refs can name only commits the bundle brings or that start — never an
/// object of the repository the session has only heard of, nor a delta against one. Only then
/// does the repository fetch from the quarantine, a repository hh made.
pub fn bring_back(
    repository: &Path,
    bundle: &Path,
    base: &str,
    quarantine: &Path,
    session: &str,
) -> Result<Vec<String>, GitWorkspaceError> {
    let mut start = [0u8; BUNDLE_SIGNATURE.len()];
    let signed = std::fs::File::open(bundle)
        .and_then(|mut file| file.read_exact(&mut start))
        .is_ok()
        && start == BUNDLE_SIGNATURE;
    if !signed {
        return Err(GitWorkspaceError::Git {
            what: "bundle".into(),
            reason: "what the session handed over is not a git bundle (v2)".into(),
        });
    }
    let _ = std::fs::remove_dir_all(quarantine);
    let brought = quarantined(repository, bundle, base, quarantine, session);
    let _ = std::fs::remove_dir_all(quarantine);
    brought?;
    branches(repository, session)
}

/// [`bring_back`]'s steps once the bundle looks like one.
fn quarantined(
    repository: &Path,
    bundle: &Path,
    base: &str,
    quarantine: &Path,
    session: &str,
) -> Result<(), GitWorkspaceError> {
    let quarantine_arg = quarantine.to_string_lossy().into_owned();
    let repository_arg = repository.to_string_lossy().into_owned();
    let bundle_arg = bundle.to_string_lossy().into_owned();
    // The user's own settings must not undo these (fetch.fsckObjects=false, fetch.prune).
    let fetch = |dir: &Path, what: &[&str]| {
        let mut args = vec![
            "-c",
            "transfer.fsckObjects=true",
            "-c",
            "fetch.fsckObjects=true",
            "-c",
            "protocol.file.allow=always",
            "fetch",
            "--no-tags",
            "--no-prune",
            "--no-prune-tags",
            "--no-write-fetch-head",
            "--no-recurse-submodules",
            "--no-auto-maintenance",
            "--quiet",
        ];
        args.extend_from_slice(what);
        host_git(Some(dir), &args)
    };
    host_git(
        None,
        &["init", "--bare", "--quiet", "--template=", &quarantine_arg],
    )?;
    let base_spec = format!("+{base}:refs/hh/base");
    fetch(
        quarantine,
        &["--depth=1", "--", &repository_arg, &base_spec],
    )?;
    fetch(
        quarantine,
        &["--", &bundle_arg, "refs/heads/*:refs/heads/*"],
    )?;
    // Every object, whether or not this git checks a bundle's.
    host_git(
        Some(quarantine),
        &["fsck", "--no-progress", "--no-dangling", "--strict"],
    )?;
    // Not forced: a fetch that would rewrite an earlier `hh/SESSION/…` branch (another session
    // of that name) fails, and the work stays in the clone.
    let refspec = format!("refs/heads/*:refs/heads/{}*", branch_prefix(session));
    fetch(repository, &["--", &quarantine_arg, &refspec])?;
    Ok(())
}

/// Forgets the ref that named where a clone started.
pub fn forget_base(repository: &Path, base: &str) {
    let _ = host_git(Some(repository), &["update-ref", "-d", base]);
}

/// The paths the session's branches change since the clone's start that a code host runs on
/// a push (CI workflows): a push of them runs the session's code with the repository's secrets.
pub fn ci_paths_changed(
    repository: &Path,
    base: &str,
    session: &str,
) -> Result<Vec<String>, GitWorkspaceError> {
    let mut changed = Vec::new();
    for branch in branches(repository, session)? {
        let range = format!("{base}..refs/heads/{branch}");
        let names = host_git(
            Some(repository),
            &["diff", "--name-only", "--no-renames", "-z", &range],
        )?;
        changed.extend(
            names
                .split('\0')
                .filter(|path| is_ci_path(path))
                .map(str::to_owned),
        );
    }
    changed.sort();
    changed.dedup();
    Ok(changed)
}

/// Whether a code host runs `path` on a push (GitHub, GitLab, Gitea/Forgejo, CircleCI, Azure,
/// Bitbucket, Travis, Buildkite, Drone).
fn is_ci_path(path: &str) -> bool {
    const CI: [&str; 12] = [
        ".github/workflows/",
        ".github/actions/",
        ".gitlab-ci.yml",
        ".gitlab/",
        ".gitea/workflows/",
        ".forgejo/workflows/",
        ".circleci/",
        "azure-pipelines.yml",
        "bitbucket-pipelines.yml",
        ".travis.yml",
        ".buildkite/",
        ".drone.yml",
    ];
    CI.iter().any(|ci| path == *ci || path.starts_with(ci))
}

/// The session's branches in `repository`.
pub fn branches(repository: &Path, session: &str) -> Result<Vec<String>, GitWorkspaceError> {
    let pattern = format!("refs/heads/{}", branch_prefix(session));
    let listed = host_git(
        Some(repository),
        &["for-each-ref", "--format=%(refname:short)", &pattern],
    )?;
    Ok(listed.lines().map(str::to_owned).collect())
}

/// Pushes the session's branches to `repository`'s `origin` under the same names. When that
/// fails, the branches stay and a bundle of what `origin` lacks is written to `bundle`; the
/// error says both.
pub fn push(repository: &Path, session: &str, bundle: &Path) -> Result<(), GitWorkspaceError> {
    let prefix = branch_prefix(session);
    let refspec = format!("refs/heads/{prefix}*:refs/heads/{prefix}*");
    let pushed = host_git(
        Some(repository),
        &["push", "--quiet", "--porcelain", "origin", &refspec],
    );
    let Err(push_error) = pushed else {
        return Ok(());
    };
    let branches_glob = format!("--branches={prefix}*");
    let bundle_arg = bundle.to_string_lossy().into_owned();
    let saved = host_git(
        Some(repository),
        &[
            "bundle",
            "create",
            "--quiet",
            &bundle_arg,
            &branches_glob,
            "--not",
            "--remotes=origin",
        ],
    );
    Err(GitWorkspaceError::Git {
        what: format!("push of {prefix}* to origin"),
        reason: match saved {
            Ok(_) => format!(
                "{push_error}; the branches stay in {} and their commits are saved in {}",
                repository.display(),
                bundle.display()
            ),
            Err(bundle_error) => format!(
                "{push_error}; the branches stay in {} (no bundle: {bundle_error})",
                repository.display()
            ),
        },
    })
}

/// Checks a snapshot's name: it becomes a ref name in the session's clone.
pub fn check_snapshot_name(name: &str) -> Result<(), GitWorkspaceError> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with(['.', '-'])
        && !name.ends_with(".lock")
        && !name.contains("..")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if valid {
        Ok(())
    } else {
        Err(GitWorkspaceError::BadSnapshotName(name.to_owned()))
    }
}

/// What hh runs in a git-mode session, in its workspace, as its user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionScript {
    /// `NAME`: the working tree as it is (untracked files too, ignored ones not) kept as
    /// `refs/hh/snapshots/NAME`; the branch, index and files stay as they are.
    Snapshot,
    /// `NAME`: the working tree made what snapshot NAME kept (first kept itself as
    /// `before-restore`); the branch and `HEAD` stay.
    Restore,
    /// `[NAME] [--stat]`: the working tree against snapshot NAME, or the clone's start.
    Diff,
    /// `MESSAGE`: everything left uncommitted, committed; says `clean` when there was nothing.
    Commit,
    /// Prints one line per change not committed (none: clean).
    Status,
    /// Writes a bundle of the commits on its branches since the clone's start to standard
    /// output; exits [`NOTHING_NEW`] when there are none.
    Bundle,
}

/// [`SessionScript::Bundle`]'s exit status when no branch has a commit the clone did not start
/// with.
pub const NOTHING_NEW: i32 = 3;

/// Fills in an identity where the session has none, and runs git with a temporary index
/// (so the session's own index is left alone); `$tmp` is removed however the script ends.
const PRELUDE: &str = r#"set -eu
export GIT_PAGER=cat GIT_TERMINAL_PROMPT=0
# The session's own config must not hold hh's commands (a monitor that never answers, hooks).
export GIT_CONFIG_COUNT=2 GIT_CONFIG_KEY_0=core.fsmonitor GIT_CONFIG_VALUE_0=false \
  GIT_CONFIG_KEY_1=core.hooksPath GIT_CONFIG_VALUE_1=/dev/null
name=$(git config user.name 2>/dev/null || true)
email=$(git config user.email 2>/dev/null || true)
export GIT_AUTHOR_NAME="${GIT_AUTHOR_NAME:-${name:-hh}}"
export GIT_AUTHOR_EMAIL="${GIT_AUTHOR_EMAIL:-${email:-hh@localhost}}"
export GIT_COMMITTER_NAME="${GIT_COMMITTER_NAME:-$GIT_AUTHOR_NAME}"
export GIT_COMMITTER_EMAIL="${GIT_COMMITTER_EMAIL:-$GIT_AUTHOR_EMAIL}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
snapshot_tree() {
  GIT_INDEX_FILE="$tmp/index" git read-tree HEAD
  GIT_INDEX_FILE="$tmp/index" git add -A
  GIT_INDEX_FILE="$tmp/index" git write-tree
}
snapshot() {
  tree=$(snapshot_tree)
  commit=$(git commit-tree "$tree" -p HEAD -m "hh snapshot $1")
  git update-ref "refs/hh/snapshots/$1" "$commit"
}
"#;

const SNAPSHOT: &str = r#"snapshot "$1"
echo "snapshot $1: $(git rev-parse --short "refs/hh/snapshots/$1")"
"#;

const RESTORE: &str = r#"git rev-parse --quiet --verify "refs/hh/snapshots/$1^{commit}" >/dev/null \
  || { echo "no snapshot named $1 in this session" >&2; exit 2; }
snapshot before-restore
git add -A
git read-tree --reset -u "refs/hh/snapshots/$1"
git reset --quiet
echo "restored snapshot $1 (what was there before is snapshot before-restore)"
"#;

const DIFF: &str = r#"base=refs/hh/base
stat=
for arg in "$@"; do
  case "$arg" in
    --stat) stat=--stat ;;
    *) base="refs/hh/snapshots/$arg"
       git rev-parse --quiet --verify "$base^{commit}" >/dev/null \
         || { echo "no snapshot named $arg in this session" >&2; exit 2; } ;;
  esac
done
tree=$(snapshot_tree)
git diff --no-color --no-ext-diff --no-textconv $stat "$base" "$tree"
"#;

const COMMIT: &str = r#"git add -A
if git diff --cached --quiet; then echo clean; exit 0; fi
git commit --quiet --no-verify -m "$1"
echo "committed $(git rev-parse --short HEAD)"
"#;

const STATUS: &str = r#"changes=$(git status --porcelain --untracked-files=all 2>/dev/null)
printf '%s' "$changes"
"#;

const BUNDLE: &str = r#"git rev-parse --quiet --verify "refs/hh/base^{commit}" >/dev/null \
  || { echo "the clone's start (refs/hh/base) is gone" >&2; exit 4; }
new=$(git rev-list -n 1 --branches --not refs/hh/base)
[ -n "$new" ] || exit 3
git bundle create --quiet - --branches --not refs/hh/base
"#;

/// The command that runs `script` with `args` in a session.
pub fn session_command(script: SessionScript, args: &[&str]) -> Vec<String> {
    let body = match script {
        SessionScript::Snapshot => SNAPSHOT,
        SessionScript::Restore => RESTORE,
        SessionScript::Diff => DIFF,
        SessionScript::Commit => COMMIT,
        SessionScript::Status => STATUS,
        SessionScript::Bundle => BUNDLE,
    };
    let mut command = vec![
        "sh".to_owned(),
        "-c".to_owned(),
        format!("{PRELUDE}{body}"),
        "hh-git".to_owned(),
    ];
    command.extend(args.iter().map(|arg| (*arg).to_owned()));
    command
}

/// `template` with `{session}` and `{workspace}` replaced.
pub fn commit_message(template: &str, session: &str, workspace: &str) -> String {
    template
        .replace("{session}", session)
        .replace("{workspace}", workspace)
}

/// Runs host git (in `dir` when given) with a clean terminal-free setting; its stdout, or an
/// error with its stderr. Killed after [`HOST_GIT_TIMEOUT`].
fn host_git(dir: Option<&Path>, args: &[&str]) -> Result<String, GitWorkspaceError> {
    let what = args
        .iter()
        .find(|arg| !arg.starts_with('-') && !arg.contains('='))
        .copied()
        .unwrap_or("git")
        .to_owned();
    let failed = |reason: String| GitWorkspaceError::Git {
        what: what.clone(),
        reason,
    };
    let mut git = Command::new("git");
    if let Some(dir) = dir {
        git.arg("-C").arg(dir);
    }
    // hh run from a git hook inherits where that git works: this git works where it is told.
    for variable in [
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_COMMON_DIR",
        "GIT_INDEX_FILE",
        "GIT_OBJECT_DIRECTORY",
        "GIT_ALTERNATE_OBJECT_DIRECTORIES",
        "GIT_NAMESPACE",
        "GIT_CONFIG_PARAMETERS",
        "GIT_CONFIG_COUNT",
    ] {
        git.env_remove(variable);
    }
    git.args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_NO_LAZY_FETCH", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so that a timeout ends what it started too.
        .process_group(0);
    let mut child = git.spawn().map_err(|error| failed(error.to_string()))?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = stdout.read_to_end(&mut text);
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = stderr.read_to_end(&mut text);
        text
    });
    let deadline = Instant::now() + HOST_GIT_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                if let Some(group) = rustix::process::Pid::from_raw(child.id() as i32) {
                    let _ =
                        rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
                }
                let _ = child.wait();
                return Err(failed(format!(
                    "did not finish in {} s and was stopped",
                    HOST_GIT_TIMEOUT.as_secs()
                )));
            }
            Err(error) => return Err(failed(error.to_string())),
        }
    };
    let out = out.join().unwrap_or_default();
    let err = err.join().unwrap_or_default();
    if !status.success() {
        let said = String::from_utf8_lossy(&crate::terminal_text::for_terminal(&err))
            .trim()
            .to_owned();
        return Err(failed(if said.is_empty() {
            status.to_string()
        } else {
            said
        }));
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_names_are_plain_ref_components() {
        for good in ["one", "before-restore", "v1.2", "a_b"] {
            assert!(check_snapshot_name(good).is_ok(), "{good}");
        }
        for bad in [
            "", ".hidden", "-x", "a/b", "a..b", "x.lock", "a b", "a:b", "a~1", "a^", "@{u}",
        ] {
            assert!(check_snapshot_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_snapshot_name(&"a".repeat(65)).is_err());
    }

    #[test]
    fn the_clone_gets_the_origin_without_its_password() {
        for (url, kept) in [
            (
                "https://ada:ghp_SECRET@github.com/ada/p.git",
                "https://github.com/ada/p.git",
            ),
            (
                "https://ghp_SECRET@github.com/ada/p.git",
                "https://github.com/ada/p.git",
            ),
            (
                "ssh://git:pw@github.com/ada/p.git",
                "ssh://git@github.com/ada/p.git",
            ),
            (
                "https://github.com/ada/p.git",
                "https://github.com/ada/p.git",
            ),
            (
                "ssh://git@github.com/ada/p.git",
                "ssh://git@github.com/ada/p.git",
            ),
            ("git@github.com:ada/p.git", "git@github.com:ada/p.git"),
            ("https://a:b@host/x@y", "https://host/x@y"),
        ] {
            assert_eq!(without_password(url), kept, "{url}");
        }
    }

    /// `git ARGS` in `dir`, which must succeed; its stdout.
    fn git(dir: &Path, args: &[&str]) -> String {
        let output = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(args)
            .output()
            .unwrap();
        assert!(output.status.success(), "git {args:?}: {output:?}");
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// A repository with a commit the session's clone starts from (named by its base ref)
    /// and a second commit the session never saw.
    fn repository_with_a_private_commit(dir: &Path) -> (PathBuf, String, String) {
        let repo = dir.join("repo");
        std::fs::create_dir(&repo).unwrap();
        git(&repo, &["init", "--quiet"]);
        std::fs::write(repo.join("a.txt"), "a\n").unwrap();
        git(&repo, &["add", "a.txt"]);
        git(&repo, &["commit", "--quiet", "-m", "start"]);
        git(&repo, &["update-ref", "refs/hh/bases/c1", "HEAD"]);
        git(&repo, &["switch", "--quiet", "-c", "private"]);
        std::fs::write(repo.join("secret.txt"), "private work\n").unwrap();
        git(&repo, &["add", "secret.txt"]);
        git(&repo, &["commit", "--quiet", "-m", "private"]);
        let private = git(&repo, &["rev-parse", "HEAD"]);
        git(&repo, &["switch", "--quiet", "main"]);
        (repo, "refs/hh/bases/c1".into(), private)
    }

    #[test]
    fn what_is_not_a_bundle_is_never_fetched_from() {
        let dir = tempfile::tempdir().unwrap();
        let (repo, base, _) = repository_with_a_private_commit(dir.path());
        // A gitfile: `git fetch` would follow it to the repository it names.
        let fake = dir.path().join("s.bundle");
        std::fs::write(&fake, format!("gitdir: {}/.git\n", repo.display())).unwrap();
        let refused = bring_back(&repo, &fake, &base, &dir.path().join("q"), "s").unwrap_err();
        assert!(
            refused.to_string().contains("not a git bundle"),
            "{refused}"
        );
        assert!(branches(&repo, "s").unwrap().is_empty());
    }

    #[test]
    fn a_bundle_cannot_name_an_object_the_session_never_had() {
        let dir = tempfile::tempdir().unwrap();
        let (repo, base, private) = repository_with_a_private_commit(dir.path());
        // A bundle that brings no object and names the repository's private commit: in the
        // repository itself its connectivity would check out.
        let mut pack = b"PACK\0\0\0\x02\0\0\0\0".to_vec();
        // Its trailer: SHA-1 of what precedes (ring has it, as the legacy digest it is).
        let sum = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &pack);
        pack.extend_from_slice(sum.as_ref());
        let mut bundle = format!("# v2 git bundle\n{private} refs/heads/leak\n\n").into_bytes();
        bundle.extend_from_slice(&pack);
        let path = dir.path().join("s.bundle");
        std::fs::write(&path, bundle).unwrap();
        assert!(bring_back(&repo, &path, &base, &dir.path().join("q"), "s").is_err());
        assert!(branches(&repo, "s").unwrap().is_empty());
        assert!(!dir.path().join("q").exists(), "the quarantine is removed");
    }

    #[test]
    fn a_real_bundle_comes_back_through_the_quarantine() {
        let dir = tempfile::tempdir().unwrap();
        let (repo, base, _) = repository_with_a_private_commit(dir.path());
        let clone = dir.path().join("clone");
        git(
            dir.path(),
            &[
                "clone",
                "--quiet",
                "--no-local",
                "--single-branch",
                "repo",
                "clone",
            ],
        );
        git(&clone, &["update-ref", BASE_REF, "HEAD"]);
        std::fs::write(clone.join("b.txt"), "b\n").unwrap();
        git(&clone, &["add", "b.txt"]);
        git(&clone, &["commit", "--quiet", "-m", "work"]);
        let path = dir.path().join("s.bundle");
        let path_arg = path.to_string_lossy().into_owned();
        git(
            &clone,
            &[
                "bundle",
                "create",
                "--quiet",
                &path_arg,
                "--branches",
                "--not",
                BASE_REF,
            ],
        );
        let branches = bring_back(&repo, &path, &base, &dir.path().join("q"), "s").unwrap();
        assert_eq!(branches, ["hh/s/main"]);
        assert_eq!(
            git(&repo, &["log", "-1", "--format=%s", "hh/s/main"]),
            "work"
        );
        // Nothing of the quarantine's shallowness reached the repository.
        assert!(!repo.join(".git/shallow").exists());
    }

    #[test]
    fn the_commit_message_names_session_and_workspace() {
        assert_eq!(
            commit_message("hh: {session} in {workspace} ({session})", "s1", "w"),
            "hh: s1 in w (s1)"
        );
    }
}
