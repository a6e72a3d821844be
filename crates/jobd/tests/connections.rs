//! Connection limits and timeouts of the real binary on real sockets (issue #16, item 4): a
//! half-sent head and an idle keep-alive connection are closed, a half-sent body is answered
//! `408`, long polls outlive the idle timeout, and past the connection cap `/healthz` still answers
//! while everything else is `503` with `Retry-After`.

use std::time::{Duration, Instant};

use jobd_test_support::server::{Launch, Server, PROJECT};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn launch(flags: &[(&str, &str)]) -> Launch {
    flags.iter().fold(Launch::default(), |launch, (flag, value)| launch.arg(*flag).arg(*value))
}

/// Reads until the peer closes (or `within` passes: `None`), answering everything read.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut read = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let mut buffer = [0u8; 4096];
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(read),
            Ok(Ok(n)) => read.extend_from_slice(&buffer[..n]),
        }
    }
}

/// Reads one response head and its `Content-Length` body.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut read = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer))
            .await
            .expect("an answer within 5 s")
            .unwrap();
        assert!(n > 0, "closed before answering: {}", String::from_utf8_lossy(&read));
        read.extend_from_slice(&buffer[..n]);
        let text = String::from_utf8_lossy(&read).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length: ").map(|v| v.trim().to_owned()))
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if body.len() >= length {
                return text;
            }
        }
    }
}

#[tokio::test]
async fn half_sent_heads_and_idle_connections_are_closed_and_half_sent_bodies_answered_408() {
    let dir = tempfile::tempdir().unwrap();
    let flags =
        [("--header-read-timeout-seconds", "1"), ("--idle-timeout-seconds", "2"), ("--body-read-timeout-seconds", "1")];
    let server = Server::start_with(dir.path(), 0, &launch(&flags));
    server.wait_healthy().await;
    let address = format!("127.0.0.1:{}", server.port);

    // A head that never ends.
    let mut half_head = TcpStream::connect(&address).await.unwrap();
    half_head.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.unwrap();
    let started = Instant::now();
    let closed = read_until_closed(&mut half_head, Duration::from_secs(5)).await;
    assert!(closed.is_some(), "a half-sent head is still open after 5 s");
    assert!(started.elapsed() >= Duration::from_millis(900), "closed early: {:?}", started.elapsed());

    // A connection that says nothing at all.
    let mut silent = TcpStream::connect(&address).await.unwrap();
    assert!(read_until_closed(&mut silent, Duration::from_secs(5)).await.is_some(), "a silent connection stays open");

    // Keep-alive: one request, then idle. Open past the header timeout, closed by the idle one.
    let mut idle = TcpStream::connect(&address).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let answer = read_response(&mut idle).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let idle_since = Instant::now();
    let closed = read_until_closed(&mut idle, Duration::from_secs(6)).await;
    assert!(closed.is_some(), "an idle keep-alive connection is still open after 6 s");
    let waited = idle_since.elapsed();
    assert!(waited >= Duration::from_millis(1_800), "the idle timeout is 2 s, closed after {waited:?}");

    // A body that never ends: 408 in the error shape, with a request id.
    let mut half_body = TcpStream::connect(&address).await.unwrap();
    let head =
        "POST /v3/auth/tokens HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n";
    half_body.write_all(head.as_bytes()).await.unwrap();
    half_body.write_all(b"{\"auth\":").await.unwrap();
    let answer = read_response(&mut half_body).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("x-request-id: "), "{answer}");
    let body: Value = serde_json::from_str(answer.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert_eq!(body["error_code"], "APIGW.0201", "{body}");

    // A long poll outlives the idle and header timeouts: it is a request in flight.
    let (status, created) =
        server.call("POST", &format!("/v1/{PROJECT}/jobs"), Some(json!({"service": "cfw", "job_type": "T"}))).await;
    assert_eq!(status, 201, "{created}");
    let job_id = created["job"]["job_id"].as_str().unwrap();
    let started = Instant::now();
    let (status, _) = server.call("GET", &format!("/v1/{PROJECT}/jobs/{job_id}?wait_seconds=3&version=1"), None).await;
    assert_eq!(status, 200);
    assert!(started.elapsed() >= Duration::from_millis(2_900), "the long poll was cut: {:?}", started.elapsed());
    // And an event stream delivers its first event past them too.
    let stream = server.endpoint().open_stream(&format!("/v1/{PROJECT}/jobs/{job_id}/events")).await.unwrap();
    assert_eq!(stream.status(), 200);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (status, _) = server.call("POST", &format!("/v1/{PROJECT}/jobs/{job_id}/cancel"), None).await;
    assert_eq!(status, 200);
    let events = tokio::time::timeout(Duration::from_secs(5), stream.text()).await.expect("the stream ends").unwrap();
    assert!(events.contains("CANCELLED"), "{events}");
}

