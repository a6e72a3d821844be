//! Checks against signatures produced by the official Huawei Cloud SDK
//! (`shared/vectors/huawei-sdk-signing.json`), plus signer round trips and
//! `Authorization` parsing errors.

use std::path::PathBuf;

use chrono::{DateTime, Duration, TimeZone, Utc};
use http::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION};
use jobd_auth::{
    canonical_request, derive_signing_key, format_sdk_date, parse_sdk_date, string_to_sign, verify, AuthError,
    Authorization, RequestParts, Signer, SigningAlgorithm, VerifyOptions,
};
use serde_json::Value;

struct Vector {
    name: String,
    raw: Value,
    headers: HeaderMap,
    method: String,
    path: String,
    query: Option<String>,
    body: Vec<u8>,
    sk: String,
    auth: Authorization,
    date: DateTime<Utc>,
    options: VerifyOptions,
}

impl Vector {
    fn parts(&self) -> RequestParts<'_> {
        RequestParts {
            method: &self.method,
            raw_path: &self.path,
            raw_query: self.query.as_deref(),
            headers: &self.headers,
            body: &self.body,
        }
    }

    fn str_field(&self, field: &str) -> &str {
        self.raw[field].as_str().unwrap_or_else(|| panic!("{}: field {field} is not a string", self.name))
    }
}

fn vectors_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors/huawei-sdk-signing.json")
}

/// Loads every vector; panics (never skips) if the file is missing or odd.
fn load_vectors() -> Vec<Vector> {
    let path = vectors_path();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("signing test vectors are required but could not be read at {}: {e}", path.display())
    });
    let doc: Value = serde_json::from_str(&text).expect("vector file is not valid JSON");
    let list = doc["vectors"].as_array().expect("`vectors` must be an array");
    assert!(!list.is_empty(), "vector file holds no vectors");

    list.iter()
        .map(|raw| {
            let name = raw["name"].as_str().expect("vector without name").to_owned();
            let mut headers = HeaderMap::new();
            for (k, v) in raw["headers_as_sent"]
                .as_object()
                .unwrap_or_else(|| panic!("{name}: headers_as_sent must be an object"))
            {
                headers.append(
                    HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    HeaderValue::from_str(v.as_str().unwrap()).unwrap(),
                );
            }
            let uri = raw["request_uri_as_sent"].as_str().unwrap();
            let (path, query) = match uri.split_once('?') {
                Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
                None => (uri.to_owned(), None),
            };
            let body = match &raw["body"] {
                Value::Null => Vec::new(),
                Value::String(s) => s.as_bytes().to_vec(),
                other => panic!("{name}: unexpected body {other}"),
            };
            let auth = Authorization::parse(raw["authorization"].as_str().unwrap())
                .unwrap_or_else(|e| panic!("{name}: cannot parse authorization: {e}"));
            let date = parse_sdk_date(
                headers.get("x-sdk-date").unwrap_or_else(|| panic!("{name}: no X-Sdk-Date")).to_str().unwrap(),
            )
            .unwrap();
            let mut options = VerifyOptions::default();
            if let Some(derived) = raw.get("derived") {
                options.derive_region = Some(derived["region_id"].as_str().unwrap().to_owned());
                options.derive_service = Some(derived["derived_auth_service_name"].as_str().unwrap().to_owned());
            }
            Vector {
                method: raw["method"].as_str().unwrap().to_owned(),
                sk: raw["sk"].as_str().unwrap().to_owned(),
                name,
                raw: raw.clone(),
                headers,
                path,
                query,
                body,
                auth,
                date,
                options,
            }
        })
        .collect()
}

fn check(v: &Vector, parts: &RequestParts<'_>, sk: &[u8], now: DateTime<Utc>) -> Result<(), AuthError> {
    verify(parts, &v.auth, sk, now, &v.options)
}

#[test]
fn vector_file_is_present() {
    assert!(vectors_path().is_file(), "missing {}", vectors_path().display());
}

#[test]
fn authorization_fields_match_vectors() {
    for v in load_vectors() {
        assert_eq!(v.auth.algorithm.as_str(), v.str_field("algorithm"), "{}", v.name);
        assert_eq!(v.auth.access_key, v.str_field("ak"), "{}", v.name);
        assert_eq!(v.auth.signed_headers.join(";"), v.str_field("signed_headers"), "{}", v.name);
        assert_eq!(v.auth.signature, v.str_field("signature"), "{}", v.name);
        // The header sent is the same as the recorded authorization.
        assert_eq!(v.headers.get(AUTHORIZATION).unwrap().to_str().unwrap(), v.str_field("authorization"), "{}", v.name);
        assert_eq!(Authorization::from_headers(&v.headers).unwrap(), v.auth, "{}", v.name);
    }
}

