//! The `/metrics` and control listener under hostile and careless clients: thousands of idle
//! connections, slow heads and bodies, clients that never read, an open-file limit below the
//! connection bound and a cap on threads. The daemon must keep answering a new scrape at once, keep
//! its threads and file descriptors bounded, keep trading, and count every client it cut off.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::*;

const KEY: &str = "listener-test-key-0123456789abcdef";

/// A sample that must be on `/metrics`.
fn metric(d: &Daemon, name: &str) -> f64 {
    let text = d.metrics();
    sample(&text, name).unwrap_or_else(|| panic!("{name} is not on /metrics:\n{text}"))
}

/// Raises this test process's own open-file limit, so it can hold thousands of client sockets.
fn allow_many_sockets() {
    let _ = std::process::Command::new("prlimit")
        .args(["--pid", &std::process::id().to_string(), "--nofile=16384:16384"])
        .status();
}

fn open_idle(addr: &str, n: usize) -> Vec<TcpStream> {
    let mut v = Vec::with_capacity(n);
    for i in 0..n {
        match TcpStream::connect(addr) {
            Ok(s) => v.push(s),
            Err(e) => panic!("idle connection {i} of {n} could not connect: {e}"),
        }
    }
    v
}

/// Clients that announce a body of 60,000 bytes to the control API and send two bytes of it.
fn open_slow_bodies(addr: &str, n: usize, key: Option<&str>) -> Vec<TcpStream> {
    (0..n)
        .map(|_| {
            let mut s = TcpStream::connect(addr).expect("connect");
            let auth = key.map(|k| format!("Authorization: Bearer {k}\r\n")).unwrap_or_default();
            let head = format!("POST /api/v1/pause HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Length: 60000\r\n\r\nab");
            s.write_all(head.as_bytes()).expect("send head");
            s
        })
        .collect()
}

/// Clients that send part of a request head and stall (slowloris).
fn open_slow_heads(addr: &str, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|_| {
            let mut s = TcpStream::connect(addr).expect("connect");
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ").expect("send part of a head");
            s
        })
        .collect()
}

/// Time for a brand-new client's whole scrape, and its answer.
fn timed_scrape(addr: &str) -> (Duration, HttpResponse) {
    let start = Instant::now();
    let r = get(addr, "/metrics").unwrap_or_else(|e| panic!("a new client's scrape failed under load: {e}"));
    (start.elapsed(), r)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// 2,000 idle connections, 50 slow bodies without a key, 50 slow heads: a new client's scrape still
/// answers at once, threads and descriptors stay bounded, and trading goes on.
fn hostile_load(d: &Daemon, max_connections: usize, label: &str) {
    allow_many_sockets();
    let addr = d.metrics_addr.clone();
    let ticks_before = metric(d, "ticks_total");
    let idle = open_idle(&addr, 2000);
    let mut slow_bodies = open_slow_bodies(&addr, 50, None);
    let slow_heads = open_slow_heads(&addr, 50);

    // The slow bodies carry no key: each is refused on its head, before its body is read.
    for (i, s) in slow_bodies.iter_mut().enumerate() {
        s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).unwrap_or_else(|e| panic!("{label}: slow body {i} got no answer: {e}"));
        let text = String::from_utf8_lossy(&buf[..n]);
        // Past ten failures from one address the refusals are 429s, and slowed.
        assert!(
            text.starts_with("HTTP/1.1 401") || text.starts_with("HTTP/1.1 429"),
            "{label}: slow body {i} answered {text:?}"
        );
    }

    let mut times = Vec::new();
    for _ in 0..10 {
        let (t, r) = timed_scrape(&addr);
        assert_eq!(r.status, 200, "{label}");
        assert!(r.body.contains("ticks_total"), "{label}");
        assert!(t < Duration::from_secs(1), "{label}: a new client's scrape took {t:?} under load");
        times.push(t);
    }
    let m = median(times);
    eprintln!(
        "{label}: under 2000 idle + 50 slow-body + 50 slow-head clients: new scrape median {m:?}, threads {}, fds {}",
        d.threads(),
        d.fds()
    );
    assert!(m < Duration::from_millis(100), "{label}: a new client's scrape took {m:?} (median of 10)");
    let threads = d.threads();
    assert!((1..=16).contains(&threads), "{label}: {threads} threads under load");
    let fds = d.fds();
    assert!(fds <= max_connections + 64, "{label}: {fds} fds open for metrics.max_connections {max_connections}");
    assert!(metric(d, "http_connections") <= max_connections as f64, "{label}");
    assert!(metric(d, "http_connections_closed_total{reason=\"evicted\"}") >= 1.0, "{label}");
    assert!(metric(d, "api_auth_failures_total") >= 50.0, "{label}");

    // /healthz and the control API with the key answer too, and the engine went on trading.
    assert_eq!(get(&addr, "/healthz").expect("healthz").status, 200, "{label}");
    let r =
        http_with("GET", &addr, "/api/v1/status", &[("Authorization", &format!("Bearer {KEY}"))], b"").expect("status");
    assert_eq!(r.status, 200, "{label}: {}", r.body);
    wait_for(&format!("{label}: ticks to keep flowing"), Duration::from_secs(5), || {
        (metric(d, "ticks_total") > ticks_before).then_some(())
    });
    drop((idle, slow_bodies, slow_heads));
}

