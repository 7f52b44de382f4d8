//! Stage two: [`validate`] turns the raw document into the typed [`Config`], checking ranges and
//! relations, and collects every error with its line, key and what would have been accepted.

use super::*;

struct Validator<'a> {
    name: &'a str,
    text: &'a str,
    errors: Vec<ConfigError>,
}

impl Validator<'_> {
    fn fail(&mut self, key: &str, message: String) {
        self.errors.push(ConfigError {
            file: self.name.to_owned(),
            line: locate(self.text, key),
            key: key.to_owned(),
            message,
        });
    }

    fn duration(&mut self, key: &str, value: &str, min: Duration, max: Duration) -> Duration {
        match parse_duration(value) {
            Ok(d) if d >= min && d <= max => d,
            Ok(_) => {
                self.fail(
                    key,
                    format!(
                        "{value:?} is out of range; accepted: {} to {}",
                        format_duration(min),
                        format_duration(max)
                    ),
                );
                min
            }
            Err(e) => {
                self.fail(key, e);
                min
            }
        }
    }

    fn range_f64(&mut self, key: &str, value: f64, min: f64, max: f64, what: &str) -> f64 {
        if !(value.is_finite() && value >= min && value <= max) {
            self.fail(key, format!("{value} is out of range; accepted: {what}"));
        }
        value
    }

    fn range_usize(&mut self, key: &str, value: usize, min: usize, max: usize) -> usize {
        if value < min || value > max {
            self.fail(key, format!("{value} is out of range; accepted: {min} to {max}"));
        }
        value
    }

    fn addr(&mut self, key: &str, value: &str) -> SocketAddr {
        match value.parse::<SocketAddr>() {
            Ok(a) => a,
            Err(_) => {
                self.fail(
                    key,
                    format!(
                        "{value:?} is not a socket address; accepted: IP:PORT such as 127.0.0.1:9898 or [::1]:9898"
                    ),
                );
                SocketAddr::from(([127, 0, 0, 1], 0))
            }
        }
    }
}

/// Stage two: checks the raw document and builds the typed [`Config`], one section at a time.
/// Reports the first error.
pub fn validate(raw: RawConfig, name: &str, text: &str) -> Result<Config, ConfigError> {
    let mut v = Validator { name, text, errors: Vec::new() };
    let venue = venue(&mut v, &raw);
    let feed = feed(&mut v, &raw);
    let model = model(&mut v, &raw);
    let drift = drift(&mut v, &raw);
    let (queue_capacity, queue_max_wait) = queue(&mut v, &raw);
    let risk = risk(&mut v, &raw);
    let (id_retention, id_memory, ingress) = ingress(&mut v, &raw);
    let metrics = metrics(&mut v, &raw);
    let logging = logging(&mut v, &raw);
    let influx = influx(&mut v, &raw);
    let log_forward = log_forward(&mut v, &raw);
    let checkpoint = checkpoint(&mut v, &raw);
    let engine = engine(&mut v, &raw);
    let mut protection = protection(&mut v, &raw);
    protection.rates = rates(&mut v, &feed, protection.account_currency.as_deref());
    let sessions = sessions(&mut v, &raw);
    let identity = identity(&mut v, &raw, &venue);
    let notify = notify(&mut v, &raw);

    if let Some(first) = v.errors.into_iter().next() {
        return Err(first);
    }
    Ok(Config {
        source: name.to_owned(),
        venue,
        feed,
        model,
        drift,
        queue_capacity,
        queue_max_wait,
        id_retention,
        id_memory,
        risk,
        ingress,
        metrics,
        logging,
        influx,
        log_forward,
        checkpoint,
        engine,
        protection,
        sessions,
        identity,
        notify,
    })
}

/// `notify:`: each sink's service, where its secret comes from, and what it takes.
fn notify(v: &mut Validator<'_>, raw: &RawConfig) -> NotifyConfig {
    use crate::domain::notice::NoticeKind;
    let n = &raw.notify;
    let batch_fills = v.duration("notify.batch_fills", &n.batch_fills, Duration::ZERO, Duration::from_secs(3600));
    let queue_capacity = v.range_usize("notify.queue_capacity", n.queue_capacity, 1, 1_000_000);
    let timeout = v.duration("notify.timeout", &n.timeout, Duration::from_millis(100), Duration::from_secs(120));
    let mut sinks: Vec<NotifySinkConfig> = Vec::new();
    for (i, s) in n.sinks.iter().enumerate() {
        let key = |k: &str| format!("notify.sinks[{i}].{k}");
        let name = if s.name.is_empty() { s.kind.as_str().to_owned() } else { s.name.clone() };
        if !(1..=64).contains(&name.len())
            || !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        {
            v.fail(&key("name"), format!("{name:?} is not accepted; accepted: 1 to 64 of A-Z a-z 0-9 _ - ."));
        } else if sinks.iter().any(|o| o.name == name) {
            v.fail(&key("name"), format!("{name:?} names two sinks; give each its own name (it labels its metrics)"));
        }
        let mut kinds = 0u8;
        for e in &s.events {
            match NoticeKind::parse(e) {
                Some(k) => kinds |= k.bit(),
                None => {
                    let all: Vec<&str> = NoticeKind::ALL.iter().map(|k| k.as_str()).collect();
                    v.fail(&key("events"), format!("{e:?} is not an event; accepted: {}", all.join(", ")));
                }
            }
        }
        if s.events.is_empty() {
            kinds = NoticeKind::ALL.iter().fold(0, |k, e| k | e.bit());
        }
        let env_name = |v: &mut Validator<'_>, k: &str, value: &str, default: &str| {
            let value = if value.is_empty() { default } else { value };
            if !value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') || value.is_empty() {
                v.fail(&key(k), format!("{value:?} is not a variable name; accepted: A-Z a-z 0-9 _"));
            }
            value.to_owned()
        };
        let http_url = |v: &mut Validator<'_>, k: &str, value: &str| {
            if !(value.starts_with("http://") || value.starts_with("https://")) {
                v.fail(
                    &key(k),
                    format!(
                        "{:?} is not accepted; accepted: http://HOST[:PORT]/PATH or https://...",
                        crate::support::urls::redact(value)
                    ),
                );
            } else if crate::support::urls::split_userinfo(value).1.is_some() {
                v.fail(&key(k), "holds a user:password@; keep credentials out of the config file (header_env)".into());
            }
            value.trim_end_matches('/').to_owned()
        };
        let unused = |v: &mut Validator<'_>, k: &str, set: bool| {
            if set {
                v.fail(&key(k), format!("is not used by a {} sink; remove it", s.kind.as_str()));
            }
        };
        let (secret_env, url) = match s.kind {
            NotifySinkKind::Telegram => {
                let chat = s.chat_id.trim();
                let ok = !chat.is_empty()
                    && chat.len() <= 64
                    && (chat.strip_prefix('-').unwrap_or(chat).bytes().all(|b| b.is_ascii_digit())
                        || (chat.starts_with('@')
                            && chat[1..].bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')));
                if !ok {
                    v.fail(
                        &key("chat_id"),
                        format!("{chat:?} is not a chat; accepted: a number (-100... for a group) or @channelname"),
                    );
                }
                unused(v, "url", !s.url.is_empty());
                unused(v, "url_env", !s.url_env.is_empty());
                let base = if s.base_url.is_empty() { "https://api.telegram.org" } else { &s.base_url };
                (env_name(v, "token_env", &s.token_env, "TELEGRAM_BOT_TOKEN"), http_url(v, "base_url", base))
            }
            NotifySinkKind::Discord | NotifySinkKind::Slack => {
                let default =
                    if s.kind == NotifySinkKind::Discord { "DISCORD_WEBHOOK_URL" } else { "SLACK_WEBHOOK_URL" };
                unused(v, "url", !s.url.is_empty());
                unused(v, "chat_id", !s.chat_id.is_empty());
                unused(v, "token_env", !s.token_env.is_empty());
                unused(v, "base_url", !s.base_url.is_empty());
                (env_name(v, "url_env", &s.url_env, default), String::new())
            }
            NotifySinkKind::Webhook => {
                if s.url.is_empty() {
                    v.fail(&key("url"), "is required for a webhook sink: the URL it posts to".into());
                }
                unused(v, "chat_id", !s.chat_id.is_empty());
                unused(v, "token_env", !s.token_env.is_empty());
                unused(v, "url_env", !s.url_env.is_empty());
                unused(v, "base_url", !s.base_url.is_empty());
                (String::new(), if s.url.is_empty() { String::new() } else { http_url(v, "url", &s.url) })
            }
        };
        if s.kind != NotifySinkKind::Webhook && !s.header_env.is_empty() {
            unused(v, "header_env", true);
        }
        for (h, var) in &s.header_env {
            if h.trim().is_empty() || var.trim().is_empty() {
                v.fail(
                    &key("header_env"),
                    "maps a header name to the variable holding its value; neither may be empty".into(),
                );
            }
        }
        let min_interval = v.duration(&key("min_interval"), &s.min_interval, Duration::ZERO, Duration::from_secs(3600));
        sinks.push(NotifySinkConfig {
            kind: s.kind,
            name,
            chat_id: s.chat_id.trim().to_owned(),
            secret_env,
            url,
            header_env: s.header_env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            kinds,
            min_interval,
        });
    }
    NotifyConfig { sinks, batch_fills, queue_capacity, timeout, raw: n.clone() }
}

