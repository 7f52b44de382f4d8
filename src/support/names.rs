//! Names shared by several parts of the program, declared once: environment variables the
//! provisioning helpers write and the daemon, diagnostics and `ctl` read, and a quantity tolerance.
//! (Bottom of the crate: imports nothing of it.)

/// The Pushgateway URL, written into runtime.env by `mt5bot prometheus-endpoints`.
pub const PROM_PUSH_URL: &str = "PROM_PUSH_URL";
/// The Prometheus query URL, written into runtime.env by `mt5bot prometheus-endpoints`.
pub const PROM_QUERY_URL: &str = "PROM_QUERY_URL";

/// Quantities closer than this are equal (float noise in fills and positions).
pub const QTY_EPSILON: f64 = 1e-9;
