//! Client-side signing with `SDK-HMAC-SHA256`, as the official SDKs do it.

use std::fmt;

use chrono::{DateTime, Utc};
use http::header::{HeaderMap, HeaderValue, AUTHORIZATION};

use crate::authorization::check_access_key;
use crate::canonical::{canonical_request, string_to_sign};
use crate::verify::SDK_DATE_HEADER;
use crate::{format_sdk_date, AuthError, RequestParts, SigningAlgorithm};

/// AK/SK credentials that sign requests. `Debug` never prints the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Signer {
    /// The access key (AK), sent in the clear.
    pub access_key: String,
    /// The secret key (SK), the HMAC key. Never printed.
    pub secret_key: String,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer").field("access_key", &self.access_key).field("secret_key", &"<redacted>").finish()
    }
}

impl Signer {
    /// Credentials from an AK and an SK.
    pub fn new(access_key: impl Into<String>, secret_key: impl Into<String>) -> Self {
        Self { access_key: access_key.into(), secret_key: secret_key.into() }
    }

    /// Sign a request with `SDK-HMAC-SHA256`.
    ///
    /// Sets `X-Sdk-Date` (from `now`) and `Authorization` in `headers`
    /// (replacing any previous values). Every header present in `headers`,
    /// plus `X-Sdk-Date`, is signed (names lowercased and sorted), so
    /// `headers` must already hold everything that will be sent and that
    /// should be signed, `Host` included (HTTP clients usually add `Host`
    /// themselves, unsigned, if it is not in the map). `raw_path` and
    /// `raw_query` must be exactly as they will be sent (percent-encoded).
    ///
    /// To leave the body unsigned, put `X-Sdk-Content-Sha256:
    /// UNSIGNED-PAYLOAD` into `headers` first.
    ///
    /// On error `headers` may already have the new `X-Sdk-Date` and no
    /// `Authorization`.
    pub fn sign(
        &self,
        method: &str,
        raw_path: &str,
        raw_query: Option<&str>,
        headers: &mut HeaderMap,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<(), AuthError> {
        check_access_key(&self.access_key)?;
        let algorithm = SigningAlgorithm::HmacSha256;
        let sdk_date = format_sdk_date(now);
        let date_value =
            HeaderValue::from_str(&sdk_date).map_err(|_| AuthError::InvalidHeaderValue(SDK_DATE_HEADER.to_owned()))?;
        headers.insert(SDK_DATE_HEADER, date_value);
        headers.remove(AUTHORIZATION);

        // HeaderMap keys are already lowercase and unique.
        let mut signed_headers: Vec<String> = headers.keys().map(|k| k.as_str().to_owned()).collect();
        signed_headers.sort_unstable();

        let parts = RequestParts { method, raw_path, raw_query, headers, body };
        let canonical = canonical_request(&parts, &signed_headers, algorithm)?;
        let to_sign = string_to_sign(algorithm, &sdk_date, None, &canonical);
        let signature = hex::encode(algorithm.mac(self.secret_key.as_bytes(), to_sign.as_bytes()));
        let value = format!(
            "{} Access={}, SignedHeaders={}, Signature={}",
            algorithm.as_str(),
            self.access_key,
            signed_headers.join(";"),
            signature
        );
        let value = HeaderValue::from_str(&value)
            .map_err(|_| AuthError::InvalidHeaderValue(AUTHORIZATION.as_str().to_owned()))?;
        headers.insert(AUTHORIZATION, value);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_secret() {
        let s = Signer::new("AK_VISIBLE", "SUPER_SECRET_SK");
        let printed = format!("{s:?}");
        assert!(printed.contains("AK_VISIBLE"));
        assert!(!printed.contains("SUPER_SECRET_SK"));
        assert!(printed.contains("<redacted>"));
    }
}
