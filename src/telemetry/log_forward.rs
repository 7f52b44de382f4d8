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

/// The RFC 5424 message of a record; PROCID is the pid that logged it (`pid` when unknown).
pub fn syslog_message(r: &ForwardRecord, facility: u8, host: &str, app: &str, pid: u32) -> String {
    let mut out = Vec::with_capacity(128 + r.msg.len());
    write_syslog_message(&mut out, r, facility, host, app, pid);
    String::from_utf8(out).unwrap_or_default()
}

/// Appends the RFC 5424 message of a record to `out`, without allocating beyond `out`'s growth.
pub fn write_syslog_message(out: &mut Vec<u8>, r: &ForwardRecord, facility: u8, host: &str, app: &str, pid: u32) {
    use std::io::Write as _;
    let pid = if r.pid == 0 { pid } else { r.pid };
    let pri = u32::from(facility) * 8 + u32::from(r.severity());
    let _ = write!(out, "<{pri}>1 ");
    crate::support::timefmt::write_rfc3339_micros(out, r.unix_ns());
    let _ = write!(out, " {host} {app} {pid} log [{SD_ID} level=\"");
    push_sd_escaped(out, &r.level);
    out.extend_from_slice(b"\" target=\"");
    push_sd_escaped(out, &r.target);
    out.extend_from_slice(b"\"] ");
    out.extend(r.msg.bytes().map(|b| if b == b'\n' || b == b'\r' { b' ' } else { b }));
}

fn push_sd_escaped(out: &mut Vec<u8>, s: &str) {
    for b in s.bytes() {
        if matches!(b, b'"' | b'\\' | b']') {
            out.push(b'\\');
        }
        out.push(b);
    }
}

/// Cuts a message to `max` bytes at a character boundary, ending it with the marker.
pub fn truncate_for_udp(msg: &str, max: usize) -> String {
    if msg.len() <= max {
        return msg.to_owned();
    }
    let mut end = max - TRUNCATION_MARKER.len();
    while !msg.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{TRUNCATION_MARKER}", &msg[..end])
}

// ---------------------------------------------------------------------------------------------
// The spool.
// ---------------------------------------------------------------------------------------------

struct Segment {
    id: u64,
    bytes: u64,
    records: u64,
}

/// Append-only segments of JSON lines; the oldest is read back and deleted once sent.
struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    segments: VecDeque<Segment>,
    writer: Option<File>,
    /// Lines of the oldest segment not yet acknowledged, once loaded.
    head: VecDeque<ForwardRecord>,
    head_loaded: bool,
    next_id: u64,
}

