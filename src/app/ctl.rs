//! `mt5bot ctl`: the command-line client of the control API.
//!
//! It finds the daemon from `--url`, else from `metrics.listen` of `--config`, else the embedded
//! default (127.0.0.1:9898), and reads `API_KEY` from the environment, else from the runtime env
//! file. It prints the daemon's JSON answer; the exit code is 0 for a 2xx answer, 1 otherwise,
//! 2 for a usage or configuration problem. The key is never printed.
//!
//! With `--fleet FILE` it asks every bot the file lists at once, each within `--timeout`, and
//! prints one table; the exit code is 1 when any bot failed.

use std::path::PathBuf;
use std::time::Duration;

use super::Error;
use crate::config::Config;
use crate::support::envfile::EnvFile;
use crate::support::names::API_KEY;

/// What to ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Status,
    Config,
    Halt,
    Reduce,
    Resume,
    Pause,
    Flatten,
    Reload,
}

impl Action {
    pub const ALL: [(&'static str, Action); 8] = [
        ("status", Action::Status),
        ("config", Action::Config),
        ("halt", Action::Halt),
        ("reduce", Action::Reduce),
        ("resume", Action::Resume),
        ("pause", Action::Pause),
        ("flatten", Action::Flatten),
        ("reload", Action::Reload),
    ];

    pub fn parse(s: &str) -> Option<Action> {
        Action::ALL.iter().find(|(n, _)| *n == s).map(|(_, a)| *a)
    }

    /// Every action's name, for messages.
    pub fn names() -> String {
        Action::ALL.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
    }

    /// Whether the action sets the trading state (and so takes `--reason`).
    pub fn takes_reason(self) -> bool {
        matches!(self, Action::Halt | Action::Reduce | Action::Resume | Action::Pause)
    }

    pub fn name(self) -> &'static str {
        Action::ALL.iter().find(|(_, a)| *a == self).map_or("status", |(n, _)| n)
    }

