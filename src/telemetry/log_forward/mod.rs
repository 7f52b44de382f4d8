//! Log forwarding: every log record, also sent to the sink at `log_forward.url`, losing nothing
//! while the buffer and spool hold.
//!
//! The log writer hands each record to this module's thread over a bounded channel (`try_send`: a
//! full channel is counted in `log_forward_dropped_total`, never waited on). The thread keeps the
//! records in order in two places: a memory buffer for the fast path, and an append-only spool on
//! disk (`log_forward.spool_dir`, segment files of JSON lines) used whenever the sink is down or the
//! spool still holds older records, so a crash or restart during an outage loses nothing spooled and
//! the spool is sent first when the sink comes back. When the spool passes
//! `log_forward.spool_max_bytes` its oldest segment is dropped and counted.
//!
//! Sinks: syslog over TCP (RFC 5424 messages, RFC 6587 octet counting), syslog over UDP (one message
//! per datagram, cut at 2048 bytes with a marker), and HTTP (`json`, `elasticsearch`, `datadog`,
//! `loki` bodies). Delivery is at least once: a TCP connection found closed re-sends what was written
//! in the last seconds; an Elasticsearch `_bulk` answer with per-item errors re-sends only the items
//! that can succeed later. Transient failures (connect errors, timeouts, 408, 429, 5xx) back off
//! with jitter (and `Retry-After`); other 4xx are logged locally with the server's message and the
//! batch dropped. This thread is the only one that does log IO to the network, so a stuck sink
//! delays neither the engine nor a `/metrics` scrape.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use log::Level;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::config::{LogFormat, LogForwardConfig, LogSink};
use crate::support::backoff::Backoff;
use crate::support::timefmt::rfc3339_micros;

use super::metrics::Metrics;

/// Largest UDP syslog message (RFC 5426 receivers must take 480 bytes and should take 2048).
pub const MAX_UDP_MESSAGE: usize = 2048;

/// How long [`ForwardHandle::offer`] waits for room in a full channel before it drops the record.
pub const OFFER_WAIT: Duration = Duration::from_millis(200);
/// Appended to a message cut short.
pub const TRUNCATION_MARKER: &str = "...[truncated]";
/// Spool segments are closed at this size.
const SEGMENT_BYTES: u64 = 1 << 20;
/// Datadog intake limits.
const DATADOG_MAX_PAYLOAD: usize = 5_000_000;
const DATADOG_MAX_ENTRY: usize = 1_000_000;
/// How long written TCP records are kept to re-send if the connection turns out to be closed.
const TCP_RESEND_WINDOW: Duration = Duration::from_secs(3);
/// A TCP connection idle this long is probed for a close before the next write.
const PROBE_AFTER_IDLE: Duration = Duration::from_millis(20);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// The private enterprise number RFC 5612 reserves for documentation, for our structured data id.
const SD_ID: &str = "mt5bot@32473";

/// One log record on its way to the sink.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForwardRecord {
    /// Nanoseconds since the Unix epoch (as a string: JSON numbers lose precision past 2^53).
    pub ns: String,
    pub level: String,
    pub target: String,
    pub msg: String,
    /// The process that logged it (a spooled record may be sent by the next process).
    #[serde(default)]
    pub pid: u32,
}

impl ForwardRecord {
    pub fn new(unix_ns: i128, level: Level, target: &str, msg: &str) -> ForwardRecord {
        ForwardRecord {
            ns: unix_ns.to_string(),
            level: level.as_str().to_owned(),
            target: target.to_owned(),
            msg: msg.to_owned(),
            pid: std::process::id(),
        }
    }

    fn unix_ns(&self) -> i128 {
        self.ns.parse().unwrap_or(0)
    }

    fn severity(&self) -> u8 {
        match self.level.as_str() {
            "ERROR" => 3,
            "WARN" => 4,
            "INFO" => 6,
            _ => 7,
        }
    }
}

mod bodies;
mod spool;
mod syslog;
mod transport;

use self::bodies::*;
use self::spool::*;
pub use self::syslog::*;
use self::transport::*;

