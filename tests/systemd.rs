//! The service as shipped, under a real systemd: the host's own `/lib/systemd/systemd` booted as
//! PID 1 in fresh namespaces over a throw-away overlay of `/` (`tests/systemd/boot.sh`), mt5bot
//! installed into it by `scripts/install_service.sh` as an operator would, then driven with
//! `systemctl` through `nsenter`. Each case checks systemd's own view
//! (`systemctl show -p ActiveState,SubState,NRestarts,Result,...`) and the daemon's files.
//!
//! The only change to the shipped units is a drop-in shortening `WatchdogSec` and `RestartSec`,
//! so the watchdog case takes seconds rather than a minute. Where the kernel cannot do it (not
//! root, no overlayfs or cgroup2, no user namespaces) the test says so and skips; it never passes
//! silently.

mod support;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::*;

/// A systemd booted for one test, powered off when dropped.
struct Systemd {
    unshare: Child,
    /// systemd's pid as the host sees it (for nsenter).
    pid: u32,
    work: TempDir,
}

impl Systemd {
    /// Boots it, or says why it cannot here and returns `None`.
    fn boot(name: &str) -> Option<Systemd> {
        let why = if effective_uid() != 0 {
            Some("not root")
        } else if !Path::new("/lib/systemd/systemd").exists() {
            Some("no /lib/systemd/systemd")
        } else if !std::fs::read_to_string("/proc/filesystems")
            .is_ok_and(|f| f.contains("overlay") && f.contains("cgroup2"))
        {
            Some("no overlayfs or cgroup2 in this kernel")
        } else {
            None
        };
        if let Some(why) = why {
            eprintln!("SKIPPED: cannot boot systemd in namespaces here ({why}); the service is not tested");
            return None;
        }
        let work = TempDir::new(name);
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/systemd/boot.sh");
        let log = std::fs::File::create(work.join("boot.log")).expect("boot log");
        let unshare = Command::new("unshare")
            .args(["--fork", "--pid", "--mount", "--uts", "--ipc", "--net", "--cgroup", "--propagation", "private"])
            .arg(&script)
            .arg(work.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("unshare");
        let mut sd = Systemd { unshare, pid: 0, work };
        let deadline = Instant::now() + Duration::from_secs(20);
        while sd.pid == 0 {
            if let Ok(Some(status)) = sd.unshare.try_wait() {
                panic!("the namespace did not boot ({status}):\n{}", sd.boot_log());
            }
            assert!(Instant::now() < deadline, "systemd did not start:\n{}", sd.boot_log());
            // systemd is the child of unshare (PID 1 inside).
            sd.pid = std::fs::read_to_string(format!("/proc/{}/task/{}/children", sd.unshare.id(), sd.unshare.id()))
                .ok()
                .and_then(|c| c.split_whitespace().next()?.parse().ok())
                .filter(|p| std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "systemd"))
                .unwrap_or(0);
            std::thread::sleep(Duration::from_millis(20));
        }
        let state = wait_for("systemd to finish booting", Duration::from_secs(30), || {
            let out = sd.run(&["systemctl", "is-system-running"]);
            let s = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            matches!(s.as_str(), "running" | "degraded").then_some(s)
        });
        if state == "degraded" {
            let failed = sd.run(&["systemctl", "--failed", "--no-pager"]);
            eprintln!("systemd booted degraded:\n{}", String::from_utf8_lossy(&failed.stdout));
        }
        Some(sd)
    }

    fn boot_log(&self) -> String {
        std::fs::read_to_string(self.work.join("boot.log")).unwrap_or_default()
    }

