//! The subcommands other than `run` and `ctl`: each does its work, prints what the operator reads,
//! and returns an [`Error`] whose kind decides the exit code.

use std::path::Path;

use super::{Error, Kind};
use crate::config::Config;
use crate::deployment::{influx_bootstrap, prometheus_endpoints, runtime_secrets, DeployError};

/// `mt5bot config check`: validates and prints the effective configuration.
pub fn config_check(path: Option<&Path>) -> Result<(), Error> {
    let cfg = match path {
        Some(path) => Config::load(path),
        None => Ok(Config::embedded()),
    }
    .map_err(|e| Error::usage(format!("configuration error: {e}")))?;
    if let Some(web) = &cfg.metrics.web_config {
        // The files it names are read as the daemon would: a bad key or certificate fails here.
        let wc =
            crate::config::web::WebConfig::load(web).map_err(|e| Error::usage(format!("configuration error: {e}")))?;
        crate::telemetry::web::ListenerSecurity::new(&wc)
            .map_err(|e| Error::usage(format!("configuration error: {}: {e}", web.display())))?;
    }
    if let (crate::config::VenueKind::Mt5, Some(tls)) = (cfg.venue.kind, &cfg.venue.mt5.tls) {
        // The MT5 bridge's certificate and key, read as the daemon would at start.
        crate::support::tls::server_config(tls, "venue.mt5.tls", &[])
            .map_err(|e| Error::usage(format!("configuration error: {e}")))?;
    }
    for w in cfg.warnings() {
        eprintln!("mt5bot: warning: {w}");
    }
    outln!("# effective configuration of {} (valid)", cfg.source);
    outln!("# secrets are never read from the config file; none appear here");
    out!("{}", cfg.to_yaml());
    Ok(())
}

/// `mt5bot config target`: the Prometheus file_sd target of this bot, printed or written.
pub fn config_target(path: Option<&Path>, out: Option<&Path>) -> Result<(), Error> {
    let cfg = match path {
        Some(path) => Config::load(path),
        None => Ok(Config::embedded()),
    }
    .map_err(|e| Error::usage(format!("configuration error: {e}")))?;
    let mut labels: serde_json::Map<String, serde_json::Value> =
        cfg.identity.labels.iter().map(|(k, v)| (k.clone(), serde_json::Value::from(v.as_str()))).collect();
    if let Some(web) = &cfg.metrics.web_config {
        // file_sd may set the scrape's scheme per target: a TLS listener is scraped over https.
        let wc =
            crate::config::web::WebConfig::load(web).map_err(|e| Error::usage(format!("configuration error: {e}")))?;
        if wc.tls.is_some() {
            labels.insert("__scheme__".into(), "https".into());
        }
    }
    let target = serde_json::json!([{ "targets": [cfg.metrics.listen.to_string()], "labels": labels }]);
    let text = format!("{}\n", serde_json::to_string_pretty(&target).unwrap_or_default());
    match out {
        None => out!("{text}"),
        Some(file) => {
            crate::support::files::write_atomic_mode(file, text.as_bytes(), 0o644)
                .map_err(|e| Error::failed(format!("cannot write {}: {e}", file.display())))?;
            eprintln!("mt5bot: wrote the Prometheus target of {} to {}", cfg.metrics.listen, file.display());
        }
    }
    Ok(())
}

/// `mt5bot runtime-secrets`.
pub fn runtime_secrets(opts: &runtime_secrets::Options) -> Result<(), Error> {
    finish_helper(runtime_secrets::run(opts, runtime_secrets::generate).map(|r| {
        eprintln!("{}", r.summary(&opts.env_file));
        (r.warning, r.exports)
    }))
}

/// `mt5bot prometheus-endpoints`.
pub fn prometheus_endpoints(opts: &prometheus_endpoints::Options) -> Result<(), Error> {
    let env = |k: &str| std::env::var(k).ok();
    finish_helper(prometheus_endpoints::run(opts, &env).map(|r| {
        for line in r.summary(&opts.env_file) {
            eprintln!("{line}");
        }
        (r.warning, r.exports)
    }))
}

