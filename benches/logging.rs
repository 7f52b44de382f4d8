//! Logging benchmarks: what a log call costs the engine thread, how fast records reach a loopback
//! TCP syslog sink, and whether a stuck sink moves tick-to-order latency.
//!
//! `cargo bench --bench logging` (add `-- --quick` for a short run). Throughput and latency figures
//! are medians of five runs with min and max.

use std::hint::black_box;
use std::io::Read;
use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;

use common::{median_min_max_f64 as median_min_max, one_order_per_tick};
use criterion::{Criterion, Throughput};
use mt5bot::config::{LogFormat, LogForwardConfig, LogSink};
use mt5bot::domain::clock::MonotonicClock;
use mt5bot::domain::types::Tick;
use mt5bot::engine::core::TradingCore;
use mt5bot::telemetry::log_forward::{ForwardRecord, Forwarder};
use mt5bot::telemetry::logging::LogWriter;
use mt5bot::telemetry::metrics::Metrics;
use mt5bot::venue::paper::PaperVenue;

fn forward_config(addr: &str, dir: &std::path::Path) -> LogForwardConfig {
    LogForwardConfig {
        url: format!("syslog://{addr}"),
        sink: LogSink::SyslogTcp { addr: addr.to_owned() },
        format: LogFormat::Json,
        headers: vec![],
        header_env: vec![],
        buffer_records: 100_000,
        batch_records: 1000,
        spool_dir: dir.to_path_buf(),
        spool_max_bytes: 256 << 20,
        timeout: Duration::from_millis(500),
        gzip: false,
        facility: 1,
        app_name: "mt5bot".into(),
        elasticsearch_index: String::new(),
        tls_ca_file: None,
    }
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("mt5bot-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// A loopback sink that reads and counts octet-counted frames.
fn counting_sink() -> (String, Arc<AtomicU64>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr").to_string();
    let frames = Arc::new(AtomicU64::new(0));
    let f = Arc::clone(&frames);
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let f = Arc::clone(&f);
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 1 << 20];
                let mut pending: Vec<u8> = Vec::new();
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    pending.extend_from_slice(&buf[..n]);
                    let mut i = 0;
                    while let Some(sp) = pending[i..].iter().position(|&b| b == b' ') {
                        let len: usize =
                            std::str::from_utf8(&pending[i..i + sp]).ok().and_then(|t| t.parse().ok()).unwrap_or(0);
                        if pending.len() < i + sp + 1 + len {
                            break;
                        }
                        i += sp + 1 + len;
                        f.fetch_add(1, Ordering::Relaxed);
                    }
                    pending.drain(..i);
                }
            });
        }
    });
    (addr, frames)
}

/// Records per second from `offer` to frames read by the sink.
fn forwarding_run(n: u64) -> f64 {
    let (addr, frames) = counting_sink();
    let dir = temp_dir("fwd");
    let metrics = Metrics::new();
    let fwd = Forwarder::spawn(&forward_config(&addr, &dir), &metrics, "bench".into(), &|_| None).expect("forwarder");
    fwd.begin();
    std::thread::sleep(Duration::from_millis(100));
    let h = fwd.handle();
    let records: Vec<ForwardRecord> = (0..n)
        .map(|i| {
            ForwardRecord::new(
                1_790_000_000_000_000_000 + i as i128,
                log::Level::Info,
                "mt5bot::engine",
                &format!("status: trades={i} open_orders=0 queued=0"),
            )
        })
        .collect();
    let start = Instant::now();
    for r in records {
        h.offer(r);
    }
    let deadline = start + Duration::from_secs(60);
    while frames.load(Ordering::Relaxed) + metrics.log_forward_dropped.get() < n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(metrics.log_forward_dropped.get(), 0, "nothing dropped");
    fwd.stop();
    let _ = std::fs::remove_dir_all(&dir);
    n as f64 / secs
}

/// p99 tick-to-order in ns over `ticks`, one order per tick.
fn tick_to_order_p99(ticks: usize) -> f64 {
    let cfg = one_order_per_tick();
    let metrics = Metrics::new();
    let p = &cfg.venue.paper;
    let names: Vec<String> = cfg.feed.symbols.iter().map(|s| s.name.clone()).collect();
    let venue = PaperVenue::new(p, names.len(), cfg.risk.max_open_orders);
    let mut core = TradingCore::new(&cfg, venue, MonotonicClock::new(), metrics.engine("paper", &names), "B");
    let mut samples = Vec::with_capacity(ticks);
    for i in 0..(ticks + 10_000) as u64 {
        let mid = if i % 2 == 0 { 1.1010 } else { 1.0990 };
        let t = Tick { symbol: 0, bid: mid - 0.00005, ask: mid + 0.00005, recv_ns: 0 };
        let start = Instant::now();
        core.on_tick(black_box(&t));
        if i >= 10_000 {
            samples.push(start.elapsed().as_nanos() as f64);
        }
    }
    samples.sort_by(|a, b| a.total_cmp(b));
    samples[(samples.len() as f64 * 0.99) as usize]
}

