//! `mt5bot run`: start-up, the engine on the main thread, and an orderly stop.
//!
//! Start-up order matters: logging first (so every later failure is recorded), then the metrics
//! listener (a port conflict is reported before anything trades), the feed, the venue and the
//! reactor; `READY=1` goes to systemd only once `/metrics` is served and the venue is up.

use std::path::Path;
use std::sync::Arc;

use crate::config::web::WebConfig;
use crate::config::{Config, ConfigError, VenueKind};
use crate::domain::clock::{Clock, MonotonicClock};
use crate::domain::notice::Notice;
use crate::domain::venue::Venue;
use crate::engine::checkpoint;
use crate::engine::core::TradingCore;
use crate::engine::journal;
use crate::engine::reactor::{Checkpointer, Reactor, StopReason};
use crate::engine::replay;
use crate::link::Health;
use crate::support::sd_notify::Notifier;
use crate::support::{build_info, timefmt};
use crate::telemetry::http::{Helper, Surfaces};
use crate::telemetry::influx;
use crate::telemetry::logging::LogWriter;
use crate::telemetry::metrics::Metrics;
use crate::telemetry::notify;
use crate::telemetry::web::ListenerSecurity;
use crate::venue::feed::Feed;
use crate::venue::fix44::FixVenue;
use crate::venue::mt5::Mt5Venue;
use crate::venue::paper::PaperVenue;

/// Why the daemon could not run; each maps to an exit code.
#[derive(Debug)]
pub enum DaemonError {
    /// The configuration is invalid (a usage error).
    Config(ConfigError),
    /// An input the configuration names is invalid, e.g. the replay file (a usage error).
    Input(String),
    /// Something failed at start-up or while running (a failure).
    Runtime(String),
}

impl std::fmt::Display for DaemonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DaemonError::Config(e) => write!(f, "configuration error: {e}"),
            DaemonError::Input(m) | DaemonError::Runtime(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for DaemonError {}

/// What to do with a checkpoint that would otherwise stop the start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckpointPolicy {
    /// Move a checkpoint that cannot be used aside and start clean (`--discard-checkpoint`).
    pub discard: bool,
    /// Start from a checkpoint older than the last one written, or from none though one was
    /// written (`--accept-rollback`).
    pub accept_rollback: bool,
}

/// Runs the daemon until it is stopped; returns why it stopped. `discard_checkpoint` says what to
/// do with a checkpoint that cannot be used.
pub fn run(config_path: Option<&Path>, discard_checkpoint: CheckpointPolicy) -> Result<StopReason, DaemonError> {
    let cfg = match config_path {
        Some(p) => Config::load(p).map_err(DaemonError::Config)?,
        None => Config::embedded(),
    };
    let mut metrics = Metrics::new();
    metrics.set_identity(&cfg.identity.labels);
    let forwarder = match &cfg.log_forward {
        Some(lf) => Some(
            crate::telemetry::log_forward::Forwarder::spawn(lf, &metrics, crate::support::host::hostname(), &|k| {
                std::env::var(k).ok()
            })
            .map_err(DaemonError::Input)?,
        ),
        None => None,
    };
    let l = &cfg.logging;
    let logger = LogWriter::start(
        &l.file,
        l.level,
        l.stderr,
        l.channel_capacity,
        metrics.log_records_dropped.clone(),
        forwarder.as_ref().map(|f| f.handle()),
    )
    .map_err(|e| DaemonError::Runtime(e.to_string()))?;
    if let Some(f) = &forwarder {
        f.begin();
    }
    log::info!(
        "mt5bot {} (commit {}) starting: config {}, venue {}, {} symbols",
        build_info::VERSION,
        build_info::GIT_COMMIT,
        cfg.source,
        cfg.venue.name(),
        cfg.feed.symbols.len()
    );
    for w in cfg.warnings() {
        log::warn!("{w}");
    }
    let result = crate::secrets::Secrets::from_process().map_err(DaemonError::Runtime).and_then(|secrets| {
        log::info!("secrets: {}", secrets.describe());
        run_logged(&cfg, config_path, metrics, &secrets, discard_checkpoint)
    });
    if let Err(e) = &result {
        log::error!("{e}");
    }
    logger.finish();
    if let Some(f) = forwarder {
        f.stop();
    }
    result
}

