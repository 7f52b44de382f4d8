//! Checkpoints through the real binary with the paper venue: restart after SIGTERM and SIGKILL,
//! tampering refused with `--discard-checkpoint` as the way out, key rotation, and `inspect`.

mod support;

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};
use std::time::Duration;

use support::*;

fn key(b: u8) -> String {
    mt5bot::deployment::base64(&[b; 32])
}

fn inspect(dir: &TempDir, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(["checkpoint", "inspect"])
        .arg(dir.join("state/checkpoint.bin"))
        .env_remove("CHECKPOINT_AES_KEY")
        .env_remove("CHECKPOINT_AES_KEY_PREVIOUS");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("inspect")
}

/// Positions from `inspect` output.
fn inspected_positions(out: &Output) -> HashMap<String, f64> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let sym = w.next()?;
            (w.next()? == "qty").then_some(())?;
            Some((sym.to_owned(), w.next()?.parse().ok()?))
        })
        .collect()
}

fn metric_positions(metrics: &str) -> HashMap<String, f64> {
    metrics
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("position{symbol=\"")?;
            let (sym, v) = rest.split_once("\"} ")?;
            Some((sym.to_owned(), v.trim().parse().ok()?))
        })
        .collect()
}

fn config(dir: &TempDir) -> (std::path::PathBuf, String) {
    config_with(dir, "checkpoint:\n  interval: 300ms\n")
}

#[test]
fn sigterm_then_restart_restores_positions_and_sigkill_restores_the_last_checkpoint() {
    let dir = TempDir::new("ckpt-restart");
    let (cfg, addr) = config(&dir);
    let k = key(7);
    let env = [("CHECKPOINT_AES_KEY", k.as_str())];
    let mut first = Daemon::start(&dir, &cfg, &addr, &env);
    first.wait_metrics(Duration::from_secs(5));
    wait_for("a position", Duration::from_secs(20), || {
        metric_positions(&first.metrics()).values().any(|q| *q != 0.0).then_some(())
    });
    first.signal("TERM");
    assert_eq!(first.wait_exit(Duration::from_secs(15)).code(), Some(0));
    let path = dir.join("state/checkpoint.bin");
    assert_eq!(std::fs::metadata(&path).expect("checkpoint").permissions().mode() & 0o777, 0o600);
    let at_stop = inspected_positions(&inspect(&dir, &env));
    assert!(at_stop.values().any(|q| *q != 0.0), "{at_stop:?}");
    let bytes = std::fs::read(&path).expect("read");
    assert!(!bytes.windows(6).any(|w| w == b"EURUSD"), "encrypted at rest");

    let mut second = Daemon::start(&dir, &cfg, &addr, &env);
    let m = second.wait_metrics(Duration::from_secs(5));
    let log = second.log_file();
    assert!(log.contains("restored checkpoint"), "{log}");
    // Right after start the gauges hold the restored positions (before trading moves them, the log
    // line states them exactly).
    let line = log.lines().rev().find(|l| l.contains("restored checkpoint")).expect("line");
    for (sym, q) in &at_stop {
        if *q != 0.0 {
            assert!(line.contains(&format!("{sym}={q}")), "{sym}={q} in {line}");
        }
    }
    let _ = m;

    // SIGKILL: the state comes back as of the last checkpoint on disk.
    wait_for("a checkpoint after the restart", Duration::from_secs(10), || {
        sample(&second.metrics(), "checkpoint_last_success_timestamp_seconds").filter(|t| *t > 0.0)
    });
    second.signal("KILL");
    second.wait_exit(Duration::from_secs(10));
    let last = inspected_positions(&inspect(&dir, &env));
    let mut third = Daemon::start(&dir, &cfg, &addr, &env);
    third.wait_metrics(Duration::from_secs(5));
    let line =
        third.log_file().lines().rev().find(|l| l.contains("restored checkpoint")).expect("restored line").to_owned();
    for (sym, q) in &last {
        if *q != 0.0 {
            assert!(line.contains(&format!("{sym}={q}")), "{sym}={q} in {line}");
        }
    }
    third.signal("TERM");
    third.wait_exit(Duration::from_secs(15));
}

