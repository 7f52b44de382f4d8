//! The control API over real HTTP against the daemon, and `mt5bot ctl` against it: each endpoint
//! with a good key, no key and a wrong key; wrong methods, huge bodies, rate limiting; pause,
//! flatten and reload doing what they say.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

const KEY: &str = "control-api-test-key-0123456789abcdef0123456789";

fn start(dir: &TempDir, extra: &str) -> (Daemon, String, std::path::PathBuf) {
    let ingress = format!("127.0.0.1:{}", free_port());
    let (cfg, addr) = config_with(
        dir,
        &format!(
            "risk:\n  max_position: 5\n  max_orders_per_second: 1000\ningress:\n  enabled: true\n  listen: {ingress}\n{extra}"
        ),
    );
    let mut d = Daemon::start(dir, &cfg, &addr, &[("API_KEY", KEY)]);
    d.wait_metrics(Duration::from_secs(10));
    (d, ingress, cfg)
}

fn call(d: &Daemon, method: &str, path: &str, key: Option<&str>) -> (u16, Value) {
    let auth = key.map(|k| format!("Bearer {k}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    let r = http_with(method, &d.metrics_addr, path, &headers, b"").expect("HTTP");
    let body = serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", r.body));
    (r.status, body)
}

fn metric(d: &Daemon, name: &str) -> f64 {
    let text = d.metrics();
    sample(&text, name).unwrap_or_else(|| panic!("{name} is not on /metrics"))
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < Duration::from_secs(10), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Sends one ingress signal; returns the daemon's answer.
fn signal(ingress: &str, id: &str, side: &str, qty: f64) -> Value {
    let mut s = TcpStream::connect(ingress).expect("ingress");
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    s.write_all(
        format!("{{\"id\":\"{id}\",\"symbol\":\"EURUSD\",\"side\":\"{side}\",\"qty\":{qty},\"type\":\"market\"}}\n")
            .as_bytes(),
    )
    .expect("send");
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).expect("answer");
    serde_json::from_str(&line).expect("JSON")
}

#[test]
fn every_endpoint_needs_the_key_and_answers_with_it() {
    let dir = TempDir::new("api-auth");
    let (d, _ingress, _) = start(&dir, "");
    let endpoints = [
        ("GET", "status"),
        ("GET", "config"),
        ("POST", "pause"),
        ("POST", "resume"),
        ("POST", "flatten"),
        ("POST", "reload"),
    ];
    let mut failures = 0.0;
    for (method, name) in endpoints {
        let path = format!("/api/v1/{name}");
        let (code, body) = call(&d, method, &path, None);
        assert_eq!(code, 401, "{name} without a key: {body}");
        let (code, _) = call(&d, method, &path, Some("wrong-key"));
        assert_eq!(code, 401, "{name} with a wrong key");
        failures += 2.0;
        let (code, body) = call(&d, method, &path, Some(KEY));
        assert_eq!(code, 200, "{name} with the key: {body}");
    }
    assert_eq!(metric(&d, "api_auth_failures_total"), failures);
    // The 401 says how to authenticate.
    let r = http_with("GET", &d.metrics_addr, "/api/v1/status", &[], b"").expect("HTTP");
    assert!(r.header("WWW-Authenticate").is_some_and(|v| v.starts_with("Bearer")));

    // What status and config show.
    let (_, s) = call(&d, "GET", "/api/v1/status", Some(KEY));
    assert_eq!(s["venue"]["name"], "paper");
    assert_eq!(s["positions"].as_array().map(Vec::len), Some(2));
    assert!(s["queue"]["capacity"].as_u64().is_some());
    assert!(s["drift"]["alarms"].as_u64().is_some());
    let (_, c) = call(&d, "GET", "/api/v1/config", Some(KEY));
    assert_eq!(c["risk"]["max_position"], 5.0);
    assert_eq!(c["secrets_set"], serde_json::json!(["API_KEY"]));
    assert!(!c.to_string().contains(KEY), "the config answer never holds a secret");

    // Wrong method: 405 with Allow. Unknown endpoint: 404. Huge body: 413.
    let r = http_with("POST", &d.metrics_addr, "/api/v1/status", &[("Authorization", &format!("Bearer {KEY}"))], b"")
        .expect("HTTP");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("Allow"), Some("GET"));
    let (code, _) = call(&d, "GET", "/api/v1/pause", Some(KEY));
    assert_eq!(code, 405);
    let (code, _) = call(&d, "GET", "/api/v1/teleport", Some(KEY));
    assert_eq!(code, 404);
    let big = vec![b'x'; 100 * 1024];
    let r = http_with("POST", &d.metrics_addr, "/api/v1/pause", &[("Authorization", &format!("Bearer {KEY}"))], &big)
        .expect("HTTP");
    assert_eq!(r.status, 413);
    assert!(metric(&d, "http_requests_total{code=\"413\",handler=\"api\"}") >= 1.0);

    // The key never reaches the log.
    assert!(!d.log_file().contains(KEY));
    assert!(!d.stderr().contains(KEY));
}

#[test]
fn repeated_failures_are_slowed_and_the_right_key_never_waits() {
    let dir = TempDir::new("api-limit");
    let (d, _ingress, _) = start(&dir, "");
    for _ in 0..10 {
        assert_eq!(call(&d, "GET", "/api/v1/status", Some("guess")).0, 401);
    }
    let r =
        http_with("GET", &d.metrics_addr, "/api/v1/status", &[("Authorization", "Bearer guess")], b"").expect("HTTP");
    assert_eq!(r.status, 429, "failures past the limit are slowed");
    assert!(r.header("Retry-After").and_then(|v| v.parse::<u64>().ok()).is_some_and(|s| (1..=60).contains(&s)));
    // Every local process shares 127.0.0.1: the failures of one must not lock out the operator.
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let r =
            http_with("GET", &d.metrics_addr, "/api/v1/status", &[("Authorization", &format!("{scheme} {KEY}"))], b"")
                .expect("HTTP");
        assert_eq!(r.status, 200, "the right key ({scheme}) is served at once after others' failures");
    }
    let (code, body) = call(&d, "POST", "/api/v1/flatten", Some(KEY));
    assert_eq!(code, 200, "flatten is never locked out: {body}");
    assert_eq!(metric(&d, "api_auth_failures_total"), 11.0);
    // /metrics is not affected.
    assert!(metric(&d, "ticks_total") >= 0.0);
}

