//! Checkpoints through the real binary with the paper venue: restart after SIGTERM and SIGKILL,
//! tampering refused with `--discard-checkpoint` as the way out, key rotation, and `inspect`.

mod support;

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};
use std::time::Duration;

use support::*;

fn key(b: u8) -> String {
    mt5bot::support::encoding::base64(&[b; 32])
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
        .filter(|e| e.file_name().to_string_lossy().starts_with("checkpoint.bin.bad-"))
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

/// An older valid checkpoint put in place of the newest is refused with exit 2 naming both
/// generations; `--accept-rollback` starts from it anyway; a deleted checkpoint is refused too.
#[test]
fn an_older_checkpoint_is_refused_unless_the_rollback_is_asked_for() {
    let dir = TempDir::new("ckpt-rollback");
    let (cfg, addr) = config(&dir);
    let k = key(9);
    let env = [("CHECKPOINT_AES_KEY", k.as_str())];
    let path = dir.join("state/checkpoint.bin");
    let mut first = Daemon::start(&dir, &cfg, &addr, &env);
    first.wait_metrics(Duration::from_secs(5));
    wait_for("a first checkpoint", Duration::from_secs(10), || path.exists().then_some(()));
    std::thread::sleep(Duration::from_millis(100));
    let old = std::fs::read(&path).expect("old checkpoint");
    let old_gen = generation(&dir, &env);
    wait_for("later checkpoints", Duration::from_secs(10), || (generation(&dir, &env) >= old_gen + 3).then_some(()));
    first.signal("TERM");
    assert_eq!(first.wait_exit(Duration::from_secs(15)).code(), Some(0));
    let last_gen = generation(&dir, &env);
    assert!(last_gen > old_gen, "{last_gen} > {old_gen}");

    std::fs::write(&path, &old).expect("put the older copy back");
    let mut second = Daemon::start(&dir, &cfg, &addr, &env);
    let status = second.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(2));
    let err = second.stderr();
    assert!(err.contains(&format!("generation {old_gen}, but generation {last_gen} was written after it")), "{err}");
    assert!(err.contains("--accept-rollback"), "{err}");

    let mut cmd = Command::new(BIN);
    let out = cmd
        .args(["run", "--accept-rollback", "--config"])
        .arg(&cfg)
        .current_dir(dir.path())
        .env("CHECKPOINT_AES_KEY", k.as_str())
        .env_remove("NOTIFY_SOCKET")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start with --accept-rollback");
    let mut third = Daemon { child: out, metrics_addr: addr.clone(), dir: dir.path().to_path_buf() };
    third.wait_metrics(Duration::from_secs(5));
    assert!(third.log_file().contains("restored as asked (--accept-rollback)"));
    third.signal("TERM");
    assert_eq!(third.wait_exit(Duration::from_secs(15)).code(), Some(0));
    assert!(generation(&dir, &env) > last_gen, "numbering goes on above the last generation written");

    std::fs::remove_file(&path).expect("delete the checkpoint");
    let mut fourth = Daemon::start(&dir, &cfg, &addr, &env);
    assert_eq!(fourth.wait_exit(Duration::from_secs(10)).code(), Some(2));
    assert!(fourth.stderr().contains("the checkpoint is missing, but generation"), "{}", fourth.stderr());
}

/// The generation `inspect` reports for the checkpoint in `dir`.
fn generation(dir: &TempDir, env: &[(&str, &str)]) -> u64 {
    let out = inspect(dir, env);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("generation: ")?.trim().parse().ok())
        .unwrap_or(0)
}

/// A symbolic link at `checkpoint.path`, dangling or not, stops the start and is named.
#[test]
fn a_symlink_at_the_checkpoint_path_is_refused() {
    let dir = TempDir::new("ckpt-link");
    let (cfg, addr) = config(&dir);
    let k = key(3);
    std::fs::create_dir_all(dir.join("state")).expect("mkdir");
    std::os::unix::fs::symlink(dir.join("elsewhere/checkpoint.bin"), dir.join("state/checkpoint.bin")).expect("link");
    let mut d = Daemon::start(&dir, &cfg, &addr, &[("CHECKPOINT_AES_KEY", k.as_str())]);
    assert_eq!(d.wait_exit(Duration::from_secs(10)).code(), Some(2));
    let err = d.stderr();
    assert!(err.contains("state/checkpoint.bin is a symbolic link"), "{err}");
    assert!(err.contains("which does not exist"), "{err}");
    assert!(!dir.join("elsewhere").exists(), "nothing was written through the link");
}

