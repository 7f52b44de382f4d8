//! The executor: turns signals into orders under risk limits, follows each order through its
//! lifecycle, and keeps positions and realized PnL per symbol.
//!
//! Lifecycle: `New` (created) -> `Sent` (handed to the venue) -> `Acknowledged` ->
//! `PartiallyFilled`* -> `Filled`, or -> `Rejected` / `Cancelled` from any open state. Venue events
//! are applied idempotently: a fill whose `exec_id` was already applied, or an event for an order
//! that is no longer open, changes nothing and is reported as such.
//!
//! Sans-IO: the caller passes `now` and venue events; nothing here allocates after
//! [`Executor::new`], which sizes every table from the config.

use crate::config::RiskConfig;
use crate::support::names::QTY_EPSILON;

use super::recent::RecentIds;
use crate::domain::types::{
    DropReason, Nanos, OrderKey, OrderKind, OrderRequest, Side, Signal, SignalId, SignalSource, StopKind, SymbolId,
    VenueEvent,
};

/// How many recent signal ids are remembered to refuse duplicates.
pub const RECENT_IDS: usize = 65_536;

/// How many adopted ids are remembered against queued repeats.
const ADOPTED_IDS: usize = 4096;

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderState {
    New,
    Sent,
    Acknowledged,
    PartiallyFilled,
    Filled,
    Rejected,
    Cancelled,
}

impl OrderState {
    pub fn is_open(self) -> bool {
        matches!(self, OrderState::New | OrderState::Sent | OrderState::Acknowledged | OrderState::PartiallyFilled)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OrderState::New => "new",
            OrderState::Sent => "sent",
            OrderState::Acknowledged => "acknowledged",
            OrderState::PartiallyFilled => "partially_filled",
            OrderState::Filled => "filled",
            OrderState::Rejected => "rejected",
            OrderState::Cancelled => "cancelled",
        }
    }
}

/// An order the executor is following.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Order {
    pub request: OrderRequest,
    pub state: OrderState,
    pub filled: f64,
    pub sent_ns: Nanos,
    pub last_exec_id: u64,
    /// A position's stop-loss or take-profit resting at the venue (`venue.fix44.native_stops`).
    /// It only closes, and at most one of the pair fills, so it is not counted in the exposure.
    pub protects: Option<StopKind>,
}

impl Order {
    pub fn remaining(&self) -> f64 {
        (self.request.qty - self.filled).max(0.0)
    }
}

/// Position and realized PnL in one symbol.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Position {
    /// Signed quantity: positive long, negative short.
    pub qty: f64,
    /// Average entry price of the open quantity (0 when flat).
    pub avg_price: f64,
    /// PnL realized by closing trades, in price units x quantity.
    pub realized_pnl: f64,
    /// Fills applied in this symbol.
    pub fills: u64,
}

impl Position {
    /// Applies a fill of `signed_qty` at `price`; returns the PnL it realized.
    pub fn apply(&mut self, signed_qty: f64, price: f64) -> f64 {
        self.fills += 1;
        let same_direction = self.qty.abs() < QTY_EPSILON || (self.qty > 0.0) == (signed_qty > 0.0);
        if same_direction {
            let total = self.qty.abs() + signed_qty.abs();
            self.avg_price = (self.avg_price * self.qty.abs() + price * signed_qty.abs()) / total;
            self.qty += signed_qty;
            return 0.0;
        }
        let closing = signed_qty.abs().min(self.qty.abs());
        let pnl = closing * (price - self.avg_price) * self.qty.signum();
        self.realized_pnl += pnl;
        self.qty += signed_qty;
        if self.qty.abs() < QTY_EPSILON {
            self.qty = 0.0;
            self.avg_price = 0.0;
        } else if signed_qty.abs() > closing {
            // The fill flipped the position: what is left was opened at this price.
            self.avg_price = price;
        }
        pnl
    }
}

/// What applying a venue event did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Applied {
    /// Acknowledged; carries the time from send to acknowledgement.
    Acknowledged { roundtrip_ns: Nanos },
    /// A fill was booked.
    Filled {
        symbol: SymbolId,
        side: Side,
        client_id: SignalId,
        exec_id: u64,
        qty: f64,
        price: f64,
        realized_pnl: f64,
        order_done: bool,
        /// The order's stop-loss and take-profit prices (0 for none).
        sl: f64,
        tp: f64,
        /// The resting stop-loss or take-profit this fill executed, if it was one.
        protects: Option<StopKind>,
    },
    /// The order was refused by the venue; `protects` as in `Filled`.
    Rejected { symbol: SymbolId, client_id: SignalId, protects: Option<StopKind> },
    /// The order was cancelled.
    Cancelled { symbol: SymbolId, client_id: SignalId, protects: Option<StopKind> },
    /// Nothing changed: a repeated event, or one for an order no longer open.
    Ignored,
}

