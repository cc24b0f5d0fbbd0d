//! The explicit-proxy front door: clients that dial the proxy themselves (`HTTPS_PROXY`,
//! `curl --proxy`). Accepts connections, reads the first request head with the strict parser
//! ([`super::http1`]) and sends it one of two ways:
//!
//! - `CONNECT host:port`: refused at once with `403` when a deny rule covers the whole
//!   `host:port`; otherwise `200`, then the tunnel goes to [`pipeline::tunnel`], which every
//!   front door shares: TLS and HTTP/1 are parsed and every request decided on its own,
//!   anything else is raw TCP, which only a rule for raw TCP admits.
//! - absolute-form `http://…`: decided, forwarded with `Connection: close` and `Content-Length`
//!   written as the number the body is framed by, and the response streamed back; one request
//!   per client connection.
//!
//! Every decision goes through [`DecisionEngine`]. Heads are bounded by [`Limits`], every wait
//! by [`Proxy::idle_timeout`], concurrent clients by [`MAX_CONNECTIONS`].

use std::{
    io,
    net::SocketAddr,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
};
use tracing::Instrument as _;

use super::{
    approvals::Outgoing,
    http1::{BodyFraming, Header, RequestHead, parse_request_head, strip_hop_by_hop},
    pipeline,
    relay::copy_idle,
    state::Proxy,
    upstream::DialError,
};
use crate::{
    api::protocol::BodySize,
    rules::{Host, Request, canonical::parse_port},
};

/// The most client connections served at once; past it, new ones wait in the listen backlog.
pub const MAX_CONNECTIONS: usize = 1024;

/// Accepts clients until the listener fails; each runs on its own task.
pub async fn serve(listener: TcpListener, proxy: Arc<Proxy>) -> io::Result<()> {
    crate::sys::accept::serve_bounded(listener, MAX_CONNECTIONS, |client, peer| {
        let proxy = Arc::clone(&proxy);
        let span = tracing::info_span!("connection", client = %peer);
        async move {
            if let Err(error) = handle_client(proxy, client, peer).await {
                tracing::debug!(%peer, %error, "client connection ended with an error");
            }
        }
        .instrument(span)
    })
    .await;
    Ok(())
}

/// Serves one explicit-proxy client: its first request head decides the way.
pub(super) async fn handle_client(
    proxy: Arc<Proxy>,
    mut client: TcpStream,
    peer: SocketAddr,
) -> io::Result<()> {
    let _ = client.set_nodelay(true);
    let (head, head_len, buf) = match read_head(&proxy, &mut client).await? {
        Some(read) => read,
        None => return Ok(()),
    };
    tracing::debug!(%peer, method = %head.method, target = %head.target, "request");
    if head.method == "CONNECT" {
        if buf.len() > head_len {
            // The client must wait for our 200: bytes sent before it would skip the decision.
            return respond(
                &mut client,
                400,
                "Bad Request",
                "hh: data sent before the CONNECT was answered\n",
            )
            .await;
        }
        // The head's buffer is done with; a tunnel may live for hours.
        drop(buf);
        return connect(proxy, client, &head).await;
    }
    let scheme = head.target.get(..7);
    if scheme.is_some_and(|scheme| scheme.eq_ignore_ascii_case("http://")) {
        return absolute_form(&proxy, client, head, &buf[head_len..]).await;
    }
    respond(
        &mut client,
        400,
        "Bad Request",
        "hh is a proxy: send CONNECT host:port, or an absolute http:// URL\n",
    )
    .await
}

/// Reads until the strict parser has a whole head. `None`: the client left or did not finish the
/// head within the idle bound (the whole head, so a byte a minute cannot hold a slot), or the head
/// was refused (the `400` is already written).
async fn read_head(
    proxy: &Proxy,
    client: &mut TcpStream,
) -> io::Result<Option<(RequestHead, usize, Vec<u8>)>> {
    let mut buf = Vec::with_capacity(4096);
    let deadline = tokio::time::Instant::now() + proxy.idle_timeout;
    loop {
        match parse_request_head(&buf, &proxy.limits) {
            Ok(Some((head, len))) => return Ok(Some((head, len, buf))),
            Ok(None) => {}
            Err(error) => {
                respond(client, 400, "Bad Request", &format!("hh: {error}\n")).await?;
                return Ok(None);
            }
        }
        // Straight into the buffer's spare room: a chunk array here would sit in every
        // connection's task for as long as the connection lives.
        buf.reserve(4096);
        let read = match tokio::time::timeout_at(deadline, client.read_buf(&mut buf)).await {
            Ok(read) => read?,
            Err(_) => return Ok(None),
        };
        if read == 0 {
            return Ok(None);
        }
    }
}

