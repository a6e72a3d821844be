//! The built-in simulator: an ordinary worker, in process, that claims the tasks carrying a
//! `simulate` spec through the same claim / heartbeat / complete / fail path as external workers.
//!
//! For each task it sets the first message at once, each further message evenly across
//! `duration_ms` (counted from the task's first start, so a task re-claimed after a crash picks up
//! where it was), heartbeats in between, then completes it or fails it for good as the spec says.
//! A refused heartbeat (cancelled, timed out, lease lost) stops the task at once.

use std::time::Duration;

use crate::{ClaimRequest, ClaimedTask, JobService, ServiceError, TaskScope};
use jobd_core::{JobEvent, JobId, Phase, SimulateOutcome, SimulateSpec, Timestamp};

const WORKER_ID: &str = "jobd-simulator";
const LEASE_SECONDS: u32 = 10;
/// Heartbeats come at least this often while a task plays.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(3);
const CLAIM_BATCH: u32 = 64;
const CLAIM_WAIT: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct Simulator {
    service: JobService,
}

/// Why a task stopped before its end.
enum Halt {
    /// The job moved on without us (cancelled, timed out, taken over) or is gone.
    Superseded,
}

impl Simulator {
    pub fn new(service: JobService) -> Self {
        Simulator { service }
    }

    /// Starts the claim loop in the background.
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move { self.run().await })
    }

    async fn run(self) {
        let request = ClaimRequest {
            worker_id: WORKER_ID.to_owned(),
            project_ids: None,
            enterprise_project_ids: None,
            services: Vec::new(),
            job_types: Vec::new(),
            simulated: true,
            lease_seconds: LEASE_SECONDS,
            max_tasks: CLAIM_BATCH,
        };
        let mut delay = Duration::from_millis(100);
        loop {
            match self.service.claim(&request, CLAIM_WAIT).await {
                Ok(tasks) => {
                    delay = Duration::from_millis(100);
                    for task in tasks {
                        let this = self.clone();
                        tokio::spawn(async move {
                            let _ = this.play(task).await;
                        });
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "simulator cannot claim; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    async fn play(&self, claimed: ClaimedTask) -> Result<(), Halt> {
        let task = claimed.task();
        let task_id = task.job_id.clone();
        let spec = task.simulate.clone().ok_or(Halt::Superseded)?;
        let token = task.lease.as_ref().map(|lease| lease.token.clone()).ok_or(Halt::Superseded)?;
        let started_at = task.started_at.ok_or(Halt::Superseded)?;
        let lease = Lease { task_id, token };
        if claimed.tree.phase == Phase::Rollback {
            // A compensation: the simulator undoes a simulated step at once.
            self.heartbeat(&lease, Some(format!("compensating {}", task.job_type))).await?;
            let event = JobEvent::Complete { lease_token: lease.token.clone(), result: None, message: None };
            return self.record(&lease, event).await;
        }

        // Messages whose time has already passed (after a re-claim) collapse into the latest.
        let due_now = (0..spec.messages.len())
            .take_while(|&i| self.offset_passed(started_at, spec.message_offset_ms(i)))
            .last()
            .unwrap_or(0);
        if let Some(message) = spec.messages.get(due_now) {
            self.heartbeat(&lease, Some(message.clone())).await?;
        }
        for (index, message) in spec.messages.iter().enumerate().skip(due_now + 1) {
            self.wait_until(&lease, started_at, spec.message_offset_ms(index)).await?;
            self.heartbeat(&lease, Some(message.clone())).await?;
        }
        self.wait_until(&lease, started_at, spec.duration_ms).await?;
        self.finish(&lease, &spec).await
    }

    fn offset_passed(&self, started_at: Timestamp, offset_ms: u64) -> bool {
        started_at + chrono::Duration::milliseconds(offset_ms as i64) <= self.service.now()
    }

    /// Sleeps until `offset_ms` after the start, heartbeating on the way.
    async fn wait_until(&self, lease: &Lease, started_at: Timestamp, offset_ms: u64) -> Result<(), Halt> {
        let deadline = started_at + chrono::Duration::milliseconds(offset_ms as i64);
        loop {
            let Ok(remaining) = (deadline - self.service.now()).to_std() else { return Ok(()) };
            if remaining <= HEARTBEAT_EVERY {
                tokio::time::sleep(remaining).await;
                return Ok(());
            }
            tokio::time::sleep(HEARTBEAT_EVERY).await;
            self.heartbeat(lease, None).await?;
        }
    }

    async fn heartbeat(&self, lease: &Lease, message: Option<String>) -> Result<(), Halt> {
        let expires_at = self.service.now() + chrono::Duration::seconds(i64::from(LEASE_SECONDS));
        let event =
            JobEvent::Heartbeat { lease_token: lease.token.clone(), lease_expires_at: Some(expires_at), message };
        self.record(lease, event).await
    }

    async fn finish(&self, lease: &Lease, spec: &SimulateSpec) -> Result<(), Halt> {
        let event = match spec.outcome {
            SimulateOutcome::Success => {
                JobEvent::Complete { lease_token: lease.token.clone(), result: None, message: None }
            }
            SimulateOutcome::Failure => JobEvent::FailAttempt {
                lease_token: lease.token.clone(),
                error_code: spec.error_code_or_default(),
                error_msg: spec.error_msg_or_default(),
                retryable: false,
                jitter: 0.0,
            },
        };
        self.record(lease, event).await
    }

    /// Records an event, retrying while the store is failing; stops when the job has moved on.
    async fn record(&self, lease: &Lease, event: JobEvent) -> Result<(), Halt> {
        let mut delay = Duration::from_millis(100);
        loop {
            match self.service.record_task_event(&lease.task_id, event.clone(), &TaskScope::default()).await {
                Ok(_) => return Ok(()),
                Err(ServiceError::Store(error)) => {
                    tracing::warn!(job_id = %lease.task_id, %error, "simulator cannot record an event; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                Err(error) => {
                    tracing::debug!(job_id = %lease.task_id, %error, "simulation superseded");
                    return Err(Halt::Superseded);
                }
            }
        }
    }
}

/// The task a simulation holds.
struct Lease {
    task_id: JobId,
    token: String,
}
