//! Encrypted checkpoints of the engine's state: the file format, its keys, and its checks.
//!
//! Format: `magic (8) | format version (2, big endian) | key id (8) | nonce (12) | ciphertext + tag`.
//! The 30-byte header is the AES-256-GCM associated data, so any change to it (a swapped header, a
//! different key id) fails authentication like a change to the body. The nonce is 96 random bits
//! from the OS generator, new for every write. The key id is the first 8 bytes of
//! sha256("mt5bot checkpoint key" || key): it names the key without revealing it, so a checkpoint
//! written before `runtime-secrets --rotate CHECKPOINT_AES_KEY` is opened with
//! `CHECKPOINT_AES_KEY_PREVIOUS`, and the next write uses the new key.
//!
//! Rollback: every checkpoint carries a generation number inside its authenticated part, and after
//! each write the daemon records that generation in a sealed file beside it
//! (`<checkpoint>.generation`, same keys, magic `MT5BGENR`). A checkpoint older than the record
//! (an older copy put back in its place) is refused, naming both generations, unless the operator
//! asks for it with `mt5bot run --accept-rollback`. Overwriting the checkpoint alone cannot reset
//! the record.
//!
//! Every refusal says which problem it is and what to do; none is ever a silent fresh start.
//! Files are written atomically with mode 0600. (This module is the format; the engine's periodic
//! writes and restore on start come with the checkpoint work that uses it.)

use std::fmt;
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::support::encoding::hex;

pub const MAGIC: &[u8; 8] = b"MT5BCKPT";
/// Magic of the generation record beside a checkpoint.
pub const GENERATION_MAGIC: &[u8; 8] = b"MT5BGENR";
pub const VERSION: u16 = 1;
pub const HEADER_LEN: usize = 8 + 2 + 8 + 12;
const TAG_LEN: usize = 16;

/// A position as checkpointed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PositionState {
    pub symbol: String,
    pub qty: f64,
    pub avg_price: f64,
    pub realized_pnl: f64,
    pub fills: u64,
    /// The position's stop-loss and take-profit prices; 0 for none.
    #[serde(default)]
    pub sl: f64,
    #[serde(default)]
    pub tp: f64,
    /// The realized PnL in account currency, and the part of `realized_pnl` it converts (they
    /// differ by fills the journal replays after the checkpoint, converted at the next rate).
    /// Absent from older checkpoints: converted at the first rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realized_money: Option<(f64, f64)>,
}

/// An order still open (or in flight) when the checkpoint was taken.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderState {
    pub client_id: String,
    pub symbol: String,
    pub side: String,
    pub kind: String,
    pub qty: f64,
    pub filled: f64,
    pub price: f64,
    pub state: String,
    /// The venue's reference of the order (the FIX MsgSeqNum that carried it); 0 when unknown.
    #[serde(default)]
    pub venue_ref: u64,
    /// Unix time it was sent, in nanoseconds; 0 when unknown (checkpoints of older versions).
    #[serde(default)]
    pub sent_at_unix_ns: i64,
    /// The stop-loss and take-profit prices it carries; 0 for none.
    #[serde(default)]
    pub sl: f64,
    #[serde(default)]
    pub tp: f64,
    /// `sl` or `tp` for a position's stop-loss or take-profit resting at the venue; empty for
    /// any other order.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub protects: String,
}

/// A signal that was queued, not yet sent, when the checkpoint was taken (or replayed from the
/// journal): after a restart it is sent, or refused if it has waited longer than `queue.max_wait`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueuedState {
    pub id: String,
    pub symbol: String,
    pub side: String,
    pub kind: String,
    pub qty: f64,
    pub price: f64,
    pub source: String,
    /// Unix time it was queued, in nanoseconds.
    pub queued_at_unix_ns: i64,
    /// The stops it asks for: each a price, or a distance in basis points from its order's
    /// reference price; 0 for none.
    #[serde(default)]
    pub sl: f64,
    #[serde(default)]
    pub tp: f64,
    #[serde(default)]
    pub sl_bps: f64,
    #[serde(default)]
    pub tp_bps: f64,
}

