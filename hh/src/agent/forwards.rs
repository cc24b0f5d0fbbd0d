//! `localhost_forwards`: host ports a session reaches as its own `127.0.0.1:PORT` (a model
//! server on the host's 127.0.0.1:11434, say).
//!
//! For each forward (`PORT`, or `{ container_port, host_port }` as the seed writes it) the agent
//! opens a listener inside the session's network namespace (with the
//! proxy's, before anything of the session runs) and relays every connection to its host port
//! on the host's loopback, from the agent's own namespace. The session's connects to its own
//! loopback are never redirected by the programs, so these listeners are what it reaches; no
//! other host port is reachable. The config names the ports, so no rule decides them, but
//! every connection is one audit line (`rule: config localhost_forwards`), with its bytes.

use std::{
    io,
    net::{Ipv4Addr, SocketAddrV4},
    sync::{Arc, atomic::AtomicU64},
    time::{Duration, SystemTime},
};

use tokio::net::{TcpListener, TcpStream};

use crate::{
    audit::{AuditLog, AuditRecord, Decision},
    config::schema::LocalhostForward,
    proxy::relay::splice,
};

/// The most connections one forwarded port carries at once.
pub const MAX_CONNECTIONS: usize = 64;

/// How long a forwarded connection may stay silent both ways before it is closed.
const IDLE: Duration = Duration::from_secs(600);

/// What an audit line names as the deciding rule.
const RULE: &str = "config localhost_forwards";

/// Binds `127.0.0.1:container_port` for each forward, non-blocking; called inside the
/// session's namespace.
pub fn bind(
    forwards: &[LocalhostForward],
) -> io::Result<Vec<(LocalhostForward, std::net::TcpListener)>> {
    forwards
        .iter()
        .map(|forward| {
            let address = SocketAddrV4::new(Ipv4Addr::LOCALHOST, forward.container_port);
            let listener = std::net::TcpListener::bind(address)?;
            listener.set_nonblocking(true)?;
            Ok((*forward, listener))
        })
        .collect()
}

/// One forwarded port of one session.
pub struct Forward {
    pub session: String,
    pub ports: LocalhostForward,
    pub audit: Option<Arc<AuditLog>>,
}

/// Relays the session's connections on `listener` to the host's `127.0.0.1:host_port` until
/// the listener fails.
pub async fn serve(listener: TcpListener, forward: Arc<Forward>) {
    crate::sys::accept::serve_bounded(listener, MAX_CONNECTIONS, |client, _peer| {
        let forward = Arc::clone(&forward);
        async move { relay(&forward, client).await }
    })
    .await;
}

async fn relay(forward: &Forward, client: TcpStream) {
    let started = std::time::Instant::now();
    let (up, down) = (AtomicU64::new(0), AtomicU64::new(0));
    let port = forward.ports.host_port;
    let target = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
    let decision = match TcpStream::connect(target).await {
        Ok(host) => {
            let _ = client.set_nodelay(true);
            let _ = host.set_nodelay(true);
            if let Err(error) = splice(client, host, IDLE, &up, &down).await {
                tracing::debug!(port, %error, "forwarded connection ended with an error");
            }
            Decision::Allow
        }
        Err(error) => {
            // Nothing listens there on the host: the session sees its connection closed, as
            // it would see a refused connect.
            tracing::info!(port, %error, "forwarded port: the host's side refused");
            Decision::Deny
        }
    };
    if let Some(audit) = &forward.audit {
        let relayed = Relayed {
            session: &forward.session,
            host: "127.0.0.1".into(),
            port,
            rule: RULE,
            decision,
            started,
        };
        relayed.record(audit, up.into_inner(), down.into_inner());
    }
}

/// One connection the agent relayed by the config's say (a forward, a published port), for
/// its audit line.
pub(super) struct Relayed<'a> {
    pub session: &'a str,
    pub host: String,
    pub port: u16,
    /// The config key that decided it.
    pub rule: &'static str,
    pub decision: Decision,
    pub started: std::time::Instant,
}

impl Relayed<'_> {
    /// Writes its audit line, with the bytes each way; a line that cannot be written is logged.
    pub fn record(self, audit: &AuditLog, bytes_up: u64, bytes_down: u64) {
        let record = AuditRecord {
            time: SystemTime::now(),
            session: self.session.to_owned(),
            client_pid: None,
            client_host_pid: None,
            client_comm: None,
            client_cmdline: None,
            tool_use_ids: Vec::new(),
            method: None,
            host: self.host,
            path: None,
            port: self.port,
            decision: self.decision,
            rule: Some(self.rule.into()),
            bytes_up,
            bytes_down,
            duration_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
        };
        if let Err(error) = audit.record(&record) {
            tracing::warn!(%error, rule = self.rule, "cannot write the audit line of a relayed connection");
        }
    }
}
