//! The worker API over the real router and SQLite store: claims under leases, heartbeats, retries,
//! cancellation and timeouts reaching the worker, idempotent creates. Time is the test's clock.

mod common;

use common::{TestApp, PROJECT};
use http::{Method, StatusCode};
use jobd_service::maintenance;
use serde_json::{json, Value};

async fn claim(app: &TestApp, body: Value) -> common::Answer {
    app.signed(Method::POST, "/v1/worker/claim", Some(body)).await
}

async fn claim_one(app: &TestApp) -> Value {
    let answer = claim(app, json!({"worker_id": "w1", "services": ["cfw", "elb"]})).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    answer.body["task"].clone()
}

async fn task_call(app: &TestApp, task: &Value, verb: &str, body: Value) -> common::Answer {
    let url = format!("/v1/worker/tasks/{}/{verb}", task["job_id"].as_str().unwrap());
    app.signed(Method::POST, &url, Some(body)).await
}

fn token(task: &Value) -> Value {
    task["lease_token"].clone()
}

#[tokio::test]
async fn a_task_is_claimed_heartbeaten_and_completed_once() {
    let app = TestApp::new().await;
    assert_eq!(claim(&app, json!({"worker_id": "w1", "services": ["cfw"]})).await.status, StatusCode::NO_CONTENT);
    let job = app.create(json!({"service": "cfw", "job_type": "CreateFirewall", "payload": {"size": 2}})).await;
    let task = claim_one(&app).await;
    assert_eq!(task["job_id"], job["job_id"]);
    assert_eq!(task["attempt"], 1);
    assert_eq!(task["payload"], json!({"size": 2}));
    assert_eq!(claim(&app, json!({"worker_id": "w2", "services": ["cfw"]})).await.status, StatusCode::NO_CONTENT);

    let beat = task_call(
        &app,
        &task,
        "heartbeat",
        json!({"lease_token": token(&task), "message": "half way", "extend_seconds": 60}),
    )
    .await;
    assert_eq!(beat.status, StatusCode::OK, "{}", beat.body);
    let done = task_call(&app, &task, "complete", json!({"lease_token": token(&task), "result": {"id": "fw-1"}})).await;
    assert_eq!(done.status, StatusCode::OK);
    assert_eq!(done.body["job"]["status"], "SUCCEEDED");
    assert_eq!(done.body["job"]["result"], json!({"id": "fw-1"}));
    let again = task_call(&app, &task, "complete", json!({"lease_token": token(&task)})).await;
    assert_eq!(again.status, StatusCode::OK, "completing twice changes nothing");
    assert_eq!(again.body["job"]["version"], done.body["job"]["version"]);
    let cfw = app.get(&format!("/v3/{PROJECT}/jobs/{}", job["job_id"].as_str().unwrap())).await;
    assert_eq!(cfw.body["data"]["status"], "Success");
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_and_the_old_holder_refused() {
    let app = TestApp::new().await;
    app.create(json!({"service": "cfw", "job_type": "CreateFirewall"})).await;
    let first =
        claim(&app, json!({"worker_id": "w1", "services": ["cfw"], "lease_seconds": 5})).await.body["task"].clone();
    app.clock.set_ms(5_000);
    let beat = task_call(&app, &first, "heartbeat", json!({"lease_token": token(&first), "extend_seconds": 1})).await;
    assert_eq!(beat.status, StatusCode::OK, "an expired lease works until taken over");
    app.clock.set_ms(6_000);
    let second = claim(&app, json!({"worker_id": "w2", "services": ["cfw"]})).await.body["task"].clone();
    assert_eq!(second["attempt"], 2);
    let stale = task_call(&app, &first, "complete", json!({"lease_token": token(&first)})).await;
    assert_eq!(stale.status, StatusCode::CONFLICT);
    assert_eq!(stale.body["error_code"], "JOBD.LEASE_LOST");
}

#[tokio::test]
async fn retryable_failures_wait_out_the_backoff() {
    let app = TestApp::new().await;
    app.create(json!({"service": "cfw", "job_type": "CreateFirewall", "max_attempts": 2,
                      "retry_backoff": {"initial_seconds": 10, "multiplier": 2, "max_seconds": 60}}))
        .await;
    let task = claim_one(&app).await;
    let failed = task_call(
        &app,
        &task,
        "fail",
        json!({"lease_token": token(&task), "error_code": "CFW.X", "error_msg": "flaky"}),
    )
    .await;
    assert_eq!(failed.body["job"]["status"], "RUNNING", "a job stays RUNNING between attempts");
    app.clock.set_ms(4_999);
    assert_eq!(claim(&app, json!({"worker_id": "w", "services": ["cfw"]})).await.status, StatusCode::NO_CONTENT);
    app.clock.set_ms(10_000);
    let retry = claim_one(&app).await;
    assert_eq!(retry["attempt"], 2);
    let last = task_call(
        &app,
        &retry,
        "fail",
        json!({"lease_token": token(&retry), "error_code": "CFW.X", "error_msg": "still"}),
    )
    .await;
    assert_eq!(last.body["job"]["status"], "FAILED");
    assert_eq!(last.body["job"]["error_code"], "CFW.X");
}

#[tokio::test]
async fn cancellation_and_timeouts_reach_the_worker_as_409() {
    let app = TestApp::new().await;
    let job = app.create(json!({"service": "cfw", "job_type": "CreateFirewall"})).await;
    let task = claim_one(&app).await;
    app.signed(Method::POST, &format!("/v1/{PROJECT}/jobs/{}/cancel", job["job_id"].as_str().unwrap()), None).await;
    let beat = task_call(&app, &task, "heartbeat", json!({"lease_token": token(&task)})).await;
    assert_eq!(beat.status, StatusCode::CONFLICT);
    assert_eq!(beat.body["error_code"], "JOBD.JOB_CANCELLED");

    app.create(json!({"service": "elb", "job_type": "UPGRADE", "timeout_seconds": 30})).await;
    let task = claim_one(&app).await;
    app.clock.set_ms(30_000);
    assert_eq!(maintenance::job_timeouts::run(&app.service).await.unwrap(), 1, "one job timed out");
    let beat = task_call(&app, &task, "heartbeat", json!({"lease_token": token(&task)})).await;
    assert_eq!(beat.body["error_code"], "JOBD.JOB_TIMED_OUT");
    let job = app.get(&format!("/v1/{PROJECT}/jobs/{}", task["job_id"].as_str().unwrap())).await;
    assert_eq!(job.body["job"]["error_code"], "JOB.TIMEOUT");
}

#[tokio::test]
async fn the_last_attempts_expired_lease_fails_the_job() {
    let app = TestApp::new().await;
    let job = app.create(json!({"service": "cfw", "job_type": "CreateFirewall", "max_attempts": 1})).await;
    claim(&app, json!({"worker_id": "w", "services": ["cfw"], "lease_seconds": 5})).await;
    app.clock.set_ms(5_000);
    assert_eq!(maintenance::lease_rescuer::run(&app.service).await.unwrap(), 1, "one lease expired");
    let answer = app.get(&format!("/v1/{PROJECT}/jobs/{}", job["job_id"].as_str().unwrap())).await;
    assert_eq!(answer.body["job"]["error_code"], "JOB.LEASE_EXPIRED");
}

#[tokio::test]
async fn a_waiting_claim_is_woken_by_new_work() {
    let app = std::sync::Arc::new(TestApp::new().await);
    let waiter = {
        let app = app.clone();
        tokio::spawn(
            async move { claim(&app, json!({"worker_id": "w", "services": ["waf"], "wait_seconds": 20})).await },
        )
    };
    tokio::task::yield_now().await;
    let job = app.create(json!({"service": "waf", "job_type": "CheckDomain"})).await;
    let answer = tokio::time::timeout(std::time::Duration::from_secs(10), waiter).await.unwrap().unwrap();
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["task"]["job_id"], job["job_id"]);
}

