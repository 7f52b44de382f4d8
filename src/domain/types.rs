//! The plain-data types that flow through the engine: ticks, signals, orders and venue events.
//!
//! All of them are `Copy` and fixed-size so the tick-to-order path moves them without allocating.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Index of a symbol in the engine's symbol table (the order of `feed.symbols`).
pub type SymbolId = u16;

/// Nanoseconds on the engine's monotonic clock (since the engine started).
pub type Nanos = u64;

/// Buy or sell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    Buy,
    Sell,
}

impl Side {
    /// +1 for a buy, -1 for a sell.
    pub fn sign(self) -> f64 {
        match self {
            Side::Buy => 1.0,
            Side::Sell => -1.0,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
        }
    }

    /// From its name as [`Side::as_str`] writes it.
    pub fn parse(s: &str) -> Option<Side> {
        match s {
            "buy" => Some(Side::Buy),
            "sell" => Some(Side::Sell),
            _ => None,
        }
    }
}

/// One quote update.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tick {
    pub symbol: SymbolId,
    pub bid: f64,
    pub ask: f64,
    /// When the tick was read, on the engine clock: the start of tick-to-order latency.
    pub recv_ns: Nanos,
}

impl Tick {
    pub fn mid(&self) -> f64 {
        (self.bid + self.ask) * 0.5
    }
}

/// Longest signal id, in bytes.
pub const SIGNAL_ID_MAX: usize = 32;

/// A signal's id: 1 to 32 bytes of `A-Z a-z 0-9 . _ - :`, stored inline.
///
/// The venue's client order id is derived from it, so a resent signal is a duplicate the venue
/// refuses, never a second order.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SignalId {
    len: u8,
    bytes: [u8; SIGNAL_ID_MAX],
}

impl SignalId {
    /// Parses an id from outside; `None` when it is empty, too long or has other characters.
    pub fn parse(s: &str) -> Option<SignalId> {
        let b = s.as_bytes();
        if b.is_empty()
            || b.len() > SIGNAL_ID_MAX
            || !b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-' | b':'))
        {
            return None;
        }
        let mut bytes = [0u8; SIGNAL_ID_MAX];
        bytes[..b.len()].copy_from_slice(b);
        Some(SignalId { len: b.len() as u8, bytes })
    }

    /// `prefix` followed by the decimal digits of `n`, built without allocating.
    /// The prefix is cut so the whole id fits.
    pub fn with_counter(prefix: &SignalId, n: u64) -> SignalId {
        let mut buf = crate::support::encoding::Decimal::new();
        let digits = buf.format(n).as_bytes();
        let keep = (prefix.len as usize).min(SIGNAL_ID_MAX - digits.len());
        let mut id = SignalId { len: (keep + digits.len()) as u8, bytes: [0u8; SIGNAL_ID_MAX] };
        id.bytes[..keep].copy_from_slice(&prefix.bytes[..keep]);
        id.bytes[keep..keep + digits.len()].copy_from_slice(digits);
        id
    }

    /// A 64-bit hash keyed by `key` (folded multiplications over the id's four words, as in
    /// wyhash and foldhash): a few nanoseconds, and without the key nobody can choose ids
    /// that collide.
    pub fn keyed_hash(&self, key: [u64; 4]) -> u64 {
        #[inline(always)]
        fn fold(a: u64, b: u64) -> u64 {
            let r = u128::from(a) * u128::from(b);
            (r as u64) ^ ((r >> 64) as u64)
        }
        let w = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&self.bytes[i * 8..i * 8 + 8]);
            u64::from_le_bytes(b)
        };
        let a = fold(w(0) ^ key[0], w(1) ^ key[1]);
        let b = fold(w(2) ^ key[2], w(3) ^ key[3]);
        fold(a ^ key[1] ^ u64::from(self.len), b ^ key[2])
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII is ever stored, so this cannot fail; fall back to "" rather than panic.
        std::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or("")
    }
}

impl Default for SignalId {
    fn default() -> Self {
        // Bytes past `len` are zero in every id, so the derived equality compares only the id.
        let mut bytes = [0u8; SIGNAL_ID_MAX];
        bytes[0] = b'0';
        SignalId { len: 1, bytes }
    }
}

