//! The FIX 4.4 venue: an initiator session to a broker's FIX gateway, driven by the reactor.
//!
//! Three layers: [`codec`] (framing and fields), [`session`] (the sans-IO session state machine)
//! and, here, the connection and the orders in flight. The reactor registers the socket once
//! through [`Venue::attach`], reports readiness through [`Venue::on_ready`], and calls
//! [`Venue::poll`] every loop turn; all IO is non-blocking.
//!
//! Reliability rules this module keeps:
//! - Sequence numbers are written to `<state_dir>/fix44-<sender>-<target>.seqnums` before the bytes
//!   that use them are handed to the socket, so a restart continues the session.
//! - The ClOrdID is the signal id, so an order the venue has seen is a duplicate it refuses.
//! - An order is never sent twice: a counterparty's ResendRequest is gap-filled. An order it
//!   proves it never received (its ResendRequest covers the order's sequence number and no
//!   execution report came) is sent again as a new message once the session is back in sync, if
//!   it is younger than `queue.max_wait`; otherwise it is refused. An order whose fate is unknown
//!   after a reconnect gets an OrderStatusRequest and stays in flight until a report settles it;
//!   one carried across a sequence-number reset to a venue that answers no OrderStatusRequest can
//!   never be settled, and is given up as of unknown outcome (logged, counted, not sent again).
//! - Executions are applied by cumulative quantity (CumQty), so a report seen twice (PossDup
//!   resends, status answers) never books a fill twice, whatever the venue's ExecID scheme.

pub mod codec;
mod orders;
pub mod schedule;
mod seq_store;
pub mod session;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use crate::config::Fix44Config;

use crate::domain::types::{Nanos, OrderRequest, Side, SymbolId, Tick, VenueEvent};
use crate::domain::types::{OrderKind, TimeInForce};
use crate::secrets::Secret;
use crate::support::backoff::Backoff;
use crate::support::names::QTY_EPSILON;
use crate::telemetry::metrics::FixMetrics;

use self::codec::{tag, Message};
use self::orders::*;
use self::seq_store::*;
use self::session::{Application, RejectReason, SeqNums, Session, SessionConfig};
use crate::domain::venue::Venue;

/// Reads per poll before other work gets a turn; the readable flag stays set if bytes remain.
const MAX_READS_PER_POLL: usize = 64;
const READ_CHUNK: usize = 64 * 1024;
/// How often the next expected sequence number is written when nothing is sent.
const SEQ_SAVE_INTERVAL: Nanos = 100_000_000;

#[derive(Debug)]
enum Conn {
    Down { retry_at: Nanos },
    Connecting { stream: TcpStream, since: Nanos },
    Up { stream: TcpStream },
}

/// The FIX 4.4 venue.
#[derive(Debug)]
pub struct FixVenue {
    addrs: Vec<SocketAddr>,
    next_addr: usize,
    registry: Option<Registry>,
    token: Token,
    conn: Conn,
    conn_number: u64,
    /// Sessions established so far, and whether the current connection has one.
    sessions: u64,
    session_up: bool,
    logon_timeout: Nanos,
    session: Session,
    store: SeqStore,
    book: Book,
    rbuf: Vec<u8>,
    chunk: Box<[u8]>,
    wbuf: Vec<u8>,
    readable: bool,
    writable: bool,
    backoff: Backoff,
    tif: TimeInForce,
    account: Vec<u8>,
    max_wait: Nanos,
    metrics: FixMetrics,
    reported: session::Counters,
    /// OrderCancelRequests sent: numbers their ClOrdIDs (`<order id>.c<n>`).
    cancels: u64,
    status_timeout: Nanos,
    next_status_check: Nanos,
    /// `venue.fix44.schedule`, and when to look at it again (Unix ns).
    schedule: Option<crate::config::FixSchedule>,
    schedule_check_at: i128,
    /// Whether the schedule has the session on now (always true without one).
    in_session: bool,
    /// Unix time minus engine time, for the schedule (taken again whenever something is due).
    unix_offset: Option<i128>,
    reset_on_logout: bool,
    reset_on_disconnect: bool,
    /// `venue.fix44.native_stops`: stop-losses and take-profits rest at the venue.
    native_stops: bool,
    /// Socket calls made, and (while measuring) the time spent in them.
    io: IoStats,
    measure_io: bool,
}

/// The socket calls the venue made: how many writes and reads, and, while measured, the time
/// inside them (what the kernel costs, apart from mt5bot's own work); and the writes of the
/// sequence-number file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IoStats {
    pub writes: u64,
    pub reads: u64,
    pub nanos: u64,
    pub file_writes: u64,
}

