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
    /// `u8`: 1 splices client↔proxy bytes through [`crate::map::SOCKETS`] with `sk_msg`, 0
    /// (the default) leaves every byte on the TCP path. See [`crate::splice`].
    pub const SPLICE: &str = "HH_SPLICE";
}

/// Names of the maps in the embedded object.
pub mod map {
    /// Sockhash, [`crate::SockKey`] → socket, the `sk_msg` program is attached to: both ends of
    /// every spliced client↔proxy connection (only when [`crate::global::SPLICE`] is on). The
    /// kernel removes a socket when it closes. (Named apart from the `HH_SOCKETS` of earlier
    /// versions, keyed by cookie, so a pinned map of theirs is never reused with the new key.)
    pub const SOCKETS: &str = "HH_SPLICE_SOCKETS";
    /// Hash, [`crate::SockKey`] of a client end → [`crate::splice`] state: whether that client's
    /// bytes go through the sockhash or stay on TCP. Removed when the client closes.
    pub const SPLICE_STATE: &str = "HH_SPLICE_STATE";
    /// LRU hash, [`crate::SocketCookie`] → [`crate::Redirect`]: where a redirected connect was
    /// going and who made it, until `sock_ops` sees it established (entries of connects that
    /// never establish age out; the map cannot grow without bound). (Named apart from the
    /// `HH_CONNECTING` of earlier versions, whose values held the destination alone, so a pinned
    /// map of theirs is never reused with the new value.)
    pub const CONNECTING: &str = "HH_CONNECTS";
    /// LRU hash, [`crate::ConnKey`] → [`crate::Redirect`]: the original destination of an
    /// established redirected connection and its process, found by the proxy from the accepted
    /// socket. (Named apart from the earlier `HH_ORIGINAL_DST` for the same reason.)
    pub const ORIGINAL_DST: &str = "HH_REDIRECTS";
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
    /// Redirected connections whose client bytes are spliced (the proxy end was in the
    /// sockhash at the client's first send).
    pub const SPLICED: u32 = 7;
    /// Redirected connections whose client bytes stay on TCP because the proxy end was not in
    /// the sockhash at the client's first send, or the client had sent bytes before (see
    /// [`crate::splice`]).
    pub const SPLICE_DECLINED: u32 = 8;
    /// Proxy ends of redirected clients that could not enter the splice sockhash (the map was
    /// full).
    pub const SPLICE_PROXY_REFUSED: u32 = 9;
    /// Number of counters.
    pub const COUNT: u32 = 10;
}

/// Splicing client↔proxy bytes with `sk_msg` (off unless [`global::SPLICE`] is 1).
///
/// Both ends of a redirected connection enter [`map::SOCKETS`] from `sock_ops`, before either
/// can send: the client at ACTIVE_ESTABLISHED (before its `connect` returns), the proxy end at
/// PASSIVE_ESTABLISHED (the kernel runs it before it queues any byte of the segment that
/// completed the handshake). `sk_msg` then hands each message straight to the peer's receive
/// queue, never to TCP.
///
/// The hazard is ordering: a receiver in a sockhash reads its `sk_msg` queue *before* its TCP
/// receive queue (`tcp_bpf_recvmsg`, net/ipv4/tcp_bpf.c), so one byte that went by TCP ahead of
/// spliced ones would be read after them. The proxy only sends after its end is in the map, to
/// a client already in it: all of its bytes are spliced. A client could send before the proxy
/// end is in (its `connect` can return before the kernel processed the handshake's last ACK),
/// so a client's bytes are spliced only if its *first* send already finds the proxy end; the
/// decision is made once, under the client's socket lock, and kept in [`map::SPLICE_STATE`]
/// ([`NEW`] → [`SPLICED`] or [`DECLINED`]). A client whose SYN carried data (TCP Fast Open)
/// is declined at ACTIVE_ESTABLISHED.
///
/// Known gap (one reason splicing stays off): bytes of a `send` that *began before* the
/// connection was established (a second thread's blocking `send` during `connect`, or
/// `TCP_FASTOPEN_CONNECT` without a cookie) are queued by plain `tcp_sendmsg` after the socket
/// entered the map, so `sk_msg` never sees them; a later send could then be spliced ahead of
/// them. Closing it needs TCP's `write_seq` in `sk_msg` (`bpf_skc_to_tcp_sock` with the field
/// offset from the kernel's BTF), which aya-ebpf 0.2 offers no CO-RE for.
///
/// The other reason: a spliced message is charged to the receiving socket without a
/// per-socket bound (`bpf_tcp_ingress`), so a client is no longer slowed down by a proxy that
/// does not read. `docs/benchmarks.md` has the numbers.
pub mod splice {
    /// The client end has sent nothing since it entered the sockhash.
    pub const NEW: u32 = 0;
    /// Every byte of the client goes to the proxy end's `sk_msg` queue.
    pub const SPLICED: u32 = 1;
    /// Every byte of the client stays on TCP (the proxy's bytes may still be spliced).
    pub const DECLINED: u32 = 2;
}

