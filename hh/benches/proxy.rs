//! `cargo xtask bench proxy`: what `hh proxy` adds to HTTPS traffic, against going direct and
//! against mitmproxy, all in one run on loopback (issue #4, "Benchmark").
//!
//! One local HTTPS upstream (hyper + rustls, a CA made here) serves three routes: `/` (a 3-byte
//! body), `/zeros/N` (N zero bytes, streamed in 64 KiB chunks) and `/sse/N` (N server-sent events,
//! one every 10 ms, each carrying the time it left). The client is hyper (HTTP/1.1) over
//! tokio-rustls with session resumption off, so every new connection is a full handshake. It
//! reaches the upstream three ways:
//!
//! - direct: TLS straight to the upstream;
//! - hh: `CONNECT bench.test:PORT` to the real `hh proxy` binary (rules allow `bench.test` and
//!   `*.bench.test` on the upstream port), then TLS to hh's leaf, trusting `ca.pem` from its
//!   state dir; hh trusts the upstream's CA with `--upstream-ca`;
//! - mitmproxy: `mitmdump` from the venv `cargo xtask bench proxy` makes under
//!   `target/bench-venv` (or `HH_BENCH_MITMDUMP`), verifying the upstream against the same CA.
//!   Missing, its columns say so.
//!
//! Measured, the cases interleaved round by round so the noise of a shared machine hits all alike,
//! each figure the median of the per-round values:
//! 1. keep-alive: sequential requests on one connection (p50/p99), and requests/s over
//!    [`CONCURRENCY`] connections;
//! 2. a new connection per request (CONNECT + handshake + one request), hh with its leaf cached
//!    and with a name it has never seen (one `--resolve` name per request, so a fresh key each);
//! 3. a 1 GiB download;
//! 4. per-event latency of server-sent events (hh and direct; mitmproxy buffers such bodies
//!    unless told to stream everything);
//! 5. resident memory of the proxy process with [`IDLE_CONNECTIONS`] open, idle, kept-alive
//!    tunnels (each served one request): 1 s after their request, and once hh has closed the
//!    upstream connections they no longer use.
//!
//! Prints Markdown tables and the targets, met or not.

#[path = "../../tests/support/mod.rs"]
mod support;

use std::{
    convert::Infallible,
    net::{SocketAddr, TcpListener as StdTcpListener},
    path::{Path, PathBuf},
    pin::Pin,
    process::{Child, Command, Stdio},
    sync::{Arc, OnceLock},
    task::{Context, Poll},
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty, Full};
use hyper::{
    Request, Response,
    body::{Body, Frame, Incoming},
    client::conn::http1::SendRequest,
    service::service_fn,
};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject as _};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpStream,
};
use tokio_rustls::TlsConnector;

/// The name every request asks for; uncached-leaf names are `uROUND-I.bench.test`.
const NAME: &str = "bench.test";
const ROUNDS: usize = 5;
/// Each keep-alive latency, req/s and new-connection case runs this long per round.
const SLICE: Duration = Duration::from_millis(1_000);
const CONCURRENCY: usize = 32;
/// Fresh names per round for the uncached-leaf case (each is one `--resolve` flag).
const UNCACHED_PER_ROUND: usize = 300;
const DOWNLOAD: u64 = 1 << 30;
const DOWNLOAD_ROUNDS: usize = 3;
const SSE_EVENTS: usize = 100;
const SSE_ROUNDS: usize = 5;
const IDLE_CONNECTIONS: usize = 1_000;
/// No connection set-up or request takes this long unless the proxy lost or stalled it (the
/// 1 GiB download is the longest, a few seconds): the bench then fails saying which, instead
/// of waiting for ever.
const STEP_DEADLINE: Duration = Duration::from_secs(60);
/// Nor does any phase (the longest, keep-alive, about 40 s).
const PHASE_DEADLINE: Duration = Duration::from_secs(600);
/// hh's default `--upstream-keep` and a second more.
const KEPT_UPSTREAM_GONE: Duration = Duration::from_secs(11);

/// `future`'s output, or a panic naming `what` when it takes longer than `deadline`.
async fn within<T>(deadline: Duration, what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(deadline, future).await {
        Ok(output) => output,
        Err(_) => panic!("{what} did not finish within {deadline:?}"),
    }
}

/// The clock both the upstream (stamping events) and the client (reading them) use.
fn since_epoch() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