impl FixVenue {
    /// Opens the sequence-number file; the connection starts at the first `poll`.
    pub fn new(
        cfg: &Fix44Config,
        addrs: Vec<SocketAddr>,
        symbols: &[String],
        max_open_orders: usize,
        max_wait: std::time::Duration,
        credentials: (Option<String>, Option<Secret>),
        metrics: FixMetrics,
    ) -> Result<FixVenue, String> {
        let (store, seqs) = SeqStore::open(&cfg.state_dir, &cfg.sender_comp_id, &cfg.target_comp_id)?;
        let session = Session::new(
            SessionConfig {
                sender: cfg.sender_comp_id.clone(),
                target: cfg.target_comp_id.clone(),
                heartbeat_secs: cfg.heartbeat_interval.as_secs(),
                reset_on_logon: cfg.reset_on_logon,
                logon_timeout: cfg.logon_timeout.as_nanos() as Nanos,
                username: credentials.0,
                password: credentials.1,
            },
            seqs,
        );
        let seed = (crate::support::timefmt::unix_nanos() as u64) | 1;
        Ok(FixVenue {
            addrs,
            next_addr: 0,
            registry: None,
            token: Token(0),
            conn: Conn::Down { retry_at: 0 },
            conn_number: 0,
            sessions: 0,
            session_up: false,
            logon_timeout: cfg.logon_timeout.as_nanos() as Nanos,
            session,
            store,
            book: Book {
                orders: Vec::with_capacity(max_open_orders),
                capacity: max_open_orders,
                next_exec_id: 0,
                events: Vec::with_capacity(2 * max_open_orders + 16),
                symbols: symbols.to_vec(),
                reconcile_due: false,
                status_unsupported: false,
                // Twice the entries kept, so the table never grows (no allocation per order).
                completed: std::collections::HashMap::with_capacity(2 * COMPLETED),
                completed_order: std::collections::VecDeque::with_capacity(COMPLETED),
            },
            rbuf: Vec::with_capacity(READ_CHUNK * 2),
            chunk: vec![0u8; READ_CHUNK].into_boxed_slice(),
            wbuf: Vec::with_capacity(READ_CHUNK),
            readable: false,
            writable: false,
            backoff: Backoff::with_seed(cfg.reconnect_min, cfg.reconnect_max, seed),
            tif: cfg.time_in_force,
            account: cfg.account.as_bytes().to_vec(),
            max_wait: max_wait.as_nanos() as Nanos,
            metrics,
            reported: session::Counters::default(),
            cancels: 0,
            status_timeout: cfg.status_timeout.as_nanos() as Nanos,
            next_status_check: 0,
            schedule: cfg.schedule.clone(),
            schedule_check_at: i128::MIN,
            in_session: true,
            unix_offset: None,
            reset_on_logout: cfg.reset_on_logout,
            reset_on_disconnect: cfg.reset_on_disconnect,
            native_stops: cfg.native_stops,
            io: IoStats::default(),
            measure_io: false,
        })
    }

    /// The socket calls made so far.
    pub fn io_stats(&self) -> IoStats {
        IoStats { file_writes: self.store.writes, ..self.io }
    }

    /// Times the socket calls from now on (benchmarks: the kernel's share of a round trip).
    pub fn measure_io(&mut self, on: bool) {
        self.measure_io = on;
    }

    /// Where the schedule stands at `now`: a new period starts the sequence numbers again at 1
    /// on both sides (as the counterparty's own schedule does); the end of one logs out and
    /// waits for the next. Costs one comparison until something is due.
    fn follow_schedule(&mut self, now: Nanos) {
        let Some(schedule) = &self.schedule else { return };
        let offset = *self.unix_offset.get_or_insert_with(|| crate::support::timefmt::unix_nanos() - now as i128);
        if now as i128 + offset < self.schedule_check_at {
            return;
        }
        // Due by the engine's clock: read the wall clock itself before acting on it (it may have
        // been stepped since the offset was taken).
        let offset = crate::support::timefmt::unix_nanos() - now as i128;
        self.unix_offset = Some(offset);
        let unix = now as i128 + offset;
        if unix < self.schedule_check_at {
            return;
        }
        let iso = crate::support::timefmt::rfc3339_micros;
        match schedule.current(unix) {
            Some(period) => {
                self.in_session = true;
                self.schedule_check_at = period.end;
                let start = (period.start / 1_000_000_000) as i64;
                if start != self.store.period {
                    if self.store.period != 0 {
                        log::warn!(
                            "FIX: a new session period ({} to {}): sequence numbers start again at 1",
                            iso(period.start),
                            iso(period.end)
                        );
                        if !matches!(self.conn, Conn::Down { .. }) {
                            self.session.logout("new session period", now, &mut self.wbuf);
                            self.drop_connection(now, "a new session period");
                            self.conn = Conn::Down { retry_at: now };
                        }
                        self.session.reset_seqs();
                        self.book.forget_sequence_numbers();
                    } else {
                        log::info!("FIX: in the session period {} to {}", iso(period.start), iso(period.end));
                    }
                    self.store.period = start;
                    self.store.save_now(self.session.seqs());
                }
            }
            None => {
                self.in_session = false;
                let next = schedule.next_on(unix).unwrap_or(unix + 3_600_000_000_000);
                self.schedule_check_at = next;
                let wait = (next - unix).max(0) as Nanos;
                let why = if schedule.is_closed(unix) { "a closed date" } else { "the session's scheduled end" };
                if !matches!(self.conn, Conn::Down { .. }) {
                    log::info!("FIX: {why}; logging out until {}", iso(next));
                    self.session.logout("end of the session", now, &mut self.wbuf);
                    if matches!(self.conn, Conn::Up { .. }) && self.session.logging_out() {
                        // The connection stays until the Logout is answered (or its timeout), so a
                        // report the counterparty sent just before its own end is still read and
                        // booked rather than lost with the socket. Not reconnected until the next
                        // session starts (`in_session`).
                        self.flush();
                        return;
                    }
                    self.drop_connection(now, "the session's scheduled end");
                } else {
                    let note = if schedule.is_closed(unix) { " (a closed date)" } else { "" };
                    log::info!("FIX: outside the session's schedule{note}; the next starts {}", iso(next));
                }
                self.conn = Conn::Down { retry_at: now + wait };
            }
        }
    }

    /// The sequence numbers now (for tests and the status line).
    pub fn seqs(&self) -> SeqNums {
        self.session.seqs()
    }

    fn connect(&mut self, now: Nanos) {
        let Some(registry) = &self.registry else { return };
        let addr = self.addrs[self.next_addr % self.addrs.len()];
        self.next_addr = self.next_addr.wrapping_add(1);
        self.conn_number += 1;
        match TcpStream::connect(addr) {
            Ok(mut stream) => {
                match registry.register(&mut stream, self.token, Interest::READABLE | Interest::WRITABLE) {
                    Ok(()) => {
                        self.readable = false;
                        self.writable = false;
                        self.conn = Conn::Connecting { stream, since: now };
                    }
                    Err(e) => self.retry_later(now, &format!("cannot watch the connection to {addr}: {e}")),
                }
            }
            Err(e) => {
                self.metrics.connect_failures.inc();
                self.retry_later(now, &format!("cannot connect to {addr}: {e}"))
            }
        }
    }

