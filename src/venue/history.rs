//! Replay files: price history read and checked in full before the first tick, in the formats a
//! trader has at hand, and several files merged into one stream by time.
//!
//! - mt5bot's own `timestamp,symbol,bid,ask` (RFC 3339 or epoch seconds; a header is allowed),
//!   any number of symbols in one file.
//! - MetaTrader 5's tick export (Symbols, Ticks, Export: a tab-separated file headed
//!   `<DATE> <TIME> <BID> <ASK> <LAST> <VOLUME> <FLAGS>`). A row leaves BID or ASK empty when it
//!   did not change; a row that changes neither (a trade only) is not a quote and is skipped.
//! - MetaTrader 5's bar export (Bars, Export: `<DATE> <TIME> <OPEN> <HIGH> <LOW> <CLOSE>
//!   <TICKVOL> <VOL> <SPREAD>`). Each bar becomes four quotes spread over it: the open, the low
//!   and the high (low first in a rising bar, high first in a falling one), and the close. Bar
//!   prices are bids; the ask is the bid plus SPREAD points, a point being one unit of the last
//!   digit the file writes prices with (MT5 writes them with the symbol's digits).
//!
//! Any of them may be gzip-compressed (`ticks.csv.gz`). An MT5 export holds one symbol, named by the file: `EURUSD_202401020000_202401312359.csv` as
//! the terminal names it, or `EURUSD.csv`. Its times are the trade server's clock, which has no
//! zone in the file: `feed.csv.timezone` says which (brokers often run UTC+2, UTC+3 in summer).
//! Every problem names the file, the line and what would be accepted.

use std::path::{Path, PathBuf};

use jiff::civil::DateTime;
use jiff::tz::TimeZone;

use crate::domain::types::{Nanos, SymbolId};
use crate::support::timefmt::parse_timestamp;
#[cfg(test)]
use crate::support::timefmt::parse_zone;

/// Why a replay cannot be read: the file, the line and what would be accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedError(pub String);

impl std::fmt::Display for FeedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FeedError {}

/// One row of a replay, with its time relative to the first row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CsvRow {
    pub offset_ns: Nanos,
    pub symbol: SymbolId,
    pub bid: f64,
    pub ask: f64,
}

/// A replay read and checked: its rows, and the wall time of the first.
#[derive(Debug, Clone, PartialEq)]
pub struct CsvReplay {
    pub start_unix_ns: i128,
    pub rows: Vec<CsvRow>,
    /// The bad rows left out (always none unless they were asked to be skipped).
    pub skipped: Skipped,
}

/// The layout of a replay file, told by its first line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Rows,
    Mt5Ticks,
    Mt5Bars,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Rows => "timestamp,symbol,bid,ask",
            Format::Mt5Ticks => "MT5 tick export",
            Format::Mt5Bars => "MT5 bar export",
        }
    }

    fn of(first_line: &str) -> Format {
        let head = first_line.trim_start_matches('\u{feff}').trim().to_ascii_uppercase();
        if head.starts_with("<DATE>") && head.contains("<OPEN>") {
            Format::Mt5Bars
        } else if head.starts_with("<DATE>") {
            Format::Mt5Ticks
        } else {
            Format::Rows
        }
    }
}

/// A quote with its wall time, before the files are merged.
#[derive(Debug, Clone, Copy)]
struct Quote {
    unix_ns: i128,
    symbol: SymbolId,
    bid: f64,
    ask: f64,
}