#[test]
fn canonical_request_and_string_to_sign_match_vectors() {
    for v in load_vectors() {
        let canonical = canonical_request(&v.parts(), &v.auth.signed_headers, v.auth.algorithm)
            .unwrap_or_else(|e| panic!("{}: {e}", v.name));
        assert_eq!(canonical, v.str_field("canonical_request"), "{}", v.name);

        let sdk_date = format_sdk_date(v.date);
        let scope = v
            .options
            .derive_region
            .as_ref()
            .map(|region| format!("{}/{region}/{}", &sdk_date[..8], v.options.derive_service.as_ref().unwrap()));
        let sts = string_to_sign(v.auth.algorithm, &sdk_date, scope.as_deref(), &canonical);
        assert_eq!(sts, v.str_field("string_to_sign"), "{}", v.name);

        if let Some(scope) = &scope {
            assert_eq!(
                derive_signing_key(&v.auth.access_key, v.sk.as_bytes(), scope),
                v.str_field("signing_key"),
                "{}",
                v.name
            );
        } else {
            assert_eq!(v.sk, v.str_field("signing_key"), "{}", v.name);
        }
    }
}

#[test]
fn every_algorithm_is_covered() {
    let vectors = load_vectors();
    for alg in [SigningAlgorithm::HmacSha256, SigningAlgorithm::HmacSm3, SigningAlgorithm::DerivedHmacSha256] {
        assert!(vectors.iter().any(|v| v.auth.algorithm == alg), "no vector for {alg}");
    }
    assert!(vectors.iter().any(|v| v.method == "POST" && !v.body.is_empty()));
    assert!(vectors.iter().any(|v| v.query.is_some()));
}

#[test]
fn vectors_verify_at_signing_time() {
    for v in load_vectors() {
        check(&v, &v.parts(), v.sk.as_bytes(), v.date).unwrap_or_else(|e| panic!("{}: {e}", v.name));
    }
}

#[test]
fn wrong_secret_key_is_a_mismatch() {
    for v in load_vectors() {
        assert_eq!(check(&v, &v.parts(), b"SK_WRONG", v.date), Err(AuthError::SignatureMismatch), "{}", v.name);
    }
}

#[test]
fn changed_signed_header_is_a_mismatch() {
    for v in load_vectors() {
        for name in v.auth.signed_headers.iter().filter(|n| *n != "x-sdk-date") {
            let mut headers = v.headers.clone();
            let old = headers.get(name.as_str()).unwrap().to_str().unwrap().to_owned();
            headers.insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(&format!("{old}x")).unwrap(),
            );
            let parts = RequestParts { headers: &headers, ..v.parts() };
            assert_eq!(
                check(&v, &parts, v.sk.as_bytes(), v.date),
                Err(AuthError::SignatureMismatch),
                "{}: header {name}",
                v.name
            );
        }
    }
}

#[test]
fn changed_date_is_a_mismatch() {
    for v in load_vectors() {
        let later = v.date + Duration::seconds(1);
        let mut headers = v.headers.clone();
        headers.insert("x-sdk-date", format_sdk_date(later).parse().unwrap());
        let parts = RequestParts { headers: &headers, ..v.parts() };
        assert_eq!(check(&v, &parts, v.sk.as_bytes(), later), Err(AuthError::SignatureMismatch), "{}", v.name);
    }
}

#[test]
fn removed_signed_header_is_reported() {
    for v in load_vectors() {
        let mut headers = v.headers.clone();
        headers.remove("host");
        let parts = RequestParts { headers: &headers, ..v.parts() };
        assert_eq!(
            check(&v, &parts, v.sk.as_bytes(), v.date),
            Err(AuthError::MissingSignedHeader("host".into())),
            "{}",
            v.name
        );
    }
}

#[test]
fn unsigned_header_changes_are_ignored() {
    for v in load_vectors() {
        let mut headers = v.headers.clone();
        headers.insert("x-not-signed", "anything".parse().unwrap());
        if !v.auth.signed_headers.iter().any(|n| n == "content-type") {
            headers.insert("content-type", "text/plain".parse().unwrap());
        }
        let parts = RequestParts { headers: &headers, ..v.parts() };
        check(&v, &parts, v.sk.as_bytes(), v.date).unwrap_or_else(|e| panic!("{}: {e}", v.name));
    }
}

