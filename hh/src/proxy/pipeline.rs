//! The one pipeline every front door feeds: a client connection whose destination (`host`,
//! `port`) is known — a CONNECT tunnel ([`super::explicit`]), a redirected connection
//! ([`super::transparent`]) — is served here, and nowhere else decides what its bytes may do.
//!
//! The first bytes say what the connection carries ([`first_bytes::classify`]):
//!
//! - TLS: terminated and every request inside decided on its own ([`intercept::serve_tls`]);
//! - an HTTP/1 request line: every request decided on its own, exactly as inside TLS, and sent
//!   upstream in plain HTTP ([`intercept::serve_plain`]);
//! - anything else: raw TCP, decided as a connection by [`DecisionEngine::decide_raw`]: on a
//!   web port only a `proto=tcp` rule admits it. Spliced when allowed; closed and audited when
//!   not (the bytes are not HTTP, so there is no one to read a 403).
//!
//! `bypass_proxy` hosts come here too once their ClientHello was checked
//! ([`splice_unparsed`] with [`Unparsed::Bypass`]).
//!
//! [`DecisionEngine::decide_raw`]: super::decision::DecisionEngine::decide_raw

use std::{io, sync::Arc, sync::atomic::Ordering};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
};

use super::{
    first_bytes::{self, Carried, Prefixed},
    intercept,
    relay::splice,
    state::Proxy,
    upstream::DialError,
};
use crate::rules::{Host, Request};

/// Serves a connection whose destination is known until it ends.
pub async fn tunnel(proxy: Arc<Proxy>, client: TcpStream, host: Host, port: u16) -> io::Result<()> {
    // A handshake record is known from one byte, and TLS wants the stream untouched: peek it.
    let mut first = [0u8; 1];
    let peeked = match tokio::time::timeout(proxy.idle_timeout, client.peek(&mut first)).await {
        Ok(peeked) => peeked?,
        Err(_) => return Ok(()),
    };
    if peeked == 0 {
        return Ok(());
    }
    if first_bytes::classify(&first, usize::MAX) == Some(Carried::Tls) {
        intercept::serve_tls(proxy, client, host, port).await;
        return Ok(());
    }
    let Some((carried, prefix, client)) = read_until_known(&proxy, client).await? else {
        return Ok(());
    };
    match carried {
        Carried::Http1 => {
            intercept::serve_plain(proxy, Prefixed::new(prefix, client), host, port).await;
            Ok(())
        }
        // Told apart by the peek above.
        Carried::Tls => Ok(()),
        Carried::Unparsed => {
            splice_unparsed(&proxy, client, prefix, host, port, Unparsed::Raw).await
        }
    }
}

/// Reads the connection's first bytes until [`first_bytes::classify`] knows what they are.
/// `None`: the client left or stayed silent past the idle bound first.
async fn read_until_known(
    proxy: &Proxy,
    mut client: TcpStream,
) -> io::Result<Option<(Carried, Vec<u8>, TcpStream)>> {
    let max_line = proxy.limits.max_head_bytes;
    let deadline = tokio::time::Instant::now() + proxy.idle_timeout;
    let mut prefix = Vec::with_capacity(512);
    loop {
        if let Some(carried) = first_bytes::classify(&prefix, max_line) {
            return Ok(Some((carried, prefix, client)));
        }
        prefix.reserve(512);
        let read = match tokio::time::timeout_at(deadline, client.read_buf(&mut prefix)).await {
            Ok(read) => read?,
            Err(_) => return Ok(None),
        };
        if read == 0 {
            return Ok(None);
        }
    }
}

/// Why a connection's bytes go through unparsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unparsed {
    /// Neither TLS nor HTTP/1: only a rule for raw TCP admits it on a web port.
    Raw,
    /// TLS that `bypass_proxy` leaves unterminated (its ClientHello already checked).
    Bypass,
}

/// Decides `host:port` as a connection whose bytes will not be parsed, and splices it to the
/// upstream when allowed (closes it when not), `prefix` (bytes already read from the client)
/// first. No path or method rule can be enforced on such bytes ([`Policy::decide_opaque`]).
///
/// [`Policy::decide_opaque`]: crate::rules::Policy::decide_opaque
pub async fn splice_unparsed(
    proxy: &Proxy,
    client: TcpStream,
    prefix: Vec<u8>,
    host: Host,
    port: u16,
    why: Unparsed,
) -> io::Result<()> {
    let connection = Request::tcp(host.clone(), port);
    let (ruling, mut ticket) = match why {
        Unparsed::Raw => proxy.engine.decide_raw(&connection).await,
        Unparsed::Bypass => proxy.engine.decide_opaque(&connection).await,
    };
    if !ruling.allowed {
        match &ruling.refusal {
            Some(refusal) => tracing::warn!(%host, port, %refusal, "unparsed bytes refused"),
            None => tracing::info!(%host, port, "unparsed connection denied; closing it"),
        }
        return Ok(());
    }
    match proxy
        .upstream
        .dial_tcp(&host, port, ruling.grants_dial(&host))
        .await
    {
        Ok(mut upstream) => {
            upstream.write_all(&prefix).await?;
            ticket.up.fetch_add(prefix.len() as u64, Ordering::Relaxed);
            drop(prefix);
            let idle = proxy.idle_timeout;
            splice(client, upstream, idle, &ticket.up, &ticket.down).await?;
        }
        Err(error) => {
            if let DialError::Refused { refused, .. } = &error {
                ticket.refused(&refused.to_string());
            }
            tracing::warn!(%error, "upstream unreachable; closing the connection");
        }
    }
    Ok(())
}
