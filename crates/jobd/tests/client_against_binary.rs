//! `jobd-client` against the real `jobd` binary on a socket: native create, get, list and cancel,
//! idempotent replays, typed API errors, and the worker calls' round trips (batch reports too).

use std::time::{Duration, Instant};

use jobd_client::{
    ClaimRequest, Client, Credentials, Entity, Error, Execution, JobStatus, ListJobsQuery, NewJob, NewSubJob,
    RetryBackoff, TaskGone, TaskLease, TaskReport,
};
use jobd_test_support::server::{Jobd, PROJECT};
use serde_json::json;

fn claim_request() -> ClaimRequest {
    ClaimRequest::new("client-test-worker", ["cfw"]).lease_seconds(30)
}

#[tokio::test]
async fn create_get_list_and_cancel() {
    let jobd = Jobd::start().await;
    let project = jobd.project();

    let new_job = NewJob::new("cfw", "CreateFirewall")
        .resource_id("fw-1")
        .entity(Entity::new("fw-1", "firewall"))
        .payload(json!({"name": "édge", "size": 2}))
        .message("queued")
        .priority(5);
    let created = project.create_job(&new_job, None).await.unwrap();
    assert!(!created.replayed);
    let job = created.job;
    assert_eq!((job.service.as_str(), job.job_type.as_str()), ("cfw", "CreateFirewall"));
    assert_eq!(job.status, JobStatus::Pending);
    assert_eq!(job.project_id, PROJECT);
    assert_eq!(job.payload, Some(json!({"name": "édge", "size": 2})));
    assert_eq!(job.entities, vec![Entity::new("fw-1", "firewall")]);
    assert_eq!(job.priority, 5);
    assert_eq!(job.attempt, 0);

    let read = project.get_job(&job.job_id).await.unwrap();
    assert_eq!(read, job, "a get reads back what the create answered");

    let parent = project
        .create_job(
            &NewJob::new("waf", "CreateHost")
                .sub_job(NewSubJob::new("Step").resource_id("a b+c/ü"))
                .sub_job(NewSubJob::new("Step"))
                .execution(Execution::Parallel),
            None,
        )
        .await
        .unwrap()
        .job;
    assert_eq!(parent.sub_jobs.len(), 2);
    assert_eq!(parent.execution, Execution::Parallel);
    assert_eq!(parent.sub_jobs[0].parent_job_id.as_deref(), Some(parent.job_id.as_str()));

    let all = project.list_jobs(&ListJobsQuery::default()).await.unwrap();
    let ids: Vec<&str> = all.jobs.iter().map(|j| j.job_id.as_str()).collect();
    assert_eq!(ids, [parent.job_id.as_str(), job.job_id.as_str()], "newest first");
    assert_eq!(all.next_marker, None);
    let cfw = project.list_jobs(&ListJobsQuery::default().service("cfw").status(JobStatus::Pending)).await.unwrap();
    assert_eq!(cfw.jobs.len(), 1);
    assert_eq!(cfw.jobs[0].job_id, job.job_id);
    // A query value with a space, a plus, a slash and a non-ASCII letter is signed as it is sent.
    let odd = project.list_jobs(&ListJobsQuery::default().resource_id("a b+c/ü")).await.unwrap();
    assert!(odd.jobs.is_empty(), "only top-level jobs carry list filters: {odd:?}");

    let first_page = project.list_jobs(&ListJobsQuery::default().limit(1)).await.unwrap();
    assert_eq!(first_page.jobs.len(), 1);
    let marker = first_page.next_marker.expect("a second page");
    let second_page = project.list_jobs(&ListJobsQuery::default().limit(1).marker(marker)).await.unwrap();
    assert_eq!(second_page.jobs[0].job_id, job.job_id);
    assert_eq!(second_page.next_marker, None);

    let cancelled = project.cancel_job(&job.job_id).await.unwrap();
    assert_eq!(cancelled.status, JobStatus::Cancelled);
    assert!(cancelled.version > job.version);
    let again = project.cancel_job(&job.job_id).await.unwrap_err();
    assert_eq!(again.status(), Some(409), "{again}");
    assert_eq!(again.error_code(), Some("JOBD.JOB_CONFLICT"));
    assert!(!again.is_task_gone(), "a native conflict is not a worker's 409");
}

