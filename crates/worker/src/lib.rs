//! The worker runtime: a library to write workers against jobd's worker API over HTTP (see
//! `examples/echo_worker.rs`). It speaks HTTP through `jobd-client` only; jobd's built-in
//! simulator, which runs inside the server, lives in `jobd-service`.

pub mod runtime;

pub use runtime::{BuildError, Progress, RunReport, StopReason, TaskContext, TaskError, WorkerRuntime};
