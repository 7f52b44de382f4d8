//! `mt5bot backtest` as a trader runs it: the binary on a replay file with a config, its summary,
//! `report.json` and `report.html`, the same bytes from the same input, `--set` overrides, and
//! clear errors for bad data and bad overrides.

mod support;

use std::process::Command;

use support::*;

/// Ten-second ticks from 2026-01-01 10:00 UTC: flat, a rise, then a long fall, so the crossover
/// model buys and sells.
fn ticks(dir: &TempDir) -> std::path::PathBuf {
    let mut csv = String::from("timestamp,symbol,bid,ask\n");
    let mut mid = 1.1f64;
    for i in 0..3000u64 {
        mid *= match i {
            0..=149 => 1.0,
            150..=999 => 1.0002,
            _ => 0.9999,
        };
        csv.push_str(&format!("{},EURUSD,{:.6},{:.6}\n", 1_767_261_600 + i * 10, mid - 0.00005, mid + 0.00005));
    }
    dir.write("ticks.csv", &csv)
}

fn config(dir: &TempDir, extra: &str) -> std::path::PathBuf {
    dir.write(
        "config.yaml",
        &format!(
            "feed:\n  symbols:\n    - name: EURUSD\n      price: 1.1\n      contract_size: 100000\n\
             protection:\n  starting_balance: 10000\n{extra}"
        ),
    )
}

fn backtest(dir: &TempDir, args: &[&str]) -> std::process::Output {
    Command::new(BIN).arg("backtest").args(args).current_dir(dir.path()).output().expect("run mt5bot backtest")
}

/// `mt5bot backtest --config config.yaml --data ticks.csv` and `args`.
fn on_ticks(dir: &TempDir, args: &[&str]) -> std::process::Output {
    let mut all = vec!["--config", "config.yaml", "--data", "ticks.csv"];
    all.extend_from_slice(args);
    backtest(dir, &all)
}

/// The `report.json` a run wrote under `out`.
fn report(dir: &TempDir, out: &str) -> serde_json::Value {
    let bytes = std::fs::read(dir.join(&format!("{out}/report.json"))).expect("report.json");
    serde_json::from_slice(&bytes).expect("JSON")
}

