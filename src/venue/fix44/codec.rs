//! FIX 4.4 tag=value codec: framing with BodyLength and CheckSum checked, field access without
//! copying, and a builder that writes a message into a reused buffer.
//!
//! Nothing here allocates once the buffers have grown to the size of the largest message: the
//! decoder returns offsets into the caller's bytes, the builder writes into its own scratch body
//! and the caller's output buffer.

use std::fmt;
use std::io::Write as _;

/// The field separator.
pub const SOH: u8 = 0x01;

/// `8=FIX.4.4<SOH>9=`: how every FIX 4.4 message starts.
const PREFIX: &[u8] = b"8=FIX.4.4\x019=";

/// Largest body accepted. A broker's messages are a few hundred bytes; a longer BodyLength is
/// garbage, and waiting for it would stall the session.
pub const MAX_BODY: usize = 16 * 1024;

/// Most fields parsed in one message; more is refused as malformed.
pub const MAX_FIELDS: usize = 256;

pub mod tag {
    pub const ACCOUNT: u32 = 1;
    pub const AVG_PX: u32 = 6;
    pub const BEGIN_SEQ_NO: u32 = 7;
    pub const BEGIN_STRING: u32 = 8;
    pub const BODY_LENGTH: u32 = 9;
    pub const CHECKSUM: u32 = 10;
    pub const CL_ORD_ID: u32 = 11;
    pub const COMMISSION: u32 = 12;
    pub const COMM_TYPE: u32 = 13;
    pub const CUM_QTY: u32 = 14;
    pub const END_SEQ_NO: u32 = 16;
    pub const EXEC_ID: u32 = 17;
    pub const LAST_PX: u32 = 31;
    pub const LAST_QTY: u32 = 32;
    pub const MSG_SEQ_NUM: u32 = 34;
    pub const MSG_TYPE: u32 = 35;
    pub const NEW_SEQ_NO: u32 = 36;
    pub const ORDER_ID: u32 = 37;
    pub const ORDER_QTY: u32 = 38;
    pub const ORD_STATUS: u32 = 39;
    pub const ORD_TYPE: u32 = 40;
    pub const ORIG_CL_ORD_ID: u32 = 41;
    pub const POSS_DUP_FLAG: u32 = 43;
    pub const PRICE: u32 = 44;
    pub const REF_SEQ_NUM: u32 = 45;
    pub const SENDER_COMP_ID: u32 = 49;
    pub const SENDING_TIME: u32 = 52;
    pub const SIDE: u32 = 54;
    pub const SYMBOL: u32 = 55;
    pub const TARGET_COMP_ID: u32 = 56;
    pub const TEXT: u32 = 58;
    pub const TIME_IN_FORCE: u32 = 59;
    pub const TRANSACT_TIME: u32 = 60;
    pub const ENCRYPT_METHOD: u32 = 98;
    pub const STOP_PX: u32 = 99;
    pub const HEART_BT_INT: u32 = 108;
    pub const TEST_REQ_ID: u32 = 112;
    pub const ORIG_SENDING_TIME: u32 = 122;
    pub const GAP_FILL_FLAG: u32 = 123;
    pub const RESET_SEQ_NUM_FLAG: u32 = 141;
    pub const EXEC_TYPE: u32 = 150;
    pub const LEAVES_QTY: u32 = 151;
    pub const REF_TAG_ID: u32 = 371;
    pub const REF_MSG_TYPE: u32 = 372;
    pub const SESSION_REJECT_REASON: u32 = 373;
    pub const BUSINESS_REJECT_REF_ID: u32 = 379;
    pub const BUSINESS_REJECT_REASON: u32 = 380;
    pub const CXL_REJ_RESPONSE_TO: u32 = 434;
    pub const USERNAME: u32 = 553;
    pub const PASSWORD: u32 = 554;
}

/// What [`frame`] found at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// A whole message of this many bytes, length and checksum correct.
    Message(usize),
    /// The start of a message; more bytes are needed.
    Incomplete,
    /// Bytes that are not a valid message: skip this many and look again. FIX says a garbled
    /// message is ignored (no Reject, no sequence number consumed).
    Garbled { skip: usize, why: Garbled },
}

/// Why bytes were dropped as garbled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Garbled {
    /// Not `8=FIX.4.4` where a message must start.
    BadBeginString,
    /// BodyLength missing, not a number or over [`MAX_BODY`].
    BadBodyLength,
    /// No `10=nnn` where BodyLength says the body ends.
    WrongBodyLength,
    /// CheckSum differs from the sum of the bytes.
    BadChecksum,
}

