//! The TUI's state and its pure update: keys and agent messages in, [`Effect`]s out. Nothing
//! here touches the terminal, the socket or the disk; the run loop ([`super::run`]) performs the
//! effects and reports back (e.g. [`App::set_config`]).

use std::path::PathBuf;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::{
    activity_log::ActivityLog,
    agent_link::FromAgent,
    approval_queue::ApprovalQueue,
    rule_editor::{RuleEditor, RuleTarget},
    session_table::SessionTable,
    workspace_edit::{WorkspaceChange, default_name},
};
use crate::{
    api::protocol::{AgentHello, Answer, ClientRequest, Event, GrantFor, Reply, RulesFileStatus},
    config::Config,
    rules::Action,
};

/// The screens, in tab order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Screen {
    Sessions,
    Approvals,
    Activity,
    Workspaces,
    Templates,
}

impl Screen {
    pub const ALL: [Screen; 5] = [
        Screen::Sessions,
        Screen::Approvals,
        Screen::Activity,
        Screen::Workspaces,
        Screen::Templates,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Screen::Sessions => "Sessions",
            Screen::Approvals => "Approvals",
            Screen::Activity => "Activity",
            Screen::Workspaces => "Workspaces",
            Screen::Templates => "Templates",
        }
    }

    /// The screen `by` tabs to the right, wrapping around.
    fn step(self, by: usize) -> Screen {
        let index = Screen::ALL.iter().position(|s| *s == self).unwrap_or(0);
        Screen::ALL[(index + by) % Screen::ALL.len()]
    }
}

/// What is known of the agent.
#[derive(Clone, Debug, PartialEq)]
pub enum AgentStatus {
    Connecting,
    Connected(AgentHello),
    Unreachable(String),
}

/// The manager's config as the TUI found it.
#[derive(Clone, Debug, PartialEq)]
pub enum ConfigState {
    /// Boxed: a config is large beside the other states.
    Loaded(Box<Config>),
    /// No file at the path: the first-run screen offers to create it.
    Missing,
    /// The file does not load; the text is the loader's error (file, line, key).
    Invalid(String),
}

/// Something only the run loop can do.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    Send(ClientRequest),
    /// `StartSession` with the passthrough variables the loop reads from its environment.
    StartSession {
        workspace: String,
        template: String,
    },
    /// Hand the terminal to `hh shell ID` until it exits.
    Attach(String),
    /// Stop a git-mode session as `hh session stop` does: commit on exit, stop, bring its
    /// branches back.
    StopGitSession(crate::api::protocol::SessionInfo),
    /// Write the starter config (what `hh init` writes) at the config path.
    CreateConfig,
    ChangeWorkspaces(WorkspaceChange),
}

/// What the rule editor's answer goes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EditorFor {
    /// A held request: the answer is `AllowForever` / `DenyForever` with the rule.
    Prompt { id: u64, rules_file: String },
    /// An Activity line: the agent appends the rule to the session workspace's rules file
    /// and its trusted copy (in force at once).
    Decision {
        workspace: String,
        rules_file: PathBuf,
    },
}

/// A one-line text field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InputFor {
    WorkspacePath,
    WorkspaceName { path: String },
}

/// The modal part of the state: at most one of these takes the keys.
#[derive(Clone, Debug, PartialEq)]
pub enum Mode {
    Normal,
    Editor {
        editor: RuleEditor,
        target: EditorFor,
    },
    Input {
        input: InputFor,
        text: String,
    },
    /// New session: pick a workspace, then a template.
    PickWorkspace {
        selected: usize,
    },
    PickTemplate {
        workspace: String,
        selected: usize,
    },
    ConfirmRemove {
        name: String,
    },
    /// A rules file of a workspace that is not in force as it reads: its diff from the
    /// version in force, and the question whether to trust it (the files after it follow).
    ReviewRules {
        workspace: String,
        file: RulesFileStatus,
        rest: Vec<RulesFileStatus>,
    },
    /// Keys and what they do.
    Help,
}

