//! The limit jobd's status reads are measured against: a bare axum handler on the same runtime
//! settings as `jobd serve` (tokio's multi-thread runtime, default workers), answering each dialect
//! path with the bytes jobd answered for it, with no authentication, no store and no middleware.

use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, Response};
use bytes::Bytes;
use futures_util::StreamExt;

/// The answers, by dialect: what jobd answered for one job of each.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Answers {
    pub cfw: String,
    pub waf: String,
    pub elb: String,
}

/// `jobd-bench baseline-server --answers FILE`: serves on 127.0.0.1:0 and prints its address.
pub fn serve(answers: &Path) -> anyhow::Result<()> {
    let answers: Answers = serde_json::from_slice(&std::fs::read(answers)?)?;
    let answers = Arc::new([Bytes::from(answers.cfw), Bytes::from(answers.waf), Bytes::from(answers.elb)]);
    // The same runtime jobd's main builds.
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        println!("baseline listening on http://{}", listener.local_addr()?);
        let app = axum::Router::new().fallback(move |request: Request<Body>| {
            let answers = answers.clone();
            async move {
                let path = request.uri().path();
                if path.ends_with("/events") {
                    return idle_event_stream();
                }
                let body = if path.contains("/waf/") {
                    answers[1].clone()
                } else if path.contains("/elb/") {
                    answers[2].clone()
                } else {
                    answers[0].clone()
                };
                Response::builder()
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(body))
                    .expect("a static response")
            }
        });
        axum::serve(listener, app).await?;
        anyhow::Ok(())
    })
}

/// An event stream that sends one event (the job as jobd would) and then stays open, idle: the
/// baseline for the memory an idle watcher costs.
fn idle_event_stream() -> Response<Body> {
    let first = futures_util::stream::once(async {
        Ok::<_, std::convert::Infallible>(Bytes::from_static(b"id: 1\ndata: {}\n\n"))
    });
    let stream = first.chain(futures_util::stream::pending());
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .body(Body::from_stream(stream))
        .expect("a static response")
}
