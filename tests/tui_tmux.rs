//! The terminal UI end to end: the real `hh` in a tmux pane against a real agent and a real
//! session. A curl inside the session to an unknown host blocks; the prompt appears in the UI;
//! the test presses "allow forever"; the curl completes, and the rule is in the workspace's
//! rules file with the user's comments intact. The UI's own measure of how long the prompt
//! took to reach the screen (from the event's arrival) must stay within 100 ms.

mod support;

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use support::{
    require_root,
    session_world::{World, build_test_stem, wait_until},
};

struct Tmux {
    name: String,
}

impl Tmux {
    fn start(name: &str, command: &str) -> Tmux {
        let status = Command::new("tmux")
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
        Tmux { name: name.into() }
    }

    fn screen(&self) -> String {
        let output = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &self.name])
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        let status = Command::new("tmux")
            .args(["send-keys", "-t", &self.name])
            .args(keys)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.name])
            .status();
    }
}

#[test]
fn a_held_request_is_answered_allow_forever_from_the_terminal_ui() {
    if !require_root("tui e2e") || !build_test_stem() {
        return;
    }
    let world = World::new("t");
    let agent = world.agent_asking(60);
    let id = world.start_session();
    let log = world.dir.path().join("tui.log");
    let command = format!(
        "env HH_AGENT_SOCKET={} HH_LOG_FILE={} HH_LOG=hh=info {} --config {}",
        world.socket.display(),
        log.display(),
        env!("CARGO_BIN_EXE_hh"),
        world.config.display()
    );
    let tmux = Tmux::start(&format!("hh-tui-{}", std::process::id()), &command);
    wait_until("the UI shows the session", || {
        tmux.screen().contains(&id[..6])
    });

    let url = world.url("unknown.test", "/from-tui");
    let curl = support::hh()
        .env("HH_AGENT_SOCKET", &world.socket)
        .args(["shell", &id, "--", "curl", "-sS", "-m", "40", &url])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let asked = Instant::now();
    wait_until("the prompt appears", || {
        let screen = tmux.screen();
        screen.contains("unknown.test") && screen.contains("allow forever")
    });
    eprintln!("prompt on screen {:?} after the request", asked.elapsed());
    let screen = tmux.screen();
    assert!(screen.contains("/from-tui"), "{screen}");

    tmux.keys(&["A"]);
    wait_until("the rule editor shows the rule", || {
        tmux.screen().contains("domain=unknown.test")
    });
    tmux.keys(&["Enter"]);

    let output = curl.wait_with_output().unwrap();
    let body = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{body}{}\n{}",
        String::from_utf8_lossy(&output.stderr),
        tmux.screen()
    );
    assert!(
        body.contains("upstream saw GET /from-tui host=unknown.test"),
        "{body}"
    );
    let rules = std::fs::read_to_string(world.workspace.join(".hh/harness-rules.toml")).unwrap();
    assert!(rules.contains("this comment must survive"), "{rules}");
    assert!(rules.contains("domain=unknown.test"), "{rules}");

    // The UI's measure: event arrival to the frame that shows the prompt.
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    let latencies: Vec<u64> = logged
        .lines()
        .filter(|line| line.contains("approval prompt drawn"))
        .filter_map(|line| line.split("latency_ms=").nth(1))
        .filter_map(|rest| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .collect();
    assert!(!latencies.is_empty(), "no prompt latency logged:\n{logged}");
    assert!(
        latencies.iter().all(|&ms| ms <= 100),
        "prompt latencies {latencies:?} ms"
    );

    // q quits and gives the terminal back.
    tmux.keys(&["q"]);
    std::thread::sleep(Duration::from_millis(300));
    drop(tmux);
    agent.terminate();
    world.assert_nothing_left();
}
