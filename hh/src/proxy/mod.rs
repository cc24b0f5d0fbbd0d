//! The MITM proxy's building blocks: what it may dial and how strictly it reads HTTP/1.
//!
//! - [`ssrf`]: the pure decision whether an address may be dialled.


pub mod ssrf;
