//! An at-least-once ingress client and a seeded generator, for the tests that kill processes at
//! random moments (the FIX venue against QuickFIX, the MT5 bridge against its simulated terminal).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A small seeded generator (xorshift64*), so a failing kill schedule can be replayed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// What the at-least-once client saw.
#[derive(Default)]
pub struct ClientLog {
    /// Ids answered `queued`, in order.
    pub queued: Vec<usize>,
    /// Ids answered `queued` a second time (after a restart): the daemon had lost them.
    pub queued_twice: Vec<usize>,
    /// Ids refused after `queued`, with the reason.
    pub refused_late: Vec<(usize, String)>,
    pub reconnects: usize,
}

/// Sends `prefix-0..` (each line made by `order_line`) one every `pause` until `stop`, as an at-least-once client does: an id
/// without an answer is sent again on the next connection, and after every reconnect the last 8
/// ids answered `queued` are repeated (they must be refused as duplicates).
pub fn at_least_once_client(
    ingress: String,
    prefix: &'static str,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    pause: Duration,
    order_line: fn(&str, usize) -> String,
) -> ClientLog {
    use std::sync::atomic::Ordering;
    let mut log = ClientLog::default();
    let mut next = 0usize;
    let mut queued_set = std::collections::HashSet::new();
    let id_of = |v: &serde_json::Value| -> Option<usize> {
        v["id"].as_str()?.strip_prefix(prefix)?.strip_prefix('-')?.parse().ok()
    };
    'connection: while !stop.load(Ordering::Relaxed) {
        let Ok(mut w) = TcpStream::connect(&ingress) else {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        log.reconnects += 1;
        w.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        let mut r = BufReader::new(w.try_clone().expect("clone"));
        let repeats: Vec<usize> = log.queued.iter().rev().take(8).copied().collect();
        let mut todo: Vec<(usize, bool)> = repeats.into_iter().map(|n| (n, true)).collect();
        loop {
            if stop.load(Ordering::Relaxed) {
                break 'connection;
            }
            let (n, repeat) = todo.pop().unwrap_or((next, false));
            if w.write_all(order_line(prefix, n).as_bytes()).is_err() {
                continue 'connection;
            }
            // Answers to this id, with late refusals of earlier ones in between.
            loop {
                let mut line = String::new();
                match r.read_line(&mut line) {
                    Ok(0) | Err(_) => {
                        if repeat {
                            todo.push((n, true));
                        }
                        continue 'connection;
                    }
                    Ok(_) => {}
                }
                let v: serde_json::Value = serde_json::from_str(&line).expect("answers are JSON");
                let Some(id) = id_of(&v) else { panic!("answer without one of our ids: {line}") };
                if id != n {
                    assert_eq!(v["status"], "refused", "{line}");
                    log.refused_late.push((id, v["reason"].as_str().unwrap_or("?").to_owned()));
                    continue;
                }
                match v["status"].as_str() {
                    Some("queued") if queued_set.contains(&n) => log.queued_twice.push(n),
                    Some("queued") => {
                        queued_set.insert(n);
                        log.queued.push(n);
                    }
                    Some("refused") if v["reason"] == "duplicate" && (repeat || queued_set.contains(&n)) => {}
                    // A new id refused on the spot (e.g. the session down past max_wait): fine,
                    // the client was told.
                    Some("refused") => {}
                    _ => panic!("unexpected answer {line}"),
                }
                break;
            }
            if !repeat {
                next += 1;
            }
            std::thread::sleep(pause);
        }
    }
    log
}
