//! mt5bot: a single-binary trading daemon for MetaTrader 5 users, built to run unattended.
//!
//! The binary (`src/main.rs`) is thin; this library holds the layers described in
//! `ARCHITECTURE.md`, from the bottom up: [`support`] (helpers that import nothing of the crate),
//! [`domain`] (the types every layer speaks, the `Clock` and `Venue` traits), [`config`] and
//! [`secrets`], [`venue`] (where orders go and ticks come from), [`engine`] (the single-threaded
//! trading core and its event loop), [`telemetry`] (metrics, the helper thread, logging), [`link`]
//! (the one meeting point of the engine and the helper thread), [`deployment`] and [`diagnostics`]
//! (subcommands), and [`app`], the composition root: the command line, `mt5bot run`, `mt5bot ctl`,
//! and the one place exit codes are decided.

pub mod app;
pub mod config;
pub mod deployment;
pub mod diagnostics;
pub mod domain;
pub mod engine;
pub mod link;
pub mod secrets;
pub mod support;
pub mod telemetry;
pub mod venue;
