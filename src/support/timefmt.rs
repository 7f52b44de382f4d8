//! UTC timestamps without a calendar crate: RFC 3339 formatting for log records and parsing for
//! CSV replay files. Days from the civil date follow Howard Hinnant's public-domain algorithms.

use std::time::{SystemTime, UNIX_EPOCH};

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The civil date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Nanoseconds since the Unix epoch, now.
pub fn unix_nanos() -> i128 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

/// Appends `2026-11-24T07:06:19.123456Z` to `out` without allocating beyond its growth.
pub fn write_rfc3339_micros(out: &mut Vec<u8>, unix_ns: i128) {
    use std::io::Write as _;
    let secs = unix_ns.div_euclid(1_000_000_000) as i64;
    let micros = (unix_ns.rem_euclid(1_000_000_000) / 1_000) as u32;
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    let _ = write!(out, "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z", sod / 3600, (sod / 60) % 60, sod % 60);
}

/// `2026-11-24T07:06:19.123456Z` (microseconds, UTC).
pub fn rfc3339_micros(unix_ns: i128) -> String {
    let secs = unix_ns.div_euclid(1_000_000_000) as i64;
    let micros = (unix_ns.rem_euclid(1_000_000_000) / 1_000) as u32;
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    format!("{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z", sod / 3600, (sod / 60) % 60, sod % 60)
}

/// Length of a FIX UTCTimestamp with milliseconds: `20261124-07:06:19.123`.
pub const FIX_TIMESTAMP_LEN: usize = 21;

/// Writes a FIX UTCTimestamp with milliseconds (`YYYYMMDD-HH:MM:SS.sss`) without allocating.
pub fn fix_timestamp(unix_ns: i128, out: &mut [u8; FIX_TIMESTAMP_LEN]) {
    let secs = unix_ns.div_euclid(1_000_000_000) as i64;
    let millis = (unix_ns.rem_euclid(1_000_000_000) / 1_000_000) as u32;
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400) as u32;
    let y = y.clamp(0, 9999) as u32;
    let digits = |out: &mut [u8], mut v: u32| {
        for b in out.iter_mut().rev() {
            *b = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    digits(&mut out[0..4], y);
    digits(&mut out[4..6], mo);
    digits(&mut out[6..8], d);
    out[8] = b'-';
    digits(&mut out[9..11], sod / 3600);
    out[11] = b':';
    digits(&mut out[12..14], (sod / 60) % 60);
    out[14] = b':';
    digits(&mut out[15..17], sod % 60);
    out[17] = b'.';
    digits(&mut out[18..21], millis);
}

/// Epoch seconds written with more digits than this are refused (a millisecond timestamp given
/// as seconds would land tens of thousands of years ahead).
const EPOCH_SECONDS_DIGITS: usize = 11;

/// Parses RFC 3339 (`2026-11-24T07:06:19.5Z`, `...+02:00`, a space allowed for `T`) or epoch
/// seconds with an optional fraction (`1732431979.25`, up to 11 digits before the point) into
/// nanoseconds since the epoch.
pub fn parse_timestamp(s: &str) -> Result<i128, String> {
    let s = s.trim();
    let err = || format!("{s:?} is not a timestamp; accepted: RFC 3339 (2026-11-24T07:06:19.5Z) or epoch seconds");
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let (int, frac) = s.split_once('.').unwrap_or((s, ""));
        if int.is_empty() || int.len() > EPOCH_SECONDS_DIGITS {
            return Err(err());
        }
        // Replay files carry millions of these: digits summed in u64, not parsed as i128.
        let secs = int.bytes().fold(0u64, |acc, b| acc * 10 + u64::from(b - b'0'));
        return Ok(i128::from(secs) * 1_000_000_000 + parse_fraction(frac).ok_or_else(err)?);
    }
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(err());
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let t = s.get(r)?;
        t.bytes().all(|c| c.is_ascii_digit()).then(|| t.parse().ok())?
    };
    let (y, mo, d) = (num(0..4).ok_or_else(err)?, num(5..7).ok_or_else(err)?, num(8..10).ok_or_else(err)?);
    let (h, mi, se) = (num(11..13).ok_or_else(err)?, num(14..16).ok_or_else(err)?, num(17..19).ok_or_else(err)?);
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(i64::from(y), mo) || h > 23 || mi > 59 || se > 60 {
        return Err(err());
    }
    let mut rest = &s[19..];
    let mut nanos = 0i128;
    if let Some(r) = rest.strip_prefix('.') {
        let end = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
        nanos = parse_fraction(&r[..end]).ok_or_else(err)?;
        rest = &r[end..];
    }
    let offset_s: i64 = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && (rest.starts_with('+') || rest.starts_with('-')) && &rest[3..4] == ":" => {
            let oh: i64 = rest[1..3].parse().map_err(|_| err())?;
            let om: i64 = rest[4..6].parse().map_err(|_| err())?;
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (oh * 3600 + om * 60)
        }
        _ => return Err(err()),
    };
    let days = days_from_civil(i64::from(y), mo, d);
    let secs = days * 86_400 + i64::from(h) * 3600 + i64::from(mi) * 60 + i64::from(se) - offset_s;
    Ok(i128::from(secs) * 1_000_000_000 + nanos)
}