/// The engine's state in a checkpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// RFC 3339 time of writing.
    pub written_at: String,
    /// Commissions booked over the life of the books (money, positive a cost).
    #[serde(default)]
    pub commissions: f64,
    /// Swaps booked (money, positive a credit); absent from older checkpoints.
    #[serde(default)]
    pub swaps: f64,
    pub trades: u64,
    pub next_model_seq: u64,
    pub positions: Vec<PositionState>,
    pub open_orders: Vec<OrderState>,
    /// The venue's session state (e.g. FIX sequence numbers), opaque here.
    #[serde(default)]
    pub venue: serde_json::Value,
    /// The signal ids seen last, oldest first: after a restart a signal reusing one is still a
    /// duplicate, never a second order.
    #[serde(default)]
    pub recent_ids: Vec<String>,
    /// When each of `recent_ids` was taken (Unix seconds), at the same position; missing in
    /// checkpoints of versions that had none (they count as taken at the restore).
    #[serde(default)]
    pub recent_id_times: Vec<u32>,
    /// Counts the checkpoints written: 1 for the first, one more for each after it. Checkpoints of
    /// versions that had none read as 0.
    #[serde(default)]
    pub generation: u64,
    /// Signals queued and not yet sent, oldest first.
    #[serde(default)]
    pub queued: Vec<QueuedState>,
    /// The trading state and who set it why; missing in checkpoints of versions without trading
    /// states (they read as active).
    #[serde(default)]
    pub trading: Option<TradingRecord>,
    /// The equity breakers' baselines (peak equity, the trading day's start); missing in older
    /// checkpoints (they start from the restored books).
    #[serde(default)]
    pub protection: Option<super::protection::Baselines>,
}

/// The trading state a checkpoint keeps, with who set it (`operator`, a breaker's name), why, and
/// since when.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TradingRecord {
    /// `active`, `reducing` or `halted`.
    pub state: String,
    pub by: String,
    pub reason: String,
    pub since_unix_ns: i64,
}

/// Why a checkpoint cannot be used; each message says what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointError {
    Truncated {
        len: usize,
    },
    NotACheckpoint,
    UnknownVersion(u16),
    UnknownKey {
        key_id: String,
    },
    Tampered,
    BadKey {
        name: &'static str,
        why: String,
    },
    Corrupt(String),
    Io(String),
    /// The checkpoint is older than the last one written.
    Rollback {
        found: u64,
        last: u64,
        record: String,
    },
    /// The checkpoint is gone, though the record says one was written.
    Missing {
        last: u64,
        record: String,
    },
}

const FIX: &str = "restore a backup of the state folder, or start clean with `mt5bot run --discard-checkpoint` (it moves the file aside, never deletes it)";

impl fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckpointError::Truncated { len } => write!(f, "the checkpoint is truncated ({len} bytes, at least {} expected); {FIX}", HEADER_LEN + TAG_LEN),
            CheckpointError::NotACheckpoint => write!(f, "the file is not an mt5bot checkpoint (wrong magic); {FIX}"),
            CheckpointError::UnknownVersion(v) => write!(f, "the checkpoint has format version {v}, this mt5bot reads version {VERSION}; run the mt5bot that wrote it, or {FIX}"),
            CheckpointError::UnknownKey { key_id } => write!(
                f,
                "the checkpoint was written with key id {key_id}, which is neither CHECKPOINT_AES_KEY nor CHECKPOINT_AES_KEY_PREVIOUS; restore the key it was written with, or {FIX}"
            ),
            CheckpointError::Tampered => write!(f, "the checkpoint failed authentication: it was changed or damaged after it was written; {FIX}"),
            CheckpointError::BadKey { name, why } => write!(f, "{name} is not usable: {why}; it must be the base64 of 32 bytes (mt5bot runtime-secrets writes one)"),
            CheckpointError::Corrupt(why) => write!(f, "the checkpoint decrypted but its content is not readable ({why}); {FIX}"),
            CheckpointError::Io(why) => f.write_str(why),
            CheckpointError::Rollback { found, last, record } => write!(
                f,
                "the checkpoint is generation {found}, but generation {last} was written after it ({record} says so): an older copy took its place, and restoring it would forget trades and positions and let ids traded since make second orders; put the newest checkpoint back, or start from this one anyway with `mt5bot run --accept-rollback`"
            ),
            CheckpointError::Missing { last, record } => write!(
                f,
                "the checkpoint is missing, but generation {last} was written ({record} says so): a fresh start would forget positions and let ids traded before make second orders; put the checkpoint back, or start clean anyway with `mt5bot run --accept-rollback`"
            ),
        }
    }
}