fn main() {
    // Arguments (`cargo bench` passes `--bench`) are ignored. Start the shared clock.
    let _ = since_epoch();
    let dir = tempfile::tempdir().expect("temp dir");
    let upstream = start_upstream();
    let upstream_ca = dir.path().join("upstream-ca.pem");
    std::fs::write(&upstream_ca, &upstream.ca_pem).expect("write the upstream CA");

    let uncached: Vec<Vec<String>> = (0..ROUNDS)
        .map(|round| {
            (0..UNCACHED_PER_ROUND)
                .map(|i| format!("u{round}-{i}.{NAME}"))
                .collect()
        })
        .collect();
    if std::env::var_os(RSS_ONLY).is_some() {
        return rss_only(dir.path(), &upstream, &upstream_ca);
    }
    let hh = HhProxy::start(dir.path(), &upstream, &upstream_ca, uncached.concat());
    let mitm = Mitmproxy::start(dir.path(), &upstream_ca);
    if let Err(why) = &mitm {
        eprintln!("mitmproxy: {why}");
    }

    let client = Client::new(
        upstream.port,
        [
            Some(upstream_ca.clone()),
            Some(hh.ca.clone()),
            mitm.as_ref().ok().map(|m| m.ca.clone()),
        ]
        .into_iter()
        .flatten(),
    );

    let direct = Route::Direct(SocketAddr::from(([127, 0, 0, 1], upstream.port)));
    let via_hh = Route::Proxy {
        addr: hh.addr,
        connect_host: NAME.to_owned(),
    };
    let via_mitm = mitm.as_ref().ok().map(|mitm| Route::Proxy {
        addr: mitm.addr,
        // mitmproxy resolves with the system resolver, which does not know bench.test: dial the
        // address; it still takes the upstream's name (SNI, verification) from the ClientHello.
        connect_host: "127.0.0.1".to_owned(),
    });
    let mut routes = vec![("direct", direct.clone()), ("hh", via_hh.clone())];
    if let Some(route) = &via_mitm {
        routes.push(("mitmproxy", route.clone()));
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime");
    let started = Instant::now();
    let mut report = runtime.block_on(async {
        let keep_alive = within(
            PHASE_DEADLINE,
            "the keep-alive phase",
            keep_alive(&client, &routes),
        )
        .await;
        eprintln!("keep-alive done at {:.0?}", started.elapsed());
        let plain = within(
            PHASE_DEADLINE,
            "the plain keep-alive phase",
            keep_alive_plain(upstream.plain_port, hh.addr),
        )
        .await;
        eprintln!("plain keep-alive done at {:.0?}", started.elapsed());
        let fresh = within(
            PHASE_DEADLINE,
            "the new-connections phase",
            new_connections(&client, &direct, &via_hh, via_mitm.as_ref(), &uncached),
        )
        .await;
        eprintln!("new connections done at {:.0?}", started.elapsed());
        let download = within(
            PHASE_DEADLINE,
            "the download phase",
            download(&client, &routes),
        )
        .await;
        eprintln!("download done at {:.0?}", started.elapsed());
        let sse = within(
            PHASE_DEADLINE,
            "the SSE phase",
            sse(&client, &direct, &via_hh),
        )
        .await;
        eprintln!("sse done at {:.0?}", started.elapsed());
        let mut rss = vec![(
            "hh, after the phases above",
            within(
                PHASE_DEADLINE,
                "hh's memory at idle",
                rss_at_idle(&client, &via_hh, hh.child.id()),
            )
            .await,
        )];
        if let (Some(route), Ok(mitm)) = (&via_mitm, &mitm) {
            rss.push((
                "mitmproxy, after the phases above",
                within(
                    PHASE_DEADLINE,
                    "mitmproxy's memory at idle",
                    rss_at_idle(&client, route, mitm.child.id()),
                )
                .await,
            ));
        }
        eprintln!("rss done at {:.0?}", started.elapsed());
        Report {
            keep_alive,
            plain,
            fresh,
            download,
            sse,
            rss,
        }
    });
    // The same, from a freshly started hh (same CA, empty leaf cache, no history).
    drop(hh);
    let fresh_hh = HhProxy::start(dir.path(), &upstream, &upstream_ca, Vec::new());
    let via_fresh = Route::Proxy {
        addr: fresh_hh.addr,
        connect_host: NAME.to_owned(),
    };
    let fresh_rss = runtime.block_on(within(
        PHASE_DEADLINE,
        "a fresh hh's memory at idle",
        rss_at_idle(&client, &via_fresh, fresh_hh.child.id()),
    ));
    report.rss.insert(0, ("hh, fresh process", fresh_rss));
    report.print(mitm.as_ref().err().map(String::as_str), started.elapsed());
}

/// Set (to anything): measure only a fresh process's resident memory, the quick loop for work
/// on the proxy's per-connection memory.
const RSS_ONLY: &str = "HH_BENCH_PROXY_RSS_ONLY";

fn rss_only(dir: &Path, upstream: &Upstream, upstream_ca: &Path) {
    let hh = HhProxy::start(dir, upstream, upstream_ca, Vec::new());
    let client = Client::new(upstream.port, [upstream_ca.to_owned(), hh.ca.clone()]);
    let route = Route::Proxy {
        addr: hh.addr,
        connect_host: NAME.to_owned(),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime");
    let rss = runtime.block_on(within(
        PHASE_DEADLINE,
        "hh's memory at idle",
        rss_at_idle(&client, &route, hh.child.id()),
    ));
    println!(
        "hh, fresh process: {:.1} MB before, {:.1} MB with {IDLE_CONNECTIONS} tunnels 1 s after \
         their request, {:.1} MB once their upstream connections are closed",
        rss.before_kib as f64 / 1024.0,
        rss.with_kib as f64 / 1024.0,
        rss.idle_kib as f64 / 1024.0
    );
}

// ---------------------------------------------------------------------------------------------
// The upstream

struct Upstream {
    port: u16,
    /// The same answers in plain HTTP.
    plain_port: u16,
    ca_pem: String,
}

/// HTTPS on 127.0.0.1 for `bench.test` and `*.bench.test`, on a thread (and runtime) of its own.
fn start_upstream() -> Upstream {
    let names = [NAME.to_owned(), format!("*.{NAME}")];
    let (config, ca_pem) = support::upstream::test_server_config(&names, &[b"http/1.1"]);
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let port = serve_answers(Some(acceptor));
    let plain_port = serve_answers(None);
    Upstream {
        port,
        plain_port,
        ca_pem,
    }
}

/// Serves [`answer`] on a new loopback port (in TLS with `acceptor`, else plain HTTP/1), on a
/// thread (and runtime) of its own; returns the port.
fn serve_answers(acceptor: Option<tokio_rustls::TlsAcceptor>) -> u16 {
    let listener = StdTcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let http1 = hyper::server::conn::http1::Builder::new();
                    let _ = match acceptor {
                        Some(acceptor) => match acceptor.accept(stream).await {
                            Ok(tls) => {
                                http1
                                    .serve_connection(TokioIo::new(tls), service_fn(answer))
                                    .await
                            }
                            Err(_) => return,
                        },
                        None => {
                            http1
                                .serve_connection(TokioIo::new(stream), service_fn(answer))
                                .await
                        }
                    };
                });
            }
        });
    });
    port
}