/// How long a stop waits for the notification sinks to deliver what they hold.
const NOTIFY_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Fills that may wait for the InfluxDB writer before the engine drops (and counts) them.
const TRADE_CHANNEL: usize = 65_536;

/// Refuses a checkpoint path that is a symbolic link: the atomic rename of every write would
/// replace the link with a file (and a dangling link used to mean a silent fresh start).
fn refuse_symlink(path: &Path, what: &str) -> Result<(), DaemonError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            let target = std::fs::read_link(path).map(|t| t.display().to_string()).unwrap_or_else(|_| "?".into());
            let state = if path.exists() { "which exists" } else { "which does not exist" };
            Err(DaemonError::Input(format!(
                "{what} {} is a symbolic link (to {target}, {state}); checkpoints are replaced by an atomic rename, \
                 which would replace the link: point checkpoint.path at the real file, or link the folder instead",
                path.display()
            )))
        }
        _ => Ok(()),
    }
}

/// Checks that the checkpoint's folder takes a new file, so a checkpoint cannot fail for good while
/// the daemon trades on (and the next start is silently older).
fn check_writable(path: &Path) -> Result<(), DaemonError> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let fail = |e: std::io::Error| {
        DaemonError::Input(format!(
            "the state folder {} is not writable ({e}): checkpoints would fail and the next start would lose \
             positions; fix its owner and mode (the service user needs rwx), or set checkpoint.path elsewhere",
            dir.display()
        ))
    };
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(fail)?;
    let probe = dir.join(format!(".mt5bot-write-check-{}", std::process::id()));
    std::fs::File::create(&probe).map_err(fail)?;
    std::fs::remove_file(&probe).map_err(fail)
}

