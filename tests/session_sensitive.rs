//! Before a session starts, the workspace's files whose names say they hold secrets are named
//! with their severity (the session, and its agent, can read everything there); one of high
//! severity makes an interactive start ask first, and "no" starts nothing. The workspace's
//! `sensitive_allow` leaves out what is meant to be there. A real agent, an ordinary user.

mod support;

use std::time::Duration;

use support::{
    require_root,
    session_world::{World, build_test_stem},
    tmux::Tmux,
};

#[test]
fn secrets_in_the_workspace_are_named_before_a_start_and_an_interactive_one_asks() {
    if !require_root("the sensitive-file scan before a start") || !build_test_stem() {
        return;
    }
    let world = World::new("sf");
    world.user.make_dir("workspace/deploy", 0o755);
    world.user.make_dir("workspace/fixtures", 0o755);
    for (file, text) in [
        (".env", "API_KEY=live\n"),
        ("deploy/server.key", "key\n"),
        ("fixtures/sample.pem", "a test key\n"),
        (".env.example", "API_KEY=\n"),
    ] {
        world.user.write_file(world.workspace.join(file), text);
    }
    let config = std::fs::read_to_string(&world.config).unwrap();
    std::fs::write(
        &world.config,
        format!(
            "{config}[[workspaces.sensitive_allow]]\npath = \"fixtures/sample.pem\"\n\
             reason = \"the tests' own key\"\n"
        ),
    )
    .unwrap();
    let agent = world.agent();

    // Detached: said, not asked.
    let (id, said) = world.start_in("demo", "test");
    assert!(
        said.contains("high   .env  (environment secrets (.env))"),
        "{said}"
    );
    assert!(said.contains("high   deploy/server.key"), "{said}");
    assert!(said.contains("low    .env.example"), "{said}");
    assert!(!said.contains("sample.pem"), "the allowed file: {said}");
    assert!(world.hh(&["session", "stop", &id]).status.success());

    // Interactive: asked; "n" starts nothing.
    let tmux = Tmux::start(
        &format!("sf{}", std::process::id()),
        &world.hh_line(
            "",
            "session start --workspace demo --template test; sleep 30",
        ),
    );
    tmux.wait_for("start the session anyway? [y/N]", Duration::from_secs(20));
    tmux.keys(&["n", "Enter"]);
    tmux.wait_for("the session was not started", Duration::from_secs(10));
    assert!(world.sessions().is_empty(), "{:?}", world.sessions());
    drop(tmux);
    agent.terminate();
    world.assert_nothing_left();
}