type AnyBody = http_body_util::Either<Full<Bytes>, http_body_util::Either<Zeros, Events>>;

async fn answer(request: Request<Incoming>) -> Result<Response<AnyBody>, Infallible> {
    use http_body_util::Either::{Left, Right};
    let path = request.uri().path();
    if let Some(len) = path.strip_prefix("/zeros/").and_then(|n| n.parse().ok()) {
        return Ok(Response::new(Right(Left(Zeros(len)))));
    }
    if let Some(count) = path
        .strip_prefix("/sse/")
        .and_then(|n| n.parse::<usize>().ok())
    {
        let (sender, receiver) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            for _ in 0..count {
                tick.tick().await;
                let event = format!("data: {}\n\n", since_epoch());
                if sender.send(Bytes::from(event)).await.is_err() {
                    return;
                }
            }
        });
        let mut response = Response::new(Right(Right(Events(receiver))));
        response.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("text/event-stream"),
        );
        return Ok(response);
    }
    Ok(Response::new(Left(Full::new(Bytes::from_static(b"ok\n")))))
}

/// A body of N zero bytes, with its length known up front (Content-Length).
struct Zeros(u64);

static ZERO_CHUNK: [u8; 64 * 1024] = [0; 64 * 1024];

impl Body for Zeros {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.0 == 0 {
            return Poll::Ready(None);
        }
        let len = self.0.min(ZERO_CHUNK.len() as u64) as usize;
        self.0 -= len as u64;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(
            &ZERO_CHUNK[..len],
        )))))
    }

    fn is_end_stream(&self) -> bool {
        self.0 == 0
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.0)
    }
}

/// Server-sent events fed from a channel (chunked, as an LLM API streams).
struct Events(tokio::sync::mpsc::Receiver<Bytes>);

impl Body for Events {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|chunk| Ok(Frame::data(chunk))))
    }
}

// ---------------------------------------------------------------------------------------------
// The proxies

/// `hh proxy` (the binary cargo built for this bench), killed on drop.
struct HhProxy {
    child: Child,
    addr: SocketAddr,
    ca: PathBuf,
}

impl HhProxy {
    fn start(
        dir: &Path,
        upstream: &Upstream,
        upstream_ca: &Path,
        extra_names: Vec<String>,
    ) -> HhProxy {
        let (port, plain) = (upstream.port, upstream.plain_port);
        let rules = dir.join("rules.toml");
        std::fs::write(
            &rules,
            format!(
                "version = 1\n[network]\nallowlist = [\"domain={NAME},*.{NAME} port={port},{plain}\"]\n"
            ),
        )
        .expect("write rules");
        let state = dir.join("hh-state");
        let mut command = Command::new(env!("CARGO_BIN_EXE_hh"));
        command
            .args([
                "proxy",
                "--listen",
                "127.0.0.1:0",
                "--dial-grant",
                "127.0.0.1/32",
            ])
            .arg("--rules")
            .arg(&rules)
            .arg("--state-dir")
            .arg(&state)
            .arg("--upstream-ca")
            .arg(upstream_ca)
            .arg("--resolve")
            .arg(format!("{NAME}=127.0.0.1"));
        // No wildcard resolver flag exists: one `--resolve` per never-seen name.
        for name in extra_names {
            command.arg("--resolve").arg(format!("{name}=127.0.0.1"));
        }
        let (child, addr) = support::spawn_announcing(&mut command, "listening on ");
        let addr = addr.parse().unwrap();
        HhProxy {
            child,
            addr,
            ca: state.join("ca.pem"),
        }
    }
}

impl Drop for HhProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `mitmdump`, killed on drop.
struct Mitmproxy {
    child: Child,
    addr: SocketAddr,
    ca: PathBuf,
}

