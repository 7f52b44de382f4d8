//! What the operator asks of the core through the control API: pause and resume, cancel all,
//! flatten, apply a reload's live settings, and the status report.

use super::*;
use crate::domain::types::BreakerAction;

impl<V: Venue, C: Clock> TradingCore<V, C> {
    /// Sets the trading state: `by` is who or what (`operator`, a breaker's name), `reason` why.
    /// Logged, counted, journaled (so it outlives a SIGKILL) and kept in checkpoints. Orders in
    /// flight settle; ticks still mark the books. Returns whether the state changed, and the
    /// journal entry that records it (answers wait for it to be durable).
    pub fn set_trading_state(&mut self, state: TradingState, by: &str, reason: &str) -> (bool, Option<u64>) {
        let previous = self.trading.state;
        let changed = previous != state;
        self.trading = Trading {
            state,
            by: by.to_owned(),
            reason: reason.to_owned(),
            since_unix_ns: if changed { self.clock.unix_nanos() } else { self.trading.since_unix_ns },
        };
        self.metrics.set_trading_state(state);
        self.metrics.trading_paused.set(i64::from(state == TradingState::Halted || self.paused_until.is_some()));
        if !changed {
            return (false, None);
        }
        self.metrics.trading_state_changed(by);
        let why = if reason.is_empty() { String::new() } else { format!(": {reason}") };
        log::warn!("trading state {} -> {} by {by}{why}", previous.as_str(), state.as_str());
        if self.notices.wants(NoticeKind::State) {
            let (by, reason) = (by.to_owned(), reason.to_owned());
            self.notices.offer(&Notice::State { from: previous, to: state, by, reason });
        }
        let entry = self.journal_state(state, by);
        (true, entry)
    }

    /// A breaker reached its limit: sets the state its action asks for, unless the state is at
    /// least as strict already (a trip never loosens it); `flatten` also cancels and closes.
    pub(super) fn trip(&mut self, trip: Trip) {
        let target = trip.action.state();
        if self.trading.state.strictness() >= target.strictness() {
            return;
        }
        if let Some(c) = self.protection.trips(trip.breaker) {
            c.inc();
        }
        let reason = trip.reason();
        log::error!("breaker {} tripped: {reason}; action {}", trip.name, trip.action.as_str());
        if trip.action == BreakerAction::Flatten {
            let report = self.flatten_as(trip.name, &reason);
            log::warn!("breaker {}: flattened {} positions", trip.name, report.orders.len());
        } else {
            self.set_trading_state(target, trip.name, &reason);
        }
        self.resume_at = self
            .protection
            .resume_after(trip.breaker)
            .map(|d| (trip.breaker, self.clock.now().saturating_add(d.as_nanos().min(u128::from(u64::MAX)) as Nanos)));
    }

    /// Back to active when a breaker's `resume_after` has passed, if that breaker still holds the
    /// state (an operator's later change wins).
    pub(super) fn resume_if_due(&mut self, now: Nanos) {
        let Some((breaker, at)) = self.resume_at else { return };
        if now < at {
            return;
        }
        self.resume_at = None;
        let name = self.protection.breaker_name(breaker);
        if self.trading.by == name && self.trading.state != TradingState::Active {
            self.set_trading_state(TradingState::Active, "resume_after", &format!("{name}: its resume_after passed"));
        }
    }

    /// The trading state, who set it and why.
    pub fn trading(&self) -> &Trading {
        &self.trading
    }

    /// Equity now: the balance plus the open positions marked to the quote.
    pub fn equity(&self) -> f64 {
        self.protection.equity()
    }

    /// What a symbol has realized, in account currency (converted where it is priced in another).
    pub fn realized_money(&self, symbol: SymbolId) -> f64 {
        self.protection.realized_money(symbol).0
    }

