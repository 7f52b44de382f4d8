//! TLS and basic authentication on the metrics listener (`metrics.web_config`, the Prometheus
//! exporter toolkit's file): a real Prometheus scrapes over https with basic auth, a wrong password
//! and plain HTTP are refused, client certificates are required when the file says so, and a bad
//! file stops the start without repeating a key. Certificates come from the openssl CLI, requests
//! from curl (both real clients).

mod support;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::*;

const PASSWORD: &str = "scrape-pw-4f1c";
const API_KEY: &str = "web-tls-api-key-0123456789";

/// `mt5bot hash-password --cost 4` with `input` on stdin.
fn hash_password(input: &str) -> std::process::Output {
    let mut child = Command::new(BIN)
        .args(["hash-password", "--cost", "4"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start hash-password");
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write password");
    child.wait_with_output().expect("hash-password")
}

fn bcrypt(password: &str) -> String {
    let out = hash_password(password);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let hash = String::from_utf8(out.stdout).expect("utf-8").trim().to_owned();
    assert!(hash.starts_with("$2") && hash.len() == 60, "{hash}");
    assert!(!hash.contains(password));
    hash
}

/// `curl` over https; returns (HTTP status or 0 when no answer came, body).
fn curl(ca: &Path, url: &str, extra: &[&str]) -> (u16, String) {
    let out = Command::new(require("curl"))
        .args(["-sS", "--max-time", "5", "--cacert"])
        .arg(ca)
        .args(extra)
        .args(["-w", "\n%{http_code}", url])
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

fn start_tls_daemon(dir: &TempDir, web: &str) -> (Daemon, String) {
    let web = dir.write("web.yml", web);
    let addr = format!("127.0.0.1:{}", free_port());
    let cfg = dir.write(
        "config.yaml",
        &format!(
            "metrics:\n  listen: {addr}\n  web_config: {}\n  max_connections: 16\nlogging:\n  stderr: true\n",
            web.display()
        ),
    );
    let d = Daemon::start(dir, &cfg, &addr, &[("API_KEY", API_KEY)]);
    (d, addr)
}

#[test]
fn prometheus_scrapes_over_tls_with_basic_auth_and_a_wrong_password_or_plain_http_is_refused() {
    let dir = TempDir::new("web-tls");
    let certs = Certs::make(&dir);
    let web = format!(
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\nbasic_auth_users:\n  prometheus: {}\n",
        bcrypt(PASSWORD)
    );
    let (mut d, addr) = start_tls_daemon(&dir, &web);
    let url = format!("https://{addr}/metrics");
    let auth = format!("prometheus:{PASSWORD}");
    let body = wait_for("mt5bot to serve https with basic auth", Duration::from_secs(15), || {
        if let Ok(Some(s)) = d.child.try_wait() {
            panic!("mt5bot exited with {s}: {}", d.stderr());
        }
        let (code, body) = curl(&certs.ca, &url, &["-u", &auth]);
        (code == 200).then_some(body)
    });
    assert!(body.contains("trade_count"), "{body}");

    // Without credentials, or with wrong ones: 401 with the challenge; the API takes its key.
    let (code, _) = curl(&certs.ca, &url, &[]);
    assert_eq!(code, 401);
    let (code, _) = curl(&certs.ca, &url, &["-u", "prometheus:wrong"]);
    assert_eq!(code, 401);
    let (code, _) = curl(&certs.ca, &format!("https://{addr}/healthz"), &["-u", "nobody:x"]);
    assert_eq!(code, 401, "every path but the API needs basic auth");
    let headers = Command::new(require("curl"))
        .args(["-sS", "-o", "/dev/null", "-D", "-", "--cacert"])
        .arg(&certs.ca)
        .arg(&url)
        .output()
        .expect("curl");
    let headers = String::from_utf8_lossy(&headers.stdout).to_ascii_lowercase();
    assert!(headers.contains("www-authenticate: basic realm=\"mt5bot\""), "{headers}");
    let bearer = format!("Authorization: Bearer {API_KEY}");
    let (code, status) = curl(&certs.ca, &format!("https://{addr}/api/v1/status"), &["-H", &bearer]);
    assert_eq!(code, 200, "{status}");
    assert!(status.contains("\"trading\"") && status.contains("\"venue\""), "{status}");

    // Plain HTTP on the TLS port gets no HTTP answer, and is counted.
    let mut plain = std::net::TcpStream::connect(&addr).expect("connect");
    plain.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    plain.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(!answer.starts_with(b"HTTP/"), "plain HTTP was answered: {:?}", String::from_utf8_lossy(&answer));

    // Garbage and idle clients by the dozen (max_connections 16) do not keep a scrape out.
    let mut idle = Vec::new();
    for i in 0..40u8 {
        let mut s = std::net::TcpStream::connect(&addr).expect("connect");
        if i % 2 == 0 {
            let _ = s.write_all(&[0x16, 0x03, 0x01, 0xff, 0xff, i, i, i]);
        }
        idle.push(s);
    }
    let (code, body) = curl(&certs.ca, &url, &["-u", &auth]);
    assert_eq!(code, 200, "a scrape gets in past idle and half-handshaken clients");
    assert!(
        sample(&body, "http_connections_closed_total{reason=\"tls\"}").unwrap_or(0.0) >= 1.0,
        "TLS failures are counted"
    );
    assert!(sample(&body, "http_connections_closed_total{reason=\"evicted\"}").unwrap_or(0.0) >= 1.0);
    drop(idle);

    // A real Prometheus: the right password scrapes, a wrong one and plain http do not.
    let ca = certs.ca.display();
    let prom = Prometheus::start(
        &dir,
        &format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n\
             - job_name: tls\n    scheme: https\n    tls_config:\n      ca_file: {ca}\n    basic_auth:\n      username: prometheus\n      password: {PASSWORD}\n    static_configs:\n      - targets: ['{addr}']\n\
             - job_name: wrong\n    scheme: https\n    tls_config:\n      ca_file: {ca}\n    basic_auth:\n      username: prometheus\n      password: nope\n    static_configs:\n      - targets: ['{addr}']\n\
             - job_name: plain\n    static_configs:\n      - targets: ['{addr}']\n"
        )
        .replace("\n- job_name", "\n  - job_name"),
    );
    wait_for("Prometheus to scrape trade_count over TLS", Duration::from_secs(30), || {
        prom.query("trade_count{job=\"tls\"} > 0").into_iter().next()
    });
    let targets = wait_for("both refused jobs to have been tried", Duration::from_secs(30), || {
        let r = get(&prom.addr, "/api/v1/targets").ok()?;
        let v: serde_json::Value = serde_json::from_str(&r.body).ok()?;
        let active = v["data"]["activeTargets"].as_array()?.clone();
        let tried = |job: &str| active.iter().any(|t| t["labels"]["job"] == job && t["health"] == "down");
        (tried("wrong") && tried("plain")).then_some(active)
    });
    let error = |job: &str| {
        targets.iter().find(|t| t["labels"]["job"] == job).map(|t| t["lastError"].to_string()).unwrap_or_default()
    };
    assert!(error("wrong").contains("401"), "{}", error("wrong"));
    assert!(!error("plain").is_empty(), "plain http is refused");
    assert_eq!(prom.query("up{job=\"tls\"} == 1").len(), 1);

    // The bot's file_sd target tells Prometheus to scrape it over https.
    let target =
        Command::new(BIN).args(["config", "target", "--config"]).arg(dir.join("config.yaml")).output().expect("target");
    assert!(String::from_utf8_lossy(&target.stdout).contains("\"__scheme__\": \"https\""), "{target:?}");

    // A renewed certificate (here from another CA) is served without a restart.
    let renewed = Certs::make_named(&dir, "renewed-");
    for (from, to) in [(&renewed.key, "server.key"), (&renewed.cert, "server.pem")] {
        let tmp = dir.join(&format!("{to}.tmp"));
        std::fs::copy(from, &tmp).expect("copy");
        std::fs::rename(&tmp, dir.join(to)).expect("rename");
    }
    wait_for("the renewed certificate to be served", Duration::from_secs(20), || {
        (curl(&renewed.ca, &url, &["-u", &auth]).0 == 200).then_some(())
    });
    assert_eq!(curl(&certs.ca, &url, &["-u", &auth]).0, 0, "the old certificate is no longer served");

    let log = d.log_file() + &d.stderr();
    assert!(log.contains("TLS files changed; new connections get the new certificate"), "{log}");
    assert!(!log.contains(PASSWORD), "the password is never logged");
    assert!(log.contains("TLS on, basic authentication for 1 user(s)"), "{log}");
    assert!(log.contains(&format!("metrics on https://{addr}/metrics")), "{log}");
}

#[test]
fn client_certificates_are_required_when_the_web_config_says_so() {
    let dir = TempDir::new("web-mtls");
    let certs = Certs::make(&dir);
    let (client, client_key) = certs.sign(&dir, "client", "prometheus", "clientAuth");
    let stranger = Certs::make_named(&dir, "other-");
    let (foreign, foreign_key) = stranger.sign(&dir, "foreign", "prometheus", "clientAuth");
    let web = "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  client_auth_type: \
               RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n";
    let (mut d, addr) = start_tls_daemon(&dir, web);
    let url = format!("https://{addr}/metrics");
    let with_cert = |cert: &Path, key: &Path| {
        curl(&certs.ca, &url, &["--cert", &cert.display().to_string(), "--key", &key.display().to_string()])
    };
    wait_for("mt5bot to serve a client with a certificate", Duration::from_secs(15), || {
        if let Ok(Some(s)) = d.child.try_wait() {
            panic!("mt5bot exited with {s}: {}", d.stderr());
        }
        (with_cert(&client, &client_key).0 == 200).then_some(())
    });
    assert_eq!(curl(&certs.ca, &url, &[]).0, 0, "no certificate: no answer");
    assert_eq!(with_cert(&foreign, &foreign_key).0, 0, "a certificate from another CA: no answer");

    let prom = Prometheus::start(
        &dir,
        &format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: mtls\n    scheme: https\n    tls_config:\n      ca_file: {}\n      cert_file: {}\n      key_file: {}\n    static_configs:\n      - targets: ['{addr}']\n",
            certs.ca.display(),
            client.display(),
            client_key.display()
        ),
    );
    wait_for("Prometheus to scrape with its client certificate", Duration::from_secs(30), || {
        prom.query("trade_count{job=\"mtls\"} > 0").into_iter().next()
    });
}

#[test]
fn hash_password_refuses_what_bcrypt_would_silently_cut() {
    for (input, says) in [("", "no password"), (&"x".repeat(73)[..], "at most 72")] {
        let out = hash_password(input);
        assert_eq!(out.status.code(), Some(2), "{input:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says) && !err.contains("xxxx"), "{err}");
        assert!(out.stdout.is_empty());
    }
    assert_eq!(bcrypt(&"y".repeat(72)).len(), 60, "72 bytes are taken");
}

#[test]
fn a_bad_web_config_stops_the_start_and_never_shows_a_key() {
    let dir = TempDir::new("web-bad");
    let certs = Certs::make(&dir);
    let key_text = std::fs::read_to_string(&certs.key).expect("key");
    let key_line = key_text.lines().nth(1).expect("a base64 line").to_owned();
    let copy = |from: &Path, to: &str, mode: u32| {
        std::fs::copy(from, dir.join(to)).expect("copy");
        std::fs::set_permissions(dir.join(to), std::os::unix::fs::PermissionsExt::from_mode(mode)).expect("chmod");
    };
    copy(&certs.key, "loose.key", 0o644);
    copy(&certs.ca, "not-a-key.pem", 0o600);
    let cases: Vec<(String, &str)> = vec![
        ("tls_server_config:\n  cert_file: server.pem\n  key_file: loose.key\n".into(), "chmod 600"),
        ("tls_server_config:\n  cert_file: server.key\n  key_file: server.key\n".into(), "no certificate"),
        ("tls_server_config:\n  cert_file: server.pem\n  key_file: not-a-key.pem\n".into(), "no private key"),
        ("tls_server_config:\n  cert_file: server.pem\n  key_file: other.key\n".into(), "No such file"),
        ("basic_auth_users:\n  prometheus: hunter2-in-plain\n".into(), "not a bcrypt hash"),
        (key_text.clone(), "not a web config"),
    ];
    for (web, says) in cases {
        let (mut d, _) = start_tls_daemon(&dir, &web);
        let status = d.wait_exit(Duration::from_secs(10));
        let err = d.stderr();
        assert_eq!(status.code(), Some(2), "{web}: {err}");
        assert!(err.contains(says), "{web}: {err}");
        assert!(!err.contains(&key_line) && !err.contains("hunter2"), "{err}");
    }
    // `config check` reads the files as the daemon does.
    let web = dir.write("web.yml", "tls_server_config:\n  cert_file: server.pem\n  key_file: loose.key\n");
    let cfg = dir.write("check.yaml", &format!("metrics:\n  web_config: {}\n", web.display()));
    let out = Command::new(BIN).args(["config", "check", "--config"]).arg(&cfg).output().expect("config check");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("chmod 600"));
}
