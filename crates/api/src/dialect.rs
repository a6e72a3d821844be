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
    /// Identity (IAM-compatible): `/v3/auth/...`, `/v3/projects`, `/v3/regions`.
    Iam,
}

impl Dialect {
    /// The service name a `V11-HMAC-SHA256` credential scope names for this dialect's paths
    /// (what the official SDKs' clients are built with: `elb`, `cfw`, `waf`, `iam`; `jobd` for
    /// jobd's own APIs).
    pub fn service_name(self) -> &'static str {
        match self {
            Dialect::Native => "jobd",
            Dialect::Cfw => "cfw",
            Dialect::Waf => "waf",
            Dialect::Elb => "elb",
            Dialect::Iam => "iam",
        }
    }

    /// The dialect a path belongs to (also for paths no route matches), from the declared
    /// routes' paths (`endpoint::dialect_of_path`).
    pub fn of_path(path: &str) -> Dialect {
        crate::endpoint::dialect_of_path(path)
    }
}

/// The top-level job `job_id` of `service` in the project, as a seed dialect may show it: a
/// job of another service, a sub-job, or a job in an enterprise project the caller is not granted
/// is not found (no leak of its existence).
pub async fn fetch_service_job(
    state: &crate::AppState,
    caller: &crate::caller::Caller,
    dialect: Dialect,
    service: &str,
    project_id: &jobd_core::ProjectId,
    job_id: &jobd_core::JobId,
) -> Result<std::sync::Arc<jobd_core::Job>, crate::error::ApiError> {
    use crate::error::{ApiError, ErrorKind};
    let job = state.service.get(project_id, job_id).await.map_err(|e| ApiError::from_service(dialect, e))?;
    let visible = caller.principal.may_see_enterprise_project(&job.enterprise_project_id);
    if !job.service.is(service) || job.parent_job_id.is_some() || !visible {
        return Err(ApiError::new(dialect, ErrorKind::JobNotFound(job_id.to_string())));
    }
    Ok(job)
}

/// Narrows a list's enterprise projects to those the caller is granted.
pub fn restrict_enterprise_projects(
    caller: &crate::caller::Caller,
    requested: Option<Vec<String>>,
) -> Option<Vec<String>> {
    match (&caller.principal.enterprise_project_ids, requested) {
        (None, requested) => requested,
        (Some(granted), None) => Some(granted.clone()),
        (Some(granted), Some(requested)) => Some(requested.into_iter().filter(|eps| granted.contains(eps)).collect()),
    }
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
            ("/v3/auth/tokens", Dialect::Iam),
            ("/v3/projects", Dialect::Iam),
            ("/v3/auth/projects", Dialect::Iam),
            ("/v3/auth/domains", Dialect::Iam),
            ("/v3/regions", Dialect::Iam),
            ("/v3/regions/cn-north-4", Dialect::Iam),
            ("/v3/auth/jobs/x", Dialect::Cfw),
            ("/v3/projects/elb/jobs", Dialect::Elb),
        ];
        for (path, dialect) in cases {
            assert_eq!(Dialect::of_path(path), dialect, "{path}");
        }
    }
}