async fn connect(proxy: Arc<Proxy>, mut client: TcpStream, head: &RequestHead) -> io::Result<()> {
    let Some((host, port)) = parse_connect_target(&head.target) else {
        return respond(
            &mut client,
            400,
            "Bad Request",
            &format!("hh: CONNECT target `{}` is not host:port\n", head.target),
        )
        .await;
    };
    let connection = Request::tcp(host.clone(), port);
    if let Some(ruling) = proxy.engine.refuse_early(&connection) {
        let body = proxy.engine.denial_text(&connection, &ruling);
        return respond(&mut client, 403, "Forbidden", &body).await;
    }
    // A literal the guard refuses and no rule names: every request inside would be refused at
    // dial time, so the CONNECT is (readably) refused now.
    if let Some(refused) = host.ip().and_then(|ip| proxy.upstream.refuses_literal(ip))
        && let Some(body) = proxy
            .engine
            .refuse_literal(&connection, &refused.to_string())
    {
        return respond(&mut client, 403, "Forbidden", &body).await;
    }
    client
        .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        .await?;
    pipeline::tunnel(proxy, client, host, port).await
}

/// `host:port` or `[v6]:port`, the host canonicalized; the port is required.
fn parse_connect_target(target: &str) -> Option<(Host, u16)> {
    let (host, port) = target.rsplit_once(':')?;
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.strip_suffix(']')?,
        None => host,
    };
    let port = parse_port(port).ok()?;
    Some((Host::parse(host).ok()?, port))
}

/// Decides an absolute-form request and forwards it with `Connection: close`.
async fn absolute_form(
    proxy: &Proxy,
    mut client: TcpStream,
    mut head: RequestHead,
    early_body: &[u8],
) -> io::Result<()> {
    let request = match Request::from_url(&head.method, &head.target) {
        Ok(request) => request,
        Err(error) => {
            return respond(&mut client, 400, "Bad Request", &format!("hh: {error}\n")).await;
        }
    };
    let outgoing = Outgoing {
        query: Outgoing::query_of(&head.target),
        body: match head.framing {
            BodyFraming::None | BodyFraming::ContentLength(0) => BodySize::None,
            BodyFraming::ContentLength(len) => BodySize::Bytes(len),
            BodyFraming::Chunked => BodySize::Streamed,
        },
    };
    let (ruling, mut ticket) = proxy.engine.decide_sending(&request, outgoing).await;
    if !ruling.allowed {
        let body = proxy.engine.denial_text(&request, &ruling);
        return respond(&mut client, 403, "Forbidden", &body).await;
    }
    let values = head.headers.iter().map(|header| header.value.as_slice());
    if let Some(why) = proxy.secrets.carried_over_plain_http(&head.target, values) {
        ticket.refused_by(format!("secret: {why}"));
        let body = format!(
            "hh blocked {}\n{why}\n",
            super::decision::describe(&request)
        );
        return respond(&mut client, 403, "Forbidden", &body).await;
    }
    let body_len = match head.framing {
        BodyFraming::None => 0,
        BodyFraming::ContentLength(len) => len,
        BodyFraming::Chunked => {
            return respond(
                &mut client,
                411,
                "Length Required",
                "hh: chunked request bodies are not relayed over plain http yet; send Content-Length\n",
            )
            .await;
        }
    };
    let named = ruling.grants_dial(&request.host);
    let mut upstream = match proxy
        .upstream
        .dial_tcp(&request.host, request.port, named)
        .await
    {
        Ok(upstream) => upstream,
        Err(DialError::Refused { host, refused }) => {
            ticket.refused(&refused.to_string());
            let error = DialError::Refused { host, refused };
            return respond(
                &mut client,
                403,
                "Forbidden",
                &format!("hh allowed the request but {error}\n"),
            )
            .await;
        }
        Err(error) => {
            return respond(&mut client, 502, "Bad Gateway", &format!("hh: {error}\n")).await;
        }
    };
    let authority = if request.port == 80 {
        request.host.to_string()
    } else {
        format!("{}:{}", authority_host(&request.host), request.port)
    };
    head.target = origin_form(&head.target);
    strip_hop_by_hop(&mut head.headers, false);
    head.headers.retain(|header| !header.is("host"));
    head.headers.insert(0, Header::new("Host", authority));
    head.headers.push(Header::new("Connection", "close"));
    write_length_plainly(&mut head);
    upstream.write_all(&head.to_bytes()).await?;

    // Only this message's body goes up; anything after it is not forwarded (one request per
    // connection), so nothing the upstream reads was left undecided.
    let early = &early_body[..early_body
        .len()
        .min(usize::try_from(body_len).unwrap_or(usize::MAX))];
    upstream.write_all(early).await?;
    ticket.up.fetch_add(early.len() as u64, Ordering::Relaxed);
    let (mut client_read, mut client_write) = client.split();
    let (mut upstream_read, mut upstream_write) = upstream.split();
    let rest = body_len - early.len() as u64;
    let idle = proxy.idle_timeout;
    let (up, down) = tokio::join!(
        copy_idle(
            &mut client_read,
            &mut upstream_write,
            Some(rest),
            idle,
            &ticket.up
        ),
        copy_idle(
            &mut upstream_read,
            &mut client_write,
            None,
            idle,
            &ticket.down
        ),
    );
    up?;
    down?;
    Ok(())
}

