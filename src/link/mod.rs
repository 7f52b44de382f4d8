//! The one meeting point of the engine thread and the helper thread.
//!
//! - [`Command`] and [`ControlRequest`]: what the helper (the control API, a fatal error in a
//!   helper) asks of the engine, sent through a [`CommandSender`] that never blocks and wakes the
//!   engine's poll; each control request carries its reply slot.
//! - [`ControlAnswer`] and the typed reports in [`report`]: what the engine answers. The engine
//!   builds plain values; only the control API turns them into JSON.
//! - [`LiveConfig`]: the parts of the configuration a reload applies while running, named once.
//! - [`Health`]: liveness and readiness, written by the engine, read by `/healthz` and `/readyz`.
//!
//! The engine and the control side import each other's world only through here (the layering
//! test holds them to it).

pub mod health;
pub mod live;
pub mod report;

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;

use mio::Waker;

use crate::domain::types::TradingState;

pub use self::health::Health;
pub use self::live::LiveConfig;
pub use self::report::{FlattenReport, StatusReport};

/// How many commands may wait for the engine.
pub const COMMAND_CAPACITY: usize = 64;

/// A request from another thread to the engine.
#[derive(Debug)]
pub enum Command {
    /// Stop as on SIGTERM, but exit with a failure status: something the daemon relies on broke.
    Shutdown { reason: String },
    /// An operator's request from the control API; the engine answers on `reply` with what it did.
    Control { request: ControlRequest, reply: SyncSender<ControlAnswer> },
}

/// What the control API asks the engine.
#[derive(Debug)]
pub enum ControlRequest {
    Status,
    /// Set the trading state (`halt`, `reduce`, `resume`; `pause` is `halt`), with the operator's
    /// reason.
    SetState {
        state: TradingState,
        reason: String,
    },
    Flatten,
    /// Apply these live-changeable settings (from a validated configuration).
    Reload(LiveConfig),
}

/// What the engine answers to a [`ControlRequest`].
#[derive(Debug, Clone, PartialEq)]
pub enum ControlAnswer {
    Status(Box<StatusReport>),
    /// The trading state now, whether the request changed it, and how many orders were still in
    /// flight (they settle).
    State {
        state: TradingState,
        changed: bool,
        open_orders: usize,
    },
    Flattened(FlattenReport),
    Reloaded,
}

/// Sends [`Command`]s to the engine and wakes it. Never blocks: a full queue is an error.
#[derive(Debug, Clone)]
pub struct CommandSender {
    tx: SyncSender<Command>,
    waker: Arc<Waker>,
}

/// A command channel of [`COMMAND_CAPACITY`] whose sends wake `waker` (the engine's poll).
pub fn channel(waker: Arc<Waker>) -> (CommandSender, Receiver<Command>) {
    let (tx, rx) = sync_channel(COMMAND_CAPACITY);
    (CommandSender { tx, waker }, rx)
}

impl CommandSender {
    /// Wakes the engine loop without a command (the journal's writer: entries reached the disk).
    pub fn wake(&self) {
        let _ = self.waker.wake();
    }

    pub fn send(&self, cmd: Command) -> Result<(), Command> {
        match self.tx.try_send(cmd) {
            Ok(()) => {
                let _ = self.waker.wake();
                Ok(())
            }
            Err(TrySendError::Full(c) | TrySendError::Disconnected(c)) => Err(c),
        }
    }
}
