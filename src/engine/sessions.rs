//! Market hours: when each symbol's market is open, from its calendar (`sessions:`).
//!
//! A calendar's windows are read on the local clock of its zone (jiff and the tz database do the
//! zone's rules; nothing here knows about daylight saving): a market that opens at 17:00 New York
//! opens when New York's clocks say 17:00, whatever UTC says. A time the clocks skip (spring)
//! opens or closes the window when they jump past it; a time they repeat (autumn) counts each
//! time it comes.
//!
//! [`MarketHours`] keeps each symbol's [`Phase`] and the instant it next has to look again, so
//! the engine pays one comparison per turn; the calendar is read only at those instants.

use std::time::Duration;

use jiff::civil::{Date, DateTime};
use jiff::tz::AmbiguousOffset;
use jiff::Timestamp;

use crate::config::{CalendarConfig, SessionsConfig};
use crate::domain::types::{AtClose, SymbolId};

/// How far ahead a change of state is looked for; a calendar closed longer than this reads as
/// closed with no known reopening.
pub const HORIZON_DAYS: i64 = 400;

/// How far back the last open is looked for (for `open_after`).
pub const LOOKBACK_DAYS: i64 = 8;

/// Where a symbol's market stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Open: signals are taken.
    Open,
    /// Within `close_before` of the close: `at_close` applies.
    Closing,
    /// Closed: new signals are refused with `market_closed`.
    Closed,
    /// Open, but within `open_after` of the open: refused as closed.
    Opening,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Open => "open",
            Phase::Closing => "closing",
            Phase::Closed => "closed",
            Phase::Opening => "opening",
        }
    }

    /// What `market_open` shows: the market takes orders (open or closing).
    pub fn is_open(self) -> bool {
        matches!(self, Phase::Open | Phase::Closing)
    }
}

fn ts(unix_ns: i128) -> Timestamp {
    Timestamp::from_nanosecond(unix_ns).unwrap_or(if unix_ns < 0 { Timestamp::MIN } else { Timestamp::MAX })
}

fn nanos(d: Duration) -> i128 {
    d.as_nanos() as i128
}

impl CalendarConfig {
    /// Whether the market is open at `unix_ns` (without `open_after` and `close_before`).
    pub fn is_open_at(&self, unix_ns: i128) -> bool {
        let local = ts(unix_ns).to_zoned(self.tz.clone()).datetime();
        self.is_open_local(local)
    }

    fn is_open_local(&self, local: DateTime) -> bool {
        let date = local.date();
        if self.closed.binary_search(&date).is_ok() {
            return false;
        }
        let minute = local.hour() as u16 * 60 + local.minute() as u16;
        if let Some(&(_, close)) = self.early_close.iter().find(|(d, _)| *d == date) {
            if minute >= close {
                return false;
            }
        }
        let day = date.weekday().to_monday_zero_offset() as usize;
        self.week[day].iter().any(|&(a, b)| a <= minute && minute < b)
    }

    /// The instants, in order, at which the state may change on local day `date`: each window's
    /// edges, the early close, midnight, and the zone's own transitions that day.
    fn edges(&self, date: Date, out: &mut Vec<i128>) {
        let day = date.weekday().to_monday_zero_offset() as usize;
        let mut minutes: Vec<u16> = vec![0];
        for &(a, b) in &self.week[day] {
            minutes.extend([a, b]);
        }
        minutes.extend(self.early_close.iter().filter(|(d, _)| *d == date).map(|&(_, m)| m));
        for m in minutes {
            let (d, m) = if m >= 1440 { (date.tomorrow().unwrap_or(date), m - 1440) } else { (date, m) };
            let civil = d.at((m / 60) as i8, (m % 60) as i8, 0, 0);
            let amb = self.tz.to_ambiguous_timestamp(civil);
            match amb.offset() {
                AmbiguousOffset::Unambiguous { .. } => out.extend(amb.compatible().ok().map(|t| t.as_nanosecond())),
                // Both readings of a repeated time, and both ends of a skipped one; the transition
                // itself is added below.
                AmbiguousOffset::Gap { .. } | AmbiguousOffset::Fold { .. } => {
                    out.extend(amb.earlier().ok().map(|t| t.as_nanosecond()));
                    out.extend(amb.later().ok().map(|t| t.as_nanosecond()));
                }
            }
        }
        let start = self.tz.to_ambiguous_timestamp(date.at(0, 0, 0, 0)).earlier().ok();
        let end = date.tomorrow().ok().and_then(|d| self.tz.to_ambiguous_timestamp(d.at(0, 0, 0, 0)).later().ok());
        if let (Some(start), Some(end)) = (start, end) {
            for t in self.tz.following(start - jiff::SignedDuration::from_nanos(1)) {
                if t.timestamp() > end {
                    break;
                }
                out.push(t.timestamp().as_nanosecond());
            }
        }
    }

