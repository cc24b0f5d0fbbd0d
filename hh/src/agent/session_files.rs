//! The files every session container gets read-only at `/opt/hh`: its init, `killme`, and the
//! session CA (alone, and as a bundle with the host's roots).
//!
//! `hh-init` is the container's entrypoint. It first checks that it runs under a seccomp filter
//! (hh's profile, see [`super::seccomp`]) and stops when it does not. The container's network
//! namespace exists only once the container starts, so the agent can open the session's listeners
//! only then; init waits for the control listener, connects to the canary (which proves the
//! session's connects are intercepted), and waits until the agent says the session is ready. Only
//! then does it run the session's command: nothing of the session runs before enforcement is in
//! place.

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
    let filter_mode = super::seccomp::FILTER_MODE;
    const NOTE_FILE: &str = super::plan::NETWORK_NOTE_FILE;
    format!(
        r#"#!/bin/bash
# hh-init: the first process of an hh session. Waits until the agent has enforcement in place
# and says the session is ready, then runs the session's command.
set -u
# A session runs under hh's seccomp profile (no AF_VSOCK, AF_ALG, … sockets, no io_uring). Without
# a filter in force, stop before the canary: the agent never counts this session as enforced.
seccomp=missing
while IFS=$' \t' read -r key value; do
    if [ "$key" = "Seccomp:" ]; then seccomp=$value; fi
done </proc/self/status
if [ "$seccomp" != {filter_mode} ]; then
    echo "hh-init: this session is not confined by a seccomp filter (Seccomp: $seccomp); stopping" >&2
    exit 1
fi
# A harness's agent reads how its network works among its user-level instructions,
# unless the user has that file already (theirs is never written). Before the session is
# ready, so that the first command of it (hh run's) finds it.
if [ -n "${{HH_HARNESS_NOTE:-}}" ] && [ -n "${{HOME:-}}" ]; then
    note="$HOME/$HH_HARNESS_NOTE"
    if [ ! -e "$note" ] && [ ! -L "$note" ]; then
        mkdir -p "${{note%/*}}" 2>/dev/null && cp /opt/hh/{NOTE_FILE} "$note" 2>/dev/null
    fi
fi
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
        # (The system trust store is the agent's bundle, mounted over it read-only.)
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

/// Under the session files: Claude Code's managed settings hh gives every session (mounted at
/// [`CLAUDE_MANAGED_SETTINGS`], where Claude Code reads the policy no user setting overrides).
pub const CLAUDE_SETTINGS_FILE: &str = "claude-managed-settings.json";

/// Where Claude Code reads managed settings on Linux.
pub const CLAUDE_MANAGED_SETTINGS: &str = "/etc/claude-code/managed-settings.json";

/// The managed settings: deny rules for what reads environment variables, credential files and
/// cloud metadata, and hh's PreToolUse hook for the tools that run commands or read files.
/// A guard against an agent's mistakes and the plainest attempts, not the boundary: the
/// boundary is the proxy (secrets are placeholders, metadata addresses are never dialed).
fn claude_managed_settings() -> String {
    const GUARDED_TOOLS: &str = "Bash|Read|Grep|Glob|WebFetch|Edit|Write";
    let deny = [
        "Bash(printenv:*)",
        "Bash(env)",
        "Bash(env:*)",
        "Bash(export -p:*)",
        "Bash(declare -x:*)",
        "Bash(git credential:*)",
        "Bash(git config --get credential:*)",
        "Read(/proc/**/environ)",
        "Read(./.env)",
        "Read(./.env.*)",
        "Read(**/.env)",
        "Read(~/.aws/credentials)",
        "Read(~/.git-credentials)",
        "Read(~/.netrc)",
        "WebFetch(domain:169.254.169.254)",
        "WebFetch(domain:metadata.google.internal)",
    ];
    let guard = |command: &str| {
        serde_json::json!([{
            "matcher": GUARDED_TOOLS,
            "hooks": [{ "type": "command", "command": command }],
        }])
    };
    let after = guard("/opt/hh/bin/hh-tool-guard --after");
    // A call ends as it ran, as it failed, or refused by a permission after the hook let it.
    serde_json::to_string_pretty(&serde_json::json!({
        "permissions": { "deny": deny },
        "hooks": {
            "PreToolUse": guard("/opt/hh/bin/hh-tool-guard"),
            "PostToolUse": after,
            "PostToolUseFailure": after,
            "PermissionDenied": after,
        },
    }))
    .expect("a JSON value serializes")
}

/// hh's hook for Claude Code's tool calls, before (`PreToolUse`) and after (`PostToolUse`,
/// with `--after`) each. The call arrives as JSON on stdin. Before: one that reads environment
/// variables (`printenv`, `/proc/*/environ`), `.env` files, cloud or git credentials, or cloud
/// metadata is refused (exit 2: the agent is told why, and the call does not run); one that runs
/// is reported to the session's control server as started, and after it as ended, so the audit
/// lines of its requests name it ([`crate::proxy::tool_calls`]). A control server that does
/// not answer costs the report, never the call.
fn tool_guard_script(token_var: &str) -> String {
    format!(
        r#"#!/bin/bash
# hh-tool-guard: Claude Code's PreToolUse and PostToolUse (--after) hook in hh sessions
# (see /etc/claude-code).
call=$(head -c 1048576)
# Tells the session's control server that tool call $2 started or ended ($1).
report() {{
    local token="${{{token_var}:-}}"
    [ -n "${{HH_CONTROL_PORT:-}}" ] && [ -n "$token" ] || return 0
    exec 3<>"/dev/tcp/127.0.0.1/$HH_CONTROL_PORT" || return 0
    printf 'POST /tool/%s/%s HTTP/1.0\r\nAuthorization: Bearer %s\r\nContent-Length: 0\r\n\r\n' "$1" "$2" "$token" >&3
    IFS= read -r -t 5 _ <&3
    exec 3<&- 3>&-
}} 2>/dev/null
id=
id_field='"tool_use_id"[[:space:]]*:[[:space:]]*"([A-Za-z0-9_-]{{1,128}})"'
if [[ $call =~ $id_field ]]; then id=${{BASH_REMATCH[1]}}; fi
if [ "${{1:-}}" = --after ]; then
    [ -n "$id" ] && report end "$id"
    exit 0
fi
reason=
case "$call" in
    *printenv*) reason="it reads the environment (printenv)" ;;
    */proc/*environ*) reason="it reads a process's environment (/proc/*/environ)" ;;
    *.aws/credentials*|*.git-credentials*|*.netrc*|*"git credential"*|*credential.helper*)
        reason="it reads credentials" ;;
    *169.254.169.254*|*metadata.google.internal*|*100.100.100.200*)
        reason="it asks a cloud metadata service" ;;
