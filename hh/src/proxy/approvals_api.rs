//! The standalone proxy's side of the API socket (`hh proxy --api-socket PATH`): approvals only.
//!
//! `hh approvals` and the TUI speak the agent's protocol ([`crate::api`]) to it: `hello`,
//! `list_approvals`, `answer` and `subscribe`. The standalone proxy has no sessions, so session
//! requests are refused with a reply saying so.
//!
//! Who may talk to it: root and the uid that runs the proxy (its approvals hold that user's
//! traffic); anyone else is refused, for requests and for events alike. The socket's mode (0660)
//! already keeps most others out; this check does not depend on it.

use std::sync::Arc;

use tokio::sync::broadcast;

use super::approvals::Approvals;
use crate::api::{
    protocol::{AgentHello, ClientRequest, Event, Reply},
    server::{Peer, Service},
};

/// Serves the approvals of one standalone proxy.
pub struct ApprovalsService {
    approvals: Arc<Approvals>,
    /// The uid that runs the proxy.
    owner_uid: u32,
}

impl ApprovalsService {
    pub fn new(approvals: Arc<Approvals>, owner_uid: u32) -> ApprovalsService {
        ApprovalsService {
            approvals,
            owner_uid,
        }
    }

    fn authorized(&self, peer: &Peer) -> bool {
        peer.is_root() || peer.uid == self.owner_uid
    }
}

impl Service for ApprovalsService {
    async fn handle(&self, peer: Peer, request: ClientRequest) -> Reply {
        if !self.authorized(&peer) {
            tracing::warn!(uid = peer.uid, "API request from another user refused");
            return Reply::Error {
                message: format!(
                    "this hh proxy answers only root and uid {} (who runs it); you are uid {}",
                    self.owner_uid, peer.uid
                ),
            };
        }
        match request {
            ClientRequest::Hello {} => Reply::Hello(AgentHello {
                version: env!("CARGO_PKG_VERSION").into(),
                peer_uid: peer.uid,
                mode: "proxy".into(),
            }),
            ClientRequest::ListApprovals {} => Reply::Approvals {
                pending: self.approvals.pending(),
            },
            ClientRequest::Answer { id, answer } => match self.approvals.answer(id, answer) {
                Ok(_) => Reply::Ok,
                Err(error) => Reply::Error {
                    message: error.to_string(),
                },
            },
            ClientRequest::ListGrants {} => Reply::Grants {
                grants: self.approvals.grants(),
            },
            ClientRequest::RevokeGrant { id } => {
                if self.approvals.revoke(id) {
                    Reply::Ok
                } else {
                    Reply::Error {
                        message: format!("no grant {id} (expired, revoked, or never made)"),
                    }
                }
            }
            ClientRequest::StartSession(_)
            | ClientRequest::ListSessions {}
            | ClientRequest::StopSession { .. }
            | ClientRequest::RulesStatus { .. }
            | ClientRequest::TrustRules { .. }
            | ClientRequest::SuggestRules { .. }
            | ClientRequest::AddRule { .. } => Reply::Error {
                message: "this is a standalone hh proxy: it has no sessions, only approvals \
                          (start sessions with `hh agent`)"
                    .into(),
            },
            // The server answers subscriptions itself and never passes them here.
            ClientRequest::Subscribe {} | ClientRequest::Exec(_) | ClientRequest::BuildImage(_) => {
                Reply::Error {
                    message: "subscribe, exec and build are answered by the server".into(),
                }
            }
        }
    }

    fn events(&self) -> broadcast::Receiver<Event> {
        self.approvals.events().subscribe()
    }

    fn may_see(&self, peer: &Peer, _event: &Event) -> bool {
        // One proxy, one user: everything or nothing.
        self.authorized(peer)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::api::protocol::{Answer, ClientRequest};

    fn service() -> ApprovalsService {
        let (events, _) = broadcast::channel(8);
        let approvals = Approvals::new(8, Duration::from_secs(1), events);
        ApprovalsService::new(Arc::new(approvals), 1000)
    }

    fn peer(uid: u32) -> Peer {
        Peer {
            uid,
            gid: uid,
            pid: None,
        }
    }

    #[tokio::test]
    async fn only_root_and_the_owner_are_answered() {
        let service = service();
        let event = Event::ApprovalResolved {
            id: 1,
            outcome: "timed out".into(),
            session: "standalone".into(),
        };
        for (uid, allowed) in [(0, true), (1000, true), (1001, false)] {
            let reply = service
                .handle(peer(uid), ClientRequest::ListApprovals {})
                .await;
            let answered = matches!(reply, Reply::Approvals { .. });
            assert_eq!(answered, allowed, "uid {uid}: {reply:?}");
            assert_eq!(service.may_see(&peer(uid), &event), allowed, "uid {uid}");
        }
    }

    #[tokio::test]
    async fn hello_says_proxy_and_session_requests_are_refused() {
        let service = service();
        let hello = service.handle(peer(1000), ClientRequest::Hello {}).await;
        assert!(
            matches!(&hello, Reply::Hello(hello) if hello.mode == "proxy" && hello.peer_uid == 1000),
            "{hello:?}"
        );
        let sessions = service
            .handle(peer(1000), ClientRequest::ListSessions {})
            .await;
        assert!(
            matches!(&sessions, Reply::Error { message } if message.contains("no sessions")),
            "{sessions:?}"
        );
    }

    #[tokio::test]
    async fn an_answer_to_an_unknown_id_is_an_error_reply() {
        let service = service();
        let request = ClientRequest::Answer {
            id: 9,
            answer: Answer::AllowOnce,
        };
        let reply = service.handle(peer(0), request).await;
        assert!(
            matches!(&reply, Reply::Error { message } if message.contains("no pending approval 9")),
            "{reply:?}"
        );
    }
}
