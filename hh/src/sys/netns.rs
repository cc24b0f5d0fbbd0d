//! Network namespaces: opening sockets inside another namespace.
//!
//! A socket belongs to the namespace it was created in, whatever thread later uses it. So the
//! agent opens a session's listeners from a short-lived thread that joins the session's
//! namespace, binds, and hands the sockets back; the agent's own threads never change namespace.
//!
//! A socket also belongs to the cgroup of the task that created it, and sock_ops programs run
//! for the sockets of their cgroup: [`listen_in_cgroup`] opens a listener that belongs to a
//! session's cgroup too, so that the session's `sock_ops` sees the connections it accepts.

use std::{
    fs::File,
    net::{SocketAddrV4, TcpListener},
    os::fd::{AsRawFd as _, OwnedFd, RawFd},
    path::Path,
};

/// Runs `bind` on a fresh thread that has joined the network namespace at `netns` (a
/// `/proc/PID/ns/net` or `/var/run/netns/NAME` file) and returns what it returns.
pub fn bind_in<T, F>(netns: &Path, bind: F) -> std::io::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> std::io::Result<T> + Send + 'static,
{
    bind_in_namespace(File::open(netns)?, bind)
}

/// [`bind_in`] for a namespace file already open (held open, it stays the same namespace
/// whatever happens to the process it was found through).
pub fn bind_in_namespace<T, F>(namespace: File, bind: F) -> std::io::Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> std::io::Result<T> + Send + 'static,
{
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

/// Opens a TCP listener on `addr` that belongs to the network namespace at `netns` *and* to the
/// cgroup v2 directory `cgroup`.
///
/// cgroup v2 places whole processes, not threads, so a thread cannot borrow the cgroup as
/// [`bind_in`] borrows the namespace. Instead a short-lived child process shares this
/// process's descriptor table (`clone(CLONE_FILES)`), joins the namespace and the cgroup,
/// creates the listener, moves it onto a descriptor this process reserved, and exits; the
/// caller's own tasks never change cgroup.
pub fn listen_in_cgroup(
    netns: &Path,
    cgroup: &Path,
    addr: SocketAddrV4,
) -> std::io::Result<TcpListener> {
    let namespace = File::open(netns)?;
    let procs = File::options()
        .write(true)
        .open(cgroup.join("cgroup.procs"))?;
    // The descriptor the child's listener replaces (dup3 onto it), so the parent knows its
    // number without another channel.
    let slot = OwnedFd::from(File::open("/dev/null")?);
    let sockaddr = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: addr.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(addr.ip().octets()),
        },
        sin_zero: [0; 8],
    };
    let fds = ChildFds {
        namespace: namespace.as_raw_fd(),
        procs: procs.as_raw_fd(),
        slot: slot.as_raw_fd(),
    };
    // SAFETY: like fork(2) (no CLONE_VM: the child has a copy of this address space and runs
    // on its copy of this stack), with the descriptor table shared. The child runs only raw
    // system calls (no allocation, no lock another thread might have held) and `_exit`s.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            libc::CLONE_FILES | libc::SIGCHLD,
            0,
            0,
            0,
            0,
        )
    };
    if pid == 0 {
        // SAFETY: in the child; see above.
        unsafe { libc::_exit(child_listen(&fds, &sockaddr)) }
    }
    if pid < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let status = wait(pid as libc::pid_t)?;
    if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
        Ok(TcpListener::from(slot))
    } else if libc::WIFEXITED(status) {
        Err(std::io::Error::from_raw_os_error(libc::WEXITSTATUS(status)))
    } else {
        Err(std::io::Error::other(format!(
            "the listener process ended with status {status:#x}"
        )))
    }
}

/// The descriptors the child of [`listen_in_cgroup`] uses.
struct ChildFds {
    namespace: RawFd,
    procs: RawFd,
    slot: RawFd,
}

/// The child of [`listen_in_cgroup`]: returns 0, or the errno of the step that failed (every
/// errno fits the 8 bits of an exit status).
///
/// # Safety
/// Only in the child of `clone(CLONE_FILES)`: it changes this process's namespace and cgroup.
unsafe fn child_listen(fds: &ChildFds, addr: &libc::sockaddr_in) -> i32 {
    let errno = || {
        std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO)
    };
    // SAFETY: plain system calls on descriptors the parent keeps open until we exit, and on
    // `addr`, a valid `sockaddr_in` of the size passed.
    unsafe {
        if libc::setns(fds.namespace, libc::CLONE_NEWNET) != 0 {
            return errno();
        }
        // "0" moves the writing process: this child only.
        if libc::write(fds.procs, b"0".as_ptr().cast(), 1) != 1 {
            return errno();
        }
        let socket = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if socket < 0 {
            return errno();
        }
        let one: libc::c_int = 1;
        let ok = libc::setsockopt(
            socket,
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            (&raw const one).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        ) == 0
            && libc::bind(
                socket,
                (&raw const *addr).cast(),
                size_of::<libc::sockaddr_in>() as libc::socklen_t,
            ) == 0
            && libc::listen(socket, libc::SOMAXCONN) == 0
            && libc::dup3(socket, fds.slot, libc::O_CLOEXEC) == fds.slot;
        let code = if ok { 0 } else { errno() };
        libc::close(socket);
        code
    }
}

/// Waits for child `pid` to end; returns its wait status.
fn wait(pid: libc::pid_t) -> std::io::Result<i32> {
    let mut status = 0;
    loop {
        // SAFETY: waits for our own child; `status` is a valid out-pointer.
        if unsafe { libc::waitpid(pid, &mut status, 0) } == pid {
            return Ok(status);
        }
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}
