//! Stop-losses and take-profits resting at a FIX broker that holds stop orders
//! (`venue.fix44.native_stops`), against `tests/peers/fix44_stop_broker.cpp`: QuickFIX's own
//! acceptor (Debian's libquickfix-dev, validating every message with the FIX 4.4 data dictionary)
//! around a small book that rests stop and limit orders until the price, which the test moves,
//! reaches them. The QuickFIX executor example takes only limit orders and fills each at once, so
//! it cannot stand for such a broker; the stand-in does only what the FIX 4.4 specification says
//! of these messages, and says so in its header.

mod support;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use support::*;

/// The stop-holding broker on a free loopback port; its output (one line per order, cancel,
/// fill and status answer) in `broker.out`.
struct Broker {
    child: Child,
    stdin: ChildStdin,
    dir: PathBuf,
    port: u16,
}

impl Broker {
    fn start(dir: &TempDir, price: f64) -> Broker {
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/fix44_stop_broker.cpp");
        assert!(
            Path::new("/usr/include/quickfix/SocketAcceptor.h").exists(),
            "libquickfix-dev is not installed; run `make test` (or scripts/install-test-deps.sh)"
        );
        let exe = dir.join("fix44_stop_broker");
        let out = Command::new("g++")
            .args(["-std=c++14", "-O1", "-w", "-o"])
            .arg(&exe)
            .arg(&source)
            .args(["-lquickfix", "-lpthread"])
            .output()
            .expect("g++");
        assert!(out.status.success(), "g++ failed:\n{}", String::from_utf8_lossy(&out.stderr));
        let dictionary = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/contracts/fix44/FIX44.xml");
        let port = free_port();
        let cfg = dir.write(
            "broker.cfg",
            &format!(
                "[DEFAULT]\nConnectionType=acceptor\nSocketAcceptPort={port}\nSocketReuseAddress=Y\n\
                 StartTime=00:00:00\nEndTime=00:00:00\nFileStorePath={}\nFileLogPath={}\nUseDataDictionary=Y\n\
                 DataDictionary={}\nValidateFieldsOutOfOrder=Y\nValidateUserDefinedFields=Y\n\n\
                 [SESSION]\nBeginString=FIX.4.4\nSenderCompID=EXECUTOR\nTargetCompID=MT5BOT\nHeartBtInt=30\n",
                dir.join("broker-store").display(),
                dir.join("broker-log").display(),
                dictionary.display()
            ),
        );
        let mut child = Command::new(&exe)
            .arg(&cfg)
            .arg(price.to_string())
            .current_dir(dir.path())
            .stdin(Stdio::piped())
            .stdout(std::fs::File::create(dir.join("broker.out")).expect("broker.out"))
            .stderr(std::fs::File::create(dir.join("broker.err")).expect("broker.err"))
            .spawn()
            .expect("start the broker");
        let stdin = child.stdin.take().expect("stdin");
        let b = Broker { child, stdin, dir: dir.path().to_path_buf(), port };
        wait_for("the broker to listen", Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok().map(|_| ())
        });
        b
    }

    fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("broker.out")).unwrap_or_default().lines().map(str::to_owned).collect()
    }

    /// The broker's lines starting with `word`, split into words.
    fn said(&self, word: &str) -> Vec<Vec<String>> {
        self.lines()
            .iter()
            .filter(|l| l.starts_with(word))
            .map(|l| l.split_whitespace().map(str::to_owned).collect())
            .collect()
    }

    fn price(&mut self, p: f64) {
        writeln!(self.stdin, "PRICE {p}").expect("price");
        self.stdin.flush().expect("flush");
    }

    /// Every message the broker's QuickFIX session logged, as text.
    fn messages(&self) -> String {
        let mut text = String::new();
        for e in std::fs::read_dir(self.dir.join("broker-log")).into_iter().flatten().flatten() {
            let mut f = std::fs::File::open(e.path()).expect("log");
            let _ = f.read_to_string(&mut text);
        }
        text
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn metric(d: &Daemon, name: &str) -> f64 {
    let text = d.metrics();
    sample(&text, name).unwrap_or_else(|| panic!("{name} is not on /metrics:\n{text}"))
}

fn wait_metric(d: &Daemon, name: &str, want: f64) {
    wait_for(&format!("{name} = {want}\n{}", d.log_file()), Duration::from_secs(15), || {
        (metric(d, name) == want).then_some(())
    });
}

/// One ingress line; its answer.
fn send(ingress: &str, line: &str) -> String {
    use std::io::BufRead;
    let mut s = std::net::TcpStream::connect(ingress).expect("ingress");
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    s.write_all(format!("{line}\n").as_bytes()).expect("write");
    let mut answer = String::new();
    std::io::BufReader::new(s).read_line(&mut answer).expect("answer");
    answer
}

/// A long position's stop-loss and take-profit go to the broker as a resting stop and a resting
/// limit, good till cancelled; a SIGKILL and a restart adopt them instead of placing new ones;
/// the broker's stop fills when the price falls through it, mt5bot books it once and cancels the
/// take-profit, and never sends an exit of its own. No Reject from the strict dictionary.
#[test]
fn the_broker_holds_the_pair_across_a_sigkill_and_its_stop_closes_the_position_once() {
    let dir = TempDir::new("fix-native-stops");
    let mut broker = Broker::start(&dir, 1.08);
    let ingress = format!("127.0.0.1:{}", free_port());
    let (cfg, addr) = config_with(
        &dir,
        &format!(
            "venue:\n  kind: fix44\n  fix44:\n    native_stops: true\n    connect: 127.0.0.1:{}\n    \
             sender_comp_id: MT5BOT\n    target_comp_id: EXECUTOR\n    heartbeat_interval: 5s\n    \
             reconnect_min: 100ms\n    reconnect_max: 1s\n    state_dir: {}\n\
             model:\n  threshold_bps: 10000\n\
             risk:\n  max_position: 10\n\
             ingress:\n  enabled: true\n  listen: {ingress}\n\
             checkpoint:\n  path: {}\n  interval: 250ms\n",
            broker.port,
            dir.join("state").display(),
            dir.join("state/checkpoint.bin").display()
        ),
    );
    let key = mt5bot::support::encoding::base64(&[7u8; 32]);
    let env = [("CHECKPOINT_AES_KEY", key.as_str())];
    let mut d = Daemon::start(&dir, &cfg, &addr, &env);
    d.wait_metrics(Duration::from_secs(10));
    wait_metric(&d, "broker_connected{venue=\"fix44\"}", 1.0);
    // The synthetic feed marks EURUSD near 1.08: levels far from it, so only the broker acts.
    let answer =
        send(&ingress, r#"{"id":"entry","symbol":"EURUSD","side":"buy","qty":1,"type":"market","sl":0.5,"tp":2.0}"#);
    assert!(answer.contains("queued"), "{answer}");
    let resting = wait_for("the resting pair at the broker", Duration::from_secs(10), || {
        let orders = broker.said("ORDER");
        (orders.len() == 3).then_some(orders)
    });
    assert_eq!(resting[0][1], "entry");
    // ORDER id type side qty price stop tif: a sell stop at 0.5 and a sell limit at 2, both GTC.
    let stop = resting.iter().find(|o| o[2] == "3").expect("a stop order");
    let limit = resting.iter().find(|o| o[2] == "2").expect("a limit order");
    assert_eq!((stop[3].as_str(), stop[4].as_str(), stop[6].as_str(), stop[7].as_str()), ("2", "1", "0.50000", "1"));
    assert_eq!(
        (limit[3].as_str(), limit[4].as_str(), limit[5].as_str(), limit[7].as_str()),
        ("2", "1", "2.00000", "1")
    );
    let (stop_id, limit_id) = (stop[1].clone(), limit[1].clone());
    assert!(stop_id.contains("-rsl") && limit_id.contains("-rtp"), "{stop_id} {limit_id}");
    wait_metric(&d, "position{symbol=\"EURUSD\"}", 1.0);
    wait_metric(&d, "open_orders", 2.0);

    // SIGKILL, with the pair journaled (a checkpoint or two later), and a restart.
    std::thread::sleep(Duration::from_millis(600));
    d.kill_and_restart(&dir, &cfg, &env);
    wait_metric(&d, "broker_connected{venue=\"fix44\"}", 1.0);
    // Two once-a-second looks at the resting orders: the restored pair fits, nothing new goes out.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(broker.said("ORDER").len(), 3, "no new resting orders after the restart\n{}", d.log_file());
    assert_eq!(metric(&d, "position{symbol=\"EURUSD\"}"), 1.0);
    assert_eq!(metric(&d, "open_orders"), 2.0);

    // The price falls through the stop: the broker fills it, mt5bot books it and cancels the
    // take-profit.
    broker.price(0.49);
    wait_metric(&d, "position{symbol=\"EURUSD\"}", 0.0);
    wait_metric(&d, "open_orders", 0.0);
    wait_for("the take-profit's cancel at the broker", Duration::from_secs(10), || {
        broker.said("CANCEL").iter().any(|c| c[1] == limit_id && c[2] == "ok").then_some(())
    });
    assert_eq!(metric(&d, "protective_exits_total{kind=\"sl\"}"), 1.0);
    // The restarted process counts its own fills: the stop's, once (twice would leave -1).
    assert_eq!(metric(&d, "trade_count"), 1.0);
    let fills: Vec<String> = broker.said("FILL").iter().map(|f| f[1].clone()).collect();
    assert_eq!(fills, ["entry".to_owned(), stop_id.clone()], "{:?}", broker.lines());
    assert_eq!(broker.said("ORDER").len(), 3, "no exit of mt5bot's own: {:?}", broker.lines());
    assert!(broker.said("DUPLICATE").is_empty());
    // Nothing more rests for a flat position.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(broker.said("ORDER").len(), 3);
    let messages = broker.messages();
    assert!(!messages.contains("\u{1}35=3\u{1}"), "a session Reject from the broker:\n{messages}");
    assert!(messages.contains("\u{1}40=3\u{1}") && messages.contains("\u{1}99=0.5\u{1}"), "{messages}");
    d.signal("TERM");
    assert!(d.wait_exit(Duration::from_secs(10)).success(), "{}", d.stderr());
}
