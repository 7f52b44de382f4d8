//! The order journal: a write-ahead log of what the engine decided between two checkpoints.
//!
//! Every signal taken into the queue (`Queued`), every order handed to the venue (`Sent`), every
//! fill booked (`Fill`, adopted fills included) and every order or queued signal that ended
//! without one (`Closed`) is appended. The engine thread only copies a fixed-size entry into a
//! bounded channel (no allocation, no lock, no IO); a writer thread takes what has arrived, seals
//! it as one batch, appends it and syncs it (group commit: one `fdatasync` for everything that
//! arrived while the last one ran), then publishes how far the journal is durable. The ingress
//! answers `queued` only once its entry is durable, so a `queued` answer means the signal is on
//! disk: after any crash it is either sent once or refused with a counted reason.
//!
//! Segments: the journal is a series of files beside the checkpoint, `<checkpoint>.journal.<G>`,
//! each holding what happened after checkpoint generation `G` was taken. Taking checkpoint `G`
//! starts segment `G`; once checkpoint `G` is on disk the segments before it are deleted, so the
//! journal never holds more than what happened since the last checkpoint written (compaction).
//! At start the daemon restores the newest checkpoint, replays the segments from its generation
//! on ([`replay`]), writes the result as a new checkpoint and starts a fresh segment; then the
//! venue reconciles (FIX ClOrdID replay and OrderStatusRequest, the MT5 snapshot) before anything
//! is sent, which also closes the few milliseconds an entry may wait for its sync.
//!
//! Format of a segment: frames of `length (4, big endian) | sealed batch`, each batch sealed like a
//! checkpoint (AES-256-GCM under `CHECKPOINT_AES_KEY`, header as associated data) over
//! `generation (8) | batch number (8) | body`. Batch 0's body names the symbols (JSON), the
//! others are entries of [`ENTRY_LEN`] bytes. A batch cannot be moved to another segment or
//! place, or changed, without failing authentication. A torn last frame (the process died while
//! writing it, so it was never synced nor answered) is the end of the segment; a damaged frame
//! before the last is refused like a damaged checkpoint.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::checkpoint::{self, CheckpointError, Keys, OrderState, PositionState, QueuedState, State, TradingRecord};
use super::executor::Position;
use crate::domain::types::{OrderKind, Side, SignalId, SignalSource, StopKind, SymbolId, TradingState, SIGNAL_ID_MAX};
use crate::support::names::QTY_EPSILON;
use crate::telemetry::metrics::Metrics;

/// Magic of a journal batch.
pub const MAGIC: &[u8; 8] = b"MT5BJRNL";
/// Bytes of one entry on disk.
pub const ENTRY_LEN: usize = 80;
/// Entries the channel between the engine and the writer holds.
pub const CHANNEL: usize = 16_384;
/// While more entries than this wait for the writer (the disk is slow or failing), new signals
/// are refused (`journal_behind`): the rest of the channel is kept for orders already decided.
pub const BEHIND: u64 = (CHANNEL / 2) as u64;
/// Entries held for one turn before they go to the writer (more are handed over at once).
const PENDING: usize = 4096;
/// Most entries in one batch.
const MAX_BATCH: usize = CHANNEL;
/// Pause between attempts while the disk refuses a write.
const RETRY: Duration = Duration::from_millis(200);

/// What an entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A signal was taken into the queue.
    Queued = 1,
    /// An order was handed to the venue.
    Sent = 2,
    /// A fill was booked.
    Fill = 3,
    /// An order or queued signal ended without (further) fills: rejected, cancelled or refused.
    Closed = 4,
    /// The trading state changed: the state's code in `qty`, who set it in `id`.
    State = 5,
    /// The stops of the signal or order `id` just journaled (after its `Queued` or `Sent`): the
    /// stop-loss in `qty`, the take-profit in `price`, 0 for none; in `venue_ref` bit 0 says the
    /// stop-loss is in basis points, bit 1 the take-profit.
    Stops = 6,
    /// A position's protective levels changed: stop-loss in `qty`, take-profit in `price`, 0 for
    /// none (both 0: the position carries none).
    Protect = 7,
    /// A commission was booked: the amount (money, positive a cost) in `qty`.
    Commission = 8,
    /// A night's swap was booked: the amount (money, positive a credit) in `qty`.
    Swap = 9,
}

/// One journal entry, fixed-size and `Copy`: what the engine hands the writer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Entry {
    pub kind: Kind,
    pub id: SignalId,
    pub symbol: SymbolId,
    pub side: Side,
    pub order_kind: OrderKind,
    pub source: SignalSource,
    /// Queued and Sent: the quantity ordered; Fill: the quantity filled.
    pub qty: f64,
    /// Queued and Sent: the limit price (0 for market); Fill: the fill price.
    pub price: f64,
    /// Unix time of the event, in nanoseconds.
    pub unix_ns: i64,
    /// Sent: the venue's reference of the order ([`crate::domain::venue::Venue::order_ref`]).
    pub venue_ref: u64,
    /// Sent: the position's stop-loss or take-profit this order rests at the venue for (byte 79:
    /// 1 stop-loss, 2 take-profit, 0 none, as older versions wrote it).
    pub protects: Option<StopKind>,
}

impl Entry {
    fn encode(&self, seq: u64, out: &mut [u8; ENTRY_LEN]) {
        out.fill(0);
        out[0] = self.kind as u8;
        out[1] = match self.side {
            Side::Buy => 0,
            Side::Sell => 1,
        };
        out[2] = match self.order_kind {
            OrderKind::Market => 0,
            OrderKind::Limit => 1,
            OrderKind::Stop => 2,
        };
        out[3] = match self.source {
            SignalSource::Model => 0,
            SignalSource::Ingress => 1,
            SignalSource::Control => 2,
            SignalSource::Protection => 3,
        };
        out[4..6].copy_from_slice(&self.symbol.to_be_bytes());
        let id = self.id.as_str().as_bytes();
        out[6] = id.len() as u8;
        out[7..7 + id.len()].copy_from_slice(id);
        out[39..47].copy_from_slice(&self.qty.to_bits().to_be_bytes());
        out[47..55].copy_from_slice(&self.price.to_bits().to_be_bytes());
        out[55..63].copy_from_slice(&self.unix_ns.to_be_bytes());
        out[63..71].copy_from_slice(&seq.to_be_bytes());
        out[71..79].copy_from_slice(&self.venue_ref.to_be_bytes());
        out[79] = match self.protects {
            None => 0,
            Some(StopKind::StopLoss) => 1,
            Some(StopKind::TakeProfit) => 2,
        };
    }

