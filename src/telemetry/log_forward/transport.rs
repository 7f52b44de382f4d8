//! Sinks and their connections: syslog over TCP, TLS and UDP, and HTTP with its retries.

use super::*;

pub(super) enum Sent {
    Ok,
    /// Transient failure; wait this long if the server said so.
    Retry(Option<Duration>),
    /// Some items failed and may succeed later (their indices); the rest are delivered.
    Partial {
        retry: Vec<usize>,
        refused: usize,
    },
    /// The sink refused the batch for good.
    Refused(String),
}

pub(super) struct Context {
    pub(super) host: String,
    pub(super) app: String,
    pub(super) facility: u8,
    pub(super) pid: u32,
    /// `identity:` labels (account, strategy, venue), on every record; empty for a bot alone.
    pub(super) identity: Vec<(String, String)>,
}

/// Where a TLS syslog connection goes and whom it trusts.
pub(super) struct TlsTarget {
    pub(super) config: std::sync::Arc<rustls::ClientConfig>,
    pub(super) name: rustls_pki_types::ServerName<'static>,
}

impl TlsTarget {
    /// Trusts the certificates in `ca_file` (PEM) if given, else Mozilla's roots; verifies the
    /// server's certificate against the host part of `addr` (a name or an IP address).
    pub(super) fn new(addr: &str, ca_file: Option<&Path>) -> Result<TlsTarget, String> {
        let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = rustls_pki_types::ServerName::try_from(host.to_owned())
            .map_err(|e| format!("log_forward.url: {host:?} is not a host name or IP address for TLS: {e}"))?;
        let mut roots = rustls::RootCertStore::empty();
        match ca_file {
            Some(path) => {
                use rustls_pki_types::pem::PemObject;
                let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
                    .map_err(|e| format!("log_forward.tls_ca_file {}: {e}", path.display()))?;
                for cert in certs {
                    let cert = cert.map_err(|e| format!("log_forward.tls_ca_file {}: {e}", path.display()))?;
                    roots.add(cert).map_err(|e| {
                        format!("log_forward.tls_ca_file {}: a certificate is unusable: {e}", path.display())
                    })?;
                }
                if roots.is_empty() {
                    return Err(format!("log_forward.tls_ca_file {} holds no certificate", path.display()));
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(TlsTarget { config: std::sync::Arc::new(config), name })
    }
}

/// A syslog connection: plain TCP, or TLS over it (RFC 5425; the same octet-counted frames).
pub(super) enum Conn {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Conn {
    /// Connects (and for TLS completes the handshake) within `timeout` per step; writes time
    /// out too, so a receiver that stops reading never blocks this thread for good.
    pub(super) fn open(addr: &str, timeout: Duration, tls: Option<&TlsTarget>) -> Result<Conn, String> {
        let addrs: Vec<_> = addr.to_socket_addrs().map_err(|e| format!("cannot resolve {addr}: {e}"))?.collect();
        let mut last = format!("no address for {addr}");
        for a in addrs {
            let sock = match TcpStream::connect_timeout(&a, timeout) {
                Ok(s) => s,
                Err(e) => {
                    last = format!("{addr}: {e}");
                    continue;
                }
            };
            let _ = sock.set_write_timeout(Some(timeout));
            let _ = sock.set_nodelay(true);
            let Some(tls) = tls else { return Ok(Conn::Plain(sock)) };
            let mut conn = rustls::ClientConnection::new(std::sync::Arc::clone(&tls.config), tls.name.clone())
                .map_err(|e| format!("{addr}: TLS: {e}"))?;
            let mut sock = sock;
            let _ = sock.set_read_timeout(Some(timeout));
            while conn.is_handshaking() {
                if let Err(e) = conn.complete_io(&mut sock) {
                    return Err(format!("{addr}: TLS handshake: {e}"));
                }
            }
            return Ok(Conn::Tls(Box::new(rustls::StreamOwned::new(conn, sock))));
        }
        Err(last)
    }

    pub(super) fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.write_all(bytes),
            Conn::Tls(s) => s.write_all(bytes),
        }
    }

    pub(super) fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }

    /// False when the receiver has closed the connection. Syslog receivers never send data, so
    /// anything readable is a close (EOF, or a TLS close_notify or alert) or TLS housekeeping.
    pub(super) fn alive(&mut self) -> bool {
        let sock = match self {
            Conn::Plain(s) => s,
            Conn::Tls(s) => &mut s.sock,
        };
        if sock.set_nonblocking(true).is_err() {
            return false;
        }
        let ok = match self {
            Conn::Plain(s) => {
                let mut b = [0u8; 64];
                match s.read(&mut b) {
                    Ok(0) => false,
                    Ok(_) => true,
                    Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
                }
            }
            Conn::Tls(s) => {
                let s = &mut **s;
                match s.conn.read_tls(&mut s.sock) {
                    Ok(0) => false,
                    // Session tickets and the like are fine; a close or an alert is not.
                    Ok(_) => s.conn.process_new_packets().is_ok_and(|st| !st.peer_has_closed()),
                    Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
                }
            }
        };
        let sock = match self {
            Conn::Plain(s) => s,
            Conn::Tls(s) => &mut s.sock,
        };
        ok && sock.set_nonblocking(false).is_ok()
    }
}

pub(super) enum Sink {
    Tcp {
        addr: String,
        /// TLS (`syslog+tls://`), or plain TCP when `None`.
        tls: Option<TlsTarget>,
        stream: Option<Conn>,
        /// Frames written lately, as sent: a connection found dead gets them again.
        recent: VecDeque<(Instant, Vec<u8>)>,
        /// One message being framed (reused).
        scratch: Vec<u8>,
        timeout: Duration,
        /// When the last write went out.
        last_write: Option<Instant>,
    },
    Udp {
        addr: String,
        socket: Option<UdpSocket>,
    },
    Http {
        url: String,
        format: LogFormat,
        agent: ureq::Agent,
        headers: Vec<(String, String)>,
        index: String,
        gzip: bool,
    },
}

pub(super) fn gzip(body: &str) -> Vec<u8> {
    use flate2::{write::GzEncoder, Compression};
    let mut enc = GzEncoder::new(Vec::with_capacity(body.len() / 4), Compression::fast());
    // Writing into a Vec cannot fail.
    let _ = enc.write_all(body.as_bytes());
    enc.finish().unwrap_or_default()
}

pub(super) fn retry_after(resp: &ureq::http::Response<ureq::Body>) -> Option<Duration> {
    resp.headers()
        .get("Retry-After")?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(|s| Duration::from_secs(s.min(300)))
}

impl Sink {
    pub(super) fn describe(&self) -> &str {
        match self {
            Sink::Tcp { addr, .. } | Sink::Udp { addr, .. } | Sink::Http { url: addr, .. } => addr,
        }
    }

