//! Process sampler: `cpu_usage_pct` and `rss_usage_mb` from `/proc/self`, read on the helper thread.

use std::time::Instant;

/// Clock ticks per second of `/proc/*/stat` times: `USER_HZ`, fixed at 100 in the Linux ABI.
const USER_HZ: f64 = 100.0;

/// Remembers the previous CPU reading so each sample is the usage since the last one.
#[derive(Debug, Default)]
pub struct Sampler {
    last: Option<(Instant, f64)>,
}

/// One reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// CPU time used since the previous sample, as a percentage of one core's wall time.
    pub cpu_pct: Option<f64>,
    /// Resident set size in MiB.
    pub rss_mb: Option<f64>,
}

impl Sampler {
    pub fn sample(&mut self) -> Sample {
        let now = Instant::now();
        let cpu = std::fs::read_to_string("/proc/self/stat").ok().and_then(|s| cpu_seconds(&s));
        let cpu_pct = match (cpu, self.last) {
            (Some(c), Some((t0, c0))) => {
                let wall = now.duration_since(t0).as_secs_f64();
                (wall > 0.0).then(|| ((c - c0) / wall * 100.0).max(0.0))
            }
            _ => None,
        };
        if let Some(c) = cpu {
            self.last = Some((now, c));
        }
        let rss_mb = std::fs::read_to_string("/proc/self/status").ok().and_then(|s| rss_kib(&s)).map(|k| k / 1024.0);
        Sample { cpu_pct, rss_mb }
    }
}

/// utime + stime in seconds from the text of `/proc/<pid>/stat`.
pub fn cpu_seconds(stat: &str) -> Option<f64> {
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state is field 3 of the man page; utime and stime are fields 14 and 15.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / USER_HZ)
}

/// `VmRSS` in KiB from the text of `/proc/<pid>/status`.
pub fn rss_kib(status: &str) -> Option<f64> {
    status_kib(status, "VmRSS:")
}

/// `VmHWM`, the peak resident set, in KiB from the text of `/proc/<pid>/status`.
pub fn peak_rss_kib(status: &str) -> Option<f64> {
    status_kib(status, "VmHWM:")
}

/// This process's peak resident set in MiB, where `/proc` tells it.
pub fn own_peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    peak_rss_kib(&status).map(|k| k / 1024.0)
}

fn status_kib(status: &str, key: &str) -> Option<f64> {
    let line = status.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_awkward_names() {
        let stat = "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 100 1000 200";
        assert_eq!(cpu_seconds(stat), Some(3.0));
        assert_eq!(cpu_seconds("garbage"), None);
    }

    #[test]
    fn parses_status() {
        assert_eq!(rss_kib("Name:\tx\nVmRSS:\t   10240 kB\n"), Some(10240.0));
        assert_eq!(rss_kib("Name:\tx\n"), None);
        assert_eq!(peak_rss_kib("VmHWM:\t  2048 kB\nVmRSS:\t   1024 kB\n"), Some(2048.0));
    }

    #[test]
    fn samples_this_process() {
        let mut s = Sampler::default();
        let first = s.sample();
        assert!(first.rss_mb.is_some_and(|m| m > 0.5), "{first:?}");
        assert_eq!(first.cpu_pct, None, "no usage before a second reading");
        let t = Instant::now();
        let mut x = 0u64;
        while t.elapsed().as_millis() < 50 {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        let second = s.sample();
        assert!(second.cpu_pct.is_some_and(|p| p >= 0.0), "{second:?}");
    }
}
