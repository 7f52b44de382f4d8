//! Liveness and readiness: the engine thread writes them on every turn, the helper thread reads
//! them for `/healthz` and `/readyz`, through atomics only.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Liveness and readiness, written by the engine thread, read by the helper.
#[derive(Debug)]
pub struct Health {
    start: Instant,
    /// Milliseconds since `start` at the engine loop's last turn.
    last_turn_ms: AtomicU64,
    venue_up: AtomicBool,
    stopping: AtomicBool,
    ready_deadline_ms: u64,
}

impl Health {
    pub fn new(ready_deadline: Duration) -> Health {
        Health {
            start: Instant::now(),
            last_turn_ms: AtomicU64::new(0),
            venue_up: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            ready_deadline_ms: ready_deadline.as_millis() as u64,
        }
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// Called by the engine on every loop turn.
    #[inline]
    pub fn turned(&self, venue_up: bool) {
        self.last_turn_ms.store(self.now_ms(), Ordering::Relaxed);
        self.venue_up.store(venue_up, Ordering::Relaxed);
    }

    pub fn set_stopping(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// `Ok` when ready, else why not.
    pub fn readiness(&self) -> Result<(), String> {
        if self.is_stopping() {
            return Err("stopping".into());
        }
        if !self.venue_up.load(Ordering::Relaxed) {
            return Err("venue session is down".into());
        }
        let age = self.now_ms().saturating_sub(self.last_turn_ms.load(Ordering::Relaxed));
        if age > self.ready_deadline_ms {
            return Err(format!(
                "engine loop last turned {age} ms ago (engine.ready_deadline is {} ms)",
                self.ready_deadline_ms
            ));
        }
        Ok(())
    }
}
