//! The paper venue: a simulated broker inside the engine.
//!
//! An order is acknowledged `venue.paper.latency` after it is submitted. A market order then fills
//! in full at the touch (ask for a buy, bid for a sell) made worse by `slippage_bps`. A limit order
//! fills when the market reaches its price, at its price or better, taking at most
//! `venue.paper.depth` per tick, so large orders fill in parts; until then it rests.
//!
//! The table of orders is allocated once, sized by `risk.max_open_orders`.

use crate::config::PaperConfig;
use crate::domain::types::{Nanos, OrderKind, OrderRequest, Side, Tick, VenueEvent};

use crate::domain::venue::Venue;

#[derive(Debug, Clone, Copy)]
struct PaperOrder {
    req: OrderRequest,
    /// When the venue "receives" it.
    due: Nanos,
    accepted: bool,
    remaining: f64,
}

/// The simulated venue.
#[derive(Debug)]
pub struct PaperVenue {
    latency: Nanos,
    slippage: f64,
    depth: f64,
    quotes: Vec<Option<(f64, f64)>>,
    orders: Vec<PaperOrder>,
    capacity: usize,
    next_exec_id: u64,
    /// Per symbol: commission per lot and side (0: none).
    commissions: Vec<f64>,
    /// Plays a broker that holds stop orders ([`Venue::rests_stops`]), for tests of the engine's
    /// resting stop-losses and take-profits.
    rests_stops: bool,
}

impl PaperVenue {
    pub fn new(cfg: &PaperConfig, symbols: usize, max_open_orders: usize) -> Self {
        PaperVenue {
            latency: cfg.latency.as_nanos().min(u128::from(u64::MAX)) as Nanos,
            slippage: cfg.slippage_bps * 1e-4,
            depth: cfg.depth,
            quotes: vec![None; symbols],
            orders: Vec::with_capacity(max_open_orders),
            capacity: max_open_orders,
            next_exec_id: 1,
            commissions: vec![0.0; symbols],
            rests_stops: false,
        }
    }

    /// Charges `per_lot[symbol]` per lot of every fill (`feed.symbols[].commission_per_lot`).
    /// The paper venue a configuration describes: its fills, the feed's symbols and their
    /// commissions.
    pub fn for_config(cfg: &crate::config::Config) -> Self {
        PaperVenue::new(&cfg.venue.paper, cfg.feed.symbols.len(), cfg.risk.max_open_orders)
            .with_commissions(cfg.feed.symbols.iter().map(|s| s.commission_per_lot).collect())
    }

    /// A paper venue that takes a position's stop-loss and take-profit as resting orders.
    pub fn with_resting_stops(mut self, on: bool) -> Self {
        self.rests_stops = on;
        self
    }

    pub fn with_commissions(mut self, per_lot: Vec<f64>) -> Self {
        self.commissions = per_lot;
        self
    }

    /// Fills what it can of order `i`; returns true when nothing remains.
    fn try_fill(&mut self, i: usize, events: &mut Vec<VenueEvent>) -> bool {
        let o = self.orders[i];
        let Some((bid, ask)) = self.quotes[o.req.symbol as usize] else { return false };
        let (qty, price) = match (o.req.kind, o.req.side) {
            (OrderKind::Market, Side::Buy) => (o.remaining, ask * (1.0 + self.slippage)),
            (OrderKind::Market, Side::Sell) => (o.remaining, bid * (1.0 - self.slippage)),
            (OrderKind::Limit, Side::Buy) if ask <= o.req.price => (o.remaining.min(self.depth), ask),
            (OrderKind::Limit, Side::Sell) if bid >= o.req.price => (o.remaining.min(self.depth), bid),
            (OrderKind::Limit, _) => return false,
            // A stop: a market order once the price trades through its level.
            (OrderKind::Stop, Side::Buy) if ask >= o.req.price => (o.remaining, ask * (1.0 + self.slippage)),
            (OrderKind::Stop, Side::Sell) if bid <= o.req.price => (o.remaining, bid * (1.0 - self.slippage)),
            (OrderKind::Stop, _) => return false,
        };
        let exec_id = self.next_exec_id;
        self.next_exec_id += 1;
        events.push(VenueEvent::Fill { key: o.req.key, exec_id, qty, price });
        let rate = self.commissions.get(o.req.symbol as usize).copied().unwrap_or(0.0);
        if rate > 0.0 {
            events.push(VenueEvent::Commission { symbol: o.req.symbol, amount: rate * qty });
        }
        self.orders[i].remaining -= qty;
        self.orders[i].remaining <= 1e-12
    }
}

