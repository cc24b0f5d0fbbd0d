//! The real coding-agent CLIs in real sessions, as an ordinary user: `hh run --harness NAME`
//! runs Claude Code and Codex (their released binaries, in the `hh-test-agents` image `cargo
//! xtask image` makes) against local stand-ins of their APIs, reached through the MITM with the
//! session CA; the credentials reach only sessions of that harness; telemetry is denied up front
//! so that a headless run never waits on a prompt.

mod support;

use std::{
    io::{BufRead as _, BufReader},
    process::{Output, Stdio},
    time::{Duration, Instant},
};

use support::{
    llm::{LlmStandIn, REPLY, RUN_TOOL},
    require_root,
    user_world::UserWorld,
};

const AGENTS_IMAGE: &str = "hh-test-agents";

/// A phrase of hh's network note for agents (`hh::harness::NETWORK_NOTE`).
const NOTE_MARKER: &str = "mediated by hh";

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Whether the agents image is there; in CI it must be (`cargo xtask test` builds it).
fn agents_image() -> bool {
    let present = std::process::Command::new("docker")
        .args(["image", "inspect", AGENTS_IMAGE])
        .output()
        .is_ok_and(|output| output.status.success());
    assert!(
        present || std::env::var_os("CI").is_none(),
        "CI must have the {AGENTS_IMAGE} image (`cargo xtask image` builds it)"
    );
    if !present {
        eprintln!("skipping: no {AGENTS_IMAGE} image (run `cargo xtask image`)");
    }
    present
}

/// A world whose agent resolves the stand-ins' names to loopback and trusts their CA, with a
/// template on the agents image and alice's workspace rules allowing the stand-ins (trusted).
fn world(standin: &LlmStandIn, ca: &std::path::Path) -> UserWorld {
    world_with(standin, ca, "")
}

/// The stand-ins of the model APIs, their CA written to a file, and a [`world_with`] `extra`
/// that reaches them; the directory holds the CA for as long as it lives.
fn standins(gap: Duration, extra: &str) -> (LlmStandIn, tempfile::TempDir, UserWorld) {
    let standin = LlmStandIn::start(
        &[
            "api.anthropic.test",
            "api.openai.test",
            "statsig.anthropic.com",
        ],
        gap,
    );
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("standin-ca.pem");
    std::fs::write(&ca, &standin.ca_pem).unwrap();
    let world = world_with(&standin, &ca, extra);
    (standin, dir, world)
}

/// [`world`] whose config ends with `extra` too.
fn world_with(standin: &LlmStandIn, ca: &std::path::Path, extra: &str) -> UserWorld {
    let ca = ca.display().to_string();
    let world = UserWorld::with(
        &[
            "--resolve",
            "api.anthropic.test=127.0.0.1",
            "--resolve",
            "api.openai.test=127.0.0.1",
            "--resolve",
            "statsig.anthropic.com=127.0.0.1",
            "--upstream-ca",
            &ca,
        ],
        &format!("[container_profiles.agents]\nimage = \"test-agents\"\n{extra}"),
    );
    let rules = world.alice.home.join("proj/harness-rules.toml");
    world.alice.write_file(
        &rules,
        format!(
            "[network]\nallowlist = [\"domain=api.anthropic.test port={port}\", \
             \"domain=api.openai.test port={port}\"]\n",
            port = standin.tls_port
        ),
    );
    world.trust_rules(&world.alice, "demo");
    world
}

/// `hh run --json` as alice with `env`; every JSON line with the time it arrived.
fn run_json(
    world: &UserWorld,
    harness: &str,
    env: &[(&str, String)],
    extra: &[&str],
) -> (Option<i32>, Vec<(Duration, serde_json::Value)>, String) {
    run_json_asking(world, harness, env, extra, "Say the magic word.")
}

