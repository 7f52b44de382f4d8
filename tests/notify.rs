//! Notifications (`notify:`) from a running paper daemon to stand-ins of the services: the
//! Telegram Bot API, a Discord webhook and a Slack webhook (no server of theirs can run here), and
//! a plain JSON webhook. Each stand-in answers as the service's published contract says,
//! rate-limit refusals included: Telegram's `sendMessage` (`{"ok":true,...}`, 429 with
//! `parameters.retry_after`, 401 for a bad token), Discord's execute-webhook (204 No Content, 429
//! with a JSON `retry_after` in seconds), Slack's incoming webhook (200 `ok`, 429 with
//! `Retry-After`).

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

const KEY: &str = "notify-test-api-key-0123456789";
const TOKEN: &str = "123456:TELEGRAM-SECRET-TOKEN";

fn signal(ingress: &str, line: &str) -> Value {
    let mut s = TcpStream::connect(ingress).expect("ingress");
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    s.write_all(format!("{line}\n").as_bytes()).expect("send");
    let mut answer = String::new();
    BufReader::new(s).read_line(&mut answer).expect("answer");
    serde_json::from_str(&answer).expect("JSON answer")
}

fn metric(d: &Daemon, name: &str) -> f64 {
    sample(&d.metrics(), name).unwrap_or(0.0)
}

/// A series of a bot with identity labels, by its name alone.
fn identified(d: &Daemon, name: &str) -> f64 {
    d.metrics()
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix('{')?.split_once("} ")?.1.trim().parse().ok())
        .unwrap_or(0.0)
}

