//! The report a trader reads: `report.html`, a page that needs nothing else (no script, no
//! fetch), with the summary, the round trips, and four plots drawn here as SVG: the equity curve,
//! the drawdown under it, the monthly returns and the distribution of the round trips' PnL. Each
//! plot is also written as a file beside the page (`equity.svg`, ...), and the round trips as
//! `trades.csv` for a spreadsheet.

use super::{held, trades_line, Report};
use crate::engine::backtest::Summary;

const W: f64 = 900.0;
const PAD: f64 = 40.0;

pub(super) fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// An SVG of `w` x `h` with a title for screen readers, holding `body`.
fn svg(w: f64, h: f64, label: &str, body: &str) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"{label}\">\n\
         <style>.axis {{ font: 11px system-ui, sans-serif; fill: #555; }}</style>\n\
         <rect width=\"{w}\" height=\"{h}\" fill=\"#fafafa\" stroke=\"#ccc\"/>\n{body}</svg>\n",
        label = escape(label)
    )
}

/// Where a time of the curve goes across the plot.
fn x_of(s: &Summary) -> impl Fn(i64) -> f64 + '_ {
    let (t0, t1) = (s.equity_curve.first().map_or(0, |p| p.0), s.equity_curve.last().map_or(1, |p| p.0));
    let span = (t1 - t0).max(1) as f64;
    move |t| PAD + (t - t0) as f64 / span * (W - 2.0 * PAD)
}

fn equity_svg(s: &Summary) -> String {
    let h = 320.0;
    let (lo, hi) = s.equity_curve.iter().fold((f64::MAX, f64::MIN), |(lo, hi), p| (lo.min(p.1), hi.max(p.1)));
    let (lo, hi) = if hi > lo { (lo, hi) } else { (lo - 1.0, lo + 1.0) };
    let x = x_of(s);
    let points: Vec<String> = s
        .equity_curve
        .iter()
        .map(|&(t, e)| format!("{:.1},{:.1}", x(t), h - PAD - (e - lo) / (hi - lo) * (h - 2.0 * PAD)))
        .collect();
    let body = format!(
        "<line x1=\"{PAD}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"#999\"/>\n\
         <line x1=\"{PAD}\" y1=\"{PAD}\" x2=\"{PAD}\" y2=\"{b}\" stroke=\"#999\"/>\n\
         <text class=\"axis\" x=\"{PAD}\" y=\"{ly}\">{from}</text>\n\
         <text class=\"axis\" x=\"{r}\" y=\"{ly}\" text-anchor=\"end\">{to}</text>\n\
         <text class=\"axis\" x=\"4\" y=\"{PAD}\">{hi:.2}</text>\n\
         <text class=\"axis\" x=\"4\" y=\"{b}\">{lo:.2}</text>\n\
         <polyline fill=\"none\" stroke=\"#1f6feb\" stroke-width=\"1.5\" points=\"{points}\"/>\n",
        b = h - PAD,
        r = W - PAD,
        ly = h - PAD + 16.0,
        from = escape(&s.from),
        to = escape(&s.to),
        points = points.join(" "),
    );
    svg(W, h, "equity over time", &body)
}

