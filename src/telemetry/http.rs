//! The helper thread: serves `/metrics`, `/healthz` and `/readyz` with tiny_http and samples the
//! process once a second.
//!
//! It reads trading state only through atomics ([`Health`] and the metric handles), so a slow
//! scrape, a flood of requests or a stuck client never touches the engine thread. tiny_http reads
//! each request on its own connection thread; this thread only answers complete requests and never
//! reads a body, so a huge or slow request costs that connection, not the daemon.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tiny_http::{Header, Method, Request, Response, Server};

use crate::engine::reactor::{Command, CommandSender};

use super::control::Control;

use super::metrics::Metrics;
use super::sampler::Sampler;

/// `Content-Type` of the Prometheus text exposition format.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Liveness and readiness, written by the engine thread, read by the helper.
#[derive(Debug)]
pub struct Health {
    start: Instant,
    /// Milliseconds since `start` at the engine loop's last turn.
    last_turn_ms: AtomicU64,
    venue_up: AtomicBool,
    stopping: AtomicBool,
    ready_deadline_ms: u64,
}

impl Health {
    pub fn new(ready_deadline: Duration) -> Health {
        Health {
            start: Instant::now(),
            last_turn_ms: AtomicU64::new(0),
            venue_up: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            ready_deadline_ms: ready_deadline.as_millis() as u64,
        }
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// Called by the engine on every loop turn.
    #[inline]
    pub fn turned(&self, venue_up: bool) {
        self.last_turn_ms.store(self.now_ms(), Ordering::Relaxed);
        self.venue_up.store(venue_up, Ordering::Relaxed);
    }

    pub fn set_stopping(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// `Ok` when ready, else why not.
    pub fn readiness(&self) -> Result<(), String> {
        if self.is_stopping() {
            return Err("stopping".into());
        }
        if !self.venue_up.load(Ordering::Relaxed) {
            return Err("venue session is down".into());
        }
        let age = self.now_ms().saturating_sub(self.last_turn_ms.load(Ordering::Relaxed));
        if age > self.ready_deadline_ms {
            return Err(format!(
                "engine loop last turned {age} ms ago (engine.ready_deadline is {} ms)",
                self.ready_deadline_ms
            ));
        }
        Ok(())
    }
}

/// The running helper thread.
pub struct Helper {
    server: Arc<Server>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Helper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Helper").field("stop", &self.stop).finish_non_exhaustive()
    }
}

impl Helper {
    /// Starts serving on an already bound server. If serving fails for good, the engine is told to
    /// stop through `commands` (a daemon nobody can monitor should exit and be restarted).
    pub fn spawn(
        server: Server,
        metrics: Metrics,
        health: Arc<Health>,
        commands: CommandSender,
        mut control: Control,
    ) -> std::io::Result<Helper> {
        let server = Arc::new(server);
        let stop = Arc::new(AtomicBool::new(false));
        let (srv, flag) = (Arc::clone(&server), Arc::clone(&stop));
        let handle = std::thread::Builder::new()
            .name("mt5bot-helper".into())
            .spawn(move || serve(&srv, &metrics, &health, &flag, &commands, &mut control))?;
        Ok(Helper { server, stop, handle: Some(handle) })
    }

    /// Stops serving and waits for the thread.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.server.unblock();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn serve(
    server: &Server,
    metrics: &Metrics,
    health: &Health,
    stop: &AtomicBool,
    commands: &CommandSender,
    control: &mut Control,
) {
    let mut sampler = Sampler::default();
    let mut next_sample = Instant::now();
    let mut buf = Vec::with_capacity(64 * 1024);
    loop {
        if Instant::now() >= next_sample {
            let s = sampler.sample();
            if let Some(p) = s.cpu_pct {
                metrics.cpu_usage_pct.set(p);
            }
            if let Some(m) = s.rss_mb {
                metrics.rss_usage_mb.set(m);
            }
            next_sample += Duration::from_secs(1);
            if next_sample < Instant::now() {
                next_sample = Instant::now() + Duration::from_secs(1);
            }
        }
        let wait = next_sample.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
        if stop.load(Ordering::Relaxed) {
            return;
        }
        match server.recv_timeout(wait) {
            Ok(Some(req)) => handle(req, metrics, health, control, &mut buf),
            Ok(None) => {}
            Err(e) => {
                let reason = format!("the metrics server failed: {e}");
                log::error!("{reason}");
                let _ = commands.send(Command::Shutdown { reason });
                return;
            }
        }
    }
}

fn header(name: &str, value: &str) -> Option<Header> {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).ok()
}

