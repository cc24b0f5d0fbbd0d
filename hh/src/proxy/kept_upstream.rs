//! The upstream connection a tunnel keeps for its requests.
//!
//! A tunnel's host and port never change, so one upstream connection can carry all its
//! requests (each still decided on its own): a keep-alive client pays one upstream handshake,
//! not one per request. The connection is kept only while it is used: once no request took or
//! returned it for [`Proxy::upstream_keep`], it is closed, so an idle tunnel costs its client
//! side only; its next request dials anew, as a tunnel's first does.
//!
//! A tunnel to a host a rule already admits ([`DecisionEngine::admits_host`]) may dial before
//! its first request ([`KeptUpstream::dial_ahead`]), overlapping the upstream handshake with the
//! client's. No byte of the client's goes upstream before a request passed policy.
//!
//! Fan-out is bounded: a tunnel dials one upstream connection at a time (concurrent requests
//! wait for that dial, and share it when it is HTTP/2), and every open upstream connection holds
//! a permit of its tunnel ([`MAX_TUNNEL_UPSTREAMS`]), of its proxy ([`MAX_PROXY_UPSTREAMS`],
//! one session's in agent mode) and of the process ([`MAX_PROCESS_UPSTREAMS`], every session)
//! until it closes. A request that finds no permit waits for one; so 100 HTTP/2 streams of one
//! client open one upstream connection to an HTTP/2 upstream, at most 8 to an HTTP/1.1 one.
//!
//! [`DecisionEngine::admits_host`]: super::decision::DecisionEngine::admits_host

use std::{
    sync::{Arc, LazyLock, Mutex, MutexGuard, PoisonError, Weak},
    time::Duration,
};

use hyper::{Request, Response, body::Incoming};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{
    net::TcpStream,
    sync::{OwnedMutexGuard, OwnedSemaphorePermit, Semaphore, watch},
    task::AbortHandle,
    time::Instant,
};

use super::{body::Metered, state::Proxy, upstream::Offer};
use crate::rules::Host;

type UpstreamIo = TokioIo<tokio_rustls::client::TlsStream<TcpStream>>;

/// The most upstream connections one tunnel holds open at once.
pub const MAX_TUNNEL_UPSTREAMS: usize = 8;
/// The most upstream connections one proxy (one session's, or `hh proxy`'s) holds open at once.
pub const MAX_PROXY_UPSTREAMS: usize = 1024;
/// The most upstream connections the whole process holds open at once, every session together.
pub const MAX_PROCESS_UPSTREAMS: usize = 4096;

static PROCESS_UPSTREAMS: LazyLock<Arc<Semaphore>> =
    LazyLock::new(|| Arc::new(Semaphore::new(MAX_PROCESS_UPSTREAMS)));

/// A new proxy's own bound ([`MAX_PROXY_UPSTREAMS`]), for [`Proxy::upstream_connections`].
pub fn proxy_upstreams() -> Arc<Semaphore> {
    Arc::new(Semaphore::new(MAX_PROXY_UPSTREAMS))
}

/// What one open upstream connection holds until it closes: a place in its tunnel's, its
/// proxy's and the process's bound.
pub struct UpstreamPermits {
    _held: [OwnedSemaphorePermit; 3],
}
pub type UpstreamBody = Metered<Incoming>;

/// One upstream connection's request side, in the version its ALPN chose. Its connection is
/// driven on a task of its own and closes when the last sender is dropped (once the responses
/// still streaming on it are done).
pub enum UpstreamSender {
    H1(hyper::client::conn::http1::SendRequest<UpstreamBody>),
    H2(hyper::client::conn::http2::SendRequest<UpstreamBody>),
}

