//! Splicing client↔proxy bytes through the sockhash (`hh_common::splice` explains the design
//! and its ordering hazard): which sockets enter the map, from `sock_ops`, and where `sk_msg`
//! sends a message.
//!
//! Everything here is a no-op unless `HH_SPLICE` was set at load.

use aya_ebpf::{
    EbpfContext as _,
    bindings::{BPF_ANY, BPF_F_INGRESS, sk_action::SK_PASS},
    helpers::bpf_get_netns_cookie,
    programs::{SkMsgContext, SockOpsContext},
};
use hh_common::{ConnKey, SockKey, splice, stat};

use super::{
    addr::LOOPBACK4,
    maps::{HH_ORIGINAL_DST, HH_PROXY_PORT, HH_SPLICE, HH_SPLICE_SOCKETS, HH_SPLICE_STATE, count},
};

pub fn enabled() -> bool {
    HH_SPLICE.load() != 0
}

/// `remote_port` of `bpf_sock_ops` and `sk_msg_md` holds the port in network order in its
/// *upper* 16 bits on little-endian hosts (the ctx rewrite loads `skc_dport` and shifts it
/// left by 16: `sock_ops_convert_ctx_access`, `sk_msg_convert_ctx_access` in net/core/filter.c).
fn remote_port(raw: u32) -> u16 {
    u16::from_be((raw >> 16) as u16)
}

fn key(
    netns_cookie: u64,
    local_ip4: u32,
    remote_ip4: u32,
    local_port: u32,
    remote: u32,
) -> SockKey {
    SockKey {
        netns_cookie,
        local_addr: local_ip4.to_ne_bytes(),
        remote_addr: remote_ip4.to_ne_bytes(),
        local_port: local_port as u16,
        remote_port: remote_port(remote),
        _pad: [0; 4],
    }
}

fn ops_key(ctx: &SockOpsContext, netns_cookie: u64) -> SockKey {
    key(
        netns_cookie,
        ctx.local_ip4(),
        ctx.remote_ip4(),
        ctx.local_port(),
        ctx.remote_port(),
    )
}

/// Both ends enter the sockhash with `BPF_ANY`: an entry already under the key is a dead
/// socket (two live TCP connections never share a 4-tuple in one namespace) whose owner has
/// not closed it yet (the kernel drops sockhash entries on `close`, not on reset), and a new
/// connection on the same ports must replace it, or the peer's messages are spliced into the
/// dead socket and lost while `send` reports success (issue 22). The old socket's `close` later
/// removes only its own element.
///
/// ACTIVE_ESTABLISHED of a redirected client: it enters the sockhash before its `connect`
/// returns, so `sk_msg` sees its first send.
pub fn client_established(ctx: &SockOpsContext, netns_cookie: u64) {
    // SAFETY: the kernel hands a valid `bpf_sock_ops` to every sock_ops program.
    let ops = unsafe { &*ctx.ops };
    // Bytes already handed to TCP (TCP Fast Open data in the SYN) would be read after spliced
    // ones: such a client stays on TCP.
    if ops.snd_nxt != ops.snd_una {
        count(stat::SPLICE_DECLINED);
        return;
    }
    let mut key = ops_key(ctx, netns_cookie);
    // The decision first: a client in the sockhash without one would never be spliced, which
    // is safe; the reverse could not happen.
    if HH_SPLICE_STATE.insert(&key, &splice::NEW, 0).is_err() {
        return; // map full: this connection is not spliced
    }
    // SAFETY: `ops` is this program's context, as the helper requires.
    if HH_SPLICE_SOCKETS
        .update(&mut key, unsafe { &mut *ctx.ops }, u64::from(BPF_ANY))
        .is_err()
    {
        let _ = HH_SPLICE_STATE.remove(&key);
    }
}

/// PASSIVE_ESTABLISHED of a socket the session's proxy listener accepted, for a redirected
/// client: it enters the sockhash before the kernel queues any byte the client sent, and
/// before `accept` can return it. (The proxy listener must belong to the session's cgroup for
/// this program to see it: `hh::sys::netns::listen_in_cgroup`.)
pub fn proxy_established(ctx: &SockOpsContext, netns_cookie: u64) {
    if ctx.local_port() != u32::from(HH_PROXY_PORT.load()) || ctx.local_ip4() != LOOPBACK4 {
        return;
    }
    // Only peers of redirected clients: their `sock_ops` recorded the original destination
    // (keyed by their port) just before this socket was created.
    let client = ConnKey {
        netns_cookie,
        port: remote_port(ctx.remote_port()),
        _pad: [0; 6],
    };
    // SAFETY: only tested for presence.
    if unsafe { HH_ORIGINAL_DST.get(&client) }.is_none() {
        return;
    }
    let mut key = ops_key(ctx, netns_cookie);
    // SAFETY: as in `client_established`.
    if HH_SPLICE_SOCKETS
        .update(&mut key, unsafe { &mut *ctx.ops }, u64::from(BPF_ANY))
        .is_err()
    {
        count(stat::SPLICE_PROXY_REFUSED);
    }
}

/// The client closed: its decision goes (the kernel drops its sockhash entry itself).
pub fn client_closed(ctx: &SockOpsContext, netns_cookie: u64) {
    let _ = HH_SPLICE_STATE.remove(&ops_key(ctx, netns_cookie));
}

/// Where `sk_msg` sends a message: straight into the peer's receive queue when the splice
/// rules allow, else on by TCP. The verdict is `SK_PASS` either way: with a redirect set by
/// the helper, `SK_PASS` means "deliver there".
pub fn route_msg(ctx: &SkMsgContext) -> u32 {
    if !enabled() {
        return SK_PASS;
    }
    // SAFETY: the kernel hands a valid `sk_msg_md` to every sk_msg program.
    let md = unsafe { &*ctx.msg };
    let key = key(
        // SAFETY: the helper only reads the socket behind the program's own context.
        unsafe { bpf_get_netns_cookie(ctx.as_ptr()) },
        md.local_ip4,
        md.remote_ip4,
        md.local_port,
        md.remote_port,
    );
    if md.local_ip4 == LOOPBACK4 && key.local_port == HH_PROXY_PORT.load() {
        // The proxy end: its peer was in the map before it could send (see the module doc).
        let _ = redirect_to_peer(ctx, &key);
        return SK_PASS;
    }
    let Some(state) = HH_SPLICE_STATE.get_ptr_mut(&key) else {
        return SK_PASS;
    };
    // SAFETY: a map value, valid for this run; this client's sends are serialised by its
    // socket lock, which the kernel holds while this program runs.
    let state = unsafe { &mut *state };
    match *state {
        splice::SPLICED => {
            // Fails only once the proxy end closed; TCP then carries the rest to a closed
            // socket, as without splicing.
            let _ = redirect_to_peer(ctx, &key);
        }
        splice::NEW => {
            if redirect_to_peer(ctx, &key) {
                *state = splice::SPLICED;
                count(stat::SPLICED);
            } else {
                *state = splice::DECLINED;
                count(stat::SPLICE_DECLINED);
            }
        }
        _ => {}
    }
    SK_PASS
}

/// Asks the kernel to deliver this message into the peer's receive queue; false when the peer
/// is not in the sockhash (the helper then sets no redirect).
fn redirect_to_peer(ctx: &SkMsgContext, key: &SockKey) -> bool {
    let mut peer = key.reversed();
    HH_SPLICE_SOCKETS.redirect_msg(ctx, &mut peer, u64::from(BPF_F_INGRESS)) == i64::from(SK_PASS)
}
