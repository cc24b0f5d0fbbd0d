//! A real `hh agent` with a test workspace, rules, config and local HTTPS upstream: what the
//! agent end-to-end tests and the session benchmark stand on. Root runs the agent and sets the
//! world up (as an admin would: the config and the global rules are root's); everything a person
//! does with hh — start sessions, shells, approvals, rules — runs as an ordinary user in the
//! agent's socket group, neither root nor in `docker` ([`World::hh`]).

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Output},
    time::{Duration, Instant},
};

use super::{
    hh, upstream,
    users::{TestGroup, TestUser},
};

pub const BASE_IMAGE: &str = "hh-test-base";
/// The `test` stem [`build_test_stem`] builds on [`BASE_IMAGE`].
pub const TEST_IMAGE: &str = "hh-test";

/// Builds the `test` stem on the local base (no registry); repeated builds are cached by Docker.
pub fn build_test_stem() -> bool {
    let base = Command::new("docker")
        .args(["image", "inspect", BASE_IMAGE])
        .output()
        .is_ok_and(|output| output.status.success());
    assert!(
        base || std::env::var_os("CI").is_none(),
        "CI must have a Docker engine and the {BASE_IMAGE} image (`cargo xtask test` prepares both)"
    );
    if !base {
        eprintln!("skipping: no Docker engine or no {BASE_IMAGE} image (run `cargo xtask image`)");
        return false;
    }
    // The stems' own builder: `hh image build`, with the local base instead of a registry's.
    let built = hh()
        .args(["image", "build", "test", "--base", BASE_IMAGE])
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    true
}

/// One test's world: a workspace, rules, a config, an upstream, and the agent's paths.
pub struct World {
    pub dir: tempfile::TempDir,
    pub workspace: PathBuf,
    pub seed: PathBuf,
    pub config: PathBuf,
    pub socket: PathBuf,
    pub state: PathBuf,
    pub bpf_dir: PathBuf,
    pub group: String,
    pub upstream: upstream::Upstream,
    pub upstream_ca: PathBuf,
    /// Who uses hh here: owns the workspace, is in the socket group.
    pub user: TestUser,
    pub socket_group: TestGroup,
}

/// The workspace's rules, for the upstream's ports (HTTPS, plain HTTP).
fn rules(port: u16, http: u16) -> String {
    format!(
        "# the workspace's rules; this comment must survive\n\
         [network]\n\
         allowlist = [\"domain=allowed.test port={port}\", \"domain=bypass.test port={port}\", \
         \"domain=allowed.test path=/plain/* port={http}\"]\n\
         denylist = [\"domain=denied.test\"]\n"
    )
}

impl World {
    pub fn new(tag: &str) -> World {
        let dir = tempfile::tempdir().unwrap();
        let upstream = upstream::start_upstream(&[
            "allowed.test",
            "denied.test",
            "starter.test",
            "unknown.test",
            "bypass.test",
        ]);
        // Reachable by the user (the socket, the config); only root writes here.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let socket_group = TestGroup::create(&format!("w{tag}"));
        let user = TestUser::create(tag, &[&socket_group]);
        let workspace = user.make_dir("workspace", 0o755);
        user.write_file(
            workspace.join("harness-rules.toml"),
            rules(upstream.tls_port, upstream.http_port),
        );
        let seed = user.home.join("seeded.txt");
        user.write_file(&seed, "original\n");
        let global = dir.path().join("global-rules.toml");
        std::fs::write(&global, "[network]\nallowlist = []\n").unwrap();
        let config = dir.path().join("harness-hat.toml");
        std::fs::write(
            &config,
            format!(
                r#"version = 1
[manager]
global_rules_file = "{global}"
[defaults.containers]
env_passthrough = ["HH_TEST_PASSED"]
[[defaults.containers.mounts]]
host = "{seed}"
container = "/seeded.txt"
mode = "rw"
seed = true
[container_profiles.test]
image = "test"
memory = "256m"
cpus = "0.5"
starter_network_allowlist = ["domain=starter.test port={port}"]
bypass_proxy = ["bypass.test"]
[[workspaces]]
name = "demo"
canonical_path = "{workspace}"
"#,
                global = global.display(),
                seed = seed.display(),
                workspace = workspace.display(),
                port = upstream.tls_port,
            ),
        )
        .unwrap();
        let upstream_ca = dir.path().join("upstream-ca.pem");
        std::fs::write(&upstream_ca, &upstream.ca_pem).unwrap();
        let group = format!("hhtest{tag}{}", super::leftovers::run_tag());
        super::leftovers::record_agent_world(&group, Path::new(&format!("/sys/fs/bpf/{group}")));
        World {
            socket: dir.path().join("agent.sock"),
            state: dir.path().join("state"),
            bpf_dir: PathBuf::from(format!("/sys/fs/bpf/{group}")),
            workspace,
            seed,
            config,
            group,
            upstream,
            upstream_ca,
            dir,
            user,
            socket_group,
        }
    }

