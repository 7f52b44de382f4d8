//! Market hours: signals for a closed market are refused with `market_closed`, `at_close` acts
//! `close_before` the close, `open_after` skips the first minute, and ticks still mark the books.
//! On history (`support::replay`, the fx week's Friday close and Sunday open in New York time), and
//! on a running daemon over the ingress, `/metrics` and `/api/v1/status`.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use mt5bot::domain::types::{DropReason, Side};
use support::replay::Script;
use support::*;

/// Rows every 10 s from `start` for `secs`, the bid at 1.1000 then 1.1050 from `jump` on.
fn rows(secs: u64, jump: u64) -> Vec<(u64, f64)> {
    (0..=secs).step_by(10).map(|s| (s, if s < jump { 1.1000 } else { 1.1050 })).collect()
}

fn fx_like(rules: &str) -> String {
    format!("sessions:\n  default: fx_rules\n  calendars:\n    fx_rules:\n      like: fx\n{rules}")
}

fn dropped_closed(s: &Script) -> u64 {
    s.metrics.signals_dropped.with_label_values(&["market_closed"]).get()
}

#[test]
fn at_close_flatten_goes_flat_before_the_weekend_and_the_closed_market_refuses_signals() {
    // Friday 2026-01-16, 16:40 New York (21:40 UTC); fx closes at 17:00 (22:00 UTC).
    let mut s = Script::new(
        "hours-flatten",
        "2026-01-16T21:40:00Z",
        &rows(2400, 1800),
        &fx_like("      close_before: 10m\n      at_close: flatten\n"),
        0.0,
    );
    s.to(60).market(Side::Buy, 1.0).expect("open before the close");
    s.to(590);
    assert_eq!(s.qty(), 1.0, "16:49:50: still open");
    assert_eq!(s.metrics.market_open.with_label_values(&["EURUSD"]).get(), 1);
    s.to(600);
    assert_eq!(s.qty(), 0.0, "16:50: flattened ten minutes before the close");
    assert_eq!(s.market(Side::Buy, 1.0), Err(DropReason::MarketClosed), "closing: nothing new opens");
    assert_eq!(s.market(Side::Sell, 1.0), Err(DropReason::MarketClosed), "flat: a sell opens a short");
    let market = |s: &Script| s.replay.core().status().markets[0].clone();
    assert_eq!((market(&s).phase, market(&s).open), ("closing", true));
    s.to(1200);
    let m = market(&s);
    assert_eq!((m.phase, m.open, m.calendar.as_str()), ("closed", false, "fx_rules"));
    assert_eq!(m.next_change.as_deref(), Some("2026-01-18T22:00:00.000000Z"), "Sunday 17:00 New York");
    assert_eq!(s.metrics.market_open.with_label_values(&["EURUSD"]).get(), 0);
    let left = s.metrics.market_next_change.with_label_values(&["EURUSD"]).get();
    assert!((left - 48.0 * 3600.0).abs() < 11.0, "two days to the open: {left} s");
    assert_eq!(s.market(Side::Buy, 1.0), Err(DropReason::MarketClosed));
    assert_eq!(dropped_closed(&s), 3);
    // Ticks still mark the books while closed.
    s.to(1900);
    assert_eq!(s.replay.core().executor().quote(0).map(|q| q.0), Some(1.1050));
    assert_eq!(s.replay.core().executor().trades(), 2, "one open, one flatten, nothing after");
}

#[test]
fn at_close_reducing_lets_only_an_order_toward_flat_through() {
    let mut s = Script::new(
        "hours-reducing",
        "2026-01-16T21:40:00Z",
        &rows(1300, 9999),
        &fx_like("      close_before: 10m\n      at_close: reducing\n"),
        0.0,
    );
    s.to(60).market(Side::Buy, 2.0).expect("open before the close");
    s.to(700);
    assert_eq!(s.qty(), 2.0, "reducing keeps the position");
    assert_eq!(s.market(Side::Buy, 1.0), Err(DropReason::MarketClosed), "adding is refused");
    assert_eq!(s.market(Side::Sell, 3.0), Err(DropReason::MarketClosed), "a flip is refused");
    s.market(Side::Sell, 1.0).expect("toward flat goes through");
    assert_eq!(s.qty(), 1.0);
    s.to(1210);
    assert_eq!(s.market(Side::Sell, 1.0), Err(DropReason::MarketClosed), "closed: even reducing is refused");
    assert_eq!(s.qty(), 1.0);
}

#[test]
fn open_after_skips_the_first_minute_of_the_week() {
    // Sunday 2026-01-18, 16:59 New York (21:59 UTC); fx opens at 17:00.
    let mut s =
        Script::new("hours-open", "2026-01-18T21:59:00Z", &rows(300, 9999), &fx_like("      open_after: 1m\n"), 0.0);
    assert_eq!(s.to(30).market(Side::Buy, 1.0), Err(DropReason::MarketClosed), "16:59:30: closed");
    assert_eq!(s.to(90).market(Side::Buy, 1.0), Err(DropReason::MarketClosed), "17:00:30: opening");
    assert_eq!(s.replay.core().status().markets[0].phase, "opening");
    assert_eq!(s.metrics.market_open.with_label_values(&["EURUSD"]).get(), 0, "not open to orders yet");
    s.to(130).market(Side::Buy, 1.0).expect("17:01:10: open");
    assert_eq!(s.qty(), 1.0);
}

