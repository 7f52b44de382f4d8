//! Notifications to the operator (`notify:`): Telegram, Discord, Slack and any JSON webhook.
//!
//! Each sink has a thread of its own and a bounded channel in front of it. The engine offers each
//! notice to the channels without waiting ([`NoticeOutlets::offer`]); a full channel drops the
//! notice and counts it in `notify_dropped_total{sink}`. The thread formats the message, waits
//! `min_interval` after the last one, and posts it: a refusal for too many requests waits the
//! `retry_after` the service gives (Telegram's `parameters.retry_after`, Discord's `retry_after`,
//! `Retry-After` for Slack and webhooks); a network error or a 5xx backs off and tries again
//! (`notify_failures_total{sink}`); any other 4xx is a message the service will never take, so it
//! is dropped and counted. Fills within `notify.batch_fills` of the first go out as one message.
//!
//! The secrets (Telegram's bot token, the Discord and Slack webhook URLs, a webhook's header
//! values) come from the environment or `$CREDENTIALS_DIRECTORY`; no log line or error names
//! them.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::config::{NotifyConfig, NotifySinkConfig, NotifySinkKind};
use crate::domain::notice::{DaySummary, Notice, NoticeOutlet, NoticeOutlets};
use crate::domain::types::{Side, TradeRecord, TradingState};
use crate::secrets::Secret;
use crate::support::backoff::Backoff;
use crate::telemetry::metrics::Metrics;

/// What a message is about, for naming the bot and its symbols.
#[derive(Debug, Clone)]
pub struct Context {
    /// `mt5bot` or `mt5bot acct1/ewma`.
    pub bot: String,
    pub symbols: Vec<String>,
}

/// The running sinks.
#[derive(Debug)]
pub struct Notifier {
    threads: Vec<(String, JoinHandle<()>)>,
    stopping: Arc<AtomicBool>,
}

/// Starts a thread per sink; returns them and the outlets the engine (and the daemon) offer
/// notices to. `secret` reads a variable or credential by name.
pub fn spawn(
    cfg: &NotifyConfig,
    metrics: &Metrics,
    context: Context,
    secret: &dyn Fn(&str) -> Result<Option<Secret>, String>,
) -> Result<(Notifier, NoticeOutlets), String> {
    let stopping = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    let mut outlets = Vec::new();
    for s in &cfg.sinks {
        let target = Target::new(s, secret)?;
        let (tx, rx) = sync_channel(cfg.queue_capacity);
        let dropped = metrics.notify_dropped.with_label_values(&[&s.name]);
        let on_drop = {
            let dropped = dropped.clone();
            Arc::new(move || dropped.inc())
        };
        outlets.push(NoticeOutlet { tx, kinds: s.kinds, on_drop });
        let sink = Sink {
            name: s.name.clone(),
            target,
            agent: crate::support::http::agent("notify", cfg.timeout),
            min_interval: s.min_interval,
            batch: cfg.batch_fills,
            context: context.clone(),
            sent: metrics.notify_sent.with_label_values(&[&s.name]),
            failures: metrics.notify_failures.with_label_values(&[&s.name]),
            dropped,
            stopping: Arc::clone(&stopping),
            last_sent: None,
            held: VecDeque::new(),
        };
        let handle = std::thread::Builder::new()
            .name(format!("notify-{}", s.name))
            .spawn(move || sink.run(rx))
            .map_err(|e| format!("cannot start the notification thread for {}: {e}", s.name))?;
        threads.push((s.name.clone(), handle));
    }
    Ok((Notifier { threads, stopping }, NoticeOutlets::new(outlets)))
}

impl Notifier {
    /// Waits up to `grace` for each sink to deliver what it holds, once every outlet is dropped;
    /// past it, a sink whose service is down drops the rest (counted) instead of retrying.
    pub fn stop(self, grace: Duration) {
        let deadline = Instant::now() + grace;
        for (name, t) in self.threads {
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if !t.is_finished() {
                self.stopping.store(true, Ordering::Relaxed);
                log::warn!("notify: {name} has not delivered everything after {grace:?}; dropping the rest");
            }
            let _ = t.join();
        }
    }
}

/// Where and how one sink posts, with its secrets.
enum Target {
    Telegram { url: String, chat_id: String, token: Secret },
    Discord { url: Secret },
    Slack { url: Secret },
    Webhook { url: String, headers: Vec<(String, Secret)> },
}

