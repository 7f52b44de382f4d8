//! The bridge protocol's wire types (`docs/mt5-bridge.md`): the version, the trade server return
//! codes the bridge acts on, and the messages the Expert Advisor sends, read without copying.

use std::borrow::Cow;

use serde::Deserialize;

use crate::domain::types::TradeMode;

/// Version of the bridge protocol in `hello`.
pub const PROTOCOL_VERSION: u32 = 1;

/// MT5 trade server return codes (MqlTradeResult.retcode) the bridge acts on.
pub mod retcode {
    pub const REQUOTE: u32 = 10004;
    pub const REJECT: u32 = 10006;
    pub const CANCEL: u32 = 10007;
    pub const PLACED: u32 = 10008;
    pub const DONE: u32 = 10009;
    pub const DONE_PARTIAL: u32 = 10010;
    pub const INVALID_VOLUME: u32 = 10014;
    pub const INVALID_PRICE: u32 = 10015;
    pub const MARKET_CLOSED: u32 = 10018;
    pub const NO_MONEY: u32 = 10019;
    pub const PRICE_OFF: u32 = 10021;
    pub const TOO_MANY_REQUESTS: u32 = 10024;
    pub const CONNECTION: u32 = 10031;

    /// The trade server's return codes of a refusal (MqlTradeResult.retcode, as the MQL5
    /// reference lists them), with the `reason` label of `venue_refusals_total` and what it means.
    pub const REFUSALS: [(u32, &str, &str); 38] = [
        (REQUOTE, "requote", "requote (10004)"),
        (REJECT, "rejected", "rejected by the trade server (10006)"),
        (CANCEL, "cancelled_by_trader", "cancelled by the trader (10007)"),
        (10011, "processing_error", "request processing error (10011)"),
        (10012, "timeout", "cancelled by timeout (10012)"),
        (10013, "invalid_request", "invalid request (10013)"),
        (INVALID_VOLUME, "invalid_volume", "invalid volume (10014)"),
        (INVALID_PRICE, "invalid_price", "invalid price (10015)"),
        (10016, "invalid_stops", "invalid stops (10016)"),
        (10017, "trade_disabled", "trading is disabled for the symbol or account (10017)"),
        (MARKET_CLOSED, "market_closed", "market closed (10018)"),
        (NO_MONEY, "no_money", "not enough money (10019)"),
        (10020, "price_changed", "prices changed (10020)"),
        (PRICE_OFF, "no_quotes", "no quotes to process the request (10021)"),
        (10022, "invalid_expiration", "invalid order expiration (10022)"),
        (10023, "order_changed", "order state changed (10023)"),
        (TOO_MANY_REQUESTS, "too_many_requests", "too many requests (10024)"),
        (10025, "no_changes", "no changes in the request (10025)"),
        (10026, "autotrading_disabled_by_server", "autotrading disabled by the server (10026)"),
        (10027, "autotrading_disabled_by_client", "autotrading disabled in the terminal (10027)"),
        (10028, "locked", "request locked for processing (10028)"),
        (10029, "frozen", "order or position frozen (10029)"),
        (10030, "invalid_filling", "unsupported filling mode (10030)"),
        (CONNECTION, "no_connection", "no connection to the trade server (10031)"),
        (10032, "live_accounts_only", "allowed only on live accounts (10032)"),
        (10033, "pending_orders_limit", "the pending orders limit is reached (10033)"),
        (10034, "volume_limit", "the symbol's volume limit is reached (10034)"),
        (10035, "invalid_order", "incorrect or prohibited order type (10035)"),
        (10036, "position_closed", "the position is already closed (10036)"),
        (10038, "invalid_close_volume", "the close volume exceeds the position (10038)"),
        (10039, "close_order_exists", "a close order already exists for the position (10039)"),
        (10040, "positions_limit", "the open positions limit is reached (10040)"),
        (10041, "activation_rejected", "pending order activation rejected, order cancelled (10041)"),
        (10042, "long_only", "only long positions are allowed (10042)"),
        (10043, "short_only", "only short positions are allowed (10043)"),
        (10044, "close_only", "only closing positions is allowed (10044)"),
        (10045, "fifo_close", "positions close only by FIFO (10045)"),
        (10046, "hedging_prohibited", "opposite positions on one symbol are disabled (10046)"),
    ];