    fn retry_later(&mut self, now: Nanos, why: &str) {
        // Outside the schedule (a connection closed after the session's end): the next attempt is
        // the next session's start, which the schedule check holds, not a back-off away.
        if let (false, Some(offset)) = (self.in_session, self.unix_offset) {
            let next = (self.schedule_check_at - offset).clamp(now as i128, Nanos::MAX as i128) as Nanos;
            log::info!("FIX: {why}; not reconnecting before the next session");
            self.conn = Conn::Down { retry_at: next };
            return;
        }
        let wait = self.backoff.next_wait().as_nanos() as Nanos;
        log::warn!("FIX: {why}; reconnecting in {} ms", wait / 1_000_000);
        self.conn = Conn::Down { retry_at: now + wait };
    }

    fn drop_connection(&mut self, now: Nanos, why: &str) {
        // Whatever the session still had to say (a Logout) goes out first, if it can.
        self.flush();
        let old = std::mem::replace(&mut self.conn, Conn::Down { retry_at: now });
        if let (Conn::Up { mut stream } | Conn::Connecting { mut stream, .. }, Some(r)) = (old, &self.registry) {
            let _ = r.deregister(&mut stream);
        }
        if !std::mem::take(&mut self.session_up) {
            self.metrics.connect_failures.inc();
        }
        let logged_out = self.session.logged_out();
        self.session.disconnected();
        if self.reset_on_disconnect || (self.reset_on_logout && logged_out) {
            self.session.reset_seqs();
            self.book.forget_sequence_numbers();
            log::info!(
                "FIX: sequence numbers start again at 1 (venue.fix44.schedule.reset_on_{})",
                if self.reset_on_disconnect { "disconnect" } else { "logout" }
            );
        }
        self.rbuf.clear();
        self.wbuf.clear();
        self.store.save(self.session.seqs());
        let in_flight = self.book.orders.len();
        self.retry_later(now, &format!("session to {} lost ({why}); {in_flight} orders in flight", self.addrs[0]));
    }

    /// Persists sequence numbers (when a number to send was used), then writes what is pending. Errors close the connection later
    /// (the next read sees them); a full socket leaves the rest for the next writable event.
    fn flush(&mut self) {
        if self.wbuf.is_empty() {
            return;
        }
        let seqs = self.session.seqs();
        if seqs.next_out != self.store.saved.next_out {
            self.store.save(seqs);
        }
        let Conn::Up { stream } = &mut self.conn else { return };
        let mut written = 0;
        while written < self.wbuf.len() {
            self.io.writes += 1;
            let started = self.measure_io.then(std::time::Instant::now);
            let result = stream.write(&self.wbuf[written..]);
            if let Some(t) = started {
                self.io.nanos += t.elapsed().as_nanos() as u64;
            }
            match result {
                Ok(0) => break,
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.writable = false;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    // The read side reports the failure and reconnects; keep the bytes until then.
                    self.readable = true;
                    break;
                }
            }
        }
        self.wbuf.drain(..written);
    }

    fn read(&mut self, now: Nanos) -> Result<(), String> {
        let Conn::Up { stream } = &mut self.conn else { return Ok(()) };
        let mut reads = 0;
        loop {
            if reads == MAX_READS_PER_POLL {
                break;
            }
            reads += 1;
            self.io.reads += 1;
            let started = self.measure_io.then(std::time::Instant::now);
            let result = stream.read(&mut self.chunk);
            if let Some(t) = started {
                self.io.nanos += t.elapsed().as_nanos() as u64;
            }
            match result {
                Ok(0) => return Err("the venue closed the connection".into()),
                Ok(n) => self.rbuf.extend_from_slice(&self.chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.readable = false;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("read failed: {e}")),
            }
            if let Err(d) = self.session.on_bytes(&mut self.rbuf, now, &mut self.wbuf, &mut self.book) {
                return Err(d.0);
            }
        }
        Ok(())
    }

    /// After a reconnect, once in sync: orders the venue never received go out again (if still
    /// fresh), orders of unknown fate are asked about.
    fn reconcile(&mut self, now: Nanos) {
        self.book.reconcile_due = false;
        let mut i = 0;
        while i < self.book.orders.len() {
            let o = self.book.orders[i];
            match o.delivery {
                Delivery::Undelivered if o.age(now).is_none_or(|age| age > self.max_wait) => {
                    log::warn!(
                        "FIX: order {} never reached the venue and is {}; refused, not sent late",
                        o.req.client_id,
                        if o.age(now).is_none() {
                            "from before the restart, of unknown age"
                        } else {
                            "older than queue.max_wait"
                        }
                    );
                    self.book.reject_order(i, "never reached the venue; too old to send now");
                    continue;
                }
                Delivery::Undelivered => {
                    log::info!("FIX: order {} never reached the venue; sending it now", o.req.client_id);
                    if let Some(seq) = self.send_order(&o.req, now) {
                        self.book.orders[i].seq = seq;
                        self.book.orders[i].delivery = Delivery::Sent { conn: self.conn_number };
                    }
                }
                Delivery::Sent { .. } | Delivery::StatusAsked
                    if o.across_reset && !o.acked && self.book.status_unsupported =>
                {
                    log::error!(
                        "FIX: order {} ({} {} {}) has an unknown outcome: it was in flight when the sequence \
                         numbers started again at 1, no report came, and the venue answers no \
                         OrderStatusRequest. It is no longer counted in flight and is not sent again; check it \
                         at the broker (a report that comes later is still booked)",
                        o.req.client_id,
                        o.req.side.as_str(),
                        o.req.qty,
                        self.book.symbols.get(o.req.symbol as usize).map_or("?", String::as_str),
                    );
                    self.metrics.outcome_unknown.inc();
                    self.book.reject_order(i, "outcome unknown after a sequence reset");
                    continue;
                }
                Delivery::Sent { conn } if conn != self.conn_number && !o.acked => {
                    self.send_status_request(&o.req, now);
                    self.book.orders[i].delivery = Delivery::StatusAsked;
                }
                // A ResendRequest alone makes an order go out again only from a venue that cannot be
                // asked: one that answers OrderStatusRequest decides (the answer "unknown order").
                Delivery::Missed if o.acked => self.book.orders[i].delivery = Delivery::Sent { conn: self.conn_number },
                Delivery::Missed if self.book.status_unsupported => {
                    log::warn!(
                        "FIX: the venue asked again for order {}'s message and answers no OrderStatusRequest: \
                         its ResendRequest is all there is to go by, so the order goes out again (same ClOrdID)",
                        o.req.client_id
                    );
                    // Taken as undelivered on the next pass of this loop.
                    self.book.orders[i].delivery = Delivery::Undelivered;
                    continue;
                }
                Delivery::Missed => {
                    log::warn!(
                        "FIX: the venue asked again for order {}'s message; asking whether it has the order \
                         (OrderStatusRequest) before sending anything",
                        o.req.client_id
                    );
                    self.send_status_request(&o.req, now);
                    self.book.orders[i].delivery = Delivery::MissedAsked;
                }
                _ => {}
            }
            i += 1;
        }
    }

    /// Orders sent on this session with no execution report after `venue.fix44.status_timeout`
    /// are asked about once with an OrderStatusRequest (unless the venue said it answers none).
    fn ask_unanswered(&mut self, now: Nanos) {
        if self.book.status_unsupported {
            return;
        }
        let conn_number = self.conn_number;
        for i in 0..self.book.orders.len() {
            let o = self.book.orders[i];
            if o.acked
                || o.delivery != (Delivery::Sent { conn: conn_number })
                || now.saturating_sub(o.created) < self.status_timeout
            {
                continue;
            }
            log::warn!(
                "FIX: no execution report for order {} after venue.fix44.status_timeout; asking the venue (OrderStatusRequest)",
                o.req.client_id
            );
            self.send_status_request(&o.req, now);
            self.book.orders[i].delivery = Delivery::StatusAsked;
        }
    }

    fn send_status_request(&mut self, req: &OrderRequest, now: Nanos) {
        let sym = self.book.symbols.get(req.symbol as usize).cloned().unwrap_or_default();
        let side = side_value(req.side);
        let id = req.client_id;
        self.session.send_app(b"H", now, &mut self.wbuf, |b| {
            b.field(tag::CL_ORD_ID, id.as_str().as_bytes()).field(tag::SYMBOL, sym.as_bytes()).field(tag::SIDE, side);
        });
    }

    fn send_order(&mut self, req: &OrderRequest, now: Nanos) -> Option<u64> {
        let sym = self.book.symbols.get(req.symbol as usize)?;
        new_order_single(&mut self.session, &mut self.wbuf, req, sym, self.tif, &self.account, now)
    }

    fn report_counters(&mut self) {
        let c = self.session.counters;
        let r = &mut self.reported;
        self.metrics.garbled.inc_by(c.garbled - r.garbled);
        self.metrics.rejects_sent.inc_by(c.rejects_sent - r.rejects_sent);
        self.metrics.rejects_received.inc_by(c.rejects_received - r.rejects_received);
        *r = c;
    }
}