impl fmt::Debug for SignalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl fmt::Display for SignalId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a signal came from; a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignalSource {
    Model,
    Ingress,
    /// The control API (`flatten`).
    Control,
    /// A protective exit the engine holds: a position's stop-loss or take-profit was crossed.
    Protection,
}

impl SignalSource {
    pub const ALL: [SignalSource; 4] =
        [SignalSource::Model, SignalSource::Ingress, SignalSource::Control, SignalSource::Protection];

    pub fn as_str(self) -> &'static str {
        match self {
            SignalSource::Model => "model",
            SignalSource::Ingress => "ingress",
            SignalSource::Control => "control",
            SignalSource::Protection => "protection",
        }
    }
}

/// A request to trade, from the model or an external strategy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Signal {
    pub id: SignalId,
    pub symbol: SymbolId,
    pub side: Side,
    pub qty: f64,
    pub kind: OrderKind,
    /// Limit price; ignored for market orders.
    pub price: f64,
    pub source: SignalSource,
    /// When the input that caused this signal was read: tick-to-order latency starts here.
    pub origin_ns: Nanos,
    /// Who hears of a refusal made after the signal was queued (an ingress connection).
    pub reply_to: ReplyTo,
    /// The stop-loss and take-profit the position it opens is to carry.
    pub stops: Stops,
}

/// A stop-loss or take-profit level as a signal gives it: a price, or a distance in basis points
/// from the order's reference price (the limit price, or the quote a market order takes).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Level {
    #[default]
    None,
    Price(f64),
    Bps(f64),
}

impl Level {
    /// From a price and a distance in basis points, at most one of them non-zero.
    pub fn from_parts(price: f64, bps: f64) -> Level {
        if price > 0.0 {
            Level::Price(price)
        } else if bps > 0.0 {
            Level::Bps(bps)
        } else {
            Level::None
        }
    }

    /// (price, bps): the fields a checkpoint keeps, 0 where not given.
    pub fn parts(self) -> (f64, f64) {
        match self {
            Level::None => (0.0, 0.0),
            Level::Price(p) => (p, 0.0),
            Level::Bps(b) => (0.0, b),
        }
    }

    /// The price of this level for an order on `side` at `reference`: a stop-loss lies on the
    /// losing side of it (`toward_loss`), a take-profit on the winning side. 0 for none.
    #[inline]
    pub fn resolve(self, side: Side, reference: f64, toward_loss: bool) -> f64 {
        match self {
            Level::None => 0.0,
            Level::Price(p) => p,
            Level::Bps(b) => {
                let away = if toward_loss { -side.sign() } else { side.sign() };
                reference * (1.0 + away * b * 1e-4)
            }
        }
    }
}

/// The protective levels a signal asks for.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Stops {
    pub sl: Level,
    pub tp: Level,
}

impl Stops {
    pub const NONE: Stops = Stops { sl: Level::None, tp: Level::None };

    pub fn is_none(&self) -> bool {
        self.sl == Level::None && self.tp == Level::None
    }

    /// The absolute (stop-loss, take-profit) prices for an order on `side` at `reference`.
    #[inline]
    pub fn resolve(&self, side: Side, reference: f64) -> (f64, f64) {
        (self.sl.resolve(side, reference, true), self.tp.resolve(side, reference, false))
    }
}

/// Which protective level closed a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StopKind {
    StopLoss,
    TakeProfit,
}

impl StopKind {
    pub const ALL: [StopKind; 2] = [StopKind::StopLoss, StopKind::TakeProfit];

