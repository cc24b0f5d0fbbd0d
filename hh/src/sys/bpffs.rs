//! The bpf filesystem, where the agent pins what must outlive it.

use std::{ffi::CString, os::unix::ffi::OsStrExt as _, path::Path};

/// Where bpffs lives on every distribution that mounts it.
pub const DEFAULT_MOUNT: &str = "/sys/fs/bpf";

/// Mounts bpffs at `path` unless a bpf filesystem is already mounted there (root only).
pub fn ensure_mounted(path: &Path) -> std::io::Result<()> {
    let mounts = super::mountinfo::read()?;
    if mounts
        .iter()
        .any(|mount| mount.fs_type == "bpf" && mount.mount_point == path)
    {
        return Ok(());
    }
    let target = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // Only root may read or pin: what is pinned there keeps sessions cut off.
    let options = c"mode=0700";
    // SAFETY: every pointer is a NUL-terminated string that outlives the call.
    let rc = unsafe {
        libc::mount(
            c"bpf".as_ptr(),
            target.as_ptr(),
            c"bpf".as_ptr(),
            0,
            options.as_ptr().cast(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