#[test]
fn a_damaged_checkpoint_stops_the_start_and_discard_moves_it_aside() {
    let dir = TempDir::new("ckpt-tamper");
    let (cfg, addr) = config(&dir);
    let k = key(9);
    let env = [("CHECKPOINT_AES_KEY", k.as_str())];
    let mut d = Daemon::start(&dir, &cfg, &addr, &env);
    d.wait_metrics(Duration::from_secs(5));
    d.signal("TERM");
    d.wait_exit(Duration::from_secs(15));
    let path = dir.join("state/checkpoint.bin");
    let good = std::fs::read(&path).expect("read");

    let cases: [(&str, Vec<u8>); 3] = [
        ("failed authentication", {
            let mut b = good.clone();
            let last = b.len() - 1;
            b[last] ^= 0x01;
            b
        }),
        ("truncated", good[..20].to_vec()),
        ("not an mt5bot checkpoint", b"hello, this is not a checkpoint file at all".to_vec()),
    ];
    for (want, bytes) in cases {
        std::fs::write(&path, &bytes).expect("write");
        let mut bad = Daemon::start(&dir, &cfg, &addr, &env);
        assert_eq!(bad.wait_exit(Duration::from_secs(10)).code(), Some(2), "{want}");
        let err = bad.stderr();
        assert!(err.contains(want) && err.contains("--discard-checkpoint"), "{want}: {err}");
        assert_eq!(std::fs::read(&path).expect("kept"), bytes, "the file is kept as it was");
    }
    let other = key(1);
    std::fs::write(&path, &good).expect("write");
    let mut wrong = Daemon::start(&dir, &cfg, &addr, &[("CHECKPOINT_AES_KEY", other.as_str())]);
    assert_eq!(wrong.wait_exit(Duration::from_secs(10)).code(), Some(2));
    assert!(
        wrong.stderr().contains("neither CHECKPOINT_AES_KEY nor CHECKPOINT_AES_KEY_PREVIOUS"),
        "{}",
        wrong.stderr()
    );
    let mut nokey = Daemon::start(&dir, &cfg, &addr, &[]);
    assert_eq!(
        nokey.wait_exit(Duration::from_secs(10)).code(),
        Some(2),
        "a checkpoint nobody can read is never ignored"
    );

    // The way out: move it aside, start clean.
    let mut cmd = Command::new(BIN);
    cmd.args(["run", "--discard-checkpoint", "--config"])
        .arg(&cfg)
        .current_dir(dir.path())
        .env("CHECKPOINT_AES_KEY", other.as_str());
    let mut child = cmd.stderr(std::process::Stdio::null()).spawn().expect("start");
    wait_for("the clean start", Duration::from_secs(10), || get(&addr, "/metrics").ok().filter(|r| r.status == 200));
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let _ = child.wait();
    let aside: Vec<_> = std::fs::read_dir(dir.join("state"))
        .expect("ls")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".bad-"))
        .collect();
    assert_eq!(aside.len(), 1, "moved aside, not deleted");
    assert_eq!(std::fs::read(aside[0].path()).expect("read"), good);
}

#[test]
fn after_rotating_the_key_the_old_checkpoint_opens_and_the_next_uses_the_new_key() {
    let dir = TempDir::new("ckpt-rotate");
    let (cfg, addr) = config(&dir);
    let env_file = dir.join("runtime.env");
    let run = |args: &[&str]| {
        Command::new(BIN)
            .arg("runtime-secrets")
            .arg("--env-file")
            .arg(&env_file)
            .args(args)
            .output()
            .expect("runtime-secrets")
    };
    assert!(run(&[]).status.success());
    let read = |k: &str| -> String {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!(". '{}'; printf '%s' \"${k}\"", env_file.display()))
            .output()
            .expect("sh");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let k1 = read("CHECKPOINT_AES_KEY");
    let mut d = Daemon::start(&dir, &cfg, &addr, &[("CHECKPOINT_AES_KEY", k1.as_str())]);
    d.wait_metrics(Duration::from_secs(5));
    d.signal("TERM");
    d.wait_exit(Duration::from_secs(15));

    assert!(run(&["--rotate", "CHECKPOINT_AES_KEY"]).status.success());
    let (k2, prev) = (read("CHECKPOINT_AES_KEY"), read("CHECKPOINT_AES_KEY_PREVIOUS"));
    assert_eq!(prev, k1);
    let env = [("CHECKPOINT_AES_KEY", k2.as_str()), ("CHECKPOINT_AES_KEY_PREVIOUS", prev.as_str())];
    let before = String::from_utf8_lossy(&inspect(&dir, &env).stdout).into_owned();
    assert!(before.contains("(CHECKPOINT_AES_KEY_PREVIOUS)"), "{before}");
    let mut d = Daemon::start(&dir, &cfg, &addr, &env);
    d.wait_metrics(Duration::from_secs(5));
    assert!(d.log_file().contains("opened with CHECKPOINT_AES_KEY_PREVIOUS"));
    d.signal("TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(15)).code(), Some(0));
    let after = String::from_utf8_lossy(&inspect(&dir, &env).stdout).into_owned();
    assert!(after.contains("(CHECKPOINT_AES_KEY)"), "the next checkpoint uses the new key: {after}");
    for secret in [&k1, &k2] {
        assert!(!before.contains(secret.as_str()) && !after.contains(secret.as_str()), "inspect never prints a key");
    }
    assert!(
        after.contains("written at: ")
            && after.contains("key id: ")
            && after.contains("positions:")
            && after.contains("open orders: ")
    );
}