/// Restores the checkpoint into `core` when there is one; returns the keys to write new ones with
/// and the generation the next checkpoint takes.
fn restore_checkpoint<V: Venue, C: Clock>(
    cfg: &Config,
    secrets: &crate::secrets::Secrets,
    core: &mut TradingCore<V, C>,
    policy: CheckpointPolicy,
) -> Result<Option<(checkpoint::Keys, u64)>, DaemonError> {
    use crate::support::names::{CHECKPOINT_AES_KEY, CHECKPOINT_AES_KEY_PREVIOUS};
    let Some(key) = secrets.get(CHECKPOINT_AES_KEY) else {
        let path = &cfg.checkpoint.path;
        refuse_symlink(path, "checkpoint.path")?;
        if path.exists() {
            return Err(DaemonError::Input(format!(
                "{}: a checkpoint exists but CHECKPOINT_AES_KEY is not set, so it cannot be read; set the key it was written with (runtime.env), or start clean with --discard-checkpoint",
                path.display()
            )));
        }
        return Ok(None);
    };
    let keys = checkpoint::Keys::new(key.expose(), secrets.get(CHECKPOINT_AES_KEY_PREVIOUS).map(|p| p.expose()))
        .map_err(|e| DaemonError::Input(e.to_string()))?;
    let path = &cfg.checkpoint.path;
    let record = checkpoint::generation_path(path);
    refuse_symlink(path, "checkpoint.path")?;
    refuse_symlink(&record, "the generation record")?;
    check_writable(path)?;

    // The last generation written, from the record beside the checkpoint.
    let last = match std::fs::read(&record) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(DaemonError::Input(format!("{}: cannot read it: {e}", record.display()))),
        Ok(bytes) => match checkpoint::open_generation(&bytes, &keys) {
            Ok(g) => g,
            Err(e) if policy.accept_rollback => {
                log::warn!("generation record {} ignored as asked (--accept-rollback): {e}", record.display());
                0
            }
            Err(e) if policy.discard => {
                let aside = checkpoint::discard(&record).map_err(|e| DaemonError::Runtime(e.to_string()))?;
                log::warn!(
                    "generation record {} refused ({e}); moved aside to {} as asked (--discard-checkpoint)",
                    record.display(),
                    aside.display()
                );
                0
            }
            Err(e) => {
                return Err(DaemonError::Input(format!(
                    "{}: {e}; or, if the checkpoint beside it is the one to use, start with --accept-rollback",
                    record.display()
                )))
            }
        },
    };
    if !path.exists() {
        let segments = journal::segments(path).unwrap_or_default();
        if !segments.is_empty() {
            if !policy.accept_rollback && !policy.discard {
                return Err(DaemonError::Input(format!(
                    "{}: the checkpoint is missing but {} order journal segments written after one are beside it ({}); put the checkpoint back, or start clean anyway with --discard-checkpoint (the segments are moved aside)",
                    path.display(),
                    segments.len(),
                    segments[0].1.display()
                )));
            }
            set_segments_aside(path)?;
        }
        if last > 0 && !policy.accept_rollback && !policy.discard {
            return Err(DaemonError::Input(
                checkpoint::CheckpointError::Missing { last, record: record.display().to_string() }.to_string(),
            ));
        }
        if last > 0 {
            log::warn!(
                "checkpoint {} missing though generation {last} was written; starting clean as asked",
                path.display()
            );
        }
        return Ok(Some((keys, last + 1)));
    }
    let opened = std::fs::read(path)
        .map_err(|e| checkpoint::CheckpointError::Io(format!("cannot read it: {e}")))
        .and_then(|bytes| checkpoint::open(&bytes, &keys))
        .and_then(|(state, used)| {
            if state.generation < last && !policy.accept_rollback {
                return Err(checkpoint::CheckpointError::Rollback {
                    found: state.generation,
                    last,
                    record: record.display().to_string(),
                });
            }
            Ok((state, used))
        });
    match opened {
        Ok((state, used)) => {
            if state.generation < last {
                log::warn!(
                    "checkpoint {} is generation {}, older than generation {last} written after it; restored as asked (--accept-rollback)",
                    path.display(),
                    state.generation
                );
            }
            let mut state = state;
            let settled = replay_journal(path, &mut state, &keys, policy)?;
            let (restored, lost) =
                core.restore(&state).map_err(|e| DaemonError::Input(format!("{}: {e}", path.display())))?;
            core.restore_settled(&settled);
            let positions: Vec<String> =
                state.positions.iter().filter(|p| p.qty != 0.0).map(|p| format!("{}={}", p.symbol, p.qty)).collect();
            log::info!(
                "restored checkpoint {} (generation {}) written {}: trades {}, positions [{}]{}{}",
                path.display(),
                state.generation,
                state.written_at,
                state.trades,
                positions.join(" "),
                if used == checkpoint::KeyUsed::Previous {
                    "; opened with CHECKPOINT_AES_KEY_PREVIOUS, the next one is written with the new key"
                } else {
                    ""
                },
                match (restored, lost) {
                    (0, 0) => String::new(),
                    (r, 0) => format!("; {r} orders in flight then are back in flight, to be settled by the venue"),
                    (_, l) => format!("; {l} paper orders in flight then were lost with the old process"),
                }
            );
            Ok(Some((keys, last.max(state.generation) + 1)))
        }
        Err(e @ checkpoint::CheckpointError::Rollback { .. }) => {
            Err(DaemonError::Input(format!("{}: {e}", path.display())))
        }
        Err(e) if policy.discard => {
            let aside = checkpoint::discard(path).map_err(|e| DaemonError::Runtime(e.to_string()))?;
            log::warn!(
                "checkpoint {} refused ({e}); moved aside to {} as asked (--discard-checkpoint); starting clean",
                path.display(),
                aside.display()
            );
            set_segments_aside(path)?;
            Ok(Some((keys, last + 1)))
        }
        Err(e) => Err(DaemonError::Input(format!("{}: {e}", path.display()))),
    }
}

