//! The agent's config is live (`agent/live_config.rs`), on a real agent with real sessions, the
//! user outside `docker` and root: a workspace added while the agent runs takes a session at
//! once (no restart, which would stop every session); SIGHUP checks the file and does not end
//! the agent; a version that does not load is reported in the agent's log within seconds and
//! to the user at their next start, which runs on the version that loaded last; a workspace
//! removed from the file leaves its running session running, also across an agent restart.

mod support;

use std::time::{Duration, Instant};

use support::{
    require_root,
    session_world::{World, build_test_stem},
};

fn start_in(world: &World, workspace: &str) -> (bool, String, String) {
    let output = world.hh(&[
        "session",
        "start",
        "--detach",
        "--workspace",
        workspace,
        "--template",
        "test",
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let id = stdout.lines().last().unwrap_or("").trim().to_owned();
    (
        output.status.success(),
        id,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Waits until the agent's log has `count` lines containing `text`.
fn wait_for_log(log: &std::path::Path, text: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let seen = std::fs::read_to_string(log).unwrap_or_default();
        if seen.matches(text).count() >= count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no {count}× `{text}` in the agent's log:\n{seen}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn config_changes_apply_live_and_a_broken_file_keeps_the_last_good_one() {
    if !require_root("config_changes_apply_live…") || !build_test_stem() {
        return;
    }
    let world = World::new("cr");
    let log = world.dir.path().join("agent.log");
    let agent = world.agent_logging_to("hh=info", &log);
    let original = std::fs::read_to_string(&world.config).unwrap();

    // A workspace added while the agent runs: a session starts in it, no restart.
    let later = world.user.make_dir("later", 0o755);
    world.user.write_file(
        later.join("harness-rules.toml"),
        "[network]\nallowlist = []\n",
    );
    let with_later = format!(
        "{original}[[workspaces]]\nname = \"later\"\ncanonical_path = \"{}\"\n",
        later.display()
    );
    std::fs::write(&world.config, &with_later).unwrap();
    // The change is seen without a signal…
    wait_for_log(&log, "config reloaded", 1);
    // …and SIGHUP checks again; it does not end the agent.
    // SAFETY: kill on our own child.
    unsafe { libc::kill(agent.child.id() as i32, libc::SIGHUP) };
    wait_for_log(&log, "config reloaded", 2);
    let (started, later_id, said) = start_in(&world, "later");
    assert!(started, "{said}");

    // A version that does not load: logged at once, naming the line; the next start runs on
    // the version that loaded last and says why.
    std::fs::write(&world.config, format!("{with_later}[[workspaces]\n")).unwrap();
    wait_for_log(&log, "the config does not load", 1);
    let logged = std::fs::read_to_string(&log).unwrap();
    let at = format!(
        "{}:{}:",
        world.config.display(),
        with_later.lines().count() + 1
    );
    assert!(logged.contains(&at), "no `{at}` in:\n{logged}");
    let (started, demo_id, said) = start_in(&world, "demo");
    assert!(started, "{said}");
    assert!(
        said.contains("until it is fixed, the agent uses the version") && said.contains(&at),
        "{said}"
    );
    // The agent says where it is broken, not the parser's message (it can quote the
    // root-owned file; the client's own reading of the file, when it may read it, is another
    // line).
    let agents_line = said
        .lines()
        .find(|line| line.contains("until it is fixed"))
        .unwrap();
    assert!(!agents_line.contains("unclosed"), "{said}");

    // The workspace removed from the file: its running session keeps running; a new one in
    // it is refused.
    std::fs::write(&world.config, &original).unwrap();
    wait_for_log(&log, "config reloaded", 3);
    let (code, out) = world.shell(&later_id, &["echo", "still-here"]);
    assert_eq!((code, out.trim()), (0, "still-here"), "{out}");
    let (started, _, said) = start_in(&world, "later");
    assert!(!started, "a removed workspace took a new session");
    assert!(said.contains("later"), "{said}");
    let ids: Vec<String> = world
        .sessions()
        .iter()
        .map(|session| session["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(ids.contains(&later_id) && ids.contains(&demo_id), "{ids:?}");
    // The agent is still the one started above.
    assert!(
        std::fs::metadata(format!("/proc/{}", agent.child.id())).is_ok(),
        "the agent ended"
    );
    // Not even a restart applies the new version to a running session: the agent adopts
    // each under the config it started with (the removed workspace's session too).
    agent.kill();
    let agent = world.agent_logging_to("hh=info", &world.dir.path().join("agent2.log"));
    let (code, out) = world.shell(&later_id, &["echo", "adopted"]);
    assert_eq!((code, out.trim()), (0, "adopted"), "{out}");
    for id in [&later_id, &demo_id] {
        let stopped = world.hh(&["session", "stop", id]);
        assert!(stopped.status.success());
    }
    agent.terminate();
    world.assert_nothing_left();
}