#[test]
fn pause_stops_new_orders_while_ticks_flow_and_resume_restarts_them() {
    let dir = TempDir::new("api-pause");
    let (d, ingress, _) = start(&dir, "");
    wait_until("the model to trade", || metric(&d, "orders_sent_total") >= 1.0);
    let (code, body) = call(&d, "POST", "/api/v1/pause", Some(KEY));
    assert_eq!((code, &body["paused"]), (200, &Value::Bool(true)));
    assert_eq!(metric(&d, "trading_paused"), 1.0);
    let sent = metric(&d, "orders_sent_total");
    let ticks = metric(&d, "ticks_total");
    // `pause` is `halt`: the refusal says so.
    assert_eq!(signal(&ingress, "p1", "buy", 1.0)["reason"], "halted");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(metric(&d, "orders_sent_total"), sent, "no order while paused");
    assert!(metric(&d, "ticks_total") > ticks + 500.0, "ticks still flow");
    let (_, s) = call(&d, "GET", "/api/v1/status", Some(KEY));
    assert_eq!(s["paused"]["operator"], true);
    assert_eq!((s["trading"]["state"].as_str(), s["trading"]["by"].as_str()), (Some("halted"), Some("operator")));

    let (code, _) = call(&d, "POST", "/api/v1/resume", Some(KEY));
    assert_eq!(code, 200);
    assert_eq!(metric(&d, "trading_paused"), 0.0);
    assert_eq!(signal(&ingress, "p2", "buy", 1.0)["status"], "queued");
    wait_until("orders again", || metric(&d, "orders_sent_total") > sent);
}

