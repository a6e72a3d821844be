//! Watching jobs with server-sent events: one job (`GET /v1/{project_id}/jobs/{job_id}/events`,
//! resumed with `Last-Event-ID` after a broken connection, ending after the terminal event) and a
//! whole project (`GET /v1/{project_id}/events`, never ending by itself).

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::stream::{self, Stream};

use crate::backoff::Backoff;
use crate::client::{path, Call, Client, ProjectClient};
use crate::error::{DecodeError, Error, Result};
use crate::native::Job;
use crate::sse::{SseEvent, SseParser};

/// A stream that sends nothing (not even its `: keep-alive` comment, every ~15 s) for this long
/// is taken for dead and reconnected.
pub const STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(45);
/// Reconnections in a row without an event before a watch gives up with the last error.
pub const MAX_RECONNECTS: u32 = 8;
const RECONNECT_INITIAL: Duration = Duration::from_millis(200);
const RECONNECT_MAX: Duration = Duration::from_secs(10);
const EVENT_STREAM: &str = "text/event-stream";

type CallMaker = Box<dyn Fn(Option<&str>) -> Result<Call> + Send + Sync>;

/// One event-stream connection at a time, reconnected (with backoff, honouring `Retry-After`
/// and the stream's `retry:`) when it breaks, goes silent or ends.
struct EventSource {
    client: Client,
    /// The request, given the `Last-Event-ID` to resume after.
    make_call: CallMaker,
    response: Option<reqwest::Response>,
    parser: SseParser,
    queue: VecDeque<SseEvent>,
    backoff: Backoff,
    failures: u32,
    retry_after: Option<Duration>,
    /// Sent as `Last-Event-ID` on (re)connection; the user of the source decides what it is.
    resume_from: Option<String>,
}

impl EventSource {
    fn new(client: Client, resume_from: Option<String>, make_call: CallMaker) -> Self {
        EventSource {
            client,
            make_call,
            response: None,
            parser: SseParser::default(),
            queue: VecDeque::new(),
            backoff: Backoff::new(RECONNECT_INITIAL, RECONNECT_MAX),
            failures: 0,
            retry_after: None,
            resume_from,
        }
    }

    /// The stream gave something useful: the next break starts a fresh count.
    fn progressed(&mut self) {
        self.failures = 0;
        self.backoff.reset();
    }

    fn close(&mut self) {
        self.response = None;
        self.queue.clear();
    }

    /// The connection is gone: count it, and give up with `error` past the limit.
    fn lost(&mut self, error: Error) -> Result<()> {
        self.response = None;
        self.parser.reset_connection();
        self.failures += 1;
        self.retry_after = error.retry_after();
        if !error.is_retryable() || self.failures > MAX_RECONNECTS {
            return Err(error);
        }
        tracing::debug!(failures = self.failures, %error, "event stream lost; reconnecting");
        Ok(())
    }

    async fn connect(&self) -> Result<reqwest::Response> {
        let call = (self.make_call)(self.resume_from.as_deref())?.header("accept", EVENT_STREAM)?;
        let response = self.client.open_stream(call).await?;
        let content_type = response.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
        if !content_type.is_some_and(|t| t.starts_with(EVENT_STREAM)) {
            return Err(Error::Decode(DecodeError {
                status: response.status().as_u16(),
                request_id: response.headers().get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned),
                detail: format!("expected an event stream, got content type {content_type:?}"),
            }));
        }
        Ok(response)
    }

    /// The next event, or [`Incoming::Ended`] when the server closed the stream cleanly (the
    /// next call reconnects); an error only when the stream cannot be (re)opened.
    async fn next_event(&mut self) -> Result<Incoming> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                return Ok(Incoming::Event(event));
            }
            let Some(response) = self.response.as_mut() else {
                if self.failures > 0 {
                    let floor = self.retry_after.take().or(self.parser.retry());
                    tokio::time::sleep(self.backoff.next_delay_at_least(floor)).await;
                }
                match self.connect().await {
                    Ok(response) => self.response = Some(response),
                    Err(error) => self.lost(error)?,
                }
                continue;
            };
            match tokio::time::timeout(STREAM_IDLE_TIMEOUT, response.chunk()).await {
                Ok(Ok(Some(bytes))) => self.queue.extend(self.parser.push(&bytes)),
                Ok(Ok(None)) => {
                    self.lost(Error::Stream("the server ended the stream".to_owned()))?;
                    return Ok(Incoming::Ended);
                }
                Ok(Err(error)) => self.lost(Error::Transport(error))?,
                Err(_) => self.lost(Error::Stream(format!("nothing received for {STREAM_IDLE_TIMEOUT:?}")))?,
            }
        }
    }
}

