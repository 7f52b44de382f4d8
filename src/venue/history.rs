//! Replay files: price history in the formats a trader has at hand, read a line at a time and
//! several files merged into one stream by time, so a replay of any length runs in the same
//! memory (a buffer per file, and a bar's four quotes).
//!
//! - mt5bot's own `timestamp,symbol,bid,ask` (RFC 3339 or epoch seconds; a header is allowed),
//!   any number of symbols in one file.
//! - MetaTrader 5's tick export (Symbols, Ticks, Export: a tab-separated file headed
//!   `<DATE> <TIME> <BID> <ASK> <LAST> <VOLUME> <FLAGS>`). A row leaves BID or ASK empty when it
//!   did not change; a row that changes neither (a trade only) is not a quote and is skipped.
//! - MetaTrader 5's bar export (Bars, Export: `<DATE> <TIME> <OPEN> <HIGH> <LOW> <CLOSE>
//!   <TICKVOL> <VOL> <SPREAD>`). Each bar becomes four quotes spread over it: the open, the low
//!   and the high (low first in a rising bar, high first in a falling one), and the close. A bar
//!   lasts until the next one, at most four times the shortest gap between bars so far (so a
//!   weekend does not stretch Friday's last bar); the last bar as long as the shortest gap (a
//!   minute if it is alone). Bar prices are bids; the ask is the bid plus SPREAD points, a point
//!   being one unit of the last digit the file has written prices with so far (MT5 writes them
//!   with the symbol's digits).
//!
//! Any of them may be gzip-compressed (`ticks.csv.gz`), decompressed as it is read. An MT5 export
//! holds one symbol, named by the file: `EURUSD_202401020000_202401312359.csv` as the terminal
//! names it, or `EURUSD.csv`. Its times are the trade server's clock, which has no zone in the
//! file: `feed.csv.timezone` says which (brokers often run UTC+2, UTC+3 in summer). Every problem
//! names the file, the line and what would be accepted. A [`Stream`] finds a bad row when it
//! reaches it; the live feed reads its files through once with [`check`] before trading starts.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

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

/// A replay read whole (tests and small files): its rows, and the wall time of the first.
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
#[derive(Debug, Clone, Copy, Default)]
struct Quote {
    unix_ns: i128,
    symbol: SymbolId,
    bid: f64,
    ask: f64,
}

/// Rows left out by `--skip-bad-rows`: how many, and the first few as `file:line: why`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Skipped {
    pub rows: u64,
    pub first: Vec<String>,
}

impl Skipped {
    /// None skipped.
    pub const NONE: Skipped = Skipped { rows: 0, first: Vec::new() };
}

/// Skipped rows named in full, at most.
const SKIPPED_NAMED: usize = 10;

/// The longest line a replay file may have (a row is under 100 bytes).
const MAX_LINE_BYTES: usize = 4096;

/// Bytes read from a file at a time.
const READ_BUFFER: usize = 64 * 1024;

/// The part of the data a [`Stream`] gives: from `from` (inclusive) to `to` (exclusive), Unix ns.
#[derive(Debug, Clone, Copy, Default)]
pub struct Window {
    pub from: Option<i128>,
    pub to: Option<i128>,
}

/// Replay files read a line at a time and merged by time: quotes at the same instant keep the
/// order of the files, then of their lines. Memory does not grow with the files.
pub struct Stream {
    files: Vec<Reader>,
    /// Each file's next quote.
    heads: Vec<Option<Quote>>,
    skipped: Skipped,
    skip_bad_rows: bool,
    window: Window,
    start_unix_ns: i128,
    /// The first row, read at the opening to learn the start.
    first: Option<CsvRow>,
    read: Arc<AtomicU64>,
    size: u64,
    /// The bad row met when a file's next quote was read, given after the quote before it.
    failed: Option<FeedError>,
    ended: bool,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("files", &self.files.iter().map(|r| &r.path).collect::<Vec<_>>())
            .field("start_unix_ns", &self.start_unix_ns)
            .field("skipped", &self.skipped.rows)
            .finish_non_exhaustive()
    }
}

