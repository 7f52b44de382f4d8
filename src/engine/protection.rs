//! Equity circuit breakers (`protection:`): the account's equity, marked to the quotes as they
//! arrive, against each breaker's limit.
//!
//! Equity is the starting balance, plus realized PnL, plus every open position marked to the
//! current quote (bid for a long, ask for a short). It is kept incrementally: a quote changes one
//! symbol's open PnL, a fill its realized PnL, so a tick costs a few additions and comparisons,
//! never a walk over the book, and nothing is allocated. The wall clock moves the trading day
//! (`day_start` in `timezone`); a day's loss is measured from the equity at its start.
//!
//! Sans-IO: quotes, fills and wall time in; [`Trip`]s out. The core decides what a trip does to the
//! trading state (a trip never makes it less strict), and keeps the figures in checkpoints.

use jiff::tz::TimeZone;
use jiff::Timestamp;

use super::executor::Position;
use crate::config::{BreakerConfig, BreakerLimit, ProtectionConfig, RateSource};
use crate::domain::types::{BreakerAction, SymbolId};
use crate::support::names::QTY_EPSILON;
use crate::telemetry::metrics::ProtectionMetrics;

/// A breaker at or past its limit: which one, and the figures, for the core to act on and log.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trip {
    /// Index into the configured breakers.
    pub breaker: usize,
    pub name: &'static str,
    pub action: BreakerAction,
    /// What it measured and its limit, in the breaker's unit (money, fraction or count).
    pub value: f64,
    pub limit: f64,
}

impl Trip {
    /// The log and status text of the trip.
    pub fn reason(&self) -> String {
        match self.name {
            "max_drawdown" => {
                format!("drawdown {:.2}% of peak equity, limit {:.2}%", self.value * 100.0, self.limit * 100.0)
            }
            "max_consecutive_losses" => format!("{} losing round trips in a row, limit {}", self.value, self.limit),
            "max_position_loss" => format!("open loss {:.2} on one position, limit {:.2}", self.value, self.limit),
            _ => format!("loss {:.2} since the start of the trading day, limit {:.2}", self.value, self.limit),
        }
    }
}

/// The figures a checkpoint keeps so a restart measures from the same baselines.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct Baselines {
    pub peak_equity: f64,
    pub day_start_equity: f64,
    /// When the current trading day ends (Unix ns); 0 when not known yet.
    pub day_end_unix_ns: i64,
    pub losses_in_a_row: u32,
    /// The balance before realized PnL, once the venue has reported the account's balance (MT5):
    /// equity is measured from the venue's figure rather than `protection.starting_balance`.
    #[serde(default)]
    pub venue_starting_balance: Option<f64>,
    /// With `max_drawdown.window`: the highest equity in the window, and the step of the window
    /// it was reached in (Unix ns / the step's length), so a restart keeps the rolling peak.
    #[serde(default)]
    pub window_peak: Option<(f64, i64)>,
}

/// Steps a rolling drawdown window is kept in: an old peak leaves the window up to one step
/// (window / 60) late.
const WINDOW_STEPS: usize = 60;

/// The highest equity over a rolling window, in [`WINDOW_STEPS`] steps: a tick raises the current
/// step's maximum (one comparison); the maximum over the closed steps is taken again only when a
/// step ends. Fixed-size: nothing is allocated after start.
#[derive(Debug, Clone)]
struct RollingPeak {
    step_ns: i128,
    /// Per slot: the step number it holds (`i64::MIN`: none yet) and the highest equity in it.
    slots: [(i64, f64); WINDOW_STEPS],
    /// The step now (`i64::MIN` before the first wall time).
    current: i64,
    current_max: f64,
    /// The highest equity of the closed steps still in the window.
    closed_max: f64,
}

impl RollingPeak {
    fn new(window: std::time::Duration, equity: f64) -> RollingPeak {
        RollingPeak {
            step_ns: (window.as_nanos() as i128 / WINDOW_STEPS as i128).max(1),
            slots: [(i64::MIN, f64::NEG_INFINITY); WINDOW_STEPS],
            current: i64::MIN,
            current_max: equity,
            closed_max: f64::NEG_INFINITY,
        }
    }

    #[inline]
    fn peak(&self) -> f64 {
        self.closed_max.max(self.current_max)
    }

    #[inline]
    fn on_equity(&mut self, equity: f64) {
        if equity > self.current_max {
            self.current_max = equity;
        }
    }

    /// Moves the window to `unix_ns`; true when a step ended (the peak may have fallen).
    fn on_time(&mut self, unix_ns: i128, equity: f64) -> bool {
        let step = (unix_ns.div_euclid(self.step_ns)).clamp(i128::from(i64::MIN + 1), i128::from(i64::MAX)) as i64;
        if step == self.current {
            return false;
        }
        if self.current != i64::MIN {
            self.store(self.current, self.current_max);
            self.current_max = equity;
        } else {
            self.current_max = self.current_max.max(equity);
        }
        self.current = step;
        let oldest = step.saturating_sub(WINDOW_STEPS as i64 - 1);
        self.closed_max = self
            .slots
            .iter()
            .filter(|(s, _)| *s >= oldest && *s < step)
            .map(|(_, m)| *m)
            .fold(f64::NEG_INFINITY, f64::max);
        true
    }

    fn store(&mut self, step: i64, max: f64) {
        let slot = step.rem_euclid(WINDOW_STEPS as i64) as usize;
        if self.slots[slot].0 != step || self.slots[slot].1 < max {
            self.slots[slot] = (step, max);
        }
    }

