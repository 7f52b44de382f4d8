//! `mt5bot backtest --sweep KEY=V1,V2,...`: the grid of every combination of the values, one
//! engine per run on as many threads as the machine has cores, and one table of the runs sorted
//! by a figure. Each run is the backtest of its overrides, deterministic as any: the table is the
//! same whatever the number of threads.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use super::{configure, Error, Options};
use crate::engine::backtest::Summary;

/// The figure a sweep is sorted by, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    NetPnl,
    Sharpe,
    ProfitFactor,
    MaxDrawdown,
    WinRate,
}

impl SortKey {
    pub const ALL: [(&'static str, SortKey); 5] = [
        ("net_pnl", SortKey::NetPnl),
        ("sharpe", SortKey::Sharpe),
        ("profit_factor", SortKey::ProfitFactor),
        ("max_drawdown", SortKey::MaxDrawdown),
        ("win_rate", SortKey::WinRate),
    ];

    pub fn parse(s: &str) -> Option<SortKey> {
        SortKey::ALL.iter().find(|(n, _)| *n == s).map(|(_, k)| *k)
    }

    pub fn name(self) -> &'static str {
        SortKey::ALL.iter().find(|(_, k)| *k == self).map_or("net_pnl", |(n, _)| n)
    }

    /// Larger is better (the drawdown is negated); a figure a run has not (a Sharpe under two
    /// days) sorts last.
    fn score(self, s: &Summary) -> f64 {
        let v = match self {
            SortKey::NetPnl => Some(s.net_pnl),
            SortKey::Sharpe => s.sharpe,
            SortKey::ProfitFactor => s.trade_stats.profit_factor,
            SortKey::MaxDrawdown => Some(-s.max_drawdown_ratio),
            SortKey::WinRate => Some(s.trade_stats.win_rate),
        };
        v.filter(|v| v.is_finite()).unwrap_or(f64::NEG_INFINITY)
    }
}

/// Every combination of the values, in order (the last key varies fastest).
pub fn grid(sweep: &[(String, Vec<String>)]) -> Vec<Vec<(String, String)>> {
    let mut runs: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for (key, values) in sweep {
        runs = runs
            .into_iter()
            .flat_map(|run| {
                values.iter().map(move |v| {
                    let mut r = run.clone();
                    r.push((key.clone(), v.clone()));
                    r
                })
            })
            .collect();
    }
    runs
}

/// One run of the grid: its values and what it found.
#[derive(Debug)]
pub struct Run {
    pub values: Vec<(String, String)>,
    pub summary: Summary,
}

/// Runs the grid on `threads` threads; the runs in grid order.
fn run_all(opts: &Options, runs: &[Vec<(String, String)>], threads: usize) -> Result<Vec<Run>, Error> {
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<Summary, Error>>>> = Mutex::new((0..runs.len()).map(|_| None).collect());
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads.min(runs.len()).max(1) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(values) = runs.get(i) else { break };
                let mut o = opts.clone();
                o.overrides.extend(values.iter().cloned());
                let outcome = configure(&o).and_then(|cfg| {
                    crate::engine::backtest::run(&cfg, (o.from, o.to), |_| {})
                        .map_err(|e| Error::usage(format!("data error: {e}")))
                });
                let failed = outcome.is_err();
                results.lock().unwrap_or_else(std::sync::PoisonError::into_inner)[i] = Some(outcome);
                let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                eprintln!("sweep: {n} of {} runs done ({:.1} s)", runs.len(), started.elapsed().as_secs_f64());
                if failed {
                    // The first error stops the others from starting: they would fail alike.
                    next.store(runs.len(), Ordering::Relaxed);
                }
            });
        }
    });
    let results = results.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut out = Vec::with_capacity(runs.len());
    for (values, r) in runs.iter().zip(results) {
        match r {
            Some(Ok(summary)) => out.push(Run { values: values.clone(), summary }),
            Some(Err(e)) => {
                let what = values.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ");
                return Err(Error { message: e.message.map(|m| format!("the run {what}: {m}")), ..e });
            }
            None => {}
        }
    }
    Ok(out)
}

/// The runs, best first by `key` (ties keep grid order).
pub fn rank(mut runs: Vec<Run>, key: SortKey) -> Vec<Run> {
    runs.sort_by(|a, b| key.score(&b.summary).total_cmp(&key.score(&a.summary)));
    runs
}

fn figure(v: Option<f64>) -> String {
    v.map_or(String::new(), |v| format!("{v:.4}"))
}

/// The table as CSV: the swept keys, then the figures.
pub fn csv(keys: &[String], runs: &[Run]) -> String {
    let mut out = keys.join(",");
    out += ",net_pnl,max_drawdown,max_drawdown_ratio,sharpe,sortino,round_trips,win_rate,profit_factor,fills,trading_state\n";
    for r in runs {
        let s = &r.summary;
        let values: Vec<&str> = r.values.iter().map(|(_, v)| v.as_str()).collect();
        out += &format!(
            "{},{:.2},{:.2},{:.6},{},{},{},{:.4},{},{},{}\n",
            values.join(","),
            s.net_pnl,
            s.max_drawdown,
            s.max_drawdown_ratio,
            figure(s.sharpe),
            figure(s.sortino),
            s.trade_stats.trades,
            s.trade_stats.win_rate,
            figure(s.trade_stats.profit_factor),
            s.fills,
            s.trading_state
        );
    }
    out
}

