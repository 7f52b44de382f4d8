//! Log forwarding against a real rsyslog (Debian's `rsyslog`, in the foreground with its own config)
//! and against HTTP receivers that parse each format strictly.

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mt5bot::config::{Config, LogFormat, LogForwardConfig, LogSink};
use mt5bot::telemetry::log_forward::{ForwardRecord, Forwarder, MAX_UDP_MESSAGE, TRUNCATION_MARKER};
use mt5bot::telemetry::metrics::Metrics;
use support::*;

/// rsyslog with imtcp and imudp on loopback ports, writing what it parsed to a file.
struct Rsyslog {
    child: Child,
    tcp: u16,
    udp: u16,
    out: PathBuf,
    conf: PathBuf,
    dir: PathBuf,
}

impl Rsyslog {
    fn start(dir: &TempDir, tag: &str) -> Rsyslog {
        let (tcp, udp) = (free_port(), free_port());
        Rsyslog::start_on(dir, tag, tcp, udp)
    }

    fn start_on(dir: &TempDir, tag: &str, tcp: u16, udp: u16) -> Rsyslog {
        Rsyslog::start_with(dir, tag, tcp, udp, None)
    }

    /// With `tls`, imtcp speaks TLS only (RFC 5425), with this certificate and key.
    fn start_with(dir: &TempDir, tag: &str, tcp: u16, udp: u16, tls: Option<&Certs>) -> Rsyslog {
        let work = dir.join(&format!("rsyslog-{tag}"));
        std::fs::create_dir_all(&work).expect("dir");
        let out = dir.join(&format!("syslog-{tag}.log"));
        let (global_tls, imtcp) = match tls {
            Some(c) => (
                format!(
                    " DefaultNetstreamDriver=\"gtls\" DefaultNetstreamDriverCAFile=\"{}\" \
                     DefaultNetstreamDriverCertFile=\"{}\" DefaultNetstreamDriverKeyFile=\"{}\"",
                    c.ca.display(),
                    c.cert.display(),
                    c.key.display()
                ),
                "module(load=\"imtcp\" StreamDriver.Name=\"gtls\" StreamDriver.Mode=\"1\" StreamDriver.AuthMode=\"anon\")"
                    .to_owned(),
            ),
            None => (String::new(), "module(load=\"imtcp\")".to_owned()),
        };
        // Each line: what rsyslog parsed from the RFC 5424 message.
        let conf = format!(
            "global(workDirectory=\"{w}\"{global_tls})\n\
             {imtcp}\n\
             module(load=\"imudp\")\n\
             input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{tcp}\")\n\
             input(type=\"imudp\" address=\"127.0.0.1\" port=\"{udp}\")\n\
             template(name=\"parsed\" type=\"string\" string=\"%pri%|%protocol-version%|%timereported:::date-rfc3339%|%hostname%|%app-name%|%procid%|%msgid%|%structured-data%|%msg%\\n\")\n\
             action(type=\"omfile\" file=\"{o}\" template=\"parsed\" flushOnTXEnd=\"on\" asyncWriting=\"off\")\n",
            w = work.display(),
            o = out.display()
        );
        let conf_path = dir.write(&format!("rsyslog-{tag}.conf"), &conf);
        let child = Command::new(require("rsyslogd"))
            .args(["-n", "-f"])
            .arg(&conf_path)
            .arg("-i")
            .arg(work.join("pid"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(work.join("stderr")).expect("stderr"))
            .spawn()
            .expect("start rsyslogd");
        let r = Rsyslog { child, tcp, udp, out, conf: conf_path, dir: work };
        wait_for("rsyslog to listen", Duration::from_secs(15), || {
            std::net::TcpStream::connect(("127.0.0.1", tcp)).ok()
        });
        r
    }

    fn stop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let _ = wait_for("rsyslog to stop", Duration::from_secs(10), || self.child.try_wait().ok().flatten());
        let _ = std::fs::remove_file(self.dir.join("pid"));
    }

    /// The complete lines rsyslog has written (a line it is still writing is left out).
    fn lines(&self) -> Vec<String> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        let complete = text.rfind('\n').map_or("", |end| &text[..end]);
        complete.lines().map(str::to_owned).collect()
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = &self.conf;
    }
}

