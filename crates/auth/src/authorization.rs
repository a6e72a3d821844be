//! Parsing of the `Authorization` header sent by the Huawei Cloud SDKs.
//!
//! Forms accepted:
//! - `SDK-HMAC-SHA256 Access=AK, SignedHeaders=a;b;c, Signature=hex`
//! - `SDK-HMAC-SM3 Access=AK, SignedHeaders=a;b;c, Signature=hex`
//! - `V11-HMAC-SHA256 Credential=AK/yyyymmdd/region/service, SignedHeaders=a;b;c, Signature=hex`

use http::header::{HeaderMap, HeaderName, AUTHORIZATION};

use crate::{AuthError, SigningAlgorithm};

/// A parsed `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    /// The signing algorithm named first in the header.
    pub algorithm: SigningAlgorithm,
    /// The access key (AK); for V11 the part of `Credential` before the
    /// first `/`.
    pub access_key: String,
    /// For V11, the rest of `Credential`: `yyyymmdd/region/service`. The verifier derives the
    /// scope from its own configuration; this one only names a mismatch.
    pub credential_scope: Option<String>,
    /// The `SignedHeaders` names, in the order sent (the SDKs send them
    /// lowercased and sorted). Never empty.
    pub signed_headers: Vec<String>,
    /// The hex signature as sent.
    pub signature: String,
}

fn malformed(msg: &str) -> AuthError {
    AuthError::MalformedAuthorization(msg.to_owned())
}

impl Authorization {
    /// Parse an `Authorization` header value.
    ///
    /// Errors: [`AuthError::MissingAuthorization`] for an empty value,
    /// [`AuthError::UnsupportedAlgorithm`] for an unknown scheme, and
    /// [`AuthError::MalformedAuthorization`] for anything else that does not
    /// fit the forms above (missing, duplicate or unknown parameters, empty
    /// `SignedHeaders`, a non-hex signature...).
    pub fn parse(header_value: &str) -> Result<Self, AuthError> {
        let value = header_value.trim();
        if value.is_empty() {
            return Err(AuthError::MissingAuthorization);
        }
        let (scheme, rest) = match value.split_once([' ', '\t']) {
            Some((scheme, rest)) => (scheme, rest.trim()),
            None => (value, ""),
        };
        let algorithm: SigningAlgorithm = scheme.parse()?;
        if rest.is_empty() {
            return Err(malformed("no parameters after the algorithm"));
        }

        let mut access: Option<&str> = None;
        let mut credential: Option<&str> = None;
        let mut signed_headers: Option<&str> = None;
        let mut signature: Option<&str> = None;
        for item in rest.split(',') {
            let item = item.trim();
            let (key, val) = item.split_once('=').ok_or_else(|| malformed("parameter without '='"))?;
            let slot = match key.trim() {
                "Access" => &mut access,
                "Credential" => &mut credential,
                "SignedHeaders" => &mut signed_headers,
                "Signature" => &mut signature,
                _ => return Err(malformed("unknown parameter")),
            };
            if slot.replace(val.trim()).is_some() {
                return Err(malformed("duplicate parameter"));
            }
        }

        let (access_key, credential_scope) = match algorithm {
            SigningAlgorithm::HmacSha256 | SigningAlgorithm::HmacSm3 => {
                if credential.is_some() {
                    return Err(malformed("Credential is only valid for V11-HMAC-SHA256"));
                }
                let ak = access.ok_or_else(|| malformed("missing Access"))?;
                check_access_key(ak)?;
                (ak, None)
            }
            SigningAlgorithm::DerivedHmacSha256 => {
                if access.is_some() {
                    return Err(malformed("V11-HMAC-SHA256 uses Credential, not Access"));
                }
                let cred = credential.ok_or_else(|| malformed("missing Credential"))?;
                let (ak, scope) = parse_credential(cred)?;
                (ak, Some(scope.to_owned()))
            }
        };

        let signed_headers = parse_signed_headers(signed_headers.ok_or_else(|| malformed("missing SignedHeaders"))?)?;

        let signature = signature.ok_or_else(|| malformed("missing Signature"))?;
        if signature.is_empty() || signature.len() % 2 != 0 || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(malformed("Signature is not a hex string"));
        }

