//! The Templates screen: container profiles with their image stem, limits and starter allowlist.

use ratatui::{
    Frame,
    layout::{Constraint, Rect},
    style::{Modifier, Style},
    widgets::{Block, Row, Table, TableState},
};

use super::format;
use crate::tui::app::App;

pub fn render(app: &App, frame: &mut Frame, area: Rect) {
    let Some(config) = app.loaded_config() else {
        return;
    };
    let rows = config.container_profiles.iter().map(|(name, profile)| {
        let allowlist = if profile.starter_network_allowlist.is_empty() {
            "-".to_string()
        } else {
            profile.starter_network_allowlist.join("; ")
        };
        Row::new(vec![
            name.clone(),
            profile.image.clone(),
            profile.memory.map_or("-".into(), |m| format::bytes(m.0)),
            profile.cpus.map_or("-".into(), |c| c.0.to_string()),
            allowlist,
        ])
    });
    let title = format!(" Templates (stems under {}) ", config.docker_dir.display());
    let table = Table::new(
        rows,
        [
            Constraint::Length(10),
            Constraint::Length(10),
            Constraint::Length(7),
            Constraint::Length(5),
            Constraint::Min(20),
        ],
    )
    .header(
        Row::new(["NAME", "STEM", "MEMORY", "CPUS", "STARTER ALLOWLIST"])
            .style(Style::new().add_modifier(Modifier::BOLD)),
    )
    .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED))
    .highlight_symbol("> ")
    .block(Block::bordered().title(title));
    let selected = (!config.container_profiles.is_empty()).then_some(app.template_selected);
    frame.render_stateful_widget(table, area, &mut TableState::new().with_selected(selected));
}
