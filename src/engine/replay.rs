//! The live engine on history: a replay file drives a [`TradingCore`] on a [`ManualClock`] that
//! the data moves, with nothing else on the loop (no sockets, no timers but the engine's own).
//!
//! Each step moves the clock to whichever comes first, the next row of the file or something the
//! engine waits for (a paper fill's latency, the end of a drift pause), and handles what is due
//! then, as one turn of the reactor would. The clock's wall time starts at the file's first row,
//! so trading days, breakers and id ages see the data's own dates. Same file, same config: the
//! same orders, fills and trips, whatever the machine or the hour.

use crate::config::{Config, FeedConfig, FeedSource};
use crate::domain::clock::{Clock, ManualClock};
use crate::domain::types::{Nanos, Signal};
use crate::domain::venue::Venue;
use crate::telemetry::metrics::Metrics;
use crate::venue::feed::{Feed, FeedError, Window};
use crate::venue::paper::PaperVenue;

use super::core::TradingCore;

/// Steps in a row at one instant after which the engine's own deadline is taken as stuck and
/// the replay moves on to the next row (a guard: no venue keeps a deadline it has passed).
const MAX_STEPS_AT_ONE_INSTANT: u32 = 64;

/// Moves an engine through history one instant at a time: the clock goes to whichever comes
/// first, the feed's next row or the engine's next deadline, and what is due then is handled.
/// [`Replay`] steps with it to the end; the daemon's reactor steps with it between its socket
/// events when it replays a CSV at speed 0, so both make the same decisions at the same instants.
#[derive(Debug, Default)]
pub struct Stepper {
    ticks: u64,
    stuck: u32,
}

impl Stepper {
    /// When the next thing happens: the next row, or something the engine waits for; `None` when
    /// the data has ended and nothing is pending.
    pub fn next_event<V: Venue, C: Clock>(&self, core: &TradingCore<V, C>, feed: &Feed) -> Option<Nanos> {
        let engine = if self.stuck >= MAX_STEPS_AT_ONE_INSTANT { None } else { core.next_deadline() };
        match (feed.next_due(), engine) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Moves `core`'s clock (one that [`Clock::follow`]s) to the next event and handles what is
    /// due then: the rows, then the venue. Returns false, doing nothing, when nothing is left.
    pub fn step<V: Venue, C: Clock>(&mut self, core: &mut TradingCore<V, C>, feed: &mut Feed) -> bool {
        let Some(at) = self.next_event(core, feed) else { return false };
        let before = core.clock().now();
        let now = at.max(before);
        core.clock().follow(now);
        let ticks = self.ticks;
        feed.begin_turn();
        while let Some(tick) = feed.poll(now) {
            core.on_tick(&tick);
            self.ticks += 1;
        }
        core.poll_venue();
        self.stuck = if now == before && self.ticks == ticks { self.stuck + 1 } else { 0 };
        true
    }

    /// Something from outside (a signal on the ingress, an operator's command) may have given
    /// the engine a deadline: look at it again even at an instant given up on.
    pub fn wake(&mut self) {
        self.stuck = 0;
    }

    /// Ticks replayed so far.
    pub fn ticks(&self) -> u64 {
        self.ticks
    }
}

/// A [`TradingCore`] and the feed that replays history into it.
#[derive(Debug)]
pub struct Replay<V: Venue = PaperVenue> {
    core: TradingCore<V, ManualClock>,
    feed: Feed,
    stepper: Stepper,
}

impl Replay<PaperVenue> {
    /// The paper venue `cfg` describes, fed by `cfg.feed`, its model's signals named `run_id`-n.
    /// A CSV file replays at its own pace in manual time whatever its `speed` (a manual clock
    /// makes any speed instant); the synthetic feed runs from
    /// [`crate::domain::clock::MANUAL_EPOCH_UNIX_NS`].
    pub fn paper(cfg: &Config, metrics: &Metrics, run_id: &str) -> Result<Self, FeedError> {
        Self::build(cfg, metrics, Some(run_id), Window::default())
    }

    /// [`Replay::paper`] on the rows from `from` (inclusive) to `to` (exclusive), Unix ns, with
    /// the run id the daemon would take at the data's first row ([`super::core::run_id_at`]).
    pub fn paper_between(
        cfg: &Config,
        metrics: &Metrics,
        from: Option<i128>,
        to: Option<i128>,
    ) -> Result<Self, FeedError> {
        Self::build(cfg, metrics, None, Window { from, to })
    }

    fn build(cfg: &Config, metrics: &Metrics, run_id: Option<&str>, window: Window) -> Result<Self, FeedError> {
        let feed = Feed::streaming(&at_data_pace(&cfg.feed), 0, window)?;
        let clock = clock_for(&feed);
        let run_id = run_id.map_or_else(|| super::core::run_id_at(clock.unix_nanos()), str::to_owned);
        let names: Vec<String> = cfg.feed.symbols.iter().map(|s| s.name.clone()).collect();
        let core = TradingCore::new(cfg, PaperVenue::for_config(cfg), clock, metrics.engine("paper", &names), &run_id);
        Ok(Replay { core, feed, stepper: Stepper::default() })
    }
}

/// `cfg` with a CSV replayed at the data's own pace (speed 1), for a clock the data moves: rows
/// come due at their offsets from the first row, in manual nanoseconds from 0.
pub fn at_data_pace(cfg: &FeedConfig) -> FeedConfig {
    let mut cfg = cfg.clone();
    if let FeedSource::Csv { speed, .. } = &mut cfg.source {
        *speed = 1.0;
    }
    cfg
}

/// A manual clock at 0 whose wall time is `feed`'s first row (the manual epoch for a feed
/// without rows of its own).
pub fn clock_for(feed: &Feed) -> ManualClock {
    let clock = ManualClock::default();
    if let Some(start) = feed.start_unix_ns() {
        clock.set_epoch(start);
    }
    clock
}

impl<V: Venue> Replay<V> {
    /// When the next thing happens ([`Stepper::next_event`]).
    pub fn next_event(&self) -> Option<Nanos> {
        self.stepper.next_event(&self.core, &self.feed)
    }

