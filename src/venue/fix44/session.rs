//! The FIX 4.4 session layer as a sans-IO state machine.
//!
//! The venue feeds it the bytes it read, the time, and timer expiries; the session appends the
//! bytes to send to an output buffer and calls an [`Application`] for what matters to trading.
//! It owns the sequence numbers (the venue persists them before the output leaves), Logon and
//! Logout, Heartbeat and TestRequest, gap detection with ResendRequest, and answers a
//! counterparty's ResendRequest with SequenceReset-GapFill: application messages are never sent
//! again (a stale order must not reach the market late); the application is told which of its
//! messages the counterparty never received instead, and decides.

use crate::engine::types::Nanos;
use crate::secrets::Secret;
use crate::timefmt::{fix_timestamp, FIX_TIMESTAMP_LEN};

use super::codec::{frame, printable, tag, Builder, Fields, Frame, Header, Message};

/// Session settings.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub sender: String,
    pub target: String,
    /// HeartBtInt, in seconds.
    pub heartbeat_secs: u64,
    /// Ask both sides to start again from sequence number 1 at every Logon.
    pub reset_on_logon: bool,
    pub logon_timeout: Nanos,
    pub username: Option<String>,
    pub password: Option<Secret>,
}

/// The next sequence number to send and the next one expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqNums {
    pub next_out: u64,
    pub next_in: u64,
}

