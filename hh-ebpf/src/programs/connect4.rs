//! `cgroup/connect4`: IPv4 TCP to the proxy, UDP to the DNS stub or refused. Connected UDP
//! never reaches sendmsg4, so the UDP rule is enforced here too.

use aya_ebpf::{macros::cgroup_sock_addr, programs::SockAddrContext};

use super::{
    ALLOW,
    addr::{dest, is_loopback4, port_be, rewrite4},
    route::route,
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
    route(&ctx, sock_addr, original, rewrite4)
}
