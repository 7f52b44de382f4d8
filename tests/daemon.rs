//! `mt5bot run` as a process: serving, trading, readiness, systemd notifications and stopping.

mod support;

use std::os::unix::net::UnixDatagram;
use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::time::{Duration, Instant};

use support::*;

const KEPT_NAMES: [&str; 5] = ["cpu_usage_pct", "rss_usage_mb", "queue_depth", "trade_count", "drift_events"];

#[test]
fn serves_metrics_trades_and_stops_cleanly_on_sigterm() {
    let dir = TempDir::new("sigterm");
    let (cfg, addr) = config_with(&dir, "");
    let mut d = Daemon::start(&dir, &cfg, &addr, &[]);
    let first = d.wait_metrics(Duration::from_secs(5));

    for name in KEPT_NAMES {
        assert!(first.contains(&format!("\n# HELP {name} ")), "{name} has no HELP line");
        assert!(first.contains(&format!("\n# TYPE {name} ")), "{name} has no TYPE line");
    }
    assert!(first.contains("mt5bot_build_info{"), "build info exported");

    let trades = wait_for("trade_count > 0", Duration::from_secs(10), || {
        sample(&d.metrics(), "trade_count").filter(|t| *t > 0.0)
    });
    let more = wait_for("trade_count to keep rising", Duration::from_secs(10), || {
        sample(&d.metrics(), "trade_count").filter(|t| *t > trades)
    });
    assert!(more > trades);
    let m = d.metrics();
    assert!(sample(&m, "rss_usage_mb").is_some_and(|v| v > 0.0), "rss sampled");
    assert!(sample(&m, "process_resident_memory_bytes").is_some_and(|v| v > 0.0), "process collector");
    assert!(sample(&m, "tick_to_order_seconds_count").is_some_and(|v| v > 0.0), "latency observed");
    assert_eq!(sample(&m, "queue_capacity"), Some(1024.0));

    d.signal("TERM");
    let status = d.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "exit status {status:?}; stderr:\n{}", d.stderr());

    let log = d.log_file();
    let last: serde_json::Value =
        serde_json::from_str(log.lines().last().expect("log lines")).expect("log lines are JSON");
    assert_eq!(last["level"], "INFO");
    let msg = last["msg"].as_str().expect("msg");
    assert!(msg.starts_with("stopped (SIGTERM); final state: trades="), "{msg}");
    assert!(msg.contains("EURUSD=") && msg.contains("GBPUSD="), "{msg}");
    assert!(d.stderr().contains("final state"), "human-readable line on stderr");
    for line in log.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(v["ts"].as_str().is_some_and(|t| t.ends_with('Z')), "{line}");
    }
}

#[test]
fn sigint_stops_gracefully_too() {
    let dir = TempDir::new("sigint");
    let (cfg, addr) = config_with(&dir, "");
    let mut d = Daemon::start(&dir, &cfg, &addr, &[]);
    d.wait_metrics(Duration::from_secs(5));
    d.signal("INT");
    assert_eq!(d.wait_exit(Duration::from_secs(10)).code(), Some(0));
    assert!(d.log_file().contains("stopped (SIGINT); final state"));
}

#[test]
fn endpoints_answer_by_the_rules() {
    let dir = TempDir::new("endpoints");
    let (cfg, addr) = config_with(&dir, "");
    let mut d = Daemon::start(&dir, &cfg, &addr, &[]);
    d.wait_metrics(Duration::from_secs(5));

    let m = get(&addr, "/metrics").expect("metrics");
    assert_eq!(m.header("Content-Type"), Some("text/plain; version=0.0.4; charset=utf-8"));
    let h = get(&addr, "/healthz").expect("healthz");
    assert_eq!((h.status, h.body.as_str()), (200, "ok\n"));
    let r = get(&addr, "/readyz").expect("readyz");
    assert_eq!((r.status, r.body.as_str()), (200, "ready\n"));
    assert_eq!(get(&addr, "/metrics?x=1").expect("query string").status, 200);
    assert_eq!(get(&addr, "/nowhere").expect("404").status, 404);
    let post = http("POST", &addr, "/metrics", b"x=1").expect("post");
    assert_eq!(post.status, 405);
    assert_eq!(post.header("Allow"), Some("GET"));
    assert_eq!(http("DELETE", &addr, "/readyz", b"").expect("delete").status, 405);
    // A large body is refused without harm, and the daemon keeps serving.
    let big = vec![b'a'; 4 << 20];
    let _ = http("POST", &addr, "/metrics", &big);
    // A client that sends half a request and stalls does not hold up other scrapes.
    let mut slow = std::net::TcpStream::connect(&addr).expect("connect");
    std::io::Write::write_all(&mut slow, b"GET /metrics HTTP/1.1\r\nHost: x\r\n").expect("half a request");
    for _ in 0..3 {
        assert_eq!(get(&addr, "/readyz").expect("readyz beside a stalled client").status, 200);
    }
    drop(slow);
    let after = d.metrics();
    assert!(after.contains("http_requests_total{code=\"405\",handler=\"metrics\"}"), "405s counted");
    assert!(after.contains("http_requests_total{code=\"404\",handler=\"other\"} 1"));
}

