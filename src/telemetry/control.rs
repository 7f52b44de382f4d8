//! The control API under `/api/v1/`, served by the helper thread: what an operator needs without a
//! shell (status, the effective config, pause, resume, flatten, reload).
//!
//! Every call carries `Authorization: Bearer <API_KEY>` (the scheme in any case, RFC 7235),
//! compared in constant time, and the key is checked on the request head before any body byte is
//! read. A missing or wrong key is answered 401 and counted (`api_auth_failures_total`). Failures
//! are slowed, never the right key: an address with more than [`FAILURE_LIMIT`] failures within
//! [`FAILURE_WINDOW`] gets its further failures answered 429 only after a delay that doubles up to
//! [`MAX_FAILURE_DELAY`], while a request with the right key from the same address is served at
//! once (every local process shares 127.0.0.1, so a lockout by address would let any local user
//! keep the operator from flattening). The key is never logged. Commands reach the engine as
//! [`Command::Control`] through the waker and the bounded command channel; the helper thread does
//! not wait for the answer but looks for it on its next turns, and an engine that does not answer
//! within [`ENGINE_TIMEOUT`] gets the caller a 503.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::config::Config;
use crate::domain::types::TradingState;
use crate::link::{Command, CommandSender, ControlAnswer, ControlRequest, LiveConfig};
use crate::secrets::Secret;
use crate::support::auth::constant_time_eq;
use crate::support::throttle::Throttle;

use super::metrics::Metrics;
use super::server::{Outcome, Request, Response};

/// Largest request body read (the server refuses larger ones with 413 before reading them).
pub const MAX_BODY: usize = super::server::MAX_BODY_BYTES;
/// Authentication failures from one address within [`FAILURE_WINDOW`] answered at once; later
/// ones are answered 429 after a delay.
pub const FAILURE_LIMIT: u32 = 10;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// The delay of the first failure past the limit; it doubles with each further one.
pub const FIRST_FAILURE_DELAY: Duration = Duration::from_millis(250);
pub const MAX_FAILURE_DELAY: Duration = Duration::from_secs(5);
/// How long a call waits for the engine's answer.
pub const ENGINE_TIMEOUT: Duration = Duration::from_secs(2);
/// Addresses remembered for slowing; the oldest go first beyond this.
const MAX_TRACKED: usize = 4096;

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

    /// The HTTP answer: pretty JSON and a final newline.
    pub fn into_response(self) -> Response {
        let mut body = serde_json::to_vec_pretty(&self.body).unwrap_or_default();
        body.push(b'\n');
        let mut r = Response::new(self.code, "application/json", body);
        r.headers = self.headers;
        r
    }
}

/// A call waiting for the engine's answer.
#[derive(Debug)]
pub struct Pending {
    rx: Receiver<ControlAnswer>,
    deadline: Instant,
    then: Then,
}

/// What to do with the engine's answer.
#[derive(Debug)]
enum Then {
    Answer { what: String, peer: IpAddr },
    Reload { live: LiveConfig, applied: Vec<String>, restart: Vec<String>, peer: IpAddr },
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
    failure_log: Throttle,
}

