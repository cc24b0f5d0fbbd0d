//! Inside a tunnel whose destination is known (a CONNECT, a redirected connection): serve the
//! HTTP it carries and decide every request (every HTTP/2 stream) on its own (method, host,
//! path, port). Two ways in, one service ([`handle`]):
//!
//! - [`serve_tls`]: TLS, terminated with a leaf for the tunnel's host; HTTP/1.1 or HTTP/2.
//! - [`serve_plain`]: plain HTTP/1 (port 80, a CONNECT to it); upstream in plain HTTP too.
//!
//! - The ClientHello's SNI must name the CONNECT host (a tunnel to `a` may not speak to `b`); with
//!   no SNI (an IP literal), the leaf is for the CONNECT host anyway.
//! - Each request's `Host` and `:authority` (when given) must name the same host (and port, when
//!   they give one): otherwise `421`. On HTTP/2 this is checked per stream, so a connection
//!   reused for a second authority gets `421` for that stream.
//! - An allowed request goes upstream over TLS to the proxy-resolved, SSRF-checked address, the
//!   certificate verified for the name; bodies stream both ways. The tunnel keeps that upstream
//!   connection for its next requests while they come ([`super::kept_upstream`]). A WebSocket
//!   upgrade always gets a connection of its own.
//!
//! ALPN: the client is offered `h2` and `http/1.1`; the upstream connection is offered both too,
//! and each request is carried in whichever version each side chose (hyper frames it again).
//! The upstream is not asked before the client is answered: the client's handshake does not
//! wait for the upstream's, and a host no rule admits yet must not be contacted before its
//! request is decided.
//!
//! A WebSocket upgrade must be a real handshake ([`websocket::asked`]: key, version 13, no
//! body) or it is refused with `400`; a real one is decided like any request, and only when
//! allowed is it sent upstream (over `http/1.1`) with its `Upgrade`. The two connections are
//! spliced only on a `101` whose `Sec-WebSocket-Accept` matches the key
//! ([`websocket::accepted`]); any other `101` is a `502`. A refused or failed upgrade leaves
//! the client's connection parsing HTTP. Other upgrades (`h2c`) are hop-by-hop and stripped, so
//! the upstream answers as to a plain request.
//!
//! A field that spells a framing field with other punctuation (`Transfer_Encoding`) is refused
//! with `400` ([`super::http1::is_framing_lookalike`]): hyper frames the request without it, a
//! server behind the proxy might not. `Content-Length` goes upstream as the length hyper framed
//! the body by, never as the client wrote it (`010`).
//!
//! Fields that ask a server to re-route a request (`X-HTTP-Method-Override`,
//! `X-Original-URL`, …: [`super::http1::REROUTING`]) are stripped: the upstream sees the method and path that
//! were decided, nothing else.

use std::{convert::Infallible, pin::Pin, sync::Arc, time::Duration};

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::{
    Request as HttpRequest, Response, StatusCode, Uri, Version,
    body::Incoming,
    header::{self, HeaderMap, HeaderValue},
    service::service_fn,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::server::Acceptor;
use tokio::net::TcpStream;
use tokio_rustls::LazyConfigAcceptor;

use super::{
    approvals::Outgoing,
    body::Metered,
    decision::Ticket,
    http1::{END_TO_END, HOP_BY_HOP, is_framing_lookalike, is_rerouting},
    idle::{Activity, serve_until_idle},
    kept_upstream::{KeptUpstream, UpstreamSender},
    relay::splice,
    state::Proxy,
    upstream::{DialError, Offer},
    websocket,
};
use crate::{
    api::protocol::BodySize,
    rules::{Host, Method, NormPath, Request},
};

/// A response body: the upstream's, streamed, or one the proxy wrote.
pub type ProxyBody = Either<Metered<Incoming>, Full<Bytes>>;

/// Which protocol a tunnel's requests go upstream in: the one the client spoke.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Https,
    Http,
}

/// One request's handling, boxed: hyper reserves room for one request's future in every
/// connection for as long as the connection lives, and this one is large; boxed, an idle tunnel
/// holds a pointer.
type Handled =
    Pin<Box<dyn std::future::Future<Output = Result<Response<ProxyBody>, Infallible>> + Send>>;

/// The service that decides each request of one tunnel.
fn tunnel_service(
    proxy: Arc<Proxy>,
    host: Host,
    port: u16,
    scheme: Scheme,
    kept: KeptUpstream,
) -> impl hyper::service::Service<
    HttpRequest<Incoming>,
    Response = Response<ProxyBody>,
    Error = Infallible,
    Future = Handled,
