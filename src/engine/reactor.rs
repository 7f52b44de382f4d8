//! The reactor: the engine thread's event loop, in one place.
//!
//! One `mio::Poll` watches the stop signals (self-pipes written by signal-hook), the waker that
//! carries commands from the helper thread, the ingress listener and its connections. Timers are a
//! min-heap of deadlines; together with the feed's next tick and the venue's next deadline they set
//! the poll timeout, so the loop sleeps exactly until something is due. Each turn: ticks that are
//! due, venue progress, due timers, a heartbeat for `/readyz`, then the readiness events.
//!
//! A stop (SIGTERM, SIGINT, or a command) stops the taking of new signals, closes the ingress, tells
//! systemd `STOPPING=1`, and lets orders in flight settle for up to `engine.shutdown_grace`.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, Read};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::Arc;
use std::time::Duration;

use mio::net::UnixStream;
use mio::{Events, Interest, Poll, Token, Waker};

use crate::config::Config;
use crate::domain::venue::Venue;
use crate::link::{self, Command, CommandSender, ControlAnswer, ControlRequest, Health};
use crate::support::sd_notify::Notifier;
use crate::telemetry::metrics::EngineMetrics;
use crate::venue::feed::Feed;

use super::core::TradingCore;

use super::ingress::Ingress;
use super::replay::Stepper;
use crate::domain::clock::{Clock, MonotonicClock};
use crate::domain::types::Nanos;

const SIGTERM_TOKEN: Token = Token(0);
const SIGINT_TOKEN: Token = Token(1);
const WAKER: Token = Token(2);
const INGRESS_LISTENER: Token = Token(3);
/// The venue's sockets take tokens from here up to (not including) the first ingress connection.
const VENUE_FIRST: usize = 4;
/// Tokens the venue gets at least (FIX: one socket; the MT5 bridge: its listener, the live session,
/// one replacing it and `venue.mt5.max_handshakes` waiting to authenticate).
const MIN_VENUE_TOKENS: usize = 12;

/// How often ingress clients are checked for a stall (`ingress.stall_timeout`).
const INGRESS_SWEEP: Nanos = 250_000_000;

/// Instants of history a replay on the data's time steps through in one turn (each its rows and
/// the venue), before the sockets, timers and commands get their turn.
pub const STEPS_PER_TURN: usize = 4096;

/// The loop turns at least this often, so `/readyz` and timers stay fresh when nothing happens.
const MAX_SLEEP: Duration = Duration::from_millis(100);

/// Why the loop ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    Signal(&'static str),
    Command(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Watchdog,
    Status,
    Checkpoint,
    IngressSweep,
}

/// A sealed checkpoint and its sealed generation record, written in that order, and its generation.
type Sealed = (Vec<u8>, Vec<u8>, u64);

/// Seals checkpoints on the engine thread (CPU only, timed) and hands the bytes to a writer thread
/// that does the blocking part (write, fsync, rename). Each checkpoint gets the next generation;
/// the record of it is written only after the checkpoint itself, so a crash between the two leaves
/// a checkpoint newer than its record, never older.
#[derive(Debug)]
pub struct Checkpointer {
    pub keys: super::checkpoint::Keys,
    pub interval: Nanos,
    next_generation: u64,
    tx: std::sync::mpsc::SyncSender<Sealed>,
    handle: Option<std::thread::JoinHandle<()>>,
    metrics: crate::telemetry::metrics::Metrics,
}

impl Checkpointer {
    /// Starts the writer thread for `path`; the first checkpoint written is `next_generation`.
    pub fn start(
        keys: super::checkpoint::Keys,
        path: std::path::PathBuf,
        interval: Duration,
        metrics: crate::telemetry::metrics::Metrics,
        next_generation: u64,
    ) -> io::Result<Checkpointer> {
        // One checkpoint may wait while one is written; a newer one replaces nothing but is skipped
        // if the disk is that slow (the next one carries the newer state anyway).
        let (tx, rx) = std::sync::mpsc::sync_channel::<Sealed>(1);
        let m = metrics.clone();
        let handle = std::thread::Builder::new().name("mt5bot-checkpoint".into()).spawn(move || {
            for (bytes, record, generation) in rx {
                let _ = write_checkpoint(&path, &bytes, &record, generation, &m);
            }
        })?;
        Ok(Checkpointer {
            keys,
            interval: interval.as_nanos() as Nanos,
            next_generation,
            tx,
            handle: Some(handle),
            metrics,
        })
    }