#[test]
fn notify_socket_receives_ready_watchdog_and_stopping() {
    let dir = TempDir::new("notify");
    let sock_path = dir.join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("bind notify socket");
    sock.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let (cfg, addr) = config_with(&dir, "");
    let sock_str = sock_path.to_str().expect("utf8 path");
    let mut d = Daemon::start(&dir, &cfg, &addr, &[("NOTIFY_SOCKET", sock_str), ("WATCHDOG_USEC", "200000")]);

    let mut buf = [0u8; 256];
    let mut recv = || {
        let n = sock.recv(&mut buf).expect("a notification within 10 s");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let first = recv();
    assert_eq!(first, "READY=1", "READY=1 comes first");
    // READY=1 is only sent once /metrics serves; STATUS= says the venue is up.
    assert_eq!(get(&addr, "/metrics").expect("metrics").status, 200);
    assert_eq!(recv(), "STATUS=trading: venue paper up");
    let watchdogs = (0..3).map(|_| recv()).filter(|m| m == "WATCHDOG=1").count();
    assert_eq!(watchdogs, 3, "the engine loop pings the watchdog");

    d.signal("TERM");
    let stopping = (0..20).map(|_| recv()).find(|m| m == "STOPPING=1");
    assert_eq!(stopping.as_deref(), Some("STOPPING=1"));
    assert_eq!(d.wait_exit(Duration::from_secs(10)).code(), Some(0));
}

#[test]
fn metrics_port_in_use_is_a_clear_runtime_error() {
    let dir = TempDir::new("port");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let cfg = dir.write("config.yaml", &format!("metrics:\n  listen: {addr}\n"));
    let mut d = Daemon::start(&dir, &cfg, &addr, &[]);
    let status = d.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(1));
    assert!(d.stderr().contains(&format!("cannot listen on metrics.listen {addr}")), "{}", d.stderr());
    assert!(d.log_file().contains("cannot listen on metrics.listen"), "the failure is in the log file too");
}

#[test]
fn runs_on_the_embedded_default_without_a_config() {
    // The embedded default listens on 127.0.0.1:9898; it must be free for this test.
    if let Err(e) = std::net::TcpListener::bind("127.0.0.1:9898") {
        panic!("port 9898 is in use ({e}); stop whatever runs there (a `make run`?) and rerun");
    }
    let dir = TempDir::new("default");
    let mut child = Command::new(BIN)
        .arg("run")
        .current_dir(dir.path())
        .env_remove("NOTIFY_SOCKET")
        .stderr(std::fs::File::create(dir.join("stderr.txt")).expect("file"))
        .spawn()
        .expect("start");
    let start = Instant::now();
    let body = wait_for("the default to serve 127.0.0.1:9898/metrics", Duration::from_secs(5), || {
        get("127.0.0.1:9898", "/metrics").ok().filter(|r| r.status == 200).map(|r| r.body)
    });
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(body.contains("broker_connected{venue=\"paper\"} 1"), "paper venue up");
    assert!(dir.join("logs/mt5bot.log").is_file(), "logs/mt5bot.log relative to the working folder");
    let ok = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().expect("kill");
    assert!(ok.success());
    let status = wait_for("exit", Duration::from_secs(10), || child.try_wait().ok().flatten());
    assert_eq!(status.code(), Some(0), "signal: {:?}", status.signal());
}

