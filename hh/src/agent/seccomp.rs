//! hh's seccomp profile for session containers: Docker's default profile, narrowed.
//!
//! The network namespace keeps a session's TCP and UDP on hh's proxy, but the kernel offers other
//! ways out and other attack surface that no namespace covers: `AF_VSOCK` reaches the hypervisor
//! (or the host of a VM), `AF_ALG` is the kernel's crypto API, `AF_PACKET`, `AF_BLUETOOTH`,
//! `AF_XDP`, … are whole protocol stacks; io_uring runs socket operations the seccomp filter
//! never sees (its submissions are not syscalls) and has been a steady source of kernel bugs. So
//! sessions run with Docker's default profile minus three things:
//!
//! - `socket` is allowed only for `AF_UNIX`, `AF_INET`, `AF_INET6` and `AF_NETLINK` (arg 0
//!   compared exactly); any other family gets `EPERM`.
//! - `socketcall` (the 32-bit x86 multiplexer, which carries the family behind a pointer a filter
//!   cannot read) is refused whole.
//! - `io_uring_setup`, `io_uring_enter` and `io_uring_register` are refused.
//!
//! Docker's default profile is [`DOCKER_DEFAULT`]: `profiles/seccomp/default.json` of Docker
//! 20.10.24 (Apache-2.0, © Docker, Inc.), as Debian ships it in `golang-github-docker-docker-dev`
//! for the engine Debian 12 runs. Syscalls newer than any it names get `ENOSYS` from runc (so libc
//! falls back), as under Docker's own profile of that version.
//!
//! [`profile`] builds the narrowed profile once; the container gets it as
//! `--security-opt seccomp=<json>` ([`super::container`]). The agent then checks, through the
//! session's `/proc/PID` handle, that the container's first process runs under a filter
//! (`Seccomp: 2`), and so does hh-init inside the container ([`super::session_files`]): a session
//! without a filter does not start.

use std::sync::OnceLock;

use serde_json::{Value, json};

/// Docker's default seccomp profile (see the module doc for its origin).
pub const DOCKER_DEFAULT: &str = include_str!("seccomp/docker-default.json");

/// The socket families a session may create (`<sys/socket.h>`).
pub const ALLOWED_FAMILIES: [(&str, i32); 4] = [
    ("AF_UNIX", libc::AF_UNIX),
    ("AF_INET", libc::AF_INET),
    ("AF_INET6", libc::AF_INET6),
    ("AF_NETLINK", libc::AF_NETLINK),
];

/// Syscalls no allow rule of Docker's profile keeps: `socket` comes back only for
/// [`ALLOWED_FAMILIES`], the others never.
pub const REFUSED_SYSCALLS: [&str; 5] = [
    "socket",
    "socketcall",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
];

/// `Seccomp:` in `/proc/PID/status` of a process under a seccomp filter (`SECCOMP_MODE_FILTER`).
pub const FILTER_MODE: &str = "2";

/// Why Docker's profile could not be narrowed (only a broken embedded file does this).
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("Docker's default seccomp profile does not parse: {0}")]
    Parse(#[from] serde_json::Error),
    #[error("Docker's default seccomp profile has no `syscalls` list")]
    NoSyscalls,
}

/// hh's profile as JSON, built once from [`DOCKER_DEFAULT`].
pub fn profile() -> Result<&'static str, &'static ProfileError> {
    static PROFILE: OnceLock<Result<String, ProfileError>> = OnceLock::new();
    PROFILE
        .get_or_init(|| narrow(DOCKER_DEFAULT))
        .as_ref()
        .map(String::as_str)
}

