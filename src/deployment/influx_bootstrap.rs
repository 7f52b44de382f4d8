//! `mt5bot influx-bootstrap`: set up or ensure an InfluxDB v2 org, bucket and a token scoped to that
//! bucket, and write them to `deploy/secrets/influx.env`.
//!
//! 1. `GET /api/v2/setup`. When setup is allowed, `POST /api/v2/setup` creates the admin user, org
//!    and bucket, and the admin credentials are saved at once to `influx-admin.env` beside the env
//!    file (0600; never loaded by the service), so they are not lost if a later step fails.
//! 2. Otherwise, with the admin token (flag, environment, or `influx-admin.env`), the org is looked
//!    up and the bucket found or created; its retention is brought to the requested one.
//! 3. The bot's token reads and writes that one bucket. A token already in the env file that still
//!    works for the bucket is kept: InfluxDB 2.9+ never shows a token again after creating it, so the
//!    env file is the only place to reuse one from. A token that no longer works is only replaced
//!    with `--force`.
//!
//! Requests are retried with backoff on connection errors and 5xx only, within a bounded time.
//! Nothing is written when a step fails (beyond the admin credentials of a setup that succeeded), and
//! no token or password ever appears in a message.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{ensure_parent, DeployError};
use crate::support::encoding::percent_encode;
use crate::support::envfile::{export_line, EnvFile};

pub const INFLUXDB_URL: &str = "INFLUXDB_URL";
pub const INFLUXDB_ORG: &str = "INFLUXDB_ORG";
pub const INFLUXDB_BUCKET: &str = "INFLUXDB_BUCKET";
use crate::support::names::INFLUXDB_TOKEN;
pub const ADMIN_USERNAME: &str = "INFLUXDB_ADMIN_USERNAME";
pub const ADMIN_PASSWORD: &str = "INFLUXDB_ADMIN_PASSWORD";
pub const ADMIN_TOKEN: &str = "INFLUXDB_ADMIN_TOKEN";

/// The env file written by default, and the admin file's name beside it.
pub const DEFAULT_ENV_FILE: &str = "deploy/secrets/influx.env";
pub const ADMIN_FILE_NAME: &str = "influx-admin.env";

/// Flag, environment variable, default, for each input that has an environment form.
pub const INPUTS: [(&str, &str, Option<&str>); 8] = [
    ("--url", "INFLUXDB_BOOTSTRAP_URL", None),
    ("--org", "INFLUXDB_BOOTSTRAP_ORG", None),
    ("--bucket", "INFLUXDB_BOOTSTRAP_BUCKET", None),
    ("--username", "INFLUXDB_BOOTSTRAP_USERNAME", Some("admin")),
    ("--password-file", "INFLUXDB_BOOTSTRAP_PASSWORD_FILE", None),
    ("--retention", "INFLUXDB_BOOTSTRAP_RETENTION", Some("infinite")),
    ("--admin-token", "INFLUXDB_BOOTSTRAP_ADMIN_TOKEN", None),
    ("--timeout", "INFLUXDB_BOOTSTRAP_TIMEOUT", Some("30s")),
];

/// InfluxDB refuses retention periods shorter than an hour (other than 0, infinite).
pub const MIN_RETENTION_SECONDS: u64 = 3600;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    pub env_file: PathBuf,
    /// Flag values in the order of [`INPUTS`].
    pub flags: [Option<String>; 8],
    pub force: bool,
    pub print_exports: bool,
}

/// The inputs after flags, environment and defaults, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub url: String,
    pub org: String,
    pub bucket: String,
    pub username: String,
    pub password_file: Option<PathBuf>,
    pub retention_seconds: u64,
    pub admin_token: Option<String>,
    pub timeout: Duration,
}

/// Parses `0`/`infinite`, or a number with `s`, `m`, `h`, `d` or `w`, into seconds.
pub fn parse_retention(text: &str) -> Result<u64, String> {
    let t = text.trim().to_ascii_lowercase();
    if t == "0" || t == "infinite" || t == "inf" || t == "0s" {
        return Ok(0);
    }
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => 0,
    };
    let secs = num.parse::<u64>().ok().filter(|_| scale > 0).and_then(|n| n.checked_mul(scale));
    match secs {
        Some(s) if s >= MIN_RETENTION_SECONDS => Ok(s),
        Some(_) => Err(format!("{text:?} is shorter than InfluxDB's minimum of 1h; accepted: 0 or infinite, or at least 1h")),
        None => Err(format!("{text:?} is not a retention period; accepted: 0 or infinite, or a number with s, m, h, d or w (3600s, 72h, 90d)")),
    }
}

