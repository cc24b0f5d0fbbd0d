//! The held requests waiting for an answer, in the order their timeouts deny them, and how fast
//! each one reached the screen.
//!
//! The answer keys act on the selected prompt, and only once it has been on screen for
//! [`ANSWER_DELAY_MS`]: a key typed just as a prompt appeared, or just as the one being read was
//! withdrawn and another took its place, was meant for something else (a session can time its
//! requests so that a new prompt lands under a person's fingers).
//!
//! Pure: the clock is passed in ([`Instant`] for latency, epoch milliseconds for deadlines and
//! the answer delay).

use std::time::{Duration, Instant};

use crate::api::protocol::PendingApproval;

/// One prompt in the queue.
#[derive(Clone, Debug)]
pub struct Prompt {
    pub approval: PendingApproval,
    /// When the event left the agent socket; `None` once the prompt was drawn (or when it came
    /// from a `ListApprovals` reply, which is not a prompt event).
    received: Option<Instant>,
    /// The agent's refusal of the last answer (e.g. a rule that does not cover the request).
    pub error: Option<String>,
    /// An answer was sent and no reply came yet: the keys do not send a second one.
    pub answering: bool,
}

/// How long the answer keys wait after the selected prompt changed.
pub const ANSWER_DELAY_MS: u64 = 1000;

/// Pending prompts, soonest deadline first, and the prompt latency measured so far.
#[derive(Clone, Debug, Default)]
pub struct ApprovalQueue {
    prompts: Vec<Prompt>,
    selected: usize,
    /// The prompt last seen selected, and when it became so (epoch ms).
    selected_since: Option<(u64, u64)>,
    /// Latency of the last prompt drawn, and the worst one.
    pub last_latency: Option<Duration>,
    pub max_latency: Option<Duration>,
}

impl ApprovalQueue {
    /// Adds or refreshes a held request (a repeated event updates its `waiting` count).
    pub fn insert(&mut self, approval: PendingApproval, received: Option<Instant>) {
        if let Some(prompt) = self
            .prompts
            .iter_mut()
            .find(|p| p.approval.id == approval.id)
        {
            prompt.approval = approval;
            return;
        }
        let selected_id = self.selected().map(|p| p.approval.id);
        self.prompts.push(Prompt {
            approval,
            received,
            error: None,
            answering: false,
        });
        self.prompts
            .sort_by_key(|p| (p.approval.deadline_ms, p.approval.id));
        self.reselect(selected_id);
    }

    /// Replaces the queue with the agent's list (after a reconnect), keeping what is known of
    /// prompts still held.
    pub fn replace(&mut self, pending: Vec<PendingApproval>) {
        let selected_id = self.selected().map(|p| p.approval.id);
        let old = std::mem::take(&mut self.prompts);
        for approval in pending {
            let previous = old.iter().find(|p| p.approval.id == approval.id);
            self.prompts.push(Prompt {
                received: previous.and_then(|p| p.received),
                error: previous.and_then(|p| p.error.clone()),
                answering: previous.is_some_and(|p| p.answering),
                approval,
            });
        }
        self.prompts
            .sort_by_key(|p| (p.approval.deadline_ms, p.approval.id));
        self.reselect(selected_id);
    }

    /// Answered, timed out or withdrawn.
    pub fn remove(&mut self, id: u64) {
        let selected_id = self.selected().map(|p| p.approval.id);
        self.prompts.retain(|p| p.approval.id != id);
        self.reselect(selected_id);
    }

    pub fn get_mut(&mut self, id: u64) -> Option<&mut Prompt> {
        self.prompts.iter_mut().find(|p| p.approval.id == id)
    }

    pub fn prompts(&self) -> &[Prompt] {
        &self.prompts
    }

    pub fn is_empty(&self) -> bool {
        self.prompts.is_empty()
    }

    pub fn selected_index(&self) -> usize {
        self.selected
    }

    /// The prompt the answer keys act on.
    pub fn selected(&self) -> Option<&Prompt> {
        self.prompts.get(self.selected)
    }

    pub fn select_next(&mut self) {
        if self.selected + 1 < self.prompts.len() {
            self.selected += 1;
        }
    }

    pub fn select_previous(&mut self) {
        self.selected = self.selected.saturating_sub(1);
    }

    /// Notes, at `now_ms`, which prompt is selected: called after anything that may have changed
    /// it (an event, a reply, a key). A new one starts the answer delay.
    pub fn settle_selection(&mut self, now_ms: u64) {
        let id = self.selected().map(|p| p.approval.id);
        self.selected_since = match (id, self.selected_since) {
            (Some(id), Some((seen, since))) if seen == id => Some((seen, since)),
            (Some(id), _) => Some((id, now_ms)),
            (None, _) => None,
        };
    }

    /// How many milliseconds the answer keys still wait at `now_ms` (0: they act).
    pub fn answer_delay_left(&self, now_ms: u64) -> u64 {
        match (self.selected(), self.selected_since) {
            (Some(prompt), Some((id, since))) if prompt.approval.id == id => {
                (since + ANSWER_DELAY_MS).saturating_sub(now_ms)
            }
            // Selected but not noted yet: it just changed.
            (Some(_), _) => ANSWER_DELAY_MS,
            (None, _) => 0,
        }
    }

