//! Request ids: taken from the caller's `X-Request-Id` when sane, generated otherwise, and sent
//! back on every response (the SDKs read an error's request id only from that header).

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::response::Response;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(String);

impl RequestId {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub(crate) fn generate() -> Self {
        RequestId(uuid::Uuid::new_v4().simple().to_string())
    }

    fn from_caller(value: &HeaderValue) -> Option<Self> {
        let text = value.to_str().ok()?;
        let sane = (1..=128).contains(&text.len())
            && text.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
        sane.then(|| RequestId(text.to_owned()))
    }
}

/// The request's id (the caller's when sane, else a new one), recorded in its extensions.
pub(crate) fn assign(request: &mut Request) -> RequestId {
    let request_id =
        request.headers().get(REQUEST_ID_HEADER).and_then(RequestId::from_caller).unwrap_or_else(RequestId::generate);
    request.extensions_mut().insert(request_id.clone());
    request_id
}

/// Sends the request id back on the response.
pub(crate) fn answer_with(response: &mut Response, request_id: &RequestId) {
    let value = HeaderValue::from_str(request_id.as_str()).expect("request ids are visible ASCII");
    response.headers_mut().insert(REQUEST_ID_HEADER, value);
}
