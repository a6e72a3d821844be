//! Watching on a real socket: long poll, server-sent events (every version in order, resume with
//! Last-Event-ID, disconnect frees the server side), the project stream, and `X-Jobd-Wait`.

mod common;

use std::time::{Duration, Instant};

use common::{TestApp, PROJECT};
use http::Method;
use jobd_core::{JobEvent, JobId, ProjectId};
use serde_json::{json, Value};

struct Live {
    app: TestApp,
    base: String,
    host: String,
    http: reqwest::Client,
}

async fn live() -> Live {
    let app = TestApp::new().await;
    let base = app.serve().await;
    let host = base.trim_start_matches("http://").to_owned();
    Live { app, base, host, http: reqwest::Client::new() }
}

impl Live {
    fn get(&self, uri: &str) -> reqwest::RequestBuilder {
        let headers = self.app.root_headers(&self.host, &Method::GET, uri, b"");
        self.http.get(format!("{}{uri}", self.base)).headers(headers)
    }

    async fn record(&self, job_id: &str, event: JobEvent) {
        let project = ProjectId::parse(PROJECT).unwrap();
        self.app.service.record(&project, &JobId::parse(job_id).unwrap(), event).await.unwrap();
    }
}

fn progress(n: usize) -> JobEvent {
    JobEvent::Progress { message: format!("step {n}") }
}

/// Reads server-sent events until the stream ends or `limit` events arrived: (id, data) pairs.
async fn read_events(response: reqwest::Response, limit: usize) -> Vec<(String, Value)> {
    let mut events = Vec::new();
    let mut buffer = String::new();
    let mut response = response;
    while events.len() < limit {
        let Ok(Some(chunk)) = response.chunk().await else { break };
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let (mut id, mut data) = (String::new(), String::new());
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = v.trim().to_owned();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim());
                }
            }
            if !data.is_empty() {
                events.push((id, serde_json::from_str(&data).unwrap()));
            }
        }
    }
    events
}

#[tokio::test]
async fn a_long_poll_answers_as_soon_as_the_version_moves() {
    let live = live().await;
    let job = live.app.create(json!({"service": "cfw", "job_type": "T"})).await;
    let id = job["job_id"].as_str().unwrap().to_owned();
    let version = job["version"].as_i64().unwrap();

    let started = Instant::now();
    let immediate = live.get(&format!("/v1/{PROJECT}/jobs/{id}?wait_seconds=30")).send().await.unwrap();
    assert_eq!(immediate.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(5), "without a version a GET answers at once");

    let waiting = tokio::spawn(live.get(&format!("/v1/{PROJECT}/jobs/{id}?wait_seconds=30&version={version}")).send());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiting.is_finished(), "it waits for a change");
    live.record(&id, JobEvent::Start { message: Some("go".into()) }).await;
    let answer: Value =
        tokio::time::timeout(Duration::from_secs(10), waiting).await.unwrap().unwrap().unwrap().json().await.unwrap();
    assert_eq!(answer["job"]["version"], version + 1);
    assert_eq!(answer["job"]["status"], "RUNNING");

    let started = Instant::now();
    let unchanged: Value = live
        .get(&format!("/v1/{PROJECT}/jobs/{id}?wait_seconds=1&version={}", version + 1))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(unchanged["job"]["version"], version + 1);
    assert!(started.elapsed() >= Duration::from_millis(900), "it waited out the wait");
    assert_eq!(
        live.get(&format!("/v1/{PROJECT}/jobs/{id}?wait_seconds=61&version=1")).send().await.unwrap().status(),
        400
    );
}

