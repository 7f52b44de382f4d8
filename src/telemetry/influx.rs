//! InfluxDB ingestion: every `influx.interval` the metrics, and every fill, as line protocol to
//! InfluxDB (`/api/v2/write`, also what VictoriaMetrics accepts) or InfluxDB 1.x (`/write?db=`).
//!
//! It runs on a thread of its own, so a slow or dead server delays neither the engine (which hands
//! fills over a bounded channel with `try_send`) nor a `/metrics` scrape. Points wait in a bounded
//! buffer (`influx.buffer_points`); when it is full the oldest go first and
//! `influx_points_dropped_total` counts them. Connection errors, timeouts, 408 and 5xx are retried
//! with capped exponential backoff and jitter; 429 and 503 honour `Retry-After`; any other 4xx is
//! logged with the server's message and its batch dropped (counted), since resending it cannot help.
//!
//! Measurements: `mt5bot_metrics` (tags host, venue, and symbol for the per-symbol position and PnL)
//! and `mt5bot_trades` (tags host, venue, symbol, side; fields qty, price, realized_pnl, exec_id,
//! client_id).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::config::{InfluxApi, InfluxConfig};
use crate::domain::types::TradeRecord;
use crate::secrets::{Secret, Secrets};
use crate::support::backoff::Backoff;
use crate::support::encoding::percent_encode;
use crate::support::timefmt::unix_nanos;

use super::line_protocol::{write_point, Field};
use super::metrics::Metrics;

/// Longest wait between retries.
/// How often the writer looks for new fills (it polls; see `run`).
const TRADE_POLL: Duration = Duration::from_millis(5);

const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// Where and how to write, resolved from the config and the environment.
#[derive(Debug, Clone)]
pub struct Target {
    /// The full write URL, query included.
    pub write_url: String,
    pub token: Option<Secret>,
    /// Basic credentials from `user:password@` in the URL, used when there is no token.
    pub basic: Option<Secret>,
    pub interval: Duration,
    pub buffer_points: usize,
    pub batch_points: usize,
    pub timeout: Duration,
}

/// Fills empty config values from `INFLUXDB_URL`, `INFLUXDB_ORG`, `INFLUXDB_BUCKET`; the token is
/// the secret `INFLUXDB_TOKEN`. Errors say which value is missing and where it can come from.
pub fn resolve(cfg: &InfluxConfig, secrets: &Secrets, env: &dyn Fn(&str) -> Option<String>) -> Result<Target, String> {
    let pick = |value: &str, var: &str, key: &str| -> Result<String, String> {
        if !value.is_empty() {
            return Ok(value.to_owned());
        }
        env(var).filter(|v| !v.is_empty()).ok_or_else(|| {
            format!(
                "influx.enabled is true but neither {key} nor {var} is set (run mt5bot influx-bootstrap, or set {key})"
            )
        })
    };
    let given = pick(&cfg.url, "INFLUXDB_URL", "influx.url")?;
    let (url, userinfo) = crate::support::urls::split_userinfo(given.trim_end_matches('/'));
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(format!(
            "INFLUXDB_URL {:?} is not an http:// or https:// URL",
            crate::support::urls::redact(&given)
        ));
    }
    let basic = userinfo.map(|ui| Secret::from_value(crate::support::urls::basic_auth(&ui)));
    let token = secrets.get("INFLUXDB_TOKEN").cloned();
    let write_url = match cfg.api {
        InfluxApi::V2 => {
            let org = pick(&cfg.org, "INFLUXDB_ORG", "influx.org")?;
            let bucket = pick(&cfg.bucket, "INFLUXDB_BUCKET", "influx.bucket")?;
            if token.is_none() {
                return Err("influx.api is v2 but INFLUXDB_TOKEN is not set (run mt5bot influx-bootstrap)".into());
            }
            format!("{url}/api/v2/write?org={}&bucket={}&precision=ns", percent_encode(&org), percent_encode(&bucket))
        }
        InfluxApi::V1 => format!("{url}/write?db={}&precision=n", percent_encode(&cfg.database)),
    };
    Ok(Target {
        write_url,
        token,
        basic,
        interval: cfg.interval,
        buffer_points: cfg.buffer_points,
        batch_points: cfg.batch_points,
        timeout: cfg.timeout,
    })
}

