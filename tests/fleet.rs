//! A fleet on the real monitoring stack: three mt5bot instances with their identities, one
//! Prometheus discovering them from target files (`deploy/prometheus-fleet.yml`, the shipped
//! rules), two Alertmanagers in a cluster (`deploy/alertmanager.yml`), all Debian's packages on
//! loopback. One bot and one Alertmanager are killed: exactly one notification arrives, for that
//! bot, naming it.

mod support;

use std::process::Command;
use std::time::Duration;

use support::*;

const DEPLOY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy");

/// A bot of the fleet: its folder, its daemon and its metrics address.
struct Bot {
    _dir: TempDir,
    daemon: Daemon,
    addr: String,
}

fn bot(account: &str, targets: &std::path::Path) -> Bot {
    let dir = TempDir::new(&format!("fleet-{account}"));
    let (cfg, addr) = config_with(&dir, &format!("identity:\n  account: {account}\n  strategy: ewma\n"));
    let out = Command::new(BIN)
        .args(["config", "target", "--config"])
        .arg(&cfg)
        .arg("--out")
        .arg(targets.join(format!("{account}.json")))
        .output()
        .expect("mt5bot config target");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut daemon = Daemon::start(&dir, &cfg, &addr, &[]);
    daemon.wait_metrics(Duration::from_secs(10));
    Bot { _dir: dir, daemon, addr }
}

/// An Alertmanager node of a two-node cluster, sending to `webhook`.
fn alertmanager(dir: &TempDir, name: &str, webhook: &str, listen: &str, peer: &str) -> Peer {
    let cfg = std::fs::read_to_string(format!("{DEPLOY}/alertmanager.yml"))
        .expect("alertmanager.yml")
        .replace("http://127.0.0.1:5001/alerts", &format!("http://{webhook}/alerts"))
        .replace("group_wait: 1m", "group_wait: 1s")
        .replace("group_wait: 30s", "group_wait: 1s")
        .replace("group_wait: 10s", "group_wait: 1s");
    let path = dir.write(&format!("{name}.yml"), &cfg);
    Peer::start(
        dir,
        "prometheus-alertmanager",
        &[
            format!("--config.file={}", path.display()),
            format!("--storage.path={}", dir.join(&format!("{name}-data")).display()),
            "--web.listen-address={addr}".into(),
            format!("--cluster.listen-address={listen}"),
            format!("--cluster.peer={peer}"),
            // How long a node waits per position for the one before it to send: short for the test.
            "--cluster.peer-timeout=2s".into(),
        ],
        "/-/ready",
    )
}

