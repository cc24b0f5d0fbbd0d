//! Who a uid is on this host: the passwd database (`getpwuid_r`), for the home directory a
//! user's config means by `~` and `$HOME`; and groups by name (`getgrnam_r`), for
//! `--socket-group`.

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

/// The gid of group `name`, from the group database.
pub fn gid_of_group(name: &str) -> io::Result<u32> {
    let name_c = std::ffi::CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a group name has no NUL"))?;
    let mut buffer = vec![0 as libc::c_char; 64 * 1024];
    // SAFETY: all-zero is a valid `group` (null pointers, zero id); getgrnam_r fills it.
    let mut entry: libc::group = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::group = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; nothing of `entry` is used past `buffer`.
    let rc = unsafe {
        libc::getgrnam_r(
            name_c.as_ptr(),
            &mut entry,
            buffer.as_mut_ptr(),
            buffer.len(),
            &mut found,
        )
    };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    if found.is_null() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no group `{name}` on this host"),
        ));
    }
    Ok(entry.gr_gid)
}

/// A `--socket-group` value: a GID, or the name of a group.
pub fn resolve_group(text: &str) -> io::Result<u32> {
    match text.parse() {
        Ok(gid) => Ok(gid),
        Err(_) => gid_of_group(text),
    }
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

    #[test]
    fn groups_resolve_by_number_or_name() {
        let group = std::fs::read_to_string("/etc/group").unwrap();
        let (name, gid) = group
            .lines()
            .find_map(|line| {
                let fields: Vec<&str> = line.split(':').collect();
                Some((
                    fields.first()?.to_string(),
                    fields.get(2)?.parse::<u32>().ok()?,
                ))
            })
            .unwrap();
        assert_eq!(resolve_group(&name).unwrap(), gid);
        assert_eq!(resolve_group("4242").unwrap(), 4242);
        let missing = resolve_group("no-such-group-hh").unwrap_err();
        assert!(missing.to_string().contains("no group `no-such-group-hh`"));
    }
}
