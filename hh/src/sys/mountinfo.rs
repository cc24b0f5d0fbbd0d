//! `/proc/self/mountinfo`: which filesystem is mounted where.
//!
//! Format (proc(5)): `id parent major:minor root mount-point options [optional…] - fstype source
//! super-options`. Paths escape space, tab, newline and backslash as `\ooo` octal.

use std::path::PathBuf;

/// One mount, as much of it as hh needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub mount_point: PathBuf,
    pub fs_type: String,
}

/// Parses mountinfo text; malformed lines are skipped (the kernel writes this file, and one odd
/// line must not hide every other mount).
pub fn parse(text: &str) -> Vec<Mount> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Mount> {
    let (before, after) = line.split_once(" - ")?;
    let mount_point = before.split(' ').nth(4)?;
    let fs_type = after.split(' ').next()?;
    Some(Mount {
        mount_point: PathBuf::from(unescape(mount_point)),
        fs_type: fs_type.to_owned(),
    })
}

/// Undoes the kernel's `\ooo` octal escapes.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).filter(|digits| {
            bytes[i] == b'\\' && digits.iter().all(|digit| (b'0'..=b'7').contains(digit))
        });
        match octal {
            Some(digits) => {
                let value = digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                out.push(u8::try_from(value).unwrap_or(b'?'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads this process's mount table.
pub fn read() -> std::io::Result<Vec<Mount>> {
    std::fs::read_to_string("/proc/self/mountinfo").map(|text| parse(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
25 30 0:22 / /sys rw,nosuid shared:7 - sysfs sysfs rw
33 25 0:28 / /sys/fs/cgroup ro,nosuid shared:9 - tmpfs tmpfs ro,mode=755
34 33 0:29 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw,nsdelegate
35 33 0:30 / /sys/fs/cgroup/memory rw shared:11 - cgroup cgroup rw,memory
40 25 0:35 / /sys/fs/bpf rw,nosuid shared:15 - bpf bpf rw,mode=700
";

    #[test]
    fn a_hybrid_table_lists_every_mount_with_its_type() {
        let mounts = parse(HYBRID);
        assert_eq!(mounts.len(), 5);
        assert_eq!(
            mounts[2].mount_point,
            PathBuf::from("/sys/fs/cgroup/unified")
        );
        assert_eq!(mounts[2].fs_type, "cgroup2");
        assert_eq!(mounts[4].fs_type, "bpf");
    }

    #[test]
    fn octal_escapes_in_mount_points_are_undone() {
        let mounts = parse("1 1 0:1 / /mnt/with\\040space rw - ext4 /dev/x rw\n");
        assert_eq!(mounts[0].mount_point, PathBuf::from("/mnt/with space"));
    }

    #[test]
    fn optional_fields_before_the_separator_are_skipped() {
        let mounts = parse("1 1 0:1 / /a rw shared:1 master:2 - cgroup2 none rw\n");
        assert_eq!(mounts[0].fs_type, "cgroup2");
    }

    #[test]
    fn malformed_lines_are_skipped_not_fatal() {
        let mounts = parse("garbage\n1 1 0:1 / /a rw - tmpfs none rw\n\n");
        assert_eq!(mounts.len(), 1);
    }
}
