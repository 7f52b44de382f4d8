//! A CSV replay drives the paper venue: the file's ticks become trades.

mod support;

use std::time::Duration;

use support::*;

#[test]
fn csv_replay_trades_and_stops_feeding_at_the_end() {
    let dir = TempDir::new("replay");
    let mut csv = String::from("timestamp,symbol,bid,ask\n");
    // 400 ticks: flat, then a rise, then a fall, so the crossover model buys and sells.
    let mut mid = 1.1f64;
    for i in 0..400u64 {
        mid *= match i {
            0..=149 => 1.0,
            150..=249 => 1.0002,
            _ => 0.9998,
        };
        csv.push_str(&format!(
            "{}.{:03},EURUSD,{:.6},{:.6}\n",
            1_764_000_000 + i / 1000,
            i % 1000,
            mid - 0.00005,
            mid + 0.00005
        ));
    }
    dir.write("ticks.csv", &csv);
    let (cfg, addr) = config_with(
        &dir,
        "feed:\n  kind: csv\n  symbols:\n    - name: EURUSD\n      price: 1.1\n  csv:\n    path: ticks.csv\n    speed: 0\n",
    );
    let mut d = Daemon::start(&dir, &cfg, &addr, &[]);
    d.wait_metrics(Duration::from_secs(5));
    let m = wait_for("all 400 ticks replayed and trades filled", Duration::from_secs(10), || {
        let m = d.metrics();
        (sample(&m, "ticks_total") == Some(400.0) && sample(&m, "trade_count").is_some_and(|t| t >= 2.0)).then_some(m)
    });
    assert_eq!(sample(&m, "signals_received_total{source=\"model\"}"), Some(2.0), "one buy, one sell:\n{m}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(sample(&d.metrics(), "ticks_total"), Some(400.0), "the replay ended");
    d.signal("TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(10)).code(), Some(0));
}
