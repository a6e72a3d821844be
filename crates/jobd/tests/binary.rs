//! The real `jobd` binary on a real socket: serve, sign, create, watch the simulator finish a job,
//! and keep every acknowledged job across a clean restart and across `kill -9`.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderValue};
use jobd_auth::Signer;
use serde_json::{json, Value};

const ACCESS_KEY: &str = "BINARYTESTAK";
const SECRET_KEY: &str = "binary-test-secret";
const PROJECT: &str = "fedcba9876543210fedcba9876543210";

struct Server {
    child: Child,
    base: String,
    http: reqwest::Client,
}

impl Server {
    fn start(data_dir: &Path) -> Server {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(env!("CARGO_BIN_EXE_jobd"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(data_dir)
            .env("JOBD_ROOT_ACCESS_KEY", ACCESS_KEY)
            .env("JOBD_ROOT_SECRET_KEY", SECRET_KEY)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the jobd binary starts");
        Server { child, base: format!("http://127.0.0.1:{port}"), http: reqwest::Client::new() }
    }

    async fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(r) = self.http.get(format!("{}/healthz", self.base)).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("jobd did not become healthy");
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let body = body.map(|b| serde_json::to_vec(&b).unwrap()).unwrap_or_default();
        let mut headers = HeaderMap::new();
        let host = self.base.trim_start_matches("http://").to_owned();
        headers.insert("host", HeaderValue::from_str(&host).unwrap());
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        Signer::new(ACCESS_KEY, SECRET_KEY).sign(method, path, None, &mut headers, &body, chrono::Utc::now()).unwrap();
        let request = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .headers(headers)
            .body(body)
            .build()
            .unwrap();
        let response = self.http.execute(request).await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    async fn job(&self, job_id: &str) -> Value {
        let (status, body) = self.call("GET", &format!("/v1/{PROJECT}/jobs/{job_id}"), None).await;
        assert_eq!(status, 200, "{body}");
        body["job"].clone()
    }

    async fn wait_for_status(&self, job_id: &str, wanted: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let job = self.job(job_id).await;
            if job["status"] == wanted {
                return job;
            }
            assert!(Instant::now() < deadline, "job {job_id} never reached {wanted}: {job}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn stop(mut self, signal: &str) {
        Command::new("kill").args([signal, &self.child.id().to_string()]).status().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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
