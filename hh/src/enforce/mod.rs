//! How a session's traffic is forced through the proxy.
//!
//! - [`ebpf`]: agent mode, eBPF programs attached to the session's cgroup (the embedded object).

pub mod ebpf;