> + Clone {
    service_fn(move |request| {
        let proxy = Arc::clone(&proxy);
        let host = host.clone();
        let kept = kept.clone();
        Box::pin(async move {
            let tunnel = Tunnel {
                proxy: &proxy,
                host: &host,
                port,
                scheme,
                kept: &kept,
            };
            Ok::<_, Infallible>(handle(&tunnel, request).await)
        }) as Handled
    })
}

/// Serves plain HTTP/1 requests on `client` (its first bytes were a request line) for `host`
/// until the client leaves; allowed ones go upstream in plain HTTP.
pub async fn serve_plain<I>(proxy: Arc<Proxy>, client: I, host: Host, port: u16)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let kept = KeptUpstream::new(proxy.upstream_keep);
    let (idle, max_head) = (proxy.idle_timeout, proxy.limits.max_head_bytes);
    let service = tunnel_service(proxy, host, port, Scheme::Http, kept);
    if let Err(error) = Box::pin(serve_http1(client, service, idle, max_head)).await {
        tracing::debug!(%error, "plain HTTP tunnel ended with an error");
    }
}

/// Terminates TLS on `client` for `host` and serves its requests until the client leaves.
pub async fn serve_tls(proxy: Arc<Proxy>, client: TcpStream, host: Host, port: u16) {
    let kept = KeptUpstream::new(proxy.upstream_keep);
    // Boxed: the handshake's state (an acceptor and a whole TLS connection in the making) is
    // needed until it ends, not for the tunnel's life.
    let Some(tls) = Box::pin(accept_client(&proxy, client, &host, port, &kept)).await else {
        return;
    };
    let (idle, max_head) = (proxy.idle_timeout, proxy.limits.max_head_bytes);
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let service = tunnel_service(proxy, host, port, Scheme::Https, kept);
    // Each version's connection future is boxed on its own, so a tunnel's memory is that of the
    // version it speaks, not of the larger of the two.
    let served = if h2 {
        Box::pin(serve_h2(tls, service, idle, max_head)).await
    } else {
        Box::pin(serve_http1(tls, service, idle, max_head)).await
    };
    if let Err(error) = served {
        tracing::debug!(%error, "tunnel connection ended with an error");
    }
}

type ClientTls = tokio_rustls::server::TlsStream<TcpStream>;

/// The client's TLS, terminated with a leaf for `host`; `None` (logged) when the client sent no
/// ClientHello in time, named another host, or the handshake failed.
///
/// Once the ClientHello named the right host, an upstream that a rule already admits is dialed
/// while the client's handshake runs ([`KeptUpstream::dial_ahead`]): a new connection then waits
/// for one handshake, not two in a row.
async fn accept_client(
    proxy: &Arc<Proxy>,
    client: TcpStream,
    host: &Host,
    port: u16,
    kept: &KeptUpstream,
) -> Option<ClientTls> {
    let accepting = LazyConfigAcceptor::new(Acceptor::default(), client);
    let start = match tokio::time::timeout(proxy.idle_timeout, accepting).await {
        Ok(Ok(start)) => start,
        Ok(Err(error)) => {
            tracing::debug!(%host, %error, "no TLS ClientHello in the tunnel");
            return None;
        }
        Err(_) => return None,
    };
    if let Some(sni) = start.client_hello().server_name() {
        let same = Host::parse(sni).is_ok_and(|sni| sni == *host);
        if !same {
            tracing::warn!(%host, sni, "SNI differs from the CONNECT host; closing the tunnel");
            return None;
        }
    }
    // IP literals are left to the first request: whether the SSRF guard lets one through
    // depends on the rule that allows that request.
    if host.is_name() && proxy.engine.admits_host(host, port) {
        kept.dial_ahead(Arc::clone(proxy), host.clone(), port);
    }
    let config = match proxy.leaves.get(host).await {
        Ok(key) => proxy.leaves.server_config_for(key, &[b"h2", b"http/1.1"]),
        Err(error) => {
            tracing::error!(%host, %error, "cannot issue a leaf certificate");
            return None;
        }
    };
    let config = match config {
        Ok(config) => config,
        Err(error) => {
            tracing::error!(%host, %error, "cannot build the TLS server configuration");
            return None;
        }
    };
    match tokio::time::timeout(proxy.idle_timeout, start.into_stream(config)).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(error)) => {
            tracing::debug!(%host, %error, "TLS handshake with the client failed");
            None
        }
        Err(_) => None,
    }
}

