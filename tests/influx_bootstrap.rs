//! `mt5bot influx-bootstrap` against the InfluxDB v2 stand-in, every exchange checked against the
//! official OpenAPI contract.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use support::influx_v2::InfluxV2;
use support::openapi::Contract;
use support::*;

const ENV_VARS: [&str; 8] = [
    "INFLUXDB_BOOTSTRAP_URL",
    "INFLUXDB_BOOTSTRAP_ORG",
    "INFLUXDB_BOOTSTRAP_BUCKET",
    "INFLUXDB_BOOTSTRAP_USERNAME",
    "INFLUXDB_BOOTSTRAP_PASSWORD_FILE",
    "INFLUXDB_BOOTSTRAP_RETENTION",
    "INFLUXDB_BOOTSTRAP_ADMIN_TOKEN",
    "INFLUXDB_BOOTSTRAP_TIMEOUT",
];

fn contract() -> Contract {
    Contract::load(
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/contracts/influxdb-oss-v2/oss.yml")),
        "/api/v2",
    )
}

fn bootstrap(env_file: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("influx-bootstrap").arg("--env-file").arg(env_file).args(args);
    for v in ENV_VARS {
        cmd.env_remove(v);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run mt5bot")
}

fn std_args(url: &str) -> Vec<&str> {
    vec!["--url", url, "--org", "trading", "--bucket", "mt5_metrics"]
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn assert_ok(o: &Output) -> String {
    assert!(o.status.success(), "exit {:?}: {}", o.status.code(), stderr(o));
    stderr(o)
}

fn get(path: &Path, key: &str) -> Option<String> {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(". '{}'; printf '%s' \"${key}\"", path.display()))
        .output()
        .expect("sh");
    Some(String::from_utf8_lossy(&out.stdout).into_owned()).filter(|v| !v.is_empty())
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).expect("stat").permissions().mode() & 0o777
}

fn no_violations(influx: &InfluxV2) {
    let v = influx.contract_violations(&contract());
    assert!(v.is_empty(), "contract violations:\n{}", v.join("\n"));
    assert!(!influx.exchanges().is_empty());
}

#[test]
fn the_contract_checker_can_fail() {
    let c = contract();
    assert!(c
        .check_request("POST", "/api/v2/buckets", Some(&serde_json::json!({ "name": "x" })))
        .iter()
        .any(|e| e.contains("\"orgID\" missing")));
    assert!(c
        .check_request("POST", "/api/v2/buckets", Some(&serde_json::json!({ "orgID": "1", "name": 5 })))
        .iter()
        .any(|e| e.contains("expected a string")));
    assert!(c
        .check_request(
            "POST",
            "/api/v2/buckets",
            Some(&serde_json::json!({ "orgID": "1", "name": "x", "retention": 5 }))
        )
        .iter()
        .any(|e| e.contains("not in the contract")));
    assert!(c.check_request("GET", "/api/v2/buckets?bogus=1", None).iter().any(|e| e.contains("not declared")));
    assert!(c
        .check_response("POST", "/api/v2/setup", 201, Some(&serde_json::json!({ "auth": { "orgID": "1" } })))
        .iter()
        .any(|e| e.contains("permissions")));
    assert!(c
        .check_response("GET", "/api/v2/orgs", 404, Some(&serde_json::json!({ "code": "nope" })))
        .iter()
        .any(|e| e.contains("is not one of")));
    assert!(c.check_request("GET", "/api/v2/nothing", None).iter().any(|e| e.contains("no such operation")));
}

