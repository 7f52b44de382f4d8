//! TLS for mt5bot's listeners: the helper thread's (`metrics.web_config`) and the MT5 bridge's
//! (`venue.mt5.tls`).
//!
//! - [`server_config`] turns a [`TlsServerConfig`] into a rustls configuration: the certificate
//!   chain and key from PEM files (a key readable by others is refused), TLS 1.2/1.3 as asked,
//!   client certificates checked against `client_ca_file` when asked for. Errors name the setting
//!   and never repeat a line of a PEM file.
//! - [`Transport`] is one accepted connection, plain or TLS, as non-blocking reads and writes: a
//!   loop drives both the same way, and a TLS handshake is just bytes moving while the first
//!   message is awaited (so the listener's own timeout bounds a slow handshake too).
//! - [`TlsSource`] builds the configuration again when its files change (a renewed certificate).

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Whether and how clients present certificates (the toolkit's `client_auth_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// `NoClientCert`: none is asked for.
    None,
    /// `VerifyClientCertIfGiven`: one is asked for; if given, it must chain to `client_ca_file`.
    VerifyIfGiven,
    /// `RequireAndVerifyClientCert`: every client shows one that chains to `client_ca_file`.
    RequireAndVerify,
}

/// TLS protocol versions a listener accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

/// The files and settings of a TLS listener (`tls_server_config`, `venue.mt5.tls`), paths absolute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsServerConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub client_auth: ClientAuth,
    pub client_ca_file: Option<PathBuf>,
    pub min_version: TlsVersion,
    pub max_version: TlsVersion,
}

/// Builds the rustls server configuration, reading the PEM files; `setting` names them in errors
/// (`tls_server_config`, `venue.mt5.tls`), `alpn` lists the protocols offered (none: no ALPN).
pub fn server_config(t: &TlsServerConfig, setting: &str, alpn: &[&[u8]]) -> Result<Arc<rustls::ServerConfig>, String> {
    let certs = read_certs(&t.cert_file, &format!("{setting}.cert_file"))?;
    refuse_readable_by_others(&t.key_file, setting)?;
    let key = PrivateKeyDer::from_pem_file(&t.key_file)
        .map_err(|e| format!("{setting}.key_file {}: {}", t.key_file.display(), pem_problem(&e, "private key")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: Vec<&'static rustls::SupportedProtocolVersion> =
        [(TlsVersion::Tls12, &rustls::version::TLS12), (TlsVersion::Tls13, &rustls::version::TLS13)]
            .into_iter()
            .filter(|(v, _)| (t.min_version..=t.max_version).contains(v))
            .map(|(_, p)| p)
            .collect();
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions)
        .map_err(|e| format!("{setting}: {e}"))?;
    let builder = match (t.client_auth, &t.client_ca_file) {
        (ClientAuth::None, _) | (_, None) => builder.with_no_client_auth(),
        (auth, Some(ca)) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in read_certs(ca, &format!("{setting}.client_ca_file"))? {
                roots.add(c).map_err(|e| format!("{setting}.client_ca_file {}: {e}", ca.display()))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if auth == ClientAuth::VerifyIfGiven { verifier.allow_unauthenticated() } else { verifier };
            let verifier = verifier.build().map_err(|e| format!("{setting}.client_ca_file {}: {e}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("{setting}: the certificate and key do not make a pair: {e}"))?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
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

fn refuse_readable_by_others(path: &Path, setting: &str) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|e| format!("{setting}.key_file {}: cannot read it: {e}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o007 != 0 {
        return Err(format!(
            "{setting}.key_file {}: other users may read or write it (mode {:o}); chmod 600 (or 640 for a \
             key group) and rotate the key if it was exposed",
            path.display(),
            mode & 0o777
        ));
    }
    Ok(())
}

/// The SHA-1 thumbprint of the first certificate in `cert_file`, in uppercase hex: what Windows
/// and MQL5's `SocketTlsCertificate` show, for the Expert Advisor to pin.
pub fn sha1_thumbprint(cert_file: &Path, setting: &str) -> Result<String, String> {
    let certs = read_certs(cert_file, setting)?;
    let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, certs[0].as_ref());
    Ok(digest.as_ref().iter().map(|b| format!("{b:02X}")).collect())
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

/// How often the certificate, key and client CA files are looked at for a change.
pub const TLS_RELOAD_CHECK: Duration = Duration::from_secs(5);

/// The TLS configuration, built again when its files change (a renewed certificate is served to
/// new connections within [`TLS_RELOAD_CHECK`], without a restart). A change that does not make a
/// working configuration (a key renewed before its certificate) keeps the last good one, with a
/// warning, and is tried again when the files change again.
pub struct TlsSource {
    files: TlsServerConfig,
    setting: &'static str,
    alpn: Vec<&'static [u8]>,
    /// Whose files, for the log ("metrics listener", "mt5 venue").
    what: &'static str,
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
    /// Reads the files; `setting` and `alpn` as for [`server_config`], `what` names the listener
    /// in the log.
    pub fn new(
        files: TlsServerConfig,
        setting: &'static str,
        alpn: &[&'static [u8]],
        what: &'static str,
    ) -> Result<TlsSource, String> {
        let stamps = stamps(&files);
        let current = server_config(&files, setting, alpn)?;
        Ok(TlsSource {
            files,
            setting,
            alpn: alpn.to_vec(),
            what,
            stamps,
            current,
            next_check: Instant::now() + TLS_RELOAD_CHECK,
        })
    }

    /// The certificate file served.
    pub fn cert_file(&self) -> &Path {
        &self.files.cert_file
    }

    /// The configuration for a new connection.
    pub fn config(&mut self, now: Instant) -> &Arc<rustls::ServerConfig> {
        if now >= self.next_check {
            self.next_check = now + TLS_RELOAD_CHECK;
            let seen = stamps(&self.files);
            if seen != self.stamps {
                self.stamps = seen;
                match server_config(&self.files, self.setting, &self.alpn) {
                    Ok(c) => {
                        self.current = c;
                        log::info!("{}: TLS files changed; new connections get the new certificate", self.what);
                    }
                    Err(e) => log::warn!(
                        "{}: TLS files changed but cannot be used ({e}); keeping the last good ones",
                        self.what
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
