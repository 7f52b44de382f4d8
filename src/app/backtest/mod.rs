//! `mt5bot backtest`: a configuration on history. The config file is checked as `run` checks it,
//! `--set` overrides are applied to it, its venue becomes paper and its feed the replay file,
//! then [`crate::engine::backtest::run`] drives the engine; the summary is printed and, with
//! `--report`, written as `report.json`, `trades.csv`, `deals.csv`, the plots as SVG files and a
//! self-contained `report.html` (the `report` module).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

mod report;
pub mod sweep;

use super::Error;
use crate::config::Config;
use crate::engine::backtest::Summary;

/// What the command line asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub config: PathBuf,
    /// The replay files, merged by time.
    pub data: Vec<PathBuf>,
    /// `--data-timezone`: the zone of MT5 export times (else `feed.csv.timezone`).
    pub data_timezone: Option<String>,
    pub report: Option<PathBuf>,
    /// `--set KEY=VALUE`, in order.
    pub overrides: Vec<(String, String)>,
    /// `--from`, `--to`: the part of the data to run on (Unix ns).
    pub from: Option<i128>,
    pub to: Option<i128>,
    /// `--sweep KEY=V1,V2,...`, in order: a grid of runs instead of one.
    pub sweep: Vec<(String, Vec<String>)>,
    /// `--sort`: the figure the sweep's table is sorted by.
    pub sort: sweep::SortKey,
    /// `--skip-bad-rows`: count and leave out bad rows instead of stopping.
    pub skip_bad_rows: bool,
    /// `--jobs`: runs of a sweep at once (default: the machine's cores).
    pub jobs: Option<usize>,
}

/// The version of `report.json`'s layout (2: `data` is the list of replay files; 3: the summary
/// lists the fills as `deals`).
const SCHEMA: u32 = 3;

#[derive(Serialize)]
pub(crate) struct Report<'a> {
    schema: u32,
    pub(crate) config: String,
    pub(crate) data: Vec<String>,
    pub(crate) overrides: &'a [(String, String)],
    pub(crate) summary: &'a Summary,
}

/// The configuration to test: the file as `run` would read it, the overrides, paper and the data.
fn configure(opts: &Options) -> Result<Config, Error> {
    let cfg = Config::load(&opts.config).map_err(|e| Error::usage(format!("configuration error: {e}")))?;
    let mut doc = serde_yaml::to_value(cfg.to_raw()).map_err(|e| Error::failed(format!("config: {e}")))?;
    for (key, value) in &opts.overrides {
        let parsed: serde_yaml::Value = serde_yaml::from_str(value)
            .map_err(|e| Error::usage(format!("--set {key}={value}: the value is not YAML: {e}")))?;
        set(&mut doc, key, parsed).map_err(|e| Error::usage(format!("--set {key}={value}: {e}")))?;
    }
    let data: Vec<serde_yaml::Value> =
        opts.data.iter().map(|p| serde_yaml::Value::String(p.display().to_string())).collect();
    let mut forced = vec![
        ("venue.kind", serde_yaml::Value::from("paper")),
        ("feed.kind", serde_yaml::Value::from("csv")),
        ("feed.csv.path", serde_yaml::Value::Sequence(data)),
    ];
    if let Some(tz) = &opts.data_timezone {
        forced.push(("feed.csv.timezone", serde_yaml::Value::from(tz.as_str())));
    }
    if opts.skip_bad_rows {
        forced.push(("feed.csv.skip_bad_rows", serde_yaml::Value::from(true)));
    }
    for (key, value) in forced {
        set(&mut doc, key, value).map_err(|e| Error::failed(format!("config {key}: {e}")))?;
    }
    let text = serde_yaml::to_string(&doc).map_err(|e| Error::failed(format!("config: {e}")))?;
    let name = format!("{} with the backtest's overrides", opts.config.display());
    Config::parse(&text, &name).map_err(|e| Error::usage(format!("configuration error: {e}")))
}

/// Sets the dotted `key` of a YAML document to `value` (a `--set` value is read as YAML: `10`,
/// `true`, `fx`).
fn set(doc: &mut serde_yaml::Value, key: &str, value: serde_yaml::Value) -> Result<(), String> {
    let mut node = doc;
    let parts: Vec<&str> = key.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let serde_yaml::Value::Mapping(map) = node else {
            return Err(format!("{} is not a section (lists are set in the config file)", parts[..i].join(".")));
        };
        let k = serde_yaml::Value::String((*part).to_owned());
        if i + 1 == parts.len() {
            map.insert(k, value);
            return Ok(());
        }
        node = map.entry(k).or_insert_with(|| serde_yaml::Value::Mapping(Default::default()));
    }
    Err("an empty key".into())
}

