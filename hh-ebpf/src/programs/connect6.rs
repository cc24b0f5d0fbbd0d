//! `cgroup/connect6`: IPv6 never leaves a session; only its own `::1` is reachable.

use aya_ebpf::{macros::cgroup_sock_addr, programs::SockAddrContext};

use super::{ALLOW, REFUSE};

/// `::1` as the kernel stores it in `user_ip6`: four 32-bit words in network byte order.
const LOOPBACK6: [u32; 4] = [0, 0, 0, 1u32.to_be()];

#[cgroup_sock_addr(connect6)]
pub fn hh_connect6(ctx: SockAddrContext) -> i32 {
    // SAFETY: the kernel hands a valid `bpf_sock_addr` to every cgroup_sock_addr program.
    let ip6 = unsafe { (*ctx.sock_addr).user_ip6 };
    // Refusing is EPERM at once, so Happy Eyeballs falls back to IPv4 without waiting.
    if ip6 == LOOPBACK6 { ALLOW } else { REFUSE }
}