    /// Forgets every step: the window starts again from `equity`.
    fn reset(&mut self, equity: f64) {
        self.slots = [(i64::MIN, f64::NEG_INFINITY); WINDOW_STEPS];
        self.current_max = equity;
        self.closed_max = f64::NEG_INFINITY;
    }

    /// The highest step kept and its step number, for a checkpoint.
    fn best(&self) -> (f64, i64) {
        let mut best = (self.current_max, self.current);
        for &(s, m) in &self.slots {
            if s != i64::MIN && m > best.0 {
                best = (m, s);
            }
        }
        best
    }
}

#[derive(Debug)]
pub struct Protection {
    breakers: Vec<BreakerConfig>,
    tz: TimeZone,
    day_start_minutes: u32,
    starting_balance: f64,
    /// `protection.account_currency`.
    currency: Option<String>,
    /// Realized PnL in account currency (price difference x quantity x contract size x rate).
    realized: f64,
    /// Per symbol: how its PnL becomes account currency, and the rate now (1 for
    /// [`RateSource::Unit`]; 0 until the converting symbol's first quote).
    rates: Vec<RateSource>,
    rate: Vec<f64>,
    /// Per symbol: the symbols whose rate its quote gives (empty for most).
    converts: Vec<Vec<usize>>,
    /// Per symbol: its book's realized PnL (price units x quantity), the part of it already
    /// converted, and what that came to in account currency. A fill while the rate is not known
    /// yet waits, and is converted at the first rate.
    native: Vec<f64>,
    converted: Vec<f64>,
    money: Vec<f64>,
    /// Per symbol: the position marked (quantity, average price).
    held: Vec<(f64, f64)>,
    /// Commissions booked (money, positive a cost).
    commissions: f64,
    /// Swaps booked (money, positive a credit).
    swaps: f64,
    /// Per symbol: the contract size a quantity of 1 stands for (`feed.symbols[].contract_size`).
    sizes: Vec<f64>,
    /// Open PnL per symbol, and their sum.
    open: Vec<f64>,
    open_total: f64,
    /// The last quote per symbol (bid, ask), to mark a position after a fill.
    quotes: Vec<(f64, f64)>,
    /// Realized PnL of each symbol's round trip under way, in price units x quantity (only its
    /// sign is used: a rate does not change it).
    round_trip: Vec<f64>,
    base: Baselines,
    /// With `max_drawdown.window`: the peak over it.
    rolling: Option<RollingPeak>,
    /// The trading day that just ended, until taken: when it ended, equity at its start and end.
    closed_day: Option<(i64, f64, f64)>,
    metrics: ProtectionMetrics,
}

impl Protection {
    /// `sizes`: per symbol, the contract size of a quantity of 1 (PnL in money is the price
    /// difference times quantity times it).
    pub fn new(cfg: &ProtectionConfig, sizes: &[f64], metrics: ProtectionMetrics) -> Protection {
        let symbols = sizes.len();
        let rates: Vec<RateSource> = (0..symbols).map(|i| cfg.rates.get(i).copied().unwrap_or_default()).collect();
        let mut converts = vec![Vec::new(); symbols];
        for (i, r) in rates.iter().enumerate() {
            if let RateSource::Via { symbol, .. } = *r {
                if let Some(c) = converts.get_mut(symbol) {
                    c.push(i);
                }
            }
        }
        let p = Protection {
            breakers: cfg.breakers.clone(),
            tz: cfg.tz.clone(),
            day_start_minutes: cfg.day_start_minutes,
            starting_balance: cfg.starting_balance,
            realized: 0.0,
            currency: cfg.account_currency.clone(),
            rate: rates.iter().map(|r| if *r == RateSource::Unit { 1.0 } else { 0.0 }).collect(),
            rates,
            converts,
            native: vec![0.0; symbols],
            converted: vec![0.0; symbols],
            money: vec![0.0; symbols],
            held: vec![(0.0, 0.0); symbols],
            commissions: 0.0,
            swaps: 0.0,
            sizes: sizes.to_vec(),
            open: vec![0.0; symbols],
            open_total: 0.0,
            quotes: vec![(0.0, 0.0); symbols],
            round_trip: vec![0.0; symbols],
            base: Baselines {
                peak_equity: cfg.starting_balance,
                day_start_equity: cfg.starting_balance,
                day_end_unix_ns: 0,
                losses_in_a_row: 0,
                venue_starting_balance: None,
                window_peak: None,
            },
            rolling: cfg.breakers.iter().find_map(|b| match b.limit {
                BreakerLimit::Drawdown { window: Some(w), .. } => Some(RollingPeak::new(w, cfg.starting_balance)),
                _ => None,
            }),
            closed_day: None,
            metrics,
        };
        p.publish();
        p
    }

    /// Whether any breaker is on.
    pub fn is_on(&self) -> bool {
        !self.breakers.is_empty()
    }

    pub fn equity(&self) -> f64 {
        self.balance() + self.open_total
    }

    /// What a price difference of 1 on a quantity of 1 is worth in account currency: the contract
    /// size times the conversion rate (1 while the rate's first quote has not come).
    pub fn money_per_price_unit(&self, symbol: SymbolId) -> f64 {
        let s = symbol as usize;
        let rate = self.rate.get(s).copied().filter(|r| *r > 0.0).unwrap_or(1.0);
        self.sizes.get(s).copied().unwrap_or(1.0) * rate
    }

