//! A workspace with `mount_at_host_path = true` is seen in its sessions at its host path, not
//! `/workspace` (agents key history and `--resume` on the working directory): a real session
//! as an ordinary user starts there, `hh shell` runs there, the protected paths are read-only
//! there, and `HH_WORKSPACE` names it. Her git identity (her `user.name`, `user.email`) is the
//! session's author and committer.

mod support;

use support::{
    require_root,
    session_world::{World, build_test_stem},
};

#[test]
fn a_workspace_mounted_at_its_host_path_is_worked_on_there() {
    if !require_root("sessions at the workspace's host path") || !build_test_stem() {
        return;
    }
    let world = World::new("hp");
    let project = world.user.make_dir("src/hostproj", 0o755);
    world.user.make_dir("src/hostproj/.git/hooks", 0o755);
    world
        .user
        .write_file(project.join(".git/config"), "[core]\n\tbare = false\n");
    world.user.write_file(
        project.join("harness-rules.toml"),
        "[network]\nallowlist = []\n",
    );
    world
        .user
        .write_file(project.join("hello.txt"), "hello from the host\n");
    // Her git identity, which her sessions commit as (git_identity, on by default).
    world.user.write_file(
        world.user.home.join(".gitconfig"),
        "[user]\n\tname = Ada Tester\n\temail = ada@example.test\n",
    );
    let config = std::fs::read_to_string(&world.config).unwrap();
    std::fs::write(
        &world.config,
        format!(
            "{config}[[workspaces]]\nname = \"hostpath\"\ncanonical_path = \"{}\"\n\
             mount_at_host_path = true\n",
            project.display()
        ),
    )
    .unwrap();
    let agent = world.agent();
    let (id, _) = world.start_in("hostpath", "test");
    let (code, out) = world.shell(
        &id,
        &[
            "sh",
            "-c",
            "pwd; cat hello.txt; echo \"ws=$HH_WORKSPACE\"; \
             if echo x >> .git/config 2>/dev/null; then echo written; else echo protected; fi; \
             echo made > made.txt; echo \"author=$GIT_AUTHOR_NAME <$GIT_AUTHOR_EMAIL>\"; \
             echo \"committer=$GIT_COMMITTER_NAME <$GIT_COMMITTER_EMAIL>\"",
        ],
    );
    assert_eq!(code, 0, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines.first().copied(),
        Some(project.to_str().unwrap()),
        "{out}"
    );
    assert!(out.contains("hello from the host"), "{out}");
    assert!(out.contains(&format!("ws={}", project.display())), "{out}");
    assert!(
        out.contains("protected") && !out.contains("written"),
        "{out}"
    );
    assert!(
        out.contains("author=Ada Tester <ada@example.test>")
            && out.contains("committer=Ada Tester <ada@example.test>"),
        "her git identity: {out}"
    );
    // What the session wrote there is in the host's directory.
    assert_eq!(
        std::fs::read_to_string(project.join("made.txt")).unwrap(),
        "made\n"
    );
    let stopped = world.hh(&["session", "stop", &id]);
    assert!(stopped.status.success());
    agent.terminate();
    world.assert_nothing_left();
}