/// Replays the order journal written after `state` into it; returns the orders it saw end, with
/// what was filled of each. A damaged journal stops the start unless the operator accepts the
/// checkpoint alone (`--accept-rollback`).
fn replay_journal(
    path: &Path,
    state: &mut checkpoint::State,
    keys: &checkpoint::Keys,
    policy: CheckpointPolicy,
) -> Result<Vec<(crate::domain::types::SignalId, f64)>, DaemonError> {
    let before = state.clone();
    match journal::replay(path, state, keys) {
        Ok(r) if r.entries == 0 => Ok(r.settled),
        Ok(r) => {
            log::info!(
                "replayed the order journal after checkpoint generation {} ({} segments, {} entries): {} signals queued, {} orders sent, {} fills, {} closed{}",
                before.generation,
                r.segments,
                r.entries,
                r.queued,
                r.sent,
                r.fills,
                r.closed,
                if r.torn_tails > 0 { "; a last batch cut short by the crash was ignored (never synced, never answered)" } else { "" }
            );
            Ok(r.settled)
        }
        Err(e) if policy.accept_rollback || policy.discard => {
            *state = before;
            log::warn!("{e}; starting from the checkpoint alone as asked; the venue reports what happened after it");
            set_segments_aside(path)?;
            Ok(Vec::new())
        }
        Err(e) => Err(DaemonError::Input(e.to_string())),
    }
}

/// Moves every journal segment beside the checkpoint at `path` aside (never deletes them).
fn set_segments_aside(path: &Path) -> Result<(), DaemonError> {
    for (_, seg) in journal::segments(path).unwrap_or_default() {
        let aside = checkpoint::discard(&seg).map_err(|e| DaemonError::Runtime(e.to_string()))?;
        log::warn!("order journal segment {} moved aside to {}", seg.display(), aside.display());
    }
    Ok(())
}

fn run_logged(
    cfg: &Config,
    config_path: Option<&Path>,
    metrics: Metrics,
    secrets: &crate::secrets::Secrets,
    discard_checkpoint: CheckpointPolicy,
) -> Result<StopReason, DaemonError> {
    let influx_target = match &cfg.influx {
        Some(ic) => Some(influx::resolve(ic, secrets, &|k| std::env::var(k).ok()).map_err(DaemonError::Input)?),
        None => None,
    };
    let health = Arc::new(Health::new(cfg.engine.ready_deadline));
    let security = listener_security(&cfg.metrics)?;
    let server = metrics_listener(&cfg.metrics)?;

    let input = |e: crate::venue::feed::FeedError| DaemonError::Input(e.to_string());
    let symbols: Vec<String> = cfg.feed.symbols.iter().map(|s| s.name.clone()).collect();
    let config_path = config_path.map(Path::to_path_buf);
    let mut parts = Parts { metrics, influx_target, health, server, security, feed: None, symbols, config_path };
    if on_data_time(cfg) {
        let feed = Feed::new(&replay::at_data_pace(&cfg.feed), 0).map_err(input)?;
        let clock = replay::clock_for(&feed);
        log::info!(
            "feed: the CSV replays at speed 0 on the paper venue, so the engine runs on the data's own time \
             from {} (fills stamped as a backtest of the same file would stamp them)",
            timefmt::rfc3339_micros(clock.unix_nanos())
        );
        parts.feed = Some(feed);
        let venue = PaperVenue::for_config(cfg);
        return run_venue(cfg, secrets, discard_checkpoint, venue, parts, clock);
    }
    let clock = MonotonicClock::new();
    parts.feed = Some(Feed::new(&cfg.feed, clock.now()).map_err(input)?);
    match cfg.venue.kind {
        VenueKind::Paper => {
            let venue = PaperVenue::for_config(cfg);
            run_venue(cfg, secrets, discard_checkpoint, venue, parts, clock)
        }
        VenueKind::Fix44 => {
            let venue = fix_venue(cfg, secrets, &parts)?;
            run_venue(cfg, secrets, discard_checkpoint, venue, parts, clock)
        }
        VenueKind::Mt5 => {
            use crate::support::names::CONTROLLER_SHARED_SECRET;
            let secret = secrets.get(CONTROLLER_SHARED_SECRET).cloned().ok_or_else(|| {
                DaemonError::Input(format!(
                    "venue.kind mt5 needs {CONTROLLER_SHARED_SECRET} (the Expert Advisor proves it knows it); run mt5bot runtime-secrets"
                ))
            })?;
            let m = &cfg.venue.mt5;
            let venue = Mt5Venue::bind(
                m,
                secret,
                &parts.symbols,
                cfg.risk.max_open_orders,
                cfg.queue_max_wait,
                parts.metrics.mt5(),
            )
            .map_err(|e| {
                DaemonError::Runtime(format!(
                    "cannot listen on venue.mt5.listen {}: {e}; choose another address or stop what uses it",
                    m.listen
                ))
            })?
            .expect_account_currency(cfg.protection.account_currency.as_deref())
            .with_tls(mt5_tls(m)?);
            log::info!("MT5 bridge: waiting for the Expert Advisor on {}", m.listen);
            run_venue(cfg, secrets, discard_checkpoint, venue, parts, clock)
        }
    }
}