/// A state folder that cannot be written stops the start (exit 2), and a final checkpoint that
/// fails makes the stop exit non-zero. Uses a tmpfs made read-only (root needed).
#[test]
fn an_unwritable_state_folder_stops_the_start_and_a_failed_final_checkpoint_fails_the_exit() {
    let dir = TempDir::new("ckpt-ro");
    let state = dir.join("state");
    std::fs::create_dir_all(&state).expect("mkdir");
    let Some(tmpfs) = Tmpfs::mount(&state, "1m", "an unwritable state folder") else { return };
    let remount = |mode: &str| tmpfs.remount(mode);
    let (cfg, addr) = config_with(&dir, "checkpoint:\n  interval: 1h\n");
    let k = key(4);
    let env = [("CHECKPOINT_AES_KEY", k.as_str())];

    remount("ro");
    let mut d = Daemon::start(&dir, &cfg, &addr, &env);
    assert_eq!(d.wait_exit(Duration::from_secs(10)).code(), Some(2));
    assert!(d.stderr().contains("is not writable"), "{}", d.stderr());

    remount("rw");
    let mut d = Daemon::start(&dir, &cfg, &addr, &env);
    d.wait_metrics(Duration::from_secs(5));
    // The disk fills up (a read-only remount is refused while the journal is open for writing).
    let mut filler = std::fs::File::create(state.join("filler")).expect("filler");
    let block = vec![0u8; 64 * 1024];
    while std::io::Write::write_all(&mut filler, &block).is_ok() {}
    drop(filler);
    d.signal("TERM");
    let status = d.wait_exit(Duration::from_secs(15));
    assert_eq!(status.code(), Some(1), "a failed final checkpoint is a failed stop: {}", d.stderr());
    assert!(
        d.stderr().contains("final checkpoint") || d.stderr().contains("cannot write the checkpoint"),
        "{}",
        d.stderr()
    );
}

#[test]
fn a_queued_answer_waits_for_the_journal_on_disk_and_a_full_disk_holds_it_back() {
    use std::io::{BufRead, BufReader, Write};
    let dir = TempDir::new("ckpt-journal-full");
    let state = dir.join("state");
    std::fs::create_dir_all(&state).expect("mkdir");
    let Some(_tmpfs) = Tmpfs::mount(&state, "2m", "a journal on a full disk") else { return };
    let ingress = format!("127.0.0.1:{}", free_port());
    let (cfg, addr) =
        config_with(&dir, &format!("checkpoint:\n  interval: 1h\ningress:\n  enabled: true\n  listen: {ingress}\n"));
    let k = key(5);
    let mut d = Daemon::start(&dir, &cfg, &addr, &[("CHECKPOINT_AES_KEY", k.as_str())]);
    d.wait_metrics(Duration::from_secs(10));
    let s = std::net::TcpStream::connect(&ingress).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(1500))).expect("timeout");
    let mut w = s.try_clone().expect("clone");
    let mut r = BufReader::new(s);
    let line = |id: &str| {
        format!("{{\"id\":\"{id}\",\"symbol\":\"EURUSD\",\"side\":\"buy\",\"qty\":0.01,\"type\":\"market\"}}\n")
    };
    w.write_all(line("j-1").as_bytes()).expect("send");
    let mut answer = String::new();
    r.read_line(&mut answer).expect("an answer while the disk has room");
    assert!(answer.contains("\"queued\""), "{answer}");

    // The disk fills up: the next signal is taken, but its `queued` answer waits for the journal.
    let mut filler = std::fs::File::create(state.join("filler")).expect("filler");
    let block = vec![0u8; 16 * 1024];
    while filler.write_all(&block).is_ok() {}
    drop(filler);
    // The segment's last page may still have room: signals are answered until it is used up.
    let mut held = None;
    for n in 2..400 {
        let id = format!("j-{n}");
        w.write_all(line(&id).as_bytes()).expect("send");
        let mut answer = String::new();
        if r.read_line(&mut answer).is_err() {
            held = Some(id);
            break;
        }
        assert!(answer.contains("\"queued\""), "{answer}");
    }
    let held = held.expect("a full disk held a `queued` answer back");
    // A client that resets its connection while its answer is held: the daemon drops the answer
    // and keeps running.
    // (A bad line first, so the held answer does not start its buffer.)
    for pause in [0, 200] {
        let rude = std::net::TcpStream::connect(&ingress).expect("connect");
        (&rude).write_all(format!("not json\n{}", line(&format!("j-reset-{pause}"))).as_bytes()).expect("send");
        std::thread::sleep(Duration::from_millis(pause));
        socket2::SockRef::from(&rude).set_linger(Some(Duration::ZERO)).expect("linger");
        drop(rude);
    }
    std::thread::sleep(Duration::from_millis(300));
    d.wait_metrics(Duration::from_secs(5));
    let m = d.metrics();
    assert!(sample(&m, "journal_write_failures_total").unwrap_or(0.0) >= 1.0, "{m}");
    assert!(d.log_file().contains("cannot write the order journal"), "{}", d.log_file());

    // Room again: the write is retried and the answer follows.
    std::fs::remove_file(state.join("filler")).expect("rm");
    s_read_answer(&mut r, &held);
    d.signal("TERM");
    assert!(d.wait_exit(Duration::from_secs(15)).success(), "{}", d.stderr());
}

fn s_read_answer(r: &mut impl std::io::BufRead, id: &str) {
    let mut answer = String::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while answer.is_empty() && std::time::Instant::now() < deadline {
        let _ = r.read_line(&mut answer);
    }
    assert!(answer.contains(id) && answer.contains("\"queued\""), "{answer}");
}