/// The whole TUI state.
#[derive(Clone, Debug)]
pub struct App {
    pub config_path: PathBuf,
    pub config: ConfigState,
    pub socket: PathBuf,
    pub agent: AgentStatus,
    pub screen: Screen,
    pub mode: Mode,
    pub sessions: SessionTable,
    pub approvals: ApprovalQueue,
    pub activity: ActivityLog,
    pub workspace_selected: usize,
    pub template_selected: usize,
    /// The last outcome worth telling (an error, a rule written, a session started).
    pub status: Option<String>,
    /// Wall clock in epoch milliseconds, set by the loop each tick (remaining times, uptimes).
    pub now_ms: u64,
    pub quit: bool,
}

impl App {
    pub fn new(config_path: PathBuf, config: ConfigState, socket: PathBuf, now_ms: u64) -> App {
        App {
            config_path,
            config,
            socket,
            agent: AgentStatus::Connecting,
            screen: Screen::Sessions,
            mode: Mode::Normal,
            sessions: SessionTable::default(),
            approvals: ApprovalQueue::default(),
            activity: ActivityLog::default(),
            workspace_selected: 0,
            template_selected: 0,
            status: None,
            now_ms,
            quit: false,
        }
    }

    pub fn loaded_config(&self) -> Option<&Config> {
        match &self.config {
            ConfigState::Loaded(config) => Some(config.as_ref()),
            _ => None,
        }
    }

    pub fn set_config(&mut self, config: ConfigState) {
        self.config = config;
        let (workspaces, templates) = self
            .loaded_config()
            .map_or((0, 0), |c| (c.workspaces.len(), c.container_profiles.len()));
        self.workspace_selected = self.workspace_selected.min(workspaces.saturating_sub(1));
        self.template_selected = self.template_selected.min(templates.saturating_sub(1));
    }

    /// Applies one message from the agent link.
    pub fn on_agent(&mut self, message: FromAgent) {
        self.apply_agent(message);
        self.approvals.settle_selection(self.now_ms);
    }

    fn apply_agent(&mut self, message: FromAgent) {
        match message {
            FromAgent::Connected(hello) => self.agent = AgentStatus::Connected(hello),
            FromAgent::Unreachable(error) => {
                // Without an agent nothing can be answered, and an agent that went away denied
                // what it held; a new one's pending list comes on reconnect.
                self.approvals.replace(Vec::new());
                if matches!(
                    self.mode,
                    Mode::Editor {
                        target: EditorFor::Prompt { .. },
                        ..
                    }
                ) {
                    self.mode = Mode::Normal;
                }
                self.agent = AgentStatus::Unreachable(error);
            }
            FromAgent::Event { event, received } => self.on_event(event, Some(received)),
            FromAgent::Reply { request, result } => self.on_reply(request, result),
        }
    }

    fn on_event(&mut self, event: Event, received: Option<std::time::Instant>) {
        match event {
            Event::ApprovalPending(approval) => self.approvals.insert(approval, received),
            Event::ApprovalResolved { id, outcome, .. } => {
                self.approvals.remove(id);
                self.close_editor_for(id);
                self.status = Some(format!("request {id}: {outcome}"));
            }
            Event::Decision(decision) => self.activity.push(decision),
            Event::SessionStarted(session) => self.sessions.started(session),
            Event::SessionEnded { id, reason, .. } => {
                self.sessions.ended(&id);
                self.status = Some(format!("session {id} ended: {reason}"));
            }
        }
    }

