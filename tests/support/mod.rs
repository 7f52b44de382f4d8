//! Shared helpers for the integration tests: a unique temp dir per test, free loopback ports, the
//! real `mt5bot` binary started in that dir, a minimal HTTP client, and real peers (Prometheus).
//!
//! Every server binds 127.0.0.1; every wait is bounded and fails with what it was waiting for.
#![allow(dead_code)]

pub mod client;
pub mod influx_v2;
pub mod openapi;
pub mod replay;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_mt5bot");

/// A temp folder removed when dropped (kept when the test panicked, for a look at its logs).
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "mt5bot-test-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).expect("write file");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        } else {
            eprintln!("test files kept in {}", self.0.display());
        }
    }
}

/// A loopback port nobody in this test process was given before and that was free just now.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let set = given.get_or_insert_with(HashSet::new);
    for _ in 0..100 {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = l.local_addr().expect("addr").port();
        if set.insert(port) {
            return port;
        }
    }
    panic!("no free loopback port found");
}

/// Polls `f` every 50 ms until it returns `Some`, or panics after `timeout` saying what it awaited.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An HTTP answer.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// A one-shot HTTP/1.1 request (`Connection: close`) with a 5 s timeout.
pub fn http(method: &str, addr: &str, path: &str, body: &[u8]) -> std::io::Result<HttpResponse> {
    http_with(method, addr, path, &[], body)
}

/// [`http`] with extra request headers.
pub fn http_with(
    method: &str,
    addr: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<HttpResponse> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    let extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{extra}Content-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line in {head:?}")))?;
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().into(), v.trim().into())).collect();
    let chunked = headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("Transfer-Encoding") && v.contains("chunked"));
    let body = if chunked { dechunk(body) } else { body.to_owned() };
    Ok(HttpResponse { status, headers, body })
}

/// Decodes a chunked transfer-encoded body.
fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.split(';').next().unwrap_or("0").trim(), 16).unwrap_or(0);
        if n == 0 || tail.len() < n {
            break;
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].strip_prefix("\r\n").unwrap_or(&tail[n..]);
    }
    out
}

pub fn get(addr: &str, path: &str) -> std::io::Result<HttpResponse> {
    http("GET", addr, path, b"")
}

/// The value of an unlabelled sample in Prometheus text output.
pub fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        let (n, v) = l.split_once(' ')?;
        (n == name).then(|| v.trim().parse().ok())?
    })
}

/// A config with the metrics endpoint on a free port; `extra` is appended (YAML).
pub fn config_with(dir: &TempDir, extra: &str) -> (PathBuf, String) {
    let addr = format!("127.0.0.1:{}", free_port());
    let text = format!("metrics:\n  listen: {addr}\nlogging:\n  stderr: true\n{extra}");
    (dir.write("config.yaml", &text), addr)
}

/// A running `mt5bot run`, killed if still running when dropped.
pub struct Daemon {
    pub child: Child,
    pub metrics_addr: String,
    pub dir: PathBuf,
}

impl Daemon {
    /// Starts `mt5bot run --config CONFIG` in `dir`, with extra environment variables.
    pub fn start(dir: &TempDir, config: &Path, metrics_addr: &str, env: &[(&str, &str)]) -> Daemon {
        Daemon::start_under(dir, config, metrics_addr, env, &[])
    }