    /// As a metric label and in ids: `sl`, `tp`.
    pub fn as_str(self) -> &'static str {
        match self {
            StopKind::StopLoss => "sl",
            StopKind::TakeProfit => "tp",
        }
    }

    /// From its name as [`StopKind::as_str`] writes it.
    pub fn parse(s: &str) -> Option<StopKind> {
        StopKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Which level, if any, a position of `qty` has crossed at this quote: a long closes at the
    /// bid, a short at the ask. `sl`/`tp` are prices, 0 for none.
    #[inline]
    pub fn crossed(qty: f64, sl: f64, tp: f64, bid: f64, ask: f64) -> Option<StopKind> {
        if qty > 0.0 && bid > 0.0 {
            if sl > 0.0 && bid <= sl {
                return Some(StopKind::StopLoss);
            }
            if tp > 0.0 && bid >= tp {
                return Some(StopKind::TakeProfit);
            }
        } else if qty < 0.0 && ask > 0.0 {
            if sl > 0.0 && ask >= sl {
                return Some(StopKind::StopLoss);
            }
            if tp > 0.0 && ask <= tp {
                return Some(StopKind::TakeProfit);
            }
        }
        None
    }
}

/// The ingress connection that sent a signal, to tell it of a refusal made after its `queued`
/// answer; [`ReplyTo::NONE`] for signals nobody waits on (the model's, the operator's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReplyTo(pub u32);

impl ReplyTo {
    pub const NONE: ReplyTo = ReplyTo(0);
}

/// A refusal made after a signal was queued, for the client that sent it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LateRefusal {
    pub reply_to: ReplyTo,
    pub id: SignalId,
    pub reason: DropReason,
}

impl Signal {
    /// A client's market order for one symbol's `qty` (ingress, no levels, no reply slot).
    pub fn market(id: SignalId, symbol: SymbolId, side: Side, qty: f64) -> Signal {
        Signal { id, symbol, side, qty, source: SignalSource::Ingress, ..Signal::default() }
    }
}

impl Default for Signal {
    fn default() -> Self {
        Signal {
            id: SignalId::default(),
            symbol: 0,
            side: Side::Buy,
            qty: 0.0,
            kind: OrderKind::Market,
            price: 0.0,
            source: SignalSource::Model,
            origin_ns: 0,
            reply_to: ReplyTo::NONE,
            stops: Stops::NONE,
        }
    }
}

/// Why a signal did not become an order. Each is a `reason` label of `signals_dropped_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    QueueFull,
    Paused,
    Stopping,
    Duplicate,
    NoQuote,
    MaxPosition,
    MaxOrdersPerSecond,
    MaxNotional,
    MaxOpenOrders,
    VenueRejected,
    /// Waited longer than `queue.max_wait` for the venue's session.
    VenueUnavailable,
    /// The order journal is behind the engine (its disk is slow or failing): a `queued` answer
    /// could not be kept.
    JournalBehind,
    /// Trading is halted (`trading.state: halted`): nothing is sent.
    Halted,
    /// Trading is reducing: only orders that bring a position toward zero are sent.
    Reducing,
    /// The symbol's market is closed (`sessions:`), or about to close and taking only orders that
    /// reduce.
    MarketClosed,
}

impl DropReason {
    pub const ALL: [DropReason; 15] = [
        DropReason::QueueFull,
        DropReason::Paused,
        DropReason::Stopping,
        DropReason::Duplicate,
        DropReason::NoQuote,
        DropReason::MaxPosition,
        DropReason::MaxOrdersPerSecond,
        DropReason::MaxNotional,
        DropReason::MaxOpenOrders,
        DropReason::VenueRejected,
        DropReason::VenueUnavailable,
        DropReason::JournalBehind,
        DropReason::Halted,
        DropReason::Reducing,
        DropReason::MarketClosed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::Paused => "paused",
            DropReason::Stopping => "stopping",
            DropReason::Duplicate => "duplicate",
            DropReason::NoQuote => "no_quote",
            DropReason::MaxPosition => "max_position",
            DropReason::MaxOrdersPerSecond => "max_orders_per_second",
            DropReason::MaxNotional => "max_notional",
            DropReason::MaxOpenOrders => "max_open_orders",
            DropReason::VenueRejected => "venue_rejected",
            DropReason::VenueUnavailable => "venue_unavailable",
            DropReason::JournalBehind => "journal_behind",
            DropReason::Halted => "halted",
            DropReason::Reducing => "reducing",
            DropReason::MarketClosed => "market_closed",
        }
    }

    /// Index into per-reason counter arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// What the engine may send: everything, only orders that bring a position toward zero, or
