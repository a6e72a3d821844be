//! The state machine: the only code that changes a job's status, attempts, lease, message, error or
//! result.
//!
//! `apply` takes a whole job tree (a parent and its ordered sub-jobs), the id of the job an event
//! is for, the event and the time; it answers the new tree or a `TransitionError`, never a
//! half-changed tree. A parent's status is always derived from its sub-jobs; statuses only move
//! forward; every visible change raises the `version` of the job and of its parent. (Extending a
//! lease is not a visible change: it is kept, but raises no version.)

use serde_json::Value;

use crate::clock::Timestamp;
use crate::error::TransitionError;
use crate::ids::JobId;
use crate::job::{Compensation, Execution, Job, OnFailure, Phase};
use crate::lease::Lease;
use crate::status::JobStatus;

/// Error codes jobd itself gives to jobs.
pub const JOB_TIMEOUT: &str = "JOB.TIMEOUT";
pub const JOB_LEASE_EXPIRED: &str = "JOB.LEASE_EXPIRED";

/// Something that happens to a job.
#[derive(Debug, Clone, PartialEq)]
pub enum JobEvent {
    /// Work on a task begins without a lease (an operator or a test driving the job directly).
    Start { message: Option<String> },
    /// A progress line; the latest one is the job's `message`.
    Progress { message: String },
    /// The work ended well (without a lease).
    Succeed { result: Option<Value>, message: Option<String> },
    /// The work ended badly, for good (without a lease).
    Fail { error_code: String, error_msg: String },
    /// The producer gave up on the job: it and its unfinished sub-jobs end `CANCELLED`.
    Cancel,
    /// A worker takes the task: a new attempt under a new lease.
    Claim { lease: Lease },
    /// The lease holder is alive: optionally extends the lease and sets a progress line.
    Heartbeat { lease_token: String, lease_expires_at: Option<Timestamp>, message: Option<String> },
    /// The lease holder finished the task. Completing twice with the same lease changes nothing.
    Complete { lease_token: String, result: Option<Value>, message: Option<String> },
    /// The lease holder's attempt failed. A retryable failure with attempts left waits out the
    /// backoff (`jitter` in `[0, 1)` spreads it); otherwise the job fails.
    FailAttempt { lease_token: String, error_code: String, error_msg: String, retryable: bool, jitter: f64 },
    /// The rescuer: the last attempt's lease expired, so the job fails with `JOB.LEASE_EXPIRED`.
    ExpireLease,
    /// The timeout duty: past `timeout_seconds` since the first start, the job fails with `JOB.TIMEOUT`.
    TimeOut,
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
        apply_to_top(&mut next, event, now)?;
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

fn apply_to_top(job: &mut Job, event: &JobEvent, now: Timestamp) -> Result<(), TransitionError> {
    match event {
        JobEvent::Cancel => {
            refuse_if_terminal(job)?;
            end(job, JobStatus::Cancelled, now);
            for sub in job.sub_jobs.iter_mut().filter(|sub| !sub.is_terminal()) {
                end(sub, JobStatus::Cancelled, now);
            }
            cancel_open_compensations(job, now);
            Ok(())
        }
        JobEvent::TimeOut if job.phase == Phase::Rollback => {
            refuse_if_terminal(job)?;
            check_deadline(job, now)?;
            let message = timeout_message(job);
            end_rollback_with_failure(job, None, JOB_TIMEOUT, &message, now);
            Ok(())
        }
        JobEvent::TimeOut if job.has_sub_jobs() => {
            // The parent's time is up: its first open sub-job fails with JOB.TIMEOUT (the parent
            // follows it, as for any failing sub-job) and the rest are cancelled.
            refuse_if_terminal(job)?;
            check_deadline(job, now)?;
            let message = timeout_message(job);
            let index =
                job.sub_jobs.iter().position(|sub| !sub.is_terminal()).expect("an open parent has an open sub-job");
            fail(&mut job.sub_jobs[index], JOB_TIMEOUT, &message, now)?;
            follow_sub_job(job, index, now);
            Ok(())
        }
        JobEvent::TimeOut => time_out(job, now),
        _ if !job.has_sub_jobs() => apply_to_task(job, true, event, now),
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
    if let JobEvent::Cancel = event {
        return Err(TransitionError::SubJobCancel {
            job_id: parent.sub_jobs[index].job_id.to_string(),
            parent_job_id: parent.job_id.to_string(),
        });
    }
    refuse_if_terminal(parent)?;
    if parent.phase == Phase::Rollback {
        return apply_to_compensation(parent, index, event, now);
    }
    let turn_has_come = parent.execution == Execution::Parallel
        || parent.sub_jobs[..index].iter().all(|before| before.status == JobStatus::Succeeded);
    match event {
        JobEvent::TimeOut => time_out(&mut parent.sub_jobs[index], now)?,
        _ => apply_to_task(&mut parent.sub_jobs[index], turn_has_come, event, now)?,
    }
    follow_sub_job(parent, index, now);
    Ok(())
}

/// Brings a parent in line with its sub-job `index`, which just changed.
fn follow_sub_job(parent: &mut Job, index: usize, now: Timestamp) {
    let sub = &parent.sub_jobs[index];
    if sub.message.is_some() && sub.message != parent.message {
        parent.message = sub.message.clone();
    }
    let derived = derive_parent_status(&parent.sub_jobs);
    if derived == parent.status {
        return;
    }
    match derived {
        JobStatus::Running => {
            parent.status = JobStatus::Running;
            parent.started_at.get_or_insert(now);
        }
        JobStatus::Failed => {
            parent.error_code = sub.error_code.clone();
            parent.error_msg = sub.error_msg.clone();
            for other in parent.sub_jobs.iter_mut().filter(|other| !other.is_terminal()) {
                end(other, JobStatus::Cancelled, now);
            }
            let any_succeeded = parent.sub_jobs.iter().any(|s| s.status == JobStatus::Succeeded);
            if parent.on_failure == OnFailure::Rollback && any_succeeded {
                start_rollback(parent, now);
            } else {
                end(parent, JobStatus::Failed, now);
            }
        }
        terminal => end(parent, terminal, now),
    }
}

/// A sub-job failed for good under `on_failure: rollback`: the parent stays `RUNNING` in the
/// rollback phase (keeping the failure as its error) and every succeeded sub-job gets a pending
/// compensation, run last first.
fn start_rollback(parent: &mut Job, now: Timestamp) {
    parent.phase = Phase::Rollback;
    parent.status = JobStatus::Running;
    for sub in parent.sub_jobs.iter_mut().filter(|sub| sub.status == JobStatus::Succeeded) {
        sub.compensation = Some(Compensation::pending());
        sub.lease = None;
        sub.available_at = now;
    }
}

/// Ends a rollback that cannot finish: the compensation `failed` (or else the first open one)
/// fails with the given error, the rest are cancelled, and the parent fails.
fn end_rollback_with_failure(parent: &mut Job, failed: Option<usize>, code: &str, msg: &str, now: Timestamp) {
    let index = failed.or_else(|| {
        parent.sub_jobs.iter().rposition(|sub| sub.compensation.as_ref().is_some_and(|c| !c.is_terminal()))
    });
    if let Some(compensation) = index.and_then(|i| parent.sub_jobs[i].compensation.as_mut()) {
        compensation.status = JobStatus::Failed;
        compensation.error_code = Some(code.to_owned());
        compensation.error_msg = Some(msg.to_owned());
        compensation.ended_at = Some(now);
    }
    cancel_open_compensations(parent, now);
    end(parent, JobStatus::Failed, now);
}

fn cancel_open_compensations(parent: &mut Job, now: Timestamp) {
    for compensation in parent.sub_jobs.iter_mut().filter_map(|sub| sub.compensation.as_mut()) {
        if !compensation.is_terminal() {
            compensation.status = JobStatus::Cancelled;
            compensation.ended_at = Some(now);
        }
    }
}

/// An event for the compensation of sub-job `index` while its parent rolls back.
fn apply_to_compensation(
    parent: &mut Job,
    index: usize,
    event: &JobEvent,
    now: Timestamp,
) -> Result<(), TransitionError> {
    let sub_id = parent.sub_jobs[index].job_id.to_string();
    let Some(compensation) = parent.sub_jobs[index].compensation.clone() else {
        return Err(TransitionError::NothingToCompensate { job_id: sub_id });
    };
    if let JobEvent::Complete { lease_token, .. } = event {
        let same_lease = parent.sub_jobs[index].lease.as_ref().is_some_and(|lease| &lease.token == lease_token);
        if compensation.status == JobStatus::Succeeded && same_lease {
            return Ok(()); // completing twice changes nothing
        }
    }
    if compensation.is_terminal() {
        return Err(TransitionError::AlreadyTerminal { job_id: sub_id, status: compensation.status });
    }
    let turn_has_come = parent.sub_jobs[index + 1..]
        .iter()
        .filter_map(|later| later.compensation.as_ref())
        .all(|later| later.status == JobStatus::Succeeded);
    let sub = &mut parent.sub_jobs[index];
    let mut compensation = compensation;
    let mut failure: Option<(String, String)> = None;
    match event {
        JobEvent::Claim { lease } => {
            if !turn_has_come {
                return Err(TransitionError::OutOfOrder { job_id: sub_id });
            }
            if sub.available_at > now {
                return Err(TransitionError::NotClaimable { job_id: sub_id, reason: "it is not due yet" });
            }
            if sub.lease.as_ref().is_some_and(|held| !held.is_expired(now)) {
                return Err(TransitionError::NotClaimable { job_id: sub_id, reason: "another worker holds it" });
            }
            if compensation.attempt >= sub.max_attempts {
                return Err(TransitionError::NotClaimable { job_id: sub_id, reason: "it has no attempts left" });
            }
            compensation.attempt += 1;
            compensation.status = JobStatus::Running;
            compensation.started_at.get_or_insert(now);
            sub.lease = Some(lease.clone());
        }
        JobEvent::Heartbeat { lease_token, lease_expires_at, message } => {
            let lease = held_lease(sub, lease_token)?;
            if let Some(expires_at) = lease_expires_at {
                lease.expires_at = *expires_at;
            }
            if message.is_some() {
                sub.message = message.clone();
            }
        }
        JobEvent::Progress { message } => sub.message = Some(message.clone()),
        JobEvent::Complete { lease_token, message, .. } => {
            held_lease(sub, lease_token)?;
            compensation.status = JobStatus::Succeeded;
            compensation.ended_at = Some(now);
            if message.is_some() {
                sub.message = message.clone();
            }
        }
        JobEvent::FailAttempt { lease_token, error_code, error_msg, retryable, jitter } => {
            held_lease(sub, lease_token)?;
            if *retryable && compensation.attempt < sub.max_attempts {
                let delay_ms = sub.retry_backoff.delay_ms(compensation.attempt, *jitter);
                sub.available_at = now + chrono::Duration::milliseconds(delay_ms as i64);
                sub.lease = None;
            } else {
                failure = Some((error_code.clone(), error_msg.clone()));
            }
        }
        JobEvent::ExpireLease => {
            let expired = sub.lease.as_ref().is_some_and(|lease| lease.is_expired(now));
            if !expired || compensation.attempt < sub.max_attempts {
                return Err(TransitionError::NotDue {
                    job_id: sub_id,
                    reason: "only the expired lease of the last attempt fails a compensation",
                });
            }
            failure =
                Some((JOB_LEASE_EXPIRED.to_owned(), "the lease of the last compensation attempt expired".to_owned()));
        }
        JobEvent::Start { .. } | JobEvent::Succeed { .. } | JobEvent::Fail { .. } | JobEvent::TimeOut => {
            return Err(TransitionError::RollingBack { job_id: parent.job_id.to_string() });
        }
        JobEvent::Cancel => unreachable!("handled by the tree"),
    }
    if sub.message.is_some() && sub.message != parent.message {
        parent.message = parent.sub_jobs[index].message.clone();
    }
    parent.sub_jobs[index].compensation = Some(compensation);
    if let Some((code, msg)) = failure {
        end_rollback_with_failure(parent, Some(index), &code, &msg, now);
    } else if parent
        .sub_jobs
        .iter()
        .filter_map(|sub| sub.compensation.as_ref())
        .all(|compensation| compensation.status == JobStatus::Succeeded)
    {
        end(parent, JobStatus::Failed, now);
    }
    Ok(())
}

/// An event for a task (a job without sub-jobs, or one sub-job). `turn_has_come` says whether the
/// sub-jobs ahead of it let it start.
fn apply_to_task(job: &mut Job, turn_has_come: bool, event: &JobEvent, now: Timestamp) -> Result<(), TransitionError> {
    let job_id = || job.job_id.to_string();
    if let JobEvent::Complete { lease_token, .. } = event {
        let same_lease = job.lease.as_ref().is_some_and(|lease| &lease.token == lease_token);
        if job.status == JobStatus::Succeeded && same_lease {
            return Ok(()); // completing twice changes nothing
        }
    }
    refuse_if_terminal(job)?;
    let starting = job.status == JobStatus::Pending
        && matches!(
            event,
            JobEvent::Start { .. } | JobEvent::Succeed { .. } | JobEvent::Fail { .. } | JobEvent::Claim { .. }
        );
    if starting && !turn_has_come {
        return Err(TransitionError::OutOfOrder { job_id: job_id() });
    }
    match event {
        JobEvent::Start { message } => {
            move_to(job, JobStatus::Running)?;
            job.started_at = Some(now);
            if message.is_some() {
                job.message = message.clone();
            }
        }
        JobEvent::Progress { message } => job.message = Some(message.clone()),
        JobEvent::Succeed { result, message } => succeed(job, result, message, now)?,
        JobEvent::Fail { error_code, error_msg } => fail(job, error_code, error_msg, now)?,
        JobEvent::Claim { lease } => {
            if job.available_at > now {
                return Err(TransitionError::NotClaimable { job_id: job_id(), reason: "it is not due yet" });
            }
            if job.lease.as_ref().is_some_and(|held| !held.is_expired(now)) {
                return Err(TransitionError::NotClaimable { job_id: job_id(), reason: "another worker holds it" });
            }
            if job.attempt >= job.max_attempts {
                return Err(TransitionError::NotClaimable { job_id: job_id(), reason: "it has no attempts left" });
            }
            if job.status == JobStatus::Pending {
                move_to(job, JobStatus::Running)?;
                job.started_at = Some(now);
            }
            job.attempt += 1;
            job.lease = Some(lease.clone());
        }
        JobEvent::Heartbeat { lease_token, lease_expires_at, message } => {
            let lease = held_lease(job, lease_token)?;
            if let Some(expires_at) = lease_expires_at {
                lease.expires_at = *expires_at;
            }
            if message.is_some() {
                job.message = message.clone();
            }
        }
        JobEvent::Complete { lease_token, result, message } => {
            held_lease(job, lease_token)?;
            succeed(job, result, message, now)?;
        }
        JobEvent::FailAttempt { lease_token, error_code, error_msg, retryable, jitter } => {
            held_lease(job, lease_token)?;
            if *retryable && job.attempt < job.max_attempts {
                let delay_ms = job.retry_backoff.delay_ms(job.attempt, *jitter);
                job.available_at = now + chrono::Duration::milliseconds(delay_ms as i64);
                job.lease = None;
                job.message = Some(format!(
                    "attempt {} of {} failed ({error_code}: {error_msg}); retrying in {:.1}s",
                    job.attempt,
                    job.max_attempts,
                    delay_ms as f64 / 1000.0
                ));
            } else {
                fail(job, error_code, error_msg, now)?;
            }
        }
        JobEvent::ExpireLease => {
            let expired = job.lease.as_ref().is_some_and(|lease| lease.is_expired(now));
            if !expired || job.attempt < job.max_attempts {
                return Err(TransitionError::NotDue {
                    job_id: job_id(),
                    reason: "only the expired lease of the last attempt fails a job",
                });
            }
            fail(job, JOB_LEASE_EXPIRED, "the lease of the last attempt expired before the work was reported", now)?;
        }
        JobEvent::Cancel | JobEvent::TimeOut => unreachable!("handled by the tree"),
    }
    Ok(())
}

fn check_deadline(job: &Job, now: Timestamp) -> Result<(), TransitionError> {
    if job.deadline().is_some_and(|deadline| deadline <= now) {
        Ok(())
    } else {
        Err(TransitionError::NotDue { job_id: job.job_id.to_string(), reason: "its timeout has not passed" })
    }
}

fn timeout_message(job: &Job) -> String {
    format!("the job did not finish within {} seconds", job.timeout_seconds.unwrap_or_default())
}

fn time_out(job: &mut Job, now: Timestamp) -> Result<(), TransitionError> {
    refuse_if_terminal(job)?;
    check_deadline(job, now)?;
    let message = timeout_message(job);
    fail(job, JOB_TIMEOUT, &message, now)
}

/// The lease of `job` if `token` names it; a different token means another claim took over.
fn held_lease<'a>(job: &'a mut Job, token: &str) -> Result<&'a mut Lease, TransitionError> {
    let job_id = job.job_id.to_string();
    match job.lease.as_mut() {
        Some(lease) if lease.token == token => Ok(lease),
        _ => Err(TransitionError::LeaseLost { job_id }),
    }
}