impl Target {
    fn new(s: &NotifySinkConfig, secret: &dyn Fn(&str) -> Result<Option<Secret>, String>) -> Result<Self, String> {
        let need = |var: &str, what: &str| -> Result<Secret, String> {
            secret(var)?.ok_or_else(|| {
                format!(
                    "notify sink {}: {var} is not set (environment or $CREDENTIALS_DIRECTORY); it holds {what}",
                    s.name
                )
            })
        };
        Ok(match s.kind {
            NotifySinkKind::Telegram => Target::Telegram {
                url: s.url.clone(),
                chat_id: s.chat_id.clone(),
                token: need(&s.secret_env, "the Telegram bot token")?,
            },
            NotifySinkKind::Discord => Target::Discord { url: need(&s.secret_env, "the Discord webhook URL")? },
            NotifySinkKind::Slack => Target::Slack { url: need(&s.secret_env, "the Slack webhook URL")? },
            NotifySinkKind::Webhook => {
                let mut headers = Vec::new();
                for (h, var) in &s.header_env {
                    headers.push((h.clone(), need(var, &format!("the value of the {h} header"))?));
                }
                Target::Webhook { url: s.url.clone(), headers }
            }
        })
    }

    /// The secret values an error message must never show.
    fn secrets(&self) -> Vec<&str> {
        match self {
            Target::Telegram { token, .. } => vec![token.expose()],
            Target::Discord { url } | Target::Slack { url } => vec![url.expose()],
            Target::Webhook { headers, .. } => headers.iter().map(|(_, v)| v.expose()).collect(),
        }
    }
}

/// What one delivery attempt came to.
#[derive(Debug, PartialEq)]
enum Outcome {
    Delivered,
    /// Too many requests: wait this long, then try again.
    RateLimited(Duration),
    /// The service is down or failing: back off and try again.
    Retry(String),
    /// The service will never take this message.
    Refused(String),
}

/// One message waiting for a sink: its text, and for a webhook the event it is about.
struct Message {
    text: String,
    event: &'static str,
    fields: serde_json::Value,
}

struct Sink {
    name: String,
    target: Target,
    agent: ureq::Agent,
    min_interval: Duration,
    batch: Duration,
    context: Context,
    sent: prometheus::IntCounter,
    failures: prometheus::IntCounter,
    dropped: prometheus::IntCounter,
    stopping: Arc<AtomicBool>,
    last_sent: Option<Instant>,
    /// Notices that arrived while fills were being batched, sent after the batch.
    held: VecDeque<Notice>,
}

/// The longest wait a `retry_after` may ask for.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

impl Sink {
    fn run(mut self, rx: Receiver<Notice>) {
        loop {
            let next = match self.held.pop_front() {
                Some(n) => n,
                None => match rx.recv() {
                    Ok(n) => n,
                    Err(_) => return,
                },
            };
            if self.stopping.load(Ordering::Relaxed) {
                // Past the stop's grace: one more attempt per message would add a whole
                // timeout each to the stop, so what is left is counted and dropped.
                let left = 1 + self.held.len() + rx.try_iter().count();
                self.held.clear();
                self.dropped.inc_by(left as u64);
                return;
            }
            let message = match next {
                Notice::Fill(first) if !self.batch.is_zero() => {
                    let fills = self.batch_fills(first, &rx);
                    fills_message(&self.context, &fills)
                }
                n => message(&self.context, &n),
            };
            self.deliver(&message);
        }
    }

    /// Collects the fills that arrive within `batch` of `first`; other notices wait in `held`.
    fn batch_fills(&mut self, first: TradeRecord, rx: &Receiver<Notice>) -> Vec<TradeRecord> {
        let mut fills = vec![first];
        let until = Instant::now() + self.batch;
        while let Some(left) = until.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) {
            match rx.recv_timeout(left) {
                Ok(Notice::Fill(t)) => fills.push(t),
                Ok(other) => self.held.push_back(other),
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        fills
    }

    fn deliver(&mut self, m: &Message) {
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(60));
        let mut failing = false;
        loop {
            if let Some(last) = self.last_sent {
                self.sleep((last + self.min_interval).saturating_duration_since(Instant::now()));
            }
            let wait = match self.attempt(m) {
                Outcome::Delivered => {
                    self.sent.inc();
                    self.last_sent = Some(Instant::now());
                    if failing {
                        log::info!("notify: {} delivers again", self.name);
                    }
                    return;
                }
                Outcome::Refused(why) => {
                    self.dropped.inc();
                    log::error!("notify: {} refused a message ({why}); it is dropped", self.name);
                    return;
                }
                Outcome::RateLimited(wait) => {
                    self.failures.inc();
                    log::info!("notify: {} asks to wait {wait:?} (too many requests)", self.name);
                    wait
                }
                Outcome::Retry(why) => {
                    self.failures.inc();
                    if !failing {
                        log::warn!("notify: {} cannot deliver ({why}); trying again with a growing wait", self.name);
                    }
                    backoff.next_wait()
                }
            };
            failing = true;
            if self.stopping.load(Ordering::Relaxed) {
                self.dropped.inc();
                return;
            }
            self.sleep(wait);
        }
    }