#[test]
fn changed_body_path_query_or_method_is_a_mismatch() {
    for v in load_vectors() {
        let mut body = v.body.clone();
        body.extend_from_slice(b" ");
        let parts = RequestParts { body: &body, ..v.parts() };
        assert_eq!(check(&v, &parts, v.sk.as_bytes(), v.date), Err(AuthError::SignatureMismatch), "{}: body", v.name);

        let path = format!("{}x", v.path);
        let parts = RequestParts { raw_path: &path, ..v.parts() };
        assert_eq!(check(&v, &parts, v.sk.as_bytes(), v.date), Err(AuthError::SignatureMismatch), "{}: path", v.name);

        let query = match &v.query {
            Some(q) => format!("{q}&extra=1"),
            None => "extra=1".to_owned(),
        };
        let parts = RequestParts { raw_query: Some(&query), ..v.parts() };
        assert_eq!(check(&v, &parts, v.sk.as_bytes(), v.date), Err(AuthError::SignatureMismatch), "{}: query", v.name);

        let parts = RequestParts { method: "DELETE", ..v.parts() };
        assert_eq!(check(&v, &parts, v.sk.as_bytes(), v.date), Err(AuthError::SignatureMismatch), "{}: method", v.name);
    }
}

#[test]
fn post_body_change_is_a_mismatch() {
    let vectors = load_vectors();
    let post = vectors.iter().find(|v| v.method == "POST").expect("a POST vector");
    let tampered = String::from_utf8(post.body.clone()).unwrap().replace("demo", "dem0");
    let parts = RequestParts { body: tampered.as_bytes(), ..post.parts() };
    assert_eq!(check(post, &parts, post.sk.as_bytes(), post.date), Err(AuthError::SignatureMismatch));
}

#[test]
fn clock_skew_window() {
    for v in load_vectors() {
        for offset in [Duration::minutes(16), Duration::minutes(-16)] {
            assert_eq!(
                check(&v, &v.parts(), v.sk.as_bytes(), v.date + offset),
                Err(AuthError::DateOutOfWindow),
                "{}: {offset}",
                v.name
            );
        }
        for offset in [Duration::minutes(15), Duration::minutes(-15)] {
            check(&v, &v.parts(), v.sk.as_bytes(), v.date + offset)
                .unwrap_or_else(|e| panic!("{}: {offset}: {e}", v.name));
        }
        // A narrower configured window is honoured.
        let narrow = VerifyOptions { max_clock_skew: Duration::minutes(1), ..v.options.clone() };
        assert_eq!(
            verify(&v.parts(), &v.auth, v.sk.as_bytes(), v.date + Duration::minutes(2), &narrow),
            Err(AuthError::DateOutOfWindow),
            "{}",
            v.name
        );
    }
}

#[test]
fn date_header_problems() {
    let v = &load_vectors()[0];
    let mut headers = v.headers.clone();
    headers.remove("x-sdk-date");
    let parts = RequestParts { headers: &headers, ..v.parts() };
    assert_eq!(check(v, &parts, v.sk.as_bytes(), v.date), Err(AuthError::MissingDate));

    headers.insert("x-sdk-date", "2024-01-02T03:04:05Z".parse().unwrap());
    let parts = RequestParts { headers: &headers, ..v.parts() };
    assert_eq!(check(v, &parts, v.sk.as_bytes(), v.date), Err(AuthError::MalformedDate));
}

