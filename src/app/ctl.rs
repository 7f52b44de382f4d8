//! `mt5bot ctl`: the command-line client of the control API.
//!
//! It finds the daemon from `--url`, else from `metrics.listen` of `--config`, else the embedded
//! default (127.0.0.1:9898), and reads `API_KEY` from the environment, else from the runtime env
//! file. It prints the daemon's JSON answer; the exit code is 0 for a 2xx answer, 1 otherwise,
//! 2 for a usage or configuration problem. The key is never printed.

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
    let url = format!("{base}/api/v1/{}", opts.action.name());
    let agent: ureq::Agent = crate::support::http::agent("ctl", Duration::from_secs(10));
    let auth = format!("Bearer {key}");
    let sent = if opts.action.is_get() {
        agent.get(&url).header("Authorization", &auth).call()
    } else {
        let body = match &opts.reason {
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
