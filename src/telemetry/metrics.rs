//! Every metric mt5bot exports, defined once.
//!
//! The five names of the operations chapter (`cpu_usage_pct`, `rss_usage_mb`, `queue_depth`,
//! `trade_count`, `drift_events`) are kept exactly, since dashboards and alerts use them; the rest
//! follow the Prometheus conventions (base units, `_total` counters, `_seconds` histograms).
//!
//! Updating a metric is an atomic operation on a handle resolved at start-up: the engine thread
//! holds [`EngineMetrics`], whose labelled children are looked up once, so the hot path never
//! hashes a label or takes a lock.

use prometheus::{
    Gauge, GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

use crate::domain::types::{DropReason, SignalSource, StopKind, TradingState};
use crate::support::build_info;

/// Metric names, for code, tests and docs alike.
pub mod names {
    pub const CPU_USAGE_PCT: &str = "cpu_usage_pct";
    pub const RSS_USAGE_MB: &str = "rss_usage_mb";
    pub const QUEUE_DEPTH: &str = "queue_depth";
    pub const TRADE_COUNT: &str = "trade_count";
    pub const DRIFT_EVENTS: &str = "drift_events";
    pub const QUEUE_CAPACITY: &str = "queue_capacity";
    pub const TICKS: &str = "ticks_total";
    pub const SIGNALS_RECEIVED: &str = "signals_received_total";
    pub const SIGNALS_DROPPED: &str = "signals_dropped_total";
    pub const ORDERS_SENT: &str = "orders_sent_total";
    pub const ORDERS_REJECTED: &str = "orders_rejected_total";
    pub const OPEN_ORDERS: &str = "open_orders";
    pub const POSITION: &str = "position";
    pub const REALIZED_PNL: &str = "realized_pnl";
    pub const TRADING_PAUSED: &str = "trading_paused";
    pub const TRADING_STATE: &str = "trading_state";
    pub const TRADING_STATE_CHANGES: &str = "trading_state_changes_total";
    pub const EQUITY: &str = "equity";
    pub const BALANCE: &str = "balance";
    pub const PEAK_EQUITY: &str = "peak_equity";
    pub const DRAWDOWN_RATIO: &str = "drawdown_ratio";
    pub const DAILY_PNL: &str = "daily_pnl";
    pub const BREAKER_TRIPS: &str = "breaker_trips_total";
    pub const BREAKER_HEADROOM: &str = "breaker_headroom";
    pub const PROTECTIVE_EXITS: &str = "protective_exits_total";
    pub const PROTECTIVE_EXITS_REFUSED: &str = "protective_exits_refused_total";
    pub const COMMISSIONS_PAID: &str = "commissions_paid";
    pub const SWAPS_BOOKED: &str = "swaps_booked";
    pub const MARKET_OPEN: &str = "market_open";
    pub const MARKET_NEXT_CHANGE: &str = "market_next_change_seconds";
    pub const LAST_TICK: &str = "last_tick_timestamp_seconds";
    pub const TICK_TO_ORDER: &str = "tick_to_order_seconds";
    pub const ORDER_ROUNDTRIP: &str = "order_roundtrip_seconds";
    pub const BROKER_CONNECTED: &str = "broker_connected";
    pub const BROKER_RECONNECTS: &str = "broker_reconnects_total";
    pub const BROKER_CONNECT_FAILURES: &str = "broker_connect_failures_total";
    pub const VENUE_REFUSALS: &str = "venue_refusals_total";
    pub const VENUE_ORDERS_ENDED: &str = "venue_orders_ended_total";
    pub const VENUE_HEDGING_ACCOUNT: &str = "venue_hedging_account";
    pub const ORDERS_OUTCOME_UNKNOWN: &str = "orders_outcome_unknown_total";
    pub const VENUE_ACCOUNT: &str = "venue_account";
    pub const VENUE_TRADE_ALLOWED: &str = "venue_trade_allowed";
    pub const VENUE_POSITION: &str = "venue_position";
    pub const VENUE_PROTOCOL_ERRORS: &str = "venue_protocol_errors_total";
    pub const INGRESS_CONNECTIONS: &str = "ingress_connections";
    pub const INGRESS_ERRORS: &str = "ingress_errors_total";
    pub const LOG_RECORDS_DROPPED: &str = "log_records_dropped_total";
    pub const NOTIFY_SENT: &str = "notify_sent_total";
    pub const NOTIFY_DROPPED: &str = "notify_dropped_total";
    pub const NOTIFY_FAILURES: &str = "notify_failures_total";
    pub const HTTP_REQUESTS: &str = "http_requests_total";
    pub const API_AUTH_FAILURES: &str = "api_auth_failures_total";
    pub const HTTP_CONNECTIONS: &str = "http_connections";
    pub const HTTP_CONNECTIONS_CLOSED: &str = "http_connections_closed_total";
    pub const HTTP_ACCEPT_ERRORS: &str = "http_accept_errors_total";
    pub const LOG_FORWARD_SENT: &str = "log_forward_sent_total";
    pub const LOG_FORWARD_DROPPED: &str = "log_forward_dropped_total";
    pub const LOG_FORWARD_RETRIES: &str = "log_forward_retries_total";
    pub const LOG_FORWARD_BUFFERED: &str = "log_forward_buffered";
    pub const LOG_FORWARD_SPOOL_BYTES: &str = "log_forward_spool_bytes";
    pub const LOG_FORWARD_CONNECTED: &str = "log_forward_connected";
    pub const CHECKPOINT_LAST_SUCCESS: &str = "checkpoint_last_success_timestamp_seconds";
    pub const CHECKPOINT_FAILURES: &str = "checkpoint_failures_total";
    pub const CHECKPOINT_BYTES: &str = "checkpoint_bytes";
    pub const CHECKPOINT_SEAL: &str = "checkpoint_seal_seconds";
    pub const JOURNAL_ENTRIES: &str = "journal_entries_total";
    pub const JOURNAL_LOST: &str = "journal_entries_lost_total";
    pub const JOURNAL_FAILURES: &str = "journal_write_failures_total";
    pub const JOURNAL_BYTES: &str = "journal_segment_bytes";
    pub const JOURNAL_SYNC: &str = "journal_sync_seconds";
    pub const INFLUX_POINTS_WRITTEN: &str = "influx_points_written_total";
    pub const INFLUX_POINTS_DROPPED: &str = "influx_points_dropped_total";
    pub const INFLUX_POINTS_BUFFERED: &str = "influx_points_buffered";
    pub const INFLUX_WRITE_ERRORS: &str = "influx_write_errors_total";
    pub const BUILD_INFO: &str = "mt5bot_build_info";
    pub const DIAGNOSTICS_MISMATCH: &str = "diagnostics_mismatch";
    pub const DIAGNOSTICS_LAST_RUN: &str = "diagnostics_last_run_timestamp_seconds";
    pub const DIAGNOSTICS_LAST_SUCCESS: &str = "diagnostics_last_success_timestamp_seconds";
    /// The five names kept from the operations chapter.
    pub const OPERATIONS_CHAPTER: [&str; 5] = [CPU_USAGE_PCT, RSS_USAGE_MB, QUEUE_DEPTH, TRADE_COUNT, DRIFT_EVENTS];
}

/// Buckets of `tick_to_order_seconds`: from 250 ns up to 10 ms.
pub const TICK_TO_ORDER_BUCKETS: [f64; 14] =
    [250e-9, 500e-9, 1e-6, 2e-6, 5e-6, 10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 5e-3, 10e-3];

/// Buckets of `order_roundtrip_seconds`: 10 us to 10 s.
pub const ROUNDTRIP_BUCKETS: [f64; 13] =
    [10e-6, 50e-6, 100e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 50e-3, 100e-3, 500e-3, 1.0, 10.0];

/// Reasons of `ingress_errors_total`.
pub const INGRESS_ERROR_REASONS: [&str; 7] =
    ["bad_json", "bad_field", "line_too_long", "too_many_connections", "io", "stalled", "accept"];

/// `reason` labels of `http_connections_closed_total`: connections the metrics listener cut off.
/// `evicted`: an idle or unfinished connection closed to make room for a new one at
/// `metrics.max_connections`; `limit`: a new connection refused there (nothing could be evicted);
/// the timeouts are `metrics.header_timeout`, `body_timeout`, `idle_timeout` and `write_timeout`;
/// `bad_request`: bytes that are not HTTP/1.x.
pub const HTTP_CLOSE_REASONS: [&str; 8] =
    ["evicted", "limit", "header_timeout", "body_timeout", "idle_timeout", "write_timeout", "bad_request", "tls"];

/// `kind` labels of `influx_write_errors_total`.
pub const INFLUX_ERROR_KINDS: [&str; 4] = ["connect", "server", "refused", "throttled"];

/// `handler` labels of `http_requests_total`.
pub const HTTP_HANDLERS: [&str; 6] = ["metrics", "healthz", "readyz", "api", "console", "other"];

/// All metric handles, registered in one registry.
#[derive(Debug, Clone)]
pub struct Metrics {
    pub registry: Registry,
    /// `identity:` labels, added to every series when it is encoded.
    identity: Vec<(String, String)>,
    pub cpu_usage_pct: Gauge,
    pub rss_usage_mb: Gauge,
    pub queue_depth: IntGauge,
    pub queue_capacity: IntGauge,
    pub trade_count: IntCounter,
    pub drift_events: IntCounter,
    pub ticks: IntCounter,
    pub signals_received: IntCounterVec,
    pub signals_dropped: IntCounterVec,
    pub orders_sent: IntCounter,
    pub orders_rejected: IntCounter,
    pub open_orders: IntGauge,
    pub position: GaugeVec,
    pub realized_pnl: GaugeVec,
    pub trading_paused: IntGauge,
    pub trading_state: IntGaugeVec,
    pub trading_state_changes: IntCounterVec,
    pub equity: Gauge,
    pub balance: Gauge,
    pub peak_equity: Gauge,
    pub drawdown_ratio: Gauge,
    pub daily_pnl: Gauge,
    pub breaker_trips: IntCounterVec,
    pub protective_exits: IntCounterVec,
    pub protective_exits_refused: IntCounterVec,
    pub commissions_paid: Gauge,
    pub swaps_booked: Gauge,
    pub market_open: IntGaugeVec,
    pub market_next_change: GaugeVec,
    pub last_tick: GaugeVec,
    pub breaker_headroom: GaugeVec,
    pub tick_to_order: Histogram,
    pub order_roundtrip: Histogram,
    pub broker_connected: IntGaugeVec,
    pub broker_reconnects: IntCounterVec,
    pub broker_connect_failures: IntCounterVec,
    pub venue_refusals: IntCounterVec,
    pub venue_orders_ended: IntCounterVec,
    pub venue_hedging_account: IntGaugeVec,
    pub orders_outcome_unknown: IntCounterVec,
    pub venue_account: GaugeVec,
    pub venue_trade_allowed: IntGaugeVec,
    pub venue_position: GaugeVec,
    pub venue_protocol_errors: IntCounterVec,
    pub ingress_connections: IntGauge,
    pub ingress_errors: IntCounterVec,
    pub log_records_dropped: IntCounter,
    pub notify_sent: IntCounterVec,
    pub notify_dropped: IntCounterVec,
    pub notify_failures: IntCounterVec,
    pub http_requests: IntCounterVec,
    pub api_auth_failures: IntCounter,
    pub http_connections: IntGauge,
    pub http_connections_closed: IntCounterVec,
    pub http_accept_errors: IntCounter,
    pub log_forward_sent: IntCounter,
    pub log_forward_dropped: IntCounter,
    pub log_forward_retries: IntCounter,
    pub log_forward_buffered: IntGauge,
    pub log_forward_spool_bytes: IntGauge,
    pub log_forward_connected: IntGauge,
    pub checkpoint_last_success: Gauge,
    pub checkpoint_failures: IntCounter,
    pub checkpoint_bytes: IntGauge,
    pub checkpoint_seal: Histogram,
    pub journal_entries: IntCounter,
    pub journal_lost: IntCounter,
    pub journal_failures: IntCounter,
    pub journal_bytes: IntGauge,
    pub journal_sync: Histogram,
    pub influx_points_written: IntCounter,
    pub influx_points_dropped: IntCounter,
    pub influx_points_buffered: IntGauge,
    pub influx_write_errors: IntCounterVec,
    pub build_info: IntGaugeVec,
}

/// Registering a freshly created, uniquely named metric cannot fail; if it ever did, that is a
/// defect in this file, caught by the tests, not an input error.
/// The nightly diagnostics' metrics in the text format, for `mt5bot diagnostics` to push (the
/// daemon never serves them): `diagnostics_mismatch{kind}` 1 or 0 per kind, the time of this run,
/// and, when it was clean, the time of the last clean run.
pub fn diagnostics_exposition(
    mismatches: &[(&str, bool)],
    now_s: f64,
    clean: bool,
    identity: &[(String, String)],
) -> String {
    use names::{DIAGNOSTICS_LAST_RUN, DIAGNOSTICS_LAST_SUCCESS, DIAGNOSTICS_MISMATCH};
    let r = Registry::new();
    let help = "1 when the nightly diagnostics found a mismatch of this kind.";
    let mismatch = reg(&r, must(GaugeVec::new(Opts::new(DIAGNOSTICS_MISMATCH, help), &["kind"])));
    for (kind, found) in mismatches {
        mismatch.with_label_values(&[kind]).set(f64::from(u8::from(*found)));
    }
    reg(&r, must(Gauge::new(DIAGNOSTICS_LAST_RUN, "When the diagnostics last ran."))).set(now_s);
    if clean {
        reg(&r, must(Gauge::new(DIAGNOSTICS_LAST_SUCCESS, "When the diagnostics last ran clean."))).set(now_s);
    }
    let mut out = Vec::new();
    super::exposition::encode(&r.gather(), identity, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

fn reg<T: prometheus::core::Collector + Clone + 'static>(r: &Registry, m: T) -> T {
    if let Err(e) = r.register(Box::new(m.clone())) {
        panic!("metric registration failed (duplicate or invalid definition): {e}");
    }
    m
}

fn must<T>(m: prometheus::Result<T>) -> T {
    match m {
        Ok(m) => m,
        Err(e) => panic!("invalid metric definition: {e}"),
    }
}

/// How old the `process_*` readings in a scrape may be. Reading them opens and parses four files
/// under `/proc/self` (a third of a scrape's cost); a second is far below any scrape interval.
const PROCESS_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(1);

/// A collector whose readings are reused for `max_age`, for collectors that are costly to read.
struct Recent<C> {
    inner: C,
    max_age: std::time::Duration,
    last: std::sync::Mutex<Option<(std::time::Instant, Vec<prometheus::proto::MetricFamily>)>>,
}

impl<C: prometheus::core::Collector> Recent<C> {
    fn new(inner: C, max_age: std::time::Duration) -> Recent<C> {
        Recent { inner, max_age, last: std::sync::Mutex::new(None) }
    }
}

impl<C: prometheus::core::Collector> prometheus::core::Collector for Recent<C> {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        self.inner.desc()
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        let mut last = self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match &*last {
            Some((at, families)) if at.elapsed() < self.max_age => families.clone(),
            _ => {
                let families = self.inner.collect();
                *last = Some((std::time::Instant::now(), families.clone()));
                families
            }
        }
    }
}

impl Metrics {
    /// Creates and registers every metric, plus the standard `process_*` collector.
    pub fn new() -> Metrics {
        use names::*;
        let r = Registry::new();
        #[cfg(target_os = "linux")]
        if let Err(e) = r.register(Box::new(Recent::new(
            prometheus::process_collector::ProcessCollector::for_self(),
            PROCESS_MAX_AGE,
        ))) {
            panic!("process collector registration failed: {e}");
        }
        let m = Metrics {
            cpu_usage_pct: reg(&r, must(Gauge::new(CPU_USAGE_PCT, "CPU used by the mt5bot process over the last sampling second, in percent of one core (may exceed 100 with several threads busy)."))),
            rss_usage_mb: reg(&r, must(Gauge::new(RSS_USAGE_MB, "Resident memory of the mt5bot process, in MiB (2^20 bytes)."))),
            queue_depth: reg(&r, must(IntGauge::new(QUEUE_DEPTH, "Signals waiting in the signal queue."))),
            queue_capacity: reg(&r, must(IntGauge::new(QUEUE_CAPACITY, "Slots in the signal queue (queue.capacity)."))),
            trade_count: reg(&r, must(IntCounter::new(TRADE_COUNT, "Trades executed: fills booked, partial fills counted each."))),
            drift_events: reg(&r, must(IntCounter::new(DRIFT_EVENTS, "Model drift events raised by the Page-Hinkley detector."))),
            ticks: reg(&r, must(IntCounter::new(TICKS, "Ticks received from the feed."))),
            signals_received: reg(&r, must(IntCounterVec::new(Opts::new(SIGNALS_RECEIVED, "Signals received, by source."), &["source"]))),
            signals_dropped: reg(&r, must(IntCounterVec::new(Opts::new(SIGNALS_DROPPED, "Signals that did not become an order, by reason."), &["reason"]))),
            orders_sent: reg(&r, must(IntCounter::new(ORDERS_SENT, "Orders handed to the venue."))),
            orders_rejected: reg(&r, must(IntCounter::new(ORDERS_REJECTED, "Orders refused by the venue."))),
            open_orders: reg(&r, must(IntGauge::new(OPEN_ORDERS, "Orders sent and not yet filled, rejected or cancelled."))),
            position: reg(&r, must(GaugeVec::new(Opts::new(POSITION, "Signed position per symbol, in units of the order quantity."), &["symbol"]))),
            realized_pnl: reg(&r, must(GaugeVec::new(Opts::new(REALIZED_PNL, "Realized profit and loss per symbol, in account currency (contract size and conversion applied; before commissions and swaps)."), &["symbol"]))),
            trading_paused: reg(&r, must(IntGauge::new(TRADING_PAUSED, "1 while new signals are refused (trading halted, or a drift pause), else 0."))),
            trading_state: reg(&r, must(IntGaugeVec::new(Opts::new(TRADING_STATE, "1 for the trading state the engine is in (active, reducing, halted), 0 for the others."), &["state"]))),
            trading_state_changes: reg(&r, must(IntCounterVec::new(Opts::new(TRADING_STATE_CHANGES, "Changes of the trading state, by who or what made them (operator, a breaker's name)."), &["reason"]))),
            equity: reg(&r, must(Gauge::new(EQUITY, "Starting balance plus realized PnL plus open positions marked to the quote (bid for longs, ask for shorts)."))),
            balance: reg(&r, must(Gauge::new(BALANCE, "Starting balance plus realized PnL; the venue's figure where it reports one (MT5), plus what was realized since."))),
            peak_equity: reg(&r, must(Gauge::new(PEAK_EQUITY, "The highest equity seen (the base of drawdown_ratio)."))),
            drawdown_ratio: reg(&r, must(Gauge::new(DRAWDOWN_RATIO, "Fall of equity from its peak, as a fraction of the peak."))),
            daily_pnl: reg(&r, must(Gauge::new(DAILY_PNL, "Equity now minus equity at the start of the trading day (protection.day_start)."))),
            breaker_trips: reg(&r, must(IntCounterVec::new(Opts::new(BREAKER_TRIPS, "Equity breaker trips that changed the trading state, by breaker."), &["breaker"]))),
            breaker_headroom: reg(&r, must(GaugeVec::new(Opts::new(BREAKER_HEADROOM, "How far each configured breaker is from tripping: 1 far, 0 at its limit."), &["breaker"]))),
            market_open: reg(&r, must(IntGaugeVec::new(Opts::new(MARKET_OPEN, "1 while the symbol's market takes orders by its calendar (sessions:), else 0."), &["symbol"]))),
            market_next_change: reg(&r, must(GaugeVec::new(Opts::new(MARKET_NEXT_CHANGE, "Seconds until market_open next changes, for symbols with a calendar."), &["symbol"]))),
            last_tick: reg(&r, must(GaugeVec::new(Opts::new(LAST_TICK, "When the symbol's last tick arrived (Unix seconds, to the second)."), &["symbol"]))),
            swaps_booked: reg(&r, must(Gauge::new(SWAPS_BOOKED, "Swaps booked over the life of the books, in account currency, positive a credit (feed.symbols[].swap_long/swap_short on paper, at venue.paper.rollover)."))),
            commissions_paid: reg(&r, must(Gauge::new(COMMISSIONS_PAID, "Commissions booked over the life of the books, in account currency (the venue's, or feed.symbols[].commission_per_lot on paper)."))),
            protective_exits: reg(&r, must(IntCounterVec::new(Opts::new(PROTECTIVE_EXITS, "Positions closed by their stop-loss (kind=sl) or take-profit (kind=tp): exits the engine sent, and stop executions the venue reported."), &["kind"]))),
            protective_exits_refused: reg(&r, must(IntCounterVec::new(Opts::new(PROTECTIVE_EXITS_REFUSED, "Protective exits the engine could not send (refused by its own checks or by the venue): the position is not closed and the exit is tried again with a growing wait; three in a row halt trading."), &["kind"]))),
            tick_to_order: reg(&r, must(Histogram::with_opts(HistogramOpts::new(TICK_TO_ORDER, "Time from reading the input that caused a signal to handing its order to the venue, in seconds.").buckets(TICK_TO_ORDER_BUCKETS.to_vec())))),
            order_roundtrip: reg(&r, must(Histogram::with_opts(HistogramOpts::new(ORDER_ROUNDTRIP, "Time from handing an order to the venue to its acknowledgement, in seconds.").buckets(ROUNDTRIP_BUCKETS.to_vec())))),
            broker_connected: reg(&r, must(IntGaugeVec::new(Opts::new(BROKER_CONNECTED, "1 while the venue session is up, else 0."), &["venue"]))),
            orders_outcome_unknown: reg(&r, must(IntCounterVec::new(Opts::new(ORDERS_OUTCOME_UNKNOWN, "Orders given up as of unknown outcome: no report came and the venue can neither resend one nor be asked (fix44: sent before a sequence-number reset, at a venue that answers no OrderStatusRequest). Check them at the broker; a report that comes later is still booked."), &["venue"]))),
            broker_reconnects: reg(&r, must(IntCounterVec::new(Opts::new(BROKER_RECONNECTS, "Venue sessions established after the first (fix44: Logon answered; mt5: the EA authenticated). The paper venue never reconnects."), &["venue"]))),
            venue_account: reg(&r, must(GaugeVec::new(Opts::new(VENUE_ACCOUNT, "The account as the venue reports it, in its currency: figure=balance, equity, margin, margin_free (mt5: the terminal's ACCOUNT_*)."), &["venue", "figure"]))),
            venue_position: reg(&r, must(GaugeVec::new(Opts::new(VENUE_POSITION, "The venue's own net position per symbol at its last report (mt5: the positions of mt5bot's magic in the snapshot at each logon, buys less sells), beside mt5bot's position; only venues that report it have it."), &["venue", "symbol"]))),
            venue_trade_allowed: reg(&r, must(IntGaugeVec::new(Opts::new(VENUE_TRADE_ALLOWED, "1 while the venue lets mt5bot trade (mt5: Algo Trading on in the terminal and the EA, and allowed for the account), 0 when every order would be refused."), &["venue"]))),
            venue_refusals: reg(&r, must(IntCounterVec::new(Opts::new(VENUE_REFUSALS, "Orders the venue refused, by its reason (mt5: the trade server's retcode, e.g. no_money, autotrading_disabled_by_client, market_closed)."), &["venue", "reason"]))),
            venue_orders_ended: reg(&r, must(IntCounterVec::new(Opts::new(VENUE_ORDERS_ENDED, "Orders the venue ended on its own after taking them, by how (mt5: canceled in the terminal or by the broker, expired, rejected after placement)."), &["venue", "state"]))),
            venue_hedging_account: reg(&r, must(IntGaugeVec::new(Opts::new(VENUE_HEDGING_ACCOUNT, "1 while the venue's account is a hedging account (mt5: ACCOUNT_MARGIN_MODE_RETAIL_HEDGING) whose bridge does not close positions by ticket, so an order against a position opens a second one instead of closing it: mt5bot's net books and the account part. 0 for netting accounts and for hedging accounts the bridge keeps net."), &["venue"]))),
            broker_connect_failures: reg(&r, must(IntCounterVec::new(Opts::new(BROKER_CONNECT_FAILURES, "Connection attempts to the venue that ended before a session was established (refused, timed out, dropped before Logon)."), &["venue"]))),
            venue_protocol_errors: reg(&r, must(IntCounterVec::new(Opts::new(VENUE_PROTOCOL_ERRORS, "Protocol trouble with the venue. fix44: garbled (bytes dropped), rejected (we refused a venue message), refused (the venue refused one of ours); mt5: auth_failed, handshake_timeout, handshake_evicted (an unauthenticated connection closed to make room), tls_refused (a failed TLS handshake on venue.mt5.tls), bad_line, line_too_long."), &["venue", "kind"]))),
            ingress_connections: reg(&r, must(IntGauge::new(INGRESS_CONNECTIONS, "Signal ingress clients connected."))),
            ingress_errors: reg(&r, must(IntCounterVec::new(Opts::new(INGRESS_ERRORS, "Bad input on the signal ingress, by reason."), &["reason"]))),
            log_records_dropped: reg(&r, must(IntCounter::new(LOG_RECORDS_DROPPED, "Log records dropped because the log writer fell behind (logging.channel_capacity)."))),
            notify_sent: reg(&r, must(IntCounterVec::new(Opts::new(NOTIFY_SENT, "Notification messages the sink's service accepted (notify.sinks)."), &["sink"]))),
            notify_dropped: reg(&r, must(IntCounterVec::new(Opts::new(NOTIFY_DROPPED, "Notifications never delivered: the sink's queue was full (notify.queue_capacity), its service refused the message, or the daemon stopped while it was down."), &["sink"]))),
            notify_failures: reg(&r, must(IntCounterVec::new(Opts::new(NOTIFY_FAILURES, "Delivery attempts that failed and were retried (the service down, slow, or rate-limiting)."), &["sink"]))),
            http_requests: reg(&r, must(IntCounterVec::new(Opts::new(HTTP_REQUESTS, "HTTP requests served, by handler and status code."), &["handler", "code"]))),
            api_auth_failures: reg(&r, must(IntCounter::new(API_AUTH_FAILURES, "Control API calls refused for a missing or wrong API key."))),
            http_connections: reg(&r, must(IntGauge::new(HTTP_CONNECTIONS, "Open connections on the metrics and control listener (bounded by metrics.max_connections)."))),
            http_connections_closed: reg(&r, must(IntCounterVec::new(Opts::new(HTTP_CONNECTIONS_CLOSED, "Connections the metrics listener cut off, by reason: evicted, limit, header_timeout, body_timeout, idle_timeout, write_timeout, bad_request."), &["reason"]))),
            http_accept_errors: reg(&r, must(IntCounter::new(HTTP_ACCEPT_ERRORS, "Failed accepts on the metrics listener (e.g. out of file descriptors); retried."))),
            log_forward_sent: reg(&r, must(IntCounter::new(LOG_FORWARD_SENT, "Log records delivered to the sink at log_forward.url."))),
            log_forward_dropped: reg(&r, must(IntCounter::new(LOG_FORWARD_DROPPED, "Log records never forwarded: the buffers or the spool were full, or the sink refused them (they are in the local file)."))),
            log_forward_retries: reg(&r, must(IntCounter::new(LOG_FORWARD_RETRIES, "Failed or partial deliveries to the log sink that were retried."))),
            log_forward_buffered: reg(&r, must(IntGauge::new(LOG_FORWARD_BUFFERED, "Log records waiting for the sink, in memory and in the spool."))),
            log_forward_spool_bytes: reg(&r, must(IntGauge::new(LOG_FORWARD_SPOOL_BYTES, "Bytes in the on-disk log spool (log_forward.spool_dir)."))),
            log_forward_connected: reg(&r, must(IntGauge::new(LOG_FORWARD_CONNECTED, "1 while the log sink answers, else 0 (records then go to the spool)."))),
            checkpoint_last_success: reg(&r, must(Gauge::new(CHECKPOINT_LAST_SUCCESS, "Unix time of the last checkpoint written and synced to disk."))),
            checkpoint_failures: reg(&r, must(IntCounter::new(CHECKPOINT_FAILURES, "Checkpoints that could not be sealed or written."))),
            checkpoint_bytes: reg(&r, must(IntGauge::new(CHECKPOINT_BYTES, "Size of the last checkpoint written, in bytes."))),
            checkpoint_seal: reg(&r, must(Histogram::with_opts(HistogramOpts::new(CHECKPOINT_SEAL, "Time the engine thread spends serializing and encrypting a checkpoint, in seconds.").buckets(vec![10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 5e-3, 10e-3])))),
            journal_entries: reg(&r, must(IntCounter::new(JOURNAL_ENTRIES, "Order journal entries (signals queued, orders sent, fills, closes) synced to disk."))),
            journal_lost: reg(&r, must(IntCounter::new(JOURNAL_LOST, "Order journal entries not written because the writer fell behind; the next checkpoint holds their state."))),
            journal_failures: reg(&r, must(IntCounter::new(JOURNAL_FAILURES, "Failed order journal writes (each retried)."))),
            journal_bytes: reg(&r, must(IntGauge::new(JOURNAL_BYTES, "Size of the current order journal segment, in bytes (it restarts at each checkpoint)."))),
            journal_sync: reg(&r, must(Histogram::with_opts(HistogramOpts::new(JOURNAL_SYNC, "Time to seal, write and fdatasync one order journal batch, in seconds.").buckets(vec![50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 100e-3])))),
            influx_points_written: reg(&r, must(IntCounter::new(INFLUX_POINTS_WRITTEN, "Points accepted by InfluxDB."))),
            influx_points_dropped: reg(&r, must(IntCounter::new(INFLUX_POINTS_DROPPED, "Points dropped: buffer full (influx.buffer_points), trade channel full, or refused by the server (4xx)."))),
            influx_points_buffered: reg(&r, must(IntGauge::new(INFLUX_POINTS_BUFFERED, "Points waiting to be written to InfluxDB."))),
            influx_write_errors: reg(&r, must(IntCounterVec::new(Opts::new(INFLUX_WRITE_ERRORS, "Failed InfluxDB write requests, by kind (connect, server, refused, throttled)."), &["kind"]))),
            build_info: reg(&r, must(IntGaugeVec::new(Opts::new(BUILD_INFO, "Always 1; labels say which build is running."), &["version", "commit", "rustc", "target"]))),
            registry: r,
            identity: Vec::new(),
        };
        m.build_info
            .with_label_values(&[
                build_info::VERSION,
                build_info::GIT_COMMIT,
                build_info::RUSTC_VERSION,
                build_info::TARGET,
            ])
            .set(1);
        // Create every labelled series up front, so each is exported (as 0) from the first scrape.
        for s in SignalSource::ALL {
            m.signals_received.with_label_values(&[s.as_str()]);
        }
        for r in DropReason::ALL {
            m.signals_dropped.with_label_values(&[r.as_str()]);
        }
        for r in INGRESS_ERROR_REASONS {
            m.ingress_errors.with_label_values(&[r]);
        }
        for k in INFLUX_ERROR_KINDS {
            m.influx_write_errors.with_label_values(&[k]);
        }
        for r in HTTP_CLOSE_REASONS {
            m.http_connections_closed.with_label_values(&[r]);
        }
        // Every state is a series from the start, active at 1, so a query never sees a gap.
        for s in TradingState::ALL {
            m.trading_state.with_label_values(&[s.as_str()]).set(i64::from(s == TradingState::Active));
        }
        m
    }

    /// Handles the engine thread uses, with labelled children resolved once.
    /// The counters of the FIX venue.
    pub fn fix(&self) -> FixMetrics {
        let e = |kind: &str| self.venue_protocol_errors.with_label_values(&["fix44", kind]);
        FixMetrics {
            reconnects: self.broker_reconnects.with_label_values(&["fix44"]),
            connect_failures: self.broker_connect_failures.with_label_values(&["fix44"]),
            garbled: e("garbled"),
            rejects_sent: e("rejected"),
            rejects_received: e("refused"),
            outcome_unknown: self.orders_outcome_unknown.with_label_values(&["fix44"]),
        }
    }

    /// The counters of the MT5 bridge.
    pub fn mt5(&self) -> Mt5Metrics {
        let e = |kind: &str| self.venue_protocol_errors.with_label_values(&["mt5", kind]);
        Mt5Metrics {
            reconnects: self.broker_reconnects.with_label_values(&["mt5"]),
            auth_failed: e("auth_failed"),
            handshake_timeout: e("handshake_timeout"),
            bad_line: e("bad_line"),
            line_too_long: e("line_too_long"),
            handshake_evicted: e("handshake_evicted"),
            tls_refused: e("tls_refused"),
            refusals: self.venue_refusals.clone(),
            account: ["balance", "equity", "margin", "margin_free"]
                .map(|f| self.venue_account.with_label_values(&["mt5", f])),
            trade_allowed: self.venue_trade_allowed.with_label_values(&["mt5"]),
            ended: ["canceled", "expired", "rejected"].map(|s| self.venue_orders_ended.with_label_values(&["mt5", s])),
            hedging: self.venue_hedging_account.with_label_values(&["mt5"]),
        }
    }

    pub fn engine(&self, venue: &str, symbols: &[String]) -> EngineMetrics {
        EngineMetrics {
            queue_depth: self.queue_depth.clone(),
            trade_count: self.trade_count.clone(),
            drift_events: self.drift_events.clone(),
            ticks: self.ticks.clone(),
            received: SignalSource::ALL.map(|s| self.signals_received.with_label_values(&[s.as_str()])),
            dropped: DropReason::ALL.map(|r| self.signals_dropped.with_label_values(&[r.as_str()])),
            orders_sent: self.orders_sent.clone(),
            orders_rejected: self.orders_rejected.clone(),
            open_orders: self.open_orders.clone(),
            position: symbols.iter().map(|s| self.position.with_label_values(&[s])).collect(),
            venue_position: self.venue_position.clone(),
            realized_pnl: symbols.iter().map(|s| self.realized_pnl.with_label_values(&[s])).collect(),
            trading_paused: self.trading_paused.clone(),
            trading_state: TradingState::ALL.map(|s| self.trading_state.with_label_values(&[s.as_str()])),
            trading_state_changes: self.trading_state_changes.clone(),
            equity: self.equity.clone(),
            balance: self.balance.clone(),
            peak_equity: self.peak_equity.clone(),
            drawdown_ratio: self.drawdown_ratio.clone(),
            daily_pnl: self.daily_pnl.clone(),
            breaker_trips: self.breaker_trips.clone(),
            breaker_headroom: self.breaker_headroom.clone(),
            commissions_paid: self.commissions_paid.clone(),
            swaps_booked: self.swaps_booked.clone(),
            market_open: symbols.iter().map(|s| self.market_open.with_label_values(&[s])).collect(),
            market_next_change: self.market_next_change.clone(),
            last_tick: symbols.iter().map(|s| self.last_tick.with_label_values(&[s])).collect(),
            protective_exits: StopKind::ALL.map(|k| self.protective_exits.with_label_values(&[k.as_str()])),
            protective_exits_refused: StopKind::ALL
                .map(|k| self.protective_exits_refused.with_label_values(&[k.as_str()])),
            tick_to_order: self.tick_to_order.clone(),
            order_roundtrip: self.order_roundtrip.clone(),
            broker_connected: self.broker_connected.with_label_values(&[venue]),
            broker_reconnects: self.broker_reconnects.with_label_values(&[venue]),
            ingress_connections: self.ingress_connections.clone(),
            ingress_errors: INGRESS_ERROR_REASONS.map(|r| self.ingress_errors.with_label_values(&[r])),
            influx_points_dropped: self.influx_points_dropped.clone(),
        }
    }

    /// Every series will carry these labels (`identity:`), except where it has its own of a name.
    pub fn set_identity(&mut self, labels: &[(String, String)]) {
        self.identity = labels.to_vec();
    }

    pub fn identity(&self) -> &[(String, String)] {
        &self.identity
    }

    /// Renders the registry in the text exposition format 0.0.4.
    pub fn encode(&self, buf: &mut Vec<u8>) -> prometheus::Result<()> {
        super::exposition::encode(&self.registry.gather(), &self.identity, buf);
        Ok(())
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// The engine thread's handles.
#[derive(Debug, Clone)]
pub struct EngineMetrics {
    pub queue_depth: IntGauge,
    pub trade_count: IntCounter,
    pub drift_events: IntCounter,
    pub ticks: IntCounter,
    pub received: [IntCounter; SignalSource::ALL.len()],
    pub dropped: [IntCounter; DropReason::ALL.len()],
    pub orders_sent: IntCounter,
    pub orders_rejected: IntCounter,
    pub open_orders: IntGauge,
    pub position: Vec<Gauge>,
    /// `venue_position{venue,symbol}`: children made when a venue first reports, so venues that
    /// never do show none.
    pub venue_position: GaugeVec,
    pub realized_pnl: Vec<Gauge>,
    pub trading_paused: IntGauge,
    pub trading_state: [IntGauge; TradingState::ALL.len()],
    pub trading_state_changes: IntCounterVec,
    pub equity: Gauge,
    pub balance: Gauge,
    pub peak_equity: Gauge,
    pub drawdown_ratio: Gauge,
    pub daily_pnl: Gauge,
    pub breaker_trips: IntCounterVec,
    pub breaker_headroom: GaugeVec,
    /// Per [`StopKind`], in its order.
    pub protective_exits: [IntCounter; StopKind::ALL.len()],
    /// Per [`StopKind`], in its order.
    pub protective_exits_refused: [IntCounter; StopKind::ALL.len()],
    pub commissions_paid: Gauge,
    pub swaps_booked: Gauge,
    /// Per symbol, in `feed.symbols` order.
    pub market_open: Vec<IntGauge>,
    pub market_next_change: GaugeVec,
    /// Per symbol, in `feed.symbols` order.
    pub last_tick: Vec<Gauge>,
    pub tick_to_order: Histogram,
    pub order_roundtrip: Histogram,
    pub broker_connected: IntGauge,
    pub broker_reconnects: IntCounter,
    pub ingress_connections: IntGauge,
    pub ingress_errors: [IntCounter; INGRESS_ERROR_REASONS.len()],
    pub influx_points_dropped: IntCounter,
}

impl EngineMetrics {
    #[inline]
    pub fn dropped(&self, reason: DropReason) {
        self.dropped[reason.index()].inc();
    }

    #[inline]
    pub fn received(&self, source: SignalSource) {
        self.received[source as usize].inc();
    }

    /// The handles of the equity breakers, one headroom gauge and trip counter per breaker named.
    pub fn protection(&self, breakers: &[&str]) -> ProtectionMetrics {
        ProtectionMetrics {
            equity: self.equity.clone(),
            balance: self.balance.clone(),
            peak_equity: self.peak_equity.clone(),
            drawdown_ratio: self.drawdown_ratio.clone(),
            daily_pnl: self.daily_pnl.clone(),
            commissions: self.commissions_paid.clone(),
            swaps: self.swaps_booked.clone(),
            headroom: breakers.iter().map(|b| self.breaker_headroom.with_label_values(&[b])).collect(),
            trips: breakers.iter().map(|b| self.breaker_trips.with_label_values(&[b])).collect(),
        }
    }

    /// Sets the `trading_state{state}` gauges: 1 for `state`, 0 for the others.
    pub fn set_trading_state(&self, state: TradingState) {
        for (s, g) in TradingState::ALL.iter().zip(&self.trading_state) {
            g.set(i64::from(*s == state));
        }
    }

    /// Counts a change of the trading state made by `by`.
    pub fn trading_state_changed(&self, by: &str) {
        self.trading_state_changes.with_label_values(&[by]).inc();
    }

    /// Counts bad ingress input; `reason` is one of [`INGRESS_ERROR_REASONS`].
    pub fn ingress_error(&self, reason: &str) {
        if let Some(i) = INGRESS_ERROR_REASONS.iter().position(|r| *r == reason) {
            self.ingress_errors[i].inc();
        }
    }
}

/// The equity breakers' handles (the engine thread's).
#[derive(Debug, Clone)]
pub struct ProtectionMetrics {
    pub equity: Gauge,
    pub balance: Gauge,
    pub peak_equity: Gauge,
    pub drawdown_ratio: Gauge,
    pub daily_pnl: Gauge,
    pub commissions: Gauge,
    pub swaps: Gauge,
    /// One per configured breaker, in the order of the configuration.
    pub headroom: Vec<Gauge>,
    pub trips: Vec<IntCounter>,
}

/// Counters the FIX venue keeps beside the session's.
#[derive(Debug, Clone)]
pub struct FixMetrics {
    /// Sessions established (Logon answered) after the first.
    pub reconnects: IntCounter,
    /// Connection attempts that ended before a session was established.
    pub connect_failures: IntCounter,
    /// Bytes dropped as garbled (bad checksum, length, framing).
    pub garbled: IntCounter,
    /// Session Rejects we sent for bad messages from the venue.
    pub rejects_sent: IntCounter,
    /// Session Rejects the venue sent for our messages.
    pub rejects_received: IntCounter,
    /// `orders_outcome_unknown_total{venue="fix44"}`.
    pub outcome_unknown: IntCounter,
}

/// Counters of the MT5 bridge.
#[derive(Debug, Clone)]
pub struct Mt5Metrics {
    /// EA sessions authenticated after the first.
    pub reconnects: IntCounter,
    pub auth_failed: IntCounter,
    pub handshake_timeout: IntCounter,
    pub bad_line: IntCounter,
    pub line_too_long: IntCounter,
    pub handshake_evicted: IntCounter,
    /// A connection to a TLS listener that failed the handshake (plain TCP, a client certificate
    /// refused, garbage).
    pub tls_refused: IntCounter,
    /// `venue_refusals_total`; the venue takes a counter per reason it knows.
    pub refusals: IntCounterVec,
    /// `venue_account{figure}`: balance, equity, margin, margin_free.
    pub account: [Gauge; 4],
    pub trade_allowed: IntGauge,
    /// `venue_orders_ended_total{state}`: canceled, expired, rejected (in that order).
    pub ended: [IntCounter; 3],
    /// `venue_hedging_account`: 1 while the terminal's account is a hedging one its EA does not
    /// keep net (no `closes_by_ticket`).
    pub hedging: IntGauge,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposes_the_operations_chapter_names_with_help_and_type() {
        let m = Metrics::new();
        let mut buf = Vec::new();
        m.encode(&mut buf).expect("encode");
        let text = String::from_utf8(buf).expect("utf8");
        for name in names::OPERATIONS_CHAPTER {
            assert!(text.contains(&format!("# HELP {name} ")), "{name} HELP");
            assert!(text.contains(&format!("# TYPE {name} ")), "{name} TYPE");
        }
        assert!(text.contains("signals_dropped_total{reason=\"queue_full\"} 0"));
        assert!(text.contains("mt5bot_build_info{"));
        assert!(text.contains("tick_to_order_seconds_bucket{le=\"0.00000025\"} 0"), "{text}");
    }

    #[test]
    fn every_name_constant_is_registered() {
        let m = Metrics::new();
        m.engine("paper", &["EURUSD".into()]);
        let families: Vec<String> = m.registry.gather().iter().map(|f| f.name().to_owned()).collect();
        for n in [
            names::QUEUE_CAPACITY,
            names::TICKS,
            names::SIGNALS_RECEIVED,
            names::SIGNALS_DROPPED,
            names::ORDERS_SENT,
            names::ORDERS_REJECTED,
            names::OPEN_ORDERS,
            names::POSITION,
            names::REALIZED_PNL,
            names::TRADING_PAUSED,
            names::TICK_TO_ORDER,
            names::ORDER_ROUNDTRIP,
            names::BROKER_CONNECTED,
            names::BROKER_RECONNECTS,
            names::INGRESS_CONNECTIONS,
            names::INGRESS_ERRORS,
            names::LOG_RECORDS_DROPPED,
            names::BUILD_INFO,
        ] {
            assert!(families.iter().any(|f| f == n), "{n} missing from {families:?}");
        }
    }
}