#[test]
fn version_and_help() {
    let out = Command::new(BIN).arg("--version").output().expect("run");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with(&format!("mt5bot {}\n", env!("CARGO_PKG_VERSION"))), "{text}");
    for key in ["commit: ", "rustc: rustc ", "target: ", "profile: "] {
        assert!(text.contains(key), "{key} in {text}");
    }
    for args in [&["--help"][..], &["help"], &["help", "run"], &["run", "--help"], &["config", "check", "--help"]] {
        let out = Command::new(BIN).args(args).output().expect("run");
        assert!(out.status.success(), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage: mt5bot"), "{args:?}");
    }
    let bad = Command::new(BIN).arg("launch").output().expect("run");
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("unknown command \"launch\"") && err.contains("Usage: mt5bot"), "{err}");
    let bad = Command::new(BIN).args(["run", "--speed", "11"]).output().expect("run");
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn secrets_come_from_credentials_before_the_environment_and_are_never_logged() {
    let dir = TempDir::new("creds");
    std::fs::create_dir_all(dir.join("creds")).expect("dir");
    dir.write("creds/API_KEY", "credential-value-3f9a\n");
    let (cfg, addr) = config_with(&dir, "");
    let creds = dir.join("creds");
    let mut d = Daemon::start(
        &dir,
        &cfg,
        &addr,
        &[
            ("CREDENTIALS_DIRECTORY", creds.to_str().expect("utf8")),
            ("API_KEY", "environment-value-77c1"),
            ("INFLUXDB_TOKEN", "environment-token-0b2e"),
        ],
    );
    d.wait_metrics(Duration::from_secs(5));
    d.signal("TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(10)).code(), Some(0));
    let log = d.log_file();
    assert!(log.contains("secrets: API_KEY (credential), INFLUXDB_TOKEN (environment); not set: "), "{log}");
    for value in ["credential-value-3f9a", "environment-value-77c1", "environment-token-0b2e"] {
        assert!(!log.contains(value) && !d.stderr().contains(value), "a secret value was logged");
    }
}

/// SIGHUP (logrotate's `postrotate kill -HUP`) reopens the log file and changes nothing else: the
/// daemon keeps trading, the rotated file keeps what it had, the new one gets what follows.
#[test]
fn sighup_reopens_the_log_file_and_stops_nothing() {
    let dir = TempDir::new("sighup");
    let (cfg, addr) = config_with(&dir, "engine:\n  status_interval: 1s\n");
    let mut d = Daemon::start(&dir, &cfg, &addr, &[]);
    d.wait_metrics(Duration::from_secs(5));
    d.signal("HUP");
    std::thread::sleep(Duration::from_millis(200));
    assert!(d.child.try_wait().expect("wait").is_none(), "SIGHUP must not end the daemon");
    let log = dir.join("logs/mt5bot.log");
    let rotated = dir.join("logs/mt5bot.log.1");
    std::fs::rename(&log, &rotated).expect("rotate");
    d.signal("HUP");
    wait_for("a new log file with the reopen line", Duration::from_secs(5), || {
        std::fs::read_to_string(&log).ok().filter(|t| t.contains("log file reopened (SIGHUP)")).map(|_| ())
    });
    let ticks = sample(&d.metrics(), "ticks_total").expect("ticks");
    wait_for("ticks to keep flowing after SIGHUP", Duration::from_secs(5), || {
        sample(&d.metrics(), "ticks_total").filter(|t| *t > ticks).map(|_| ())
    });
    d.signal("TERM");
    let status = d.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
    let new = std::fs::read_to_string(&log).expect("new log");
    assert!(new.contains("final state"), "the final state goes to the reopened file");
    let old = std::fs::read_to_string(&rotated).expect("rotated log");
    assert!(old.contains("starting") && !old.contains("final state"));
    for line in old.lines().chain(new.lines()) {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("not a whole JSON line ({e}): {line}"));
    }
}

