//! The trading core: what happens between a tick (or an external signal) and an order handed to
//! the venue, and between a venue event and the books.
//!
//! The reactor owns one [`TradingCore`] and calls it with inputs; the core owns the model, drift
//! detectors, signal queue, executor and venue, and updates the engine's metrics. It does no IO of
//! its own besides what the venue does, takes time from a [`Clock`], and allocates nothing after
//! [`TradingCore::new`] on the tick-to-order path (a test proves it with a counting allocator).

mod control;
mod markets;
mod persist;
mod stops;
mod swaps;

use crate::config::{Config, DriftConfig};

use crate::domain::clock::Clock;
use crate::domain::notice::{DaySummary, Notice, NoticeKind, NoticeOutlets};
use crate::domain::types::{DriftAction, OrderKind};
use crate::domain::venue::{RestoredOrder, Venue};
use crate::link::report::{CancelRefused, FlattenOrder, FlattenReport, StatusReport};
use crate::link::LiveConfig;
use crate::support::names::QTY_EPSILON;
use crate::telemetry::metrics::EngineMetrics;

use super::drift::PageHinkley;
use super::executor::{Applied, Executor, Position};
use super::journal::{self, Journal};
use super::model::Model;
use super::protection::{Protection, Trip};
use super::queue::SignalQueue;
use super::sessions::{MarketHours, PhaseChange};
use crate::domain::types::{
    DropReason, LateRefusal, Level, Nanos, OrderRequest, ReplyTo, Side, Signal, SignalId, SignalSource, StopKind,
    Stops, SymbolId, Tick, TradeMode, TradeRecord, TradingState, VenueEvent,
};

/// The trading state, who set it (`operator`, a breaker's name, `restore`) and why, since when.
#[derive(Debug, Clone, PartialEq)]
pub struct Trading {
    pub state: TradingState,
    pub by: String,
    pub reason: String,
    pub since_unix_ns: i128,
}

impl Trading {
    fn started(unix_ns: i128) -> Trading {
        Trading { state: TradingState::Active, by: "start".into(), reason: String::new(), since_unix_ns: unix_ns }
    }
}

/// A snapshot of the books, for status lines and the final log.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub trades: u64,
    pub open_orders: usize,
    pub queued: usize,
    pub positions: Vec<(String, Position)>,
    pub drift_alarms: u64,
    pub paused: bool,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "trades={} open_orders={} queued={} drift_alarms={} paused={} positions:",
            self.trades, self.open_orders, self.queued, self.drift_alarms, self.paused
        )?;
        for (name, p) in &self.positions {
            write!(f, " {name}={:.4}@{:.5}(pnl {:.5})", p.qty, p.avg_price, p.realized_pnl)?;
        }
        Ok(())
    }
}

/// Refusals made after queuing that wait for the ingress to tell their clients; beyond this many
/// in one turn the rest are only counted and logged.
const MAX_LATE_REFUSALS: usize = 4096;

/// The engine's trading state and logic.
#[derive(Debug)]
pub struct TradingCore<V, C> {
    clock: C,
    /// The last fills, for the status (a ring of [`crate::link::report::RECENT_FILLS`]).
    recent_fills: std::collections::VecDeque<TradeRecord>,
    symbols: Vec<String>,
    queue: SignalQueue<Signal>,
    model: Model,
    drift: Vec<PageHinkley>,
    drift_cfg: DriftConfig,
    executor: Executor,
    venue: V,
    events: Vec<VenueEvent>,
    metrics: EngineMetrics,
    id_prefix: SignalId,
    next_model_seq: u64,
    paused_until: Option<Nanos>,
    /// Paused by the operator (control API) until resumed.
    trading: Trading,
    protection: Protection,
    /// The breaker that set the state, and when, while it has a `resume_after`.
    resume_at: Option<(usize, Nanos)>,
    /// The last drift alarm: symbol and wall-clock time (Unix ns).
    last_drift: Option<(SymbolId, i128)>,
    accepting: bool,
    max_wait: Nanos,
    drift_alarms: u64,
    trade_sink: Option<std::sync::mpsc::SyncSender<TradeRecord>>,
    /// The notification sinks' channels (`notify:`); empty when there are none.
    notices: NoticeOutlets,
    /// The fills booked when the trading day started (for its summary).
    fills_at_day_start: u64,
    /// Refusals after queuing, for the clients waiting on them (allocated once).
    late: Vec<LateRefusal>,
    late_lost: u64,
    /// Per symbol: the smallest quantity and the lot step (`feed.symbols[].min_qty`, `qty_step`).
    lots: Vec<(f64, f64)>,
    /// The order journal, when checkpoints are on.
    journal: Option<Journal>,
    /// Per symbol: the position's stop-loss and take-profit prices (0 for none).
    stops: Vec<(f64, f64)>,
    /// Whether the engine holds the stops (the venue does not): it closes a position whose mark
    /// crosses one.
    engine_stops: bool,
    /// Per symbol: no protective exit is tried again before this time (the last was refused),
    /// and how many were refused in a row.
    exit_retry_at: Vec<(Nanos, u32)>,
    /// Prefixes of protective exits' ids, per [`StopKind`]: `<run_id>-sl`, `<run_id>-tp`.
    exit_prefixes: [SignalId; 2],
    /// Prefixes of the ids a venue's stop executions are booked under: `sl`, `tp`.
    venue_stop_prefixes: [SignalId; 2],
    /// Whether positions' levels rest at the venue as orders the engine keeps in step
    /// ([`Venue::rests_stops`]); their ids' prefixes (`<run_id>-rsl`, `<run_id>-rtp`).
    rest_stops: bool,
    rest_prefixes: [SignalId; 2],
    /// Per symbol and [`StopKind`]: no resting order is placed before this time (the last was
    /// refused), and how many were refused in a row.
    rest_retry: Vec<[(Nanos, u32); 2]>,
    /// Per symbol: its resting orders are to be brought in step after this turn's events.
    rest_dirty: Vec<bool>,
    /// The wall-clock second the resting orders were last all brought in step.
    rest_second: i64,
    /// The stops the model's signals carry (`model.sl_bps`, `model.tp_bps`).
    model_stops: Stops,
    /// What a protective exit sends (`protection.exit_order`, `exit_limit_bps`).
    exit_order: (OrderKind, f64),
    /// Each symbol's market hours (`sessions:`).
    market: MarketHours,
    /// The paper venue's nightly swaps.
    rollover: swaps::Rollover,
    /// Phase changes of one update, handled after it (allocated once).
    market_changes: Vec<PhaseChange>,
    /// The wall-clock second the market gauges were last set.
    market_second: i64,
    /// Per symbol: a tick arrived since the gauges were last set.
    ticked: Vec<bool>,
    /// Per symbol with a calendar: `market_next_change_seconds`.
    next_change_gauges: Vec<Option<prometheus::Gauge>>,
}

/// How long a refused protective exit waits before it is tried again: doubling from the first
/// to the last, then the last.
const EXIT_RETRY: Nanos = 1_000_000_000;
const EXIT_RETRY_MAX: Nanos = 30_000_000_000;
/// Refusals in a row of one position's exit that halt trading: the position stays open
/// unprotected, so nothing new may add to the risk while an operator looks.
const EXIT_REFUSALS_TO_HALT: u32 = 3;

/// A quantity this close to a whole number of steps counts as one (float noise).
const STEP_TOLERANCE: f64 = 1e-6;

/// The run id of an engine whose clock reads `start_unix_ns` when it starts: `M` and the Unix
/// second. Model signal ids start with it (`<run_id>-<n>`), so a daemon never repeats an id across
/// restarts, and a replay of history on the data's own time (a backtest, or `mt5bot run` on a CSV
/// at speed 0) names its orders the same whichever of the two ran it.
pub fn run_id_at(start_unix_ns: i128) -> String {
    format!("M{}", start_unix_ns.div_euclid(1_000_000_000))
}

