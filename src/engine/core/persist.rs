//! The core's state in and out of a checkpoint: the snapshot a checkpoint keeps, and the restore
//! at start-up (books, orders in flight, queued signals, ids remembered, orders settled since).

use super::*;

impl<V: Venue, C: Clock> TradingCore<V, C> {
    /// The state a checkpoint keeps.
    pub fn snapshot(&self) -> crate::engine::checkpoint::State {
        use crate::engine::checkpoint::{OrderState, PositionState, State};
        let name = |s: SymbolId| self.symbols.get(s as usize).cloned().unwrap_or_default();
        let recent = self.executor.recent_ids();
        let (now, unix_now) = (self.clock.now(), self.clock.unix_nanos() as i64);
        State {
            written_at: crate::support::timefmt::rfc3339_micros(self.clock.unix_nanos()),
            protection: Some(self.protection.baselines()),
            commissions: self.protection.commissions(),
            swaps: self.protection.swaps(),
            trading: Some(crate::engine::checkpoint::TradingRecord {
                state: self.trading.state.as_str().to_owned(),
                by: self.trading.by.clone(),
                reason: self.trading.reason.clone(),
                since_unix_ns: self.trading.since_unix_ns as i64,
            }),
            trades: self.executor.trades(),
            next_model_seq: self.next_model_seq,
            positions: self
                .executor
                .positions()
                .iter()
                .enumerate()
                .map(|(i, p)| PositionState {
                    symbol: name(i as SymbolId),
                    qty: p.qty,
                    avg_price: p.avg_price,
                    realized_pnl: p.realized_pnl,
                    fills: p.fills,
                    sl: self.stops.get(i).map_or(0.0, |s| s.0),
                    tp: self.stops.get(i).map_or(0.0, |s| s.1),
                    realized_money: Some(self.protection.realized_money(i as SymbolId)),
                })
                .collect(),
            open_orders: self
                .executor
                .open_orders()
                .map(|o| OrderState {
                    client_id: o.request.client_id.as_str().to_owned(),
                    symbol: name(o.request.symbol),
                    side: o.request.side.as_str().to_owned(),
                    kind: o.request.kind.as_str().to_owned(),
                    qty: o.request.qty,
                    filled: o.filled,
                    price: o.request.price,
                    state: o.state.as_str().to_owned(),
                    venue_ref: self.venue.order_ref(&o.request.client_id),
                    sent_at_unix_ns: if o.sent_ns == 0 && o.state != crate::engine::executor::OrderState::New {
                        0
                    } else {
                        unix_now - now.saturating_sub(o.sent_ns) as i64
                    },
                    sl: o.request.sl,
                    tp: o.request.tp,
                    protects: o.protects.map(|k| k.as_str().to_owned()).unwrap_or_default(),
                })
                .collect(),
            venue: self.venue.checkpoint(),
            recent_ids: recent.iter().map(|(i, _)| i.as_str().to_owned()).collect(),
            recent_id_times: recent.iter().map(|(_, t)| *t).collect(),
            // Set by the checkpointer, which numbers what it writes.
            generation: 0,
            queued: {
                let (now, unix) = (self.clock.now(), self.clock.unix_nanos() as i64);
                self.queue
                    .iter()
                    .map(|q| crate::engine::checkpoint::QueuedState {
                        id: q.id.as_str().to_owned(),
                        symbol: name(q.symbol),
                        side: q.side.as_str().to_owned(),
                        kind: q.kind.as_str().to_owned(),
                        qty: q.qty,
                        price: q.price,
                        source: q.source.as_str().to_owned(),
                        queued_at_unix_ns: unix - now.saturating_sub(q.origin_ns) as i64,
                        sl: q.stops.sl.parts().0,
                        sl_bps: q.stops.sl.parts().1,
                        tp: q.stops.tp.parts().0,
                        tp_bps: q.stops.tp.parts().1,
                    })
                    .collect()
            },
        }
    }