#[tokio::test]
async fn api_errors_are_typed_with_the_request_id() {
    let jobd = Jobd::start().await;
    let project = jobd.project();

    let missing = project.get_job("00000000-0000-4000-8000-000000000000").await.unwrap_err();
    match &missing {
        Error::Api { status, error_code, error_msg, request_id, .. } => {
            assert_eq!(*status, 404);
            assert_eq!(error_code, "JOBD.JOB_NOT_FOUND");
            assert!(error_msg.contains("not found"), "{error_msg}");
            assert!(request_id.as_deref().is_some_and(|id| !id.is_empty()), "{missing:?}");
        }
        other => panic!("expected an API error, got {other:?}"),
    }
    assert!(missing.is_not_found());
    assert!(missing.to_string().contains("request id"), "{missing}");

    let wrong_key =
        Client::new(&jobd.endpoint, Credentials::new(jobd_test_support::server::ACCESS_KEY, "not-the-secret")).unwrap();
    let refused = wrong_key.project(PROJECT).list_jobs(&ListJobsQuery::default()).await.unwrap_err();
    assert!(refused.is_unauthorized(), "{refused:?}");
    assert_eq!(refused.error_code(), Some("APIGW.0301"));
    assert!(refused.request_id().is_some());
    let unknown_key =
        Client::new(&jobd.endpoint, Credentials::new("NOBODY", jobd_test_support::server::SECRET_KEY)).unwrap();
    let refused = unknown_key.project(PROJECT).get_job("00000000-0000-4000-8000-000000000000").await.unwrap_err();
    assert_eq!(refused.status(), Some(401), "{refused:?}");

    // An id with a slash stays one (invalid) path segment rather than reaching another route.
    let bad_id = project.get_job("not/an id").await.unwrap_err();
    assert_eq!(bad_id.status(), Some(400), "{bad_id:?}");
    assert_eq!(bad_id.error_code(), Some("JOBD.INVALID_REQUEST"));
    let invalid = project.create_job(&NewJob::new("CFW!", "x"), None).await.unwrap_err();
    assert_eq!(invalid.status(), Some(400), "{invalid:?}");
    assert!(matches!(project.get_job("..").await, Err(Error::InvalidArgument(_))));

    let closed_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let nowhere = Client::new(&format!("http://127.0.0.1:{closed_port}"), Credentials::new("A", "B")).unwrap();
    let unreachable = nowhere.project(PROJECT).get_job("00000000-0000-4000-8000-000000000000").await.unwrap_err();
    assert!(matches!(unreachable, Error::Transport(_)), "{unreachable:?}");
    assert!(unreachable.is_retryable());
}

#[tokio::test]
async fn a_client_token_replays_the_first_create() {
    let jobd = Jobd::start().await;
    let project = jobd.project();
    let new_job = NewJob::new("elb", "CreateLoadbalancer").payload(json!({"vip": "10.0.0.1"}));

    let first = project.create_job(&new_job, Some("token-1")).await.unwrap();
    assert!(!first.replayed);
    let replay = project.create_job(&new_job, Some("token-1")).await.unwrap();
    assert!(replay.replayed, "the same token and body answer 200 with the first job");
    assert_eq!(replay.job.job_id, first.job.job_id);

    let other_body = new_job.clone().payload(json!({"vip": "10.0.0.2"}));
    let conflict = project.create_job(&other_body, Some("token-1")).await.unwrap_err();
    assert_eq!(conflict.status(), Some(409), "{conflict:?}");

    let fresh = project.create_job(&new_job, Some("token-2")).await.unwrap();
    assert!(!fresh.replayed);
    assert_ne!(fresh.job.job_id, first.job.job_id);
    let untokened = project.create_job(&new_job, None).await.unwrap();
    assert_ne!(untokened.job.job_id, first.job.job_id);
}

