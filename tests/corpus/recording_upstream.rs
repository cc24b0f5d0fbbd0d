//! An upstream that keeps every byte hh sends it, per connection, tagged with the test case that
//! was running when the connection came in.
//!
//! Unlike `support::upstream` (hyper, which frames and forgets), this one reads with
//! [`strict_http`], answers the first request of a connection (`200`, or `400` when it is
//! ambiguous) with `Connection: close`, then goes on reading until hh closes, so bytes hh sent
//! after that request (a smuggled second one) are kept too. `Connection: close` makes every
//! upstream connection carry exactly one request of hh's: whatever else it carries, hh did not
//! mean to send.
//!
//! Loopback only: it listens on 127.0.0.1.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicUsize, Ordering},
};

use tokio::{
    io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _},
    net::TcpListener,
};

use crate::{
    strict_http::{Read, read_request},
    support::upstream::test_server_config,
};

/// The most bytes kept from one connection; hh never needs more for a corpus case.
const MAX_KEPT: usize = 1 << 20;

/// What one connection to the upstream carried.
#[derive(Clone, Debug)]
pub struct Received {
    /// The test case running when it was accepted.
    pub case: usize,
    pub bytes: Vec<u8>,
}

/// The running upstream: a TLS port (with a test CA) and a plain-HTTP port.
pub struct RecordingUpstream {
    pub tls_port: u16,
    pub http_port: u16,
    /// The test CA that signed the TLS port's leaf (hh trusts it through `--upstream-ca`).
    pub ca_pem: String,
    case: Arc<AtomicUsize>,
    connections: Arc<Mutex<Vec<Arc<Mutex<Received>>>>>,
    open: Arc<AtomicUsize>,
}

impl RecordingUpstream {
    /// Starts both ports on their own thread; the TLS leaf names every one of `names`.
    pub fn start(names: &[String]) -> RecordingUpstream {
        let (config, ca_pem) = test_server_config(names, &[b"http/1.1"]);
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let case = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(Mutex::new(Vec::new()));
        let open = Arc::new(AtomicUsize::new(0));
        let shared = Shared {
            case: Arc::clone(&case),
            connections: Arc::clone(&connections),
            open: Arc::clone(&open),
        };
        let (ports_tx, ports_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let tls = TcpListener::bind("127.0.0.1:0").await.unwrap();
                let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
                let ports = (
                    tls.local_addr().unwrap().port(),
                    http.local_addr().unwrap().port(),
                );
                ports_tx.send(ports).unwrap();
                let plain = shared.clone();
                tokio::spawn(async move {
                    loop {
                        let (stream, _) = http.accept().await.unwrap();
                        let _ = stream.set_nodelay(true);
                        let (recorded, guard) = plain.accepted();
                        tokio::spawn(record(stream, recorded, guard));
                    }
                });
                loop {
                    let (stream, _) = tls.accept().await.unwrap();
                    let _ = stream.set_nodelay(true);
                    let (recorded, guard) = shared.accepted();
                    let acceptor = acceptor.clone();
                    tokio::spawn(async move {
                        if let Ok(stream) = acceptor.accept(stream).await {
                            record(stream, recorded, guard).await;
                        }
                    });
                }
            });
        });
        let (tls_port, http_port) = ports_rx.recv().unwrap();
        RecordingUpstream {
            tls_port,
            http_port,
            ca_pem,
            case,
            connections,
            open,
        }
    }

    /// Tags the connections accepted from now on with `case`.
    pub fn set_case(&self, case: usize) {
        self.case.store(case, Ordering::SeqCst);
    }

    /// Every connection so far, once none is open any more (or after ten seconds, with what
    /// they carried by then): call it after the proxy has stopped.
    pub fn received(&self) -> Vec<Received> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while self.open.load(Ordering::SeqCst) > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let connections = self.connections.lock().unwrap();
        connections
            .iter()
            .map(|received| received.lock().unwrap().clone())
            .collect()
    }
}

/// What the accept loops share with each connection.
#[derive(Clone)]
struct Shared {
    case: Arc<AtomicUsize>,
    connections: Arc<Mutex<Vec<Arc<Mutex<Received>>>>>,
    open: Arc<AtomicUsize>,
}

impl Shared {
    /// A new connection's record (already in the list, so nothing it carries can be missed)
    /// and the guard that counts it open.
    fn accepted(&self) -> (Arc<Mutex<Received>>, OpenGuard) {
        let received = Arc::new(Mutex::new(Received {
            case: self.case.load(Ordering::SeqCst),
            bytes: Vec::new(),
        }));
        self.connections.lock().unwrap().push(Arc::clone(&received));
        self.open.fetch_add(1, Ordering::SeqCst);
        (received, OpenGuard(Arc::clone(&self.open)))
    }
}

/// Counts a connection open until its task ends, however it ends.
struct OpenGuard(Arc<AtomicUsize>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Keeps what `stream` carries; answers its first request, then reads on until hh closes.
async fn record<S>(mut stream: S, received: Arc<Mutex<Received>>, _open: OpenGuard)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut bytes = Vec::new();
    let mut answered = false;
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let read = match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        bytes.extend_from_slice(&chunk[..read]);
        received
            .lock()
            .unwrap()
            .bytes
            .extend_from_slice(&chunk[..read]);
        if bytes.len() > MAX_KEPT {
            break;
        }
        if answered {
            continue;
        }
        let answer = match read_request(&bytes) {
            Read::Incomplete(_) => continue,
            Read::Request { head, .. } => answer(
                200,
                &format!("upstream saw {} {}\n", head.method, head.target),
            ),
            Read::Ambiguous(why) => answer(400, &format!("upstream: ambiguous: {why}\n")),
        };
        answered = true;
        // The write side closes after the answer; the read side stays open for what follows.
        if stream.write_all(answer.as_bytes()).await.is_err() || stream.shutdown().await.is_err() {
            break;
        }
    }
}

fn answer(status: u16, body: &str) -> String {
    format!(
        "HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
}