    /// [`Daemon::start`] through a wrapper that ends by exec'ing its arguments (`prlimit ... --`,
    /// a shell that joins a cgroup first); `wrapper` empty starts the binary itself.
    pub fn start_under(
        dir: &TempDir,
        config: &Path,
        metrics_addr: &str,
        env: &[(&str, &str)],
        wrapper: &[String],
    ) -> Daemon {
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(BIN);
                c
            }
            None => Command::new(BIN),
        };
        cmd.arg("run")
            .arg("--config")
            .arg(config)
            .current_dir(dir.path())
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("PROM_PUSH_URL")
            .env_remove("CREDENTIALS_DIRECTORY")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join("stdout.txt")).expect("stdout file"))
            .stderr(std::fs::File::create(dir.join("stderr.txt")).expect("stderr file"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start mt5bot");
        Daemon { child, metrics_addr: metrics_addr.to_owned(), dir: dir.path().to_path_buf() }
    }

    /// Waits until `/metrics` answers 200 and returns its body.
    pub fn wait_metrics(&mut self, timeout: Duration) -> String {
        let addr = self.metrics_addr.clone();
        let pid = self.child.id();
        let child = &mut self.child;
        wait_for(&format!("mt5bot (pid {pid}) to serve http://{addr}/metrics"), timeout, || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("mt5bot exited early with {status}");
            }
            get(&addr, "/metrics").ok().filter(|r| r.status == 200).map(|r| r.body)
        })
    }

    pub fn metrics(&self) -> String {
        let r = get(&self.metrics_addr, "/metrics").expect("GET /metrics");
        assert_eq!(r.status, 200);
        r.body
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill").arg(format!("-{sig}")).arg(self.child.id().to_string()).status().expect("kill");
        assert!(ok.success(), "kill -{sig} failed");
    }

    /// Waits (bounded) for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let child = &mut self.child;
        wait_for("mt5bot to exit", timeout, || child.try_wait().ok().flatten())
    }

    /// Threads of the running process (`/proc/PID/task`).
    pub fn threads(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/task", self.child.id())).map(|d| d.count()).unwrap_or(0)
    }

    /// Open file descriptors of the running process (`/proc/PID/fd`).
    pub fn fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id())).map(|d| d.count()).unwrap_or(0)
    }

    /// SIGKILLs the process and starts a new one on the same config, state and environment,
    /// waiting until it serves `/metrics`.
    pub fn kill_and_restart(&mut self, dir: &TempDir, config: &Path, env: &[(&str, &str)]) {
        self.signal("KILL");
        self.wait_exit(Duration::from_secs(10));
        let addr = self.metrics_addr.clone();
        *self = Daemon::start(dir, config, &addr, env);
        self.wait_metrics(Duration::from_secs(10));
    }

    /// Waits (bounded) until nothing waits in the queue and no order is in flight; the last
    /// values are returned, for the caller to assert on.
    pub fn settle(&self, timeout: Duration) -> (f64, f64) {
        let start = std::time::Instant::now();
        loop {
            let m = self.metrics();
            let (q, o) = (sample(&m, "queue_depth").unwrap_or(-1.0), sample(&m, "open_orders").unwrap_or(-1.0));
            if (q == 0.0 && o == 0.0) || start.elapsed() >= timeout {
                return (q, o);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_file(&self) -> String {
        std::fs::read_to_string(self.dir.join("logs/mt5bot.log")).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr.txt")).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A tmpfs of `size` (e.g. "256k") mounted on an existing folder, unmounted when dropped; `None`
/// (after printing why the test skips) where mounting needs a root this process is not.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    pub fn mount(at: &Path, size: &str, what_is_skipped: &str) -> Option<Tmpfs> {
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!(
                "SKIPPED: cannot mount a tmpfs at {} (needs root); {what_is_skipped} is not tested",
                at.display()
            );
            return None;
        }
        Some(Tmpfs(at.to_path_buf()))
    }

    /// Remounts it `ro` or `rw`.
    pub fn remount(&self, mode: &str) {
        let ok = Command::new("mount").args(["-o", &format!("remount,{mode}")]).arg(&self.0).status().expect("mount");
        assert!(ok.success(), "remount {mode} of {}", self.0.display());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Finds a program of the test dependencies, or fails saying how to install it.
pub fn require(program: &str) -> PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':').chain(["/usr/bin", "/usr/sbin"]) {
        let p = Path::new(dir).join(program);
        if p.is_file() {
            return p;
        }
    }
    panic!("{program} is not installed: run `make test` (or scripts/install-test-deps.sh) first");
}

/// A real Prometheus server on a free loopback port, with its data in `dir`.
pub struct Prometheus {
    child: Child,
    pub addr: String,
}

impl Prometheus {
    /// Starts Prometheus with `config` (YAML text) and waits until it is ready.
    pub fn start(dir: &TempDir, config: &str) -> Prometheus {
        let bin = require("prometheus");
        let addr = format!("127.0.0.1:{}", free_port());
        let cfg = dir.write("prometheus.yml", config);
        let log = std::fs::File::create(dir.join("prometheus.log")).expect("log file");
        let child = Command::new(bin)
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("prom-data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        let mut p = Prometheus { child, addr };
        let addr = p.addr.clone();
        let child = &mut p.child;
        wait_for("prometheus to be ready", Duration::from_secs(30), || {
            if let Ok(Some(s)) = child.try_wait() {
                panic!("prometheus exited with {s}; see its log in the test dir");
            }
            get(&addr, "/-/ready").ok().filter(|r| r.status == 200)
        });
        p
    }

    /// Runs an instant query; returns the `data.result` array.
    pub fn query(&self, promql: &str) -> Vec<serde_json::Value> {
        let path = format!("/api/v1/query?query={}", urlencode(promql));
        let r = get(&self.addr, &path).expect("query prometheus");
        assert_eq!(r.status, 200, "query {promql}: {}", r.body);
        let v: serde_json::Value = serde_json::from_str(&r.body).expect("query JSON");
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percent-encodes a query string value.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Compares two texts line by line and panics with a readable diff when they differ.
pub fn assert_lines_eq(expected: &str, actual: &str) {
    if expected == actual {
        return;
    }
    let mut diff = String::new();
    let (e, a): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    for i in 0..e.len().max(a.len()) {
        match (e.get(i), a.get(i)) {
            (Some(x), Some(y)) if x == y => diff.push_str(&format!("  {x}\n")),
            (x, y) => {
                if let Some(x) = x {
                    diff.push_str(&format!("- {x}\n"));
                }
                if let Some(y) = y {
                    diff.push_str(&format!("+ {y}\n"));
                }
            }
        }
    }
    panic!("texts differ (- expected, + actual):\n{diff}");
}

/// A real InfluxDB 1.x (`influxd` from Debian) on loopback with its data under `dir`, and
/// `database` created in it.
pub fn influxdb_1x(dir: &TempDir, database: &str) -> Peer {
    let listen = format!("127.0.0.1:{}", free_port());
    let conf = format!(
        "reporting-disabled = true\nbind-address = \"127.0.0.1:{}\"\n[meta]\n  dir = \"{d}/meta\"\n[data]\n  dir = \"{d}/data\"\n  wal-dir = \"{d}/wal\"\n[http]\n  bind-address = \"{listen}\"\n  log-enabled = false\n[retention]\n  enabled = false\n[monitor]\n  store-enabled = false\n",
        free_port(),
        d = dir.join("influx").display()
    );
    let conf_path = dir.write("influxdb.conf", &conf);
    let influx = Peer::start_at(dir, "influxd", &["-config".into(), conf_path.display().to_string()], "/ping", &listen);
    let created =
        http("POST", &influx.addr, &format!("/query?q={}", urlencode(&format!("CREATE DATABASE {database}"))), b"")
            .expect("CREATE DATABASE");
    assert_eq!(created.status, 200, "CREATE DATABASE {database}: {}", created.body);
    influx
}

/// A program from the test dependencies started on a free loopback port, stopped when dropped.
pub struct Peer {
    child: Child,
    pub addr: String,
    pub name: String,
}

impl Peer {
    /// Starts `program` with `args` (where `{addr}` is replaced by the chosen address) and waits
    /// until `GET ready_path` answers 200.
    pub fn start(dir: &TempDir, program: &str, args: &[String], ready_path: &str) -> Peer {
        Peer::start_at(dir, program, args, ready_path, &format!("127.0.0.1:{}", free_port()))
    }

    /// Like [`Peer::start`], on a given address (to restart a peer where it was).
    pub fn start_at(dir: &TempDir, program: &str, args: &[String], ready_path: &str, addr: &str) -> Peer {
        let bin = require(program);
        let addr = addr.to_owned();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(&format!("{program}.log")))
            .expect("log file");
        let child = Command::new(bin)
            .args(args.iter().map(|a| a.replace("{addr}", &addr)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {program}: {e}"));
        let mut p = Peer { child, addr, name: program.to_owned() };
        let (addr, name) = (p.addr.clone(), p.name.clone());
        let child = &mut p.child;
        wait_for(&format!("{name} to be ready"), Duration::from_secs(30), || {
            if let Ok(Some(s)) = child.try_wait() {
                panic!("{name} exited with {s}; see {name}.log in the test dir");
            }
            get(&addr, ready_path).ok().filter(|r| (200..300).contains(&r.status))
        });
        p
    }

    /// SIGKILLs the peer: it dies as a crashed host would, telling no one.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the peer as an operator would (SIGTERM, so it flushes what it accepted), killing it
    /// only if it has not exited within 10 s.
    pub fn stop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while std::time::Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An HTTP receiver that records every request body (a webhook, a log intake).
pub struct Receiver {
    pub addr: String,
    pub bodies: std::sync::Arc<Mutex<Vec<(String, String)>>>,
    /// Each request's headers and raw body bytes, in order.
    pub raw: std::sync::Arc<Mutex<Vec<RawRequest>>>,
    server: std::sync::Arc<tiny_http::Server>,
    handle: Option<std::thread::JoinHandle<()>>,
}

/// A request as received: headers and body bytes.
pub type RawRequest = (Vec<(String, String)>, Vec<u8>);

/// How a [`Receiver`] answers: status, headers, body.
pub type Responder = Box<dyn Fn(&str, &str) -> (u16, Vec<(String, String)>, String) + Send>;

impl Receiver {
    /// Answers every request 200.
    pub fn start() -> Receiver {
        Receiver::start_with(Box::new(|_, _| (200, vec![], String::new())))
    }

    /// Answers with `respond(url, body)`.
    pub fn start_with(respond: Responder) -> Receiver {
        let server = std::sync::Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind receiver"));
        let addr = server.server_addr().to_ip().expect("ip").to_string();
        let bodies = std::sync::Arc::new(Mutex::new(Vec::new()));
        let raw = std::sync::Arc::new(Mutex::new(Vec::new()));
        let (srv, store, raw_store) =
            (std::sync::Arc::clone(&server), std::sync::Arc::clone(&bodies), std::sync::Arc::clone(&raw));
        let handle = std::thread::spawn(move || {
            for mut req in srv.incoming_requests() {
                let mut bytes = Vec::new();
                let _ = req.as_reader().read_to_end(&mut bytes);
                let body = String::from_utf8_lossy(&bytes).into_owned();
                let headers: Vec<(String, String)> =
                    req.headers().iter().map(|h| (h.field.as_str().to_string(), h.value.as_str().to_owned())).collect();
                raw_store.lock().unwrap_or_else(|e| e.into_inner()).push((headers, bytes));
                let (status, headers, answer) = respond(req.url(), &body);
                store.lock().unwrap_or_else(|e| e.into_inner()).push((req.url().to_owned(), body));
                let mut resp = tiny_http::Response::from_string(answer).with_status_code(status);
                for (k, v) in headers {
                    if let Ok(h) = tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()) {
                        resp.add_header(h);
                    }
                }
                let _ = req.respond(resp);
            }
        });
        Receiver { addr, bodies, raw, server, handle: Some(handle) }
    }

    pub fn received(&self) -> Vec<(String, String)> {
        self.bodies.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// A throw-away CA and a server certificate it signed for 127.0.0.1, made with the openssl CLI;
/// keys are 0600.
pub struct Certs {
    pub ca: PathBuf,
    pub ca_key: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Certs {
    pub fn make(dir: &TempDir) -> Certs {
        Certs::make_named(dir, "")
    }

    /// As [`Certs::make`], the files' names starting with `prefix` (for a second, unrelated CA).
    pub fn make_named(dir: &TempDir, prefix: &str) -> Certs {
        let ca = format!("{prefix}ca.pem");
        let ca_key = format!("{prefix}ca.key");
        openssl(
            dir,
            &[
                &["req", "-x509"][..],
                &EC_KEY[..],
                &["-keyout", &ca_key, "-out", &ca, "-days", "2", "-subj", "/CN=mt5bot test CA"][..],
            ]
            .concat(),
        );
        let certs = Certs { ca: dir.join(&ca), ca_key: dir.join(&ca_key), cert: PathBuf::new(), key: PathBuf::new() };
        let (cert, key) = certs.sign(dir, &format!("{prefix}server"), "127.0.0.1", "serverAuth");
        Certs { cert, key, ..certs }
    }

    /// A certificate this CA signs for `cn` with one extended key usage (`serverAuth`,
    /// `clientAuth`); returns (certificate, key) as `NAME.pem`, `NAME.key`.
    pub fn sign(&self, dir: &TempDir, name: &str, cn: &str, usage: &str) -> (PathBuf, PathBuf) {
        let (key, csr, pem, ext) =
            (format!("{name}.key"), format!("{name}.csr"), format!("{name}.pem"), format!("{name}.ext"));
        openssl(
            dir,
            &[&["req"][..], &EC_KEY[..], &["-keyout", &key, "-out", &csr, "-subj", &format!("/CN={cn}")][..]].concat(),
        );
        let san = if cn.parse::<std::net::IpAddr>().is_ok() { format!("IP:{cn}") } else { format!("DNS:{cn}") };
        dir.write(
            &ext,
            &format!(
                "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage={usage}\nsubjectAltName={san}\n"
            ),
        );
        let (ca, ca_key) = (self.ca.display().to_string(), self.ca_key.display().to_string());
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &ca,
                "-CAkey",
                &ca_key,
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "2",
                "-extfile",
                &ext,
            ],
        );
        for k in [&key, &ca_key] {
            let p = dir.join(k);
            if p.exists() {
                std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o600)).expect("chmod key");
            }
        }
        (dir.join(&pem), dir.join(&key))
    }
}

const EC_KEY: [&str; 5] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

fn openssl(dir: &TempDir, args: &[&str]) {
    let out = Command::new(require("openssl")).args(args).current_dir(dir.path()).output().expect("run openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}
