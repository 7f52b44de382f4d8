//! The MT5 bridge venue: mt5bot listens, the terminal's Expert Advisor (`deploy/mt5/Mt5Bridge.mq5`)
//! connects, proves it knows `CONTROLLER_SHARED_SECRET`, streams ticks and executes orders.
//!
//! The protocol (JSON lines, one object per line) is specified in `docs/mt5-bridge.md`; this module
//! and the EA simulator in `tests/mt5_bridge.rs` follow it. In short:
//! - mt5bot -> EA on connect: `hello` with a random challenge; EA -> mt5bot: `auth` with
//!   HMAC-SHA256(secret, challenge) in hex. A wrong answer, anything else, or no answer within
//!   `venue.mt5.handshake_timeout` closes the connection and is counted.
//! - mt5bot -> EA: `welcome`, then `order` (fields of MqlTradeRequest) and `ping`.
//! - EA -> mt5bot: `snapshot` (deals and resting orders with mt5bot's magic, right after
//!   `welcome`), `tick`, `result` (an MqlTradeResult retcode per order), `deal` (a later fill of a
//!   resting order), `pong`, `account`, `error`.
//!
//! Every order carries its id (the signal id) in `comment` and the configured `magic`. After a
//! reconnect no order is sent until the new session's snapshot has reconciled the orders in
//! flight: deals found for an order are booked (once per deal ticket), an order resting at the
//! terminal stays in flight, and an order the terminal has no trace of is sent again if still
//! younger than `queue.max_wait`, else refused. A new authenticated session replaces an older one
//! (the terminal restarted, or the old TCP connection is half-open).

use std::io::{self, Read, Write};

use mio::net::TcpListener;
use mio::{Interest, Registry, Token};

use crate::config::Mt5Config;

use crate::domain::types::{Nanos, OrderRequest, Side, StopKind, SymbolId, Tick, VenueEvent, WEEK_SECONDS};
use crate::domain::types::{OrderKind, TradeMode};
use crate::secrets::Secret;
use crate::support::auth::{constant_time_eq, hmac_sha256};
use crate::support::encoding::hex;
use crate::support::names::QTY_EPSILON;
use crate::support::throttle::Throttle;
use crate::support::tls::{TlsRefused, TlsSource, Transport};
use crate::telemetry::metrics::Mt5Metrics;

use crate::domain::venue::Venue;

mod protocol;

pub use self::protocol::{retcode, PROTOCOL_VERSION};
use self::protocol::{Ended, Inbound, Keyed, SnapshotClosed, SnapshotDeal, SnapshotOrder, SymbolSpec};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConnState {
    Handshake {
        deadline: Nanos,
    },
    /// Authenticated; `synced` once its snapshot has reconciled the orders in flight.
    Active {
        synced: bool,
    },
}

#[derive(Debug)]
struct Conn {
    /// Plain TCP, or TLS with `venue.mt5.tls`.
    stream: Transport,
    peer: String,
    state: ConnState,
    challenge: String,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
    readable: bool,
    last_recv: Nanos,
    last_sent: Nanos,
    session: u64,
    closing: Option<&'static str>,
}

/// Most deals remembered per order (MT5 fills an order in a handful of deals at most).
const MAX_DEALS: usize = 16;

#[derive(Debug, Clone, Copy)]
struct Mt5Order {
    req: OrderRequest,
    created: Nanos,
    /// The EA session it was last sent on.
    session: u64,
    filled: f64,
    accepted: bool,
    deals: [u64; MAX_DEALS],
    deal_count: usize,
    /// No trace of it at the terminal after a reconnect: to send again or refuse.
    unknown: bool,
    /// Restored from a checkpoint: its age is unknown, so it is never sent again.
    restored: bool,
    /// The terminal says the order ended (cancelled, expired, rejected) after filling this
    /// volume; it leaves the books once its deals have been booked.
    ended: Option<(Ended, f64)>,
}

impl Mt5Order {
    fn seen(&self, deal: u64) -> bool {
        self.deals[..self.deal_count].contains(&deal)
    }
}

/// A price in JSON with at most `.1` decimals, without trailing zeros (0 stands for none).
struct PriceText(f64, usize);

impl std::fmt::Display for PriceText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0 == 0.0 || !self.0.is_finite() {
            return f.write_str("0");
        }
        let mut buf = [0u8; 64];
        let mut w = std::io::Cursor::new(&mut buf[..]);
        if std::io::Write::write_fmt(&mut w, format_args!("{:.*}", self.1, self.0)).is_err() {
            return write!(f, "{}", self.0);
        }
        let n = w.position() as usize;
        let text = std::str::from_utf8(&buf[..n]).unwrap_or("0");
        let text = if text.contains('.') { text.trim_end_matches('0').trim_end_matches('.') } else { text };
        f.write_str(text)
    }
}

/// MqlTradeRequest.comment holds at most 31 characters; the order id travels in it.
const MAX_COMMENT: usize = 31;
const READ_CHUNK: usize = 64 * 1024;

/// The MT5 bridge venue.
#[derive(Debug)]
pub struct Mt5Venue {
    cfg: Mt5Config,
    secret: Secret,
    listener: TcpListener,
    registry: Option<Registry>,
    first_token: usize,
    slots: Vec<Option<Conn>>,
    listener_ready: bool,
    active: Option<usize>,
    sessions: u64,
    symbols: Vec<String>,
    /// `protection.account_currency`, to compare with the account's, and whether a mismatch
    /// was logged.
    account_currency: Option<String>,
    currency_mismatch: bool,
    orders: Vec<Mt5Order>,
    capacity: usize,
    events: Vec<VenueEvent>,
    ticks: Vec<Tick>,
    tick_at: usize,
    next_exec_id: u64,
    max_wait: Nanos,
    chunk: Box<[u8]>,
    /// The line being handled, copied out of the connection's buffer (reused).
    line: Vec<u8>,
    metrics: Mt5Metrics,
    /// Lines any client can cause at will, at most one per interval each.
    connect_log: Throttle,
    close_log: Throttle,
    /// Signals queued before the restart, until the first snapshot says whether the terminal
    /// executed any of them (see [`Venue::restore_queued`]).
    maybe_sent: Vec<(crate::domain::types::SignalId, SymbolId, Side)>,
    /// The highest deal ticket booked (kept in checkpoints), and, after a restore, the one the
    /// checkpoint had: deals above it in the first snapshot may be of orders the crash hid.
    last_deal: u64,
    restored_last_deal: Option<u64>,
    /// Per symbol: the terminal's trading sessions from its last snapshot, as windows of seconds
    /// from Sunday 00:00 UTC.
    trade_hours: Vec<Option<Vec<(u32, u32)>>>,
    /// `venue_refusals_total{venue="mt5"}` per [`retcode::REFUSALS`] entry, then `other`.
    refusals: Vec<prometheus::IntCounter>,
    /// Per symbol: its trading rules from the last snapshot that had them.
    specs: Vec<Option<SymbolSpec>>,
    /// The pages of a snapshot so far, until its last (`more` left out).
    pages: Option<Pages>,
    /// `venue.mt5.tls`: every connection speaks TLS with this certificate.
    tls: Option<TlsSource>,
}

