//! The Sessions screen: running sessions with workspace, template, uptime, CPU time, memory
//! (from the session's cgroup) and connections allowed/denied.

use ratatui::{
    Frame,
    layout::{Constraint, Rect},
    style::{Modifier, Style},
    widgets::{Block, Row, Table, TableState},
};

use super::format;
use crate::{api::protocol::SessionState, tui::app::App};

pub fn render(app: &App, frame: &mut Frame, area: Rect) {
    let now = app.now_ms / 1000;
    let rows = app.sessions.sessions().iter().map(|session| {
        let state = match session.state {
            SessionState::Starting => "starting",
            SessionState::Running => "running",
            SessionState::Stopping => "stopping",
        };
        Row::new(vec![
            session.id.clone(),
            session.workspace.clone(),
            session.template.clone(),
            state.to_string(),
            format::duration(now.saturating_sub(session.started_at)),
            // The share since the last listing when known, else the CPU time so far.
            match app.sessions.cpu_percent(&session.id) {
                Some(percent) => format!("{percent:.0}%"),
                None => session.cpu_usec.map_or("-".into(), format::cpu),
            },
            session.memory_bytes.map_or("-".into(), format::bytes),
            session.allowed.to_string(),
            session.denied.to_string(),
        ])
    });
    let count = app.sessions.sessions().len();
    let title = if count == 0 {
        " Sessions: none running; n starts one ".to_string()
    } else {
        format!(" Sessions ({count}) ")
    };
    let table = Table::new(
        rows,
        [
            Constraint::Length(8),
            Constraint::Min(10),
            Constraint::Length(9),
            Constraint::Length(8),
            Constraint::Length(6),
            Constraint::Length(6),
            Constraint::Length(7),
            Constraint::Length(5),
            Constraint::Length(5),
        ],
    )
    .header(
        Row::new([
            "ID",
            "WORKSPACE",
            "TEMPLATE",
            "STATE",
            "UP",
            "CPU",
            "MEMORY",
            "ALLOW",
            "DENY",
        ])
        .style(Style::new().add_modifier(Modifier::BOLD)),
    )
    .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED))
    .highlight_symbol("> ")
    .block(Block::bordered().title(title));
    let selected = (count > 0).then_some(app.sessions.selected_index());
    frame.render_stateful_widget(table, area, &mut TableState::new().with_selected(selected));
}