impl Garbled {
    pub fn as_str(self) -> &'static str {
        match self {
            Garbled::BadBeginString => "bad BeginString",
            Garbled::BadBodyLength => "bad BodyLength",
            Garbled::WrongBodyLength => "wrong BodyLength",
            Garbled::BadChecksum => "bad CheckSum",
        }
    }
}

/// Where the next message could start after position 0: the next `8=FIX.4.4<SOH>9=`.
fn resync(buf: &[u8]) -> usize {
    match buf.get(1..).and_then(|rest| rest.windows(PREFIX.len()).position(|w| w == PREFIX)) {
        Some(i) => i + 1,
        // Keep a tail that may be the start of a message cut by the read.
        None => buf.len().saturating_sub(PREFIX.len() - 1).max(1).min(buf.len()),
    }
}

/// Finds the first message in `buf` and checks its BodyLength and CheckSum.
pub fn frame(buf: &[u8]) -> Frame {
    if buf.is_empty() {
        return Frame::Incomplete;
    }
    let n = PREFIX.len().min(buf.len());
    if buf[..n] != PREFIX[..n] {
        return Frame::Garbled { skip: resync(buf), why: Garbled::BadBeginString };
    }
    if buf.len() < PREFIX.len() {
        return Frame::Incomplete;
    }
    let mut i = PREFIX.len();
    let mut body_len = 0usize;
    loop {
        match buf.get(i) {
            None if i - PREFIX.len() <= 5 => return Frame::Incomplete,
            Some(b) if b.is_ascii_digit() && i - PREFIX.len() < 5 => {
                body_len = body_len * 10 + usize::from(b - b'0');
                i += 1;
            }
            Some(&SOH) if i > PREFIX.len() => break,
            _ => return Frame::Garbled { skip: resync(buf), why: Garbled::BadBodyLength },
        }
    }
    if body_len > MAX_BODY {
        return Frame::Garbled { skip: resync(buf), why: Garbled::BadBodyLength };
    }
    let body_start = i + 1;
    let trailer = body_start + body_len;
    let total = trailer + 7;
    if buf.len() < total {
        return Frame::Incomplete;
    }
    let t = &buf[trailer..total];
    if &t[..3] != b"10=" || !t[3..6].iter().all(u8::is_ascii_digit) || t[6] != SOH {
        return Frame::Garbled { skip: resync(buf), why: Garbled::WrongBodyLength };
    }
    let declared = u32::from(t[3] - b'0') * 100 + u32::from(t[4] - b'0') * 10 + u32::from(t[5] - b'0');
    if checksum(&buf[..trailer]) != declared {
        return Frame::Garbled { skip: total, why: Garbled::BadChecksum };
    }
    Frame::Message(total)
}

/// The FIX checksum: the sum of the bytes modulo 256.
pub fn checksum(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0u32, |a, &b| a.wrapping_add(u32::from(b))) % 256
}

/// Why a framed message could not be read as fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// A field without `=`, an empty or non-numeric tag, or an empty value; carries the tag when known.
    BadField(u32),
    /// More than [`MAX_FIELDS`] fields.
    TooManyFields,
    /// The third field is not MsgType.
    NoMsgType,
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Malformed::BadField(0) => f.write_str("a field is not tag=value"),
            Malformed::BadField(t) => write!(f, "field {t} has no value"),
            Malformed::TooManyFields => write!(f, "more than {MAX_FIELDS} fields"),
            Malformed::NoMsgType => f.write_str("MsgType (35) is not the third field"),
        }
    }
}

/// One message's fields as offsets into its bytes. Reuse one [`Fields`] for every message.
#[derive(Debug, Default)]
pub struct Fields {
    spans: Vec<(u32, u32, u32)>,
}

impl Fields {
    pub fn new() -> Self {
        Fields { spans: Vec::with_capacity(MAX_FIELDS) }
    }

