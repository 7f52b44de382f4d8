//! `scripts/install_service.sh` into a temp root, twice, with the provisioning switches of the
//! operations chapter; and the shipped unit checked by the real `systemd-analyze`.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::influx_v2::InfluxV2;
use support::*;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/install_service.sh");
const UNIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/mt5bot.service");

fn install(root: &Path, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new("bash");
    cmd.arg(SCRIPT).env("DESTDIR", root).env("MT5BOT_BINARY", BIN);
    for k in [
        "RUNTIME_SECRETS_SKIP",
        "RUNTIME_SECRETS_ROTATE",
        "INFLUXDB_BOOTSTRAP_URL",
        "INFLUXDB_BOOTSTRAP_ORG",
        "INFLUXDB_BOOTSTRAP_BUCKET",
        "INFLUXDB_BOOTSTRAP_ADMIN_TOKEN",
    ] {
        cmd.env_remove(k);
    }
    for (_, var, _) in mt5bot::deployment::prometheus_endpoints::INPUTS {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run install_service.sh");
    assert!(
        out.status.success(),
        "install failed ({:?}):\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Every file and folder under `root`: relative path, mode, content.
fn tree(root: &Path) -> Vec<(PathBuf, u32, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, u32, Vec<u8>)>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir).expect("read_dir").filter_map(Result::ok).collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let meta = std::fs::symlink_metadata(&p).expect("stat");
            let rel = p.strip_prefix(root).expect("under root").to_path_buf();
            let mode = meta.permissions().mode() & 0o7777;
            if meta.is_dir() {
                out.push((rel, mode, Vec::new()));
                walk(root, &p, out);
            } else {
                out.push((rel, mode, std::fs::read(&p).expect("read")));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).expect("stat").permissions().mode() & 0o777
}

fn env_value(path: &Path, key: &str) -> Option<String> {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(". '{}'; printf '%s' \"${key}\"", path.display()))
        .output()
        .expect("sh");
    Some(String::from_utf8_lossy(&out.stdout).into_owned()).filter(|v| !v.is_empty())
}

#[test]
fn installs_into_a_root_with_the_right_modes_and_a_rerun_changes_nothing() {
    let dir = TempDir::new("install");
    let root = dir.join("root");
    install(&root, &[("PROM_ENDPOINTS_INSTANCE", "eu-1")]);

    assert!(root.join("usr/local/share/doc/mt5bot/runbook.md").is_file(), "the runbook the alerts link to");
    let bin = root.join("usr/local/bin/mt5bot");
    assert_eq!(mode(&bin), 0o755);
    let unit = root.join("etc/systemd/system/mt5bot.service");
    assert_eq!(mode(&unit), 0o644);
    let unit_text = std::fs::read_to_string(&unit).expect("unit");
    assert!(unit_text.contains("ExecStart=/usr/local/bin/mt5bot run --config /etc/mt5bot/config.yaml"));
    let config = root.join("etc/mt5bot/config.yaml");
    assert!(std::fs::read_to_string(&config).expect("config").contains("file: /var/log/mt5bot/mt5bot.log"));
    assert_eq!(mode(&root.join("etc/mt5bot/secrets")), 0o700);
    let runtime = root.join("etc/mt5bot/secrets/runtime.env");
    assert_eq!(mode(&runtime), 0o600);
    for key in ["API_KEY", "CONTROLLER_SHARED_SECRET", "CHECKPOINT_AES_KEY"] {
        assert_eq!(env_value(&runtime, key).map(|v| v.len()), Some(44), "{key}");
    }
    assert_eq!(
        env_value(&runtime, "PROM_PUSH_URL").as_deref(),
        Some("http://localhost:9091/metrics/job/mt5bot/instance/eu-1")
    );
    assert!(!root.join("etc/mt5bot/secrets/influx.env").exists(), "no bootstrap without its variables");

    let before = tree(&root);
    let out = install(&root, &[("PROM_ENDPOINTS_INSTANCE", "eu-1")]);
    assert_eq!(tree(&root), before, "a second run changes nothing");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("installed "), "nothing reinstalled:\n{err}");
    assert!(err.contains("not calling systemctl"), "{err}");
}

#[test]
fn runtime_secrets_skip_and_rotate() {
    let dir = TempDir::new("install-switches");
    let root = dir.join("root");
    install(&root, &[("RUNTIME_SECRETS_SKIP", "1")]);
    let runtime = root.join("etc/mt5bot/secrets/runtime.env");
    assert_eq!(env_value(&runtime, "API_KEY"), None, "skipped");
    assert!(env_value(&runtime, "PROM_QUERY_URL").is_some(), "endpoints still written");

    install(&root, &[]);
    let keys = ["API_KEY", "CONTROLLER_SHARED_SECRET", "CHECKPOINT_AES_KEY"];
    let before: Vec<_> = keys.iter().map(|k| env_value(&runtime, k)).collect();
    install(&root, &[("RUNTIME_SECRETS_ROTATE", "API_KEY")]);
    let after: Vec<_> = keys.iter().map(|k| env_value(&runtime, k)).collect();
    assert_ne!(after[0], before[0], "API_KEY rotated");
    assert_eq!(after[1..], before[1..], "nothing else");
}