/// The running writer thread.
#[derive(Debug)]
pub struct InfluxWriter {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

/// What the writer needs to describe points.
#[derive(Debug, Clone)]
pub struct Labels {
    pub host: String,
    pub venue: &'static str,
    pub symbols: Vec<String>,
}

impl InfluxWriter {
    pub fn spawn(
        target: Target,
        metrics: Metrics,
        trades: Receiver<TradeRecord>,
        labels: Labels,
    ) -> std::io::Result<InfluxWriter> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = std::thread::Builder::new()
            .name("mt5bot-influx".into())
            .spawn(move || Writer::new(target, metrics, labels).run(&trades, &flag))?;
        Ok(InfluxWriter { stop, handle: Some(handle) })
    }

    /// Writes a last snapshot and what is buffered (bounded by the request timeout), then stops.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

enum Outcome {
    Written,
    Retry(Duration),
    Refused,
}

/// Points waiting to be written, encoded straight into the request bodies they will travel in:
/// batches of at most `batch` lines each, oldest first. One string per batch rather than per
/// point keeps a burst of fills from costing an allocation each.
#[derive(Debug)]
struct Batches {
    batch: usize,
    queue: VecDeque<Batch>,
    points: usize,
}

#[derive(Debug, Default)]
struct Batch {
    text: String,
    /// Where the first line not yet dropped starts.
    start: usize,
    lines: usize,
}

impl Batches {
    fn new(batch: usize) -> Batches {
        Batches { batch: batch.max(1), queue: VecDeque::new(), points: 0 }
    }

    fn len(&self) -> usize {
        self.points
    }

    fn is_empty(&self) -> bool {
        self.points == 0
    }

    /// Appends the line `encode` writes (nothing if it returns false).
    fn push_with(&mut self, encode: impl FnOnce(&mut String) -> bool) {
        if self.queue.back().is_none_or(|b| b.lines >= self.batch) {
            self.queue.push_back(Batch::default());
        }
        let Some(last) = self.queue.back_mut() else { return };
        let before = last.text.len();
        if encode(&mut last.text) {
            last.lines += 1;
            self.points += 1;
        } else {
            last.text.truncate(before);
        }
    }

    /// Drops the oldest point.
    fn drop_oldest(&mut self) {
        let Some(first) = self.queue.front_mut() else { return };
        match first.text[first.start..].find('\n') {
            Some(i) if first.lines > 1 => {
                first.start += i + 1;
                first.lines -= 1;
                self.points -= 1;
            }
            _ => {
                self.points -= first.lines;
                self.queue.pop_front();
            }
        }
    }

    /// The oldest batch: its body and how many points it holds.
    fn front(&self) -> Option<(&str, usize)> {
        self.queue.front().map(|b| (&b.text[b.start..], b.lines))
    }