    /// Splits a framed message into fields.
    pub fn parse<'a>(&'a mut self, msg: &'a [u8]) -> Result<Message<'a>, Malformed> {
        self.spans.clear();
        let mut i = 0;
        while i < msg.len() {
            let mut tag = 0u32;
            let start = i;
            while i < msg.len() && msg[i].is_ascii_digit() {
                tag = tag.saturating_mul(10).saturating_add(u32::from(msg[i] - b'0'));
                i += 1;
            }
            if i == start || i >= msg.len() || msg[i] != b'=' || tag == 0 {
                return Err(Malformed::BadField(0));
            }
            i += 1;
            let v = i;
            while i < msg.len() && msg[i] != SOH {
                i += 1;
            }
            if i == v || i >= msg.len() {
                return Err(Malformed::BadField(tag));
            }
            if self.spans.len() == MAX_FIELDS {
                return Err(Malformed::TooManyFields);
            }
            self.spans.push((tag, v as u32, i as u32));
            i += 1;
        }
        if self.spans.get(2).map(|s| s.0) != Some(tag::MSG_TYPE) {
            return Err(Malformed::NoMsgType);
        }
        Ok(Message { raw: msg, spans: &self.spans })
    }
}

/// A parsed message: look fields up by tag.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    raw: &'a [u8],
    spans: &'a [(u32, u32, u32)],
}

impl<'a> Message<'a> {
    /// The first value of `tag`.
    pub fn get(&self, tag: u32) -> Option<&'a [u8]> {
        self.spans.iter().find(|s| s.0 == tag).map(|&(_, a, b)| &self.raw[a as usize..b as usize])
    }

    pub fn has(&self, tag: u32) -> bool {
        self.spans.iter().any(|s| s.0 == tag)
    }

    pub fn msg_type(&self) -> &'a [u8] {
        // `parse` checked that the third field is MsgType.
        let (_, a, b) = self.spans[2];
        &self.raw[a as usize..b as usize]
    }

    pub fn get_str(&self, tag: u32) -> Option<&'a str> {
        self.get(tag).and_then(|v| std::str::from_utf8(v).ok())
    }

    pub fn get_u64(&self, tag: u32) -> Option<u64> {
        let v = self.get(tag)?;
        if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Some(v.iter().fold(0u64, |a, &b| a * 10 + u64::from(b - b'0')))
    }

    pub fn get_f64(&self, tag: u32) -> Option<f64> {
        self.get_str(tag).and_then(|s| s.parse::<f64>().ok()).filter(|v| v.is_finite())
    }

    pub fn get_char(&self, tag: u32) -> Option<u8> {
        match self.get(tag) {
            Some([c]) => Some(*c),
            _ => None,
        }
    }

    /// `Y` in a boolean field.
    pub fn flag(&self, tag: u32) -> bool {
        self.get(tag) == Some(b"Y")
    }

    /// The fields in order, for logs and tests.
    pub fn fields(&self) -> impl Iterator<Item = (u32, &'a [u8])> + '_ {
        self.spans.iter().map(|&(t, a, b)| (t, &self.raw[a as usize..b as usize]))
    }

    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }
}

/// The standard header of an outgoing message.
#[derive(Debug, Clone, Copy)]
pub struct Header<'a> {
    pub msg_type: &'a [u8],
    pub sender: &'a [u8],
    pub target: &'a [u8],
    pub seq: u64,
    pub sending_time: &'a [u8],
    /// Set on a message sent again: PossDupFlag=Y with this OrigSendingTime.
    pub poss_dup: Option<&'a [u8]>,
}

/// Writes messages: header fields, then body fields, then BodyLength and CheckSum around them.
#[derive(Debug)]
pub struct Builder {
    body: Vec<u8>,
}

impl Default for Builder {
    fn default() -> Self {
        Self::new()
    }
}

impl Builder {
    pub fn new() -> Self {
        Builder { body: Vec::with_capacity(1024) }
    }

    /// Starts a message with its standard header.
    pub fn start(&mut self, h: &Header<'_>) -> &mut Self {
        self.body.clear();
        self.field(tag::MSG_TYPE, h.msg_type)
            .field(tag::SENDER_COMP_ID, h.sender)
            .field(tag::TARGET_COMP_ID, h.target)
            .field_u64(tag::MSG_SEQ_NUM, h.seq);
        if let Some(orig) = h.poss_dup {
            self.field(tag::POSS_DUP_FLAG, b"Y");
            self.field(tag::SENDING_TIME, h.sending_time);
            self.field(tag::ORIG_SENDING_TIME, orig);
        } else {
            self.field(tag::SENDING_TIME, h.sending_time);
        }
        self
    }

    pub fn field(&mut self, tag: u32, value: &[u8]) -> &mut Self {
        push_u64(&mut self.body, u64::from(tag));
        self.body.push(b'=');
        self.body.extend_from_slice(value);
        self.body.push(SOH);
        self
    }