/// A full disk under the logs folder: every record not written is counted, no torn line is left,
/// and writing resumes by itself when space returns. Needs root to mount a small tmpfs.
#[test]
fn a_full_log_disk_is_counted_and_recovered_from_without_torn_lines() {
    let dir = TempDir::new("logfull");
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).expect("mkdir");
    let Some(_tmpfs) = Tmpfs::mount(&logs, "256k", "the full-disk case") else { return };
    let ingress = format!("127.0.0.1:{}", free_port());
    let (cfg, addr) =
        config_with(&dir, &format!("logging:\n  stderr: false\ningress:\n  enabled: true\n  listen: {ingress}\n"));
    let cfg_text = std::fs::read_to_string(&cfg).expect("cfg").replacen("logging:\n  stderr: true\n", "", 1);
    std::fs::write(&cfg, cfg_text).expect("cfg");
    let mut d = Daemon::start(&dir, &cfg, &addr, &[]);
    d.wait_metrics(Duration::from_secs(5));
    // Fill the disk.
    let filler = logs.join("filler");
    let mut f = std::fs::File::create(&filler).expect("filler");
    let chunk = vec![b'x'; 4096];
    while std::io::Write::write_all(&mut f, &chunk).is_ok() {}
    drop(f);
    // Each ingress connection is two log lines.
    let churn = |n: usize| {
        for _ in 0..n {
            drop(std::net::TcpStream::connect(&ingress).expect("connect to ingress"));
        }
    };
    wait_for("records to be counted as dropped on the full disk", Duration::from_secs(10), || {
        churn(50);
        sample(&d.metrics(), "log_records_dropped_total").filter(|n| *n >= 10.0).map(|_| ())
    });
    let before = std::fs::read_to_string(logs.join("mt5bot.log")).expect("log").len();
    std::fs::remove_file(&filler).expect("free the space");
    wait_for("writing to resume when space returns", Duration::from_secs(10), || {
        churn(5);
        let now = std::fs::read_to_string(logs.join("mt5bot.log")).ok()?.len();
        (now > before + 1000).then_some(())
    });
    d.signal("TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(10)).code(), Some(0));
    let text = std::fs::read_to_string(logs.join("mt5bot.log")).expect("log");
    for line in text.lines().filter(|l| !l.is_empty()) {
        serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("a torn line ({e}): {line}"));
    }
    assert!(d.stderr().contains("log_records_dropped_total"), "stderr says what happened: {}", d.stderr());
}

/// The shipped logrotate file parses (with the service user swapped for one that exists here) and
/// rotates with SIGHUP to the main process, never a restart.
#[test]
fn the_shipped_logrotate_file_is_valid_and_signals_sighup() {
    let logrotate = require("logrotate");
    let dir = TempDir::new("logrotate");
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/mt5bot.logrotate")).expect("file");
    assert!(shipped.contains("--signal=SIGHUP --kill-whom=main"), "rotation must only SIGHUP the daemon");
    assert!(!shipped.contains("restart"), "rotation must never restart the daemon");
    let log = dir.join("mt5bot.log");
    std::fs::write(&log, "{}\n").expect("log");
    let local = shipped
        .replace("/var/log/mt5bot/mt5bot.log", log.to_str().expect("utf8"))
        .replace("mt5bot mt5bot", "root root");
    let conf = dir.write("logrotate.conf", &local);
    let out = Command::new(logrotate)
        .arg("--debug")
        .arg("--state")
        .arg(dir.join("state"))
        .arg(&conf)
        .output()
        .expect("logrotate");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!text.contains("error:"), "{text}");
    assert!(text.contains("Handling 1 logs"), "{text}");
}

/// With a venue that waits for its counterparty (the MT5 terminal), READY=1 says the daemon serves,
/// STATUS= says what it waits for, /readyz answers 503, and the log never claims the venue is up.
#[test]
fn readiness_with_a_venue_still_waiting_says_what_it_waits_for() {
    let dir = TempDir::new("notify-mt5");
    let sock_path = dir.join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("bind notify socket");
    sock.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let bridge = format!("127.0.0.1:{}", free_port());
    let (cfg, addr) =
        config_with(&dir, &format!("venue:\n  kind: mt5\n  mt5:\n    listen: {bridge}\nfeed:\n  kind: venue\n"));
    let sock_str = sock_path.to_str().expect("utf8 path");
    let mut d = Daemon::start(
        &dir,
        &cfg,
        &addr,
        &[("NOTIFY_SOCKET", sock_str), ("CONTROLLER_SHARED_SECRET", "notify-test-secret-0123456789")],
    );
    let mut buf = [0u8; 512];
    let mut recv = || {
        let n = sock.recv(&mut buf).expect("a notification within 10 s");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    assert_eq!(recv(), "READY=1");
    let status = recv();
    assert_eq!(status, format!("STATUS=venue mt5 not up: waiting for the Expert Advisor to connect to {bridge}"));
    let r = get(&addr, "/readyz").expect("readyz");
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.body.contains("venue session is down"), "{}", r.body);
    // The log is written by its own thread: the line may land a moment after READY=1.
    let log = wait_for("the readiness line in the log", Duration::from_secs(5), || {
        Some(d.log_file()).filter(|l| l.contains("venue mt5 not up yet"))
    });
    assert!(!log.contains("venue mt5 up"), "the log agrees with /readyz: {log}");
    d.signal("TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(10)).code(), Some(0));
}
