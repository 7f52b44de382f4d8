//! `mt5bot prometheus-endpoints`: derives `PROM_PUSH_URL` and `PROM_QUERY_URL` and writes them into
//! runtime.env beside the secrets.
//!
//! `PROM_PUSH_URL` follows the Pushgateway's grouping-key grammar,
//! `SCHEME://HOST:PORT/metrics/job/JOB/instance/INSTANCE`; a label value that is not a plain URL
//! path segment (a `/`, a space, non-ASCII, or empty) is sent in the `LABEL@base64/VALUE` form with
//! URL-safe base64, as the Pushgateway documents. `PROM_QUERY_URL` is
//! `SCHEME://HOST:PORT/api/v1/query`. Each input comes from a flag, else from its
//! `PROM_ENDPOINTS_*` variable, else from the default; existing values are kept unless `--force`.

use std::path::PathBuf;

use super::{ensure_parent, DeployError};
use crate::support::encoding::base64url;
use crate::support::envfile::{export_line, EnvFile};
use crate::support::host::hostname;

pub use crate::support::names::{PROM_PUSH_URL, PROM_QUERY_URL};

/// The inputs: flag name, environment variable, default (`None`: the host name).
pub const INPUTS: [(&str, &str, Option<&str>); 7] = [
    ("--push-host", "PROM_ENDPOINTS_PUSH_HOST", Some("localhost")),
    ("--push-port", "PROM_ENDPOINTS_PUSH_PORT", Some("9091")),
    ("--query-host", "PROM_ENDPOINTS_QUERY_HOST", Some("localhost")),
    ("--query-port", "PROM_ENDPOINTS_QUERY_PORT", Some("9090")),
    ("--scheme", "PROM_ENDPOINTS_SCHEME", Some("http")),
    ("--job", "PROM_ENDPOINTS_JOB", Some("mt5bot")),
    ("--instance", "PROM_ENDPOINTS_INSTANCE", None),
];

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    pub env_file: PathBuf,
    /// Flag values in the order of [`INPUTS`].
    pub flags: [Option<String>; 7],
    pub force: bool,
    pub print_exports: bool,
}

/// The derived URLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub push_url: String,
    pub query_url: String,
}

/// Per key: written, kept as it was, or kept although it differs from the derived value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Written,
    Unchanged,
    KeptDifferent { derived: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub endpoints: Endpoints,
    pub outcomes: Vec<(&'static str, Outcome)>,
    pub written: bool,
    pub warning: Option<String>,
    pub exports: Vec<String>,
}

fn valid_host(h: &str) -> bool {
    if h.parse::<std::net::Ipv4Addr>().is_ok() {
        return true;
    }
    let inner = h.strip_prefix('[').and_then(|x| x.strip_suffix(']')).unwrap_or(h);
    if inner.parse::<std::net::Ipv6Addr>().is_ok() {
        return true;
    }
    h.len() <= 253
        && h.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn url_host(h: &str) -> String {
    if h.parse::<std::net::Ipv6Addr>().is_ok() {
        format!("[{h}]")
    } else {
        h.to_owned()
    }
}

/// `/NAME/VALUE`, or `/NAME@base64/VALUE` when VALUE is not a plain path segment.
pub fn grouping_label(name: &str, value: &str) -> String {
    let plain =
        !value.is_empty() && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'-'));
    if plain {
        format!("/{name}/{value}")
    } else {
        format!("/{name}@base64/{}", base64url(value.as_bytes()))
    }
}

/// Resolves flags over the environment over defaults, validates, and builds the URLs.
pub fn derive(flags: &[Option<String>; 7], env: &dyn Fn(&str) -> Option<String>) -> Result<Endpoints, DeployError> {
    let mut values: Vec<(String, String)> = Vec::with_capacity(7);
    for (i, (flag, var, default)) in INPUTS.iter().enumerate() {
        let (value, from) = match (&flags[i], env(var).filter(|v| !v.is_empty())) {
            (Some(v), _) => (v.clone(), (*flag).to_owned()),
            (None, Some(v)) => (v, (*var).to_owned()),
            (None, None) => (default.map_or_else(hostname, str::to_owned), format!("the default of {flag}")),
        };
        values.push((value, from));
    }
    let bad = |(v, from): &(String, String), what: &str| {
        DeployError::Usage(format!("{from}: {v:?} is not accepted; accepted: {what}"))
    };
    let host = |i: usize| -> Result<String, DeployError> {
        if valid_host(&values[i].0) {
            Ok(url_host(&values[i].0))
        } else {
            Err(bad(&values[i], "a host name, an IPv4 address or an IPv6 address"))
        }
    };
    let port = |i: usize| -> Result<u16, DeployError> {
        match values[i].0.parse::<u16>() {
            Ok(p) if p > 0 => Ok(p),
            _ => Err(bad(&values[i], "a port from 1 to 65535")),
        }
    };
    let (push_host, push_port, query_host, query_port) = (host(0)?, port(1)?, host(2)?, port(3)?);
    let scheme = match values[4].0.as_str() {
        s @ ("http" | "https") => s.to_owned(),
        _ => return Err(bad(&values[4], "http or https")),
    };
    for i in [5, 6] {
        let v = &values[i].0;
        if v.is_empty() || v.chars().any(char::is_control) || v.len() > 256 {
            return Err(bad(&values[i], "1 to 256 characters without control characters"));
        }
    }
    let push_url = format!(
        "{scheme}://{push_host}:{push_port}/metrics{}{}",
        grouping_label("job", &values[5].0),
        grouping_label("instance", &values[6].0)
    );
    let query_url = format!("{scheme}://{query_host}:{query_port}/api/v1/query");
    Ok(Endpoints { push_url, query_url })
}

