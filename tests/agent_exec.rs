//! `hh shell` and `hh attach` through the agent, as ordinary users: two real accounts in the
//! agent's socket group, neither in `docker` (whose socket is root on the host). The owner runs
//! commands (streams, exit status, stdin), an interactive shell (tmux types, reads the echo,
//! resizes the terminal, presses Ctrl-C, reads the exit status) and re-attaches to the
//! session's tmux; the other user can reach none of it.

mod support;

use std::{
    io::Write as _,
    path::PathBuf,
    process::{Child, Command, Output, Stdio},
    time::Duration,
};

use support::{
    require_root,
    session_world::build_test_stem,
    tmux::Tmux,
    users::{TestGroup, TestUser},
};

/// The agent, its socket group and two users; everything removed on drop.
struct ExecWorld {
    _dir: tempfile::TempDir,
    socket: PathBuf,
    config: PathBuf,
    group: String,
    bpf_dir: PathBuf,
    agent: Child,
    alice: TestUser,
    bob: TestUser,
    _socket_group: TestGroup,
}

impl ExecWorld {
    fn new() -> ExecWorld {
        let socket_group = TestGroup::create("x");
        let alice = TestUser::create("a", &[&socket_group]);
        let bob = TestUser::create("b", &[&socket_group]);
        let workspace = alice.make_dir("proj", 0o755);
        let rules = workspace.join("harness-rules.toml");
        alice.write_file(&rules, "[network]\nallowlist = []\n");
        let global = alice.home.join("global-rules.toml");
        alice.write_file(&global, "[network]\nallowlist = []\n");
        let config = alice.home.join("harness-hat.toml");
        alice.write_file(
            &config,
            format!(
                "version = 1\n[manager]\nglobal_rules_file = \"{}\"\n\
                 [container_profiles.test]\nimage = \"test\"\n\
                 [[workspaces]]\nname = \"demo\"\ncanonical_path = \"{}\"\n",
                global.display(),
                workspace.display()
            ),
        );
        // The socket's directory must be reachable by the users; the socket itself is the
        // agent's (0660, the socket group).
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let socket = dir.path().join("agent.sock");
        // Unique per world: tests of this file run side by side.
        static WORLDS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let serial = WORLDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let group = format!("hhtestx{}n{serial}", std::process::id());
        let bpf_dir = PathBuf::from(format!("/sys/fs/bpf/{group}"));
        let mut command = support::hh();
        command
            .arg("--config")
            .arg(&config)
            .arg("agent")
            .arg("--socket")
            .arg(&socket)
            .arg("--socket-group")
            .arg(socket_group.gid.to_string())
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .arg("--bpf-dir")
            .arg(&bpf_dir)
            .args(["--cgroup-group", &group, "--ask-timeout", "1"])
            .env("HH_LOG", "hh=info");
        let (agent, _) = support::spawn_announcing(&mut command, "hh agent: listening on ");
        ExecWorld {
            _dir: dir,
            socket,
            config,
            group,
            bpf_dir,
            agent,
            alice,
            bob,
            _socket_group: socket_group,
        }
    }

    /// `hh ARGS` as `user`, against this agent.
    fn hh(&self, user: &TestUser, args: &[&str]) -> Command {
        let mut command = user.command(env!("CARGO_BIN_EXE_hh"));
        command
            .env("HH_AGENT_SOCKET", &self.socket)
            .arg("--config")
            .arg(&self.config)
            .args(args);
        command
    }

    /// The shell command line that runs `hh ARGS` as `user` (for a tmux pane).
    fn hh_line(&self, user: &TestUser, args: &str) -> String {
        format!(
            "setpriv --reuid={uid} --regid={gid} --init-groups -- env -i HOME={home} \
             PATH=/usr/bin:/bin TERM=screen HH_AGENT_SOCKET={socket} {hh} --config {config} {args}",
            uid = user.uid,
            gid = user.gid,
            home = user.home.display(),
            socket = self.socket.display(),
            hh = env!("CARGO_BIN_EXE_hh"),
            config = self.config.display(),
        )
    }
}

impl Drop for ExecWorld {
    fn drop(&mut self) {
        // SAFETY: kill on our own child's pid.
        unsafe { libc::kill(self.agent.id() as i32, libc::SIGTERM) };
        let _ = self.agent.wait();
        for mount in support::session_world::cgroup_mounts() {
            let _ = std::fs::remove_dir(mount.join(&self.group));
        }
        let _ = std::fs::remove_dir_all(&self.bpf_dir);
    }
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn start_session(world: &ExecWorld) -> String {
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
    let world = ExecWorld::new();
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
    let output = world
        .hh(
            &world.alice,
            &[
                "shell",
                &id,
                "--",
                "sh",
                "-c",
                "echo out; echo err >&2; id -u; exit 7",
            ],
        )
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(7), "{}", text(&output));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("out\n{}\n", world.alice.uid)
    );
    assert_eq!(String::from_utf8_lossy(&output.stderr), "err\n");

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
    let world = ExecWorld::new();
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
        let output = Command::new("tmux")
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
    let resized = Command::new("tmux")
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
