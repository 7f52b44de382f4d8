//! Logging that never makes the engine wait.
//!
//! [`ChannelLogger`] is the process's `log` backend: it formats a record and `try_send`s it into a
//! bounded channel; when the channel is full the record is dropped and counted in
//! `log_records_dropped_total`, so a slow disk or a stuck terminal can never stall trading. The
//! [`LogWriter`] thread drains the channel and writes each record twice: a JSON line to
//! `logging.file` (always; it is the record of truth) and, when `logging.stderr` is set, a
//! human-readable line to stderr through simplelog.
//!
//! Lines reach the file whole or not at all as far as a reader can tell: each batch is written
//! with the end of every record known, so when the disk is full the records not written are
//! counted in `log_records_dropped_total` (and said once on stderr), the next record starts on a
//! fresh line, and writing resumes by itself when space returns. SIGHUP reopens the file (the
//! logrotate convention: `postrotate kill -HUP`) and changes nothing else.

use std::borrow::Cow;
use std::fs::{File, OpenOptions};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use log::{Level, LevelFilter, Log, Metadata, Record};
use prometheus::IntCounter;
use serde::Serialize;
use simplelog::{ColorChoice, ConfigBuilder, TermLogger, TerminalMode};

use crate::support::timefmt::{rfc3339_micros, unix_nanos};

/// A record on its way to the writer.
#[derive(Debug)]
pub struct OwnedRecord {
    pub unix_ns: i128,
    pub level: Level,
    /// A module path, borrowed when the `log` macros give a `'static` one (they always do).
    pub target: Cow<'static, str>,
    pub message: Message,
}

/// Longest formatted message kept inline in a record (longer ones go to the heap).
const INLINE_MESSAGE: usize = 110;

