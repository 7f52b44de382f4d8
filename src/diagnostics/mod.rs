//! Nightly diagnostics: `mt5bot diagnostics` writes a report (`<UTC date>T<time>Z.json` and a
//! readable `.txt` beside it) of what runs where, checks it for drift, and pushes the outcome to
//! the Pushgateway, where the alert rules turn a mismatch into a page that carries its fix.
//!
//! Mismatch kinds (each `diagnostics_mismatch{kind}` 1 or 0):
//! - `binary`: the running daemon (its `/metrics` `mt5bot_build_info`) differs from this binary:
//!   restart it, or reinstall with `make install`;
//! - `dependencies`: run from a checkout, the binary's recorded `Cargo.lock` differs from the one
//!   there: rebuild with `cargo build --release --locked`;
//! - `data`: a dataset is missing, changed or unlisted in the manifest: run
//!   `mt5bot check-data-versions`.
//!
//! Exit codes: 0 clean, 1 mismatch, 2 could not run. A run that fails still writes its report;
//! `diagnostics_last_success_timestamp_seconds` is only pushed after a clean run. Reports are
//! written atomically, so a run killed mid-way leaves no partial file. No secret is read into it:
//! env files are listed by name and mode only.

pub mod data_versions;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::support::build_info;
use crate::telemetry::pushgateway::{self, Mode, PROM_PUSH_URL};

