//! Job execution inside jobd. Today: the built-in simulator, which plays out jobs that carry a
//! `simulate` spec through the same service transitions an external worker uses.

pub mod simulator;

pub use simulator::Simulator;
