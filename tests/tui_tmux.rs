//! The terminal UI end to end: the real `hh` in a tmux pane against a real agent and a real
//! session. A curl inside the session to an unknown host blocks; the prompt appears in the UI;
//! the test presses "allow forever"; the curl completes, and the rule is in the workspace's
//! rules file with the user's comments intact. The UI's own measure of how long the prompt
//! took to reach the screen (from the event's arrival) must stay within 100 ms.
//!
//! And what a person must not be tricked into: a host name too long for the pane is shown whole;
//! a key pressed just as the prompt being read was replaced by another answers nothing; keys
//! typed while `hh shell` had the terminal (and nobody read them) answer nothing either.

mod support;

use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use support::{
    require_root,
    session_world::{Agent, World, build_test_stem, wait_until},
    tmux::Tmux,
};

/// One test's world with its agent (unanswered asks denied after `ask_timeout` s), one session
/// and the UI in a tmux pane showing it; logs to `log`. `None` when the test must skip.
struct UiWorld {
    tmux: Tmux,
    id: String,
    log: std::path::PathBuf,
    agent: Agent,
    world: World,
}

impl UiWorld {
    fn start(tag: &str, ask_timeout: u32) -> Option<UiWorld> {
        if !require_root("tui e2e") || !build_test_stem() {
            return None;
        }
        let world = World::new(tag);
        let agent = world.agent_asking(ask_timeout);
        let id = world.start_session();
        // The UI runs as the world's user, like every hh client here; its log is theirs.
        let log = world.user.home.join("tui.log");
        let command = world.hh_line(&format!("HH_LOG_FILE={} HH_LOG=hh=info", log.display()), "");
        let tmux = Tmux::start(&format!("hh-tui-{tag}-{}", std::process::id()), &command);
        wait_until("the UI shows the session", || {
            tmux.screen().contains(&id[..6])
        });
        Some(UiWorld {
            tmux,
            id,
            log,
            agent,
            world,
        })
    }

    /// `q` quits the UI; the agent stops cleanly and leaves nothing behind.
    fn finish(self) {
        self.tmux.keys(&["q"]);
        std::thread::sleep(Duration::from_millis(300));
        drop(self.tmux);
        self.agent.terminate();
        self.world.assert_nothing_left();
    }
}