/// Human form of a retention in seconds.
pub fn format_retention(secs: u64) -> String {
    match secs {
        0 => "infinite".into(),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s => format!("{s}s"),
    }
}

/// Resolves flags over the environment over defaults.
pub fn resolve(opts: &Options, env: &dyn Fn(&str) -> Option<String>) -> Result<Resolved, DeployError> {
    let mut v: Vec<Option<(String, String)>> = Vec::new();
    for (i, (flag, var, default)) in INPUTS.iter().enumerate() {
        v.push(match (&opts.flags[i], env(var).filter(|x| !x.is_empty())) {
            (Some(x), _) => Some((x.clone(), (*flag).to_owned())),
            (None, Some(x)) => Some((x, (*var).to_owned())),
            (None, None) => default.map(|d| (d.to_owned(), format!("the default of {flag}"))),
        });
    }
    let required = |i: usize| -> Result<String, DeployError> {
        v[i].clone()
            .map(|(x, _)| x)
            .ok_or_else(|| DeployError::Usage(format!("{} is required (or set {})", INPUTS[i].0, INPUTS[i].1)))
    };
    let url = required(0)?.trim_end_matches('/').to_owned();
    if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() < 10 {
        return Err(DeployError::Usage(format!(
            "{}: {url:?} is not accepted; accepted: an http:// or https:// URL such as http://influxdb:8086",
            v[0].as_ref().map_or("--url", |x| x.1.as_str())
        )));
    }
    let (org, bucket) = (required(1)?, required(2)?);
    let username = required(3)?;
    let retention_seconds = {
        let (text, from) = v[5].clone().unwrap_or_default();
        parse_retention(&text).map_err(|e| DeployError::Usage(format!("{from}: {e}")))?
    };
    let timeout = {
        let (text, from) = v[7].clone().unwrap_or_default();
        crate::config::parse_duration(&text).ok().filter(|d| *d >= Duration::from_secs(1)).ok_or_else(|| {
            DeployError::Usage(format!(
                "{from}: {text:?} is not accepted; accepted: a duration of at least 1s (e.g. 30s)"
            ))
        })?
    };
    Ok(Resolved {
        url,
        org,
        bucket,
        username,
        password_file: v[4].clone().map(|(p, _)| PathBuf::from(p)),
        retention_seconds,
        admin_token: v[6].clone().map(|(t, _)| t),
        timeout,
    })
}

/// The admin env file beside the bot's env file.
pub fn admin_file(env_file: &Path) -> PathBuf {
    env_file.parent().unwrap_or(Path::new(".")).join(ADMIN_FILE_NAME)
}

/// An InfluxDB v2 API client with bounded retries.
struct Api {
    agent: ureq::Agent,
    base: String,
    deadline: Instant,
}

/// One answer: status and JSON body (`Null` when empty or not JSON).
struct Answer {
    status: u16,
    body: Value,
}

impl Answer {
    fn message(&self) -> String {
        let code = self.body["code"].as_str().unwrap_or("");
        let msg = self.body["message"].as_str().unwrap_or("");
        match (code.is_empty(), msg.is_empty()) {
            (true, true) => format!("HTTP {}", self.status),
            (false, true) => format!("HTTP {} {code}", self.status),
            _ => format!("HTTP {} {code}: {msg}", self.status),
        }
    }
}

fn describe_transport(e: &ureq::Error, url: &str) -> String {
    match e {
        ureq::Error::Tls(m) => format!("TLS failure talking to {url}: {m} (does the server speak https on that port, with a certificate this machine trusts?)"),
        ureq::Error::Rustls(m) => format!("TLS failure talking to {url}: {m} (does the server speak https on that port, with a certificate this machine trusts?)"),
        ureq::Error::HostNotFound => format!("cannot reach InfluxDB at {url}: host not found (check --url)"),
        ureq::Error::ConnectionFailed => format!("cannot reach InfluxDB at {url}: connection failed (is it running? is the URL right?)"),
        ureq::Error::Timeout(t) => format!("cannot reach InfluxDB at {url}: timed out ({t})"),
        // rustls reports a failed handshake as invalid data on the socket.
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::InvalidData && url.starts_with("https://") => format!(
            "TLS failure talking to {url}: {io} (does the server speak https on that port, with a certificate this machine trusts?)"
        ),
        ureq::Error::Io(io) => format!("cannot reach InfluxDB at {url}: {io} (is it running? is the URL right?)"),
        other => format!("request to InfluxDB at {url} failed: {other}"),
    }
}

