//! The bottom layer: helpers that depend on nothing else in the crate, each declared once.
//!
//! Encodings ([`encoding`]), message authentication ([`auth`]), atomic file replacement
//! ([`files`]), `KEY=value` env files systemd and sh read alike ([`envfile`]), the host name ([`host`]), one retry backoff ([`backoff`]), one HTTP agent set-up
//! ([`http`]), time formatting ([`timefmt`]), URL userinfo handling ([`urls`]), log throttling
//! ([`throttle`]), systemd notification ([`sd_notify`]), build facts ([`build_info`]), terminal tables ([`columns`]), TLS for listeners ([`tls`]), command output that survives a closed pipe ([`stdout`]), the
//! Cargo.lock reader ([`lockfile`]) and the names of environment variables ([`names`]).
//! Nothing here imports anything of the crate outside `support`.

pub mod auth;
pub mod backoff;
pub mod build_info;
pub mod columns;
pub mod encoding;
pub mod envfile;
pub mod files;
pub mod host;
pub mod http;
pub mod lockfile;
pub mod names;
pub mod sd_notify;
pub mod stdout;
#[cfg(test)]
pub(crate) mod testdir;
pub mod throttle;
pub mod timefmt;
pub mod tls;
pub mod urls;
