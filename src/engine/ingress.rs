//! Signal ingress: a TCP listener taking JSON-lines signals from external strategies.
//!
//! Each line is one signal, `{"id":"s-1","symbol":"EURUSD","side":"buy","qty":1.0,"type":"market"}`
//! (`"type":"limit"` needs `"price"`). Every line gets one answer line:
//! `{"id":"s-1","status":"queued"}`, `{"id":"s-1","status":"refused","reason":"queue_full"}`, or
//! `{"status":"error","line":3,"error":"..."}` naming the problem; the connection stays up after
//! bad input. Buffers are bounded per connection: a line longer than `ingress.max_line_bytes` is
//! answered with an error and skipped, and a client that does not read its answers stops being read
//! once [`WRITE_BUFFER_LIMIT`] bytes wait for it, so it slows only itself, never the engine.
//!
//! Driven by the reactor on the engine thread: it owns the sockets, the reactor hands it readiness
//! events, and it offers signals to the [`TradingCore`].

use std::borrow::Cow;
use std::io::{self, Read, Write};
use std::net::SocketAddr;

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};
use serde::{Deserialize, Serialize};

use crate::config::{IngressConfig, OrderKind};
use crate::telemetry::metrics::EngineMetrics;
use crate::venue::Venue;

use super::core::{Clock, TradingCore};
use super::types::{Side, Signal, SignalId, SignalSource, SIGNAL_ID_MAX};

/// Answers waiting for a client beyond this stop the reading of its input.
pub const WRITE_BUFFER_LIMIT: usize = 64 * 1024;

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
    /// Bytes of a line whose end has not arrived yet.
    partial: Vec<u8>,
    /// Skipping the rest of an over-long line (already answered).
    discarding: bool,
    out: Vec<u8>,
    line_no: u64,
    read_paused: bool,
    closing: bool,
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
    pub fn accept(&mut self, registry: &Registry, metrics: &EngineMetrics) {
        loop {
            let (mut stream, peer) = match self.listener.accept() {
                Ok(pair) => pair,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Typically EMFILE: count it and try again on the next readiness event.
                    metrics.ingress_error("io");
                    log::warn!("ingress: cannot accept a connection: {e}");
                    return;
                }
            };
            let Some(idx) = self.free.pop() else {
                metrics.ingress_error("too_many_connections");
                log::warn!("ingress: refused {peer}: ingress.max_connections ({}) reached", self.conns.len());
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
            log::info!("ingress: {peer} connected");
            self.conns[idx] = Some(Conn {
                stream,
                peer,
                partial: Vec::with_capacity(self.max_line.min(64 * 1024)),
                discarding: false,
                out: Vec::with_capacity(4096),
                line_no: 0,
                read_paused: false,
                closing: false,
            });
            metrics.ingress_connections.inc();
        }
    }

    /// Handles a readiness event of a connection.
    pub fn on_event<V: Venue, C: Clock>(
        &mut self,
        token: Token,
        readable: bool,
        writable: bool,
        registry: &Registry,
        core: &mut TradingCore<V, C>,
        metrics: &EngineMetrics,
    ) {
        let idx = token.0 - self.first_token;
        let max_line = self.max_line;
        let Some(conn) = self.conns.get_mut(idx).and_then(Option::as_mut) else { return };
        if writable || readable {
            flush(conn, metrics);
        }
        if readable || (conn.read_paused && conn.out.len() < WRITE_BUFFER_LIMIT) {
            conn.read_paused = false;
            read_lines(conn, max_line, core, metrics);
            core.drain();
            flush(conn, metrics);
        }
        if conn.closing && conn.out.is_empty() {
            self.close(idx, registry, metrics);
        }
    }

    fn close(&mut self, idx: usize, registry: &Registry, metrics: &EngineMetrics) {
        if let Some(mut conn) = self.conns[idx].take() {
            let _ = registry.deregister(&mut conn.stream);
            log::info!("ingress: {} disconnected after {} lines", conn.peer, conn.line_no);
            self.free.push(idx);
            metrics.ingress_connections.dec();
        }
    }

    /// Stops listening and closes every connection (shutdown), sending what answers it can.
    pub fn close_all(&mut self, registry: &Registry, metrics: &EngineMetrics) {
        let _ = registry.deregister(&mut self.listener);
        for idx in 0..self.conns.len() {
            if let Some(conn) = self.conns[idx].as_mut() {
                flush(conn, metrics);
            }
            self.close(idx, registry, metrics);
        }
    }

    /// The listener's token.
    pub fn listener_token(&self) -> Token {
        self.listener_token
    }
}

fn read_lines<V: Venue, C: Clock>(
    conn: &mut Conn,
    max_line: usize,
    core: &mut TradingCore<V, C>,
    metrics: &EngineMetrics,
) {
    let mut chunk = [0u8; 8192];
    loop {
        if conn.out.len() >= WRITE_BUFFER_LIMIT {
            // The client is not reading its answers: stop reading its input until it does.
            conn.read_paused = true;
            return;
        }
        let n = match conn.stream.read(&mut chunk) {
            Ok(0) => {
                if !conn.partial.is_empty() && !conn.discarding {
                    let line = std::mem::take(&mut conn.partial);
                    conn.line_no += 1;
                    handle_line(&line, conn.line_no, &mut conn.out, core, metrics);
                }
                conn.closing = true;
                return;
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                metrics.ingress_error("io");
                log::info!("ingress: {}: read failed: {e}", conn.peer);
                conn.closing = true;
                conn.out.clear();
                return;
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
                handle_line(seg, conn.line_no, &mut conn.out, core, metrics);
            } else {
                conn.partial.extend_from_slice(seg);
                let line = std::mem::take(&mut conn.partial);
                handle_line(&line, conn.line_no, &mut conn.out, core, metrics);
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

fn flush(conn: &mut Conn, metrics: &EngineMetrics) {
    let mut written = 0;
    while written < conn.out.len() {
        match conn.stream.write(&conn.out[written..]) {
            Ok(0) => break,
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                metrics.ingress_error("io");
                log::info!("ingress: {}: write failed: {e}", conn.peer);
                conn.closing = true;
                conn.out.clear();
                return;
            }
        }
    }
    conn.out.drain(..written);
}

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
    out: &mut Vec<u8>,
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
    let Some(symbol) = core.symbol_id(&wire.symbol) else {
        return error(
            out,
            "bad_field",
            &format!("symbol: {:?} is not traded; accepted: {}", wire.symbol, core.symbols().join(", ")),
        );
    };
    let side = match wire.side.to_ascii_lowercase().as_str() {
        "buy" => Side::Buy,
        "sell" => Side::Sell,
        _ => return error(out, "bad_field", &format!("side: {:?} is not a side; accepted: buy, sell", wire.side)),
    };
    if !(wire.qty.is_finite() && wire.qty > 0.0) {
        return error(
            out,
            "bad_field",
            &format!("qty: {} is not accepted; accepted: a quantity greater than 0", wire.qty),
        );
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
    let signal = Signal { id, symbol, side, qty: wire.qty, kind, price, source: SignalSource::Ingress, origin_ns };
    let answer = match core.offer(signal) {
        Ok(()) => Answer { id: Some(id.as_str()), status: "queued", reason: None, line: None, error: None },
        Err(reason) => {
            Answer { id: Some(id.as_str()), status: "refused", reason: Some(reason.as_str()), line: None, error: None }
        }
    };
    write_answer(out, &answer);
}