    fn on_reply(&mut self, request: ClientRequest, result: Result<Reply, String>) {
        match (request, result) {
            (ClientRequest::ListSessions {}, Ok(Reply::Sessions { sessions })) => {
                self.sessions.replace(sessions, self.now_ms);
            }
            (ClientRequest::ListApprovals {}, Ok(Reply::Approvals { pending })) => {
                self.approvals.replace(pending);
            }
            (ClientRequest::Answer { id, .. }, Ok(_)) => {
                self.approvals.remove(id);
                self.close_editor_for(id);
            }
            (ClientRequest::Answer { id, .. }, Err(error)) => {
                // The prompt stays (with the refusal) so the person can answer again.
                if let Some(prompt) = self.approvals.get_mut(id) {
                    prompt.answering = false;
                    prompt.error = Some(error);
                }
            }
            (ClientRequest::StartSession(start), Ok(Reply::Session(session))) => {
                let started = format!(
                    "started session {} ({} / {}); Enter on it attaches",
                    session.id, start.workspace, start.template
                );
                self.status = Some(match session.notices.first() {
                    Some(notice) => format!("{started}. Note: {notice}"),
                    None => started,
                });
                self.sessions.started(session);
            }
            (
                ClientRequest::AddRule { action, rule, .. },
                Ok(Reply::RuleAdded { file, added, note }),
            ) => {
                let said = if added {
                    format!("added {action} `{rule}` to {file} (in force)")
                } else {
                    format!("already there: {action} `{rule}` in {file}")
                };
                self.status = Some(match note {
                    Some(note) => format!("{said}; {note}"),
                    None => said,
                });
            }
            (ClientRequest::RulesStatus { workspace }, Ok(Reply::Rules { files })) => {
                let changed: Vec<_> = files.into_iter().filter(|file| !file.in_force).collect();
                if changed.is_empty() {
                    self.status = Some(format!(
                        "every rules file of {workspace} is in force as it reads"
                    ));
                } else if matches!(self.mode, Mode::Normal) {
                    self.review_next(workspace, changed);
                }
            }
            (ClientRequest::TrustRules { file, .. }, Ok(_)) => {
                self.status = Some(format!("trusted {file}: this version is in force"));
            }
            (ClientRequest::StartSession(start), Err(error)) => {
                // A clone no session got is removed (one a session got stays until it is
                // brought back).
                if let Some(clone) = &start.git_clone {
                    let _ = std::fs::remove_dir_all(clone);
                }
                self.status = Some(format!("start session: {error}"));
            }
            (ClientRequest::StopSession { id }, Ok(_)) => {
                self.status = Some(format!("stopping session {id}"));
            }
            (request, Err(error)) => {
                self.status = Some(format!("{}: {error}", request_name(&request)));
            }
            (_, Ok(_)) => {}
        }
    }

    /// A prompt that went away takes its open editor with it.
    fn close_editor_for(&mut self, id: u64) {
        if let Mode::Editor {
            target: EditorFor::Prompt { id: open, .. },
            ..
        } = &self.mode
            && *open == id
        {
            self.mode = Mode::Normal;
        }
    }

    /// Applies one key; returns what the loop must do.
    pub fn on_key(&mut self, key: KeyEvent) -> Option<Effect> {
        let effect = self.apply_key(key);
        self.approvals.settle_selection(self.now_ms);
        effect
    }