impl Default for SeqNums {
    fn default() -> Self {
        SeqNums { next_out: 1, next_in: 1 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Disconnected,
    /// Logon sent, waiting for the answer.
    LogonSent {
        at: Nanos,
    },
    Active,
    /// Logout sent, waiting for the answer.
    LogoutSent {
        at: Nanos,
    },
}

/// Why the session wants the connection closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disconnect(pub String);

/// A reason to refuse an application message with a session Reject (35=3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RejectReason {
    /// SessionRejectReason (373): 1 required tag missing, 5 value incorrect, 11 invalid MsgType.
    pub code: u32,
    /// RefTagID (371), when a tag is at fault.
    pub tag: Option<u32>,
    pub text: &'static str,
}

/// What the trading side of the venue does with the session's news.
pub trait Application {
    /// Logon answered; the session is up (there may still be a gap to fill).
    fn on_logon(&mut self, now: Nanos);
    /// An application message, in sequence. An `Err` is answered with a session Reject.
    fn on_message(&mut self, msg: &Message<'_>, now: Nanos) -> Result<(), RejectReason>;
    /// The counterparty refused one of our messages (35=3).
    fn on_session_reject(&mut self, ref_seq: u64, text: &str, now: Nanos);
    /// The counterparty never received our messages `begin..end` (it asked for them; they were
    /// gap-filled, not sent again).
    fn on_peer_missed(&mut self, begin: u64, end: u64, now: Nanos);
    /// No gap outstanding in what we received: the books are as current as the venue's.
    fn on_in_sync(&mut self, now: Nanos);
}

/// Things the session counts (exported by the venue).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    pub garbled: u64,
    pub rejects_sent: u64,
    pub rejects_received: u64,
    pub resend_requests_sent: u64,
    pub gap_fills_sent: u64,
    pub heartbeats_sent: u64,
    pub test_requests_sent: u64,
}

/// A FIX 4.4 initiator session.
#[derive(Debug)]
pub struct Session {
    cfg: SessionConfig,
    heartbeat: Nanos,
    state: State,
    seqs: SeqNums,
    /// Unix time minus engine time, taken at connect, for SendingTime.
    unix_offset: i128,
    last_sent: Nanos,
    last_recv: Nanos,
    /// A TestRequest we sent and are waiting to see answered: (id, when).
    test_pending: Option<(u64, Nanos)>,
    test_counter: u64,
    /// A ResendRequest we sent is outstanding until we have received up to this sequence number.
    resend_until: Option<u64>,
    /// Sequence number of this connection's Logon: messages before it belong to earlier connections.
    logon_seq: u64,
    /// The TestRequest sent right after Logon, unanswered: (id, when). Its answer comes after the
    /// counterparty has dealt with any gap in what it received from us, so no order goes out
    /// before it (an order sent earlier could be taken for one the counterparty missed).
    sync_pending: Option<(u64, Nanos)>,
    builder: Builder,
    fields: Fields,
    pub counters: Counters,
}

const LOGOUT_TIMEOUT: Nanos = 2_000_000_000;

impl Session {
    pub fn new(cfg: SessionConfig, seqs: SeqNums) -> Self {
        let heartbeat = cfg.heartbeat_secs.max(1) * 1_000_000_000;
        Session {
            cfg,
            heartbeat,
            state: State::Disconnected,
            seqs,
            unix_offset: 0,
            last_sent: 0,
            last_recv: 0,
            test_pending: None,
            test_counter: 0,
            resend_until: None,
            logon_seq: 0,
            sync_pending: None,
            builder: Builder::new(),
            fields: Fields::new(),
            counters: Counters::default(),
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn seqs(&self) -> SeqNums {
        self.seqs
    }

    pub fn is_active(&self) -> bool {
        self.state == State::Active
    }

    /// Logged on with no gap outstanding either way: orders may go out.
    pub fn is_in_sync(&self) -> bool {
        self.state == State::Active && self.resend_until.is_none() && self.sync_pending.is_none()
    }

    /// The TCP connection is up: sends Logon. `unix_ns` is the wall clock now.
    pub fn connected(&mut self, now: Nanos, unix_ns: i128, out: &mut Vec<u8>) {
        self.unix_offset = unix_ns - now as i128;
        self.test_pending = None;
        self.resend_until = None;
        self.sync_pending = None;
        self.last_recv = now;
        if self.cfg.reset_on_logon {
            self.seqs = SeqNums::default();
        }
        let hb = self.cfg.heartbeat_secs;
        let reset = self.cfg.reset_on_logon;
        let user = self.cfg.username.clone();
        let pass = self.cfg.password.clone();
        self.send(b"A", now, out, |b| {
            b.field(tag::ENCRYPT_METHOD, b"0").field_u64(tag::HEART_BT_INT, hb);
            if reset {
                b.field(tag::RESET_SEQ_NUM_FLAG, b"Y");
            }
            if let Some(u) = &user {
                b.field(tag::USERNAME, u.as_bytes());
            }
            if let Some(p) = &pass {
                b.field(tag::PASSWORD, p.expose().as_bytes());
            }
        });
        self.logon_seq = self.seqs.next_out - 1;
        self.state = State::LogonSent { at: now };
    }

    /// The connection is gone.
    pub fn disconnected(&mut self) {
        self.state = State::Disconnected;
        self.test_pending = None;
        self.resend_until = None;
        self.sync_pending = None;
    }

    /// Sends Logout; the session ends when the answer comes or after a short wait.
    pub fn logout(&mut self, text: &str, now: Nanos, out: &mut Vec<u8>) {
        if matches!(self.state, State::Active | State::LogonSent { .. }) {
            self.send(b"5", now, out, |b| {
                b.field(tag::TEXT, text.as_bytes());
            });
            self.state = State::LogoutSent { at: now };
        }
    }

    /// Sends an application message when the session is up; returns its sequence number.
    pub fn send_app(
        &mut self,
        msg_type: &[u8],
        now: Nanos,
        out: &mut Vec<u8>,
        body: impl FnOnce(&mut Builder),
    ) -> Option<u64> {
        if self.state != State::Active {
            return None;
        }
        Some(self.send(msg_type, now, out, body))
    }

    fn sending_time(&self, now: Nanos) -> [u8; FIX_TIMESTAMP_LEN] {
        let mut t = [0u8; FIX_TIMESTAMP_LEN];
        fix_timestamp(self.unix_offset + now as i128, &mut t);
        t
    }

    /// The wall clock (UTC) as a FIX timestamp, for TransactTime.
    pub fn timestamp(&self, now: Nanos) -> [u8; FIX_TIMESTAMP_LEN] {
        self.sending_time(now)
    }

    fn send(&mut self, msg_type: &[u8], now: Nanos, out: &mut Vec<u8>, body: impl FnOnce(&mut Builder)) -> u64 {
        let seq = self.seqs.next_out;
        let time = self.sending_time(now);
        let h = Header {
            msg_type,
            sender: self.cfg.sender.as_bytes(),
            target: self.cfg.target.as_bytes(),
            seq,
            sending_time: &time,
            poss_dup: None,
        };
        body(self.builder.start(&h));
        self.builder.finish(out);
        self.seqs.next_out += 1;
        self.last_sent = now;
        seq
    }

    /// When [`Session::on_timer`] next has something to do.
    pub fn next_deadline(&self) -> Option<Nanos> {
        match self.state {
            State::Disconnected => None,
            State::LogonSent { at } => Some(at + self.cfg.logon_timeout),
            State::LogoutSent { at } => Some(at + LOGOUT_TIMEOUT),
            State::Active => {
                let hb = self.last_sent + self.heartbeat;
                let test = match self.test_pending {
                    Some((_, at)) => at + self.heartbeat,
                    None => self.last_recv + self.heartbeat + self.heartbeat / 5,
                };
                let sync = self.sync_pending.map_or(Nanos::MAX, |(_, at)| at + self.cfg.logon_timeout);
                Some(hb.min(test).min(sync))
            }
        }
    }

    /// Heartbeats, TestRequests and timeouts due by `now`.
    pub fn on_timer(&mut self, now: Nanos, out: &mut Vec<u8>) -> Result<(), Disconnect> {
        match self.state {
            State::Disconnected => Ok(()),
            State::LogonSent { at } if now >= at + self.cfg.logon_timeout => {
                Err(Disconnect(format!("no Logon answer within {} ms", self.cfg.logon_timeout / 1_000_000)))
            }
            State::LogoutSent { at } if now >= at + LOGOUT_TIMEOUT => Err(Disconnect("Logout not answered".into())),
            State::Active => {
                if let Some((_, at)) = self.sync_pending {
                    if now >= at + self.cfg.logon_timeout {
                        return Err(Disconnect(format!(
                            "the TestRequest after Logon went unanswered for {} ms",
                            self.cfg.logon_timeout / 1_000_000
                        )));
                    }
                }
                match self.test_pending {
                    Some((_, at)) if now >= at + self.heartbeat => {
                        return Err(Disconnect(format!(
                            "heartbeat missed: nothing received for {} s, TestRequest unanswered",
                            (now - self.last_recv) / 1_000_000_000
                        )));
                    }
                    None if now >= self.last_recv + self.heartbeat + self.heartbeat / 5 => {
                        self.test_counter += 1;
                        let id = self.test_counter;
                        let mut req_id = b"TEST".to_vec();
                        super::codec::push_u64(&mut req_id, id);
                        self.send(b"1", now, out, |b| {
                            b.field(tag::TEST_REQ_ID, &req_id);
                        });
                        self.test_pending = Some((id, now));
                        self.counters.test_requests_sent += 1;
                    }
                    _ => {}
                }
                if now >= self.last_sent + self.heartbeat {
                    self.send(b"0", now, out, |_| {});
                    self.counters.heartbeats_sent += 1;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Handles every whole message at the front of `input` and removes it from there.
    pub fn on_bytes(
        &mut self,
        input: &mut Vec<u8>,
        now: Nanos,
        out: &mut Vec<u8>,
        app: &mut dyn Application,
    ) -> Result<(), Disconnect> {
        let mut pos = 0;
        let mut result = Ok(());
        while pos < input.len() {
            match frame(&input[pos..]) {
                Frame::Incomplete => break,
                Frame::Garbled { skip, why } => {
                    self.counters.garbled += 1;
                    log::warn!(
                        "FIX: dropped {skip} garbled bytes from {} ({}): {}",
                        self.cfg.target,
                        why.as_str(),
                        printable(&input[pos..pos + skip.min(200)])
                    );
                    pos += skip;
                }
                Frame::Message(len) => {
                    self.last_recv = now;
                    let r = self.on_message(pos, len, input, now, out, app);
                    pos += len;
                    if let Err(e) = r {
                        result = Err(e);
                        break;
                    }
                }
            }
        }
        input.drain(..pos);
        result
    }

    fn on_message(
        &mut self,
        pos: usize,
        len: usize,
        input: &[u8],
        now: Nanos,
        out: &mut Vec<u8>,
        app: &mut dyn Application,
    ) -> Result<(), Disconnect> {
        // Parse into the reused field table; the table is taken out so `self` stays usable.
        let mut fields = std::mem::take(&mut self.fields);
        let result = match fields.parse(&input[pos..pos + len]) {
            Ok(msg) => self.handle(&msg, now, out, app),
            Err(e) => {
                self.counters.garbled += 1;
                log::warn!("FIX: dropped a malformed message from {} ({e})", self.cfg.target);
                Ok(())
            }
        };
        self.fields = fields;
        result
    }

    fn reject(&mut self, ref_seq: u64, msg_type: &[u8], r: RejectReason, now: Nanos, out: &mut Vec<u8>) {
        self.counters.rejects_sent += 1;
        log::warn!(
            "FIX: rejected message {ref_seq} (35={}) from {}: {}",
            String::from_utf8_lossy(msg_type),
            self.cfg.target,
            r.text
        );
        let mt: Vec<u8> = msg_type.iter().copied().take(8).collect();
        self.send(b"3", now, out, |b| {
            b.field_u64(tag::REF_SEQ_NUM, ref_seq);
            if let Some(t) = r.tag {
                b.field_u64(tag::REF_TAG_ID, u64::from(t));
            }
            if !mt.is_empty() {
                b.field(tag::REF_MSG_TYPE, &mt);
            }
            b.field_u64(tag::SESSION_REJECT_REASON, u64::from(r.code)).field(tag::TEXT, r.text.as_bytes());
        });
    }

    fn handle(
        &mut self,
        m: &Message<'_>,
        now: Nanos,
        out: &mut Vec<u8>,
        app: &mut dyn Application,
    ) -> Result<(), Disconnect> {
        let t = m.msg_type();
        let Some(seq) = m.get_u64(tag::MSG_SEQ_NUM) else {
            // Without a sequence number nothing can be referenced; FIX treats it as garbled.
            self.counters.garbled += 1;
            log::warn!("FIX: dropped a message without MsgSeqNum from {}", self.cfg.target);
            return Ok(());
        };
        if m.get(tag::SENDER_COMP_ID) != Some(self.cfg.target.as_bytes())
            || m.get(tag::TARGET_COMP_ID) != Some(self.cfg.sender.as_bytes())
        {
            let r = RejectReason { code: 9, tag: None, text: "CompID problem" };
            self.reject(seq, t, r, now, out);
            self.logout("CompID problem", now, out);
            return Err(Disconnect(format!(
                "message {seq} from {} carries the wrong SenderCompID/TargetCompID",
                self.cfg.target
            )));
        }
        let poss_dup = m.flag(tag::POSS_DUP_FLAG);

        match self.state {
            State::Disconnected => return Ok(()),
            State::LogonSent { .. } if t != b"A" && t != b"5" => {
                return Err(Disconnect(format!(
                    "first message from {} is 35={}, not Logon",
                    self.cfg.target,
                    String::from_utf8_lossy(t)
                )));
            }
            _ => {}
        }

        // Messages handled whatever their sequence number.
        match t {
            b"A" if matches!(self.state, State::LogonSent { .. }) => return self.on_logon(m, seq, now, out, app),
            b"4" if !m.flag(tag::GAP_FILL_FLAG) => {
                // SequenceReset-Reset: the counterparty's numbering starts again at NewSeqNo.
                match m.get_u64(tag::NEW_SEQ_NO) {
                    Some(n) if n >= self.seqs.next_in => {
                        log::warn!("FIX: {} reset its sequence numbers to {n}", self.cfg.target);
                        self.seqs.next_in = n;
                        self.check_gap_closed(now, app);
                    }
                    Some(_) => self.reject(
                        seq,
                        t,
                        RejectReason {
                            code: 5,
                            tag: Some(tag::NEW_SEQ_NO),
                            text: "NewSeqNo lower than the expected sequence number",
                        },
                        now,
                        out,
                    ),
                    None => self.reject(
                        seq,
                        t,
                        RejectReason { code: 1, tag: Some(tag::NEW_SEQ_NO), text: "required tag missing" },
                        now,
                        out,
                    ),
                }
                return Ok(());
            }
            b"2" if seq > self.seqs.next_in => {
                // Answered even during a gap: the counterparty is waiting for it.
                self.on_resend_request(m, seq, now, out, app);
                self.request_resend(seq, now, out);
                return Ok(());
            }
            b"5" if seq > self.seqs.next_in => return self.on_logout(m, now, out),
            _ => {}
        }

        if seq > self.seqs.next_in {
            self.request_resend(seq, now, out);
            return Ok(());
        }
        if seq < self.seqs.next_in {
            if poss_dup {
                return Ok(());
            }
            let text = format!("MsgSeqNum too low, expecting {} but received {seq}", self.seqs.next_in);
            self.logout(&text, now, out);
            return Err(Disconnect(format!(
                "{text} from {}: the two sides disagree on sequence numbers; set venue.fix44.reset_on_logon or agree a reset with the broker",
                self.cfg.target
            )));
        }

        // In sequence.
        self.seqs.next_in = seq + 1;
        let result = match t {
            b"0" => {
                if let Some(got) = m.get(tag::TEST_REQ_ID) {
                    if let Some((id, _)) = self.test_pending {
                        if got.strip_prefix(b"TEST").is_some_and(|d| d == id.to_string().as_bytes()) {
                            self.test_pending = None;
                        }
                    }
                    if let Some((id, _)) = self.sync_pending {
                        if got.strip_prefix(b"SYNC").is_some_and(|d| d == id.to_string().as_bytes()) {
                            self.sync_pending = None;
                            self.maybe_in_sync(now, app);
                        }
                    }
                }
                Ok(())
            }
            b"1" => {
                match m.get(tag::TEST_REQ_ID).map(<[u8]>::to_vec) {
                    Some(id) => {
                        self.send(b"0", now, out, |b| {
                            b.field(tag::TEST_REQ_ID, &id);
                        });
                    }
                    None => self.reject(
                        seq,
                        t,
                        RejectReason { code: 1, tag: Some(tag::TEST_REQ_ID), text: "required tag missing" },
                        now,
                        out,
                    ),
                }
                Ok(())
            }
            b"2" => {
                self.on_resend_request(m, seq, now, out, app);
                Ok(())
            }
            b"3" => {
                self.counters.rejects_received += 1;
                let ref_seq = m.get_u64(tag::REF_SEQ_NUM).unwrap_or(0);
                let text = m.get_str(tag::TEXT).unwrap_or("");
                log::error!(
                    "FIX: {} rejected our message {ref_seq}: {text} (reason {})",
                    self.cfg.target,
                    m.get_str(tag::SESSION_REJECT_REASON).unwrap_or("?")
                );
                app.on_session_reject(ref_seq, text, now);
                Ok(())
            }
            b"4" => {
                // GapFill: the messages up to NewSeqNo were administrative or stale.
                match m.get_u64(tag::NEW_SEQ_NO) {
                    Some(n) if n > seq => self.seqs.next_in = n,
                    Some(_) => {}
                    None => self.reject(
                        seq,
                        t,
                        RejectReason { code: 1, tag: Some(tag::NEW_SEQ_NO), text: "required tag missing" },
                        now,
                        out,
                    ),
                }
                Ok(())
            }
            b"5" => return self.on_logout(m, now, out),
            b"A" => {
                // A second Logon on an active session.
                let r = RejectReason { code: 5, tag: None, text: "already logged on" };
                self.reject(seq, t, r, now, out);
                Ok(())
            }
            _ if t.len() > 2 || !t.iter().all(u8::is_ascii_alphanumeric) => {
                let r = RejectReason { code: 11, tag: Some(tag::MSG_TYPE), text: "Invalid MsgType" };
                self.reject(seq, t, r, now, out);
                Ok(())
            }
            _ => {
                if let Err(r) = app.on_message(m, now) {
                    self.reject(seq, t, r, now, out);
                }
                Ok(())
            }
        };
        self.check_gap_closed(now, app);
        result
    }

    fn on_logon(
        &mut self,
        m: &Message<'_>,
        seq: u64,
        now: Nanos,
        out: &mut Vec<u8>,
        app: &mut dyn Application,
    ) -> Result<(), Disconnect> {
        if m.flag(tag::RESET_SEQ_NUM_FLAG) {
            self.seqs.next_in = seq;
        }
        if seq < self.seqs.next_in {
            let text = format!("MsgSeqNum too low, expecting {} but received {seq}", self.seqs.next_in);
            self.logout(&text, now, out);
            return Err(Disconnect(format!(
                "Logon from {}: {text}; set venue.fix44.reset_on_logon or agree a reset with the broker",
                self.cfg.target
            )));
        }
        self.state = State::Active;
        log::info!(
            "FIX: logged on to {} (sequence numbers: next to send {}, received {seq}, expected {})",
            self.cfg.target,
            self.seqs.next_out,
            self.seqs.next_in
        );
        app.on_logon(now);
        if seq > self.seqs.next_in {
            self.request_resend(seq, now, out);
        } else {
            self.seqs.next_in = seq + 1;
        }
        let id = self.logon_seq;
        let mut req_id = b"SYNC".to_vec();
        super::codec::push_u64(&mut req_id, id);
        self.send(b"1", now, out, |b| {
            b.field(tag::TEST_REQ_ID, &req_id);
        });
        self.sync_pending = Some((id, now));
        Ok(())
    }

    fn on_logout(&mut self, m: &Message<'_>, now: Nanos, out: &mut Vec<u8>) -> Result<(), Disconnect> {
        let text = m.get_str(tag::TEXT).unwrap_or("").to_owned();
        if !matches!(self.state, State::LogoutSent { .. }) {
            self.send(b"5", now, out, |_| {});
        }
        Err(Disconnect(if text.is_empty() {
            format!("{} logged out", self.cfg.target)
        } else {
            format!("{} logged out: {text}", self.cfg.target)
        }))
    }

    fn request_resend(&mut self, seen: u64, now: Nanos, out: &mut Vec<u8>) {
        if self.resend_until.is_some_and(|u| u >= seen) {
            return;
        }
        let begin = self.seqs.next_in;
        log::warn!("FIX: gap from {}: expected {begin}, received {seen}; asking for a resend", self.cfg.target);
        self.send(b"2", now, out, |b| {
            b.field_u64(tag::BEGIN_SEQ_NO, begin).field_u64(tag::END_SEQ_NO, 0);
        });
        self.counters.resend_requests_sent += 1;
        self.resend_until = Some(seen);
    }

    fn check_gap_closed(&mut self, now: Nanos, app: &mut dyn Application) {
        if let Some(until) = self.resend_until {
            if self.seqs.next_in > until {
                self.resend_until = None;
                log::info!("FIX: gap from {} filled at {}", self.cfg.target, self.seqs.next_in);
                self.maybe_in_sync(now, app);
            }
        }
    }

    fn maybe_in_sync(&mut self, now: Nanos, app: &mut dyn Application) {
        if self.is_in_sync() {
            app.on_in_sync(now);
        }
    }

    /// Answers a ResendRequest with one SequenceReset-GapFill over everything asked for.
    fn on_resend_request(
        &mut self,
        m: &Message<'_>,
        seq: u64,
        now: Nanos,
        out: &mut Vec<u8>,
        app: &mut dyn Application,
    ) {
        let (Some(begin), Some(end)) = (m.get_u64(tag::BEGIN_SEQ_NO), m.get_u64(tag::END_SEQ_NO)) else {
            let missing = if m.has(tag::BEGIN_SEQ_NO) { tag::END_SEQ_NO } else { tag::BEGIN_SEQ_NO };
            let r = RejectReason { code: 1, tag: Some(missing), text: "required tag missing or not a number" };
            self.reject(seq, m.msg_type(), r, now, out);
            return;
        };
        let next = self.seqs.next_out;
        if begin == 0 || begin >= next {
            return;
        }
        let end = if end == 0 || end >= next { next - 1 } else { end };
        log::warn!(
            "FIX: {} asked for our messages {begin}..={end}; gap-filling (orders are never sent twice)",
            self.cfg.target
        );
        let time = self.sending_time(now);
        let h = Header {
            msg_type: b"4",
            sender: self.cfg.sender.as_bytes(),
            target: self.cfg.target.as_bytes(),
            seq: begin,
            sending_time: &time,
            poss_dup: Some(&time),
        };
        self.builder.start(&h).field(tag::GAP_FILL_FLAG, b"Y").field_u64(tag::NEW_SEQ_NO, end + 1);
        self.builder.finish(out);
        self.last_sent = now;
        self.counters.gap_fills_sent += 1;
        // Over TCP nothing is lost within a connection: what the counterparty missed was sent on
        // an earlier one, before this connection's Logon.
        let missed_end = (end + 1).min(self.logon_seq);
        if begin < missed_end {
            app.on_peer_missed(begin, missed_end, now);
        }
    }
}