#[test]
fn fresh_instance_is_set_up_with_a_bucket_scoped_token() {
    let influx = InfluxV2::start(true);
    let dir = TempDir::new("influx-fresh");
    let env = dir.join("secrets/influx.env");
    let out = bootstrap(&env, &[&std_args(&influx.url)[..], &["--retention", "90d"]].concat(), &[]);
    let err = assert_ok(&out);
    assert!(err.contains("set up http://127.0.0.1:"), "{err}");

    let admin = dir.join("secrets/influx-admin.env");
    assert_eq!(mode(&admin), 0o600);
    assert_eq!(mode(&env), 0o600);
    assert_eq!(get(&admin, "INFLUXDB_ADMIN_USERNAME").as_deref(), Some("admin"));
    let password = get(&admin, "INFLUXDB_ADMIN_PASSWORD").expect("password saved");
    assert_eq!(password.len(), 32);
    let admin_token = get(&admin, "INFLUXDB_ADMIN_TOKEN").expect("admin token saved");

    assert_eq!(get(&env, "INFLUXDB_URL").as_deref(), Some(influx.url.as_str()));
    assert_eq!(get(&env, "INFLUXDB_ORG").as_deref(), Some("trading"));
    assert_eq!(get(&env, "INFLUXDB_BUCKET").as_deref(), Some("mt5_metrics"));
    let token = get(&env, "INFLUXDB_TOKEN").expect("token");
    assert_eq!(influx.scoped_tokens("mt5_metrics"), vec![token.clone()], "read+write on that one bucket only");
    assert_ne!(token, admin_token);
    assert_eq!(influx.bucket_retention("mt5_metrics"), Some(90 * 86_400));
    for secret in [&password, &admin_token, &token] {
        assert!(!err.contains(secret.as_str()), "a secret leaked into the output");
    }
    no_violations(&influx);
}

#[test]
fn set_up_before_bucket_missing_then_present_then_nothing_to_do() {
    let influx = InfluxV2::start(true);
    influx.preset("trading", None, "operator-token-1");
    let dir = TempDir::new("influx-existing");
    let env = dir.join("influx.env");
    let args = [&std_args(&influx.url)[..], &["--admin-token", "operator-token-1"]].concat();
    let err = assert_ok(&bootstrap(&env, &args, &[]));
    assert!(err.contains("bucket \"mt5_metrics\" created (retention infinite)"), "{err}");
    assert!(!dir.join("influx-admin.env").exists(), "no admin file without a setup");
    let first = std::fs::read(&env).expect("read");

    let err = assert_ok(&bootstrap(&env, &args, &[]));
    assert!(err.contains("bucket \"mt5_metrics\" exists"), "{err}");
    assert!(err.contains("INFLUXDB_TOKEN kept: it still reads and writes"), "{err}");
    assert!(err.contains("unchanged: nothing to do"), "{err}");
    assert_eq!(std::fs::read(&env).expect("read"), first, "byte-identical");
    assert_eq!(influx.scoped_tokens("mt5_metrics").len(), 1, "no second token made");
    no_violations(&influx);
}

#[test]
fn a_revoked_token_is_refused_without_force_and_replaced_with_it() {
    let influx = InfluxV2::start(true);
    influx.preset("trading", Some(("mt5_metrics", 0)), "op");
    let dir = TempDir::new("influx-revoked");
    let env = dir.join("influx.env");
    let args = [&std_args(&influx.url)[..], &["--admin-token", "op"]].concat();
    assert_ok(&bootstrap(&env, &args, &[]));
    let old = get(&env, "INFLUXDB_TOKEN").expect("token");
    let before = std::fs::read(&env).expect("read");
    influx.revoke_bot_tokens();

    let out = bootstrap(&env, &args, &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("no longer reads and writes bucket \"mt5_metrics\"") && err.contains("--force"), "{err}");
    assert!(!err.contains(&old), "the token is not shown");
    assert_eq!(std::fs::read(&env).expect("read"), before, "nothing written");

    let err = assert_ok(&bootstrap(&env, &[&args[..], &["--force"]].concat(), &[]));
    assert!(err.contains("replaced the token that no longer worked"), "{err}");
    let new = get(&env, "INFLUXDB_TOKEN").expect("token");
    assert_ne!(new, old);
    assert_eq!(influx.scoped_tokens("mt5_metrics"), vec![new]);
    no_violations(&influx);
}