    /// Moves the clock to the next event and handles what is due then ([`Stepper::step`]).
    pub fn step(&mut self) -> bool {
        self.stepper.step(&mut self.core, &mut self.feed)
    }

    /// Runs until the clock would pass `t` (manual nanoseconds from the first row), then sets it
    /// to `t`; returns false if the data ended first.
    pub fn run_until(&mut self, t: Nanos) -> bool {
        while let Some(at) = self.next_event() {
            if at > t {
                self.core.clock().set(t.max(self.core.clock().now()));
                return true;
            }
            self.step();
        }
        false
    }

    /// Runs to the end of the data and until no order is in flight.
    pub fn run(&mut self) {
        while self.step() {}
    }

    /// Offers `signal` now, as a client on the ingress would, and sends what may go.
    pub fn offer(&mut self, signal: Signal) -> Result<(), crate::domain::types::DropReason> {
        let answer = self.core.offer(signal);
        self.core.drain();
        answer
    }

    /// Ticks replayed so far.
    pub fn ticks(&self) -> u64 {
        self.stepper.ticks()
    }

    /// The replay's bad rows left out (`feed.csv.skip_bad_rows`).
    pub fn skipped_rows(&self) -> &crate::venue::feed::Skipped {
        self.feed.skipped_rows()
    }

    /// How far the replay has read its files, 0 to 1 (0 for a feed without an end).
    pub fn read_fraction(&self) -> f64 {
        self.feed.read_fraction().unwrap_or(0.0)
    }

    /// Why the replay ended before its data did (a bad row, with file and line).
    pub fn feed_error(&self) -> Option<&FeedError> {
        self.feed.error()
    }

    pub fn core(&self) -> &TradingCore<V, ManualClock> {
        &self.core
    }

    pub fn core_mut(&mut self) -> &mut TradingCore<V, ManualClock> {
        &mut self.core
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::support::testdir::TestDir;

    fn replay(dir: &TestDir, rows: &str, extra: &str) -> (Replay, Metrics) {
        let path = dir.join("ticks.csv");
        std::fs::write(&path, format!("timestamp,symbol,bid,ask\n{rows}")).expect("write");
        let yaml = format!(
            "feed:\n  kind: csv\n  symbols:\n    - name: EURUSD\n      price: 1.1\n  csv:\n    path: {}\n    speed: 0\n{extra}",
            path.display()
        );
        let cfg = Config::parse(&yaml, "test.yaml").expect("config");
        let metrics = Metrics::new();
        (Replay::paper(&cfg, &metrics, "R").expect("replay"), metrics)
    }

    #[test]
    fn the_clock_follows_the_rows_and_starts_at_the_first_ones_wall_time() {
        let dir = TestDir::new("replay-clock");
        let (mut r, _m) = replay(
            &dir,
            "2026-03-02T10:00:00Z,EURUSD,1.1,1.1002\n2026-03-02T10:00:05Z,EURUSD,1.1,1.1002\n2026-03-02T11:00:00Z,EURUSD,1.1,1.1002\n",
            "",
        );
        let start = crate::support::timefmt::parse_timestamp("2026-03-02T10:00:00Z").expect("ts");
        assert_eq!(r.core().clock().unix_nanos(), start);
        assert!(r.run_until(4_000_000_000));
        assert_eq!((r.ticks(), r.core().clock().now()), (1, 4_000_000_000));
        r.run();
        assert_eq!(r.ticks(), 3);
        assert_eq!(r.core().clock().unix_nanos(), start + 3_600_000_000_000, "the last row's time");
        assert!(!r.step(), "nothing left");
    }

    #[test]
    fn a_paper_fill_waits_for_its_latency_in_manual_time() {
        let dir = TestDir::new("replay-latency");
        let (mut r, _m) = replay(
            &dir,
            "2026-03-02T10:00:00Z,EURUSD,1.1,1.1002\n2026-03-02T10:00:10Z,EURUSD,1.1,1.1002\n",
            "venue:\n  paper:\n    latency: 50ms\n",
        );
        assert!(r.run_until(0));
        let id = crate::domain::types::SignalId::parse("t-1").expect("id");
        let buy = Signal { id, qty: 1.0, source: crate::domain::types::SignalSource::Ingress, ..Signal::default() };
        r.offer(buy).expect("queued");
        assert_eq!(r.core().next_deadline(), Some(50_000_000), "the fill is due after the latency");
        r.step();
        assert_eq!(r.core().clock().now(), 50_000_000, "the clock went to the fill, not to the next row");
        assert_eq!(r.core().executor().position(0).qty, 1.0);
    }
}
