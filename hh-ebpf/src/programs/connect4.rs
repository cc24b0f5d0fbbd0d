//! `cgroup/connect4`: IPv4 TCP to the proxy, UDP to the DNS stub or refused.

use aya_ebpf::{macros::cgroup_sock_addr, programs::SockAddrContext};
use hh_common::stat;

use super::{
    ALLOW, DNS_PORT_BE, IPPROTO_TCP, IPPROTO_UDP, REFUSE,
    addr::{dest, is_loopback4, port_be, rewrite4, socket_cookie},
    maps::{HH_CONNECTING, HH_DNS_PORT, HH_DNS_RESOLVER, HH_PROXY_PORT, count},
};

#[cgroup_sock_addr(connect4)]
pub fn hh_connect4(ctx: SockAddrContext) -> i32 {
    // SAFETY: the kernel hands a valid `bpf_sock_addr` to every cgroup_sock_addr program.
    let sock_addr = unsafe { &mut *ctx.sock_addr };
    let addr = sock_addr.user_ip4;
    if is_loopback4(addr) {
        return ALLOW;
    }
    let original = dest(addr, port_be(sock_addr));
    match sock_addr.protocol {
        IPPROTO_TCP => {
            // Record before rewriting: a connect the proxy cannot place is one it must refuse,
            // so a full map fails the connect rather than letting it through unrecorded.
            if HH_CONNECTING
                .insert(&socket_cookie(&ctx), &original, 0)
                .is_err()
            {
                return REFUSE;
            }
            rewrite4(sock_addr, HH_PROXY_PORT.load());
            count(stat::REDIRECTED);
            ALLOW
        }
        // Connected UDP never reaches sendmsg4, so the UDP rule is enforced here too.
        IPPROTO_UDP if port_be(sock_addr) == DNS_PORT_BE => {
            if HH_DNS_RESOLVER
                .insert(&socket_cookie(&ctx), &original, 0)
                .is_err()
            {
                return REFUSE;
            }
            rewrite4(sock_addr, HH_DNS_PORT.load());
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
