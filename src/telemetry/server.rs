//! The helper thread's HTTP/1.1 server: one mio loop on one thread, with every bound explicit.
//!
//! It replaces a thread per connection (tiny_http's model: 2,000 idle clients were 2,005 threads,
//! an `EMFILE` on accept ended the listener, a thread cap made it panic, and one unread body
//! blocked every other client). Here:
//! - connections live in a slab of `metrics.max_connections`; at the bound a new connection
//!   evicts the oldest one that has not sent a whole request (idle, a slow head, or a delayed
//!   refusal), so a fresh scrape always gets in, and is refused only when every slot holds a
//!   request being served;
//! - the head must arrive within `header_timeout`, a body within `body_timeout`, a response must be
//!   taken within `write_timeout`, and a kept-alive connection may idle for `idle_timeout`;
//! - a [`Service`] sees the head before any body byte is read (authentication first), a body has
//!   a fixed maximum, and chunked request bodies are refused;
//! - an answer that needs the engine is a [`Outcome::Wait`] polled on later turns, never a blocking
//!   wait, so a slow engine delays only its own caller;
//! - a failed accept (out of file descriptors) is counted, logged at most once per interval, frees
//!   a slot by eviction and is retried: it is never fatal.
//!
//! - with `metrics.web_config`'s TLS, each connection is a rustls [`Transport`]: the handshake is
//!   bytes moving while a request is awaited, so the same deadlines and eviction bound it, and a
//!   failed one is counted as `tls`.
//!
//! Every readiness event is drained to `WouldBlock`; reading and writing resume from the state of
//! the connection (level), never from a remembered edge. Cut-offs are counted in
//! `http_connections_closed_total{reason}`.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use prometheus::{IntCounter, IntGauge};

use crate::support::throttle::Throttle;

use super::metrics::{Metrics, HTTP_CLOSE_REASONS};
use super::web::{TlsRefused, TlsSource, Transport};

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
const FIRST_CONN: usize = 2;

/// Largest request head (request line and headers).
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Most headers in one request.
pub const MAX_HEADERS: usize = 48;
/// Largest request body read.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Deadlines are checked this often (their granularity).
const SWEEP: Duration = Duration::from_millis(50);
/// While an answer is awaited from elsewhere, the loop looks for it this often.
const PENDING_POLL: Duration = Duration::from_millis(1);
/// After answering a request whose body was not read, the connection is closed for writing and
/// what the client still sends is read and dropped for up to this long (and [`LINGER_BYTES`]),
/// so the answer is not destroyed by the reset a close with unread data would send.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 1 << 20;
/// After a failed accept with nothing to evict, accepting is retried after this long.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);
const READ_CHUNK: usize = 16 * 1024;

/// The listener's bounds (`metrics.*` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub idle_timeout: Duration,
    pub write_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 256,
            header_timeout: Duration::from_secs(5),
            body_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(10),
        }
    }
}

/// A request as the [`Service`] sees it. `body` is empty when the head is shown alone.
#[derive(Debug)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The path without its query string.
    pub path: &'a str,
    /// What follows the `?`, or empty.
    pub query: &'a str,
    pub headers: &'a [httparse::Header<'a>],
    pub peer: IpAddr,
    pub body: &'a [u8],
    /// The announced body length.
    pub content_length: usize,
}

impl<'a> Request<'a> {
    /// The first header of that name (case-insensitive), when it is valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
            .map(str::trim)
    }
}

/// An answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    /// Close the connection after this answer.
    pub close: bool,
}

impl Response {
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Response {
        Response { status, content_type, headers: Vec::new(), body: body.into(), close: false }
    }

    pub fn text(status: u16, body: &str) -> Response {
        Response::new(status, "text/plain; charset=utf-8", body.as_bytes())
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }
}

/// What a [`Service`] does with a request.
#[derive(Debug)]
pub enum Outcome<P> {
    Ready(Response),
    /// The answer comes later: [`Service::poll`] is asked for it every turn.
    Wait(P),
    /// This answer, sent no earlier than the instant (slows a client that keeps failing; such a
    /// connection may be evicted while it waits).
    Delay(Response, Instant),
}

