//! The MT5 bridge: an order line out to its result in, against a simulated Expert Advisor over
//! loopback.
//!
//! `cargo bench --bench mt5` binds the MT5 venue on a free loopback port; a thread plays the
//! Expert Advisor as `docs/mt5-bridge.md` describes it (it answers the challenge, sends an empty
//! snapshot, and answers every `order` line at once with a `result` 10009 carrying a deal). The
//! venue sends market orders one at a time and waits for each fill. Per order it records the
//! round trip (submit -> fill event) and mt5bot's own share: the time inside `submit` (JSON
//! encode, socket write) plus the time inside the `poll` that turned the result into the fill
//! (socket read, line split, JSON parse, book). The simulator's own time and the kernel's wake-ups
//! are the rest. The real EA adds the terminal's timer (about 10 to 16 ms on Windows) and the trade
//! server's answer, which no bench here can stand for. Five runs; medians with min and max.
//! `-- --quick` shortens it (CI). Target: mt5bot's own share <= 50 us p50.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use mt5bot::config::Config;
use mt5bot::domain::types::{OrderKey, OrderKind, OrderRequest, Side, SignalId, VenueEvent};
use mt5bot::domain::venue::Venue;
use mt5bot::secrets::Secret;
use mt5bot::telemetry::metrics::Metrics;
use mt5bot::venue::mt5::Mt5Venue;

#[path = "common/round_trip.rs"]
mod round_trip;
use round_trip::{median_min_max, pct, pin_current_thread, Driver};

const SECRET: &str = "bench-secret-0123456789abcdef0123456789";

