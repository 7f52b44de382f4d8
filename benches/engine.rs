//! Engine benchmarks: the signal ring, signals through queue + executor, and tick-to-order.
//!
//! `cargo bench --bench engine` runs the criterion groups, then a percentile report: each
//! tick-to-order is timed on its own (`Instant` before and after, clock overhead measured and
//! subtracted) over many ticks, five runs, and p50/p99 printed as medians with min and max.
//! `-- --quick` shortens everything (used by CI so the bench cannot rot).

use std::hint::black_box;
use std::time::{Duration, Instant};

mod common;
#[path = "common/fix.rs"]
mod fix_common;

use common::{median_min_max_f64, one_order_per_tick};
use criterion::{Criterion, Throughput};
use mt5bot::config::Config;
use mt5bot::domain::clock::{ManualClock, MonotonicClock};
use mt5bot::domain::types::{OrderKey, OrderRequest, ReplyTo, Side, Signal, SignalId, SignalSource, Stops, Tick};
use mt5bot::domain::types::{OrderKind, TimeInForce};
use mt5bot::engine::core::TradingCore;
use mt5bot::engine::queue::SignalQueue;
use mt5bot::telemetry::metrics::Metrics;
use mt5bot::venue::fix44::new_order_single;
use mt5bot::venue::paper::PaperVenue;

fn core<C: mt5bot::domain::clock::Clock>(cfg: &Config, clock: C) -> (TradingCore<PaperVenue, C>, Metrics) {
    let metrics = Metrics::new();
    let p = &cfg.venue.paper;
    let names: Vec<String> = cfg.feed.symbols.iter().map(|s| s.name.clone()).collect();
    let venue = PaperVenue::new(p, names.len(), cfg.risk.max_open_orders);
    let em = metrics.engine("paper", &names);
    (TradingCore::new(cfg, venue, clock, em, "B"), metrics)
}

/// Alternates the mid price so each tick crosses: up, down, up, ...
fn tick(i: u64, now: u64) -> Tick {
    let mid = if i % 2 == 0 { 1.1010 } else { 1.0990 };
    Tick { symbol: 0, bid: mid - 0.00005, ask: mid + 0.00005, recv_ns: now }
}

fn bench_queue(c: &mut Criterion) {
    let mut g = c.benchmark_group("queue");
    g.throughput(Throughput::Elements(1));
    let mut q = SignalQueue::<Signal>::with_capacity(1024);
    let s = Signal::default();
    g.bench_function("push_pop", |b| {
        b.iter(|| {
            let _ = q.push(black_box(s));
            black_box(q.pop())
        })
    });
    g.finish();
}

/// The `n`th external market signal: one lot, sides alternating so the position stays inside the
/// limit.
fn market_signal(prefix: &SignalId, n: u64) -> Signal {
    Signal {
        id: SignalId::with_counter(prefix, n),
        symbol: 0,
        side: if n % 2 == 0 { Side::Buy } else { Side::Sell },
        qty: 1.0,
        kind: OrderKind::Market,
        price: 0.0,
        source: SignalSource::Ingress,
        origin_ns: 0,
        reply_to: ReplyTo::NONE,
        stops: Stops::NONE,
    }
}

fn bench_signals(c: &mut Criterion) {
    // External signals through offer -> queue -> executor -> paper venue, alternating sides so the
    // position stays inside the limit; the venue is polled each 64 signals to settle fills.
    let mut cfg = one_order_per_tick();
    cfg.risk.max_open_orders = 1024;
    let (mut core, _m) = core(&cfg, ManualClock::default());
    core.on_tick(&tick(0, 0));
    let prefix = SignalId::parse("S-").expect("id");
    let mut n = 0u64;
    let mut g = c.benchmark_group("signals");
    g.throughput(Throughput::Elements(64));
    g.bench_function("queue_executor_venue_x64", |b| {
        b.iter(|| {
            for _ in 0..64 {
                n += 1;
                let _ = core.offer(market_signal(&prefix, n));
                core.drain();
            }
            core.clock().advance(1_000);
            core.poll_venue();
        })
    });
    g.finish();
}

