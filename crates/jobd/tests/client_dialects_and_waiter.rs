//! `jobd-client`'s dialect calls, watch and waiter against the real `jobd` binary on a socket:
//! CFW ListJob, WAF ConfirmAsyncJob, ELB ShowJob and the ListJobs page walker, `X-Jobd-Wait`,
//! IAM token auth, the event stream and long poll, and `wait_for` on jobs that succeed, fail, are
//! cancelled or outlast the timeout — with each wait strategy.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use jobd_client::elb::{ListJobsRequest, ShowJobRequest};
use jobd_client::{
    cfw, waf, Auth, Client, Entity, JobStatus, NewJob, NewSubJob, NewUser, ProjectClient, ProjectEventsQuery,
    SimulateOutcome, SimulateSpec, WaitError, WaitOptions, WaitStrategy,
};
use jobd_test_support::server::{Jobd, PROJECT};
use serde_json::json;

fn simulated(duration_ms: u64) -> SimulateSpec {
    SimulateSpec { duration_ms, ..SimulateSpec::default() }
}

fn failing(code: &str, message: &str) -> SimulateSpec {
    SimulateSpec {
        duration_ms: 100,
        outcome: SimulateOutcome::Failure,
        error_code: Some(code.to_owned()),
        error_msg: Some(message.to_owned()),
        messages: Vec::new(),
    }
}

async fn create(project: &ProjectClient, job: NewJob) -> String {
    project.create_job(&job, None).await.expect("the job is created").job.job_id
}

