//! The agent's client API: a unix socket, one JSON line per request (see [`protocol`]).
//!
//! - [`protocol`]: the requests, replies and events.
//! - [`server`]: binding the socket, `SO_PEERCRED`, line framing; a [`server::Service`] decides.
//! - [`client`]: what `hh` subcommands and the TUI use.
//! - [`exec_stream`]: the framed terminal stream of `hh shell` / `hh attach` after an exec.

pub mod client;
pub mod exec_stream;
pub mod protocol;
pub mod server;
