//! Network namespaces: opening sockets inside another namespace.
//!
//! A socket belongs to the namespace it was created in, whatever thread later uses it. So the
//! agent opens a session's listeners from a short-lived thread that joins the session's
//! namespace, binds, and hands the sockets back; the agent's own threads never change namespace.

use std::{fs::File, os::fd::AsRawFd as _, path::Path};

/// Runs `bind` on a fresh thread that has joined the network namespace at `netns` (a
/// `/proc/PID/ns/net` or `/var/run/netns/NAME` file) and returns what it returns.
pub fn bind_in<T, F>(netns: &Path, bind: F) -> std::io::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> std::io::Result<T> + Send + 'static,
{
    let namespace = File::open(netns)?;
    std::thread::Builder::new()
        .name("hh-netns-bind".into())
        .spawn(move || {
            // SAFETY: setns on a namespace file we hold open; it only affects this thread,
            // which ends right after `bind`.
            if unsafe { libc::setns(namespace.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            bind()
        })?
        .join()
        .map_err(|_| std::io::Error::other("the namespace thread panicked"))?
}