/// Signals per second through offer -> queue -> executor -> paper venue, as `bench_signals` drives
/// them, timed over whole runs: five runs, median with min and max.
fn signals_report(quick: bool) {
    let runs = 5;
    let n: u64 = if quick { 100_000 } else { 2_000_000 };
    let mut rates = Vec::with_capacity(runs);
    for _ in 0..runs {
        let mut cfg = one_order_per_tick();
        cfg.risk.max_open_orders = 1024;
        let (mut core, m) = core(&cfg, ManualClock::default());
        core.on_tick(&tick(0, 0));
        let prefix = SignalId::parse("S-").expect("id");
        let start = Instant::now();
        for k in 1..=n {
            let _ = core.offer(market_signal(&prefix, k));
            core.drain();
            if k % 64 == 0 {
                core.clock().advance(1_000);
                core.poll_venue();
            }
        }
        let secs = start.elapsed().as_secs_f64();
        assert_eq!(m.orders_sent.get(), n, "every signal became an order");
        rates.push(n as f64 / secs);
    }
    println!("\nsignals through queue + executor + venue, {runs} runs x {n} signals:");
    println!("  rate {}", median_min_max_f64(rates, "signals/s"));
}

fn bench_tick_to_order(c: &mut Criterion) {
    let cfg = one_order_per_tick();
    let (mut core, m) = core(&cfg, MonotonicClock::new());
    let mut i = 0u64;
    for _ in 0..1_000 {
        i += 1;
        core.on_tick(&tick(i, 0));
    }
    let before = m.orders_sent.get();
    let mut g = c.benchmark_group("tick_to_order");
    g.throughput(Throughput::Elements(1));
    g.bench_function("on_tick_one_order", |b| {
        b.iter(|| {
            i += 1;
            core.on_tick(black_box(&tick(i, 0)));
        })
    });
    g.finish();
    assert!(m.orders_sent.get() > before, "the bench sent orders");
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// The median cost of the two clock reads around an empty body, subtracted from each sample.
fn clock_overhead() -> u64 {
    let mut empty: Vec<u64> = (0..10_000)
        .map(|_| {
            let t = Instant::now();
            black_box(());
            t.elapsed().as_nanos() as u64
        })
        .collect();
    empty.sort_unstable();
    percentile(&empty, 0.5)
}

/// A fresh folder for an order journal, removed when dropped.
struct JournalDir(std::path::PathBuf);

impl JournalDir {
    fn new() -> JournalDir {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Beside the target folder: on the disk a deployment's state folder would be on, not a tmpfs.
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("target")
            .join(format!("bench-journal-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("journal dir");
        JournalDir(dir)
    }

    fn attach<C: mt5bot::domain::clock::Clock>(&self, core: &mut TradingCore<PaperVenue, C>, m: &Metrics) {
        let keys =
            mt5bot::engine::checkpoint::Keys::new(&mt5bot::support::encoding::base64(&[5u8; 32]), None).expect("keys");
        let symbols = vec!["EURUSD".to_owned(), "GBPUSD".to_owned()];
        let j =
            mt5bot::engine::journal::Journal::start(&self.0.join("checkpoint.bin"), 1, symbols, keys, m.clone(), None)
                .expect("journal");
        core.set_journal(j);
    }
}

impl Drop for JournalDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Times each tick-to-order on its own; returns (p50, p99, p99.9) in ns after clock overhead.
fn one_run(ticks: usize) -> (u64, u64, u64) {
    one_run_journaled(ticks, false, Duration::ZERO)
}

/// [`one_run`], with the order journal on when `journaled`, one tick every `gap` (spinning).
fn one_run_journaled(ticks: usize, journaled: bool, gap: Duration) -> (u64, u64, u64) {
    one_run_cfg(&one_order_per_tick(), ticks, journaled, gap)
}

/// [`one_run_journaled`] on `cfg`.
fn one_run_cfg(cfg: &Config, ticks: usize, journaled: bool, gap: Duration) -> (u64, u64, u64) {
    let (mut core, m) = core(cfg, MonotonicClock::new());
    let dir = journaled.then(JournalDir::new);
    if let Some(d) = &dir {
        d.attach(&mut core, &m);
    }
    let mut i = 0u64;
    for _ in 0..10_000 {
        i += 1;
        core.on_tick(&tick(i, 0));
    }
    let overhead = clock_overhead();
    let sent_before = m.orders_sent.get();
    let refused_before = m.signals_dropped.with_label_values(&["journal_behind"]).get();
    let mut samples = Vec::with_capacity(ticks);
    let mut next = Instant::now();
    for _ in 0..ticks {
        while !gap.is_zero() && Instant::now() < next {
            std::hint::spin_loop();
        }
        next += gap;
        i += 1;
        let t = tick(i, 0);
        let start = Instant::now();
        core.on_tick(black_box(&t));
        samples.push((start.elapsed().as_nanos() as u64).saturating_sub(overhead));
        // The end of the reactor's turn: the journal's entries go to its writer.
        core.flush_journal();
    }
    let refused = m.signals_dropped.with_label_values(&["journal_behind"]).get() - refused_before;
    assert_eq!(m.orders_sent.get() - sent_before + refused, ticks as u64, "one order (or refusal) per tick");
    if refused > 0 {
        println!(
            "  (journaled run: {refused} of {ticks} signals refused as journal_behind: the disk's syncs fell behind)"
        );
    }
    if let Some(j) = core.take_journal() {
        j.finish();
    }
    samples.sort_unstable();
    (percentile(&samples, 0.5), percentile(&samples, 0.99), percentile(&samples, 0.999))
}

/// Times offer + drain of each signal on its own, one signal every `gap` (spinning, so the journal's
/// writer keeps up as it does at any real signal rate), with the journal on or off. Returns
/// (p50, p99) in ns, the journal's bytes per million orders, and the mean time of one batch (seal,
/// write, fdatasync) in microseconds.
fn journal_signals_run(n: u64, gap: Duration, journaled: bool) -> (u64, u64, f64, f64) {
    let mut cfg = one_order_per_tick();
    cfg.risk.max_open_orders = 1024;
    let (mut core, m) = core(&cfg, ManualClock::default());
    let dir = journaled.then(JournalDir::new);
    if let Some(d) = &dir {
        d.attach(&mut core, &m);
    }
    core.on_tick(&tick(0, 0));
    let prefix = SignalId::parse("S-").expect("id");
    let overhead = clock_overhead();
    let mut samples = Vec::with_capacity(n as usize);
    let mut next = Instant::now();
    for k in 1..=n {
        while Instant::now() < next {
            std::hint::spin_loop();
        }
        next += gap;
        let start = Instant::now();
        let _ = core.offer(market_signal(&prefix, k));
        core.drain();
        samples.push((start.elapsed().as_nanos() as u64).saturating_sub(overhead));
        core.flush_journal();
        if k % 64 == 0 {
            core.clock().advance(1_000);
            core.poll_venue();
        }
    }
    if let Some(j) = core.take_journal() {
        j.finish();
    }
    let refused = m.signals_dropped.with_label_values(&["journal_behind"]).get();
    if refused > 0 {
        // A busy machine (another build, another test) can leave the journal behind: the figures
        // of such a run are not the journal's cost, and it says so rather than end the bench.
        println!(
            "  (this run's journal fell behind one signal every {gap:?}: {refused} of {n} refused as journal_behind; \
             its figures include the machine being busy)"
        );
    }
    assert_eq!(m.orders_sent.get() + refused, n, "every signal became an order or a counted refusal");
    let h = &m.journal_sync;
    // Mean time of one batch (seal + write + fdatasync): what a `queued` answer waits, about.
    let capacity = h.get_sample_sum() / h.get_sample_count().max(1) as f64 * 1e6;
    let bytes = m.journal_bytes.get() as f64;
    samples.sort_unstable();
    (percentile(&samples, 0.5), percentile(&samples, 0.99), bytes / n as f64 * 1e6, capacity)
}

/// Signals per second through offer -> queue -> executor -> paper venue as fast as the loop goes,
/// with the journal off or on, one reactor turn (journal flush) each 64 signals. With the journal
/// on, the loop outruns the disk's syncs; a signal refused as `journal_behind` is offered again
/// after a yield, as an at-least-once client does, so the rate is what the journal sustains.
/// Returns (signals/s, refusals retried).
fn journal_throughput_run(n: u64, journaled: bool) -> (f64, u64) {
    throughput_run(one_order_per_tick(), n, journaled)
}

/// [`journal_throughput_run`] on `cfg`.
fn throughput_run(mut cfg: Config, n: u64, journaled: bool) -> (f64, u64) {
    cfg.risk.max_open_orders = 1024;
    let (mut core, m) = core(&cfg, ManualClock::default());
    let dir = journaled.then(JournalDir::new);
    if let Some(d) = &dir {
        d.attach(&mut core, &m);
    }
    core.on_tick(&tick(0, 0));
    let prefix = SignalId::parse("S-").expect("id");
    let mut retried = 0u64;
    let start = Instant::now();
    for k in 1..=n {
        loop {
            match core.offer(market_signal(&prefix, k)) {
                Err(mt5bot::domain::types::DropReason::JournalBehind) => {
                    retried += 1;
                    core.flush_journal();
                    std::thread::yield_now();
                }
                Ok(()) => break,
                Err(other) => panic!("signal {k} refused: {other:?}"),
            }
        }
        core.drain();
        if k % 64 == 0 {
            core.flush_journal();
            core.clock().advance(1_000);
            core.poll_venue();
        }
    }
    core.flush_journal();
    let secs = start.elapsed().as_secs_f64();
    if let Some(j) = core.take_journal() {
        j.finish();
    }
    assert_eq!(m.orders_sent.get(), n, "every signal became an order");
    (n as f64 / secs, retried)
}

/// The order journal's cost, side by side in one run: tick-to-order p50/p99 (one market order
/// per tick, as fast as the loop goes) and offer + drain per external signal at a steady rate,
/// with the journal off and on (runs interleaved so both see the same machine), and its size.
fn journal_report(quick: bool) {
    let (runs, ticks, n) = if quick { (5, 20_000, 20_000) } else { (5, 200_000, 200_000) };
    let gap = Duration::from_micros(10);
    let (mut off, mut on) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        off.push(one_run_journaled(ticks, false, gap));
        on.push(one_run_journaled(ticks, true, gap));
    }
    println!("\norder journal, tick_to_order per operation, one tick every {gap:?}, {runs} runs x {ticks} ticks (interleaved):");
    println!(
        "  off p50 {}   p99 {}",
        median_min_max(off.iter().map(|r| r.0).collect()),
        median_min_max(off.iter().map(|r| r.1).collect())
    );
    println!(
        "  on  p50 {}   p99 {}",
        median_min_max(on.iter().map(|r| r.0).collect()),
        median_min_max(on.iter().map(|r| r.1).collect())
    );
    let (mut s_off, mut s_on, mut size, mut capacity) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        s_off.push(journal_signals_run(n, gap, false));
        let r = journal_signals_run(n, gap, true);
        size.push(r.2 / 1e6);
        capacity.push(r.3);
        s_on.push(r);
    }
    println!(
        "order journal, offer + drain per external signal, one every {gap:?}, {runs} runs x {n} signals (interleaved):"
    );
    println!(
        "  off p50 {}   p99 {}",
        median_min_max(s_off.iter().map(|r| r.0).collect()),
        median_min_max(s_off.iter().map(|r| r.1).collect())
    );
    println!(
        "  on  p50 {}   p99 {}",
        median_min_max(s_on.iter().map(|r| r.0).collect()),
        median_min_max(s_on.iter().map(|r| r.1).collect())
    );
    let total: u64 = if quick { 100_000 } else { 1_000_000 };
    let (mut t_off, mut t_on, mut retries) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        t_off.push(journal_throughput_run(total, false).0);
        let (rate, retried) = journal_throughput_run(total, true);
        t_on.push(rate);
        retries.push(retried as f64);
    }
    println!(
        "order journal, signals through queue + executor + venue, unpaced, {runs} runs x {total} signals (interleaved):"
    );
    println!("  off rate {}", median_min_max_f64(t_off, "signals/s"));
    println!("  on  rate {}", median_min_max_f64(t_on, "signals/s"));
    println!("  on  journal_behind refusals retried {}", median_min_max_f64(retries, "per run"));
    println!(
        "  journal size {} per million orders (queued + sent + fill entries, sealed batches)",
        median_min_max_f64(size, "MB")
    );
    println!(
        "  one batch (seal + write + fdatasync, what a queued answer waits) {}",
        median_min_max_f64(capacity, "us")
    );
}

