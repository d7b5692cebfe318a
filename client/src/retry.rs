//! Retry policy: full-jitter exponential backoff, applied only to retryable errors.
//!
//! "Full jitter" (as in the AWS SDKs): before retry `n` (1-based) sleep a uniformly random
//! duration in `[0, min(max_backoff, initial_backoff * 2^(n-1))]`, so that many clients failing
//! at once do not retry in lockstep.

use std::time::Duration;

use rand::Rng;

/// How often and how patiently a call is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Total attempts per call, including the first (>= 1). A failover to a front that was not
    /// yet tried in this call is free: it neither sleeps nor counts as an attempt.
    pub max_attempts: u32,
    /// The backoff cap before the first retry.
    pub initial_backoff: Duration,
    /// The largest backoff cap.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(20),
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The upper bound of the sleep before retry number `retry` (1-based).
    pub fn backoff_cap(&self, retry: u32) -> Duration {
        let exp = retry.saturating_sub(1).min(31);
        let cap = self
            .initial_backoff
            .checked_mul(1u32 << exp)
            .unwrap_or(self.max_backoff);
        cap.min(self.max_backoff)
    }

    /// A full-jitter sleep before retry number `retry`: uniform in `[0, backoff_cap(retry)]`.
    pub fn backoff(&self, retry: u32, rng: &mut impl Rng) -> Duration {
        let cap = self.backoff_cap(retry);
        let cap_nanos = u64::try_from(cap.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rng.gen_range(0..=cap_nanos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_cap_doubles_from_initial_and_stops_at_max() {
        let p = RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
        };
        assert_eq!(p.backoff_cap(1), Duration::from_millis(100));
        assert_eq!(p.backoff_cap(2), Duration::from_millis(200));
        assert_eq!(p.backoff_cap(3), Duration::from_millis(400));
        assert_eq!(p.backoff_cap(4), Duration::from_millis(800));
        assert_eq!(p.backoff_cap(5), Duration::from_secs(1));
        assert_eq!(p.backoff_cap(u32::MAX), Duration::from_secs(1));
    }

    #[test]
    fn full_jitter_backoff_stays_within_zero_and_the_cap() {
        let p = RetryPolicy::default();
        let mut rng = rand::thread_rng();
        for retry in 1..40 {
            let cap = p.backoff_cap(retry);
            for _ in 0..50 {
                assert!(p.backoff(retry, &mut rng) <= cap);
            }
        }
    }

    #[test]
    fn full_jitter_backoff_is_spread_not_constant() {
        let p = RetryPolicy::default();
        let mut rng = rand::thread_rng();
        let samples: Vec<_> = (0..100).map(|_| p.backoff(3, &mut rng)).collect();
        let min = samples.iter().min().unwrap();
        let max = samples.iter().max().unwrap();
        // 100 uniform draws over [0, 400ms] land this close together with negligible probability.
        assert!(*max - *min > Duration::from_millis(100), "{min:?}..{max:?}");
    }

    #[test]
    fn zero_initial_backoff_never_sleeps() {
        let p = RetryPolicy {
            initial_backoff: Duration::ZERO,
            ..RetryPolicy::default()
        };
        assert_eq!(p.backoff(5, &mut rand::thread_rng()), Duration::ZERO);
    }
}
