//! The agent's client API: a unix socket, one JSON line per request (see [`protocol`]).
//!
//! - [`protocol`]: the requests, replies and events.
//! - [`server`]: binding the socket, `SO_PEERCRED`, line framing; a [`server::Service`] decides.
//! - [`client`]: what `hh` subcommands and the TUI use.

pub mod client;
pub mod protocol;
pub mod server;
