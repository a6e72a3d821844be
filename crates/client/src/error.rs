//! The client's errors: what the server answered (`Api`), what never reached it or never came back
//! (`Transport`), and answers the client could not read (`Decode`).

use std::fmt;
use std::time::Duration;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a call can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server answered with an error status and (usually) a JSON error body.
    #[error("{status} {error_code}: {error_msg}{}", request_id_suffix(.request_id.as_deref()))]
    Api {
        /// The HTTP status, such as `404`.
        status: u16,
        /// The error code from the body, such as `JOBD.JOB_NOT_FOUND` or `APIGW.0301`; empty when the body
        /// had none (an answer from something other than jobd, such as a proxy).
        error_code: String,
        /// The error message from the body (or the start of a non-JSON body).
        error_msg: String,
        /// The `X-Request-Id` response header, or the body's `request_id`: quote it when reporting a problem.
        request_id: Option<String>,
        /// The `Retry-After` header, when the server sent one in seconds.
        retry_after: Option<Duration>,
    },
    /// The request could not be sent or its answer not received (connection refused, timeout, TLS...).
    #[error("transport error: {}", with_causes(.0))]
    Transport(#[source] reqwest::Error),
    /// The server answered with a success status, but the body is not what the API promises.
    #[error(transparent)]
    Decode(DecodeError),
    /// The endpoint given to the client is not a usable `http(s)://host[:port][/prefix]` URL.
    #[error("invalid endpoint {endpoint:?}: {reason}")]
    InvalidEndpoint { endpoint: String, reason: String },
    /// An argument the client refuses before sending (for example a path segment `..`).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The request could not be signed (for example an access key with characters a header cannot carry).
    #[error("cannot sign the request: {0}")]
    Signing(#[source] jobd_auth::AuthError),
    /// An event stream (or a long wait) broke off or went silent and could not be resumed.
    #[error("event stream: {0}")]
    Stream(String),
}

/// An error and the errors it wraps, `a: b: c` (reqwest's own text leaves out "connection refused").
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn request_id_suffix(request_id: Option<&str>) -> String {
    request_id.map(|id| format!(" (request id {id})")).unwrap_or_default()
}

/// A success answer whose body could not be read as the expected type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// The HTTP status of the answer.
    pub status: u16,
    /// The `X-Request-Id` of the answer.
    pub request_id: Option<String>,
    /// What did not fit, with the start of the body.
    pub detail: String,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot decode the {} answer: {}{}",
            self.status,
            self.detail,
            request_id_suffix(self.request_id.as_deref())
        )
    }
}

impl std::error::Error for DecodeError {}

/// Why the worker API refused a call on a task (`jobd_core::error_code::TaskGone`: the codes the
/// server answers with).
pub use jobd_core::error_code::TaskGone;

impl Error {
    /// The HTTP status of an [`Error::Api`] (or of the answer behind an [`Error::Decode`]).
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            Error::Decode(decode) => Some(decode.status),
            Error::Transport(error) => error.status().map(|s| s.as_u16()),
            _ => None,
        }
    }

    /// The `error_code` of an [`Error::Api`].
    pub fn error_code(&self) -> Option<&str> {
        match self {
            Error::Api { error_code, .. } => Some(error_code),
            _ => None,
        }
    }

    /// The request id of the answer, when there was one.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            Error::Api { request_id, .. } => request_id.as_deref(),
            Error::Decode(decode) => decode.request_id.as_deref(),
            _ => None,
        }
    }

    /// How long the server asked to wait before trying again (`Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// `404`: the job (or the route) does not exist for this caller.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    /// `401`: the credentials were refused (unknown access key, bad signature, clock skew).
    pub fn is_unauthorized(&self) -> bool {
        self.status() == Some(401)
    }

    /// Why the worker API refused a call on a task, when it did (a `409` with a `JOBD.*` task code).
    pub fn task_gone(&self) -> Option<TaskGone> {
        match self {
            Error::Api { status: 409, error_code, .. } => TaskGone::from_error_code(error_code),
            _ => None,
        }
    }

    /// True for the worker API's `409`s that mean "stop working on this task": the lease was lost,
    /// the job was cancelled, timed out or already finished.
    pub fn is_task_gone(&self) -> bool {
        self.task_gone().is_some()
    }

    /// True when trying the same call again later may succeed: transport failures, broken streams,
    /// `429`, `502`, `503` and `504`. Other errors will repeat until something changes.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Transport(_) | Error::Stream(_) => true,
            Error::Api { status, .. } => matches!(status, 429 | 502 | 503 | 504),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, code: &str) -> Error {
        Error::Api {
            status,
            error_code: code.to_owned(),
            error_msg: "m".to_owned(),
            request_id: Some("r-1".to_owned()),
            retry_after: None,
        }
    }

    #[test]
    fn task_gone_is_only_the_worker_409s() {
        assert_eq!(api(409, "JOBD.JOB_CANCELLED").task_gone(), Some(TaskGone::Cancelled));
        assert_eq!(api(409, "JOBD.LEASE_LOST").task_gone(), Some(TaskGone::LeaseLost));
        assert_eq!(api(409, "JOBD.JOB_TIMED_OUT").task_gone(), Some(TaskGone::TimedOut));
        assert_eq!(api(409, "JOBD.JOB_FINISHED").task_gone(), Some(TaskGone::Finished));
        assert!(!api(409, "JOBD.JOB_CONFLICT").is_task_gone());
        assert!(!api(404, "JOBD.JOB_NOT_FOUND").is_task_gone());
        assert!(api(404, "JOBD.JOB_NOT_FOUND").is_not_found());
    }

    #[test]
    fn display_quotes_the_request_id() {
        assert_eq!(api(404, "JOBD.JOB_NOT_FOUND").to_string(), "404 JOBD.JOB_NOT_FOUND: m (request id r-1)");
    }

    #[test]
    fn the_error_stays_small() {
        assert!(std::mem::size_of::<Error>() <= 128, "{}", std::mem::size_of::<Error>());
    }
}
