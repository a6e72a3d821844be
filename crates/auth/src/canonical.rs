//! Canonical request and string-to-sign construction, shared by the
//! verifier and the signer so that both always agree.

use http::HeaderMap;
use percent_encoding::{percent_decode_str, percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::{AuthError, SigningAlgorithm};

/// Everything but the RFC 3986 unreserved characters `A-Z a-z 0-9 - _ . ~`
/// is percent-encoded (uppercase hex), like the SDKs' `quote(s, safe='~')`.
const ENCODE_SET: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// The payload-hash literal that leaves the body unsigned.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// A request as seen on the wire, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    /// The HTTP method, e.g. `GET` (uppercased for canonicalisation).
    pub method: &'a str,
    /// The path exactly as sent, still percent-encoded, without the query.
    pub raw_path: &'a str,
    /// The query exactly as sent (without `?`), if any.
    pub raw_query: Option<&'a str>,
    /// All request headers. Signed headers are looked up here, including
    /// `host`: for HTTP/2 the caller must copy the `:authority` into a `host`
    /// entry before verifying.
    pub headers: &'a HeaderMap,
    /// The full request body.
    pub body: &'a [u8],
}

fn encode(bytes: &[u8], out: &mut String) {
    out.extend(percent_encode(bytes, ENCODE_SET));
}

/// Percent-decode the whole raw path, split on `/`, re-encode every segment
/// and make sure the result ends with `/`: what the Python and Go cores sign
/// (they encode the path before it is sent, and sign it unencoded).
pub(crate) fn canonical_uri(raw_path: &str) -> String {
    let decoded: Vec<u8> = percent_decode_str(raw_path).collect();
    encode_segments(&decoded)
}

/// Split the raw path as sent on `/`, encode every segment without decoding
/// it first, and make sure the result ends with `/`: what the Java core signs
/// (it encodes the segments of the path it sends, so an escape already in it
/// is escaped once more: `%20` becomes `%2520`).
pub(crate) fn canonical_uri_as_sent(raw_path: &str) -> String {
    encode_segments(raw_path.as_bytes())
}

/// The canonical URIs the official cores may have signed for this raw path:
/// the decoded form always, and the as-sent form too when the path holds an
/// escape (without one the two are the same).
pub(crate) fn canonical_uris(raw_path: &str) -> (String, Option<String>) {
    // The usual path holds only characters no form escapes: it is its own canonical form.
    if raw_path.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/')) {
        let mut uri = String::with_capacity(raw_path.len() + 1);
        uri.push_str(raw_path);
        if !uri.ends_with('/') {
            uri.push('/');
        }
        return (uri, None);
    }
    let decoded = canonical_uri(raw_path);
    let as_sent = raw_path.contains('%').then(|| canonical_uri_as_sent(raw_path)).filter(|uri| *uri != decoded);
    (decoded, as_sent)
}

fn encode_segments(path: &[u8]) -> String {
    let mut out = String::with_capacity(path.len() + 8);
    for (i, segment) in path.split(|b| *b == b'/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        encode(segment, &mut out);
    }
    if !out.ends_with('/') {
        out.push('/');
    }
    out
}

/// Parse the raw query (`&`-separated, `+` is a literal plus, a key without
/// `=` has an empty value), decode, sort by key then value (bytewise on the
/// decoded form) and re-encode as `k=v&k=v`.
pub(crate) fn canonical_query(raw_query: Option<&str>) -> String {
    let Some(raw) = raw_query else {
        return String::new();
    };
    let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = raw
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode_str(k).collect(), percent_decode_str(v).collect())
        })
        .collect();
    pairs.sort();
    let mut out = String::with_capacity(raw.len() + 8);
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        encode(k, &mut out);
        out.push('=');
        encode(v, &mut out);
    }
    out
}

/// `name:value\n` for every signed header in the order given; a header
/// with several values yields one line per value, values sorted.
fn canonical_headers(headers: &HeaderMap, signed_headers: &[String]) -> Result<String, AuthError> {
    let mut out = String::new();
    for name in signed_headers {
        let lower = name.to_ascii_lowercase();
        let mut values = headers
            .get_all(lower.as_str())
            .iter()
            .map(|v| {
                std::str::from_utf8(v.as_bytes())
                    .map(str::trim)
                    .map_err(|_| AuthError::InvalidHeaderValue(lower.clone()))
            })
            .collect::<Result<Vec<&str>, AuthError>>()?;
        if values.is_empty() {
            return Err(AuthError::MissingSignedHeader(lower));
        }
        values.sort_unstable();
        for value in values {
            out.push_str(name);
            out.push(':');
            out.push_str(value);
            out.push('\n');
        }
    }
    if out.is_empty() {
        out.push('\n');
    }
    Ok(out)
}

