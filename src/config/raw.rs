//! Stage one: the document as written. Unknown keys are refused; missing sections and keys take
//! the defaults, which live here once, in the `Default` impls.

use super::*;

/// The document as written. Unknown keys are refused; missing sections and keys take defaults.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    pub venue: RawVenue,
    pub feed: RawFeed,
    pub model: RawModel,
    pub drift: RawDrift,
    pub queue: RawQueue,
    pub risk: RawRisk,
    pub ingress: RawIngress,
    pub metrics: RawMetrics,
    pub logging: RawLogging,
    pub influx: RawInflux,
    pub log_forward: RawLogForward,
    pub checkpoint: RawCheckpoint,
    pub engine: RawEngine,
    pub protection: RawProtection,
    pub sessions: RawSessions,
    pub identity: RawIdentity,
    pub notify: RawNotify,
}

/// Notifications to the operator's phone and chats (`notify:`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawNotify {
    pub sinks: Vec<RawNotifySink>,
    /// Fills within this long of the first are sent as one message; 0 sends each alone.
    pub batch_fills: String,
    /// Messages that may wait for each sink; past it they are dropped and counted.
    pub queue_capacity: usize,
    /// The limit on one delivery attempt.
    pub timeout: String,
}

impl Default for RawNotify {
    fn default() -> Self {
        Self { sinks: Vec::new(), batch_fills: "0s".into(), queue_capacity: 1000, timeout: "10s".into() }
    }
}

/// Which service a notification sink posts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifySinkKind {
    /// The Telegram Bot API's `sendMessage`.
    Telegram,
    /// A Discord channel webhook.
    Discord,
    /// A Slack incoming webhook.
    Slack,
    /// A JSON `POST` to any URL.
    Webhook,
}

impl NotifySinkKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NotifySinkKind::Telegram => "telegram",
            NotifySinkKind::Discord => "discord",
            NotifySinkKind::Slack => "slack",
            NotifySinkKind::Webhook => "webhook",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawNotifySink {
    pub kind: NotifySinkKind,
    /// The `sink` label of its metrics and its name in the log; the kind by default.
    pub name: String,
    /// Telegram: the chat to post to.
    pub chat_id: String,
    /// Telegram: the variable (or systemd credential) holding the bot token.
    pub token_env: String,
    /// Telegram: the API's base URL.
    pub base_url: String,
    /// Discord, Slack: the variable (or systemd credential) holding the webhook URL, a secret.
    pub url_env: String,
    /// Webhook: where to post.
    pub url: String,
    /// Webhook: header name to the variable holding its value (a bearer token, say).
    pub header_env: std::collections::BTreeMap<String, String>,
    /// The kinds of event it takes; every kind when empty.
    pub events: Vec<String>,
    /// The least time between two messages to it.
    pub min_interval: String,
}

impl Default for RawNotifySink {
    fn default() -> Self {
        Self {
            kind: NotifySinkKind::Webhook,
            name: String::new(),
            chat_id: String::new(),
            token_env: String::new(),
            base_url: String::new(),
            url_env: String::new(),
            url: String::new(),
            header_env: Default::default(),
            events: Vec::new(),
            min_interval: "1s".into(),
        }
    }
}

/// Which bot this is, among several (`identity:`): labels on every series and forwarded record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawIdentity {
    pub account: String,
    pub strategy: String,
    pub venue: String,
}

/// Which venue orders go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VenueKind {
    /// The simulated venue inside the engine.
    Paper,
    /// A FIX 4.4 initiator session to a broker's gateway.
    Fix44,
    /// A bridge to an MT5 terminal whose Expert Advisor connects to mt5bot.
    Mt5,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawVenue {
    pub kind: VenueKind,
    pub paper: RawPaper,
    pub fix44: RawFix44,
    pub mt5: RawMt5,
}