/// The report format's name and version.
pub const SCHEMA: &str = "mt5bot-diagnostics/1";
pub const DEFAULT_OUT: &str = "logs/diagnostics";
pub const DEFAULT_SECRETS_DIR: &str = "deploy/secrets";
pub use crate::support::names::PROM_QUERY_URL;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub config: Option<PathBuf>,
    pub out: PathBuf,
    pub manifest: PathBuf,
    pub secrets_dir: PathBuf,
    /// `Some(true)`: push (PROM_PUSH_URL required); `Some(false)`: never; `None`: when set.
    pub push: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Dependency {
    pub name: String,
    pub version: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct BinaryInfo {
    pub path: String,
    pub version: &'static str,
    pub commit: &'static str,
    pub rustc: &'static str,
    pub target: &'static str,
    pub profile: &'static str,
    pub cargo_lock_sha256: &'static str,
    pub dependencies: Vec<Dependency>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SystemInfo {
    pub hostname: String,
    pub os: String,
    pub kernel: String,
    pub cpu_model: String,
    pub cpu_count: usize,
    pub memory_total_mb: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConfigInfo {
    pub source: String,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct EnvFileInfo {
    pub path: String,
    pub mode: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct DiskInfo {
    pub path: String,
    pub free_mb: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DaemonInfo {
    pub url: String,
    pub reachable: bool,
    pub version: Option<String>,
    pub commit: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DataInfo {
    pub manifest: String,
    pub present: bool,
    pub datasets: Vec<data_versions::Row>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct PrometheusSummary {
    pub url: String,
    pub available: bool,
    pub error: Option<String>,
    pub peak_cpu_usage_pct: Option<f64>,
    pub peak_rss_usage_mb: Option<f64>,
    pub broker_reconnects: Option<f64>,
    pub trades: Option<f64>,
    pub drift_events: Option<f64>,
    pub alerts_fired: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mismatch {
    pub kind: &'static str,
    pub detail: String,
    pub instruction: String,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub generated_at: String,
    pub status: &'static str,
    pub binary: BinaryInfo,
    pub system: SystemInfo,
    pub config: Option<ConfigInfo>,
    pub env_files: Vec<EnvFileInfo>,
    pub disk: Vec<DiskInfo>,
    pub daemon: Option<DaemonInfo>,
    pub data: Option<DataInfo>,
    /// The config's `identity:` labels, put on the pushed series (not part of the JSON report).
    #[serde(skip)]
    pub identity: Vec<(String, String)>,
    pub prometheus_24h: Option<PrometheusSummary>,
    pub mismatches: Vec<Mismatch>,
    pub errors: Vec<String>,
}

/// Mismatch kinds, all pushed every run (0 when clear).
pub const KINDS: [&str; 3] = ["binary", "dependencies", "data"];

fn first_line_value(text: &str, key: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .map(|v| v.trim().trim_start_matches(':').trim().trim_matches('"').to_owned())
}

fn system_info() -> SystemInfo {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let meminfo = read("/proc/meminfo");
    SystemInfo {
        hostname: crate::support::host::hostname(),
        os: first_line_value(&read("/etc/os-release"), "PRETTY_NAME=")
            .unwrap_or_else(|| std::env::consts::OS.to_owned()),
        kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
        cpu_model: first_line_value(&cpuinfo, "model name").unwrap_or_else(|| "unknown".into()),
        cpu_count: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        memory_total_mb: first_line_value(&meminfo, "MemTotal")
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .map(|kib| kib / 1024)
            .unwrap_or(0),
    }
}

fn dependencies(lock_list: &str) -> Vec<Dependency> {
    lock_list
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(n, v)| Dependency { name: n.to_owned(), version: v.to_owned() })
        .collect()
}

/// `name version` lines of a Cargo.lock text, sorted: the same reader `build.rs` uses.
pub use crate::support::lockfile::lock_packages;

fn free_mb(path: &Path) -> Option<u64> {
    // The folder may not exist yet: measure the file system it will be on.
    let existing = path
        .ancestors()
        .find(|p| p.as_os_str().is_empty() || p.exists())
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // `df` rather than statvfs: std has no binding and this runs once a night.
    let out = std::process::Command::new("df").arg("-Pk").arg(existing).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let kib: u64 = text.lines().nth(1)?.split_whitespace().nth(3)?.parse().ok()?;
    Some(kib / 1024)
}

/// `mt5bot_build_info` labels from a daemon's `/metrics`.
fn daemon_build(listen: &str) -> DaemonInfo {
    let url = format!("http://{listen}/metrics");
    let agent = crate::support::http::agent("diagnostics", Duration::from_secs(5));
    let body = agent
        .get(&url)
        .call()
        .ok()
        .filter(|r| r.status().is_success())
        .and_then(|mut r| r.body_mut().read_to_string().ok());
    let line = body.as_deref().and_then(|b| b.lines().find(|l| l.starts_with("mt5bot_build_info{")).map(str::to_owned));
    let label = |name: &str| -> Option<String> {
        let l = line.as_deref()?;
        let start = l.find(&format!("{name}=\""))? + name.len() + 2;
        Some(l[start..].split('"').next()?.to_owned())
    };
    DaemonInfo { reachable: body.is_some(), version: label("version"), commit: label("commit"), url }
}

/// The last 24 hours from Prometheus; unreachable is noted, not fatal.
pub fn prometheus_summary(url: &str) -> PrometheusSummary {
    let agent = crate::support::http::agent("diagnostics", Duration::from_secs(10));
    let mut s = PrometheusSummary { url: url.to_owned(), ..Default::default() };
    let scalar = |q: &str| -> Result<Option<f64>, String> {
        Ok(crate::telemetry::prom_query::query(&agent, url, q)?
            .first()
            .and_then(|r| r["value"][1].as_str()?.parse().ok()))
    };
    let run = || -> Result<PrometheusSummary, String> {
        let mut s = s.clone();
        s.peak_cpu_usage_pct = scalar("max(max_over_time(cpu_usage_pct[24h]))")?;
        s.peak_rss_usage_mb = scalar("max(max_over_time(rss_usage_mb[24h]))")?;
        s.broker_reconnects = scalar("sum(increase(broker_reconnects_total[24h]))")?;
        s.trades = scalar("sum(increase(trade_count[24h]))")?;
        s.drift_events = scalar("sum(increase(drift_events[24h]))")?;
        s.alerts_fired = crate::telemetry::prom_query::query(
            &agent,
            url,
            "count by (alertname) (max_over_time(ALERTS{alertstate=\"firing\"}[24h]))",
        )?
        .iter()
        .filter_map(|r| r["metric"]["alertname"].as_str().map(str::to_owned))
        .collect();
        s.alerts_fired.sort();
        s.available = true;
        Ok(s)
    };
    match run() {
        Ok(full) => full,
        Err(e) => {
            s.error = Some(e);
            s
        }
    }
}

/// Everything the report needs from outside, so tests can point it anywhere.
pub struct Inputs<'a> {
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// The repository's Cargo.lock, when run from a checkout.
    pub checkout_lock: Option<String>,
}

impl std::fmt::Debug for Inputs<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inputs")
            .field("checkout_lock", &self.checkout_lock.as_ref().map(String::len))
            .finish_non_exhaustive()
    }
}

/// Builds the report (without writing it).
pub fn build(opts: &Options, inputs: &Inputs<'_>) -> Report {
    let mut errors = Vec::new();
    let mut mismatches = Vec::new();
    let binary = BinaryInfo {
        path: std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_default(),
        version: build_info::VERSION,
        commit: build_info::GIT_COMMIT,
        rustc: build_info::RUSTC_VERSION,
        target: build_info::TARGET,
        profile: build_info::PROFILE,
        cargo_lock_sha256: build_info::CARGO_LOCK_SHA256,
        dependencies: dependencies(build_info::DEPENDENCIES),
    };

    let cfg = match &opts.config {
        Some(p) => Config::load(p).map_err(|e| e.to_string()),
        None => Ok(Config::embedded()),
    };
    let (config, cfg) = match cfg {
        Ok(c) => {
            let sha: String = Sha256::digest(c.to_yaml().as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
            (Some(ConfigInfo { source: c.source.clone(), sha256: sha }), Some(c))
        }
        Err(e) => {
            errors.push(format!("configuration: {e}"));
            (None, None)
        }
    };

    let mut env_files = Vec::new();
    if let Ok(entries) = std::fs::read_dir(&opts.secrets_dir) {
        let mut paths: Vec<PathBuf> =
            entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "env")).collect();
        paths.sort();
        for p in paths {
            let mode = std::fs::metadata(&p)
                .map(|m| format!("{:04o}", m.permissions().mode() & 0o7777))
                .unwrap_or_else(|_| "?".into());
            env_files.push(EnvFileInfo { path: p.display().to_string(), mode });
        }
    }

    let mut disk = Vec::new();
    if let Some(c) = &cfg {
        let log_dir = c
            .logging
            .file
            .parent()
            .map(Path::to_path_buf)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| ".".into());
        for p in [PathBuf::from("."), log_dir] {
            disk.push(DiskInfo { free_mb: free_mb(&p), path: p.display().to_string() });
        }
    }

    let daemon = cfg.as_ref().map(|c| daemon_build(&c.metrics.listen.to_string()));
    if let Some(d) = &daemon {
        if d.reachable
            && (d.version.as_deref() != Some(build_info::VERSION)
                || d.commit.as_deref() != Some(build_info::GIT_COMMIT))
        {
            mismatches.push(Mismatch {
                kind: "binary",
                detail: format!(
                    "the daemon at {} runs version {} commit {}, the installed binary is version {} commit {}",
                    d.url,
                    d.version.as_deref().unwrap_or("?"),
                    d.commit.as_deref().unwrap_or("?"),
                    build_info::VERSION,
                    build_info::GIT_COMMIT
                ),
                instruction: "restart mt5bot (systemctl restart mt5bot), or reinstall with `make install` if the installed binary is the stale one".into(),
            });
        }
    }

    if let Some(lock) = &inputs.checkout_lock {
        let repo = lock_packages(lock);
        let built: Vec<String> = build_info::DEPENDENCIES.lines().map(str::to_owned).collect();
        if repo != built {
            let added: Vec<&String> = repo.iter().filter(|p| !built.contains(p)).collect();
            let removed: Vec<&String> = built.iter().filter(|p| !repo.contains(p)).collect();
            mismatches.push(Mismatch {
                kind: "dependencies",
                detail: format!(
                    "Cargo.lock here differs from the one the binary was built with: {} only here ({}), {} only in the binary ({})",
                    added.len(),
                    added.iter().take(5).map(|s| s.as_str()).collect::<Vec<_>>().join(", "),
                    removed.len(),
                    removed.iter().take(5).map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                ),
                instruction: "rebuild with `cargo build --release --locked`, then reinstall (`make install`)".into(),
            });
        }
    }

    let data = match data_versions::load(&opts.manifest) {
        Ok(None) => Some(DataInfo { manifest: opts.manifest.display().to_string(), present: false, datasets: vec![] }),
        Ok(Some(m)) => match data_versions::check(&opts.manifest, &m, false) {
            Ok(rows) => {
                for r in rows.iter().filter(|r| r.status != data_versions::Status::Ok) {
                    mismatches.push(Mismatch {
                        kind: "data",
                        detail: format!("dataset {} is {}", r.path, r.status.as_str()),
                        instruction: format!(
                            "run `mt5bot check-data-versions --manifest {}` and sync the data from its source, or record the new hashes with `--write` if the change is intended",
                            opts.manifest.display()
                        ),
                    });
                }
                Some(DataInfo { manifest: opts.manifest.display().to_string(), present: true, datasets: rows })
            }
            Err(e) => {
                errors.push(e);
                None
            }
        },
        Err(e) => {
            errors.push(e);
            None
        }
    };

    let prometheus_24h = (inputs.env)(PROM_QUERY_URL).filter(|u| !u.is_empty()).map(|u| prometheus_summary(&u));

    let status = if !errors.is_empty() {
        "error"
    } else if !mismatches.is_empty() {
        "mismatch"
    } else {
        "clean"
    };
    Report {
        schema: SCHEMA,
        generated_at: crate::support::timefmt::rfc3339_micros(crate::support::timefmt::unix_nanos()),
        status,
        binary,
        system: system_info(),
        config,
        env_files,
        disk,
        daemon,
        data,
        identity: cfg.as_ref().map(|c| c.identity.labels.clone()).unwrap_or_default(),
        prometheus_24h,
        mismatches,
        errors,
    }
}

impl Report {
    /// The readable form.
    pub fn text(&self) -> String {
        let mut t = format!("mt5bot diagnostics, {}\nstatus: {}\n\n", self.generated_at, self.status.to_uppercase());
        for m in &self.mismatches {
            t.push_str(&format!("MISMATCH ({}): {}\n  fix: {}\n", m.kind, m.detail, m.instruction));
        }
        for e in &self.errors {
            t.push_str(&format!("ERROR: {e}\n"));
        }
        let b = &self.binary;
        t.push_str(&format!(
            "\nbinary: {} version {} commit {}\n  {}; target {}; profile {}\n  Cargo.lock sha256 {} ({} packages)\n",
            b.path,
            b.version,
            b.commit,
            b.rustc,
            b.target,
            b.profile,
            b.cargo_lock_sha256,
            b.dependencies.len()
        ));
        let s = &self.system;
        t.push_str(&format!(
            "system: {} on {}, kernel {}\n  {} x {}, {} MiB memory\n",
            s.hostname, s.os, s.kernel, s.cpu_count, s.cpu_model, s.memory_total_mb
        ));
        if let Some(c) = &self.config {
            t.push_str(&format!("config: {} (sha256 {})\n", c.source, c.sha256));
        }
        for e in &self.env_files {
            t.push_str(&format!("env file: {} mode {}\n", e.path, e.mode));
        }
        for d in &self.disk {
            t.push_str(&format!(
                "free disk: {} {} MiB\n",
                d.path,
                d.free_mb.map(|m| m.to_string()).unwrap_or_else(|| "?".into())
            ));
        }
        if let Some(d) = &self.daemon {
            match (d.reachable, &d.version, &d.commit) {
                (true, Some(v), Some(c)) => t.push_str(&format!("daemon: {} runs version {v} commit {c}\n", d.url)),
                _ => t.push_str(&format!("daemon: not reachable at {}\n", d.url)),
            }
        }
        if let Some(d) = &self.data {
            if d.present {
                t.push_str(&format!("datasets ({}):\n{}", d.manifest, data_versions::table(&d.datasets)));
            } else {
                t.push_str(&format!("datasets: no manifest at {}\n", d.manifest));
            }
        }
        if let Some(p) = &self.prometheus_24h {
            if p.available {
                let f = |v: Option<f64>| v.map(|x| format!("{x:.1}")).unwrap_or_else(|| "-".into());
                t.push_str(&format!(
                    "last 24 h ({}): peak CPU {}%, peak RSS {} MiB, reconnects {}, trades {}, drift events {}, alerts fired: {}\n",
                    p.url,
                    f(p.peak_cpu_usage_pct),
                    f(p.peak_rss_usage_mb),
                    f(p.broker_reconnects),
                    f(p.trades),
                    f(p.drift_events),
                    if p.alerts_fired.is_empty() { "none".into() } else { p.alerts_fired.join(", ") }
                ));
            } else {
                t.push_str(&format!("last 24 h: Prometheus unavailable: {}\n", p.error.as_deref().unwrap_or("?")));
            }
        }
        t
    }

    /// The Pushgateway body: every kind's mismatch flag, the run time, and on success the success time.
    pub fn push_body(&self, now_s: f64) -> String {
        let kinds: Vec<(&str, bool)> =
            KINDS.iter().map(|&k| (k, self.mismatches.iter().any(|m| m.kind == k))).collect();
        crate::telemetry::metrics::diagnostics_exposition(&kinds, now_s, self.status == "clean", &self.identity)
    }
}

/// Runs the diagnostics: builds, writes and pushes the report; returns it and where it went.
pub fn run(opts: &Options, inputs: &Inputs<'_>) -> Result<(Report, PathBuf), String> {
    let mut report = build(opts, inputs);
    std::fs::create_dir_all(&opts.out)
        .map_err(|e| format!("cannot create the report folder {}: {e}", opts.out.display()))?;
    let push_url = match opts.push {
        Some(false) => None,
        Some(true) => Some(
            (inputs.env)(PROM_PUSH_URL)
                .filter(|u| !u.is_empty())
                .ok_or("--push needs PROM_PUSH_URL (run mt5bot prometheus-endpoints)")?,
        ),
        None => (inputs.env)(PROM_PUSH_URL).filter(|u| !u.is_empty()),
    };
    if let Some(url) = &push_url {
        let now = crate::support::timefmt::unix_nanos() as f64 / 1e9;
        let url = pushgateway::grouped(url, &report.identity);
        if let Err(e) = pushgateway::push(&url, report.push_body(now).as_bytes(), Mode::Merge, Duration::from_secs(10))
        {
            report.errors.push(e);
            report.status = "error";
        }
    }
    let stem = crate::support::timefmt::file_stamp(&report.generated_at);
    let json_path = opts.out.join(format!("{stem}.json"));
    let json = serde_json::to_string_pretty(&report).map_err(|e| format!("cannot render the report: {e}"))?;
    let write = |p: &Path, data: &[u8]| {
        crate::support::files::write_atomic_mode(p, data, 0o640).map(|_| ()).map_err(|e| e.to_string())
    };
    write(&opts.out.join(format!("{stem}.txt")), report.text().as_bytes())?;
    write(&json_path, format!("{json}\n").as_bytes())?;
    Ok((report, json_path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_parsing_matches_the_build_script() {
        let lock = "[[package]]\nname = \"b\"\nversion = \"1.0.0\"\n\n[[package]]\nname = \"a\"\nversion = \"0.2.0\"\nsource = \"x\"\n";
        assert_eq!(lock_packages(lock), vec!["a 0.2.0", "b 1.0.0"]);
        let here = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.lock")).expect("Cargo.lock");
        assert_eq!(lock_packages(&here).join("\n"), build_info::DEPENDENCIES, "baked list equals the checkout's");
    }

    #[test]
    fn push_body_flags_every_kind_and_success_only_when_clean() {
        let mut r = build(
            &Options {
                config: None,
                out: ".".into(),
                manifest: "/nonexistent/m.yaml".into(),
                secrets_dir: "/nonexistent".into(),
                push: Some(false),
            },
            &Inputs { env: &|_| None, checkout_lock: None },
        );
        r.mismatches.clear();
        r.errors.clear();
        r.status = "clean";
        let b = r.push_body(5.0);
        assert!(
            b.contains("diagnostics_mismatch{kind=\"data\"} 0")
                && b.contains("diagnostics_last_success_timestamp_seconds 5")
        );
        r.status = "mismatch";
        r.mismatches.push(Mismatch { kind: "data", detail: String::new(), instruction: String::new() });
        let b = r.push_body(6.0);
        assert!(b.contains("diagnostics_mismatch{kind=\"data\"} 1") && !b.contains("last_success"));
    }
}
