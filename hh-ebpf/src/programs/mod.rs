//! One module per hook. The programs only record, rewrite or refuse; the proxy decides.
//!
//! Refusals (and a full map) are also logged with aya-log, at `info` (`warn` for the map).
//! The loader sets aya-log's level to "off" unless hh's log filter asks for the `hh::ebpf`
//! target (`hh::enforce::kernel_log`): the verifier then sees a constant and drops the logging
//! code, so by default it costs nothing.
//!
//! What a session may do on the network, as the kernel enforces it:
//! - TCP to its own loopback (127.0.0.0/8, `::1`) is untouched: local dev servers keep working,
//!   and a client that dials the proxy listener directly is an explicit-proxy client.
//! - Every other IPv4 TCP connect (also through a v4-mapped IPv6 address) is rewritten to the
//!   session's proxy listener, and its original destination recorded for the proxy.
//! - UDP to port 53 anywhere goes to the session's DNS stub; other UDP off loopback is refused.
//! - Native IPv6 off loopback, raw IP sockets, and other protocols are refused.
//! - Optionally (off by default), a redirected connection's bytes skip TCP between client and
//!   proxy: `sk_msg` on a sockhash hands them to the peer socket directly ([`splice`]).

mod addr;
mod connect4;
mod connect6;
mod maps;
mod recvmsg;
mod route;
mod sendmsg;
mod sk_msg;
mod sock_create;
mod sock_ops;
mod splice;

/// What a `cgroup/*` program returns to let the operation proceed.
const ALLOW: i32 = 1;
/// What a `cgroup/*` program returns to fail the operation with EPERM.
const REFUSE: i32 = 0;

/// `sk_type` and protocol numbers (linux/net.h, netinet/in.h).
const SOCK_RAW: u32 = 3;
const IPPROTO_TCP: u32 = 6;
const IPPROTO_UDP: u32 = 17;
/// DNS, in network byte order as `user_port` holds it.
const DNS_PORT_BE: u16 = 53u16.to_be();
