//! Signal ingress: a TCP listener taking JSON-lines signals from external strategies.
//!
//! Each line is one signal, `{"id":"s-1","symbol":"EURUSD","side":"buy","qty":1.0,"type":"market"}`
//! (`"type":"limit"` needs `"price"`). Every line gets one answer line:
//! `{"id":"s-1","status":"queued"}`, `{"id":"s-1","status":"refused","reason":"duplicate"}`, or
//! `{"status":"error","line":3,"error":"..."}` naming the problem; the connection stays up after
//! bad input. A signal refused after its `queued` answer (a risk limit when its turn came, the
//! venue's session down past `queue.max_wait`) gets a second line on the same connection,
//! `{"id":"s-1","status":"refused","reason":"max_notional"}`.
//!
//! Buffers are bounded per connection: a line longer than `ingress.max_line_bytes` is answered
//! with an error and skipped, and while [`WRITE_BUFFER_LIMIT`] bytes of answers wait for a client
//! its input is not read, so it slows only itself, never the engine. Reading resumes from the level
//! of that buffer whenever it drains, never from a remembered edge. A client whose answers make no
//! progress for `ingress.stall_timeout` is disconnected (counted as `stalled`, with the number of
//! answers it never took in the log), so a client that never reads cannot hold a slot for ever.
//!
//! Driven by the reactor on the engine thread: it owns the sockets, the reactor hands it readiness
//! events and a periodic [`Ingress::sweep`], and it offers signals to the [`TradingCore`].

use std::borrow::Cow;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::Instant;

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};
use serde::{Deserialize, Serialize};

use crate::config::IngressConfig;

use crate::domain::types::OrderKind;
use crate::domain::venue::Venue;
use crate::support::throttle::Throttle;
use crate::telemetry::metrics::EngineMetrics;

use super::core::TradingCore;

use crate::domain::clock::Clock;
use crate::domain::types::{
    LateRefusal, Level, Nanos, ReplyTo, Side, Signal, SignalId, SignalSource, Stops, SIGNAL_ID_MAX,
};

/// Answers waiting for a client beyond this stop the reading of its input.
pub const WRITE_BUFFER_LIMIT: usize = 64 * 1024;

/// The kernel's send buffer per client (it doubles what is asked). Left to autotuning it grows to
/// 4 MiB per connection, which hides a client that never reads (its answers all fit) and lets 32
/// of them pin 128 MiB of kernel memory; 256 KiB is still far more than answers need in flight.
pub const SOCKET_SEND_BUFFER: usize = 256 * 1024;

/// One signal as it arrives on the wire.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireSignal<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    symbol: Cow<'a, str>,
    #[serde(borrow)]
    side: Cow<'a, str>,
    qty: f64,
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default)]
    price: Option<f64>,
    /// Stop-loss and take-profit: prices, or distances in basis points from the order's price.
    #[serde(default)]
    sl: Option<f64>,
    #[serde(default)]
    tp: Option<f64>,
    #[serde(default)]
    sl_bps: Option<f64>,
    #[serde(default)]
    tp_bps: Option<f64>,
}

#[derive(Debug, Serialize)]
struct Answer<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

#[derive(Debug)]
struct Conn {
    stream: TcpStream,
    peer: SocketAddr,
    /// Tells this connection from an earlier one in the same slot (for late refusals).
    generation: u16,
    /// Bytes of a line whose end has not arrived yet.
    partial: Vec<u8>,
    /// Skipping the rest of an over-long line (already answered).
    discarding: bool,
    out: Vec<u8>,
    line_no: u64,
    /// The peer closed its side (or the connection failed): close once the answers are out.
    closing: bool,
    /// The last time `out` was empty or bytes of it were taken by the client.
    progress_ns: Nanos,
    /// `queued` answers waiting for their journal entry to reach the disk: (entry, offset of the
    /// answer in `out`). Nothing from that offset on is written before the entry is durable, so
    /// the answers keep their order.
    gates: VecDeque<(u64, usize)>,
}

impl Conn {
    /// How much of `out` may be written with the journal durable up to `durable`.
    fn writable_len(&mut self, durable: u64) -> usize {
        while self.gates.front().is_some_and(|g| g.0 <= durable) {
            self.gates.pop_front();
        }
        self.gates.front().map_or(self.out.len(), |g| g.1.min(self.out.len()))
    }

