//! Shared by the binary tests: start the real `jobd` binary and talk to it with signed requests.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderValue};
use jobd_auth::Signer;
use serde_json::Value;

pub const ACCESS_KEY: &str = "BINARYTESTAK";
pub const SECRET_KEY: &str = "binary-test-secret";
pub const PROJECT: &str = "fedcba9876543210fedcba9876543210";

pub struct Server {
    child: Child,
    pub base: String,
    pub port: u16,
    http: reqwest::Client,
}

impl Server {
    pub fn start(data_dir: &Path) -> Server {
        Self::start_on(data_dir, TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port())
    }

    /// Starts jobd on a given port (to restart it where its clients expect it).
    pub fn start_on(data_dir: &Path, port: u16) -> Server {
        let child = Command::new(env!("CARGO_BIN_EXE_jobd"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(data_dir)
            .env("JOBD_ROOT_ACCESS_KEY", ACCESS_KEY)
            .env("JOBD_ROOT_SECRET_KEY", SECRET_KEY)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the jobd binary starts");
        Server { child, base: format!("http://127.0.0.1:{port}"), port, http: reqwest::Client::new() }
    }

    pub async fn wait_healthy(&self) {
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

    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.endpoint().call(method, path, body).await.expect("jobd answers")
    }

    /// A handle that outlives this process: it keeps calling the same address across restarts.
    pub fn endpoint(&self) -> Endpoint {
        Endpoint { base: self.base.clone(), http: self.http.clone() }
    }

    pub async fn job(&self, job_id: &str) -> Value {
        let (status, body) = self.call("GET", &format!("/v1/{PROJECT}/jobs/{job_id}"), None).await;
        assert_eq!(status, 200, "{body}");
        body["job"].clone()
    }

    pub async fn wait_for_status(&self, job_id: &str, wanted: &str) -> Value {
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

    pub fn stop(mut self, signal: &str) {
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

/// Signed calls to a jobd address; transport errors are returned, not fatal (jobd may be down).
#[derive(Clone)]
pub struct Endpoint {
    pub base: String,
    http: reqwest::Client,
}

impl Endpoint {
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<(u16, Value), reqwest::Error> {
        let body = body.map(|b| serde_json::to_vec(&b).unwrap()).unwrap_or_default();
        let mut headers = HeaderMap::new();
        let host = self.base.trim_start_matches("http://").to_owned();
        headers.insert("host", HeaderValue::from_str(&host).unwrap());
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        let (raw_path, raw_query) = match path.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path, None),
        };
        Signer::new(ACCESS_KEY, SECRET_KEY)
            .sign(method, raw_path, raw_query, &mut headers, &body, chrono::Utc::now())
            .unwrap();
        let request = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .headers(headers)
            .timeout(Duration::from_secs(30))
            .body(body)
            .build()
            .unwrap();
        let response = self.http.execute(request).await?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await?;
        let value = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::Null) };
        Ok((status, value))
    }
}
