//! This host's own addresses, as the SSRF guard needs them ([`super::ssrf`]): every address on
//! the interfaces of the proxy's network namespace ([`crate::sys::interfaces`]), v4 and v6.
//!
//! Interfaces come and go (Docker bridges, VPNs, DHCP), so the list is read again on the first
//! check after it is [`FRESH`] old; between two reads, checks cost a lock and a clone of an `Arc`.
//! A read that fails keeps the last list (and says so in the log): an empty list only ever
//! stands before the first successful read.

use std::{
    net::IpAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// How long a list of addresses is used before it is read again.
pub const FRESH: Duration = Duration::from_secs(1);

struct Snapshot {
    read_at: Instant,
    addresses: Arc<[IpAddr]>,
}

static SNAPSHOT: Mutex<Option<Snapshot>> = Mutex::new(None);

/// The host's addresses now (at most [`FRESH`] old).
pub fn current() -> Arc<[IpAddr]> {
    let mut snapshot = SNAPSHOT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(fresh) = snapshot
        .as_ref()
        .filter(|snapshot| snapshot.read_at.elapsed() < FRESH)
    {
        return Arc::clone(&fresh.addresses);
    }
    let addresses: Arc<[IpAddr]> = match crate::sys::interfaces::addresses() {
        Ok(addresses) => addresses.into(),
        Err(error) => {
            tracing::warn!(%error, "cannot read this host's addresses; keeping the last list");
            snapshot
                .as_ref()
                .map_or_else(|| Arc::from([]), |last| Arc::clone(&last.addresses))
        }
    };
    *snapshot = Some(Snapshot {
        read_at: Instant::now(),
        addresses: Arc::clone(&addresses),
    });
    addresses
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_holds_loopback() {
        let listed = current();
        assert!(listed.contains(&IpAddr::from([127, 0, 0, 1])), "{listed:?}");
    }
}