impl Venue for PaperVenue {
    fn name(&self) -> &'static str {
        "paper"
    }

    fn submit(&mut self, order: &OrderRequest, now: Nanos) -> Result<(), &'static str> {
        if self.orders.len() >= self.capacity {
            return Err("too many open orders");
        }
        if (order.symbol as usize) >= self.quotes.len() {
            return Err("unknown symbol");
        }
        self.orders.push(PaperOrder {
            req: *order,
            due: now.saturating_add(self.latency),
            accepted: false,
            remaining: order.qty,
        });
        Ok(())
    }

    fn on_tick(&mut self, tick: &Tick, now: Nanos, events: &mut Vec<VenueEvent>) {
        if let Some(q) = self.quotes.get_mut(tick.symbol as usize) {
            *q = Some((tick.bid, tick.ask));
        }
        let mut i = 0;
        while i < self.orders.len() {
            let o = self.orders[i];
            if o.accepted && o.req.symbol == tick.symbol && self.try_fill(i, events) {
                self.orders.swap_remove(i);
                continue;
            }
            i += 1;
        }
        self.poll(now, events);
    }

    fn poll(&mut self, now: Nanos, events: &mut Vec<VenueEvent>) {
        let mut i = 0;
        while i < self.orders.len() {
            let o = self.orders[i];
            if !o.accepted && o.due <= now {
                events.push(VenueEvent::Accepted { key: o.req.key });
                self.orders[i].accepted = true;
                if self.quotes[o.req.symbol as usize].is_none() {
                    events.push(VenueEvent::Rejected { key: o.req.key, reason: "no market" });
                    self.orders.swap_remove(i);
                    continue;
                }
                if self.try_fill(i, events) {
                    self.orders.swap_remove(i);
                    continue;
                }
                if o.req.immediate {
                    // Immediate or cancel: what did not fill at once does not rest.
                    events.push(VenueEvent::Cancelled { key: o.req.key });
                    self.orders.swap_remove(i);
                    continue;
                }
            }
            i += 1;
        }
    }

    fn cancel(&mut self, order: &OrderRequest, _now: Nanos, events: &mut Vec<VenueEvent>) -> Result<(), &'static str> {
        let i = self.orders.iter().position(|o| o.req.key == order.key).ok_or("not open at the venue")?;
        self.orders.swap_remove(i);
        events.push(VenueEvent::Cancelled { key: order.key });
        Ok(())
    }

    fn next_deadline(&self) -> Option<Nanos> {
        self.orders.iter().filter(|o| !o.accepted).map(|o| o.due).min()
    }

    fn is_up(&self) -> bool {
        true
    }

    fn rests_stops(&self) -> bool {
        self.rests_stops
    }

    fn open_orders(&self) -> usize {
        self.orders.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::types::{OrderKey, SignalId};
    use std::time::Duration;

    fn venue() -> PaperVenue {
        let cfg = PaperConfig {
            latency: Duration::from_nanos(100),
            slippage_bps: 10.0,
            depth: 2.0,
            ..crate::config::Config::embedded().venue.paper
        };
        PaperVenue::new(&cfg, 1, 4)
    }

    fn order(n: u64, side: Side, kind: OrderKind, qty: f64, price: f64) -> OrderRequest {
        OrderRequest {
            key: OrderKey::new(n, n as u32),
            client_id: SignalId::default(),
            symbol: 0,
            side,
            qty,
            kind,
            price,
            sl: 0.0,
            tp: 0.0,
            immediate: false,
            until_cancelled: false,
        }
    }

    fn tick(bid: f64, ask: f64) -> Tick {
        Tick { symbol: 0, bid, ask, recv_ns: 0 }
    }

    #[test]
    fn market_order_fills_after_latency_with_slippage() {
        let mut v = venue();
        let mut ev = Vec::new();
        v.on_tick(&tick(99.0, 101.0), 0, &mut ev);
        v.submit(&order(1, Side::Buy, OrderKind::Market, 5.0, 0.0), 0).expect("ok");
        assert_eq!(v.next_deadline(), Some(100));
        v.poll(99, &mut ev);
        assert!(ev.is_empty());
        v.poll(100, &mut ev);
        assert_eq!(ev[0], VenueEvent::Accepted { key: OrderKey::new(1, 1) });
        match ev[1] {
            VenueEvent::Fill { qty, price, .. } => {
                assert_eq!(qty, 5.0);
                assert!((price - 101.0 * 1.001).abs() < 1e-9);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(v.open_orders(), 0);
    }

    #[test]
    fn a_resting_order_can_be_cancelled_once() {
        let mut v = venue();
        let mut ev = Vec::new();
        v.on_tick(&tick(99.0, 101.0), 0, &mut ev);
        let o = order(1, Side::Buy, OrderKind::Limit, 3.0, 90.0);
        v.submit(&o, 0).expect("ok");
        v.poll(100, &mut ev);
        ev.clear();
        v.cancel(&o, 200, &mut ev).expect("cancelled");
        assert_eq!(ev, vec![VenueEvent::Cancelled { key: o.key }]);
        assert_eq!(v.open_orders(), 0);
        assert!(v.cancel(&o, 300, &mut ev).is_err(), "gone");
        v.on_tick(&tick(80.0, 85.0), 400, &mut ev);
        assert_eq!(ev.len(), 1, "a cancelled order never fills");
    }

    #[test]
    fn limit_order_rests_then_fills_in_parts() {
        let mut v = venue();
        let mut ev = Vec::new();
        v.on_tick(&tick(99.0, 101.0), 0, &mut ev);
        v.submit(&order(1, Side::Buy, OrderKind::Limit, 3.0, 100.0), 0).expect("ok");
        v.poll(100, &mut ev);
        assert_eq!(ev.len(), 1, "accepted, not filled: {ev:?}");
        v.on_tick(&tick(99.0, 100.5), 150, &mut ev);
        assert_eq!(ev.len(), 1, "still above the limit");
        v.on_tick(&tick(99.0, 99.5), 200, &mut ev);
        assert_eq!(ev[1], VenueEvent::Fill { key: OrderKey::new(1, 1), exec_id: 1, qty: 2.0, price: 99.5 });
        v.on_tick(&tick(98.0, 99.0), 300, &mut ev);
        assert_eq!(ev[2], VenueEvent::Fill { key: OrderKey::new(1, 1), exec_id: 2, qty: 1.0, price: 99.0 });
        assert_eq!(v.open_orders(), 0);
    }

    #[test]
    fn an_immediate_limit_fills_what_it_can_at_once_and_cancels_the_rest() {
        let mut v = venue();
        let mut ev = Vec::new();
        v.on_tick(&tick(99.0, 101.0), 0, &mut ev);
        // Marketable for two of three (depth 2): two fill, one is cancelled, nothing rests.
        let through = OrderRequest { immediate: true, ..order(1, Side::Sell, OrderKind::Limit, 3.0, 98.0) };
        v.submit(&through, 0).expect("ok");
        v.poll(100, &mut ev);
        let key = through.key;
        assert_eq!(
            ev[1..],
            [VenueEvent::Fill { key, exec_id: 1, qty: 2.0, price: 99.0 }, VenueEvent::Cancelled { key }]
        );
        // The market moved away before it arrived: cancelled whole.
        ev.clear();
        let late = OrderRequest { immediate: true, ..order(2, Side::Sell, OrderKind::Limit, 1.0, 99.5) };
        v.submit(&late, 100).expect("ok");
        v.poll(200, &mut ev);
        assert_eq!(ev, [VenueEvent::Accepted { key: late.key }, VenueEvent::Cancelled { key: late.key }]);
        assert_eq!(v.open_orders(), 0);
        v.on_tick(&tick(100.0, 101.0), 300, &mut ev);
        assert_eq!(ev.len(), 2, "nothing rested to fill later");
    }

    #[test]
    fn sell_limit_and_refusals() {
        let mut v = venue();
        let mut ev = Vec::new();
        // No quote yet: accepted, then rejected.
        v.submit(&order(1, Side::Sell, OrderKind::Limit, 1.0, 100.0), 0).expect("ok");
        v.poll(100, &mut ev);
        assert!(matches!(ev[1], VenueEvent::Rejected { .. }));
        v.on_tick(&tick(100.5, 101.0), 100, &mut ev);
        v.submit(&order(2, Side::Sell, OrderKind::Limit, 1.0, 100.0), 100).expect("ok");
        v.poll(200, &mut ev);
        assert_eq!(ev.last(), Some(&VenueEvent::Fill { key: OrderKey::new(2, 2), exec_id: 1, qty: 1.0, price: 100.5 }));
        for n in 3..7 {
            v.submit(&order(n, Side::Buy, OrderKind::Limit, 1.0, 1.0), 0).expect("room");
        }
        assert_eq!(v.submit(&order(9, Side::Buy, OrderKind::Limit, 1.0, 1.0), 0), Err("too many open orders"));
    }
}
