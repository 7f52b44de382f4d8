//! Venues: where orders go and what they say back.
//!
//! Each venue is a state machine the engine thread drives: it is handed orders and ticks with the
//! current time, is polled when its deadline passes, and reports what happened as
//! [`VenueEvent`]s pushed into a buffer the engine preallocates. `paper` is the simulated venue of
//! the embedded default; `feed` produces the ticks it trades on.

pub mod feed;
pub mod fix44;
pub mod paper;

use crate::engine::types::{Nanos, OrderRequest, Tick, VenueEvent};

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

    /// Registers the venue's sockets with the engine's poll under `token`, before the loop starts.
    /// Venues without sockets keep the default.
    fn attach(&mut self, _registry: &mio::Registry, _token: mio::Token) -> std::io::Result<()> {
        Ok(())
    }

    /// The poll saw readiness on the venue's token; the next [`Venue::poll`] does the IO.
    fn on_ready(&mut self, _readable: bool, _writable: bool) {}

    /// Whether an order handed over now would go out at once. While false, signals wait in the
    /// queue (up to `queue.max_wait`) instead of being sent on a dead session.
    fn ready_for_orders(&self) -> bool {
        true
    }

    /// The engine is stopping: say goodbye to the counterparty (FIX Logout). Must not block.
    fn close(&mut self, _now: Nanos) {}
}