#[test]
fn v11_needs_configured_region_and_service() {
    let vectors = load_vectors();
    let v = vectors.iter().find(|v| v.auth.algorithm == SigningAlgorithm::DerivedHmacSha256).expect("a V11 vector");

    // No region configured: the error says so (whatever the service).
    for options in [
        VerifyOptions::default(),
        VerifyOptions { derive_service: v.options.derive_service.clone(), ..VerifyOptions::default() },
    ] {
        let refused = verify(&v.parts(), &v.auth, v.sk.as_bytes(), v.date, &options);
        assert_eq!(refused, Err(AuthError::NoRegionForDerivedSigning));
        assert!(refused.unwrap_err().to_string().contains("JOBD_REGION"));
    }
    let region_only = VerifyOptions { derive_region: v.options.derive_region.clone(), ..VerifyOptions::default() };
    assert_eq!(
        verify(&v.parts(), &v.auth, v.sk.as_bytes(), v.date, &region_only),
        Err(AuthError::UnsupportedAlgorithm("V11-HMAC-SHA256".into()))
    );

    // Another region or service than the one signed for: named, not a bare mismatch.
    let other_region = VerifyOptions { derive_region: Some("cn-south-1".into()), ..v.options.clone() };
    let refused = verify(&v.parts(), &v.auth, v.sk.as_bytes(), v.date, &other_region).unwrap_err();
    assert!(matches!(&refused, AuthError::CredentialScope(m) if m.contains("cn-south-1")), "{refused}");
    let other_service = VerifyOptions { derive_service: Some("elb".into()), ..v.options.clone() };
    let refused = verify(&v.parts(), &v.auth, v.sk.as_bytes(), v.date, &other_service).unwrap_err();
    assert!(matches!(&refused, AuthError::CredentialScope(m) if m.contains("elb")), "{refused}");

    // A scope that claims this server's region over a key derived for another: a mismatch.
    let mut forged = v.auth.clone();
    forged.credential_scope = Some("20240102/cn-south-1/cfw".into());
    let forged_options = VerifyOptions { derive_region: Some("cn-south-1".into()), ..v.options.clone() };
    assert_eq!(
        verify(&v.parts(), &forged, v.sk.as_bytes(), v.date, &forged_options),
        Err(AuthError::SignatureMismatch)
    );

    // The derivation does not leak into the other algorithms.
    let plain = vectors.iter().find(|v| v.auth.algorithm == SigningAlgorithm::HmacSha256).unwrap();
    verify(&plain.parts(), &plain.auth, plain.sk.as_bytes(), plain.date, &v.options).unwrap();
}

#[test]
fn algorithm_swap_is_a_mismatch() {
    for v in load_vectors() {
        if v.auth.algorithm == SigningAlgorithm::DerivedHmacSha256 {
            continue;
        }
        let mut auth = v.auth.clone();
        auth.algorithm = match auth.algorithm {
            SigningAlgorithm::HmacSha256 => SigningAlgorithm::HmacSm3,
            _ => SigningAlgorithm::HmacSha256,
        };
        assert_eq!(
            verify(&v.parts(), &auth, v.sk.as_bytes(), v.date, &v.options),
            Err(AuthError::SignatureMismatch),
            "{}",
            v.name
        );
    }
}

// ---------------------------------------------------------------------------
// Signer round trips.

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 6, 7, 8, 9).unwrap()
}

fn base_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("host", "127.0.0.1:8080".parse().unwrap());
    h.insert("content-type", "application/json".parse().unwrap());
    h.insert("x-project-id", "0123456789abcdef0123456789abcdef".parse().unwrap());
    h
}

fn sign_and_verify(
    method: &str,
    path: &str,
    query: Option<&str>,
    mut headers: HeaderMap,
    body: &[u8],
) -> (HeaderMap, Authorization) {
    let signer = Signer::new("AK_ROUND", "SK_ROUND");
    signer.sign(method, path, query, &mut headers, body, now()).unwrap();
    assert_eq!(headers.get("x-sdk-date").unwrap(), format_sdk_date(now()).as_str());
    let auth = Authorization::from_headers(&headers).unwrap();
    assert_eq!(auth.algorithm, SigningAlgorithm::HmacSha256);
    assert_eq!(auth.access_key, "AK_ROUND");
    let parts = RequestParts { method, raw_path: path, raw_query: query, headers: &headers, body };
    verify(&parts, &auth, b"SK_ROUND", now(), &VerifyOptions::default())
        .unwrap_or_else(|e| panic!("{method} {path}?{query:?}: {e}"));
    assert_eq!(verify(&parts, &auth, b"SK_OTHER", now(), &VerifyOptions::default()), Err(AuthError::SignatureMismatch));
    (headers, auth)
}

