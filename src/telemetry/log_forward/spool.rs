//! The spool: an append-only folder of segment files of JSON lines that holds records, in
//! order, while the sink is away; the oldest segment goes first when it passes its limit.

use super::*;

pub(super) struct Segment {
    pub(super) id: u64,
    pub(super) bytes: u64,
    pub(super) records: u64,
}

/// Append-only segments of JSON lines; the oldest is read back and deleted once sent.
pub(super) struct Spool {
    pub(super) dir: PathBuf,
    pub(super) max_bytes: u64,
    pub(super) segments: VecDeque<Segment>,
    pub(super) writer: Option<File>,
    /// Lines of the oldest segment not yet acknowledged, once loaded.
    pub(super) head: VecDeque<ForwardRecord>,
    pub(super) head_loaded: bool,
    pub(super) next_id: u64,
}

impl Spool {
    pub(super) fn open(dir: &Path, max_bytes: u64) -> Result<Spool, String> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| {
            format!("cannot create the log spool folder {} (log_forward.spool_dir): {e}", dir.display())
        })?;
        let mut ids: Vec<u64> = std::fs::read_dir(dir)
            .map_err(|e| format!("cannot read the log spool folder {}: {e}", dir.display()))?
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.strip_suffix(".spool")?.parse().ok())
            .collect();
        ids.sort_unstable();
        let mut segments = VecDeque::new();
        for id in ids {
            let path = dir.join(format!("{id:012}.spool"));
            let (bytes, records) = match File::open(&path) {
                Ok(f) => {
                    let bytes = f.metadata().map(|m| m.len()).unwrap_or(0);
                    let records = BufReader::new(f).lines().count() as u64;
                    (bytes, records)
                }
                Err(_) => continue,
            };
            segments.push_back(Segment { id, bytes, records });
        }
        let next_id = segments.back().map_or(1, |s| s.id + 1);
        Ok(Spool {
            dir: dir.to_path_buf(),
            max_bytes,
            segments,
            writer: None,
            head: VecDeque::new(),
            head_loaded: false,
            next_id,
        })
    }

    pub(super) fn path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("{id:012}.spool"))
    }

    pub(super) fn records(&self) -> u64 {
        let loaded_segment = if self.head_loaded { self.segments.front().map_or(0, |s| s.records) } else { 0 };
        self.segments.iter().map(|s| s.records).sum::<u64>() - loaded_segment + self.head.len() as u64
    }

    pub(super) fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.records() == 0
    }

    /// Appends records in order; returns how many old records were dropped to stay under the cap.
    pub(super) fn append(&mut self, records: &[ForwardRecord]) -> u64 {
        if records.is_empty() {
            return 0;
        }
        let mut text = String::new();
        for r in records {
            if let Ok(line) = serde_json::to_string(r) {
                text.push_str(&line);
                text.push('\n');
            }
        }
        let need_new = match (self.writer.as_ref(), self.segments.back()) {
            (Some(_), Some(last)) => last.bytes >= SEGMENT_BYTES || (self.head_loaded && self.segments.len() == 1),
            _ => true,
        };
        if need_new {
            self.writer = None;
            let id = self.next_id;
            self.next_id += 1;
            match OpenOptions::new().create(true).append(true).open(self.path(id)) {
                Ok(f) => {
                    self.writer = Some(f);
                    self.segments.push_back(Segment { id, bytes: 0, records: 0 });
                }
                Err(e) => {
                    // The spool is unusable: the records are lost, and counted by the caller.
                    eprintln!("mt5bot: cannot write the log spool {}: {e}", self.dir.display());
                    return records.len() as u64;
                }
            }
        }
        if let (Some(w), Some(seg)) = (self.writer.as_mut(), self.segments.back_mut()) {
            if w.write_all(text.as_bytes()).is_ok() {
                seg.bytes += text.len() as u64;
                seg.records += records.len() as u64;
            }
        }
        let mut dropped = 0;
        while self.bytes() > self.max_bytes && self.segments.len() > 1 {
            dropped += self.drop_oldest();
        }
        dropped
    }

    pub(super) fn drop_oldest(&mut self) -> u64 {
        let Some(seg) = self.segments.pop_front() else { return 0 };
        let lost = if self.head_loaded { self.head.len() as u64 } else { seg.records };
        self.head.clear();
        self.head_loaded = false;
        let _ = std::fs::remove_file(self.path(seg.id));
        lost
    }

    /// Up to `n` of the oldest records.
    pub(super) fn peek(&mut self, n: usize) -> Vec<ForwardRecord> {
        if !self.head_loaded {
            let Some(first) = self.segments.front() else { return Vec::new() };
            if self.segments.len() == 1 {
                // Reading the segment being written: later appends go to a new one.
                self.writer = None;
            }
            let path = self.path(first.id);
            self.head = File::open(&path)
                .map(|f| {
                    BufReader::new(f)
                        .lines()
                        .map_while(Result::ok)
                        .filter_map(|l| serde_json::from_str(&l).ok())
                        .collect()
                })
                .unwrap_or_default();
            self.head_loaded = true;
        }
        self.head.iter().take(n).cloned().collect()
    }

    /// Acknowledges `n` records returned by `peek`.
    pub(super) fn ack(&mut self, n: usize) {
        for _ in 0..n.min(self.head.len()) {
            self.head.pop_front();
        }
        if self.head_loaded && self.head.is_empty() {
            if let Some(seg) = self.segments.pop_front() {
                let _ = std::fs::remove_file(self.path(seg.id));
            }
            self.head_loaded = false;
            if self.segments.is_empty() {
                self.writer = None;
            }
        }
    }
}
