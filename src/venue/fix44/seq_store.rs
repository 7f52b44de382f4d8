//! The persisted sequence numbers: one small file rewritten in place, so a restart (or a SIGKILL)
//! logs on with the numbers the counterparty expects.
//!
//! The file is mapped into memory: saving the numbers before an order's bytes go out is a store
//! of 63 bytes into the page cache, not a system call, so a NewOrderSingle costs the socket's
//! write alone. The kernel owns those pages: what was stored survives the process, SIGKILL
//! included, exactly as a `write(2)` would, and like it reaches the disk when the kernel writes
//! it back (neither is synced per order). Where the file cannot be mapped, each save is a
//! `pwrite`. Nothing else may shorten the file while mt5bot runs (a mapped page past its end
//! would stop the process); the operator's way to change the numbers is to stop mt5bot first.

use super::*;

/// Bytes of the record: three 20-digit numbers, spaces, a newline.
const RECORD: usize = 63;

/// The persisted sequence numbers: one small file rewritten in place.
#[derive(Debug)]
pub(super) struct SeqStore {
    pub(super) file: File,
    pub(super) path: PathBuf,
    pub(super) saved: SeqNums,
    pub(super) failed: bool,
    /// Engine time of the last lazy save of the expected number.
    pub(super) saved_at: Nanos,
    /// The start (Unix seconds) of the schedule's session period these numbers belong to; 0 when
    /// unknown (no schedule, or a file from before schedules).
    pub(super) period: i64,
    saved_period: i64,
    /// Write system calls on the file so far (none while it is mapped).
    pub(super) writes: u64,
    /// The file's record, mapped; `None` where the file could not be mapped.
    map: Option<memmap2::MmapMut>,
}

impl SeqStore {
    pub(super) fn open(dir: &Path, sender: &str, target: &str) -> Result<(SeqStore, SeqNums), String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create venue.fix44.state_dir {}: {e}", dir.display()))?;
        let path = dir.join(format!("fix44-{sender}-{target}.seqnums"));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let mut text = String::new();
        (&file).read_to_string(&mut text).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let (seqs, period) = if text.trim().is_empty() {
            (SeqNums::default(), 0)
        } else {
            let mut it = text.split_whitespace().map(str::parse::<u64>);
            match (it.next(), it.next(), it.next(), it.next()) {
                (Some(Ok(o)), Some(Ok(i)), p, None) if o >= 1 && i >= 1 && !matches!(p, Some(Err(_))) => {
                    (SeqNums { next_out: o, next_in: i }, p.and_then(Result::ok).unwrap_or(0) as i64)
                }
                _ => {
                    return Err(format!(
                        "{} is not a sequence-number file (expected two numbers: next to send, next expected, \
                         and the session period's start); restore it, or agree a sequence reset with the broker \
                         and delete it",
                        path.display()
                    ))
                }
            }
        };
        let mut store = SeqStore {
            file,
            path,
            saved: seqs,
            failed: false,
            saved_at: 0,
            period,
            saved_period: period,
            writes: 0,
            map: None,
        };
        // The record at its full width (an empty file, or one from a version that wrote two
        // numbers), written whole before the file is mapped: nothing shorter is ever on disk.
        let len = store.file.metadata().map_err(|e| format!("cannot read {}: {e}", store.path.display()))?.len();
        if len != RECORD as u64 {
            store.write_record(&record(seqs, period));
            store.file.set_len(RECORD as u64).map_err(|e| format!("cannot size {}: {e}", store.path.display()))?;
        }
        store.map = map(&store.file)
            .map_err(|e| {
                log::warn!(
                    "cannot map {} into memory ({e}); each save of the sequence numbers is a write instead",
                    store.path.display()
                )
            })
            .ok();
        Ok((store, seqs))
    }

    /// Writes `s` when it (or the period) changed. Fixed width, so the file never needs
    /// truncating.
    pub(super) fn save(&mut self, s: SeqNums) {
        if s == self.saved && self.period == self.saved_period {
            return;
        }
        self.save_now(s);
    }

    /// Writes `s` and the period now.
    pub(super) fn save_now(&mut self, s: SeqNums) {
        let buf = record(s, self.period);
        if let Some(map) = self.map.as_mut() {
            map[..RECORD].copy_from_slice(&buf);
            self.saved = s;
            self.saved_period = self.period;
            return;
        }
        if self.write_record(&buf) {
            self.saved = s;
            self.saved_period = self.period;
        }
    }

    /// `pwrite`s the record at the start of the file; false (logged once) when it failed.
    fn write_record(&mut self, buf: &[u8; RECORD]) -> bool {
        self.writes += 1;
        match self.file.write_all_at(buf, 0) {
            Ok(()) => {
                self.failed = false;
                true
            }
            Err(e) => {
                if !self.failed {
                    log::error!(
                        "cannot write FIX sequence numbers to {}: {e}; a restart now would reuse sequence numbers",
                        self.path.display()
                    );
                }
                self.failed = true;
                false
            }
        }
    }
}

