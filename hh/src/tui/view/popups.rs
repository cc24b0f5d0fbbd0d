//! The modal popups over the screen: the rule editor, text fields, the workspace and template
//! pickers, the remove confirmation and the key help.

use ratatui::{
    Frame,
    layout::{Constraint, Rect},
    style::{Color, Modifier, Style},
    text::{Line, Span},
    widgets::{Block, Clear, List, ListItem, ListState, Paragraph, Wrap},
};

use super::format;
use crate::{
    api::protocol::RulesFileStatus,
    rules::Action,
    tui::{
        app::{AgentStatus, App, EditorFor, InputFor, Mode, reviewable_here},
        rule_editor::RuleEditor,
    },
};

pub fn render(app: &App, frame: &mut Frame) {
    match &app.mode {
        Mode::Normal => {}
        Mode::Editor { editor, target } => render_editor(editor, target, frame),
        Mode::Input { input, text } => {
            let (title, label) = match input {
                InputFor::WorkspacePath => (" Add workspace ", "Directory (absolute or ~/…):"),
                InputFor::WorkspaceName { .. } => (" Add workspace ", "Name:"),
            };
            let lines = vec![Line::raw(label), Line::raw(format!("> {text}_"))];
            popup(frame, title, lines, 60, 4);
        }
        Mode::PickWorkspace { selected } => {
            let names: Vec<String> = app
                .loaded_config()
                .map(|c| c.workspaces.iter().map(|w| w.name.clone()).collect())
                .unwrap_or_default();
            let hint = [
                "No workspace yet: add one on the Workspaces screen (4, then n),".to_owned(),
                format!(
                    "or a [[workspaces]] entry (name, canonical_path) in {}.",
                    app.config_path.display()
                ),
            ];
            picker(frame, " New session: workspace ", names, *selected, hint);
        }
        Mode::PickTemplate {
            workspace,
            selected,
        } => {
            let names: Vec<String> = app
                .loaded_config()
                .map(|c| c.container_profiles.keys().cloned().collect())
                .unwrap_or_default();
            let title = format!(" New session of {workspace}: template ");
            let hint = [
                "No template yet: add [container_profiles.NAME] with".to_owned(),
                format!(
                    "image = \"STEM\" (a stem under docker/) to {}.",
                    app.config_path.display()
                ),
            ];
            picker(frame, &title, names, *selected, hint);
        }
        Mode::ConfirmRemove { name } => {
            let lines = vec![
                Line::raw(format!("Remove workspace `{name}` from the config?")),
                Line::raw("Its directory and rules file stay. y removes, any other key keeps it."),
            ];
            popup(frame, " Remove workspace ", lines, 74, 4);
        }
        Mode::ReviewRules {
            workspace, file, ..
        } => render_review(workspace, file, frame),
        Mode::Help => {
            let mut lines: Vec<Line> = HELP.iter().map(|line| Line::raw(*line)).collect();
            lines.push(Line::raw(match &app.agent {
                AgentStatus::Connected(hello) => format!(
                    "Agent {} ({} mode) at {}",
                    hello.version,
                    hello.mode,
                    app.socket.display()
                ),
                _ => format!("No agent at {} yet", app.socket.display()),
            }));
            let height = lines.len() as u16 + 2;
            popup(frame, " Keys ", lines, 74, height);
        }
    }
}

const HELP: [&str; 12] = [
    "Anywhere   Tab/Shift-Tab or 1-5 switch screens, q or Ctrl-C quits",
    "Prompt     a allow once, d deny once, A allow forever…, D deny forever…,",
    "           g G S allow its host for 10 min, 1 h, this session",
    "           [ and ] pick another held request",
    "Editor     h host/*.parent, p port, / path, m method, t allow/deny,",
    "           Enter writes the rule, Esc goes back",
    "Sessions   n new (workspace, template), s stop, Enter attach (hh shell)",
    "Activity   f session filter, v decision filter, Enter rule from denied",
    "Workspaces n add, x remove, t review and trust changed rules",
    "First run  c writes the starter config",
    "",
    "The agent decides; the rule shown is the exact text written.",
];

/// A changed rules file: what it is, its diff from the version in force, and the question.
fn render_review(workspace: &str, file: &RulesFileStatus, frame: &mut Frame) {
    let state = if file.ever_trusted {
        "changed since trusted: the trusted version and the deny rules are in force"
    } else {
        "never trusted; only its deny rules are in force"
    };
    let mut lines = vec![
        Line::raw(format!("{} ({})", file.file, file.layer)),
        Line::raw(state),
        Line::raw(""),
    ];
    let reviewable = reviewable_here(file);
    if reviewable {
        for diff in file.diff.lines() {
            let style = match diff.as_bytes().first() {
                Some(b'+') => Style::new().fg(Color::Green),
                Some(b'-') => Style::new().fg(Color::Red),
                _ => Style::new(),
            };
            lines.push(Line::styled(diff.to_owned(), style));
        }
    } else {
        lines.push(Line::raw(format!(
            "The diff is {} lines, more than this box shows: review it with \
             `hh rules status --workspace {workspace}`, trust it with `hh rules trust`.",
            file.diff.lines().count()
        )));
    }
    lines.push(Line::raw(""));
    lines.push(match &file.error {
        Some(error) => Line::styled(
            format!("Cannot be trusted: {error}"),
            Style::new().fg(Color::Red),
        ),
        None if reviewable => {
            Line::raw("y: trust this exact version (in force at once)  n: not now  Esc: stop")
        }
        None => Line::raw("n: next  Esc: stop"),
    });
    // Lines wrap inside the box; its height counts the wrapped rows.
    const WIDTH: u16 = 78;
    let inner = usize::from(WIDTH - 2);
    let rows: usize = lines
        .iter()
        .map(|line| line.width().max(1).div_ceil(inner))
        .sum();
    let height = u16::try_from(rows + 2)
        .unwrap_or(u16::MAX)
        .min(frame.area().height);
    let title = format!(" Rules of {workspace}: trust this change? ");
    popup(frame, &title, lines, WIDTH, height);
}

