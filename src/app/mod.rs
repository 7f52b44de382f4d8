//! The composition root: the only module that imports every layer. It parses the command line
//! ([`cli`]), runs the daemon ([`daemon`]) or a subcommand ([`commands`], [`ctl`]), and decides
//! exit codes in one place ([`Error::exit_code`]): 0 success, 1 runtime failure, 2 usage or
//! configuration error.

/// `print!` for commands: a reader that went away ends the command quietly
/// ([`crate::support::stdout::write`]).
macro_rules! out {
    ($($arg:tt)*) => { $crate::support::stdout::write(format_args!($($arg)*)) };
}

/// `println!` for commands, as [`out!`].
macro_rules! outln {
    () => { $crate::support::stdout::write(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::support::stdout::write(format_args!("{}\n", format_args!($($arg)*))) };
}

pub mod backtest;
pub mod cli;
pub mod commands;
pub mod ctl;
pub mod daemon;

use std::ffi::OsString;
use std::fmt;

use self::cli::Command;
use crate::deployment::DeployError;
use crate::engine::reactor::StopReason;

/// What kind of failure, which is what the exit code says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Bad flags, configuration or input: the operator must change something (exit 2).
    Usage,
    /// The work itself failed, or found what it was looking for wrong (exit 1).
    Failed,
}

/// Why a command did not succeed. `message` is `None` when the failure was already reported to
/// the operator (in the log, or in the lines the command printed while working).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub kind: Kind,
    pub message: Option<String>,
}

impl Error {
    pub fn usage(message: impl Into<String>) -> Error {
        Error { kind: Kind::Usage, message: Some(message.into()) }
    }

    pub fn failed(message: impl Into<String>) -> Error {
        Error { kind: Kind::Failed, message: Some(message.into()) }
    }

    /// A failure of `kind` already reported.
    pub fn reported(kind: Kind) -> Error {
        Error { kind, message: None }
    }

    /// The process exit code: the one place it is decided.
    pub fn exit_code(&self) -> u8 {
        match self.kind {
            Kind::Failed => 1,
            Kind::Usage => 2,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message.as_deref().unwrap_or("failed (see above)"))
    }
}

impl std::error::Error for Error {}

impl From<cli::UsageError> for Error {
    fn from(e: cli::UsageError) -> Error {
        Error::usage(format!("{e}\n\n{}", e.help))
    }
}

impl From<DeployError> for Error {
    fn from(e: DeployError) -> Error {
        match e {
            DeployError::Usage(m) => Error::usage(m),
            DeployError::Failed(m) => Error::failed(m),
        }
    }
}

impl From<daemon::DaemonError> for Error {
    fn from(e: daemon::DaemonError) -> Error {
        match e {
            daemon::DaemonError::Config(_) | daemon::DaemonError::Input(_) => Error::usage(e.to_string()),
            daemon::DaemonError::Runtime(m) => Error::failed(m),
        }
    }
}

/// Parses `argv` (without the program name) and runs what it asks for.
pub fn main(argv: Vec<OsString>) -> Result<(), Error> {
    match cli::parse(argv)? {
        Command::Version => {
            out!("{}", crate::support::build_info::version_text());
            Ok(())
        }
        Command::Help(text) => {
            out!("{text}");
            Ok(())
        }
        Command::ConfigCheck { config } => commands::config_check(config.as_deref()),
        Command::ConfigTarget { config, out } => commands::config_target(config.as_deref(), out.as_deref()),
        Command::RuntimeSecrets(opts) => commands::runtime_secrets(&opts),
        Command::PrometheusEndpoints(opts) => commands::prometheus_endpoints(&opts),
        Command::InfluxBootstrap(opts) => commands::influx_bootstrap(&opts),
        Command::Diagnostics(opts) => commands::diagnostics(&opts),
        Command::CheckDataVersions { manifest, write } => commands::check_data_versions(&manifest, write),
        Command::CheckpointInspect { file } => commands::inspect_checkpoint(&file),
        Command::HashPassword { cost } => commands::hash_password(cost),
        Command::Backtest(opts) => backtest::run(&opts),
        Command::Ctl(opts) => {
            let env = |k: &str| std::env::var(k).ok();
            let answer = match &opts.fleet {
                Some(file) => ctl::run_fleet(&opts, file, &env)?,
                None => ctl::run(&opts, &env)?,
            };
            out!("{answer}");
            Ok(())
        }
        Command::Run { config, checkpoint } => match daemon::run(config.as_deref(), checkpoint)? {
            StopReason::Signal(_) => Ok(()),
            // A helper asked the engine to stop because something it relies on broke; logged.
            StopReason::Command(_) => Err(Error::reported(Kind::Failed)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_decided_here() {
        assert_eq!(Error::failed("x").exit_code(), 1);
        assert_eq!(Error::usage("x").exit_code(), 2);
        assert_eq!(Error::reported(Kind::Failed).exit_code(), 1);
        assert_eq!(Error::from(DeployError::Usage("u".into())).exit_code(), 2);
        assert_eq!(Error::from(DeployError::Failed("f".into())).exit_code(), 1);
        assert_eq!(Error::from(daemon::DaemonError::Runtime("r".into())).exit_code(), 1);
        assert_eq!(Error::from(daemon::DaemonError::Input("i".into())).exit_code(), 2);
        let e = main(vec!["no-such-command".into()]).expect_err("unknown command");
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("Usage: mt5bot"), "usage errors carry the help: {e}");
    }
}