/// `venue.mt5.tls`, its files read now (a bad file stops the start, naming the setting), with the
/// certificate's thumbprint in the log for the Expert Advisor's `TlsThumbprint` input. Without TLS
/// on an address other machines can reach, a warning: the stream would cross the network in the
/// clear.
fn mt5_tls(m: &crate::config::Mt5Config) -> Result<Option<crate::support::tls::TlsSource>, DaemonError> {
    use crate::support::tls::{sha1_thumbprint, TlsSource};
    let Some(files) = m.tls.clone() else {
        if !m.listen.ip().is_loopback() {
            log::warn!(
                "MT5 bridge: venue.mt5.listen {} is not a loopback address and venue.mt5.tls is not set: the orders \
                 and the handshake cross the network unencrypted; set venue.mt5.tls or use a VPN or SSH tunnel",
                m.listen
            );
        }
        return Ok(None);
    };
    let thumbprint = sha1_thumbprint(&files.cert_file, "venue.mt5.tls.cert_file").map_err(DaemonError::Input)?;
    let source = TlsSource::new(files, "venue.mt5.tls", &[], "MT5 bridge").map_err(DaemonError::Input)?;
    log::info!(
        "MT5 bridge: TLS on ({}); certificate SHA-1 thumbprint {thumbprint}: set the Expert Advisor's TlsThumbprint \
         input to it",
        source.cert_file().display()
    );
    Ok(Some(source))
}

/// The metrics listener, bound at start-up so a port conflict is reported before anything trades.
/// Accepted sockets inherit TCP_NODELAY from it on Linux (an answer's last segment must not wait
/// for the client's delayed ACK).
fn metrics_listener(m: &crate::config::MetricsConfig) -> Result<std::net::TcpListener, DaemonError> {
    let addr = m.listen;
    let fail = |e: &dyn std::fmt::Display| {
        DaemonError::Runtime(format!(
            "cannot listen on metrics.listen {addr}: {e}; choose another address in the config or stop what uses it"
        ))
    };
    let listener = std::net::TcpListener::bind(addr).map_err(|e| fail(&e))?;
    if let Err(e) = socket2::SockRef::from(&listener).set_nodelay(true) {
        log::warn!("cannot set TCP_NODELAY on the metrics listener ({e}); scrapes may take 40 ms longer");
    }
    Ok(listener)
}

/// The listener's bounds from the config.
fn http_limits(m: &crate::config::MetricsConfig) -> crate::telemetry::server::Limits {
    crate::telemetry::server::Limits {
        max_connections: m.max_connections,
        header_timeout: m.header_timeout,
        body_timeout: m.body_timeout,
        idle_timeout: m.idle_timeout,
        write_timeout: m.write_timeout,
    }
}

/// What start-up prepared before the venue was chosen.
struct Parts {
    metrics: Metrics,
    influx_target: Option<influx::Target>,
    health: Arc<Health>,
    server: std::net::TcpListener,
    security: ListenerSecurity,
    /// Set once the clock it runs on is chosen.
    feed: Option<Feed>,
    symbols: Vec<String>,
    /// The file the config came from (for the control API's reload).
    config_path: Option<std::path::PathBuf>,
}

/// TLS and basic authentication for the metrics listener, from `metrics.web_config`.
fn listener_security(m: &crate::config::MetricsConfig) -> Result<ListenerSecurity, DaemonError> {
    let Some(path) = &m.web_config else { return Ok(ListenerSecurity::default()) };
    let web = WebConfig::load(path).map_err(DaemonError::Config)?;
    let security = ListenerSecurity::new(&web).map_err(|e| DaemonError::Input(format!("{}: {e}", path.display())))?;
    log::info!(
        "metrics listener: {}, {}",
        if security.tls.is_some() { "TLS on" } else { "plain HTTP (no tls_server_config)" },
        match web.basic_auth_users.len() {
            0 => "no basic authentication".to_owned(),
            n => format!("basic authentication for {n} user(s) on every path but /api/v1/"),
        }
    );
    Ok(security)
}

