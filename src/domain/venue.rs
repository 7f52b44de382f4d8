//! What the engine needs from a venue, and what it hands one back after a restart. The venues
//! (`crate::venue`) implement [`Venue`]; the engine drives any of them through it.

use super::types::{Nanos, OrderRequest, Side, SignalId, SymbolId, Tick, VenueEvent};

/// An order in flight before a restart, handed back to the venue.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RestoredOrder {
    pub req: OrderRequest,
    /// Quantity filled so far.
    pub filled: f64,
    /// What [`Venue::order_ref`] said when it was sent (0: unknown).
    pub venue_ref: u64,
    /// How long ago it was sent, at the restore (`None`: unknown, so never sent again).
    pub age_ns: Option<Nanos>,
}

/// What the engine needs from a venue. Implementations must not block or allocate per order.
pub trait Venue {
    /// Short name for logs and metric labels.
    fn name(&self) -> &'static str;

    /// Takes an order; `Err` carries the reason it was refused on the spot.
    fn submit(&mut self, order: &OrderRequest, now: Nanos) -> Result<(), &'static str>;

    /// Sees a quote update; may fill resting orders.
    fn on_tick(&mut self, tick: &Tick, now: Nanos, events: &mut Vec<VenueEvent>);

    /// Makes progress on anything due by `now`.
    fn poll(&mut self, now: Nanos, events: &mut Vec<VenueEvent>);

    /// When `poll` next has something to do.
    fn next_deadline(&self) -> Option<Nanos>;

    /// Whether the venue session is up (for `/readyz` and `broker_connected`).
    fn is_up(&self) -> bool;

    /// Orders the venue still holds.
    fn open_orders(&self) -> usize;

    /// Registers the venue's sockets with the engine's poll, before the loop starts. The venue may
    /// use the `tokens` tokens from `first` on. Venues without sockets keep the default.
    fn attach(&mut self, _registry: &mio::Registry, _first: mio::Token, _tokens: usize) -> std::io::Result<()> {
        Ok(())
    }

    /// The poll saw readiness on one of the venue's tokens; the next [`Venue::poll`] does the IO.
    fn on_ready(&mut self, _token: mio::Token, _readable: bool, _writable: bool) {}

    /// Ticks the venue received (the MT5 terminal streams them), oldest first; `None` when there
    /// are no more this turn.
    fn next_tick(&mut self) -> Option<Tick> {
        None
    }

    /// Whether an order handed over now would go out at once. While false, signals wait in the
    /// queue (up to `queue.max_wait`) instead of being sent on a dead session.
    fn ready_for_orders(&self) -> bool {
        true
    }

    /// The engine is stopping: say goodbye to the counterparty (FIX Logout). Must not block.
    fn close(&mut self, _now: Nanos) {}

    /// Asks the venue to cancel an order. The outcome arrives as an event: `Cancelled` (at once,
    /// into `events`, when the venue can tell), or fills if it executed first. `Err` when the venue
    /// cannot cancel it.
    fn cancel(
        &mut self,
        _order: &OrderRequest,
        _now: Nanos,
        _events: &mut Vec<VenueEvent>,
    ) -> Result<(), &'static str> {
        Err("this venue cannot cancel orders")
    }

    /// Whether the venue holds a position's stop-loss and take-profit itself (sent with the
    /// order, working while mt5bot is down, its executions reported as fills); otherwise the
    /// engine holds them and sends a closing market order when the mark crosses one.
    fn holds_stops(&self) -> bool {
        false
    }

    /// Whether a position's stop-loss and take-profit rest at the venue as orders of their own (a
    /// stop order and a limit order, until cancelled) that the engine places, resizes and cancels
    /// as the position changes (FIX with `venue.fix44.native_stops`). Their fills are ordinary
    /// fills. Only for venues where [`Venue::holds_stops`] is false.
    fn rests_stops(&self) -> bool {
        false
    }

    /// The longest order id (client order id) the venue carries; a longer signal id is refused at
    /// the ingress rather than queued and refused on submit.
    fn max_id_len(&self) -> usize {
        super::types::SIGNAL_ID_MAX
    }

    /// What the venue lets be traded in `symbol` (the MT5 terminal's SYMBOL_TRADE_MODE): signals it
    /// does not let through are refused before an order is made.
    fn trade_mode(&self, _symbol: SymbolId) -> crate::domain::types::TradeMode {
        crate::domain::types::TradeMode::Full
    }

    /// The venue's own trading hours for `symbol` when it reports them (the MT5 terminal's
    /// session times): windows of seconds from Sunday 00:00 UTC, `[from, to)`, within one week.
    fn trade_sessions(&self, _symbol: SymbolId) -> Option<&[(u32, u32)]> {
        None
    }

    /// Whether orders in flight outlive this process at the venue (a real counterparty holds
    /// them), so a checkpoint's open orders are restored and reconciled rather than dropped.
    fn keeps_orders(&self) -> bool {
        false
    }

    /// The venue's part of a checkpoint (e.g. FIX sequence numbers).
    fn checkpoint(&self) -> serde_json::Value {
        serde_json::Value::Null
    }

    /// Before trading starts: the venue's part of the checkpoint, and the orders in flight then,
    /// already restored into the executor, with the quantity filled so far.
    fn restore(&mut self, _state: &serde_json::Value, _orders: &[RestoredOrder]) -> Result<(), String> {
        Ok(())
    }

    /// The venue's own reference of an order it took (the FIX MsgSeqNum of its NewOrderSingle),
    /// kept in the journal and checkpoints so that after a restart the venue can tell whether the
    /// counterparty said it missed it; 0 when the venue has none.
    fn order_ref(&self, _client_id: &SignalId) -> u64 {
        0
    }

    /// Before trading starts: signals queued before the restart that will be sent again. The
    /// journal entry saying one was sent may have been lost in the crash, so a venue that can see
    /// its own history (the MT5 snapshot) books the fills it finds for them as adopted, and the
    /// engine then refuses the queued signal as a duplicate instead of sending it twice. (FIX
    /// needs nothing: the counterparty's replay of execution reports does the same.)
    fn restore_queued(&mut self, _queued: &[(SignalId, SymbolId, Side)]) {}

    /// Before trading starts: orders that ended after the checkpoint (known from the order
    /// journal), with the quantity filled; a report the venue repeats for one books nothing.
    fn remember_settled(&mut self, _settled: &[(SignalId, f64)]) {}
}
