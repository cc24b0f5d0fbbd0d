//! Who a uid is on this host: the passwd database (`getpwuid_r`), for the home directory a
//! user's config means by `~` and `$HOME`.

use std::{ffi::CStr, io, os::unix::ffi::OsStrExt as _, path::PathBuf};

/// The home directory of `uid`, from the passwd database.
pub fn home_of(uid: u32) -> io::Result<PathBuf> {
    let mut buffer = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: all-zero is a valid `passwd` (null pointers, zero ids); getpwuid_r fills it.
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; `buffer` outlives the use of `entry`'s
    // strings, which point into it.
    let rc = unsafe {
        libc::getpwuid_r(
            uid,
            &mut entry,
            buffer.as_mut_ptr(),
            buffer.len(),
            &mut found,
        )
    };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    if found.is_null() || entry.pw_dir.is_null() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("uid {uid} has no passwd entry"),
        ));
    }
    // SAFETY: getpwuid_r succeeded: pw_dir is a NUL-terminated string inside `buffer`.
    let dir = unsafe { CStr::from_ptr(entry.pw_dir) };
    Ok(PathBuf::from(std::ffi::OsStr::from_bytes(dir.to_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_lives_where_passwd_says() {
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
        let root_home = passwd
            .lines()
            .find_map(|line| line.strip_prefix("root:"))
            .and_then(|rest| rest.split(':').nth(4))
            .unwrap();
        assert_eq!(home_of(0).unwrap(), PathBuf::from(root_home));
        assert!(home_of(u32::MAX - 7).is_err());
    }
}
