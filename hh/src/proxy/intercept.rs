//! Inside a CONNECT tunnel that carries TLS: terminate it with a leaf for the CONNECT host, then
//! serve HTTP/1.1 on it and decide every request on its own (method, host, path, port).
//!
//! - The ClientHello's SNI must name the CONNECT host (a tunnel to `a` may not speak to `b`); with
//!   no SNI (an IP literal), the leaf is for the CONNECT host anyway.
//! - Each request's `Host` must name the same host (and port, when it gives one): otherwise `421`.
//! - An allowed request goes upstream over a fresh TLS connection to the proxy-resolved,
//!   SSRF-checked address, the certificate verified for the name; bodies stream both ways.
//!
//! HTTP/1.1 only (ALPN offers `http/1.1`); upgrades (WebSocket) are not relayed yet: `Upgrade` is
//! hop-by-hop and stripped, so the upstream answers as to a plain request.

use std::{convert::Infallible, sync::Arc};

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::{
    Request as HttpRequest, Response, StatusCode,
    body::Incoming,
    header::{self, HeaderMap, HeaderValue},
    service::service_fn,
};
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::server::Acceptor;
use tokio::net::TcpStream;
use tokio_rustls::LazyConfigAcceptor;

use super::{
    body::Metered,
    decision::Ticket,
    explicit::Proxy,
    http1::{END_TO_END, HOP_BY_HOP},
    upstream::DialError,
};
use crate::rules::{Host, Method, NormPath, Request};

/// A response body: the upstream's, streamed, or one the proxy wrote.
pub type ProxyBody = Either<Metered<Incoming>, Full<Bytes>>;

/// Terminates TLS on `client` for `host` and serves its requests until the client leaves.
pub async fn serve_tunnel(proxy: Arc<Proxy>, client: TcpStream, host: Host, port: u16) {
    let accepting = LazyConfigAcceptor::new(Acceptor::default(), client);
    let start = match tokio::time::timeout(proxy.idle_timeout, accepting).await {
        Ok(Ok(start)) => start,
        Ok(Err(error)) => {
            tracing::debug!(%host, %error, "no TLS ClientHello in the tunnel");
            return;
        }
        Err(_) => return,
    };
    if let Some(sni) = start.client_hello().server_name() {
        let same = Host::parse(sni).is_ok_and(|sni| sni == host);
        if !same {
            tracing::warn!(%host, sni, "SNI differs from the CONNECT host; closing the tunnel");
            return;
        }
    }
    let config = match proxy.leaves.get(&host).await {
        Ok(key) => proxy.leaves.server_config_for(key, &[b"http/1.1"]),
        Err(error) => {
            tracing::error!(%host, %error, "cannot issue a leaf certificate");
            return;
        }
    };
    let config = match config {
        Ok(config) => config,
        Err(error) => {
            tracing::error!(%host, %error, "cannot build the TLS server configuration");
            return;
        }
    };
    let tls = match tokio::time::timeout(proxy.idle_timeout, start.into_stream(config)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(error)) => {
            tracing::debug!(%host, %error, "TLS handshake with the client failed");
            return;
        }
        Err(_) => return,
    };
    let (idle, max_head) = (proxy.idle_timeout, proxy.limits.max_head_bytes);
    let service = service_fn(move |request| {
        let proxy = Arc::clone(&proxy);
        let host = host.clone();
        async move { Ok::<_, Infallible>(handle(&proxy, &host, port, request).await) }
    });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        // Bounds both the wait for the next request on a kept-alive connection and a slow head.
        .header_read_timeout(idle)
        // hyper refuses a buffer under 8 KiB.
        .max_buf_size(max_head.max(8192))
        .serve_connection(TokioIo::new(tls), service)
        .await;
    if let Err(error) = served {
        tracing::debug!(%error, "tunnel connection ended with an error");
    }
}

async fn handle(
    proxy: &Proxy,
    host: &Host,
    port: u16,
    request: HttpRequest<Incoming>,
) -> Response<ProxyBody> {
    if let Err(reason) = check_authority(&request, host, port) {
        return text(StatusCode::MISDIRECTED_REQUEST, reason);
    }
    if request.method() == hyper::Method::CONNECT {
        // A tunnel inside a tunnel would carry bytes no request check sees.
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "hh: CONNECT inside a tunnel is not allowed\n",
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
    let decided = Request::http(method, host.clone(), port, path);
    let (ruling, ticket) = proxy.engine.decide(&decided).await;
    if !ruling.allowed {
        return text(
            StatusCode::FORBIDDEN,
            proxy.engine.denial_text(&decided, &ruling),
        );
    }
    let named = ruling.grants_dial(host);
    match forward(proxy, host, port, named, request, ticket).await {
        Ok(response) => response,
        Err(Failure::Dial(error @ DialError::Refused { .. })) => text(
            StatusCode::FORBIDDEN,
            format!("hh allowed the request but {error}\n"),
        ),
        Err(failure) => text(StatusCode::BAD_GATEWAY, format!("hh: {failure}\n")),
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
}

async fn forward(
    proxy: &Proxy,
    host: &Host,
    port: u16,
    named_by_rule: bool,
    request: HttpRequest<Incoming>,
    mut ticket: Ticket,
) -> Result<Response<ProxyBody>, Failure> {
    let tls = match proxy.upstream.dial_tls(host, port, named_by_rule).await {
        Ok(tls) => tls,
        Err(error) => {
            if let DialError::Refused { refused, .. } = &error {
                ticket.refused(&refused.to_string());
            }
            return Err(Failure::Dial(error));
        }
    };
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake::<_, Metered<Incoming>>(TokioIo::new(tls)).await?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "upstream connection ended with an error");
        }
    });
    let (mut parts, body) = request.into_parts();
    let body = Metered::new(body, Arc::clone(&ticket.up), proxy.idle_timeout, None);
    strip_hop_by_hop(&mut parts.headers);
    // Origin form upstream: the authority travels in Host.
    if let Some(path) = parts.uri.path_and_query() {
        parts.uri = path.as_str().parse().unwrap_or_default();
    }
    let response = tokio::time::timeout(
        proxy.idle_timeout,
        sender.send_request(HttpRequest::from_parts(parts, body)),
    )
    .await
    .map_err(|_| Failure::Timeout)??;
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    // The response body carries the ticket: the audit line is written once it is done.
    let down = Arc::clone(&ticket.down);
    let body = Metered::new(body, down, proxy.idle_timeout, Some(ticket));
    Ok(Response::from_parts(parts, Either::Left(body)))
}

/// The request's `Host` (or absolute-form authority) must name the tunnel's host, and its port
/// when it gives one.
fn check_authority(request: &HttpRequest<Incoming>, host: &Host, port: u16) -> Result<(), String> {
    let authority = match request.headers().get(header::HOST) {
        Some(value) => value
            .to_str()
            .map_err(|_| "Host is not ASCII\n".to_owned())?,
        None => request
            .uri()
            .authority()
            .map(|authority| authority.as_str())
            .ok_or_else(|| "request has no Host\n".to_owned())?,
    };
    let (name, given_port) = split_authority(authority);
    let same_host = Host::parse(name).is_ok_and(|name| &name == host);
    let same_port = given_port.is_none_or(|given| given.parse() == Ok(port));
    if same_host && same_port {
        Ok(())
    } else {
        Err(format!(
            "hh: Host `{authority}` does not match the tunnel's {host}:{port}; \
             open a CONNECT tunnel to that host instead\n"
        ))
    }
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