#[test]
fn wrong_admin_token_and_unknown_org_write_nothing() {
    let influx = InfluxV2::start(true);
    influx.preset("trading", None, "right");
    let dir = TempDir::new("influx-401");
    let env = dir.join("influx.env");
    let out = bootstrap(&env, &[&std_args(&influx.url)[..], &["--admin-token", "wrong"]].concat(), &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("refused the admin token") && err.contains("HTTP 401 unauthorized"), "{err}");
    assert!(!err.contains("wrong"), "the token is not echoed: {err}");
    assert!(!env.exists());

    let out =
        bootstrap(&env, &["--url", &influx.url, "--org", "Trading", "--bucket", "b", "--admin-token", "right"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("organization \"Trading\" not found"), "{}", stderr(&out));
    assert!(!env.exists());

    let out = bootstrap(&env, &std_args(&influx.url), &[]);
    assert_eq!(out.status.code(), Some(2), "set up, and no admin token anywhere");
    assert!(stderr(&out).contains("give the admin token with --admin-token"), "{}", stderr(&out));
    no_violations(&influx);
}

#[test]
fn unreachable_url_fails_within_the_timeout_and_writes_nothing() {
    let dir = TempDir::new("influx-down");
    let env = dir.join("influx.env");
    let url = format!("http://127.0.0.1:{}", free_port());
    let start = std::time::Instant::now();
    let out = bootstrap(&env, &[&std_args(&url)[..], &["--timeout", "2s"]].concat(), &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains(&format!("cannot reach InfluxDB at {url}")), "{}", stderr(&out));
    assert!(start.elapsed() < std::time::Duration::from_secs(20), "bounded");
    assert!(!env.exists() && !dir.join("influx-admin.env").exists());
}

#[test]
fn server_errors_are_retried() {
    let influx = InfluxV2::start(true);
    influx.with_state(|s| s.fail_next = 3);
    let dir = TempDir::new("influx-503");
    let env = dir.join("influx.env");
    assert_ok(&bootstrap(&env, &std_args(&influx.url), &[]));
    assert!(get(&env, "INFLUXDB_TOKEN").is_some());
    assert_eq!(influx.exchanges().iter().filter(|x| x.status == 503).count(), 3);
}

#[test]
fn retention_is_brought_to_the_requested_value() {
    let influx = InfluxV2::start(true);
    influx.preset("trading", Some(("mt5_metrics", 30 * 86_400)), "op");
    let dir = TempDir::new("influx-retention");
    let env = dir.join("influx.env");
    let err = assert_ok(&bootstrap(
        &env,
        &[&std_args(&influx.url)[..], &["--admin-token", "op", "--retention", "72h"]].concat(),
        &[],
    ));
    assert!(err.contains("retention updated from 30d to 3d"), "{err}");
    assert_eq!(influx.bucket_retention("mt5_metrics"), Some(72 * 3600));
    let out =
        bootstrap(&env, &[&std_args(&influx.url)[..], &["--admin-token", "op", "--retention", "30m"]].concat(), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--retention: \"30m\" is shorter than InfluxDB's minimum of 1h"), "{}", stderr(&out));
    no_violations(&influx);
}