    fn pop_front(&mut self) {
        if let Some(b) = self.queue.pop_front() {
            self.points -= b.lines;
        }
    }
}

/// Appends a fill as an `mt5bot_trades` point (false, nothing appended, when it has no writable
/// field).
pub fn write_trade(out: &mut String, labels: &Labels, t: &TradeRecord) -> bool {
    let symbol = labels.symbols.get(t.symbol as usize).map(String::as_str).unwrap_or("?");
    let tags = [("host", labels.host.as_str()), ("venue", labels.venue), ("symbol", symbol), ("side", t.side.as_str())];
    let fields = [
        ("qty", Field::Float(t.qty)),
        ("price", Field::Float(t.price)),
        ("realized_pnl", Field::Float(t.realized_pnl)),
        ("exec_id", Field::Int(t.exec_id as i64)),
        ("client_id", Field::Str(t.client_id.as_str())),
    ];
    write_point(out, "mt5bot_trades", &tags, &fields, t.unix_ns)
}

/// Buffers the point `encode` writes, dropping the oldest one (counted) when `limit` are waiting.
fn admit(buffer: &mut Batches, limit: usize, metrics: &Metrics, encode: impl FnOnce(&mut String) -> bool) {
    if buffer.len() >= limit.max(1) {
        buffer.drop_oldest();
        metrics.influx_points_dropped.inc();
    }
    buffer.push_with(encode);
}

struct Writer {
    target: Target,
    metrics: Metrics,
    labels: Labels,
    agent: ureq::Agent,
    buffer: Batches,
    backoff: Backoff,
    last_refusal_log: Option<Instant>,
}

impl Writer {
    fn new(target: Target, metrics: Metrics, labels: Labels) -> Writer {
        let batch = target.batch_points;
        let agent: ureq::Agent = crate::support::http::agent("", target.timeout);
        Writer {
            target,
            metrics,
            labels,
            agent,
            buffer: Batches::new(batch),
            backoff: Backoff::new(Duration::from_millis(500), MAX_BACKOFF),
            last_refusal_log: None,
        }
    }

    /// Buffers one encoded line, dropping the oldest point when the buffer is full.
    fn push(&mut self, line: &str) {
        admit(&mut self.buffer, self.target.buffer_points, &self.metrics, |out| {
            out.push_str(line);
            true
        });
    }

    fn push_trade(&mut self, t: &TradeRecord) {
        let labels = &self.labels;
        admit(&mut self.buffer, self.target.buffer_points, &self.metrics, |out| write_trade(out, labels, t));
    }

    fn push_snapshot(&mut self) {
        let m = self.metrics.clone();
        let now = unix_nanos();
        let sum = |v: &prometheus::IntCounterVec| -> i64 {
            use prometheus::core::Collector;
            v.collect()
                .iter()
                .flat_map(|f| f.get_metric().iter().map(|m| m.get_counter().get_value() as i64).collect::<Vec<_>>())
                .sum()
        };
        let fields = [
            ("cpu_usage_pct", Field::Float(m.cpu_usage_pct.get())),
            ("rss_usage_mb", Field::Float(m.rss_usage_mb.get())),
            ("queue_depth", Field::Int(m.queue_depth.get())),
            ("trade_count", Field::Int(m.trade_count.get() as i64)),
            ("drift_events", Field::Int(m.drift_events.get() as i64)),
            ("ticks", Field::Int(m.ticks.get() as i64)),
            ("signals_received", Field::Int(sum(&m.signals_received))),
            ("signals_dropped", Field::Int(sum(&m.signals_dropped))),
            ("orders_sent", Field::Int(m.orders_sent.get() as i64)),
            ("orders_rejected", Field::Int(m.orders_rejected.get() as i64)),
            ("open_orders", Field::Int(m.open_orders.get())),
        ];
        let mut line = String::with_capacity(400);
        let tags = [("host", self.labels.host.as_str()), ("venue", self.labels.venue)];
        if write_point(&mut line, "mt5bot_metrics", &tags, &fields, now) {
            self.push(&line);
        }
        for sym in self.labels.symbols.clone() {
            let mut line = String::with_capacity(160);
            let fields = [
                ("position", Field::Float(m.position.with_label_values(&[&sym]).get())),
                ("realized_pnl", Field::Float(m.realized_pnl.with_label_values(&[&sym]).get())),
            ];
            let tags = [("host", self.labels.host.as_str()), ("venue", self.labels.venue), ("symbol", sym.as_str())];
            if write_point(&mut line, "mt5bot_metrics", &tags, &fields, now) {
                self.push(&line);
            }
        }
    }

