//! The pure state machine: which keys send which requests, and how replies and events change
//! what the keys act on.

use std::path::{Path, PathBuf};

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::*;
use crate::{
    api::protocol::{DecisionEvent, PendingApproval, SessionInfo, SessionState},
    config::{Env, load::parse},
};

const CONFIG: &str = r#"
version = 1
[container_profiles.default]
image = "default"
[container_profiles.rust]
image = "rust"
[[workspaces]]
name = "shop"
canonical_path = "/home/u/src/shop"
"#;

fn app() -> App {
    let env = Env {
        home: Some("/home/u".into()),
        xdg_config_home: None,
    };
    let config = parse(CONFIG, Path::new("c.toml"), &env).unwrap();
    App::new(
        PathBuf::from("c.toml"),
        ConfigState::Loaded(Box::new(config)),
        PathBuf::from("/run/hh/agent.sock"),
        0,
    )
}

fn press(app: &mut App, code: KeyCode) -> Option<Effect> {
    app.on_key(KeyEvent::new(code, KeyModifiers::NONE))
}

fn typed(app: &mut App, text: &str) {
    for c in text.chars() {
        assert_eq!(press(app, KeyCode::Char(c)), None);
    }
}

fn pending(id: u64, host: &str, port: u16) -> PendingApproval {
    PendingApproval {
        process: None,
        id,
        session: "s1".into(),
        method: Some("GET".into()),
        host: host.into(),
        path: Some("/v1/x".into()),
        port,
        waiting: 1,
        deadline_ms: 60_000 + id,
        rules_file: "/home/u/src/shop/.hh/harness-rules.toml".into(),
        layer: "workspace".into(),
        suggested_rule: format!("domain={host}"),
        query: None,
        body: crate::api::protocol::BodySize::None,
        note: None,
    }
}

/// The prompt arrives, and the person reads it long enough for its keys to act.
fn hold(app: &mut App, approval: PendingApproval) {
    arrive(app, approval);
    app.now_ms += super::super::approval_queue::ANSWER_DELAY_MS;
}

fn arrive(app: &mut App, approval: PendingApproval) {
    app.on_agent(FromAgent::Event {
        event: Event::ApprovalPending(approval),
        received: std::time::Instant::now(),
    });
}

fn answer(id: u64, answer: Answer) -> Option<Effect> {
    Some(Effect::Send(ClientRequest::Answer { id, answer }))
}

#[test]
fn single_keys_answer_the_selected_prompt_once() {
    let mut app = app();
    hold(&mut app, pending(7, "a.test", 443));
    assert_eq!(
        press(&mut app, KeyCode::Char('a')),
        answer(7, Answer::AllowOnce)
    );
    // While the answer is on its way, a second key sends nothing.
    assert_eq!(press(&mut app, KeyCode::Char('d')), None);
    app.on_agent(FromAgent::Reply {
        request: ClientRequest::Answer {
            id: 7,
            answer: Answer::AllowOnce,
        },
        result: Ok(Reply::Ok),
    });
    assert!(app.approvals.is_empty());
    hold(&mut app, pending(8, "b.test", 443));
    assert_eq!(
        press(&mut app, KeyCode::Char('d')),
        answer(8, Answer::DenyOnce)
    );
}