/// Docker's profile `docker_default` with hh's restrictions (see the module doc).
pub fn narrow(docker_default: &str) -> Result<String, ProfileError> {
    let mut profile: Value = serde_json::from_str(docker_default)?;
    let syscalls = profile
        .get_mut("syscalls")
        .and_then(Value::as_array_mut)
        .ok_or(ProfileError::NoSyscalls)?;
    for rule in syscalls.iter_mut() {
        if rule.get("action").and_then(Value::as_str) != Some("SCMP_ACT_ALLOW") {
            continue;
        }
        if let Some(names) = rule.get_mut("names").and_then(Value::as_array_mut) {
            names.retain(|name| {
                name.as_str()
                    .is_none_or(|name| !REFUSED_SYSCALLS.contains(&name))
            });
        }
    }
    // A rule that named only refused syscalls is gone rather than left with no names.
    syscalls.retain(|rule| {
        rule.get("names")
            .and_then(Value::as_array)
            .is_none_or(|names| !names.is_empty())
    });
    // One allow rule per family: libseccomp ORs rules of one syscall with the same action, and
    // an exact compare on arg 0 is all a filter can check of `socket(2)`.
    for (name, family) in ALLOWED_FAMILIES {
        syscalls.push(json!({
            "names": ["socket"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": family, "op": "SCMP_CMP_EQ"}],
            "comment": format!("hh: socket({name}, …) only"),
        }));
    }
    Ok(serde_json::to_string(&profile)?)
}

/// The `Seccomp:` value of a `/proc/PID/status` text, if it has one.
pub fn mode_in_status(status: &str) -> Option<&str> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("Seccomp:"))
        .map(str::trim)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(profile: &Value) -> &Vec<Value> {
        profile["syscalls"].as_array().unwrap()
    }

    fn names(rule: &Value) -> Vec<&str> {
        rule["names"]
            .as_array()
            .unwrap()
            .iter()
            .map(|name| name.as_str().unwrap())
            .collect()
    }

    fn generated() -> Value {
        serde_json::from_str(profile().unwrap()).unwrap()
    }

    #[test]
    fn no_allow_rule_names_socketcall_or_io_uring_and_socket_only_with_an_allowed_family() {
        let profile = generated();
        let mut families = Vec::new();
        for rule in rules(&profile) {
            if rule["action"] != "SCMP_ACT_ALLOW" {
                continue;
            }
            for name in names(rule) {
                assert!(
                    ![
                        "socketcall",
                        "io_uring_setup",
                        "io_uring_enter",
                        "io_uring_register"
                    ]
                    .contains(&name),
                    "{rule}"
                );
                if name == "socket" {
                    // Alone in its rule, with exactly one exact compare on the family.
                    assert_eq!(names(rule), ["socket"], "{rule}");
                    let args = rule["args"].as_array().unwrap();
                    assert_eq!(args.len(), 1, "{rule}");
                    assert_eq!(args[0]["index"], 0, "{rule}");
                    assert_eq!(args[0]["op"], "SCMP_CMP_EQ", "{rule}");
                    families.push(args[0]["value"].as_i64().unwrap());
                    assert!(
                        rule.get("includes").is_none() && rule.get("excludes").is_none(),
                        "{rule}"
                    );
                }
            }
        }
        families.sort_unstable();
        // AF_UNIX 1, AF_INET 2, AF_INET6 10, AF_NETLINK 16.
        assert_eq!(families, [1, 2, 10, 16]);
    }

    #[test]
    fn every_other_rule_of_dockers_profile_is_kept_as_it_was() {
        let docker: Value = serde_json::from_str(DOCKER_DEFAULT).unwrap();
        let ours = generated();
        assert_eq!(ours["defaultAction"], docker["defaultAction"]);
        assert_eq!(ours["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(ours["archMap"], docker["archMap"]);
        let without_refused = |rule: &Value| {
            let mut rule = rule.clone();
            if rule["action"] == "SCMP_ACT_ALLOW" {
                rule["names"]
                    .as_array_mut()
                    .unwrap()
                    .retain(|name| !REFUSED_SYSCALLS.contains(&name.as_str().unwrap()));
            }
            rule
        };
        let expected: Vec<Value> = rules(&docker)
            .iter()
            .map(without_refused)
            .filter(|rule| !rule["names"].as_array().unwrap().is_empty())
            .collect();
        let kept = &rules(&ours)[..expected.len()];
        assert_eq!(kept, expected.as_slice());
        // What follows is hh's own: the four socket rules.
        assert_eq!(rules(&ours).len(), expected.len() + ALLOWED_FAMILIES.len());
        // Docker's profile did allow what hh takes away (else this narrowing would be a no-op).
        let allowed_by_docker: Vec<&str> = rules(&docker)
            .iter()
            .filter(|rule| {
                rule["action"] == "SCMP_ACT_ALLOW"
                    && (rule["args"].is_null()
                        || rule["args"].as_array().is_some_and(Vec::is_empty))
            })
            .flat_map(names)
            .collect();
        for refused in REFUSED_SYSCALLS {
            assert!(allowed_by_docker.contains(&refused), "{refused}");
        }
    }

    #[test]
    fn the_status_line_gives_the_seccomp_mode() {
        let status = "Name:\tbash\nNoNewPrivs:\t1\nSeccomp:\t2\nSeccomp_filters:\t1\n";
        assert_eq!(mode_in_status(status), Some(FILTER_MODE));
        assert_eq!(mode_in_status("Name:\tbash\nSeccomp:\t0\n"), Some("0"));
        assert_eq!(mode_in_status("Name:\tbash\n"), None);
    }
}
