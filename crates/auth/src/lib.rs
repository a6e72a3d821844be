//! Huawei Cloud API Gateway AK/SK request signatures (`SDK-HMAC-SHA256`,
//! `SDK-HMAC-SM3`, `V11-HMAC-SHA256`), computed exactly as the official
//! `huaweicloudsdkcore` SDKs do: [`verify`] on the server, [`Signer`] on the
//! client. Pure: no I/O, no clock reads (callers pass `now`).
//!
//! # Algorithm
//!
//! The client sends `X-Sdk-Date: YYYYMMDDTHHMMSSZ` and
//! `Authorization: SDK-HMAC-SHA256 Access=AK, SignedHeaders=a;b;c, Signature=hex`.
//!
//! 1. Canonical request, lines joined with `\n`:
//!    - the method, uppercase;
//!    - the canonical URI: the raw path percent-decoded as a whole, split on
//!      `/`, each segment re-encoded keeping only RFC 3986 unreserved
//!      characters (`A-Z a-z 0-9 - _ . ~`, uppercase hex), joined with `/`,
//!      with a trailing `/` added if missing (`/jobs/a%20b%2Fc` →
//!      `/jobs/a%20b/c/`): what the Python and Go cores sign. The Java core
//!      encodes the segments of the path as it sends them, without decoding
//!      them, so an escape in the path is escaped again (`/jobs/a%2520b%252Fc/`);
//!      when the path holds an escape, that form is accepted too, and no other;
//!      both are always computed and compared in constant time;
//!    - the canonical query: the raw query split on `&` and the first `=`,
//!      decoded (`+` stays a literal plus), sorted by key then value and
//!      re-encoded like path segments as `k=v` joined with `&` (a key without
//!      a value gives `k=`);
//!    - the canonical headers: `name:trimmed-value` for each name of
//!      `SignedHeaders` in the order given, each line ending in `\n`, which
//!      leaves an empty line before the next item;
//!    - the `SignedHeaders` list joined with `;`;
//!    - the hex hash of the body, or the value of `X-Sdk-Content-Sha256`
//!      (e.g. `UNSIGNED-PAYLOAD`) when the client sent one with a non-empty
//!      body.
//! 2. String to sign: `SDK-HMAC-SHA256\n{X-Sdk-Date}\n{hex(sha256(canonical request))}`.
//! 3. Signature: `hex(HMAC-SHA256(key = SK, string to sign))`.
//!
//! `SDK-HMAC-SM3` replaces SHA-256 by SM3 everywhere (and reads
//! `X-Sdk-Content-Sm3`). `V11-HMAC-SHA256` sends
//! `Credential=AK/yyyymmdd/region/service`, adds that scope as a third line
//! of the string to sign and uses as HMAC key the hex string of
//! HKDF-SHA256(salt = AK, IKM = SK, info = scope, 32 bytes); see
//! [`derive_signing_key`].
//!
//! All failures are [`AuthError`]s; the HTTP layer maps them to
//! `401 APIGW.0301`.

mod algorithm;
mod authorization;
mod canonical;
mod date;
mod error;
pub mod identity;
pub mod mfa;
pub mod secrets;
mod signer;
pub mod token_request;
mod verify;

pub use algorithm::{derive_signing_key, SigningAlgorithm};
pub use authorization::Authorization;
pub use canonical::{canonical_request, string_to_sign, RequestParts, UNSIGNED_PAYLOAD};
pub use date::{format_sdk_date, parse_sdk_date};
pub use error::AuthError;
pub use signer::Signer;
pub use verify::{verify, VerifyOptions, SDK_DATE_HEADER};