    fn apply_key(&mut self, key: KeyEvent) -> Option<Effect> {
        if key.kind == KeyEventKind::Release {
            return None;
        }
        // Ctrl-C quits from anywhere, even a text field.
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            self.quit = true;
            return None;
        }
        match std::mem::replace(&mut self.mode, Mode::Normal) {
            Mode::Normal => self.on_key_normal(key),
            Mode::Help => None,
            Mode::Editor { editor, target } => self.on_key_editor(key, editor, target),
            Mode::Input { input, text } => self.on_key_input(key, input, text),
            Mode::PickWorkspace { selected } => self.on_key_pick_workspace(key, selected),
            Mode::PickTemplate {
                workspace,
                selected,
            } => self.on_key_pick_template(key, workspace, selected),
            Mode::ConfirmRemove { name } => match key.code {
                KeyCode::Char('y') => {
                    Some(Effect::ChangeWorkspaces(WorkspaceChange::Remove { name }))
                }
                _ => None,
            },
            Mode::ReviewRules {
                workspace,
                file,
                rest,
            } => self.on_key_review(key, workspace, file, rest),
        }
    }

    /// `y` trusts the file shown (the exact version shown: the agent checks its SHA-256),
    /// `n` leaves it untrusted; either goes on to the next file. Esc stops reviewing.
    fn on_key_review(
        &mut self,
        key: KeyEvent,
        workspace: String,
        file: RulesFileStatus,
        rest: Vec<RulesFileStatus>,
    ) -> Option<Effect> {
        let effect = match key.code {
            KeyCode::Char('y') if file.error.is_none() && reviewable_here(&file) => {
                Some(Effect::Send(ClientRequest::TrustRules {
                    workspace: workspace.clone(),
                    file: file.file.clone(),
                    sha256: file.sha256.clone(),
                }))
            }
            KeyCode::Char('n') => None,
            KeyCode::Esc => return None,
            _ => {
                self.mode = Mode::ReviewRules {
                    workspace,
                    file,
                    rest,
                };
                return None;
            }
        };
        self.review_next(workspace, rest);
        effect
    }

    fn review_next(&mut self, workspace: String, mut files: Vec<RulesFileStatus>) {
        if files.is_empty() {
            return;
        }
        let file = files.remove(0);
        self.mode = Mode::ReviewRules {
            workspace,
            file,
            rest: files,
        };
    }

    fn on_key_normal(&mut self, key: KeyEvent) -> Option<Effect> {
        // The prompt's keys come first: a held request is what the person must see to.
        if let Some(effect) = self.on_key_prompt(key) {
            return effect;
        }
        match key.code {
            KeyCode::Char('q') => self.quit = true,
            KeyCode::Char('?') => self.mode = Mode::Help,
            KeyCode::Tab => self.screen = self.screen.step(1),
            KeyCode::BackTab => self.screen = self.screen.step(Screen::ALL.len() - 1),
            KeyCode::Char(c @ '1'..='5') => {
                self.screen = Screen::ALL[usize::from(c as u8 - b'1')];
            }
            KeyCode::Char('c') if self.config == ConfigState::Missing => {
                return Some(Effect::CreateConfig);
            }
            _ => return self.on_key_screen(key),
        }
        None
    }

    /// `a`/`d`/`A`/`D` answer the selected prompt; `[`/`]` move through the queue.
    /// `None` when the key is not the prompt's. An answer key within
    /// [`super::approval_queue::ANSWER_DELAY_MS`] of the selected prompt's change does nothing.
    fn on_key_prompt(&mut self, key: KeyEvent) -> Option<Option<Effect>> {
        let prompt = self.approvals.selected()?;
        let id = prompt.approval.id;
        let answer_key = matches!(
            key.code,
            KeyCode::Char('a' | 'd' | 'A' | 'D' | 'g' | 'G' | 'S')
        );
        if answer_key && self.approvals.answer_delay_left(self.now_ms) > 0 {
            self.status = Some(
                "the held request just changed: read it; its answer keys work in a moment".into(),
            );
            return Some(None);
        }
        let answer = match key.code {
            KeyCode::Char('[') => {
                self.approvals.select_previous();
                return Some(None);
            }
            KeyCode::Char(']') => {
                self.approvals.select_next();
                return Some(None);
            }
            KeyCode::Char('a') => Answer::AllowOnce,
            KeyCode::Char('d') => Answer::DenyOnce,
            // Grants: the suggested rule, for a while, written nowhere.
            KeyCode::Char(c @ ('g' | 'G' | 'S')) => Answer::AllowFor {
                duration: match c {
                    'g' => GrantFor::TenMinutes,
                    'G' => GrantFor::Hour,
                    _ => GrantFor::Session,
                },
                rule: None,
            },
            KeyCode::Char(c @ ('A' | 'D')) => {
                let action = if c == 'A' {
                    Action::Allow
                } else {
                    Action::Deny
                };
                let approval = &prompt.approval;
                let target = RuleTarget {
                    host: approval.host.clone(),
                    port: approval.port,
                    method: approval.method.clone(),
                    path: approval.path.clone(),
                };
                self.mode = Mode::Editor {
                    editor: RuleEditor::new(target, action, Some(approval.suggested_rule.clone())),
                    target: EditorFor::Prompt {
                        id,
                        rules_file: approval.rules_file.clone(),
                    },
                };
                return Some(None);
            }
            _ => return None,
        };
        Some(self.answer(id, answer))
    }

    fn answer(&mut self, id: u64, answer: Answer) -> Option<Effect> {
        let prompt = self.approvals.get_mut(id)?;
        if prompt.answering {
            return None;
        }
        prompt.answering = true;
        prompt.error = None;
        Some(Effect::Send(ClientRequest::Answer { id, answer }))
    }

    fn on_key_screen(&mut self, key: KeyEvent) -> Option<Effect> {
        let down = matches!(key.code, KeyCode::Down | KeyCode::Char('j'));
        let up = matches!(key.code, KeyCode::Up | KeyCode::Char('k'));
        let step = |selected: &mut usize, len: usize| {
            if down && *selected + 1 < len {
                *selected += 1;
            } else if up {
                *selected = selected.saturating_sub(1);
            }
        };
        match self.screen {
            Screen::Sessions => {
                if down {
                    self.sessions.select_next();
                } else if up {
                    self.sessions.select_previous();
                }
                let selected = self.sessions.selected().map(|s| s.id.clone());
                match (key.code, selected) {
                    (KeyCode::Char('n'), _) => match self.loaded_config() {
                        Some(config) if !config.workspaces.is_empty() => {
                            self.mode = Mode::PickWorkspace { selected: 0 };
                        }
                        Some(_) => {
                            self.status = Some(
                                "no workspace yet: add one on the Workspaces screen (4)".into(),
                            );
                        }
                        None => self.status = Some("the config did not load".into()),
                    },
                    (KeyCode::Char('s'), Some(id)) => {
                        if let Some(info) = self
                            .sessions
                            .sessions()
                            .iter()
                            .find(|info| info.id == id && info.git.is_some())
                        {
                            return Some(Effect::StopGitSession(info.clone()));
                        }
                        return Some(Effect::Send(ClientRequest::StopSession { id }));
                    }
                    (KeyCode::Enter, Some(id)) => return Some(Effect::Attach(id)),
                    _ => {}
                }
            }
            Screen::Approvals => {
                if down {
                    self.approvals.select_next();
                } else if up {
                    self.approvals.select_previous();
                }
            }
            Screen::Activity => match key.code {
                _ if down => self.activity.select_next(),
                _ if up => self.activity.select_previous(),
                KeyCode::Char('f') => self.activity.cycle_session(),
                KeyCode::Char('v') => self.activity.cycle_verdict(),
                KeyCode::Enter | KeyCode::Char('r') => self.open_editor_for_decision(),
                _ => {}
            },
            Screen::Workspaces => {
                let (count, selected) = self.loaded_config().map_or((0, None), |c| {
                    let selected = c.workspaces.get(self.workspace_selected);
                    (c.workspaces.len(), selected.map(|w| w.name.clone()))
                });
                step(&mut self.workspace_selected, count);
                match (key.code, selected) {
                    (KeyCode::Char('n'), _) if self.loaded_config().is_some() => {
                        self.mode = Mode::Input {
                            input: InputFor::WorkspacePath,
                            text: String::new(),
                        };
                    }
                    (KeyCode::Char('x'), Some(name)) => self.mode = Mode::ConfirmRemove { name },
                    (KeyCode::Char('t'), Some(workspace)) => {
                        return Some(Effect::Send(ClientRequest::RulesStatus { workspace }));
                    }
                    _ => {}
                }
            }
            Screen::Templates => {
                let count = self
                    .loaded_config()
                    .map_or(0, |c| c.container_profiles.len());
                step(&mut self.template_selected, count);
            }
        }
        None
    }

    /// Opens the editor on the selected Activity line: an allow rule for a denied request.
    fn open_editor_for_decision(&mut self) {
        let Some(decision) = self.activity.selected() else {
            return;
        };
        if decision.decision != "deny" {
            self.status = Some("that request was allowed; pick a denied one".into());
            return;
        }
        let workspace = self.sessions.workspace_of(&decision.session);
        let found = workspace.and_then(|name| {
            self.loaded_config()
                .and_then(|c| c.workspace(name))
                .map(|w| (w.name.clone(), w.rules_file()))
        });
        let Some((workspace, rules_file)) = found else {
            self.status = Some(format!(
                "the workspace of session {} is unknown or not in the config: no rules file to write to",
                decision.session
            ));
            return;
        };
        let target = RuleTarget {
            host: decision.host.clone(),
            port: decision.port,
            method: decision.method.clone(),
            path: decision.path.clone(),
        };
        self.mode = Mode::Editor {
            editor: RuleEditor::new(target, Action::Allow, None),
            target: EditorFor::Decision {
                workspace,
                rules_file,
            },
        };
    }

    /// `h` host, `p` port, `/` path, `m` method, `t` allow/deny, Enter writes, Esc cancels.
    fn on_key_editor(
        &mut self,
        key: KeyEvent,
        mut editor: RuleEditor,
        target: EditorFor,
    ) -> Option<Effect> {
        match key.code {
            KeyCode::Esc => return None,
            KeyCode::Char('h') => editor.cycle_domain(),
            KeyCode::Char('p') => editor.toggle_port(),
            KeyCode::Char('/') => editor.cycle_path(),
            KeyCode::Char('m') => editor.toggle_method(),
            KeyCode::Char('t') => editor.toggle_action(),
            KeyCode::Enter => {
                let rule = editor.rule();
                // An unparsable rule is never sent: `answer_rule` would fall back to the
                // suggestion, which is not what the person sees.
                let Ok(text) = rule.text else {
                    self.mode = Mode::Editor { editor, target };
                    return None;
                };
                return match target {
                    EditorFor::Prompt { id, .. } => {
                        let rule = editor.answer_rule();
                        let answer = match editor.action() {
                            Action::Allow => Answer::AllowForever { rule },
                            Action::Deny => Answer::DenyForever { rule },
                        };
                        self.answer(id, answer)
                    }
                    // No agent judges this rule: one that would not cover the request is
                    // not written.
                    EditorFor::Decision { .. } if !rule.covers => {
                        self.mode = Mode::Editor { editor, target };
                        None
                    }
                    EditorFor::Decision { workspace, .. } => {
                        Some(Effect::Send(ClientRequest::AddRule {
                            workspace,
                            action: editor.action().to_string(),
                            rule: text,
                        }))
                    }
                };
            }
            _ => {}
        }
        self.mode = Mode::Editor { editor, target };
        None
    }

    fn on_key_input(&mut self, key: KeyEvent, input: InputFor, mut text: String) -> Option<Effect> {
        match key.code {
            KeyCode::Esc => return None,
            KeyCode::Backspace => {
                text.pop();
            }
            KeyCode::Char(c) => text.push(c),
            KeyCode::Enter => {
                let text = text.trim().to_string();
                return match input {
                    InputFor::WorkspacePath if text.is_empty() => None,
                    InputFor::WorkspacePath => {
                        self.mode = Mode::Input {
                            text: default_name(&text),
                            input: InputFor::WorkspaceName { path: text },
                        };
                        None
                    }
                    InputFor::WorkspaceName { path } => {
                        Some(Effect::ChangeWorkspaces(WorkspaceChange::Add {
                            name: text,
                            path,
                        }))
                    }
                };
            }
            _ => {}
        }
        self.mode = Mode::Input { input, text };
        None
    }

    fn on_key_pick_workspace(&mut self, key: KeyEvent, mut selected: usize) -> Option<Effect> {
        let names: Vec<String> = self
            .loaded_config()
            .map(|c| c.workspaces.iter().map(|w| w.name.clone()).collect())
            .unwrap_or_default();
        match key.code {
            KeyCode::Esc => return None,
            KeyCode::Down | KeyCode::Char('j') if selected + 1 < names.len() => selected += 1,
            KeyCode::Up | KeyCode::Char('k') => selected = selected.saturating_sub(1),
            KeyCode::Enter => {
                let workspace = names.get(selected)?.clone();
                if self
                    .loaded_config()
                    .is_some_and(|config| config.container_profiles.is_empty())
                {
                    self.status = Some(format!(
                        "no template yet: add [container_profiles.NAME] with image = \"default\" \
                         (a stem) to {}",
                        self.config_path.display()
                    ));
                    return None;
                }
                self.mode = Mode::PickTemplate {
                    workspace,
                    selected: 0,
                };
                return None;
            }
            _ => {}
        }
        self.mode = Mode::PickWorkspace { selected };
        None
    }

    fn on_key_pick_template(
        &mut self,
        key: KeyEvent,
        workspace: String,
        mut selected: usize,
    ) -> Option<Effect> {
        let names: Vec<String> = self
            .loaded_config()
            .map(|c| c.container_profiles.keys().cloned().collect())
            .unwrap_or_default();
        match key.code {
            KeyCode::Esc => return None,
            KeyCode::Down | KeyCode::Char('j') if selected + 1 < names.len() => selected += 1,
            KeyCode::Up | KeyCode::Char('k') => selected = selected.saturating_sub(1),
            KeyCode::Enter => {
                let template = names.get(selected)?.clone();
                self.status = Some(format!("starting a session of {workspace} ({template})…"));
                return Some(Effect::StartSession {
                    workspace,
                    template,
                });
            }
            _ => {}
        }
        self.mode = Mode::PickTemplate {
            workspace,
            selected,
        };
        None
    }
}

