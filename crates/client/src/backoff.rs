//! Waits between tries: exponential, capped, with jitter (each wait is drawn between half and all
//! of the exponential value, so many waiting clients spread out instead of calling together). The
//! waiter uses it, and so does `jobd-worker`'s runtime (claims, heartbeats, reports): one backoff
//! for everything that retries jobd's API.

use std::time::Duration;

use rand::Rng;

/// An exponential backoff: `initial × 2^n`, at most `max`, jittered.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    tries: u32,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff { initial, max: max.max(initial), tries: 0 }
    }

    /// The next wait; each call doubles the next (up to the cap).
    pub fn next_delay(&mut self) -> Duration {
        let exponential = self.initial.saturating_mul(1u32 << self.tries.min(20)).min(self.max);
        self.tries = self.tries.saturating_add(1);
        jittered(exponential)
    }

    /// The next wait, but never shorter than what the server asked for (`Retry-After`).
    pub fn next_delay_at_least(&mut self, floor: Option<Duration>) -> Duration {
        let delay = self.next_delay();
        floor.map_or(delay, |floor| delay.max(floor))
    }

    /// Back to the first, short wait (after progress).
    pub fn reset(&mut self) {
        self.tries = 0;
    }
}

/// Between half and all of `delay`.
fn jittered(delay: Duration) -> Duration {
    let nanos = delay.as_nanos().min(u64::MAX as u128) as u64;
    if nanos < 2 {
        return delay;
    }
    Duration::from_nanos(rand::thread_rng().gen_range(nanos / 2..=nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_cap_and_stay_jittered() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let delays: Vec<Duration> = (0..8).map(|_| backoff.next_delay()).collect();
        let caps = [100, 200, 400, 800, 1000, 1000, 1000, 1000];
        for (delay, cap) in delays.iter().zip(caps) {
            let cap = Duration::from_millis(cap);
            assert!(*delay <= cap && *delay >= cap / 2, "{delay:?} for {cap:?}");
        }
        assert_eq!(backoff.tries, 8);
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(100));
        let floor = Duration::from_secs(3);
        assert_eq!(backoff.next_delay_at_least(Some(floor)), floor);
    }
}
