//! The agent's answers on the client socket. Who asks is the kernel's word (`SO_PEERCRED`):
//! a user sees and acts on their own sessions only; root on all.

use std::{future::Future, sync::Arc};

use tokio::sync::broadcast;

use super::{Agent, session, trusted_rules};
use crate::{
    api::{
        protocol::{AgentHello, Answer, BuildRequest, ClientRequest, Event, ExecRequest, Reply},
        server::{ExecStream, Peer, Service},
    },
    sys::owned_dir::OwnedDir,
};

/// The agent as the socket's [`Service`].
pub struct AgentService(pub Arc<Agent>);

impl Service for AgentService {
    fn handle(&self, peer: Peer, request: ClientRequest) -> impl Future<Output = Reply> + Send {
        let agent = Arc::clone(&self.0);
        async move { handle(&agent, peer, request).await }
    }

    fn events(&self) -> broadcast::Receiver<Event> {
        self.0.events.subscribe()
    }

    fn may_see(&self, peer: &Peer, event: &Event) -> bool {
        may_see(&self.0, peer, event)
    }

    fn exec(
        &self,
        peer: Peer,
        request: ExecRequest,
        stream: ExecStream,
    ) -> impl Future<Output = std::io::Result<()>> + Send {
        let agent = Arc::clone(&self.0);
        async move { super::exec::serve(&agent, peer, request, stream).await }
    }

    fn build_image(
        &self,
        peer: Peer,
        request: BuildRequest,
        stream: ExecStream,
    ) -> impl Future<Output = std::io::Result<()>> + Send {
        let agent = Arc::clone(&self.0);
        async move { super::image_build::serve(&agent, peer, request, stream).await }
    }
}

async fn handle(agent: &Arc<Agent>, peer: Peer, request: ClientRequest) -> Reply {
    match request {
        ClientRequest::Hello {} => Reply::Hello(AgentHello {
            version: env!("CARGO_PKG_VERSION").into(),
            peer_uid: peer.uid,
            mode: "agent".into(),
        }),
        ClientRequest::StartSession(start) => match session::start(agent, peer, start).await {
            Ok(info) => Reply::Session(info),
            Err(error) => Reply::Error {
                message: format!("{error:#}"),
            },
        },
        ClientRequest::ListSessions {} => {
            let mut sessions: Vec<_> = agent
                .sessions()
                .values()
                .filter(|session| owns(&peer, session.owner()))
                .cloned()
                .collect::<Vec<_>>()
                .into_iter()
                .map(|session| session.snapshot(&agent.cgroup_root))
                .collect();
            sessions.sort_by(|a, b| (a.started_at, &a.id).cmp(&(b.started_at, &b.id)));
            Reply::Sessions { sessions }
        }
        ClientRequest::StopSession { id } => {
            let owner = agent.sessions().get(&id).map(|session| session.owner());
            match owner {
                // Someone else's session looks exactly like no session.
                Some(owner) if owns(&peer, owner) => {
                    session::stop(agent, &id, "stopped by its user").await;
                    Reply::Ok
                }
                _ => no_such_session(&id),
            }
        }
        ClientRequest::ListApprovals {} => Reply::Approvals {
            pending: agent
                .approvals
                .pending()
                .into_iter()
                .filter(|pending| session_owned_by(agent, &peer, &pending.session))
                .collect(),
        },
        ClientRequest::SuggestRules {
            workspace,
            since_secs,
        } => {
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |since| {
                    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
                });
            let since_ms =
                since_secs.map_or(0, |secs| now_ms.saturating_sub(secs.saturating_mul(1000)));
            let uid = (!peer.is_root()).then_some(peer.uid);
            Reply::Suggestions {
                suggestions: agent
                    .suggest_rules(uid, &workspace, since_ms)
                    .into_iter()
                    .map(|suggestion| crate::api::protocol::SuggestedRule {
                        rule: suggestion.rule.to_string(),
                        covers: suggestion.covers as u64,
                        examples: suggestion.examples,
                    })
                    .collect(),
            }
        }
        ClientRequest::ListGrants {} => Reply::Grants {
            grants: agent
                .approvals
                .grants()
                .into_iter()
                .filter(|grant| session_owned_by(agent, &peer, &grant.session))
                .collect(),
        },
        ClientRequest::RevokeGrant { id } => {
            let owned = agent
                .approvals
                .grants()
                .iter()
                .any(|grant| grant.id == id && session_owned_by(agent, &peer, &grant.session));
            if owned && agent.approvals.revoke(id) {
                Reply::Ok
            } else {
                // Someone else's grant looks exactly like no grant.
                Reply::Error {
                    message: format!("no grant {id} of yours (see `hh approvals grants`)"),
                }
            }
        }
        ClientRequest::Answer { id, answer } => {
            let pending = agent.approvals.pending().into_iter().find(|pending| {
                pending.id == id && session_owned_by(agent, &peer, &pending.session)
            });
            let Some(pending) = pending else {
                // Someone else's prompt looks exactly like no prompt.
                return Reply::Error {
                    message: format!("no pending approval {id} of yours (see `hh approvals`)"),
                };
            };
            let forever = matches!(
                answer,
                Answer::AllowForever { .. } | Answer::DenyForever { .. }
            );
            // Filesystem work (a user's FUSE directory can stall it): off the async workers.
            if forever
                && !tokio::task::block_in_place(|| may_write_rules(&peer, &pending.rules_file))
            {
                return Reply::Error {
                    message: format!(
                        "only the owner of {} (or root) may answer \"forever\"; answer once instead",
                        pending.rules_file
                    ),
                };
            }
            match agent.approvals.answer(id, answer) {
                Ok(_) => Reply::Ok,
                Err(error) => Reply::Error {
                    message: error.to_string(),
                },
            }
        }
        ClientRequest::RulesStatus { workspace } => {
            trusted_rules::status(agent, peer, workspace).await
        }
        ClientRequest::TrustRules {
            workspace,
            file,
            sha256,
        } => trusted_rules::trust(agent, peer, workspace, file, sha256).await,
        ClientRequest::AddRule {
            workspace,
            action,
            rule,
        } => trusted_rules::add(agent, peer, workspace, action, rule).await,
        ClientRequest::Subscribe {} | ClientRequest::Exec(_) | ClientRequest::BuildImage(_) => {
            Reply::Error {
                message:
                    "internal: subscriptions, execs and builds are handled by the socket server"
                        .into(),
            }
        }
    }
}

