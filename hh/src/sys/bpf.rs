//! Probing the `bpf(2)` syscall itself, before any program is involved.

/// `BPF_MAP_CREATE` and `BPF_MAP_TYPE_ARRAY` from linux/bpf.h.
const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_TYPE_ARRAY: u32 = 2;

/// Why the bpf syscall could not be used.
#[derive(Debug, thiserror::Error)]
pub enum BpfProbeError {
    #[error("the kernel has no bpf syscall (ENOSYS): it was built without CONFIG_BPF_SYSCALL")]
    NoSyscall,
    #[error("bpf(BPF_MAP_CREATE) was refused (EPERM): hh needs root, or CAP_BPF and CAP_NET_ADMIN")]
    NotPermitted,
    #[error("bpf(BPF_MAP_CREATE) failed")]
    Other(#[source] std::io::Error),
}

/// Creates (and closes) a one-entry array map: the smallest thing that proves the syscall works
/// for this process.
pub fn probe_syscall() -> Result<(), BpfProbeError> {
    // The leading fields of `union bpf_attr` for BPF_MAP_CREATE; the rest must be zero.
    #[repr(C)]
    struct MapCreateAttr {
        map_type: u32,
        key_size: u32,
        value_size: u32,
        max_entries: u32,
        rest: [u8; 112],
    }
    let attr = MapCreateAttr {
        map_type: BPF_MAP_TYPE_ARRAY,
        key_size: 4,
        value_size: 4,
        max_entries: 1,
        rest: [0; 112],
    };
    // SAFETY: `attr` is a valid, zero-padded bpf_attr prefix of the size passed.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_MAP_CREATE,
            &attr as *const MapCreateAttr,
            std::mem::size_of::<MapCreateAttr>(),
        )
    };
    if fd < 0 {
        let error = std::io::Error::last_os_error();
        return Err(match error.raw_os_error() {
            Some(libc::ENOSYS) => BpfProbeError::NoSyscall,
            Some(libc::EPERM) => BpfProbeError::NotPermitted,
            _ => BpfProbeError::Other(error),
        });
    }
    // SAFETY: the syscall returned a file descriptor that we own and close once.
    unsafe { libc::close(fd as libc::c_int) };
    Ok(())
}
