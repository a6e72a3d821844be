//! The job: what a producer asked for, where it stands, and its ordered sub-jobs.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::clock::Timestamp;
use crate::ids::{JobId, JobType, ProjectId, ServiceName};
use crate::status::JobStatus;

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
}