#[tokio::test]
async fn each_seed_dialect_reads_its_jobs() {
    let jobd = Jobd::start().await;
    let project = jobd.project();

    // CFW ListJob: a job that succeeds, held by X-Jobd-Wait until it does.
    let firewall = create(&project, NewJob::new("cfw", "CreateFirewall").simulate(simulated(300))).await;
    let started = Instant::now();
    let answer = project.cfw().list_job(&cfw::ListJobRequest::new(&firewall).wait_seconds(20)).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(10), "X-Jobd-Wait answered when the job ended");
    assert_eq!(answer.data.id, firewall);
    assert_eq!(answer.data.status, "Success");
    assert!(answer.is_terminal() && answer.is_success());
    assert!(answer.data.begin_time.as_deref().is_some_and(|t| t.ends_with('Z')), "{answer:?}");
    assert!(answer.data.end_time.is_some());
    assert_eq!((answer.error_code, answer.error_msg), (None, None));

    let broken =
        create(&project, NewJob::new("cfw", "CreateFirewall").simulate(failing("CFW.00109004", "refused"))).await;
    let answer = project.cfw().list_job(&cfw::ListJobRequest::new(&broken).wait_seconds(20)).await.unwrap();
    assert_eq!(answer.data.status, "Failed");
    assert_eq!(answer.error_code.as_deref(), Some("CFW.00109004"));
    assert_eq!(answer.error_msg.as_deref(), Some("refused"));

    // Without X-Jobd-Wait the answer is immediate: a job no worker takes stays Running.
    let idle = create(&project, NewJob::new("cfw", "DeleteFirewall")).await;
    let answer = project.cfw().list_job(&cfw::ListJobRequest::new(&idle)).await.unwrap();
    assert_eq!((answer.data.status.as_str(), answer.data.end_time), ("Running", None));
    let unknown = project.cfw().list_job(&cfw::ListJobRequest::new("00000000-0000-4000-8000-000000000000")).await;
    let unknown = unknown.unwrap_err();
    assert_eq!((unknown.status(), unknown.error_code()), (Some(404), Some("CFW.00200005")));

    // WAF ConfirmAsyncJob, in the default enterprise project.
    let domain_check = create(
        &project,
        NewJob::new("waf", "CheckDomain").simulate(SimulateSpec {
            duration_ms: 300,
            messages: vec!["Checking domain name configuration".to_owned()],
            ..SimulateSpec::default()
        }),
    )
    .await;
    let request = waf::ConfirmAsyncJobRequest::new(&domain_check).enterprise_project_id("0");
    let answer = project.waf().confirm_async_job(&request).await.unwrap();
    assert_eq!(answer.job_id, domain_check);
    assert!(matches!(answer.status.as_str(), "RUNNING" | "SUCCESS"), "{answer:?}");
    let answer = project.waf().confirm_async_job(&request.clone().wait_seconds(20)).await.unwrap();
    assert_eq!(answer.status, "SUCCESS");
    assert!(answer.is_terminal());

    // ELB ShowJob: the main job with its sub-jobs and their entities.
    let upgrade = NewJob::new("elb", "UPGRADE")
        .resource_id("lb-1")
        .sub_job(NewSubJob::new("UPGRADE_INIT").entity(Entity::new("lb-1", "loadbalancer")).simulate(simulated(100)))
        .sub_job(NewSubJob::new("UPGRADE_TRAFFIC_SWITCH").simulate(simulated(100)))
        .sub_job(NewSubJob::new("UPGRADE_COMPLETE").simulate(simulated(100)));
    let upgrade = create(&project, upgrade).await;
    let shown = project.elb().show_job(&ShowJobRequest::new(&upgrade).wait_seconds(20)).await.unwrap();
    let job = shown.job;
    assert_eq!(
        (job.job_id.as_str(), job.job_type.as_str(), job.status.as_str()),
        (upgrade.as_str(), "UPGRADE", "COMPLETE")
    );
    assert_eq!((job.project_id.as_str(), job.resource_id.as_str()), (PROJECT, "lb-1"));
    let steps: Vec<(&str, &str)> = job.sub_jobs.iter().map(|s| (s.job_type.as_str(), s.status.as_str())).collect();
    assert_eq!(
        steps,
        [("UPGRADE_INIT", "SUCCESS"), ("UPGRADE_TRAFFIC_SWITCH", "SUCCESS"), ("UPGRADE_COMPLETE", "SUCCESS")]
    );
    assert_eq!(job.sub_jobs[0].entities[0].resource_type, "loadbalancer");
    assert!(shown.request_id.is_some());

    // A dialect only sees its own service's jobs.
    let hidden = project.elb().show_job(&ShowJobRequest::new(&firewall)).await.unwrap_err();
    assert_eq!((hidden.status(), hidden.error_code()), (Some(404), Some("ELB.8904")));
    let too_long = project.elb().show_job(&ShowJobRequest::new(&upgrade).wait_seconds(61)).await.unwrap_err();
    assert_eq!(too_long.status(), Some(400), "{too_long:?}");
}

#[tokio::test]
async fn the_elb_page_walker_reads_25_jobs_in_pages_of_10() {
    let jobd = Jobd::start().await;
    let project = jobd.project();
    let mut created = BTreeSet::new();
    for n in 0..25 {
        created.insert(create(&project, NewJob::new("elb", "cloneLoadbalancer").resource_id(format!("lb-{n}"))).await);
    }
    create(&project, NewJob::new("cfw", "CreateFirewall")).await; // not ELB's: never listed

    let elb = project.elb();
    let mut pages = elb.list_jobs_pages(ListJobsRequest::default().limit(10));
    let mut sizes = Vec::new();
    let mut seen = Vec::new();
    while let Some(page) = pages.next_page().await.unwrap() {
        assert_eq!(page.page_info.current_count as usize, page.jobs.len());
        sizes.push(page.jobs.len());
        seen.extend(page.jobs.into_iter().map(|job| job.job_id));
    }
    assert_eq!(sizes, [10, 10, 5], "three requests, the last one short");
    assert!(pages.next_page().await.unwrap().is_none(), "the walker stays finished");
    assert_eq!(seen.len(), 25);
    assert_eq!(seen.iter().cloned().collect::<BTreeSet<_>>(), created, "every job once");

    // The same walk as a stream, and filtered.
    let streamed: Vec<_> = elb.list_jobs_pages(ListJobsRequest::default().limit(10)).into_stream().collect().await;
    let job_ids: Vec<String> = streamed.into_iter().flat_map(|page| page.unwrap().jobs).map(|job| job.job_id).collect();
    assert_eq!(job_ids, seen, "newest first, the same order");
    let one = elb.list_jobs_pages(ListJobsRequest::default().limit(10).resource_id("lb-7")).all_jobs().await.unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].resource_id, "lb-7");
    let all = elb.list_jobs_pages(ListJobsRequest::default().limit(0)).all_jobs().await.unwrap();
    assert_eq!(all.len(), 25, "limit 0 is the server's largest page");
}

