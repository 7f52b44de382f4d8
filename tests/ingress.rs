//! The signal ingress over real TCP: every line answered, bad input counted, the connection kept.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

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
    w.write_all(line).expect("send again");
    assert_eq!(answer(&mut r)["status"], "queued");
    wait_for("the duplicate to be refused", Duration::from_secs(5), || {
        d.metrics().contains("signals_dropped_total{reason=\"duplicate\"} 1").then_some(())
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
