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

use crate::domain::types::{DriftAction, Filling, OrderKind, TimeInForce};

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

// ---------------------------------------------------------------------------------------------
// Stage one: the raw document.
// ---------------------------------------------------------------------------------------------

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
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawPaper {
    pub latency: String,
    pub slippage_bps: f64,
    pub depth: f64,
}

impl Default for RawPaper {
    fn default() -> Self {
        Self { latency: "2ms".into(), slippage_bps: 0.5, depth: 2.0 }
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
                RawSymbol { name: "EURUSD".into(), price: 1.085, min_qty: DEFAULT_LOT, qty_step: DEFAULT_LOT },
                RawSymbol { name: "GBPUSD".into(), price: 1.265, min_qty: DEFAULT_LOT, qty_step: DEFAULT_LOT },
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
    pub path: String,
    pub speed: f64,
}

impl Default for RawCsv {
    fn default() -> Self {
        Self { path: "data/ticks.csv".into(), speed: 1.0 }
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

// ---------------------------------------------------------------------------------------------
// Stage two: the typed config.
// ---------------------------------------------------------------------------------------------

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
}

#[derive(Debug, Clone, PartialEq)]
pub struct PaperConfig {
    pub latency: Duration,
    pub slippage_bps: f64,
    pub depth: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SymbolConfig {
    pub name: String,
    pub price: f64,
    /// Smaller quantities are refused at ingress; model orders below it are not sent.
    pub min_qty: f64,
    /// Ingress quantities must be whole multiples of it; model orders are rounded down to it.
    pub qty_step: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum FeedSource {
    Synthetic {
        seed: u64,
        tick_rate: f64,
        volatility: f64,
        spread_bps: f64,
    },
    Csv {
        path: PathBuf,
        speed: f64,
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
        if !m.ip().is_loopback() {
            w.push(format!(
                "metrics.listen {m} is not a loopback address: /metrics, /healthz and /readyz answer anyone who can \
                 reach it, without TLS (the control API still needs API_KEY); keep it on 127.0.0.1 behind a reverse \
                 proxy with TLS, or let a firewall admit only your Prometheus"
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
            FeedSource::Csv { path, speed } => {
                let d = RawFeed::default();
                let csv = RawCsv { path: path.display().to_string(), speed: *speed };
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
                paper: RawPaper { latency: format_duration(p.latency), slippage_bps: p.slippage_bps, depth: p.depth },
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
        }
    }
}

/// Turns a serde_yaml error into a [`ConfigError`] with the line and key it names.
/// Quoted values longer than this are not repeated in an error message.
const MAX_QUOTED_VALUE: usize = 40;

/// Replaces every value quoted in a message (`"..."` or `` `...` ``, as serde quotes them) that is
/// longer than [`MAX_QUOTED_VALUE`] with its length: the message says where and what kind of value
/// was wrong without repeating a long one (a token pasted in the wrong place, a line of another
/// file).
fn redact_long_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(start) = rest.find(['"', '`']) {
        let quote = rest[start..].chars().next().unwrap_or('"');
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let Some(end) = after.find(quote) else {
            out.push_str(&rest[start..]);
            return out;
        };
        let value = &after[..end];
        if value.chars().count() > MAX_QUOTED_VALUE {
            out.push_str(&format!("a value of {} characters (not shown)", value.chars().count()));
        } else {
            out.push(quote);
            out.push_str(value);
            out.push(quote);
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

fn yaml_error(e: &serde_yaml::Error, text: &str, name: &str) -> ConfigError {
    // A file that is not a YAML mapping is not a config at all (an env file of secrets given by
    // mistake, a symlink to the wrong file): say so and where, and repeat nothing of it.
    let mapping = matches!(serde_yaml::from_str::<serde_yaml::Value>(text), Ok(serde_yaml::Value::Mapping(_)));
    if !mapping {
        return ConfigError {
            file: name.to_owned(),
            line: e.location().map(|l| l.line()),
            key: String::new(),
            message: "this is not a YAML mapping of config sections, so it is not an mt5bot config (is it the \
                      right file? a config has sections such as venue:, feed:, risk:, metrics:); its content is \
                      not shown, since it may be a secrets file"
                .into(),
        };
    }
    let line = e.location().map(|l| l.line());
    let full = e.to_string();
    // serde_yaml renders "path.to.key: message at line L column C"; split the parts apart.
    let without_loc = match full.rfind(" at line ") {
        Some(i) => &full[..i],
        None => full.as_str(),
    };
    let (key, message) = match without_loc.split_once(": ") {
        Some((k, m)) if !k.contains(' ') => (k.to_owned(), m.to_owned()),
        _ => (String::new(), without_loc.to_owned()),
    };
    // serde names the struct's key for an unknown field; point at the offending key itself.
    let key = match (message.strip_prefix("unknown field `"), key.is_empty()) {
        (Some(rest), _) => {
            let field = rest.split('`').next().unwrap_or_default();
            if key.is_empty() {
                field.to_owned()
            } else {
                format!("{key}.{field}")
            }
        }
        _ => key,
    };
    let line = line.or_else(|| locate(text, &key));
    ConfigError { file: name.to_owned(), line, key, message: redact_long_values(&message) }
}

/// Finds the 1-based line of a dotted key in block-style YAML, for errors raised after parsing.
///
/// Sequence items are addressed as `key[N]`. Returns `None` where the document uses another style.
pub fn locate(text: &str, key: &str) -> Option<usize> {
    if key.is_empty() {
        return None;
    }
    // Each line as (line index, column where its content starts after any "- " markers, content).
    let lines: Vec<(usize, usize, &str)> = text
        .lines()
        .enumerate()
        .filter_map(|(no, line)| {
            let trimmed = line.trim_start();
            (!trimmed.is_empty() && !trimmed.starts_with('#')).then(|| (no, line.len() - trimmed.len(), trimmed))
        })
        .collect();
    let mut cursor = 0usize; // index into `lines`
    let mut min_col = 0usize;
    let mut found = None;
    for part in key.split('.') {
        let (name, index) = match part.split_once('[') {
            Some((n, rest)) => (n, Some(rest.trim_end_matches(']').parse::<usize>().ok()?)),
            None => (part, None),
        };
        let mut hit = None;
        for (i, &(no, col, content)) in lines.iter().enumerate().skip(cursor) {
            let (col, content) = strip_dashes(col, content);
            if col < min_col {
                break; // left the parent's block
            }
            if content.strip_prefix(name).is_some_and(|r| r.trim_start().starts_with(':')) {
                hit = Some((i, no, col));
                break;
            }
        }
        let (i, no, col) = hit?;
        found = Some(no + 1);
        cursor = i + 1;
        min_col = col + 1;
        if let Some(want) = index {
            let mut seen = 0usize;
            let mut item = None;
            for (j, &(no, col, content)) in lines.iter().enumerate().skip(cursor) {
                if col < min_col.saturating_sub(1) {
                    break;
                }
                if content.starts_with("- ") || content == "-" {
                    if seen == want {
                        item = Some((j, no, col));
                        break;
                    }
                    seen += 1;
                }
            }
            let (j, no, col) = item?;
            found = Some(no + 1);
            // The item's first key shares the dash's line; search from it, inside the item.
            cursor = j;
            min_col = col + 1;
        }
    }
    found
}

/// Skips "- " sequence markers, returning the column and text of the content after them.
fn strip_dashes(mut col: usize, mut content: &str) -> (usize, &str) {
    while let Some(rest) = content.strip_prefix("- ") {
        let trimmed = rest.trim_start();
        col += content.len() - trimmed.len();
        content = trimmed;
    }
    (col, content)
}

struct Validator<'a> {
    name: &'a str,
    text: &'a str,
    errors: Vec<ConfigError>,
}

impl Validator<'_> {
    fn fail(&mut self, key: &str, message: String) {
        self.errors.push(ConfigError {
            file: self.name.to_owned(),
            line: locate(self.text, key),
            key: key.to_owned(),
            message,
        });
    }

    fn duration(&mut self, key: &str, value: &str, min: Duration, max: Duration) -> Duration {
        match parse_duration(value) {
            Ok(d) if d >= min && d <= max => d,
            Ok(_) => {
                self.fail(
                    key,
                    format!(
                        "{value:?} is out of range; accepted: {} to {}",
                        format_duration(min),
                        format_duration(max)
                    ),
                );
                min
            }
            Err(e) => {
                self.fail(key, e);
                min
            }
        }
    }

    fn range_f64(&mut self, key: &str, value: f64, min: f64, max: f64, what: &str) -> f64 {
        if !(value.is_finite() && value >= min && value <= max) {
            self.fail(key, format!("{value} is out of range; accepted: {what}"));
        }
        value
    }

    fn range_usize(&mut self, key: &str, value: usize, min: usize, max: usize) -> usize {
        if value < min || value > max {
            self.fail(key, format!("{value} is out of range; accepted: {min} to {max}"));
        }
        value
    }

    fn addr(&mut self, key: &str, value: &str) -> SocketAddr {
        match value.parse::<SocketAddr>() {
            Ok(a) => a,
            Err(_) => {
                self.fail(
                    key,
                    format!(
                        "{value:?} is not a socket address; accepted: IP:PORT such as 127.0.0.1:9898 or [::1]:9898"
                    ),
                );
                SocketAddr::from(([127, 0, 0, 1], 0))
            }
        }
    }
}

/// Stage two: checks the raw document and builds the typed [`Config`]. Reports the first error.
pub fn validate(raw: RawConfig, name: &str, text: &str) -> Result<Config, ConfigError> {
    let mut v = Validator { name, text, errors: Vec::new() };

    let paper = PaperConfig {
        latency: v.duration("venue.paper.latency", &raw.venue.paper.latency, Duration::ZERO, Duration::from_secs(10)),
        slippage_bps: v.range_f64(
            "venue.paper.slippage_bps",
            raw.venue.paper.slippage_bps,
            0.0,
            1000.0,
            "0 to 1000 basis points",
        ),
        depth: v.range_f64(
            "venue.paper.depth",
            raw.venue.paper.depth,
            f64::MIN_POSITIVE,
            1e12,
            "a quantity greater than 0",
        ),
    };
    let fx = &raw.venue.fix44;
    let comp_id = |v: &mut Validator<'_>, key: &str, value: &str| {
        if !(1..=64).contains(&value.len())
            || !value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            v.fail(key, format!("{value:?} is not accepted; accepted: 1 to 64 of A-Z a-z 0-9 . _ -"));
        }
        value.to_owned()
    };
    let fix44 = Fix44Config {
        connect: {
            let c = fx.connect.trim();
            let ok = c.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
            if !ok {
                v.fail(
                    "venue.fix44.connect",
                    format!("{c:?} is not accepted; accepted: HOST:PORT of the broker's FIX gateway, e.g. fix.example.com:9880"),
                );
            }
            c.to_owned()
        },
        sender_comp_id: comp_id(&mut v, "venue.fix44.sender_comp_id", &fx.sender_comp_id),
        target_comp_id: comp_id(&mut v, "venue.fix44.target_comp_id", &fx.target_comp_id),
        heartbeat_interval: {
            let d = v.duration(
                "venue.fix44.heartbeat_interval",
                &fx.heartbeat_interval,
                Duration::from_secs(1),
                Duration::from_secs(300),
            );
            if d.subsec_nanos() != 0 {
                v.fail("venue.fix44.heartbeat_interval", "must be whole seconds (FIX HeartBtInt), e.g. 30s".into());
            }
            d
        },
        reset_on_logon: fx.reset_on_logon,
        logon_timeout: v.duration(
            "venue.fix44.logon_timeout",
            &fx.logon_timeout,
            Duration::from_millis(100),
            Duration::from_secs(300),
        ),
        status_timeout: v.duration(
            "venue.fix44.status_timeout",
            &fx.status_timeout,
            Duration::from_millis(100),
            Duration::from_secs(3600),
        ),
        reconnect_min: v.duration(
            "venue.fix44.reconnect_min",
            &fx.reconnect_min,
            Duration::from_millis(10),
            Duration::from_secs(3600),
        ),
        reconnect_max: v.duration(
            "venue.fix44.reconnect_max",
            &fx.reconnect_max,
            Duration::from_millis(10),
            Duration::from_secs(3600),
        ),
        time_in_force: fx.time_in_force,
        account: {
            if fx.account.len() > 64 || fx.account.bytes().any(|b| !b.is_ascii_graphic()) {
                v.fail("venue.fix44.account", "is not accepted; accepted: up to 64 printable ASCII characters".into());
            }
            fx.account.clone()
        },
        state_dir: PathBuf::from(&fx.state_dir),
    };
    if fix44.reconnect_max < fix44.reconnect_min {
        v.fail("venue.fix44.reconnect_max", "is less than venue.fix44.reconnect_min".into());
    }
    if fx.state_dir.trim().is_empty() {
        v.fail("venue.fix44.state_dir", "is empty; accepted: a folder path, e.g. state".into());
    }
    let rm = &raw.venue.mt5;
    let mt5 = Mt5Config {
        listen: v.addr("venue.mt5.listen", &rm.listen),
        magic: rm.magic,
        deviation: rm.deviation,
        type_filling: rm.type_filling,
        handshake_timeout: v.duration(
            "venue.mt5.handshake_timeout",
            &rm.handshake_timeout,
            Duration::from_millis(100),
            Duration::from_secs(60),
        ),
        heartbeat_interval: v.duration(
            "venue.mt5.heartbeat_interval",
            &rm.heartbeat_interval,
            Duration::from_millis(100),
            Duration::from_secs(300),
        ),
        max_line_bytes: v.range_usize("venue.mt5.max_line_bytes", rm.max_line_bytes, 1024, 16 << 20),
        max_snapshot_bytes: v.range_usize("venue.mt5.max_snapshot_bytes", rm.max_snapshot_bytes, 64 << 10, 256 << 20),
        max_handshakes: v.range_usize("venue.mt5.max_handshakes", rm.max_handshakes, 1, MAX_MT5_HANDSHAKES),
    };
    if rm.magic == 0 || rm.magic > i64::MAX as u64 {
        v.fail("venue.mt5.magic", format!("{} is out of range; accepted: 1 to {}", rm.magic, i64::MAX));
    }
    if rm.deviation > 100_000 {
        v.fail("venue.mt5.deviation", format!("{} is out of range; accepted: 0 to 100000 points", rm.deviation));
    }
    match (raw.venue.kind, raw.feed.kind) {
        (VenueKind::Mt5, FeedKind::Venue) => {}
        (VenueKind::Mt5, _) => v.fail(
            "feed.kind",
            "must be venue with venue.kind: mt5 (the terminal streams the ticks); accepted: venue".into(),
        ),
        (_, FeedKind::Venue) => {
            v.fail("feed.kind", "venue is only for venue.kind: mt5; accepted: synthetic, csv".into())
        }
        _ => {}
    }
    let venue = VenueConfig { kind: raw.venue.kind, paper, fix44, mt5 };

    let f = &raw.feed;
    if f.symbols.is_empty() {
        v.fail("feed.symbols", "is empty; accepted: a list of {name, price} entries".into());
    }
    if f.symbols.len() > MAX_SYMBOLS {
        v.fail("feed.symbols", format!("has {} entries; accepted: at most {MAX_SYMBOLS}", f.symbols.len()));
    }
    let mut symbols = Vec::with_capacity(f.symbols.len());
    for (i, s) in f.symbols.iter().enumerate() {
        let key = format!("feed.symbols[{i}].name");
        if !valid_symbol(&s.name) {
            v.fail(&key, format!("{:?} is not a symbol; accepted: 1 to 32 characters of A-Z a-z 0-9 . _ - #", s.name));
        } else if symbols.iter().any(|x: &SymbolConfig| x.name == s.name) {
            v.fail(&key, format!("{:?} is listed twice; accepted: each symbol once", s.name));
        }
        let price = v.range_f64(
            &format!("feed.symbols[{i}].price"),
            s.price,
            f64::MIN_POSITIVE,
            1e12,
            "a price greater than 0",
        );
        let min_qty =
            v.range_f64(&format!("feed.symbols[{i}].min_qty"), s.min_qty, 1e-8, 1e9, "a quantity from 1e-8 to 1e9");
        let qty_step =
            v.range_f64(&format!("feed.symbols[{i}].qty_step"), s.qty_step, 1e-8, 1e9, "a quantity from 1e-8 to 1e9");
        symbols.push(SymbolConfig { name: s.name.clone(), price, min_qty, qty_step });
    }
    let source = match f.kind {
        FeedKind::Synthetic => FeedSource::Synthetic {
            seed: f.seed,
            tick_rate: v.range_f64("feed.tick_rate", f.tick_rate, 0.1, 1_000_000.0, "0.1 to 1000000 ticks per second"),
            volatility: v.range_f64(
                "feed.volatility",
                f.volatility,
                0.0,
                0.1,
                "0 to 0.1 (per-tick standard deviation of log returns)",
            ),
            spread_bps: v.range_f64("feed.spread_bps", f.spread_bps, 0.0, 10_000.0, "0 to 10000 basis points"),
        },
        FeedKind::Venue => FeedSource::Venue,
        FeedKind::Csv => {
            if f.csv.path.trim().is_empty() {
                v.fail("feed.csv.path", "is empty; accepted: the path of a timestamp,symbol,bid,ask file".into());
            }
            FeedSource::Csv {
                path: PathBuf::from(&f.csv.path),
                speed: v.range_f64(
                    "feed.csv.speed",
                    f.csv.speed,
                    0.0,
                    1e6,
                    "0 (as fast as possible) or a positive replay speed factor",
                ),
            }
        }
    };

    let m = &raw.model;
    if m.fast_period < 1 {
        v.fail("model.fast_period", format!("{} is out of range; accepted: at least 1", m.fast_period));
    }
    if m.slow_period <= m.fast_period {
        v.fail(
            "model.slow_period",
            format!("{} must be greater than model.fast_period ({})", m.slow_period, m.fast_period),
        );
    }
    let model = ModelConfig {
        fast_period: m.fast_period,
        slow_period: m.slow_period,
        threshold_bps: v.range_f64("model.threshold_bps", m.threshold_bps, 0.0, 10_000.0, "0 to 10000 basis points"),
        order_qty: v.range_f64("model.order_qty", m.order_qty, f64::MIN_POSITIVE, 1e12, "a quantity greater than 0"),
        order_type: m.order_type,
        limit_offset_bps: v.range_f64(
            "model.limit_offset_bps",
            m.limit_offset_bps,
            0.0,
            10_000.0,
            "0 to 10000 basis points",
        ),
    };

    let d = &raw.drift;
    let drift = DriftConfig {
        enabled: d.enabled,
        delta: v.range_f64("drift.delta", d.delta, 0.0, 1e9, "a number at least 0"),
        threshold: v.range_f64("drift.threshold", d.threshold, f64::MIN_POSITIVE, 1e12, "a number greater than 0"),
        min_samples: d.min_samples,
        action: d.action,
        pause_for: v.duration("drift.pause_for", &d.pause_for, Duration::from_secs(1), Duration::from_secs(7 * 86400)),
    };

    let cap = raw.queue.capacity;
    if cap == 0 || !cap.is_power_of_two() || cap > MAX_QUEUE_CAPACITY {
        v.fail(
            "queue.capacity",
            format!("{cap} is not accepted; accepted: a power of two from 1 to {MAX_QUEUE_CAPACITY} (e.g. 1024)"),
        );
    }

    let queue_max_wait =
        v.duration("queue.max_wait", &raw.queue.max_wait, Duration::from_millis(1), Duration::from_secs(3600));

    let r = &raw.risk;
    let risk = RiskConfig {
        max_position: v.range_f64(
            "risk.max_position",
            r.max_position,
            f64::MIN_POSITIVE,
            1e12,
            "a quantity greater than 0",
        ),
        max_orders_per_second: r.max_orders_per_second,
        max_notional: v.range_f64(
            "risk.max_notional",
            r.max_notional,
            f64::MIN_POSITIVE,
            1e15,
            "an amount greater than 0",
        ),
        max_open_orders: v.range_usize("risk.max_open_orders", r.max_open_orders, 1, 65_536),
    };
    if r.max_orders_per_second == 0 {
        v.fail("risk.max_orders_per_second", "0 is out of range; accepted: 1 to 4294967295".into());
    }

    let id_retention = v.duration(
        "ingress.id_retention",
        &raw.ingress.id_retention,
        Duration::from_secs(60),
        Duration::from_secs(366 * 86_400),
    );
    let id_memory = v.range_usize("ingress.id_memory", raw.ingress.id_memory, 1024, 16 << 20);
    let ingress = if raw.ingress.enabled {
        let ri = &raw.ingress;
        let listen = v.addr("ingress.listen", &ri.listen);
        if !listen.ip().is_loopback() && !ri.allow_remote {
            v.fail(
                "ingress.listen",
                format!(
                    "{listen} is not a loopback address, and the ingress has no authentication: anyone who reaches \
                     it can trade; keep it on 127.0.0.1, or set ingress.allow_remote: true if a firewall admits only \
                     your strategies"
                ),
            );
        }
        Some(IngressConfig {
            listen,
            allow_remote: ri.allow_remote,
            max_connections: v.range_usize("ingress.max_connections", ri.max_connections, 1, MAX_INGRESS_CONNECTIONS),
            max_line_bytes: v.range_usize("ingress.max_line_bytes", ri.max_line_bytes, 256, 1 << 20),
            stall_timeout: v.duration(
                "ingress.stall_timeout",
                &ri.stall_timeout,
                Duration::from_millis(100),
                Duration::from_secs(3600),
            ),
        })
    } else {
        None
    };

    let rmx = &raw.metrics;
    let timeout = |v: &mut Validator<'_>, key: &str, value: &str| {
        v.duration(key, value, Duration::from_millis(100), Duration::from_secs(3600))
    };
    let metrics = MetricsConfig {
        listen: v.addr("metrics.listen", &rmx.listen),
        max_connections: v.range_usize("metrics.max_connections", rmx.max_connections, 1, 65_536),
        header_timeout: timeout(&mut v, "metrics.header_timeout", &rmx.header_timeout),
        body_timeout: timeout(&mut v, "metrics.body_timeout", &rmx.body_timeout),
        idle_timeout: timeout(&mut v, "metrics.idle_timeout", &rmx.idle_timeout),
        write_timeout: timeout(&mut v, "metrics.write_timeout", &rmx.write_timeout),
    };

    let level = match raw.logging.level.to_ascii_lowercase().as_str() {
        "off" => log::LevelFilter::Off,
        "error" => log::LevelFilter::Error,
        "warn" => log::LevelFilter::Warn,
        "info" => log::LevelFilter::Info,
        "debug" => log::LevelFilter::Debug,
        "trace" => log::LevelFilter::Trace,
        other => {
            v.fail(
                "logging.level",
                format!("{other:?} is not a level; accepted: off, error, warn, info, debug, trace"),
            );
            log::LevelFilter::Info
        }
    };
    if raw.logging.file.trim().is_empty() {
        v.fail("logging.file", "is empty; accepted: a file path such as logs/mt5bot.log".into());
    }
    let logging = LoggingConfig {
        level,
        file: PathBuf::from(&raw.logging.file),
        stderr: raw.logging.stderr,
        channel_capacity: v.range_usize("logging.channel_capacity", raw.logging.channel_capacity, 16, 1 << 20),
    };

    let i = &raw.influx;
    let influx = if i.enabled {
        let url_ok = i.url.is_empty() || i.url.starts_with("http://") || i.url.starts_with("https://");
        if !url_ok {
            v.fail(
                "influx.url",
                format!(
                    "{:?} is not accepted; accepted: empty (use INFLUXDB_URL) or an http:// or https:// URL",
                    crate::support::urls::redact(&i.url)
                ),
            );
        }
        if i.api == InfluxApi::V1 && i.database.trim().is_empty() {
            v.fail("influx.database", "is empty; accepted: the InfluxDB 1.x database to write to".into());
        }
        let buffer_points = v.range_usize("influx.buffer_points", i.buffer_points, 100, 10_000_000);
        let batch_points = v.range_usize("influx.batch_points", i.batch_points, 1, 100_000);
        Some(InfluxConfig {
            api: i.api,
            url: i.url.trim_end_matches('/').to_owned(),
            org: i.org.clone(),
            bucket: i.bucket.clone(),
            database: i.database.clone(),
            interval: v.duration("influx.interval", &i.interval, Duration::from_millis(100), Duration::from_secs(3600)),
            buffer_points,
            batch_points,
            timeout: v.duration("influx.timeout", &i.timeout, Duration::from_millis(100), Duration::from_secs(60)),
        })
    } else {
        None
    };

    let lf = &raw.log_forward;
    let log_forward = if lf.url.trim().is_empty() {
        None
    } else {
        let url = lf.url.trim().to_owned();
        let host_port = |rest: &str| -> Option<String> {
            let hp = rest.trim_end_matches('/');
            let (host, port) = hp.rsplit_once(':')?;
            (!host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) && !hp.contains('/')).then(|| hp.to_owned())
        };
        let sink = if url.starts_with("http://") || url.starts_with("https://") {
            Some(LogSink::Http { url: url.clone() })
        } else if url.starts_with("syslog") && crate::support::urls::split_userinfo(&url).1.is_some() {
            v.fail(
                "log_forward.url",
                "a syslog URL takes no user:password@ (syslog has no login); remove it, and keep it out of the \
                 config file"
                    .into(),
            );
            Some(LogSink::SyslogTcp { addr: String::new() })
        } else if let Some(rest) = url.strip_prefix("syslog+udp://") {
            host_port(rest).map(|addr| LogSink::SyslogUdp { addr })
        } else if let Some(rest) = url.strip_prefix("syslog+tcp://").or_else(|| url.strip_prefix("syslog://")) {
            host_port(rest).map(|addr| LogSink::SyslogTcp { addr })
        } else if let Some(rest) = url.strip_prefix("syslog+tls://") {
            host_port(rest).map(|addr| LogSink::SyslogTls { addr })
        } else {
            None
        };
        let sink = sink.unwrap_or_else(|| {
            v.fail(
                "log_forward.url",
                format!("{:?} is not accepted; accepted: http://HOST[:PORT]/PATH, https://..., syslog://HOST:PORT (TCP), syslog+tls://HOST:PORT (TLS), syslog+udp://HOST:PORT", crate::support::urls::redact(&url)),
            );
            LogSink::Http { url: url.clone() }
        });
        let facility = FACILITIES.iter().find(|(n, _)| *n == lf.facility).map(|(_, c)| *c).unwrap_or_else(|| {
            let names: Vec<&str> = FACILITIES.iter().map(|(n, _)| *n).collect();
            v.fail(
                "log_forward.facility",
                format!("{:?} is not a syslog facility; accepted: {}", lf.facility, names.join(", ")),
            );
            1
        });
        for (name, var) in &lf.header_env {
            if var.trim().is_empty() || name.trim().is_empty() {
                v.fail(
                    "log_forward.header_env",
                    "maps a header name to the environment variable holding its value; neither may be empty".into(),
                );
            }
        }
        Some(LogForwardConfig {
            url,
            sink,
            format: lf.format,
            headers: lf.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            header_env: lf.header_env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            buffer_records: v.range_usize("log_forward.buffer_records", lf.buffer_records, 10, 10_000_000),
            batch_records: v.range_usize("log_forward.batch_records", lf.batch_records, 1, 1000),
            spool_dir: PathBuf::from(&lf.spool_dir),
            spool_max_bytes: lf.spool_max_bytes,
            timeout: v.duration(
                "log_forward.timeout",
                &lf.timeout,
                Duration::from_millis(100),
                Duration::from_secs(60),
            ),
            gzip: lf.gzip,
            facility,
            app_name: lf.app_name.clone(),
            elasticsearch_index: lf.elasticsearch_index.clone(),
            tls_ca_file: (!lf.tls_ca_file.trim().is_empty()).then(|| PathBuf::from(lf.tls_ca_file.trim())),
        })
    };
    if lf.spool_max_bytes < 1 << 16 {
        v.fail("log_forward.spool_max_bytes", format!("{} is too small; accepted: at least 65536", lf.spool_max_bytes));
    }
    if lf.app_name.is_empty() || lf.app_name.len() > 48 || !lf.app_name.bytes().all(|b| b.is_ascii_graphic()) {
        v.fail(
            "log_forward.app_name",
            format!(
                "{:?} is not accepted; accepted: 1 to 48 printable ASCII characters (RFC 5424 APP-NAME)",
                lf.app_name
            ),
        );
    }

    if raw.checkpoint.path.trim().is_empty() {
        v.fail("checkpoint.path", "is empty; accepted: a file path such as state/checkpoint.bin".into());
    }
    let checkpoint = CheckpointConfig {
        path: PathBuf::from(&raw.checkpoint.path),
        interval: v.duration(
            "checkpoint.interval",
            &raw.checkpoint.interval,
            Duration::from_millis(100),
            Duration::from_secs(86400),
        ),
    };

    let e = &raw.engine;
    let engine = EngineConfig {
        ready_deadline: v.duration(
            "engine.ready_deadline",
            &e.ready_deadline,
            Duration::from_millis(100),
            Duration::from_secs(3600),
        ),
        shutdown_grace: v.duration(
            "engine.shutdown_grace",
            &e.shutdown_grace,
            Duration::ZERO,
            Duration::from_secs(600),
        ),
        status_interval: v.duration(
            "engine.status_interval",
            &e.status_interval,
            Duration::from_secs(1),
            Duration::from_secs(86400),
        ),
    };

    if let Some(first) = v.errors.into_iter().next() {
        return Err(first);
    }
    Ok(Config {
        source: name.to_owned(),
        venue,
        feed: FeedConfig { symbols, source },
        model,
        drift,
        queue_capacity: cap,
        queue_max_wait,
        id_retention,
        id_memory,
        risk,
        ingress,
        metrics,
        logging,
        influx,
        log_forward,
        checkpoint,
        engine,
    })
}

/// Symbols are short and plain, so they fit the engine's fixed-size ids and every wire format.
pub fn valid_symbol(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'#'))
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
        let text = include_str!("../config.example.yaml");
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
