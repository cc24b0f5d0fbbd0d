//! The live decisions (the audit stream), the last [`CAPACITY`] of them, and the filters the
//! Activity screen applies: by session and by decision.
//!
//! Pure: fed by [`crate::api::protocol::Event::Decision`] events.

use std::collections::VecDeque;

use crate::api::protocol::DecisionEvent;

/// How many decisions are kept; older ones are dropped (the audit log on disk has them all).
pub const CAPACITY: usize = 1000;

/// Which decisions the screen shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum VerdictFilter {
    #[default]
    All,
    Allowed,
    Denied,
}

impl VerdictFilter {
    pub fn label(self) -> &'static str {
        match self {
            VerdictFilter::All => "all",
            VerdictFilter::Allowed => "allow",
            VerdictFilter::Denied => "deny",
        }
    }

    fn admits(self, decision: &str) -> bool {
        match self {
            VerdictFilter::All => true,
            VerdictFilter::Allowed => decision == "allow",
            VerdictFilter::Denied => decision == "deny",
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct ActivityLog {
    decisions: VecDeque<DecisionEvent>,
    /// `None`: every session.
    pub session: Option<String>,
    pub verdict: VerdictFilter,
    /// Index into [`ActivityLog::visible`], newest first.
    selected: usize,
}

impl ActivityLog {
    pub fn push(&mut self, decision: DecisionEvent) {
        if self.decisions.len() == CAPACITY {
            self.decisions.pop_front();
        }
        self.decisions.push_back(decision);
        // The list shows newest first: keep the selection on the same line as lines arrive
        // above it, unless it is the top one (then it follows the newest).
        if self.selected > 0 && self.admits(self.decisions.back()) {
            self.selected += 1;
        }
    }

    fn admits(&self, decision: Option<&DecisionEvent>) -> bool {
        decision.is_some_and(|d| {
            self.verdict.admits(&d.decision)
                && self.session.as_ref().is_none_or(|s| *s == d.session)
        })
    }

    /// The decisions that pass the filters, newest first.
    pub fn visible(&self) -> Vec<&DecisionEvent> {
        self.decisions
            .iter()
            .rev()
            .filter(|d| self.admits(Some(d)))
            .collect()
    }

    pub fn selected_index(&self) -> usize {
        self.selected
    }

    pub fn selected(&self) -> Option<&DecisionEvent> {
        self.visible().get(self.selected).copied()
    }

    pub fn select_next(&mut self) {
        if self.selected + 1 < self.visible().len() {
            self.selected += 1;
        }
    }

    pub fn select_previous(&mut self) {
        self.selected = self.selected.saturating_sub(1);
    }

    /// all → allow → deny → all.
    pub fn cycle_verdict(&mut self) {
        self.verdict = match self.verdict {
            VerdictFilter::All => VerdictFilter::Allowed,
            VerdictFilter::Allowed => VerdictFilter::Denied,
            VerdictFilter::Denied => VerdictFilter::All,
        };
        self.selected = 0;
    }

    /// Every session → each session seen in the log, in order of first decision → every session.
    pub fn cycle_session(&mut self) {
        let mut sessions: Vec<&str> = Vec::new();
        for decision in &self.decisions {
            if !sessions.contains(&decision.session.as_str()) {
                sessions.push(&decision.session);
            }
        }
        let next = match &self.session {
            None => sessions.first(),
            Some(current) => sessions
                .iter()
                .position(|s| s == current)
                .and_then(|i| sessions.get(i + 1)),
        };
        self.session = next.map(|s| s.to_string());
        self.selected = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(session: &str, host: &str, verdict: &str) -> DecisionEvent {
        DecisionEvent {
            process: None,
            time_ms: 0,
            session: session.into(),
            method: Some("GET".into()),
            host: host.into(),
            path: Some("/".into()),
            port: 443,
            decision: verdict.into(),
            rule: None,
        }
    }

    fn hosts(log: &ActivityLog) -> Vec<&str> {
        log.visible().iter().map(|d| d.host.as_str()).collect()
    }

    #[test]
    fn filters_by_decision_and_by_session_newest_first() {
        let mut log = ActivityLog::default();
        log.push(decision("s1", "a.test", "allow"));
        log.push(decision("s2", "b.test", "deny"));
        log.push(decision("s1", "c.test", "deny"));
        assert_eq!(hosts(&log), ["c.test", "b.test", "a.test"]);
        log.cycle_verdict();
        assert_eq!(hosts(&log), ["a.test"]);
        log.cycle_verdict();
        assert_eq!(hosts(&log), ["c.test", "b.test"]);
        log.cycle_session();
        assert_eq!(log.session.as_deref(), Some("s1"));
        assert_eq!(hosts(&log), ["c.test"]);
        log.cycle_session();
        assert_eq!(hosts(&log), ["b.test"]);
        log.cycle_session();
        assert_eq!(log.session, None);
    }

    #[test]
    fn the_selection_stays_on_its_line_as_new_lines_arrive() {
        let mut log = ActivityLog::default();
        log.push(decision("s1", "a.test", "allow"));
        log.push(decision("s1", "b.test", "allow"));
        log.select_next();
        assert_eq!(log.selected().unwrap().host, "a.test");
        log.push(decision("s1", "c.test", "allow"));
        assert_eq!(log.selected().unwrap().host, "a.test");
    }

    #[test]
    fn old_decisions_are_dropped_past_capacity() {
        let mut log = ActivityLog::default();
        for i in 0..CAPACITY + 5 {
            log.push(decision("s1", &format!("h{i}.test"), "allow"));
        }
        assert_eq!(log.visible().len(), CAPACITY);
        assert_eq!(log.visible()[0].host, format!("h{}.test", CAPACITY + 4));
    }
}