impl UpstreamSender {
    pub async fn handshake(
        tls: tokio_rustls::client::TlsStream<TcpStream>,
        permits: UpstreamPermits,
    ) -> Result<UpstreamSender, hyper::Error> {
        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        let io: UpstreamIo = TokioIo::new(tls);
        if h2 {
            let (sender, connection) =
                hyper::client::conn::http2::Builder::new(super::in_span::SpanExecutor)
                    .timer(TokioTimer::new())
                    .handshake(io)
                    .await?;
            super::in_span::spawn(async move {
                let _permits = permits;
                if let Err(error) = connection.await {
                    tracing::debug!(%error, "upstream h2 connection ended with an error");
                }
            });
            Ok(UpstreamSender::H2(sender))
        } else {
            // HTTP/1.1, which may switch protocols (WebSocket).
            let (sender, connection) = hyper::client::conn::http1::handshake(io).await?;
            super::in_span::spawn(async move {
                let _permits = permits;
                if let Err(error) = connection.with_upgrades().await {
                    tracing::debug!(%error, "upstream connection ended with an error");
                }
            });
            Ok(UpstreamSender::H1(sender))
        }
    }

    /// An HTTP/1.1 connection over plain TCP (a plain-HTTP tunnel's upstream).
    pub async fn handshake_plain(
        tcp: TcpStream,
        permits: UpstreamPermits,
    ) -> Result<UpstreamSender, hyper::Error> {
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
        super::in_span::spawn(async move {
            let _permits = permits;
            if let Err(error) = connection.with_upgrades().await {
                tracing::debug!(%error, "upstream connection ended with an error");
            }
        });
        Ok(UpstreamSender::H1(sender))
    }

    /// Sends one request once the connection can take it.
    pub async fn send(
        &mut self,
        request: Request<UpstreamBody>,
    ) -> Result<Response<Incoming>, hyper::Error> {
        match self {
            UpstreamSender::H1(sender) => {
                sender.ready().await?;
                sender.send_request(request).await
            }
            UpstreamSender::H2(sender) => {
                sender.ready().await?;
                sender.send_request(request).await
            }
        }
    }

    /// Another handle on the same connection, when it multiplexes (HTTP/2).
    pub fn shared(&self) -> Option<UpstreamSender> {
        match self {
            UpstreamSender::H1(_) => None,
            UpstreamSender::H2(sender) => Some(UpstreamSender::H2(sender.clone())),
        }
    }

    fn is_closed(&self) -> bool {
        match self {
            UpstreamSender::H1(sender) => sender.is_closed(),
            UpstreamSender::H2(sender) => sender.is_closed(),
        }
    }

    /// Whether a new request could go on this connection now (HTTP/1.1: the last exchange is
    /// over; either: the connection is still open).
    fn is_free(&self) -> bool {
        match self {
            UpstreamSender::H1(sender) => sender.is_ready(),
            UpstreamSender::H2(sender) => sender.is_ready(),
        }
    }
}

/// The upstream connection a tunnel keeps between requests. A request takes it (so two
/// concurrent requests never share an HTTP/1.1 connection) and puts it back once its response
/// head arrived; a request that finds it taken, busy or closed dials its own.
#[derive(Clone)]
pub struct KeptUpstream {
    slot: Arc<Mutex<Kept>>,
    keep: Duration,
    /// Held while the tunnel dials: one dial at a time.
    dial_turn: Arc<tokio::sync::Mutex<()>>,
    /// The tunnel's bound on open upstream connections.
    connections: Arc<Semaphore>,
    /// Told when a connection is put back: a request waiting for room may use it instead.
    returned: Arc<tokio::sync::Notify>,
}

struct Kept {
    /// The connections kept for the tunnel's next requests (at most [`MAX_TUNNEL_UPSTREAMS`]),
    /// each with whether its address passed the SSRF guard only through the grant of the rule
    /// that allowed its request ([`super::decision::Ruling::grants_dial`]): only requests whose
    /// own rule grants it may use such a connection.
    senders: Vec<(UpstreamSender, bool)>,
    /// When a request last took or returned the connection.
    used: Instant,
    /// Whether a task is waiting to close it once unused for `keep`.
    closer: bool,
    /// A dial started ahead of the first request: it changes (closes) when that dial ended.
    dialing: Option<watch::Receiver<()>>,
    /// That dial's task, stopped when the tunnel ends first (a client opening and dropping
    /// tunnels must not leave dials running beyond its connection limit).
    dial_task: Option<AbortHandle>,
}

impl Drop for Kept {
    fn drop(&mut self) {
        if let Some(task) = self.dial_task.take() {
            task.abort();
        }
    }
}

