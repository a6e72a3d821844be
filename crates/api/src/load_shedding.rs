//! Load shedding: past `ApiConfig::max_in_flight` requests at once, a request is answered `503`
//! with `Retry-After` at once, in its dialect's error shape, instead of queueing.
//!
//! Not counted: the health routes and `/metrics`, and requests that wait by design — long polls
//! (`wait_seconds` other than 0 in the query, or `X-Jobd-Wait`), worker claims (they may long-poll)
//! and event streams (`.../events`). Those are bounded by the connection cap instead.

use std::sync::Arc;

use axum::extract::Request;
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::dialect::Dialect;
use crate::error::{ApiError, ErrorKind};

/// The in-flight bound of one app (`None`: no bound).
#[derive(Clone)]
pub struct InFlightLimit(Option<Arc<Semaphore>>);

impl InFlightLimit {
    /// At most `max_in_flight` counted requests at once; 0 is no bound.
    pub fn new(max_in_flight: usize) -> Self {
        InFlightLimit((max_in_flight > 0).then(|| Arc::new(Semaphore::new(max_in_flight))))
    }
}

/// Whether a request counts against the bound (see the module comment).
fn counted(request: &Request) -> bool {
    let path = request.uri().path();
    if matches!(path, "/healthz" | "/readyz" | "/metrics") || path.ends_with("/events") {
        return false;
    }
    if request.method() == Method::POST && path == "/v1/worker/claim" {
        return false;
    }
    if request.headers().contains_key(crate::watch::WAIT_HEADER) {
        return false;
    }
    let long_poll = form_urlencoded::parse(request.uri().query().unwrap_or_default().as_bytes())
        .any(|(name, value)| name == "wait_seconds" && value != "0");
    !long_poll
}

/// A request refused by the bound.
pub struct Shed;

impl InFlightLimit {
    /// Admits a request: its permit (none when it is not counted or there is no bound), or `Shed`.
    pub fn admit(&self, request: &Request) -> Result<Option<OwnedSemaphorePermit>, Shed> {
        let Some(permits) = &self.0 else { return Ok(None) };
        if !counted(request) {
            return Ok(None);
        }
        permits.clone().try_acquire_owned().map(Some).map_err(|_| Shed)
    }
}

impl Shed {
    /// `503` with `Retry-After`, at once, in the dialect of the path.
    pub fn answer(&self, path: &str) -> Response {
        metrics::counter!("jobd_http_requests_shed_total").increment(1);
        let detail = "too many requests in flight; retry shortly".to_owned();
        ApiError::new(Dialect::of_path(path), ErrorKind::Unavailable(detail)).into_response()
    }
}