    /// Startup check: can a connection be made?
    pub(super) fn check(&mut self, timeout: Duration) -> Result<(), String> {
        let hostport = match self {
            Sink::Tcp { addr, .. } | Sink::Udp { addr, .. } => addr.clone(),
            Sink::Http { url, .. } => {
                let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
                let hp = rest.split('/').next().unwrap_or(rest);
                if hp.contains(':') {
                    hp.to_owned()
                } else if url.starts_with("https://") {
                    format!("{hp}:443")
                } else {
                    format!("{hp}:80")
                }
            }
        };
        if matches!(self, Sink::Udp { .. }) {
            return self.udp_socket().map(|_| ());
        }
        if let Sink::Tcp { tls, stream, .. } = self {
            *stream = Some(Conn::open(&hostport, timeout, tls.as_ref())?);
            return Ok(());
        }
        let addrs: Vec<_> =
            hostport.to_socket_addrs().map_err(|e| format!("cannot resolve {hostport}: {e}"))?.collect();
        let mut last = format!("no address for {hostport}");
        for a in addrs {
            match TcpStream::connect_timeout(&a, timeout) {
                Ok(_) => return Ok(()),
                Err(e) => last = format!("{hostport}: {e}"),
            }
        }
        Err(last)
    }

    pub(super) fn udp_socket(&mut self) -> Result<&UdpSocket, String> {
        let Sink::Udp { addr, socket } = self else { return Err("not UDP".into()) };
        if socket.is_none() {
            let s = UdpSocket::bind(if addr.starts_with('[') { "[::]:0" } else { "0.0.0.0:0" })
                .map_err(|e| e.to_string())?;
            s.connect(addr.as_str()).map_err(|e| format!("{addr}: {e}"))?;
            *socket = Some(s);
        }
        socket.as_ref().ok_or_else(|| "no socket".into())
    }

