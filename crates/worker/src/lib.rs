//! Running jobs: the worker runtime (a library to write workers against jobd's worker API over
//! HTTP, see `examples/echo_worker.rs`) and the built-in simulator (an in-process worker on the
//! same claim path, for jobs that carry a `simulate` spec).

pub mod runtime;
pub mod simulator;

pub use runtime::{StopReason, TaskContext, TaskError, WorkerRuntime};
pub use simulator::Simulator;