/// Appends a NewOrderSingle (35=D) for `req` to `out` when the session is up; returns its
/// sequence number. The ClOrdID is the signal id.
pub fn new_order_single(
    session: &mut Session,
    out: &mut Vec<u8>,
    req: &OrderRequest,
    symbol: &str,
    tif: TimeInForce,
    account: &[u8],
    now: Nanos,
) -> Option<u64> {
    let time = session.timestamp(now);
    session.send_app(b"D", now, out, |b| {
        b.field(tag::CL_ORD_ID, req.client_id.as_str().as_bytes());
        if !account.is_empty() {
            b.field(tag::ACCOUNT, account);
        }
        b.field(tag::SYMBOL, symbol.as_bytes())
            .field(tag::SIDE, side_value(req.side))
            .field(tag::TRANSACT_TIME, &time)
            .field_f64(tag::ORDER_QTY, req.qty);
        match req.kind {
            OrderKind::Market => {
                b.field(tag::ORD_TYPE, b"1");
            }
            OrderKind::Limit => {
                b.field(tag::ORD_TYPE, b"2").field_f64(tag::PRICE, req.price);
            }
            OrderKind::Stop => {
                b.field(tag::ORD_TYPE, b"3").field_f64(tag::STOP_PX, req.price);
            }
        }
        let tif = if req.immediate {
            TimeInForce::Ioc
        } else if req.until_cancelled {
            TimeInForce::Gtc
        } else {
            tif
        };
        b.field(tag::TIME_IN_FORCE, tif.fix_value());
    })
}

fn side_value(side: Side) -> &'static [u8] {
    match side {
        Side::Buy => b"1",
        Side::Sell => b"2",
    }
}

