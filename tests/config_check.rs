//! `mt5bot config check` and configuration errors at `mt5bot run`.

mod support;

use std::process::{Command, Output};

use support::*;

fn check(dir: &TempDir, text: &str) -> Output {
    let p = dir.write("config.yaml", text);
    Command::new(BIN).args(["config", "check", "--config"]).arg(&p).output().expect("run")
}

#[test]
fn unknown_key_exits_2_naming_file_line_and_key() {
    let dir = TempDir::new("cfg-unknown");
    let out = check(&dir, "# comment\nqueue:\n  capacity: 64\nrisk:\n  max_postion: 3\n");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("config.yaml:5: risk.max_postion: unknown field `max_postion`"), "{err}");
    assert!(err.contains("max_position"), "lists the accepted keys: {err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn wrong_type_and_bad_value_name_their_lines() {
    let dir = TempDir::new("cfg-type");
    let out = check(&dir, "feed:\n  tick_rate: fast\n");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("config.yaml:2: feed.tick_rate: invalid type"));
    let out = check(&dir, "feed:\n  tick_rate: 100\nqueue:\n  capacity: 100\n");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("config.yaml:4: queue.capacity: 100 is not accepted; accepted: a power of two"), "{err}");
    let out = check(&dir, "venue:\n  kind: mt4\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(":2: venue.kind: unknown variant `mt4`, expected one of `paper`, `fix44`, `mt5`"), "{err}");
}

#[test]
fn broken_yaml_and_missing_file() {
    let dir = TempDir::new("cfg-yaml");
    let out = check(&dir, "queue:\n  capacity: [1,\n");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("config.yaml:"));
    let out = Command::new(BIN).args(["config", "check", "--config", "/nonexistent/c.yaml"]).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/c.yaml: cannot read the config file"));
}

#[test]
fn valid_file_prints_the_effective_config_which_checks_again() {
    let dir = TempDir::new("cfg-ok");
    let out = check(&dir, "queue:\n  capacity: 64\n");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let effective = String::from_utf8(out.stdout).expect("utf8");
    assert!(effective.contains("capacity: 64"), "{effective}");
    assert!(effective.contains("kind: paper"), "defaults filled in: {effective}");
    let again = check(&dir, &effective);
    assert!(again.status.success());
    assert_lines_eq(&effective, &String::from_utf8(again.stdout).expect("utf8"));
}

#[test]
fn the_shipped_example_and_the_embedded_default_agree() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.yaml");
    let a = Command::new(BIN).args(["config", "check", "--config", example]).output().expect("run");
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    let b = Command::new(BIN).args(["config", "check"]).output().expect("run");
    assert!(b.status.success());
    let body = |o: &Output| String::from_utf8_lossy(&o.stdout).lines().skip(1).collect::<Vec<_>>().join("\n");
    assert_lines_eq(&body(&b), &body(&a));
}

#[test]
fn run_refuses_a_bad_config_with_exit_2() {
    let dir = TempDir::new("cfg-run");
    let p = dir.write("config.yaml", "metrics:\n  listen: nowhere\n");
    let out = Command::new(BIN).arg("run").arg("--config").arg(&p).current_dir(dir.path()).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("config.yaml:2: metrics.listen: \"nowhere\" is not a socket address"), "{err}");
}

#[test]
fn csv_replay_errors_are_input_errors() {
    let dir = TempDir::new("cfg-csv");
    dir.write("ticks.csv", "timestamp,symbol,bid,ask\n2026-01-01T00:00:00Z,EURUSD,1.1,1.0\n");
    let addr = format!("127.0.0.1:{}", free_port());
    let p = dir.write(
        "config.yaml",
        &format!("metrics:\n  listen: {addr}\nfeed:\n  kind: csv\n  csv:\n    path: ticks.csv\n"),
    );
    let out = Command::new(BIN).arg("run").arg("--config").arg(&p).current_dir(dir.path()).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ticks.csv:2: bid 1.1 is above ask 1"));
}

/// The ingress has no authentication: a listener off loopback needs an explicit
/// `ingress.allow_remote: true`, and the metrics listener off loopback is warned about.
#[test]
fn listeners_off_loopback_need_consent_or_get_a_warning() {
    let dir = TempDir::new("cfg-bind");
    let out = check(&dir, "ingress:\n  enabled: true\n  listen: 0.0.0.0:9897\n");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("config.yaml:3: ingress.listen: 0.0.0.0:9897 is not a loopback address"), "{err}");
    assert!(err.contains("ingress.allow_remote: true"), "names the way out: {err}");

    let out = check(&dir, "ingress:\n  enabled: true\n  listen: 0.0.0.0:9897\n  allow_remote: true\n");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("warning: ingress.listen 0.0.0.0:9897"));

    let out = check(&dir, "metrics:\n  listen: 0.0.0.0:9898\n");
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("warning: metrics.listen 0.0.0.0:9898 is not a loopback address"), "{err}");
    assert!(err.contains("TLS"), "names the risk and the fix: {err}");

    let out = check(&dir, "metrics:\n  listen: 127.0.0.1:9898\n");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("warning"));
}

/// Handed a secrets file by mistake (a wrong path, a symlink), `config check` names the file and
/// line and repeats none of it; a huge file is refused before it is read.
#[test]
fn a_secrets_file_given_as_config_is_never_echoed_and_a_huge_file_is_refused_unread() {
    let dir = TempDir::new("cfg-secret");
    let secret = "Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5d2FsZG8=";
    let env = dir.write("runtime.env", &format!("API_KEY={secret}\nCONTROLLER_SHARED_SECRET={secret}x\n"));
    let link = dir.join("config.yaml");
    std::os::unix::fs::symlink(&env, &link).expect("link");
    let out = Command::new(BIN).args(["config", "check", "--config"]).arg(&link).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!text.contains(secret) && !text.contains("API_KEY="), "{text}");
    assert!(text.contains("config.yaml") && text.contains("not a YAML mapping"), "{text}");

    let huge = dir.join("huge.yaml");
    let f = std::fs::File::create(&huge).expect("create");
    f.set_len(60 << 20).expect("a 60 MiB file");
    let start = std::time::Instant::now();
    let out = Command::new(BIN).args(["config", "check", "--config"]).arg(&huge).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("a config is at most 1048576 bytes"), "{err}");
    eprintln!("a 60 MiB config was refused in {:?}", start.elapsed());
}

/// A reader that went away (`mt5bot config check | head -1` once head has its line) ends the
/// command quietly with 0, not with a panic about a broken pipe.
#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let out = Command::new(BIN)
        .args(["config", "check"])
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(0), "{err}");
}
