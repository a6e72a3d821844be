//! The error type of request authentication.
//!
//! No wire format lives here: the HTTP layer maps every variant to
//! `401 APIGW.0301`. The messages never contain secrets or signatures.

use thiserror::Error;

/// Why a request could not be authenticated (or signed).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AuthError {
    /// The request carries no `Authorization` header.
    #[error("missing Authorization header")]
    MissingAuthorization,
    /// The `Authorization` header could not be parsed.
    #[error("malformed Authorization header: {0}")]
    MalformedAuthorization(String),
    /// The algorithm named in `Authorization` is unknown, or it is not
    /// enabled (V11-HMAC-SHA256 without a configured region/service).
    #[error("unsupported signing algorithm: {0}")]
    UnsupportedAlgorithm(String),
    /// A `V11-HMAC-SHA256` request reached a server that has no region configured: the
    /// derived key cannot be computed without it.
    #[error(
        "derived signing (V11-HMAC-SHA256) needs the region this server serves, and none is configured \
         (start jobd with --region or JOBD_REGION)"
    )]
    NoRegionForDerivedSigning,
    /// The `Credential` scope of a `V11-HMAC-SHA256` request names another region or service than
    /// the one verifying it.
    #[error("credential scope mismatch: {0}")]
    CredentialScope(String),
    /// The request carries no `X-Sdk-Date` header.
    #[error("missing X-Sdk-Date header")]
    MissingDate,
    /// `X-Sdk-Date` is not of the form `YYYYMMDDTHHMMSSZ`.
    #[error("malformed X-Sdk-Date header, expected YYYYMMDDTHHMMSSZ")]
    MalformedDate,
    /// `X-Sdk-Date` is too far from the server's clock.
    #[error("X-Sdk-Date is outside the allowed clock skew window")]
    DateOutOfWindow,
    /// A header named in `SignedHeaders` is not present in the request.
    #[error("signed header missing from request: {0}")]
    MissingSignedHeader(String),
    /// A header that takes part in the signature has a value that is not
    /// valid UTF-8 (or, when signing, cannot be used as a header value).
    #[error("invalid value for header: {0}")]
    InvalidHeaderValue(String),
    /// The recomputed signature differs from the one sent (or the declared
    /// content hash does not match the body).
    #[error("signature mismatch")]
    SignatureMismatch,
}
