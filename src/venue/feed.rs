//! Tick feeds for the paper venue: a seeded random walk, or a replay of history ([`super::history`]).
//!
//! The engine asks [`Feed::next_due`] for the poll timeout and calls [`Feed::poll`] until it returns
//! `None`. A feed hands out at most [`MAX_TICKS_PER_TURN`] ticks per loop turn so a high tick rate
//! (100k ticks/s and more) cannot starve sockets and timers; ticks owed after a stall longer than a
//! second are skipped rather than replayed in a burst, and counted.

use rand::{rngs::Xoshiro256PlusPlus, Rng, SeedableRng};

use crate::config::{FeedConfig, FeedSource};
use crate::domain::types::{Nanos, SymbolId, Tick};

pub use super::history::{check, load, load_csv, CsvReplay, CsvRow, FeedError, Skipped, Stream, Window};

/// Upper bound of ticks produced in one loop turn.
pub const MAX_TICKS_PER_TURN: usize = 4096;

/// What a feed without a replay has skipped.
static NONE_SKIPPED: Skipped = Skipped::NONE;

/// A stall longer than this is not caught up.
const MAX_LAG: Nanos = 1_000_000_000;

#[derive(Debug)]
enum Source {
    Synthetic {
        rng: Xoshiro256PlusPlus,
        mids: Vec<f64>,
        volatility: f64,
        half_spread: f64,
        interval: Nanos,
        cursor: usize,
        spare: Option<f64>,
    },
    Csv {
        stream: Box<Stream>,
        /// The row after the one handed out last.
        next: Option<CsvRow>,
        speed: f64,
        start: Nanos,
    },
    /// The venue delivers ticks; the feed has none of its own.
    Venue,
}

/// A source of ticks.
#[derive(Debug)]
pub struct Feed {
    source: Source,
    next_due: Option<Nanos>,
    emitted_this_turn: usize,
    skipped: u64,
    /// Why a replay stopped before its end (a bad row met on the way).
    error: Option<FeedError>,
}

impl Feed {
    /// Builds the feed; a CSV source is read through and checked here, before trading starts
    /// (a bad row is an error now, not in the middle of the day), then streamed.
    pub fn new(cfg: &FeedConfig, now: Nanos) -> Result<Feed, FeedError> {
        if let FeedSource::Csv { paths, tz, skip_bad_rows, .. } = &cfg.source {
            let names: Vec<&str> = cfg.symbols.iter().map(|s| s.name.as_str()).collect();
            let (_, skipped) = check(paths, &names, tz, *skip_bad_rows)?;
            if skipped.rows > 0 {
                log::warn!(
                    "the replay leaves out {} bad rows (feed.csv.skip_bad_rows), the first: {}",
                    skipped.rows,
                    skipped.first.join("; ")
                );
            }
        }
        Self::streaming(cfg, now, Window::default())
    }

    /// Builds the feed without reading a CSV source through first: its rows in `window` are
    /// read as they are replayed, and a bad row ends the replay there ([`Feed::error`]). A
    /// backtest reads its data this way, once.
    pub fn streaming(cfg: &FeedConfig, now: Nanos, window: Window) -> Result<Feed, FeedError> {
        let source = match &cfg.source {
            FeedSource::Synthetic { seed, tick_rate, volatility, spread_bps } => Source::Synthetic {
                rng: Xoshiro256PlusPlus::seed_from_u64(*seed),
                mids: cfg.symbols.iter().map(|s| s.price).collect(),
                volatility: *volatility,
                half_spread: spread_bps * 0.5e-4,
                interval: ((1e9 / tick_rate) as Nanos).max(1),
                cursor: 0,
                spare: None,
            },
            FeedSource::Csv { paths, speed, tz, skip_bad_rows, .. } => {
                let names: Vec<&str> = cfg.symbols.iter().map(|s| s.name.as_str()).collect();
                let mut stream = Box::new(Stream::open(paths, &names, tz, *skip_bad_rows, window)?);
                let next = stream.next_row()?;
                Source::Csv { stream, next, speed: *speed, start: now }
            }
            FeedSource::Venue => {
                return Ok(Feed {
                    source: Source::Venue,
                    next_due: None,
                    emitted_this_turn: 0,
                    skipped: 0,
                    error: None,
                })
            }
        };
        Ok(Feed { source, next_due: Some(now), emitted_this_turn: 0, skipped: 0, error: None })
    }