/// What the pages of a snapshot carried so far.
#[derive(Debug, Default)]
struct Pages {
    deals: Vec<SnapshotDeal<'static>>,
    orders: Vec<SnapshotOrder<'static>>,
    history: Vec<SnapshotClosed<'static>>,
}

impl Mt5Venue {
    /// The account currency the config measures PnL in (`protection.account_currency`): an
    /// account in another is logged as an error.
    pub fn expect_account_currency(mut self, currency: Option<&str>) -> Mt5Venue {
        self.account_currency = currency.map(str::to_owned);
        self
    }

    /// Binds the listener. The EA connects to it; nothing else happens until the first `poll`.
    pub fn bind(
        cfg: &Mt5Config,
        secret: Secret,
        symbols: &[String],
        max_open_orders: usize,
        max_wait: std::time::Duration,
        metrics: Mt5Metrics,
    ) -> io::Result<Mt5Venue> {
        let listener = TcpListener::bind(cfg.listen)?;
        // Not known to be refused until the terminal says so.
        metrics.trade_allowed.set(1);
        let refusals = retcode::REFUSALS
            .iter()
            .map(|r| r.1)
            .chain([retcode::OTHER])
            .map(|label| metrics.refusals.with_label_values(&["mt5", label]))
            .collect();
        Ok(Mt5Venue {
            cfg: cfg.clone(),
            secret,
            listener,
            registry: None,
            first_token: 0,
            slots: Vec::new(),
            listener_ready: false,
            active: None,
            sessions: 0,
            symbols: symbols.to_vec(),
            account_currency: None,
            currency_mismatch: false,
            orders: Vec::with_capacity(max_open_orders),
            capacity: max_open_orders,
            events: Vec::with_capacity(2 * max_open_orders + 16),
            ticks: Vec::with_capacity(4096),
            tick_at: 0,
            next_exec_id: 0,
            max_wait: max_wait.as_nanos() as Nanos,
            chunk: vec![0u8; READ_CHUNK].into_boxed_slice(),
            line: Vec::with_capacity(4096),
            metrics,
            connect_log: Throttle::default(),
            close_log: Throttle::default(),
            maybe_sent: Vec::new(),
            last_deal: 0,
            restored_last_deal: None,
            trade_hours: vec![None; symbols.len()],
            refusals,
            specs: vec![None; symbols.len()],
            pages: None,
            tls: None,
        })
    }

    /// Every connection speaks TLS with `tls` (`venue.mt5.tls`), the handshake bounded by
    /// `venue.mt5.handshake_timeout` like the challenge's answer.
    pub fn with_tls(mut self, tls: Option<TlsSource>) -> Mt5Venue {
        self.tls = tls;
        self
    }

    /// The address the EA connects to.
    pub fn local_addr(&self) -> io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    fn synced(&self) -> bool {
        self.active
            .and_then(|i| self.slots.get(i)?.as_ref())
            .is_some_and(|c| c.state == ConnState::Active { synced: true } && c.closing.is_none())
    }

    /// Connections still waiting to authenticate.
    fn handshakes(&self) -> usize {
        self.slots.iter().flatten().filter(|c| matches!(c.state, ConnState::Handshake { .. })).count()
    }

    /// Makes room for a new connection: the oldest one still in its handshake goes, after what it
    /// sent is read (an answer already there authenticates it instead). Returns whether a slot is
    /// free and the handshakes are below `venue.mt5.max_handshakes`.
    fn make_room(&mut self, now: Nanos) -> bool {
        for _ in 0..4 {
            let free = self.slots.iter().any(Option::is_none);
            if free && self.handshakes() < self.cfg.max_handshakes {
                return true;
            }
            let oldest = self
                .slots
                .iter()
                .enumerate()
                .filter_map(|(i, c)| match c.as_ref()?.state {
                    ConnState::Handshake { deadline } => Some((deadline, i)),
                    ConnState::Active { .. } => None,
                })
                .min()
                .map(|(_, i)| i);
            let Some(i) = oldest else { return free };
            if let Some(why) = self.read(i, now) {
                self.close(i, why);
                continue;
            }
            if matches!(self.slots[i].as_ref().map(|c| c.state), Some(ConnState::Handshake { .. })) {
                self.metrics.handshake_evicted.inc();
                self.close(
                    i,
                    "evicted unauthenticated: a newer connection needed its place (venue.mt5.max_handshakes)",
                );
            }
        }
        self.slots.iter().any(Option::is_none) && self.handshakes() < self.cfg.max_handshakes
    }

