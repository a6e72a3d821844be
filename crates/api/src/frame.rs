//! What every request passes through before routing, in one layer: its request id and tracing
//! span with the "request answered" log line, the in-flight bound (`load_shedding`), and the
//! rendering of every error answer in its dialect's shape (`error::render_answer`), the request id
//! included. One layer rather than one per duty: each `from_fn` layer clones the service under it
//! and boxes a future on every request, which showed in the status-read profile.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
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
    }
    .instrument(span.clone())
    .await;
    let mut response = crate::error::render_answer(answer, &request_id, &uri);
    request_id::answer_with(&mut response, &request_id);
    span.in_scope(|| tracing::info!(status = response.status().as_u16(), "request answered"));
    response
}
