//! The FIX 4.4 session layer as a sans-IO state machine.
//!
//! The venue feeds it the bytes it read, the time, and timer expiries; the session appends the
//! bytes to send to an output buffer and calls an [`Application`] for what matters to trading.
//! It owns the sequence numbers (the venue persists them before the output leaves), Logon and
//! Logout, Heartbeat and TestRequest, gap detection with ResendRequest, and answers a
//! counterparty's ResendRequest with SequenceReset-GapFill: application messages are never sent
//! again (a stale order must not reach the market late); the application is told which of its
//! messages the counterparty never received instead, and decides.

use crate::domain::types::Nanos;
use crate::secrets::Secret;
use crate::support::timefmt::{fix_timestamp, FIX_TIMESTAMP_LEN};

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
    /// The counterparty started both sides' numbering again at 1 (a Logon with ResetSeqNumFlag
    /// we did not ask for): the numbers our earlier messages went out with mean nothing now.
    fn on_reset(&mut self, now: Nanos);
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
    /// A Logout was sent or received on this connection.
    logged_out: bool,
    /// This connection's Logon asked for a reset (141=Y).
    sent_reset: bool,
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
            logged_out: false,
            sent_reset: false,
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

    /// Expects the counterparty's messages from `next_in` on again (a restore from a checkpoint
    /// older than the sequence-number file): the gap is asked for at Logon and replayed.
    pub fn rewind_in(&mut self, next_in: u64) {
        if next_in >= 1 && next_in < self.seqs.next_in && self.state == State::Disconnected {
            self.seqs.next_in = next_in;
        }
    }

    /// Both sides start again at 1 (a new session period, or a reset the config asks for); only
    /// between connections.
    pub fn reset_seqs(&mut self) {
        if self.state == State::Disconnected {
            self.seqs = SeqNums::default();
        }
    }

    /// Whether a Logout was sent or received on this connection.
    pub fn logged_out(&self) -> bool {
        self.logged_out
    }

    /// Our Logout is out and its answer awaited: what the counterparty sends meanwhile is still
    /// read and applied.
    pub fn logging_out(&self) -> bool {
        matches!(self.state, State::LogoutSent { .. })
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
        self.logged_out = false;
        self.last_recv = now;
        if self.cfg.reset_on_logon {
            self.seqs = SeqNums::default();
        }
        let hb = self.cfg.heartbeat_secs;
        let reset = self.cfg.reset_on_logon;
        self.sent_reset = reset;
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
            self.logged_out = true;
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
            b"A" if self.state == State::Active && m.flag(tag::RESET_SEQ_NUM_FLAG) => {
                // FIX 4.4 lets either side reset a running session with a new Logon, 141=Y.
                self.on_peer_reset(seq, now, out, app);
                self.send_sync(now, out);
                return Ok(());
            }
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
            // A Logout is taken whatever its number, as QuickFIX takes it: an answer to our Logon
            // from a gateway outside its session (its numbers reset) says why in its Text, and
            // "MsgSeqNum too low" would send the operator the wrong way.
            b"5" if seq != self.seqs.next_in || matches!(self.state, State::LogonSent { .. }) => {
                if seq == self.seqs.next_in {
                    self.seqs.next_in = seq + 1;
                }
                return self.on_logout(m, now, out);
            }
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
            if self.sent_reset {
                self.seqs.next_in = seq;
            } else {
                self.on_peer_reset(seq, now, out, app);
                self.seqs.next_in = seq;
            }
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
        self.send_sync(now, out);
        Ok(())
    }

    /// The counterparty reset both sides to 1 without being asked (its Logon, answer or in
    /// session, carries 141=Y): as QuickFIX does, our numbering starts again at 1 with a Logon
    /// that says so, its Logon (`seq`, normally 1) is the first of its new numbering, and the
    /// application forgets which number each order went out with.
    fn on_peer_reset(&mut self, seq: u64, now: Nanos, out: &mut Vec<u8>, app: &mut dyn Application) {
        log::warn!(
            "FIX: {} reset both sides' sequence numbers (Logon with ResetSeqNumFlag=Y, MsgSeqNum {seq}); \
             numbering starts again at 1 and orders in flight are asked about",
            self.cfg.target
        );
        self.seqs = SeqNums { next_out: 1, next_in: seq + 1 };
        self.test_pending = None;
        self.resend_until = None;
        self.sync_pending = None;
        let hb = self.cfg.heartbeat_secs;
        self.send(b"A", now, out, |b| {
            b.field(tag::ENCRYPT_METHOD, b"0").field_u64(tag::HEART_BT_INT, hb).field(tag::RESET_SEQ_NUM_FLAG, b"Y");
        });
        self.sent_reset = true;
        self.logon_seq = self.seqs.next_out - 1;
        app.on_reset(now);
    }

    /// Sends the TestRequest whose Heartbeat says the counterparty is in sync with us; its id is
    /// `SYNC<its own sequence number>`.
    fn send_sync(&mut self, now: Nanos, out: &mut Vec<u8>) {
        let seq = self.seqs.next_out;
        let mut req_id = b"SYNC".to_vec();
        super::codec::push_u64(&mut req_id, seq);
        self.send(b"1", now, out, |b| {
            b.field(tag::TEST_REQ_ID, &req_id);
        });
        self.sync_pending = Some((seq, now));
    }

    fn on_logout(&mut self, m: &Message<'_>, now: Nanos, out: &mut Vec<u8>) -> Result<(), Disconnect> {
        let text = m.get_str(tag::TEXT).unwrap_or("").to_owned();
        self.logged_out = true;
        let what = match self.state {
            State::LogonSent { .. } => "refused the Logon (outside its session, or it does not know us)",
            _ => "logged out",
        };
        if !matches!(self.state, State::LogoutSent { .. }) {
            self.send(b"5", now, out, |_| {});
        }
        Err(Disconnect(if text.is_empty() {
            format!("{} {what}", self.cfg.target)
        } else {
            format!("{} {what}: {text}", self.cfg.target)
        }))
    }

    fn request_resend(&mut self, seen: u64, now: Nanos, out: &mut Vec<u8>) {
        if let Some(until) = &mut self.resend_until {
            // The request outstanding runs to infinity (EndSeqNo=0): it covers this message too.
            *until = (*until).max(seen);
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

    /// Answers a ResendRequest with one SequenceReset-GapFill.
    ///
    /// Asked from before this connection's Logon, the fill ends with the Logon: what was sent on
    /// this connection after it reached the counterparty over the same TCP stream, which holds it
    /// queued behind its gap (QuickFIX does) and takes it once the fill moves its expected number
    /// past the Logon. Filling over those numbers too would make it discard them: our own
    /// ResendRequest among them, whose answer would then never come, and any order.
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
        let mut end = if end == 0 || end >= next { next - 1 } else { end };
        if begin <= self.logon_seq {
            end = end.min(self.logon_seq);
        }
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
        // The gap fill covered the sync TestRequest too (the counterparty had it queued behind
        // the gap and now skips it): ask again, after the fill.
        if self.sync_pending.is_some_and(|(seq, _)| (begin..=end).contains(&seq)) {
            self.send_sync(now, out);
        }
        // Over TCP nothing is lost within a connection: what the counterparty missed was sent on
        // an earlier one, before this connection's Logon.
        let missed_end = (end + 1).min(self.logon_seq);
        if begin < missed_end {
            app.on_peer_missed(begin, missed_end, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::venue::fix44::codec::{Builder, Fields, Header};

    const SEC: Nanos = 1_000_000_000;

    /// Records what the session tells the application.
    #[derive(Default)]
    struct Recorder {
        logons: usize,
        messages: Vec<(Vec<u8>, u64)>,
        rejects: Vec<u64>,
        missed: Vec<(u64, u64)>,
        in_sync: usize,
        resets: usize,
        refuse_with: Option<RejectReason>,
    }

    impl Application for Recorder {
        fn on_logon(&mut self, _now: Nanos) {
            self.logons += 1;
        }
        fn on_message(&mut self, m: &Message<'_>, _now: Nanos) -> Result<(), RejectReason> {
            self.messages.push((m.msg_type().to_vec(), m.get_u64(tag::MSG_SEQ_NUM).unwrap_or(0)));
            self.refuse_with.map_or(Ok(()), Err)
        }
        fn on_session_reject(&mut self, ref_seq: u64, _text: &str, _now: Nanos) {
            self.rejects.push(ref_seq);
        }
        fn on_peer_missed(&mut self, begin: u64, end: u64, _now: Nanos) {
            self.missed.push((begin, end));
        }
        fn on_in_sync(&mut self, _now: Nanos) {
            self.in_sync += 1;
        }
        fn on_reset(&mut self, _now: Nanos) {
            self.resets += 1;
        }
    }

    fn cfg() -> SessionConfig {
        SessionConfig {
            sender: "BOT".into(),
            target: "VENUE".into(),
            heartbeat_secs: 10,
            reset_on_logon: false,
            logon_timeout: 5 * SEC,
            username: Some("trader".into()),
            password: Some(crate::secrets::Secret::for_tests("hunter2")),
        }
    }

    /// A message from the venue.
    fn peer(msg_type: &[u8], seq: u64, fields: &[(u32, &[u8])], poss_dup: bool) -> Vec<u8> {
        crate::venue::fix44::testing::peer_message("VENUE", "BOT", msg_type, seq, fields, poss_dup)
    }

    /// Every message in `out`, as (MsgType, fields), and clears it.
    fn sent(out: &mut Vec<u8>) -> Vec<(String, Vec<(u32, String)>)> {
        let mut all = Vec::new();
        let mut pos = 0;
        let mut f = Fields::new();
        while let Frame::Message(len) = frame(&out[pos..]) {
            let m = f.parse(&out[pos..pos + len]).expect("our own message parses");
            all.push((
                String::from_utf8_lossy(m.msg_type()).into_owned(),
                m.fields().map(|(t, v)| (t, String::from_utf8_lossy(v).into_owned())).collect(),
            ));
            pos += len;
        }
        assert_eq!(pos, out.len(), "only whole, valid messages are sent");
        out.clear();
        all
    }

    fn field(msg: &(String, Vec<(u32, String)>), tag: u32) -> Option<&str> {
        msg.1.iter().find(|(t, _)| *t == tag).map(|(_, v)| v.as_str())
    }

    fn feed(
        s: &mut Session,
        bytes: &[u8],
        now: Nanos,
        out: &mut Vec<u8>,
        app: &mut Recorder,
    ) -> Result<(), Disconnect> {
        let mut input = bytes.to_vec();
        let r = s.on_bytes(&mut input, now, out, app);
        assert!(input.is_empty() || r.is_err(), "whole messages are consumed");
        r
    }

    /// A session logged on and in sync, with the venue's next sequence number `peer_next`.
    fn logged_on(seqs: SeqNums) -> (Session, Recorder, Vec<u8>) {
        let mut s = Session::new(cfg(), seqs);
        let mut app = Recorder::default();
        let mut out = Vec::new();
        s.connected(0, 1_764_000_000 * 1_000_000_000, &mut out);
        let logon = sent(&mut out);
        assert_eq!(logon[0].0, "A");
        let seq = seqs.next_in;
        feed(&mut s, &peer(b"A", seq, &[(98, b"0"), (108, b"10")], false), 0, &mut out, &mut app).expect("logon");
        let sync = sent(&mut out);
        assert_eq!(sync.len(), 1);
        assert_eq!(sync[0].0, "1");
        let id = field(&sync[0], tag::TEST_REQ_ID).expect("id").to_owned();
        assert!(!s.is_in_sync(), "no order before the sync answer");
        feed(&mut s, &peer(b"0", seq + 1, &[(112, id.as_bytes())], false), 0, &mut out, &mut app).expect("hb");
        assert!(s.is_in_sync());
        assert_eq!(app.in_sync, 1);
        (s, app, out)
    }

    #[test]
    fn logon_carries_credentials_and_the_heartbeat_interval() {
        let mut s = Session::new(cfg(), SeqNums { next_out: 7, next_in: 3 });
        let mut out = Vec::new();
        s.connected(0, 0, &mut out);
        let m = sent(&mut out);
        assert_eq!(m.len(), 1);
        assert_eq!(field(&m[0], tag::MSG_SEQ_NUM), Some("7"));
        assert_eq!(field(&m[0], tag::HEART_BT_INT), Some("10"));
        assert_eq!(field(&m[0], tag::USERNAME), Some("trader"));
        assert_eq!(field(&m[0], tag::PASSWORD), Some("hunter2"));
        assert_eq!(field(&m[0], tag::RESET_SEQ_NUM_FLAG), None);
        assert_eq!(s.seqs(), SeqNums { next_out: 8, next_in: 3 });
        let mut reset = cfg();
        reset.reset_on_logon = true;
        let mut s = Session::new(reset, SeqNums { next_out: 7, next_in: 3 });
        s.connected(0, 0, &mut out);
        let m = sent(&mut out);
        assert_eq!(field(&m[0], tag::MSG_SEQ_NUM), Some("1"));
        assert_eq!(field(&m[0], tag::RESET_SEQ_NUM_FLAG), Some("Y"));
    }

    #[test]
    fn a_reset_the_counterparty_makes_in_session_starts_both_sides_again_at_1() {
        let (mut s, mut app, mut out) = logged_on(SeqNums { next_out: 40, next_in: 17 });
        // The venue resets a running session: a Logon, 141=Y, MsgSeqNum 1.
        let reset = peer(b"A", 1, &[(98, b"0"), (108, b"10"), (tag::RESET_SEQ_NUM_FLAG, b"Y")], false);
        feed(&mut s, &reset, SEC, &mut out, &mut app).expect("in-session reset");
        let m = sent(&mut out);
        assert_eq!(m.len(), 2, "a Logon that confirms the reset, then the sync TestRequest: {m:?}");
        assert_eq!((m[0].0.as_str(), field(&m[0], tag::MSG_SEQ_NUM)), ("A", Some("1")));
        assert_eq!(field(&m[0], tag::RESET_SEQ_NUM_FLAG), Some("Y"));
        assert_eq!((m[1].0.as_str(), field(&m[1], tag::MSG_SEQ_NUM)), ("1", Some("2")));
        assert_eq!(s.seqs(), SeqNums { next_out: 3, next_in: 2 });
        assert_eq!(app.resets, 1, "the application forgets the old numbers");
        assert!(!s.is_in_sync(), "no order goes out before the counterparty answers the sync request");
        assert!(app.rejects.is_empty() && s.counters.rejects_sent == 0, "no Reject of the second Logon");
        // Its next messages continue from 2; a report is in sequence, not a gap.
        let id = field(&m[1], tag::TEST_REQ_ID).expect("id").to_owned();
        feed(&mut s, &peer(b"0", 2, &[(112, id.as_bytes())], false), SEC, &mut out, &mut app).expect("hb");
        feed(&mut s, &peer(b"8", 3, &[], false), SEC, &mut out, &mut app).expect("report");
        assert!(s.is_in_sync());
        assert_eq!(app.messages.last(), Some(&(b"8".to_vec(), 3)));
        assert!(sent(&mut out).is_empty(), "no ResendRequest: the numbering is the new one");
        // A second Logon without 141=Y is still refused.
        feed(&mut s, &peer(b"A", 4, &[(98, b"0"), (108, b"10")], false), SEC, &mut out, &mut app).expect("reject");
        assert_eq!(sent(&mut out)[0].0, "3");
    }

    #[test]
    fn a_logon_answer_with_a_reset_we_did_not_ask_for_resets_our_numbers_too() {
        let mut s = Session::new(cfg(), SeqNums { next_out: 50, next_in: 30 });
        let (mut app, mut out) = (Recorder::default(), Vec::new());
        s.connected(0, 0, &mut out);
        assert_eq!(field(&sent(&mut out)[0], tag::MSG_SEQ_NUM), Some("50"));
        let answer = peer(b"A", 1, &[(98, b"0"), (108, b"10"), (tag::RESET_SEQ_NUM_FLAG, b"Y")], false);
        feed(&mut s, &answer, 0, &mut out, &mut app).expect("logon answer");
        let m = sent(&mut out);
        assert_eq!(m[0].0, "A", "our numbering starts again with a Logon that says so: {m:?}");
        assert_eq!((field(&m[0], tag::MSG_SEQ_NUM), field(&m[0], tag::RESET_SEQ_NUM_FLAG)), (Some("1"), Some("Y")));
        assert_eq!(m.last().map(|m| m.0.as_str()), Some("1"), "then the sync TestRequest");
        assert_eq!(s.seqs(), SeqNums { next_out: 3, next_in: 2 });
        assert_eq!((app.resets, app.logons), (1, 1));
        // When we asked for the reset ourselves, its answer changes nothing more.
        let mut reset = cfg();
        reset.reset_on_logon = true;
        let mut s = Session::new(reset, SeqNums { next_out: 50, next_in: 30 });
        let mut app = Recorder::default();
        s.connected(0, 0, &mut out);
        sent(&mut out);
        feed(&mut s, &answer, 0, &mut out, &mut app).expect("logon answer");
        let m = sent(&mut out);
        assert_eq!(m.iter().map(|m| m.0.as_str()).collect::<Vec<_>>(), ["1"], "only the sync TestRequest");
        assert_eq!(s.seqs(), SeqNums { next_out: 3, next_in: 2 });
        assert_eq!(app.resets, 0);
    }

    #[test]
    fn a_logout_answering_our_logon_is_a_refusal_whatever_its_number() {
        // A gateway outside its session answers with a Logout numbered from its reset store.
        let mut s = Session::new(cfg(), SeqNums { next_out: 84, next_in: 75 });
        let (mut app, mut out) = (Recorder::default(), Vec::new());
        s.connected(0, 0, &mut out);
        sent(&mut out);
        let err = feed(&mut s, &peer(b"5", 1, &[], false), 0, &mut out, &mut app).expect_err("refused");
        assert_eq!(err.0, "VENUE refused the Logon (outside its session, or it does not know us)");
        assert!(!err.0.contains("too low"), "{err:?}");
        assert_eq!(s.seqs().next_in, 75, "its numbers are not ours to follow");
        let mut s = Session::new(cfg(), SeqNums { next_out: 84, next_in: 75 });
        s.connected(0, 0, &mut out);
        sent(&mut out);
        let logout = peer(b"5", 75, &[(tag::TEXT, b"MsgSeqNum too low, expecting 90 but received 84")], false);
        let err = feed(&mut s, &logout, 0, &mut out, &mut app).expect_err("refused");
        assert!(
            err.0.ends_with(": MsgSeqNum too low, expecting 90 but received 84"),
            "its reason is passed on: {err:?}"
        );
        assert_eq!(s.seqs().next_in, 76);
        // In a running session a Logout below the expected number ends it too, as a logout.
        let (mut s, mut app, mut out) = logged_on(SeqNums { next_out: 10, next_in: 20 });
        let err = feed(&mut s, &peer(b"5", 3, &[], false), SEC, &mut out, &mut app).expect_err("logout");
        assert_eq!(err.0, "VENUE logged out");
    }

    #[test]
    fn a_gap_is_asked_for_once_and_closed_by_the_resend() {
        let (mut s, mut app, mut out) = logged_on(SeqNums::default());
        // Expecting 3; 5 and 6 arrive.
        feed(&mut s, &peer(b"8", 5, &[], false), SEC, &mut out, &mut app).expect("gap");
        feed(&mut s, &peer(b"8", 6, &[], false), SEC, &mut out, &mut app).expect("gap");
        let m = sent(&mut out);
        assert_eq!(m.len(), 1, "one ResendRequest for the gap: {m:?}");
        assert_eq!(m[0].0, "2");
        assert_eq!(field(&m[0], tag::BEGIN_SEQ_NO), Some("3"));
        assert_eq!(field(&m[0], tag::END_SEQ_NO), Some("0"));
        assert!(app.messages.is_empty(), "nothing out of order reaches the application");
        assert!(!s.is_in_sync());
        // The resend: 3 gap-filled to 5, then 5 and 6 again as PossDup.
        let gap_fill = peer(b"4", 3, &[(tag::GAP_FILL_FLAG, b"Y"), (tag::NEW_SEQ_NO, b"5")], true);
        feed(&mut s, &gap_fill, SEC, &mut out, &mut app).expect("gap fill");
        feed(&mut s, &peer(b"8", 5, &[], true), SEC, &mut out, &mut app).expect("5");
        assert!(!s.is_in_sync(), "6 still missing");
        feed(&mut s, &peer(b"8", 6, &[], true), SEC, &mut out, &mut app).expect("6");
        assert_eq!(app.messages, vec![(b"8".to_vec(), 5), (b"8".to_vec(), 6)]);
        assert!(s.is_in_sync());
        assert_eq!(app.in_sync, 2);
        assert_eq!(s.seqs().next_in, 7);
        // A duplicate with PossDup is ignored; without it, the session ends.
        feed(&mut s, &peer(b"8", 6, &[], true), SEC, &mut out, &mut app).expect("dup ignored");
        assert_eq!(app.messages.len(), 2);
        let err = feed(&mut s, &peer(b"8", 4, &[], false), SEC, &mut out, &mut app).expect_err("too low");
        assert!(err.0.contains("MsgSeqNum too low, expecting 7 but received 4"), "{err:?}");
        let m = sent(&mut out);
        assert_eq!(m.last().map(|m| m.0.as_str()), Some("5"), "a Logout says why");
    }

    #[test]
    fn resend_requests_are_gap_filled_and_only_earlier_connections_count_as_missed() {
        let (mut s, mut app, mut out) = logged_on(SeqNums { next_out: 10, next_in: 1 });
        // Logon was 10, the sync TestRequest 11; an order on this connection is 12.
        s.send_app(b"D", SEC, &mut out, |b| {
            b.field(tag::CL_ORD_ID, b"o1");
        });
        sent(&mut out);
        let rr = peer(b"2", 3, &[(tag::BEGIN_SEQ_NO, b"4"), (tag::END_SEQ_NO, b"0")], false);
        feed(&mut s, &rr, SEC, &mut out, &mut app).expect("resend request");
        let m = sent(&mut out);
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].0, "4");
        assert_eq!(field(&m[0], tag::MSG_SEQ_NUM), Some("4"));
        assert_eq!(field(&m[0], tag::GAP_FILL_FLAG), Some("Y"));
        assert_eq!(field(&m[0], tag::NEW_SEQ_NO), Some("11"), "up to the Logon; 11 and 12 came after it");
        assert_eq!(field(&m[0], tag::POSS_DUP_FLAG), Some("Y"));
        assert!(field(&m[0], tag::ORIG_SENDING_TIME).is_some());
        assert_eq!(app.missed, vec![(4, 10)], "only messages before this connection's Logon were missed");
        assert_eq!(s.seqs().next_out, 13, "a gap fill uses the requested number, not a new one");
    }

    #[test]
    fn a_gap_fill_over_the_sync_test_request_sends_another() {
        let mut s = Session::new(cfg(), SeqNums { next_out: 10, next_in: 1 });
        let (mut app, mut out) = (Recorder::default(), Vec::new());
        s.connected(0, 0, &mut out);
        feed(&mut s, &peer(b"A", 1, &[(98, b"0"), (108, b"10")], false), 0, &mut out, &mut app).expect("logon");
        let m = sent(&mut out);
        assert_eq!((m[1].0.as_str(), field(&m[1], tag::TEST_REQ_ID)), ("1", Some("SYNC11")));
        // Asked for numbers of this connection (11), the fill covers the TestRequest: another.
        let rr = peer(b"2", 2, &[(tag::BEGIN_SEQ_NO, b"11"), (tag::END_SEQ_NO, b"0")], false);
        feed(&mut s, &rr, 1, &mut out, &mut app).expect("resend request");
        let m = sent(&mut out);
        assert_eq!(m.iter().map(|m| m.0.as_str()).collect::<Vec<_>>(), ["4", "1"], "{m:?}");
        assert_eq!(field(&m[0], tag::NEW_SEQ_NO), Some("12"));
        assert_eq!(field(&m[1], tag::TEST_REQ_ID), Some("SYNC12"));
        assert!(app.missed.is_empty(), "sent on this connection: not missed");
        // The answer to the old one never comes; the new one's does.
        assert!(!s.is_in_sync());
        feed(&mut s, &peer(b"0", 3, &[(112, b"SYNC12")], false), 2, &mut out, &mut app).expect("hb");
        assert!(s.is_in_sync());
    }

    /// Both sides ahead of the other after a restart: the venue asks for our numbers from before
    /// the Logon while our own ResendRequest waits in its queue behind the gap. The fill stops at
    /// the Logon, so the venue then takes our ResendRequest and TestRequest and answers both.
    #[test]
    fn a_gap_fill_never_covers_what_this_connection_sent_after_its_logon() {
        let mut s = Session::new(cfg(), SeqNums { next_out: 1000, next_in: 40 });
        let (mut app, mut out) = (Recorder::default(), Vec::new());
        s.connected(0, 0, &mut out);
        // The venue's Logon is 50: we ask for 40.. (1001) and send the sync TestRequest (1002).
        feed(&mut s, &peer(b"A", 50, &[(98, b"0"), (108, b"10")], false), 0, &mut out, &mut app).expect("logon");
        let m = sent(&mut out);
        let ours: Vec<(&str, Option<&str>)> = m.iter().map(|m| (m.0.as_str(), field(m, tag::MSG_SEQ_NUM))).collect();
        assert_eq!(ours, [("A", Some("1000")), ("2", Some("1001")), ("1", Some("1002"))], "{m:?}");
        // The venue, expecting 995, asks from there to infinity (its ResendRequest is 51).
        let rr = peer(b"2", 51, &[(tag::BEGIN_SEQ_NO, b"995"), (tag::END_SEQ_NO, b"0")], false);
        feed(&mut s, &rr, 1, &mut out, &mut app).expect("resend request");
        let m = sent(&mut out);
        assert_eq!(m.len(), 1, "one gap fill, and no second TestRequest: {m:?}");
        assert_eq!((field(&m[0], tag::MSG_SEQ_NUM), field(&m[0], tag::NEW_SEQ_NO)), (Some("995"), Some("1001")));
        assert_eq!(app.missed, vec![(995, 1000)]);
        assert_eq!(s.seqs().next_out, 1003);
    }

    #[test]
    fn silence_brings_a_heartbeat_then_a_test_request_then_a_disconnect() {
        let (mut s, mut app, mut out) = logged_on(SeqNums::default());
        assert_eq!(s.next_deadline(), Some(10 * SEC));
        s.on_timer(9 * SEC, &mut out).expect("nothing due");
        assert!(sent(&mut out).is_empty());
        s.on_timer(10 * SEC, &mut out).expect("heartbeat");
        let m = sent(&mut out);
        assert_eq!(m.iter().map(|m| m.0.as_str()).collect::<Vec<_>>(), ["0"]);
        // 12 s of silence from the venue (heartbeat + 20%): a TestRequest.
        s.on_timer(12 * SEC, &mut out).expect("test request");
        let m = sent(&mut out);
        assert_eq!(m[0].0, "1");
        let id = field(&m[0], tag::TEST_REQ_ID).expect("id").to_owned();
        // Answered: all is well.
        feed(&mut s, &peer(b"0", 3, &[(112, id.as_bytes())], false), 13 * SEC, &mut out, &mut app).expect("hb");
        // Our last message was the TestRequest at 12 s: the next heartbeat is due at 22 s.
        s.on_timer(21 * SEC, &mut out).expect("nothing due");
        assert!(sent(&mut out).is_empty());
        s.on_timer(22 * SEC, &mut out).expect("heartbeat again");
        assert_eq!(sent(&mut out).iter().map(|m| m.0.clone()).collect::<Vec<_>>(), ["0"]);
        // Silence again: TestRequest at 25 s, unanswered by 35 s: disconnect.
        s.on_timer(25 * SEC, &mut out).expect("test request");
        assert!(sent(&mut out).iter().any(|m| m.0 == "1"));
        let err = s.on_timer(35 * SEC, &mut out).expect_err("missed heartbeat");
        assert!(err.0.contains("heartbeat missed"), "{err:?}");
    }

    #[test]
    fn test_requests_from_the_venue_are_answered_with_their_id() {
        let (mut s, mut app, mut out) = logged_on(SeqNums::default());
        feed(&mut s, &peer(b"1", 3, &[(112, b"ping-7")], false), SEC, &mut out, &mut app).expect("test request");
        let m = sent(&mut out);
        assert_eq!(m[0].0, "0");
        assert_eq!(field(&m[0], tag::TEST_REQ_ID), Some("ping-7"));
    }

    #[test]
    fn bad_messages_are_counted_rejected_and_survived() {
        let (mut s, mut app, mut out) = logged_on(SeqNums::default());
        // Garbled: a wrong checksum. Ignored, no sequence number used.
        let mut bad = peer(b"8", 3, &[], false);
        let n = bad.len();
        bad[n - 3] = if bad[n - 3] == b'0' { b'1' } else { b'0' };
        feed(&mut s, &bad, SEC, &mut out, &mut app).expect("survives");
        assert_eq!(s.counters.garbled, 1);
        assert_eq!(s.seqs().next_in, 3);
        assert!(sent(&mut out).is_empty(), "a garbled message gets no Reject");
        // Garbage bytes, then a good message: the good one is taken.
        let mut buf = b"\x01\x02garbage 8=FIX".to_vec();
        buf.extend_from_slice(&peer(b"8", 3, &[], false));
        feed(&mut s, &buf, SEC, &mut out, &mut app).expect("survives");
        assert_eq!(app.messages.len(), 1);
        assert!(s.counters.garbled >= 2);
        // Unknown MsgType: Reject 373=11, sequence number consumed.
        feed(&mut s, &peer(b"ZZZ", 4, &[], false), SEC, &mut out, &mut app).expect("survives");
        let m = sent(&mut out);
        assert_eq!(m[0].0, "3");
        assert_eq!(field(&m[0], tag::REF_SEQ_NUM), Some("4"));
        assert_eq!(field(&m[0], tag::SESSION_REJECT_REASON), Some("11"));
        // The application refuses a message (a required tag missing): Reject 373=1 with the tag.
        app.refuse_with = Some(RejectReason { code: 1, tag: Some(tag::CUM_QTY), text: "required tag missing" });
        feed(&mut s, &peer(b"8", 5, &[], false), SEC, &mut out, &mut app).expect("survives");
        let m = sent(&mut out);
        assert_eq!(field(&m[0], tag::SESSION_REJECT_REASON), Some("1"));
        assert_eq!(field(&m[0], tag::REF_TAG_ID), Some("14"));
        assert_eq!(s.counters.rejects_sent, 2);
        assert_eq!(s.seqs().next_in, 6);
        assert!(s.is_in_sync(), "the session is still up");
        // A Reject from the venue reaches the application with the refused sequence number.
        feed(&mut s, &peer(b"3", 6, &[(tag::REF_SEQ_NUM, b"42")], false), SEC, &mut out, &mut app).expect("ok");
        assert_eq!(app.rejects, vec![42]);
    }

    #[test]
    fn a_logon_answer_must_come_in_time_and_first() {
        let mut s = Session::new(cfg(), SeqNums::default());
        let (mut app, mut out) = (Recorder::default(), Vec::new());
        s.connected(0, 0, &mut out);
        assert_eq!(s.next_deadline(), Some(5 * SEC));
        assert!(s.on_timer(5 * SEC, &mut out).is_err());
        let mut s = Session::new(cfg(), SeqNums::default());
        s.connected(0, 0, &mut out);
        let err = feed(&mut s, &peer(b"8", 1, &[], false), SEC, &mut out, &mut app).expect_err("not a logon");
        assert!(err.0.contains("not Logon"), "{err:?}");
        // A Logon whose sequence number is lower than expected ends the session with a Logout.
        let mut s = Session::new(cfg(), SeqNums { next_out: 1, next_in: 50 });
        s.connected(0, 0, &mut out);
        out.clear();
        let err = feed(&mut s, &peer(b"A", 3, &[(98, b"0"), (108, b"10")], false), SEC, &mut out, &mut app)
            .expect_err("too low");
        assert!(err.0.contains("reset_on_logon"), "{err:?}");
        assert_eq!(sent(&mut out)[0].0, "5");
    }

    #[test]
    fn wrong_comp_ids_end_the_session() {
        let (mut s, mut app, mut out) = logged_on(SeqNums::default());
        let mut b = Builder::new();
        let h = Header { msg_type: b"0", sender: b"OTHER", target: b"BOT", seq: 3, sending_time: b"x", poss_dup: None };
        b.start(&h);
        let mut msg = Vec::new();
        b.finish(&mut msg);
        assert!(feed(&mut s, &msg, SEC, &mut out, &mut app).is_err());
    }
}
