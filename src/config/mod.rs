//! Configuration: `config.yaml` in two stages.
//!
//! Stage one deserializes the YAML into `Raw*` structs with `deny_unknown_fields`, so a misspelt key
//! is an error rather than a silently ignored line. Stage two, [`validate`], turns the raw values into
//! the typed [`Config`] the program uses, checking ranges and relations. Every error names the file,
//! the line, the key and what would have been accepted. `mt5bot config check` runs exactly this code.
//!
//! The defaults live once, in the `Default` impls of the raw structs; with no `--config` the daemon
//! runs on them (the embedded default: paper venue, synthetic feed, `/metrics` on 127.0.0.1:9898).
//! `config.example.yaml` spells out every key with its default, and a test keeps the two equal.
//!
//! Secrets never live here: they come from the environment (see `ARCHITECTURE.md`).

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::domain::types::{AtClose, BreakerAction, DriftAction, Filling, OrderKind, TimeInForce};

/// Name shown in errors for the built-in configuration.
pub const EMBEDDED_NAME: &str = "<embedded default>";

/// Largest signal queue the config accepts (2^20 slots).
pub const MAX_QUEUE_CAPACITY: usize = 1 << 20;

/// Largest config file read; larger ones are refused before parsing.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Most ingress clients at once (each takes an engine token and a file descriptor).
pub const MAX_INGRESS_CONNECTIONS: usize = 4096;

/// Most MT5 connections waiting to authenticate.
pub const MAX_MT5_HANDSHAKES: usize = 1024;

/// Largest number of distinct symbols; symbol ids are `u16` and the engine preallocates per symbol.
pub const MAX_SYMBOLS: usize = 256;

/// A configuration error: what was wrong, where, and what would have been accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// File the config came from, or [`EMBEDDED_NAME`].
    pub file: String,
    /// 1-based line of the offending key, when it could be found.
    pub line: Option<usize>,
    /// Dotted key path, e.g. `queue.capacity`; empty when the error is about the whole document.
    pub key: String,
    /// What was wrong and what is accepted.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, ": ")?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        write!(f, "{}", self.message)
    }
}

impl std::error::Error for ConfigError {}

mod locate;
mod raw;
mod validate;
pub mod web;

pub use self::locate::locate;
use self::locate::yaml_error;
pub use self::raw::*;
pub use self::validate::{valid_symbol, validate};

/// The validated configuration the program runs on.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where it came from (a path, or [`EMBEDDED_NAME`]).
    pub source: String,
    pub venue: VenueConfig,
    pub feed: FeedConfig,
    pub model: ModelConfig,
    pub drift: DriftConfig,
    pub queue_capacity: usize,
    /// How long a signal may wait in the queue for the venue's session before it is refused.
    pub queue_max_wait: Duration,
    /// A signal id accepted this recently is refused as a duplicate, across restarts
    /// (`ingress.id_retention`), among the last [`Config::id_memory`] ids.
    pub id_retention: Duration,
    /// Signal ids remembered at most (`ingress.id_memory`).
    pub id_memory: usize,
    pub risk: RiskConfig,
    pub ingress: Option<IngressConfig>,
    pub metrics: MetricsConfig,
    pub logging: LoggingConfig,
    pub influx: Option<InfluxConfig>,
    pub log_forward: Option<LogForwardConfig>,
    pub checkpoint: CheckpointConfig,
    pub engine: EngineConfig,
    pub protection: ProtectionConfig,
    pub sessions: SessionsConfig,
    pub identity: IdentityConfig,
    pub notify: NotifyConfig,
}

/// Notifications (`notify:`): where they go and how they are paced.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NotifyConfig {
    pub sinks: Vec<NotifySinkConfig>,
    pub batch_fills: Duration,
    pub queue_capacity: usize,
    pub timeout: Duration,
    /// As written, for `config check` and the round trip.
    pub raw: RawNotify,
}

/// One notification sink, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct NotifySinkConfig {
    pub kind: NotifySinkKind,
    pub name: String,
    /// Telegram: the chat.
    pub chat_id: String,
    /// The variable or credential holding the secret: Telegram's token, Discord's or Slack's
    /// webhook URL; empty for a webhook.
    pub secret_env: String,
    /// Telegram: the API's base URL; webhook: where to post.
    pub url: String,
    pub header_env: Vec<(String, String)>,
    /// [`crate::domain::notice::NoticeKind::bit`]s of the kinds it takes.
    pub kinds: u8,
    pub min_interval: Duration,
}

/// Which bot this is (`identity:`): the labels that tell it from the others of a fleet.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IdentityConfig {
    /// `(name, value)` in this order: `account`, `strategy`, `venue`; empty when neither account
    /// nor strategy is set (one bot alone: its series keep their plain names).
    pub labels: Vec<(String, String)>,
    /// As written, for `config check` and the round trip.
    pub raw: RawIdentity,
}

impl IdentityConfig {
    /// The value of one identity label, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.labels.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// `account/strategy` (or whichever is set), to name the bot in a message; empty when alone.
    pub fn name(&self) -> String {
        let parts: Vec<&str> = self.labels.iter().filter(|(k, _)| k != "venue").map(|(_, v)| v.as_str()).collect();
        parts.join("/")
    }
}

/// When each symbol's market is open (`sessions:`).
#[derive(Debug, Clone, PartialEq)]
pub struct SessionsConfig {
    /// The calendars some symbol trades on (`always` is none of them).
    pub calendars: Vec<CalendarConfig>,
    /// For each of `feed.symbols`, in order: the index of its calendar in `calendars`, or `None`
    /// for `always`.
    pub symbols: Vec<Option<usize>>,
    /// As written, for `config check` and the round trip.
    pub raw: RawSessions,
}

impl SessionsConfig {
    /// True when every symbol trades on `always` (today's behaviour: nothing to check).
    pub fn is_always(&self) -> bool {
        self.symbols.iter().all(Option::is_none)
    }
}

/// A market's calendar: open windows per weekday in its zone, closed days, early closes, and what
/// happens around the close and the open.
#[derive(Debug, Clone, PartialEq)]
pub struct CalendarConfig {
    pub name: String,
    pub tz: jiff::tz::TimeZone,
    /// Open windows per weekday, Monday first, as minutes after local midnight, `[start, end)`;
    /// a window written past midnight is split at it.
    pub week: [Vec<(u16, u16)>; 7],
    /// Days closed all day, in the calendar's zone, sorted.
    pub closed: Vec<jiff::civil::Date>,
    /// Days that close early: the day and the minute after local midnight it closes, sorted.
    pub early_close: Vec<(jiff::civil::Date, u16)>,
    /// How long before a close `at_close` applies (zero: not before the close).
    pub close_before: Duration,
    pub at_close: AtClose,
    /// How long after an open new signals are still refused (zero: from the open).
    pub open_after: Duration,
}