    /// The label for codes the table does not list.
    pub const OTHER: &str = "other";

    /// Where `code` stands in [`REFUSALS`] (`REFUSALS.len()` for [`OTHER`]).
    pub fn index(code: u32) -> usize {
        REFUSALS.iter().position(|r| r.0 == code).unwrap_or(REFUSALS.len())
    }

    /// A short reason for a refusal, for logs and `Rejected` events.
    pub fn reason(code: u32) -> &'static str {
        REFUSALS.get(index(code)).map_or("refused by the terminal (see the log for the retcode)", |r| r.2)
    }

    /// The codes that need the operator (money, or trading switched off), not a retry.
    pub fn needs_operator(code: u32) -> bool {
        matches!(code, 10017 | NO_MONEY | 10026 | 10027)
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct Inbound<'a> {
    #[serde(rename = "type", borrow)]
    pub(super) kind: Cow<'a, str>,
    #[serde(default, borrow)]
    pub(super) hmac: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(super) symbol: Option<Cow<'a, str>>,
    #[serde(default)]
    pub(super) bid: Option<f64>,
    #[serde(default)]
    pub(super) ask: Option<f64>,
    #[serde(default, borrow)]
    pub(super) id: Option<Cow<'a, str>>,
    #[serde(default)]
    pub(super) retcode: Option<u32>,
    #[serde(default)]
    pub(super) deal: Option<u64>,
    #[serde(default)]
    pub(super) volume: Option<f64>,
    #[serde(default)]
    pub(super) price: Option<f64>,
    #[serde(default, borrow)]
    pub(super) comment: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(super) deals: Option<Vec<SnapshotDeal<'a>>>,
    #[serde(default, borrow)]
    pub(super) orders: Option<Vec<SnapshotOrder<'a>>>,
    #[serde(default, borrow)]
    pub(super) error: Option<Cow<'a, str>>,
    /// `result`, `deal`: the deal's commission as MT5 reports it (DEAL_COMMISSION, negative
    /// for a charge).
    #[serde(default)]
    pub(super) commission: Option<f64>,
    /// `account`: the balance, in the account's currency.
    #[serde(default)]
    pub(super) balance: Option<f64>,
    /// `account`: equity, margin used and free margin (ACCOUNT_EQUITY, _MARGIN, _MARGIN_FREE).
    #[serde(default)]
    pub(super) equity: Option<f64>,
    #[serde(default)]
    pub(super) margin: Option<f64>,
    #[serde(default)]
    pub(super) margin_free: Option<f64>,
    /// `account`: whether the terminal, the EA and the account allow trading.
    #[serde(default)]
    pub(super) trade_allowed: Option<bool>,
    /// `account`: the account's currency (ACCOUNT_CURRENCY).
    #[serde(default, borrow)]
    pub(super) currency: Option<Cow<'a, str>>,
    /// `deal`: `sl` or `tp` when a stop the broker holds made it (DEAL_REASON_SL, DEAL_REASON_TP).
    #[serde(default, borrow)]
    pub(super) reason: Option<Cow<'a, str>>,
    /// `deal` of a stop: `buy` or `sell` (DEAL_TYPE).
    #[serde(default, borrow)]
    pub(super) deal_type: Option<Cow<'a, str>>,
    /// `snapshot`: each symbol's trading sessions as the terminal has them
    /// (`SymbolInfoSessionTrade`): `[weekday (0 Sunday), from, to]`, seconds after the server's
    /// midnight.
    #[serde(default, borrow)]
    pub(super) sessions: Option<std::collections::BTreeMap<Cow<'a, str>, Vec<SessionWindow>>>,
    /// `snapshot`: the trade server's offset from UTC in seconds (`TimeTradeServer() - TimeGMT()`).
    #[serde(default)]
    pub(super) server_offset: Option<i64>,
    /// `snapshot`: each streamed symbol's trading rules (SymbolInfoDouble/SymbolInfoInteger).
    #[serde(default, borrow)]
    pub(super) specs: Option<std::collections::BTreeMap<Cow<'a, str>, SymbolSpec>>,
    /// `snapshot`: more pages follow this one; the last page leaves it out (or says false).
    #[serde(default)]
    pub(super) more: Option<bool>,
    /// `auth`: the account's margin mode (ACCOUNT_MARGIN_MODE): `netting`, `exchange` or `hedging`.
    #[serde(default, borrow)]
    pub(super) margin_mode: Option<Cow<'a, str>>,
    /// `auth`: the EA closes mt5bot's positions by ticket on a hedging account (oldest first,
    /// before opening what is left of an order), so the account stays net as mt5bot's books are.
    #[serde(default)]
    pub(super) closes_by_ticket: Option<bool>,
    /// `order_closed`: how the order ended at the terminal without being filled whole
    /// (ORDER_STATE_CANCELED, _EXPIRED, _REJECTED: `canceled`, `expired`, `rejected`).
    #[serde(default, borrow)]
    pub(super) state: Option<Cow<'a, str>>,
    /// `order_closed`: the volume the order filled before it ended (ORDER_VOLUME_INITIAL -
    /// ORDER_VOLUME_CURRENT).
    #[serde(default)]
    pub(super) volume_filled: Option<f64>,
    /// `snapshot`: orders of mt5bot's magic that ended in the recent history without being
    /// filled whole (cancelled, expired, rejected), so one is not taken for an order the terminal
    /// never saw.
    #[serde(default, borrow)]
    pub(super) history: Option<Vec<SnapshotClosed<'a>>>,
    /// `snapshot` (its last page): the open positions of mt5bot's magic.
    #[serde(default, borrow)]
    pub(super) positions: Option<Vec<SnapshotPosition<'a>>>,
}