/// A log message as the calling thread hands it over: borrowed when it has no arguments,
/// formatted into the record itself when short (most are), so a log call allocates nothing; on
/// the heap only when long.
pub enum Message {
    Static(&'static str),
    Inline { len: u8, buf: [u8; INLINE_MESSAGE] },
    Heap(String),
}

impl Message {
    /// Formats `args`, inline when the result fits.
    pub fn format(args: &std::fmt::Arguments<'_>) -> Message {
        if let Some(s) = args.as_str() {
            return Message::Static(s);
        }
        struct Fill {
            len: usize,
            buf: [u8; INLINE_MESSAGE],
        }
        impl std::fmt::Write for Fill {
            fn write_str(&mut self, s: &str) -> std::fmt::Result {
                // Whole pieces only, so the buffer always holds valid UTF-8.
                let end = self.len + s.len();
                let dst = self.buf.get_mut(self.len..end).ok_or(std::fmt::Error)?;
                dst.copy_from_slice(s.as_bytes());
                self.len = end;
                Ok(())
            }
        }
        let mut f = Fill { len: 0, buf: [0; INLINE_MESSAGE] };
        match std::fmt::write(&mut f, *args) {
            Ok(()) => Message::Inline { len: f.len as u8, buf: f.buf },
            Err(_) => Message::Heap(args.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Message::Static(s) => s,
            // Filled only with whole `&str` pieces, so this cannot fail; "" rather than panic.
            Message::Inline { len, buf } => std::str::from_utf8(&buf[..*len as usize]).unwrap_or(""),
            Message::Heap(s) => s,
        }
    }
}

impl std::ops::Deref for Message {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Display for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

#[derive(Debug)]
enum Msg {
    Record(OwnedRecord),
    /// Write out everything before this, then acknowledge.
    Flush(SyncSender<()>),
    /// Like `Flush`, then stop the writer.
    Stop(SyncSender<()>),
}

/// The JSON shape of one line of `logs/mt5bot.log`.
#[derive(Debug, Serialize)]
pub struct JsonLine<'a> {
    pub ts: &'a str,
    pub level: &'a str,
    pub target: &'a str,
    pub msg: &'a str,
}

/// The `log` backend. Cloned into the global logger; never blocks in `log`.
#[derive(Debug)]
pub struct ChannelLogger {
    tx: SyncSender<Msg>,
    level: LevelFilter,
    dropped: IntCounter,
}

impl Log for ChannelLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let target = match record.module_path_static() {
            Some(m) if m == record.target() => Cow::Borrowed(m),
            _ => Cow::Owned(record.target().to_owned()),
        };
        let message = Message::format(record.args());
        let rec = OwnedRecord { unix_ns: unix_nanos(), level: record.level(), target, message };
        match self.tx.try_send(Msg::Record(rec)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => self.dropped.inc(),
            // The writer is gone (shutdown): nothing left to write to.
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// Waits (up to 2 s) until everything logged so far is written. Only for shutdown.
    fn flush(&self) {
        let (ack_tx, ack_rx) = mpsc::sync_channel(1);
        if self.tx.send(Msg::Flush(ack_tx)).is_ok() {
            let _ = ack_rx.recv_timeout(Duration::from_secs(2));
        }
    }
}

/// Why logging could not start.
#[derive(Debug)]
pub struct LogSetupError(pub String);

impl std::fmt::Display for LogSetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LogSetupError {}

/// The writer thread's handle.
#[derive(Debug)]
pub struct LogWriter {
    tx: SyncSender<Msg>,
    handle: Option<JoinHandle<()>>,
}

impl LogWriter {
    /// Opens the log file, starts the writer thread and installs the global logger.
    pub fn start(
        file: &Path,
        level: LevelFilter,
        stderr: bool,
        capacity: usize,
        dropped: IntCounter,
        forward: Option<super::log_forward::ForwardHandle>,
    ) -> Result<LogWriter, LogSetupError> {
        let out = open_log_file(file)?;
        // SIGHUP's default action ends the process; from here on it only asks for a reopen.
        let reopen = Arc::new(AtomicBool::new(false));
        signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&reopen))
            .map_err(|e| LogSetupError(format!("cannot handle SIGHUP: {e}")))?;
        let (tx, rx) = mpsc::sync_channel(capacity);
        let term = stderr.then(|| {
            let config = ConfigBuilder::new()
                .set_time_format_rfc3339()
                .set_target_level(LevelFilter::Off)
                .set_thread_level(LevelFilter::Off)
                .build();
            // termcolor's `Auto` only looks at TERM; under systemd or a pipe, colour codes are noise.
            let color = if std::io::stderr().is_terminal() { ColorChoice::Auto } else { ColorChoice::Never };
            TermLogger::new(level, config, TerminalMode::Stderr, color)
        });
        let path = file.to_path_buf();
        let lost = dropped.clone();
        let handle = std::thread::Builder::new()
            .name("mt5bot-log".into())
            .spawn(move || {
                let file = FileSink {
                    out,
                    path,
                    batch: Vec::with_capacity(64 * 1024),
                    ends: Vec::new(),
                    torn: false,
                    failing: false,
                    lost,
                    reopen,
                };
                write_loop(rx, file, term, forward)
            })
            .map_err(|e| LogSetupError(format!("cannot start the log writer thread: {e}")))?;
        log::set_boxed_logger(Box::new(ChannelLogger { tx: tx.clone(), level, dropped }))
            .map_err(|e| LogSetupError(format!("a logger is already installed: {e}")))?;
        log::set_max_level(level);
        Ok(LogWriter { tx, handle: Some(handle) })
    }

    /// Flushes what was logged and stops the writer. The global logger stays installed but
    /// discards records from then on.
    pub fn finish(mut self) {
        let (ack_tx, ack_rx) = mpsc::sync_channel(1);
        if self.tx.send(Msg::Stop(ack_tx)).is_ok() && ack_rx.recv_timeout(Duration::from_secs(5)).is_ok() {
            if let Some(h) = self.handle.take() {
                let _ = h.join();
            }
        }
    }
}