fn retryable(e: &ureq::Error) -> bool {
    match e {
        // Invalid data is a protocol (TLS) failure: retrying cannot help.
        ureq::Error::Io(io) => io.kind() != std::io::ErrorKind::InvalidData,
        ureq::Error::ConnectionFailed | ureq::Error::Timeout(_) | ureq::Error::HostNotFound => true,
        _ => false,
    }
}

impl Api {
    fn new(url: &str, timeout: Duration) -> Api {
        let agent: ureq::Agent = crate::support::http::agent_with_connect_timeout(
            "influx-bootstrap",
            Duration::from_secs(5),
            Duration::from_secs(15),
        );
        Api { agent, base: url.to_owned(), deadline: Instant::now() + timeout }
    }

    /// Sends a request; retries connection errors and 5xx with backoff until the deadline.
    fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> Result<Answer, DeployError> {
        let url = format!("{}{path}", self.base);
        let mut delay = Duration::from_millis(250);
        loop {
            let result = self.once(method, &url, token, body);
            let retry = match &result {
                Ok(a) => a.status >= 500,
                Err(e) => retryable(e),
            };
            if !retry || Instant::now() + delay > self.deadline {
                return match result {
                    Ok(a) => Ok(a),
                    Err(e) => Err(DeployError::Failed(describe_transport(&e, &self.base))),
                };
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_secs(4));
        }
    }

    fn once(&self, method: &str, url: &str, token: Option<&str>, body: Option<&Value>) -> Result<Answer, ureq::Error> {
        let auth = token.map(|t| format!("Token {t}"));
        let mut resp = match (method, body) {
            ("GET", _) => {
                let mut r = self.agent.get(url).header("Accept", "application/json");
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.call()?
            }
            (m, body) => {
                let mut r = match m {
                    "PATCH" => self.agent.patch(url),
                    _ => self.agent.post(url),
                }
                .header("Accept", "application/json");
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                match body {
                    Some(b) => r.header("Content-Type", "application/json").send(b.to_string())?,
                    None => r.header("Content-Type", "text/plain; charset=utf-8").send("")?,
                }
            }
        };
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(Answer { status, body })
    }
}

/// A 32-character password from the OS CSPRNG (letters and digits).
pub fn generate_password() -> Result<String, DeployError> {
    use rand::TryRng;
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut out = String::with_capacity(32);
    let mut rng = rand::rngs::SysRng;
    while out.len() < 32 {
        let mut b = [0u8; 1];
        rng.try_fill_bytes(&mut b).map_err(|e| DeployError::Failed(format!("the OS random generator failed: {e}")))?;
        // Rejection sampling keeps the choice uniform.
        if usize::from(b[0]) < 256 - 256 % ALPHABET.len() {
            out.push(ALPHABET[usize::from(b[0]) % ALPHABET.len()] as char);
        }
    }
    Ok(out)
}

fn read_password(path: &Path) -> Result<String, DeployError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| DeployError::Failed(format!("cannot read the password file {}: {e}", path.display())))?;
    let pw = text.trim_end_matches(['\n', '\r']).to_owned();
    if !(8..=72).contains(&pw.chars().count()) {
        return Err(DeployError::Usage(format!(
            "the password in {} has {} characters; InfluxDB accepts 8 to 72",
            path.display(),
            pw.chars().count()
        )));
    }
    Ok(pw)
}

/// What the run did, for the operator.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub steps: Vec<String>,
    pub written: bool,
    pub warnings: Vec<String>,
    pub exports: Vec<String>,
}

fn unauthorized(a: &Answer, what: &str) -> DeployError {
    DeployError::Failed(format!(
        "InfluxDB refused the admin token while {what} ({}); check --admin-token, INFLUXDB_BOOTSTRAP_ADMIN_TOKEN or {ADMIN_FILE_NAME}",
        a.message()
    ))
}