/// Token bucket for `risk.max_orders_per_second`: a burst of up to one second's worth.
#[derive(Debug, Clone)]
struct RateLimit {
    rate: f64,
    tokens: f64,
    last: Nanos,
}

impl RateLimit {
    fn new(per_second: u32) -> Self {
        let rate = f64::from(per_second);
        RateLimit { rate, tokens: rate, last: 0 }
    }

    fn refill(&mut self, now: Nanos) {
        let elapsed = now.saturating_sub(self.last) as f64 * 1e-9;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        self.last = self.last.max(now);
    }

    fn has_token(&mut self, now: Nanos) -> bool {
        self.refill(now);
        self.tokens >= 1.0
    }

    fn take(&mut self) {
        self.tokens -= 1.0;
    }
}

/// The executor. One per engine; only the engine thread touches it.
#[derive(Debug)]
pub struct Executor {
    risk: RiskConfig,
    quotes: Vec<Option<(f64, f64)>>,
    positions: Vec<Position>,
    /// Signed quantity of open orders per symbol, counted against `max_position`.
    exposure: Vec<f64>,
    orders: Vec<Option<Order>>,
    free: Vec<u32>,
    next_seq: u64,
    rate: RateLimit,
    recent: RecentIds,
    /// Ids whose fills the venue reported for an order this process never sent (adopted): a
    /// signal with one that is still in the queue is a duplicate, not a second order.
    adopted: RecentIds,
    trades: u64,
    /// Wall time now, in Unix seconds (set by the core): when an id is remembered.
    now_s: u32,
    /// `ingress.id_retention` in seconds, and ids forgotten younger than that (the memory was
    /// too small for the rate of new ids).
    retention_s: u32,
    forgotten_early: u64,
}

impl Executor {
    pub fn new(risk: &RiskConfig, symbols: usize) -> Self {
        Executor::with_ids(risk, symbols, RECENT_IDS, 86_400)
    }

    /// An executor that remembers up to `ids` signal ids for `retention_s` seconds.
    pub fn with_ids(risk: &RiskConfig, symbols: usize, ids: usize, retention_s: u32) -> Self {
        let slots = risk.max_open_orders;
        Executor {
            risk: risk.clone(),
            quotes: vec![None; symbols],
            positions: vec![Position::default(); symbols],
            exposure: vec![0.0; symbols],
            orders: vec![None; slots],
            // Reversed so slot 0 is used first.
            free: (0..slots as u32).rev().collect(),
            next_seq: 1,
            rate: RateLimit::new(risk.max_orders_per_second),
            recent: RecentIds::new(ids),
            adopted: RecentIds::new(ADOPTED_IDS),
            trades: 0,
            // The core sets the wall time from its clock before any id is taken.
            now_s: 0,
            retention_s,
            forgotten_early: 0,
        }
    }

    /// Records the latest quote of a symbol, used to price market orders for risk checks.
    #[inline]
    pub fn set_quote(&mut self, symbol: SymbolId, bid: f64, ask: f64) {
        if let Some(q) = self.quotes.get_mut(symbol as usize) {
            *q = Some((bid, ask));
        }
    }

    /// Applies new risk limits (a config reload). `max_open_orders` sized the order table at
    /// start-up and is not changed here.
    /// The risk limits a reload changes while running.
    pub fn set_limits(&mut self, max_position: f64, max_orders_per_second: u32, max_notional: f64) {
        self.risk.max_position = max_position;
        self.risk.max_notional = max_notional;
        if self.risk.max_orders_per_second != max_orders_per_second {
            self.risk.max_orders_per_second = max_orders_per_second;
            self.rate.rate = f64::from(max_orders_per_second);
            self.rate.tokens = self.rate.tokens.min(self.rate.rate);
        }
    }

    pub fn limits(&self) -> &RiskConfig {
        &self.risk
    }

    /// Whether a quote of the symbol has arrived (market orders are priced from it).
    #[inline]
    pub fn has_quote(&self, symbol: SymbolId) -> bool {
        self.quotes.get(symbol as usize).is_some_and(Option::is_some)
    }

    /// The last quote of a symbol (bid, ask), if one has arrived.
    pub fn quote(&self, symbol: SymbolId) -> Option<(f64, f64)> {
        self.quotes.get(symbol as usize).copied().flatten()
    }

    /// Signed quantity of the open orders of a symbol.
    pub fn exposure(&self, symbol: SymbolId) -> f64 {
        self.exposure.get(symbol as usize).copied().unwrap_or(0.0)
    }

    /// Whether a signal with this id was taken before (within the ids remembered).
    #[inline]
    pub fn knows(&self, id: &SignalId) -> bool {
        self.recent.contains(id)
    }