impl std::error::Error for CheckpointError {}

/// One AES-256 key and its id.
#[derive(Clone)]
struct Key {
    bytes: [u8; 32],
    id: [u8; 8],
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key {{ id: {} }}", hex(&self.id))
    }
}

impl Key {
    fn from_base64(name: &'static str, text: &str) -> Result<Key, CheckpointError> {
        let raw = crate::support::encoding::base64_decode(text.trim())
            .ok_or_else(|| CheckpointError::BadKey { name, why: "not base64".into() })?;
        let bytes: [u8; 32] = raw
            .try_into()
            .map_err(|v: Vec<u8>| CheckpointError::BadKey { name, why: format!("{} bytes, not 32", v.len()) })?;
        let mut h = Sha256::new();
        h.update(b"mt5bot checkpoint key");
        h.update(bytes);
        let digest = h.finalize();
        let mut id = [0u8; 8];
        id.copy_from_slice(&digest[..8]);
        Ok(Key { bytes, id })
    }
}

/// The current key and, after a rotation, the previous one.
#[derive(Debug, Clone)]
pub struct Keys {
    current: Key,
    previous: Option<Key>,
}

/// Which key opened a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyUsed {
    Current,
    Previous,
}

impl Keys {
    /// Keys from `CHECKPOINT_AES_KEY` and, when set, `CHECKPOINT_AES_KEY_PREVIOUS` (base64 text).
    pub fn new(current: &str, previous: Option<&str>) -> Result<Keys, CheckpointError> {
        Ok(Keys {
            current: Key::from_base64("CHECKPOINT_AES_KEY", current)?,
            previous: previous
                .filter(|p| !p.trim().is_empty())
                .map(|p| Key::from_base64("CHECKPOINT_AES_KEY_PREVIOUS", p))
                .transpose()?,
        })
    }

    /// The id of the key new checkpoints are written with, in hex.
    pub fn current_id(&self) -> String {
        hex(&self.current.id)
    }
}

/// The readable part of a checkpoint file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub version: u16,
    pub key_id: String,
}

/// Reads the header without decrypting (for `checkpoint inspect` and error messages).
pub fn header(bytes: &[u8]) -> Result<Header, CheckpointError> {
    header_of(MAGIC, bytes)
}

fn header_of(magic: &[u8; 8], bytes: &[u8]) -> Result<Header, CheckpointError> {
    if bytes.len() < 8 || &bytes[..8] != magic {
        return if bytes.len() < 8 && magic.starts_with(bytes) {
            Err(CheckpointError::Truncated { len: bytes.len() })
        } else {
            Err(CheckpointError::NotACheckpoint)
        };
    }
    if bytes.len() < HEADER_LEN + TAG_LEN {
        return Err(CheckpointError::Truncated { len: bytes.len() });
    }
    let version = u16::from_be_bytes([bytes[8], bytes[9]]);
    Ok(Header { version, key_id: hex(&bytes[10..18]) })
}

/// Serializes and encrypts `state` with the current key and a fresh random nonce.
pub fn seal(state: &State, keys: &Keys) -> Result<Vec<u8>, CheckpointError> {
    let plain = serde_json::to_vec(state).map_err(|e| CheckpointError::Corrupt(e.to_string()))?;
    seal_bytes(MAGIC, &plain, keys)
}

/// The generation record of a checkpoint of generation `generation`.
pub fn seal_generation(generation: u64, keys: &Keys) -> Result<Vec<u8>, CheckpointError> {
    seal_bytes(GENERATION_MAGIC, &generation.to_be_bytes(), keys)
}

