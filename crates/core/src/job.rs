//! The job: what a producer asked for, where it stands, and its ordered sub-jobs.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::clock::Timestamp;
use crate::ids::{JobId, JobType, ProjectId, ServiceName};
use crate::lease::Lease;
use crate::retry_policy::RetryBackoff;
use crate::status::{JobStatus, TreeStatus};

/// How a parent's sub-jobs run: one after another (the default), or all at once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Execution {
    #[default]
    Sequential,
    Parallel,
}

impl Execution {
    pub fn as_str(self) -> &'static str {
        match self {
            Execution::Sequential => "sequential",
            Execution::Parallel => "parallel",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "sequential" => Some(Execution::Sequential),
            "parallel" => Some(Execution::Parallel),
            _ => None,
        }
    }
}

/// What a parent does when a sub-job fails for good.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// The parent fails; unfinished sub-jobs are cancelled.
    #[default]
    Fail,
    /// The saga pattern: the sub-jobs that succeeded are compensated in reverse order first.
    Rollback,
}

/// Where a parent is in its life: running its sub-jobs, or compensating them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    #[default]
    Run,
    Rollback,
}

/// The compensation of a succeeded sub-job while its parent rolls back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compensation {
    pub status: JobStatus,
    pub attempt: u32,
    pub started_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
    pub error_code: Option<String>,
    pub error_msg: Option<String>,
}

impl Compensation {
    pub fn pending() -> Self {
        Compensation {
            status: JobStatus::Pending,
            attempt: 0,
            started_at: None,
            ended_at: None,
            error_code: None,
            error_msg: None,
        }
    }

    pub fn is_terminal(&self) -> bool {
        self.status.is_terminal()
    }
}

/// What the claim and rescue queries need to know about one task of a tree.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskFlags {
    /// Its turn has come and it has attempts left (time and leases are checked at claim time).
    pub runnable: bool,
    /// It is open, holds a lease, and has no attempts left: when that lease expires, it fails.
    pub rescuable: bool,
}

/// A resource a job touches, as the ELB dialect lists it under `entities`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entity {
    pub resource_id: String,
    pub resource_type: String,
}

/// How the built-in simulator should play a job out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulateSpec {
    #[serde(default)]
    pub duration_ms: u64,
    #[serde(default)]
    pub outcome: SimulateOutcome,
    #[serde(default)]
    pub error_code: Option<String>,
    #[serde(default)]
    pub error_msg: Option<String>,
    #[serde(default)]
    pub messages: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SimulateOutcome {
    #[default]
    Success,
    Failure,
}

impl SimulateSpec {
    /// The longest a simulated job may take: one day.
    pub const MAX_DURATION_MS: u64 = 24 * 60 * 60 * 1000;

    /// When (milliseconds after start) message `index` is set: evenly across the duration,
    /// the first at the start.
    pub fn message_offset_ms(&self, index: usize) -> u64 {
        let count = self.messages.len().max(1) as u64;
        self.duration_ms * index as u64 / count
    }

    pub fn error_code_or_default(&self) -> String {
        self.error_code.clone().unwrap_or_else(|| "JOB.SIMULATED_FAILURE".to_owned())
    }

    pub fn error_msg_or_default(&self) -> String {
        self.error_msg.clone().unwrap_or_else(|| "the simulated job failed".to_owned())
    }
}

