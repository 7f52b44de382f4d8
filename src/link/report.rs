//! What the engine reports to the control API, as plain values. The control API writes them as
//! JSON (`/api/v1/status`, `/api/v1/flatten`); the field names are that JSON's.

use serde::Serialize;

/// `/api/v1/status`: the engine's view of the venue, the queue and the books.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusReport {
    pub venue: VenueStatus,
    /// Whether new signals are taken (false while stopping).
    pub accepting: bool,
    pub paused: PausedStatus,
    /// The trading state, who set it and why.
    pub trading: TradingStatus,
    /// Equity and what the breakers measure it from.
    pub equity: EquityStatus,
    pub queue: QueueStatus,
    /// Fills booked so far.
    pub trades: u64,
    pub positions: Vec<PositionStatus>,
    pub open_orders: Vec<OpenOrderStatus>,
    /// The last fills, newest last (at most [`RECENT_FILLS`]).
    pub recent_fills: Vec<FillStatus>,
    pub drift: DriftStatus,
    /// Each symbol's market hours.
    pub markets: Vec<MarketStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MarketStatus {
    pub symbol: String,
    /// `always`, `fx`, or a calendar of `sessions.calendars`.
    pub calendar: String,
    /// Whether it takes orders now (open or closing).
    pub open: bool,
    /// `open`, `closing` (within close_before), `closed`, or `opening` (within open_after).
    pub phase: &'static str,
    /// When `open` next changes (RFC 3339, UTC); none for `always`.
    pub next_change: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VenueStatus {
    pub name: &'static str,
    pub up: bool,
    pub ready_for_orders: bool,
    pub open_orders: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PausedStatus {
    pub operator: bool,
    pub drift: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TradingStatus {
    /// `active`, `reducing` or `halted`.
    pub state: &'static str,
    /// Who or what set it: `operator`, a breaker's name, `start`.
    pub by: String,
    pub reason: String,
    /// RFC 3339, UTC.
    pub since: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EquityStatus {
    /// Balance plus open positions marked to the quote.
    pub equity: f64,
    /// Starting balance plus realized PnL.
    pub balance: f64,
    /// The currency of every amount here (`protection.account_currency`); null when not set.
    pub currency: Option<String>,
    pub peak_equity: f64,
    pub day_start_equity: f64,
    pub losses_in_a_row: u32,
    /// The breakers that are on.
    pub breakers: Vec<BreakerStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BreakerStatus {
    pub name: &'static str,
    pub action: &'static str,
    /// What it measures now (money, a fraction or a count) and its limit, in the same unit.
    pub value: f64,
    pub limit: f64,
    /// 1 far from the limit, 0 at it.
    pub headroom: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct QueueStatus {
    pub depth: usize,
    pub capacity: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PositionStatus {
    pub symbol: String,
    pub qty: f64,
    pub avg_price: f64,
    pub realized_pnl: f64,
    /// Realized and open PnL in account currency (contract size and conversion applied); open
    /// at `mark`, the last bid for a long or ask for a short.
    pub realized_money: f64,
    pub open_pnl: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mark: Option<f64>,
    pub fills: u64,
    /// The position's stop-loss and take-profit prices, when it carries them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sl: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tp: Option<f64>,
    /// Who holds them: `mt5bot` (it sends the closing order) or the venue's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stops_held_by: Option<&'static str>,
}

/// How many fills the status keeps.
pub const RECENT_FILLS: usize = 20;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FillStatus {
    /// RFC 3339, UTC.
    pub at: String,
    pub id: String,
    pub symbol: String,
    pub side: &'static str,
    pub qty: f64,
    pub price: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OpenOrderStatus {
    pub id: String,
    pub symbol: String,
    pub side: &'static str,
    pub qty: f64,
    pub filled: f64,
    pub price: f64,
    pub state: &'static str,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriftStatus {
    pub alarms: u64,
    pub last: Option<DriftAlarm>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DriftAlarm {
    pub symbol: String,
    /// RFC 3339, UTC.
    pub at: String,
}

/// `/api/v1/flatten`: the cancels asked for and the closing orders sent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlattenReport {
    pub cancel_requested: Vec<String>,
    pub cancel_refused: Vec<CancelRefused>,
    pub orders: Vec<FlattenOrder>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CancelRefused {
    pub id: String,
    pub reason: String,
}

/// One closing order of a flatten.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlattenOrder {
    pub symbol: String,
    pub side: &'static str,
    pub qty: f64,
    pub id: String,
    pub sent: bool,
    /// Why it was not sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl std::fmt::Display for FlattenOrder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {} as {}: ", self.side, self.qty, self.symbol, self.id)?;
        match &self.reason {
            None if self.sent => f.write_str("sent"),
            None => f.write_str("not sent"),
            Some(why) => write!(f, "not sent ({why})"),
        }
    }
}
