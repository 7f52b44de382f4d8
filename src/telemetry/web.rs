//! TLS and basic authentication for the helper thread's listener (`metrics.web_config`).
//!
//! - [`server_config`] turns `tls_server_config` into a rustls configuration: the certificate
//!   chain and key from PEM files (a key readable by others is refused), TLS 1.2/1.3 by the
//!   config, client certificates checked against `client_ca_file` when asked for. Errors never
//!   repeat a line of a PEM file.
//! - [`Transport`] is one connection, plain or TLS, as non-blocking reads and writes: the server's
//!   loop drives both the same way, and a TLS handshake is just bytes moving while a request is
//!   awaited (so the header timeout bounds a slow handshake too).
//! - [`BasicAuth`] checks `Authorization: Basic` against bcrypt hashes. bcrypt is slow on purpose
//!   (tens of milliseconds) and the listener has one thread, so a pair that once passed is
//!   remembered (a keyed SHA-256 of it), and the time spent on pairs not yet known is budgeted:
//!   past [`BCRYPT_BUDGET`] per second a client is told to come back instead of stalling scrapes.

use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

use crate::config::web::{ClientAuth, TlsServerConfig, TlsVersion};

/// Builds the rustls server configuration, reading the PEM files.
pub fn server_config(t: &TlsServerConfig) -> Result<Arc<rustls::ServerConfig>, String> {
    let certs = read_certs(&t.cert_file, "tls_server_config.cert_file")?;
    refuse_readable_by_others(&t.key_file)?;
    let key = PrivateKeyDer::from_pem_file(&t.key_file).map_err(|e| {
        format!("tls_server_config.key_file {}: {}", t.key_file.display(), pem_problem(&e, "private key"))
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: Vec<&'static rustls::SupportedProtocolVersion> =
        [(TlsVersion::Tls12, &rustls::version::TLS12), (TlsVersion::Tls13, &rustls::version::TLS13)]
            .into_iter()
            .filter(|(v, _)| (t.min_version..=t.max_version).contains(v))
            .map(|(_, p)| p)
            .collect();
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions)
        .map_err(|e| format!("tls_server_config: {e}"))?;
    let builder = match (t.client_auth, &t.client_ca_file) {
        (ClientAuth::None, _) | (_, None) => builder.with_no_client_auth(),
        (auth, Some(ca)) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in read_certs(ca, "tls_server_config.client_ca_file")? {
                roots.add(c).map_err(|e| format!("tls_server_config.client_ca_file {}: {e}", ca.display()))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if auth == ClientAuth::VerifyIfGiven { verifier.allow_unauthenticated() } else { verifier };
            let verifier =
                verifier.build().map_err(|e| format!("tls_server_config.client_ca_file {}: {e}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("tls_server_config: the certificate and key do not make a pair: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn read_certs(path: &Path, key: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{key} {}: {}", path.display(), pem_problem(&e, "certificate")))?;
    if certs.is_empty() {
        return Err(format!("{key} {}: no certificate in it (PEM, BEGIN CERTIFICATE)", path.display()));
    }
    Ok(certs)
}

/// What was wrong with a PEM file, without any of its content (the parser's messages quote lines).
fn pem_problem(e: &rustls_pki_types::pem::Error, what: &str) -> String {
    use rustls_pki_types::pem::Error;
    match e {
        Error::Io(e) => format!("cannot read it: {e}"),
        Error::NoItemsFound => format!("no {what} in it (PEM)"),
        _ => format!("not a valid PEM {what} (content not shown)"),
    }
}

fn refuse_readable_by_others(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|e| format!("tls_server_config.key_file {}: cannot read it: {e}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o007 != 0 {
        return Err(format!(
            "tls_server_config.key_file {}: other users may read or write it (mode {:o}); chmod 600 (or 640 for a \
             key group) and rotate the key if it was exposed",
            path.display(),
            mode & 0o777
        ));
    }
    Ok(())
}

/// Largest amount of TLS records held for one connection before writes wait for the socket.
const TLS_BUFFER: usize = 64 * 1024;

/// One accepted connection.
#[derive(Debug)]
pub enum Transport {
    Plain(TcpStream),
    Tls(Box<TlsStream>),
}

#[derive(Debug)]
pub struct TlsStream {
    tcp: TcpStream,
    tls: rustls::ServerConnection,
}

/// A TLS failure on a connection (a client speaking plain HTTP, a bad certificate, garbage).
#[derive(Debug)]
pub struct TlsRefused(pub rustls::Error);

impl std::fmt::Display for TlsRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TLS: {}", self.0)
    }
}

impl std::error::Error for TlsRefused {}

impl Transport {
    /// Wraps an accepted stream; with a TLS config, the handshake starts with the first read.
    pub fn new(tcp: TcpStream, tls: Option<&Arc<rustls::ServerConfig>>) -> io::Result<Transport> {
        Ok(match tls {
            None => Transport::Plain(tcp),
            Some(c) => {
                let mut tls = rustls::ServerConnection::new(Arc::clone(c)).map_err(io::Error::other)?;
                tls.set_buffer_limit(Some(TLS_BUFFER));
                Transport::Tls(Box::new(TlsStream { tcp, tls }))
            }
        })
    }

    /// The socket, to register with the poll.
    pub fn socket(&mut self) -> &mut TcpStream {
        match self {
            Transport::Plain(s) => s,
            Transport::Tls(t) => &mut t.tcp,
        }
    }

    /// Whether TLS records wait for room in the socket.
    pub fn wants_write(&self) -> bool {
        matches!(self, Transport::Tls(t) if t.tls.wants_write())
    }

    /// Writes out held TLS records; `Ok(false)` while some wait for room.
    pub fn flush_records(&mut self) -> io::Result<bool> {
        match self {
            Transport::Plain(_) => Ok(true),
            Transport::Tls(t) => t.flush_records(),
        }
    }

    /// Closes the sending side (after a TLS close_notify).
    pub fn shutdown_write(&mut self) {
        if let Transport::Tls(t) = self {
            t.tls.send_close_notify();
        }
        let _ = self.flush_records();
        let _ = self.socket().shutdown(std::net::Shutdown::Write);
    }
}

impl TlsStream {
    fn flush_records(&mut self) -> io::Result<bool> {
        while self.tls.wants_write() {
            match self.tls.write_tls(&mut self.tcp) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }
}

impl Read for Transport {
    /// Plaintext from the client; `WouldBlock` until some has arrived; `Ok(0)` at its end. A
    /// TLS failure is an `InvalidData` error holding [`TlsRefused`], after the alert was sent.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let t = match self {
            Transport::Plain(s) => return s.read(buf),
            Transport::Tls(t) => t,
        };
        loop {
            match t.tls.reader().read(buf) {
                // Data, or 0 after the client's close_notify.
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The socket ended without close_notify: an ordinary end for HTTP/1.1.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            match t.tls.read_tls(&mut t.tcp) {
                Ok(0) => return Ok(0),
                Ok(_) => {
                    if let Err(e) = t.tls.process_new_packets() {
                        // Tell the client why (the alert), then give up on it.
                        let _ = t.tls.write_tls(&mut t.tcp);
                        return Err(io::Error::new(io::ErrorKind::InvalidData, TlsRefused(e)));
                    }
                    // Handshake answers go out as soon as they exist.
                    t.flush_records()?;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl Write for Transport {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let t = match self {
            Transport::Plain(s) => return s.write(data),
            Transport::Tls(t) => t,
        };
        if !t.flush_records()? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = t.tls.writer().write(data)?;
        if n == 0 && !data.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        t.flush_records()?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.flush_records()? {
            true => Ok(()),
            false => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

/// What guards the listener: TLS on every connection, basic authentication on requests.
#[derive(Debug, Default)]
pub struct ListenerSecurity {
    pub tls: Option<TlsSource>,
    pub auth: Option<BasicAuth>,
}

impl ListenerSecurity {
    /// Reads the files a web config names.
    pub fn new(web: &crate::config::web::WebConfig) -> Result<ListenerSecurity, String> {
        let tls = web.tls.clone().map(TlsSource::new).transpose()?;
        Ok(ListenerSecurity { tls, auth: BasicAuth::new(&web.basic_auth_users, Instant::now()) })
    }
}

/// How often the certificate, key and client CA files are looked at for a change.
pub const TLS_RELOAD_CHECK: Duration = Duration::from_secs(5);

/// The TLS configuration, built again when its files change (a renewed certificate is served to
/// new connections within [`TLS_RELOAD_CHECK`], without a restart). A change that does not make a
/// working configuration (a key renewed before its certificate) keeps the last good one, with a
/// warning, and is tried again when the files change again.
pub struct TlsSource {
    files: TlsServerConfig,
    stamps: Vec<Option<FileStamp>>,
    current: Arc<rustls::ServerConfig>,
    next_check: Instant,
}

/// What tells a replaced file from the one read: inode, size, modification time.
type FileStamp = (u64, u64, std::time::SystemTime);

impl std::fmt::Debug for TlsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSource").field("cert_file", &self.files.cert_file).finish_non_exhaustive()
    }
}

impl TlsSource {
    pub fn new(files: TlsServerConfig) -> Result<TlsSource, String> {
        let stamps = stamps(&files);
        let current = server_config(&files)?;
        Ok(TlsSource { files, stamps, current, next_check: Instant::now() + TLS_RELOAD_CHECK })
    }

    /// The configuration for a new connection.
    pub fn config(&mut self, now: Instant) -> &Arc<rustls::ServerConfig> {
        if now >= self.next_check {
            self.next_check = now + TLS_RELOAD_CHECK;
            let seen = stamps(&self.files);
            if seen != self.stamps {
                self.stamps = seen;
                match server_config(&self.files) {
                    Ok(c) => {
                        self.current = c;
                        log::info!("metrics listener: TLS files changed; new connections get the new certificate");
                    }
                    Err(e) => log::warn!(
                        "metrics listener: TLS files changed but cannot be used ({e}); keeping the last good ones"
                    ),
                }
            }
        }
        &self.current
    }
}

fn stamps(t: &TlsServerConfig) -> Vec<Option<FileStamp>> {
    use std::os::unix::fs::MetadataExt;
    [Some(&t.cert_file), Some(&t.key_file), t.client_ca_file.as_ref()]
        .into_iter()
        .flatten()
        .map(|p| std::fs::metadata(p).ok().and_then(|m| Some((m.ino(), m.len(), m.modified().ok()?))))
        .collect()
}

/// Time bcrypt may take per second for pairs not yet known (and the most saved up).
pub const BCRYPT_BUDGET: Duration = Duration::from_millis(200);
const BCRYPT_BURST: Duration = Duration::from_millis(600);
/// Pairs remembered as good; past it the memory starts afresh.
const KNOWN_PAIRS: usize = 256;

/// The answer to one request's credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// Missing, malformed or wrong.
    Refused,
    /// Not checked: bcrypt's time budget is spent; try again in a second.
    Busy,
}

/// `basic_auth_users` at work.
pub struct BasicAuth {
    users: Vec<(String, String)>,
    /// SHA-256 of (this process's salt, user, password) of pairs that passed.
    known: HashSet<[u8; 32]>,
    salt: [u8; 32],
    /// bcrypt time left, refilled at [`BCRYPT_BUDGET`] per second.
    budget: Duration,
    refilled: Instant,
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicAuth").field("users", &self.users.len()).finish_non_exhaustive()
    }
}

impl BasicAuth {
    /// None when there are no users (no authentication).
    pub fn new(users: &[(String, String)], now: Instant) -> Option<BasicAuth> {
        if users.is_empty() {
            return None;
        }
        Some(BasicAuth {
            users: users.to_vec(),
            known: HashSet::new(),
            salt: rand::random(),
            budget: BCRYPT_BURST,
            refilled: now,
        })
    }

    /// Judges an `Authorization` header value.
    pub fn check(&mut self, authorization: Option<&str>, now: Instant) -> Verdict {
        let Some((user, password)) = authorization.and_then(basic_credentials) else { return Verdict::Refused };
        let mut h = Sha256::new();
        h.update(self.salt);
        h.update(user.as_bytes());
        h.update([0]);
        h.update(password.as_bytes());
        let digest: [u8; 32] = h.finalize().into();
        if self.known.contains(&digest) {
            return Verdict::Allowed;
        }
        self.budget = (self.budget + BCRYPT_BUDGET.mul_f64(now.saturating_duration_since(self.refilled).as_secs_f64()))
            .min(BCRYPT_BURST);
        self.refilled = now;
        if self.budget.is_zero() {
            return Verdict::Busy;
        }
        let started = Instant::now();
        // An unknown user costs a bcrypt run all the same, so timing does not tell names apart.
        let (hash, real) = match self.users.iter().find(|(u, _)| *u == user) {
            Some((_, hash)) => (hash.as_str(), true),
            None => (self.users[0].1.as_str(), false),
        };
        let good = bcrypt::verify(password.as_bytes(), hash).unwrap_or(false) && real;
        self.budget = self.budget.saturating_sub(started.elapsed());
        if !good {
            return Verdict::Refused;
        }
        if self.known.len() >= KNOWN_PAIRS {
            self.known.clear();
        }
        self.known.insert(digest);
        Verdict::Allowed
    }
}

/// `Basic base64(user:password)` (RFC 7617), or None.
fn basic_credentials(value: &str) -> Option<(String, String)> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = crate::support::encoding::base64_decode(rest.trim())?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// A bcrypt hash of `password` at `cost`, for `basic_auth_users`.
pub fn hash_password(password: &str, cost: u32) -> Result<String, String> {
    bcrypt::hash(password, cost).map_err(|e| format!("cannot hash the password: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::support::encoding::base64;

    fn header(user: &str, password: &str) -> String {
        format!("Basic {}", base64(format!("{user}:{password}").as_bytes()))
    }

    #[test]
    fn basic_auth_takes_the_right_pair_only_and_remembers_it() {
        let hash = hash_password("s3cret:with colon", 4).expect("hash");
        let t0 = Instant::now();
        let mut auth = BasicAuth::new(&[("prom".into(), hash)], t0).expect("users");
        assert_eq!(auth.check(Some(&header("prom", "s3cret:with colon")), t0), Verdict::Allowed);
        assert_eq!(auth.known.len(), 1);
        assert_eq!(auth.check(Some(&header("prom", "s3cret:with colon")), t0), Verdict::Allowed);
        for bad in [
            header("prom", "s3cret"),
            header("other", "s3cret:with colon"),
            header("", ""),
            "Bearer abc".to_owned(),
            "Basic !!!not-base64".to_owned(),
            format!("Basic {}", base64(b"no colon")),
            format!("Basic {}", base64(&[0xff, b':', 0xfe])),
        ] {
            assert_eq!(auth.check(Some(&bad), t0), Verdict::Refused, "{bad}");
        }
        assert_eq!(auth.check(None, t0), Verdict::Refused);
        assert_eq!(auth.known.len(), 1, "only the good pair is remembered");
        assert!(BasicAuth::new(&[], t0).is_none());
    }

    #[test]
    fn unknown_pairs_spend_a_budget_that_known_ones_do_not_need() {
        let hash = hash_password("pw", 4).expect("hash");
        let t0 = Instant::now();
        let mut auth = BasicAuth::new(&[("u".into(), hash)], t0).expect("users");
        assert_eq!(auth.check(Some(&header("u", "pw")), t0), Verdict::Allowed);
        // Spend the budget as a flood of wrong passwords would.
        auth.budget = Duration::ZERO;
        assert_eq!(auth.check(Some(&header("u", "wrong")), t0), Verdict::Busy);
        assert_eq!(auth.check(Some(&header("u", "pw")), t0), Verdict::Allowed, "a known pair passes");
        // A second later the budget has refilled.
        assert_eq!(auth.check(Some(&header("u", "wrong")), t0 + Duration::from_secs(1)), Verdict::Refused);
        assert!(auth.budget < BCRYPT_BUDGET, "the check was paid for");
    }
}
