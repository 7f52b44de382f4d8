//! Proof that the tick-to-order path does not allocate after start-up: a counting global allocator
//! watches the engine core while the synthetic feed drives it through orders, fills and refusals.
#![allow(unsafe_code)] // a GlobalAlloc implementation is unsafe by definition; it only counts.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use mt5bot::config::Config;

use mt5bot::domain::clock::ManualClock;
use mt5bot::domain::types::OrderKind;
use mt5bot::engine::core::TradingCore;
use mt5bot::telemetry::metrics::Metrics;
use mt5bot::venue::feed::Feed;
use mt5bot::venue::paper::PaperVenue;

struct Counting;

thread_local! {
    // Per thread, so tests running in parallel (and the harness's own threads) do not mix counts.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn note() {
    if COUNTING.with(Cell::get) {
        ALLOCATIONS.with(|a| a.set(a.get() + 1));
    }
}

fn start_counting() {
    ALLOCATIONS.with(|a| a.set(0));
    COUNTING.with(|c| c.set(true));
}

fn stop_counting() -> u64 {
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.with(Cell::get)
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Drives `ticks` ticks through feed and core on a fake clock; returns allocations seen.
fn allocations_while_trading(cfg: &Config, warm_up: u64, ticks: u64) -> (u64, Metrics) {
    allocations_while_trading_journaled(cfg, warm_up, ticks, None, false)
}

/// [`allocations_while_trading`] with the order journal on, writing under `journal_dir`.
fn allocations_while_trading_journaled(
    cfg: &Config,
    warm_up: u64,
    ticks: u64,
    journal_dir: Option<&std::path::Path>,
    resting_stops: bool,
) -> (u64, Metrics) {
    let metrics = Metrics::new();
    let paper = &cfg.venue.paper;
    let names: Vec<String> = cfg.feed.symbols.iter().map(|s| s.name.clone()).collect();
    let venue = PaperVenue::new(paper, names.len(), cfg.risk.max_open_orders).with_resting_stops(resting_stops);
    let mut core = TradingCore::new(cfg, venue, ManualClock::default(), metrics.engine("paper", &names), "A");
    if let Some(dir) = journal_dir {
        let keys =
            mt5bot::engine::checkpoint::Keys::new(&mt5bot::support::encoding::base64(&[3u8; 32]), None).expect("keys");
        let j = mt5bot::engine::journal::Journal::start(
            &dir.join("checkpoint.bin"),
            1,
            names.clone(),
            keys,
            metrics.clone(),
            None,
        )
        .expect("journal");
        core.set_journal(j);
    }
    let mut feed = Feed::new(&cfg.feed, 0).expect("feed");
    let mut now = 0u64;
    let mut step = |core: &mut TradingCore<PaperVenue, ManualClock>, feed: &mut Feed| {
        now += 100_000; // 100 us per turn
        core.clock().set(now);
        feed.begin_turn();
        while let Some(t) = feed.poll(now) {
            core.on_tick(&t);
        }
        core.poll_venue();
        core.flush_journal();
    };
    for _ in 0..warm_up {
        step(&mut core, &mut feed);
    }
    start_counting();
    for _ in 0..ticks {
        step(&mut core, &mut feed);
    }
    let allocs = stop_counting();
    if let Some(j) = core.take_journal() {
        j.finish();
    }
    (allocs, metrics)
}

fn busy_config(kind: OrderKind) -> Config {
    let mut cfg = Config::embedded();
    cfg.model.fast_period = 2;
    cfg.model.slow_period = 5;
    cfg.model.threshold_bps = 0.0;
    cfg.model.order_type = kind;
    cfg.risk.max_orders_per_second = 1_000_000;
    cfg.risk.max_position = 2.0;
    cfg.drift.enabled = true;
    if let mt5bot::config::FeedSource::Synthetic { tick_rate, .. } = &mut cfg.feed.source {
        *tick_rate = 10_000.0; // one tick per 100 us turn
    }
    cfg
}

#[test]
fn market_orders_allocate_nothing_after_start_up() {
    let (allocs, m) = allocations_while_trading(&busy_config(OrderKind::Market), 20_000, 200_000);
    let sent = m.orders_sent.get();
    assert!(sent > 10_000, "the path was exercised: {sent} orders");
    assert!(m.trade_count.get() > 10_000);
    assert_eq!(allocs, 0, "heap allocations on the tick-to-order path");
}

#[test]
fn limit_orders_and_partial_fills_allocate_nothing_after_start_up() {
    let mut cfg = busy_config(OrderKind::Limit);
    cfg.model.order_qty = 3.0;
    cfg.risk.max_position = 6.0;
    let p = &mut cfg.venue.paper;
    p.depth = 1.0; // every order fills in three parts
    let (allocs, m) = allocations_while_trading(&cfg, 20_000, 200_000);
    assert!(m.trade_count.get() > 3 * 1_000, "partial fills exercised: {}", m.trade_count.get());
    assert_eq!(allocs, 0, "heap allocations on the tick-to-order path");
}

#[test]
fn watching_every_equity_breaker_allocates_nothing() {
    use mt5bot::config::{BreakerConfig, BreakerLimit};
    use mt5bot::domain::types::BreakerAction;
    let mut cfg = busy_config(OrderKind::Market);
    let b = |limit| BreakerConfig { limit, action: BreakerAction::Halted, resume_after: None };
    cfg.protection.starting_balance = 1e9;
    cfg.protection.breakers = vec![
        b(BreakerLimit::DailyLoss { amount: Some(1e12), fraction: Some(0.99) }),
        b(BreakerLimit::Drawdown { fraction: 0.99, window: Some(std::time::Duration::from_secs(3600)) }),
        b(BreakerLimit::ConsecutiveLosses { count: u32::MAX }),
        b(BreakerLimit::PositionLoss { amount: 1e12 }),
    ];
    let (allocs, m) = allocations_while_trading(&cfg, 20_000, 200_000);
    assert!(m.trade_count.get() > 10_000, "the path was exercised: {} trades", m.trade_count.get());
    assert_ne!(m.equity.get(), 1e9, "the breakers watched the equity move");
    assert_eq!(allocs, 0, "heap allocations with every breaker on");
}

#[test]
fn stops_and_the_exits_they_send_allocate_nothing() {
    let mut cfg = busy_config(OrderKind::Market);
    // 1 bp either side of each entry: the walk (1 bp a tick) crosses one every few ticks.
    cfg.model.sl_bps = 1.0;
    cfg.model.tp_bps = 1.0;
    let (allocs, m) = allocations_while_trading(&cfg, 20_000, 200_000);
    let exits =
        m.protective_exits.with_label_values(&["sl"]).get() + m.protective_exits.with_label_values(&["tp"]).get();
    assert!(exits > 1_000, "exits were sent: {exits}");
    assert_eq!(allocs, 0, "heap allocations with stops on every position");
}

#[test]
fn stops_resting_at_the_venue_allocate_nothing() {
    let mut cfg = busy_config(OrderKind::Market);
    cfg.model.sl_bps = 1.0;
    cfg.model.tp_bps = 1.0;
    // Room for the pairs beside the model's orders.
    cfg.risk.max_open_orders = 64;
    let (allocs, m) = allocations_while_trading_journaled(&cfg, 20_000, 200_000, None, true);
    let executed =
        m.protective_exits.with_label_values(&["sl"]).get() + m.protective_exits.with_label_values(&["tp"]).get();
    assert!(executed > 100, "resting stops were placed and executed: {executed}");
    assert_eq!(allocs, 0, "heap allocations with the stops resting at the venue");
}

#[test]
fn market_hours_allocate_nothing_between_changes_of_phase() {
    // The manual clock's wall time starts on a Thursday: fx is open for the whole run, the
    // calendar is read at start-up and not again, and the gauges are set once a second.
    let mut cfg = busy_config(OrderKind::Market);
    let text = "sessions:\n  symbols: {EURUSD: fx}\n";
    cfg.sessions = Config::parse(text, "s.yaml").expect("sessions").sessions;
    let (allocs, m) = allocations_while_trading(&cfg, 20_000, 200_000);
    assert_eq!(m.market_open.with_label_values(&["EURUSD"]).get(), 1);
    assert!(m.orders_sent.get() > 10_000, "the path was exercised");
    assert_eq!(allocs, 0, "heap allocations with a calendar on");
}

#[test]
fn refusals_allocate_nothing() {
    let mut cfg = busy_config(OrderKind::Market);
    cfg.model.order_qty = 1.0;
    cfg.risk.max_position = 0.5; // every signal is refused by the risk check
    let (allocs, m) = allocations_while_trading(&cfg, 1_000, 50_000);
    assert!(m.signals_dropped.with_label_values(&["max_position"]).get() > 1_000);
    assert_eq!(m.orders_sent.get(), 0);
    assert_eq!(allocs, 0);
}

#[test]
fn the_order_journal_allocates_nothing_on_the_engine_thread() {
    let dir = std::env::temp_dir().join(format!("mt5bot-noalloc-journal-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let (allocs, m) =
        allocations_while_trading_journaled(&busy_config(OrderKind::Market), 20_000, 100_000, Some(&dir), false);
    let _ = std::fs::remove_dir_all(&dir);
    // An unoptimised build seals batches slowly, so some signals are refused as journal_behind:
    // those are on the path too.
    let refused = m.signals_dropped.with_label_values(&["journal_behind"]).get();
    assert!(m.orders_sent.get() > 1_000, "the path was exercised: {} orders, {refused} refused", m.orders_sent.get());
    // Lost entries (a writer slower than this loop, which runs far faster than real time) are
    // taken by the engine thread too, so they count as exercised.
    let appended = m.journal_entries.get() + m.journal_lost.get();
    assert!(appended > 10_000, "entries were journaled: {appended}");
    assert_eq!(allocs, 0, "heap allocations on the engine thread with the journal on");
}

#[test]
fn the_counter_does_count() {
    start_counting();
    let v: Vec<u64> = std::hint::black_box(Vec::with_capacity(16));
    let n = stop_counting();
    drop(v);
    assert_eq!(n, 1);
}