/// What an [`EventSource`] read.
enum Incoming {
    Event(SseEvent),
    /// The server closed the stream without an error.
    Ended,
}

/// The changes of one job as a [`Stream`] of [`Job`]s (see [`Client::watch`]). It ends after the
/// job's terminal state, or after an error that reconnecting cannot cure.
pub struct JobWatch {
    inner: Pin<Box<dyn Stream<Item = Result<Job>> + Send>>,
}

impl fmt::Debug for JobWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobWatch").finish_non_exhaustive()
    }
}

impl Stream for JobWatch {
    type Item = Result<Job>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

struct JobWatchState {
    source: EventSource,
    project_id: String,
    job_id: String,
    last_version: Option<i64>,
    done: bool,
}

impl JobWatchState {
    /// A newer state to report, and the end of the watch after a terminal one.
    fn report(&mut self, job: Job) -> Option<Result<Job>> {
        if self.last_version.is_some_and(|last| job.version <= last) {
            if job.is_terminal() {
                self.done = true;
                self.source.close();
            }
            return None;
        }
        self.last_version = Some(job.version);
        self.source.resume_from = Some(job.version.to_string());
        if job.is_terminal() {
            self.done = true;
            self.source.close();
        }
        Some(Ok(job))
    }

    async fn next_job(&mut self) -> Option<Result<Job>> {
        while !self.done {
            let event = match self.source.next_event().await {
                Ok(Incoming::Event(event)) => event,
                Ok(Incoming::Ended) => {
                    // A stream closed without a terminal event: the job may have ended at a
                    // version already seen (the server then sends nothing); one read tells.
                    match self.source.client.get_job(&self.project_id, &self.job_id).await {
                        Ok(job) => match self.report(job) {
                            Some(reported) => return Some(reported),
                            None => continue,
                        },
                        Err(error) if error.is_retryable() => continue,
                        Err(error) => {
                            self.done = true;
                            return Some(Err(error));
                        }
                    }
                }
                Err(error) => {
                    self.done = true;
                    return Some(Err(error));
                }
            };
            if event.event != "job" {
                continue;
            }
            let job = match serde_json::from_str::<Job>(&event.data) {
                Ok(job) => job,
                Err(error) => {
                    self.done = true;
                    return Some(Err(Error::Decode(DecodeError {
                        status: 200,
                        request_id: None,
                        detail: format!("an event is not a job: {error}"),
                    })));
                }
            };
            self.source.progressed();
            if let Some(reported) = self.report(job) {
                return Some(reported);
            }
        }
        None
    }
}

/// The changes of a project's jobs (see [`Client::watch_project`]); it never ends by itself.
pub struct ProjectWatch {
    inner: Pin<Box<dyn Stream<Item = Result<Job>> + Send>>,
}

impl fmt::Debug for ProjectWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProjectWatch").finish_non_exhaustive()
    }
}

impl Stream for ProjectWatch {
    type Item = Result<Job>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

/// Which of a project's jobs a [`ProjectWatch`] reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProjectEventsQuery {
    pub service: Option<String>,
    pub job_types: Vec<String>,
}

impl ProjectEventsQuery {
    pub fn service(mut self, service: impl Into<String>) -> Self {
        self.service = Some(service.into());
        self
    }

    pub fn job_type(mut self, job_type: impl Into<String>) -> Self {
        self.job_types.push(job_type.into());
        self
    }
}