    fn decode(b: &[u8]) -> Option<Entry> {
        let kind = match b[0] {
            1 => Kind::Queued,
            2 => Kind::Sent,
            3 => Kind::Fill,
            4 => Kind::Closed,
            5 => Kind::State,
            6 => Kind::Stops,
            7 => Kind::Protect,
            8 => Kind::Commission,
            9 => Kind::Swap,
            _ => return None,
        };
        let side = match b[1] {
            0 => Side::Buy,
            1 => Side::Sell,
            _ => return None,
        };
        let order_kind = match b[2] {
            0 => OrderKind::Market,
            1 => OrderKind::Limit,
            2 => OrderKind::Stop,
            _ => return None,
        };
        let source = match b[3] {
            0 => SignalSource::Model,
            1 => SignalSource::Ingress,
            2 => SignalSource::Control,
            3 => SignalSource::Protection,
            _ => return None,
        };
        let len = usize::from(b[6]);
        if len > SIGNAL_ID_MAX {
            return None;
        }
        let id = SignalId::parse(std::str::from_utf8(&b[7..7 + len]).ok()?)?;
        let f = |r: std::ops::Range<usize>| u64::from_be_bytes(b[r].try_into().unwrap_or([0; 8]));
        Some(Entry {
            kind,
            id,
            symbol: u16::from_be_bytes([b[4], b[5]]) as SymbolId,
            side,
            order_kind,
            source,
            qty: f64::from_bits(f(39..47)),
            price: f64::from_bits(f(47..55)),
            unix_ns: f(55..63) as i64,
            venue_ref: f(71..79),
            protects: match b[79] {
                0 => None,
                1 => Some(StopKind::StopLoss),
                2 => Some(StopKind::TakeProfit),
                _ => return None,
            },
        })
    }
}

#[derive(Debug, Clone, Copy)]
enum Msg {
    Entry(u64, Entry),
    /// Checkpoint `G` was taken: what follows goes into segment `G`.
    Rotate(u64),
}

/// What the writer tells the engine.
#[derive(Debug, Default)]
struct Shared {
    /// Entries taken off the channel so far.
    taken: AtomicU64,
    /// The highest sequence number synced to disk.
    durable: AtomicU64,
    /// The last write failed and is being retried.
    failing: AtomicBool,
    /// Shutting down: stop retrying a write the disk refuses.
    stopping: AtomicBool,
}

/// Wakes the engine when entries became durable (the reactor's waker).
pub type Wake = Arc<dyn Fn() + Send + Sync>;

/// The engine's end of the journal.
pub struct Journal {
    tx: Option<SyncSender<Msg>>,
    /// Entries of this turn, handed to the writer at its end ([`Journal::flush`]): the writer is
    /// woken once per turn, after the orders went out, not once per entry before them.
    pending: Vec<Msg>,
    shared: Arc<Shared>,
    /// Sequence number of the last entry appended.
    seq: u64,
    sent: u64,
    lost: u64,
    handle: Option<std::thread::JoinHandle<()>>,
    metrics: Metrics,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal").field("seq", &self.seq).field("durable", &self.durable()).finish()
    }
}

impl Journal {
    /// Starts the writer on a fresh segment `generation` beside `checkpoint_path` (any file of that
    /// name is replaced: its content is in the checkpoint just written).
    pub fn start(
        checkpoint_path: &Path,
        generation: u64,
        symbols: Vec<String>,
        keys: Keys,
        metrics: Metrics,
        wake: Option<Wake>,
    ) -> Result<Journal, String> {
        let base = checkpoint_path.to_path_buf();
        let segment = Segment::create(&base, generation, &symbols, &keys)?;
        let shared = Arc::new(Shared::default());
        let (tx, rx) = std::sync::mpsc::sync_channel(CHANNEL);
        let mut writer = Writer {
            base,
            symbols,
            keys,
            segment,
            shared: shared.clone(),
            metrics: metrics.clone(),
            wake,
            frame: Vec::new(),
        };
        let handle = std::thread::Builder::new()
            .name("mt5bot-journal".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| format!("cannot start the journal writer: {e}"))?;
        Ok(Journal {
            tx: Some(tx),
            pending: Vec::with_capacity(PENDING),
            shared,
            seq: 0,
            sent: 0,
            lost: 0,
            handle: Some(handle),
            metrics,
        })
    }

    /// Appends an entry for this turn; returns its sequence number. Never blocks: when the
    /// channel is full at [`Journal::flush`] the entry is lost, counted, and the next checkpoint
    /// (which holds the state anyway) closes the hole.
    #[inline]
    pub fn append(&mut self, entry: Entry) -> u64 {
        self.seq += 1;
        self.push(Msg::Entry(self.seq, entry));
        self.seq
    }

    #[inline]
    fn push(&mut self, msg: Msg) {
        if self.pending.len() == self.pending.capacity() {
            self.flush();
        }
        self.pending.push(msg);
    }

