//! The built-in simulator: runs every open job (or sub-job) that carries a `simulate` spec.
//!
//! For each such job it records `Start` with the first message, each further message evenly across
//! `duration_ms`, then `Succeed` or `Fail` as the spec says. Sub-jobs run in order; a sub-job
//! without a spec halts the tree (it waits for a real worker). A job cancelled meanwhile refuses
//! the next event, which ends the simulation: a cancelled job is never overwritten. After a restart
//! the simulator picks up open jobs and continues from their recorded start time.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jobd_core::{Job, JobEvent, JobId, SimulateOutcome, SimulateSpec, Timestamp};
use jobd_service::{JobService, ServiceError};
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

/// How many open simulated jobs are read per page when resuming them.
const RESUME_BATCH: u32 = 1_000;

#[derive(Clone)]
pub struct Simulator {
    service: JobService,
    running: Arc<Mutex<HashSet<JobId>>>,
}

/// Why a simulation stopped early.
enum Halt {
    /// The job moved on without us (cancelled, or finished elsewhere), or is gone.
    Superseded,
    /// A sub-job has no simulate spec: a real worker must run it.
    NotSimulated,
}

impl Simulator {
    pub fn new(service: JobService) -> Self {
        Simulator { service, running: Arc::new(Mutex::new(HashSet::new())) }
    }

    /// Starts the simulator: resumes open simulated jobs, then follows newly created ones.
    pub fn spawn(self) -> JoinHandle<()> {
        tokio::spawn(async move { self.run().await })
    }

    async fn run(self) {
        let mut changes = self.service.subscribe();
        self.resume_open_jobs().await;
        loop {
            match changes.recv().await {
                Ok(change) if change.created && change.job.needs_simulation() => {
                    self.drive((*change.job).clone());
                }
                Ok(_) => {}
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "simulator fell behind the change feed; rescanning open jobs");
                    self.resume_open_jobs().await;
                }
                Err(RecvError::Closed) => return,
            }
        }
    }

    async fn resume_open_jobs(&self) {
        let mut delay = Duration::from_millis(200);
        let mut after: Option<JobId> = None;
        loop {
            match self.service.open_simulated_jobs(after.as_ref(), RESUME_BATCH).await {
                Ok(jobs) => {
                    let last_page = jobs.len() < RESUME_BATCH as usize;
                    after = jobs.last().map(|job| job.job_id.clone());
                    for job in jobs {
                        self.drive(job);
                    }
                    if last_page {
                        return;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot list open simulated jobs; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// Spawns the driver of one job tree unless one is already running.
    fn drive(&self, job: Job) {
        let job_id = job.job_id.clone();
        if !self.running.lock().expect("simulator registry").insert(job_id.clone()) {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            match this.play_tree(job).await {
                Ok(()) | Err(Halt::Superseded) | Err(Halt::NotSimulated) => {}
            }
            this.running.lock().expect("simulator registry").remove(&job_id);
        });
    }

    async fn play_tree(&self, mut tree: Job) -> Result<(), Halt> {
        if !tree.has_sub_jobs() {
            let spec = tree.simulate.clone().ok_or(Halt::NotSimulated)?;
            self.play_leaf(&tree, &tree.job_id.clone(), &spec).await?;
            return Ok(());
        }
        for index in 0..tree.sub_jobs.len() {
            let sub = &tree.sub_jobs[index];
            if sub.is_terminal() {
                continue;
            }
            let spec = sub.simulate.clone().ok_or(Halt::NotSimulated)?;
            let sub_id = sub.job_id.clone();
            tree = self.play_leaf(&tree, &sub_id, &spec).await?;
            if tree.is_terminal() {
                break;
            }
        }
        Ok(())
    }

    /// Plays one job without sub-jobs (`target` within `tree`) to its end; answers the new tree.
    async fn play_leaf(&self, tree: &Job, target: &JobId, spec: &SimulateSpec) -> Result<Job, Halt> {
        let leaf = tree.find(target).ok_or(Halt::Superseded)?;
        let started_at = match leaf.started_at {
            Some(started_at) => started_at,
            None => {
                let start = JobEvent::Start { message: spec.messages.first().cloned() };
                let tree = self.record(tree, target, start).await?;
                tree.find(target).and_then(|l| l.started_at).ok_or(Halt::Superseded)?
            }
        };
        for (index, message) in spec.messages.iter().enumerate().skip(1) {
            self.sleep_until(started_at, spec.message_offset_ms(index)).await;
            self.record(tree, target, JobEvent::Progress { message: message.clone() }).await?;
        }
        self.sleep_until(started_at, spec.duration_ms).await;
        let end = match spec.outcome {
            SimulateOutcome::Success => JobEvent::Succeed { result: None, message: None },
            SimulateOutcome::Failure => {
                JobEvent::Fail { error_code: spec.error_code_or_default(), error_msg: spec.error_msg_or_default() }
            }
        };
        self.record(tree, target, end).await
    }

    async fn sleep_until(&self, started_at: Timestamp, offset_ms: u64) {
        let deadline = started_at + chrono::Duration::milliseconds(offset_ms as i64);
        if let Ok(wait) = (deadline - self.service.now()).to_std() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Records an event, retrying while the store is failing; stops when the job has moved on.
    async fn record(&self, tree: &Job, target: &JobId, event: JobEvent) -> Result<Job, Halt> {
        let mut delay = Duration::from_millis(100);
        loop {
            match self.service.record(&tree.project_id, target, event.clone()).await {
                Ok(tree) => return Ok(tree),
                Err(ServiceError::Store(error)) => {
                    tracing::warn!(job_id = %target, %error, "simulator cannot record an event; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                Err(error) => {
                    tracing::debug!(job_id = %target, %error, "simulation superseded");
                    return Err(Halt::Superseded);
                }
            }
        }
    }
}