/// `mt5bot influx-bootstrap`.
pub fn influx_bootstrap(opts: &influx_bootstrap::Options) -> Result<(), Error> {
    let env = |k: &str| std::env::var(k).ok();
    let result = influx_bootstrap::resolve(opts, &env).and_then(|r| influx_bootstrap::run(opts, &r));
    finish_helper(result.map(|r| {
        for step in &r.steps {
            eprintln!("influx-bootstrap: {step}");
        }
        (r.warnings.into_iter().reduce(|a, b| format!("{a}; {b}")), r.exports)
    }))
}

/// Prints a helper's warning (stderr) and exports (stdout).
fn finish_helper(result: Result<(Option<String>, Vec<String>), DeployError>) -> Result<(), Error> {
    let (warning, exports) = result?;
    if let Some(w) = warning {
        eprintln!("mt5bot: warning: {w}");
    }
    for line in exports {
        outln!("{line}");
    }
    Ok(())
}

/// `mt5bot diagnostics`: a mismatch fails (1), a report that could not be completed is an error of
/// the set-up (2).
pub fn diagnostics(opts: &crate::diagnostics::Options) -> Result<(), Error> {
    let env = |k: &str| std::env::var(k).ok();
    let checkout_lock = std::fs::read_to_string("Cargo.lock").ok();
    let inputs = crate::diagnostics::Inputs { env: &env, checkout_lock };
    let (report, path) =
        crate::diagnostics::run(opts, &inputs).map_err(|e| Error::usage(format!("diagnostics could not run: {e}")))?;
    for m in &report.mismatches {
        eprintln!("mt5bot: diagnostics: {} mismatch: {}; fix: {}", m.kind, m.detail, m.instruction);
    }
    for e in &report.errors {
        eprintln!("mt5bot: diagnostics: error: {e}");
    }
    eprintln!("mt5bot: diagnostics: {} report written to {}", report.status, path.display());
    match report.status {
        "clean" => Ok(()),
        "mismatch" => Err(Error::reported(Kind::Failed)),
        _ => Err(Error::reported(Kind::Usage)),
    }
}

