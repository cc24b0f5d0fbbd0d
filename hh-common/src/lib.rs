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
    /// `cgroup/sendmsg6`: refuses IPv6 UDP other than to `::1`.
    pub const SENDMSG6: &str = "hh_sendmsg6";
    /// `cgroup/recvmsg4`: makes DNS replies from the stub look like they came from the resolver
    /// the client asked, so resolvers accept them.
    pub const RECVMSG4: &str = "hh_recvmsg4";
    /// `cgroup/recvmsg6`: the same for IPv6 sockets that asked a v4-mapped resolver.
    pub const RECVMSG6: &str = "hh_recvmsg6";
    /// `cgroup/sock_create`: refuses raw IP sockets.
    pub const SOCK_CREATE: &str = "hh_sock_create";
    /// `sockops`: completes the original-destination record once a connection is established.
    pub const SOCK_OPS: &str = "hh_sock_ops";
    /// `sk_msg`: may splice client↔proxy bytes through the sockhash.
    pub const SK_MSG: &str = "hh_sk_msg";
}

/// Names of the load-time constants (`aya_ebpf::Global`), set with `EbpfLoader::override_global`.
pub mod global {
    /// `u16`, host order: the port of each session's proxy listener on its own 127.0.0.1.
    pub const PROXY_PORT: &str = "HH_PROXY_PORT";
    /// `u16`, host order: the port of each session's DNS stub (UDP) on its own 127.0.0.1.
    pub const DNS_PORT: &str = "HH_DNS_PORT";
}

/// Names of the maps in the embedded object.
pub mod map {
    /// Sockhash the `sk_msg` program is attached to.
    pub const SOCKETS: &str = "HH_SOCKETS";
    /// LRU hash, [`crate::SocketCookie`] → [`crate::Ipv4Dest`]: where a redirected connect was
    /// going, until `sock_ops` sees it established (entries of connects that never establish
    /// age out; the map cannot grow without bound).
    pub const CONNECTING: &str = "HH_CONNECTING";
    /// LRU hash, [`crate::ConnKey`] → [`crate::Ipv4Dest`]: the original destination of an
    /// established redirected connection, found by the proxy from the accepted socket.
    pub const ORIGINAL_DST: &str = "HH_ORIGINAL_DST";
    /// LRU hash, [`crate::SocketCookie`] → [`crate::Ipv4Dest`]: the resolver a UDP socket asked,
    /// so `recvmsg` can show the stub's reply as coming from it.
    pub const DNS_RESOLVER: &str = "HH_DNS_RESOLVER";
    /// Per-CPU array of `u64` counters, indexed by [`stat`].
    pub const STATS: &str = "HH_STATS";
}

/// Indexes of [`map::STATS`].
pub mod stat {
    /// TCP connects rewritten to the proxy.
    pub const REDIRECTED: u32 = 0;
    /// UDP DNS datagrams or connects rewritten to the stub.
    pub const DNS_REDIRECTED: u32 = 1;
    /// IPv6 connects or sends refused.
    pub const REFUSED_IPV6: u32 = 2;
    /// UDP (not DNS) refused.
    pub const REFUSED_UDP: u32 = 3;
    /// Raw IP sockets refused.
    pub const REFUSED_SOCKET: u32 = 4;
    /// Connects of another protocol (SCTP, MPTCP, …) refused.
    pub const REFUSED_PROTOCOL: u32 = 5;
    /// Redirected connections seen established by `sock_ops`.
    pub const ESTABLISHED: u32 = 6;
    /// Number of counters.
    pub const COUNT: u32 = 7;
}

/// Key of [`map::SOCKETS`], [`map::CONNECTING`] and [`map::DNS_RESOLVER`]: the socket cookie,
/// unique for the kernel's lifetime (unlike ports, which collide across namespaces).
pub type SocketCookie = u64;

/// An IPv4 destination exactly as the kernel gave it: address and port in network byte order.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Dest {
    pub addr: [u8; 4],
    pub port: [u8; 2],
    /// Explicit, zeroed padding: map values are compared and copied as bytes.
    pub _pad: [u8; 2],
}

/// Key of [`map::ORIGINAL_DST`]: the client's network namespace and its local port. Within one
/// namespace every redirected connection goes to the same proxy address from 127.0.0.1, so the
/// client port is unique among them; the namespace cookie keeps sessions apart.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnKey {
    pub netns_cookie: u64,
    /// Host byte order.
    pub port: u16,
    pub _pad: [u8; 6],
}

#[cfg(feature = "user")]
mod user {
    // SAFETY: both are `#[repr(C)]`, `Copy`, and have explicit padding fields, so every byte
    // pattern is a valid value and no byte is uninitialised.
    unsafe impl aya::Pod for super::Ipv4Dest {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ConnKey {}
}

const _: () = assert!(core::mem::size_of::<Ipv4Dest>() == 8);
const _: () = assert!(core::mem::size_of::<ConnKey>() == 16);