/// Checks and reads a generation record.
pub fn open_generation(bytes: &[u8], keys: &Keys) -> Result<u64, CheckpointError> {
    let (plain, _) = open_bytes(GENERATION_MAGIC, bytes, keys)?;
    let raw: [u8; 8] = plain.try_into().map_err(|_| CheckpointError::Corrupt("not a generation number".into()))?;
    Ok(u64::from_be_bytes(raw))
}

/// Where the generation record of the checkpoint at `path` lives.
pub fn generation_path(path: &Path) -> PathBuf {
    PathBuf::from(format!("{}.generation", path.display()))
}

/// Seals `plain` like a checkpoint under another magic (the order journal's batches).
pub(crate) fn seal_with(magic: &[u8; 8], plain: &[u8], keys: &Keys) -> Result<Vec<u8>, CheckpointError> {
    seal_bytes(magic, plain, keys)
}

/// Opens what [`seal_with`] sealed.
pub(crate) fn open_with(magic: &[u8; 8], bytes: &[u8], keys: &Keys) -> Result<(Vec<u8>, KeyUsed), CheckpointError> {
    open_bytes(magic, bytes, keys)
}

fn seal_bytes(magic: &[u8; 8], plain: &[u8], keys: &Keys) -> Result<Vec<u8>, CheckpointError> {
    use rand::TryRng;
    let mut nonce = [0u8; 12];
    rand::rngs::SysRng
        .try_fill_bytes(&mut nonce)
        .map_err(|e| CheckpointError::Io(format!("the OS random generator failed: {e}")))?;
    let mut out = Vec::with_capacity(HEADER_LEN + plain.len() + TAG_LEN);
    out.extend_from_slice(magic);
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&keys.current.id);
    out.extend_from_slice(&nonce);
    let cipher = Aes256Gcm::new_from_slice(&keys.current.bytes)
        .map_err(|_| CheckpointError::BadKey { name: "CHECKPOINT_AES_KEY", why: "wrong length".into() })?;
    let sealed = cipher
        .encrypt(&Nonce::from(nonce), Payload { msg: plain, aad: &out[..HEADER_LEN] })
        .map_err(|_| CheckpointError::Io("encryption failed".into()))?;
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Checks and decrypts a checkpoint.
pub fn open(bytes: &[u8], keys: &Keys) -> Result<(State, KeyUsed), CheckpointError> {
    let (plain, used) = open_bytes(MAGIC, bytes, keys)?;
    let state = serde_json::from_slice(&plain).map_err(|e| CheckpointError::Corrupt(e.to_string()))?;
    Ok((state, used))
}

fn open_bytes(magic: &[u8; 8], bytes: &[u8], keys: &Keys) -> Result<(Vec<u8>, KeyUsed), CheckpointError> {
    let h = header_of(magic, bytes)?;
    if h.version != VERSION {
        return Err(CheckpointError::UnknownVersion(h.version));
    }
    let id = &bytes[10..18];
    let (key, used) = if id == keys.current.id {
        (&keys.current, KeyUsed::Current)
    } else if let Some(p) = keys.previous.as_ref().filter(|p| p.id == id) {
        (p, KeyUsed::Previous)
    } else {
        return Err(CheckpointError::UnknownKey { key_id: h.key_id });
    };
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(&bytes[18..HEADER_LEN]);
    let cipher = Aes256Gcm::new_from_slice(&key.bytes).map_err(|_| CheckpointError::Tampered)?;
    let plain = cipher
        .decrypt(&Nonce::from(nonce), Payload { msg: &bytes[HEADER_LEN..], aad: &bytes[..HEADER_LEN] })
        .map_err(|_| CheckpointError::Tampered)?;
    Ok((plain, used))
}

/// Writes a sealed checkpoint atomically (temp file 0600, fsync, rename, fsync folder).
pub fn write(path: &Path, sealed: &[u8]) -> Result<(), CheckpointError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| CheckpointError::Io(format!("cannot create {}: {e}", dir.display())))?;
    }
    crate::support::files::write_atomic(path, sealed).map(|_| ()).map_err(|e| CheckpointError::Io(e.to_string()))
}