/// The equity breakers: the trading day, and each breaker whose limit is not 0.
/// `HH:MM:SS` or `HH:MM` as seconds after midnight.
fn day_seconds(s: &str) -> Option<u32> {
    let mut it = s.trim().split(':');
    let (h, m, sec) = (it.next()?, it.next()?, it.next().unwrap_or("0"));
    if it.next().is_some() || h.len() > 2 || m.len() != 2 || sec.len() > 2 {
        return None;
    }
    let (h, m, sec): (u32, u32, u32) = (h.parse().ok()?, m.parse().ok()?, sec.parse().ok()?);
    (h < 24 && m < 60 && sec < 60).then_some(h * 3600 + m * 60 + sec)
}

/// A weekday as QuickFIX and the calendars write it (`mon` or `monday`, any case), Monday 0.
fn weekday(s: &str) -> Option<u8> {
    const NAMES: [&str; 7] = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];
    let s = s.trim().to_ascii_lowercase();
    NAMES.iter().position(|n| s == *n || (s.len() == 3 && n.starts_with(&s))).map(|i| i as u8)
}

fn fix_schedule(v: &mut Validator<'_>, s: &RawFixSchedule) -> Option<FixSchedule> {
    let key = "venue.fix44.schedule";
    if s.start_time.trim().is_empty() && s.end_time.trim().is_empty() {
        for (k, value) in [("start_day", &s.start_day), ("end_day", &s.end_day)] {
            if !value.trim().is_empty() {
                v.fail(&format!("{key}.{k}"), "needs start_time and end_time too".into());
            }
        }
        return None;
    }
    let time = |v: &mut Validator<'_>, k: &str, value: &str| {
        day_seconds(value).or_else(|| {
            v.fail(
                &format!("{key}.{k}"),
                format!("{value:?} is not a time; accepted: HH:MM:SS or HH:MM, e.g. 17:05:00"),
            );
            None
        })
    };
    let (start, end) = (time(v, "start_time", &s.start_time), time(v, "end_time", &s.end_time));
    let days = match (s.start_day.trim().is_empty(), s.end_day.trim().is_empty()) {
        (true, true) => None,
        (false, false) => {
            let day = |v: &mut Validator<'_>, k: &str, value: &str| {
                weekday(value).or_else(|| {
                    v.fail(&format!("{key}.{k}"), format!("{value:?} is not a weekday; accepted: mon ... sun"));
                    None
                })
            };
            Some((day(v, "start_day", &s.start_day)?, day(v, "end_day", &s.end_day)?))
        }
        _ => {
            v.fail(&format!("{key}.start_day"), "a weekly session needs both start_day and end_day".into());
            None
        }
    };
    let tz_name = if s.tz.trim().is_empty() { "UTC" } else { s.tz.trim() };
    let tz = jiff::tz::TimeZone::get(tz_name).map_err(|_| {
        v.fail(&format!("{key}.tz"), format!("{:?} is not a time zone; accepted: an IANA name such as UTC", s.tz));
    });
    let mut closed = Vec::with_capacity(s.closed.len());
    for d in &s.closed {
        match d.trim().parse::<jiff::civil::Date>() {
            Ok(date) if d.trim().len() == 10 => closed.push(date),
            _ => {
                v.fail(&format!("{key}.closed"), format!("{d:?} is not a date; accepted: YYYY-MM-DD, e.g. 2026-12-25"))
            }
        }
    }
    closed.sort_unstable();
    closed.dedup();
    Some(FixSchedule { tz: tz.ok()?, start: start?, end: end?, days, closed })
}

/// `HH:MM` as minutes after midnight; `24:00` only where `end` allows it.
fn minutes(s: &str, end: bool) -> Option<u16> {
    let (h, m) = s.trim().split_once(':')?;
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    (h.to_string().len() <= 2 && m < 60 && (h < 24 || (end && h == 24 && m == 0))).then_some(h * 60 + m)
}

