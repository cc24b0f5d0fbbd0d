//! `sockops`: sees connections of the cgroup establish.

use aya_ebpf::{macros::sock_ops, programs::SockOpsContext};

#[sock_ops]
pub fn hh_sock_ops(_ctx: SockOpsContext) -> u32 {
    // Moving the original destination to its established key is issue 7.
    0
}
