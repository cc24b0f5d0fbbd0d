//! `sockops`: moves a redirected connection's original destination to the key the proxy can
//! compute from its accepted socket, once the connection is established, and drops it at close.
//! With splicing on, it also puts both ends of the connection in the sockhash ([`super::splice`]).
//!
//! ACTIVE_ESTABLISHED runs in softirq context, where the current task may be unrelated: so
//! everything here is keyed by the socket (cookie, netns cookie, port), never by the task.

use aya_ebpf::{
    EbpfContext as _,
    bindings::{
        BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB, BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB,
        BPF_SOCK_OPS_STATE_CB, BPF_SOCK_OPS_STATE_CB_FLAG, BPF_TCP_CLOSE,
    },
    helpers::{bpf_get_netns_cookie, bpf_get_socket_cookie},
    macros::sock_ops,
    programs::SockOpsContext,
};
use hh_common::{ConnKey, stat};

use super::{
    maps::{HH_CONNECTING, HH_ORIGINAL_DST, count},
    splice,
};

#[sock_ops]
pub fn hh_sock_ops(ctx: SockOpsContext) -> u32 {
    match ctx.op() {
        BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB => established(&ctx),
        BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB if splice::enabled() => {
            splice::proxy_established(&ctx, netns_cookie(&ctx));
        }
        // args[1] is the new TCP state.
        BPF_SOCK_OPS_STATE_CB if ctx.arg(1) == BPF_TCP_CLOSE => {
            let netns_cookie = netns_cookie(&ctx);
            let _ = HH_ORIGINAL_DST.remove(&key(&ctx, netns_cookie));
            if splice::enabled() {
                splice::client_closed(&ctx, netns_cookie);
            }
        }
        _ => {}
    }
    0
}

fn netns_cookie(ctx: &SockOpsContext) -> u64 {
    // SAFETY: the helper only reads the socket behind the program's own context.
    unsafe { bpf_get_netns_cookie(ctx.as_ptr()) }
}

fn key(ctx: &SockOpsContext, netns_cookie: u64) -> ConnKey {
    ConnKey {
        netns_cookie,
        port: ctx.local_port() as u16,
        _pad: [0; 6],
    }
}

fn established(ctx: &SockOpsContext) {
    // SAFETY: as above.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.as_ptr()) };
    // SAFETY: the value is copied out at once.
    let Some(original) = (unsafe { HH_CONNECTING.get(&cookie) }).copied() else {
        return; // not a redirected connection (loopback traffic of the session)
    };
    let _ = HH_CONNECTING.remove(&cookie);
    let netns_cookie = netns_cookie(ctx);
    if HH_ORIGINAL_DST
        .insert(&key(ctx, netns_cookie), &original, 0)
        .is_ok()
    {
        count(stat::ESTABLISHED);
        // Ask for state callbacks on this socket, so its entries go when it closes.
        let _ = ctx.set_cb_flags(BPF_SOCK_OPS_STATE_CB_FLAG as i32);
        if splice::enabled() {
            splice::client_established(ctx, netns_cookie);
        }
    }
}