fn no_such_session(id: &str) -> Reply {
    Reply::Error {
        message: format!("no session `{id}` of yours (see `hh session list`)"),
    }
}

fn owns(peer: &Peer, owner: u32) -> bool {
    peer.is_root() || peer.uid == owner
}

/// Whether `peer` may have the agent append to `rules_file`: root, or the owner of the
/// directory it lives in (a user with a session on someone else's readable workspace may not
/// change that workspace's rules for good). Checked on the directory's descriptor; the write
/// checks the owner again on its own ([`crate::rules::TrustStore::append`]).
fn may_write_rules(peer: &Peer, rules_file: &str) -> bool {
    peer.is_root()
        || std::path::Path::new(rules_file)
            .parent()
            .and_then(|dir| OwnedDir::open(dir, Some(peer.uid)).ok())
            .is_some()
}

/// Whether `peer` may see and answer what session `id` holds.
fn session_owned_by(agent: &Agent, peer: &Peer, id: &str) -> bool {
    agent
        .sessions()
        .get(id)
        .is_some_and(|session| owns(peer, session.owner()))
}

fn may_see(agent: &Agent, peer: &Peer, event: &Event) -> bool {
    if peer.is_root() {
        return true;
    }
    let session_id = match event {
        Event::ApprovalPending(pending) => &pending.session,
        Event::Decision(decision) => &decision.session,
        Event::SessionStarted(info) => return info.owner_uid == peer.uid,
        Event::SessionEnded { owner_uid, .. } => return *owner_uid == peer.uid,
        Event::ApprovalResolved { session, .. } => session,
    };
    agent
        .sessions()
        .get(session_id)
        .is_some_and(|session| session.owner() == peer.uid)
}
