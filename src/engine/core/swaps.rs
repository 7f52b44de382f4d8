//! The paper venue's costs beyond the fill: commissions per notional
//! (`feed.symbols[].commission_per_million`, per million of notional in the symbol's price
//! currency, converted to account currency at the symbol's rate) and swaps: at each night's rollover (`venue.paper.rollover` in its zone,
//! 17:00 New York by default, as FX brokers roll) every open position is charged or credited its
//! symbol's `swap_long` or `swap_short` per lot, three nights' worth on `triple_swap_day` (the
//! weekend's), none on Saturday and Sunday, as MT5 brokers do. A real venue charges its own
//! swaps (MT5 reports them in the balance), so only paper books them. Each is journaled, so a
//! restart keeps it; a rollover passed while mt5bot was down is not charged again.

use jiff::tz::TimeZone;
use jiff::Timestamp;

use super::*;

/// When the next rollover is and what each symbol's position pays at it.
#[derive(Debug)]
pub(super) struct Rollover {
    on: bool,
    minutes: u32,
    tz: TimeZone,
    /// 0 = Monday.
    triple: u8,
    /// Per symbol: (long, short) per lot and night.
    rates: Vec<(f64, f64)>,
    /// Unix ns of the next rollover; 0 until the first wall time.
    next_ns: i128,
    /// Per symbol: commission per million of notional (empty when none is set, or off paper).
    per_million: Vec<f64>,
}

impl Rollover {
    pub(super) fn new(cfg: &Config) -> Rollover {
        let rates: Vec<(f64, f64)> = cfg.feed.symbols.iter().map(|s| (s.swap_long, s.swap_short)).collect();
        let p = &cfg.venue.paper;
        Rollover {
            on: cfg.venue.kind == crate::config::VenueKind::Paper && rates.iter().any(|r| *r != (0.0, 0.0)),
            minutes: p.rollover_minutes,
            tz: p.rollover_tz.clone(),
            triple: p.triple_swap_day,
            rates,
            next_ns: 0,
            per_million: if cfg.venue.kind == crate::config::VenueKind::Paper
                && cfg.feed.symbols.iter().any(|s| s.commission_per_million > 0.0)
            {
                cfg.feed.symbols.iter().map(|s| s.commission_per_million).collect()
            } else {
                Vec::new()
            },
        }
    }

    /// The commission per notional of a paper fill of `qty` at `price`, in account currency.
    #[inline]
    pub(super) fn notional_commission(
        &self,
        symbol: SymbolId,
        qty: f64,
        price: f64,
        protection: &crate::engine::protection::Protection,
    ) -> Option<f64> {
        let rate = *self.per_million.get(symbol as usize)?;
        (rate > 0.0).then(|| qty * price * protection.money_per_price_unit(symbol) * rate / 1e6)
    }

    /// The first rollover strictly after `unix_ns`, and how many nights it charges (0 on a
    /// weekend day).
    fn after(&self, unix_ns: i128) -> (i128, u8) {
        let fallback = (unix_ns + 86_400_000_000_000, 1);
        let Ok(ts) = Timestamp::from_nanosecond(unix_ns) else { return fallback };
        let local = ts.to_zoned(self.tz.clone());
        let (h, m) = ((self.minutes / 60) as i8, (self.minutes % 60) as i8);
        let mut day = local.date();
        for _ in 0..3 {
            if let Ok(at) = day.at(h, m, 0, 0).to_zoned(self.tz.clone()) {
                if at.timestamp() > ts {
                    let weekday = at.weekday().to_monday_zero_offset() as u8;
                    let nights = match weekday {
                        5 | 6 => 0,
                        d if d == self.triple => 3,
                        _ => 1,
                    };
                    return (at.timestamp().as_nanosecond(), nights);
                }
            }
            match day.tomorrow() {
                Ok(d) => day = d,
                Err(_) => return fallback,
            }
        }
        fallback
    }
}

impl<V: Venue, C: Clock> TradingCore<V, C> {
    /// Books the swaps of every rollover passed by `unix_ns` (one comparison when none is due).
    #[inline]
    pub(super) fn book_swaps(&mut self, unix_ns: i128) {
        if !self.rollover.on || (self.rollover.next_ns != 0 && unix_ns < self.rollover.next_ns) {
            return;
        }
        self.book_swaps_due(unix_ns);
    }

    #[cold]
    fn book_swaps_due(&mut self, unix_ns: i128) {
        if self.rollover.next_ns == 0 {
            self.rollover.next_ns = self.rollover.after(unix_ns).0;
            return;
        }
        while unix_ns >= self.rollover.next_ns {
            let at = self.rollover.next_ns;
            // The nights of the rollover at `at`: it is the first one after an instant before it.
            let nights = self.rollover.after(at - 1).1;
            for s in 0..self.rollover.rates.len() {
                let qty = self.executor.position(s as SymbolId).qty;
                if nights == 0 || qty.abs() < QTY_EPSILON {
                    continue;
                }
                let (long, short) = self.rollover.rates[s];
                let amount = qty.abs() * if qty > 0.0 { long } else { short } * f64::from(nights);
                if amount == 0.0 {
                    continue;
                }
                self.journal_record(
                    journal::Kind::Swap,
                    SignalId::default(),
                    s as SymbolId,
                    SignalSource::Model,
                    amount,
                    0.0,
                    0,
                );
                log::info!(
                    "{}: swap {amount:+.2} for {qty} lots over {nights} night{} (rollover {})",
                    self.symbols.get(s).map_or("?", String::as_str),
                    if nights == 1 { "" } else { "s" },
                    crate::support::timefmt::rfc3339_micros(at)
                );
                if let Some(t) = self.protection.on_swap(amount) {
                    self.trip(t);
                }
            }
            self.rollover.next_ns = self.rollover.after(at).0;
        }
    }
}
