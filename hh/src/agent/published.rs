//! A workspace's `ports`: session ports published on the host (`127.0.0.1:8080` on the host
//! reaching the session's own `127.0.0.1:3000`, a dev server say).
//!
//! The agent listens on the host address itself, in its own namespace, from the session's
//! start to its end, and carries each connection to the session's port by a socket it makes
//! inside the session's network namespace ([`netns::bind_in_namespace`]): the session never
//! gets a host socket, and nothing of the host is reachable from it this way. A host port below
//! [`FIRST_PUBLISHED_PORT`] is refused when the config loads (only root may listen there); the
//! address is loopback unless the entry names another. Every connection is one audit line
//! (`rule: config ports`), with its bytes.

use std::{
    fs::File,
    io,
    net::{Ipv4Addr, SocketAddrV4},
    sync::{Arc, atomic::AtomicU64},
    time::Duration,
};

use tokio::net::{TcpListener, TcpStream};

use super::forwards::Relayed;
use crate::{
    audit::{AuditLog, Decision},
    config::schema::PublishedPort,
    proxy::relay::splice,
    sys::netns,
};

/// The most connections one published port carries at once.
pub const MAX_CONNECTIONS: usize = 64;

/// How long a published connection may stay silent both ways before it is closed.
const IDLE: Duration = Duration::from_secs(600);

/// What an audit line names as the deciding rule.
const RULE: &str = "config ports";

#[derive(Debug, thiserror::Error)]
#[error("cannot publish {port}: {source} (another session, or a program of the host, may have it)")]
pub struct PublishError {
    port: PublishedPort,
    #[source]
    source: io::Error,
}

/// The lowest port an unprivileged process of this host may listen on (`1024` unless the
/// host's `net.ipv4.ip_unprivileged_port_start` says otherwise): the agent, root, listens for
/// the session's owner only where they could themselves.
fn unprivileged_port_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(1024)
}

/// Binds each published port on the host, non-blocking.
pub fn bind(ports: &[PublishedPort]) -> Result<Vec<(PublishedPort, TcpListener)>, PublishError> {
    let first = unprivileged_port_start();
    ports
        .iter()
        .map(|port| {
            let failed = |source| PublishError {
                port: *port,
                source,
            };
            if port.host_port < first {
                return Err(failed(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!("this host lets only root listen below port {first}"),
                )));
            }
            let listener =
                std::net::TcpListener::bind(SocketAddrV4::new(port.address, port.host_port))
                    .map_err(failed)?;
            listener.set_nonblocking(true).map_err(failed)?;
            Ok((*port, TcpListener::from_std(listener).map_err(failed)?))
        })
        .collect()
}

/// One published port of one session.
pub struct Published {
    pub session: String,
    pub port: PublishedPort,
    /// The session's network namespace, held open.
    pub netns: File,
    pub audit: Option<Arc<AuditLog>>,
}

/// Carries the host's connections on `listener` into the session until the listener fails.
pub async fn serve(listener: TcpListener, published: Arc<Published>) {
    crate::sys::accept::serve_bounded(listener, MAX_CONNECTIONS, |client, _peer| {
        let published = Arc::clone(&published);
        async move { relay(&published, client).await }
    })
    .await;
}

async fn relay(published: &Published, client: TcpStream) {
    let started = std::time::Instant::now();
    let (up, down) = (AtomicU64::new(0), AtomicU64::new(0));
    let session_port = published.port.session_port;
    let decision = match connect_inside(published, session_port).await {
        Ok(inside) => {
            let _ = client.set_nodelay(true);
            let _ = inside.set_nodelay(true);
            if let Err(error) = splice(client, inside, IDLE, &up, &down).await {
                tracing::debug!(session_port, %error, "published connection ended with an error");
            }
            Decision::Allow
        }
        Err(error) => {
            // Nothing listens there in the session: the host's client sees its connection
            // closed.
            tracing::info!(session_port, %error, "published port: nothing answers in the session");
            Decision::Deny
        }
    };
    if let Some(audit) = &published.audit {
        let relayed = Relayed {
            session: &published.session,
            host: published.port.address.to_string(),
            port: published.port.host_port,
            rule: RULE,
            decision,
            started,
        };
        relayed.record(audit, up.into_inner(), down.into_inner());
    }
}

/// A connection to the session's own `127.0.0.1:port`, made inside its namespace.
async fn connect_inside(published: &Published, port: u16) -> io::Result<TcpStream> {
    let namespace = published.netns.try_clone()?;
    let stream = tokio::task::spawn_blocking(move || {
        netns::bind_in_namespace(namespace, move || {
            let stream =
                std::net::TcpStream::connect(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))?;
            stream.set_nonblocking(true)?;
            Ok(stream)
        })
    })
    .await
    .map_err(io::Error::other)??;
    TcpStream::from_std(stream)
}
