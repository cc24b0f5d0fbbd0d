//! The MITM proxy's building blocks: what it may dial and how strictly it reads HTTP/1.
//!
//! - [`ssrf`]: the pure decision whether an address may be dialled.
//! - [`http1`]: the pure strict HTTP/1.x request-head parser and hop-by-hop stripping.

pub mod http1;
pub mod ssrf;
