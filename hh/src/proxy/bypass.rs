//! `bypass_proxy` hosts: TLS the proxy splices without terminating it. Before a byte goes
//! upstream, the client's first record must be a whole ClientHello ([`client_hello::parse`])
//! that names the destination's host in the clear and hides no other name (no Encrypted Client
//! Hello, no ESNI): the only thing hh checks on a bypassed connection is that name, so a
//! ClientHello whose real server name hh cannot read is refused like one naming another host.
//!
//! A refused ClientHello gets a fatal `access_denied` alert (RFC 8446 §6.2) before the close, so
//! the client's TLS library says why ("alert access denied") instead of a bare reset. Deciding
//! the connection against the rules and splicing it is the caller's ([`super::explicit`]).

use std::{io, time::Duration};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
};

use super::client_hello::{self, Hello};
use crate::rules::Host;

/// A fatal `access_denied` alert in a TLS 1.2-versioned record, as a server sends it before it
/// knows the version (RFC 8446 §5.1, §6).
const ACCESS_DENIED: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x31];

/// Whether `client`'s ClientHello (peeked, not consumed) may be spliced to `host`. On `false` the
/// client has been answered (an alert, or nothing for bytes that are not a ClientHello) and the
/// connection is done with.
pub async fn client_hello_names(
    client: &mut TcpStream,
    host: &Host,
    idle: Duration,
) -> io::Result<bool> {
    let (hello, peeked) = peek_client_hello(client, idle).await?;
    let why = match &hello {
        Hello::ServerName(Some(name)) if Host::parse(name).is_ok_and(|name| name == *host) => {
            return Ok(true);
        }
        Hello::ServerName(Some(_)) => "its ClientHello names another host",
        Hello::ServerName(None) => "its ClientHello names no host",
        Hello::EncryptedName => {
            "its ClientHello carries Encrypted Client Hello (or ESNI): the name it really asks \
             for cannot be read"
        }
        Hello::Malformed | Hello::Incomplete => {
            tracing::warn!(%host, "bypassed host without a whole TLS ClientHello; closing");
            return Ok(false);
        }
    };
    tracing::warn!(%host, reason = why, "bypassed host refused; closing");
    refuse(client, peeked, idle).await;
    Ok(false)
}

/// Peeks (without consuming) until the first TLS record is whole; also how many bytes it saw.
/// [`Hello::Incomplete`] when the record did not complete within `idle` or exceeds the bound.
async fn peek_client_hello(client: &TcpStream, idle: Duration) -> io::Result<(Hello, usize)> {
    let deadline = tokio::time::Instant::now() + idle;
    let mut buf = vec![0u8; client_hello::MAX_RECORD];
    let mut seen = 0;
    loop {
        let peeked = match tokio::time::timeout_at(deadline, client.peek(&mut buf)).await {
            Ok(peeked) => peeked?,
            Err(_) => return Ok((Hello::Incomplete, seen)),
        };
        match client_hello::parse(&buf[..peeked]) {
            Hello::Incomplete if peeked == 0 || peeked == buf.len() => {
                return Ok((Hello::Incomplete, peeked));
            }
            Hello::Incomplete => {
                // peek returns at once while bytes wait; pause until more may have arrived.
                if peeked == seen {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                seen = peeked;
            }
            hello => return Ok((hello, peeked)),
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok((Hello::Incomplete, seen));
        }
    }
}

/// Reads the `peeked` bytes (unread input would turn the close into a reset that can destroy
/// the alert before the client reads it), sends the alert and closes the write side.
async fn refuse(client: &mut TcpStream, peeked: usize, idle: Duration) {
    let answer = async {
        let mut consumed = vec![0u8; peeked];
        client.read_exact(&mut consumed).await?;
        client.write_all(&ACCESS_DENIED).await?;
        client.shutdown().await
    };
    if let Err(error) = tokio::time::timeout(idle, answer)
        .await
        .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
    {
        tracing::debug!(%error, "could not send the refusal alert");
    }
    // The client may still be sending (its next flight); let its reply to the alert arrive
    // before the socket goes, for at most a second.
    let mut scratch = vec![0u8; 512];
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while let Ok(read) = client.read(&mut scratch).await {
            if read == 0 {
                break;
            }
        }
    })
    .await;
}
