//! The operator's console (`/`): its headers and data endpoint, and the page driven in Debian's
//! headless Chromium through chromedriver and Selenium (`tests/console/drive.py`) against a running
//! paper daemon and a real Prometheus: no console errors, the chart gets points, the firing alert is
//! listed, a wrong key shows an error, halt and
//! resume change what the page shows and the daemon's state, the figures equal `/api/v1/status`,
//! and the screenshots (kept in the test folder) are not blank.

mod support;

use std::process::Command;
use std::time::Duration;

use support::*;

const KEY: &str = "console-test-api-key-0123456789abcdef";

#[test]
fn the_console_is_served_with_strict_headers_and_its_data_without_the_engine_in_the_way() {
    let dir = TempDir::new("console-http");
    let (cfg, addr) = config_with(&dir, "");
    let mut d = Daemon::start(&dir, &cfg, &addr, &[("API_KEY", KEY)]);
    d.wait_metrics(Duration::from_secs(10));
    for path in ["/", "/ui/", "/ui/console.js", "/ui/console.css"] {
        let r = get(&addr, path).expect("GET");
        assert_eq!(r.status, 200, "{path}");
        let csp = r.header("content-security-policy").unwrap_or_default();
        assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert_eq!(r.header("x-frame-options"), Some("DENY"), "{path}");
    }
    assert!(get(&addr, "/").expect("GET").body.contains("<script src=\"/ui/console.js\""));
    assert_eq!(get(&addr, "/ui/nothing").expect("GET").status, 404);
    assert_eq!(http("POST", &addr, "/", b"").expect("POST").status, 405);
    // The data: the engine's status once it answered, and equity points every 2 s.
    let data = wait_for("the console's data to hold a status and two points", Duration::from_secs(15), || {
        let r = get(&addr, "/ui/data").ok()?;
        let v: serde_json::Value = serde_json::from_str(&r.body).ok()?;
        (v["status"]["trading"]["state"] == "active" && v["equity_history"]["points"].as_array()?.len() >= 2)
            .then_some(v)
    });
    assert_eq!(data["status"]["venue"]["name"], "paper");
    // Positions carry their open PnL in money: equity is the balance plus their sum.
    let s = &data["status"];
    let open: f64 =
        s["positions"].as_array().expect("positions").iter().map(|p| p["open_pnl"].as_f64().expect("open_pnl")).sum();
    let (equity, balance) =
        (s["equity"]["equity"].as_f64().expect("equity"), s["equity"]["balance"].as_f64().expect("balance"));
    assert!((equity - balance - open).abs() < 1e-6, "equity {equity} = balance {balance} + open {open}");
    for p in s["positions"].as_array().expect("positions") {
        assert_eq!(p["mark"].is_number(), p["qty"].as_f64() != Some(0.0), "a mark exactly when open: {p}");
    }
    let fills = s["recent_fills"].as_array().expect("recent_fills").len() as u64;
    assert_eq!(fills, s["trades"].as_u64().expect("trades").min(20), "the last fills, at most 20: {s}");
    assert!(data["status_age_ms"].as_u64().is_some_and(|a| a < 5_000), "{data}");
    let last = data["equity_history"]["points"].as_array().and_then(|p| p.last()).and_then(|p| p[0].as_f64());
    let since = get(&addr, &format!("/ui/data?since={}", last.expect("a point"))).expect("GET");
    let newer: serde_json::Value = serde_json::from_str(&since.body).expect("JSON");
    assert!(newer["equity_history"]["points"].as_array().is_some_and(|p| p.len() <= 1), "only newer points: {newer}");
    assert_eq!(
        sample(&d.metrics(), "http_requests_total{code=\"200\",handler=\"console\"}").map(|v| v >= 6.0),
        Some(true)
    );
}

#[test]
fn an_operator_drives_the_console_in_a_real_browser() {
    let python = std::path::Path::new("/usr/bin/python3");
    require("chromium");
    require("chromedriver");
    let dir = TempDir::new("console-browser");
    // A real Prometheus with an alert that always fires, for the page's alert list.
    dir.write(
        "rules.yml",
        "groups:\n  - name: console\n    rules:\n      - alert: ConsoleTestAlert\n        expr: vector(1)\n        labels:\n          severity: warning\n",
    );
    let prom = Prometheus::start(
        &dir,
        &format!("global:\n  evaluation_interval: 1s\nrule_files:\n  - {}\n", dir.join("rules.yml").display()),
    );
    wait_for("Prometheus to fire the test alert", Duration::from_secs(30), || {
        prom.query("ALERTS{alertstate=\"firing\",alertname=\"ConsoleTestAlert\"}").into_iter().next()
    });
    let query_url = format!("http://{}/api/v1/query", prom.addr);
    let (cfg, addr) = config_with(&dir, "");
    let mut d = Daemon::start(&dir, &cfg, &addr, &[("API_KEY", KEY), ("PROM_QUERY_URL", &query_url)]);
    d.wait_metrics(Duration::from_secs(10));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/console/drive.py");
    let out = Command::new(python)
        .arg(script)
        .arg(format!("http://{addr}"))
        .arg(KEY)
        .arg(dir.path())
        .output()
        .expect("run the browser driver (python3-selenium)");
    let said = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && said.contains("OK "), "the browser run failed:\n{said}");
    for shot in ["console.png", "halted.png"] {
        let len = std::fs::metadata(dir.join(shot)).map(|m| m.len()).unwrap_or(0);
        assert!(len > 10_000, "{shot}: {len} bytes");
    }
    // Every action is logged with the client's address.
    let log = d.log_file();
    assert!(log.contains("control API: halt from 127.0.0.1 done"), "{log}");
    assert!(log.contains("control API: resume from 127.0.0.1 done"), "{log}");
    if let Ok(keep) = std::env::var("MT5BOT_CONSOLE_SCREENSHOT") {
        std::fs::copy(dir.join("halted.png"), keep).expect("copy the screenshot");
    }
}
