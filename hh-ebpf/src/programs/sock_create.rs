//! `cgroup/sock_create`: raw IP sockets could bypass the connect hooks entirely.
//!
//! This hook runs for inet and inet6 sockets only: AF_PACKET sockets never reach it. Those are
//! harmless in a session all the same: its namespace has no interface but `lo`, and the session
//! runs without CAP_NET_RAW.

use aya_ebpf::{macros::cgroup_sock, programs::SockContext};
use aya_log_ebpf::info;
use hh_common::stat;

use super::{ALLOW, REFUSE, SOCK_RAW, maps::count};

#[cgroup_sock(sock_create)]
pub fn hh_sock_create(ctx: SockContext) -> i32 {
    // SAFETY: the kernel hands a valid `bpf_sock` to every cgroup_sock program.
    let kind = unsafe { (*ctx.sock).type_ };
    if kind == SOCK_RAW {
        count(stat::REFUSED_SOCKET);
        info!(&ctx, "refused a raw IP socket");
        return REFUSE;
    }
    ALLOW
}
