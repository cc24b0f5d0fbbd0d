//! `hh agent` end to end: a real agent, real Docker sessions from the `test` stem, real eBPF,
//! a local HTTPS upstream on the host's loopback reached through the session's proxy.
//!
//! Inside the session nothing is configured for a proxy: curl and python resolve a test name
//! through the session's DNS stub, connect to the synthetic address, and the programs redirect
//! them to the proxy, which checks the rules, dials the upstream and re-signs with the session
//! CA the session trusts.

mod support;

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use support::{
    require_root,
    session_world::{World, build_test_stem, cgroup_mounts, wait_until},
};

/// `curl` of `url` in the session; (status code or 0, output).
fn fetch(world: &World, id: &str, url: &str) -> (u16, String) {
    let (_, out) = world.shell(id, &["curl", "-sS", "-w", "\nstatus=%{http_code}", url]);
    let status = out
        .rsplit_once("status=")
        .and_then(|(_, code)| code.trim().parse().ok())
        .unwrap_or(0);
    (status, out)
}

#[test]
fn a_changed_rules_file_is_in_force_only_once_a_person_trusts_it() {
    if !require_root("agent e2e") || !build_test_stem() {
        return;
    }
    let world = World::new("t");
    let _agent = world.agent();
    let id = world.start_session();
    let url = world.url("unknown.test", "/pulled");
    assert_eq!(fetch(&world, &id, &url).0, 403);

    // A change from the host side (a `git pull`, an editor): not in force, shown as a diff.
    let rules = std::fs::read_to_string(world.rules_file()).unwrap();
    let port = world.upstream.tls_port;
    let pulled = rules.replace(
        "\"domain=bypass.test",
        &format!("\"domain=unknown.test port={port}\", \"domain=bypass.test"),
    );
    // ... and a deny rule with it, which needs nobody's trust: a tightening counts at once.
    let pulled = pulled.replace(
        "[\"domain=denied.test\"]",
        "[\"domain=denied.test\", \"domain=allowed.test path=/live-deny\"]",
    );
    assert_ne!(pulled, rules);
    std::fs::write(world.rules_file(), &pulled).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(fetch(&world, &id, &url).0, 403);
    assert_eq!(
        fetch(&world, &id, &world.url("allowed.test", "/live-deny")).0,
        403
    );
    assert_eq!(
        fetch(&world, &id, &world.url("allowed.test", "/other")).0,
        200
    );
    let status = world.hh(&["rules", "status", "--workspace", "demo"]);
    let text = String::from_utf8_lossy(&status.stdout).to_string();
    assert_eq!(status.status.code(), Some(1), "{text}");
    assert!(
        text.contains("+ allowlist = [\"domain=allowed.test"),
        "{text}"
    );
    assert!(text.contains("\"domain=unknown.test port="), "{text}");

    // Without a terminal, `trust` trusts nothing it was not told the SHA-256 of: a session
    // may have changed the file since the person looked.
    let blind = world.hh(&["rules", "trust", "--workspace", "demo"]);
    let text = String::from_utf8_lossy(&blind.stdout).to_string();
    assert_eq!(blind.status.code(), Some(1), "{text}");
    assert!(text.contains("no terminal to ask on"), "{text}");
    assert_eq!(fetch(&world, &id, &url).0, 403);
    // Trusted, the version looked at: in force at once (the next look of the session's policy).
    let trusted = world.trust_rules();
    assert!(trusted.status.success(), "{trusted:?}");
    let (code, out) = fetch(&world, &id, &url);
    assert_eq!(code, 200, "{out}");
    let status = world.hh(&["rules", "status", "--workspace", "demo"]);
    assert_eq!(status.status.code(), Some(0), "{status:?}");

    // An edit that does not parse cannot be trusted, and the trusted version stays in force.
    std::fs::write(world.rules_file(), "[network\n").unwrap();
    let refused = world.trust_rules();
    let text = String::from_utf8_lossy(&refused.stdout).to_string();
    assert_eq!(refused.status.code(), Some(1), "{text}");
    assert!(text.contains("not trusted"), "{text}");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(fetch(&world, &id, &url).0, 200);

    // A "forever" answer given through `hh rules add` is in force at once, and does not
    // trust the rest of the file.
    std::fs::write(world.rules_file(), &rules).unwrap();
    let added = world.hh(&[
        "rules",
        "add",
        "--workspace",
        "demo",
        "deny",
        &format!("domain=unknown.test path=/added port={port}"),
    ]);
    let text = String::from_utf8_lossy(&added.stdout).to_string();
    assert!(
        added.status.success() && text.contains("(in force)"),
        "{added:?}"
    );
    assert_eq!(
        fetch(&world, &id, &world.url("unknown.test", "/added")).0,
        403
    );
    assert_eq!(fetch(&world, &id, &url).0, 200);
    let on_disk = std::fs::read_to_string(world.rules_file()).unwrap();
    assert!(on_disk.contains("path=/added") && on_disk.contains("this comment must survive"));
}