fn owned(c: Cow<'_, str>) -> Cow<'static, str> {
    Cow::Owned(c.into_owned())
}

impl SnapshotDeal<'_> {
    /// The deal, holding its own strings (a page kept until the last one arrives).
    pub(super) fn into_owned(self) -> SnapshotDeal<'static> {
        SnapshotDeal {
            deal: self.deal,
            id: self.id.map(owned),
            comment: owned(self.comment),
            volume: self.volume,
            price: self.price,
            symbol: self.symbol.map(owned),
            side: self.side.map(owned),
            reason: self.reason.map(owned),
            commission: self.commission,
        }
    }
}

impl SnapshotOrder<'_> {
    pub(super) fn into_owned(self) -> SnapshotOrder<'static> {
        SnapshotOrder { id: self.id.map(owned), comment: owned(self.comment) }
    }
}

impl SnapshotClosed<'_> {
    pub(super) fn into_owned(self) -> SnapshotClosed<'static> {
        SnapshotClosed {
            id: self.id.map(owned),
            comment: owned(self.comment),
            state: owned(self.state),
            volume_filled: self.volume_filled,
        }
    }
}

/// A symbol's trading rules as the terminal reports them: prices are multiples of `tick_size`
/// (SYMBOL_TRADE_TICK_SIZE) written with `digits` decimals (SYMBOL_DIGITS); volumes lie between
/// `volume_min` and `volume_max` in steps of `volume_step` (SYMBOL_VOLUME_*).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub(super) struct SymbolSpec {
    #[serde(default)]
    pub(super) digits: Option<u32>,
    pub(super) tick_size: f64,
    pub(super) volume_min: f64,
    pub(super) volume_max: f64,
    pub(super) volume_step: f64,
    /// SYMBOL_TRADE_MODE: `full`, `long_only`, `short_only`, `close_only`, `disabled`; full when
    /// left out or unknown.
    #[serde(default, deserialize_with = "trade_mode")]
    pub(super) trade_mode: TradeMode,
    /// SYMBOL_FILLING_MODE as names (`fok`, `ioc`), as bits: 1 fok, 2 ioc; `None` when left out.
    #[serde(default, deserialize_with = "filling_modes")]
    pub(super) filling: Option<u8>,
}

fn trade_mode<'de, D: serde::Deserializer<'de>>(d: D) -> Result<TradeMode, D::Error> {
    let mode: Option<Cow<'de, str>> = Option::deserialize(d)?;
    Ok(match mode.as_deref() {
        Some("long_only") => TradeMode::LongOnly,
        Some("short_only") => TradeMode::ShortOnly,
        Some("close_only") => TradeMode::CloseOnly,
        Some("disabled") => TradeMode::Disabled,
        _ => TradeMode::Full,
    })
}

fn filling_modes<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u8>, D::Error> {
    let names: Option<Vec<Cow<'de, str>>> = Option::deserialize(d)?;
    Ok(names.map(|n| {
        n.iter().fold(0, |bits, m| match m.as_ref() {
            "fok" => bits | 1,
            "ioc" => bits | 2,
            _ => bits,
        })
    }))
}

