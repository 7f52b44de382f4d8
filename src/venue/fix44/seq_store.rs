//! The persisted sequence numbers: one small file rewritten in place, so a restart (or a SIGKILL)
//! logs on with the numbers the counterparty expects.

use super::*;

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
    /// Writes of the file so far.
    pub(super) writes: u64,
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
        Ok((
            SeqStore { file, path, saved: seqs, failed: false, saved_at: 0, period, saved_period: period, writes: 0 },
            seqs,
        ))
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
        let mut buf = [b' '; 63];
        let mut put = |at: usize, mut v: u64| {
            for i in (at..at + 20).rev() {
                buf[i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        put(0, s.next_out);
        put(21, s.next_in);
        put(42, self.period.max(0) as u64);
        buf[62] = b'\n';
        self.writes += 1;
        match self.file.write_all_at(&buf, 0) {
            Ok(()) => {
                self.saved = s;
                self.saved_period = self.period;
                self.failed = false;
            }
            Err(e) => {
                if !self.failed {
                    log::error!(
                        "cannot write FIX sequence numbers to {}: {e}; a restart now would reuse sequence numbers",
                        self.path.display()
                    );
                }
                self.failed = true;
            }
        }
    }
}