/// A parsed rsyslog line: pri, version, timestamp, host, app, procid, msgid, sd, msg.
fn parse(line: &str) -> Vec<String> {
    line.splitn(9, '|').map(str::to_owned).collect()
}

fn forward_config(url: &str, sink: LogSink, format: LogFormat, spool: &Path) -> LogForwardConfig {
    let mut raw = Config::embedded().to_yaml();
    raw.push('\n');
    LogForwardConfig {
        url: url.to_owned(),
        sink,
        format,
        headers: vec![("X-Scope-OrgID".into(), "trading".into())],
        header_env: vec![],
        buffer_records: 20_000,
        batch_records: 500,
        spool_dir: spool.to_path_buf(),
        spool_max_bytes: 64 << 20,
        timeout: Duration::from_secs(2),
        gzip: false,
        facility: 1,
        app_name: "mt5bot".into(),
        elasticsearch_index: "mt5bot-logs".into(),
        tls_ca_file: None,
    }
}

fn record(i: usize) -> ForwardRecord {
    let ns = 1_790_000_000_000_000_000i128 + i as i128 * 1_000;
    ForwardRecord::new(ns, log::Level::Info, "mt5bot::test", &format!("record {i}"))
}

fn env_none(_: &str) -> Option<String> {
    None
}

#[test]
fn syslog_over_tcp_arrives_once_in_order_and_survives_a_20_second_outage() {
    let dir = TempDir::new("fwd-tcp");
    let mut rs = Rsyslog::start(&dir, "a");
    let metrics = Metrics::new();
    let cfg = forward_config(
        &format!("syslog://127.0.0.1:{}", rs.tcp),
        LogSink::SyslogTcp { addr: format!("127.0.0.1:{}", rs.tcp) },
        LogFormat::Json,
        &dir.join("spool"),
    );
    let fwd = Forwarder::spawn(&cfg, &metrics, "testhost".into(), &env_none).expect("forwarder");
    fwd.begin();
    let h = fwd.handle();
    for i in 0..10_000 {
        h.offer(record(i));
    }
    let lines = wait_for("10,000 records at rsyslog", Duration::from_secs(60), || {
        let l = rs.lines();
        (l.len() >= 10_000).then_some(l)
    });
    assert_eq!(lines.len(), 10_000, "each record once");
    for (i, line) in lines.iter().enumerate() {
        let f = parse(line);
        assert_eq!(f.len(), 9, "{line}");
        assert_eq!(f[0], "14", "PRI: facility user, severity info: {line}");
        assert_eq!(f[1], "1", "RFC 5424 version: {line}");
        assert!(f[2].starts_with("2026-09-21T") || f[2].starts_with("2026-"), "timestamp: {line}");
        assert_eq!((f[3].as_str(), f[4].as_str()), ("testhost", "mt5bot"), "{line}");
        assert_eq!(f[6], "log");
        assert_eq!(f[7], "[mt5bot@32473 level=\"INFO\" target=\"mt5bot::test\"]", "{line}");
        assert_eq!(f[8].trim(), format!("record {i}"), "in order");
    }
    assert_eq!(metrics.log_forward_sent.get(), 10_000);
    assert_eq!(metrics.log_forward_connected.get(), 1);

    // Stop rsyslog for 20 s while 5,000 more are logged, then bring it back on the same port.
    rs.stop();
    for i in 10_000..15_000 {
        h.offer(record(i));
        if i % 1000 == 0 {
            std::thread::sleep(Duration::from_secs(3));
        }
    }
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(metrics.log_forward_connected.get(), 0, "the outage is noticed");
    assert!(metrics.log_forward_spool_bytes.get() > 0, "records wait in the spool");
    let _rs2 = Rsyslog::start_on(&dir, "b", rs.tcp, rs.udp);
    let second = wait_for("the 5,000 records after the outage", Duration::from_secs(60), || {
        let l = _rs2.lines();
        let seen: std::collections::HashSet<String> = l.iter().map(|x| parse(x)[8].trim().to_owned()).collect();
        (10_000..15_000).all(|i| seen.contains(&format!("record {i}"))).then_some(l)
    });
    let first: Vec<String> = rs.lines();
    let all: Vec<String> = first.iter().chain(second.iter()).map(|l| parse(l)[8].trim().to_owned()).collect();
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for m in &all {
        *counts.entry(m.as_str()).or_default() += 1;
    }
    let missing = (0..15_000).filter(|i| !counts.contains_key(format!("record {i}").as_str())).count();
    let duplicates: usize = counts.values().map(|c| c - 1).sum();
    assert_eq!(missing, 0, "nothing lost");
    eprintln!("outage: {duplicates} duplicates (allowed: delivery is at least once)");
    assert_eq!(metrics.log_forward_dropped.get(), 0);
    fwd.stop();
}

