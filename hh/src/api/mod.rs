//! The agent's client API: a unix socket, one JSON line per request (see [`protocol`]).

pub mod protocol;
