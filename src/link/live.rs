//! The settings `reload` applies while the daemon runs. Every other change to `config.yaml` needs a
//! restart. This is the one place that knows which keys are live: [`LiveConfig::KEYS`] names them,
//! [`LiveConfig::of`] reads them from a configuration and [`LiveConfig::apply_to`] writes them
//! into one, and a test holds the three to each other.

use std::time::Duration;

use crate::config::{Config, DriftConfig};

/// The live-changeable part of a [`Config`].
#[derive(Debug, Clone, PartialEq)]
pub struct LiveConfig {
    pub max_position: f64,
    pub max_orders_per_second: u32,
    pub max_notional: f64,
    pub drift: DriftConfig,
    pub queue_max_wait: Duration,
}

impl LiveConfig {
    /// The dotted `config.yaml` keys a reload applies while running.
    pub const KEYS: [&'static str; 10] = [
        "risk.max_position",
        "risk.max_orders_per_second",
        "risk.max_notional",
        "drift.enabled",
        "drift.delta",
        "drift.threshold",
        "drift.min_samples",
        "drift.action",
        "drift.pause_for",
        "queue.max_wait",
    ];

    /// The live settings of `cfg`.
    pub fn of(cfg: &Config) -> LiveConfig {
        LiveConfig {
            max_position: cfg.risk.max_position,
            max_orders_per_second: cfg.risk.max_orders_per_second,
            max_notional: cfg.risk.max_notional,
            drift: cfg.drift.clone(),
            queue_max_wait: cfg.queue_max_wait,
        }
    }

    /// Writes these settings into `cfg`, leaving everything else as it is.
    pub fn apply_to(&self, cfg: &mut Config) {
        cfg.risk.max_position = self.max_position;
        cfg.risk.max_orders_per_second = self.max_orders_per_second;
        cfg.risk.max_notional = self.max_notional;
        cfg.drift = self.drift.clone();
        cfg.queue_max_wait = self.queue_max_wait;
    }

    /// Whether `key` (dotted) is applied live.
    pub fn is_live(key: &str) -> bool {
        Self::KEYS.contains(&key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::types::DriftAction;
    use serde_json::Value;
    use std::collections::BTreeMap;

    fn flat(cfg: &Config) -> BTreeMap<String, Value> {
        fn walk(prefix: &str, v: &Value, out: &mut BTreeMap<String, Value>) {
            match v {
                Value::Object(m) => {
                    for (k, v) in m {
                        walk(&if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") }, v, out);
                    }
                }
                other => {
                    out.insert(prefix.to_owned(), other.clone());
                }
            }
        }
        let mut out = BTreeMap::new();
        walk("", &serde_json::to_value(cfg.to_raw()).expect("json"), &mut out);
        out
    }

    #[test]
    fn keys_of_and_apply_to_name_the_same_settings() {
        let base = Config::embedded();
        let mut other = base.clone();
        other.risk.max_position += 1.0;
        other.risk.max_orders_per_second += 1;
        other.risk.max_notional += 1.0;
        other.drift.enabled = !other.drift.enabled;
        other.drift.delta += 0.01;
        other.drift.threshold += 1.0;
        other.drift.min_samples += 1;
        other.drift.action = if other.drift.action == DriftAction::Log { DriftAction::Pause } else { DriftAction::Log };
        other.drift.pause_for += Duration::from_secs(1);
        other.queue_max_wait += Duration::from_secs(1);
        // Everything of `other` that is live, applied to `base`: exactly KEYS differ.
        let mut applied = base.clone();
        LiveConfig::of(&other).apply_to(&mut applied);
        let (a, b) = (flat(&base), flat(&applied));
        let differ: Vec<&str> = a.keys().filter(|k| a.get(*k) != b.get(*k)).map(String::as_str).collect();
        let mut keys = LiveConfig::KEYS.to_vec();
        keys.sort_unstable();
        assert_eq!(differ, keys);
        assert_eq!(LiveConfig::of(&applied), LiveConfig::of(&other));
        assert!(LiveConfig::is_live("drift.delta") && !LiveConfig::is_live("feed.symbols"));
    }
}
