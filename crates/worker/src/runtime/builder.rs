//! Registering handlers and settings: [`WorkerRuntimeBuilder`], whose mistakes come back from
//! `build` as a [`BuildError`] (the first one made), never as a panic.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use jobd_client::{Client, MAX_TASKS_PER_CLAIM, MAX_WAIT_SECONDS};
use tokio::sync::{mpsc, Semaphore};

use super::claiming::claim_groups;
use super::reporting::Reporter;
use super::{Counters, Handler, RuntimeConfig, Shared, WorkerRuntime, MAX_IN_FLIGHT};

/// A worker set up wrongly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error("no service registered: call .service(name) and then .handler(job_type, handler)")]
    NoService,
    #[error("{0} was registered before any .service(name)")]
    NoCurrentService(String),
    #[error("service {0} has no handler")]
    NoHandler(String),
    #[error("service {service} has a compensation for {job_type} but no handler for it")]
    CompensationWithoutHandler { service: String, job_type: String },
    #[error("{job_type} of service {service} has two handlers")]
    DuplicateHandler { service: String, job_type: String },
    #[error("invalid setting: {0}")]
    InvalidSetting(String),
}

#[derive(Default)]
pub(super) struct ServiceHandlers {
    pub(super) run: HashMap<String, Arc<dyn Handler>>,
    pub(super) compensate: HashMap<String, Arc<dyn Handler>>,
    pub(super) fallback: Option<Arc<dyn Handler>>,
    pub(super) fallback_compensation: Option<Arc<dyn Handler>>,
}

/// Registers handlers and settings; finish with [`WorkerRuntimeBuilder::build`].
pub struct WorkerRuntimeBuilder {
    client: Client,
    worker_id: String,
    config: RuntimeConfig,
    services: BTreeMap<String, ServiceHandlers>,
    current_service: Option<String>,
    error: Option<BuildError>,
}

