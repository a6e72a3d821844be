//! The jobd domain: jobs, their identifiers, statuses and the state machine that moves them.
//!
//! Architecture invariant: this crate knows nothing of HTTP, SQL, tokio or the clock. Time is
//! always passed in; randomness is limited to generating fresh job ids.

pub mod clock;
pub mod error;
pub mod error_code;
pub mod ids;
pub mod job;
pub mod job_query;
pub mod job_request;
pub mod lease;
pub mod new_job;
pub mod retry_policy;
pub mod state_machine;
pub mod status;

pub use clock::{Clock, Timestamp};
pub use error::{TransitionError, ValidationError};
pub use ids::{JobId, JobType, ProjectId, ServiceName, DEFAULT_ENTERPRISE_PROJECT_ID};
pub use job::{Compensation, Entity, Execution, Job, OnFailure, Phase, SimulateOutcome, SimulateSpec, TaskFlags};
pub use job_query::{Cursor, Direction, JobQuery};
pub use lease::Lease;
pub use new_job::{NewJob, NewSubJob};
pub use retry_policy::RetryBackoff;
pub use state_machine::{apply, JobEvent};
pub use status::{JobStatus, TreeStatus};
