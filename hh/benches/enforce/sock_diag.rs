//! What the other end of a local TCP connection has received and read: one `sock_diag` query
//! (netlink, see `man 7 sock_diag`) for a TCP socket named by its 4-tuple, with `tcp_info`.
//!
//! The tun2proxy stand-in needs it to know when tun2proxy has read the CONNECT reply (see
//! [`super::tun2proxy`]). Byte layouts are the kernel's UAPI (`linux/inet_diag.h`,
//! `linux/tcp.h`), native-endian except ports and addresses.

use std::{
    io,
    net::SocketAddrV4,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
};

const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// `1 << (INET_DIAG_INFO - 1)`: ask for `tcp_info` as an `INET_DIAG_INFO` attribute.
const EXT_INFO: u8 = 1 << (INET_DIAG_INFO - 1);
const INET_DIAG_INFO: u16 = 2;
const NLMSG_HEADER: usize = 16;
/// `struct inet_diag_req_v2`: family, protocol, ext, pad, states, then `inet_diag_sockid`.
const REQUEST: usize = 56;
/// `struct inet_diag_msg`, whose `idiag_rqueue` (unread bytes of a TCP socket) is at 56.
const MESSAGE: usize = 72;
const RQUEUE_AT: usize = 56;
/// `tcpi_bytes_received` in `struct tcp_info` (Linux 4.1+).
const BYTES_RECEIVED_AT: usize = 128;

/// A socket's receive side, as its kernel sees it.
pub struct Received {
    /// Payload bytes it has received in all.
    pub bytes: u64,
    /// Of those, the bytes its owner has not read yet.
    pub unread: u32,
}

/// A `NETLINK_SOCK_DIAG` socket. It answers about the network namespace it was opened in.
pub struct SockDiag {
    socket: OwnedFd,
}

impl SockDiag {
    pub fn open() -> io::Result<SockDiag> {
        // SAFETY: socket(2) with constant arguments; the result is checked before use.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                libc::NETLINK_SOCK_DIAG,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        Ok(SockDiag {
            socket: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// The receive side of the TCP socket bound to `local` and connected to `remote`.
    pub fn tcp(&self, local: SocketAddrV4, remote: SocketAddrV4) -> io::Result<Received> {
        let request = request(local, remote);
        // SAFETY: send/recv on our socket with buffers of the lengths passed.
        let sent = unsafe {
            libc::send(
                self.socket.as_raw_fd(),
                request.as_ptr().cast(),
                request.len(),
                0,
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut reply = [0u8; 1024];
        // SAFETY: as above.
        let got = unsafe {
            libc::recv(
                self.socket.as_raw_fd(),
                reply.as_mut_ptr().cast(),
                reply.len(),
                0,
            )
        };
        if got < 0 {
            return Err(io::Error::last_os_error());
        }
        parse(&reply[..got as usize])
    }
}

/// An exact lookup (no `NLM_F_DUMP`): the kernel finds the one socket with this 4-tuple.
fn request(local: SocketAddrV4, remote: SocketAddrV4) -> Vec<u8> {
    let mut message = Vec::with_capacity(NLMSG_HEADER + REQUEST);
    message.extend(((NLMSG_HEADER + REQUEST) as u32).to_ne_bytes());
    message.extend(SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    message.extend((libc::NLM_F_REQUEST as u16).to_ne_bytes());
    message.extend([0u8; 8]); // sequence number and port id: one request at a time, the kernel
    message.extend([libc::AF_INET as u8, libc::IPPROTO_TCP as u8, EXT_INFO, 0]);
    message.extend(u32::MAX.to_ne_bytes()); // any state
    message.extend(local.port().to_be_bytes());
    message.extend(remote.port().to_be_bytes());
    for address in [local.ip(), remote.ip()] {
        message.extend(address.octets());
        message.extend([0u8; 12]); // the rest of the 16 bytes an IPv6 address would take
    }
    message.extend(0u32.to_ne_bytes()); // any interface
    message.extend([0xff; 8]); // INET_DIAG_NOCOOKIE
    message
}

fn parse(reply: &[u8]) -> io::Result<Received> {
    let kind = u16::from_ne_bytes([reply[4], reply[5]]);
    if kind == libc::NLMSG_ERROR as u16 {
        let errno = i32::from_ne_bytes(reply[16..20].try_into().expect("4 bytes"));
        return Err(io::Error::from_raw_os_error(-errno));
    }
    let message = &reply[NLMSG_HEADER..];
    let unread = u32::from_ne_bytes(message[RQUEUE_AT..RQUEUE_AT + 4].try_into().expect("4"));
    let bytes = attribute(&message[MESSAGE..], INET_DIAG_INFO)
        .and_then(|info| info.get(BYTES_RECEIVED_AT..BYTES_RECEIVED_AT + 8))
        .map(|field| u64::from_ne_bytes(field.try_into().expect("8 bytes")))
        .ok_or_else(|| io::Error::other("no tcp_info in the sock_diag reply"))?;
    Ok(Received { bytes, unread })
}

/// The payload of the first `rtattr` of type `wanted` (each: u16 length, u16 type, payload,
/// padded to 4 bytes).
fn attribute(mut attributes: &[u8], wanted: u16) -> Option<&[u8]> {
    while attributes.len() >= 4 {
        let length = usize::from(u16::from_ne_bytes([attributes[0], attributes[1]]));
        let kind = u16::from_ne_bytes([attributes[2], attributes[3]]);
        if length < 4 || length > attributes.len() {
            return None;
        }
        if kind == wanted {
            return Some(&attributes[4..length]);
        }
        attributes = &attributes[length.next_multiple_of(4).min(attributes.len())..];
    }
    None
}
