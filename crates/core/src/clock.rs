//! Time as the domain sees it: UTC instants with millisecond precision, read through a `Clock`.

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

/// A UTC instant truncated to milliseconds (the precision every store keeps).
pub type Timestamp = DateTime<Utc>;

/// Where "now" comes from. The service layer owns the real clock; tests inject their own.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

/// Truncates an instant to whole milliseconds so that it survives a round trip through a store.
pub fn truncate_to_millis(t: DateTime<Utc>) -> Timestamp {
    t.duration_trunc(TimeDelta::milliseconds(1)).unwrap_or(t)
}

/// Formats an instant as RFC 3339 UTC with milliseconds (`2024-03-23T08:20:42.123Z`).
pub fn format_rfc3339_millis(t: &Timestamp) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Formats an instant as `yyyy-mm-ddThh:mm:ssZ`, the seconds-precision form of the seed dialects.
pub fn format_rfc3339_seconds(t: &Timestamp) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
