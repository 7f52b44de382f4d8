//! TLS and basic authentication for the helper thread's listener (`metrics.web_config`).
//!
//! - TLS itself (the configuration from PEM files, the plain-or-TLS [`Transport`], reloading
//!   renewed files) is [`crate::support::tls`], shared with the MT5 bridge's listener.
//! - [`BasicAuth`] checks `Authorization: Basic` against bcrypt hashes. bcrypt is slow on purpose
//!   (tens of milliseconds) and the listener has one thread, so a pair that once passed is
//!   remembered (a keyed SHA-256 of it), and the time spent on pairs not yet known is budgeted:
//!   past [`BCRYPT_BUDGET`] per second a client is told to come back instead of stalling scrapes.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

pub use crate::support::tls::{TlsRefused, TlsSource, Transport};

/// What guards the listener: TLS on every connection, basic authentication on requests.
#[derive(Debug, Default)]
pub struct ListenerSecurity {
    pub tls: Option<TlsSource>,
    pub auth: Option<BasicAuth>,
}

impl ListenerSecurity {
    /// Reads the files a web config names.
    pub fn new(web: &crate::config::web::WebConfig) -> Result<ListenerSecurity, String> {
        let tls = web
            .tls
            .clone()
            .map(|files| TlsSource::new(files, "tls_server_config", &[b"http/1.1"], "metrics listener"))
            .transpose()?;
        Ok(ListenerSecurity { tls, auth: BasicAuth::new(&web.basic_auth_users, Instant::now()) })
    }
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