fn render_editor(editor: &RuleEditor, target: &EditorFor, frame: &mut Frame) {
    let action = editor.action();
    let title = match (target, action) {
        (EditorFor::Prompt { .. }, Action::Allow) => " Allow forever ",
        (EditorFor::Prompt { .. }, Action::Deny) => " Deny forever ",
        (EditorFor::Decision { .. }, Action::Allow) => " New allow rule ",
        (EditorFor::Decision { .. }, Action::Deny) => " New deny rule ",
    };
    let file = match target {
        EditorFor::Prompt { rules_file, .. } => rules_file.clone(),
        EditorFor::Decision { rules_file, .. } => rules_file.display().to_string(),
    };
    let request = editor.target();
    let rule = editor.rule();
    let bold = Style::new().add_modifier(Modifier::BOLD);
    // Wrapped here, not by the paragraph, so the box is as tall as its lines: a long host name
    // (in the request and the rule) is shown whole, never cut at the box's edge.
    let width = usize::from(EDITOR_WIDTH.min(frame.area().width).saturating_sub(2));
    let wrapped = |label: &str, value: &str, style: Style| -> Vec<Line<'static>> {
        format::labeled(label, 9, value, width, &['.', '/', ' '])
            .into_iter()
            .map(|(lead, chunk)| Line::from(vec![Span::raw(lead), Span::styled(chunk, style)]))
            .collect()
    };
    let target = format!(
        "{} {}:{}{}",
        request.method.as_deref().unwrap_or("TCP"),
        request.host,
        request.port,
        request.path.as_deref().unwrap_or("")
    );
    let mut lines = wrapped("Request:", &target, Style::new());
    lines.push(Line::raw(""));
    match &rule.text {
        Ok(text) => {
            let suggested = if editor.is_suggested() {
                "  (suggested)"
            } else {
                ""
            };
            lines.extend(wrapped(
                "Rule:",
                &format!("{text}{suggested}"),
                bold.fg(Color::Cyan),
            ));
        }
        Err(error) => lines.extend(wrapped(
            "Rule:",
            &error.to_string(),
            Style::new().fg(Color::Red),
        )),
    }
    lines.extend(wrapped(
        "Into:",
        &format!("{file}  [network] {}", action.list_name()),
        Style::new(),
    ));
    lines.push(if rule.covers {
        Line::styled("✓ covers this request", Style::new().fg(Color::Green))
    } else {
        Line::styled(
            "✗ does not cover this request: the agent would refuse it",
            Style::new().fg(Color::Red),
        )
    });
    lines.push(Line::raw(""));
    lines.push(Line::styled(
        "h host  p port  / path  m method  t allow/deny  Enter write  Esc back",
        Style::new().fg(Color::Cyan),
    ));
    let height = lines.len() as u16 + 2;
    popup(frame, title, lines, EDITOR_WIDTH, height);
}

/// The rule editor's width, when the terminal has it.
const EDITOR_WIDTH: u16 = 76;

/// A list to pick from; with nothing in it, `hint` says how to add something.
fn picker(frame: &mut Frame, title: &str, names: Vec<String>, selected: usize, hint: [String; 2]) {
    if names.is_empty() {
        let mut lines: Vec<Line> = hint.into_iter().map(Line::raw).collect();
        lines.push(Line::raw("Esc goes back."));
        popup(frame, title, lines, 74, 5);
        return;
    }
    let area = centered(frame.area(), 50, names.len() as u16 + 2);
    let items: Vec<ListItem> = names.into_iter().map(ListItem::new).collect();
    let list = List::new(items)
        .highlight_symbol("> ")
        .highlight_style(Style::new().add_modifier(Modifier::REVERSED))
        .block(Block::bordered().title(title.to_string()));
    frame.render_widget(Clear, area);
    frame.render_stateful_widget(
        list,
        area,
        &mut ListState::default().with_selected(Some(selected)),
    );
}

fn popup(frame: &mut Frame, title: &str, lines: Vec<Line<'_>>, width: u16, height: u16) {
    let area = centered(frame.area(), width, height);
    frame.render_widget(Clear, area);
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(Block::bordered().title(title.to_string())),
        area,
    );
}

/// A `width`×`height` box in the middle of `area`, shrunk to fit.
fn centered(area: Rect, width: u16, height: u16) -> Rect {
    area.centered(
        Constraint::Length(width.min(area.width)),
        Constraint::Length(height.min(area.height)),
    )
}
