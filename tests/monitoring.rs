//! The monitoring stack shipped in deploy/: checked by promtool and amtool, every alert unit-tested
//! by `promtool test rules`, and one alert driven end to end through real Prometheus and
//! Alertmanager from a running mt5bot to a webhook.

mod support;

use std::process::Command;
use std::time::Duration;

use support::*;

const DEPLOY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn run_ok(program: &str, args: &[&str]) -> String {
    let out = Command::new(require(program)).args(args).current_dir(ROOT).output().expect(program);
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{program} {args:?} failed:\n{text}");
    text
}

fn rules() -> Vec<serde_yaml::Value> {
    let text = std::fs::read_to_string(format!("{DEPLOY}/alert.rules.yml")).expect("rules");
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).expect("yaml");
    doc["groups"]
        .as_sequence()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_sequence().cloned().unwrap_or_default())
        .filter(|r| r.get("alert").is_some())
        .collect()
}

#[test]
fn shipped_configs_pass_promtool_and_amtool() {
    for config in ["deploy/prometheus.yml", "deploy/prometheus-fleet.yml"] {
        let out = run_ok("promtool", &["check", "config", config]);
        assert!(out.contains("SUCCESS: 1 rule files found"), "{config}: {out}");
    }
    run_ok("promtool", &["check", "rules", "deploy/alert.rules.yml"]);
    let out = run_ok("amtool", &["check-config", "deploy/alertmanager.yml"]);
    assert!(out.contains("SUCCESS"), "{out}");
}