/// Writes `Content-Length` as the number the body is framed by: `007` goes up as `7`, since
/// some servers read a leading zero as octal and would end the body early, taking its rest for
/// a request nobody decided (http-garden's `garden-server-32`, DesyncBox's `CL-pad`).
fn write_length_plainly(head: &mut RequestHead) {
    if let BodyFraming::ContentLength(len) = head.framing {
        for header in head
            .headers
            .iter_mut()
            .filter(|header| header.is("content-length"))
        {
            header.value = len.to_string().into_bytes();
        }
    }
}

/// A host as it goes in an authority: IPv6 in brackets.
fn authority_host(host: &Host) -> String {
    match host.ip() {
        Some(std::net::IpAddr::V6(v6)) => format!("[{v6}]"),
        _ => host.to_string(),
    }
}

/// The path and query of an absolute URL, split the way [`Request::from_url`] splits it (so the
/// upstream gets the path that was decided on); the fragment is dropped.
fn origin_form(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.replace('\\', "/");
    let start = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let target = &rest[start..];
    let target = target.split_once('#').map_or(target, |(before, _)| before);
    if target.starts_with('/') {
        target.to_owned()
    } else {
        format!("/{target}")
    }
}

/// Writes a complete plain-text response and closes the connection's write side.
async fn respond(client: &mut TcpStream, status: u16, reason: &str, body: &str) -> io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    client.write_all(head.as_bytes()).await?;
    client.write_all(body.as_bytes()).await?;
    client.shutdown().await?;
    // Lingering close: closing with unread input sends a reset, which can destroy the answer
    // before the client reads it (an oversized head). Drain a bounded amount first.
    // On the heap: an array here would enlarge every connection's task by its size, for the
    // connection's whole life, not just while a refusal is written.
    let mut scratch = vec![0u8; 8192];
    let drain = async {
        let mut left: usize = 256 * 1024;
        while left > 0 {
            match client.read(&mut scratch).await {
                Ok(0) | Err(_) => break,
                Ok(read) => left = left.saturating_sub(read),
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_targets_need_a_host_and_a_port() {
        let parsed = |target| parse_connect_target(target).map(|(h, p)| (h.to_string(), p));
        assert_eq!(parsed("A.Test:8443"), Some(("a.test".into(), 8443)));
        assert_eq!(parsed("[::1]:443"), Some(("::1".into(), 443)));
        assert_eq!(parsed("a.test"), None);
        assert_eq!(parsed("a.test:0"), None);
        assert_eq!(parsed("a.test:https"), None);
    }

    #[test]
    fn content_length_goes_upstream_as_the_number_the_body_is_framed_by() {
        let sent = b"POST http://a.test/ HTTP/1.1\r\nHost: a.test\r\nContent-Length: 0010\r\n\r\n";
        let limits = super::super::http1::Limits::default();
        let (mut head, _) = parse_request_head(sent, &limits).unwrap().unwrap();
        write_length_plainly(&mut head);
        let lengths: Vec<&[u8]> = head.header_values("content-length").collect();
        assert_eq!(lengths, [b"10"]);
    }

    #[test]
    fn absolute_urls_become_origin_form_as_they_were_decided() {
        assert_eq!(origin_form("http://a.test"), "/");
        assert_eq!(origin_form("http://a.test?q=1"), "/?q=1");
        assert_eq!(origin_form("http://a.test:8080/x/y?q#frag"), "/x/y?q");
        assert_eq!(origin_form("http://a.test\\@b.test/x"), "/@b.test/x");
    }
}