impl<V: Venue, C: Clock> TradingCore<V, C> {
    /// `run_id` prefixes the model's signal ids (`<run_id>-<n>`) so they are unique across restarts.
    pub fn new(cfg: &Config, venue: V, clock: C, metrics: EngineMetrics, run_id: &str) -> Self {
        let n = cfg.feed.symbols.len();
        let d = &cfg.drift;
        let prefix = SignalId::parse(&format!("{run_id}-")).unwrap_or_default();
        let exit_prefix = |k: StopKind| SignalId::parse(&format!("{run_id}-{}", k.as_str())).unwrap_or_default();
        let engine_stops = !venue.holds_stops();
        let rest_stops = engine_stops && venue.rests_stops();
        metrics.broker_connected.set(i64::from(venue.is_up()));
        let mut executor =
            Executor::with_ids(&cfg.risk, n, cfg.id_memory, cfg.id_retention.as_secs().min(u64::from(u32::MAX)) as u32);
        let unix_start = clock.unix_nanos();
        let breakers: Vec<&str> = cfg.protection.breakers.iter().map(|b| b.limit.name()).collect();
        let sizes: Vec<f64> = cfg.feed.symbols.iter().map(|s| s.contract_size).collect();
        let protection = Protection::new(&cfg.protection, &sizes, metrics.protection(&breakers));
        executor.set_wall_seconds((unix_start / 1_000_000_000) as u32);
        let market = MarketHours::new(&cfg.sessions);
        for (s, g) in metrics.market_open.iter().enumerate() {
            // A symbol with a calendar is set by its first update; one without is always open.
            if cfg.sessions.symbols.get(s).is_none_or(Option::is_none) {
                g.set(1);
            }
        }
        let next_change_gauges = cfg
            .sessions
            .symbols
            .iter()
            .zip(&cfg.feed.symbols)
            .map(|(cal, s)| cal.map(|_| metrics.market_next_change.with_label_values(&[&s.name])))
            .collect();
        let mut core = TradingCore {
            recent_fills: std::collections::VecDeque::with_capacity(crate::link::report::RECENT_FILLS),
            clock,
            symbols: cfg.feed.symbols.iter().map(|s| s.name.clone()).collect(),
            queue: SignalQueue::with_capacity(cfg.queue_capacity),
            model: Model::new(&cfg.model, n),
            drift: vec![PageHinkley::new(d.delta, d.threshold, d.min_samples); n],
            drift_cfg: d.clone(),
            executor,
            venue,
            // Every event a poll can produce fits: one accept, and one fill (with its commission)
            // or reject, per order.
            events: Vec::with_capacity(3 * cfg.risk.max_open_orders + 16),
            metrics,
            id_prefix: prefix,
            next_model_seq: 1,
            paused_until: None,
            trading: Trading::started(unix_start),
            protection,
            resume_at: None,
            last_drift: None,
            accepting: true,
            max_wait: cfg.queue_max_wait.as_nanos() as Nanos,
            drift_alarms: 0,
            trade_sink: None,
            notices: NoticeOutlets::default(),
            fills_at_day_start: 0,
            late: Vec::with_capacity(cfg.queue_capacity.min(MAX_LATE_REFUSALS)),
            late_lost: 0,
            lots: cfg.feed.symbols.iter().map(|s| (s.min_qty, s.qty_step)).collect(),
            journal: None,
            stops: vec![(0.0, 0.0); n],
            engine_stops,
            exit_retry_at: vec![(0, 0); n],
            exit_prefixes: StopKind::ALL.map(exit_prefix),
            venue_stop_prefixes: StopKind::ALL.map(|k| SignalId::parse(k.as_str()).unwrap_or_default()),
            rest_stops,
            rest_prefixes: StopKind::ALL
                .map(|k| SignalId::parse(&format!("{run_id}-r{}", k.as_str())).unwrap_or_default()),
            rest_retry: vec![[(0, 0); 2]; n],
            rest_dirty: vec![false; n],
            rest_second: 0,
            exit_order: (cfg.protection.exit_order, cfg.protection.exit_limit_bps),
            model_stops: Stops {
                sl: Level::from_parts(0.0, cfg.model.sl_bps),
                tp: Level::from_parts(0.0, cfg.model.tp_bps),
            },
            market,
            rollover: swaps::Rollover::new(cfg),
            market_changes: Vec::with_capacity(n),
            market_second: 0,
            ticked: vec![false; n],
            next_change_gauges,
        };
        // Each market's phase from the start, before a signal can arrive.
        core.update_markets(unix_start);
        core
    }

    /// Journals every signal queued, order sent, fill booked and order closed from now on.
    pub fn set_journal(&mut self, journal: Journal) {
        self.journal = Some(journal);
    }

    /// Takes the journal back (shutdown: it is synced and stopped before the final checkpoint).
    pub fn take_journal(&mut self) -> Option<Journal> {
        self.journal.take()
    }

    /// Hands this turn's journal entries to its writer (the reactor calls it once per turn,
    /// before it waits for events).
    #[inline]
    pub fn flush_journal(&mut self) {
        if let Some(j) = &mut self.journal {
            j.flush();
        }
    }

    /// The last journal entry appended and the last one on disk; `None` without a journal. An
    /// ingress answer `queued` waits until its entry is on disk.
    #[inline]
    pub fn journal_marks(&self) -> Option<(u64, u64)> {
        self.journal.as_ref().map(|j| (j.last(), j.durable()))
    }

    /// How far the journal is on disk; everything is, without a journal.
    #[inline]
    pub fn journal_durable(&self) -> u64 {
        self.journal_marks().map_or(u64::MAX, |(_, durable)| durable)
    }

    /// Checkpoint `generation` was just taken from [`TradingCore::snapshot`]: the journal starts
    /// its segment.
    pub fn journal_rotate(&mut self, generation: u64) {
        if let Some(j) = &mut self.journal {
            j.rotate(generation);
        }
    }

    /// How many journal entries were lost since the last call (its writer fell behind): a
    /// checkpoint closes the hole.
    #[inline]
    pub fn journal_take_lost(&mut self) -> u64 {
        self.journal.as_mut().map_or(0, Journal::take_lost)
    }

    #[inline]
    #[allow(clippy::too_many_arguments)]
    fn journal(
        &mut self,
        kind: journal::Kind,
        id: SignalId,
        symbol: SymbolId,
        side: Side,
        order_kind: OrderKind,
        source: SignalSource,
        qty: f64,
        price: f64,
    ) {
        if let Some(j) = &mut self.journal {
            let venue_ref = if kind == journal::Kind::Sent { self.venue.order_ref(&id) } else { 0 };
            j.append(journal::Entry {
                kind,
                id,
                symbol,
                side,
                order_kind,
                source,
                qty,
                price,
                unix_ns: self.clock.unix_nanos() as i64,
                venue_ref,
                protects: None,
            });
        }
    }