impl Stream {
    /// Opens every file and reads up to the first row in `window`; `tz` is the zone of MT5 export
    /// times. A file that cannot be opened or has no rows is an error here; a bad row later is an
    /// error from [`Stream::next_row`] when the stream reaches it, or with `skip_bad_rows` is
    /// counted and left out.
    pub fn open(
        paths: &[PathBuf],
        symbols: &[&str],
        tz: &TimeZone,
        skip_bad_rows: bool,
        window: Window,
    ) -> Result<Stream, FeedError> {
        if paths.is_empty() {
            return Err(FeedError("no replay file is given (feed.csv.path)".into()));
        }
        let read = Arc::new(AtomicU64::new(0));
        let symbols: Arc<[String]> = symbols.iter().map(|s| s.to_string()).collect();
        let mut stream = Stream {
            files: Vec::with_capacity(paths.len()),
            heads: Vec::with_capacity(paths.len()),
            skipped: Skipped::default(),
            skip_bad_rows,
            window,
            start_unix_ns: 0,
            first: None,
            read: read.clone(),
            size: 0,
            failed: None,
            ended: false,
        };
        for path in paths {
            let mut file = Reader::open(path, symbols.clone(), tz.clone(), read.clone())?;
            stream.size += file.size;
            let head = file.next_quote(&mut stream.skipped, skip_bad_rows)?;
            if head.is_none() {
                return Err(FeedError(format!("{}: the replay file has no rows", path.display())));
            }
            stream.files.push(file);
            stream.heads.push(head);
        }
        let Some(first) = stream.next_in_window()? else {
            return Err(FeedError("no row of the replay file lies between --from and --to".into()));
        };
        stream.start_unix_ns = first.unix_ns;
        stream.first = Some(stream.row(first));
        Ok(stream)
    }

    /// The wall time of the first row.
    pub fn start_unix_ns(&self) -> i128 {
        self.start_unix_ns
    }

    /// The next row, `None` at the end of the data (or of the window).
    pub fn next_row(&mut self) -> Result<Option<CsvRow>, FeedError> {
        if let Some(first) = self.first.take() {
            return Ok(Some(first));
        }
        Ok(self.next_in_window()?.map(|q| self.row(q)))
    }

    /// The bad rows left out so far.
    pub fn skipped(&self) -> &Skipped {
        &self.skipped
    }

    /// The share of the files' bytes read so far (compressed bytes for a gzip file), 0 to 1.
    pub fn read_fraction(&self) -> f64 {
        if self.size == 0 {
            return 1.0;
        }
        (self.read.load(Ordering::Relaxed) as f64 / self.size as f64).clamp(0.0, 1.0)
    }

    fn row(&self, q: Quote) -> CsvRow {
        CsvRow { offset_ns: (q.unix_ns - self.start_unix_ns) as Nanos, symbol: q.symbol, bid: q.bid, ask: q.ask }
    }

    fn next_in_window(&mut self) -> Result<Option<Quote>, FeedError> {
        while let Some(q) = self.next_quote()? {
            if self.window.from.is_some_and(|from| q.unix_ns < from) {
                continue;
            }
            if self.window.to.is_some_and(|to| q.unix_ns >= to) {
                self.ended = true;
                return Ok(None);
            }
            return Ok(Some(q));
        }
        Ok(None)
    }

    /// The earliest head of all files (the first file's on a tie), replaced by that file's next.
    fn next_quote(&mut self) -> Result<Option<Quote>, FeedError> {
        if let Some(e) = self.failed.take() {
            self.ended = true;
            return Err(e);
        }
        if self.ended {
            return Ok(None);
        }
        let mut pick: Option<(usize, i128)> = None;
        for (i, head) in self.heads.iter().enumerate() {
            if let Some(q) = head {
                if pick.is_none_or(|(_, t)| q.unix_ns < t) {
                    pick = Some((i, q.unix_ns));
                }
            }
        }
        let Some((i, _)) = pick else {
            self.ended = true;
            return Ok(None);
        };
        let quote = self.heads[i].take();
        match self.files[i].next_quote(&mut self.skipped, self.skip_bad_rows) {
            Ok(next) => self.heads[i] = next,
            // The rows before a bad one are all given first.
            Err(e) => self.failed = Some(e),
        }
        Ok(quote)
    }
}