    /// Restores a checkpoint before trading starts. A position in a symbol the config no longer
    /// lists is refused: it would be forgotten. Orders that were in flight are restored when the
    /// venue keeps orders across restarts (their outcome comes from the venue); the paper venue
    /// lost them with the old process. Returns (orders restored, orders lost).
    pub fn restore(&mut self, state: &crate::engine::checkpoint::State) -> Result<(usize, usize), String> {
        use crate::engine::executor::Position;
        let mut positions = Vec::new();
        let mut converted = vec![None; self.symbols.len()];
        for p in &state.positions {
            let Some(sym) = self.symbol_id(&p.symbol) else {
                if p.qty != 0.0 {
                    return Err(format!(
                        "the checkpoint holds a position of {} in {}, which feed.symbols no longer lists; add the symbol back (or close the position elsewhere and start with --discard-checkpoint)",
                        p.qty, p.symbol
                    ));
                }
                continue;
            };
            if let Some(c) = converted.get_mut(sym as usize) {
                *c = p.realized_money;
            }
            if let Some(s) = self.stops.get_mut(sym as usize) {
                *s = if p.qty.abs() < QTY_EPSILON { (0.0, 0.0) } else { (p.sl.max(0.0), p.tp.max(0.0)) };
            }
            positions.push((
                sym,
                Position { qty: p.qty, avg_price: p.avg_price, realized_pnl: p.realized_pnl, fills: p.fills },
            ));
        }
        self.executor.restore(&positions, state.trades);
        self.protection.restore(
            self.executor.positions(),
            &converted,
            state.protection,
            state.commissions,
            state.swaps,
        );
        if let Some(t) = &state.trading {
            // A state this version does not know halts: the safe reading.
            let known = TradingState::parse(&t.state);
            self.trading = Trading {
                state: known.unwrap_or(TradingState::Halted),
                by: t.by.clone(),
                reason: match known {
                    Some(_) => t.reason.clone(),
                    None => format!("the checkpoint holds trading state {:?}, unknown to this version", t.state),
                },
                since_unix_ns: i128::from(t.since_unix_ns),
            };
            self.metrics.set_trading_state(self.trading.state);
            self.metrics.trading_paused.set(i64::from(self.trading.state == TradingState::Halted));
            if self.trading.state != TradingState::Active {
                let why =
                    if self.trading.reason.is_empty() { String::new() } else { format!(": {}", self.trading.reason) };
                log::warn!(
                    "trading state {} since {} (set by {}{why}); restored, not cleared by the restart: `mt5bot ctl resume` to trade again",
                    self.trading.state.as_str(),
                    crate::support::timefmt::rfc3339_micros(self.trading.since_unix_ns),
                    self.trading.by
                );
            }
        }
        self.next_model_seq = self.next_model_seq.max(state.next_model_seq);
        let now_s = (self.clock.unix_nanos() / 1_000_000_000) as u32;
        self.executor.set_wall_seconds(now_s);
        self.executor.remember_ids_at(
            state.recent_ids.iter().enumerate().filter_map(|(n, i)| {
                Some((SignalId::parse(i)?, state.recent_id_times.get(n).copied().unwrap_or(now_s)))
            }),
        );
        let mut restored = Vec::new();
        if self.venue.keeps_orders() {
            for o in &state.open_orders {
                let (Some(sym), Some(id)) = (self.symbol_id(&o.symbol), SignalId::parse(&o.client_id)) else {
                    return Err(format!(
                        "the checkpoint holds order {} in {}, which feed.symbols no longer lists; add the symbol back",
                        o.client_id, o.symbol
                    ));
                };
                let side = Side::parse(&o.side).unwrap_or(Side::Buy);
                let kind = OrderKind::parse(&o.kind).unwrap_or(OrderKind::Market);
                let protects = StopKind::parse(&o.protects);
                let template = OrderRequest {
                    key: crate::domain::types::OrderKey(0),
                    client_id: id,
                    symbol: sym,
                    side,
                    qty: o.qty,
                    kind,
                    price: o.price,
                    sl: o.sl.max(0.0),
                    tp: o.tp.max(0.0),
                    immediate: false,
                    until_cancelled: protects.is_some(),
                };
                let req = self
                    .executor
                    .restore_open(template, o.filled, protects)
                    .ok_or("the checkpoint holds more orders in flight than risk.max_open_orders")?;
                let unix_now = self.clock.unix_nanos() as i64;
                let age_ns =
                    (o.sent_at_unix_ns > 0).then(|| unix_now.saturating_sub(o.sent_at_unix_ns).max(0) as Nanos);
                restored.push(RestoredOrder { req, filled: o.filled, venue_ref: o.venue_ref, age_ns });
            }
        }
        self.venue.restore(&state.venue, &restored)?;
        self.restore_queue(&state.queued)?;
        self.metrics.open_orders.set(self.executor.open_order_count() as i64);
        for (sym, p) in &positions {
            if let Some(g) = self.metrics.position.get(*sym as usize) {
                g.set(p.qty);
            }
            if let Some(g) = self.metrics.realized_pnl.get(*sym as usize) {
                g.set(self.protection.realized_money(*sym).0);
            }
        }
        Ok((restored.len(), state.open_orders.len() - restored.len()))
    }

