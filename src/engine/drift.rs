//! Page-Hinkley drift detection on a stream of numbers (here: the model's absolute prediction error,
//! in basis points).
//!
//! The test accumulates `m_t = sum(x_i - mean_i - delta)` and alarms when `m_t - min(m)` exceeds the
//! threshold (lambda): a sustained rise of the mean by more than `delta`. After an alarm it starts
//! afresh, so one shift raises one alarm. Sans-IO and deterministic: the caller feeds samples.

/// Detector state. Each `update` is O(1) and allocates nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct PageHinkley {
    delta: f64,
    threshold: f64,
    min_samples: u64,
    n: u64,
    mean: f64,
    cum: f64,
    min_cum: f64,
}

impl PageHinkley {
    pub fn new(delta: f64, threshold: f64, min_samples: u64) -> Self {
        PageHinkley { delta, threshold, min_samples, n: 0, mean: 0.0, cum: 0.0, min_cum: 0.0 }
    }

    /// Feeds one sample; returns `true` when it raises an alarm. Non-finite samples are ignored.
    pub fn update(&mut self, x: f64) -> bool {
        if !x.is_finite() {
            return false;
        }
        self.n += 1;
        self.mean += (x - self.mean) / self.n as f64;
        self.cum += x - self.mean - self.delta;
        if self.cum < self.min_cum {
            self.min_cum = self.cum;
        }
        if self.n >= self.min_samples && self.cum - self.min_cum > self.threshold {
            self.reset();
            return true;
        }
        false
    }

    /// Current test statistic `m_t - min(m)`.
    pub fn statistic(&self) -> f64 {
        self.cum - self.min_cum
    }

    pub fn samples(&self) -> u64 {
        self.n
    }

    pub fn reset(&mut self) {
        self.n = 0;
        self.mean = 0.0;
        self.cum = 0.0;
        self.min_cum = 0.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::Xoshiro256PlusPlus, Rng, SeedableRng};

    /// |N(0, sigma)| samples, like absolute prediction errors.
    fn abs_normal(rng: &mut Xoshiro256PlusPlus, sigma: f64) -> f64 {
        let u1 = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let u2 = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let z = (-2.0 * (1.0 - u1).ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        (z * sigma).abs()
    }

    #[test]
    fn no_alarm_on_a_stationary_stream_of_100k_samples() {
        for seed in [1u64, 2, 3] {
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
            let mut ph = PageHinkley::new(0.05, 100.0, 500);
            let alarms = (0..100_000).filter(|_| ph.update(abs_normal(&mut rng, 1.0))).count();
            assert_eq!(alarms, 0, "seed {seed}");
        }
    }

    #[test]
    fn detects_a_mean_shift_within_a_bounded_number_of_samples() {
        for seed in [7u64, 8, 9] {
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
            let mut ph = PageHinkley::new(0.05, 100.0, 500);
            for _ in 0..5_000 {
                assert!(!ph.update(abs_normal(&mut rng, 1.0)));
            }
            // The error doubles (mean |N(0,1)| ~ 0.80 becomes ~ 1.60): expected detection after
            // about lambda / (0.8 - delta) ~ 133 samples, plus the mean's lag.
            let detected_after = (1..=1_000).find(|_| ph.update(abs_normal(&mut rng, 2.0)));
            let n = detected_after.unwrap_or_else(|| panic!("seed {seed}: no alarm in 1000 samples"));
            assert!(n <= 400, "seed {seed}: alarm only after {n} samples");
            assert_eq!(ph.samples(), 0, "reset after the alarm");
        }
    }

    #[test]
    fn warm_up_suppresses_alarms() {
        let mut ph = PageHinkley::new(0.0, 1.0, 1_000);
        // A jump early on cannot alarm before min_samples.
        for i in 0..999 {
            assert!(!ph.update(if i < 10 { 0.0 } else { 100.0 }));
        }
        assert!(ph.statistic() > 1.0);
        assert!(ph.update(100.0), "alarm once warm");
    }

    #[test]
    fn ignores_non_finite_samples() {
        let mut ph = PageHinkley::new(0.0, 1.0, 0);
        assert!(!ph.update(f64::NAN));
        assert!(!ph.update(f64::INFINITY));
        assert_eq!(ph.samples(), 0);
    }
}