/// Reads every file through, keeping nothing but the count: the rows, and the bad rows left out.
/// The live feed checks its files this way before trading starts.
pub fn check(
    paths: &[PathBuf],
    symbols: &[&str],
    tz: &TimeZone,
    skip_bad_rows: bool,
) -> Result<(u64, Skipped), FeedError> {
    let mut stream = Stream::open(paths, symbols, tz, skip_bad_rows, Window::default())?;
    let mut rows = 0u64;
    while stream.next_row()?.is_some() {
        rows += 1;
    }
    Ok((rows, stream.skipped))
}

/// Reads every file whole and merges their quotes by time (see [`Stream`]).
pub fn load(paths: &[PathBuf], symbols: &[&str], tz: &TimeZone, skip_bad_rows: bool) -> Result<CsvReplay, FeedError> {
    let mut stream = Stream::open(paths, symbols, tz, skip_bad_rows, Window::default())?;
    let mut rows = Vec::new();
    while let Some(row) = stream.next_row()? {
        rows.push(row);
    }
    Ok(CsvReplay { start_unix_ns: stream.start_unix_ns, rows, skipped: stream.skipped })
}

/// Reads a `timestamp,symbol,bid,ask` file (the format before the others were read; kept for
/// callers that have one file of it).
pub fn load_csv(path: &Path, symbols: &[&str]) -> Result<CsvReplay, FeedError> {
    load(&[path.to_path_buf()], symbols, &TimeZone::UTC, false)
}

/// A reader that counts the bytes it reads into a shared total (a stream's progress).
struct Counted<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// The error a UTF-16 file with broken text reads as.
#[derive(Debug)]
struct BadUtf16;

impl std::fmt::Display for BadUtf16 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("is UTF-16 but not valid text")
    }
}

impl std::error::Error for BadUtf16 {}

/// UTF-16LE text (its byte-order mark already taken off), read as UTF-8 a chunk at a time: a
/// unit split across chunks and a surrogate pair split across chunks are carried over.
struct Utf16Le<R> {
    inner: R,
    units: Vec<u16>,
    out: Vec<u8>,
    at: usize,
    odd_byte: Option<u8>,
    high_surrogate: Option<u16>,
}

impl<R: BufRead> Utf16Le<R> {
    fn new(inner: R) -> Self {
        Utf16Le { inner, units: Vec::new(), out: Vec::new(), at: 0, odd_byte: None, high_surrogate: None }
    }

    /// Decodes the next chunk into `out`; false at the end.
    fn refill(&mut self) -> std::io::Result<bool> {
        let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, BadUtf16);
        self.out.clear();
        self.at = 0;
        let chunk = self.inner.fill_buf()?;
        if chunk.is_empty() {
            if self.odd_byte.is_some() || self.high_surrogate.is_some() {
                return Err(bad());
            }
            return Ok(false);
        }
        self.units.clear();
        self.units.extend(self.high_surrogate.take());
        let mut bytes = chunk;
        if let Some(low) = self.odd_byte.take() {
            self.units.push(u16::from_le_bytes([low, bytes[0]]));
            bytes = &bytes[1..];
        }
        let pairs = bytes.chunks_exact(2);
        self.odd_byte = pairs.remainder().first().copied();
        self.units.extend(pairs.map(|p| u16::from_le_bytes([p[0], p[1]])));
        let n = chunk.len();
        self.inner.consume(n);
        if self.units.last().is_some_and(|u| (0xD800..0xDC00).contains(u)) {
            self.high_surrogate = self.units.pop();
        }
        for c in char::decode_utf16(self.units.iter().copied()) {
            let c = c.map_err(|_| bad())?;
            let mut b = [0u8; 4];
            self.out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
        }
        Ok(true)
    }
}

