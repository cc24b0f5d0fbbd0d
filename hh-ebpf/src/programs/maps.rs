//! Maps shared by the programs, and the load-time constants. Names and types come from
//! `hh-common`.

use aya_ebpf::{
    Global,
    macros::map,
    maps::{HashMap, LruHashMap, PerCpuArray, SockHash},
};
use hh_common::{ConnKey, Ipv4Dest, Redirect, SockKey, SocketCookie, stat};

/// Port of each session's proxy listener (host order); set at load.
#[unsafe(no_mangle)]
pub static HH_PROXY_PORT: Global<u16> = Global::new(0);

/// Port of each session's DNS stub (host order); set at load.
#[unsafe(no_mangle)]
pub static HH_DNS_PORT: Global<u16> = Global::new(0);

/// 1 when client↔proxy bytes are spliced (`hh_common::splice`); set at load.
#[unsafe(no_mangle)]
pub static HH_SPLICE: Global<u8> = Global::new(0);

/// Both ends of spliced connections (`hh_common::map::SOCKETS`).
#[map(name = "HH_SPLICE_SOCKETS")]
pub static HH_SPLICE_SOCKETS: SockHash<SockKey> = SockHash::with_max_entries(65_536, 0);

/// Client ends' splice decisions (`hh_common::splice`). A plain hash, not LRU: an evicted
/// decision would be remade mid-connection, which is exactly the reordering it prevents. A
/// full map only means new connections are not spliced.
#[map(name = "HH_SPLICE_STATE")]
pub static HH_SPLICE_STATE: HashMap<SockKey, u32> = HashMap::with_max_entries(65_536, 0);

#[map(name = "HH_CONNECTS")]
pub static HH_CONNECTING: LruHashMap<SocketCookie, Redirect> =
    LruHashMap::with_max_entries(65_536, 0);

#[map(name = "HH_REDIRECTS")]
pub static HH_ORIGINAL_DST: LruHashMap<ConnKey, Redirect> = LruHashMap::with_max_entries(65_536, 0);

#[map(name = "HH_DNS_RESOLVER")]
pub static HH_DNS_RESOLVER: LruHashMap<SocketCookie, Ipv4Dest> =
    LruHashMap::with_max_entries(16_384, 0);

#[map(name = "HH_STATS")]
pub static HH_STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(stat::COUNT, 0);

/// Adds one to counter `index` of this CPU (per-CPU: no atomics needed, none exist on bpf).
pub fn count(index: u32) {
    if let Some(counter) = HH_STATS.get_ptr_mut(index) {
        // SAFETY: the pointer is this CPU's slot of a map value, valid for the program's run.
        unsafe { *counter += 1 };
    }
}
