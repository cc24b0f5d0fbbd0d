//! `cgroup/sock_create`: raw and packet sockets could bypass the connect hooks entirely.

use aya_ebpf::{macros::cgroup_sock, programs::SockContext};

use super::{ALLOW, REFUSE};

const AF_PACKET: u32 = 17;
const SOCK_RAW: u32 = 3;

#[cgroup_sock(sock_create)]
pub fn hh_sock_create(ctx: SockContext) -> i32 {
    // SAFETY: the kernel hands a valid `bpf_sock` to every cgroup_sock program.
    let (family, kind) = unsafe { ((*ctx.sock).family, (*ctx.sock).type_) };
    if family == AF_PACKET || kind == SOCK_RAW { REFUSE } else { ALLOW }
}