/// The payload hash(es) a client may have put into its canonical request.
pub(crate) struct PayloadHash {
    /// What the Python SDK uses: the empty-body hash for an empty body, else
    /// the declared content-hash header if present and non-empty, else the
    /// hash of the body.
    pub(crate) primary: String,
    /// The Go SDK uses a declared content-hash header even for an empty
    /// body; when that differs from `primary` and is acceptable it is
    /// offered as a second candidate.
    pub(crate) alternate: Option<String>,
    /// False when a non-empty body does not match a declared hex hash: the
    /// signature would then not cover the body actually received.
    pub(crate) body_matches: bool,
}

pub(crate) fn payload_hash(parts: &RequestParts<'_>, algorithm: SigningAlgorithm) -> Result<PayloadHash, AuthError> {
    let header = algorithm.content_hash_header();
    let declared = match parts.headers.get(header) {
        Some(v) => Some(
            std::str::from_utf8(v.as_bytes()).map_err(|_| AuthError::InvalidHeaderValue(header.to_owned()))?.trim(),
        ),
        None => None,
    }
    .filter(|d| !d.is_empty());
    let actual = algorithm.hash_hex(parts.body);
    let acceptable = |d: &str| d == UNSIGNED_PAYLOAD || d.eq_ignore_ascii_case(&actual);

    Ok(match declared {
        None => PayloadHash { primary: actual, alternate: None, body_matches: true },
        Some(d) if parts.body.is_empty() => PayloadHash {
            alternate: (d != actual && acceptable(d)).then(|| d.to_owned()),
            primary: actual,
            body_matches: true,
        },
        Some(d) => PayloadHash { primary: d.to_owned(), alternate: None, body_matches: acceptable(d) },
    })
}

/// Every canonical request the official cores may have signed for this request: one per
/// canonical URI (`canonical_uris`) and payload hash (`payload_hash`), Python's first.
pub(crate) fn candidate_canonical_requests(
    parts: &RequestParts<'_>,
    signed_headers: &[String],
    payload: &PayloadHash,
) -> Result<Vec<String>, AuthError> {
    let headers = canonical_headers(parts.headers, signed_headers)?;
    let query = canonical_query(parts.raw_query);
    let method = parts.method.to_ascii_uppercase();
    let signed = signed_headers.join(";");
    let (decoded_uri, as_sent_uri) = canonical_uris(parts.raw_path);
    let mut candidates = Vec::with_capacity(4);
    for uri in std::iter::once(&decoded_uri).chain(as_sent_uri.as_ref()) {
        for hash in std::iter::once(&payload.primary).chain(payload.alternate.as_ref()) {
            candidates.push(format!("{method}\n{uri}\n{query}\n{headers}\n{signed}\n{hash}"));
        }
    }
    Ok(candidates)
}

pub(crate) fn build_canonical_request(
    parts: &RequestParts<'_>,
    signed_headers: &[String],
    payload_hash: &str,
) -> Result<String, AuthError> {
    let headers = canonical_headers(parts.headers, signed_headers)?;
    Ok(format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        parts.method.to_ascii_uppercase(),
        canonical_uri(parts.raw_path),
        canonical_query(parts.raw_query),
        headers,
        signed_headers.join(";"),
        payload_hash,
    ))
}

/// The canonical request, exactly as the official (Python) SDK builds it:
///
/// ```text
/// METHOD\ncanonical_uri\ncanonical_query\ncanonical_headers\nsigned_headers\npayload_hash
/// ```
///
/// where `canonical_headers` is one `name:trimmed-value\n` line per signed
/// header (hence the empty line before `signed_headers`).
///
/// Errors: [`AuthError::MissingSignedHeader`] if a signed header is absent,
/// [`AuthError::InvalidHeaderValue`] if its value is not UTF-8.
pub fn canonical_request(
    parts: &RequestParts<'_>,
    signed_headers: &[String],
    algorithm: SigningAlgorithm,
) -> Result<String, AuthError> {
    let payload = payload_hash(parts, algorithm)?;
    build_canonical_request(parts, signed_headers, &payload.primary)
}

