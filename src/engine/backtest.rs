//! A backtest: the live engine ([`super::replay::Replay`]) on a replay file, with what a trader
//! reads afterwards: the money, the worst fall, the orders, the trading state, and the equity over
//! the data's time. Everything in the [`Summary`] comes from the data and the config, never from
//! the machine's clock, so the same input gives the same summary.

use serde::Serialize;

use crate::config::Config;
use crate::domain::clock::Clock;
use crate::domain::types::{SymbolId, TradeRecord};
use crate::support::names::QTY_EPSILON;
use crate::telemetry::metrics::Metrics;
use crate::venue::feed::FeedError;

use super::replay::Replay;

/// Equity points kept for the curve, at most (older ones are thinned to every other).
const MAX_CURVE_POINTS: usize = 2048;

/// Round trips listed in the summary, at most (the statistics count every one).
pub const MAX_LISTED_TRADES: usize = 10_000;

/// Fills listed in the summary, at most (the summary's `fills` counts every one).
pub const MAX_LISTED_DEALS: usize = 10_000;

/// One fill, as the daemon writes it to InfluxDB's `mt5bot_trades` (MT5 calls it a deal).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Deal {
    /// RFC 3339, UTC, microseconds.
    pub time: String,
    pub symbol: String,
    /// `buy` or `sell`.
    pub side: &'static str,
    /// The signal's id (the model's are `M<first row's Unix seconds>-<n>`, as the daemon's).
    pub client_id: String,
    /// The venue's execution id.
    pub exec_id: u64,
    pub qty: f64,
    pub price: f64,
    /// The position's realized PnL after this fill, in quote currency.
    pub realized_pnl: f64,
}

impl Deal {
    fn of(r: &TradeRecord, names: &[String]) -> Self {
        Deal {
            time: crate::support::timefmt::rfc3339_micros(r.unix_ns),
            symbol: names.get(r.symbol as usize).cloned().unwrap_or_default(),
            side: r.side.as_str(),
            client_id: r.client_id.as_str().to_owned(),
            exec_id: r.exec_id,
            qty: r.qty,
            price: r.price,
            realized_pnl: r.realized_pnl,
        }
    }
}

/// One round trip: a position from flat (or a flip) back to flat (or the next flip).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trade {
    pub symbol: String,
    /// `long` or `short`.
    pub side: &'static str,
    /// RFC 3339, UTC.
    pub opened: String,
    pub closed: String,
    /// The largest size the position reached.
    pub qty: f64,
    /// Average prices of the fills that built it and of those that closed it.
    pub entry_price: f64,
    pub exit_price: f64,
    /// What it realized, in account currency (commissions are in the summary's own figure).
    pub pnl: f64,
    pub holding_seconds: f64,
}

/// The round trips in figures.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct TradeStats {
    pub trades: u64,
    pub wins: u64,
    pub losses: u64,
    /// Wins over trades (0 without trades).
    pub win_rate: f64,
    pub gross_profit: f64,
    /// A positive amount.
    pub gross_loss: f64,
    /// Gross profit over gross loss; null when nothing was lost.
    pub profit_factor: Option<f64>,
    pub average_pnl: f64,
    pub average_win: f64,
    pub average_loss: f64,
    pub largest_win: f64,
    pub largest_loss: f64,
    pub max_losses_in_a_row: u32,
    pub average_holding_seconds: f64,
}

impl TradeStats {
    fn add(&mut self, t: &Trade, losses_in_a_row: &mut u32) {
        self.trades += 1;
        if t.pnl > 0.0 {
            self.wins += 1;
            self.gross_profit += t.pnl;
            self.largest_win = self.largest_win.max(t.pnl);
            *losses_in_a_row = 0;
        } else if t.pnl < 0.0 {
            self.losses += 1;
            self.gross_loss -= t.pnl;
            self.largest_loss = self.largest_loss.min(t.pnl);
            *losses_in_a_row += 1;
            self.max_losses_in_a_row = self.max_losses_in_a_row.max(*losses_in_a_row);
        }
        self.average_holding_seconds += t.holding_seconds;
    }

