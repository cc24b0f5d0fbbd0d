//! The one decision every sock_addr hook makes for an IPv4 destination off the session's
//! loopback (connect4 directly, connect6 for a v4-mapped one, sendmsg4 for a datagram).

use aya_ebpf::{
    bindings::bpf_sock_addr,
    helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid},
    programs::SockAddrContext,
};
use aya_log_ebpf::{info, warn};
use hh_common::{Ipv4Dest, Redirect, stat};

use super::{
    ALLOW, DNS_PORT_BE, IPPROTO_TCP, IPPROTO_UDP, REFUSE,
    addr::{port_be, socket_cookie},
    maps::{HH_CONNECTING, HH_DNS_PORT, HH_DNS_RESOLVER, HH_PROXY_PORT, count},
};

/// TCP goes to the proxy, UDP to the DNS stub if it is DNS, anything else is refused.
/// `rewrite` points the socket address at the session's own loopback, in the hook's family.
#[inline(always)]
pub fn route(
    ctx: &SockAddrContext,
    sock_addr: &mut bpf_sock_addr,
    original: Ipv4Dest,
    rewrite: impl Fn(&mut bpf_sock_addr, u16),
) -> i32 {
    match sock_addr.protocol {
        IPPROTO_TCP => {
            // Record before rewriting: a connect the proxy cannot place is one it must refuse,
            // so a full map fails the connect rather than letting it through unrecorded. The
            // connecting process goes with it, for the audit line and the prompt.
            let redirect = Redirect {
                dest: original,
                // The upper half is the thread group id (the process).
                tgid: (bpf_get_current_pid_tgid() >> 32) as u32,
                comm: bpf_get_current_comm().unwrap_or([0; 16]),
                _pad: [0; 4],
            };
            if HH_CONNECTING
                .insert(&socket_cookie(ctx), &redirect, 0)
                .is_err()
            {
                warn!(ctx, "refused a TCP connect: the connecting map is full");
                return REFUSE;
            }
            rewrite(sock_addr, HH_PROXY_PORT.load());
            count(stat::REDIRECTED);
            ALLOW
        }
        IPPROTO_UDP => dns_or_refuse(ctx, sock_addr, original, rewrite),
        protocol => {
            count(stat::REFUSED_PROTOCOL);
            info!(ctx, "refused a connect of IP protocol {}", protocol);
            REFUSE
        }
    }
}

/// UDP: DNS (to any resolver) goes to the session's stub, remembering the resolver for the
/// reply; every other datagram is refused.
#[inline(always)]
pub fn dns_or_refuse(
    ctx: &SockAddrContext,
    sock_addr: &mut bpf_sock_addr,
    original: Ipv4Dest,
    rewrite: impl Fn(&mut bpf_sock_addr, u16),
) -> i32 {
    if port_be(sock_addr) != DNS_PORT_BE {
        count(stat::REFUSED_UDP);
        info!(
            ctx,
            "refused UDP to {:i}:{}",
            u32::from_be_bytes(original.addr),
            u16::from_be_bytes(original.port)
        );
        return REFUSE;
    }
    if HH_DNS_RESOLVER
        .insert(&socket_cookie(ctx), &original, 0)
        .is_err()
    {
        return REFUSE;
    }
    rewrite(sock_addr, HH_DNS_PORT.load());
    count(stat::DNS_REDIRECTED);
    ALLOW
}
