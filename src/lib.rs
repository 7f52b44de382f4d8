//! mt5bot: a single-binary trading daemon for MetaTrader 5 users, built to run unattended.
//!
//! The binary (`src/main.rs`) is thin; this library holds the rooms described in
//! `ARCHITECTURE.md`: [`engine`] (the single-threaded trading core and its event loop), [`venue`]
//! (where orders go and ticks come from), [`telemetry`] (metrics, the helper thread, logging),
//! [`config`], [`cli`], [`daemon`] (start-up and shutdown of `mt5bot run`) and [`deployment`] (the
//! provisioning subcommands).

pub mod cli;
pub mod config;
pub mod ctl;
pub mod daemon;
pub mod deployment;
pub mod diagnostics;
pub mod domain;
pub mod engine;
pub mod link;
pub mod secrets;
pub mod support;
pub mod telemetry;
pub mod venue;