    /// The first instant after `unix_ns` at which the open/closed state differs from its state at
    /// `unix_ns`; `None` if it does not change within [`HORIZON_DAYS`].
    pub fn next_change(&self, unix_ns: i128) -> Option<i128> {
        let now = self.is_open_at(unix_ns);
        let mut date = ts(unix_ns).to_zoned(self.tz.clone()).date().yesterday().ok()?;
        let mut edges = Vec::with_capacity(16);
        for _ in 0..HORIZON_DAYS {
            edges.clear();
            self.edges(date, &mut edges);
            edges.sort_unstable();
            if let Some(&t) = edges.iter().find(|&&t| t > unix_ns && self.is_open_at(t) != now) {
                return Some(t);
            }
            date = date.tomorrow().ok()?;
        }
        None
    }

    /// The last instant at or before `unix_ns` at which the state became what it is at `unix_ns`;
    /// `None` if it did not change within [`LOOKBACK_DAYS`].
    pub fn last_change(&self, unix_ns: i128) -> Option<i128> {
        let now = self.is_open_at(unix_ns);
        let mut date = ts(unix_ns).to_zoned(self.tz.clone()).date().tomorrow().ok()?;
        let mut edges = Vec::with_capacity(16);
        for _ in 0..LOOKBACK_DAYS + 2 {
            edges.clear();
            self.edges(date, &mut edges);
            edges.sort_unstable();
            let found = edges.iter().rev().find(|&&t| t <= unix_ns && self.is_open_at(t - 1) != now);
            if let Some(&t) = found {
                return Some(t);
            }
            date = date.yesterday().ok()?;
        }
        None
    }

    /// The phase at `unix_ns`, when it ends (the next instant to look again) and when
    /// `market_open` next changes.
    pub fn phase(&self, unix_ns: i128) -> (Phase, Option<i128>, Option<i128>) {
        let next = self.next_change(unix_ns);
        if !self.is_open_at(unix_ns) {
            let opens = next.map(|t| t + nanos(self.open_after));
            return (Phase::Closed, next, opens);
        }
        if !self.open_after.is_zero() {
            if let Some(opened) = self.last_change(unix_ns) {
                let until = opened + nanos(self.open_after);
                if unix_ns < until {
                    let until = next.map_or(until, |n| n.min(until));
                    return (Phase::Opening, Some(until), Some(until));
                }
            }
        }
        match next {
            Some(close) if unix_ns >= close - nanos(self.close_before) => (Phase::Closing, Some(close), Some(close)),
            Some(close) => (Phase::Open, Some(close - nanos(self.close_before)), Some(close)),
            None => (Phase::Open, None, None),
        }
    }
}

/// One symbol's market.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SymbolMarket {
    /// Index into the calendars; `None` trades always.
    pub calendar: Option<usize>,
    pub phase: Phase,
    /// When to read the calendar again.
    pub recheck_ns: Option<i128>,
    /// When `market_open` next changes.
    pub next_change_ns: Option<i128>,
}

/// A phase change, for the engine to act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhaseChange {
    pub symbol: SymbolId,
    pub from: Phase,
    pub to: Phase,
    pub at_close: AtClose,
}

