//! The approval prompt (drawn on every screen while a request is held) and the Approvals screen
//! (the whole queue, with the measured prompt latency).
//!
//! A host name is never cut: it wraps (after a `.` where it can), in the prompt and in the
//! queue, so the end of the name, which says whose it is, is always on screen. The prompt also
//! shows what leaves besides what rules decide on (the query string, the body size) and the
//! agent's note (e.g. that a loopback address is the proxy host's).

use ratatui::{
    Frame,
    layout::{Constraint, Rect},
    style::{Color, Modifier, Style},
    text::{Line, Span, Text},
    widgets::{Block, Cell, Paragraph, Row, Table, TableState},
};

use super::format;
use crate::{
    api::protocol::{BodySize, PendingApproval},
    tui::{
        app::App,
        approval_queue::{Prompt, seconds_left},
    },
};

/// At most this many other queued prompts are listed under the selected one.
const QUEUE_LINES: usize = 3;

/// At most this many lines of a path or query string; the rest is counted, and
/// `hh approvals --json` shows all of it. A host name is never shortened.
const VALUE_LINES: usize = 4;

/// The label column of the prompt's fields.
const LABEL: usize = 6;

/// Rows the prompt takes at a terminal `width` wide: its lines and two borders.
pub fn prompt_height(app: &App, width: u16) -> u16 {
    if app.approvals.selected().is_none() {
        return 0;
    }
    let lines = prompt_lines(app, usize::from(width.saturating_sub(2)));
    u16::try_from(lines.len() + 2).unwrap_or(u16::MAX)
}

fn method(approval: &PendingApproval) -> &str {
    approval.method.as_deref().unwrap_or("TCP")
}

/// `value` under `label`, wrapped to `width` (breaking after one of `after`); at most `limit`
/// lines, the rest counted on the last one.
fn field<'a>(
    label: &str,
    value: &str,
    width: usize,
    after: &[char],
    limit: Option<usize>,
    style: Style,
) -> Vec<Line<'a>> {
    let mut lines = format::labeled(label, LABEL, value, width, after);
    if let Some(limit) = limit
        && lines.len() > limit
    {
        let shown: usize = lines[..limit - 1]
            .iter()
            .map(|(_, chunk)| chunk.chars().count())
            .sum();
        let left = value.chars().count() - shown;
        lines.truncate(limit - 1);
        let lead = " ".repeat(LABEL);
        lines.push((
            lead,
            format!("… {left} more characters (hh approvals --json)"),
        ));
    }
    lines
        .into_iter()
        .map(|(lead, chunk)| Line::from(vec![Span::raw(lead), Span::styled(chunk, style)]))
        .collect()
}

/// How a body size reads in a prompt.
fn body_text(body: BodySize) -> String {
    match body {
        BodySize::None => "none".into(),
        BodySize::Bytes(len) if len < 1024 => format!("{len} bytes"),
        BodySize::Bytes(len) => format!("{len} bytes ({})", format::bytes(len)),
        BodySize::Streamed => "streamed: its length was not given ahead".into(),
    }
}

