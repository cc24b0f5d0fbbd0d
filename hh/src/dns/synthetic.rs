//! [`SyntheticAddresses`]: the table that gives each queried name an IPv4 address from a range
//! that is never routed, and gives the proxy the name back for a connection to that address.
//!
//! # The range
//! The default is 198.18.0.0/15, reserved for benchmarking network devices
//! ([RFC 2544 §C.2.2](https://www.rfc-editor.org/rfc/rfc2544#appendix-C.2.2),
//! [RFC 6890 §2.2.2](https://www.rfc-editor.org/rfc/rfc6890#section-2.2.2): "Forwardable: true,
//! Global: false"). No host on the internet has one of these addresses, so a synthetic address
//! can never be mistaken for a real destination, and it does not collide with the RFC 1918 ranges
//! that Docker, VPNs and home networks use. Its first and last addresses are never handed out.
//!
//! # Capacity and reuse
//! The table holds at most `capacity` names (default [`DEFAULT_CAPACITY`]). When it is full, a new
//! name takes the address of the *least recently used* one (a query for it, or
//! [`SyntheticAddresses::name_of`] for a connection to it, counts as a use). A connection made
//! afterwards to that address with the *old* name's cached answer is then attributed to the new
//! name: the proxy would decide on the wrong name. Two things keep that window narrow:
//!
//! - the stub's answers carry a short TTL (5 s by default, [`super::Limits::ttl_secs`]), so a
//!   well-behaved client asks again (and refreshes the entry) instead of reusing a stale answer;
//! - the stub's rate cap bounds how fast queries can push an entry out: with capacity `C`, a burst
//!   `B` and a rate `R` per second, queries alone reuse an address no sooner than `(C - B) / R`
//!   seconds after its last use — (8192 − 100) / 200 ≈ 40 s with the defaults, eight times the
//!   TTL. (Connections refresh the names they use without costing a query, which can only make
//!   an idle name the next to go sooner; it never reuses an address still in use.)
//!
//! These bounds assume one table per session, fed by one stub. And a mis-attribution is a
//! correctness problem for a client with a stale cache, never a way around policy: it can only
//! pick a name this session asked for, and the proxy checks *that* name against the rules and
//! dials it itself.

use std::{
    net::Ipv4Addr,
    num::NonZeroUsize,
    sync::{Mutex, MutexGuard, PoisonError},
};

use lru::LruCache;

use crate::rules::host::Host;

/// 198.18.0.0, the start of the RFC 2544 benchmarking range.
pub const DEFAULT_NETWORK: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 0);
/// /15: 198.18.0.0 – 198.19.255.255.
pub const DEFAULT_PREFIX_LEN: u8 = 15;
/// Names held at once per session; see the module doc for why this is enough.
pub const DEFAULT_CAPACITY: usize = 8192;

/// Why a range was refused by [`SyntheticAddresses::new`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    #[error("prefix length /{prefix_len} leaves no address to hand out (at most /30)")]
    PrefixTooLong { prefix_len: u8 },
    #[error("{network}/{prefix_len} has host bits set; the network address is {expected}")]
    HostBitsSet {
        network: Ipv4Addr,
        prefix_len: u8,
        expected: Ipv4Addr,
    },
    #[error("the capacity is zero")]
    ZeroCapacity,
}

/// Why no address was allocated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyntheticError {
    #[error("`{host}` is an IP literal, not a name; it needs no synthetic address")]
    NotAName { host: Host },
}

/// The name ⇄ address table of one session. Cheap to share behind an `Arc`: the stub allocates
/// while the proxy looks names up.
#[derive(Debug)]
pub struct SyntheticAddresses {
    /// The first address of the range (host bits clear).
    network: u32,
    /// Addresses in the range, the network address included.
    size: u64,
    /// How many names the table holds at most (never more than the usable addresses).
    capacity: usize,
    table: Mutex<Table>,
}

#[derive(Debug)]
struct Table {
    /// Name → slot, in least-recently-used order.
    by_name: LruCache<Host, u32>,
    /// Slot → name; slot `i` is address `network + 1 + i`.
    by_slot: Vec<Option<Host>>,
}

impl SyntheticAddresses {
    /// A table over `network/prefix_len` holding at most `capacity` names. The capacity is
    /// lowered to the number of usable addresses (the range minus its first and last address).
    pub fn new(
        network: Ipv4Addr,
        prefix_len: u8,
        capacity: usize,
    ) -> Result<SyntheticAddresses, RangeError> {
        if prefix_len > 30 {
            return Err(RangeError::PrefixTooLong { prefix_len });
        }
        let size: u64 = 1 << (32 - u32::from(prefix_len));
        let mask = !((size - 1) as u32);
        let bits = u32::from(network);
        if bits & mask != bits {
            return Err(RangeError::HostBitsSet {
                network,
                prefix_len,
                expected: Ipv4Addr::from(bits & mask),
            });
        }
        let usable = usize::try_from(size - 2).unwrap_or(usize::MAX);
        let capacity = NonZeroUsize::new(capacity.min(usable)).ok_or(RangeError::ZeroCapacity)?;
        Ok(SyntheticAddresses {
            network: bits,
            size,
            capacity: capacity.get(),
            table: Mutex::new(Table {
                // Unbounded: `allocate` evicts itself (it needs the freed slot), and a bounded
                // cache would reserve room for the whole capacity up front.
                by_name: LruCache::unbounded(),
                by_slot: Vec::new(),
            }),
        })
    }