    pub(super) fn send(&mut self, batch: &[ForwardRecord], ctx: &Context) -> Sent {
        match self {
            Sink::Udp { .. } => {
                let sock = match self.udp_socket() {
                    Ok(s) => s,
                    Err(_) => return Sent::Retry(None),
                };
                for r in batch {
                    let msg = truncate_for_udp(&syslog_message(r, ctx), MAX_UDP_MESSAGE);
                    // Datagrams are fire and forget; a refused one (no listener) is not retried.
                    let _ = sock.send(msg.as_bytes());
                }
                Sent::Ok
            }
            Sink::Tcp { addr, tls, stream, recent, scratch, timeout, last_write } => {
                // A closed connection shows as readable-with-EOF: syslog receivers never write.
                // Probed (three syscalls) only after a pause: while batches flow, a closed
                // connection fails the next write, and the resend window covers the one before.
                let busy = last_write.is_some_and(|t| t.elapsed() < PROBE_AFTER_IDLE);
                let alive = busy && stream.is_some() || stream.as_mut().is_some_and(Conn::alive);
                if !alive {
                    *stream = None;
                }
                let resend: Vec<u8> = if stream.is_none() {
                    // Whatever went out lately may be lost with the old connection: send it again.
                    recent.drain(..).flat_map(|(_, b)| b).collect()
                } else {
                    Vec::new()
                };
                if stream.is_none() {
                    match Conn::open(addr, *timeout, tls.as_ref()) {
                        Ok(c) => *stream = Some(c),
                        Err(e) => {
                            log::debug!("log forwarding: {e}");
                            // Keep what must be re-sent for the next attempt.
                            if !resend.is_empty() {
                                recent.push_front((Instant::now(), resend));
                            }
                            return Sent::Retry(None);
                        }
                    }
                }
                let mut frames = Vec::with_capacity(batch.len() * 200);
                for r in batch {
                    scratch.clear();
                    write_syslog_message(scratch, r, ctx);
                    let _ = write!(frames, "{} ", scratch.len());
                    frames.extend_from_slice(scratch);
                }
                let written = stream
                    .as_mut()
                    .map(|s| s.write_all(&resend).and_then(|()| s.write_all(&frames)).and_then(|()| s.flush()));
                match written {
                    Some(Ok(())) => {
                        let now = Instant::now();
                        *last_write = Some(now);
                        recent.push_back((now, frames));
                        while recent.front().is_some_and(|(t, _)| now.duration_since(*t) > TCP_RESEND_WINDOW) {
                            recent.pop_front();
                        }
                        Sent::Ok
                    }
                    _ => {
                        *stream = None;
                        if !resend.is_empty() {
                            recent.push_front((Instant::now(), resend));
                        }
                        Sent::Retry(None)
                    }
                }
            }
            Sink::Http { url, format, agent, headers, index, gzip: compress } => {
                let (body, content_type, count) = http_body(*format, batch, ctx, index);
                let mut req = agent.post(url.as_str()).header("Content-Type", content_type);
                for (k, v) in headers.iter() {
                    req = req.header(k.as_str(), v.as_str());
                }
                let sent = if *compress {
                    req.header("Content-Encoding", "gzip").send(&gzip(&body)[..])
                } else {
                    req.send(body)
                };
                let mut resp = match sent {
                    Ok(r) => r,
                    Err(_) => return Sent::Retry(None),
                };
                let status = resp.status().as_u16();
                match status {
                    200..=299 if *format == LogFormat::Elasticsearch => {
                        let text = resp.body_mut().read_to_string().unwrap_or_default();
                        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
                        if v["errors"] != true {
                            return Sent::Ok;
                        }
                        let mut retry = Vec::new();
                        let mut refused = 0;
                        for (i, item) in v["items"].as_array().map(Vec::as_slice).unwrap_or_default().iter().enumerate()
                        {
                            let st = item
                                .as_object()
                                .and_then(|o| o.values().next())
                                .and_then(|x| x["status"].as_u64())
                                .unwrap_or(500);
                            if st == 429 || st >= 500 {
                                retry.push(i);
                            } else if st >= 300 {
                                refused += 1;
                            }
                        }
                        Sent::Partial { retry, refused }
                    }
                    200..=299 if count < batch.len() => {
                        Sent::Partial { retry: (count..batch.len()).collect(), refused: 0 }
                    }
                    200..=299 => Sent::Ok,
                    408 | 429 | 500..=599 => Sent::Retry(retry_after(&resp)),
                    _ => {
                        let text = resp.body_mut().read_to_string().unwrap_or_default();
                        Sent::Refused(format!("HTTP {status}: {}", text.chars().take(300).collect::<String>().trim()))
                    }
                }
            }
        }
    }
}