#[test]
fn a_backtest_prints_its_summary_and_writes_the_same_report_from_the_same_input() {
    let dir = TempDir::new("backtest-report");
    ticks(&dir);
    config(&dir, "");
    let out = on_ticks(&dir, &["--report", "out"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.contains("backtest 2026-01-01T10:00:00.000000Z to 2026-01-01T18:19:50.000000Z: 3000 ticks"),
        "{stdout}"
    );
    let json = std::fs::read(dir.join("out/report.json")).expect("report.json");
    let r: serde_json::Value = serde_json::from_slice(&json).expect("JSON");
    assert_eq!(r["schema"], 3);
    let s = &r["summary"];
    assert_eq!(s["ticks"], 3000);
    assert!(s["fills"].as_u64().is_some_and(|f| f >= 2), "the model traded: {s}");
    let (net, equity) = (s["net_pnl"].as_f64().expect("net"), s["final_equity"].as_f64().expect("equity"));
    assert!((equity - 10_000.0 - net).abs() < 1e-6, "{s}");
    assert!(s["max_drawdown"].as_f64().is_some_and(|d| d > 0.0), "the fall shows as a drawdown: {s}");
    let curve = s["equity_curve"].as_array().expect("curve");
    assert!(curve.len() >= 400, "a point a minute over 8 hours: {}", curve.len());
    // The round trips: listed, in figures, and adding up to the net when flat at the end.
    let trades = s["trades"].as_array().expect("trades");
    let stats = &s["trade_stats"];
    assert!(!trades.is_empty() && stats["trades"].as_u64() == Some(trades.len() as u64), "{stats}");
    assert_eq!(s["symbols"][0]["position"], 0.0, "the model closed its position: {s}");
    let sum: f64 = trades.iter().map(|t| t["pnl"].as_f64().expect("pnl")).sum();
    assert!((sum - net).abs() < 1e-6, "round trips {sum} against net {net}");
    assert!(trades[0]["side"] == "long" && trades[0]["opened"].as_str() < trades[0]["closed"].as_str(), "{trades:?}");
    assert!(stdout.contains("round trip") && stdout.contains("won"), "{stdout}");
    let html = std::fs::read_to_string(dir.join("out/report.html")).expect("report.html");
    assert!(html.contains("<polyline") && html.contains("Backtest of config.yaml"), "{html}");
    assert!(html.contains("<h2>Drawdown</h2>") && html.contains("<polygon"), "a drawdown chart");
    assert!(html.contains("<th>entry</th>") && html.contains("<td>EURUSD</td><td>long</td>"), "a trades table");
    // The page's figures are report.json's.
    let figure = |key: &str| {
        let at = html.find(&format!("data-figure=\"{key}\">")).unwrap_or_else(|| panic!("no figure {key}"));
        html[at..].split('>').nth(1).and_then(|t| t.split('<').next()).unwrap_or("").to_owned()
    };
    assert_eq!(figure("net_pnl"), format!("{net:+.2}"));
    assert_eq!(figure("ticks"), "3000");
    // One round trip, a win: no average loss to show.
    let win = stats["average_win"].as_f64().expect("win");
    assert_eq!((stats["wins"].as_u64(), stats["losses"].as_u64()), (Some(1), Some(0)), "{stats}");
    assert_eq!(figure("average_win_loss"), format!("{win:+.2} / -"));
    assert!(figure("exposure").starts_with(&format!("{:.1}%", s["exposure"].as_f64().expect("exposure") * 100.0)));
    assert!(
        s["max_drawdown_seconds"].as_f64().is_some_and(|d| d > 0.0) && s["monthly_returns"][0][0] == "2026-01",
        "{s}"
    );
    // The plots beside the page, and the round trips for a spreadsheet.
    for plot in ["equity.svg", "drawdown.svg", "monthly.svg", "trades.svg"] {
        let svg = std::fs::read_to_string(dir.join(&format!("out/{plot}"))).expect(plot);
        assert!(
            svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\"")
                && (svg.contains("<rect x=") || svg.contains("points=")),
            "{plot}"
        );
        assert!(html.contains(svg.lines().nth(3).unwrap_or("?")), "{plot} is in the page too");
    }
    let csv = std::fs::read_to_string(dir.join("out/trades.csv")).expect("trades.csv");
    assert_eq!(csv.lines().count(), trades.len() + 1, "{csv}");
    assert!(
        csv.starts_with("symbol,side,opened,closed,qty,entry_price,exit_price,pnl,holding_seconds\nEURUSD,long,"),
        "{csv}"
    );
    assert!(!html.contains("http://") && !html.contains("https://"), "a page that fetches nothing");
    // The same data and config: the same bytes.
    let again = on_ticks(&dir, &["--report", "out2"]);
    assert!(again.status.success());
    assert_eq!(std::fs::read(dir.join("out2/report.json")).expect("again"), json, "deterministic");
}

