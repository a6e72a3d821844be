//! The `X-Sdk-Date` timestamp format, `YYYYMMDDTHHMMSSZ` in UTC.

use chrono::{DateTime, NaiveDateTime, Utc};

use crate::AuthError;

const SDK_DATE_FORMAT: &str = "%Y%m%dT%H%M%SZ";

/// Format a time as an `X-Sdk-Date` value, e.g. `20240102T030405Z`.
/// Sub-second precision is dropped.
pub fn format_sdk_date(t: DateTime<Utc>) -> String {
    t.format(SDK_DATE_FORMAT).to_string()
}

/// Parse an `X-Sdk-Date` value. Strict: exactly 16 characters,
/// `YYYYMMDD` digits, `T`, `HHMMSS` digits, `Z`.
pub fn parse_sdk_date(s: &str) -> Result<DateTime<Utc>, AuthError> {
    let b = s.as_bytes();
    let shape_ok = b.len() == 16
        && b[8] == b'T'
        && b[15] == b'Z'
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[9..15].iter().all(u8::is_ascii_digit);
    if !shape_ok {
        return Err(AuthError::MalformedDate);
    }
    NaiveDateTime::parse_from_str(s, SDK_DATE_FORMAT).map(|naive| naive.and_utc()).map_err(|_| AuthError::MalformedDate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn round_trip() {
        let t = Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(format_sdk_date(t), "20240102T030405Z");
        assert_eq!(parse_sdk_date("20240102T030405Z"), Ok(t));
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "20240102T030405",
            "20240102 030405Z",
            "2024-01-02T03:04:05Z",
            "20241302T030405Z",
            "20240102T250405Z",
            "20240102T030405z",
            "+2024102T030405Z",
            "20240102T030405ZZ",
        ] {
            assert_eq!(parse_sdk_date(bad), Err(AuthError::MalformedDate), "{bad:?}");
        }
    }
}
