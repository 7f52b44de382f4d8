//! The engine on a CSV replay for integration tests: EURUSD rows at one pip of spread, the paper
//! venue, and a manual clock the rows move (`mt5bot::engine::replay`).

use mt5bot::config::Config;
use mt5bot::domain::clock::Clock;
use mt5bot::domain::types::{DropReason, Side, Signal, SignalId, Stops};
use mt5bot::engine::replay::Replay;
use mt5bot::telemetry::metrics::Metrics;

use super::TempDir;

/// The ask is the bid plus this.
pub const SPREAD: f64 = 0.0001;

/// A replay of EURUSD rows of (seconds from `start`, bid), 100,000 units a lot, with config
/// `sections` added (which must not repeat feed:, venue:, risk: or model:).
pub struct Script {
    _dir: TempDir,
    pub replay: Replay,
    pub metrics: Metrics,
    next_id: u32,
}

impl Script {
    pub fn new(name: &str, start: &str, rows: &[(u64, f64)], sections: &str, slippage_bps: f64) -> Script {
        Script::with_symbol_keys(name, start, rows, "", sections, slippage_bps)
    }

    /// [`Script::new`] with `symbol_keys` (indented YAML lines) added to EURUSD's entry, such as
    /// its swaps.
    pub fn with_symbol_keys(
        name: &str,
        start: &str,
        rows: &[(u64, f64)],
        symbol_keys: &str,
        sections: &str,
        slippage_bps: f64,
    ) -> Script {
        let dir = TempDir::new(name);
        let t0 = mt5bot::support::timefmt::parse_timestamp(start).expect("start") / 1_000_000_000;
        let mut csv = String::from("timestamp,symbol,bid,ask\n");
        for (s, bid) in rows {
            csv.push_str(&format!("{},EURUSD,{bid:.5},{:.5}\n", t0 + *s as i128, bid + SPREAD));
        }
        let path = dir.write("ticks.csv", &csv);
        let yaml = format!(
            "feed:\n  kind: csv\n  symbols:\n    - name: EURUSD\n      price: 1.1\n      contract_size: 100000\n{symbol_keys}  csv:\n    path: {}\n\
             venue:\n  paper:\n    slippage_bps: {slippage_bps}\n\
             risk:\n  max_position: 5\n  max_notional: 10000000\n\
             model:\n  threshold_bps: 10000\n{sections}",
            path.display()
        );
        let cfg = Config::parse(&yaml, "replay.yaml").unwrap_or_else(|e| panic!("{e}\n{yaml}"));
        let metrics = Metrics::new();
        let replay = Replay::paper(&cfg, &metrics, "B").expect("replay");
        Script { _dir: dir, replay, metrics, next_id: 0 }
    }

    /// Replays the rows up to `s` seconds and what they set off (a paper fill takes 2 ms).
    pub fn to(&mut self, s: u64) -> &mut Self {
        self.replay.run_until(s * 1_000_000_000 + 5_000_000);
        self
    }

    /// Manual nanoseconds since the first row.
    pub fn now(&self) -> u64 {
        self.replay.core().clock().now()
    }

    /// A market order of `qty` lots now, given the time to fill.
    pub fn market(&mut self, side: Side, qty: f64) -> Result<(), DropReason> {
        self.order(side, qty, Stops::NONE)
    }

    pub fn order(&mut self, side: Side, qty: f64, stops: Stops) -> Result<(), DropReason> {
        self.next_id += 1;
        let id = SignalId::parse(&format!("b-{}", self.next_id)).expect("id");
        let signal = Signal { stops, ..Signal::market(id, 0, side, qty) };
        let answer = self.replay.offer(signal);
        self.replay.run_until(self.now() + 10_000_000);
        answer
    }

    /// The EURUSD position in lots.
    pub fn qty(&self) -> f64 {
        self.replay.core().executor().position(0).qty
    }
}
