//! Time on the wire: the dialects' `yyyy-mm-ddThh:mm:ssZ`, the native API's RFC 3339 with
//! milliseconds, and the forms a time filter may take.

use chrono::{DateTime, NaiveDateTime, Utc};
use jobd_core::Timestamp;

pub use jobd_core::clock::{format_rfc3339_millis as native, format_rfc3339_seconds as seed};

/// Parses a time filter: RFC 3339 (any offset), or a UTC time without offset
/// (`2024-01-01T00:00:00`, optionally with fractional seconds).
pub fn parse_filter_time(raw: &str) -> Option<Timestamp> {
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Some(t.with_timezone(&Utc));
    }
    // The Huawei pages write offsets without a colon: 2023-10-26T10:30:00+0800.
    if let Ok(t) = DateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%.f%z") {
        return Some(t.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%.f").ok().map(|naive| naive.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_times_take_the_usual_forms() {
        let expected = "2024-01-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap();
        for raw in [
            "2024-01-01T00:00:00Z",
            "2024-01-01T00:00:00",
            "2024-01-01T08:00:00+08:00",
            "2024-01-01T00:00:00.000Z",
            "2024-01-01T08:00:00+0800",
        ] {
            assert_eq!(parse_filter_time(raw), Some(expected), "{raw}");
        }
        assert_eq!(parse_filter_time("yesterday"), None);
        assert_eq!(seed(&expected), "2024-01-01T00:00:00Z");
    }
}