/// The simulated Expert Advisor: authenticates, sends an empty snapshot and a tick, then answers
/// each order with a deal, until mt5bot closes the connection.
fn expert_advisor(addr: std::net::SocketAddr) {
    let w = TcpStream::connect(addr).expect("connect to the bridge");
    w.set_nodelay(true).expect("nodelay");
    let mut out = w.try_clone().expect("clone");
    let mut r = BufReader::new(w);
    let mut line = String::new();
    r.read_line(&mut line).expect("hello");
    let hello: serde_json::Value = serde_json::from_str(&line).expect("hello is JSON");
    let challenge = hello["challenge"].as_str().expect("challenge").to_owned();
    let mac = mt5bot::support::auth::hmac_sha256(SECRET.as_bytes(), challenge.as_bytes());
    let hex = mt5bot::support::encoding::hex(&mac);
    writeln!(out, r#"{{"type":"auth","hmac":"{hex}","login":1,"terminal":"bench"}}"#).expect("auth");
    line.clear();
    r.read_line(&mut line).expect("welcome");
    writeln!(out, r#"{{"type":"snapshot","deals":[],"orders":[],"positions":[]}}"#).expect("snapshot");
    writeln!(out, r#"{{"type":"tick","symbol":"EURUSD","bid":1.085,"ask":1.0851,"time_msc":1}}"#).expect("tick");
    let mut deal = 70_000u64;
    loop {
        line.clear();
        match r.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        // The id sits between the first `"id":"` and the next quote (mt5bot's compact JSON).
        let Some(start) = line.find(r#""id":""#).map(|i| i + 6) else {
            if line.contains(r#""type":"ping""#) {
                let _ = writeln!(out, r#"{{"type":"pong"}}"#);
            }
            continue;
        };
        let end = line[start..].find('"').map_or(start, |e| start + e);
        deal += 1;
        let answer = format!(
            "{{\"type\":\"result\",\"id\":\"{}\",\"retcode\":10009,\"deal\":{deal},\"order\":{deal},\"volume\":1,\"price\":1.0851}}\n",
            &line[start..end]
        );
        if out.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

struct RoundTrips {
    total: Vec<u64>,
    own: Vec<u64>,
    submit: Vec<u64>,
    receive: Vec<u64>,
}

/// `ea_cpu`: where the simulated EA's thread runs (the bench's own thread is on CPU 0), `None`
/// where the threads are not pinned.
fn round_trips(orders: u64, run: usize, ea_cpu: Option<usize>) -> RoundTrips {
    let mut cfg = Config::embedded().venue.mt5;
    cfg.listen = "127.0.0.1:0".parse().expect("addr");
    let metrics = Metrics::new();
    let symbols = vec!["EURUSD".to_owned()];
    let mut venue = Mt5Venue::bind(
        &cfg,
        Secret::from_value(SECRET.to_owned()),
        &symbols,
        64,
        Duration::from_secs(5),
        metrics.mt5(),
    )
    .expect("bind");
    let addr = venue.local_addr().expect("addr");
    let mut driver = Driver::attach(&mut venue, 64);
    let ea = std::thread::spawn(move || {
        if let Some(cpu) = ea_cpu {
            pin_current_thread(cpu);
        }
        expert_advisor(addr)
    });
    let mut out = Vec::with_capacity(64);
    let start = Instant::now();
    while !venue.ready_for_orders() {
        assert!(start.elapsed() < Duration::from_secs(10), "the simulated EA did not log on");
        driver.turn(&mut venue, &mut out);
    }
    let prefix = SignalId::parse(&format!("R{run}-")).expect("id");
    let n = orders as usize;
    let mut rt = RoundTrips {
        total: Vec::with_capacity(n),
        own: Vec::with_capacity(n),
        submit: Vec::with_capacity(n),
        receive: Vec::with_capacity(n),
    };
    for k in 1..=orders {
        let req = OrderRequest {
            key: OrderKey::new(k, 0),
            client_id: SignalId::with_counter(&prefix, k),
            symbol: 0,
            side: if k % 2 == 0 { Side::Buy } else { Side::Sell },
            qty: 1.0,
            kind: OrderKind::Market,
            price: 0.0,
            sl: 0.0,
            tp: 0.0,
            immediate: false,
            until_cancelled: false,
        };
        let t0 = Instant::now();
        venue.submit(&req, driver.now()).expect("submit");
        let submit = t0.elapsed().as_nanos() as u64;
        let receive = loop {
            out.clear();
            let spent = driver.turn(&mut venue, &mut out);
            if out.iter().any(|e| matches!(e, VenueEvent::Fill { .. })) {
                break spent;
            }
            assert!(t0.elapsed() < Duration::from_secs(5), "order {k} not filled");
        };
        rt.total.push(t0.elapsed().as_nanos() as u64);
        rt.own.push(submit + receive);
        rt.submit.push(submit);
        rt.receive.push(receive);
    }
    drop(venue);
    let _ = ea.join();
    rt
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (runs, orders) = if quick { (5, 2_000) } else { (5, 20_000) };
    // Pinned, as benches/fix.rs is: unpinned, the scheduler moves the two threads together and
    // apart within a run and the figures mix both placements. The EA is another process (often
    // another machine) in life, so the cross-core placement comes first.
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let placements: Vec<(&str, &str, Option<usize>)> = if !pin_current_thread(0) {
        println!("\n(taskset is missing or refused: the threads are not pinned, the figures mix placements)");
        vec![("", "unpinned", None)]
    } else if cpus >= 2 {
        vec![
            ("", "cross-core: mt5bot on CPU 0, the simulated EA on CPU 1", Some(1)),
            ("one core ", "one core: both on CPU 0", Some(0)),
        ]
    } else {
        vec![("", "one core: both on CPU 0", Some(0))]
    };
    for (l, what, ea_cpu) in placements {
        let mut rows: Vec<[u64; 6]> = Vec::new();
        for run in 0..runs {
            let mut rt = round_trips(orders, run, ea_cpu);
            rows.push([
                pct(&mut rt.total, 0.5),
                pct(&mut rt.total, 0.99),
                pct(&mut rt.own, 0.5),
                pct(&mut rt.own, 0.99),
                pct(&mut rt.submit, 0.5),
                pct(&mut rt.receive, 0.5),
            ]);
        }
        let col = |i: usize| rows.iter().map(|r| r[i]).collect::<Vec<_>>();
        println!(
            "\nMT5 order line -> result against a simulated Expert Advisor, {runs} runs x {orders} orders, {what}:"
        );
        println!("  {l}round trip p50        {}", median_min_max(col(0)));
        println!("  {l}round trip p99        {}", median_min_max(col(1)));
        println!("  {l}mt5bot's share p50    {}  (encode + write + read + parse + book)", median_min_max(col(2)));
        println!("  {l}mt5bot's share p99    {}", median_min_max(col(3)));
        println!("    {l}of which submit p50   {}  (JSON encode + socket write)", median_min_max(col(4)));
        println!("    {l}of which receive p50  {}  (socket read + line + JSON parse + book)", median_min_max(col(5)));
    }
}
