//! FIX 4.4 benchmarks: the codec, and NewOrderSingle -> ExecutionReport against the QuickFIX
//! executor over loopback, beside the bare TCP round trip of the same run.
//!
//! `cargo bench --bench fix` runs the criterion groups (encode a NewOrderSingle with its header and
//! timestamps; frame, parse and read an ExecutionReport; the same through the session layer),
//! then the round trip: the Debian QuickFIX executor example is started on a free port, the FIX
//! venue logs on and sends limit orders one at a time, waiting for each fill. Per order it records
//! the round trip (submit -> fill event) and mt5bot's own share: the time inside `submit` (encode,
//! sequence-number write, socket write) plus the time inside the `poll` that turned the bytes
//! into the fill (socket read, parse, book). Beside it, a TCP echo of a message of the same size
//! on a fresh loopback connection gives the floor. Five runs; medians with min and max.
//! The comparison runs twice, pinned with `taskset`: all on one CPU, then with the executor (and
//! the echo) on the other CPU. Unpinned, the scheduler moves the processes within a run and the
//! figures mix the two (see `Placement`). `-- --quick` shortens everything (CI).

use std::hint::black_box;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use mt5bot::config::Config;
use mt5bot::domain::types::{OrderKey, OrderRequest, Side, SignalId, VenueEvent};
use mt5bot::domain::types::{OrderKind, TimeInForce};
use mt5bot::telemetry::metrics::Metrics;
use mt5bot::venue::fix44::codec::{frame, tag, Fields, Frame};
use mt5bot::venue::fix44::{new_order_single, FixVenue};

#[path = "common/fix.rs"]
mod fix_common;
#[path = "common/round_trip.rs"]
mod round_trip;
use fix_common::{active_session, peer_message, Quiet};
use mt5bot::domain::venue::Venue;
use round_trip::{median_min_max, pct, pin_current_thread, Driver};

const EXECUTOR_GZ: &str = "/usr/share/doc/libquickfix-doc/examples/executor/C++/.libs/executor.gz";

fn order(n: u64) -> OrderRequest {
    let prefix = SignalId::parse("B-").expect("id");
    OrderRequest {
        key: OrderKey::new(n, 0),
        client_id: SignalId::with_counter(&prefix, n),
        symbol: 0,
        side: if n % 2 == 0 { Side::Buy } else { Side::Sell },
        qty: 1.0,
        kind: OrderKind::Limit,
        price: 1.08512,
        sl: 0.0,
        tp: 0.0,
        immediate: false,
        until_cancelled: false,
    }
}

fn execution_report(seq: u64) -> Vec<u8> {
    peer_message(
        b"8",
        seq,
        &[
            (tag::ORDER_ID, b"1234"),
            (tag::EXEC_ID, b"5678"),
            (tag::EXEC_TYPE, b"F"),
            (tag::ORD_STATUS, b"2"),
            (tag::CL_ORD_ID, b"B-123456"),
            (tag::SYMBOL, b"EURUSD"),
            (tag::SIDE, b"1"),
            (tag::ORDER_QTY, b"1"),
            (tag::LAST_QTY, b"1"),
            (tag::LAST_PX, b"1.08512"),
            (tag::LEAVES_QTY, b"0"),
            (tag::CUM_QTY, b"1"),
            (tag::AVG_PX, b"1.08512"),
        ],
    )
}