/// A daemon whose `metrics:` section has these extra keys (`key: value` lines).
fn start(dir: &TempDir, metrics_keys: &str, wrapper: &[String]) -> Daemon {
    let addr = format!("127.0.0.1:{}", free_port());
    let keys: String = metrics_keys.lines().map(|l| format!("  {l}\n")).collect();
    let cfg = dir.write("config.yaml", &format!("metrics:\n  listen: {addr}\n{keys}logging:\n  stderr: true\n"));
    let mut d = Daemon::start_under(dir, &cfg, &addr, &[("API_KEY", KEY)], wrapper);
    d.wait_metrics(Duration::from_secs(10));
    d
}

#[test]
fn a_new_scrape_answers_at_once_while_thousands_of_idle_and_slow_clients_hold_connections() {
    let dir = TempDir::new("http-hostile");
    let d = start(&dir, "max_connections: 256\nheader_timeout: 30s", &[]);
    hostile_load(&d, 256, "default limits");
    assert!(
        d.log_file().lines().filter(|l| l.contains("cut off a connection")).count() <= 5,
        "cut-offs are rate-limited in the log"
    );
}

/// The same load under the usual soft limit of 1,024 open files with a connection bound above it
/// (so accept runs out of descriptors) and under a cap of 16 tasks: nothing ends the listener.
#[test]
fn the_listener_survives_running_out_of_file_descriptors_and_a_thread_cap() {
    let dir = TempDir::new("http-limits");
    let cgroup = std::path::Path::new("/sys/fs/cgroup/pids");
    let group = cgroup.join(format!("mt5bot-test-{}", std::process::id()));
    let capped = cgroup.is_dir()
        && std::fs::create_dir_all(&group).is_ok()
        && std::fs::write(group.join("pids.max"), "16").is_ok();
    let procs = group.join("cgroup.procs");
    let script = if capped {
        format!("echo $$ > {} && exec prlimit --nofile=1024:1024 -- \"$0\" \"$@\"", procs.display())
    } else {
        eprintln!(
            "SKIPPED PART: no writable pids cgroup at {} (needs root and the cgroup v1 pids controller); \
             testing the open-file limit alone",
            cgroup.display()
        );
        "exec prlimit --nofile=1024:1024 -- \"$0\" \"$@\"".to_owned()
    };
    let wrapper = vec!["sh".to_owned(), "-c".to_owned(), script];
    let d = start(&dir, "max_connections: 4000\nheader_timeout: 30s", &wrapper);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", d.child.id())).unwrap_or_default();
    assert!(limits.lines().any(|l| l.starts_with("Max open files") && l.contains("1024")), "{limits}");
    hostile_load(&d, 1024, "nofile 1024 with max_connections 4000");
    assert!(metric(&d, "http_accept_errors_total") >= 1.0, "accept ran out of descriptors and was retried");
    if capped {
        let pids = std::fs::read_to_string(group.join("pids.current")).unwrap_or_default();
        eprintln!("tasks in the capped cgroup under load: {}", pids.trim());
        assert!(pids.trim().parse::<u32>().is_ok_and(|n| n <= 16), "tasks {pids}");
    }
    assert!(d.child.id() > 0);
    drop(d);
    if capped {
        let _ = std::fs::remove_dir(&group);
    }
}