/// nothing (orders in flight settle either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TradingState {
    Active,
    Reducing,
    Halted,
}

impl TradingState {
    pub const ALL: [TradingState; 3] = [TradingState::Active, TradingState::Reducing, TradingState::Halted];

    pub fn as_str(self) -> &'static str {
        match self {
            TradingState::Active => "active",
            TradingState::Reducing => "reducing",
            TradingState::Halted => "halted",
        }
    }

    pub fn parse(s: &str) -> Option<TradingState> {
        TradingState::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// How much it refuses: active 0, reducing 1, halted 2 (a breaker only ever raises it).
    pub fn strictness(self) -> u8 {
        self.code()
    }

    /// A small number for fixed-size records (the order journal).
    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn from_code(code: u8) -> Option<TradingState> {
        TradingState::ALL.get(usize::from(code)).copied()
    }
}

/// What an equity breaker does when it trips.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BreakerAction {
    /// Trading state `reducing`.
    Reducing,
    /// Trading state `halted`.
    Halted,
    /// Halt, cancel open orders, then close every position (as `ctl flatten`).
    Flatten,
}

impl BreakerAction {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerAction::Reducing => "reducing",
            BreakerAction::Halted => "halted",
            BreakerAction::Flatten => "flatten",
        }
    }

    /// The trading state a trip leaves behind.
    pub fn state(self) -> TradingState {
        match self {
            BreakerAction::Reducing => TradingState::Reducing,
            BreakerAction::Halted | BreakerAction::Flatten => TradingState::Halted,
        }
    }
}

/// What the venue lets be traded in a symbol (MT5: SYMBOL_TRADE_MODE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TradeMode {
    /// Anything.
    #[default]
    Full,
    /// No short position: a sell only while it reduces a long.
    LongOnly,
    /// No long position: a buy only while it reduces a short.
    ShortOnly,
    /// Only orders that reduce a position.
    CloseOnly,
    /// Nothing.
    Disabled,
}

impl TradeMode {
    /// Why a signal that the mode does not let through is refused.
    pub fn refusal(self) -> &'static str {
        match self {
            TradeMode::Full => "",
            TradeMode::LongOnly => "the broker allows only long positions in the symbol (SYMBOL_TRADE_MODE_LONGONLY)",
            TradeMode::ShortOnly => {
                "the broker allows only short positions in the symbol (SYMBOL_TRADE_MODE_SHORTONLY)"
            }
            TradeMode::CloseOnly => {
                "the broker allows only closing positions in the symbol (SYMBOL_TRADE_MODE_CLOSEONLY)"
            }
            TradeMode::Disabled => "the broker has trading in the symbol disabled (SYMBOL_TRADE_MODE_DISABLED)",
        }
    }

    /// Whether an order on `side` may go out, `reduces` saying whether it brings the position
    /// (with the orders in flight) toward zero without crossing it.
    pub fn allows(self, side: Side, reduces: bool) -> bool {
        match self {
            TradeMode::Full => true,
            TradeMode::Disabled => false,
            TradeMode::CloseOnly => reduces,
            TradeMode::LongOnly => side == Side::Buy || reduces,
            TradeMode::ShortOnly => side == Side::Sell || reduces,
        }
    }
}

/// What a market's calendar does in the `close_before` minutes before it closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AtClose {
    /// Close the symbol's position and cancel its orders; then only orders that reduce go out.
    Flatten,
    /// Only orders that bring the symbol's position toward zero go out.
    Reducing,
    /// Trade on until the close.
    #[default]
    Nothing,
}

impl AtClose {
    pub fn as_str(self) -> &'static str {
        match self {
            AtClose::Flatten => "flatten",
            AtClose::Reducing => "reducing",
            AtClose::Nothing => "nothing",
        }
    }
}

/// The engine's handle for an order: a slot in the executor's table plus a sequence number, so a
/// stale event for a reused slot is recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OrderKey(pub u64);

