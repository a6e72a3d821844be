//! What every request passes through before routing, in one layer: its request id and tracing
//! span with the "request answered" log line, the in-flight bound (`load_shedding`), a panic
//! below turned into a `500`, and the rendering of every error answer in its dialect's shape
//! (`error::render_answer`), the request id included. One layer rather than one per duty: each `from_fn` layer clones the service under it
//! and boxes a future on every request, which showed in the status-read profile.

use std::panic::AssertUnwindSafe;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use futures_util::FutureExt;
use tracing::Instrument;

use crate::load_shedding::InFlightLimit;
use crate::request_id;

pub async fn request_frame(State(limit): State<InFlightLimit>, mut request: Request, next: Next) -> Response {
    let request_id = request_id::assign(&mut request);
    let span = tracing::info_span!("request", request_id = %request_id.as_str(), method = %request.method(), path = %request.uri().path());
    span.in_scope(|| tracing::debug!("request received"));
    let uri = request.uri().clone();
    let answer = async move {
        match limit.admit(&request) {
            Ok(permit) => {
                let response = next.run(request).await;
                drop(permit);
                response
            }
            Err(shed) => shed.answer(request.uri().path()),
        }
    };
    // A panic below (a handler's bug) is a `500` in the error shape, and the server carries on.
    let answer = AssertUnwindSafe(answer)
        .catch_unwind()
        .instrument(span.clone())
        .await
        .unwrap_or_else(crate::error::panic_to_internal_error);
    let mut response = crate::error::render_answer(answer, &request_id, &uri);
    request_id::answer_with(&mut response, &request_id);
    span.in_scope(|| tracing::info!(status = response.status().as_u16(), "request answered"));
    response
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::routing::get;
    use axum::{middleware, Router};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;

    async fn broken() -> &'static str {
        panic!("a bug in a handler")
    }

    #[tokio::test]
    async fn a_panicking_handler_is_a_500_in_the_error_shape_with_the_request_id() {
        let app = Router::new()
            .route("/v1/broken", get(broken))
            .layer(middleware::from_fn_with_state(InFlightLimit::new(0), request_frame));
        let request = Request::get("/v1/broken").header("x-request-id", "req-1").body(Body::empty()).unwrap();
        let response = app.oneshot(request).await.unwrap();
        assert_eq!(response.status(), 500);
        assert_eq!(response.headers()["x-request-id"], "req-1");
        let body: serde_json::Value =
            serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
        assert!(body["error_code"].is_string() && body["error_msg"].is_string(), "{body}");
        assert_eq!(body["request_id"], "req-1", "{body}");
    }
}
