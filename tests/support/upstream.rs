//! Local upstream servers for the proxy tests: HTTPS (with a CA made here) and plain HTTP, both
//! answering `upstream saw METHOD PATH host=HOST` and counting the requests that reach them, and
//! a raw TCP echo port (what a non-HTTP protocol's server stands for).

use std::{
    convert::Infallible,
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::{Request, Response, body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;

/// The local upstreams: one HTTPS and one plain-HTTP port, and how many requests reached them.
pub struct Upstream {
    pub tls_port: u16,
    pub http_port: u16,
    /// Echoes every byte back, prefixed with `echo:` once per connection.
    pub echo_port: u16,
    /// Bytes that reached the echo port.
    pub echoed: Arc<AtomicUsize>,
    pub hits: Arc<AtomicUsize>,
    /// TLS connections accepted on the TLS port.
    pub tls_connections: Arc<AtomicUsize>,
    /// Lets a `/ok/stream` response send its second part.
    pub release: Arc<tokio::sync::Notify>,
    pub ca_pem: String,
}

/// Starts the upstreams on their own thread; the TLS leaf names every one of `names`.
pub fn start_upstream(names: &[&str]) -> Upstream {
    start_upstream_offering(names, &[b"h2", b"http/1.1"])
}

/// [`start_upstream`] whose TLS port offers only `alpn` (e.g. `http/1.1` alone).
pub fn start_upstream_offering(names: &[&str], alpn: &[&[u8]]) -> Upstream {
    let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
    let (config, ca_pem) = test_server_config(&names, alpn);
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));

    let hits = Arc::new(AtomicUsize::new(0));
    let tls_connections = Arc::new(AtomicUsize::new(0));
    let accepted = Arc::clone(&tls_connections);
    let release = Arc::new(tokio::sync::Notify::new());
    let (ports_tx, ports_rx) = std::sync::mpsc::channel();
    let counter = Arc::clone(&hits);
    let gate = Arc::clone(&release);
    let echoed = Arc::new(AtomicUsize::new(0));
    let echo_count = Arc::clone(&echoed);
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let tls_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let http_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let echo_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            ports_tx
                .send((
                    tls_listener.local_addr().unwrap().port(),
                    http_listener.local_addr().unwrap().port(),
                    echo_listener.local_addr().unwrap().port(),
                ))
                .unwrap();
            tokio::spawn(async move {
                loop {
                    let (stream, _) = echo_listener.accept().await.unwrap();
                    tokio::spawn(echo(stream, Arc::clone(&echo_count)));
                }
            });
            let plain_counter = Arc::clone(&counter);
            let plain_gate = Arc::clone(&gate);
            tokio::spawn(async move {
                loop {
                    let (stream, _) = http_listener.accept().await.unwrap();
                    let (counter, gate) = (Arc::clone(&plain_counter), Arc::clone(&plain_gate));
                    tokio::spawn(serve_upstream(stream, counter, gate));
                }
            });
            loop {
                let (stream, _) = tls_listener.accept().await.unwrap();
                accepted.fetch_add(1, Ordering::SeqCst);
                let acceptor = acceptor.clone();
                let (counter, gate) = (Arc::clone(&counter), Arc::clone(&gate));
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
                        serve_upstream_h2(tls, counter, gate).await;
                    } else {
                        serve_upstream(tls, counter, gate).await;
                    }
                });
            }
        });
    });
    let (tls_port, http_port, echo_port) = ports_rx.recv().unwrap();
    Upstream {
        tls_port,
        http_port,
        echo_port,
        echoed,
        hits,
        tls_connections,
        release,
        ca_pem,
    }
}

/// Echoes what `stream` sends, after `echo:`, counting the bytes.
async fn echo(mut stream: tokio::net::TcpStream, count: Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut buf = vec![0u8; 4096];
    if stream.write_all(b"echo:").await.is_err() {
        return;
    }
    while let Ok(read) = stream.read(&mut buf).await {
        if read == 0 || stream.write_all(&buf[..read]).await.is_err() {
            return;
        }
        count.fetch_add(read, Ordering::SeqCst);
    }
}

/// A response body fed chunk by chunk from a channel, so a test controls when each part leaves.
struct ChannelBody(tokio::sync::mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|chunk| Ok(hyper::body::Frame::data(chunk))))
    }
}

