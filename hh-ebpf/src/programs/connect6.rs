//! `cgroup/connect6`: IPv6 never leaves a session. A connect to `::ffff:a.b.c.d` runs this hook
//! only (never connect4), so v4-mapped destinations are routed here exactly as connect4 would.

use aya_ebpf::{macros::cgroup_sock_addr, programs::SockAddrContext};
use aya_log_ebpf::info;
use hh_common::stat;

use super::{
    ALLOW, REFUSE,
    addr::{dest, is_loopback4, is_loopback6, mapped4, port_be, rewrite_mapped},
    maps::count,
    route::route,
};

#[cgroup_sock_addr(connect6)]
pub fn hh_connect6(ctx: SockAddrContext) -> i32 {
    // SAFETY: the kernel hands a valid `bpf_sock_addr` to every cgroup_sock_addr program.
    let sock_addr = unsafe { &mut *ctx.sock_addr };
    let words = sock_addr.user_ip6;
    if is_loopback6(words) {
        return ALLOW;
    }
    let Some(addr) = mapped4(words) else {
        // Refusing is EPERM at once, so Happy Eyeballs falls back to IPv4 without waiting.
        count(stat::REFUSED_IPV6);
        info!(
            &ctx,
            "refused an IPv6 connect to port {}",
            u16::from_be(port_be(sock_addr))
        );
        return REFUSE;
    };
    if is_loopback4(addr) {
        return ALLOW;
    }
    let original = dest(addr, port_be(sock_addr));
    route(&ctx, sock_addr, original, rewrite_mapped)
}