#[test]
fn answer_keys_do_nothing_for_a_second_after_the_selected_prompt_appeared_or_was_replaced() {
    let mut app = app();
    app.now_ms = 50_000;
    arrive(&mut app, pending(7, "a.test", 443));
    // Typed as the prompt appeared: meant for something else.
    for key in ['a', 'd', 'A', 'D'] {
        assert_eq!(press(&mut app, KeyCode::Char(key)), None, "{key}");
        assert_eq!(app.mode, Mode::Normal, "{key}");
    }
    assert!(app.status.as_deref().unwrap().contains("just changed"));
    app.now_ms += 999;
    assert_eq!(press(&mut app, KeyCode::Char('a')), None);
    // Another prompt queued behind it does not restart the wait for the one being read.
    arrive(&mut app, pending(8, "b.test", 443));
    app.now_ms += 1;
    assert_eq!(
        press(&mut app, KeyCode::Char('a')),
        answer(7, Answer::AllowOnce)
    );
    // The one being read is withdrawn: 8 takes its place, and `d` right then does nothing.
    app.on_agent(FromAgent::Event {
        event: Event::ApprovalResolved {
            id: 7,
            outcome: "withdrawn".into(),
            session: "s1".into(),
        },
        received: std::time::Instant::now(),
    });
    assert_eq!(app.approvals.selected().unwrap().approval.id, 8);
    app.now_ms += 300;
    assert_eq!(press(&mut app, KeyCode::Char('d')), None);
    app.now_ms += 700;
    assert_eq!(
        press(&mut app, KeyCode::Char('d')),
        answer(8, Answer::DenyOnce)
    );
}

#[test]
fn forever_opens_the_editor_and_enter_sends_the_suggestion_unless_changed() {
    let mut app = app();
    hold(&mut app, pending(7, "api.example.test", 443));
    assert_eq!(press(&mut app, KeyCode::Char('A')), None);
    assert!(matches!(app.mode, Mode::Editor { .. }));
    assert_eq!(
        press(&mut app, KeyCode::Enter),
        answer(7, Answer::AllowForever { rule: None })
    );

    let mut app = self::app();
    hold(&mut app, pending(7, "api.example.test", 443));
    press(&mut app, KeyCode::Char('D'));
    press(&mut app, KeyCode::Char('h'));
    assert_eq!(
        press(&mut app, KeyCode::Enter),
        answer(
            7,
            Answer::DenyForever {
                rule: Some("domain=*.example.test".into())
            }
        )
    );
}

#[test]
fn a_refused_answer_keeps_the_prompt_with_the_reason_and_can_be_answered_again() {
    let mut app = app();
    hold(&mut app, pending(7, "a.test", 443));
    press(&mut app, KeyCode::Char('a'));
    app.on_agent(FromAgent::Reply {
        request: ClientRequest::Answer {
            id: 7,
            answer: Answer::AllowOnce,
        },
        result: Err("no such request".into()),
    });
    let prompt = app.approvals.selected().unwrap();
    assert_eq!(prompt.error.as_deref(), Some("no such request"));
    assert_eq!(
        press(&mut app, KeyCode::Char('d')),
        answer(7, Answer::DenyOnce)
    );
}

#[test]
fn a_resolved_prompt_closes_its_editor() {
    let mut app = app();
    hold(&mut app, pending(7, "a.test", 443));
    press(&mut app, KeyCode::Char('A'));
    app.on_agent(FromAgent::Event {
        event: Event::ApprovalResolved {
            id: 7,
            outcome: "timed out".into(),
            session: "s1".into(),
        },
        received: std::time::Instant::now(),
    });
    assert_eq!(app.mode, Mode::Normal);
    assert!(app.approvals.is_empty());
    assert_eq!(app.status.as_deref(), Some("request 7: timed out"));
}

#[test]
fn brackets_move_between_queued_prompts() {
    let mut app = app();
    hold(&mut app, pending(1, "a.test", 443));
    hold(&mut app, pending(2, "b.test", 443));
    press(&mut app, KeyCode::Char(']'));
    // Moving to another prompt is a change: its keys wait until it has been read.
    assert_eq!(press(&mut app, KeyCode::Char('a')), None);
    app.now_ms += super::super::approval_queue::ANSWER_DELAY_MS;
    assert_eq!(
        press(&mut app, KeyCode::Char('a')),
        answer(2, Answer::AllowOnce)
    );
}

