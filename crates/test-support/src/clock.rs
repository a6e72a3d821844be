//! A clock the test moves by hand, for everything that takes a `jobd_core::Clock`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use jobd_core::{Clock, Timestamp};

/// The instant `ManualClock::set_ms` counts from (2024-03-23T08:20:42Z).
const EPOCH_MS: i64 = 1_711_182_042_000;

/// A shared, settable time: clones read and move the same clock.
#[derive(Clone, Debug)]
pub struct ManualClock(Arc<Mutex<Timestamp>>);

impl ManualClock {
    /// Starting at the real time now.
    pub fn starting_now() -> ManualClock {
        ManualClock(Arc::new(Mutex::new(Utc::now())))
    }

    /// Starting at a fixed instant (2024-03-23T08:20:42Z), so a test's times read the same on
    /// every run.
    pub fn starting_at_epoch() -> ManualClock {
        let clock = ManualClock::starting_now();
        clock.set_ms(0);
        clock
    }

    /// Sets the time to the fixed instant plus `offset_ms`.
    pub fn set_ms(&self, offset_ms: i64) {
        *self.0.lock().unwrap() = Utc.timestamp_millis_opt(EPOCH_MS + offset_ms).unwrap();
    }

    /// Moves the time forward.
    pub fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += chrono::Duration::from_std(by).expect("a test's duration");
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().unwrap()
    }
}
