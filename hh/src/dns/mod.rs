//! The per-session DNS stub: the only resolver a session's container can reach (DESIGN, "The data
//! path", item 4).
//!
//! The kernel redirects every UDP datagram to port 53 to the session's stub and refuses all other
//! UDP. The stub never resolves anything upstream: an `A` query gets an address from a *synthetic*
//! range (by default 198.18.0.0/15) that maps back to the queried name, so when the agent then
//! connects to that address the proxy — which the kernel sends every TCP connect to — learns the
//! *name* of the connection even when it speaks neither HTTP nor TLS with SNI. The proxy then
//! decides on that name and resolves it itself, only if policy allows it. No query for any name
//! leaves the machine.
//!
//! Policy-gated upstream resolution (answering with real addresses, or other record types, for
//! names the policy already allows) is a later step; today every name gets a synthetic address.
//!
//! What this module leaves to others: binding the socket inside the container's network namespace
//! (the agent), and refusing a connection to a synthetic address that has no name (the proxy, via
//! [`SyntheticAddresses::name_of`] and [`SyntheticAddresses::contains`]).
//!
//! # Layout
//! - [`synthetic`]: [`SyntheticAddresses`], the name ⇄ address table (pure, thread-safe).
//! - [`mod@answer`]: [`answer()`], one query datagram in, one response datagram (or nothing) out (pure).
//! - [`rate`]: [`TokenBucket`], the query-rate cap (pure: the caller passes the time).
//! - [`stub`]: [`serve`], the UDP loop: receive, rate-cap, answer, send; with [`StubCounters`].
//!
//! # Use
//! ```no_run
//! use std::sync::Arc;
//! use hh::dns::{Limits, SyntheticAddresses, serve};
//!
//! # async fn run() -> std::io::Result<()> {
//! let addresses = Arc::new(SyntheticAddresses::default());
//! let socket = tokio::net::UdpSocket::bind("127.0.0.1:53").await?;
//! tokio::spawn(serve(socket, Arc::clone(&addresses), Limits::default()));
//! // Later, in the proxy, for a connection whose original destination was `ip`:
//! // let name = addresses.name_of(ip);
//! # Ok(())
//! # }
//! ```

pub mod answer;
pub mod rate;
pub mod stub;
pub mod synthetic;

pub use answer::answer;
pub use rate::TokenBucket;
pub use stub::{StubCounters, serve, serve_counting};
pub use synthetic::{RangeError, SyntheticAddresses, SyntheticError};

/// The knobs of one stub: answer TTL, name-length caps and the query-rate cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// TTL of every synthetic `A` record, in seconds. Short, so that a client re-asks soon and
    /// an address reused for another name (see [`synthetic`]) is rarely still cached anywhere.
    pub ttl_secs: u32,
    /// Longest label accepted, in bytes; at most 63 (RFC 1035 §2.3.4), which [`Limits::default`]
    /// uses. A lower cap narrows what a query can carry.
    pub max_label_len: usize,
    /// Longest name accepted, in bytes of text without the final dot; at most 253.
    pub max_name_len: usize,
    /// Sustained queries per second one stub answers.
    pub queries_per_second: u32,
    /// Queries answered back to back before the rate cap applies.
    pub burst: u32,
}

/// Defaults: TTL 5 s, RFC 1035's 63/253 length caps, 200 queries/s with a burst of 100.
impl Default for Limits {
    fn default() -> Limits {
        Limits {
            ttl_secs: 5,
            max_label_len: 63,
            max_name_len: 253,
            queries_per_second: 200,
            burst: 100,
        }
    }
}