fn open_log_file(file: &Path) -> Result<File, LogSetupError> {
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            LogSetupError(format!("cannot create the log folder {} (logging.file): {e}", dir.display()))
        })?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .map_err(|e| LogSetupError(format!("cannot open the log file {} (logging.file): {e}", file.display())))
}

/// The writer's poll interval right after records, and when idle for a while.
const IDLE_MIN: Duration = Duration::from_millis(1);
const IDLE_MAX: Duration = Duration::from_millis(8);

/// The log file and the batch of whole lines on their way to it.
struct FileSink {
    out: File,
    path: PathBuf,
    batch: Vec<u8>,
    /// Where each record of `batch` ends.
    ends: Vec<usize>,
    /// A write stopped inside a line: the next one starts with a newline.
    torn: bool,
    /// Writes are failing (said once on stderr until they work again).
    failing: bool,
    lost: IntCounter,
    reopen: Arc<AtomicBool>,
}

impl FileSink {
    fn push(&mut self, line: &JsonLine<'_>) {
        let start = self.batch.len();
        if serde_json::to_writer(&mut self.batch, line).is_err() {
            self.batch.truncate(start);
            self.lost.inc();
            return;
        }
        self.batch.push(b'\n');
        self.ends.push(self.batch.len());
    }

    /// Writes the batch; records that did not reach the file are counted as lost.
    fn flush(&mut self) {
        if self.reopen.swap(false, Ordering::Relaxed) {
            self.reopen_file();
        }
        if self.batch.is_empty() {
            return;
        }
        if self.torn {
            match self.out.write(b"\n") {
                Ok(1) => self.torn = false,
                _ => return self.fail_batch(None, 0, None),
            }
        }
        // Where the file ends before this batch: a write cut short is cut back to a line's end.
        let start = self.out.metadata().map(|m| m.len()).ok();
        let mut written = 0;
        while written < self.batch.len() {
            match self.out.write(&self.batch[written..]) {
                Ok(0) => return self.fail_batch(start, written, Some(std::io::ErrorKind::WriteZero.into())),
                Ok(n) => written += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return self.fail_batch(start, written, Some(e)),
            }
        }
        if self.failing {
            self.failing = false;
            eprintln!("mt5bot: writing the log file {} works again", self.path.display());
        }
        self.batch.clear();
        self.ends.clear();
    }

    fn fail_batch(&mut self, start: Option<u64>, written: usize, e: Option<std::io::Error>) {
        let whole = self.ends.iter().filter(|&&end| end <= written).count();
        let lost = self.ends.len() - whole;
        self.lost.inc_by(lost as u64);
        let boundary = whole.checked_sub(1).map_or(0, |i| self.ends[i]);
        if written > boundary {
            // Part of a line reached the file: take it back, or else start the next on a fresh line.
            let cut = start.map(|s| self.out.set_len(s + boundary as u64));
            self.torn = !matches!(cut, Some(Ok(())));
        }
        if !self.failing {
            self.failing = true;
            let why = e.map_or_else(|| "cannot start a fresh line".to_owned(), |e| e.to_string());
            eprintln!(
                "mt5bot: cannot write the log file {}: {why}; records are counted in log_records_dropped_total \
                 until writing works again",
                self.path.display()
            );
        }
        self.batch.clear();
        self.ends.clear();
    }

    fn reopen_file(&mut self) {
        match open_log_file(&self.path) {
            Ok(f) => {
                self.out = f;
                self.torn = false;
                let now = unix_nanos();
                let ts = rfc3339_micros(now);
                let msg = "log file reopened (SIGHUP)";
                let line = JsonLine { ts: &ts, level: "INFO", target: "mt5bot::telemetry::logging", msg };
                let mut keep = std::mem::take(&mut self.batch);
                let ends = std::mem::take(&mut self.ends);
                self.push(&line);
                // The reopen line goes first, then what was waiting.
                let offset = self.batch.len();
                self.batch.append(&mut keep);
                self.ends.extend(ends.into_iter().map(|e| e + offset));
            }
            Err(e) => eprintln!("mt5bot: SIGHUP: {e}; still writing to the file opened before"),
        }
    }
}

