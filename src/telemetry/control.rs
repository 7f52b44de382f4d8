//! The control API under `/api/v1/`, served by the helper thread: what an operator needs without a
//! shell (status, the effective config, pause, resume, flatten, reload).
//!
//! Every call carries `Authorization: Bearer <API_KEY>`, compared in constant time. A missing or
//! wrong key is answered 401 and counted (`api_auth_failures_total`); an address with
//! [`FAILURE_LIMIT`] failures within [`FAILURE_WINDOW`] (and no success since) gets 429 until the
//! window passes, whatever it sends. Bodies over [`MAX_BODY`] are refused with 413 before anything else. The key is never
//! logged. Commands reach the engine as [`Command::Control`] through the waker and the bounded
//! command channel, and the answer is what the engine did; an engine that does not answer within
//! [`ENGINE_TIMEOUT`] gets the caller a 503.

use std::collections::HashMap;
use std::io::Read;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tiny_http::{Method, Request};

use crate::config::Config;
use crate::engine::reactor::{Command, CommandSender, ControlRequest};
use crate::secrets::Secret;
use crate::venue::mt5::constant_time_eq;

use super::metrics::Metrics;

/// Largest request body read.
pub const MAX_BODY: usize = 64 * 1024;
/// Authentication failures from one address within [`FAILURE_WINDOW`] before it gets 429s.
pub const FAILURE_LIMIT: u32 = 10;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// How long a call waits for the engine's answer.
pub const ENGINE_TIMEOUT: Duration = Duration::from_secs(2);
/// Addresses remembered for rate limiting; the oldest go first beyond this.
const MAX_TRACKED: usize = 4096;

/// Keys of `config.yaml` that `reload` applies while running; every other change needs a restart.
pub const LIVE_KEYS: [&str; 10] = [
    "risk.max_position",
    "risk.max_orders_per_second",
    "risk.max_notional",
    "drift.enabled",
    "drift.delta",
    "drift.threshold",
    "drift.min_samples",
    "drift.action",
    "drift.pause_for",
    "queue.max_wait",
];

/// An answer: status, JSON body, extra headers.
#[derive(Debug)]
pub struct Reply {
    pub code: u16,
    pub body: Value,
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    fn new(code: u16, body: Value) -> Reply {
        Reply { code, body, headers: Vec::new() }
    }

    fn error(code: u16, message: &str) -> Reply {
        Reply::new(code, json!({ "error": message }))
    }
}

/// The control API's state on the helper thread.
#[derive(Debug)]
pub struct Control {
    api_key: Option<Secret>,
    config_path: Option<PathBuf>,
    config: Config,
    secrets_set: Vec<&'static str>,
    failures: HashMap<IpAddr, (u32, Instant)>,
    commands: CommandSender,
    metrics: Metrics,
}

impl Control {
    pub fn new(
        api_key: Option<Secret>,
        config_path: Option<PathBuf>,
        config: Config,
        secrets_set: Vec<&'static str>,
        commands: CommandSender,
        metrics: Metrics,
    ) -> Control {
        if api_key.is_none() {
            log::warn!("control API off: API_KEY is not set (run mt5bot runtime-secrets); /api/v1/ answers 503");
        }
        Control { api_key, config_path, config, secrets_set, failures: HashMap::new(), commands, metrics }
    }

