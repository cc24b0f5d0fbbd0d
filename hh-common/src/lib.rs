//! The bytes both sides of the kernel boundary agree on.
//!
//! Every map key, map value and load-time constant shared by `hh-ebpf` (kernel) and `hh`
//! (userspace) lives here, `#[repr(C)]` and without implicit padding, so one diff changes both
//! sides. The `user` feature adds `aya::Pod` for the userspace half; the kernel half builds
//! `no_std` with no features.
#![no_std]

/// Names of the programs in the embedded object, as the loader looks them up.
///
/// The ELF symbol of a program must differ from its section name (bpf-linker refuses
/// `#[sock_ops] fn sockops`), so these are `hh_`-prefixed.
pub mod program {
    /// `cgroup/connect4`: rewrites a session's TCP connects to its proxy.
    pub const CONNECT4: &str = "hh_connect4";
    /// `cgroup/connect6`: refuses IPv6 other than the session's own loopback.
    pub const CONNECT6: &str = "hh_connect6";
    /// `cgroup/sendmsg4`: refuses UDP other than DNS to the session's stub.
    pub const SENDMSG4: &str = "hh_sendmsg4";
    /// `cgroup/sendmsg6`: refuses all IPv6 UDP.
    pub const SENDMSG6: &str = "hh_sendmsg6";
    /// `cgroup/sock_create`: refuses raw and packet sockets.
    pub const SOCK_CREATE: &str = "hh_sock_create";
    /// `sockops`: completes the original-destination record once a connection is established.
    pub const SOCK_OPS: &str = "hh_sock_ops";
    /// `sk_msg`: may splice client↔proxy bytes through the sockhash.
    pub const SK_MSG: &str = "hh_sk_msg";
}

/// Names of the maps in the embedded object.
pub mod map {
    /// Sockhash the `sk_msg` program is attached to.
    pub const SOCKETS: &str = "HH_SOCKETS";
}

/// Key of [`map::SOCKETS`]: the socket cookie.
pub type SocketCookie = u64;