impl SymbolSpec {
    /// Whether the figures make sense (all positive and finite, min <= max, at most 10 digits).
    pub(super) fn is_sane(&self) -> bool {
        let pos = |v: f64| v.is_finite() && v > 0.0;
        pos(self.tick_size)
            && pos(self.volume_min)
            && pos(self.volume_max)
            && pos(self.volume_step)
            && self.volume_min <= self.volume_max
            && self.digits.is_none_or(|d| d <= 10)
    }

    /// Decimals to write a price with: `digits`, or those of the tick size.
    pub(super) fn decimals(&self) -> usize {
        match self.digits {
            Some(d) => d as usize,
            None => (-self.tick_size.log10()).ceil().clamp(0.0, 10.0) as usize,
        }
    }

    /// `price` on the tick grid: a buy limit rounds down and a sell limit up (never a worse
    /// price than asked), other prices (stops) to the nearest tick.
    pub(super) fn round_price(&self, price: f64, toward: Option<bool>) -> f64 {
        if price <= 0.0 {
            return price;
        }
        let ticks = price / self.tick_size;
        // A price already on the grid stays put despite float noise.
        let near = ticks.round();
        let ticks = if (ticks - near).abs() < 1e-7 {
            near
        } else {
            match toward {
                Some(true) => ticks.floor(),
                Some(false) => ticks.ceil(),
                None => near,
            }
        };
        ticks * self.tick_size
    }

    /// Why `qty` cannot be sent, if it cannot.
    pub(super) fn volume_error(&self, qty: f64) -> Option<&'static str> {
        let eps = 1e-9 * qty.abs().max(1.0);
        if qty + eps < self.volume_min {
            return Some("the volume is under the symbol's minimum (SYMBOL_VOLUME_MIN)");
        }
        if qty > self.volume_max + eps {
            return Some("the volume is over the symbol's maximum (SYMBOL_VOLUME_MAX)");
        }
        let steps = qty / self.volume_step;
        if (steps - steps.round()).abs() > 1e-7 {
            return Some("the volume is off the symbol's step (SYMBOL_VOLUME_STEP)");
        }
        None
    }
}

/// One trading session of a symbol as the terminal reports it: weekday (0 Sunday), from, to in
/// seconds after the trade server's midnight.
pub(super) type SessionWindow = (u8, u32, u32);

#[derive(Debug, Clone, Deserialize)]
pub(super) struct SnapshotDeal<'a> {
    pub(super) deal: u64,
    /// mt5bot's id of the deal's order from the EA's own ticket map; the comment when absent.
    #[serde(borrow, default)]
    pub(super) id: Option<Cow<'a, str>>,
    /// The order's comment as the server keeps it (brokers may cut or rewrite it).
    #[serde(borrow)]
    pub(super) comment: Cow<'a, str>,
    pub(super) volume: f64,
    pub(super) price: f64,
    #[serde(borrow, default)]
    pub(super) symbol: Option<Cow<'a, str>>,
    /// `buy` or `sell` (DEAL_TYPE); EAs before it was added leave it out.
    #[serde(rename = "type", borrow, default)]
    pub(super) side: Option<Cow<'a, str>>,
    /// `sl` or `tp` for a deal a broker-held stop made (its comment is the server's, not an id).
    #[serde(borrow, default)]
    pub(super) reason: Option<Cow<'a, str>>,
    /// DEAL_COMMISSION (negative for a charge).
    #[serde(default)]
    pub(super) commission: Option<f64>,
}

/// An open position of mt5bot's magic at the terminal (on a hedging account one of several per
/// symbol).
#[derive(Debug, Clone, Deserialize)]
pub(super) struct SnapshotPosition<'a> {
    /// All optional: an entry an EA wrote otherwise spoils the comparison, not the snapshot.
    #[serde(borrow, default)]
    pub(super) symbol: Option<Cow<'a, str>>,
    #[serde(default)]
    pub(super) volume: Option<f64>,
    /// `buy` or `sell` (POSITION_TYPE).
    #[serde(rename = "type", borrow, default)]
    pub(super) side: Option<Cow<'a, str>>,
}

