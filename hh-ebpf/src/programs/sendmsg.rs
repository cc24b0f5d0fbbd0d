//! `cgroup/sendmsg4` and `cgroup/sendmsg6`: unconnected UDP.

use aya_ebpf::{macros::cgroup_sock_addr, programs::SockAddrContext};

use super::{ALLOW, REFUSE};

#[cgroup_sock_addr(sendmsg4)]
pub fn hh_sendmsg4(_ctx: SockAddrContext) -> i32 {
    // DNS-to-the-stub and refusing all other UDP is issue 7.
    ALLOW
}

#[cgroup_sock_addr(sendmsg6)]
pub fn hh_sendmsg6(_ctx: SockAddrContext) -> i32 {
    // No IPv6 UDP leaves a session (UDP to v4-mapped addresses is seen by sendmsg4).
    REFUSE
}