    /// Remembers an id that [`Executor::knows`] just said is new: the signal was queued, and a
    /// repeat of its id is a duplicate from now on, whatever becomes of it.
    #[inline]
    pub fn claim_new(&mut self, id: SignalId) {
        let forgot = self.recent.insert_new(id, self.now_s);
        self.note_forgotten(forgot);
    }

    /// Sets the wall time ids are remembered at (Unix seconds).
    #[inline]
    pub fn set_wall_seconds(&mut self, now_s: u32) {
        self.now_s = now_s;
    }

    #[inline]
    fn note_forgotten(&mut self, forgot: Option<u32>) {
        if let Some(t) = forgot {
            if self.now_s.saturating_sub(t) < self.retention_s {
                self.forgotten_early += 1;
                if self.forgotten_early.is_power_of_two() {
                    log::warn!(
                        "{} signal ids were forgotten younger than ingress.id_retention ({} s): more new ids arrive than \
                         ingress.id_memory holds, so a repeat of one would be a new order; raise ingress.id_memory",
                        self.forgotten_early,
                        self.retention_s
                    );
                }
            }
        }
    }

    /// Ids forgotten younger than `ingress.id_retention`.
    pub fn ids_forgotten_early(&self) -> u64 {
        self.forgotten_early
    }

    /// Checks a signal against duplicates and the risk limits and, if it passes, creates a `New`
    /// order; the id counts as seen only then.
    pub fn create(&mut self, sig: &Signal, now: Nanos) -> Result<OrderRequest, DropReason> {
        if self.recent.contains(&sig.id) {
            return Err(DropReason::Duplicate);
        }
        let order = self.create_claimed(sig, now)?;
        let forgot = self.recent.insert_new(sig.id, self.now_s);
        self.note_forgotten(forgot);
        Ok(order)
    }

    /// [`Executor::create`] for a signal whose id was claimed when it was queued.
    #[inline]
    pub fn create_claimed(&mut self, sig: &Signal, now: Nanos) -> Result<OrderRequest, DropReason> {
        if !self.adopted.is_empty() && self.adopted.contains(&sig.id) {
            return Err(DropReason::Duplicate);
        }
        let sym = sig.symbol as usize;
        let Some(Some((bid, ask))) = self.quotes.get(sym).copied() else {
            return Err(DropReason::NoQuote);
        };
        let reference = match (sig.kind, sig.side) {
            (OrderKind::Limit | OrderKind::Stop, _) => sig.price,
            (OrderKind::Market, Side::Buy) => ask,
            (OrderKind::Market, Side::Sell) => bid,
        };
        if sig.qty * reference > self.risk.max_notional {
            return Err(DropReason::MaxNotional);
        }
        let projected = self.positions[sym].qty + self.exposure[sym] + sig.side.sign() * sig.qty;
        if projected.abs() > self.risk.max_position + QTY_EPSILON {
            return Err(DropReason::MaxPosition);
        }
        if self.free.is_empty() {
            return Err(DropReason::MaxOpenOrders);
        }
        if !self.rate.has_token(now) {
            return Err(DropReason::MaxOrdersPerSecond);
        }
        let request = self.open_slot(sig, reference, now, None)?;
        self.rate.take();
        Ok(request)
    }

    /// A protective exit (a stop-loss or take-profit the engine holds was crossed): a market or
    /// marketable limit order that only reduces a position. Refused only as a duplicate, without a quote or without a
    /// free slot: the size and rate limits are there to stop risk, not to keep a position open.
    pub fn create_exit(&mut self, sig: &Signal, now: Nanos) -> Result<OrderRequest, DropReason> {
        if self.recent.contains(&sig.id) {
            return Err(DropReason::Duplicate);
        }
        let Some(Some((bid, ask))) = self.quotes.get(sig.symbol as usize).copied() else {
            return Err(DropReason::NoQuote);
        };
        let reference = match (sig.kind, sig.side) {
            (OrderKind::Limit | OrderKind::Stop, _) => sig.price,
            (OrderKind::Market, Side::Buy) => ask,
            (OrderKind::Market, Side::Sell) => bid,
        };
        let order = self.open_slot(sig, reference, now, None)?;
        let forgot = self.recent.insert_new(sig.id, self.now_s);
        self.note_forgotten(forgot);
        Ok(order)
    }

    /// A position's stop-loss (a stop order at `sig.price`) or take-profit (a limit) to rest at
    /// the venue until filled or cancelled. Refused only as a duplicate or without a free slot;
    /// not counted in the exposure (it only closes).
    pub fn create_resting(&mut self, sig: &Signal, kind: StopKind, now: Nanos) -> Result<OrderRequest, DropReason> {
        if self.recent.contains(&sig.id) {
            return Err(DropReason::Duplicate);
        }
        if sig.symbol as usize >= self.positions.len() {
            return Err(DropReason::NoQuote);
        }
        let order = self.open_slot(sig, sig.price, now, Some(kind))?;
        let forgot = self.recent.insert_new(sig.id, self.now_s);
        self.note_forgotten(forgot);
        Ok(order)
    }