/// Derives the endpoints and merges them into the env file.
pub fn run(opts: &Options, env: &dyn Fn(&str) -> Option<String>) -> Result<Report, DeployError> {
    let endpoints = derive(&opts.flags, env)?;
    ensure_parent(&opts.env_file)?;
    let mut file = EnvFile::load(&opts.env_file)?;
    let mut outcomes = Vec::new();
    for (key, value) in [(PROM_PUSH_URL, &endpoints.push_url), (PROM_QUERY_URL, &endpoints.query_url)] {
        let outcome = match file.get(key) {
            Some(old) if old == value => Outcome::Unchanged,
            Some(old) if !old.is_empty() && !opts.force => Outcome::KeptDifferent { derived: value.clone() },
            _ => {
                file.set(key, value)?;
                Outcome::Written
            }
        };
        outcomes.push((key, outcome));
    }
    let written = outcomes.iter().any(|(_, o)| *o == Outcome::Written);
    let warning = if written { file.save(&opts.env_file)? } else { crate::support::envfile::tighten(&opts.env_file)? };
    let exports = if opts.print_exports {
        [PROM_PUSH_URL, PROM_QUERY_URL].iter().filter_map(|k| file.get(k).map(|v| export_line(k, v))).collect()
    } else {
        Vec::new()
    };
    Ok(Report { endpoints, outcomes, written, warning, exports })
}

impl Report {
    /// Status lines for stderr (URLs hold no secret).
    pub fn summary(&self, path: &std::path::Path) -> Vec<String> {
        let mut lines = Vec::new();
        for (key, outcome) in &self.outcomes {
            lines.push(match outcome {
                Outcome::Written => format!("prometheus-endpoints: {}: {key} written", path.display()),
                Outcome::Unchanged => format!("prometheus-endpoints: {}: {key} unchanged", path.display()),
                Outcome::KeptDifferent { derived } => format!(
                    "prometheus-endpoints: {}: {key} kept; it differs from the derived {derived} (use --force to replace it)",
                    path.display()
                ),
            });
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none(_: &str) -> Option<String> {
        None
    }

    fn flags(pairs: &[(usize, &str)]) -> [Option<String>; 7] {
        let mut f: [Option<String>; 7] = Default::default();
        for (i, v) in pairs {
            f[*i] = Some((*v).to_owned());
        }
        f
    }

    #[test]
    fn defaults() {
        let e = derive(&flags(&[(6, "bot1")]), &none).expect("valid");
        assert_eq!(e.push_url, "http://localhost:9091/metrics/job/mt5bot/instance/bot1");
        assert_eq!(e.query_url, "http://localhost:9090/api/v1/query");
        let e = derive(&flags(&[]), &none).expect("valid");
        assert!(e.push_url.ends_with(&grouping_label("instance", &hostname())));
    }

    #[test]
    fn flags_win_over_env_which_wins_over_defaults() {
        let env = |k: &str| match k {
            "PROM_ENDPOINTS_PUSH_HOST" => Some("pg.example".to_owned()),
            "PROM_ENDPOINTS_QUERY_PORT" => Some("19090".to_owned()),
            "PROM_ENDPOINTS_SCHEME" => Some("https".to_owned()),
            _ => None,
        };
        let e = derive(&flags(&[(0, "flag-host"), (6, "i")]), &env).expect("valid");
        assert_eq!(e.push_url, "https://flag-host:9091/metrics/job/mt5bot/instance/i");
        assert_eq!(e.query_url, "https://localhost:19090/api/v1/query");
    }

    #[test]
    fn grouping_values_use_base64_when_needed() {
        assert_eq!(grouping_label("instance", "bot-1.eu"), "/instance/bot-1.eu");
        assert_eq!(grouping_label("instance", "a/b"), "/instance@base64/YS9i");
        assert_eq!(grouping_label("job", "my job"), "/job@base64/bXkgam9i");
        let e = derive(&flags(&[(0, "::1"), (6, "x")]), &none).expect("ipv6");
        assert!(e.push_url.starts_with("http://[::1]:9091/"), "{}", e.push_url);
    }

    #[test]
    fn bad_values_name_their_source() {
        let env = |k: &str| (k == "PROM_ENDPOINTS_PUSH_PORT").then(|| "99999".to_owned());
        let e = derive(&flags(&[(6, "x")]), &env).expect_err("port");
        assert!(e.to_string().starts_with("PROM_ENDPOINTS_PUSH_PORT: \"99999\""), "{e}");
        assert!(derive(&flags(&[(0, "bad_host!"), (6, "x")]), &none).is_err());
        assert!(derive(&flags(&[(4, "ftp"), (6, "x")]), &none).is_err());
        assert!(derive(&flags(&[(5, ""), (6, "x")]), &none).expect_err("job").to_string().contains("--job"));
        assert!(derive(&flags(&[(3, "0"), (6, "x")]), &none).is_err());
    }
}
