//! What an operator sees: Prometheus metrics at `GET /metrics` (HTTP requests by route and status
//! with a latency histogram, plus everything the service layer counts), recorded through the
//! `metrics` facade into one process-wide Prometheus recorder.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::on;
use jobd_service::metric_labels;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::dialect::Dialect;
use crate::endpoint::{Access, Answer, Api, Content, Endpoint};
use crate::AppState;

const API: Api = Api::new(Dialect::Native, "native");

pub(crate) const ENDPOINTS: &[Endpoint] = &[API
    .get("/metrics", Access::Public, |m| on(m, metrics))
    .summary("Prometheus metrics")
    .answers(&[Answer { status: 200, content: Content::Text, description: "Success" }])];

/// Latency buckets (seconds) for every `_seconds` histogram: 100 µs to 30 s.
const BUCKETS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// The process-wide recorder, installed on first use.
pub fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), BUCKETS)
                .expect("the buckets are valid")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (several apps in one test process).
            let _ = metrics::set_global_recorder(recorder);
            jobd_service::metrics_recorder_installed();
            describe();
            handle
        })
        .clone()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_gauge!("jobd_queue_depth", "Tasks waiting for a worker now, by service and job type");
    describe_gauge!("jobd_queue_oldest_age_seconds", Unit::Seconds, "How long the oldest waiting task has waited");
    describe_counter!("jobd_http_requests_total", "HTTP requests answered, by route, method and status");
    describe_counter!("jobd_http_requests_shed_total", "Requests answered 503 at once: too many in flight");
    describe_histogram!("jobd_http_request_duration_seconds", Unit::Seconds, "Time to answer an HTTP request");
    describe_counter!("jobd_jobs_created_total", "Jobs created, by service and job type");
    describe_counter!("jobd_jobs_finished_total", "Jobs that ended, by service, job type and status");
    describe_counter!("jobd_tasks_claimed_total", "Tasks handed to workers (each a new attempt)");
    describe_counter!("jobd_task_retries_total", "Failed attempts that will be retried after their backoff");
    describe_counter!("jobd_job_timeouts_total", "Jobs failed with JOB.TIMEOUT");
    describe_counter!("jobd_lease_expiries_total", "Tasks failed because the last attempt's lease expired");
    describe_histogram!("jobd_store_operation_duration_seconds", Unit::Seconds, "Time of one store operation");
    describe_counter!("jobd_maintenance_runs_total", "Runs of each background duty, by duty and outcome");
    describe_counter!("jobd_maintenance_items_total", "What each background duty handled (jobs, keys, tokens...)");
    describe_histogram!("jobd_maintenance_run_duration_seconds", Unit::Seconds, "Time of one background duty's run");
}

/// Counts and times every routed request that is not authenticated (`caller::authenticate`
/// counts the others itself, through `counted`, sparing a layer on the hot path).
pub async fn record_http(request: Request, next: Next) -> Response {
    counted(request, |request| next.run(request)).await
}

/// Answers `request` with `answer` and adds it to `jobd_http_requests_total` and
/// `jobd_http_request_duration_seconds`, by its matched route, method and status.
pub(crate) async fn counted<F: std::future::Future<Output = Response>>(
    request: Request,
    answer: impl FnOnce(Request) -> F,
) -> Response {
    let started = Instant::now();
    let route = request.extensions().get::<MatchedPath>().cloned();
    let method = request.method().clone();
    let response = answer(request).await;
    let route = route.as_ref().map_or("", MatchedPath::as_str);
    HTTP_HANDLES.with_borrow_mut(|handles| {
        let (requests, duration) = handles.of(route, &method, response.status().as_u16());
        requests.increment(1);
        duration.record(started.elapsed().as_secs_f64());
    });
    response
}

thread_local! {
    /// The handles of `jobd_http_requests_total` and `jobd_http_request_duration_seconds`, per
    /// route, method and status, kept by each thread: registering a labelled metric builds and
    /// hashes its key and looks it up in the recorder's registry, which costs more than the
    /// request's own routing. Bounded by the routes times the methods and statuses they answer.
    static HTTP_HANDLES: std::cell::RefCell<HttpHandles> = std::cell::RefCell::new(HttpHandles::default());
}

#[derive(Default)]
struct HttpHandles {
    by_route: HashMap<String, Vec<(axum::http::Method, u16, metrics::Counter, metrics::Histogram)>>,
}

impl HttpHandles {
    fn of(
        &mut self,
        route: &str,
        method: &axum::http::Method,
        status: u16,
    ) -> (&metrics::Counter, &metrics::Histogram) {
        if !self.by_route.contains_key(route) {
            self.by_route.insert(route.to_owned(), Vec::new());
        }
        let handles = self.by_route.get_mut(route).expect("inserted above");
        let index = match handles.iter().position(|(m, s, _, _)| m == method && *s == status) {
            Some(index) => index,
            None => {
                let labels = [("route", route.to_owned()), ("method", method.as_str().to_owned())];
                let requests = metrics::counter!("jobd_http_requests_total", "route" => labels[0].1.clone(),
                    "method" => labels[1].1.clone(), "status" => status.to_string());
                let duration = metrics::histogram!("jobd_http_request_duration_seconds", &labels);
                handles.push((method.clone(), status, requests, duration));
                handles.len() - 1
            }
        };
        let (_, _, requests, duration) = &handles[index];
        (requests, duration)
    }
}

/// Sets the queue gauges from the store; a queue that emptied goes back to 0. Labels are bounded
/// (`jobd_service::metric_labels`): queues past the cap are summed under `other`.
async fn refresh_queue_gauges(state: &AppState) {
    static SEEN: OnceLock<Mutex<HashSet<(String, String)>>> = OnceLock::new();
    let Ok(stats) = state.service.queue_stats().await else { return };
    let now = state.service.now();
    let mut queues: HashMap<(String, String), (u64, chrono::DateTime<chrono::Utc>)> = HashMap::new();
    for stat in &stats {
        let key = (metric_labels::service(&stat.service), metric_labels::job_type(&stat.job_type));
        let queue = queues.entry(key).or_insert((0, stat.oldest_due_at));
        queue.0 += stat.depth;
        queue.1 = queue.1.min(stat.oldest_due_at);
    }
    let mut seen = SEEN.get_or_init(Default::default).lock().expect("queue labels");
    let current: HashSet<(String, String)> = queues.keys().cloned().collect();
    for (service, job_type) in seen.difference(&current) {
        metrics::gauge!("jobd_queue_depth", "service" => service.clone(), "job_type" => job_type.clone()).set(0.0);
        metrics::gauge!("jobd_queue_oldest_age_seconds", "service" => service.clone(), "job_type" => job_type.clone())
            .set(0.0);
    }
    for ((service, job_type), (depth, oldest_due_at)) in queues {
        let labels = [("service", service), ("job_type", job_type)];
        metrics::gauge!("jobd_queue_depth", &labels).set(depth as f64);
        let age = (now - oldest_due_at).num_milliseconds().max(0) as f64 / 1000.0;
        metrics::gauge!("jobd_queue_oldest_age_seconds", &labels).set(age);
    }
    seen.extend(current);
}

/// `GET /metrics`: the Prometheus text format.
pub async fn metrics(State(state): State<AppState>) -> Response {
    refresh_queue_gauges(&state).await;
    let body = prometheus().render();
    let mut response = body.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
    response
}