#[tokio::test]
async fn sse_streams_every_version_in_order_and_ends_at_the_terminal_one() {
    let live = live().await;
    let job = live
        .app
        .create(json!({"service": "elb", "job_type": "UPGRADE", "sub_jobs": [{"job_type": "A"}, {"job_type": "B"}]}))
        .await;
    let id = job["job_id"].as_str().unwrap().to_owned();
    let subs: Vec<String> =
        job["sub_jobs"].as_array().unwrap().iter().map(|s| s["job_id"].as_str().unwrap().to_owned()).collect();
    let response = live.get(&format!("/v1/{PROJECT}/jobs/{id}/events")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let reader = tokio::spawn(read_events(response, 100));
    tokio::time::sleep(Duration::from_millis(100)).await;
    live.record(&subs[0], JobEvent::Start { message: None }).await;
    for n in 0..3 {
        live.record(&subs[0], progress(n)).await;
    }
    live.record(&subs[0], JobEvent::Succeed { result: None, message: None }).await;
    live.record(&subs[1], JobEvent::Succeed { result: None, message: None }).await;
    let events = tokio::time::timeout(Duration::from_secs(10), reader).await.expect("the stream ends").unwrap();
    let versions: Vec<i64> = events.iter().map(|(id, _)| id.parse().unwrap()).collect();
    assert_eq!(versions, (1..=7).collect::<Vec<_>>(), "the current state, then every version in order");
    assert_eq!(events[0].1["status"], "PENDING");
    assert_eq!(events.last().unwrap().1["status"], "SUCCEEDED");
    assert_eq!(events.last().unwrap().1["sub_jobs"].as_array().unwrap().len(), 2, "data is the whole job");
}

#[tokio::test]
async fn last_event_id_resumes_without_loss_and_a_disconnect_frees_the_server() {
    let live = live().await;
    let job = live.app.create(json!({"service": "cfw", "job_type": "T"})).await;
    let id = job["job_id"].as_str().unwrap().to_owned();
    live.record(&id, progress(1)).await; // version 2

    let first = live.get(&format!("/v1/{PROJECT}/jobs/{id}/events")).send().await.unwrap();
    assert_eq!(live.app.service.watched_trees(), 1);
    let seen = read_events(first, 1).await; // took version 2, then the client goes away
    assert_eq!(seen[0].0, "2");
    let deadline = Instant::now() + Duration::from_secs(10);
    while live.app.service.watched_trees() != 0 {
        assert!(Instant::now() < deadline, "the server let go of the watch");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    live.record(&id, progress(2)).await; // version 3, while disconnected
    let resumed =
        live.get(&format!("/v1/{PROJECT}/jobs/{id}/events")).header("Last-Event-ID", "2").send().await.unwrap();
    let reader = tokio::spawn(read_events(resumed, 3));
    tokio::time::sleep(Duration::from_millis(100)).await;
    live.record(&id, JobEvent::Succeed { result: None, message: None }).await; // version 4
    let events = tokio::time::timeout(Duration::from_secs(10), reader).await.unwrap().unwrap();
    let ids: Vec<&str> = events.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, vec!["3", "4"], "the missed version first, then the rest");

    let done = live.get(&format!("/v1/{PROJECT}/jobs/{id}/events")).header("Last-Event-ID", "4").send().await.unwrap();
    assert!(tokio::time::timeout(Duration::from_secs(5), read_events(done, 10)).await.unwrap().is_empty());
}

#[tokio::test]
async fn the_project_stream_and_dialect_waits() {
    let live = live().await;
    let stream = live.get(&format!("/v1/{PROJECT}/events?service=cfw")).send().await.unwrap();
    let reader = tokio::spawn(read_events(stream, 2));
    tokio::time::sleep(Duration::from_millis(100)).await;
    live.app.create(json!({"service": "elb", "job_type": "T"})).await;
    let job = live.app.create(json!({"service": "cfw", "job_type": "T"})).await;
    let id = job["job_id"].as_str().unwrap().to_owned();
    live.record(&id, progress(1)).await;
    let events = tokio::time::timeout(Duration::from_secs(10), reader).await.unwrap().unwrap();
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|(_, job)| job["service"] == "cfw"), "filtered by service");
    assert_eq!(events[1].0, format!("{id}:2"));

    // A CFW poller holds its GET until the job ends.
    let waiting = tokio::spawn(live.get(&format!("/v3/{PROJECT}/jobs/{id}")).header("X-Jobd-Wait", "20").send());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiting.is_finished());
    live.record(&id, JobEvent::Succeed { result: None, message: None }).await;
    let answer: Value =
        tokio::time::timeout(Duration::from_secs(10), waiting).await.unwrap().unwrap().unwrap().json().await.unwrap();
    assert_eq!(answer["data"]["status"], "Success");
    let bad = live.get(&format!("/v3/{PROJECT}/elb/jobs/{id}?wait_seconds=99")).send().await.unwrap();
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn a_revoked_token_ends_its_open_stream() {
    let live = live().await;
    let identity = &live.app.identity;
    let project = identity.create_project("streams").await.unwrap();
    identity
        .create_user("sam", "acme", "a long password", &project.id, jobd_auth::identity::Role::Reader, &[])
        .await
        .unwrap();
    let issued = identity
        .issue_token("acme", "sam", "a long password", jobd_service::identity::ProjectSelector::Id(project.id.clone()))
        .await
        .unwrap();
    let created = live
        .app
        .signed(Method::POST, &format!("/v1/{}/jobs", project.id), Some(json!({"service": "cfw", "job_type": "T"})))
        .await;
    let id = created.body["job"]["job_id"].as_str().unwrap().to_owned();
    let response = live
        .http
        .get(format!("{}/v1/{}/jobs/{id}/events", live.base, project.id))
        .header("X-Auth-Token", &issued.token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let reader = tokio::spawn(read_events(response, 10));
    tokio::time::sleep(Duration::from_millis(100)).await;
    identity.revoke_token(&issued.token).await.unwrap();
    let project_id = ProjectId::parse(&project.id).unwrap();
    live.app.service.record(&project_id, &JobId::parse(&id).unwrap(), progress(1)).await.unwrap();
    let events = tokio::time::timeout(Duration::from_secs(10), reader).await.expect("the stream ended").unwrap();
    assert_eq!(events.len(), 1, "only the state before the revocation was sent");
}