    pub fn field_u64(&mut self, tag: u32, value: u64) -> &mut Self {
        push_u64(&mut self.body, u64::from(tag));
        self.body.push(b'=');
        push_u64(&mut self.body, value);
        self.body.push(SOH);
        self
    }

    /// A Qty or Price field. Finite values only (the executor checks them before they get here);
    /// Rust's shortest round-trip formatting never uses an exponent, as FIX requires.
    pub fn field_f64(&mut self, tag: u32, value: f64) -> &mut Self {
        push_u64(&mut self.body, u64::from(tag));
        self.body.push(b'=');
        let _ = write!(self.body, "{value}");
        self.body.push(SOH);
        self
    }

    /// Appends the finished message (BeginString, BodyLength, body, CheckSum) to `out`.
    pub fn finish(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(PREFIX);
        push_u64(out, self.body.len() as u64);
        out.push(SOH);
        out.extend_from_slice(&self.body);
        let sum = checksum(&out[start..]);
        out.extend_from_slice(b"10=");
        out.push(b'0' + (sum / 100) as u8);
        out.push(b'0' + (sum / 10 % 10) as u8);
        out.push(b'0' + (sum % 10) as u8);
        out.push(SOH);
    }
}

/// A whole message: `header`, then `fields` in order, framed with its length and checksum. For
/// messages sent once (tests, simulators); the session reuses one [`Builder`].
pub fn encode(header: &Header<'_>, fields: &[(u32, &[u8])]) -> Vec<u8> {
    let mut b = Builder::new();
    b.start(header);
    for (t, v) in fields {
        b.field(*t, v);
    }
    let mut out = Vec::new();
    b.finish(&mut out);
    out
}

/// Appends the decimal digits of `v`.
pub fn push_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(crate::support::encoding::Decimal::new().format(v).as_bytes());
}