fn succeed(
    job: &mut Job,
    result: &Option<Value>,
    message: &Option<String>,
    now: Timestamp,
) -> Result<(), TransitionError> {
    move_to(job, JobStatus::Succeeded)?;
    job.result = result.clone();
    if message.is_some() {
        job.message = message.clone();
    }
    end(job, JobStatus::Succeeded, now);
    Ok(())
}

fn fail(job: &mut Job, error_code: &str, error_msg: &str, now: Timestamp) -> Result<(), TransitionError> {
    move_to(job, JobStatus::Failed)?;
    job.error_code = Some(error_code.to_owned());
    job.error_msg = Some(error_msg.to_owned());
    end(job, JobStatus::Failed, now);
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

/// Whether a change is one the job's readers see (everything but the lease's expiry).
fn same_state(a: &Job, b: &Job) -> bool {
    a.status == b.status
        && a.message == b.message
        && a.error_code == b.error_code
        && a.error_msg == b.error_msg
        && a.result == b.result
        && a.started_at == b.started_at
        && a.ended_at == b.ended_at
        && a.attempt == b.attempt
        && a.available_at == b.available_at
        && a.lease.as_ref().map(|l| &l.token) == b.lease.as_ref().map(|l| &l.token)
        && a.phase == b.phase
        && a.compensation == b.compensation
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