impl KeptUpstream {
    /// Keeps an unused connection for `keep`.
    pub fn new(keep: Duration) -> KeptUpstream {
        KeptUpstream {
            slot: Arc::new(Mutex::new(Kept {
                senders: Vec::new(),
                used: Instant::now(),
                closer: false,
                dialing: None,
                dial_task: None,
            })),
            keep,
            dial_turn: Arc::new(tokio::sync::Mutex::new(())),
            connections: Arc::new(Semaphore::new(MAX_TUNNEL_UPSTREAMS)),
            returned: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// A kept connection as soon as one can be used, or the permits to dial a new one, whichever
    /// comes first: at the tunnel's bound, a returned connection (even one still finishing a
    /// response) serves the request rather than a wait for a connection to close.
    pub async fn take_or_permits(
        &self,
        granted: bool,
        proxy: &Arc<Semaphore>,
    ) -> Result<UpstreamSender, UpstreamPermits> {
        loop {
            if let Some(sender) = self.take(granted).await {
                return Ok(sender);
            }
            tokio::select! {
                permits = self.permits(proxy) => return Err(permits),
                () = self.returned.notified() => {}
            }
        }
    }

    /// Waits until no other request of the tunnel is dialing; the guard is this request's turn.
    pub async fn dial_turn(&self) -> OwnedMutexGuard<()> {
        Arc::clone(&self.dial_turn).lock_owned().await
    }

    /// Waits for room for one more upstream connection: in this tunnel, in `proxy`'s bound
    /// ([`Proxy::upstream_connections`]) and in the process's.
    pub async fn permits(&self, proxy: &Arc<Semaphore>) -> UpstreamPermits {
        acquire_permits(&self.connections, proxy).await
    }

    /// Dials `host:port` on a task of its own and keeps the connection for the tunnel's first
    /// request, which waits for this dial rather than starting a second. A failure is only
    /// logged here: the request then dials itself and reports why. Only for names (the SSRF
    /// guard's verdict on an IP literal depends on the rule allowing the request), and only
    /// when a rule admits the host ([`super::decision::DecisionEngine::admits_host`]).
    pub fn dial_ahead(&self, proxy: Arc<Proxy>, host: Host, port: u16) {
        let (done, waiting) = watch::channel(());
        let slot = Arc::downgrade(&self.slot);
        let keep = self.keep;
        let (dial_turn, connections, returned) = (
            Arc::clone(&self.dial_turn),
            Arc::clone(&self.connections),
            Arc::clone(&self.returned),
        );
        let task = super::in_span::spawn(async move {
            // Whatever becomes of the dial, `done` is dropped with this task, which wakes the
            // request waiting in `take`.
            let _done = done;
            let permits = acquire_permits(&connections, &proxy.upstream_connections).await;
            let dialed = proxy
                .upstream
                .dial_tls(&host, port, false, Offer::H2OrHttp1)
                .await;
            let sender = match dialed {
                Ok(tls) => UpstreamSender::handshake(tls, permits)
                    .await
                    .map_err(|error| {
                        tracing::debug!(%host, %error, "upstream dialed ahead failed");
                    }),
                Err(error) => {
                    tracing::debug!(%host, %error, "upstream dialed ahead failed");
                    Err(())
                }
            };
            let Some(slot) = slot.upgrade() else { return };
            let kept = KeptUpstream {
                slot,
                keep,
                dial_turn,
                connections,
                returned,
            };
            if let Ok(sender) = sender {
                kept.put(sender, false);
            }
            kept.lock().dialing = None;
        });
        let mut kept = self.lock();
        kept.dialing = Some(waiting);
        kept.dial_task = Some(task.abort_handle());
    }

    /// The kept connection when it is free (after the dial ahead, if one is under way);
    /// `None`: dial a new one. `granted`: the request's rule grants dialing an address the SSRF
    /// guard refuses ([`super::decision::Ruling::grants_dial`]); without it, a connection that
    /// needed such a grant is not handed out.
    pub async fn take(&self, granted: bool) -> Option<UpstreamSender> {
        let dialing = self.lock().dialing.clone();
        if let Some(mut dialing) = dialing {
            // Ends with an error once the dialing task dropped its end, which is all we wait for.
            let _ = dialing.changed().await;
        }
        let mut kept = self.lock();
        kept.used = Instant::now();
        // Closed ones are gone for good.
        kept.senders.retain(|(sender, _)| !sender.is_closed());
        let allowed = |by_grant: bool| granted || !by_grant;
        let free = kept
            .senders
            .iter()
            .position(|(sender, by_grant)| allowed(*by_grant) && sender.is_free());
        // No free one, and the tunnel holds all the connections it may: wait on a busy one
        // (sending waits until its exchange is over) rather than for a connection to close.
        let at_bound = self.connections.available_permits() == 0;
        let usable = free.or_else(|| {
            at_bound
                .then(|| {
                    kept.senders.iter().position(|(sender, by_grant)| {
                        allowed(*by_grant) && matches!(sender, UpstreamSender::H1(_))
                    })
                })
                .flatten()
        })?;
        match &kept.senders[usable].0 {
            // An HTTP/2 connection carries many streams: it stays for the others.
            UpstreamSender::H2(h2) => Some(UpstreamSender::H2(h2.clone())),
            // An HTTP/1.1 one carries one exchange at a time: taken until put back. One still
            // busy with a response body is not free; the request dials anew rather than wait.
            UpstreamSender::H1(_) => Some(kept.senders.swap_remove(usable).0),
        }
    }

    /// Keeps `sender` for the next requests (an HTTP/2 connection once: it is shared, not
    /// taken). `dialed_by_grant`: its address passed the SSRF guard only by the request's rule.
    pub fn put(&self, sender: UpstreamSender, dialed_by_grant: bool) {
        let mut kept = self.lock();
        kept.used = Instant::now();
        let shared_already = matches!(sender, UpstreamSender::H2(_))
            && kept
                .senders
                .iter()
                .any(|(kept, _)| matches!(kept, UpstreamSender::H2(_)) && !kept.is_closed());
        if !shared_already && kept.senders.len() < MAX_TUNNEL_UPSTREAMS {
            kept.senders.push((sender, dialed_by_grant));
            // One stored wake-up if nobody waits yet: a waiter about to wait still sees it.
            self.returned.notify_one();
        }
        if !kept.closer {
            kept.closer = true;
            super::in_span::spawn(close_when_unused(Arc::downgrade(&self.slot), self.keep));
        }
    }

    fn lock(&self) -> MutexGuard<'_, Kept> {
        lock(&self.slot)
    }
}

/// Places in `tunnel`'s, `proxy`'s and the process's bound, taken in that order (always the
/// same order, so two waiters cannot each hold what the other waits for).
async fn acquire_permits(tunnel: &Arc<Semaphore>, proxy: &Arc<Semaphore>) -> UpstreamPermits {
    let acquire = |semaphore: &Arc<Semaphore>| Arc::clone(semaphore).acquire_owned();
    // Never closed, so acquiring cannot fail.
    let tunnel = acquire(tunnel).await.expect("open semaphore");
    let proxy = acquire(proxy).await.expect("open semaphore");
    let process = acquire(&PROCESS_UPSTREAMS).await.expect("open semaphore");
    UpstreamPermits {
        _held: [tunnel, proxy, process],
    }
}

fn lock(slot: &Mutex<Kept>) -> MutexGuard<'_, Kept> {
    // Every critical section leaves the slot consistent, so a panic elsewhere poisons nothing.
    slot.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Sleeps until the kept connection has gone unused for `keep`, then drops it. Ends early when
/// the tunnel is gone (and its connection with it).
async fn close_when_unused(slot: Weak<Mutex<Kept>>, keep: Duration) {
    loop {
        let Some(strong) = slot.upgrade() else { return };
        let due = lock(&strong).used + keep;
        drop(strong);
        tokio::time::sleep_until(due).await;
        let Some(strong) = slot.upgrade() else { return };
        let mut kept = lock(&strong);
        if kept.used.elapsed() >= keep {
            let unused = std::mem::take(&mut kept.senders);
            kept.closer = false;
            drop(kept);
            drop(unused);
            return;
        }
    }
}