/// The most diff lines the TUI shows for a person to trust: a longer change is reviewed with
/// `hh rules status` and trusted with `hh rules trust`, never trusted half seen.
pub const REVIEW_MAX_LINES: usize = 20;

/// Whether the TUI may ask about `file` itself (its whole diff fits the review box).
pub fn reviewable_here(file: &RulesFileStatus) -> bool {
    file.diff.lines().count() <= REVIEW_MAX_LINES
}

/// How a failed request is named in the status line.
fn request_name(request: &ClientRequest) -> &'static str {
    match request {
        ClientRequest::Hello {} => "hello",
        ClientRequest::StartSession(_) => "start session",
        ClientRequest::ListSessions {} => "list sessions",
        ClientRequest::StopSession { .. } => "stop session",
        ClientRequest::ListApprovals {} => "list approvals",
        ClientRequest::Answer { .. } => "answer",
        ClientRequest::ListGrants {} => "list grants",
        ClientRequest::RevokeGrant { .. } => "revoke grant",
        ClientRequest::SuggestRules { .. } => "suggest rules",
        ClientRequest::Subscribe {} => "subscribe",
        ClientRequest::Exec(_) => "exec",
        ClientRequest::RulesStatus { .. } => "rules status",
        ClientRequest::TrustRules { .. } => "trust rules",
        ClientRequest::AddRule { .. } => "add rule",
        ClientRequest::BuildImage(_) => "build image",
    }
}

#[cfg(test)]
#[path = "app_test.rs"]
mod tests;