impl fmt::Debug for WorkerRuntimeBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerRuntimeBuilder")
            .field("worker_id", &self.worker_id)
            .field("services", &self.services.keys().collect::<Vec<_>>())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl WorkerRuntimeBuilder {
    pub(super) fn new(client: Client, worker_id: String) -> Self {
        WorkerRuntimeBuilder {
            client,
            worker_id,
            config: RuntimeConfig::default(),
            services: BTreeMap::new(),
            current_service: None,
            error: None,
        }
    }

    /// Handlers registered next belong to this service (`cfw`, `waf`, `elb`...).
    pub fn service(mut self, service: impl Into<String>) -> Self {
        let service = service.into();
        self.services.entry(service.clone()).or_default();
        self.current_service = Some(service);
        self
    }

    /// Runs tasks of `job_type` of the current service.
    pub fn handler(mut self, job_type: impl Into<String>, handler: impl Handler) -> Self {
        let job_type = job_type.into();
        let key = job_type.clone();
        self.register(&job_type, job_type.clone(), |handlers| handlers.run.insert(key, Arc::new(handler)).is_some());
        self
    }

    /// Runs the compensation (`phase: rollback`) tasks of `job_type` of the current service: undo
    /// what the handler did, because a later sub-job of the same parent failed.
    pub fn compensation(mut self, job_type: impl Into<String>, handler: impl Handler) -> Self {
        let job_type = job_type.into();
        let key = job_type.clone();
        self.register(&job_type, job_type.clone(), |handlers| {
            handlers.compensate.insert(key, Arc::new(handler)).is_some()
        });
        self
    }

    /// Runs every job type of the current service that has no handler of its own.
    pub fn fallback_handler(mut self, handler: impl Handler) -> Self {
        self.register("the fallback handler", "*".to_owned(), |handlers| {
            handlers.fallback.replace(Arc::new(handler)).is_some()
        });
        self
    }

    /// Runs the compensation tasks of every job type of the current service that has no
    /// compensation of its own. Needs a fallback handler: a worker compensates what it runs.
    pub fn fallback_compensation(mut self, handler: impl Handler) -> Self {
        self.register("the fallback compensation", "* (compensation)".to_owned(), |handlers| {
            handlers.fallback_compensation.replace(Arc::new(handler)).is_some()
        });
        self
    }

    /// All settings at once.
    pub fn config(mut self, config: RuntimeConfig) -> Self {
        self.config = config;
        self
    }

    pub fn max_in_flight(mut self, max_in_flight: usize) -> Self {
        self.config.max_in_flight = max_in_flight;
        self
    }

    pub fn lease_seconds(mut self, lease_seconds: u32) -> Self {
        self.config.lease_seconds = lease_seconds;
        self
    }

    pub fn wait_seconds(mut self, wait_seconds: u32) -> Self {
        self.config.wait_seconds = wait_seconds;
        self
    }

    /// Claims each group of services keeps in flight at once (1 to 8).
    pub fn claims_in_flight(mut self, claims_in_flight: usize) -> Self {
        self.config.claims_in_flight = claims_in_flight;
        self
    }

    pub fn drain_timeout(mut self, drain_timeout: Duration) -> Self {
        self.config.drain_timeout = drain_timeout;
        self
    }

    pub fn cancel_grace(mut self, cancel_grace: Duration) -> Self {
        self.config.cancel_grace = cancel_grace;
        self
    }

    /// Puts a handler into the current service's set; `put` answers whether it replaced one
    /// (`job_type` names it then). Without a current service, `what` names what had no place.
    fn register(&mut self, what: &str, job_type: String, put: impl FnOnce(&mut ServiceHandlers) -> bool) {
        let Some(service) = self.current_service.clone() else {
            return self.fail(BuildError::NoCurrentService(what.to_owned()));
        };
        if put(self.services.entry(service.clone()).or_default()) {
            self.fail(BuildError::DuplicateHandler { service, job_type });
        }
    }

    fn fail(&mut self, error: BuildError) {
        self.error.get_or_insert(error);
    }

    pub fn build(self) -> Result<WorkerRuntime, BuildError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        let config = self.config;
        let invalid = |m: &str| Err(BuildError::InvalidSetting(m.to_owned()));
        let id_chars = self.worker_id.chars().count();
        if !(1..=128).contains(&id_chars) || self.worker_id.chars().any(char::is_control) {
            return invalid("the worker id must be 1 to 128 characters without control characters");
        }
        if !(1..=MAX_IN_FLIGHT).contains(&config.max_in_flight) {
            return invalid("max_in_flight must be from 1 to 10000");
        }
        if !(1..=3600).contains(&config.lease_seconds) {
            return invalid("lease_seconds must be from 1 to 3600");
        }
        if config.wait_seconds > MAX_WAIT_SECONDS {
            return invalid("wait_seconds must be from 0 to 60");
        }
        if self.services.is_empty() {
            return Err(BuildError::NoService);
        }
        for (service, handlers) in &self.services {
            if handlers.run.is_empty() && handlers.fallback.is_none() {
                return Err(BuildError::NoHandler(service.clone()));
            }
            if handlers.fallback.is_none() {
                if let Some(job_type) = handlers.compensate.keys().find(|t| !handlers.run.contains_key(*t)) {
                    return Err(BuildError::CompensationWithoutHandler {
                        service: service.clone(),
                        job_type: job_type.clone(),
                    });
                }
                if handlers.fallback_compensation.is_some() {
                    return Err(BuildError::CompensationWithoutHandler {
                        service: service.clone(),
                        job_type: "* (the fallback compensation needs a fallback handler)".to_owned(),
                    });
                }
            }
        }
        let claim_groups = claim_groups(&self.services);
        let per_claim = (config.max_in_flight / claim_groups.len()).clamp(1, MAX_TASKS_PER_CLAIM as usize);
        let (queue, queued) = mpsc::unbounded_channel();
        let reporter = Reporter { client: self.client.clone(), queue, batched: Arc::new(AtomicBool::new(true)) };
        let shared = Shared {
            reporter,
            client: self.client,
            worker_id: self.worker_id,
            slots: Arc::new(Semaphore::new(config.max_in_flight)),
            config,
            services: self.services,
            counters: Counters::default(),
        };
        Ok(WorkerRuntime { shared: Arc::new(shared), claim_groups, per_claim, queued })
    }
}

#[cfg(test)]
mod tests {
    use jobd_client::{Credentials, Phase, Task};

    use super::super::claiming::ClaimGroup;
    use super::super::reporting::Report;
    use super::super::{HandlerResult, TaskContext, NO_COMPENSATION, NO_HANDLER};
    use super::*;

    fn client() -> Client {
        Client::new("http://127.0.0.1:9", Credentials::new("AK", "SK")).unwrap()
    }

    async fn ok(_: Task, _: TaskContext) -> HandlerResult {
        Ok(None)
    }