/// The texts a stand-in took (answered 2xx), from the body field each service reads.
fn texts(r: &Receiver, field: &str) -> Vec<String> {
    r.received()
        .iter()
        .filter_map(|(_, body)| serde_json::from_str::<Value>(body).ok())
        .filter_map(|v| v[field].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn fills_state_changes_and_the_lifecycle_reach_every_sink_through_rate_limits() {
    let dir = TempDir::new("notify-sinks");
    // Telegram: the first call is refused for too many requests, retry after 1 s.
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&calls);
    let telegram = Receiver::start_with(Box::new(move |url, _| {
        if url != format!("/bot{TOKEN}/sendMessage") {
            return (401, vec![], r#"{"ok":false,"error_code":401,"description":"Unauthorized"}"#.into());
        }
        if seen.fetch_add(1, Ordering::SeqCst) == 0 {
            let body = r#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 1","parameters":{"retry_after":1}}"#;
            return (429, vec![], body.into());
        }
        (200, vec![], r#"{"ok":true,"result":{"message_id":1}}"#.into())
    }));
    let discord_calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&discord_calls);
    let discord = Receiver::start_with(Box::new(move |_, _| {
        if seen.fetch_add(1, Ordering::SeqCst) == 1 {
            let body = r#"{"message": "You are being rate limited.", "retry_after": 0.3, "global": false}"#;
            return (429, vec![("Retry-After".into(), "1".into())], body.into());
        }
        (204, vec![], String::new())
    }));
    let slack = Receiver::start_with(Box::new(|_, _| (200, vec![], "ok".into())));
    let hook = Receiver::start_with(Box::new(|_, _| (200, vec![], String::new())));
    let ingress = format!("127.0.0.1:{}", free_port());
    let (cfg, addr) = config_with(
        &dir,
        &format!(
            "model:\n  threshold_bps: 10000\ningress:\n  enabled: true\n  listen: {ingress}\n\
             identity:\n  account: acct1\n  strategy: ewma\n\
             notify:\n  sinks:\n\
             \x20   - kind: telegram\n      chat_id: \"-1001234\"\n      base_url: http://{tg}\n      min_interval: 0s\n\
             \x20   - kind: discord\n      events: [state, lifecycle]\n      min_interval: 0s\n\
             \x20   - kind: slack\n      events: [fill]\n      min_interval: 0s\n\
             \x20   - kind: webhook\n      name: ops\n      url: http://{hk}/hook\n      header_env: {{Authorization: HOOK_AUTH}}\n      min_interval: 0s\n",
            tg = telegram.addr,
            hk = hook.addr,
        ),
    );
    let discord_url = format!("http://{}/api/webhooks/42/DISCORD-SECRET", discord.addr);
    let slack_url = format!("http://{}/services/T0/B0/SLACK-SECRET", slack.addr);
    let env = [
        ("API_KEY", KEY),
        ("TELEGRAM_BOT_TOKEN", TOKEN),
        ("DISCORD_WEBHOOK_URL", discord_url.as_str()),
        ("SLACK_WEBHOOK_URL", slack_url.as_str()),
        ("HOOK_AUTH", "Bearer HOOK-SECRET"),
    ];
    let mut d = Daemon::start(&dir, &cfg, &addr, &env);
    d.wait_metrics(Duration::from_secs(10));
    // A quote first, then one order of ours and its fill.
    std::thread::sleep(Duration::from_millis(300));
    let a = signal(&ingress, r#"{"id":"n-1","symbol":"EURUSD","side":"buy","qty":1,"type":"market"}"#);
    assert_eq!(a["status"], "queued", "{a}");
    wait_for("the fill", Duration::from_secs(10), || (identified(&d, "trade_count") >= 1.0).then_some(()));
    let auth = format!("Bearer {KEY}");
    let r = http_with("POST", &d.metrics_addr, "/api/v1/halt", &[("Authorization", &auth)], br#"{"reason":"night"}"#)
        .expect("halt");
    assert_eq!(r.status, 200, "{}", r.body);
    wait_for("telegram's three messages", Duration::from_secs(10), || {
        (texts(&telegram, "text").len() >= 4).then_some(())
    });
    d.signal("TERM");
    assert!(d.wait_exit(Duration::from_secs(15)).success(), "{}", d.stderr());

    // Telegram got everything once, the refused first call again after its retry_after.
    let tg: Vec<(String, Value)> =
        telegram.received().into_iter().map(|(u, b)| (u, serde_json::from_str(&b).expect("JSON body"))).collect();
    assert!(tg.iter().all(|(u, b)| u == &format!("/bot{TOKEN}/sendMessage") && b["chat_id"] == "-1001234"));
    let tg_texts: Vec<&str> = tg.iter().filter_map(|(_, b)| b["text"].as_str()).collect();
    assert_eq!(tg_texts[0], tg_texts[1], "the rate-limited message is sent again: {tg_texts:?}");
    let delivered = &tg_texts[1..];
    assert!(
        delivered[0].starts_with("mt5bot acct1/ewma ") && delivered[0].contains("started on venue paper"),
        "{delivered:?}"
    );
    assert!(delivered[1].starts_with("mt5bot acct1/ewma: bought 1 EURUSD at "), "{delivered:?}");
    assert!(delivered[1].ends_with("(n-1)"), "{delivered:?}");
    assert_eq!(delivered[2], "⚠ mt5bot acct1/ewma: trading halted (was active) by operator: night");
    assert!(delivered[3].starts_with("mt5bot acct1/ewma stopped ("), "{delivered:?}");
    assert_eq!(delivered.len(), 4, "{delivered:?}");

    // Discord takes only state and lifecycle; its 429 was waited out; no mention can ping.
    let dc: Vec<Value> = discord.received().iter().map(|(_, b)| serde_json::from_str(b).expect("JSON")).collect();
    assert_eq!(dc.len(), 4, "three messages, one of them twice: {dc:?}");
    assert_eq!(dc[1], dc[2]);
    assert!(dc.iter().all(|b| b["allowed_mentions"]["parse"] == serde_json::json!([])));
    assert!(dc[1]["content"].as_str().is_some_and(|t| t.contains("trading halted")), "{dc:?}");
    assert!(discord.received().iter().all(|(u, _)| u == "/api/webhooks/42/DISCORD-SECRET"));

    // Slack takes fills only.
    let sl = texts(&slack, "text");
    assert_eq!(sl.len(), 1, "{sl:?}");
    assert!(sl[0].contains("bought 1 EURUSD"), "{sl:?}");

    // The webhook gets structured events, with its header.
    let hk: Vec<Value> = hook.received().iter().map(|(_, b)| serde_json::from_str(b).expect("JSON")).collect();
    let events: Vec<&str> = hk.iter().filter_map(|v| v["event"].as_str()).collect();
    assert_eq!(events, ["started", "fill", "state", "stopped"], "{hk:?}");
    assert_eq!(hk[1]["fields"]["fills"][0]["order_id"], "n-1");
    assert_eq!(hk[2]["fields"]["to"], "halted");
    assert_eq!(hk[0]["bot"], "mt5bot acct1/ewma");
    let raw = hook.raw.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert!(raw
        .iter()
        .all(|(h, _)| h.iter().any(|(k, v)| k.eq_ignore_ascii_case("authorization") && v == "Bearer HOOK-SECRET")));

    // No secret in the log or on stderr.
    let log = d.log_file() + &d.stderr();
    for secret in [TOKEN, "DISCORD-SECRET", "SLACK-SECRET", "HOOK-SECRET"] {
        assert!(!log.contains(secret), "{secret} in the log");
    }
    assert!(log.contains("notifications to telegram, discord, slack, ops"), "{log}");
}

/// A sink whose service never answers: its queue fills, what does not fit is dropped and counted,
/// trading is not slowed, and a stop waits a bounded time for it.
#[test]
fn a_service_that_never_answers_costs_dropped_notices_not_trading() {
    let dir = TempDir::new("notify-stuck");
    // Accepts connections and never reads or answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let silent_addr = silent.local_addr().expect("addr");
    let held = Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = Arc::clone(&held);
    std::thread::spawn(move || {
        for s in silent.incoming().flatten() {
            keep.lock().unwrap_or_else(|e| e.into_inner()).push(s);
        }
    });
    let (cfg, addr) = config_with(
        &dir,
        &format!(
            "notify:\n  queue_capacity: 4\n  timeout: 2s\n  sinks:\n    - kind: webhook\n      url: http://{silent_addr}/hook\n      events: [fill]\n"
        ),
    );
    let mut d = Daemon::start(&dir, &cfg, &addr, &[]);
    d.wait_metrics(Duration::from_secs(10));
    // The embedded model trades several times a second.
    wait_for("fills beyond the queue", Duration::from_secs(30), || {
        (metric(&d, "notify_dropped_total{sink=\"webhook\"}") >= 10.0).then_some(())
    });
    let trades = metric(&d, "trade_count");
    std::thread::sleep(Duration::from_secs(1));
    assert!(metric(&d, "trade_count") > trades, "trading goes on");
    assert_eq!(metric(&d, "notify_sent_total{sink=\"webhook\"}"), 0.0);
    wait_for("a timed-out attempt, counted", Duration::from_secs(10), || {
        (metric(&d, "notify_failures_total{sink=\"webhook\"}") >= 1.0).then_some(())
    });
    let t0 = Instant::now();
    d.signal("TERM");
    assert!(d.wait_exit(Duration::from_secs(20)).success(), "{}", d.stderr());
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "a stop waits its grace and one timeout at most: {:?}",
        t0.elapsed()
    );
    assert!(d.log_file().contains("has not delivered everything"), "{}", d.log_file());
}

/// A missing secret stops the start with a clear error naming the variable; a bad sink is a
/// config error with its key.
#[test]
fn a_missing_token_or_a_bad_sink_is_refused_at_start() {
    let dir = TempDir::new("notify-refused");
    let (cfg, addr) = config_with(&dir, "notify:\n  sinks:\n    - kind: telegram\n      chat_id: \"42\"\n");
    let mut d = Daemon::start(&dir, &cfg, &addr, &[]);
    let status = d.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(2), "{}", d.stderr());
    assert!(d.stderr().contains("TELEGRAM_BOT_TOKEN is not set"), "{}", d.stderr());
    for (yaml, key) in [
        ("notify:\n  sinks:\n    - kind: telegram\n", "notify.sinks[0].chat_id"),
        ("notify:\n  sinks:\n    - kind: webhook\n", "notify.sinks[0].url"),
        ("notify:\n  sinks:\n    - kind: webhook\n      url: http://u:p@h/x\n", "notify.sinks[0].url"),
        ("notify:\n  sinks:\n    - kind: slack\n      events: [fills]\n", "notify.sinks[0].events"),
        ("notify:\n  sinks:\n    - kind: slack\n    - kind: slack\n", "notify.sinks[1].name"),
        ("notify:\n  sinks:\n    - kind: discord\n      chat_id: \"1\"\n", "notify.sinks[0].chat_id"),
        ("notify:\n  sinks:\n    - kind: sms\n", "notify.sinks[0].kind"),
    ] {
        let path = dir.write("bad.yaml", yaml);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_mt5bot"))
            .args(["config", "check", "--config"])
            .arg(&path)
            .output()
            .expect("config check");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{yaml}: {err}");
        assert!(err.contains(key), "{yaml}: wanted {key} in {err}");
        assert!(!err.contains("u:p@"), "no credentials echoed: {err}");
    }
}
