//! The network policy: rule grammar, canonical request values, the compiled index and the one
//! decision function (allow, deny or ask) that both the proxy's HTTP and CONNECT paths call.
//!
//! Everything here except [`store`] is pure: no file, socket or clock.

pub mod host;

pub use host::{Host, HostError};