    /// A symbol's open PnL in account currency at its last quote, and the price it is marked at
    /// (the bid for a long, the ask for a short; none while flat or before a quote).
    pub fn open_money(&self, symbol: SymbolId) -> (f64, Option<f64>) {
        let s = symbol as usize;
        let (Some(&(bid, ask)), Some(&(q, _))) = (self.quotes.get(s), self.held.get(s)) else { return (0.0, None) };
        let mark = if q > QTY_EPSILON && bid > 0.0 {
            Some(bid)
        } else if q < -QTY_EPSILON && ask > 0.0 {
            Some(ask)
        } else {
            None
        };
        (self.open.get(s).copied().unwrap_or(0.0), mark)
    }

    /// The account currency every amount is in, when configured.
    pub fn currency(&self) -> Option<&str> {
        self.currency.as_deref()
    }

    pub fn balance(&self) -> f64 {
        self.starting_balance + self.realized - self.commissions + self.swaps
    }

    /// Swaps booked (money, positive a credit).
    pub fn swaps(&self) -> f64 {
        self.swaps
    }

    /// A night's swap just booked (positive a credit): it moves the balance.
    pub fn on_swap(&mut self, amount: f64) -> Option<Trip> {
        if !amount.is_finite() {
            return None;
        }
        self.swaps += amount;
        self.metrics.swaps.set(self.swaps);
        self.metrics.balance.set(self.balance());
        self.check()
    }

    /// Commissions booked (money, positive a cost).
    pub fn commissions(&self) -> f64 {
        self.commissions
    }

    /// A commission for a fill just booked: it lowers the balance.
    pub fn on_commission(&mut self, amount: f64) -> Option<Trip> {
        if !amount.is_finite() {
            return None;
        }
        self.commissions += amount;
        self.metrics.commissions.set(self.commissions);
        self.metrics.balance.set(self.balance());
        self.check()
    }

    pub fn baselines(&self) -> Baselines {
        Baselines { window_peak: self.rolling.as_ref().map(RollingPeak::best), ..self.base }
    }

    /// The peak drawdown is measured from: over the window when one is set, else over the life
    /// of the account.
    #[inline]
    pub fn peak(&self) -> f64 {
        self.rolling.as_ref().map_or(self.base.peak_equity, RollingPeak::peak)
    }

    /// A symbol's realized PnL in account currency, and the part of its book's realized PnL that
    /// came to (what a checkpoint keeps, so a restart need not know old rates).
    pub fn realized_money(&self, symbol: SymbolId) -> (f64, f64) {
        let s = symbol as usize;
        (self.money.get(s).copied().unwrap_or(0.0), self.converted.get(s).copied().unwrap_or(0.0))
    }

    /// After a restore: the books, what of their realized PnL the checkpoint had converted to
    /// account currency (`(money, converted)` per symbol; `None` from a checkpoint that did not
    /// keep it: converted now at the first rate), and the baselines the checkpoint kept.
    pub fn restore(
        &mut self,
        positions: &[Position],
        converted: &[Option<(f64, f64)>],
        base: Option<Baselines>,
        commissions: f64,
        swaps: f64,
    ) {
        self.swaps = if swaps.is_finite() { swaps } else { 0.0 };
        self.metrics.swaps.set(self.swaps);
        for (s, p) in positions.iter().enumerate().take(self.native.len()) {
            self.native[s] = p.realized_pnl;
            self.held[s] = (p.qty, p.avg_price);
            let (money, done) = converted
                .get(s)
                .copied()
                .flatten()
                .filter(|(m, c)| m.is_finite() && c.is_finite())
                .unwrap_or((0.0, 0.0));
            self.money[s] = money;
            self.converted[s] = done;
            self.convert(s);
        }
        self.realized = self.money.iter().sum();
        self.commissions = if commissions.is_finite() { commissions } else { 0.0 };
        self.metrics.commissions.set(self.commissions);
        let equity = self.equity();
        if let Some(r) = &mut self.rolling {
            r.reset(equity);
        }
        match base {
            Some(b) => {
                self.base = b;
                if let Some(s) = b.venue_starting_balance.filter(|s| s.is_finite()) {
                    self.starting_balance = s;
                }
                if let (Some(r), Some((peak, step))) = (&mut self.rolling, b.window_peak) {
                    if peak.is_finite() && step != i64::MIN {
                        r.store(step, peak);
                    }
                }
            }
            None => {
                self.base.peak_equity = self.equity();
                self.base.day_start_equity = self.equity();
            }
        }
        self.publish();
    }

    /// The venue reported the account's balance: from now on the balance is the venue's (it holds
    /// commissions and swaps mt5bot does not see) plus what mt5bot realizes until the next report.
    /// The first report rebases the peak and the day's start, so a configured starting balance
    /// that differs from the account's is not taken for a loss.
    pub fn on_venue_balance(&mut self, balance: f64) -> Option<Trip> {
        if !(balance.is_finite() && balance > 0.0) {
            return None;
        }
        let first = self.base.venue_starting_balance.is_none();
        self.starting_balance = balance - self.realized + self.commissions;
        self.base.venue_starting_balance = Some(self.starting_balance);
        if first {
            log::info!(
                "the venue reports an account balance of {balance}: equity is measured from it, not from \
                 protection.starting_balance"
            );
            self.base.peak_equity = self.equity();
            self.base.day_start_equity = self.equity();
            let equity = self.equity();
            if let Some(r) = &mut self.rolling {
                r.reset(equity);
            }
        }
        self.base.peak_equity = self.base.peak_equity.max(self.equity());
        let equity = self.equity();
        if let Some(r) = &mut self.rolling {
            r.on_equity(equity);
        }
        self.publish();
        self.check()
    }

