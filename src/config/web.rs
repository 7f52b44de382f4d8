//! The listener's web config (`metrics.web_config`): TLS and basic authentication for `/metrics`,
//! the health checks and the console, in the file format of the Prometheus exporter toolkit
//! (`--web.config.file`), so one file serves mt5bot and the exporters beside it:
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt          # PEM, the chain in order
//!   key_file: server.key           # PEM; not readable by others
//!   client_auth_type: RequireAndVerifyClientCert   # or NoClientCert (default), VerifyClientCertIfGiven
//!   client_ca_file: clients-ca.crt
//!   min_version: TLS12             # TLS12 (default) or TLS13
//!   max_version: TLS13
//! basic_auth_users:
//!   prometheus: $2y$10$...         # bcrypt, e.g. from `mt5bot hash-password`
//! ```
//!
//! Relative paths are taken from the web config's own folder, as the toolkit does. Keys the toolkit
//! has and mt5bot does not honour (`cipher_suites`, `http_server_config`, ...) are refused by name
//! rather than ignored, so nobody believes a setting is in force that is not.

use std::path::Path;

use serde::Deserialize;

use super::{locate, ConfigError, MAX_CONFIG_BYTES};

pub use crate::support::tls::{ClientAuth, TlsServerConfig, TlsVersion};

/// The whole web config.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WebConfig {
    pub tls: Option<TlsServerConfig>,
    /// User names and their bcrypt hashes, sorted by name; empty: no basic authentication.
    pub basic_auth_users: Vec<(String, String)>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWeb {
    tls_server_config: Option<RawTls>,
    #[serde(default)]
    basic_auth_users: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert_file: Option<String>,
    key_file: Option<String>,
    client_auth_type: Option<String>,
    client_ca_file: Option<String>,
    min_version: Option<String>,
    max_version: Option<String>,
}

impl WebConfig {
    /// Reads and checks a web config file. Errors name the file, line and key, and never repeat
    /// a value from it (a wrong path could point at a key file).
    pub fn load(path: &Path) -> Result<WebConfig, ConfigError> {
        let name = path.display().to_string();
        let fail =
            |key: &str, message: String| ConfigError { file: name.clone(), line: None, key: key.into(), message };
        let meta = std::fs::metadata(path).map_err(|e| fail("", format!("cannot read the web config: {e}")))?;
        if meta.len() > MAX_CONFIG_BYTES {
            return Err(fail("", format!("the file has {} bytes; is it the right file?", meta.len())));
        }
        let text = std::fs::read_to_string(path).map_err(|e| fail("", format!("cannot read the web config: {e}")))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        WebConfig::parse(&text, &name, dir)
    }

