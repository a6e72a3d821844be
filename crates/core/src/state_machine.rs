//! The state machine: the only code that changes a job's status, message, error or result.
//!
//! `apply` takes a whole job tree (a parent and its ordered sub-jobs), the id of the job an event
//! is for, and the event; it answers the new tree or a `TransitionError`, never a half-changed tree.
//! A parent's status is always derived from its sub-jobs; statuses only move forward; every job
//! that changes gets a higher `version`, and so does the parent when any of its sub-jobs changes.

use serde_json::Value;

use crate::clock::Timestamp;
use crate::error::TransitionError;
use crate::ids::JobId;
use crate::job::Job;
use crate::status::JobStatus;

/// Something that happens to a job.
#[derive(Debug, Clone, PartialEq)]
pub enum JobEvent {
    /// Work on a job without sub-jobs (or on one sub-job) begins.
    Start { message: Option<String> },
    /// A progress line; the latest one is the job's `message`.
    Progress { message: String },
    /// The work ended well.
    Succeed { result: Option<Value>, message: Option<String> },
    /// The work ended badly, for good.
    Fail { error_code: String, error_msg: String },
    /// The producer gave up on the job: it and its unfinished sub-jobs end `CANCELLED`.
    Cancel,
}

/// The status a parent has given the statuses of its sub-jobs.
pub fn derive_parent_status(sub_jobs: &[Job]) -> JobStatus {
    let statuses = || sub_jobs.iter().map(|job| job.status);
    if statuses().any(|s| s == JobStatus::Failed) {
        JobStatus::Failed
    } else if statuses().all(|s| s == JobStatus::Succeeded) {
        JobStatus::Succeeded
    } else if statuses().any(|s| s == JobStatus::Cancelled) {
        JobStatus::Cancelled
    } else if statuses().any(|s| s != JobStatus::Pending) {
        JobStatus::Running
    } else {
        JobStatus::Pending
    }
}

/// Applies `event` to the job `target` within `tree` (the parent or one of its sub-jobs).
pub fn apply(tree: &Job, target: &JobId, event: &JobEvent, now: Timestamp) -> Result<Job, TransitionError> {
    let mut next = tree.clone();
    if &next.job_id == target {
        apply_to_parent(&mut next, event, now)?;
    } else {
        let index = next
            .sub_jobs
            .iter()
            .position(|sub| &sub.job_id == target)
            .ok_or_else(|| TransitionError::UnknownTarget { job_id: target.to_string() })?;
        apply_to_sub_job(&mut next, index, event, now)?;
    }
    bump_versions(tree, &mut next, now);
    Ok(next)
}

fn apply_to_parent(job: &mut Job, event: &JobEvent, now: Timestamp) -> Result<(), TransitionError> {
    if let JobEvent::Cancel = event {
        refuse_if_terminal(job)?;
        end(job, JobStatus::Cancelled, now);
        for sub in job.sub_jobs.iter_mut().filter(|sub| !sub.is_terminal()) {
            end(sub, JobStatus::Cancelled, now);
        }
        return Ok(());
    }
    if !job.has_sub_jobs() {
        return apply_to_leaf(job, event, now);
    }
    match event {
        JobEvent::Progress { message } => {
            refuse_if_terminal(job)?;
            job.message = Some(message.clone());
            Ok(())
        }
        _ => {
            refuse_if_terminal(job)?;
            Err(TransitionError::DerivedStatus { job_id: job.job_id.to_string() })
        }
    }
}

