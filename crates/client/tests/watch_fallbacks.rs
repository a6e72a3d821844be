//! The waiter and the watch against small stand-in servers that lack jobd's features or
//! misbehave: no event stream and no long poll (the waiter falls back to polling), a `429` with
//! `Retry-After` (waited out), and an event stream that ends early or answers `503` (the watch
//! reconnects with `Last-Event-ID` and loses nothing).

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::StreamExt;
use jobd_client::{Client, Credentials, JobStatus};
use serde_json::{json, Value};

const PROJECT: &str = "p1";
const JOB: &str = "job-1";

fn job(status: &str, version: i64) -> Value {
    json!({"job_id": JOB, "project_id": PROJECT, "service": "elb", "job_type": "UPGRADE", "status": status,
           "created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-01T00:00:00Z", "version": version,
           "sub_jobs": []})
}

/// What the stand-in server was asked, in order.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    fn push(&self, entry: String) -> usize {
        let mut entries = self.0.lock().unwrap();
        entries.push(entry);
        entries.len() - 1
    }

    fn entries(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    fn count(&self, prefix: &str) -> usize {
        self.entries().iter().filter(|e| e.starts_with(prefix)).count()
    }
}

async fn serve(router: Router) -> Client {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    Client::new(&endpoint, Credentials::new("AK", "SK")).unwrap()
}

fn error(status: StatusCode, code: &str, retry_after: Option<&str>) -> Response {
    let body = Json(json!({"error_code": code, "error_msg": "stand-in"}));
    match retry_after {
        Some(seconds) => (status, [("retry-after", seconds)], body).into_response(),
        None => (status, body).into_response(),
    }
}

#[tokio::test]
async fn without_events_or_long_polls_the_waiter_polls_and_waits_out_a_429() {
    let log = Log::default();
    let router = Router::new()
        .route(
            "/v1/p1/jobs/job-1/events",
            get(|State(log): State<Log>| async move {
                log.push("events".to_owned());
                error(StatusCode::NOT_FOUND, "APIGW.0101", None)
            }),
        )
        .route(
            "/v1/p1/jobs/job-1",
            get(|State(log): State<Log>, RawQuery(query): RawQuery| async move {
                let long_poll = query.is_some_and(|q| q.contains("wait_seconds"));
                let n = log.count("get");
                log.push(format!("get{}", if long_poll { " long-poll" } else { "" }));
                match n {
                    1 => error(StatusCode::TOO_MANY_REQUESTS, "APIGW.0308", Some("1")),
                    // This server ignores wait_seconds: it answers at once, unchanged.
                    0 | 2 | 3 => Json(json!({"job": job("RUNNING", 1)})).into_response(),
                    _ => Json(json!({"job": job("SUCCEEDED", 2)})).into_response(),
                }
            }),
        )
        .with_state(log.clone());
    let client = serve(router).await;

    let started = Instant::now();
    let done = client.wait_for(PROJECT, JOB, Duration::from_secs(20)).await.unwrap();
    assert_eq!((done.status, done.version), (JobStatus::Succeeded, 2));
    assert!(started.elapsed() >= Duration::from_secs(1), "the 429's Retry-After was waited out");
    assert_eq!(
        log.entries(),
        ["events", "get", "get long-poll", "get long-poll", "get", "get"],
        "events refused → long poll (429, then an answer that was not held) → plain polls"
    );
}

#[tokio::test]
async fn a_stream_that_ends_early_or_answers_503_is_resumed_without_loss() {
    let log = Log::default();
    let router = Router::new()
        .route(
            "/v1/p1/jobs/job-1/events",
            get(|State(log): State<Log>, headers: HeaderMap| async move {
                let last_event_id = headers.get("last-event-id").map(|v| v.to_str().unwrap().to_owned());
                let n = log.push(format!("events after {}", last_event_id.as_deref().unwrap_or("-")));
                let events: Vec<Value> = match n {
                    // The first connection shows version 1, then ends before the job does.
                    0 => vec![job("RUNNING", 1)],
                    // Then the server is briefly unavailable.
                    2 => return error(StatusCode::SERVICE_UNAVAILABLE, "JOBD.UNAVAILABLE", Some("1")),
                    // The resumed stream repeats nothing older than Last-Event-ID.
                    _ => vec![job("RUNNING", 2), job("SUCCEEDED", 3)],
                };
                let events = events.into_iter().map(|job| {
                    let version = job["version"].to_string();
                    Ok::<_, Infallible>(Event::default().event("job").id(version).data(job.to_string()))
                });
                Sse::new(futures_util::stream::iter(events)).into_response()
            }),
        )
        .route(
            "/v1/p1/jobs/job-1",
            get(|State(log): State<Log>| async move {
                log.push("get".to_owned());
                Json(json!({"job": job("RUNNING", 1)}))
            }),
        )
        .with_state(log.clone());
    let client = serve(router).await;

    let started = Instant::now();
    let states: Vec<_> = client.watch(PROJECT, JOB).collect().await;
    let versions: Vec<i64> = states.into_iter().map(|job| job.unwrap().version).collect();
    assert_eq!(versions, [1, 2, 3], "every version once, in order");
    assert_eq!(
        log.entries(),
        ["events after -", "get", "events after 1", "events after 1"],
        "an early end is checked with one read, then the stream is resumed after version 1 (through a 503)"
    );
    assert!(started.elapsed() >= Duration::from_secs(1), "the 503's Retry-After was waited out");
}

#[tokio::test]
async fn an_unknown_job_or_refused_key_ends_the_watch_at_once() {
    let router = Router::new()
        .route("/v1/p1/jobs/job-1/events", get(|| async { error(StatusCode::UNAUTHORIZED, "APIGW.0301", None) }));
    let client = serve(router).await;
    let started = Instant::now();
    let states: Vec<_> = client.watch(PROJECT, JOB).collect().await;
    assert_eq!(states.len(), 1);
    assert!(states[0].as_ref().unwrap_err().is_unauthorized());
    let waited = client.wait_for(PROJECT, JOB, Duration::from_secs(20)).await.unwrap_err();
    assert!(matches!(&waited, jobd_client::WaitError::Api(e) if e.is_unauthorized()), "{waited:?}");
    assert!(started.elapsed() < Duration::from_secs(2), "no retries of a refusal");
}