    /// Sleeps, waking early when the daemon stops.
    fn sleep(&self, d: Duration) {
        let until = Instant::now() + d;
        while !self.stopping.load(Ordering::Relaxed) {
            let Some(left) = until.checked_duration_since(Instant::now()).filter(|d| !d.is_zero()) else { return };
            std::thread::sleep(left.min(Duration::from_millis(100)));
        }
    }

    fn attempt(&self, m: &Message) -> Outcome {
        let (url, body): (String, serde_json::Value) = match &self.target {
            Target::Telegram { url, chat_id, token } => (
                format!("{url}/bot{}/sendMessage", token.expose()),
                serde_json::json!({"chat_id": chat_id, "text": clip(&m.text, 4096), "disable_web_page_preview": true}),
            ),
            // No mentions: a symbol or a reason can never page @everyone.
            Target::Discord { url } => (
                url.expose().to_owned(),
                serde_json::json!({"content": clip(&m.text, 2000), "allowed_mentions": {"parse": []}}),
            ),
            Target::Slack { url } => (url.expose().to_owned(), serde_json::json!({"text": clip(&m.text, 3000)})),
            Target::Webhook { url, .. } => (
                url.clone(),
                serde_json::json!({
                    "event": m.event,
                    "bot": self.context.bot,
                    "text": m.text,
                    "unix_ms": crate::support::timefmt::unix_nanos() / 1_000_000,
                    "fields": m.fields,
                }),
            ),
        };
        let mut req = self.agent.post(&url).header("Content-Type", "application/json");
        if let Target::Webhook { headers, .. } = &self.target {
            for (h, v) in headers {
                req = req.header(h.as_str(), v.expose());
            }
        }
        let mut resp = match req.send(body.to_string().as_bytes()) {
            Ok(r) => r,
            Err(e) => return Outcome::Retry(self.scrub(&e.to_string())),
        };
        let status = resp.status().as_u16();
        let retry_header =
            resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<f64>().ok());
        let text = resp.body_mut().with_config().limit(64 * 1024).read_to_string().unwrap_or_default();
        self.judge(status, retry_header, &text)
    }

    /// What an answer means, by each service's published contract.
    fn judge(&self, status: u16, retry_header: Option<f64>, body: &str) -> Outcome {
        let json: Option<serde_json::Value> = serde_json::from_str(body).ok();
        match status {
            200..=299 => {
                // Telegram answers 200 with "ok": false only in theory; treat it as a refusal.
                if matches!(self.target, Target::Telegram { .. })
                    && json.as_ref().and_then(|j| j["ok"].as_bool()) == Some(false)
                {
                    return Outcome::Refused(self.describe(status, json.as_ref(), body));
                }
                Outcome::Delivered
            }
            429 => {
                let from_body = json
                    .as_ref()
                    .and_then(|j| j["parameters"]["retry_after"].as_f64().or_else(|| j["retry_after"].as_f64()));
                let secs = from_body.or(retry_header).unwrap_or(1.0);
                let wait = Duration::try_from_secs_f64(secs.max(0.0)).unwrap_or(MAX_RETRY_AFTER);
                Outcome::RateLimited(wait.min(MAX_RETRY_AFTER))
            }
            408 | 500..=599 => Outcome::Retry(self.describe(status, json.as_ref(), body)),
            _ => Outcome::Refused(self.describe(status, json.as_ref(), body)),
        }
    }

    /// `HTTP 400: Bad Request: chat not found`, from the service's own words, scrubbed.
    fn describe(&self, status: u16, json: Option<&serde_json::Value>, body: &str) -> String {
        let said = json
            .and_then(|j| j["description"].as_str().or_else(|| j["message"].as_str()).map(str::to_owned))
            .unwrap_or_else(|| body.chars().take(200).filter(|c| !c.is_control()).collect());
        self.scrub(&format!("HTTP {status}: {said}"))
    }

    /// `text` with every secret of the sink replaced.
    fn scrub(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for s in self.target.secrets() {
            if !s.is_empty() {
                out = out.replace(s, "***");
            }
        }
        out
    }
}

/// At most `max` characters of `text` (services refuse longer messages).
fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max.saturating_sub(1)) {
        Some((i, _)) if text.len() > i + 1 => format!("{}…", &text[..i]),
        _ => text.to_owned(),
    }
}