/// The weekday windows of `c` as minutes, Monday first: a window past midnight split at it, and
/// overlapping ones merged. A window that does not parse is reported under `key` when `v` is given
/// (and left out).
fn week_of(mut v: Option<&mut Validator<'_>>, key: &str, c: &RawCalendar) -> [Vec<(u16, u16)>; 7] {
    let mut week: [Vec<(u16, u16)>; 7] = Default::default();
    for (day, (day_key, windows)) in c.week().into_iter().enumerate() {
        for w in windows {
            let parsed = w.split_once('-').and_then(|(a, b)| Some((minutes(a, false)?, minutes(b, true)?)));
            let Some((start, end)) = parsed else {
                if let Some(v) = v.as_deref_mut() {
                    v.fail(
                        &format!("{key}.{day_key}"),
                        format!(
                            "{w:?} is not a window; accepted: HH:MM-HH:MM, e.g. 09:30-16:00, 22:00-02:00 past \
                             midnight, 00:00-24:00 all day"
                        ),
                    );
                }
                continue;
            };
            if end > start {
                week[day].push((start, end));
            } else {
                // Past midnight: the rest of this day and the start of the next.
                week[day].push((start, 1440));
                if end > 0 {
                    week[(day + 1) % 7].push((0, end));
                }
            }
        }
    }
    for day in &mut week {
        day.sort_unstable();
        let mut merged: Vec<(u16, u16)> = Vec::with_capacity(day.len());
        for &(a, b) in day.iter() {
            match merged.last_mut() {
                Some(last) if a <= last.1 => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        *day = merged;
    }
    week
}

fn sessions(v: &mut Validator<'_>, raw: &RawConfig) -> SessionsConfig {
    let s = &raw.sessions;
    let mut calendars: Vec<CalendarConfig> = Vec::new();
    for (name, c) in &s.calendars {
        let key = format!("sessions.calendars.{name}");
        if name == "always" || name == "fx" {
            v.fail(&key, format!("{name} is built in; give this calendar another name"));
            continue;
        }
        let tz_name = if c.tz.trim().is_empty() { "UTC" } else { c.tz.trim() };
        let mut tz = jiff::tz::TimeZone::get(tz_name).unwrap_or_else(|_| {
            v.fail(
                &format!("{key}.tz"),
                format!("{:?} is not a time zone; accepted: an IANA name such as UTC or America/New_York", c.tz),
            );
            jiff::tz::TimeZone::UTC
        });
        let mut week: [Vec<(u16, u16)>; 7] = Default::default();
        let like = c.like.trim();
        if !like.is_empty() {
            let own_windows = c.week().iter().any(|(_, w)| !w.is_empty()) || !c.tz.trim().is_empty();
            let base = match like {
                "fx" => Some(CalendarConfig::fx()),
                other => s.calendars.get(other).filter(|b| b.like.trim().is_empty()).map(|b| CalendarConfig {
                    // Checked on its own as a calendar; here only its zone and windows are taken.
                    name: other.to_owned(),
                    tz: jiff::tz::TimeZone::get(if b.tz.trim().is_empty() { "UTC" } else { b.tz.trim() })
                        .unwrap_or(jiff::tz::TimeZone::UTC),
                    week: week_of(None, "", b),
                    ..CalendarConfig::fx()
                }),
            };
            match base {
                Some(_) if own_windows => v.fail(
                    &format!("{key}.like"),
                    format!("takes the zone and windows of {like}; drop tz and the weekday lists, or drop like"),
                ),
                Some(b) => (tz, week) = (b.tz, b.week),
                None => {
                    let mut known = vec!["fx"];
                    known.extend(s.calendars.iter().filter(|(_, b)| b.like.trim().is_empty()).map(|(n, _)| n.as_str()));
                    v.fail(
                        &format!("{key}.like"),
                        format!("{like:?} is not a calendar it can take after; accepted: {}", known.join(", ")),
                    );
                }
            }
        }
        if like.is_empty() {
            week = week_of(Some(v), &key, c);
        }
        if week.iter().all(Vec::is_empty) {
            v.fail(&key, "has no open window; give it at least one weekday, e.g. mon: [\"09:00-17:00\"]".into());
        }
        let date = |v: &mut Validator<'_>, k: &str, d: &str| -> Option<jiff::civil::Date> {
            let parsed = d.trim().parse::<jiff::civil::Date>().ok().filter(|_| d.trim().len() == 10);
            if parsed.is_none() {
                v.fail(k, format!("{d:?} is not a date; accepted: YYYY-MM-DD"));
            }
            parsed
        };
        let mut closed: Vec<jiff::civil::Date> =
            c.closed.iter().filter_map(|d| date(v, &format!("{key}.closed"), d)).collect();
        closed.sort_unstable();
        let mut early_close = Vec::new();
        for (d, at) in &c.early_close {
            let k = format!("{key}.early_close");
            if let Some(day) = date(v, &k, d) {
                match minutes(at, false) {
                    Some(m) => early_close.push((day, m)),
                    None => v.fail(&k, format!("{d}: {at:?} is not a time; accepted: HH:MM")),
                }
            }
        }
        let optional = |v: &mut Validator<'_>, k: &str, value: &str| -> Duration {
            if value.trim().is_empty() {
                Duration::ZERO
            } else {
                v.duration(k, value, Duration::from_secs(1), Duration::from_secs(24 * 3600))
            }
        };
        if c.at_close != AtClose::Nothing && c.close_before.trim().is_empty() {
            v.fail(
                &format!("{key}.at_close"),
                format!(
                    "{} acts close_before the close, and close_before is not set; set it too, e.g. close_before: 10m",
                    c.at_close.as_str()
                ),
            );
        }
        calendars.push(CalendarConfig {
            name: name.clone(),
            tz,
            week,
            closed,
            early_close,
            close_before: optional(v, &format!("{key}.close_before"), &c.close_before),
            at_close: c.at_close,
            open_after: optional(v, &format!("{key}.open_after"), &c.open_after),
        });
    }
    let names: Vec<&str> = raw.feed.symbols.iter().map(|s| s.name.as_str()).collect();
    for sym in s.symbols.keys() {
        if !names.contains(&sym.as_str()) {
            v.fail(&format!("sessions.symbols.{sym}"), format!("{sym} is not in feed.symbols ({})", names.join(", ")));
        }
    }
    // Only the calendars some symbol uses are kept; fx is added when used.
    let mut used: Vec<CalendarConfig> = Vec::new();
    let mut index_of = |v: &mut Validator<'_>, key: &str, name: &str| -> Option<usize> {
        if name == "always" {
            return None;
        }
        if let Some(i) = used.iter().position(|c| c.name == name) {
            return Some(i);
        }
        let found =
            if name == "fx" { Some(CalendarConfig::fx()) } else { calendars.iter().find(|c| c.name == name).cloned() };
        match found {
            Some(c) => {
                used.push(c);
                Some(used.len() - 1)
            }
            None => {
                let mut known = vec!["always", "fx"];
                known.extend(s.calendars.keys().map(String::as_str));
                v.fail(key, format!("{name:?} is not a calendar; accepted: {}", known.join(", ")));
                None
            }
        }
    };
    let default = index_of(v, "sessions.default", &s.default);
    let symbols = names
        .iter()
        .map(|n| match s.symbols.get(*n) {
            Some(cal) => index_of(v, &format!("sessions.symbols.{n}"), cal),
            None => default,
        })
        .collect();
    SessionsConfig { calendars: used, symbols, raw: s.clone() }
}