/// Everything inside the prompt's border, `width` columns wide: the host in full (wrapped, never
/// cut), then what else the request sends.
fn prompt_lines(app: &App, width: usize) -> Vec<Line<'_>> {
    let Some(prompt) = app.approvals.selected() else {
        return Vec::new();
    };
    let approval = &prompt.approval;
    let bold = Style::new().add_modifier(Modifier::BOLD);
    let mut lines = vec![Line::from(vec![
        Span::raw("session "),
        Span::styled(approval.session.as_str(), bold),
        Span::raw("  method "),
        Span::styled(method(approval), bold),
        Span::raw("  port "),
        Span::styled(approval.port.to_string(), bold),
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
    ])];
    if let Some(process) = &approval.process {
        // Who asks: the process in the session that made the request.
        lines.extend(field("by", process, width, &[' '], Some(VALUE_LINES), bold));
    }
    lines.extend(field("host", &approval.host, width, &['.'], None, bold));
    if let Some(path) = &approval.path {
        lines.extend(field("path", path, width, &['/'], Some(VALUE_LINES), bold));
    }
    if approval.method.is_some() {
        let query = approval.query.as_deref().unwrap_or("none");
        lines.extend(field(
            "query",
            query,
            width,
            &['&'],
            Some(VALUE_LINES),
            bold,
        ));
        let body = body_text(approval.body);
        lines.extend(field("body", &body, width, &[' '], None, bold));
    }
    if let Some(note) = &approval.note {
        let warn = Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD);
        lines.extend(field("note", note, width, &[' '], None, warn));
    }
    if let Some(error) = &prompt.error {
        let red = Style::new().fg(Color::Red);
        lines.extend(field(
            "agent",
            &format!("refused: {error}"),
            width,
            &[' '],
            None,
            red,
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
        let text = format!("  next {}: {}", i + 1, summary(other, app.now_ms));
        for (j, chunk) in format::wrap(&text, width.saturating_sub(4), &['.', ' ', '/'])
            .into_iter()
            .enumerate()
        {
            let lead = if j == 0 { "" } else { "    " };
            lines.push(Line::styled(
                format!("{lead}{chunk}"),
                Style::new().add_modifier(Modifier::DIM),
            ));
        }
    }
    let wait = app.approvals.answer_delay_left(app.now_ms);
    lines.push(if wait > 0 {
        Line::styled(
            format!(
                "answer keys wait {:.1}s: the held request just changed  [ ] other prompt",
                wait as f64 / 1000.0
            ),
            Style::new().add_modifier(Modifier::DIM),
        )
    } else {
        Line::styled(
            "a allow once  d deny once  A allow forever…  D deny forever…  [ ] other prompt",
            Style::new().fg(Color::Cyan),
        )
    });
    if wait == 0 {
        lines.push(Line::styled(
            "g allow its host 10 min  G for 1 h  S for this session  (no rule written)",
            Style::new().fg(Color::Cyan),
        ));
    }
    lines
}

pub fn render_prompt(app: &App, frame: &mut Frame, area: Rect) {
    if app.approvals.selected().is_none() {
        return;
    }
    let count = app.approvals.prompts().len();
    let lines = prompt_lines(app, usize::from(area.width.saturating_sub(2)));
    let title = format!(
        " Request held {} of {count} ",
        app.approvals.selected_index() + 1
    );
    frame.render_widget(
        Paragraph::new(lines).block(
            Block::bordered()
                .title(title)
                .border_style(Style::new().fg(Color::Yellow)),
        ),
        area,
    );
}

/// One line for a queued prompt (wrapped by the caller, never cut).
fn summary(prompt: &Prompt, now_ms: u64) -> String {
    let approval = &prompt.approval;
    let query = approval
        .query
        .as_ref()
        .map_or_else(String::new, |query| format!("?{query}"));
    format!(
        "{} {} {}{query} ({} waiting, {}s left)",
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
    let widths = [
        Constraint::Length(10),
        Constraint::Length(7),
        Constraint::Min(20),
        Constraint::Length(7),
        Constraint::Length(6),
    ];
    let selection = if app.approvals.is_empty() { 0 } else { 2 };
    // Targets wrap to their column, never cut.
    let target_width = super::table_column_widths(area, selection, &widths)[2];
    let rows = app.approvals.prompts().iter().map(|prompt| {
        let approval = &prompt.approval;
        let target = format::target(&approval.host, approval.port, approval.path.as_deref());
        let lines = format::wrap(&target, target_width, &['.', '/']);
        let height = u16::try_from(lines.len()).unwrap_or(u16::MAX);
        Row::new(vec![
            Cell::from(approval.session.clone()),
            Cell::from(method(approval).to_string()),
            Cell::from(Text::from_iter(lines.into_iter().map(Line::from))),
            Cell::from(approval.waiting.to_string()),
            Cell::from(format!(
                "{}s",
                seconds_left(approval.deadline_ms, app.now_ms)
            )),
        ])
        .height(height)
    });
    let table = Table::new(rows, widths)
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
