//! What a list of jobs may be filtered and paged by (the store answers it; no I/O here).
//!
//! In the string filters an empty value matches a job that has no value at all.

use crate::clock::Timestamp;
use crate::ids::{JobId, ProjectId, ServiceName};
use crate::status::{JobStatus, TreeStatus};

/// The place of a top-level job in the newest-first order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: Timestamp,
    pub seq: i64,
}

/// Which side of the cursor a page lies on, in the newest-first order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Direction {
    /// Jobs after the cursor: older ones (the next page).
    #[default]
    Older,
    /// Jobs before the cursor: newer ones (the previous page).
    Newer,
}

/// Filters are ANDed together; the values inside one filter are ORed. Empty means no filter.
#[derive(Debug, Clone)]
pub struct JobQuery {
    pub project_id: ProjectId,
    pub service: Option<ServiceName>,
    pub enterprise_project_ids: Option<Vec<String>>,
    pub job_ids: Vec<JobId>,
    pub job_types: Vec<String>,
    pub statuses: Vec<JobStatus>,
    /// The root's `Job::tree_status` (a derived column the store keeps on root rows).
    pub tree_statuses: Vec<TreeStatus>,
    pub resource_ids: Vec<String>,
    pub error_codes: Vec<String>,
    pub created_since: Option<Timestamp>,
    pub cursor: Option<Cursor>,
    pub direction: Direction,
    pub limit: u32,
}

impl JobQuery {
    pub fn new(project_id: ProjectId) -> Self {
        JobQuery {
            project_id,
            service: None,
            enterprise_project_ids: None,
            job_ids: Vec::new(),
            job_types: Vec::new(),
            statuses: Vec::new(),
            tree_statuses: Vec::new(),
            resource_ids: Vec::new(),
            error_codes: Vec::new(),
            created_since: None,
            cursor: None,
            direction: Direction::Older,
            limit: 100,
        }
    }

    pub fn with_statuses(mut self, statuses: impl IntoIterator<Item = JobStatus>) -> Self {
        self.statuses = statuses.into_iter().collect();
        self
    }
}