/// [`run_json`] with `prompt`.
fn run_json_asking(
    world: &UserWorld,
    harness: &str,
    env: &[(&str, String)],
    extra: &[&str],
    prompt: &str,
) -> (Option<i32>, Vec<(Duration, serde_json::Value)>, String) {
    let mut args = vec![
        "run",
        "--workspace",
        "demo",
        "--template",
        "agents",
        "--harness",
        harness,
        "--json",
        "--timeout",
        "120",
    ];
    args.extend_from_slice(extra);
    args.push(prompt);
    let mut command = world.hh(&world.alice, &args);
    for (key, value) in env {
        command.env(key, value);
    }
    let started = Instant::now();
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let value: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|error| panic!("not a JSON line ({error}): {line}"));
        lines.push((started.elapsed(), value));
    }
    let output = child.wait_with_output().unwrap();
    (
        output.status.code(),
        lines,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn events<'a>(
    lines: &'a [(Duration, serde_json::Value)],
    kind: &'a str,
) -> impl Iterator<Item = &'a (Duration, serde_json::Value)> + 'a {
    lines.iter().filter(move |(_, line)| line["event"] == kind)
}

fn stdout_text(lines: &[(Duration, serde_json::Value)]) -> String {
    events(lines, "output")
        .filter(|(_, line)| line["stream"] == "stdout")
        .map(|(_, line)| line["text"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn claude_code_and_codex_answer_a_prompt_through_the_mitm_as_an_ordinary_user() {
    if !require_root("harness e2e") || !agents_image() {
        return;
    }
    let (standin, _dir, world) = standins(Duration::from_millis(50), "");
    let base = |host: &str| format!("https://{host}:{}", standin.tls_port);

    // Claude Code: its key and base URL pass through (they are its harness's credentials).
    let (code, lines, stderr) = run_json(
        &world,
        "claude",
        &[
            ("ANTHROPIC_API_KEY", "sk-ant-test-alice".into()),
            ("ANTHROPIC_BASE_URL", base("api.anthropic.test")),
            ("OPENAI_API_KEY", "sk-openai-not-for-claude".into()),
        ],
        // Another harness's credentials never reach this one's session.
        &[
            "--setup-script",
            "if env | grep -q not-for-claude; then echo leaked >&2; exit 9; fi",
        ],
    );
    let said = stdout_text(&lines);
    assert_eq!(code, Some(0), "{said}\n{stderr}\n{lines:?}");
    assert!(said.contains(REPLY), "{said}\n{stderr}");
    let started = events(&lines, "started").next().expect("a started event");
    assert_eq!(started.1["harness"], "claude");
    assert_eq!(started.1["image"], AGENTS_IMAGE);
    let finished = events(&lines, "finished").next().expect("a finished event");
    assert_eq!(finished.1["status"], 0);
    let seen = standin.seen();
    let messages: Vec<_> = seen
        .iter()
        .filter(|seen| seen.method == "POST" && seen.path.starts_with("/v1/messages"))
        .collect();
    assert!(!messages.is_empty(), "{seen:?}");
    assert!(
        messages
            .iter()
            .all(|seen| seen.key.as_deref() == Some("sk-ant-test-alice")),
        "{messages:?}"
    );
    // hh's network note (in the session's ~/.claude/CLAUDE.md) reached the model.
    assert!(
        messages.iter().any(|seen| seen.body.contains(NOTE_MARKER)),
        "Claude Code's requests carry hh's network note"
    );

    // Codex, in a session of its own harness: its key, and not Claude's.
    let codex_config = format!(
        "mkdir -p ~/.codex && printf '%s\\n' 'model_provider = \"standin\"' 'model = \"gpt-test\"' \
         '[model_providers.standin]' 'name = \"standin\"' 'base_url = \"{}/v1\"' \
         'env_key = \"OPENAI_API_KEY\"' 'wire_api = \"responses\"' > ~/.codex/config.toml \
         && if env | grep -q not-for-codex; then echo leaked >&2; exit 9; fi",
        base("api.openai.test")
    );
    let (code, lines, stderr) = run_json(
        &world,
        "codex",
        &[
            ("OPENAI_API_KEY", "sk-openai-test-alice".into()),
            ("ANTHROPIC_API_KEY", "sk-ant-not-for-codex".into()),
        ],
        // Codex takes another API only from its config (the session's home is its own).
        &["--setup-script", &codex_config],
    );
    let said = stdout_text(&lines);
    assert_eq!(code, Some(0), "{said}\n{stderr}\n{lines:?}");
    assert!(said.contains(REPLY), "{said}\n{stderr}");
    let seen = standin.seen();
    let responses: Vec<_> = seen
        .iter()
        .filter(|seen| seen.method == "POST" && seen.path.ends_with("/responses"))
        .collect();
    assert!(!responses.is_empty(), "{seen:?}");
    assert!(
        responses
            .iter()
            .all(|seen| seen.key.as_deref() == Some("Bearer sk-openai-test-alice")),
        "{responses:?}"
    );
    // hh's network note (in the session's ~/.codex/AGENTS.md) reached the model.
    assert!(
        responses.iter().any(|seen| seen.body.contains(NOTE_MARKER)),
        "Codex's requests carry hh's network note"
    );

    // Its telemetry was refused by the harness's own layer at once: nobody was asked (a prompt
    // would have held the run for the agent's 30 s ask timeout).
    let denied: Vec<_> = events(&lines, "denied").collect();
    assert!(
        denied
            .iter()
            .any(|(_, line)| line["host"] == "ab.chatgpt.com"
                && line["rule"]
                    .as_str()
                    .is_some_and(|rule| rule.contains("harness codex (built into hh)"))),
        "{denied:?}"
    );
    let finished = events(&lines, "finished").next().expect("a finished event");
    assert!(finished.0 < Duration::from_secs(25), "{:?}", finished.0);

    // An interactive session of a harness runs the CLI in the session's tmux, to attach to.
    let started = world
        .hh(
            &world.alice,
            &[
                "session",
                "start",
                "--detach",
                "--workspace",
                "demo",
                "--template",
                "agents",
                "--harness",
                "claude",
            ],
        )
        .env("ANTHROPIC_API_KEY", "sk-ant-test-alice")
        .env("ANTHROPIC_BASE_URL", base("api.anthropic.test"))
        .output()
        .unwrap();
    assert!(started.status.success(), "{}", text(&started));
    let id = String::from_utf8_lossy(&started.stdout).trim().to_owned();
    let mut panes = String::new();
    for _ in 0..50 {
        let listed = world
            .hh(
                &world.alice,
                &[
                    "shell",
                    &id,
                    "--",
                    "tmux",
                    "list-panes",
                    "-t",
                    "hh",
                    "-F",
                    "#{pane_current_command}",
                ],
            )
            .output()
            .unwrap();
        panes = text(&listed);
        if panes.contains("claude") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(panes.contains("claude"), "{panes}");
    let stopped = world
        .hh(&world.alice, &["session", "stop", &id])
        .output()
        .unwrap();
    assert!(stopped.status.success(), "{}", text(&stopped));

    // The audit log shows the intercepted API calls, each decided by alice's rule.
    let audit = std::fs::read_to_string(world.state.join("logs/audit.jsonl")).unwrap();
    for host in ["api.anthropic.test", "api.openai.test"] {
        assert!(
            audit
                .lines()
                .any(|line| line.contains(host) && line.contains("\"allow\"")),
            "no allowed request to {host} in the audit log:\n{audit}"
        );
    }
}

#[test]
fn a_failing_setup_script_stops_the_run_with_its_stderr_and_the_session_is_gone() {
    if !require_root("harness e2e") || !agents_image() {
        return;
    }
    let standin = LlmStandIn::start(&["api.anthropic.test"], Duration::ZERO);
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("standin-ca.pem");
    std::fs::write(&ca, &standin.ca_pem).unwrap();
    let world = world(&standin, &ca);
    let (code, lines, stderr) = run_json(
        &world,
        "claude",
        &[],
        &["--setup-script", "echo cannot install >&2; exit 3"],
    );
    assert_eq!(code, Some(3), "{stderr}\n{lines:?}");
    let failed = events(&lines, "setup_failed").next().expect("setup_failed");
    assert_eq!(failed.1["status"], 3);
    assert_eq!(failed.1["stderr"], "cannot install\n");
    assert!(events(&lines, "finished").next().is_none());
    assert!(
        standin.seen().is_empty(),
        "the agent ran: {:?}",
        standin.seen()
    );
    let listed = world
        .hh(&world.alice, &["session", "list", "--json"])
        .output()
        .unwrap();
    let sessions: Vec<serde_json::Value> = serde_json::from_slice(&listed.stdout).unwrap();
    assert!(sessions.is_empty(), "{sessions:?}");
}

/// A harness the config defines (`[harnesses.NAME]`) runs like a built-in one: its one-shot
/// command with the prompt, its credential passed through to its session only, its fixed
/// environment, hh's network note in its instructions file, and its deny rules in force at
/// once (a layer of its own, named after the config).
#[test]
fn a_harness_defined_in_the_config_runs_like_a_built_in_one() {
    if !require_root("config harness e2e") || !support::session_world::build_test_stem() {
        return;
    }
    let world = UserWorld::with(
        &[],
        "[harnesses.echoer]\ntitle = \"Echoer\"\ninteractive = [\"sh\"]\n\
         one_shot = [\"sh\", \"-c\", \"echo \\\"echoer got: $0 token=${ECHOER_TOKEN:-none} \
         other=${OTHER_TOKEN:-none} mode=$ECHOER_MODE\\\"; \
         grep -q 'mediated by hh' \\\"$HOME/.echoer/NOTES.md\\\" && echo note-present; \
         echo \\\"config=$(cat $HOME/.echoer/config.txt)\\\"; echo changed > $HOME/.echoer/config.txt; \
         curl -s http://telemetry.echoer.test/ | head -1\"]\n\
         global_instructions = \".echoer/NOTES.md\"\nauth_env = [\"ECHOER_TOKEN\"]\n\
         seed = [\".echoer\"]\n\
         env = { ECHOER_MODE = \"fixed\" }\ndeny = [\"domain=telemetry.echoer.test\"]\n\
         [defaults.containers]\nseed_harness_config = true\n",
    );
    // Alice's own config of it: copied into the session, never written there.
    let own = world.alice.make_dir(".echoer", 0o755);
    world.alice.write_file(own.join("config.txt"), "alice's\n");
    let output = world
        .hh(
            &world.alice,
            &[
                "run",
                "--workspace",
                "demo",
                "--template",
                "test",
                "--harness",
                "echoer",
                "--timeout",
                "60",
                "say hi",
            ],
        )
        .env("ECHOER_TOKEN", "tok-echoer")
        .env("OTHER_TOKEN", "tok-other")
        .output()
        .unwrap();
    let out = text(&output);
    assert!(output.status.success(), "{out}");
    assert!(
        out.contains("echoer got: say hi token=tok-echoer other=none mode=fixed"),
        "{out}"
    );
    assert!(out.contains("note-present"), "{out}");
    assert!(out.contains("config=alice's"), "her config, seeded: {out}");
    assert!(out.contains("hh blocked"), "its deny rule: {out}");
    // The session wrote its copy: hers is as it was, and got no note.
    assert_eq!(
        std::fs::read_to_string(own.join("config.txt")).unwrap(),
        "alice's\n"
    );
    assert!(
        !own.join("NOTES.md").exists(),
        "the note went into her own directory"
    );
}

/// Credential injection with the real Claude Code: alice's key lives in her `hh`'s environment
/// only; her session, the CLI and everything it runs see a placeholder, which the proxy turns
/// into the key only in Claude's requests to its API host, in `x-api-key`. The placeholder sent
/// anywhere else is refused (and audited), never filled in.
#[test]
fn claude_code_works_with_a_key_that_never_enters_its_session() {
    if !require_root("credential injection") || !agents_image() {
        return;
    }
    // Written in two halves wherever a process in the session would see it, so that only the
    // key itself, never the search for it, can match.
    const KEY_HALVES: (&str, &str) = ("sk-ant-REAL", "-alice-0123456789");
    const KEY: &str = "sk-ant-REAL-alice-0123456789";
    let (standin, _dir, world) = standins(
        Duration::from_millis(20),
        "[[secrets]]\nname = \"anthropic\"\nenv = \"ANTHROPIC_API_KEY\"\n\
         hosts = [\"api.anthropic.test\"]\nheader = \"x-api-key\"\npath_prefix = \"/v1/\"\n",
    );
    let base = |host: &str| format!("https://{host}:{}", standin.tls_port);
    // Everything of the session a process in it can read, searched for the key: its
    // environment and every process's, its files (home, workspace, hh's own), the mounts.
    let search = format!(
        "case \"$ANTHROPIC_API_KEY\" in hh-placeholder-anthropic-*) ;; *) echo no-placeholder >&2; exit 8;; esac; \
         if printf '%s%s\\n' {first} {second} | grep -rqsF -f - /proc/[0-9]*/environ \
              /proc/[0-9]*/cmdline \"$HOME\" \"$HH_WORKSPACE\" /opt/hh /etc /tmp; \
         then echo leaked >&2; exit 9; fi",
        first = KEY_HALVES.0,
        second = KEY_HALVES.1,
    );
    let (code, lines, stderr) = run_json(
        &world,
        "claude",
        &[
            ("ANTHROPIC_API_KEY", KEY.into()),
            ("ANTHROPIC_BASE_URL", base("api.anthropic.test")),
        ],
        &["--setup-script", &search],
    );
    let said = stdout_text(&lines);
    assert_eq!(code, Some(0), "{said}\n{stderr}\n{lines:?}");
    assert!(said.contains(REPLY), "{said}\n{stderr}");
    assert!(!said.contains(KEY) && !stderr.contains(KEY));
    let seen = standin.seen();
    let messages: Vec<_> = seen
        .iter()
        .filter(|seen| seen.method == "POST" && seen.path.starts_with("/v1/messages"))
        .collect();
    assert!(!messages.is_empty(), "{seen:?}");
    assert!(
        messages.iter().all(|seen| seen.key.as_deref() == Some(KEY)),
        "the real key arrived: {messages:?}"
    );

    // The placeholder sent elsewhere — another allowed host, another header, the URL — is
    // refused with a 403 that says so; the stand-in never sees it, let alone the key.
    let before = standin.seen().len();
    let probes = format!(
        "for args in \"-H x-api-key:$ANTHROPIC_API_KEY {openai}/v1/models\" \
                    \"-H authorization:Bearer.$ANTHROPIC_API_KEY {anthropic}/v1/messages\" \
                    \"{anthropic}/v1/messages?key=$ANTHROPIC_API_KEY\"; do \
           curl -s -o /dev/null -w '%{{http_code}} ' $args >&2; done",
        openai = base("api.openai.test"),
        anthropic = base("api.anthropic.test"),
    );
    let (code, lines, stderr) = run_json(
        &world,
        "claude",
        &[
            ("ANTHROPIC_API_KEY", KEY.into()),
            ("ANTHROPIC_BASE_URL", base("api.anthropic.test")),
        ],
        &["--setup-script", &format!("{probes}; exit 3")],
    );
    assert_eq!(code, Some(3), "{lines:?}\n{stderr}");
    let failed = events(&lines, "setup_failed").next().expect("setup_failed");
    assert_eq!(failed.1["stderr"], "403 403 403 ", "{lines:?}");
    assert_eq!(standin.seen().len(), before, "{:?}", standin.seen());
    let audit = std::fs::read_to_string(world.state.join("logs/audit.jsonl")).unwrap();
    let findings: Vec<&str> = audit
        .lines()
        .filter(|line| line.contains("secret anthropic's placeholder"))
        .collect();
    assert_eq!(findings.len(), 3, "{audit}");
    assert!(!audit.contains(KEY), "the key is in the audit log");
}

/// hh's tool guards with the real Claude Code: its managed settings are in the session,
/// read-only (the session's user cannot change them), and when the model asks Claude Code to
/// read a process's environment, hh's PreToolUse hook refuses it and the model is told why.
#[test]
fn claude_code_runs_under_hhs_managed_settings_and_its_hook_refuses_reading_the_environment() {
    if !require_root("agent guards") || !agents_image() {
        return;
    }
    let (standin, _dir, world) = standins(Duration::from_millis(10), "");
    let base = |host: &str| format!("https://{host}:{}", standin.tls_port);
    let settings = "/etc/claude-code/managed-settings.json";
    let check = format!(
        "grep -q hh-tool-guard {settings} || exit 7; \
         if test -w {settings} || (echo x >> {settings}) 2>/dev/null; then exit 8; fi"
    );
    let (code, lines, stderr) = run_json_asking(
        &world,
        "claude",
        &[
            ("ANTHROPIC_API_KEY", "sk-ant-test-alice".into()),
            ("ANTHROPIC_BASE_URL", base("api.anthropic.test")),
        ],
        &["--setup-script", &check],
        &format!("{RUN_TOOL}cat /proc/self/environ"),
    );
    assert!(
        events(&lines, "setup_failed").next().is_none(),
        "the managed settings are not in place, or are writable: {lines:?}"
    );
    let said = stdout_text(&lines);
    assert_eq!(code, Some(0), "{said}\n{stderr}\n{lines:?}");
    let seen = standin.seen();
    let results: Vec<_> = seen
        .iter()
        .filter(|seen| seen.path.starts_with("/v1/messages") && seen.body.contains("tool_result"))
        .collect();
    assert!(
        !results.is_empty(),
        "Claude Code never sent the tool's result: {seen:?}"
    );
    assert!(
        results.iter().any(|seen| seen
            .body
            .contains("hh: blocked: it reads a process's environment")),
        "the hook's refusal reached the model: {results:?}"
    );
    assert!(said.contains(REPLY), "{said}");
}

/// Every request a tool call makes is tied to it: the real Claude Code runs hh's hook before and
/// after its Bash tool, the hook tells the session's control server, and the audit line of the
/// request the tool's curl made names the call (`tool_use_ids`) and the process (curl, with its
/// command line); the model's own requests, made while no tool ran, name none.
#[test]
fn a_request_a_tool_call_made_names_that_call_in_its_audit_line() {
    if !require_root("agent tool calls") || !agents_image() {
        return;
    }
    let (standin, _dir, world) = standins(Duration::from_millis(10), "");
    let base = |host: &str| format!("https://{host}:{}", standin.tls_port);
    let fetch = format!(
        "curl -s -o /dev/null {}/from-the-tool",
        base("api.anthropic.test")
    );
    // The user's own Claude settings (in the session's home) let the model's curl run
    // without asking.
    let allow_curl = r#"mkdir -p ~/.claude && echo '{"permissions":{"allow":["Bash(curl:*)"]}}' > ~/.claude/settings.json"#;
    let (code, lines, stderr) = run_json_asking(
        &world,
        "claude",
        &[
            ("ANTHROPIC_API_KEY", "sk-ant-test-alice".into()),
            ("ANTHROPIC_BASE_URL", base("api.anthropic.test")),
        ],
        &["--setup-script", allow_curl],
        &format!("{RUN_TOOL}{fetch}"),
    );
    assert_eq!(code, Some(0), "{lines:?}\n{stderr}");
    assert!(
        standin
            .seen()
            .iter()
            .any(|seen| seen.path == "/from-the-tool"),
        "the tool's curl never reached the stand-in: {lines:?}\n{stderr}"
    );
    let audit = std::fs::read_to_string(world.state.join("logs/audit.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = audit
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let tool = lines
        .iter()
        .find(|line| line["path"] == "/from-the-tool")
        .unwrap_or_else(|| panic!("no audit line for the tool's request:\n{audit}"));
    assert_eq!(
        tool["tool_use_ids"],
        serde_json::json!(["toolu_standin"]),
        "{tool}"
    );
    assert_eq!(tool["client_comm"], "curl", "{tool}");
    assert!(
        tool["client_cmdline"]
            .as_str()
            .is_some_and(|cmdline| cmdline.ends_with("/from-the-tool")),
        "{tool}"
    );
    let first_model_call = lines
        .iter()
        .find(|line| {
            line["path"]
                .as_str()
                .is_some_and(|path| path.starts_with("/v1/messages"))
        })
        .unwrap_or_else(|| panic!("no audit line for the model's requests:\n{audit}"));
    assert!(
        first_model_call.get("tool_use_ids").is_none(),
        "{first_model_call}"
    );
}
