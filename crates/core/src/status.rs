//! Job statuses and the one rule they obey: they only move forward.

use std::fmt;
use std::str::FromStr;

/// The lifecycle of a job. `PENDING → RUNNING → {SUCCEEDED, FAILED, CANCELLED}`, and
/// `PENDING` may also end directly. A terminal status never changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum JobStatus {
    Pending,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobStatus {
    pub const ALL: [JobStatus; 5] =
        [JobStatus::Pending, JobStatus::Running, JobStatus::Succeeded, JobStatus::Failed, JobStatus::Cancelled];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "PENDING",
            JobStatus::Running => "RUNNING",
            JobStatus::Succeeded => "SUCCEEDED",
            JobStatus::Failed => "FAILED",
            JobStatus::Cancelled => "CANCELLED",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, JobStatus::Succeeded | JobStatus::Failed | JobStatus::Cancelled)
    }

    /// How far along the lifecycle a status is: 0 pending, 1 running, 2 ended.
    pub fn rank(self) -> u8 {
        match self {
            JobStatus::Pending => 0,
            JobStatus::Running => 1,
            _ => 2,
        }
    }

    /// Whether a job in `self` may move to `next`: only forward, never out of a terminal status.
    pub fn can_move_to(self, next: JobStatus) -> bool {
        !self.is_terminal() && next.rank() > self.rank()
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a whole job tree stands, as its root's status and its rollback tell it: the five
/// statuses, with a rollback in progress and a failed rollback told apart. Dialects that show
/// rollback (ELB's `ROLLBACKING`, `ROLLBACK_FAIL`) filter lists by it; the store keeps it in a
/// derived column on every root row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TreeStatus {
    Pending,
    Running,
    /// Open, compensating the sub-jobs that had succeeded.
    RollingBack,
    Succeeded,
    /// Failed, and no compensation failed (none ran, or every one succeeded or was cancelled).
    Failed,
    /// Failed because a compensation failed.
    RollbackFailed,
    Cancelled,
}

impl TreeStatus {
    pub const ALL: [TreeStatus; 7] = [
        TreeStatus::Pending,
        TreeStatus::Running,
        TreeStatus::RollingBack,
        TreeStatus::Succeeded,
        TreeStatus::Failed,
        TreeStatus::RollbackFailed,
        TreeStatus::Cancelled,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            TreeStatus::Pending => "PENDING",
            TreeStatus::Running => "RUNNING",
            TreeStatus::RollingBack => "ROLLING_BACK",
            TreeStatus::Succeeded => "SUCCEEDED",
            TreeStatus::Failed => "FAILED",
            TreeStatus::RollbackFailed => "ROLLBACK_FAILED",
            TreeStatus::Cancelled => "CANCELLED",
        }
    }

    pub fn parse(raw: &str) -> Option<TreeStatus> {
        TreeStatus::ALL.into_iter().find(|status| status.as_str() == raw)
    }
}

impl fmt::Display for TreeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown job status {0:?}; expected one of PENDING, RUNNING, SUCCEEDED, FAILED, CANCELLED")]
pub struct UnknownStatus(pub String);

impl FromStr for JobStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobStatus::ALL.into_iter().find(|status| status.as_str() == s).ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_through_their_names() {
        for status in JobStatus::ALL {
            assert_eq!(status.as_str().parse::<JobStatus>(), Ok(status));
        }
        assert!("DONE".parse::<JobStatus>().is_err());
    }

    #[test]
    fn tree_statuses_round_trip_through_their_names() {
        for status in TreeStatus::ALL {
            assert_eq!(TreeStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(TreeStatus::parse("ROLLBACKING"), None);
    }

    #[test]
    fn only_forward_moves_are_allowed() {
        use JobStatus::*;
        assert!(Pending.can_move_to(Running));
        assert!(Pending.can_move_to(Cancelled));
        assert!(Running.can_move_to(Succeeded));
        assert!(!Running.can_move_to(Pending));
        assert!(!Running.can_move_to(Running));
        for terminal in [Succeeded, Failed, Cancelled] {
            for next in JobStatus::ALL {
                assert!(!terminal.can_move_to(next));
            }
        }
    }
}