async fn serve_h2<S>(
    tls: ClientTls,
    service: S,
    idle: Duration,
    max_head: usize,
) -> hyper::Result<()>
where
    S: hyper::service::HttpService<Incoming, ResBody = ProxyBody>,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let activity = Activity::new();
    let connection = hyper::server::conn::http2::Builder::new(super::in_span::SpanExecutor)
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_STREAMS)
        .max_header_list_size(u32::try_from(max_head).unwrap_or(u32::MAX))
        .serve_connection(TokioIo::new(activity.watch(tls)), service);
    let shutdown = |connection: Pin<&mut _>| {
        hyper::server::conn::http2::Connection::graceful_shutdown(connection);
    };
    match serve_until_idle(connection, shutdown, &activity, idle).await {
        Some(served) => served,
        None => {
            tracing::debug!("idle HTTP/2 connection did not close in time; dropped");
            Ok(())
        }
    }
}

async fn serve_http1<I, S>(
    client: I,
    service: S,
    idle: Duration,
    max_head: usize,
) -> hyper::Result<()>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::HttpService<Incoming, ResBody = ProxyBody>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        // Bounds both the wait for the next request on a kept-alive connection and a slow head.
        .header_read_timeout(idle)
        // hyper refuses a buffer under 8 KiB.
        .max_buf_size(max_head.max(8192))
        .serve_connection(TokioIo::new(client), service)
        .with_upgrades()
        .await
}

/// The most HTTP/2 streams one client connection may have open at once.
const MAX_STREAMS: u32 = 100;

/// One tunnel, as each of its requests sees it.
struct Tunnel<'t> {
    proxy: &'t Proxy,
    host: &'t Host,
    port: u16,
    scheme: Scheme,
    kept: &'t KeptUpstream,
}

/// The name the proxy answers itself, for `hh doctor --session` to learn which of a session's
/// runtimes trust the session CA (`.invalid` is reserved: no real host has it, RFC 6761 §6.4).
pub const TRUST_CHECK_HOST: &str = "trust-check.hh.invalid";
/// What the proxy answers at [`TRUST_CHECK_HOST`].
pub const TRUST_CHECK_BODY: &str = "hh trust check: ok\n";

async fn handle(tunnel: &Tunnel<'_>, request: HttpRequest<Incoming>) -> Response<ProxyBody> {
    let Tunnel {
        proxy, host, port, ..
    } = *tunnel;
    if request.method() == hyper::Method::CONNECT {
        // A tunnel inside a tunnel would carry bytes no request check sees (whatever it names).
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "hh: CONNECT inside a tunnel is not allowed\n",
        );
    }
    if let Err(reason) = check_authority(&request, host, port) {
        return text(StatusCode::MISDIRECTED_REQUEST, reason);
    }
    if host.as_str() == TRUST_CHECK_HOST {
        // Answered here, never dialed nor decided: only proves the client accepted the leaf
        // the session CA signed (`hh doctor --session`).
        return text(StatusCode::OK, TRUST_CHECK_BODY);
    }
    // hyper framed this request without the field; an upstream that folds `_` to `-` would
    // frame it with it (see `is_framing_lookalike`).
    if let Some(name) = request
        .headers()
        .keys()
        .find(|name| is_framing_lookalike(name.as_str()))
    {
        return text(
            StatusCode::BAD_REQUEST,
            format!("hh: header `{name}` is no framing field, but some servers read it as one\n"),
        );
    }
    let method = match Method::parse(request.method().as_str()) {
        Ok(method) => method,
        Err(error) => return text(StatusCode::BAD_REQUEST, format!("{error}\n")),
    };
    let raw_path = request
        .uri()
        .path_and_query()
        .map_or("/", |path| path.as_str());
    let path = match NormPath::parse(raw_path) {
        Ok(path) => path,
        Err(error) => return text(StatusCode::BAD_REQUEST, format!("{error}\n")),
    };
    let body = body_size(&request);
    let websocket_key = match websocket::asked(
        request.method(),
        request.version(),
        request.headers(),
        body != BodySize::None,
    ) {
        websocket::Asked::Nothing => None,
        websocket::Asked::WebSocket { key } => Some(key),
        websocket::Asked::Invalid(why) => {
            return text(StatusCode::BAD_REQUEST, format!("hh: {why}\n"));
        }
    };
    let decided = Request::http(method, host.clone(), port, path);
    let outgoing = Outgoing {
        query: request.uri().query().map(str::to_owned),
        body,
    };
    let (ruling, mut ticket) = proxy.engine.decide_sending(&decided, outgoing).await;
    if !ruling.allowed {
        return text(
            StatusCode::FORBIDDEN,
            proxy.engine.denial_text(&decided, &ruling),
        );
    }
    let mut request = request;
    let https = tunnel.scheme == Scheme::Https;
    let (uri, headers) = (request.uri().clone(), request.headers_mut());
    if let Err(why) = proxy.secrets.fill(&decided, https, &uri, headers) {
        tracing::warn!(host = %host, %why, "a secret's placeholder where it may not go; refused");
        ticket.refused_by(format!("secret: {why}"));
        return text(
            StatusCode::FORBIDDEN,
            format!(
                "hh blocked {}\n{why}\nNo rule allows it: the [[secrets]] entry of the config \
                 says where the secret may go.\n",
                super::decision::describe(&decided)
            ),
        );
    }
    let named = ruling.grants_dial(host);
    match forward(tunnel, named, websocket_key, request, ticket).await {
        Ok(response) => response,
        Err(Failure::Dial(error @ DialError::Refused { .. })) => text(
            StatusCode::FORBIDDEN,
            format!("hh allowed the request but {error}\n"),
        ),
        Err(failure) => text(StatusCode::BAD_GATEWAY, format!("hh: {failure}\n")),
    }
}

