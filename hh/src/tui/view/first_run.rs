//! The first-run screen: no config yet, offer to write the starter (what `hh init` writes).

use ratatui::{
    Frame,
    layout::Rect,
    style::{Modifier, Style},
    text::{Line, Span},
    widgets::{Block, Paragraph, Wrap},
};

use crate::tui::app::App;

pub fn render(app: &App, frame: &mut Frame, area: Rect) {
    let bold = Style::new().add_modifier(Modifier::BOLD);
    let lines = vec![
        Line::styled("Welcome to hh.", bold),
        Line::raw(""),
        Line::raw(format!(
            "There is no config at {} yet.",
            app.config_path.display()
        )),
        Line::from(vec![
            Span::raw("Press "),
            Span::styled("c", bold),
            Span::raw(" to create it with the commented starter (the file `hh init` writes),"),
        ]),
        Line::raw("then add a workspace on the Workspaces screen (4)."),
    ];
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(Block::bordered().title(" First run ")),
        area,
    );
}
