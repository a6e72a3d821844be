//! Which API a request speaks, so that errors come back in that API's shape and codes.

/// The API dialects jobd serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// jobd's own `/v1/{project_id}/jobs` API.
    Native,
    /// Cloud Firewall: `GET /v3/{project_id}/jobs/{job_id}`.
    Cfw,
    /// Web Application Firewall: `GET /v1/{project_id}/waf/async-job/{job_id}`.
    Waf,
    /// Elastic Load Balance: `GET /v3/{project_id}/elb/jobs[/{job_id}]`.
    Elb,
}

impl Dialect {
    /// The dialect a path belongs to (also for paths no route matches).
    pub fn of_path(path: &str) -> Dialect {
        let mut segments = path.trim_start_matches('/').split('/');
        let version = segments.next().unwrap_or_default();
        let _project = segments.next();
        match (version, segments.next()) {
            ("v3", Some("elb")) => Dialect::Elb,
            ("v3", Some("jobs")) => Dialect::Cfw,
            ("v1", Some("waf")) => Dialect::Waf,
            _ => Dialect::Native,
        }
    }
}

/// The top-level job `job_id` of `service` in the project, as a seed dialect may show it: a
/// job of another service, or a sub-job, is not found (no leak of its existence).
pub async fn fetch_service_job(
    state: &crate::AppState,
    dialect: Dialect,
    service: &str,
    project_id: &jobd_core::ProjectId,
    job_id: &jobd_core::JobId,
) -> Result<jobd_core::Job, crate::error::ApiError> {
    use crate::error::{ApiError, ErrorKind};
    let job = state.service.get(project_id, job_id).await.map_err(|e| ApiError::from_service(dialect, e))?;
    if !job.service.is(service) || job.parent_job_id.is_some() {
        return Err(ApiError::new(dialect, ErrorKind::JobNotFound(job_id.to_string())));
    }
    Ok(job)
}

#[cfg(test)]
mod tests {
    use super::Dialect;

    #[test]
    fn paths_map_to_their_dialect() {
        let cases = [
            ("/v3/p/jobs/x", Dialect::Cfw),
            ("/v3/p/elb/jobs", Dialect::Elb),
            ("/v3/p/elb/jobs/x", Dialect::Elb),
            ("/v1/p/waf/async-job/x", Dialect::Waf),
            ("/v1/p/jobs", Dialect::Native),
            ("/nothing", Dialect::Native),
            ("/", Dialect::Native),
        ];
        for (path, dialect) in cases {
            assert_eq!(Dialect::of_path(path), dialect, "{path}");
        }
    }
}
