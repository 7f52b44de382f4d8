//! The command line: parsing with pico-args into a [`Command`], and the help texts.
//!
//! Usage errors (unknown command, unknown flag, missing value) are [`UsageError`]s, which
//! [`super::Error`] turns into exit code 2 with the relevant help.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::deployment::{influx_bootstrap, prometheus_endpoints, runtime_secrets, DEFAULT_RUNTIME_ENV};

/// What the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `mt5bot run [--config FILE] [--discard-checkpoint]`
    Run { config: Option<PathBuf>, checkpoint: crate::app::daemon::CheckpointPolicy },
    /// `mt5bot checkpoint inspect FILE`
    CheckpointInspect { file: PathBuf },
    /// `mt5bot backtest --config FILE --data CSV [--report DIR] [--set KEY=VALUE]...`
    Backtest(crate::app::backtest::Options),
    /// `mt5bot config check [--config FILE]`
    ConfigCheck { config: Option<PathBuf> },
    /// `mt5bot config target [--config FILE] [--out FILE]`
    ConfigTarget { config: Option<PathBuf>, out: Option<PathBuf> },
    /// `mt5bot runtime-secrets ...`
    RuntimeSecrets(runtime_secrets::Options),
    /// `mt5bot prometheus-endpoints ...`
    PrometheusEndpoints(prometheus_endpoints::Options),
    /// `mt5bot influx-bootstrap ...`
    InfluxBootstrap(influx_bootstrap::Options),
    /// `mt5bot diagnostics ...`
    Diagnostics(crate::diagnostics::Options),
    /// `mt5bot check-data-versions [--manifest FILE] [--write]`
    CheckDataVersions { manifest: PathBuf, write: bool },
    /// `mt5bot ctl ACTION ...`
    Ctl(crate::app::ctl::Options),
    /// `mt5bot hash-password [--cost N]`
    HashPassword { cost: u32 },
    /// `mt5bot --version`
    Version,
    /// `mt5bot help [COMMAND]` or `--help`: the text to print.
    Help(&'static str),
}

/// A command line that could not be understood; carries the help text to show with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError {
    pub message: String,
    pub help: &'static str,
}

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for UsageError {}

pub const MAIN_HELP: &str = "\
mt5bot: a trading daemon for MetaTrader 5, built to run unattended

Usage: mt5bot <COMMAND> [OPTIONS]

Commands:
  run                   Run the daemon (with no --config: paper venue, synthetic
                        feed, /metrics on 127.0.0.1:9898)
  config check          Validate a config file and print the effective configuration
  runtime-secrets       Generate or rotate API_KEY, CONTROLLER_SHARED_SECRET and
                        CHECKPOINT_AES_KEY in deploy/secrets/runtime.env
  prometheus-endpoints  Write PROM_PUSH_URL and PROM_QUERY_URL into runtime.env
  influx-bootstrap      Set up or ensure an InfluxDB v2 org, bucket and bucket-scoped
                        token; write deploy/secrets/influx.env
  checkpoint inspect    Decrypt and summarise a checkpoint (no secret printed)
  backtest              Run a config on history: the live engine on the paper venue,
                        driven by the data's own clock; writes a report
  ctl                   Ask the running daemon: status, config, halt, reduce,
                        resume, flatten, reload (control API, needs API_KEY)
  diagnostics           Write the nightly report; push mismatches to the Pushgateway
  check-data-versions   Compare datasets with data/manifest.yaml; --write records them
  hash-password         Read a password on stdin, print its bcrypt hash for the web
                        config's basic_auth_users
  help [COMMAND]        Show help for a command

Options:
  -h, --help     Show this help
  -V, --version  Show version, git commit, rustc and target

Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error.
";

pub const RUN_HELP: &str = "\
mt5bot run: run the trading daemon

Usage: mt5bot run [--config FILE] [--discard-checkpoint] [--accept-rollback]

Options:
  -c, --config FILE     Configuration file (see config.example.yaml). Without it the
                        embedded default runs: paper venue, synthetic feed, /metrics,
                        /healthz and /readyz on 127.0.0.1:9898.
  --discard-checkpoint  When the checkpoint cannot be used (damaged, unknown key),
                        move it aside and start clean instead of refusing to start
  --accept-rollback     Start from a checkpoint older than the last one written (or
                        from none, though one was written), which is otherwise refused
  -h, --help            Show this help

With CHECKPOINT_AES_KEY set, the state is checkpointed every checkpoint.interval and
at shutdown, and restored at start; a checkpoint that fails its checks stops the start
with the reason (exit 2), never a silent fresh start.

Logs go to logging.file (JSON lines, default logs/mt5bot.log) and to stderr.
SIGTERM or SIGINT stops it gracefully: no new signals, orders in flight settle for
up to engine.shutdown_grace, the final state is logged, exit 0. Under systemd
(Type=notify) it reports READY=1, WATCHDOG=1 and STOPPING=1.
";

pub const CONFIG_HELP: &str = "\
mt5bot config check: validate a configuration file
mt5bot config target: this bot as a Prometheus file_sd target

