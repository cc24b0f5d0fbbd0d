//! git mode at the client ([`crate::git_workspace`]): the stop that brings a session's work
//! back, and `hh snapshot ID NAME`, `hh restore ID NAME`, `hh diff ID [NAME] [--stat]`:
//! checkpoints of a git-mode session's work, made and read inside the session, as its user, so
//! that no host git ever reads its clone.

use std::{
    io::{IsTerminal as _, Write as _},
    process::ExitCode,
};

use anyhow::bail;

use super::{
    session::{call, find},
    shell::{self, OutputStream, exec_with_output},
};
use crate::{
    api::protocol::{ClientRequest, GitClone, SessionInfo},
    git_workspace::{self, SessionScript},
    terminal_text::{for_terminal, text_for_terminal},
};

#[derive(clap::Args, Debug)]
pub struct SnapshotOptions {
    /// The session's id or name.
    id: String,
    /// The snapshot's name (letters, digits, `.`, `_`, `-`); an existing one is replaced.
    name: String,
}

#[derive(clap::Args, Debug)]
pub struct RestoreOptions {
    /// The session's id or name.
    id: String,
    /// The snapshot to go back to (what is there now is kept as snapshot `before-restore`).
    name: String,
}

#[derive(clap::Args, Debug)]
pub struct DiffOptions {
    /// The session's id or name.
    id: String,
    /// Compare with this snapshot instead of the clone's start.
    name: Option<String>,
    /// Changed files and counts instead of the whole diff.
    #[arg(long)]
    stat: bool,
}

pub fn snapshot(options: &SnapshotOptions) -> anyhow::Result<ExitCode> {
    git_workspace::check_snapshot_name(&options.name)?;
    run(&options.id, SessionScript::Snapshot, &[&options.name])
}

pub fn restore(options: &RestoreOptions) -> anyhow::Result<ExitCode> {
    git_workspace::check_snapshot_name(&options.name)?;
    run(&options.id, SessionScript::Restore, &[&options.name])
}

pub fn diff(options: &DiffOptions) -> anyhow::Result<ExitCode> {
    let mut args = Vec::new();
    if let Some(name) = &options.name {
        git_workspace::check_snapshot_name(name)?;
        args.push(name.as_str());
    }
    if options.stat {
        args.push("--stat");
    }
    run(&options.id, SessionScript::Diff, &args)
}

/// Runs `script` in git-mode session `id`; its output here as it comes (what reaches a
/// terminal made safe for it: the session wrote the files the diff shows), its status ours.
fn run(id: &str, script: SessionScript, args: &[&str]) -> anyhow::Result<ExitCode> {
    let info = find(id)?;
    if info.git.is_none() {
        bail!(
            "session {id} works in its workspace itself; snapshots, restores and diffs are for \
             git mode (`mode = \"git\"` or `hh session start --git`)"
        );
    }
    let (out_tty, err_tty) = (
        std::io::stdout().is_terminal(),
        std::io::stderr().is_terminal(),
    );
    let command = git_workspace::session_command(script, args);
    let status = exec_with_output(&info.id, &command, &mut |stream, bytes| {
        let (tty, mut sink): (bool, Box<dyn std::io::Write>) = match stream {
            OutputStream::Stdout => (out_tty, Box::new(std::io::stdout().lock())),
            OutputStream::Stderr => (err_tty, Box::new(std::io::stderr().lock())),
        };
        if tty {
            sink.write_all(&for_terminal(bytes))?;
        } else {
            sink.write_all(bytes)?;
        }
        sink.flush()
    })?;
    Ok(ExitCode::from(u8::try_from(status).unwrap_or(1)))
}