#[tokio::test]
async fn claim_heartbeat_complete_and_fail() {
    let jobd = Jobd::start().await;
    let client = jobd.client();
    let project = jobd.project();
    assert!(client.claim(&claim_request()).await.unwrap().is_empty(), "204 is no tasks");

    let a = project.create_job(&NewJob::new("cfw", "CreateFirewall").payload(json!({"n": 1})), None).await.unwrap();
    let b = project.create_job(&NewJob::new("cfw", "DeleteFirewall").max_attempts(1), None).await.unwrap();
    let other = project.create_job(&NewJob::new("waf", "CreateHost"), None).await.unwrap();

    let tasks = client.claim(&claim_request().max_tasks(10)).await.unwrap();
    let mut ids: Vec<&str> = tasks.iter().map(|t| t.job_id.as_str()).collect();
    ids.sort_unstable();
    let mut expected = [a.job.job_id.as_str(), b.job.job_id.as_str()];
    expected.sort_unstable();
    assert_eq!(ids, expected, "both cfw jobs, not the waf one");
    let task_a = tasks.iter().find(|t| t.job_id == a.job.job_id).unwrap();
    let task_b = tasks.iter().find(|t| t.job_id == b.job.job_id).unwrap();
    assert_eq!(task_a.attempt, 1);
    assert_eq!(task_a.payload, Some(json!({"n": 1})));
    assert_eq!(task_a.project_id, PROJECT);
    assert_eq!(task_a.phase, jobd_client::Phase::Run);

    let beat = client.heartbeat(task_a, Some("half way"), Some(120)).await.unwrap();
    assert_eq!(beat.status, JobStatus::Running);
    assert!(beat.lease_expires_at > task_a.lease_expires_at, "the lease was extended");
    let running = project.get_job(&task_a.job_id).await.unwrap();
    assert_eq!(running.message.as_deref(), Some("half way"));
    assert_eq!(running.worker_id.as_deref(), Some("client-test-worker"));

    let done = client.complete(task_a, Some(&json!({"firewall_id": "fw-9"})), Some("done")).await.unwrap();
    assert_eq!(done.status, JobStatus::Succeeded);
    assert_eq!(done.result, Some(json!({"firewall_id": "fw-9"})));
    let again = client.complete(&TaskLease::from(task_a), None, None).await.unwrap();
    assert_eq!(again.version, done.version, "completing twice changes nothing");
    let late = client.heartbeat(task_a, None, None).await.unwrap_err();
    assert_eq!(late.task_gone(), Some(TaskGone::Finished), "{late:?}");

    let failed = client
        .fail(&(task_b.job_id.as_str(), task_b.lease_token.as_str()), "CFW.BROKEN", "it broke", true)
        .await
        .unwrap();
    assert_eq!(failed.status, JobStatus::Failed, "max_attempts 1: a retryable failure is the last");
    assert_eq!(failed.error_code.as_deref(), Some("CFW.BROKEN"));
    assert_eq!(failed.error_msg.as_deref(), Some("it broke"));

    let wrong_token = client.heartbeat(&(other.job.job_id.as_str(), "not-a-token"), None, None).await.unwrap_err();
    assert_eq!(wrong_token.status(), Some(409), "{wrong_token:?}");
}

#[tokio::test]
async fn a_retryable_failure_comes_back_as_the_next_attempt() {
    let jobd = Jobd::start().await;
    let client = jobd.client();
    let project = jobd.project();
    let backoff = RetryBackoff { initial_seconds: 0.0, multiplier: 1.0, max_seconds: 0.0 };
    let job =
        project.create_job(&NewJob::new("cfw", "Flaky").max_attempts(3).retry_backoff(backoff), None).await.unwrap();

    let first = client.claim(&claim_request()).await.unwrap().remove(0);
    let after_failure = client.fail(&first, "CFW.FLAKY", "try again", true).await.unwrap();
    assert_eq!(after_failure.status, JobStatus::Running, "a status never goes back to PENDING");
    let second = client.claim(&claim_request().wait_seconds(5)).await.unwrap().remove(0);
    assert_eq!(second.job_id, job.job.job_id);
    assert_eq!(second.attempt, 2);
    assert_ne!(second.lease_token, first.lease_token);
    let stale = client.complete(&first, None, None).await.unwrap_err();
    assert!(stale.is_task_gone(), "the first attempt's lease no longer works: {stale:?}");
    let fatal = client.fail(&second, "CFW.FATAL", "no retry", false).await.unwrap();
    assert_eq!(fatal.status, JobStatus::Failed);
    assert_eq!(fatal.attempt, 2);
}

/// Three single-attempt tasks claimed by the harness's worker; the third's job is then cancelled.
async fn three_claimed_tasks_the_last_cancelled(jobd: &Jobd) -> Vec<jobd_client::Task> {
    let project = jobd.project();
    for job_type in ["A", "B", "C"] {
        project.create_job(&NewJob::new("cfw", job_type).max_attempts(1), None).await.unwrap();
    }
    let tasks = jobd.client().claim(&claim_request().max_tasks(10)).await.unwrap();
    project.cancel_job(&tasks[2].job_id).await.unwrap();
    tasks
}