#[tokio::test]
async fn a_token_reads_every_api_and_waits() {
    let jobd = Jobd::start().await;
    let root = jobd.client();
    let team = root.create_project("team-token").await.unwrap();
    let user = NewUser {
        name: "ann".to_owned(),
        domain: "acme".to_owned(),
        password: "a long password".to_owned(),
        project_id: team.id.clone(),
        role: "reader".to_owned(),
        enterprise_project_ids: Vec::new(),
    };
    root.create_user(&user).await.unwrap();
    let job_id = create(&root.project(&team.id), NewJob::new("elb", "UPGRADE").simulate(simulated(300))).await;

    let token_request = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "ann", "password": "a long password", "domain": {"name": "acme"}}}},
        "scope": {"project": {"name": "team-token"}}}});
    let response = reqwest::Client::new()
        .post(format!("{}/v3/auth/tokens?nocatalog=true", jobd.endpoint))
        .json(&token_request)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let token = response.headers()["x-subject-token"].to_str().unwrap().to_owned();

    let reader = Client::new(&jobd.endpoint, Auth::token(&token)).unwrap().project(&team.id);
    let done = reader.wait_for(&job_id, Duration::from_secs(20)).await.unwrap();
    assert_eq!(done.status, JobStatus::Succeeded);
    let shown = reader.elb().show_job(&ShowJobRequest::new(&job_id)).await.unwrap();
    assert_eq!(shown.job.status, "COMPLETE");
    let listed = reader.elb().list_jobs(&ListJobsRequest::default().limit(5)).await.unwrap();
    assert_eq!(listed.jobs.len(), 1);
    assert_eq!(reader.get_job(&job_id).await.unwrap().version, done.version);

    // A reader may not create; another project is refused; a made-up token is not a token.
    let refused = reader.create_job(&NewJob::new("elb", "UPGRADE"), None).await.unwrap_err();
    assert_eq!(refused.status(), Some(403), "{refused:?}");
    let elsewhere = Client::new(&jobd.endpoint, Auth::token(&token)).unwrap().project(PROJECT);
    assert_eq!(elsewhere.get_job(&job_id).await.unwrap_err().error_code(), Some("APIGW.0302"));
    let forged = Client::new(&jobd.endpoint, Auth::token("not-a-token")).unwrap().project(&team.id);
    let forged = forged.elb().show_job(&ShowJobRequest::new(&job_id)).await.unwrap_err();
    assert!(forged.is_unauthorized(), "{forged:?}");
}

