//! Syslog messages: RFC 5424 with mt5bot's structured data, and the cut of a UDP datagram.

use super::*;

/// The RFC 5424 message of a record; PROCID is the pid that logged it (the context's when unknown).
pub(super) fn syslog_message(r: &ForwardRecord, ctx: &Context) -> String {
    let mut out = Vec::with_capacity(128 + r.msg.len());
    write_syslog_message(&mut out, r, ctx);
    String::from_utf8(out).unwrap_or_default()
}

/// Appends the RFC 5424 message of a record to `out`, without allocating beyond `out`'s growth.
/// The structured data holds the level, the target and the bot's identity labels.
pub(super) fn write_syslog_message(out: &mut Vec<u8>, r: &ForwardRecord, ctx: &Context) {
    use std::io::Write as _;
    let (facility, host, app) = (ctx.facility, ctx.host.as_str(), ctx.app.as_str());
    let pid = if r.pid == 0 { ctx.pid } else { r.pid };
    let pri = u32::from(facility) * 8 + u32::from(r.severity());
    let _ = write!(out, "<{pri}>1 ");
    crate::support::timefmt::write_rfc3339_micros(out, r.unix_ns());
    let _ = write!(out, " {host} {app} {pid} log [{SD_ID} level=\"");
    push_sd_escaped(out, &r.level);
    out.extend_from_slice(b"\" target=\"");
    push_sd_escaped(out, &r.target);
    for (k, v) in &ctx.identity {
        out.push(b'"');
        out.push(b' ');
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b"=\"");
        push_sd_escaped(out, v);
    }
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
