//! The secrets the daemon reads at start-up, and from where.
//!
//! Each is read from `$CREDENTIALS_DIRECTORY/<NAME>` first (systemd `LoadCredential=`: the secret
//! never enters the environment, which other processes of the same user can read), else from the
//! environment variable of the same name (systemd `EnvironmentFile=` with the files the provisioning
//! helpers write). A [`Secret`] never prints its value: `Debug` shows `<redacted>` and there is no
//! `Display`.

use std::fmt;
use std::path::Path;

use crate::support::names::{
    API_KEY, CHECKPOINT_AES_KEY, CHECKPOINT_AES_KEY_PREVIOUS, CONTROLLER_SHARED_SECRET, FIX_PASSWORD, INFLUXDB_TOKEN,
};

/// Every secret name the daemon looks for.
pub const NAMES: [&str; 6] =
    [API_KEY, CONTROLLER_SHARED_SECRET, CHECKPOINT_AES_KEY, CHECKPOINT_AES_KEY_PREVIOUS, INFLUXDB_TOKEN, FIX_PASSWORD];

/// A secret value. Compare it, use its bytes; it is never formatted.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A secret found in another value (credentials in a URL).
    pub fn from_value(value: String) -> Secret {
        Secret(value)
    }

    #[cfg(test)]
    pub fn for_tests(value: &str) -> Secret {
        Secret(value.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where a secret came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Credential,
    Environment,
}

/// Reads the secret `name`: the credential file first, then the variable; an empty value counts
/// as none.
fn read_one(
    credentials_dir: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
    name: &str,
) -> Result<Option<(Secret, Source)>, String> {
    if let Some(dir) = credentials_dir {
        match std::fs::read_to_string(dir.join(name)) {
            Ok(text) => {
                let v = text.strip_suffix('\n').unwrap_or(&text);
                let v = v.strip_suffix('\r').unwrap_or(v);
                if !v.is_empty() {
                    return Ok(Some((Secret(v.to_owned()), Source::Credential)));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot read the credential {name} from {}: {e}", dir.display())),
        }
    }
    Ok(env(name).filter(|v| !v.is_empty()).map(|v| (Secret(v), Source::Environment)))
}

/// The secrets found at start-up.
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    found: Vec<(&'static str, Secret, Source)>,
}

impl Secrets {
    /// Reads every known secret from `credentials_dir` (when given) and `env`.
    pub fn load(credentials_dir: Option<&Path>, env: &dyn Fn(&str) -> Option<String>) -> Result<Secrets, String> {
        let mut found = Vec::new();
        for name in NAMES {
            if let Some((secret, source)) = read_one(credentials_dir, env, name)? {
                found.push((name, secret, source));
            }
        }
        Ok(Secrets { found })
    }

    /// One secret named by the config (a notification sink's token), from the process's
    /// `$CREDENTIALS_DIRECTORY` or environment.
    pub fn named_from_process(name: &str) -> Result<Option<(Secret, Source)>, String> {
        let dir = std::env::var_os("CREDENTIALS_DIRECTORY").map(std::path::PathBuf::from);
        read_one(dir.as_deref(), &|k| std::env::var(k).ok(), name)
    }

    /// Reads from the process's `$CREDENTIALS_DIRECTORY` and environment.
    pub fn from_process() -> Result<Secrets, String> {
        let dir = std::env::var_os("CREDENTIALS_DIRECTORY").map(std::path::PathBuf::from);
        Secrets::load(dir.as_deref(), &|k| std::env::var(k).ok())
    }

    pub fn get(&self, name: &str) -> Option<&Secret> {
        self.found.iter().find(|(n, _, _)| *n == name).map(|(_, s, _)| s)
    }

    pub fn source(&self, name: &str) -> Option<Source> {
        self.found.iter().find(|(n, _, _)| *n == name).map(|(_, _, s)| *s)
    }

    /// Names and sources only, for the start-up log line.
    /// The names of the secrets found (never their values).
    pub fn names_set(&self) -> Vec<&'static str> {
        self.found.iter().map(|(n, _, _)| *n).collect()
    }

    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self
            .found
            .iter()
            .map(|(n, _, s)| format!("{n} ({})", if *s == Source::Credential { "credential" } else { "environment" }))
            .collect();
        let missing: Vec<&str> = NAMES.iter().copied().filter(|n| self.get(n).is_none()).collect();
        if parts.is_empty() {
            parts.push("none".into());
        }
        if missing.is_empty() {
            parts.join(", ")
        } else {
            format!("{}; not set: {}", parts.join(", "), missing.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_win_over_the_environment_and_values_never_print() {
        let tmp = crate::support::testdir::TestDir::new("creds");
        let dir = tmp.path().to_path_buf();
        std::fs::write(dir.join(API_KEY), "from-file\n").expect("write");
        let env = |k: &str| match k {
            API_KEY => Some("from-env".to_owned()),
            INFLUXDB_TOKEN => Some("tok".to_owned()),
            _ => None,
        };
        let s = Secrets::load(Some(&dir), &env).expect("load");
        assert_eq!(s.get(API_KEY).map(Secret::expose), Some("from-file"));
        assert_eq!(s.source(API_KEY), Some(Source::Credential));
        assert_eq!(s.source(INFLUXDB_TOKEN), Some(Source::Environment));
        let text = format!("{s:?} {}", s.describe());
        assert!(!text.contains("from-file") && !text.contains("tok\""), "{text}");
        assert!(
            s.describe().starts_with("API_KEY (credential), INFLUXDB_TOKEN (environment); not set: "),
            "{}",
            s.describe()
        );
    }
}