    /// An agent whose unanswered asks are denied after 1 s.
    pub fn agent(&self) -> Agent {
        self.agent_asking(1)
    }

    /// An agent whose unanswered asks wait `ask_timeout` seconds.
    pub fn agent_asking(&self, ask_timeout: u32) -> Agent {
        self.agent_with(ask_timeout, "hh=info", std::process::Stdio::inherit())
    }

    /// An agent logging at `filter` (`HH_LOG`) into `log`.
    pub fn agent_logging_to(&self, filter: &str, log: &std::path::Path) -> Agent {
        let file = std::fs::File::create(log).unwrap();
        self.agent_with(1, filter, file.into())
    }

    fn agent_with(&self, ask_timeout: u32, filter: &str, stderr: std::process::Stdio) -> Agent {
        let mut command = hh();
        command
            .arg("--config")
            .arg(&self.config)
            .arg("agent")
            .arg("--socket")
            .arg(&self.socket)
            .arg("--socket-group")
            .arg(self.socket_group.gid.to_string())
            .arg("--state-dir")
            .arg(&self.state)
            .arg("--bpf-dir")
            .arg(&self.bpf_dir)
            .args(["--cgroup-group", &self.group])
            .args(["--ask-timeout", &ask_timeout.to_string()])
            .args(["--dial-grant", "127.0.0.1/32"])
            .arg("--upstream-ca")
            .arg(&self.upstream_ca);
        for name in [
            "allowed.test",
            "denied.test",
            "starter.test",
            "unknown.test",
            "bypass.test",
        ] {
            command.args(["--resolve", &format!("{name}=127.0.0.1")]);
        }
        command.env("HH_LOG", filter);
        let (child, _socket) =
            super::spawn_announcing_to(&mut command, "hh agent: listening on ", stderr);
        let agent = Agent { child };
        // The rules written above are in force once a person trusted them (rules::trust).
        let trusted = self.trust_rules();
        assert!(
            trusted.status.success(),
            "rules trust: {}{}",
            String::from_utf8_lossy(&trusted.stdout),
            String::from_utf8_lossy(&trusted.stderr)
        );
        agent
    }

    /// `hh rules trust --workspace demo` naming the versions `hh rules status` shows, as root
    /// (the admin: the global rules are root's): the rules files as they read now are in force.
    pub fn trust_rules(&self) -> Output {
        let as_root = |args: &[&str]| {
            hh().env("HH_AGENT_SOCKET", &self.socket)
                .arg("--config")
                .arg(&self.config)
                .args(args)
                .output()
                .unwrap()
        };
        let status = as_root(&["rules", "status", "--workspace", "demo", "--json"]);
        let args = super::trust_args("demo", &status.stdout);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        as_root(&args)
    }

    /// The workspace's rules file (where "forever" answers go).
    pub fn rules_file(&self) -> PathBuf {
        self.workspace.join("harness-rules.toml")
    }

    /// Runs `hh` as the user would: as [`World::user`], with this world's config and agent
    /// socket.
    pub fn hh(&self, args: &[&str]) -> Output {
        self.hh_command(args).output().unwrap()
    }

