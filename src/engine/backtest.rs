//! A backtest: the live engine ([`super::replay::Replay`]) on a replay file, with what a trader
//! reads afterwards: the money, the worst fall, the orders, the trading state, and the equity over
//! the data's time. Everything in the [`Summary`] comes from the data and the config, never from
//! the machine's clock, so the same input gives the same summary.

use serde::Serialize;

use crate::config::Config;
use crate::domain::clock::Clock;
use crate::telemetry::metrics::Metrics;
use crate::venue::feed::FeedError;

use super::replay::Replay;

/// Equity points kept for the curve, at most (older ones are thinned to every other).
const MAX_CURVE_POINTS: usize = 2048;

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
    pub commissions: f64,
    /// The trading state at the end, and who set it (a breaker's name when one tripped).
    pub trading_state: &'static str,
    pub trading_state_by: String,
    pub symbols: Vec<SymbolSummary>,
    /// Equity over time: (Unix milliseconds, equity), one point a minute of data at most.
    pub equity_curve: Vec<(i64, f64)>,
}

/// How far a run is: ticks replayed of the rows in all, and the data's time reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub ticks: u64,
    pub rows: u64,
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
    let mut replay = Replay::paper_between(cfg, &metrics, "BT", from, to)?;
    let start_unix = replay.core().clock().unix_nanos();
    let start_balance = cfg.protection.starting_balance;
    let (mut peak, mut max_dd, mut max_ratio) = (start_balance, 0.0f64, 0.0f64);
    let mut curve: Vec<(i64, f64)> = Vec::new();
    let mut stride: i64 = 60_000; // ms between curve points; doubles when the curve is full
    let mut steps: u64 = 0;
    while replay.step() {
        steps += 1;
        let equity = replay.core().equity();
        if equity > peak {
            peak = equity;
        } else if peak - equity > max_dd {
            max_dd = peak - equity;
            max_ratio = max_ratio.max(if peak > 0.0 { max_dd / peak } else { 0.0 });
        }
        let ms = (replay.core().clock().unix_nanos() / 1_000_000) as i64;
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
                rows: replay.rows(),
                unix_ns: replay.core().clock().unix_nanos(),
            });
        }
    }
    let core = replay.core();
    let end_unix = core.clock().unix_nanos();
    let final_equity = core.equity();
    if curve.last().is_none_or(|&(t, _)| t < (end_unix / 1_000_000) as i64) {
        curve.push(((end_unix / 1_000_000) as i64, final_equity));
    }
    let status = core.status();
    let iso = crate::support::timefmt::rfc3339_micros;
    Ok(Summary {
        from: iso(start_unix),
        to: iso(end_unix),
        ticks: replay.ticks(),
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
        commissions: metrics.commissions_paid.get(),
        trading_state: status.trading.state,
        trading_state_by: status.trading.by,
        symbols: status
            .positions
            .into_iter()
            .map(|p| SymbolSummary { symbol: p.symbol, position: p.qty, realized_pnl: p.realized_pnl, fills: p.fills })
            .collect(),
        equity_curve: curve,
    })
}
