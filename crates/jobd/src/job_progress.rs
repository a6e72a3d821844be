//! The progress display of `jobd job wait` (and the table view of `jobd job watch`): on a terminal
//! a live block — the main job and each sub-job with its status and message, a spinner and the
//! elapsed time — redrawn in place; elsewhere one plain line per change.

use std::collections::HashMap;
use std::time::Duration;

use console::{style, Term};
use jobd_client::{Job, JobStatus};

const SPINNER: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

/// `1.23s`, `2m05s`, `1h02m`.
pub fn format_elapsed(elapsed: Duration) -> String {
    let seconds = elapsed.as_secs();
    if seconds < 60 {
        format!("{:.2}s", elapsed.as_secs_f64())
    } else if seconds < 3600 {
        format!("{}m{:02}s", seconds / 60, seconds % 60)
    } else {
        format!("{}h{:02}m", seconds / 3600, (seconds % 3600) / 60)
    }
}

/// What to show after the status: the error of a failed job, else its progress message (and a
/// compensation under way).
fn detail(job: &Job) -> String {
    let mut text = match (&job.error_code, &job.error_msg) {
        (Some(code), Some(message)) if job.status == JobStatus::Failed => format!("{code}: {message}"),
        (Some(code), None) if job.status == JobStatus::Failed => code.clone(),
        _ => job.message.clone().unwrap_or_default(),
    };
    if let Some(compensation) = &job.compensation {
        if !text.is_empty() {
            text.push_str("; ");
        }
        text.push_str(&format!("rollback {}", compensation.status));
    }
    text
}

fn symbol(status: JobStatus, frame: usize) -> String {
    match status {
        JobStatus::Pending => style("·").dim().to_string(),
        JobStatus::Running => style(SPINNER[frame % SPINNER.len()]).cyan().to_string(),
        JobStatus::Succeeded => style("✔").green().to_string(),
        JobStatus::Failed => style("✘").red().to_string(),
        JobStatus::Cancelled => style("⊘").yellow().to_string(),
    }
}

fn status_word(status: JobStatus, width: usize) -> String {
    let word = format!("{:<width$}", status.as_str());
    match status {
        JobStatus::Pending => style(word).dim().to_string(),
        JobStatus::Running => style(word).cyan().to_string(),
        JobStatus::Succeeded => style(word).green().to_string(),
        JobStatus::Failed => style(word).red().to_string(),
        JobStatus::Cancelled => style(word).yellow().to_string(),
    }
}

/// The live block for a terminal: the main job, then one line per sub-job.
pub fn live_lines(job: &Job, elapsed: Duration, frame: usize) -> Vec<String> {
    let mut lines = vec![format!(
        "{} {} {} {}  {}  {}  {}",
        symbol(job.status, frame),
        job.service,
        style(&job.job_type).bold(),
        job.job_id,
        status_word(job.status, 0),
        style(format_elapsed(elapsed)).dim(),
        detail(job),
    )];
    let type_width = job.sub_jobs.iter().map(|sub| sub.job_type.chars().count()).max().unwrap_or(0);
    for sub in &job.sub_jobs {
        lines.push(format!(
            "  {} {:<type_width$}  {}  {}",
            symbol(sub.status, frame),
            sub.job_type,
            status_word(sub.status, 9),
            detail(sub),
        ));
    }
    lines.iter().map(|line| line.trim_end().to_owned()).collect()
}

/// The line that ends a wait: `SUCCEEDED`, `FAILED` with the code and message, and so on.
pub fn final_line(job: &Job, elapsed: Duration) -> String {
    let what = format!("job {} ({} {})", job.job_id, job.service, job.job_type);
    let took = format_elapsed(elapsed);
    match job.status {
        JobStatus::Succeeded => format!("{} {what} SUCCEEDED in {took}", style("✔").green()),
        JobStatus::Failed => format!(
            "{} {what} FAILED after {took}: {}: {}",
            style("✘").red(),
            job.error_code.as_deref().unwrap_or("(no code)"),
            job.error_msg.as_deref().unwrap_or("(no message)")
        ),
        JobStatus::Cancelled => format!("{} {what} CANCELLED after {took}", style("⊘").yellow()),
        status => format!("{what} is still {status} after {took}"),
    }
}

/// The display: live on a terminal, plain lines elsewhere.
pub struct Progress {
    live: bool,
    term: Term,
    job: Option<Job>,
    frame: usize,
    drawn: usize,
    /// Plain mode: what was last printed for each job id (status and detail).
    printed: HashMap<String, (JobStatus, String)>,
}

impl Progress {
    pub fn new(live: bool) -> Self {
        Progress { live, term: Term::stdout(), job: None, frame: 0, drawn: 0, printed: HashMap::new() }
    }

    /// A new state of the job.
    pub fn update(&mut self, job: &Job, elapsed: Duration) {
        if self.live {
            self.job = Some(job.clone());
            self.redraw(elapsed);
        } else {
            for line in self.plain_changes(job, elapsed) {
                println!("{line}");
            }
        }
    }

