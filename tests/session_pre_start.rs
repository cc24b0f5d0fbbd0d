//! A workspace's `pre_start`, for real: it runs in each session first — in the workspace, as
//! the session's user, with the session's network already enforced, before the session's own
//! command — and a `pre_start` that fails stops the start with what it said, leaving nothing
//! behind. As an ordinary user.

mod support;

use support::{
    require_root,
    session_world::{World, build_test_stem, wait_until},
};

#[test]
fn pre_start_runs_first_in_the_session_and_its_failure_stops_the_start() {
    if !require_root("pre_start") || !build_test_stem() {
        return;
    }
    let world = World::new("ps");
    let denied = world.url("denied.test", "/");
    let config = std::fs::read_to_string(&world.config).unwrap();
    let with_pre_start = |command: &str| {
        config.replace(
            "name = \"demo\"\n",
            &format!("name = \"demo\"\npre_start = {command:?}\n"),
        )
    };
    std::fs::write(
        &world.config,
        with_pre_start(&format!(
            "echo \"$(id -u) $(pwd)\" > pre-start.txt; \
             curl -s -o /dev/null -w '%{{http_code}}' {denied} > pre-start-net.txt || true; \
             touch /tmp/pre-start-ran"
        )),
    )
    .unwrap();
    let agent = world.agent();
    let (id, _) = world.start_running(
        "demo",
        "test",
        &[
            "sh",
            "-c",
            "if test -e /tmp/pre-start-ran; then echo after > /tmp/order; else echo before > /tmp/order; fi; \
             exec sleep infinity",
        ],
    );
    // In the workspace, as her.
    assert_eq!(
        std::fs::read_to_string(world.workspace.join("pre-start.txt")).unwrap(),
        format!("{} /workspace\n", world.user.uid)
    );
    // The session's network was enforced already: the denied host got the proxy's 403.
    assert_eq!(
        std::fs::read_to_string(world.workspace.join("pre-start-net.txt")).unwrap(),
        "403"
    );
    // Before the session's own command (which init starts once the session is ready, so a
    // moment after the start returned).
    wait_until("the session's command ran", || {
        world.shell(&id, &["test", "-e", "/tmp/order"]).0 == 0
    });
    let (code, out) = world.shell(&id, &["cat", "/tmp/order"]);
    assert_eq!((code, out.trim()), (0, "after"), "{out}");
    let stopped = world.hh(&["session", "stop", &id]);
    assert!(stopped.status.success());

    // A failing pre_start: no session, and the start says why.
    std::fs::write(
        &world.config,
        with_pre_start("echo 'the database did not come up' >&2; exit 7"),
    )
    .unwrap();
    let output = world.start_output("demo", "test", &[]);
    let said = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "{said}");
    assert!(
        said.contains("pre_start exited 7") && said.contains("the database did not come up"),
        "{said}"
    );
    assert!(world.sessions().is_empty());
    agent.terminate();
    world.assert_nothing_left();
}
