//! Where time comes from. The engine and the venues never read the system clock themselves: the
//! daemon hands them a [`MonotonicClock`], tests and backtests a [`ManualClock`].

use std::cell::Cell;
use std::time::Instant;

use super::types::Nanos;

/// Where the engine's time comes from: monotonic time for deadlines and latencies, and wall time
/// for what people and other processes read (checkpoints, the journal, reports, id ages). Sans-IO
/// code takes both from here, never from the system.
pub trait Clock {
    /// Nanoseconds since an arbitrary, fixed start; never goes back.
    fn now(&self) -> Nanos;

    /// Wall time: nanoseconds since the Unix epoch.
    fn unix_nanos(&self) -> i128;

    /// Moves a clock that history drives (a replay on the data's own time) to `t` and says
    /// true; a real clock cannot be moved and says false.
    fn follow(&self, t: Nanos) -> bool {
        let _ = t;
        false
    }
}

/// The real clock: monotonic time since the engine started, and the system's wall time.
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

    fn unix_nanos(&self) -> i128 {
        crate::support::timefmt::unix_nanos()
    }
}

/// Wall time of a [`ManualClock`] at manual time zero: 2026-01-01T00:00:00Z.
pub const MANUAL_EPOCH_UNIX_NS: i128 = 1_767_225_600_000_000_000;

/// A clock the caller moves by hand, for deterministic tests, benches and backtests. Its wall time
/// is an epoch ([`MANUAL_EPOCH_UNIX_NS`] unless set) plus the manual time, so what a run records
/// does not depend on when it ran.
#[derive(Debug)]
pub struct ManualClock {
    now: Cell<Nanos>,
    epoch_unix_ns: Cell<i128>,
}

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock { now: Cell::new(0), epoch_unix_ns: Cell::new(MANUAL_EPOCH_UNIX_NS) }
    }
}

impl ManualClock {
    pub fn set(&self, t: Nanos) {
        self.now.set(t);
    }

    pub fn advance(&self, by: Nanos) {
        self.now.set(self.now.get() + by);
    }

    /// Sets the wall time at manual time zero.
    pub fn set_epoch(&self, unix_ns: i128) {
        self.epoch_unix_ns.set(unix_ns);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Nanos {
        self.now.get()
    }

    fn unix_nanos(&self) -> i128 {
        self.epoch_unix_ns.get() + i128::from(self.now.get())
    }

    fn follow(&self, t: Nanos) -> bool {
        self.set(t);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_wall_time_moves_with_manual_time_from_its_epoch() {
        let c = ManualClock::default();
        assert_eq!(c.unix_nanos(), MANUAL_EPOCH_UNIX_NS);
        assert_eq!(crate::support::timefmt::rfc3339_micros(c.unix_nanos()), "2026-01-01T00:00:00.000000Z");
        c.advance(1_500);
        assert_eq!(c.unix_nanos(), MANUAL_EPOCH_UNIX_NS + 1_500);
        c.set_epoch(0);
        assert_eq!((c.now(), c.unix_nanos()), (1_500, 1_500));
        let real = MonotonicClock::new();
        assert!((real.unix_nanos() - crate::support::timefmt::unix_nanos()).abs() < 1_000_000_000);
    }
}