impl CalendarConfig {
    /// The built-in `fx` calendar: Sunday 17:00 to Friday 17:00, New York time.
    pub fn fx() -> CalendarConfig {
        let day = vec![(0, 1440)];
        CalendarConfig {
            name: "fx".into(),
            tz: jiff::tz::TimeZone::get("America/New_York").unwrap_or(jiff::tz::TimeZone::UTC),
            week: [day.clone(), day.clone(), day.clone(), day, vec![(0, 17 * 60)], Vec::new(), vec![(17 * 60, 1440)]],
            closed: Vec::new(),
            early_close: Vec::new(),
            close_before: Duration::ZERO,
            at_close: AtClose::Nothing,
            open_after: Duration::ZERO,
        }
    }
}

/// The equity circuit breakers and what they measure from.
#[derive(Debug, Clone, PartialEq)]
pub struct ProtectionConfig {
    /// The account's balance before the first trade (paper; and today every venue).
    pub starting_balance: f64,
    /// The currency of the account, and of every amount the breakers watch; `None`: every
    /// symbol's PnL is taken as it is.
    pub account_currency: Option<String>,
    /// Per symbol (in `feed.symbols` order): how its PnL becomes account currency.
    pub rates: Vec<RateSource>,
    /// Minutes after local midnight when the trading day starts.
    pub day_start_minutes: u32,
    /// The zone of the trading day (an IANA name).
    pub timezone: String,
    pub tz: jiff::tz::TimeZone,
    /// The breakers that are on.
    pub breakers: Vec<BreakerConfig>,
    /// The order a protective exit the engine holds sends: `market`, or a marketable `limit`
    /// priced `exit_limit_bps` through the mark (for venues that take only limit orders).
    pub exit_order: OrderKind,
    pub exit_limit_bps: f64,
}

/// Weekday names as the config writes them, Monday first.
pub const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// How a symbol's PnL, in the currency its prices are in, becomes account currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RateSource {
    /// It is in account currency already.
    #[default]
    Unit,
    /// Times the mid price of symbol `symbol` (its index in `feed.symbols`): a symbol priced in
    /// the account currency whose base is this one's currency (GBPUSD for a GBP PnL on a USD
    /// account); with `invert`, divided by it: the account currency is its base (USDJPY for a
    /// JPY PnL on a USD account, USDJPY's own included).
    Via { symbol: usize, invert: bool },
}

/// One breaker: what it watches, its limit, what it does, and whether it resumes by itself.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerConfig {
    pub limit: BreakerLimit,
    pub action: BreakerAction,
    /// Back to active this long after a trip (unless something else set the state since).
    pub resume_after: Option<Duration>,
}

/// What a breaker watches and its limit (all losses are positive amounts of account currency).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BreakerLimit {
    /// Loss since the start of the trading day: an amount, a fraction of start-of-day equity, or
    /// both (whichever is reached first).
    DailyLoss { amount: Option<f64>, fraction: Option<f64> },
    /// Fall from the peak equity, as a fraction of the peak: the peak over the life of the
    /// account, or over a rolling `window`.
    Drawdown { fraction: f64, window: Option<Duration> },
    /// Closed round trips in a row with a loss.
    ConsecutiveLosses { count: u32 },
    /// One position's open loss.
    PositionLoss { amount: f64 },
}

impl BreakerLimit {
    /// The breaker's name in config, metrics and logs.
    pub fn name(&self) -> &'static str {
        match self {
            BreakerLimit::DailyLoss { .. } => "max_daily_loss",
            BreakerLimit::Drawdown { .. } => "max_drawdown",
            BreakerLimit::ConsecutiveLosses { .. } => "max_consecutive_losses",
            BreakerLimit::PositionLoss { .. } => "max_position_loss",
        }
    }
}