    fn task(service: &str, job_type: &str, phase: Phase) -> Task {
        Task {
            job_id: "j".into(),
            parent_job_id: None,
            project_id: "p".into(),
            service: service.into(),
            job_type: job_type.into(),
            resource_id: None,
            entities: Vec::new(),
            payload: None,
            attempt: 1,
            max_attempts: 3,
            lease_token: "t".into(),
            lease_expires_at: chrono::Utc::now(),
            phase,
        }
    }

    fn refusal_code(result: Result<Arc<dyn Handler>, Report>) -> Option<String> {
        match result {
            Ok(_) => None,
            Err(Report::Fail { code, retryable, .. }) => {
                assert!(!retryable, "a refusal is for good");
                Some(code)
            }
            Err(Report::Complete(_) | Report::Abandon) => panic!("a refusal is a failure"),
        }
    }

    #[test]
    fn tasks_are_routed_by_service_job_type_and_phase() {
        let runtime = WorkerRuntime::builder(client(), "w")
            .service("cfw")
            .handler("Create", ok)
            .compensation("Create", ok)
            .handler("Delete", ok)
            .service("waf")
            .fallback_handler(ok)
            .service("elb")
            .fallback_handler(ok)
            .fallback_compensation(ok)
            .build()
            .unwrap();
        let shared = &runtime.shared;
        assert_eq!(refusal_code(shared.route(&task("cfw", "Create", Phase::Run))), None);
        assert_eq!(refusal_code(shared.route(&task("cfw", "Create", Phase::Rollback))), None);
        assert_eq!(
            refusal_code(shared.route(&task("cfw", "Delete", Phase::Rollback))).as_deref(),
            Some(NO_COMPENSATION)
        );
        assert_eq!(refusal_code(shared.route(&task("cfw", "Other", Phase::Run))).as_deref(), Some(NO_HANDLER));
        assert_eq!(refusal_code(shared.route(&task("waf", "Anything", Phase::Run))), None);
        assert_eq!(
            refusal_code(shared.route(&task("waf", "Anything", Phase::Rollback))).as_deref(),
            Some(NO_COMPENSATION)
        );
        assert_eq!(refusal_code(shared.route(&task("elb", "Anything", Phase::Rollback))), None);
        assert_eq!(
            runtime.claim_groups,
            [
                ClaimGroup { services: vec!["elb".into(), "waf".into()], job_types: None },
                ClaimGroup { services: vec!["cfw".into()], job_types: Some(vec!["Create".into(), "Delete".into()]) },
            ]
        );
    }

    #[test]
    fn services_with_the_same_types_claim_together() {
        let runtime = WorkerRuntime::builder(client(), "w")
            .service("cfw")
            .fallback_handler(ok)
            .service("elb")
            .fallback_handler(ok)
            .build()
            .unwrap();
        assert_eq!(runtime.claim_groups, [ClaimGroup { services: vec!["cfw".into(), "elb".into()], job_types: None }]);
    }

    #[test]
    fn bad_setups_are_refused() {
        let build = |b: WorkerRuntimeBuilder| b.build().map(drop);
        assert_eq!(build(WorkerRuntime::builder(client(), "w")), Err(BuildError::NoService));
        assert!(matches!(
            build(WorkerRuntime::builder(client(), "w").handler("T", ok)),
            Err(BuildError::NoCurrentService(_))
        ));
        assert_eq!(
            build(WorkerRuntime::builder(client(), "w").service("cfw")),
            Err(BuildError::NoHandler("cfw".into()))
        );
        assert!(matches!(
            build(WorkerRuntime::builder(client(), "w").service("cfw").handler("A", ok).compensation("B", ok)),
            Err(BuildError::CompensationWithoutHandler { .. })
        ));
        assert!(matches!(
            build(WorkerRuntime::builder(client(), "w").service("cfw").handler("A", ok).fallback_compensation(ok)),
            Err(BuildError::CompensationWithoutHandler { .. })
        ));
        assert!(matches!(
            build(WorkerRuntime::builder(client(), "w").service("cfw").handler("A", ok).handler("A", ok)),
            Err(BuildError::DuplicateHandler { .. })
        ));
        assert!(matches!(
            build(WorkerRuntime::builder(client(), "").service("cfw").handler("A", ok)),
            Err(BuildError::InvalidSetting(_))
        ));
        assert!(matches!(
            build(WorkerRuntime::builder(client(), "w").service("cfw").handler("A", ok).wait_seconds(61)),
            Err(BuildError::InvalidSetting(_))
        ));
    }
}