fn apply_to_sub_job(parent: &mut Job, index: usize, event: &JobEvent, now: Timestamp) -> Result<(), TransitionError> {
    let sub = &parent.sub_jobs[index];
    if let JobEvent::Cancel = event {
        return Err(TransitionError::SubJobCancel {
            job_id: sub.job_id.to_string(),
            parent_job_id: parent.job_id.to_string(),
        });
    }
    refuse_if_terminal(sub)?;
    let starts = matches!(event, JobEvent::Start { .. } | JobEvent::Succeed { .. } | JobEvent::Fail { .. })
        && sub.status == JobStatus::Pending;
    if starts && parent.sub_jobs[..index].iter().any(|before| before.status != JobStatus::Succeeded) {
        return Err(TransitionError::OutOfOrder { job_id: sub.job_id.to_string() });
    }
    apply_to_leaf(&mut parent.sub_jobs[index], event, now)?;

    let sub = &parent.sub_jobs[index];
    if sub.message.is_some() && sub.message != parent.message {
        parent.message = sub.message.clone();
    }
    let derived = derive_parent_status(&parent.sub_jobs);
    if derived == parent.status {
        return Ok(());
    }
    match derived {
        JobStatus::Running => {
            parent.status = JobStatus::Running;
            parent.started_at.get_or_insert(now);
        }
        JobStatus::Failed => {
            parent.error_code = sub.error_code.clone();
            parent.error_msg = sub.error_msg.clone();
            end(parent, JobStatus::Failed, now);
            for other in parent.sub_jobs.iter_mut().filter(|other| !other.is_terminal()) {
                end(other, JobStatus::Cancelled, now);
            }
        }
        terminal => end(parent, terminal, now),
    }
    Ok(())
}

fn apply_to_leaf(job: &mut Job, event: &JobEvent, now: Timestamp) -> Result<(), TransitionError> {
    refuse_if_terminal(job)?;
    match event {
        JobEvent::Start { message } => {
            move_to(job, JobStatus::Running)?;
            job.started_at = Some(now);
            if message.is_some() {
                job.message = message.clone();
            }
        }
        JobEvent::Progress { message } => job.message = Some(message.clone()),
        JobEvent::Succeed { result, message } => {
            move_to(job, JobStatus::Succeeded)?;
            job.result = result.clone();
            if message.is_some() {
                job.message = message.clone();
            }
            end(job, JobStatus::Succeeded, now);
        }
        JobEvent::Fail { error_code, error_msg } => {
            move_to(job, JobStatus::Failed)?;
            job.error_code = Some(error_code.clone());
            job.error_msg = Some(error_msg.clone());
            end(job, JobStatus::Failed, now);
        }
        JobEvent::Cancel => {
            move_to(job, JobStatus::Cancelled)?;
            end(job, JobStatus::Cancelled, now);
        }
    }
    Ok(())
}

fn refuse_if_terminal(job: &Job) -> Result<(), TransitionError> {
    if job.is_terminal() {
        Err(TransitionError::AlreadyTerminal { job_id: job.job_id.to_string(), status: job.status })
    } else {
        Ok(())
    }
}

fn move_to(job: &mut Job, next: JobStatus) -> Result<(), TransitionError> {
    if !job.status.can_move_to(next) {
        return Err(TransitionError::NotAllowed { job_id: job.job_id.to_string(), from: job.status, to: next });
    }
    job.status = next;
    Ok(())
}

/// Ends a job in a terminal status. A job that never started keeps `started_at` empty only when
/// cancelled; success and failure imply it ran.
fn end(job: &mut Job, status: JobStatus, now: Timestamp) {
    debug_assert!(status.is_terminal());
    job.status = status;
    if status != JobStatus::Cancelled {
        job.started_at.get_or_insert(now);
    }
    job.ended_at = Some(now);
}

fn same_state(a: &Job, b: &Job) -> bool {
    a.status == b.status
        && a.message == b.message
        && a.error_code == b.error_code
        && a.error_msg == b.error_msg
        && a.result == b.result
        && a.started_at == b.started_at
        && a.ended_at == b.ended_at
}

fn bump_versions(before: &Job, after: &mut Job, now: Timestamp) {
    let mut any_changed = false;
    for (old, new) in before.sub_jobs.iter().zip(after.sub_jobs.iter_mut()) {
        if !same_state(old, new) {
            new.version = old.version + 1;
            new.updated_at = now;
            any_changed = true;
        }
    }
    if any_changed || !same_state(before, after) {
        after.version = before.version + 1;
        after.updated_at = now;
    }
}
