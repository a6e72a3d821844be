//! Bounded metric labels: `service` and `job_type` come from producers, so each label keeps at
//! most a configured number of distinct values (first come, first kept); every later value is
//! recorded as `other`. `/metrics` and the recorder's memory stay bounded whatever producers send.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// The default number of distinct values per label (`--metrics-max-label-values`).
pub const DEFAULT_MAX_LABEL_VALUES: usize = 100;
/// What values past the cap are recorded as.
pub const OTHER: &str = "other";

static MAX_VALUES: AtomicUsize = AtomicUsize::new(DEFAULT_MAX_LABEL_VALUES);

/// A label whose values are bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Label {
    Service,
    JobType,
}

/// Sets the cap of every bounded label (process-wide, like the metrics recorder itself).
pub fn set_max_values(max_values: usize) {
    MAX_VALUES.store(max_values, Ordering::Relaxed);
}

fn kept(label: Label) -> &'static Mutex<HashSet<String>> {
    static SERVICES: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    static JOB_TYPES: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    match label {
        Label::Service => SERVICES.get_or_init(Default::default),
        Label::JobType => JOB_TYPES.get_or_init(Default::default),
    }
}

/// The value to record for `value`: itself while the label has room (or already holds it), else
/// `other`.
pub fn bounded(label: Label, value: &str) -> String {
    let mut kept = kept(label).lock().expect("metric labels");
    if kept.contains(value) {
        return value.to_owned();
    }
    if value != OTHER && kept.len() < MAX_VALUES.load(Ordering::Relaxed) {
        kept.insert(value.to_owned());
        return value.to_owned();
    }
    OTHER.to_owned()
}

/// `bounded(Label::Service, ..)`.
pub fn service(value: &impl ToString) -> String {
    bounded(Label::Service, &value.to_string())
}

/// `bounded(Label::JobType, ..)`.
pub fn job_type(value: &impl ToString) -> String {
    bounded(Label::JobType, &value.to_string())
}