Usage: mt5bot config check [--config FILE]
       mt5bot config target [--config FILE] [--out FILE]

check reads FILE (or the embedded default), checks every key and value, and prints the
effective configuration as YAML. On an error it prints the file, line, key and what
is accepted, and exits 2. Suitable as systemd ExecStartPre.

target prints (or, with --out, writes atomically, mode 0644) the JSON target file that
Prometheus's file_sd_configs read: metrics.listen and the identity: labels (account,
strategy, venue), one file per bot (deploy/prometheus-fleet.yml).

Options:
  -c, --config FILE  Configuration file to read
  --out FILE         target: write the file here instead of printing it
  -h, --help         Show this help
";

pub const RUNTIME_SECRETS_HELP: &str = "\
mt5bot runtime-secrets: provision the daemon's runtime secrets

Usage: mt5bot runtime-secrets [--env-file FILE] [--rotate NAME]... [--force] [--print-exports]

Generates the missing ones of API_KEY, CONTROLLER_SHARED_SECRET and CHECKPOINT_AES_KEY
(base64 of 32 bytes from the OS random generator) and keeps existing values, so a
rerun changes nothing. Other lines and comments of the file are kept. The file is
written atomically with mode 0600.

Options:
  --env-file FILE   Env file to update [default: deploy/secrets/runtime.env]
  --rotate NAME     Replace NAME only (repeatable). Rotating CHECKPOINT_AES_KEY keeps
                    the old key as CHECKPOINT_AES_KEY_PREVIOUS
  --force           Regenerate every secret
  --print-exports   Print export KEY='value' lines on stdout, for eval
  -h, --help        Show this help
";

pub const PROMETHEUS_ENDPOINTS_HELP: &str = "\
mt5bot prometheus-endpoints: write the Prometheus URLs into runtime.env

Usage: mt5bot prometheus-endpoints [--env-file FILE] [OPTIONS]