/// Reads every file and merges their quotes by time (quotes at the same instant keep the order
/// of the files, then of their lines). `tz` is the zone of MT5 export times. A bad row stops the
/// load with its file and line, or with `skip_bad_rows` is counted and left out.
pub fn load(paths: &[PathBuf], symbols: &[&str], tz: &TimeZone, skip_bad_rows: bool) -> Result<CsvReplay, FeedError> {
    let mut quotes = Vec::new();
    let mut skipped = Skipped::default();
    for path in paths {
        let before = quotes.len();
        read_file(path, symbols, tz, &mut quotes, skip_bad_rows, &mut skipped)?;
        if quotes.len() == before {
            return Err(FeedError(format!("{}: the replay file has no rows", path.display())));
        }
    }
    if paths.len() > 1 {
        // Each file is in time order already; a stable sort keeps ties in file order.
        quotes.sort_by_key(|q| q.unix_ns);
    }
    let Some(start_unix_ns) = quotes.first().map(|q| q.unix_ns) else {
        return Err(FeedError("no replay file is given (feed.csv.path)".into()));
    };
    let rows = quotes
        .into_iter()
        .map(|q| CsvRow { offset_ns: (q.unix_ns - start_unix_ns) as Nanos, symbol: q.symbol, bid: q.bid, ask: q.ask })
        .collect();
    Ok(CsvReplay { start_unix_ns, rows, skipped })
}

/// Reads a `timestamp,symbol,bid,ask` file (the format before the others were read; kept for
/// callers that have one file of it).
pub fn load_csv(path: &Path, symbols: &[&str]) -> Result<CsvReplay, FeedError> {
    load(&[path.to_path_buf()], symbols, &TimeZone::UTC, false)
}

fn read_file(
    path: &Path,
    symbols: &[&str],
    tz: &TimeZone,
    out: &mut Vec<Quote>,
    skip_bad_rows: bool,
    skipped: &mut Skipped,
) -> Result<(), FeedError> {
    let bytes = std::fs::read(path)
        .map_err(|e| FeedError(format!("{}: cannot read the replay file (feed.csv.path): {e}", path.display())))?;
    let text = decode(&bytes).map_err(|e| FeedError(format!("{}: {e}", path.display())))?;
    let format = Format::of(text.lines().next().unwrap_or(""));
    let mut file = File { path, symbols, tz, out, last_ts: i128::MIN, skip_bad_rows, skipped };
    match format {
        Format::Rows => file.rows(&text),
        Format::Mt5Ticks | Format::Mt5Bars => {
            let symbol = symbol_of_export(path, symbols)?;
            if format == Format::Mt5Ticks {
                file.mt5_ticks(&text, symbol)
            } else {
                file.mt5_bars(&text, symbol)
            }
        }
    }
}

/// The text of a file: gzip-compressed or not (told by its magic bytes, not its name), UTF-8, or
/// the UTF-16 (little-endian, with its byte-order mark) that MetaTrader writes some exports in.
fn decode(bytes: &[u8]) -> Result<String, String> {
    if bytes.starts_with(&[0x1F, 0x8B]) {
        use std::io::Read;
        let mut raw = Vec::new();
        flate2::read::MultiGzDecoder::new(bytes)
            .read_to_end(&mut raw)
            .map_err(|e| format!("is gzip-compressed but cannot be decompressed: {e}"))?;
        if raw.starts_with(&[0x1F, 0x8B]) {
            return Err("is compressed twice; accepted: one gzip layer".into());
        }
        return decode(&raw);
    }
    if let Some(rest) = bytes.strip_prefix(&[0xFF, 0xFE]) {
        let units: Vec<u16> = rest.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])).collect();
        return String::from_utf16(&units).map_err(|_| "is UTF-16 but not valid text".into());
    }
    String::from_utf8(bytes.to_vec()).map_err(|e| {
        format!("is not text (not valid UTF-8 at byte {}); accepted: a CSV file", e.utf8_error().valid_up_to())
    })
}

/// The feed symbol an MT5 export is for: the longest feed symbol its file name starts with,
/// followed by `_`, `.csv` or nothing.
fn symbol_of_export(path: &Path, symbols: &[&str]) -> Result<SymbolId, FeedError> {
    let name = path.file_name().and_then(|s| s.to_str()).unwrap_or("");
    let name = name.strip_suffix(".gz").unwrap_or(name);
    let stem = name.rsplit_once('.').filter(|(_, ext)| ext.eq_ignore_ascii_case("csv")).map_or(name, |(s, _)| s);
    symbols
        .iter()
        .enumerate()
        .filter(|(_, s)| stem == **s || stem.strip_prefix(**s).is_some_and(|rest| rest.starts_with('_')))
        .max_by_key(|(_, s)| s.len())
        .map(|(i, _)| i as SymbolId)
        .ok_or_else(|| {
            FeedError(format!(
                "{}: an MT5 export holds one symbol, named by its file (SYMBOL_....csv as the terminal names it), \
                 and {stem:?} starts with none of feed.symbols ({}); rename the file",
                path.display(),
                symbols.join(", ")
            ))
        })
}