impl OrderKey {
    pub fn new(seq: u64, slot: u32) -> OrderKey {
        OrderKey((seq << 20) | u64::from(slot))
    }

    pub fn slot(self) -> usize {
        (self.0 & ((1 << 20) - 1)) as usize
    }

    pub fn seq(self) -> u64 {
        self.0 >> 20
    }
}

/// An order handed to a venue.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OrderRequest {
    pub key: OrderKey,
    /// Client order id, derived from the signal id.
    pub client_id: SignalId,
    pub symbol: SymbolId,
    pub side: Side,
    pub qty: f64,
    pub kind: OrderKind,
    pub price: f64,
    /// Stop-loss and take-profit prices the position is to carry; 0 for none. A venue that holds
    /// stops ([`crate::domain::venue::Venue::holds_stops`]) sends them with the order.
    pub sl: f64,
    pub tp: f64,
    /// Execute at once what can be, and cancel the rest (FIX TimeInForce IOC, whatever the venue's
    /// default): a protective exit sent as a marketable limit, which must not rest on the book
    /// while the position it closes is open.
    pub immediate: bool,
    /// Rest until filled or cancelled (FIX TimeInForce GTC, whatever the venue's default): a
    /// position's stop-loss or take-profit resting at a venue that holds stop orders.
    pub until_cancelled: bool,
}

/// What a venue says about an order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum VenueEvent {
    /// The venue has the order.
    Accepted { key: OrderKey },
    /// A (partial) execution. `exec_id` is unique per venue and increases.
    Fill { key: OrderKey, exec_id: u64, qty: f64, price: f64 },
    /// The venue refused the order.
    Rejected { key: OrderKey, reason: &'static str },
    /// The order is gone without (further) fills.
    Cancelled { key: OrderKey },
    /// A fill of an order this process does not hold: sent by the process before a crash, after
    /// its last checkpoint, and reported by the venue's replay of its session.
    /// With `only_if_unknown`, it books nothing when the id is already in the engine's memory
    /// (a venue reporting its whole recent history, whose known orders were booked already).
    Adopted { client_id: SignalId, symbol: SymbolId, side: Side, qty: f64, price: f64, only_if_unknown: bool },
    /// The account's balance as the venue reports it (money, in the account's currency).
    Balance { balance: f64 },
    /// The commission charged for the fill reported just before it (money; positive is a cost).
    /// Booked only when that fill was.
    Commission { symbol: SymbolId, amount: f64 },
    /// A stop-loss or take-profit the venue holds closed (part of) a position: its execution,
    /// `ticket` being the venue's unique number of it (the MT5 deal ticket). Booked once per ticket.
    StopExecuted { stop: StopKind, ticket: u64, symbol: SymbolId, side: Side, qty: f64, price: f64 },
    /// The venue reported its own trading hours for the symbol ([`crate::domain::venue::Venue::trade_sessions`]).
    SessionTimes { symbol: SymbolId },
    /// The venue's own net position of the symbol for this account (MT5: the snapshot's
    /// positions of mt5bot's magic, buys less sells), as of the events before it: compared with
    /// the books, where a difference is an account and books that have parted.
    PositionReported { symbol: SymbolId, net: f64 },
}

/// Seconds in a week.
pub const WEEK_SECONDS: u32 = 7 * 86_400;