    /// Turns the sums into averages and ratios.
    fn finish(mut self) -> TradeStats {
        let n = self.trades as f64;
        if self.trades > 0 {
            self.win_rate = self.wins as f64 / n;
            self.average_pnl = (self.gross_profit - self.gross_loss) / n;
            self.average_holding_seconds /= n;
        }
        if self.wins > 0 {
            self.average_win = self.gross_profit / self.wins as f64;
        }
        if self.losses > 0 {
            self.average_loss = -self.gross_loss / self.losses as f64;
        }
        self.profit_factor = (self.gross_loss > 0.0).then(|| self.gross_profit / self.gross_loss);
        self
    }
}

/// A position being built and closed, per symbol.
#[derive(Debug, Clone, Copy, Default)]
struct OpenTrip {
    /// Signed quantity now, and whether it opened long.
    qty: f64,
    long: bool,
    opened_ns: i128,
    max_qty: f64,
    /// Sums of price x quantity and quantity of the fills that built it and that closed it.
    entry: (f64, f64),
    exit: (f64, f64),
    /// The symbol's realized money when it opened.
    money_at_open: f64,
}

/// Turns fills into round trips.
#[derive(Debug, Default)]
struct RoundTrips {
    open: Vec<OpenTrip>,
    listed: Vec<Trade>,
    stats: TradeStats,
    losses_in_a_row: u32,
}

impl RoundTrips {
    fn new(symbols: usize) -> RoundTrips {
        RoundTrips { open: vec![OpenTrip::default(); symbols], ..RoundTrips::default() }
    }

    /// A fill; `money` is the symbol's realized money after the step that booked it.
    fn on_fill(&mut self, r: &TradeRecord, money: f64, names: &[String]) {
        let Some(t) = self.open.get_mut(r.symbol as usize) else { return };
        let signed = r.side.sign() * r.qty;
        let mut rest = signed;
        if t.qty.abs() > QTY_EPSILON && t.qty * signed < 0.0 {
            // Closing, all or part; a flip closes and opens with what is left.
            let closing = signed.abs().min(t.qty.abs());
            t.exit.0 += r.price * closing;
            t.exit.1 += closing;
            t.qty += closing * signed.signum();
            rest = signed - closing * signed.signum();
            if t.qty.abs() <= QTY_EPSILON {
                let done = *t;
                *t = OpenTrip::default();
                self.close(r.symbol, done, r.unix_ns, money, names);
            }
        }
        if rest.abs() > QTY_EPSILON {
            let t = &mut self.open[r.symbol as usize];
            if t.qty.abs() <= QTY_EPSILON {
                *t = OpenTrip { long: rest > 0.0, opened_ns: r.unix_ns, money_at_open: money, ..OpenTrip::default() };
            }
            t.qty += rest;
            t.entry.0 += r.price * rest.abs();
            t.entry.1 += rest.abs();
            t.max_qty = t.max_qty.max(t.qty.abs());
        }
    }

    fn close(&mut self, symbol: SymbolId, t: OpenTrip, at: i128, money: f64, names: &[String]) {
        let iso = crate::support::timefmt::rfc3339_micros;
        let avg = |(value, qty): (f64, f64)| if qty > 0.0 { value / qty } else { 0.0 };
        let entry = avg(t.entry);
        let exit = avg(t.exit);
        let trade = Trade {
            symbol: names.get(symbol as usize).cloned().unwrap_or_default(),
            side: if t.long { "long" } else { "short" },
            opened: iso(t.opened_ns),
            closed: iso(at),
            qty: t.max_qty,
            entry_price: entry,
            exit_price: exit,
            pnl: money - t.money_at_open,
            holding_seconds: (at - t.opened_ns) as f64 / 1e9,
        };
        self.stats.add(&trade, &mut self.losses_in_a_row);
        if self.listed.len() < MAX_LISTED_TRADES {
            self.listed.push(trade);
        }
    }
}

/// One symbol at the end.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SymbolSummary {
    pub symbol: String,
    pub position: f64,
    pub realized_pnl: f64,
    pub fills: u64,
}