#[tokio::test]
async fn sub_jobs_are_tasks_and_parents_never_are() {
    let app = TestApp::new().await;
    let job = app
        .create(json!({"service": "elb", "job_type": "UPGRADE", "execution": "parallel",
                       "sub_jobs": [{"job_type": "A"}, {"job_type": "B"}]}))
        .await;
    let answer = claim(&app, json!({"worker_id": "w", "services": ["elb"], "max_tasks": 10})).await;
    let tasks = answer.body["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 2, "parallel sub-jobs are claimed together");
    assert!(tasks.iter().all(|t| t["parent_job_id"] == job["job_id"]));
    let parent = json!({"job_id": job["job_id"]});
    let refused = task_call(&app, &parent, "complete", json!({"lease_token": "x"})).await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert_eq!(refused.body["error_code"], "JOBD.NOT_A_TASK");
}

#[tokio::test]
async fn client_tokens_make_creates_idempotent() {
    let app = TestApp::new().await;
    let url = format!("/v1/{PROJECT}/jobs");
    let send = |body: Value, token: &'static str| {
        let app = &app;
        let url = url.clone();
        async move {
            let mut headers = http::HeaderMap::new();
            headers.insert("host", "127.0.0.1:8080".parse().unwrap());
            headers.insert("x-client-token", token.parse().unwrap());
            let bytes = serde_json::to_vec(&body).unwrap();
            jobd_auth::Signer::new(common::ACCESS_KEY, common::SECRET_KEY)
                .sign("POST", &url, None, &mut headers, &bytes, jobd_core::Clock::now(&app.clock))
                .unwrap();
            app.send(Method::POST, &url, headers, bytes).await
        }
    };
    let body = json!({"service": "cfw", "job_type": "CreateFirewall", "payload": {"a": 1, "b": 2}});
    let first = send(body.clone(), "tok-1").await;
    assert_eq!(first.status, StatusCode::CREATED);
    let reordered = json!({"payload": {"b": 2, "a": 1}, "job_type": "CreateFirewall", "service": "cfw"});
    let replay = send(reordered, "tok-1").await;
    assert_eq!(replay.status, StatusCode::OK, "the same token and body answer the same job");
    assert_eq!(replay.body["job"]["job_id"], first.body["job"]["job_id"]);
    let different = send(json!({"service": "cfw", "job_type": "Other"}), "tok-1").await;
    assert_eq!(different.status, StatusCode::CONFLICT);
    let other_token = send(body, "tok-2").await;
    assert_eq!(other_token.status, StatusCode::CREATED);
}