enum Msg {
    Record(ForwardRecord),
    Start,
    Stop(SyncSender<()>),
}

/// Hands records to the forwarder. Called by the log writer thread, never by the engine; when the
/// channel is full it waits up to [`OFFER_WAIT`] for room, then drops and counts the record.
#[derive(Debug, Clone)]
pub struct ForwardHandle {
    tx: SyncSender<Msg>,
    dropped: prometheus::IntCounter,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Msg::Record(_) => "Record",
            Msg::Start => "Start",
            Msg::Stop(_) => "Stop",
        })
    }
}

impl ForwardHandle {
    pub fn offer(&self, record: ForwardRecord) {
        let mut msg = Msg::Record(record);
        let deadline = Instant::now() + OFFER_WAIT;
        loop {
            match self.tx.try_send(msg) {
                Ok(()) | Err(TrySendError::Disconnected(_)) => return,
                Err(TrySendError::Full(m)) if Instant::now() < deadline => {
                    // A burst faster than the forwarder moves records into its buffer and spool:
                    // the log writer (never the engine) waits a little rather than drop.
                    msg = m;
                    std::thread::sleep(Duration::from_micros(50));
                }
                Err(TrySendError::Full(_)) => {
                    self.dropped.inc();
                    return;
                }
            }
        }
    }
}

/// The running forwarder.
#[derive(Debug)]
pub struct Forwarder {
    tx: SyncSender<Msg>,
    handle: Option<JoinHandle<()>>,
    dropped: prometheus::IntCounter,
}

impl Forwarder {
    /// Opens the spool and starts the thread, which waits for [`Forwarder::begin`] before it checks
    /// the sink (so its first words reach the log).
    pub fn spawn(
        cfg: &LogForwardConfig,
        metrics: &Metrics,
        host: String,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Forwarder, String> {
        let spool = Spool::open(&cfg.spool_dir, cfg.spool_max_bytes)?;
        let mut headers: Vec<(String, String)> = cfg.headers.clone();
        for (name, var) in &cfg.header_env {
            let value = env(var).filter(|v| !v.is_empty()).ok_or_else(|| {
                format!("log_forward.header_env: {name} needs the environment variable {var}, which is not set")
            })?;
            headers.push((name.clone(), value));
        }
        if let (LogSink::Http { .. }, LogFormat::Datadog) = (&cfg.sink, cfg.format) {
            let key = env("DD_API_KEY")
                .filter(|v| !v.is_empty())
                .ok_or("log_forward.format is datadog but DD_API_KEY is not set")?;
            headers.push(("DD-API-KEY".into(), key));
        }
        let sink = match &cfg.sink {
            LogSink::SyslogTcp { addr } | LogSink::SyslogTls { addr } => Sink::Tcp {
                addr: addr.clone(),
                tls: match &cfg.sink {
                    LogSink::SyslogTls { addr } => Some(TlsTarget::new(addr, cfg.tls_ca_file.as_deref())?),
                    _ => None,
                },
                stream: None,
                recent: VecDeque::new(),
                scratch: Vec::with_capacity(4096),
                timeout: cfg.timeout,
                last_write: None,
            },
            LogSink::SyslogUdp { addr } => Sink::Udp { addr: addr.clone(), socket: None },
            LogSink::Http { url } => {
                // Credentials in the URL travel as basic auth, never in the address or the logs.
                let (url, userinfo) = crate::support::urls::split_userinfo(url);
                if let Some(ui) = userinfo {
                    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("authorization")) {
                        headers.push(("Authorization".into(), crate::support::urls::basic_auth(&ui)));
                    }
                }
                let url = match cfg.format {
                    LogFormat::Elasticsearch if !url.trim_end_matches('/').ends_with("/_bulk") => {
                        format!("{}/_bulk", url.trim_end_matches('/'))
                    }
                    LogFormat::Loki if !url.ends_with("/loki/api/v1/push") => {
                        format!("{}/loki/api/v1/push", url.trim_end_matches('/'))
                    }
                    _ => url.clone(),
                };
                let agent: ureq::Agent = crate::support::http::agent("", cfg.timeout);
                Sink::Http {
                    url,
                    format: cfg.format,
                    agent,
                    headers,
                    index: cfg.elasticsearch_index.clone(),
                    gzip: cfg.gzip,
                }
            }
        };
        let (tx, rx) = mpsc::sync_channel(cfg.buffer_records);
        let ctx = Context {
            host,
            app: cfg.app_name.clone(),
            facility: cfg.facility,
            pid: std::process::id(),
            identity: metrics.identity().to_vec(),
        };
        let state = State {
            sink,
            spool,
            mem: VecDeque::new(),
            retry_front: VecDeque::new(),
            cap: cfg.buffer_records,
            batch: cfg.batch_records,
            timeout: cfg.timeout,
            ctx,
            metrics: metrics.clone(),
            connected: false,
            backoff: Backoff::new(Duration::from_millis(200), MAX_BACKOFF),
            next_attempt: Instant::now(),
            last_refusal_log: None,
        };
        let handle = std::thread::Builder::new()
            .name("mt5bot-logfwd".into())
            .spawn(move || state.run(&rx))
            .map_err(|e| format!("cannot start the log forwarding thread: {e}"))?;
        Ok(Forwarder { tx, handle: Some(handle), dropped: metrics.log_forward_dropped.clone() })
    }

