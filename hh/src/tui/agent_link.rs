//! The TUI's background talk with the agent: tokio tasks that hold the event subscription, poll
//! the session list, and send the UI's requests, each on its own connection. Everything they
//! learn goes into one channel the UI loop drains without waiting ([`FromAgent`]).
//!
//! The UI thread never awaits the network: it hands requests to [`AgentLink::send`] and reads
//! the outcome later as a [`FromAgent::Reply`].

use std::{
    path::{Path, PathBuf},
    sync::mpsc::Sender,
    time::{Duration, Instant},
};

use tokio::{runtime::Handle, sync::mpsc};

use crate::api::{
    client::{Client, ClientError},
    protocol::{AgentHello, ClientRequest, Event, Reply},
};

/// How long the link waits before it tries an unreachable agent again.
const RETRY: Duration = Duration::from_secs(1);

/// How often the session list (CPU, memory, counters from the cgroup) is refreshed.
const SESSIONS_POLL: Duration = Duration::from_secs(2);

/// What the link tells the UI.
#[derive(Debug)]
pub enum FromAgent {
    /// The agent answered `Hello` and the subscription is open.
    Connected(AgentHello),
    /// No agent answers (or it went away); the link keeps retrying.
    Unreachable(String),
    /// A subscription event, with when it was read off the socket (prompt latency starts here).
    Event { event: Event, received: Instant },
    /// The outcome of a request; `Err` carries the agent's refusal or the connection error.
    Reply {
        request: ClientRequest,
        result: Result<Reply, String>,
    },
}

/// The UI's handle on the background tasks.
pub struct AgentLink {
    requests: mpsc::UnboundedSender<ClientRequest>,
}

impl AgentLink {
    /// Starts the tasks on `runtime`; they stop when `to_ui`'s receiver is dropped.
    pub fn start(runtime: &Handle, socket: PathBuf, to_ui: Sender<FromAgent>) -> AgentLink {
        let (requests, mut incoming) = mpsc::unbounded_channel::<ClientRequest>();
        runtime.spawn(subscribe(socket.clone(), to_ui.clone()));
        runtime.spawn(poll_sessions(socket.clone(), to_ui.clone()));
        runtime.spawn(async move {
            while let Some(request) = incoming.recv().await {
                let (socket, to_ui) = (socket.clone(), to_ui.clone());
                // One task per request: a slow `StartSession` (image build) does not hold up an
                // answer to a prompt.
                tokio::spawn(async move {
                    let result = call(&socket, &request).await;
                    let _ = to_ui.send(FromAgent::Reply { request, result });
                });
            }
        });
        AgentLink { requests }
    }

    /// Queues `request`; never waits.
    pub fn send(&self, request: ClientRequest) {
        // Fails only once the runtime is gone, when the TUI is quitting anyway.
        let _ = self.requests.send(request);
    }
}

/// One request on a fresh connection.
async fn call(socket: &Path, request: &ClientRequest) -> Result<Reply, String> {
    let mut client = Client::connect(socket).await.map_err(|e| e.to_string())?;
    client.call(request).await.map_err(|e| e.to_string())
}

