//! Rate limits for repeated log lines: the first occurrence is logged, then at most one line per
//! interval saying how many were held back.
//!
//! A listener that logs one warning per refused connection lets any client write the disk full
//! (137,190 lines in 15 s from one reconnect loop against the MT5 bridge). Every warning that a
//! remote peer can cause at will goes through a [`Throttle`]. It takes `now` from the caller, so it
//! is sans-IO and costs a comparison per call.

use std::time::{Duration, Instant};

/// How often a throttled warning is repeated, with the count of the ones held back.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// One kind of repeated log line.
#[derive(Debug, Clone)]
pub struct Throttle {
    interval: Duration,
    last: Option<Instant>,
    held: u64,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle::new(DEFAULT_INTERVAL)
    }
}

impl Throttle {
    pub fn new(interval: Duration) -> Throttle {
        Throttle { interval, last: None, held: 0 }
    }

    /// `Some(held)` when the line should be logged now (`held` lines were held back since the
    /// last one logged), `None` when it should be held back and counted.
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(t) if now.saturating_duration_since(t) < self.interval => {
                self.held += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.held))
            }
        }
    }

    /// A suffix for the logged line: empty, or how many like it were held back.
    pub fn suffix(&self, held: u64) -> String {
        if held == 0 {
            String::new()
        } else {
            format!(" (and {held} more like it since the last such line; at most one every {:?})", self.interval)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_the_first_then_one_per_interval_with_the_count_held() {
        let t0 = Instant::now();
        let mut t = Throttle::new(Duration::from_secs(10));
        assert_eq!(t.allow(t0), Some(0));
        for i in 1..=5 {
            assert_eq!(t.allow(t0 + Duration::from_secs(i)), None);
        }
        assert_eq!(t.allow(t0 + Duration::from_secs(10)), Some(5));
        assert_eq!(t.allow(t0 + Duration::from_secs(11)), None);
        assert_eq!(t.allow(t0 + Duration::from_secs(25)), Some(1));
        assert!(t.suffix(3).contains("3 more"));
        assert_eq!(t.suffix(0), "");
    }
}
