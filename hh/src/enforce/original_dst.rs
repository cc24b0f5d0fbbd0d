//! Recovering where a redirected connection was going.
//!
//! `connect4`/`connect6` record the destination (and the connecting process: host pid and `comm`)
//! by socket cookie; `sock_ops` moves it, once the
//! connection is established, to (client netns cookie, client port). The proxy's accepted socket
//! lives in the same namespace as the client (both ends are on the session's loopback), so its
//! own netns cookie and its peer's port name the entry. Ports alone would collide across
//! sessions; the namespace cookie cannot.

use std::{
    net::{SocketAddr, SocketAddrV4},
    os::fd::AsFd,
    sync::Mutex,
};

use aya::maps::{HashMap, MapData, MapError};
use hh_common::{ConnKey, Redirect};

use crate::sys::socket::netns_cookie;

#[derive(Debug, thiserror::Error)]
pub enum OriginalDstError {
    #[error("reading the accepted socket's namespace cookie")]
    NetnsCookie(#[source] std::io::Error),
    #[error("the accepted socket's peer is not an IPv4 or v4-mapped address: {0}")]
    UnexpectedPeer(SocketAddr),
    #[error("looking up the original destination")]
    Map(#[source] MapError),
}

/// The original-destination map, shared by every connection the proxy accepts.
pub struct OriginalDst {
    map: Mutex<HashMap<MapData, ConnKey, Redirect>>,
}

/// Where a redirected connection was going, and the process that made it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redirected {
    pub destination: SocketAddrV4,
    /// The connecting process's id in the host's pid namespace (0: unknown).
    pub host_pid: u32,
    /// Its `comm` as the kernel had it at the connect (possibly empty).
    pub comm: String,
}

impl OriginalDst {
    pub(super) fn new(map: HashMap<MapData, ConnKey, Redirect>) -> Self {
        Self {
            map: Mutex::new(map),
        }
    }

    /// Takes (reads and removes) the original destination of `accepted`, whose peer is
    /// `peer`. `None`: the client dialed the proxy directly (an explicit-proxy client).
    pub fn take(
        &self,
        accepted: &impl AsFd,
        peer: SocketAddr,
    ) -> Result<Option<Redirected>, OriginalDstError> {
        let port = match peer {
            SocketAddr::V4(v4) => v4.port(),
            SocketAddr::V6(v6) if v6.ip().to_ipv4_mapped().is_some() => v6.port(),
            SocketAddr::V6(_) => return Err(OriginalDstError::UnexpectedPeer(peer)),
        };
        let key = ConnKey {
            netns_cookie: netns_cookie(accepted).map_err(OriginalDstError::NetnsCookie)?,
            port,
            _pad: [0; 6],
        };
        let mut map = self
            .map
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let redirect = match map.get(&key, 0) {
            Ok(redirect) => redirect,
            Err(MapError::KeyNotFound) => return Ok(None),
            Err(error) => return Err(OriginalDstError::Map(error)),
        };
        // Gone already (sock_ops removes it at close too): not an error.
        let _ = map.remove(&key);
        let comm_len = redirect
            .comm
            .iter()
            .position(|&byte| byte == 0)
            .unwrap_or(redirect.comm.len());
        Ok(Some(Redirected {
            destination: SocketAddrV4::new(
                redirect.dest.addr.into(),
                u16::from_be_bytes(redirect.dest.port),
            ),
            host_pid: redirect.tgid,
            comm: String::from_utf8_lossy(&redirect.comm[..comm_len]).into_owned(),
        }))
    }

    /// Entries currently held (for leak checks).
    pub fn len(&self) -> usize {
        let map = self
            .map
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        map.keys().count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
