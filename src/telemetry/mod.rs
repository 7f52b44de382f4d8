//! Telemetry: the metric registry (every metric named once, in [`metrics`]), the process sampler,
//! the helper thread that serves `/metrics`, `/healthz`, `/readyz` and the control API
//! (`/api/v1/`, in [`control`]) with TLS and basic authentication ([`web`]), logging that never
//! blocks the engine, and the Pushgateway client.
//!
//! Nothing here touches trading state: the engine publishes through atomic metric handles and
//! [`crate::link::Health`], and logs through a bounded channel.

pub mod console;
pub mod control;
pub mod exposition;
pub mod http;
pub mod influx;
pub mod line_protocol;
pub mod log_forward;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod prom_query;
pub mod pushgateway;
pub mod sampler;
pub mod server;
pub mod web;