/// The mt5bot side of `scripts/bench-e2e.sh`'s syslog comparison: forwards `count` records to a
/// real rsyslog at `addr` through the forwarder, printing `go` just before the first one (the
/// script times the arrival of the last line at rsyslog from there).
fn e2e_syslog(addr: &str, count: u64) {
    let dir = temp_dir("e2e");
    let metrics = Metrics::new();
    let fwd = Forwarder::spawn(&forward_config(addr, &dir), &metrics, "bench".into(), &|_| None).expect("forwarder");
    fwd.begin();
    std::thread::sleep(Duration::from_millis(200));
    let h = fwd.handle();
    let records: Vec<ForwardRecord> = (0..count)
        .map(|i| {
            let msg = format!("bench record {i} status: trades={i} open_orders=0 queued=0");
            ForwardRecord::new(1_790_000_000_000_000_000 + i as i128, log::Level::Info, "mt5bot::engine", &msg)
        })
        .collect();
    println!("go");
    let _ = std::io::Write::flush(&mut std::io::stdout());
    for r in records {
        h.offer(r);
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while metrics.log_forward_sent.get() + metrics.log_forward_dropped.get() < count && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    println!("sent {} dropped {}", metrics.log_forward_sent.get(), metrics.log_forward_dropped.get());
    fwd.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

fn main() {
    if let Ok(addr) = std::env::var("MT5BOT_E2E_SYSLOG") {
        let count = std::env::var("MT5BOT_E2E_COUNT").ok().and_then(|c| c.parse().ok()).unwrap_or(100_000);
        e2e_syslog(&addr, count);
        return;
    }
    let quick = std::env::args().any(|a| a == "--quick");
    let mut c = Criterion::default().configure_from_args();
    if quick {
        c = c.warm_up_time(Duration::from_millis(200)).measurement_time(Duration::from_millis(500)).sample_size(10);
    }

    // The engine thread's cost of a log call: format the record and try_send it to the writer.
    let dir = temp_dir("log");
    let _writer = LogWriter::start(
        &dir.join("bench.log"),
        log::LevelFilter::Info,
        false,
        1 << 16,
        Metrics::new().log_records_dropped.clone(),
        None,
    )
    .expect("logger");
    let mut g = c.benchmark_group("log");
    g.throughput(Throughput::Elements(1));
    let mut i = 0u64;
    g.bench_function("enqueue_info_line", |b| {
        b.iter(|| {
            i += 1;
            log::info!("status: trades={} open_orders=0 queued=0", black_box(i));
        })
    });
    g.finish();
    c.final_summary();

    // What one log call costs when calls are sporadic (as on the engine thread): one every 50 us,
    // each timed on its own. A writer that sleeps in a blocking receive would be woken by each
    // call (a futex syscall on the caller's thread); this shows whether that happens.
    let runs = 5;
    let calls = if quick { 1_000 } else { 20_000 };
    let mut p50s = Vec::new();
    let mut p99s = Vec::new();
    for _ in 0..runs {
        let mut samples = Vec::with_capacity(calls);
        for k in 0..calls {
            let until = Instant::now() + Duration::from_micros(50);
            while Instant::now() < until {
                std::hint::spin_loop();
            }
            let t = Instant::now();
            log::info!("status: trades={} open_orders=0 queued=0", black_box(k));
            samples.push(t.elapsed().as_nanos() as f64);
        }
        samples.sort_by(|a, b| a.total_cmp(b));
        p50s.push(samples[samples.len() / 2]);
        p99s.push(samples[samples.len() * 99 / 100]);
    }
    println!(
        "
sporadic log call (one every 50 us), {runs} runs x {calls} calls:"
    );
    println!("  p50 {}", median_min_max(p50s, "ns"));
    println!("  p99 {}", median_min_max(p99s, "ns"));

    let (runs, n) = if quick { (5, 20_000) } else { (5, 500_000) };
    let rates: Vec<f64> = (0..runs).map(|_| forwarding_run(n)).collect();
    println!("\nforwarding to a loopback TCP syslog sink, {runs} runs x {n} records:");
    println!("  {}", median_min_max(rates, "records/s"));

    // A sink that accepts and never reads, with a forwarder retrying it, beside the engine.
    let ticks = if quick { 50_000 } else { 1_000_000 };
    let base: Vec<f64> = (0..runs).map(|_| tick_to_order_p99(ticks)).collect();
    let stuck_listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let stuck_addr = stuck_listener.local_addr().expect("addr").to_string();
    let _hold = std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in stuck_listener.incoming().flatten().take(1000) {
            held.push(s);
        }
    });
    let sdir = temp_dir("stuck");
    let metrics = Metrics::new();
    let fwd =
        Forwarder::spawn(&forward_config(&stuck_addr, &sdir), &metrics, "bench".into(), &|_| None).expect("forwarder");
    fwd.begin();
    let h = fwd.handle();
    let feeding = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let f2 = Arc::clone(&feeding);
    let feeder = std::thread::spawn(move || {
        let mut i = 0i128;
        while f2.load(Ordering::Relaxed) {
            h.offer(ForwardRecord::new(i, log::Level::Info, "t", "a log line the stuck sink never reads"));
            i += 1;
            if i % 1000 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    });
    let stuck: Vec<f64> = (0..runs).map(|_| tick_to_order_p99(ticks)).collect();
    feeding.store(false, Ordering::Relaxed);
    let _ = feeder.join();
    fwd.stop();
    let _ = std::fs::remove_dir_all(&sdir);
    println!("\ntick-to-order p99, {runs} runs x {ticks} ticks:");
    println!("  sink idle:  {}", median_min_max(base, "ns"));
    println!("  sink stuck: {}", median_min_max(stuck, "ns"));
}