    /// `hh ARGS` as another user of the host (`user`), with this world's config and socket.
    pub fn hh_as(&self, user: &TestUser, args: &[&str]) -> Output {
        user.command(env!("CARGO_BIN_EXE_hh"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env("HH_AGENT_SOCKET", &self.socket)
            .output()
            .unwrap()
    }

    /// [`World::hh`], not yet run (to spawn it, or pipe it).
    pub fn hh_command(&self, args: &[&str]) -> Command {
        let mut command = self.user.command(env!("CARGO_BIN_EXE_hh"));
        command
            .env("HH_AGENT_SOCKET", &self.socket)
            .env("HH_TEST_PASSED", "from-the-client")
            .env("HH_TEST_NOT_PASSED", "secret")
            .arg("--config")
            .arg(&self.config)
            .args(args);
        command
    }

    /// The shell command line that runs `hh ARGS` as [`World::user`] (for a tmux pane), with
    /// `env` (`NAME=VALUE …`) added.
    pub fn hh_line(&self, env: &str, args: &str) -> String {
        format!(
            "setpriv --reuid={uid} --regid={gid} --init-groups -- env -i HOME={home} \
             PATH=/usr/bin:/bin TERM=screen HH_AGENT_SOCKET={socket} {env} {hh} --config {config} {args}",
            uid = self.user.uid,
            gid = self.user.gid,
            home = self.user.home.display(),
            socket = self.socket.display(),
            hh = env!("CARGO_BIN_EXE_hh"),
            config = self.config.display(),
        )
    }

    pub fn start_session(&self) -> String {
        self.start_in("demo", "test").0
    }

    /// A detached session of `workspace` on `template`: its id and what start said on stderr.
    pub fn start_in(&self, workspace: &str, template: &str) -> (String, String) {
        self.start_running(workspace, template, &[])
    }

    /// `hh session start --detach` of `workspace` on `template` with `command` as its main
    /// process (none: the idle default), as it went.
    pub fn start_output(&self, workspace: &str, template: &str, command: &[&str]) -> Output {
        let mut args = vec![
            "session",
            "start",
            "--detach",
            "--workspace",
            workspace,
            "--template",
            template,
        ];
        if !command.is_empty() {
            args.push("--");
            args.extend_from_slice(command);
        }
        self.hh(&args)
    }

    /// [`World::start_output`] that must succeed: the session's id and what start said.
    pub fn start_running(
        &self,
        workspace: &str,
        template: &str,
        command: &[&str],
    ) -> (String, String) {
        let output = self.start_output(workspace, template, command);
        let said = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "session start: {said}");
        let id = String::from_utf8_lossy(&output.stdout)
            .lines()
            .last()
            .unwrap()
            .trim()
            .to_owned();
        (id, said)
    }

    /// Runs `command` in the session; (exit code, stdout + stderr).
    pub fn shell(&self, id: &str, command: &[&str]) -> (i32, String) {
        let mut args = vec!["shell", id, "--"];
        args.extend_from_slice(command);
        let output = self.hh(&args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.code().unwrap_or(-1), text)
    }

    /// curl in session `id` fetching `path` of `unknown.test`, which no rule decides: the
    /// running curl and the pending approvals once its request is held.
    pub fn held_request(
        &self,
        id: &str,
        path: &str,
    ) -> (std::process::Child, Vec<serde_json::Value>) {
        let url = self.url("unknown.test", path);
        let curl = self
            .hh_command(&["shell", id, "--", "curl", "-sS", "-m", "30", &url])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut pending = Vec::new();
        wait_until("the request is held for an answer", || {
            let listed = self.hh(&["approvals", "--json"]);
            pending = serde_json::from_slice::<Vec<serde_json::Value>>(&listed.stdout)
                .unwrap_or_default();
            !pending.is_empty()
        });
        (curl, pending)
    }

    pub fn url(&self, host: &str, path: &str) -> String {
        format!("https://{host}:{}{path}", self.upstream.tls_port)
    }

    pub fn sessions(&self) -> Vec<serde_json::Value> {
        let output = self.hh(&["session", "list", "--json"]);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap()
    }

    /// Nothing of any session is left: containers, cgroups (v2 and v1), pins, session dirs.
    pub fn assert_nothing_left(&self) {
        let containers = Command::new("docker")
            .args(["ps", "-aq", "--filter", "label=dev.hh.session"])
            .output()
            .unwrap();
        let ids = String::from_utf8_lossy(&containers.stdout).to_string();
        for id in ids.lines() {
            let labels = Command::new("docker")
                .args([
                    "inspect",
                    "-f",
                    "{{index .Config.Labels \"dev.hh.workspace\"}} {{.HostConfig.CgroupParent}}",
                    id,
                ])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&labels.stdout).to_string();
            assert!(
                !text.contains(&self.group),
                "container {id} left behind: {text}"
            );
        }
        for mount in cgroup_mounts() {
            let dir = mount.join(&self.group);
            let left: Vec<_> = std::fs::read_dir(&dir)
                .map(|entries| {
                    entries
                        .flatten()
                        .filter(|e| e.path().is_dir())
                        .map(|e| e.path())
                        .collect()
                })
                .unwrap_or_default();
            assert!(left.is_empty(), "cgroups left behind: {left:?}");
        }
        let pins: Vec<_> = std::fs::read_dir(self.bpf_dir.join("sessions"))
            .map(|entries| entries.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(pins.is_empty(), "pinned sessions left behind: {pins:?}");
        let dirs: Vec<_> = std::fs::read_dir(self.state.join("sessions"))
            .map(|entries| entries.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(dirs.is_empty(), "session dirs left behind: {dirs:?}");
    }
}

impl Drop for World {
    fn drop(&mut self) {
        for mount in cgroup_mounts() {
            let _ = std::fs::remove_dir(mount.join(&self.group));
        }
        let _ = std::fs::remove_dir_all(&self.bpf_dir);
        let _ = &self.dir;
    }
}

/// The cgroup2 root and every v1 hierarchy.
pub fn cgroup_mounts() -> Vec<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    mounts
        .lines()
        .filter_map(|line| {
            let (before, after) = line.split_once(" - ")?;
            let fs = after.split(' ').next()?;
            (fs == "cgroup" || fs == "cgroup2")
                .then(|| PathBuf::from(before.split(' ').nth(4).unwrap()))
        })
        .collect()
}

/// A running agent; stopped with SIGTERM (a clean exit) on drop.
pub struct Agent {
    pub child: Child,
}

impl Agent {
    pub fn terminate(mut self) {
        // SAFETY: kill on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait().unwrap();
        assert!(status.success(), "the agent exited with {status}");
    }

    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        // SAFETY: kill on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
