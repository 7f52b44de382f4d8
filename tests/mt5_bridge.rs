//! The MT5 bridge against a simulated Expert Advisor that follows `docs/mt5-bridge.md`: the
//! handshake, ticks, orders filled with MT5 retcodes, a disconnect in the middle of an order and
//! the reconnect snapshot, and every kind of bad input. The simulator keeps its own ledger of
//! executions per order id, so a duplicate or a lost order shows.

mod support;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::client::{at_least_once_client, Rng};
use support::*;

const SECRET: &str = "bridge-test-secret-0123456789abcdef";
const MAGIC: u64 = 5_550_001;

fn start(dir: &TempDir, extra: &str) -> (Daemon, String, String) {
    start_mt5(dir, "", extra)
}

/// As [`start`], with `mt5` added to `venue.mt5` (indented four spaces).
fn start_mt5(dir: &TempDir, mt5: &str, extra: &str) -> (Daemon, String, String) {
    let bridge = format!("127.0.0.1:{}", free_port());
    let ingress = format!("127.0.0.1:{}", free_port());
    let (cfg, addr) = config_with(
        dir,
        &format!(
            "venue:\n  kind: mt5\n  mt5:\n    listen: {bridge}\n    handshake_timeout: 500ms\n    max_line_bytes: 2048\n{mt5}\
             feed:\n  kind: venue\n\
             model:\n  threshold_bps: 10000\n\
             queue:\n  max_wait: 20s\n\
             risk:\n  max_orders_per_second: 100000\n  max_position: 100\n\
             ingress:\n  enabled: true\n  listen: {ingress}\n{extra}"
        ),
    );
    let mut d = Daemon::start(dir, &cfg, &addr, &[("CONTROLLER_SHARED_SECRET", SECRET)]);
    d.wait_metrics(Duration::from_secs(10));
    (d, bridge, ingress)
}

/// A deal the simulated terminal made.
#[derive(Debug, Clone)]
struct Deal {
    ticket: u64,
    id: String,
    volume: f64,
    price: f64,
    side: String,
}

/// The simulated Expert Advisor: a connection and the terminal's memory (which outlives it).
struct Ea {
    w: TcpStream,
    r: BufReader<TcpStream>,
}

#[derive(Default)]
struct Terminal {
    deals: Vec<Deal>,
    resting: Vec<String>,
    /// Orders that ended without filling whole: id, state, volume filled.
    ended: Vec<(String, &'static str, f64)>,
    /// A broker that rewrites comments: the snapshot carries its text as `comment` and the EA's
    /// own id (from its ticket map) as `id`.
    rewrites_comments: bool,
    executions: HashMap<String, usize>,
    next_ticket: u64,
}

impl Terminal {
    fn execute(&mut self, id: &str, volume: f64, price: f64) -> Deal {
        self.execute_side(id, volume, price, "buy")
    }

    fn execute_side(&mut self, id: &str, volume: f64, price: f64, side: &str) -> Deal {
        *self.executions.entry(id.to_owned()).or_default() += 1;
        self.next_ticket += 1;
        let d = Deal { ticket: 50_000 + self.next_ticket, id: id.to_owned(), volume, price, side: side.to_owned() };
        self.deals.push(d.clone());
        d
    }

    fn snapshot(&self) -> Value {
        // (id, comment) as the EA sends them for an order of mt5bot's id `id`.
        let named = |id: &str| match self.rewrites_comments {
            true => (Value::from(id), Value::from(format!("broker #{}", id.len()))),
            false => (Value::Null, Value::from(id)),
        };
        let entry = |mut v: Value, id: &str| {
            let (i, c) = named(id);
            v["comment"] = c;
            if !i.is_null() {
                v["id"] = i;
            }
            v
        };
        json!({
            "type": "snapshot",
            "deals": self.deals.iter().map(|d| entry(json!({"deal": d.ticket, "volume": d.volume, "price": d.price, "symbol": "EURUSD", "type": d.side, "magic": MAGIC}), &d.id)).collect::<Vec<_>>(),
            "orders": self.resting.iter().map(|id| entry(json!({"order": 1, "symbol": "EURUSD"}), id)).collect::<Vec<_>>(),
            "history": self.ended.iter().map(|(id, state, filled)| entry(json!({"order": 2, "state": state, "volume_filled": filled}), id)).collect::<Vec<_>>(),
            "positions": self.positions(),
        })
    }

    /// The terminal's open position of mt5bot's (a netting account: one, the net of the deals).
    fn positions(&self) -> Vec<Value> {
        let net: f64 = self.deals.iter().map(|d| if d.side == "sell" { -d.volume } else { d.volume }).sum();
        match net {
            n if n.abs() < 1e-9 => vec![],
            n => vec![
                json!({"ticket": 1, "symbol": "EURUSD", "volume": n.abs(), "type": if n > 0.0 { "buy" } else { "sell" }}),
            ],
        }
    }
}

impl Ea {
    fn connect(addr: &str) -> Ea {
        let w = wait_for("the bridge listener", Duration::from_secs(5), || TcpStream::connect(addr).ok());
        w.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        let r = BufReader::new(w.try_clone().expect("clone"));
        Ea { w, r }
    }

    fn recv(&mut self) -> Value {
        let mut line = String::new();
        let n = self.r.read_line(&mut line).expect("a line from mt5bot");
        assert!(n > 0, "mt5bot closed the connection");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"))
    }

    /// The next message that is not a ping (pings are answered).
    fn recv_skip_ping(&mut self) -> Value {
        loop {
            let m = self.recv();
            if m["type"] == "ping" {
                self.send(&json!({"type": "pong"}));
                continue;
            }
            return m;
        }
    }

    fn send(&mut self, v: &Value) {
        self.w.write_all(format!("{v}\n").as_bytes()).expect("send");
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        self.w.write_all(bytes).expect("send");
    }

    /// Answers the challenge with `secret`; returns the welcome.
    fn authenticate(&mut self, secret: &str) -> Value {
        self.authenticate_with(secret, json!({}))
    }

    /// As [`Ea::authenticate`], with `fields` added to the `auth` line (margin_mode, ...).
    fn authenticate_with(&mut self, secret: &str, fields: Value) -> Value {
        let hello = self.recv();
        assert_eq!(hello["type"], "hello");
        assert_eq!(hello["version"], 1);
        let challenge = hello["challenge"].as_str().expect("challenge");
        assert_eq!(challenge.len(), 64);
        let mac = mt5bot::support::auth::hmac_sha256(secret.as_bytes(), challenge.as_bytes());
        let mut auth =
            json!({"type": "auth", "hmac": mt5bot::support::encoding::hex(&mac), "login": 1234, "terminal": "sim"});
        if let (Some(a), Some(f)) = (auth.as_object_mut(), fields.as_object()) {
            a.extend(f.clone());
        }
        self.send(&auth);
        self.recv()
    }

    /// Reads until mt5bot closes the connection; returns what it said before.
    fn until_closed(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            match self.r.read_line(&mut line) {
                Ok(0) | Err(_) => return lines,
                Ok(_) => lines.push(line),
            }
        }
    }

    /// Reads for `wait`, answering pings; fails on any order mt5bot sends meanwhile.
    fn no_order_for(&mut self, wait: Duration) {
        self.w.set_read_timeout(Some(Duration::from_millis(50))).expect("timeout");
        let until = Instant::now() + wait;
        while Instant::now() < until {
            let mut line = String::new();
            match self.r.read_line(&mut line) {
                Ok(0) => panic!("mt5bot closed the connection"),
                Ok(_) => {
                    let m: Value = serde_json::from_str(&line).expect("JSON");
                    assert_ne!(m["type"], "order", "nothing was to be sent: {m}");
                    if m["type"] == "ping" {
                        self.send(&json!({"type": "pong"}));
                    }
                }
                Err(_) => {} // the 50 ms timeout; a partial line stays in the buffer
            }
        }
        self.w.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    }

    fn tick(&mut self, bid: f64) {
        self.send(&json!({"type": "tick", "symbol": "EURUSD", "bid": bid, "ask": bid + 0.0002, "time_msc": 1}));
    }
}

/// A sample that must be on `/metrics` (a missing one is a failure, not a zero).
fn metric(d: &Daemon, name: &str) -> f64 {
    let text = d.metrics();
    sample(&text, name).unwrap_or_else(|| panic!("{name} is not on /metrics:\n{text}"))
}

