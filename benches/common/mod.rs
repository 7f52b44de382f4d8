//! What the benches share.

use std::time::Duration;

use mt5bot::config::Config;

use mt5bot::domain::types::OrderKind;

/// A config in which every tick of an alternating price path crosses the averages, so every tick
/// produces exactly one market order (buy, sell, buy, ...), and nothing limits the rate.
pub fn one_order_per_tick() -> Config {
    let mut cfg = Config::embedded();
    cfg.model.fast_period = 1;
    cfg.model.slow_period = 2;
    cfg.model.threshold_bps = 0.0;
    cfg.model.order_type = OrderKind::Market;
    cfg.risk.max_orders_per_second = u32::MAX;
    cfg.risk.max_position = 10.0;
    let p = &mut cfg.venue.paper;
    p.latency = Duration::ZERO;
    cfg
}

/// `median unit (min x, max y)` of run figures, rounded to whole units.
pub fn median_min_max_f64(mut v: Vec<f64>, unit: &str) -> String {
    v.sort_by(|a, b| a.total_cmp(b));
    format!("{:.0} {unit} (min {:.0}, max {:.0})", v[v.len() / 2], v[0], v[v.len() - 1])
}
