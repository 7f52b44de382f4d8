//! A counterparty that asks again for the message that carried an order it has, as a venue killed
//! between taking an order and storing its sequence numbers does: mt5bot asks about the order
//! (OrderStatusRequest) and never sends it a second time on the ResendRequest alone; only the venue
//! saying it does not know the order (or that it answers no such question, as the QuickFIX
//! executor does) makes it go out again, once.
//!
//! The QuickFIX executor (`tests/fix44.rs`) cannot be made to do this on cue (the random-kill test
//! meets it by chance), so this counterparty is scripted: a FIX 4.4 acceptor on 127.0.0.1 speaking
//! the session layer as the specification and QuickFIX do (Logon, Heartbeat answering TestRequest,
//! ResendRequest with EndSeqNo 0 for "all after"), and answering an OrderStatusRequest for an
//! order it does not know as the QuickFIX executor's application would: an ExecutionReport with
//! ExecType I (order status) and OrdStatus 8 (rejected).

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use mt5bot::venue::fix44::testing::peer_message;
use support::*;

/// One FIX message as (tag, value) pairs.
type Fields = Vec<(u32, String)>;

fn get(m: &Fields, tag: u32) -> Option<&str> {
    m.iter().find(|(t, _)| *t == tag).map(|(_, v)| v.as_str())
}

/// The scripted counterparty's side of one connection.
struct Peer {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Our next MsgSeqNum, kept across connections as a store would.
    seq: u64,
    /// Every message mt5bot sent, in order.
    seen: Vec<Fields>,
}

impl Peer {
    fn send(&mut self, msg_type: &[u8], fields: &[(u32, &[u8])]) {
        let m = peer_message("EXECUTOR", "MT5BOT", msg_type, self.seq, fields, false);
        self.seq += 1;
        self.stream.write_all(&m).expect("write to mt5bot");
    }

    /// The next message from mt5bot within `timeout` (TestRequests answered on the way), or None.
    fn next(&mut self, timeout: Duration) -> Option<Fields> {
        let until = Instant::now() + timeout;
        loop {
            if let Some(end) = find_end(&self.buf) {
                let raw: Vec<u8> = self.buf.drain(..end).collect();
                let fields: Fields = raw
                    .split(|b| *b == 1)
                    .filter(|f| !f.is_empty())
                    .filter_map(|f| {
                        let s = String::from_utf8_lossy(f);
                        let (t, v) = s.split_once('=')?;
                        Some((t.parse().ok()?, v.to_owned()))
                    })
                    .collect();
                self.seen.push(fields.clone());
                if get(&fields, 35) == Some("1") {
                    let id = get(&fields, 112).unwrap_or_default().to_owned();
                    self.send(b"0", &[(112, id.as_bytes())]);
                    continue;
                }
                if get(&fields, 35) == Some("0") {
                    continue;
                }
                return Some(fields);
            }
            let left = until.checked_duration_since(Instant::now())?;
            self.stream.set_read_timeout(Some(left.max(Duration::from_millis(1)))).expect("timeout");
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(_) => return None,
            }
        }
    }

    /// Waits for a message of `msg_type` (others are kept in `seen`).
    fn expect(&mut self, msg_type: &str, timeout: Duration) -> Fields {
        let until = Instant::now() + timeout;
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            match self.next(left) {
                Some(m) if get(&m, 35) == Some(msg_type) => return m,
                Some(_) => {}
                None => break,
            }
        }
        panic!("no 35={msg_type} from mt5bot within {timeout:?}; it sent {:?}", self.seen);
    }
}

/// Where the first whole message in `buf` ends (after its `10=NNN<SOH>` trailer).
fn find_end(buf: &[u8]) -> Option<usize> {
    let at = buf.windows(4).position(|w| w == b"\x0110=")?;
    let end = buf[at + 4..].iter().position(|b| *b == 1)?;
    Some(at + 4 + end + 1)
}

/// Accepts mt5bot's connection and answers its Logon.
fn accept(listener: &TcpListener, seq: u64) -> Peer {
    listener.set_nonblocking(false).expect("blocking");
    let (stream, _) = listener.accept().expect("mt5bot connects");
    let mut p = Peer { stream, buf: Vec::new(), seq, seen: Vec::new() };
    let logon = p.expect("A", Duration::from_secs(10));
    assert_eq!(get(&logon, 141), None, "no sequence reset asked: {logon:?}");
    p.send(b"A", &[(98, b"0"), (108, b"5")]);
    p
}

/// How the scripted venue answers mt5bot's OrderStatusRequest.
enum Answer {
    /// An ExecutionReport: the order is unknown (ExecType I, OrdStatus 8).
    Unknown,
    /// A BusinessMessageReject of the message type (as the QuickFIX executor answers it).
    Unsupported,
}

