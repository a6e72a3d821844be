//! How long a task waits before its next attempt: exponential backoff with jitter.

use serde::{Deserialize, Serialize};

use crate::error::ValidationError;

/// The attempts a job gets unless the producer says otherwise.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
/// The most attempts a producer may ask for.
pub const MAX_MAX_ATTEMPTS: u32 = 100;

/// `delay(n) = min(max_seconds, initial_seconds × multiplier^(n−1))`, then jittered.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryBackoff {
    #[serde(default = "RetryBackoff::default_initial")]
    pub initial_seconds: f64,
    #[serde(default = "RetryBackoff::default_multiplier")]
    pub multiplier: f64,
    #[serde(default = "RetryBackoff::default_max")]
    pub max_seconds: f64,
}

impl Default for RetryBackoff {
    fn default() -> Self {
        RetryBackoff {
            initial_seconds: Self::default_initial(),
            multiplier: Self::default_multiplier(),
            max_seconds: Self::default_max(),
        }
    }
}

impl RetryBackoff {
    fn default_initial() -> f64 {
        1.0
    }
    fn default_multiplier() -> f64 {
        2.0
    }
    fn default_max() -> f64 {
        300.0
    }

    pub fn validate(&self) -> Result<(), ValidationError> {
        let field = |name: &str, reason: &str| Err(ValidationError::field(format!("retry_backoff.{name}"), reason));
        if !(self.initial_seconds.is_finite() && (0.0..=86_400.0).contains(&self.initial_seconds)) {
            return field("initial_seconds", "must be from 0 to 86400");
        }
        if !(self.multiplier.is_finite() && (1.0..=100.0).contains(&self.multiplier)) {
            return field("multiplier", "must be from 1 to 100");
        }
        if !(self.max_seconds.is_finite() && (self.initial_seconds..=86_400.0).contains(&self.max_seconds)) {
            return field("max_seconds", "must be from initial_seconds to 86400");
        }
        Ok(())
    }

    /// The wait after failed attempt `attempt` (1-based), in milliseconds. `jitter` in `[0, 1)` is
    /// drawn by the caller; the wait is spread over `[delay/2, delay)` ("equal jitter"), so retries
    /// of many jobs that failed together do not arrive together.
    pub fn delay_ms(&self, attempt: u32, jitter: f64) -> u64 {
        let exponent = attempt.saturating_sub(1).min(1_000) as i32;
        let delay = (self.initial_seconds * self.multiplier.powi(exponent)).min(self.max_seconds);
        let jitter = jitter.clamp(0.0, 1.0);
        let seconds = delay / 2.0 + delay / 2.0 * jitter;
        (seconds * 1000.0).round() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_exponentially_up_to_the_cap() {
        let backoff = RetryBackoff::default();
        assert_eq!(backoff.delay_ms(1, 1.0), 1_000);
        assert_eq!(backoff.delay_ms(2, 1.0), 2_000);
        assert_eq!(backoff.delay_ms(3, 1.0), 4_000);
        assert_eq!(backoff.delay_ms(20, 1.0), 300_000);
        assert_eq!(backoff.delay_ms(3, 0.0), 2_000, "jitter spreads over the upper half");
        assert_eq!(backoff.delay_ms(u32::MAX, 0.5), 225_000);
    }

    #[test]
    fn bad_settings_are_refused() {
        assert!(RetryBackoff { multiplier: 0.5, ..Default::default() }.validate().is_err());
        assert!(RetryBackoff { max_seconds: 0.5, ..Default::default() }.validate().is_err());
        assert!(RetryBackoff { initial_seconds: f64::NAN, ..Default::default() }.validate().is_err());
        assert!(RetryBackoff::default().validate().is_ok());
    }
}
