//! The `X-Sdk-Date` timestamp format, `YYYYMMDDTHHMMSSZ` in UTC.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Utc};

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
    // Read the digits directly: every signed request parses one, and a strftime pattern is parsed
    // anew on each call. Second 60 is a leap second, as with `%S`.
    let number = |from: usize, to: usize| b[from..to].iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
    let (hour, minute, second) = (number(9, 11), number(11, 13), number(13, 15));
    let time = if second == 60 {
        NaiveTime::from_hms_milli_opt(hour, minute, 59, 1_000)
    } else {
        NaiveTime::from_hms_opt(hour, minute, second)
    };
    let date = NaiveDate::from_ymd_opt(number(0, 4) as i32, number(4, 6), number(6, 8));
    match (date, time) {
        (Some(date), Some(time)) => Ok(NaiveDateTime::new(date, time).and_utc()),
        _ => Err(AuthError::MalformedDate),
    }
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
        let end_of_day = Utc.with_ymd_and_hms(2024, 2, 29, 23, 59, 59).unwrap();
        assert_eq!(parse_sdk_date("20240229T235959Z"), Ok(end_of_day));
    }

    #[test]
    fn reads_the_digits_as_strftime_does() {
        for year in [2023, 2024] {
            for month in 0..=13 {
                for day in 0..=32 {
                    for (hour, minute, second) in [0, 23, 24]
                        .into_iter()
                        .flat_map(|h| [0, 59, 60].map(|m| (h, m)))
                        .flat_map(|(h, m)| [0, 59, 60, 61].map(|s| (h, m, s)))
                    {
                        let text = format!("{year:04}{month:02}{day:02}T{hour:02}{minute:02}{second:02}Z");
                        let by_strftime = NaiveDateTime::parse_from_str(&text, SDK_DATE_FORMAT)
                            .map(|naive| naive.and_utc())
                            .map_err(|_| AuthError::MalformedDate);
                        assert_eq!(parse_sdk_date(&text), by_strftime, "{text}");
                    }
                }
            }
        }
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
            "20230229T030405Z",
            "20240100T030405Z",
            "20240102T036005Z",
            "20240102T030461Z",
        ] {
            assert_eq!(parse_sdk_date(bad), Err(AuthError::MalformedDate), "{bad:?}");
        }
    }
}