    /// Parses web config text; relative paths are joined to `dir`.
    pub fn parse(text: &str, name: &str, dir: &Path) -> Result<WebConfig, ConfigError> {
        let at = |key: &str, message: String| ConfigError {
            file: name.to_owned(),
            // A missing key is shown at its section.
            line: locate(text, key).or_else(|| key.rsplit_once('.').and_then(|(section, _)| locate(text, section))),
            key: key.to_owned(),
            message,
        };
        if !matches!(serde_yaml::from_str::<serde_yaml::Value>(text), Ok(serde_yaml::Value::Mapping(_))) {
            return Err(ConfigError {
                file: name.to_owned(),
                line: None,
                key: String::new(),
                message: "this is not a YAML mapping with tls_server_config: or basic_auth_users:, so it is not a web \
                          config (is it the right file?); its content is not shown, since it may be a key"
                    .into(),
            });
        }
        let raw: RawWeb = serde_yaml::from_str(text).map_err(|e| {
            let mut err = super::yaml_error(&e, text, name);
            if let Some(field) = err.message.strip_prefix("unknown field `").and_then(|r| r.split('`').next()) {
                err.message = format!(
                    "`{field}` is not supported by mt5bot's listener; accepted: tls_server_config (cert_file, \
                     key_file, client_auth_type, client_ca_file, min_version, max_version) and basic_auth_users"
                );
            }
            err
        })?;
        let path_of = |p: &str| {
            let p = Path::new(p);
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                dir.join(p)
            }
        };
        let tls = match raw.tls_server_config {
            None => None,
            Some(t) => {
                let need = |v: Option<String>, key: &str| {
                    v.filter(|s| !s.trim().is_empty())
                        .map(|s| path_of(&s))
                        .ok_or_else(|| at(key, "is required with tls_server_config (a PEM file)".into()))
                };
                let cert_file = need(t.cert_file, "tls_server_config.cert_file")?;
                let key_file = need(t.key_file, "tls_server_config.key_file")?;
                let client_auth = match t.client_auth_type.as_deref().unwrap_or("NoClientCert") {
                    "NoClientCert" => ClientAuth::None,
                    "VerifyClientCertIfGiven" => ClientAuth::VerifyIfGiven,
                    "RequireAndVerifyClientCert" => ClientAuth::RequireAndVerify,
                    "RequestClientCert" | "RequireAnyClientCert" => {
                        return Err(at(
                            "tls_server_config.client_auth_type",
                            "asks for a certificate without checking it, which authenticates nobody; use \
                             RequireAndVerifyClientCert (or VerifyClientCertIfGiven) with client_ca_file"
                                .into(),
                        ))
                    }
                    other => {
                        return Err(at(
                            "tls_server_config.client_auth_type",
                            format!(
                                "{other:?} is not a client auth type; accepted: NoClientCert, VerifyClientCertIfGiven, \
                                 RequireAndVerifyClientCert"
                            ),
                        ))
                    }
                };
                let client_ca_file = t.client_ca_file.filter(|s| !s.trim().is_empty()).map(|s| path_of(&s));
                if client_auth != ClientAuth::None && client_ca_file.is_none() {
                    return Err(at(
                        "tls_server_config.client_ca_file",
                        "is required to verify client certificates (the CA that signs them, PEM)".into(),
                    ));
                }
                if client_auth == ClientAuth::None && client_ca_file.is_some() {
                    return Err(at(
                        "tls_server_config.client_auth_type",
                        "is NoClientCert, so client_ca_file would check nothing; set RequireAndVerifyClientCert".into(),
                    ));
                }
                let version = |v: Option<String>, key: &str, default: TlsVersion| match v.as_deref() {
                    None => Ok(default),
                    Some("TLS12") => Ok(TlsVersion::Tls12),
                    Some("TLS13") => Ok(TlsVersion::Tls13),
                    Some("TLS10" | "TLS11") => {
                        Err(at(key, "TLS 1.0 and 1.1 are broken and not offered; accepted: TLS12, TLS13".into()))
                    }
                    Some(other) => Err(at(key, format!("{other:?} is not a TLS version; accepted: TLS12, TLS13"))),
                };
                let min_version = version(t.min_version, "tls_server_config.min_version", TlsVersion::Tls12)?;
                let max_version = version(t.max_version, "tls_server_config.max_version", TlsVersion::Tls13)?;
                if min_version > max_version {
                    return Err(at("tls_server_config.min_version", "is above max_version".into()));
                }
                Some(TlsServerConfig { cert_file, key_file, client_auth, client_ca_file, min_version, max_version })
            }
        };
        let mut basic_auth_users = Vec::with_capacity(raw.basic_auth_users.len());
        for (user, hash) in raw.basic_auth_users {
            let key = format!("basic_auth_users.{user}");
            if user.is_empty() || user.contains(':') || user.chars().any(char::is_control) {
                return Err(at("basic_auth_users", "a user name is empty or holds ':' or a control character".into()));
            }
            // Never echo the value: a plain password put here by mistake is a secret.
            if !is_bcrypt_hash(&hash) {
                return Err(at(
                    &key,
                    "is not a bcrypt hash ($2a$, $2b$ or $2y$, 60 characters); make one with `mt5bot hash-password` \
                     and never put the password itself here"
                        .into(),
                ));
            }
            basic_auth_users.push((user, hash));
        }
        Ok(WebConfig { tls, basic_auth_users })
    }
}

