//! Counting abuse: token buckets keyed by a caller (a credential, a client address, a user name)
//! and signature failures keyed by client address and access key. Every map is bounded: past
//! `MAX_TRACKED` keys the ones with nothing to remember (a full bucket, an expired window) are
//! dropped, and a key that still finds no room is not counted.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use jobd_core::Timestamp;

/// At most this many keys are tracked per map.
pub const MAX_TRACKED: usize = 100_000;

fn seconds_between(from: Timestamp, to: Timestamp) -> f64 {
    (to - from).num_milliseconds().max(0) as f64 / 1000.0
}

struct Bucket {
    tokens: f64,
    refreshed: Timestamp,
}

/// Token buckets per key: `per_second` refill, `burst` capacity; a zero rate counts nothing.
pub struct KeyedBuckets {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl KeyedBuckets {
    pub fn new(per_second: f64, burst: f64) -> Self {
        KeyedBuckets { per_second, burst: burst.max(1.0), buckets: Mutex::new(HashMap::new()) }
    }

    fn is_off(&self) -> bool {
        self.per_second <= 0.0
    }

    /// The wait until `key` has a token again (`Err`), or `Ok` with the bucket refreshed; takes
    /// the token when `take`.
    fn use_bucket(&self, key: &str, now: Timestamp, take: bool) -> Result<(), Duration> {
        if self.is_off() {
            return Ok(());
        }
        let mut buckets = self.buckets.lock().expect("buckets");
        if !buckets.contains_key(key) {
            if !take {
                return Ok(());
            }
            if buckets.len() >= MAX_TRACKED {
                let (rate, burst) = (self.per_second, self.burst);
                buckets.retain(|_, b| b.tokens + seconds_between(b.refreshed, now) * rate < burst);
                if buckets.len() >= MAX_TRACKED {
                    return Ok(());
                }
            }
            buckets.insert(key.to_owned(), Bucket { tokens: self.burst, refreshed: now });
        }
        let bucket = buckets.get_mut(key).expect("just inserted");
        bucket.tokens = (bucket.tokens + seconds_between(bucket.refreshed, now) * self.per_second).min(self.burst);
        bucket.refreshed = now;
        if bucket.tokens >= 1.0 {
            if take {
                bucket.tokens -= 1.0;
            }
            Ok(())
        } else {
            let wait = ((1.0 - bucket.tokens) / self.per_second).max(0.001);
            Err(Duration::from_secs_f64(wait).max(Duration::from_secs(1)))
        }
    }

    /// Takes one token from `key`'s bucket; `Err(wait)` when it is empty.
    pub fn take(&self, key: &str, now: Timestamp) -> Result<(), Duration> {
        self.use_bucket(key, now, true)
    }

    /// Forgets the keys whose buckets have filled up again (they would start full anyway).
    /// Forgets full buckets; answers how many.
    pub fn prune(&self, now: Timestamp) -> usize {
        let (rate, burst) = (self.per_second, self.burst);
        let mut buckets = self.buckets.lock().expect("buckets");
        let before = buckets.len();
        buckets.retain(|_, b| b.tokens + seconds_between(b.refreshed, now) * rate < burst);
        before - buckets.len()
    }

    /// How many keys are tracked.
    pub fn len(&self) -> usize {
        self.buckets.lock().expect("buckets").len()
    }

    /// Whether no key is tracked (then `check` passes whatever the key).
    pub fn is_empty(&self) -> bool {
        self.buckets.lock().expect("buckets").is_empty()
    }

    /// Whether `key`'s bucket holds a token, without taking it.
    pub fn check(&self, key: &str, now: Timestamp) -> Result<(), Duration> {
        self.use_bucket(key, now, false)
    }
}

struct Failures {
    count: u32,
    window_start: Timestamp,
    locked_until: Option<Timestamp>,
}

/// Signature failures per (client address, access key): `after` failures within `window` lock
/// that pair for `lock_for`. Another address using the same key is not affected.
pub struct SignatureFailures {
    after: u32,
    window: chrono::Duration,
    lock_for: chrono::Duration,
    failures: Mutex<HashMap<(String, String), Failures>>,
}

impl SignatureFailures {
    pub fn new(after: u32, window: Duration, lock_for: Duration) -> Self {
        let to_chrono = |d: Duration| chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
        SignatureFailures {
            after,
            window: to_chrono(window),
            lock_for: to_chrono(lock_for),
            failures: Mutex::new(HashMap::new()),
        }
    }