    /// A quote: marks the symbol's position. Returns the first breaker at or past its limit.
    #[inline]
    pub fn on_quote(&mut self, symbol: SymbolId, bid: f64, ask: f64, position: &Position) -> Option<Trip> {
        let s = symbol as usize;
        if s >= self.open.len() {
            return None;
        }
        self.quotes[s] = (bid, ask);
        self.held[s] = (position.qty, position.avg_price);
        if self.converts[s].is_empty() {
            self.mark(s);
        } else {
            self.on_rate(s, bid, ask);
        }
        self.check()
    }

    /// A quote of a symbol that converts others' PnL: their rate moves, and they are marked again.
    #[cold]
    fn on_rate(&mut self, s: usize, bid: f64, ask: f64) {
        let mid = (bid + ask) / 2.0;
        for k in 0..self.converts[s].len() {
            let d = self.converts[s][k];
            if let RateSource::Via { invert, .. } = self.rates[d] {
                let rate = if invert { 1.0 / mid } else { mid };
                if rate.is_finite() && rate > 0.0 {
                    self.rate[d] = rate;
                    self.convert(d);
                }
            }
        }
        self.mark(s);
        for k in 0..self.converts[s].len() {
            let d = self.converts[s][k];
            if d != s {
                self.mark(d);
            }
        }
        self.metrics.balance.set(self.balance());
    }

    /// Converts what a symbol realized since the last conversion, at the rate now (nothing while
    /// the rate is not known).
    #[inline]
    fn convert(&mut self, s: usize) {
        let rate = self.rate[s];
        let delta = self.native[s] - self.converted[s];
        if rate > 0.0 && delta != 0.0 {
            let money = delta * self.sizes[s] * rate;
            self.money[s] += money;
            self.realized += money;
            self.converted[s] = self.native[s];
        }
    }

    /// A fill: `position` is the book after it (its realized PnL includes the fill's), `before`
    /// the position's quantity before it.
    pub fn on_fill(&mut self, symbol: SymbolId, before: f64, position: &Position) -> Option<Trip> {
        let s = symbol as usize;
        if s >= self.open.len() {
            return None;
        }
        let realized = position.realized_pnl - self.native[s];
        self.native[s] = position.realized_pnl;
        self.held[s] = (position.qty, position.avg_price);
        self.convert(s);
        self.metrics.balance.set(self.balance());
        self.round_trip[s] += realized;
        let closed = before.abs() > QTY_EPSILON && (position.qty.abs() < QTY_EPSILON || before * position.qty < 0.0);
        if closed {
            if self.round_trip[s] < 0.0 {
                self.base.losses_in_a_row = self.base.losses_in_a_row.saturating_add(1);
            } else {
                self.base.losses_in_a_row = 0;
            }
            self.round_trip[s] = 0.0;
        }
        self.mark(s);
        self.check()
    }

    /// The wall clock: starts a new trading day when the current one is over.
    pub fn on_wall_time(&mut self, unix_ns: i128) -> Option<Trip> {
        let equity = self.equity();
        let moved = self.rolling.as_mut().is_some_and(|r| r.on_time(unix_ns, equity));
        if i128::from(self.base.day_end_unix_ns) > unix_ns {
            return if moved { self.check() } else { None };
        }
        let first = self.base.day_end_unix_ns == 0;
        let ended = self.base.day_end_unix_ns;
        self.base.day_end_unix_ns = self.day_end_after(unix_ns);
        if !first {
            self.closed_day = Some((ended, self.base.day_start_equity, self.equity()));
            self.base.day_start_equity = self.equity();
        }
        self.publish();
        self.check()
    }

    /// The fall of equity from the peak, as a fraction of the peak.
    pub fn drawdown(&self) -> f64 {
        let (peak, equity) = (self.peak(), self.equity());
        if peak > 0.0 {
            ((peak - equity) / peak).max(0.0)
        } else {
            0.0
        }
    }

    /// The trading day that ended at the last day change (when it ended, equity at its start and
    /// at its end), once.
    pub fn take_closed_day(&mut self) -> Option<(i64, f64, f64)> {
        self.closed_day.take()
    }

    /// The end of the trading day that contains `unix_ns`: the next `day_start` in the zone.
    fn day_end_after(&self, unix_ns: i128) -> i64 {
        let fallback = (unix_ns + 86_400_000_000_000) as i64;
        let Ok(ts) = Timestamp::from_nanosecond(unix_ns) else { return fallback };
        let local = ts.to_zoned(self.tz.clone());
        let (h, m) = ((self.day_start_minutes / 60) as i8, (self.day_start_minutes % 60) as i8);
        let Ok(today) = local.date().at(h, m, 0, 0).to_zoned(self.tz.clone()) else { return fallback };
        let next = if today.timestamp() > ts {
            today
        } else {
            match local.date().tomorrow().and_then(|d| d.at(h, m, 0, 0).to_zoned(self.tz.clone())) {
                Ok(z) => z,
                Err(_) => return fallback,
            }
        };
        next.timestamp().as_nanosecond() as i64
    }