        Ok(Self {
            algorithm,
            access_key: access_key.to_owned(),
            credential_scope,
            signed_headers,
            signature: signature.to_owned(),
        })
    }

    /// Read and parse the `Authorization` header of a request.
    ///
    /// [`AuthError::MissingAuthorization`] if absent; more than one
    /// `Authorization` header, or a non-UTF-8 one, is malformed.
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, AuthError> {
        let mut values = headers.get_all(AUTHORIZATION).iter();
        let first = values.next().ok_or(AuthError::MissingAuthorization)?;
        if values.next().is_some() {
            return Err(malformed("more than one Authorization header"));
        }
        let text = first.to_str().map_err(|_| malformed("header value is not visible ASCII"))?;
        Self::parse(text)
    }
}

/// An access key must be non-empty and free of characters that would break
/// the header grammar.
pub(crate) fn check_access_key(ak: &str) -> Result<(), AuthError> {
    let ok = !ak.is_empty() && ak.bytes().all(|b| b.is_ascii_graphic() && !matches!(b, b',' | b'=' | b'/' | b';'));
    if ok {
        Ok(())
    } else {
        Err(malformed("invalid access key"))
    }
}

/// `AK/yyyymmdd/region/service` → (`AK`, `yyyymmdd/region/service`), checking the shape of the
/// scope.
fn parse_credential(cred: &str) -> Result<(&str, &str), AuthError> {
    let mut parts = cred.split('/');
    let (Some(ak), Some(day), Some(region), Some(service), None) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed("Credential must be AK/yyyymmdd/region/service"));
    };
    check_access_key(ak)?;
    if day.len() != 8 || !day.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed("Credential date must be yyyymmdd"));
    }
    if region.is_empty() || service.is_empty() {
        return Err(malformed("Credential region and service must not be empty"));
    }
    Ok((ak, &cred[ak.len() + 1..]))
}

fn parse_signed_headers(raw: &str) -> Result<Vec<String>, AuthError> {
    if raw.is_empty() {
        return Err(malformed("empty SignedHeaders"));
    }
    raw.split(';')
        .map(|name| {
            if name.is_empty() || HeaderName::from_bytes(name.as_bytes()).is_err() {
                Err(malformed("invalid header name in SignedHeaders"))
            } else {
                Ok(name.to_owned())
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sdk_form() {
        let a =
            Authorization::parse("SDK-HMAC-SHA256 Access=AK1, SignedHeaders=host;x-sdk-date, Signature=0aBf").unwrap();
        assert_eq!(a.algorithm, SigningAlgorithm::HmacSha256);
        assert_eq!(a.access_key, "AK1");
        assert_eq!(a.signed_headers, vec!["host", "x-sdk-date"]);
        assert_eq!(a.signature, "0aBf");
    }

    #[test]
    fn parses_v11_form() {
        let a = Authorization::parse(
            "V11-HMAC-SHA256 Credential=AK1/20240102/cn-north-4/cfw, SignedHeaders=host, Signature=00",
        )
        .unwrap();
        assert_eq!(a.algorithm, SigningAlgorithm::DerivedHmacSha256);
        assert_eq!(a.access_key, "AK1");
        assert_eq!(a.credential_scope.as_deref(), Some("20240102/cn-north-4/cfw"));
    }

    #[test]
    fn tolerates_extra_whitespace_and_order() {
        let a = Authorization::parse("  SDK-HMAC-SM3   Signature=ab ,SignedHeaders=host ,  Access=AK  ").unwrap();
        assert_eq!(a.algorithm, SigningAlgorithm::HmacSm3);
        assert_eq!(a.access_key, "AK");
        assert_eq!(a.signature, "ab");
    }

    #[test]
    fn from_headers_missing_and_duplicate() {
        let mut h = HeaderMap::new();
        assert_eq!(Authorization::from_headers(&h), Err(AuthError::MissingAuthorization));
        h.append(AUTHORIZATION, "SDK-HMAC-SHA256 Access=A, SignedHeaders=host, Signature=00".parse().unwrap());
        assert!(Authorization::from_headers(&h).is_ok());
        h.append(AUTHORIZATION, "SDK-HMAC-SHA256 Access=B, SignedHeaders=host, Signature=00".parse().unwrap());
        assert!(matches!(Authorization::from_headers(&h), Err(AuthError::MalformedAuthorization(_))));
    }
}
