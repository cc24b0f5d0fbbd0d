//! [`Proxy`]: what every connection of one proxy shares, whichever front door it came in by.

use std::{sync::Arc, time::Duration};

use tokio::sync::Semaphore;

use super::{decision::DecisionEngine, http1::Limits, secrets::Secrets, upstream::Upstream};
use crate::tls::leaf::LeafCache;

/// How long any side may stay silent: a request head, a tunnel's first byte, a body, a response.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The default of [`Proxy::upstream_keep`]: a burst of requests reuses one upstream connection,
/// while a tunnel left idle soon costs only its client side. (Clients' own keep-alive is often
/// shorter: Node's is 4 s.)
pub const UPSTREAM_KEEP: Duration = Duration::from_secs(10);

/// What every connection shares.
pub struct Proxy {
    pub engine: DecisionEngine,
    pub upstream: Upstream,
    pub leaves: LeafCache,
    pub limits: Limits,
    pub idle_timeout: Duration,
    /// How long a tunnel keeps an unused upstream connection for its next request.
    pub upstream_keep: Duration,
    /// This proxy's bound on open upstream connections
    /// ([`super::kept_upstream::proxy_upstreams`]).
    pub upstream_connections: Arc<Semaphore>,
    /// The session's secrets, put into the requests they may go in ([`super::secrets`]).
    pub secrets: Secrets,
}
