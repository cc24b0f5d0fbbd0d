//! TLS interception: the installation CA and the leaf certificates it signs for each host.
//!
//! - [`ca`]: load or create the CA under the state directory; export `ca.pem` for containers.
//! - [`leaf`]: one leaf per host, cached, generated off the async runtime, one generation per name.

pub mod ca;
pub mod leaf;
