//! Server-side verification of a signed request. Pure: the caller passes the
//! current time and the secret key.

use std::borrow::Cow;

use chrono::{DateTime, Duration, Utc};
use subtle::{Choice, ConstantTimeEq};

use crate::canonical::{candidate_canonical_requests, payload_hash, string_to_sign};
use crate::{derive_signing_key, parse_sdk_date, AuthError, Authorization, RequestParts, SigningAlgorithm};

/// The header carrying the signing time.
pub const SDK_DATE_HEADER: &str = "x-sdk-date";

/// Verification settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyOptions {
    /// How far `X-Sdk-Date` may be from `now`, either way (default 15 min).
    pub max_clock_skew: Duration,
    /// Region id for `V11-HMAC-SHA256` key derivation (e.g. `cn-north-4`).
    /// Without it V11 is refused with [`AuthError::NoRegionForDerivedSigning`].
    pub derive_region: Option<String>,
    /// Service name for `V11-HMAC-SHA256` key derivation (e.g. `cfw`); without it V11 is
    /// unsupported.
    pub derive_service: Option<String>,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        Self { max_clock_skew: Duration::minutes(15), derive_region: None, derive_service: None }
    }
}

/// Verify a parsed [`Authorization`] against the secret key of its access
/// key.
///
/// Checks, in order: the algorithm is enabled (V11 needs a configured region
/// and service), `X-Sdk-Date` is present, well-formed and within
/// `options.max_clock_skew` of `now`, then recomputes the signature over the
/// headers listed in `auth.signed_headers` and compares it in constant time.
///
/// The body is covered by the signature unless the client declared
/// `X-Sdk-Content-Sha256: UNSIGNED-PAYLOAD` (`X-Sdk-Content-Sm3` for SM3);
/// a declared hex hash that does not match the body is a
/// [`AuthError::SignatureMismatch`].
pub fn verify(
    parts: &RequestParts<'_>,
    auth: &Authorization,
    secret_key: &[u8],
    now: DateTime<Utc>,
    options: &VerifyOptions,
) -> Result<(), AuthError> {
    let algorithm = auth.algorithm;
    let derivation = match algorithm {
        SigningAlgorithm::DerivedHmacSha256 => {
            let region = options.derive_region.as_deref().ok_or(AuthError::NoRegionForDerivedSigning)?;
            let service = options
                .derive_service
                .as_deref()
                .ok_or_else(|| AuthError::UnsupportedAlgorithm(algorithm.as_str().to_owned()))?;
            check_claimed_scope(auth.credential_scope.as_deref(), region, service)?;
            Some((region, service))
        }
        SigningAlgorithm::HmacSha256 | SigningAlgorithm::HmacSm3 => None,
    };

    let sdk_date = parts
        .headers
        .get(SDK_DATE_HEADER)
        .ok_or(AuthError::MissingDate)?
        .to_str()
        .map_err(|_| AuthError::MalformedDate)?
        .trim();
    let signed_at = parse_sdk_date(sdk_date)?;
    if (now - signed_at).abs() > options.max_clock_skew {
        return Err(AuthError::DateOutOfWindow);
    }

    let provided = hex::decode(&auth.signature)
        .map_err(|_| AuthError::MalformedAuthorization("Signature is not a hex string".to_owned()))?;

    let payload = payload_hash(parts, algorithm)?;
    if !payload.body_matches {
        return Err(AuthError::SignatureMismatch);
    }

    let scope = derivation.map(|(region, service)| {
        // parse_sdk_date guarantees 16 ASCII chars, the first 8 the day.
        format!("{}/{region}/{service}", &sdk_date[..8])
    });
    let key: Cow<'_, [u8]> = match &scope {
        Some(scope) => Cow::Owned(derive_signing_key(&auth.access_key, secret_key, scope).into_bytes()),
        None => Cow::Borrowed(secret_key),
    };

    // Every candidate is computed and compared, whichever matches: the time taken depends only on
    // the request's shape (whether its path holds an escape, whether it declared a body hash).
    let mut matched = Choice::from(0);
    for canonical in candidate_canonical_requests(parts, &auth.signed_headers, &payload)? {
        let to_sign = string_to_sign(algorithm, sdk_date, scope.as_deref(), &canonical);
        let expected = algorithm.mac(&key, to_sign.as_bytes());
        matched |= expected.as_slice().ct_eq(provided.as_slice());
    }
    if bool::from(matched) {
        Ok(())
    } else {
        Err(AuthError::SignatureMismatch)
    }
}

/// A V11 `Credential` scope (`yyyymmdd/region/service`) must name the region and service the
/// server derives keys for: anything else could never verify, and says why better than a
/// signature mismatch would. (Its day is checked by the signature, which covers `X-Sdk-Date`.)
fn check_claimed_scope(claimed: Option<&str>, region: &str, service: &str) -> Result<(), AuthError> {
    let Some(claimed) = claimed else { return Ok(()) };
    let mut parts = claimed.split('/').skip(1);
    let (claimed_region, claimed_service) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    if claimed_region != region {
        return Err(AuthError::CredentialScope(format!(
            "the request was signed for region {claimed_region:?}; this server serves region {region:?}"
        )));
    }
    if claimed_service != service {
        return Err(AuthError::CredentialScope(format!(
            "the request was signed for service {claimed_service:?}; this path belongs to service {service:?}"
        )));
    }
    Ok(())
}