/// One file being read: where its quotes go, the time of its last row, and (with
/// `skip_bad_rows`) the rows it skipped.
struct File<'a> {
    path: &'a Path,
    symbols: &'a [&'a str],
    tz: &'a TimeZone,
    out: &'a mut Vec<Quote>,
    last_ts: i128,
    skip_bad_rows: bool,
    skipped: &'a mut Skipped,
}

/// Rows left out by `--skip-bad-rows`: how many, and the first few as `file:line: why`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Skipped {
    pub rows: u64,
    pub first: Vec<String>,
}

/// Skipped rows named in full, at most.
const SKIPPED_NAMED: usize = 10;

impl File<'_> {
    fn fail(&self, no: usize, what: String) -> FeedError {
        FeedError(format!("{}:{no}: {what}", self.path.display()))
    }

    /// A row's outcome: a bad row stops the file, or with `skip_bad_rows` is counted and left out.
    fn row(&mut self, no: usize, outcome: Result<(), String>) -> Result<(), FeedError> {
        match outcome {
            Ok(()) => Ok(()),
            Err(why) if self.skip_bad_rows => {
                self.skipped.rows += 1;
                if self.skipped.first.len() < SKIPPED_NAMED {
                    self.skipped.first.push(format!("{}:{no}: {why}", self.path.display()));
                }
                Ok(())
            }
            Err(why) => Err(self.fail(no, why)),
        }
    }

    fn push(&mut self, unix_ns: i128, symbol: SymbolId, bid: f64, ask: f64) -> Result<(), String> {
        if bid > ask {
            return Err(format!("bid {bid} is above ask {ask}"));
        }
        if unix_ns < self.last_ts {
            return Err("timestamp goes back in time; rows must be in time order".into());
        }
        self.last_ts = unix_ns;
        self.out.push(Quote { unix_ns, symbol, bid, ask });
        Ok(())
    }

    fn rows(&mut self, text: &str) -> Result<(), FeedError> {
        for (i, line) in text.lines().enumerate() {
            let no = i + 1;
            let line = line.trim();
            if line.is_empty()
                || line.starts_with('#')
                || (no == 1 && line.to_ascii_lowercase().starts_with("timestamp"))
            {
                continue;
            }
            let outcome = self.csv_row(line);
            self.row(no, outcome)?;
        }
        Ok(())
    }

    fn csv_row(&mut self, line: &str) -> Result<(), String> {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let [ts, sym, bid, ask] = fields[..] else {
            return Err(format!(
                "expected 4 fields timestamp,symbol,bid,ask, found {} (an MT5 export starts with a <DATE> header)",
                fields.len()
            ));
        };
        let ts = parse_timestamp(ts)?;
        let symbol = self
            .symbols
            .iter()
            .position(|s| *s == sym)
            .ok_or_else(|| format!("symbol {sym:?} is not in feed.symbols ({})", self.symbols.join(", ")))?;
        let (bid, ask) = (price(bid, "bid")?, price(ask, "ask")?);
        self.push(ts, symbol as SymbolId, bid, ask)
    }

    fn mt5_ticks(&mut self, text: &str, symbol: SymbolId) -> Result<(), FeedError> {
        let mut quote = (0.0f64, 0.0f64);
        for (i, line) in text.lines().enumerate().skip(1) {
            let no = i + 1;
            if line.trim().is_empty() {
                continue;
            }
            let outcome = self.mt5_tick(line, symbol, &mut quote);
            self.row(no, outcome)?;
        }
        Ok(())
    }

    /// One tick row; `quote` is the bid and ask so far (a row leaves unchanged sides empty).
    fn mt5_tick(&mut self, line: &str, symbol: SymbolId, quote: &mut (f64, f64)) -> Result<(), String> {
        let f: Vec<&str> = line.split('\t').map(str::trim).collect();
        if f.len() < 4 {
            return Err(format!("expected at least <DATE> <TIME> <BID> <ASK>, found {} fields", f.len()));
        }
        let ts = self.mt5_time(f[0], f[1])?;
        let (b, a) = (optional_price(f[2], "<BID>")?, optional_price(f[3], "<ASK>")?);
        if b.is_none() && a.is_none() {
            return Ok(());
        }
        let (bid, ask) = (b.unwrap_or(quote.0), a.unwrap_or(quote.1));
        if bid > 0.0 && ask > 0.0 {
            self.push(ts, symbol, bid, ask)?;
        }
        *quote = (bid, ask);
        Ok(())
    }

    fn mt5_bars(&mut self, text: &str, symbol: SymbolId) -> Result<(), FeedError> {
        let mut bars: Vec<Bar> = Vec::new();
        let mut digits = 0usize;
        for (i, line) in text.lines().enumerate().skip(1) {
            let no = i + 1;
            if line.trim().is_empty() {
                continue;
            }
            let outcome = self.mt5_bar(line, bars.last().map(|b| b.ts)).map(|(bar, d)| {
                digits = digits.max(d);
                bars.push(bar);
            });
            self.row(no, outcome)?;
        }
        let point = 10f64.powi(-(digits.min(12) as i32));
        // A bar lasts until the next; the last one as long as the shortest seen (a minute if alone).
        let shortest = bars.windows(2).map(|w| w[1].ts - w[0].ts).min().unwrap_or(60_000_000_000);
        for (k, bar) in bars.iter().enumerate() {
            let length = bars.get(k + 1).map_or(shortest, |next| (next.ts - bar.ts).min(shortest * 4));
            let [o, h, l, c] = bar.ohlc;
            let path = if c >= o { [o, l, h, c] } else { [o, h, l, c] };
            let ask_over = bar.spread * point;
            for (step, bid) in path.into_iter().enumerate() {
                let at = bar.ts + length * step as i128 / 4;
                // Bars are checked in order and each quote holds its bid under its ask.
                self.push(at, symbol, bid, bid + ask_over).map_err(|e| self.fail(0, e))?;
            }
        }
        Ok(())
    }

    /// One bar row, after the bar at `last` (if any): the bar and the digits its prices have.
    fn mt5_bar(&self, line: &str, last: Option<i128>) -> Result<(Bar, usize), String> {
        let f: Vec<&str> = line.split('\t').map(str::trim).collect();
        if f.len() < 6 {
            return Err(format!(
                "expected <DATE> <TIME> <OPEN> <HIGH> <LOW> <CLOSE> <TICKVOL> <VOL> <SPREAD>, found {} fields",
                f.len()
            ));
        }
        let ts = self.mt5_time(f[0], f[1])?;
        let mut ohlc = [0.0; 4];
        let mut digits = 0;
        for (k, name) in ["<OPEN>", "<HIGH>", "<LOW>", "<CLOSE>"].iter().enumerate() {
            ohlc[k] = price(f[2 + k], name)?;
            digits = digits.max(f[2 + k].split_once('.').map_or(0, |(_, d)| d.len()));
        }
        let [o, h, l, c] = ohlc;
        if h < o.max(c).max(l) || l > o.min(c) {
            return Err(format!("the bar's high {h} and low {l} do not hold its open {o} and close {c}"));
        }
        let spread = match f.get(8).filter(|s| !s.is_empty()) {
            None => 0.0,
            Some(s) => s
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s >= 0.0)
                .ok_or_else(|| format!("<SPREAD> {s:?} is not a number of points"))?,
        };
        if last.is_some_and(|last| ts <= last) {
            return Err("the bar does not come after the one before; bars must be in time order".into());
        }
        Ok((Bar { ts, ohlc, spread }, digits))
    }

    /// An MT5 `<DATE> <TIME>` (`2024.01.02`, `13:05:00` or `13:05:00.123`) on the server clock.
    fn mt5_time(&self, date: &str, time: &str) -> Result<i128, String> {
        let bad = || format!("{date:?} {time:?} is not an MT5 time; accepted: YYYY.MM.DD and HH:MM[:SS[.fff]]");
        let civil: DateTime = format!("{}T{time}", date.replace('.', "-")).parse().map_err(|_| bad())?;
        let zoned = civil.to_zoned(self.tz.clone()).map_err(|_| bad())?;
        Ok(zoned.timestamp().as_nanosecond())
    }
}