    /// The resting `kind` of `symbol`'s position, if one is open.
    pub fn resting(&self, symbol: SymbolId, kind: StopKind) -> Option<&Order> {
        self.open_orders().find(|o| o.protects == Some(kind) && o.request.symbol == symbol)
    }

    /// Quantity the open orders of `symbol` on `side` still have to fill, resting stop-losses and
    /// take-profits left out.
    pub fn pending_unprotected(&self, symbol: SymbolId, side: Side) -> f64 {
        self.open_orders()
            .filter(|o| o.protects.is_none() && o.request.symbol == symbol && o.request.side == side)
            .map(Order::remaining)
            .sum()
    }

    /// Open orders that wait for an outcome: resting stop-losses and take-profits left out.
    pub fn unsettled_count(&self) -> usize {
        self.open_orders().filter(|o| o.protects.is_none()).count()
    }

    /// Takes a free slot for a `New` order of `sig` priced at `reference`.
    #[inline]
    fn open_slot(
        &mut self,
        sig: &Signal,
        reference: f64,
        now: Nanos,
        protects: Option<StopKind>,
    ) -> Result<OrderRequest, DropReason> {
        let sym = sig.symbol as usize;
        let Some(slot) = self.free.pop() else { return Err(DropReason::MaxOpenOrders) };
        let (sl, tp) = sig.stops.resolve(sig.side, reference);
        let key = OrderKey::new(self.next_seq, slot);
        self.next_seq += 1;
        let request = OrderRequest {
            key,
            client_id: sig.id,
            symbol: sig.symbol,
            side: sig.side,
            qty: sig.qty,
            kind: sig.kind,
            price: if sig.kind == OrderKind::Market { 0.0 } else { sig.price },
            sl,
            tp,
            immediate: sig.source == SignalSource::Protection && sig.kind == OrderKind::Limit && protects.is_none(),
            until_cancelled: protects.is_some(),
        };
        if protects.is_none() {
            self.exposure[sym] += sig.side.sign() * sig.qty;
        }
        self.orders[slot as usize] =
            Some(Order { request, state: OrderState::New, filled: 0.0, sent_ns: now, last_exec_id: 0, protects });
        Ok(request)
    }

    /// Gives an order not yet sent the stops it is to carry (the position's, when it adds to one).
    pub fn set_stops(&mut self, key: OrderKey, sl: f64, tp: f64) {
        if let Some(o) = self.order_mut(key) {
            o.request.sl = sl;
            o.request.tp = tp;
        }
    }

    /// Quantity the open orders of `symbol` on `side` still have to fill.
    pub fn pending(&self, symbol: SymbolId, side: Side) -> f64 {
        self.open_orders().filter(|o| o.request.symbol == symbol && o.request.side == side).map(Order::remaining).sum()
    }

    /// Marks a `New` order as handed to the venue.
    pub fn mark_sent(&mut self, key: OrderKey, now: Nanos) {
        if let Some(o) = self.order_mut(key) {
            if o.state == OrderState::New {
                o.state = OrderState::Sent;
                o.sent_ns = now;
            }
        }
    }

