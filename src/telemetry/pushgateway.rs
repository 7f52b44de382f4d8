//! A Pushgateway client: pushes metrics in the text exposition format to a grouping-key URL such as
//! `PROM_PUSH_URL` (`http://host:9091/metrics/job/mt5bot/instance/NAME`).
//!
//! The daemon pushes its final values when it stops, so the last figures of a stopped bot survive
//! it; the nightly diagnostics push their results the same way. Both use `POST`, which replaces only
//! the metric families they send and keeps the rest of the group, so neither wipes the other.

use std::time::Duration;

pub use crate::support::names::PROM_PUSH_URL;

/// How a push treats the group's other metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `POST`: replace the families pushed, keep the others.
    Merge,
    /// `PUT`: replace the whole group.
    Replace,
}

/// `url` with the bot's identity in its grouping key: `/account/A/strategy/S` appended for each
/// identity label the URL does not name already, so bots of a fleet pushing to one Pushgateway
/// keep a group each. `venue` is left out of the key: a venue series carries its own `venue`
/// label, which the Pushgateway refuses when it differs from the key's.
pub fn grouped(url: &str, identity: &[(String, String)]) -> String {
    let mut out = url.trim_end_matches('/').to_owned();
    let path = out.split_once("/metrics/").map_or("", |(_, p)| p).to_owned();
    let named: Vec<&str> = path.split('/').step_by(2).collect();
    for (k, v) in identity {
        if k == "venue" || named.contains(&k.as_str()) {
            continue;
        }
        out.push('/');
        out.push_str(k);
        out.push('/');
        out.push_str(v);
    }
    out
}

/// Sends `body` (text format 0.0.4) to `url`; the error says what failed, never with a secret.
pub fn push(url: &str, body: &[u8], mode: Mode, timeout: Duration) -> Result<(), String> {
    if !(url.starts_with("http://") || url.starts_with("https://")) || !url.contains("/metrics/job") {
        return Err(format!("{url:?} is not a Pushgateway URL (SCHEME://HOST:PORT/metrics/job/JOB/...)"));
    }
    let agent = crate::support::http::agent("", timeout);
    let req = match mode {
        Mode::Merge => agent.post(url),
        Mode::Replace => agent.put(url),
    };
    let mut resp = req
        .header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        .send(body)
        .map_err(|e| format!("cannot push to {url}: {e}"))?;
    let status = resp.status().as_u16();
    if (200..300).contains(&status) {
        return Ok(());
    }
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    Err(format!("the Pushgateway at {url} answered HTTP {status}: {}", text.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grouping_key_gets_the_identity_the_url_does_not_name() {
        let id = [
            ("account".to_owned(), "a1".to_owned()),
            ("strategy".to_owned(), "ewma".to_owned()),
            ("venue".to_owned(), "mt5".to_owned()),
        ];
        assert_eq!(
            grouped("http://127.0.0.1:9091/metrics/job/mt5bot/instance/h1/", &id),
            "http://127.0.0.1:9091/metrics/job/mt5bot/instance/h1/account/a1/strategy/ewma"
        );
        assert_eq!(
            grouped("http://127.0.0.1:9091/metrics/job/mt5bot/account/mine", &id),
            "http://127.0.0.1:9091/metrics/job/mt5bot/account/mine/strategy/ewma",
            "a key the operator set is kept"
        );
        assert_eq!(grouped("http://h:9091/metrics/job/mt5bot", &[]), "http://h:9091/metrics/job/mt5bot");
    }
}