    /// Answers one `/api/v1/...` request. `path` has no query string.
    pub fn handle(&mut self, req: &mut Request, path: &str) -> Reply {
        if req.body_length().is_some_and(|n| n > MAX_BODY) {
            return Reply::error(413, &format!("request body over {MAX_BODY} bytes"));
        }
        // A chunked body has no length: read at most one byte past the limit to know.
        let mut body = Vec::new();
        if req.as_reader().take(MAX_BODY as u64 + 1).read_to_end(&mut body).is_err() {
            return Reply::error(400, "cannot read the request body");
        }
        if body.len() > MAX_BODY {
            return Reply::error(413, &format!("request body over {MAX_BODY} bytes"));
        }
        let ip = req.remote_addr().map(|a| a.ip());
        if let Some(reply) = self.limited(ip) {
            return reply;
        }
        let Some(key) = &self.api_key else {
            return Reply::error(503, "the control API is off: API_KEY is not set on the server");
        };
        let given = req
            .headers()
            .iter()
            .find(|h| h.field.equiv("Authorization"))
            .and_then(|h| h.value.as_str().strip_prefix("Bearer "))
            .unwrap_or("");
        if !constant_time_eq(given.trim().as_bytes(), key.expose().as_bytes()) {
            self.metrics.api_auth_failures.inc();
            self.failed(ip);
            log::warn!(
                "control API: {} key from {} for {path}",
                if given.is_empty() { "no" } else { "a wrong" },
                ip.map_or("?".into(), |i| i.to_string())
            );
            let mut r = Reply::error(401, "missing or wrong API key (Authorization: Bearer <API_KEY>)");
            r.headers.push(("WWW-Authenticate", "Bearer realm=\"mt5bot\"".into()));
            return r;
        }
        // A caller that knows the key starts with a clean slate.
        if let Some(ip) = ip {
            self.failures.remove(&ip);
        }
        let method = req.method().clone();
        let (allowed, request): (Method, Option<ControlRequest>) = match path {
            "/api/v1/status" => (Method::Get, Some(ControlRequest::Status)),
            "/api/v1/config" => (Method::Get, None),
            "/api/v1/pause" => (Method::Post, Some(ControlRequest::Pause)),
            "/api/v1/resume" => (Method::Post, Some(ControlRequest::Resume)),
            "/api/v1/flatten" => (Method::Post, Some(ControlRequest::Flatten)),
            "/api/v1/reload" => (Method::Post, None),
            _ => {
                return Reply::error(404, "no such endpoint; try status, config, pause, resume, flatten or reload");
            }
        };
        if method != allowed {
            let mut r = Reply::error(405, &format!("method not allowed; use {allowed}"));
            r.headers.push(("Allow", allowed.to_string()));
            return r;
        }
        match (path, request) {
            ("/api/v1/config", _) => Reply::new(200, self.config_json()),
            ("/api/v1/reload", _) => self.reload(),
            (_, Some(request)) => {
                let what = path.trim_start_matches("/api/v1/").to_owned();
                let r = self.ask(request);
                if r.code == 200 && what != "status" {
                    log::warn!("control API: {what} done: {}", r.body);
                }
                r
            }
            _ => Reply::error(404, "no such endpoint"),
        }
    }

    fn limited(&mut self, ip: Option<IpAddr>) -> Option<Reply> {
        let ip = ip?;
        let (count, since) = *self.failures.get(&ip)?;
        if since.elapsed() >= FAILURE_WINDOW {
            self.failures.remove(&ip);
            return None;
        }
        if count < FAILURE_LIMIT {
            return None;
        }
        let wait = FAILURE_WINDOW.saturating_sub(since.elapsed()).as_secs().max(1);
        let mut r = Reply::error(429, "too many failed authentications; try again later");
        r.headers.push(("Retry-After", wait.to_string()));
        Some(r)
    }

    fn failed(&mut self, ip: Option<IpAddr>) {
        let Some(ip) = ip else { return };
        if self.failures.len() >= MAX_TRACKED && !self.failures.contains_key(&ip) {
            if let Some(oldest) = self.failures.iter().min_by_key(|(_, (_, t))| *t).map(|(k, _)| *k) {
                self.failures.remove(&oldest);
            }
        }
        let e = self.failures.entry(ip).or_insert((0, Instant::now()));
        if e.1.elapsed() >= FAILURE_WINDOW {
            *e = (0, Instant::now());
        }
        e.0 += 1;
    }