    /// The snapshot of `core`, numbered, sealed with its generation record.
    fn seal<V: Venue, C: Clock>(
        &mut self,
        core: &TradingCore<V, C>,
    ) -> Result<Sealed, super::checkpoint::CheckpointError> {
        let mut state = core.snapshot();
        state.generation = self.next_generation;
        self.next_generation += 1;
        let bytes = super::checkpoint::seal(&state, &self.keys)?;
        let record = super::checkpoint::seal_generation(state.generation, &self.keys)?;
        Ok((bytes, record, state.generation))
    }

    /// Seals a checkpoint for the writer; returns its generation when it was sealed (the journal
    /// then starts that generation's segment, whether or not the writer had room for it).
    fn offer<V: Venue, C: Clock>(&mut self, core: &TradingCore<V, C>) -> Option<u64> {
        let started = std::time::Instant::now();
        let sealed = self.seal(core);
        self.metrics.checkpoint_seal.observe(started.elapsed().as_secs_f64());
        match sealed {
            Ok(sealed) => {
                let generation = sealed.2;
                if self.tx.try_send(sealed).is_err() {
                    log::debug!("checkpoint writer still busy; skipping this checkpoint");
                }
                Some(generation)
            }
            Err(e) => {
                self.metrics.checkpoint_failures.inc();
                log::error!("cannot seal a checkpoint: {e}");
                None
            }
        }
    }

    /// Seals and writes a checkpoint now, on this thread (start-up, after the journal's replay);
    /// returns its generation.
    pub fn write_now<V: Venue, C: Clock>(
        &mut self,
        core: &TradingCore<V, C>,
        path: &std::path::Path,
    ) -> Result<u64, String> {
        let (bytes, record, generation) = self.seal(core).map_err(|e| format!("cannot seal a checkpoint: {e}"))?;
        write_checkpoint(path, &bytes, &record, generation, &self.metrics)?;
        Ok(generation)
    }

    /// The last checkpoint, written before returning (shutdown). An error says why it could not
    /// be written: the next start would restore an older one.
    pub fn finish<V: Venue, C: Clock>(
        mut self,
        core: &TradingCore<V, C>,
        path: &std::path::Path,
    ) -> Result<(), String> {
        let (tx, _) = std::sync::mpsc::sync_channel(1);
        drop(std::mem::replace(&mut self.tx, tx));
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        match self.seal(core) {
            Ok((bytes, record, generation)) => write_checkpoint(path, &bytes, &record, generation, &self.metrics),
            Err(e) => {
                self.metrics.checkpoint_failures.inc();
                log::error!("cannot seal the final checkpoint: {e}");
                Err(format!("cannot seal the final checkpoint: {e}"))
            }
        }
    }
}

fn write_checkpoint(
    path: &std::path::Path,
    bytes: &[u8],
    record: &[u8],
    generation: u64,
    m: &crate::telemetry::metrics::Metrics,
) -> Result<(), String> {
    let record_path = super::checkpoint::generation_path(path);
    let written = super::checkpoint::write(path, bytes)
        .map_err(|e| format!("cannot write the checkpoint {}: {e}", path.display()))
        .and_then(|()| {
            super::checkpoint::write(&record_path, record)
                .map_err(|e| format!("cannot write the generation record {}: {e}", record_path.display()))
        });
    match written {
        Ok(()) => {
            m.checkpoint_bytes.set(bytes.len() as i64);
            m.checkpoint_last_success.set(crate::support::timefmt::unix_nanos() as f64 / 1e9);
            // Compaction: what the older journal segments hold is in this checkpoint now.
            super::journal::remove_before(path, generation);
            Ok(())
        }
        Err(e) => {
            m.checkpoint_failures.inc();
            log::error!("{e}");
            Err(e)
        }
    }
}