impl Client {
    /// Every state of a job from now on, as server-sent events: first the current state, then
    /// each change of the job or its sub-jobs (each [`Job`] whole, with its sub-jobs, its
    /// `version` higher than the last), ending after the terminal state. A broken or silent
    /// connection is reopened with `Last-Event-ID`, so no version is lost; the stream yields an
    /// error (and ends) only when the job cannot be watched (unknown job, refused credentials) or
    /// reconnecting keeps failing.
    ///
    /// ```no_run
    /// use futures_util::StreamExt;
    /// use jobd_client::{Client, Credentials};
    ///
    /// # async fn example() -> Result<(), jobd_client::Error> {
    /// let client = Client::new("http://127.0.0.1:8080", Credentials::new("MY_AK", "MY_SK"))?;
    /// let mut watch = client.watch("0123456789abcdef0123456789abcdef", "JOB_ID");
    /// while let Some(job) = watch.next().await {
    ///     let job = job?;
    ///     println!("v{} {} {}", job.version, job.status, job.message.as_deref().unwrap_or(""));
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn watch(&self, project_id: &str, job_id: &str) -> JobWatch {
        self.watch_after(project_id, job_id, None)
    }

    /// Like [`Client::watch`], but only versions above `version` (for example the last one a
    /// previous watch saw): sent as `Last-Event-ID`.
    pub fn watch_after(&self, project_id: &str, job_id: &str, version: Option<i64>) -> JobWatch {
        let (project, job) = (project_id.to_owned(), job_id.to_owned());
        let make_call: CallMaker = Box::new(move |last_event_id| {
            let mut call = Call::get(path(&["v1", &project, "jobs", &job, "events"])?);
            if let Some(id) = last_event_id {
                call = call.header("last-event-id", id)?;
            }
            Ok(call)
        });
        let state = JobWatchState {
            source: EventSource::new(self.clone(), version.map(|v| v.to_string()), make_call),
            project_id: project_id.to_owned(),
            job_id: job_id.to_owned(),
            last_version: version,
            done: false,
        };
        let jobs = stream::unfold(state, |mut state| async move {
            let job = state.next_job().await?;
            Some((job, state))
        });
        JobWatch { inner: Box::pin(jobs) }
    }

    /// Every change of the project's jobs (optionally of one service or some job types), each as
    /// the whole [`Job`]. It never ends by itself; a broken connection is reopened, and changes
    /// made while it was down are not replayed (read the jobs again if that matters).
    pub fn watch_project(&self, project_id: &str, query: &ProjectEventsQuery) -> ProjectWatch {
        let (project_id, query) = (project_id.to_owned(), query.clone());
        let make_call: CallMaker = Box::new(move |_| {
            let mut call = Call::get(path(&["v1", &project_id, "events"])?);
            if let Some(service) = &query.service {
                call = call.query("service", service.as_str());
            }
            for job_type in &query.job_types {
                call = call.query("job_type", job_type.as_str());
            }
            Ok(call)
        });
        let source = EventSource::new(self.clone(), None, make_call);
        let jobs = stream::unfold(Some(source), |source| async move {
            let mut source = source?;
            loop {
                match source.next_event().await {
                    Err(error) => return Some((Err(error), None)),
                    Ok(Incoming::Ended) => continue,
                    Ok(Incoming::Event(event)) if event.event != "job" => continue,
                    Ok(Incoming::Event(event)) => {
                        source.progressed();
                        let job = serde_json::from_str::<Job>(&event.data).map_err(|error| {
                            Error::Decode(DecodeError {
                                status: 200,
                                request_id: None,
                                detail: format!("an event is not a job: {error}"),
                            })
                        });
                        return Some((job, Some(source)));
                    }
                }
            }
        });
        ProjectWatch { inner: Box::pin(jobs) }
    }
}

impl ProjectClient {
    /// See [`Client::watch`].
    pub fn watch(&self, job_id: &str) -> JobWatch {
        self.client.watch(&self.project_id, job_id)
    }

    /// See [`Client::watch_after`].
    pub fn watch_after(&self, job_id: &str, version: Option<i64>) -> JobWatch {
        self.client.watch_after(&self.project_id, job_id, version)
    }

    /// See [`Client::watch_project`].
    pub fn watch_project(&self, query: &ProjectEventsQuery) -> ProjectWatch {
        self.client.watch_project(&self.project_id, query)
    }
}
