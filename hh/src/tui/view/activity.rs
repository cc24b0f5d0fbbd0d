//! The Activity screen: live decisions, newest first, filtered by session and by decision, with
//! the deciding rule. A target's host name (and a rule's) wraps in its column, never cut.

use ratatui::{
    Frame,
    layout::{Constraint, Rect},
    style::{Color, Modifier, Style},
    text::{Line, Text},
    widgets::{Block, Cell, Row, Table, TableState},
};

use super::format;
use crate::tui::app::App;

pub fn render(app: &App, frame: &mut Frame, area: Rect) {
    let log = &app.activity;
    let visible = log.visible();
    let widths = [
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(5),
        Constraint::Length(6),
        Constraint::Min(16),
        Constraint::Min(10),
    ];
    let selection = if visible.is_empty() { 0 } else { 2 };
    // The target and the rule (which names hosts too) wrap to their columns, never cut.
    let columns = super::table_column_widths(area, selection, &widths);
    let rows = visible.iter().map(|decision| {
        let target = format::target(&decision.host, decision.port, decision.path.as_deref());
        let target = format::wrap(&target, columns[4], &['.', '/']);
        let rule = decision.rule.as_deref().unwrap_or("-");
        let rule = format::wrap(rule, columns[5], &[' ', '.', ',']);
        let height = u16::try_from(target.len().max(rule.len())).unwrap_or(u16::MAX);
        let cell =
            |lines: Vec<String>| Cell::from(Text::from_iter(lines.into_iter().map(Line::from)));
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
            cell(target),
            cell(rule),
        ])
        .height(height)
    });
    let title = format!(
        " Activity: session {} · decision {} ",
        log.session.as_deref().unwrap_or("all"),
        log.verdict.label()
    );
    let table = Table::new(rows, widths)
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
