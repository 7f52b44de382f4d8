//! A FIX session logged on to a simulated counterparty, for the benches that encode or parse
//! FIX messages (`fix`, and the floor of `engine`).

use std::hint::black_box;

use mt5bot::venue::fix44::codec::{frame, tag, Fields, Frame, Message};
use mt5bot::venue::fix44::session::{Application, RejectReason, Session, SessionConfig};
use mt5bot::venue::fix44::testing;

pub struct Quiet;

impl Application for Quiet {
    fn on_logon(&mut self, _now: u64) {}
    fn on_message(&mut self, m: &Message<'_>, _now: u64) -> Result<(), RejectReason> {
        black_box((m.get(tag::CL_ORD_ID), m.get_f64(tag::CUM_QTY), m.get_char(tag::EXEC_TYPE)));
        Ok(())
    }
    fn on_session_reject(&mut self, _ref_seq: u64, _text: &str, _now: u64) {}
    fn on_peer_missed(&mut self, _begin: u64, _end: u64, _now: u64) {}
    fn on_in_sync(&mut self, _now: u64) {}
    fn on_reset(&mut self, _now: u64) {}
}

pub fn peer_message(msg_type: &[u8], seq: u64, fields: &[(u32, &[u8])]) -> Vec<u8> {
    testing::peer_message("EXECUTOR", "MT5BOT", msg_type, seq, fields, false)
}

/// A session logged on and in sync with a simulated counterparty.
pub fn active_session() -> Session {
    let cfg = SessionConfig {
        sender: "MT5BOT".into(),
        target: "EXECUTOR".into(),
        heartbeat_secs: 30,
        reset_on_logon: false,
        logon_timeout: 10_000_000_000,
        username: None,
        password: None,
    };
    let (mut s, mut out) = testing::logged_on(cfg, &mut Quiet, 1_764_000_000_000_000_000);
    let mut f = Fields::new();
    let Frame::Message(len) = frame(&out) else { panic!("no sync TestRequest") };
    let id = f.parse(&out[..len]).expect("parse").get(tag::TEST_REQ_ID).expect("id").to_vec();
    let mut input = peer_message(b"0", 2, &[(tag::TEST_REQ_ID, &id)]);
    s.on_bytes(&mut input, 0, &mut out, &mut Quiet).expect("heartbeat");
    assert!(s.is_in_sync());
    s
}