/// Where a Unix time falls in its week, in seconds from Sunday 00:00 UTC (the Unix epoch was a
/// Thursday).
pub fn week_second_utc(unix_s: i64) -> u32 {
    (unix_s + 4 * 86_400).rem_euclid(i64::from(WEEK_SECONDS)) as u32
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_trade_mode_lets_through_what_the_broker_allows() {
        use Side::{Buy, Sell};
        for (mode, want) in [
            // (buy opening, sell opening, buy reducing, sell reducing)
            (TradeMode::Full, [true, true, true, true]),
            (TradeMode::LongOnly, [true, false, true, true]),
            (TradeMode::ShortOnly, [false, true, true, true]),
            (TradeMode::CloseOnly, [false, false, true, true]),
            (TradeMode::Disabled, [false, false, false, false]),
        ] {
            let got =
                [mode.allows(Buy, false), mode.allows(Sell, false), mode.allows(Buy, true), mode.allows(Sell, true)];
            assert_eq!(got, want, "{mode:?}");
            assert_eq!(mode.refusal().is_empty(), mode == TradeMode::Full, "{mode:?}");
        }
    }

    use super::*;

    #[test]
    fn order_kinds_are_named_as_config_writes_them() {
        for k in [OrderKind::Market, OrderKind::Limit] {
            assert_eq!(serde_json::to_value(k).expect("json"), k.as_str());
        }
    }

    #[test]
    fn signal_ids_are_checked() {
        assert_eq!(SignalId::parse("abc-1.2_x:9").map(|i| i.to_string()), Some("abc-1.2_x:9".into()));
        assert!(SignalId::parse("").is_none());
        assert!(SignalId::parse("has space").is_none());
        assert!(SignalId::parse("é").is_none());
        assert!(SignalId::parse(&"x".repeat(33)).is_none());
        assert!(SignalId::parse(&"x".repeat(32)).is_some());
    }

    #[test]
    fn counter_ids_fit() {
        let p = SignalId::parse("M1732-").expect("valid");
        assert_eq!(SignalId::with_counter(&p, 0).as_str(), "M1732-0");
        assert_eq!(SignalId::with_counter(&p, 12345).as_str(), "M1732-12345");
        let long = SignalId::parse(&"p".repeat(32)).expect("valid");
        let id = SignalId::with_counter(&long, u64::MAX);
        assert_eq!(id.as_str().len(), 32);
        assert!(id.as_str().ends_with(&u64::MAX.to_string()));
    }

    #[test]
    fn order_keys_split() {
        let k = OrderKey::new(77, 5);
        assert_eq!((k.seq(), k.slot()), (77, 5));
    }
}

/// A fill, as it leaves the engine for the trade history (InfluxDB `mt5bot_trades`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TradeRecord {
    /// Wall-clock time of the fill, nanoseconds since the Unix epoch.
    pub unix_ns: i128,
    pub symbol: SymbolId,
    pub side: Side,
    pub client_id: SignalId,
    pub exec_id: u64,
    pub qty: f64,
    pub price: f64,
    pub realized_pnl: f64,
}

/// An order's type. The model, the ingress and the config speak of `market` and `limit`; a
/// `stop` (a market order once the price trades through `price`) is only what the engine rests
/// at a venue that holds stop orders, for a position's stop-loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderKind {
    Market,
    Limit,
    #[serde(skip)]
    Stop,
}

impl OrderKind {
    /// The name in checkpoints, the journal and the status (`market`, `limit`, `stop`).
    pub fn as_str(self) -> &'static str {
        match self {
            OrderKind::Market => "market",
            OrderKind::Limit => "limit",
            OrderKind::Stop => "stop",
        }
    }

    /// From [`OrderKind::as_str`]'s names.
    pub fn parse(s: &str) -> Option<OrderKind> {
        [OrderKind::Market, OrderKind::Limit, OrderKind::Stop].into_iter().find(|k| k.as_str() == s)
    }
}

/// How long an order stays working at the venue (FIX TimeInForce).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeInForce {
    Day,
    Gtc,
    Ioc,
    Fok,
}

impl TimeInForce {
    /// The FIX value of tag 59.
    pub fn fix_value(self) -> &'static [u8] {
        match self {
            TimeInForce::Day => b"0",
            TimeInForce::Gtc => b"1",
            TimeInForce::Ioc => b"3",
            TimeInForce::Fok => b"4",
        }
    }
}

/// MT5's order filling policy (ENUM_ORDER_TYPE_FILLING).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Filling {
    Fok,
    Ioc,
    Return,
}

impl Filling {
    pub fn as_str(self) -> &'static str {
        match self {
            Filling::Fok => "fok",
            Filling::Ioc => "ioc",
            Filling::Return => "return",
        }
    }
}

/// What a drift alarm does besides counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DriftAction {
    /// Count and log only.
    Log,
    /// Count, log, and refuse new signals for `drift.pause_for`.
    Pause,
}