#[test]
fn signer_round_trips() {
    let (_, auth) = sign_and_verify(
        "GET",
        "/v3/0123456789abcdef0123456789abcdef/elb/jobs",
        Some("status=SUCCESS&limit=10&status=FAIL&marker=job%20id%2F1%2Bx&flag"),
        base_headers(),
        b"",
    );
    assert_eq!(auth.signed_headers, vec!["content-type", "host", "x-project-id", "x-sdk-date"]);

    sign_and_verify(
        "POST",
        "/v1/0123456789abcdef0123456789abcdef/waf/async-job",
        None,
        base_headers(),
        br#"{"job": {"name": "demo"}}"#,
    );
    sign_and_verify(
        "GET",
        "/v3/p/jobs/a%20b%2Fc/%E4%B8%AD",
        Some("a=b+c&t=2024-01-01T00%3A00%3A00"),
        base_headers(),
        b"",
    );
    sign_and_verify("DELETE", "/", Some(""), base_headers(), b"");
}

#[test]
fn signer_replaces_stale_authorization_and_date() {
    let mut headers = base_headers();
    headers.insert(AUTHORIZATION, "stale".parse().unwrap());
    headers.insert("x-sdk-date", "19990101T000000Z".parse().unwrap());
    let (headers, auth) = sign_and_verify("GET", "/jobs", None, headers, b"");
    assert!(!auth.signed_headers.iter().any(|h| h == "authorization"));
    assert_eq!(headers.get_all(AUTHORIZATION).iter().count(), 1);
    assert_eq!(headers.get_all("x-sdk-date").iter().count(), 1);
}

#[test]
fn signer_matches_official_vector() {
    // Re-signing vector 1's request at its date yields its exact header.
    let v = &load_vectors()[0];
    assert_eq!(v.auth.algorithm, SigningAlgorithm::HmacSha256);
    let mut headers = v.headers.clone();
    headers.remove(AUTHORIZATION);
    Signer::new(v.str_field("ak"), v.sk.clone())
        .sign(&v.method, &v.path, v.query.as_deref(), &mut headers, &v.body, v.date)
        .unwrap();
    assert_eq!(headers.get(AUTHORIZATION).unwrap().to_str().unwrap(), v.str_field("authorization"));
}

#[test]
fn unsigned_payload() {
    let mut headers = base_headers();
    headers.insert("x-sdk-content-sha256", "UNSIGNED-PAYLOAD".parse().unwrap());
    let (headers, auth) = sign_and_verify("POST", "/upload", None, headers, b"original");
    // The body is not covered by the signature.
    let parts =
        RequestParts { method: "POST", raw_path: "/upload", raw_query: None, headers: &headers, body: b"different" };
    verify(&parts, &auth, b"SK_ROUND", now(), &VerifyOptions::default()).unwrap();
}