fn write_loop(
    rx: Receiver<Msg>,
    mut file: FileSink,
    term: Option<Box<TermLogger>>,
    forward: Option<super::log_forward::ForwardHandle>,
) {
    let mut stop = false;
    let mut idle = IDLE_MIN;
    while !stop {
        // Polled, never waited on: a sender then never has a sleeping receiver to wake, so a log
        // call on the engine thread never makes a futex syscall. Idle, the poll slows to
        // IDLE_MAX; records wait at most that long.
        let msg = match rx.try_recv() {
            Ok(m) => {
                idle = IDLE_MIN;
                m
            }
            Err(TryRecvError::Empty) => {
                if file.reopen.load(Ordering::Relaxed) {
                    file.flush();
                }
                std::thread::sleep(idle);
                idle = (idle * 2).min(IDLE_MAX);
                continue;
            }
            Err(TryRecvError::Disconnected) => break,
        };
        let mut acks = Vec::new();
        let mut next = Some(msg);
        // Write everything already waiting, then flush once.
        while let Some(m) = next.take() {
            match m {
                Msg::Record(rec) => {
                    let ts = rfc3339_micros(rec.unix_ns);
                    let line = JsonLine { ts: &ts, level: rec.level.as_str(), target: &rec.target, msg: &rec.message };
                    file.push(&line);
                    if file.batch.len() >= 64 * 1024 {
                        file.flush();
                    }
                    if let Some(t) = &term {
                        t.log(
                            &Record::builder()
                                .args(format_args!("{}", rec.message))
                                .level(rec.level)
                                .target(&rec.target)
                                .build(),
                        );
                    }
                    if let Some(f) = &forward {
                        f.offer(super::log_forward::ForwardRecord::new(
                            rec.unix_ns,
                            rec.level,
                            &rec.target,
                            &rec.message,
                        ));
                    }
                }
                Msg::Flush(ack) => acks.push(ack),
                Msg::Stop(ack) => {
                    acks.push(ack);
                    stop = true;
                    break;
                }
            }
            next = rx.try_recv().ok();
        }
        file.flush();
        if let Some(t) = &term {
            t.flush();
        }
        for a in acks {
            let _ = a.send(());
        }
    }
    file.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(args: std::fmt::Arguments<'_>) -> Message {
        Message::format(&args)
    }

    #[test]
    fn messages_are_borrowed_inline_or_on_the_heap_and_always_whole() {
        assert!(matches!(msg(format_args!("no arguments")), Message::Static("no arguments")));
        // Variables, not literals: the compiler folds literal arguments into the string.
        let (trades, open) = (std::hint::black_box(12), std::hint::black_box(0));
        let m = msg(format_args!("status: trades={trades} open_orders={open}"));
        assert!(matches!(m, Message::Inline { .. }));
        assert_eq!(&*m, "status: trades=12 open_orders=0");
        let fits = "x".repeat(INLINE_MESSAGE - 1);
        let m = msg(format_args!("{fits}{}", std::hint::black_box(7)));
        assert!(matches!(m, Message::Inline { .. }));
        assert_eq!(m.as_str().len(), INLINE_MESSAGE);
        let m = msg(format_args!("{fits}{}", std::hint::black_box(78)));
        assert!(matches!(m, Message::Heap(_)));
        assert_eq!(m.as_str(), format!("{fits}78"));
        // A multi-byte character that would straddle the end goes to the heap whole.
        let m = msg(format_args!("{}{}", "y".repeat(INLINE_MESSAGE - 1), 'é'));
        assert_eq!(m.to_string(), format!("{}é", "y".repeat(INLINE_MESSAGE - 1)));
        let quote = std::hint::black_box("\"b");
        assert_eq!(format!("{:?}", msg(format_args!("a{quote}"))), "\"a\\\"b\"");
    }
}