impl Venue for FixVenue {
    fn name(&self) -> &'static str {
        "fix44"
    }

    fn attach(&mut self, registry: &Registry, first: Token, _tokens: usize) -> io::Result<()> {
        self.registry = Some(registry.try_clone()?);
        self.token = first;
        Ok(())
    }

    fn on_ready(&mut self, _token: Token, readable: bool, writable: bool) {
        self.readable |= readable;
        self.writable |= writable;
    }

    fn ready_for_orders(&self) -> bool {
        self.session.is_in_sync() && self.book.orders.len() < self.book.capacity
    }

    fn rests_stops(&self) -> bool {
        self.native_stops
    }

    fn submit(&mut self, order: &OrderRequest, now: Nanos) -> Result<(), &'static str> {
        if !self.session.is_in_sync() {
            return Err("the FIX session is not logged on");
        }
        if self.book.orders.len() >= self.book.capacity {
            return Err("too many orders in flight at the venue");
        }
        let Some(seq) = self.send_order(order, now) else { return Err("the symbol is unknown to the venue") };
        self.book.orders.push(FixOrder {
            req: *order,
            seq,
            created: now,
            cum: 0.0,
            notional: 0.0,
            acked: false,
            delivery: Delivery::Sent { conn: self.conn_number },
            cancel_pending: false,
            restored: false,
            restored_age: None,
            across_reset: false,
        });
        self.flush();
        Ok(())
    }

    fn on_tick(&mut self, _tick: &Tick, _now: Nanos, _events: &mut Vec<VenueEvent>) {}

    fn poll(&mut self, now: Nanos, events: &mut Vec<VenueEvent>) {
        self.follow_schedule(now);
        match &mut self.conn {
            Conn::Down { retry_at } => {
                if now >= *retry_at && self.in_session {
                    self.connect(now);
                }
            }
            Conn::Connecting { stream, since } => {
                let since = *since;
                if self.writable || self.readable {
                    match (stream.take_error(), stream.peer_addr()) {
                        (Ok(None), Ok(peer)) => {
                            let Conn::Connecting { stream, .. } =
                                std::mem::replace(&mut self.conn, Conn::Down { retry_at: now })
                            else {
                                return;
                            };
                            self.conn = Conn::Up { stream };
                            log::info!("FIX: connected to {peer}; logging on");
                            self.session.connected(now, crate::support::timefmt::unix_nanos(), &mut self.wbuf);
                            self.readable = true;
                            self.flush();
                        }
                        (Ok(Some(e)) | Err(e), _) if e.kind() != io::ErrorKind::NotConnected => {
                            self.drop_connection(now, &format!("connect failed: {e}"));
                        }
                        _ => {}
                    }
                } else if now >= since + self.logon_timeout {
                    self.drop_connection(now, "connect timed out");
                }
            }
            Conn::Up { .. } => {
                if self.writable && !self.wbuf.is_empty() {
                    self.flush();
                }
                let mut failure = None;
                if self.readable {
                    if let Err(e) = self.read(now) {
                        failure = Some(e);
                    }
                }
                if failure.is_none() {
                    if let Err(d) = self.session.on_timer(now, &mut self.wbuf) {
                        failure = Some(d.0);
                    }
                }
                if failure.is_none() && self.book.reconcile_due && self.session.is_in_sync() {
                    self.reconcile(now);
                }
                if failure.is_none() && now >= self.next_status_check && self.session.is_in_sync() {
                    self.next_status_check = now + (self.status_timeout / 4).max(1_000_000);
                    self.ask_unanswered(now);
                }
                if self.session.is_active() {
                    self.backoff.reset();
                    if !self.session_up {
                        self.session_up = true;
                        self.sessions += 1;
                        if self.sessions > 1 {
                            self.metrics.reconnects.inc();
                        }
                    }
                }
                match failure {
                    Some(why) => self.drop_connection(now, &why),
                    None => {
                        self.flush();
                        // The next expected number is kept lazily: losing it costs only a resend
                        // of reports the CumQty rule ignores, and saves a write per report.
                        if now >= self.store.saved_at + SEQ_SAVE_INTERVAL {
                            self.store.save(self.session.seqs());
                            self.store.saved_at = now;
                        }
                    }
                }
            }
        }
        self.report_counters();
        events.append(&mut self.book.events);
    }

    fn next_deadline(&self) -> Option<Nanos> {
        match &self.conn {
            Conn::Down { retry_at } => Some(*retry_at),
            Conn::Connecting { since, .. } => Some(since + self.logon_timeout),
            Conn::Up { .. } => self.session.next_deadline(),
        }
    }

    fn is_up(&self) -> bool {
        self.session.is_active()
    }

    fn open_orders(&self) -> usize {
        self.book.orders.len()
    }

    fn cancel(&mut self, order: &OrderRequest, now: Nanos, _events: &mut Vec<VenueEvent>) -> Result<(), &'static str> {
        if !self.session.is_in_sync() {
            return Err("the FIX session is not logged on");
        }
        let i = self.book.orders.iter().position(|o| o.req.key == order.key).ok_or("not open at the venue")?;
        if self.book.orders[i].cancel_pending {
            return Ok(());
        }
        let o = self.book.orders[i];
        let sym = self.book.symbols.get(o.req.symbol as usize).cloned().unwrap_or_default();
        self.cancels += 1;
        let mut cancel_id = o.req.client_id.as_str().as_bytes().to_vec();
        cancel_id.extend_from_slice(b".c");
        codec::push_u64(&mut cancel_id, self.cancels);
        let time = self.session.timestamp(now);
        let sent = self.session.send_app(b"F", now, &mut self.wbuf, |b| {
            b.field(tag::ORIG_CL_ORD_ID, o.req.client_id.as_str().as_bytes())
                .field(tag::CL_ORD_ID, &cancel_id)
                .field(tag::SYMBOL, sym.as_bytes())
                .field(tag::SIDE, side_value(o.req.side))
                .field(tag::TRANSACT_TIME, &time)
                .field_f64(tag::ORDER_QTY, o.req.qty);
        });
        if sent.is_none() {
            return Err("the FIX session is not logged on");
        }
        self.book.orders[i].cancel_pending = true;
        self.flush();
        Ok(())
    }

    fn keeps_orders(&self) -> bool {
        true
    }

    fn checkpoint(&self) -> serde_json::Value {
        // The reports up to here are in the books this checkpoint holds; a restore asks for the
        // ones after it again.
        serde_json::json!({ "next_in": self.session.seqs().next_in, "completed": self.book.completed_state() })
    }

    fn restore(
        &mut self,
        state: &serde_json::Value,
        orders: &[crate::domain::venue::RestoredOrder],
    ) -> Result<(), String> {
        if let Some(c) = state.get("completed") {
            self.book.restore_completed(c);
        }
        if let Some(n) = state.get("next_in").and_then(serde_json::Value::as_u64) {
            let file = self.session.seqs().next_in;
            self.session.rewind_in(n);
            if n < file {
                log::info!(
                    "FIX: the checkpoint saw the venue's messages up to {}; asking for {n}..{file} again at Logon",
                    n - 1
                );
            }
        }
        for r in orders {
            if self.book.orders.len() >= self.book.capacity {
                return Err("more orders in flight than risk.max_open_orders".into());
            }
            // Nothing filled yet: its receipt is unconfirmed. It is asked about once in sync (an
            // OrderStatusRequest), and if the counterparty says it missed its sequence number
            // or does not know it, it is sent again only while younger than queue.max_wait (an
            // order whose age the checkpoint did not keep is refused), never late.
            self.book.orders.push(FixOrder {
                req: r.req,
                seq: r.venue_ref,
                created: 0,
                cum: r.filled,
                notional: r.filled * r.req.price,
                acked: r.filled > 0.0,
                delivery: Delivery::Sent { conn: 0 },
                cancel_pending: false,
                restored: true,
                restored_age: r.age_ns,
                // Its number was forgotten at a reset before the checkpoint.
                across_reset: r.venue_ref == 0,
            });
        }
        Ok(())
    }

    fn order_ref(&self, client_id: &crate::domain::types::SignalId) -> u64 {
        // The order just sent is the last one in the book.
        self.book.orders.iter().rev().find(|o| o.req.client_id == *client_id).map_or(0, |o| o.seq)
    }

    fn remember_settled(&mut self, settled: &[(crate::domain::types::SignalId, f64)]) {
        for (id, filled) in settled {
            self.book.remember(*id, *filled);
        }
    }

    fn close(&mut self, now: Nanos) {
        if self.session.is_active() {
            self.session.logout("mt5bot stopping", now, &mut self.wbuf);
            self.flush();
        }
        self.store.save(self.session.seqs());
    }
}

