//! The native job body (`POST /v1/{project_id}/jobs`, a batch's items): any bytes are read,
//! validated and, when valid, built into a job tree, without panicking; a valid request builds.
#![no_main]

use chrono::{TimeZone, Utc};
use jobd_core::job_request::parse_job_request_bytes;
use jobd_core::ProjectId;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let project_id = ProjectId::parse("0123456789abcdef0123456789abcdef").expect("a project id");
    let Ok((new_job, canonical)) = parse_job_request_bytes(project_id, data) else { return };
    // The canonical text is the request again: it reads back to the same job.
    let (again, _) = parse_job_request_bytes(new_job.project_id.clone(), canonical.as_bytes())
        .expect("the canonical text of a request reads again");
    assert_eq!(again, new_job);
    let now = Utc.with_ymd_and_hms(2024, 5, 6, 7, 8, 9).unwrap();
    let valid = new_job.validate().is_ok();
    match new_job.into_job(now) {
        Ok(job) => {
            assert!(valid, "into_job built a job validate refused");
            assert_eq!(job.version, 1);
            assert!(job.sub_jobs.iter().all(|sub| sub.parent_job_id.as_ref() == Some(&job.job_id)));
        }
        Err(_) => assert!(!valid, "into_job refused a job validate accepted"),
    }
});