/// The file's text for `s` and `period`: fixed width, so it never needs truncating.
fn record(s: SeqNums, period: i64) -> [u8; RECORD] {
    let mut buf = [b' '; RECORD];
    let mut put = |at: usize, mut v: u64| {
        for i in (at..at + 20).rev() {
            buf[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, s.next_out);
    put(21, s.next_in);
    put(42, period.max(0) as u64);
    buf[RECORD - 1] = b'\n';
    buf
}

/// The file's record, mapped shared: stores reach the page cache the file reads from.
#[allow(unsafe_code)]
fn map(file: &File) -> io::Result<memmap2::MmapMut> {
    // SAFETY: the mapping is `RECORD` bytes of a file this process opened in its own state
    // folder (0600) and sized to `RECORD` just before; mt5bot never shortens it, and the only
    // access is `copy_from_slice` into the mapping from the engine thread, which owns the store.
    // What the operator must not do while mt5bot runs (shorten the file) is in the module doc and
    // README.
    unsafe { memmap2::MmapOptions::new().len(RECORD).map_mut(file) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::support::testdir::TestDir;

    fn text(dir: &TestDir) -> String {
        std::fs::read_to_string(dir.join("fix44-A-B.seqnums")).expect("seqnums")
    }

    #[test]
    fn a_file_of_two_numbers_is_rewritten_whole_then_saves_are_stores_the_file_shows() {
        let dir = TestDir::new("seqstore-upgrade");
        std::fs::write(dir.join("fix44-A-B.seqnums"), "5 7\n").expect("write");
        let (mut store, seqs) = SeqStore::open(dir.path(), "A", "B").expect("open");
        assert_eq!(seqs, SeqNums { next_out: 5, next_in: 7 });
        assert_eq!(text(&dir).len(), RECORD, "at its full width before anything else");
        assert_eq!(
            text(&dir).split_whitespace().collect::<Vec<_>>(),
            ["00000000000000000005", "00000000000000000007", "00000000000000000000"]
        );
        let writes = store.writes;
        store.save_now(SeqNums { next_out: 6, next_in: 9 });
        assert!(store.map.is_some(), "mapped");
        assert_eq!(store.writes, writes, "a store, no write call");
        // What a restart (or any reader) sees is the stored record.
        let (_, again) = SeqStore::open(dir.path(), "A", "B").expect("reopen");
        assert_eq!(again, SeqNums { next_out: 6, next_in: 9 });
        assert_eq!(text(&dir).len(), RECORD);
    }

    #[test]
    fn a_file_that_is_not_one_is_refused_and_left_as_it_is() {
        let dir = TestDir::new("seqstore-garbage");
        std::fs::write(dir.join("fix44-A-B.seqnums"), "not numbers\n").expect("write");
        let e = SeqStore::open(dir.path(), "A", "B").expect_err("refused");
        assert!(e.contains("is not a sequence-number file"), "{e}");
        assert_eq!(text(&dir), "not numbers\n");
    }
}
