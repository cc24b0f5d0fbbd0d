//! How a session's traffic is forced through the proxy.
//!
//! - [`ebpf`]: agent mode: the embedded programs, loaded once and attached to each session's
//!   cgroup ([`ebpf::SessionLinks`]).
//! - [`kernel_log`]: the programs' aya-log records in hh's logs, when the log filter asks.
//! - [`original_dst`]: where a redirected connection was going, for the proxy's accepted socket.

pub mod ebpf;
pub mod kernel_log;
pub mod original_dst;