/// `curl URL` inside session `id`, on its own: it blocks while its request is held.
fn curl_in_session(world: &World, id: &str, url: &str) -> std::process::Child {
    world
        .hh_command(&[
            "shell",
            id,
            "--",
            "curl",
            "-sS",
            "-m",
            "40",
            "-w",
            "\nstatus=%{http_code}",
            url,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// What a curl from [`curl_in_session`] printed, once it ended.
fn output_of(curl: std::process::Child) -> String {
    let output = curl.wait_with_output().unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The screen with the box borders taken off and every line trimmed, run together: what a
/// wrapped value reads as.
fn joined(screen: &str) -> String {
    screen
        .lines()
        .map(|line| line.trim_matches(|c: char| c == '│' || c.is_whitespace()))
        .collect()
}

/// The line of the prompt (not of the queue under it) that gives its path.
fn prompt_path(screen: &str) -> Option<String> {
    screen.lines().find_map(|line| {
        let line = line.trim_matches(|c: char| c == '│' || c.is_whitespace());
        let rest = line.strip_prefix("path")?;
        Some(rest.split_whitespace().next()?.to_owned())
    })
}

#[test]
fn a_host_name_longer_than_the_pane_is_shown_whole() {
    let Some(ui) = UiWorld::start("tl", 60) else {
        return;
    };
    let (world, id, tmux) = (&ui.world, &ui.id, &ui.tmux);
    // 129 characters, in a pane 100 wide.
    let host = "the-first-label-of-a-very-long-host-name-for-the-tui-test-case.\
                second-label-that-keeps-going.third.unknown.test";
    let curl = curl_in_session(world, id, &world.url(host, "/long"));
    wait_until("the prompt appears", || tmux.screen().contains("/long"));
    let screen = tmux.screen();
    assert!(joined(&screen).contains(host), "the host is cut:\n{screen}");
    // Its end, which says whose it is, is on screen on its own line's end, not past the edge.
    assert!(screen.contains("unknown.test"), "{screen}");
    std::thread::sleep(Duration::from_millis(1200));
    tmux.keys(&["d"]);
    let out = output_of(curl);
    assert!(out.contains("status=403"), "{out}");
    ui.finish();
}

#[test]
fn a_key_pressed_as_the_prompt_being_read_is_replaced_answers_nothing() {
    // Unanswered requests are denied after 6 s: the first prompt goes away under the person.
    let Some(ui) = UiWorld::start("tw", 6) else {
        return;
    };
    let (world, id, tmux) = (&ui.world, &ui.id, &ui.tmux);
    let first = curl_in_session(world, id, &world.url("unknown.test", "/first"));
    wait_until("the first prompt appears", || {
        prompt_path(&tmux.screen()).as_deref() == Some("/first")
    });
    std::thread::sleep(Duration::from_secs(2));
    let second = curl_in_session(world, id, &world.url("unknown.test", "/second"));
    // The first, still selected, times out; the second takes its place, and the key meant for
    // the first lands right then.
    wait_until("the second prompt replaces the first", || {
        prompt_path(&tmux.screen()).as_deref() == Some("/second")
    });
    tmux.keys(&["a"]);
    let out = output_of(first);
    assert!(out.contains("status=403"), "{out}");
    let out = output_of(second);
    assert!(
        out.contains("status=403") && !out.contains("upstream saw"),
        "a key pressed as the prompt changed answered it:\n{out}"
    );
    ui.finish();
}

/// The pid of the process whose command line is exactly `words`, once there is one.
fn process_running(words: &[String]) -> u32 {
    let mut found = None;
    wait_until("the process runs", || {
        found = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .find_map(|entry| {
                let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
                let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
                let args: Vec<String> = cmdline
                    .split(|&b| b == 0)
                    .filter(|arg| !arg.is_empty())
                    .map(|arg| String::from_utf8_lossy(arg).into_owned())
                    .collect();
                (args.len() == words.len() + 1 && args[1..] == *words).then_some(pid)
            });
        found.is_some()
    });
    found.unwrap()
}

#[test]
fn keys_queued_while_hh_shell_had_the_terminal_answer_nothing() {
    let Some(ui) = UiWorld::start("tq", 60) else {
        return;
    };
    let (world, id, tmux) = (&ui.world, &ui.id, &ui.tmux);
    let held = curl_in_session(world, id, &world.url("unknown.test", "/queued"));
    wait_until("the prompt appears", || {
        prompt_path(&tmux.screen()).as_deref() == Some("/queued")
    });
    // Long past the answer delay: only the discarding of queued input can stop the key below.
    std::thread::sleep(Duration::from_millis(1500));
    // Enter on the session attaches: the UI hands the terminal to `hh shell ID`.
    tmux.keys(&["Enter"]);
    let shell = process_running(&[
        "--config".into(),
        world.config.display().to_string(),
        "shell".into(),
        id.clone(),
    ]);
    // `hh shell` relays the terminal through the agent; once it has the terminal (raw mode, its
    // exec started), stopping it leaves nothing reading the terminal: the key is queued in it,
    // as when a program ignores its input, and hh takes the terminal back after it ends.
    let mut screen = String::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let shows_prompt = |screen: &str| {
        !screen.contains("/queued")
            && screen
                .lines()
                .any(|line| line.trim_end().ends_with(['$', '#']))
    };
    while !shows_prompt(&screen) {
        assert!(
            std::time::Instant::now() < deadline,
            "no shell prompt on the screen:\n{screen}"
        );
        std::thread::sleep(Duration::from_millis(100));
        screen = tmux.screen();
    }
    // SAFETY: signals to a process this test's UI started.
    unsafe { libc::kill(shell as i32, libc::SIGSTOP) };
    std::thread::sleep(Duration::from_millis(300));
    tmux.keys(&["a"]);
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: as above.
    unsafe { libc::kill(shell as i32, libc::SIGKILL) };
    wait_until("hh shell has ended", || {
        !std::path::Path::new(&format!("/proc/{shell}")).exists()
    });
    // The UI takes the terminal back and reads whatever is there.
    std::thread::sleep(Duration::from_millis(1500));
    let pending = world.hh(&["approvals", "--json"]);
    let pending: Vec<serde_json::Value> = serde_json::from_slice(&pending.stdout).unwrap();
    assert_eq!(
        pending.len(),
        1,
        "a key queued during hh shell answered the prompt:\n{}\n{}",
        tmux.screen(),
        std::fs::read_to_string(&ui.log).unwrap_or_default()
    );
    let answered = world.hh(&["approvals", "deny", &pending[0]["id"].to_string()]);
    assert!(answered.status.success());
    let out = output_of(held);
    assert!(out.contains("status=403"), "{out}");
    ui.finish();
}

#[test]
fn a_held_request_is_answered_allow_forever_from_the_terminal_ui() {
    let Some(ui) = UiWorld::start("t", 60) else {
        return;
    };
    let (world, id, tmux) = (&ui.world, &ui.id, &ui.tmux);

    let url = world.url("unknown.test", "/from-tui");
    let curl = world
        .hh_command(&["shell", id, "--", "curl", "-sS", "-m", "40", &url])
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

    // The answer keys act once the prompt has been on screen for a second.
    std::thread::sleep(Duration::from_millis(1200));
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
    let rules = std::fs::read_to_string(world.rules_file()).unwrap();
    assert!(rules.contains("this comment must survive"), "{rules}");
    assert!(rules.contains("domain=unknown.test"), "{rules}");

    // The UI's measure: event arrival to the frame that shows the prompt.
    let logged = std::fs::read_to_string(&ui.log).unwrap_or_default();
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
    ui.finish();
}

#[test]
fn the_ui_ends_when_its_terminal_closes_while_hh_shell_has_it() {
    let Some(ui) = UiWorld::start("th", 60) else {
        return;
    };
    let UiWorld {
        tmux,
        id,
        agent,
        world,
        ..
    } = ui;
    let tui = process_running(&["--config".into(), world.config.display().to_string()]);
    tmux.keys(&["Enter"]);
    process_running(&[
        "--config".into(),
        world.config.display().to_string(),
        "shell".into(),
        id.clone(),
    ]);
    tmux.wait_for(":/workspace", Duration::from_secs(20));
    // The pane goes away (a closed terminal window, a dropped SSH connection): hh shell ends
    // with it, and the UI, taking the terminal back, must see the hangup and end too, not spin.
    drop(tmux);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::path::Path::new(&format!("/proc/{tui}")).exists() {
        let state = std::fs::read_to_string(format!("/proc/{tui}/stat")).unwrap_or_default();
        if state.split(' ').nth(2) == Some("Z") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the UI still runs after its terminal closed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    agent.terminate();
    world.assert_nothing_left();
}