impl Default for RawVenue {
    fn default() -> Self {
        Self { kind: VenueKind::Paper, paper: RawPaper::default(), fix44: RawFix44::default(), mt5: RawMt5::default() }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawMt5 {
    pub listen: String,
    pub magic: u64,
    pub deviation: u32,
    pub type_filling: Filling,
    pub handshake_timeout: String,
    pub heartbeat_interval: String,
    pub max_line_bytes: usize,
    pub max_snapshot_bytes: usize,
    pub max_handshakes: usize,
    pub tls: RawMt5Tls,
}

/// `venue.mt5.tls`: the bridge's listener speaks TLS when `cert_file` is set.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawMt5Tls {
    pub cert_file: String,
    pub key_file: String,
    /// Set: the terminal must show a client certificate this CA signed.
    pub client_ca_file: String,
}

impl Default for RawMt5 {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:7788".into(),
            magic: 5_550_001,
            deviation: 10,
            type_filling: Filling::Ioc,
            handshake_timeout: "5s".into(),
            heartbeat_interval: "10s".into(),
            max_line_bytes: 65_536,
            max_snapshot_bytes: 16 << 20,
            max_handshakes: 32,
            tls: RawMt5Tls::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawFix44 {
    pub connect: String,
    pub sender_comp_id: String,
    pub target_comp_id: String,
    pub heartbeat_interval: String,
    pub reset_on_logon: bool,
    pub logon_timeout: String,
    pub status_timeout: String,
    pub reconnect_min: String,
    pub reconnect_max: String,
    pub time_in_force: TimeInForce,
    pub account: String,
    pub state_dir: String,
    pub schedule: RawFixSchedule,
    pub native_stops: bool,
}

/// When the FIX session runs, with QuickFIX's meaning; empty times: always.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawFixSchedule {
    pub start_time: String,
    pub end_time: String,
    pub start_day: String,
    pub end_day: String,
    pub tz: String,
    pub reset_on_logout: bool,
    pub reset_on_disconnect: bool,
    /// Dates (YYYY-MM-DD, in `tz`) on which the gateway is closed: no session that day.
    pub closed: Vec<String>,
}

impl Default for RawFix44 {
    fn default() -> Self {
        Self {
            connect: "127.0.0.1:9880".into(),
            sender_comp_id: "MT5BOT".into(),
            target_comp_id: "BROKER".into(),
            heartbeat_interval: "30s".into(),
            reset_on_logon: false,
            logon_timeout: "10s".into(),
            status_timeout: "10s".into(),
            reconnect_min: "1s".into(),
            reconnect_max: "30s".into(),
            time_in_force: TimeInForce::Day,
            account: String::new(),
            state_dir: "state".into(),
            schedule: RawFixSchedule::default(),
            native_stops: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawPaper {
    pub latency: String,
    pub slippage_bps: f64,
    pub depth: f64,
    /// When the paper venue charges the night's swaps (HH:MM in `rollover_timezone`), and the
    /// weekday it charges three nights (the weekend's).
    pub rollover: String,
    pub rollover_timezone: String,
    pub triple_swap_day: String,
}

impl Default for RawPaper {
    fn default() -> Self {
        Self {
            latency: "2ms".into(),
            slippage_bps: 0.5,
            depth: 2.0,
            rollover: "17:00".into(),
            rollover_timezone: "America/New_York".into(),
            triple_swap_day: "wed".into(),
        }
    }
}

/// Where ticks come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FeedKind {
    /// A seeded random walk.
    Synthetic,
    /// A `timestamp,symbol,bid,ask` file replayed at its own pace.
    Csv,
    /// Ticks come from the venue (the MT5 terminal streams them).
    Venue,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawSymbol {
    pub name: String,
    pub price: f64,
    /// The smallest quantity the venue takes (MT5's SYMBOL_VOLUME_MIN).
    #[serde(default = "default_lot")]
    pub min_qty: f64,
    /// Quantities are whole multiples of this (MT5's SYMBOL_VOLUME_STEP).
    #[serde(default = "default_lot")]
    pub qty_step: f64,
    /// What a quantity of 1 stands for (MT5's SYMBOL_TRADE_CONTRACT_SIZE).
    #[serde(default = "default_contract_size")]
    pub contract_size: f64,
    /// Commission per lot and side on the paper venue.
    #[serde(default)]
    pub commission_per_lot: f64,
    /// Commission per million of notional (quantity x contract size x price, in the symbol's
    /// price currency) and side on the paper venue, in account currency.
    #[serde(default)]
    pub commission_per_million: f64,
    /// Swap per lot and night on the paper venue, long and short (MT5's sign: positive is
    /// credited, negative charged).
    #[serde(default)]
    pub swap_long: f64,
    #[serde(default)]
    pub swap_short: f64,
    /// The currency its prices, and so its PnL, are in (MT5's SYMBOL_CURRENCY_PROFIT); empty:
    /// the account's.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub currency: String,
    /// The symbol whose quote converts that currency to the account's; empty: found by name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub conversion: String,
}

fn default_contract_size() -> f64 {
    1.0
}

/// The default minimum lot and lot step: 0.01, a micro lot, as most MT5 FX symbols have.
pub const DEFAULT_LOT: f64 = 0.01;

fn default_lot() -> f64 {
    DEFAULT_LOT
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawFeed {
    pub kind: FeedKind,
    pub symbols: Vec<RawSymbol>,
    pub seed: u64,
    pub tick_rate: f64,
    pub volatility: f64,
    pub spread_bps: f64,
    pub csv: RawCsv,
}

impl Default for RawFeed {
    fn default() -> Self {
        Self {
            kind: FeedKind::Synthetic,
            symbols: vec![
                RawSymbol {
                    name: "EURUSD".into(),
                    price: 1.085,
                    min_qty: DEFAULT_LOT,
                    qty_step: DEFAULT_LOT,
                    contract_size: 1.0,
                    commission_per_lot: 0.0,
                    commission_per_million: 0.0,
                    swap_long: 0.0,
                    swap_short: 0.0,
                    currency: String::new(),
                    conversion: String::new(),
                },
                RawSymbol {
                    name: "GBPUSD".into(),
                    price: 1.265,
                    min_qty: DEFAULT_LOT,
                    qty_step: DEFAULT_LOT,
                    contract_size: 1.0,
                    commission_per_lot: 0.0,
                    commission_per_million: 0.0,
                    swap_long: 0.0,
                    swap_short: 0.0,
                    currency: String::new(),
                    conversion: String::new(),
                },
            ],
            seed: 42,
            tick_rate: 1000.0,
            volatility: 0.0001,
            spread_bps: 1.0,
            csv: RawCsv::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawCsv {
    pub path: RawPaths,
    pub speed: f64,
    pub timezone: String,
    pub skip_bad_rows: bool,
}

impl Default for RawCsv {
    fn default() -> Self {
        Self { path: RawPaths::One("data/ticks.csv".into()), speed: 1.0, timezone: "UTC".into(), skip_bad_rows: false }
    }
}

/// One path, or a list of them.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum RawPaths {
    One(String),
    Many(Vec<String>),
}

impl RawPaths {
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            RawPaths::One(p) => vec![p.clone()],
            RawPaths::Many(ps) => ps.clone(),
        }
    }

    pub fn from_vec(mut paths: Vec<String>) -> RawPaths {
        if paths.len() == 1 {
            RawPaths::One(paths.remove(0))
        } else {
            RawPaths::Many(paths)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawModel {
    pub fast_period: u32,
    pub slow_period: u32,
    pub threshold_bps: f64,
    pub order_qty: f64,
    pub order_type: OrderKind,
    pub limit_offset_bps: f64,
    pub sl_bps: f64,
    pub tp_bps: f64,
}

impl Default for RawModel {
    fn default() -> Self {
        Self {
            fast_period: 20,
            slow_period: 100,
            threshold_bps: 0.2,
            order_qty: 1.0,
            order_type: OrderKind::Market,
            limit_offset_bps: 0.5,
            sl_bps: 0.0,
            tp_bps: 0.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawDrift {
    pub enabled: bool,
    pub delta: f64,
    pub threshold: f64,
    pub min_samples: u64,
    pub action: DriftAction,
    pub pause_for: String,
}

impl Default for RawDrift {
    fn default() -> Self {
        Self {
            enabled: true,
            delta: 0.05,
            threshold: 100.0,
            min_samples: 500,
            action: DriftAction::Log,
            pause_for: "5m".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawQueue {
    pub capacity: usize,
    pub max_wait: String,
}

impl Default for RawQueue {
    fn default() -> Self {
        Self { capacity: 1024, max_wait: "5s".into() }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRisk {
    pub max_position: f64,
    pub max_orders_per_second: u32,
    pub max_notional: f64,
    pub max_open_orders: usize,
}

impl Default for RawRisk {
    fn default() -> Self {
        Self { max_position: 5.0, max_orders_per_second: 100, max_notional: 1_000_000.0, max_open_orders: 256 }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawIngress {
    pub enabled: bool,
    pub listen: String,
    pub allow_remote: bool,
    pub max_connections: usize,
    pub max_line_bytes: usize,
    pub stall_timeout: String,
    pub id_retention: String,
    pub id_memory: usize,
}

impl Default for RawIngress {
    fn default() -> Self {
        Self {
            enabled: false,
            listen: "127.0.0.1:9897".into(),
            allow_remote: false,
            max_connections: 32,
            max_line_bytes: 4096,
            stall_timeout: "30s".into(),
            id_retention: "24h".into(),
            id_memory: 65_536,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawMetrics {
    pub listen: String,
    pub max_connections: usize,
    pub header_timeout: String,
    pub body_timeout: String,
    pub idle_timeout: String,
    pub write_timeout: String,
    pub web_config: String,
}

impl Default for RawMetrics {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9898".into(),
            max_connections: 256,
            header_timeout: "5s".into(),
            body_timeout: "10s".into(),
            idle_timeout: "60s".into(),
            write_timeout: "10s".into(),
            web_config: String::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLogging {
    pub level: String,
    pub file: String,
    pub stderr: bool,
    pub channel_capacity: usize,
}

impl Default for RawLogging {
    fn default() -> Self {
        Self { level: "info".into(), file: "logs/mt5bot.log".into(), stderr: true, channel_capacity: 4096 }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawCheckpoint {
    pub path: String,
    pub interval: String,
}

impl Default for RawCheckpoint {
    fn default() -> Self {
        Self { path: "state/checkpoint.bin".into(), interval: "10s".into() }
    }
}

/// Checkpoints: written when `CHECKPOINT_AES_KEY` is set.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointConfig {
    pub path: PathBuf,
    pub interval: Duration,
}

/// How records are shaped for an HTTP log sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Newline-delimited JSON, one record per line.
    Json,
    /// The Elasticsearch `_bulk` API body.
    Elasticsearch,
    /// A JSON array for the Datadog logs intake.
    Datadog,
    /// Grafana Loki's `/loki/api/v1/push` streams.
    Loki,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLogForward {
    pub url: String,
    pub format: LogFormat,
    pub headers: std::collections::BTreeMap<String, String>,
    pub header_env: std::collections::BTreeMap<String, String>,
    pub buffer_records: usize,
    pub batch_records: usize,
    pub spool_dir: String,
    pub spool_max_bytes: u64,
    pub timeout: String,
    pub gzip: bool,
    pub facility: String,
    pub app_name: String,
    pub elasticsearch_index: String,
    pub tls_ca_file: String,
}

impl Default for RawLogForward {
    fn default() -> Self {
        Self {
            url: String::new(),
            format: LogFormat::Json,
            headers: Default::default(),
            header_env: Default::default(),
            buffer_records: 10_000,
            batch_records: 500,
            spool_dir: "state/log-spool".into(),
            spool_max_bytes: 64 << 20,
            timeout: "5s".into(),
            gzip: false,
            facility: "user".into(),
            app_name: "mt5bot".into(),
            elasticsearch_index: "mt5bot-logs".into(),
            tls_ca_file: String::new(),
        }
    }
}

/// Which InfluxDB write API to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InfluxApi {
    /// `POST /api/v2/write?org=&bucket=` with `Authorization: Token` (InfluxDB 2.x, VictoriaMetrics).
    V2,
    /// `POST /write?db=` (InfluxDB 1.x).
    V1,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawInflux {
    pub enabled: bool,
    pub api: InfluxApi,
    pub url: String,
    pub org: String,
    pub bucket: String,
    pub database: String,
    pub interval: String,
    pub buffer_points: usize,
    pub batch_points: usize,
    pub timeout: String,
}

impl Default for RawInflux {
    fn default() -> Self {
        Self {
            enabled: false,
            api: InfluxApi::V2,
            url: String::new(),
            org: String::new(),
            bucket: String::new(),
            database: "mt5bot".into(),
            interval: "10s".into(),
            buffer_points: 100_000,
            batch_points: 5_000,
            timeout: "5s".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawEngine {
    pub ready_deadline: String,
    pub shutdown_grace: String,
    pub status_interval: String,
}

impl Default for RawEngine {
    fn default() -> Self {
        Self { ready_deadline: "2s".into(), shutdown_grace: "2s".into(), status_interval: "60s".into() }
    }
}

/// Equity circuit breakers. Each is off while its limit is 0.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawProtection {
    pub starting_balance: f64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub account_currency: String,
    pub day_start: String,
    pub timezone: String,
    pub max_daily_loss: RawDailyLoss,
    pub max_drawdown: RawDrawdown,
    pub max_consecutive_losses: RawConsecutiveLosses,
    pub max_position_loss: RawPositionLoss,
    pub exit_order: OrderKind,
    pub exit_limit_bps: f64,
}

impl Default for RawProtection {
    fn default() -> Self {
        Self {
            starting_balance: 10_000.0,
            account_currency: String::new(),
            day_start: "00:00".into(),
            timezone: "UTC".into(),
            max_daily_loss: RawDailyLoss::default(),
            max_drawdown: RawDrawdown::default(),
            max_consecutive_losses: RawConsecutiveLosses::default(),
            max_position_loss: RawPositionLoss::default(),
            exit_order: OrderKind::Market,
            exit_limit_bps: 20.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawDailyLoss {
    pub amount: f64,
    pub fraction: f64,
    pub action: BreakerAction,
    pub resume_after: String,
}

impl Default for RawDailyLoss {
    fn default() -> Self {
        Self { amount: 0.0, fraction: 0.0, action: BreakerAction::Halted, resume_after: String::new() }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawDrawdown {
    pub fraction: f64,
    pub window: String,
    pub action: BreakerAction,
    pub resume_after: String,
}

impl Default for RawDrawdown {
    fn default() -> Self {
        Self { fraction: 0.0, window: String::new(), action: BreakerAction::Halted, resume_after: String::new() }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConsecutiveLosses {
    pub count: u32,
    pub action: BreakerAction,
    pub resume_after: String,
}

impl Default for RawConsecutiveLosses {
    fn default() -> Self {
        Self { count: 0, action: BreakerAction::Halted, resume_after: String::new() }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawPositionLoss {
    pub amount: f64,
    pub action: BreakerAction,
    pub resume_after: String,
}

impl Default for RawPositionLoss {
    fn default() -> Self {
        Self { amount: 0.0, action: BreakerAction::Halted, resume_after: String::new() }
    }
}

/// When each symbol's market is open: a calendar per symbol.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSessions {
    /// The calendar of the symbols `symbols` does not list.
    pub default: String,
    /// Symbol -> calendar name.
    pub symbols: std::collections::BTreeMap<String, String>,
    /// Calendars beside the built-in `always` and `fx`.
    pub calendars: std::collections::BTreeMap<String, RawCalendar>,
}

impl Default for RawSessions {
    fn default() -> Self {
        Self { default: "always".into(), symbols: Default::default(), calendars: Default::default() }
    }
}

/// One calendar: open windows per weekday in a time zone, closed days and early closes.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawCalendar {
    /// A calendar whose zone and weekday windows this one takes (`fx`, or another of
    /// `calendars`); its own closed days, early closes and close/open rules still apply.
    pub like: String,
    pub tz: String,
    pub mon: Vec<String>,
    pub tue: Vec<String>,
    pub wed: Vec<String>,
    pub thu: Vec<String>,
    pub fri: Vec<String>,
    pub sat: Vec<String>,
    pub sun: Vec<String>,
    /// Dates closed all day, YYYY-MM-DD in `tz`.
    pub closed: Vec<String>,
    /// Date -> the time (HH:MM in `tz`) the market closes that day.
    pub early_close: std::collections::BTreeMap<String, String>,
    pub close_before: String,
    pub at_close: AtClose,
    pub open_after: String,
}

impl Default for RawCalendar {
    fn default() -> Self {
        Self {
            like: String::new(),
            tz: String::new(),
            mon: Vec::new(),
            tue: Vec::new(),
            wed: Vec::new(),
            thu: Vec::new(),
            fri: Vec::new(),
            sat: Vec::new(),
            sun: Vec::new(),
            closed: Vec::new(),
            early_close: Default::default(),
            close_before: String::new(),
            at_close: AtClose::Nothing,
            open_after: String::new(),
        }
    }
}

impl RawCalendar {
    /// The weekday lists, Monday first, with their keys.
    pub fn week(&self) -> [(&'static str, &Vec<String>); 7] {
        [
            ("mon", &self.mon),
            ("tue", &self.tue),
            ("wed", &self.wed),
            ("thu", &self.thu),
            ("fri", &self.fri),
            ("sat", &self.sat),
            ("sun", &self.sun),
        ]
    }
}