#[test]
fn a_dead_bot_pages_once_through_a_clustered_alertmanager_that_lost_a_node() {
    let prom_dir = TempDir::new("fleet-prometheus");
    let targets = prom_dir.join("targets");
    std::fs::create_dir_all(&targets).expect("targets dir");
    let bots: Vec<Bot> = ["acct1", "acct2", "acct3"].iter().map(|a| bot(a, &targets)).collect();

    // The target files say where each bot is and who it is.
    let t: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(targets.join("acct2.json")).expect("target file")).expect("JSON");
    assert_eq!(t[0]["targets"][0], bots[1].addr.as_str());
    assert_eq!((t[0]["labels"]["account"].as_str(), t[0]["labels"]["venue"].as_str()), (Some("acct2"), Some("paper")));
    // ... and every series of a bot carries the same labels.
    let m = bots[0].daemon.metrics();
    assert!(m.contains("ticks_total{account=\"acct1\",strategy=\"ewma\",venue=\"paper\"} "), "{m}");
    assert!(m.lines().any(|l| l.starts_with("mt5bot_build_info{") && l.contains("account=\"acct1\"")), "{m}");
    assert!(
        m.contains("broker_connected{venue=\"paper\",account=\"acct1\",strategy=\"ewma\"} "),
        "a venue series keeps its own: {m}"
    );

    let webhook = Receiver::start();
    let am_dir = TempDir::new("fleet-alertmanager");
    let (c1, c2) = (format!("127.0.0.1:{}", free_port()), format!("127.0.0.1:{}", free_port()));
    let mut am1 = alertmanager(&am_dir, "am1", &webhook.addr, &c1, &c2);
    let am2 = alertmanager(&am_dir, "am2", &webhook.addr, &c2, &c1);
    wait_for("the two Alertmanagers to form a cluster", Duration::from_secs(30), || {
        let r = get(&am2.addr, "/api/v2/status").ok()?;
        let v: serde_json::Value = serde_json::from_str(&r.body).ok()?;
        (v["cluster"]["peers"].as_array()?.len() == 2).then_some(())
    });

    // The shipped fleet config and rules, on this test's ports, every second; the down alert after 2 s.
    let prom_cfg = std::fs::read_to_string(format!("{DEPLOY}/prometheus-fleet.yml"))
        .expect("prometheus-fleet.yml")
        .replace("[\"127.0.0.1:9093\", \"127.0.0.1:9095\"]", &format!("[\"{}\", \"{}\"]", am1.addr, am2.addr))
        .replace("127.0.0.1:9091", &format!("127.0.0.1:{}", free_port()))
        .replace("scrape_interval: 15s", "scrape_interval: 1s")
        .replace("scrape_timeout: 5s", "scrape_timeout: 1s")
        .replace("evaluation_interval: 15s", "evaluation_interval: 1s")
        .replace("refresh_interval: 30s", "refresh_interval: 1s");
    let rules = std::fs::read_to_string(format!("{DEPLOY}/alert.rules.yml"))
        .expect("rules")
        .replace("expr: up{job=\"mt5bot\"} == 0\n        for: 1m", "expr: up{job=\"mt5bot\"} == 0\n        for: 2s");
    assert!(rules.contains("== 0\n        for: 2s"), "the test shortens Mt5botTargetDown's wait");
    prom_dir.write("alert.rules.yml", &rules);
    let prom = Prometheus::start(&prom_dir, &prom_cfg);
    wait_for("Prometheus to scrape the three bots from their target files", Duration::from_secs(60), || {
        (prom.query("up{job=\"mt5bot\"} == 1").len() == 3).then_some(())
    });
    let per_bot = prom.query("count by (account, strategy, venue) (ticks_total)");
    assert_eq!(per_bot.len(), 3, "one series per bot, told apart by identity: {per_bot:?}");

    // One Alertmanager node and one bot die.
    am1.kill();
    bots[1].daemon.signal("KILL");
    let (_, body) = wait_for("Mt5botTargetDown at the webhook", Duration::from_secs(90), || {
        webhook.received().into_iter().find(|(_, b)| b.contains("Mt5botTargetDown"))
    });
    let msg: serde_json::Value = serde_json::from_str(&body).expect("webhook JSON");
    let alert = &msg["alerts"][0];
    assert_eq!((alert["labels"]["account"].as_str(), alert["status"].as_str()), (Some("acct2"), Some("firing")));
    let summary = alert["annotations"]["summary"].as_str().expect("summary");
    assert!(summary.starts_with(&format!("mt5bot acct2/ewma on {} is down", bots[1].addr)), "{summary}");
    // Longer than the cluster's peer timeout and a group interval at this speed: no second page.
    std::thread::sleep(Duration::from_secs(8));
    let pages: Vec<serde_json::Value> = webhook
        .received()
        .into_iter()
        .filter(|(_, b)| b.contains("Mt5botTargetDown"))
        .map(|(_, b)| serde_json::from_str(&b).expect("webhook JSON"))
        .collect();
    assert_eq!(pages.len(), 1, "exactly one notification: {pages:?}");
    let accounts: Vec<&str> =
        pages[0]["alerts"].as_array().expect("alerts").iter().filter_map(|a| a["labels"]["account"].as_str()).collect();
    assert_eq!(accounts, ["acct2"], "for that bot only");
    drop(bots);
}