fn handle(mut req: Request, metrics: &Metrics, health: &Health, control: &mut Control, buf: &mut Vec<u8>) {
    let path = req.url().split('?').next().unwrap_or("").to_owned();
    let handler = match path.as_str() {
        "/metrics" => "metrics",
        "/healthz" => "healthz",
        "/readyz" => "readyz",
        p if p.starts_with("/api/") => "api",
        _ => "other",
    };
    if handler == "api" {
        let reply = control.handle(&mut req, &path);
        metrics.http_requests.with_label_values(&[handler, &reply.code.to_string()]).inc();
        let mut body = serde_json::to_vec_pretty(&reply.body).unwrap_or_default();
        body.push(b'\n');
        let mut resp = Response::from_data(body).with_status_code(reply.code);
        let headers = [("Content-Type", "application/json".to_owned())].into_iter().chain(reply.headers);
        for h in headers.filter_map(|(n, v)| header(n, &v)) {
            resp.add_header(h);
        }
        if let Some(h) = header("Connection", "close").filter(|_| reply.code == 413) {
            // The unread rest of a huge body is not worth reading on a kept-alive connection.
            resp.add_header(h);
        }
        if let Err(e) = req.respond(resp) {
            log::debug!("API client went away before the answer: {e}");
        }
        return;
    }
    let (code, body, content_type, allow): (u16, Vec<u8>, &str, bool) = if handler == "other" {
        (
            404,
            b"not found; try /metrics, /healthz, /readyz or /api/v1/status\n".to_vec(),
            "text/plain; charset=utf-8",
            false,
        )
    } else if *req.method() != Method::Get {
        (405, b"method not allowed; use GET\n".to_vec(), "text/plain; charset=utf-8", true)
    } else {
        match handler {
            "metrics" => {
                buf.clear();
                match metrics.encode(buf) {
                    Ok(()) => (200, buf.clone(), METRICS_CONTENT_TYPE, false),
                    Err(e) => {
                        log::error!("cannot encode metrics: {e}");
                        (500, format!("cannot encode metrics: {e}\n").into_bytes(), "text/plain; charset=utf-8", false)
                    }
                }
            }
            "healthz" => (200, b"ok\n".to_vec(), "text/plain; charset=utf-8", false),
            _ => match health.readiness() {
                Ok(()) => (200, b"ready\n".to_vec(), "text/plain; charset=utf-8", false),
                Err(why) => (503, format!("not ready: {why}\n").into_bytes(), "text/plain; charset=utf-8", false),
            },
        }
    };
    metrics.http_requests.with_label_values(&[handler, &code.to_string()]).inc();
    let mut resp = Response::from_data(body).with_status_code(code);
    let mut headers = vec![("Content-Type", content_type)];
    if allow {
        headers.push(("Allow", "GET"));
    }
    if req.body_length().is_some_and(|n| n > 0) {
        // Do not keep reading a body nobody asked for on a kept-alive connection.
        headers.push(("Connection", "close"));
    }
    for h in headers.into_iter().filter_map(|(n, v)| header(n, v)) {
        resp.add_header(h);
    }
    if let Err(e) = req.respond(resp) {
        log::debug!("metrics client went away before the answer: {e}");
    }
}