/// The body size the request's framing announces (`content-length`, or an empty stream), before
/// a byte of it is read.
fn body_size(request: &HttpRequest<Incoming>) -> BodySize {
    use hyper::body::Body as _;
    match request.body().size_hint().exact() {
        Some(0) => BodySize::None,
        Some(len) => BodySize::Bytes(len),
        None => BodySize::Streamed,
    }
}

/// Why an allowed request got no upstream response.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error(transparent)]
    Dial(DialError),
    #[error("the upstream HTTP exchange failed: {0}")]
    Http(#[from] hyper::Error),
    #[error("the upstream sent no response head in time")]
    Timeout,
    #[error("the request target cannot be sent upstream")]
    Target,
    #[error("the upstream switched protocols although the request did not ask it to")]
    UnaskedSwitch,
    #[error("the upstream's 101 does not accept the WebSocket key (Sec-WebSocket-Accept)")]
    BadAccept,
}

async fn forward(
    tunnel: &Tunnel<'_>,
    named_by_rule: bool,
    websocket_key: Option<String>,
    mut request: HttpRequest<Incoming>,
    mut ticket: Ticket,
) -> Result<Response<ProxyBody>, Failure> {
    let Tunnel {
        proxy,
        host,
        port,
        scheme,
        kept,
    } = *tunnel;
    let websocket = websocket_key.is_some();
    let mut sender = upstream_sender(tunnel, named_by_rule, websocket, &mut ticket).await?;
    let upstream_h2 = matches!(sender, UpstreamSender::H2(_));
    let client_upgrade = websocket.then(|| hyper::upgrade::on(&mut request));
    let (mut parts, body) = request.into_parts();
    write_length_plainly(&mut parts.headers, &body);
    let body = Metered::new(body, Arc::clone(&ticket.up), proxy.idle_timeout, None);
    let upgrade = parts.headers.get(header::UPGRADE).cloned();
    strip_hop_by_hop(&mut parts.headers);
    let rerouting: Vec<_> = parts
        .headers
        .keys()
        .filter(|name| is_rerouting(name.as_str()))
        .cloned()
        .collect();
    for name in rerouting {
        parts.headers.remove(name);
    }
    let authority = authority(host, port, scheme);
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |path| path.as_str())
        .to_owned();
    if upstream_h2 {
        // HTTP/2 carries the authority in the URI, not in Host (RFC 9113 §8.3.1).
        parts.uri = Uri::builder()
            .scheme("https")
            .authority(authority.as_str())
            .path_and_query(path)
            .build()
            .map_err(|_| Failure::Target)?;
        parts.headers.remove(header::HOST);
        parts.version = Version::HTTP_2;
    } else {
        // Origin form upstream; the authority travels in Host, which an HTTP/2 client did not
        // send.
        parts.uri = path.parse().map_err(|_| Failure::Target)?;
        if !parts.headers.contains_key(header::HOST) {
            let value = HeaderValue::from_str(&authority).map_err(|_| Failure::Target)?;
            parts.headers.insert(header::HOST, value);
        }
        parts.version = Version::HTTP_11;
        if let (true, Some(upgrade)) = (websocket, upgrade) {
            parts.headers.insert(header::UPGRADE, upgrade);
            parts
                .headers
                .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        }
    }
    let request = HttpRequest::from_parts(parts, body);
    let response = tokio::time::timeout(proxy.idle_timeout, sender.send(request))
        .await
        .map_err(|_| Failure::Timeout)??;
    if !websocket {
        kept.put(sender, named_by_rule);
    }
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        return match (client_upgrade, websocket_key) {
            (Some(client_upgrade), Some(key)) => {
                if !websocket::accepted(response.headers(), &key) {
                    // Frames would follow a handshake the upstream did not make: no request
                    // check would see what the tunnel then carries.
                    return Err(Failure::BadAccept);
                }
                Ok(switch_protocols(proxy, response, client_upgrade, ticket))
            }
            // Bytes after an unasked switch would pass no request check.
            _ => Err(Failure::UnaskedSwitch),
        };
    }
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    // The response body carries the ticket: the audit line is written once it is done.
    let down = Arc::clone(&ticket.down);
    let body = Metered::new(body, down, proxy.idle_timeout, Some(ticket));
    Ok(Response::from_parts(parts, Either::Left(body)))
}