/// Stops git-mode session `info`. While it still runs: what it left uncommitted is committed
/// (the workspace's `commit_on_exit`), and its git writes a bundle of its new commits, which
/// lands in a private file here. Then it is stopped, whatever happened before; the bundle's
/// branches come into the repository (and are pushed, with `push_on_exit`); its clone goes
/// once nothing in it is only there. What happened, for the person.
pub(crate) fn stop_session(
    info: &SessionInfo,
    config: Option<&crate::config::Config>,
) -> anyhow::Result<Vec<GitEvent>> {
    let git = info.git.as_ref().expect("a git-mode session");
    let workspace = config.and_then(|config| config.workspace(&info.workspace));
    let mut said = Vec::new();
    if let Some(workspace) = workspace.filter(|workspace| workspace.commit_on_exit) {
        let message =
            git_workspace::commit_message(&workspace.commit_message, &info.name, &info.workspace);
        match shell::exec_captured(&info.id, SessionScript::Commit, &[&message]) {
            Ok((0, out)) => said.push(GitEvent::new(
                GitEventKind::Commit,
                format!("commit on exit: {}", out.trim()),
            )),
            Ok((code, out)) => said.push(GitEvent::new(
                GitEventKind::CommitFailed,
                format!("commit on exit failed ({code}): {}", out.trim()),
            )),
            Err(error) => said.push(GitEvent::new(
                GitEventKind::CommitFailed,
                format!("commit on exit failed: {error:#}"),
            )),
        }
    }
    let uncommitted = match shell::exec_captured(&info.id, SessionScript::Status, &[]) {
        Ok((0, out)) => !out.trim().is_empty(),
        _ => true,
    };
    let bundle = take_bundle(info, git, &mut said);
    if let Err(error) = call(ClientRequest::StopSession {
        id: info.id.clone(),
    }) {
        if let Bundle::File(path) = &bundle {
            let _ = std::fs::remove_file(path);
        }
        return Err(error);
    }
    let base = git_workspace::base_ref(&git.clone);
    let brought = match bundle {
        Bundle::File(path) => {
            let quarantine = path.with_extension("quarantine");
            let fetched =
                git_workspace::bring_back(&git.repository, &path, &base, &quarantine, &info.name);
            let _ = std::fs::remove_file(&path);
            match fetched {
                Ok(branches) => {
                    said.push(GitEvent::new(
                        GitEventKind::BranchesBack,
                        format!(
                            "the session's branches are in {}: {}",
                            git.repository.display(),
                            text_for_terminal(&branches.join(", "))
                        ),
                    ));
                    if workspace.is_some_and(|workspace| workspace.push_on_exit) {
                        push(info, git, &base, &mut said);
                    }
                    true
                }
                Err(error) => {
                    said.push(GitEvent::new(
                        GitEventKind::BringBackFailed,
                        format!("its commits did not come back: {error}"),
                    ));
                    false
                }
            }
        }
        Bundle::NothingNew => {
            said.push(GitEvent::new(
                GitEventKind::NoCommits,
                "the session made no commit: no branch came back".into(),
            ));
            true
        }
        Bundle::Failed => false,
    };
    git_workspace::forget_base(&git.repository, &base);
    if brought && !uncommitted {
        if let Err(error) = std::fs::remove_dir_all(&git.clone) {
            said.push(GitEvent::new(
                GitEventKind::CloneKept,
                format!(
                    "could not remove its clone {}: {error}",
                    git.clone.display()
                ),
            ));
        }
    } else {
        said.push(GitEvent::new(
            GitEventKind::CloneKept,
            format!(
                "its work stays in its clone {}{}. Run no git there (its config and hooks are the \
             session's): `git clone --no-local {} COPY` makes a copy safe to look at",
                git.clone.display(),
                if uncommitted {
                    ", with changes it did not commit (commit_on_exit = true commits them)"
                } else {
                    ""
                },
                git.clone.display()
            ),
        ));
    }
    Ok(said)
}

/// One thing that happened to a git-mode session's work, for the person (its message) and for
/// `hh run --json` (its kind).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GitEvent {
    pub kind: GitEventKind,
    pub message: String,
}

impl GitEvent {
    pub fn new(kind: GitEventKind, message: String) -> GitEvent {
        GitEvent { kind, message }
    }
}

