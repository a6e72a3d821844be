//! Domain errors: a request that is not a valid job, and a transition the state machine refuses.

use crate::status::JobStatus;

/// Why a proposed job (or one of its fields) is not valid. Messages are written for the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    #[error("{field} {reason}")]
    Field { field: String, reason: String },
}

impl ValidationError {
    pub fn field(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ValidationError::Field { field: field.into(), reason: reason.into() }
    }
}

/// Why the state machine refused an event. Nothing was changed when one of these is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("job {job_id} is already {status} and can no longer change")]
    AlreadyTerminal { job_id: String, status: JobStatus },
    #[error("job {job_id} cannot move from {from} to {to}")]
    NotAllowed { job_id: String, from: JobStatus, to: JobStatus },
    #[error("job {job_id} has sub-jobs; its status is derived from them")]
    DerivedStatus { job_id: String },
    #[error("sub-job {job_id} cannot start before the sub-jobs ahead of it have succeeded")]
    OutOfOrder { job_id: String },
    #[error("sub-job {job_id} is cancelled through its parent job {parent_job_id}")]
    SubJobCancel { job_id: String, parent_job_id: String },
    #[error("job {job_id} is not part of this job tree")]
    UnknownTarget { job_id: String },
    #[error("the lease on job {job_id} was lost: another claim took the task over")]
    LeaseLost { job_id: String },
    #[error("job {job_id} cannot be claimed: {reason}")]
    NotClaimable { job_id: String, reason: &'static str },
    #[error("job {job_id}: {reason}")]
    NotDue { job_id: String, reason: &'static str },
    #[error("job {job_id} is rolling back: only its compensations run, through the worker API")]
    RollingBack { job_id: String },
    #[error("sub-job {job_id} has no compensation to run")]
    NothingToCompensate { job_id: String },
}