/// Holds the subscription, reconnecting after [`RETRY`]; after each (re)connect, fetches what
/// is already pending, since events only tell what happens from then on.
async fn subscribe(socket: PathBuf, to_ui: Sender<FromAgent>) {
    loop {
        let error = match subscribe_once(&socket, &to_ui).await {
            Ok(()) => return,
            Err(error) => error,
        };
        if to_ui
            .send(FromAgent::Unreachable(error.to_string()))
            .is_err()
        {
            return;
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// Returns `Ok` only when the UI is gone.
async fn subscribe_once(socket: &Path, to_ui: &Sender<FromAgent>) -> Result<(), ClientError> {
    let hello = match Client::connect(socket)
        .await?
        .call(&ClientRequest::Hello {})
        .await?
    {
        Reply::Hello(hello) => hello,
        other => return Err(ClientError::Refused(format!("unexpected reply {other:?}"))),
    };
    let mut subscription = Client::connect(socket).await?.subscribe().await?;
    if to_ui.send(FromAgent::Connected(hello)).is_err() {
        return Ok(());
    }
    for request in [
        ClientRequest::ListApprovals {},
        ClientRequest::ListSessions {},
    ] {
        let result = call(socket, &request).await;
        if to_ui.send(FromAgent::Reply { request, result }).is_err() {
            return Ok(());
        }
    }
    loop {
        let event = subscription.next().await?;
        let received = Instant::now();
        if to_ui.send(FromAgent::Event { event, received }).is_err() {
            return Ok(());
        }
    }
}

/// Refreshes the session list; errors are left to the subscription task to report.
async fn poll_sessions(socket: PathBuf, to_ui: Sender<FromAgent>) {
    let mut ticks = tokio::time::interval(SESSIONS_POLL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let request = ClientRequest::ListSessions {};
        if let Ok(reply) = call(&socket, &request).await {
            let message = FromAgent::Reply {
                request,
                result: Ok(reply),
            };
            if to_ui.send(message).is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{sync::Arc, time::Duration};

    use tokio::sync::broadcast;

    use super::*;
    use crate::api::{
        protocol::{Answer, PendingApproval},
        server::{self, Peer, Service},
    };

    /// An agent that knows no sessions, holds nothing, and refuses every answer.
    struct FakeAgent {
        events: broadcast::Sender<Event>,
    }

    impl Service for FakeAgent {
        async fn handle(&self, _peer: Peer, request: ClientRequest) -> Reply {
            match request {
                ClientRequest::Hello {} => Reply::Hello(AgentHello {
                    version: "test".into(),
                    peer_uid: 0,
                    mode: "agent".into(),
                }),
                ClientRequest::ListSessions {} => Reply::Sessions { sessions: vec![] },
                ClientRequest::ListApprovals {} => Reply::Approvals { pending: vec![] },
                _ => Reply::Error {
                    message: "refused by the fake agent".into(),
                },
            }
        }

        fn events(&self) -> broadcast::Receiver<Event> {
            self.events.subscribe()
        }

        fn may_see(&self, _peer: &Peer, _event: &Event) -> bool {
            true
        }
    }

    /// The next message that `wanted` accepts, skipping the others (session polls).
    fn next_matching(
        from_agent: &std::sync::mpsc::Receiver<FromAgent>,
        wanted: impl Fn(&FromAgent) -> bool,
    ) -> FromAgent {
        loop {
            let message = from_agent
                .recv_timeout(Duration::from_secs(5))
                .expect("the link said nothing for 5 s");
            if wanted(&message) {
                return message;
            }
        }
    }

    #[test]
    fn the_link_reports_connection_events_and_refusals_over_the_real_socket() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("agent.sock");
        let (events, _) = broadcast::channel(16);
        let agent = Arc::new(FakeAgent {
            events: events.clone(),
        });
        let listener = runtime.block_on(async { server::bind(&socket, None).unwrap() });
        runtime.spawn(server::serve(listener, agent));

        let (to_ui, from_agent) = std::sync::mpsc::channel();
        let link = AgentLink::start(runtime.handle(), socket, to_ui);
        let connected = next_matching(&from_agent, |m| matches!(m, FromAgent::Connected(_)));
        assert!(matches!(connected, FromAgent::Connected(hello) if hello.version == "test"));

        let approval = PendingApproval {
            process: None,
            id: 1,
            session: "s1".into(),
            method: None,
            host: "db.test".into(),
            path: None,
            port: 5432,
            waiting: 1,
            deadline_ms: 0,
            rules_file: "/w/harness-rules.toml".into(),
            layer: "workspace".into(),
            suggested_rule: "domain=db.test port=5432".into(),
            query: None,
            body: crate::api::protocol::BodySize::None,
            note: None,
        };
        events
            .send(Event::ApprovalPending(approval.clone()))
            .unwrap();
        let event = next_matching(&from_agent, |m| matches!(m, FromAgent::Event { .. }));
        assert!(
            matches!(event, FromAgent::Event { event: Event::ApprovalPending(a), .. } if a == approval)
        );

        link.send(ClientRequest::Answer {
            id: 1,
            answer: Answer::AllowOnce,
        });
        let reply = next_matching(&from_agent, |m| {
            matches!(
                m,
                FromAgent::Reply {
                    request: ClientRequest::Answer { .. },
                    ..
                }
            )
        });
        assert!(
            matches!(&reply, FromAgent::Reply { result: Err(e), .. } if e == "refused by the fake agent"),
            "{reply:?}"
        );
    }

    #[test]
    fn an_absent_agent_is_reported_as_unreachable() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (to_ui, from_agent) = std::sync::mpsc::channel();
        let _link = AgentLink::start(runtime.handle(), dir.path().join("none.sock"), to_ui);
        let message = next_matching(&from_agent, |m| matches!(m, FromAgent::Unreachable(_)));
        assert!(
            matches!(&message, FromAgent::Unreachable(e) if e.contains("sudo hh agent")),
            "{message:?}"
        );
    }
}