/// The commented Slack, Telegram and Discord receivers are valid once uncommented: amtool checks
/// the file with each block taken in.
#[test]
fn the_commented_chat_receivers_pass_amtool_when_taken_in() {
    let text = std::fs::read_to_string(format!("{ROOT}/deploy/alertmanager.yml")).expect("alertmanager.yml");
    let mut out = String::new();
    let mut taken = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("  # - name: ") {
            inside = ["oncall-slack", "oncall-telegram", "oncall-discord"].contains(&name);
            if inside {
                taken.push(name.to_owned());
            }
        } else if !line.starts_with("  #   ") {
            inside = false;
        }
        match line.strip_prefix("  # ").filter(|_| inside) {
            Some(rest) => out.push_str(&format!("  {rest}\n")),
            None => out.push_str(&format!("{line}\n")),
        }
    }
    assert_eq!(taken, ["oncall-slack", "oncall-telegram", "oncall-discord"]);
    let dir = std::env::temp_dir().join(format!("mt5bot-amtool-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("alertmanager.yml");
    std::fs::write(&path, &out).expect("write");
    let out = run_ok("amtool", &["check-config", path.to_str().expect("path")]);
    assert!(out.contains("4 receivers"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn every_alert_passes_its_promtool_unit_tests() {
    let out = run_ok("promtool", &["test", "rules", "tests/alerts/alert.rules.test.yml"]);
    assert!(out.contains("SUCCESS"), "{out}");
    // Each alert is tested on both sides: one eval with no alert, one with it.
    let tests = std::fs::read_to_string(format!("{ROOT}/tests/alerts/alert.rules.test.yml")).expect("tests");
    for r in rules() {
        let name = r["alert"].as_str().expect("name");
        let evals = tests.matches(&format!("alertname: {name}\n")).count();
        assert!(evals >= 2, "{name} has {evals} promtool evaluations; each alert needs one on each side");
    }
}

#[test]
fn every_alert_says_what_and_links_its_runbook_section() {
    let runbook = std::fs::read_to_string(format!("{ROOT}/docs/runbook.md")).expect("runbook");
    let rules = rules();
    assert!(rules.len() >= 17, "{} alerts", rules.len());
    for r in &rules {
        let name = r["alert"].as_str().expect("name");
        let sev = r["labels"]["severity"].as_str().unwrap_or_default();
        assert!(["critical", "warning"].contains(&sev), "{name}: severity {sev:?}");
        for key in ["summary", "description", "runbook_url"] {
            assert!(r["annotations"][key].as_str().is_some_and(|v| !v.is_empty()), "{name}: {key}");
        }
        assert!(
            r["annotations"]["description"].as_str().unwrap_or_default().contains("{{"),
            "{name}: description is templated"
        );
        let url = r["annotations"]["runbook_url"].as_str().unwrap_or_default();
        let anchor = url.split('#').nth(1).unwrap_or_default();
        assert_eq!(anchor, name.to_lowercase(), "{name}: runbook anchor");
        assert!(url.starts_with("file:///usr/local/share/doc/mt5bot/runbook.md#"), "{name}: {url}");
        assert!(runbook.contains(&format!("\n## {name}\n")), "docs/runbook.md has no section for {name}");
    }
}

#[test]
fn a_real_alert_travels_from_mt5bot_through_prometheus_and_alertmanager_to_a_webhook() {
    let dir = TempDir::new("alerting");
    // A hair-trigger drift detector makes the running daemon raise drift_events for real.
    let (cfg, mt5_addr) = config_with(&dir, "drift:\n  delta: 0.0\n  threshold: 0.5\n  min_samples: 10\n");
    let mut bot = Daemon::start(&dir, &cfg, &mt5_addr, &[]);
    bot.wait_metrics(Duration::from_secs(5));

    let webhook = Receiver::start();
    let am_cfg = std::fs::read_to_string(format!("{DEPLOY}/alertmanager.yml"))
        .expect("alertmanager.yml")
        .replace("http://127.0.0.1:5001/alerts", &format!("http://{}/alerts", webhook.addr))
        .replace("group_wait: 1m", "group_wait: 1s")
        .replace("group_wait: 30s", "group_wait: 1s")
        .replace("group_wait: 10s", "group_wait: 1s");
    let am_path = dir.write("alertmanager.yml", &am_cfg);
    let am = Peer::start(
        &dir,
        "prometheus-alertmanager",
        &[
            format!("--config.file={}", am_path.display()),
            format!("--storage.path={}", dir.join("am-data").display()),
            "--web.listen-address={addr}".into(),
            "--cluster.listen-address=".into(),
        ],
        "/-/ready",
    );

    // The shipped Prometheus config and rules, pointed at this test's ports, evaluating every second.
    std::fs::create_dir_all(dir.join("prom")).expect("dir");
    let prom_cfg = std::fs::read_to_string(format!("{DEPLOY}/prometheus.yml"))
        .expect("prometheus.yml")
        .replace("127.0.0.1:9898", &mt5_addr)
        .replace("127.0.0.1:9093", &am.addr)
        .replace("scrape_interval: 15s", "scrape_interval: 1s")
        .replace("scrape_timeout: 5s", "scrape_timeout: 1s")
        .replace("evaluation_interval: 15s", "evaluation_interval: 1s");
    std::fs::write(dir.join("prom/prometheus.yml"), prom_cfg).expect("write");
    std::fs::copy(format!("{DEPLOY}/alert.rules.yml"), dir.join("prom/alert.rules.yml")).expect("copy rules");
    let _prom = Peer::start(
        &dir,
        "prometheus",
        &[
            format!("--config.file={}", dir.join("prom/prometheus.yml").display()),
            format!("--storage.tsdb.path={}", dir.join("prom-data").display()),
            "--web.listen-address={addr}".into(),
            "--rules.alert.resend-delay=1s".into(),
        ],
        "/-/ready",
    );

    let drift = wait_for("drift_events to rise in the daemon", Duration::from_secs(20), || {
        sample(&bot.metrics(), "drift_events").filter(|d| *d > 0.0)
    });
    assert!(drift > 0.0);
    let (url, body) = wait_for("Mt5botDriftDetected at the webhook", Duration::from_secs(60), || {
        webhook.received().into_iter().find(|(_, b)| b.contains("Mt5botDriftDetected"))
    });
    assert_eq!(url, "/alerts");
    let msg: serde_json::Value = serde_json::from_str(&body).expect("webhook JSON");
    let alert = msg["alerts"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["labels"]["alertname"] == "Mt5botDriftDetected"))
        .expect("alert");
    assert_eq!(alert["status"], "firing");
    assert_eq!(alert["labels"]["severity"], "warning");
    assert_eq!(alert["labels"]["instance"], mt5_addr.as_str());
    let description = alert["annotations"]["description"].as_str().expect("description");
    assert!(description.contains(&format!("on {mt5_addr}: the model's prediction error has risen")), "{description}");
    assert!(alert["annotations"]["runbook_url"].as_str().is_some_and(|u| u.ends_with("#mt5botdriftdetected")));
}

#[test]
fn final_values_are_pushed_to_a_real_pushgateway_on_shutdown() {
    let dir = TempDir::new("pushgateway");
    let pg = Peer::start(
        &dir,
        "prometheus-pushgateway",
        &["--web.listen-address={addr}".into(), "--persistence.file=".into()],
        "/-/ready",
    );
    let (cfg, addr) = config_with(&dir, "");
    let url = format!("http://{}/metrics/job/mt5bot/instance/test-bot", pg.addr);
    let mut bot = Daemon::start(&dir, &cfg, &addr, &[("PROM_PUSH_URL", &url)]);
    bot.wait_metrics(Duration::from_secs(5));
    wait_for("a trade", Duration::from_secs(10), || sample(&bot.metrics(), "trade_count").filter(|t| *t > 0.0));
    bot.signal("TERM");
    assert_eq!(bot.wait_exit(Duration::from_secs(15)).code(), Some(0));
    let log = bot.log_file();
    assert!(log.contains(&format!("final metric values pushed to {url}")), "{log}");
    let final_trades: f64 = log
        .lines()
        .find_map(|l| l.split("final state: trades=").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("final trades in the log");

    let body = get(&pg.addr, "/metrics").expect("pushgateway metrics").body;
    let pushed = sample(&body, "trade_count{instance=\"test-bot\",job=\"mt5bot\"}").expect("trade_count pushed");
    assert_eq!(pushed, final_trades, "the pushed value is the final one");
    for name in ["cpu_usage_pct", "rss_usage_mb", "queue_depth", "drift_events"] {
        assert!(body.contains(&format!("{name}{{instance=\"test-bot\",job=\"mt5bot\"}}")), "{name} pushed");
    }
}

#[test]
fn an_unreachable_pushgateway_does_not_change_the_exit() {
    let dir = TempDir::new("pushgateway-down");
    let (cfg, addr) = config_with(&dir, "");
    let url = format!("http://127.0.0.1:{}/metrics/job/mt5bot/instance/x", free_port());
    let mut bot = Daemon::start(&dir, &cfg, &addr, &[("PROM_PUSH_URL", &url)]);
    bot.wait_metrics(Duration::from_secs(5));
    bot.signal("TERM");
    assert_eq!(bot.wait_exit(Duration::from_secs(15)).code(), Some(0));
    assert!(bot.log_file().contains(&format!("cannot push to {url}")), "{}", bot.log_file());
}

/// Operators and aggregations, which may stand before a `by (...)` clause rather than a `(`.
const PROMQL_WORDS: [&str; 17] = [
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
    "group",
];

/// Metric names in a PromQL expression: identifiers that are not functions, keywords, label names
/// (inside `{}` or a `by (...)` clause), durations or strings.
fn metric_names(expr: &str) -> Vec<String> {
    let mut cleaned = String::new();
    let mut depth_brace = 0;
    let mut depth_bracket = 0;
    let mut in_string = false;
    for c in expr.chars() {
        match c {
            '"' => in_string = !in_string,
            _ if in_string => {}
            '{' => depth_brace += 1,
            '}' => depth_brace -= 1,
            '[' => depth_bracket += 1,
            ']' => depth_bracket -= 1,
            _ if depth_brace > 0 || depth_bracket > 0 => {}
            c => cleaned.push(c),
        }
    }
    let mut names = Vec::new();
    let chars: Vec<char> = cleaned.chars().collect();
    let mut i = 0;
    let mut skip_group = false;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let next = chars[i..].iter().find(|c| !c.is_whitespace()).copied();
            if ["by", "without", "on", "ignoring", "group_left", "group_right"].contains(&word.as_str()) {
                skip_group = true;
            } else if !PROMQL_WORDS.contains(&word.as_str()) && next != Some('(') {
                names.push(word);
            }
            continue;
        }
        if c == '(' && skip_group {
            while i < chars.len() && chars[i] != ')' {
                i += 1;
            }
            skip_group = false;
        }
        i += 1;
    }
    names
}

#[test]
fn metric_names_are_found_in_promql() {
    assert_eq!(
        metric_names("histogram_quantile(0.99, sum by (le) (rate(tick_to_order_seconds_bucket{job=\"x\"}[5m])))"),
        vec!["tick_to_order_seconds_bucket"]
    );
    assert_eq!(metric_names("a_total / on (instance) b > 0 and c"), vec!["a_total", "b", "c"]);
}

#[test]
fn the_dashboard_queries_only_metrics_mt5bot_exports_and_all_of_them_run() {
    let dash: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{DEPLOY}/grafana/mt5bot.json")).expect("dashboard"))
            .expect("JSON");
    assert_eq!(dash["uid"], "mt5bot-overview");
    let exprs: Vec<String> = dash["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["expr"].as_str().map(str::to_owned))
        .collect();
    assert!(exprs.len() > 25, "{} queries", exprs.len());
    // A fleet's bots are picked by account and strategy: every query honours both variables.
    let vars: Vec<&str> =
        dash["templating"]["list"].as_array().expect("variables").iter().filter_map(|v| v["name"].as_str()).collect();
    assert!(vars.contains(&"account") && vars.contains(&"strategy"), "{vars:?}");
    for e in &exprs {
        assert!(
            e.contains("account=~\"$account\"") && e.contains("strategy=~\"$strategy\""),
            "{e} ignores the fleet variables"
        );
    }
    assert!(
        dash["panels"]
            .as_array()
            .expect("panels")
            .iter()
            .any(|p| p["type"] == "row" && p["title"].as_str().is_some_and(|t| t.starts_with("Fleet"))),
        "a fleet overview row"
    );

    let dir = TempDir::new("dashboard");
    // Every breaker on (at limits this run never reaches), so the protection panels have series;
    // every symbol on a calendar open all week but for a holiday two days on, so the market-hours
    // panels have a next change to show while the market is open now.
    let holiday = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .checked_add(jiff::Span::new().days(2))
        .expect("a date");
    let week: String =
        ["mon", "tue", "wed", "thu", "fri", "sat", "sun"].iter().map(|d| format!("{d}: [\"00:00-24:00\"], ")).collect();
    let (cfg, addr) = config_with(
        &dir,
        &format!(
            "protection:\n  starting_balance: 1000000\n  max_daily_loss:\n    fraction: 0.9\n  max_drawdown:\n    fraction: 0.9\n\
             \x20 max_consecutive_losses:\n    count: 1000000\n  max_position_loss:\n    amount: 1000000\n\
             identity:\n  account: acct1\n  strategy: ewma\n\
             sessions:\n  default: open\n  calendars:\n    open: {{tz: UTC, {week}closed: [\"{holiday}\"]}}\n"
        ),
    );
    let mut bot = Daemon::start(&dir, &cfg, &addr, &[]);
    bot.wait_metrics(Duration::from_secs(5));
    let trades = "trade_count{account=\"acct1\",strategy=\"ewma\",venue=\"paper\"}";
    wait_for("a trade", Duration::from_secs(10), || sample(&bot.metrics(), trades).filter(|t| *t > 0.0));
    let exported = bot.metrics();
    let families: Vec<&str> = exported
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let series_names: Vec<&str> =
        exported.lines().filter(|l| !l.starts_with('#')).filter_map(|l| l.split(['{', ' ']).next()).collect();
    for name in ["cpu_usage_pct", "rss_usage_mb", "queue_depth", "trade_count", "drift_events"] {
        assert!(exprs.iter().any(|e| metric_names(e).iter().any(|n| n == name)), "the dashboard shows {name}");
    }
    for e in &exprs {
        // `up` is the series Prometheus itself writes for every target it scrapes.
        for name in metric_names(e).into_iter().filter(|n| n != "up") {
            assert!(
                families.contains(&name.as_str()) || series_names.contains(&name.as_str()),
                "{name} (in {e}) is not in mt5bot's /metrics"
            );
        }
    }

    // Every query is valid PromQL for a real Prometheus scraping the daemon.
    let prom = Prometheus::start(&dir, &format!("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: mt5bot\n    static_configs:\n      - targets: ['{addr}']\n"));
    wait_for("a scrape", Duration::from_secs(30), || prom.query("up{job=\"mt5bot\"} == 1").into_iter().next());
    for e in &exprs {
        let q =
            e.replace("$job", "mt5bot").replace("$instance", ".*").replace("$account", ".*").replace("$strategy", ".*");
        let r = get(&prom.addr, &format!("/api/v1/query?query={}", urlencode(&q))).expect("query");
        assert_eq!(r.status, 200, "{q}: {}", r.body);
    }
    let trades = prom.query("sum(trade_count{job=\"mt5bot\", instance=~\".*\"})");
    assert!(!trades.is_empty(), "the overview's trade panel has data");
    let equity =
        prom.query("sum by (account, strategy) (equity{job=\"mt5bot\", account=~\"acct1\", strategy=~\".*\"})");
    assert_eq!(equity.len(), 1, "the fleet row's equity panel has the bot: {equity:?}");
}
