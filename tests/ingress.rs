//! The signal ingress over real TCP: every line answered, bad input counted, the connection kept.

mod support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::*;

fn start(dir: &TempDir, extra: &str) -> (Daemon, String) {
    let ingress = format!("127.0.0.1:{}", free_port());
    let (cfg, addr) = config_with(
        dir,
        &format!(
            "ingress:\n  enabled: true\n  listen: {ingress}\n  max_line_bytes: 256\n  max_connections: 2\n{extra}"
        ),
    );
    let mut d = Daemon::start(dir, &cfg, &addr, &[]);
    d.wait_metrics(Duration::from_secs(5));
    (d, ingress)
}

fn connect(addr: &str) -> (TcpStream, BufReader<TcpStream>) {
    let s = TcpStream::connect(addr).expect("connect to ingress");
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let r = BufReader::new(s.try_clone().expect("clone"));
    (s, r)
}

fn answer(r: &mut BufReader<TcpStream>) -> serde_json::Value {
    let mut line = String::new();
    r.read_line(&mut line).expect("an answer line");
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("answer is not JSON ({e}): {line:?}"))
}

#[test]
fn bad_lines_get_errors_and_the_next_good_line_is_taken() {
    let dir = TempDir::new("ingress");
    let (d, ingress) = start(&dir, "");
    let (mut w, mut r) = connect(&ingress);

    w.write_all(b"this is not json\n").expect("send");
    let a = answer(&mut r);
    assert_eq!(a["status"], "error");
    assert_eq!(a["line"], 1);
    assert!(a["error"].as_str().expect("error").contains("expected"), "{a}");

    let cases: [(&str, &str); 6] = [
        (
            r#"{"id":"a1","symbol":"XAUUSD","side":"buy","qty":1,"type":"market"}"#,
            "symbol: \"XAUUSD\" is not traded; accepted: EURUSD, GBPUSD",
        ),
        (
            r#"{"id":"a2","symbol":"EURUSD","side":"hold","qty":1,"type":"market"}"#,
            "side: \"hold\" is not a side; accepted: buy, sell",
        ),
        (r#"{"id":"a3","symbol":"EURUSD","side":"buy","qty":-2,"type":"market"}"#, "qty: -2 is not accepted"),
        (r#"{"id":"a4","symbol":"EURUSD","side":"buy","qty":1,"type":"limit"}"#, "price: a limit order needs a price"),
        (
            r#"{"id":"a5","symbol":"EURUSD","side":"buy","qty":1,"type":"market","urgent":true}"#,
            "unknown field `urgent`",
        ),
        (
            r#"{"id":"no spaces allowed","symbol":"EURUSD","side":"buy","qty":1,"type":"market"}"#,
            "id: expected 1 to 32 characters",
        ),
    ];
    for (i, (line, want)) in cases.iter().enumerate() {
        w.write_all(format!("{line}\n").as_bytes()).expect("send");
        let a = answer(&mut r);
        assert_eq!(a["status"], "error", "{line}");
        assert_eq!(a["line"], i as u64 + 2);
        assert!(a["error"].as_str().expect("error").contains(want), "{line}: {a}");
    }

    let long = format!("{{\"id\":\"{}\"}}\n", "x".repeat(400));
    w.write_all(long.as_bytes()).expect("send");
    let a = answer(&mut r);
    assert!(a["error"].as_str().expect("error").contains("longer than 256 bytes"), "{a}");

    w.write_all(b"\n   \n{\"id\":\"good-1\",\"symbol\":\"EURUSD\",\"side\":\"buy\",\"qty\":1,\"type\":\"market\"}\r\n")
        .expect("send");
    let a = answer(&mut r);
    assert_eq!((a["id"].as_str(), a["status"].as_str()), (Some("good-1"), Some("queued")), "{a}");

    // Still up: a limit order in two TCP segments.
    w.write_all(b"{\"id\":\"good-2\",\"symbol\":\"GBPUSD\",\"side\":\"SELL\",").expect("send");
    w.flush().expect("flush");
    std::thread::sleep(Duration::from_millis(50));
    w.write_all(b"\"qty\":0.5,\"type\":\"limit\",\"price\":1.2}\n").expect("send");
    assert_eq!(answer(&mut r)["status"], "queued");

    let m = wait_for("ingress counters", Duration::from_secs(5), || {
        let m = d.metrics();
        m.contains("signals_received_total{source=\"ingress\"} 2").then_some(m)
    });
    assert!(m.contains("ingress_errors_total{reason=\"bad_json\"} 1"), "{m}");
    assert!(m.contains("ingress_errors_total{reason=\"bad_field\"} 6"), "{m}");
    assert!(m.contains("ingress_errors_total{reason=\"line_too_long\"} 1"), "{m}");
    assert!(m.contains("ingress_connections 1"), "{m}");
}

#[test]
fn duplicate_ids_never_make_a_second_order_and_extra_clients_are_refused() {
    let dir = TempDir::new("ingress-dup");
    let (d, ingress) = start(&dir, "");
    let (mut w, mut r) = connect(&ingress);
    let line = b"{\"id\":\"dup-1\",\"symbol\":\"EURUSD\",\"side\":\"buy\",\"qty\":0.1,\"type\":\"market\"}\n";
    w.write_all(line).expect("send");
    assert_eq!(answer(&mut r)["status"], "queued");
    // A repeat is refused at once, whichever side it names, and is never queued.
    w.write_all(line).expect("send again");
    let a = answer(&mut r);
    assert_eq!(
        (a["id"].as_str(), a["status"].as_str(), a["reason"].as_str()),
        (Some("dup-1"), Some("refused"), Some("duplicate")),
        "{a}"
    );
    w.write_all(b"{\"id\":\"dup-1\",\"symbol\":\"EURUSD\",\"side\":\"sell\",\"qty\":0.1,\"type\":\"market\"}\n")
        .expect("send with the other side");
    let a = answer(&mut r);
    assert_eq!((a["status"].as_str(), a["reason"].as_str()), (Some("refused"), Some("duplicate")), "{a}");
    wait_for("both repeats to be counted", Duration::from_secs(5), || {
        d.metrics().contains("signals_dropped_total{reason=\"duplicate\"} 2").then_some(())
    });

    let _second = connect(&ingress);
    let (_w3, mut r3) = connect(&ingress);
    let a = answer(&mut r3);
    assert!(a["error"].as_str().expect("error").contains("too many connections"), "{a}");
    wait_for("the refusal to be counted", Duration::from_secs(5), || {
        d.metrics().contains("ingress_errors_total{reason=\"too_many_connections\"} 1").then_some(())
    });
    // The first client still works.
    w.write_all(b"{\"id\":\"dup-2\",\"symbol\":\"EURUSD\",\"side\":\"sell\",\"qty\":0.1,\"type\":\"market\"}\n")
        .expect("send");
    assert_eq!(answer(&mut r)["status"], "queued");
}

#[test]
fn a_client_that_never_reads_does_not_stall_trading() {
    let dir = TempDir::new("ingress-slow");
    let (d, ingress) = start(&dir, "");
    let mut w = TcpStream::connect(&ingress).expect("connect");
    w.set_write_timeout(Some(Duration::from_secs(2))).expect("timeout");
    // Flood bad lines and never read the answers: the daemon stops reading this client.
    let junk = b"garbage\n".repeat(4096);
    for _ in 0..64 {
        if w.write_all(&junk).is_err() {
            break; // our send buffer is full: the daemon has stopped reading us, as it should
        }
    }
    let before = sample(&d.metrics(), "ticks_total").expect("ticks");
    let after = wait_for("ticks to keep flowing", Duration::from_secs(5), || {
        sample(&d.metrics(), "ticks_total").filter(|t| *t > before + 100.0)
    });
    assert!(after > before);
    assert_eq!(get(&d.metrics_addr, "/readyz").expect("readyz").status, 200);
}

fn signal_line(id: &str, side: &str, qty: f64) -> String {
    format!("{{\"id\":\"{id}\",\"symbol\":\"EURUSD\",\"side\":\"{side}\",\"qty\":{qty},\"type\":\"market\"}}\n")
}

/// A signal the risk limits refuse only when its turn comes is refused on the same connection,
/// after its `queued` answer.
#[test]
fn a_refusal_after_queuing_reaches_the_client_that_sent_the_signal() {
    let dir = TempDir::new("ingress-late");
    let (_d, ingress) = start(&dir, "risk:\n  max_notional: 1000\n  max_position: 1000000\n");
    let (mut w, mut r) = connect(&ingress);
    // Wait for a quote, so the refusal is about notional and not about a missing quote.
    std::thread::sleep(Duration::from_millis(300));
    w.write_all(signal_line("big-1", "buy", 100000.0).as_bytes()).expect("send");
    let first = answer(&mut r);
    assert_eq!((first["id"].as_str(), first["status"].as_str()), (Some("big-1"), Some("queued")), "{first}");
    let late = answer(&mut r);
    assert_eq!(
        (late["id"].as_str(), late["status"].as_str(), late["reason"].as_str()),
        (Some("big-1"), Some("refused"), Some("max_notional")),
        "{late}"
    );
}

/// Every line of a 20,000-line burst is answered, though the client reads nothing until it has
/// written everything.
#[test]
fn a_burst_written_before_any_answer_is_read_is_answered_line_for_line() {
    let dir = TempDir::new("ingress-burst");
    let ingress = format!("127.0.0.1:{}", free_port());
    let (cfg, addr) = config_with(
        &dir,
        &format!(
            "ingress:\n  enabled: true\n  listen: {ingress}\n\
             risk:\n  max_position: 1000000000\n  max_orders_per_second: 10000000\n  max_notional: 1.0e15\n\
             queue:\n  capacity: 65536\n"
        ),
    );
    let mut d = Daemon::start(&dir, &cfg, &addr, &[]);
    d.wait_metrics(Duration::from_secs(5));
    const N: usize = 20_000;
    let w = TcpStream::connect(&ingress).expect("connect");
    let mut writer = w.try_clone().expect("clone");
    let sender = std::thread::spawn(move || {
        let mut burst = String::with_capacity(N * 80);
        for i in 0..N {
            burst.push_str(&signal_line(&format!("b{i}"), if i % 2 == 0 { "buy" } else { "sell" }, 0.01));
        }
        writer.write_all(burst.as_bytes()).expect("write the whole burst");
        writer.shutdown(std::net::Shutdown::Write).expect("half-close");
    });
    // Read nothing until the burst is out (or, if the kernel's buffers cannot hold it all, for a
    // while: then reading must resume the daemon).
    let start = Instant::now();
    while !sender.is_finished() && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    w.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut all = String::new();
    (&w).read_to_string(&mut all).expect("every answer, then the close");
    sender.join().expect("sender");
    let mut first: HashMap<String, String> = HashMap::new();
    let mut lines = 0;
    for line in all.lines() {
        lines += 1;
        let a: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let id = a["id"].as_str().unwrap_or_else(|| panic!("an answer without id: {a}")).to_owned();
        first.entry(id).or_insert_with(|| a["status"].as_str().unwrap_or("").to_owned());
    }
    assert_eq!(first.len(), N, "answers for {} of {N} signals ({lines} lines)", first.len());
    assert!(first.values().all(|s| s == "queued"), "every signal was queued");
    assert!(d.metrics().contains(&format!("signals_received_total{{source=\"ingress\"}} {N}")));
}

/// 32 clients that write and never read fill every slot; they are disconnected after
/// `ingress.stall_timeout`, counted, and a new client gets in.
#[test]
fn clients_that_never_read_are_reaped_and_a_new_client_gets_in() {
    let dir = TempDir::new("ingress-stall");
    let ingress = format!("127.0.0.1:{}", free_port());
    let (cfg, addr) = config_with(
        &dir,
        &format!("ingress:\n  enabled: true\n  listen: {ingress}\n  max_connections: 32\n  stall_timeout: 1s\n"),
    );
    let mut d = Daemon::start(&dir, &cfg, &addr, &[]);
    d.wait_metrics(Duration::from_secs(5));
    let sockaddr: std::net::SocketAddr = ingress.parse().expect("addr");
    let mut stalled = Vec::new();
    for _ in 0..32 {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
        socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
        socket.connect(&sockaddr.into()).expect("connect");
        let mut s: TcpStream = socket.into();
        s.set_write_timeout(Some(Duration::from_millis(500))).expect("timeout");
        // Each bad line gets an error answer of ~100 bytes: far more than the windows hold.
        let junk = b"not a signal\n".repeat(20_000);
        let _ = s.write_all(&junk);
        stalled.push(s);
    }
    let (_w, mut r) = connect(&ingress);
    let a = answer(&mut r);
    assert!(a["error"].as_str().is_some_and(|e| e.contains("too many connections")), "all slots are held: {a}");
    wait_for("the 32 stalled clients to be reaped", Duration::from_secs(15), || {
        d.metrics().contains("ingress_errors_total{reason=\"stalled\"} 32").then_some(())
    });
    let (mut w, mut r) = connect(&ingress);
    w.write_all(signal_line("after-reap", "buy", 0.1).as_bytes()).expect("send");
    assert_eq!(answer(&mut r)["status"], "queued");
    let log = d.log_file();
    assert!(log.contains("answers were never taken by the client"), "the log says what was left unsent");
    assert!(d.metrics().contains("ingress_connections 1"));
    drop(stalled);
}

/// Quantities below a symbol's minimum lot or off its lot step are refused with the rule named
/// (a qty of 5e-324 used to become an order).
#[test]
fn quantities_off_the_lot_rules_are_refused_with_the_rule_named() {
    let dir = TempDir::new("ingress-lots");
    let ingress = format!("127.0.0.1:{}", free_port());
    let (cfg, addr) = config_with(
        &dir,
        &format!(
            "ingress:\n  enabled: true\n  listen: {ingress}\n\
             feed:\n  symbols:\n    - name: EURUSD\n      price: 1.1\n      min_qty: 0.1\n      qty_step: 0.05\n"
        ),
    );
    let mut d = Daemon::start(&dir, &cfg, &addr, &[]);
    d.wait_metrics(Duration::from_secs(5));
    let (mut w, mut r) = connect(&ingress);
    for (qty, want) in [
        ("5e-324", "below the minimum lot 0.1 of EURUSD"),
        ("0.07", "below the minimum lot"),
        ("0.12", "not a whole number of lot steps of 0.05"),
    ] {
        w.write_all(
            format!(
                "{{\"id\":\"l-{qty}\",\"symbol\":\"EURUSD\",\"side\":\"buy\",\"qty\":{qty},\"type\":\"market\"}}\n"
            )
            .as_bytes(),
        )
        .expect("send");
        let a = answer(&mut r);
        assert_eq!(a["status"], "error", "{qty}: {a}");
        assert!(a["error"].as_str().is_some_and(|e| e.contains(want) && e.contains("feed.symbols[]")), "{qty}: {a}");
    }
    w.write_all(signal_line("l-ok", "buy", 0.15).as_bytes()).expect("send");
    assert_eq!(answer(&mut r)["status"], "queued");
    assert!(d.metrics().contains("ingress_errors_total{reason=\"bad_field\"} 3"));
}
