//! A producer's request for a job, checked and turned into a fresh `PENDING` job tree.

use serde_json::Value;

use crate::clock::Timestamp;
use crate::error::ValidationError;
use crate::ids::{JobId, JobType, ProjectId, ServiceName};
use crate::job::{Entity, Execution, Job, OnFailure, Phase, SimulateSpec};
use crate::retry_policy::{RetryBackoff, DEFAULT_MAX_ATTEMPTS, MAX_MAX_ATTEMPTS};
use crate::status::JobStatus;

/// Limits on what one job may carry.
pub const MAX_SUB_JOBS: usize = 100;
pub const MAX_ENTITIES: usize = 100;
pub const MAX_ID_LEN: usize = 128;
pub const MAX_MESSAGE_LEN: usize = 1024;
/// The longest error code (a failed attempt's, a simulated failure's).
pub const MAX_ERROR_CODE_LEN: usize = 64;
/// The longest `resource_type` of an entity.
pub const MAX_RESOURCE_TYPE_LEN: usize = 64;
pub const MAX_SIMULATE_MESSAGES: usize = 100;
pub const MAX_TIMEOUT_SECONDS: u32 = 30 * 24 * 60 * 60;
pub const PRIORITY_RANGE: std::ops::RangeInclusive<i32> = -1000..=1000;

#[derive(Debug, Clone, PartialEq)]
pub struct NewSubJob {
    pub job_type: JobType,
    pub resource_id: Option<String>,
    pub entities: Vec<Entity>,
    pub payload: Option<Value>,
    pub simulate: Option<SimulateSpec>,
    /// Overrides the parent's `max_attempts` for this sub-job.
    pub max_attempts: Option<u32>,
    /// This sub-job's own timeout (the parent's counts for the whole tree).
    pub timeout_seconds: Option<u32>,
}

impl NewSubJob {
    pub fn new(job_type: JobType) -> Self {
        NewSubJob {
            job_type,
            resource_id: None,
            entities: Vec::new(),
            payload: None,
            simulate: None,
            max_attempts: None,
            timeout_seconds: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    pub project_id: ProjectId,
    pub enterprise_project_id: String,
    pub service: ServiceName,
    pub job_type: JobType,
    pub resource_id: Option<String>,
    pub entities: Vec<Entity>,
    pub payload: Option<Value>,
    pub message: Option<String>,
    pub simulate: Option<SimulateSpec>,
    pub sub_jobs: Vec<NewSubJob>,
    pub priority: i32,
    pub run_at: Option<Timestamp>,
    pub max_attempts: u32,
    pub retry_backoff: RetryBackoff,
    pub timeout_seconds: Option<u32>,
    pub execution: Execution,
    pub on_failure: OnFailure,
}

fn check_len(field: &str, value: &str, min: usize, max: usize) -> Result<(), ValidationError> {
    let len = value.chars().count();
    if len < min || len > max {
        return Err(ValidationError::field(field, format!("must be {min} to {max} characters long")));
    }
    if value.chars().any(char::is_control) {
        return Err(ValidationError::field(field, "must not contain control characters"));
    }
    Ok(())
}

fn check_entities(field: &str, entities: &[Entity]) -> Result<(), ValidationError> {
    if entities.len() > MAX_ENTITIES {
        return Err(ValidationError::field(field, format!("may hold at most {MAX_ENTITIES} entities")));
    }
    for (i, entity) in entities.iter().enumerate() {
        check_len(&format!("{field}[{i}].resource_id"), &entity.resource_id, 1, MAX_ID_LEN)?;
        check_len(&format!("{field}[{i}].resource_type"), &entity.resource_type, 1, MAX_RESOURCE_TYPE_LEN)?;
    }
    Ok(())
}

fn check_attempts(field: &str, value: u32) -> Result<(), ValidationError> {
    if (1..=MAX_MAX_ATTEMPTS).contains(&value) {
        Ok(())
    } else {
        Err(ValidationError::field(field, format!("must be from 1 to {MAX_MAX_ATTEMPTS}")))
    }
}

fn check_timeout(field: &str, value: Option<u32>) -> Result<(), ValidationError> {
    match value {
        Some(t) if !(1..=MAX_TIMEOUT_SECONDS).contains(&t) => {
            Err(ValidationError::field(field, format!("must be from 1 to {MAX_TIMEOUT_SECONDS}")))
        }
        _ => Ok(()),
    }
}

fn check_simulate(field: &str, simulate: &Option<SimulateSpec>) -> Result<(), ValidationError> {
    let Some(spec) = simulate else { return Ok(()) };
    if spec.duration_ms > SimulateSpec::MAX_DURATION_MS {
        return Err(ValidationError::field(
            format!("{field}.duration_ms"),
            format!("must be at most {}", SimulateSpec::MAX_DURATION_MS),
        ));
    }
    if spec.messages.len() > MAX_SIMULATE_MESSAGES {
        return Err(ValidationError::field(
            format!("{field}.messages"),
            format!("may hold at most {MAX_SIMULATE_MESSAGES} messages"),
        ));
    }
    for (i, message) in spec.messages.iter().enumerate() {
        check_len(&format!("{field}.messages[{i}]"), message, 0, MAX_MESSAGE_LEN)?;
    }
    if let Some(code) = &spec.error_code {
        check_len(&format!("{field}.error_code"), code, 1, MAX_ERROR_CODE_LEN)?;
    }
    if let Some(msg) = &spec.error_msg {
        check_len(&format!("{field}.error_msg"), msg, 0, MAX_MESSAGE_LEN)?;
    }
    Ok(())
}

impl NewJob {
    /// A request with only the required fields: default enterprise project, no sub-jobs.
    pub fn new(project_id: ProjectId, service: ServiceName, job_type: JobType) -> Self {
        NewJob {
            project_id,
            enterprise_project_id: crate::ids::DEFAULT_ENTERPRISE_PROJECT_ID.to_owned(),
            service,
            job_type,
            resource_id: None,
            entities: Vec::new(),
            payload: None,
            message: None,
            simulate: None,
            sub_jobs: Vec::new(),
            priority: 0,
            run_at: None,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            retry_backoff: RetryBackoff::default(),
            timeout_seconds: None,
            execution: Execution::default(),
            on_failure: OnFailure::default(),
        }
    }

    /// Checks everything the identifier types do not already guarantee.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if crate::ids::parse_enterprise_project_id(&self.enterprise_project_id)? != self.enterprise_project_id {
            return Err(ValidationError::field("enterprise_project_id", "must be lowercase"));
        }
        if let Some(resource_id) = &self.resource_id {
            check_len("resource_id", resource_id, 1, MAX_ID_LEN)?;
        }
        if let Some(message) = &self.message {
            check_len("message", message, 0, MAX_MESSAGE_LEN)?;
        }
        check_entities("entities", &self.entities)?;
        check_simulate("simulate", &self.simulate)?;
        check_attempts("max_attempts", self.max_attempts)?;
        check_timeout("timeout_seconds", self.timeout_seconds)?;
        self.retry_backoff.validate()?;
        if !PRIORITY_RANGE.contains(&self.priority) {
            return Err(ValidationError::field(
                "priority",
                format!("must be from {} to {}", PRIORITY_RANGE.start(), PRIORITY_RANGE.end()),
            ));
        }
        if self.sub_jobs.len() > MAX_SUB_JOBS {
            return Err(ValidationError::field("sub_jobs", format!("may hold at most {MAX_SUB_JOBS} sub-jobs")));
        }
        if self.sub_jobs.is_empty() && self.on_failure == OnFailure::Rollback {
            return Err(ValidationError::field("on_failure", "\"rollback\" needs sub-jobs to compensate"));
        }
        if !self.sub_jobs.is_empty() && self.simulate.is_some() {
            return Err(ValidationError::field(
                "simulate",
                "belongs on each sub-job when a job has sub-jobs (a parent's status is derived)",
            ));
        }
        for (i, sub) in self.sub_jobs.iter().enumerate() {
            if let Some(resource_id) = &sub.resource_id {
                check_len(&format!("sub_jobs[{i}].resource_id"), resource_id, 1, MAX_ID_LEN)?;
            }
            check_entities(&format!("sub_jobs[{i}].entities"), &sub.entities)?;
            check_simulate(&format!("sub_jobs[{i}].simulate"), &sub.simulate)?;
            if let Some(max_attempts) = sub.max_attempts {
                check_attempts(&format!("sub_jobs[{i}].max_attempts"), max_attempts)?;
            }
            check_timeout(&format!("sub_jobs[{i}].timeout_seconds"), sub.timeout_seconds)?;
        }
        Ok(())
    }

