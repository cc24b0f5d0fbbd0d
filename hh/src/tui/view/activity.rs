//! The Activity screen: live decisions, newest first, filtered by session and by decision, with
//! the deciding rule.

use ratatui::{
    Frame,
    layout::{Constraint, Rect},
    style::{Color, Modifier, Style},
    widgets::{Block, Cell, Row, Table, TableState},
};

use super::format;
use crate::tui::app::App;

pub fn render(app: &App, frame: &mut Frame, area: Rect) {
    let log = &app.activity;
    let visible = log.visible();
    let rows = visible.iter().map(|decision| {
        let color = if decision.decision == "deny" {
            Color::Red
        } else {
            Color::Green
        };
        Row::new(vec![
            Cell::from(format::time_of_day(decision.time_ms)),
            Cell::from(decision.session.clone()),
            Cell::from(decision.decision.clone()).style(Style::new().fg(color)),
            Cell::from(decision.method.clone().unwrap_or_else(|| "TCP".into())),
            Cell::from(format::target(
                &decision.host,
                decision.port,
                decision.path.as_deref(),
            )),
            Cell::from(decision.rule.clone().unwrap_or_else(|| "-".into())),
        ])
    });
    let title = format!(
        " Activity: session {} · decision {} ",
        log.session.as_deref().unwrap_or("all"),
        log.verdict.label()
    );
    let table = Table::new(
        rows,
        [
            Constraint::Length(8),
            Constraint::Length(8),
            Constraint::Length(5),
            Constraint::Length(6),
            Constraint::Min(16),
            Constraint::Min(10),
        ],
    )
    .header(
        Row::new(["TIME", "SESSION", "", "METHOD", "TARGET", "RULE"])
            .style(Style::new().add_modifier(Modifier::BOLD)),
    )
    .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED))
    .highlight_symbol("> ")
    .block(Block::bordered().title(title));
    let selected = (!visible.is_empty()).then_some(log.selected_index());
    frame.render_stateful_widget(table, area, &mut TableState::new().with_selected(selected));
}
