//! The error codes of jobd's own APIs (`error_code` in an error body): what the server's one
//! error table (`jobd-api`'s `error.rs`) answers and what the client (`jobd-client`) reads, written
//! once here so that the two cannot drift.

use std::fmt;

/// A body, query or path value the native, worker, admin or IAM API cannot accept (`400`).
pub const INVALID_REQUEST: &str = "JOBD.INVALID_REQUEST";
/// No such project, user or credential (`404`).
pub const NOT_FOUND: &str = "JOBD.NOT_FOUND";
/// No such job for this caller (`404`).
pub const JOB_NOT_FOUND: &str = "JOBD.JOB_NOT_FOUND";
/// The job cannot make this move, or a name or idempotency key is taken (`409`).
pub const JOB_CONFLICT: &str = "JOBD.JOB_CONFLICT";
/// A dependency (the store) cannot answer right now (`503`).
pub const UNAVAILABLE: &str = "JOBD.UNAVAILABLE";
/// A fault of jobd's own (`500`).
pub const INTERNAL: &str = "JOBD.INTERNAL";
/// API Gateway's code for a path (`404`) or method (`405`) no API answers.
pub const ROUTE_NOT_FOUND: &str = "APIGW.0101";

/// Why the worker API refuses a call on a task: the task is no longer the caller's to work on, and
/// the worker must stop (each is a `409` with its own code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskGone {
    /// `JOBD.LEASE_LOST`: the lease expired and another claim took the task over.
    LeaseLost,
    /// `JOBD.JOB_CANCELLED`: the job (or its parent) was cancelled.
    Cancelled,
    /// `JOBD.JOB_TIMED_OUT`: the job ran past its `timeout_seconds`.
    TimedOut,
    /// `JOBD.JOB_FINISHED`: the job already ended.
    Finished,
    /// `JOBD.NOT_A_TASK`: the job id names a parent job, which workers never hold.
    NotATask,
}

impl TaskGone {
    pub const ALL: [TaskGone; 5] =
        [TaskGone::LeaseLost, TaskGone::Cancelled, TaskGone::TimedOut, TaskGone::Finished, TaskGone::NotATask];

    /// The error code of this reason.
    pub const fn error_code(self) -> &'static str {
        match self {
            TaskGone::LeaseLost => "JOBD.LEASE_LOST",
            TaskGone::Cancelled => "JOBD.JOB_CANCELLED",
            TaskGone::TimedOut => "JOBD.JOB_TIMED_OUT",
            TaskGone::Finished => "JOBD.JOB_FINISHED",
            TaskGone::NotATask => "JOBD.NOT_A_TASK",
        }
    }

    /// The reason behind a `409` error code, if it is one of the worker API's.
    pub fn from_error_code(code: &str) -> Option<Self> {
        TaskGone::ALL.into_iter().find(|reason| reason.error_code() == code)
    }
}

impl fmt::Display for TaskGone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TaskGone::LeaseLost => "the lease was lost",
            TaskGone::Cancelled => "the job was cancelled",
            TaskGone::TimedOut => "the job timed out",
            TaskGone::Finished => "the job already finished",
            TaskGone::NotATask => "the job is not a task",
        })
    }
}
