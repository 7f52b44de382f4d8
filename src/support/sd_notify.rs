//! systemd readiness and watchdog notifications, without a library: a datagram to `NOTIFY_SOCKET`.
//!
//! A no-op when `NOTIFY_SOCKET` is unset (not under systemd, or not `Type=notify`). The socket is
//! non-blocking so the engine thread, which sends `WATCHDOG=1` itself so a stuck loop is caught,
//! never waits on it.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// Sends `sd_notify` messages.
#[derive(Debug)]
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` from the environment.
    pub fn from_env() -> io::Result<Notifier> {
        let socket = std::env::var_os("NOTIFY_SOCKET");
        let target = match socket {
            None => None,
            Some(path) => {
                let path = path.to_string_lossy().into_owned();
                let addr = if let Some(name) = path.strip_prefix('@') {
                    #[cfg(target_os = "linux")]
                    {
                        use std::os::linux::net::SocketAddrExt;
                        SocketAddr::from_abstract_name(name.as_bytes())?
                    }
                    #[cfg(not(target_os = "linux"))]
                    {
                        let _ = name;
                        return Err(io::Error::new(io::ErrorKind::Unsupported, "abstract NOTIFY_SOCKET"));
                    }
                } else {
                    SocketAddr::from_pathname(&path)?
                };
                let sock = UnixDatagram::unbound()?;
                sock.set_nonblocking(true)?;
                Some((sock, addr))
            }
        };
        let pid_ok = std::env::var("WATCHDOG_PID").map_or(true, |p| p.trim() == std::process::id().to_string());
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|u| u.trim().parse::<u64>().ok())
            .filter(|u| *u > 0 && pid_ok)
            .map(|u| Duration::from_micros(u / 2));
        Ok(Notifier { target, watchdog })
    }

    /// A notifier that sends nothing.
    pub fn disabled() -> Notifier {
        Notifier { target: None, watchdog: None }
    }

    /// How often to send `WATCHDOG=1` (half of `WATCHDOG_USEC`), when the watchdog is on.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog
    }

    pub fn is_enabled(&self) -> bool {
        self.target.is_some()
    }

    /// Sends one notification such as `READY=1`; a no-op without `NOTIFY_SOCKET`.
    pub fn notify(&self, state: &str) -> io::Result<()> {
        match &self.target {
            Some((sock, addr)) => sock.send_to_addr(state.as_bytes(), addr).map(|_| ()),
            None => Ok(()),
        }
    }
}