/// The engine's event loop and everything it drives.
#[derive(Debug)]
pub struct Reactor<V, C> {
    poll: Poll,
    timers: BinaryHeap<Reverse<(Nanos, Timer)>>,
    sigterm: UnixStream,
    sigint: UnixStream,
    commands: Receiver<Command>,
    /// Answers to control requests that wait for their journal entry to reach the disk (a
    /// trading state change is answered only once a SIGKILL cannot undo it).
    held_replies: Vec<(u64, SyncSender<ControlAnswer>, ControlAnswer)>,
    sender: CommandSender,
    ingress: Option<Ingress>,
    feed: Feed,
    core: TradingCore<V, C>,
    /// Set when the engine runs on the data's own time (a CSV replayed at speed 0 on the paper
    /// venue): each turn steps it through history, as a backtest does.
    stepper: Option<Stepper>,
    /// The loop's own time: timers, the stop's grace and the ingress connections' deadlines. The
    /// engine's clock is the data's on a replay at speed 0; these stay on real time.
    io: MonotonicClock,
    metrics: EngineMetrics,
    status_interval: Nanos,
    shutdown_grace: Nanos,
    checkpointer: Option<Checkpointer>,
    /// Ingress connections take tokens from here up.
    first_connection: usize,
}

fn signal_pipe(signal: i32) -> io::Result<UnixStream> {
    let (read, write) = StdUnixStream::pair()?;
    read.set_nonblocking(true)?;
    write.set_nonblocking(true)?;
    signal_hook::low_level::pipe::register(signal, write)?;
    Ok(UnixStream::from_std(read))
}

