//! InfluxDB ingestion against real servers from Debian: VictoriaMetrics (`/api/v2/write`, read back
//! through `/api/v1/export`) and InfluxDB 1.x (`/write?db=`, read back with `/query`); outages with
//! and without room in the buffer; and the retry rules against an intake that answers 4xx and 503.

mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use support::*;

fn victoria(dir: &TempDir, addr: Option<&str>) -> Peer {
    let args = vec![
        format!("-storageDataPath={}", dir.join("vm-data").display()),
        "-httpListenAddr={addr}".into(),
        "-loggerLevel=ERROR".into(),
    ];
    match addr {
        Some(a) => Peer::start_at(dir, "victoria-metrics", &args, "/health", a),
        None => Peer::start(dir, "victoria-metrics", &args, "/health"),
    }
}

/// Every sample of a metric in VictoriaMetrics: (labels, value).
fn vm_export(addr: &str, metric: &str) -> Vec<(HashMap<String, String>, f64)> {
    let selector = format!("{{__name__={metric:?}}}");
    let r = get(addr, &format!("/api/v1/export?match[]={}", urlencode(&selector))).expect("export");
    assert_eq!(r.status, 200, "{}", r.body);
    let mut out = Vec::new();
    for line in r.body.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).expect("export JSON line");
        let labels: HashMap<String, String> = v["metric"]
            .as_object()
            .expect("metric")
            .iter()
            .map(|(k, x)| (k.clone(), x.as_str().unwrap_or("").to_owned()))
            .collect();
        for x in v["values"].as_array().expect("values") {
            out.push((labels.clone(), x.as_f64().expect("number")));
        }
    }
    out
}

/// The final trade count and positions from the daemon's last log line.
fn final_state(log: &str) -> (f64, HashMap<String, f64>) {
    let line = log.lines().rev().find(|l| l.contains("final state: trades=")).expect("final state line");
    let rest = line.split("final state: trades=").nth(1).expect("trades");
    let trades = rest.split_whitespace().next().and_then(|n| n.parse().ok()).expect("trade count");
    let positions = rest
        .split("positions:")
        .nth(1)
        .expect("positions")
        .split_whitespace()
        .filter_map(|p| {
            let (sym, rest) = p.split_once('=')?;
            Some((sym.to_owned(), rest.split('@').next()?.parse().ok()?))
        })
        .collect();
    (trades, positions)
}

fn influx_config(dir: &TempDir, extra: &str) -> (std::path::PathBuf, String) {
    config_with(dir, &format!("influx:\n  enabled: true\n  interval: 300ms\n{extra}"))
}

fn v2_env(url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("INFLUXDB_URL", url.to_owned()),
        ("INFLUXDB_ORG", "trading".to_owned()),
        ("INFLUXDB_BUCKET", "mt5_metrics".to_owned()),
        ("INFLUXDB_TOKEN", "bot-token".to_owned()),
    ]
}