    /// Applies one venue event.
    pub fn apply(&mut self, event: &VenueEvent, now: Nanos) -> Applied {
        match *event {
            VenueEvent::Accepted { key } => {
                let Some(o) = self.order_mut(key) else { return Applied::Ignored };
                if matches!(o.state, OrderState::New | OrderState::Sent) {
                    o.state = OrderState::Acknowledged;
                    return Applied::Acknowledged { roundtrip_ns: now.saturating_sub(o.sent_ns) };
                }
                Applied::Ignored
            }
            VenueEvent::Fill { key, exec_id, qty, price } => {
                let Some(o) = self.order_mut(key) else { return Applied::Ignored };
                if exec_id <= o.last_exec_id || !(qty > 0.0 && price.is_finite() && price > 0.0) {
                    return Applied::Ignored;
                }
                // Never book more than was ordered, whatever the venue says.
                let qty = qty.min(o.remaining());
                if qty <= 0.0 {
                    return Applied::Ignored;
                }
                o.last_exec_id = exec_id;
                o.filled += qty;
                let done = o.remaining() < QTY_EPSILON;
                o.state = if done { OrderState::Filled } else { OrderState::PartiallyFilled };
                let (symbol, side, client_id) = (o.request.symbol, o.request.side, o.request.client_id);
                let (sl, tp, protects) = (o.request.sl, o.request.tp, o.protects);
                let signed = side.sign() * qty;
                let sym = symbol as usize;
                if protects.is_none() {
                    self.exposure[sym] -= signed;
                }
                let realized_pnl = self.positions[sym].apply(signed, price);
                self.trades += 1;
                if done {
                    self.release(key);
                }
                Applied::Filled {
                    symbol,
                    side,
                    client_id,
                    exec_id,
                    qty,
                    price,
                    realized_pnl,
                    order_done: done,
                    sl,
                    tp,
                    protects,
                }
            }
            // `only_if_unknown` is the core's to check (it knows which ids only wait in the queue).
            VenueEvent::Adopted { client_id, symbol, side, qty, price, .. } => {
                let sym = symbol as usize;
                if sym >= self.positions.len() || !(qty > 0.0 && price.is_finite() && price > 0.0) {
                    // Nothing to book, but the venue holds the order: a queued repeat is refused.
                    self.adopted.insert(client_id, self.now_s);
                    return Applied::Ignored;
                }
                let realized_pnl = self.positions[sym].apply(side.sign() * qty, price);
                self.trades += 1;
                // The id was traded: a signal repeating it is a duplicate, as for a restored order,
                // and one already waiting in the queue with it is refused when its turn comes.
                let forgot = self.recent.insert(client_id, self.now_s);
                self.note_forgotten(forgot);
                self.adopted.insert(client_id, self.now_s);
                Applied::Filled {
                    symbol,
                    side,
                    client_id,
                    exec_id: 0,
                    qty,
                    price,
                    realized_pnl,
                    order_done: true,
                    sl: 0.0,
                    tp: 0.0,
                    protects: None,
                }
            }
            VenueEvent::Rejected { key, .. } => match self.close(key, OrderState::Rejected) {
                Some((symbol, client_id, protects)) => Applied::Rejected { symbol, client_id, protects },
                None => Applied::Ignored,
            },
            VenueEvent::Cancelled { key } => match self.close(key, OrderState::Cancelled) {
                Some((symbol, client_id, protects)) => Applied::Cancelled { symbol, client_id, protects },
                None => Applied::Ignored,
            },
            // The core's to use (protection); nothing in the books changes.
            VenueEvent::Balance { .. }
            | VenueEvent::StopExecuted { .. }
            | VenueEvent::Commission { .. }
            | VenueEvent::SessionTimes { .. }
            | VenueEvent::PositionReported { .. } => Applied::Ignored,
        }
    }

    fn close(&mut self, key: OrderKey, state: OrderState) -> Option<(SymbolId, SignalId, Option<StopKind>)> {
        let o = self.order_mut(key)?;
        o.state = state;
        let (symbol, id, signed_rest) = (o.request.symbol, o.request.client_id, o.request.side.sign() * o.remaining());
        let protects = o.protects;
        if protects.is_none() {
            self.exposure[symbol as usize] -= signed_rest;
        }
        self.release(key);
        Some((symbol, id, protects))
    }

    fn order_mut(&mut self, key: OrderKey) -> Option<&mut Order> {
        self.orders.get_mut(key.slot())?.as_mut().filter(|o| o.request.key == key && o.state.is_open())
    }

    fn release(&mut self, key: OrderKey) {
        if let Some(slot) = self.orders.get_mut(key.slot()) {
            *slot = None;
            self.free.push(key.slot() as u32);
        }
    }

    /// The signal ids remembered within `ingress.id_retention`, oldest first, with when each
    /// was taken (Unix seconds), for checkpoints.
    pub fn recent_ids(&self) -> Vec<(SignalId, u32)> {
        self.recent.since(self.now_s.saturating_sub(self.retention_s))
    }

    /// Marks ids as seen (a restore), so signals reusing them are refused as duplicates.
    pub fn remember_ids(&mut self, ids: impl IntoIterator<Item = SignalId>) {
        let now = self.now_s;
        self.remember_ids_at(ids.into_iter().map(|id| (id, now)));
    }

    /// [`Executor::remember_ids`] with when each id was taken (Unix seconds).
    pub fn remember_ids_at(&mut self, ids: impl IntoIterator<Item = (SignalId, u32)>) {
        for (id, at) in ids {
            let forgot = self.recent.insert(id, at);
            self.note_forgotten(forgot);
        }
    }

    pub fn order(&self, key: OrderKey) -> Option<&Order> {
        self.orders.get(key.slot())?.as_ref().filter(|o| o.request.key == key)
    }

    /// Orders not yet finished.
    pub fn open_orders(&self) -> impl Iterator<Item = &Order> {
        self.orders.iter().flatten()
    }

    pub fn open_order_count(&self) -> usize {
        self.orders.len() - self.free.len()
    }

    /// Whether an order of `qty` on `side` brings the symbol's position, counting the orders in
    /// flight, toward zero without crossing it (what `reducing` lets through).
    pub fn reduces(&self, symbol: SymbolId, side: Side, qty: f64) -> bool {
        let sym = symbol as usize;
        let Some(p) = self.positions.get(sym) else { return false };
        let net = p.qty + self.exposure[sym];
        net.abs() > QTY_EPSILON && side.sign() == -net.signum() && qty <= net.abs() + QTY_EPSILON
    }

