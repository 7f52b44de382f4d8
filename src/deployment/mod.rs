//! Provisioning helpers: the subcommands that write `deploy/secrets/*.env` for the systemd unit.
//!
//! - [`runtime_secrets`]: `mt5bot runtime-secrets` (API key, controller secret, checkpoint key).
//! - [`prometheus_endpoints`]: `mt5bot prometheus-endpoints` (PROM_PUSH_URL, PROM_QUERY_URL).
//! - [`influx_bootstrap`]: `mt5bot influx-bootstrap` (InfluxDB v2 org, bucket, scoped token).
//!
//! They share one rule: a secret never appears in a log line, a message or an error; only
//! `--print-exports` prints values, on stdout, for `eval`. Status goes to stderr.

pub mod influx_bootstrap;
pub mod prometheus_endpoints;
pub mod runtime_secrets;

use std::fmt;
use std::path::Path;

use crate::support::envfile::{self, EnvFileError};

/// The env file the runtime helpers write by default.
pub const DEFAULT_RUNTIME_ENV: &str = "deploy/secrets/runtime.env";

/// Why a helper failed: `Usage` (the operator must change something) or `Failed` (the work
/// failed); `crate::app` decides the exit codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeployError {
    Usage(String),
    Failed(String),
}

impl fmt::Display for DeployError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeployError::Usage(m) | DeployError::Failed(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for DeployError {}

impl From<EnvFileError> for DeployError {
    fn from(e: EnvFileError) -> Self {
        match e {
            EnvFileError::Parse { .. } | EnvFileError::Unwritable { .. } => DeployError::Usage(e.to_string()),
            EnvFileError::Io { .. } => DeployError::Failed(e.to_string()),
        }
    }
}

/// Creates the env file's folder (0700) when it is missing.
pub fn ensure_parent(path: &Path) -> Result<(), DeployError> {
    use std::os::unix::fs::DirBuilderExt;
    let target = envfile::resolve_target(path).map_err(EnvFileError::from)?;
    match target.parent() {
        Some(dir) if !dir.as_os_str().is_empty() && !dir.exists() => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| DeployError::Failed(format!("cannot create {}: {e}", dir.display()))),
        _ => Ok(()),
    }
}