/// The string to sign:
/// `ALGORITHM\nX-Sdk-Date\n[credential_scope\n]hex(hash(canonical_request))`.
///
/// `credential_scope` (`yyyymmdd/region/service`) is only used by
/// `V11-HMAC-SHA256`; it is written iff it is `Some`.
pub fn string_to_sign(
    algorithm: SigningAlgorithm,
    sdk_date: &str,
    credential_scope: Option<&str>,
    canonical_request: &str,
) -> String {
    let hash = algorithm.hash_hex(canonical_request.as_bytes());
    match credential_scope {
        Some(scope) => format!("{}\n{sdk_date}\n{scope}\n{hash}", algorithm.as_str()),
        None => format!("{}\n{sdk_date}\n{hash}", algorithm.as_str()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_with_nothing_to_escape_is_its_own_canonical_form() {
        for path in ["", "/", "/v1/abc/jobs", "/v1/abc/jobs/", "/v3/a-b_c.d~e/x", "//double//slash"] {
            let slow = canonical_uri(path);
            assert_eq!(canonical_uris(path), (slow, None), "{path:?}");
        }
    }

    #[test]
    fn uri_decodes_splits_and_reencodes() {
        assert_eq!(canonical_uri("/jobs/a%20b%2Fc"), "/jobs/a%20b/c/");
        assert_eq!(canonical_uri("/jobs/"), "/jobs/");
        assert_eq!(canonical_uri(""), "/");
        assert_eq!(canonical_uri("/"), "/");
        assert_eq!(canonical_uri("/a+b/%7e~"), "/a%2Bb/~~/");
        assert_eq!(canonical_uri("/%E4%B8%AD"), "/%E4%B8%AD/");
        assert_eq!(canonical_uri("/%e4%b8%ad"), "/%E4%B8%AD/");
        assert_eq!(canonical_uri("/bad%zz"), "/bad%25zz/");
    }

    #[test]
    fn uri_as_sent_escapes_escapes_again() {
        assert_eq!(canonical_uri_as_sent("/jobs/a%20b%2Fc"), "/jobs/a%2520b%252Fc/");
        assert_eq!(canonical_uri_as_sent("/v3/p/jobs/x"), "/v3/p/jobs/x/");
        assert_eq!(canonical_uri_as_sent("/"), "/");
        // Without an escape the two forms agree, so only one is a candidate.
        assert_eq!(canonical_uris("/v3/p/jobs/a:b"), ("/v3/p/jobs/a%3Ab/".to_owned(), None));
        assert_eq!(canonical_uris("/jobs/a%20b"), ("/jobs/a%20b/".to_owned(), Some("/jobs/a%2520b/".to_owned())));
    }

    #[test]
    fn query_parses_sorts_and_reencodes() {
        assert_eq!(canonical_query(None), "");
        assert_eq!(canonical_query(Some("")), "");
        assert_eq!(canonical_query(Some("b=2&a=1&b=1")), "a=1&b=1&b=2");
        assert_eq!(canonical_query(Some("flag&x=")), "flag=&x=");
        assert_eq!(canonical_query(Some("a=b+c")), "a=b%2Bc");
        assert_eq!(canonical_query(Some("m=a%20b%2F1&&")), "m=a%20b%2F1");
        assert_eq!(canonical_query(Some("t=1:2")), "t=1%3A2");
        // Sorting is on decoded values: '-' (0x2d) sorts before '/' (0x2f)
        // although "%2F" sorts before "-" once encoded.
        assert_eq!(canonical_query(Some("k=%2F&k=-")), "k=-&k=%2F");
        // Keys keep their case.
        assert_eq!(canonical_query(Some("enterpriseProjectId=0")), "enterpriseProjectId=0");
    }

    #[test]
    fn headers_multi_value_and_missing() {
        let mut h = HeaderMap::new();
        h.append("x-a", " 2 ".parse().unwrap());
        h.append("x-a", "1".parse().unwrap());
        h.insert("host", "example".parse().unwrap());
        let signed = vec!["host".to_owned(), "x-a".to_owned()];
        assert_eq!(canonical_headers(&h, &signed).unwrap(), "host:example\nx-a:1\nx-a:2\n");
        let signed = vec!["x-missing".to_owned()];
        assert_eq!(canonical_headers(&h, &signed), Err(AuthError::MissingSignedHeader("x-missing".into())));
    }
}