    pub fn is_locked(&self, client: &str, access_key: &str, now: Timestamp) -> bool {
        let failures = self.failures.lock().expect("signature failures");
        if failures.is_empty() {
            return false; // the usual case: no key to build
        }
        let key = (client.to_owned(), access_key.to_owned());
        failures.get(&key).and_then(|f| f.locked_until).is_some_and(|until| until > now)
    }

    /// Counts a failure; answers whether the pair is now locked.
    pub fn record_failure(&self, client: &str, access_key: &str, now: Timestamp) -> bool {
        let mut failures = self.failures.lock().expect("signature failures");
        let key = (client.to_owned(), access_key.to_owned());
        if failures.len() >= MAX_TRACKED && !failures.contains_key(&key) {
            let window = self.window;
            failures.retain(|_, f| f.locked_until.is_some_and(|until| until > now) || now - f.window_start <= window);
            if failures.len() >= MAX_TRACKED {
                return false;
            }
        }
        let entry = failures.entry(key).or_insert(Failures { count: 0, window_start: now, locked_until: None });
        if now - entry.window_start > self.window && entry.locked_until.is_none_or(|until| until <= now) {
            *entry = Failures { count: 0, window_start: now, locked_until: None };
        }
        entry.count += 1;
        if entry.count >= self.after && entry.locked_until.is_none_or(|until| until <= now) {
            entry.locked_until = Some(now + self.lock_for);
            return true;
        }
        false
    }

    /// Forgets the pairs neither locked nor inside their counting window.
    /// Forgets failures past their window and lock; answers how many.
    pub fn prune(&self, now: Timestamp) -> usize {
        let window = self.window;
        let mut failures = self.failures.lock().expect("signature failures");
        let before = failures.len();
        failures.retain(|_, f| f.locked_until.is_some_and(|until| until > now) || now - f.window_start <= window);
        before - failures.len()
    }

    /// Whether no pair has failed lately (then nothing is locked).
    pub fn is_empty(&self) -> bool {
        self.failures.lock().expect("signature failures").is_empty()
    }

    pub fn record_success(&self, client: &str, access_key: &str) {
        let mut failures = self.failures.lock().expect("signature failures");
        if !failures.is_empty() {
            failures.remove(&(client.to_owned(), access_key.to_owned()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        chrono::DateTime::from_timestamp(1_700_000_000 + seconds, 0).unwrap()
    }

    #[test]
    fn buckets_refill_and_are_forgotten_once_full() {
        let buckets = KeyedBuckets::new(1.0, 2.0);
        assert!(buckets.take("a", at(0)).is_ok());
        assert!(buckets.take("a", at(0)).is_ok());
        assert!(buckets.take("a", at(0)).is_err());
        assert!(buckets.check("a", at(0)).is_err());
        assert!(buckets.check("b", at(0)).is_ok(), "an unseen key has its whole burst");
        assert!(buckets.take("a", at(1)).is_ok(), "one token a second");
        buckets.prune(at(1));
        assert_eq!(buckets.len(), 1, "a's bucket is not full yet");
        buckets.prune(at(10));
        assert!(buckets.is_empty(), "full buckets are forgotten");
    }

    #[test]
    fn failures_lock_one_address_and_key_and_are_forgotten_after_their_window() {
        let failures = SignatureFailures::new(3, Duration::from_secs(60), Duration::from_secs(60));
        for _ in 0..3 {
            failures.record_failure("10.0.0.1", "AK", at(0));
        }
        assert!(failures.is_locked("10.0.0.1", "AK", at(1)));
        assert!(!failures.is_locked("10.0.0.2", "AK", at(1)), "another address is not locked");
        assert!(!failures.is_locked("10.0.0.1", "OTHER", at(1)), "another key is not locked");
        assert!(!failures.is_locked("10.0.0.1", "AK", at(61)), "the lock ends");
        failures.record_failure("10.0.0.3", "AK", at(0));
        failures.prune(at(30));
        assert_eq!(failures.failures.lock().unwrap().len(), 2);
        failures.prune(at(200));
        assert!(failures.failures.lock().unwrap().is_empty());
    }
}