/// Slow heads and authenticated slow bodies are cut off by their deadlines and counted; a client
/// that never reads its answers is cut off by the write deadline; a body never read does not
/// destroy its answer.
#[test]
fn deadlines_cut_off_slow_and_non_reading_clients_and_count_them() {
    let dir = TempDir::new("http-deadlines");
    let d = start(&dir, "header_timeout: 500ms\nbody_timeout: 500ms\nwrite_timeout: 500ms\nidle_timeout: 500ms", &[]);
    let addr = d.metrics_addr.clone();
    let heads = open_slow_heads(&addr, 5);
    let bodies = open_slow_bodies(&addr, 5, Some(KEY));
    // A client that pipelines scrapes and never reads, with a tiny receive window.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let sockaddr: std::net::SocketAddr = addr.parse().expect("addr");
    socket.connect(&sockaddr.into()).expect("connect");
    let mut hog: TcpStream = socket.into();
    hog.set_write_timeout(Some(Duration::from_secs(2))).expect("timeout");
    // 2,000 answers of ~11 KB each: far more than the socket buffers hold.
    let pipelined = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n".repeat(2000);
    let _ = hog.write_all(&pipelined);
    // Meanwhile others are served.
    assert_eq!(get(&addr, "/healthz").expect("healthz").status, 200);
    let mut last = String::new();
    let cut = (0..200).any(|_| {
        let text = d.metrics();
        let n = |r: &str| sample(&text, &format!("http_connections_closed_total{{reason=\"{r}\"}}")).unwrap_or(0.0);
        let done = n("header_timeout") >= 5.0 && n("body_timeout") >= 5.0 && n("write_timeout") >= 1.0;
        last = text.lines().filter(|l| l.starts_with("http_connections")).collect::<Vec<_>>().join("\n");
        std::thread::sleep(Duration::from_millis(50));
        done
    });
    assert!(cut, "the slow heads, bodies and the non-reader were not all cut off in 10 s:\n{last}");
    // A cut-off connection is closed: reading it ends.
    for mut s in heads.into_iter().chain(bodies) {
        s.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
    }

    // A huge body with the key is refused 413 without being read, and the answer arrives whole.
    let big = vec![b'x'; 300 * 1024];
    let r = http_with("POST", &addr, "/api/v1/pause", &[("Authorization", &format!("Bearer {KEY}"))], &big)
        .expect("the 413 answer arrives before the connection closes");
    assert_eq!(r.status, 413);
    // Garbage is dropped and counted; the listener goes on.
    let mut g = TcpStream::connect(&addr).expect("connect");
    g.write_all(b"\x16\x03\x01\x02\x00garbage that is not HTTP\r\n\r\n").expect("send");
    g.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
    let mut buf = Vec::new();
    let _ = g.read_to_end(&mut buf);
    assert!(metric(&d, "http_connections_closed_total{reason=\"bad_request\"}") >= 1.0);
    assert_eq!(get(&addr, "/metrics").expect("metrics").status, 200);
}

/// Kept-alive connections serve many requests each, with pipelining, and a request split into
/// single bytes is still understood.
#[test]
fn keep_alive_pipelining_and_byte_by_byte_requests_are_served() {
    let dir = TempDir::new("http-keepalive");
    let d = start(&dir, "", &[]);
    let mut s = TcpStream::connect(&d.metrics_addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /readyz HTTP/1.1\r\nHost: x\r\n\r\n").expect("send");
    for b in b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" {
        s.write_all(&[*b]).expect("send a byte");
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut all = Vec::new();
    s.read_to_end(&mut all).expect("answers until close");
    let text = String::from_utf8_lossy(&all);
    assert_eq!(text.matches("HTTP/1.1 200 OK").count() + text.matches("HTTP/1.1 503").count(), 3, "{text}");
    assert!(text.ends_with("ok\n"), "{text}");
}