    /// Time passes: the spinner turns and the clock runs (terminal only).
    pub fn tick(&mut self, elapsed: Duration) {
        if self.live && self.job.is_some() {
            self.frame += 1;
            self.redraw(elapsed);
        }
    }

    fn redraw(&mut self, elapsed: Duration) {
        let Some(job) = &self.job else { return };
        let width = usize::from(self.term.size().1).max(20) - 1;
        let lines = live_lines(job, elapsed, self.frame);
        if self.drawn > 0 {
            let _ = self.term.clear_last_lines(self.drawn);
        }
        for line in &lines {
            let _ = self.term.write_line(&console::truncate_str(line, width, "…"));
        }
        self.drawn = lines.len();
        let _ = self.term.flush();
    }

    /// The lines for what changed since the last state printed.
    pub fn plain_changes(&mut self, job: &Job, elapsed: Duration) -> Vec<String> {
        let at = format_elapsed(elapsed);
        let mut lines = Vec::new();
        let now = (job.status, detail(job));
        if self.printed.get(&job.job_id) != Some(&now) {
            let detail = if now.1.is_empty() { String::new() } else { format!(": {}", now.1) };
            lines
                .push(format!("{at:>8}  job {} ({} {}) {}{detail}", job.job_id, job.service, job.job_type, job.status));
            self.printed.insert(job.job_id.clone(), now);
        }
        for sub in &job.sub_jobs {
            let now = (sub.status, detail(sub));
            if self.printed.get(&sub.job_id) != Some(&now) {
                let detail = if now.1.is_empty() { String::new() } else { format!(": {}", now.1) };
                lines.push(format!("{at:>8}    sub-job {} ({}) {}{detail}", sub.job_id, sub.job_type, sub.status));
                self.printed.insert(sub.job_id.clone(), now);
            }
        }
        lines
    }

    /// The last draw, before the final line is printed.
    pub fn finish(&mut self, elapsed: Duration) {
        if self.live {
            self.redraw(elapsed);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn job(status: &str, sub_statuses: &[(&str, &str, &str)]) -> Job {
        let sub_jobs: Vec<_> = sub_statuses
            .iter()
            .enumerate()
            .map(|(n, (job_type, status, message))| {
                json!({"job_id": format!("sub-{n}"), "project_id": "p", "service": "elb", "job_type": job_type,
                       "status": status, "message": message, "created_at": "2024-01-01T00:00:00Z",
                       "updated_at": "2024-01-01T00:00:00Z"})
            })
            .collect();
        serde_json::from_value(json!({"job_id": "main", "project_id": "p", "service": "elb", "job_type": "UPGRADE",
            "status": status, "created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-01T00:00:00Z",
            "error_code": "ELB.8907", "error_msg": "refused", "sub_jobs": sub_jobs}))
        .unwrap()
    }

    #[test]
    fn the_live_block_shows_each_sub_job() {
        let job = job("RUNNING", &[("UPGRADE_INIT", "SUCCEEDED", "done"), ("UPGRADE_TRAFFIC_SWITCH", "RUNNING", "")]);
        let lines: Vec<String> = live_lines(&job, Duration::from_millis(1500), 0)
            .iter()
            .map(|l| console::strip_ansi_codes(l).into())
            .collect();
        assert_eq!(lines[0], "⠋ elb UPGRADE main  RUNNING  1.50s");
        assert_eq!(lines[1], "  ✔ UPGRADE_INIT            SUCCEEDED  done");
        assert_eq!(lines[2], "  ⠋ UPGRADE_TRAFFIC_SWITCH  RUNNING");
    }

    #[test]
    fn plain_lines_print_only_changes() {
        let mut progress = Progress::new(false);
        let first = job("RUNNING", &[("A", "RUNNING", "one")]);
        assert_eq!(progress.plain_changes(&first, Duration::ZERO).len(), 2);
        assert!(progress.plain_changes(&first, Duration::from_secs(1)).is_empty());
        let second = job("RUNNING", &[("A", "RUNNING", "two")]);
        assert_eq!(
            progress.plain_changes(&second, Duration::from_secs(1)),
            ["   1.00s    sub-job sub-0 (A) RUNNING: two"]
        );
        let failed = job("FAILED", &[("A", "FAILED", "")]);
        let lines = progress.plain_changes(&failed, Duration::from_secs(2));
        assert_eq!(lines[0], "   2.00s  job main (elb UPGRADE) FAILED: ELB.8907: refused");
    }

    #[test]
    fn final_lines_tell_the_outcome() {
        let strip = |line: String| console::strip_ansi_codes(&line).into_owned();
        assert_eq!(
            strip(final_line(&job("SUCCEEDED", &[]), Duration::from_millis(310))),
            "✔ job main (elb UPGRADE) SUCCEEDED in 0.31s"
        );
        assert_eq!(
            strip(final_line(&job("FAILED", &[]), Duration::from_secs(61))),
            "✘ job main (elb UPGRADE) FAILED after 1m01s: ELB.8907: refused"
        );
        assert_eq!(format_elapsed(Duration::from_secs(3720)), "1h02m");
    }
}
