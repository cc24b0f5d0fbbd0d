//! Whole-screen snapshots with ratatui's `TestBackend`: every screen, and the approval prompt
//! in each state. The expected text is kept here, line by line (trailing spaces trimmed), so a
//! change to a screen shows in the diff as the screen itself.

use std::path::{Path, PathBuf};

use ratatui::{
    Terminal,
    backend::TestBackend,
    crossterm::event::{KeyCode, KeyEvent, KeyModifiers},
};

use super::render;
use crate::{
    api::protocol::{
        AgentHello, ClientRequest, DecisionEvent, Event, PendingApproval, SessionInfo, SessionState,
    },
    config::{Env, load::parse},
    tui::{
        agent_link::FromAgent,
        app::{AgentStatus, App, ConfigState, Screen},
    },
};

/// 2023-11-14 22:13:20 UTC: a fixed clock for uptimes and remaining times.
const NOW_MS: u64 = 1_700_000_000_000;

const CONFIG: &str = r#"
version = 1
docker_dir = "/home/u/.config/harness-hat/docker"
[container_profiles.default]
image = "default"
memory = "6g"
cpus = "3"
[container_profiles.rust]
image = "rust"
memory = "8g"
cpus = 4
starter_network_allowlist = ["domain=crates.io,*.crates.io"]
[[workspaces]]
name = "shop"
canonical_path = "/home/u/src/shop"
[[workspaces]]
name = "blog"
canonical_path = "/home/u/src/blog"
"#;

fn app() -> App {
    let env = Env {
        home: Some("/home/u".into()),
        xdg_config_home: None,
    };
    let config = parse(
        CONFIG,
        Path::new("/home/u/.config/harness-hat/harness-hat.toml"),
        &env,
    )
    .unwrap();
    let mut app = App::new(
        PathBuf::from("/home/u/.config/harness-hat/harness-hat.toml"),
        ConfigState::Loaded(Box::new(config)),
        PathBuf::from("/run/hh/agent.sock"),
        NOW_MS,
    );
    app.agent = AgentStatus::Connected(AgentHello {
        version: "0.1.0".into(),
        peer_uid: 1000,
        mode: "agent".into(),
    });
    app
}

fn session(id: &str, workspace: &str, template: &str) -> SessionInfo {
    SessionInfo {
        id: id.into(),
        name: id.into(),
        workspace: workspace.into(),
        template: template.into(),
        owner_uid: 1000,
        container_id: "c0ffee".into(),
        started_at: NOW_MS / 1000 - 307,
        state: SessionState::Running,
        memory_bytes: Some(512 << 20),
        cpu_usec: Some(12_300_000),
        allowed: 41,
        denied: 2,
        protected_paths: Vec::new(),
        image: String::new(),
        git: None,
        ports: Vec::new(),
        notices: Vec::new(),
        harness: None,
    }
}

fn pending(id: u64, host: &str, path: &str, waiting: u32, seconds_left: u64) -> PendingApproval {
    PendingApproval {
        process: None,
        id,
        session: "s1".into(),
        method: Some("GET".into()),
        host: host.into(),
        path: Some(path.into()),
        port: 443,
        waiting,
        deadline_ms: NOW_MS + seconds_left * 1000,
        rules_file: "/home/u/src/shop/.hh/harness-rules.toml".into(),
        layer: "workspace".into(),
        suggested_rule: format!("domain={host}"),
        query: None,
        body: crate::api::protocol::BodySize::None,
        note: None,
    }
}

/// `event` as it arrived a second ago: a prompt it brings has been read, its keys act.
fn event(app: &mut App, event: Event) {
    let now = app.now_ms;
    app.now_ms = now - crate::tui::approval_queue::ANSWER_DELAY_MS;
    app.on_agent(FromAgent::Event {
        event,
        received: std::time::Instant::now(),
    });
    app.now_ms = now;
}

fn key(app: &mut App, code: KeyCode) {
    app.on_key(KeyEvent::new(code, KeyModifiers::NONE));
}

