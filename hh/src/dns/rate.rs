//! [`TokenBucket`]: the stub's query-rate cap. Pure: the caller passes the time, so tests need no
//! clock.

use std::time::{Duration, Instant};

/// Holds up to `burst` tokens, refilled at `per_second`; each answered query takes one.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    burst: f64,
    per_second: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket at `now`. A zero burst is taken as one, so a zero rate still answers once.
    pub fn new(per_second: u32, burst: u32, now: Instant) -> TokenBucket {
        let burst = f64::from(burst.max(1));
        TokenBucket {
            burst,
            per_second: f64::from(per_second),
            tokens: burst,
            last: now,
        }
    }

    /// Takes a token if one is left at `now`. Time going backwards adds nothing.
    pub fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now
            .checked_duration_since(self.last)
            .unwrap_or(Duration::ZERO);
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed.as_secs_f64() * self.per_second).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_bucket_answers_the_burst_then_stops() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(10, 5, start);
        let taken = (0..20).filter(|_| bucket.try_take(start)).count();
        assert_eq!(taken, 5);
    }

    #[test]
    fn tokens_come_back_at_the_rate_and_never_beyond_the_burst() {
        let start = Instant::now();
        let cases = [
            // (elapsed ms after emptying, tokens available)
            (0, 0),
            (99, 0),
            (100, 1),
            (250, 2),
            (500, 5),
            (10_000, 5),
        ];
        for (elapsed_ms, expected) in cases {
            let mut bucket = TokenBucket::new(10, 5, start);
            while bucket.try_take(start) {}
            let later = start + Duration::from_millis(elapsed_ms);
            let taken = (0..20).filter(|_| bucket.try_take(later)).count();
            assert_eq!(taken, expected, "after {elapsed_ms} ms");
        }
    }

    #[test]
    fn time_going_backwards_adds_no_tokens() {
        let start = Instant::now() + Duration::from_secs(10);
        let mut bucket = TokenBucket::new(10, 1, start);
        assert!(bucket.try_take(start));
        assert!(!bucket.try_take(start - Duration::from_secs(5)));
        assert!(!bucket.try_take(start));
    }

    #[test]
    fn a_zero_burst_still_answers_one_query() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(0, 0, start);
        assert!(bucket.try_take(start));
        assert!(!bucket.try_take(start + Duration::from_secs(60)));
    }
}