Derives PROM_PUSH_URL (SCHEME://HOST:PORT/metrics/job/JOB/instance/INSTANCE, the
Pushgateway grouping key; values that are not plain path segments use the
LABEL@base64 form) and PROM_QUERY_URL (SCHEME://HOST:PORT/api/v1/query). Existing
values are kept unless --force. A flag wins over its environment variable.

Options:
  --env-file FILE     Env file to update [default: deploy/secrets/runtime.env]
  --push-host HOST    Pushgateway host   [env PROM_ENDPOINTS_PUSH_HOST, default localhost]
  --push-port PORT    Pushgateway port   [env PROM_ENDPOINTS_PUSH_PORT, default 9091]
  --query-host HOST   Prometheus host    [env PROM_ENDPOINTS_QUERY_HOST, default localhost]
  --query-port PORT   Prometheus port    [env PROM_ENDPOINTS_QUERY_PORT, default 9090]
  --scheme SCHEME     http or https      [env PROM_ENDPOINTS_SCHEME, default http]
  --job JOB           job label          [env PROM_ENDPOINTS_JOB, default mt5bot]
  --instance NAME     instance label     [env PROM_ENDPOINTS_INSTANCE, default the host name]
  --force             Replace existing values
  --print-exports     Print export KEY='value' lines on stdout, for eval
  -h, --help          Show this help
";

pub const INFLUX_BOOTSTRAP_HELP: &str = "\
mt5bot influx-bootstrap: provision InfluxDB v2 for mt5bot's metrics

Usage: mt5bot influx-bootstrap --url URL --org ORG --bucket BUCKET [OPTIONS]

Asks the server whether it needs its first setup. If so, sets it up (admin user,
org, bucket, retention) and saves the admin credentials to influx-admin.env beside
the env file (mode 0600; the service never loads it). Otherwise, with the admin
token, finds the org and finds or creates the bucket, bringing its retention to
--retention. Then makes sure the env file holds a token that can read and write
that one bucket: a token already there that still works is kept; one that no
longer works is only replaced with --force. Writes INFLUXDB_URL, INFLUXDB_ORG,
INFLUXDB_BUCKET and INFLUXDB_TOKEN; a rerun with nothing to do changes nothing.

Options (a flag wins over its environment variable):
  --url URL             InfluxDB URL, e.g. http://influxdb:8086  [env INFLUXDB_BOOTSTRAP_URL]
  --org ORG             Organization                           [env INFLUXDB_BOOTSTRAP_ORG]
  --bucket BUCKET       Bucket                                 [env INFLUXDB_BOOTSTRAP_BUCKET]
  --env-file FILE       Env file to write [default: deploy/secrets/influx.env]
  --username NAME       Admin user for the first setup [env INFLUXDB_BOOTSTRAP_USERNAME, default admin]
  --password-file FILE  Admin password for the first setup (8 to 72 characters);
                        without it a 32-character one is generated
                                                   [env INFLUXDB_BOOTSTRAP_PASSWORD_FILE]
  --retention PERIOD    0 or infinite, or at least 1h: 3600s, 72h, 90d
                                       [env INFLUXDB_BOOTSTRAP_RETENTION, default infinite]
  --admin-token TOKEN   Admin (operator) token: preset at the first setup, used after it
                                                   [env INFLUXDB_BOOTSTRAP_ADMIN_TOKEN]
  --timeout DURATION    Give up retrying unreachable or failing servers after this long
                                       [env INFLUXDB_BOOTSTRAP_TIMEOUT, default 30s]
  --force               Replace a token that no longer works, or admin credentials
                        of an instance that was reset
  --print-exports       Print export KEY='value' lines on stdout, for eval
  -h, --help            Show this help
";

pub const DIAGNOSTICS_HELP: &str = "\
mt5bot diagnostics: the nightly report

Usage: mt5bot diagnostics [--config FILE] [--out DIR] [--manifest FILE] [--secrets-dir DIR]
                          [--push | --no-push]

Writes DIR/<UTC date>T<time>Z.json and a readable .txt beside it: binary version,
commit, rustc, target, profile, the Cargo.lock sha256 and dependency list baked in
at build time, OS, kernel, CPU, memory, the config's hash, the env files present
(names and modes only), free disk, the running daemon's build, every dataset of the
manifest, and with PROM_QUERY_URL set a 24 h summary from Prometheus.

Mismatches (each with the command that fixes it): the running daemon differs from
this binary (binary); run from a checkout, Cargo.lock differs from the binary's
(dependencies); a dataset is missing, changed or unlisted (data). They are pushed to
PROM_PUSH_URL as diagnostics_mismatch{kind} with diagnostics_last_run_timestamp_seconds,
and diagnostics_last_success_timestamp_seconds after a clean run.

Exit codes: 0 clean, 1 mismatch, 2 could not run (the report is still written).

Options:
  -c, --config FILE    Configuration (for the daemon's address and the log folder)
  --out DIR            Report folder [default: logs/diagnostics]
  --manifest FILE      Data manifest [default: data/manifest.yaml]
  --secrets-dir DIR    Folder of the env files to list [default: deploy/secrets]
  --push               Push to PROM_PUSH_URL (an error when it is not set)
  --no-push            Do not push [default: push when PROM_PUSH_URL is set]
  -h, --help           Show this help
";

pub const BACKTEST_HELP: &str = "\
mt5bot backtest: run a configuration on history

Usage: mt5bot backtest --config FILE --data CSV... [--data-timezone TZ] [--from T] [--to T]
                       [--report DIR] [--set KEY=VALUE]... [--sweep KEY=V1,V2,...]...
                       [--sort FIGURE] [--jobs N] [--skip-bad-rows]

The live engine (model, risk limits, breakers, market hours, stop-loss and take-profit) on the
paper venue, fed by replay files (as feed.kind: csv) on a clock the data moves: the trading day,
breakers and calendars see the data's own dates. Same data, same config: the same report.
Prints a summary; with --report, writes report.json and report.html (a self-contained page with
the equity curve) into DIR.

Options:
  -c, --config FILE     The configuration to test (its venue is replaced by paper)
  --data CSV            A replay file: timestamp,symbol,bid,ask rows, or an MT5 tick or bar
                        export (Symbols > Ticks/Bars > Export; one symbol, named by the file:
                        EURUSD_....csv). Repeat it to merge several files by time. Its
                        symbols must be in feed.symbols
  --data-timezone TZ    The zone of MT5 export times (the trade server's clock): an IANA name
                        or an offset such as +02:00 [default: feed.csv.timezone, UTC]
  --skip-bad-rows       Count and leave out bad rows (named in the summary, the first ten)
                        instead of stopping at the first with its file and line
  --from T, --to T      Run on the rows from T (inclusive) to T (exclusive): RFC 3339
                        (2026-01-05T00:00:00Z) or Unix seconds
  --report DIR          Write report.json and report.html here (created if missing)
  --set KEY=VALUE       Override one config key for this run, e.g. model.fast_period=10;
                        repeatable
  --sweep KEY=V1,V2,... Run every combination of the values (repeatable: a grid), one
                        engine per core, and print one table sorted by --sort; with
                        --report, write sweep.csv, sweep.html and the best run's report
                        in DIR/best
  --jobs N              Runs of a sweep at once, one thread each (e.g. 1 to leave the other
                        cores to a live bot) [default: the machine's cores]
  --sort FIGURE         net_pnl (default), sharpe, profit_factor, max_drawdown (smallest
                        first) or win_rate
";

pub const CHECK_DATA_VERSIONS_HELP: &str = "\
mt5bot check-data-versions: compare datasets with their manifest

Usage: mt5bot check-data-versions [--manifest FILE] [--write]

Hashes (sha256, streaming) every dataset listed in the manifest and every other file
in its folder, prints a table, and exits 1 if any is changed, missing or unlisted.
With --write, records the current files in the manifest (atomically) and exits 0.

Options:
  --manifest FILE   Manifest [default: data/manifest.yaml]; paths in it are relative
                    to its folder
  --write           Record the current sizes and hashes
  -h, --help        Show this help
";

pub const HASH_PASSWORD_HELP: &str = "\
mt5bot hash-password: a bcrypt hash for basic_auth_users

Usage: read -rs PW && printf '%s' \"$PW\" | mt5bot hash-password [--cost N]

Reads one password from stdin (up to the first newline), prints its bcrypt hash
for the basic_auth_users of the web config (metrics.web_config, the Prometheus
exporter toolkit's format). The password itself is never printed or kept; it may
have at most 72 bytes (bcrypt ignores the rest, so a longer one is refused).

Options:
  --cost N    bcrypt cost, 4 to 16 [default: 10]: each step doubles the time a check
              takes (about 60 ms at 10); the listener remembers a pair that passed
  -h, --help  Show this help
";

pub const CHECKPOINT_HELP: &str = "\
mt5bot checkpoint inspect: summarise a checkpoint

Usage: mt5bot checkpoint inspect FILE

Decrypts FILE with CHECKPOINT_AES_KEY (or CHECKPOINT_AES_KEY_PREVIOUS), from the
environment or $CREDENTIALS_DIRECTORY, and prints when it was written, the key id, the
positions and the orders open then. Never prints a key. Exit 1 when the file fails a
check, with the reason.

Options:
  -h, --help   Show this help
";

pub const CTL_HELP: &str = "\
mt5bot ctl: operate the running daemon through its control API

Usage: mt5bot ctl <ACTION> [--reason TEXT] [--url URL] [--config FILE] [--env-file FILE]
       mt5bot ctl --fleet FILE <ACTION> [--reason TEXT] [--timeout DURATION]

Actions:
  status    Trading state, venue, positions, open orders, queue, markets, last drift alarm
  config    The effective configuration (secrets are listed by name only)
  halt      Trading state halted: send nothing; orders in flight settle
  reduce    Trading state reducing: send only orders that bring a position
            toward zero
  resume    Trading state active: take every signal again (also after a breaker)
  pause     The same as halt (kept from earlier versions)
  flatten   Halt, cancel open orders, then send market orders that bring every
            position to zero
  reload    Re-read the config file; live keys are applied, others reported as
            needing a restart

Options:
  --reason TEXT      Why (halt, reduce, resume, pause): logged and shown in status
  --url URL          The daemon [default: http://<metrics.listen of --config>, or
                     http://127.0.0.1:9898]
  -c, --config FILE  Config file to find metrics.listen in
  --env-file FILE    Where to read API_KEY when it is not in the environment
                     [default: deploy/secrets/runtime.env]
  --fleet FILE       Ask every bot a YAML file lists, at once, and print one table
                     (bot, result, trading state, venue, equity, drawdown):
                       bots:
                         - {name: acct1, url: http://127.0.0.1:9901,
                            env_file: /etc/mt5bot/acct1/secrets/runtime.env}
                         - {name: acct2, url: http://10.0.0.2:9898, credential: /run/k2}
                         - {name: acct3, url: http://10.0.0.3:9898, api_key_env: ACCT3_KEY}
                     each with one of env_file (API_KEY in it), credential (a file
                     holding the key) or api_key_env (a variable of this shell)
  --timeout DURATION How long each bot of a fleet has to answer [default: 10s]
  -h, --help         Show this help

Prints the daemon's JSON answer (with --fleet, the table). Exit codes: 0 done, 1 the
daemon refused or could not be reached (with --fleet: any bot), 2 usage or
configuration error.
";

fn usage(message: impl Into<String>, help: &'static str) -> UsageError {
    UsageError { message: message.into(), help }
}

fn finish(args: pico_args::Arguments, help: &'static str) -> Result<(), UsageError> {
    let rest = args.finish();
    match rest.first() {
        None => Ok(()),
        Some(extra) => Err(usage(format!("unexpected argument {:?}", extra.to_string_lossy()), help)),
    }
}

fn env_file_flag(args: &mut pico_args::Arguments, help: &'static str) -> Result<PathBuf, UsageError> {
    let path: Option<String> =
        args.opt_value_from_str("--env-file").map_err(|e| usage(format!("--env-file: {e}"), help))?;
    match path {
        Some(p) if p.is_empty() => Err(usage("--env-file: the file name is empty", help)),
        p => Ok(PathBuf::from(p.unwrap_or_else(|| DEFAULT_RUNTIME_ENV.to_owned()))),
    }
}

fn config_flag(args: &mut pico_args::Arguments, help: &'static str) -> Result<Option<PathBuf>, UsageError> {
    let path: Option<String> =
        args.opt_value_from_str(["-c", "--config"]).map_err(|e| usage(format!("--config: {e}"), help))?;
    match path {
        Some(p) if p.is_empty() => Err(usage("--config: the file name is empty", help)),
        p => Ok(p.map(PathBuf::from)),
    }
}

/// Parses the arguments after the program name.
pub fn parse(argv: Vec<OsString>) -> Result<Command, UsageError> {
    let mut args = pico_args::Arguments::from_vec(argv);
    let sub = args.subcommand().map_err(|e| usage(e.to_string(), MAIN_HELP))?;
    match sub.as_deref() {
        None => {
            if args.contains(["-V", "--version"]) {
                finish(args, MAIN_HELP)?;
                return Ok(Command::Version);
            }
            if args.contains(["-h", "--help"]) {
                finish(args, MAIN_HELP)?;
                return Ok(Command::Help(MAIN_HELP));
            }
            let rest = args.finish();
            match rest.first() {
                Some(flag) => Err(usage(format!("unknown option {:?}", flag.to_string_lossy()), MAIN_HELP)),
                None => Err(usage("no command given", MAIN_HELP)),
            }
        }
        Some("help") => {
            let topic = args.subcommand().map_err(|e| usage(e.to_string(), MAIN_HELP))?;
            finish(args, MAIN_HELP)?;
            match topic.as_deref() {
                None => Ok(Command::Help(MAIN_HELP)),
                Some("run") => Ok(Command::Help(RUN_HELP)),
                Some("config") => Ok(Command::Help(CONFIG_HELP)),
                Some("runtime-secrets") => Ok(Command::Help(RUNTIME_SECRETS_HELP)),
                Some("prometheus-endpoints") => Ok(Command::Help(PROMETHEUS_ENDPOINTS_HELP)),
                Some("influx-bootstrap") => Ok(Command::Help(INFLUX_BOOTSTRAP_HELP)),
                Some("diagnostics") => Ok(Command::Help(DIAGNOSTICS_HELP)),
                Some("checkpoint") => Ok(Command::Help(CHECKPOINT_HELP)),
                Some("check-data-versions") => Ok(Command::Help(CHECK_DATA_VERSIONS_HELP)),
                Some("ctl") => Ok(Command::Help(CTL_HELP)),
                Some("hash-password") => Ok(Command::Help(HASH_PASSWORD_HELP)),
                Some("backtest") => Ok(Command::Help(BACKTEST_HELP)),
                Some(other) => Err(usage(format!("no help for unknown command {other:?}"), MAIN_HELP)),
            }
        }
        Some("run") => {
            if args.contains(["-h", "--help"]) {
                return Ok(Command::Help(RUN_HELP));
            }
            let checkpoint = crate::app::daemon::CheckpointPolicy {
                discard: args.contains("--discard-checkpoint"),
                accept_rollback: args.contains("--accept-rollback"),
            };
            let config = config_flag(&mut args, RUN_HELP)?;
            finish(args, RUN_HELP)?;
            Ok(Command::Run { config, checkpoint })
        }
        Some("config") => {
            if args.contains(["-h", "--help"]) {
                return Ok(Command::Help(CONFIG_HELP));
            }
            let action = args.subcommand().map_err(|e| usage(e.to_string(), CONFIG_HELP))?;
            match action.as_deref() {
                Some("check") => {
                    let config = config_flag(&mut args, CONFIG_HELP)?;
                    finish(args, CONFIG_HELP)?;
                    Ok(Command::ConfigCheck { config })
                }
                Some("target") => {
                    let config = config_flag(&mut args, CONFIG_HELP)?;
                    let out: Option<String> =
                        args.opt_value_from_str("--out").map_err(|e| usage(format!("--out: {e}"), CONFIG_HELP))?;
                    finish(args, CONFIG_HELP)?;
                    Ok(Command::ConfigTarget { config, out: out.map(PathBuf::from) })
                }
                Some(other) => {
                    Err(usage(format!("unknown config action {other:?}; accepted: check, target"), CONFIG_HELP))
                }
                None => Err(usage("missing config action; accepted: check, target", CONFIG_HELP)),
            }
        }
        Some("runtime-secrets") => {
            let help = RUNTIME_SECRETS_HELP;
            if args.contains(["-h", "--help"]) {
                return Ok(Command::Help(help));
            }
            let force = args.contains("--force");
            let print_exports = args.contains("--print-exports");
            let env_file = env_file_flag(&mut args, help)?;
            let rotate: Vec<String> =
                args.values_from_str("--rotate").map_err(|e| usage(format!("--rotate: {e}"), help))?;
            finish(args, help)?;
            Ok(Command::RuntimeSecrets(runtime_secrets::Options { env_file, rotate, force, print_exports }))
        }
        Some("prometheus-endpoints") => {
            let help = PROMETHEUS_ENDPOINTS_HELP;
            if args.contains(["-h", "--help"]) {
                return Ok(Command::Help(help));
            }
            let force = args.contains("--force");
            let print_exports = args.contains("--print-exports");
            let env_file = env_file_flag(&mut args, help)?;
            let mut flags: [Option<String>; 7] = Default::default();
            for (i, (flag, _, _)) in prometheus_endpoints::INPUTS.iter().enumerate() {
                flags[i] = args.opt_value_from_str(*flag).map_err(|e| usage(format!("{flag}: {e}"), help))?;
            }
            finish(args, help)?;
            Ok(Command::PrometheusEndpoints(prometheus_endpoints::Options { env_file, flags, force, print_exports }))
        }
        Some("influx-bootstrap") => {
            let help = INFLUX_BOOTSTRAP_HELP;
            if args.contains(["-h", "--help"]) {
                return Ok(Command::Help(help));
            }
            let force = args.contains("--force");
            let print_exports = args.contains("--print-exports");
            let env_file: Option<String> =
                args.opt_value_from_str("--env-file").map_err(|e| usage(format!("--env-file: {e}"), help))?;
            let mut flags: [Option<String>; 8] = Default::default();
            for (i, (flag, _, _)) in influx_bootstrap::INPUTS.iter().enumerate() {
                flags[i] = args.opt_value_from_str(*flag).map_err(|e| usage(format!("{flag}: {e}"), help))?;
            }
            finish(args, help)?;
            let env_file = PathBuf::from(env_file.unwrap_or_else(|| influx_bootstrap::DEFAULT_ENV_FILE.to_owned()));
            Ok(Command::InfluxBootstrap(influx_bootstrap::Options { env_file, flags, force, print_exports }))
        }
        Some("checkpoint") => {
            let help = CHECKPOINT_HELP;
            if args.contains(["-h", "--help"]) {
                return Ok(Command::Help(help));
            }
            match args.subcommand().map_err(|e| usage(e.to_string(), help))?.as_deref() {
                Some("inspect") => {
                    let file: Option<String> = args.opt_free_from_str().map_err(|e| usage(e.to_string(), help))?;
                    let file = file.ok_or_else(|| usage("checkpoint inspect needs a FILE", help))?;
                    finish(args, help)?;
                    Ok(Command::CheckpointInspect { file: PathBuf::from(file) })
                }
                Some(other) => Err(usage(format!("unknown checkpoint action {other:?}; accepted: inspect"), help)),
                None => Err(usage("missing checkpoint action; accepted: inspect", help)),
            }
        }
        Some("diagnostics") => {
            let help = DIAGNOSTICS_HELP;
            if args.contains(["-h", "--help"]) {
                return Ok(Command::Help(help));
            }
            let (push, no_push) = (args.contains("--push"), args.contains("--no-push"));
            if push && no_push {
                return Err(usage("--push and --no-push exclude each other", help));
            }
            let config = config_flag(&mut args, help)?;
            let path = |args: &mut pico_args::Arguments, flag: &'static str, default: &str| -> Result<PathBuf, UsageError> {
                let v: Option<String> = args.opt_value_from_str(flag).map_err(|e| usage(format!("{flag}: {e}"), help))?;
                Ok(PathBuf::from(v.unwrap_or_else(|| default.to_owned())))
            };
            let out = path(&mut args, "--out", crate::diagnostics::DEFAULT_OUT)?;
            let manifest = path(&mut args, "--manifest", crate::diagnostics::data_versions::DEFAULT_MANIFEST)?;
            let secrets_dir = path(&mut args, "--secrets-dir", crate::diagnostics::DEFAULT_SECRETS_DIR)?;
            finish(args, help)?;
            let push = if push { Some(true) } else if no_push { Some(false) } else { None };
            Ok(Command::Diagnostics(crate::diagnostics::Options { config, out, manifest, secrets_dir, push }))
        }
        Some("backtest") => {
            let help = BACKTEST_HELP;
            if args.contains(["-h", "--help"]) {
                return Ok(Command::Help(help));
            }
            let config = config_flag(&mut args, help)?.ok_or_else(|| usage("backtest needs --config FILE", help))?;
            let data: Vec<String> = args.values_from_str("--data").map_err(|e| usage(format!("--data: {e}"), help))?;
            if data.is_empty() || data.iter().any(String::is_empty) {
                return Err(usage("backtest needs --data CSV", help));
            }
            let data_timezone: Option<String> =
                args.opt_value_from_str("--data-timezone").map_err(|e| usage(format!("--data-timezone: {e}"), help))?;
            if let Some(tz) = &data_timezone {
                if crate::support::timefmt::parse_zone(tz).is_none() {
                    return Err(usage(
                        format!("--data-timezone {tz:?} is not a time zone; accepted: an IANA name such as Europe/Athens, or an offset such as +02:00"),
                        help,
                    ));
                }
            }
            let report: Option<String> =
                args.opt_value_from_str("--report").map_err(|e| usage(format!("--report: {e}"), help))?;
            let mut time = |flag: &'static str| -> Result<Option<i128>, UsageError> {
                let v: Option<String> = args.opt_value_from_str(flag).map_err(|e| usage(format!("{flag}: {e}"), help))?;
                v.map(|v| crate::support::timefmt::parse_timestamp(&v).map_err(|e| usage(format!("{flag}: {e}"), help)))
                    .transpose()
            };
            let (from, to) = (time("--from")?, time("--to")?);
            if let (Some(f), Some(t)) = (from, to) {
                if t <= f {
                    return Err(usage("--to must come after --from", help));
                }
            }
            let sets: Vec<String> = args.values_from_str("--set").map_err(|e| usage(format!("--set: {e}"), help))?;
            let mut overrides = Vec::new();
            for set in sets {
                match set.split_once('=') {
                    Some((k, v)) if !k.trim().is_empty() => overrides.push((k.trim().to_owned(), v.to_owned())),
                    _ => return Err(usage(format!("--set {set:?}: expected KEY=VALUE, e.g. model.fast_period=10"), help)),
                }
            }
            let sweeps: Vec<String> =
                args.values_from_str("--sweep").map_err(|e| usage(format!("--sweep: {e}"), help))?;
            let mut sweep: Vec<(String, Vec<String>)> = Vec::new();
            for s in sweeps {
                match s.split_once('=') {
                    Some((k, v)) if !k.trim().is_empty() && v.split(',').all(|x| !x.trim().is_empty()) => {
                        if sweep.iter().any(|(key, _)| key == k.trim()) {
                            return Err(usage(format!("--sweep {}: the key is swept twice", k.trim()), help));
                        }
                        sweep.push((k.trim().to_owned(), v.split(',').map(|x| x.trim().to_owned()).collect()));
                    }
                    _ => {
                        return Err(usage(
                            format!("--sweep {s:?}: expected KEY=V1,V2,..., e.g. model.fast_period=5,10,20"),
                            help,
                        ))
                    }
                }
            }
            let runs: usize = sweep.iter().map(|(_, v)| v.len()).product();
            if runs > 10_000 {
                return Err(usage(format!("--sweep makes {runs} runs; accepted: at most 10000"), help));
            }
            let sort: Option<String> = args.opt_value_from_str("--sort").map_err(|e| usage(format!("--sort: {e}"), help))?;
            let sort = match sort {
                None => crate::app::backtest::sweep::SortKey::NetPnl,
                Some(s) => crate::app::backtest::sweep::SortKey::parse(&s).ok_or_else(|| {
                    let names: Vec<&str> = crate::app::backtest::sweep::SortKey::ALL.iter().map(|(n, _)| *n).collect();
                    usage(format!("--sort {s:?}; accepted: {}", names.join(", ")), help)
                })?,
            };
            let jobs: Option<String> = args.opt_value_from_str("--jobs").map_err(|e| usage(format!("--jobs: {e}"), help))?;
            let jobs = match jobs {
                None => None,
                Some(j) => match j.parse::<usize>() {
                    Ok(n) if (1..=1024).contains(&n) => Some(n),
                    _ => return Err(usage(format!("--jobs {j:?}: expected a whole number from 1 to 1024"), help)),
                },
            };
            let skip_bad_rows = args.contains("--skip-bad-rows");
            finish(args, help)?;
            Ok(Command::Backtest(crate::app::backtest::Options {
                jobs,
                skip_bad_rows,
                sweep,
                sort,
                config,
                data: data.into_iter().map(PathBuf::from).collect(),
                data_timezone,
                report: report.map(PathBuf::from),
                overrides,
                from,
                to,
            }))
        }
        Some("check-data-versions") => {
            let help = CHECK_DATA_VERSIONS_HELP;
            if args.contains(["-h", "--help"]) {
                return Ok(Command::Help(help));
            }
            let write = args.contains("--write");
            let manifest: Option<String> =
                args.opt_value_from_str("--manifest").map_err(|e| usage(format!("--manifest: {e}"), help))?;
            finish(args, help)?;
            let manifest = PathBuf::from(manifest.unwrap_or_else(|| crate::diagnostics::data_versions::DEFAULT_MANIFEST.to_owned()));
            Ok(Command::CheckDataVersions { manifest, write })
        }
        Some("hash-password") => {
            let help = HASH_PASSWORD_HELP;
            if args.contains(["-h", "--help"]) {
                return Ok(Command::Help(help));
            }
            let cost: Option<u32> = args.opt_value_from_str("--cost").map_err(|e| usage(format!("--cost: {e}"), help))?;
            let cost = cost.unwrap_or(10);
            if !(4..=16).contains(&cost) {
                return Err(usage(format!("--cost {cost}; accepted: 4 to 16"), help));
            }
            finish(args, help)?;
            Ok(Command::HashPassword { cost })
        }
        Some("ctl") => {
            let help = CTL_HELP;
            if args.contains(["-h", "--help"]) {
                return Ok(Command::Help(help));
            }
            let config = config_flag(&mut args, help)?;
            let env_file = env_file_flag(&mut args, help)?;
            let url: Option<String> = args.opt_value_from_str("--url").map_err(|e| usage(format!("--url: {e}"), help))?;
            if url.as_deref().is_some_and(|u| !(u.starts_with("http://") || u.starts_with("https://"))) {
                return Err(usage("--url: accepted: http://HOST:PORT or https://HOST:PORT", help));
            }
            let reason: Option<String> =
                args.opt_value_from_str("--reason").map_err(|e| usage(format!("--reason: {e}"), help))?;
            let fleet: Option<String> =
                args.opt_value_from_str("--fleet").map_err(|e| usage(format!("--fleet: {e}"), help))?;
            let timeout: Option<String> =
                args.opt_value_from_str("--timeout").map_err(|e| usage(format!("--timeout: {e}"), help))?;
            let timeout = match timeout {
                None => std::time::Duration::from_secs(10),
                Some(t) => crate::config::parse_duration(&t)
                    .ok()
                    .filter(|d| !d.is_zero() && *d <= std::time::Duration::from_secs(600))
                    .ok_or_else(|| usage(format!("--timeout {t:?}; accepted: a duration from 1ms to 10m, e.g. 5s"), help))?,
            };
            if fleet.is_some() && (url.is_some() || config.is_some()) {
                return Err(usage("--fleet names every bot's URL; it does not go with --url or --config", help));
            }
            let action = args.subcommand().map_err(|e| usage(e.to_string(), help))?;
            let action = match action.as_deref() {
                Some(a) => crate::app::ctl::Action::parse(a).ok_or_else(|| {
                    usage(format!("unknown ctl action {a:?}; accepted: {}", crate::app::ctl::Action::names()), help)
                })?,
                None => {
                    return Err(usage(
                        format!("missing ctl action; accepted: {}", crate::app::ctl::Action::names()),
                        help,
                    ))
                }
            };
            if reason.is_some() && !action.takes_reason() {
                return Err(usage(format!("--reason is for halt, reduce, resume and pause, not {}", action.name()), help));
            }
            finish(args, help)?;
            Ok(Command::Ctl(crate::app::ctl::Options {
                action,
                url,
                config,
                env_file,
                reason,
                fleet: fleet.map(PathBuf::from),
                timeout,
            }))
        }
        Some(other) => Err(usage(
            format!("unknown command {other:?}; accepted: run, config, runtime-secrets, prometheus-endpoints, influx-bootstrap, checkpoint, ctl, diagnostics, check-data-versions, hash-password, help"),
            MAIN_HELP,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Command, UsageError> {
        parse(args.iter().map(OsString::from).collect())
    }

    #[test]
    fn commands() {
        assert_eq!(p(&["run"]), Ok(Command::Run { config: None, checkpoint: Default::default() }));
        assert_eq!(
            p(&["run", "--config", "a.yaml"]),
            Ok(Command::Run { config: Some("a.yaml".into()), checkpoint: Default::default() })
        );
        assert_eq!(
            p(&["run", "-c", "a.yaml", "--discard-checkpoint"]),
            Ok(Command::Run {
                config: Some("a.yaml".into()),
                checkpoint: crate::app::daemon::CheckpointPolicy { discard: true, accept_rollback: false }
            })
        );
        assert_eq!(
            p(&["checkpoint", "inspect", "state/c.bin"]),
            Ok(Command::CheckpointInspect { file: "state/c.bin".into() })
        );
        assert!(p(&["checkpoint", "inspect"]).is_err());
        assert_eq!(
            p(&["config", "check", "--config=b.yaml"]),
            Ok(Command::ConfigCheck { config: Some("b.yaml".into()) })
        );
        assert_eq!(p(&["--version"]), Ok(Command::Version));
        assert_eq!(p(&["-V"]), Ok(Command::Version));
        assert_eq!(
            p(&["runtime-secrets", "--rotate", "API_KEY", "--rotate=CHECKPOINT_AES_KEY", "--print-exports"]),
            Ok(Command::RuntimeSecrets(runtime_secrets::Options {
                env_file: DEFAULT_RUNTIME_ENV.into(),
                rotate: vec!["API_KEY".into(), "CHECKPOINT_AES_KEY".into()],
                force: false,
                print_exports: true,
            }))
        );
        let Ok(Command::PrometheusEndpoints(o)) =
            p(&["prometheus-endpoints", "--env-file", "x.env", "--push-port", "1", "--instance", "i", "--force"])
        else {
            panic!("prometheus-endpoints parses")
        };
        assert_eq!((o.env_file, o.force), ("x.env".into(), true));
        assert_eq!(o.flags[1].as_deref(), Some("1"));
        assert_eq!(o.flags[6].as_deref(), Some("i"));
    }

    #[test]
    fn help_everywhere() {
        assert_eq!(p(&["--help"]), Ok(Command::Help(MAIN_HELP)));
        assert_eq!(p(&["help"]), Ok(Command::Help(MAIN_HELP)));
        assert_eq!(p(&["help", "run"]), Ok(Command::Help(RUN_HELP)));
        assert_eq!(p(&["help", "config"]), Ok(Command::Help(CONFIG_HELP)));
        assert_eq!(p(&["run", "--help"]), Ok(Command::Help(RUN_HELP)));
        assert_eq!(p(&["config", "--help"]), Ok(Command::Help(CONFIG_HELP)));
        assert_eq!(p(&["config", "check", "-h"]), Ok(Command::Help(CONFIG_HELP)));
    }

    #[test]
    fn usage_errors_say_what() {
        assert!(p(&[]).expect_err("none").message.contains("no command"));
        assert!(p(&["fly"]).expect_err("fly").message.contains("unknown command \"fly\""));
        assert!(p(&["run", "--verbose"]).expect_err("flag").message.contains("--verbose"));
        assert!(p(&["run", "--config"]).expect_err("value").message.contains("--config"));
        assert!(p(&["config"]).expect_err("action").message.contains("check"));
        assert!(p(&["config", "lint"]).expect_err("action").message.contains("lint"));
        assert!(p(&["--frobnicate"]).expect_err("opt").message.contains("--frobnicate"));
        assert_eq!(p(&["run", "--verbose"]).expect_err("flag").help, RUN_HELP);
    }
}