fn post(d: &Daemon, path: &str, body: &str) -> (u16, Value) {
    let auth = format!("Bearer {KEY}");
    let r = http_with("POST", &d.metrics_addr, path, &[("Authorization", &auth)], body.as_bytes()).expect("HTTP");
    (r.status, serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", r.body)))
}

/// Halt, reduce and resume with a reason: reducing lets a closing order through and refuses one
/// that opens; the state is on /metrics and in status; a SIGKILL right after a halt and a restart
/// leave it halted (it is journaled before the answer), and only `resume` clears it.
#[test]
fn trading_states_refuse_what_they_should_and_a_sigkill_does_not_clear_a_halt() {
    let dir = TempDir::new("api-states");
    let ingress = format!("127.0.0.1:{}", free_port());
    let (cfg, addr) = config_with(
        &dir,
        &format!(
            "model:\n  threshold_bps: 10000\nrisk:\n  max_position: 5\n  max_orders_per_second: 1000\n\
             ingress:\n  enabled: true\n  listen: {ingress}\ncheckpoint:\n  interval: 1h\n"
        ),
    );
    let aes = mt5bot::support::encoding::base64(&[3u8; 32]);
    let env = [("API_KEY", KEY), ("CHECKPOINT_AES_KEY", aes.as_str())];
    let mut d = Daemon::start(&dir, &cfg, &addr, &env);
    d.wait_metrics(Duration::from_secs(10));
    wait_until("quotes", || metric(&d, "ticks_total") > 10.0);
    assert_eq!(metric(&d, "trading_state{state=\"active\"}"), 1.0);
    assert_eq!(signal(&ingress, "open-1", "buy", 2.0)["status"], "queued");
    wait_until("the position", || metric(&d, "position{symbol=\"EURUSD\"}") == 2.0);

    let (code, body) = post(&d, "/api/v1/reduce", r#"{"reason": "news at 14:30"}"#);
    assert_eq!(
        (code, body["state"].as_str(), body["changed"].as_bool()),
        (200, Some("reducing"), Some(true)),
        "{body}"
    );
    assert_eq!(signal(&ingress, "open-2", "buy", 1.0)["reason"], "reducing", "adding to the long is refused");
    assert_eq!(signal(&ingress, "flip-1", "sell", 3.0)["reason"], "reducing", "crossing zero is refused");
    assert_eq!(signal(&ingress, "close-1", "sell", 1.0)["status"], "queued", "toward zero goes through");
    wait_until("the reduced position", || metric(&d, "position{symbol=\"EURUSD\"}") == 1.0);
    let (_, s) = call(&d, "GET", "/api/v1/status", Some(KEY));
    assert_eq!(s["trading"]["reason"], "news at 14:30", "{s}");

    let (code, body) = post(&d, "/api/v1/halt", r#"{"reason": "broker incident"}"#);
    assert_eq!((code, body["state"].as_str()), (200, Some("halted")), "{body}");
    // Killed at once after the answer: the halt was durable before it was answered.
    d.kill_and_restart(&dir, &cfg, &env);
    d.wait_metrics(Duration::from_secs(10));
    wait_until("quotes again", || metric(&d, "ticks_total") > 10.0);
    assert_eq!(metric(&d, "trading_state{state=\"halted\"}"), 1.0, "a restart does not clear a halt");
    assert_eq!(metric(&d, "trading_state{state=\"active\"}"), 0.0);
    assert_eq!(signal(&ingress, "after-kill", "sell", 1.0)["reason"], "halted");
    let (_, s) = call(&d, "GET", "/api/v1/status", Some(KEY));
    assert_eq!(
        (s["trading"]["state"].as_str(), s["trading"]["by"].as_str()),
        (Some("halted"), Some("operator")),
        "{s}"
    );
    assert!(d.log_file().contains("restored, not cleared by the restart"), "the start says so");

    let (code, body) = post(&d, "/api/v1/resume", "");
    assert_eq!((code, body["state"].as_str()), (200, Some("active")), "{body}");
    assert_eq!(signal(&ingress, "again-1", "sell", 1.0)["status"], "queued");
    wait_until("flat", || metric(&d, "position{symbol=\"EURUSD\"}") == 0.0);
    assert_eq!(metric(&d, "trading_state_changes_total{reason=\"operator\"}"), 1.0, "resume, counted by this process");

    // A bad body is refused with a reason and changes nothing.
    let (code, body) = post(&d, "/api/v1/halt", "{\"why\": 1}");
    assert_eq!(code, 400, "{body}");
    let (code, body) = post(&d, "/api/v1/halt", &format!("{{\"reason\": \"{}\"}}", "x".repeat(300)));
    assert_eq!(code, 400, "{body}");
    assert_eq!(metric(&d, "trading_state{state=\"active\"}"), 1.0);
    d.signal("TERM");
    assert!(d.wait_exit(Duration::from_secs(10)).success());
}

/// A breaker trips on the real daemon: the open loss of a fresh position (marked at the bid) passes
/// a tiny max_position_loss; the state is halted by the breaker, counted, shown; a SIGKILL and a
/// restart keep it halted with the breaker's name; `resume` clears it.
#[test]
fn a_tripped_breaker_halts_the_daemon_across_a_sigkill_until_resume() {
    let dir = TempDir::new("api-breaker");
    let ingress = format!("127.0.0.1:{}", free_port());
    let (cfg, addr) = config_with(
        &dir,
        &format!(
            "model:\n  threshold_bps: 10000\nrisk:\n  max_position: 5\n  max_orders_per_second: 1000\n\
             ingress:\n  enabled: true\n  listen: {ingress}\ncheckpoint:\n  interval: 1h\n\
             protection:\n  starting_balance: 1000\n  max_position_loss:\n    amount: 0.00001\n"
        ),
    );
    let aes = mt5bot::support::encoding::base64(&[4u8; 32]);
    let env = [("API_KEY", KEY), ("CHECKPOINT_AES_KEY", aes.as_str())];
    let mut d = Daemon::start(&dir, &cfg, &addr, &env);
    d.wait_metrics(Duration::from_secs(10));
    wait_until("quotes", || metric(&d, "ticks_total") > 10.0);
    assert_eq!(metric(&d, "breaker_headroom{breaker=\"max_position_loss\"}"), 1.0);
    assert_eq!(metric(&d, "equity"), 1000.0);
    assert_eq!(signal(&ingress, "b1", "buy", 1.0)["status"], "queued");
    wait_until("the trip", || metric(&d, "trading_state{state=\"halted\"}") == 1.0);
    assert_eq!(metric(&d, "breaker_trips_total{breaker=\"max_position_loss\"}"), 1.0);
    // (Headroom and equity move with the market after the trip: the state stays.)
    assert_ne!(metric(&d, "equity"), 1000.0, "the open position is in the equity");
    assert_eq!(signal(&ingress, "b2", "buy", 1.0)["reason"], "halted");
    let (_, s) = call(&d, "GET", "/api/v1/status", Some(KEY));
    assert_eq!(s["trading"]["by"], "max_position_loss", "{s}");
    assert!(s["trading"]["reason"].as_str().unwrap_or("").contains("open loss"), "{s}");
    let b = &s["equity"]["breakers"][0];
    assert_eq!(
        (b["name"].as_str(), b["action"].as_str(), b["limit"].as_f64()),
        (Some("max_position_loss"), Some("halted"), Some(0.00001)),
        "{s}"
    );
    // The log line is written by the logger as the trip happens, not before the gauge is read.
    wait_until("the trip's log line", || d.log_file().contains("breaker max_position_loss tripped"));
    // Give the journal a moment to write the trip, then kill.
    std::thread::sleep(Duration::from_millis(200));
    d.kill_and_restart(&dir, &cfg, &env);
    d.wait_metrics(Duration::from_secs(10));
    wait_until("quotes again", || metric(&d, "ticks_total") > 10.0);
    assert_eq!(metric(&d, "trading_state{state=\"halted\"}"), 1.0, "a restart does not clear a trip");
    let (_, s) = call(&d, "GET", "/api/v1/status", Some(KEY));
    assert_eq!(s["trading"]["by"], "max_position_loss", "{s}");
    assert!(s["equity"]["balance"].as_f64().is_some(), "{s}");
    let (code, body) = post(&d, "/api/v1/resume", r#"{"reason": "checked"}"#);
    assert_eq!((code, body["state"].as_str()), (200, Some("active")), "{body}");
    d.signal("TERM");
    assert!(d.wait_exit(Duration::from_secs(10)).success());
}

#[test]
fn flatten_leaves_every_position_at_zero() {
    let dir = TempDir::new("api-flatten");
    // The model off, so only the ingress and flatten trade.
    let (d, ingress, _) = start(&dir, "model:\n  threshold_bps: 10000\n");
    wait_until("quotes", || metric(&d, "ticks_total") > 10.0);
    assert_eq!(signal(&ingress, "f1", "buy", 3.0)["status"], "queued");
    wait_until("the position", || metric(&d, "position{symbol=\"EURUSD\"}") == 3.0);
    // A limit order far from the market rests: flatten cancels it rather than trading against it.
    let mut s = TcpStream::connect(&ingress).expect("ingress");
    s.write_all(b"{\"id\":\"f2\",\"symbol\":\"EURUSD\",\"side\":\"buy\",\"qty\":1,\"type\":\"limit\",\"price\":0.5}\n")
        .expect("send");
    wait_until("the resting order", || metric(&d, "open_orders") == 1.0);
    let (code, body) = call(&d, "POST", "/api/v1/flatten", Some(KEY));
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["cancel_requested"], serde_json::json!(["f2"]), "{body}");
    let orders = body["orders"].as_array().expect("orders");
    assert_eq!(orders.len(), 1, "{body}");
    assert_eq!(
        (orders[0]["symbol"].as_str(), orders[0]["side"].as_str(), orders[0]["sent"].as_bool()),
        (Some("EURUSD"), Some("sell"), Some(true))
    );
    wait_until("flat", || metric(&d, "position{symbol=\"EURUSD\"}") == 0.0 && metric(&d, "open_orders") == 0.0);
    assert_eq!(metric(&d, "position{symbol=\"GBPUSD\"}"), 0.0);
    assert_eq!(metric(&d, "trading_paused"), 1.0, "flatten leaves trading paused");
    assert_eq!(metric(&d, "signals_received_total{source=\"control\"}"), 1.0);
    // Nothing left to do the second time.
    let (_, body) = call(&d, "POST", "/api/v1/flatten", Some(KEY));
    assert_eq!(body["orders"], serde_json::json!([]));
}

#[test]
fn reload_applies_a_changed_risk_limit_and_reports_the_rest() {
    let dir = TempDir::new("api-reload");
    let (d, ingress, cfg) = start(&dir, "model:\n  threshold_bps: 10000\n");
    wait_until("quotes", || metric(&d, "ticks_total") > 10.0);
    let text = std::fs::read_to_string(&cfg).expect("config");
    // A bad file is refused and changes nothing.
    std::fs::write(&cfg, text.replace("max_position: 5", "max_position: lots")).expect("write");
    let (code, body) = call(&d, "POST", "/api/v1/reload", Some(KEY));
    assert_eq!(code, 422, "{body}");
    assert!(body["error"].as_str().is_some_and(|e| e.contains("risk.max_position")), "{body}");
    // A lower limit (live) and a new tick rate (needs a restart).
    std::fs::write(&cfg, text.replace("max_position: 5", "max_position: 1") + "feed:\n  tick_rate: 500\n")
        .expect("write");
    let (code, body) = call(&d, "POST", "/api/v1/reload", Some(KEY));
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["applied"], serde_json::json!(["risk.max_position"]));
    assert_eq!(body["restart_needed"], serde_json::json!(["feed.tick_rate"]));
    let (_, c) = call(&d, "GET", "/api/v1/config", Some(KEY));
    assert_eq!(c["risk"]["max_position"], 1.0);
    assert_eq!(c["feed"]["tick_rate"], 1000.0, "config shows what runs, not what waits for a restart");
    // The new limit holds: a buy of 2 is refused by the executor.
    assert_eq!(signal(&ingress, "r1", "buy", 2.0)["status"], "queued");
    wait_until("the refusal", || metric(&d, "signals_dropped_total{reason=\"max_position\"}") == 1.0);
    assert_eq!(metric(&d, "position{symbol=\"EURUSD\"}"), 0.0);
}

#[test]
fn ctl_talks_to_the_daemon() {
    let dir = TempDir::new("api-ctl");
    let (d, _ingress, cfg) = start(&dir, "");
    let ctl = |args: &[&str], key: Option<&str>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_mt5bot"));
        c.arg("ctl").args(args).current_dir(dir.path()).env_remove("API_KEY");
        if let Some(k) = key {
            c.env("API_KEY", k);
        }
        c.output().expect("run mt5bot ctl")
    };
    let url = format!("http://{}", d.metrics_addr);
    let out = ctl(&["status", "--url", &url], Some(KEY));
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    assert_eq!(v["venue"]["name"], "paper");
    // The URL from the config file; the key from an env file.
    dir.write("runtime.env", &format!("API_KEY={KEY}\n"));
    let out = ctl(&["pause", "--config", cfg.to_str().expect("path"), "--env-file", "runtime.env"], None);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(metric(&d, "trading_paused"), 1.0);
    // A wrong key: exit 1 with the daemon's answer, never the key.
    let out = ctl(&["resume", "--url", &url], Some("wrong-key-value"));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("401"), "{err}");
    assert!(!err.contains("wrong-key-value"));
    // No key anywhere: a usage problem.
    let out = ctl(&["status", "--url", &url, "--env-file", "missing.env"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("API_KEY is not in the environment"));
    let out = ctl(&["teleport"], Some(KEY));
    assert_eq!(out.status.code(), Some(2));
    // Trading states with a reason; a reason on an action that takes none is a usage error.
    let out = ctl(&["reduce", "--reason", "risk review", "--url", &url], Some(KEY));
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["state"], "reducing");
    let out = ctl(&["status", "--url", &url], Some(KEY));
    let v: Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    assert_eq!(
        (v["trading"]["state"].as_str(), v["trading"]["reason"].as_str()),
        (Some("reducing"), Some("risk review"))
    );
    let out = ctl(&["status", "--reason", "x", "--url", &url], Some(KEY));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--reason is for"));
}

