//! The `mt5bot` binary: parse the command line, dispatch, map errors to exit codes
//! (0 success, 1 runtime failure, 2 usage or configuration error).

use std::process::ExitCode;

use mt5bot::cli::{self, Command};
use mt5bot::config::Config;
use mt5bot::daemon;
use mt5bot::deployment::{influx_bootstrap, prometheus_endpoints, runtime_secrets, DeployError};
use mt5bot::engine::reactor::StopReason;

fn main() -> ExitCode {
    let command = match cli::parse(std::env::args_os().skip(1).collect()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mt5bot: {e}\n\n{}", e.help);
            return ExitCode::from(2);
        }
    };
    match command {
        Command::Version => {
            print!("{}", mt5bot::support::build_info::version_text());
            ExitCode::SUCCESS
        }
        Command::Help(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Command::ConfigCheck { config } => {
            let loaded = match &config {
                Some(path) => Config::load(path),
                None => Ok(Config::embedded()),
            };
            match loaded {
                Ok(cfg) => {
                    for w in cfg.warnings() {
                        eprintln!("mt5bot: warning: {w}");
                    }
                    println!("# effective configuration of {} (valid)", cfg.source);
                    println!("# secrets are never read from the config file; none appear here");
                    print!("{}", cfg.to_yaml());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("mt5bot: configuration error: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::RuntimeSecrets(opts) => {
            finish_helper(runtime_secrets::run(&opts, runtime_secrets::generate).map(|r| {
                eprintln!("{}", r.summary(&opts.env_file));
                (r.warning, r.exports)
            }))
        }
        Command::PrometheusEndpoints(opts) => {
            let env = |k: &str| std::env::var(k).ok();
            finish_helper(prometheus_endpoints::run(&opts, &env).map(|r| {
                for line in r.summary(&opts.env_file) {
                    eprintln!("{line}");
                }
                (r.warning, r.exports)
            }))
        }
        Command::InfluxBootstrap(opts) => {
            let env = |k: &str| std::env::var(k).ok();
            let result = influx_bootstrap::resolve(&opts, &env).and_then(|r| influx_bootstrap::run(&opts, &r));
            finish_helper(result.map(|r| {
                for step in &r.steps {
                    eprintln!("influx-bootstrap: {step}");
                }
                (r.warnings.into_iter().reduce(|a, b| format!("{a}; {b}")), r.exports)
            }))
        }
        Command::Diagnostics(opts) => {
            let env = |k: &str| std::env::var(k).ok();
            let checkout_lock = std::fs::read_to_string("Cargo.lock").ok();
            let inputs = mt5bot::diagnostics::Inputs { env: &env, checkout_lock };
            match mt5bot::diagnostics::run(&opts, &inputs) {
                Ok((report, path)) => {
                    for m in &report.mismatches {
                        eprintln!("mt5bot: diagnostics: {} mismatch: {}; fix: {}", m.kind, m.detail, m.instruction);
                    }
                    for e in &report.errors {
                        eprintln!("mt5bot: diagnostics: error: {e}");
                    }
                    eprintln!("mt5bot: diagnostics: {} report written to {}", report.status, path.display());
                    ExitCode::from(report.exit_code())
                }
                Err(e) => {
                    eprintln!("mt5bot: diagnostics could not run: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::CheckDataVersions { manifest, write } => check_data_versions(&manifest, write),
        Command::CheckpointInspect { file } => inspect_checkpoint(&file),
        Command::Ctl(opts) => match mt5bot::ctl::run(&opts, &|k| std::env::var(k).ok()) {
            Ok(body) => {
                print!("{body}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("mt5bot: {}", e.message);
                ExitCode::from(e.code)
            }
        },
        Command::Run { config, checkpoint } => match daemon::run(config.as_deref(), checkpoint) {
            Ok(StopReason::Signal(_)) => ExitCode::SUCCESS,
            Ok(StopReason::Command(_)) => ExitCode::from(1),
            Err(e) => {
                eprintln!("mt5bot: {e}");
                ExitCode::from(e.exit_code())
            }
        },
    }
}

/// Prints a helper's warning (stderr) and exports (stdout), or its error; returns the exit code.
fn finish_helper(result: Result<(Option<String>, Vec<String>), DeployError>) -> ExitCode {
    match result {
        Ok((warning, exports)) => {
            if let Some(w) = warning {
                eprintln!("mt5bot: warning: {w}");
            }
            for line in exports {
                println!("{line}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mt5bot: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn check_data_versions(path: &std::path::Path, write: bool) -> ExitCode {
    use mt5bot::diagnostics::data_versions::{self as dv, Status};
    let manifest = match dv::load(path) {
        Ok(Some(m)) => m,
        Ok(None) if write => dv::Manifest::default(),
        Ok(None) => {
            eprintln!("mt5bot: no manifest at {}; record the datasets beside it with --write", path.display());
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("mt5bot: {e}");
            return ExitCode::from(2);
        }
    };
    let rows = match dv::check(path, &manifest, true) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mt5bot: {e}");
            return ExitCode::from(2);
        }
    };
    print!("{}", dv::table(&rows));
    if write {
        let m = dv::recorded(&rows);
        if let Err(e) = dv::save(path, &m) {
            eprintln!("mt5bot: {e}");
            return ExitCode::from(1);
        }
        eprintln!("mt5bot: {} written: {} datasets", path.display(), m.datasets.len());
        return ExitCode::SUCCESS;
    }
    let bad = rows.iter().filter(|r| r.status != Status::Ok).count();
    if bad > 0 {
        eprintln!(
            "mt5bot: {bad} datasets differ from {}: sync them from their source, or record them with --write",
            path.display()
        );
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

fn inspect_checkpoint(path: &std::path::Path) -> ExitCode {
    use mt5bot::engine::checkpoint;
    use mt5bot::support::names::{CHECKPOINT_AES_KEY, CHECKPOINT_AES_KEY_PREVIOUS};
    let secrets = match mt5bot::secrets::Secrets::from_process() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("mt5bot: {e}");
            return ExitCode::from(2);
        }
    };
    let Some(current) = secrets.get(CHECKPOINT_AES_KEY) else {
        eprintln!("mt5bot: CHECKPOINT_AES_KEY is not set (environment or $CREDENTIALS_DIRECTORY); it is needed to read a checkpoint");
        return ExitCode::from(2);
    };
    let keys =
        match checkpoint::Keys::new(current.expose(), secrets.get(CHECKPOINT_AES_KEY_PREVIOUS).map(|p| p.expose())) {
            Ok(k) => k,
            Err(e) => {
                eprintln!("mt5bot: {e}");
                return ExitCode::from(2);
            }
        };
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("mt5bot: cannot read {}: {e}", path.display());
            return ExitCode::from(1);
        }
    };
    let (state, used) = match checkpoint::open(&bytes, &keys) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("mt5bot: {}: {e}", path.display());
            return ExitCode::from(1);
        }
    };
    let key_id = checkpoint::header(&bytes).map(|h| h.key_id).unwrap_or_default();
    let key_name = if used == checkpoint::KeyUsed::Current { CHECKPOINT_AES_KEY } else { CHECKPOINT_AES_KEY_PREVIOUS };
    println!("checkpoint: {}", path.display());
    println!("written at: {}", state.written_at);
    println!("generation: {}", state.generation);
    println!("key id: {key_id} ({key_name})");
    println!("size: {} bytes", bytes.len());
    println!("trades: {}", state.trades);
    println!("positions:");
    for p in &state.positions {
        println!(
            "  {:<10} qty {:>12.4}  avg {:>12.5}  realized pnl {:>12.5}  fills {}",
            p.symbol, p.qty, p.avg_price, p.realized_pnl, p.fills
        );
    }
    println!("open orders: {}", state.open_orders.len());
    for o in &state.open_orders {
        println!(
            "  {:<32} {:<10} {:<4} {:<6} qty {} filled {} price {} {}",
            o.client_id, o.symbol, o.side, o.kind, o.qty, o.filled, o.price, o.state
        );
    }
    println!("queued signals: {}", state.queued.len());
    for q in &state.queued {
        println!(
            "  {:<32} {:<10} {:<4} {:<6} qty {} price {} queued {}",
            q.id,
            q.symbol,
            q.side,
            q.kind,
            q.qty,
            q.price,
            mt5bot::support::timefmt::rfc3339_micros(i128::from(q.queued_at_unix_ns))
        );
    }
    println!("signal ids remembered: {}", state.recent_ids.len());
    match mt5bot::engine::journal::segments(path) {
        Ok(list) if !list.is_empty() => {
            println!("order journal segments after it (replayed at the next start):");
            for (g, p) in list {
                let size = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
                println!("  generation {g}: {} ({size} bytes)", p.display());
            }
        }
        _ => {}
    }
    ExitCode::SUCCESS
}