    #[inline]
    fn mark(&mut self, s: usize) {
        let (bid, ask) = self.quotes[s];
        let (q, avg) = self.held[s];
        let value = self.sizes[s] * self.rate[s];
        let pnl = if q > QTY_EPSILON && bid > 0.0 {
            (bid - avg) * q * value
        } else if q < -QTY_EPSILON && ask > 0.0 {
            (ask - avg) * q * value
        } else {
            0.0
        };
        self.open_total += pnl - self.open[s];
        self.open[s] = pnl;
        let equity = self.equity();
        if equity > self.base.peak_equity {
            self.base.peak_equity = equity;
        }
        if let Some(r) = &mut self.rolling {
            r.on_equity(equity);
        }
    }

    /// Sets the gauges and returns the first breaker at or past its limit.
    #[inline]
    fn check(&self) -> Option<Trip> {
        let equity = self.equity();
        let m = &self.metrics;
        m.equity.set(equity);
        let peak = self.peak();
        m.peak_equity.set(peak);
        let drawdown = if peak > 0.0 { (peak - equity) / peak } else { 0.0 };
        m.drawdown_ratio.set(drawdown.max(0.0));
        m.daily_pnl.set(equity - self.base.day_start_equity);
        let mut trip = None;
        for (i, b) in self.breakers.iter().enumerate() {
            let (value, limit) = self.measure(b, equity, drawdown);
            let headroom = headroom(value, limit);
            if let Some(g) = m.headroom.get(i) {
                g.set(headroom);
            }
            if trip.is_none() && value >= limit {
                trip = Some(Trip { breaker: i, name: b.limit.name(), action: b.action, value, limit });
            }
        }
        trip
    }

    /// What a breaker measures now, and its limit.
    #[inline]
    fn measure(&self, b: &BreakerConfig, equity: f64, drawdown: f64) -> (f64, f64) {
        match b.limit {
            BreakerLimit::DailyLoss { amount, fraction } => {
                let by_fraction = fraction.map(|f| f * self.base.day_start_equity);
                let limit = match (amount, by_fraction) {
                    (Some(a), Some(f)) => a.min(f),
                    (a, f) => a.or(f).unwrap_or(f64::INFINITY),
                };
                (self.base.day_start_equity - equity, limit)
            }
            BreakerLimit::Drawdown { fraction, .. } => (drawdown, fraction),
            BreakerLimit::ConsecutiveLosses { count } => (f64::from(self.base.losses_in_a_row), f64::from(count)),
            BreakerLimit::PositionLoss { amount } => (-self.open.iter().copied().fold(0.0, f64::min), amount),
        }
    }

    /// Each breaker that is on: its name, action, what it measures, its limit and its headroom.
    pub fn report(&self) -> Vec<(&'static str, BreakerAction, f64, f64, f64)> {
        let equity = self.equity();
        let peak = self.peak();
        let drawdown = if peak > 0.0 { ((peak - equity) / peak).max(0.0) } else { 0.0 };
        self.breakers
            .iter()
            .map(|b| {
                let (value, limit) = self.measure(b, equity, drawdown);
                (b.limit.name(), b.action, value, limit, headroom(value, limit))
            })
            .collect()
    }

    fn publish(&self) {
        self.metrics.balance.set(self.balance());
        let _ = self.check();
    }

    /// The name of a configured breaker.
    pub fn breaker_name(&self, breaker: usize) -> &'static str {
        self.breakers.get(breaker).map_or("?", |b| b.limit.name())
    }

    /// The trip counter of a configured breaker.
    pub fn trips(&self, breaker: usize) -> Option<&prometheus::IntCounter> {
        self.metrics.trips.get(breaker)
    }

    /// How long after a trip of this breaker the state returns to active by itself.
    pub fn resume_after(&self, breaker: usize) -> Option<std::time::Duration> {
        self.breakers.get(breaker).and_then(|b| b.resume_after)
    }
}

