//! The operator's console: one page under `/` (and `/ui/`), its script and style under `/ui/`, all
//! embedded in the binary (no build step, no fetch beyond this listener), and its data at
//! `/ui/data`.
//!
//! The data is served from a snapshot the helper thread keeps: once a second it asks the engine
//! for its status (one question at a time, through the same bounded command channel as the
//! control API) and keeps the answer with an equity history of the last hours. So a read never
//! waits for the engine, and any number of open consoles cost the engine one status a second.
//!
//! Reads need no key (they show what `/metrics` shows; with `metrics.web_config`'s basic auth they
//! need that). Actions are the control API's own calls (`/api/v1/halt` ...), made by the page with
//! `Authorization: Bearer` from a key the operator types once and the page keeps in
//! `sessionStorage`: never in a URL or a cookie, so another site cannot make the browser act.

use std::collections::VecDeque;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::domain::types::DropReason;
use crate::link::{Command, CommandSender, ControlAnswer, ControlRequest};
use crate::support::timefmt::unix_nanos;

use super::metrics::Metrics;
use super::prom_query::AlertsView;
use super::server::Response;

const PAGE: &str = include_str!("console/index.html");
const SCRIPT: &str = include_str!("console/console.js");
const STYLE: &str = include_str!("console/console.css");

/// How often the engine is asked for its status.
pub const REFRESH: Duration = Duration::from_secs(1);
/// How often a point is added to the equity history, and how many are kept (four hours).
pub const SAMPLE_EVERY: Duration = Duration::from_secs(2);
pub const HISTORY_POINTS: usize = 7200;
/// A question the engine has not answered within this is given up (and asked again).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// Headers every console answer carries: no framing by another site (the actions), a strict
/// content policy (nothing but this listener, no inline script), no caching of data.
fn guarded(resp: Response) -> Response {
    resp.with_header(
        "Content-Security-Policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    )
    .with_header("X-Frame-Options", "DENY")
    .with_header("X-Content-Type-Options", "nosniff")
    .with_header("Referrer-Policy", "no-referrer")
    .with_header("Cache-Control", "no-store")
}

/// One point of the equity history: unix milliseconds, equity, balance, peak equity.
type Point = [f64; 4];

/// The console's state on the helper thread.
#[derive(Debug)]
pub struct Console {
    commands: CommandSender,
    metrics: Metrics,
    started: Instant,
    status: Option<Value>,
    /// When the status was last answered.
    answered: Option<Instant>,
    asking: Option<(Receiver<ControlAnswer>, Instant)>,
    history: VecDeque<Point>,
    next_sample: Instant,
    /// The firing alerts from `PROM_QUERY_URL`'s Prometheus, when it is set.
    alerts_view: Option<AlertsView>,
    alerts: Value,
}

impl Console {
    pub fn new(commands: CommandSender, metrics: Metrics, alerts_view: Option<AlertsView>) -> Console {
        let now = Instant::now();
        Console {
            commands,
            metrics,
            started: now,
            status: None,
            answered: None,
            asking: None,
            history: VecDeque::with_capacity(HISTORY_POINTS),
            next_sample: now,
            alerts_view,
            alerts: Value::Null,
        }
    }

    /// The page and its parts; None for another path.
    pub fn asset(path: &str) -> Option<Response> {
        let (kind, body) = match path {
            "/" | "/ui" | "/ui/" | "/ui/index.html" => ("text/html; charset=utf-8", PAGE),
            "/ui/console.js" => ("text/javascript; charset=utf-8", SCRIPT),
            "/ui/console.css" => ("text/css; charset=utf-8", STYLE),
            _ => return None,
        };
        Some(guarded(Response::new(200, kind, body.as_bytes().to_vec())))
    }

    /// Asks the engine again when due, takes its answer when there; returns when to look again.
    pub fn tick(&mut self, now: Instant) -> Instant {
        if let Some((rx, asked)) = &self.asking {
            match rx.try_recv() {
                Ok(ControlAnswer::Status(report)) => {
                    self.status = serde_json::to_value(&report).ok();
                    self.answered = Some(now);
                    self.asking = None;
                }
                Ok(_) | Err(TryRecvError::Disconnected) => self.asking = None,
                Err(TryRecvError::Empty) if now.duration_since(*asked) > ANSWER_TIMEOUT => self.asking = None,
                Err(TryRecvError::Empty) => {}
            }
        }
        let due = self.answered.is_none_or(|t| now.duration_since(t) >= REFRESH);
        if self.asking.is_none() && due {
            let (tx, rx) = std::sync::mpsc::sync_channel(1);
            // A full command queue: the engine is busy; the next tick asks again.
            if self.commands.send(Command::Control { request: ControlRequest::Status, reply: tx }).is_ok() {
                self.asking = Some((rx, now));
            }
        }
        if let Some(v) = self.alerts_view.as_ref().and_then(AlertsView::peek) {
            self.alerts = v;
        }
        if now >= self.next_sample {
            if let Some(eq) = self.status.as_ref().map(|s| &s["equity"]) {
                let f = |k: &str| eq[k].as_f64().unwrap_or(f64::NAN);
                if self.history.len() == HISTORY_POINTS {
                    self.history.pop_front();
                }
                self.history.push_back([
                    (unix_nanos() / 1_000_000) as f64,
                    f("equity"),
                    f("balance"),
                    f("peak_equity"),
                ]);
                self.next_sample = now + SAMPLE_EVERY;
            }
        }
        // While a question is out, look for its answer soon.
        now + if self.asking.is_some() { Duration::from_millis(20) } else { REFRESH / 4 }
    }

    /// `/ui/data[?since=UNIX_MS]`: the last status, its age, the equity history after `since`,
    /// the signal drops, the firing alerts, build and uptime.
    pub fn data(&self, query: &str, now: Instant) -> Response {
        let since = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("since="))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NEG_INFINITY);
        let points: Vec<&Point> = self.history.iter().filter(|p| p[0] > since).collect();
        let drops: serde_json::Map<String, Value> = DropReason::ALL
            .iter()
            .map(|r| {
                (r.as_str().to_owned(), json!(self.metrics.signals_dropped.with_label_values(&[r.as_str()]).get()))
            })
            .filter(|(_, v)| v.as_u64() != Some(0))
            .collect();
        let body = json!({
            "status": self.status,
            "status_age_ms": self.answered.map(|t| now.duration_since(t).as_millis() as u64),
            "equity_history": {"columns": ["unix_ms", "equity", "balance", "peak_equity"], "points": points},
            "signals_dropped": drops,
            // null: PROM_QUERY_URL is not set.
            "alerts": self.alerts,
            "build": {
                "version": crate::support::build_info::VERSION,
                "commit": crate::support::build_info::GIT_COMMIT,
            },
            "uptime_s": now.duration_since(self.started).as_secs(),
        });
        let mut bytes = serde_json::to_vec(&body).unwrap_or_default();
        bytes.push(b'\n');
        guarded(Response::new(200, "application/json", bytes))
    }
}