/// The venue orders go to (`kind`), with the settings of every venue (only `kind`'s are used).
#[derive(Debug, Clone, PartialEq)]
pub struct VenueConfig {
    pub kind: VenueKind,
    pub paper: PaperConfig,
    pub fix44: Fix44Config,
    pub mt5: Mt5Config,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Mt5Config {
    /// Where the Expert Advisor connects (loopback by default: MQL5 sockets are client-only).
    pub listen: SocketAddr,
    /// The `magic` number on every order, so the EA's snapshots show which deals are mt5bot's.
    pub magic: u64,
    /// Largest price deviation accepted for market orders, in points.
    pub deviation: u32,
    pub type_filling: Filling,
    pub handshake_timeout: Duration,
    /// A ping goes out when the EA was silent this long; twice as long closes the connection.
    pub heartbeat_interval: Duration,
    pub max_line_bytes: usize,
    /// Longest snapshot line from an authenticated terminal (it lists a day of deals, so it
    /// outgrows `max_line_bytes` on a busy account).
    pub max_snapshot_bytes: usize,
    /// Connections waiting to authenticate, beyond the live session; the oldest is closed to make
    /// room for a new one, so a reconnect loop cannot keep the Expert Advisor out.
    pub max_handshakes: usize,
    /// `venue.mt5.tls`: the listener speaks TLS 1.2/1.3 with this certificate (and asks for a
    /// client certificate when a client CA is given); `None`: plain TCP.
    pub tls: Option<crate::support::tls::TlsServerConfig>,
}

impl VenueConfig {
    /// The short name used in logs and metric labels.
    pub fn name(&self) -> &'static str {
        match self.kind {
            VenueKind::Paper => "paper",
            VenueKind::Fix44 => "fix44",
            VenueKind::Mt5 => "mt5",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Fix44Config {
    /// `host:port` of the broker's FIX gateway; resolved at start-up.
    pub connect: String,
    pub sender_comp_id: String,
    pub target_comp_id: String,
    pub heartbeat_interval: Duration,
    pub reset_on_logon: bool,
    pub logon_timeout: Duration,
    /// An order the venue has not acknowledged this long after it was sent is asked about with an
    /// OrderStatusRequest.
    pub status_timeout: Duration,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    pub time_in_force: TimeInForce,
    /// Account (tag 1) on every order, when not empty.
    pub account: String,
    /// Folder of the sequence-number file.
    pub state_dir: PathBuf,
    /// When the session runs (`venue.fix44.schedule`); `None`: always.
    pub schedule: Option<FixSchedule>,
    /// Both sides start again at 1 after a Logout (sent or received), or after any disconnect.
    pub reset_on_logout: bool,
    pub reset_on_disconnect: bool,
    /// As written, for the round trip.
    pub raw_schedule: RawFixSchedule,
    /// The broker holds stop orders: a position's stop-loss and take-profit rest at the venue
    /// (a stop order and a limit order, GTC) instead of being watched by mt5bot.
    pub native_stops: bool,
}

/// A FIX session's schedule, as QuickFIX reads StartTime/EndTime/StartDay/EndDay: daily from
/// `start` to `end` (past midnight when `end` is not after `start`; the same time for a session
/// that runs all day and starts anew there), or weekly from `start_day` to `end_day`.
#[derive(Debug, Clone, PartialEq)]
pub struct FixSchedule {
    pub tz: jiff::tz::TimeZone,
    /// Seconds after local midnight.
    pub start: u32,
    pub end: u32,
    /// Weekly sessions: the weekdays, Monday 0.
    pub days: Option<(u8, u8)>,
    /// Dates in `tz` on which the gateway is closed (holidays), sorted.
    pub closed: Vec<jiff::civil::Date>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PaperConfig {
    pub latency: Duration,
    pub slippage_bps: f64,
    pub depth: f64,
    /// The nightly rollover: minutes after midnight in `rollover_tz`, and the weekday
    /// (0 = Monday) that charges three nights.
    pub rollover_minutes: u32,
    pub rollover_timezone: String,
    pub rollover_tz: jiff::tz::TimeZone,
    pub triple_swap_day: u8,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SymbolConfig {
    pub name: String,
    pub price: f64,
    /// Smaller quantities are refused at ingress; model orders below it are not sent.
    pub min_qty: f64,
    /// Ingress quantities must be whole multiples of it; model orders are rounded down to it.
    pub qty_step: f64,
    /// What a quantity of 1 stands for (MT5's SYMBOL_TRADE_CONTRACT_SIZE): PnL in money is the
    /// price difference times quantity times this.
    pub contract_size: f64,
    /// Commission per lot and side that the paper venue charges (money).
    pub commission_per_lot: f64,
    /// Commission per million of notional and side on the paper venue (account currency).
    pub commission_per_million: f64,
    /// Swap per lot and night on the paper venue, long and short (positive credited).
    pub swap_long: f64,
    pub swap_short: f64,
    /// The currency its prices are in, when it is not the account's (`feed.symbols[].currency`).
    pub currency: Option<String>,
    /// `feed.symbols[].conversion` as configured (the symbol that converts its PnL).
    pub conversion: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum FeedSource {
    Synthetic {
        seed: u64,
        tick_rate: f64,
        volatility: f64,
        spread_bps: f64,
    },
    /// A replay of one or more files, merged by time ([`crate::venue::history`]).
    Csv {
        paths: Vec<PathBuf>,
        speed: f64,
        /// `feed.csv.timezone`: the zone of MT5 export times, as configured and as read.
        timezone: String,
        tz: jiff::tz::TimeZone,
        /// `feed.csv.skip_bad_rows`: count and leave out bad rows instead of refusing the file.
        skip_bad_rows: bool,
    },
    /// Ticks come from the venue.
    Venue,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FeedConfig {
    pub symbols: Vec<SymbolConfig>,
    pub source: FeedSource,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub fast_period: u32,
    pub slow_period: u32,
    pub threshold_bps: f64,
    pub order_qty: f64,
    pub order_type: OrderKind,
    pub limit_offset_bps: f64,
    /// Stop-loss and take-profit of the model's positions, in basis points from the entry's
    /// reference price; 0 for none.
    pub sl_bps: f64,
    pub tp_bps: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DriftConfig {
    pub enabled: bool,
    pub delta: f64,
    pub threshold: f64,
    pub min_samples: u64,
    pub action: DriftAction,
    pub pause_for: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RiskConfig {
    pub max_position: f64,
    pub max_orders_per_second: u32,
    pub max_notional: f64,
    pub max_open_orders: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct IngressConfig {
    pub listen: SocketAddr,
    /// A non-loopback `listen` was asked for explicitly (the ingress has no authentication).
    pub allow_remote: bool,
    pub max_connections: usize,
    pub max_line_bytes: usize,
    /// A client whose answers wait unsent this long without any progress is disconnected.
    pub stall_timeout: Duration,
}

/// The `/metrics`, `/healthz`, `/readyz` and `/api/v1/` listener and its bounds.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsConfig {
    pub listen: SocketAddr,
    /// Connections held at once; at the bound the oldest idle or unfinished one makes room.
    pub max_connections: usize,
    /// Time to send a whole request head.
    pub header_timeout: Duration,
    /// Time to send a request body, from the end of its head.
    pub body_timeout: Duration,
    /// How long a kept-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    /// Time for a client to take an answer.
    pub write_timeout: Duration,
    /// TLS and basic authentication ([`web::WebConfig`], the exporter toolkit's file); none: plain HTTP.
    pub web_config: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LoggingConfig {
    pub level: log::LevelFilter,
    pub file: PathBuf,
    pub stderr: bool,
    pub channel_capacity: usize,
}

/// Metrics and trades to InfluxDB. Empty `url`, `org`, `bucket` come from `INFLUXDB_URL`,
/// `INFLUXDB_ORG`, `INFLUXDB_BUCKET` (the env file `mt5bot influx-bootstrap` writes).
#[derive(Debug, Clone, PartialEq)]
pub struct InfluxConfig {
    pub api: InfluxApi,
    pub url: String,
    pub org: String,
    pub bucket: String,
    pub database: String,
    pub interval: Duration,
    pub buffer_points: usize,
    pub batch_points: usize,
    pub timeout: Duration,
}

/// Where forwarded logs go.
#[derive(Debug, Clone, PartialEq)]
pub enum LogSink {
    Http {
        url: String,
    },
    SyslogTcp {
        addr: String,
    },
    /// RFC 5425: the TCP framing over TLS.
    SyslogTls {
        addr: String,
    },
    SyslogUdp {
        addr: String,
    },
}

/// Log forwarding, when `log_forward.url` is set.
#[derive(Debug, Clone, PartialEq)]
pub struct LogForwardConfig {
    pub url: String,
    pub sink: LogSink,
    pub format: LogFormat,
    pub headers: Vec<(String, String)>,
    /// Header name and the environment variable holding its (secret) value.
    pub header_env: Vec<(String, String)>,
    pub buffer_records: usize,
    pub batch_records: usize,
    pub spool_dir: PathBuf,
    pub spool_max_bytes: u64,
    pub timeout: Duration,
    /// Compress HTTP bodies (`Content-Encoding: gzip`).
    pub gzip: bool,
    /// syslog facility code (0 to 23).
    pub facility: u8,
    pub app_name: String,
    pub elasticsearch_index: String,
    /// PEM certificates a `syslog+tls://` receiver's certificate must chain to; `None`: Mozilla's
    /// root programme.
    pub tls_ca_file: Option<PathBuf>,
}

/// syslog facility names (RFC 5424 section 6.2.1) and their codes.
pub const FACILITIES: [(&str, u8); 20] = [
    ("kern", 0),
    ("user", 1),
    ("mail", 2),
    ("daemon", 3),
    ("auth", 4),
    ("syslog", 5),
    ("lpr", 6),
    ("news", 7),
    ("uucp", 8),
    ("cron", 9),
    ("authpriv", 10),
    ("ftp", 11),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    pub ready_deadline: Duration,
    pub shutdown_grace: Duration,
    pub status_interval: Duration,
}

impl Config {
    /// The embedded default configuration.
    pub fn embedded() -> Config {
        // The defaults are checked by tests; failing here would be a build defect, not bad input.
        match validate(RawConfig::default(), EMBEDDED_NAME, "") {
            Ok(config) => config,
            Err(e) => panic!("the embedded default configuration is invalid: {e}"),
        }
    }

    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let name = path.display().to_string();
        let fail = |message: String| ConfigError { file: name.clone(), line: None, key: String::new(), message };
        // Refuse a huge file before reading it: a 57 MB file took 30 s and 1.2 GB to be refused.
        let size = std::fs::metadata(path).map_err(|e| fail(format!("cannot read the config file: {e}")))?.len();
        if size > MAX_CONFIG_BYTES {
            return Err(fail(format!(
                "the file has {size} bytes; a config is at most {MAX_CONFIG_BYTES} bytes (is it the right file?)"
            )));
        }
        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut std::io::Read::take(
                std::fs::File::open(path).map_err(|e| fail(format!("cannot read the config file: {e}")))?,
                MAX_CONFIG_BYTES + 1,
            ),
            &mut text,
        )
        .map_err(|e| fail(format!("cannot read the config file: {e}")))?;
        if text.len() as u64 > MAX_CONFIG_BYTES {
            return Err(fail(format!("the file grew past {MAX_CONFIG_BYTES} bytes while being read")));
        }
        Config::parse(&text, &name)
    }

    /// Parses and validates YAML text; `name` is used in error messages.
    pub fn parse(text: &str, name: &str) -> Result<Config, ConfigError> {
        // An empty document (or only comments) means "all defaults".
        let raw: RawConfig = if text.lines().all(|l| {
            let t = l.trim();
            t.is_empty() || t.starts_with('#') || t == "---"
        }) {
            RawConfig::default()
        } else {
            serde_yaml::from_str(text).map_err(|e| yaml_error(&e, text, name))?
        };
        validate(raw, name, text)
    }

    /// Settings that are valid but risky, each with what to do about it: printed by
    /// `mt5bot config check` and logged at start.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        let m = self.metrics.listen;
        if !m.ip().is_loopback() && self.metrics.web_config.is_none() {
            w.push(format!(
                "metrics.listen {m} is not a loopback address: /metrics, /healthz and /readyz answer anyone who can \
                 reach it, without TLS (the control API still needs API_KEY); set metrics.web_config for TLS and \
                 basic auth, keep it on 127.0.0.1 behind a reverse proxy, or let a firewall admit only your Prometheus"
            ));
        }
        if let Some(i) = self.ingress.as_ref().filter(|i| !i.listen.ip().is_loopback()) {
            w.push(format!(
                "ingress.listen {} is not a loopback address (ingress.allow_remote: true): anyone who reaches it can \
                 trade; make sure a firewall admits only your strategies",
                i.listen
            ));
        }
        w
    }

    /// The effective configuration as YAML, for `config check` (no secrets are ever in it).
    pub fn to_yaml(&self) -> String {
        let raw = self.to_raw_for_display();
        serde_yaml::to_string(&raw).unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
    }

    /// [`Config::to_raw`] with credentials in URLs replaced by `***`, for showing it.
    pub fn to_raw_for_display(&self) -> RawConfig {
        let mut raw = self.to_raw();
        raw.log_forward.url = crate::support::urls::redact(&raw.log_forward.url);
        raw.influx.url = crate::support::urls::redact(&raw.influx.url);
        raw
    }

    /// The configuration as the raw document (defaults filled in), for `config check` and the API.
    pub fn to_raw(&self) -> RawConfig {
        let p = &self.venue.paper;
        let f = &self.venue.fix44;
        let m5 = &self.venue.mt5;
        let (kind, seed, tick_rate, volatility, spread_bps, csv) = match &self.feed.source {
            FeedSource::Synthetic { seed, tick_rate, volatility, spread_bps } => {
                (FeedKind::Synthetic, *seed, *tick_rate, *volatility, *spread_bps, RawCsv::default())
            }
            FeedSource::Csv { paths, speed, timezone, skip_bad_rows, .. } => {
                let d = RawFeed::default();
                let csv = RawCsv {
                    path: RawPaths::from_vec(paths.iter().map(|p| p.display().to_string()).collect()),
                    speed: *speed,
                    timezone: timezone.clone(),
                    skip_bad_rows: *skip_bad_rows,
                };
                (FeedKind::Csv, d.seed, d.tick_rate, d.volatility, d.spread_bps, csv)
            }
            FeedSource::Venue => {
                let d = RawFeed::default();
                (FeedKind::Venue, d.seed, d.tick_rate, d.volatility, d.spread_bps, RawCsv::default())
            }
        };
        RawConfig {
            venue: RawVenue {
                kind: self.venue.kind,
                paper: RawPaper {
                    latency: format_duration(p.latency),
                    slippage_bps: p.slippage_bps,
                    depth: p.depth,
                    rollover: format!("{:02}:{:02}", p.rollover_minutes / 60, p.rollover_minutes % 60),
                    rollover_timezone: p.rollover_timezone.clone(),
                    triple_swap_day: WEEKDAYS[usize::from(p.triple_swap_day)].to_owned(),
                },
                fix44: RawFix44 {
                    connect: f.connect.clone(),
                    sender_comp_id: f.sender_comp_id.clone(),
                    target_comp_id: f.target_comp_id.clone(),
                    heartbeat_interval: format_duration(f.heartbeat_interval),
                    reset_on_logon: f.reset_on_logon,
                    logon_timeout: format_duration(f.logon_timeout),
                    status_timeout: format_duration(f.status_timeout),
                    reconnect_min: format_duration(f.reconnect_min),
                    reconnect_max: format_duration(f.reconnect_max),
                    time_in_force: f.time_in_force,
                    account: f.account.clone(),
                    state_dir: f.state_dir.display().to_string(),
                    schedule: f.raw_schedule.clone(),
                    native_stops: f.native_stops,
                },
                mt5: RawMt5 {
                    listen: m5.listen.to_string(),
                    magic: m5.magic,
                    deviation: m5.deviation,
                    type_filling: m5.type_filling,
                    handshake_timeout: format_duration(m5.handshake_timeout),
                    heartbeat_interval: format_duration(m5.heartbeat_interval),
                    max_line_bytes: m5.max_line_bytes,
                    max_snapshot_bytes: m5.max_snapshot_bytes,
                    max_handshakes: m5.max_handshakes,
                    tls: m5.tls.as_ref().map_or_else(Default::default, |t| crate::config::raw::RawMt5Tls {
                        cert_file: t.cert_file.display().to_string(),
                        key_file: t.key_file.display().to_string(),
                        client_ca_file: t.client_ca_file.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
                    }),
                },
            },
            feed: RawFeed {
                kind,
                symbols: self
                    .feed
                    .symbols
                    .iter()
                    .map(|s| RawSymbol {
                        name: s.name.clone(),
                        price: s.price,
                        min_qty: s.min_qty,
                        qty_step: s.qty_step,
                        contract_size: s.contract_size,
                        commission_per_lot: s.commission_per_lot,
                        commission_per_million: s.commission_per_million,
                        swap_long: s.swap_long,
                        swap_short: s.swap_short,
                        currency: s.currency.clone().unwrap_or_default(),
                        conversion: s.conversion.clone().unwrap_or_default(),
                    })
                    .collect(),
                seed,
                tick_rate,
                volatility,
                spread_bps,
                csv,
            },
            model: RawModel {
                fast_period: self.model.fast_period,
                slow_period: self.model.slow_period,
                threshold_bps: self.model.threshold_bps,
                order_qty: self.model.order_qty,
                order_type: self.model.order_type,
                limit_offset_bps: self.model.limit_offset_bps,
                sl_bps: self.model.sl_bps,
                tp_bps: self.model.tp_bps,
            },
            drift: RawDrift {
                enabled: self.drift.enabled,
                delta: self.drift.delta,
                threshold: self.drift.threshold,
                min_samples: self.drift.min_samples,
                action: self.drift.action,
                pause_for: format_duration(self.drift.pause_for),
            },
            queue: RawQueue { capacity: self.queue_capacity, max_wait: format_duration(self.queue_max_wait) },
            risk: RawRisk {
                max_position: self.risk.max_position,
                max_orders_per_second: self.risk.max_orders_per_second,
                max_notional: self.risk.max_notional,
                max_open_orders: self.risk.max_open_orders,
            },
            ingress: match &self.ingress {
                Some(i) => RawIngress {
                    enabled: true,
                    listen: i.listen.to_string(),
                    allow_remote: i.allow_remote,
                    max_connections: i.max_connections,
                    max_line_bytes: i.max_line_bytes,
                    stall_timeout: format_duration(i.stall_timeout),
                    id_retention: format_duration(self.id_retention),
                    id_memory: self.id_memory,
                },
                None => RawIngress {
                    id_retention: format_duration(self.id_retention),
                    id_memory: self.id_memory,
                    ..RawIngress::default()
                },
            },
            metrics: RawMetrics {
                listen: self.metrics.listen.to_string(),
                max_connections: self.metrics.max_connections,
                header_timeout: format_duration(self.metrics.header_timeout),
                body_timeout: format_duration(self.metrics.body_timeout),
                idle_timeout: format_duration(self.metrics.idle_timeout),
                write_timeout: format_duration(self.metrics.write_timeout),
                web_config: self.metrics.web_config.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
            },
            logging: RawLogging {
                level: self.logging.level.to_string().to_lowercase(),
                file: self.logging.file.display().to_string(),
                stderr: self.logging.stderr,
                channel_capacity: self.logging.channel_capacity,
            },
            influx: match &self.influx {
                Some(i) => RawInflux {
                    enabled: true,
                    api: i.api,
                    url: i.url.clone(),
                    org: i.org.clone(),
                    bucket: i.bucket.clone(),
                    database: i.database.clone(),
                    interval: format_duration(i.interval),
                    buffer_points: i.buffer_points,
                    batch_points: i.batch_points,
                    timeout: format_duration(i.timeout),
                },
                None => RawInflux::default(),
            },
            log_forward: match &self.log_forward {
                Some(l) => RawLogForward {
                    url: l.url.clone(),
                    format: l.format,
                    headers: l.headers.iter().cloned().collect(),
                    header_env: l.header_env.iter().cloned().collect(),
                    buffer_records: l.buffer_records,
                    batch_records: l.batch_records,
                    spool_dir: l.spool_dir.display().to_string(),
                    spool_max_bytes: l.spool_max_bytes,
                    timeout: format_duration(l.timeout),
                    gzip: l.gzip,
                    facility: FACILITIES.iter().find(|(_, c)| *c == l.facility).map_or("user", |(n, _)| n).to_owned(),
                    app_name: l.app_name.clone(),
                    elasticsearch_index: l.elasticsearch_index.clone(),
                    tls_ca_file: l.tls_ca_file.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
                },
                None => RawLogForward::default(),
            },
            checkpoint: RawCheckpoint {
                path: self.checkpoint.path.display().to_string(),
                interval: format_duration(self.checkpoint.interval),
            },
            engine: RawEngine {
                ready_deadline: format_duration(self.engine.ready_deadline),
                shutdown_grace: format_duration(self.engine.shutdown_grace),
                status_interval: format_duration(self.engine.status_interval),
            },
            protection: self.protection.to_raw(),
            sessions: self.sessions.raw.clone(),
            identity: self.identity.raw.clone(),
            notify: self.notify.raw.clone(),
        }
    }
}

impl ProtectionConfig {
    fn to_raw(&self) -> RawProtection {
        let mut raw = RawProtection {
            starting_balance: self.starting_balance,
            account_currency: self.account_currency.clone().unwrap_or_default(),
            day_start: format!("{:02}:{:02}", self.day_start_minutes / 60, self.day_start_minutes % 60),
            timezone: self.timezone.clone(),
            exit_order: self.exit_order,
            exit_limit_bps: self.exit_limit_bps,
            ..RawProtection::default()
        };
        for b in &self.breakers {
            let resume_after = b.resume_after.map(format_duration).unwrap_or_default();
            match b.limit {
                BreakerLimit::DailyLoss { amount, fraction } => {
                    raw.max_daily_loss = RawDailyLoss {
                        amount: amount.unwrap_or(0.0),
                        fraction: fraction.unwrap_or(0.0),
                        action: b.action,
                        resume_after,
                    }
                }
                BreakerLimit::Drawdown { fraction, window } => {
                    raw.max_drawdown = RawDrawdown {
                        fraction,
                        window: window.map(format_duration).unwrap_or_default(),
                        action: b.action,
                        resume_after,
                    }
                }
                BreakerLimit::ConsecutiveLosses { count } => {
                    raw.max_consecutive_losses = RawConsecutiveLosses { count, action: b.action, resume_after }
                }
                BreakerLimit::PositionLoss { amount } => {
                    raw.max_position_loss = RawPositionLoss { amount, action: b.action, resume_after }
                }
            }
        }
        raw
    }
}

/// Parses `250us`, `2ms`, `1.5s`, `5m`, `1h`, `1d` into a duration.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let scale = match unit.trim() {
        "ns" => 1e-9,
        "us" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86400.0,
        _ => f64::NAN,
    };
    match num.parse::<f64>() {
        Ok(n) if scale.is_finite() && n.is_finite() && n >= 0.0 => Ok(Duration::from_secs_f64(n * scale)),
        _ => Err(format!(
            "{s:?} is not a duration; accepted: a number with a unit ns, us, ms, s, m, h or d (e.g. 250us, 2ms, 5m)"
        )),
    }
}

/// Renders a duration in the shortest unit that keeps it exact.
pub fn format_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    for (unit, size) in [
        ("d", 86_400_000_000_000u128),
        ("h", 3_600_000_000_000),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
        ("us", 1_000),
    ] {
        if ns >= size && ns % size == 0 {
            return format!("{}{unit}", ns / size);
        }
    }
    if ns == 0 {
        "0s".into()
    } else {
        format!("{ns}ns")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> ConfigError {
        match Config::parse(text, "test.yaml") {
            Ok(_) => panic!("expected an error for:\n{text}"),
            Err(e) => e,
        }
    }

    #[test]
    fn mt5_tls_takes_both_files_or_neither() {
        let e = err("venue:\n  mt5:\n    tls:\n      cert_file: server.pem\n");
        assert_eq!(e.key, "venue.mt5.tls.key_file", "{e}");
        let e = err("venue:\n  mt5:\n    tls:\n      key_file: server.key\n");
        assert_eq!(e.key, "venue.mt5.tls.cert_file", "{e}");
        let e = err("venue:\n  mt5:\n    tls:\n      client_ca_file: ca.pem\n");
        assert_eq!(e.key, "venue.mt5.tls.client_ca_file", "{e}");
        assert_eq!(Config::embedded().venue.mt5.tls, None, "plain TCP by default");
        let c = Config::parse(
            "venue:\n  mt5:\n    tls:\n      cert_file: s.pem\n      key_file: s.key\n      client_ca_file: ca.pem\n",
            "test.yaml",
        )
        .expect("valid");
        let t = c.venue.mt5.tls.as_ref().expect("tls");
        assert_eq!(
            (t.cert_file.to_str(), t.client_auth),
            (Some("s.pem"), crate::support::tls::ClientAuth::RequireAndVerify)
        );
        // The round trip keeps it.
        let again = Config::parse(&serde_yaml::to_string(&c.to_raw()).expect("yaml"), "again.yaml").expect("valid");
        assert_eq!(again.venue.mt5.tls, c.venue.mt5.tls);
    }

    #[test]
    fn protection_is_checked_key_by_key_and_zero_is_off() {
        let e = err("protection:\n  timezone: Mars/Olympus\n");
        assert_eq!((e.key.as_str(), e.line), ("protection.timezone", Some(2)), "{e}");
        assert!(e.to_string().contains("IANA"), "{e}");
        let e = err("protection:\n  day_start: '25:00'\n");
        assert_eq!(e.key, "protection.day_start", "{e}");
        let e = err("protection:\n  max_drawdown:\n    fraction: 1.5\n");
        assert_eq!(e.key, "protection.max_drawdown.fraction", "{e}");
        let e = err("protection:\n  max_daily_loss:\n    amount: -5\n");
        assert_eq!(e.key, "protection.max_daily_loss.amount", "{e}");
        let e = err("protection:\n  max_consecutive_losses:\n    count: 3\n    resume_after: soon\n");
        assert_eq!(e.key, "protection.max_consecutive_losses.resume_after", "{e}");
        let e = err("protection:\n  max_position_loss:\n    amount: 5\n    action: panic\n");
        assert!(e.to_string().contains("reducing") && e.to_string().contains("flatten"), "{e}");
        assert!(Config::embedded().protection.breakers.is_empty(), "every breaker is off by default");
        let c = Config::parse(
            "protection:\n  day_start: '17:00'\n  timezone: America/New_York\n  max_daily_loss:\n    fraction: 0.03\n    resume_after: 1h\n",
            "t.yaml",
        )
        .expect("valid");
        assert_eq!((c.protection.day_start_minutes, c.protection.breakers.len()), (17 * 60, 1));
        assert_eq!(c.protection.breakers[0].resume_after, Some(Duration::from_secs(3600)));
        assert_eq!(Config::parse(&c.to_yaml(), "again.yaml").expect("round trip").protection, c.protection);
    }

    #[test]
    fn a_symbol_in_another_currency_needs_a_symbol_that_converts_it() {
        let feed = |symbols: &str, account: &str| {
            format!("protection:\n  account_currency: {account}\nfeed:\n  symbols:\n{symbols}")
        };
        let jpy = "    - {name: USDJPY, price: 150, currency: JPY}\n";
        let e = err(&format!("feed:\n  symbols:\n{jpy}"));
        assert_eq!(e.key, "feed.symbols[0].currency", "{e}");
        assert!(e.message.contains("protection.account_currency"), "{e}");
        let e = err(&feed(jpy, "usd"));
        assert_eq!(e.key, "protection.account_currency", "{e}");
        assert!(e.message.contains("three capital letters"), "{e}");
        // USDJPY converts its own yen; EURGBP needs GBPUSD (a broker suffix is fine) or USDGBP.
        let eurgbp = "    - {name: EURGBP, price: 0.85, currency: GBP}\n";
        let e = err(&feed(eurgbp, "USD"));
        assert_eq!(e.key, "feed.symbols[0].currency", "{e}");
        assert!(e.message.contains("GBPUSD or USDGBP"), "{e}");
        let c = Config::parse(&feed(&format!("{jpy}{eurgbp}    - {{name: GBPUSD.m, price: 1.25}}\n"), "USD"), "t.yaml")
            .expect("valid");
        assert_eq!(
            c.protection.rates,
            [
                RateSource::Via { symbol: 0, invert: true },
                RateSource::Via { symbol: 2, invert: false },
                RateSource::Unit
            ]
        );
        assert_eq!(Config::parse(&c.to_yaml(), "again.yaml").expect("round trip").protection, c.protection);
        // A named conversion must pair the two currencies.
        let e = err(&feed(
            "    - {name: EURGBP, price: 0.85, currency: GBP, conversion: EURCHF}\n    - {name: EURCHF, price: 0.95, currency: CHF}\n",
            "USD",
        ));
        assert_eq!(e.key, "feed.symbols[0].conversion", "{e}");
        assert!(e.message.contains("priced in CHF"), "{e}");
        let e = err(&feed("    - {name: EURGBP, price: 0.85, currency: GBP, conversion: CABLE}\n", "USD"));
        assert!(e.message.contains("not in feed.symbols"), "{e}");
    }

    #[test]
    fn a_replay_is_one_file_or_a_list_with_the_zone_of_mt5_times() {
        let c = Config::parse(
            "feed:\n  kind: csv\n  csv:\n    path: [a.csv, EURUSD_M1.csv]\n    timezone: '+02:00'\n",
            "t.yaml",
        )
        .expect("valid");
        let FeedSource::Csv { paths, timezone, .. } = &c.feed.source else { panic!("csv: {:?}", c.feed.source) };
        assert_eq!((paths.len(), timezone.as_str()), (2, "+02:00"));
        assert_eq!(Config::parse(&c.to_yaml(), "again.yaml").expect("round trip").feed, c.feed);
        let e = err("feed:\n  kind: csv\n  csv:\n    timezone: Mars/Base\n");
        assert_eq!((e.key.as_str(), e.line), ("feed.csv.timezone", Some(4)), "{e}");
        let e = err("feed:\n  kind: csv\n  csv:\n    path: []\n");
        assert_eq!(e.key, "feed.csv.path", "{e}");
    }

    #[test]
    fn identity_labels_are_set_once_and_checked() {
        assert!(Config::embedded().identity.labels.is_empty(), "a bot alone has none");
        let c = Config::parse("identity:\n  account: acct1\n  strategy: ewma\n", "t.yaml").expect("valid");
        let labels: Vec<(&str, &str)> = c.identity.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(labels, [("account", "acct1"), ("strategy", "ewma"), ("venue", "paper")], "venue from venue.kind");
        assert_eq!(c.identity.name(), "acct1/ewma");
        assert_eq!(Config::parse(&c.to_yaml(), "again.yaml").expect("round trip").identity, c.identity);
        let e = err("identity:\n  account: 'a b'\n");
        assert_eq!((e.key.as_str(), e.line), ("identity.account", Some(2)), "{e}");
        let e = err("identity:\n  venue: icm\n");
        assert!(e.message.contains("identity.account"), "{e}");
    }

    #[test]
    fn empty_document_is_the_embedded_default() {
        let c = Config::parse("# nothing\n", "x.yaml").expect("valid");
        assert_eq!(Config { source: EMBEDDED_NAME.into(), ..c }, Config::embedded());
    }

    #[test]
    fn unknown_key_names_line_and_key_and_accepted_keys() {
        let e = err("queue:\n  capacity: 64\n  capacitty: 12\n");
        assert_eq!(e.line, Some(3), "{e}");
        assert_eq!(e.key, "queue.capacitty", "{e}");
        assert!(e.message.contains("capacity"), "lists accepted keys: {e}");
        assert!(e.to_string().starts_with("test.yaml:3: queue.capacitty: "), "{e}");
    }

    #[test]
    fn log_forward_urls_choose_their_sink() {
        let sink = |url: &str, extra: &str| {
            let c = Config::parse(&format!("log_forward:\n  url: {url}\n{extra}"), "x.yaml").expect("valid");
            c.log_forward.expect("forwarding on")
        };
        let addr = "relay.example:6514".to_owned();
        assert_eq!(sink("syslog://relay.example:6514", "").sink, LogSink::SyslogTcp { addr: addr.clone() });
        assert_eq!(sink("syslog+tcp://relay.example:6514", "").sink, LogSink::SyslogTcp { addr: addr.clone() });
        assert_eq!(sink("syslog+udp://relay.example:6514", "").sink, LogSink::SyslogUdp { addr: addr.clone() });
        let tls = sink("syslog+tls://relay.example:6514", "  tls_ca_file: /etc/mt5bot/relay-ca.pem\n");
        assert_eq!(tls.sink, LogSink::SyslogTls { addr });
        assert_eq!(tls.tls_ca_file, Some(PathBuf::from("/etc/mt5bot/relay-ca.pem")));
        assert_eq!(sink("syslog+tls://relay.example:6514", "").tls_ca_file, None);
        let e = err("log_forward:\n  url: syslog+tls://relay.example\n");
        assert_eq!(e.key, "log_forward.url", "{e}");
        assert!(e.message.contains("syslog+tls://HOST:PORT"), "{e}");
    }

    #[test]
    fn unknown_top_level_section() {
        let e = err("metrics:\n  listen: 127.0.0.1:1\nmetric:\n  x: 1\n");
        assert_eq!(e.line, Some(3), "{e}");
        assert_eq!(e.key, "metric");
        assert!(e.message.contains("ingress"), "{e}");
    }

    #[test]
    fn wrong_type_names_line_and_key() {
        let e = err("risk:\n  max_position: 1.0\n  max_open_orders: lots\n");
        assert_eq!(e.line, Some(3), "{e}");
        assert_eq!(e.key, "risk.max_open_orders", "{e}");
        assert!(e.message.contains("invalid type"), "{e}");
    }

    #[test]
    fn unknown_enum_value_lists_accepted_values() {
        let e = err("feed:\n  kind: websocket\n");
        assert_eq!(e.line, Some(2), "{e}");
        assert_eq!(e.key, "feed.kind", "{e}");
        assert!(e.message.contains("synthetic") && e.message.contains("csv"), "{e}");
    }

    #[test]
    fn bad_value_is_found_after_parsing() {
        let e = err("# queue\nengine:\n  ready_deadline: 2s\nqueue:\n  capacity: 1000\n");
        assert_eq!(e.line, Some(5), "{e}");
        assert_eq!(e.key, "queue.capacity");
        assert!(e.message.contains("power of two"), "{e}");
    }

    #[test]
    fn bad_symbol_in_a_list_names_its_line() {
        let e =
            err("feed:\n  symbols:\n    - name: EURUSD\n      price: 1.1\n    - name: 'bad symbol'\n      price: 2\n");
        assert_eq!(e.key, "feed.symbols[1].name", "{e}");
        assert_eq!(e.line, Some(5), "{e}");
    }

    #[test]
    fn relations_are_checked() {
        let e = err("model:\n  fast_period: 50\n  slow_period: 20\n");
        assert_eq!(e.key, "model.slow_period");
        assert_eq!(e.line, Some(3));
    }

    #[test]
    fn bad_duration_and_address_and_level() {
        assert_eq!(err("venue:\n  paper:\n    latency: fast\n").key, "venue.paper.latency");
        assert_eq!(err("metrics:\n  listen: localhost\n").key, "metrics.listen");
        let e = err("logging:\n  level: loud\n");
        assert!(e.message.contains("trace"), "{e}");
    }

    #[test]
    fn not_a_mapping() {
        let e = err("- just\n- a list\n");
        assert!(e.message.contains("not a YAML mapping"), "{e}");
    }

    #[test]
    fn sessions_are_checked_key_by_key() {
        let cal = |body: &str| format!("sessions:\n  default: c\n  calendars:\n    c:\n{body}");
        let e = err(&cal("      mon: ['9-17']\n"));
        assert_eq!((e.key.as_str(), e.line), ("sessions.calendars.c.mon", Some(5)), "{e}");
        assert!(e.message.contains("HH:MM-HH:MM"), "{e}");
        assert_eq!(err(&cal("      tz: Mars/Olympus\n      mon: ['09:00-17:00']\n")).key, "sessions.calendars.c.tz");
        assert!(err(&cal("      tz: UTC\n")).message.contains("no open window"));
        let e = err(&cal("      mon: ['09:00-17:00']\n      closed: ['2026-13-01']\n"));
        assert_eq!(e.key, "sessions.calendars.c.closed", "{e}");
        let e = err(&cal("      mon: ['09:00-17:00']\n      close_before: soon\n"));
        assert_eq!(e.key, "sessions.calendars.c.close_before", "{e}");
        let e = err("sessions:\n  calendars:\n    fx:\n      mon: ['09:00-17:00']\n");
        assert!(e.message.contains("built in"), "{e}");
        let e = err("sessions:\n  symbols:\n    EURUSD: metals\n");
        assert_eq!(e.key, "sessions.symbols.EURUSD", "{e}");
        assert!(e.message.contains("always, fx"), "{e}");
        let e = err("sessions:\n  symbols:\n    XAUUSD: fx\n");
        assert!(e.message.contains("not in feed.symbols"), "{e}");
        assert!(Config::embedded().sessions.is_always(), "every symbol trades always by default");
        let e = err(&cal("      like: fx\n      sun: ['18:00-24:00']\n"));
        assert_eq!(e.key, "sessions.calendars.c.like", "{e}");
        let e = err(&cal("      like: metals\n"));
        assert!(e.message.contains("accepted: fx"), "{e}");
        let e = err(&cal("      like: fx\n      at_close: flatten\n"));
        assert_eq!(e.key, "sessions.calendars.c.at_close", "flatten needs close_before: {e}");
        let c = Config::parse(&cal("      like: fx\n      close_before: 10m\n      at_close: flatten\n"), "s.yaml")
            .expect("valid");
        let fx = CalendarConfig::fx();
        let c0 = &c.sessions.calendars[0];
        assert_eq!((&c0.week, &c0.tz, c0.close_before), (&fx.week, &fx.tz, Duration::from_secs(600)));
        let c = Config::parse(
            &cal("      tz: Asia/Tokyo\n      mon: ['17:00-06:00', '08:45-15:45']\n      early_close: {'2026-12-30': '11:30'}\n"),
            "s.yaml",
        )
        .expect("valid");
        let c0 = &c.sessions.calendars[0];
        assert_eq!((c0.week[0].clone(), c0.week[1].clone()), (vec![(525, 945), (1020, 1440)], vec![(0, 360)]));
        assert_eq!(c0.early_close.len(), 1);
        assert_eq!(c.sessions.symbols, vec![Some(0); c.feed.symbols.len()]);
        assert_eq!(Config::parse(&c.to_yaml(), "again.yaml").expect("round trip").sessions, c.sessions);
    }

    #[test]
    fn a_section_written_twice_is_named_with_its_second_line() {
        let e = err("venue:\n  kind: paper\nfeed:\n  kind: synthetic\nvenue:\n  paper:\n    latency: 1ms\n");
        assert!(e.message.contains("duplicate entry with key \"venue\"") && e.message.contains("twice"), "{e}");
        assert_eq!(e.line, Some(5), "{e}");
        let long = "k".repeat(60);
        let e = err(&format!("venue:\n  kind: paper\n  {long}: 1\n  {long}: 2\n"));
        assert!(!e.to_string().contains(&long), "a long key is not repeated: {e}");
        assert_eq!(e.line, Some(4), "{e}");
    }

    #[test]
    fn errors_never_repeat_a_file_that_is_not_a_config_nor_long_values() {
        let secret = "0123456789abcdef0123456789abcdef0123456789";
        let env = format!("API_KEY={secret}\nCONTROLLER_SHARED_SECRET={secret}\n");
        let e = Config::parse(&env, "runtime.env").expect_err("an env file is no config");
        assert!(!e.to_string().contains(secret), "{e}");
        assert!(e.message.contains("not a YAML mapping"), "{e}");
        let e = Config::parse(&format!("venue:\n  kind: {secret}\n"), "c.yaml").expect_err("bad kind");
        assert!(!e.to_string().contains(secret), "{e}");
        assert_eq!(e.key, "venue.kind");
        assert!(e.message.contains("42 characters"), "{e}");
        let e = Config::parse("venue:\n  kind: mt4\n", "c.yaml").expect_err("bad kind");
        assert!(e.message.contains("mt4"), "a short value from a config is still quoted: {e}");
    }

    #[test]
    fn durations_round_trip() {
        for s in ["250us", "2ms", "1s", "5m", "1h", "1d", "1500ms"] {
            assert_eq!(format_duration(parse_duration(s).expect(s)), s);
        }
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("1 fortnight").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn effective_config_reparses_to_itself() {
        let c = Config::embedded();
        let again = Config::parse(&c.to_yaml(), EMBEDDED_NAME).expect("rendered config is valid");
        assert_eq!(c, again);
    }

    #[test]
    fn example_file_documents_every_key_with_its_default() {
        let text = include_str!("../../config.example.yaml");
        let from_example = Config::parse(text, "config.example.yaml").expect("example is valid");
        assert_eq!(Config { source: EMBEDDED_NAME.into(), ..from_example }, Config::embedded());
        // Every key of the default document appears, uncommented, in the example.
        let defaults = serde_yaml::to_value(RawConfig::default()).expect("serializable");
        let example: serde_yaml::Value = serde_yaml::from_str(text).expect("yaml");
        fn walk(d: &serde_yaml::Value, e: &serde_yaml::Value, path: &str) {
            if let serde_yaml::Value::Mapping(dm) = d {
                for (k, dv) in dm {
                    let k = k.as_str().unwrap_or_default();
                    let ev = e.get(k).unwrap_or_else(|| panic!("config.example.yaml lacks {path}{k}"));
                    walk(dv, ev, &format!("{path}{k}."));
                }
            }
        }
        walk(&defaults, &example, "");
        // ... and each key line carries a comment, above it or beside it.
        let lines: Vec<&str> = text.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            let t = l.trim_start();
            // Leaf keys only: section headers (`venue:`) and list items are explained above them.
            if t.is_empty() || t.starts_with('#') || t.starts_with("- ") || !t.contains(':') || t.ends_with(':') {
                continue;
            }
            let commented = l.contains(" # ") || (i > 0 && lines[i - 1].trim_start().starts_with('#'));
            let in_list = i > 0 && lines[i - 1].trim_start().starts_with("- ");
            assert!(commented || in_list, "config.example.yaml line {} has no comment: {l}", i + 1);
        }
    }
}