/// The shape of a bcrypt hash in modular crypt format: `$2b$CC$` and 53 characters of bcrypt's base64.
pub fn is_bcrypt_hash(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 60
        && b[0] == b'$'
        && b[1] == b'2'
        && matches!(b[2], b'a' | b'b' | b'y')
        && b[3] == b'$'
        && s[4..6].parse::<u32>().is_ok_and(|c| (4..=31).contains(&c))
        && b[6] == b'$'
        && b[7..].iter().all(|c| c.is_ascii_alphanumeric() || *c == b'.' || *c == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "$2y$04$abcdefghijklmnopqrstuuAbCdEfGhIjKlMnOpQrStUvWxYz01234";

    fn parse(text: &str) -> Result<WebConfig, ConfigError> {
        WebConfig::parse(text, "web.yml", Path::new("/etc/mt5bot"))
    }

    #[test]
    fn the_toolkit_format_reads_with_paths_from_the_files_folder() {
        let c = parse(&format!(
            "tls_server_config:\n  cert_file: tls/server.crt\n  key_file: /keys/server.key\n  client_auth_type: \
             RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n  min_version: TLS13\nbasic_auth_users:\n  prom: {HASH}\n"
        ))
        .expect("valid");
        let tls = c.tls.expect("tls");
        assert_eq!(tls.cert_file, Path::new("/etc/mt5bot/tls/server.crt"));
        assert_eq!(tls.key_file, Path::new("/keys/server.key"));
        assert_eq!(tls.client_ca_file.as_deref(), Some(Path::new("/etc/mt5bot/ca.crt")));
        assert_eq!(
            (tls.client_auth, tls.min_version, tls.max_version),
            (ClientAuth::RequireAndVerify, TlsVersion::Tls13, TlsVersion::Tls13)
        );
        assert_eq!(c.basic_auth_users, vec![("prom".to_owned(), HASH.to_owned())]);
        assert_eq!(parse("basic_auth_users: {}\n").expect("valid"), WebConfig::default());
    }

    #[test]
    fn every_bad_shape_names_its_key_and_never_echoes_a_value() {
        for (text, key, says) in [
            ("tls_server_config:\n  key_file: k\n", "tls_server_config.cert_file", "required"),
            ("tls_server_config:\n  cert_file: c\n", "tls_server_config.key_file", "required"),
            ("tls_server_config:\n  cert_file: c\n  key_file: k\n  client_auth_type: RequireAndVerifyClientCert\n", "tls_server_config.client_ca_file", "required"),
            ("tls_server_config:\n  cert_file: c\n  key_file: k\n  client_auth_type: RequireAnyClientCert\n  client_ca_file: a\n", "tls_server_config.client_auth_type", "authenticates nobody"),
            ("tls_server_config:\n  cert_file: c\n  key_file: k\n  client_ca_file: a\n", "tls_server_config.client_auth_type", "check nothing"),
            ("tls_server_config:\n  cert_file: c\n  key_file: k\n  min_version: TLS11\n", "tls_server_config.min_version", "broken"),
            ("tls_server_config:\n  cert_file: c\n  key_file: k\n  min_version: TLS13\n  max_version: TLS12\n", "tls_server_config.min_version", "above"),
            ("tls_server_config:\n  cert_file: c\n  key_file: k\n  cipher_suites: [x]\n", "tls_server_config.cipher_suites", "not supported"),
            ("http_server_config:\n  http2: false\n", "http_server_config", "not supported"),
            ("basic_auth_users:\n  prom: hunter2-plain\n", "basic_auth_users.prom", "not a bcrypt hash"),
        ] {
            let e = parse(text).expect_err(text);
            assert_eq!(e.key, key, "{text}: {e}");
            assert!(e.message.contains(says), "{text}: {e}");
            assert!(e.line.is_some(), "{text}: {e}");
            assert!(!e.to_string().contains("hunter2"), "{e}");
        }
        let e = parse("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n")
            .expect_err("a key");
        assert!(e.message.contains("not a web config") && !e.to_string().contains("MIIE"), "{e}");
    }

    #[test]
    fn a_bcrypt_hash_is_told_from_a_password() {
        assert!(is_bcrypt_hash(HASH));
        assert!(is_bcrypt_hash(&HASH.replacen("$2y$", "$2b$", 1)));
        assert!(!is_bcrypt_hash(&HASH.replacen("$04$", "$99$", 1)));
        assert!(!is_bcrypt_hash(&HASH[..59]));
        assert!(!is_bcrypt_hash(&format!("{}!", &HASH[..59])));
        assert!(!is_bcrypt_hash("correct horse battery staple correct horse battery staple 1234"));
    }
}