#[test]
fn syslog_over_tls_arrives_once_in_order_and_only_to_a_trusted_receiver() {
    let dir = TempDir::new("fwd-tls");
    let certs = Certs::make(&dir);
    let rs = Rsyslog::start_with(&dir, "tls", free_port(), free_port(), Some(&certs));
    let url = format!("syslog+tls://127.0.0.1:{}", rs.tcp);
    let sink = LogSink::SyslogTls { addr: format!("127.0.0.1:{}", rs.tcp) };

    // Trusting only the public roots, the forwarder must refuse this receiver: nothing is sent,
    // and what was logged waits (counted as buffered) rather than being lost.
    let untrusting = Metrics::new();
    let cfg = forward_config(&url, sink.clone(), LogFormat::Json, &dir.join("spool-untrusting"));
    let fwd = Forwarder::spawn(&cfg, &untrusting, "testhost".into(), &env_none).expect("forwarder");
    fwd.begin();
    let h = fwd.handle();
    for i in 0..50 {
        h.offer(record(i));
    }
    wait_for("the records to wait for a trusted receiver", Duration::from_secs(10), || {
        (untrusting.log_forward_buffered.get() == 50).then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(untrusting.log_forward_sent.get(), 0);
    assert_eq!(untrusting.log_forward_connected.get(), 0);
    assert!(rs.lines().is_empty(), "nothing may reach an unverified receiver: {:?}", rs.lines());
    fwd.stop();

    // With the CA: every record arrives once, in order, as RFC 5424 over TLS.
    let metrics = Metrics::new();
    let mut cfg = forward_config(&url, sink, LogFormat::Json, &dir.join("spool"));
    cfg.tls_ca_file = Some(certs.ca.clone());
    let fwd = Forwarder::spawn(&cfg, &metrics, "testhost".into(), &env_none).expect("forwarder");
    fwd.begin();
    let h = fwd.handle();
    let n = 2_000;
    for i in 0..n {
        h.offer(record(i));
    }
    let lines = wait_for("every record over TLS", Duration::from_secs(30), || {
        let l = rs.lines();
        (l.len() >= n).then_some(l)
    });
    fwd.stop();
    assert_eq!(lines.len(), n, "each record once");
    for (i, line) in lines.iter().enumerate() {
        let f = parse(line);
        assert_eq!(f.len(), 9, "{line}");
        assert_eq!((f[0].as_str(), f[1].as_str(), f[3].as_str(), f[4].as_str()), ("14", "1", "testhost", "mt5bot"));
        assert_eq!(f[8], format!("record {i}"), "in order");
    }
    assert_eq!(metrics.log_forward_sent.get(), n as u64);
    assert_eq!(metrics.log_forward_connected.get(), 1);

    // A CA file that holds no certificate is a clear error at start, not a silent fallback.
    let mut bad = cfg.clone();
    bad.tls_ca_file = Some(dir.write("empty.pem", "not a certificate\n"));
    let Err(err) = Forwarder::spawn(&bad, &Metrics::new(), "testhost".into(), &env_none) else {
        panic!("a CA file without certificates must be refused")
    };
    assert!(err.contains("tls_ca_file") && err.contains("no certificate"), "{err}");
}

#[test]
fn syslog_over_udp_sends_short_records_and_cuts_long_ones() {
    let dir = TempDir::new("fwd-udp");
    let rs = Rsyslog::start(&dir, "u");
    let metrics = Metrics::new();
    let cfg = forward_config(
        &format!("syslog+udp://127.0.0.1:{}", rs.udp),
        LogSink::SyslogUdp { addr: format!("127.0.0.1:{}", rs.udp) },
        LogFormat::Json,
        &dir.join("spool"),
    );
    let fwd = Forwarder::spawn(&cfg, &metrics, "udphost".into(), &env_none).expect("forwarder");
    fwd.begin();
    let h = fwd.handle();
    for i in 0..100 {
        h.offer(record(i));
        std::thread::sleep(Duration::from_millis(2));
    }
    h.offer(ForwardRecord::new(1_790_000_000_000_000_000, log::Level::Warn, "t", &"long ".repeat(1000)));
    let lines = wait_for("UDP records at rsyslog", Duration::from_secs(20), || {
        let l = rs.lines();
        (l.len() >= 101).then_some(l)
    });
    let msgs: Vec<String> = lines.iter().map(|l| parse(l)[8].trim().to_owned()).collect();
    assert!((0..100).all(|i| msgs.contains(&format!("record {i}"))), "short records arrive");
    let long = lines.iter().find(|l| l.contains("long long")).expect("the long record");
    assert!(
        long.trim_end().ends_with(TRUNCATION_MARKER),
        "cut with the marker: {}",
        &long[long.len().saturating_sub(40)..]
    );
    assert!(long.len() < MAX_UDP_MESSAGE + 200);
    assert_eq!(parse(long)[0], "12", "warning severity");
    fwd.stop();
}

#[test]
fn the_daemon_falls_back_to_its_file_then_catches_up_and_a_sigkill_loses_nothing_spooled() {
    let dir = TempDir::new("fwd-daemon");
    let (tcp, udp) = (free_port(), free_port());
    let (cfg, addr) = config_with(
        &dir,
        &format!("engine:\n  status_interval: 1s\nlog_forward:\n  url: syslog://127.0.0.1:{tcp}\n  spool_dir: spool\n  timeout: 1s\n"),
    );
    // rsyslog down at start-up: the daemon says so once, logs to its file, spools.
    let mut first = Daemon::start(&dir, &cfg, &addr, &[]);
    first.wait_metrics(Duration::from_secs(5));
    wait_for("4 status lines", Duration::from_secs(15), || {
        (first.log_file().matches("status: trades=").count() >= 4).then_some(())
    });
    let m = first.metrics();
    assert_eq!(sample(&m, "log_forward_connected"), Some(0.0));
    assert!(sample(&m, "log_forward_spool_bytes").is_some_and(|b| b > 0.0), "spooled");
    let log = first.log_file();
    assert_eq!(log.matches("log forwarding: cannot reach").count(), 1, "said once: {log}");
    let first_pid = first.child.id().to_string();
    first.signal("KILL");
    first.wait_exit(Duration::from_secs(10));

    // The sink comes up; a new daemon sends what the killed one spooled.
    let rs = Rsyslog::start_on(&dir, "d", tcp, udp);
    let mut second = Daemon::start(&dir, &cfg, &addr, &[]);
    second.wait_metrics(Duration::from_secs(5));
    let lines = wait_for("the killed daemon's spooled lines at rsyslog", Duration::from_secs(30), || {
        let l = rs.lines();
        (l.iter().filter(|x| parse(x)[5] == first_pid && x.contains("status: trades=")).count() >= 3).then_some(l)
    });
    let from_first: Vec<&String> = lines.iter().filter(|x| parse(x)[5] == first_pid).collect();
    assert!(from_first.iter().any(|l| l.contains("starting: config")), "its first line too");
    let second_pid = second.child.id().to_string();
    wait_for("the running daemon's own lines", Duration::from_secs(15), || {
        rs.lines().iter().any(|x| parse(x)[5] == second_pid).then_some(())
    });
    assert_eq!(sample(&second.metrics(), "log_forward_connected"), Some(1.0));
    second.signal("TERM");
    assert_eq!(second.wait_exit(Duration::from_secs(15)).code(), Some(0));
}

/// A receiver that checks each request's format strictly; `fail` decides the answer per request.
fn strict(
    format: LogFormat,
    fail: impl Fn(usize, &str) -> Option<(u16, Vec<(String, String)>, String)> + Send + 'static,
) -> Receiver {
    let count = std::sync::atomic::AtomicUsize::new(0);
    Receiver::start_with(Box::new(move |url, body| {
        let n = count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Err(e) = check_format(format, url, body) {
            return (418, vec![], format!("format violation: {e}"));
        }
        fail(n, body).unwrap_or((200, vec![], ok_body(format, body)))
    }))
}

fn ok_body(format: LogFormat, body: &str) -> String {
    if format == LogFormat::Elasticsearch {
        let items: Vec<String> =
            (0..body.lines().count() / 2).map(|_| "{\"create\":{\"status\":201}}".to_owned()).collect();
        return format!("{{\"took\":1,\"errors\":false,\"items\":[{}]}}", items.join(","));
    }
    String::new()
}

/// The messages a request carries, in order.
fn messages(format: LogFormat, body: &str) -> Vec<String> {
    match format {
        LogFormat::Json => body
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).expect("json")["msg"].as_str().expect("msg").to_owned()
            })
            .collect(),
        LogFormat::Elasticsearch => body
            .lines()
            .skip(1)
            .step_by(2)
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).expect("doc")["message"]
                    .as_str()
                    .expect("message")
                    .to_owned()
            })
            .collect(),
        LogFormat::Datadog => serde_json::from_str::<serde_json::Value>(body)
            .expect("array")
            .as_array()
            .expect("array")
            .iter()
            .map(|e| e["message"].as_str().expect("message").to_owned())
            .collect(),
        LogFormat::Loki => {
            let v: serde_json::Value = serde_json::from_str(body).expect("json");
            let mut out: Vec<(String, String)> = Vec::new();
            for s in v["streams"].as_array().expect("streams") {
                for val in s["values"].as_array().expect("values") {
                    let line: serde_json::Value =
                        serde_json::from_str(val[1].as_str().expect("line")).expect("line json");
                    out.push((val[0].as_str().expect("ns").to_owned(), line["msg"].as_str().expect("msg").to_owned()));
                }
            }
            out.sort();
            out.into_iter().map(|(_, m)| m).collect()
        }
    }
}