#[tokio::test]
async fn a_batch_reports_each_task_as_its_own_call_would() {
    let jobd = Jobd::start().await;
    let client = jobd.client();
    let tasks = three_claimed_tasks_the_last_cancelled(&jobd).await;
    let [a, b, c] = [&tasks[0], &tasks[1], &tasks[2]];
    let reports = [
        TaskReport::complete(a, Some(json!({"id": 1})), Some("made".to_owned())),
        TaskReport::fail(b, "CFW.BROKEN", "it broke", false),
        TaskReport::complete(c, None, None),
        TaskReport::complete(&(a.job_id.as_str(), "not-the-lease"), None, None),
    ];
    let duplicate = client.report_batch(&reports).await.unwrap_err();
    assert_eq!((duplicate.status(), duplicate.error_code()), (Some(400), Some("JOBD.INVALID_REQUEST")));

    let results = client.report_batch(&reports[..3]).await.unwrap();
    let done = results[0].as_ref().unwrap();
    assert_eq!(
        (done.status, done.result.clone(), done.message.as_deref()),
        (JobStatus::Succeeded, Some(json!({"id": 1})), Some("made"))
    );
    let failed = results[1].as_ref().unwrap();
    assert_eq!((failed.status, failed.error_code.as_deref()), (JobStatus::Failed, Some("CFW.BROKEN")));
    let gone = results[2].as_ref().unwrap_err();
    assert_eq!(gone.task_gone(), Some(TaskGone::Cancelled), "{gone:?}");
    assert!(gone.request_id().is_some(), "the batch's request id");
    let late = client.report_batch(&reports[3..]).await.unwrap().remove(0).unwrap_err();
    assert_eq!(late.task_gone(), Some(TaskGone::Finished), "{late:?}");
    assert!(!late.is_retryable());
}

#[tokio::test]
async fn a_batch_answered_with_status_words_reports_the_same() {
    let jobd = Jobd::start().await;
    let (client, project) = (jobd.client(), jobd.project());
    let tasks = three_claimed_tasks_the_last_cancelled(&jobd).await;
    let [a, b, c] = [&tasks[0], &tasks[1], &tasks[2]];
    let reports = [
        TaskReport::complete(a, None, None),
        TaskReport::fail(b, "CFW.BROKEN", "it broke", false),
        TaskReport::complete(c, None, None),
    ];
    let results = client.report_batch_statuses(&reports).await.unwrap();
    assert_eq!(results[0].as_deref().unwrap(), "SUCCEEDED");
    assert_eq!(results[1].as_deref().unwrap(), "FAILED");
    let gone = results[2].as_ref().unwrap_err();
    assert_eq!(gone.task_gone(), Some(TaskGone::Cancelled), "{gone:?}");
    let job = project.get_job(&a.job_id).await.unwrap();
    assert_eq!(job.status, JobStatus::Succeeded, "the report was applied");
}

#[tokio::test]
async fn a_cancel_reaches_the_worker_as_task_gone() {
    let jobd = Jobd::start().await;
    let client = jobd.client();
    let project = jobd.project();
    let job = project.create_job(&NewJob::new("cfw", "Slow"), None).await.unwrap();
    let task = client.claim(&claim_request()).await.unwrap().remove(0);
    project.cancel_job(&job.job.job_id).await.unwrap();
    let beat = client.heartbeat(&task, Some("still going"), None).await.unwrap_err();
    assert_eq!(beat.task_gone(), Some(TaskGone::Cancelled), "{beat:?}");
    assert_eq!(beat.error_code(), Some("JOBD.JOB_CANCELLED"));
    let complete = client.complete(&task, None, None).await.unwrap_err();
    assert_eq!(complete.task_gone(), Some(TaskGone::Cancelled));
}

#[tokio::test]
async fn a_long_poll_claim_wakes_when_work_arrives() {
    let jobd = Jobd::start().await;
    let client = jobd.client();
    let project = jobd.project();
    let started = Instant::now();
    let waiting = tokio::spawn({
        let client = client.clone();
        async move { client.claim(&claim_request().wait_seconds(20)).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let job = project.create_job(&NewJob::new("cfw", "CreateFirewall"), None).await.unwrap();
    let tasks = waiting.await.unwrap().unwrap();
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].job_id, job.job.job_id);
    assert!(started.elapsed() < Duration::from_secs(10), "woken by the create, not by the 20 s wait");
}