    /// Hands this turn's entries to the writer (the engine calls it once per turn).
    #[inline]
    pub fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let Some(tx) = &self.tx else {
            self.pending.clear();
            return;
        };
        for msg in self.pending.drain(..) {
            match tx.try_send(msg) {
                Ok(()) => self.sent += 1,
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                    self.lost += 1;
                    self.metrics.journal_lost.inc();
                }
            }
        }
    }

    /// Checkpoint `generation` was just taken: what follows goes into its segment.
    pub fn rotate(&mut self, generation: u64) {
        self.push(Msg::Rotate(generation));
        self.flush();
    }

    /// Entries lost since the last call (the channel was full); the caller takes a checkpoint soon.
    pub fn take_lost(&mut self) -> u64 {
        std::mem::take(&mut self.lost)
    }

    /// The sequence number of the last entry appended.
    #[inline]
    pub fn last(&self) -> u64 {
        self.seq
    }

    /// Every entry up to this sequence number is on disk.
    #[inline]
    pub fn durable(&self) -> u64 {
        self.shared.durable.load(Ordering::Acquire)
    }

    /// Too many entries wait for the disk: refuse new signals until it catches up.
    #[inline]
    pub fn is_behind(&self) -> bool {
        (self.sent + self.pending.len() as u64).saturating_sub(self.shared.taken.load(Ordering::Relaxed)) > BEHIND
    }

    /// The last write failed and is being retried.
    pub fn is_failing(&self) -> bool {
        self.shared.failing.load(Ordering::Relaxed)
    }

    /// Syncs what was appended and stops the writer (shutdown). A write the disk still refuses
    /// is given up after a few attempts: the final checkpoint holds the same state.
    pub fn finish(mut self) {
        self.flush();
        self.shared.stopping.store(true, Ordering::Relaxed);
        drop(self.tx.take());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.flush();
        self.shared.stopping.store(true, Ordering::Relaxed);
        drop(self.tx.take());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Where segment `generation` of the checkpoint at `base` lives.
pub fn segment_path(base: &Path, generation: u64) -> PathBuf {
    PathBuf::from(format!("{}.journal.{generation}", base.display()))
}

/// The segments beside the checkpoint at `base`, by generation.
pub fn segments(base: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let dir = base.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let Some(name) = base.file_name().and_then(|n| n.to_str()) else { return Ok(Vec::new()) };
    let prefix = format!("{name}.journal.");
    let mut found = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let file = entry.file_name();
        let Some(g) = file.to_str().and_then(|f| f.strip_prefix(&prefix)).and_then(|g| g.parse::<u64>().ok()) else {
            continue;
        };
        found.push((g, entry.path()));
    }
    found.sort();
    Ok(found)
}

/// Deletes the segments older than checkpoint `generation`, now that it is on disk (compaction).
pub fn remove_before(base: &Path, generation: u64) {
    match segments(base) {
        Ok(list) => {
            for (g, path) in list.into_iter().filter(|(g, _)| *g < generation) {
                if let Err(e) = std::fs::remove_file(&path) {
                    log::warn!("cannot remove journal segment {} (generation {g}): {e}", path.display());
                }
            }
        }
        Err(e) => log::warn!("cannot list the journal segments beside {}: {e}", base.display()),
    }
}

/// Deletes every segment (they are all in the checkpoint just written).
pub fn remove_all(base: &Path) {
    remove_before(base, u64::MAX);
}

struct Segment {
    file: File,
    generation: u64,
    batches: u64,
    /// Length of the file up to the end of the last batch written whole.
    good_len: u64,
}

impl Segment {
    fn create(base: &Path, generation: u64, symbols: &[String], keys: &Keys) -> Result<Segment, String> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = segment_path(base, generation);
        if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(format!(
                "journal segment {} is a symbolic link; segments are replaced, which would replace the link: link the folder instead",
                path.display()
            ));
        }
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| format!("cannot create journal segment {}: {e}", path.display()))?;
        let mut seg = Segment { file, generation, batches: 0, good_len: 0 };
        let body = serde_json::to_vec(&serde_json::json!({ "symbols": symbols })).unwrap_or_default();
        let mut frame = Vec::new();
        seal_frame(generation, 0, &body, keys, &mut frame).map_err(|e| format!("cannot seal the journal: {e}"))?;
        seg.append(&frame).map_err(|e| format!("cannot write journal segment {}: {e}", path.display()))?;
        seg.batches = 1;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(seg)
    }

    /// Appends one frame and syncs it; on failure the file is cut back to its last whole batch.
    fn append(&mut self, frame: &[u8]) -> io::Result<()> {
        let result = self.file.write_all(frame).and_then(|()| self.file.sync_data());
        match result {
            Ok(()) => {
                self.good_len += frame.len() as u64;
                Ok(())
            }
            Err(e) => {
                use std::io::Seek;
                let _ = self.file.set_len(self.good_len);
                let _ = self.file.seek(io::SeekFrom::Start(self.good_len));
                Err(e)
            }
        }
    }
}

fn seal_frame(generation: u64, batch: u64, body: &[u8], keys: &Keys, out: &mut Vec<u8>) -> Result<(), CheckpointError> {
    let mut plain = Vec::with_capacity(16 + body.len());
    plain.extend_from_slice(&generation.to_be_bytes());
    plain.extend_from_slice(&batch.to_be_bytes());
    plain.extend_from_slice(body);
    let sealed = checkpoint::seal_with(MAGIC, &plain, keys)?;
    out.clear();
    out.extend_from_slice(&(sealed.len() as u32).to_be_bytes());
    out.extend_from_slice(&sealed);
    Ok(())
}

struct Writer {
    base: PathBuf,
    symbols: Vec<String>,
    keys: Keys,
    segment: Segment,
    shared: Arc<Shared>,
    metrics: Metrics,
    wake: Option<Wake>,
    frame: Vec<u8>,
}

impl Writer {
    fn run(&mut self, rx: Receiver<Msg>) {
        let mut pending: Vec<(u64, Entry)> = Vec::with_capacity(MAX_BATCH);
        while let Ok(first) = rx.recv() {
            let mut next = Some(first);
            let mut taken = 0u64;
            while let Some(msg) = next.take() {
                taken += 1;
                match msg {
                    Msg::Entry(seq, e) => pending.push((seq, e)),
                    Msg::Rotate(g) => {
                        self.commit(&mut pending);
                        self.rotate(g);
                    }
                }
                if pending.len() < MAX_BATCH {
                    next = rx.try_recv().ok();
                }
            }
            self.shared.taken.fetch_add(taken, Ordering::Relaxed);
            self.commit(&mut pending);
        }
        self.commit(&mut pending);
    }