#[test]
fn a_daemon_refuses_a_closed_markets_signals_on_the_ingress_and_shows_its_hours() {
    // A calendar closed yesterday, today and tomorrow (UTC) for EURUSD; GBPUSD trades always.
    let dir = TempDir::new("hours-daemon");
    let today = mt5bot::support::timefmt::unix_nanos() / 1_000_000_000 / 86_400;
    let day = |d: i128| {
        let ts = mt5bot::support::timefmt::rfc3339_micros(d * 86_400 * 1_000_000_000);
        ts[..10].to_owned()
    };
    let closed = format!("['{}', '{}', '{}']", day(today - 1), day(today), day(today + 1));
    let ingress = format!("127.0.0.1:{}", free_port());
    let (cfg, addr) = config_with(
        &dir,
        &format!(
            "model:\n  threshold_bps: 10000\ningress:\n  enabled: true\n  listen: {ingress}\n\
             sessions:\n  symbols:\n    EURUSD: desk\n  calendars:\n    desk:\n      tz: UTC\n\
             {}      closed: {closed}\n",
            ["mon", "tue", "wed", "thu", "fri", "sat", "sun"].map(|d| format!("      {d}: ['00:00-24:00']\n")).concat()
        ),
    );
    let key = "hours-key-0123456789abcdef";
    let mut d = Daemon::start(&dir, &cfg, &addr, &[("API_KEY", key)]);
    d.wait_metrics(Duration::from_secs(10));
    wait_for("ticks", Duration::from_secs(10), || (sample(&d.metrics(), "ticks_total")? > 20.0).then_some(()));
    let send = |id: &str, symbol: &str| -> serde_json::Value {
        let mut c = TcpStream::connect(&ingress).expect("ingress");
        c.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        let line =
            format!("{{\"id\":\"{id}\",\"symbol\":\"{symbol}\",\"side\":\"buy\",\"qty\":1,\"type\":\"market\"}}\n");
        c.write_all(line.as_bytes()).expect("send");
        let mut answer = String::new();
        BufReader::new(c).read_line(&mut answer).expect("answer");
        serde_json::from_str(&answer).expect("JSON")
    };
    let refused = send("closed-1", "EURUSD");
    assert_eq!(refused["reason"], "market_closed", "{refused}");
    assert_eq!(send("open-1", "GBPUSD")["status"], "queued", "GBPUSD trades always");
    let m = d.metrics();
    assert_eq!(sample(&m, "market_open{symbol=\"EURUSD\"}"), Some(0.0), "{m}");
    assert_eq!(sample(&m, "market_open{symbol=\"GBPUSD\"}"), Some(1.0), "{m}");
    assert_eq!(sample(&m, "signals_dropped_total{reason=\"market_closed\"}"), Some(1.0), "{m}");
    let left = sample(&m, "market_next_change_seconds{symbol=\"EURUSD\"}").expect("next change");
    assert!(left > 86_400.0 && left <= 2.0 * 86_400.0, "reopens the day after tomorrow: {left}");
    assert_eq!(sample(&m, "market_next_change_seconds{symbol=\"GBPUSD\"}"), None, "always has no next change");
    // Set once a second, from the ticks of the second before.
    let last = wait_for("last_tick_timestamp_seconds", Duration::from_secs(5), || {
        sample(&d.metrics(), "last_tick_timestamp_seconds{symbol=\"EURUSD\"}").filter(|&t| t > 0.0)
    });
    let now_s = mt5bot::support::timefmt::unix_nanos() as f64 / 1e9;
    assert!((now_s - last).abs() < 5.0, "ticks still arrive while closed: {last} vs {now_s}");
    let auth = format!("Bearer {key}");
    let r =
        http_with("GET", &d.metrics_addr, "/api/v1/status", &[("Authorization", auth.as_str())], b"").expect("status");
    let status: serde_json::Value = serde_json::from_str(&r.body).expect("JSON");
    let eur = &status["markets"][0];
    assert_eq!((eur["symbol"].as_str(), eur["phase"].as_str()), (Some("EURUSD"), Some("closed")), "{status}");
    assert_eq!(eur["next_change"].as_str().map(|t| &t[..10]), Some(day(today + 2).as_str()), "{status}");
    assert_eq!(status["markets"][1]["next_change"], serde_json::Value::Null);
    d.signal("TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(10)).code(), Some(0));
    let log = d.stderr();
    assert!(log.contains("EURUSD: market closed (calendar desk)"), "{log}");
}
