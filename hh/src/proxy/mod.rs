//! The MITM proxy: its shared state, its front doors, the one pipeline they feed, and the
//! building blocks.
//!
//! - [`state`]: [`state::Proxy`], what every connection shares.
//! - [`pipeline`]: a connection with a known destination, from its first bytes to decisions.
//! - [`first_bytes`]: what a connection carries (TLS, HTTP/1, neither), told from its start.
//! - [`ssrf`]: the pure decision whether an address may be dialled.
//! - [`host_addresses`]: this host's own addresses (refused by the guard), kept fresh.
//! - [`http1`]: the pure strict HTTP/1.x request-head parser and hop-by-hop stripping.
//! - [`approvals`]: requests held for a person's answer (shared prompts, bounded, timed out).
//! - [`approvals_api`]: `hh proxy --api-socket`: approvals served to `hh approvals` and the TUI.
//! - [`decision`]: the one decision per request (policy, ask with timeout, audit, 403 text).
//! - [`push_guard`]: git mode: pushes only to the workspace's origin, before any rule.
//! - [`secrets`]: credential injection: placeholders in the session, values put in by the proxy.
//! - [`explicit`]: the explicit-proxy front door (`hh proxy`): CONNECT and absolute-form.
//! - [`transparent`]: the agent's front door: connections the eBPF programs redirected.
//! - [`intercept`]: per-request decisions inside a tunnel (TLS terminated, or plain HTTP/1).
//! - [`websocket`]: what makes an upgrade real (key, version, accept).
//! - [`upstream`]: resolve, SSRF-check and dial upstreams; verify their certificates.
//! - [`kept_upstream`]: the upstream connection a tunnel keeps for its requests.
//! - [`relay`]: copying bytes between sockets with an idle bound.
//! - [`idle`]: an idle bound for connections hyper drives (HTTP/2 to the client).
//! - [`body`]: HTTP bodies streamed through, counted, with an idle bound.
//! - [`client_hello`]: the bounded ClientHello parser (server name, ECH) for bypassed hosts.
//! - [`bypass`]: whether a `bypass_proxy` connection's ClientHello may be spliced.

pub mod approvals;
pub mod approvals_api;
pub mod body;
pub mod bypass;
pub mod client_hello;
pub mod client_process;
pub mod decision;
pub mod explicit;
pub mod first_bytes;
pub mod host_addresses;
pub mod http1;
pub mod idle;
pub mod in_span;
pub mod intercept;
pub mod kept_upstream;
pub mod pipeline;
pub mod push_guard;
pub mod relay;
pub mod secrets;
pub mod ssrf;
pub mod state;
pub mod tool_calls;
pub mod transparent;
pub mod upstream;
pub mod websocket;