fn protection(v: &mut Validator<'_>, raw: &RawConfig) -> ProtectionConfig {
    let p = &raw.protection;
    let starting_balance = v.range_f64(
        "protection.starting_balance",
        p.starting_balance,
        f64::MIN_POSITIVE,
        1e15,
        "an amount greater than 0 (the account currency)",
    );
    let day_start_minutes = hh_mm(v, "protection.day_start", &p.day_start);
    let tz = jiff::tz::TimeZone::get(&p.timezone).unwrap_or_else(|_| {
        v.fail(
            "protection.timezone",
            format!("{:?} is not a time zone; accepted: an IANA name such as UTC or America/New_York", p.timezone),
        );
        jiff::tz::TimeZone::UTC
    });
    let mut breakers = Vec::new();
    let resume = |v: &mut Validator<'_>, key: &str, value: &str| -> Option<Duration> {
        (!value.trim().is_empty())
            .then(|| v.duration(key, value, Duration::from_secs(1), Duration::from_secs(366 * 86_400)))
    };
    let loss = |v: &mut Validator<'_>, key: &str, value: f64| -> Option<f64> {
        (value != 0.0).then(|| v.range_f64(key, value, f64::MIN_POSITIVE, 1e15, "0 (off) or an amount greater than 0"))
    };
    let fraction = |v: &mut Validator<'_>, key: &str, value: f64| -> Option<f64> {
        (value != 0.0)
            .then(|| v.range_f64(key, value, f64::MIN_POSITIVE, 1.0, "0 (off) or a fraction above 0, up to 1"))
    };
    let d = &p.max_daily_loss;
    let (amount, frac) = (
        loss(v, "protection.max_daily_loss.amount", d.amount),
        fraction(v, "protection.max_daily_loss.fraction", d.fraction),
    );
    if amount.is_some() || frac.is_some() {
        breakers.push(BreakerConfig {
            limit: BreakerLimit::DailyLoss { amount, fraction: frac },
            action: d.action,
            resume_after: resume(v, "protection.max_daily_loss.resume_after", &d.resume_after),
        });
    }
    let d = &p.max_drawdown;
    if let Some(fraction) = fraction(v, "protection.max_drawdown.fraction", d.fraction) {
        let window = (!d.window.trim().is_empty()).then(|| {
            v.duration(
                "protection.max_drawdown.window",
                &d.window,
                Duration::from_secs(60),
                Duration::from_secs(366 * 86_400),
            )
        });
        breakers.push(BreakerConfig {
            limit: BreakerLimit::Drawdown { fraction, window },
            action: d.action,
            resume_after: resume(v, "protection.max_drawdown.resume_after", &d.resume_after),
        });
    }
    let d = &p.max_consecutive_losses;
    if d.count > 0 {
        breakers.push(BreakerConfig {
            limit: BreakerLimit::ConsecutiveLosses { count: d.count },
            action: d.action,
            resume_after: resume(v, "protection.max_consecutive_losses.resume_after", &d.resume_after),
        });
    }
    let d = &p.max_position_loss;
    if let Some(amount) = loss(v, "protection.max_position_loss.amount", d.amount) {
        breakers.push(BreakerConfig {
            limit: BreakerLimit::PositionLoss { amount },
            action: d.action,
            resume_after: resume(v, "protection.max_position_loss.resume_after", &d.resume_after),
        });
    }
    let exit_limit_bps =
        v.range_f64("protection.exit_limit_bps", p.exit_limit_bps, 0.0, 5_000.0, "0 to 5000 basis points");
    let account_currency =
        (!p.account_currency.is_empty()).then(|| currency(v, "protection.account_currency", &p.account_currency));
    ProtectionConfig {
        starting_balance,
        account_currency,
        rates: Vec::new(),
        day_start_minutes,
        timezone: p.timezone.clone(),
        tz,
        breakers,
        exit_order: p.exit_order,
        exit_limit_bps,
    }
}

/// The venues: paper, FIX 4.4 and the MT5 bridge, and which one trades.
fn venue(v: &mut Validator<'_>, raw: &RawConfig) -> VenueConfig {
    let paper = PaperConfig {
        latency: v.duration("venue.paper.latency", &raw.venue.paper.latency, Duration::ZERO, Duration::from_secs(10)),
        slippage_bps: v.range_f64(
            "venue.paper.slippage_bps",
            raw.venue.paper.slippage_bps,
            0.0,
            1000.0,
            "0 to 1000 basis points",
        ),
        depth: v.range_f64(
            "venue.paper.depth",
            raw.venue.paper.depth,
            f64::MIN_POSITIVE,
            1e12,
            "a quantity greater than 0",
        ),
        rollover_minutes: hh_mm(v, "venue.paper.rollover", &raw.venue.paper.rollover),
        rollover_timezone: raw.venue.paper.rollover_timezone.clone(),
        rollover_tz: jiff::tz::TimeZone::get(&raw.venue.paper.rollover_timezone).unwrap_or_else(|_| {
            v.fail(
                "venue.paper.rollover_timezone",
                format!(
                    "{:?} is not a time zone; accepted: an IANA name such as America/New_York",
                    raw.venue.paper.rollover_timezone
                ),
            );
            jiff::tz::TimeZone::UTC
        }),
        triple_swap_day: WEEKDAYS.iter().position(|d| *d == raw.venue.paper.triple_swap_day).map_or_else(
            || {
                v.fail(
                    "venue.paper.triple_swap_day",
                    format!(
                        "{:?} is not a weekday; accepted: mon, tue, wed, thu, fri",
                        raw.venue.paper.triple_swap_day
                    ),
                );
                2
            },
            |d| d as u8,
        ),
    };
    let fx = &raw.venue.fix44;
    let comp_id = |v: &mut Validator<'_>, key: &str, value: &str| {
        if !(1..=64).contains(&value.len())
            || !value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            v.fail(key, format!("{value:?} is not accepted; accepted: 1 to 64 of A-Z a-z 0-9 . _ -"));
        }
        value.to_owned()
    };
    let fix44 = Fix44Config {
        connect: {
            let c = fx.connect.trim();
            let ok = c.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
            if !ok {
                v.fail(
                    "venue.fix44.connect",
                    format!("{c:?} is not accepted; accepted: HOST:PORT of the broker's FIX gateway, e.g. fix.example.com:9880"),
                );
            }
            c.to_owned()
        },
        sender_comp_id: comp_id(&mut *v, "venue.fix44.sender_comp_id", &fx.sender_comp_id),
        target_comp_id: comp_id(&mut *v, "venue.fix44.target_comp_id", &fx.target_comp_id),
        heartbeat_interval: {
            let d = v.duration(
                "venue.fix44.heartbeat_interval",
                &fx.heartbeat_interval,
                Duration::from_secs(1),
                Duration::from_secs(300),
            );
            if d.subsec_nanos() != 0 {
                v.fail("venue.fix44.heartbeat_interval", "must be whole seconds (FIX HeartBtInt), e.g. 30s".into());
            }
            d
        },
        schedule: fix_schedule(v, &fx.schedule),
        reset_on_logout: fx.schedule.reset_on_logout,
        reset_on_disconnect: fx.schedule.reset_on_disconnect,
        raw_schedule: fx.schedule.clone(),
        native_stops: fx.native_stops,
        reset_on_logon: fx.reset_on_logon,
        logon_timeout: v.duration(
            "venue.fix44.logon_timeout",
            &fx.logon_timeout,
            Duration::from_millis(100),
            Duration::from_secs(300),
        ),
        status_timeout: v.duration(
            "venue.fix44.status_timeout",
            &fx.status_timeout,
            Duration::from_millis(100),
            Duration::from_secs(3600),
        ),
        reconnect_min: v.duration(
            "venue.fix44.reconnect_min",
            &fx.reconnect_min,
            Duration::from_millis(10),
            Duration::from_secs(3600),
        ),
        reconnect_max: v.duration(
            "venue.fix44.reconnect_max",
            &fx.reconnect_max,
            Duration::from_millis(10),
            Duration::from_secs(3600),
        ),
        time_in_force: fx.time_in_force,
        account: {
            if fx.account.len() > 64 || fx.account.bytes().any(|b| !b.is_ascii_graphic()) {
                v.fail("venue.fix44.account", "is not accepted; accepted: up to 64 printable ASCII characters".into());
            }
            fx.account.clone()
        },
        state_dir: PathBuf::from(&fx.state_dir),
    };
    if fix44.reconnect_max < fix44.reconnect_min {
        v.fail("venue.fix44.reconnect_max", "is less than venue.fix44.reconnect_min".into());
    }
    if fx.state_dir.trim().is_empty() {
        v.fail("venue.fix44.state_dir", "is empty; accepted: a folder path, e.g. state".into());
    }
    let rm = &raw.venue.mt5;
    let mt5 = Mt5Config {
        listen: v.addr("venue.mt5.listen", &rm.listen),
        magic: rm.magic,
        deviation: rm.deviation,
        type_filling: rm.type_filling,
        handshake_timeout: v.duration(
            "venue.mt5.handshake_timeout",
            &rm.handshake_timeout,
            Duration::from_millis(100),
            Duration::from_secs(60),
        ),
        heartbeat_interval: v.duration(
            "venue.mt5.heartbeat_interval",
            &rm.heartbeat_interval,
            Duration::from_millis(100),
            Duration::from_secs(300),
        ),
        max_line_bytes: v.range_usize("venue.mt5.max_line_bytes", rm.max_line_bytes, 1024, 16 << 20),
        max_snapshot_bytes: v.range_usize("venue.mt5.max_snapshot_bytes", rm.max_snapshot_bytes, 64 << 10, 256 << 20),
        max_handshakes: v.range_usize("venue.mt5.max_handshakes", rm.max_handshakes, 1, MAX_MT5_HANDSHAKES),
        tls: mt5_tls(v, &rm.tls),
    };
    if rm.magic == 0 || rm.magic > i64::MAX as u64 {
        v.fail("venue.mt5.magic", format!("{} is out of range; accepted: 1 to {}", rm.magic, i64::MAX));
    }
    if rm.deviation > 100_000 {
        v.fail("venue.mt5.deviation", format!("{} is out of range; accepted: 0 to 100000 points", rm.deviation));
    }
    match (raw.venue.kind, raw.feed.kind) {
        (VenueKind::Mt5, FeedKind::Venue) => {}
        (VenueKind::Mt5, _) => v.fail(
            "feed.kind",
            "must be venue with venue.kind: mt5 (the terminal streams the ticks); accepted: venue".into(),
        ),
        (_, FeedKind::Venue) => {
            v.fail("feed.kind", "venue is only for venue.kind: mt5; accepted: synthetic, csv".into())
        }
        _ => {}
    }
    VenueConfig { kind: raw.venue.kind, paper, fix44, mt5 }
}