/// `mt5bot backtest`.
pub fn run(opts: &Options) -> Result<(), Error> {
    if !opts.sweep.is_empty() {
        return sweep::run(opts);
    }
    let cfg = configure(opts)?;
    let started = Instant::now();
    let mut bar = ProgressBar::new(std::io::stderr().is_terminal());
    let summary = crate::engine::backtest::run(&cfg, (opts.from, opts.to), |p| bar.show(p, started.elapsed()));
    bar.clear();
    let summary = summary.map_err(|e| Error::usage(format!("data error: {e}")))?;
    // The report first: a reader of the summary that goes away must not cost it.
    if let Some(dir) = &opts.report {
        write_report(dir, opts, &summary)?;
    }
    out!("{}", text(&summary, started.elapsed()));
    if let Some(dir) = &opts.report {
        outln!("report: {}, {}", dir.join("report.json").display(), dir.join("report.html").display());
    }
    Ok(())
}

/// How far the run is, on stderr: on a terminal a bar redrawn in place a few times a second;
/// elsewhere (a log, CI) a line every 10 seconds.
struct ProgressBar {
    terminal: bool,
    last: Option<Instant>,
    drawn: bool,
}

impl ProgressBar {
    const WIDTH: usize = 30;

    fn new(terminal: bool) -> ProgressBar {
        ProgressBar { terminal, last: None, drawn: false }
    }

    fn show(&mut self, p: crate::engine::backtest::Progress, elapsed: Duration) {
        let every = if self.terminal { Duration::from_millis(200) } else { Duration::from_secs(10) };
        if self.last.is_some_and(|t| t.elapsed() < every) {
            return;
        }
        if self.last.is_none() && elapsed < every {
            // Short runs finish before a bar would help.
            return;
        }
        self.last = Some(Instant::now());
        let line = progress_line(p, elapsed);
        let mut err = std::io::stderr().lock();
        if self.terminal {
            let _ = write!(err, "\r{line}\x1b[K");
            self.drawn = true;
        } else {
            let _ = writeln!(err, "{line}");
        }
        let _ = err.flush();
    }

    /// Takes the bar off the terminal before the summary is printed.
    fn clear(&mut self) {
        if self.drawn {
            let _ = write!(std::io::stderr(), "\r\x1b[K");
        }
    }
}

/// `backtest [#######.......]  45%  1.2M ticks, at 2026-01-05 13:00:00 UTC, 850k ticks/s, 3s left`
/// (the share is of the data's bytes read, so it needs no count of the rows beforehand).
fn progress_line(p: crate::engine::backtest::Progress, elapsed: Duration) -> String {
    let fraction = p.fraction.clamp(0.0, 1.0);
    let filled = (fraction * ProgressBar::WIDTH as f64).round() as usize;
    let seconds = elapsed.as_secs_f64();
    let rate = p.ticks as f64 / seconds.max(1e-9);
    let left = if fraction > 0.0 { seconds * (1.0 - fraction) / fraction } else { 0.0 };
    let at = crate::support::timefmt::rfc3339_micros(p.unix_ns);
    format!(
        "backtest [{}{}] {:>3.0}%  {} ticks, at {} UTC, {}/s, {:.0}s left",
        "#".repeat(filled),
        ".".repeat(ProgressBar::WIDTH - filled),
        fraction * 100.0,
        count(p.ticks as f64),
        at.get(..19).unwrap_or(&at).replace('T', " "),
        count(rate),
        left.ceil()
    )
}

