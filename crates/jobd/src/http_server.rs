//! The accept loop of `jobd serve`: a cap on open connections, a header-read and an idle timeout
//! per connection, and graceful shutdown — hyper's HTTP/1 server under axum's router.
//!
//! - A connection must deliver a complete request head within `header_read_timeout` of being
//!   accepted, or of sending the first byte of its next request; a keep-alive connection with no
//!   request in flight is closed after `idle_timeout`. While a request is in flight (a long poll,
//!   an event stream, a body being read — its own deadline is `ApiConfig::body_read_timeout`)
//!   neither applies.
//! - At most `max_connections` are served at once. Past the cap, up to `OVERFLOW_CONNECTIONS` more
//!   are answered by the overflow app (`/healthz` 200, anything else `503` with `Retry-After`,
//!   then closed; one second to send the head); past those, a connection is closed as soon as it
//!   is accepted. Either way the listen backlog keeps moving, so nobody waits on a full queue.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;
use tower::Service;

/// Connections answered by the overflow app beyond `max_connections`.
pub const OVERFLOW_CONNECTIONS: usize = 256;
/// How long an overflow connection may take to send its request head.
const OVERFLOW_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(1);
/// File descriptors kept back from connections for the store, logs and the listener.
pub const RESERVED_FILE_DESCRIPTORS: u64 = 512;

/// The defaults of `--max-connections`, `--header-read-timeout-seconds`, `--idle-timeout-seconds`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
pub const DEFAULT_HEADER_READ_TIMEOUT_SECONDS: u64 = 10;
pub const DEFAULT_IDLE_TIMEOUT_SECONDS: u64 = 60;

/// Connection limits and timeouts (see the module comment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            header_read_timeout: Duration::from_secs(DEFAULT_HEADER_READ_TIMEOUT_SECONDS),
            idle_timeout: Duration::from_secs(DEFAULT_IDLE_TIMEOUT_SECONDS),
        }
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and answers the soft limit now in force
/// (`None` where the platform has no such limit).
pub fn raise_file_descriptor_limit() -> Option<u64> {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => Some(limit),
        Err(error) => {
            tracing::warn!(%error, "could not raise the open file limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE).ok().map(|(soft, _)| soft)
        }
    }
}

/// The connection cap that fits the open file limit: `configured`, or fewer when the limit
/// cannot hold them beside the overflow connections and `RESERVED_FILE_DESCRIPTORS`.
pub fn fit_connection_cap(configured: usize, file_limit: Option<u64>) -> usize {
    let Some(file_limit) = file_limit else { return configured };
    let room = file_limit.saturating_sub(RESERVED_FILE_DESCRIPTORS + OVERFLOW_CONNECTIONS as u64).max(16);
    configured.min(usize::try_from(room).unwrap_or(usize::MAX))
}

/// Serves `app` on `listener` until `shutdown` completes, then waits for open connections to end
/// (they are asked to close after their current request).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    overflow_app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let overflow_slots = Arc::new(Semaphore::new(OVERFLOW_CONNECTIONS));
    let overflow_limits = ConnectionLimits {
        max_connections: OVERFLOW_CONNECTIONS,
        header_read_timeout: OVERFLOW_HEADER_READ_TIMEOUT.min(limits.header_read_timeout),
        idle_timeout: Duration::ZERO,
    };
    let (stop_sender, stop) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, mostly: wait a little rather than spin.
                    tracing::warn!(%error, "accept error");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        if let Ok(slot) = slots.clone().try_acquire_owned() {
            let connection = serve_connection(stream, peer, app.clone(), limits, true, stop.clone());
            tokio::spawn(async move {
                connection.await;
                drop(slot);
            });
        } else if let Ok(slot) = overflow_slots.clone().try_acquire_owned() {
            tracing::debug!(%peer, "over the connection cap: answered by the overflow app");
            let connection = serve_connection(stream, peer, overflow_app.clone(), overflow_limits, false, stop.clone());
            tokio::spawn(async move {
                connection.await;
                drop(slot);
            });
        } else {
            tracing::debug!(%peer, "over the connection cap and the overflow: closed");
            drop(stream);
        }
    }
    drop(listener);
    let _ = stop_sender.send(true);
    // Every connection holds a slot until it ends.
    let _all = slots.acquire_many(limits.max_connections as u32).await;
    let _all_overflow = overflow_slots.acquire_many(OVERFLOW_CONNECTIONS as u32).await;
    Ok(())
}

/// What a connection is doing, for its timeouts.
#[derive(Debug)]
struct Activity {
    in_flight: usize,
    /// When the head of the next request began (its first byte, or the accept).
    head_started: Option<Instant>,
    /// When the last request ended.
    idle_since: Instant,
    /// Responses the app has produced on this connection (each begins with a head hyper writes).
    responses: u64,
}

type SharedActivity = Arc<Mutex<Activity>>;

/// Ends one request's count when dropped (with the response body).
struct InFlight(SharedActivity);

