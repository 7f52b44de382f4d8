//! Market hours in the core: whether a symbol's market takes a signal, what a change of phase
//! sets off (`at_close: flatten` closes the symbol's position before the close), and the gauges.

use super::*;
use crate::domain::types::AtClose;
use crate::engine::sessions::Phase;
use crate::link::report::MarketStatus;

impl<V: Venue, C: Clock> TradingCore<V, C> {
    /// Whether `signal`'s market takes it now: open, or closing and either trading on to the close
    /// or taking only what reduces the position.
    #[inline]
    pub(super) fn market_takes(&self, signal: &Signal) -> bool {
        match self.market.phase(signal.symbol) {
            Phase::Open => true,
            Phase::Closing => {
                self.market.at_close(signal.symbol) == AtClose::Nothing
                    || self.executor.reduces(signal.symbol, signal.side, signal.qty)
            }
            Phase::Closed | Phase::Opening => false,
        }
    }

    /// Moves each symbol's market to its phase at `unix_ns` and acts on the changes; sets the
    /// gauges once a second. One comparison per turn while nothing is due.
    #[inline]
    pub(super) fn update_markets(&mut self, unix_ns: i128) {
        let mut changes = std::mem::take(&mut self.market_changes);
        self.market.update(unix_ns, |c| changes.push(c));
        for c in changes.drain(..) {
            self.on_market_change(c);
        }
        self.market_changes = changes;
        let second = (unix_ns / 1_000_000_000) as i64;
        if second != self.market_second {
            self.market_second = second;
            for (s, ticked) in self.ticked.iter_mut().enumerate() {
                if std::mem::take(ticked) {
                    if let Some(g) = self.metrics.last_tick.get(s) {
                        g.set(second as f64);
                    }
                }
            }
            for (m, g) in self.market.symbols().iter().zip(&self.next_change_gauges) {
                if let (Some(g), Some(at)) = (g, m.next_change_ns) {
                    g.set(((at - unix_ns) as f64 * 1e-9).max(0.0));
                }
            }
            // Closing with at_close: flatten, a position still open (restored after a restart,
            // or its closing order refused or not yet possible) is closed again, once a second.
            for s in 0..self.symbols.len() as SymbolId {
                if self.market.phase(s) == Phase::Closing && self.market.at_close(s) == AtClose::Flatten {
                    self.flatten_before_close(s);
                }
            }
        }
    }

    /// Closes what is left of `symbol`'s position with a market order, counting the orders
    /// already closing it; nothing while the venue cannot take orders.
    fn flatten_before_close(&mut self, symbol: SymbolId) {
        let qty = self.executor.position(symbol).qty;
        if qty.abs() < QTY_EPSILON || !self.venue.ready_for_orders() {
            return;
        }
        let side = if qty > 0.0 { Side::Sell } else { Side::Buy };
        let left = qty.abs() - self.executor.pending(symbol, side);
        if left >= QTY_EPSILON {
            self.close_position(symbol, left * qty.signum(), 'C', SignalSource::Control);
            self.metrics.open_orders.set(self.executor.open_order_count() as i64);
        }
    }

    #[cold]
    fn on_market_change(&mut self, c: PhaseChange) {
        let s = c.symbol as usize;
        if let Some(g) = self.metrics.market_open.get(s) {
            g.set(i64::from(c.to.is_open()));
        }
        let name = self.symbols.get(s).cloned().unwrap_or_default();
        let calendar = self.market.calendar_of(c.symbol).map_or("always", |c| c.name.as_str()).to_owned();
        let next = self.market.symbols().get(s).and_then(|m| m.next_change_ns);
        let when = next.map_or_else(|| "not within 400 days".to_owned(), crate::support::timefmt::rfc3339_micros);
        match c.to {
            Phase::Open => log::info!("{name}: market open (calendar {calendar}); it closes {when}"),
            Phase::Opening => {
                log::info!("{name}: market opened (calendar {calendar}); signals are taken from {when} (open_after)")
            }
            Phase::Closed => log::info!("{name}: market closed (calendar {calendar}); it opens {when}"),
            Phase::Closing => {
                log::warn!("{name}: market closes {when} (calendar {calendar}); at_close: {}", c.at_close.as_str());
                if c.at_close == AtClose::Flatten {
                    // The symbol's orders go; the position is closed by `flatten_before_close`.
                    let symbol = c.symbol;
                    self.cancel_where(|r| r.symbol == symbol);
                    self.flatten_before_close(symbol);
                }
            }
        }
    }

    /// The venue reported its own trading hours for `symbol`: compares them with the symbol's
    /// calendar over the coming week, a quarter of an hour at a time (sampled mid-quarter, so
    /// edges a few minutes apart agree), and warns when they disagree.
    #[cold]
    pub(super) fn compare_venue_sessions(&mut self, symbol: SymbolId) {
        const QUARTER: i128 = 900 * 1_000_000_000;
        let Some(windows) = self.venue.trade_sessions(symbol) else { return };
        let calendar = self.market.calendar_of(symbol);
        let now = self.clock.unix_nanos();
        let start = now - now.rem_euclid(QUARTER) + QUARTER / 2;
        let (mut differ, mut first) = (0u32, None);
        for k in 0..(7 * 96) {
            let t = start + k * QUARTER;
            let w = crate::domain::types::week_second_utc((t / 1_000_000_000) as i64);
            let venue = windows.iter().any(|&(a, b)| a <= w && w < b);
            let ours = calendar.is_none_or(|c| c.is_open_at(t));
            if venue != ours {
                differ += 1;
                first.get_or_insert((t, venue));
            }
        }
        let name = self.symbols.get(symbol as usize).map_or("?", String::as_str);
        let cal = calendar.map_or("always", |c| c.name.as_str());
        let venue = self.venue.name();
        match first {
            None => log::info!("{name}: the {venue} terminal's session times agree with calendar {cal} over the coming week"),
            Some((t, venue_open)) => log::warn!(
                "{name}: the {venue} terminal's session times disagree with calendar {cal} in {differ} of the coming \
                 week's 672 quarter hours, first at {} (terminal: {}, calendar: {}); set sessions: in the config to the \
                 broker's hours",
                crate::support::timefmt::rfc3339_micros(t),
                if venue_open { "open" } else { "closed" },
                if venue_open { "closed" } else { "open" },
            ),
        }
    }

    /// Each symbol's market: its calendar, phase and next change.
    pub(super) fn market_status(&self) -> Vec<MarketStatus> {
        self.market
            .symbols()
            .iter()
            .enumerate()
            .map(|(s, m)| MarketStatus {
                symbol: self.symbols.get(s).cloned().unwrap_or_default(),
                calendar: self
                    .market
                    .calendar_of(s as SymbolId)
                    .map_or_else(|| "always".to_owned(), |c| c.name.clone()),
                open: m.phase.is_open(),
                phase: m.phase.as_str(),
                next_change: m.next_change_ns.map(crate::support::timefmt::rfc3339_micros),
            })
            .collect()
    }
}
