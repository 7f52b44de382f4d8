//! What the daemon tells its operator's phone (`notify:`): the events, as the engine and the
//! daemon hand them to the notification sinks' threads.
//!
//! The engine only builds a [`Notice`] and offers it to each sink's bounded channel without
//! waiting; formatting and delivery happen on the sinks' own threads.

use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::Arc;

use super::types::{TradeRecord, TradingState};

/// The kinds of event a sink can be set to receive (`notify.sinks[].events`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NoticeKind {
    /// Fills of orders (batched with `notify.batch_fills`).
    Fill,
    /// Trading state changes, breaker trips among them.
    State,
    /// The venue session going down or coming back.
    Venue,
    /// The daemon starting and stopping.
    Lifecycle,
    /// The summary of a trading day, when the next one starts.
    Summary,
}

impl NoticeKind {
    pub const ALL: [NoticeKind; 5] =
        [NoticeKind::Fill, NoticeKind::State, NoticeKind::Venue, NoticeKind::Lifecycle, NoticeKind::Summary];

    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::Fill => "fill",
            NoticeKind::State => "state",
            NoticeKind::Venue => "venue",
            NoticeKind::Lifecycle => "lifecycle",
            NoticeKind::Summary => "summary",
        }
    }

    pub fn parse(s: &str) -> Option<NoticeKind> {
        NoticeKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The bit of this kind in a sink's filter.
    pub fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// The figures of a trading day that just ended, in account currency.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DaySummary {
    /// When the day ended (Unix nanoseconds): the next one's `protection.day_start`.
    pub end_unix_ns: i64,
    pub start_equity: f64,
    pub end_equity: f64,
    pub balance: f64,
    pub drawdown_ratio: f64,
    /// Fills booked during the day (since this process started, if it started that day).
    pub fills: u64,
    /// Symbols with an open position at the end of the day.
    pub open_positions: usize,
    pub state: TradingState,
}

/// One event for the operator.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    Fill(TradeRecord),
    State { from: TradingState, to: TradingState, by: String, reason: String },
    Venue { venue: &'static str, up: bool },
    Started { venue: &'static str, version: &'static str },
    Stopped { why: String },
    Summary(DaySummary),
}

impl Notice {
    pub fn kind(&self) -> NoticeKind {
        match self {
            Notice::Fill(_) => NoticeKind::Fill,
            Notice::State { .. } => NoticeKind::State,
            Notice::Venue { .. } => NoticeKind::Venue,
            Notice::Started { .. } | Notice::Stopped { .. } => NoticeKind::Lifecycle,
            Notice::Summary(_) => NoticeKind::Summary,
        }
    }
}

/// One sink's end of the way in: its bounded channel, the kinds it takes, and what counts a notice
/// it had no room for.
#[derive(Clone)]
pub struct NoticeOutlet {
    pub tx: SyncSender<Notice>,
    /// [`NoticeKind::bit`]s of the kinds it takes.
    pub kinds: u8,
    pub on_drop: Arc<dyn Fn() + Send + Sync>,
}

/// Every sink's outlet; empty when `notify:` has none (then [`NoticeOutlets::offer`] costs one
/// emptiness check).
#[derive(Clone, Default)]
pub struct NoticeOutlets(Vec<NoticeOutlet>);

impl NoticeOutlets {
    pub fn new(outlets: Vec<NoticeOutlet>) -> Self {
        NoticeOutlets(outlets)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether some sink takes notices of `kind` (so building one is worth it).
    #[inline]
    pub fn wants(&self, kind: NoticeKind) -> bool {
        self.0.iter().any(|o| o.kinds & kind.bit() != 0)
    }

    /// Hands `notice` to every sink that takes its kind, never waiting: a sink whose channel is
    /// full (its service is slow or down) loses it, counted.
    pub fn offer(&self, notice: &Notice) {
        let bit = notice.kind().bit();
        for o in self.0.iter().filter(|o| o.kinds & bit != 0) {
            match o.tx.try_send(notice.clone()) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => (o.on_drop)(),
            }
        }
    }
}

impl std::fmt::Debug for NoticeOutlet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NoticeOutlet(kinds {:#07b})", self.kinds)
    }
}

impl std::fmt::Debug for NoticeOutlets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NoticeOutlets({} sinks)", self.0.len())
    }
}