#[test]
fn unsigned_payload_with_empty_body_accepts_both_sdk_conventions() {
    // The Python SDK ignores the content header for an empty body (it hashes
    // ""), the Go SDK uses the header value: both must verify.
    let mut headers = base_headers();
    headers.insert("x-sdk-content-sha256", "UNSIGNED-PAYLOAD".parse().unwrap());
    headers.insert("x-sdk-date", format_sdk_date(now()).parse().unwrap());
    let signed: Vec<String> = ["content-type", "host", "x-project-id", "x-sdk-content-sha256", "x-sdk-date"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let parts = RequestParts { method: "GET", raw_path: "/jobs", raw_query: None, headers: &headers, body: b"" };
    let python_style = canonical_request(&parts, &signed, SigningAlgorithm::HmacSha256).unwrap();
    assert!(python_style.ends_with("\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
    let go_style =
        python_style.replace("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "UNSIGNED-PAYLOAD");
    for canonical in [python_style, go_style] {
        let sts = string_to_sign(SigningAlgorithm::HmacSha256, &format_sdk_date(now()), None, &canonical);
        let sig = hmac_sha256_hex(b"SK_ROUND", sts.as_bytes());
        let auth = Authorization {
            algorithm: SigningAlgorithm::HmacSha256,
            access_key: "AK_ROUND".into(),
            credential_scope: None,
            signed_headers: signed.clone(),
            signature: sig,
        };
        verify(&parts, &auth, b"SK_ROUND", now(), &VerifyOptions::default()).unwrap();
    }
}

#[test]
fn declared_body_hash_must_match_body() {
    let body = b"{\"a\":1}";
    let mut headers = base_headers();
    headers.insert(
        "x-sdk-content-sha256",
        "0000000000000000000000000000000000000000000000000000000000000000".parse().unwrap(),
    );
    let signer = Signer::new("AK_ROUND", "SK_ROUND");
    signer.sign("POST", "/jobs", None, &mut headers, body, now()).unwrap();
    let auth = Authorization::from_headers(&headers).unwrap();
    let parts = RequestParts { method: "POST", raw_path: "/jobs", raw_query: None, headers: &headers, body };
    assert_eq!(verify(&parts, &auth, b"SK_ROUND", now(), &VerifyOptions::default()), Err(AuthError::SignatureMismatch));

    // A correct declared hash verifies.
    let mut headers = base_headers();
    let real = sha256_hex(body);
    headers.insert("x-sdk-content-sha256", real.parse().unwrap());
    sign_and_verify("POST", "/jobs", None, headers, body);
}

fn hmac_sha256_hex(key: &[u8], data: &[u8]) -> String {
    // An independent HMAC, to build signatures the Signer would not produce.
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    mac.update(data);
    hex::encode(mac.finalize().into_bytes())
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

// ---------------------------------------------------------------------------
// Authorization::parse errors.

fn malformed(value: &str) {
    assert!(
        matches!(Authorization::parse(value), Err(AuthError::MalformedAuthorization(_))),
        "expected MalformedAuthorization for {value:?}, got {:?}",
        Authorization::parse(value)
    );
}

#[test]
fn parse_empty_is_missing() {
    assert_eq!(Authorization::parse(""), Err(AuthError::MissingAuthorization));
    assert_eq!(Authorization::parse("   "), Err(AuthError::MissingAuthorization));
}

#[test]
fn parse_unknown_algorithm() {
    assert_eq!(Authorization::parse("Bearer abc.def"), Err(AuthError::UnsupportedAlgorithm("Bearer".into())));
    assert_eq!(
        Authorization::parse("SDK-HMAC-SHA1 Access=A, SignedHeaders=host, Signature=00"),
        Err(AuthError::UnsupportedAlgorithm("SDK-HMAC-SHA1".into()))
    );
    assert_eq!(
        Authorization::parse("SDK-ECDSA-P256-SHA256 Access=A, SignedHeaders=host, Signature=00"),
        Err(AuthError::UnsupportedAlgorithm("SDK-ECDSA-P256-SHA256".into()))
    );
}

#[test]
fn parse_missing_parts() {
    malformed("SDK-HMAC-SHA256");
    malformed("SDK-HMAC-SHA256 ");
    malformed("SDK-HMAC-SHA256 SignedHeaders=host, Signature=00");
    malformed("SDK-HMAC-SHA256 Access=A, Signature=00");
    malformed("SDK-HMAC-SHA256 Access=A, SignedHeaders=host");
    malformed("SDK-HMAC-SHA256 Access=, SignedHeaders=host, Signature=00");
    malformed("SDK-HMAC-SHA256 Access=A, SignedHeaders=host, Signature=");
    malformed("SDK-HMAC-SHA256 Access=A SignedHeaders=host Signature=00");
    malformed("SDK-HMAC-SHA256 Access=A,, SignedHeaders=host, Signature=00");
}

#[test]
fn parse_empty_signed_headers() {
    malformed("SDK-HMAC-SHA256 Access=A, SignedHeaders=, Signature=00");
    malformed("SDK-HMAC-SHA256 Access=A, SignedHeaders=host;;x-sdk-date, Signature=00");
    malformed("SDK-HMAC-SHA256 Access=A, SignedHeaders=host;, Signature=00");
    malformed("SDK-HMAC-SHA256 Access=A, SignedHeaders=ho st, Signature=00");
}

#[test]
fn parse_bad_values() {
    // Non-hex or odd-length signatures.
    malformed("SDK-HMAC-SHA256 Access=A, SignedHeaders=host, Signature=xyz0");
    malformed("SDK-HMAC-SHA256 Access=A, SignedHeaders=host, Signature=abc");
    // Duplicate and unknown parameters.
    malformed("SDK-HMAC-SHA256 Access=A, Access=B, SignedHeaders=host, Signature=00");
    malformed("SDK-HMAC-SHA256 Access=A, SignedHeaders=host, Signature=00, Extra=1");
    // Parameters of the wrong algorithm family.
    malformed("SDK-HMAC-SHA256 Credential=A/20240102/r/s, SignedHeaders=host, Signature=00");
    malformed("V11-HMAC-SHA256 Access=A, SignedHeaders=host, Signature=00");
    // Bad V11 credential scopes.
    malformed("V11-HMAC-SHA256 Credential=A, SignedHeaders=host, Signature=00");
    malformed("V11-HMAC-SHA256 Credential=A/2024012/r/s, SignedHeaders=host, Signature=00");
    malformed("V11-HMAC-SHA256 Credential=A/20240102//s, SignedHeaders=host, Signature=00");
    malformed("V11-HMAC-SHA256 Credential=A/20240102/r/s/x, SignedHeaders=host, Signature=00");
}

#[test]
fn malformed_signature_on_verify_is_not_a_panic() {
    let v = &load_vectors()[0];
    let mut auth = v.auth.clone();
    auth.signature = "zz".into();
    assert!(matches!(check(v, &v.parts(), v.sk.as_bytes(), v.date), Ok(())));
    assert!(matches!(
        verify(&v.parts(), &auth, v.sk.as_bytes(), v.date, &v.options),
        Err(AuthError::MalformedAuthorization(_))
    ));
    // A truncated signature is simply a mismatch.
    auth.signature = v.auth.signature[..62].to_owned();
    assert_eq!(verify(&v.parts(), &auth, v.sk.as_bytes(), v.date, &v.options), Err(AuthError::SignatureMismatch));
}

/// A signature over `canonical` (with `SDK-HMAC-SHA256`, key `SK_ROUND`) for the request parts.
fn signed_over(canonical: &str, signed: &[String]) -> Authorization {
    let sts = string_to_sign(SigningAlgorithm::HmacSha256, &format_sdk_date(now()), None, canonical);
    Authorization {
        algorithm: SigningAlgorithm::HmacSha256,
        access_key: "AK_ROUND".into(),
        credential_scope: None,
        signed_headers: signed.to_vec(),
        signature: hmac_sha256_hex(b"SK_ROUND", sts.as_bytes()),
    }
}

#[test]
fn escaped_paths_verify_in_every_official_cores_form_and_no_other() {
    let mut headers = base_headers();
    headers.insert("x-sdk-date", format_sdk_date(now()).parse().unwrap());
    let signed: Vec<String> =
        ["content-type", "host", "x-project-id", "x-sdk-date"].iter().map(|s| s.to_string()).collect();
    // A job id holding an escape: `a%2fb` as sent (lowercase hex, as a caller may write it).
    let raw_path = "/v3/0123456789abcdef0123456789abcdef/jobs/a%2fb%20c";
    let parts = RequestParts { method: "GET", raw_path, raw_query: None, headers: &headers, body: b"" };
    let python_go = canonical_request(&parts, &signed, SigningAlgorithm::HmacSha256).unwrap();
    assert!(python_go.contains("\n/v3/0123456789abcdef0123456789abcdef/jobs/a/b%20c/\n"), "{python_go}");
    // The Java core encodes the path it sends segment by segment, escapes and all.
    let java = python_go.replace("/jobs/a/b%20c/", "/jobs/a%252fb%2520c/");
    for canonical in [&python_go, &java] {
        verify(&parts, &signed_over(canonical, &signed), b"SK_ROUND", now(), &VerifyOptions::default())
            .unwrap_or_else(|e| panic!("{e}: {canonical}"));
    }
    // Forms no core produces: the escapes kept as sent, or normalised to uppercase, or escaped
    // three times.
    for looser in ["/jobs/a%2fb%20c/", "/jobs/a%2Fb%20c/", "/jobs/a%25252fb%252520c/"] {
        let canonical = python_go.replace("/jobs/a/b%20c/", looser);
        assert_eq!(
            verify(&parts, &signed_over(&canonical, &signed), b"SK_ROUND", now(), &VerifyOptions::default()),
            Err(AuthError::SignatureMismatch),
            "{looser}"
        );
    }
    // Without an escape in the path, the Java form is the Python one: nothing more is accepted.
    let plain = RequestParts { raw_path: "/v3/p/jobs/a:b", ..parts };
    let canonical = canonical_request(&plain, &signed, SigningAlgorithm::HmacSha256).unwrap();
    assert!(canonical.contains("\n/v3/p/jobs/a%3Ab/\n"));
    verify(&plain, &signed_over(&canonical, &signed), b"SK_ROUND", now(), &VerifyOptions::default()).unwrap();
    let raw_kept = canonical.replace("/a%3Ab/", "/a:b/");
    assert_eq!(
        verify(&plain, &signed_over(&raw_kept, &signed), b"SK_ROUND", now(), &VerifyOptions::default()),
        Err(AuthError::SignatureMismatch)
    );
}