    pub fn position(&self, symbol: SymbolId) -> Position {
        self.positions.get(symbol as usize).copied().unwrap_or_default()
    }

    pub fn positions(&self) -> &[Position] {
        &self.positions
    }

    /// Fills booked, including those restored from a checkpoint.
    pub fn trades(&self) -> u64 {
        self.trades
    }

    /// Takes back an order that was in flight when the checkpoint was written, so its outcome can
    /// still be booked (venues with a real counterparty); `order.key` is replaced by a new one. Its
    /// id counts as seen, so a signal with the same id is refused as a duplicate. `None` when the
    /// table is full.
    pub fn restore_open(
        &mut self,
        order: OrderRequest,
        filled: f64,
        protects: Option<StopKind>,
    ) -> Option<OrderRequest> {
        let OrderRequest { client_id, symbol, side, qty, .. } = order;
        let slot = self.free.pop()?;
        let key = OrderKey::new(self.next_seq, slot);
        self.next_seq += 1;
        let request = OrderRequest { key, until_cancelled: order.until_cancelled || protects.is_some(), ..order };
        let state = if filled > 0.0 { OrderState::PartiallyFilled } else { OrderState::Sent };
        self.orders[slot as usize] = Some(Order { request, state, filled, sent_ns: 0, last_exec_id: 0, protects });
        if let (Some(e), None) = (self.exposure.get_mut(symbol as usize), protects) {
            *e += side.sign() * (qty - filled);
        }
        let forgot = self.recent.insert(client_id, self.now_s);
        self.note_forgotten(forgot);
        Some(request)
    }