/// A kept connection when one is free, else a new one (kept afterwards unless it carries a
/// WebSocket, which takes the connection over). One dial at a time per tunnel: concurrent
/// requests (HTTP/2 streams) wait for it, then share the connection when it is HTTP/2
/// ([`super::kept_upstream`]). A refused dial is written on the ticket.
async fn upstream_sender(
    tunnel: &Tunnel<'_>,
    named_by_rule: bool,
    websocket: bool,
    ticket: &mut Ticket,
) -> Result<UpstreamSender, Failure> {
    let Tunnel {
        proxy,
        host,
        port,
        scheme,
        kept,
    } = *tunnel;
    if !websocket && let Some(sender) = kept.take(named_by_rule).await {
        return Ok(sender);
    }
    let _turn = kept.dial_turn().await;
    let permits = if websocket {
        kept.permits(&proxy.upstream_connections).await
    } else {
        match kept
            .take_or_permits(named_by_rule, &proxy.upstream_connections)
            .await
        {
            Ok(sender) => return Ok(sender),
            Err(permits) => permits,
        }
    };
    let dialed = match scheme {
        Scheme::Https => {
            let offer = if websocket {
                Offer::Http1
            } else {
                Offer::H2OrHttp1
            };
            match proxy
                .upstream
                .dial_tls(host, port, named_by_rule, offer)
                .await
            {
                Ok(tls) => Ok(UpstreamSender::handshake(tls, permits).await?),
                Err(error) => Err(error),
            }
        }
        Scheme::Http => match proxy.upstream.dial_tcp(host, port, named_by_rule).await {
            Ok(tcp) => Ok(UpstreamSender::handshake_plain(tcp, permits).await?),
            Err(error) => Err(error),
        },
    };
    let sender = dialed.map_err(|error| {
        if let DialError::Refused { refused, .. } = &error {
            ticket.refused(&refused.to_string());
        }
        Failure::Dial(error)
    })?;
    if !websocket && let Some(shared) = sender.shared() {
        // Before the turn ends: the streams waiting for it take this one.
        kept.put(shared, named_by_rule);
    }
    Ok(sender)
}

/// The upstream agreed to switch: answer the client's `101` with the upstream's, then splice the
/// two upgraded connections (the ticket goes with them, so the audit line counts their bytes).
fn switch_protocols(
    proxy: &Proxy,
    mut response: Response<Incoming>,
    client_upgrade: hyper::upgrade::OnUpgrade,
    ticket: Ticket,
) -> Response<ProxyBody> {
    let upstream_upgrade = hyper::upgrade::on(&mut response);
    let idle = proxy.idle_timeout;
    super::in_span::spawn(async move {
        let (client, upstream) = match tokio::join!(client_upgrade, upstream_upgrade) {
            (Ok(client), Ok(upstream)) => (client, upstream),
            (Err(error), _) | (_, Err(error)) => {
                tracing::debug!(%error, "protocol switch failed");
                return;
            }
        };
        let (client, upstream) = (TokioIo::new(client), TokioIo::new(upstream));
        if let Err(error) = splice(client, upstream, idle, &ticket.up, &ticket.down).await {
            tracing::debug!(%error, "upgraded connection ended with an error");
        }
        drop(ticket);
    });
    let (parts, _) = response.into_parts();
    // The 101 keeps its Upgrade and Connection fields: they are the switch itself.
    Response::from_parts(parts, Either::Right(Full::new(Bytes::new())))
}