/// Moves a checkpoint that cannot be used aside (`<file>.bad-<UTC time>`); returns the new path.
pub fn discard(path: &Path) -> Result<PathBuf, CheckpointError> {
    let stamp = crate::support::timefmt::file_stamp(&crate::support::timefmt::rfc3339_micros(
        crate::support::timefmt::unix_nanos(),
    ));
    let aside = PathBuf::from(format!("{}.bad-{stamp}", path.display()));
    std::fs::rename(path, &aside)
        .map_err(|e| CheckpointError::Io(format!("cannot move {} aside: {e}", path.display())))?;
    Ok(aside)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> String {
        crate::support::encoding::base64(&[b; 32])
    }

    fn state() -> State {
        State {
            commissions: 1.5,
            swaps: -0.75,
            written_at: "2026-11-24T08:00:00.000000Z".into(),
            protection: Some(super::super::protection::Baselines {
                peak_equity: 10_500.0,
                day_start_equity: 10_200.0,
                day_end_unix_ns: 1_764_100_000_000_000_000,
                losses_in_a_row: 2,
                venue_starting_balance: Some(9_000.0),
                window_peak: Some((10_400.0, 29_400_000)),
            }),
            trading: Some(TradingRecord {
                state: "halted".into(),
                by: "operator".into(),
                reason: "news".into(),
                since_unix_ns: 1_764_000_000_000_000_000,
            }),
            trades: 42,
            next_model_seq: 7,
            positions: vec![PositionState {
                symbol: "EURUSD".into(),
                qty: 2.0,
                avg_price: 1.085,
                realized_pnl: -0.5,
                fills: 9,
                sl: 1.08,
                tp: 0.0,
                realized_money: Some((-0.5, -0.5)),
            }],
            open_orders: vec![OrderState {
                client_id: "s-1".into(),
                symbol: "EURUSD".into(),
                side: "buy".into(),
                kind: "limit".into(),
                qty: 1.0,
                filled: 0.25,
                price: 1.08,
                state: "partially_filled".into(),
                venue_ref: 0,
                sent_at_unix_ns: 0,
                sl: 0.0,
                tp: 1.2,
                protects: "tp".into(),
            }],
            venue: serde_json::json!({ "next_in": 88 }),
            recent_ids: vec!["s-0".into(), "s-1".into()],
            recent_id_times: vec![1_764_000_000, 1_764_000_001],
            generation: 12,
            queued: Vec::new(),
        }
    }

    #[test]
    fn the_generation_record_is_sealed_and_tells_itself_from_a_checkpoint() {
        let keys = Keys::new(&key(1), None).expect("keys");
        let record = seal_generation(41, &keys).expect("seal");
        assert_eq!(open_generation(&record, &keys), Ok(41));
        let mut bad = record.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(open_generation(&bad, &keys), Err(CheckpointError::Tampered));
        assert_eq!(open(&record, &keys).err(), Some(CheckpointError::NotACheckpoint));
        let ckpt = seal(&state(), &keys).expect("seal");
        assert_eq!(open_generation(&ckpt, &keys).err(), Some(CheckpointError::NotACheckpoint));
        assert_eq!(open(&ckpt, &keys).expect("open").0.generation, 12);
        let rotated = Keys::new(&key(2), Some(&key(1))).expect("keys");
        assert_eq!(open_generation(&record, &rotated), Ok(41), "the previous key still reads it");
    }

    #[test]
    fn round_trip_with_a_fresh_nonce_each_time() {
        let keys = Keys::new(&key(1), None).expect("keys");
        let a = seal(&state(), &keys).expect("seal");
        let b = seal(&state(), &keys).expect("seal");
        assert_ne!(a, b, "a new nonce every write");
        assert_eq!(open(&a, &keys).expect("open"), (state(), KeyUsed::Current));
        assert_eq!(header(&a).expect("header").key_id, keys.current_id());
        assert!(!a.windows(6).any(|w| w == b"EURUSD"), "the body is encrypted");
    }

    #[test]
    fn every_flipped_bit_is_refused() {
        let keys = Keys::new(&key(1), None).expect("keys");
        let sealed = seal(&state(), &keys).expect("seal");
        for i in 0..sealed.len() {
            for bit in [0u8, 3, 7] {
                let mut bad = sealed.clone();
                bad[i] ^= 1 << bit;
                let e = open(&bad, &keys).expect_err("tampering must be refused");
                let want = match i {
                    0..=7 => matches!(e, CheckpointError::NotACheckpoint),
                    8..=9 => matches!(e, CheckpointError::UnknownVersion(_)),
                    10..=17 => matches!(e, CheckpointError::UnknownKey { .. }),
                    _ => e == CheckpointError::Tampered,
                };
                assert!(want, "byte {i} bit {bit}: {e}");
            }
        }
    }

    #[test]
    fn truncation_wrong_key_swapped_header_and_garbage() {
        let keys = Keys::new(&key(1), None).expect("keys");
        let sealed = seal(&state(), &keys).expect("seal");
        for len in [0, 3, 8, 29, 30, 45] {
            assert!(matches!(open(&sealed[..len], &keys), Err(CheckpointError::Truncated { .. })), "{len}");
        }
        assert_eq!(open(&sealed[..sealed.len() - 1], &keys), Err(CheckpointError::Tampered));
        let other = Keys::new(&key(2), None).expect("keys");
        let e = open(&sealed, &other).expect_err("wrong key");
        assert!(
            matches!(e, CheckpointError::UnknownKey { .. }) && e.to_string().contains("CHECKPOINT_AES_KEY_PREVIOUS"),
            "{e}"
        );
        let mut second = seal(&State { trades: 1, ..state() }, &keys).expect("seal");
        second[..HEADER_LEN].copy_from_slice(&sealed[..HEADER_LEN]);
        assert_eq!(open(&second, &keys), Err(CheckpointError::Tampered), "a header from another checkpoint");
        assert_eq!(open(b"not a checkpoint at all, just text..........", &keys), Err(CheckpointError::NotACheckpoint));
        let msgs: Vec<String> = [
            CheckpointError::Tampered,
            CheckpointError::Truncated { len: 3 },
            CheckpointError::NotACheckpoint,
            CheckpointError::UnknownVersion(9),
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        assert!(msgs.iter().all(|m| m.contains("--discard-checkpoint")), "each says what to do");
        assert_eq!(msgs.iter().collect::<std::collections::HashSet<_>>().len(), 4, "each its own message");
    }

    #[test]
    fn after_a_rotation_the_previous_key_still_opens_and_new_writes_use_the_new_key() {
        let old = Keys::new(&key(1), None).expect("keys");
        let written_before = seal(&state(), &old).expect("seal");
        let rotated = Keys::new(&key(2), Some(&key(1))).expect("keys");
        assert_eq!(open(&written_before, &rotated).expect("open").1, KeyUsed::Previous);
        let written_after = seal(&state(), &rotated).expect("seal");
        assert_eq!(header(&written_after).expect("header").key_id, rotated.current_id());
        assert_eq!(open(&written_after, &rotated).expect("open").1, KeyUsed::Current);
        assert!(open(&written_after, &old).is_err(), "the old key alone cannot read new checkpoints");
    }

    #[test]
    fn bad_keys_are_named_never_shown() {
        let e = Keys::new("c2hvcnQ=", None).expect_err("short");
        assert!(e.to_string().starts_with("CHECKPOINT_AES_KEY is not usable: 5 bytes, not 32"), "{e}");
        let e = Keys::new(&key(1), Some("!!!")).expect_err("not base64");
        assert!(e.to_string().starts_with("CHECKPOINT_AES_KEY_PREVIOUS is not usable: not base64"), "{e}");
        assert!(!format!("{:?}", Keys::new(&key(1), None).expect("keys")).contains(&key(1)));
    }

    #[test]
    fn files_are_0600_and_discard_moves_aside() {
        use std::os::unix::fs::PermissionsExt;
        let dir = crate::support::testdir::TestDir::new("ckpt");
        let path = dir.join("state/checkpoint.bin");
        let keys = Keys::new(&key(1), None).expect("keys");
        write(&path, &seal(&state(), &keys).expect("seal")).expect("write");
        assert_eq!(std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777, 0o600);
        let aside = discard(&path).expect("discard");
        assert!(!path.exists() && aside.exists() && aside.to_string_lossy().contains("checkpoint.bin.bad-"));
    }
}