impl std::fmt::Display for GitEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// The kinds of [`GitEvent`], as `hh run --json` names them (`"kind"` of a `git` event).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GitEventKind {
    /// The clone the session works on is being made.
    CloneStarted,
    /// It is made.
    CloneFinished,
    /// `commit_on_exit` committed.
    Commit,
    CommitFailed,
    /// The session's git could not hand its commits over.
    BundleFailed,
    /// Its branches are in the workspace's repository as `hh/NAME/*`.
    BranchesBack,
    /// It made no commit.
    NoCommits,
    /// Its commits were refused on the way back (named why).
    BringBackFailed,
    /// `push_on_exit` pushed them.
    PushSucceeded,
    /// The push failed; they stay as branches, and a bundle is saved.
    PushFailed,
    /// Not pushed: they change CI files.
    PushSkipped,
    /// The clone stays (something is only there, or it could not be removed).
    CloneKept,
}

/// What the session's git handed over.
enum Bundle {
    /// Its new commits, in this private file.
    File(std::path::PathBuf),
    /// It has no commit the clone did not start with.
    NothingNew,
    /// Nothing usable (said why).
    Failed,
}

/// Has the session write the bundle of its new commits into a fresh private file beside its
/// clone (the clones directory: yours, 0700).
fn take_bundle(info: &SessionInfo, git: &GitClone, said: &mut Vec<GitEvent>) -> Bundle {
    use std::os::unix::fs::OpenOptionsExt as _;
    let Some(dir) = git.clone.parent() else {
        return Bundle::Failed;
    };
    let path = dir.join(format!("{}.bring-back.bundle", info.id));
    let opened = crate::private_fs::PrivateDir::open_or_create(dir)
        .map_err(anyhow::Error::from)
        .and_then(|_| {
            let _ = std::fs::remove_file(&path);
            Ok(std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path)?)
        });
    let mut file = match opened {
        Ok(file) => file,
        Err(error) => {
            said.push(GitEvent::new(
                GitEventKind::BundleFailed,
                format!("no place for the session's commits: {error:#}"),
            ));
            return Bundle::Failed;
        }
    };
    let failed = |said: &mut Vec<GitEvent>, why: String| {
        let _ = std::fs::remove_file(&path);
        said.push(GitEvent::new(
            GitEventKind::BundleFailed,
            format!("the session's commits could not be taken: {why}"),
        ));
        Bundle::Failed
    };
    match shell::exec_bundle(&info.id, &mut file) {
        Ok((0, _)) => match file.sync_all() {
            Ok(()) => Bundle::File(path),
            Err(error) => failed(said, error.to_string()),
        },
        Ok((git_workspace::NOTHING_NEW, _)) => {
            let _ = std::fs::remove_file(&path);
            Bundle::NothingNew
        }
        Ok((code, err)) => failed(said, format!("its git exited {code}: {}", err.trim())),
        Err(error) => failed(said, format!("{error:#}")),
    }
}

/// Pushes the session's branches to the repository's origin (`push_on_exit`); a failed push
/// leaves them and a bundle of what origin lacks beside the clones. Branches that change what a
/// code host runs on a push (CI workflows) are not pushed: that would run the session's code
/// with the repository's secrets before a person read it.
fn push(info: &SessionInfo, git: &GitClone, base: &str, said: &mut Vec<GitEvent>) {
    match git_workspace::ci_paths_changed(&git.repository, base, &info.name) {
        Ok(changed) if changed.is_empty() => {}
        Ok(changed) => {
            said.push(GitEvent::new(
                GitEventKind::PushSkipped,
                format!(
                    "not pushed: the session changed what a code host runs on a push ({}); read \
                     it, then push the branches yourself",
                    text_for_terminal(&changed.join(", "))
                ),
            ));
            return;
        }
        Err(error) => {
            said.push(GitEvent::new(
                GitEventKind::PushFailed,
                format!("not pushed: {error}"),
            ));
            return;
        }
    }
    let dir = git.clone.parent().unwrap_or(&git.repository);
    let bundle = dir.join(format!("{}.bundle", info.id));
    match git_workspace::push(&git.repository, &info.name, &bundle) {
        Ok(()) => said.push(GitEvent::new(
            GitEventKind::PushSucceeded,
            "pushed them to origin".into(),
        )),
        Err(error) => said.push(GitEvent::new(GitEventKind::PushFailed, error.to_string())),
    }
}