#[test]
fn new_session_picks_workspace_then_template() {
    let mut app = app();
    press(&mut app, KeyCode::Char('n'));
    press(&mut app, KeyCode::Enter);
    press(&mut app, KeyCode::Down);
    assert_eq!(
        press(&mut app, KeyCode::Enter),
        Some(Effect::StartSession {
            workspace: "shop".into(),
            template: "rust".into(),
        })
    );
    assert_eq!(app.mode, Mode::Normal);
}

#[test]
fn with_no_template_the_picker_says_how_to_add_one() {
    let env = Env {
        home: Some("/home/u".into()),
        xdg_config_home: None,
    };
    let text =
        "version = 1\n[[workspaces]]\nname = \"shop\"\ncanonical_path = \"/home/u/src/shop\"\n";
    let config = parse(text, Path::new("c.toml"), &env).unwrap();
    let mut app = App::new(
        PathBuf::from("/home/u/.config/harness-hat/harness-hat.toml"),
        ConfigState::Loaded(Box::new(config)),
        PathBuf::from("/run/hh/agent.sock"),
        0,
    );
    press(&mut app, KeyCode::Char('n'));
    assert_eq!(press(&mut app, KeyCode::Enter), None);
    assert_eq!(app.mode, Mode::Normal);
    let status = app.status.clone().unwrap_or_default();
    assert!(
        status.contains("[container_profiles.NAME]")
            && status.contains("/home/u/.config/harness-hat/harness-hat.toml"),
        "{status}"
    );
}

#[test]
fn sessions_stop_and_attach_the_selected_one() {
    let mut app = app();
    let session = |id: &str| SessionInfo {
        id: id.into(),
        name: id.into(),
        workspace: "shop".into(),
        template: "default".into(),
        owner_uid: 1000,
        container_id: String::new(),
        started_at: 0,
        state: SessionState::Running,
        memory_bytes: None,
        cpu_usec: None,
        allowed: 0,
        denied: 0,
        protected_paths: Vec::new(),
        image: String::new(),
        git: None,
        ports: Vec::new(),
        notices: Vec::new(),
        harness: None,
    };
    app.on_agent(FromAgent::Reply {
        request: ClientRequest::ListSessions {},
        result: Ok(Reply::Sessions {
            sessions: vec![session("s1"), session("s2")],
        }),
    });
    press(&mut app, KeyCode::Down);
    assert_eq!(
        press(&mut app, KeyCode::Char('s')),
        Some(Effect::Send(ClientRequest::StopSession { id: "s2".into() }))
    );
    assert_eq!(
        press(&mut app, KeyCode::Enter),
        Some(Effect::Attach("s2".into()))
    );
    app.on_agent(FromAgent::Event {
        event: Event::SessionEnded {
            id: "s2".into(),
            reason: "stopped".into(),
            owner_uid: 1000,
        },
        received: std::time::Instant::now(),
    });
    assert_eq!(app.sessions.sessions().len(), 1);
    assert_eq!(
        press(&mut app, KeyCode::Enter),
        Some(Effect::Attach("s1".into()))
    );
}

#[test]
fn workspaces_are_added_with_path_then_name_and_removed_after_confirmation() {
    let mut app = app();
    press(&mut app, KeyCode::Char('4'));
    press(&mut app, KeyCode::Char('n'));
    typed(&mut app, "/home/u/src/blog");
    press(&mut app, KeyCode::Enter);
    // The name field starts with the directory's name.
    press(&mut app, KeyCode::Backspace);
    typed(&mut app, "g2");
    assert_eq!(
        press(&mut app, KeyCode::Enter),
        Some(Effect::ChangeWorkspaces(WorkspaceChange::Add {
            name: "blog2".into(),
            path: "/home/u/src/blog".into(),
        }))
    );
    press(&mut app, KeyCode::Char('x'));
    assert_eq!(press(&mut app, KeyCode::Char('n')), None);
    press(&mut app, KeyCode::Char('x'));
    assert_eq!(
        press(&mut app, KeyCode::Char('y')),
        Some(Effect::ChangeWorkspaces(WorkspaceChange::Remove {
            name: "shop".into()
        }))
    );
}

