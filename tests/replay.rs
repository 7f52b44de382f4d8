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

/// RFC 3339 in UTC with microseconds, as `report.json` writes times (the civil-from-days
/// algorithm of H. Hinnant's date library).
fn rfc3339_micros(unix_ns: i128) -> String {
    let secs = unix_ns.div_euclid(1_000_000_000);
    let micros = unix_ns.rem_euclid(1_000_000_000) / 1000;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i128::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z", rem / 3600, rem / 60 % 60, rem % 60)
}

/// One fill as both sides list it: time, client id, exec id, symbol, side, quantity, price.
type Fill = (String, String, i64, String, String, f64, f64);

#[test]
fn a_csv_replayed_by_the_daemon_fills_as_the_backtest_of_it_does() {
    let dir = TempDir::new("replay-parity");
    // 6,000 ticks 250 ms apart on two symbols: waves up and down, so the crossover model opens,
    // flips and closes several times on each.
    let mut csv = String::from("timestamp,symbol,bid,ask\n");
    let (mut eur, mut gbp) = (1.1f64, 1.3f64);
    for i in 0..3000u64 {
        eur *= if (i / 300) % 2 == 0 { 1.0002 } else { 0.9998 };
        gbp *= if (i / 420) % 2 == 0 { 0.9998 } else { 1.0002 };
        let (s, ms) = (1_764_000_000 + i / 2, (i % 2) * 500);
        csv.push_str(&format!("{s}.{ms:03},EURUSD,{:.6},{:.6}\n", eur - 0.00005, eur + 0.00005));
        csv.push_str(&format!("{s}.{:03},GBPUSD,{:.6},{:.6}\n", ms + 250, gbp - 0.00007, gbp + 0.00007));
    }
    dir.write("ticks.csv", &csv);
    let influx = influxdb_1x(&dir, "mt5bot");
    let (cfg, addr) = config_with(
        &dir,
        "feed:\n  kind: csv\n  symbols:\n    - name: EURUSD\n      price: 1.1\n    - name: GBPUSD\n      price: 1.3\n  \
         csv:\n    path: ticks.csv\n    speed: 0\nvenue:\n  paper:\n    latency: 20ms\n    slippage_bps: 0.5\n\
         influx:\n  enabled: true\n  api: v1\n  database: mt5bot\n  interval: 300ms\n",
    );
    let url = format!("http://{}", influx.addr);
    let mut d = Daemon::start(&dir, &cfg, &addr, &[("INFLUXDB_URL", &url)]);
    d.wait_metrics(Duration::from_secs(5));
    let trades = wait_for("the whole file replayed and its orders filled", Duration::from_secs(30), || {
        let m = d.metrics();
        let settled = sample(&m, "open_orders") == Some(0.0);
        (sample(&m, "ticks_total") == Some(6000.0) && settled).then(|| sample(&m, "trade_count").unwrap_or(0.0))
    });
    assert!(trades >= 8.0, "the waves make several fills, got {trades}");
    let log = d.stderr();
    assert!(log.contains("on the data's own time from 2025-11-24T16:00:00.000000Z"), "{log}");
    d.signal("TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(10)).code(), Some(0), "{}", d.stderr());

    // What the daemon booked, from the trade history it wrote to InfluxDB.
    let query = "SELECT client_id, exec_id, symbol, side, qty, price FROM mt5bot_trades";
    let live: Vec<Fill> = wait_for("every fill in InfluxDB", Duration::from_secs(20), || {
        let r = get(&influx.addr, &format!("/query?db=mt5bot&epoch=ns&q={}", urlencode(query))).ok()?;
        let v: serde_json::Value = serde_json::from_str(&r.body).ok()?;
        let rows = v["results"][0]["series"][0]["values"].as_array()?;
        let fills: Vec<Fill> = rows
            .iter()
            .map(|r| {
                (
                    rfc3339_micros(r[0].as_i64().expect("time") as i128),
                    r[1].as_str().expect("client_id").to_owned(),
                    r[2].as_i64().expect("exec_id"),
                    r[3].as_str().expect("symbol").to_owned(),
                    r[4].as_str().expect("side").to_owned(),
                    r[5].as_f64().expect("qty"),
                    r[6].as_f64().expect("price"),
                )
            })
            .collect();
        (fills.len() as f64 == trades).then_some(fills)
    });

    // What the backtest of the same file and config lists.
    let out = std::process::Command::new(BIN)
        .args(["backtest", "--config", "config.yaml", "--data", "ticks.csv", "--report", "out"])
        .current_dir(dir.path())
        .output()
        .expect("run mt5bot backtest");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("out/report.json")).expect("report.json")).expect("JSON");
    let backtest: Vec<Fill> = report["summary"]["deals"]
        .as_array()
        .expect("deals")
        .iter()
        .map(|d| {
            (
                d["time"].as_str().expect("time").to_owned(),
                d["client_id"].as_str().expect("client_id").to_owned(),
                d["exec_id"].as_i64().expect("exec_id"),
                d["symbol"].as_str().expect("symbol").to_owned(),
                d["side"].as_str().expect("side").to_owned(),
                d["qty"].as_f64().expect("qty"),
                d["price"].as_f64().expect("price"),
            )
        })
        .collect();
    assert_eq!(report["summary"]["fills"].as_f64(), Some(trades), "as many fills as the daemon's");
    let lines = |f: &[Fill]| f.iter().map(|f| format!("{f:?}")).collect::<Vec<_>>().join("\n");
    assert_lines_eq(&lines(&backtest), &lines(&live));
}