/// A time of day written `HH:MM`, in minutes after midnight (0 after an error).
fn hh_mm(v: &mut Validator<'_>, key: &str, value: &str) -> u32 {
    match value.split_once(':') {
        Some((h, m)) if h.len() == 2 && m.len() == 2 => match (h.parse::<u32>(), m.parse::<u32>()) {
            (Ok(h), Ok(m)) if h < 24 && m < 60 => Some(h * 60 + m),
            _ => None,
        },
        _ => None,
    }
    .unwrap_or_else(|| {
        v.fail(key, format!("{value:?} is not accepted; accepted: HH:MM, e.g. 17:00"));
        0
    })
}

/// `identity:`: label values that are safe in a series, a Pushgateway path, a file and a
/// systemd instance name.
fn identity(v: &mut Validator<'_>, raw: &RawConfig, venue: &VenueConfig) -> IdentityConfig {
    let i = &raw.identity;
    for (key, value) in
        [("identity.account", &i.account), ("identity.strategy", &i.strategy), ("identity.venue", &i.venue)]
    {
        let ok =
            value.len() <= 64 && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if !ok {
            v.fail(key, format!("{value:?} is not accepted; accepted: up to 64 characters of A-Z a-z 0-9 _ - ."));
        }
    }
    let mut labels = Vec::new();
    if !i.account.is_empty() || !i.strategy.is_empty() {
        for (name, value) in [("account", &i.account), ("strategy", &i.strategy)] {
            if !value.is_empty() {
                labels.push((name.to_owned(), value.clone()));
            }
        }
        let venue = if i.venue.is_empty() { venue.name().to_owned() } else { i.venue.clone() };
        labels.push(("venue".to_owned(), venue));
    } else if !i.venue.is_empty() {
        v.fail("identity.venue", "is set without identity.account or identity.strategy; accepted: set one of them too (the venue label tells bots apart only beside them)".into());
    }
    IdentityConfig { labels, raw: i.clone() }
}

/// A currency code: three letters A-Z (ISO 4217, as MT5 names them).
fn currency(v: &mut Validator<'_>, key: &str, value: &str) -> String {
    if value.len() != 3 || !value.bytes().all(|b| b.is_ascii_uppercase()) {
        v.fail(key, format!("{value:?} is not a currency; accepted: three capital letters, such as USD, EUR or JPY"));
    }
    value.to_owned()
}

/// How each symbol's PnL becomes account currency: directly when it is priced in it, else
/// through the quote of a symbol that pairs the two currencies (named by
/// `feed.symbols[].conversion`, or found among the feed's symbols by name: `<ccy><account>` or
/// `<account><ccy>`, with any broker suffix such as `.m`).
fn rates(v: &mut Validator<'_>, feed: &FeedConfig, account: Option<&str>) -> Vec<RateSource> {
    let symbols = &feed.symbols;
    let Some(account) = account else {
        if let Some((i, s)) = symbols.iter().enumerate().find(|(_, s)| s.currency.is_some()) {
            v.fail(
                &format!("feed.symbols[{i}].currency"),
                format!(
                    "is set for {} but protection.account_currency is not; accepted: set protection.account_currency (such as USD) so PnL in other currencies can be converted",
                    s.name
                ),
            );
        }
        return vec![RateSource::Unit; symbols.len()];
    };
    // What a symbol is priced in: its currency, or the account's when none is set.
    let priced_in = |s: &SymbolConfig| s.currency.as_deref().unwrap_or(account).to_owned();
    let via = |j: usize, ccy: &str| -> Option<RateSource> {
        let c = priced_in(&symbols[j]);
        if c == account {
            Some(RateSource::Via { symbol: j, invert: false })
        } else if c == ccy {
            Some(RateSource::Via { symbol: j, invert: true })
        } else {
            None
        }
    };
    let mut rates = Vec::with_capacity(symbols.len());
    for (i, s) in symbols.iter().enumerate() {
        let ccy = priced_in(s);
        if ccy == account {
            rates.push(RateSource::Unit);
            continue;
        }
        let rate = match &s.conversion {
            Some(name) => match symbols.iter().position(|x| &x.name == name) {
                None => {
                    v.fail(
                        &format!("feed.symbols[{i}].conversion"),
                        format!("{name:?} is not in feed.symbols; accepted: the name of a feed symbol that pairs {ccy} with {account}"),
                    );
                    None
                }
                Some(j) => via(j, &ccy).or_else(|| {
                    v.fail(
                        &format!("feed.symbols[{i}].conversion"),
                        format!(
                            "{name} is priced in {}, so it cannot convert {ccy} to {account}; accepted: a symbol priced in {account} (base {ccy}) or in {ccy} (base {account})",
                            priced_in(&symbols[j])
                        ),
                    );
                    None
                }),
            },
            None => {
                let (direct, inverse) = (format!("{ccy}{account}"), format!("{account}{ccy}"));
                let found = [&direct, &inverse].iter().find_map(|pair| {
                    symbols
                        .iter()
                        .enumerate()
                        .filter(|(_, x)| x.name.starts_with(pair.as_str()))
                        .find_map(|(j, _)| via(j, &ccy))
                });
                if found.is_none() {
                    v.fail(
                        &format!("feed.symbols[{i}].currency"),
                        format!(
                            "{} is priced in {ccy} but protection.account_currency is {account}, and no feed symbol converts them; accepted: add {direct} or {inverse} to feed.symbols (its ticks give the rate), or name one in feed.symbols[{i}].conversion",
                            s.name
                        ),
                    );
                }
                found
            }
        };
        rates.push(rate.unwrap_or_default());
    }
    rates
}

