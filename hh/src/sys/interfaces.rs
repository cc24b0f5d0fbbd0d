//! The addresses on this host's interfaces, read with `getifaddrs(3)` (glibc asks the kernel
//! over netlink, `RTM_GETADDR`), in the calling thread's network namespace.

use std::{
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

/// Every IPv4 and IPv6 address of every interface, up or down (an address is the host's as
/// soon as it is assigned), in the order the kernel lists them, without duplicates.
pub fn addresses() -> io::Result<Vec<IpAddr>> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a list it allocated, freed below.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return Err(io::Error::other(format!(
            "getifaddrs: {}",
            io::Error::last_os_error()
        )));
    }
    let mut found = Vec::new();
    let mut entry = list;
    while !entry.is_null() {
        // SAFETY: `entry` is a node of the list getifaddrs returned, not yet freed.
        let ifaddr = unsafe { &*entry };
        // SAFETY: `ifa_addr` is null or points to a sockaddr whose family says its real type.
        if let Some(ip) = unsafe { ip_of(ifaddr.ifa_addr) }
            && !found.contains(&ip)
        {
            found.push(ip);
        }
        entry = ifaddr.ifa_next;
    }
    // SAFETY: `list` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(list) };
    Ok(found)
}

/// The address in `addr`, for `AF_INET` and `AF_INET6`.
///
/// # Safety
/// `addr` is null or points to a valid socket address of the size its family implies.
unsafe fn ip_of(addr: *const libc::sockaddr) -> Option<IpAddr> {
    if addr.is_null() {
        return None;
    }
    // SAFETY: the caller's promise; the family field is common to every sockaddr.
    match i32::from(unsafe { (*addr).sa_family }) {
        libc::AF_INET => {
            // SAFETY: an AF_INET address is a sockaddr_in.
            let v4 = unsafe { &*addr.cast::<libc::sockaddr_in>() };
            Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr))))
        }
        libc::AF_INET6 => {
            // SAFETY: an AF_INET6 address is a sockaddr_in6.
            let v6 = unsafe { &*addr.cast::<libc::sockaddr_in6>() };
            Some(IpAddr::V6(Ipv6Addr::from(v6.sin6_addr.s6_addr)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loopback_interface_and_a_bound_address_are_listed() {
        let listed = addresses().unwrap();
        assert!(
            listed.contains(&IpAddr::V4(Ipv4Addr::LOCALHOST)),
            "{listed:?}"
        );
        // Any address a socket can bind without IP_FREEBIND is one of the host's.
        for ip in &listed {
            if let IpAddr::V4(v4) = ip {
                std::net::TcpListener::bind((*v4, 0)).unwrap();
            }
        }
    }
}
