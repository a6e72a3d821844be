pub mod memory;
pub mod notify;
pub mod scale;
pub mod status_reads;
pub mod throughput;
