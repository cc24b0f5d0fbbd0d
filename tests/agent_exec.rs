//! `hh shell` and `hh attach` through the agent, as ordinary users: two real accounts in the
//! agent's socket group, neither in `docker` (whose socket is root on the host). The owner runs
//! commands (streams, exit status, stdin), an interactive shell (tmux types, reads the echo,
//! resizes the terminal, presses Ctrl-C, reads the exit status) and re-attaches to the
//! session's tmux; the other user can reach none of it.

mod support;

use std::{
    io::Write as _,
    process::{Output, Stdio},
    time::Duration,
};

use support::{
    require_root, session_world::build_test_stem, tmux::Tmux, user_world::UserWorld,
    users::TestUser,
};

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `sh -c script` in session `id`, as alice through `hh shell`.
fn alice_sh(world: &UserWorld, id: &str, script: &str) -> Output {
    world
        .hh(&world.alice, &["shell", id, "--", "sh", "-c", script])
        .output()
        .unwrap()
}

fn start_session(world: &UserWorld) -> String {
    let output = world
        .hh(
            &world.alice,
            &[
                "session",
                "start",
                "--detach",
                "--workspace",
                "demo",
                "--template",
                "test",
            ],
        )
        .output()
        .unwrap();
    assert!(output.status.success(), "session start: {}", text(&output));
    // Session start says what is protected.
    assert!(
        text(&output).contains("read-only in the session: .git/config, .git/hooks"),
        "{}",
        text(&output)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .last()
        .unwrap()
        .trim()
        .to_owned()
}

#[test]
fn the_owner_runs_commands_through_the_agent_without_docker_and_no_one_else_can() {
    if !require_root("agent exec e2e") || !build_test_stem() {
        return;
    }
    let world = UserWorld::new();
    for user in [&world.alice, &world.bob] {
        let groups = user.groups();
        assert!(
            !groups
                .iter()
                .any(|group| group == "docker" || group == "root"),
            "{} is in {groups:?}",
            user.name
        );
    }
    let docker = world
        .alice
        .command("docker")
        .args(["ps", "-q"])
        .output()
        .unwrap();
    assert!(
        !docker.status.success(),
        "alice can use Docker directly: the test proves nothing ({})",
        text(&docker)
    );
    // hh doctor, as the user: the agent answers them, and the Docker socket is not needed.
    let doctor = world
        .hh(&world.alice, &["doctor", "--json"])
        .output()
        .unwrap();
    assert_eq!(doctor.status.code(), Some(0), "{}", text(&doctor));
    let report: serde_json::Value = serde_json::from_slice(&doctor.stdout).unwrap();
    let check = |report: &serde_json::Value, name: &str| {
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|check| check["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no {name} check: {report}"))
    };
    let socket = check(&report, "agent-socket");
    assert_eq!(socket["status"], "pass", "{socket}");
    assert!(
        socket["detail"]
            .as_str()
            .unwrap()
            .contains(&format!("uid {}", world.alice.uid)),
        "{socket}"
    );
    assert_eq!(check(&report, "docker")["status"], "skip");
    // Someone outside the socket group is told how to get in.
    let outsider = TestUser::create("c", &[]);
    let doctor = world.hh(&outsider, &["doctor", "--json"]).output().unwrap();
    assert_eq!(doctor.status.code(), Some(1), "{}", text(&doctor));
    let report: serde_json::Value = serde_json::from_slice(&doctor.stdout).unwrap();
    let socket = check(&report, "agent-socket");
    assert_eq!(socket["status"], "fail", "{socket}");
    assert!(
        socket["fix"].as_str().unwrap().contains("usermod"),
        "{socket}"
    );

    let id = start_session(&world);

    // Streams stay apart, and the exit status comes back.
    let output = alice_sh(&world, &id, "echo out; echo err >&2; id -u; exit 7");
    assert_eq!(output.status.code(), Some(7), "{}", text(&output));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("out\n{}\n", world.alice.uid)
    );
    assert_eq!(String::from_utf8_lossy(&output.stderr), "err\n");

    // A seeded mount of alice's: her own per-session copy, writable, the original untouched.
    let output = alice_sh(&world, &id, "cat /seeded.txt && echo changed > /seeded.txt");
    assert!(output.status.success(), "{}", text(&output));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "alice's seed\n");
    assert_eq!(
        std::fs::read_to_string(&world.seed).unwrap(),
        "alice's seed\n"
    );

    // What host git runs is read-only, and `.git` cannot be moved aside for a fresh one; the
    // rest of `.git` (objects, refs) stays writable.
    for attack in [
        "echo '[core] fsmonitor = touch /tmp/pwned' >> /workspace/.git/config",
        "printf x > /workspace/new && mv /workspace/new /workspace/.git/config",
        "touch /workspace/.git/hooks/pre-commit",
        "rm -rf /workspace/.git/hooks",
        "mv /workspace/.git /workspace/moved-git",
        "rm -rf /workspace/.git",
    ] {
        let output = alice_sh(&world, &id, attack);
        assert!(!output.status.success(), "`{attack}` succeeded");
    }
    let git = world.alice.home.join("proj/.git");
    assert_eq!(
        std::fs::read_to_string(git.join("config")).unwrap(),
        "[core]\n\tbare = false\n"
    );
    assert_eq!(std::fs::read_dir(git.join("hooks")).unwrap().count(), 0);
    let output = alice_sh(&world, &id, "echo ref > /workspace/.git/HEAD");
    assert!(output.status.success(), "{}", text(&output));

    // stdin reaches the command, and its end ends it.
    let mut cat = world
        .hh(&world.alice, &["shell", &id, "--", "wc", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let payload = vec![b'x'; 300_000];
    cat.stdin.take().unwrap().write_all(&payload).unwrap();
    let counted = cat.wait_with_output().unwrap();
    assert!(counted.status.success(), "{}", text(&counted));
    assert_eq!(String::from_utf8_lossy(&counted.stdout).trim(), "300000");

    // Another user in the same socket group: no shell, no attach, not even a sight of it.
    for args in [
        vec!["shell", id.as_str(), "--", "true"],
        vec!["attach", id.as_str()],
    ] {
        let refused = world
            .hh(&world.bob, &args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(!refused.status.success(), "{args:?}: {}", text(&refused));
        assert!(
            text(&refused).contains("no running session"),
            "{args:?}: {}",
            text(&refused)
        );
    }
}

#[test]
fn an_interactive_shell_echoes_resizes_takes_ctrl_c_and_reattaches() {
    if !require_root("agent exec e2e") || !build_test_stem() {
        return;
    }
    let world = UserWorld::new();
    let id = start_session(&world);
    let pane = Tmux::start(
        &format!("hhexec{}", std::process::id()),
        &format!(
            "{}; echo status=$?; sleep 60",
            world.hh_line(&world.alice, &format!("shell {id}"))
        ),
    );
    let within = Duration::from_secs(20);
    pane.keys(&["echo sum-$((6*7))", "Enter"]);
    pane.wait_for("sum-42", within);
    // The command's terminal has this pane's size, and follows it.
    let size = |pane: &Tmux| {
        let output = pane
            .tmux()
            .args([
                "display",
                "-p",
                "-t",
                &pane.name,
                "#{pane_height} #{pane_width}",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    };
    pane.keys(&["stty size | sed 's/^/size=/'", "Enter"]);
    pane.wait_for(&format!("size={}", size(&pane)), within);
    let resized = pane
        .tmux()
        .args(["resize-window", "-t", &pane.name, "-x", "120", "-y", "40"])
        .status()
        .unwrap();
    assert!(resized.success());
    std::thread::sleep(Duration::from_millis(500));
    pane.keys(&["clear; stty size | sed 's/^/resized=/'", "Enter"]);
    pane.wait_for(&format!("resized={}", size(&pane)), within);
    // Ctrl-C reaches the command in the session, not this terminal's hh.
    pane.keys(&["sleep 300", "Enter"]);
    std::thread::sleep(Duration::from_millis(500));
    pane.keys(&["C-c"]);
    pane.keys(&["echo after-$((1+1))", "Enter"]);
    pane.wait_for("after-2", within);
    pane.keys(&["exit 3", "Enter"]);
    pane.wait_for("status=3", within);
    drop(pane);

    // attach: the session's tmux outlives the terminal that attached to it.
    let attach_name = format!("hhattach{}", std::process::id());
    let first = Tmux::start(
        &attach_name,
        &world.hh_line(&world.alice, &format!("attach {id}")),
    );
    first.keys(&["echo kept-$((20+3))", "Enter"]);
    first.wait_for("kept-23", within);
    // The terminal goes away without detaching.
    drop(first);
    std::thread::sleep(Duration::from_millis(500));
    let again = Tmux::start(
        &attach_name,
        &world.hh_line(&world.alice, &format!("attach {id}")),
    );
    again.wait_for("kept-23", within);
}

#[test]
fn an_ordinary_user_answers_forever_and_the_other_user_cannot_answer_for_her() {
    if !require_root("agent exec e2e") || !build_test_stem() {
        return;
    }
    let world = UserWorld::new();
    let id = start_session(&world);
    let request = world
        .hh(
            &world.alice,
            &[
                "shell",
                &id,
                "--",
                "curl",
                "-sS",
                "-m",
                "40",
                "http://unknown.test/asked",
            ],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let listed = |user: &TestUser| -> Vec<serde_json::Value> {
        let output = world.hh(user, &["approvals", "--json"]).output().unwrap();
        serde_json::from_slice(&output.stdout).unwrap_or_default()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let pending = loop {
        let pending = listed(&world.alice);
        if !pending.is_empty() {
            break pending;
        }
        assert!(std::time::Instant::now() < deadline, "no prompt came");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(pending[0]["host"], "unknown.test", "{pending:?}");
    let approval = pending[0]["id"].to_string();
    // Bob sees nothing of it and cannot answer it.
    assert!(listed(&world.bob).is_empty());
    let refused = world
        .hh(&world.bob, &["approvals", "allow", &approval, "--forever"])
        .output()
        .unwrap();
    assert!(!refused.status.success(), "{}", text(&refused));
    // Alice answers "forever": the rule lands in her rules file, which stays hers.
    let answered = world
        .hh(
            &world.alice,
            &["approvals", "allow", &approval, "--forever"],
        )
        .output()
        .unwrap();
    assert!(answered.status.success(), "{}", text(&answered));
    let output = request.wait_with_output().unwrap();
    // Allowed; nothing listens upstream on loopback, so the proxy says so.
    assert!(
        text(&output).contains("cannot connect to unknown.test at 127.0.0.1:80"),
        "{}",
        text(&output)
    );
    let rules = world.alice.home.join("proj/harness-rules.toml");
    let written = std::fs::read_to_string(&rules).unwrap();
    assert!(written.contains("domain=unknown.test"), "{written}");
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::metadata(&rules).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (world.alice.uid, world.alice.gid));
    // And the next request is decided by it: no prompt.
    let again = alice_sh(
        &world,
        &id,
        "curl -sS -m 10 http://unknown.test/again; true",
    );
    assert!(again.status.success(), "{}", text(&again));
    assert!(listed(&world.alice).is_empty());
}