#[derive(Debug, Clone, Deserialize)]
pub(super) struct SnapshotOrder<'a> {
    /// As in [`SnapshotDeal`]: the EA's id, else the comment.
    #[serde(borrow, default)]
    pub(super) id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(super) comment: Cow<'a, str>,
}

/// An order of mt5bot's that ended at the terminal without being filled whole: in the
/// snapshot's `history` and, while a session is up, as an `order_closed` message.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct SnapshotClosed<'a> {
    /// As in [`SnapshotDeal`]: the EA's id, else the comment.
    #[serde(borrow, default)]
    pub(super) id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(super) comment: Cow<'a, str>,
    #[serde(borrow)]
    pub(super) state: Cow<'a, str>,
    #[serde(default)]
    pub(super) volume_filled: f64,
}

/// How an order ended at the terminal without being filled whole (ENUM_ORDER_STATE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ended {
    Canceled,
    Expired,
    Rejected,
}

impl Ended {
    pub(super) const ALL: [Ended; 3] = [Ended::Canceled, Ended::Expired, Ended::Rejected];

    /// From the protocol's `state` (MQL5's ORDER_STATE_* names in lower case).
    pub(super) fn parse(s: &str) -> Option<Ended> {
        Ended::ALL.into_iter().find(|e| e.as_str() == s)
    }

    /// The protocol's name, and the `state` label of `venue_orders_ended_total`.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Ended::Canceled => "canceled",
            Ended::Expired => "expired",
            Ended::Rejected => "rejected",
        }
    }
}

/// mt5bot's id of a snapshot entry: the EA's own (`id`, from its ticket map) when it gives one,
/// else the order's comment as the server keeps it.
pub(super) trait Keyed {
    fn key(&self) -> &str;
}

macro_rules! keyed {
    ($($t:ident),*) => {$(
        impl Keyed for $t<'_> {
            fn key(&self) -> &str {
                self.id.as_deref().filter(|i| !i.is_empty()).unwrap_or(&self.comment)
            }
        }
    )*};
}
keyed!(SnapshotDeal, SnapshotOrder, SnapshotClosed);

#[cfg(test)]
mod tests {
    use super::*;

    fn eurusd() -> SymbolSpec {
        SymbolSpec {
            digits: Some(5),
            tick_size: 0.00001,
            volume_min: 0.01,
            volume_max: 100.0,
            volume_step: 0.01,
            trade_mode: TradeMode::Full,
            filling: None,
        }
    }

    #[test]
    fn prices_go_on_the_tick_grid_never_worse_for_a_limit() {
        let s = eurusd();
        let p = 1.085_404_267_500_000_2;
        assert!((s.round_price(p, Some(true)) - 1.08540).abs() < 1e-12, "a buy limit rounds down");
        assert!((s.round_price(p, Some(false)) - 1.08541).abs() < 1e-12, "a sell limit rounds up");
        assert!((s.round_price(1.085_406, None) - 1.08541).abs() < 1e-12, "a stop to the nearest tick");
        assert!((s.round_price(1.08540 + 1e-13, Some(false)) - 1.08540).abs() < 1e-12, "on the grid stays");
        assert_eq!(s.round_price(0.0, None), 0.0, "no level stays none");
        assert_eq!(s.decimals(), 5);
        let jpy = SymbolSpec { digits: None, tick_size: 0.001, ..eurusd() };
        assert_eq!(jpy.decimals(), 3);
    }

    #[test]
    fn volumes_are_checked_against_min_max_and_step() {
        let s = eurusd();
        assert_eq!(s.volume_error(0.3), None, "0.1 + 0.2 is on the step despite float noise");
        assert_eq!(s.volume_error(0.1 + 0.2), None);
        assert!(s.volume_error(0.015).is_some_and(|e| e.contains("SYMBOL_VOLUME_STEP")));
        assert!(s.volume_error(0.001).is_some_and(|e| e.contains("SYMBOL_VOLUME_MIN")));
        assert!(s.volume_error(101.0).is_some_and(|e| e.contains("SYMBOL_VOLUME_MAX")));
        assert!(!SymbolSpec { tick_size: 0.0, ..s }.is_sane());
        assert!(!SymbolSpec { volume_min: 5.0, volume_max: 1.0, ..s }.is_sane());
        assert!(!SymbolSpec { volume_step: f64::NAN, ..s }.is_sane());
    }
}