    /// Keeps the selection on the same prompt when others come and go; else the first one.
    fn reselect(&mut self, id: Option<u64>) {
        self.selected = id
            .and_then(|id| self.prompts.iter().position(|p| p.approval.id == id))
            .unwrap_or(0)
            .min(self.prompts.len().saturating_sub(1));
    }

    /// Called once a frame showing every prompt was drawn at `drawn`: records how long each new
    /// prompt took from the socket to the screen. Returns the latencies measured now.
    pub fn frame_drawn(&mut self, drawn: Instant) -> Vec<(u64, Duration)> {
        let mut measured = Vec::new();
        for prompt in &mut self.prompts {
            if let Some(received) = prompt.received.take() {
                let latency = drawn.saturating_duration_since(received);
                measured.push((prompt.approval.id, latency));
                self.last_latency = Some(latency);
                self.max_latency = Some(self.max_latency.map_or(latency, |m| m.max(latency)));
            }
        }
        measured
    }
}

/// Seconds left before the timeout denies a prompt, rounded up (0 once due).
pub fn seconds_left(deadline_ms: u64, now_ms: u64) -> u64 {
    deadline_ms.saturating_sub(now_ms).div_ceil(1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn approval(id: u64, deadline_ms: u64) -> PendingApproval {
        PendingApproval {
            process: None,
            id,
            session: "s1".into(),
            method: Some("GET".into()),
            host: "example.test".into(),
            path: Some("/".into()),
            port: 443,
            waiting: 1,
            deadline_ms,
            rules_file: "/w/harness-rules.toml".into(),
            layer: "workspace".into(),
            suggested_rule: "domain=example.test".into(),
            query: None,
            body: crate::api::protocol::BodySize::None,
            note: None,
        }
    }

    #[test]
    fn prompts_queue_by_deadline_and_the_selection_follows_its_prompt() {
        let mut queue = ApprovalQueue::default();
        queue.insert(approval(1, 30_000), None);
        // A more urgent prompt queues before it, but the keys stay on the prompt being read.
        queue.insert(approval(2, 10_000), None);
        assert_eq!(queue.selected().unwrap().approval.id, 1);
        queue.select_previous();
        assert_eq!(queue.selected().unwrap().approval.id, 2);
        queue.select_next();
        assert_eq!(queue.selected().unwrap().approval.id, 1);
        queue.insert(approval(3, 5_000), None);
        assert_eq!(queue.selected().unwrap().approval.id, 1);
        // Once it is gone, the soonest deadline is next.
        queue.remove(1);
        assert_eq!(queue.selected().unwrap().approval.id, 3);
        queue.remove(2);
        queue.remove(3);
        assert!(queue.selected().is_none());
    }

    #[test]
    fn the_answer_keys_wait_a_second_after_the_selected_prompt_changed() {
        let mut queue = ApprovalQueue::default();
        queue.insert(approval(1, 30_000), None);
        queue.settle_selection(10_000);
        assert_eq!(queue.answer_delay_left(10_000), ANSWER_DELAY_MS);
        assert_eq!(queue.answer_delay_left(10_400), 600);
        assert_eq!(queue.answer_delay_left(11_000), 0);
        // Another prompt arriving behind it changes nothing for the one being read.
        queue.insert(approval(2, 40_000), None);
        queue.settle_selection(11_500);
        assert_eq!(queue.answer_delay_left(11_500), 0);
        // The one being read is withdrawn: the next takes its place, and the keys wait again.
        queue.remove(1);
        assert_eq!(queue.answer_delay_left(11_600), ANSWER_DELAY_MS);
        queue.settle_selection(11_600);
        assert_eq!(queue.answer_delay_left(12_100), 500);
        assert_eq!(queue.answer_delay_left(12_600), 0);
        // Moving through the queue is a change too.
        queue.insert(approval(3, 50_000), None);
        queue.select_next();
        queue.settle_selection(13_000);
        assert_eq!(queue.answer_delay_left(13_000), ANSWER_DELAY_MS);
        queue.remove(2);
        queue.remove(3);
        queue.settle_selection(14_000);
        assert_eq!(queue.answer_delay_left(14_000), 0);
    }

    #[test]
    fn a_repeated_event_updates_the_waiting_count() {
        let mut queue = ApprovalQueue::default();
        queue.insert(approval(1, 30_000), None);
        let mut again = approval(1, 30_000);
        again.waiting = 4;
        queue.insert(again, None);
        assert_eq!(queue.prompts().len(), 1);
        assert_eq!(queue.prompts()[0].approval.waiting, 4);
    }

    #[test]
    fn latency_is_measured_once_per_prompt() {
        let mut queue = ApprovalQueue::default();
        let received = Instant::now();
        queue.insert(approval(1, 30_000), Some(received));
        let drawn = received + Duration::from_millis(12);
        assert_eq!(queue.frame_drawn(drawn), [(1, Duration::from_millis(12))]);
        assert_eq!(queue.frame_drawn(drawn + Duration::from_secs(1)), []);
        assert_eq!(queue.max_latency, Some(Duration::from_millis(12)));
    }

    #[test]
    fn remaining_time_rounds_up_and_stops_at_zero() {
        assert_eq!(seconds_left(10_500, 10_000), 1);
        assert_eq!(seconds_left(10_000, 10_000), 0);
        assert_eq!(seconds_left(9_000, 10_000), 0);
        assert_eq!(seconds_left(40_000, 10_000), 30);
    }
}