fn check_format(format: LogFormat, url: &str, body: &str) -> Result<(), String> {
    match format {
        LogFormat::Json => {
            if !url.starts_with("/intake") {
                return Err(format!("url {url}"));
            }
            for l in body.lines() {
                let v: serde_json::Value = serde_json::from_str(l).map_err(|e| format!("line is not JSON: {e}"))?;
                for k in ["ts", "level", "target", "msg", "host", "app"] {
                    v.get(k).filter(|x| x.is_string()).ok_or(format!("missing {k}"))?;
                }
            }
            if !body.ends_with('\n') {
                return Err("NDJSON must end with a newline".into());
            }
        }
        LogFormat::Elasticsearch => {
            if url != "/_bulk" {
                return Err(format!("url {url}"));
            }
            let lines: Vec<&str> = body.lines().collect();
            if lines.len() % 2 != 0 || !body.ends_with('\n') {
                return Err("bulk bodies are action/document pairs ending with a newline".into());
            }
            for pair in lines.chunks(2) {
                let action: serde_json::Value = serde_json::from_str(pair[0]).map_err(|e| e.to_string())?;
                if action["create"]["_index"] != "mt5bot-logs" {
                    return Err(format!("action {action}"));
                }
                let doc: serde_json::Value = serde_json::from_str(pair[1]).map_err(|e| e.to_string())?;
                for k in ["@timestamp", "message", "log.level", "host.name"] {
                    doc.get(k).ok_or(format!("doc lacks {k}"))?;
                }
            }
        }
        LogFormat::Datadog => {
            let v: serde_json::Value = serde_json::from_str(body).map_err(|e| e.to_string())?;
            let a = v.as_array().ok_or("not an array")?;
            if a.is_empty() || a.len() > 1000 || body.len() > 5_000_000 {
                return Err(format!("{} entries, {} bytes", a.len(), body.len()));
            }
            for e in a {
                if e["ddsource"] != "mt5bot" || !e["status"].is_string() || e.to_string().len() > 1_000_000 {
                    return Err(format!("entry {e}"));
                }
            }
        }
        LogFormat::Loki => {
            if url != "/loki/api/v1/push" {
                return Err(format!("url {url}"));
            }
            let v: serde_json::Value = serde_json::from_str(body).map_err(|e| e.to_string())?;
            for s in v["streams"].as_array().ok_or("no streams")? {
                let labels = s["stream"].as_object().ok_or("no labels")?;
                if labels.len() > 3 || labels.keys().any(|k| !["job", "host", "level"].contains(&k.as_str())) {
                    return Err(format!("labels {labels:?} are not low-cardinality"));
                }
                for val in s["values"].as_array().ok_or("no values")? {
                    let ns = val[0].as_str().ok_or("timestamp must be a string")?;
                    if ns.len() != 19 || !ns.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(format!("{ns} is not nanoseconds"));
                    }
                    val[1].as_str().ok_or("line must be a string")?;
                }
            }
        }
    }
    Ok(())
}