#[test]
fn influx_bootstrap_runs_when_its_variables_are_set() {
    let influx = InfluxV2::start(true);
    let dir = TempDir::new("install-influx");
    let root = dir.join("root");
    let vars = [
        ("INFLUXDB_BOOTSTRAP_URL", influx.url.as_str()),
        ("INFLUXDB_BOOTSTRAP_ORG", "trading"),
        ("INFLUXDB_BOOTSTRAP_BUCKET", "mt5_metrics"),
        ("INFLUXDB_BOOTSTRAP_RETENTION", "90d"),
    ];
    install(&root, &vars);
    let influx_env = root.join("etc/mt5bot/secrets/influx.env");
    assert_eq!(mode(&influx_env), 0o600);
    let token = env_value(&influx_env, "INFLUXDB_TOKEN").expect("token");
    assert_eq!(influx.scoped_tokens("mt5_metrics"), vec![token]);
    assert_eq!(mode(&root.join("etc/mt5bot/secrets/influx-admin.env")), 0o600);
    let before = tree(&root);
    install(&root, &vars);
    assert_eq!(tree(&root), before, "a second run changes nothing");
}

#[test]
fn help_documents_every_variable() {
    let out = Command::new("bash").arg(SCRIPT).arg("--help").output().expect("run");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for var in [
        "DESTDIR",
        "PREFIX",
        "CONFIG_DIR",
        "MT5BOT_BINARY",
        "MT5BOT_USER",
        "RUNTIME_SECRETS_SKIP",
        "RUNTIME_SECRETS_ROTATE",
        "PROM_ENDPOINTS_PUSH_HOST",
        "PROM_ENDPOINTS_PUSH_PORT",
        "PROM_ENDPOINTS_QUERY_HOST",
        "PROM_ENDPOINTS_QUERY_PORT",
        "PROM_ENDPOINTS_SCHEME",
        "PROM_ENDPOINTS_JOB",
        "PROM_ENDPOINTS_INSTANCE",
        "INFLUXDB_BOOTSTRAP_URL",
        "INFLUXDB_BOOTSTRAP_ORG",
        "INFLUXDB_BOOTSTRAP_BUCKET",
        "INFLUXDB_BOOTSTRAP_USERNAME",
        "INFLUXDB_BOOTSTRAP_PASSWORD_FILE",
        "INFLUXDB_BOOTSTRAP_RETENTION",
        "INFLUXDB_BOOTSTRAP_ADMIN_TOKEN",
    ] {
        assert!(help.contains(var), "--help does not mention {var}");
    }
    let bad = Command::new("bash").arg(SCRIPT).arg("--frobnicate").output().expect("run");
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn the_unit_verifies_and_is_well_hardened() {
    let analyze = require("systemd-analyze");
    let dir = TempDir::new("unit");
    let root = dir.join("root");
    install(&root, &[("RUNTIME_SECRETS_SKIP", "1")]);
    // verify needs the executables to exist: point the installed unit at the installed root.
    let unit = std::fs::read_to_string(root.join("etc/systemd/system/mt5bot.service")).expect("unit");
    let r = root.to_str().expect("utf8");
    let local = unit
        .replace("/usr/local/bin/mt5bot", &format!("{r}/usr/local/bin/mt5bot"))
        .replace("/etc/mt5bot", &format!("{r}/etc/mt5bot"));
    let copy = dir.write("mt5bot.service", &local);
    let out = Command::new(&analyze).arg("verify").arg(&copy).output().expect("systemd-analyze verify");
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && report.trim().is_empty(), "systemd-analyze verify:\n{report}");

    let out =
        Command::new(&analyze).args(["security", "--offline=true", "--no-pager"]).arg(UNIT).output().expect("security");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no exposure line:\n{text}"));
    let level: f64 =
        line.split(':').nth(1).and_then(|s| s.split_whitespace().next()).and_then(|s| s.parse().ok()).expect("level");
    assert!(level <= 2.0, "exposure {level} > 2.0:\n{text}");

    // And the unit's own invariants.
    let shipped = std::fs::read_to_string(UNIT).expect("unit");
    for needle in [
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "ExecStartPre=/usr/local/bin/mt5bot config check",
        "EnvironmentFile=-/etc/mt5bot/secrets/influx.env",
        "EnvironmentFile=-/etc/mt5bot/secrets/runtime.env",
        "StateDirectory=mt5bot",
        "LogsDirectory=mt5bot",
        "User=mt5bot",
        "TasksMax=",
    ] {
        assert!(shipped.contains(needle), "the unit lacks {needle}");
    }
    // The daemon's default bounds fit inside the unit's open-file limit, with room for the rest.
    let nofile: usize = shipped
        .lines()
        .find_map(|l| l.strip_prefix("LimitNOFILE="))
        .and_then(|v| v.trim().parse().ok())
        .expect("the unit sets LimitNOFILE to a number");
    let d = mt5bot::config::RawConfig::default();
    let bounded = d.metrics.max_connections + d.ingress.max_connections + d.venue.mt5.max_handshakes + 2;
    assert!(bounded + 256 <= nofile, "LimitNOFILE={nofile} leaves too little beside {bounded} client sockets");
}

