//! The transparent front door (agent mode): connections the eBPF programs redirected to a
//! session's proxy listener, whose clients never asked for a proxy.
//!
//! The accepted socket's original destination comes from the kernel ([`OriginalDst`]); the
//! name behind it from the session's DNS stub ([`SyntheticAddresses`]). From there the
//! connection is served exactly like a CONNECT tunnel to that name and port, by the one
//! pipeline ([`pipeline::tunnel`]): TLS and plain HTTP parsed and decided per request,
//! anything else decided as raw TCP. A client that dialed the listener itself (it honours `HTTPS_PROXY`) has no
//! recorded destination and is served as an explicit-proxy client, under the same policy.
//!
//! Hosts in `bypass_proxy` are not intercepted: once the ClientHello's server name is checked
//! against the destination's name (and found to hide no other: [`bypass`]), the connection is
//! decided as an unparsed one and spliced to the name's upstream
//! ([`pipeline::splice_unparsed`]).
//!
//! One destination is special: [`CANARY`]. Before a session's shell starts, its init connects
//! there; seeing that connection here is the agent's proof that the session's traffic is
//! intercepted (an unknown runtime, gVisor or Kata, would not run the programs).

use std::{
    io,
    net::{IpAddr, Ipv4Addr, SocketAddrV4},
    sync::Arc,
};

use tokio::{
    net::{TcpListener, TcpStream},
    sync::Notify,
};
use tracing::Instrument as _;

use super::{
    bypass,
    client_process::{self, ClientProcess},
    explicit,
    pipeline::{self, Unparsed},
    state::Proxy,
};
use crate::{
    dns::SyntheticAddresses,
    enforce::original_dst::OriginalDst,
    rules::{DomainPattern, Host},
};

/// The canary's destination: TEST-NET-1 (RFC 5737), never a real upstream, and refused by the
/// proxy whatever the rules say.
pub const CANARY: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 9);

/// The most connections one session has open through the proxy; past it, new ones wait in the
/// listen backlog.
pub const MAX_SESSION_CONNECTIONS: usize = 512;

/// What one session's listener needs.
pub struct TransparentFront {
    pub proxy: Arc<Proxy>,
    pub original_dst: Arc<OriginalDst>,
    pub names: Arc<SyntheticAddresses>,
    /// Woken when the canary connection arrives.
    pub canary: Arc<Notify>,
    /// Hosts whose TLS is spliced, not terminated.
    pub bypass: Vec<DomainPattern>,
}

/// Accepts the session's redirected connections until the listener fails.
pub async fn serve(listener: TcpListener, front: Arc<TransparentFront>) -> io::Result<()> {
    crate::sys::accept::serve_bounded(listener, MAX_SESSION_CONNECTIONS, |client, peer| {
        let front = Arc::clone(&front);
        // Every line of this connection names its client (and, in the agent, its session).
        let span = tracing::info_span!(
            "connection",
            client = %peer,
            pid = tracing::field::Empty,
            comm = tracing::field::Empty
        );
        async move {
            let _ = client.set_nodelay(true);
            let destination = match front.original_dst.take(&client, peer) {
                Ok(destination) => destination,
                Err(error) => {
                    tracing::warn!(%peer, %error, "no original destination; closing");
                    return;
                }
            };
            let served = match destination {
                None => explicit::handle_client(Arc::clone(&front.proxy), client, peer).await,
                Some(redirect) => {
                    let process =
                        ClientProcess::look_up(redirect.host_pid, redirect.comm.clone()).await;
                    if let Some(process) = &process {
                        tracing::Span::current().record("pid", process.host_pid);
                        tracing::Span::current().record("comm", process.comm.as_str());
                    }
                    client_process::scope(process, redirected(&front, client, redirect.destination))
                        .await
                }
            };
            if let Err(error) = served {
                tracing::debug!(%peer, %error, "session connection ended with an error");
            }
        }
        .instrument(span)
    })
    .await;
    Ok(())
}

async fn redirected(
    front: &TransparentFront,
    client: TcpStream,
    destination: SocketAddrV4,
) -> io::Result<()> {
    if destination == CANARY {
        tracing::debug!("canary connection seen");
        front.canary.notify_one();
        return Ok(());
    }
    let Some(host) = destination_host(&front.names, *destination.ip()) else {
        // A synthetic address the stub no longer maps (evicted, or never issued): no name to
        // decide on, and the address itself means nothing upstream.
        tracing::info!(%destination, "synthetic address with no name; closing");
        return Ok(());
    };
    if front.bypass.iter().any(|pattern| pattern.matches(&host)) {
        return bypass(front, client, host, destination.port()).await;
    }
    pipeline::tunnel(Arc::clone(&front.proxy), client, host, destination.port()).await
}

/// A `bypass_proxy` host: its ClientHello must name it and hide no other name (a bypassed
/// name may not front for another: [`bypass`]), then the bytes go through unterminated.
async fn bypass(
    front: &TransparentFront,
    mut client: TcpStream,
    host: Host,
    port: u16,
) -> io::Result<()> {
    let idle = front.proxy.idle_timeout;
    if !bypass::client_hello_names(&mut client, &host, idle).await? {
        return Ok(());
    }
    pipeline::splice_unparsed(
        &front.proxy,
        client,
        Vec::new(),
        host,
        port,
        Unparsed::Bypass,
    )
    .await
}

/// The name a destination stands for: the stub's name for a synthetic address, else the
/// address itself (the client connected to a literal IP).
fn destination_host(names: &SyntheticAddresses, ip: Ipv4Addr) -> Option<Host> {
    if names.contains(ip) {
        return names.name_of(ip);
    }
    Some(Host::from_ip(IpAddr::V4(ip)))
}