#[test]
fn a_session_reaches_allowed_hosts_through_the_proxy_and_nothing_else() {
    if !require_root("agent e2e") || !build_test_stem() {
        return;
    }
    let world = World::new("a");
    let agent = world.agent();
    let id = world.start_session();
    let sessions = world.sessions();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    // An ordinary user's session: neither root nor in `docker`.
    assert_eq!(sessions[0]["owner_uid"], world.user.uid, "{sessions:?}");
    assert!(
        !world
            .user
            .groups()
            .iter()
            .any(|group| group == "docker" || group == "root")
    );
    assert_eq!(sessions[0]["id"], id.as_str());
    assert_eq!(sessions[0]["state"], "running");

    // curl: no -k, no proxy variables; the name resolves through the session's DNS stub.
    let (code, out) = world.shell(&id, &["curl", "-sS", &world.url("allowed.test", "/hello")]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("upstream saw GET /hello host=allowed.test"),
        "{out}"
    );
    // The template's starter allowlist is a rule layer too.
    let (code, out) = world.shell(&id, &["curl", "-sS", &world.url("starter.test", "/s")]);
    assert_eq!(code, 0, "{out}");
    // python's urllib, trusting the session CA through the environment.
    let script = format!(
        "import urllib.request; print(urllib.request.urlopen('{}').read().decode())",
        world.url("allowed.test", "/py")
    );
    let (code, out) = world.shell(&id, &["python3", "-c", &script]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("upstream saw GET /py"), "{out}");

    // A denied host gets the proxy's 403 with a body an agent can act on.
    let (code, out) = world.shell(
        &id,
        &[
            "curl",
            "-sS",
            "-w",
            "\nstatus=%{http_code}",
            &world.url("denied.test", "/x"),
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("status=403"), "{out}");
    assert!(
        out.contains("hh blocked") && out.contains("domain=denied.test"),
        "{out}"
    );
    // An unknown host is asked; with no one to answer (1 s timeout here) it is denied.
    let (code, out) = fetch(&world, &id, &world.url("unknown.test", "/x"));
    assert_eq!(code, 403, "{out}");
    // A literal address that no rule names is not reachable either (no rule; asked, no answer;
    // 203.0.113.7 is TEST-NET-3, only a value to refuse: the session's connect ends at the proxy),
    // and plain HTTP is parsed, so the refusal is a readable 403.
    let (_, out) = world.shell(
        &id,
        &[
            "curl",
            "-sS",
            "-m",
            "5",
            "-w",
            "\nstatus=%{http_code}",
            "http://203.0.113.7:8080/",
        ],
    );
    assert!(
        out.contains("status=403") && out.contains("hh blocked"),
        "{out}"
    );

    // A bypass_proxy host is spliced, not intercepted: the session sees the upstream's own
    // certificate (its CA, not the session CA, verifies it) ...
    std::fs::write(
        world.workspace.join("upstream-ca.pem"),
        &world.upstream.ca_pem,
    )
    .unwrap();
    let bypass_url = world.url("bypass.test", "/spliced");
    let (code, out) = world.shell(
        &id,
        &[
            "curl",
            "-sS",
            "--cacert",
            "/workspace/upstream-ca.pem",
            &bypass_url,
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("upstream saw GET /spliced host=bypass.test"),
        "{out}"
    );
    let (code, _) = world.shell(&id, &["curl", "-sS", &bypass_url]);
    assert_ne!(
        code, 0,
        "the session CA must not verify a spliced connection"
    );
    // ... and only when the ClientHello names the bypassed host.
    let port = world.upstream.tls_port;
    let connect_to = format!("allowed.test:{port}:bypass.test:{port}");
    let (code, out) = world.shell(
        &id,
        &[
            "curl",
            "-sS",
            "-m",
            "10",
            "--cacert",
            "/workspace/upstream-ca.pem",
            "--connect-to",
            &connect_to,
            &world.url("allowed.test", "/fronted"),
        ],
    );
    assert_ne!(code, 0, "{out}");

    // The session's counters follow its proxy's decisions.
    let listed = &world.sessions()[0];
    assert!(listed["allowed"].as_u64().unwrap() >= 3, "{listed}");
    assert!(listed["denied"].as_u64().unwrap() >= 2, "{listed}");

    // The workspace is the host directory, read-write, rules file included ...
    let (code, out) = world.shell(
        &id,
        &[
            "sh",
            "-c",
            "echo from-session > /workspace/made-inside && cat /workspace/harness-rules.toml",
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("this comment must survive"));
    // ... but what a session writes there is a proposal: whether it edits the file, replaces
    // it, or plants the legacy `.hh/` one, no rule of its own is in force until a person
    // trusts it.
    let allow_all = "[network]\nallowlist = [\"domain=*\"]\n";
    for attack in [
        format!("printf '%s' '{allow_all}' >> /workspace/harness-rules.toml"),
        format!(
            "mkdir -p /workspace/.hh && printf '{allow_all}' > /workspace/.hh/harness-rules.toml"
        ),
        format!(
            "printf '{allow_all}' > /workspace/new && mv /workspace/new /workspace/harness-rules.toml"
        ),
    ] {
        let (code, out) = world.shell(&id, &["sh", "-c", &attack]);
        assert_eq!(code, 0, "`{attack}`: {out}");
        // Past the policy's reload interval (1 s): still asked, and denied for want of an answer.
        std::thread::sleep(Duration::from_millis(1500));
        let (code, out) = fetch(&world, &id, &world.url("unknown.test", "/after-edit"));
        assert_eq!(code, 403, "after `{attack}`: {out}");
    }
    let status = world.hh(&["rules", "status", "--workspace", "demo"]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert_eq!(status.status.code(), Some(1), "{text}");
    assert!(
        text.contains("CHANGED since you trusted it") && text.contains("NEVER TRUSTED"),
        "{text}"
    );
    assert!(text.contains("+ allowlist = [\"domain=*\"]"), "{text}");
    assert_eq!(
        std::fs::read_to_string(world.workspace.join("made-inside")).unwrap(),
        "from-session\n"
    );
    // Only the config's env_passthrough names come from the client.
    let (_, out) = world.shell(
        &id,
        &["sh", "-c", "echo passed=$HH_TEST_PASSED; echo path=$PATH"],
    );
    assert!(out.contains("passed=from-the-client"), "{out}");
    let (_, out) = world.shell(&id, &["sh", "-c", "echo not=$HH_TEST_NOT_PASSED"]);
    assert!(
        out.contains("not=\n") || out.trim_end().ends_with("not="),
        "{out}"
    );

    // Limits, read back from the session's cgroup.
    let relative = PathBuf::from(&world.group).join(&id);
    let memory_limit = cgroup_mounts().into_iter().find_map(|mount| {
        let dir = mount.join(&relative);
        let found = walk_find(&dir, &["memory.max", "memory.limit_in_bytes"])?;
        std::fs::read_to_string(found)
            .ok()?
            .trim()
            .parse::<u64>()
            .ok()
    });
    assert_eq!(memory_limit, Some(256 * 1024 * 1024));
    let cpu_quota = cgroup_mounts().into_iter().find_map(|mount| {
        let dir = mount.join(&relative);
        let found = walk_find(&dir, &["cpu.max", "cpu.cfs_quota_us"])?;
        std::fs::read_to_string(found).ok()
    });
    let cpu_quota = cpu_quota.expect("a cpu limit file");
    assert!(cpu_quota.starts_with("50000"), "cpu quota {cpu_quota}");

    // Seeded files are per-session copies: an edit in A is not seen in B nor on the host.
    let (code, out) = world.shell(&id, &["sh", "-c", "echo edited-in-a > /seeded.txt"]);
    assert_eq!(code, 0, "{out}");
    let second = world.start_session();
    let (_, out) = world.shell(&second, &["cat", "/seeded.txt"]);
    assert_eq!(out.trim(), "original");
    assert_eq!(std::fs::read_to_string(&world.seed).unwrap(), "original\n");

    // killme needs the session's own token; a wrong one is refused and the session stays.
    let (code, out) = world.shell(&second, &["sh", "-c", "HARNESS_HAT_TOKEN=guess killme"]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("401"), "{out}");
    assert_eq!(world.sessions().len(), 2);
    // killme from inside ends the session.
    let (code, out) = world.shell(&second, &["killme"]);
    assert_eq!(code, 0, "{out}");
    wait_until("killme ended the session", || {
        world.sessions().iter().all(|s| s["id"] != second.as_str())
    });

    let output = world.hh(&["session", "stop", &id]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(world.sessions().is_empty());
    world.assert_nothing_left();
    agent.terminate();
}

#[test]
fn a_killed_agent_leaves_sessions_cut_off_and_a_restarted_one_serves_them_again() {
    if !require_root("agent e2e") || !build_test_stem() {
        return;
    }
    let world = World::new("k");
    let agent = world.agent();
    let id = world.start_session();
    let url = world.url("allowed.test", "/before");
    let (code, out) = world.shell(&id, &["curl", "-sS", &url]);
    assert_eq!(code, 0, "{out}");

    agent.kill();
    // The programs stay attached (pinned) and redirect to listeners that are gone.
    let (code, out) = world.shell(
        &id,
        &["curl", "-sS", "-m", "5", &world.url("allowed.test", "/cut")],
    );
    assert_ne!(code, 0, "reached the network with no agent: {out}");
    // A value that must be refused, never reached: the container has Docker's `none` network,
    // and the pinned programs send the connect to a listener that is gone.
    let (code, _) = world.shell(&id, &["curl", "-sS", "-m", "5", "https://192.0.2.10/"]);
    assert_ne!(code, 0);

    let agent = world.agent();
    let sessions = world.sessions();
    assert_eq!(
        sessions.len(),
        1,
        "the restarted agent adopted the session: {sessions:?}"
    );
    let (code, out) = world.shell(&id, &["curl", "-sS", &world.url("allowed.test", "/after")]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("upstream saw GET /after"), "{out}");

    // A normal exit stops its sessions and leaves nothing.
    agent.terminate();
    world.assert_nothing_left();
}

#[test]
fn clients_see_and_act_on_their_own_sessions_only() {
    if !require_root("agent e2e") || !build_test_stem() {
        return;
    }
    let world = World::new("r");
    let agent = world.agent();
    let output = world.hh(&[
        "session",
        "start",
        "--detach",
        "--workspace",
        "nope",
        "--template",
        "test",
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no workspace `nope`"), "{stderr}");

    // The user's session, and a second user in the socket group.
    let id = world.start_session();
    let other = support::users::TestUser::create("o", &[&world.socket_group]);
    let as_nobody = |args: &[&str]| world.hh_as(&other, args);
    let listed = as_nobody(&["session", "list", "--json"]);
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let listed: Vec<serde_json::Value> = serde_json::from_slice(&listed.stdout).unwrap();
    assert!(
        listed.is_empty(),
        "the other user sees the session: {listed:?}"
    );
    let stopped = as_nobody(&["session", "stop", &id]);
    assert!(!stopped.status.success());
    assert!(String::from_utf8_lossy(&stopped.stderr).contains("no session"));
    assert_eq!(
        world.sessions().len(),
        1,
        "the session survived the other user's stop"
    );
    // The other user may not have the agent mount a workspace they cannot read.
    std::fs::set_permissions(
        &world.workspace,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let started = as_nobody(&[
        "session",
        "start",
        "--detach",
        "--workspace",
        "demo",
        "--template",
        "test",
    ]);
    assert!(!started.status.success());
    let stderr = String::from_utf8_lossy(&started.stderr);
    assert!(
        stderr.contains(&format!("uid {} may not read", other.uid)),
        "{stderr}"
    );

    let output = world.hh(&["session", "stop", &id]);
    assert!(output.status.success());
    world.assert_nothing_left();
    agent.terminate();
}

#[test]
fn an_unknown_host_waits_for_an_answer_and_allow_forever_writes_the_rule() {
    if !require_root("agent e2e") || !build_test_stem() {
        return;
    }
    let world = World::new("p");
    let agent = world.agent_asking(60);
    let id = world.start_session();
    let (curl, pending) = world.held_request(&id, "/asked");
    assert_eq!(pending[0]["session"], id.as_str(), "{pending:?}");
    assert_eq!(pending[0]["host"], "unknown.test");
    assert_eq!(pending[0]["path"], "/asked");
    let approval = pending[0]["id"].to_string();
    let answered = world.hh(&["approvals", "allow", &approval, "--forever"]);
    assert!(
        answered.status.success(),
        "{}",
        String::from_utf8_lossy(&answered.stderr)
    );
    let output = curl.wait_with_output().unwrap();
    let body = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{body}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        body.contains("upstream saw GET /asked host=unknown.test"),
        "{body}"
    );
    let rules = std::fs::read_to_string(world.rules_file()).unwrap();
    assert!(rules.contains("this comment must survive"), "{rules}");
    assert!(rules.contains("domain=unknown.test"), "{rules}");
    // The next request is decided by the saved rule: no prompt.
    let (code, out) = world.shell(&id, &["curl", "-sS", &world.url("unknown.test", "/again")]);
    assert_eq!(code, 0, "{out}");
    let listed = world.hh(&["approvals", "--json"]);
    let pending: Vec<serde_json::Value> = serde_json::from_slice(&listed.stdout).unwrap();
    assert!(pending.is_empty(), "{pending:?}");
    agent.terminate();
    world.assert_nothing_left();
}

/// The first file named one of `names` in `dir` or below (the container's own cgroup sits
/// under the session's).
fn walk_find(dir: &Path, names: &[&str]) -> Option<PathBuf> {
    let mut found = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if let Some(deeper) = walk_find(&path, names) {
                found = Some(deeper);
            }
        } else if names
            .iter()
            .any(|n| path.file_name().is_some_and(|f| f == *n))
        {
            let value = std::fs::read_to_string(&path).unwrap_or_default();
            // The session's own directory has no limit; the container's has.
            if !value.starts_with("max")
                && !value.starts_with("9223372036854771712")
                && !value.starts_with("-1")
            {
                found = Some(path);
            }
        }
    }
    found
}

/// `text` without its ANSI color sequences (`ESC [ … m`).
fn without_colors(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for next in chars.by_ref() {
                if next == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn the_log_lines_of_two_sessions_say_whose_they_are() {
    if !require_root("agent e2e") || !build_test_stem() {
        return;
    }
    let world = World::new("l");
    let log = world.dir.path().join("agent.log");
    let _agent = world.agent_logging_to("hh=debug", &log);
    let ids = [world.start_session(), world.start_session()];
    for id in &ids {
        let (code, out) = fetch(
            &world,
            id,
            &world.url("unknown.test", &format!("/from-{id}")),
        );
        assert_eq!(code, 403, "{out}");
    }
    let text = without_colors(&std::fs::read_to_string(&log).unwrap());
    for id in &ids {
        // The proxy's decision line, inside the session's span and its connection's.
        let asked = text.lines().find(|line| {
            line.contains(&format!("session{{id={id}}}"))
                && line.contains("connection{client=")
                && line.contains("no rule matched; asking")
        });
        assert!(
            asked.is_some(),
            "no decision line of session {id} in:\n{text}"
        );
    }
}

/// A grant in agent mode: the owner's `allow --for session` lets the host's next requests
/// through without a prompt; another user of the socket neither sees nor revokes it; it ends
/// with the session.
#[test]
fn a_session_grant_is_its_owners_alone_and_ends_with_the_session() {
    if !require_root("agent grants") || !build_test_stem() {
        return;
    }
    let world = World::new("g");
    let agent = world.agent_asking(60);
    let id = world.start_session();
    let (curl, pending) = world.held_request(&id, "/first");
    let approval = pending[0]["id"].to_string();
    let answered = world.hh(&["approvals", "allow", &approval, "--for", "session"]);
    assert!(
        answered.status.success(),
        "{}",
        String::from_utf8_lossy(&answered.stderr)
    );
    assert!(curl.wait_with_output().unwrap().status.success());
    // The next request of the host: no prompt (an ask would wait 60 s; curl gives up at 10).
    let (code, out) = world.shell(
        &id,
        &[
            "curl",
            "-sS",
            "-m",
            "10",
            &world.url("unknown.test", "/second"),
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("upstream saw GET /second"), "{out}");
    let grants = |output: std::process::Output| -> Vec<serde_json::Value> {
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap()
    };
    let mine = grants(world.hh(&["approvals", "grants", "--json"]));
    assert_eq!(mine.len(), 1, "{mine:?}");
    assert_eq!(mine[0]["session"], id.as_str());
    assert_eq!(mine[0]["for"], "session");
    let grant = mine[0]["id"].to_string();

    let other = support::users::TestUser::create("q", &[&world.socket_group]);
    let as_other = |args: &[&str]| world.hh_as(&other, args);
    assert!(grants(as_other(&["approvals", "grants", "--json"])).is_empty());
    let revoked = as_other(&["approvals", "revoke", &grant]);
    assert!(!revoked.status.success());
    assert_eq!(
        grants(world.hh(&["approvals", "grants", "--json"])).len(),
        1
    );

    let stopped = world.hh(&["session", "stop", &id]);
    assert!(stopped.status.success());
    assert!(grants(world.hh(&["approvals", "grants", "--json"])).is_empty());
    agent.terminate();
    world.assert_nothing_left();
}

/// `hh rules suggest`: what a session was denied for want of a rule (prompts no one
/// answered) comes back as the fewest host rules that would have admitted it — not what a deny
/// rule refused, not another user's — and `--apply 1` puts one in force at once.
#[test]
fn rules_are_suggested_from_what_was_denied_and_one_applies_at_once() {
    if !require_root("rules suggest") || !build_test_stem() {
        return;
    }
    let world = World::new("rs");
    let agent = world.agent();
    let id = world.start_session();
    for path in ["/one", "/two"] {
        // No rule, no answer within the agent's 1 s: denied.
        let (_, out) = world.shell(&id, &["curl", "-sS", &world.url("unknown.test", path)]);
        assert!(out.contains("hh blocked"), "{out}");
    }
    let (_, out) = world.shell(&id, &["curl", "-sS", &world.url("denied.test", "/")]);
    assert!(out.contains("hh blocked"), "{out}");
    // The agent takes denials in from its event stream, a moment after each 403.
    let mut suggestions: Vec<serde_json::Value> = Vec::new();
    wait_until("both denials are remembered", || {
        let listed = world.hh(&["rules", "suggest", "--workspace", "demo", "--json"]);
        assert!(
            listed.status.success(),
            "{}",
            String::from_utf8_lossy(&listed.stderr)
        );
        suggestions = serde_json::from_slice(&listed.stdout).unwrap();
        suggestions
            .first()
            .is_some_and(|first| first["covers"] == 2)
    });
    let port = world.upstream.tls_port;
    assert_eq!(suggestions.len(), 1, "{suggestions:?}");
    assert_eq!(
        suggestions[0]["rule"],
        format!("domain=unknown.test path=* port={port}")
    );
    assert_eq!(suggestions[0]["covers"], 2);
    let other = support::users::TestUser::create("r", &[&world.socket_group]);
    let theirs = world.hh_as(
        &other,
        &["rules", "suggest", "--workspace", "demo", "--json"],
    );
    assert_eq!(String::from_utf8_lossy(&theirs.stdout).trim(), "[]");

    let applied = world.hh(&["rules", "suggest", "--workspace", "demo", "--apply", "1"]);
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    assert!(String::from_utf8_lossy(&applied.stdout).contains("(in force)"));
    let rules = std::fs::read_to_string(world.rules_file()).unwrap();
    assert!(rules.contains("this comment must survive"), "{rules}");
    let (code, out) = world.shell(&id, &["curl", "-sS", &world.url("unknown.test", "/three")]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("upstream saw GET /three"), "{out}");
    let stopped = world.hh(&["session", "stop", &id]);
    assert!(stopped.status.success());
    agent.terminate();
    world.assert_nothing_left();
}
