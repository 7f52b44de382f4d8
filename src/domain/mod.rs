//! The domain layer: the types every other layer speaks, and the traits the engine drives.
//!
//! - [`types`]: ids, `Nanos`, `Side`, order kinds, `Tick`, `Signal`, `OrderRequest`, `VenueEvent`,
//!   trade records and drop reasons (fixed-size, `Copy`).
//! - [`clock`]: the `Clock` trait and its real and manual clocks.
//! - [`venue`]: the `Venue` trait and `RestoredOrder`.
//! - [`notice`]: the events for the operator's notification sinks, and their bounded outlets.
//!
//! It imports only std, serde and `crate::support` (the layering test holds it to that).

pub mod clock;
pub mod notice;
pub mod types;
pub mod venue;