impl Spool {
    fn open(dir: &Path, max_bytes: u64) -> Result<Spool, String> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| {
            format!("cannot create the log spool folder {} (log_forward.spool_dir): {e}", dir.display())
        })?;
        let mut ids: Vec<u64> = std::fs::read_dir(dir)
            .map_err(|e| format!("cannot read the log spool folder {}: {e}", dir.display()))?
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.strip_suffix(".spool")?.parse().ok())
            .collect();
        ids.sort_unstable();
        let mut segments = VecDeque::new();
        for id in ids {
            let path = dir.join(format!("{id:012}.spool"));
            let (bytes, records) = match File::open(&path) {
                Ok(f) => {
                    let bytes = f.metadata().map(|m| m.len()).unwrap_or(0);
                    let records = BufReader::new(f).lines().count() as u64;
                    (bytes, records)
                }
                Err(_) => continue,
            };
            segments.push_back(Segment { id, bytes, records });
        }
        let next_id = segments.back().map_or(1, |s| s.id + 1);
        Ok(Spool {
            dir: dir.to_path_buf(),
            max_bytes,
            segments,
            writer: None,
            head: VecDeque::new(),
            head_loaded: false,
            next_id,
        })
    }

    fn path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("{id:012}.spool"))
    }

    fn records(&self) -> u64 {
        let loaded_segment = if self.head_loaded { self.segments.front().map_or(0, |s| s.records) } else { 0 };
        self.segments.iter().map(|s| s.records).sum::<u64>() - loaded_segment + self.head.len() as u64
    }

    fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }

    fn is_empty(&self) -> bool {
        self.records() == 0
    }

    /// Appends records in order; returns how many old records were dropped to stay under the cap.
    fn append(&mut self, records: &[ForwardRecord]) -> u64 {
        if records.is_empty() {
            return 0;
        }
        let mut text = String::new();
        for r in records {
            if let Ok(line) = serde_json::to_string(r) {
                text.push_str(&line);
                text.push('\n');
            }
        }
        let need_new = match (self.writer.as_ref(), self.segments.back()) {
            (Some(_), Some(last)) => last.bytes >= SEGMENT_BYTES || (self.head_loaded && self.segments.len() == 1),
            _ => true,
        };
        if need_new {
            self.writer = None;
            let id = self.next_id;
            self.next_id += 1;
            match OpenOptions::new().create(true).append(true).open(self.path(id)) {
                Ok(f) => {
                    self.writer = Some(f);
                    self.segments.push_back(Segment { id, bytes: 0, records: 0 });
                }
                Err(e) => {
                    // The spool is unusable: the records are lost, and counted by the caller.
                    eprintln!("mt5bot: cannot write the log spool {}: {e}", self.dir.display());
                    return records.len() as u64;
                }
            }
        }
        if let (Some(w), Some(seg)) = (self.writer.as_mut(), self.segments.back_mut()) {
            if w.write_all(text.as_bytes()).is_ok() {
                seg.bytes += text.len() as u64;
                seg.records += records.len() as u64;
            }
        }
        let mut dropped = 0;
        while self.bytes() > self.max_bytes && self.segments.len() > 1 {
            dropped += self.drop_oldest();
        }
        dropped
    }

    fn drop_oldest(&mut self) -> u64 {
        let Some(seg) = self.segments.pop_front() else { return 0 };
        let lost = if self.head_loaded { self.head.len() as u64 } else { seg.records };
        self.head.clear();
        self.head_loaded = false;
        let _ = std::fs::remove_file(self.path(seg.id));
        lost
    }

    /// Up to `n` of the oldest records.
    fn peek(&mut self, n: usize) -> Vec<ForwardRecord> {
        if !self.head_loaded {
            let Some(first) = self.segments.front() else { return Vec::new() };
            if self.segments.len() == 1 {
                // Reading the segment being written: later appends go to a new one.
                self.writer = None;
            }
            let path = self.path(first.id);
            self.head = File::open(&path)
                .map(|f| {
                    BufReader::new(f)
                        .lines()
                        .map_while(Result::ok)
                        .filter_map(|l| serde_json::from_str(&l).ok())
                        .collect()
                })
                .unwrap_or_default();
            self.head_loaded = true;
        }
        self.head.iter().take(n).cloned().collect()
    }

    /// Acknowledges `n` records returned by `peek`.
    fn ack(&mut self, n: usize) {
        for _ in 0..n.min(self.head.len()) {
            self.head.pop_front();
        }
        if self.head_loaded && self.head.is_empty() {
            if let Some(seg) = self.segments.pop_front() {
                let _ = std::fs::remove_file(self.path(seg.id));
            }
            self.head_loaded = false;
            if self.segments.is_empty() {
                self.writer = None;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Sinks.
// ---------------------------------------------------------------------------------------------

enum Sent {
    Ok,
    /// Transient failure; wait this long if the server said so.
    Retry(Option<Duration>),
    /// Some items failed and may succeed later (their indices); the rest are delivered.
    Partial {
        retry: Vec<usize>,
        refused: usize,
    },
    /// The sink refused the batch for good.
    Refused(String),
}

struct Context {
    host: String,
    app: String,
    facility: u8,
    pid: u32,
}

/// Where a TLS syslog connection goes and whom it trusts.
struct TlsTarget {
    config: std::sync::Arc<rustls::ClientConfig>,
    name: rustls_pki_types::ServerName<'static>,
}

impl TlsTarget {
    /// Trusts the certificates in `ca_file` (PEM) if given, else Mozilla's roots; verifies the
    /// server's certificate against the host part of `addr` (a name or an IP address).
    fn new(addr: &str, ca_file: Option<&Path>) -> Result<TlsTarget, String> {
        let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = rustls_pki_types::ServerName::try_from(host.to_owned())
            .map_err(|e| format!("log_forward.url: {host:?} is not a host name or IP address for TLS: {e}"))?;
        let mut roots = rustls::RootCertStore::empty();
        match ca_file {
            Some(path) => {
                use rustls_pki_types::pem::PemObject;
                let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
                    .map_err(|e| format!("log_forward.tls_ca_file {}: {e}", path.display()))?;
                for cert in certs {
                    let cert = cert.map_err(|e| format!("log_forward.tls_ca_file {}: {e}", path.display()))?;
                    roots.add(cert).map_err(|e| {
                        format!("log_forward.tls_ca_file {}: a certificate is unusable: {e}", path.display())
                    })?;
                }
                if roots.is_empty() {
                    return Err(format!("log_forward.tls_ca_file {} holds no certificate", path.display()));
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(TlsTarget { config: std::sync::Arc::new(config), name })
    }
}

/// A syslog connection: plain TCP, or TLS over it (RFC 5425; the same octet-counted frames).
enum Conn {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Conn {
    /// Connects (and for TLS completes the handshake) within `timeout` per step; writes time
    /// out too, so a receiver that stops reading never blocks this thread for good.
    fn open(addr: &str, timeout: Duration, tls: Option<&TlsTarget>) -> Result<Conn, String> {
        let addrs: Vec<_> = addr.to_socket_addrs().map_err(|e| format!("cannot resolve {addr}: {e}"))?.collect();
        let mut last = format!("no address for {addr}");
        for a in addrs {
            let sock = match TcpStream::connect_timeout(&a, timeout) {
                Ok(s) => s,
                Err(e) => {
                    last = format!("{addr}: {e}");
                    continue;
                }
            };
            let _ = sock.set_write_timeout(Some(timeout));
            let _ = sock.set_nodelay(true);
            let Some(tls) = tls else { return Ok(Conn::Plain(sock)) };
            let mut conn = rustls::ClientConnection::new(std::sync::Arc::clone(&tls.config), tls.name.clone())
                .map_err(|e| format!("{addr}: TLS: {e}"))?;
            let mut sock = sock;
            let _ = sock.set_read_timeout(Some(timeout));
            while conn.is_handshaking() {
                if let Err(e) = conn.complete_io(&mut sock) {
                    return Err(format!("{addr}: TLS handshake: {e}"));
                }
            }
            return Ok(Conn::Tls(Box::new(rustls::StreamOwned::new(conn, sock))));
        }
        Err(last)
    }

    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.write_all(bytes),
            Conn::Tls(s) => s.write_all(bytes),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }

    /// False when the receiver has closed the connection. Syslog receivers never send data, so
    /// anything readable is a close (EOF, or a TLS close_notify or alert) or TLS housekeeping.
    fn alive(&mut self) -> bool {
        let sock = match self {
            Conn::Plain(s) => s,
            Conn::Tls(s) => &mut s.sock,
        };
        if sock.set_nonblocking(true).is_err() {
            return false;
        }
        let ok = match self {
            Conn::Plain(s) => {
                let mut b = [0u8; 64];
                match s.read(&mut b) {
                    Ok(0) => false,
                    Ok(_) => true,
                    Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
                }
            }
            Conn::Tls(s) => {
                let s = &mut **s;
                match s.conn.read_tls(&mut s.sock) {
                    Ok(0) => false,
                    // Session tickets and the like are fine; a close or an alert is not.
                    Ok(_) => s.conn.process_new_packets().is_ok_and(|st| !st.peer_has_closed()),
                    Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
                }
            }
        };
        let sock = match self {
            Conn::Plain(s) => s,
            Conn::Tls(s) => &mut s.sock,
        };
        ok && sock.set_nonblocking(false).is_ok()
    }
}

enum Sink {
    Tcp {
        addr: String,
        /// TLS (`syslog+tls://`), or plain TCP when `None`.
        tls: Option<TlsTarget>,
        stream: Option<Conn>,
        /// Frames written lately, as sent: a connection found dead gets them again.
        recent: VecDeque<(Instant, Vec<u8>)>,
        /// One message being framed (reused).
        scratch: Vec<u8>,
        timeout: Duration,
        /// When the last write went out.
        last_write: Option<Instant>,
    },
    Udp {
        addr: String,
        socket: Option<UdpSocket>,
    },
    Http {
        url: String,
        format: LogFormat,
        agent: ureq::Agent,
        headers: Vec<(String, String)>,
        index: String,
        gzip: bool,
    },
}

fn gzip(body: &str) -> Vec<u8> {
    use flate2::{write::GzEncoder, Compression};
    let mut enc = GzEncoder::new(Vec::with_capacity(body.len() / 4), Compression::fast());
    // Writing into a Vec cannot fail.
    let _ = enc.write_all(body.as_bytes());
    enc.finish().unwrap_or_default()
}

fn retry_after(resp: &ureq::http::Response<ureq::Body>) -> Option<Duration> {
    resp.headers()
        .get("Retry-After")?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(|s| Duration::from_secs(s.min(300)))
}

impl Sink {
    fn describe(&self) -> &str {
        match self {
            Sink::Tcp { addr, .. } | Sink::Udp { addr, .. } | Sink::Http { url: addr, .. } => addr,
        }
    }

    /// Startup check: can a connection be made?
    fn check(&mut self, timeout: Duration) -> Result<(), String> {
        let hostport = match self {
            Sink::Tcp { addr, .. } | Sink::Udp { addr, .. } => addr.clone(),
            Sink::Http { url, .. } => {
                let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
                let hp = rest.split('/').next().unwrap_or(rest);
                if hp.contains(':') {
                    hp.to_owned()
                } else if url.starts_with("https://") {
                    format!("{hp}:443")
                } else {
                    format!("{hp}:80")
                }
            }
        };
        if matches!(self, Sink::Udp { .. }) {
            return self.udp_socket().map(|_| ());
        }
        if let Sink::Tcp { tls, stream, .. } = self {
            *stream = Some(Conn::open(&hostport, timeout, tls.as_ref())?);
            return Ok(());
        }
        let addrs: Vec<_> =
            hostport.to_socket_addrs().map_err(|e| format!("cannot resolve {hostport}: {e}"))?.collect();
        let mut last = format!("no address for {hostport}");
        for a in addrs {
            match TcpStream::connect_timeout(&a, timeout) {
                Ok(_) => return Ok(()),
                Err(e) => last = format!("{hostport}: {e}"),
            }
        }
        Err(last)
    }

    fn udp_socket(&mut self) -> Result<&UdpSocket, String> {
        let Sink::Udp { addr, socket } = self else { return Err("not UDP".into()) };
        if socket.is_none() {
            let s = UdpSocket::bind(if addr.starts_with('[') { "[::]:0" } else { "0.0.0.0:0" })
                .map_err(|e| e.to_string())?;
            s.connect(addr.as_str()).map_err(|e| format!("{addr}: {e}"))?;
            *socket = Some(s);
        }
        socket.as_ref().ok_or_else(|| "no socket".into())
    }

    fn send(&mut self, batch: &[ForwardRecord], ctx: &Context) -> Sent {
        match self {
            Sink::Udp { .. } => {
                let sock = match self.udp_socket() {
                    Ok(s) => s,
                    Err(_) => return Sent::Retry(None),
                };
                for r in batch {
                    let msg = truncate_for_udp(
                        &syslog_message(r, ctx.facility, &ctx.host, &ctx.app, ctx.pid),
                        MAX_UDP_MESSAGE,
                    );
                    // Datagrams are fire and forget; a refused one (no listener) is not retried.
                    let _ = sock.send(msg.as_bytes());
                }
                Sent::Ok
            }
            Sink::Tcp { addr, tls, stream, recent, scratch, timeout, last_write } => {
                // A closed connection shows as readable-with-EOF: syslog receivers never write.
                // Probed (three syscalls) only after a pause: while batches flow, a closed
                // connection fails the next write, and the resend window covers the one before.
                let busy = last_write.is_some_and(|t| t.elapsed() < PROBE_AFTER_IDLE);
                let alive = busy && stream.is_some() || stream.as_mut().is_some_and(Conn::alive);
                if !alive {
                    *stream = None;
                }
                let resend: Vec<u8> = if stream.is_none() {
                    // Whatever went out lately may be lost with the old connection: send it again.
                    recent.drain(..).flat_map(|(_, b)| b).collect()
                } else {
                    Vec::new()
                };
                if stream.is_none() {
                    match Conn::open(addr, *timeout, tls.as_ref()) {
                        Ok(c) => *stream = Some(c),
                        Err(e) => {
                            log::debug!("log forwarding: {e}");
                            // Keep what must be re-sent for the next attempt.
                            if !resend.is_empty() {
                                recent.push_front((Instant::now(), resend));
                            }
                            return Sent::Retry(None);
                        }
                    }
                }
                let mut frames = Vec::with_capacity(batch.len() * 200);
                for r in batch {
                    scratch.clear();
                    write_syslog_message(scratch, r, ctx.facility, &ctx.host, &ctx.app, ctx.pid);
                    let _ = write!(frames, "{} ", scratch.len());
                    frames.extend_from_slice(scratch);
                }
                let written = stream
                    .as_mut()
                    .map(|s| s.write_all(&resend).and_then(|()| s.write_all(&frames)).and_then(|()| s.flush()));
                match written {
                    Some(Ok(())) => {
                        let now = Instant::now();
                        *last_write = Some(now);
                        recent.push_back((now, frames));
                        while recent.front().is_some_and(|(t, _)| now.duration_since(*t) > TCP_RESEND_WINDOW) {
                            recent.pop_front();
                        }
                        Sent::Ok
                    }
                    _ => {
                        *stream = None;
                        if !resend.is_empty() {
                            recent.push_front((Instant::now(), resend));
                        }
                        Sent::Retry(None)
                    }
                }
            }
            Sink::Http { url, format, agent, headers, index, gzip: compress } => {
                let (body, content_type, count) = http_body(*format, batch, ctx, index);
                let mut req = agent.post(url.as_str()).header("Content-Type", content_type);
                for (k, v) in headers.iter() {
                    req = req.header(k.as_str(), v.as_str());
                }
                let sent = if *compress {
                    req.header("Content-Encoding", "gzip").send(&gzip(&body)[..])
                } else {
                    req.send(body)
                };
                let mut resp = match sent {
                    Ok(r) => r,
                    Err(_) => return Sent::Retry(None),
                };
                let status = resp.status().as_u16();
                match status {
                    200..=299 if *format == LogFormat::Elasticsearch => {
                        let text = resp.body_mut().read_to_string().unwrap_or_default();
                        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                        if v["errors"] != true {
                            return Sent::Ok;
                        }
                        let mut retry = Vec::new();
                        let mut refused = 0;
                        for (i, item) in v["items"].as_array().map(Vec::as_slice).unwrap_or_default().iter().enumerate()
                        {
                            let st = item
                                .as_object()
                                .and_then(|o| o.values().next())
                                .and_then(|x| x["status"].as_u64())
                                .unwrap_or(500);
                            if st == 429 || st >= 500 {
                                retry.push(i);
                            } else if st >= 300 {
                                refused += 1;
                            }
                        }
                        Sent::Partial { retry, refused }
                    }
                    200..=299 if count < batch.len() => {
                        Sent::Partial { retry: (count..batch.len()).collect(), refused: 0 }
                    }
                    200..=299 => Sent::Ok,
                    408 | 429 | 500..=599 => Sent::Retry(retry_after(&resp)),
                    _ => {
                        let text = resp.body_mut().read_to_string().unwrap_or_default();
                        Sent::Refused(format!("HTTP {status}: {}", text.chars().take(300).collect::<String>().trim()))
                    }
                }
            }
        }
    }
}

/// The body of a batch in `format`; also how many records it holds (Datadog may take fewer).
fn http_body(format: LogFormat, batch: &[ForwardRecord], ctx: &Context, index: &str) -> (String, &'static str, usize) {
    match format {
        LogFormat::Json => {
            let mut out = String::new();
            for r in batch {
                let v = json!({ "ts": rfc3339_micros(r.unix_ns()), "level": r.level, "target": r.target, "msg": r.msg, "host": ctx.host, "app": ctx.app });
                out.push_str(&v.to_string());
                out.push('\n');
            }
            (out, "application/x-ndjson", batch.len())
        }
        LogFormat::Elasticsearch => {
            let mut out = String::new();
            let action = json!({ "create": { "_index": index } }).to_string();
            for r in batch {
                let doc = json!({ "@timestamp": rfc3339_micros(r.unix_ns()), "message": r.msg, "log.level": r.level, "log.logger": r.target, "host.name": ctx.host, "service.name": ctx.app });
                out.push_str(&action);
                out.push('\n');
                out.push_str(&doc.to_string());
                out.push('\n');
            }
            (out, "application/x-ndjson", batch.len())
        }
        LogFormat::Datadog => {
            let mut entries: Vec<String> = Vec::new();
            let mut size = 2;
            for r in batch.iter().take(1000) {
                let mut msg = r.msg.clone();
                let mut entry = datadog_entry(r, &msg, ctx);
                if entry.len() > DATADOG_MAX_ENTRY {
                    msg = truncate_for_udp(&msg, DATADOG_MAX_ENTRY - (entry.len() - msg.len()) - 64);
                    entry = datadog_entry(r, &msg, ctx);
                }
                if size + entry.len() + 1 > DATADOG_MAX_PAYLOAD && !entries.is_empty() {
                    break;
                }
                size += entry.len() + 1;
                entries.push(entry);
            }
            let n = entries.len();
            (format!("[{}]", entries.join(",")), "application/json", n)
        }
        LogFormat::Loki => {
            let mut streams: Vec<(String, Vec<serde_json::Value>)> = Vec::new();
            for r in batch {
                let level = r.level.to_ascii_lowercase();
                let line = json!({ "level": r.level, "target": r.target, "msg": r.msg }).to_string();
                let value = json!([r.ns, line]);
                match streams.iter_mut().find(|(l, _)| *l == level) {
                    Some((_, v)) => v.push(value),
                    None => streams.push((level, vec![value])),
                }
            }
            let streams: Vec<serde_json::Value> = streams
                .into_iter()
                .map(|(level, values)| json!({ "stream": { "job": ctx.app, "host": ctx.host, "level": level }, "values": values }))
                .collect();
            (json!({ "streams": streams }).to_string(), "application/json", batch.len())
        }
    }
}

fn datadog_entry(r: &ForwardRecord, msg: &str, ctx: &Context) -> String {
    json!({
        "message": msg,
        "ddsource": "mt5bot",
        "service": ctx.app,
        "hostname": ctx.host,
        "status": r.level.to_ascii_lowercase(),
        "logger": { "name": r.target },
        "timestamp": (r.unix_ns() / 1_000_000) as i64,
    })
    .to_string()
}

// ---------------------------------------------------------------------------------------------
// The forwarder thread.
// ---------------------------------------------------------------------------------------------

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
        let ctx = Context { host, app: cfg.app_name.clone(), facility: cfg.facility, pid: std::process::id() };
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
            syslog_message(&r, 1, "host1", "mt5bot", 7),
            "<12>1 1970-01-01T00:00:00.000000Z host1 mt5bot 42 log [mt5bot@32473 level=\"WARN\" target=\"a\\\"b\\]c\"] line1 line2"
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
        let ctx = Context { host: "h".into(), app: "mt5bot".into(), facility: 1, pid: 1 };
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
    }
}