fn drawdown_svg(s: &Summary) -> String {
    let h = 160.0;
    let mut peak = f64::MIN;
    let falls: Vec<(i64, f64)> = s
        .equity_curve
        .iter()
        .map(|&(t, e)| {
            peak = peak.max(e);
            (t, if peak > 0.0 { (peak - e) / peak } else { 0.0 })
        })
        .collect();
    let deepest = falls.iter().map(|p| p.1).fold(0.0f64, f64::max);
    let scale = deepest.max(1e-9);
    let x = x_of(s);
    let mut points = vec![format!("{PAD:.1},{PAD:.1}")];
    points.extend(falls.iter().map(|&(t, f)| format!("{:.1},{:.1}", x(t), PAD + f / scale * (h - 2.0 * PAD))));
    points.push(format!("{:.1},{PAD:.1}", W - PAD));
    let body = format!(
        "<line x1=\"{PAD}\" y1=\"{PAD}\" x2=\"{r}\" y2=\"{PAD}\" stroke=\"#999\"/>\n\
         <text class=\"axis\" x=\"4\" y=\"{PAD}\">0%</text>\n\
         <text class=\"axis\" x=\"4\" y=\"{b}\">-{pct:.2}%</text>\n\
         <polygon fill=\"#f9d0cc\" stroke=\"#b42318\" stroke-width=\"1\" points=\"{points}\"/>\n",
        r = W - PAD,
        b = h - PAD,
        pct = deepest * 100.0,
        points = points.join(" "),
    );
    svg(W, h, "drawdown from the running peak", &body)
}

/// Bars up (green) and down (red) from a zero line, labelled under each.
fn bars_svg(label: &str, bars: &[(String, f64)], value: impl Fn(f64) -> String) -> String {
    let h = 220.0;
    let top = bars.iter().map(|b| b.1.abs()).fold(0.0f64, f64::max).max(1e-12);
    let zero = h / 2.0;
    let n = bars.len().max(1) as f64;
    let step = (W - 2.0 * PAD) / n;
    let mut body = format!("<line x1=\"{PAD}\" y1=\"{zero}\" x2=\"{}\" y2=\"{zero}\" stroke=\"#999\"/>\n", W - PAD);
    for (i, (name, v)) in bars.iter().enumerate() {
        let len = v.abs() / top * (zero - PAD);
        let x = PAD + i as f64 * step + step * 0.1;
        let y = if *v >= 0.0 { zero - len } else { zero };
        let fill = if *v >= 0.0 { "#12b76a" } else { "#f04438" };
        body += &format!(
            "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{len:.1}\" fill=\"{fill}\"><title>{}: {}</title></rect>\n",
            step * 0.8,
            escape(name),
            escape(&value(*v))
        );
        if bars.len() <= 36 || i % (bars.len() / 24 + 1) == 0 {
            body += &format!(
                "<text class=\"axis\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\n",
                x + step * 0.4,
                h - 8.0,
                escape(name)
            );
        }
    }
    body += &format!(
        "<text class=\"axis\" x=\"4\" y=\"{PAD}\">{}</text>\n<text class=\"axis\" x=\"4\" y=\"{}\">-{}</text>\n",
        escape(&value(top)),
        h - PAD,
        escape(&value(top))
    );
    svg(W, h, label, &body)
}

fn monthly_svg(s: &Summary) -> String {
    bars_svg("monthly returns", &s.monthly_returns, |v| format!("{:+.2}%", v * 100.0))
}

/// Round trips counted by PnL, in 20 bins from the worst to the best; a bin's bar is as tall as
/// its count, green for bins of wins, red for losses.
fn distribution_svg(s: &Summary) -> String {
    let pnl: Vec<f64> = s.trades.iter().map(|t| t.pnl).collect();
    let (lo, hi) = pnl.iter().fold((0.0f64, 0.0f64), |(lo, hi), p| (lo.min(*p), hi.max(*p)));
    const BINS: usize = 20;
    let width = ((hi - lo) / BINS as f64).max(1e-12);
    let mut counts = [0u64; BINS];
    for p in &pnl {
        counts[(((p - lo) / width) as usize).min(BINS - 1)] += 1;
    }
    let h = 220.0;
    let top = counts.iter().copied().max().unwrap_or(0).max(1) as f64;
    let step = (W - 2.0 * PAD) / BINS as f64;
    let mut body =
        format!("<line x1=\"{PAD}\" y1=\"{b}\" x2=\"{}\" y2=\"{b}\" stroke=\"#999\"/>\n", W - PAD, b = h - PAD);
    for (i, c) in counts.iter().enumerate() {
        let from = lo + i as f64 * width;
        let len = *c as f64 / top * (h - 2.0 * PAD);
        let fill = if from + width / 2.0 >= 0.0 { "#12b76a" } else { "#f04438" };
        body += &format!(
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{len:.1}\" fill=\"{fill}\"><title>{from:.2} to {:.2}: {c}</title></rect>\n",
            PAD + i as f64 * step + 1.0,
            h - PAD - len,
            step - 2.0,
            from + width
        );
    }
    body += &format!(
        "<text class=\"axis\" x=\"{PAD}\" y=\"{ly}\">{lo:.2}</text>\n<text class=\"axis\" x=\"{r}\" y=\"{ly}\" text-anchor=\"end\">{hi:.2}</text>\n<text class=\"axis\" x=\"4\" y=\"{PAD}\">{top}</text>\n",
        ly = h - PAD + 16.0,
        r = W - PAD,
    );
    svg(W, h, "distribution of round-trip PnL", &body)
}