fn symbol(c: &Context, id: u16) -> &str {
    c.symbols.get(id as usize).map_or("?", String::as_str)
}

fn fill_line(c: &Context, t: &TradeRecord) -> String {
    let verb = if t.side == Side::Buy { "bought" } else { "sold" };
    format!("{verb} {} {} at {} ({})", t.qty, symbol(c, t.symbol), t.price, t.client_id.as_str())
}

fn fill_fields(c: &Context, t: &TradeRecord) -> serde_json::Value {
    serde_json::json!({
        "symbol": symbol(c, t.symbol),
        "side": t.side.as_str(),
        "qty": t.qty,
        "price": t.price,
        "order_id": t.client_id.as_str(),
        "exec_id": t.exec_id,
    })
}

fn fills_message(c: &Context, fills: &[TradeRecord]) -> Message {
    if let [one] = fills {
        return message(c, &Notice::Fill(*one));
    }
    let mut text = format!("{}: {} fills", c.bot, fills.len());
    for t in fills.iter().take(20) {
        text.push_str("\n- ");
        text.push_str(&fill_line(c, t));
    }
    if fills.len() > 20 {
        text.push_str(&format!("\n- and {} more", fills.len() - 20));
    }
    let list: Vec<serde_json::Value> = fills.iter().map(|t| fill_fields(c, t)).collect();
    Message { text, event: "fills", fields: serde_json::json!({ "fills": list }) }
}

/// The message for one notice.
fn message(c: &Context, n: &Notice) -> Message {
    let bot = &c.bot;
    match n {
        Notice::Fill(t) => Message {
            text: format!("{bot}: {}", fill_line(c, t)),
            event: "fill",
            fields: serde_json::json!({ "fills": [fill_fields(c, t)] }),
        },
        Notice::State { from, to, by, reason } => {
            let alarm = if *to == TradingState::Active { "" } else { "⚠ " };
            let why = if reason.is_empty() { String::new() } else { format!(": {reason}") };
            Message {
                text: format!("{alarm}{bot}: trading {} (was {}) by {by}{why}", to.as_str(), from.as_str()),
                event: "state",
                fields: serde_json::json!({"from": from.as_str(), "to": to.as_str(), "by": by, "reason": reason}),
            }
        }
        Notice::Venue { venue, up } => Message {
            text: if *up {
                format!("{bot}: venue {venue} is up")
            } else {
                format!("⚠ {bot}: venue {venue} is down; signals wait up to queue.max_wait for it")
            },
            event: "venue",
            fields: serde_json::json!({"venue": venue, "up": up}),
        },
        Notice::Started { venue, version } => Message {
            text: format!("{bot} {version} started on venue {venue}"),
            event: "started",
            fields: serde_json::json!({"venue": venue, "version": version}),
        },
        Notice::Stopped { why } => Message {
            text: format!("{bot} stopped ({why})"),
            event: "stopped",
            fields: serde_json::json!({ "why": why }),
        },
        Notice::Summary(d) => summary(c, d),
    }
}