    /// Seals, appends and syncs `pending` as one batch, retrying while the disk refuses.
    fn commit(&mut self, pending: &mut Vec<(u64, Entry)>) {
        let Some(&(last, _)) = pending.last() else { return };
        let mut body = Vec::with_capacity(pending.len() * ENTRY_LEN);
        let mut buf = [0u8; ENTRY_LEN];
        for (seq, e) in pending.iter() {
            e.encode(*seq, &mut buf);
            body.extend_from_slice(&buf);
        }
        let mut attempts = 0u32;
        loop {
            let started = Instant::now();
            let written = seal_frame(self.segment.generation, self.segment.batches, &body, &self.keys, &mut self.frame)
                .map_err(|e| e.to_string())
                .and_then(|()| self.segment.append(&self.frame).map_err(|e| e.to_string()));
            match written {
                Ok(()) => {
                    self.metrics.journal_sync.observe(started.elapsed().as_secs_f64());
                    self.metrics.journal_entries.inc_by(pending.len() as u64);
                    self.metrics.journal_bytes.set(self.segment.good_len as i64);
                    self.segment.batches += 1;
                    if self.shared.failing.swap(false, Ordering::Relaxed) {
                        log::warn!("journal writes succeed again ({} failed attempts)", attempts);
                    }
                    break;
                }
                Err(e) => {
                    attempts += 1;
                    self.metrics.journal_failures.inc();
                    if !self.shared.failing.swap(true, Ordering::Relaxed) {
                        log::error!(
                            "cannot write the order journal {}: {e}; new signals are refused (journal_behind) once {BEHIND} entries wait, retrying",
                            segment_path(&self.base, self.segment.generation).display()
                        );
                    }
                    if self.shared.stopping.load(Ordering::Relaxed) && attempts >= 5 {
                        log::error!(
                            "giving up on {} journal entries at shutdown; the final checkpoint holds the same state",
                            pending.len()
                        );
                        pending.clear();
                        return;
                    }
                    std::thread::sleep(RETRY);
                }
            }
        }
        pending.clear();
        self.shared.durable.store(last, Ordering::Release);
        if let Some(wake) = &self.wake {
            wake();
        }
    }

    fn rotate(&mut self, generation: u64) {
        let mut attempts = 0u32;
        loop {
            match Segment::create(&self.base, generation, &self.symbols, &self.keys) {
                Ok(seg) => {
                    self.segment = seg;
                    return;
                }
                Err(e) => {
                    attempts += 1;
                    self.metrics.journal_failures.inc();
                    if attempts == 1 {
                        log::error!("{e}; retrying (entries keep going to the previous segment meanwhile)");
                    }
                    if attempts >= 3 {
                        // The previous segment stays in use; it is replayed from its own
                        // generation, which is older, so nothing is skipped.
                        return;
                    }
                    std::thread::sleep(RETRY);
                }
            }
        }
    }
}

/// Why a journal cannot be replayed; each message says what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JournalError {
    Io(String),
    /// A batch before the last failed authentication or does not belong where it is.
    Damaged {
        path: String,
        why: String,
    },
    /// A segment between the checkpoint and the newest one is missing.
    Gap {
        missing: u64,
        path: String,
    },
}

const JOURNAL_FIX: &str = "restore a backup of the state folder (checkpoint and journal together), or start from the checkpoint alone with `mt5bot run --accept-rollback` (orders after it are then known only from the venue)";

impl std::fmt::Display for JournalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JournalError::Io(why) => f.write_str(why),
            JournalError::Damaged { path, why } => {
                write!(f, "the order journal {path} is damaged ({why}); {JOURNAL_FIX}")
            }
            JournalError::Gap { missing, path } => {
                write!(f, "the order journal segment {path} (generation {missing}) is missing though later ones exist; {JOURNAL_FIX}")
            }
        }
    }
}

impl std::error::Error for JournalError {}

/// One segment read back.
#[derive(Debug, Default)]
pub struct SegmentRead {
    pub symbols: Vec<String>,
    pub entries: Vec<Entry>,
    /// A torn last batch was found and ignored (never synced, never answered).
    pub torn_tail: bool,
}

/// Reads one segment.
pub fn read_segment(path: &Path, generation: u64, keys: &Keys) -> Result<SegmentRead, JournalError> {
    let display = path.display().to_string();
    let bytes =
        std::fs::read(path).map_err(|e| JournalError::Io(format!("cannot read the order journal {display}: {e}")))?;
    let damaged = |why: String| JournalError::Damaged { path: display.clone(), why };
    let mut out = SegmentRead::default();
    let mut at = 0usize;
    let mut batch = 0u64;
    while at < bytes.len() {
        let rest = &bytes[at..];
        let len = match rest.get(..4) {
            Some(l) => u32::from_be_bytes([l[0], l[1], l[2], l[3]]) as usize,
            None => {
                out.torn_tail = true;
                break;
            }
        };
        let Some(frame) = rest.get(4..4 + len) else {
            out.torn_tail = true;
            break;
        };
        let last = at + 4 + len == bytes.len();
        let plain = match checkpoint::open_with(MAGIC, frame, keys) {
            Ok((p, _)) => p,
            Err(_) if last => {
                out.torn_tail = true;
                break;
            }
            Err(e) => return Err(damaged(format!("batch {batch}: {e}"))),
        };
        if plain.len() < 16 {
            return Err(damaged(format!("batch {batch} is too short")));
        }
        let g = u64::from_be_bytes(plain[..8].try_into().unwrap_or_default());
        let b = u64::from_be_bytes(plain[8..16].try_into().unwrap_or_default());
        if g != generation || b != batch {
            return Err(damaged(format!(
                "batch {batch} says it is batch {b} of generation {g}, not of generation {generation}: it was moved"
            )));
        }
        let body = &plain[16..];
        if batch == 0 {
            let v: serde_json::Value =
                serde_json::from_slice(body).map_err(|e| damaged(format!("unreadable symbol list: {e}")))?;
            out.symbols = v["symbols"]
                .as_array()
                .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect())
                .unwrap_or_default();
        } else {
            if body.len() % ENTRY_LEN != 0 {
                return Err(damaged(format!("batch {batch} is not a whole number of entries")));
            }
            for (i, chunk) in body.chunks_exact(ENTRY_LEN).enumerate() {
                let e =
                    Entry::decode(chunk).ok_or_else(|| damaged(format!("batch {batch} entry {i} is not readable")))?;
                out.entries.push(e);
            }
        }
        batch += 1;
        at += 4 + len;
    }
    Ok(out)
}

/// What a replay did, for the start-up log.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Replayed {
    pub segments: usize,
    pub entries: usize,
    pub queued: usize,
    pub sent: usize,
    pub fills: usize,
    pub closed: usize,
    /// Changes of the trading state.
    pub states: usize,
    pub torn_tails: usize,
    /// Orders that ended after the checkpoint, with the quantity filled: the venue must not book
    /// a repeated report for them.
    pub settled: Vec<(SignalId, f64)>,
}