    /// Sends the oldest batch (`n` points).
    fn send(&mut self, n: usize) -> Outcome {
        let Some((body, _)) = self.buffer.front() else { return Outcome::Written };
        let mut req = self.agent.post(&self.target.write_url).header("Content-Type", "text/plain; charset=utf-8");
        if let Some(t) = &self.target.token {
            req = req.header("Authorization", format!("Token {}", t.expose()));
        } else if let Some(b) = &self.target.basic {
            req = req.header("Authorization", b.expose());
        }
        let mut resp = match req.send(body) {
            Ok(r) => r,
            Err(e) => {
                self.metrics.influx_write_errors.with_label_values(&["connect"]).inc();
                log::debug!("influx write failed: {e}");
                return Outcome::Retry(self.next_backoff());
            }
        };
        let status = resp.status().as_u16();
        match status {
            200..=299 => Outcome::Written,
            429 | 503 => {
                self.metrics.influx_write_errors.with_label_values(&["throttled"]).inc();
                let after = resp
                    .headers()
                    .get("Retry-After")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER));
                Outcome::Retry(after.unwrap_or_else(|| self.next_backoff()))
            }
            408 | 500..=599 => {
                self.metrics.influx_write_errors.with_label_values(&["server"]).inc();
                Outcome::Retry(self.next_backoff())
            }
            _ => {
                self.metrics.influx_write_errors.with_label_values(&["refused"]).inc();
                let text = resp.body_mut().read_to_string().unwrap_or_default();
                let quiet = self.last_refusal_log.is_some_and(|t| t.elapsed() < Duration::from_secs(60));
                if !quiet {
                    self.last_refusal_log = Some(Instant::now());
                    let text: String = text.chars().take(300).collect();
                    log::error!(
                        "InfluxDB refused {n} points (HTTP {status}): {}; they are dropped, not retried",
                        text.trim()
                    );
                }
                Outcome::Refused
            }
        }
    }

    fn next_backoff(&mut self) -> Duration {
        self.backoff.next_wait()
    }

    /// Sends one batch; returns when to try again (None: now).
    fn flush_once(&mut self) -> Option<Duration> {
        let n = match self.buffer.front() {
            Some((_, n)) if n > 0 => n,
            Some(_) => {
                self.buffer.pop_front();
                return None;
            }
            None => return None,
        };
        match self.send(n) {
            Outcome::Written => {
                self.buffer.pop_front();
                self.metrics.influx_points_written.inc_by(n as u64);
                self.backoff.reset();
                None
            }
            Outcome::Refused => {
                self.buffer.pop_front();
                self.metrics.influx_points_dropped.inc_by(n as u64);
                None
            }
            Outcome::Retry(wait) => Some(wait),
        }
    }

    fn run(mut self, trades: &Receiver<TradeRecord>, stop: &AtomicBool) {
        let mut next_snapshot = Instant::now() + self.target.interval;
        let mut next_attempt = Instant::now();
        let mut unreachable_since: Option<Instant> = None;
        loop {
            let stopping = stop.load(Ordering::Relaxed);
            let now = Instant::now();
            let mut due = next_snapshot;
            if !self.buffer.is_empty() {
                due = due.min(next_attempt);
            }
            let wait = due.saturating_duration_since(now).min(TRADE_POLL);
            let mut engine_gone = false;
            // Polled, never waited on: the engine's try_send then never has a sleeping receiver
            // to wake, so a fill costs the engine thread no futex syscall.
            match trades.try_recv() {
                Ok(t) => {
                    self.push_trade(&t);
                    while let Ok(t) = trades.try_recv() {
                        self.push_trade(&t);
                    }
                }
                Err(TryRecvError::Empty) => std::thread::sleep(wait),
                Err(TryRecvError::Disconnected) => engine_gone = true,
            }
            let now = Instant::now();
            if now >= next_snapshot || stopping {
                self.push_snapshot();
                next_snapshot = now + self.target.interval;
            }
            let full_batch = self.buffer.len() >= self.target.batch_points;
            if !stopping
                && (now >= next_attempt || full_batch && unreachable_since.is_none())
                && !self.buffer.is_empty()
            {
                // Send batches until the buffer is empty or the server asks to wait; then wait an
                // interval, so points travel in batches rather than one request each.
                next_attempt = now + self.target.interval;
                while !self.buffer.is_empty() {
                    match self.flush_once() {
                        None => {
                            if unreachable_since.take().is_some() {
                                log::info!("InfluxDB writes resumed; {} points still buffered", self.buffer.len());
                            }
                        }
                        Some(wait) => {
                            if unreachable_since.is_none() {
                                unreachable_since = Some(now);
                                log::warn!(
                                    "cannot write to InfluxDB; buffering up to {} points and retrying",
                                    self.target.buffer_points
                                );
                            }
                            next_attempt = Instant::now() + wait;
                            break;
                        }
                    }
                }
            }
            self.metrics.influx_points_buffered.set(self.buffer.len() as i64);
            if stopping || engine_gone {
                self.final_flush();
                return;
            }
        }
    }

    fn final_flush(&mut self) {
        let deadline = Instant::now() + self.target.timeout * 2;
        while !self.buffer.is_empty() && Instant::now() < deadline {
            if let Some(wait) = self.flush_once() {
                if Instant::now() + wait > deadline {
                    break;
                }
                std::thread::sleep(wait);
            }
        }
        self.metrics.influx_points_buffered.set(self.buffer.len() as i64);
        if !self.buffer.is_empty() {
            log::warn!("stopping with {} points not written to InfluxDB", self.buffer.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(batch: usize, lines: &[&str]) -> Batches {
        let mut b = Batches::new(batch);
        for l in lines {
            b.push_with(|out| {
                out.push_str(l);
                out.push('\n');
                true
            });
        }
        b
    }

    #[test]
    fn points_travel_in_batches_of_the_configured_size_oldest_first() {
        let mut b = filled(2, &["a 1", "b 2", "c 3"]);
        assert_eq!(b.len(), 3);
        assert_eq!(b.front(), Some(("a 1\nb 2\n", 2)));
        b.pop_front();
        assert_eq!(b.front(), Some(("c 3\n", 1)));
        b.pop_front();
        assert!(b.is_empty());
        assert_eq!(b.front(), None);
    }

    #[test]
    fn dropping_the_oldest_point_takes_one_line_from_the_front() {
        let mut b = filled(3, &["a 1", "b 2", "c 3", "d 4"]);
        b.drop_oldest();
        assert_eq!((b.len(), b.front()), (3, Some(("b 2\nc 3\n", 2))));
        b.drop_oldest();
        b.drop_oldest();
        assert_eq!((b.len(), b.front()), (1, Some(("d 4\n", 1))));
        b.drop_oldest();
        assert!(b.is_empty());
        b.drop_oldest();
        assert!(b.is_empty());
    }

    #[test]
    fn a_point_that_cannot_be_encoded_leaves_nothing_behind() {
        let mut b = filled(2, &["a 1"]);
        b.push_with(|out| {
            out.push_str("half a li");
            false
        });
        assert_eq!((b.len(), b.front()), (1, Some(("a 1\n", 1))));
        let mut b = filled(2, &["a 1", "b 2"]);
        b.push_with(|_| false);
        assert_eq!(b.len(), 2);
        b.pop_front();
        assert_eq!(b.front(), Some(("", 0)));
        assert!(b.is_empty());
    }

    #[test]
    fn a_full_buffer_drops_the_oldest_and_counts_it() {
        let metrics = Metrics::new();
        let mut b = Batches::new(2);
        for i in 0..5 {
            admit(&mut b, 3, &metrics, |out| {
                out.push_str(&format!("p {i}\n"));
                true
            });
        }
        assert_eq!(metrics.influx_points_dropped.get(), 2);
        assert_eq!(b.len(), 3);
        assert_eq!(b.front(), Some(("p 2\np 3\n", 2)));
        b.pop_front();
        assert_eq!(b.front(), Some(("p 4\n", 1)));
    }
}
