//! The real `jobd` binary on a real socket: serve, sign, create, watch the simulator finish a job,
//! and keep every acknowledged job across a clean restart and across `kill -9`.

mod support;

use serde_json::{json, Value};
use support::{Server, PROJECT};

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
