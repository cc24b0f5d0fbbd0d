//! `cgroup/recvmsg4` and `cgroup/recvmsg6`: a reply from the DNS stub is shown as coming from the
//! resolver the client asked, because resolvers drop answers from any other address.

use aya_ebpf::{macros::cgroup_sock_addr, programs::SockAddrContext};

use super::{
    ALLOW,
    addr::{LOOPBACK4, mapped4, port_be, socket_cookie},
    maps::{HH_DNS_PORT, HH_DNS_RESOLVER},
};

/// recvmsg programs must return 1; they can rewrite, never refuse.
#[cgroup_sock_addr(recvmsg4)]
pub fn hh_recvmsg4(ctx: SockAddrContext) -> i32 {
    // SAFETY: the kernel hands a valid `bpf_sock_addr` to every cgroup_sock_addr program.
    let sock_addr = unsafe { &mut *ctx.sock_addr };
    if sock_addr.user_ip4 != LOOPBACK4 || port_be(sock_addr) != HH_DNS_PORT.load().to_be() {
        return ALLOW;
    }
    // SAFETY: the value is copied out at once; LRU eviction cannot free it mid-read here.
    if let Some(resolver) = unsafe { HH_DNS_RESOLVER.get(&socket_cookie(&ctx)) } {
        sock_addr.user_ip4 = u32::from_ne_bytes(resolver.addr);
        sock_addr.user_port = u32::from(u16::from_ne_bytes(resolver.port));
    }
    ALLOW
}

#[cgroup_sock_addr(recvmsg6)]
pub fn hh_recvmsg6(ctx: SockAddrContext) -> i32 {
    // SAFETY: the kernel hands a valid `bpf_sock_addr` to every cgroup_sock_addr program.
    let sock_addr = unsafe { &mut *ctx.sock_addr };
    if mapped4(sock_addr.user_ip6) != Some(LOOPBACK4)
        || port_be(sock_addr) != HH_DNS_PORT.load().to_be()
    {
        return ALLOW;
    }
    // SAFETY: as in recvmsg4.
    if let Some(resolver) = unsafe { HH_DNS_RESOLVER.get(&socket_cookie(&ctx)) } {
        sock_addr.user_ip6[3] = u32::from_ne_bytes(resolver.addr);
        sock_addr.user_port = u32::from(u16::from_ne_bytes(resolver.port));
    }
    ALLOW
}
