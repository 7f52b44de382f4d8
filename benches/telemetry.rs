//! Telemetry benchmarks: rendering `/metrics`, encoding a trade as InfluxDB line protocol, the
//! listener's basic-auth check (a known pair and a bcrypt run), and
//! (as a driver for `scripts/bench-e2e.sh`) the InfluxDB writer against a real server.
//!
//! `cargo bench --bench telemetry` runs the criterion groups (`-- --quick` for a short run).
//!
//! With `MT5BOT_E2E_INFLUX=http://127.0.0.1:PORT` it instead drives the writer thread the daemon
//! runs (`telemetry::influx`, `/api/v2/write`) with `MT5BOT_E2E_COUNT` fills (default 100,000),
//! tagged `host=$MT5BOT_E2E_HOST`: it prints `go` before the first fill and `done N` once the
//! server has acknowledged every point, so the caller times the span and reads the points back.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use mt5bot::config::{InfluxApi, InfluxConfig};
use mt5bot::domain::types::{Side, SignalId, TradeRecord};
use mt5bot::secrets::Secrets;
use mt5bot::support::timefmt::unix_nanos;
use mt5bot::telemetry::influx::{self, write_trade, InfluxWriter, Labels};
use mt5bot::telemetry::metrics::Metrics;
use mt5bot::telemetry::web::{self, BasicAuth, Verdict};

const SYMBOLS: [&str; 4] = ["EURUSD", "GBPUSD", "USDJPY", "XAUUSD"];

/// The `i`th fill of a run: four symbols, alternating sides, distinct timestamps.
fn trade(i: u64, base_ns: i128, prefix: &SignalId) -> TradeRecord {
    TradeRecord {
        unix_ns: base_ns + i as i128 * 1_000,
        symbol: (i % SYMBOLS.len() as u64) as u16,
        side: if i % 2 == 0 { Side::Buy } else { Side::Sell },
        client_id: SignalId::with_counter(prefix, i),
        exec_id: i + 1,
        qty: 0.1,
        price: 1.1 + (i % 100) as f64 * 1e-4,
        realized_pnl: (i % 7) as f64 - 3.0,
    }
}