#[tokio::test]
async fn bad_worker_requests_are_400() {
    let app = TestApp::new().await;
    for body in [
        json!({"services": ["cfw"]}),
        json!({"worker_id": "w", "services": []}),
        json!({"worker_id": "w", "services": ["CFW"]}),
        json!({"worker_id": "w", "services": ["cfw"], "lease_seconds": 0}),
        json!({"worker_id": "w", "services": ["cfw"], "lease_seconds": 3601}),
        json!({"worker_id": "w", "services": ["cfw"], "wait_seconds": 61}),
        json!({"worker_id": "w", "services": ["cfw"], "color": 1}),
        json!(["w"]),
    ] {
        let answer = claim(&app, body.clone()).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body}: {}", answer.body);
    }
    let missing = task_call(
        &app,
        &json!({"job_id": "00000000-0000-4000-8000-000000000000"}),
        "heartbeat",
        json!({"lease_token": "t"}),
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_rollback_runs_compensations_through_the_worker_api() {
    let app = TestApp::new().await;
    let job = app
        .create(json!({"service": "elb", "job_type": "UPGRADE", "on_failure": "rollback", "max_attempts": 1,
                       "sub_jobs": [{"job_type": "UPGRADE_INIT"}, {"job_type": "UPGRADE_TRAFFIC_SWITCH"},
                                    {"job_type": "UPGRADE_COMPLETE"}]}))
        .await;
    let id = job["job_id"].as_str().unwrap().to_owned();
    let elb_url = format!("/v3/{PROJECT}/elb/jobs/{id}");
    for step in 0..3 {
        let task = claim_one(&app).await;
        assert_eq!(task["phase"], "run");
        assert_eq!(task["job_id"], job["sub_jobs"][step]["job_id"]);
        let body = json!({"lease_token": token(&task), "error_code": "ELB.SWITCH", "error_msg": "refused"});
        let verb = if step == 2 { "fail" } else { "complete" };
        task_call(&app, &task, verb, if step == 2 { body } else { json!({"lease_token": token(&task)}) }).await;
    }
    assert_eq!(app.get(&elb_url).await.body["job"]["status"], "ROLLBACKING");
    let native = app.get(&format!("/v1/{PROJECT}/jobs/{id}")).await.body["job"].clone();
    assert_eq!((native["status"].as_str(), native["phase"].as_str()), (Some("RUNNING"), Some("rollback")));
    assert_eq!(native["sub_jobs"][1]["compensation"]["status"], "PENDING");

    let second = claim_one(&app).await;
    assert_eq!(second["phase"], "rollback");
    assert_eq!(second["job_id"], job["sub_jobs"][1]["job_id"], "compensations run last first");
    task_call(&app, &second, "complete", json!({"lease_token": token(&second)})).await;
    let first = claim_one(&app).await;
    assert_eq!(first["job_id"], job["sub_jobs"][0]["job_id"]);
    task_call(&app, &first, "complete", json!({"lease_token": token(&first)})).await;
    assert_eq!(app.get(&elb_url).await.body["job"]["status"], "FAIL");
    let native = app.get(&format!("/v1/{PROJECT}/jobs/{id}")).await.body["job"].clone();
    assert_eq!(native["status"], "FAILED");
    assert_eq!(native["error_code"], "ELB.SWITCH");
    assert_eq!(native["sub_jobs"][0]["compensation"]["status"], "SUCCEEDED");

    // A second saga whose compensation fails ends ROLLBACK_FAIL.
    let job = app
        .create(json!({"service": "elb", "job_type": "UPGRADE", "on_failure": "rollback", "max_attempts": 1,
                       "sub_jobs": [{"job_type": "A"}, {"job_type": "B"}]}))
        .await;
    let a = claim_one(&app).await;
    task_call(&app, &a, "complete", json!({"lease_token": token(&a)})).await;
    let b = claim_one(&app).await;
    task_call(
        &app,
        &b,
        "fail",
        json!({"lease_token": token(&b), "error_code": "E", "error_msg": "x", "retryable": false}),
    )
    .await;
    let undo = claim_one(&app).await;
    assert_eq!(undo["phase"], "rollback");
    task_call(&app, &undo, "fail", json!({"lease_token": token(&undo), "error_code": "UNDO", "error_msg": "stuck"}))
        .await;
    let answer = app.get(&format!("/v3/{PROJECT}/elb/jobs/{}", job["job_id"].as_str().unwrap())).await;
    assert_eq!(answer.body["job"]["status"], "ROLLBACK_FAIL");
}

async fn batch(app: &TestApp, reports: Value) -> common::Answer {
    app.signed(Method::POST, "/v1/worker/tasks/batch", Some(json!({"reports": reports}))).await
}

fn statuses(answer: &common::Answer) -> Vec<u64> {
    answer.body["results"].as_array().unwrap().iter().map(|r| r["status"].as_u64().unwrap()).collect()
}

#[tokio::test]
async fn a_batch_applies_each_report_as_its_single_route_would() {
    let app = TestApp::new().await;
    for n in 0..4 {
        app.create(json!({"service": "cfw", "job_type": "CreateFirewall", "max_attempts": 2, "payload": {"n": n}}))
            .await;
    }
    let claimed = claim(&app, json!({"worker_id": "w1", "services": ["cfw"], "max_tasks": 10})).await;
    let tasks = claimed.body["tasks"].as_array().unwrap().clone();
    let [done, failed, stale, refused] = [&tasks[0], &tasks[1], &tasks[2], &tasks[3]];
    let unknown = "00000000-0000-4000-8000-000000000000";
    let answer = batch(
        &app,
        json!([
            {"job_id": done["job_id"], "lease_token": token(done), "outcome": "complete", "result": {"id": "fw-1"},
             "message": "made"},
            {"job_id": failed["job_id"], "lease_token": token(failed), "outcome": "fail", "error_code": "CFW.X",
             "error_msg": "flaky"},
            {"job_id": stale["job_id"], "lease_token": "not-the-lease", "outcome": "complete"},
            {"job_id": refused["job_id"], "lease_token": token(refused), "outcome": "fail", "error_code": "",
             "error_msg": "no code"},
            {"job_id": "not-a-job-id", "lease_token": "t", "outcome": "complete"},
            {"job_id": unknown, "lease_token": "t", "outcome": "complete"},
            {"job_id": "00000000-0000-4000-8000-000000000001", "lease_token": "t", "outcome": "finish"},
            {"job_id": "00000000-0000-4000-8000-000000000002", "lease_token": "t", "outcome": "complete",
             "error_code": "E"},
        ]),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(statuses(&answer), [200, 200, 409, 400, 400, 404, 400, 400], "{}", answer.body);
    let results = answer.body["results"].as_array().unwrap();
    assert_eq!(results[0]["job_id"], done["job_id"], "results are in request order");
    assert_eq!(results[4]["job_id"], "not-a-job-id");
    assert_eq!(results[0]["job"]["status"], "SUCCEEDED");
    assert_eq!(results[0]["job"]["result"], json!({"id": "fw-1"}));
    assert_eq!(results[0]["job"]["message"], "made");
    assert!(results[0].get("error_code").is_none());
    assert_eq!(results[1]["job"]["status"], "RUNNING", "a retryable failure waits for the next attempt");
    assert_eq!(results[2]["error_code"], "JOBD.LEASE_LOST");
    assert!(results[2].get("job").is_none());
    assert_eq!(results[5]["error_code"], "JOBD.JOB_NOT_FOUND");

    // Each slot is what the single route answers.
    let again = task_call(&app, done, "complete", json!({"lease_token": token(done)})).await;
    assert_eq!(again.body["job"], results[0]["job"], "completing twice changes nothing");
    let single = task_call(
        &app,
        refused,
        "fail",
        json!({"lease_token": token(refused), "error_code": "", "error_msg": "no code"}),
    )
    .await;
    assert_eq!(single.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        (&results[3]["error_code"], &results[3]["error_msg"]),
        (&single.body["error_code"], &single.body["error_msg"])
    );
    let single = task_call(&app, stale, "complete", json!({"lease_token": "not-the-lease"})).await;
    assert_eq!(
        (&results[2]["error_code"], &results[2]["error_msg"]),
        (&single.body["error_code"], &single.body["error_msg"])
    );
    // The refused reports changed nothing: those tasks are still held and can be reported.
    let later = batch(
        &app,
        json!([{"job_id": stale["job_id"], "lease_token": token(stale), "outcome": "complete"},
               {"job_id": refused["job_id"], "lease_token": token(refused), "outcome": "fail", "error_code": "CFW.Y",
                "error_msg": "for good", "retryable": false}]),
    )
    .await;
    assert_eq!(statuses(&later), [200, 200], "{}", later.body);
    assert_eq!(later.body["results"][1]["job"]["status"], "FAILED");
    assert_eq!(later.body["results"][1]["job"]["error_code"], "CFW.Y");
}

#[tokio::test]
async fn a_batch_asking_for_status_words_gets_them_instead_of_the_tasks() {
    let app = TestApp::new().await;
    for _ in 0..3 {
        app.create(json!({"service": "cfw", "job_type": "CreateFirewall", "max_attempts": 2})).await;
    }
    let claimed = claim(&app, json!({"worker_id": "w1", "services": ["cfw"], "max_tasks": 10})).await;
    let tasks = claimed.body["tasks"].as_array().unwrap().clone();
    let reports = json!([
        {"job_id": tasks[0]["job_id"], "lease_token": token(&tasks[0]), "outcome": "complete"},
        {"job_id": tasks[1]["job_id"], "lease_token": token(&tasks[1]), "outcome": "fail", "error_code": "CFW.X",
         "error_msg": "flaky"},
        {"job_id": tasks[2]["job_id"], "lease_token": "not-the-lease", "outcome": "complete"},
    ]);
    let url = "/v1/worker/tasks/batch";
    let answer = app.signed(Method::POST, url, Some(json!({"reports": reports, "answer": "status"}))).await;
    assert_eq!(statuses(&answer), [200, 200, 409], "{}", answer.body);
    let results = answer.body["results"].as_array().unwrap();
    assert_eq!(results[0]["job_status"], "SUCCEEDED");
    assert_eq!(results[1]["job_status"], "RUNNING", "a retryable failure waits for the next attempt");
    assert!(results.iter().all(|r| r.get("job").is_none()), "no task in the answer: {}", answer.body);
    assert_eq!(results[2]["error_code"], "JOBD.LEASE_LOST");
    assert!(results[2].get("job_status").is_none());
    // The default (and `"answer": "job"`) carries the whole task, as before.
    let again = json!({"reports": [reports[0].clone()], "answer": "job"});
    let answer = app.signed(Method::POST, url, Some(again)).await;
    assert_eq!(answer.body["results"][0]["job"]["status"], "SUCCEEDED", "{}", answer.body);
    assert!(answer.body["results"][0].get("job_status").is_none());
    let bad = app.signed(Method::POST, url, Some(json!({"reports": [reports[0].clone()], "answer": "all"}))).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
}

#[tokio::test]
async fn a_malformed_batch_is_400_and_applies_nothing() {
    let app = TestApp::new().await;
    let job = app.create(json!({"service": "cfw", "job_type": "CreateFirewall"})).await;
    let task = claim_one(&app).await;
    let good = json!({"job_id": task["job_id"], "lease_token": token(&task), "outcome": "complete"});
    let upper =
        json!({"job_id": task["job_id"].as_str().unwrap().to_uppercase(), "lease_token": "t", "outcome": "complete"});
    let many: Vec<Value> = (0..1001)
        .map(|n| json!({"job_id": format!("00000000-0000-4000-8000-{n:012}"), "lease_token": "t", "outcome": "complete"}))
        .collect();
    let url = "/v1/worker/tasks/batch";
    for body in [
        json!({"reports": []}),
        json!({"reports": many}),
        json!({"reports": [good, good]}),
        json!({"reports": [good, upper]}),
        json!({"reports": [good, {"lease_token": "t", "outcome": "complete"}]}),
        json!({"reports": [good, 7]}),
        json!({"reports": [good], "color": 1}),
        json!({}),
        json!([good]),
    ] {
        let answer = app.signed(Method::POST, url, Some(body.clone())).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body}: {}", answer.body);
        assert_eq!(answer.body["error_code"], "JOBD.INVALID_REQUEST");
        assert!(answer.body["request_id"].is_string(), "the native error shape");
    }
    let thousand: Vec<Value> = (0..1000)
        .map(|n| json!({"job_id": format!("00000000-0000-4000-8000-{n:012}"), "lease_token": "t", "outcome": "complete"}))
        .collect();
    let answer = batch(&app, json!(thousand)).await;
    assert_eq!(statuses(&answer), [404; 1000], "1,000 reports are allowed");
    let still = app.get(&format!("/v1/{PROJECT}/jobs/{}", job["job_id"].as_str().unwrap())).await;
    assert_eq!(still.body["job"]["status"], "RUNNING", "a refused batch applied none of its reports");
    assert_eq!(app.signed(Method::GET, url, None).await.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn a_batch_report_on_another_projects_task_is_not_found() {
    let app = TestApp::new().await;
    let own = app.identity.create_project("own").await.unwrap().id;
    let other = app.identity.create_project("other").await.unwrap().id;
    let worker = app
        .identity
        .create_credential("test", std::slice::from_ref(&own), jobd_auth::identity::Role::Worker, &[])
        .await
        .unwrap();
    let (ak, sk) = (worker.record.access_key.as_str(), worker.secret_key.as_str());
    for project in [&own, &other] {
        let created = app
            .signed(Method::POST, &format!("/v1/{project}/jobs"), Some(json!({"service": "cfw", "job_type": "X"})))
            .await;
        assert_eq!(created.status, StatusCode::CREATED);
    }
    let mine = app
        .signed_as(ak, sk, Method::POST, "/v1/worker/claim", Some(json!({"worker_id": "w", "services": ["cfw"]})))
        .await
        .body["task"]
        .clone();
    assert_eq!(mine["project_id"], own.as_str());
    // Root holds the other project's task; the worker knows its lease but may not touch it.
    let theirs = claim_one(&app).await;
    assert_eq!(theirs["project_id"], other.as_str());
    let reports = json!({"reports": [
        {"job_id": theirs["job_id"], "lease_token": token(&theirs), "outcome": "complete"},
        {"job_id": mine["job_id"], "lease_token": token(&mine), "outcome": "complete"},
    ]});
    let answer = app.signed_as(ak, sk, Method::POST, "/v1/worker/tasks/batch", Some(reports)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(statuses(&answer), [404, 200]);
    assert_eq!(answer.body["results"][0]["error_code"], "JOBD.JOB_NOT_FOUND");
    let theirs = app.get(&format!("/v1/{other}/jobs/{}", theirs["job_id"].as_str().unwrap())).await;
    assert_eq!(theirs.body["job"]["status"], "RUNNING");
}

#[tokio::test]
async fn a_batch_create_is_atomic_ordered_and_idempotent_per_item() {
    let app = TestApp::new().await;
    let url = format!("/v1/{PROJECT}/jobs/batch");
    let job = |n: u64| json!({"service": "cfw", "job_type": "CreateFirewall", "payload": {"n": n}});
    let created = app.signed(Method::POST, &url, Some(json!({"jobs": [job(0), job(1), job(2)]}))).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let jobs = created.body["jobs"].as_array().unwrap();
    assert_eq!(jobs.iter().map(|j| j["payload"]["n"].as_u64().unwrap()).collect::<Vec<_>>(), [0, 1, 2]);
    assert_eq!(created.body["replayed"], json!([]));
    for job in jobs {
        let shown = app.get(&format!("/v1/{PROJECT}/jobs/{}", job["job_id"].as_str().unwrap())).await;
        assert_eq!(shown.body["job"], *job, "each job is stored as answered");
    }

    // A bad item refuses the whole batch and names its index.
    async fn listed(app: &TestApp) -> usize {
        app.get(&format!("/v1/{PROJECT}/jobs?limit=1000")).await.body["jobs"].as_array().unwrap().len()
    }
    let before = listed(&app).await;
    let bad = app.signed(Method::POST, &url, Some(json!({"jobs": [job(3), {"service": "cfw"}]}))).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body["error_msg"].as_str().unwrap().starts_with("jobs[1]: "), "{}", bad.body);
    let bad_token = app
        .signed(Method::POST, &url, Some(json!({"jobs": [{"client_token": 7, "service": "cfw", "job_type": "X"}]})))
        .await;
    assert_eq!(bad_token.status, StatusCode::BAD_REQUEST);
    assert!(bad_token.body["error_msg"].as_str().unwrap().starts_with("jobs[0]: client_token"), "{}", bad_token.body);
    for body in [
        json!({"jobs": []}),
        json!({"jobs": (0..1001).map(job).collect::<Vec<_>>()}),
        json!([job(1)]),
        json!({"jobs": [job(1)], "x": 1}),
    ] {
        let refused = app.signed(Method::POST, &url, Some(body)).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
        assert_eq!(refused.body["error_code"], "JOBD.INVALID_REQUEST");
    }
    assert_eq!(listed(&app).await, before, "a refused batch created nothing");

    // Per-item client tokens: replays answer the first job, with 200 when every item replays.
    let keyed = |n: u64, token: &str| {
        let mut body = job(n);
        body["client_token"] = json!(token);
        body
    };
    let first = app.signed(Method::POST, &url, Some(json!({"jobs": [keyed(10, "a"), job(11)]}))).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let replay = app.signed(Method::POST, &url, Some(json!({"jobs": [keyed(10, "a")]}))).await;
    assert_eq!(replay.status, StatusCode::OK, "{}", replay.body);
    assert_eq!(replay.body["replayed"], json!([0]));
    assert_eq!(replay.body["jobs"][0]["job_id"], first.body["jobs"][0]["job_id"]);
    let mixed = app.signed(Method::POST, &url, Some(json!({"jobs": [job(12), keyed(10, "a")]}))).await;
    assert_eq!(mixed.status, StatusCode::CREATED);
    assert_eq!(mixed.body["replayed"], json!([1]));
    // The same token with another body: 409 naming the item, nothing created.
    let before = listed(&app).await;
    let conflict = app.signed(Method::POST, &url, Some(json!({"jobs": [job(13), keyed(99, "a")]}))).await;
    assert_eq!(conflict.status, StatusCode::CONFLICT, "{}", conflict.body);
    assert!(conflict.body["error_msg"].as_str().unwrap().contains("jobs[1]"), "{}", conflict.body);
    assert_eq!(listed(&app).await, before);
}
