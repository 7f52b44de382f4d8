//! What this binary is: version, commit, compiler and target, baked in by `build.rs`.
//! Read by `mt5bot --version` and exported as the `mt5bot_build_info` metric.

/// Crate version from Cargo.toml.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Short git commit the binary was built from (`-dirty` when the tree had changes), or `unknown`.
pub const GIT_COMMIT: &str = env!("MT5BOT_GIT_COMMIT");
/// Output of `rustc --version` at build time.
pub const RUSTC_VERSION: &str = env!("MT5BOT_RUSTC_VERSION");
/// Target triple.
pub const TARGET: &str = env!("MT5BOT_TARGET");
/// Cargo profile (`debug` or `release`).
pub const PROFILE: &str = env!("MT5BOT_PROFILE");

/// sha256 of the `Cargo.lock` the binary was built with.
pub const CARGO_LOCK_SHA256: &str = env!("MT5BOT_CARGO_LOCK_SHA256");
/// `name version` of every package in that `Cargo.lock`, one per line, sorted.
pub const DEPENDENCIES: &str = include_str!(concat!(env!("OUT_DIR"), "/dependencies.txt"));

/// The multi-line text `mt5bot --version` prints.
pub fn version_text() -> String {
    format!("mt5bot {VERSION}\ncommit: {GIT_COMMIT}\nrustc: {RUSTC_VERSION}\ntarget: {TARGET}\nprofile: {PROFILE}\n")
}