/// `host[:port]` as it goes in Host or `:authority`: IPv6 in brackets, the port unless the
/// scheme's default.
fn authority(host: &Host, port: u16, scheme: Scheme) -> String {
    let name = match host.ip() {
        Some(std::net::IpAddr::V6(v6)) => format!("[{v6}]"),
        _ => host.to_string(),
    };
    let default = match scheme {
        Scheme::Https => 443,
        Scheme::Http => 80,
    };
    if port == default {
        name
    } else {
        format!("{name}:{port}")
    }
}

/// Every authority the request gives (its `Host`, and its URI's authority: `:authority` on
/// HTTP/2, absolute-form on HTTP/1) must name the tunnel's host, and its port when it gives one.
/// A request must give at least one.
fn check_authority(request: &HttpRequest<Incoming>, host: &Host, port: u16) -> Result<(), String> {
    let mut given = Vec::new();
    for value in request.headers().get_all(header::HOST) {
        given.push(
            value
                .to_str()
                .map_err(|_| "Host is not ASCII\n".to_owned())?,
        );
    }
    if let Some(authority) = request.uri().authority() {
        given.push(authority.as_str());
    }
    if given.is_empty() {
        return Err("request has no Host\n".to_owned());
    }
    for authority in given {
        let (name, given_port) = split_authority(authority);
        let same_host = Host::parse(name).is_ok_and(|name| &name == host);
        let same_port = given_port.is_none_or(|given| given.parse() == Ok(port));
        if !(same_host && same_port) {
            return Err(format!(
                "hh: authority `{authority}` does not match the tunnel's {host}:{port}; \
                 open a CONNECT tunnel to that host instead\n"
            ));
        }
    }
    Ok(())
}

/// `name[:port]` or `[v6][:port]`.
fn split_authority(authority: &str) -> (&str, Option<&str>) {
    if let Some(rest) = authority.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((v6, after)) => (v6, after.strip_prefix(':')),
            None => (authority, None),
        };
    }
    match authority.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (authority, None),
    }
}

/// Writes `Content-Length` as the length hyper framed the body by (hyper keeps the field as
/// sent): `010` goes up as `10`, since some servers read a leading zero as octal and would take
/// the body's rest for a request nobody decided (http-garden's `garden-server-32`). A body
/// framed by chunks goes up without one.
fn write_length_plainly(headers: &mut HeaderMap, body: &Incoming) {
    use hyper::body::Body as _;
    if !headers.contains_key(header::CONTENT_LENGTH) {
        return;
    }
    match body.size_hint().exact() {
        Some(len) => drop(headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len))),
        None => drop(headers.remove(header::CONTENT_LENGTH)),
    }
}

/// Removes the fields that describe one connection (RFC 9110 §7.6.1) and those `Connection`
/// names; hyper frames the message again for the next hop.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|token| token.trim().to_ascii_lowercase())
        .filter(|token| !END_TO_END.contains(&token.as_str()))
        .collect();
    for name in named {
        headers.remove(name.as_str());
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// A plain-text response the proxy writes itself.
fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<ProxyBody> {
    let mut response = Response::new(Either::Right(Full::new(body.into())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities_split_into_name_and_port() {
        assert_eq!(split_authority("a.test"), ("a.test", None));
        assert_eq!(split_authority("a.test:8443"), ("a.test", Some("8443")));
        assert_eq!(split_authority("[::1]:443"), ("::1", Some("443")));
        assert_eq!(split_authority("[::1]"), ("::1", None));
    }

    #[test]
    fn hop_by_hop_fields_and_those_connection_names_are_removed() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "connection",
            HeaderValue::from_static("keep-alive, x-secret, host"),
        );
        headers.insert("x-secret", HeaderValue::from_static("1"));
        headers.insert("host", HeaderValue::from_static("a.test"));
        headers.insert("upgrade", HeaderValue::from_static("websocket"));
        headers.insert("accept", HeaderValue::from_static("*/*"));
        strip_hop_by_hop(&mut headers);
        let mut left: Vec<&str> = headers.keys().map(|name| name.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, ["accept", "host"]);
    }
}