/// A bar of an MT5 export: its time, open, high, low, close and spread in points.
struct Bar {
    ts: i128,
    ohlc: [f64; 4],
    spread: f64,
}

fn price(v: &str, name: &str) -> Result<f64, String> {
    match v.parse::<f64>() {
        Ok(p) if p.is_finite() && p > 0.0 => Ok(p),
        _ => Err(format!("{name} {v:?} is not a positive price")),
    }
}

fn optional_price(v: &str, name: &str) -> Result<Option<f64>, String> {
    if v.is_empty() {
        Ok(None)
    } else {
        price(v, name).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::support::testdir::TestDir;

    fn write(dir: &TestDir, name: &str, text: &str) -> PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, text).expect("write");
        p
    }

    fn ns(s: &str) -> i128 {
        parse_timestamp(s).expect("time")
    }

    const SYMBOLS: [&str; 3] = ["EURUSD", "EURUSD.m", "GBPUSD"];

    #[test]
    fn an_mt5_tick_export_keeps_the_side_that_did_not_change_and_skips_trades() {
        let dir = TestDir::new("history-ticks");
        let p = write(
            &dir,
            "EURUSD.m_202401020000_202401022359.csv",
            "<DATE>\t<TIME>\t<BID>\t<ASK>\t<LAST>\t<VOLUME>\t<FLAGS>\n\
             2024.01.02\t00:00:00.120\t1.10450\t1.10460\t\t\t6\n\
             2024.01.02\t00:00:01.000\t\t1.10470\t\t\t4\n\
             2024.01.02\t00:00:01.500\t\t\t1.10465\t1\t56\n\
             2024.01.02\t00:00:02\t1.10440\t\t\t\t2\n",
        );
        let tz = parse_zone("+02:00").expect("zone");
        let r = load(&[p], &SYMBOLS, &tz, false).expect("valid");
        assert_eq!(r.start_unix_ns, ns("2024-01-01T22:00:00.12Z"), "server time at UTC+2");
        let quotes: Vec<(SymbolId, f64, f64)> = r.rows.iter().map(|q| (q.symbol, q.bid, q.ask)).collect();
        assert_eq!(
            quotes,
            [(1, 1.1045, 1.1046), (1, 1.1045, 1.1047), (1, 1.1044, 1.1047)],
            "the longest symbol prefix"
        );
        assert_eq!(r.rows[2].offset_ns, 1_880_000_000);
    }

    #[test]
    fn an_mt5_bar_becomes_four_quotes_with_the_spread_in_points() {
        let dir = TestDir::new("history-bars");
        let p = write(
            &dir,
            "GBPUSD_M1_202401020000_202401020002.csv",
            "<DATE>\t<TIME>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\t<TICKVOL>\t<VOL>\t<SPREAD>\n\
             2024.01.02\t00:00:00\t1.27000\t1.27050\t1.26980\t1.27040\t100\t0\t12\n\
             2024.01.02\t00:01:00\t1.27040\t1.27060\t1.26900\t1.26950\t90\t0\t10\n",
        );
        let r = load(&[p], &SYMBOLS, &TimeZone::UTC, false).expect("valid");
        let bids: Vec<f64> = r.rows.iter().map(|q| q.bid).collect();
        // Rising bar: open, low, high, close; falling bar: open, high, low, close.
        assert_eq!(bids, [1.27, 1.2698, 1.2705, 1.2704, 1.2704, 1.2706, 1.269, 1.2695]);
        assert!((r.rows[0].ask - r.rows[0].bid - 0.00012).abs() < 1e-12, "12 points of 0.00001");
        let offsets: Vec<u64> = r.rows.iter().map(|q| q.offset_ns / 1_000_000_000).collect();
        assert_eq!(offsets, [0, 15, 30, 45, 60, 75, 90, 105]);
        assert!(r.rows.iter().all(|q| q.symbol == 2));
    }

    #[test]
    fn files_are_merged_by_time() {
        let dir = TestDir::new("history-merge");
        let a =
            write(&dir, "a.csv", "2024-01-02T00:00:00Z,EURUSD,1.1,1.1001\n2024-01-02T00:00:02Z,EURUSD,1.2,1.2001\n");
        let b = write(
            &dir,
            "GBPUSD.csv",
            "<DATE>\t<TIME>\t<BID>\t<ASK>\t<LAST>\t<VOLUME>\t<FLAGS>\n2024.01.02\t00:00:01\t1.27\t1.2701\t\t\t6\n2024.01.02\t00:00:02\t1.28\t1.2801\t\t\t6\n",
        );
        let r = load(&[a, b], &SYMBOLS, &TimeZone::UTC, false).expect("valid");
        let order: Vec<(u64, SymbolId)> = r.rows.iter().map(|q| (q.offset_ns / 1_000_000_000, q.symbol)).collect();
        assert_eq!(order, [(0, 0), (1, 2), (2, 0), (2, 2)], "ties keep the order of the files");
    }

    #[test]
    fn bad_exports_name_the_file_the_line_and_what_is_accepted() {
        let dir = TestDir::new("history-bad");
        let head = "<DATE>\t<TIME>\t<BID>\t<ASK>\t<LAST>\t<VOLUME>\t<FLAGS>\n";
        let err = |name: &str, text: &str| {
            load(&[write(&dir, name, text)], &SYMBOLS, &TimeZone::UTC, false).expect_err(name).0
        };
        let e = err("USDJPY_1.csv", &format!("{head}2024.01.02\t00:00:00\t150\t150.01\t\t\t6\n"));
        assert!(e.contains("starts with none of feed.symbols") && e.contains("rename"), "{e}");
        let e = err("EURUSD_2.csv", &format!("{head}2024.13.02\t00:00:00\t1.1\t1.1001\t\t\t6\n"));
        assert!(e.contains("EURUSD_2.csv:2:") && e.contains("YYYY.MM.DD"), "{e}");
        let e = err(
            "EURUSD_3.csv",
            &format!("{head}2024.01.02\t00:00:01\t1.1\t1.1001\t\t\t6\n2024.01.02\t00:00:00\t1.1\t1.1001\t\t\t6\n"),
        );
        assert!(e.contains(":3:") && e.contains("back in time"), "{e}");
        let e = err("EURUSD_4.csv", &format!("{head}2024.01.02\t00:00:01\tnan\t1.1001\t\t\t6\n"));
        assert!(e.contains("<BID>"), "{e}");
        let bars = "<DATE>\t<TIME>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\t<TICKVOL>\t<VOL>\t<SPREAD>\n";
        let e = err("EURUSD_5.csv", &format!("{bars}2024.01.02\t00:00\t1.1\t1.09\t1.08\t1.1\t1\t0\t1\n"));
        assert!(e.contains("do not hold"), "{e}");
        let e = err("EURUSD_6.csv", head);
        assert!(e.contains("no rows"), "{e}");
        let e = load(&[dir.path().join("EURUSD_7.csv")], &SYMBOLS, &TimeZone::UTC, false).expect_err("missing").0;
        assert!(e.contains("cannot read"), "{e}");
        let e = err("EURUSD_8.csv", "\u{0}\u{ff}\u{fe}garbage");
        assert!(!e.is_empty());
        std::fs::write(dir.path().join("bin.csv"), [0xC3u8, 0x28, 0x0A]).expect("write");
        let e = load(&[dir.path().join("bin.csv")], &SYMBOLS, &TimeZone::UTC, false).expect_err("binary").0;
        assert!(e.contains("not valid UTF-8"), "{e}");
    }

    #[test]
    fn a_gzip_file_is_read_and_a_broken_one_is_an_error() {
        use std::io::Write;
        let dir = TestDir::new("history-gzip");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"2024-01-02T00:00:00Z,EURUSD,1.1,1.1001\n2024-01-02T00:00:01Z,GBPUSD,1.27,1.2701\n")
            .expect("gzip");
        let bytes = gz.finish().expect("gzip");
        let p = dir.path().join("ticks.csv.gz");
        std::fs::write(&p, &bytes).expect("write");
        let r = load(&[p], &SYMBOLS, &TimeZone::UTC, false).expect("valid");
        assert_eq!(r.rows.len(), 2);
        let cut = dir.path().join("cut.csv.gz");
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).expect("write");
        let e = load(&[cut], &SYMBOLS, &TimeZone::UTC, false).expect_err("truncated").0;
        assert!(e.contains("cut.csv.gz") && e.contains("cannot be decompressed"), "{e}");
    }

    #[test]
    fn a_utf16_export_is_read_as_the_terminal_writes_it_compressed_too() {
        let dir = TestDir::new("history-utf16");
        let text =
            "<DATE>\t<TIME>\t<BID>\t<ASK>\t<LAST>\t<VOLUME>\t<FLAGS>\r\n2024.01.02\t00:00:00\t1.1\t1.1001\t\t\t6\r\n";
        let mut bytes = vec![0xFF, 0xFE];
        bytes.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
        let p = dir.path().join("EURUSD.csv.gz");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &bytes).expect("gzip");
        std::fs::write(&p, gz.finish().expect("gzip")).expect("write");
        let r = load(&[p], &SYMBOLS, &TimeZone::UTC, false).expect("valid");
        assert_eq!((r.rows.len(), r.rows[0].bid), (1, 1.1));
    }

    #[test]
    fn skipping_bad_rows_counts_names_and_keeps_the_rest() {
        let dir = TestDir::new("history-skip");
        let head = "<DATE>\t<TIME>\t<BID>\t<ASK>\t<LAST>\t<VOLUME>\t<FLAGS>\n";
        let rows = format!(
            "{head}2024.01.02\t00:00:01\t1.1\t1.1001\t\t\t6\n2024.01.02\t00:00:00\t1.1\t1.1001\t\t\t6\n\
             garbage\n2024.13.40\t00:00:02\t1.1\t1.1001\t\t\t6\n2024.01.02\t00:00:03\t1.2\t1.2001\t\t\t6\n"
        );
        let p = write(&dir, "EURUSD.csv", &rows);
        assert!(
            load(std::slice::from_ref(&p), &SYMBOLS, &TimeZone::UTC, false).is_err(),
            "stops at the first without the switch"
        );
        let r = load(&[p], &SYMBOLS, &TimeZone::UTC, true).expect("skips");
        assert_eq!(r.rows.len(), 2);
        assert_eq!(r.skipped.rows, 3);
        assert!(
            r.skipped.first[0].ends_with("EURUSD.csv:3: timestamp goes back in time; rows must be in time order"),
            "{:?}",
            r.skipped
        );
        assert!(r.skipped.first[1].contains(":4: expected at least"), "{:?}", r.skipped);
        let many = format!("2024-01-02T00:00:00Z,EURUSD,1.1,1.1001\n{}", "x\n".repeat(50));
        let r = load(&[write(&dir, "many.csv", &many)], &SYMBOLS, &TimeZone::UTC, true).expect("skips");
        assert_eq!((r.skipped.rows, r.skipped.first.len()), (50, SKIPPED_NAMED), "counted all, named the first ten");
    }
}
