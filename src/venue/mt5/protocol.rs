//! The bridge protocol's wire types (`docs/mt5-bridge.md`): the version, the trade server return
//! codes the bridge acts on, and the messages the Expert Advisor sends, read without copying.

use std::borrow::Cow;

use serde::Deserialize;

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

    /// A short reason for a refusal, for logs and `Rejected` events.
    pub fn reason(code: u32) -> &'static str {
        match code {
            REQUOTE => "requote (10004)",
            REJECT => "rejected by the trade server (10006)",
            CANCEL => "cancelled by the trader (10007)",
            INVALID_VOLUME => "invalid volume (10014)",
            INVALID_PRICE => "invalid price (10015)",
            MARKET_CLOSED => "market closed (10018)",
            NO_MONEY => "not enough money (10019)",
            PRICE_OFF => "no quotes to process the request (10021)",
            TOO_MANY_REQUESTS => "too many requests (10024)",
            CONNECTION => "no connection to the trade server (10031)",
            _ => "refused by the terminal (see the log for the retcode)",
        }
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
}

/// One trading session of a symbol as the terminal reports it: weekday (0 Sunday), from, to in
/// seconds after the trade server's midnight.
pub(super) type SessionWindow = (u8, u32, u32);

#[derive(Debug, Deserialize)]
pub(super) struct SnapshotDeal<'a> {
    pub(super) deal: u64,
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

#[derive(Debug, Deserialize)]
pub(super) struct SnapshotOrder<'a> {
    #[serde(borrow)]
    pub(super) comment: Cow<'a, str>,
}