    pub fn handle(&self) -> ForwardHandle {
        ForwardHandle { tx: self.tx.clone(), dropped: self.dropped.clone() }
    }

    /// Lets the thread check the sink and start sending.
    pub fn begin(&self) {
        let _ = self.tx.send(Msg::Start);
    }

    /// Sends what it can within the timeout, spools the rest, and stops.
    pub fn stop(mut self) {
        let (ack_tx, ack_rx) = mpsc::sync_channel(1);
        let acked = self.tx.send(Msg::Stop(ack_tx)).is_ok() && ack_rx.recv_timeout(Duration::from_secs(30)).is_ok();
        // Join only a thread that answered: a shutdown must never hang on a stuck sink.
        if let (true, Some(h)) = (acked, self.handle.take()) {
            let _ = h.join();
        }
    }
}

struct State {
    sink: Sink,
    spool: Spool,
    mem: VecDeque<ForwardRecord>,
    /// Items a sink asked to retry: sent before anything else.
    retry_front: VecDeque<ForwardRecord>,
    cap: usize,
    batch: usize,
    timeout: Duration,
    ctx: Context,
    metrics: Metrics,
    connected: bool,
    backoff: Backoff,
    next_attempt: Instant,
    last_refusal_log: Option<Instant>,
}

enum Source {
    Retry,
    Spool,
    Mem,
}

impl State {
    fn accept(&mut self, r: ForwardRecord) {
        if self.connected && self.spool.is_empty() && self.mem.len() < self.cap {
            self.mem.push_back(r);
            return;
        }
        // Keep the order: what waits in memory is older than this record.
        self.spill();
        let dropped = self.spool.append(std::slice::from_ref(&r));
        self.metrics.log_forward_dropped.inc_by(dropped);
    }

    fn spill(&mut self) {
        if self.mem.is_empty() {
            return;
        }
        let all: Vec<ForwardRecord> = self.mem.drain(..).collect();
        let dropped = self.spool.append(&all);
        self.metrics.log_forward_dropped.inc_by(dropped);
    }

    fn pending(&self) -> bool {
        !self.retry_front.is_empty() || !self.spool.is_empty() || !self.mem.is_empty()
    }

    fn gauges(&self) {
        self.metrics
            .log_forward_buffered
            .set((self.retry_front.len() as u64 + self.spool.records() + self.mem.len() as u64) as i64);
        self.metrics.log_forward_spool_bytes.set(self.spool.bytes() as i64);
        self.metrics.log_forward_connected.set(i64::from(self.connected));
    }

    fn set_connected(&mut self, up: bool) {
        if up == self.connected {
            return;
        }
        self.connected = up;
        if up {
            log::info!(
                "log forwarding: {} answers again; sending the {} records kept meanwhile",
                self.sink.describe(),
                self.spool.records() + self.retry_front.len() as u64
            );
        } else {
            self.spill();
            log::warn!(
                "log forwarding: cannot reach {}; logging to the local file, spooling to {} and retrying",
                self.sink.describe(),
                self.spool.dir.display()
            );
        }
    }