/// What a backtest found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// The data's first and last instants (RFC 3339, UTC).
    pub from: String,
    pub to: String,
    pub ticks: u64,
    /// Bad rows left out (`--skip-bad-rows`), and the first few as `file:line: why`.
    pub skipped_rows: u64,
    pub skipped_first: Vec<String>,
    pub signals: u64,
    pub orders_sent: u64,
    pub fills: u64,
    pub starting_balance: f64,
    pub final_equity: f64,
    pub net_pnl: f64,
    pub peak_equity: f64,
    /// The deepest fall from a running peak, in money and as a fraction of that peak.
    pub max_drawdown: f64,
    pub max_drawdown_ratio: f64,
    /// The longest time equity spent under a previous peak, in seconds of data.
    pub max_drawdown_seconds: f64,
    /// Annualised (x sqrt 252) Sharpe and Sortino ratios of the daily returns (UTC days, equity
    /// at each day's last tick; no risk-free rate); null with fewer than two days.
    pub sharpe: Option<f64>,
    pub sortino: Option<f64>,
    /// The share of the data's time with a position open in some symbol.
    pub exposure: f64,
    /// Each month's return (UTC, `YYYY-MM`, a fraction of the month's starting equity).
    pub monthly_returns: Vec<(String, f64)>,
    /// Equity breaker trips that changed the trading state.
    pub breaker_trips: u64,
    pub commissions: f64,
    /// Swaps booked at the nights' rollovers (positive a credit).
    pub swaps: f64,
    /// The trading state at the end, and who set it (a breaker's name when one tripped).
    pub trading_state: &'static str,
    pub trading_state_by: String,
    pub symbols: Vec<SymbolSummary>,
    /// The round trips closed, in figures, and listed (the first [`MAX_LISTED_TRADES`]).
    pub trade_stats: TradeStats,
    pub trades: Vec<Trade>,
    /// The first [`MAX_LISTED_DEALS`] fills, in the order they were booked.
    pub deals: Vec<Deal>,
    /// Equity over time: (Unix milliseconds, equity), one point a minute of data at most.
    pub equity_curve: Vec<(i64, f64)>,
}

/// The breakers a config turns on, by name.
fn names_of_breakers(cfg: &Config) -> Vec<&'static str> {
    cfg.protection.breakers.iter().map(|b| b.limit.name()).collect()
}

/// Figures over the data's time, kept as the run goes: nothing is stored per tick.
#[derive(Debug)]
struct Performance {
    last_ns: i128,
    last_equity: f64,
    /// The running peak and when it was set.
    peak: f64,
    peak_ns: i128,
    max_drawdown_ns: i128,
    /// Data time with a position open, and whether one was open at the last step.
    exposed_ns: i128,
    was_open: bool,
    start_ns: i128,
    /// The UTC day and month of the last step, the equity at the end of each day so far, and
    /// each month's starting equity.
    day: i64,
    daily: Vec<f64>,
    month: (i32, i8),
    month_start: f64,
    monthly: Vec<(String, f64)>,
}

const DAY_NS: i128 = 86_400_000_000_000;

impl Performance {
    fn new(start_ns: i128, equity: f64) -> Performance {
        Performance {
            last_ns: start_ns,
            last_equity: equity,
            peak: equity,
            peak_ns: start_ns,
            max_drawdown_ns: 0,
            exposed_ns: 0,
            was_open: false,
            start_ns,
            day: start_ns.div_euclid(DAY_NS) as i64,
            daily: vec![equity],
            month: month_of(start_ns),
            month_start: equity,
            monthly: Vec::new(),
        }
    }

    #[inline]
    fn on_step(&mut self, now: i128, equity: f64, open: bool) {
        if self.was_open {
            self.exposed_ns += now - self.last_ns;
        }
        self.was_open = open;
        // In i64: a division of i128 costs more than the rest of a step.
        let day = (now as i64).div_euclid(DAY_NS as i64);
        if day != self.day {
            // The day before ended with the equity of its last step.
            self.daily.push(self.last_equity);
            self.day = day;
            let month = month_of(now);
            if month != self.month {
                self.close_month();
                self.month = month;
                self.month_start = self.last_equity;
            }
        }
        if equity >= self.peak {
            self.peak = equity;
            self.peak_ns = now;
        } else {
            self.max_drawdown_ns = self.max_drawdown_ns.max(now - self.peak_ns);
        }
        self.last_ns = now;
        self.last_equity = equity;
    }

    fn close_month(&mut self) {
        let (y, m) = self.month;
        let r = if self.month_start > 0.0 { self.last_equity / self.month_start - 1.0 } else { 0.0 };
        self.monthly.push((format!("{y:04}-{m:02}"), r));
    }