#[test]
fn overrides_change_the_run_and_a_breaker_trips_on_history() {
    let dir = TempDir::new("backtest-set");
    ticks(&dir);
    config(&dir, "");
    let out = on_ticks(
        &dir,
        &["--report", "out", "--set", "model.sl_bps=0", "--set", "protection.max_drawdown.fraction=0.01"],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r = report(&dir, "out");
    assert_eq!(r["overrides"][1], serde_json::json!(["protection.max_drawdown.fraction", "0.01"]));
    assert_eq!(
        (r["summary"]["trading_state"].as_str(), r["summary"]["trading_state_by"].as_str()),
        (Some("halted"), Some("max_drawdown")),
        "a 1% drawdown breaker trips in the fall: {r}"
    );
}

#[test]
fn from_and_to_run_on_part_of_the_data() {
    let dir = TempDir::new("backtest-window");
    ticks(&dir);
    config(&dir, "");
    let out = on_ticks(&dir, &["--from", "2026-01-01T12:00:00Z", "--to", "1767272400", "--report", "out"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r = report(&dir, "out");
    let s = &r["summary"];
    assert_eq!((s["ticks"].as_u64(), s["from"].as_str()), (Some(360), Some("2026-01-01T12:00:00.000000Z")), "{s}");
    assert_eq!(s["to"], "2026-01-01T12:59:50.000000Z");
    let out = on_ticks(&dir, &["--from", "2026-01-02T00:00:00Z"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("between --from and --to"));
    let out = on_ticks(&dir, &["--from", "1767272400", "--to", "1767261600"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--to must come after --from"));
    let out = on_ticks(&dir, &["--from", "yesterday"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn bad_data_and_bad_overrides_are_usage_errors_that_say_where() {
    let dir = TempDir::new("backtest-bad");
    config(&dir, "");
    dir.write(
        "bad.csv",
        "timestamp,symbol,bid,ask\n2026-01-01T00:00:00Z,EURUSD,1.1,1.1001\n2026-01-01T00:00:01Z,EURUSD,abc,1.1\n",
    );
    let out = backtest(&dir, &["--config", "config.yaml", "--data", "bad.csv"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.csv:3") && err.contains("bid"), "{err}");
    // --skip-bad-rows counts and names them instead, and runs on the rest.
    let out = backtest(&dir, &["--config", "config.yaml", "--data", "bad.csv", "--skip-bad-rows", "--report", "skip"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("1 bad rows left out") && stdout.contains("bad.csv:3: bid"), "{stdout}");
    let r = report(&dir, "skip");
    assert_eq!((r["summary"]["ticks"].as_u64(), r["summary"]["skipped_rows"].as_u64()), (Some(1), Some(1)));
    ticks(&dir);
    let out = on_ticks(&dir, &["--set", "model.no_such_key=1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no_such_key"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = on_ticks(&dir, &["--set", "model.fast_period"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("KEY=VALUE"));
    let out = backtest(&dir, &["--data", "ticks.csv"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--config"));
}

/// MetaTrader 5's own exports, as a trader saves them from the terminal: EURUSD ticks and GBPUSD
/// one-minute bars on a UTC+2 server clock, merged by time into one run.
#[test]
fn mt5_tick_and_bar_exports_merge_into_one_run_on_the_server_clock() {
    let dir = TempDir::new("backtest-mt5");
    dir.write(
        "config.yaml",
        "feed:\n  symbols:\n    - {name: EURUSD, price: 1.1}\n    - {name: GBPUSD, price: 1.27}\n\
         protection:\n  starting_balance: 10000\n",
    );
    let mut ticks = String::from("<DATE>\t<TIME>\t<BID>\t<ASK>\t<LAST>\t<VOLUME>\t<FLAGS>\n");
    for i in 0..600u32 {
        // A tick a second from 12:00 server time; every tenth row changes only the ask.
        let (h, m, s) = (12, i / 60, i % 60);
        let bid = format!("{:.5}", 1.1 + f64::from(i) * 0.00001);
        let (b, a) = if i % 10 == 5 {
            (String::new(), format!("{:.5}", 1.1002 + f64::from(i) * 0.00001))
        } else {
            (bid.clone(), format!("{:.5}", 1.1001 + f64::from(i) * 0.00001))
        };
        ticks.push_str(&format!("2026.01.05\t{h:02}:{m:02}:{s:02}.000\t{b}\t{a}\t\t\t6\n"));
    }
    dir.write("EURUSD_202601051200_202601051209.csv", &ticks);
    let mut bars = String::from("<DATE>\t<TIME>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\t<TICKVOL>\t<VOL>\t<SPREAD>\n");
    for m in 0..10u32 {
        bars.push_str(&format!("2026.01.05\t12:{m:02}:00\t1.27000\t1.27100\t1.26900\t1.27050\t50\t0\t15\n"));
    }
    dir.write("GBPUSD_M1_202601051200_202601051209.csv", &bars);
    let out = backtest(
        &dir,
        &[
            "--config",
            "config.yaml",
            "--data",
            "EURUSD_202601051200_202601051209.csv",
            "--data",
            "GBPUSD_M1_202601051200_202601051209.csv",
            "--data-timezone",
            "+02:00",
            "--report",
            "out",
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r = report(&dir, "out");
    let s = &r["summary"];
    assert_eq!(s["ticks"], 600 + 40, "every tick, and four quotes a bar: {s}");
    assert_eq!(s["from"], "2026-01-05T10:00:00.000000Z", "12:00 at UTC+2");
    assert_eq!(r["data"].as_array().map(Vec::len), Some(2));
    let out = backtest(
        &dir,
        &["--config", "config.yaml", "--data", "EURUSD_202601051200_202601051209.csv", "--data-timezone", "Mars/Base"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--data-timezone"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir.write("XAUUSD_M1.csv", &bars);
    let out = backtest(&dir, &["--config", "config.yaml", "--data", "XAUUSD_M1.csv"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("XAUUSD_M1.csv") && err.contains("rename"), "{err}");
}

/// `--sweep`: every combination, one table sorted by the chosen figure, the same whatever the
/// threads; sweep.csv and the best run's report under --report; a bad sweep is a usage error.
#[test]
fn a_sweep_runs_the_grid_and_ranks_it() {
    let dir = TempDir::new("backtest-sweep");
    ticks(&dir);
    config(&dir, "");
    let out = on_ticks(
        &dir,
        &["--sweep", "model.fast_period=5,20", "--sweep", "model.slow_period=50,100,200", "--report", "out"],
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("sweep: 6 of 6 runs done"));
    let csv = std::fs::read_to_string(dir.join("out/sweep.csv")).expect("sweep.csv");
    let rows: Vec<Vec<&str>> = csv.lines().skip(1).map(|l| l.split(',').collect()).collect();
    assert!(csv.starts_with("model.fast_period,model.slow_period,net_pnl,"), "{csv}");
    assert_eq!(rows.len(), 6, "{csv}");
    let net: Vec<f64> = rows.iter().map(|r| r[2].parse().expect("net")).collect();
    assert!(net.windows(2).all(|w| w[0] >= w[1]), "best first: {net:?}");
    let mut combos: Vec<String> = rows.iter().map(|r| format!("{}/{}", r[0], r[1])).collect();
    combos.sort();
    assert_eq!(combos, ["20/100", "20/200", "20/50", "5/100", "5/200", "5/50"]);
    // The same table as a page: six runs, the best first and marked, the best report linked, and
    // nothing fetched from elsewhere.
    let page = std::fs::read_to_string(dir.join("out/sweep.html")).expect("sweep.html");
    assert_eq!(page.matches("<tr").count(), 7, "a heading and six runs: {page}");
    let best_row = page.split("<tr class=\"best\">").nth(1).expect("the best run is marked");
    assert!(
        best_row.starts_with(&format!("<td>{}</td><td>{}</td><td>{:+.2}</td>", rows[0][0], rows[0][1], net[0])),
        "{best_row}"
    );
    assert!(page.contains("href=\"best/report.html\""), "{page}");
    assert!(!page.contains("http") && !page.contains("src="), "the page fetches nothing: {page}");
    // The best run's own report, whose net is the table's first.
    let best = report(&dir, "out/best");
    assert!((best["summary"]["net_pnl"].as_f64().expect("net") - net[0]).abs() < 0.01, "{best}");
    // Each run equals the same backtest run alone.
    let (fast, slow) = (rows[0][0], rows[0][1]);
    let alone = on_ticks(
        &dir,
        &[
            "--set",
            &format!("model.fast_period={fast}"),
            "--set",
            &format!("model.slow_period={slow}"),
            "--report",
            "alone",
        ],
    );
    assert!(alone.status.success());
    assert_eq!(report(&dir, "alone")["summary"], best["summary"]);
    assert!(stdout.contains("sweep sorted by net_pnl"), "{stdout}");
    // Sorted by drawdown, smallest first.
    let out = on_ticks(&dir, &["--sweep", "model.fast_period=5,20", "--sort", "max_drawdown", "--report", "dd"]);
    assert!(out.status.success());
    let csv = std::fs::read_to_string(dir.join("dd/sweep.csv")).expect("sweep.csv");
    let dd: Vec<f64> =
        csv.lines().skip(1).map(|l| l.split(',').nth(3).and_then(|v| v.parse().ok()).expect("dd")).collect();
    assert!(dd.windows(2).all(|w| w[0] <= w[1]), "{dd:?}");
    // One thread at a time (--jobs 1) gives the same table, byte for byte.
    let one = on_ticks(
        &dir,
        &[
            "--sweep",
            "model.fast_period=5,20",
            "--sweep",
            "model.slow_period=50,100,200",
            "--jobs",
            "1",
            "--report",
            "one",
        ],
    );
    assert!(String::from_utf8_lossy(&one.stderr).contains("sweep: 6 runs on 1 threads"), "{one:?}");
    let all = std::fs::read_to_string(dir.join("out/sweep.csv")).expect("sweep.csv");
    assert_eq!(std::fs::read_to_string(dir.join("one/sweep.csv")).expect("sweep.csv"), all);
    for bad in [["--jobs", "0"], ["--jobs", "many"], ["--jobs", "-1"]] {
        let out = on_ticks(&dir, &["--sweep", "model.fast_period=5,20", bad[0], bad[1]]);
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("--jobs"), "{bad:?}");
    }
    for bad in [["--sweep", "model.fast_period"], ["--sweep", "model.fast_period=5,,7"], ["--sort", "luck"]] {
        let out = on_ticks(&dir, &bad);
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
    }
    let out = on_ticks(&dir, &["--sweep", "model.no_such_key=1,2"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no_such_key"), "{}", String::from_utf8_lossy(&out.stderr));
}

/// `count` two-symbol rows a second apart, prices wandering so the model trades now and then.
fn long_ticks(dir: &TempDir, name: &str, count: u64) -> std::path::PathBuf {
    use std::io::Write;
    let path = dir.join(name);
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).expect("create"));
    writeln!(out, "timestamp,symbol,bid,ask").expect("write");
    let mut mid = [1.1f64, 1.27];
    for i in 0..count {
        let s = (i % 2) as usize;
        // A slow wave: long rises and falls, so the crossover model trades every few thousand rows.
        mid[s] *= 1.0 + 0.00004 * ((i / 2000) as f64).sin();
        let sym = if s == 0 { "EURUSD" } else { "GBPUSD" };
        writeln!(out, "{},{sym},{:.5},{:.5}", 1_767_261_600 + i / 2, mid[s] - 0.00005, mid[s] + 0.00005)
            .expect("write");
    }
    out.flush().expect("flush");
    path
}

/// The peak memory the summary reports, in MiB.
fn peak_mib(stdout: &str) -> f64 {
    let at = stdout.find("peak memory ").expect("the summary gives the peak memory");
    stdout[at + 12..].split_whitespace().next().and_then(|v| v.parse().ok()).expect("a number of MiB")
}

#[test]
fn memory_stays_flat_however_long_the_data() {
    let dir = TempDir::new("backtest-memory");
    dir.write(
        "config.yaml",
        "feed:\n  symbols:\n    - {name: EURUSD, price: 1.1, contract_size: 100000}\n    - {name: GBPUSD, price: 1.27, contract_size: 100000}\n\
         protection:\n  starting_balance: 10000\n",
    );
    let (short, long) = (20_000u64, 400_000u64);
    long_ticks(&dir, "short.csv", short);
    long_ticks(&dir, "long.csv", long);
    let run = |data: &str| {
        let out = backtest(&dir, &["--config", "config.yaml", "--data", data]);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
        stdout
    };
    let (a, b) = (run("short.csv"), run("long.csv"));
    assert!(b.contains(&format!(": {long} ticks")), "{b}");
    assert!(b.contains(" fills"), "{b}");
    let size_mib = std::fs::metadata(dir.join("long.csv")).expect("size").len() as f64 / (1 << 20) as f64;
    let (pa, pb) = (peak_mib(&a), peak_mib(&b));
    // Held whole, 20x the rows would cost at least the extra file text (about 16 MiB) and 24 bytes
    // a row; streamed, the peak does not follow the rows.
    assert!(pb - pa < 4.0, "peak {pa:.1} MiB on {short} rows, {pb:.1} MiB on {long} rows ({size_mib:.1} MiB of data)");
}

#[test]
fn the_report_page_shows_in_a_real_browser_what_report_json_says() {
    let python = std::path::Path::new("/usr/bin/python3");
    require("chromium");
    require("chromedriver");
    let dir = TempDir::new("backtest-browser");
    ticks(&dir);
    config(&dir, "");
    let out = on_ticks(&dir, &["--report", "out"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(report(&dir, "out")["summary"]["fills"].as_u64().is_some_and(|f| f >= 2), "the model traded");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/backtest/view.py");
    let out = Command::new(python)
        .arg(script)
        .arg(dir.join("out"))
        .output()
        .expect("run the browser driver (python3-selenium)");
    let said = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && said.contains("OK report viewed"), "the browser run failed:\n{said}");
    for n in 0..4 {
        assert!(dir.join(&format!("out/plot-{n}.png")).exists(), "plot-{n}.png");
    }
}