/// `mt5bot hash-password`: one line of stdin in, its bcrypt hash out.
pub fn hash_password(cost: u32) -> Result<(), Error> {
    use std::io::{BufRead, IsTerminal, Read};
    if std::io::stdin().is_terminal() {
        eprintln!("mt5bot: type the password and press Enter (it shows as typed; pipe it in to avoid that)");
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .take(4096)
        .read_line(&mut line)
        .map_err(|e| Error::usage(format!("cannot read stdin: {e}")))?;
    let password = line.strip_suffix('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).unwrap_or(&line);
    if password.is_empty() {
        return Err(Error::usage("no password on stdin".to_owned()));
    }
    if password.len() > 72 {
        // bcrypt reads 72 bytes and ignores the rest: a longer password would pass on its start.
        return Err(Error::usage(format!(
            "the password has {} bytes; bcrypt uses at most 72, so give one of 72 bytes or fewer",
            password.len()
        )));
    }
    let hash = crate::telemetry::web::hash_password(password, cost).map_err(Error::failed)?;
    outln!("{hash}");
    Ok(())
}

/// `mt5bot check-data-versions`.
pub fn check_data_versions(path: &Path, write: bool) -> Result<(), Error> {
    use crate::diagnostics::data_versions::{self as dv, Status};
    let manifest = match dv::load(path).map_err(Error::usage)? {
        Some(m) => m,
        None if write => dv::Manifest::default(),
        None => {
            return Err(Error::usage(format!(
                "no manifest at {}; record the datasets beside it with --write",
                path.display()
            )))
        }
    };
    let rows = dv::check(path, &manifest, true).map_err(Error::usage)?;
    out!("{}", dv::table(&rows));
    if write {
        let m = dv::recorded(&rows);
        dv::save(path, &m).map_err(Error::failed)?;
        eprintln!("mt5bot: {} written: {} datasets", path.display(), m.datasets.len());
        return Ok(());
    }
    let bad = rows.iter().filter(|r| r.status != Status::Ok).count();
    if bad > 0 {
        return Err(Error::failed(format!(
            "{bad} datasets differ from {}: sync them from their source, or record them with --write",
            path.display()
        )));
    }
    Ok(())
}

/// `mt5bot checkpoint inspect FILE`: what a checkpoint holds, and the journal segments after it.
pub fn inspect_checkpoint(path: &Path) -> Result<(), Error> {
    use crate::engine::checkpoint;
    use crate::support::names::{CHECKPOINT_AES_KEY, CHECKPOINT_AES_KEY_PREVIOUS};
    let secrets = crate::secrets::Secrets::from_process().map_err(|e| Error::usage(e.to_string()))?;
    let current = secrets.get(CHECKPOINT_AES_KEY).ok_or_else(|| {
        Error::usage(
            "CHECKPOINT_AES_KEY is not set (environment or $CREDENTIALS_DIRECTORY); it is needed to read a checkpoint",
        )
    })?;
    let previous = secrets.get(CHECKPOINT_AES_KEY_PREVIOUS).map(|p| p.expose());
    let keys = checkpoint::Keys::new(current.expose(), previous).map_err(|e| Error::usage(e.to_string()))?;
    let bytes = std::fs::read(path).map_err(|e| Error::failed(format!("cannot read {}: {e}", path.display())))?;
    let (state, used) =
        checkpoint::open(&bytes, &keys).map_err(|e| Error::failed(format!("{}: {e}", path.display())))?;
    let key_id = checkpoint::header(&bytes).map(|h| h.key_id).unwrap_or_default();
    let key_name = if used == checkpoint::KeyUsed::Current { CHECKPOINT_AES_KEY } else { CHECKPOINT_AES_KEY_PREVIOUS };
    outln!("checkpoint: {}", path.display());
    outln!("written at: {}", state.written_at);
    outln!("generation: {}", state.generation);
    outln!("key id: {key_id} ({key_name})");
    outln!("size: {} bytes", bytes.len());
    outln!("trades: {}", state.trades);
    outln!("positions:");
    for p in &state.positions {
        let level = |v: f64| if v > 0.0 { v.to_string() } else { "-".into() };
        outln!(
            "  {:<10} qty {:>12.4}  avg {:>12.5}  realized pnl {:>12.5}  fills {}  sl {}  tp {}",
            p.symbol,
            p.qty,
            p.avg_price,
            p.realized_pnl,
            p.fills,
            level(p.sl),
            level(p.tp)
        );
    }
    outln!("open orders: {}", state.open_orders.len());
    for o in &state.open_orders {
        outln!(
            "  {:<32} {:<10} {:<4} {:<6} qty {} filled {} price {} {}",
            o.client_id,
            o.symbol,
            o.side,
            o.kind,
            o.qty,
            o.filled,
            o.price,
            o.state
        );
    }
    outln!("queued signals: {}", state.queued.len());
    for q in &state.queued {
        outln!(
            "  {:<32} {:<10} {:<4} {:<6} qty {} price {} queued {}",
            q.id,
            q.symbol,
            q.side,
            q.kind,
            q.qty,
            q.price,
            crate::support::timefmt::rfc3339_micros(i128::from(q.queued_at_unix_ns))
        );
    }
    outln!("signal ids remembered: {}", state.recent_ids.len());
    if let Ok(list) = crate::engine::journal::segments(path) {
        if !list.is_empty() {
            outln!("order journal segments after it (replayed at the next start):");
            for (g, p) in list {
                let size = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
                outln!("  generation {g}: {} ({size} bytes)", p.display());
            }
        }
    }
    Ok(())
}