fn start_bot(dir: &TempDir, cfg: &std::path::Path, addr: &str, env: &[(&'static str, String)]) -> Daemon {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut d = Daemon::start(dir, cfg, addr, &env);
    d.wait_metrics(Duration::from_secs(5));
    d
}

fn stop(d: &mut Daemon) -> String {
    d.signal("TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(30)).code(), Some(0), "{}", d.stderr());
    d.log_file()
}

#[test]
fn every_trade_reaches_victoria_metrics_with_its_values() {
    let dir = TempDir::new("ingest-vm");
    let vm = victoria(&dir, None);
    let (cfg, addr) = influx_config(&dir, "");
    let mut bot = start_bot(&dir, &cfg, &addr, &v2_env(&format!("http://{}", vm.addr)));
    wait_for("10 trades", Duration::from_secs(20), || sample(&bot.metrics(), "trade_count").filter(|t| *t >= 10.0));
    let log = stop(&mut bot);
    let (trades, positions) = final_state(&log);

    let qty = wait_for("every trade in VictoriaMetrics", Duration::from_secs(30), || {
        let q = vm_export(&vm.addr, "mt5bot_trades_qty");
        (q.len() as f64 == trades).then_some(q)
    });
    // The fills rebuild the final positions exactly.
    let mut rebuilt: HashMap<String, f64> = HashMap::new();
    for (labels, q) in &qty {
        let sign = if labels["side"] == "buy" { 1.0 } else { -1.0 };
        *rebuilt.entry(labels["symbol"].clone()).or_default() += sign * q;
        assert_eq!(labels["venue"], "paper");
        assert!(!labels["host"].is_empty());
    }
    for (sym, pos) in &positions {
        let got = rebuilt.get(sym).copied().unwrap_or(0.0);
        assert!((got - pos).abs() < 1e-6, "{sym}: trades add up to {got}, final position {pos}");
    }
    let prices = vm_export(&vm.addr, "mt5bot_trades_price");
    assert_eq!(prices.len() as f64, trades);
    assert!(prices.iter().all(|(_, p)| *p > 0.5 && *p < 2.0), "prices near the synthetic mids");
    // The metrics snapshot: the last trade_count written is the final one.
    let counts = vm_export(&vm.addr, "mt5bot_metrics_trade_count");
    assert!(counts.iter().map(|(_, v)| *v).fold(0.0, f64::max) == trades, "{counts:?}");
    assert!(!vm_export(&vm.addr, "mt5bot_metrics_position").is_empty(), "per-symbol points");
}

#[test]
fn every_trade_reaches_influxdb_1x() {
    let dir = TempDir::new("ingest-influx1");
    let influx = influxdb_1x(&dir, "mt5bot");

    let (cfg, addr) = influx_config(&dir, "  api: v1\n  database: mt5bot\n");
    let mut bot = start_bot(&dir, &cfg, &addr, &[("INFLUXDB_URL", format!("http://{}", influx.addr))]);
    wait_for("10 trades", Duration::from_secs(20), || sample(&bot.metrics(), "trade_count").filter(|t| *t >= 10.0));
    let log = stop(&mut bot);
    let (trades, _) = final_state(&log);

    let q = |query: &str| -> serde_json::Value {
        let r = get(&influx.addr, &format!("/query?db=mt5bot&q={}", urlencode(query))).expect("query");
        serde_json::from_str(&r.body).expect("query JSON")
    };
    let count = wait_for("every trade in InfluxDB 1.x", Duration::from_secs(20), || {
        let v = q("SELECT count(qty) FROM mt5bot_trades");
        let n = v["results"][0]["series"][0]["values"][0][1].as_f64()?;
        (n == trades).then_some(n)
    });
    assert_eq!(count, trades);
    let row = q("SELECT client_id, exec_id, side, symbol FROM mt5bot_trades LIMIT 1");
    let values = &row["results"][0]["series"][0]["values"][0];
    assert!(values[1].as_str().is_some_and(|id| id.starts_with('M')), "client ids are model signal ids: {row}");
    assert!(values[2].as_i64().is_some_and(|e| e > 0), "{row}");
    let m = q("SELECT last(trade_count) FROM mt5bot_metrics");
    assert_eq!(m["results"][0]["series"][0]["values"][0][1].as_f64(), Some(trades), "{m}");
}

fn http_post(addr: &str, path: &str, body: &[u8]) -> u16 {
    http("POST", addr, path, body).expect("POST").status
}

#[test]
fn a_20_second_outage_loses_nothing_that_fits_the_buffer() {
    let dir = TempDir::new("ingest-outage");
    let mut vm = victoria(&dir, None);
    let vm_addr = vm.addr.clone();
    let (cfg, addr) = influx_config(&dir, "");
    let mut bot = start_bot(&dir, &cfg, &addr, &v2_env(&format!("http://{vm_addr}")));
    wait_for("a trade", Duration::from_secs(20), || sample(&bot.metrics(), "trade_count").filter(|t| *t >= 1.0));

    vm.stop();
    let down_at = sample(&bot.metrics(), "trade_count").expect("trades");
    std::thread::sleep(Duration::from_secs(20));
    let m = bot.metrics();
    assert!(sample(&m, "trade_count").expect("trades") > down_at, "trading went on during the outage");
    assert!(sample(&m, "influx_points_buffered").expect("buffered") > 0.0, "points waited in the buffer");
    assert!(m.contains("influx_write_errors_total{kind=\"connect\"}"), "failures counted");

    let _vm = victoria(&dir, Some(&vm_addr));
    wait_for("the buffer to drain", Duration::from_secs(60), || {
        sample(&bot.metrics(), "influx_points_buffered").filter(|b| *b == 0.0)
    });
    let log = stop(&mut bot);
    let (trades, _) = final_state(&log);
    assert!(log.contains("cannot write to InfluxDB; buffering") && log.contains("InfluxDB writes resumed"), "{log}");
    // At least once: a batch whose answer was lost in the outage may arrive twice, never zero times.
    let got = wait_for("every trade in VictoriaMetrics", Duration::from_secs(30), || {
        let n = vm_export(&vm_addr, "mt5bot_trades_qty").len() as f64;
        (n >= trades).then_some(n)
    });
    assert!(got <= trades + 5_000.0, "duplicates bounded by one batch: {got} for {trades} trades");
}

#[test]
fn beyond_the_buffer_the_oldest_points_are_dropped_and_counted() {
    let dir = TempDir::new("ingest-overflow");
    let mut vm = victoria(&dir, None);
    let vm_addr = vm.addr.clone();
    let (cfg, addr) = config_with(&dir, "influx:\n  enabled: true\n  interval: 100ms\n  buffer_points: 100\n");
    let mut bot = start_bot(&dir, &cfg, &addr, &v2_env(&format!("http://{vm_addr}")));
    wait_for("first points written", Duration::from_secs(20), || {
        sample(&bot.metrics(), "influx_points_written_total").filter(|w| *w > 0.0)
    });
    vm.stop();
    std::thread::sleep(Duration::from_secs(20)); // about 600 snapshot points for a 100-point buffer
    let m = bot.metrics();
    assert_eq!(sample(&m, "influx_points_buffered"), Some(100.0), "the buffer is full, not larger");
    let dropped = sample(&m, "influx_points_dropped_total").expect("dropped");
    assert!(dropped > 300.0, "drops counted: {dropped}");

    let _vm = victoria(&dir, Some(&vm_addr));
    let (written, dropped) = wait_for("the buffer to drain", Duration::from_secs(60), || {
        let m = bot.metrics();
        (sample(&m, "influx_points_buffered") == Some(0.0)).then(|| {
            (
                sample(&m, "influx_points_written_total").expect("written"),
                sample(&m, "influx_points_dropped_total").expect("dropped"),
            )
        })
    });
    assert!(dropped > 300.0);
    // What the server holds is exactly what was written: one sample per line of each measurement.
    wait_for("VictoriaMetrics to hold every written point", Duration::from_secs(30), || {
        let lines = vm_export(&vm_addr, "mt5bot_trades_qty").len()
            + vm_export(&vm_addr, "mt5bot_metrics_cpu_usage_pct").len()
            + vm_export(&vm_addr, "mt5bot_metrics_position").len();
        (lines as f64 >= written).then_some(())
    });
    stop(&mut bot);
}

#[test]
fn refused_writes_are_not_retried_and_throttling_honours_retry_after() {
    let dir = TempDir::new("ingest-4xx");
    let bad = Receiver::start_with(Box::new(|_, _| {
        (400, vec![], "{\"code\":\"invalid\",\"message\":\"unable to parse: bad timestamp\"}".to_owned())
    }));
    let (cfg, addr) = influx_config(&dir, "");
    let mut bot = start_bot(&dir, &cfg, &addr, &v2_env(&format!("http://{}", bad.addr)));
    std::thread::sleep(Duration::from_secs(3));
    let requests = bad.received().len();
    // One request per 300 ms interval at most, no retry storm.
    assert!((2..=14).contains(&requests), "{requests} requests in 3 s");
    assert!(sample(&bot.metrics(), "influx_points_dropped_total").expect("dropped") > 0.0);
    let log = stop(&mut bot);
    assert!(log.contains("InfluxDB refused") && log.contains("unable to parse: bad timestamp"), "{log}");
    assert!(!log.contains("bot-token"), "the token is never logged");
    assert!(bad
        .received()
        .iter()
        .all(|(url, _)| url.starts_with("/api/v2/write?org=trading&bucket=mt5_metrics&precision=ns")));

    let dir = TempDir::new("ingest-429");
    let throttled =
        Receiver::start_with(Box::new(|_, _| (429, vec![("Retry-After".into(), "2".into())], String::new())));
    let (cfg, addr) = influx_config(&dir, "");
    let started = Instant::now();
    let mut bot = start_bot(&dir, &cfg, &addr, &v2_env(&format!("http://{}", throttled.addr)));
    std::thread::sleep(Duration::from_secs(5));
    let n = throttled.received().len();
    assert!((2..=4).contains(&n), "{n} requests in {:?} with Retry-After: 2", started.elapsed());
    assert_eq!(sample(&bot.metrics(), "influx_points_dropped_total"), Some(0.0), "throttled points are kept");
    stop(&mut bot);
}

#[test]
fn nasty_names_and_values_survive_the_trip_to_both_servers() {
    use mt5bot::telemetry::line_protocol::{write_point, Field};
    let dir = TempDir::new("ingest-escape");
    let vm = victoria(&dir, None);
    let influx = influxdb_1x(&dir, "t");

    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_nanos() as i128;
    let mut body = String::new();
    let tags = [("sym bol", "EUR,USD=x y"), ("u", "été ✓ 東京"), ("back", "a\\b"), ("nl", "two\nlines")];
    let text = "say \"hi\", C:\\path\nnext line";
    assert!(write_point(
        &mut body,
        "m esc,aped",
        &tags,
        &[("v al", Field::Float(1.25)), ("n", Field::Int(-3)), ("s", Field::Str(text))],
        now
    ));

    assert_eq!(http_post(&vm.addr, "/api/v2/write?org=o&bucket=b&precision=ns", body.as_bytes()), 204);
    let got = wait_for("the point in VictoriaMetrics", Duration::from_secs(20), || {
        vm_export(&vm.addr, "m esc,aped_v al").into_iter().next()
    });
    assert_eq!(got.1, 1.25);
    assert_eq!(got.0["sym bol"], "EUR,USD=x y");
    assert_eq!(got.0["u"], "été ✓ 東京");
    assert_eq!(got.0["back"], "a/b", "backslashes in tags become '/', which every server reads alike");
    assert_eq!(got.0["nl"], "two lines");

    assert_eq!(http_post(&influx.addr, "/write?db=t&precision=n", body.as_bytes()), 204);
    let r = get(&influx.addr, &format!("/query?db=t&q={}", urlencode("SELECT * FROM \"m esc,aped\""))).expect("query");
    let v: serde_json::Value = serde_json::from_str(&r.body).expect("json");
    let series = &v["results"][0]["series"][0];
    let cols: Vec<&str> = series["columns"].as_array().expect("columns").iter().filter_map(|c| c.as_str()).collect();
    let row = &series["values"][0];
    let col = |name: &str| &row[cols.iter().position(|c| *c == name).unwrap_or_else(|| panic!("{name} in {cols:?}"))];
    assert_eq!(col("sym bol"), "EUR,USD=x y");
    assert_eq!(col("u"), "été ✓ 東京");
    assert_eq!(col("v al"), 1.25);
    assert_eq!(col("n"), -3);
    assert_eq!(
        col("s"),
        "say \"hi\", C:\\path\\nnext line",
        "quotes and backslashes exact; a line break arrives as \\n"
    );
}
