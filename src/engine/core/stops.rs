//! Stop-loss and take-profit: the protective levels a position carries, and the closing order the
//! engine sends when the mark crosses one (where the venue does not hold them itself).
//!
//! A position takes the levels of the order that opened it, flipped it or added to it (an order
//! without levels that adds to a protected position is sent with the position's, so a venue
//! holding them keeps them); it loses them when it is flat. Levels are journaled when they change
//! and kept in checkpoints, so a restart keeps every protective exit.
//!
//! A protective exit is a market order (or a marketable limit, `protection.exit_order: limit`, for
//! venues that take only limits) for what the position has left once the orders already
//! closing it are counted: the exit in flight itself, so a tick that crosses again, a restart, or a
//! repeated report never sends a second one. It goes out whatever the trading state (it only
//! closes), past the size and rate limits, under its own id (`<run_id>-sl<n>`, `<run_id>-tp<n>`)
//! with the same duplicate rules and journal as every order. A refused exit is tried again after
//! 1 s, then 2, 4, ... up to 30 s; the third refusal in a row halts trading (the position is
//! still open and unprotected, so nothing may add to it while an operator looks).

use super::*;

impl<V: Venue, C: Clock> TradingCore<V, C> {
    /// The stop-loss and take-profit prices of a symbol's position (0 for none).
    pub fn position_stops(&self, symbol: SymbolId) -> (f64, f64) {
        self.stops.get(symbol as usize).copied().unwrap_or_default()
    }

    /// Whether the engine holds the stops (the venue does not).
    pub fn engine_holds_stops(&self) -> bool {
        self.engine_stops
    }