#[cfg(test)]
mod tests {
    use super::codec::{Builder, Fields, Header};
    use super::*;
    use crate::domain::types::{OrderKey, SignalId};

    fn book() -> Book {
        Book {
            orders: Vec::new(),
            capacity: 8,
            next_exec_id: 0,
            events: Vec::new(),
            symbols: vec!["EURUSD".into()],
            reconcile_due: false,
            status_unsupported: false,
            completed: std::collections::HashMap::new(),
            completed_order: std::collections::VecDeque::new(),
        }
    }

    fn add(b: &mut Book, id: &str, qty: f64, seq: u64) -> OrderKey {
        let key = OrderKey::new(seq, b.orders.len() as u32);
        b.orders.push(FixOrder {
            req: OrderRequest {
                key,
                client_id: SignalId::parse(id).expect("id"),
                symbol: 0,
                side: Side::Buy,
                qty,
                kind: OrderKind::Limit,
                price: 1.1,
                sl: 0.0,
                tp: 0.0,
                immediate: false,
                until_cancelled: false,
            },
            seq,
            created: 0,
            cum: 0.0,
            notional: 0.0,
            acked: false,
            delivery: Delivery::Sent { conn: 1 },
            cancel_pending: false,
            restored: false,
            restored_age: None,
            across_reset: false,
        });
        key
    }

    /// Feeds one application message to the book; returns its verdict.
    fn deliver(b: &mut Book, msg_type: &[u8], fields: &[(u32, &str)]) -> Result<(), RejectReason> {
        let mut builder = Builder::new();
        let h = Header { msg_type, sender: b"V", target: b"B", seq: 9, sending_time: b"t", poss_dup: None };
        builder.start(&h);
        for (t, v) in fields {
            builder.field(*t, v.as_bytes());
        }
        let mut out = Vec::new();
        builder.finish(&mut out);
        let mut f = Fields::new();
        let m = f.parse(&out).expect("parses");
        b.on_message(&m, 0)
    }

