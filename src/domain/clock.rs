//! Where time comes from. The engine and the venues never read the system clock themselves: the
//! daemon hands them a [`MonotonicClock`], tests and backtests a [`ManualClock`].

use std::time::Instant;

use super::types::Nanos;

/// Where the engine's time comes from.
pub trait Clock {
    /// Nanoseconds since an arbitrary, fixed start; never goes back.
    fn now(&self) -> Nanos;
}

/// The real clock: monotonic time since the engine started.
#[derive(Debug, Clone, Copy)]
pub struct MonotonicClock {
    start: Instant,
}

impl MonotonicClock {
    pub fn new() -> Self {
        MonotonicClock { start: Instant::now() }
    }

    pub fn start(&self) -> Instant {
        self.start
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for MonotonicClock {
    #[inline]
    fn now(&self) -> Nanos {
        self.start.elapsed().as_nanos() as Nanos
    }
}

/// A clock the caller moves by hand, for deterministic tests and benches.
#[derive(Debug, Default)]
pub struct ManualClock(pub std::cell::Cell<Nanos>);

impl ManualClock {
    pub fn set(&self, t: Nanos) {
        self.0.set(t);
    }

    pub fn advance(&self, by: Nanos) {
        self.0.set(self.0.get() + by);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Nanos {
        self.0.get()
    }
}