/// 1 far from the limit, 0 at or past it.
#[inline]
fn headroom(value: f64, limit: f64) -> f64 {
    if limit > 0.0 {
        (1.0 - value / limit).clamp(0.0, 1.0)
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::telemetry::metrics::Metrics;

    fn protection(yaml: &str) -> (Protection, Metrics) {
        let cfg = Config::parse(yaml, "t.yaml").expect("config");
        let m = Metrics::new();
        let names: Vec<&str> = cfg.protection.breakers.iter().map(|b| b.limit.name()).collect();
        let em = m.engine("paper", &["EURUSD".into(), "GBPUSD".into()]);
        (Protection::new(&cfg.protection, &[1.0, 1.0], em.protection(&names)), m)
    }

    /// A flat book that has realized `realized` in all.
    fn booked(realized: f64) -> Position {
        Position { realized_pnl: realized, ..Position::default() }
    }

    fn long(qty: f64, avg: f64) -> Position {
        Position { qty, avg_price: avg, realized_pnl: 0.0, fills: 1 }
    }

    fn ns(rfc3339: &str) -> i128 {
        crate::support::timefmt::parse_timestamp(rfc3339).expect("time")
    }

    #[test]
    fn open_pnl_alone_trips_the_drawdown_marked_at_the_bid() {
        let (mut p, m) = protection("protection:\n  starting_balance: 1000\n  max_drawdown:\n    fraction: 0.1\n");
        let pos = long(100.0, 10.0);
        assert_eq!(p.on_quote(0, 10.5, 10.6, &pos), None, "up 50: a new peak");
        assert_eq!(m.peak_equity.get(), 1050.0);
        // The ask would say 10.0 (no loss); the bid says 9.45: down 105 from the peak of 1050.
        let t = p.on_quote(0, 9.45, 10.0, &pos).expect("trips on open PnL");
        assert_eq!((t.name, t.action), ("max_drawdown", BreakerAction::Halted));
        assert!((t.value - 0.1).abs() < 1e-9 && t.limit == 0.1, "{t:?}");
        assert!(m.breaker_headroom.with_label_values(&["max_drawdown"]).get() < 1e-9);
        assert!(t.reason().contains("10.00%"), "{}", t.reason());
        // A short is marked at the ask.
        let (mut p, _) = protection("protection:\n  starting_balance: 1000\n  max_drawdown:\n    fraction: 0.1\n");
        let short = Position { qty: -100.0, avg_price: 10.0, realized_pnl: 0.0, fills: 1 };
        assert_eq!(p.on_quote(0, 9.0, 10.9, &short), None, "down 90 at the ask");
        assert!(p.on_quote(0, 9.0, 11.0, &short).is_some(), "down 100 at the ask: 10% of 1000");
    }

    #[test]
    fn a_rolling_window_forgets_an_old_peak_and_a_restart_keeps_the_window_peak() {
        let yaml = "protection:\n  starting_balance: 1000\n  max_drawdown:\n    fraction: 0.1\n    window: 1h\n";
        let (mut p, m) = protection(yaml);
        let pos = long(100.0, 10.0);
        p.on_wall_time(ns("2026-03-02T10:00:00Z"));
        assert_eq!(p.on_quote(0, 12.0, 12.1, &pos), None, "up 200: a peak of 1200");
        assert_eq!(m.peak_equity.get(), 1200.0);
        assert_eq!(p.on_quote(0, 11.0, 11.1, &pos), None, "1100: 8.3% under the peak");
        // Steps after it start from the equity of their start, 1100.
        p.on_wall_time(ns("2026-03-02T10:30:00Z"));
        // Within the hour, 1070 is 10.8% under 1200: a trip.
        p.on_wall_time(ns("2026-03-02T10:50:00Z"));
        let snap = p.baselines();
        assert_eq!(snap.window_peak.map(|w| w.0), Some(1200.0));
        assert!(p.on_quote(0, 10.7, 10.8, &pos).is_some(), "in the window");
        // An hour and a step later the peak of 10:00 is out: the peak is what came since.
        assert_eq!(p.on_quote(0, 11.0, 11.1, &pos), None);
        p.on_wall_time(ns("2026-03-02T11:02:00Z"));
        assert_eq!(m.peak_equity.get(), 1100.0, "the 10:00 peak left the window");
        assert_eq!(p.on_quote(0, 10.7, 10.8, &pos), None, "1070 is 2.7% under 1100");
        // Over the life of the account the same fall would trip.
        let (mut life, _) = protection("protection:\n  starting_balance: 1000\n  max_drawdown:\n    fraction: 0.1\n");
        life.on_quote(0, 12.0, 12.1, &pos);
        life.on_wall_time(ns("2026-03-02T11:02:00Z"));
        assert!(life.on_quote(0, 10.7, 10.8, &pos).is_some());
        // A restart from the 10:50 baselines keeps 1200 as the window's peak until it ages out.
        let (mut again, m2) = protection(yaml);
        again.restore(&[pos], &[], Some(snap), 0.0, 0.0);
        again.on_wall_time(ns("2026-03-02T10:55:00Z"));
        assert!(again.on_quote(0, 10.7, 10.8, &pos).is_some(), "the restored peak is in the window");
        again.on_wall_time(ns("2026-03-02T11:05:00Z"));
        assert!(m2.peak_equity.get() < 1200.0, "and leaves it: {}", m2.peak_equity.get());
    }

    #[test]
    fn contract_size_makes_pnl_money_and_commissions_lower_the_balance() {
        let cfg =
            Config::parse("protection:\n  starting_balance: 1000\n  max_daily_loss:\n    amount: 100\n", "t.yaml")
                .expect("config");
        let m = Metrics::new();
        let em = m.engine("paper", &["EURUSD".into(), "GBPUSD".into()]);
        // EURUSD lots of 100,000.
        let mut p = Protection::new(&cfg.protection, &[100_000.0, 1.0], em.protection(&["max_daily_loss"]));
        p.on_wall_time(ns("2026-03-02T10:00:00Z"));
        let lot = long(0.1, 1.1);
        assert!(p.on_quote(0, 1.0960, 1.0962, &lot).is_none(), "40 pips on 0.1 lot: 40");
        assert!((m.equity.get() - 960.0).abs() < 1e-6, "{}", m.equity.get());
        assert!(p.on_commission(30.0).is_none());
        assert_eq!((m.balance.get(), m.commissions_paid.get()), (970.0, 30.0));
        let t = p.on_commission(30.0).expect("40 open and 60 commissions: 100 lost today");
        assert_eq!(t.name, "max_daily_loss");
        // A restart keeps the commissions paid.
        let mut again = Protection::new(&cfg.protection, &[100_000.0, 1.0], em.protection(&["max_daily_loss"]));
        again.restore(&[Position::default(), Position::default()], &[], Some(p.baselines()), p.commissions(), 0.0);
        assert_eq!(again.balance(), 940.0);
    }

    #[test]
    fn realized_pnl_alone_trips_the_daily_loss_and_a_new_day_starts_from_its_equity() {
        let (mut p, m) = protection(
            "protection:\n  starting_balance: 1000\n  max_daily_loss:\n    amount: 50\n    action: reducing\n",
        );
        assert_eq!(p.on_wall_time(ns("2026-03-02T10:00:00Z")), None);
        assert_eq!(p.on_fill(0, 1.0, &booked(-30.0)), None);
        assert_eq!(m.daily_pnl.get(), -30.0);
        assert!((m.breaker_headroom.with_label_values(&["max_daily_loss"]).get() - 0.4).abs() < 1e-9);
        let t = p.on_fill(0, 1.0, &booked(-50.0)).expect("50 lost today");
        assert_eq!((t.name, t.action, t.value), ("max_daily_loss", BreakerAction::Reducing, 50.0));
        assert_eq!(m.balance.get(), 950.0);
        // The same day later: still at the limit.
        assert!(p.on_wall_time(ns("2026-03-02T23:59:59Z")).is_none(), "no new day yet");
        // The next UTC day starts from 950.
        assert_eq!(p.on_wall_time(ns("2026-03-03T00:00:01Z")), None);
        assert_eq!(p.baselines().day_start_equity, 950.0);
        assert_eq!(m.daily_pnl.get(), 0.0);
    }

    #[test]
    fn realized_and_open_pnl_together_trip_what_neither_does_alone() {
        let (mut p, _) = protection("protection:\n  starting_balance: 1000\n  max_daily_loss:\n    amount: 50\n");
        p.on_wall_time(ns("2026-03-02T10:00:00Z"));
        // 30 realized on EURUSD, then 25 open on GBPUSD (long 10 from 10.0, bid 7.5).
        assert!(p.on_fill(0, 1.0, &booked(-30.0)).is_none());
        let gbp = long(10.0, 10.0);
        assert!(p.on_quote(1, 8.1, 8.2, &gbp).is_none(), "30 realized + 19 open: 49");
        let t = p.on_quote(1, 8.0, 8.1, &gbp).expect("30 realized + 20 open: 50");
        assert_eq!((t.name, t.value), ("max_daily_loss", 50.0));
        // Each alone stays under: 20 open without the realized loss.
        let (mut q, _) = protection("protection:\n  starting_balance: 1000\n  max_daily_loss:\n    amount: 50\n");
        q.on_wall_time(ns("2026-03-02T10:00:00Z"));
        assert!(q.on_quote(1, 8.0, 8.1, &gbp).is_none());
    }

    #[test]
    fn a_fraction_and_an_amount_trip_at_whichever_comes_first() {
        let yaml = "protection:\n  starting_balance: 1000\n  max_daily_loss:\n    amount: 80\n    fraction: 0.05\n";
        let (mut p, _) = protection(yaml);
        p.on_wall_time(ns("2026-03-02T10:00:00Z"));
        assert!(p.on_fill(0, 1.0, &booked(-49.0)).is_none());
        assert_eq!(p.on_fill(0, 1.0, &booked(-50.0)).map(|t| t.limit), Some(50.0));
    }

    #[test]
    fn losing_round_trips_in_a_row_trip_and_a_winner_resets_the_count() {
        let (mut p, _) = protection("protection:\n  max_consecutive_losses:\n    count: 3\n");
        let open = |qty: f64, realized: f64| Position { qty, avg_price: 10.0, realized_pnl: realized, fills: 1 };
        // A partial close is not a round trip; the close that follows is, with both parts' PnL.
        assert!(p.on_fill(0, 2.0, &open(1.0, 1.0)).is_none());
        assert!(p.on_fill(0, 1.0, &booked(-2.0)).is_none());
        assert_eq!(p.baselines().losses_in_a_row, 1, "the trip lost 2 in all");
        assert!(p.on_fill(0, 1.0, &booked(3.0)).is_none());
        assert_eq!(p.baselines().losses_in_a_row, 0, "a winner resets");
        assert!(p.on_fill(0, 1.0, &booked(2.0)).is_none());
        // A flip closes the round trip too.
        assert!(p.on_fill(0, 1.0, &open(-1.0, 1.0)).is_none());
        assert_eq!(p.on_fill(1, -1.0, &booked(-1.0)).map(|t| (t.name, t.value)), Some(("max_consecutive_losses", 3.0)));
    }

    #[test]
    fn one_positions_open_loss_trips_whatever_the_others_gain() {
        let (mut p, _) = protection("protection:\n  max_position_loss:\n    amount: 20\n    action: flatten\n");
        assert!(p.on_quote(1, 20.0, 20.1, &long(10.0, 10.0)).is_none(), "GBPUSD up 100");
        let t = p.on_quote(0, 8.0, 8.1, &long(10.0, 10.0)).expect("EURUSD down 20");
        assert_eq!((t.name, t.action, t.value), ("max_position_loss", BreakerAction::Flatten, 20.0));
    }

    #[test]
    fn the_trading_day_follows_new_york_across_the_daylight_saving_change() {
        let yaml = "protection:\n  day_start: '17:00'\n  timezone: America/New_York\n";
        let (p, _) = protection(yaml);
        let end = |t: &str| crate::support::timefmt::rfc3339_micros(i128::from(p.day_end_after(ns(t))));
        // Winter (EST, UTC-5): 17:00 is 22:00 UTC.
        assert_eq!(end("2026-03-06T21:00:00Z"), "2026-03-06T22:00:00.000000Z");
        assert_eq!(end("2026-03-06T22:00:00Z"), "2026-03-07T22:00:00.000000Z", "at the boundary: the next one");
        // DST starts 2026-03-08: 17:00 EDT is 21:00 UTC.
        assert_eq!(end("2026-03-07T23:00:00Z"), "2026-03-08T21:00:00.000000Z");
        assert_eq!(end("2026-03-09T20:59:59Z"), "2026-03-09T21:00:00.000000Z");
    }

    #[test]
    fn with_no_breaker_equity_is_still_measured_and_nothing_trips() {
        let (mut p, m) = protection("protection:\n  starting_balance: 500\n");
        assert!(!p.is_on());
        assert!(p.on_quote(0, 1.0, 1.1, &long(100.0, 10.0)).is_none());
        assert_eq!(m.equity.get(), 500.0 - 900.0);
    }

    /// A protection over the config's own symbols, sized by their contract sizes.
    fn protection_for(yaml: &str) -> (Protection, Metrics) {
        let cfg = Config::parse(yaml, "t.yaml").expect("config");
        let m = Metrics::new();
        let names: Vec<&str> = cfg.protection.breakers.iter().map(|b| b.limit.name()).collect();
        let symbols: Vec<String> = cfg.feed.symbols.iter().map(|s| s.name.clone()).collect();
        let sizes: Vec<f64> = cfg.feed.symbols.iter().map(|s| s.contract_size).collect();
        let em = m.engine("paper", &symbols);
        (Protection::new(&cfg.protection, &sizes, em.protection(&names)), m)
    }

    #[test]
    fn a_yen_pnl_is_converted_to_the_account_currency_by_the_symbols_own_quote() {
        let (mut p, m) = protection_for(
            "protection:\n  starting_balance: 1000\n  account_currency: USD\n  max_position_loss:\n    amount: 10\n\
             feed:\n  symbols:\n    - {name: USDJPY, price: 150, currency: JPY, contract_size: 1000}\n",
        );
        assert_eq!(p.currency(), Some("USD"));
        let pos = long(1.0, 150.0);
        // 1 lot of 1000 USD down 1 yen: 1000 JPY, at 1/149.01 USD a yen.
        assert!(p.on_quote(0, 149.0, 149.02, &pos).is_none());
        let open = -1000.0 / 149.01;
        assert!((m.equity.get() - (1000.0 + open)).abs() < 1e-9, "{}", m.equity.get());
        // Down 2 yen: 13.4 USD, past the 10 USD limit (2000 JPY would be past any JPY reading too,
        // but 1 yen is 6.7 USD, under it).
        let t = p.on_quote(0, 148.0, 148.02, &pos).expect("13.4 USD open loss");
        assert!((t.value - 2000.0 / 148.01).abs() < 1e-9, "{t:?}");
        // Closing books the yen at the rate of the moment.
        let closed = Position { realized_pnl: -2.0, fills: 2, ..Position::default() };
        p.on_fill(0, 1.0, &closed);
        assert!((p.balance() - (1000.0 - 2000.0 / 148.01)).abs() < 1e-9, "{}", p.balance());
        assert!((p.realized_money(0).0 + 2000.0 / 148.01).abs() < 1e-9);
    }

    #[test]
    fn a_cross_waits_for_its_rate_and_moves_with_the_converting_symbol() {
        let yaml = "protection:\n  starting_balance: 1000\n  account_currency: USD\n\
                    feed:\n  symbols:\n    - {name: EURGBP, price: 0.85, currency: GBP}\n    - {name: GBPUSD.m, price: 1.25}\n";
        let (mut p, m) = protection_for(yaml);
        // A close before any GBPUSD quote: 10 GBP realized, waiting for a rate.
        let closed = Position { realized_pnl: 10.0, fills: 2, ..Position::default() };
        p.on_fill(0, 1.0, &closed);
        assert_eq!(p.balance(), 1000.0, "not converted before a rate is known");
        assert!(p.on_quote(1, 1.2499, 1.2501, &Position::default()).is_none());
        assert!((p.balance() - 1012.5).abs() < 1e-9, "10 GBP at 1.25: {}", p.balance());
        // An open EURGBP position is marked again when only GBPUSD moves.
        let pos = Position { qty: 100.0, avg_price: 0.85, realized_pnl: 10.0, fills: 3 };
        p.on_fill(0, 0.0, &pos);
        assert!(p.on_quote(0, 0.86, 0.8602, &pos).is_none());
        assert!((m.equity.get() - (1012.5 + 1.0 * 1.25)).abs() < 1e-9, "1 GBP open: {}", m.equity.get());
        assert!(p.on_quote(1, 1.4999, 1.5001, &Position::default()).is_none());
        assert!((m.equity.get() - (1012.5 + 1.5)).abs() < 1e-9, "the same GBP at 1.5: {}", m.equity.get());
        // A restart keeps the converted money, and converts at the next rate only what the journal
        // replayed after the checkpoint (here 4 GBP more).
        let (money, done) = p.realized_money(0);
        let (mut again, _) = protection_for(yaml);
        let replayed = Position { realized_pnl: 14.0, ..pos };
        again.restore(&[replayed, Position::default()], &[Some((money, done)), None], Some(p.baselines()), 0.0, 0.0);
        assert!((again.balance() - 1012.5).abs() < 1e-9, "{}", again.balance());
        again.on_quote(1, 1.9999, 2.0001, &Position::default());
        assert!((again.balance() - 1020.5).abs() < 1e-9, "4 GBP at 2.0 on top: {}", again.balance());
    }
}