/// A job and, for a parent, its ordered sub-jobs. A sub-job is a job with a parent.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub job_id: JobId,
    pub parent_job_id: Option<JobId>,
    pub project_id: ProjectId,
    pub enterprise_project_id: String,
    pub service: ServiceName,
    pub job_type: JobType,
    pub status: JobStatus,
    pub message: Option<String>,
    pub resource_id: Option<String>,
    pub entities: Vec<Entity>,
    pub error_code: Option<String>,
    pub error_msg: Option<String>,
    pub payload: Option<Value>,
    pub result: Option<Value>,
    pub simulate: Option<SimulateSpec>,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
    pub updated_at: Timestamp,
    /// Increases on every change of the job, and of a parent on every change of a sub-job.
    pub version: i64,
    /// Higher runs first.
    pub priority: i32,
    /// When the producer asked the job to start (`None`: at once).
    pub run_at: Option<Timestamp>,
    /// The earliest time the task may next be claimed (`run_at`, or the end of a retry backoff).
    pub available_at: Timestamp,
    pub max_attempts: u32,
    /// Attempts started so far (claims of this task).
    pub attempt: u32,
    pub retry_backoff: RetryBackoff,
    /// Counted from the first start; past it the job fails for good with `JOB.TIMEOUT`.
    pub timeout_seconds: Option<u32>,
    /// For a parent: how its sub-jobs run.
    pub execution: Execution,
    /// The current (or last) worker lease on this task.
    pub lease: Option<Lease>,
    /// For a parent: what a failed sub-job leads to.
    pub on_failure: OnFailure,
    /// For a parent: running, or rolling back.
    pub phase: Phase,
    /// For a sub-job of a rolling-back parent that had succeeded: its compensation.
    pub compensation: Option<Compensation>,
    pub sub_jobs: Vec<Job>,
}

impl Job {
    pub fn is_terminal(&self) -> bool {
        self.status.is_terminal()
    }

    pub fn has_sub_jobs(&self) -> bool {
        !self.sub_jobs.is_empty()
    }

    /// This job and its sub-jobs, parent first.
    pub fn iter_tree(&self) -> impl Iterator<Item = &Job> {
        std::iter::once(self).chain(self.sub_jobs.iter())
    }

    /// The job with this id within the tree (the parent itself or one of its sub-jobs).
    pub fn find(&self, job_id: &JobId) -> Option<&Job> {
        self.iter_tree().find(|job| &job.job_id == job_id)
    }

    /// Whether this job (or any of its sub-jobs) is for the built-in simulator and still open.
    pub fn needs_simulation(&self) -> bool {
        !self.is_terminal() && self.iter_tree().any(|job| job.simulate.is_some() && !job.is_terminal())
    }

    /// When this job times out, if it has a timeout and has started.
    pub fn deadline(&self) -> Option<Timestamp> {
        let timeout = self.timeout_seconds?;
        Some(self.started_at? + chrono::Duration::seconds(i64::from(timeout)))
    }

    /// The tasks of the tree a worker may take without waiting for a lease to run out (now, or
    /// once they fall due), parent first: a change that leaves none makes no work for a waiting
    /// claim.
    pub fn offered_tasks(&self) -> impl Iterator<Item = &Job> {
        self.iter_tree()
            .zip(self.task_flags())
            .filter(|(job, flags)| flags.runnable && job.lease.is_none())
            .map(|(job, _)| job)
    }

    /// For each job of the tree (parent first), what the claim and rescue queries need: a task is
    /// an open job without sub-jobs, or an open sub-job of an open parent whose turn has come
    /// (sequential: every sub-job ahead of it succeeded); while a parent rolls back, the tasks are
    /// the compensations, last sub-job first.
    pub fn task_flags(&self) -> Vec<TaskFlags> {
        fn flags(open: bool, turn: bool, attempts_left: bool, leased: bool) -> TaskFlags {
            TaskFlags { runnable: open && turn && attempts_left, rescuable: open && leased && !attempts_left }
        }
        if !self.has_sub_jobs() {
            return vec![flags(!self.is_terminal(), true, self.attempt < self.max_attempts, self.lease.is_some())];
        }
        let mut all = Vec::with_capacity(self.sub_jobs.len() + 1);
        all.push(TaskFlags::default());
        match self.phase {
            Phase::Run => {
                let mut all_before_succeeded = true;
                for sub in &self.sub_jobs {
                    let turn = self.execution == Execution::Parallel || all_before_succeeded;
                    let open = !self.is_terminal() && !sub.is_terminal();
                    all.push(flags(open, turn, sub.attempt < sub.max_attempts, sub.lease.is_some()));
                    all_before_succeeded &= sub.status == JobStatus::Succeeded;
                }
            }
            Phase::Rollback => {
                for (index, sub) in self.sub_jobs.iter().enumerate() {
                    let Some(compensation) = &sub.compensation else {
                        all.push(TaskFlags::default());
                        continue;
                    };
                    let open = !self.is_terminal() && !compensation.is_terminal();
                    let turn = self.sub_jobs[index + 1..]
                        .iter()
                        .filter_map(|later| later.compensation.as_ref())
                        .all(|later| later.status == JobStatus::Succeeded);
                    all.push(flags(open, turn, compensation.attempt < sub.max_attempts, sub.lease.is_some()));
                }
            }
        }
        all
    }