    fn finish(mut self, end_ns: i128, equity: f64) -> PerformanceFigures {
        if self.was_open {
            self.exposed_ns += end_ns - self.last_ns;
        }
        self.last_equity = equity;
        self.daily.push(equity);
        self.close_month();
        let returns: Vec<f64> = self.daily.windows(2).filter(|w| w[0] > 0.0).map(|w| w[1] / w[0] - 1.0).collect();
        let (sharpe, sortino) = ratios(&returns);
        let span = (end_ns - self.start_ns).max(0);
        PerformanceFigures {
            max_drawdown_seconds: self.max_drawdown_ns as f64 / 1e9,
            sharpe,
            sortino,
            exposure: if span > 0 { self.exposed_ns as f64 / span as f64 } else { 0.0 },
            monthly: self.monthly,
        }
    }
}

struct PerformanceFigures {
    max_drawdown_seconds: f64,
    sharpe: Option<f64>,
    sortino: Option<f64>,
    exposure: f64,
    monthly: Vec<(String, f64)>,
}

/// Annualised Sharpe and Sortino of daily returns (sqrt 252); `None` without two returns or
/// without spread.
fn ratios(returns: &[f64]) -> (Option<f64>, Option<f64>) {
    if returns.len() < 2 {
        return (None, None);
    }
    let n = returns.len() as f64;
    let mean = returns.iter().sum::<f64>() / n;
    let sd = (returns.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    let down = (returns.iter().map(|r| r.min(0.0).powi(2)).sum::<f64>() / n).sqrt();
    let annual = 252f64.sqrt();
    let ratio = |d: f64| (d > 0.0 && d.is_finite()).then(|| mean / d * annual);
    (ratio(sd), ratio(down))
}

/// The UTC year and month of a Unix nanosecond time.
fn month_of(unix_ns: i128) -> (i32, i8) {
    match jiff::Timestamp::from_nanosecond(unix_ns) {
        Ok(ts) => {
            let d = ts.to_zoned(jiff::tz::TimeZone::UTC).date();
            (i32::from(d.year()), d.month())
        }
        Err(_) => (1970, 1),
    }
}

/// How far a run is: ticks replayed, the share of the data's bytes read, and the data's time
/// reached.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    pub ticks: u64,
    pub fraction: f64,
    pub unix_ns: i128,
}