    /// Drops every answer not yet written (the connection failed).
    fn discard_output(&mut self) {
        self.out.clear();
        self.gates.clear();
    }
}

impl Conn {
    fn reply_to(&self, idx: usize) -> ReplyTo {
        ReplyTo((u32::from(self.generation) << 16) | (idx as u32 + 1))
    }
}

/// The listener and its connections (a slab: a connection's token is `first_token + index`).
#[derive(Debug)]
pub struct Ingress {
    listener: TcpListener,
    listener_token: Token,
    first_token: usize,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    max_line: usize,
    stall_ns: Nanos,
    generation: u16,
    /// An accept failed (e.g. out of file descriptors): try again at the next sweep.
    accept_again: bool,
    refused_log: Throttle,
    accept_log: Throttle,
    /// How far the journal was durable when held `queued` answers were last released.
    released: u64,
    /// The slots whose connections hold `queued` answers for the journal (each once, marked in
    /// `listed`), so a release visits those and not every slot.
    gated: Vec<usize>,
    listed: Vec<bool>,
}

impl Ingress {
    /// Binds the listener and registers it.
    pub fn bind(
        cfg: &IngressConfig,
        registry: &Registry,
        listener_token: Token,
        first_token: usize,
    ) -> io::Result<Ingress> {
        let mut listener = TcpListener::bind(cfg.listen)?;
        registry.register(&mut listener, listener_token, Interest::READABLE)?;
        Ok(Ingress {
            listener,
            listener_token,
            first_token,
            conns: (0..cfg.max_connections).map(|_| None).collect(),
            free: (0..cfg.max_connections).rev().collect(),
            max_line: cfg.max_line_bytes,
            stall_ns: cfg.stall_timeout.as_nanos() as Nanos,
            generation: 0,
            accept_again: false,
            refused_log: Throttle::default(),
            accept_log: Throttle::default(),
            released: 0,
            gated: Vec::with_capacity(cfg.max_connections),
            listed: vec![false; cfg.max_connections],
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Whether `token` belongs to one of this ingress's connections.
    pub fn owns(&self, token: Token) -> bool {
        token.0 >= self.first_token && token.0 < self.first_token + self.conns.len()
    }

    /// Accepts every pending connection.
    pub fn accept(&mut self, registry: &Registry, metrics: &EngineMetrics, now: Nanos) {
        self.accept_again = false;
        loop {
            let (mut stream, peer) = match self.listener.accept() {
                Ok(pair) => pair,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.kind(), io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset) => {
                    continue
                }
                Err(e) => {
                    // Typically EMFILE: the connection waits in the backlog; the next sweep retries.
                    metrics.ingress_error("accept");
                    self.accept_again = true;
                    if let Some(held) = self.accept_log.allow(Instant::now()) {
                        log::warn!(
                            "ingress: cannot accept a connection: {e}; retrying{}",
                            self.accept_log.suffix(held)
                        );
                    }
                    return;
                }
            };
            let Some(idx) = self.free.pop() else {
                metrics.ingress_error("too_many_connections");
                if let Some(held) = self.refused_log.allow(Instant::now()) {
                    log::warn!(
                        "ingress: refused {peer}: ingress.max_connections ({}) reached{}",
                        self.conns.len(),
                        self.refused_log.suffix(held)
                    );
                }
                let mut msg = Vec::new();
                write_answer(
                    &mut msg,
                    &Answer {
                        id: None,
                        status: "error",
                        reason: None,
                        line: None,
                        error: Some("too many connections; ingress.max_connections reached"),
                    },
                );
                let _ = stream.write(&msg);
                continue;
            };
            let token = Token(self.first_token + idx);
            if let Err(e) = registry.register(&mut stream, token, Interest::READABLE | Interest::WRITABLE) {
                log::warn!("ingress: cannot register {peer}: {e}");
                self.free.push(idx);
                continue;
            }
            let _ = stream.set_nodelay(true);
            let _ = socket2::SockRef::from(&stream).set_send_buffer_size(SOCKET_SEND_BUFFER);
            log::info!("ingress: {peer} connected");
            self.generation = self.generation.wrapping_add(1);
            self.conns[idx] = Some(Conn {
                stream,
                peer,
                generation: self.generation,
                partial: Vec::with_capacity(self.max_line.min(64 * 1024)),
                discarding: false,
                out: Vec::with_capacity(4096),
                line_no: 0,
                closing: false,
                progress_ns: now,
                gates: VecDeque::with_capacity(64),
            });
            metrics.ingress_connections.inc();
        }
    }

    /// Handles a readiness event of a connection: writes what waits, reads while there is room
    /// for the answers, and repeats until the socket would block in the direction that holds it up.
    pub fn on_event<V: Venue, C: Clock>(
        &mut self,
        token: Token,
        registry: &Registry,
        core: &mut TradingCore<V, C>,
        metrics: &EngineMetrics,
        clock: &impl Clock,
    ) {
        let idx = token.0 - self.first_token;
        let max_line = self.max_line;
        let Some(conn) = self.conns.get_mut(idx).and_then(Option::as_mut) else { return };
        let reply_to = conn.reply_to(idx);
        loop {
            let now = clock.now();
            flush(conn, metrics, now, core.journal_durable());
            if conn.closing {
                break;
            }
            if conn.out.len() >= WRITE_BUFFER_LIMIT {
                // The socket would block (flush writes until it does): its WRITABLE event resumes us.
                break;
            }
            let more = read_lines(conn, max_line, reply_to, core, metrics);
            core.drain();
            if !more {
                flush(conn, metrics, clock.now(), core.journal_durable());
                break;
            }
        }
        if !conn.gates.is_empty() && !self.listed[idx] {
            self.listed[idx] = true;
            self.gated.push(idx);
        }
        if core.has_late_refusals() {
            self.deliver_late(core, metrics, clock.now());
        }
        if let Some(conn) = self.conns.get(idx).and_then(Option::as_ref) {
            if conn.closing && conn.out.is_empty() {
                self.close(idx, registry, metrics, None);
            }
        }
    }

    /// Writes the `queued` answers whose journal entries reached the disk since the last call.
    pub fn release<V: Venue, C: Clock>(
        &mut self,
        registry: &Registry,
        core: &TradingCore<V, C>,
        metrics: &EngineMetrics,
        now: Nanos,
    ) {
        let durable = core.journal_durable();
        if durable == self.released {
            return;
        }
        self.released = durable;
        let mut i = 0;
        while i < self.gated.len() {
            let idx = self.gated[i];
            let (keep, close) = match self.conns[idx].as_mut() {
                Some(conn) => {
                    flush(conn, metrics, now, durable);
                    let close = conn.closing && conn.out.is_empty();
                    (!close && !conn.gates.is_empty(), close)
                }
                None => (false, false),
            };
            if close {
                self.close(idx, registry, metrics, None);
            }
            if keep {
                i += 1;
            } else {
                self.listed[idx] = false;
                self.gated.swap_remove(i);
            }
        }
    }

    /// Writes the refusals the core made after queuing to the connections that sent the signals.
    pub fn deliver_late<V: Venue, C: Clock>(
        &mut self,
        core: &mut TradingCore<V, C>,
        metrics: &EngineMetrics,
        now: Nanos,
    ) {
        let conns = &mut self.conns;
        let mut touched: [usize; 8] = [usize::MAX; 8];
        let mut n_touched = 0;
        core.take_late_refusals(|r: &LateRefusal| {
            let idx = (r.reply_to.0 & 0xffff) as usize;
            let Some(idx) = idx.checked_sub(1) else { return };
            let Some(conn) = conns.get_mut(idx).and_then(Option::as_mut) else { return };
            if u32::from(conn.generation) != r.reply_to.0 >> 16 || conn.closing {
                return;
            }
            write_answer(
                &mut conn.out,
                &Answer {
                    id: Some(r.id.as_str()),
                    status: "refused",
                    reason: Some(r.reason.as_str()),
                    line: None,
                    error: None,
                },
            );
            if n_touched < touched.len() && !touched[..n_touched].contains(&idx) {
                touched[n_touched] = idx;
                n_touched += 1;
            }
        });
        let durable = core.journal_durable();
        for &idx in &touched[..n_touched] {
            if let Some(conn) = self.conns[idx].as_mut() {
                flush(conn, metrics, now, durable);
            }
        }
    }

    /// Disconnects clients that stopped taking their answers, and retries a failed accept.
    pub fn sweep(&mut self, registry: &Registry, metrics: &EngineMetrics, now: Nanos) {
        if self.accept_again {
            self.accept(registry, metrics, now);
        }
        for idx in 0..self.conns.len() {
            let Some(conn) = self.conns[idx].as_mut() else { continue };
            if conn.out.is_empty() || conn.gates.front().is_some_and(|g| g.1 == 0) {
                conn.progress_ns = now;
                continue;
            }
            if now.saturating_sub(conn.progress_ns) >= self.stall_ns {
                metrics.ingress_error("stalled");
                self.close(idx, registry, metrics, Some("it took none of its answers for ingress.stall_timeout"));
            }
        }
    }

    fn close(&mut self, idx: usize, registry: &Registry, metrics: &EngineMetrics, why: Option<&str>) {
        if let Some(mut conn) = self.conns[idx].take() {
            let _ = registry.deregister(&mut conn.stream);
            let unsent = conn.out.iter().filter(|&&b| b == b'\n').count();
            match (why, unsent) {
                (None, 0) => log::info!("ingress: {} disconnected after {} lines", conn.peer, conn.line_no),
                (why, _) => log::warn!(
                    "ingress: {} disconnected after {} lines ({}); {unsent} answers were never taken by the client",
                    conn.peer,
                    conn.line_no,
                    why.unwrap_or("closed")
                ),
            }
            self.free.push(idx);
            metrics.ingress_connections.dec();
        }
    }

    /// Stops listening and closes every connection (shutdown), sending what answers it can.
    pub fn close_all(&mut self, registry: &Registry, metrics: &EngineMetrics, now: Nanos, durable: u64) {
        let _ = registry.deregister(&mut self.listener);
        for idx in 0..self.conns.len() {
            if let Some(conn) = self.conns[idx].as_mut() {
                flush(conn, metrics, now, durable);
            }
            self.close(idx, registry, metrics, Some("shutting down"));
        }
    }

    /// The listener's token.
    pub fn listener_token(&self) -> Token {
        self.listener_token
    }
}

/// Reads and handles lines until the socket would block (false), the peer closed (false), or the
/// answers waiting fill [`WRITE_BUFFER_LIMIT`] (true: write them, then read on).
fn read_lines<V: Venue, C: Clock>(
    conn: &mut Conn,
    max_line: usize,
    reply_to: ReplyTo,
    core: &mut TradingCore<V, C>,
    metrics: &EngineMetrics,
) -> bool {
    let mut chunk = [0u8; 8192];
    loop {
        if conn.out.len() >= WRITE_BUFFER_LIMIT {
            // The client has not taken its answers yet: write them before reading on.
            return true;
        }
        let n = match conn.stream.read(&mut chunk) {
            Ok(0) => {
                if !conn.partial.is_empty() && !conn.discarding {
                    let line = std::mem::take(&mut conn.partial);
                    conn.line_no += 1;
                    handle_line(&line, conn.line_no, reply_to, &mut conn.out, &mut conn.gates, core, metrics);
                }
                conn.closing = true;
                return false;
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                metrics.ingress_error("io");
                log::info!("ingress: {}: read failed: {e}", conn.peer);
                conn.closing = true;
                conn.discard_output();
                return false;
            }
        };
        let data = &chunk[..n];
        let mut start = 0;
        while let Some(pos) = data[start..].iter().position(|&b| b == b'\n') {
            let seg = &data[start..start + pos];
            start += pos + 1;
            if conn.discarding {
                conn.discarding = false;
                continue;
            }
            conn.line_no += 1;
            if conn.partial.len() + seg.len() > max_line {
                conn.partial.clear();
                too_long(conn, max_line, metrics);
                continue;
            }
            if conn.partial.is_empty() {
                handle_line(seg, conn.line_no, reply_to, &mut conn.out, &mut conn.gates, core, metrics);
            } else {
                conn.partial.extend_from_slice(seg);
                let line = std::mem::take(&mut conn.partial);
                handle_line(&line, conn.line_no, reply_to, &mut conn.out, &mut conn.gates, core, metrics);
                conn.partial = line;
                conn.partial.clear();
            }
        }
        let rest = &data[start..];
        if conn.discarding || rest.is_empty() {
            continue;
        }
        if conn.partial.len() + rest.len() > max_line {
            conn.line_no += 1;
            conn.partial.clear();
            too_long(conn, max_line, metrics);
            conn.discarding = true;
        } else {
            conn.partial.extend_from_slice(rest);
        }
    }
}

fn too_long(conn: &mut Conn, max_line: usize, metrics: &EngineMetrics) {
    metrics.ingress_error("line_too_long");
    let msg = format!("line longer than {max_line} bytes (ingress.max_line_bytes); it was skipped");
    write_answer(
        &mut conn.out,
        &Answer { id: None, status: "error", reason: None, line: Some(conn.line_no), error: Some(&msg) },
    );
}

fn flush(conn: &mut Conn, metrics: &EngineMetrics, now: Nanos, durable: u64) {
    let limit = conn.writable_len(durable);
    if limit == 0 {
        // Nothing the client could take yet: waiting on the journal is not the client's stall.
        conn.progress_ns = now;
        return;
    }
    let mut written = 0;
    while written < limit {
        match conn.stream.write(&conn.out[written..limit]) {
            Ok(0) => break,
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                metrics.ingress_error("io");
                log::info!("ingress: {}: write failed: {e}", conn.peer);
                conn.closing = true;
                conn.discard_output();
                return;
            }
        }
    }
    if written > 0 {
        conn.progress_ns = now;
    }
    conn.out.drain(..written);
    for g in &mut conn.gates {
        g.1 = g.1.saturating_sub(written);
    }
}

/// How far the journal is on disk (everything when there is none).
fn write_answer(out: &mut Vec<u8>, answer: &Answer<'_>) {
    // Serializing this plain struct into a Vec cannot fail.
    if serde_json::to_writer(&mut *out, answer).is_ok() {
        out.push(b'\n');
    }
}

/// Parses and offers one line, appending exactly one answer (none for a blank line).
fn handle_line<V: Venue, C: Clock>(
    line: &[u8],
    line_no: u64,
    reply_to: ReplyTo,
    out: &mut Vec<u8>,
    gates: &mut VecDeque<(u64, usize)>,
    core: &mut TradingCore<V, C>,
    metrics: &EngineMetrics,
) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().all(u8::is_ascii_whitespace) {
        return;
    }
    let origin_ns = core.clock().now();
    let error = |out: &mut Vec<u8>, reason: &str, msg: &str| {
        metrics.ingress_error(reason);
        write_answer(out, &Answer { id: None, status: "error", reason: None, line: Some(line_no), error: Some(msg) });
    };
    let wire: WireSignal<'_> = match serde_json::from_slice(line) {
        Ok(w) => w,
        Err(e) => {
            let reason = if e.is_data() { "bad_field" } else { "bad_json" };
            return error(out, reason, &e.to_string());
        }
    };
    let Some(id) = SignalId::parse(&wire.id) else {
        return error(
            out,
            "bad_field",
            &format!("id: expected 1 to {SIGNAL_ID_MAX} characters of A-Z a-z 0-9 . _ - :"),
        );
    };
    let most = core.venue().max_id_len();
    if id.as_str().len() > most {
        return error(
            out,
            "bad_field",
            &format!("id: {} characters; the {} venue carries at most {most}", id.as_str().len(), core.venue().name()),
        );
    }
    let Some(symbol) = core.symbol_id(&wire.symbol) else {
        return error(
            out,
            "bad_field",
            &format!("symbol: {:?} is not traded; accepted: {}", wire.symbol, core.symbols().join(", ")),
        );
    };
    let Some(side) = Side::parse(&wire.side.to_ascii_lowercase()) else {
        return error(out, "bad_field", &format!("side: {:?} is not a side; accepted: buy, sell", wire.side));
    };
    if !(wire.qty.is_finite() && wire.qty > 0.0) {
        return error(
            out,
            "bad_field",
            &format!("qty: {} is not accepted; accepted: a quantity greater than 0", wire.qty),
        );
    }
    if let Err(why) = core.check_lot(symbol, wire.qty) {
        return error(out, "bad_field", &why);
    }
    let (kind, price) = match (wire.kind.to_ascii_lowercase().as_str(), wire.price) {
        ("market", _) => (OrderKind::Market, 0.0),
        ("limit", Some(p)) if p.is_finite() && p > 0.0 => (OrderKind::Limit, p),
        ("limit", _) => return error(out, "bad_field", "price: a limit order needs a price greater than 0"),
        _ => {
            return error(
                out,
                "bad_field",
                &format!("type: {:?} is not an order type; accepted: market, limit", wire.kind),
            )
        }
    };
    let stops = match stops(&wire, side, kind, price, core.executor().quote(symbol)) {
        Ok(s) => s,
        Err(why) => return error(out, "bad_field", &why),
    };
    let signal = Signal {
        id,
        symbol,
        side,
        qty: wire.qty,
        kind,
        price,
        source: SignalSource::Ingress,
        origin_ns,
        reply_to,
        stops,
    };
    let answer = match core.offer(signal) {
        Ok(()) => {
            if let Some((entry, _)) = core.journal_marks().filter(|(entry, durable)| entry > durable) {
                gates.push_back((entry, out.len()));
            }
            Answer { id: Some(id.as_str()), status: "queued", reason: None, line: None, error: None }
        }
        Err(reason) => {
            Answer { id: Some(id.as_str()), status: "refused", reason: Some(reason.as_str()), line: None, error: None }
        }
    };
    write_answer(out, &answer);
}