/// Every symbol's market, updated from wall time.
#[derive(Debug)]
pub struct MarketHours {
    calendars: Vec<CalendarConfig>,
    symbols: Vec<SymbolMarket>,
    /// The earliest `recheck_ns`; `None` when nothing will change (every symbol on `always`).
    next_ns: Option<i128>,
    started: bool,
}

impl MarketHours {
    pub fn new(cfg: &SessionsConfig) -> MarketHours {
        let symbols = cfg
            .symbols
            .iter()
            .map(|&calendar| SymbolMarket { calendar, phase: Phase::Open, recheck_ns: None, next_change_ns: None })
            .collect();
        MarketHours { calendars: cfg.calendars.clone(), symbols, next_ns: None, started: false }
    }

    /// True when some symbol has hours (not every one trades always).
    pub fn is_on(&self) -> bool {
        self.symbols.iter().any(|s| s.calendar.is_some())
    }

    /// The phase of `symbol` (open for a symbol it does not know).
    #[inline]
    pub fn phase(&self, symbol: SymbolId) -> Phase {
        self.symbols.get(symbol as usize).map_or(Phase::Open, |s| s.phase)
    }

    /// What happens at the close of `symbol`'s market.
    pub fn at_close(&self, symbol: SymbolId) -> AtClose {
        self.calendar_of(symbol).map_or(AtClose::Nothing, |c| c.at_close)
    }

    pub fn calendar_of(&self, symbol: SymbolId) -> Option<&CalendarConfig> {
        self.symbols.get(symbol as usize).and_then(|s| s.calendar).and_then(|i| self.calendars.get(i))
    }

    pub fn symbols(&self) -> &[SymbolMarket] {
        &self.symbols
    }

    /// Moves every symbol to its phase at `unix_ns`; calls `changed` for each that changed. Costs
    /// one comparison until something is due.
    #[inline]
    pub fn update(&mut self, unix_ns: i128, changed: impl FnMut(PhaseChange)) {
        if self.started && self.next_ns.is_none_or(|t| unix_ns < t) {
            return;
        }
        self.recompute(unix_ns, changed);
    }