esac
env_file='(^|["/ =])[.]env([.][A-Za-z0-9_.-]*)?(["[:space:]]|$)'
if [ -z "$reason" ] && [[ $call =~ $env_file ]]; then
    reason="it reads a .env file"
fi
if [ -n "$reason" ]; then
    echo "hh: blocked: $reason. In an hh session secrets stay out of the agent's reach; the proxy adds API keys to the requests they belong to." >&2
    exit 2
fi
[ -n "$id" ] && report start "$id"
exit 0
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
    replace(
        &dir.join("bin/hh-tool-guard"),
        tool_guard_script(token_var).as_bytes(),
        0o755,
    )?;
    replace(
        &dir.join(CLAUDE_SETTINGS_FILE),
        claude_managed_settings().as_bytes(),
        0o644,
    )?;
    replace(&dir.join("ca.pem"), ca_pem.as_bytes(), 0o644)?;
    replace(
        &dir.join(super::plan::NETWORK_NOTE_FILE),
        crate::harness::NETWORK_NOTE.as_bytes(),
        0o644,
    )?;
    let mut bundle = String::from(ca_pem);
    if let Some(host) = HOST_BUNDLES
        .iter()
        .find_map(|path| fs::read_to_string(path).ok())
    {
        bundle.push('\n');
        bundle.push_str(&host);
    }
    replace(
        &dir.join(super::plan::SESSION_BUNDLE),
        bundle.as_bytes(),
        0o644,
    )?;
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

    /// hh-init run for real (bash, on this host), with a control server that says "ready" at
    /// once: outside a seccomp filter it must stop before it contacts anything.
    #[test]
    fn hh_init_stops_before_the_canary_when_no_seccomp_filter_is_in_force() {
        let own = fs::read_to_string("/proc/self/status").unwrap();
        assert_eq!(
            super::super::seccomp::mode_in_status(&own),
            Some("0"),
            "this test needs a test process without a seccomp filter of its own"
        );
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("hh-init");
        fs::write(&script, init_script()).unwrap();
        let control = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = control.local_addr().unwrap().port();
        control.set_nonblocking(true).unwrap();
        let contacted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = std::sync::Arc::clone(&contacted);
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop = std::sync::Arc::clone(&done);
        let server = std::thread::spawn(move || {
            use std::io::Write as _;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                match control.accept() {
                    Ok((mut stream, _)) => {
                        seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let _ = stream.write_all(b"HTTP/1.0 200 OK\r\n\r\nready\n");
                    }
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
                }
            }
        });
        let output = std::process::Command::new("bash")
            .arg(&script)
            .args(["echo", "the session's command ran"])
            .env("HH_CONTROL_PORT", port.to_string())
            .output()
            .unwrap();
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        server.join().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("not confined by a seccomp filter (Seccomp: 0)"),
            "{stderr}"
        );
        assert!(output.stdout.is_empty(), "{:?}", output.stdout);
        assert_eq!(contacted.load(std::sync::atomic::Ordering::SeqCst), 0);
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

    /// Runs the guard `command` with `call` on its stdin: its exit code and stderr.
    fn run_guard(mut command: std::process::Command, call: &str) -> (Option<i32>, String) {
        use std::io::Write as _;
        let mut child = command
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(call.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    #[test]
    fn the_tool_guard_reports_a_call_it_lets_run_and_its_end_with_the_token() {
        use std::io::{BufRead as _, Write as _};
        let dir = tempfile::tempdir().unwrap();
        let guard = dir.path().join("hh-tool-guard");
        std::fs::write(&guard, tool_guard_script("HH_TEST_TOKEN")).unwrap();
        let control = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = control.local_addr().unwrap().port().to_string();
        let heard = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for _ in 0..2 {
                let (stream, _) = control.accept().unwrap();
                let mut reader = std::io::BufReader::new(stream);
                let mut head = String::new();
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    if line == "\r\n" || line.is_empty() {
                        break;
                    }
                    head.push_str(&line);
                }
                reader
                    .get_mut()
                    .write_all(b"HTTP/1.0 204 No Content\r\n\r\n")
                    .unwrap();
                lines.push(head);
            }
            lines
        });
        let call = serde_json::json!({
            "tool_name": "Bash", "tool_use_id": "toolu_01AbC",
            "tool_input": {"command": "curl https://example.test/"},
        })
        .to_string();
        for args in [&[][..], &["--after"][..]] {
            let mut command = std::process::Command::new("bash");
            command
                .arg(&guard)
                .args(args)
                .env("HH_CONTROL_PORT", &port)
                .env("HH_TEST_TOKEN", "s3cret");
            assert_eq!(run_guard(command, &call).0, Some(0));
        }
        let heard = heard.join().unwrap();
        assert!(
            heard[0].starts_with("POST /tool/start/toolu_01AbC HTTP/1.0\r\n"),
            "{heard:?}"
        );
        assert!(
            heard[0].contains("Authorization: Bearer s3cret\r\n"),
            "{heard:?}"
        );
        assert!(
            heard[1].starts_with("POST /tool/end/toolu_01AbC HTTP/1.0\r\n"),
            "{heard:?}"
        );
    }

    #[test]
    fn the_tool_guard_refuses_what_reads_secrets_and_lets_work_through() {
        let dir = tempfile::tempdir().unwrap();
        let guard = dir.path().join("hh-tool-guard");
        std::fs::write(&guard, tool_guard_script("HH_TEST_TOKEN")).unwrap();
        let run = |call: &str| {
            let mut command = std::process::Command::new("bash");
            command.arg(&guard);
            run_guard(command, call)
        };
        let bash = |command: &str| {
            serde_json::json!({"tool_name": "Bash", "tool_input": {"command": command}}).to_string()
        };
        for (call, why) in [
            (bash("cat /proc/self/environ"), "environment"),
            (bash("printenv ANTHROPIC_API_KEY"), "environment"),
            (bash("cat .env.local"), ".env"),
            (bash("cat ~/.aws/credentials"), "credentials"),
            (bash("git credential fill"), "credentials"),
            // A value the guard must refuse: the script only reads it; nothing dials it.
            (
                bash("curl http://169.254.169.254/latest/meta-data"),
                "metadata",
            ),
            (
                serde_json::json!({"tool_name": "Read", "tool_input": {"file_path": "/w/.env"}})
                    .to_string(),
                ".env",
            ),
        ] {
            let (code, said) = run(&call);
            assert_eq!(code, Some(2), "{call}");
            assert!(
                said.starts_with("hh: blocked") && said.contains(why),
                "{call}: {said}"
            );
        }
        for call in [
            bash("cargo test"),
            bash("python -m venv env && . env/bin/activate"),
            bash("grep -r environment src/"),
            serde_json::json!({"tool_name": "Read", "tool_input": {"file_path": "/w/src/env.rs"}})
                .to_string(),
        ] {
            assert_eq!(run(&call).0, Some(0), "{call}");
        }
    }

    #[test]
    fn claudes_managed_settings_deny_and_hook_what_the_guard_covers() {
        let settings: serde_json::Value = serde_json::from_str(&claude_managed_settings()).unwrap();
        let deny = settings["permissions"]["deny"].as_array().unwrap();
        for rule in ["Bash(printenv:*)", "Read(/proc/**/environ)", "Read(./.env)"] {
            assert!(deny.iter().any(|denied| denied == rule), "{rule}");
        }
        assert_eq!(
            settings["hooks"]["PreToolUse"][0]["hooks"][0]["command"],
            "/opt/hh/bin/hh-tool-guard"
        );
    }
}
