//! Stop-loss and take-profit on the running daemon (paper venue, synthetic feed): levels checked
//! at ingress, shown in status, kept across a SIGKILL by the order journal alone, and a crossed
//! level closing its position with exactly one order.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

const KEY: &str = "stops-test-key-0123456789abcdef0123456789abcdef";

fn metric(d: &Daemon, name: &str) -> f64 {
    sample(&d.metrics(), name).unwrap_or_else(|| panic!("{name} is not on /metrics"))
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// One ingress line and its answer.
fn send(ingress: &str, line: &str) -> Value {
    let mut s = TcpStream::connect(ingress).expect("ingress");
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    s.write_all(format!("{line}\n").as_bytes()).expect("send");
    let mut answer = String::new();
    BufReader::new(s).read_line(&mut answer).expect("answer");
    serde_json::from_str(&answer).unwrap_or_else(|e| panic!("not JSON ({e}): {answer:?}"))
}

fn status(d: &Daemon) -> Value {
    let auth = format!("Bearer {KEY}");
    let r =
        http_with("GET", &d.metrics_addr, "/api/v1/status", &[("Authorization", auth.as_str())], b"").expect("status");
    assert_eq!(r.status, 200, "{}", r.body);
    serde_json::from_str(&r.body).expect("status JSON")
}

fn position<'a>(s: &'a Value, symbol: &str) -> &'a Value {
    s["positions"].as_array().and_then(|p| p.iter().find(|p| p["symbol"] == symbol)).expect("position")
}