fn run_http(
    format: LogFormat,
    path: &str,
    receiver: &Receiver,
    n: usize,
    env: &dyn Fn(&str) -> Option<String>,
) -> Metrics {
    let dir = TempDir::new("fwd-http");
    let metrics = Metrics::new();
    let url = format!("http://{}{path}", receiver.addr);
    let cfg = forward_config(&url, LogSink::Http { url: url.clone() }, format, &dir.join("spool"));
    let fwd = Forwarder::spawn(&cfg, &metrics, "h1".into(), env).expect("forwarder");
    fwd.begin();
    for i in 0..n {
        fwd.handle().offer(record(i));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline && metrics.log_forward_sent.get() + metrics.log_forward_dropped.get() < n as u64 {
        std::thread::sleep(Duration::from_millis(50));
    }
    fwd.stop();
    metrics
}

#[test]
fn every_http_format_is_well_formed_and_complete() {
    for (format, path) in [
        (LogFormat::Json, "/intake"),
        (LogFormat::Elasticsearch, ""),
        (LogFormat::Datadog, "/api/v2/logs"),
        (LogFormat::Loki, ""),
    ] {
        let rx = strict(format, |_, _| None);
        let env = |k: &str| (k == "DD_API_KEY").then(|| "dd-secret".to_owned());
        let m = run_http(format, path, &rx, 1_500, &env);
        let got = rx.received();
        let msgs: Vec<String> = got.iter().flat_map(|(_, b)| messages(format, b)).collect();
        assert_eq!(msgs.len(), 1_500, "{format:?}");
        assert!(msgs.iter().enumerate().all(|(i, m)| *m == format!("record {i}")), "{format:?} in order");
        assert_eq!(m.log_forward_sent.get(), 1_500, "{format:?}");
        assert!(got.len() >= 3, "{format:?} batched by batch_records: {} requests", got.len());
    }
}

#[test]
fn a_receiver_that_answers_503_then_200_gets_everything() {
    let rx =
        strict(LogFormat::Json, |n, _| (n < 3).then(|| (503, vec![("Retry-After".into(), "1".into())], "busy".into())));
    let m = run_http(LogFormat::Json, "/intake", &rx, 1_000, &env_none);
    let msgs: Vec<String> = rx.received().iter().skip(3).flat_map(|(_, b)| messages(LogFormat::Json, b)).collect();
    assert_eq!(msgs.len(), 1_000);
    assert!(msgs.iter().enumerate().all(|(i, m)| *m == format!("record {i}")));
    assert!(m.log_forward_retries.get() >= 3);
    assert_eq!(m.log_forward_dropped.get(), 0);
}

#[test]
fn a_receiver_that_answers_400_gets_no_retry_storm() {
    let rx = strict(LogFormat::Json, |_, _| Some((400, vec![], "{\"error\":\"bad schema\"}".into())));
    let m = run_http(LogFormat::Json, "/intake", &rx, 1_000, &env_none);
    let sent: Vec<String> = rx.received().iter().flat_map(|(_, b)| messages(LogFormat::Json, b)).collect();
    assert_eq!(sent.len(), 1_000, "each record sent once, never again");
    assert!(rx.received().len() <= 10, "{} requests", rx.received().len());
    assert_eq!(m.log_forward_dropped.get(), 1_000, "refused records are counted");
    assert_eq!(m.log_forward_retries.get(), 0);
}

#[test]
fn elasticsearch_item_errors_resend_only_those_items() {
    // The first time a record ending in 7 is seen it is refused with 429; anything else is taken.
    let seen = std::sync::Mutex::new(std::collections::HashSet::new());
    let rx = Receiver::start_with(Box::new(move |url, body| {
        if let Err(e) = check_format(LogFormat::Elasticsearch, url, body) {
            return (418, vec![], e);
        }
        let msgs = messages(LogFormat::Elasticsearch, body);
        let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
        let items: Vec<String> = msgs
            .iter()
            .map(|m| {
                if m.ends_with('7') && seen.insert(m.clone()) {
                    "{\"create\":{\"status\":429,\"error\":{\"type\":\"es_rejected_execution_exception\"}}}".to_owned()
                } else {
                    "{\"create\":{\"status\":201}}".to_owned()
                }
            })
            .collect();
        let errors = items.iter().any(|i| i.contains("429"));
        (200, vec![], format!("{{\"took\":1,\"errors\":{errors},\"items\":[{}]}}", items.join(",")))
    }));
    let m = run_http(LogFormat::Elasticsearch, "", &rx, 1_000, &env_none);
    let all: Vec<String> = rx.received().iter().flat_map(|(_, b)| messages(LogFormat::Elasticsearch, b)).collect();
    let sevens = (0..1_000).filter(|i| i % 10 == 7).count();
    assert_eq!(all.len(), 1_000 + sevens, "only the refused items are sent again");
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for a in &all {
        *counts.entry(a.as_str()).or_default() += 1;
    }
    assert!((0..1_000).all(|i| counts.get(format!("record {i}").as_str()) == Some(&if i % 10 == 7 { 2 } else { 1 })));
    assert_eq!(m.log_forward_sent.get(), 1_000);
}

#[test]
fn headers_come_from_config_and_secrets_from_the_environment() {
    let rx = Receiver::start();
    let dir = TempDir::new("fwd-headers");
    let metrics = Metrics::new();
    let url = format!("http://{}/intake", rx.addr);
    let mut cfg = forward_config(&url, LogSink::Http { url: url.clone() }, LogFormat::Json, &dir.join("spool"));
    cfg.header_env = vec![("Authorization".into(), "LOG_TOKEN".into())];
    let missing = Forwarder::spawn(&cfg, &metrics, "h".into(), &env_none).expect_err("missing env");
    assert!(missing.contains("LOG_TOKEN"), "{missing}");
    let env = |k: &str| (k == "LOG_TOKEN").then(|| "Bearer s3cret".to_owned());
    let fwd = Forwarder::spawn(&cfg, &metrics, "h".into(), &env).expect("forwarder");
    fwd.begin();
    fwd.handle().offer(record(0));
    wait_for("a request", Duration::from_secs(10), || (!rx.received().is_empty()).then_some(()));
    fwd.stop();
    let mut dd = forward_config(&url, LogSink::Http { url: url.clone() }, LogFormat::Datadog, &dir.join("spool2"));
    dd.header_env.clear();
    assert!(Forwarder::spawn(&dd, &metrics, "h".into(), &env_none).expect_err("no DD key").contains("DD_API_KEY"));
}

#[test]
fn a_sink_that_never_reads_holds_no_more_than_the_configured_bounds() {
    let dir = TempDir::new("fwd-stuck");
    // Accepts connections and never reads: the TCP window fills, writes time out.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let _keep = std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().flatten().take(64) {
            held.push(s);
        }
    });
    let metrics = Metrics::new();
    let mut cfg = forward_config(
        &format!("syslog://{addr}"),
        LogSink::SyslogTcp { addr: addr.clone() },
        LogFormat::Json,
        &dir.join("spool"),
    );
    cfg.buffer_records = 1_000;
    cfg.spool_max_bytes = 4 << 20;
    cfg.timeout = Duration::from_millis(500);
    let fwd = Forwarder::spawn(&cfg, &metrics, "h".into(), &env_none).expect("forwarder");
    fwd.begin();
    let h = fwd.handle();
    // A blocking offer would hang here for good (the sink never reads): getting past the loop
    // is the proof; how fast it goes is the logging bench's business, not this test's.
    let big = "x".repeat(400);
    for i in 0..200_000 {
        h.offer(ForwardRecord::new(i, log::Level::Info, "t", &big));
    }
    std::thread::sleep(Duration::from_secs(3));
    let spool = metrics.log_forward_spool_bytes.get() as u64;
    assert!(spool <= (4 << 20) + (1 << 20), "spool within its cap: {spool}");
    let on_disk: u64 = std::fs::read_dir(dir.join("spool"))
        .expect("spool dir")
        .flatten()
        .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
        .sum();
    assert!(on_disk <= (4 << 20) + (1 << 20), "files within the cap: {on_disk}");
    let accounted =
        metrics.log_forward_sent.get() + metrics.log_forward_dropped.get() + metrics.log_forward_buffered.get() as u64;
    assert!(accounted <= 200_000 + 10_000, "{accounted}");
    assert!(metrics.log_forward_dropped.get() > 0, "the overflow is counted");
    fwd.stop();
}

