//! Syslog messages: RFC 5424 with mt5bot's structured data, and the cut of a UDP datagram.

use super::*;

/// The RFC 5424 message of a record; PROCID is the pid that logged it (`pid` when unknown).
pub fn syslog_message(r: &ForwardRecord, facility: u8, host: &str, app: &str, pid: u32) -> String {
    let mut out = Vec::with_capacity(128 + r.msg.len());
    write_syslog_message(&mut out, r, facility, host, app, pid);
    String::from_utf8(out).unwrap_or_default()
}

/// Appends the RFC 5424 message of a record to `out`, without allocating beyond `out`'s growth.
pub fn write_syslog_message(out: &mut Vec<u8>, r: &ForwardRecord, facility: u8, host: &str, app: &str, pid: u32) {
    use std::io::Write as _;
    let pid = if r.pid == 0 { pid } else { r.pid };
    let pri = u32::from(facility) * 8 + u32::from(r.severity());
    let _ = write!(out, "<{pri}>1 ");
    crate::support::timefmt::write_rfc3339_micros(out, r.unix_ns());
    let _ = write!(out, " {host} {app} {pid} log [{SD_ID} level=\"");
    push_sd_escaped(out, &r.level);
    out.extend_from_slice(b"\" target=\"");
    push_sd_escaped(out, &r.target);
    out.extend_from_slice(b"\"] ");
    out.extend(r.msg.bytes().map(|b| if b == b'\n' || b == b'\r' { b' ' } else { b }));
}

pub(super) fn push_sd_escaped(out: &mut Vec<u8>, s: &str) {
    for b in s.bytes() {
        if matches!(b, b'"' | b'\\' | b']') {
            out.push(b'\\');
        }
        out.push(b);
    }
}

/// Cuts a message to `max` bytes at a character boundary, ending it with the marker.
pub fn truncate_for_udp(msg: &str, max: usize) -> String {
    if msg.len() <= max {
        return msg.to_owned();
    }
    let mut end = max - TRUNCATION_MARKER.len();
    while !msg.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{TRUNCATION_MARKER}", &msg[..end])
}