/// The stops a wire signal asks for, checked: each a price or a distance in basis points (not
/// both), on the losing side of the order's price for the stop-loss and the winning side for the
/// take-profit (a limit's price; a market order's quote, when one has arrived).
fn stops(
    wire: &WireSignal<'_>,
    side: Side,
    kind: OrderKind,
    price: f64,
    quote: Option<(f64, f64)>,
) -> Result<Stops, String> {
    let level = |name: &str, p: Option<f64>, bps: Option<f64>, max_bps: f64| -> Result<Level, String> {
        match (p, bps) {
            (Some(_), Some(_)) => Err(format!("{name}, {name}_bps: give one of them, not both")),
            (Some(p), None) if p.is_finite() && p > 0.0 => Ok(Level::Price(p)),
            (Some(p), None) => Err(format!("{name}: {p} is not accepted; accepted: a price greater than 0")),
            (None, Some(b)) if b.is_finite() && b > 0.0 && b <= max_bps => Ok(Level::Bps(b)),
            (None, Some(b)) => {
                Err(format!("{name}_bps: {b} is not accepted; accepted: more than 0, at most {max_bps}"))
            }
            (None, None) => Ok(Level::None),
        }
    };
    let s = Stops { sl: level("sl", wire.sl, wire.sl_bps, 9_999.0)?, tp: level("tp", wire.tp, wire.tp_bps, 1e6)? };
    // Where the position would close: a long at the bid, a short at the ask.
    let exit = match (kind, quote) {
        (OrderKind::Limit | OrderKind::Stop, _) => Some(price),
        (OrderKind::Market, Some((bid, ask))) => Some(if side == Side::Buy { bid } else { ask }),
        (OrderKind::Market, None) => None,
    };
    if let Some(at) = exit {
        let below = side == Side::Buy;
        let wrong = |p: f64, want_below: bool| if want_below { p >= at } else { p <= at };
        if let Level::Price(p) = s.sl {
            if wrong(p, below) {
                return Err(format!(
                    "sl: {p} is not {} {at}, where this {} would be closed",
                    if below { "below" } else { "above" },
                    side.as_str()
                ));
            }
        }
        if let Level::Price(p) = s.tp {
            if wrong(p, !below) {
                return Err(format!(
                    "tp: {p} is not {} {at}, where this {} would be closed",
                    if below { "above" } else { "below" },
                    side.as_str()
                ));
            }
        }
    }
    Ok(s)
}