fn unexpected(a: &Answer, what: &str) -> DeployError {
    let hint = if a.status == 422 { " (a conflict: another client changed the same thing?)" } else { "" };
    DeployError::Failed(format!("InfluxDB answered {} while {what}{hint}", a.message()))
}

fn retention_of(bucket: &Value) -> u64 {
    bucket["retentionRules"].as_array().and_then(|r| r.first()).and_then(|r| r["everySeconds"].as_u64()).unwrap_or(0)
}

fn retention_rules(secs: u64) -> Value {
    if secs == 0 {
        json!([])
    } else {
        json!([{ "type": "expire", "everySeconds": secs }])
    }
}

/// Runs the bootstrap against the server.
pub fn run(opts: &Options, r: &Resolved) -> Result<Report, DeployError> {
    let api = Api::new(&r.url, r.timeout);
    let mut report = Report::default();
    let env_path = &opts.env_file;
    let admin_path = admin_file(env_path);
    let mut env = EnvFile::load(env_path)?;
    let admin = EnvFile::load(&admin_path)?;

    // 1. Setup, or the admin token.
    let setup = api.call("GET", "/api/v2/setup", None, None)?;
    if setup.status != 200 {
        return Err(unexpected(&setup, "asking whether setup is allowed (GET /api/v2/setup)"));
    }
    let (admin_token, org_id, bucket_id) = if setup.body["allowed"].as_bool() == Some(true) {
        if admin.get(ADMIN_TOKEN).is_some() && !opts.force {
            return Err(DeployError::Failed(format!(
                "{} holds admin credentials, but {} has not been set up (a new or reset instance?); rerun with --force to set it up and replace them",
                admin_path.display(),
                r.url
            )));
        }
        let password = match &r.password_file {
            Some(p) => read_password(p)?,
            None => generate_password()?,
        };
        let mut body = json!({
            "username": r.username,
            "password": password,
            "org": r.org,
            "bucket": r.bucket,
            "retentionPeriodSeconds": r.retention_seconds,
        });
        if let Some(t) = &r.admin_token {
            body["token"] = json!(t);
        }
        let a = api.call("POST", "/api/v2/setup", None, Some(&body))?;
        if a.status != 201 {
            return Err(unexpected(&a, "running the first setup (POST /api/v2/setup)"));
        }
        let token = a.body["auth"]["token"].as_str().map(str::to_owned).or_else(|| r.admin_token.clone());
        let (Some(token), Some(org_id), Some(bucket_id)) =
            (token, a.body["org"]["id"].as_str(), a.body["bucket"]["id"].as_str())
        else {
            return Err(DeployError::Failed("InfluxDB's setup answer lacks the org, bucket or token".into()));
        };
        // Save the admin credentials now: they exist nowhere else.
        ensure_parent(&admin_path)?;
        let mut admin_file = EnvFile::load(&admin_path)?;
        admin_file.set(INFLUXDB_URL, &r.url)?;
        admin_file.set(ADMIN_USERNAME, &r.username)?;
        admin_file.set(ADMIN_PASSWORD, &password)?;
        admin_file.set(ADMIN_TOKEN, &token)?;
        if let Some(w) = admin_file.save(&admin_path)? {
            report.warnings.push(w);
        }
        report.steps.push(format!(
            "set up {}: admin user {:?}, org {:?}, bucket {:?} (retention {}); admin credentials saved to {}",
            r.url,
            r.username,
            r.org,
            r.bucket,
            format_retention(r.retention_seconds),
            admin_path.display()
        ));
        (token, org_id.to_owned(), bucket_id.to_owned())
    } else {
        let token = match (&r.admin_token, admin.get(ADMIN_TOKEN)) {
            (Some(t), _) => t.clone(),
            (None, Some(t)) => t.to_owned(),
            (None, None) => {
                return Err(DeployError::Usage(format!(
                    "{} is already set up: give the admin token with --admin-token or INFLUXDB_BOOTSTRAP_ADMIN_TOKEN (or keep {} beside the env file)",
                    r.url, ADMIN_FILE_NAME
                )))
            }
        };
        report.steps.push(format!("{} is already set up", r.url));
        let a = api.call("GET", &format!("/api/v2/orgs?org={}", percent_encode(&r.org)), Some(&token), None)?;
        let org_id = match a.status {
            200 => a.body["orgs"]
                .as_array()
                .and_then(|o| o.iter().find(|o| o["name"] == r.org.as_str()))
                .and_then(|o| o["id"].as_str())
                .map(str::to_owned),
            404 => None,
            401 => return Err(unauthorized(&a, "looking up the org")),
            _ => return Err(unexpected(&a, "looking up the org")),
        };
        let Some(org_id) = org_id else {
            return Err(DeployError::Failed(format!(
                "organization {:?} not found on {} (names are case-sensitive; check --org)",
                r.org, r.url
            )));
        };
        let a = api.call(
            "GET",
            &format!("/api/v2/buckets?orgID={}&name={}", percent_encode(&org_id), percent_encode(&r.bucket)),
            Some(&token),
            None,
        )?;
        let existing = match a.status {
            200 => {
                a.body["buckets"].as_array().and_then(|b| b.iter().find(|b| b["name"] == r.bucket.as_str())).cloned()
            }
            404 => None,
            401 => return Err(unauthorized(&a, "looking up the bucket")),
            _ => return Err(unexpected(&a, "looking up the bucket")),
        };
        let bucket_id = match existing {
            Some(b) => {
                let id = b["id"].as_str().unwrap_or_default().to_owned();
                let current = retention_of(&b);
                if current == r.retention_seconds {
                    report.steps.push(format!(
                        "bucket {:?} exists (retention {})",
                        r.bucket,
                        format_retention(current)
                    ));
                } else {
                    let body = json!({ "retentionRules": retention_rules(r.retention_seconds) });
                    let a = api.call(
                        "PATCH",
                        &format!("/api/v2/buckets/{}", percent_encode(&id)),
                        Some(&token),
                        Some(&body),
                    )?;
                    if a.status != 200 {
                        return Err(unexpected(&a, "updating the bucket's retention"));
                    }
                    report.steps.push(format!(
                        "bucket {:?} retention updated from {} to {}",
                        r.bucket,
                        format_retention(current),
                        format_retention(r.retention_seconds)
                    ));
                }
                id
            }
            None => {
                let body = json!({ "orgID": org_id, "name": r.bucket, "retentionRules": retention_rules(r.retention_seconds) });
                let a = api.call("POST", "/api/v2/buckets", Some(&token), Some(&body))?;
                match a.status {
                    201 => {}
                    401 => return Err(unauthorized(&a, "creating the bucket")),
                    _ => return Err(unexpected(&a, "creating the bucket")),
                }
                report.steps.push(format!(
                    "bucket {:?} created (retention {})",
                    r.bucket,
                    format_retention(r.retention_seconds)
                ));
                a.body["id"].as_str().unwrap_or_default().to_owned()
            }
        };
        (token, org_id, bucket_id)
    };
    if bucket_id.is_empty() {
        return Err(DeployError::Failed("InfluxDB gave the bucket no id".into()));
    }

    // 3. The bot's token.
    let works = |t: &str| -> Result<bool, DeployError> {
        let read = api.call("GET", &format!("/api/v2/buckets/{}", percent_encode(&bucket_id)), Some(t), None)?;
        if read.status != 200 {
            return Ok(false);
        }
        let write = api.call(
            "POST",
            &format!(
                "/api/v2/write?orgID={}&bucket={}&precision=s",
                percent_encode(&org_id),
                percent_encode(&bucket_id)
            ),
            Some(t),
            None,
        )?;
        // The write carries no points. A 2.x server checks the bucket and the token's write
        // permission first (404, 401, 403) and only then the body: an empty one is answered 400
        // `invalid` "writing requires points" (http/points/points_parser.go), which proves the
        // permission. A server that takes an empty write answers 204.
        Ok(write.status == 204 || (write.status == 400 && write.body["code"] == "invalid"))
    };
    let token = match env.get(INFLUXDB_TOKEN).filter(|t| !t.is_empty()).map(str::to_owned) {
        Some(t) if works(&t)? => {
            report.steps.push(format!("{INFLUXDB_TOKEN} kept: it still reads and writes bucket {:?}", r.bucket));
            t
        }
        Some(_) if !opts.force => {
            return Err(DeployError::Failed(format!(
                "{INFLUXDB_TOKEN} in {} no longer reads and writes bucket {:?} (revoked, or made for another bucket?); rerun with --force to create a new token",
                env_path.display(),
                r.bucket
            )))
        }
        existing => {
            let body = json!({
                "orgID": org_id,
                "description": format!("mt5bot: read and write bucket {}", r.bucket),
                "permissions": [
                    { "action": "read", "resource": { "type": "buckets", "id": bucket_id, "orgID": org_id } },
                    { "action": "write", "resource": { "type": "buckets", "id": bucket_id, "orgID": org_id } },
                ],
            });
            let a = api.call("POST", "/api/v2/authorizations", Some(&admin_token), Some(&body))?;
            match a.status {
                201 => {}
                401 => return Err(unauthorized(&a, "creating the bot's token")),
                _ => return Err(unexpected(&a, "creating the bot's token")),
            }
            let Some(t) = a.body["token"].as_str() else {
                return Err(DeployError::Failed("InfluxDB's authorization answer has no token".into()));
            };
            let why = if existing.is_some() { "replaced the token that no longer worked" } else { "created" };
            report.steps.push(format!("{INFLUXDB_TOKEN} {why}: read and write on bucket {:?} only", r.bucket));
            t.to_owned()
        }
    };

    // 4. The env file.
    let mut changed = false;
    for (k, v) in [
        (INFLUXDB_URL, r.url.as_str()),
        (INFLUXDB_ORG, r.org.as_str()),
        (INFLUXDB_BUCKET, r.bucket.as_str()),
        (INFLUXDB_TOKEN, token.as_str()),
    ] {
        changed |= env.set(k, v)?;
    }
    if changed {
        ensure_parent(env_path)?;
        if let Some(w) = env.save(env_path)? {
            report.warnings.push(w);
        }
        report.steps.push(format!("{} written", env_path.display()));
    } else {
        report.steps.push(format!("{} unchanged: nothing to do", env_path.display()));
        if let Some(w) = crate::support::envfile::tighten(env_path)? {
            report.warnings.push(w);
        }
    }
    report.written = changed;
    if opts.print_exports {
        for k in [INFLUXDB_URL, INFLUXDB_ORG, INFLUXDB_BUCKET, INFLUXDB_TOKEN] {
            if let Some(v) = env.get(k) {
                report.exports.push(export_line(k, v));
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_forms() {
        assert_eq!(parse_retention("0"), Ok(0));
        assert_eq!(parse_retention("infinite"), Ok(0));
        assert_eq!(parse_retention("90d"), Ok(90 * 86_400));
        assert_eq!(parse_retention("72h"), Ok(72 * 3600));
        assert_eq!(parse_retention("3600s"), Ok(3600));
        assert!(parse_retention("30m").expect_err("short").contains("minimum of 1h"));
        assert!(parse_retention("59m").is_err());
        assert!(parse_retention("forever").expect_err("bad").contains("accepted"));
        assert!(parse_retention("99999999999999999999d").is_err());
        assert_eq!(format_retention(90 * 86_400), "90d");
        assert_eq!(format_retention(0), "infinite");
    }

    #[test]
    fn flags_over_env_and_required_inputs() {
        let mut o = Options { env_file: "x".into(), ..Default::default() };
        o.flags[0] = Some("http://flag:8086/".into());
        let env = |k: &str| match k {
            "INFLUXDB_BOOTSTRAP_URL" => Some("http://env:8086".to_owned()),
            "INFLUXDB_BOOTSTRAP_ORG" => Some("trading".to_owned()),
            "INFLUXDB_BOOTSTRAP_BUCKET" => Some("mt5_metrics".to_owned()),
            "INFLUXDB_BOOTSTRAP_RETENTION" => Some("72h".to_owned()),
            _ => None,
        };
        let r = resolve(&o, &env).expect("valid");
        assert_eq!((r.url.as_str(), r.org.as_str(), r.retention_seconds), ("http://flag:8086", "trading", 72 * 3600));
        assert_eq!(r.username, "admin");
        let e = resolve(&o, &|_| None).expect_err("org missing");
        assert!(e.to_string().contains("--org is required (or set INFLUXDB_BOOTSTRAP_ORG)"), "{e}");
        o.flags[0] = Some("influxdb:8086".into());
        assert!(resolve(&o, &env).expect_err("scheme").to_string().contains("http:// or https://"));
    }

    #[test]
    fn generated_passwords_fit_influxdb() {
        let p = generate_password().expect("rng");
        assert_eq!(p.len(), 32);
        assert!(p.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(p, generate_password().expect("rng"));
    }
}