/// The symbols and where their ticks come from.
fn feed(v: &mut Validator<'_>, raw: &RawConfig) -> FeedConfig {
    let f = &raw.feed;
    if f.symbols.is_empty() {
        v.fail("feed.symbols", "is empty; accepted: a list of {name, price} entries".into());
    }
    if f.symbols.len() > MAX_SYMBOLS {
        v.fail("feed.symbols", format!("has {} entries; accepted: at most {MAX_SYMBOLS}", f.symbols.len()));
    }
    let mut symbols = Vec::with_capacity(f.symbols.len());
    for (i, s) in f.symbols.iter().enumerate() {
        let key = format!("feed.symbols[{i}].name");
        if !valid_symbol(&s.name) {
            v.fail(&key, format!("{:?} is not a symbol; accepted: 1 to 32 characters of A-Z a-z 0-9 . _ - #", s.name));
        } else if symbols.iter().any(|x: &SymbolConfig| x.name == s.name) {
            v.fail(&key, format!("{:?} is listed twice; accepted: each symbol once", s.name));
        }
        let price = v.range_f64(
            &format!("feed.symbols[{i}].price"),
            s.price,
            f64::MIN_POSITIVE,
            1e12,
            "a price greater than 0",
        );
        let min_qty =
            v.range_f64(&format!("feed.symbols[{i}].min_qty"), s.min_qty, 1e-8, 1e9, "a quantity from 1e-8 to 1e9");
        let qty_step =
            v.range_f64(&format!("feed.symbols[{i}].qty_step"), s.qty_step, 1e-8, 1e9, "a quantity from 1e-8 to 1e9");
        let contract_size = v.range_f64(
            &format!("feed.symbols[{i}].contract_size"),
            s.contract_size,
            1e-8,
            1e12,
            "a size from 1e-8 to 1e12 (MT5's SYMBOL_TRADE_CONTRACT_SIZE)",
        );
        let commission_per_lot = v.range_f64(
            &format!("feed.symbols[{i}].commission_per_lot"),
            s.commission_per_lot,
            0.0,
            1e9,
            "0 or an amount greater than 0",
        );
        let currency =
            (!s.currency.is_empty()).then(|| currency(v, &format!("feed.symbols[{i}].currency"), &s.currency));
        let conversion = (!s.conversion.is_empty()).then(|| s.conversion.clone());
        let swap = |v: &mut Validator<'_>, key: &str, value: f64| {
            v.range_f64(
                &format!("feed.symbols[{i}].{key}"),
                value,
                -1e9,
                1e9,
                "an amount per lot and night (positive credited)",
            )
        };
        let (swap_long, swap_short) = (swap(v, "swap_long", s.swap_long), swap(v, "swap_short", s.swap_short));
        let commission_per_million = v.range_f64(
            &format!("feed.symbols[{i}].commission_per_million"),
            s.commission_per_million,
            0.0,
            1e9,
            "0 or an amount per million of notional",
        );
        symbols.push(SymbolConfig {
            name: s.name.clone(),
            price,
            min_qty,
            qty_step,
            contract_size,
            commission_per_lot,
            commission_per_million,
            swap_long,
            swap_short,
            currency,
            conversion,
        });
    }
    let source = match f.kind {
        FeedKind::Synthetic => FeedSource::Synthetic {
            seed: f.seed,
            tick_rate: v.range_f64("feed.tick_rate", f.tick_rate, 0.1, 1_000_000.0, "0.1 to 1000000 ticks per second"),
            volatility: v.range_f64(
                "feed.volatility",
                f.volatility,
                0.0,
                0.1,
                "0 to 0.1 (per-tick standard deviation of log returns)",
            ),
            spread_bps: v.range_f64("feed.spread_bps", f.spread_bps, 0.0, 10_000.0, "0 to 10000 basis points"),
        },
        FeedKind::Venue => FeedSource::Venue,
        FeedKind::Csv => {
            let paths = f.csv.path.to_vec();
            if paths.is_empty() || paths.iter().any(|p| p.trim().is_empty()) {
                v.fail(
                    "feed.csv.path",
                    "is empty; accepted: the path of a replay file (timestamp,symbol,bid,ask rows, or an MT5 tick or bar export), or a list of them".into(),
                );
            }
            let tz = crate::support::timefmt::parse_zone(&f.csv.timezone).unwrap_or_else(|| {
                v.fail(
                    "feed.csv.timezone",
                    format!("{:?} is not a time zone; accepted: an IANA name such as Europe/Athens, or an offset such as +02:00", f.csv.timezone),
                );
                jiff::tz::TimeZone::UTC
            });
            FeedSource::Csv {
                paths: paths.iter().map(PathBuf::from).collect(),
                speed: v.range_f64(
                    "feed.csv.speed",
                    f.csv.speed,
                    0.0,
                    1e6,
                    "0 (as fast as possible) or a positive replay speed factor",
                ),
                timezone: f.csv.timezone.clone(),
                tz,
                skip_bad_rows: f.csv.skip_bad_rows,
            }
        }
    };
    FeedConfig { symbols, source }
}

/// The EWMA-crossover model.
fn model(v: &mut Validator<'_>, raw: &RawConfig) -> ModelConfig {
    let m = &raw.model;
    if m.fast_period < 1 {
        v.fail("model.fast_period", format!("{} is out of range; accepted: at least 1", m.fast_period));
    }
    if m.slow_period <= m.fast_period {
        v.fail(
            "model.slow_period",
            format!("{} must be greater than model.fast_period ({})", m.slow_period, m.fast_period),
        );
    }
    ModelConfig {
        fast_period: m.fast_period,
        slow_period: m.slow_period,
        threshold_bps: v.range_f64("model.threshold_bps", m.threshold_bps, 0.0, 10_000.0, "0 to 10000 basis points"),
        order_qty: v.range_f64("model.order_qty", m.order_qty, f64::MIN_POSITIVE, 1e12, "a quantity greater than 0"),
        order_type: m.order_type,
        limit_offset_bps: v.range_f64(
            "model.limit_offset_bps",
            m.limit_offset_bps,
            0.0,
            10_000.0,
            "0 to 10000 basis points",
        ),
        sl_bps: v.range_f64("model.sl_bps", m.sl_bps, 0.0, 9_999.0, "0 (none) to 9999 basis points"),
        tp_bps: v.range_f64("model.tp_bps", m.tp_bps, 0.0, 1e6, "0 (none) to 1000000 basis points"),
    }
}

