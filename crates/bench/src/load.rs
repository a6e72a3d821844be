//! A closed-loop HTTP/1.1 load generator: N keep-alive connections, each sending its next request
//! as soon as the previous answer is read, cycling through pre-built (pre-signed) requests.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::stats::Latencies;

/// One request to replay: method, path with query, headers (signature included), body.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub method: Method,
    pub path_and_query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

#[derive(Debug, Default)]
pub struct LoadResult {
    pub requests: u64,
    /// Answers other than 2xx, and transport errors.
    pub errors: u64,
    pub elapsed: Duration,
    pub latencies: Latencies,
    /// The first unexpected answer, for the report.
    pub first_error: Option<String>,
}

impl LoadResult {
    pub fn requests_per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
}

/// Runs `connections` closed loops against `addr` for `warmup` (not counted) then `measure`.
pub async fn run(
    addr: &str,
    requests: Arc<Vec<Prepared>>,
    connections: usize,
    warmup: Duration,
    measure: Duration,
) -> anyhow::Result<LoadResult> {
    let start = Instant::now() + Duration::from_millis(50);
    let measure_from = start + warmup;
    let end = measure_from + measure;
    let mut tasks = Vec::with_capacity(connections);
    for index in 0..connections {
        let stream = TcpStream::connect(addr).await.with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        let requests = requests.clone();
        tasks.push(tokio::spawn(connection_loop(sender, requests, index, start, measure_from, end)));
    }
    let mut total = LoadResult { elapsed: measure, ..LoadResult::default() };
    for task in tasks {
        let part = task.await??;
        total.requests += part.requests;
        total.errors += part.errors;
        total.latencies.merge(part.latencies);
        if total.first_error.is_none() {
            total.first_error = part.first_error;
        }
    }
    Ok(total)
}

async fn connection_loop(
    mut sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    requests: Arc<Vec<Prepared>>,
    offset: usize,
    start: Instant,
    measure_from: Instant,
    end: Instant,
) -> anyhow::Result<LoadResult> {
    tokio::time::sleep_until(start.into()).await;
    let mut result = LoadResult { latencies: Latencies::with_capacity(64 * 1024), ..LoadResult::default() };
    // Spread the connections over the request list so they do not all read the same job.
    let mut next = offset.wrapping_mul(7919) % requests.len().max(1);
    loop {
        let sent = Instant::now();
        if sent >= end {
            break;
        }
        let prepared = &requests[next];
        next = (next + 1) % requests.len();
        let mut request = Request::builder()
            .method(prepared.method.clone())
            .uri(prepared.path_and_query.as_str())
            .body(Full::new(prepared.body.clone()))?;
        *request.headers_mut() = prepared.headers.clone();
        sender.ready().await?;
        let outcome = match sender.send_request(request).await {
            Ok(response) => {
                let status = response.status();
                let body = response.into_body().collect().await?.to_bytes();
                if status.is_success() {
                    Ok(())
                } else {
                    Err(format!("{status}: {}", String::from_utf8_lossy(&body)))
                }
            }
            Err(error) => Err(error.to_string()),
        };
        if sent >= measure_from {
            result.requests += 1;
            result.latencies.record(sent.elapsed());
            if let Err(error) = outcome {
                result.errors += 1;
                result.first_error.get_or_insert(error);
            }
        }
    }
    Ok(result)
}