#[test]
fn a_denied_activity_line_becomes_an_allow_rule_the_agent_adds_even_after_the_session_ended() {
    let mut app = app();
    app.sessions.started(SessionInfo {
        id: "s1".into(),
        name: "s1".into(),
        workspace: "shop".into(),
        template: "default".into(),
        owner_uid: 1000,
        container_id: String::new(),
        started_at: 0,
        state: SessionState::Running,
        memory_bytes: None,
        cpu_usec: None,
        allowed: 0,
        denied: 1,
        protected_paths: Vec::new(),
        image: String::new(),
        git: None,
        ports: Vec::new(),
        notices: Vec::new(),
        harness: None,
    });
    app.sessions.ended("s1");
    app.on_agent(FromAgent::Event {
        event: Event::Decision(DecisionEvent {
            process: None,
            time_ms: 0,
            session: "s1".into(),
            method: Some("GET".into()),
            host: "pypi.org".into(),
            path: Some("/simple/x/".into()),
            port: 443,
            decision: "deny".into(),
            rule: None,
        }),
        received: std::time::Instant::now(),
    });
    press(&mut app, KeyCode::Char('3'));
    press(&mut app, KeyCode::Enter);
    press(&mut app, KeyCode::Char('/'));
    press(&mut app, KeyCode::Char('/'));
    assert_eq!(
        press(&mut app, KeyCode::Enter),
        Some(Effect::Send(ClientRequest::AddRule {
            workspace: "shop".into(),
            action: "allow".into(),
            rule: "domain=pypi.org path=/simple/*".into(),
        }))
    );
}

#[test]
fn quit_works_from_the_main_screen_and_ctrl_c_from_anywhere() {
    let mut app = app();
    press(&mut app, KeyCode::Char('4'));
    press(&mut app, KeyCode::Char('n'));
    typed(&mut app, "q");
    assert!(!app.quit, "q in a text field is a letter");
    app.on_key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL));
    assert!(app.quit);
    let mut app = self::app();
    press(&mut app, KeyCode::Char('q'));
    assert!(app.quit);
}

#[test]
fn first_run_creates_the_config_with_c() {
    let mut app = app();
    app.config = ConfigState::Missing;
    assert_eq!(
        press(&mut app, KeyCode::Char('c')),
        Some(Effect::CreateConfig)
    );
}

#[test]
fn an_activity_rule_that_would_not_cover_its_request_is_not_written() {
    let mut app = app();
    app.on_agent(FromAgent::Reply {
        request: ClientRequest::ListSessions {},
        result: Ok(Reply::Sessions {
            sessions: vec![SessionInfo {
                id: "s1".into(),
                name: "s1".into(),
                workspace: "shop".into(),
                template: "default".into(),
                owner_uid: 1000,
                container_id: String::new(),
                started_at: 0,
                state: SessionState::Running,
                memory_bytes: None,
                cpu_usec: None,
                allowed: 0,
                denied: 1,
                protected_paths: Vec::new(),
                image: String::new(),
                git: None,
                ports: Vec::new(),
                notices: Vec::new(),
                harness: None,
            }],
        }),
    });
    app.on_agent(FromAgent::Event {
        event: Event::Decision(DecisionEvent {
            process: None,
            time_ms: 0,
            session: "s1".into(),
            method: None,
            host: "db.test".into(),
            path: None,
            port: 5432,
            decision: "deny".into(),
            rule: None,
        }),
        received: std::time::Instant::now(),
    });
    press(&mut app, KeyCode::Char('3'));
    press(&mut app, KeyCode::Enter);
    // Without `port`, an allow rule admits only 80 and 443.
    press(&mut app, KeyCode::Char('p'));
    assert_eq!(press(&mut app, KeyCode::Enter), None);
    assert!(matches!(app.mode, Mode::Editor { .. }));
    press(&mut app, KeyCode::Char('p'));
    assert!(matches!(
        press(&mut app, KeyCode::Enter),
        Some(Effect::Send(ClientRequest::AddRule { rule, .. })) if rule == "domain=db.test port=5432"
    ));
}

