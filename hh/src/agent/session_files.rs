//! The files every session container gets read-only at `/opt/hh`: its init, `killme`, and the
//! session CA (alone, and as a bundle with the host's roots).
//!
//! `hh-init` is the container's entrypoint. The container's network namespace exists only once
//! the container starts, so the agent can open the session's listeners only then; init waits
//! for the control listener, connects to the canary (which proves the session's connects are
//! intercepted), and waits until the agent says the session is ready. Only then does it run
//! the session's command: nothing of the session runs before enforcement is in place.

use std::{
    fs,
    io::Write as _,
    os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
};

use crate::proxy::transparent::CANARY;

/// Where the host's trusted roots usually are (Debian, Fedora, Alpine, openSUSE).
const HOST_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
    "/etc/ssl/ca-bundle.pem",
];

fn init_script() -> String {
    let canary_ip = CANARY.ip();
    let canary_port = CANARY.port();
    format!(
        r#"#!/bin/bash
# hh-init: the first process of an hh session. Waits until the agent has enforcement in place
# and says the session is ready, then runs the session's command.
set -u
control=/dev/tcp/127.0.0.1/${{HH_CONTROL_PORT:?hh-init: HH_CONTROL_PORT is not set}}
status() {{
    exec 3<>"$control" || return 1
    printf 'GET /ready HTTP/1.0\r\n\r\n' >&3
    local line
    IFS= read -r line <&3
    exec 3<&- 3>&-
    printf '%s' "${{line#* }}" | cut -c1-3
}}
for _ in $(seq 600); do
    code=$(status 2>/dev/null)
    if [ "$code" = 200 ]; then
        # Trust the session CA in the system store too when this user may write it.
        for store in /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt; do
            if [ -w "$store" ] && ! grep -q 'hh session CA' "$store" 2>/dev/null; then
                {{ echo '# hh session CA'; cat /opt/hh/ca.pem; }} >>"$store"
            fi
        done
        if [ -w / ] && command -v keytool >/dev/null 2>&1; then
            keytool -importcert -noprompt -cacerts -storepass changeit -alias hh-session \
                -file /opt/hh/ca.pem >/dev/null 2>&1 || true
        fi
        exec "$@"
    fi
    if [ -n "$code" ]; then
        # The agent listens: show it that this session's connects are intercepted.
        (exec 4<>/dev/tcp/{canary_ip}/{canary_port}) 2>/dev/null
    fi
    sleep 0.05
done
echo "hh-init: the hh agent never confirmed that this session is enforced; stopping" >&2
exit 1
"#
    )
}

fn killme_script(token_var: &str) -> String {
    format!(
        r#"#!/bin/bash
# killme: ask the hh agent to stop this session.
set -u
if ! exec 3<>"/dev/tcp/127.0.0.1/${{HH_CONTROL_PORT:?}}"; then
    echo "killme: the hh control server does not answer" >&2
    exit 1
fi
printf 'POST /killme HTTP/1.0\r\nAuthorization: Bearer %s\r\nContent-Length: 0\r\n\r\n' "${{{token_var}:-}}" >&3
IFS= read -r line <&3
case "$line" in
    *" 202 "*) echo "killme: the session is stopping" ;;
    *) echo "killme: the agent refused: $line" >&2; exit 1 ;;
esac
"#
    )
}

/// Writes the files into `dir` (created 0755: containers run as the session's user and must
/// read them) and returns it. Rewritten at every agent start, so they match this agent.
pub fn write(dir: &Path, ca_pem: &str, token_var: &str) -> std::io::Result<PathBuf> {
    fs::create_dir_all(dir.join("bin"))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))?;
    fs::set_permissions(dir.join("bin"), fs::Permissions::from_mode(0o755))?;
    replace(&dir.join("bin/hh-init"), init_script().as_bytes(), 0o755)?;
    replace(
        &dir.join("bin/killme"),
        killme_script(token_var).as_bytes(),
        0o755,
    )?;
    replace(&dir.join("ca.pem"), ca_pem.as_bytes(), 0o644)?;
    let mut bundle = String::from(ca_pem);
    if let Some(host) = HOST_BUNDLES
        .iter()
        .find_map(|path| fs::read_to_string(path).ok())
    {
        bundle.push('\n');
        bundle.push_str(&host);
    }
    replace(&dir.join("ca-bundle.pem"), bundle.as_bytes(), 0o644)?;
    Ok(dir.to_path_buf())
}

/// Writes `path` whole through a temporary file and a rename, never following a symlink.
fn replace(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let temp = path.with_extension("tmp");
    let _ = fs::remove_file(&temp);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&temp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::set_permissions(&temp, fs::Permissions::from_mode(mode))?;
    fs::rename(&temp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_are_valid_bash() {
        for script in [init_script(), killme_script("HARNESS_HAT_TOKEN")] {
            let checked = std::process::Command::new("bash")
                .args(["-n", "-c", &script])
                .status()
                .unwrap();
            assert!(checked.success(), "{script}");
        }
    }

    #[test]
    fn files_are_readable_by_every_session_user() {
        let dir = tempfile::tempdir().unwrap();
        let out = write(&dir.path().join("files"), "PEM\n", "TOKEN").unwrap();
        let mode = |p: &str| fs::metadata(out.join(p)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode("bin/hh-init"), 0o755);
        assert_eq!(mode("bin/killme"), 0o755);
        assert_eq!(mode("ca.pem"), 0o644);
        assert!(
            fs::read_to_string(out.join("ca-bundle.pem"))
                .unwrap()
                .starts_with("PEM\n")
        );
        assert!(
            fs::read_to_string(out.join("bin/killme"))
                .unwrap()
                .contains("${TOKEN:-}")
        );
    }
}