    /// Journals an entry that records a fact rather than an order (a state change, levels, a
    /// commission): its side and order kind mean nothing. Returns the entry's number.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    fn journal_record(
        &mut self,
        kind: journal::Kind,
        id: SignalId,
        symbol: SymbolId,
        source: SignalSource,
        qty: f64,
        price: f64,
        venue_ref: u64,
    ) -> Option<u64> {
        let unix_ns = self.clock.unix_nanos() as i64;
        let j = self.journal.as_mut()?;
        Some(j.append(journal::Entry {
            kind,
            id,
            symbol,
            side: Side::Buy,
            order_kind: OrderKind::Market,
            source,
            qty,
            price,
            unix_ns,
            venue_ref,
            protects: None,
        }))
    }

    /// Journals a change of the trading state (the state's code in the quantity, who in the id);
    /// returns the entry's number.
    fn journal_state(&mut self, state: TradingState, by: &str) -> Option<u64> {
        let id = SignalId::parse(by).unwrap_or_default();
        self.journal_record(journal::Kind::State, id, 0, SignalSource::Control, f64::from(state.code()), 0.0, 0)
    }

    /// Journals the stops of `id` (right after its `Queued` or `Sent`), or, with `Kind::Protect`,
    /// a position's new levels.
    #[inline]
    fn journal_levels(&mut self, kind: journal::Kind, id: SignalId, symbol: SymbolId, sl: Level, tp: Level) {
        let ((sl, sl_bps), (tp, tp_bps)) = (sl.parts(), tp.parts());
        let qty = if sl_bps > 0.0 { sl_bps } else { sl };
        let price = if tp_bps > 0.0 { tp_bps } else { tp };
        let flags = u64::from(sl_bps > 0.0) | (u64::from(tp_bps > 0.0) << 1);
        self.journal_record(kind, id, symbol, SignalSource::Model, qty, price, flags);
    }

    /// Journals a commission booked (the amount in `qty`).
    fn journal_commission(&mut self, symbol: SymbolId, amount: f64) {
        let id = SignalId::default();
        self.journal_record(journal::Kind::Commission, id, symbol, SignalSource::Model, amount, 0.0, 0);
    }

    /// Sends every fill to `sink` too (the trade history writer). Never blocks: when the channel is
    /// full the record is dropped and counted in `influx_points_dropped_total`.
    pub fn set_trade_sink(&mut self, sink: std::sync::mpsc::SyncSender<TradeRecord>) {
        self.trade_sink = Some(sink);
    }

    /// Hands fills, state changes, venue changes and day summaries to the notification sinks
    /// (`notify:`), never waiting for them.
    pub fn set_notices(&mut self, notices: NoticeOutlets) {
        self.notices = notices;
    }

    /// Drops the engine's ends of the notification channels (so the sinks can finish).
    pub fn take_notices(&mut self) -> NoticeOutlets {
        std::mem::take(&mut self.notices)
    }

    /// The venue session went down or came back.
    pub fn notify_venue(&mut self, up: bool) {
        if self.notices.wants(NoticeKind::Venue) {
            self.notices.offer(&Notice::Venue { venue: self.venue.name(), up });
        }
    }

    /// Tells the sinks about the trading day that just ended, if one did.
    fn notify_closed_day(&mut self) {
        let Some((end_unix_ns, start_equity, end_equity)) = self.protection.take_closed_day() else { return };
        let fills = self.executor.trades();
        let day_fills = fills.saturating_sub(self.fills_at_day_start);
        self.fills_at_day_start = fills;
        if !self.notices.wants(NoticeKind::Summary) {
            return;
        }
        let summary = DaySummary {
            end_unix_ns,
            start_equity,
            end_equity,
            balance: self.protection.balance(),
            drawdown_ratio: self.protection.drawdown(),
            fills: day_fills,
            open_positions: self.executor.positions().iter().filter(|p| p.qty.abs() > QTY_EPSILON).count(),
            state: self.trading.state,
        };
        self.notices.offer(&Notice::Summary(summary));
    }

    pub fn clock(&self) -> &C {
        &self.clock
    }

    pub fn symbols(&self) -> &[String] {
        &self.symbols
    }

    /// The id of a symbol name, for external signals.
    pub fn symbol_id(&self, name: &str) -> Option<SymbolId> {
        self.symbols.iter().position(|s| s == name).map(|i| i as SymbolId)
    }

    pub fn venue(&self) -> &V {
        &self.venue
    }

    pub fn venue_mut(&mut self) -> &mut V {
        &mut self.venue
    }

    pub fn executor(&self) -> &Executor {
        &self.executor
    }

    /// Checks an external quantity against the symbol's lot rules; the error says which rule.
    pub fn check_lot(&self, symbol: SymbolId, qty: f64) -> Result<(), String> {
        let Some(&(min, step)) = self.lots.get(symbol as usize) else { return Ok(()) };
        let name = self.symbols.get(symbol as usize).map_or("?", String::as_str);
        if qty < min * (1.0 - STEP_TOLERANCE) {
            return Err(format!("qty: {qty} is below the minimum lot {min} of {name} (feed.symbols[].min_qty)"));
        }
        let steps = qty / step;
        if (steps - steps.round()).abs() > STEP_TOLERANCE * steps.max(1.0) {
            return Err(format!(
                "qty: {qty} is not a whole number of lot steps of {step} for {name} (feed.symbols[].qty_step)"
            ));
        }
        Ok(())
    }

    /// A model quantity rounded down to the symbol's lot step; `None` below its minimum lot.
    #[inline]
    fn model_lot(&self, symbol: SymbolId, qty: f64) -> Option<f64> {
        let Some(&(min, step)) = self.lots.get(symbol as usize) else { return Some(qty) };
        // Whole steps, then onto a 1e-8 grid so 6 x 0.05 is 0.3, not 0.30000000000000004 on the wire.
        let q = ((qty / step + STEP_TOLERANCE).floor() * step * 1e8).round() / 1e8;
        (q >= min * (1.0 - STEP_TOLERANCE)).then_some(q)
    }

    /// A tick: the venue and executor see the quote, the model may signal, the queue is worked.
    #[inline]
    pub fn on_tick(&mut self, tick: &Tick) {
        let now = self.clock.now();
        self.metrics.ticks.inc();
        if let Some(t) = self.ticked.get_mut(tick.symbol as usize) {
            *t = true;
        }
        self.executor.set_quote(tick.symbol, tick.bid, tick.ask);
        self.venue.on_tick(tick, now, &mut self.events);
        self.apply_events(now);
        let position = self.executor.position(tick.symbol);
        if let Some(trip) = self.protection.on_quote(tick.symbol, tick.bid, tick.ask, &position) {
            self.trip(trip);
        }
        if self.engine_stops {
            let (sl, tp) = self.stops.get(tick.symbol as usize).copied().unwrap_or_default();
            if let Some(kind) = StopKind::crossed(position.qty, sl, tp, tick.bid, tick.ask) {
                self.protective_exit(tick.symbol, kind, tick, now);
                self.sync_dirty_resting(now);
            }
        }
        if !self.accepting {
            return;
        }
        let out = self.model.on_tick(tick);
        if let (true, Some(err)) = (self.drift_cfg.enabled, out.abs_error_bps) {
            if let Some(ph) = self.drift.get_mut(tick.symbol as usize) {
                if ph.update(err) {
                    self.on_drift(tick.symbol, now);
                }
            }
        }
        if let Some((d, qty)) = out.decision.and_then(|d| Some((d, self.model_lot(tick.symbol, d.qty)?))) {
            let id = SignalId::with_counter(&self.id_prefix, self.next_model_seq);
            self.next_model_seq += 1;
            let signal = Signal {
                id,
                symbol: tick.symbol,
                side: d.side,
                qty,
                kind: d.kind,
                price: d.price,
                source: SignalSource::Model,
                origin_ns: tick.recv_ns,
                reply_to: ReplyTo::NONE,
                stops: self.model_stops,
            };
            // A refusal is counted inside `offer`; the model simply tries again on its next crossing.
            let _ = self.offer(signal);
        }
        self.drain();
    }

    /// Offers a signal to the queue. Refusals are counted in `signals_dropped_total` and returned.
    /// A queued signal's id is taken: a repeat of it is refused at once as a duplicate, whatever
    /// becomes of the first (a refusal after queuing goes to [`TradingCore::take_late_refusals`]).
    #[inline]
    pub fn offer(&mut self, signal: Signal) -> Result<(), DropReason> {
        self.metrics.received(signal.source);
        let result = if !self.accepting {
            Err(DropReason::Stopping)
        } else if self.trading.state == TradingState::Halted {
            Err(DropReason::Halted)
        } else if self.paused_until.is_some() {
            Err(DropReason::Paused)
        } else if self.trading.state == TradingState::Reducing
            && !self.executor.reduces(signal.symbol, signal.side, signal.qty)
        {
            Err(DropReason::Reducing)
        } else if !self.market_takes(&signal) {
            Err(DropReason::MarketClosed)
        } else if self.executor.knows(&signal.id) {
            Err(DropReason::Duplicate)
        } else if self.journal.as_ref().is_some_and(Journal::is_behind) {
            Err(DropReason::JournalBehind)
        } else {
            let id = signal.id;
            self.queue.push(signal).map(|()| self.executor.claim_new(id)).map_err(|_| DropReason::QueueFull)
        };
        if result.is_ok() {
            let s = signal;
            self.journal(journal::Kind::Queued, s.id, s.symbol, s.side, s.kind, s.source, s.qty, s.price);
            if !s.stops.is_none() {
                self.journal_levels(journal::Kind::Stops, s.id, s.symbol, s.stops.sl, s.stops.tp);
            }
        }
        match result {
            Ok(()) => self.metrics.queue_depth.set(self.queue.len() as i64),
            Err(reason) => self.metrics.dropped(reason),
        }
        result
    }

    /// Turns every queued signal into an order (or a counted refusal) and hands it to the venue.
    /// While the venue cannot take orders (its session is down), signals wait, and those older than
    /// `queue.max_wait` are refused.
    #[inline]
    pub fn drain(&mut self) {
        let mut sent = false;
        while let Some(front) = self.queue.front() {
            let now = self.clock.now();
            // No quote yet (just started, the terminal's ticks not in): the signal waits for one
            // rather than being refused, like a session that is not up yet.
            if !self.venue.ready_for_orders() || !self.executor.has_quote(front.symbol) {
                if now.saturating_sub(front.origin_ns) <= self.max_wait {
                    break;
                }
                if let Some(sig) = self.queue.pop() {
                    let reason =
                        if self.venue.ready_for_orders() { DropReason::NoQuote } else { DropReason::VenueUnavailable };
                    self.refuse_late(&sig, reason);
                }
                continue;
            }
            let Some(sig) = self.queue.pop() else { break };
            // The state may have changed while the signal waited.
            match self.trading.state {
                TradingState::Halted => {
                    self.refuse_late(&sig, DropReason::Halted);
                    continue;
                }
                TradingState::Reducing if !self.executor.reduces(sig.symbol, sig.side, sig.qty) => {
                    self.refuse_late(&sig, DropReason::Reducing);
                    continue;
                }
                _ => {}
            }
            // ... and so may the market: a closed one's signals do not wait for it to open.
            if !self.market_takes(&sig) {
                self.refuse_late(&sig, DropReason::MarketClosed);
                continue;
            }
            // ... and what the broker lets be traded in the symbol.
            let mode = self.venue.trade_mode(sig.symbol);
            if mode != TradeMode::Full && !mode.allows(sig.side, self.executor.reduces(sig.symbol, sig.side, sig.qty)) {
                self.metrics.orders_rejected.inc();
                log::warn!(
                    "{}: order {} refused before it went out: {}",
                    self.symbols.get(sig.symbol as usize).map_or("?", String::as_str),
                    sig.id,
                    mode.refusal()
                );
                self.refuse_late(&sig, DropReason::VenueRejected);
                continue;
            }
            let order = match self.executor.create_claimed(&sig, now) {
                Ok(order) => self.with_position_stops(order),
                Err(reason) => {
                    self.refuse_late(&sig, reason);
                    continue;
                }
            };
            match self.venue.submit(&order, now) {
                Ok(()) => {
                    self.executor.mark_sent(order.key, now);
                    self.metrics.orders_sent.inc();
                    self.journal(
                        journal::Kind::Sent,
                        sig.id,
                        sig.symbol,
                        sig.side,
                        sig.kind,
                        sig.source,
                        sig.qty,
                        order.price,
                    );
                    if order.sl > 0.0 || order.tp > 0.0 {
                        let (sl, tp) = (Level::from_parts(order.sl, 0.0), Level::from_parts(order.tp, 0.0));
                        self.journal_levels(journal::Kind::Stops, sig.id, sig.symbol, sl, tp);
                    }
                    let done = self.clock.now();
                    self.metrics.tick_to_order.observe(done.saturating_sub(sig.origin_ns) as f64 * 1e-9);
                    sent = true;
                    self.mark_resting_dirty(sig.symbol);
                }
                Err(why) => {
                    self.metrics.orders_rejected.inc();
                    log::warn!(
                        "{}: order {} refused by the {} venue before it went out: {why}",
                        self.symbols.get(sig.symbol as usize).map_or("?", String::as_str),
                        sig.id,
                        self.venue.name()
                    );
                    self.executor.apply(&VenueEvent::Rejected { key: order.key, reason: why }, now);
                    self.refuse_late(&sig, DropReason::VenueRejected);
                }
            }
        }
        self.metrics.queue_depth.set(self.queue.len() as i64);
        if sent {
            self.metrics.open_orders.set(self.executor.open_order_count() as i64);
            self.sync_dirty_resting(self.clock.now());
        }
    }

    /// Counts a refusal of a queued signal and keeps it for the client waiting on it, if any.
    #[inline]
    fn refuse_late(&mut self, sig: &Signal, reason: DropReason) {
        if reason != DropReason::VenueRejected {
            self.metrics.dropped(reason);
        }
        self.journal(journal::Kind::Closed, sig.id, sig.symbol, sig.side, sig.kind, sig.source, 0.0, 0.0);
        if sig.reply_to == ReplyTo::NONE {
            return;
        }
        if self.late.len() < self.late.capacity() {
            self.late.push(LateRefusal { reply_to: sig.reply_to, id: sig.id, reason });
        } else {
            self.late_lost += 1;
        }
    }

    /// Hands every refusal made after queuing since the last call to `f` (the ingress writes them
    /// to their clients).
    pub fn take_late_refusals(&mut self, mut f: impl FnMut(&LateRefusal)) {
        for r in &self.late {
            f(r);
        }
        self.late.clear();
        if self.late_lost > 0 {
            log::warn!(
                "{} refusals after queuing were not told to their ingress clients (more than {} in one turn); \
                 signals_dropped_total counts them",
                self.late_lost,
                self.late.capacity()
            );
            self.late_lost = 0;
        }
    }

    /// Whether refusals wait for [`TradingCore::take_late_refusals`].
    #[inline]
    pub fn has_late_refusals(&self) -> bool {
        !self.late.is_empty() || self.late_lost > 0
    }

    /// Lets the venue make progress on what is due (acks, fills after latency).
    pub fn poll_venue(&mut self) {
        let now = self.clock.now();
        // Seconds are all the id memory needs: once per turn is enough.
        let unix_ns = self.clock.unix_nanos();
        self.executor.set_wall_seconds((unix_ns / 1_000_000_000) as u32);
        if let Some(trip) = self.protection.on_wall_time(unix_ns) {
            self.trip(trip);
        }
        self.notify_closed_day();
        self.book_swaps(unix_ns);
        self.update_markets(unix_ns);
        self.resume_if_due(now);
        // Once a second every symbol's resting orders are looked at again: refused ones retried,
        // ones the venue could not take before (session down) placed.
        let second = (unix_ns / 1_000_000_000) as i64;
        if self.rest_stops && second != self.rest_second {
            self.rest_second = second;
            for s in 0..self.symbols.len() {
                self.sync_resting_stops(s as SymbolId, now);
            }
        }
        self.venue.poll(now, &mut self.events);
        self.apply_events(now);
        if !self.queue.is_empty() {
            self.drain();
        }
        if let Some(until) = self.paused_until {
            if now >= until {
                self.paused_until = None;
                self.metrics.trading_paused.set(i64::from(self.trading.state == TradingState::Halted));
                log::info!("drift pause over: taking new signals again");
            }
        }
    }

    /// The venue's own net position of `symbol` against the books (after the events before it):
    /// shown as `venue_position`, and a difference is logged, for the operator to settle by hand
    /// (positions opened in the terminal with mt5bot's magic, a state directory lost, a bridge
    /// that let a hedging account part from the books).
    fn compare_venue_position(&mut self, symbol: SymbolId, net: f64) {
        if !net.is_finite() {
            return;
        }
        let name = self.symbols.get(symbol as usize).map_or("?", String::as_str);
        let venue = self.venue.name();
        self.metrics.venue_position.with_label_values(&[venue, name]).set(net);
        let ours = self.executor.position(symbol).qty;
        if (ours - net).abs() > 1e-6 {
            log::warn!(
                "{name}: the {venue} account holds a net position of {net} of mt5bot's, the books {ours}; settle the \
                 difference by hand (flatten, or close it in the terminal), mt5bot does not trade it away"
            );
        }
    }

    fn apply_events(&mut self, now: Nanos) {
        if self.events.is_empty() {
            return;
        }
        let mut trip = None;
        // Whether the event before was a fill that was booked (its commission is booked with it).
        let mut booked = false;
        for i in 0..self.events.len() {
            let was_booked = std::mem::take(&mut booked);
            let event = match self.events[i] {
                VenueEvent::Commission { symbol, amount } => {
                    if was_booked && amount.is_finite() && amount != 0.0 {
                        self.journal_commission(symbol, amount);
                        if let Some(t) = self.protection.on_commission(amount) {
                            trip = trip.or(Some(t));
                        }
                    }
                    continue;
                }
                VenueEvent::Balance { balance } => {
                    if let Some(t) = self.protection.on_venue_balance(balance) {
                        trip = trip.or(Some(t));
                    }
                    continue;
                }
                VenueEvent::SessionTimes { symbol } => {
                    self.compare_venue_sessions(symbol);
                    continue;
                }
                VenueEvent::PositionReported { symbol, net } => {
                    self.compare_venue_position(symbol, net);
                    continue;
                }
                VenueEvent::StopExecuted { stop, ticket, symbol, side, qty, price } => {
                    match self.venue_stop(stop, ticket, symbol) {
                        Some(client_id) => {
                            VenueEvent::Adopted { client_id, symbol, side, qty, price, only_if_unknown: true }
                        }
                        None => continue,
                    }
                }
                e => e,
            };
            // A fill the venue found in its history for an order not in flight here: an id the
            // engine knew before is an order it booked already; one that only waits in the queue
            // (its client repeated it after the crash) is booked and refused at its turn.
            if let VenueEvent::Adopted { client_id, only_if_unknown: true, .. } = event {
                if self.executor.knows(&client_id) && !self.queue.iter().any(|q| q.id == client_id) {
                    continue;
                }
            }
            match self.executor.apply(&event, now) {
                Applied::Acknowledged { roundtrip_ns } => {
                    self.metrics.order_roundtrip.observe(roundtrip_ns as f64 * 1e-9);
                }
                Applied::Filled {
                    symbol,
                    side,
                    client_id,
                    exec_id,
                    qty,
                    price,
                    realized_pnl,
                    sl,
                    tp,
                    protects,
                    order_done,
                } => {
                    booked = true;
                    self.metrics.trade_count.inc();
                    let notify = self.notices.wants(NoticeKind::Fill);
                    let record = TradeRecord {
                        unix_ns: self.clock.unix_nanos(),
                        symbol,
                        side,
                        client_id,
                        exec_id,
                        qty,
                        price,
                        realized_pnl,
                    };
                    // A ring allocated at start: the oldest makes room.
                    if self.recent_fills.len() == crate::link::report::RECENT_FILLS {
                        self.recent_fills.pop_front();
                    }
                    self.recent_fills.push_back(record);
                    if let Some(sink) = &self.trade_sink {
                        if sink.try_send(record).is_err() {
                            self.metrics.influx_points_dropped.inc();
                        }
                    }
                    if notify {
                        self.notices.offer(&Notice::Fill(record));
                    }
                    self.journal(
                        journal::Kind::Fill,
                        client_id,
                        symbol,
                        side,
                        OrderKind::Market,
                        SignalSource::Model,
                        qty,
                        price,
                    );
                    let p = self.executor.position(symbol);
                    if let Some(g) = self.metrics.position.get(symbol as usize) {
                        g.set(p.qty);
                    }
                    let before = p.qty - side.sign() * qty;
                    self.update_stops(symbol, before, p.qty, side, sl, tp);
                    if self.rest_stops {
                        self.resting_filled(symbol, protects, client_id, order_done);
                    }
                    if let Some(t) = self.protection.on_fill(symbol, before, &p) {
                        trip = trip.or(Some(t));
                    }
                    if let Some(g) = self.metrics.realized_pnl.get(symbol as usize) {
                        g.set(self.protection.realized_money(symbol).0);
                    }
                    if let Some(amount) = self.rollover.notional_commission(symbol, qty, price, &self.protection) {
                        self.journal_commission(symbol, amount);
                        if let Some(t) = self.protection.on_commission(amount) {
                            trip = trip.or(Some(t));
                        }
                    }
                }
                Applied::Rejected { symbol, client_id, protects } => {
                    self.metrics.orders_rejected.inc();
                    self.journal_closed(client_id, symbol);
                    if let Some(kind) = protects {
                        self.resting_refused(symbol, kind, client_id, "the venue refused it", now);
                    }
                }
                Applied::Cancelled { symbol, client_id, protects } => {
                    self.journal_closed(client_id, symbol);
                    if let Some(d) = protects.and_then(|_| self.rest_dirty.get_mut(symbol as usize)) {
                        *d = true;
                    }
                }
                Applied::Ignored => {}
            }
        }
        self.events.clear();
        self.metrics.open_orders.set(self.executor.open_order_count() as i64);
        // After the events: a flatten makes events of its own.
        if let Some(t) = trip {
            self.trip(t);
        }
        self.sync_dirty_resting(now);
    }

    #[inline]
    fn journal_closed(&mut self, id: SignalId, symbol: SymbolId) {
        self.journal(journal::Kind::Closed, id, symbol, Side::Buy, OrderKind::Market, SignalSource::Model, 0.0, 0.0);
    }

    fn on_drift(&mut self, symbol: SymbolId, now: Nanos) {
        self.drift_alarms += 1;
        self.last_drift = Some((symbol, self.clock.unix_nanos()));
        self.metrics.drift_events.inc();
        let name = self.symbols.get(symbol as usize).map(String::as_str).unwrap_or("?");
        match self.drift_cfg.action {
            DriftAction::Log => log::warn!("model drift detected on {name} (Page-Hinkley alarm {})", self.drift_alarms),
            DriftAction::Pause => {
                let pause = self.drift_cfg.pause_for;
                self.paused_until = Some(now.saturating_add(pause.as_nanos() as Nanos));
                self.metrics.trading_paused.set(1);
                log::warn!(
                    "model drift detected on {name} (Page-Hinkley alarm {}): refusing new signals for {}",
                    self.drift_alarms,
                    crate::config::format_duration(pause)
                );
            }
        }
    }

    /// The earliest time the core needs `poll_venue` again.
    pub fn next_deadline(&self) -> Option<Nanos> {
        match (self.venue.next_deadline(), self.paused_until) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Stops taking new signals (shutdown); ticks still mark the books and settle orders in flight.
    pub fn stop_accepting(&mut self) {
        self.accepting = false;
    }

    pub fn is_accepting(&self) -> bool {
        self.accepting
    }

    /// True when no order is in flight anywhere (resting stop-losses and take-profits do not
    /// count: they work until cancelled, mt5bot running or not).
    pub fn is_idle(&self) -> bool {
        let resting = self.executor.open_order_count() - self.executor.unsettled_count();
        self.executor.unsettled_count() == 0 && self.venue.open_orders() <= resting
    }

    pub fn summary(&self) -> Summary {
        Summary {
            trades: self.executor.trades(),
            open_orders: self.executor.open_order_count(),
            queued: self.queue.len(),
            positions: self.symbols.iter().cloned().zip(self.executor.positions().iter().copied()).collect(),
            drift_alarms: self.drift_alarms,
            paused: self.paused_until.is_some() || self.trading.state == TradingState::Halted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::domain::clock::ManualClock;
    use crate::domain::types::Side;
    use crate::domain::types::TradingState;
    use crate::domain::types::{Level, Stops};
    use crate::telemetry::metrics::Metrics;
    use crate::venue::feed::Feed;
    use crate::venue::paper::PaperVenue;

    type Core = TradingCore<PaperVenue, ManualClock>;

    fn core(cfg: &Config) -> (Core, Metrics) {
        let metrics = Metrics::new();
        let p = &cfg.venue.paper;
        let venue = PaperVenue::new(p, cfg.feed.symbols.len(), cfg.risk.max_open_orders);
        let names: Vec<String> = cfg.feed.symbols.iter().map(|s| s.name.clone()).collect();
        let em = metrics.engine("paper", &names);
        (TradingCore::new(cfg, venue, ManualClock::default(), em, "T"), metrics)
    }

    /// Runs the synthetic feed for `ms` milliseconds of fake time; returns the model's orders.
    fn run(cfg: &Config, ms: u64) -> (Core, Metrics) {
        let (mut c, m) = core(cfg);
        let mut feed = Feed::new(&cfg.feed, 0).expect("feed");
        for t in 0..ms {
            c.clock().set(t * 1_000_000);
            feed.begin_turn();
            while let Some(tick) = feed.poll(t * 1_000_000) {
                c.on_tick(&tick);
            }
            c.poll_venue();
        }
        (c, m)
    }

    #[test]
    fn trades_on_the_embedded_default() {
        let cfg = Config::embedded();
        let (c, m) = run(&cfg, 20_000);
        assert!(m.trade_count.get() > 10, "trades: {}", m.trade_count.get());
        assert_eq!(m.trade_count.get(), c.executor().trades());
        assert_eq!(m.ticks.get(), 20_000);
        assert!(m.tick_to_order.get_sample_count() > 10);
        assert_eq!(
            m.orders_sent.get(),
            m.signals_received.with_label_values(&["model"]).get()
                - DropReason::ALL.iter().map(|r| m.signals_dropped.with_label_values(&[r.as_str()]).get()).sum::<u64>()
        );
        for p in c.executor().positions() {
            assert!(p.qty.abs() <= cfg.risk.max_position);
        }
    }

    #[test]
    fn same_seed_same_trades() {
        let cfg = Config::embedded();
        let (a, _) = run(&cfg, 5_000);
        let (b, _) = run(&cfg, 5_000);
        assert_eq!(a.summary(), b.summary());
        let mut other = cfg.clone();
        if let crate::config::FeedSource::Synthetic { seed, .. } = &mut other.feed.source {
            *seed = 7;
        }
        let (c, _) = run(&other, 5_000);
        assert_ne!(a.summary(), c.summary());
    }

    fn ext(id: &str, side: Side, qty: f64) -> Signal {
        Signal::market(SignalId::parse(id).expect("id"), 0, side, qty)
    }

    #[test]
    fn full_queue_refuses_and_counts() {
        let mut cfg = Config::embedded();
        cfg.queue_capacity = 2;
        let (mut c, m) = core(&cfg);
        assert!(c.offer(ext("a", Side::Buy, 1.0)).is_ok());
        assert!(c.offer(ext("b", Side::Buy, 1.0)).is_ok());
        assert_eq!(c.offer(ext("c", Side::Buy, 1.0)), Err(DropReason::QueueFull));
        assert_eq!(m.signals_dropped.with_label_values(&["queue_full"]).get(), 1);
        assert_eq!(m.queue_depth.get(), 2);
        c.drain();
        assert_eq!(m.queue_depth.get(), 2, "no quote yet: they wait for one");
        c.clock().set(cfg.queue_max_wait.as_nanos() as u64 + 1);
        c.drain();
        assert_eq!(m.queue_depth.get(), 0);
        // Still no quote after queue.max_wait: both refused.
        assert_eq!(m.signals_dropped.with_label_values(&["no_quote"]).get(), 2);
    }

    #[test]
    fn lot_rules_refuse_external_quantities_and_round_the_model_down() {
        let mut cfg = Config::embedded();
        cfg.feed.symbols[0].min_qty = 0.1;
        cfg.feed.symbols[0].qty_step = 0.05;
        let (c, _) = core(&cfg);
        assert!(c.check_lot(0, 5e-324).expect_err("tiny").contains("minimum lot"));
        assert!(c.check_lot(0, 0.12).expect_err("off step").contains("lot steps"));
        assert!(c.check_lot(0, 0.15).is_ok());
        assert!(c.check_lot(0, 0.3).is_ok(), "0.3 / 0.05 is 5.999... in floats and still a whole number");
        assert_eq!(c.model_lot(0, 0.33), Some(0.3));
        assert_eq!(c.model_lot(0, 0.09), None);
        assert!((c.model_lot(0, 0.349).expect("lot") - 0.3).abs() < 1e-12);
    }

    #[test]
    fn external_signal_becomes_a_fill_after_latency() {
        let cfg = Config::embedded();
        let (mut c, m) = core(&cfg);
        c.on_tick(&Tick { symbol: 0, bid: 1.0, ask: 1.0002, recv_ns: 0 });
        c.offer(ext("x1", Side::Buy, 2.0)).expect("queued");
        c.drain();
        assert_eq!(m.orders_sent.get(), 1);
        assert!(!c.is_idle());
        c.clock().set(2_000_000);
        c.poll_venue();
        assert_eq!(m.trade_count.get(), 1);
        assert_eq!(c.executor().position(0).qty, 2.0);
        assert_eq!(m.position.with_label_values(&["EURUSD"]).get(), 2.0);
        assert!(c.is_idle());
        // A repeated id is refused on offer, before it could wait in the queue.
        assert_eq!(c.offer(ext("x1", Side::Buy, 1.0)), Err(DropReason::Duplicate));
        assert_eq!(m.queue_depth.get(), 0);
        assert_eq!(m.signals_dropped.with_label_values(&["duplicate"]).get(), 1);
    }

    /// A core on the embedded default with `protection:` from `yaml`, long 2 EURUSD at about 1.0002.
    fn long_core(yaml: &str) -> (Core, Metrics) {
        let mut cfg = Config::parse(&format!("model:\n  threshold_bps: 10000\n{yaml}"), "t.yaml").expect("config");
        cfg.risk.max_position = 100.0;
        let (mut c, m) = core(&cfg);
        c.on_tick(&Tick { symbol: 0, bid: 1.0, ask: 1.0002, recv_ns: 0 });
        c.offer(ext("l1", Side::Buy, 2.0)).expect("queued");
        c.drain();
        c.clock().set(2_000_000);
        c.poll_venue();
        assert_eq!(c.executor().position(0).qty, 2.0);
        (c, m)
    }

    #[test]
    fn a_tripped_breaker_halts_is_counted_never_loosens_and_resumes_only_after_resume_after() {
        let yaml = "protection:\n  starting_balance: 1000\n  max_position_loss:\n    amount: 0.5\n    action: reducing\n    resume_after: 10s\n";
        let (mut c, m) = long_core(yaml);
        c.on_tick(&Tick { symbol: 0, bid: 0.9, ask: 0.9002, recv_ns: 2_000_000 });
        assert_eq!(c.trading().state, TradingState::Active, "0.2 open loss is under 0.5");
        c.set_trading_state(TradingState::Active, "operator", "");
        c.on_tick(&Tick { symbol: 0, bid: 0.7, ask: 0.7002, recv_ns: 2_000_000 });
        assert_eq!((c.trading().state, c.trading().by.as_str()), (TradingState::Reducing, "max_position_loss"));
        assert!(c.trading().reason.contains("open loss 0.60"), "{}", c.trading().reason);
        assert_eq!(m.breaker_trips.with_label_values(&["max_position_loss"]).get(), 1);
        assert_eq!(c.offer(ext("more", Side::Buy, 1.0)), Err(DropReason::Reducing));
        // Halted by the operator: the breaker does not loosen it to reducing, nor count a trip.
        c.set_trading_state(TradingState::Halted, "operator", "look");
        c.on_tick(&Tick { symbol: 0, bid: 0.6, ask: 0.6002, recv_ns: 2_000_000 });
        assert_eq!(c.trading().state, TradingState::Halted);
        assert_eq!(m.breaker_trips.with_label_values(&["max_position_loss"]).get(), 1);
        // resume_after only resumes what its breaker set.
        c.clock().set(20_000_000_000);
        c.poll_venue();
        assert_eq!((c.trading().state, c.trading().by.as_str()), (TradingState::Halted, "operator"));
        c.set_trading_state(TradingState::Active, "operator", "");
        c.on_tick(&Tick { symbol: 0, bid: 0.6, ask: 0.6002, recv_ns: 20_000_000_000 });
        assert_eq!(c.trading().state, TradingState::Reducing, "still at the limit: trips again");
        c.clock().set(29_000_000_000);
        c.poll_venue();
        assert_eq!(c.trading().state, TradingState::Reducing, "not yet 10 s");
        c.clock().set(30_000_000_001);
        c.poll_venue();
        assert_eq!((c.trading().state, c.trading().by.as_str()), (TradingState::Active, "resume_after"));
    }

    #[test]
    fn a_flatten_breaker_halts_and_closes_the_position() {
        let (mut c, m) = long_core("protection:\n  max_drawdown:\n    fraction: 0.0001\n    action: flatten\n");
        c.on_tick(&Tick { symbol: 0, bid: 0.5, ask: 0.5002, recv_ns: 2_000_000 });
        assert_eq!((c.trading().state, c.trading().by.as_str()), (TradingState::Halted, "max_drawdown"));
        assert_eq!(m.signals_received.with_label_values(&["control"]).get(), 1, "one closing order");
        c.clock().set(5_000_000);
        c.poll_venue();
        assert_eq!(c.executor().position(0).qty, 0.0, "flat");
        assert!(m.equity.get() < 10_000.0 && m.drawdown_ratio.get() > 0.0);
        // A snapshot keeps the baselines and the state; a restore takes them back.
        let snap = c.snapshot();
        assert_eq!(snap.trading.as_ref().map(|t| t.by.as_str()), Some("max_drawdown"));
        let base = snap.protection.expect("baselines");
        assert!(base.peak_equity >= 10_000.0, "{base:?}");
    }

    /// A signal with stops, as the ingress makes it.
    fn protected(id: &str, side: Side, qty: f64, sl: Level, tp: Level) -> Signal {
        Signal { stops: Stops { sl, tp }, ..ext(id, side, qty) }
    }

    #[test]
    fn a_crossed_stop_loss_closes_the_position_once_even_while_halted() {
        let mut cfg = Config::parse("model:\n  threshold_bps: 10000\n", "t.yaml").expect("config");
        cfg.risk.max_position = 100.0;
        let (mut c, m) = core(&cfg);
        c.on_tick(&Tick { symbol: 0, bid: 1.0, ask: 1.0002, recv_ns: 0 });
        // 100 bps under the ask the buy takes; a take-profit 50 bps over it.
        c.offer(protected("p1", Side::Buy, 2.0, Level::Bps(100.0), Level::Bps(50.0))).expect("queued");
        c.drain();
        c.clock().set(2_000_000);
        c.poll_venue();
        let (sl, tp) = c.position_stops(0);
        assert!((sl - 1.0002 * 0.99).abs() < 1e-12 && (tp - 1.0002 * 1.005).abs() < 1e-12, "{sl} {tp}");
        let s = c.status();
        assert_eq!((s.positions[0].sl, s.positions[0].stops_held_by), (Some(sl), Some("mt5bot")));
        // Halted by the operator: a protective exit still goes out, it only closes.
        c.set_trading_state(TradingState::Halted, "operator", "");
        c.on_tick(&Tick { symbol: 0, bid: 0.995, ask: 0.9952, recv_ns: 3_000_000 });
        assert_eq!(m.orders_sent.get(), 1, "above the stop: nothing");
        c.on_tick(&Tick { symbol: 0, bid: 0.99, ask: 0.9902, recv_ns: 3_000_000 });
        assert_eq!(m.orders_sent.get(), 2, "the exit");
        // Crossed again while the exit is in flight: no second one.
        c.on_tick(&Tick { symbol: 0, bid: 0.98, ask: 0.9802, recv_ns: 3_000_000 });
        c.on_tick(&Tick { symbol: 0, bid: 0.97, ask: 0.9702, recv_ns: 3_000_000 });
        assert_eq!(m.orders_sent.get(), 2, "one exit only");
        assert_eq!(m.protective_exits.with_label_values(&["sl"]).get(), 1);
        assert_eq!(m.signals_received.with_label_values(&["protection"]).get(), 1);
        c.clock().set(10_000_000);
        c.poll_venue();
        assert_eq!(c.executor().position(0).qty, 0.0, "flat");
        assert_eq!(c.position_stops(0), (0.0, 0.0), "a flat position carries no stops");
        c.on_tick(&Tick { symbol: 0, bid: 0.9, ask: 0.9002, recv_ns: 10_000_000 });
        assert_eq!(m.orders_sent.get(), 2);
    }

    /// A core on a paper venue that takes resting stop-losses and take-profits, long 2 at 1.0002
    /// with a stop-loss at 0.99 and a take-profit at 1.01, both resting (accepted) at the venue.
    fn long_with_resting_stops() -> (Core, Metrics) {
        let mut cfg = Config::parse("model:\n  threshold_bps: 10000\n", "t.yaml").expect("config");
        cfg.risk.max_position = 100.0;
        cfg.venue.paper.slippage_bps = 0.0;
        let metrics = Metrics::new();
        let venue = PaperVenue::new(&cfg.venue.paper, cfg.feed.symbols.len(), cfg.risk.max_open_orders)
            .with_resting_stops(true);
        let names: Vec<String> = cfg.feed.symbols.iter().map(|s| s.name.clone()).collect();
        let mut c = TradingCore::new(&cfg, venue, ManualClock::default(), metrics.engine("paper", &names), "T");
        c.on_tick(&Tick { symbol: 0, bid: 1.0, ask: 1.0002, recv_ns: 0 });
        c.offer(protected("p1", Side::Buy, 2.0, Level::Price(0.99), Level::Price(1.01))).expect("queued");
        c.drain();
        for ms in [2, 4] {
            c.clock().set(ms * 1_000_000);
            c.poll_venue();
        }
        assert_eq!(c.executor().position(0).qty, 2.0);
        (c, metrics)
    }

    /// The resting pair of symbol 0: (kind, side, quantity left, price) of each.
    fn resting(c: &Core) -> Vec<(OrderKind, Side, f64, f64)> {
        StopKind::ALL
            .iter()
            .filter_map(|&k| c.executor().resting(0, k))
            .map(|o| (o.request.kind, o.request.side, o.remaining(), o.request.price))
            .collect()
    }

    #[test]
    fn a_venue_that_rests_stops_gets_a_stop_and_a_limit_for_the_position_and_one_fill_cancels_the_other() {
        let (mut c, m) = long_with_resting_stops();
        assert_eq!(resting(&c), [(OrderKind::Stop, Side::Sell, 2.0, 0.99), (OrderKind::Limit, Side::Sell, 2.0, 1.01)]);
        assert!(c
            .executor()
            .open_orders()
            .all(|o| o.request.until_cancelled && o.request.client_id.as_str().starts_with("T-r")));
        assert!(c.is_idle(), "resting orders are not orders in flight");
        assert_eq!(c.status().positions[0].stops_held_by, Some("paper"));
        // The mark crosses the stop-loss: the venue's stop fills, the take-profit is cancelled,
        // and mt5bot sends no exit of its own.
        c.clock().set(10_000_000);
        c.on_tick(&Tick { symbol: 0, bid: 0.985, ask: 0.9852, recv_ns: 10_000_000 });
        assert_eq!(c.executor().position(0).qty, 0.0);
        assert_eq!(c.executor().open_order_count(), 0, "the take-profit was cancelled");
        assert_eq!(m.protective_exits.with_label_values(&["sl"]).get(), 1);
        assert_eq!(m.orders_sent.get(), 3, "the entry and the pair: no exit of mt5bot's own");
        c.clock().set(2_000_000_000);
        c.poll_venue();
        assert_eq!(c.executor().open_order_count(), 0, "nothing rests for a flat position");
    }

    #[test]
    fn a_resting_order_without_a_free_slot_is_tried_again_later_and_later() {
        let mut cfg = Config::parse("model:\n  threshold_bps: 10000\n", "t.yaml").expect("config");
        cfg.risk.max_position = 100.0;
        cfg.risk.max_open_orders = 2;
        let metrics = Metrics::new();
        let venue = PaperVenue::new(&cfg.venue.paper, cfg.feed.symbols.len(), cfg.risk.max_open_orders)
            .with_resting_stops(true);
        let names: Vec<String> = cfg.feed.symbols.iter().map(|s| s.name.clone()).collect();
        let mut c = TradingCore::new(&cfg, venue, ManualClock::default(), metrics.engine("paper", &names), "T");
        c.on_tick(&Tick { symbol: 0, bid: 1.0, ask: 1.0002, recv_ns: 0 });
        // A limit far under the market keeps one of the two slots.
        c.offer(Signal { kind: OrderKind::Limit, price: 0.5, ..ext("far", Side::Buy, 1.0) }).expect("queued");
        c.offer(protected("p1", Side::Buy, 2.0, Level::Price(0.99), Level::Price(1.01))).expect("queued");
        c.drain();
        for ms in [2, 4] {
            c.clock().set(ms * 1_000_000);
            c.poll_venue();
        }
        assert_eq!(c.executor().position(0).qty, 2.0);
        assert_eq!(resting(&c), [(OrderKind::Stop, Side::Sell, 2.0, 0.99)], "the stop-loss took the last slot");
        assert_eq!(c.rest_retry[0][StopKind::TakeProfit as usize].1, 1);
        // Not before a second, then again after two more.
        for (ms, tries) in [(900, 1), (1_010, 2), (2_900, 2), (3_020, 3)] {
            c.clock().set(ms * 1_000_000);
            c.poll_venue();
            assert_eq!(c.rest_retry[0][StopKind::TakeProfit as usize].1, tries, "at {ms} ms");
        }
    }

    #[test]
    fn a_flatten_cancels_the_resting_pair_and_places_none_again() {
        let (mut c, _) = long_with_resting_stops();
        let report = c.flatten();
        assert_eq!(report.cancel_requested.len(), 2, "{report:?}");
        assert_eq!(report.orders.len(), 1, "one closing order: {report:?}");
        assert!(resting(&c).is_empty(), "the closing order covers the position");
        c.clock().set(10_000_000);
        c.poll_venue();
        c.clock().set(2_000_000_000);
        c.poll_venue();
        assert_eq!((c.executor().position(0).qty, c.executor().open_order_count()), (0.0, 0));
    }

    #[test]
    fn resting_stops_follow_the_position_as_it_grows_and_shrinks() {
        let (mut c, _) = long_with_resting_stops();
        // Adding 1 (the position's levels go with it): the pair is replaced by one for 3.
        c.offer(ext("add", Side::Buy, 1.0)).expect("queued");
        c.drain();
        c.clock().set(10_000_000);
        c.poll_venue();
        assert_eq!(c.executor().position(0).qty, 3.0);
        assert_eq!(resting(&c), [(OrderKind::Stop, Side::Sell, 3.0, 0.99), (OrderKind::Limit, Side::Sell, 3.0, 1.01)]);
        // Selling 2: while the sale is in flight the pair covers only the 1 it leaves, and after.
        c.offer(ext("cut", Side::Sell, 2.0)).expect("queued");
        c.drain();
        assert_eq!(resting(&c), [(OrderKind::Stop, Side::Sell, 1.0, 0.99), (OrderKind::Limit, Side::Sell, 1.0, 1.01)]);
        c.clock().set(20_000_000);
        c.poll_venue();
        assert_eq!(c.executor().position(0).qty, 1.0);
        assert_eq!(resting(&c), [(OrderKind::Stop, Side::Sell, 1.0, 0.99), (OrderKind::Limit, Side::Sell, 1.0, 1.01)]);
        // Never more than the pair at the venue, whatever came and went.
        assert_eq!(c.executor().open_order_count(), 2);
        // The take-profit fills: flat, and the stop-loss goes.
        c.clock().set(30_000_000);
        c.on_tick(&Tick { symbol: 0, bid: 1.0105, ask: 1.0107, recv_ns: 30_000_000 });
        assert_eq!(c.executor().position(0).qty, 0.0);
        assert_eq!(c.executor().open_order_count(), 0);
    }

    #[test]
    fn without_a_resting_order_of_the_crossed_kind_mt5bot_closes_the_position_itself() {
        let (mut c, m) = long_with_resting_stops();
        // The take-profit is gone at the venue (cancelled there); it is placed again within a
        // second, but a cross before that is mt5bot's to act on.
        let tp = c.executor().resting(0, StopKind::TakeProfit).map(|o| o.request).expect("tp");
        c.rest_retry[0][StopKind::TakeProfit as usize] = (u64::MAX, 1);
        c.events.push(VenueEvent::Cancelled { key: tp.key });
        c.apply_events(5_000_000);
        assert!(c.executor().resting(0, StopKind::TakeProfit).is_none());
        c.clock().set(6_000_000);
        c.on_tick(&Tick { symbol: 0, bid: 1.0105, ask: 1.0107, recv_ns: 6_000_000 });
        assert_eq!(m.protective_exits.with_label_values(&["tp"]).get(), 1, "mt5bot's own take-profit exit");
        assert!(c.executor().open_orders().any(|o| o.request.client_id.as_str().starts_with("T-tp")));
        // While it is in flight the resting stop-loss covers nothing and is cancelled.
        assert!(c.executor().resting(0, StopKind::StopLoss).is_none());
    }

    /// A core long 2 at 1.0002 with a stop-loss at `sl` and no take-profit.
    fn long_with_a_stop_at(cfg: &Config, sl: f64) -> (Core, Metrics) {
        let (mut c, m) = core(cfg);
        c.on_tick(&Tick { symbol: 0, bid: 1.0, ask: 1.0002, recv_ns: 0 });
        c.offer(protected("p1", Side::Buy, 2.0, Level::Price(sl), Level::None)).expect("queued");
        c.drain();
        c.clock().set(2_000_000);
        c.poll_venue();
        assert_eq!(c.executor().position(0).qty, 2.0);
        (c, m)
    }

    #[test]
    fn a_refused_exit_is_tried_again_later_and_later_and_halts_on_the_third_refusal() {
        let mut cfg = Config::parse("model:\n  threshold_bps: 10000\n", "t.yaml").expect("config");
        cfg.risk.max_position = 100.0;
        cfg.risk.max_open_orders = 2;
        let (mut c, m) = long_with_a_stop_at(&cfg, 0.99);
        // Two resting limits far under the market take every order slot the exit would need.
        for id in ["l1", "l2"] {
            c.offer(Signal { kind: OrderKind::Limit, price: 0.5, ..ext(id, Side::Buy, 1.0) }).expect("queued");
        }
        c.drain();
        assert_eq!(c.executor().open_order_count(), 2);
        let refused = || m.protective_exits_refused.with_label_values(&["sl"]).get();
        let crossed = |c: &mut Core, ms: u64| {
            c.clock().set(ms * 1_000_000);
            c.on_tick(&Tick { symbol: 0, bid: 0.98, ask: 0.9802, recv_ns: ms * 1_000_000 });
        };
        crossed(&mut c, 3);
        assert_eq!(refused(), 1);
        // Tried again after 1 s, then after 2 s more: not before.
        crossed(&mut c, 900);
        assert_eq!(refused(), 1, "waits 1 s");
        crossed(&mut c, 1_003);
        assert_eq!((refused(), c.trading().state), (2, TradingState::Active));
        crossed(&mut c, 2_900);
        assert_eq!(refused(), 2, "waits 2 s after the second");
        crossed(&mut c, 3_003);
        assert_eq!(refused(), 3);
        let t = c.trading();
        assert_eq!((t.state, t.by.as_str()), (TradingState::Halted, "protective_exit"));
        assert!(t.reason.contains("max_open_orders"), "{}", t.reason);
        // A slot frees: the next try (4 s later) goes out, and only closes.
        let (cancelled, _) = c.cancel_all();
        assert_eq!(cancelled.len(), 2);
        c.clock().set(4_000_000_000);
        c.poll_venue();
        crossed(&mut c, 7_002);
        assert_eq!(refused(), 3, "still waiting");
        crossed(&mut c, 7_004);
        assert_eq!(m.protective_exits.with_label_values(&["sl"]).get(), 1, "the exit went out");
        c.clock().set(7_100_000_000);
        c.poll_venue();
        assert_eq!(c.executor().position(0).qty, 0.0, "flat");
        assert_eq!(c.trading().state, TradingState::Halted, "the halt waits for an operator");
    }

    #[test]
    fn a_limit_exit_the_market_ran_away_from_is_cancelled_and_sent_again_at_the_new_mark() {
        let yaml = "model:\n  threshold_bps: 10000\nprotection:\n  exit_order: limit\n  exit_limit_bps: 20\n";
        let mut cfg = Config::parse(yaml, "t.yaml").expect("config");
        cfg.risk.max_position = 100.0;
        let (mut c, m) = long_with_a_stop_at(&cfg, 0.99);
        c.on_tick(&Tick { symbol: 0, bid: 0.99, ask: 0.9902, recv_ns: 3_000_000 });
        assert_eq!(m.orders_sent.get(), 2, "the exit, a sell limit 20 bps under the bid");
        // The bid falls through the exit's limit before the venue has it: nothing fills, and
        // nothing rests.
        c.on_tick(&Tick { symbol: 0, bid: 0.98, ask: 0.9802, recv_ns: 3_000_000 });
        c.clock().set(6_000_000);
        c.poll_venue();
        assert_eq!((c.executor().position(0).qty, c.executor().open_order_count()), (2.0, 0));
        // Still under the stop: a new exit at the new mark, which fills.
        c.on_tick(&Tick { symbol: 0, bid: 0.979, ask: 0.9792, recv_ns: 6_000_000 });
        assert_eq!(m.orders_sent.get(), 3);
        c.clock().set(9_000_000);
        c.poll_venue();
        assert_eq!(c.executor().position(0).qty, 0.0, "flat");
        assert_eq!(m.protective_exits.with_label_values(&["sl"]).get(), 2);
    }

    #[test]
    fn a_short_takes_profit_at_the_ask_and_an_order_adding_to_it_keeps_its_levels() {
        let mut cfg = Config::parse("model:\n  threshold_bps: 10000\n", "t.yaml").expect("config");
        cfg.risk.max_position = 100.0;
        let (mut c, m) = core(&cfg);
        c.on_tick(&Tick { symbol: 0, bid: 1.0, ask: 1.0002, recv_ns: 0 });
        c.offer(protected("s1", Side::Sell, 1.0, Level::Price(1.01), Level::Price(0.99))).expect("queued");
        c.drain();
        c.clock().set(2_000_000);
        c.poll_venue();
        assert_eq!(c.position_stops(0), (1.01, 0.99));
        // A second sell without levels adds to the short and keeps them.
        c.offer(ext("s2", Side::Sell, 1.0)).expect("queued");
        c.drain();
        c.clock().set(4_000_000);
        c.poll_venue();
        assert_eq!((c.executor().position(0).qty, c.position_stops(0)), (-2.0, (1.01, 0.99)));
        // The bid under the take-profit but the ask, where a short closes, not yet.
        c.on_tick(&Tick { symbol: 0, bid: 0.9899, ask: 0.9901, recv_ns: 4_000_000 });
        assert_eq!(m.orders_sent.get(), 2);
        c.on_tick(&Tick { symbol: 0, bid: 0.9897, ask: 0.9899, recv_ns: 4_000_000 });
        assert_eq!(m.orders_sent.get(), 3);
        assert_eq!(m.protective_exits.with_label_values(&["tp"]).get(), 1);
        c.clock().set(8_000_000);
        c.poll_venue();
        assert_eq!(c.executor().position(0).qty, 0.0);
        assert!(c.executor().position(0).realized_pnl > 0.0, "a profit");
    }

    #[test]
    fn a_restart_inside_the_closing_period_still_goes_flat_before_the_close() {
        let text = "model:\n  threshold_bps: 10000\nsessions:\n  default: f\n  calendars:\n    f:\n      like: fx\n      close_before: 10m\n      at_close: flatten\n";
        let cfg = Config::parse(text, "t.yaml").expect("config");
        // Before: long 1 on Thursday, when fx is open.
        let (mut c, _) = core(&cfg);
        c.on_tick(&Tick { symbol: 0, bid: 1.0, ask: 1.0002, recv_ns: 0 });
        c.offer(ext("r1", Side::Buy, 1.0)).expect("queued");
        c.drain();
        c.clock().set(2_000_000);
        c.poll_venue();
        assert_eq!(c.executor().position(0).qty, 1.0);
        let snap = c.snapshot();
        // The restart: Friday 16:55 New York, five minutes before the close.
        let clock = ManualClock::default();
        clock.set_epoch(crate::support::timefmt::parse_timestamp("2026-01-16T21:55:00Z").expect("ts"));
        let metrics = Metrics::new();
        let names: Vec<String> = cfg.feed.symbols.iter().map(|s| s.name.clone()).collect();
        let venue = PaperVenue::new(&cfg.venue.paper, names.len(), cfg.risk.max_open_orders);
        let mut again = TradingCore::new(&cfg, venue, clock, metrics.engine("paper", &names), "T");
        again.restore(&snap).expect("restore");
        assert_eq!(again.status().markets[0].phase, "closing");
        again.on_tick(&Tick { symbol: 0, bid: 1.0, ask: 1.0002, recv_ns: 0 });
        for ms in [1_000, 1_002, 2_000, 2_002] {
            again.clock().set(ms * 1_000_000);
            again.poll_venue();
        }
        assert_eq!(again.executor().position(0).qty, 0.0, "closed within a second of the restart");
        assert_eq!(metrics.orders_sent.get(), 1, "one closing order, not one a second");
    }

    #[test]
    fn stops_survive_a_snapshot_and_a_flip_without_levels_drops_them() {
        let mut cfg = Config::parse("model:\n  threshold_bps: 10000\n", "t.yaml").expect("config");
        cfg.risk.max_position = 100.0;
        let (mut c, _) = core(&cfg);
        c.on_tick(&Tick { symbol: 0, bid: 1.0, ask: 1.0002, recv_ns: 0 });
        c.offer(protected("k1", Side::Buy, 1.0, Level::Price(0.9), Level::None)).expect("queued");
        // Waiting in the queue, the stops are in a snapshot too.
        let queued = c.snapshot();
        assert_eq!((queued.queued[0].sl, queued.queued[0].tp), (0.9, 0.0));
        c.drain();
        c.clock().set(2_000_000);
        c.poll_venue();
        let snap = c.snapshot();
        assert_eq!((snap.positions[0].sl, snap.positions[0].tp), (0.9, 0.0));
        let (mut again, _) = core(&cfg);
        again.restore(&snap).expect("restore");
        assert_eq!(again.position_stops(0), (0.9, 0.0), "a restart keeps the stop");
        // A sell of 3 flips the long to a short of 2 and carries none: the old stop is gone.
        again.on_tick(&Tick { symbol: 0, bid: 1.0, ask: 1.0002, recv_ns: 0 });
        again.offer(ext("k2", Side::Sell, 3.0)).expect("queued");
        again.drain();
        again.clock().set(2_000_000);
        again.poll_venue();
        assert_eq!((again.executor().position(0).qty, again.position_stops(0)), (-2.0, (0.0, 0.0)));
    }

    #[test]
    fn paper_commissions_are_booked_with_their_fills_and_kept_in_a_snapshot() {
        let mut cfg = Config::parse("model:\n  threshold_bps: 10000\n", "t.yaml").expect("config");
        cfg.risk.max_position = 100.0;
        let metrics = Metrics::new();
        let names: Vec<String> = cfg.feed.symbols.iter().map(|s| s.name.clone()).collect();
        let venue =
            PaperVenue::new(&cfg.venue.paper, names.len(), cfg.risk.max_open_orders).with_commissions(vec![2.5, 0.0]);
        let mut c = TradingCore::new(&cfg, venue, ManualClock::default(), metrics.engine("paper", &names), "T");
        c.on_tick(&Tick { symbol: 0, bid: 1.0, ask: 1.0, recv_ns: 0 });
        c.offer(ext("c1", Side::Buy, 2.0)).expect("queued");
        c.drain();
        c.clock().set(2_000_000);
        c.poll_venue();
        assert_eq!(metrics.commissions_paid.get(), 5.0, "2.5 a lot of 2");
        assert_eq!(metrics.balance.get(), 10_000.0 - 5.0);
        let snap = c.snapshot();
        assert_eq!(snap.commissions, 5.0);
        let (mut again, m2) = core(&cfg);
        again.restore(&snap).expect("restore");
        assert_eq!((m2.commissions_paid.get(), m2.balance.get()), (5.0, 9_995.0));
    }

    #[test]
    fn drift_pause_refuses_signals_until_it_ends() {
        let mut cfg = Config::embedded();
        cfg.drift.action = DriftAction::Pause;
        cfg.drift.min_samples = 10;
        cfg.drift.threshold = 5.0;
        cfg.drift.pause_for = std::time::Duration::from_secs(1);
        let (mut c, m) = core(&cfg);
        // Quiet prices, then violent ones: the prediction error jumps.
        let mut mid = 1.0;
        for i in 0..400u64 {
            mid *= if i < 200 {
                1.0
            } else if i % 2 == 0 {
                1.01
            } else {
                1.0 / 1.01
            };
            c.on_tick(&Tick { symbol: 0, bid: mid, ask: mid, recv_ns: 0 });
        }
        assert!(m.drift_events.get() >= 1);
        assert_eq!(m.trading_paused.get(), 1);
        assert_eq!(c.offer(ext("p", Side::Buy, 1.0)), Err(DropReason::Paused));
        assert_eq!(c.next_deadline(), Some(1_000_000_000));
        c.clock().set(1_000_000_000);
        c.poll_venue();
        assert_eq!(m.trading_paused.get(), 0);
        assert!(c.offer(ext("p", Side::Buy, 1.0)).is_ok());
    }

    #[test]
    fn stopping_refuses_new_signals_but_settles_orders() {
        let cfg = Config::embedded();
        let (mut c, m) = core(&cfg);
        c.on_tick(&Tick { symbol: 0, bid: 1.0, ask: 1.0, recv_ns: 0 });
        c.offer(ext("s1", Side::Sell, 1.0)).expect("queued");
        c.drain();
        c.stop_accepting();
        assert_eq!(c.offer(ext("s2", Side::Sell, 1.0)), Err(DropReason::Stopping));
        c.clock().set(10_000_000);
        c.poll_venue();
        assert!(c.is_idle());
        assert_eq!(m.trade_count.get(), 1);
        assert_eq!(c.summary().positions[0].1.qty, -1.0);
    }
}