    fn ask(&self, request: ControlRequest) -> Reply {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        if self.commands.send(Command::Control { request, reply: tx }).is_err() {
            return Reply::error(503, "the engine's command queue is full; try again");
        }
        match rx.recv_timeout(ENGINE_TIMEOUT) {
            Ok(answer) => Reply::new(200, answer),
            Err(_) => Reply::error(503, "the engine did not answer in time"),
        }
    }

    fn config_json(&self) -> Value {
        let mut v = serde_json::to_value(self.config.to_raw()).unwrap_or(Value::Null);
        // No secret lives in the config file; the secrets are listed by name only.
        if let Some(o) = v.as_object_mut() {
            o.insert("secrets_set".into(), json!(self.secrets_set));
            o.insert("source".into(), json!(self.config.source));
        }
        v
    }

    fn reload(&mut self) -> Reply {
        let Some(path) = self.config_path.clone() else {
            return Reply::error(409, "running on the embedded default (no --config): nothing to reload");
        };
        let new = match Config::load(&path) {
            Ok(c) => c,
            Err(e) => return Reply::error(422, &format!("the config was not reloaded: {e}")),
        };
        let old = flatten_keys(&serde_json::to_value(self.config.to_raw()).unwrap_or(Value::Null));
        let fresh = flatten_keys(&serde_json::to_value(new.to_raw()).unwrap_or(Value::Null));
        let mut changed: Vec<String> =
            fresh.iter().filter(|(k, v)| old.get(*k) != Some(*v)).map(|(k, _)| k.clone()).collect();
        changed.extend(old.keys().filter(|k| !fresh.contains_key(*k)).cloned());
        changed.sort();
        changed.dedup();
        let (applied, restart): (Vec<String>, Vec<String>) =
            changed.into_iter().partition(|k| LIVE_KEYS.iter().any(|l| k == l));
        if applied.is_empty() {
            return Reply::new(200, json!({"applied": applied, "restart_needed": restart}));
        }
        let answer = self.ask(ControlRequest::Reload(Box::new(new.clone())));
        if answer.code != 200 {
            return answer;
        }
        // Keep the old values of what was not applied, so `config` shows what runs.
        let mut running = new;
        if !restart.is_empty() {
            let mut merged = self.config.clone();
            merged.risk.max_position = running.risk.max_position;
            merged.risk.max_orders_per_second = running.risk.max_orders_per_second;
            merged.risk.max_notional = running.risk.max_notional;
            merged.drift = running.drift.clone();
            merged.queue_max_wait = running.queue_max_wait;
            running = merged;
        }
        self.config = running;
        log::warn!("control API: reloaded {}: applied {applied:?}; needing a restart {restart:?}", path.display());
        Reply::new(200, json!({"applied": applied, "restart_needed": restart}))
    }
}

/// `{"a": {"b": 1}}` as `{"a.b": 1}`; lists are leaves.
fn flatten_keys(v: &Value) -> HashMap<String, Value> {
    fn walk(prefix: &str, v: &Value, out: &mut HashMap<String, Value>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    walk(&key, v, out);
                }
            }
            other => {
                out.insert(prefix.to_owned(), other.clone());
            }
        }
    }
    let mut out = HashMap::new();
    walk("", v, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_flatten_to_dotted_paths() {
        let k = flatten_keys(&json!({"risk": {"max_position": 5.0}, "feed": {"symbols": [1, 2]}}));
        assert_eq!(k.get("risk.max_position"), Some(&json!(5.0)));
        assert_eq!(k.get("feed.symbols"), Some(&json!([1, 2])));
        assert_eq!(k.len(), 2);
    }

    #[test]
    fn live_keys_exist_in_the_config() {
        let keys = flatten_keys(&serde_json::to_value(Config::embedded().to_raw()).expect("json"));
        for k in LIVE_KEYS {
            assert!(keys.contains_key(k), "{k} is not a config key");
        }
    }
}