#[test]
fn gzip_bodies_decompress_to_the_same_records() {
    use std::io::Read;
    let rx = Receiver::start();
    let dir = TempDir::new("fwd-gzip");
    let metrics = Metrics::new();
    let url = format!("http://{}/intake", rx.addr);
    let mut cfg = forward_config(&url, LogSink::Http { url: url.clone() }, LogFormat::Json, &dir.join("spool"));
    cfg.gzip = true;
    let fwd = Forwarder::spawn(&cfg, &metrics, "h".into(), &env_none).expect("forwarder");
    fwd.begin();
    for i in 0..300 {
        fwd.handle().offer(record(i));
    }
    wait_for("300 records sent", Duration::from_secs(20), || (metrics.log_forward_sent.get() == 300).then_some(()));
    fwd.stop();
    let mut msgs = Vec::new();
    for (headers, bytes) in rx.raw.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        assert!(headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("Content-Encoding") && v == "gzip"), "{headers:?}");
        let mut text = String::new();
        flate2::read::GzDecoder::new(&bytes[..]).read_to_string(&mut text).expect("a gzip body");
        check_format(LogFormat::Json, "/intake", &text).expect("NDJSON inside");
        msgs.extend(messages(LogFormat::Json, &text));
    }
    assert_eq!(msgs, (0..300).map(|i| format!("record {i}")).collect::<Vec<_>>());
}