#[test]
fn environment_forms_and_print_exports() {
    let influx = InfluxV2::start(false); // 2.7 behaviour: tokens listed in plain text
    let dir = TempDir::new("influx-env");
    let env = dir.join("influx.env");
    let pw = dir.write("pw", "correct horse battery\n");
    let vars = [
        ("INFLUXDB_BOOTSTRAP_URL", influx.url.as_str()),
        ("INFLUXDB_BOOTSTRAP_ORG", "trading"),
        ("INFLUXDB_BOOTSTRAP_BUCKET", "mt5_metrics"),
        ("INFLUXDB_BOOTSTRAP_USERNAME", "ops"),
        ("INFLUXDB_BOOTSTRAP_PASSWORD_FILE", pw.to_str().expect("utf8")),
        ("INFLUXDB_BOOTSTRAP_RETENTION", "3600s"),
        ("INFLUXDB_BOOTSTRAP_ADMIN_TOKEN", "preset-operator-token"),
    ];
    let out = bootstrap(&env, &["--print-exports"], &vars);
    assert_ok(&out);
    let admin = dir.join("influx-admin.env");
    assert_eq!(get(&admin, "INFLUXDB_ADMIN_USERNAME").as_deref(), Some("ops"));
    assert_eq!(get(&admin, "INFLUXDB_ADMIN_PASSWORD").as_deref(), Some("correct horse battery"));
    assert_eq!(get(&admin, "INFLUXDB_ADMIN_TOKEN").as_deref(), Some("preset-operator-token"));
    assert_eq!(influx.bucket_retention("mt5_metrics"), Some(3600));

    let exports = String::from_utf8(out.stdout).expect("utf8");
    let script =
        "eval \"$1\"; printf '%s\\n' \"$INFLUXDB_URL\" \"$INFLUXDB_ORG\" \"$INFLUXDB_BUCKET\" \"$INFLUXDB_TOKEN\"";
    let evald = Command::new("sh").args(["-c", script, "sh", &exports]).output().expect("sh");
    let got: Vec<String> = String::from_utf8_lossy(&evald.stdout).lines().map(str::to_owned).collect();
    let want: Vec<String> = ["INFLUXDB_URL", "INFLUXDB_ORG", "INFLUXDB_BUCKET", "INFLUXDB_TOKEN"]
        .iter()
        .map(|k| get(&env, k).expect(k))
        .collect();
    assert_eq!(got, want);
    // A flag wins over its variable: the token made for mt5_metrics is refused for the flag's bucket.
    let out = bootstrap(&env, &["--bucket", "other_bucket"], &vars);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no longer reads and writes bucket \"other_bucket\""), "{}", stderr(&out));
    assert_ok(&bootstrap(&env, &["--bucket", "other_bucket", "--force"], &vars));
    assert_eq!(get(&env, "INFLUXDB_BUCKET").as_deref(), Some("other_bucket"));
    assert_eq!(influx.scoped_tokens("other_bucket"), vec![get(&env, "INFLUXDB_TOKEN").expect("token")]);
    // The token is never read back from the list, even where the server would show it.
    assert!(!influx.exchanges().iter().any(|x| x.method == "GET" && x.url.starts_with("/api/v2/authorizations")));
    no_violations(&influx);
}

#[test]
fn password_length_is_checked_before_calling() {
    let influx = InfluxV2::start(true);
    let dir = TempDir::new("influx-pw");
    let env = dir.join("influx.env");
    let pw = dir.write("pw", "short\n");
    let out =
        bootstrap(&env, &[&std_args(&influx.url)[..], &["--password-file", pw.to_str().expect("utf8")]].concat(), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("has 5 characters; InfluxDB accepts 8 to 72"), "{}", stderr(&out));
    assert!(influx.exchanges().iter().all(|x| x.method == "GET"), "no setup attempted");
    assert!(!env.exists());
}

#[test]
fn a_tls_failure_says_so_at_once_and_writes_nothing() {
    // https:// against a plain-HTTP server, which answers the TLS hello with an HTTP error.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("https://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for mut s in listener.incoming().flatten() {
            let mut buf = [0u8; 512];
            let _ = s.read(&mut buf);
            let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    let dir = TempDir::new("influx-tls");
    let env = dir.join("influx.env");
    let start = std::time::Instant::now();
    let out = bootstrap(&env, &[&std_args(&url)[..], &["--timeout", "20s"]].concat(), &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains(&format!("TLS failure talking to {url}")), "{}", stderr(&out));
    assert!(start.elapsed() < std::time::Duration::from_secs(10), "not retried");
    assert!(!env.exists());
}
