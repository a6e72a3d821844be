//! The waiter: wait for a job to end, told of each change instead of polling when the server can
//! tell (server-sent events, then long poll), polling with backoff and jitter when it cannot, and
//! honouring `Retry-After` on `429` and `503`. The outcome is the succeeded job or a typed
//! [`WaitError`].

use std::time::Duration;

use futures_util::StreamExt;
use jobd_core::error_code::ROUTE_NOT_FOUND;
use tokio::time::Instant;

use crate::backoff::Backoff;
use crate::client::{Client, ProjectClient};
use crate::error::Error;
use crate::native::{Job, JobStatus};

/// How a waiter learns of changes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WaitStrategy {
    /// Server-sent events; if the server has none, long poll; if it cannot long poll, poll.
    #[default]
    Auto,
    /// Server-sent events only (reconnecting as needed).
    Events,
    /// Long poll (`?wait_seconds=&version=`) only.
    LongPoll,
    /// Plain `GET`s with exponential backoff and jitter: works with any server.
    Poll,
}

/// Settings of [`Client::wait_for_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitOptions {
    /// Give up (with [`WaitError::Timeout`]) after this long.
    pub timeout: Duration,
    pub strategy: WaitStrategy,
    /// The first wait between polls, and between retries of a failed call (default 200 ms).
    pub poll_interval: Duration,
    /// The longest wait between polls or retries (default 10 s); a `Retry-After` may be longer.
    pub max_poll_interval: Duration,
}

impl WaitOptions {
    pub fn new(timeout: Duration) -> Self {
        WaitOptions {
            timeout,
            strategy: WaitStrategy::Auto,
            poll_interval: Duration::from_millis(200),
            max_poll_interval: Duration::from_secs(10),
        }
    }

    pub fn strategy(mut self, strategy: WaitStrategy) -> Self {
        self.strategy = strategy;
        self
    }

    pub fn poll_interval(mut self, initial: Duration, max: Duration) -> Self {
        self.poll_interval = initial;
        self.max_poll_interval = max;
        self
    }
}

/// Why a wait did not end with a succeeded job.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    /// The job was not finished when the time ran out.
    #[error("job {job_id} did not finish within {waited:?}{}", last_status(.last_seen.as_deref()))]
    Timeout {
        job_id: String,
        waited: Duration,
        /// The last state seen, if any was.
        last_seen: Option<Box<Job>>,
    },
    /// The job ended `FAILED`.
    #[error("job {} failed: {error_code}: {error_msg}", .job.job_id)]
    Failed { error_code: String, error_msg: String, job: Box<Job> },
    /// The job ended `CANCELLED`.
    #[error("job {} was cancelled", .job.job_id)]
    Cancelled { job: Box<Job> },
    /// The job could not be read (unknown job, refused credentials, a server error that retrying
    /// did not cure...).
    #[error(transparent)]
    Api(#[from] Error),
}

fn last_status(job: Option<&Job>) -> String {
    job.map(|job| format!(" (last seen {})", job.status)).unwrap_or_default()
}

impl WaitError {
    /// The job as last seen: the terminal one for `Failed` and `Cancelled`.
    pub fn job(&self) -> Option<&Job> {
        match self {
            WaitError::Timeout { last_seen, .. } => last_seen.as_deref(),
            WaitError::Failed { job, .. } | WaitError::Cancelled { job } => Some(job),
            WaitError::Api(_) => None,
        }
    }
}

/// The outcome of a terminal job.
fn outcome(job: Job) -> Result<Job, WaitError> {
    match job.status {
        JobStatus::Failed => Err(WaitError::Failed {
            error_code: job.error_code.clone().unwrap_or_default(),
            error_msg: job.error_msg.clone().unwrap_or_default(),
            job: Box::new(job),
        }),
        JobStatus::Cancelled => Err(WaitError::Cancelled { job: Box::new(job) }),
        _ => Ok(job),
    }
}