impl Mitmproxy {
    fn start(dir: &Path, upstream_ca: &Path) -> Result<Mitmproxy, String> {
        let program = std::env::var_os("HH_BENCH_MITMDUMP").map_or_else(
            || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-venv/bin/mitmdump"),
            PathBuf::from,
        );
        if !program.exists() {
            return Err(format!(
                "not installed ({} missing; `cargo xtask bench proxy` installs it with pip)",
                program.display()
            ));
        }
        let port = StdTcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map_err(|error| format!("no free port: {error}"))?
            .port();
        let confdir = dir.join("mitmproxy");
        // spawns: mitmdump
        let mut child = Command::new(&program)
            .args(["-q", "--listen-host", "127.0.0.1", "--listen-port"])
            .arg(port.to_string())
            .arg("--set")
            .arg(format!("confdir={}", confdir.display()))
            .arg("--set")
            .arg(format!(
                "ssl_verify_upstream_trusted_ca={}",
                upstream_ca.display()
            ))
            // Bodies over 1 MiB stream (the download); smaller ones are buffered, the default.
            .args(["--set", "stream_large_bodies=1m"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|error| format!("cannot run {}: {error}", program.display()))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let ca = confdir.join("mitmproxy-ca-cert.pem");
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(addr).is_err() || !ca.exists() {
            if Instant::now() > deadline || child.try_wait().ok().flatten().is_some() {
                let _ = child.kill();
                let _ = child.wait();
                return Err("mitmdump did not start listening within 60 s".to_owned());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // spawns: mitmdump
        let version = Command::new(&program)
            .arg("--version")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|out| out.lines().next().map(str::to_owned))
            .unwrap_or_default();
        eprintln!("{version}");
        Ok(Mitmproxy { child, addr, ca })
    }
}

impl Drop for Mitmproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// The client

#[derive(Clone, Debug)]
enum Route {
    Direct(SocketAddr),
    Proxy {
        addr: SocketAddr,
        connect_host: String,
    },
}

struct Client {
    tls: TlsConnector,
    /// The upstream's port (in CONNECT targets and Host).
    port: u16,
}

type Sender = SendRequest<Empty<Bytes>>;

impl Client {
    /// A client of the upstream on `port` trusting the CAs in `cas` (PEM files).
    fn new(port: u16, cas: impl IntoIterator<Item = PathBuf>) -> Client {
        let mut roots = rustls::RootCertStore::empty();
        for pem in cas {
            for cert in CertificateDer::pem_file_iter(&pem).expect("read a CA") {
                roots
                    .add(cert.expect("a CA certificate"))
                    .expect("a usable root");
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        // Every new connection pays a full handshake, as a fresh `curl` or agent process would.
        config.resumption = rustls::client::Resumption::disabled();
        Client {
            tls: TlsConnector::from(Arc::new(config)),
            port,
        }
    }

    /// A kept-alive HTTP/1.1 connection to `name` by `route`: TCP, CONNECT when proxied, TLS.
    async fn open(&self, route: &Route, name: &str) -> Sender {
        within(
            STEP_DEADLINE,
            &format!("opening a connection to {name} by {route:?}"),
            self.open_unbounded(route, name),
        )
        .await
    }

    async fn open_unbounded(&self, route: &Route, name: &str) -> Sender {
        let stream = match route {
            Route::Direct(addr) => {
                let stream = TcpStream::connect(addr).await.expect("connect upstream");
                let _ = stream.set_nodelay(true);
                stream
            }
            Route::Proxy { addr, connect_host } => {
                let mut stream = TcpStream::connect(addr).await.expect("connect proxy");
                let _ = stream.set_nodelay(true);
                let host = if connect_host == NAME {
                    name
                } else {
                    connect_host
                };
                let port = self.port;
                let connect =
                    format!("CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n");
                stream
                    .write_all(connect.as_bytes())
                    .await
                    .expect("send CONNECT");
                let mut head = Vec::with_capacity(128);
                let mut chunk = [0u8; 512];
                // Nothing can follow the head: in TLS the client speaks first (the ClientHello).
                while !head.ends_with(b"\r\n\r\n") {
                    let read = stream.read(&mut chunk).await.expect("read CONNECT answer");
                    assert!(
                        read > 0,
                        "proxy closed during CONNECT: {}",
                        String::from_utf8_lossy(&head)
                    );
                    head.extend_from_slice(&chunk[..read]);
                }
                assert!(
                    head.starts_with(b"HTTP/1.1 200") || head.starts_with(b"HTTP/1.0 200"),
                    "CONNECT refused: {}",
                    String::from_utf8_lossy(&head)
                );
                stream
            }
        };
        let server_name = ServerName::try_from(name.to_owned()).expect("a DNS name");
        let tls = self
            .tls
            .connect(server_name, stream)
            .await
            .expect("TLS handshake");
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .expect("HTTP/1 handshake");
        tokio::spawn(async move {
            let _ = connection.await;
        });
        sender
    }

    fn request(&self, name: &str, path: &str) -> Request<Empty<Bytes>> {
        Request::get(path)
            .header(hyper::header::HOST, format!("{name}:{}", self.port))
            .body(Empty::new())
            .unwrap()
    }

    /// One request, its whole body read; returns the body length.
    async fn fetch(&self, sender: &mut Sender, name: &str, path: &str) -> u64 {
        within(
            STEP_DEADLINE,
            &format!("GET {path} for {name}"),
            self.fetch_unbounded(sender, name, path),
        )
        .await
    }

    async fn fetch_unbounded(&self, sender: &mut Sender, name: &str, path: &str) -> u64 {
        sender.ready().await.expect("connection ready");
        let response = sender
            .send_request(self.request(name, path))
            .await
            .expect("response");
        if !response.status().is_success() {
            let status = response.status();
            let body = response.into_body().collect().await.map(|b| b.to_bytes());
            panic!("GET {path} for {name}: {status}: {body:?}");
        }
        let mut body = response.into_body();
        let mut len = 0;
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.expect("body").into_data() {
                len += data.len() as u64;
            }
        }
        len
    }
}

// ---------------------------------------------------------------------------------------------
// The measures

/// Plain HTTP kept alive, direct and through hh (a CONNECT tunnel carrying plain HTTP/1, which
/// hh parses and decides per request, as it does a session's port-80 traffic): per-round p50 and
/// p99 (µs) of sequential GETs, direct first.
struct PlainKeepAlive {
    p50: [Vec<f64>; 2],
    p99: [Vec<f64>; 2],
}

async fn keep_alive_plain(plain_port: u16, hh: SocketAddr) -> PlainKeepAlive {
    let host = format!("{NAME}:{plain_port}");
    let direct = TcpStream::connect(("127.0.0.1", plain_port))
        .await
        .expect("connect the plain upstream");
    let mut tunnel = TcpStream::connect(hh).await.expect("connect hh");
    let connect = format!("CONNECT {host} HTTP/1.1\r\nHost: {host}\r\n\r\n");
    tunnel
        .write_all(connect.as_bytes())
        .await
        .expect("send CONNECT");
    let mut established = [0u8; 39];
    tunnel
        .read_exact(&mut established)
        .await
        .expect("read CONNECT answer");
    assert!(established.starts_with(b"HTTP/1.1 200"), "CONNECT refused");
    let mut senders = Vec::new();
    for stream in [direct, tunnel] {
        let _ = stream.set_nodelay(true);
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("HTTP/1 handshake");
        tokio::spawn(async move {
            let _ = connection.await;
        });
        senders.push(sender);
    }
    let get = |sender: &mut Sender| {
        let request = Request::get("/")
            .header(hyper::header::HOST, host.as_str())
            .body(Empty::new())
            .unwrap();
        let sent = sender.send_request(request);
        async move {
            let response = sent.await.expect("response");
            assert!(response.status().is_success(), "{}", response.status());
            response.into_body().collect().await.expect("body");
        }
    };
    for sender in &mut senders {
        for _ in 0..50 {
            sender.ready().await.expect("ready");
            get(sender).await;
        }
    }
    let mut result = PlainKeepAlive {
        p50: [Vec::new(), Vec::new()],
        p99: [Vec::new(), Vec::new()],
    };
    for _ in 0..ROUNDS {
        for (index, sender) in senders.iter_mut().enumerate() {
            let mut samples = Vec::new();
            let until = Instant::now() + SLICE;
            while Instant::now() < until {
                let start = Instant::now();
                sender.ready().await.expect("ready");
                get(sender).await;
                samples.push(start.elapsed().as_secs_f64() * 1e6);
            }
            result.p50[index].push(percentile(&mut samples, 0.50));
            result.p99[index].push(percentile(&mut samples, 0.99));
        }
    }
    result
}

/// Per route: latency samples' per-round p50 and p99 (µs), and per-round requests/s.
struct KeepAlive {
    names: Vec<&'static str>,
    p50: Vec<Vec<f64>>,
    p99: Vec<Vec<f64>>,
    rps: Vec<Vec<f64>>,
}

async fn keep_alive(client: &Client, routes: &[(&'static str, Route)]) -> KeepAlive {
    let n = routes.len();
    let mut result = KeepAlive {
        names: routes.iter().map(|(name, _)| *name).collect(),
        p50: vec![Vec::new(); n],
        p99: vec![Vec::new(); n],
        rps: vec![Vec::new(); n],
    };
    let mut senders = Vec::new();
    for (_, route) in routes {
        let mut sender = client.open(route, NAME).await;
        for _ in 0..50 {
            client.fetch(&mut sender, NAME, "/").await;
        }
        senders.push(sender);
    }
    for _ in 0..ROUNDS {
        for (index, (_, route)) in routes.iter().enumerate() {
            let sender = &mut senders[index];
            let mut samples = Vec::new();
            let until = Instant::now() + SLICE;
            while Instant::now() < until {
                let start = Instant::now();
                client.fetch(sender, NAME, "/").await;
                samples.push(start.elapsed().as_secs_f64() * 1e6);
            }
            result.p50[index].push(percentile(&mut samples, 0.50));
            result.p99[index].push(percentile(&mut samples, 0.99));
            result.rps[index].push(requests_per_second(client, route).await);
        }
    }
    result
}

/// Requests/s over [`CONCURRENCY`] kept-alive connections during one [`SLICE`] (opening them is
/// not counted).
async fn requests_per_second(client: &Client, route: &Route) -> f64 {
    let mut opening = tokio::task::JoinSet::new();
    let shared = Arc::new(Client {
        tls: client.tls.clone(),
        port: client.port,
    });
    for _ in 0..CONCURRENCY {
        let (client, route) = (Arc::clone(&shared), route.clone());
        opening.spawn(async move {
            let mut sender = client.open(&route, NAME).await;
            client.fetch(&mut sender, NAME, "/").await;
            sender
        });
    }
    let senders = opening.join_all().await;
    let start = Instant::now();
    let until = start + SLICE;
    let mut running = tokio::task::JoinSet::new();
    for mut sender in senders {
        let client = Arc::clone(&shared);
        running.spawn(async move {
            let mut done = 0u64;
            while Instant::now() < until {
                client.fetch(&mut sender, NAME, "/").await;
                done += 1;
            }
            done
        });
    }
    let done: u64 = running.join_all().await.into_iter().sum();
    done as f64 / start.elapsed().as_secs_f64()
}

/// Per case: per-round p50 and p99 (µs) of connect + CONNECT + handshake + one request.
struct Fresh {
    names: Vec<&'static str>,
    p50: Vec<Vec<f64>>,
    p99: Vec<Vec<f64>>,
    counts: Vec<usize>,
}

async fn new_connections(
    client: &Client,
    direct: &Route,
    via_hh: &Route,
    via_mitm: Option<&Route>,
    uncached: &[Vec<String>],
) -> Fresh {
    let mut cases: Vec<(&'static str, &Route, bool)> = vec![
        ("direct", direct, false),
        ("hh, leaf cached", via_hh, false),
        ("hh, new name (leaf generated)", via_hh, true),
    ];
    if let Some(route) = via_mitm {
        cases.push(("mitmproxy, leaf cached", route, false));
    }
    let n = cases.len();
    let mut result = Fresh {
        names: cases.iter().map(|(name, ..)| *name).collect(),
        p50: vec![Vec::new(); n],
        p99: vec![Vec::new(); n],
        counts: vec![0; n],
    };
    for (_, route, _) in &cases {
        for _ in 0..20 {
            let mut sender = client.open(route, NAME).await;
            client.fetch(&mut sender, NAME, "/").await;
        }
    }
    for names in uncached {
        for (index, (_, route, fresh_name)) in cases.iter().enumerate() {
            let mut samples = Vec::new();
            let until = Instant::now() + SLICE;
            let mut fresh = names.iter();
            while Instant::now() < until {
                let name = if *fresh_name {
                    match fresh.next() {
                        Some(name) => name.as_str(),
                        None => break,
                    }
                } else {
                    NAME
                };
                let start = Instant::now();
                let mut sender = client.open(route, name).await;
                client.fetch(&mut sender, name, "/").await;
                samples.push(start.elapsed().as_secs_f64() * 1e6);
                drop(sender);
            }
            result.counts[index] += samples.len();
            result.p50[index].push(percentile(&mut samples, 0.50));
            result.p99[index].push(percentile(&mut samples, 0.99));
        }
    }
    result
}

/// Per route: MiB/s of each round (mitmproxy: one round, it is slow).
struct Download {
    names: Vec<&'static str>,
    mib_s: Vec<Vec<f64>>,
}

async fn download(client: &Client, routes: &[(&'static str, Route)]) -> Download {
    let mut result = Download {
        names: routes.iter().map(|(name, _)| *name).collect(),
        mib_s: vec![Vec::new(); routes.len()],
    };
    let path = format!("/zeros/{DOWNLOAD}");
    for round in 0..DOWNLOAD_ROUNDS {
        for (index, (name, route)) in routes.iter().enumerate() {
            if *name == "mitmproxy" && round > 0 {
                continue;
            }
            let mut sender = client.open(route, NAME).await;
            let start = Instant::now();
            let len = client.fetch(&mut sender, NAME, &path).await;
            assert_eq!(len, DOWNLOAD, "{name}: short download");
            result.mib_s[index].push(len as f64 / (1 << 20) as f64 / start.elapsed().as_secs_f64());
        }
    }
    result
}

/// Per route: per-round p50 and p99 (µs) of an event's trip from the upstream to the client.
struct Sse {
    p50: [Vec<f64>; 2],
    p99: [Vec<f64>; 2],
}

async fn sse(client: &Client, direct: &Route, via_hh: &Route) -> Sse {
    let mut result = Sse {
        p50: [Vec::new(), Vec::new()],
        p99: [Vec::new(), Vec::new()],
    };
    let path = format!("/sse/{SSE_EVENTS}");
    for _ in 0..SSE_ROUNDS {
        for (index, route) in [direct, via_hh].into_iter().enumerate() {
            let mut sender = client.open(route, NAME).await;
            sender.ready().await.expect("ready");
            let response = sender
                .send_request(client.request(NAME, &path))
                .await
                .expect("SSE response");
            let mut body = response.into_body();
            let mut pending = Vec::new();
            let mut samples = Vec::new();
            while let Some(frame) = body.frame().await {
                let Ok(data) = frame.expect("SSE body").into_data() else {
                    continue;
                };
                let now = since_epoch();
                pending.extend_from_slice(&data);
                while let Some(end) = pending.windows(2).position(|w| w == b"\n\n") {
                    let event = String::from_utf8_lossy(&pending[..end]).into_owned();
                    pending.drain(..end + 2);
                    let sent: u64 = event
                        .strip_prefix("data: ")
                        .and_then(|stamp| stamp.parse().ok())
                        .expect("an event carries its send time");
                    samples.push(now.saturating_sub(sent) as f64 / 1_000.0);
                }
            }
            assert_eq!(samples.len(), SSE_EVENTS, "every event arrives");
            result.p50[index].push(percentile(&mut samples, 0.50));
            result.p99[index].push(percentile(&mut samples, 0.99));
        }
    }
    result
}

/// The proxy's VmRSS (KiB) before, and with [`IDLE_CONNECTIONS`] idle kept-alive tunnels open.
struct Rss {
    before_kib: u64,
    /// One second after the last tunnel served its request.
    with_kib: u64,
    /// After [`KEPT_UPSTREAM_GONE`] more: hh has closed the tunnels' unused upstream connections.
    idle_kib: u64,
}

async fn rss_at_idle(client: &Client, route: &Route, pid: u32) -> Rss {
    let before_kib = vm_rss_kib(pid);
    let shared = Arc::new(Client {
        tls: client.tls.clone(),
        port: client.port,
    });
    // A few at a time: the point is the idle cost, not a handshake storm.
    let gate = Arc::new(tokio::sync::Semaphore::new(16));
    let mut opening = tokio::task::JoinSet::new();
    for _ in 0..IDLE_CONNECTIONS {
        let (client, route, gate) = (Arc::clone(&shared), route.clone(), Arc::clone(&gate));
        opening.spawn(async move {
            let _permit = gate.acquire_owned().await.unwrap();
            let mut sender = client.open(&route, NAME).await;
            client.fetch(&mut sender, NAME, "/").await;
            sender
        });
    }
    let senders = opening.join_all().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let with_kib = vm_rss_kib(pid);
    // hh closes a tunnel's unused upstream connection after `--upstream-keep` (10 s by default).
    tokio::time::sleep(KEPT_UPSTREAM_GONE).await;
    let idle_kib = vm_rss_kib(pid);
    drop(senders);
    // Let the proxy see the closes before anything else runs.
    tokio::time::sleep(Duration::from_millis(500)).await;
    Rss {
        before_kib,
        with_kib,
        idle_kib,
    }
}

fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

// ---------------------------------------------------------------------------------------------
// The report

struct Report {
    keep_alive: KeepAlive,
    plain: PlainKeepAlive,
    fresh: Fresh,
    download: Download,
    sse: Sse,
    rss: Vec<(&'static str, Rss)>,
}

impl Report {
    fn print(&self, mitm_missing: Option<&str>, took: Duration) {
        let k = &self.keep_alive;
        println!(
            "\n### Keep-alive HTTPS: one connection, sequential GETs (3-byte body); requests/s over \
             {CONCURRENCY} connections\n\n{ROUNDS} rounds × {:.0?} per case, interleaved; medians of \
             per-round values. Added = the route's percentile minus direct's, per round.\n",
            SLICE
        );
        println!(
            "| route | p50 | p99 | added p50 | added p99 | req/s ({CONCURRENCY} conns) | req/s vs direct |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|");
        let mut hh_rps = 0.0;
        let mut mitm_rps = None;
        for (index, name) in k.names.iter().enumerate() {
            let rps = median(&k.rps[index]);
            match *name {
                "hh" => hh_rps = rps,
                "mitmproxy" => mitm_rps = Some(rps),
                _ => {}
            }
            println!(
                "| {name} | {} | {} | {} | {} | {rps:.0} | {:.2}× |",
                us(median(&k.p50[index])),
                us(median(&k.p99[index])),
                added(&k.p50[index], &k.p50[0], index),
                added(&k.p99[index], &k.p99[0], index),
                rps / median(&k.rps[0]),
            );
        }
        if let Some(why) = mitm_missing {
            println!("| mitmproxy | {why} | | | | | |");
        }

        let p = &self.plain;
        println!(
            "\n### Keep-alive plain HTTP: one connection, sequential GETs; hh parses and decides \
             each request (a CONNECT tunnel carrying HTTP/1, as a session's port-80 traffic)\n\n\
             {ROUNDS} rounds × {:.0?} per case, interleaved; medians of per-round values.\n",
            SLICE
        );
        println!("| route | p50 | p99 | added p50 | added p99 |");
        println!("|---|---:|---:|---:|---:|");
        for (index, name) in ["direct", "hh"].iter().enumerate() {
            println!(
                "| {name} | {} | {} | {} | {} |",
                us(median(&p.p50[index])),
                us(median(&p.p99[index])),
                added(&p.p50[index], &p.p50[0], index),
                added(&p.p99[index], &p.p99[0], index),
            );
        }

        let f = &self.fresh;
        println!(
            "\n### New HTTPS connection per request: TCP + CONNECT + full TLS handshake + one GET\n\n\
             {ROUNDS} rounds × {:.0?} per case (new names: at most {UNCACHED_PER_ROUND} a round); \
             client session resumption off.\n",
            SLICE
        );
        println!("| case | connections | p50 | p99 | added p50 | added p99 |");
        println!("|---|---:|---:|---:|---:|---:|");
        for (index, name) in f.names.iter().enumerate() {
            println!(
                "| {name} | {} | {} | {} | {} | {} |",
                f.counts[index],
                us(median(&f.p50[index])),
                us(median(&f.p99[index])),
                added(&f.p50[index], &f.p50[0], index),
                added(&f.p99[index], &f.p99[0], index),
            );
        }

        let d = &self.download;
        println!(
            "\n### 1 GiB download (one GET, 64 KiB chunks of zeros)\n\n{DOWNLOAD_ROUNDS} rounds \
             (mitmproxy: 1, streaming bodies over 1 MiB); medians.\n"
        );
        println!("| route | MiB/s | range | vs direct |");
        println!("|---|---:|---:|---:|");
        let direct_mib = median(&d.mib_s[0]);
        for (index, name) in d.names.iter().enumerate() {
            let (low, high) = range(&d.mib_s[index]);
            println!(
                "| {name} | {:.0} | {low:.0}–{high:.0} | {:.2}× |",
                median(&d.mib_s[index]),
                median(&d.mib_s[index]) / direct_mib
            );
        }

        let s = &self.sse;
        println!(
            "\n### Server-sent events: one every 10 ms, upstream → client latency per event\n\n\
             {SSE_ROUNDS} rounds × {SSE_EVENTS} events per route; medians of per-round values.\n"
        );
        println!("| route | p50 | p99 | added p50 | added p99 |");
        println!("|---|---:|---:|---:|---:|");
        for (index, name) in ["direct", "hh"].iter().enumerate() {
            println!(
                "| {name} | {} | {} | {} | {} |",
                us(median(&s.p50[index])),
                us(median(&s.p99[index])),
                added(&s.p50[index], &s.p50[0], index),
                added(&s.p99[index], &s.p99[0], index),
            );
        }

        println!(
            "\n### Proxy resident memory (VmRSS) with {IDLE_CONNECTIONS} open kept-alive tunnels \
             (each served one GET)\n\n1 s after the last request, and {:.0?} later, once hh has \
             closed the upstream connections the tunnels no longer use (`--upstream-keep`).\n",
            KEPT_UPSTREAM_GONE
        );
        println!("| proxy | before | 1 s after | per tunnel | once idle | per idle tunnel |");
        println!("|---|---:|---:|---:|---:|---:|");
        for (name, rss) in &self.rss {
            let per = |kib: u64| (kib as f64 - rss.before_kib as f64) / IDLE_CONNECTIONS as f64;
            println!(
                "| {name} | {:.1} MB | {:.1} MB | {:.1} KB | {:.1} MB | {:.1} KB |",
                rss.before_kib as f64 / 1024.0,
                rss.with_kib as f64 / 1024.0,
                per(rss.with_kib),
                rss.idle_kib as f64 / 1024.0,
                per(rss.idle_kib),
            );
        }

        // The targets.
        let hh_index = 1;
        let added_p50 = median(&diffs(&k.p50[hh_index], &k.p50[0]));
        let added_p99 = median(&diffs(&k.p99[hh_index], &k.p99[0]));
        let cached = median(&diffs(&f.p50[1], &f.p50[0]));
        let download_ratio = median(&d.mib_s[hh_index]) / direct_mib;
        let met = |ok: bool| if ok { "met" } else { "**missed**" };
        println!("\n### Targets (issue #4)\n");
        println!("| target | measured | |");
        println!("|---|---:|---|");
        println!(
            "| keep-alive added p50 ≤ 150 µs | {} | {} |",
            us(added_p50),
            met(added_p50 <= 150.0)
        );
        println!(
            "| keep-alive added p99 ≤ 500 µs | {} | {} |",
            us(added_p99),
            met(added_p99 <= 500.0)
        );
        println!(
            "| new connection, cached leaf, added ≤ 1 ms (p50) | {} | {} |",
            us(cached),
            met(cached <= 1_000.0)
        );
        match mitm_rps {
            Some(mitm) => println!(
                "| req/s ≥ 10× mitmproxy | {:.1}× | {} |",
                hh_rps / mitm,
                met(hh_rps / mitm >= 10.0)
            ),
            None => println!("| req/s ≥ 10× mitmproxy | mitmproxy not available | not measured |"),
        }
        println!(
            "| download ≥ 0.5× direct | {download_ratio:.2}× | {} |",
            met(download_ratio >= 0.5)
        );
        for (name, rss) in self.rss.iter().filter(|(name, _)| name.starts_with("hh")) {
            for (when, kib) in [("1 s after", rss.with_kib), ("once idle", rss.idle_kib)] {
                let mb = kib as f64 / 1024.0;
                println!(
                    "| RSS ≤ 50 MB at {IDLE_CONNECTIONS} connections ({name}, {when}) | \
                     {mb:.1} MB | {} |",
                    met(mb <= 50.0)
                );
            }
        }
        println!("\nwhole run: {:.0?}", took);
    }
}

/// `route − direct` per round, as text; direct itself gets a dash.
fn added(route: &[f64], direct: &[f64], index: usize) -> String {
    if index == 0 {
        return "–".to_owned();
    }
    us(median(&diffs(route, direct)))
}

fn diffs(route: &[f64], direct: &[f64]) -> Vec<f64> {
    route.iter().zip(direct).map(|(r, d)| r - d).collect()
}

fn us(value: f64) -> String {
    if value.abs() >= 10_000.0 {
        format!("{:.1} ms", value / 1_000.0)
    } else if value.abs() >= 1_000.0 {
        format!("{:.2} ms", value / 1_000.0)
    } else {
        format!("{value:.0} µs")
    }
}

fn percentile(samples: &mut [f64], q: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    samples.sort_by(f64::total_cmp);
    samples[((samples.len() - 1) as f64 * q).round() as usize]
}

fn median(values: &[f64]) -> f64 {
    let mut values = values.to_vec();
    percentile(&mut values, 0.5)
}

fn range(values: &[f64]) -> (f64, f64) {
    let low = values.iter().copied().fold(f64::INFINITY, f64::min);
    let high = values.iter().copied().fold(0.0, f64::max);
    (low, high)
}
