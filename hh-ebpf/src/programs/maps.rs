//! Maps shared by the programs. Names and key types come from `hh-common`.

use aya_ebpf::{macros::map, maps::SockHash};
use hh_common::SocketCookie;

/// Established client sockets of sessions, for `sk_msg` splicing.
#[map(name = "HH_SOCKETS")]
pub static HH_SOCKETS: SockHash<SocketCookie> = SockHash::with_max_entries(65_536, 0);