fn decision(seconds: u64, session: &str, host: &str, path: &str, verdict: &str) -> DecisionEvent {
    DecisionEvent {
        process: None,
        time_ms: NOW_MS - 60_000 + seconds * 1000,
        session: session.into(),
        method: Some("GET".into()),
        host: host.into(),
        path: Some(path.into()),
        port: 443,
        decision: verdict.into(),
        rule: (verdict == "allow").then(|| "domain=*.crates.io".to_string()),
    }
}

/// The screen as text, trailing spaces trimmed.
fn draw(app: &App) -> String {
    let mut terminal = Terminal::new(TestBackend::new(80, 18)).unwrap();
    terminal.draw(|frame| render(app, frame)).unwrap();
    let buffer = terminal.backend().buffer();
    let width = buffer.area.width as usize;
    buffer
        .content
        .chunks(width)
        .map(|row| {
            let line: String = row.iter().map(|cell| cell.symbol()).collect();
            line.trim_end().to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[track_caller]
fn assert_screen(app: &App, expected: &str) {
    let actual = draw(app);
    let expected = expected.strip_prefix('\n').unwrap_or(expected).trim_end();
    assert!(
        actual == expected,
        "screen differs; actual:\n{actual}\n\nexpected:\n{expected}\n"
    );
}

#[test]
fn first_run_offers_the_starter_config_and_says_how_to_start_the_agent() {
    let mut app = app();
    app.config = ConfigState::Missing;
    app.agent = AgentStatus::Unreachable("no hh agent answers at /run/hh/agent.sock".into());
    assert_screen(
        &app,
        r#"
 hh 1 Sessions 2 Approvals 3 Activity 4 Workspaces 5 Templates  agent: down
┌ Agent ───────────────────────────────────────────────────────────────────────┐
│No hh agent answers at /run/hh/agent.sock.                                    │
│Start it with:  sudo hh agent                                                 │
│`hh doctor` says whether this host can run it (eBPF, cgroup v2, Docker).      │
│Retrying every second.                                                        │
│                                                                              │
└──────────────────────────────────────────────────────────────────────────────┘
┌ First run ───────────────────────────────────────────────────────────────────┐
│Welcome to hh.                                                                │
│                                                                              │
│There is no config at /home/u/.config/harness-hat/harness-hat.toml yet.       │
│Press c to create it with the commented starter (the file `hh init` writes),  │
│then add a workspace on the Workspaces screen (4).                            │
│                                                                              │
│                                                                              │
└──────────────────────────────────────────────────────────────────────────────┘
c create config  Tab/1-5 screens  ? help  q quit
"#,
    );
}

#[test]
fn sessions_screen_lists_running_sessions() {
    let mut app = app();
    app.on_agent(FromAgent::Reply {
        request: ClientRequest::ListSessions {},
        result: Ok(crate::api::protocol::Reply::Sessions {
            sessions: vec![
                session("s1", "shop", "default"),
                session("s2", "blog", "rust"),
            ],
        }),
    });
    key(&mut app, KeyCode::Down);
    assert_screen(
        &app,
        r#"
 hh 1 Sessions 2 Approvals 3 Activity 4 Workspaces 5 Templates  agent: ok
┌ Sessions (2) ────────────────────────────────────────────────────────────────┐
│  ID       WORKSPACE      TEMPLATE  STATE    UP     CPU    MEMORY  ALLOW DENY │
│  s1       shop           default   running  5m07s  12.3s  512.0M  41    2    │
│> s2       blog           rust      running  5m07s  12.3s  512.0M  41    2    │
│                                                                              │
│                                                                              │
│                                                                              │
│                                                                              │
│                                                                              │
│                                                                              │
│                                                                              │
│                                                                              │
│                                                                              │
│                                                                              │
│                                                                              │
└──────────────────────────────────────────────────────────────────────────────┘
n new  s stop  Enter attach  ↑↓ select  Tab/1-5 screens  ? help  q quit
"#,
    );
}

#[test]
fn new_session_picks_a_template_after_a_workspace() {
    let mut app = app();
    key(&mut app, KeyCode::Char('n'));
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Down);
    assert_screen(
        &app,
        r#"
 hh 1 Sessions 2 Approvals 3 Activity 4 Workspaces 5 Templates  agent: ok
┌ Sessions: none running; n starts one ────────────────────────────────────────┐
│ID       WORKSPACE        TEMPLATE  STATE    UP     CPU    MEMORY  ALLOW DENY │
│                                                                              │
│                                                                              │
│                                                                              │
│                                                                              │
│              ┌ New session of shop: template ─────────────────┐              │
│              │  default                                       │              │
│              │> rust                                          │              │
│              └────────────────────────────────────────────────┘              │
│                                                                              │
│                                                                              │
│                                                                              │
│                                                                              │
│                                                                              │
└──────────────────────────────────────────────────────────────────────────────┘
↑↓ select  Enter ok  Esc cancel
"#,
    );
}

#[test]
fn one_pending_request_shows_as_a_prompt_on_any_screen() {
    let mut app = app();
    event(
        &mut app,
        Event::ApprovalPending(pending(7, "api.example.test", "/v1/items", 3, 28)),
    );
    assert_screen(
        &app,
        r#"
 hh 1 Sessions 2 Approvals (1) 3 Activity 4 Workspaces 5 Templates  agent: ok
┌ Sessions: none running; n starts one ────────────────────────────────────────┐
│ID       WORKSPACE        TEMPLATE  STATE    UP     CPU    MEMORY  ALLOW DENY │
│                                                                              │
│                                                                              │
│                                                                              │
│                                                                              │
└──────────────────────────────────────────────────────────────────────────────┘
┌ Request held 1 of 1 ─────────────────────────────────────────────────────────┐
│session s1  method GET  port 443  waiting 3  denied in 28s                    │
│host  api.example.test                                                        │
│path  /v1/items                                                               │
│query none                                                                    │
│body  none                                                                    │
│a allow once  d deny once  A allow forever…  D deny forever…  [ ] other prompt│
│g allow its host 10 min  G for 1 h  S for this session  (no rule written)     │
└──────────────────────────────────────────────────────────────────────────────┘
n new  s stop  Enter attach  ↑↓ select  Tab/1-5 screens  ? help  q quit
"#,
    );
}

#[test]
fn a_long_host_wraps_whole_and_the_prompt_shows_what_else_leaves() {
    let mut app = app();
    app.screen = Screen::Approvals;
    let host = "a-very-long-subdomain-label-for-this-test.another-long-label-here.\
                third.registry.example.test";
    let mut long = pending(7, host, "/v1/upload", 1, 28);
    long.method = Some("POST".into());
    long.query = Some("page=2&token=abc".into());
    long.body = crate::api::protocol::BodySize::Bytes(2048);
    event(&mut app, Event::ApprovalPending(long));
    assert_screen(
        &app,
        r#"
 hh 1 Sessions 2 Approvals (1) 3 Activity 4 Workspaces 5 Templates  agent: ok
┌ Held requests (soonest timeout first) ───────────────────────────────────────┐
│  SESSION    METHOD  TARGET                                     WAITING LEFT  │
│> s1         POST    a-very-long-subdomain-label-for-this-test. 1       28s   │
│                     another-long-label-here.third.registry.                  │
│                     example.test:443/v1/upload                               │
└──────────────────────────────────────────────────────────────────────────────┘
┌ Request held 1 of 1 ─────────────────────────────────────────────────────────┐
│session s1  method POST  port 443  waiting 1  denied in 28s                   │
│host  a-very-long-subdomain-label-for-this-test.another-long-label-here.third.│
│      registry.example.test                                                   │
│path  /v1/upload                                                              │
│query page=2&token=abc                                                        │
│body  2048 bytes (2.0K)                                                       │
│a allow once  d deny once  A allow forever…  D deny forever…  [ ] other prompt│
│g allow its host 10 min  G for 1 h  S for this session  (no rule written)     │
└──────────────────────────────────────────────────────────────────────────────┘
↑↓ select prompt  Tab/1-5 screens  ? help  q quit
"#,
    );
}

#[test]
fn a_prompt_for_the_proxy_hosts_loopback_carries_its_note_and_fresh_keys_wait() {
    let mut app = app();
    let mut local = pending(9, "127.0.0.1", "/", 1, 28);
    local.port = 5432;
    local.body = crate::api::protocol::BodySize::Streamed;
    local.note = Some(
        "127.0.0.1 is the loopback of the proxy's host, not the session's own (a session's \
         loopback never reaches the proxy): allowing it lets the session reach services on \
         that machine"
            .into(),
    );
    // Just arrived: its answer keys wait.
    app.on_agent(FromAgent::Event {
        event: Event::ApprovalPending(local),
        received: std::time::Instant::now(),
    });
    app.now_ms += 400;
    assert_screen(
        &app,
        r#"
 hh 1 Sessions 2 Approvals (1) 3 Activity 4 Workspaces 5 Templates  agent: ok
┌ Sessions: none running; n starts one ────────────────────────────────────────┐
│ID       WORKSPACE        TEMPLATE  STATE    UP     CPU    MEMORY  ALLOW DENY │
│                                                                              │
│                                                                              │
└──────────────────────────────────────────────────────────────────────────────┘
┌ Request held 1 of 1 ─────────────────────────────────────────────────────────┐
│session s1  method GET  port 5432  waiting 1  denied in 28s                   │
│host  127.0.0.1                                                               │
│path  /                                                                       │
│query none                                                                    │
│body  streamed: its length was not given ahead                                │
│note  127.0.0.1 is the loopback of the proxy's host, not the session's own (a │
│      session's loopback never reaches the proxy): allowing it lets the       │
│      session reach services on that machine                                  │
│answer keys wait 0.6s: the held request just changed  [ ] other prompt        │
└──────────────────────────────────────────────────────────────────────────────┘
n new  s stop  Enter attach  ↑↓ select  Tab/1-5 screens  ? help  q quit
"#,
    );
}

#[test]
fn a_prompt_says_which_process_in_the_session_asks() {
    let mut app = app();
    let mut asked = pending(9, "registry.example.test", "/lodash", 1, 28);
    asked.process = Some("node [37] (npm install lodash)".into());
    app.on_agent(FromAgent::Event {
        event: Event::ApprovalPending(asked),
        received: std::time::Instant::now() - std::time::Duration::from_secs(5),
    });
    let screen = draw(&app);
    let by = screen
        .lines()
        .position(|line| line.starts_with("│by    node [37] (npm install lodash) "))
        .unwrap_or_else(|| panic!("no process line:\n{screen}"));
    assert!(
        screen
            .lines()
            .nth(by + 1)
            .is_some_and(|line| line.starts_with("│host  registry.example.test ")),
        "{screen}"
    );
}

#[test]
fn several_pending_requests_queue_with_their_remaining_time() {
    let mut app = app();
    app.screen = Screen::Approvals;
    event(
        &mut app,
        Event::ApprovalPending(pending(7, "api.example.test", "/v1/items", 1, 28)),
    );
    event(
        &mut app,
        Event::ApprovalPending(pending(8, "cdn.example.test", "/lib.js", 2, 12)),
    );
    event(
        &mut app,
        Event::ApprovalPending(pending(9, "pypi.org", "/simple/", 1, 55)),
    );
    assert_screen(
        &app,
        r#"
 hh 1 Sessions 2 Approvals (3) 3 Activity 4 Workspaces 5 Templates  agent: ok
┌ Held requests (soonest timeout first) ───────────────────────────────────────┐
│  SESSION    METHOD  TARGET                                     WAITING LEFT  │
│  s1         GET     cdn.example.test:443/lib.js                2       12s   │
│> s1         GET     api.example.test:443/v1/items              1       28s   │
└──────────────────────────────────────────────────────────────────────────────┘
┌ Request held 2 of 3 ─────────────────────────────────────────────────────────┐
│session s1  method GET  port 443  waiting 1  denied in 28s                    │
│host  api.example.test                                                        │
│path  /v1/items                                                               │
│query none                                                                    │
│body  none                                                                    │
│  next 1: s1 GET cdn.example.test:443/lib.js (2 waiting, 12s left)            │
│  next 3: s1 GET pypi.org:443/simple/ (1 waiting, 55s left)                   │
│a allow once  d deny once  A allow forever…  D deny forever…  [ ] other prompt│
│g allow its host 10 min  G for 1 h  S for this session  (no rule written)     │
└──────────────────────────────────────────────────────────────────────────────┘
↑↓ select prompt  Tab/1-5 screens  ? help  q quit
"#,
    );
}

#[test]
fn the_rule_editor_shows_the_widened_rule_and_its_file() {
    let mut app = app();
    event(
        &mut app,
        Event::ApprovalPending(pending(7, "api.example.test", "/v1/items/4", 1, 28)),
    );
    key(&mut app, KeyCode::Char('A'));
    key(&mut app, KeyCode::Char('h'));
    key(&mut app, KeyCode::Char('/'));
    key(&mut app, KeyCode::Char('/'));
    assert_screen(
        &app,
        r#"
 hh 1 Sessions 2 Approvals (1) 3 Activity 4 Workspaces 5 Templates  agent: ok
┌ Sessions: none running; n starts one ────────────────────────────────────────┐
│ID       WORKSPACE        TEMPLATE  STATE    UP     CPU    MEMORY  ALLOW DENY │
│                                                                              │
│                                                                              │
│ ┌ Allow forever ───────────────────────────────────────────────────────────┐ │
│ │Request: GET api.example.test:443/v1/items/4                              │ │
└─│                                                                          │─┘
┌ │Rule:    domain=*.example.test path=/v1/items/*                           │─┐
│s│Into:    /home/u/src/shop/.hh/harness-rules.toml  [network] allowlist     │ │
│h│✓ covers this request                                                     │ │
│p│                                                                          │ │
│q│h host  p port  / path  m method  t allow/deny  Enter write  Esc back     │ │
│b└──────────────────────────────────────────────────────────────────────────┘ │
│a allow once  d deny once  A allow forever…  D deny forever…  [ ] other prompt│
│g allow its host 10 min  G for 1 h  S for this session  (no rule written)     │
└──────────────────────────────────────────────────────────────────────────────┘
h host  p port  / path  m method  t allow/deny  Enter write  Esc cancel
"#,
    );
}

#[test]
fn an_answer_the_agent_refused_stays_with_its_reason() {
    let mut app = app();
    event(
        &mut app,
        Event::ApprovalPending(pending(7, "api.example.test", "/v1/items", 1, 28)),
    );
    key(&mut app, KeyCode::Char('A'));
    key(&mut app, KeyCode::Enter);
    app.on_agent(FromAgent::Reply {
        request: ClientRequest::Answer {
            id: 7,
            answer: crate::api::protocol::Answer::AllowForever { rule: None },
        },
        result: Err("the rule `domain=x.test` does not cover GET api.example.test".into()),
    });
    assert_screen(
        &app,
        r#"
 hh 1 Sessions 2 Approvals (1) 3 Activity 4 Workspaces 5 Templates  agent: ok
┌ Sessions: none running; n starts one ────────────────────────────────────────┐
│ID       WORKSPACE        TEMPLATE  STATE    UP     CPU    MEMORY  ALLOW DENY │
│                                                                              │
│                                                                              │
│                                                                              │
└──────────────────────────────────────────────────────────────────────────────┘
┌ Request held 1 of 1 ─────────────────────────────────────────────────────────┐
│session s1  method GET  port 443  waiting 1  denied in 28s                    │
│host  api.example.test                                                        │
│path  /v1/items                                                               │
│query none                                                                    │
│body  none                                                                    │
│agent refused: the rule `domain=x.test` does not cover GET api.example.test   │
│a allow once  d deny once  A allow forever…  D deny forever…  [ ] other prompt│
│g allow its host 10 min  G for 1 h  S for this session  (no rule written)     │
└──────────────────────────────────────────────────────────────────────────────┘
n new  s stop  Enter attach  ↑↓ select  Tab/1-5 screens  ? help  q quit
"#,
    );
}

#[test]
fn a_long_host_and_its_rule_wrap_whole_on_the_activity_screen() {
    let mut app = app();
    app.screen = Screen::Activity;
    let host = "a-long-label-that-fills-much-of-the-column.and-another-one.example.test";
    let mut allowed = decision(1, "s1", host, "/x", "allow");
    allowed.rule = Some(format!("workspace rules.toml allowlist[0]: domain={host}"));
    event(&mut app, Event::Decision(allowed));
    // Both columns wrap: read top to bottom, each gives the whole name back.
    assert_screen(
        &app,
        r#"
 hh 1 Sessions 2 Approvals 3 Activity 4 Workspaces 5 Templates  agent: ok
┌ Activity: session all · decision all ────────────────────────────────────────┐
│  TIME     SESSION        METHOD TARGET                 RULE                  │
│> 22:12:21 s1       allow GET    a-long-label-that-fill workspace rules.toml  │
│                                 s-much-of-the-column.  allowlist[0]:         │
│                                 and-another-one.       domain=a-long-label-th│
│                                 example.test:443/x     at-fills-much-of-the-c│
│                                                        olumn.and-another-one.│
│                                                        example.test          │
│                                                                              │
│                                                                              │
│                                                                              │
│                                                                              │
│                                                                              │
│                                                                              │
│                                                                              │
└──────────────────────────────────────────────────────────────────────────────┘
f session filter  v decision filter  Enter rule from denied  Tab/1-5 screens  ?
"#,
    );
}

#[test]
fn activity_screen_filters_decisions() {
    let mut app = app();
    app.screen = Screen::Activity;
    event(
        &mut app,
        Event::Decision(decision(1, "s1", "static.crates.io", "/x.crate", "allow")),
    );
    event(
        &mut app,
        Event::Decision(decision(2, "s1", "evil.test", "/exfil", "deny")),
    );
    event(
        &mut app,
        Event::Decision(decision(3, "s2", "pypi.org", "/simple/", "deny")),
    );
    key(&mut app, KeyCode::Char('v'));
    key(&mut app, KeyCode::Char('v'));
    key(&mut app, KeyCode::Char('f'));
    assert_screen(
        &app,
        r#"
 hh 1 Sessions 2 Approvals 3 Activity 4 Workspaces 5 Templates  agent: ok
┌ Activity: session s1 · decision deny ────────────────────────────────────────┐
│  TIME     SESSION        METHOD TARGET                 RULE                  │
│> 22:12:22 s1       deny  GET    evil.test:443/exfil    -                     │
│                                                                              │
│                                                                              │
│                                                                              │
│                                                                              │
│                                                                              │
│                                                                              │
│                                                                              │
│                                                                              │
│                                                                              │
│                                                                              │
│                                                                              │
│                                                                              │
└──────────────────────────────────────────────────────────────────────────────┘
f session filter  v decision filter  Enter rule from denied  Tab/1-5 screens  ?
"#,
    );
}

#[test]
fn workspaces_screen_lists_the_config_workspaces() {
    let mut app = app();
    app.screen = Screen::Workspaces;
    assert_screen(
        &app,
        r#"
 hh 1 Sessions 2 Approvals 3 Activity 4 Workspaces 5 Templates  agent: ok
┌ Workspaces in /home/u/.config/harness-hat/harness-hat.toml ──────────────────┐
│  NAME             PATH (rules: PATH/harness-rules.toml)                      │
│> shop             /home/u/src/shop                                           │
│  blog             /home/u/src/blog                                           │
│                                                                              │
│                                                                              │
│                                                                              │
│                                                                              │
│                                                                              │
│                                                                              │
│                                                                              │
│                                                                              │
│                                                                              │
│                                                                              │
│                                                                              │
└──────────────────────────────────────────────────────────────────────────────┘
n add  x remove  t trust rules  ↑↓ select  Tab/1-5 screens  ? help  q quit
"#,
    );
}

#[test]
fn templates_screen_lists_profiles_with_limits_and_allowlist() {
    let mut app = app();
    app.screen = Screen::Templates;
    assert_screen(
        &app,
        r#"
 hh 1 Sessions 2 Approvals 3 Activity 4 Workspaces 5 Templates  agent: ok
┌ Templates (stems under /home/u/.config/harness-hat/docker) ──────────────────┐
│  NAME       STEM       MEMORY  CPUS  STARTER ALLOWLIST                       │
│> default    default    6.0G    3     -                                       │
│  rust       rust       8.0G    4     domain=crates.io,*.crates.io            │
│                                                                              │
│                                                                              │
│                                                                              │
│                                                                              │
│                                                                              │
│                                                                              │
│                                                                              │
│                                                                              │
│                                                                              │
│                                                                              │
│                                                                              │
└──────────────────────────────────────────────────────────────────────────────┘
↑↓ select  Tab/1-5 screens  ? help  q quit
"#,
    );
}

#[test]
fn tiny_terminals_draw_without_panicking() {
    let mut app = app();
    event(
        &mut app,
        Event::ApprovalPending(pending(7, "api.example.test", "/v1/items", 1, 28)),
    );
    event(
        &mut app,
        Event::ApprovalPending(pending(8, "cdn.example.test", "/lib.js", 2, 12)),
    );
    for (width, height) in [(1, 1), (10, 3), (20, 5), (40, 10)] {
        for screen in Screen::ALL {
            app.screen = screen;
            for editor_open in [false, true] {
                let mut app = app.clone();
                if editor_open {
                    key(&mut app, KeyCode::Char('A'));
                }
                let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
                terminal.draw(|frame| render(&app, frame)).unwrap();
            }
        }
    }
}

#[test]
fn help_lists_every_key() {
    let mut app = app();
    key(&mut app, KeyCode::Char('?'));
    assert_screen(
        &app,
        r#"
 hh 1 Sessions 2 Approvals 3 Activity 4 Workspaces 5 Templates  agent: ok
┌ Sessions: none running; n starts one ────────────────────────────────────────┐
│ID┌ Keys ──────────────────────────────────────────────────────────────────┐Y │
│  │Anywhere   Tab/Shift-Tab or 1-5 switch screens, q or Ctrl-C quits       │  │
│  │Prompt     a allow once, d deny once, A allow forever…, D deny forever…,│  │
│  │           g G S allow its host for 10 min, 1 h, this session           │  │
│  │           [ and ] pick another held request                            │  │
│  │Editor     h host/*.parent, p port, / path, m method, t allow/deny,     │  │
│  │           Enter writes the rule, Esc goes back                         │  │
│  │Sessions   n new (workspace, template), s stop, Enter attach (hh shell) │  │
│  │Activity   f session filter, v decision filter, Enter rule from denied  │  │
│  │Workspaces n add, x remove, t review and trust changed rules            │  │
│  │First run  c writes the starter config                                  │  │
│  │                                                                        │  │
│  │The agent decides; the rule shown is the exact text written.            │  │
│  │Agent 0.1.0 (agent mode) at /run/hh/agent.sock                          │  │
└──└────────────────────────────────────────────────────────────────────────┘──┘
any key closes
"#,
    );
}

#[test]
fn adding_a_workspace_asks_for_its_directory() {
    let mut app = app();
    key(&mut app, KeyCode::Char('4'));
    key(&mut app, KeyCode::Char('n'));
    for c in "~/src/new".chars() {
        key(&mut app, KeyCode::Char(c));
    }
    assert_screen(
        &app,
        r#"
 hh 1 Sessions 2 Approvals 3 Activity 4 Workspaces 5 Templates  agent: ok
┌ Workspaces in /home/u/.config/harness-hat/harness-hat.toml ──────────────────┐
│  NAME             PATH (rules: PATH/harness-rules.toml)                      │
│> shop             /home/u/src/shop                                           │
│  blog             /home/u/src/blog                                           │
│                                                                              │
│                                                                              │
│         ┌ Add workspace ───────────────────────────────────────────┐         │
│         │Directory (absolute or ~/…):                              │         │
│         │> ~/src/new_                                              │         │
│         └──────────────────────────────────────────────────────────┘         │
│                                                                              │
│                                                                              │
│                                                                              │
│                                                                              │
│                                                                              │
└──────────────────────────────────────────────────────────────────────────────┘
type  Enter ok  Esc cancel
"#,
    );
}

#[test]
fn a_config_that_does_not_load_says_where() {
    let mut app = app();
    app.screen = Screen::Workspaces;
    app.config = ConfigState::Invalid(
        "/home/u/.config/harness-hat/harness-hat.toml:3:1: `workspaces[0].canonical_path`: `/etc/x` is under /etc, which hh never hands to a session".into(),
    );
    assert_screen(
        &app,
        r#"
 hh 1 Sessions 2 Approvals 3 Activity 4 Workspaces 5 Templates  agent: ok
┌ Config ──────────────────────────────────────────────────────────────────────┐
│The config does not load:                                                     │
│                                                                              │
│/home/u/.config/harness-hat/harness-hat.toml:3:1:                             │
│`workspaces[0].canonical_path`: `/etc/x` is under /etc, which hh never hands  │
│to a session                                                                  │
│                                                                              │
│Fix the file and start hh again.                                              │
│                                                                              │
│                                                                              │
│                                                                              │
│                                                                              │
│                                                                              │
│                                                                              │
│                                                                              │
└──────────────────────────────────────────────────────────────────────────────┘
fix the config file, then start hh again  Tab/1-5 screens  ? help  q quit
"#,
    );
}

#[test]
fn a_changed_rules_file_shows_its_diff_and_the_question() {
    let mut app = app();
    app.mode = crate::tui::app::Mode::ReviewRules {
        workspace: "shop".into(),
        file: crate::api::protocol::RulesFileStatus {
            file: "/home/u/src/shop/harness-rules.toml".into(),
            layer: "workspace".into(),
            in_force: false,
            ever_trusted: true,
            sha256: "00".into(),
            diff: "  [network]\n- allowlist = [\"domain=a.test\"]\n+ allowlist = [\"domain=*\"]\n"
                .into(),
            error: None,
        },
        rest: Vec::new(),
    };
    let screen = draw(&app);
    for expected in [
        " Rules of shop: trust this change? ",
        "/home/u/src/shop/harness-rules.toml (workspace)",
        "changed since trusted: the trusted version and the deny rules are in force",
        "- allowlist = [\"domain=a.test\"]",
        "+ allowlist = [\"domain=*\"]",
        "y: trust this exact version (in force at once)",
        "y trust  n not now  Esc stop",
    ] {
        assert!(screen.contains(expected), "{expected} not in\n{screen}");
    }
}

#[test]
fn an_empty_template_picker_says_how_to_add_a_template() {
    let env = crate::config::Env {
        home: Some("/home/u".into()),
        xdg_config_home: None,
    };
    let text =
        "version = 1\n[[workspaces]]\nname = \"shop\"\ncanonical_path = \"/home/u/src/shop\"\n";
    let config = crate::config::load::parse(text, std::path::Path::new("c.toml"), &env).unwrap();
    let mut app = app();
    app.config = crate::tui::app::ConfigState::Loaded(Box::new(config));
    app.mode = crate::tui::app::Mode::PickTemplate {
        workspace: "shop".into(),
        selected: 0,
    };
    let screen = draw(&app);
    assert!(
        screen.contains("No template yet: add [container_profiles.NAME] with"),
        "{screen}"
    );
    assert!(screen.contains("(a stem under docker/) to"), "{screen}");
}
