//! Prometheus' instant query API (`GET /api/v1/query`), for the nightly report and the console's
//! active alerts; and the thread that keeps the firing alerts for the console.
//!
//! `PROM_QUERY_URL` is `SCHEME://HOST:PORT/api/v1/query`; credentials in it travel as basic auth,
//! never in the address, and are redacted wherever the URL is shown.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::urls::{basic_auth, redact, split_userinfo};

/// Runs one instant query; the `data.result` array.
pub fn query(agent: &ureq::Agent, url: &str, q: &str) -> Result<Vec<Value>, String> {
    let (base, userinfo) = split_userinfo(url);
    let mut req = agent.get(&base).query("query", q);
    if let Some(u) = &userinfo {
        req = req.header("Authorization", basic_auth(u));
    }
    let shown = redact(url);
    let mut resp = req.call().map_err(|e| format!("cannot query {shown}: {}", scrub(&e.to_string(), &userinfo)))?;
    let text = resp.body_mut().with_config().limit(4 << 20).read_to_string().map_err(|e| e.to_string())?;
    let v: Value = serde_json::from_str(&text).map_err(|e| format!("not a Prometheus answer from {shown}: {e}"))?;
    if v["status"] != "success" {
        return Err(format!("query {q:?} failed: {}", v["error"]));
    }
    Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
}

fn scrub(text: &str, userinfo: &Option<String>) -> String {
    match userinfo {
        Some(u) if !u.is_empty() => text.replace(u.as_str(), "***"),
        _ => text.to_owned(),
    }
}

/// How often the firing alerts are asked for.
pub const ALERTS_EVERY: Duration = Duration::from_secs(15);
/// The query: what fires now.
pub const FIRING: &str = "ALERTS{alertstate=\"firing\"}";

/// The firing alerts as last seen, shared with the helper thread (which only ever `try_lock`s).
#[derive(Debug, Clone, Default)]
pub struct AlertsView(Arc<Mutex<Value>>);

impl AlertsView {
    /// The last answer (`{"source", "alerts": [...], "checked_unix_ms"}` or `{"error"}`), when the
    /// lock is free; None while the watcher is writing (the caller shows the previous one).
    pub fn peek(&self) -> Option<Value> {
        self.0.try_lock().ok().map(|v| v.clone())
    }
}

/// The thread asking Prometheus for the firing alerts.
#[derive(Debug)]
pub struct AlertsWatch {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl AlertsWatch {
    pub fn spawn(url: String, view: AlertsView) -> std::io::Result<AlertsWatch> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let handle = std::thread::Builder::new().name("mt5bot-alerts".into()).spawn(move || {
            let agent = crate::support::http::agent("console alerts", Duration::from_secs(5));
            let mut failing = false;
            while !stopping.load(Ordering::Relaxed) {
                let value = match query(&agent, &url, FIRING) {
                    Ok(rows) => {
                        if failing {
                            log::info!("console: Prometheus answers again at {}", redact(&url));
                            failing = false;
                        }
                        let mut alerts: Vec<Value> = rows.iter().map(|r| r["metric"].clone()).collect();
                        alerts.sort_by_key(|m| m["alertname"].as_str().unwrap_or_default().to_owned());
                        json!({
                            "source": redact(&url),
                            "alerts": alerts,
                            "checked_unix_ms": crate::support::timefmt::unix_nanos() / 1_000_000,
                        })
                    }
                    Err(e) => {
                        if !failing {
                            log::warn!("console: cannot read the firing alerts: {e}");
                            failing = true;
                        }
                        json!({ "source": redact(&url), "error": e })
                    }
                };
                if let Ok(mut v) = view.0.lock() {
                    *v = value;
                }
                let until = Instant::now() + ALERTS_EVERY;
                while !stopping.load(Ordering::Relaxed) && Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        })?;
        Ok(AlertsWatch { stop, handle: Some(handle) })
    }

    /// Stops the thread (within a query's timeout).
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
