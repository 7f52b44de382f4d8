//! Venues: where orders go and what they say back.
//!
//! Each venue is a state machine the engine thread drives: it is handed orders and ticks with the
//! current time, is polled when its deadline passes, and reports what happened as
//! [`VenueEvent`](crate::domain::types::VenueEvent)s pushed into a buffer the engine preallocates. `paper` is the simulated venue of
//! the embedded default; `feed` produces the ticks it trades on, `history` reads the files a replay plays. They implement
//! [`Venue`](crate::domain::venue::Venue).

pub mod feed;
pub mod fix44;
pub mod history;
pub mod mt5;
pub mod paper;