impl<V: Venue, C: Clock> Reactor<V, C> {
    /// Sets up the poll, stop signals, waker and (when configured) the ingress listener.
    pub fn new(cfg: &Config, mut core: TradingCore<V, C>, feed: Feed, metrics: EngineMetrics) -> io::Result<Self> {
        let poll = Poll::new()?;
        let venue_tokens = (cfg.venue.mt5.max_handshakes + 3).max(MIN_VENUE_TOKENS);
        let first_connection = VENUE_FIRST + venue_tokens;
        core.venue_mut().attach(poll.registry(), Token(VENUE_FIRST), venue_tokens)?;
        let mut sigterm = signal_pipe(signal_hook::consts::SIGTERM)?;
        let mut sigint = signal_pipe(signal_hook::consts::SIGINT)?;
        poll.registry().register(&mut sigterm, SIGTERM_TOKEN, Interest::READABLE)?;
        poll.registry().register(&mut sigint, SIGINT_TOKEN, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (sender, commands) = link::channel(waker);
        let ingress = match &cfg.ingress {
            Some(i) => {
                Some(Ingress::bind(i, poll.registry(), INGRESS_LISTENER, first_connection).map_err(|e| {
                    io::Error::new(e.kind(), format!("cannot listen on ingress.listen {}: {e}", i.listen))
                })?)
            }
            None => None,
        };
        Ok(Reactor {
            poll,
            timers: BinaryHeap::with_capacity(8),
            sigterm,
            sigint,
            commands,
            held_replies: Vec::new(),
            sender,
            ingress,
            feed,
            core,
            stepper: None,
            io: MonotonicClock::new(),
            metrics,
            status_interval: cfg.engine.status_interval.as_nanos() as Nanos,
            shutdown_grace: cfg.engine.shutdown_grace.as_nanos() as Nanos,
            checkpointer: None,
            first_connection,
        })
    }

    /// Runs the engine on the data's own time: its clock (one that [`Clock::follow`]s, its feed a
    /// replay at the data's pace) moves from one row or engine deadline to the next as fast as
    /// the machine goes, [`STEPS_PER_TURN`] instants a turn, while sockets and timers keep real
    /// time. The orders, fills and their times are then those of a backtest on the same data.
    pub fn on_data_time(&mut self) {
        self.stepper = Some(Stepper::default());
    }

    /// Writes checkpoints every interval from now on.
    pub fn set_checkpointer(&mut self, c: Checkpointer) {
        self.checkpointer = Some(c);
    }

    /// Takes the checkpointer back (for the final checkpoint after the loop).
    pub fn take_checkpointer(&mut self) -> Option<Checkpointer> {
        self.checkpointer.take()
    }

    /// A handle other threads use to send commands.
    pub fn command_sender(&self) -> CommandSender {
        self.sender.clone()
    }

    /// The ingress listener's address, when it is on.
    pub fn ingress_addr(&self) -> Option<std::net::SocketAddr> {
        self.ingress.as_ref().and_then(|i| i.local_addr().ok())
    }

    pub fn core(&self) -> &TradingCore<V, C> {
        &self.core
    }

    pub fn core_mut(&mut self) -> &mut TradingCore<V, C> {
        &mut self.core
    }

    /// Runs until a stop signal or command, then until orders in flight settle or the grace ends.
    pub fn run(&mut self, health: &Health, notifier: &Notifier) -> io::Result<StopReason> {
        let mut events = Events::with_capacity(256);
        let start = self.io.now();
        if notifier.watchdog_interval().is_some() {
            self.timers.push(Reverse((start, Timer::Watchdog)));
        }
        self.timers.push(Reverse((start + self.status_interval, Timer::Status)));
        if let Some(c) = &self.checkpointer {
            self.timers.push(Reverse((start + c.interval, Timer::Checkpoint)));
        }
        if self.ingress.is_some() {
            self.timers.push(Reverse((start + INGRESS_SWEEP, Timer::IngressSweep)));
        }
        let mut stopping: Option<(StopReason, Nanos)> = None;
        let mut venue_was_up = self.core.venue().is_up();
        loop {
            let now = self.io.now();
            match self.stepper.as_mut() {
                Some(stepper) => {
                    for _ in 0..STEPS_PER_TURN {
                        if !stepper.step(&mut self.core, &mut self.feed) {
                            break;
                        }
                    }
                }
                None => {
                    let engine_now = self.core.clock().now();
                    self.feed.begin_turn();
                    while let Some(mut tick) = self.feed.poll(engine_now) {
                        tick.recv_ns = self.core.clock().now();
                        self.core.on_tick(&tick);
                    }
                    self.core.poll_venue();
                }
            }
            // Ticks the venue read (MT5); their recv_ns is when the read returned.
            while let Some(tick) = self.core.venue_mut().next_tick() {
                self.core.on_tick(&tick);
            }
            while let Some(&Reverse((at, timer))) = self.timers.peek() {
                if at > now {
                    break;
                }
                self.timers.pop();
                self.on_timer(timer, now, notifier);
            }
            let lost = self.core.journal_take_lost();
            if lost > 0 {
                // The journal's writer fell behind and entries were lost: a checkpoint now holds
                // their state instead.
                if let Some(c) = self.checkpointer.as_mut() {
                    log::warn!("{lost} order journal entries were lost (its disk is slow); taking a checkpoint now");
                    if let Some(generation) = c.offer(&self.core) {
                        self.core.journal_rotate(generation);
                    }
                }
            }
            if let Some(ing) = self.ingress.as_mut() {
                ing.release(self.poll.registry(), &self.core, &self.metrics, self.io.now());
            }
            self.release_replies();
            if self.core.has_late_refusals() {
                match self.ingress.as_mut() {
                    Some(ing) => ing.deliver_late(&mut self.core, &self.metrics, self.io.now()),
                    None => self.core.take_late_refusals(|_| {}),
                }
            }
            let venue_up = self.core.venue().is_up();
            if venue_up != venue_was_up {
                venue_was_up = venue_up;
                self.core.notify_venue(venue_up);
                // Only on a change: `systemctl status` shows whether the venue is up.
                let name = self.core.venue().name();
                let status = if venue_up {
                    format!("STATUS=trading: venue {name} up")
                } else {
                    format!("STATUS=venue {name} down: signals wait up to queue.max_wait for it")
                };
                if let Err(e) = notifier.notify(&status) {
                    log::debug!("cannot send systemd the status: {e}");
                }
            }
            health.turned(venue_up);
            self.metrics.broker_connected.set(i64::from(self.core.venue().is_up()));

            if let Some((reason, deadline)) = &stopping {
                if self.core.is_idle() || now >= *deadline {
                    return Ok(reason.clone());
                }
            }

            // This turn's journal entries go to its writer now, after the orders went out.
            self.core.flush_journal();
            let timeout = self.timeout(now, stopping.as_ref().map(|s| s.1));
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            for event in events.iter() {
                let reason = match event.token() {
                    SIGTERM_TOKEN => drain_pipe(&mut self.sigterm).then_some(StopReason::Signal("SIGTERM")),
                    SIGINT_TOKEN => drain_pipe(&mut self.sigint).then_some(StopReason::Signal("SIGINT")),
                    WAKER => self.take_commands(),
                    Token(t) if (VENUE_FIRST..self.first_connection).contains(&t) => {
                        self.core.venue_mut().on_ready(
                            event.token(),
                            event.is_readable() || event.is_read_closed() || event.is_error(),
                            event.is_writable() || event.is_write_closed(),
                        );
                        None
                    }
                    INGRESS_LISTENER => {
                        if let Some(ing) = self.ingress.as_mut() {
                            ing.accept(self.poll.registry(), &self.metrics, self.io.now());
                        }
                        None
                    }
                    token => {
                        if let Some(ing) = self.ingress.as_mut().filter(|i| i.owns(token)) {
                            ing.on_event(token, self.poll.registry(), &mut self.core, &self.metrics, &self.io);
                            // A signal taken may have given the engine a deadline.
                            if let Some(s) = self.stepper.as_mut() {
                                s.wake();
                            }
                        }
                        None
                    }
                };
                if let Some(reason) = reason {
                    match stopping {
                        None => {
                            let deadline = self.io.now() + self.shutdown_grace;
                            self.begin_stop(&reason, health, notifier);
                            stopping = Some((reason, deadline));
                        }
                        Some(_) => {
                            log::warn!(
                                "second stop request ({reason:?}): stopping now without waiting for orders in flight"
                            );
                            return Ok(reason);
                        }
                    }
                }
            }
        }
    }

    /// How long the poll may wait: until the next timer or the stop's deadline (real time), or
    /// the feed's next tick or the engine's next deadline (engine time); not at all while a
    /// replay on the data's time has history left to step through.
    fn timeout(&self, now: Nanos, stop_deadline: Option<Nanos>) -> Duration {
        let io = [self.timers.peek().map(|Reverse((at, _))| *at), stop_deadline].into_iter().flatten().min();
        let engine = match &self.stepper {
            Some(stepper) => stepper.next_event(&self.core, &self.feed).map(|_| Duration::ZERO),
            None => {
                let engine_now = self.core.clock().now();
                [self.feed.next_due(), self.core.next_deadline()]
                    .into_iter()
                    .flatten()
                    .min()
                    .map(|at| Duration::from_nanos(at.saturating_sub(engine_now)))
            }
        };
        let io = io.map(|at| Duration::from_nanos(at.saturating_sub(now)));
        [io, engine].into_iter().flatten().min().map_or(MAX_SLEEP, |d| d.min(MAX_SLEEP))
    }

    fn on_timer(&mut self, timer: Timer, now: Nanos, notifier: &Notifier) {
        match timer {
            Timer::Watchdog => {
                if let Err(e) = notifier.notify("WATCHDOG=1") {
                    log::warn!("cannot notify the systemd watchdog: {e}");
                }
                if let Some(iv) = notifier.watchdog_interval() {
                    self.timers.push(Reverse((now + iv.as_nanos() as Nanos, Timer::Watchdog)));
                }
            }
            Timer::Status => {
                log::info!("status: {}", self.core.summary());
                self.timers.push(Reverse((now + self.status_interval, Timer::Status)));
            }
            Timer::Checkpoint => {
                if let Some(c) = self.checkpointer.as_mut() {
                    if let Some(generation) = c.offer(&self.core) {
                        self.core.journal_rotate(generation);
                    }
                    self.timers.push(Reverse((now + c.interval, Timer::Checkpoint)));
                }
            }
            Timer::IngressSweep => {
                if let Some(ing) = self.ingress.as_mut() {
                    ing.sweep(self.poll.registry(), &self.metrics, now);
                    self.timers.push(Reverse((now + INGRESS_SWEEP, Timer::IngressSweep)));
                }
            }
        }
    }

    fn take_commands(&mut self) -> Option<StopReason> {
        let mut stop = None;
        while let Ok(cmd) = self.commands.try_recv() {
            match cmd {
                Command::Shutdown { reason } => stop = Some(StopReason::Command(reason)),
                Command::Control { request, reply } => match self.control(request) {
                    (answer, Some(entry)) => self.held_replies.push((entry, reply, answer)),
                    // The asker may have given up waiting; nothing to do then.
                    (answer, None) => {
                        let _ = reply.try_send(answer);
                    }
                },
            }
        }
        stop
    }

    /// What the engine does for a control request, and the journal entry its answer waits for.
    fn control(&mut self, request: ControlRequest) -> (ControlAnswer, Option<u64>) {
        match request {
            ControlRequest::Status => (ControlAnswer::Status(Box::new(self.core.status())), None),
            ControlRequest::SetState { state, reason } => {
                let (changed, entry) = self.core.set_trading_state(state, "operator", &reason);
                let open_orders = self.core.executor().open_order_count();
                (ControlAnswer::State { state, changed, open_orders }, entry)
            }
            ControlRequest::Flatten => {
                let report = self.core.flatten();
                (ControlAnswer::Flattened(report), None)
            }
            ControlRequest::Reload(live) => {
                self.core.apply_live(&live);
                (ControlAnswer::Reloaded, None)
            }
        }
    }

    /// Sends the held answers whose journal entries are durable now.
    fn release_replies(&mut self) {
        if self.held_replies.is_empty() {
            return;
        }
        let durable = self.core.journal_durable();
        self.held_replies.retain(|(entry, reply, answer)| {
            if *entry > durable {
                return true;
            }
            let _ = reply.try_send(answer.clone());
            false
        });
    }

    fn begin_stop(&mut self, reason: &StopReason, health: &Health, notifier: &Notifier) {
        self.core.stop_accepting();
        health.set_stopping();
        if let Err(e) = notifier.notify("STOPPING=1") {
            log::warn!("cannot notify systemd of the stop: {e}");
        }
        if let Some(ing) = self.ingress.as_mut() {
            let durable = self.core.journal_durable();
            ing.close_all(self.poll.registry(), &self.metrics, self.io.now(), durable);
        }
        let why = match reason {
            StopReason::Signal(s) => format!("received {s}"),
            StopReason::Command(r) => r.clone(),
        };
        log::info!(
            "{why}: stopping; no new signals; waiting up to {} for {} orders in flight",
            crate::config::format_duration(Duration::from_nanos(self.shutdown_grace)),
            self.core.executor().open_order_count()
        );
    }
}

/// Reads every byte a signal handler wrote; true when there was at least one.
fn drain_pipe(pipe: &mut UnixStream) -> bool {
    let mut buf = [0u8; 64];
    let mut got = false;
    loop {
        match pipe.read(&mut buf) {
            Ok(0) => return got,
            Ok(_) => got = true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return got,
        }
    }
}