/// Builds the FIX venue: resolves the gateway's address (once, at start-up: the engine never waits
/// for DNS) and takes the credentials from the environment or `$CREDENTIALS_DIRECTORY`.
fn fix_venue(cfg: &Config, secrets: &crate::secrets::Secrets, parts: &Parts) -> Result<FixVenue, DaemonError> {
    use std::net::ToSocketAddrs;
    let f = &cfg.venue.fix44;
    let addrs: Vec<std::net::SocketAddr> = f
        .connect
        .to_socket_addrs()
        .map_err(|e| DaemonError::Input(format!("venue.fix44.connect {}: cannot resolve: {e}", f.connect)))?
        .collect();
    if addrs.is_empty() {
        return Err(DaemonError::Input(format!("venue.fix44.connect {}: resolves to no address", f.connect)));
    }
    let username = std::env::var(crate::support::names::FIX_USERNAME).ok().filter(|u| !u.is_empty());
    let password = secrets.get(crate::support::names::FIX_PASSWORD).cloned();
    log::info!(
        "FIX venue: {} ({}) as {} to {}, username {}, password {}",
        f.connect,
        addrs.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
        f.sender_comp_id,
        f.target_comp_id,
        if username.is_some() { "set" } else { "not set" },
        if password.is_some() { "set" } else { "not set" }
    );
    FixVenue::new(
        f,
        addrs,
        &parts.symbols,
        cfg.risk.max_open_orders,
        cfg.queue_max_wait,
        (username, password),
        parts.metrics.fix(),
    )
    .map_err(DaemonError::Input)
}

/// Whether the engine runs on the data's own time: a CSV replayed at speed 0 ("as fast as the
/// machine goes") on the paper venue, stepped row by row as a backtest steps it, so the two give
/// the same orders and fills at the same times.
fn on_data_time(cfg: &Config) -> bool {
    cfg.venue.kind == VenueKind::Paper
        && matches!(cfg.feed.source, crate::config::FeedSource::Csv { speed, .. } if speed == 0.0)
}