    /// An ExecutionReport's fields.
    fn report<'a>(
        id: &'a str,
        exec_type: &'a str,
        status: &'a str,
        cum: &'a str,
        last: Option<(&'a str, &'a str)>,
    ) -> Vec<(u32, &'a str)> {
        let mut f = vec![
            (tag::ORDER_ID, "O1"),
            (tag::EXEC_ID, "E1"),
            (tag::EXEC_TYPE, exec_type),
            (tag::ORD_STATUS, status),
            (tag::CL_ORD_ID, id),
            (tag::SYMBOL, "EURUSD"),
            (tag::SIDE, "1"),
            (tag::LEAVES_QTY, "0"),
            (tag::CUM_QTY, cum),
            (tag::AVG_PX, "1.1"),
        ];
        if let Some((qty, px)) = last {
            f.push((tag::LAST_QTY, qty));
            f.push((tag::LAST_PX, px));
        }
        f
    }

    #[test]
    fn new_then_partial_fills_then_done() {
        let mut b = book();
        let key = add(&mut b, "o1", 3.0, 5);
        deliver(&mut b, b"8", &report("o1", "0", "0", "0", None)).expect("new");
        deliver(&mut b, b"8", &report("o1", "F", "1", "1", Some(("1", "1.1")))).expect("partial");
        deliver(&mut b, b"8", &report("o1", "F", "2", "3", Some(("2", "1.2")))).expect("fill");
        assert_eq!(
            b.events,
            vec![
                VenueEvent::Accepted { key },
                VenueEvent::Fill { key, exec_id: 1, qty: 1.0, price: 1.1 },
                VenueEvent::Fill { key, exec_id: 2, qty: 2.0, price: 1.2 },
            ]
        );
        assert!(b.orders.is_empty(), "a filled order leaves the book");
    }

    #[test]
    fn a_commission_follows_its_fill_by_comm_type_and_a_repeat_books_none() {
        let mut b = book();
        let key = add(&mut b, "o1", 4.0, 5);
        let mut per_unit = report("o1", "F", "1", "2", Some(("2", "1.1")));
        per_unit.extend([(tag::COMMISSION, "0.5"), (tag::COMM_TYPE, "1")]);
        deliver(&mut b, b"8", &per_unit).expect("fill");
        deliver(&mut b, b"8", &per_unit).expect("the same again: no fill, no commission");
        let mut absolute = report("o1", "F", "2", "4", Some(("2", "1.2")));
        absolute.extend([(tag::COMMISSION, "3"), (tag::COMM_TYPE, "3")]);
        deliver(&mut b, b"8", &absolute).expect("fill");
        let commissions: Vec<f64> = b
            .events
            .iter()
            .filter_map(|e| match e {
                VenueEvent::Commission { amount, symbol: 0 } => Some(*amount),
                _ => None,
            })
            .collect();
        assert_eq!(commissions, [1.0, 3.0], "0.5 a unit of 2, then 3 for the fill");
        assert!(matches!(b.events[2], VenueEvent::Commission { .. }), "right after its fill: {:?}", b.events);
        let _ = key;
    }

    #[test]
    fn a_report_seen_twice_books_nothing_twice() {
        let mut b = book();
        let key = add(&mut b, "o1", 2.0, 5);
        let partial = report("o1", "F", "1", "1", Some(("1", "1.1")));
        deliver(&mut b, b"8", &partial).expect("partial");
        deliver(&mut b, b"8", &partial).expect("the same again (PossDup resend)");
        // An order status answer with the same CumQty: nothing new either.
        deliver(&mut b, b"8", &report("o1", "I", "1", "1", None)).expect("status");
        let fills = b.events.iter().filter(|e| matches!(e, VenueEvent::Fill { .. })).count();
        assert_eq!(fills, 1);
        // A status answer that shows more filled books the difference at the average price.
        deliver(&mut b, b"8", &report("o1", "I", "2", "2", None)).expect("status");
        assert_eq!(b.events.last(), Some(&VenueEvent::Fill { key, exec_id: 2, qty: 1.0, price: 1.1 }));
        assert!(b.orders.is_empty());
    }

    #[test]
    fn cancels_and_rejects_close_the_order() {
        let mut b = book();
        let k1 = add(&mut b, "o1", 2.0, 5);
        let k2 = add(&mut b, "o2", 2.0, 6);
        deliver(&mut b, b"8", &report("o1", "4", "4", "0", None)).expect("cancelled");
        deliver(&mut b, b"8", &report("o2", "8", "8", "0", None)).expect("rejected");
        assert!(b.events.contains(&VenueEvent::Cancelled { key: k1 }));
        assert!(b.events.contains(&VenueEvent::Rejected { key: k2, reason: "rejected by the venue" }));
        assert!(b.orders.is_empty());
    }

    #[test]
    fn a_cancel_report_finds_the_order_by_orig_cl_ord_id() {
        let mut b = book();
        let key = add(&mut b, "o1", 2.0, 5);
        b.orders[0].cancel_pending = true;
        let mut r = report("o1.c1", "4", "4", "0", None);
        r.push((tag::ORIG_CL_ORD_ID, "o1"));
        deliver(&mut b, b"8", &r).expect("cancelled");
        assert_eq!(b.events.last(), Some(&VenueEvent::Cancelled { key }));
        assert!(b.orders.is_empty());
        // A cancel refused: the order stays, no longer marked.
        let _k2 = add(&mut b, "o2", 1.0, 6);
        b.orders[0].cancel_pending = true;
        let reject = [
            (tag::ORDER_ID, "O2"),
            (tag::CL_ORD_ID, "o2.c2"),
            (tag::ORIG_CL_ORD_ID, "o2"),
            (tag::ORD_STATUS, "2"),
            (tag::CXL_REJ_RESPONSE_TO, "1"),
        ];
        deliver(&mut b, b"9", &reject).expect("cancel reject");
        assert_eq!(b.orders.len(), 1);
        assert!(!b.orders[0].cancel_pending);
    }

    #[test]
    fn late_reports_for_completed_orders_book_nothing_and_unknown_ones_are_adopted_once() {
        let mut b = book();
        let key = add(&mut b, "o1", 1.0, 5);
        let fill = report("o1", "F", "2", "1", Some(("1", "1.1")));
        deliver(&mut b, b"8", &fill).expect("fill");
        assert!(b.orders.is_empty());
        deliver(&mut b, b"8", &fill).expect("the same, late");
        assert_eq!(b.events.iter().filter(|e| matches!(e, VenueEvent::Fill { .. })).count(), 1);
        assert_eq!(b.events.last(), Some(&VenueEvent::Fill { key, exec_id: 1, qty: 1.0, price: 1.1 }));
        // An order sent by a predecessor: booked from the report, once.
        let other = report("p9", "F", "1", "2", Some(("2", "1.3")));
        deliver(&mut b, b"8", &other).expect("adopted");
        deliver(&mut b, b"8", &other).expect("the same again");
        let adopted: Vec<&VenueEvent> = b.events.iter().filter(|e| matches!(e, VenueEvent::Adopted { .. })).collect();
        assert_eq!(adopted.len(), 1);
        assert!(
            matches!(adopted[0], VenueEvent::Adopted { qty, price, side: Side::Buy, symbol: 0, .. } if *qty == 2.0 && *price == 1.3)
        );
    }

    #[test]
    fn completed_orders_survive_a_checkpoint_so_a_resent_fill_books_nothing() {
        let mut b = book();
        add(&mut b, "o1", 1.0, 5);
        let fill = report("o1", "F", "2", "1", Some(("1", "1.1")));
        deliver(&mut b, b"8", &fill).expect("fill");
        let state = b.completed_state();
        let mut after = book();
        after.restore_completed(&state);
        let mut resent = fill.clone();
        resent.push((tag::POSS_DUP_FLAG, "Y"));
        deliver(&mut after, b"8", &resent).expect("the venue resends the report");
        deliver(&mut after, b"8", &fill).expect("and once more without PossDup");
        assert!(after.events.is_empty(), "booked again: {:?}", after.events);
        // Without the table, the same report would be adopted (booked a second time).
        let mut fresh = book();
        deliver(&mut fresh, b"8", &fill).expect("adopted");
        assert_eq!(fresh.events.len(), 1);
    }

    #[test]
    fn incomplete_reports_are_refused_with_the_missing_tag() {
        let mut b = book();
        add(&mut b, "o1", 1.0, 5);
        let mut r = report("o1", "F", "2", "1", None);
        r.retain(|(t, _)| *t != tag::CUM_QTY);
        let err = deliver(&mut b, b"8", &r).expect_err("missing CumQty");
        assert_eq!((err.code, err.tag), (1, Some(tag::CUM_QTY)));
        let r = report("o1", "F", "2", "x", None);
        assert!(deliver(&mut b, b"8", &r).is_err(), "CumQty must be a number");
        assert!(b.events.is_empty());
        assert_eq!(deliver(&mut b, b"W", &[]).expect_err("unsupported").code, 11);
    }

    #[test]
    fn session_rejects_and_business_rejects_reach_the_right_order() {
        let mut b = book();
        let k1 = add(&mut b, "o1", 1.0, 5);
        let k2 = add(&mut b, "o2", 1.0, 6);
        b.on_session_reject(5, "bad tag", 0);
        assert_eq!(b.events, vec![VenueEvent::Rejected { key: k1, reason: "refused by the venue's session layer" }]);
        deliver(
            &mut b,
            b"j",
            &[(tag::REF_MSG_TYPE, "D"), (tag::BUSINESS_REJECT_REASON, "0"), (tag::BUSINESS_REJECT_REF_ID, "o2")],
        )
        .expect("business reject");
        assert_eq!(b.events.last(), Some(&VenueEvent::Rejected { key: k2, reason: "refused by the venue" }));
        // The venue not answering OrderStatusRequest keeps orders in flight.
        let k3 = add(&mut b, "o3", 1.0, 7);
        deliver(&mut b, b"j", &[(tag::REF_MSG_TYPE, "H"), (tag::BUSINESS_REJECT_REASON, "3")]).expect("unsupported");
        assert!(b.status_unsupported);
        assert_eq!(b.orders.len(), 1);
        assert_eq!(b.orders[0].req.key, k3);
    }

    #[test]
    fn only_unacknowledged_orders_of_the_missed_range_are_asked_about() {
        let mut b = book();
        add(&mut b, "o1", 1.0, 5);
        add(&mut b, "o2", 1.0, 6);
        add(&mut b, "o3", 1.0, 9);
        b.orders[1].acked = true;
        b.on_peer_missed(5, 9, 0);
        let d: Vec<Delivery> = b.orders.iter().map(|o| o.delivery).collect();
        assert_eq!(d, vec![Delivery::Missed, Delivery::Sent { conn: 1 }, Delivery::Sent { conn: 1 }]);
        assert!(b.reconcile_due);
    }

    #[test]
    fn after_a_sequence_reset_the_new_sessions_resend_request_takes_no_order_of_the_old_one() {
        let mut b = book();
        add(&mut b, "o1", 1.0, 5);
        add(&mut b, "o2", 1.0, 6);
        b.forget_sequence_numbers();
        assert!(b.reconcile_due, "asked about once in sync instead");
        // The new session's numbers 1..10 are other messages: nothing is taken as undelivered.
        b.on_peer_missed(1, 10, 0);
        assert!(b.orders.iter().all(|o| o.delivery == Delivery::Sent { conn: 1 }), "{:?}", b.orders);
    }

    #[test]
    fn an_order_asked_about_across_a_reset_of_a_venue_that_cannot_be_asked_is_given_up_then_booked_if_reported() {
        let mut b = book();
        add(&mut b, "o1", 1.0, 5);
        add(&mut b, "o2", 1.0, 6);
        b.orders[1].acked = true;
        b.forget_sequence_numbers();
        assert!(b.orders.iter().all(|o| o.across_reset));
        b.reconcile_due = false;
        b.orders[0].delivery = Delivery::StatusAsked;
        deliver(&mut b, b"j", &[(tag::REF_MSG_TYPE, "H"), (tag::BUSINESS_REJECT_REASON, "3")]).expect("unsupported");
        assert!(b.status_unsupported && b.reconcile_due, "the venue's reconcile gives it up");
        // What the reconcile does with it: refused as of unknown outcome, remembered with nothing booked.
        let key = b.orders[0].req.key;
        b.reject_order(0, "outcome unknown after a sequence reset");
        assert_eq!(
            b.events.last(),
            Some(&VenueEvent::Rejected { key, reason: "outcome unknown after a sequence reset" })
        );
        // A report that comes after all books its fill, once.
        let fill = report("o1", "F", "2", "1", Some(("1", "1.1")));
        deliver(&mut b, b"8", &fill).expect("late fill");
        deliver(&mut b, b"8", &fill).expect("the same again");
        let adopted: Vec<&VenueEvent> = b.events.iter().filter(|e| matches!(e, VenueEvent::Adopted { .. })).collect();
        assert_eq!(adopted.len(), 1, "{:?}", b.events);
        assert!(matches!(adopted[0], VenueEvent::Adopted { qty, .. } if *qty == 1.0));
    }
}
