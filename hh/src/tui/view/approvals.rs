//! The approval prompt (drawn on every screen while a request is held) and the Approvals screen
//! (the whole queue, with the measured prompt latency).

use ratatui::{
    Frame,
    layout::{Constraint, Rect},
    style::{Color, Modifier, Style},
    text::{Line, Span},
    widgets::{Block, Paragraph, Row, Table, TableState},
};

use super::format;
use crate::{
    api::protocol::PendingApproval,
    tui::{
        app::App,
        approval_queue::{Prompt, seconds_left},
    },
};

/// At most this many other queued prompts are listed under the selected one.
const QUEUE_LINES: usize = 3;

/// Rows the prompt takes: borders, two lines of request, an error line, the queue, the keys.
pub fn prompt_height(app: &App) -> u16 {
    let Some(prompt) = app.approvals.selected() else {
        return 0;
    };
    let others = (app.approvals.prompts().len() - 1).min(QUEUE_LINES);
    let error = usize::from(prompt.error.is_some());
    (2 + 2 + error + others + 1) as u16
}

fn method(approval: &PendingApproval) -> &str {
    approval.method.as_deref().unwrap_or("TCP")
}

pub fn render_prompt(app: &App, frame: &mut Frame, area: Rect) {
    let Some(prompt) = app.approvals.selected() else {
        return;
    };
    let approval = &prompt.approval;
    let count = app.approvals.prompts().len();
    let bold = Style::new().add_modifier(Modifier::BOLD);
    let mut lines = vec![
        Line::from(vec![
            Span::raw("session "),
            Span::styled(approval.session.as_str(), bold),
            Span::raw("  method "),
            Span::styled(method(approval), bold),
            Span::raw("  host "),
            Span::styled(approval.host.as_str(), bold),
            Span::raw("  port "),
            Span::styled(approval.port.to_string(), bold),
        ]),
        Line::from(vec![
            Span::raw("path "),
            Span::styled(approval.path.as_deref().unwrap_or("-"), bold),
            Span::raw(format!(
                "  waiting {}  denied in {}s",
                approval.waiting,
                seconds_left(approval.deadline_ms, app.now_ms)
            )),
            Span::raw(if prompt.answering {
                "  (answer sent…)"
            } else {
                ""
            }),
        ]),
    ];
    if let Some(error) = &prompt.error {
        lines.push(Line::styled(
            format!("agent refused: {error}"),
            Style::new().fg(Color::Red),
        ));
    }
    let selected = app.approvals.selected_index();
    for (i, other) in app
        .approvals
        .prompts()
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != selected)
        .take(QUEUE_LINES)
    {
        lines.push(Line::styled(
            format!("  next {}: {}", i + 1, summary(other, app.now_ms)),
            Style::new().add_modifier(Modifier::DIM),
        ));
    }
    lines.push(Line::styled(
        "a allow once  d deny once  A allow forever…  D deny forever…  [ ] other prompt",
        Style::new().fg(Color::Cyan),
    ));
    let title = format!(" Request held {} of {count} ", selected + 1);
    frame.render_widget(
        Paragraph::new(lines).block(
            Block::bordered()
                .title(title)
                .border_style(Style::new().fg(Color::Yellow)),
        ),
        area,
    );
}

/// One line for a queued prompt.
fn summary(prompt: &Prompt, now_ms: u64) -> String {
    let approval = &prompt.approval;
    format!(
        "{} {} {} ({} waiting, {}s left)",
        approval.session,
        method(approval),
        format::target(&approval.host, approval.port, approval.path.as_deref()),
        approval.waiting,
        seconds_left(approval.deadline_ms, now_ms)
    )
}

pub fn render_queue(app: &App, frame: &mut Frame, area: Rect) {
    let latency = match (app.approvals.last_latency, app.approvals.max_latency) {
        (Some(last), Some(max)) => format!(
            " prompt latency: last {} ms, max {} ms ",
            last.as_millis(),
            max.as_millis()
        ),
        _ => String::new(),
    };
    let rows = app.approvals.prompts().iter().map(|prompt| {
        let approval = &prompt.approval;
        Row::new(vec![
            approval.session.clone(),
            method(approval).to_string(),
            format::target(&approval.host, approval.port, approval.path.as_deref()),
            approval.waiting.to_string(),
            format!("{}s", seconds_left(approval.deadline_ms, app.now_ms)),
        ])
    });
    let table = Table::new(
        rows,
        [
            Constraint::Length(10),
            Constraint::Length(7),
            Constraint::Min(20),
            Constraint::Length(7),
            Constraint::Length(6),
        ],
    )
    .header(
        Row::new(["SESSION", "METHOD", "TARGET", "WAITING", "LEFT"])
            .style(Style::new().add_modifier(Modifier::BOLD)),
    )
    .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED))
    .highlight_symbol("> ")
    .block(
        Block::bordered()
            .title(" Held requests (soonest timeout first) ")
            .title_bottom(latency),
    );
    let selected = (!app.approvals.is_empty()).then(|| app.approvals.selected_index());
    frame.render_stateful_widget(table, area, &mut TableState::new().with_selected(selected));
}
