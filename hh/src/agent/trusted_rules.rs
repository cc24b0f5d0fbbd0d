//! The agent's answers about rules files: where each stands against the version a person
//! trusted, trusting a version, and adding a rule (in force at once). The files and the trust
//! model are [`crate::rules::trust`]'s; this module says who may do what.
//!
//! A user reads, trusts and adds to files whose directory they own; root to any. The agent reads
//! a user's file as root, so the owner is checked on the directory's descriptor
//! ([`crate::sys::owned_dir`]), never by path.

use std::{path::PathBuf, sync::Arc};

use super::Agent;
use crate::{
    api::{
        protocol::{Reply, RulesFileStatus},
        server::Peer,
    },
    config::Config,
    rules::{Action, Layer, Rule, TrustError, TrustStore, diff::printable},
    sys::owned_dir::OwnedDirError,
};

/// The user whose directories a request may touch: `None` (any) for root.
pub fn owner_for(uid: u32) -> Option<u32> {
    (uid != 0).then_some(uid)
}

/// Every rules file a session of `workspace` of `uid`'s runs under, with its layer (the
/// config as it reads for that user: `~` is their home).
fn files_of(agent: &Agent, uid: u32, workspace: &str) -> Result<Vec<(Layer, PathBuf)>, String> {
    let config = config_of(agent, uid)?;
    let found = config
        .workspace(workspace)
        .ok_or_else(|| unknown(workspace))?;
    let mut files = vec![(Layer::Global, config.manager.global_rules_file.clone())];
    files.extend(
        found
            .rules_files()
            .into_iter()
            .map(|f| (Layer::Workspace, f)),
    );
    Ok(files)
}

fn config_of(agent: &Agent, uid: u32) -> Result<Config, String> {
    tokio::task::block_in_place(|| agent.config_for(uid))
        .map(|for_user| for_user.config)
        .map_err(|error| format!("{error:#}"))
}

/// Every session looks at its trusted copies now (which ones changed is for each to see).
fn reload_sessions(agent: &Agent) {
    let sessions: Vec<_> = agent.sessions().values().cloned().collect();
    for session in sessions {
        session.reload_rules();
    }
}

fn unknown(workspace: &str) -> String {
    format!("no workspace `{workspace}` in the agent's config")
}

fn refused(message: String) -> Reply {
    Reply::Error { message }
}

/// Runs `work` (file work on users' directories) off the async workers; its error, or the
/// worker's, as the message a client reads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, TrustError> + Send + 'static,
) -> Result<T, String> {
    match tokio::task::spawn_blocking(work).await {
        Ok(done) => done.map_err(|error| error.to_string()),
        Err(error) => Err(format!("internal: the rules worker failed: {error}")),
    }
}

/// `RulesStatus`: each file of the workspace against its trusted copy.
pub async fn status(agent: &Arc<Agent>, peer: Peer, workspace: String) -> Reply {
    let files = match files_of(agent, peer.uid, &workspace) {
        Ok(files) => files,
        Err(message) => return refused(message),
    };
    let store = Arc::clone(&agent.trust);
    let statuses = blocking(move || {
        Ok(files
            .into_iter()
            .map(|(layer, file)| file_status(&store, peer, layer, file))
            .collect())
    })
    .await;
    match statuses {
        Ok(files) => Reply::Rules { files },
        Err(message) => refused(message),
    }
}

fn file_status(store: &TrustStore, peer: Peer, layer: Layer, file: PathBuf) -> RulesFileStatus {
    let mut status = RulesFileStatus {
        file: file.display().to_string(),
        layer: layer.to_string(),
        in_force: false,
        ever_trusted: false,
        sha256: String::new(),
        diff: String::new(),
        error: None,
    };
    let mut standing = store.standing(&file, owner_for(peer.uid));
    // The global rules are the admin's (root's): anyone may see where they stand, only root
    // may trust them.
    if layer == Layer::Global
        && matches!(
            standing,
            Err(TrustError::Dir(OwnedDirError::WrongOwner { owner: 0, .. }))
        )
    {
        standing = store.standing(&file, Some(0));
    }
    match standing {
        Ok(standing) => {
            status.in_force = standing.in_force;
            status.ever_trusted = standing.ever_trusted;
            status.sha256 = standing.live_sha256;
            status.diff = standing.diff;
            status.error = standing.error.map(|error| printable(&error));
        }
        Err(error) => status.error = Some(printable(&error.to_string())),
    }
    status
}

/// `TrustRules`: trusts `file` (one of the workspace's) as it reads now, if it is the version
/// `sha256` names.
pub async fn trust(
    agent: &Arc<Agent>,
    peer: Peer,
    workspace: String,
    file: String,
    sha256: String,
) -> Reply {
    let files = match files_of(agent, peer.uid, &workspace) {
        Ok(files) => files,
        Err(message) => return refused(message),
    };
    let Some((layer, path)) = files
        .into_iter()
        .find(|(_, path)| path.display().to_string() == file)
    else {
        return refused(format!(
            "{file} is not a rules file of workspace `{workspace}`"
        ));
    };
    let store = Arc::clone(&agent.trust);
    let trusted = blocking(move || {
        store
            .trust(&path, owner_for(peer.uid), &sha256)
            .map(|_| file_status(&store, peer, layer, path))
    })
    .await;
    match trusted {
        Ok(status) => {
            tracing::info!(uid = peer.uid, file = %status.file, sha256 = %status.sha256, "rules trusted");
            reload_sessions(agent);
            Reply::Rules {
                files: vec![status],
            }
        }
        Err(message) => refused(message),
    }
}

/// `AddRule`: appends to the workspace's rules file and its trusted copy.
pub async fn add(
    agent: &Arc<Agent>,
    peer: Peer,
    workspace: String,
    action: String,
    rule: String,
) -> Reply {
    let config = match config_of(agent, peer.uid) {
        Ok(config) => config,
        Err(message) => return refused(message),
    };
    let Some(found) = config.workspace(&workspace) else {
        return refused(unknown(&workspace));
    };
    let file = found.rules_file();
    let action = match action.as_str() {
        "allow" => Action::Allow,
        "deny" => Action::Deny,
        other => return refused(format!("unknown action `{other}`: allow or deny")),
    };
    let parsed = match Rule::parse(&rule) {
        Ok(parsed) => parsed,
        Err(error) => return refused(format!("rule `{rule}`: {error}")),
    };
    let store = Arc::clone(&agent.trust);
    let path = file.clone();
    let added = blocking(move || store.append(&path, owner_for(peer.uid), action, &parsed)).await;
    match added {
        Ok(appended) => {
            reload_sessions(agent);
            Reply::RuleAdded {
                file: file.display().to_string(),
                added: appended.changed,
                note: appended.file_note,
            }
        }
        Err(message) => refused(message),
    }
}