#[test]
fn without_api_key_the_api_is_off() {
    let dir = TempDir::new("api-off");
    let (cfg, addr) = config_with(&dir, "");
    let mut d = Daemon::start(&dir, &cfg, &addr, &[]);
    d.wait_metrics(Duration::from_secs(10));
    let (code, body) = call(&d, "GET", "/api/v1/status", Some("anything"));
    assert_eq!(code, 503);
    assert!(body["error"].as_str().is_some_and(|e| e.contains("API_KEY is not set")));
}

/// `mt5bot ctl --fleet FILE`: every bot at once, one table, each key from where the file says;
/// a dead bot, a bot that never answers and a wrong key are rows that failed (exit 1) and the
/// others are still done. The keys never appear.
#[test]
fn ctl_fans_out_across_a_fleet_and_says_which_bots_failed() {
    let (dir1, dir2) = (TempDir::new("fleet-ctl-1"), TempDir::new("fleet-ctl-2"));
    let (d1, _, _) = start(&dir1, "");
    let (d2, _, _) = start(&dir2, "");
    let dir = TempDir::new("fleet-ctl");
    dir.write("acct1.env", &format!("API_KEY={KEY}\n"));
    dir.write("acct2.key", &format!("{KEY}\n"));
    // A listener that takes connections and never answers, and a port nothing listens on.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead = format!("127.0.0.1:{}", free_port());
    let fleet = |bots: &str| dir.write("fleet.yaml", &format!("bots:\n{bots}"));
    let live = format!(
        "  - {{name: acct1, url: 'http://{}', env_file: acct1.env}}\n  - {{name: acct2, url: 'http://{}', credential: acct2.key}}\n",
        d1.metrics_addr, d2.metrics_addr
    );
    let ctl = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_mt5bot"));
        // From elsewhere: the fleet file's own paths are found beside it.
        c.arg("ctl").args(args).current_dir("/").env_remove("API_KEY").env("ACCT4_KEY", "wrong-key-value");
        c.output().expect("run mt5bot ctl")
    };
    fleet(&format!(
        "{live}  - {{name: acct3, url: 'http://{dead}', env_file: acct1.env}}\n  - {{name: acct4, url: 'http://{}', api_key_env: ACCT4_KEY}}\n  - {{name: acct5, url: 'http://{}', env_file: acct1.env}}\n",
        d1.metrics_addr,
        silent.local_addr().expect("addr")
    ));
    let file = dir.join("fleet.yaml");
    let file = file.to_str().expect("path");
    let out = ctl(&["--fleet", file, "--timeout", "1s", "status"]);
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{table}{err}");
    assert!(err.contains("3 of 5 bots failed"), "{err}");
    let row = |name: &str| {
        table
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name}: {table}"))
            .to_owned()
    };
    assert!(table.starts_with("BOT"), "{table}");
    for name in ["acct1", "acct2"] {
        let r = row(name);
        assert!(r.contains(" ok ") && r.contains(" active ") && r.contains("paper up") && r.contains("10000"), "{r}");
    }
    assert!(row("acct3").contains("FAILED") && row("acct3").contains("cannot reach"), "{}", row("acct3"));
    assert!(row("acct4").contains("FAILED") && row("acct4").contains("401"), "{}", row("acct4"));
    assert!(row("acct5").contains("FAILED"), "the silent bot times out: {}", row("acct5"));
    assert!(!table.contains("wrong-key-value") && !table.contains(KEY) && !err.contains(KEY), "keys never shown");

    // An action on the live bots: both halted, exit 0.
    fleet(&live);
    let out = ctl(&["--fleet", file, "halt", "--reason", "fleet maintenance"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for d in [&d1, &d2] {
        let (_, v) = call(d, "GET", "/api/v1/status", Some(KEY));
        assert_eq!(
            (v["trading"]["state"].as_str(), v["trading"]["reason"].as_str()),
            (Some("halted"), Some("fleet maintenance"))
        );
    }
    let out = ctl(&["--fleet", file, "resume"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).lines().filter(|l| l.contains(" active")).count() == 2);

    // Bad fleet files are usage errors naming the file, never echoing it.
    fleet("  - {name: acct1, url: 'ftp://x', env_file: a.env}\n");
    let out = ctl(&["--fleet", file, "status"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("accepted: http://HOST:PORT"));
    dir.write("fleet.yaml", "API_KEY=super-secret-value\n");
    let out = ctl(&["--fleet", file, "status"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a fleet file") && !err.contains("super-secret-value"), "{err}");
    let out = ctl(&["--fleet", file, "--url", "http://x:1", "status"]);
    assert_eq!(out.status.code(), Some(2));
}