/// The plots, by the file name each is written under.
pub(super) fn plots(s: &Summary) -> [(&'static str, String); 4] {
    [
        ("equity.svg", equity_svg(s)),
        ("drawdown.svg", drawdown_svg(s)),
        ("monthly.svg", monthly_svg(s)),
        ("trades.svg", distribution_svg(s)),
    ]
}

/// The round trips as CSV, a header and a row each.
pub(super) fn trades_csv(s: &Summary) -> String {
    let mut out = String::from("symbol,side,opened,closed,qty,entry_price,exit_price,pnl,holding_seconds\n");
    for t in &s.trades {
        out += &format!(
            "{},{},{},{},{},{},{},{},{}\n",
            t.symbol, t.side, t.opened, t.closed, t.qty, t.entry_price, t.exit_price, t.pnl, t.holding_seconds
        );
    }
    out
}

/// The fills as CSV, a header and a row each: what the daemon writes to InfluxDB's
/// `mt5bot_trades`, to compare a backtest with a live run.
pub(super) fn deals_csv(s: &Summary) -> String {
    let mut out = String::from("time,symbol,side,client_id,exec_id,qty,price,realized_pnl\n");
    for d in &s.deals {
        out += &format!(
            "{},{},{},{},{},{},{},{}\n",
            d.time, d.symbol, d.side, d.client_id, d.exec_id, d.qty, d.price, d.realized_pnl
        );
    }
    out
}

fn ratio(v: Option<f64>) -> String {
    v.map_or("- (under two days)".to_owned(), |v| format!("{v:.2}"))
}

/// The page: every figure of the summary (each in an element with `data-figure`, so a reader
/// or a test finds it), the plots inline, and the last 200 round trips.
pub(super) fn html(r: &Report<'_>) -> String {
    let s = r.summary;
    let t = &s.trade_stats;
    let row = |key: &str, label: &str, v: String| {
        format!("<tr><th>{}</th><td data-figure=\"{key}\">{}</td></tr>\n", escape(label), escape(&v))
    };
    let mut rows = String::new();
    rows += &row("period", "period", format!("{} to {}", s.from, s.to));
    rows += &row("ticks", "ticks", s.ticks.to_string());
    rows += &row("net_pnl", "net profit", format!("{:+.2}", s.net_pnl));
    rows += &row("final_equity", "final equity", format!("{:.2} (from {:.2})", s.final_equity, s.starting_balance));
    rows += &row("gross", "gross profit / loss", format!("{:.2} / {:.2}", t.gross_profit, t.gross_loss));
    rows +=
        &row("max_drawdown", "max drawdown", format!("{:.2} ({:.2}%)", s.max_drawdown, s.max_drawdown_ratio * 100.0));
    rows += &row("max_drawdown_seconds", "longest under a peak", held(s.max_drawdown_seconds));
    rows += &row("sharpe", "Sharpe (daily, annualised)", ratio(s.sharpe));
    rows += &row("sortino", "Sortino (daily, annualised)", ratio(s.sortino));
    rows += &row("exposure", "exposure", format!("{:.1}% of the time in a position", s.exposure * 100.0));
    rows += &row("expectancy", "expectancy", format!("{:+.2} per round trip", t.average_pnl));
    let average = |n: u64, v: f64| if n == 0 { "-".to_owned() } else { format!("{v:+.2}") };
    rows += &row(
        "average_win_loss",
        "average win / loss",
        format!("{} / {}", average(t.wins, t.average_win), average(t.losses, t.average_loss)),
    );
    rows += &row("round_trips", "round trips", trades_line(t));
    rows += &row("commissions", "commissions", format!("{:.2}", s.commissions));
    rows += &row("swaps", "swaps (positive a credit)", format!("{:+.2}", s.swaps));
    rows += &row("breaker_trips", "breaker trips", s.breaker_trips.to_string());
    rows += &row("orders", "signals / orders / fills", format!("{} / {} / {}", s.signals, s.orders_sent, s.fills));
    rows +=
        &row("trading_state", "trading state at the end", format!("{} (by {})", s.trading_state, s.trading_state_by));
    let mut symbols = String::new();
    for p in &s.symbols {
        symbols += &format!(
            "<tr><td>{}</td><td>{}</td><td>{:.5}</td><td>{}</td></tr>\n",
            escape(&p.symbol),
            p.position,
            p.realized_pnl,
            p.fills
        );
    }
    let mut trades = String::new();
    for t in s.trades.iter().rev().take(200) {
        trades += &format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.5}</td><td>{:.5}</td><td class=\"{}\">{:+.2}</td></tr>\n",
            escape(&t.opened),
            escape(&t.closed),
            escape(&t.symbol),
            t.side,
            t.qty,
            t.entry_price,
            t.exit_price,
            if t.pnl < 0.0 { "loss" } else { "win" },
            t.pnl
        );
    }
    let trades_heading = match s.trades.len() {
        0 => "Round trips: none closed".to_owned(),
        n if n > 200 => format!("Round trips: the last 200 of {} (report.json and trades.csv list {n})", t.trades),
        n => format!("Round trips: {n}"),
    };
    let overrides: String =
        r.overrides.iter().map(|(k, v)| format!("<code>{}={}</code> ", escape(k), escape(v))).collect();
    // Inline SVG needs no namespace; without it the page names no address at all.
    let [equity, drawdown, monthly, distribution] =
        plots(s).map(|(_, svg)| svg.replacen(" xmlns=\"http://www.w3.org/2000/svg\"", "", 1));
    format!(
        r##"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mt5bot backtest: {config}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ text-align: left; padding: .2em 1em .2em 0; border-bottom: 1px solid #ddd; }}
td {{ font-variant-numeric: tabular-nums; }}
.loss {{ color: #b42318; }} .win {{ color: #067647; }}
</style></head>
<body>
<h1>Backtest of {config}</h1>
<p>Data: <code>{data}</code>. {overrides_line}</p>
<table>
{rows}</table>
<table>
<tr><th>symbol</th><th>position</th><th>realized (price x quantity)</th><th>fills</th></tr>
{symbols}</table>
<h2>Equity</h2>
{equity}<h2>Drawdown</h2>
{drawdown}<h2>Monthly returns</h2>
{monthly}<h2>Round-trip PnL</h2>
{distribution}<h2>{trades_heading}</h2>
<table>
<tr><th>opened</th><th>closed</th><th>symbol</th><th>side</th><th>size</th><th>entry</th><th>exit</th><th>PnL</th></tr>
{trades}</table>
</body></html>
"##,
        config = escape(&r.config),
        data = escape(&r.data.join(", ")),
        overrides_line = if overrides.is_empty() { String::new() } else { format!("Overrides: {overrides}") },
        trades_heading = escape(&trades_heading),
    )
}