    /// One delivery attempt; false when the sink needs a pause.
    fn attempt(&mut self) -> bool {
        // Records in memory are sent from where they lie; only the spool's are read into a Vec.
        let spooled;
        let (source, batch): (Source, &[ForwardRecord]) = if !self.retry_front.is_empty() {
            let n = self.retry_front.len().min(self.batch);
            (Source::Retry, &self.retry_front.make_contiguous()[..n])
        } else if !self.spool.is_empty() {
            spooled = self.spool.peek(self.batch);
            (Source::Spool, &spooled)
        } else {
            let n = self.mem.len().min(self.batch);
            (Source::Mem, &self.mem.make_contiguous()[..n])
        };
        if batch.is_empty() {
            // A spool segment that parsed empty: let go of it.
            if let Source::Spool = source {
                self.spool.ack(0);
            }
            return true;
        }
        let n = batch.len();
        let ack = |s: &mut State, k: usize| match source {
            Source::Retry => {
                s.retry_front.drain(..k);
            }
            Source::Spool => s.spool.ack(k),
            Source::Mem => {
                s.mem.drain(..k);
            }
        };
        match self.sink.send(batch, &self.ctx) {
            Sent::Ok => {
                ack(self, n);
                self.metrics.log_forward_sent.inc_by(n as u64);
                self.backoff.reset();
                self.set_connected(true);
                true
            }
            Sent::Partial { retry, refused } => {
                let again: Vec<ForwardRecord> = retry.iter().filter_map(|&i| batch.get(i).cloned()).collect();
                ack(self, n);
                self.set_connected(true);
                self.metrics.log_forward_sent.inc_by((n - again.len() - refused) as u64);
                self.metrics.log_forward_dropped.inc_by(refused as u64);
                self.metrics.log_forward_retries.inc_by(again.len() as u64);
                for r in again.into_iter().rev() {
                    self.retry_front.push_front(r);
                }
                if !self.retry_front.is_empty() {
                    self.next_attempt = Instant::now() + self.next_backoff();
                    return false;
                }
                true
            }
            Sent::Retry(wait) => {
                self.metrics.log_forward_retries.inc();
                self.set_connected(false);
                let backoff = self.next_backoff();
                self.next_attempt = Instant::now() + wait.unwrap_or(backoff);
                false
            }
            Sent::Refused(why) => {
                ack(self, n);
                self.metrics.log_forward_dropped.inc_by(n as u64);
                if self.last_refusal_log.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
                    self.last_refusal_log = Some(Instant::now());
                    log::error!(
                        "log forwarding: {} refused {n} records ({why}); they are only in the local file",
                        self.sink.describe()
                    );
                }
                true
            }
        }
    }

    fn next_backoff(&mut self) -> Duration {
        self.backoff.next_wait()
    }

    fn run(mut self, rx: &Receiver<Msg>) {
        // Until told to begin, only collect (in order, in memory while it fits).
        let mut started = false;
        loop {
            let wait = if started && self.pending() {
                self.next_attempt.saturating_duration_since(Instant::now()).min(Duration::from_millis(100))
            } else {
                Duration::from_millis(100)
            };
            let msg = rx.recv_timeout(wait);
            let mut stop_ack = None;
            let handle = |s: &mut State, m: Msg, stop_ack: &mut Option<SyncSender<()>>, started: &mut bool| match m {
                Msg::Record(r) => {
                    if *started {
                        s.accept(r);
                    } else if s.mem.len() < s.cap {
                        s.mem.push_back(r);
                    } else {
                        s.metrics.log_forward_dropped.inc();
                    }
                }
                Msg::Start => {
                    *started = true;
                    let timeout = s.timeout;
                    match s.sink.check(timeout) {
                        Ok(()) => {
                            s.connected = true;
                            log::info!("log forwarding to {}", s.sink.describe());
                        }
                        Err(e) => {
                            s.connected = true; // so set_connected(false) logs the transition once
                            log::warn!("log forwarding: startup check of {} failed: {e}", s.sink.describe());
                            s.set_connected(false);
                            s.next_attempt = Instant::now() + s.next_backoff();
                        }
                    }
                }
                Msg::Stop(ack) => *stop_ack = Some(ack),
            };
            match msg {
                Ok(m) => {
                    handle(&mut self, m, &mut stop_ack, &mut started);
                    // While the sink takes records, take a few batches' worth and send them
                    // before taking more: a burst then waits in the channel (bounded) instead of
                    // overflowing memory into the spool, which is there for a sink that is away.
                    let mut budget = if started && self.connected { 4 * self.batch } else { usize::MAX };
                    while budget > 0 {
                        let Ok(m) = rx.try_recv() else { break };
                        handle(&mut self, m, &mut stop_ack, &mut started);
                        budget -= 1;
                        if stop_ack.is_some() {
                            break;
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    self.shutdown();
                    return;
                }
            }
            if let Some(ack) = stop_ack {
                self.shutdown();
                let _ = ack.send(());
                return;
            }
            if started && self.pending() && Instant::now() >= self.next_attempt {
                // Send until empty or the sink needs a pause, without starving the channel.
                for _ in 0..64 {
                    if !self.pending() || !self.attempt() {
                        break;
                    }
                }
            }
            self.gauges();
        }
    }

    fn shutdown(&mut self) {
        let deadline = Instant::now() + self.timeout;
        while self.connected && self.pending() && Instant::now() < deadline {
            if !self.attempt() {
                break;
            }
        }
        // What could not be sent waits in the spool for the next start.
        let front: Vec<ForwardRecord> = self.retry_front.drain(..).collect();
        let mem: Vec<ForwardRecord> = self.mem.drain(..).collect();
        self.spool.append(&front);
        self.spool.append(&mem);
        self.gauges();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(i: u32) -> ForwardRecord {
        ForwardRecord::new(1_700_000_000_000_000_000 + i128::from(i), Level::Info, "mt5bot::t", &format!("record {i}"))
    }

    #[test]
    fn rfc5424_messages() {
        let mut r = ForwardRecord::new(0, Level::Warn, "a\"b]c", "line1\nline2");
        r.pid = 42;
        assert_eq!(
            syslog_message(&r, &Context { host: "host1".into(), app: "mt5bot".into(), facility: 1, pid: 7, identity: Vec::new() }),
            "<12>1 1970-01-01T00:00:00.000000Z host1 mt5bot 42 log [mt5bot@32473 level=\"WARN\" target=\"a\\\"b\\]c\"] line1 line2"
        );
        let fleet = Context {
            host: "host1".into(),
            app: "mt5bot".into(),
            facility: 1,
            pid: 7,
            identity: vec![("account".into(), "a]1".into()), ("venue".into(), "mt5".into())],
        };
        assert!(
            syslog_message(&r, &fleet).contains("target=\"a\\\"b\\]c\" account=\"a\\]1\" venue=\"mt5\"] line1"),
            "{}",
            syslog_message(&r, &fleet)
        );
    }

    #[test]
    fn udp_messages_are_cut_at_a_char_boundary_with_a_marker() {
        let long = "é".repeat(2000);
        let cut = truncate_for_udp(&long, MAX_UDP_MESSAGE);
        assert!(cut.len() <= MAX_UDP_MESSAGE && cut.ends_with(TRUNCATION_MARKER));
        assert_eq!(truncate_for_udp("short", MAX_UDP_MESSAGE), "short");
    }

    #[test]
    fn the_spool_keeps_order_across_segments_and_reopening_and_caps_its_size() {
        let tmp = crate::support::testdir::TestDir::new("spool");
        let dir = tmp.join("spool");
        let mut s = Spool::open(&dir, 1 << 30).expect("open");
        let all: Vec<ForwardRecord> = (0..30_000).map(rec).collect();
        for chunk in all.chunks(1000) {
            assert_eq!(s.append(chunk), 0);
        }
        assert!(s.segments.len() > 2, "several segments");
        let got = s.peek(10);
        assert_eq!(got[0], rec(0));
        s.ack(10);
        drop(s);
        let mut s = Spool::open(&dir, 1 << 30).expect("reopen");
        assert_eq!(s.records(), 30_000, "a partly sent segment is sent again after a restart");
        let mut seen = Vec::new();
        while !s.is_empty() {
            let b = s.peek(700);
            seen.extend(b.iter().map(|r| r.msg.clone()));
            s.ack(b.len());
        }
        assert_eq!(seen.len(), 30_000);
        assert!(seen.iter().enumerate().all(|(i, m)| *m == format!("record {i}")), "in order");
        assert_eq!(s.bytes(), 0);
        let mut small = Spool::open(&dir, 2 << 20).expect("open");
        let dropped: u64 = all.chunks(1000).map(|c| small.append(c)).sum::<u64>()
            + all.chunks(1000).map(|c| small.append(c)).sum::<u64>();
        assert!(dropped > 0 && small.bytes() <= (2 << 20) + SEGMENT_BYTES, "capped: {} bytes", small.bytes());
        assert_eq!(small.records() + dropped, 60_000, "every record is either kept or counted");
    }

    #[test]
    fn http_bodies() {
        let ctx = Context { host: "h".into(), app: "mt5bot".into(), facility: 1, pid: 1, identity: Vec::new() };
        let batch = vec![rec(1), ForwardRecord::new(5, Level::Error, "t", "boom")];
        let (b, ct, n) = http_body(LogFormat::Elasticsearch, &batch, &ctx, "idx");
        assert_eq!((ct, n, b.lines().count()), ("application/x-ndjson", 2, 4));
        assert!(b.starts_with("{\"create\":{\"_index\":\"idx\"}}\n"));
        let (b, _, _) = http_body(LogFormat::Loki, &batch, &ctx, "");
        let v: serde_json::Value = serde_json::from_str(&b).expect("json");
        assert_eq!(v["streams"].as_array().map(Vec::len), Some(2), "one stream per level");
        assert_eq!(v["streams"][0]["values"][0][0], "1700000000000000001");
        let huge = ForwardRecord::new(0, Level::Info, "t", &"x".repeat(3_000_000));
        let (b, _, n) = http_body(LogFormat::Datadog, &[huge.clone(), huge.clone(), huge], &ctx, "");
        assert!(n >= 1 && b.len() <= DATADOG_MAX_PAYLOAD, "{n} entries, {} bytes", b.len());
        let v: serde_json::Value = serde_json::from_str(&b).expect("json");
        assert!(v[0]["message"]
            .as_str()
            .is_some_and(|m| m.ends_with(TRUNCATION_MARKER) && m.len() < DATADOG_MAX_ENTRY));
        // A bot of a fleet: its identity in every format.
        let ctx = Context { identity: vec![("account".into(), "a1".into()), ("strategy".into(), "s".into())], ..ctx };
        let (b, _, _) = http_body(LogFormat::Json, &batch, &ctx, "");
        let v: serde_json::Value = serde_json::from_str(b.lines().next().expect("line")).expect("json");
        assert_eq!((v["account"].as_str(), v["strategy"].as_str()), (Some("a1"), Some("s")));
        let (b, _, _) = http_body(LogFormat::Elasticsearch, &batch, &ctx, "idx");
        let v: serde_json::Value = serde_json::from_str(b.lines().nth(1).expect("doc")).expect("json");
        assert_eq!(v["labels.account"], "a1");
        let (b, _, _) = http_body(LogFormat::Loki, &batch, &ctx, "");
        let v: serde_json::Value = serde_json::from_str(&b).expect("json");
        assert_eq!(v["streams"][0]["stream"]["account"], "a1", "a Loki stream label");
        let (b, _, _) = http_body(LogFormat::Datadog, &batch, &ctx, "");
        let v: serde_json::Value = serde_json::from_str(&b).expect("json");
        assert_eq!(v[0]["ddtags"], "account:a1,strategy:s");
    }
}