fn bench_codec(c: &mut Criterion) {
    let mut g = c.benchmark_group("fix");
    g.throughput(Throughput::Elements(1));
    let mut s = active_session();
    let mut out = Vec::with_capacity(1 << 20);
    let mut n = 0u64;
    g.bench_function("encode_new_order_single", |b| {
        b.iter(|| {
            n += 1;
            if out.len() > (1 << 20) - 512 {
                out.clear();
            }
            black_box(new_order_single(&mut s, &mut out, &order(n), "EURUSD", TimeInForce::Day, b"", n))
        })
    });
    let er = execution_report(3);
    let mut fields = Fields::new();
    g.bench_function("decode_execution_report", |b| {
        b.iter(|| {
            let Frame::Message(len) = frame(black_box(&er)) else { panic!("not a message") };
            let m = fields.parse(&er[..len]).expect("parses");
            black_box((m.get(tag::CL_ORD_ID).map(<[u8]>::len), m.get_f64(tag::CUM_QTY), m.get_f64(tag::LAST_PX)));
            black_box(m.get_char(tag::EXEC_TYPE))
        })
    });
    // Through the session: sequence check, dispatch, application; a fresh report each time
    // (built outside the timed part).
    let mut s = active_session();
    let mut seq = 3u64;
    let mut out = Vec::with_capacity(4096);
    g.bench_function("session_execution_report", |b| {
        b.iter_batched(
            || {
                seq += 1;
                execution_report(seq - 1)
            },
            |mut input| {
                s.on_bytes(&mut input, 0, &mut out, &mut Quiet).expect("in sequence");
                out.clear();
            },
            criterion::BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// The QuickFIX executor on a free port, its logs off (they would dominate the round trip).
struct Executor {
    child: Child,
    port: u16,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// `exe` as a command on `cpu` (through `taskset -c`), or as it is.
fn on_cpu(exe: &std::path::Path, cpu: Option<usize>) -> Command {
    match cpu {
        Some(cpu) => {
            let mut c = Command::new("taskset");
            c.args(["-c", &cpu.to_string()]).arg(exe);
            c
        }
        None => Command::new(exe),
    }
}

impl Executor {
    /// The executor, on `cpu` when given.
    fn start(cpu: Option<usize>) -> Executor {
        let gz = std::fs::read(EXECUTOR_GZ)
            .unwrap_or_else(|e| panic!("{EXECUTOR_GZ}: {e}; run scripts/install-test-deps.sh (libquickfix-doc)"));
        let mut bin = Vec::new();
        flate2::read::GzDecoder::new(&gz[..]).read_to_end(&mut bin).expect("unpack");
        let dir = std::env::temp_dir().join(format!("mt5bot-bench-fix-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let exe = dir.join("executor");
        std::fs::write(&exe, bin).expect("write");
        std::fs::set_permissions(&exe, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
        let port = free_port();
        let dictionary = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/contracts/fix44/FIX44.xml");
        std::fs::write(
            dir.join("executor.cfg"),
            format!(
                "[DEFAULT]\nConnectionType=acceptor\nSocketAcceptPort={port}\nSocketReuseAddress=Y\nSocketNodelay=Y\n\
                 StartTime=00:00:00\nEndTime=00:00:00\nFileStorePath={}\nUseDataDictionary=Y\nDataDictionary={}\n\
                 ValidateFieldsOutOfOrder=Y\nValidateUserDefinedFields=Y\nScreenLogShowIncoming=N\n\
                 ScreenLogShowOutgoing=N\nScreenLogShowEvents=N\n\n[SESSION]\nBeginString=FIX.4.4\n\
                 SenderCompID=EXECUTOR\nTargetCompID=MT5BOT\nHeartBtInt=30\n",
                dir.join("store").display(),
                dictionary.display()
            ),
        )
        .expect("cfg");
        let child = on_cpu(&exe, cpu)
            .arg(dir.join("executor.cfg"))
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the executor");
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(start.elapsed() < Duration::from_secs(10), "the executor did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Executor { child, port, _dir: TempDir(dir) }
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct RoundTrip {
    total: Vec<u64>,
    own: Vec<u64>,
    submit: Vec<u64>,
    process: Vec<u64>,
    /// `own` less the time inside socket reads and writes: encode, sequence-number write, parse,
    /// book.
    user: Vec<u64>,
    /// Write syscalls made by all the submits: the socket's and the sequence-number file's.
    writes: u64,
}

/// Sends `orders` limit orders one at a time through the FIX venue and times each.
fn fix_round_trips(port: u16, orders: u64, run: usize) -> RoundTrip {
    let mut cfg = Config::embedded().venue.fix44;
    cfg.sender_comp_id = "MT5BOT".into();
    cfg.target_comp_id = "EXECUTOR".into();
    cfg.reset_on_logon = true;
    cfg.state_dir = std::env::temp_dir().join(format!("mt5bot-bench-fix-state-{}-{run}", std::process::id()));
    let metrics = Metrics::new();
    let symbols = vec!["EURUSD".to_owned()];
    let addr = format!("127.0.0.1:{port}").parse().expect("addr");
    let mut venue = FixVenue::new(&cfg, vec![addr], &symbols, 64, Duration::from_secs(5), (None, None), metrics.fix())
        .expect("venue");
    let mut driver = Driver::attach(&mut venue, 1);
    let mut out = Vec::with_capacity(64);
    let start = Instant::now();
    while !venue.ready_for_orders() {
        assert!(start.elapsed() < Duration::from_secs(10), "no logon to the executor");
        driver.turn(&mut venue, &mut out);
    }
    let prefix = SignalId::parse(&format!("R{run}-")).expect("id");
    let n = orders as usize;
    let mut rt = RoundTrip {
        total: Vec::with_capacity(n),
        own: Vec::with_capacity(n),
        submit: Vec::with_capacity(n),
        process: Vec::with_capacity(n),
        user: Vec::with_capacity(n),
        writes: 0,
    };
    venue.measure_io(true);
    for n in 1..=orders {
        let mut req = order(n);
        req.client_id = SignalId::with_counter(&prefix, n);
        let io_before = venue.io_stats();
        let t0 = Instant::now();
        venue.submit(&req, driver.now()).expect("submit");
        let submit_ns = t0.elapsed().as_nanos() as u64;
        let io_submit = venue.io_stats();
        rt.writes += (io_submit.writes - io_before.writes) + (io_submit.file_writes - io_before.file_writes);
        let mut processing = 0;
        let mut processing_io = 0;
        loop {
            out.clear();
            let io = venue.io_stats();
            let spent = driver.turn(&mut venue, &mut out);
            if !out.is_empty() {
                processing = spent;
                processing_io = venue.io_stats().nanos - io.nanos;
            }
            if out.iter().any(|e| matches!(e, VenueEvent::Fill { .. })) {
                break;
            }
            assert!(t0.elapsed() < Duration::from_secs(5), "order {n} not filled");
        }
        rt.total.push(t0.elapsed().as_nanos() as u64);
        rt.own.push(submit_ns + processing);
        rt.submit.push(submit_ns);
        rt.process.push(processing);
        let io_ns = (io_submit.nanos - io_before.nanos) + processing_io;
        rt.user.push((submit_ns + processing).saturating_sub(io_ns));
    }
    let _ = std::fs::remove_dir_all(&cfg.state_dir);
    rt
}

/// Round trips of `size`-byte messages over one loopback connection to an echo thread (on `cpu`
/// when given, as the executor is).
fn tcp_round_trips(count: u64, size: usize, cpu: Option<usize>) -> Vec<u64> {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let echo = std::thread::spawn(move || {
        if let Some(cpu) = cpu {
            pin_current_thread(cpu);
        }
        let (mut s, _) = listener.accept().expect("accept");
        s.set_nodelay(true).expect("nodelay");
        let mut buf = vec![0u8; size];
        while s.read_exact(&mut buf).is_ok() {
            if s.write_all(&buf).is_err() {
                break;
            }
        }
    });
    let mut c = TcpStream::connect(addr).expect("connect");
    c.set_nodelay(true).expect("nodelay");
    let msg = vec![b'x'; size];
    let mut back = vec![0u8; size];
    let mut samples = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let t = Instant::now();
        c.write_all(&msg).expect("write");
        c.read_exact(&mut back).expect("read");
        samples.push(t.elapsed().as_nanos() as u64);
    }
    drop(c);
    let _ = echo.join();
    samples
}

/// Where the processes run: the bench's thread (mt5bot's FIX venue) and QuickFIX's initiator
/// always on CPU 0, the executor on CPU 0 too ("one core") or on CPU 1 ("cross-core"). Pinned, a
/// run measures one placement; unpinned, the scheduler moves the processes between the two within
/// a run (on this 2-vCPU VM the first thousand orders or so on one core, the rest across), and
/// the figures mix both.
struct Placement {
    /// Prefix of the report's labels ("" for the first placement, which `run.py` reads as the
    /// headline).
    label: &'static str,
    what: &'static str,
    executor_cpu: Option<usize>,
}

fn placements() -> Vec<Placement> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    // The bench's main thread drives the FIX venue.
    if !pin_current_thread(0) {
        println!("\n(taskset is missing or refused: the processes are not pinned, the figures mix placements)");
        return vec![Placement { label: "", what: "unpinned", executor_cpu: None }];
    }
    let mut all = vec![Placement {
        label: "",
        what: "one core: mt5bot or QuickFIX's initiator and the executor, all on CPU 0",
        executor_cpu: Some(0),
    }];
    if cpus >= 2 {
        all.push(Placement {
            label: "cross-core ",
            what: "cross-core: the initiator on CPU 0, the executor on CPU 1",
            executor_cpu: Some(1),
        });
    }
    all
}

fn round_trip_report(quick: bool) {
    let (runs, orders) = if quick { (5, 2_000) } else { (5, 10_000) };
    for place in placements() {
        round_trips_placed(&place, runs, orders);
    }
    machine_stalls();
}

/// What the machine takes from a thread that never sleeps: a loop reading the clock on the
/// bench's CPU for a second, counting the gaps over 20 us (interrupts, the timer tick, the
/// hypervisor). Every round trip above pays these at the rate its length gives, so they set the
/// floor of the p99s, whatever the initiator.
fn machine_stalls() {
    let start = Instant::now();
    let (mut prev, mut gaps, mut stalled, mut longest) = (start, 0u32, Duration::ZERO, Duration::ZERO);
    while prev.duration_since(start) < Duration::from_secs(1) {
        let t = Instant::now();
        let gap = t.duration_since(prev);
        if gap > Duration::from_micros(20) {
            gaps += 1;
            stalled += gap;
            longest = longest.max(gap);
        }
        prev = t;
    }
    println!(
        "\nmachine stalls (a busy loop on CPU 0 for 1 s): {gaps} gaps over 20 us, {:.2}% of the time, longest {:.0} us",
        stalled.as_secs_f64() * 100.0,
        longest.as_secs_f64() * 1e6
    );
}

fn round_trips_placed(place: &Placement, runs: usize, orders: u64) {
    let exec = Executor::start(place.executor_cpu);
    let peer = quickfix_initiator(&exec);
    let mut rows: Vec<[u64; 11]> = Vec::new();
    let mut writes = Vec::new();
    let mut peer_rows: Vec<(u64, u64)> = Vec::new();
    for run in 0..runs {
        let mut rt = fix_round_trips(exec.port, orders, run);
        let mut tcp = tcp_round_trips(orders, 160, place.executor_cpu);
        writes.push(rt.writes as f64 / orders as f64);
        rows.push([
            pct(&mut rt.total, 0.5),
            pct(&mut rt.total, 0.99),
            pct(&mut tcp, 0.5),
            pct(&mut tcp, 0.99),
            pct(&mut rt.own, 0.5),
            pct(&mut rt.own, 0.99),
            pct(&mut rt.submit, 0.5),
            pct(&mut rt.process, 0.5),
            pct(&mut rt.user, 0.5),
            pct(&mut rt.user, 0.99),
            0,
        ]);
        // QuickFIX's own initiator, same executor, same orders, right after mt5bot's run.
        if let Some(p) = &peer {
            peer_rows.push(p.run(orders, run));
        }
    }
    let l = place.label;
    let col = |i: usize| rows.iter().map(|r| r[i]).collect::<Vec<_>>();
    println!(
        "\nNewOrderSingle -> ExecutionReport against the QuickFIX executor, {runs} runs x {orders} orders, {}:",
        place.what
    );
    println!("  {l}round trip p50      {}", median_min_max(col(0)));
    println!("  {l}round trip p99      {}", median_min_max(col(1)));
    println!("  {l}bare TCP echo p50   {}", median_min_max(col(2)));
    println!("  {l}bare TCP echo p99   {}", median_min_max(col(3)));
    println!(
        "  {l}mt5bot's share p50  {}  (encode + seqnum write + send + read + parse + book)",
        median_min_max(col(4))
    );
    println!("  {l}mt5bot's share p99  {}", median_min_max(col(5)));
    println!("    {l}of which submit p50   {}  (encode + seqnum write + socket write)", median_min_max(col(6)));
    println!("    {l}of which receive p50  {}  (socket read + parse + book)", median_min_max(col(7)));
    println!(
        "  {l}user-space share p50  {}  (encode + seqnum write + parse + book; socket calls excluded)",
        median_min_max(col(8))
    );
    println!("  {l}user-space share p99  {}", median_min_max(col(9)));
    writes.sort_by(f64::total_cmp);
    println!(
        "  {l}write syscalls per NewOrderSingle {:.3} (min {:.3}, max {:.3})  (socket + sequence-number file)",
        writes[writes.len() / 2],
        writes[0],
        writes[writes.len() - 1]
    );
    match peer {
        None => println!("  {l}QuickFIX C++ initiator: skipped (no g++ or no libquickfix-dev headers; scripts/install-test-deps.sh installs them)"),
        Some(_) => {
            let p50: Vec<u64> = peer_rows.iter().map(|r| r.0).collect();
            let p99: Vec<u64> = peer_rows.iter().map(|r| r.1).collect();
            println!("  {l}QuickFIX C++ initiator round trip p50  {}", median_min_max(p50.clone()));
            println!("  {l}QuickFIX C++ initiator round trip p99  {}", median_min_max(p99.clone()));
            let ratio = |i: usize, peer: &[u64]| {
                let mut r: Vec<f64> = rows.iter().zip(peer).map(|(m, q)| m[i] as f64 / *q as f64).collect();
                r.sort_by(f64::total_cmp);
                format!("{:.2}x (min {:.2}, max {:.2})", r[r.len() / 2], r[0], r[r.len() - 1])
            };
            println!("  {l}mt5bot / QuickFIX round trip p50  {}", ratio(0, &p50));
            println!("  {l}mt5bot / QuickFIX round trip p99  {}", ratio(1, &p99));
        }
    }
}

/// QuickFIX's own C++ initiator (`benches/peers/quickfix_initiator.cpp`), built here with g++
/// against Debian's libquickfix-dev; `None` (the report says so) where either is missing.
struct Initiator {
    exe: std::path::PathBuf,
    dir: std::path::PathBuf,
    port: u16,
}

fn quickfix_initiator(exec: &Executor) -> Option<Initiator> {
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peers/quickfix_initiator.cpp");
    if !std::path::Path::new("/usr/include/quickfix/SocketInitiator.h").exists() {
        return None;
    }
    let dir = exec._dir.0.join("initiator");
    std::fs::create_dir_all(&dir).ok()?;
    let exe = dir.join("quickfix_initiator");
    let built = Command::new("g++")
        .args(["-std=c++14", "-O2", "-w", "-o"])
        .arg(&exe)
        .arg(&source)
        .args(["-lquickfix", "-lpthread"])
        .status()
        .is_ok_and(|s| s.success());
    if !built {
        eprintln!("QuickFIX C++ initiator: g++ failed on {}", source.display());
        return None;
    }
    Some(Initiator { exe, dir, port: exec.port })
}

impl Initiator {
    /// `orders` round trips; their p50 and p99 in nanoseconds.
    fn run(&self, orders: u64, run: usize) -> (u64, u64) {
        let dictionary = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/contracts/fix44/FIX44.xml");
        let cfg = self.dir.join(format!("initiator-{run}.cfg"));
        std::fs::write(
            &cfg,
            format!(
                "[DEFAULT]\nConnectionType=initiator\nReconnectInterval=1\nFileStorePath={}\nStartTime=00:00:00\n\
                 EndTime=00:00:00\nUseDataDictionary=Y\nDataDictionary={}\nSocketNodelay=Y\nResetOnLogon=Y\n\n\
                 [SESSION]\nBeginString=FIX.4.4\nSenderCompID=MT5BOT\nTargetCompID=EXECUTOR\n\
                 SocketConnectHost=127.0.0.1\nSocketConnectPort={}\nHeartBtInt=30\n",
                self.dir.join(format!("store-{run}")).display(),
                dictionary.display(),
                self.port
            ),
        )
        .expect("initiator cfg");
        let out = Command::new(&self.exe)
            .arg(&cfg)
            .arg(orders.to_string())
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .expect("run the QuickFIX initiator");
        let text = String::from_utf8_lossy(&out.stdout);
        let field = |name: &str| -> u64 {
            text.split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("QuickFIX initiator: no {name} in {text:?}"))
        };
        (field("p50_ns="), field("p99_ns="))
    }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let mut c = Criterion::default().configure_from_args();
    if quick {
        c = c.warm_up_time(Duration::from_millis(200)).measurement_time(Duration::from_millis(500)).sample_size(10);
    }
    bench_codec(&mut c);
    c.final_summary();
    round_trip_report(quick);
}
