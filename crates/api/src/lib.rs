//! jobd's HTTP server: the native job API and the three seed dialects (CFW, WAF, ELB).
//!
//! Each dialect is a module with its routes, wire types and the mapping of errors to its own
//! codes. Shared plumbing (request ids, authentication, error rendering) is written once.
//! Architecture invariant: handlers reach jobs only through `jobd_service::JobService`.

mod admin;
mod caller;
mod cfw;
mod console;
mod dialect;
mod elb;
pub mod endpoint;
mod error;
mod frame;
mod iam;
mod load_shedding;
mod native;
pub mod openapi;
mod query;
mod request_id;
pub mod telemetry;
mod time_format;
mod waf;
mod watch;
mod worker;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, on};
use axum::{middleware, Json, Router};
use jobd_service::identity::IdentityService;
use jobd_service::JobService;
use serde_json::json;

pub use caller::Caller;
pub use dialect::Dialect;
pub use endpoint::{endpoints, Access, Endpoint, Verb};
pub use error::{unparsable_request_answer, ApiError, ErrorKind, ErrorShape};
pub use request_id::RequestId;

/// Settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// The largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// How far `X-Sdk-Date` may be from the server's clock.
    pub max_clock_skew: chrono::Duration,
    /// How long a request body may take to arrive, from the end of its head (`408` past it).
    pub body_read_timeout: std::time::Duration,
    /// Requests in flight at once before more are shed with `503` (0: no bound); long polls and
    /// event streams are not counted (`load_shedding`).
    pub max_in_flight: usize,
    /// About how many bytes of jobs one native list page may hold: past it the page ends early
    /// with a `next_marker` (it always holds one job).
    pub list_page_bytes: usize,
    /// The region id jobd serves: `V11-HMAC-SHA256` signatures are verified for it (none: refused,
    /// saying so).
    pub region: Option<String>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            max_body_bytes: 1024 * 1024,
            max_clock_skew: chrono::Duration::minutes(15),
            body_read_timeout: std::time::Duration::from_secs(30),
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            list_page_bytes: 4 * 1024 * 1024,
            region: None,
        }
    }
}

/// The default of `ApiConfig::max_in_flight` (and of `--max-in-flight`).
pub const DEFAULT_MAX_IN_FLIGHT: usize = 512;

/// Everything a handler may use, behind one `Arc`: the layers and handlers of every request
/// clone it several times, and on a busy server each clone of a shared count moves its cache
/// line between cores (three counts before, one now).
#[derive(Clone)]
pub struct AppState(Arc<AppParts>);

pub struct AppParts {
    pub service: JobService,
    pub identity: IdentityService,
    pub config: Arc<ApiConfig>,
}

impl AppState {
    pub fn new(service: JobService, identity: IdentityService, config: ApiConfig) -> Self {
        AppState(Arc::new(AppParts { service, identity, config: Arc::new(config) }))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppParts;
    fn deref(&self) -> &AppParts {
        &self.0
    }
}

/// The health routes.
const HEALTH: endpoint::Api = endpoint::Api::new(Dialect::Native, "native");

const HEALTH_ENDPOINTS: &[Endpoint] = &[
    HEALTH
        .get("/healthz", Access::Public, |m| on(m, healthz))
        .summary("Liveness")
        .answers(&[endpoint::Answer::json(200, "Health")])
        .always_answers(),
    HEALTH
        .get("/readyz", Access::Public, |m| on(m, readyz))
        .summary("Readiness: the store answers")
        .answers(&[endpoint::Answer::json(200, "Health")]),
];

/// The whole HTTP application: every declared endpoint (`endpoint`), behind the shared layers.
pub fn app(state: AppState) -> Router {
    telemetry::prometheus();
    let in_flight = load_shedding::InFlightLimit::new(state.config.max_in_flight);
    endpoint::router(&state)
        .fallback(error::route_not_found)
        // The body limit is enforced once, configurably, in `caller::authenticate`.
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn_with_state(in_flight, frame::request_frame))
        .with_state(state)
}

/// What answers connections past the server's connection cap: `/healthz` as usual, anything else
/// `503` with `Retry-After` in the error shape of the path's dialect. Needs no state.
pub fn overflow_app() -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .fallback(|request: axum::extract::Request| async move {
            let detail = "too many open connections; retry shortly".to_owned();
            ApiError::new(Dialect::of_path(request.uri().path()), ErrorKind::Unavailable(detail))
        })
        .layer(middleware::from_fn_with_state(load_shedding::InFlightLimit::new(0), frame::request_frame))
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn readyz(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> Result<Json<serde_json::Value>, ApiError> {
    state.service.ready().await.map_err(|e| ApiError::new(Dialect::Native, ErrorKind::Unavailable(e.to_string())))?;
    Ok(Json(json!({"status": "ready"})))
}
