//! What the venue round-trip benches (`fix.rs`, `mt5.rs`) share: one turn of a venue under a mio
//! poll, timed, and the figures of a run.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mio::{Events, Poll};
use mt5bot::domain::types::VenueEvent;
use mt5bot::domain::venue::Venue;

/// A venue driven by its own poll, as the reactor drives it, on the bench's clock.
pub struct Driver {
    poll: Poll,
    events: Events,
    clock: Instant,
}

impl Driver {
    /// A poll for `venue`, whose sockets take tokens from 1 (`tokens` of them).
    pub fn attach(venue: &mut impl Venue, tokens: usize) -> Driver {
        let poll = Poll::new().expect("poll");
        venue.attach(poll.registry(), mio::Token(1), tokens).expect("attach");
        Driver { poll, events: Events::with_capacity(64), clock: Instant::now() }
    }

    /// Nanoseconds on the bench's clock.
    pub fn now(&self) -> u64 {
        self.clock.elapsed().as_nanos() as u64
    }

    /// Waits (at most 10 ms) for readiness, hands it to the venue, then polls the venue; returns
    /// the time inside the venue's `poll` (its reads, parsing and booking).
    pub fn turn(&mut self, venue: &mut impl Venue, out: &mut Vec<VenueEvent>) -> u64 {
        self.poll.poll(&mut self.events, Some(Duration::from_millis(10))).expect("poll");
        for e in self.events.iter() {
            venue.on_ready(e.token(), e.is_readable() || e.is_read_closed(), e.is_writable());
        }
        let now = self.now();
        let t = Instant::now();
        venue.poll(now, out);
        t.elapsed().as_nanos() as u64
    }
}

/// The `p` quantile of `v` (sorted in place).
pub fn pct(v: &mut [u64], p: f64) -> u64 {
    v.sort_unstable();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// `median us (min x us, max y us)` of run figures in nanoseconds.
pub fn median_min_max(mut v: Vec<u64>) -> String {
    v.sort_unstable();
    let us = |n: u64| format!("{:.1} us", n as f64 / 1000.0);
    format!("{} (min {}, max {})", us(v[v.len() / 2]), us(v[0]), us(v[v.len() - 1]))
}

/// Pins the calling thread to `cpu` with `taskset` (util-linux), its id read from
/// `/proc/thread-self`; threads and processes it starts afterwards inherit the CPU. False where
/// `taskset` is missing or refuses.
pub fn pin_current_thread(cpu: usize) -> bool {
    let Some(tid) = std::fs::read_link("/proc/thread-self").ok().and_then(|p| p.file_name().map(|t| t.to_owned()))
    else {
        return false;
    };
    Command::new("taskset")
        .args(["-p", "-c", &cpu.to_string()])
        .arg(tid)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