/// Runs `cfg` (its feed a CSV replay) on the data from `from` to `to` (Unix ns; `None`: all);
/// `progress` hears how far it got every 65,536 steps.
pub fn run(
    cfg: &Config,
    (from, to): (Option<i128>, Option<i128>),
    mut progress: impl FnMut(Progress),
) -> Result<Summary, FeedError> {
    let metrics = Metrics::new();
    let mut replay = Replay::paper_between(cfg, &metrics, from, to)?;
    let start_unix = replay.core().clock().unix_nanos();
    let start_balance = cfg.protection.starting_balance;
    let (mut peak, mut max_dd, mut max_ratio) = (start_balance, 0.0f64, 0.0f64);
    let mut curve: Vec<(i64, f64)> = Vec::new();
    let mut stride: i64 = 60_000; // ms between curve points; doubles when the curve is full
    let mut steps: u64 = 0;
    let names: Vec<String> = cfg.feed.symbols.iter().map(|s| s.name.clone()).collect();
    let mut trips = RoundTrips::new(names.len());
    let mut deals: Vec<Deal> = Vec::new();
    // A step books a few fills at most; the channel is drained after each.
    let (fills_in, fills) = std::sync::mpsc::sync_channel::<TradeRecord>(4096);
    replay.core_mut().set_trade_sink(fills_in);
    let mut perf = Performance::new(start_unix, start_balance);
    while replay.step() {
        steps += 1;
        let now = replay.core().clock().unix_nanos();
        let open = replay.core().executor().positions().iter().any(|p| p.qty.abs() > QTY_EPSILON);
        perf.on_step(now, replay.core().equity(), open);
        while let Ok(fill) = fills.try_recv() {
            let money = replay.core().realized_money(fill.symbol);
            trips.on_fill(&fill, money, &names);
            if deals.len() < MAX_LISTED_DEALS {
                deals.push(Deal::of(&fill, &names));
            }
        }
        let equity = replay.core().equity();
        if equity > peak {
            peak = equity;
        } else if peak - equity > max_dd {
            max_dd = peak - equity;
            max_ratio = max_ratio.max(if peak > 0.0 { max_dd / peak } else { 0.0 });
        }
        let ms = (replay.core().clock().unix_nanos() as i64) / 1_000_000;
        if curve.last().is_none_or(|&(t, _)| ms >= t + stride) {
            curve.push((ms, equity));
            if curve.len() >= MAX_CURVE_POINTS {
                curve = curve.iter().copied().step_by(2).collect();
                stride *= 2;
            }
        }
        if steps % 65_536 == 0 {
            progress(Progress {
                ticks: replay.ticks(),
                fraction: replay.read_fraction(),
                unix_ns: replay.core().clock().unix_nanos(),
            });
        }
    }
    if let Some(e) = replay.feed_error() {
        return Err(e.clone());
    }
    let core = replay.core();
    let end_unix = core.clock().unix_nanos();
    let final_equity = core.equity();
    if curve.last().is_none_or(|&(t, _)| t < (end_unix / 1_000_000) as i64) {
        curve.push(((end_unix / 1_000_000) as i64, final_equity));
    }
    let status = core.status();
    let iso = crate::support::timefmt::rfc3339_micros;
    let perf = perf.finish(end_unix, final_equity);
    Ok(Summary {
        from: iso(start_unix),
        to: iso(end_unix),
        ticks: replay.ticks(),
        skipped_rows: replay.skipped_rows().rows,
        skipped_first: replay.skipped_rows().first.clone(),
        signals: metrics.signals_received.with_label_values(&["model"]).get()
            + metrics.signals_received.with_label_values(&["protection"]).get(),
        orders_sent: metrics.orders_sent.get(),
        fills: metrics.trade_count.get(),
        starting_balance: start_balance,
        final_equity,
        net_pnl: final_equity - start_balance,
        peak_equity: peak,
        max_drawdown: max_dd,
        max_drawdown_ratio: max_ratio,
        max_drawdown_seconds: perf.max_drawdown_seconds,
        sharpe: perf.sharpe,
        sortino: perf.sortino,
        exposure: perf.exposure,
        monthly_returns: perf.monthly,
        breaker_trips: names_of_breakers(cfg).iter().map(|b| metrics.breaker_trips.with_label_values(&[b]).get()).sum(),
        commissions: metrics.commissions_paid.get(),
        swaps: metrics.swaps_booked.get(),
        trading_state: status.trading.state,
        trading_state_by: status.trading.by,
        symbols: status
            .positions
            .into_iter()
            .map(|p| SymbolSummary { symbol: p.symbol, position: p.qty, realized_pnl: p.realized_pnl, fills: p.fills })
            .collect(),
        trade_stats: trips.stats.finish(),
        trades: trips.listed,
        deals,
        equity_curve: curve,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::types::{Side, SignalId};

    fn fill(symbol: SymbolId, side: Side, qty: f64, price: f64, secs: i128) -> TradeRecord {
        TradeRecord {
            unix_ns: secs * 1_000_000_000,
            symbol,
            side,
            client_id: SignalId::default(),
            exec_id: 0,
            qty,
            price,
            realized_pnl: 0.0,
        }
    }

    #[test]
    fn fills_become_round_trips_with_partial_closes_and_flips() {
        let names = vec!["EURUSD".to_owned(), "GBPUSD".to_owned()];
        let mut t = RoundTrips::new(2);
        // Long 1 at 1.0, add 1 at 1.2 (entry 1.1), close half at 1.3 and half at 1.5: +0.6.
        t.on_fill(&fill(0, Side::Buy, 1.0, 1.0, 0), 0.0, &names);
        t.on_fill(&fill(0, Side::Buy, 1.0, 1.2, 10), 0.0, &names);
        t.on_fill(&fill(0, Side::Sell, 1.0, 1.3, 20), 0.2, &names);
        assert!(t.listed.is_empty(), "a partial close is not a round trip");
        t.on_fill(&fill(0, Side::Sell, 1.0, 1.5, 30), 0.6, &names);
        // GBPUSD: short 2 at 2.0, flipped by a buy of 3 at 2.5 (-1.0), the long 1 closed at 2.4 (-0.1).
        t.on_fill(&fill(1, Side::Sell, 2.0, 2.0, 40), 0.0, &names);
        t.on_fill(&fill(1, Side::Buy, 3.0, 2.5, 50), -1.0, &names);
        t.on_fill(&fill(1, Side::Sell, 1.0, 2.4, 70), -1.1, &names);
        let got: Vec<(&str, &str, f64, f64, f64, f64, f64)> = t
            .listed
            .iter()
            .map(|x| (x.symbol.as_str(), x.side, x.qty, x.entry_price, x.exit_price, x.pnl, x.holding_seconds))
            .collect();
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        assert_eq!(got.len(), 3, "{got:?}");
        let (s, side, q, entry, exit, pnl, held) = got[0];
        assert!(
            (s, side, q) == ("EURUSD", "long", 2.0)
                && close(entry, 1.1)
                && close(exit, 1.4)
                && close(pnl, 0.6)
                && held == 30.0,
            "{got:?}"
        );
        let (_, side, q, entry, exit, pnl, _) = got[1];
        assert!(side == "short" && q == 2.0 && close(entry, 2.0) && close(exit, 2.5) && close(pnl, -1.0), "{got:?}");
        let (_, side, q, entry, exit, pnl, held) = got[2];
        assert!(
            side == "long" && q == 1.0 && close(entry, 2.5) && close(exit, 2.4) && close(pnl, -0.1) && held == 20.0,
            "{got:?}"
        );
        let s = std::mem::take(&mut t.stats).finish();
        assert_eq!((s.trades, s.wins, s.losses, s.max_losses_in_a_row), (3, 1, 2, 2));
        assert!(close(s.win_rate, 1.0 / 3.0) && close(s.gross_profit, 0.6) && close(s.gross_loss, 1.1));
        assert!(close(s.profit_factor.expect("losses"), 0.6 / 1.1) && close(s.largest_loss, -1.0));
        assert!(
            close(s.average_pnl, -0.5 / 3.0) && close(s.average_loss, -0.55) && close(s.average_holding_seconds, 20.0)
        );
        assert_eq!(TradeStats::default().finish().profit_factor, None, "nothing lost, no factor");
    }

    #[test]
    fn drawdown_duration_exposure_daily_ratios_and_months_come_from_the_steps() {
        let h = 3_600_000_000_000i128;
        // 2026-01-30 00:00 UTC.
        let t0 = 1_769_731_200_000_000_000i128;
        let mut p = Performance::new(t0, 100.0);
        p.on_step(t0 + h, 110.0, true); // a peak at 01:00, a position open from here
        p.on_step(t0 + 5 * h, 105.0, false); // under it, flat from here
        p.on_step(t0 + 24 * h, 108.0, false); // the next day (Jan 31), still under
        p.on_step(t0 + 48 * h, 120.0, true); // Feb 1: a new peak
        let f = p.finish(t0 + 49 * h, 121.0);
        assert_eq!(f.max_drawdown_seconds, 23.0 * 3600.0, "from 01:00 to the next day's 00:00");
        assert!((f.exposure - 5.0 / 49.0).abs() < 1e-12, "{}", f.exposure);
        // Days end at 105 (Jan 30), 108 (Jan 31), then 121 at the end: January 100 -> 108, February 108 -> 121.
        let months: Vec<(&str, f64)> = f.monthly.iter().map(|(m, r)| (m.as_str(), *r)).collect();
        assert_eq!(months.len(), 2, "{months:?}");
        assert!(months[0].0 == "2026-01" && (months[0].1 - 0.08).abs() < 1e-12, "{months:?}");
        assert!(months[1].0 == "2026-02" && (months[1].1 - (121.0 / 108.0 - 1.0)).abs() < 1e-12, "{months:?}");
        assert!(f.sharpe.is_some_and(|s| s > 0.0) && f.sortino.is_none(), "no losing day: no downside deviation");
        let (sharpe, sortino) = ratios(&[0.01, -0.01, 0.02]);
        let (mean, sd) = (
            0.02 / 3.0,
            ((0.01f64 - 0.02 / 3.0).powi(2) + (-0.01f64 - 0.02 / 3.0).powi(2) + (0.02f64 - 0.02 / 3.0).powi(2)) / 2.0,
        );
        assert!((sharpe.expect("sharpe") - mean / sd.sqrt() * 252f64.sqrt()).abs() < 1e-9);
        assert!((sortino.expect("sortino") - mean / (0.0001f64 / 3.0).sqrt() * 252f64.sqrt()).abs() < 1e-9);
        assert_eq!(ratios(&[0.01]), (None, None));
    }
}