    /// Runs a command inside every namespace of the booted system.
    fn run(&self, args: &[&str]) -> Output {
        Command::new("nsenter")
            .args(["-t", &self.pid.to_string(), "-a", "--"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("nsenter")
    }

    /// Runs a command inside and fails the test if it fails; returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `systemctl show` properties of a unit.
    fn show(&self, unit: &str) -> HashMap<String, String> {
        let props = "ActiveState,SubState,NRestarts,Result,MainPID,ExecMainStatus,StatusText";
        self.ok(&["systemctl", "show", "-p", props, unit])
            .lines()
            .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
            .collect()
    }

    fn wait_state(
        &self,
        unit: &str,
        what: &str,
        timeout: Duration,
        ok: impl Fn(&HashMap<String, String>) -> bool,
    ) -> HashMap<String, String> {
        let start = Instant::now();
        loop {
            let s = self.show(unit);
            if ok(&s) {
                return s;
            }
            assert!(start.elapsed() < timeout, "{unit} never got {what}: {s:?}\n{}", self.journal(unit));
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn journal(&self, unit: &str) -> String {
        String::from_utf8_lossy(&self.run(&["journalctl", "-u", unit, "--no-pager", "-o", "cat"]).stdout).into_owned()
    }

    /// Installs mt5bot with the project's own script, inside, as an operator would.
    fn install(&self) -> String {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/install_service.sh");
        let out = self.run(&[
            "env",
            &format!("MT5BOT_BINARY={BIN}"),
            "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            script.to_str().expect("utf8"),
        ]);
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "install_service.sh failed:\n{text}");
        text
    }

    /// A drop-in beside the shipped unit (the unit itself stays as installed).
    fn drop_in(&self, unit: &str, text: &str) {
        self.ok(&["mkdir", "-p", &format!("/etc/systemd/system/{unit}.d")]);
        self.write(&format!("/etc/systemd/system/{unit}.d/test.conf"), text);
        self.ok(&["systemctl", "daemon-reload"]);
    }

    fn write(&self, path: &str, text: &str) {
        let mut child = Command::new("nsenter")
            .args(["-t", &self.pid.to_string(), "-a", "--", "sh", "-c", "cat > \"$0\"", path])
            .stdin(Stdio::piped())
            .spawn()
            .expect("nsenter");
        std::io::Write::write_all(child.stdin.as_mut().expect("stdin"), text.as_bytes()).expect("write");
        drop(child.stdin.take());
        assert!(child.wait().expect("wait").success(), "cannot write {path}");
    }
}

impl Drop for Systemd {
    fn drop(&mut self) {
        let _ = self.run(&["systemctl", "poweroff"]);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.unshare.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("kill").arg("-KILL").arg(self.pid.to_string()).status();
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
    }
}

fn effective_uid() -> u32 {
    // The effective uid from /proc, so the test needs no libc binding.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).and_then(|l| l.split_whitespace().nth(2)?.parse().ok()))
        .unwrap_or(u32::MAX)
}

fn active(s: &HashMap<String, String>) -> bool {
    s["ActiveState"] == "active" && s["SubState"] == "running"
}

const STATE: &str = "/var/lib/mt5bot/state/checkpoint.bin";

#[test]
fn the_shipped_unit_starts_stops_restarts_on_a_hung_loop_and_refuses_to_loop() {
    let Some(sd) = Systemd::boot("systemd-service") else { return };
    let installed = sd.install();
    assert!(installed.contains("enabled mt5bot.service"), "{installed}");
    // Seconds instead of a minute; everything else is the unit as shipped.
    sd.drop_in("mt5bot.service", "[Service]\nWatchdogSec=3s\nRestartSec=1s\n");

    // Start: active (running) once READY=1 came, with the STATUS= line.
    sd.ok(&["systemctl", "start", "mt5bot"]);
    let s = sd.show("mt5bot");
    assert!(active(&s), "{s:?}\n{}", sd.journal("mt5bot"));
    assert_eq!(s["StatusText"], "trading: venue paper up");
    let first_pid = s["MainPID"].clone();
    let journal = sd.journal("mt5bot");
    assert!(journal.contains("secrets: API_KEY (environment)"), "the secrets' source is named:\n{journal}");

    // The hardening leaves the state and log folders writable and the rest read-only.
    sd.wait_state("mt5bot", "a first checkpoint", Duration::from_secs(20), |_| {
        sd.run(&["test", "-s", STATE]).status.success()
    });
    let mounts = sd.ok(&["sh", "-c", &format!("cat /proc/{first_pid}/mountinfo")]);
    let mode_of = |path: &str| {
        mounts.lines().rfind(|l| l.split_whitespace().nth(4) == Some(path)).map(|l| {
            if l.split_whitespace().nth(5).is_some_and(|o| o.starts_with("ro")) {
                "ro"
            } else {
                "rw"
            }
        })
    };
    assert_eq!(mode_of("/"), Some("ro"), "ProtectSystem=strict makes / read-only:\n{mounts}");
    assert_eq!(mode_of("/var/lib/mt5bot"), Some("rw"), "StateDirectory stays writable:\n{mounts}");
    assert_eq!(mode_of("/var/log/mt5bot"), Some("rw"), "LogsDirectory stays writable:\n{mounts}");

    // A hung engine loop (SIGSTOP): the watchdog kills it, systemd restarts it, and the new
    // process restores the checkpoint.
    sd.ok(&["systemctl", "kill", "--kill-who=main", "--signal=SIGSTOP", "mt5bot"]);
    let s = sd.wait_state("mt5bot", "a restart after the watchdog", Duration::from_secs(30), |s| {
        s["NRestarts"] == "1" && active(s) && s["MainPID"] != first_pid
    });
    let journal = sd.journal("mt5bot");
    assert!(journal.contains("Watchdog timeout"), "systemd says why:\n{journal}");
    assert!(journal.contains("restored checkpoint"), "the new process restores the checkpoint:\n{journal}");
    let second_pid = s["MainPID"].clone();

    // A rerun of the installer changes nothing and leaves the service running.
    let again = sd.install();
    assert!(!again.contains("installed /etc/systemd/system/mt5bot.service"), "the unit was rewritten:\n{again}");
    let s = sd.show("mt5bot");
    assert!(active(&s) && s["MainPID"] == second_pid && s["NRestarts"] == "1", "{s:?}");

    // A graceful stop: the final checkpoint and the final-state line, well inside TimeoutStopSec.
    let started = Instant::now();
    sd.ok(&["systemctl", "stop", "mt5bot"]);
    let took = started.elapsed();
    let s = sd.show("mt5bot");
    assert_eq!((s["ActiveState"].as_str(), s["Result"].as_str()), ("inactive", "success"), "{s:?}");
    let journal = sd.journal("mt5bot");
    assert!(journal.contains("received SIGTERM: stopping"), "{journal}");
    assert!(journal.contains("stopped (SIGTERM); final state:"), "{journal}");
    assert!(!journal.contains("State 'stop-sigterm' timed out"), "{journal}");
    eprintln!("systemctl stop took {took:?} (TimeoutStopSec=30s)");

    // A damaged checkpoint: exit 2, no restart loop, and the reason in `systemctl status`.
    sd.ok(&["sh", "-c", &format!("printf 'not a checkpoint at all, overwritten by mistake' > {STATE}")]);
    let _ = sd.run(&["systemctl", "start", "mt5bot"]);
    let s = sd.wait_state("mt5bot", "a failed start", Duration::from_secs(20), |s| s["ActiveState"] == "failed");
    assert_eq!((s["Result"].as_str(), s["ExecMainStatus"].as_str()), ("exit-code", "2"), "{s:?}");
    std::thread::sleep(Duration::from_secs(3));
    let s = sd.show("mt5bot");
    assert_eq!(
        (s["ActiveState"].as_str(), s["NRestarts"].as_str()),
        ("failed", "0"),
        "RestartPreventExitStatus=2: {s:?}"
    );
    let status = String::from_utf8_lossy(&sd.run(&["systemctl", "status", "mt5bot", "--no-pager", "-n", "20"]).stdout)
        .into_owned();
    assert!(status.contains("not an mt5bot checkpoint") && status.contains("--discard-checkpoint"), "{status}");
    sd.ok(&["sh", "-c", &format!("mv {STATE} {STATE}.damaged")]);
    sd.ok(&["systemctl", "reset-failed", "mt5bot"]);

    // A bad config: ExecStartPre's `config check` stops it before the daemon starts, naming the
    // file and line.
    let starts = sd.journal("mt5bot").matches("starting: config").count();
    sd.ok(&["cp", "/etc/mt5bot/config.yaml", "/etc/mt5bot/config.yaml.good"]);
    sd.write("/etc/mt5bot/config.yaml", "risk:\n  max_position: lots\n");
    let _ = sd.run(&["systemctl", "start", "mt5bot"]);
    let s = sd.wait_state("mt5bot", "a refused start", Duration::from_secs(20), |s| s["ActiveState"] == "failed");
    assert_eq!(s["Result"], "exit-code", "{s:?}");
    let journal = sd.journal("mt5bot");
    assert!(journal.contains("/etc/mt5bot/config.yaml:2") && journal.contains("max_position"), "{journal}");
    assert_eq!(journal.matches("starting: config").count(), starts, "the daemon never started:\n{journal}");
}

#[test]
fn credentials_reach_the_daemon_and_the_timer_runs_the_diagnostics() {
    let Some(sd) = Systemd::boot("systemd-credentials") else { return };
    sd.install();
    // The shipped unit's LoadCredential= lines, switched on, with the runtime.env values moved
    // into root-only credential files.
    sd.ok(&[
        "sh",
        "-c",
        "set -e; umask 077; mkdir -p /etc/mt5bot/credentials; . /etc/mt5bot/secrets/runtime.env; \
         for n in API_KEY CONTROLLER_SHARED_SECRET CHECKPOINT_AES_KEY; do eval \"printf %s \\\"\\$$n\\\"\" > /etc/mt5bot/credentials/$n; done",
    ]);
    let unit = sd.ok(&["cat", "/etc/systemd/system/mt5bot.service"]);
    let credentials: Vec<&str> =
        unit.lines().filter_map(|l| l.strip_prefix('#').filter(|l| l.starts_with("LoadCredential="))).collect();
    assert_eq!(credentials.len(), 3, "the unit ships three LoadCredential= lines:\n{unit}");
    sd.drop_in("mt5bot.service", &format!("[Service]\n{}\n", credentials.join("\n")));
    sd.ok(&["systemctl", "start", "mt5bot"]);
    let s = sd.show("mt5bot");
    assert!(active(&s), "{s:?}\n{}", sd.journal("mt5bot"));
    let journal = sd.journal("mt5bot");
    assert!(
        journal.contains(
            "secrets: API_KEY (credential), CONTROLLER_SHARED_SECRET (credential), CHECKPOINT_AES_KEY (credential)"
        ),
        "credentials are read before the environment, and named:\n{journal}"
    );
    for line in ["/etc/mt5bot/credentials/API_KEY", "/etc/mt5bot/credentials/CHECKPOINT_AES_KEY"] {
        let secret = sd.ok(&["cat", line]);
        assert!(!journal.contains(secret.trim()), "a secret value reached the journal");
    }

    // The timer fires the diagnostics service, which writes its report and pushes its result to
    // the Pushgateway at PROM_PUSH_URL (a real one, run inside by systemd-run). A drop-in makes the
    // timer fire now instead of at midnight.
    sd.ok(&[
        "systemd-run",
        "--unit=pushgateway",
        "/usr/bin/prometheus-pushgateway",
        "--web.listen-address=127.0.0.1:9091",
        "--persistence.file=",
    ]);
    wait_for("the Pushgateway inside", Duration::from_secs(20), || {
        sd.run(&["curl", "-fsS", "http://127.0.0.1:9091/-/ready"]).status.success().then_some(())
    });
    sd.drop_in("mt5bot-diagnostics.timer", "[Timer]\nOnCalendar=\nRandomizedDelaySec=0\nOnActiveSec=1s\n");
    sd.ok(&["systemctl", "restart", "mt5bot-diagnostics.timer"]);
    let s = sd.wait_state("mt5bot-diagnostics.service", "a run", Duration::from_secs(60), |s| {
        matches!(s["ActiveState"].as_str(), "inactive" | "failed")
            && !s["ExecMainStatus"].is_empty()
            && s["ExecMainStatus"] != "0"
            || (s["ActiveState"] == "inactive"
                && sd.run(&["sh", "-c", "ls /var/log/mt5bot/diagnostics/*.json"]).status.success())
    });
    assert_eq!(s["Result"], "success", "{s:?}\n{}", sd.journal("mt5bot-diagnostics.service"));
    let report = sd.ok(&["sh", "-c", "cat /var/log/mt5bot/diagnostics/*.json"]);
    let _: serde_json::Value = serde_json::from_str(&report).expect("the report is JSON");
    let pushed = sd.ok(&["curl", "-fsS", "http://127.0.0.1:9091/metrics"]);
    assert!(pushed.contains("diagnostics_last_success_timestamp_seconds"), "{pushed}");
    eprintln!("diagnostics service ended {s:?}");

    // Readiness with a venue that waits for its counterparty: the daemon is ready (it serves and
    // its engine runs) and says what it waits for; /readyz agrees that the venue is down.
    sd.ok(&["systemctl", "stop", "mt5bot"]);
    sd.write("/etc/mt5bot/config.yaml", "venue:\n  kind: mt5\nfeed:\n  kind: venue\n");
    sd.ok(&["systemctl", "start", "mt5bot"]);
    let s = sd.show("mt5bot");
    assert!(active(&s), "{s:?}\n{}", sd.journal("mt5bot"));
    assert_eq!(s["StatusText"], "venue mt5 not up: waiting for the Expert Advisor to connect to 127.0.0.1:7788");
    let readyz = sd.run(&["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:9898/readyz"]);
    assert_eq!(String::from_utf8_lossy(&readyz.stdout), "503");
    sd.ok(&["systemctl", "stop", "mt5bot"]);
}
