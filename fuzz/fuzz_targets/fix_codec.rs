//! Arbitrary bytes from a FIX counterparty: through the framer and field parser, then through a
//! logged-on session. Nothing may panic, every byte must be consumed or kept as an incomplete
//! message, and the session's own output must always be valid FIX.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mt5bot::venue::fix44::codec::{frame, tag, Fields, Frame, Message, MAX_BODY};
use mt5bot::venue::fix44::session::{Application, RejectReason, SessionConfig};
use mt5bot::venue::fix44::testing;

struct Sink;

impl Application for Sink {
    fn on_logon(&mut self, _now: u64) {}
    fn on_message(&mut self, m: &Message<'_>, _now: u64) -> Result<(), RejectReason> {
        let _ = (m.get_f64(tag::CUM_QTY), m.get_u64(tag::MSG_SEQ_NUM), m.get_char(tag::EXEC_TYPE));
        if m.has(tag::CUM_QTY) {
            Ok(())
        } else {
            Err(RejectReason { code: 1, tag: Some(tag::CUM_QTY), text: "required tag missing" })
        }
    }
    fn on_session_reject(&mut self, _ref_seq: u64, _text: &str, _now: u64) {}
    fn on_peer_missed(&mut self, begin: u64, end: u64, _now: u64) {
        assert!(begin < end);
    }
    fn on_in_sync(&mut self, _now: u64) {}
    fn on_reset(&mut self, _now: u64) {}
}

/// Every message the session wrote must frame and parse.
fn check_output(out: &[u8]) {
    let mut f = Fields::new();
    let mut pos = 0;
    while pos < out.len() {
        match frame(&out[pos..]) {
            Frame::Message(len) => {
                f.parse(&out[pos..pos + len]).expect("the session writes parseable messages");
                pos += len;
            }
            other => panic!("the session wrote invalid FIX: {other:?}"),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    // The framer alone.
    let mut fields = Fields::new();
    let mut pos = 0;
    while pos < data.len() {
        match frame(&data[pos..]) {
            Frame::Incomplete => {
                assert!(data.len() - pos <= MAX_BODY + 64, "an incomplete message is bounded");
                break;
            }
            Frame::Garbled { skip, .. } => {
                assert!(skip > 0 && skip <= data.len() - pos);
                pos += skip;
            }
            Frame::Message(len) => {
                if let Ok(m) = fields.parse(&data[pos..pos + len]) {
                    let _ = (m.msg_type(), m.get_str(tag::TEXT), m.flag(tag::POSS_DUP_FLAG));
                }
                pos += len;
            }
        }
    }

    // A logged-on session fed the bytes, in two reads.
    let cfg = SessionConfig {
        sender: "B".into(),
        target: "V".into(),
        heartbeat_secs: 30,
        reset_on_logon: false,
        logon_timeout: 10_000_000_000,
        username: None,
        password: None,
    };
    let (mut s, mut out) = testing::logged_on(cfg, &mut Sink, 0);
    let cut = data.len() / 2;
    let mut input = data[..cut].to_vec();
    if s.on_bytes(&mut input, 1, &mut out, &mut Sink).is_ok() {
        input.extend_from_slice(&data[cut..]);
        let _ = s.on_bytes(&mut input, 2, &mut out, &mut Sink);
        let _ = s.on_timer(100_000_000_000, &mut out);
    }
    check_output(&out);
});