fn parse_fraction(frac: &str) -> Option<i128> {
    if frac.len() > 9 || !frac.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let v = frac.bytes().fold(0u64, |acc, b| acc * 10 + u64::from(b - b'0'));
    Some(i128::from(v * 10u64.pow(9 - frac.len() as u32)))
}

/// An RFC 3339 UTC time as a file name part: `2026-11-24T075710Z` (reports, files set aside).
pub fn file_stamp(rfc3339: &str) -> String {
    // Keep date, hours, minutes, seconds; a shorter text keeps what it has.
    let date = rfc3339.get(..10).unwrap_or(rfc3339);
    let time: String = rfc3339.get(11..19).unwrap_or("").chars().filter(|c| *c != ':').collect();
    format!("{date}T{time}Z")
}

/// A zone for `feed.csv.timezone`: an IANA name, or a fixed offset such as `+02:00`.
pub fn parse_zone(s: &str) -> Option<jiff::tz::TimeZone> {
    let s = s.trim();
    if let Some(sign) = s.strip_prefix('+').map(|r| (1, r)).or_else(|| s.strip_prefix('-').map(|r| (-1, r))) {
        let (k, rest) = sign;
        let (h, m) = rest.split_once(':').unwrap_or((rest, "0"));
        let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
        if !(0..=14).contains(&h) || !(0..60).contains(&m) {
            return None;
        }
        let offset = jiff::tz::Offset::from_seconds(k * (h * 3600 + m * 60)).ok()?;
        return Some(jiff::tz::TimeZone::fixed(offset));
    }
    jiff::tz::TimeZone::get(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_fix_timestamps() {
        let mut b = [0u8; FIX_TIMESTAMP_LEN];
        fix_timestamp(1_732_431_979_123_456_789, &mut b);
        assert_eq!(&b, b"20241124-07:06:19.123");
        fix_timestamp(0, &mut b);
        assert_eq!(&b, b"19700101-00:00:00.000");
    }

    #[test]
    fn formats_known_instants() {
        assert_eq!(rfc3339_micros(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(rfc3339_micros(1_732_431_979_123_456_789), "2024-11-24T07:06:19.123456Z");
        assert_eq!(rfc3339_micros(951_782_400_000_000_000), "2000-02-29T00:00:00.000000Z");
    }

    #[test]
    fn parses_what_it_formats_and_offsets() {
        for ns in [0i128, 1_732_431_979_123_456_000, 4_102_444_800_000_000_000] {
            assert_eq!(parse_timestamp(&rfc3339_micros(ns)), Ok(ns));
        }
        assert!(parse_timestamp("2024-02-29T00:00:00Z").is_ok());
        assert_eq!(parse_timestamp("2024-11-24T09:06:19+02:00"), parse_timestamp("2024-11-24T07:06:19Z"));
        assert_eq!(parse_timestamp("1732431979.25"), Ok(1_732_431_979_250_000_000));
        assert_eq!(parse_timestamp("1732431979.123456789"), Ok(1_732_431_979_123_456_789));
        assert_eq!(parse_timestamp("99999999999"), Ok(99_999_999_999_000_000_000), "11 digits: year 5138");
        assert_eq!(parse_timestamp("2024-11-24 07:06:19.5Z"), Ok(1_732_431_979_500_000_000));
    }

    #[test]
    fn refuses_garbage() {
        for bad in [
            "",
            "yesterday",
            "2024-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-04-31T00:00:00Z",
            "2024-11-24T07:06:19",
            "1.2.3",
            ".5",
            "1732431979123",
            "999999999999999999999999999999999999999",
            "1000000000000000000000000000000",
            "2024-11-24T07:06:19.1234567890Z",
            "２０２４-11-24T07:06:19Z",
        ] {
            assert!(parse_timestamp(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn file_stamps_keep_date_and_seconds() {
        assert_eq!(super::file_stamp("2026-11-24T07:57:10.123456Z"), "2026-11-24T075710Z");
        assert_eq!(super::file_stamp(&super::rfc3339_micros(0)), "1970-01-01T000000Z");
        assert_eq!(super::file_stamp("2026"), "2026TZ", "short input does not panic");
    }

    #[test]
    fn zones_are_iana_names_or_fixed_offsets() {
        assert!(parse_zone("Europe/Athens").is_some());
        assert_eq!(parse_zone("+03:00").map(|z| z.to_fixed_offset().ok()), Some(jiff::tz::Offset::from_hours(3).ok()));
        assert!(parse_zone("-05").is_some());
        assert!(parse_zone("+25:00").is_none() && parse_zone("Mars/Olympus").is_none() && parse_zone("+x").is_none());
    }
}
