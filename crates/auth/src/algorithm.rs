//! The supported signing algorithms and their hash / HMAC primitives.

use std::fmt;
use std::str::FromStr;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use sm3::Sm3;

use crate::AuthError;

/// A Huawei Cloud API Gateway AK/SK signing algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigningAlgorithm {
    /// `SDK-HMAC-SHA256`: SHA-256 hashes, HMAC-SHA256 keyed with the SK.
    HmacSha256,
    /// `SDK-HMAC-SM3`: SM3 replaces SHA-256 everywhere (payload hash,
    /// canonical-request hash and HMAC).
    HmacSm3,
    /// `V11-HMAC-SHA256`: like `SDK-HMAC-SHA256`, but the HMAC key is derived
    /// from AK, SK, the day, the region and the service name, and the string
    /// to sign carries that credential scope.
    DerivedHmacSha256,
}

impl SigningAlgorithm {
    /// The name used in the `Authorization` header and the string to sign.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HmacSha256 => "SDK-HMAC-SHA256",
            Self::HmacSm3 => "SDK-HMAC-SM3",
            Self::DerivedHmacSha256 => "V11-HMAC-SHA256",
        }
    }

    /// The (lowercase) header through which a client may declare the payload
    /// hash instead of letting it be computed (`UNSIGNED-PAYLOAD` or a hex
    /// digest).
    pub fn content_hash_header(self) -> &'static str {
        match self {
            Self::HmacSm3 => "x-sdk-content-sm3",
            Self::HmacSha256 | Self::DerivedHmacSha256 => "x-sdk-content-sha256",
        }
    }

    /// Lowercase hex digest of `data` with this algorithm's hash. The digest of an empty body
    /// (every GET) is computed once per process.
    pub(crate) fn hash_hex(self, data: &[u8]) -> String {
        static EMPTY_SHA256: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| hex::encode(Sha256::digest([])));
        static EMPTY_SM3: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| hex::encode(Sm3::digest([])));
        if data.is_empty() {
            return match self {
                Self::HmacSm3 => EMPTY_SM3.clone(),
                Self::HmacSha256 | Self::DerivedHmacSha256 => EMPTY_SHA256.clone(),
            };
        }
        match self {
            Self::HmacSm3 => hex::encode(Sm3::digest(data)),
            Self::HmacSha256 | Self::DerivedHmacSha256 => hex::encode(Sha256::digest(data)),
        }
    }

    /// Raw HMAC of `data` under `key` with this algorithm's hash.
    pub(crate) fn mac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            Self::HmacSm3 => hmac_bytes::<Hmac<Sm3>>(key, data),
            Self::HmacSha256 | Self::DerivedHmacSha256 => hmac_bytes::<Hmac<Sha256>>(key, data),
        }
    }
}

fn hmac_bytes<M: Mac + hmac::digest::KeyInit>(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <M as Mac>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

impl fmt::Display for SigningAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SigningAlgorithm {
    type Err = AuthError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "SDK-HMAC-SHA256" => Ok(Self::HmacSha256),
            "SDK-HMAC-SM3" => Ok(Self::HmacSm3),
            "V11-HMAC-SHA256" => Ok(Self::DerivedHmacSha256),
            other => Err(AuthError::UnsupportedAlgorithm(other.to_owned())),
        }
    }
}

/// The V11 derived signing key: HKDF-SHA256 (RFC 5869) with salt = AK,
/// IKM = SK, info = `credential_scope` (`yyyymmdd/region/service`) and an
/// output length of 32 bytes, returned as a 64-char lowercase hex string.
///
/// The official SDKs use the ASCII bytes of this hex string (not the 32 raw
/// bytes) as the HMAC key.
pub fn derive_signing_key(access_key: &str, secret_key: &[u8], credential_scope: &str) -> String {
    // Extract: PRK = HMAC(salt = AK, IKM = SK).
    let prk = SigningAlgorithm::HmacSha256.mac(access_key.as_bytes(), secret_key);
    // Expand: one block is enough for 32 bytes, T(1) = HMAC(PRK, info || 0x01).
    let mut info = Vec::with_capacity(credential_scope.len() + 1);
    info.extend_from_slice(credential_scope.as_bytes());
    info.push(0x01);
    hex::encode(SigningAlgorithm::HmacSha256.mac(&prk, &info))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for alg in [SigningAlgorithm::HmacSha256, SigningAlgorithm::HmacSm3, SigningAlgorithm::DerivedHmacSha256] {
            assert_eq!(alg.as_str().parse::<SigningAlgorithm>(), Ok(alg));
            assert_eq!(alg.to_string(), alg.as_str());
        }
        assert_eq!(
            "sdk-hmac-sha256".parse::<SigningAlgorithm>(),
            Err(AuthError::UnsupportedAlgorithm("sdk-hmac-sha256".into()))
        );
    }

    #[test]
    fn empty_hashes() {
        assert_eq!(
            SigningAlgorithm::HmacSha256.hash_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            SigningAlgorithm::HmacSm3.hash_hex(b""),
            "1ab21d8355cfa17f8e61194831e81a8f22bec8c728fefb747ed035eb5082aa2b"
        );
    }

    #[test]
    fn derived_key_matches_rfc5869_shape() {
        // Value cross-checked against the official SDK vector.
        assert_eq!(
            derive_signing_key("AK_EXAMPLE", b"SK_EXAMPLE", "20240102/cn-north-4/cfw"),
            "dc998ce41d14f50642033e8fa5860534a254cf8bf3d922815804b063db997dd0"
        );
    }
}
