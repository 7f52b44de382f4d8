//! Venues: where orders go and what they say back.
//!
//! Each venue is a state machine the engine thread drives: it is handed orders and ticks with the
//! current time, is polled when its deadline passes, and reports what happened as
//! [`VenueEvent`]s pushed into a buffer the engine preallocates. `paper` is the simulated venue of
//! the embedded default; `feed` produces the ticks it trades on.

pub mod feed;
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
}