/// The Page-Hinkley drift detector.
fn drift(v: &mut Validator<'_>, raw: &RawConfig) -> DriftConfig {
    let d = &raw.drift;
    DriftConfig {
        enabled: d.enabled,
        delta: v.range_f64("drift.delta", d.delta, 0.0, 1e9, "a number at least 0"),
        threshold: v.range_f64("drift.threshold", d.threshold, f64::MIN_POSITIVE, 1e12, "a number greater than 0"),
        min_samples: d.min_samples,
        action: d.action,
        pause_for: v.duration("drift.pause_for", &d.pause_for, Duration::from_secs(1), Duration::from_secs(7 * 86400)),
    }
}

/// The signal queue: its capacity and how long a signal may wait for the venue.
fn queue(v: &mut Validator<'_>, raw: &RawConfig) -> (usize, Duration) {
    let cap = raw.queue.capacity;
    if cap == 0 || !cap.is_power_of_two() || cap > MAX_QUEUE_CAPACITY {
        v.fail(
            "queue.capacity",
            format!("{cap} is not accepted; accepted: a power of two from 1 to {MAX_QUEUE_CAPACITY} (e.g. 1024)"),
        );
    }

    let queue_max_wait =
        v.duration("queue.max_wait", &raw.queue.max_wait, Duration::from_millis(1), Duration::from_secs(3600));
    (cap, queue_max_wait)
}

/// The risk limits.
fn risk(v: &mut Validator<'_>, raw: &RawConfig) -> RiskConfig {
    let r = &raw.risk;
    let risk = RiskConfig {
        max_position: v.range_f64(
            "risk.max_position",
            r.max_position,
            f64::MIN_POSITIVE,
            1e12,
            "a quantity greater than 0",
        ),
        max_orders_per_second: r.max_orders_per_second,
        max_notional: v.range_f64(
            "risk.max_notional",
            r.max_notional,
            f64::MIN_POSITIVE,
            1e15,
            "an amount greater than 0",
        ),
        max_open_orders: v.range_usize("risk.max_open_orders", r.max_open_orders, 1, 65_536),
    };
    if r.max_orders_per_second == 0 {
        v.fail("risk.max_orders_per_second", "0 is out of range; accepted: 1 to 4294967295".into());
    }
    risk
}

/// The signal ingress and the duplicate-id memory (`id_retention`, `id_memory`).
fn ingress(v: &mut Validator<'_>, raw: &RawConfig) -> (Duration, usize, Option<IngressConfig>) {
    let id_retention = v.duration(
        "ingress.id_retention",
        &raw.ingress.id_retention,
        Duration::from_secs(60),
        Duration::from_secs(366 * 86_400),
    );
    let id_memory = v.range_usize("ingress.id_memory", raw.ingress.id_memory, 1024, 16 << 20);
    let ingress = if raw.ingress.enabled {
        let ri = &raw.ingress;
        let listen = v.addr("ingress.listen", &ri.listen);
        if !listen.ip().is_loopback() && !ri.allow_remote {
            v.fail(
                "ingress.listen",
                format!(
                    "{listen} is not a loopback address, and the ingress has no authentication: anyone who reaches \
                     it can trade; keep it on 127.0.0.1, or set ingress.allow_remote: true if a firewall admits only \
                     your strategies"
                ),
            );
        }
        Some(IngressConfig {
            listen,
            allow_remote: ri.allow_remote,
            max_connections: v.range_usize("ingress.max_connections", ri.max_connections, 1, MAX_INGRESS_CONNECTIONS),
            max_line_bytes: v.range_usize("ingress.max_line_bytes", ri.max_line_bytes, 256, 1 << 20),
            stall_timeout: v.duration(
                "ingress.stall_timeout",
                &ri.stall_timeout,
                Duration::from_millis(100),
                Duration::from_secs(3600),
            ),
        })
    } else {
        None
    };
    (id_retention, id_memory, ingress)
}

/// The metrics and control listener.
fn metrics(v: &mut Validator<'_>, raw: &RawConfig) -> MetricsConfig {
    let rmx = &raw.metrics;
    let timeout = |v: &mut Validator<'_>, key: &str, value: &str| {
        v.duration(key, value, Duration::from_millis(100), Duration::from_secs(3600))
    };
    MetricsConfig {
        listen: v.addr("metrics.listen", &rmx.listen),
        max_connections: v.range_usize("metrics.max_connections", rmx.max_connections, 1, 65_536),
        header_timeout: timeout(&mut *v, "metrics.header_timeout", &rmx.header_timeout),
        body_timeout: timeout(&mut *v, "metrics.body_timeout", &rmx.body_timeout),
        idle_timeout: timeout(&mut *v, "metrics.idle_timeout", &rmx.idle_timeout),
        write_timeout: timeout(&mut *v, "metrics.write_timeout", &rmx.write_timeout),
        web_config: Some(rmx.web_config.trim()).filter(|p| !p.is_empty()).map(PathBuf::from),
    }
}

/// Local logging.
fn logging(v: &mut Validator<'_>, raw: &RawConfig) -> LoggingConfig {
    let level = match raw.logging.level.to_ascii_lowercase().as_str() {
        "off" => log::LevelFilter::Off,
        "error" => log::LevelFilter::Error,
        "warn" => log::LevelFilter::Warn,
        "info" => log::LevelFilter::Info,
        "debug" => log::LevelFilter::Debug,
        "trace" => log::LevelFilter::Trace,
        other => {
            v.fail(
                "logging.level",
                format!("{other:?} is not a level; accepted: off, error, warn, info, debug, trace"),
            );
            log::LevelFilter::Info
        }
    };
    if raw.logging.file.trim().is_empty() {
        v.fail("logging.file", "is empty; accepted: a file path such as logs/mt5bot.log".into());
    }
    LoggingConfig {
        level,
        file: PathBuf::from(&raw.logging.file),
        stderr: raw.logging.stderr,
        channel_capacity: v.range_usize("logging.channel_capacity", raw.logging.channel_capacity, 16, 1 << 20),
    }
}

/// InfluxDB writes.
fn influx(v: &mut Validator<'_>, raw: &RawConfig) -> Option<InfluxConfig> {
    let i = &raw.influx;
    if i.enabled {
        let url_ok = i.url.is_empty() || i.url.starts_with("http://") || i.url.starts_with("https://");
        if !url_ok {
            v.fail(
                "influx.url",
                format!(
                    "{:?} is not accepted; accepted: empty (use INFLUXDB_URL) or an http:// or https:// URL",
                    crate::support::urls::redact(&i.url)
                ),
            );
        }
        if i.api == InfluxApi::V1 && i.database.trim().is_empty() {
            v.fail("influx.database", "is empty; accepted: the InfluxDB 1.x database to write to".into());
        }
        let buffer_points = v.range_usize("influx.buffer_points", i.buffer_points, 100, 10_000_000);
        let batch_points = v.range_usize("influx.batch_points", i.batch_points, 1, 100_000);
        Some(InfluxConfig {
            api: i.api,
            url: i.url.trim_end_matches('/').to_owned(),
            org: i.org.clone(),
            bucket: i.bucket.clone(),
            database: i.database.clone(),
            interval: v.duration("influx.interval", &i.interval, Duration::from_millis(100), Duration::from_secs(3600)),
            buffer_points,
            batch_points,
            timeout: v.duration("influx.timeout", &i.timeout, Duration::from_millis(100), Duration::from_secs(60)),
        })
    } else {
        None
    }
}