impl<R: BufRead> Read for Utf16Le<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.out.len() {
            if !self.refill()? {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.out.len() - self.at);
        buf[..n].copy_from_slice(&self.out[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// A bar of an MT5 export: its time, open, high, low, close and spread in points.
#[derive(Debug, Clone, Copy)]
struct Bar {
    ts: i128,
    ohlc: [f64; 4],
    spread: f64,
}

/// A bar export's state: the bar waiting for the next one to know its length, the shortest gap
/// between bars so far, the digits prices were written with, and the quotes of the bar made last.
#[derive(Default)]
struct Bars {
    waiting: Option<Bar>,
    shortest: Option<i128>,
    digits: usize,
    quotes: [Quote; 4],
    next_quote: usize,
}

impl Bars {
    /// A bar's length when none follows it: the shortest gap, or a minute.
    const ALONE: i128 = 60_000_000_000;

    fn take_quote(&mut self) -> Option<Quote> {
        let q = self.quotes.get(self.next_quote).copied()?;
        self.next_quote += 1;
        Some(q)
    }

    /// Makes the waiting bar's four quotes, now that `next` (the next bar's time, if any) is known.
    fn release(&mut self, next: Option<i128>, symbol: SymbolId) {
        let Some(bar) = self.waiting.take() else { return };
        if let Some(next) = next {
            let gap = next - bar.ts;
            self.shortest = Some(self.shortest.map_or(gap, |s| s.min(gap)));
        }
        let shortest = self.shortest.unwrap_or(Self::ALONE);
        let length = next.map_or(shortest, |next| (next - bar.ts).min(shortest * 4));
        let point = 10f64.powi(-(self.digits.min(12) as i32));
        let [o, h, l, c] = bar.ohlc;
        let path = if c >= o { [o, l, h, c] } else { [o, h, l, c] };
        let ask_over = bar.spread * point;
        for (step, bid) in path.into_iter().enumerate() {
            let unix_ns = bar.ts + length * step as i128 / 4;
            self.quotes[step] = Quote { unix_ns, symbol, bid, ask: bid + ask_over };
        }
        self.next_quote = 0;
    }
}

/// One replay file being read: its lines, its layout, and what the layout carries from row to row.
struct Reader {
    path: PathBuf,
    lines: Box<dyn BufRead + Send>,
    gzip: bool,
    size: u64,
    line: Vec<u8>,
    no: usize,
    /// The first line, read to tell the layout, is still to be handled.
    first_pending: bool,
    format: Format,
    symbols: Arc<[String]>,
    /// The symbol of an MT5 export (named by its file).
    symbol: SymbolId,
    tz: TimeZone,
    last_ts: i128,
    /// An MT5 tick export's bid and ask so far (a row leaves unchanged sides empty).
    quote: (f64, f64),
    bars: Bars,
    ended: bool,
}

impl Reader {
    fn open(path: &Path, symbols: Arc<[String]>, tz: TimeZone, read: Arc<AtomicU64>) -> Result<Reader, FeedError> {
        let at = |e: String| FeedError(format!("{}: {e}", path.display()));
        let cannot = |e: std::io::Error| at(format!("cannot read the replay file (feed.csv.path): {e}"));
        let file = std::fs::File::open(path).map_err(cannot)?;
        let size = file.metadata().map_err(cannot)?.len();
        let mut raw = BufReader::with_capacity(READ_BUFFER, Counted { inner: file, read });
        let gzip = raw.fill_buf().map_err(cannot)?.starts_with(&[0x1F, 0x8B]);
        let mut lines: Box<dyn BufRead + Send> = if gzip {
            let mut text = BufReader::with_capacity(READ_BUFFER, flate2::bufread::MultiGzDecoder::new(raw));
            let head =
                text.fill_buf().map_err(|e| at(format!("is gzip-compressed but cannot be decompressed: {e}")))?;
            if head.starts_with(&[0x1F, 0x8B]) {
                return Err(at("is compressed twice; accepted: one gzip layer".into()));
            }
            Box::new(text)
        } else {
            Box::new(raw)
        };
        if lines.fill_buf().map_err(cannot)?.starts_with(&[0xFF, 0xFE]) {
            lines.consume(2);
            lines = Box::new(BufReader::with_capacity(READ_BUFFER, Utf16Le::new(lines)));
        }
        let mut reader = Reader {
            path: path.to_path_buf(),
            lines,
            gzip,
            size,
            line: Vec::with_capacity(256),
            no: 0,
            first_pending: true,
            format: Format::Rows,
            symbols,
            symbol: 0,
            tz,
            last_ts: i128::MIN,
            quote: (0.0, 0.0),
            bars: Bars { next_quote: 4, ..Bars::default() },
            ended: false,
        };
        if reader.read_line()? {
            reader.format = Format::of(&String::from_utf8_lossy(&reader.line));
        }
        if reader.format != Format::Rows {
            reader.symbol = symbol_of_export(path, &reader.symbols)?;
        }
        Ok(reader)
    }

    fn fail(&self, no: usize, what: String) -> FeedError {
        FeedError(format!("{}:{no}: {what}", self.path.display()))
    }

    /// Reads the next line into `line` (its end of line taken off); false at the end.
    fn read_line(&mut self) -> Result<bool, FeedError> {
        self.line.clear();
        // Bounded: a file without line ends (a binary, /dev/zero) must not become one huge line.
        let mut bounded = (&mut *self.lines).take(MAX_LINE_BYTES as u64 + 1);
        match bounded.read_until(b'\n', &mut self.line) {
            Ok(0) => Ok(false),
            Ok(_) if self.line.len() > MAX_LINE_BYTES && self.line.last() != Some(&b'\n') => Err(self.fail(
                self.no + 1,
                format!("a line longer than {MAX_LINE_BYTES} bytes; accepted: a CSV file of quotes, a line each"),
            )),
            Ok(_) => {
                self.no += 1;
                while self.line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                    self.line.pop();
                }
                Ok(true)
            }
            Err(e) if e.get_ref().is_some_and(|inner| inner.is::<BadUtf16>()) => {
                Err(FeedError(format!("{}: {e}", self.path.display())))
            }
            Err(e) if self.gzip => {
                Err(FeedError(format!("{}: is gzip-compressed but cannot be decompressed: {e}", self.path.display())))
            }
            Err(e) => Err(FeedError(format!("{}: cannot read the replay file: {e}", self.path.display()))),
        }
    }

    /// The file's next quote, `None` at its end. A bad row stops the file, or with
    /// `skip_bad_rows` is counted in `skipped` and left out.
    fn next_quote(&mut self, skipped: &mut Skipped, skip_bad_rows: bool) -> Result<Option<Quote>, FeedError> {
        loop {
            if let Some(q) = self.bars.take_quote() {
                return Ok(Some(q));
            }
            if self.ended {
                return Ok(None);
            }
            if self.first_pending {
                self.first_pending = false;
                if self.no == 0 {
                    self.ended = true;
                    continue;
                }
            } else if !self.read_line()? {
                self.ended = true;
                self.bars.release(None, self.symbol);
                continue;
            }
            let no = self.no;
            // The line is lent out while the row handlers update the reader.
            let line = std::mem::take(&mut self.line);
            let outcome = match std::str::from_utf8(&line) {
                Ok(text) if text.trim().is_empty() => Ok(None),
                Ok(text) => self.handle(text, no),
                Err(e) => Err(format!(
                    "is not text (not valid UTF-8 at byte {} of the line); accepted: a CSV file",
                    e.valid_up_to()
                )),
            };
            self.line = line;
            match outcome {
                Ok(Some(q)) => return Ok(Some(q)),
                Ok(None) => {}
                Err(why) if skip_bad_rows => {
                    skipped.rows += 1;
                    if skipped.first.len() < SKIPPED_NAMED {
                        skipped.first.push(format!("{}:{no}: {why}", self.path.display()));
                    }
                }
                Err(why) => return Err(self.fail(no, why)),
            }
        }
    }

    /// One line of the file: a quote, nothing (a header, a comment, a trade-only tick row, a bar
    /// whose quotes come once the next bar is read), or why the row is bad.
    fn handle(&mut self, line: &str, no: usize) -> Result<Option<Quote>, String> {
        match self.format {
            Format::Rows => {
                let line = line.trim();
                if line.starts_with('#') || (no == 1 && line.to_ascii_lowercase().starts_with("timestamp")) {
                    return Ok(None);
                }
                self.csv_row(line).map(Some)
            }
            Format::Mt5Ticks | Format::Mt5Bars if no == 1 => Ok(None),
            Format::Mt5Ticks => self.mt5_tick(line),
            Format::Mt5Bars => {
                let bar = self.mt5_bar(line)?;
                self.last_ts = bar.ts;
                self.bars.release(Some(bar.ts), self.symbol);
                self.bars.waiting = Some(bar);
                Ok(None)
            }
        }
    }

    /// A quote in time order with its bid under its ask.
    fn quote(&mut self, unix_ns: i128, symbol: SymbolId, bid: f64, ask: f64) -> Result<Quote, String> {
        if bid > ask {
            return Err(format!("bid {bid} is above ask {ask}"));
        }
        if unix_ns < self.last_ts {
            return Err("timestamp goes back in time; rows must be in time order".into());
        }
        self.last_ts = unix_ns;
        Ok(Quote { unix_ns, symbol, bid, ask })
    }

    fn csv_row(&mut self, line: &str) -> Result<Quote, String> {
        let (f, n) = fields::<4>(line, b',');
        if n != 4 {
            return Err(format!(
                "expected 4 fields timestamp,symbol,bid,ask, found {n} (an MT5 export starts with a <DATE> header)"
            ));
        }
        let [ts, sym, bid, ask] = f;
        let ts = parse_timestamp(ts)?;
        let symbol = self
            .symbols
            .iter()
            .position(|s| s == sym)
            .ok_or_else(|| format!("symbol {sym:?} is not in feed.symbols ({})", self.symbols.join(", ")))?;
        let (bid, ask) = (price(bid, "bid")?, price(ask, "ask")?);
        self.quote(ts, symbol as SymbolId, bid, ask)
    }

    /// One tick row; a side left empty keeps the one before.
    fn mt5_tick(&mut self, line: &str) -> Result<Option<Quote>, String> {
        let (f, n) = fields::<4>(line, b'\t');
        if n < 4 {
            return Err(format!("expected at least <DATE> <TIME> <BID> <ASK>, found {n} fields"));
        }
        let ts = self.mt5_time(f[0], f[1])?;
        let (b, a) = (optional_price(f[2], "<BID>")?, optional_price(f[3], "<ASK>")?);
        if b.is_none() && a.is_none() {
            return Ok(None);
        }
        let (bid, ask) = (b.unwrap_or(self.quote.0), a.unwrap_or(self.quote.1));
        let quote = if bid > 0.0 && ask > 0.0 { Some(self.quote(ts, self.symbol, bid, ask)?) } else { None };
        self.quote = (bid, ask);
        Ok(quote)
    }

    /// One bar row, after the bar before (if any); the digits of its prices are noted.
    fn mt5_bar(&mut self, line: &str) -> Result<Bar, String> {
        let (f, n) = fields::<9>(line, b'\t');
        if n < 6 {
            return Err(format!(
                "expected <DATE> <TIME> <OPEN> <HIGH> <LOW> <CLOSE> <TICKVOL> <VOL> <SPREAD>, found {n} fields"
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
        let spread = match f[8] {
            "" => 0.0,
            s => s
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s >= 0.0)
                .ok_or_else(|| format!("<SPREAD> {s:?} is not a number of points"))?,
        };
        if self.last_ts != i128::MIN && ts <= self.last_ts {
            return Err("the bar does not come after the one before; bars must be in time order".into());
        }
        self.bars.digits = self.bars.digits.max(digits);
        Ok(Bar { ts, ohlc, spread })
    }

    /// An MT5 `<DATE> <TIME>` (`2024.01.02`, `13:05`, `13:05:00` or `13:05:00.123`) on the server
    /// clock.
    fn mt5_time(&self, date: &str, time: &str) -> Result<i128, String> {
        let bad = || format!("{date:?} {time:?} is not an MT5 time; accepted: YYYY.MM.DD and HH:MM[:SS[.fff]]");
        let civil = mt5_civil(date, time).ok_or_else(bad)?;
        let at = self.tz.to_timestamp(civil).map_err(|_| bad())?;
        Ok(at.as_nanosecond())
    }
}

/// `2024.01.02` and `13:05[:00[.123]]` as a civil time, if they are one.
fn mt5_civil(date: &str, time: &str) -> Option<jiff::civil::DateTime> {
    let number =
        |s: &str| -> Option<i32> { (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok())? };
    let mut d = date.split('.');
    let (y, mo, day) = (number(d.next()?)?, number(d.next()?)?, number(d.next()?)?);
    if d.next().is_some() || date.len() != 10 {
        return None;
    }
    let mut t = time.split(':');
    let (h, mi) = (number(t.next()?)?, number(t.next()?)?);
    let (s, nanos) = match t.next() {
        None => (0, 0),
        Some(sec) => {
            let (whole, frac) = sec.split_once('.').unwrap_or((sec, ""));
            if frac.len() > 9 || (sec.contains('.') && frac.is_empty()) {
                return None;
            }
            let nanos = if frac.is_empty() { 0 } else { number(frac)? * 10i32.pow(9 - frac.len() as u32) };
            (number(whole)?, nanos)
        }
    };
    if t.next().is_some() {
        return None;
    }
    let narrow = |v: i32| i8::try_from(v).ok();
    jiff::civil::DateTime::new(
        i16::try_from(y).ok()?,
        narrow(mo)?,
        narrow(day)?,
        narrow(h)?,
        narrow(mi)?,
        narrow(s)?,
        nanos,
    )
    .ok()
}

/// The first `N` fields of `line` split at `sep` (ASCII), trimmed (missing ones empty), and how
/// many fields it has in all.
fn fields<const N: usize>(line: &str, sep: u8) -> ([&str; N], usize) {
    let mut out = [""; N];
    let mut n = 0;
    let mut start = 0;
    let bytes = line.as_bytes();
    for end in (0..bytes.len()).filter(|&i| bytes[i] == sep).chain([bytes.len()]) {
        if let Some(slot) = out.get_mut(n) {
            // `sep` is ASCII, so both ends are on character boundaries.
            *slot = trimmed(&line[start..end]);
        }
        n += 1;
        start = end + 1;
    }
    (out, n)
}

/// `field` without white space around it; most fields have none, so it is looked for first.
fn trimmed(field: &str) -> &str {
    match (field.as_bytes().first(), field.as_bytes().last()) {
        (Some(a), Some(b)) if a.is_ascii_whitespace() || b.is_ascii_whitespace() => field.trim(),
        _ => field,
    }
}

/// The feed symbol an MT5 export is for: the longest feed symbol its file name starts with,
/// followed by `_`, `.csv` or nothing.
fn symbol_of_export(path: &Path, symbols: &[String]) -> Result<SymbolId, FeedError> {
    let name = path.file_name().and_then(|s| s.to_str()).unwrap_or("");
    let name = name.strip_suffix(".gz").unwrap_or(name);
    let stem = name.rsplit_once('.').filter(|(_, ext)| ext.eq_ignore_ascii_case("csv")).map_or(name, |(s, _)| s);
    symbols
        .iter()
        .enumerate()
        .filter(|(_, s)| stem == s.as_str() || stem.strip_prefix(s.as_str()).is_some_and(|rest| rest.starts_with('_')))
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
    fn utf16_units_and_surrogate_pairs_split_across_reads_decode_whole() {
        let text = "<DATE>\t<TIME>\u{20ac}\u{1d11e}x\r\n";
        let bytes: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
        for capacity in [1, 2, 3, 5, 64] {
            let mut out = String::new();
            Utf16Le::new(BufReader::with_capacity(capacity, bytes.as_slice())).read_to_string(&mut out).expect("text");
            assert_eq!(out, text, "read {capacity} bytes at a time");
        }
        let mut out = String::new();
        let e = Utf16Le::new(bytes[..bytes.len() - 1].as_ref()).read_to_string(&mut out).expect_err("odd byte");
        assert!(e.to_string().contains("UTF-16"), "{e}");
        let lone_high: Vec<u8> = [0x41u16, 0xD834, 0x41].iter().flat_map(|u| u.to_le_bytes()).collect();
        assert!(Utf16Le::new(lone_high.as_slice()).read_to_string(&mut String::new()).is_err());
    }

    #[test]
    fn a_stream_gives_the_rows_before_a_bad_one_then_names_its_line() {
        let dir = TestDir::new("history-stream-bad");
        let p = write(
            &dir,
            "t.csv",
            "2024-01-02T00:00:00Z,EURUSD,1.1,1.1001\n2024-01-02T00:00:01Z,EURUSD,1.1,1.1001\n2024-01-02T00:00:02Z,EURUSD,oops,1.1\n",
        );
        let mut s =
            Stream::open(std::slice::from_ref(&p), &SYMBOLS, &TimeZone::UTC, false, Window::default()).expect("opens");
        assert!(s.next_row().expect("row 1").is_some());
        assert!(s.next_row().expect("row 2").is_some());
        let e = s.next_row().expect_err("row 3").0;
        assert!(e.ends_with("t.csv:3: bid \"oops\" is not a positive price"), "{e}");
        assert_eq!(s.next_row(), Ok(None), "the stream ends after its error");
        assert!(check(&[p], &SYMBOLS, &TimeZone::UTC, false).is_err(), "a check reads through and finds it");
    }

    #[test]
    fn a_file_without_line_ends_is_refused_without_reading_it_whole() {
        let dir = TestDir::new("history-long-line");
        let p = write(&dir, "t.csv", &format!("2024-01-02T00:00:00Z,EURUSD,1.1,1.1001\n{}", "x".repeat(100_000)));
        let e = load(&[p], &SYMBOLS, &TimeZone::UTC, true).expect_err("too long").0;
        assert!(e.contains("t.csv:2: a line longer than 4096 bytes"), "{e}");
        let zero = Stream::open(&[PathBuf::from("/dev/zero")], &SYMBOLS, &TimeZone::UTC, false, Window::default());
        assert!(zero.expect_err("not a replay").0.contains("/dev/zero:1: a line longer than"));
    }

    #[test]
    fn a_window_starts_the_stream_at_its_first_row_and_ends_it_before_its_end() {
        let dir = TestDir::new("history-window");
        let rows: String = (0..10).map(|i| format!("2024-01-02T00:00:0{i}Z,EURUSD,1.1,1.1001\n")).collect();
        let p = write(&dir, "t.csv", &rows);
        let window = Window { from: Some(ns("2024-01-02T00:00:03Z")), to: Some(ns("2024-01-02T00:00:07Z")) };
        let mut s = Stream::open(std::slice::from_ref(&p), &SYMBOLS, &TimeZone::UTC, false, window).expect("opens");
        assert_eq!(s.start_unix_ns(), ns("2024-01-02T00:00:03Z"));
        let offsets: Vec<u64> =
            std::iter::from_fn(|| s.next_row().expect("row")).map(|r| r.offset_ns / 1_000_000_000).collect();
        assert_eq!(offsets, [0, 1, 2, 3]);
        assert!(s.read_fraction() > 0.0);
        let empty = Window { from: Some(ns("2025-01-01T00:00:00Z")), to: None };
        let e = Stream::open(&[p], &SYMBOLS, &TimeZone::UTC, false, empty).expect_err("nothing in it").0;
        assert!(e.contains("between --from and --to"), "{e}");
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