    /// Asks the venue to cancel every open order; returns the ids it took the cancel for and those
    /// it refused, with the reason.
    pub fn cancel_all(&mut self) -> (Vec<OrderRequest>, Vec<(OrderRequest, &'static str)>) {
        self.cancel_where(|_| true)
    }

    /// [`TradingCore::cancel_all`] for the open orders `which` picks.
    pub(super) fn cancel_where(
        &mut self,
        which: impl Fn(&OrderRequest) -> bool,
    ) -> (Vec<OrderRequest>, Vec<(OrderRequest, &'static str)>) {
        let now = self.clock.now();
        let open: Vec<OrderRequest> = self.executor.open_orders().map(|o| o.request).filter(|r| which(r)).collect();
        let (mut asked, mut refused) = (Vec::new(), Vec::new());
        for req in open {
            match self.venue.cancel(&req, now, &mut self.events) {
                Ok(()) => asked.push(req),
                Err(why) => refused.push((req, why)),
            }
        }
        self.apply_events(now);
        (asked, refused)
    }

    /// Pauses, asks the venue to cancel every open order, then sends market orders that bring every
    /// symbol's position to zero (counting the open orders the venue would not cancel). Returns
    /// what was cancelled and one line per symbol that needed an order: what was sent or why not.
    pub fn flatten(&mut self) -> FlattenReport {
        self.flatten_as("operator", "flatten")
    }

    /// [`TradingCore::flatten`] with the state set by `by` (the operator, a breaker).
    pub(super) fn flatten_as(&mut self, by: &str, reason: &str) -> FlattenReport {
        self.set_trading_state(TradingState::Halted, by, reason);
        let (asked, refused) = self.cancel_all();
        let mut done = Vec::new();
        for sym in 0..self.symbols.len() {
            let id = sym as SymbolId;
            let uncancelled: f64 = refused
                .iter()
                .filter(|(r, _)| r.symbol == id)
                // A resting stop-loss or take-profit is contingent: it does not close the position.
                .filter_map(|(r, _)| self.executor.order(r.key).filter(|o| o.state.is_open() && o.protects.is_none()))
                .map(|o| o.request.side.sign() * o.remaining())
                .sum();
            let net = self.executor.position(id).qty + uncancelled;
            done.extend(self.close_position(id, net, 'F', SignalSource::Control));
        }
        // The closing orders cover the positions: no resting stop-loss or take-profit is placed
        // again beside them.
        self.sync_dirty_resting(self.clock.now());
        self.metrics.open_orders.set(self.executor.open_order_count() as i64);
        FlattenReport {
            cancel_requested: asked.iter().map(|r| r.client_id.as_str().to_owned()).collect(),
            cancel_refused: refused
                .iter()
                .map(|(r, why)| CancelRefused { id: r.client_id.as_str().to_owned(), reason: (*why).to_owned() })
                .collect(),
            orders: done,
        }
    }

    /// Sends a market order against `net` (a long of `net` is sold, a short bought) in `id`;
    /// `None` when it is zero. The order's id is `<tag><unix ms>-<symbol index>`.
    pub(super) fn close_position(
        &mut self,
        id: SymbolId,
        net: f64,
        tag: char,
        source: SignalSource,
    ) -> Option<FlattenOrder> {
        let sym = id as usize;
        if net.abs() < QTY_EPSILON {
            return None;
        }
        let stamp = self.clock.unix_nanos() / 1_000_000;
        let signal_id = SignalId::parse(&format!("{tag}{stamp}-{sym}"))?;
        let signal = Signal {
            id: signal_id,
            symbol: id,
            side: if net > 0.0 { Side::Sell } else { Side::Buy },
            qty: net.abs(),
            kind: OrderKind::Market,
            price: 0.0,
            source,
            origin_ns: self.clock.now(),
            reply_to: ReplyTo::NONE,
            stops: Stops::NONE,
        };
        self.metrics.received(source);
        let now = self.clock.now();
        let outcome = match self.executor.create(&signal, now) {
            Err(reason) => {
                self.metrics.dropped(reason);
                Err(reason.as_str().to_owned())
            }
            Ok(order) => match self.venue.submit(&order, now) {
                Ok(()) => {
                    self.executor.mark_sent(order.key, now);
                    self.metrics.orders_sent.inc();
                    self.mark_resting_dirty(id);
                    let s = &signal;
                    self.journal(journal::Kind::Sent, s.id, s.symbol, s.side, s.kind, s.source, s.qty, order.price);
                    Ok(())
                }
                Err(why) => {
                    self.metrics.orders_rejected.inc();
                    self.executor.apply(&VenueEvent::Rejected { key: order.key, reason: why }, now);
                    Err(why.to_owned())
                }
            },
        };
        let (sent, reason) = match outcome {
            Ok(()) => (true, None),
            Err(why) => (false, Some(why)),
        };
        let line = FlattenOrder {
            symbol: self.symbols[sym].clone(),
            side: signal.side.as_str(),
            qty: signal.qty,
            id: signal.id.as_str().to_owned(),
            sent,
            reason,
        };
        log::warn!("flatten: {line}");
        Some(line)
    }

    /// Applies the parts of a new configuration that can change while running; the caller has
    /// checked which keys those are.
    pub fn apply_live(&mut self, live: &LiveConfig) {
        self.executor.set_limits(live.max_position, live.max_orders_per_second, live.max_notional);
        let d = &live.drift;
        if *d != self.drift_cfg {
            if (d.delta, d.threshold, d.min_samples)
                != (self.drift_cfg.delta, self.drift_cfg.threshold, self.drift_cfg.min_samples)
            {
                self.drift = vec![PageHinkley::new(d.delta, d.threshold, d.min_samples); self.symbols.len()];
            }
            self.drift_cfg = d.clone();
        }
        self.max_wait = live.queue_max_wait.as_nanos() as Nanos;
    }

    /// What the control API's `status` shows.
    pub fn status(&self) -> StatusReport {
        use crate::link::report::{
            BreakerStatus, DriftAlarm, DriftStatus, EquityStatus, FillStatus, OpenOrderStatus, PausedStatus,
            PositionStatus, QueueStatus, TradingStatus, VenueStatus,
        };
        let name = |s: SymbolId| self.symbols.get(s as usize).cloned().unwrap_or_default();
        let v = &self.venue;
        StatusReport {
            venue: VenueStatus {
                name: v.name(),
                up: v.is_up(),
                ready_for_orders: v.ready_for_orders(),
                open_orders: v.open_orders(),
            },
            accepting: self.accepting,
            paused: PausedStatus {
                operator: self.trading.state == TradingState::Halted,
                drift: self.paused_until.is_some(),
            },
            trading: TradingStatus {
                state: self.trading.state.as_str(),
                by: self.trading.by.clone(),
                reason: self.trading.reason.clone(),
                since: crate::support::timefmt::rfc3339_micros(self.trading.since_unix_ns),
            },
            equity: {
                let b = self.protection.baselines();
                EquityStatus {
                    equity: self.protection.equity(),
                    balance: self.protection.balance(),
                    currency: self.protection.currency().map(str::to_owned),
                    peak_equity: self.protection.peak(),
                    day_start_equity: b.day_start_equity,
                    losses_in_a_row: b.losses_in_a_row,
                    breakers: self
                        .protection
                        .report()
                        .into_iter()
                        .map(|(name, action, value, limit, headroom)| BreakerStatus {
                            name,
                            action: action.as_str(),
                            value,
                            limit,
                            headroom,
                        })
                        .collect(),
                }
            },
            queue: QueueStatus { depth: self.queue.len(), capacity: self.queue.capacity() },
            trades: self.executor.trades(),
            positions: self
                .symbols
                .iter()
                .zip(self.executor.positions())
                .zip(&self.stops)
                .enumerate()
                .map(|(i, ((s, p), &(sl, tp)))| {
                    let id = i as SymbolId;
                    let (open_pnl, mark) = self.protection.open_money(id);
                    PositionStatus {
                        symbol: s.clone(),
                        qty: p.qty,
                        avg_price: p.avg_price,
                        realized_pnl: p.realized_pnl,
                        realized_money: self.protection.realized_money(id).0,
                        open_pnl,
                        mark,
                        fills: p.fills,
                        sl: (sl > 0.0).then_some(sl),
                        tp: (tp > 0.0).then_some(tp),
                        stops_held_by: (sl > 0.0 || tp > 0.0).then(|| self.stops_holder()),
                    }
                })
                .collect(),
            open_orders: self
                .executor
                .open_orders()
                .map(|o| OpenOrderStatus {
                    id: o.request.client_id.as_str().to_owned(),
                    symbol: name(o.request.symbol),
                    side: o.request.side.as_str(),
                    qty: o.request.qty,
                    filled: o.filled,
                    price: o.request.price,
                    state: o.state.as_str(),
                })
                .collect(),
            recent_fills: self
                .recent_fills
                .iter()
                .map(|t| FillStatus {
                    at: crate::support::timefmt::rfc3339_micros(t.unix_ns),
                    id: t.client_id.as_str().to_owned(),
                    symbol: name(t.symbol),
                    side: t.side.as_str(),
                    qty: t.qty,
                    price: t.price,
                })
                .collect(),
            drift: DriftStatus {
                alarms: self.drift_alarms,
                last: self
                    .last_drift
                    .map(|(s, at)| DriftAlarm { symbol: name(s), at: crate::support::timefmt::rfc3339_micros(at) }),
            },
            markets: self.market_status(),
        }
    }
}
