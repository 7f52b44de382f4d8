//! The helper thread: serves `/metrics`, `/healthz`, `/readyz` and the control API (`/api/v1/`)
//! from one bounded mio loop ([`super::server`]), and samples the process once a second.
//!
//! It reads trading state only through atomics ([`Health`] and the metric handles), so a slow
//! scrape, a flood of requests or a stuck client never touches the engine thread. Control calls
//! reach the engine through the bounded command channel and are answered when the engine has
//! answered, without this thread ever waiting for it.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::link::{Command, CommandSender, Health};

use super::console::Console;
use super::control::{Control, Pending};
use super::metrics::Metrics;
use super::sampler::Sampler;
use super::server::{Limits, Outcome, Request, Response, Server, Service, StopHandle};
use super::web::{BasicAuth, ListenerSecurity, Verdict};
use crate::support::throttle::Throttle;

/// `Content-Type` of the Prometheus text exposition format.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The running helper thread.
pub struct Helper {
    stop: StopHandle,
    handle: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Helper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Helper").finish_non_exhaustive()
    }
}

/// What the helper thread serves besides metrics and health: the control API, the console (with
/// the firing alerts when `PROM_QUERY_URL` is watched), and the listener's TLS and basic auth.
#[derive(Debug)]
pub struct Surfaces {
    pub control: Control,
    pub alerts: Option<super::prom_query::AlertsView>,
    pub security: ListenerSecurity,
}

impl Helper {
    /// Starts serving on an already bound listener, within `limits`.
    pub fn spawn(
        listener: std::net::TcpListener,
        limits: Limits,
        metrics: Metrics,
        health: Arc<Health>,
        commands: CommandSender,
        surfaces: Surfaces,
    ) -> std::io::Result<Helper> {
        let Surfaces { control, alerts, security } = surfaces;
        let service = Routes {
            console: Console::new(commands.clone(), metrics.clone(), alerts),
            metrics: metrics.clone(),
            health,
            control,
            sampler: Sampler::default(),
            spare: Vec::new(),
            auth: security.auth,
            auth_log: Throttle::default(),
            next_sample: Instant::now(),
        };
        let (mut server, stop) = Server::new(listener, limits, security.tls, service, &metrics)?;
        let handle_stop = stop.clone();
        let handle = std::thread::Builder::new().name("mt5bot-helper".into()).spawn(move || {
            if let Err(e) = server.run(&handle_stop) {
                // A daemon nobody can monitor or control should exit and be restarted.
                let reason = format!("the metrics listener's event loop failed: {e}");
                log::error!("{reason}");
                let _ = commands.send(Command::Shutdown { reason });
            }
        })?;
        Ok(Helper { stop, handle: Some(handle) })
    }

    /// Stops serving and waits for the thread.
    pub fn stop(mut self) {
        self.stop.stop();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// What the helper thread serves.
#[derive(Debug)]
struct Routes {
    metrics: Metrics,
    health: Arc<Health>,
    control: Control,
    sampler: Sampler,
    /// The last scrape's body, reused by the next.
    spare: Vec<u8>,
    /// `basic_auth_users`: asked of every path but `/api/`, which takes the API key instead.
    auth: Option<BasicAuth>,
    auth_log: Throttle,
    console: Console,
    /// When the process is sampled next.
    next_sample: Instant,
}

fn handler(path: &str) -> &'static str {
    match path {
        "/metrics" => "metrics",
        "/healthz" => "healthz",
        "/readyz" => "readyz",
        p if p.starts_with("/api/") => "api",
        "/" | "/ui" => "console",
        p if p.starts_with("/ui/") => "console",
        _ => "other",
    }
}

impl Routes {
    fn count(&self, handler: &str, resp: &Response) {
        let mut code = itoa::Buffer::new();
        self.metrics.http_requests.with_label_values(&[handler, code.format(resp.status)]).inc();
    }

    fn counted(&self, handler: &str, outcome: Outcome<Pending>) -> Outcome<Pending> {
        match &outcome {
            Outcome::Ready(r) | Outcome::Delay(r, _) => self.count(handler, r),
            Outcome::Wait(_) => {}
        }
        outcome
    }
}

impl Service for Routes {
    type Pending = Pending;

