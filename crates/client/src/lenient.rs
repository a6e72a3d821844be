//! Lenient reading of answers: fields the official SDKs type as strings may come back `null` or,
//! on real endpoints, as numbers (the CFW page's own example sends epoch milliseconds).

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// `null` (or an absent field, with `#[serde(default)]`) reads as the type's default.
pub(crate) fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// A string, a number (kept as its decimal text) or `null`.
pub(crate) fn string_or_number<'de, D>(deserializer: D) -> Result<Option<String>, D::Error>
where
    D: Deserializer<'de>,
{
    match Option::<Value>::deserialize(deserializer)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(Value::Number(number)) => Ok(Some(number.to_string())),
        Some(other) => Err(serde::de::Error::custom(format!("expected a string or a number, not {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Deserialize)]
    struct Sample {
        #[serde(default, deserialize_with = "null_as_default")]
        text: String,
        #[serde(default, deserialize_with = "string_or_number")]
        time: Option<String>,
    }

    #[test]
    fn nulls_numbers_and_absences_read() {
        let sample: Sample = serde_json::from_str(r#"{"text": null, "time": 1641370501000}"#).unwrap();
        assert_eq!((sample.text.as_str(), sample.time.as_deref()), ("", Some("1641370501000")));
        let sample: Sample = serde_json::from_str(r#"{"time": "2024-01-01T00:00:00Z"}"#).unwrap();
        assert_eq!(sample.time.as_deref(), Some("2024-01-01T00:00:00Z"));
        let sample: Sample = serde_json::from_str(r#"{"text": "x", "time": null}"#).unwrap();
        assert_eq!((sample.text.as_str(), sample.time), ("x", None));
        assert!(serde_json::from_str::<Sample>(r#"{"time": [1]}"#).is_err());
    }
}
