//! Address tests and rewrites on `bpf_sock_addr`, shared by the sock_addr programs.
//!
//! `user_ip4` holds the address in network byte order, `user_port` the port in network byte
//! order in its low 16 bits; `user_ip6` four network-order words. Stores are single 32-bit
//! writes: the verifier accepts only those on these fields.

use aya_ebpf::{EbpfContext as _, bindings::bpf_sock_addr, helpers::bpf_get_socket_cookie};
use hh_common::{Ipv4Dest, SocketCookie};

use aya_ebpf::programs::SockAddrContext;

/// 127.0.0.1 as `user_ip4` holds it.
pub const LOOPBACK4: u32 = u32::from_ne_bytes([127, 0, 0, 1]);
/// The v4-mapped prefix word `0000:ffff` as `user_ip6[2]` holds it.
pub const MAPPED_PREFIX: u32 = u32::from_ne_bytes([0, 0, 0xff, 0xff]);

/// True for 127.0.0.0/8 (network-order `addr`).
pub fn is_loopback4(addr: u32) -> bool {
    addr.to_ne_bytes()[0] == 127
}

/// The session's own `::1`.
pub fn is_loopback6(words: [u32; 4]) -> bool {
    words == [0, 0, 0, 1u32.to_be()]
}

/// The IPv4 address inside `::ffff:a.b.c.d`, if that is what `words` is.
pub fn mapped4(words: [u32; 4]) -> Option<u32> {
    (words[0] == 0 && words[1] == 0 && words[2] == MAPPED_PREFIX).then_some(words[3])
}

/// The port as `user_port` holds it (network order in the low 16 bits).
pub fn port_be(sock_addr: &bpf_sock_addr) -> u16 {
    sock_addr.user_port as u16
}

pub fn dest(addr: u32, port_be: u16) -> Ipv4Dest {
    Ipv4Dest {
        addr: addr.to_ne_bytes(),
        port: port_be.to_ne_bytes(),
        _pad: [0; 2],
    }
}

pub fn socket_cookie(ctx: &SockAddrContext) -> SocketCookie {
    // SAFETY: the helper only reads the socket behind the program's own context.
    unsafe { bpf_get_socket_cookie(ctx.as_ptr()) }
}

/// Rewrites the destination to 127.0.0.1:`port` (host order).
pub fn rewrite4(sock_addr: &mut bpf_sock_addr, port: u16) {
    sock_addr.user_ip4 = LOOPBACK4;
    sock_addr.user_port = u32::from(port.to_be());
}

/// Rewrites the destination to `::ffff:127.0.0.1`:`port` (host order).
pub fn rewrite_mapped(sock_addr: &mut bpf_sock_addr, port: u16) {
    sock_addr.user_ip6[0] = 0;
    sock_addr.user_ip6[1] = 0;
    sock_addr.user_ip6[2] = MAPPED_PREFIX;
    sock_addr.user_ip6[3] = LOOPBACK4;
    sock_addr.user_port = u32::from(port.to_be());
}