    /// When the next tick is due; `None` once a replay has ended.
    pub fn next_due(&self) -> Option<Nanos> {
        self.next_due
    }

    /// The wall time of a replay's first row (a replay on a manual clock starts its clock there);
    /// `None` for the other sources.
    pub fn start_unix_ns(&self) -> Option<i128> {
        match &self.source {
            Source::Csv { stream, .. } => Some(stream.start_unix_ns()),
            _ => None,
        }
    }

    /// How far a replay has read its files, 0 to 1; `None` for a feed without an end.
    pub fn read_fraction(&self) -> Option<f64> {
        match &self.source {
            Source::Csv { stream, next, .. } => Some(if next.is_some() { stream.read_fraction() } else { 1.0 }),
            _ => None,
        }
    }

    /// The replay's bad rows left out so far (`feed.csv.skip_bad_rows`).
    pub fn skipped_rows(&self) -> &Skipped {
        match &self.source {
            Source::Csv { stream, .. } => stream.skipped(),
            _ => &NONE_SKIPPED,
        }
    }

    /// Why the replay ended before its data did: the bad row it met (file and line).
    pub fn error(&self) -> Option<&FeedError> {
        self.error.as_ref()
    }

    /// Ticks skipped after stalls.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Call at the start of each loop turn: resets the per-turn budget.
    pub fn begin_turn(&mut self) {
        self.emitted_this_turn = 0;
    }

    /// The next tick if one is due by `now` and the turn's budget allows.
    pub fn poll(&mut self, now: Nanos) -> Option<Tick> {
        let due = self.next_due?;
        if due > now || self.emitted_this_turn >= MAX_TICKS_PER_TURN {
            return None;
        }
        self.emitted_this_turn += 1;
        match &mut self.source {
            Source::Synthetic { rng, mids, volatility, half_spread, interval, cursor, spare } => {
                let mut due = due;
                if now - due > MAX_LAG {
                    let missed = (now - due) / *interval;
                    self.skipped += missed;
                    due += missed * *interval;
                }
                let sym = *cursor;
                *cursor = (*cursor + 1) % mids.len();
                let z = match spare.take() {
                    Some(z) => z,
                    None => {
                        let (a, b) = gaussian_pair(rng);
                        *spare = Some(b);
                        a
                    }
                };
                mids[sym] *= (*volatility * z).exp();
                let mid = mids[sym];
                self.next_due = Some(due + *interval);
                Some(Tick {
                    symbol: sym as SymbolId,
                    bid: mid * (1.0 - *half_spread),
                    ask: mid * (1.0 + *half_spread),
                    recv_ns: now,
                })
            }
            Source::Csv { stream, next, speed, start } => {
                let row = next.take()?;
                *next = match stream.next_row() {
                    Ok(row) => row,
                    Err(e) => {
                        log::error!("the replay stopped before the end of its data: {e}");
                        self.error = Some(e);
                        None
                    }
                };
                self.next_due =
                    next.map(
                        |next| {
                            if *speed == 0.0 {
                                now
                            } else {
                                *start + (next.offset_ns as f64 / *speed) as Nanos
                            }
                        },
                    );
                Some(Tick { symbol: row.symbol, bid: row.bid, ask: row.ask, recv_ns: now })
            }
            Source::Venue => None,
        }
    }
}