/// Replays the segments from `state.generation` on into `state`.
pub fn replay(base: &Path, state: &mut State, keys: &Keys) -> Result<Replayed, JournalError> {
    let list = segments(base)
        .map_err(|e| JournalError::Io(format!("cannot list the order journal beside {}: {e}", base.display())))?;
    let mut done = Replayed::default();
    let mut index = ReplayIndex::new(state);
    let from = state.generation;
    let mut expect = from;
    for (g, path) in list.into_iter().filter(|(g, _)| *g >= from) {
        if g != expect && done.segments > 0 {
            return Err(JournalError::Gap { missing: expect, path: segment_path(base, expect).display().to_string() });
        }
        expect = g + 1;
        let seg = read_segment(&path, g, keys)?;
        done.segments += 1;
        done.torn_tails += usize::from(seg.torn_tail);
        for e in &seg.entries {
            let Some(symbol) = seg.symbols.get(e.symbol as usize) else {
                return Err(JournalError::Damaged {
                    path: path.display().to_string(),
                    why: format!("entry for symbol number {} of a list of {}", e.symbol, seg.symbols.len()),
                });
            };
            apply(state, e, symbol, &mut done, &mut index);
        }
    }
    index.finish(state);
    Ok(done)
}

/// Lookups a replay needs per entry, so a journal of many orders replays in linear time: queued
/// signals taken out (removed once, at the end, keeping the order of the rest) and where each
/// settled order is in `Replayed::settled`.
#[derive(Debug, Default)]
struct ReplayIndex {
    /// Occurrences of an id in `state.queued` not yet taken out, and those taken out.
    queued: HashMap<String, (usize, usize)>,
    settled: HashMap<SignalId, usize>,
}

impl ReplayIndex {
    fn new(state: &State) -> ReplayIndex {
        let mut index = ReplayIndex::default();
        for q in &state.queued {
            index.queued.entry(q.id.clone()).or_default().0 += 1;
        }
        index
    }

    fn queue(&mut self, id: &str) {
        self.queued.entry(id.to_owned()).or_default().0 += 1;
    }

    /// The signal `id` left the queue (sent or closed), if it was in it.
    fn unqueue(&mut self, id: &str) {
        if let Some((live, gone)) = self.queued.get_mut(id) {
            if *live > 0 {
                *live -= 1;
                *gone += 1;
            }
        }
    }

    fn settle(&mut self, done: &mut Replayed, id: SignalId, filled: f64) {
        match self.settled.get(&id) {
            Some(&i) => done.settled[i].1 += filled,
            None => {
                self.settled.insert(id, done.settled.len());
                done.settled.push((id, filled));
            }
        }
    }

    /// Takes the signals that left the queue out of it: the earliest occurrences of each id.
    fn finish(mut self, state: &mut State) {
        state.queued.retain(|q| match self.queued.get_mut(&q.id) {
            Some((_, gone)) if *gone > 0 => {
                *gone -= 1;
                false
            }
            _ => true,
        });
    }
}

fn side_name(s: Side) -> &'static str {
    s.as_str()
}

/// Applies one entry to a checkpoint's state, as the engine applied it when it happened.
fn apply(state: &mut State, e: &Entry, symbol: &str, done: &mut Replayed, index: &mut ReplayIndex) {
    let id = e.id.as_str();
    done.entries += 1;
    let remember = |state: &mut State| {
        // Times stay beside their ids; checkpoints of versions without them get the restore's.
        if state.recent_id_times.len() == state.recent_ids.len() {
            state.recent_id_times.push((e.unix_ns / 1_000_000_000).max(0) as u32);
        }
        state.recent_ids.push(id.to_owned());
    };
    match e.kind {
        Kind::Queued => {
            done.queued += 1;
            remember(state);
            index.queue(id);
            state.queued.push(QueuedState {
                id: id.to_owned(),
                symbol: symbol.to_owned(),
                side: side_name(e.side).to_owned(),
                kind: e.order_kind.as_str().to_owned(),
                qty: e.qty,
                price: e.price,
                source: e.source.as_str().to_owned(),
                queued_at_unix_ns: e.unix_ns,
                sl: 0.0,
                tp: 0.0,
                sl_bps: 0.0,
                tp_bps: 0.0,
            });
        }
        Kind::Sent => {
            done.sent += 1;
            remember(state);
            index.unqueue(id);
            state.open_orders.push(OrderState {
                client_id: id.to_owned(),
                symbol: symbol.to_owned(),
                side: side_name(e.side).to_owned(),
                kind: e.order_kind.as_str().to_owned(),
                qty: e.qty,
                filled: 0.0,
                price: e.price,
                state: "sent".into(),
                venue_ref: e.venue_ref,
                sent_at_unix_ns: e.unix_ns,
                sl: 0.0,
                tp: 0.0,
                protects: e.protects.map(|k| k.as_str().to_owned()).unwrap_or_default(),
            });
        }
        Kind::Fill => {
            done.fills += 1;
            remember(state);
            state.trades += 1;
            let signed = if e.side == Side::Sell { -e.qty } else { e.qty };
            match state.positions.iter_mut().find(|p| p.symbol == symbol) {
                Some(p) => apply_fill(p, signed, e.price),
                None => {
                    let mut p = PositionState {
                        symbol: symbol.to_owned(),
                        qty: 0.0,
                        avg_price: 0.0,
                        realized_pnl: 0.0,
                        fills: 0,
                        sl: 0.0,
                        tp: 0.0,
                        realized_money: Some((0.0, 0.0)),
                    };
                    apply_fill(&mut p, signed, e.price);
                    state.positions.push(p);
                }
            }
            match state.open_orders.iter().position(|o| o.client_id == id) {
                Some(i) => {
                    let o = &mut state.open_orders[i];
                    o.filled += e.qty;
                    o.state = "partially_filled".into();
                    if o.filled + QTY_EPSILON >= o.qty {
                        let o = state.open_orders.remove(i);
                        index.settle(done, e.id, o.filled);
                    }
                }
                // Adopted: sent before the checkpoint's process knew of it.
                None => index.settle(done, e.id, e.qty),
            }
        }
        Kind::State => {
            done.states += 1;
            let code = if e.qty.is_finite() && (0.0..=255.0).contains(&e.qty) { e.qty as u8 } else { u8::MAX };
            // An unknown code (a newer version's state) halts: the safe reading of a state not known.
            let known = TradingState::from_code(code);
            state.trading = Some(TradingRecord {
                state: known.unwrap_or(TradingState::Halted).as_str().to_owned(),
                by: id.to_owned(),
                reason: match known {
                    Some(_) => "from the order journal (the reason is in the log)".to_owned(),
                    None => format!("the order journal holds trading state {code}, unknown to this version"),
                },
                since_unix_ns: e.unix_ns,
            });
        }
        Kind::Stops => {
            let (sl_bps, tp_bps) = (e.venue_ref & 1 != 0, e.venue_ref & 2 != 0);
            // It follows the `Queued` or `Sent` of its id: the newest record of that id.
            if let Some(q) = state.queued.iter_mut().rev().find(|q| q.id == id) {
                (q.sl, q.sl_bps) = if sl_bps { (0.0, e.qty) } else { (e.qty, 0.0) };
                (q.tp, q.tp_bps) = if tp_bps { (0.0, e.price) } else { (e.price, 0.0) };
            }
            if let Some(o) = state.open_orders.iter_mut().rev().find(|o| o.client_id == id) {
                (o.sl, o.tp) = (e.qty, e.price);
            }
        }
        Kind::Commission => {
            if e.qty.is_finite() {
                state.commissions += e.qty;
            }
        }
        Kind::Swap => {
            if e.qty.is_finite() {
                state.swaps += e.qty;
            }
        }
        Kind::Protect => match state.positions.iter_mut().find(|p| p.symbol == symbol) {
            Some(p) => (p.sl, p.tp) = (e.qty, e.price),
            None => state.positions.push(PositionState {
                symbol: symbol.to_owned(),
                qty: 0.0,
                avg_price: 0.0,
                realized_pnl: 0.0,
                fills: 0,
                sl: e.qty,
                tp: e.price,
                realized_money: Some((0.0, 0.0)),
            }),
        },
        Kind::Closed => {
            done.closed += 1;
            index.unqueue(id);
            if let Some(i) = state.open_orders.iter().position(|o| o.client_id == id) {
                let o = state.open_orders.remove(i);
                index.settle(done, e.id, o.filled);
            }
        }
    }
}