#[tokio::test]
async fn the_event_stream_shows_every_version_in_order_and_resumes() {
    let jobd = Jobd::start().await;
    let project = jobd.project();
    let job = NewJob::new("elb", "UPGRADE")
        .sub_job(NewSubJob::new("UPGRADE_INIT").simulate(SimulateSpec {
            duration_ms: 300,
            messages: vec!["preparing".to_owned(), "health-checking".to_owned()],
            ..SimulateSpec::default()
        }))
        .sub_job(NewSubJob::new("UPGRADE_COMPLETE").simulate(simulated(100)));
    let job_id = create(&project, job).await;

    let states: Vec<_> = project.watch(&job_id).collect().await;
    let states: Vec<_> = states.into_iter().map(|state| state.expect("no stream error")).collect();
    let versions: Vec<i64> = states.iter().map(|job| job.version).collect();
    assert!(versions.windows(2).all(|pair| pair[0] < pair[1]), "versions only go up: {versions:?}");
    let last = states.last().unwrap();
    assert_eq!(last.status, JobStatus::Succeeded, "the stream ends with the terminal state");
    assert!(states[..states.len() - 1].iter().all(|job| !job.is_terminal()));
    assert_eq!(last.sub_jobs.len(), 2, "each event is the whole job");
    let messages: Vec<&str> = states.iter().filter_map(|job| job.sub_jobs[0].message.as_deref()).collect();
    assert!(messages.contains(&"health-checking"), "sub-job changes are events too: {messages:?}");

    // Resuming after a version replays only what came after it.
    let resumed: Vec<_> = project.watch_after(&job_id, Some(versions[0])).collect().await;
    let resumed: Vec<i64> = resumed.into_iter().map(|job| job.unwrap().version).collect();
    assert!(resumed.iter().all(|v| *v > versions[0]) && resumed.last() == versions.last(), "{resumed:?}");
    let started = Instant::now();
    let nothing_new: Vec<_> = project.watch_after(&job_id, Some(last.version)).collect().await;
    assert!(nothing_new.is_empty(), "the job ended at the version given: {nothing_new:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "and the watch ends at once: {:?}", started.elapsed());

    let unknown: Vec<_> = project.watch("00000000-0000-4000-8000-000000000000").collect().await;
    assert_eq!(unknown.len(), 1);
    assert!(unknown[0].as_ref().unwrap_err().is_not_found());
}

#[tokio::test]
async fn a_long_poll_answers_on_change_or_after_the_wait() {
    let jobd = Jobd::start().await;
    let project = jobd.project();
    let idle = project.create_job(&NewJob::new("cfw", "Idle"), None).await.unwrap().job;

    let started = Instant::now();
    let same = project.get_job_after(&idle.job_id, idle.version, Duration::from_secs(1)).await.unwrap();
    assert_eq!(same.version, idle.version);
    assert!(started.elapsed() >= Duration::from_millis(900), "held for the wait: {:?}", started.elapsed());

    let started = Instant::now();
    let older = project.get_job_after(&idle.job_id, idle.version - 1, Duration::from_secs(30)).await.unwrap();
    assert_eq!(older.version, idle.version);
    assert!(started.elapsed() < Duration::from_secs(5), "a newer version answers at once");

    let waiting = tokio::spawn({
        let (project, job_id, version) = (project.clone(), idle.job_id.clone(), idle.version);
        async move { project.get_job_after(&job_id, version, Duration::from_secs(30)).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    project.cancel_job(&idle.job_id).await.unwrap();
    let changed = waiting.await.unwrap().unwrap();
    assert_eq!(changed.status, JobStatus::Cancelled);
    assert!(started.elapsed() < Duration::from_secs(5), "woken by the change");
}

#[tokio::test]
async fn the_waiter_returns_the_job_or_a_typed_error() {
    let jobd = Jobd::start().await;
    let project = jobd.project();

    // Success, with every state reported on the way.
    let job_id = create(&project, NewJob::new("elb", "UPGRADE").simulate(simulated(300))).await;
    let mut seen = Vec::new();
    let options = WaitOptions::new(Duration::from_secs(20));
    let done = project.wait_for_with(&job_id, &options, |job| seen.push((job.version, job.status))).await.unwrap();
    assert_eq!(done.status, JobStatus::Succeeded);
    assert_eq!(seen.last(), Some(&(done.version, JobStatus::Succeeded)));
    assert!(seen.windows(2).all(|pair| pair[0].0 < pair[1].0), "{seen:?}");

    // A failure carries the job's code and message.
    let job_id =
        create(&project, NewJob::new("elb", "CLONE").simulate(failing("ELB.8907", "traffic switch refused"))).await;
    match project.wait_for(&job_id, Duration::from_secs(20)).await {
        Err(WaitError::Failed { error_code, error_msg, job }) => {
            assert_eq!((error_code.as_str(), error_msg.as_str()), ("ELB.8907", "traffic switch refused"));
            assert_eq!(job.status, JobStatus::Failed);
        }
        other => panic!("expected Failed, got {other:?}"),
    }

    // A cancel while waiting.
    let idle = create(&project, NewJob::new("elb", "UPGRADE")).await;
    let canceller = tokio::spawn({
        let (project, idle) = (project.clone(), idle.clone());
        async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            project.cancel_job(&idle).await.unwrap();
        }
    });
    match project.wait_for(&idle, Duration::from_secs(20)).await {
        Err(WaitError::Cancelled { job }) => assert_eq!(job.job_id, idle),
        other => panic!("expected Cancelled, got {other:?}"),
    }
    canceller.await.unwrap();

    // Time runs out on a job no worker takes.
    let stuck = create(&project, NewJob::new("elb", "UPGRADE")).await;
    let started = Instant::now();
    match project.wait_for(&stuck, Duration::from_millis(700)).await {
        Err(WaitError::Timeout { job_id, waited, last_seen }) => {
            assert_eq!((job_id.as_str(), waited), (stuck.as_str(), Duration::from_millis(700)));
            assert_eq!(last_seen.map(|job| job.status), Some(JobStatus::Pending));
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(3));

    // No such job: an API error at once.
    let missing = project.wait_for("00000000-0000-4000-8000-000000000000", Duration::from_secs(20)).await;
    assert!(matches!(&missing, Err(WaitError::Api(e)) if e.is_not_found()), "{missing:?}");
}

#[tokio::test]
async fn every_wait_strategy_reaches_the_end() {
    let jobd = Jobd::start().await;
    let project = jobd.project();
    for strategy in [WaitStrategy::Auto, WaitStrategy::Events, WaitStrategy::LongPoll, WaitStrategy::Poll] {
        let job_id = create(&project, NewJob::new("cfw", "CreateFirewall").simulate(simulated(300))).await;
        let options = WaitOptions::new(Duration::from_secs(20))
            .strategy(strategy)
            .poll_interval(Duration::from_millis(50), Duration::from_millis(400));
        let started = Instant::now();
        let done = project.wait_for_with(&job_id, &options, |_| {}).await.unwrap();
        assert_eq!(done.status, JobStatus::Succeeded, "{strategy:?}");
        assert!(started.elapsed() < Duration::from_secs(10), "{strategy:?}: {:?}", started.elapsed());
    }
}

#[tokio::test]
async fn the_project_stream_shows_the_changes_of_one_service() {
    let jobd = Jobd::start().await;
    let project = jobd.project();
    let watching = tokio::spawn({
        let project = project.clone();
        async move {
            let mut watch = project.watch_project(&ProjectEventsQuery::default().service("cfw"));
            let mut seen = Vec::new();
            while let Some(job) = watch.next().await {
                let job = job.expect("no stream error");
                let done = job.is_terminal();
                seen.push(job);
                if done {
                    return seen;
                }
            }
            panic!("the project stream never ends by itself");
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    create(&project, NewJob::new("elb", "UPGRADE").simulate(simulated(50))).await;
    let firewall = create(&project, NewJob::new("cfw", "CreateFirewall").simulate(simulated(300))).await;
    let seen = tokio::time::timeout(Duration::from_secs(20), watching).await.expect("the cfw job ends").unwrap();
    assert!(seen.iter().all(|job| job.service == "cfw" && job.job_id == firewall), "only cfw's job: {seen:?}");
    assert_eq!(seen.last().unwrap().status, JobStatus::Succeeded);
    assert!(seen.windows(2).all(|pair| pair[0].version < pair[1].version));
}
