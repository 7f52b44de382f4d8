//! One retry backoff for every loop that reconnects or resends: capped exponential, with jitter
//! so that many clients that failed together do not retry together.

use std::time::Duration;

/// Capped exponential backoff: the step starts at `min`, doubles with each attempt up to `max`,
/// and each wait is jittered to between half and all of the step.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
    rng: u64,
}

impl Backoff {
    /// A backoff with a random jitter seed.
    pub fn new(min: Duration, max: Duration) -> Self {
        Self::with_seed(min, max, rand::random::<u64>())
    }

    /// A backoff whose jitter is reproducible from `seed` (tests, simulations).
    pub fn with_seed(min: Duration, max: Duration, seed: u64) -> Self {
        // xorshift64 never leaves zero, so zero is not a seed.
        Backoff { min, max: max.max(min), attempt: 0, rng: seed | 1 }
    }

    /// The wait before the next attempt.
    pub fn next_wait(&mut self) -> Duration {
        let step = self.min.saturating_mul(1u32 << self.attempt.min(30)).min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        // xorshift64: jitter only, not a secret.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let half = step / 2;
        let span = (step - half).as_nanos() as u64;
        half + Duration::from_nanos(self.rng % (span + 1))
    }

    /// Back to the first step, after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_with_jitter_up_to_the_cap() {
        let ms = Duration::from_millis;
        let mut b = Backoff::with_seed(ms(100), ms(1000), 12345);
        let mut seen = std::collections::HashSet::new();
        for i in 0..12 {
            let w = b.next_wait();
            let step = ms((100u64 << i.min(10)).min(1000));
            assert!(w >= step / 2 && w <= step, "attempt {i}: {w:?} not within [{:?}, {step:?}]", step / 2);
            seen.insert(w);
        }
        assert!(seen.len() > 6, "jitter varies the waits: {seen:?}");
        b.reset();
        assert!(b.next_wait() <= ms(100), "reset starts over");
    }

    #[test]
    fn a_zero_seed_still_jitters_and_a_cap_below_min_is_min() {
        let mut b = Backoff::with_seed(Duration::from_secs(2), Duration::from_secs(1), 0);
        let w: Vec<Duration> = (0..4).map(|_| b.next_wait()).collect();
        assert!(w.iter().all(|w| *w >= Duration::from_secs(1) && *w <= Duration::from_secs(2)), "{w:?}");
    }
}