fn wait_metric(d: &Daemon, name: &str, want: f64) {
    let start = Instant::now();
    let mut last = 0.0;
    while start.elapsed() < Duration::from_secs(10) {
        last = metric(d, name);
        if last == want {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{name} is {last}, expected {want}\n{}", d.log_file());
}

fn signal(ingress: &mut TcpStream, r: &mut BufReader<TcpStream>, id: &str, side: &str, qty: f64, kind: &str) {
    let price = if kind == "limit" { ",\"price\":1.08" } else { "" };
    let line = format!(
        "{{\"id\":\"{id}\",\"symbol\":\"EURUSD\",\"side\":\"{side}\",\"qty\":{qty},\"type\":\"{kind}\"{price}}}\n"
    );
    ingress.write_all(line.as_bytes()).expect("ingress");
    let mut answer = String::new();
    r.read_line(&mut answer).expect("ingress answer");
    assert!(answer.contains("\"queued\""), "{answer}");
}

/// The next line on an ingress connection: a refusal that came after `queued`.
fn late_refusal(r: &mut BufReader<TcpStream>) -> String {
    let mut late = String::new();
    r.read_line(&mut late).expect("the refusal after queuing");
    late
}

/// A daemon on the mt5 venue with a simulated terminal logged on, its empty snapshot sent and one
/// EURUSD tick in (the quote orders need): the daemon, the terminal and the ingress address.
fn synced(dir: &TempDir) -> (Daemon, Ea, String) {
    let (d, bridge, ing) = start(dir, "");
    let mut ea = Ea::connect(&bridge);
    ea.authenticate(SECRET);
    ea.send(&Terminal::default().snapshot());
    wait_metric(&d, "broker_connected{venue=\"mt5\"}", 1.0);
    ea.tick(1.0800);
    wait_metric(&d, "ticks_total", 1.0);
    (d, ea, ing)
}

fn ingress(addr: &str) -> (TcpStream, BufReader<TcpStream>) {
    let s = TcpStream::connect(addr).expect("ingress");
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let r = BufReader::new(s.try_clone().expect("clone"));
    (s, r)
}

#[test]
fn authenticated_terminal_streams_ticks_and_fills_orders_by_retcode() {
    let dir = TempDir::new("mt5-fills");
    let (d, bridge, ing) = start(&dir, "");
    assert_eq!(metric(&d, "broker_connected{venue=\"mt5\"}"), 0.0);
    let mut ea = Ea::connect(&bridge);
    let welcome = ea.authenticate(SECRET);
    assert_eq!(welcome["type"], "welcome");
    assert_eq!(welcome["magic"], MAGIC);
    assert_eq!(welcome["symbols"], json!(["EURUSD", "GBPUSD"]));
    let mut term = Terminal::default();
    ea.send(&term.snapshot());
    wait_metric(&d, "broker_connected{venue=\"mt5\"}", 1.0);
    for i in 0..50 {
        ea.tick(1.08 + f64::from(i) * 1e-5);
    }
    wait_metric(&d, "ticks_total", 50.0);

    let (mut iw, mut ir) = ingress(&ing);
    // 1: done; 2: requote; 3: partial (0.4 of 1); 4: a limit order placed, filled later by a deal.
    signal(&mut iw, &mut ir, "o1", "buy", 1.0, "market");
    let o = ea.recv_skip_ping();
    assert_eq!(o["type"], "order");
    assert_eq!(o["id"], "o1");
    assert_eq!(o["comment"], "o1");
    assert_eq!(o["magic"], MAGIC);
    assert_eq!(o["action"], "deal");
    assert_eq!(o["type_order"], "buy");
    assert_eq!(o["symbol"], "EURUSD");
    assert_eq!(o["volume"], 1.0);
    assert_eq!(o["deviation"], 10);
    assert_eq!(o["type_filling"], "ioc");
    let deal = term.execute("o1", 1.0, 1.0805);
    ea.send(
        &json!({"type":"result","id":"o1","retcode":10009,"deal":deal.ticket,"order":7,"volume":1.0,"price":1.0805}),
    );
    wait_metric(&d, "trade_count", 1.0);

    signal(&mut iw, &mut ir, "o2", "buy", 1.0, "market");
    assert_eq!(ea.recv_skip_ping()["id"], "o2");
    ea.send(&json!({"type":"result","id":"o2","retcode":10004,"comment":"Requote"}));
    wait_metric(&d, "orders_rejected_total", 1.0);
    assert_eq!(metric(&d, "venue_refusals_total{reason=\"requote\",venue=\"mt5\"}"), 1.0);
    // Algo Trading switched off in the terminal: counted by its reason, and logged as the
    // operator's to fix (the alert Mt5botVenueNeedsOperator watches the count).
    signal(&mut iw, &mut ir, "o2b", "buy", 1.0, "market");
    assert_eq!(ea.recv_skip_ping()["id"], "o2b");
    ea.send(&json!({"type":"result","id":"o2b","retcode":10027,"comment":"AutoTrading disabled by client"}));
    wait_metric(&d, "venue_refusals_total{reason=\"autotrading_disabled_by_client\",venue=\"mt5\"}", 1.0);
    assert_eq!(metric(&d, "venue_refusals_total{reason=\"other\",venue=\"mt5\"}"), 0.0);
    let log = wait_for("the refusal in the log", Duration::from_secs(5), || {
        let l = d.stderr();
        l.contains("order o2b refused").then_some(l)
    });
    assert!(
        log.contains("autotrading disabled in the terminal (10027)") && log.contains("needs the operator"),
        "{log}"
    );

    signal(&mut iw, &mut ir, "o3", "sell", 1.0, "market");
    assert_eq!(ea.recv_skip_ping()["id"], "o3");
    let deal = term.execute("o3", 0.4, 1.0801);
    ea.send(&json!({"type":"result","id":"o3","retcode":10010,"deal":deal.ticket,"volume":0.4,"price":1.0801}));
    wait_metric(&d, "trade_count", 2.0);

    signal(&mut iw, &mut ir, "o4", "buy", 2.0, "limit");
    let o = ea.recv_skip_ping();
    assert_eq!(
        (o["action"].as_str(), o["type_order"].as_str(), o["price"].as_f64()),
        (Some("pending"), Some("buy_limit"), Some(1.08))
    );
    ea.send(&json!({"type":"result","id":"o4","retcode":10008,"order":9}));
    term.resting.push("o4".into());
    let deal = term.execute("o4", 2.0, 1.08);
    // Reported twice (OnTradeTransaction may repeat): booked once.
    ea.send(&json!({"type":"deal","id":"o4","deal":deal.ticket,"volume":2.0,"price":1.08}));
    ea.send(&json!({"type":"deal","id":"o4","deal":deal.ticket,"volume":2.0,"price":1.08}));
    wait_metric(&d, "trade_count", 3.0);
    wait_metric(&d, "open_orders", 0.0);
    // 1 - 0.4 + 2
    assert!((metric(&d, "position{symbol=\"EURUSD\"}") - 2.6).abs() < 1e-9);
    assert_eq!(metric(&d, "orders_rejected_total"), 2.0, "the requote and the autotrading refusal");
    assert!(d.log_file().contains("requote (10004)"), "{}", d.log_file());
}

/// Stop-loss and take-profit on MT5 are the broker's: they go out in the order (an order adding
/// to the position carries the position's), mt5bot sends no exit of its own when the mark
/// crosses, and the broker's stop deal is booked once however often it is reported. The account
/// message anchors the balance.
#[test]
fn stops_go_out_with_the_order_and_the_brokers_stop_deal_books_once() {
    let dir = TempDir::new("mt5-stops");
    let (d, bridge, ing) = start(&dir, "");
    let mut ea = Ea::connect(&bridge);
    assert_eq!(ea.authenticate(SECRET)["type"], "welcome");
    let mut term = Terminal::default();
    ea.send(&term.snapshot());
    wait_metric(&d, "broker_connected{venue=\"mt5\"}", 1.0);
    ea.tick(1.08);
    wait_metric(&d, "ticks_total", 1.0);
    let (mut iw, mut ir) = ingress(&ing);
    iw.write_all(b"{\"id\":\"s1\",\"symbol\":\"EURUSD\",\"side\":\"buy\",\"qty\":1,\"type\":\"market\",\"sl\":1.07,\"tp\":1.09}\n")
        .expect("ingress");
    let mut answer = String::new();
    ir.read_line(&mut answer).expect("answer");
    assert!(answer.contains("queued"), "{answer}");
    let o = ea.recv_skip_ping();
    assert_eq!((o["id"].as_str(), o["sl"].as_f64(), o["tp"].as_f64()), (Some("s1"), Some(1.07), Some(1.09)), "{o}");
    let deal = term.execute("s1", 1.0, 1.0802);
    ea.send(&json!({"type":"result","id":"s1","retcode":10009,"deal":deal.ticket,"volume":1.0,"price":1.0802,"commission":-3.5}));
    wait_metric(&d, "trade_count", 1.0);
    assert_eq!(metric(&d, "commissions_paid"), 3.5, "MT5 reports a charge as negative");
    // An order without levels that adds to the position carries the position's.
    signal(&mut iw, &mut ir, "s2", "buy", 1.0, "market");
    let o = ea.recv_skip_ping();
    assert_eq!((o["id"].as_str(), o["sl"].as_f64(), o["tp"].as_f64()), (Some("s2"), Some(1.07), Some(1.09)), "{o}");
    let deal = term.execute("s2", 1.0, 1.0802);
    ea.send(&json!({"type":"result","id":"s2","retcode":10009,"deal":deal.ticket,"volume":1.0,"price":1.0802}));
    wait_metric(&d, "trade_count", 2.0);
    // The mark crosses the stop: the broker closes, not mt5bot.
    ea.tick(1.0695);
    wait_metric(&d, "ticks_total", 2.0);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(metric(&d, "orders_sent_total"), 2.0, "no exit of mt5bot's own");
    term.next_ticket += 1;
    let ticket = 50_000 + term.next_ticket;
    let stop = json!({"type":"deal","reason":"sl","deal":ticket,"symbol":"EURUSD","deal_type":"sell","volume":2.0,"price":1.0695});
    ea.send(&stop);
    ea.send(&stop);
    wait_metric(&d, "protective_exits_total{kind=\"sl\"}", 1.0);
    wait_metric(&d, "position{symbol=\"EURUSD\"}", 0.0);
    // A reconnect whose snapshot lists the stop's deal again books nothing more.
    drop(ea);
    let mut ea = Ea::connect(&bridge);
    assert_eq!(ea.authenticate(SECRET)["type"], "welcome");
    let mut snap = term.snapshot();
    snap["deals"].as_array_mut().expect("deals").push(json!({"deal": ticket, "comment": "[sl 1.07000]", "volume": 2.0, "price": 1.0695, "symbol": "EURUSD", "type": "sell", "reason": "sl"}));
    ea.send(&snap);
    ea.send(&json!({"type":"account","balance":5000.0,"equity":5000.0,"margin":0.0}));
    wait_metric(&d, "balance", 5000.0);
    assert_eq!(metric(&d, "trade_count"), 3.0, "two buys and one stop deal");
    assert_eq!(metric(&d, "protective_exits_total{kind=\"sl\"}"), 1.0);
    assert_eq!(metric(&d, "position{symbol=\"EURUSD\"}"), 0.0);
    assert_eq!(metric(&d, "equity"), 5000.0, "flat: the venue's balance");
    // An account message without a balance is a bad line, not a zero balance.
    ea.send(&json!({"type":"account","equity":1.0}));
    assert_eq!(ea.recv_skip_ping()["type"], "error");
    wait_metric(&d, "venue_protocol_errors_total{kind=\"bad_line\",venue=\"mt5\"}", 1.0);
    assert_eq!(metric(&d, "balance"), 5000.0);
}

/// With the symbol's specs in the snapshot, an order's prices go out on the tick grid (a buy
/// limit rounded down, its stop-loss to the nearest tick) and a volume off the symbol's step
/// (0.1 here, finer than feed.symbols' 0.01) is refused before it reaches the terminal; a spec
/// that makes no sense is ignored with a warning.
#[test]
fn orders_follow_the_symbol_specs_the_terminal_reports() {
    let dir = TempDir::new("mt5-specs");
    let (d, bridge, ing) = start(&dir, "");
    let mut ea = Ea::connect(&bridge);
    ea.authenticate(SECRET);
    let mut snap = Terminal::default().snapshot();
    snap["specs"] = json!({
        "EURUSD": {"digits": 5, "tick_size": 0.00001, "volume_min": 0.1, "volume_max": 50, "volume_step": 0.1},
        "GBPUSD": {"digits": 5, "tick_size": 0, "volume_min": 0.01, "volume_max": 50, "volume_step": 0.01},
    });
    ea.send(&snap);
    wait_metric(&d, "broker_connected{venue=\"mt5\"}", 1.0);
    ea.tick(1.0860);
    wait_metric(&d, "ticks_total", 1.0);
    let (mut iw, mut ir) = ingress(&ing);
    let send = |iw: &mut TcpStream, ir: &mut BufReader<TcpStream>, line: &str| {
        iw.write_all(format!("{line}\n").as_bytes()).expect("ingress");
        let mut answer = String::new();
        ir.read_line(&mut answer).expect("answer");
        answer
    };
    let a = send(
        &mut iw,
        &mut ir,
        r#"{"id":"p1","symbol":"EURUSD","side":"buy","qty":0.5,"type":"limit","price":1.0854042675000002,"sl":1.0800063}"#,
    );
    assert!(a.contains("queued"), "{a}");
    let o = ea.recv_skip_ping();
    assert_eq!(
        (o["id"].as_str(), o["price"].as_f64(), o["sl"].as_f64()),
        (Some("p1"), Some(1.0854), Some(1.08001)),
        "{o}"
    );
    let a = send(&mut iw, &mut ir, r#"{"id":"p2","symbol":"EURUSD","side":"buy","qty":0.15,"type":"market"}"#);
    assert!(a.contains("queued"), "{a}");
    let late = {
        let mut answer = String::new();
        ir.read_line(&mut answer).expect("the refusal after queuing");
        answer
    };
    assert!(late.contains("\"p2\"") && late.contains("venue_rejected"), "{late}");
    wait_metric(&d, "orders_rejected_total", 1.0);
    // The logger writes on its own thread.
    let log = wait_for("the refusal's reason in the log", Duration::from_secs(5), || {
        let l = d.stderr();
        l.contains("order p2 refused by the mt5 venue before it went out").then_some(l)
    });
    assert!(log.contains("SYMBOL_VOLUME_STEP"), "{log}");
    assert!(log.contains("GBPUSD: the terminal's symbol specs"), "{log}");
}

/// A 10009 answer with deal 0 (a synchronous OrderSend that placed a pending order, or a market
/// order whose deal comes later) books nothing: the fill comes with its deal, once.
#[test]
fn a_result_without_a_deal_books_no_fill_and_the_deal_books_it_once() {
    let dir = TempDir::new("mt5-deal-zero");
    let (d, mut ea, ing) = synced(&dir);
    let (mut iw, mut ir) = ingress(&ing);
    signal(&mut iw, &mut ir, "z1", "buy", 1.0, "limit");
    assert_eq!(ea.recv_skip_ping()["id"], "z1");
    ea.send(&json!({"type":"result","id":"z1","retcode":10009,"deal":0,"order":777,"volume":1.0,"price":1.08,"comment":"Request executed"}));
    ea.tick(1.0801);
    wait_metric(&d, "ticks_total", 2.0);
    assert_eq!(metric(&d, "trade_count"), 0.0, "placing the limit is no fill");
    assert_eq!(metric(&d, "open_orders"), 1.0);
    ea.send(&json!({"type":"deal","id":"z1","deal":9001,"volume":1.0,"price":1.08}));
    wait_metric(&d, "trade_count", 1.0);
    ea.send(&json!({"type":"deal","id":"z1","deal":9001,"volume":1.0,"price":1.08}));
    ea.tick(1.0802);
    wait_metric(&d, "ticks_total", 3.0);
    assert_eq!((metric(&d, "trade_count"), metric(&d, "position{symbol=\"EURUSD\"}")), (1.0, 1.0));
    assert_eq!(metric(&d, "open_orders"), 0.0);
}

/// The account message's figures are on /metrics, and a terminal that does not allow trading
/// (Algo Trading off) shows as `venue_trade_allowed 0` with an error in the log, until it does.
/// An account in another currency than `protection.account_currency` is an error in the log.
#[test]
fn the_account_and_whether_the_terminal_allows_trading_are_shown() {
    let dir = TempDir::new("mt5-account");
    let (d, bridge, _ing) = start(&dir, "protection:\n  account_currency: EUR\n");
    let mut ea = Ea::connect(&bridge);
    ea.authenticate(SECRET);
    ea.send(&Terminal::default().snapshot());
    wait_metric(&d, "broker_connected{venue=\"mt5\"}", 1.0);
    assert_eq!(metric(&d, "venue_trade_allowed{venue=\"mt5\"}"), 1.0);
    ea.send(&json!({"type":"account","balance":10000.0,"equity":9950.5,"margin":120.0,"margin_free":9830.5,"currency":"USD","trade_allowed":false}));
    wait_metric(&d, "venue_trade_allowed{venue=\"mt5\"}", 0.0);
    assert_eq!(metric(&d, "venue_account{figure=\"equity\",venue=\"mt5\"}"), 9950.5);
    assert_eq!(metric(&d, "venue_account{figure=\"margin_free\",venue=\"mt5\"}"), 9830.5);
    wait_for("the error in the log", Duration::from_secs(5), || {
        d.stderr().contains("the terminal does not allow trading").then_some(())
    });
    assert!(
        d.stderr().contains("the account is in USD but protection.account_currency is EUR"),
        "the currency mismatch is logged: {}",
        d.stderr()
    );
    ea.send(&json!({"type":"account","balance":10000.0,"equity":9951.0,"margin":120.0,"margin_free":9831.0,"trade_allowed":true}));
    wait_metric(&d, "venue_trade_allowed{venue=\"mt5\"}", 1.0);
    assert_eq!(metric(&d, "venue_account{figure=\"balance\",venue=\"mt5\"}"), 10000.0);
}

/// A snapshot in pages (`more: true` on all but the last) is settled once, with every page's deals
/// and orders; nothing is sent before the last page.
#[test]
fn a_snapshot_in_pages_is_settled_once_after_its_last_page() {
    let dir = TempDir::new("mt5-pages");
    let (d, bridge, ing) = start(&dir, "");
    let mut ea = Ea::connect(&bridge);
    ea.authenticate(SECRET);
    let deal = |n: u64| json!({"deal": 60_000 + n, "comment": format!("old-{n}"), "volume": 0.1, "price": 1.08, "symbol": "EURUSD", "type": "buy"});
    ea.send(&json!({"type":"snapshot","more":true,"deals":[deal(1), deal(2)],"orders":[],"positions":[]}));
    ea.tick(1.0800);
    wait_metric(&d, "ticks_total", 1.0);
    let (mut iw, mut ir) = ingress(&ing);
    signal(&mut iw, &mut ir, "pg1", "buy", 1.0, "market");
    // Not synced yet: the signal waits in the queue.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(metric(&d, "queue_depth"), 1.0, "nothing goes out before the last page");
    ea.send(&json!({"type":"snapshot","more":true,"deals":[deal(3)],"orders":[{"order": 5, "comment": "rest-1", "symbol": "EURUSD"}],"positions":[]}));
    ea.send(&json!({"type":"snapshot","deals":[],"orders":[],"positions":[]}));
    let o = ea.recv_skip_ping();
    assert_eq!((o["type"].as_str(), o["id"].as_str()), (Some("order"), Some("pg1")), "{o}");
    let log = wait_for("the settled snapshot in the log", Duration::from_secs(5), || {
        let l = d.stderr();
        l.contains("snapshot from session 1").then_some(l)
    });
    assert!(log.contains("snapshot from session 1: 3 deals, 1 resting orders"), "{log}");
    assert_eq!(log.matches("snapshot from session").count(), 1, "settled once: {log}");
}

/// An id longer than the 31 characters an MT5 comment holds is refused at the ingress with the
/// reason, never queued (it could never be sent); 31 characters go out.
#[test]
fn an_id_the_terminal_cannot_carry_is_refused_at_the_ingress() {
    let dir = TempDir::new("mt5-long-id");
    let (d, mut ea, ing) = synced(&dir);
    let (mut iw, mut ir) = ingress(&ing);
    let long = "x".repeat(32);
    let line = format!("{{\"id\":\"{long}\",\"symbol\":\"EURUSD\",\"side\":\"buy\",\"qty\":1,\"type\":\"market\"}}\n");
    iw.write_all(line.as_bytes()).expect("ingress");
    let mut answer = String::new();
    ir.read_line(&mut answer).expect("answer");
    let a: Value = serde_json::from_str(&answer).expect("JSON");
    assert_eq!(a["status"], "error", "{a}");
    assert!(a["error"].as_str().is_some_and(|e| e.contains("32 characters; the mt5 venue carries at most 31")), "{a}");
    assert_eq!(metric(&d, "queue_depth"), 0.0);
    signal(&mut iw, &mut ir, &"y".repeat(31), "buy", 1.0, "market");
    let o = ea.recv_skip_ping();
    assert_eq!((o["type"].as_str(), o["id"].as_str()), (Some("order"), Some("y".repeat(31).as_str())), "{o}");
}

/// The terminal's session times (in server time, UTC+2 here) are compared with the calendars:
/// EURUSD's weekday calendar in UTC agrees, GBPUSD on `always` does not (the terminal closes it at
/// weekends), and a window that makes no sense is left out with a warning.
#[test]
fn the_terminals_session_times_are_checked_against_the_calendars() {
    let dir = TempDir::new("mt5-sessions");
    let weekdays = ["mon", "tue", "wed", "thu", "fri"].map(|d| format!("      {d}: ['00:00-24:00']\n")).concat();
    let (mut d, bridge, _ing) = start(
        &dir,
        &format!("sessions:\n  symbols:\n    EURUSD: desk\n  calendars:\n    desk:\n      tz: UTC\n{weekdays}"),
    );
    let mut ea = Ea::connect(&bridge);
    ea.authenticate(SECRET);
    // Monday 00:00 UTC to Saturday 00:00 UTC is Monday 02:00 to Saturday 02:00 server time.
    let mut week = vec![json!([1, 7200, 86400])];
    week.extend((2..=5).map(|day| json!([day, 0, 86400])));
    week.push(json!([6, 0, 7200]));
    let mut gbp = week.clone();
    gbp.push(json!([3, 50000, 40000]));
    let mut snap = Terminal::default().snapshot();
    snap["server_offset"] = json!(7200);
    snap["sessions"] = json!({"EURUSD": week, "GBPUSD": gbp, "XAUUSD": [[1, 0, 86400]]});
    ea.send(&snap);
    wait_metric(&d, "broker_connected{venue=\"mt5\"}", 1.0);
    let log = wait_for("the comparison in the log", Duration::from_secs(5), || {
        let l = d.stderr();
        (l.contains("EURUSD: the mt5 terminal's session times") && l.contains("GBPUSD: the mt5 terminal's"))
            .then_some(l)
    });
    assert!(log.contains("EURUSD: the mt5 terminal's session times agree with calendar desk"), "{log}");
    assert!(
        log.contains(
            "GBPUSD: the mt5 terminal's session times disagree with calendar always in 192 of the coming week's 672"
        ),
        "two weekend days of quarters: {log}"
    );
    assert!(log.contains("(terminal: closed, calendar: open)"), "{log}");
    assert!(log.contains("GBPUSD: session [3, 50000, 40000] from the terminal is not a window"), "{log}");
    // A server offset that is no time zone's: ignored, said so.
    let mut ea2 = Ea::connect(&bridge);
    ea2.authenticate(SECRET);
    let mut snap = Terminal::default().snapshot();
    snap["server_offset"] = json!(86_400);
    snap["sessions"] = json!({"EURUSD": [[1, 0, 86400]]});
    ea2.send(&snap);
    wait_for("the refusal", Duration::from_secs(5), || d.stderr().contains("is not a time zone offset").then_some(()));
    d.signal("TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(10)).code(), Some(0));
}

#[test]
fn a_disconnect_mid_order_is_reconciled_by_the_snapshot_without_duplicates() {
    let dir = TempDir::new("mt5-reconnect");
    let (d, bridge, ing) = start(&dir, "");
    let mut term = Terminal::default();
    let mut ea = Ea::connect(&bridge);
    assert_eq!(ea.authenticate(SECRET)["type"], "welcome");
    ea.send(&term.snapshot());
    ea.tick(1.08);
    wait_metric(&d, "broker_connected{venue=\"mt5\"}", 1.0);
    wait_metric(&d, "ticks_total", 1.0);

    let (mut iw, mut ir) = ingress(&ing);
    // a: executed by the terminal, but the connection drops before the result is sent.
    signal(&mut iw, &mut ir, "a", "buy", 1.0, "market");
    assert_eq!(ea.recv_skip_ping()["id"], "a");
    term.execute("a", 1.0, 1.0802);
    // b: the line reaches the EA but the terminal dies before executing it.
    signal(&mut iw, &mut ir, "b", "buy", 2.0, "market");
    assert_eq!(ea.recv_skip_ping()["id"], "b");
    drop(ea);
    wait_metric(&d, "broker_connected{venue=\"mt5\"}", 0.0);
    // c: arrives while no terminal is there: it waits in the queue.
    signal(&mut iw, &mut ir, "c", "sell", 1.0, "market");
    assert_eq!(metric(&d, "open_orders"), 2.0);

    let mut ea = Ea::connect(&bridge);
    let welcome = ea.authenticate(SECRET);
    assert_eq!(welcome["session"], 2);
    ea.send(&term.snapshot());
    // Only b (no trace at the terminal) and c (never sent) come now; a is booked from the snapshot.
    let mut got = HashSet::new();
    for _ in 0..2 {
        let o = ea.recv_skip_ping();
        assert_eq!(o["type"], "order");
        let id = o["id"].as_str().expect("id").to_owned();
        let price = if id == "c" { 1.0799 } else { 1.0803 };
        let volume = o["volume"].as_f64().expect("volume");
        let deal = term.execute(&id, volume, price);
        ea.send(&json!({"type":"result","id":id,"retcode":10009,"deal":deal.ticket,"volume":volume,"price":price}));
        got.insert(id);
    }
    assert_eq!(got, HashSet::from(["b".to_owned(), "c".to_owned()]));
    wait_metric(&d, "trade_count", 3.0);
    wait_metric(&d, "open_orders", 0.0);
    assert!((metric(&d, "position{symbol=\"EURUSD\"}") - 2.0).abs() < 1e-9, "1 + 2 - 1");
    assert_eq!(metric(&d, "broker_reconnects_total{venue=\"mt5\"}"), 1.0);
    for (id, n) in &term.executions {
        assert_eq!(*n, 1, "order {id} executed {n} times");
    }
    assert_eq!(term.executions.len(), 3);
    // The snapshot is idempotent: a third session sending the same history books nothing more.
    drop(ea);
    let mut ea = Ea::connect(&bridge);
    ea.authenticate(SECRET);
    ea.send(&term.snapshot());
    wait_metric(&d, "broker_reconnects_total{venue=\"mt5\"}", 2.0);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(metric(&d, "trade_count"), 3.0);
}

#[test]
fn bad_handshakes_garbage_and_long_lines_are_refused_and_counted() {
    let dir = TempDir::new("mt5-bad");
    let (d, bridge, _ing) = start(&dir, "");
    let errors = |kind: &str| metric(&d, &format!("venue_protocol_errors_total{{kind=\"{kind}\",venue=\"mt5\"}}"));

    // A wrong HMAC: told, closed, counted.
    let mut ea = Ea::connect(&bridge);
    let answer = ea.authenticate("not the secret");
    assert_eq!(answer, json!({"type":"error","error":"authentication failed"}));
    assert!(ea.until_closed().is_empty());
    assert_eq!(errors("auth_failed"), 1.0);

    // Garbage instead of an answer.
    let mut ea = Ea::connect(&bridge);
    assert_eq!(ea.recv()["type"], "hello");
    ea.send_raw(b"GET / HTTP/1.1\r\n\r\n");
    ea.until_closed();
    assert_eq!(errors("auth_failed"), 2.0);

    // No answer at all: closed after handshake_timeout (500 ms).
    let mut ea = Ea::connect(&bridge);
    let started = Instant::now();
    assert_eq!(ea.recv()["type"], "hello");
    ea.until_closed();
    assert!(started.elapsed() >= Duration::from_millis(450));
    wait_metric(&d, "venue_protocol_errors_total{kind=\"handshake_timeout\",venue=\"mt5\"}", 1.0);

    // An over-long line before authenticating.
    let mut ea = Ea::connect(&bridge);
    assert_eq!(ea.recv()["type"], "hello");
    ea.send_raw(&vec![b'x'; 5000]);
    ea.until_closed();
    assert_eq!(errors("line_too_long"), 1.0);
    assert_eq!(metric(&d, "broker_connected{venue=\"mt5\"}"), 0.0);

    // Authenticated: a bad line is answered and the session stays; an over-long one ends it.
    let mut ea = Ea::connect(&bridge);
    assert_eq!(ea.authenticate(SECRET)["type"], "welcome");
    ea.send(&Terminal::default().snapshot());
    ea.send_raw(b"{not json\n");
    assert_eq!(ea.recv_skip_ping()["type"], "error");
    ea.send(&json!({"type":"tick","symbol":"EURUSD","bid":-1.0,"ask":1.0}));
    assert_eq!(ea.recv_skip_ping()["type"], "error");
    ea.send(&json!({"type":"teleport"}));
    assert_eq!(ea.recv_skip_ping()["type"], "error");
    ea.tick(1.08);
    wait_metric(&d, "ticks_total", 1.0);
    assert_eq!(errors("bad_line"), 3.0);
    assert_eq!(metric(&d, "broker_connected{venue=\"mt5\"}"), 1.0);
    ea.send_raw(&vec![b'y'; 5000]);
    ea.until_closed();
    assert_eq!(errors("line_too_long"), 2.0);
    wait_metric(&d, "broker_connected{venue=\"mt5\"}", 0.0);
    // The secret never reaches the log.
    assert!(!d.log_file().contains(SECRET));
    assert!(!d.stderr().contains(SECRET));
}

#[test]
fn the_mt5_venue_needs_the_shared_secret() {
    let dir = TempDir::new("mt5-nosecret");
    let bridge = format!("127.0.0.1:{}", free_port());
    let (cfg, addr) =
        config_with(&dir, &format!("venue:\n  kind: mt5\n  mt5:\n    listen: {bridge}\nfeed:\n  kind: venue\n"));
    let mut d = Daemon::start(&dir, &cfg, &addr, &[]);
    let status = d.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(2));
    assert!(d.stderr().contains("venue.kind mt5 needs CONTROLLER_SHARED_SECRET"), "{}", d.stderr());
}

/// A client that keeps reopening unauthenticated connections as fast as it can never keeps the
/// Expert Advisor out, and what it causes is counted, not written line by line to the log.
#[test]
fn a_reconnect_flood_never_keeps_the_expert_advisor_out() {
    let dir = TempDir::new("mt5-flood");
    let (d, bridge, _ingress) = start(&dir, "");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flooders: Vec<_> = (0..2)
        .map(|_| {
            let (stop, addr) = (stop.clone(), bridge.clone());
            std::thread::spawn(move || {
                let mut held = std::collections::VecDeque::new();
                let (mut n, start) = (0u64, Instant::now());
                while !stop.load(std::sync::atomic::Ordering::Relaxed)
                    && start.elapsed() < Duration::from_secs(30)
                    && n < 200_000
                {
                    // A SYN dropped by a full backlog would stall a plain connect for a second.
                    let sa: std::net::SocketAddr = addr.parse().expect("addr");
                    if let Ok(s) = TcpStream::connect_timeout(&sa, Duration::from_millis(50)) {
                        held.push_back(s);
                        n += 1;
                    }
                    if held.len() > 64 {
                        held.pop_front();
                    }
                }
                n
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut welcomed = 0;
    // Like the real EA, a logon closed before its welcome is tried again (docs/mt5-bridge.md).
    let mut attempts = 0;
    for _ in 0..20 {
        let mut ok = false;
        for _ in 0..5 {
            attempts += 1;
            let mut ea = Ea::connect(&bridge);
            let mut line = String::new();
            if ea.r.read_line(&mut line).unwrap_or(0) == 0 {
                continue;
            }
            let hello: Value = serde_json::from_str(&line).expect("hello is JSON");
            let challenge = hello["challenge"].as_str().expect("challenge");
            let mac = mt5bot::support::auth::hmac_sha256(SECRET.as_bytes(), challenge.as_bytes());
            ea.send(&json!({"type": "auth", "hmac": mt5bot::support::encoding::hex(&mac), "login": 1234, "terminal": "sim"}));
            line.clear();
            if ea.r.read_line(&mut line).unwrap_or(0) > 0 && line.contains("welcome") {
                ok = true;
                break;
            }
        }
        assert!(ok, "the EA did not get in within 5 attempts during the flood");
        welcomed += 1;
        std::thread::sleep(Duration::from_millis(150));
    }
    eprintln!("20 logons took {attempts} attempts");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let floods: u64 = flooders.into_iter().map(|f| f.join().expect("flooder")).sum();
    eprintln!("the EA got in {welcomed} of 20 times while {floods} unauthenticated connections were opened");
    assert_eq!(welcomed, 20);
    assert!(floods > 1000, "the flood was real: {floods} connections");
    assert!(metric(&d, "venue_protocol_errors_total{kind=\"handshake_evicted\",venue=\"mt5\"}") >= 1.0);
    let log = d.log_file();
    let unauth = log.lines().filter(|l| l.contains("unauthenticated connection")).count();
    assert!(unauth <= 10, "{unauth} log lines about unauthenticated connections: they are rate-limited");
    assert!(log.len() < 256 * 1024, "the log grew to {} bytes during the flood", log.len());
}

/// A simulated terminal that executes every market order at once, in a thread, reconnecting
/// whenever mt5bot goes away; its deals outlive every connection (the terminal's history).
fn run_terminal(
    bridge: String,
    term: std::sync::Arc<std::sync::Mutex<Terminal>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use std::sync::atomic::Ordering;
    let mut bid = 1.08;
    while !stop.load(Ordering::Relaxed) {
        let Ok(w) = TcpStream::connect(&bridge) else {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        w.set_read_timeout(Some(Duration::from_millis(50))).expect("timeout");
        let r = BufReader::new(w.try_clone().expect("clone"));
        let mut ea = Ea { w, r };
        let mut line = String::new();
        // The handshake, then the snapshot of the terminal's history.
        let Ok(n) = ea.r.read_line(&mut line) else { continue };
        if n == 0 {
            continue;
        }
        let hello: Value = serde_json::from_str(&line).expect("hello");
        let challenge = hello["challenge"].as_str().expect("challenge");
        let mac = mt5bot::support::auth::hmac_sha256(SECRET.as_bytes(), challenge.as_bytes());
        ea.send(
            &json!({"type": "auth", "hmac": mt5bot::support::encoding::hex(&mac), "login": 1234, "terminal": "sim"}),
        );
        let snapshot = term.lock().expect("terminal").snapshot();
        if ea.w.write_all(format!("{snapshot}\n").as_bytes()).is_err() {
            continue;
        }
        let mut last_tick = Instant::now() - Duration::from_secs(1);
        loop {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            if last_tick.elapsed() > Duration::from_millis(20) {
                bid += 0.00001;
                let t = json!({"type": "tick", "symbol": "EURUSD", "bid": bid, "ask": bid + 0.0002, "time_msc": 1});
                if ea.w.write_all(format!("{t}\n").as_bytes()).is_err() {
                    break;
                }
                last_tick = Instant::now();
            }
            line.clear();
            match ea.r.read_line(&mut line) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => continue,
                Err(_) => break,
            }
            let Ok(m) = serde_json::from_str::<Value>(&line) else { break };
            match m["type"].as_str() {
                Some("ping") => ea.send(&json!({"type": "pong"})),
                Some("order") => {
                    let id = m["id"].as_str().expect("id").to_owned();
                    let volume = m["volume"].as_f64().expect("volume");
                    let side = m["type_order"].as_str().unwrap_or("buy").to_owned();
                    let deal = term.lock().expect("terminal").execute_side(&id, volume, bid + 0.0002, &side);
                    let result = json!({"type":"result","id":id,"retcode":10009,"deal":deal.ticket,"volume":volume,"price":deal.price});
                    if ea.w.write_all(format!("{result}\n").as_bytes()).is_err() {
                        break;
                    }
                }
                _ => {}
            }
        }
    }
}

/// SIGKILLs mt5bot at seeded random moments while an at-least-once client sends market orders and
/// the simulated terminal executes them: no order executes twice, every `queued` id executes once
/// or is refused with a logged reason, and the books agree with the terminal's deals. Seeded:
/// `MT5BOT_KILL_SEEDS=7,8` replays given schedules; CI runs the default seeds (43 found a fill
/// booked twice once).
#[test]
fn random_sigkills_mid_order_never_duplicate_or_lose_an_order() {
    let seeds: Vec<u64> = std::env::var("MT5BOT_KILL_SEEDS")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![17, 43]);
    for seed in seeds {
        mt5_kill_rounds(seed);
    }
}

/// A market order line of the at-least-once client: a third of the ids sell.
fn market_line(prefix: &str, id: usize) -> String {
    let side = if id % 3 == 0 { "sell" } else { "buy" };
    format!("{{\"id\":\"{prefix}-{id}\",\"symbol\":\"EURUSD\",\"side\":\"{side}\",\"qty\":0.01,\"type\":\"market\"}}\n")
}

fn mt5_kill_rounds(seed: u64) {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let dir = TempDir::new(&format!("mt5-random-kill-{seed}"));
    let bridge = format!("127.0.0.1:{}", free_port());
    let ing = format!("127.0.0.1:{}", free_port());
    let (cfg, addr) = config_with(
        &dir,
        &format!(
            "venue:\n  kind: mt5\n  mt5:\n    listen: {bridge}\n\
             feed:\n  kind: venue\n\
             model:\n  threshold_bps: 10000\n\
             queue:\n  max_wait: 20s\n\
             risk:\n  max_orders_per_second: 100000\n  max_position: 1000000\n  max_notional: 1000000000\n\
             ingress:\n  enabled: true\n  listen: {ing}\n\
             checkpoint:\n  interval: 300ms\n"
        ),
    );
    let k = mt5bot::support::encoding::base64(&[9u8; 32]);
    let env = [("CONTROLLER_SHARED_SECRET", SECRET), ("CHECKPOINT_AES_KEY", k.as_str())];
    let mut bot = Daemon::start(&dir, &cfg, &addr, &env);
    bot.wait_metrics(Duration::from_secs(10));

    let term = Arc::new(Mutex::new(Terminal::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let ea = {
        let (bridge, term, stop) = (bridge.clone(), term.clone(), stop.clone());
        std::thread::spawn(move || run_terminal(bridge, term, stop))
    };
    wait_metric(&bot, "broker_connected{venue=\"mt5\"}", 1.0);

    // The at-least-once client: ids c-0, c-1, ...; after a reconnect the last 8 queued ids are
    // repeated and must be refused as duplicates.
    let client_stop = Arc::new(AtomicBool::new(false));
    let client = {
        let (ing, stop) = (ing.clone(), client_stop.clone());
        std::thread::spawn(move || at_least_once_client(ing, "c", stop, Duration::from_millis(2), market_line))
    };
    let mut schedule = Vec::new();
    for _ in 0..5 {
        let wait = rng.between(150, 849);
        schedule.push(wait);
        std::thread::sleep(Duration::from_millis(wait));
        bot.kill_and_restart(&dir, &cfg, &env);
    }
    std::thread::sleep(Duration::from_millis(300));
    client_stop.store(true, Ordering::Relaxed);
    let seen = client.join().expect("client");
    let (queued, twice) = (seen.queued, seen.queued_twice);
    wait_metric(&bot, "broker_connected{venue=\"mt5\"}", 1.0);
    let settled = bot.settle(Duration::from_secs(20));
    let log = bot.log_file();
    let context = format!("seed {seed}, kills after {schedule:?} ms");
    assert_eq!(settled, (0.0, 0.0), "queued or in flight at the end: {context}\n{log}");
    assert!(queued.len() > 100, "the client got going: {}", queued.len());
    assert!(twice.is_empty(), "ids answered queued twice: {twice:?}; {context}");
    let t = term.lock().expect("terminal");
    let dup: Vec<_> = t.executions.iter().filter(|(_, &n)| n > 1).collect();
    assert!(dup.is_empty(), "orders executed twice: {dup:?}; {context}");
    let lost: Vec<usize> = queued
        .iter()
        .copied()
        .filter(|n| !t.executions.contains_key(&format!("c-{n}")))
        .filter(|n| !log.contains(&format!("order c-{n} never reached the terminal")))
        .collect();
    assert!(lost.is_empty(), "queued and neither executed nor refused: {lost:?}; {context}");
    let net: f64 = t
        .deals
        .iter()
        .map(|d| {
            let n: usize = d.id.strip_prefix("c-").and_then(|n| n.parse().ok()).expect("an id");
            if n % 3 == 0 {
                -d.volume
            } else {
                d.volume
            }
        })
        .sum();
    let position = metric(&bot, "position{symbol=\"EURUSD\"}");
    assert!((position - net).abs() < 1e-6, "books {position} vs terminal {net}; {context}");
    eprintln!("seed {seed}: kills after {schedule:?} ms; {} ids queued, {} executed", queued.len(), t.executions.len());
    drop(t);
    stop.store(true, Ordering::Relaxed);
    bot.signal("TERM");
    assert!(bot.wait_exit(Duration::from_secs(10)).success());
    ea.join().expect("terminal thread");
}

/// A pending order the terminal ends on its own (the broker expires it, the user cancels it in the
/// terminal, the trade server rejects it after placing it) leaves the books when the EA says so:
/// no longer counted in flight or in the exposure, its fills booked first, never sent again.
#[test]
fn an_order_the_terminal_ends_leaves_the_books_with_its_deals_booked() {
    let dir = TempDir::new("mt5-ended");
    let (d, mut ea, ing) = synced(&dir);
    let (mut iw, mut ir) = ingress(&ing);
    let ended = |state: &str| metric(&d, &format!("venue_orders_ended_total{{state=\"{state}\",venue=\"mt5\"}}"));
    let place = |ea: &mut Ea, iw: &mut TcpStream, ir: &mut BufReader<TcpStream>, id: &str| {
        signal(iw, ir, id, "buy", 1.0, "limit");
        assert_eq!(ea.recv_skip_ping()["id"], id);
        ea.send(&json!({"type":"result","id":id,"retcode":10008,"deal":0,"order":900,"volume":1.0,"price":1.08}));
    };

    place(&mut ea, &mut iw, &mut ir, "x1");
    wait_metric(&d, "open_orders", 1.0);
    ea.send(&json!({"type":"order_closed","id":"x1","order":900,"state":"expired","volume_filled":0.0}));
    wait_metric(&d, "open_orders", 0.0);
    assert_eq!((ended("expired"), metric(&d, "trade_count")), (1.0, 0.0));

    // Cancelled after a partial fill whose deal the EA reports after the order's end: the order
    // stays until that deal is booked, then leaves with the rest cancelled.
    place(&mut ea, &mut iw, &mut ir, "x2");
    ea.send(&json!({"type":"order_closed","id":"x2","order":901,"state":"canceled","volume_filled":0.4}));
    ea.tick(1.0801);
    wait_metric(&d, "ticks_total", 2.0);
    assert_eq!(metric(&d, "open_orders"), 1.0, "its deal is still to come");
    ea.send(&json!({"type":"deal","id":"x2","deal":9101,"volume":0.4,"price":1.08}));
    wait_metric(&d, "open_orders", 0.0);
    assert_eq!(metric(&d, "trade_count"), 1.0);
    assert!((metric(&d, "position{symbol=\"EURUSD\"}") - 0.4).abs() < 1e-9);

    // Rejected after it was placed: a refusal.
    place(&mut ea, &mut iw, &mut ir, "x3");
    ea.send(&json!({"type":"order_closed","id":"x3","order":902,"state":"rejected","volume_filled":0.0}));
    wait_metric(&d, "orders_rejected_total", 1.0);
    wait_metric(&d, "open_orders", 0.0);
    assert_eq!((ended("canceled"), ended("rejected")), (1.0, 1.0));

    // The exposure of the ended orders is released: the full position limit is there again.
    signal(&mut iw, &mut ir, "x4", "buy", 99.0, "market");
    assert_eq!(ea.recv_skip_ping()["id"], "x4");

    // Bad or repeated messages book nothing.
    ea.send(&json!({"type":"order_closed","id":"x1","order":900,"state":"expired","volume_filled":0.0}));
    ea.send(&json!({"type":"order_closed","id":"x4","state":"gone","volume_filled":0.0}));
    ea.send(&json!({"type":"order_closed","id":"x4","state":"expired"}));
    ea.send(&json!({"type":"order_closed","id":"x4","state":"expired","volume_filled":-1}));
    wait_metric(&d, "venue_protocol_errors_total{kind=\"bad_line\",venue=\"mt5\"}", 3.0);
    assert_eq!((ended("expired"), metric(&d, "open_orders")), (1.0, 1.0), "x4 is still in flight");
}

/// An order that ended at the terminal while no session was up is settled from the snapshot's
/// history as it ended there, not taken for one the terminal never saw and sent again.
#[test]
fn an_order_that_ended_while_the_terminal_was_away_is_not_sent_again() {
    let dir = TempDir::new("mt5-ended-away");
    let (d, bridge, ing) = start(&dir, "");
    let mut term = Terminal::default();
    let mut ea = Ea::connect(&bridge);
    ea.authenticate(SECRET);
    ea.send(&term.snapshot());
    ea.tick(1.08);
    wait_metric(&d, "ticks_total", 1.0);
    let (mut iw, mut ir) = ingress(&ing);
    for id in ["h1", "h2"] {
        signal(&mut iw, &mut ir, id, "buy", 1.0, "limit");
        assert_eq!(ea.recv_skip_ping()["id"], id);
        ea.send(&json!({"type":"result","id":id,"retcode":10008,"deal":0,"order":900,"volume":1.0,"price":1.08}));
    }
    wait_metric(&d, "open_orders", 2.0);
    drop(ea);
    wait_metric(&d, "broker_connected{venue=\"mt5\"}", 0.0);
    // Meanwhile the broker expires h1, and h2 fills 0.25 before the user cancels it.
    term.ended.push(("h1".into(), "expired", 0.0));
    term.execute("h2", 0.25, 1.0795);
    term.ended.push(("h2".into(), "canceled", 0.25));

    let mut ea = Ea::connect(&bridge);
    ea.authenticate(SECRET);
    ea.send(&term.snapshot());
    wait_metric(&d, "open_orders", 0.0);
    ea.no_order_for(Duration::from_millis(600));
    assert_eq!(metric(&d, "trade_count"), 1.0);
    assert!((metric(&d, "position{symbol=\"EURUSD\"}") - 0.25).abs() < 1e-9);
    assert_eq!(metric(&d, "venue_orders_ended_total{state=\"expired\",venue=\"mt5\"}"), 1.0);
    assert_eq!(term.executions.len(), 1);
}

/// A broker that rewrites order comments: the EA names each snapshot entry by mt5bot's id from its
/// own ticket map (`id`) beside the server's comment, and mt5bot reconciles by that id: an
/// executed order is booked, a resting one stays in flight, an ended one is settled, and none is
/// taken for an order the terminal never saw and sent again.
#[test]
fn a_broker_that_rewrites_comments_is_reconciled_by_the_eas_ids() {
    let dir = TempDir::new("mt5-rewritten");
    let (d, bridge, ing) = start(&dir, "");
    let mut term = Terminal { rewrites_comments: true, ..Terminal::default() };
    let mut ea = Ea::connect(&bridge);
    ea.authenticate(SECRET);
    ea.send(&term.snapshot());
    ea.tick(1.08);
    wait_metric(&d, "ticks_total", 1.0);
    let (mut iw, mut ir) = ingress(&ing);
    signal(&mut iw, &mut ir, "rw-done", "buy", 1.0, "market");
    assert_eq!(ea.recv_skip_ping()["id"], "rw-done");
    signal(&mut iw, &mut ir, "rw-rest", "buy", 1.0, "limit");
    assert_eq!(ea.recv_skip_ping()["id"], "rw-rest");
    signal(&mut iw, &mut ir, "rw-gone", "buy", 1.0, "limit");
    assert_eq!(ea.recv_skip_ping()["id"], "rw-gone");
    // The connection drops before any result: one executed, one resting, one expired.
    term.execute("rw-done", 1.0, 1.0802);
    term.resting.push("rw-rest".into());
    term.ended.push(("rw-gone".into(), "expired", 0.0));
    drop(ea);
    wait_metric(&d, "broker_connected{venue=\"mt5\"}", 0.0);

    let mut ea = Ea::connect(&bridge);
    ea.authenticate(SECRET);
    let snapshot = term.snapshot();
    assert!(snapshot.to_string().contains("broker #"), "the comments are the broker's: {snapshot}");
    ea.send(&snapshot);
    wait_metric(&d, "trade_count", 1.0);
    wait_metric(&d, "open_orders", 1.0);
    ea.no_order_for(Duration::from_millis(600));
    assert!((metric(&d, "position{symbol=\"EURUSD\"}") - 1.0).abs() < 1e-9);
    assert_eq!(term.executions.len(), 1);
}

/// Deals reported before their order's result (OnTradeTransaction may run before OrderSend
/// returns): each deal ticket books once, the result repeating the first books nothing more, and
/// the order leaves the books when filled.
#[test]
fn deals_before_their_result_book_once_each() {
    let dir = TempDir::new("mt5-deals-first");
    let (d, mut ea, ing) = synced(&dir);
    let (mut iw, mut ir) = ingress(&ing);
    signal(&mut iw, &mut ir, "db1", "buy", 1.0, "market");
    assert_eq!(ea.recv_skip_ping()["id"], "db1");
    ea.send(&json!({"type":"deal","id":"db1","deal":9201,"volume":0.4,"price":1.08}));
    ea.send(&json!({"type":"deal","id":"db1","deal":9202,"volume":0.6,"price":1.0801}));
    ea.send(&json!({"type":"result","id":"db1","retcode":10009,"deal":9201,"order":71,"volume":0.4,"price":1.08}));
    ea.send(&json!({"type":"deal","id":"db1","deal":9202,"volume":0.6,"price":1.0801}));
    wait_metric(&d, "trade_count", 2.0);
    ea.tick(1.0802);
    wait_metric(&d, "ticks_total", 2.0);
    assert_eq!(metric(&d, "trade_count"), 2.0, "two deal tickets, two fills");
    assert!((metric(&d, "position{symbol=\"EURUSD\"}") - 1.0).abs() < 1e-9);
    assert_eq!(metric(&d, "open_orders"), 0.0);
}

/// The account's margin mode from the EA's `auth`: a hedging account, where an order against a
/// position opens a second one, is shown (`venue_hedging_account` 1, an error in the log at every
/// logon) until a netting account logs on.
#[test]
fn a_hedging_account_is_shown_and_logged_at_logon() {
    let dir = TempDir::new("mt5-hedging");
    let (d, bridge, _) = start(&dir, "");
    let logon = |mode: &str| {
        let mut ea = Ea::connect(&bridge);
        let hello = ea.recv();
        let challenge = hello["challenge"].as_str().expect("challenge").to_owned();
        let mac = mt5bot::support::auth::hmac_sha256(SECRET.as_bytes(), challenge.as_bytes());
        let hmac = mt5bot::support::encoding::hex(&mac);
        ea.send(&json!({"type": "auth", "hmac": hmac, "login": 1, "terminal": "sim", "margin_mode": mode}));
        assert_eq!(ea.recv()["type"], "welcome");
        ea.send(&Terminal::default().snapshot());
        ea
    };
    assert_eq!(metric(&d, "venue_hedging_account{venue=\"mt5\"}"), 0.0);
    let ea = logon("hedging");
    wait_metric(&d, "venue_hedging_account{venue=\"mt5\"}", 1.0);
    let log = wait_for("the hedging error in the log", Duration::from_secs(5), || {
        let l = d.log_file();
        l.contains("is a hedging account").then_some(l)
    });
    let line = log.lines().find(|l| l.contains("is a hedging account")).unwrap_or_default();
    assert!(line.contains("\"level\":\"ERROR\""), "{line}");
    drop(ea);
    let _ea = logon("netting");
    wait_metric(&d, "venue_hedging_account{venue=\"mt5\"}", 0.0);
}

/// A hedging account as docs/mt5-bridge.md ("Hedging accounts") has the Expert Advisor keep it:
/// positions per ticket; a market order closes mt5bot's opposite positions, oldest first, each
/// close a deal of the order reported at once, and opens only what is left.
#[derive(Default)]
struct HedgingAccount {
    /// Open positions, oldest first: ticket, `buy` or `sell`, volume.
    positions: Vec<(u64, &'static str, f64)>,
    next: u64,
}

impl HedgingAccount {
    /// Executes market order `id` as the shipped EA does; the lines it sends, the `result` last.
    /// With `refuse_open` the trade server refuses a new position (10019, no money).
    fn execute(&mut self, id: &str, side: &'static str, volume: f64, price: f64, refuse_open: bool) -> Vec<Value> {
        let opposite = if side == "buy" { "sell" } else { "buy" };
        let (mut out, mut left, mut last) = (Vec::new(), volume, None);
        while left > 1e-9 {
            let Some(i) = self.positions.iter().position(|p| p.1 == opposite) else { break };
            let take = left.min(self.positions[i].2);
            self.positions[i].2 -= take;
            if self.positions[i].2 < 1e-9 {
                self.positions.remove(i);
            }
            left -= take;
            self.next += 1;
            let deal = 70_000 + self.next;
            out.push(json!({"type": "deal", "id": id, "deal": deal, "volume": take, "price": price}));
            last = Some((deal, take));
        }
        let result = |code: u32, (deal, vol): (u64, f64), comment: &str| json!({"type": "result", "id": id, "retcode": code, "deal": deal, "order": deal, "volume": vol, "price": price, "comment": comment});
        if left < 1e-9 {
            out.push(result(10009, last.expect("a close"), "closed by ticket"));
        } else if refuse_open {
            out.push(match last {
                Some(l) => result(10010, l, "opening the rest refused: 10019 No money"),
                None => result(10019, (0, 0.0), "No money"),
            });
        } else {
            self.next += 1;
            let deal = 70_000 + self.next;
            self.positions.push((deal, side, left));
            out.push(result(10009, (deal, left), "Request executed"));
        }
        out
    }

    /// Buys less sells.
    fn net(&self) -> f64 {
        self.positions.iter().map(|p| if p.1 == "sell" { -p.2 } else { p.2 }).sum()
    }

    fn snapshot_positions(&self) -> Vec<Value> {
        self.positions.iter().map(|p| json!({"ticket": p.0, "symbol": "EURUSD", "volume": p.2, "type": p.1})).collect()
    }
}

/// On a hedging account whose EA closes positions by ticket (`closes_by_ticket`), an order
/// against mt5bot's position closes it, oldest ticket first, however many deals that takes: each
/// deal books once, the books follow the account's net, and the account never holds both sides.
/// A close run cut short (no money to open the rest) books what closed and cancels the rest. The
/// snapshot's positions are compared with the books at each logon: equal, nothing is said; apart,
/// a warning and `venue_position`.
#[test]
fn a_hedging_account_is_kept_net_by_closing_positions_by_ticket() {
    let dir = TempDir::new("mt5-hedging-net");
    let (d, bridge, ing) = start(&dir, "");
    let mut ea = Ea::connect(&bridge);
    let welcome = ea.authenticate_with(SECRET, json!({"margin_mode": "hedging", "closes_by_ticket": true}));
    assert_eq!(welcome["type"], "welcome");
    ea.send(&Terminal::default().snapshot());
    wait_metric(&d, "broker_connected{venue=\"mt5\"}", 1.0);
    assert_eq!(metric(&d, "venue_hedging_account{venue=\"mt5\"}"), 0.0, "a hedging account kept net is no alarm");
    wait_for("the hedging line in the log", Duration::from_secs(5), || {
        d.log_file().contains("closes mt5bot's positions by ticket").then_some(())
    });
    ea.tick(1.0800);
    wait_metric(&d, "ticks_total", 1.0);

    let mut account = HedgingAccount::default();
    let (mut iw, mut ir) = ingress(&ing);
    let mut trades = 0.0;
    for (id, side, qty, refuse_open, deals) in [
        ("h1", "buy", 0.3, false, 1.0),
        ("h2", "buy", 0.2, false, 1.0),
        // closes h1's 0.3 whole and 0.1 of h2's 0.2: two deals
        ("h3", "sell", 0.4, false, 2.0),
        // closes the last 0.1; opening a 0.4 short is refused
        ("h4", "sell", 0.5, true, 1.0),
        ("h5", "sell", 0.2, false, 1.0),
        ("h6", "buy", 0.5, false, 2.0),
    ] {
        signal(&mut iw, &mut ir, id, side, qty, "market");
        let order = ea.recv_skip_ping();
        assert_eq!((order["id"].as_str(), order["type_order"].as_str()), (Some(id), Some(side)), "{order}");
        assert!((order["volume"].as_f64().expect("volume") - qty).abs() < 1e-9, "{order}");
        for line in account.execute(id, side, qty, 1.0801, refuse_open) {
            ea.send(&line);
        }
        trades += deals;
        wait_metric(&d, "trade_count", trades);
        let sides: HashSet<&str> = account.positions.iter().map(|p| p.1).collect();
        assert!(sides.len() <= 1, "the account holds both sides after {id}: {:?}", account.positions);
        ea.tick(1.0800);
        let books = wait_for("the books to follow the account", Duration::from_secs(5), || {
            let p = metric(&d, "position{symbol=\"EURUSD\"}");
            ((p - account.net()).abs() < 1e-9).then_some(p)
        });
        assert!((books - account.net()).abs() < 1e-9);
        wait_metric(&d, "open_orders", 0.0);
    }
    assert_eq!(account.positions.len(), 1, "{:?}", account.positions);
    assert!((account.net() - 0.3).abs() < 1e-9, "{:?}", account.positions);

    // A new logon: the account's positions (per ticket) net to the books, nothing is said.
    drop(ea);
    let mut ea = Ea::connect(&bridge);
    ea.authenticate_with(SECRET, json!({"margin_mode": "hedging", "closes_by_ticket": true}));
    let mut snap = Terminal::default().snapshot();
    snap["positions"] = Value::from(account.snapshot_positions());
    ea.send(&snap);
    wait_metric(&d, "venue_position{symbol=\"EURUSD\",venue=\"mt5\"}", 0.3);
    assert!(!d.log_file().contains("settle the difference by hand"), "{}", d.log_file());
    // Positions the books do not hold (opened in the terminal with mt5bot's magic): a warning.
    drop(ea);
    let mut ea = Ea::connect(&bridge);
    ea.authenticate_with(SECRET, json!({"margin_mode": "hedging", "closes_by_ticket": true}));
    snap["positions"] = json!([{"ticket": 1, "symbol": "EURUSD", "volume": 0.3, "type": "buy"},
                               {"ticket": 2, "symbol": "EURUSD", "volume": 0.5, "type": "buy"}]);
    ea.send(&snap);
    wait_metric(&d, "venue_position{symbol=\"EURUSD\",venue=\"mt5\"}", 0.8);
    let log = wait_for("the difference in the log", Duration::from_secs(5), || {
        let l = d.log_file();
        l.contains("settle the difference by hand").then_some(l)
    });
    let line = log.lines().find(|l| l.contains("settle the difference by hand")).unwrap_or_default();
    assert!(line.contains("net position of 0.8") && line.contains("the books 0.3"), "{line}");
    // An entry without its fields spoils the comparison, not the snapshot: the session syncs.
    drop(ea);
    let mut ea = Ea::connect(&bridge);
    ea.authenticate_with(SECRET, json!({"margin_mode": "hedging", "closes_by_ticket": true}));
    snap["positions"] = json!([{"ticket": 3}]);
    ea.send(&snap);
    wait_for("the positions left uncompared", Duration::from_secs(5), || {
        d.log_file().contains("positions not compared").then_some(())
    });
    signal(&mut iw, &mut ir, "h7", "buy", 0.1, "market");
    assert_eq!(ea.recv_skip_ping()["id"], "h7", "the session synced");
}

/// A terminal that speaks TLS: OpenSSL's `s_client` (another TLS stack than mt5bot's rustls, as
/// the terminal's is), checking the chain to the test CA and the address; lines in and out
/// through its stdin and stdout.
struct TlsTerminal {
    child: std::process::Child,
    lines: mpsc::Receiver<String>,
}

impl TlsTerminal {
    fn connect(addr: &str, ca: &std::path::Path) -> TlsTerminal {
        let mut child = Command::new(require("openssl"))
            .args([
                "s_client",
                "-quiet",
                "-verify_return_error",
                "-verify_ip",
                "127.0.0.1",
                "-connect",
                addr,
                "-CAfile",
            ])
            .arg(ca)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl s_client");
        let out = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        TlsTerminal { child, lines }
    }

    fn recv(&self) -> Value {
        let line = self.lines.recv_timeout(Duration::from_secs(10)).expect("a line from mt5bot over TLS");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"))
    }

    fn recv_skip_ping(&mut self) -> Value {
        loop {
            let m = self.recv();
            if m["type"] != "ping" {
                return m;
            }
            self.send(&json!({"type": "pong"}));
        }
    }

    fn send(&mut self, v: &Value) {
        let stdin = self.child.stdin.as_mut().expect("stdin");
        stdin.write_all(format!("{v}\n").as_bytes()).expect("to s_client");
        stdin.flush().expect("flush");
    }
}

impl Drop for TlsTerminal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `venue.mt5.tls`: a terminal speaking TLS logs on, gets its welcome and trades; the log gives
/// the certificate's SHA-1 thumbprint as OpenSSL computes it (the Expert Advisor pins it); a
/// plain TCP client on the TLS port is refused and counted, and the terminal keeps trading.
#[test]
fn the_bridge_speaks_tls_when_venue_mt5_tls_is_set() {
    let dir = TempDir::new("mt5-tls");
    let certs = Certs::make(&dir);
    let tls = format!("    tls:\n      cert_file: {}\n      key_file: {}\n", certs.cert.display(), certs.key.display());
    let (d, bridge, ing) = start_mt5(&dir, &tls, "");
    // Idle connections by the dozen, one stalled a few bytes into its ClientHello: evicted or
    // timed out, never in the way of the terminal that comes after them.
    let mut idle: Vec<TcpStream> = (0..40).map(|_| TcpStream::connect(&bridge).expect("idle")).collect();
    idle[0].write_all(&[0x16, 0x03, 0x01, 0x02]).expect("a partial ClientHello");
    let mut ea = TlsTerminal::connect(&bridge, &certs.ca);
    let hello = ea.recv();
    assert_eq!(hello["type"], "hello", "{hello}");
    let challenge = hello["challenge"].as_str().expect("challenge");
    let mac =
        mt5bot::support::encoding::hex(&mt5bot::support::auth::hmac_sha256(SECRET.as_bytes(), challenge.as_bytes()));
    ea.send(&json!({"type": "auth", "hmac": mac, "login": 1, "terminal": "sim"}));
    assert_eq!(ea.recv()["type"], "welcome");
    ea.send(&Terminal::default().snapshot());
    wait_metric(&d, "broker_connected{venue=\"mt5\"}", 1.0);
    wait_for("the idle connections closed", Duration::from_secs(10), || {
        let kind = |k: &str| metric(&d, &format!("venue_protocol_errors_total{{kind=\"{k}\",venue=\"mt5\"}}"));
        (kind("handshake_evicted") + kind("handshake_timeout") >= 40.0).then_some(())
    });
    drop(idle);

    // The thumbprint in the log is the certificate's SHA-1 as openssl has it.
    let fp = Command::new(require("openssl"))
        .args(["x509", "-noout", "-fingerprint", "-sha1", "-in"])
        .arg(&certs.cert)
        .output()
        .expect("openssl x509");
    let fp = String::from_utf8_lossy(&fp.stdout);
    let want: String = fp.split('=').nth(1).expect("a fingerprint").trim().replace(':', "");
    assert_eq!(want.len(), 40, "{fp}");
    assert!(d.log_file().contains(&format!("thumbprint {want}")), "{want} not in\n{}", d.log_file());

    // A client that does not speak TLS: refused, counted; the session stays up.
    let mut plain = TcpStream::connect(&bridge).expect("connect");
    plain.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let _ = plain.write_all(b"{\"type\":\"auth\",\"hmac\":\"00\"}\n");
    let mut buf = [0u8; 256];
    let n = plain.read(&mut buf).unwrap_or(0);
    assert!(!String::from_utf8_lossy(&buf[..n]).contains("hello"), "no plain text from a TLS listener");
    wait_metric(&d, "venue_protocol_errors_total{kind=\"tls_refused\",venue=\"mt5\"}", 1.0);
    assert_eq!(metric(&d, "broker_connected{venue=\"mt5\"}"), 1.0);

    ea.send(&json!({"type": "tick", "symbol": "EURUSD", "bid": 1.08, "ask": 1.0802, "time_msc": 1}));
    wait_metric(&d, "ticks_total", 1.0);
    let (mut iw, mut ir) = ingress(&ing);
    signal(&mut iw, &mut ir, "t1", "buy", 1.0, "market");
    let order = ea.recv_skip_ping();
    assert_eq!(order["id"], "t1", "{order}");
    ea.send(&json!({"type": "result", "id": "t1", "retcode": 10009, "deal": 5001, "order": 6001, "volume": 1.0, "price": 1.0802}));
    wait_metric(&d, "trade_count", 1.0);
}

/// The symbol's trade mode from the snapshot's specs (SYMBOL_TRADE_MODE): under `close_only` a
/// signal that would open or add is refused before an order is made, one that reduces goes out;
/// under `disabled` nothing goes out; a filling mode the symbol does not take is a warning.
#[test]
fn signals_the_symbols_trade_mode_does_not_let_through_are_refused() {
    let dir = TempDir::new("mt5-trade-mode");
    let (d, bridge, ing) = start(&dir, "");
    let spec = |mode: &str| json!({"EURUSD": {"digits": 5, "tick_size": 0.00001, "volume_min": 0.01, "volume_max": 50, "volume_step": 0.01, "trade_mode": mode, "filling": ["fok"]}});
    let logon = |snap: Value| {
        let mut ea = Ea::connect(&bridge);
        assert_eq!(ea.authenticate(SECRET)["type"], "welcome");
        ea.send(&snap);
        ea
    };
    let mut term = Terminal::default();
    let mut snap = term.snapshot();
    snap["specs"] = spec("full");
    let mut ea = logon(snap);
    wait_metric(&d, "broker_connected{venue=\"mt5\"}", 1.0);
    ea.tick(1.0800);
    wait_metric(&d, "ticks_total", 1.0);
    let (mut iw, mut ir) = ingress(&ing);
    signal(&mut iw, &mut ir, "m1", "buy", 1.0, "market");
    assert_eq!(ea.recv_skip_ping()["id"], "m1");
    let deal = term.execute("m1", 1.0, 1.0802);
    ea.send(&json!({"type": "result", "id": "m1", "retcode": 10009, "deal": deal.ticket, "order": 1, "volume": 1.0, "price": 1.0802}));
    wait_metric(&d, "position{symbol=\"EURUSD\"}", 1.0);
    let log = wait_for("the filling warning", Duration::from_secs(5), || {
        let l = d.log_file();
        l.contains("does not take venue.mt5.type_filling ioc").then_some(l)
    });
    assert!(log.contains("(it takes fok)"), "{log}");

    // A new logon whose specs bring `mode`, once the log says so.
    let relogon = |mut snap: Value, mode: &str, says: &str| {
        snap["specs"] = spec(mode);
        let mut ea = logon(snap);
        wait_for("the trade mode in the log", Duration::from_secs(5), || d.log_file().contains(says).then_some(()));
        ea.tick(1.0801);
        ea
    };
    let refused = |iw: &mut TcpStream, ir: &mut BufReader<TcpStream>, id: &str, side: &str, qty: f64| {
        signal(iw, ir, id, side, qty, "market");
        let late = late_refusal(ir);
        assert!(late.contains(&format!("\"{id}\"")) && late.contains("venue_rejected"), "{late}");
    };

    // The broker now lets the symbol only be closed.
    drop(ea);
    let mut ea = relogon(term.snapshot(), "close_only", "allows only closing positions in the symbol");
    refused(&mut iw, &mut ir, "m2", "buy", 0.5);
    signal(&mut iw, &mut ir, "m3", "sell", 0.5, "market");
    let o = ea.recv_skip_ping();
    assert_eq!(
        (o["id"].as_str(), o["type_order"].as_str()),
        (Some("m3"), Some("sell")),
        "a reducing order goes out: {o}"
    );
    let deal = term.execute_side("m3", 0.5, 1.0800, "sell");
    ea.send(&json!({"type": "result", "id": "m3", "retcode": 10009, "deal": deal.ticket, "order": 2, "volume": 0.5, "price": 1.08}));
    wait_metric(&d, "position{symbol=\"EURUSD\"}", 0.5);
    // Selling through zero would open a short: refused.
    refused(&mut iw, &mut ir, "m4", "sell", 1.0);

    // Disabled: not even a reducing order.
    drop(ea);
    let mut ea = relogon(term.snapshot(), "disabled", "has trading in the symbol disabled");
    refused(&mut iw, &mut ir, "m5", "sell", 0.5);
    ea.no_order_for(Duration::from_millis(300));
    assert_eq!(metric(&d, "orders_rejected_total"), 3.0);
    assert_eq!(metric(&d, "position{symbol=\"EURUSD\"}"), 0.5);
}

/// A bad `venue.mt5.tls` stops the start (exit 2) naming the setting, never showing a line of the
/// key: a key others may read, a certificate file holding none, a key file that is no key, a
/// missing file.
#[test]
fn a_bad_venue_mt5_tls_stops_the_start_and_never_shows_a_key() {
    let dir = TempDir::new("mt5-tls-bad");
    let certs = Certs::make(&dir);
    let key_text = std::fs::read_to_string(&certs.key).expect("key");
    let key_line = key_text.lines().nth(1).expect("a base64 line").to_owned();
    let copy = |from: &std::path::Path, to: &str, mode: u32| {
        std::fs::copy(from, dir.join(to)).expect("copy");
        std::fs::set_permissions(dir.join(to), std::os::unix::fs::PermissionsExt::from_mode(mode)).expect("chmod");
    };
    copy(&certs.key, "loose.key", 0o644);
    copy(&certs.ca, "not-a-key.pem", 0o600);
    for (cert, key, says) in [
        ("server.pem", "loose.key", "chmod 600"),
        ("server.key", "server.key", "no certificate"),
        ("server.pem", "not-a-key.pem", "no private key"),
        ("server.pem", "missing.key", "No such file"),
    ] {
        let (cfg, addr) = config_with(
            &dir,
            &format!(
                "venue:\n  kind: mt5\n  mt5:\n    listen: 127.0.0.1:{}\n    tls:\n      cert_file: {}\n      key_file: {}\n\
                 feed:\n  kind: venue\n",
                free_port(),
                dir.join(cert).display(),
                dir.join(key).display()
            ),
        );
        let mut d = Daemon::start(&dir, &cfg, &addr, &[("CONTROLLER_SHARED_SECRET", SECRET)]);
        let status = d.wait_exit(Duration::from_secs(10));
        let err = d.stderr();
        assert_eq!(status.code(), Some(2), "{cert} {key}: {err}");
        assert!(err.contains(says) && err.contains("venue.mt5.tls"), "{cert} {key}: {err}");
        assert!(!err.contains(&key_line), "{err}");
        // `config check` reads the files as the start does.
        let out = Command::new(BIN).args(["config", "check", "--config"]).arg(&cfg).output().expect("config check");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{cert} {key}: {err}");
        assert!(err.contains(says) && !err.contains(&key_line), "{err}");
    }
}
