//! The real `jobd` binary on a real socket: serve, sign, create, watch the simulator finish a job,
//! and keep every acknowledged job across a clean restart and across `kill -9`.

use std::time::Duration;

use jobd_test_support::server::{Server, PROJECT};
use serde_json::{json, Value};

fn simulated(duration_ms: u64) -> Value {
    json!({"service": "cfw", "job_type": "CreateFirewall",
           "simulate": {"duration_ms": duration_ms, "outcome": "success", "messages": ["a", "b"]}})
}

#[tokio::test]
async fn jobs_survive_a_clean_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    server.wait_healthy().await;
    let (status, created) = server.call("POST", &format!("/v1/{PROJECT}/jobs"), Some(simulated(100))).await;
    assert_eq!(status, 201, "{created}");
    let job_id = created["job"]["job_id"].as_str().unwrap().to_owned();
    let done = server.wait_for_status(&job_id, "SUCCEEDED").await;
    assert_eq!(done["message"], "b");
    server.stop("-TERM");

    let server = Server::start(dir.path());
    server.wait_healthy().await;
    assert_eq!(server.job(&job_id).await, done, "the finished job reads back unchanged");
}

#[tokio::test]
async fn acknowledged_jobs_survive_kill_9_and_resume() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    server.wait_healthy().await;
    let mut ids = Vec::new();
    for _ in 0..20 {
        let (status, created) = server.call("POST", &format!("/v1/{PROJECT}/jobs"), Some(simulated(1_500))).await;
        assert_eq!(status, 201);
        ids.push(created["job"]["job_id"].as_str().unwrap().to_owned());
    }
    server.wait_for_status(&ids[0], "RUNNING").await;
    server.stop("-KILL");

    let server = Server::start(dir.path());
    server.wait_healthy().await;
    for id in &ids {
        let job = server.wait_for_status(id, "SUCCEEDED").await;
        assert_eq!(job["message"], "b", "the simulator resumed {id} after the crash");
    }
    println!("{} acknowledged jobs all finished after kill -9", ids.len());
}

#[tokio::test]
async fn sigterm_ends_streams_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    server.wait_healthy().await;
    let (status, created) =
        server.call("POST", &format!("/v1/{PROJECT}/jobs"), Some(json!({"service": "cfw", "job_type": "T"}))).await;
    assert_eq!(status, 201);
    let job_id = created["job"]["job_id"].as_str().unwrap().to_owned();
    // A watcher on a job that will not end, and a long poll.
    let endpoint = server.endpoint();
    let stream = endpoint.open_stream(&format!("/v1/{PROJECT}/jobs/{job_id}/events")).await.unwrap();
    let poll = {
        let endpoint = endpoint.clone();
        let path = format!("/v1/{PROJECT}/jobs/{job_id}?wait_seconds=60&version=1");
        tokio::spawn(async move { endpoint.call("GET", &path, None).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;

    let exit = tokio::task::spawn_blocking(move || server.terminate(Duration::from_secs(10))).await.unwrap();
    let exit = exit.expect("jobd stops within seconds, open streams or not");
    assert!(exit.success(), "a clean exit: {exit:?}");
    let (status, _) = poll.await.unwrap().expect("the long poll was answered before the exit");
    assert_eq!(status, 200);
    let rest = tokio::time::timeout(Duration::from_secs(5), stream.bytes()).await.expect("the stream ended");
    assert!(rest.is_ok(), "the stream ended cleanly");
}
