//! The caller's sessions as the agent last listed them, the selection, the CPU share computed
//! between two listings, and the workspace of every session seen (an Activity line can outlive
//! its session and still become a rule in that workspace).
//!
//! Pure: the clock is passed in.

use std::collections::HashMap;

use crate::api::protocol::SessionInfo;

#[derive(Clone, Debug, Default)]
pub struct SessionTable {
    sessions: Vec<SessionInfo>,
    selected: usize,
    /// Session id → workspace name, for every session seen since the TUI started.
    workspaces: HashMap<String, String>,
    /// Session id → (CPU µs, wall ms) at the previous listing, and the share since.
    cpu: HashMap<String, CpuSample>,
}

#[derive(Clone, Copy, Debug)]
struct CpuSample {
    usec: u64,
    at_ms: u64,
    /// Percent of one CPU between the last two listings.
    percent: Option<f64>,
}

impl SessionTable {
    pub fn sessions(&self) -> &[SessionInfo] {
        &self.sessions
    }

    pub fn selected_index(&self) -> usize {
        self.selected
    }

    pub fn selected(&self) -> Option<&SessionInfo> {
        self.sessions.get(self.selected)
    }

    pub fn select_next(&mut self) {
        if self.selected + 1 < self.sessions.len() {
            self.selected += 1;
        }
    }

    pub fn select_previous(&mut self) {
        self.selected = self.selected.saturating_sub(1);
    }

    /// A fresh listing taken at `now_ms`.
    pub fn replace(&mut self, sessions: Vec<SessionInfo>, now_ms: u64) {
        let selected_id = self.selected().map(|s| s.id.clone());
        for session in &sessions {
            self.remember(session);
            let Some(usec) = session.cpu_usec else {
                continue;
            };
            let percent = self.cpu.get(&session.id).and_then(|previous| {
                let wall_ms = now_ms.checked_sub(previous.at_ms).filter(|ms| *ms > 0)?;
                let used = usec.checked_sub(previous.usec)?;
                Some(used as f64 / (wall_ms as f64 * 1000.0) * 100.0)
            });
            let percent = percent.or_else(|| self.cpu.get(&session.id).and_then(|p| p.percent));
            self.cpu.insert(
                session.id.clone(),
                CpuSample {
                    usec,
                    at_ms: now_ms,
                    percent,
                },
            );
        }
        self.cpu
            .retain(|id, _| sessions.iter().any(|s| &s.id == id));
        self.sessions = sessions;
        self.reselect(selected_id);
    }

    pub fn started(&mut self, session: SessionInfo) {
        self.remember(&session);
        let selected_id = self.selected().map(|s| s.id.clone());
        self.sessions.retain(|s| s.id != session.id);
        self.sessions.push(session);
        self.reselect(selected_id);
    }

    pub fn ended(&mut self, id: &str) {
        let selected_id = self.selected().map(|s| s.id.clone());
        self.sessions.retain(|s| s.id != id);
        self.cpu.remove(id);
        self.reselect(selected_id);
    }

    /// The workspace of a session seen since the TUI started, running or not.
    pub fn workspace_of(&self, id: &str) -> Option<&str> {
        self.workspaces.get(id).map(String::as_str)
    }

    /// Percent of one CPU the session used between the last two listings.
    pub fn cpu_percent(&self, id: &str) -> Option<f64> {
        self.cpu.get(id).and_then(|sample| sample.percent)
    }

    fn remember(&mut self, session: &SessionInfo) {
        self.workspaces
            .insert(session.id.clone(), session.workspace.clone());
    }

    fn reselect(&mut self, id: Option<String>) {
        let position = id.and_then(|id| self.sessions.iter().position(|s| s.id == id));
        self.selected = position
            .unwrap_or(self.selected)
            .min(self.sessions.len().saturating_sub(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::protocol::SessionState;

    fn session(id: &str, cpu_usec: u64) -> SessionInfo {
        SessionInfo {
            id: id.into(),
            name: id.into(),
            workspace: format!("ws-{id}"),
            template: "default".into(),
            owner_uid: 1000,
            container_id: String::new(),
            started_at: 0,
            state: SessionState::Running,
            memory_bytes: None,
            cpu_usec: Some(cpu_usec),
            allowed: 0,
            denied: 0,
            protected_paths: Vec::new(),
            image: String::new(),
            git: None,
            ports: Vec::new(),
            notices: Vec::new(),
            harness: None,
        }
    }

    #[test]
    fn cpu_share_comes_from_two_listings() {
        let mut table = SessionTable::default();
        table.replace(vec![session("s1", 1_000_000)], 10_000);
        assert_eq!(table.cpu_percent("s1"), None);
        table.replace(vec![session("s1", 1_500_000)], 12_000);
        assert_eq!(table.cpu_percent("s1"), Some(25.0));
        // The same counter at the same instant (two replies at once) keeps the last share.
        table.replace(vec![session("s1", 1_500_000)], 12_000);
        assert_eq!(table.cpu_percent("s1"), Some(25.0));
    }

    #[test]
    fn an_ended_sessions_workspace_is_remembered_and_the_selection_stays_put() {
        let mut table = SessionTable::default();
        table.replace(vec![session("s1", 0), session("s2", 0)], 0);
        table.select_next();
        table.ended("s1");
        assert_eq!(table.selected().unwrap().id, "s2");
        assert_eq!(table.workspace_of("s1"), Some("ws-s1"));
        table.ended("s2");
        assert!(table.selected().is_none());
    }
}