/// `cfg` with every equity breaker on, at limits this run never reaches: what watching costs.
fn with_every_breaker(mut cfg: Config) -> Config {
    use mt5bot::config::{BreakerConfig, BreakerLimit};
    use mt5bot::domain::types::BreakerAction;
    let b = |limit| BreakerConfig { limit, action: BreakerAction::Halted, resume_after: None };
    cfg.protection.breakers = vec![
        b(BreakerLimit::DailyLoss { amount: Some(1e12), fraction: Some(0.99) }),
        b(BreakerLimit::Drawdown { fraction: 0.99, window: Some(Duration::from_secs(86_400)) }),
        b(BreakerLimit::ConsecutiveLosses { count: u32::MAX }),
        b(BreakerLimit::PositionLoss { amount: 1e12 }),
    ];
    cfg.protection.starting_balance = 1e9;
    cfg
}

/// The equity breakers' cost, side by side in one run: tick-to-order p50/p99 (one market order
/// per tick, unpaced) and signals/s through queue + executor + venue, with none and with all four
/// on (never tripping), then with stops and market hours on top, runs interleaved.
fn protection_report(quick: bool) {
    let (runs, ticks, total) = if quick { (5, 20_000, 100_000) } else { (5, 1_000_000, 1_000_000) };
    let none = one_order_per_tick();
    let all = with_every_breaker(one_order_per_tick());
    // Every breaker, and every position protected by far levels: the stop checks run on each
    // tick without sending exits, so the difference is their cost.
    let mut stops = all.clone();
    stops.model.sl_bps = 5_000.0;
    stops.model.tp_bps = 5_000.0;
    // ... and every symbol on the fx calendar (open all through the run: the market check per
    // signal and the one comparison per turn).
    let mut hours = stops.clone();
    let text = format!(
        "sessions:\n  default: fx\nfeed:\n  symbols:\n{}",
        hours
            .feed
            .symbols
            .iter()
            .map(|s| format!("    - name: {}\n      price: {}\n", s.name, s.price))
            .collect::<String>()
    );
    hours.sessions = Config::parse(&text, "bench.yaml").expect("sessions").sessions;
    let variants = [
        ("none              ", &none),
        ("all               ", &all),
        ("all + stops       ", &stops),
        ("all + stops + fx  ", &hours),
    ];
    let mut t: Vec<Vec<(u64, u64, u64)>> = vec![Vec::new(); variants.len()];
    let mut r: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    for _ in 0..runs {
        for (i, (_, cfg)) in variants.iter().enumerate() {
            t[i].push(one_run_cfg(cfg, ticks, false, Duration::ZERO));
            r[i].push(throughput_run((*cfg).clone(), total, false).0);
        }
    }
    println!(
        "
equity breakers and stops, tick_to_order per operation, {runs} runs x {ticks} ticks (interleaved):"
    );
    for (i, (name, _)) in variants.iter().enumerate() {
        println!(
            "  {name} p50 {}   p99 {}",
            median_min_max(t[i].iter().map(|r| r.0).collect()),
            median_min_max(t[i].iter().map(|r| r.1).collect())
        );
    }
    println!(
        "equity breakers and stops, signals through queue + executor + venue, {runs} runs x {total} signals (interleaved):"
    );
    for (i, (name, _)) in variants.iter().enumerate() {
        println!("  {name} rate {}", median_min_max_f64(r[i].clone(), "signals/s"));
    }
}

