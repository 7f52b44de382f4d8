//! `mt5bot runtime-secrets` and `mt5bot prometheus-endpoints` as an operator runs them: files,
//! modes, merging, symlinks, interrupted writes, and `eval` of `--print-exports`.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use support::*;

const SECRETS: [&str; 3] = ["API_KEY", "CONTROLLER_SHARED_SECRET", "CHECKPOINT_AES_KEY"];

fn mt5bot(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    for (_, var, _) in mt5bot::deployment::prometheus_endpoints::INPUTS {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run mt5bot")
}

fn secrets(path: &Path, extra: &[&str]) -> Output {
    let p = path.to_str().expect("utf8");
    let mut args = vec!["runtime-secrets", "--env-file", p];
    args.extend_from_slice(extra);
    mt5bot(&args, &[])
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "exit {:?}: {}", out.status.code(), String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
}

/// The variables a POSIX shell gets from sourcing `path` (what `EnvironmentFile=` promises too).
fn sourced(path: &Path, keys: &[&str]) -> Vec<String> {
    let script = keys.iter().map(|k| format!("printf '%s\\n' \"${k}\"")).collect::<Vec<_>>().join("; ");
    let out = Command::new("sh").arg("-c").arg(format!(". '{}'; {script}", path.display())).output().expect("sh");
    assert!(out.status.success(), "sh could not source {}", path.display());
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect()
}

fn value(path: &Path, key: &str) -> Option<String> {
    sourced(path, &[key]).into_iter().next().filter(|v| !v.is_empty())
}

#[test]
fn generates_once_then_reruns_change_nothing() {
    let dir = TempDir::new("secrets-idem");
    let env = dir.join("deploy/secrets/runtime.env");
    let stderr = ok(&secrets(&env, &[]));
    assert!(stderr.contains("API_KEY generated"), "{stderr}");
    assert_eq!(mode(&env), 0o600);
    assert_eq!(mode(env.parent().expect("dir")), 0o700, "a created folder is private too");
    let first = std::fs::read(&env).expect("read");
    let values = sourced(&env, &SECRETS);
    for v in &values {
        assert_eq!(v.len(), 44, "base64 of 32 bytes: {v:?}");
        assert!(!stderr.contains(v.as_str()), "a secret leaked to stderr");
    }
    let mtime = std::fs::metadata(&env).expect("stat").modified().expect("mtime");
    let stderr = ok(&secrets(&env, &[]));
    assert!(stderr.contains("unchanged"), "{stderr}");
    assert_eq!(std::fs::read(&env).expect("read"), first, "byte-identical");
    assert_eq!(std::fs::metadata(&env).expect("stat").modified().expect("mtime"), mtime, "not even rewritten");
}

#[test]
fn rotate_one_rotate_the_aes_key_and_force() {
    let dir = TempDir::new("secrets-rotate");
    let env = dir.join("runtime.env");
    ok(&secrets(&env, &[]));
    let before = sourced(&env, &SECRETS);

    let stderr = ok(&secrets(&env, &["--rotate", "API_KEY"]));
    assert!(stderr.contains("API_KEY rotated") && stderr.contains("CHECKPOINT_AES_KEY kept"), "{stderr}");
    let after = sourced(&env, &SECRETS);
    assert_ne!(after[0], before[0]);
    assert_eq!(after[1..], before[1..]);

    ok(&secrets(&env, &["--rotate", "CHECKPOINT_AES_KEY"]));
    let rotated = sourced(&env, &["CHECKPOINT_AES_KEY", "CHECKPOINT_AES_KEY_PREVIOUS", "API_KEY"]);
    assert_ne!(rotated[0], before[2]);
    assert_eq!(rotated[1], before[2], "the old checkpoint key is kept as _PREVIOUS");
    assert_eq!(rotated[2], after[0]);

    ok(&secrets(&env, &["--force"]));
    let forced = sourced(&env, &SECRETS);
    for i in 0..3 {
        assert_ne!(forced[i], after[i]);
    }
    assert_eq!(value(&env, "CHECKPOINT_AES_KEY_PREVIOUS").as_deref(), Some(rotated[0].as_str()));

    let out = secrets(&env, &["--rotate", "DB_PASSWORD"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("valid names: API_KEY, CONTROLLER_SHARED_SECRET, CHECKPOINT_AES_KEY"), "{err}");
}

#[test]
fn other_lines_and_comments_are_kept_and_loose_modes_tightened() {
    let dir = TempDir::new("secrets-merge");
    let env = dir.write(
        "runtime.env",
        "# managed by hand\nPROM_PUSH_URL=http://pg:9091/metrics/job/x\n\nAPI_KEY='kept value'\n",
    );
    std::fs::set_permissions(&env, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let stderr = ok(&secrets(&env, &[]));
    assert!(stderr.contains("was readable by others (mode 644); it is now 600"), "{stderr}");
    assert_eq!(mode(&env), 0o600);
    let text = std::fs::read_to_string(&env).expect("read");
    assert!(text.starts_with("# managed by hand\nPROM_PUSH_URL=http://pg:9091/metrics/job/x\n\nAPI_KEY='kept value'\nCONTROLLER_SHARED_SECRET="), "{text}");
    assert_eq!(value(&env, "API_KEY").as_deref(), Some("kept value"));
}

/// A rerun that has nothing to write still tightens a file others can read, and `ctl`, which only
/// reads the file, warns and names the fix.
#[test]
fn a_loose_mode_is_tightened_by_a_rerun_and_warned_about_by_readers() {
    let dir = TempDir::new("secrets-loose");
    let env = dir.join("runtime.env");
    ok(&secrets(&env, &[]));
    std::fs::set_permissions(&env, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let stderr = ok(&secrets(&env, &[]));
    assert!(stderr.contains("was readable by others (mode 644); it is now 600"), "{stderr}");
    assert_eq!(mode(&env), 0o600);

    std::fs::set_permissions(&env, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let p = env.to_str().expect("utf8");
    let out = mt5bot(&["ctl", "status", "--url", "http://127.0.0.1:9", "--env-file", p], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is mode 640") && err.contains(&format!("chmod 600 {p}")), "{err}");
    assert!(!err.contains(&value(&env, "API_KEY").expect("key")), "the warning names no secret");
}

#[test]
fn a_symlinked_target_is_written_through_and_the_link_stays() {
    let dir = TempDir::new("secrets-link");
    std::fs::create_dir_all(dir.join("real")).expect("dir");
    let real = dir.write("real/runtime.env", "# real file\n");
    let link = dir.join("runtime.env");
    std::os::unix::fs::symlink("real/runtime.env", &link).expect("symlink");
    ok(&secrets(&link, &[]));
    assert!(std::fs::symlink_metadata(&link).expect("lstat").file_type().is_symlink(), "the link stays a link");
    assert_eq!(std::fs::read_link(&link).expect("readlink"), Path::new("real/runtime.env"));
    let text = std::fs::read_to_string(&real).expect("read");
    assert!(text.starts_with("# real file\nAPI_KEY="), "{text}");
    assert_eq!(mode(&real), 0o600);
}

#[test]
fn an_interrupted_write_leaves_the_old_file_intact() {
    let dir = TempDir::new("secrets-crash");
    let env = dir.join("runtime.env");
    ok(&secrets(&env, &[]));
    let before = std::fs::read(&env).expect("read");
    // A file size limit of 0 blocks: first the process is killed by SIGXFSZ mid-write (a crash),
    // then, with the signal ignored, the write fails with EFBIG (a full disk, as the program sees it).
    for (trap, expect_code) in [("", None), ("trap '' XFSZ; ", Some(1))] {
        let script =
            format!("{trap}ulimit -f 0; exec '{BIN}' runtime-secrets --env-file '{}' --rotate API_KEY", env.display());
        let out = Command::new("sh").arg("-c").arg(&script).output().expect("sh");
        assert!(!out.status.success(), "{script}");
        assert_eq!(out.status.code(), expect_code, "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(std::fs::read(&env).expect("read"), before, "old file intact after: {script}");
        if expect_code.is_some() {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("cannot write") && err.contains("runtime.env.tmp-"), "{err}");
            let leftovers: Vec<_> = std::fs::read_dir(dir.path())
                .expect("ls")
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
                .collect();
            // The crash above may leave its temp file; the clean failure removes its own.
            assert!(leftovers.len() <= 1, "{leftovers:?}");
        }
    }
    ok(&secrets(&env, &["--rotate", "API_KEY"]));
    assert_ne!(std::fs::read(&env).expect("read"), before, "a later run succeeds");
}

#[test]
fn print_exports_evaluates_to_the_same_values() {
    let dir = TempDir::new("secrets-exports");
    let env = dir.join("runtime.env");
    let out = secrets(&env, &["--print-exports"]);
    ok(&out);
    let exports = String::from_utf8(out.stdout).expect("utf8");
    assert_eq!(exports.lines().count(), 3, "{exports}");
    assert!(exports.lines().all(|l| l.starts_with("export ")));
    let script = format!(
        "eval \"$1\"; {}",
        SECRETS.iter().map(|k| format!("printf '%s\\n' \"${k}\"")).collect::<Vec<_>>().join("; ")
    );
    let out = Command::new("sh").args(["-c", &script, "sh", &exports]).output().expect("sh");
    let evaluated: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect();
    assert_eq!(evaluated, sourced(&env, &SECRETS));
}

fn endpoints(path: &Path, extra: &[&str], env: &[(&str, &str)]) -> Output {
    let p = path.to_str().expect("utf8");
    let mut args = vec!["prometheus-endpoints", "--env-file", p];
    args.extend_from_slice(extra);
    mt5bot(&args, env)
}

#[test]
fn endpoints_are_derived_with_flags_over_env_over_defaults() {
    let dir = TempDir::new("endpoints");
    let env = dir.join("runtime.env");
    ok(&secrets(&env, &[]));
    let secrets_before = sourced(&env, &SECRETS);
    let out = endpoints(
        &env,
        &["--push-host", "pushgw.internal", "--instance", "eu-1", "--print-exports"],
        &[
            ("PROM_ENDPOINTS_PUSH_HOST", "ignored.example"),
            ("PROM_ENDPOINTS_QUERY_PORT", "19090"),
            ("PROM_ENDPOINTS_JOB", "trading bot"),
        ],
    );
    ok(&out);
    assert_eq!(
        value(&env, "PROM_PUSH_URL").as_deref(),
        Some("http://pushgw.internal:9091/metrics/job@base64/dHJhZGluZyBib3Q=/instance/eu-1")
    );
    assert_eq!(value(&env, "PROM_QUERY_URL").as_deref(), Some("http://localhost:19090/api/v1/query"));
    assert_eq!(sourced(&env, &SECRETS), secrets_before, "the secrets beside them are untouched");
    assert_eq!(mode(&env), 0o600);
    let exports = String::from_utf8(out.stdout).expect("utf8");
    assert!(exports.contains("export PROM_QUERY_URL='http://localhost:19090/api/v1/query'"), "{exports}");

    // Existing values are kept unless --force.
    let before = std::fs::read(&env).expect("read");
    let stderr = ok(&endpoints(&env, &["--push-host", "other.host", "--instance", "eu-1"], &[]));
    assert!(stderr.contains("PROM_PUSH_URL kept; it differs from the derived http://other.host:9091/"), "{stderr}");
    assert_eq!(std::fs::read(&env).expect("read"), before);
    ok(&endpoints(&env, &["--push-host", "other.host", "--instance", "eu-1", "--force"], &[]));
    assert_eq!(
        value(&env, "PROM_PUSH_URL").as_deref(),
        Some("http://other.host:9091/metrics/job/mt5bot/instance/eu-1")
    );
}

#[test]
fn endpoint_values_are_validated() {
    let dir = TempDir::new("endpoints-bad");
    let env = dir.join("runtime.env");
    for (args, vars, want) in [
        (
            &["--push-port", "70000"][..],
            &[][..],
            "--push-port: \"70000\" is not accepted; accepted: a port from 1 to 65535",
        ),
        (&[], &[("PROM_ENDPOINTS_QUERY_HOST", "bad host")][..], "PROM_ENDPOINTS_QUERY_HOST: \"bad host\""),
        (&["--scheme", "gopher"], &[], "accepted: http or https"),
    ] {
        let out = endpoints(&env, args, vars);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains(want), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(!env.exists(), "nothing written on bad input");
    }
}
