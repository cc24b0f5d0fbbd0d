//! `cgroup/sendmsg4` and `cgroup/sendmsg6`: unconnected UDP (`sendto`).
//!
//! UDP to a v4-mapped address from an IPv6 socket is seen by sendmsg4 with the IPv4 address, so
//! sendmsg6 only ever judges native IPv6.

use aya_ebpf::{macros::cgroup_sock_addr, programs::SockAddrContext};
use aya_log_ebpf::info;
use hh_common::stat;

use super::{
    ALLOW, REFUSE,
    addr::{dest, is_loopback4, is_loopback6, port_be, rewrite4},
    maps::count,
    route::dns_or_refuse,
};

#[cgroup_sock_addr(sendmsg4)]
pub fn hh_sendmsg4(ctx: SockAddrContext) -> i32 {
    // SAFETY: the kernel hands a valid `bpf_sock_addr` to every cgroup_sock_addr program.
    let sock_addr = unsafe { &mut *ctx.sock_addr };
    let addr = sock_addr.user_ip4;
    if is_loopback4(addr) {
        return ALLOW;
    }
    let original = dest(addr, port_be(sock_addr));
    dns_or_refuse(&ctx, sock_addr, original, rewrite4)
}

#[cgroup_sock_addr(sendmsg6)]
pub fn hh_sendmsg6(ctx: SockAddrContext) -> i32 {
    // SAFETY: the kernel hands a valid `bpf_sock_addr` to every cgroup_sock_addr program.
    let sock_addr = unsafe { &*ctx.sock_addr };
    if is_loopback6(sock_addr.user_ip6) {
        return ALLOW;
    }
    count(stat::REFUSED_IPV6);
    info!(
        &ctx,
        "refused IPv6 UDP to port {}",
        u16::from_be(port_be(sock_addr))
    );
    REFUSE
}