fn start(dir: &TempDir) -> (Daemon, String, std::path::PathBuf, Vec<(&'static str, String)>) {
    let ingress = format!("127.0.0.1:{}", free_port());
    // Checkpoints an hour apart: across the SIGKILL only the order journal keeps the levels.
    let (cfg, addr) = config_with(
        dir,
        &format!(
            "model:\n  threshold_bps: 10000\nrisk:\n  max_position: 5\n  max_orders_per_second: 1000\n\
             ingress:\n  enabled: true\n  listen: {ingress}\ncheckpoint:\n  interval: 1h\n"
        ),
    );
    let env = vec![("API_KEY", KEY.to_owned()), ("CHECKPOINT_AES_KEY", mt5bot::support::encoding::base64(&[5u8; 32]))];
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut d = Daemon::start(dir, &cfg, &addr, &pairs);
    d.wait_metrics(Duration::from_secs(10));
    wait_until("quotes", Duration::from_secs(10), || metric(&d, "ticks_total") > 10.0);
    (d, ingress, cfg, env)
}

#[test]
fn bad_levels_are_refused_with_the_field_named_and_good_ones_queued() {
    let dir = TempDir::new("stops-bad");
    let (mut d, ingress, _, _) = start(&dir);
    let base = r#""symbol":"EURUSD","qty":1"#;
    for (line, want) in [
        (format!(r#"{{"id":"b1",{base},"side":"buy","type":"market","sl":1.0,"sl_bps":10}}"#), "not both"),
        (format!(r#"{{"id":"b2",{base},"side":"buy","type":"limit","price":1.0,"sl":1.1}}"#), "sl: 1.1 is not below 1"),
        (
            format!(r#"{{"id":"b3",{base},"side":"sell","type":"limit","price":1.0,"tp":1.1}}"#),
            "tp: 1.1 is not below 1",
        ),
        (format!(r#"{{"id":"b4",{base},"side":"buy","type":"market","tp":-1}}"#), "tp: -1 is not accepted"),
        (format!(r#"{{"id":"b5",{base},"side":"buy","type":"market","sl_bps":10000}}"#), "sl_bps: 10000"),
        // A market buy closes at the bid: a stop-loss far above it is on the wrong side.
        (format!(r#"{{"id":"b6",{base},"side":"buy","type":"market","sl":50}}"#), "sl: 50 is not below"),
        (format!(r#"{{"id":"b7",{base},"side":"buy","type":"market","sl":"x"}}"#), "invalid type"),
    ] {
        let a = send(&ingress, &line);
        assert_eq!(a["status"], "error", "{line}: {a}");
        assert!(a["error"].as_str().is_some_and(|e| e.contains(want)), "{line}: want {want:?}, got {a}");
    }
    let ok = format!(r#"{{"id":"g1",{base},"side":"sell","type":"market","sl":50,"tp_bps":30}}"#);
    assert_eq!(send(&ingress, &ok)["status"], "queued");
    assert_eq!(metric(&d, "ingress_errors_total{reason=\"bad_field\"}"), 7.0);
    d.signal("TERM");
    assert!(d.wait_exit(Duration::from_secs(10)).success());
}

#[test]
fn levels_survive_a_sigkill_and_a_crossed_level_closes_its_position_with_one_order() {
    let dir = TempDir::new("stops-kill");
    let (mut d, ingress, cfg, env) = start(&dir);
    // Far levels on EURUSD: they hold for the whole test.
    let far = r#"{"id":"far-1","symbol":"EURUSD","side":"buy","qty":1,"type":"market","sl_bps":5000,"tp_bps":5000}"#;
    assert_eq!(send(&ingress, far)["status"], "queued");
    wait_until("the position", Duration::from_secs(10), || metric(&d, "position{symbol=\"EURUSD\"}") == 1.0);
    let before = status(&d);
    let p = position(&before, "EURUSD");
    let (sl, tp) = (p["sl"].as_f64().expect("sl"), p["tp"].as_f64().expect("tp"));
    assert!(sl > 0.5 && sl < 0.55 && tp > 1.6 && tp < 1.65, "50% either side of about 1.085: {p}");
    assert_eq!(p["stops_held_by"], "mt5bot", "{p}");
    // Let the journal sync (the answer `queued` waited for its entry; the fill's is a turn later).
    std::thread::sleep(Duration::from_millis(200));
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    d.kill_and_restart(&dir, &cfg, &pairs);
    let after = status(&d);
    let p = position(&after, "EURUSD");
    assert_eq!((p["qty"].as_f64(), p["sl"].as_f64(), p["tp"].as_f64()), (Some(1.0), Some(sl), Some(tp)), "{after}");

    // Near levels on GBPUSD: the random walk (about 20 bps a second) crosses one within seconds.
    let near = r#"{"id":"near-1","symbol":"GBPUSD","side":"buy","qty":2,"type":"market","sl_bps":15,"tp_bps":15}"#;
    assert_eq!(send(&ingress, near)["status"], "queued");
    wait_until("the protective exit to close GBPUSD", Duration::from_secs(30), || {
        let m = d.metrics();
        sample(&m, "protective_exits_total{kind=\"sl\"}").unwrap_or(0.0)
            + sample(&m, "protective_exits_total{kind=\"tp\"}").unwrap_or(0.0)
            == 1.0
            && sample(&m, "position{symbol=\"GBPUSD\"}") == Some(0.0)
    });
    // Ticks go on crossing the level: still one exit, and the position stays flat.
    std::thread::sleep(Duration::from_millis(500));
    let m = d.metrics();
    assert_eq!(sample(&m, "signals_received_total{source=\"protection\"}"), Some(1.0), "one exit");
    assert_eq!(sample(&m, "orders_sent_total"), Some(2.0), "the buy and its exit");
    assert_eq!(sample(&m, "position{symbol=\"GBPUSD\"}"), Some(0.0));
    let s = status(&d);
    assert!(position(&s, "GBPUSD").get("sl").is_none(), "a flat position has no levels: {s}");
    assert_eq!(position(&s, "EURUSD")["sl"].as_f64(), Some(sl), "the far levels stay");
    wait_until("the exit's log line", Duration::from_secs(5), || d.log_file().contains("crossed (mark"));
    d.signal("TERM");
    assert!(d.wait_exit(Duration::from_secs(10)).success());
}