/// The answers that mean "this server has no event stream here" rather than "no such job".
fn events_unsupported(error: &Error) -> bool {
    match error {
        Error::Api { status: 404 | 405, error_code, .. } => error_code == ROUTE_NOT_FOUND || error_code.is_empty(),
        Error::Api { status: 406 | 501, .. } | Error::Decode(_) => true,
        _ => false,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Events,
    LongPoll,
    Poll,
}

enum Seen {
    Changed,
    Same,
    /// The job is terminal: [`Waiting::finish`] answers the outcome.
    Terminal,
}

struct Waiting<'a, F> {
    client: &'a Client,
    project_id: &'a str,
    job_id: &'a str,
    options: &'a WaitOptions,
    deadline: Instant,
    on_change: F,
    last: Option<Job>,
}

impl<F: FnMut(&Job)> Waiting<'_, F> {
    fn see(&mut self, job: Job) -> Seen {
        if let Some(last) = &self.last {
            if job.version < last.version {
                return Seen::Same;
            }
            if *last == job {
                return Seen::Same;
            }
        }
        (self.on_change)(&job);
        let terminal = job.is_terminal();
        self.last = Some(job);
        if terminal {
            Seen::Terminal
        } else {
            Seen::Changed
        }
    }

    /// The outcome of the terminal job last seen.
    fn finish(&mut self) -> Result<Job, WaitError> {
        let job = self.last.clone().expect("a terminal job was seen");
        outcome(job)
    }

    async fn run(&mut self) -> Result<Job, WaitError> {
        let auto = self.options.strategy == WaitStrategy::Auto;
        let mut mode = match self.options.strategy {
            WaitStrategy::LongPoll => Mode::LongPoll,
            WaitStrategy::Poll => Mode::Poll,
            _ => Mode::Events,
        };
        let mut backoff = Backoff::new(self.options.poll_interval, self.options.max_poll_interval);
        loop {
            match mode {
                Mode::Events => {
                    let after = self.last.as_ref().map(|job| job.version);
                    let mut watch = self.client.watch_after(self.project_id, self.job_id, after);
                    let mut failure = None;
                    while let Some(item) = watch.next().await {
                        match item {
                            Ok(job) => {
                                backoff.reset();
                                if let Seen::Terminal = self.see(job) {
                                    return self.finish();
                                }
                            }
                            Err(error) => {
                                failure = Some(error);
                                break;
                            }
                        }
                    }
                    match failure {
                        Some(error) if auto && (events_unsupported(&error) || error.is_retryable()) => {
                            tracing::debug!(%error, "no event stream; waiting with long polls");
                            mode = Mode::LongPoll;
                        }
                        Some(error) if error.is_retryable() => {
                            tokio::time::sleep(backoff.next_delay_at_least(error.retry_after())).await;
                        }
                        Some(error) => return Err(WaitError::Api(error)),
                        // A stream that ends without a terminal job: read on with long polls.
                        None => mode = Mode::LongPoll,
                    }
                }
                Mode::LongPoll => {
                    let answer = match self.last.as_ref().map(|job| job.version) {
                        None => self.client.get_job(self.project_id, self.job_id).await,
                        Some(version) => {
                            let wait =
                                self.deadline.saturating_duration_since(Instant::now()).max(Duration::from_secs(1));
                            let wait = wait.min(Duration::from_secs(crate::worker::MAX_WAIT_SECONDS.into()));
                            let asked = Instant::now();
                            let answer = self.client.get_job_after(self.project_id, self.job_id, version, wait).await;
                            let unchanged =
                                answer.as_ref().is_ok_and(|job| job.version <= version && !job.is_terminal());
                            if auto && unchanged && asked.elapsed() < wait / 2 {
                                tracing::debug!("the server does not hold long polls; polling");
                                mode = Mode::Poll;
                            }
                            answer
                        }
                    };
                    match answer {
                        Ok(job) => {
                            backoff.reset();
                            if let Seen::Terminal = self.see(job) {
                                return self.finish();
                            }
                        }
                        Err(error) if auto && error.status() == Some(400) && self.last.is_some() => mode = Mode::Poll,
                        Err(error) if error.is_retryable() => {
                            tokio::time::sleep(backoff.next_delay_at_least(error.retry_after())).await;
                        }
                        Err(error) => return Err(WaitError::Api(error)),
                    }
                }
                Mode::Poll => match self.client.get_job(self.project_id, self.job_id).await {
                    Ok(job) => {
                        match self.see(job) {
                            Seen::Terminal => return self.finish(),
                            Seen::Changed => backoff.reset(),
                            Seen::Same => {}
                        }
                        tokio::time::sleep(backoff.next_delay()).await;
                    }
                    Err(error) if error.is_retryable() => {
                        tokio::time::sleep(backoff.next_delay_at_least(error.retry_after())).await;
                    }
                    Err(error) => return Err(WaitError::Api(error)),
                },
            }
        }
    }
}