const TEMPLATE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/mt5bot@.service");

/// One bot of a fleet: `MT5BOT_INSTANCE=acct1` installs the template unit, a config of its own
/// (its account, its metrics port, its log folder), its secrets beside it, and the Prometheus
/// target file the fleet config reads; a rerun changes nothing, and a second instance is
/// installed beside the first without touching it.
#[test]
fn an_instance_of_a_fleet_gets_its_own_folders_unit_and_target_file() {
    let dir = TempDir::new("install-instance");
    let root = dir.join("root");
    let acct1 =
        [("MT5BOT_INSTANCE", "acct1"), ("MT5BOT_METRICS_LISTEN", "127.0.0.1:9901"), ("RUNTIME_SECRETS_SKIP", "1")];
    install(&root, &acct1);
    let unit = std::fs::read_to_string(root.join("etc/systemd/system/mt5bot@.service")).expect("template unit");
    assert!(unit.contains("ExecStart=/usr/local/bin/mt5bot run --config /etc/mt5bot/%i/config.yaml"), "{unit}");
    assert!(!root.join("etc/systemd/system/mt5bot.service").exists(), "an instance install leaves the single unit out");
    let config = std::fs::read_to_string(root.join("etc/mt5bot/acct1/config.yaml")).expect("instance config");
    for line in ["  listen: 127.0.0.1:9901\n", "  file: /var/log/mt5bot/acct1/mt5bot.log\n", "  account: acct1\n"] {
        assert!(config.contains(line), "the instance config has {line:?}");
    }
    assert!(root.join("etc/mt5bot/acct1/secrets/runtime.env").is_file(), "secrets beside its config");
    let target: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("etc/mt5bot/targets/acct1.json")).expect("target"))
            .expect("JSON");
    assert_eq!(target[0]["targets"][0], "127.0.0.1:9901");
    assert_eq!(target[0]["labels"]["account"], "acct1");
    let before = tree(&root);
    install(&root, &acct1);
    assert_eq!(tree(&root), before, "a second run changes nothing");
    install(
        &root,
        &[("MT5BOT_INSTANCE", "acct2"), ("MT5BOT_METRICS_LISTEN", "127.0.0.1:9902"), ("RUNTIME_SECRETS_SKIP", "1")],
    );
    assert!(root.join("etc/mt5bot/targets/acct2.json").is_file());
    assert_eq!(std::fs::read_to_string(root.join("etc/mt5bot/acct1/config.yaml")).expect("kept"), config);

    // Without a port of its own, or with a name systemd and Prometheus cannot carry: refused.
    for env in [
        vec![("MT5BOT_INSTANCE", "acct3")],
        vec![("MT5BOT_INSTANCE", "a b"), ("MT5BOT_METRICS_LISTEN", "127.0.0.1:9903")],
    ] {
        let mut cmd = Command::new("bash");
        cmd.arg(SCRIPT).env("DESTDIR", &root).env("MT5BOT_BINARY", BIN).env_remove("MT5BOT_METRICS_LISTEN");
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run");
        assert_eq!(out.status.code(), Some(2), "{env:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    // The installed template, for one instance, passes the real systemd-analyze.
    let analyze = require("systemd-analyze");
    let r = root.to_str().expect("utf8");
    let local = unit
        .replace("/usr/local/bin/mt5bot", &format!("{r}/usr/local/bin/mt5bot"))
        .replace("/etc/mt5bot", &format!("{r}/etc/mt5bot"));
    let copy = dir.write("mt5bot@acct1.service", &local);
    let out = Command::new(&analyze).arg("verify").arg(&copy).output().expect("systemd-analyze verify");
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && report.trim().is_empty(), "systemd-analyze verify:\n{report}");
}

/// The template is the single unit with the instance in its paths, line for line: a change to
/// one without the other fails here.
#[test]
fn the_template_unit_is_the_single_unit_per_instance() {
    let single = std::fs::read_to_string(UNIT).expect("unit");
    let template = std::fs::read_to_string(TEMPLATE).expect("template");
    let body = |text: &str| -> Vec<String> {
        text.lines().skip_while(|l| !l.starts_with("[Unit]")).map(str::to_owned).collect()
    };
    let expected: Vec<String> = body(&single)
        .into_iter()
        .map(|l| {
            let l = l.replace("/etc/mt5bot/", "/etc/mt5bot/%i/");
            match l.as_str() {
                "Description=mt5bot trading daemon for MetaTrader 5" => format!("{l} (%i)"),
                "StateDirectory=mt5bot" | "LogsDirectory=mt5bot" | "WorkingDirectory=/var/lib/mt5bot" => {
                    format!("{l}/%i")
                }
                _ => l,
            }
        })
        .collect();
    assert_eq!(body(&template), expected);
}