    fn is_get(self) -> bool {
        matches!(self, Action::Status | Action::Config)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub action: Action,
    pub url: Option<String>,
    pub config: Option<PathBuf>,
    pub env_file: PathBuf,
    /// Why, for the actions that set the trading state.
    pub reason: Option<String>,
    /// `--fleet FILE`: ask every bot the file lists, in parallel.
    pub fleet: Option<PathBuf>,
    /// `--timeout`: how long each bot has to answer.
    pub timeout: Duration,
}

/// Calls the API; returns the answer's body on a 2xx, else an error carrying it.
pub fn run(opts: &Options, env: &dyn Fn(&str) -> Option<String>) -> Result<String, Error> {
    let usage = Error::usage;
    let base = match (&opts.url, &opts.config) {
        (Some(u), _) => u.trim_end_matches('/').to_owned(),
        (None, Some(path)) => {
            let cfg = Config::load(path).map_err(|e| usage(format!("configuration error: {e}")))?;
            format!("http://{}", cfg.metrics.listen)
        }
        (None, None) => format!("http://{}", Config::embedded().metrics.listen),
    };
    let key = match env(API_KEY).filter(|k| !k.is_empty()) {
        Some(k) => k,
        None => {
            if let Some(w) = crate::support::envfile::loose_mode_warning(&opts.env_file) {
                eprintln!("mt5bot ctl: warning: {w}");
            }
            let text = std::fs::read_to_string(&opts.env_file).map_err(|e| {
                usage(format!(
                    "{API_KEY} is not in the environment and {} cannot be read ({e}); export it or pass --env-file",
                    opts.env_file.display()
                ))
            })?;
            let file = EnvFile::parse(&text, &opts.env_file).map_err(|e| usage(e.to_string()))?;
            file.get(API_KEY)
                .filter(|k| !k.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| usage(format!("{API_KEY} is not set in {}", opts.env_file.display())))?
        }
    };
    call(&base, &key, opts.action, opts.reason.as_deref(), opts.timeout)
}

/// One call of the API at `base` with `key`; the answer's body on a 2xx, else an error with it.
fn call(base: &str, key: &str, action: Action, reason: Option<&str>, timeout: Duration) -> Result<String, Error> {
    let url = format!("{base}/api/v1/{}", action.name());
    let agent: ureq::Agent = crate::support::http::agent("ctl", timeout);
    let auth = format!("Bearer {key}");
    let sent = if action.is_get() {
        agent.get(&url).header("Authorization", &auth).call()
    } else {
        let body = match reason {
            Some(reason) => serde_json::json!({ "reason": reason }).to_string(),
            None => String::new(),
        };
        agent.post(&url).header("Authorization", &auth).header("Content-Type", "application/json").send(&body)
    };
    let mut resp = sent.map_err(|e| Error::failed(format!("cannot reach mt5bot at {base}: {e}")))?;
    let status = resp.status().as_u16();
    let body = resp.body_mut().read_to_string().unwrap_or_default();
    if (200..300).contains(&status) {
        Ok(body)
    } else {
        Err(Error::failed(format!("{url} answered {status}: {}", body.trim())))
    }
}

/// Requests of `ctl --fleet` in flight at once, at most: a fleet of hundreds does not start
/// hundreds of threads.
const FLEET_THREADS: usize = 16;

/// One bot of a fleet file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetBot {
    pub name: String,
    /// The bot's metrics listener, `http://HOST:PORT`.
    pub url: String,
    /// Where its `API_KEY` is: an env file (its runtime.env), or a file holding the key alone (a
    /// systemd credential), or an environment variable of this shell.
    #[serde(default)]
    pub env_file: Option<PathBuf>,
    #[serde(default)]
    pub credential: Option<PathBuf>,
    #[serde(default)]
    pub api_key_env: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FleetFile {
    bots: Vec<FleetBot>,
}

/// Reads and checks a fleet file; every problem names the file (never a key's value).
pub fn load_fleet(path: &std::path::Path) -> Result<Vec<FleetBot>, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::usage(format!("cannot read the fleet file {}: {e}", path.display())))?;
    let file: FleetFile = serde_yaml::from_str(&text).map_err(|e| {
        // serde_yaml's message may quote the document; keep only where and what.
        let at = e.location().map(|l| format!(":{}", l.line())).unwrap_or_default();
        Error::usage(format!(
            "{}{at}: not a fleet file; accepted: bots: [{{name, url, env_file | credential | api_key_env}}, ...]",
            path.display()
        ))
    })?;
    if file.bots.is_empty() {
        return Err(Error::usage(format!("{}: bots is empty; accepted: a list of bots", path.display())));
    }
    // Files the fleet file names are found beside it, wherever ctl runs from.
    let base = path.parent().unwrap_or(std::path::Path::new(""));
    let mut file = file;
    for b in &mut file.bots {
        for p in [&mut b.env_file, &mut b.credential].into_iter().flatten() {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }
    for (i, b) in file.bots.iter().enumerate() {
        let at = format!("{}: bots[{i}] ({})", path.display(), b.name);
        if !(b.url.starts_with("http://") || b.url.starts_with("https://")) {
            return Err(Error::usage(format!(
                "{at}: url {:?}; accepted: http://HOST:PORT or https://HOST:PORT",
                b.url
            )));
        }
        let sources = usize::from(b.env_file.is_some())
            + usize::from(b.credential.is_some())
            + usize::from(b.api_key_env.is_some());
        if sources != 1 {
            return Err(Error::usage(format!("{at}: needs exactly one of env_file, credential, api_key_env")));
        }
        if file.bots[..i].iter().any(|o| o.name == b.name) {
            return Err(Error::usage(format!("{at}: the name is listed twice")));
        }
    }
    Ok(file.bots)
}

