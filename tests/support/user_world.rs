//! A real agent with its socket group and two ordinary users in it (neither root nor in
//! `docker`): the world of the end-to-end tests that run hh the way people do.

use std::{
    path::PathBuf,
    process::{Child, Command},
};

use super::users::{TestGroup, TestUser};

/// The agent, its socket group and two users; everything removed on drop.
pub struct UserWorld {
    _dir: tempfile::TempDir,
    pub socket: PathBuf,
    /// The agent's state directory (its audit log is `logs/audit.jsonl` there).
    pub state: PathBuf,
    pub config: PathBuf,
    pub group: String,
    pub bpf_dir: PathBuf,
    pub agent: Child,
    /// Owns the workspace `demo` (`~alice/proj`), the config and the global rules.
    pub alice: TestUser,
    /// Another user in the socket group, with a workspace of his own (`~bob/proj`).
    pub bob: TestUser,
    /// A file of alice's that sessions get a per-session copy of (`/seeded.txt`).
    pub seed: PathBuf,
    _socket_group: TestGroup,
}

impl UserWorld {
    pub fn new() -> UserWorld {
        UserWorld::with(&[], "")
    }

    /// A world whose agent also gets `agent_args`, and whose config ends with `config_extra`
    /// (whole tables, e.g. another `[container_profiles.NAME]`).
    pub fn with(agent_args: &[&str], config_extra: &str) -> UserWorld {
        let socket_group = TestGroup::create("x");
        let alice = TestUser::create("a", &[&socket_group]);
        let bob = TestUser::create("b", &[&socket_group]);
        let workspace = alice.make_dir("proj", 0o755);
        // A git checkout's parts that host git runs: protected in sessions by default.
        alice.make_dir("proj/.git/hooks", 0o755);
        alice.write_file(workspace.join(".git/config"), "[core]\n\tbare = false\n");
        let rules = workspace.join("harness-rules.toml");
        alice.write_file(&rules, "[network]\nallowlist = []\n");
        alice.write_file(
            alice.home.join("global-rules.toml"),
            "[network]\nallowlist = []\n",
        );
        let seed = alice.home.join("seed.txt");
        alice.write_file(&seed, "alice's seed\n");
        let bobs = bob.make_dir("proj", 0o755);
        bob.write_file(
            bobs.join("harness-rules.toml"),
            "# bob's\n[network]\nallowlist = []\n",
        );
        let config = alice.home.join("harness-hat.toml");
        alice.write_file(
            &config,
            format!(
                // `~` is the home of the user whose session it is (not the agent's, root's):
                // every user has global rules and a seed of their own.
                "version = 1\n[manager]\nglobal_rules_file = \"~/global-rules.toml\"\n\
                 [[defaults.containers.mounts]]\nhost = \"~/seed.txt\"\ncontainer = \"/seeded.txt\"\n\
                 mode = \"rw\"\nseed = true\n\
                 [container_profiles.test]\nimage = \"test\"\n\
                 [[workspaces]]\nname = \"demo\"\ncanonical_path = \"{}\"\n\
                 [[workspaces]]\nname = \"bobs\"\ncanonical_path = \"{}\"\n{config_extra}",
                workspace.display(),
                bobs.display(),
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
        let state = dir.path().join("state");
        // Unique per world: tests of this file run side by side.
        static WORLDS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let serial = WORLDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let group = format!("hhtestx{}n{serial}", super::leftovers::run_tag());
        let bpf_dir = PathBuf::from(format!("/sys/fs/bpf/{group}"));
        super::leftovers::record_agent_world(&group, &bpf_dir);
        let mut command = super::hh();
        command
            .arg("--config")
            .arg(&config)
            .arg("agent")
            .arg("--socket")
            .arg(&socket)
            .arg("--socket-group")
            .arg(socket_group.gid.to_string())
            .arg("--state-dir")
            .arg(&state)
            .arg("--bpf-dir")
            .arg(&bpf_dir)
            .args(["--cgroup-group", &group, "--ask-timeout", "30"])
            // The one name a session here asks about, kept on loopback (nothing upstream
            // listens: an allowed request gets a 502).
            .args([
                "--resolve",
                "unknown.test=127.0.0.1",
                "--dial-grant",
                "127.0.0.1/32",
            ])
            .args(agent_args)
            .env("HH_LOG", "hh=info");
        let (agent, _) = super::spawn_announcing(&mut command, "hh agent: listening on ");
        UserWorld {
            _dir: dir,
            socket,
            state,
            config,
            group,
            bpf_dir,
            agent,
            alice,
            bob,
            seed,
            _socket_group: socket_group,
        }
    }

    /// `hh ARGS` as `user`, against this agent.
    pub fn hh(&self, user: &TestUser, args: &[&str]) -> Command {
        let mut command = user.command(env!("CARGO_BIN_EXE_hh"));
        command
            .env("HH_AGENT_SOCKET", &self.socket)
            .arg("--config")
            .arg(&self.config)
            .args(args);
        command
    }

    /// `user` trusts the versions of `workspace`'s rules files as they read now (what `hh rules
    /// status` shows, named by their SHA-256).
    pub fn trust_rules(&self, user: &TestUser, workspace: &str) {
        let status = self
            .hh(
                user,
                &["rules", "status", "--workspace", workspace, "--json"],
            )
            .output()
            .unwrap();
        let args = super::trust_args(workspace, &status.stdout);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let trusted = self.hh(user, &args).output().unwrap();
        assert!(
            trusted.status.success(),
            "rules trust: {}",
            String::from_utf8_lossy(&trusted.stderr)
        );
    }

    /// `hh session start --detach` of `workspace` on `template` as `user`: the session's id.
    pub fn start_detached(&self, user: &TestUser, workspace: &str, template: &str) -> String {
        let started = self
            .hh(
                user,
                &[
                    "session",
                    "start",
                    "--detach",
                    "--workspace",
                    workspace,
                    "--template",
                    template,
                ],
            )
            .output()
            .unwrap();
        assert!(
            started.status.success(),
            "session start: {}",
            String::from_utf8_lossy(&started.stderr)
        );
        String::from_utf8_lossy(&started.stdout)
            .lines()
            .last()
            .unwrap()
            .trim()
            .to_owned()
    }

    /// The shell command line that runs `hh ARGS` as `user` (for a tmux pane).
    pub fn hh_line(&self, user: &TestUser, args: &str) -> String {
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

impl Drop for UserWorld {
    fn drop(&mut self) {
        // SAFETY: kill on our own child's pid.
        unsafe { libc::kill(self.agent.id() as i32, libc::SIGTERM) };
        let _ = self.agent.wait();
        for mount in super::session_world::cgroup_mounts() {
            let _ = std::fs::remove_dir(mount.join(&self.group));
        }
        let _ = std::fs::remove_dir_all(&self.bpf_dir);
    }
}