#[test]
fn a_resend_request_for_an_order_gets_a_status_question_never_the_order_twice() {
    resend_then(Answer::Unknown);
}

/// A venue that cannot be asked (it refuses OrderStatusRequest): its ResendRequest is all there is
/// to go by, so the order goes out again, once, with the same ClOrdID (for a venue that keeps
/// ClOrdIDs to refuse if it had it). The QuickFIX executor is such a venue.
#[test]
fn a_venue_that_answers_no_status_question_gets_the_order_again_once() {
    resend_then(Answer::Unsupported);
}

fn resend_then(answer: Answer) {
    let dir = TempDir::new("fix-resend");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let ingress = format!("127.0.0.1:{}", free_port());
    let (cfg, addr) = config_with(
        &dir,
        &format!(
            "venue:\n  kind: fix44\n  fix44:\n    connect: 127.0.0.1:{port}\n    sender_comp_id: MT5BOT\n    \
             target_comp_id: EXECUTOR\n    heartbeat_interval: 5s\n    reconnect_min: 100ms\n    reconnect_max: 1s\n    \
             logon_timeout: 5s\n    status_timeout: 60s\n    state_dir: {}\n\
             model:\n  threshold_bps: 10000\n\
             queue:\n  max_wait: 60s\n\
             ingress:\n  enabled: true\n  listen: {ingress}\n",
            dir.join("state").display()
        ),
    );
    let mut d = Daemon::start(&dir, &cfg, &addr, &[]);
    let mut p = accept(&listener, 1);

    // One order; the counterparty takes it and answers nothing.
    let mut w = TcpStream::connect(&ingress).expect("ingress");
    w.write_all(b"{\"id\":\"r-1\",\"symbol\":\"EURUSD\",\"side\":\"buy\",\"qty\":1,\"type\":\"market\"}\n")
        .expect("send the order");
    let mut queued = String::new();
    BufReader::new(w.try_clone().expect("clone")).read_line(&mut queued).expect("answer");
    assert!(queued.contains("queued"), "{queued}");
    let order = p.expect("D", Duration::from_secs(10));
    let id = get(&order, 11).expect("ClOrdID").to_owned();
    let order_seq: u64 = get(&order, 34).and_then(|s| s.parse().ok()).expect("MsgSeqNum");

    // The connection drops; on the next one the counterparty asks again for everything from the
    // order's message on, as one that lost its sequence number store would.
    drop(p.stream);
    let mut p = accept(&listener, p.seq);
    let begin = order_seq.to_string();
    p.send(b"2", &[(7, begin.as_bytes()), (16, b"0")]);
    let status = p.expect("H", Duration::from_secs(10));
    assert_eq!(get(&status, 11), Some(id.as_str()), "{status:?}");
    // Nothing else for a while: above all, not the order again.
    while p.next(Duration::from_secs(3)).is_some() {}
    let again = p.seen.iter().filter(|m| get(m, 35) == Some("D") && get(m, 11) == Some(id.as_str())).count();
    assert_eq!(again, 0, "the order went out again on a ResendRequest alone: {:?}", p.seen);
    assert!(p.seen.iter().any(|m| get(m, 35) == Some("4") && get(m, 123) == Some("Y")), "gap filled: {:?}", p.seen);

    // The counterparty does not know the order, or cannot say: now, and only now, it is sent
    // again, once.
    let status_seq = get(&status, 34).unwrap_or_default().to_owned();
    match answer {
        Answer::Unknown => p.send(
            b"8",
            &[
                (37, b"NONE"),
                (11, id.as_bytes()),
                (17, b"status-1"),
                (150, b"I"),
                (39, b"8"),
                (55, b"EURUSD"),
                (54, b"1"),
                (151, b"0"),
                (14, b"0"),
                (6, b"0"),
                (58, b"Unknown order"),
            ],
        ),
        Answer::Unsupported => {
            p.send(b"j", &[(45, status_seq.as_bytes()), (372, b"H"), (380, b"3"), (58, b"Unsupported Message Type")])
        }
    }
    let resent = p.expect("D", Duration::from_secs(10));
    assert_eq!(get(&resent, 11), Some(id.as_str()));
    while p.next(Duration::from_secs(2)).is_some() {}
    let sent = p.seen.iter().filter(|m| get(m, 35) == Some("D") && get(m, 11) == Some(id.as_str())).count();
    assert_eq!(sent, 1, "sent again exactly once: {:?}", p.seen);
    assert!(!p.seen.iter().any(|m| get(m, 35) == Some("3")), "no session Reject from mt5bot: {:?}", p.seen);
    let log = d.log_file();
    assert!(log.contains("asking whether it has the order"), "{log}");
    if let Answer::Unsupported = answer {
        assert!(log.contains("goes out again: the venue asked again for its message"), "{log}");
    }
    d.signal("TERM");
    d.wait_exit(Duration::from_secs(10));
}
