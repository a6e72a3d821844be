//! The signature path: an input is an HTTP request written as text — a method and a
//! request target (`/path?query`) on the first line, header lines, a blank line, the body — read
//! the way jobd reads a signed request: the request target as hyper would accept it, the
//! `Authorization` header parsed, the canonical request built (path and query decoded and
//! re-encoded), the signature verified. Nothing may panic; and a request jobd's own `Signer`
//! signs must verify with the same secret.
#![no_main]

use chrono::{TimeZone, Utc};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use jobd_auth::{
    canonical_request, parse_sdk_date, string_to_sign, verify, Authorization, RequestParts, Signer, VerifyOptions,
};
use libfuzzer_sys::fuzz_target;

const SECRET: &str = "fuzz-secret-key";

fuzz_target!(|data: &[u8]| {
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(at) => (&data[..at], &data[at + 2..]),
        None => (data, &b""[..]),
    };
    let mut lines = head.split(|b| *b == b'\n');
    let request_line = lines.next().unwrap_or_default();
    let Ok(request_line) = std::str::from_utf8(request_line) else { return };
    let (method, target) = request_line.split_once(' ').unwrap_or((request_line, "/"));
    // What hyper hands the router: a method token and a request target it could parse.
    let Ok(method) = http::Method::from_bytes(method.as_bytes()) else { return };
    let Ok(target) = target.parse::<http::uri::PathAndQuery>() else { return };
    let mut headers = HeaderMap::new();
    for line in lines {
        let Some(colon) = line.iter().position(|b| *b == b':') else { continue };
        let (Ok(name), Ok(value)) =
            (HeaderName::from_bytes(&line[..colon]), HeaderValue::from_bytes(line[colon + 1..].trim_ascii()))
        else {
            continue;
        };
        headers.append(name, value);
    }
    let now = Utc.with_ymd_and_hms(2024, 5, 6, 7, 8, 9).unwrap();
    let parts = RequestParts {
        method: method.as_str(),
        raw_path: target.path(),
        raw_query: target.query(),
        headers: &headers,
        body,
    };

    // As sent: parse, canonicalise, verify (whatever the outcome, without panicking).
    if let Some(date) = headers.get("x-sdk-date").and_then(|v| v.to_str().ok()) {
        let _ = parse_sdk_date(date);
    }
    if let Ok(value) = headers.get(http::header::AUTHORIZATION).map(HeaderValue::to_str).transpose() {
        let _ = Authorization::parse(value.unwrap_or_default());
    }
    if let Ok(authorization) = Authorization::from_headers(&headers) {
        if let Ok(canonical) = canonical_request(&parts, &authorization.signed_headers, authorization.algorithm) {
            let _ = string_to_sign(authorization.algorithm, "20240506T070809Z", None, &canonical);
        }
        let options = VerifyOptions {
            derive_region: Some("region".into()),
            derive_service: Some("service".into()),
            ..VerifyOptions::default()
        };
        let _ = verify(&parts, &authorization, SECRET.as_bytes(), now, &options);
    }

    // Signed by jobd's own signer: it verifies. (A declared body hash that is neither the body's nor
    // UNSIGNED-PAYLOAD is refused by design, so the signer is not handed one.)
    let mut signed = headers.clone();
    signed.remove(http::header::AUTHORIZATION);
    if signed.get("x-sdk-content-sha256").is_some_and(|v| v.as_bytes().trim_ascii() != b"UNSIGNED-PAYLOAD") {
        signed.remove("x-sdk-content-sha256");
    }
    if Signer::new("FUZZAK", SECRET)
        .sign(method.as_str(), target.path(), target.query(), &mut signed, body, now)
        .is_ok()
    {
        let parts = RequestParts { headers: &signed, ..parts };
        let authorization = Authorization::from_headers(&signed).expect("the signer's Authorization parses");
        if let Err(error) = verify(&parts, &authorization, SECRET.as_bytes(), now, &VerifyOptions::default()) {
            panic!("a request signed by Signer does not verify: {error}");
        }
    }
});