fn median_min_max(mut v: Vec<u64>) -> String {
    v.sort_unstable();
    format!("{} ns (min {}, max {})", v[v.len() / 2], v[0], v[v.len() - 1])
}

/// The floor under tick-to-order, timed per operation like `one_run`: parse a tick from text, one
/// ring push and pop, encode one NewOrderSingle. Nothing else (no model, no risk, no books).
fn floor_run(ops: usize) -> (u64, u64) {
    let mut ring = SignalQueue::<Signal>::with_capacity(1024);
    let mut session = fix_common::active_session();
    let mut out = Vec::with_capacity(1 << 20);
    let prefix = SignalId::parse("F-").expect("id");
    let lines: Vec<String> = (0..64).map(|i| format!("EURUSD,1.08{:03},1.08{:03}", 500 + i, 503 + i)).collect();
    let overhead = clock_overhead();
    let mut samples = Vec::with_capacity(ops);
    for n in 0..(ops + 10_000) as u64 {
        if out.len() > (1 << 20) - 512 {
            out.clear();
        }
        let line = black_box(lines[(n % 64) as usize].as_str());
        let start = Instant::now();
        let mut it = line.split(',');
        let (Some(_sym), Some(bid), Some(ask)) = (it.next(), it.next(), it.next()) else { panic!("tick") };
        let (bid, ask): (f64, f64) = (bid.parse().unwrap_or(0.0), ask.parse().unwrap_or(0.0));
        let sig = Signal {
            id: SignalId::with_counter(&prefix, n),
            symbol: 0,
            side: if n % 2 == 0 { Side::Buy } else { Side::Sell },
            qty: 1.0,
            kind: OrderKind::Limit,
            price: (bid + ask) * 0.5,
            source: SignalSource::Model,
            origin_ns: 0,
            reply_to: ReplyTo::NONE,
            stops: Stops::NONE,
        };
        let _ = ring.push(sig);
        let s = ring.pop().expect("one signal");
        let req = OrderRequest {
            key: OrderKey::new(n, 0),
            client_id: s.id,
            symbol: s.symbol,
            side: s.side,
            qty: s.qty,
            kind: s.kind,
            price: s.price,
            sl: 0.0,
            tp: 0.0,
            immediate: false,
            until_cancelled: false,
        };
        black_box(new_order_single(&mut session, &mut out, &req, "EURUSD", TimeInForce::Day, b"", n));
        let took = (start.elapsed().as_nanos() as u64).saturating_sub(overhead);
        if n >= 10_000 {
            samples.push(took);
        }
    }
    samples.sort_unstable();
    (percentile(&samples, 0.5), percentile(&samples, 0.99))
}