    fn head(&mut self, req: &Request<'_>) -> Option<Outcome<Pending>> {
        let handler = handler(req.path);
        if handler == "api" {
            let refused = self.control.authorize(req)?;
            return Some(self.counted("api", refused));
        }
        if let Some(auth) = &mut self.auth {
            let now = Instant::now();
            let resp = match auth.check(req.header("authorization"), now) {
                Verdict::Allowed => None,
                Verdict::Refused => {
                    if let Some(held) = self.auth_log.allow(now) {
                        log::warn!(
                            "metrics listener: missing or wrong basic auth from {} for {}{}",
                            req.peer,
                            req.path,
                            self.auth_log.suffix(held)
                        );
                    }
                    Some(
                        Response::text(401, "basic authentication required (metrics.web_config basic_auth_users)\n")
                            .with_header("WWW-Authenticate", "Basic realm=\"mt5bot\", charset=\"UTF-8\""),
                    )
                }
                Verdict::Busy => Some(
                    Response::text(429, "too many new credentials to check; try again in a second\n")
                        .with_header("Retry-After", "1"),
                ),
            };
            if let Some(resp) = resp {
                self.count(handler, &resp);
                return Some(Outcome::Ready(resp));
            }
        }
        if req.content_length > 0 {
            // Nothing here takes a body: answer on the head and never read it.
            return Some(self.request(req));
        }
        None
    }

    fn request(&mut self, req: &Request<'_>) -> Outcome<Pending> {
        let handler = handler(req.path);
        if handler == "api" {
            let outcome = self.control.handle(req);
            return self.counted("api", outcome);
        }
        let resp = if handler == "other" {
            Response::text(404, "not found; try / (the console), /metrics, /healthz, /readyz or /api/v1/status\n")
        } else if req.method != "GET" {
            Response::text(405, "method not allowed; use GET\n").with_header("Allow", "GET")
        } else {
            match handler {
                "metrics" => {
                    let mut body = std::mem::take(&mut self.spare);
                    body.clear();
                    match self.metrics.encode(&mut body) {
                        Ok(()) => Response::new(200, METRICS_CONTENT_TYPE, body),
                        Err(e) => {
                            log::error!("cannot encode metrics: {e}");
                            Response::text(500, &format!("cannot encode metrics: {e}\n"))
                        }
                    }
                }
                "healthz" => Response::text(200, "ok\n"),
                "console" if req.path == "/ui/data" => self.console.data(req.query, Instant::now()),
                "console" => {
                    Console::asset(req.path).unwrap_or_else(|| Response::text(404, "not found; the console is at /\n"))
                }
                _ => match self.health.readiness() {
                    Ok(()) => Response::text(200, "ready\n"),
                    Err(why) => Response::text(503, &format!("not ready: {why}\n")),
                },
            }
        };
        self.count(handler, &resp);
        Outcome::Ready(resp)
    }

    fn poll(&mut self, pending: &mut Pending, now: Instant) -> Option<Response> {
        let resp = self.control.poll(pending, now)?;
        self.count("api", &resp);
        Some(resp)
    }

    fn answered(&mut self, path: &str, status: u16) {
        let mut code = itoa::Buffer::new();
        self.metrics.http_requests.with_label_values(&[handler(path), code.format(status)]).inc();
    }

    fn recycle(&mut self, body: Vec<u8>) {
        if body.capacity() > self.spare.capacity() {
            self.spare = body;
        }
    }

    fn tick(&mut self, now: Instant) -> Instant {
        let console = self.console.tick(now);
        if now >= self.next_sample {
            let s = self.sampler.sample();
            if let Some(p) = s.cpu_pct {
                self.metrics.cpu_usage_pct.set(p);
            }
            if let Some(m) = s.rss_mb {
                self.metrics.rss_usage_mb.set(m);
            }
            self.next_sample = now + Duration::from_secs(1);
        }
        console.min(self.next_sample)
    }
}
