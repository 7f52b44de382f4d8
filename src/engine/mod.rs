//! The engine: everything that touches trading state, all on one thread.
//!
//! - [`queue`]: the bounded signal ring.
//! - [`model`] and [`drift`]: the EWMA-crossover model and its Page-Hinkley drift detector.
//! - [`executor`]: risk limits, order lifecycle, positions and PnL.
//! - [`protection`]: equity and the equity circuit breakers.
//! - [`sessions`]: market hours, from each symbol's calendar.
//! - [`replay`]: the engine on a replay file and a manual clock; [`backtest`] sums a run up.
//! - [`checkpoint`]: the encrypted checkpoint file format.
//! - [`journal`]: the order journal, a write-ahead log between checkpoints.
//! - [`core`]: the sans-IO glue that turns a tick into orders and venue events into books.
//! - [`ingress`]: JSON-lines signals from external strategies over TCP.
//! - [`reactor`]: the mio event loop that drives all of the above.
//!
//! Invariants: nothing here blocks, locks, or allocates on the tick-to-order path after start-up;
//! nothing here is touched by another thread (other threads send
//! [`crate::link::Command`]s).

pub mod backtest;
pub mod checkpoint;
pub mod core;
pub mod drift;
pub mod executor;
pub mod ingress;
pub mod journal;
pub mod model;
pub mod protection;
pub mod queue;
pub mod reactor;
pub mod recent;
pub mod replay;
pub mod sessions;