/// `user:password@` in an HTTP sink's URL becomes basic credentials: the request goes to the host
/// (not to "user:password@host"), carries `Authorization: Basic`, and the address shown nowhere
/// holds the password.
#[test]
fn credentials_in_the_url_travel_as_basic_auth_and_are_never_shown() {
    let rx = Receiver::start();
    let dir = TempDir::new("fwd-userinfo");
    let metrics = Metrics::new();
    let url = format!("http://elastic:hunter2-pw@{}/intake", rx.addr);
    let cfg = forward_config(&url, LogSink::Http { url: url.clone() }, LogFormat::Json, &dir.join("spool"));
    let fwd = Forwarder::spawn(&cfg, &metrics, "h".into(), &env_none).expect("forwarder");
    fwd.begin();
    fwd.handle().offer(record(0));
    wait_for("a request", Duration::from_secs(10), || (!rx.received().is_empty()).then_some(()));
    fwd.stop();
    let raw = rx.raw.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let auth = raw[0].0.iter().find(|(k, _)| k.eq_ignore_ascii_case("authorization")).map(|(_, v)| v.clone());
    assert_eq!(auth, Some(format!("Basic {}", mt5bot::support::encoding::base64(b"elastic:hunter2-pw"))));

    // Shown by config check: redacted. A syslog URL with credentials is refused without echoing them.
    let shown = dir.write("c.yaml", &format!("log_forward:\n  url: {url}\ninflux:\n  enabled: true\n  url: https://u:influx-pw@db.example\n  org: o\n  bucket: b\n"));
    let out = std::process::Command::new(BIN).args(["config", "check", "--config"]).arg(&shown).output().expect("run");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    assert!(!text.contains("hunter2-pw") && !text.contains("influx-pw"), "{text}");
    assert!(text.contains("http://***@") && text.contains("https://***@db.example"), "{text}");
    let bad = dir.write("d.yaml", "log_forward:\n  url: syslog://admin:syslog-pw@relay.example:514\n");
    let out = std::process::Command::new(BIN).args(["config", "check", "--config"]).arg(&bad).output().expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(err.contains("takes no user:password@") && !err.contains("syslog-pw"), "{err}");
}