/// A message with SOH shown as `|`, for logs and errors. Never used for messages carrying a
/// password (Logon is logged by its fields, not its bytes).
pub fn printable(msg: &[u8]) -> String {
    msg.iter()
        .map(|&b| {
            if b == SOH {
                '|'
            } else if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '?'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header<'a>(msg_type: &'a [u8], seq: u64) -> Header<'a> {
        Header {
            msg_type,
            sender: b"MT5BOT",
            target: b"EXEC",
            seq,
            sending_time: b"20261124-07:06:19.123",
            poss_dup: None,
        }
    }

    fn build(f: impl FnOnce(&mut Builder)) -> Vec<u8> {
        let mut b = Builder::new();
        f(&mut b);
        let mut out = Vec::new();
        b.finish(&mut out);
        out
    }

    #[test]
    fn builds_the_reference_heartbeat() {
        let out = build(|b| {
            b.start(&header(b"0", 1));
        });
        let text = printable(&out);
        assert_eq!(text, "8=FIX.4.4|9=53|35=0|49=MT5BOT|56=EXEC|34=1|52=20261124-07:06:19.123|10=179|");
        // BodyLength counts from after `9=53|` to before `10=`; both figures computed by hand.
        let body_start = text.find("35=").expect("type");
        let trailer = text.find("10=").expect("trailer");
        assert_eq!(trailer - body_start, 53);
    }

    #[test]
    fn every_message_type_round_trips() {
        let types: [&[u8]; 13] = [b"0", b"1", b"2", b"3", b"4", b"5", b"A", b"D", b"F", b"H", b"8", b"9", b"j"];
        let mut fields = Fields::new();
        for (i, t) in types.iter().enumerate() {
            let out = build(|b| {
                b.start(&header(t, i as u64 + 1))
                    .field(tag::CL_ORD_ID, b"M1-1")
                    .field_f64(tag::PRICE, 1.08512)
                    .field_f64(tag::ORDER_QTY, 2.0)
                    .field(tag::TEXT, b"a b=c");
            });
            assert_eq!(frame(&out), Frame::Message(out.len()));
            let m = fields.parse(&out).expect("parses");
            assert_eq!(m.msg_type(), *t);
            assert_eq!(m.get_u64(tag::MSG_SEQ_NUM), Some(i as u64 + 1));
            assert_eq!(m.get(tag::CL_ORD_ID), Some(&b"M1-1"[..]));
            assert_eq!(m.get_f64(tag::PRICE), Some(1.08512));
            assert_eq!(m.get(tag::ORDER_QTY), Some(&b"2"[..]));
            assert_eq!(m.get(tag::TEXT), Some(&b"a b=c"[..]));
            assert_eq!(m.get_u64(tag::CHECKSUM), Some(u64::from(checksum(&out[..out.len() - 7]))));
        }
    }

    #[test]
    fn poss_dup_goes_in_the_header() {
        let out = build(|b| {
            let mut h = header(b"4", 7);
            h.poss_dup = Some(b"20261124-07:00:00.000");
            b.start(&h).field(tag::GAP_FILL_FLAG, b"Y").field_u64(tag::NEW_SEQ_NO, 9);
        });
        let text = printable(&out);
        assert!(text.contains("|34=7|43=Y|52=20261124-07:06:19.123|122=20261124-07:00:00.000|123=Y|36=9|"), "{text}");
    }

    #[test]
    fn partial_input_waits_for_more() {
        let out = build(|b| {
            b.start(&header(b"0", 1));
        });
        for cut in 0..out.len() {
            assert_eq!(frame(&out[..cut]), Frame::Incomplete, "cut at {cut}");
        }
    }

    #[test]
    fn bad_checksum_is_skipped_whole() {
        let mut out = build(|b| {
            b.start(&header(b"0", 1));
        });
        let n = out.len();
        out[n - 2] = if out[n - 2] == b'9' { b'0' } else { b'9' };
        assert_eq!(frame(&out), Frame::Garbled { skip: n, why: Garbled::BadChecksum });
    }

    #[test]
    fn wrong_body_length_resyncs_to_the_next_message() {
        let good = build(|b| {
            b.start(&header(b"0", 2));
        });
        let text = printable(&good).replace("9=53|", "9=52|");
        let mut bad: Vec<u8> = text.bytes().map(|b| if b == b'|' { SOH } else { b }).collect();
        let first = bad.len();
        bad.extend_from_slice(&good);
        match frame(&bad) {
            Frame::Garbled { skip, why: Garbled::WrongBodyLength } => {
                assert_eq!(skip, first);
                assert_eq!(frame(&bad[skip..]), Frame::Message(good.len()));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn garbage_before_a_message_is_skipped() {
        let good = build(|b| {
            b.start(&header(b"0", 3));
        });
        let mut buf = b"hello\x01".to_vec();
        buf.extend_from_slice(&good);
        let Frame::Garbled { skip, why: Garbled::BadBeginString } = frame(&buf) else { panic!("not garbled") };
        assert_eq!(frame(&buf[skip..]), Frame::Message(good.len()));
        // Non-numeric and oversized lengths.
        assert!(matches!(frame(b"8=FIX.4.4\x019=x\x01"), Frame::Garbled { why: Garbled::BadBodyLength, .. }));
        assert!(matches!(frame(b"8=FIX.4.4\x019=99999\x01"), Frame::Garbled { why: Garbled::BadBodyLength, .. }));
        assert!(matches!(frame(b"8=FIX.4.4\x019=123456"), Frame::Garbled { why: Garbled::BadBodyLength, .. }));
        assert!(matches!(frame(b"8=FIX.4.2\x01"), Frame::Garbled { why: Garbled::BadBeginString, .. }));
    }

    #[test]
    fn malformed_fields_are_refused() {
        let mut f = Fields::new();
        assert_eq!(f.parse(b"8=FIX.4.4\x019=5\x0135=0\x01x=1\x01").err(), Some(Malformed::BadField(0)));
        assert_eq!(f.parse(b"8=FIX.4.4\x019=5\x0135=\x01").err(), Some(Malformed::BadField(35)));
        assert_eq!(f.parse(b"8=FIX.4.4\x019=5\x0149=A\x0135=0\x01").err(), Some(Malformed::NoMsgType));
        assert_eq!(f.parse(b"8=FIX.4.4\x019=5\x0135=0").err(), Some(Malformed::BadField(35)));
    }

    #[test]
    fn numbers_parse_strictly() {
        let out = build(|b| {
            b.start(&header(b"8", 1)).field(tag::CUM_QTY, b"1e3").field(tag::LEAVES_QTY, b"-1");
        });
        let mut f = Fields::new();
        let m = f.parse(&out).expect("parses");
        assert_eq!(m.get_u64(tag::LEAVES_QTY), None);
        assert_eq!(m.get_f64(tag::LEAVES_QTY), Some(-1.0));
        assert_eq!(m.get_u64(tag::CUM_QTY), None);
    }
}