    #[cold]
    fn recompute(&mut self, unix_ns: i128, mut changed: impl FnMut(PhaseChange)) {
        let first = !self.started;
        self.started = true;
        let mut next: Option<i128> = None;
        for (i, s) in self.symbols.iter_mut().enumerate() {
            let Some(cal) = s.calendar.and_then(|c| self.calendars.get(c)) else { continue };
            if first || s.recheck_ns.is_some_and(|t| unix_ns >= t) {
                let (phase, recheck, next_change) = cal.phase(unix_ns);
                if phase != s.phase || first {
                    changed(PhaseChange { symbol: i as SymbolId, from: s.phase, to: phase, at_close: cal.at_close });
                }
                (s.phase, s.recheck_ns, s.next_change_ns) = (phase, recheck, next_change);
            }
            next = match (next, s.recheck_ns) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        self.next_ns = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn at(s: &str) -> i128 {
        crate::support::timefmt::parse_timestamp(s).expect("timestamp")
    }

    fn iso(ns: Option<i128>) -> String {
        ns.map(crate::support::timefmt::rfc3339_micros).unwrap_or_default()
    }

    fn calendar(yaml: &str) -> CalendarConfig {
        let text = format!(
            "feed:\n  symbols:\n    - name: EURUSD\n      price: 1.1\nsessions:\n  default: c\n  calendars:\n    c:\n{yaml}"
        );
        let cfg = Config::parse(&text, "s.yaml").unwrap_or_else(|e| panic!("{e}"));
        cfg.sessions.calendars[0].clone()
    }

    #[test]
    fn fx_opens_sunday_17_and_closes_friday_17_new_york_time_whatever_utc_says() {
        let fx = CalendarConfig::fx();
        // Winter (EST, UTC-5): Sunday 2026-01-11 17:00 New York is 22:00 UTC.
        assert!(!fx.is_open_at(at("2026-01-11T21:59:59Z")));
        assert!(fx.is_open_at(at("2026-01-11T22:00:00Z")));
        assert_eq!(iso(fx.next_change(at("2026-01-10T12:00:00Z"))), "2026-01-11T22:00:00.000000Z");
        assert_eq!(iso(fx.next_change(at("2026-01-12T12:00:00Z"))), "2026-01-16T22:00:00.000000Z");
        // Summer (EDT, UTC-4): an hour earlier in UTC.
        assert_eq!(iso(fx.next_change(at("2026-07-11T12:00:00Z"))), "2026-07-12T21:00:00.000000Z");
        assert_eq!(iso(fx.next_change(at("2026-07-13T12:00:00Z"))), "2026-07-17T21:00:00.000000Z");
        assert_eq!(iso(fx.last_change(at("2026-07-13T12:00:00Z"))), "2026-07-12T21:00:00.000000Z");
        // Midweek is open through midnight.
        assert!(fx.is_open_at(at("2026-01-14T05:00:00Z")));
    }

    #[test]
    fn the_week_the_clocks_change_each_way() {
        let fx = CalendarConfig::fx();
        // US clocks go forward on Sunday 2026-03-08 at 02:00: that Sunday opens at 17:00 EDT.
        assert_eq!(iso(fx.next_change(at("2026-03-07T12:00:00Z"))), "2026-03-08T21:00:00.000000Z");
        // ... and the Friday before closed at 17:00 EST.
        assert_eq!(iso(fx.next_change(at("2026-03-02T12:00:00Z"))), "2026-03-06T22:00:00.000000Z");
        // Back on Sunday 2026-11-01 at 02:00: that Sunday opens at 17:00 EST.
        assert_eq!(iso(fx.next_change(at("2026-10-31T12:00:00Z"))), "2026-11-01T22:00:00.000000Z");
        assert_eq!(iso(fx.next_change(at("2026-10-26T12:00:00Z"))), "2026-10-30T21:00:00.000000Z");
    }

    #[test]
    fn a_window_in_the_skipped_hour_opens_when_the_clocks_jump_past_it() {
        let c = calendar("      tz: America/New_York\n      sun: ['02:30-04:00']\n");
        // 2026-03-08: 01:59:59 EST is followed by 03:00 EDT (07:00 UTC).
        assert!(!c.is_open_at(at("2026-03-08T06:59:59Z")));
        assert!(c.is_open_at(at("2026-03-08T07:00:00Z")));
        assert_eq!(iso(c.next_change(at("2026-03-08T06:00:00Z"))), "2026-03-08T07:00:00.000000Z");
        assert_eq!(iso(c.next_change(at("2026-03-08T07:00:00Z"))), "2026-03-08T08:00:00.000000Z");
        // 2026-11-01: 01:00-02:00 happens twice; a window 01:30-03:00 opens at the first 01:30 EDT.
        let c = calendar("      tz: America/New_York\n      sun: ['01:30-03:00']\n");
        assert_eq!(iso(c.next_change(at("2026-11-01T04:00:00Z"))), "2026-11-01T05:30:00.000000Z");
        // The clocks go back to 01:00 EST at 06:00 UTC: before 01:30 again, so closed until 06:30.
        assert_eq!(iso(c.next_change(at("2026-11-01T05:31:00Z"))), "2026-11-01T06:00:00.000000Z");
        assert_eq!(iso(c.next_change(at("2026-11-01T06:00:00Z"))), "2026-11-01T06:30:00.000000Z");
        assert_eq!(iso(c.next_change(at("2026-11-01T06:30:00Z"))), "2026-11-01T08:00:00.000000Z");
    }

    #[test]
    fn a_window_past_midnight_daily_breaks_holidays_and_early_closes() {
        let c = calendar(
            "      tz: Asia/Tokyo\n      mon: ['08:45-15:45', '17:00-06:00']\n      tue: ['08:45-15:45']\n      closed: ['2026-01-12']\n      early_close: {'2026-01-20': '12:00'}\n",
        );
        // Monday 2026-01-19 17:00 JST (08:00 UTC) to Tuesday 06:00 JST (21:00 UTC Monday).
        assert!(c.is_open_at(at("2026-01-19T08:00:00Z")));
        assert!(c.is_open_at(at("2026-01-19T20:59:59Z")), "past midnight");
        assert!(!c.is_open_at(at("2026-01-19T21:00:00Z")));
        // The break 15:45-17:00 JST.
        assert!(!c.is_open_at(at("2026-01-19T07:00:00Z")));
        assert_eq!(iso(c.next_change(at("2026-01-19T07:00:00Z"))), "2026-01-19T08:00:00.000000Z");
        // A holiday Monday is closed all its local day; the part of a night session after midnight
        // belongs to Tuesday (a window past midnight is split at it), so Tuesday 01:00 is open.
        assert!(!c.is_open_at(at("2026-01-12T00:00:00Z")));
        assert!(!c.is_open_at(at("2026-01-12T09:00:00Z")), "Monday 18:00 JST, a holiday");
        assert!(c.is_open_at(at("2026-01-12T16:00:00Z")), "Tuesday 01:00 JST");
        // Early close on Tuesday 2026-01-20 at 12:00 JST (03:00 UTC).
        assert!(c.is_open_at(at("2026-01-20T02:59:00Z")));
        assert_eq!(iso(c.next_change(at("2026-01-20T01:00:00Z"))), "2026-01-20T03:00:00.000000Z");
    }

    #[test]
    fn close_before_and_open_after_shape_the_phase() {
        let c = calendar(
            "      tz: UTC\n      mon: ['09:00-17:00']\n      close_before: 10m\n      open_after: 1m\n      at_close: flatten\n",
        );
        let phase = |s: &str| {
            let (p, recheck, next) = c.phase(at(s));
            (p, iso(recheck), iso(next))
        };
        let (p, recheck, next) = phase("2026-01-19T08:00:00Z");
        assert_eq!(
            (p, recheck.as_str(), next.as_str()),
            (Phase::Closed, "2026-01-19T09:00:00.000000Z", "2026-01-19T09:01:00.000000Z")
        );
        assert_eq!(phase("2026-01-19T09:00:30Z").0, Phase::Opening);
        assert_eq!(phase("2026-01-19T09:01:00Z").0, Phase::Open);
        let (p, recheck, next) = phase("2026-01-19T12:00:00Z");
        assert_eq!(
            (p, recheck.as_str(), next.as_str()),
            (Phase::Open, "2026-01-19T16:50:00.000000Z", "2026-01-19T17:00:00.000000Z")
        );
        assert_eq!(phase("2026-01-19T16:50:00Z").0, Phase::Closing);
        assert_eq!(phase("2026-01-19T17:00:00Z").0, Phase::Closed);
    }

    #[test]
    fn market_hours_pay_one_comparison_until_something_is_due_and_report_each_change() {
        let text = "feed:\n  symbols:\n    - name: EURUSD\n      price: 1.1\n    - name: BTCUSD\n      price: 90000\nsessions:\n  symbols: {EURUSD: fx}\n";
        let cfg = Config::parse(text, "s.yaml").expect("config");
        let mut m = MarketHours::new(&cfg.sessions);
        let mut seen = Vec::new();
        m.update(at("2026-01-10T12:00:00Z"), |c| seen.push((c.symbol, c.to)));
        assert_eq!(seen, [(0, Phase::Closed)], "Saturday: fx closed; BTCUSD trades always");
        assert_eq!(m.phase(1), Phase::Open);
        m.update(at("2026-01-11T21:59:59Z"), |c| seen.push((c.symbol, c.to)));
        assert_eq!(seen.len(), 1, "nothing due before the open");
        m.update(at("2026-01-11T22:00:00Z"), |c| seen.push((c.symbol, c.to)));
        assert_eq!(seen, [(0, Phase::Closed), (0, Phase::Open)]);
        assert_eq!(iso(m.symbols()[0].next_change_ns), "2026-01-16T22:00:00.000000Z");
    }
}