/// The token of an `Authorization: Bearer <token>` header; the scheme is case-insensitive.
fn bearer(value: Option<&str>) -> &str {
    value
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map_or("", |(_, token)| token.trim())
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
        Control {
            api_key,
            config_path,
            config,
            secrets_set,
            failures: HashMap::new(),
            commands,
            metrics,
            failure_log: Throttle::default(),
        }
    }

    /// Checks the key on a request's head. `None`: go on and read the body; else the refusal.
    pub fn authorize(&mut self, req: &Request<'_>) -> Option<Outcome<Pending>> {
        let Some(key) = &self.api_key else {
            let r = Reply::error(503, "the control API is off: API_KEY is not set on the server");
            return Some(Outcome::Ready(r.into_response()));
        };
        let given = bearer(req.header("authorization"));
        if constant_time_eq(given.as_bytes(), key.expose().as_bytes()) {
            // A caller that knows the key starts with a clean slate.
            self.failures.remove(&req.peer);
            return None;
        }
        self.metrics.api_auth_failures.inc();
        let failures = self.failed(req.peer);
        if let Some(held) = self.failure_log.allow(Instant::now()) {
            log::warn!(
                "control API: {} key from {} for {}{}",
                if given.is_empty() { "no" } else { "a wrong" },
                req.peer,
                req.path,
                self.failure_log.suffix(held)
            );
        }
        if failures <= FAILURE_LIMIT {
            let mut r = Reply::error(401, "missing or wrong API key (Authorization: Bearer <API_KEY>)");
            r.headers.push(("WWW-Authenticate", "Bearer realm=\"mt5bot\"".into()));
            return Some(Outcome::Ready(r.into_response()));
        }
        let past = (failures - FAILURE_LIMIT - 1).min(16);
        let delay = FIRST_FAILURE_DELAY.saturating_mul(1 << past).min(MAX_FAILURE_DELAY);
        let mut r = Reply::error(429, "too many failed authentications from this address; answers are slowed");
        r.headers.push(("Retry-After", delay.as_secs().max(1).to_string()));
        Some(Outcome::Delay(r.into_response(), Instant::now() + delay))
    }

    /// Answers one authorized `/api/v1/...` request.
    pub fn handle(&mut self, req: &Request<'_>) -> Outcome<Pending> {
        let path = req.path;
        let (allowed, request): (&str, Option<ControlRequest>) = match path {
            "/api/v1/status" => ("GET", Some(ControlRequest::Status)),
            "/api/v1/config" => ("GET", None),
            // `pause` is `halt`, kept for the clients of earlier versions.
            "/api/v1/halt" | "/api/v1/pause" | "/api/v1/reduce" | "/api/v1/resume" if req.method == "POST" => {
                let state = match path {
                    "/api/v1/reduce" => TradingState::Reducing,
                    "/api/v1/resume" => TradingState::Active,
                    _ => TradingState::Halted,
                };
                match reason_of(req.body) {
                    Ok(reason) => ("POST", Some(ControlRequest::SetState { state, reason })),
                    Err(e) => return Outcome::Ready(Reply::error(400, &e).into_response()),
                }
            }
            "/api/v1/halt" | "/api/v1/pause" | "/api/v1/reduce" | "/api/v1/resume" => ("POST", None),
            "/api/v1/flatten" => ("POST", Some(ControlRequest::Flatten)),
            "/api/v1/reload" => ("POST", None),
            _ => {
                let r = Reply::error(
                    404,
                    "no such endpoint; try status, config, halt, reduce, resume, pause, flatten or reload",
                );
                return Outcome::Ready(r.into_response());
            }
        };
        if req.method != allowed {
            let mut r = Reply::error(405, &format!("method not allowed; use {allowed}"));
            r.headers.push(("Allow", allowed.to_owned()));
            return Outcome::Ready(r.into_response());
        }
        match (path, request) {
            ("/api/v1/config", _) => Outcome::Ready(Reply::new(200, self.config_json()).into_response()),
            ("/api/v1/reload", _) => self.reload(req.peer),
            (_, Some(request)) => {
                let what = path.trim_start_matches("/api/v1/").to_owned();
                self.ask(request, Then::Answer { what, peer: req.peer })
            }
            _ => Outcome::Ready(Reply::error(404, "no such endpoint").into_response()),
        }
    }

    /// The answer of a call waiting for the engine, once it is there (or the wait is over).
    pub fn poll(&mut self, pending: &mut Pending, now: Instant) -> Option<Response> {
        let answer = match pending.rx.try_recv() {
            Ok(answer) => answer,
            Err(TryRecvError::Empty) if now < pending.deadline => return None,
            Err(_) => return Some(Reply::error(503, "the engine did not answer in time").into_response()),
        };
        let then = std::mem::replace(
            &mut pending.then,
            Then::Answer { what: String::new(), peer: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED) },
        );
        let reply = match then {
            Then::Answer { what, peer } => {
                let answer = answer_json(&answer);
                if what != "status" {
                    log::warn!("control API: {what} from {peer} done: {answer}");
                }
                Reply::new(200, answer)
            }
            Then::Reload { live, applied, restart, peer } => self.reloaded(&live, applied, restart, peer),
        };
        Some(reply.into_response())
    }

    /// Counts a failure of `ip`; returns its failures within the window.
    fn failed(&mut self, ip: IpAddr) -> u32 {
        if self.failures.len() >= MAX_TRACKED && !self.failures.contains_key(&ip) {
            if let Some(oldest) = self.failures.iter().min_by_key(|(_, (_, t))| *t).map(|(k, _)| *k) {
                self.failures.remove(&oldest);
            }
        }
        let e = self.failures.entry(ip).or_insert((0, Instant::now()));
        if e.1.elapsed() >= FAILURE_WINDOW {
            *e = (0, Instant::now());
        }
        e.0 = e.0.saturating_add(1);
        e.0
    }

    fn ask(&self, request: ControlRequest, then: Then) -> Outcome<Pending> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        if self.commands.send(Command::Control { request, reply: tx }).is_err() {
            return Outcome::Ready(Reply::error(503, "the engine's command queue is full; try again").into_response());
        }
        Outcome::Wait(Pending { rx, deadline: Instant::now() + ENGINE_TIMEOUT, then })
    }

    fn config_json(&self) -> Value {
        let mut v = serde_json::to_value(self.config.to_raw_for_display()).unwrap_or(Value::Null);
        // No secret lives in the config file; the secrets are listed by name only.
        if let Some(o) = v.as_object_mut() {
            o.insert("secrets_set".into(), json!(self.secrets_set));
            o.insert("source".into(), json!(self.config.source));
        }
        v
    }

    fn reload(&mut self, peer: IpAddr) -> Outcome<Pending> {
        let Some(path) = self.config_path.clone() else {
            let r = Reply::error(409, "running on the embedded default (no --config): nothing to reload");
            return Outcome::Ready(r.into_response());
        };
        let new = match Config::load(&path) {
            Ok(c) => c,
            Err(e) => {
                return Outcome::Ready(Reply::error(422, &format!("the config was not reloaded: {e}")).into_response())
            }
        };
        let old = flatten_keys(&serde_json::to_value(self.config.to_raw()).unwrap_or(Value::Null));
        let fresh = flatten_keys(&serde_json::to_value(new.to_raw()).unwrap_or(Value::Null));
        let mut changed: Vec<String> =
            fresh.iter().filter(|(k, v)| old.get(*k) != Some(*v)).map(|(k, _)| k.clone()).collect();
        changed.extend(old.keys().filter(|k| !fresh.contains_key(*k)).cloned());
        changed.sort();
        changed.dedup();
        let (applied, restart): (Vec<String>, Vec<String>) = changed.into_iter().partition(|k| LiveConfig::is_live(k));
        if applied.is_empty() {
            return Outcome::Ready(
                Reply::new(200, json!({"applied": applied, "restart_needed": restart})).into_response(),
            );
        }
        let live = LiveConfig::of(&new);
        self.ask(ControlRequest::Reload(live.clone()), Then::Reload { live, applied, restart, peer })
    }

    /// The engine applied a reload: remember what runs (the live settings; what needs a restart
    /// keeps its old value, so `config` shows what runs).
    fn reloaded(&mut self, live: &LiveConfig, applied: Vec<String>, restart: Vec<String>, peer: IpAddr) -> Reply {
        live.apply_to(&mut self.config);
        let path = self.config_path.as_deref().map(|p| p.display().to_string()).unwrap_or_default();
        log::warn!(
            "control API: reload from {peer}: reloaded {path}: applied {applied:?}; needing a restart {restart:?}"
        );
        Reply::new(200, json!({"applied": applied, "restart_needed": restart}))
    }
}