fn e2e_influx(url: &str, count: u64, host: &str) {
    let env = |name: &str| -> Option<String> {
        match name {
            "INFLUXDB_URL" => Some(url.to_owned()),
            "INFLUXDB_ORG" => Some("bench".into()),
            "INFLUXDB_BUCKET" => Some("bench".into()),
            "INFLUXDB_TOKEN" => Some("bench-token".into()),
            _ => None,
        }
    };
    let secrets = Secrets::load(None, &env).expect("secrets");
    // The daemon's defaults, with a buffer that holds the whole run: the driver hands fills over
    // far faster than the engine ever would, and the point is to time the writing, not dropping.
    let cfg = InfluxConfig {
        api: InfluxApi::V2,
        url: String::new(),
        org: String::new(),
        bucket: String::new(),
        database: String::new(),
        interval: Duration::from_secs(3600),
        buffer_points: count as usize,
        batch_points: 5_000,
        timeout: Duration::from_secs(10),
    };
    let target = influx::resolve(&cfg, &secrets, &env).expect("influx target");
    let metrics = Metrics::new();
    let labels = Labels { host: host.to_owned(), venue: "paper", symbols: SYMBOLS.map(String::from).to_vec() };
    let (tx, rx) = std::sync::mpsc::sync_channel(count as usize);
    let prefix = SignalId::parse("bench").expect("prefix");
    let base = unix_nanos() - 60_000_000_000;
    let trades: Vec<TradeRecord> = (0..count).map(|i| trade(i, base, &prefix)).collect();
    let writer = InfluxWriter::spawn(target, metrics.clone(), rx, labels).expect("writer");
    println!("go");
    let _ = std::io::Write::flush(&mut std::io::stdout());
    for t in trades {
        tx.send(t).expect("writer alive");
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    while metrics.influx_points_written.get() < count && Instant::now() < deadline {
        std::thread::sleep(Duration::from_micros(200));
    }
    println!("done {}", metrics.influx_points_written.get());
    let _ = std::io::Write::flush(&mut std::io::stdout());
    drop(tx);
    writer.stop();
    println!(
        "written {} dropped {} buffered {}",
        metrics.influx_points_written.get(),
        metrics.influx_points_dropped.get(),
        metrics.influx_points_buffered.get()
    );
}

fn main() {
    if let Ok(url) = std::env::var("MT5BOT_E2E_INFLUX") {
        let count = std::env::var("MT5BOT_E2E_COUNT").ok().and_then(|c| c.parse().ok()).unwrap_or(100_000);
        let host = std::env::var("MT5BOT_E2E_HOST").unwrap_or_else(|_| "bench".into());
        e2e_influx(&url, count, &host);
        return;
    }
    let quick = std::env::args().any(|a| a == "--quick");
    let mut c = Criterion::default().configure_from_args();
    if quick {
        c = c.warm_up_time(Duration::from_millis(200)).measurement_time(Duration::from_millis(500)).sample_size(10);
    }

    // `/metrics`: the whole registry as the daemon fills it (three symbols, histograms observed),
    // rendered into a reused buffer as the helper thread does for each scrape.
    let metrics = Metrics::new();
    let symbols: Vec<String> = SYMBOLS[..3].iter().map(|s| s.to_string()).collect();
    let em = metrics.engine("paper", &symbols);
    for i in 0..10_000u64 {
        em.ticks.inc();
        em.tick_to_order.observe(i as f64 * 1e-7);
        em.order_roundtrip.observe(i as f64 * 1e-5);
    }
    em.trade_count.inc_by(1234);
    let mut body = Vec::with_capacity(64 << 10);
    metrics.encode(&mut body).expect("encode");
    let series = String::from_utf8_lossy(&body).lines().filter(|l| !l.starts_with('#') && !l.is_empty()).count();
    let mut g = c.benchmark_group("telemetry");
    g.throughput(Throughput::Elements(1));
    g.bench_function(format!("metrics_encode_{series}_series"), |b| {
        b.iter(|| {
            body.clear();
            metrics.encode(&mut body).expect("encode");
            black_box(body.len())
        })
    });

    // One fill as the writer encodes it for InfluxDB.
    let prefix = SignalId::parse("bench").expect("prefix");
    let t = trade(7, unix_nanos(), &prefix);
    let labels = Labels { host: "bench-host".into(), venue: "paper", symbols: SYMBOLS.map(String::from).to_vec() };
    let mut line = String::with_capacity(256);
    g.bench_function("line_protocol_trade", |b| {
        b.iter(|| {
            line.clear();
            write_trade(&mut line, &labels, black_box(&t));
            black_box(line.len())
        })
    });

    // Basic auth on the listener: a pair that passed before (a salted SHA-256 and a set lookup, what
    // every scrape after the first pays) and a pair not seen yet (one bcrypt run at cost 10, the
    // `hash-password` default, what the per-second budget is spent on).
    let hash = web::hash_password("scrape-password", 10).expect("hash");
    let users = [("prometheus".to_owned(), hash)];
    let good = format!("Basic {}", mt5bot::support::encoding::base64(b"prometheus:scrape-password"));
    let mut auth = BasicAuth::new(&users, Instant::now()).expect("users");
    assert_eq!(auth.check(Some(&good), Instant::now()), Verdict::Allowed);
    g.bench_function("basic_auth_known_pair", |b| {
        b.iter(|| black_box(auth.check(Some(black_box(&good)), Instant::now())))
    });
    g.sample_size(10);
    g.bench_function("basic_auth_new_pair_bcrypt_cost_10", |b| {
        b.iter(|| {
            // A fresh checker each time, so the pair is new and the budget full.
            let mut fresh = BasicAuth::new(&users, Instant::now()).expect("users");
            black_box(fresh.check(Some(black_box(&good)), Instant::now()))
        })
    });
    g.finish();
    c.final_summary();
}