/// What the upstream answers a request: `upstream saw METHOD PATH host=AUTHORITY[ x=NAMES][
/// body=N]`, the authority from Host or (HTTP/2) `:authority`, NAMES the `x-` fields that reached
/// it (comma-separated); the `x-upstream-version` header says which HTTP version reached it.
/// `/ok/stream` sends a second part once released; a WebSocket upgrade is answered with `101`
/// (and the key's accept; `/ok/badaccept` answers another) and echoes what it gets, and so is any
/// request to `/ok/switch`, without an accept.
fn upstream_service(
    hits: Arc<AtomicUsize>,
    release: Arc<tokio::sync::Notify>,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<ChannelBody>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<ChannelBody>, Infallible>> + Send,
> + Clone {
    service_fn(move |mut request: Request<Incoming>| {
        hits.fetch_add(1, Ordering::SeqCst);
        let host = request
            .headers()
            .get("host")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
            .or_else(|| request.uri().authority().map(|a| a.as_str().to_owned()))
            .unwrap_or_default();
        let path = request
            .uri()
            .path_and_query()
            .map_or("/", |path| path.as_str());
        let mut seen = format!("upstream saw {} {path} host={host}", request.method());
        let x_fields: Vec<&str> = request
            .headers()
            .keys()
            .map(|name| name.as_str())
            .filter(|name| name.starts_with("x-") || name.starts_with("x_"))
            .collect();
        if !x_fields.is_empty() {
            seen.push_str(&format!(" x={}", x_fields.join(",")));
        }
        let accept = request
            .headers()
            .get("sec-websocket-key")
            .and_then(|key| key.to_str().ok())
            .map(|key| match request.uri().path() {
                "/ok/badaccept" => hh::proxy::websocket::accept_for("another key"),
                _ => hh::proxy::websocket::accept_for(key),
            });
        let version = format!("{:?}", request.version());
        let release = Arc::clone(&release);
        let streaming = request.uri().path() == "/ok/stream";
        // `/ok/switch` switches protocols even when not asked to (a misbehaving upstream).
        let websocket = request.uri().path() == "/ok/switch"
            || request
                .headers()
                .get("upgrade")
                .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"websocket"));
        let upgrade = websocket.then(|| hyper::upgrade::on(&mut request));
        async move {
            if let Some(upgrade) = upgrade {
                tokio::spawn(async move {
                    if let Ok(upgraded) = upgrade.await {
                        let (mut read, mut write) = tokio::io::split(TokioIo::new(upgraded));
                        let _ = tokio::io::copy(&mut read, &mut write).await;
                    }
                });
                let (_, receiver) = tokio::sync::mpsc::channel(1);
                let mut response = Response::builder()
                    .status(101)
                    .header("upgrade", "websocket")
                    .header("connection", "upgrade");
                if let Some(accept) = accept {
                    response = response.header("sec-websocket-accept", accept);
                }
                let response = response.body(ChannelBody(receiver)).unwrap();
                return Ok::<_, Infallible>(response);
            }
            let body = request
                .into_body()
                .collect()
                .await
                .map(|body| body.to_bytes());
            let reply = match body {
                Ok(body) if body.is_empty() => format!("{seen}\n"),
                Ok(body) => format!("{seen} body={}\n", body.len()),
                Err(error) => format!("{seen} body error: {error}\n"),
            };
            let (sender, receiver) = tokio::sync::mpsc::channel(1);
            tokio::spawn(async move {
                let _ = sender.send(Bytes::from(reply)).await;
                if streaming {
                    // The rest comes only once the client has read the first part.
                    release.notified().await;
                    let _ = sender.send(Bytes::from_static(b"second part\n")).await;
                }
            });
            let response = Response::builder()
                .header("x-upstream-version", version)
                .body(ChannelBody(receiver))
                .unwrap();
            Ok::<_, Infallible>(response)
        }
    })
}

async fn serve_upstream<S>(stream: S, hits: Arc<AtomicUsize>, release: Arc<tokio::sync::Notify>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), upstream_service(hits, release))
        .with_upgrades()
        .await;
}

async fn serve_upstream_h2<S>(stream: S, hits: Arc<AtomicUsize>, release: Arc<tokio::sync::Notify>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let _ = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
        .serve_connection(TokioIo::new(stream), upstream_service(hits, release))
        .await;
}

/// A TLS server configuration for `names` (the first is also the leaf's common name), signed
/// by a fresh test CA, offering `alpn`; and that CA's certificate (PEM) for clients to trust.
pub fn test_server_config(names: &[String], alpn: &[&[u8]]) -> (rustls::ServerConfig, String) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // Distinct names: with rcgen's default name on both, OpenSSL clients (curl, mitmproxy) take
    // the leaf for a self-signed certificate.
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "hh test upstream CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let mut leaf_params = CertificateParams::new(names.to_vec()).unwrap();
    leaf_params.distinguished_name.push(
        DnType::CommonName,
        names.first().cloned().unwrap_or_default(),
    );
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], key)
        .unwrap();
    config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
    (config, ca_cert.pem())
}

/// A TLS client configuration that trusts only the CA in `ca_pem` (hh's, for a client of its
/// proxy) and offers `alpn`.
pub fn client_trusting(ca_pem: &[u8], alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::{CertificateDer, pem::PemObject as _};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}