/// The application behind the server.
pub trait Service {
    /// An answer being prepared elsewhere (e.g. by the engine).
    type Pending;
    /// The head of a request has arrived and no body byte has been read: an outcome here answers
    /// without reading the body (e.g. a missing key); `None` lets the request go on.
    fn head(&mut self, req: &Request<'_>) -> Option<Outcome<Self::Pending>>;
    /// The whole request.
    fn request(&mut self, req: &Request<'_>) -> Outcome<Self::Pending>;
    /// The answer of a pending request, when it is there.
    fn poll(&mut self, pending: &mut Self::Pending, now: Instant) -> Option<Response>;
    /// Periodic work on this thread; returns when it is next due.
    fn tick(&mut self, now: Instant) -> Instant;
    /// The server answered `status` itself (a request it would not read); `path` is empty when
    /// no head could be parsed.
    fn answered(&mut self, path: &str, status: u16);
    /// A body the server has copied out, handed back for reuse (a scrape then allocates nothing).
    fn recycle(&mut self, _body: Vec<u8>) {}
}

#[derive(Debug)]
enum Phase<P> {
    /// Waiting for a request to start; `fresh` until the first request was answered.
    Idle {
        fresh: bool,
    },
    /// Part of a head has arrived.
    Head,
    /// The head was accepted; waiting for the rest of the body it announced.
    Body,
    Waiting(P),
    /// `out` holds an answer held back until `deadline`.
    Delayed,
    /// `out` holds an answer being written.
    Writing,
    /// Answered and closed for writing; dropping what the client still sends (`buf` counts it).
    Lingering {
        dropped: usize,
    },
}

#[derive(Debug)]
struct Conn<P> {
    stream: Transport,
    peer: SocketAddr,
    buf: Vec<u8>,
    out: Vec<u8>,
    written: usize,
    phase: Phase<P>,
    /// When the current phase must be over.
    deadline: Instant,
    /// When the current phase began (eviction takes the oldest first).
    since: Instant,
    /// Whether the answer in preparation leaves the connection open.
    keep_alive: bool,
    /// Bytes to drop from `buf` once the current answer is queued (the request it answers).
    consumed: usize,
    /// The client may still be sending a body nobody reads: linger before closing.
    linger: bool,
    /// WRITABLE is watched (only while an answer waits for room in the socket: watched always,
    /// every ACK after an answer would wake the loop for nothing).
    watch_write: bool,
}

impl<P> Conn<P> {
    fn evictable(&self) -> bool {
        matches!(self.phase, Phase::Idle { .. } | Phase::Head | Phase::Delayed | Phase::Lingering { .. })
    }
}

/// Counters and gauges of the listener.
#[derive(Debug, Clone)]
struct ServerMetrics {
    connections: IntGauge,
    closed: [IntCounter; HTTP_CLOSE_REASONS.len()],
    accept_errors: IntCounter,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    Evicted,
    Limit,
    HeaderTimeout,
    BodyTimeout,
    IdleTimeout,
    WriteTimeout,
    BadRequest,
    /// A TLS handshake or record failed (plain HTTP on a TLS port, a refused client certificate).
    Tls,
}

impl Cut {
    fn label(self) -> &'static str {
        HTTP_CLOSE_REASONS[self as usize]
    }
}

/// The server: listener, connections, service.
#[derive(Debug)]
pub struct Server<S: Service> {
    poll: Poll,
    listener: TcpListener,
    limits: Limits,
    conns: Vec<Option<Conn<S::Pending>>>,
    free: Vec<usize>,
    waiting: usize,
    service: S,
    metrics: ServerMetrics,
    accept_paused_until: Option<Instant>,
    accept_log: Throttle,
    cut_log: Throttle,
    chunk: Box<[u8]>,
    /// With TLS on, every connection speaks it.
    tls: Option<TlsSource>,
}

/// Stops a running [`Server`] from another thread.
#[derive(Debug, Clone)]
pub struct StopHandle {
    waker: std::sync::Arc<Waker>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl StopHandle {
    pub fn stop(&self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = self.waker.wake();
    }
}

impl<S: Service> Server<S> {
    /// Takes over a bound listener (non-blocking is set here).
    pub fn new(
        listener: std::net::TcpListener,
        limits: Limits,
        tls: Option<TlsSource>,
        service: S,
        metrics: &Metrics,
    ) -> io::Result<(Server<S>, StopHandle)> {
        listener.set_nonblocking(true)?;
        let mut listener = TcpListener::from_std(listener);
        let poll = Poll::new()?;
        poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = std::sync::Arc::new(Waker::new(poll.registry(), WAKER)?);
        let n = limits.max_connections.max(1);
        let server = Server {
            poll,
            listener,
            limits,
            conns: (0..n).map(|_| None).collect(),
            free: (0..n).rev().collect(),
            waiting: 0,
            service,
            metrics: ServerMetrics {
                connections: metrics.http_connections.clone(),
                closed: HTTP_CLOSE_REASONS.map(|r| metrics.http_connections_closed.with_label_values(&[r])),
                accept_errors: metrics.http_accept_errors.clone(),
            },
            accept_paused_until: None,
            accept_log: Throttle::default(),
            cut_log: Throttle::default(),
            chunk: vec![0u8; READ_CHUNK].into_boxed_slice(),
            tls,
        };
        let stop = StopHandle { waker, stop: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)) };
        Ok((server, stop))
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `stop` is told to stop. Returns an error only if polling itself fails.
    pub fn run(&mut self, stop: &StopHandle) -> io::Result<()> {
        let mut events = Events::with_capacity(256);
        let mut next_sweep = Instant::now() + SWEEP;
        let mut next_tick = self.service.tick(Instant::now());
        loop {
            if stop.stop.load(std::sync::atomic::Ordering::Relaxed) {
                return Ok(());
            }
            let now = Instant::now();
            let mut wake_at = next_sweep.min(next_tick);
            if self.waiting > 0 {
                wake_at = wake_at.min(now + PENDING_POLL);
            }
            if let Some(t) = self.accept_paused_until {
                wake_at = wake_at.min(t);
            }
            let timeout = wake_at.saturating_duration_since(now);
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(),
                    WAKER => {}
                    Token(t) => {
                        if let Some(idx) = t.checked_sub(FIRST_CONN).filter(|i| *i < self.conns.len()) {
                            self.drive(idx, Instant::now());
                        }
                    }
                }
            }
            let now = Instant::now();
            if self.waiting > 0 {
                self.poll_pending(now);
            }
            if self.accept_paused_until.is_some_and(|t| now >= t) {
                self.accept_paused_until = None;
                self.accept();
            }
            if now >= next_sweep {
                self.sweep(now);
                next_sweep = now + SWEEP;
            }
            if now >= next_tick {
                next_tick = self.service.tick(now);
            }
        }
    }

    fn accept(&mut self) {
        if self.accept_paused_until.is_some() {
            return;
        }
        loop {
            let (stream, peer) = match self.listener.accept() {
                Ok(pair) => pair,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if matches!(e.kind(), io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset) => {
                    continue
                }
                Err(e) => {
                    // EMFILE, ENFILE, ENOBUFS: free a slot if one can go, else wait a little. The
                    // connection stays in the kernel's backlog meanwhile.
                    self.metrics.accept_errors.inc();
                    if let Some(held) = self.accept_log.allow(Instant::now()) {
                        log::warn!(
                            "metrics listener: cannot accept a connection: {e}; retrying{}",
                            self.accept_log.suffix(held)
                        );
                    }
                    if self.evict_one() {
                        continue;
                    }
                    self.accept_paused_until = Some(Instant::now() + ACCEPT_RETRY);
                    return;
                }
            };
            self.admit(stream, peer);
        }
    }

    fn admit(&mut self, mut stream: TcpStream, peer: SocketAddr) {
        if self.free.is_empty() && !self.evict_one() {
            self.cut(Cut::Limit, peer);
            drop(stream);
            return;
        }
        let Some(idx) = self.free.pop() else { return };
        if let Err(e) = self.poll.registry().register(&mut stream, Token(FIRST_CONN + idx), Interest::READABLE) {
            log::warn!("metrics listener: cannot watch a connection from {peer}: {e}");
            self.free.push(idx);
            return;
        }
        let _ = stream.set_nodelay(true);
        let stream = match Transport::new(stream, self.tls.as_mut().map(|t| t.config(Instant::now()))) {
            Ok(t) => t,
            Err(e) => {
                log::warn!("metrics listener: cannot start TLS for {peer}: {e}");
                self.free.push(idx);
                return;
            }
        };
        let now = Instant::now();
        self.conns[idx] = Some(Conn {
            stream,
            peer,
            buf: Vec::new(),
            out: Vec::new(),
            written: 0,
            phase: Phase::Idle { fresh: true },
            deadline: now + self.limits.header_timeout,
            since: now,
            keep_alive: true,
            consumed: 0,
            linger: false,
            watch_write: false,
        });
        self.metrics.connections.inc();
        self.drive(idx, now);
    }

    /// Closes the oldest connection that is not being served; false when there is none.
    fn evict_one(&mut self) -> bool {
        let victim = self
            .conns
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.as_ref().filter(|c| c.evictable()).map(|c| (c.since, i)))
            .min()
            .map(|(_, i)| i);
        match victim {
            Some(i) => {
                self.close(i, Some(Cut::Evicted));
                true
            }
            None => false,
        }
    }

    fn cut(&mut self, why: Cut, peer: SocketAddr) {
        self.metrics.closed[why as usize].inc();
        if let Some(held) = self.cut_log.allow(Instant::now()) {
            log::warn!(
                "metrics listener: cut off a connection from {peer} ({}; see metrics.* in the config){}",
                why.label(),
                self.cut_log.suffix(held)
            );
        }
    }

    fn close(&mut self, idx: usize, why: Option<Cut>) {
        let Some(mut conn) = self.conns[idx].take() else { return };
        if matches!(conn.phase, Phase::Waiting(_)) {
            self.waiting -= 1;
        }
        let _ = self.poll.registry().deregister(conn.stream.socket());
        if let Some(why) = why {
            self.cut(why, conn.peer);
        }
        self.free.push(idx);
        self.metrics.connections.dec();
    }

    /// Answers whose wait is over.
    fn poll_pending(&mut self, now: Instant) {
        for idx in 0..self.conns.len() {
            let Some(conn) = self.conns[idx].as_mut() else { continue };
            let Phase::Waiting(p) = &mut conn.phase else { continue };
            if let Some(mut resp) = self.service.poll(p, now) {
                self.waiting -= 1;
                let body = std::mem::take(&mut resp.body);
                queue_response(conn, resp, &body, now, self.limits.write_timeout);
                self.drive(idx, now);
            }
        }
    }

    fn sweep(&mut self, now: Instant) {
        for idx in 0..self.conns.len() {
            let Some(conn) = self.conns[idx].as_mut() else { continue };
            if now < conn.deadline {
                continue;
            }
            let why = match conn.phase {
                Phase::Idle { fresh: true } | Phase::Head => Cut::HeaderTimeout,
                Phase::Idle { fresh: false } => Cut::IdleTimeout,
                Phase::Body => Cut::BodyTimeout,
                Phase::Writing => Cut::WriteTimeout,
                Phase::Waiting(_) => continue,
                Phase::Lingering { .. } => {
                    self.close(idx, None);
                    continue;
                }
                Phase::Delayed => {
                    conn.phase = Phase::Writing;
                    conn.deadline = now + self.limits.write_timeout;
                    self.drive(idx, now);
                    continue;
                }
            };
            if why == Cut::IdleTimeout {
                // A kept-alive connection nobody used: an ordinary close, not a cut-off.
                self.metrics.closed[why as usize].inc();
                self.close(idx, None);
            } else {
                self.close(idx, Some(why));
            }
        }
    }

    /// Moves a connection as far as its bytes allow: parse, answer, write, read more.
    fn drive(&mut self, idx: usize, now: Instant) {
        loop {
            let Some(conn) = self.conns[idx].as_mut() else { return };
            match conn.phase {
                Phase::Waiting(_) | Phase::Delayed => return,
                Phase::Lingering { dropped } => {
                    conn.buf.clear();
                    match read_in(conn, &mut self.chunk) {
                        ReadState::Got if dropped + conn.buf.len() < LINGER_BYTES => {
                            conn.phase = Phase::Lingering { dropped: dropped + conn.buf.len() };
                        }
                        ReadState::Blocked => return,
                        ReadState::Got | ReadState::Closed | ReadState::Refused => {
                            self.close(idx, None);
                            return;
                        }
                    }
                }
                Phase::Writing => match write_out(conn) {
                    WriteState::Done => {
                        if conn.watch_write {
                            conn.watch_write = false;
                            let _ = self.poll.registry().reregister(
                                conn.stream.socket(),
                                Token(FIRST_CONN + idx),
                                Interest::READABLE,
                            );
                        }
                        if !conn.keep_alive && conn.linger {
                            conn.stream.shutdown_write();
                            conn.buf.clear();
                            conn.phase = Phase::Lingering { dropped: 0 };
                            conn.since = now;
                            conn.deadline = now + LINGER;
                            continue;
                        }
                        if !conn.keep_alive {
                            self.close(idx, None);
                            return;
                        }
                        conn.out.clear();
                        conn.written = 0;
                        conn.phase = Phase::Idle { fresh: false };
                        conn.since = now;
                        conn.deadline = now + self.limits.idle_timeout;
                    }
                    WriteState::Blocked => {
                        if !conn.watch_write {
                            conn.watch_write = true;
                            let interest = Interest::READABLE | Interest::WRITABLE;
                            if self
                                .poll
                                .registry()
                                .reregister(conn.stream.socket(), Token(FIRST_CONN + idx), interest)
                                .is_err()
                            {
                                self.close(idx, None);
                            }
                        }
                        return;
                    }
                    WriteState::Failed => {
                        self.close(idx, None);
                        return;
                    }
                },
                Phase::Idle { .. } | Phase::Head | Phase::Body => match self.parse(idx, now) {
                    Parsed::Progress => {}
                    Parsed::NeedMore => {
                        let Some(conn) = self.conns[idx].as_mut() else { return };
                        match read_in(conn, &mut self.chunk) {
                            ReadState::Got => {}
                            ReadState::Blocked => {
                                // A TLS handshake answer that did not fit the socket goes out
                                // when there is room.
                                if conn.stream.wants_write() && !conn.watch_write {
                                    conn.watch_write = true;
                                    let interest = Interest::READABLE | Interest::WRITABLE;
                                    let token = Token(FIRST_CONN + idx);
                                    if self.poll.registry().reregister(conn.stream.socket(), token, interest).is_err() {
                                        self.close(idx, None);
                                    }
                                }
                                return;
                            }
                            ReadState::Closed => {
                                self.close(idx, None);
                                return;
                            }
                            ReadState::Refused => {
                                self.close(idx, Some(Cut::Tls));
                                return;
                            }
                        }
                    }
                    Parsed::Bad => {
                        self.close(idx, Some(Cut::BadRequest));
                        return;
                    }
                },
            }
        }
    }

    /// Looks at the bytes read so far.
    fn parse(&mut self, idx: usize, now: Instant) -> Parsed {
        let limits = self.limits;
        let Some(conn) = self.conns[idx].as_mut() else { return Parsed::Bad };
        if conn.buf.is_empty() {
            return Parsed::NeedMore;
        }
        if let Phase::Idle { .. } = conn.phase {
            // A request starts: its whole head is due within header_timeout.
            conn.phase = Phase::Head;
            conn.since = now;
            conn.deadline = now + limits.header_timeout;
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut parsed = httparse::Request::new(&mut headers);
        let head_len = match parsed.parse(&conn.buf) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => {
                if conn.buf.len() > MAX_HEAD_BYTES {
                    self.service.answered("", 431);
                    let resp = Response::text(431, "request head too large\n");
                    return answer_and_close(conn, resp, now, limits.write_timeout);
                }
                return Parsed::NeedMore;
            }
            Err(httparse::Error::TooManyHeaders) => {
                self.service.answered("", 431);
                let resp = Response::text(431, "too many request headers\n");
                return answer_and_close(conn, resp, now, limits.write_timeout);
            }
            Err(_) => return Parsed::Bad,
        };
        if head_len > MAX_HEAD_BYTES {
            self.service.answered("", 431);
            let resp = Response::text(431, "request head too large\n");
            return answer_and_close(conn, resp, now, limits.write_timeout);
        }
        let method = parsed.method.unwrap_or("");
        let target = parsed.path.unwrap_or("/");
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let version = parsed.version.unwrap_or(1);
        let hdrs: &[httparse::Header<'_>] = parsed.headers;
        let find = |name: &str| {
            hdrs.iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).trim().to_ascii_lowercase())
        };
        let connection = find("connection").unwrap_or_default();
        conn.keep_alive = if version == 0 { connection.contains("keep-alive") } else { !connection.contains("close") };
        if find("transfer-encoding").is_some() {
            self.service.answered(path, 411);
            let resp = Response::text(411, "chunked request bodies are not accepted; send Content-Length\n");
            return answer_and_close(conn, resp, now, limits.write_timeout);
        }
        let content_length = match find("content-length") {
            None => 0,
            Some(v) => match v.parse::<usize>() {
                Ok(n) => n,
                Err(_) => {
                    self.service.answered(path, 400);
                    let resp = Response::text(400, "Content-Length is not a number\n");
                    return answer_and_close(conn, resp, now, limits.write_timeout);
                }
            },
        };
        let peer = conn.peer.ip();
        let body_start = head_len;
        let have = conn.buf.len() - body_start;
        let first_look = !matches!(conn.phase, Phase::Body);
        if first_look {
            let req = Request { method, path, query, headers: hdrs, peer, body: &[], content_length };
            if let Some(outcome) = self.service.head(&req) {
                // Answered on the head: the body (if any) is never read, so the connection cannot
                // be reused.
                let keep = conn.keep_alive && content_length == 0;
                conn.keep_alive = keep;
                conn.linger = !keep;
                conn.consumed = head_len;
                return self.settle(idx, outcome, now);
            }
            if content_length > MAX_BODY_BYTES {
                self.service.answered(path, 413);
                let resp = Response::text(413, &format!("request body over {MAX_BODY_BYTES} bytes\n"));
                return answer_and_close(conn, resp, now, limits.write_timeout);
            }
            if have < content_length {
                if find("expect").is_some_and(|e| e == "100-continue") {
                    conn.out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
                    let _ = write_out(conn);
                    conn.out.clear();
                    conn.written = 0;
                }
                conn.phase = Phase::Body;
                conn.since = now;
                conn.deadline = now + limits.body_timeout;
                return Parsed::NeedMore;
            }
        } else if have < content_length {
            return Parsed::NeedMore;
        }
        let body = &conn.buf[body_start..body_start + content_length];
        let req = Request { method, path, query, headers: hdrs, peer, body, content_length };
        let outcome = self.service.request(&req);
        conn.consumed = head_len + content_length;
        self.settle(idx, outcome, now)
    }

    /// Puts an outcome on its connection.
    fn settle(&mut self, idx: usize, outcome: Outcome<S::Pending>, now: Instant) -> Parsed {
        let write_timeout = self.limits.write_timeout;
        let Some(conn) = self.conns[idx].as_mut() else { return Parsed::Bad };
        let consumed = std::mem::take(&mut conn.consumed).min(conn.buf.len());
        conn.buf.drain(..consumed);
        match outcome {
            Outcome::Ready(mut resp) => {
                let body = std::mem::take(&mut resp.body);
                queue_response(conn, resp, &body, now, write_timeout);
                self.service.recycle(body);
            }
            Outcome::Wait(p) => {
                conn.phase = Phase::Waiting(p);
                conn.since = now;
                self.waiting += 1;
            }
            Outcome::Delay(mut resp, at) => {
                let body = std::mem::take(&mut resp.body);
                queue_response(conn, resp, &body, now, write_timeout);
                conn.phase = Phase::Delayed;
                conn.since = now;
                conn.deadline = at;
            }
        }
        Parsed::Progress
    }
}

