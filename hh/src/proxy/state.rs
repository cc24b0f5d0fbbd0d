//! [`Proxy`]: what every connection of one proxy shares, whichever front door it came in by.

use std::{sync::Arc, time::Duration};

use tokio::sync::Semaphore;

use super::{
    decision::{DecisionEngine, PolicyFn},
    http1::Limits,
    secrets::Secrets,
    upstream::Upstream,
};
use crate::tls::leaf::LeafCache;

/// How long any side may stay silent: a request head, a tunnel's first byte, a body, a response.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// How long dialing an upstream (TCP connect and TLS handshake) may take.
pub const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

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

/// What a proxy is made of that differs between its users (a session's proxy in the agent,
/// `hh proxy`); [`Proxy::assemble`] adds what they share.
pub struct ProxySetup {
    pub engine: DecisionEngine,
    /// The upstream side before the policy's address rules are set on it.
    pub upstream: Upstream,
    /// The policy whose rules naming addresses the upstream side honours.
    pub address_rules: PolicyFn,
    pub leaves: LeafCache,
    pub idle_timeout: Duration,
    pub upstream_keep: Duration,
    pub secrets: Secrets,
}

impl Proxy {
    /// One proxy: default framing limits, and its own bound on open upstream connections.
    pub fn assemble(setup: ProxySetup) -> Proxy {
        Proxy {
            engine: setup.engine,
            upstream: setup.upstream.with_address_rules(setup.address_rules),
            leaves: setup.leaves,
            limits: Limits::default(),
            idle_timeout: setup.idle_timeout,
            upstream_keep: setup.upstream_keep,
            upstream_connections: super::kept_upstream::proxy_upstreams(),
            secrets: setup.secrets,
        }
    }
}
