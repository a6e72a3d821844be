//! Shared request parsing: query strings (with repeated keys) and the project / job path values.

use axum::extract::rejection::PathRejection;
use axum::extract::Path;
use jobd_core::{JobId, ProjectId};

use crate::dialect::Dialect;
use crate::error::{ApiError, ErrorKind};

/// The decoded `key=value` pairs of a query string, in order, repeated keys kept.
pub struct QueryPairs(Vec<(String, String)>);

impl QueryPairs {
    pub fn parse(raw: Option<&str>) -> Self {
        let pairs = raw.map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default();
        QueryPairs(pairs)
    }

    /// Every value given for `key`.
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.0.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()).collect()
    }

    /// Every value given for a text filter (`job_type`, `resource_id`, `error_code`): stored values
    /// never hold control characters, and PostgreSQL refuses a NUL in a query, so such a value is a 400.
    pub fn texts(&self, dialect: Dialect, key: &str) -> Result<Vec<String>, ApiError> {
        let values = self.all(key);
        if values.iter().any(|v| v.chars().any(char::is_control)) {
            return Err(ApiError::invalid(dialect, format!("{key} must not contain control characters")));
        }
        Ok(values.into_iter().map(str::to_owned).collect())
    }

    /// The value of a key that may appear at most once.
    pub fn one(&self, dialect: Dialect, key: &str) -> Result<Option<&str>, ApiError> {
        match self.all(key).as_slice() {
            [] => Ok(None),
            [value] => Ok(Some(value)),
            _ => Err(ApiError::invalid(dialect, format!("query parameter {key} may be given only once"))),
        }
    }

    /// An integer parameter within `range`, or `default` when absent.
    pub fn bounded(
        &self,
        dialect: Dialect,
        key: &str,
        range: std::ops::RangeInclusive<u32>,
        default: u32,
    ) -> Result<u32, ApiError> {
        let Some(raw) = self.one(dialect, key)? else { return Ok(default) };
        raw.parse::<u32>().ok().filter(|v| range.contains(v)).ok_or_else(|| {
            ApiError::invalid(
                dialect,
                format!("{key} must be an integer from {} to {}, not {raw:?}", range.start(), range.end()),
            )
        })
    }
}

/// Unwraps a path extraction, turning a rejection into the dialect's 400.
fn path_values<T>(dialect: Dialect, path: Result<Path<T>, PathRejection>) -> Result<T, ApiError> {
    path.map(|Path(values)| values).map_err(|e| ApiError::invalid(dialect, format!("bad path: {e}")))
}

/// The `{project_id}` of a path.
pub fn project_path(dialect: Dialect, path: Result<Path<String>, PathRejection>) -> Result<ProjectId, ApiError> {
    project_id(dialect, &path_values(dialect, path)?)
}

/// The `{project_id}` and `{job_id}` of a path. An id jobd cannot have issued is a 400, unless the
/// dialect's page calls it `well_formed`: then it is simply not found.
pub fn job_path(
    dialect: Dialect,
    path: Result<Path<(String, String)>, PathRejection>,
    well_formed: impl Fn(&str) -> bool,
) -> Result<(ProjectId, JobId), ApiError> {
    let (project, job) = path_values(dialect, path)?;
    let project_id = project_id(dialect, &project)?;
    match job_id(dialect, &job) {
        Ok(job_id) => Ok((project_id, job_id)),
        Err(_) if well_formed(&job) => Err(ApiError::new(dialect, ErrorKind::JobNotFound(job))),
        Err(error) => Err(error),
    }
}

pub fn project_id(dialect: Dialect, raw: &str) -> Result<ProjectId, ApiError> {
    ProjectId::parse(raw).map_err(|e| ApiError::invalid(dialect, e.to_string()))
}

/// A job id in either of jobd's formats (UUID or 32 hex). A malformed id is a 400; a well-formed
/// id of another service's job is then a 404 in every dialect, so no route leaks what exists.
pub fn job_id(dialect: Dialect, raw: &str) -> Result<JobId, ApiError> {
    JobId::parse(raw).map_err(|e| ApiError::new(dialect, ErrorKind::InvalidJobId(e.to_string())))
}