    /// How many names the table holds at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many names the table holds now.
    pub fn len(&self) -> usize {
        self.lock().by_name.len()
    }

    /// True when no name was allocated yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when `ip` is inside the synthetic range, whether or not a name holds it. The proxy
    /// refuses a connection to such an address that [`SyntheticAddresses::name_of`] cannot name.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u64::from(u32::from(ip).wrapping_sub(self.network)) < self.size
    }

    /// The address of `host`: the one it already holds, else a free one, else the least recently
    /// used one (whose old name is forgotten). Marks `host` as just used.
    pub fn allocate(&self, host: &Host) -> Result<Ipv4Addr, SyntheticError> {
        if !host.is_name() {
            return Err(SyntheticError::NotAName { host: host.clone() });
        }
        let mut table = self.lock();
        if let Some(&slot) = table.by_name.get(host) {
            return Ok(self.address(slot));
        }
        let slot = if table.by_slot.len() < self.capacity {
            // Fewer slots than `capacity`, itself at most 2^32 - 2: the index fits in u32.
            let slot = table.by_slot.len() as u32;
            table.by_slot.push(None);
            slot
        } else {
            match table.by_name.pop_lru() {
                Some((_, slot)) => slot,
                // Unreachable: every slot is held by exactly one name, and capacity > 0.
                None => 0,
            }
        };
        table.by_name.put(host.clone(), slot);
        if let Some(entry) = table.by_slot.get_mut(slot as usize) {
            *entry = Some(host.clone());
        }
        Ok(self.address(slot))
    }

    /// The name that holds `ip` now, if any; marks it as just used, so an address with live
    /// connections is the last to be reused.
    pub fn name_of(&self, ip: Ipv4Addr) -> Option<Host> {
        if !self.contains(ip) {
            return None;
        }
        let slot = u32::from(ip).wrapping_sub(self.network).checked_sub(1)?;
        let mut table = self.lock();
        let host = table.by_slot.get(slot as usize)?.clone()?;
        table.by_name.promote(&host);
        Some(host)
    }

    fn address(&self, slot: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.network.wrapping_add(1).wrapping_add(slot))
    }

    /// The table stays consistent even if a holder panicked: every method leaves it whole
    /// between statements that can fail, so a poisoned lock is taken as is.
    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// 198.18.0.0/15 with [`DEFAULT_CAPACITY`].