    /// Sets positions and the trade count from a checkpoint (before trading starts).
    pub fn restore(&mut self, positions: &[(SymbolId, Position)], trades: u64) {
        for (sym, p) in positions {
            if let Some(slot) = self.positions.get_mut(*sym as usize) {
                *slot = *p;
            }
        }
        self.trades = trades;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn risk() -> RiskConfig {
        RiskConfig { max_position: 3.0, max_orders_per_second: 5, max_notional: 1000.0, max_open_orders: 4 }
    }

    fn sig(id: &str, side: Side, qty: f64) -> Signal {
        Signal::market(SignalId::parse(id).expect("id"), 0, side, qty)
    }

    fn exec() -> Executor {
        let mut e = Executor::new(&risk(), 2);
        e.set_quote(0, 99.0, 101.0);
        e
    }

    #[test]
    fn lifecycle_new_sent_acknowledged_partial_filled() {
        let mut e = exec();
        let req = e.create(&sig("a", Side::Buy, 2.0), 10).expect("accepted");
        assert_eq!(e.order(req.key).map(|o| o.state), Some(OrderState::New));
        e.mark_sent(req.key, 20);
        assert_eq!(e.order(req.key).map(|o| o.state), Some(OrderState::Sent));
        assert_eq!(e.apply(&VenueEvent::Accepted { key: req.key }, 50), Applied::Acknowledged { roundtrip_ns: 30 });
        assert_eq!(e.apply(&VenueEvent::Accepted { key: req.key }, 60), Applied::Ignored);
        let fill = |id, qty| VenueEvent::Fill { key: req.key, exec_id: id, qty, price: 100.0 };
        assert!(matches!(e.apply(&fill(1, 0.5), 70), Applied::Filled { order_done: false, .. }));
        assert_eq!(e.order(req.key).map(|o| o.state), Some(OrderState::PartiallyFilled));
        assert_eq!(e.apply(&fill(1, 0.5), 71), Applied::Ignored, "same exec id twice");
        assert!(matches!(e.apply(&fill(2, 1.5), 80), Applied::Filled { order_done: true, .. }));
        assert_eq!(e.order(req.key), None, "finished orders leave the table");
        assert_eq!(e.apply(&fill(3, 1.0), 90), Applied::Ignored, "fill after done");
        assert_eq!(e.position(0).qty, 2.0);
        assert_eq!(e.trades(), 2);
        assert_eq!(e.open_order_count(), 0);
    }

    #[test]
    fn rejection_and_cancel_release_exposure() {
        let mut e = exec();
        let a = e.create(&sig("a", Side::Buy, 3.0), 0).expect("ok");
        assert_eq!(e.create(&sig("b", Side::Buy, 1.0), 0), Err(DropReason::MaxPosition));
        assert!(matches!(
            e.apply(&VenueEvent::Rejected { key: a.key, reason: "x" }, 1),
            Applied::Rejected { symbol: 0, .. }
        ));
        assert_eq!(e.apply(&VenueEvent::Rejected { key: a.key, reason: "x" }, 1), Applied::Ignored);
        let b = e.create(&sig("b", Side::Buy, 3.0), 0).expect("room again");
        e.apply(&VenueEvent::Fill { key: b.key, exec_id: 1, qty: 1.0, price: 100.0 }, 2);
        assert!(matches!(e.apply(&VenueEvent::Cancelled { key: b.key }, 3), Applied::Cancelled { symbol: 0, .. }));
        assert_eq!(e.position(0).qty, 1.0);
        // Cancelled rest no longer counts: two more fit.
        assert!(e.create(&sig("c", Side::Buy, 2.0), 0).is_ok());
    }

    #[test]
    fn reducing_means_toward_zero_counting_orders_in_flight() {
        let mut e = exec();
        assert!(!e.reduces(0, Side::Sell, 1.0), "flat: nothing reduces");
        let a = e.create(&sig("a", Side::Buy, 3.0), 0).expect("ok");
        e.apply(&VenueEvent::Fill { key: a.key, exec_id: 1, qty: 3.0, price: 100.0 }, 1);
        assert!(e.reduces(0, Side::Sell, 1.0) && e.reduces(0, Side::Sell, 3.0));
        assert!(!e.reduces(0, Side::Sell, 3.5), "crossing zero opens the other side");
        assert!(!e.reduces(0, Side::Buy, 1.0), "adding");
        // A sell of 2 in flight: only 1 more reduces.
        e.create(&sig("b", Side::Sell, 2.0), 0).expect("ok");
        assert!(e.reduces(0, Side::Sell, 1.0) && !e.reduces(0, Side::Sell, 1.5));
        assert!(!e.reduces(9, Side::Sell, 1.0), "an unknown symbol reduces nothing");
    }

    #[test]
    fn risk_limits_refuse_with_reasons() {
        let mut e = exec();
        assert_eq!(e.create(&sig("big", Side::Buy, 10.0), 0), Err(DropReason::MaxNotional));
        assert_eq!(e.create(&sig("pos", Side::Sell, 3.5), 0), Err(DropReason::MaxPosition));
        let mut other = sig("nq", Side::Buy, 1.0);
        other.symbol = 1;
        assert_eq!(e.create(&other, 0), Err(DropReason::NoQuote));
        let mut limit = sig("lim", Side::Buy, 1.0);
        limit.kind = OrderKind::Limit;
        limit.price = 2000.0;
        assert_eq!(e.create(&limit, 0), Err(DropReason::MaxNotional), "limit priced at its limit");
        assert!(e.create(&sig("ok", Side::Buy, 1.0), 0).is_ok());
        assert_eq!(e.create(&sig("ok", Side::Sell, 1.0), 0), Err(DropReason::Duplicate));
    }

    #[test]
    fn open_order_limit() {
        let mut e = exec();
        for i in 0..4 {
            let side = if i % 2 == 0 { Side::Buy } else { Side::Sell };
            e.create(&sig(&format!("o{i}"), side, 0.5), 0).expect("fits");
        }
        assert_eq!(e.create(&sig("o4", Side::Buy, 0.5), 0), Err(DropReason::MaxOpenOrders));
    }

    #[test]
    fn order_rate_is_a_token_bucket() {
        let mut e = exec();
        let mut accepted = 0;
        for i in 0..20 {
            let s = sig(&format!("r{i}"), if i % 2 == 0 { Side::Buy } else { Side::Sell }, 0.1);
            match e.create(&s, 1_000) {
                Ok(req) => {
                    accepted += 1;
                    e.apply(&VenueEvent::Fill { key: req.key, exec_id: 1, qty: 0.1, price: 100.0 }, 1_000);
                }
                Err(r) => assert_eq!(r, DropReason::MaxOrdersPerSecond),
            }
        }
        assert_eq!(accepted, 5, "burst of one second's worth");
        let s = sig("later", Side::Buy, 0.1);
        assert_eq!(e.create(&s, 1_000 + 100_000_000), Err(DropReason::MaxOrdersPerSecond));
        assert!(e.create(&s, 1_000 + 200_000_001).is_ok(), "one token back after 1/5 s");
    }

    #[test]
    fn realized_pnl_long_short_and_flip() {
        let mut p = Position::default();
        assert_eq!(p.apply(2.0, 100.0), 0.0);
        assert_eq!(p.apply(1.0, 103.0), 0.0);
        assert!((p.avg_price - 101.0).abs() < 1e-12);
        assert!((p.apply(-1.5, 105.0) - 6.0).abs() < 1e-12);
        assert_eq!(p.qty, 1.5);
        // Sell 3.5: closes 1.5 at +4 each, then opens 2 short at 105.
        assert!((p.apply(-3.5, 105.0) - 6.0).abs() < 1e-12);
        assert_eq!((p.qty, p.avg_price), (-2.0, 105.0));
        assert!((p.apply(2.0, 100.0) - 10.0).abs() < 1e-12, "short gains when price falls");
        assert_eq!((p.qty, p.avg_price), (0.0, 0.0));
        assert!((p.realized_pnl - 22.0).abs() < 1e-12);
        assert_eq!(p.fills, 5);
    }

    #[test]
    fn stale_keys_do_not_touch_reused_slots() {
        let mut e = exec();
        let a = e.create(&sig("a", Side::Buy, 1.0), 0).expect("ok");
        e.apply(&VenueEvent::Fill { key: a.key, exec_id: 1, qty: 1.0, price: 100.0 }, 1);
        let b = e.create(&sig("b", Side::Buy, 1.0), 0).expect("ok");
        assert_eq!(a.key.slot(), b.key.slot(), "slot reused");
        assert_eq!(e.apply(&VenueEvent::Cancelled { key: a.key }, 2), Applied::Ignored);
        assert_eq!(e.order(b.key).map(|o| o.state), Some(OrderState::New));
    }

    #[test]
    fn overfill_is_clamped() {
        let mut e = exec();
        let a = e.create(&sig("a", Side::Buy, 1.0), 0).expect("ok");
        e.apply(&VenueEvent::Fill { key: a.key, exec_id: 1, qty: 5.0, price: 100.0 }, 1);
        assert_eq!(e.position(0).qty, 1.0);
    }

    #[test]
    fn ids_within_the_retention_survive_a_restore_as_duplicates() {
        let day = 86_400;
        let mut e = Executor::with_ids(&risk(), 1, 16, day);
        e.set_quote(0, 100.0, 100.0);
        let t0 = 1_800_000_000;
        for (id, at) in [("a", t0), ("b", t0 + day / 2), ("c", t0 + day)] {
            e.set_wall_seconds(at);
            let o = e.create(&sig(id, Side::Buy, 1.0), 0).expect("order");
            e.apply(&VenueEvent::Cancelled { key: o.key }, 0);
        }
        e.set_wall_seconds(t0 + day + 10);
        let ids = e.recent_ids();
        let kept: Vec<(&str, u32)> = ids.iter().map(|(i, t)| (i.as_str(), *t)).collect();
        assert_eq!(kept, [("b", t0 + day / 2), ("c", t0 + day)], "a is older than the retention");
        let mut fresh = Executor::with_ids(&risk(), 1, 16, day);
        fresh.set_quote(0, 100.0, 100.0);
        fresh.remember_ids_at(ids);
        assert_eq!(fresh.create(&sig("c", Side::Buy, 1.0), 0).err(), Some(DropReason::Duplicate));
        assert_eq!(fresh.create(&sig("b", Side::Buy, 1.0), 0).err(), Some(DropReason::Duplicate));
        assert!(fresh.create(&sig("a", Side::Buy, 1.0), 0).is_ok(), "beyond the retention an id is new");
        assert_eq!(fresh.ids_forgotten_early(), 0);
    }

    #[test]
    fn a_memory_too_small_for_the_retention_counts_what_it_forgets_early() {
        let mut e = Executor::with_ids(&risk(), 1, 2, 3600);
        e.set_wall_seconds(1_800_000_000);
        for id in ["x", "y", "z", "w"] {
            e.claim_new(SignalId::parse(id).expect("id"));
        }
        assert_eq!(e.ids_forgotten_early(), 2, "x and y were forgotten within the hour");
        assert!(!e.knows(&SignalId::parse("x").expect("id")));
    }

    #[test]
    fn an_adopted_fill_makes_its_id_a_duplicate() {
        let mut e = Executor::new(&risk(), 1);
        e.set_quote(0, 100.0, 100.0);
        let id = SignalId::parse("sent-before-restart").expect("id");
        let booked = e.apply(
            &VenueEvent::Adopted {
                client_id: id,
                symbol: 0,
                side: Side::Buy,
                qty: 1.0,
                price: 100.0,
                only_if_unknown: false,
            },
            0,
        );
        assert!(matches!(booked, Applied::Filled { .. }));
        assert!(e.knows(&id), "a replayed signal with this id must be refused");
        assert_eq!(e.create(&sig("sent-before-restart", Side::Buy, 1.0), 0).err(), Some(DropReason::Duplicate));
    }

    #[test]
    fn remembers_a_bounded_number_of_ids() {
        let mut e = Executor::new(
            &RiskConfig { max_position: 1e12, max_orders_per_second: u32::MAX, max_notional: 1e15, max_open_orders: 1 },
            1,
        );
        e.set_quote(0, 1.0, 1.0);
        for i in 0..(RECENT_IDS + 10) {
            let r = e.create(&sig(&format!("id{i}"), Side::Buy, 1.0), i as u64).expect("ok");
            e.apply(&VenueEvent::Fill { key: r.key, exec_id: 1, qty: 1.0, price: 1.0 }, 0);
        }
        assert_eq!(e.recent.len(), RECENT_IDS);
        assert!(e.create(&sig("id0", Side::Buy, 1.0), u64::MAX / 2).is_ok(), "forgotten after RECENT_IDS");
    }
}
