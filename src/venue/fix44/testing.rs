//! Builders shared by the unit tests, the benches and the fuzz target (feature `testing`): messages
//! from a counterparty, and a session logged on to one. Not part of the daemon.

use super::codec::{encode, Header};
use super::session::{Application, SeqNums, Session, SessionConfig};

/// The SendingTime of every built message.
pub const PEER_SENDING_TIME: &[u8] = b"20261124-07:06:19.123";

/// A message from the counterparty `sender` to `target`; with `poss_dup`, marked as a resend
/// (PossDupFlag, OrigSendingTime).
pub fn peer_message(
    sender: &str,
    target: &str,
    msg_type: &[u8],
    seq: u64,
    fields: &[(u32, &[u8])],
    poss_dup: bool,
) -> Vec<u8> {
    let h = Header {
        msg_type,
        sender: sender.as_bytes(),
        target: target.as_bytes(),
        seq,
        sending_time: PEER_SENDING_TIME,
        poss_dup: poss_dup.then_some(b"20261124-07:06:18.000".as_slice()),
    };
    encode(&h, fields)
}

/// A session for `cfg`, connected at Unix time `unix_ns` and logged on: the counterparty's Logon
/// (sequence 1, HeartBtInt 30) has been read. Returns it and what it wrote in answer (its own
/// Logon, written on connecting, is left out).
pub fn logged_on(cfg: SessionConfig, app: &mut impl Application, unix_ns: i128) -> (Session, Vec<u8>) {
    let (sender, target) = (cfg.target.clone(), cfg.sender.clone());
    let mut s = Session::new(cfg, SeqNums::default());
    let mut out = Vec::new();
    s.connected(0, unix_ns, &mut out);
    out.clear();
    let mut input = peer_message(&sender, &target, b"A", 1, &[(98, b"0"), (108, b"30")], false);
    let _ = s.on_bytes(&mut input, 0, &mut out, app);
    (s, out)
}
