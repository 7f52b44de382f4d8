//! Nightly diagnostics and data versions: reports, mismatches pushed to a real Pushgateway and
//! turned into an alert by a real Prometheus with the shipped rules, a running daemon of another
//! build, retention, a run killed mid-way, the 24 h summary, and the timer and cron schedules.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use support::*;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn mt5bot(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).current_dir(dir).env_remove("PROM_PUSH_URL").env_remove("PROM_QUERY_URL");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run mt5bot")
}

/// A data folder with three datasets recorded in a manifest, and a config whose daemon address is
/// a free port (so no daemon is found unless a test starts one).
fn setup(name: &str) -> (TempDir, PathBuf) {
    let dir = TempDir::new(name);
    std::fs::create_dir_all(dir.join("data/sub")).expect("dirs");
    dir.write("data/ticks.csv", "timestamp,symbol,bid,ask\n2026-01-01T00:00:00Z,EURUSD,1.0,1.1\n");
    dir.write("data/model.bin", "weights v1");
    dir.write("data/sub/calendar.csv", "2026-01-01,holiday\n");
    let out = mt5bot(dir.path(), &["check-data-versions", "--write"], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cfg = dir.write("config.yaml", &format!("metrics:\n  listen: 127.0.0.1:{}\n", free_port()));
    (dir, cfg)
}

fn reports(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> =
        std::fs::read_dir(dir).map(|r| r.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    v.sort();
    v
}

fn latest_json(dir: &Path) -> serde_json::Value {
    let p = reports(dir).into_iter().rfind(|p| p.extension().is_some_and(|e| e == "json")).expect("a JSON report");
    serde_json::from_str(&std::fs::read_to_string(p).expect("read")).expect("report JSON")
}

#[test]
fn a_clean_run_writes_both_reports_with_every_field() {
    let (dir, cfg) = setup("diag-clean");
    std::fs::create_dir_all(dir.join("deploy/secrets")).expect("dir");
    let secret = dir.write("deploy/secrets/runtime.env", "API_KEY=never-in-a-report-51f2\n");
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).expect("chmod");
    let out = mt5bot(dir.path(), &["diagnostics", "--config", cfg.to_str().expect("utf8"), "--no-push"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let files = reports(&dir.join("logs/diagnostics"));
    assert_eq!(files.len(), 2, "{files:?}");
    let stem = files[0].file_stem().expect("stem").to_string_lossy().into_owned();
    assert!(stem.len() == 18 && stem.ends_with('Z') && &stem[10..11] == "T", "<UTC date>T<time>Z: {stem}");
    assert!(files.iter().any(|f| f.extension().is_some_and(|e| e == "txt")));

    let r = latest_json(&dir.join("logs/diagnostics"));
    // The schema: every field present with its type.
    assert_eq!(r["schema"], "mt5bot-diagnostics/1");
    assert_eq!(r["status"], "clean");
    for key in ["version", "commit", "rustc", "target", "profile", "cargo_lock_sha256", "path"] {
        assert!(r["binary"][key].as_str().is_some_and(|v| !v.is_empty()), "binary.{key}");
    }
    assert_eq!(r["binary"]["cargo_lock_sha256"].as_str().map(str::len), Some(64));
    let deps = r["binary"]["dependencies"].as_array().expect("dependencies");
    assert!(deps.iter().any(|d| d["name"] == "mio") && deps.iter().all(|d| d["version"].is_string()));
    for key in ["hostname", "os", "kernel", "cpu_model"] {
        assert!(r["system"][key].as_str().is_some_and(|v| !v.is_empty()), "system.{key}");
    }
    assert!(r["system"]["cpu_count"].as_u64().is_some_and(|n| n >= 1));
    assert!(r["system"]["memory_total_mb"].as_u64().is_some_and(|n| n > 0));
    assert_eq!(r["config"]["sha256"].as_str().map(str::len), Some(64));
    assert_eq!(r["env_files"][0]["mode"], "0600");
    assert!(r["env_files"][0]["path"].as_str().is_some_and(|p| p.ends_with("runtime.env")));
    assert!(r["disk"].as_array().is_some_and(|d| d.len() == 2 && d.iter().all(|x| x["free_mb"].as_u64().is_some())));
    assert_eq!(r["daemon"]["reachable"], false);
    let datasets = r["data"]["datasets"].as_array().expect("datasets");
    assert_eq!(datasets.len(), 3);
    for d in datasets {
        assert_eq!(d["status"], "ok");
        assert_eq!(d["sha256"], d["expected_sha256"]);
        assert!(d["size"].as_u64().is_some() && d["path"].is_string());
    }
    assert!(r["mismatches"].as_array().is_some_and(Vec::is_empty));
    assert!(r["errors"].as_array().is_some_and(Vec::is_empty));
    assert!(r["prometheus_24h"].is_null(), "no PROM_QUERY_URL, no summary");
    let all = files.iter().map(|f| std::fs::read_to_string(f).expect("read")).collect::<String>();
    assert!(!all.contains("never-in-a-report-51f2"), "env files are listed by name and mode only");
}

#[test]
fn data_mismatches_are_reported_pushed_and_alerted_then_cleared() {
    let (dir, cfg) = setup("diag-data");
    let pg = Peer::start(
        &dir,
        "prometheus-pushgateway",
        &["--web.listen-address={addr}".into(), "--persistence.file=".into()],
        "/-/ready",
    );
    let push_url = format!("http://{}/metrics/job/mt5bot/instance/diag-test", pg.addr);
    let cfg_s = cfg.to_str().expect("utf8");

    // One byte changed, one file removed, one file nobody listed.
    dir.write("data/ticks.csv", "timestamp,symbol,bid,ask\n2026-01-01T00:00:00Z,EURUSD,1.0,1.2\n");
    std::fs::remove_file(dir.join("data/model.bin")).expect("rm");
    dir.write("data/sub/new.parquet", "surprise");
    let out = mt5bot(dir.path(), &["diagnostics", "--config", cfg_s], &[("PROM_PUSH_URL", &push_url)]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let r = latest_json(&dir.join("logs/diagnostics"));
    assert_eq!(r["status"], "mismatch");
    let mismatches = r["mismatches"].as_array().expect("mismatches");
    for (path, status) in [("ticks.csv", "changed"), ("model.bin", "missing"), ("sub/new.parquet", "unlisted")] {
        let m = mismatches
            .iter()
            .find(|m| m["detail"] == format!("dataset {path} is {status}"))
            .unwrap_or_else(|| panic!("{path} {status} in {mismatches:?}"));
        assert_eq!(m["kind"], "data");
        assert!(m["instruction"].as_str().is_some_and(|i| i.contains("mt5bot check-data-versions")), "{m}");
    }
    let txt = std::fs::read_to_string(
        reports(&dir.join("logs/diagnostics"))
            .into_iter()
            .find(|p| p.extension().is_some_and(|e| e == "txt"))
            .expect("txt"),
    )
    .expect("read");
    assert!(
        txt.contains("MISMATCH (data): dataset model.bin is missing")
            && txt.contains("fix: run `mt5bot check-data-versions"),
        "{txt}"
    );

    let body = get(&pg.addr, "/metrics").expect("pushgateway").body;
    assert_eq!(
        sample(&body, "diagnostics_mismatch{instance=\"diag-test\",job=\"mt5bot\",kind=\"data\"}"),
        Some(1.0),
        "{body}"
    );
    assert_eq!(sample(&body, "diagnostics_mismatch{instance=\"diag-test\",job=\"mt5bot\",kind=\"binary\"}"), Some(0.0));
    assert!(sample(&body, "diagnostics_last_run_timestamp_seconds{instance=\"diag-test\",job=\"mt5bot\"}").is_some());
    assert!(!body.contains("diagnostics_last_success_timestamp_seconds{"), "no success after a mismatch: {body}");

    // The shipped rules in a real Prometheus scraping that Pushgateway raise the alert, fix included.
    std::fs::create_dir_all(dir.join("prom")).expect("dir");
    std::fs::copy(format!("{ROOT}/deploy/alert.rules.yml"), dir.join("prom/alert.rules.yml")).expect("rules");
    let prom_cfg = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - alert.rules.yml\nscrape_configs:\n  - job_name: pushgateway\n    honor_labels: true\n    static_configs:\n      - targets: ['{}']\n",
        pg.addr
    );
    std::fs::write(dir.join("prom/prometheus.yml"), prom_cfg).expect("write");
    let prom = Peer::start(
        &dir,
        "prometheus",
        &[
            format!("--config.file={}", dir.join("prom/prometheus.yml").display()),
            format!("--storage.tsdb.path={}", dir.join("prom-data").display()),
            "--web.listen-address={addr}".into(),
        ],
        "/-/ready",
    );
    let alert = wait_for("Mt5botDiagnosticsMismatch to fire", Duration::from_secs(60), || {
        let r = get(&prom.addr, "/api/v1/alerts").ok()?;
        let v: serde_json::Value = serde_json::from_str(&r.body).ok()?;
        v["data"]["alerts"]
            .as_array()?
            .iter()
            .find(|a| a["labels"]["alertname"] == "Mt5botDiagnosticsMismatch" && a["state"] == "firing")
            .cloned()
    });
    assert_eq!(alert["labels"]["kind"], "data");
    let description = alert["annotations"]["description"].as_str().expect("description");
    assert!(description.contains("run `mt5bot check-data-versions`"), "{description}");

    // Record the new state: the next run is clean and clears the flag.
    assert!(mt5bot(dir.path(), &["check-data-versions", "--write"], &[]).status.success());
    std::thread::sleep(Duration::from_millis(1100)); // a new report name (second resolution)
    let out = mt5bot(dir.path(), &["diagnostics", "--config", cfg_s, "--push"], &[("PROM_PUSH_URL", &push_url)]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let body = get(&pg.addr, "/metrics").expect("pushgateway").body;
    assert_eq!(sample(&body, "diagnostics_mismatch{instance=\"diag-test\",job=\"mt5bot\",kind=\"data\"}"), Some(0.0));
    assert!(
        sample(&body, "diagnostics_last_success_timestamp_seconds{instance=\"diag-test\",job=\"mt5bot\"}").is_some()
    );
}

/// A copy of the binary whose baked commit differs: a different build, as after an upgrade.
fn other_build(dir: &TempDir) -> PathBuf {
    let version =
        String::from_utf8(Command::new(BIN).arg("--version").output().expect("version").stdout).expect("utf8");
    let commit = version.lines().find_map(|l| l.strip_prefix("commit: ")).expect("commit line").to_owned();
    assert_ne!(commit, "unknown", "this test needs a binary built from a git checkout");
    let mut bytes = std::fs::read(BIN).expect("read binary");
    let mut patched = commit.clone().into_bytes();
    patched[0] = if patched[0] == b'f' { b'e' } else { b'f' };
    let mut n = 0;
    let mut i = 0;
    while let Some(pos) = bytes[i..].windows(commit.len()).position(|w| w == commit.as_bytes()) {
        bytes[i + pos..i + pos + commit.len()].copy_from_slice(&patched);
        i += pos + commit.len();
        n += 1;
    }
    assert!(n > 0, "commit string not found in the binary");
    let p = dir.join("mt5bot-other");
    std::fs::write(&p, bytes).expect("write");
    std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    p
}

#[test]
fn a_running_daemon_of_another_build_is_a_binary_mismatch() {
    let (dir, _) = setup("diag-binary");
    let addr = format!("127.0.0.1:{}", free_port());
    let cfg = dir.write("config.yaml", &format!("metrics:\n  listen: {addr}\nlogging:\n  file: logs/daemon.log\n"));
    let other = other_build(&dir);
    let mut daemon = Command::new(&other)
        .arg("run")
        .arg("--config")
        .arg(&cfg)
        .current_dir(dir.path())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start");
    wait_for("the other build to serve", Duration::from_secs(10), || {
        get(&addr, "/metrics").ok().filter(|r| r.status == 200)
    });

    let out = mt5bot(dir.path(), &["diagnostics", "--config", cfg.to_str().expect("utf8"), "--no-push"], &[]);
    let _ = daemon.kill();
    let _ = daemon.wait();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let r = latest_json(&dir.join("logs/diagnostics"));
    assert_eq!(r["daemon"]["reachable"], true);
    let m = r["mismatches"]
        .as_array()
        .expect("mismatches")
        .iter()
        .find(|m| m["kind"] == "binary")
        .expect("binary mismatch");
    assert!(
        m["instruction"].as_str().is_some_and(|i| i.contains("restart mt5bot") && i.contains("make install")),
        "{m}"
    );

    // The same build running is no mismatch.
    let mut same = Command::new(BIN)
        .arg("run")
        .arg("--config")
        .arg(&cfg)
        .current_dir(dir.path())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start");
    wait_for("the same build to serve", Duration::from_secs(10), || {
        get(&addr, "/metrics").ok().filter(|r| r.status == 200)
    });
    std::thread::sleep(Duration::from_millis(1100));
    let out = mt5bot(dir.path(), &["diagnostics", "--config", cfg.to_str().expect("utf8"), "--no-push"], &[]);
    let _ = same.kill();
    let _ = same.wait();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_checkout_with_another_cargo_lock_is_a_dependencies_mismatch() {
    let (dir, cfg) = setup("diag-deps");
    let lock = std::fs::read_to_string(format!("{ROOT}/Cargo.lock")).expect("lock");
    dir.write("Cargo.lock", &lock);
    let cfg_s = cfg.to_str().expect("utf8");
    assert_eq!(
        mt5bot(dir.path(), &["diagnostics", "--config", cfg_s, "--no-push"], &[]).status.code(),
        Some(0),
        "the same lock is clean"
    );
    dir.write("Cargo.lock", &lock.replacen("name = \"mio\"\nversion = \"", "name = \"mio\"\nversion = \"0.0.", 1));
    std::thread::sleep(Duration::from_millis(1100));
    let out = mt5bot(dir.path(), &["diagnostics", "--config", cfg_s, "--no-push"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let r = latest_json(&dir.join("logs/diagnostics"));
    let m = r["mismatches"]
        .as_array()
        .expect("mismatches")
        .iter()
        .find(|m| m["kind"] == "dependencies")
        .expect("dependencies mismatch");
    assert!(m["instruction"].as_str().is_some_and(|i| i.contains("cargo build --release --locked")), "{m}");
    assert!(m["detail"].as_str().is_some_and(|d| d.contains("mio 0.0.")), "{m}");
}

#[test]
fn the_script_keeps_exactly_n_reports_and_a_killed_run_leaves_no_partial_file() {
    let (dir, cfg) = setup("diag-retention");
    let out_dir = dir.join("reports");
    std::fs::create_dir_all(&out_dir).expect("dir");
    for day in 1..=5 {
        dir.write(&format!("reports/2020-01-0{day}T030000Z.json"), "{}");
        dir.write(&format!("reports/2020-01-0{day}T030000Z.txt"), "old");
    }
    let env = [
        ("MT5BOT", BIN),
        ("MT5BOT_CONFIG", cfg.to_str().expect("utf8")),
        ("MT5BOT_DIAGNOSTICS_DIR", out_dir.to_str().expect("utf8")),
        ("MT5BOT_SECRETS_DIR", "/nonexistent"),
        ("DIAGNOSTICS_KEEP", "3"),
    ];
    let mut cmd = Command::new("bash");
    cmd.arg(format!("{ROOT}/scripts/diagnostics.sh"))
        .current_dir(dir.path())
        .env_remove("PROM_PUSH_URL")
        .env_remove("PROM_QUERY_URL");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("diagnostics.sh");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let names: Vec<String> =
        reports(&out_dir).iter().map(|p| p.file_name().expect("name").to_string_lossy().into_owned()).collect();
    assert_eq!(names.len(), 6, "3 reports, json and txt each: {names:?}");
    assert!(
        names[..4]
            == [
                "2020-01-04T030000Z.json",
                "2020-01-04T030000Z.txt",
                "2020-01-05T030000Z.json",
                "2020-01-05T030000Z.txt"
            ],
        "the newest kept: {names:?}"
    );

    // A run killed while hashing a large dataset leaves no report at all.
    let big = std::fs::File::create(dir.join("data/big.bin")).expect("create");
    big.set_len(400 << 20).expect("sparse 400 MiB");
    let killed_out = dir.join("killed");
    let mut child = Command::new(BIN)
        .args([
            "diagnostics",
            "--no-push",
            "--config",
            cfg.to_str().expect("utf8"),
            "--out",
            killed_out.to_str().expect("utf8"),
        ])
        .current_dir(dir.path())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start");
    std::thread::sleep(Duration::from_millis(300));
    assert!(child.try_wait().expect("wait").is_none(), "still hashing when killed");
    child.kill().expect("kill");
    let _ = child.wait();
    let left: Vec<PathBuf> = reports(&killed_out)
        .into_iter()
        .filter(|p| !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
        .collect();
    assert!(left.is_empty(), "a killed run left {left:?}");
}

#[test]
fn the_24h_summary_comes_from_a_real_prometheus_and_its_absence_is_noted() {
    let (dir, _) = setup("diag-summary");
    let (cfg, addr) = config_with(&dir, "");
    let mut bot = Daemon::start(&dir, &cfg, &addr, &[]);
    bot.wait_metrics(Duration::from_secs(5));
    let prom = Prometheus::start(&dir, &format!("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: mt5bot\n    static_configs:\n      - targets: ['{addr}']\n"));
    wait_for("trades in Prometheus", Duration::from_secs(30), || {
        prom.query("increase(trade_count[24h]) > 0").into_iter().next()
    });
    let query_url = format!("http://{}/api/v1/query", prom.addr);
    let out = mt5bot(
        dir.path(),
        &["diagnostics", "--config", cfg.to_str().expect("utf8"), "--no-push"],
        &[("PROM_QUERY_URL", &query_url)],
    );
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let r = latest_json(&dir.join("logs/diagnostics"));
    let s = &r["prometheus_24h"];
    assert_eq!(s["available"], true, "{s}");
    assert!(s["trades"].as_f64().is_some_and(|t| t > 0.0), "{s}");
    assert!(s["peak_rss_usage_mb"].as_f64().is_some_and(|m| m > 1.0), "{s}");
    assert!(s["peak_cpu_usage_pct"].as_f64().is_some(), "{s}");
    assert_eq!(s["broker_reconnects"].as_f64(), Some(0.0), "{s}");
    assert!(s["alerts_fired"].is_array());
    assert_eq!(r["daemon"]["reachable"], true, "the daemon of that config was found");

    std::thread::sleep(Duration::from_millis(1100));
    let dead = format!("http://127.0.0.1:{}/api/v1/query", free_port());
    let out = mt5bot(
        dir.path(),
        &["diagnostics", "--config", cfg.to_str().expect("utf8"), "--no-push"],
        &[("PROM_QUERY_URL", &dead)],
    );
    assert_eq!(out.status.code(), Some(0), "Prometheus unreachable is not fatal");
    let r = latest_json(&dir.join("logs/diagnostics"));
    assert_eq!(r["prometheus_24h"]["available"], false);
    assert!(
        r["prometheus_24h"]["error"].as_str().is_some_and(|e| e.contains("cannot query")),
        "{}",
        r["prometheus_24h"]
    );
    bot.signal("TERM");
    bot.wait_exit(Duration::from_secs(10));
}

#[test]
fn check_data_versions_prints_a_table_and_exits_by_the_result() {
    let (dir, _) = setup("dv");
    let out = mt5bot(dir.path(), &["check-data-versions"], &[]);
    assert_eq!(out.status.code(), Some(0));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.starts_with("PATH") && table.contains("sub/calendar.csv") && table.matches(" ok ").count() == 3,
        "{table}"
    );
    dir.write("data/ticks.csv", "changed");
    let out = mt5bot(dir.path(), &["check-data-versions"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("changed"));
    let wrapper = Command::new("bash")
        .arg(format!("{ROOT}/scripts/check_data_versions.sh"))
        .current_dir(dir.path())
        .env("MT5BOT", BIN)
        .output()
        .expect("wrapper");
    assert_eq!(wrapper.status.code(), Some(1), "the wrapper passes the exit code through");
    assert!(mt5bot(dir.path(), &["check-data-versions", "--write"], &[]).status.success());
    let mode = std::fs::metadata(dir.join("data/manifest.yaml")).expect("stat");
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777, 0o644);
    assert_eq!(mt5bot(dir.path(), &["check-data-versions"], &[]).status.code(), Some(0));
    let out = mt5bot(dir.path(), &["check-data-versions", "--manifest", "nowhere/m.yaml"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no manifest at nowhere/m.yaml"));
}

#[test]
fn the_timer_and_the_cron_line_are_valid_schedules() {
    let out =
        Command::new(require("crontab")).args(["-n", &format!("{ROOT}/deploy/mt5bot.cron")]).output().expect("crontab");
    assert!(out.status.success(), "crontab -n: {}", String::from_utf8_lossy(&out.stderr));
    let analyze = require("systemd-analyze");
    let out = Command::new(&analyze).args(["calendar", "daily"]).output().expect("calendar");
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("*-*-* 00:00:00"));
    let timer = std::fs::read_to_string(format!("{ROOT}/deploy/mt5bot-diagnostics.timer")).expect("timer");
    assert!(timer.contains("OnCalendar=daily") && timer.contains("Persistent=true"));

    // verify needs the executables to exist: install into a root and point the units at it.
    let dir = TempDir::new("diag-units");
    let root = dir.join("root");
    let out = Command::new("bash")
        .arg(format!("{ROOT}/scripts/install_service.sh"))
        .env("DESTDIR", &root)
        .env("MT5BOT_BINARY", BIN)
        .env("RUNTIME_SECRETS_SKIP", "1")
        .output()
        .expect("install");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(root.join("usr/local/lib/mt5bot/diagnostics.sh").is_file());
    let r = root.to_str().expect("utf8");
    let units = root.join("etc/systemd/system");
    let verify_dir = dir.join("verify");
    std::fs::create_dir_all(&verify_dir).expect("dir");
    for f in ["mt5bot-diagnostics.service", "mt5bot-diagnostics.timer"] {
        let text = std::fs::read_to_string(units.join(f)).expect("unit");
        let local =
            text.replace("/usr/local/", &format!("{r}/usr/local/")).replace("/etc/mt5bot", &format!("{r}/etc/mt5bot"));
        std::fs::write(verify_dir.join(f), local).expect("write");
    }
    let out = Command::new(&analyze)
        .arg("verify")
        .arg(verify_dir.join("mt5bot-diagnostics.timer"))
        .arg(verify_dir.join("mt5bot-diagnostics.service"))
        .output()
        .expect("verify");
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && report.trim().is_empty(), "systemd-analyze verify:\n{report}");
}