    /// Who holds a position's levels, for the status and the log: `mt5bot`, or the venue's name
    /// (the levels go with the order, or rest at the venue as orders of their own).
    pub(super) fn stops_holder(&self) -> &'static str {
        if self.engine_stops && !self.rest_stops {
            "mt5bot"
        } else {
            self.venue.name()
        }
    }

    /// Keeps `symbol`'s resting stop-loss and take-profit (venues that rest them, see
    /// [`Venue::rests_stops`]) in step with its position: each a closing order for what the
    /// position has left once other closing orders are counted, at its level. One that no longer
    /// fits (the position or a level changed, the position is flat) is cancelled, and its
    /// replacement goes out once the cancel is confirmed, so two never work at once; the other of
    /// a pair that filled is cancelled the same way. Nothing while the venue cannot take orders
    /// (tried again once a second).
    pub(super) fn sync_resting_stops(&mut self, symbol: SymbolId, now: Nanos) {
        if !self.rest_stops || !self.venue.ready_for_orders() {
            return;
        }
        let position = self.executor.position(symbol).qty;
        let side = if position > 0.0 { Side::Sell } else { Side::Buy };
        let (sl, tp) = self.position_stops(symbol);
        let uncovered = position.abs() - self.executor.pending_unprotected(symbol, side);
        let qty = ((uncovered.max(0.0)) * 1e8).round() / 1e8;
        for kind in StopKind::ALL {
            let level = if kind == StopKind::StopLoss { sl } else { tp };
            let wanted = (position.abs() > QTY_EPSILON && level > 0.0 && qty > QTY_EPSILON).then_some(level);
            if let Some(o) = self.executor.resting(symbol, kind).copied() {
                let fits = wanted.is_some_and(|level| {
                    o.request.side == side && (o.remaining() - qty).abs() < QTY_EPSILON && o.request.price == level
                });
                if !fits {
                    // Asked once per sync; a venue with the cancel already out ignores the repeat.
                    if let Err(why) = self.venue.cancel(&o.request, now, &mut self.events) {
                        log::warn!("cannot cancel the resting {} {} yet: {why}", kind.as_str(), o.request.client_id);
                    }
                }
                continue;
            }
            let Some(level) = wanted else { continue };
            if self.rest_retry.get(symbol as usize).is_some_and(|r| now < r[kind as usize].0) {
                continue;
            }
            self.rest_stop(symbol, kind, side, qty, level, now);
        }
    }

    /// An order of `symbol` went out or a fill moved its position: its resting orders are to be
    /// brought in step (after the turn's events).
    #[inline]
    pub(super) fn mark_resting_dirty(&mut self, symbol: SymbolId) {
        if self.rest_stops {
            if let Some(d) = self.rest_dirty.get_mut(symbol as usize) {
                *d = true;
            }
        }
    }

    /// Brings the resting orders of the symbols marked since the last call in step.
    pub(super) fn sync_dirty_resting(&mut self, now: Nanos) {
        if !self.rest_stops {
            return;
        }
        for s in 0..self.rest_dirty.len() {
            if std::mem::take(&mut self.rest_dirty[s]) {
                self.sync_resting_stops(s as SymbolId, now);
            }
        }
        // Cancels a venue answers at once (paper) came in as events.
        if !self.events.is_empty() {
            self.apply_events(now);
        }
    }

    /// A fill of `symbol`'s position: its resting orders are brought in step after the turn's
    /// events; the execution of one is logged and counted.
    pub(super) fn resting_filled(&mut self, symbol: SymbolId, protects: Option<StopKind>, id: SignalId, done: bool) {
        if let Some(d) = self.rest_dirty.get_mut(symbol as usize) {
            *d = true;
        }
        let Some(kind) = protects else { return };
        if let Some(r) = self.rest_retry.get_mut(symbol as usize) {
            r[kind as usize] = (0, 0);
        }
        if done {
            if let Some(c) = self.metrics.protective_exits.get(kind as usize) {
                c.inc();
            }
            log::warn!(
                "{}: the {} resting at {} was executed ({id})",
                self.symbols.get(symbol as usize).map_or("?", String::as_str),
                if kind == StopKind::StopLoss { "stop-loss" } else { "take-profit" },
                self.venue.name()
            );
        }
    }

    /// `symbol`'s resting `kind` was refused (by the venue, or for want of a free order slot,
    /// `why`): it is placed again after 1 s, then 2, 4, ... up to 30 s (mt5bot watches the level
    /// meanwhile, as it does without resting orders).
    pub(super) fn resting_refused(&mut self, symbol: SymbolId, kind: StopKind, id: SignalId, why: &str, now: Nanos) {
        let Some(r) = self.rest_retry.get_mut(symbol as usize).map(|r| &mut r[kind as usize]) else { return };
        r.1 = r.1.saturating_add(1);
        let wait = EXIT_RETRY.saturating_mul(1 << (r.1 - 1).min(5)).min(EXIT_RETRY_MAX);
        r.0 = now.saturating_add(wait);
        log::error!(
            "{}: the resting {} {id} was refused ({why}; {} in a row); mt5bot watches the level itself and tries \
             again in {} s",
            self.symbols.get(symbol as usize).map_or("?", String::as_str),
            kind.as_str(),
            r.1,
            wait / 1_000_000_000
        );
    }

    /// Sends `symbol`'s resting `kind`: a stop order (stop-loss) or a limit order (take-profit)
    /// for `qty` at `level`, until cancelled.
    fn rest_stop(&mut self, symbol: SymbolId, kind: StopKind, side: Side, qty: f64, level: f64, now: Nanos) {
        let id = SignalId::with_counter(&self.rest_prefixes[kind as usize], self.next_model_seq);
        self.next_model_seq += 1;
        let order_kind = if kind == StopKind::StopLoss { OrderKind::Stop } else { OrderKind::Limit };
        let signal = Signal {
            id,
            symbol,
            side,
            qty,
            kind: order_kind,
            price: level,
            source: SignalSource::Protection,
            origin_ns: now,
            reply_to: ReplyTo::NONE,
            stops: Stops::NONE,
        };
        let name = self.symbols.get(symbol as usize).map_or("?", String::as_str);
        let order = match self.executor.create_resting(&signal, kind, now) {
            Ok(order) => order,
            Err(reason) => return self.resting_refused(symbol, kind, id, reason.as_str(), now),
        };
        match self.venue.submit(&order, now) {
            Ok(()) => {
                self.executor.mark_sent(order.key, now);
                self.metrics.orders_sent.inc();
                if let Some(j) = &mut self.journal {
                    j.append(journal::Entry {
                        kind: journal::Kind::Sent,
                        id,
                        symbol,
                        side,
                        order_kind,
                        source: SignalSource::Protection,
                        qty,
                        price: level,
                        unix_ns: self.clock.unix_nanos() as i64,
                        venue_ref: self.venue.order_ref(&id),
                        protects: Some(kind),
                    });
                }
                log::info!(
                    "{name}: {} {qty} at {level} resting at {} as {id} ({} order, until cancelled)",
                    if kind == StopKind::StopLoss { "stop-loss" } else { "take-profit" },
                    self.venue.name(),
                    order_kind.as_str()
                );
            }
            Err(why) => {
                self.metrics.orders_rejected.inc();
                self.executor.apply(&VenueEvent::Rejected { key: order.key, reason: why }, now);
                self.resting_refused(symbol, kind, id, why, now);
            }
        }
        self.metrics.open_orders.set(self.executor.open_order_count() as i64);
    }

    /// An order without levels that adds to a protected position carries the position's.
    #[inline]
    pub(super) fn with_position_stops(&mut self, mut order: OrderRequest) -> OrderRequest {
        if order.sl > 0.0 || order.tp > 0.0 {
            return order;
        }
        let (sl, tp) = self.position_stops(order.symbol);
        if (sl > 0.0 || tp > 0.0) && self.executor.position(order.symbol).qty * order.side.sign() > QTY_EPSILON {
            order.sl = sl;
            order.tp = tp;
            self.executor.set_stops(order.key, sl, tp);
        }
        order
    }

    /// A fill moved a position from `before` to `after`: it takes the order's levels when the
    /// order opened, flipped or added to it, and loses them when flat.
    #[inline]
    pub(super) fn update_stops(&mut self, symbol: SymbolId, before: f64, after: f64, side: Side, sl: f64, tp: f64) {
        let Some(&current) = self.stops.get(symbol as usize) else { return };
        let opened = before.abs() < QTY_EPSILON || before * after < 0.0;
        let next = if after.abs() < QTY_EPSILON {
            (0.0, 0.0)
        } else if after * side.sign() > 0.0 && (opened || after.abs() > before.abs()) {
            if sl > 0.0 || tp > 0.0 {
                (sl, tp)
            } else if opened {
                (0.0, 0.0)
            } else {
                current
            }
        } else {
            current
        };
        if next == current {
            return;
        }
        self.stops[symbol as usize] = next;
        if next == (0.0, 0.0) {
            if let Some(retry) = self.exit_retry_at.get_mut(symbol as usize) {
                *retry = (0, 0);
            }
        }
        let (sl, tp) = (Level::from_parts(next.0, 0.0), Level::from_parts(next.1, 0.0));
        self.journal_levels(journal::Kind::Protect, SignalId::default(), symbol, sl, tp);
        if next != (0.0, 0.0) {
            log::info!(
                "{}: position {after} protected by stop-loss {} and take-profit {} (held by {})",
                self.symbols.get(symbol as usize).map_or("?", String::as_str),
                LevelText(next.0),
                LevelText(next.1),
                self.stops_holder(),
            );
        }
    }

    /// A stop the venue holds was executed: the id its fill is booked under (`sl<ticket>`,
    /// `tp<ticket>`), or `None` when that execution was booked already.
    pub(super) fn venue_stop(&mut self, stop: StopKind, ticket: u64, symbol: SymbolId) -> Option<SignalId> {
        let id = SignalId::with_counter(&self.venue_stop_prefixes[stop as usize], ticket);
        if self.executor.knows(&id) {
            return None;
        }
        if let Some(c) = self.metrics.protective_exits.get(stop as usize) {
            c.inc();
        }
        log::warn!(
            "{}: the {} held by {} was executed (ticket {ticket}); booked as {id}",
            self.symbols.get(symbol as usize).map_or("?", String::as_str),
            if stop == StopKind::StopLoss { "stop-loss" } else { "take-profit" },
            self.venue.name()
        );
        Some(id)
    }

    /// The mark crossed a level of a position the engine protects: closes what is left of it.
    pub(super) fn protective_exit(&mut self, symbol: SymbolId, kind: StopKind, tick: &Tick, now: Nanos) {
        let s = symbol as usize;
        if self.exit_retry_at.get(s).is_some_and(|&(t, _)| now < t) {
            return;
        }
        let qty = self.executor.position(symbol).qty;
        let side = if qty > 0.0 { Side::Sell } else { Side::Buy };
        // A resting order of this kind at the venue closes it there; one of the other kind does not.
        let resting = self.executor.resting(symbol, kind).map_or(0.0, |o| o.remaining());
        let left = qty.abs() - self.executor.pending_unprotected(symbol, side) - resting;
        if left < QTY_EPSILON {
            return;
        }
        let id = SignalId::with_counter(&self.exit_prefixes[kind as usize], self.next_model_seq);
        self.next_model_seq += 1;
        let (order_kind, through_bps) = self.exit_order;
        // A marketable limit: through the side it closes against by the configured margin.
        let price = match (order_kind, side) {
            // `protection.exit_order` is market or limit (a stop is never configured).
            (OrderKind::Market | OrderKind::Stop, _) => 0.0,
            (OrderKind::Limit, Side::Sell) => tick.bid * (1.0 - through_bps * 1e-4),
            (OrderKind::Limit, Side::Buy) => tick.ask * (1.0 + through_bps * 1e-4),
        };
        let signal = Signal {
            id,
            symbol,
            side,
            qty: (left * 1e8).round() / 1e8,
            kind: order_kind,
            price,
            source: SignalSource::Protection,
            origin_ns: tick.recv_ns,
            reply_to: ReplyTo::NONE,
            stops: Stops::NONE,
        };
        self.metrics.received(SignalSource::Protection);
        let (sl, tp) = self.position_stops(symbol);
        let (mark, level) =
            (if qty > 0.0 { tick.bid } else { tick.ask }, if kind == StopKind::StopLoss { sl } else { tp });
        let what = if kind == StopKind::StopLoss { "stop-loss" } else { "take-profit" };
        let refused = match self.executor.create_exit(&signal, now) {
            Err(reason) => {
                self.metrics.dropped(reason);
                Some(reason.as_str())
            }
            Ok(order) => match self.venue.submit(&order, now) {
                Ok(()) => {
                    self.executor.mark_sent(order.key, now);
                    self.metrics.orders_sent.inc();
                    self.mark_resting_dirty(symbol);
                    if let Some(c) = self.metrics.protective_exits.get(kind as usize) {
                        c.inc();
                    }
                    let g = &signal;
                    self.journal(journal::Kind::Sent, g.id, g.symbol, g.side, g.kind, g.source, g.qty, g.price);
                    self.metrics.open_orders.set(self.executor.open_order_count() as i64);
                    let done = self.clock.now();
                    self.metrics.tick_to_order.observe(done.saturating_sub(signal.origin_ns) as f64 * 1e-9);
                    None
                }
                Err(why) => {
                    self.metrics.orders_rejected.inc();
                    self.executor.apply(&VenueEvent::Rejected { key: order.key, reason: why }, now);
                    Some(why)
                }
            },
        };
        let name = self.symbols.get(s).map_or("?", String::as_str);
        let Some(why) = refused else {
            log::warn!(
                "{name}: {what} {} crossed (mark {mark}): closing {} with {} order {id}",
                LevelText(level),
                signal.qty,
                order_kind.as_str()
            );
            if let Some(retry) = self.exit_retry_at.get_mut(s) {
                *retry = (0, 0);
            }
            return;
        };
        let Some(retry) = self.exit_retry_at.get_mut(s) else { return };
        retry.1 = retry.1.saturating_add(1);
        let refusals = retry.1;
        let wait = EXIT_RETRY.saturating_mul(1 << (refusals - 1).min(5)).min(EXIT_RETRY_MAX);
        retry.0 = now.saturating_add(wait);
        if let Some(c) = self.metrics.protective_exits_refused.get(kind as usize) {
            c.inc();
        }
        log::error!(
            "{name}: {what} {} crossed (mark {mark}) but the closing order {id} was refused ({why}, {refusals} in a \
             row); trying again in {} s",
            LevelText(level),
            wait / 1_000_000_000
        );
        if refusals == EXIT_REFUSALS_TO_HALT && self.trading.state != TradingState::Halted {
            let reason = format!(
                "the {what} exit of the {name} position was refused {refusals} times in a row ({why}); \
                 it is still open and tried again"
            );
            self.set_trading_state(TradingState::Halted, "protective_exit", &reason);
        }
    }
}

/// A level for the log: its price, or `none` (formatted in place, not into a `String`).
struct LevelText(f64);

impl std::fmt::Display for LevelText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0 > 0.0 {
            write!(f, "{}", self.0)
        } else {
            f.write_str("none")
        }
    }
}
