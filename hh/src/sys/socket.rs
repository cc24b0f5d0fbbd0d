//! Socket facts the kernel knows and std does not expose.

use std::os::fd::{AsFd, AsRawFd as _};

/// `SO_NETNS_COOKIE` (asm-generic/socket.h, Linux 5.14+).
const SO_NETNS_COOKIE: libc::c_int = 71;

/// The cookie of the network namespace `socket` lives in: the same value eBPF programs get from
/// `bpf_get_netns_cookie`, so userspace and kernel agree on which session a socket belongs to.
pub fn netns_cookie(socket: &impl AsFd) -> std::io::Result<u64> {
    let mut cookie: u64 = 0;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: `cookie` and `len` are valid for writes of the sizes given.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_fd().as_raw_fd(),
            libc::SOL_SOCKET,
            SO_NETNS_COOKIE,
            (&mut cookie as *mut u64).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(cookie)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_sockets_of_one_namespace_share_its_cookie() {
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let cookie = netns_cookie(&a).unwrap();
        assert_ne!(cookie, 0);
        assert_eq!(cookie, netns_cookie(&b).unwrap());
    }
}