    /// Where the tree stands as a whole: its status, with a rollback in progress (`RollingBack`)
    /// and a failed one (`RollbackFailed`: a sub-job's compensation failed) told apart.
    pub fn tree_status(&self) -> TreeStatus {
        let rolling_back = self.phase == Phase::Rollback;
        let compensation_failed = self
            .sub_jobs
            .iter()
            .filter_map(|sub| sub.compensation.as_ref())
            .any(|compensation| compensation.status == JobStatus::Failed);
        match self.status {
            JobStatus::Pending | JobStatus::Running if rolling_back => TreeStatus::RollingBack,
            JobStatus::Pending => TreeStatus::Pending,
            JobStatus::Running => TreeStatus::Running,
            JobStatus::Succeeded => TreeStatus::Succeeded,
            JobStatus::Failed if compensation_failed => TreeStatus::RollbackFailed,
            JobStatus::Failed => TreeStatus::Failed,
            JobStatus::Cancelled => TreeStatus::Cancelled,
        }
    }

    /// Whether two versions of one job differ in anything stored on its own row.
    pub fn same_row(&self, other: &Job) -> bool {
        // Field by field, without copying either job (the stores ask this for every row they
        // may write); the destructuring names every field, so a new one cannot be forgotten.
        let Job {
            job_id,
            parent_job_id,
            project_id,
            enterprise_project_id,
            service,
            job_type,
            status,
            message,
            resource_id,
            entities,
            error_code,
            error_msg,
            payload,
            result,
            simulate,
            created_at,
            started_at,
            ended_at,
            updated_at,
            version,
            priority,
            run_at,
            available_at,
            max_attempts,
            attempt,
            retry_backoff,
            timeout_seconds,
            execution,
            lease,
            on_failure,
            phase,
            compensation,
            sub_jobs: _,
        } = self;
        // The fields a write changes first, so a changed row is told apart at once.
        *version == other.version
            && *status == other.status
            && *updated_at == other.updated_at
            && *lease == other.lease
            && *attempt == other.attempt
            && *started_at == other.started_at
            && *ended_at == other.ended_at
            && *available_at == other.available_at
            && *message == other.message
            && *error_code == other.error_code
            && *error_msg == other.error_msg
            && *phase == other.phase
            && *compensation == other.compensation
            && *job_id == other.job_id
            && *parent_job_id == other.parent_job_id
            && *project_id == other.project_id
            && *enterprise_project_id == other.enterprise_project_id
            && *service == other.service
            && *job_type == other.job_type
            && *resource_id == other.resource_id
            && *created_at == other.created_at
            && *priority == other.priority
            && *run_at == other.run_at
            && *max_attempts == other.max_attempts
            && *timeout_seconds == other.timeout_seconds
            && *execution == other.execution
            && *on_failure == other.on_failure
            && *retry_backoff == other.retry_backoff
            && *entities == other.entities
            && *result == other.result
            && *simulate == other.simulate
            && *payload == other.payload
    }
}
