//! The body of a native create (`POST /v1/{project_id}/jobs`, and each item of a batch) read into
//! a [`NewJob`]: the one parser of producers' job requests (the HTTP layer maps its error to a
//! `400`; `fuzz/` feeds it arbitrary bytes).

use serde::Deserialize;
use serde_json::Value;

use crate::ids::{parse_enterprise_project_id, JobType, ProjectId, ServiceName, DEFAULT_ENTERPRISE_PROJECT_ID};
use crate::job::{Entity, Execution, OnFailure, SimulateSpec};
use crate::new_job::{NewJob, NewSubJob};
use crate::retry_policy::RetryBackoff;

/// Why a body is not a job request; the message is written for the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidJobRequest(pub String);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateJobBody {
    service: String,
    job_type: String,
    #[serde(default)]
    resource_id: Option<String>,
    #[serde(default)]
    enterprise_project_id: Option<String>,
    #[serde(default)]
    entities: Option<Vec<Entity>>,
    #[serde(default)]
    payload: Option<Value>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    sub_jobs: Option<Vec<CreateSubJobBody>>,
    #[serde(default)]
    simulate: Option<SimulateSpec>,
    #[serde(default)]
    priority: Option<i32>,
    #[serde(default)]
    run_at: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default)]
    max_attempts: Option<u32>,
    #[serde(default)]
    retry_backoff: Option<RetryBackoff>,
    #[serde(default)]
    timeout_seconds: Option<u32>,
    #[serde(default)]
    execution: Option<Execution>,
    #[serde(default)]
    on_failure: Option<OnFailure>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateSubJobBody {
    job_type: String,
    #[serde(default)]
    resource_id: Option<String>,
    #[serde(default)]
    entities: Option<Vec<Entity>>,
    #[serde(default)]
    payload: Option<Value>,
    #[serde(default)]
    simulate: Option<SimulateSpec>,
    #[serde(default)]
    max_attempts: Option<u32>,
    #[serde(default)]
    timeout_seconds: Option<u32>,
}

fn invalid(message: impl Into<String>) -> InvalidJobRequest {
    InvalidJobRequest(message.into())
}

/// serde reads a struct from a JSON array too; the API takes objects only where it names fields.
fn require_objects(body: &Value) -> Result<(), InvalidJobRequest> {
    fn object(value: Option<&Value>, field: &str) -> Result<(), InvalidJobRequest> {
        match value {
            None | Some(Value::Null) | Some(Value::Object(_)) => Ok(()),
            Some(_) => Err(invalid(format!("{field} must be a JSON object"))),
        }
    }
    fn objects(value: Option<&Value>, field: &str) -> Result<(), InvalidJobRequest> {
        match value {
            Some(Value::Array(items)) => {
                items.iter().enumerate().try_for_each(|(i, item)| object(Some(item), &format!("{field}[{i}]")))
            }
            _ => Ok(()),
        }
    }
    if !body.is_object() {
        return Err(invalid("the job request body must be a JSON object"));
    }
    object(body.get("simulate"), "simulate")?;
    object(body.get("retry_backoff"), "retry_backoff")?;
    objects(body.get("entities"), "entities")?;
    objects(body.get("sub_jobs"), "sub_jobs")?;
    for (i, sub) in body.get("sub_jobs").and_then(Value::as_array).into_iter().flatten().enumerate() {
        object(sub.get("simulate"), &format!("sub_jobs[{i}].simulate"))?;
        objects(sub.get("entities"), &format!("sub_jobs[{i}].entities"))?;
    }
    Ok(())
}

/// A create's body as bytes: see [`parse_job_request`].
pub fn parse_job_request_bytes(project_id: ProjectId, body: &[u8]) -> Result<(NewJob, String), InvalidJobRequest> {
    let value: Value = serde_json::from_slice(body).map_err(|e| invalid(format!("invalid job request body: {e}")))?;
    parse_job_request(project_id, value)
}

/// A create's body, already read as JSON: the new job (not yet validated: [`NewJob::validate`])
/// and the canonical text of the request, which idempotent replays are compared by.
pub fn parse_job_request(project_id: ProjectId, value: Value) -> Result<(NewJob, String), InvalidJobRequest> {
    require_objects(&value)?;
    // serde_json keeps object keys sorted, so this text is the same for equal requests.
    let canonical = value.to_string();
    let body: CreateJobBody =
        serde_json::from_value(value).map_err(|e| invalid(format!("invalid job request body: {e}")))?;
    let service = ServiceName::parse(&body.service).map_err(|e| invalid(e.to_string()))?;
    let job_type = JobType::parse(&body.job_type).map_err(|e| invalid(e.to_string()))?;
    let sub_jobs = body
        .sub_jobs
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, sub)| {
            Ok(NewSubJob {
                job_type: JobType::parse(&sub.job_type).map_err(|e| invalid(format!("sub_jobs[{i}].{e}")))?,
                resource_id: sub.resource_id,
                entities: sub.entities.unwrap_or_default(),
                payload: sub.payload,
                simulate: sub.simulate,
                max_attempts: sub.max_attempts,
                timeout_seconds: sub.timeout_seconds,
            })
        })
        .collect::<Result<Vec<_>, InvalidJobRequest>>()?;
    let defaults = NewJob::new(project_id.clone(), service.clone(), job_type.clone());
    let new_job = NewJob {
        project_id,
        enterprise_project_id: match body.enterprise_project_id {
            Some(raw) => parse_enterprise_project_id(&raw).map_err(|e| invalid(e.to_string()))?,
            None => DEFAULT_ENTERPRISE_PROJECT_ID.to_owned(),
        },
        service,
        job_type,
        resource_id: body.resource_id,
        entities: body.entities.unwrap_or_default(),
        payload: body.payload,
        message: body.message,
        simulate: body.simulate,
        sub_jobs,
        priority: body.priority.unwrap_or(defaults.priority),
        run_at: body.run_at.map(crate::clock::truncate_to_millis),
        max_attempts: body.max_attempts.unwrap_or(defaults.max_attempts),
        retry_backoff: body.retry_backoff.unwrap_or(defaults.retry_backoff),
        timeout_seconds: body.timeout_seconds,
        execution: body.execution.unwrap_or(defaults.execution),
        on_failure: body.on_failure.unwrap_or(defaults.on_failure),
    };
    Ok((new_job, canonical))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `job_request` fuzz target: a number with more digits than a float holds
    /// must read to the same float from the request and from its canonical text (serde_json's
    /// `float_roundtrip`: correctly rounded parsing).
    #[test]
    fn a_long_decimal_reads_back_the_same_from_the_canonical_text() {
        let project = ProjectId::parse("0123456789abcdef0123456789abcdef").unwrap();
        let body = br#"{"service": "elb", "job_type": "UPGRADE", "retry_backoff": {"initial_seconds":
            88888000000000000000000000000000000000000000000010248191152060862002.5, "multiplier": 2,
            "max_seconds": 60}}"#;
        let (job, canonical) = parse_job_request_bytes(project.clone(), body).unwrap();
        let (again, _) = parse_job_request_bytes(project, canonical.as_bytes()).unwrap();
        assert_eq!(again, job, "{canonical}");
    }
}