    /// Validates the request and builds the job tree, every job `PENDING` at version 1.
    pub fn into_job(self, now: Timestamp) -> Result<Job, ValidationError> {
        self.validate()?;
        let available_at = self.run_at.map_or(now, |run_at| run_at.max(now));
        let id_format = self.service.job_id_format();
        let parent_id = JobId::generate(id_format);
        let sub_jobs = self
            .sub_jobs
            .into_iter()
            .map(|sub| Job {
                job_id: JobId::generate(id_format),
                parent_job_id: Some(parent_id.clone()),
                project_id: self.project_id.clone(),
                enterprise_project_id: self.enterprise_project_id.clone(),
                service: self.service.clone(),
                job_type: sub.job_type,
                status: JobStatus::Pending,
                message: None,
                resource_id: sub.resource_id.or_else(|| self.resource_id.clone()),
                entities: sub.entities,
                error_code: None,
                error_msg: None,
                payload: sub.payload,
                result: None,
                simulate: sub.simulate,
                created_at: now,
                started_at: None,
                ended_at: None,
                updated_at: now,
                version: 1,
                priority: self.priority,
                run_at: self.run_at,
                available_at,
                max_attempts: sub.max_attempts.unwrap_or(self.max_attempts),
                attempt: 0,
                retry_backoff: self.retry_backoff,
                timeout_seconds: sub.timeout_seconds,
                execution: Execution::default(),
                lease: None,
                on_failure: OnFailure::default(),
                phase: Phase::default(),
                compensation: None,
                sub_jobs: Vec::new(),
            })
            .collect();
        Ok(Job {
            job_id: parent_id,
            parent_job_id: None,
            project_id: self.project_id,
            enterprise_project_id: self.enterprise_project_id,
            service: self.service,
            job_type: self.job_type,
            status: JobStatus::Pending,
            message: self.message,
            resource_id: self.resource_id,
            entities: self.entities,
            error_code: None,
            error_msg: None,
            payload: self.payload,
            result: None,
            simulate: self.simulate,
            created_at: now,
            started_at: None,
            ended_at: None,
            updated_at: now,
            version: 1,
            priority: self.priority,
            run_at: self.run_at,
            available_at,
            max_attempts: self.max_attempts,
            attempt: 0,
            retry_backoff: self.retry_backoff,
            timeout_seconds: self.timeout_seconds,
            execution: self.execution,
            lease: None,
            on_failure: self.on_failure,
            phase: Phase::default(),
            compensation: None,
            sub_jobs,
        })
    }
}