/// The engine's answer as the control API's JSON.
fn answer_json(answer: &ControlAnswer) -> Value {
    let to_json = |v: Result<Value, serde_json::Error>| v.unwrap_or_else(|e| json!({ "error": e.to_string() }));
    match answer {
        ControlAnswer::Status(status) => to_json(serde_json::to_value(status)),
        ControlAnswer::State { state, changed, open_orders } => json!({
            "state": state.as_str(),
            "changed": changed,
            "open_orders": open_orders,
            "paused": *state == TradingState::Halted,
        }),
        ControlAnswer::Flattened(report) => {
            let mut v = to_json(serde_json::to_value(report));
            v["paused"] = true.into();
            v["state"] = TradingState::Halted.as_str().into();
            v
        }
        ControlAnswer::Reloaded => json!({"applied": true}),
    }
}

/// Longest reason an operator may give for a state change.
const MAX_REASON: usize = 200;

/// The operator's reason from a state change's body: none, or `{"reason": "TEXT"}`.
fn reason_of(body: &[u8]) -> Result<String, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(String::new());
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        #[serde(default)]
        reason: String,
    }
    let b: Body = serde_json::from_slice(body).map_err(|e| {
        format!(
            "the body is not {{\"reason\": \"TEXT\"}} ({:?} at line {} column {})",
            e.classify(),
            e.line(),
            e.column()
        )
    })?;
    let reason = b.reason.trim();
    if reason.chars().count() > MAX_REASON || reason.chars().any(char::is_control) {
        return Err(format!("the reason must be at most {MAX_REASON} characters on one line"));
    }
    Ok(reason.to_owned())
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
    fn the_bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer(Some("Bearer abc")), "abc");
        assert_eq!(bearer(Some("bearer abc ")), "abc");
        assert_eq!(bearer(Some("BEARER  abc")), "abc");
        assert_eq!(bearer(Some("Basic abc")), "");
        assert_eq!(bearer(Some("Bearerabc")), "");
        assert_eq!(bearer(None), "");
    }

    #[test]
    fn live_keys_exist_in_the_config() {
        let keys = flatten_keys(&serde_json::to_value(Config::embedded().to_raw()).expect("json"));
        for k in LiveConfig::KEYS {
            assert!(keys.contains_key(k), "{k} is not a config key");
        }
    }
}