/// Log forwarding.
fn log_forward(v: &mut Validator<'_>, raw: &RawConfig) -> Option<LogForwardConfig> {
    let lf = &raw.log_forward;
    let log_forward = if lf.url.trim().is_empty() {
        None
    } else {
        let url = lf.url.trim().to_owned();
        let host_port = |rest: &str| -> Option<String> {
            let hp = rest.trim_end_matches('/');
            let (host, port) = hp.rsplit_once(':')?;
            (!host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) && !hp.contains('/')).then(|| hp.to_owned())
        };
        let sink = if url.starts_with("http://") || url.starts_with("https://") {
            Some(LogSink::Http { url: url.clone() })
        } else if url.starts_with("syslog") && crate::support::urls::split_userinfo(&url).1.is_some() {
            v.fail(
                "log_forward.url",
                "a syslog URL takes no user:password@ (syslog has no login); remove it, and keep it out of the \
                 config file"
                    .into(),
            );
            Some(LogSink::SyslogTcp { addr: String::new() })
        } else if let Some(rest) = url.strip_prefix("syslog+udp://") {
            host_port(rest).map(|addr| LogSink::SyslogUdp { addr })
        } else if let Some(rest) = url.strip_prefix("syslog+tcp://").or_else(|| url.strip_prefix("syslog://")) {
            host_port(rest).map(|addr| LogSink::SyslogTcp { addr })
        } else if let Some(rest) = url.strip_prefix("syslog+tls://") {
            host_port(rest).map(|addr| LogSink::SyslogTls { addr })
        } else {
            None
        };
        let sink = sink.unwrap_or_else(|| {
            v.fail(
                "log_forward.url",
                format!("{:?} is not accepted; accepted: http://HOST[:PORT]/PATH, https://..., syslog://HOST:PORT (TCP), syslog+tls://HOST:PORT (TLS), syslog+udp://HOST:PORT", crate::support::urls::redact(&url)),
            );
            LogSink::Http { url: url.clone() }
        });
        let facility = FACILITIES.iter().find(|(n, _)| *n == lf.facility).map(|(_, c)| *c).unwrap_or_else(|| {
            let names: Vec<&str> = FACILITIES.iter().map(|(n, _)| *n).collect();
            v.fail(
                "log_forward.facility",
                format!("{:?} is not a syslog facility; accepted: {}", lf.facility, names.join(", ")),
            );
            1
        });
        for (name, var) in &lf.header_env {
            if var.trim().is_empty() || name.trim().is_empty() {
                v.fail(
                    "log_forward.header_env",
                    "maps a header name to the environment variable holding its value; neither may be empty".into(),
                );
            }
        }
        Some(LogForwardConfig {
            url,
            sink,
            format: lf.format,
            headers: lf.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            header_env: lf.header_env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            buffer_records: v.range_usize("log_forward.buffer_records", lf.buffer_records, 10, 10_000_000),
            batch_records: v.range_usize("log_forward.batch_records", lf.batch_records, 1, 1000),
            spool_dir: PathBuf::from(&lf.spool_dir),
            spool_max_bytes: lf.spool_max_bytes,
            timeout: v.duration(
                "log_forward.timeout",
                &lf.timeout,
                Duration::from_millis(100),
                Duration::from_secs(60),
            ),
            gzip: lf.gzip,
            facility,
            app_name: lf.app_name.clone(),
            elasticsearch_index: lf.elasticsearch_index.clone(),
            tls_ca_file: (!lf.tls_ca_file.trim().is_empty()).then(|| PathBuf::from(lf.tls_ca_file.trim())),
        })
    };
    if lf.spool_max_bytes < 1 << 16 {
        v.fail("log_forward.spool_max_bytes", format!("{} is too small; accepted: at least 65536", lf.spool_max_bytes));
    }
    if lf.app_name.is_empty() || lf.app_name.len() > 48 || !lf.app_name.bytes().all(|b| b.is_ascii_graphic()) {
        v.fail(
            "log_forward.app_name",
            format!(
                "{:?} is not accepted; accepted: 1 to 48 printable ASCII characters (RFC 5424 APP-NAME)",
                lf.app_name
            ),
        );
    }
    log_forward
}

/// Checkpoints.
fn checkpoint(v: &mut Validator<'_>, raw: &RawConfig) -> CheckpointConfig {
    if raw.checkpoint.path.trim().is_empty() {
        v.fail("checkpoint.path", "is empty; accepted: a file path such as state/checkpoint.bin".into());
    }
    CheckpointConfig {
        path: PathBuf::from(&raw.checkpoint.path),
        interval: v.duration(
            "checkpoint.interval",
            &raw.checkpoint.interval,
            Duration::from_millis(100),
            Duration::from_secs(86400),
        ),
    }
}

/// The engine loop.
fn engine(v: &mut Validator<'_>, raw: &RawConfig) -> EngineConfig {
    let e = &raw.engine;
    EngineConfig {
        ready_deadline: v.duration(
            "engine.ready_deadline",
            &e.ready_deadline,
            Duration::from_millis(100),
            Duration::from_secs(3600),
        ),
        shutdown_grace: v.duration(
            "engine.shutdown_grace",
            &e.shutdown_grace,
            Duration::ZERO,
            Duration::from_secs(600),
        ),
        status_interval: v.duration(
            "engine.status_interval",
            &e.status_interval,
            Duration::from_secs(1),
            Duration::from_secs(86400),
        ),
    }
}

/// Symbols are short and plain, so they fit the engine's fixed-size ids and every wire format.
pub fn valid_symbol(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'#'))
}

/// `venue.mt5.tls`: none while `cert_file` and `key_file` are empty, both or neither.
fn mt5_tls(v: &mut Validator<'_>, t: &super::raw::RawMt5Tls) -> Option<crate::support::tls::TlsServerConfig> {
    use crate::support::tls::{ClientAuth, TlsServerConfig, TlsVersion};
    let (cert, key, ca) = (t.cert_file.trim(), t.key_file.trim(), t.client_ca_file.trim());
    match (cert.is_empty(), key.is_empty()) {
        (true, true) => {
            if !ca.is_empty() {
                v.fail("venue.mt5.tls.client_ca_file", "is set without cert_file and key_file; set all or none".into());
            }
            None
        }
        (false, false) => Some(TlsServerConfig {
            cert_file: PathBuf::from(cert),
            key_file: PathBuf::from(key),
            client_auth: if ca.is_empty() { ClientAuth::None } else { ClientAuth::RequireAndVerify },
            client_ca_file: Some(ca).filter(|c| !c.is_empty()).map(PathBuf::from),
            min_version: TlsVersion::Tls12,
            max_version: TlsVersion::Tls13,
        }),
        (true, false) => {
            v.fail("venue.mt5.tls.cert_file", "is empty while key_file is set; accepted: both (TLS) or neither".into());
            None
        }
        (false, true) => {
            v.fail("venue.mt5.tls.key_file", "is empty while cert_file is set; accepted: both (TLS) or neither".into());
            None
        }
    }
}