/// Two independent standard normal samples (Box-Muller).
fn gaussian_pair(rng: &mut Xoshiro256PlusPlus) -> (f64, f64) {
    let u1 = ((rng.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64; // (0, 1]
    let u2 = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    let r = (-2.0 * u1.ln()).sqrt();
    let (s, c) = (std::f64::consts::TAU * u2).sin_cos();
    (r * c, r * s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn synthetic(rate: f64) -> Feed {
        let mut cfg = Config::embedded().feed;
        if let FeedSource::Synthetic { tick_rate, .. } = &mut cfg.source {
            *tick_rate = rate;
        }
        Feed::new(&cfg, 0).expect("feed")
    }

    #[test]
    fn synthetic_is_deterministic_and_paced() {
        let (mut a, mut b) = (synthetic(1000.0), synthetic(1000.0));
        let mut ticks = Vec::new();
        for t in 0..100u64 {
            let now = t * 1_000_000;
            a.begin_turn();
            b.begin_turn();
            while let Some(x) = a.poll(now) {
                assert_eq!(Some(x), b.poll(now));
                ticks.push(x);
            }
        }
        assert_eq!(ticks.len(), 100, "one tick per millisecond");
        assert!(ticks.iter().all(|t| t.bid < t.ask && t.bid > 0.5));
        assert_eq!(ticks[0].symbol, 0);
        assert_eq!(ticks[1].symbol, 1);
    }

    #[test]
    fn high_rates_are_budgeted_per_turn_and_stalls_skipped() {
        let mut f = synthetic(1_000_000.0);
        f.begin_turn();
        let n = std::iter::from_fn(|| f.poll(10_000_000)).count();
        assert_eq!(n, MAX_TICKS_PER_TURN);
        f.begin_turn();
        assert!(f.poll(5_000_000_000).is_some());
        assert!(f.skipped() > 3_000_000);
    }

    /// A CSV file in a test folder that lives as long as the returned handle.
    fn write(name: &str, text: &str) -> (crate::support::testdir::TestDir, std::path::PathBuf) {
        let dir = crate::support::testdir::TestDir::new(&format!("feed-{name}"));
        let p = dir.join("t.csv");
        std::fs::write(&p, text).expect("write");
        (dir, p)
    }

    #[test]
    fn csv_replay_follows_timestamps() {
        let (_dir, p) = write(
            "ok",
            "timestamp,symbol,bid,ask\n2026-01-01T00:00:00Z,EURUSD,1.0,1.1\n2026-01-01T00:00:01Z,GBPUSD,2.0,2.1\n",
        );
        let replay = load_csv(&p, &["EURUSD", "GBPUSD"]).expect("valid");
        assert_eq!(replay.start_unix_ns, 1_767_225_600_000_000_000);
        assert_eq!(replay.rows[1], CsvRow { offset_ns: 1_000_000_000, symbol: 1, bid: 2.0, ask: 2.1 });
        let mut cfg = Config::embedded().feed;
        cfg.source = FeedSource::Csv {
            paths: vec![p],
            speed: 2.0,
            timezone: "UTC".into(),
            tz: jiff::tz::TimeZone::UTC,
            skip_bad_rows: false,
        };
        let mut f = Feed::new(&cfg, 100).expect("feed");
        assert_eq!(f.start_unix_ns(), Some(1_767_225_600_000_000_000));
        assert!(f.poll(100).is_some());
        assert_eq!(f.next_due(), Some(100 + 500_000_000));
        assert!(f.poll(100 + 499_999_999).is_none());
        assert_eq!(f.poll(100 + 500_000_000).map(|t| t.symbol), Some(1));
        assert_eq!(f.next_due(), None, "replay over");
    }

    #[test]
    fn csv_errors_name_the_line() {
        let cases = [
            ("fields", "2026-01-01T00:00:00Z,EURUSD,1.0\n", ":1: expected 4 fields"),
            (
                "sym",
                "2026-01-01T00:00:00Z,EURUSD,1.0,1.1\n2026-01-01T00:00:00Z,XAUUSD,1.0,1.1\n",
                ":2: symbol \"XAUUSD\"",
            ),
            ("price", "2026-01-01T00:00:00Z,EURUSD,abc,1.1\n", ":1: bid \"abc\""),
            ("crossed", "2026-01-01T00:00:00Z,EURUSD,1.2,1.1\n", "above ask"),
            (
                "order",
                "2026-01-01T00:00:01Z,EURUSD,1.0,1.1\n2026-01-01T00:00:00Z,EURUSD,1.0,1.1\n",
                ":2: timestamp goes back",
            ),
            ("ts", "noon,EURUSD,1.0,1.1\n", ":1: \"noon\" is not a timestamp"),
            ("empty", "timestamp,symbol,bid,ask\n", "no rows"),
        ];
        for (name, text, want) in cases {
            let (_dir, p) = write(name, text);
            let e = load_csv(&p, &["EURUSD"]).expect_err(name);
            assert!(e.0.contains(want), "{name}: {e}");
        }
        assert!(load_csv(std::path::Path::new("/nonexistent/t.csv"), &["EURUSD"])
            .expect_err("missing")
            .0
            .contains("cannot read"));
    }
}
