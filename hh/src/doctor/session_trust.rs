//! `hh doctor --session ID`: which runtimes in a running session trust the session CA. A real
//! client of each runtime the session's image has fetches `https://trust-check.hh.invalid/`,
//! a name the session's proxy answers itself with a leaf the session CA signed
//! ([`crate::proxy::intercept::TRUST_CHECK_HOST`]); nothing is dialed and nothing decided, so
//! the check never prompts and never leaves the host.
//!
//! Go and Java are not probed: a Go client needs a compiled program and a Java one a class
//! file, neither of which a session has. Go reads `SSL_CERT_FILE` and the system store, both of
//! which hh sets; the JVM's own trust store is not the session's (see README).

use serde::Serialize;

use crate::proxy::intercept::{TRUST_CHECK_BODY, TRUST_CHECK_HOST};

/// One runtime's result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RuntimeTrust {
    pub runtime: String,
    pub status: TrustStatus,
    /// What the client said when it failed.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TrustStatus {
    /// Its client fetched the check through the MITM.
    Trusts,
    /// Its client refused the session's leaf, or failed otherwise.
    Fails,
    /// The image has no such runtime.
    Absent,
}

/// The shell script the session runs: one `RUNTIME<TAB>STATUS<TAB>DETAIL` line per runtime.
pub fn probe_script() -> String {
    let body = TRUST_CHECK_BODY.trim_end();
    format!(
        r#"url=https://{TRUST_CHECK_HOST}/
export HH_TRUST_URL="$url"
report() {{
    name=$1; out=$2; ok=$3
    if [ "$ok" = yes ]; then
        printf '%s\ttrusts\t\n' "$name"
    else
        printf '%s\tfails\t%s\n' "$name" "$(printf '%s' "$out" | tr '\t\n' '  ' | cut -c1-300)"
    fi
}}
check() {{
    name=$1; shift
    if ! command -v "$1" >/dev/null 2>&1; then printf '%s\tabsent\t\n' "$name"; return; fi
    out=$("$@" 2>&1 </dev/null)
    case "$out" in *'{body}'*) report "$name" "$out" yes ;; *) report "$name" "$out" no ;; esac
}}
check curl curl -sS --max-time 20 "$url"
check python python3 -c 'import os, urllib.request; print(urllib.request.urlopen(os.environ["HH_TRUST_URL"], timeout=20).read().decode())'
check node node -e 'fetch(process.env.HH_TRUST_URL).then(r => r.text()).then(t => console.log(t), e => console.log(String(e.cause || e)))'
check bun bun -e 'try {{ console.log(await (await fetch(process.env.HH_TRUST_URL)).text()) }} catch (e) {{ console.log(String(e)) }}'
check deno deno eval 'try {{ console.log(await (await fetch(Deno.env.get("HH_TRUST_URL"))).text()) }} catch (e) {{ console.log(String(e)) }}'
check ruby ruby -rnet/http -e 'puts Net::HTTP.get(URI(ENV["HH_TRUST_URL"]))'
check php php -r 'echo file_get_contents(getenv("HH_TRUST_URL"));'
# git asks for a repository the check is not; reaching that answer over TLS is trusting it.
if command -v git >/dev/null 2>&1; then
    out=$(git ls-remote "$url" 2>&1 </dev/null)
    case "$out" in
        *certificate*|*SSL*|*TLS*) report git "$out" no ;;
        *"not valid"*|*"repository"*) report git "$out" yes ;;
        *) report git "$out" no ;;
    esac
else
    printf 'git\tabsent\t\n'
fi
"#
    )
}

/// The probe's output, line by line; lines that are not the probe's are ignored.
pub fn parse(output: &str) -> Vec<RuntimeTrust> {
    output
        .lines()
        .filter_map(|line| {
            let mut fields = line.splitn(3, '\t');
            let runtime = fields.next()?;
            let status = match fields.next()? {
                "trusts" => TrustStatus::Trusts,
                "fails" => TrustStatus::Fails,
                "absent" => TrustStatus::Absent,
                _ => return None,
            };
            let ok = !runtime.is_empty()
                && runtime
                    .bytes()
                    .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit());
            ok.then(|| RuntimeTrust {
                runtime: runtime.to_owned(),
                status,
                detail: fields.next().unwrap_or_default().trim().to_owned(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probes_lines_are_read_and_anything_else_ignored() {
        let output = "curl\ttrusts\t\nnode\tfails\tunable to verify the first certificate\n\
                      noise\nruby\tabsent\t\nBAD\ttrusts\t\nphp\tmaybe\t\n";
        let parsed = parse(output);
        assert_eq!(
            parsed
                .iter()
                .map(|r| (r.runtime.as_str(), r.status))
                .collect::<Vec<_>>(),
            [
                ("curl", TrustStatus::Trusts),
                ("node", TrustStatus::Fails),
                ("ruby", TrustStatus::Absent)
            ]
        );
        assert_eq!(parsed[1].detail, "unable to verify the first certificate");
    }

    #[test]
    fn the_probe_is_a_shell_script_sh_accepts() {
        let status = std::process::Command::new("sh")
            .args(["-n", "-c", &probe_script()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}