impl Default for SyntheticAddresses {
    fn default() -> SyntheticAddresses {
        match SyntheticAddresses::new(DEFAULT_NETWORK, DEFAULT_PREFIX_LEN, DEFAULT_CAPACITY) {
            Ok(addresses) => addresses,
            // The constants above are a valid range; the tests build it.
            Err(error) => unreachable!("default synthetic range: {error}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;

    fn host(name: &str) -> Host {
        Host::parse(name).unwrap()
    }

    fn small(capacity: usize) -> SyntheticAddresses {
        SyntheticAddresses::new(Ipv4Addr::new(10, 0, 0, 0), 24, capacity).unwrap()
    }

    #[test]
    fn the_default_range_is_rfc_2544_198_18_0_0_slash_15() {
        let addresses = SyntheticAddresses::default();
        assert_eq!(addresses.capacity(), DEFAULT_CAPACITY);
        assert!(addresses.contains(Ipv4Addr::new(198, 18, 0, 0)));
        assert!(addresses.contains(Ipv4Addr::new(198, 19, 255, 255)));
        assert!(!addresses.contains(Ipv4Addr::new(198, 17, 255, 255)));
        assert!(!addresses.contains(Ipv4Addr::new(198, 20, 0, 0)));
        assert!(!addresses.contains(Ipv4Addr::new(0, 0, 0, 0)));
        let first = addresses.allocate(&host("example.test")).unwrap();
        assert_eq!(first, Ipv4Addr::new(198, 18, 0, 1));
    }

    #[test]
    fn a_bad_range_is_refused_and_says_why() {
        let cases = [
            (
                Ipv4Addr::new(10, 0, 0, 0),
                31,
                10,
                RangeError::PrefixTooLong { prefix_len: 31 },
            ),
            (
                Ipv4Addr::new(10, 0, 0, 0),
                32,
                10,
                RangeError::PrefixTooLong { prefix_len: 32 },
            ),
            (
                Ipv4Addr::new(10, 0, 0, 1),
                24,
                10,
                RangeError::HostBitsSet {
                    network: Ipv4Addr::new(10, 0, 0, 1),
                    prefix_len: 24,
                    expected: Ipv4Addr::new(10, 0, 0, 0),
                },
            ),
            (Ipv4Addr::new(10, 0, 0, 0), 24, 0, RangeError::ZeroCapacity),
        ];
        for (network, prefix_len, capacity, error) in cases {
            assert_eq!(
                SyntheticAddresses::new(network, prefix_len, capacity).unwrap_err(),
                error,
                "{network}/{prefix_len} capacity {capacity}"
            );
        }
    }

    #[test]
    fn capacity_is_lowered_to_the_usable_addresses() {
        assert_eq!(small(1000).capacity(), 254);
        let all = SyntheticAddresses::new(Ipv4Addr::new(0, 0, 0, 0), 0, usize::MAX).unwrap();
        assert_eq!(all.capacity() as u64, (1u64 << 32) - 2);
        assert!(all.contains(Ipv4Addr::new(255, 255, 255, 255)));
    }

    #[test]
    fn a_name_keeps_its_address_while_held_and_maps_back() {
        let addresses = small(10);
        let a = addresses.allocate(&host("a.test")).unwrap();
        let b = addresses.allocate(&host("b.test")).unwrap();
        assert_ne!(a, b);
        assert_eq!(addresses.allocate(&host("A.TEST.")).unwrap(), a);
        assert_eq!(addresses.name_of(a), Some(host("a.test")));
        assert_eq!(addresses.name_of(b), Some(host("b.test")));
        assert_eq!(addresses.len(), 2);
    }

    #[test]
    fn an_address_nobody_holds_has_no_name() {
        let addresses = small(10);
        addresses.allocate(&host("a.test")).unwrap();
        let cases = [
            Ipv4Addr::new(10, 0, 0, 0),   // the network address: never handed out
            Ipv4Addr::new(10, 0, 0, 2),   // in range, not allocated yet
            Ipv4Addr::new(10, 0, 0, 255), // the last address: never handed out
            Ipv4Addr::new(10, 0, 1, 1),   // outside the range
            Ipv4Addr::new(127, 0, 0, 1),  // outside the range
        ];
        for ip in cases {
            assert_eq!(addresses.name_of(ip), None, "{ip}");
        }
    }

    #[test]
    fn an_ip_literal_gets_no_synthetic_address() {
        let addresses = small(10);
        let literal = host("1.2.3.4");
        assert_eq!(
            addresses.allocate(&literal),
            Err(SyntheticError::NotAName { host: literal })
        );
        assert!(addresses.is_empty());
    }

    #[test]
    fn when_full_the_least_recently_used_address_is_reused() {
        let addresses = small(3);
        let a = addresses.allocate(&host("a.test")).unwrap();
        let b = addresses.allocate(&host("b.test")).unwrap();
        let c = addresses.allocate(&host("c.test")).unwrap();
        // A query for a.test and a connection to c.test make b.test the least recently used.
        addresses.allocate(&host("a.test")).unwrap();
        assert_eq!(addresses.name_of(c), Some(host("c.test")));
        let d = addresses.allocate(&host("d.test")).unwrap();
        assert_eq!(d, b);
        assert_eq!(addresses.name_of(b), Some(host("d.test")));
        assert_eq!(addresses.len(), 3);
        // b.test is forgotten; asking again takes the next least recently used address (a's).
        assert_eq!(addresses.allocate(&host("b.test")).unwrap(), a);
        assert_eq!(addresses.name_of(a), Some(host("b.test")));
        assert_eq!(addresses.name_of(c), Some(host("c.test")));
    }

    #[test]
    fn the_stub_and_the_proxy_can_share_the_table_across_threads() {
        let addresses = std::sync::Arc::new(small(254));
        let writers: Vec<_> = (0..4)
            .map(|thread| {
                let addresses = std::sync::Arc::clone(&addresses);
                std::thread::spawn(move || {
                    for i in 0..50 {
                        let name = host(&format!("n{i}.t{thread}.test"));
                        let ip = addresses.allocate(&name).unwrap();
                        // Nothing else fills the table past capacity here, so it maps back.
                        assert_eq!(addresses.name_of(ip), Some(name));
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.join().unwrap();
        }
        assert_eq!(addresses.len(), 200);
    }

    proptest! {
        #[test]
        fn an_allocated_address_always_maps_back_to_its_name(
            labels in proptest::collection::vec("[a-z0-9]{1,10}", 1..200),
            capacity in 1usize..50,
        ) {
            let addresses = small(capacity);
            for label in labels {
                let name = host(&format!("{label}.test"));
                let ip = addresses.allocate(&name).unwrap();
                prop_assert!(addresses.contains(ip));
                prop_assert_eq!(addresses.name_of(ip), Some(name.clone()));
                prop_assert_eq!(addresses.allocate(&name).unwrap(), ip);
                prop_assert!(addresses.len() <= capacity);
            }
        }
    }
}