#[tokio::test]
async fn past_the_connection_cap_healthz_answers_and_the_rest_is_503() {
    let dir = tempfile::tempdir().unwrap();
    let flags = [("--max-connections", "20"), ("--header-read-timeout-seconds", "30")];
    let server = Server::start_with(dir.path(), 0, &launch(&flags));
    server.wait_healthy().await;
    let address = format!("127.0.0.1:{}", server.port);

    // The cap's worth of idle sockets, then 100 more (the overflow holds 256, for a second each).
    let mut idle = Vec::new();
    for _ in 0..120 {
        idle.push(TcpStream::connect(&address).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;

    let started = Instant::now();
    let mut probe = TcpStream::connect(&address).await.unwrap();
    probe.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(3), probe.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer).to_string();
    assert!(read.is_ok(), "no answer within 3 s past the cap");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(2));

    let mut probe = TcpStream::connect(&address).await.unwrap();
    probe.write_all(format!("GET /v3/{PROJECT}/elb/jobs HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(3), probe.read_to_end(&mut answer)).await.expect("answered").unwrap();
    let answer = String::from_utf8_lossy(&answer).to_string();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("retry-after: "), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("x-request-id: "), "{answer}");
    let body: Value = serde_json::from_str(answer.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert_eq!(body["error_code"], "JOBD.UNAVAILABLE", "{body}");

    // Past the overflow too, a connection is closed as soon as it is accepted: refused, quickly.
    let flood: Vec<TcpStream> = futures_util::future::join_all((0..600).map(|_| TcpStream::connect(&address)))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let outcomes = futures_util::future::join_all(
        flood
            .into_iter()
            .map(|mut stream| async move { read_until_closed(&mut stream, Duration::from_millis(700)).await }),
    )
    .await;
    let refused = outcomes.iter().filter(|outcome| outcome.as_deref() == Some(&b""[..])).count();
    assert!(refused >= 100, "only {refused} of 600 connections past the overflow were closed within 0.7 s");

    // Once the flood goes, everything answers again.
    drop(idle);
    let deadline = Instant::now() + Duration::from_secs(5);
    let answer = loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        match server.endpoint().call("GET", &format!("/v3/{PROJECT}/elb/jobs"), None).await {
            Ok((200, _)) => break Ok(()),
            other if Instant::now() > deadline => break Err(format!("{other:?}")),
            _ => {}
        }
    };
    answer.expect("answered 200 within 5 s of the flood's end");
}

/// Sends raw bytes and reads the whole answer (the connection closes after it).
async fn raw_exchange(address: &str, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(address).await.unwrap();
    let _ = stream.write_all(request).await;
    let answer = read_until_closed(&mut stream, Duration::from_secs(5)).await.expect("answered and closed");
    String::from_utf8_lossy(&answer).to_string()
}

#[tokio::test]
async fn requests_the_http_parser_refuses_get_the_error_shape_a_request_id_and_a_log_line() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    server.wait_healthy().await;
    let address = format!("127.0.0.1:{}", server.port);
    let long_uri = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(70_000));
    let big_header = format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "b".repeat(500_000));
    let cases: [(&[u8], u16); 3] =
        [(b"NOT A REQUEST\r\n\r\n", 400), (long_uri.as_bytes(), 414), (big_header.as_bytes(), 431)];
    for (request, status) in cases {
        let answer = raw_exchange(&address, request).await;
        assert!(answer.starts_with(&format!("HTTP/1.1 {status} ")), "{status}: {answer}");
        let lower = answer.to_ascii_lowercase();
        assert!(lower.contains("content-type: application/json"), "{answer}");
        let request_id = lower
            .lines()
            .find_map(|line| line.strip_prefix("x-request-id: ").map(str::to_owned))
            .unwrap_or_else(|| panic!("no request id: {answer}"));
        let body: Value = serde_json::from_str(answer.split_once("\r\n\r\n").unwrap().1).unwrap();
        assert_eq!(body["error_code"], "APIGW.0201", "{body}");
        assert_eq!(body["request_id"].as_str(), Some(request_id.trim()), "{body}");
        let log = server.log();
        assert!(log.contains(request_id.trim()), "the refusal is logged with its request id");
    }
    // A normal request on a kept-alive connection is untouched, answer after answer.
    let mut stream = TcpStream::connect(&address).await.unwrap();
    for _ in 0..3 {
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let answer = read_response(&mut stream).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("{\"status\":\"ok\"}"), "{answer}");
    }
}