impl InFlight {
    fn start(activity: &SharedActivity) -> Self {
        let mut state = activity.lock().expect("activity");
        state.in_flight += 1;
        state.head_started = None;
        drop(state);
        InFlight(activity.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = self.0.lock().expect("activity");
        state.in_flight -= 1;
        state.idle_since = Instant::now();
    }
}

/// When the connection's timeout next falls due, and whether it has.
fn deadline(activity: &SharedActivity, limits: &ConnectionLimits) -> (Instant, bool) {
    let state = activity.lock().expect("activity");
    let now = Instant::now();
    let due = if state.in_flight > 0 {
        return (now + limits.header_read_timeout.max(Duration::from_secs(1)), false);
    } else if let Some(started) = state.head_started {
        started + limits.header_read_timeout
    } else {
        state.idle_since + limits.idle_timeout
    };
    (due, due <= now)
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: ConnectionLimits,
    keep_alive: bool,
    mut stop: watch::Receiver<bool>,
) {
    let now = Instant::now();
    let activity =
        Arc::new(Mutex::new(Activity { in_flight: 0, head_started: Some(now), idle_since: now, responses: 0 }));
    let io = TokioIo::new(Watched::new(stream, peer, activity.clone()));
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let in_flight = InFlight::start(&activity);
            let mut app = app.clone();
            async move {
                let mut request = request.map(axum::body::Body::new);
                request.extensions_mut().insert(ConnectInfo(peer));
                let response = match app.call(request).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                };
                in_flight.0.lock().expect("activity").responses += 1;
                // The request counts until its response body is done (an event stream's end).
                Ok::<_, Infallible>(response.map(|body| {
                    axum::body::Body::new(body.map_err(move |error| {
                        let _counted = &in_flight;
                        error
                    }))
                }))
            }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    // The header and idle timeouts are this module's own (hyper's would also end idle connections).
    builder.header_read_timeout(None).keep_alive(keep_alive);
    let connection = builder.serve_connection(io, service).with_upgrades();
    tokio::pin!(connection);
    let mut stopping = *stop.borrow();
    if stopping {
        connection.as_mut().graceful_shutdown();
    }
    loop {
        let (due, expired) = deadline(&activity, &limits);
        if expired {
            let reason = if activity.lock().expect("activity").head_started.is_some() {
                "no complete request head within the header read timeout"
            } else {
                "idle past the idle timeout"
            };
            tracing::debug!(%peer, reason, "connection closed");
            return;
        }
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%peer, %error, "connection ended with an error");
                }
                return;
            }
            changed = stop.changed(), if !stopping => {
                stopping = true;
                if changed.is_err() || *stop.borrow() {
                    connection.as_mut().graceful_shutdown();
                }
            }
            () = tokio::time::sleep_until(due) => {}
        }
    }
}

/// The connection's socket, noting when the head of a request starts to arrive, and putting
/// hyper's own answers to requests it cannot parse (`400`, `414`, `431`, written with an empty
/// body before any routing) into the gateway error shape with a request id, with a log line.
///
/// Every body jobd writes is JSON or server-sent events, so a write that begins with `HTTP/1.` is
/// a response head; one more than the app has produced responses is hyper's own.
struct Watched {
    inner: TcpStream,
    peer: SocketAddr,
    activity: SharedActivity,
    heads_written: u64,
    /// Our answer in place of hyper's, and how much of it is written.
    replacement: Option<(Vec<u8>, usize)>,
    /// After the replacement: the rest of hyper's answer is dropped (the connection closes).
    swallowing: bool,
}

impl Watched {
    fn new(inner: TcpStream, peer: SocketAddr, activity: SharedActivity) -> Self {
        Watched { inner, peer, activity, heads_written: 0, replacement: None, swallowing: false }
    }

    /// Notes a head about to be written; answers the status of hyper's own answer, if it is one.
    fn parser_refusal(&mut self, buf: &[u8]) -> Option<axum::http::StatusCode> {
        if !buf.starts_with(b"HTTP/1.") || buf.len() < 12 {
            return None;
        }
        let responses = self.activity.lock().expect("activity").responses;
        if self.heads_written < responses {
            self.heads_written += 1;
            return None;
        }
        let status = std::str::from_utf8(&buf[9..12]).ok()?.parse::<u16>().ok()?;
        axum::http::StatusCode::from_u16(status).ok().filter(|status| status.is_client_error())
    }
}

impl AsyncRead for Watched {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            let mut state = this.activity.lock().expect("activity");
            if state.in_flight == 0 && state.head_started.is_none() {
                state.head_started = Some(Instant::now());
            }
        }
        result
    }
}

impl AsyncWrite for Watched {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        if this.swallowing {
            return Poll::Ready(Ok(buf.len()));
        }
        if this.replacement.is_none() {
            if let Some(status) = this.parser_refusal(buf) {
                let (answer, request_id) = jobd_api::unparsable_request_answer(status);
                tracing::warn!(peer = %this.peer, request_id, status = status.as_u16(), "request refused by the HTTP parser");
                this.replacement = Some((answer, 0));
            }
        }
        if let Some((answer, written)) = &mut this.replacement {
            while *written < answer.len() {
                match Pin::new(&mut this.inner).poll_write(cx, &answer[*written..]) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into())),
                    Poll::Ready(Ok(n)) => *written += n,
                    other => return other,
                }
            }
            this.replacement = None;
            this.swallowing = true;
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    // Not vectored: hyper then writes each head and its body in one buffer, which `poll_write`
    // can recognise.
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_fits_the_file_limit() {
        assert_eq!(fit_connection_cap(10_000, None), 10_000);
        assert_eq!(fit_connection_cap(10_000, Some(1_048_576)), 10_000);
        assert_eq!(fit_connection_cap(10_000, Some(1_024)), 1_024 - 512 - 256);
        assert_eq!(fit_connection_cap(10_000, Some(100)), 16);
    }
}