#[test]
fn losing_the_agent_drops_its_prompts_and_their_editor() {
    let mut app = app();
    hold(&mut app, pending(7, "a.test", 443));
    press(&mut app, KeyCode::Char('A'));
    app.on_agent(FromAgent::Unreachable("gone".into()));
    assert!(app.approvals.is_empty());
    assert_eq!(app.mode, Mode::Normal);
    assert_eq!(press(&mut app, KeyCode::Char('a')), None);
}

fn standing(file: &str, diff: &str, error: Option<&str>) -> RulesFileStatus {
    RulesFileStatus {
        file: file.into(),
        layer: "workspace".into(),
        in_force: false,
        ever_trusted: true,
        sha256: format!("sha-of-{file}"),
        diff: diff.into(),
        error: error.map(str::to_owned),
    }
}

#[test]
fn t_on_a_workspace_shows_each_changed_rules_file_and_trusts_exactly_the_version_shown() {
    let mut app = app();
    press(&mut app, KeyCode::Char('4'));
    let asked = press(&mut app, KeyCode::Char('t'));
    let Some(Effect::Send(request @ ClientRequest::RulesStatus { .. })) = asked else {
        panic!("{asked:?}");
    };
    let workspace = match &request {
        ClientRequest::RulesStatus { workspace } => workspace.clone(),
        _ => unreachable!(),
    };
    let mut in_force = standing("/w/global.toml", "", None);
    in_force.in_force = true;
    app.on_agent(FromAgent::Reply {
        request,
        result: Ok(Reply::Rules {
            files: vec![
                in_force,
                standing(
                    "/w/harness-rules.toml",
                    "+ allowlist = [\"domain=*\"]\n",
                    None,
                ),
                standing(
                    "/w/.hh/harness-rules.toml",
                    "+ [network\n",
                    Some("line 1: bad"),
                ),
            ],
        }),
    });
    // The first changed file, with its diff; a key that is no answer changes nothing.
    assert!(
        matches!(&app.mode, Mode::ReviewRules { file, .. } if file.file == "/w/harness-rules.toml")
    );
    assert_eq!(press(&mut app, KeyCode::Char('a')), None);
    assert!(matches!(&app.mode, Mode::ReviewRules { .. }));
    assert_eq!(
        press(&mut app, KeyCode::Char('y')),
        Some(Effect::Send(ClientRequest::TrustRules {
            workspace: workspace.clone(),
            file: "/w/harness-rules.toml".into(),
            sha256: "sha-of-/w/harness-rules.toml".into(),
        }))
    );
    // The next one does not parse: `y` cannot trust it; `n` passes, and the review ends.
    assert!(
        matches!(&app.mode, Mode::ReviewRules { file, .. } if file.file == "/w/.hh/harness-rules.toml")
    );
    assert_eq!(press(&mut app, KeyCode::Char('y')), None);
    assert_eq!(press(&mut app, KeyCode::Char('n')), None);
    assert_eq!(app.mode, Mode::Normal);

    // A change longer than the review box is never trusted half seen.
    let long: String = (0..=REVIEW_MAX_LINES)
        .map(|n| format!("+ line {n}\n"))
        .collect();
    app.mode = Mode::ReviewRules {
        workspace: workspace.clone(),
        file: standing("/w/harness-rules.toml", &long, None),
        rest: Vec::new(),
    };
    assert_eq!(press(&mut app, KeyCode::Char('y')), None);
    assert!(matches!(app.mode, Mode::ReviewRules { .. }));
}