/// Key of [`map::SOCKETS`] and [`map::SPLICE_STATE`]: one end of a TCP connection, as that
/// end sees it. The peer's key is [`SockKey::reversed`]; the namespace cookie keeps two
/// sessions' identical loopback 4-tuples apart.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SockKey {
    pub netns_cookie: u64,
    /// IPv4 addresses in network byte order, as the kernel gives them.
    pub local_addr: [u8; 4],
    pub remote_addr: [u8; 4],
    /// Host byte order.
    pub local_port: u16,
    pub remote_port: u16,
    /// Explicit, zeroed padding: keys are hashed as bytes.
    pub _pad: [u8; 4],
}

impl SockKey {
    /// The same connection as its other end sees it.
    pub const fn reversed(&self) -> Self {
        Self {
            netns_cookie: self.netns_cookie,
            local_addr: self.remote_addr,
            remote_addr: self.local_addr,
            local_port: self.remote_port,
            remote_port: self.local_port,
            _pad: [0; 4],
        }
    }
}

/// Key of [`map::CONNECTING`] and [`map::DNS_RESOLVER`]: the socket cookie,
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

/// A redirected connect: where it was going, and the task that made it, as `connect4` saw it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Redirect {
    pub dest: Ipv4Dest,
    /// The connecting thread group (process) id, in the host's (the initial) pid namespace.
    pub tgid: u32,
    /// The connecting task's `comm` (NUL-padded, at most 15 bytes of name).
    pub comm: [u8; 16],
    /// Explicit, zeroed padding.
    pub _pad: [u8; 4],
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
    // SAFETY: as above.
    unsafe impl aya::Pod for super::Redirect {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::SockKey {}
}

const _: () = assert!(core::mem::size_of::<Ipv4Dest>() == 8);
const _: () = assert!(core::mem::size_of::<ConnKey>() == 16);
const _: () = assert!(core::mem::size_of::<Redirect>() == 32);
const _: () = assert!(core::mem::size_of::<SockKey>() == 24);

#[cfg(test)]
mod tests {
    use super::SockKey;

    #[test]
    fn a_key_reversed_twice_is_itself_and_once_is_the_peer() {
        let client = SockKey {
            netns_cookie: 7,
            local_addr: [127, 0, 0, 1],
            remote_addr: [127, 0, 0, 2],
            local_port: 40_000,
            remote_port: 15_001,
            _pad: [0; 4],
        };
        let proxy = client.reversed();
        assert_eq!(proxy.local_port, 15_001);
        assert_eq!(proxy.remote_addr, [127, 0, 0, 1]);
        assert_eq!(proxy.netns_cookie, 7);
        assert_eq!(proxy.reversed(), client);
    }
}