impl Client {
    /// Waits until the job ends, at most `timeout`: the job if it `SUCCEEDED`, else a
    /// [`WaitError`] (`Failed` with the job's error code and message, `Cancelled`, `Timeout`, or
    /// `Api` when the job cannot be read). It watches the job's event stream, falls back to long
    /// polls and then to polling with exponential backoff and jitter, and waits out `429`s and
    /// `503`s as long as their `Retry-After` says.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use jobd_client::{Client, Credentials, NewJob, SimulateSpec, WaitError};
    ///
    /// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
    /// let client = Client::new("http://127.0.0.1:8080", Credentials::new("MY_AK", "MY_SK"))?;
    /// let project = "0123456789abcdef0123456789abcdef";
    /// let job = NewJob::new("elb", "UPGRADE").simulate(SimulateSpec { duration_ms: 300, ..Default::default() });
    /// let created = client.create_job(project, &job, None).await?;
    /// match client.wait_for(project, &created.job.job_id, Duration::from_secs(60)).await {
    ///     Ok(job) => println!("done: {:?}", job.result),
    ///     Err(WaitError::Failed { error_code, error_msg, .. }) => eprintln!("failed: {error_code}: {error_msg}"),
    ///     Err(WaitError::Cancelled { .. }) => eprintln!("cancelled"),
    ///     Err(WaitError::Timeout { .. }) => eprintln!("still running after a minute"),
    ///     Err(other) => return Err(other.into()),
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn wait_for(&self, project_id: &str, job_id: &str, timeout: Duration) -> Result<Job, WaitError> {
        self.wait_for_with(project_id, job_id, &WaitOptions::new(timeout), |_| {}).await
    }

    /// [`Client::wait_for`] with settings, calling `on_change` with every new state seen (the
    /// first one included): a progress display follows the job with it.
    pub async fn wait_for_with(
        &self,
        project_id: &str,
        job_id: &str,
        options: &WaitOptions,
        on_change: impl FnMut(&Job),
    ) -> Result<Job, WaitError> {
        let deadline = Instant::now() + options.timeout;
        let mut waiting = Waiting { client: self, project_id, job_id, options, deadline, on_change, last: None };
        let finished = tokio::time::timeout_at(deadline, waiting.run()).await;
        match finished {
            Ok(outcome) => outcome,
            Err(_) => Err(WaitError::Timeout {
                job_id: job_id.to_owned(),
                waited: options.timeout,
                last_seen: waiting.last.take().map(Box::new),
            }),
        }
    }
}

impl ProjectClient {
    /// See [`Client::wait_for`].
    pub async fn wait_for(&self, job_id: &str, timeout: Duration) -> Result<Job, WaitError> {
        self.client.wait_for(&self.project_id, job_id, timeout).await
    }

    /// See [`Client::wait_for_with`].
    pub async fn wait_for_with(
        &self,
        job_id: &str,
        options: &WaitOptions,
        on_change: impl FnMut(&Job),
    ) -> Result<Job, WaitError> {
        self.client.wait_for_with(&self.project_id, job_id, options, on_change).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, code: &str) -> Error {
        Error::Api {
            status,
            error_code: code.to_owned(),
            error_msg: String::new(),
            request_id: None,
            retry_after: None,
        }
    }

    #[test]
    fn only_a_missing_route_means_no_event_stream() {
        assert!(events_unsupported(&api(404, "APIGW.0101")));
        assert!(events_unsupported(&api(405, "APIGW.0101")));
        assert!(events_unsupported(&api(404, "")));
        assert!(!events_unsupported(&api(404, "JOBD.JOB_NOT_FOUND")));
        assert!(!events_unsupported(&api(401, "APIGW.0301")));
        assert!(!events_unsupported(&api(429, "APIGW.0308")));
    }
}
