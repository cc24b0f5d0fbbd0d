//! `cgroup/connect4`.

use aya_ebpf::{macros::cgroup_sock_addr, programs::SockAddrContext};

use super::ALLOW;

#[cgroup_sock_addr(connect4)]
pub fn hh_connect4(_ctx: SockAddrContext) -> i32 {
    // The redirect to the session proxy is issue 7; until then this only proves the program
    // type loads and attaches.
    ALLOW
}
