//! The Workspaces screen: the config's workspaces and where each one's rules live.

use ratatui::{
    Frame,
    layout::{Constraint, Rect},
    style::{Modifier, Style},
    widgets::{Block, Row, Table, TableState},
};

use crate::tui::app::App;

pub fn render(app: &App, frame: &mut Frame, area: Rect) {
    let Some(config) = app.loaded_config() else {
        return;
    };
    let rows = config.workspaces.iter().map(|workspace| {
        Row::new(vec![
            workspace.name.clone(),
            workspace.canonical_path.display().to_string(),
        ])
    });
    let title = format!(" Workspaces in {} ", app.config_path.display());
    let table = Table::new(rows, [Constraint::Length(16), Constraint::Min(20)])
        .header(
            Row::new(["NAME", "PATH (rules: PATH/harness-rules.toml)"])
                .style(Style::new().add_modifier(Modifier::BOLD)),
        )
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED))
        .highlight_symbol("> ")
        .block(Block::bordered().title(title));
    let selected = (!config.workspaces.is_empty()).then_some(app.workspace_selected);
    frame.render_stateful_widget(table, area, &mut TableState::new().with_selected(selected));
}
