//! A real terminal for the tests that drive `hh`'s UI: a detached tmux session of a fixed
//! size, its screen read with `capture-pane`, keys sent with `send-keys`; killed on drop.
//! Each session has a tmux server of its own (`-L`): one test's server shutting down as its
//! last session ends cannot refuse the next test's `new-session`.

use std::{
    process::Command,
    time::{Duration, Instant},
};

pub struct Tmux {
    pub name: String,
}

impl Tmux {
    /// `tmux` against this session's own server.
    pub fn tmux(&self) -> Command {
        let mut command = Command::new("tmux");
        command.args(["-L", &format!("hh-{}", self.name)]);
        command
    }

    /// Runs `command` (a shell command line) in a new 100×32 tmux session called `name`.
    pub fn start(name: &str, command: &str) -> Tmux {
        let tmux = Tmux { name: name.into() };
        let status = tmux
            .tmux()
            .args([
                "new-session",
                "-d",
                "-s",
                name,
                "-x",
                "100",
                "-y",
                "32",
                command,
            ])
            .status()
            .expect("tmux runs (`cargo xtask setup` installs it)");
        assert!(status.success());
        tmux
    }

    pub fn screen(&self) -> String {
        let output = self
            .tmux()
            .args(["capture-pane", "-p", "-t", &self.name])
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    pub fn keys(&self, keys: &[&str]) {
        let status = self
            .tmux()
            .args(["send-keys", "-t", &self.name])
            .args(keys)
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits up to `within` for `text` on the screen; panics with the screen when it never shows.
    pub fn wait_for(&self, text: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let screen = self.screen();
            if screen.contains(text) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "`{text}` never appeared; the screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        // The server may be gone already (its last session ended): nothing to say then.
        let _ = self
            .tmux()
            .arg("kill-server")
            .stderr(std::process::Stdio::null())
            .status();
    }
}