    fn accept(&mut self, now: Nanos) {
        if self.registry.is_none() {
            return;
        }
        // At most half the handshake slots per turn: every connection accepted lives through at
        // least one more read pass before a flood can evict it. The rest wait in the backlog for
        // the next turn, which comes at once (`next_deadline`).
        let mut budget = (self.cfg.max_handshakes / 2).max(1);
        loop {
            if budget == 0 {
                return;
            }
            budget -= 1;
            let (stream, peer) = match self.listener.accept() {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.listener_ready = false;
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    if let Some(held) = self.connect_log.allow(std::time::Instant::now()) {
                        log::warn!("mt5: accept failed: {e}{}", self.connect_log.suffix(held));
                    }
                    self.listener_ready = false;
                    return;
                }
            };
            if !self.make_room(now) {
                self.metrics.handshake_evicted.inc();
                continue;
            }
            let Some(slot) = self.slots.iter().position(Option::is_none) else { continue };
            let tls = self.tls.as_mut().map(|t| std::sync::Arc::clone(t.config(std::time::Instant::now())));
            let mut stream = match Transport::new(stream, tls.as_ref()) {
                Ok(s) => s,
                Err(e) => {
                    log::warn!("mt5: cannot start TLS with {peer}: {e}");
                    continue;
                }
            };
            let Some(registry) = &self.registry else { return };
            let token = Token(self.first_token + 1 + slot);
            if let Err(e) = registry.register(stream.socket(), token, Interest::READABLE) {
                log::warn!("mt5: cannot watch the connection from {peer}: {e}");
                continue;
            }
            let mut bytes = [0u8; 32];
            if rand::TryRng::try_fill_bytes(&mut rand::rngs::SysRng, &mut bytes).is_err() {
                log::error!("mt5: the OS random generator failed; refusing {peer}");
                let _ = registry.deregister(stream.socket());
                continue;
            }
            let challenge = hex(&bytes);
            let mut conn = Conn {
                stream,
                peer: peer.to_string(),
                state: ConnState::Handshake { deadline: now + self.cfg.handshake_timeout.as_nanos() as Nanos },
                challenge,
                rbuf: Vec::with_capacity(4096),
                wbuf: Vec::with_capacity(4096),
                readable: true,
                last_recv: now,
                last_sent: now,
                session: 0,
                closing: None,
            };
            let _ = writeln!(
                conn.wbuf,
                r#"{{"type":"hello","version":{PROTOCOL_VERSION},"challenge":"{}"}}"#,
                conn.challenge
            );
            flush(&mut conn);
            if let Some(held) = self.connect_log.allow(std::time::Instant::now()) {
                log::info!(
                    "mt5: terminal connecting from {peer}; waiting for its answer to the challenge{}",
                    self.connect_log.suffix(held)
                );
            }
            self.slots[slot] = Some(conn);
        }
    }

    fn close(&mut self, i: usize, why: &str) {
        let Some(mut conn) = self.slots.get_mut(i).and_then(Option::take) else { return };
        flush(&mut conn);
        if let Some(r) = &self.registry {
            let _ = r.deregister(conn.stream.socket());
        }
        if self.active == Some(i) {
            self.active = None;
            log::warn!(
                "mt5: terminal session {} from {} closed ({why}); {} orders in flight wait for the next session",
                conn.session,
                conn.peer,
                self.orders.len()
            );
        } else if conn.session > 0 {
            log::warn!("mt5: connection from {} closed ({why})", conn.peer);
        } else if let Some(held) = self.close_log.allow(std::time::Instant::now()) {
            // Before authentication anyone can cause this line, as often as they like.
            log::warn!(
                "mt5: unauthenticated connection from {} closed ({why}){}",
                conn.peer,
                self.close_log.suffix(held)
            );
        }
    }

    /// Reads what is there and handles every whole line; returns why to close, if so.
    fn read(&mut self, i: usize, now: Nanos) -> Option<&'static str> {
        loop {
            let conn = self.slots[i].as_mut()?;
            match conn.stream.read(&mut self.chunk) {
                Ok(0) => return Some("the terminal closed the connection"),
                Ok(n) => {
                    conn.rbuf.extend_from_slice(&self.chunk[..n]);
                    conn.last_recv = now;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    conn.readable = false;
                    return None;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.get_ref().is_some_and(|i| i.is::<TlsRefused>()) => {
                    self.metrics.tls_refused.inc();
                    return Some("TLS handshake failed (not TLS, or a client certificate venue.mt5.tls does not take)");
                }
                Err(_) => return Some("read failed"),
            }
            if let Some(why) = self.lines(i, now) {
                return Some(why);
            }
        }
    }

    fn lines(&mut self, i: usize, now: Nanos) -> Option<&'static str> {
        let mut line = std::mem::take(&mut self.line);
        let mut start = 0;
        let result = loop {
            let Some(conn) = self.slots[i].as_mut() else { break None };
            // An authenticated terminal's snapshot lists a day of deals: it gets a bound of its
            // own, so a busy account can always reconnect.
            let (max, what) = match conn.state {
                ConnState::Active { synced: false } => (
                    self.cfg.max_snapshot_bytes.max(self.cfg.max_line_bytes),
                    "a snapshot longer than venue.mt5.max_snapshot_bytes",
                ),
                _ => (self.cfg.max_line_bytes, "a line longer than venue.mt5.max_line_bytes"),
            };
            let Some(nl) = conn.rbuf[start..].iter().position(|&b| b == b'\n') else {
                if conn.rbuf.len() - start > max {
                    self.metrics.line_too_long.inc();
                    break Some(what);
                }
                break None;
            };
            if nl > max {
                self.metrics.line_too_long.inc();
                break Some(what);
            }
            line.clear();
            line.extend_from_slice(&conn.rbuf[start..start + nl]);
            start += nl + 1;
            if let Some(why) = self.line(i, &line, now) {
                break Some(why);
            }
        };
        self.line = line;
        if let Some(c) = self.slots[i].as_mut() {
            c.rbuf.drain(..start.min(c.rbuf.len()));
        }
        result
    }

    fn line(&mut self, i: usize, line: &[u8], now: Nanos) -> Option<&'static str> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            return None;
        }
        let msg: Inbound<'_> = match serde_json::from_slice(line) {
            Ok(m) => m,
            Err(e) => {
                let conn = self.slots[i].as_mut()?;
                if matches!(conn.state, ConnState::Handshake { .. }) {
                    self.metrics.auth_failed.inc();
                    return Some("not the protocol (bad JSON before authentication)");
                }
                self.metrics.bad_line.inc();
                log::warn!("mt5: bad line from the terminal ({e}); ignored");
                let _ = writeln!(conn.wbuf, r#"{{"type":"error","error":"not a JSON object of the bridge protocol"}}"#);
                return None;
            }
        };
        let state = self.slots[i].as_ref()?.state;
        match state {
            ConnState::Handshake { .. } => self.on_auth(i, &msg),
            ConnState::Active { .. } => {
                self.on_message(i, &msg, now);
                None
            }
        }
    }

    fn on_auth(&mut self, i: usize, msg: &Inbound<'_>) -> Option<&'static str> {
        let conn = self.slots[i].as_mut()?;
        let expected = hex(&hmac_sha256(self.secret.expose().as_bytes(), conn.challenge.as_bytes()));
        let given = msg.hmac.as_deref().unwrap_or("");
        if msg.kind != "auth" || !constant_time_eq(given.to_ascii_lowercase().as_bytes(), expected.as_bytes()) {
            self.metrics.auth_failed.inc();
            let _ = writeln!(conn.wbuf, r#"{{"type":"error","error":"authentication failed"}}"#);
            return Some("authentication failed");
        }
        self.sessions += 1;
        if self.sessions > 1 {
            self.metrics.reconnects.inc();
        }
        conn.session = self.sessions;
        conn.state = ConnState::Active { synced: false };
        let symbols = serde_json::to_string(&self.symbols).unwrap_or_else(|_| "[]".into());
        let _ = writeln!(
            conn.wbuf,
            r#"{{"type":"welcome","session":{},"magic":{},"symbols":{symbols}}}"#,
            conn.session, self.cfg.magic
        );
        log::info!("mt5: terminal at {} authenticated (session {}); waiting for its snapshot", conn.peer, conn.session);
        let mode = msg.margin_mode.as_deref();
        let nets = msg.closes_by_ticket == Some(true);
        self.metrics.hedging.set(i64::from(mode == Some("hedging") && !nets));
        match mode {
            Some("hedging") if nets => log::info!(
                "mt5: the account is a hedging account; the Expert Advisor closes mt5bot's positions by ticket, \
                 oldest first, so the account stays net as mt5bot's books are"
            ),
            Some("hedging") => log::error!(
                "mt5: the account is a hedging account (ACCOUNT_MARGIN_MODE_RETAIL_HEDGING) and this Expert Advisor \
                 does not close positions by ticket (an older Mt5Bridge): an order against a position opens a second \
                 one instead of closing it, so the account and mt5bot's books part (a flatten opens hedges). Install \
                 the Mt5Bridge.mq5 of this release, or trade on a netting account"
            ),
            Some("netting") | Some("exchange") | None => {}
            Some(other) => log::warn!("mt5: the terminal reports an unknown margin mode {other:?}"),
        }
        // Pages of an earlier session's snapshot belong to it, not to this one.
        self.pages = None;
        if let Some(old) = self.active.replace(i) {
            if old != i {
                self.close(old, "replaced by a newer authenticated session");
            }
        }
        None
    }

    fn on_message(&mut self, i: usize, m: &Inbound<'_>, now: Nanos) {
        match &*m.kind {
            "tick" => {
                let sym = m.symbol.as_deref().and_then(|s| self.symbols.iter().position(|n| n == s));
                match (sym, m.bid, m.ask) {
                    (Some(s), Some(bid), Some(ask))
                        if bid.is_finite() && ask.is_finite() && bid > 0.0 && ask >= bid =>
                    {
                        self.ticks.push(Tick { symbol: s as SymbolId, bid, ask, recv_ns: now });
                    }
                    (None, ..) => {} // a symbol mt5bot does not trade
                    _ => self.bad(i, "tick needs symbol, bid > 0 and ask >= bid"),
                }
            }
            "result" => {
                let (Some(id), Some(code)) = (m.id.as_deref(), m.retcode) else {
                    return self.bad(i, "result needs id and retcode");
                };
                let Some(o) = self.orders.iter().position(|o| o.req.client_id.as_str() == id) else {
                    log::warn!("mt5: result {code} for an order not in flight here ({id}); ignored");
                    return;
                };
                self.on_result(o, code, m);
            }
            "deal" if m.reason.is_some() => self.on_stop_deal(i, m),
            "deal" => {
                let (Some(id), Some(deal), Some(volume), Some(price)) = (m.id.as_deref(), m.deal, m.volume, m.price)
                else {
                    return self.bad(i, "deal needs id, deal, volume and price");
                };
                if let Some(o) = self.orders.iter().position(|o| o.req.client_id.as_str() == id) {
                    self.book_deal(o, deal, volume, price, m.commission);
                    self.finish_if_filled(o);
                }
            }
            "order_closed" => {
                let ended = m.state.as_deref().and_then(Ended::parse);
                let (Some(id), Some(ended), Some(filled)) = (m.id.as_deref(), ended, m.volume_filled) else {
                    return self
                        .bad(i, "order_closed needs id, state (canceled, expired or rejected) and volume_filled");
                };
                if !(filled >= 0.0 && filled.is_finite()) {
                    return self.bad(i, "order_closed needs volume_filled >= 0");
                }
                match self.orders.iter().position(|o| o.req.client_id.as_str() == id) {
                    Some(o) => self.end_order(o, ended, filled),
                    None => log::debug!("mt5: order {id} {} at the terminal, not in flight here", ended.as_str()),
                }
            }
            "snapshot" => self.on_snapshot(i, m, now),
            "account" => match m.balance {
                Some(balance) if balance.is_finite() && balance > 0.0 => {
                    self.events.push(VenueEvent::Balance { balance });
                    let figures = [Some(balance), m.equity, m.margin, m.margin_free];
                    for (g, v) in self.metrics.account.iter().zip(figures) {
                        if let Some(v) = v.filter(|v| v.is_finite()) {
                            g.set(v);
                        }
                    }
                    if let (Some(theirs), Some(ours)) = (m.currency.as_deref(), self.account_currency.as_deref()) {
                        let differs = theirs != ours;
                        if differs && !self.currency_mismatch {
                            log::error!(
                                "mt5: the account is in {theirs} but protection.account_currency is {ours}: every \
                                 breaker limit and PnL is read in the wrong currency; set protection.account_currency: {theirs}"
                            );
                        }
                        self.currency_mismatch = differs;
                    }
                    if let Some(allowed) = m.trade_allowed {
                        let was = self.metrics.trade_allowed.get();
                        self.metrics.trade_allowed.set(i64::from(allowed));
                        if !allowed && was != 0 {
                            log::error!(
                                "mt5: the terminal does not allow trading (Algo Trading off in the terminal or the EA, or \
                                 the account may not trade): every order would be refused"
                            );
                        } else if allowed && was == 0 {
                            log::info!("mt5: the terminal allows trading again");
                        }
                    }
                }
                _ => self.bad(i, "account needs a balance greater than 0"),
            },
            "pong" => {}
            "error" => log::warn!("mt5: the terminal reports: {}", m.error.as_deref().unwrap_or("(no text)")),
            _ => self.bad(i, "unknown type"),
        }
    }

    /// Deals newer than the checkpoint's last for orders not in flight here: sent by the process
    /// before a crash whose journal entries were lost. One adopted fill per order id (volumes
    /// summed, prices averaged), booked only if the engine does not know the id, so deals of
    /// orders it already booked book nothing.
    fn adopt_unknown_deals(
        &mut self,
        deals: &[SnapshotDeal<'_>],
        last: u64,
        handled: &[(crate::domain::types::SignalId, SymbolId, Side)],
    ) {
        // A snapshot may list many deals: look ids up in sets, not by walking the lists per deal.
        let known: std::collections::HashSet<String> = self
            .orders
            .iter()
            .map(|o| o.req.client_id.as_str().to_owned())
            .chain(handled.iter().map(|h| h.0.as_str().to_owned()))
            .collect();
        let mut found: Vec<(crate::domain::types::SignalId, SymbolId, Side, f64, f64)> = Vec::new();
        let mut index: std::collections::HashMap<crate::domain::types::SignalId, usize> =
            std::collections::HashMap::new();
        for d in deals.iter().filter(|d| d.deal > last) {
            self.last_deal = self.last_deal.max(d.deal);
            // In flight here (settled below), or a queued signal booked just above.
            if known.contains(d.key()) {
                continue;
            }
            let symbol = d.symbol.as_deref().and_then(|s| self.symbols.iter().position(|n| n == s));
            let side = d.side.as_deref().and_then(Side::parse);
            // A stop's deal: booked by `stop_deals`.
            if d.reason.is_some() {
                continue;
            }
            let Some(id) = crate::domain::types::SignalId::parse(d.key()) else { continue };
            let (Some(symbol), Some(side)) = (symbol, side) else {
                log::warn!(
                    "mt5: deal {} of order {} is not in flight here and the snapshot does not give its symbol and type; not booked (update the Expert Advisor)",
                    d.deal,
                    d.key()
                );
                continue;
            };
            if !(d.volume > 0.0 && d.price > 0.0 && d.price.is_finite()) {
                continue;
            }
            match index.get(&id) {
                Some(&i) => {
                    let f = &mut found[i];
                    f.4 = (f.4 * f.3 + d.price * d.volume) / (f.3 + d.volume);
                    f.3 += d.volume;
                }
                None => {
                    index.insert(id, found.len());
                    found.push((id, symbol as SymbolId, side, d.volume, d.price));
                }
            }
        }
        for (id, symbol, side, qty, price) in found {
            self.events.push(VenueEvent::Adopted { client_id: id, symbol, side, qty, price, only_if_unknown: true });
        }
    }

    /// A deal a stop-loss or take-profit the broker holds made: booked by its ticket, once.
    fn on_stop_deal(&mut self, i: usize, m: &Inbound<'_>) {
        let Some(stop) = m.reason.as_deref().and_then(StopKind::parse) else {
            return self.bad(i, "deal reason must be sl or tp");
        };
        let symbol = m.symbol.as_deref().and_then(|s| self.symbols.iter().position(|n| n == s));
        let side = m.deal_type.as_deref().and_then(Side::parse);
        match (m.deal, symbol, side, m.volume, m.price) {
            (Some(ticket), Some(symbol), Some(side), Some(qty), Some(price))
                if qty > 0.0 && qty.is_finite() && price > 0.0 && price.is_finite() =>
            {
                self.last_deal = self.last_deal.max(ticket);
                self.events.push(VenueEvent::StopExecuted {
                    stop,
                    ticket,
                    symbol: symbol as SymbolId,
                    side,
                    qty,
                    price,
                });
            }
            (_, None, ..) if m.symbol.is_some() => {} // a symbol mt5bot does not trade
            _ => self.bad(i, "a stop's deal needs deal, symbol, deal_type, volume > 0 and price > 0"),
        }
    }

    /// A snapshot's deals made by broker-held stops after deal `since`: booked by their tickets
    /// (the engine books each ticket once, so a snapshot repeating one books nothing).
    fn stop_deals(&mut self, deals: &[SnapshotDeal<'_>], since: u64) {
        for d in deals.iter().filter(|d| d.deal > since) {
            let Some(stop) = d.reason.as_deref().and_then(StopKind::parse) else { continue };
            let symbol = d.symbol.as_deref().and_then(|s| self.symbols.iter().position(|n| n == s));
            let Some(side) = d.side.as_deref().and_then(Side::parse) else { continue };
            if let Some(symbol) = symbol.filter(|_| d.volume > 0.0 && d.price > 0.0 && d.price.is_finite()) {
                self.events.push(VenueEvent::StopExecuted {
                    stop,
                    ticket: d.deal,
                    symbol: symbol as SymbolId,
                    side,
                    qty: d.volume,
                    price: d.price,
                });
                self.commission(symbol as SymbolId, d.commission);
            }
        }
    }

    fn bad(&mut self, i: usize, what: &str) {
        self.metrics.bad_line.inc();
        log::warn!("mt5: bad message from the terminal: {what}");
        if let Some(c) = self.slots[i].as_mut() {
            let _ = writeln!(c.wbuf, r#"{{"type":"error","error":"{what}"}}"#);
        }
    }

    fn on_result(&mut self, o: usize, code: u32, m: &Inbound<'_>) {
        let key = self.orders[o].req.key;
        match code {
            retcode::DONE | retcode::DONE_PARTIAL => {
                if !self.orders[o].accepted {
                    self.orders[o].accepted = true;
                    self.events.push(VenueEvent::Accepted { key });
                }
                if let (Some(deal), Some(volume), Some(price)) = (m.deal, m.volume, m.price) {
                    self.book_deal(o, deal, volume, price, m.commission);
                }
                if self.finish_if_filled(o) {
                    return;
                }
                if code == retcode::DONE_PARTIAL {
                    // Filling IOC: the rest of a partial execution is gone.
                    self.events.push(VenueEvent::Cancelled { key });
                    self.orders.swap_remove(o);
                }
            }
            retcode::PLACED => {
                if !self.orders[o].accepted {
                    self.orders[o].accepted = true;
                    self.events.push(VenueEvent::Accepted { key });
                }
            }
            code => {
                if let Some(c) = self.refusals.get(retcode::index(code)) {
                    c.inc();
                }
                let comment = m.comment.as_deref().map(|c| format!(" ({c})")).unwrap_or_default();
                let id = self.orders[o].req.client_id;
                if retcode::needs_operator(code) {
                    log::error!(
                        "mt5: order {id} refused by the terminal: retcode {code}, {}{comment}; this needs the operator \
                         (Algo Trading switched on in the terminal and the account's margin), not a retry",
                        retcode::reason(code)
                    );
                } else {
                    log::warn!(
                        "mt5: order {id} refused by the terminal: retcode {code}, {}{comment}",
                        retcode::reason(code)
                    );
                }
                self.events.push(VenueEvent::Rejected { key, reason: retcode::reason(code) });
                self.orders.swap_remove(o);
            }
        }
    }

    /// Books one deal of order `o`, once per ticket; `commission` as MT5 reports it (negative
    /// for a charge).
    fn book_deal(&mut self, o: usize, deal: u64, volume: f64, price: f64, commission: Option<f64>) {
        // Deal 0 is no deal: a synchronous OrderSend that placed a pending order (or whose market
        // deal comes later) answers 10009 with the order's ticket and deal 0. Only deals book fills.
        if deal == 0 {
            return;
        }
        self.last_deal = self.last_deal.max(deal);
        let ord = &mut self.orders[o];
        if ord.seen(deal) || !(volume > 0.0 && price > 0.0 && price.is_finite()) {
            return;
        }
        if ord.deal_count < MAX_DEALS {
            ord.deals[ord.deal_count] = deal;
            ord.deal_count += 1;
        }
        let qty = volume.min(ord.req.qty - ord.filled);
        if qty <= QTY_EPSILON {
            return;
        }
        ord.filled += qty;
        if !ord.accepted {
            ord.accepted = true;
            self.events.push(VenueEvent::Accepted { key: ord.req.key });
        }
        self.next_exec_id += 1;
        let symbol = ord.req.symbol;
        self.events.push(VenueEvent::Fill { key: ord.req.key, exec_id: self.next_exec_id, qty, price });
        self.commission(symbol, commission);
    }

    /// A deal's commission, after its fill: MT5 reports a charge as negative.
    fn commission(&mut self, symbol: SymbolId, commission: Option<f64>) {
        if let Some(c) = commission.filter(|c| c.is_finite() && *c != 0.0) {
            self.events.push(VenueEvent::Commission { symbol, amount: -c });
        }
    }

    /// Removes the order when fully filled, or when the terminal ended it and every deal it
    /// made there is booked (the rest is then cancelled); true if it was removed.
    fn finish_if_filled(&mut self, o: usize) -> bool {
        let ord = &self.orders[o];
        if ord.filled + QTY_EPSILON >= ord.req.qty {
            self.orders.swap_remove(o);
            return true;
        }
        let Some((ended, there)) = ord.ended else { return false };
        if ord.filled + QTY_EPSILON < there {
            return false;
        }
        let key = ord.req.key;
        self.events.push(if ended == Ended::Rejected && ord.filled < QTY_EPSILON {
            VenueEvent::Rejected { key, reason: "rejected by the trade server after it was placed" }
        } else {
            VenueEvent::Cancelled { key }
        });
        self.orders.swap_remove(o);
        true
    }

    /// The terminal says order `o` ended there (cancelled in the terminal or by the broker,
    /// expired, rejected after placement) after filling `filled`: what is not filled is no longer
    /// in flight, and it is never sent again. Deals not booked yet are waited for; the order
    /// leaves the books with the last of them.
    fn end_order(&mut self, o: usize, ended: Ended, filled: f64) {
        let ord = &mut self.orders[o];
        if ord.ended.is_some() {
            return;
        }
        ord.ended = Some((ended, filled));
        if let Some(c) = self.metrics.ended.get(ended as usize) {
            c.inc();
        }
        let (id, booked) = (ord.req.client_id, ord.filled);
        if filled > booked + QTY_EPSILON {
            log::warn!(
                "mt5: order {id} {} at the terminal after filling {filled}; {booked} booked here so far, the rest of \
                 its deals are awaited",
                ended.as_str()
            );
        } else {
            log::warn!(
                "mt5: order {id} {} at the terminal after filling {filled}; the rest is cancelled",
                ended.as_str()
            );
        }
        self.finish_if_filled(o);
    }

    /// The terminal's session times (`SymbolInfoSessionTrade`, in server time, with the server's
    /// offset from UTC), kept per symbol in UTC week seconds for the engine to compare with its
    /// calendars. A window that makes no sense is left out and logged.
    fn on_session_times(&mut self, m: &Inbound<'_>) {
        let (Some(sessions), Some(offset)) = (m.sessions.as_ref(), m.server_offset) else { return };
        if offset.abs() > 14 * 3600 {
            log::warn!(
                "mt5: the terminal's server_offset {offset} s is not a time zone offset; its session times are ignored"
            );
            return;
        }
        for (name, windows) in sessions {
            let Some(symbol) = self.symbols.iter().position(|n| n == name.as_ref()) else { continue };
            let mut week = Vec::with_capacity(windows.len() + 1);
            for &(day, from, to) in windows {
                let to = if to == 0 { 86_400 } else { to };
                if day > 6 || from >= to || to > 86_400 {
                    log::warn!("mt5: {name}: session [{day}, {from}, {to}] from the terminal is not a window of one weekday; left out");
                    continue;
                }
                let start =
                    (i64::from(day) * 86_400 + i64::from(from) - offset).rem_euclid(i64::from(WEEK_SECONDS)) as u32;
                let end = start + (to - from);
                if end <= WEEK_SECONDS {
                    week.push((start, end));
                } else {
                    week.push((start, WEEK_SECONDS));
                    week.push((0, end - WEEK_SECONDS));
                }
            }
            self.trade_hours[symbol] = Some(week);
            self.events.push(VenueEvent::SessionTimes { symbol: symbol as SymbolId });
        }
    }

    /// The symbols' trading rules: prices are rounded to their ticks and volumes checked against
    /// them before an order goes out. Figures that make no sense are left out with a warning.
    fn on_symbol_specs(&mut self, m: &Inbound<'_>) {
        for (name, spec) in m.specs.iter().flatten() {
            let Some(symbol) = self.symbols.iter().position(|n| n == name.as_ref()) else { continue };
            if spec.is_sane() {
                if self.specs[symbol].is_none_or(|old| old.trade_mode != spec.trade_mode) {
                    match spec.trade_mode {
                        TradeMode::Full => {}
                        mode => {
                            log::warn!("mt5: {name}: {}: signals it does not let through are refused", mode.refusal())
                        }
                    }
                }
                let wanted = match self.cfg.type_filling {
                    crate::domain::types::Filling::Fok => 1,
                    crate::domain::types::Filling::Ioc => 2,
                    crate::domain::types::Filling::Return => 0,
                };
                if let Some(bits) = spec.filling.filter(|b| wanted != 0 && b & wanted == 0) {
                    log::warn!(
                        "mt5: {name}: the symbol does not take venue.mt5.type_filling {} (it takes {}); the Expert Advisor \
                         sends the symbol's own mode instead",
                        self.cfg.type_filling.as_str(),
                        match bits {
                            1 => "fok",
                            2 => "ioc",
                            3 => "fok and ioc",
                            _ => "return only",
                        }
                    );
                }
                self.specs[symbol] = Some(*spec);
            } else {
                log::warn!("mt5: {name}: the terminal's symbol specs {spec:?} make no sense; orders go out unchecked");
            }
        }
    }

    /// One page of the snapshot: kept while `more` says others follow (each page is a line within
    /// `venue.mt5.max_line_bytes`; all of them together within `max_snapshot_bytes`), settled
    /// with the last. Orders wait until then.
    fn on_snapshot(&mut self, i: usize, m: &Inbound<'_>, now: Nanos) {
        self.on_session_times(m);
        self.on_symbol_specs(m);
        let page_deals = m.deals.as_deref().unwrap_or_default();
        let page_orders = m.orders.as_deref().unwrap_or_default();
        let page_history = m.history.as_deref().unwrap_or_default();
        if m.more == Some(true) || self.pages.is_some() {
            let pages = self.pages.get_or_insert_with(Default::default);
            pages.deals.extend(page_deals.iter().cloned().map(SnapshotDeal::into_owned));
            pages.orders.extend(page_orders.iter().cloned().map(SnapshotOrder::into_owned));
            pages.history.extend(page_history.iter().cloned().map(SnapshotClosed::into_owned));
            // A deal takes some 100 bytes on the wire: the pages may hold what one snapshot line may.
            let bound = self.cfg.max_snapshot_bytes / 64;
            if pages.deals.len() + pages.orders.len() + pages.history.len() > bound {
                self.pages = None;
                return self.bad(i, "the snapshot's pages hold more than venue.mt5.max_snapshot_bytes would");
            }
            if m.more == Some(true) {
                return;
            }
            let pages = self.pages.take().unwrap_or_default();
            self.settle_snapshot(i, &pages.deals, &pages.orders, &pages.history, now);
        } else {
            self.settle_snapshot(i, page_deals, page_orders, page_history, now);
        }
        self.report_positions(m);
    }

    /// The last page's `positions`, netted per traded symbol (buys less sells; a hedging account
    /// may hold several), for the engine to compare with its books once the snapshot's deals are
    /// booked. None from an EA that leaves the key out.
    fn report_positions(&mut self, m: &Inbound<'_>) {
        let Some(positions) = m.positions.as_deref() else { return };
        let whole = |p: &&protocol::SnapshotPosition<'_>| {
            p.symbol.is_some()
                && p.volume.is_some_and(|v| v.is_finite() && v >= 0.0)
                && matches!(p.side.as_deref(), Some("buy" | "sell"))
        };
        if let Some(bad) = positions.iter().find(|p| !whole(p)) {
            log::warn!("mt5: a snapshot position lacks a symbol, volume or type ({bad:?}); positions not compared");
            return;
        }
        for (symbol, name) in self.symbols.iter().enumerate() {
            let net: f64 = positions
                .iter()
                .filter(|p| p.symbol.as_deref() == Some(name.as_str()))
                .map(|p| {
                    let v = p.volume.unwrap_or(0.0);
                    if p.side.as_deref() == Some("sell") {
                        -v
                    } else {
                        v
                    }
                })
                .sum();
            self.events.push(VenueEvent::PositionReported { symbol: symbol as SymbolId, net });
        }
    }

    /// The whole snapshot: what the terminal executed and holds, reconciled with the orders in
    /// flight; the session is synced after it.
    fn settle_snapshot(
        &mut self,
        i: usize,
        deals: &[SnapshotDeal<'_>],
        resting: &[SnapshotOrder<'_>],
        history: &[SnapshotClosed<'_>],
        now: Nanos,
    ) {
        let session = self.slots[i].as_ref().map_or(0, |c| c.session);
        // Signals queued before the restart whose sending the crash may have hidden: what the
        // terminal executed for them is booked, and the engine refuses them as duplicates.
        let maybe_sent = std::mem::take(&mut self.maybe_sent);
        for &(id, symbol, side) in &maybe_sent {
            for d in deals.iter().filter(|d| d.key() == id.as_str()) {
                if d.volume > 0.0 && d.price > 0.0 && d.price.is_finite() {
                    log::warn!(
                        "mt5: booking deal {} of {id} ({} at {}): queued before the restart and executed by the terminal, so not sent again",
                        d.deal,
                        d.volume,
                        d.price
                    );
                    self.events.push(VenueEvent::Adopted {
                        client_id: id,
                        symbol,
                        side,
                        qty: d.volume,
                        price: d.price,
                        only_if_unknown: false,
                    });
                }
            }
            if resting.iter().any(|r| r.key() == id.as_str()) {
                log::warn!(
                    "mt5: order {id} rests at the terminal though it was still queued here before the restart; it is not sent again, and mt5bot does not follow it: manage it in the terminal"
                );
                self.events.push(VenueEvent::Adopted {
                    client_id: id,
                    symbol,
                    side,
                    qty: 0.0,
                    price: 0.0,
                    only_if_unknown: false,
                });
            }
        }
        // Stops the broker executed while no session was up, since the last deal this process (or
        // the checkpoint) saw; with neither, the history is older than mt5bot's books.
        let since = self.restored_last_deal.unwrap_or(self.last_deal);
        if since > 0 {
            self.stop_deals(deals, since);
        }
        if let Some(last) = self.restored_last_deal.take() {
            self.adopt_unknown_deals(deals, last, &maybe_sent);
        }
        if let Some(max) = deals.iter().map(|d| d.deal).max() {
            self.last_deal = self.last_deal.max(max);
        }
        let mut o = 0;
        while o < self.orders.len() {
            let id = self.orders[o].req.client_id;
            let key = self.orders[o].req.key;
            let mine: Vec<&SnapshotDeal<'_>> = deals.iter().filter(|d| d.key() == id.as_str()).collect();
            if self.orders[o].restored && self.orders[o].deal_count == 0 && !mine.is_empty() {
                // Restored with what was filled at the checkpoint but not by which deals: book
                // only what the terminal's deals add to that.
                let total: f64 = mine.iter().map(|d| d.volume).sum();
                let excess = total - self.orders[o].filled;
                let price = mine.last().map_or(0.0, |d| d.price);
                let ord = &mut self.orders[o];
                for d in mine.iter().take(MAX_DEALS) {
                    ord.deals[ord.deal_count] = d.deal;
                    ord.deal_count += 1;
                }
                if excess > QTY_EPSILON && price > 0.0 {
                    ord.filled += excess;
                    self.next_exec_id += 1;
                    self.events.push(VenueEvent::Fill { key, exec_id: self.next_exec_id, qty: excess, price });
                }
            } else {
                for d in &mine {
                    self.book_deal(o, d.deal, d.volume, d.price, d.commission);
                }
            }
            if self.finish_if_filled(o) {
                continue;
            }
            let rests = resting.iter().any(|r| r.key() == id.as_str());
            if !rests {
                // Ended at the terminal (cancelled, expired, rejected) while no session was up:
                // settled as it ended there, never taken for an order the terminal did not see.
                let ended = history.iter().find(|h| h.key() == id.as_str());
                if let Some((h, state)) = ended.and_then(|h| Ended::parse(&h.state).map(|e| (h, e))) {
                    let filled = if h.volume_filled.is_finite() { h.volume_filled.max(0.0) } else { 0.0 };
                    self.orders[o].session = session;
                    let before = self.orders.len();
                    self.end_order(o, state, filled);
                    if self.orders.len() < before {
                        continue;
                    }
                    o += 1;
                    continue;
                }
            }
            let ord = &mut self.orders[o];
            if rests {
                ord.session = session;
            } else if !mine.is_empty() {
                // Partly executed and no longer working: the rest is gone.
                self.events.push(VenueEvent::Cancelled { key });
                self.orders.swap_remove(o);
                continue;
            } else if ord.session != session {
                ord.unknown = true;
            }
            o += 1;
        }
        if let Some(c) = self.slots[i].as_mut() {
            c.state = ConnState::Active { synced: true };
        }
        log::info!(
            "mt5: snapshot from session {session}: {} deals, {} resting orders; {} orders in flight",
            deals.len(),
            resting.len(),
            self.orders.len()
        );
        // Orders the terminal never saw: sent again if fresh, else refused.
        let mut o = 0;
        while o < self.orders.len() {
            if !self.orders[o].unknown {
                o += 1;
                continue;
            }
            let ord = self.orders[o];
            if ord.restored || now.saturating_sub(ord.created) > self.max_wait {
                log::warn!(
                    "mt5: order {} never reached the terminal and is older than queue.max_wait; refused",
                    ord.req.client_id
                );
                self.events.push(VenueEvent::Rejected { key: ord.req.key, reason: "never reached the terminal" });
                self.orders.swap_remove(o);
                continue;
            }
            log::info!("mt5: order {} never reached the terminal; sending it now", ord.req.client_id);
            self.orders[o].unknown = false;
            self.orders[o].session = session;
            self.write_order(i, &ord.req, now);
            o += 1;
        }
    }

    fn write_order(&mut self, i: usize, req: &OrderRequest, now: Nanos) {
        let Some(conn) = self.slots[i].as_mut() else { return };
        let symbol = self.symbols.get(req.symbol as usize).map_or("", String::as_str);
        let (action, kind, price) = match (req.kind, req.side) {
            (OrderKind::Market, Side::Buy) => ("deal", "buy", 0.0),
            (OrderKind::Market, Side::Sell) => ("deal", "sell", 0.0),
            (OrderKind::Limit, Side::Buy) => ("pending", "buy_limit", req.price),
            (OrderKind::Limit, Side::Sell) => ("pending", "sell_limit", req.price),
            // Refused by `submit`: the terminal holds a position's levels itself (`sl`, `tp`).
            (OrderKind::Stop, Side::Buy) => ("pending", "buy_stop", req.price),
            (OrderKind::Stop, Side::Sell) => ("pending", "sell_stop", req.price),
        };
        let id = req.client_id.as_str();
        // On the symbol's tick grid where its specs are known (the server refuses others, 10015).
        let spec = self.specs.get(req.symbol as usize).copied().flatten();
        let (price, sl, tp, dp) = match spec {
            Some(s) => (
                s.round_price(price, Some(req.side == Side::Buy)),
                s.round_price(req.sl, None),
                s.round_price(req.tp, None),
                s.decimals(),
            ),
            None => (price, req.sl, req.tp, 10),
        };
        let p = |v: f64| PriceText(v, dp);
        let _ = writeln!(
            conn.wbuf,
            r#"{{"type":"order","id":"{id}","action":"{action}","symbol":"{symbol}","volume":{},"type_order":"{kind}","price":{},"sl":{},"tp":{},"deviation":{},"magic":{},"comment":"{id}","type_filling":"{}"}}"#,
            req.qty,
            p(price),
            p(sl),
            p(tp),
            self.cfg.deviation,
            self.cfg.magic,
            self.cfg.type_filling.as_str()
        );
        conn.last_sent = now;
        flush(conn);
    }

    fn heartbeats(&mut self, now: Nanos) {
        let hb = self.cfg.heartbeat_interval.as_nanos() as Nanos;
        for i in 0..self.slots.len() {
            let Some(c) = self.slots[i].as_mut() else { continue };
            let why = match c.state {
                ConnState::Handshake { deadline } if now >= deadline => {
                    self.metrics.handshake_timeout.inc();
                    Some("no answer to the challenge within venue.mt5.handshake_timeout")
                }
                ConnState::Active { .. } if now >= c.last_recv + 2 * hb => {
                    Some("the terminal was silent for two heartbeat intervals")
                }
                ConnState::Active { .. } if now >= c.last_sent + hb && now >= c.last_recv + hb => {
                    let _ = writeln!(c.wbuf, r#"{{"type":"ping"}}"#);
                    c.last_sent = now;
                    flush(c);
                    None
                }
                _ => None,
            };
            if let Some(why) = why {
                self.close(i, why);
            }
        }
    }
}

fn flush(conn: &mut Conn) {
    // TLS records waiting for room (a handshake's answer) go before new data.
    if let Err(e) = conn.stream.flush_records() {
        if e.kind() != io::ErrorKind::WouldBlock {
            conn.closing = Some("write failed");
            return;
        }
    }
    let mut written = 0;
    while written < conn.wbuf.len() {
        match conn.stream.write(&conn.wbuf[written..]) {
            Ok(0) => break,
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(_) => {
                conn.closing = Some("write failed");
                break;
            }
        }
    }
    conn.wbuf.drain(..written);
    // A terminal that stops reading gets cut off rather than growing the buffer without bound.
    if conn.wbuf.len() > 4 << 20 {
        conn.closing = Some("the terminal stopped reading");
    }
}

impl Venue for Mt5Venue {
    fn name(&self) -> &'static str {
        "mt5"
    }

    fn attach(&mut self, registry: &Registry, first: Token, tokens: usize) -> io::Result<()> {
        registry.register(&mut self.listener, first, Interest::READABLE)?;
        self.registry = Some(registry.try_clone()?);
        self.first_token = first.0;
        self.slots = (1..tokens).map(|_| None).collect();
        self.listener_ready = true;
        Ok(())
    }

    fn on_ready(&mut self, token: Token, readable: bool, _writable: bool) {
        if token.0 == self.first_token {
            self.listener_ready = true;
        } else if let Some(Some(c)) = self.slots.get_mut(token.0.wrapping_sub(self.first_token + 1)) {
            c.readable |= readable;
        }
    }

    fn ready_for_orders(&self) -> bool {
        self.synced() && self.orders.len() < self.capacity
    }

    fn submit(&mut self, order: &OrderRequest, now: Nanos) -> Result<(), &'static str> {
        let Some(i) = self.active.filter(|_| self.synced()) else {
            return Err("no terminal session");
        };
        if self.orders.len() >= self.capacity {
            return Err("too many orders in flight at the terminal");
        }
        if order.client_id.as_str().len() > MAX_COMMENT {
            return Err("the order id is longer than the 31 characters of an MT5 comment");
        }
        if order.kind == OrderKind::Stop {
            return Err("the mt5 venue takes no stop orders (the terminal holds a position's sl and tp)");
        }
        if let Some(why) =
            self.specs.get(order.symbol as usize).copied().flatten().and_then(|s| s.volume_error(order.qty))
        {
            return Err(why);
        }
        let session = self.slots[i].as_ref().map_or(0, |c| c.session);
        self.orders.push(Mt5Order {
            req: *order,
            created: now,
            session,
            filled: 0.0,
            accepted: false,
            deals: [0; MAX_DEALS],
            deal_count: 0,
            unknown: false,
            restored: false,
            ended: None,
        });
        self.write_order(i, order, now);
        Ok(())
    }

    fn on_tick(&mut self, _tick: &Tick, _now: Nanos, _events: &mut Vec<VenueEvent>) {}

    fn poll(&mut self, now: Nanos, events: &mut Vec<VenueEvent>) {
        // Read before accepting, so an answer to a challenge that has arrived is taken before a
        // flood of new connections could push its connection out.
        for i in 0..self.slots.len() {
            let Some(c) = self.slots[i].as_ref() else { continue };
            let why = if c.readable { self.read(i, now) } else { None };
            let why = why.or_else(|| {
                let c = self.slots[i].as_mut()?;
                if !c.wbuf.is_empty() || c.stream.wants_write() {
                    flush(c);
                }
                c.closing
            });
            if let Some(why) = why {
                self.close(i, why);
            }
        }
        if self.listener_ready {
            self.accept(now);
        }
        self.heartbeats(now);
        events.append(&mut self.events);
    }

    fn next_tick(&mut self) -> Option<Tick> {
        match self.ticks.get(self.tick_at) {
            Some(t) => {
                self.tick_at += 1;
                Some(*t)
            }
            None => {
                self.ticks.clear();
                self.tick_at = 0;
                None
            }
        }
    }

    fn next_deadline(&self) -> Option<Nanos> {
        if self.listener_ready {
            return Some(0);
        }
        let hb = self.cfg.heartbeat_interval.as_nanos() as Nanos;
        self.slots
            .iter()
            .flatten()
            .map(|c| match c.state {
                ConnState::Handshake { deadline } => deadline,
                ConnState::Active { .. } => (c.last_sent.max(c.last_recv) + hb).min(c.last_recv + 2 * hb),
            })
            .min()
    }

    fn is_up(&self) -> bool {
        self.synced()
    }

    fn keeps_orders(&self) -> bool {
        true
    }

    /// The broker holds stop-loss and take-profit: they go out in the order's `sl` and `tp`.
    fn holds_stops(&self) -> bool {
        true
    }

    /// The id travels in the order's comment, which holds 31 characters.
    fn max_id_len(&self) -> usize {
        MAX_COMMENT
    }

    fn trade_mode(&self, symbol: SymbolId) -> TradeMode {
        self.specs.get(symbol as usize).copied().flatten().map_or(TradeMode::Full, |s| s.trade_mode)
    }

    fn trade_sessions(&self, symbol: SymbolId) -> Option<&[(u32, u32)]> {
        self.trade_hours.get(symbol as usize).and_then(Option::as_deref)
    }

    fn restore_queued(&mut self, queued: &[(crate::domain::types::SignalId, SymbolId, Side)]) {
        self.maybe_sent = queued.to_vec();
    }

    fn checkpoint(&self) -> serde_json::Value {
        serde_json::json!({ "last_deal": self.last_deal })
    }

    fn restore(
        &mut self,
        state: &serde_json::Value,
        orders: &[crate::domain::venue::RestoredOrder],
    ) -> Result<(), String> {
        // Checkpoints of versions before it have none: then nothing is adopted (their deals
        // cannot be told from the ones booked long ago).
        if let Some(last) = state.get("last_deal").and_then(serde_json::Value::as_u64) {
            self.last_deal = last;
            self.restored_last_deal = Some(last);
        }
        for crate::domain::venue::RestoredOrder { req, filled, .. } in orders {
            if self.orders.len() >= self.capacity {
                return Err("more orders in flight than risk.max_open_orders".into());
            }
            self.orders.push(Mt5Order {
                req: *req,
                created: 0,
                session: 0,
                filled: *filled,
                accepted: true,
                deals: [0; MAX_DEALS],
                deal_count: 0,
                unknown: false,
                restored: true,
                ended: None,
            });
        }
        Ok(())
    }

    fn open_orders(&self) -> usize {
        self.orders.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retcodes_have_reasons() {
        assert!(retcode::reason(retcode::REQUOTE).contains("10004"));
        assert!(retcode::reason(retcode::CONNECTION).contains("10031"));
    }
}
