//! Public corpora nobody on the project wrote, run against hh (`data/README.md` names each
//! source and commit):
//!
//! - [`wpt`]: the WHATWG URL standard's host vectors (web-platform-tests) through the rules
//!   library, `hh rules check` and `hh proxy`: a host the standard maps to H is decided as H,
//!   and an input the standard rejects is never allowed.
//! - [`smuggling`]: request-smuggling and desync payloads through `hh proxy` (absolute-form, and
//!   CONNECT tunnels with plain HTTP and with TLS): each is refused or reaches the upstream as one
//!   request that no server could frame another way, and no request for a denied path reaches it.
//!
//! Their tools: [`proxy`] runs `hh proxy` and its clients, [`recording_upstream`] keeps every
//! byte hh sends upstream, [`strict_http`] reads those bytes as the strictest server would.
//! Loopback only: every name is pinned to 127.0.0.1.

#[path = "../support/mod.rs"]
mod support;

mod proxy;
mod recording_upstream;
mod smuggling;
mod strict_http;
mod wpt;