fn apply_fill(p: &mut PositionState, signed: f64, price: f64) {
    let mut pos = Position { qty: p.qty, avg_price: p.avg_price, realized_pnl: p.realized_pnl, fills: p.fills };
    pos.apply(signed, price);
    p.qty = pos.qty;
    p.avg_price = pos.avg_price;
    p.realized_pnl = pos.realized_pnl;
    p.fills = pos.fills;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keys {
        Keys::new(&crate::support::encoding::base64(&[7u8; 32]), None).expect("keys")
    }

    fn entry(kind: Kind, id: &str, qty: f64, price: f64) -> Entry {
        Entry {
            kind,
            id: SignalId::parse(id).expect("id"),
            symbol: 1,
            side: Side::Buy,
            order_kind: OrderKind::Limit,
            source: SignalSource::Ingress,
            qty,
            price,
            unix_ns: 1_700_000_000_000_000_000,
            venue_ref: 9,
            protects: None,
        }
    }

    #[test]
    fn an_entry_keeps_its_order_kind_and_what_it_protects_and_older_entries_read_as_protecting_nothing() {
        for (kind, protects) in [
            (OrderKind::Stop, Some(StopKind::StopLoss)),
            (OrderKind::Limit, Some(StopKind::TakeProfit)),
            (OrderKind::Market, None),
        ] {
            let e = Entry { order_kind: kind, protects, ..entry(Kind::Sent, "M1-rsl7", 0.5, 1.0795) };
            let mut buf = [0u8; ENTRY_LEN];
            e.encode(3, &mut buf);
            assert_eq!(Entry::decode(&buf), Some(e));
            // What a version without resting orders wrote: byte 79 zero.
            buf[79] = 0;
            assert_eq!(Entry::decode(&buf).map(|d| d.protects), Some(None));
            buf[79] = 9;
            assert_eq!(Entry::decode(&buf), None, "an unknown value is a damaged entry");
        }
    }

    fn start(dir: &crate::support::testdir::TestDir, generation: u64) -> (Journal, PathBuf) {
        let base = dir.join("checkpoint.bin");
        let m = Metrics::new();
        let j = Journal::start(&base, generation, vec!["EURUSD".into(), "XAUUSD".into()], keys(), m, None)
            .expect("journal");
        (j, base)
    }

    fn wait_durable(j: &mut Journal, seq: u64) {
        j.flush();
        let until = Instant::now() + Duration::from_secs(10);
        while j.durable() < seq {
            assert!(Instant::now() < until, "entry {seq} never became durable");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn entries_round_trip_through_a_segment_and_replay_into_the_state() {
        let dir = crate::support::testdir::TestDir::new("journal-rt");
        let (mut j, base) = start(&dir, 5);
        j.append(entry(Kind::Queued, "q-1", 2.0, 1.1));
        j.append(entry(Kind::Queued, "q-2", 1.0, 1.2));
        j.append(entry(Kind::Sent, "q-1", 2.0, 1.1));
        j.append(entry(Kind::Fill, "q-1", 0.5, 1.1));
        let last = j.append(entry(Kind::Closed, "q-2", 0.0, 0.0));
        wait_durable(&mut j, last);
        j.finish();
        let seg = read_segment(&segment_path(&base, 5), 5, &keys()).expect("read");
        assert_eq!(seg.symbols, ["EURUSD", "XAUUSD"]);
        assert_eq!(seg.entries.len(), 5);
        assert_eq!(seg.entries[3], entry(Kind::Fill, "q-1", 0.5, 1.1));
        assert!(!seg.torn_tail);

        let mut state = State { generation: 5, ..State::default() };
        let r = replay(&base, &mut state, &keys()).expect("replay");
        assert_eq!((r.segments, r.entries, r.queued, r.sent, r.fills, r.closed), (1, 5, 2, 1, 1, 1));
        assert!(state.queued.is_empty(), "q-1 was sent, q-2 closed: {:?}", state.queued);
        assert_eq!(state.open_orders.len(), 1);
        assert_eq!((state.open_orders[0].client_id.as_str(), state.open_orders[0].filled), ("q-1", 0.5));
        assert_eq!(state.positions[0].symbol, "XAUUSD");
        assert_eq!(state.positions[0].qty, 0.5);
        assert_eq!(state.trades, 1);
        assert_eq!(state.recent_ids, ["q-1", "q-2", "q-1", "q-1"], "each entry's id, taken again or not");
        assert_eq!(state.recent_id_times, [1_700_000_000; 4]);
        assert_eq!(r.settled, vec![]);
    }

    #[test]
    fn replay_takes_out_exactly_the_queued_signals_that_left_and_keeps_the_order_of_the_rest() {
        let mut state = State::default();
        for id in ["c-1", "c-2"] {
            state.queued.push(QueuedState { id: id.into(), ..QueuedState::default() });
        }
        let (mut done, mut index) = (Replayed::default(), ReplayIndex::new(&state));
        let mut run = |state: &mut State, kind, id: &str, qty| {
            apply(state, &entry(kind, id, qty, 1.0), "EURUSD", &mut done, &mut index);
        };
        for i in 0..3000 {
            run(&mut state, Kind::Queued, &format!("q-{i}"), 1.0);
        }
        for i in (0..3000).filter(|i| i % 3 != 0) {
            run(&mut state, Kind::Sent, &format!("q-{i}"), 1.0);
        }
        run(&mut state, Kind::Closed, "c-1", 0.0);
        run(&mut state, Kind::Closed, "q-0", 0.0);
        // The same id queued again after it left (a short id_retention): only the first copy goes.
        run(&mut state, Kind::Queued, "q-0", 1.0);
        // Closing what never was queued takes nothing out.
        run(&mut state, Kind::Closed, "never", 0.0);
        run(&mut state, Kind::Fill, "q-1", 1.0);
        run(&mut state, Kind::Fill, "q-2", 0.5);
        run(&mut state, Kind::Fill, "q-2", 0.5);
        index.finish(&mut state);
        let left: Vec<&str> = state.queued.iter().map(|q| q.id.as_str()).collect();
        let mut expect = vec!["c-2".to_owned()];
        expect.extend((3..3000).filter(|i| i % 3 == 0).map(|i| format!("q-{i}")));
        expect.push("q-0".into());
        assert_eq!(left, expect);
        let settled: Vec<(&str, f64)> = done.settled.iter().map(|(i, f)| (i.as_str(), *f)).collect();
        assert_eq!(settled, [("q-1", 1.0), ("q-2", 1.0)], "each settled once, with all it filled");
    }

    #[test]
    fn stops_commissions_and_swaps_replay_into_the_state() {
        let dir = crate::support::testdir::TestDir::new("journal-stops");
        let (mut j, base) = start(&dir, 3);
        j.append(entry(Kind::Queued, "w-1", 1.0, 0.0));
        // A queued signal's stops as it gave them: a stop-loss of 40 bps, a take-profit price.
        j.append(Entry { venue_ref: 1, ..entry(Kind::Stops, "w-1", 40.0, 1.2) });
        j.append(entry(Kind::Queued, "w-2", 1.0, 0.0));
        j.append(entry(Kind::Sent, "w-2", 1.0, 0.0));
        j.append(Entry { venue_ref: 0, ..entry(Kind::Stops, "w-2", 1.05, 1.15) });
        j.append(entry(Kind::Protect, "0", 1.0, 0.0));
        j.append(entry(Kind::Commission, "0", 1.5, 0.0));
        j.append(entry(Kind::Commission, "0", 0.25, 0.0));
        j.append(entry(Kind::Swap, "0", -7.5, 0.0));
        j.append(entry(Kind::Swap, "0", 1.25, 0.0));
        let last = j.append(entry(Kind::Protect, "0", 1.05, 1.15));
        wait_durable(&mut j, last);
        j.finish();
        let mut state = State { generation: 3, ..State::default() };
        replay(&base, &mut state, &keys()).expect("replay");
        let q = &state.queued[0];
        assert_eq!((q.id.as_str(), q.sl, q.sl_bps, q.tp, q.tp_bps), ("w-1", 0.0, 40.0, 1.2, 0.0));
        let o = &state.open_orders[0];
        assert_eq!((o.client_id.as_str(), o.sl, o.tp), ("w-2", 1.05, 1.15));
        let p = &state.positions[0];
        assert_eq!((p.symbol.as_str(), p.sl, p.tp), ("XAUUSD", 1.05, 1.15), "the last levels win");
        assert_eq!(state.commissions, 1.75, "commissions booked since the checkpoint add up");
        assert_eq!(state.swaps, -6.25, "and swaps, apart from them");
    }

    #[test]
    fn a_trading_state_change_replays_and_an_unknown_state_reads_as_halted() {
        let dir = crate::support::testdir::TestDir::new("journal-state");
        let (mut j, base) = start(&dir, 2);
        let mut e = entry(Kind::State, "operator", f64::from(TradingState::Reducing.code()), 0.0);
        j.append(e);
        e.id = SignalId::parse("max_daily_loss").expect("id");
        e.qty = f64::from(TradingState::Halted.code());
        let last = j.append(e);
        wait_durable(&mut j, last);
        j.finish();
        let mut state = State { generation: 2, ..State::default() };
        let r = replay(&base, &mut state, &keys()).expect("replay");
        assert_eq!(r.states, 2);
        let t = state.trading.expect("a trading state");
        assert_eq!((t.state.as_str(), t.by.as_str()), ("halted", "max_daily_loss"), "the last change wins");

        let mut state = State::default();
        let (mut done, mut index) = (Replayed::default(), ReplayIndex::new(&state));
        apply(&mut state, &entry(Kind::State, "future", 7.0, 0.0), "EURUSD", &mut done, &mut index);
        let t = state.trading.expect("a trading state");
        assert_eq!(t.state, "halted", "a state this version does not know halts");
        assert!(t.reason.contains("unknown"), "{}", t.reason);
    }

    #[test]
    fn only_segments_from_the_checkpoint_on_replay_and_compaction_removes_the_older() {
        let dir = crate::support::testdir::TestDir::new("journal-seg");
        let (mut j, base) = start(&dir, 3);
        j.append(entry(Kind::Queued, "old", 1.0, 1.0));
        j.rotate(4);
        let last = j.append(entry(Kind::Queued, "new", 1.0, 1.0));
        wait_durable(&mut j, last);
        j.finish();
        assert_eq!(segments(&base).expect("list").iter().map(|s| s.0).collect::<Vec<_>>(), [3, 4]);
        let mut state = State { generation: 4, ..State::default() };
        replay(&base, &mut state, &keys()).expect("replay");
        assert_eq!(state.queued.iter().map(|q| q.id.as_str()).collect::<Vec<_>>(), ["new"]);
        let mut older = State { generation: 3, ..State::default() };
        replay(&base, &mut older, &keys()).expect("replay");
        assert_eq!(older.queued.len(), 2, "a checkpoint older than both replays both");
        remove_before(&base, 4);
        assert_eq!(segments(&base).expect("list").iter().map(|s| s.0).collect::<Vec<_>>(), [4]);
    }

    #[test]
    fn a_torn_last_batch_is_the_end_and_a_damaged_earlier_one_is_refused() {
        let dir = crate::support::testdir::TestDir::new("journal-torn");
        let (mut j, base) = start(&dir, 1);
        let a = j.append(entry(Kind::Queued, "a", 1.0, 1.0));
        wait_durable(&mut j, a);
        let b = j.append(entry(Kind::Queued, "b", 1.0, 1.0));
        wait_durable(&mut j, b);
        j.finish();
        let path = segment_path(&base, 1);
        let whole = std::fs::read(&path).expect("read");
        // Every cut inside the last batch reads as the batches before it.
        let frame = ENTRY_LEN + 16 + checkpoint::HEADER_LEN + 16 + 4;
        for cut in [1, 3, 5, frame / 2, frame - 1] {
            std::fs::write(&path, &whole[..whole.len() - cut]).expect("cut");
            let seg = read_segment(&path, 1, &keys()).expect("torn tail is not an error");
            assert!(seg.torn_tail, "cut {cut}");
            assert_eq!(seg.entries.iter().map(|e| e.id.as_str().to_owned()).collect::<Vec<_>>(), ["a"], "cut {cut}");
        }
        // A flipped bit in the middle batch is damage, not a torn tail.
        let mut bad = whole.clone();
        let mid = whole.len() - frame - frame / 2;
        bad[mid] ^= 0x10;
        std::fs::write(&path, &bad).expect("write");
        let e = read_segment(&path, 1, &keys()).expect_err("damage");
        assert!(e.to_string().contains("damaged") && e.to_string().contains("--accept-rollback"), "{e}");
        // A segment renamed to another generation is refused.
        std::fs::write(&path, &whole).expect("write");
        std::fs::rename(&path, segment_path(&base, 2)).expect("rename");
        let e = read_segment(&segment_path(&base, 2), 2, &keys()).expect_err("moved");
        assert!(e.to_string().contains("moved"), "{e}");
        // The wrong key reads nothing.
        let other = Keys::new(&crate::support::encoding::base64(&[9u8; 32]), None).expect("keys");
        assert!(read_segment(&segment_path(&base, 2), 2, &other).is_err());
    }

    #[test]
    fn a_symlink_at_a_segment_path_is_refused_never_followed() {
        let dir = crate::support::testdir::TestDir::new("journal-link");
        let base = dir.join("checkpoint.bin");
        let target = dir.join("elsewhere");
        std::fs::write(&target, b"keep me").expect("target");
        std::os::unix::fs::symlink(&target, segment_path(&base, 3)).expect("symlink");
        let e = Journal::start(&base, 3, vec!["EURUSD".into()], keys(), Metrics::new(), None).expect_err("refused");
        assert!(e.contains("symbolic link"), "{e}");
        assert_eq!(std::fs::read(&target).expect("target"), b"keep me", "the link's target is untouched");
    }

    #[test]
    fn a_missing_segment_between_two_is_refused() {
        let dir = crate::support::testdir::TestDir::new("journal-gap");
        let (mut j, base) = start(&dir, 1);
        j.rotate(2);
        j.rotate(3);
        let last = j.append(entry(Kind::Queued, "x", 1.0, 1.0));
        wait_durable(&mut j, last);
        j.finish();
        std::fs::remove_file(segment_path(&base, 2)).expect("remove");
        let mut state = State { generation: 1, ..State::default() };
        let e = replay(&base, &mut state, &keys()).expect_err("gap");
        assert!(matches!(e, JournalError::Gap { missing: 2, .. }), "{e}");
    }

    #[test]
    fn fills_of_orders_before_the_checkpoint_settle_them_and_adopted_fills_book_once() {
        let dir = crate::support::testdir::TestDir::new("journal-fill");
        let (mut j, base) = start(&dir, 1);
        j.append(entry(Kind::Fill, "restored", 1.0, 2.0));
        let last = j.append(entry(Kind::Fill, "adopted", 0.5, 3.0));
        wait_durable(&mut j, last);
        j.finish();
        let mut state = State {
            generation: 1,
            open_orders: vec![OrderState {
                client_id: "restored".into(),
                symbol: "XAUUSD".into(),
                side: "buy".into(),
                kind: "limit".into(),
                qty: 1.0,
                filled: 0.0,
                price: 2.0,
                state: "acknowledged".into(),
                venue_ref: 0,
                sent_at_unix_ns: 0,
                sl: 0.0,
                tp: 0.0,
                protects: String::new(),
            }],
            ..State::default()
        };
        let r = replay(&base, &mut state, &keys()).expect("replay");
        assert!(state.open_orders.is_empty());
        assert_eq!(state.positions[0].qty, 1.5);
        assert_eq!(state.trades, 2);
        let settled: Vec<(String, f64)> = r.settled.iter().map(|(i, f)| (i.as_str().to_owned(), *f)).collect();
        assert_eq!(settled, [("restored".to_owned(), 1.0), ("adopted".to_owned(), 0.5)]);
    }

    #[test]
    fn a_full_channel_loses_entries_counts_them_and_never_blocks() {
        let dir = crate::support::testdir::TestDir::new("journal-full");
        let (mut j, _base) = start(&dir, 1);
        // Stop the writer from draining by dropping its receiver side indirectly: a journal whose
        // writer is gone reports every append as lost.
        j.shared.stopping.store(true, Ordering::Relaxed);
        let tx = j.tx.take();
        drop(tx);
        if let Some(h) = j.handle.take() {
            h.join().expect("writer ends");
        }
        let (tx, _rx) = std::sync::mpsc::sync_channel(2);
        j.tx = Some(tx);
        for i in 0..5 {
            j.append(entry(Kind::Queued, &format!("f{i}"), 1.0, 1.0));
        }
        j.flush();
        assert_eq!(j.take_lost(), 3, "two fit, three are lost and counted");
        assert_eq!(j.metrics.journal_lost.get(), 3);
        assert!(!j.is_behind(), "two waiting is far from the limit");
    }
}
