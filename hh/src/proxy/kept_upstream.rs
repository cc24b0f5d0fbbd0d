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
//! [`DecisionEngine::admits_host`]: super::decision::DecisionEngine::admits_host

use std::{
    sync::{Arc, Mutex, MutexGuard, PoisonError, Weak},
    time::Duration,
};

use hyper::{Request, Response, body::Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::{net::TcpStream, sync::watch, task::AbortHandle, time::Instant};

use super::{body::Metered, state::Proxy, upstream::Offer};
use crate::rules::Host;

type UpstreamIo = TokioIo<tokio_rustls::client::TlsStream<TcpStream>>;
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
    ) -> Result<UpstreamSender, hyper::Error> {
        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        let io: UpstreamIo = TokioIo::new(tls);
        if h2 {
            let (sender, connection) =
                hyper::client::conn::http2::Builder::new(TokioExecutor::new())
                    .timer(TokioTimer::new())
                    .handshake(io)
                    .await?;
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    tracing::debug!(%error, "upstream h2 connection ended with an error");
                }
            });
            Ok(UpstreamSender::H2(sender))
        } else {
            // HTTP/1.1, which may switch protocols (WebSocket).
            let (sender, connection) = hyper::client::conn::http1::handshake(io).await?;
            tokio::spawn(async move {
                if let Err(error) = connection.with_upgrades().await {
                    tracing::debug!(%error, "upstream connection ended with an error");
                }
            });
            Ok(UpstreamSender::H1(sender))
        }
    }

    /// An HTTP/1.1 connection over plain TCP (a plain-HTTP tunnel's upstream).
    pub async fn handshake_plain(tcp: TcpStream) -> Result<UpstreamSender, hyper::Error> {
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
        tokio::spawn(async move {
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
}

struct Kept {
    sender: Option<UpstreamSender>,
    /// The kept connection's address passed the SSRF guard only through the grant of the rule
    /// that allowed its request ([`super::decision::Ruling::grants_dial`]): only requests whose
    /// own rule grants it may use the connection.
    dialed_by_grant: bool,
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
                sender: None,
                dialed_by_grant: false,
                used: Instant::now(),
                closer: false,
                dialing: None,
                dial_task: None,
            })),
            keep,
        }
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
        let task = tokio::spawn(async move {
            // Whatever becomes of the dial, `done` is dropped with this task, which wakes the
            // request waiting in `take`.
            let _done = done;
            let dialed = proxy
                .upstream
                .dial_tls(&host, port, false, Offer::H2OrHttp1)
                .await;
            let sender = match dialed {
                Ok(tls) => UpstreamSender::handshake(tls).await.map_err(|error| {
                    tracing::debug!(%host, %error, "upstream dialed ahead failed");
                }),
                Err(error) => {
                    tracing::debug!(%host, %error, "upstream dialed ahead failed");
                    Err(())
                }
            };
            let Some(slot) = slot.upgrade() else { return };
            let kept = KeptUpstream { slot, keep };
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
        if kept.dialed_by_grant && !granted {
            return None;
        }
        let sender = kept.sender.take()?;
        match &sender {
            // An HTTP/2 connection carries many streams: leave a clone for the others.
            UpstreamSender::H2(h2) if h2.is_ready() => {
                kept.sender = Some(UpstreamSender::H2(h2.clone()));
                Some(sender)
            }
            _ if sender.is_free() => Some(sender),
            // Closed: gone for good.
            _ if sender.is_closed() => None,
            // Still busy with a response body: keep it for later, dial anew rather than wait.
            _ => {
                kept.sender = Some(sender);
                None
            }
        }
    }

    /// Keeps `sender` for the next request, unless another connection is kept already.
    /// `dialed_by_grant`: its address passed the SSRF guard only by the request's rule.
    pub fn put(&self, sender: UpstreamSender, dialed_by_grant: bool) {
        let mut kept = self.lock();
        kept.used = Instant::now();
        if kept.sender.is_none() {
            kept.sender = Some(sender);
            kept.dialed_by_grant = dialed_by_grant;
        }
        if !kept.closer {
            kept.closer = true;
            tokio::spawn(close_when_unused(Arc::downgrade(&self.slot), self.keep));
        }
    }

    fn lock(&self) -> MutexGuard<'_, Kept> {
        lock(&self.slot)
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
            let unused = kept.sender.take();
            kept.closer = false;
            drop(kept);
            drop(unused);
            return;
        }
    }
}