fn percentile_report(quick: bool) {
    let (runs, ticks) = if quick { (5, 20_000) } else { (5, 1_000_000) };
    let results: Vec<(u64, u64, u64)> = (0..runs).map(|_| one_run(ticks)).collect();
    let floors: Vec<(u64, u64)> = (0..runs).map(|_| floor_run(ticks)).collect();
    println!("\ntick_to_order per operation, {runs} runs x {ticks} ticks, one market order per tick:");
    println!("  p50   {}", median_min_max(results.iter().map(|r| r.0).collect()));
    println!("  p99   {}", median_min_max(results.iter().map(|r| r.1).collect()));
    println!("  p99.9 {}", median_min_max(results.iter().map(|r| r.2).collect()));
    println!("floor (parse a tick + ring push/pop + encode a NewOrderSingle), same runs:");
    println!("  p50   {}", median_min_max(floors.iter().map(|r| r.0).collect()));
    println!("  p99   {}", median_min_max(floors.iter().map(|r| r.1).collect()));
    let ratio = |a: Vec<u64>, b: Vec<u64>| {
        let mut r: Vec<f64> = a.iter().zip(&b).map(|(x, y)| *x as f64 / (*y).max(1) as f64).collect();
        r.sort_by(|x, y| x.total_cmp(y));
        format!("{:.2}x (min {:.2}, max {:.2})", r[r.len() / 2], r[0], r[r.len() - 1])
    };
    println!("tick_to_order / floor:");
    println!("  p50   {}", ratio(results.iter().map(|r| r.0).collect(), floors.iter().map(|r| r.0).collect()));
    println!("  p99   {}", ratio(results.iter().map(|r| r.1).collect(), floors.iter().map(|r| r.1).collect()));
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let mut c = Criterion::default().configure_from_args();
    if quick {
        c = c.warm_up_time(Duration::from_millis(200)).measurement_time(Duration::from_millis(500)).sample_size(10);
    }
    bench_queue(&mut c);
    bench_signals(&mut c);
    bench_tick_to_order(&mut c);
    c.final_summary();
    signals_report(quick);
    percentile_report(quick);
    journal_report(quick);
    protection_report(quick);
}