fn run_venue<V: Venue, C: Clock>(
    cfg: &Config,
    secrets: &crate::secrets::Secrets,
    discard_checkpoint: CheckpointPolicy,
    venue: V,
    parts: Parts,
    clock: C,
) -> Result<StopReason, DaemonError> {
    let Parts { metrics, influx_target, health, server, security, feed, symbols, config_path } = parts;
    let feed = feed.expect("the feed is made with the clock");
    let data_time = on_data_time(cfg);
    let engine_metrics = metrics.engine(venue.name(), &symbols);
    metrics.queue_capacity.set(cfg.queue_capacity as i64);
    // Model signal ids start with the start time (the data's on a replay on its own time, as a
    // backtest's do), so they never repeat across restarts.
    let run_id = crate::engine::core::run_id_at(clock.unix_nanos());
    let mut core = TradingCore::new(cfg, venue, clock, engine_metrics.clone(), &run_id);
    let influx_writer = match influx_target {
        Some(target) => {
            let (tx, rx) = std::sync::mpsc::sync_channel(TRADE_CHANNEL);
            core.set_trade_sink(tx);
            let url = target.write_url.clone();
            let labels = influx::Labels {
                host: crate::support::host::hostname(),
                venue: cfg.venue.name(),
                symbols: symbols.clone(),
            };
            let w = influx::InfluxWriter::spawn(target, metrics.clone(), rx, labels)
                .map_err(|e| DaemonError::Runtime(format!("cannot start the InfluxDB writer thread: {e}")))?;
            log::info!("writing metrics and trades to {}", url.split('?').next().unwrap_or(&url));
            Some(w)
        }
        None => None,
    };
    let notifications = if cfg.notify.sinks.is_empty() {
        None
    } else {
        let name = cfg.identity.name();
        let context = notify::Context {
            bot: if name.is_empty() { "mt5bot".to_owned() } else { format!("mt5bot {name}") },
            symbols: symbols.clone(),
        };
        let secret = |var: &str| crate::secrets::Secrets::named_from_process(var).map(|s| s.map(|(s, _)| s));
        let (n, outlets) = notify::spawn(&cfg.notify, &metrics, context, &secret).map_err(DaemonError::Input)?;
        let names: Vec<&str> = cfg.notify.sinks.iter().map(|s| s.name.as_str()).collect();
        log::info!("notifications to {}", names.join(", "));
        outlets.offer(&Notice::Started { venue: core.venue().name(), version: build_info::VERSION });
        core.set_notices(outlets.clone());
        Some((n, outlets))
    };
    let keys = restore_checkpoint(cfg, secrets, &mut core, discard_checkpoint)?;
    let mut reactor = Reactor::new(cfg, core, feed, engine_metrics).map_err(|e| DaemonError::Runtime(e.to_string()))?;
    if data_time {
        reactor.on_data_time();
    }
    match keys {
        Some((k, next_generation)) => {
            let mut c = Checkpointer::start(
                k.clone(),
                cfg.checkpoint.path.clone(),
                cfg.checkpoint.interval,
                metrics.clone(),
                next_generation,
            )
            .map_err(|e| DaemonError::Runtime(format!("cannot start the checkpoint writer: {e}")))?;
            // The restored state, journal replay included, becomes a checkpoint before anything
            // happens, so the journal starts empty after it.
            let path = &cfg.checkpoint.path;
            let generation = c.write_now(reactor.core(), path).map_err(|e| {
                DaemonError::Runtime(format!("{e}; nothing was traded (the order journal needs a checkpoint to follow)"))
            })?;
            journal::remove_all(path);
            let sender = reactor.command_sender();
            let wake: journal::Wake = Arc::new(move || sender.wake());
            let j = journal::Journal::start(path, generation, symbols.clone(), k, metrics.clone(), Some(wake))
                .map_err(DaemonError::Runtime)?;
            reactor.core_mut().set_journal(j);
            reactor.set_checkpointer(c);
        }
        None => log::warn!(
            "checkpoints off: CHECKPOINT_AES_KEY is not set (run mt5bot runtime-secrets); a restart would forget positions"
        ),
    }
    let control = crate::telemetry::control::Control::new(
        secrets.get(crate::support::names::API_KEY).cloned(),
        config_path,
        cfg.clone(),
        secrets.names_set(),
        reactor.command_sender(),
        metrics.clone(),
    );
    let tls_on = security.tls.is_some();
    // The console's active alerts, from the Prometheus of PROM_QUERY_URL (on a thread of its own:
    // the helper thread never waits on the network).
    let alerts_url = std::env::var(crate::support::names::PROM_QUERY_URL).ok().filter(|u| !u.trim().is_empty());
    let alerts_view = alerts_url.as_ref().map(|_| crate::telemetry::prom_query::AlertsView::default());
    let alerts_watch = match (&alerts_url, &alerts_view) {
        (Some(url), Some(view)) => Some(
            crate::telemetry::prom_query::AlertsWatch::spawn(url.clone(), view.clone())
                .map_err(|e| DaemonError::Runtime(format!("cannot start the alerts thread: {e}")))?,
        ),
        _ => None,
    };
    let helper = Helper::spawn(
        server,
        http_limits(&cfg.metrics),
        metrics.clone(),
        Arc::clone(&health),
        reactor.command_sender(),
        Surfaces { control, alerts: alerts_view, security },
    )
    .map_err(|e| DaemonError::Runtime(format!("cannot start the helper thread: {e}")))?;

    let notifier = Notifier::from_env().unwrap_or_else(|e| {
        log::warn!("NOTIFY_SOCKET is set but unusable ({e}); running without systemd notifications");
        Notifier::disabled()
    });
    health.turned(reactor.core().venue().is_up());
    match reactor.ingress_addr() {
        Some(a) => log::info!("signal ingress listening on {a}"),
        None => log::info!("signal ingress off (ingress.enabled: false)"),
    }
    // READY=1 means the daemon serves (metrics, health, the control API) and its engine runs. A
    // venue that waits for its counterparty (the MT5 terminal, a FIX gateway) may take hours to come
    // up, so readiness does not wait for it: STATUS= and /readyz say whether the venue is up.
    let venue = reactor.core().venue().name();
    let scheme = if tls_on { "https" } else { "http" };
    let status = if reactor.core().venue().is_up() {
        log::info!("ready: metrics on {scheme}://{}/metrics, venue {venue} up", cfg.metrics.listen);
        format!("trading: venue {venue} up")
    } else {
        let waiting = match cfg.venue.kind {
            VenueKind::Mt5 => format!("waiting for the Expert Advisor to connect to {}", cfg.venue.mt5.listen),
            VenueKind::Fix44 => format!("connecting to the FIX gateway {}", cfg.venue.fix44.connect),
            VenueKind::Paper => "starting".to_owned(),
        };
        log::info!(
            "ready: metrics on {scheme}://{}/metrics; venue {venue} not up yet ({waiting}); /readyz answers 503 until it is",
            cfg.metrics.listen
        );
        format!("venue {venue} not up: {waiting}")
    };
    if let Err(e) = notifier.notify("READY=1") {
        log::warn!("cannot notify systemd of readiness: {e}");
    }
    if let Err(e) = notifier.notify(&format!("STATUS={status}")) {
        log::warn!("cannot send systemd the status: {e}");
    }

    let result = reactor.run(&health, &notifier);
    health.set_stopping();
    let now = reactor.core().clock().now();
    reactor.core_mut().venue_mut().close(now);
    if let Some(j) = reactor.core_mut().take_journal() {
        // Synced and stopped first: the final checkpoint then holds everything it held.
        j.finish();
    }
    let final_checkpoint = match reactor.take_checkpointer() {
        Some(c) => c.finish(reactor.core(), &cfg.checkpoint.path),
        None => Ok(()),
    };
    let summary = reactor.core().summary();
    if let Some(w) = influx_writer {
        w.stop();
    }
    push_final_values(&metrics);
    if let Some((n, outlets)) = notifications {
        drop(reactor.core_mut().take_notices());
        let why = match &result {
            Ok(StopReason::Signal(s)) => s.to_string(),
            Ok(StopReason::Command(r)) => r.clone(),
            Err(e) => format!("the engine loop failed: {e}"),
        };
        outlets.offer(&Notice::Stopped { why });
        drop(outlets);
        n.stop(NOTIFY_GRACE);
    }
    let outcome = match result {
        Ok(reason) => {
            if summary.open_orders > 0 {
                log::warn!(
                    "{} orders were still in flight after engine.shutdown_grace; {}",
                    summary.open_orders,
                    if cfg.venue.kind == VenueKind::Paper {
                        "the paper venue abandons them"
                    } else {
                        "the venue still holds them; their outcome arrives after the next start"
                    }
                );
            }
            let why = match &reason {
                StopReason::Signal(s) => s.to_string(),
                StopReason::Command(r) => r.clone(),
            };
            log::info!("stopped ({why}); final state: {summary}");
            match final_checkpoint {
                Ok(()) => Ok(reason),
                // Exit non-zero: the next start would restore an older state than the one logged.
                Err(e) => Err(DaemonError::Runtime(format!(
                    "{e}; the next start restores the checkpoint before it, older than the final state logged above"
                ))),
            }
        }
        Err(e) => {
            log::error!("final state after an engine failure: {summary}");
            Err(DaemonError::Runtime(format!("the engine loop failed: {e}")))
        }
    };
    helper.stop();
    if let Some(w) = alerts_watch {
        w.stop();
    }
    outcome
}

/// Pushes the final metric values to `PROM_PUSH_URL`, when set, so they outlive the process.
fn push_final_values(metrics: &Metrics) {
    use crate::telemetry::pushgateway::{grouped, push, Mode, PROM_PUSH_URL};
    let Some(url) = std::env::var(PROM_PUSH_URL).ok().filter(|u| !u.is_empty()) else { return };
    let url = grouped(&url, metrics.identity());
    let mut body = Vec::new();
    if let Err(e) = metrics.encode(&mut body) {
        log::warn!("cannot encode the final metrics for the Pushgateway: {e}");
        return;
    }
    match push(&url, &body, Mode::Merge, std::time::Duration::from_secs(5)) {
        Ok(()) => log::info!("final metric values pushed to {url}"),
        Err(e) => log::warn!("{e}; the final values are only in the log"),
    }
}