/// The table as the terminal shows it, aligned.
pub fn table(keys: &[String], runs: &[Run]) -> String {
    crate::support::columns::render(&rows(keys, runs), crate::support::columns::Align::Right)
}

/// The table's cells: a heading row, then a row per run.
fn rows(keys: &[String], runs: &[Run]) -> Vec<Vec<String>> {
    let mut rows: Vec<Vec<String>> = vec![keys
        .iter()
        .cloned()
        .chain(["net", "max dd", "sharpe", "trips", "won", "pf", "state"].map(str::to_owned))
        .collect()];
    for r in runs {
        let s = &r.summary;
        let mut row: Vec<String> = r.values.iter().map(|(_, v)| v.clone()).collect();
        row.extend([
            format!("{:+.2}", s.net_pnl),
            format!("{:.2}%", s.max_drawdown_ratio * 100.0),
            s.sharpe.map_or("-".into(), |v| format!("{v:.2}")),
            s.trade_stats.trades.to_string(),
            format!("{:.0}%", s.trade_stats.win_rate * 100.0),
            s.trade_stats.profit_factor.map_or("-".into(), |v| format!("{v:.2}")),
            s.trading_state.to_owned(),
        ]);
        rows.push(row);
    }
    rows
}

/// `sweep.html`: the same table as a page that needs nothing else, best first, linking the best
/// run's report.
pub fn html(config: &str, keys: &[String], runs: &[Run], sort: SortKey) -> String {
    let e = super::report::escape;
    let mut cells = rows(keys, runs).into_iter();
    let head: String = cells.next().unwrap_or_default().iter().map(|c| format!("<th>{}</th>", e(c))).collect();
    let mut body = String::new();
    for (i, row) in cells.enumerate() {
        let class = if i == 0 { " class=\"best\"" } else { "" };
        body += &format!("<tr{class}>{}</tr>\n", row.iter().map(|c| format!("<td>{}</td>", e(c))).collect::<String>());
    }
    format!(
        r##"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mt5bot sweep: {config}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ text-align: right; padding: .2em 1em .2em 0; border-bottom: 1px solid #ddd; }}
td {{ font-variant-numeric: tabular-nums; }}
tr.best {{ background: #ecfdf3; font-weight: 600; }}
</style></head>
<body>
<h1>Sweep of {config}</h1>
<p>{n} runs over {grid}, sorted by {sort}, best first. The best run's full report:
<a href="best/report.html">best/report.html</a>; every figure of every run: <a href="sweep.csv">sweep.csv</a>.</p>
<table>
<tr>{head}</tr>
{body}</table>
</body></html>
"##,
        config = e(config),
        n = runs.len(),
        grid = e(&keys.join(" x ")),
        sort = sort.name(),
    )
}

/// `mt5bot backtest --sweep ...`: the table on stdout, and with `--report DIR`, `sweep.csv` and
/// the best run's full report in `DIR/best`.
pub fn run(opts: &Options) -> Result<(), Error> {
    let runs = grid(&opts.sweep);
    let threads = opts.jobs.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    eprintln!("sweep: {} runs on {} threads", runs.len(), threads.min(runs.len()));
    let keys: Vec<String> = opts.sweep.iter().map(|(k, _)| k.clone()).collect();
    let ranked = rank(run_all(opts, &runs, threads)?, opts.sort);
    if let Some(dir) = &opts.report {
        std::fs::create_dir_all(dir).map_err(|e| Error::failed(format!("cannot create {}: {e}", dir.display())))?;
        let path = dir.join("sweep.csv");
        crate::support::files::write_atomic_mode(&path, csv(&keys, &ranked).as_bytes(), 0o644)
            .map_err(|e| Error::failed(format!("cannot write {}: {e}", path.display())))?;
        let path = dir.join("sweep.html");
        let page = html(&opts.config.display().to_string(), &keys, &ranked, opts.sort);
        crate::support::files::write_atomic_mode(&path, page.as_bytes(), 0o644)
            .map_err(|e| Error::failed(format!("cannot write {}: {e}", path.display())))?;
        if let Some(best) = ranked.first() {
            let mut o = opts.clone();
            o.overrides.extend(best.values.iter().cloned());
            super::write_report(&dir.join("best"), &o, &best.summary)?;
        }
    }
    out!("sweep sorted by {}, best first:\n{}", opts.sort.name(), table(&keys, &ranked));
    if let Some(dir) = &opts.report {
        outln!("report: {}, the best run in {}", dir.join("sweep.csv").display(), dir.join("best").display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grid_is_every_combination_with_the_last_key_fastest() {
        let g =
            grid(&[("a".into(), vec!["1".into(), "2".into()]), ("b".into(), vec!["x".into(), "y".into(), "z".into()])]);
        let flat: Vec<String> =
            g.iter().map(|r| r.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")).collect();
        assert_eq!(flat, ["a=1 b=x", "a=1 b=y", "a=1 b=z", "a=2 b=x", "a=2 b=y", "a=2 b=z"]);
        assert_eq!(grid(&[]), vec![Vec::new()], "no sweep: one run");
    }
}
