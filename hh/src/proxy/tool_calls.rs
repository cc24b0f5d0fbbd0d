//! The coding agent's tool calls running in a session, as its hooks report them, so that each
//! audit line says which tool call was running when the request was made.
//!
//! Claude Code runs hh's hook before and after each tool call (`hh-tool-guard`, in the managed
//! settings [`crate::agent::session_files`] mounts); the hook tells the session's control server
//! `POST /tool/start/ID` and `POST /tool/end/ID` with the session's token. A request decided
//! while calls run carries their ids (`tool_use_ids` in the audit line). Several calls may run
//! at once (the agent runs tools in parallel): a request then names all of them, since which one
//! made it is not known from the network.
//!
//! What the hook says comes from inside the session, so a process there can claim or end any
//! id: the ids label lines for a person and decide nothing.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

/// The most calls held as running at once; a start past it drops the oldest.
pub const MAX_RUNNING: usize = 16;

/// A call whose end never came (its hook did not run: the tool failed, the agent died) stops
/// counting as running after this long.
pub const STALE_AFTER: Duration = Duration::from_secs(30 * 60);

/// The longest id taken.
pub const MAX_ID_LEN: usize = 128;

/// The calls running in one session.
#[derive(Debug, Default)]
pub struct ToolCalls {
    running: Mutex<Vec<(String, Instant)>>,
}

impl ToolCalls {
    /// Counts `id` as running from now. `false`: not an id (1 to [`MAX_ID_LEN`] of `A-Z a-z
    /// 0-9 _ -`), ignored.
    pub fn start(&self, id: &str) -> bool {
        if !is_id(id) {
            return false;
        }
        let mut running = self.lock();
        running.retain(|(held, _)| held != id);
        if running.len() >= MAX_RUNNING {
            running.remove(0);
        }
        running.push((id.to_owned(), Instant::now()));
        true
    }

    /// `id` ended (or never ran: no error).
    pub fn end(&self, id: &str) {
        self.lock().retain(|(held, _)| held != id);
    }

    /// The ids running now, oldest first.
    pub fn running(&self) -> Vec<String> {
        let mut running = self.lock();
        running.retain(|(_, since)| since.elapsed() < STALE_AFTER);
        running.iter().map(|(id, _)| id.clone()).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(String, Instant)>> {
        self.running
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Whether `id` can name a tool call: short, and nothing a log or terminal would read as more.
fn is_id(id: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&id.len())
        && id
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_run_from_their_start_to_their_end() {
        let calls = ToolCalls::default();
        assert!(calls.running().is_empty());
        assert!(calls.start("toolu_01"));
        assert!(calls.start("toolu_02"));
        assert_eq!(calls.running(), ["toolu_01", "toolu_02"]);
        calls.end("toolu_01");
        assert_eq!(calls.running(), ["toolu_02"]);
        calls.end("never-started");
        calls.end("toolu_02");
        assert!(calls.running().is_empty());
    }

    #[test]
    fn only_ids_are_taken_and_only_so_many() {
        let calls = ToolCalls::default();
        for bad in ["", "a b", "x\u{1b}[2J", "id\n", &"a".repeat(MAX_ID_LEN + 1)] {
            assert!(!calls.start(bad), "{bad:?}");
        }
        assert!(calls.running().is_empty());
        for n in 0..MAX_RUNNING + 3 {
            assert!(calls.start(&format!("call-{n}")));
        }
        let running = calls.running();
        assert_eq!(running.len(), MAX_RUNNING);
        assert_eq!(running[0], "call-3", "the oldest go first");
        // A repeated start counts once.
        assert!(calls.start("call-5"));
        assert_eq!(calls.running().len(), MAX_RUNNING);
    }
}