/// A holding time a person reads: 45s, 12m 5s, 3h 20m, 2d 4h.
pub(crate) fn held(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86_400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// 950, 12.3k, 4.5M.
fn count(n: f64) -> String {
    if n >= 1e6 {
        format!("{:.1}M", n / 1e6)
    } else if n >= 1e4 {
        format!("{:.1}k", n / 1e3)
    } else {
        format!("{n:.0}")
    }
}

/// The summary as the terminal shows it.
fn text(s: &Summary, took: Duration) -> String {
    let mut out = format!(
        "backtest {} to {}: {} ticks in {:.2} s ({}/s){}\n  net {:+.2} (equity {:.2} from {:.2}), max drawdown {:.2} ({:.2}%), commissions {:.2}, swaps {:+.2}\n  {} signals, {} orders, {} fills; trading state {} (by {})\n",
        s.from,
        s.to,
        s.ticks,
        took.as_secs_f64(),
        count(s.ticks as f64 / took.as_secs_f64().max(1e-9)),
        crate::telemetry::sampler::own_peak_rss_mib().map_or(String::new(), |m| format!(", peak memory {m:.1} MiB")),
        s.net_pnl,
        s.final_equity,
        s.starting_balance,
        s.max_drawdown,
        s.max_drawdown_ratio * 100.0,
        s.commissions,
        s.swaps,
        s.signals,
        s.orders_sent,
        s.fills,
        s.trading_state,
        s.trading_state_by
    );
    if s.skipped_rows > 0 {
        out.push_str(&format!(
            "  {} bad rows left out (--skip-bad-rows); the first: {}\n",
            s.skipped_rows,
            s.skipped_first.join("; ")
        ));
    }
    out.push_str(&format!("  {}\n", trades_line(&s.trade_stats)));
    let ratio = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.2}"));
    out.push_str(&format!(
        "  Sharpe {}, Sortino {} (daily, annualised); {} at most under a peak; in a position {:.1}% of the time; {} breaker trips\n",
        ratio(s.sharpe),
        ratio(s.sortino),
        held(s.max_drawdown_seconds),
        s.exposure * 100.0,
        s.breaker_trips
    ));
    for p in &s.symbols {
        out.push_str(&format!(
            "  {}: position {}, realized {:.5} (price x quantity), {} fills\n",
            p.symbol, p.position, p.realized_pnl, p.fills
        ));
    }
    out
}

/// `12 round trips: 7 won (58.3%), profit factor 1.85, average +3.20, best +40.00, worst -22.00, ...`
pub(crate) fn trades_line(t: &crate::engine::backtest::TradeStats) -> String {
    if t.trades == 0 {
        return "no round trip closed".into();
    }
    let mut line = format!(
        "{} round trip{}: {} won ({:.1}%), profit factor {}, average {:+.2}",
        t.trades,
        if t.trades == 1 { "" } else { "s" },
        t.wins,
        t.win_rate * 100.0,
        t.profit_factor.map_or("- (nothing lost)".to_owned(), |f| format!("{f:.2}")),
        t.average_pnl,
    );
    if t.wins > 0 {
        line += &format!(", best {:+.2}", t.largest_win);
    }
    if t.losses > 0 {
        line += &format!(", worst {:+.2}, {} lost in a row at most", t.largest_loss, t.max_losses_in_a_row);
    }
    line + &format!(", held {} on average", held(t.average_holding_seconds))
}

fn write_report(dir: &Path, opts: &Options, s: &Summary) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::failed(format!("cannot create {}: {e}", dir.display())))?;
    let report = Report {
        schema: SCHEMA,
        config: opts.config.display().to_string(),
        data: opts.data.iter().map(|p| p.display().to_string()).collect(),
        overrides: &opts.overrides,
        summary: s,
    };
    let json = serde_json::to_vec_pretty(&report).map_err(|e| Error::failed(format!("report: {e}")))?;
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        crate::support::files::write_atomic(&path, bytes)
            .map(|_| ())
            .map_err(|e| Error::failed(format!("cannot write {}: {e}", path.display())))
    };
    write("report.json", &json)?;
    write("trades.csv", report::trades_csv(s).as_bytes())?;
    write("deals.csv", report::deals_csv(s).as_bytes())?;
    for (name, svg) in report::plots(s) {
        write(name, svg.as_bytes())?;
    }
    write("report.html", report::html(&report).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::backtest::Progress;

    #[test]
    fn the_progress_line_shows_the_share_done_the_data_time_the_rate_and_the_time_left() {
        let p = Progress { ticks: 1_200_000, fraction: 0.25, unix_ns: 1_767_607_200_000_000_000 };
        let line = progress_line(p, Duration::from_secs(2));
        assert_eq!(
            line,
            "backtest [########......................]  25%  1.2M ticks, at 2026-01-05 10:00:00 UTC, 600.0k/s, 6s left"
        );
        let done = progress_line(Progress { ticks: 10, fraction: 1.0, unix_ns: 0 }, Duration::from_millis(1));
        assert!(done.contains("[##############################] 100%") && done.contains("0s left"), "{done}");
        assert!(progress_line(Progress { ticks: 0, fraction: 0.0, unix_ns: 0 }, Duration::ZERO).contains("  0%"));
    }

    #[test]
    fn holding_times_read_as_a_person_says_them() {
        assert_eq!(
            [held(44.6), held(725.0), held(12_000.0), held(187_200.0), held(-1.0)],
            ["45s", "12m 5s", "3h 20m", "2d 4h", "0s"]
        );
    }
}
