//! The trading model: an EWMA crossover on mid prices, one state per symbol.
//!
//! A buy signal fires when the fast average rises above the slow one by more than
//! `model.threshold_bps`, a sell when it falls below by as much; each crossing fires once. The
//! model also predicts the next tick's return (momentum: the fast/slow gap scaled down by the fast
//! period) and reports its absolute error in basis points, which the drift detector watches.
//!
//! Sans-IO and deterministic: the same ticks give the same signals. Nothing here allocates after
//! [`Model::new`].

use crate::config::ModelConfig;

use crate::domain::types::{OrderKind, Side, Tick};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Regime {
    Unknown,
    Above,
    Below,
}

#[derive(Debug, Clone, Copy)]
struct SymbolState {
    fast: f64,
    slow: f64,
    last_mid: f64,
    predicted_return: f64,
    ticks: u64,
    regime: Regime,
}

/// What the model wants done after a tick.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    pub side: Side,
    pub qty: f64,
    pub kind: OrderKind,
    pub price: f64,
}

/// The outcome of one tick: maybe a decision, and the prediction error when there was a prediction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelOutput {
    pub decision: Option<Decision>,
    /// |actual - predicted| return in basis points.
    pub abs_error_bps: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct Model {
    fast_alpha: f64,
    slow_alpha: f64,
    warm_up: u64,
    fast_period: f64,
    cfg: ModelConfig,
    states: Vec<SymbolState>,
}

impl Model {
    pub fn new(cfg: &ModelConfig, symbols: usize) -> Self {
        let init = SymbolState {
            fast: 0.0,
            slow: 0.0,
            last_mid: 0.0,
            predicted_return: 0.0,
            ticks: 0,
            regime: Regime::Unknown,
        };
        Model {
            fast_alpha: 2.0 / (f64::from(cfg.fast_period) + 1.0),
            slow_alpha: 2.0 / (f64::from(cfg.slow_period) + 1.0),
            warm_up: u64::from(cfg.slow_period),
            fast_period: f64::from(cfg.fast_period),
            cfg: cfg.clone(),
            states: vec![init; symbols],
        }
    }

    /// Feeds a tick; ticks for unknown symbols or with unusable prices are ignored.
    #[inline]
    pub fn on_tick(&mut self, tick: &Tick) -> ModelOutput {
        let none = ModelOutput { decision: None, abs_error_bps: None };
        let mid = tick.mid();
        let Some(s) = self.states.get_mut(tick.symbol as usize) else { return none };
        if !(mid.is_finite() && mid > 0.0) {
            return none;
        }
        let mut abs_error_bps = None;
        if s.ticks == 0 {
            s.fast = mid;
            s.slow = mid;
        } else {
            let actual = (mid / s.last_mid).ln();
            abs_error_bps = Some((actual - s.predicted_return).abs() * 1e4);
            s.fast += self.fast_alpha * (mid - s.fast);
            s.slow += self.slow_alpha * (mid - s.slow);
        }
        s.last_mid = mid;
        s.ticks += 1;
        let gap = (s.fast - s.slow) / s.slow;
        s.predicted_return = gap / self.fast_period;
        if s.ticks < self.warm_up {
            return ModelOutput { decision: None, abs_error_bps };
        }
        let gap_bps = gap * 1e4;
        let side = if gap_bps > self.cfg.threshold_bps && s.regime != Regime::Above {
            s.regime = Regime::Above;
            Side::Buy
        } else if gap_bps < -self.cfg.threshold_bps && s.regime != Regime::Below {
            s.regime = Regime::Below;
            Side::Sell
        } else {
            return ModelOutput { decision: None, abs_error_bps };
        };
        let price = match self.cfg.order_type {
            // `model.order_type` is market or limit (a stop is never configured).
            OrderKind::Market | OrderKind::Stop => 0.0,
            // Inside the touch: a buy rests just above the bid, a sell just below the ask.
            OrderKind::Limit => match side {
                Side::Buy => tick.bid * (1.0 + self.cfg.limit_offset_bps * 1e-4),
                Side::Sell => tick.ask * (1.0 - self.cfg.limit_offset_bps * 1e-4),
            },
        };
        ModelOutput {
            decision: Some(Decision { side, qty: self.cfg.order_qty, kind: self.cfg.order_type, price }),
            abs_error_bps,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::domain::types::SymbolId;

    fn tick(symbol: SymbolId, mid: f64) -> Tick {
        Tick { symbol, bid: mid - 0.0001, ask: mid + 0.0001, recv_ns: 0 }
    }

    fn model() -> Model {
        let mut cfg = Config::embedded().model;
        cfg.fast_period = 2;
        cfg.slow_period = 5;
        cfg.threshold_bps = 1.0;
        Model::new(&cfg, 2)
    }

    #[test]
    fn quiet_during_warm_up_then_one_signal_per_crossing() {
        let mut m = model();
        let mut sides = Vec::new();
        let path = [1.0; 10].into_iter().chain([1.01; 10]).chain([0.99; 10]).chain([0.98; 5]);
        for (i, mid) in path.enumerate() {
            if let Some(d) = m.on_tick(&tick(0, mid)).decision {
                sides.push((i, d.side));
            }
        }
        assert_eq!(sides.len(), 2, "{sides:?}");
        assert_eq!(sides[0], (10, Side::Buy));
        assert_eq!(sides[1].1, Side::Sell);
        assert!(sides[1].0 >= 20);
    }

    #[test]
    fn symbols_are_independent_and_bad_input_ignored() {
        let mut m = model();
        for _ in 0..10 {
            m.on_tick(&tick(0, 1.0));
        }
        assert_eq!(m.on_tick(&tick(1, 2.0)).decision, None);
        assert_eq!(m.on_tick(&tick(9, 2.0)), ModelOutput { decision: None, abs_error_bps: None });
        assert_eq!(m.on_tick(&tick(0, f64::NAN)).abs_error_bps, None);
        assert!(m.on_tick(&tick(0, 1.02)).decision.is_some());
    }

    #[test]
    fn reports_prediction_error() {
        let mut m = model();
        assert_eq!(m.on_tick(&tick(0, 1.0)).abs_error_bps, None);
        let e = m.on_tick(&tick(0, 1.0001)).abs_error_bps.expect("error after two ticks");
        assert!((e - 1.0).abs() < 0.01, "{e}");
    }
}