/// A bot's key, from where the fleet file says.
fn fleet_key(b: &FleetBot, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let key = if let Some(var) = &b.api_key_env {
        env(var).ok_or_else(|| format!("the environment variable {var} is not set"))?
    } else if let Some(path) = &b.credential {
        std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?.trim().to_owned()
    } else if let Some(path) = &b.env_file {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let file = EnvFile::parse(&text, path).map_err(|e| e.to_string())?;
        file.get(API_KEY).map(str::to_owned).ok_or_else(|| format!("{API_KEY} is not set in {}", path.display()))?
    } else {
        return Err("no key source".into());
    };
    if key.is_empty() {
        return Err(format!("{API_KEY} is empty"));
    }
    Ok(key)
}

/// One bot's answer, for the table.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetRow {
    pub name: String,
    pub url: String,
    pub outcome: Result<String, String>,
}

/// `mt5bot ctl --fleet FILE ACTION`: every bot at once, each within the timeout; the table, and
/// an error when any failed.
pub fn run_fleet(
    opts: &Options,
    file: &std::path::Path,
    env: &(dyn Fn(&str) -> Option<String> + Sync),
) -> Result<String, Error> {
    let bots = load_fleet(file)?;
    // At most FLEET_THREADS requests at once, taken in order by whichever thread is free.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let rows: Vec<std::sync::Mutex<Option<FleetRow>>> = bots.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..bots.len().min(FLEET_THREADS) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(b) = bots.get(i) else { break };
                let outcome = fleet_key(b, env).and_then(|key| {
                    call(b.url.trim_end_matches('/'), &key, opts.action, opts.reason.as_deref(), opts.timeout)
                        .map_err(|e| e.message.unwrap_or_default())
                });
                let row = FleetRow { name: b.name.clone(), url: b.url.clone(), outcome };
                *rows[i].lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(row);
            });
        }
    });
    let rows: Vec<FleetRow> = rows
        .into_iter()
        .zip(&bots)
        .map(|(r, b)| {
            r.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner).unwrap_or_else(|| FleetRow {
                name: b.name.clone(),
                url: b.url.clone(),
                outcome: Err("the request thread failed".into()),
            })
        })
        .collect();
    let table = fleet_table(opts.action, &rows);
    let failed = rows.iter().filter(|r| r.outcome.is_err()).count();
    if failed == 0 {
        Ok(table)
    } else {
        out!("{table}");
        Err(Error::failed(format!("{failed} of {} bots failed", rows.len())))
    }
}

/// The answers as one table: a bot a line, with its state, venue, equity and drawdown from the
/// answer (status, and the actions whose answers carry them).
pub fn fleet_table(action: Action, rows: &[FleetRow]) -> String {
    let mut lines = vec![["BOT", "URL", "RESULT", "STATE", "VENUE", "EQUITY", "DRAWDOWN", "DETAIL"].map(str::to_owned)];
    for r in rows {
        let mut line = [
            r.name.clone(),
            r.url.clone(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
        ];
        match &r.outcome {
            Err(e) => {
                line[2] = "FAILED".into();
                line[7] = e.replace('\n', " ");
            }
            Ok(body) => {
                line[2] = "ok".into();
                let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
                let state = v["trading"]["state"].as_str().or(v["state"].as_str()).unwrap_or("");
                line[3] = state.to_owned();
                if let Some(name) = v["venue"]["name"].as_str() {
                    let up = if v["venue"]["up"].as_bool() == Some(true) { "up" } else { "down" };
                    line[4] = format!("{name} {up}");
                }
                if let (Some(eq), Some(peak)) = (v["equity"]["equity"].as_f64(), v["equity"]["peak_equity"].as_f64()) {
                    line[5] = format!("{eq:.2}");
                    line[6] = if peak > 0.0 {
                        format!("{:.2}%", ((peak - eq) / peak).max(0.0) * 100.0)
                    } else {
                        String::new()
                    };
                }
                if action != Action::Status {
                    line[7] = v["trading"]["reason"].as_str().or(v["reason"].as_str()).unwrap_or("").to_owned();
                }
            }
        }
        lines.push(line);
    }
    crate::support::columns::render(&lines, crate::support::columns::Align::Left)
}