    /// Puts the signals that were waiting back into the queue, oldest first: each is sent once
    /// its turn comes, unless it has already waited longer than `queue.max_wait` (refused, counted
    /// as `venue_unavailable` and logged). A restored signal's wait goes on from the restart.
    pub(super) fn restore_queue(&mut self, queued: &[crate::engine::checkpoint::QueuedState]) -> Result<(), String> {
        let unix = self.clock.unix_nanos() as i64;
        let mut stale = Vec::new();
        for q in queued {
            let (Some(symbol), Some(id)) = (self.symbol_id(&q.symbol), SignalId::parse(&q.id)) else {
                return Err(format!(
                    "the checkpoint holds queued signal {} in {}, which feed.symbols no longer lists; add the symbol back",
                    q.id, q.symbol
                ));
            };
            let source =
                SignalSource::ALL.into_iter().find(|s| s.as_str() == q.source).unwrap_or(SignalSource::Ingress);
            let waited = unix.saturating_sub(q.queued_at_unix_ns).max(0) as Nanos;
            if waited > self.max_wait {
                self.metrics.received(source);
                self.metrics.dropped(DropReason::VenueUnavailable);
                self.executor.remember_ids([id]);
                stale.push(q.id.as_str());
                continue;
            }
            let signal = Signal {
                id,
                symbol,
                side: Side::parse(&q.side).unwrap_or(Side::Buy),
                qty: q.qty,
                kind: if q.kind == "limit" { OrderKind::Limit } else { OrderKind::Market },
                price: q.price,
                source,
                origin_ns: self.clock.now(),
                reply_to: ReplyTo::NONE,
                stops: Stops { sl: Level::from_parts(q.sl, q.sl_bps), tp: Level::from_parts(q.tp, q.tp_bps) },
            };
            if self.queue.push(signal).is_err() {
                return Err(format!(
                    "the checkpoint holds {} queued signals, more than queue.capacity {}; raise it back",
                    queued.len(),
                    self.queue.capacity()
                ));
            }
            self.executor.remember_ids([id]);
        }
        if !stale.is_empty() {
            log::warn!(
                "{} signals queued before the restart waited longer than queue.max_wait and are refused, not sent late \
                 (signals_dropped_total{{reason=\"venue_unavailable\"}}): {}",
                stale.len(),
                stale.join(", ")
            );
        }
        if !self.queue.is_empty() {
            log::info!("{} signals queued before the restart wait for the venue again", self.queue.len());
            let queued: Vec<_> = self.queue.iter().map(|s| (s.id, s.symbol, s.side)).collect();
            self.venue.restore_queued(&queued);
        }
        self.metrics.queue_depth.set(self.queue.len() as i64);
        Ok(())
    }

    /// Orders the journal saw end after the checkpoint, with what was filled: the venue books a
    /// repeated report for one of them as nothing.
    pub fn restore_settled(&mut self, settled: &[(SignalId, f64)]) {
        self.executor.remember_ids(settled.iter().map(|s| s.0));
        self.venue.remember_settled(settled);
    }
}
