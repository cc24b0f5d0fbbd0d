//! Drawing: one module per screen, plus the frame they share (tab bar, agent banner, the
//! approval prompt, status and key help lines) and the popups. Rendering reads [`App`] and
//! draws; it changes nothing.

mod activity;
mod approvals;
mod first_run;
mod format;
mod popups;
mod sessions;
mod templates;
mod workspaces;

#[cfg(test)]
mod tests;

use ratatui::{
    Frame,
    layout::{Constraint, Layout, Rect},
    style::{Color, Modifier, Style},
    text::{Line, Span},
    widgets::{Block, Paragraph, Wrap},
};

use super::app::{AgentStatus, App, ConfigState, Mode, Screen};

/// Draws the whole screen.
pub fn render(app: &App, frame: &mut Frame) {
    let prompt_height = approvals::prompt_height(app, frame.area().width);
    let status_height = u16::from(app.status.is_some());
    let [tabs, body, prompt, status, help] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(prompt_height),
        Constraint::Length(status_height),
        Constraint::Length(1),
    ])
    .areas(frame.area());

    render_tabs(app, frame, tabs);
    render_body(app, frame, body);
    approvals::render_prompt(app, frame, prompt);
    if let Some(text) = &app.status {
        frame.render_widget(
            Paragraph::new(text.as_str()).style(Style::new().fg(Color::Yellow)),
            status,
        );
    }
    frame.render_widget(
        Paragraph::new(help_line(app)).style(Style::new().add_modifier(Modifier::DIM)),
        help,
    );
    popups::render(app, frame);
}

fn render_tabs(app: &App, frame: &mut Frame, area: Rect) {
    let mut spans = vec![Span::styled(
        " hh ",
        Style::new().add_modifier(Modifier::BOLD),
    )];
    for (i, screen) in Screen::ALL.iter().enumerate() {
        let mut title = format!("{} {} ", i + 1, screen.title());
        if *screen == Screen::Approvals && !app.approvals.is_empty() {
            title = format!(
                "{} {} ({}) ",
                i + 1,
                screen.title(),
                app.approvals.prompts().len()
            );
        }
        let style = if *screen == app.screen {
            Style::new().add_modifier(Modifier::REVERSED)
        } else {
            Style::new()
        };
        spans.push(Span::styled(title, style));
    }
    // Short enough to fit an 80-column terminal beside the tabs; the version is in `?` help.
    let agent = match &app.agent {
        AgentStatus::Connecting => Span::raw(" agent: …"),
        AgentStatus::Connected(_) => Span::styled(" agent: ok", Style::new().fg(Color::Green)),
        AgentStatus::Unreachable(_) => Span::styled(" agent: down", Style::new().fg(Color::Red)),
    };
    spans.push(agent);
    frame.render_widget(Line::from(spans), area);
}

fn render_body(app: &App, frame: &mut Frame, area: Rect) {
    let needs_agent = matches!(
        app.screen,
        Screen::Sessions | Screen::Approvals | Screen::Activity
    );
    let area = match (&app.agent, needs_agent) {
        (AgentStatus::Unreachable(error), true) => {
            let [banner, rest] =
                Layout::vertical([Constraint::Length(7), Constraint::Min(0)]).areas(area);
            render_agent_banner(app, error, frame, banner);
            rest
        }
        _ => area,
    };
    let needs_config = matches!(app.screen, Screen::Workspaces | Screen::Templates);
    match (&app.config, needs_config) {
        (ConfigState::Missing, _) => return first_run::render(app, frame, area),
        (ConfigState::Invalid(error), true) => {
            let text =
                format!("The config does not load:\n\n{error}\n\nFix the file and start hh again.");
            frame.render_widget(
                Paragraph::new(text)
                    .wrap(Wrap { trim: false })
                    .block(Block::bordered().title(" Config ")),
                area,
            );
            return;
        }
        _ => {}
    }
    match app.screen {
        Screen::Sessions => sessions::render(app, frame, area),
        Screen::Approvals => approvals::render_queue(app, frame, area),
        Screen::Activity => activity::render(app, frame, area),
        Screen::Workspaces => workspaces::render(app, frame, area),
        Screen::Templates => templates::render(app, frame, area),
    }
}

/// The widths a bordered [`ratatui::widgets::Table`] in `area` gives its columns, laid out the
/// way the table lays them out (flex start, one column of spacing, a highlight column of
/// `selection` cells): a cell that wraps its text to that width is never cut.
fn table_column_widths(area: Rect, selection: u16, widths: &[Constraint]) -> Vec<usize> {
    let inner = area.width.saturating_sub(2).saturating_sub(selection);
    Layout::horizontal(widths.iter().copied())
        .flex(ratatui::layout::Flex::Start)
        .spacing(1)
        .split(Rect::new(0, 0, inner, 1))
        .iter()
        .map(|column| usize::from(column.width))
        .collect()
}

/// How to start the agent, said exactly.
fn render_agent_banner(app: &App, error: &str, frame: &mut Frame, area: Rect) {
    // The connect error already says what the banner says; other errors are worth showing.
    let first_line = error.lines().next().unwrap_or(error);
    let detail = if first_line.starts_with("no hh agent answers") {
        String::new()
    } else {
        format!(" ({first_line})")
    };
    let lines = vec![
        Line::styled(
            format!("No hh agent answers at {}.", app.socket.display()),
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        ),
        Line::from(vec![
            Span::raw("Start it with:  "),
            Span::styled("sudo hh agent", Style::new().add_modifier(Modifier::BOLD)),
        ]),
        Line::raw("`hh doctor` says whether this host can run it (eBPF, cgroup v2, Docker)."),
        Line::styled(
            format!("Retrying every second.{detail}"),
            Style::new().add_modifier(Modifier::DIM),
        ),
    ];
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(Block::bordered().title(" Agent ")),
        area,
    );
}

/// The keys that work now, on one line.
fn help_line(app: &App) -> String {
    let screen_keys = match (&app.mode, app.screen) {
        (Mode::Normal, _) if app.config == ConfigState::Missing => "c create config",
        (Mode::Normal, Screen::Sessions) => "n new  s stop  Enter attach  ↑↓ select",
        (Mode::Normal, Screen::Approvals) => "↑↓ select prompt",
        (Mode::Normal, Screen::Activity) => {
            "f session filter  v decision filter  Enter rule from denied"
        }
        (Mode::Normal, Screen::Workspaces | Screen::Templates) if app.loaded_config().is_none() => {
            "fix the config file, then start hh again"
        }
        (Mode::Normal, Screen::Workspaces) => "n add  x remove  t trust rules  ↑↓ select",
        (Mode::Normal, Screen::Templates) => "↑↓ select",
        (Mode::Editor { .. }, _) => {
            return "h host  p port  / path  m method  t allow/deny  Enter write  Esc cancel"
                .into();
        }
        (Mode::Input { .. }, _) => return "type  Enter ok  Esc cancel".into(),
        (Mode::PickWorkspace { .. } | Mode::PickTemplate { .. }, _) => {
            return "↑↓ select  Enter ok  Esc cancel".into();
        }
        (Mode::ConfirmRemove { .. }, _) => return "y remove  any other key keeps it".into(),
        (Mode::ReviewRules { .. }, _) => return "y trust  n not now  Esc stop".into(),
        (Mode::Help, _) => return "any key closes".into(),
    };
    // The prompt's own keys are on the prompt.
    format!("{screen_keys}  Tab/1-5 screens  ? help  q quit")
}