fn summary(c: &Context, d: &DaySummary) -> Message {
    let pnl = d.end_equity - d.start_equity;
    let pct = if d.start_equity > 0.0 { pnl / d.start_equity * 100.0 } else { 0.0 };
    let day = crate::support::timefmt::rfc3339_micros(i128::from(d.end_unix_ns));
    Message {
        text: format!(
            "{}: trading day ended {day}: PnL {pnl:+.2} ({pct:+.2}%), equity {:.2}, balance {:.2}, drawdown {:.2}%, \
             {} fills, {} open positions, trading {}",
            c.bot,
            d.end_equity,
            d.balance,
            d.drawdown_ratio * 100.0,
            d.fills,
            d.open_positions,
            d.state.as_str()
        ),
        event: "summary",
        fields: serde_json::json!({
            "day_end": day,
            "pnl": pnl,
            "start_equity": d.start_equity,
            "equity": d.end_equity,
            "balance": d.balance,
            "drawdown_ratio": d.drawdown_ratio,
            "fills": d.fills,
            "open_positions": d.open_positions,
            "state": d.state.as_str(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::types::SignalId;

    fn sink(target: Target) -> Sink {
        let m = Metrics::new();
        Sink {
            name: "t".into(),
            target,
            agent: crate::support::http::agent("notify", Duration::from_secs(1)),
            min_interval: Duration::ZERO,
            batch: Duration::ZERO,
            context: Context { bot: "mt5bot".into(), symbols: vec!["EURUSD".into()] },
            sent: m.notify_sent.with_label_values(&["t"]),
            failures: m.notify_failures.with_label_values(&["t"]),
            dropped: m.notify_dropped.with_label_values(&["t"]),
            stopping: Arc::new(AtomicBool::new(false)),
            last_sent: None,
            held: VecDeque::new(),
        }
    }

    #[test]
    fn answers_are_read_by_each_services_contract() {
        let tg = sink(Target::Telegram {
            url: "http://x".into(),
            chat_id: "1".into(),
            token: Secret::for_tests("123:SECRET"),
        });
        assert_eq!(tg.judge(200, None, r#"{"ok":true,"result":{}}"#), Outcome::Delivered);
        let limited = r#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 7","parameters":{"retry_after":7}}"#;
        assert_eq!(tg.judge(429, None, limited), Outcome::RateLimited(Duration::from_secs(7)));
        let Outcome::Refused(why) =
            tg.judge(400, None, r#"{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}"#)
        else {
            panic!("a 400 is final")
        };
        assert_eq!(why, "HTTP 400: Bad Request: chat not found");
        assert!(matches!(tg.judge(502, None, "<html>bad gateway</html>"), Outcome::Retry(_)));
        let dc = sink(Target::Discord { url: Secret::for_tests("http://h/api/webhooks/1/TOKEN") });
        assert_eq!(dc.judge(204, None, ""), Outcome::Delivered);
        let limited = r#"{"message": "You are being rate limited.", "retry_after": 0.25, "global": false}"#;
        assert_eq!(dc.judge(429, Some(1.0), limited), Outcome::RateLimited(Duration::from_millis(250)));
        let sl = sink(Target::Slack { url: Secret::for_tests("http://h/services/T/B/X") });
        assert_eq!(sl.judge(429, Some(30.0), "rate_limited"), Outcome::RateLimited(Duration::from_secs(30)));
        assert_eq!(sl.judge(404, None, "no_service"), Outcome::Refused("HTTP 404: no_service".into()));
        // A silly retry_after is held to the cap; a missing one waits a second.
        assert_eq!(sl.judge(429, Some(1e12), ""), Outcome::RateLimited(MAX_RETRY_AFTER));
        assert_eq!(sl.judge(429, None, ""), Outcome::RateLimited(Duration::from_secs(1)));
    }

    #[test]
    fn no_error_shows_a_secret() {
        let tg = sink(Target::Telegram {
            url: "http://127.0.0.1:1".into(),
            chat_id: "1".into(),
            token: Secret::for_tests("123:SECRET"),
        });
        assert_eq!(
            tg.scrub("POST http://h/bot123:SECRET/sendMessage failed"),
            "POST http://h/bot***/sendMessage failed"
        );
        // Port 1 refuses: the transport error is scrubbed too.
        let m = Message { text: "x".into(), event: "fill", fields: serde_json::Value::Null };
        let Outcome::Retry(why) = tg.attempt(&m) else { panic!("a refused connection is retried") };
        assert!(!why.contains("SECRET"), "{why}");
        let body = r#"{"description":"token 123:SECRET is bad"}"#;
        let Outcome::Refused(why) = tg.judge(401, None, body) else { panic!("401 is final") };
        assert!(!why.contains("SECRET"), "{why}");
    }

    #[test]
    fn messages_name_the_bot_the_symbol_and_the_reason() {
        let c = Context { bot: "mt5bot acct1/ewma".into(), symbols: vec!["EURUSD".into()] };
        let fill = TradeRecord {
            unix_ns: 0,
            symbol: 0,
            side: Side::Sell,
            client_id: SignalId::parse("p-1").expect("id"),
            exec_id: 3,
            qty: 0.1,
            price: 1.08512,
            realized_pnl: 0.0,
        };
        assert_eq!(message(&c, &Notice::Fill(fill)).text, "mt5bot acct1/ewma: sold 0.1 EURUSD at 1.08512 (p-1)");
        let m = fills_message(&c, &[fill, fill]);
        assert_eq!(m.text.lines().count(), 3, "{}", m.text);
        assert_eq!(m.fields["fills"].as_array().map(Vec::len), Some(2));
        let state = Notice::State {
            from: TradingState::Active,
            to: TradingState::Halted,
            by: "max_daily_loss".into(),
            reason: "loss 120 USD, limit 100".into(),
        };
        assert_eq!(
            message(&c, &state).text,
            "⚠ mt5bot acct1/ewma: trading halted (was active) by max_daily_loss: loss 120 USD, limit 100"
        );
        assert_eq!(clip("abcdef", 4), "abc…");
        assert_eq!(clip("abcd", 4), "abcd");
        assert_eq!(clip("ééééé", 3), "éé…");
    }
}