enum Parsed {
    Progress,
    NeedMore,
    Bad,
}

enum ReadState {
    Got,
    Blocked,
    Closed,
    /// TLS failed.
    Refused,
}

enum WriteState {
    Done,
    Blocked,
    Failed,
}

fn answer_and_close<P>(conn: &mut Conn<P>, mut resp: Response, now: Instant, write_timeout: Duration) -> Parsed {
    resp.close = true;
    conn.linger = true;
    conn.buf.clear();
    let body = std::mem::take(&mut resp.body);
    queue_response(conn, resp, &body, now, write_timeout);
    Parsed::Progress
}

fn read_in<P>(conn: &mut Conn<P>, chunk: &mut [u8]) -> ReadState {
    // Never buffer more than a head and a body; a client sending more waits (or is cut off by its
    // deadline) until what it sent is answered.
    if conn.buf.len() >= MAX_HEAD_BYTES + MAX_BODY_BYTES {
        return ReadState::Blocked;
    }
    loop {
        match conn.stream.read(chunk) {
            Ok(0) => return ReadState::Closed,
            Ok(n) => {
                conn.buf.extend_from_slice(&chunk[..n]);
                return ReadState::Got;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return ReadState::Blocked,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.get_ref().is_some_and(|inner| inner.is::<TlsRefused>()) => return ReadState::Refused,
            Err(_) => return ReadState::Closed,
        }
    }
}

fn write_out<P>(conn: &mut Conn<P>) -> WriteState {
    while conn.written < conn.out.len() {
        match conn.stream.write(&conn.out[conn.written..]) {
            Ok(0) => return WriteState::Failed,
            Ok(n) => conn.written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return WriteState::Blocked,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return WriteState::Failed,
        }
    }
    match conn.stream.flush_records() {
        Ok(true) => WriteState::Done,
        Ok(false) => WriteState::Blocked,
        Err(_) => WriteState::Failed,
    }
}

/// Puts `resp` (whose body is `body`) on the connection to be written.
fn queue_response<P>(conn: &mut Conn<P>, resp: Response, body: &[u8], now: Instant, write_timeout: Duration) {
    if resp.close {
        conn.keep_alive = false;
    }
    conn.out.clear();
    conn.written = 0;
    encode_head(&resp, body.len(), conn.keep_alive, &mut conn.out);
    conn.out.extend_from_slice(body);
    conn.phase = Phase::Writing;
    conn.since = now;
    conn.deadline = now + write_timeout;
}

/// Writes status line, headers and body into `out`.
pub fn encode_response(resp: &Response, keep_alive: bool, out: &mut Vec<u8>) {
    encode_head(resp, resp.body.len(), keep_alive, out);
    out.extend_from_slice(&resp.body);
}

/// Writes the status line and headers of an answer with a body of `body_len` bytes.
fn encode_head(resp: &Response, body_len: usize, keep_alive: bool, out: &mut Vec<u8>) {
    let mut len = itoa::Buffer::new();
    let mut code = itoa::Buffer::new();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(code.format(resp.status).as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason(resp.status).as_bytes());
    out.extend_from_slice(b"\r\nContent-Type: ");
    out.extend_from_slice(resp.content_type.as_bytes());
    out.extend_from_slice(b"\r\nContent-Length: ");
    out.extend_from_slice(len.format(body_len).as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in &resp.headers {
        // A value is ours, but never let one end the head early.
        if value.bytes().any(|b| b == b'\r' || b == b'\n') {
            continue;
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if !keep_alive {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_is_one_well_formed_head_and_its_body() {
        let mut out = Vec::new();
        let r = Response::text(429, "slow down\n").with_header("Retry-After", "5").with_header("X-Bad", "a\r\nb");
        encode_response(&r, false, &mut out);
        let text = String::from_utf8(out).expect("utf8");
        assert_eq!(
            text,
            "HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 10\r\n\
             Retry-After: 5\r\nConnection: close\r\n\r\nslow down\n"
        );
    }
}
