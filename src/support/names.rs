//! Names shared by several parts of the program, declared once: environment variables the
//! provisioning helpers write and the daemon, diagnostics and `ctl` read, and a quantity tolerance.
//! (Bottom of the crate: imports nothing of it.)

/// The Pushgateway URL, written into runtime.env by `mt5bot prometheus-endpoints`.
pub const PROM_PUSH_URL: &str = "PROM_PUSH_URL";
/// The Prometheus query URL, written into runtime.env by `mt5bot prometheus-endpoints`.
pub const PROM_QUERY_URL: &str = "PROM_QUERY_URL";

/// The control API's bearer key, written by `mt5bot runtime-secrets`.
pub const API_KEY: &str = "API_KEY";
/// The secret the MT5 Expert Advisor proves it knows (HMAC), written by `mt5bot runtime-secrets`.
pub const CONTROLLER_SHARED_SECRET: &str = "CONTROLLER_SHARED_SECRET";
/// The checkpoint and journal AES-256-GCM key, written by `mt5bot runtime-secrets`.
pub const CHECKPOINT_AES_KEY: &str = "CHECKPOINT_AES_KEY";
/// The key before the last rotation, still accepted for reading.
pub const CHECKPOINT_AES_KEY_PREVIOUS: &str = "CHECKPOINT_AES_KEY_PREVIOUS";
/// The InfluxDB v2 write token, written by `mt5bot influx-bootstrap`.
pub const INFLUXDB_TOKEN: &str = "INFLUXDB_TOKEN";
/// The FIX Logon username and password (environment or `$CREDENTIALS_DIRECTORY`).
pub const FIX_USERNAME: &str = "FIX_USERNAME";
pub const FIX_PASSWORD: &str = "FIX_PASSWORD";

/// Quantities closer than this are equal (float noise in fills and positions).
pub const QTY_EPSILON: f64 = 1e-9;
