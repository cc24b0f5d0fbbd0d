//! `cgroup/connect6`: IPv6 never leaves a session. A connect to `::ffff:a.b.c.d` runs this hook
//! only (never connect4), so v4-mapped destinations are redirected here exactly as connect4 would.

use aya_ebpf::{macros::cgroup_sock_addr, programs::SockAddrContext};
use hh_common::stat;

use super::{
    ALLOW, DNS_PORT_BE, IPPROTO_TCP, IPPROTO_UDP, REFUSE,
    addr::{dest, is_loopback4, is_loopback6, mapped4, port_be, rewrite_mapped, socket_cookie},
    maps::{HH_CONNECTING, HH_DNS_PORT, HH_DNS_RESOLVER, HH_PROXY_PORT, count},
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
        return REFUSE;
    };
    if is_loopback4(addr) {
        return ALLOW;
    }
    let original = dest(addr, port_be(sock_addr));
    match sock_addr.protocol {
        IPPROTO_TCP => {
            if HH_CONNECTING
                .insert(&socket_cookie(&ctx), &original, 0)
                .is_err()
            {
                return REFUSE;
            }
            rewrite_mapped(sock_addr, HH_PROXY_PORT.load());
            count(stat::REDIRECTED);
            ALLOW
        }
        IPPROTO_UDP if port_be(sock_addr) == DNS_PORT_BE => {
            if HH_DNS_RESOLVER
                .insert(&socket_cookie(&ctx), &original, 0)
                .is_err()
            {
                return REFUSE;
            }
            rewrite_mapped(sock_addr, HH_DNS_PORT.load());
            count(stat::DNS_REDIRECTED);
            ALLOW
        }
        IPPROTO_UDP => {
            count(stat::REFUSED_UDP);
            REFUSE
        }
        _ => {
            count(stat::REFUSED_PROTOCOL);
            REFUSE
        }
    }
}
