//! The operator console (`/console`) in a real browser: headless Chromium driven over WebDriver
//! (Debian's `chromium` and `chromium-driver`) against the real `jobd` binary. Sign-in, the live
//! job list (a change on screen within 1 s, without reload), the timeline of an ELB `UPGRADE`,
//! cancel for a producer and not for a reader (no button; `403` when forced), project isolation
//! (list, detail, event stream), job-supplied strings as text, and a screenshot of every page under
//! `target/console-screenshots/`. Without Chromium the tests fail: they never skip.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use jobd_test_support::server::{Server, PROJECT};
use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const XSS: &str = "<img src=x onerror=alert(1)>";
const PASSWORD: &str = "console test password";

/// `chromedriver` on a free port, ended with the test.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Driver {
        for path in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                std::path::Path::new(path).exists(),
                "{path} is missing: the console's browser tests need Debian's chromium and chromium-driver \
                 (`apt-get install chromium chromium-driver`; .ci/run installs them)"
            );
        }
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver { child, url }
    }

    /// A fresh headless browser (its own profile, so its own cookies) of the given window size.
    async fn browser(&self, width: u32, height: u32) -> Client {
        let mut options = json!({"binary": CHROMIUM, "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
            "--disable-dev-shm-usage", "--hide-scrollbars", format!("--window-size={width},{height}")]});
        if width < 500 {
            // Headless windows are at least 500 px wide: a phone is emulated.
            options["mobileEmulation"] = json!({"deviceMetrics": {"width": width, "height": height, "pixelRatio": 1}});
        }
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("goog:chromeOptions".into(), options);
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector).capabilities(capabilities).connect(&self.url).await.expect("a browser session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The test's jobd with projects A and B and their users.
struct Setup {
    server: Server,
    _dir: tempfile::TempDir,
    project_a: String,
    project_b: String,
}

impl Setup {
    async fn start() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(&dir.path().join("data"));
        server.wait_healthy().await;
        let project = |name: &'static str| {
            let server = &server;
            async move {
                let (status, body) = server.call("POST", "/v1/admin/projects", Some(json!({"name": name}))).await;
                assert_eq!(status, 201, "{body}");
                body["project"]["id"].as_str().or(body["id"].as_str()).expect("a project id").to_owned()
            }
        };
        let project_a = project("alpha").await;
        let project_b = project("beta").await;
        let setup = Setup { server, _dir: dir, project_a, project_b };
        setup.user("ada", &setup.project_a.clone(), "producer").await;
        setup.user("rita", &setup.project_a.clone(), "reader").await;
        setup.user("bob", &setup.project_b.clone(), "producer").await;
        setup
    }

    async fn user(&self, name: &str, project_id: &str, role: &str) {
        let body =
            json!({"name": name, "domain": "acme", "password": PASSWORD, "project_id": project_id, "role": role});
        let (status, body) = self.server.call("POST", "/v1/admin/users", Some(body)).await;
        assert_eq!(status, 201, "{body}");
    }

    async fn create(&self, project_id: &str, body: Value) -> Value {
        let (status, answer) = self.server.call("POST", &format!("/v1/{project_id}/jobs"), Some(body)).await;
        assert_eq!(status, 201, "{answer}");
        answer["job"].clone()
    }

    async fn job(&self, project_id: &str, job_id: &str) -> Value {
        let (status, answer) = self.server.call("GET", &format!("/v1/{project_id}/jobs/{job_id}"), None).await;
        assert_eq!(status, 200, "{answer}");
        answer["job"].clone()
    }

    /// An ELB `UPGRADE` with three simulated sub-jobs, as the demo makes.
    async fn upgrade(&self, project_id: &str) -> Value {
        let sub = |job_type: &str, ms: u64| {
            json!({"job_type": job_type, "resource_id": "lb-1",
                   "entities": [{"resource_id": "lb-1", "resource_type": "loadbalancer"}],
                   "simulate": {"duration_ms": ms, "outcome": "success", "messages": [format!("{job_type} going")]}})
        };
        self.create(
            project_id,
            json!({"service": "elb", "job_type": "UPGRADE", "resource_id": "lb-1",
            "sub_jobs": [sub("UPGRADE_INIT", 300), sub("UPGRADE_TRAFFIC_SWITCH", 300), sub("UPGRADE_COMPLETE", 300)]}),
        )
        .await
    }

    fn base(&self) -> &str {
        &self.server.base
    }
}

/// Evaluates `expression` in the page until it is truthy (or panics after `within`); answers how
/// long that took.
async fn wait_until(browser: &Client, expression: &str, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let value = browser.execute(&format!("return Boolean({expression});"), vec![]).await.unwrap();
        if value == Value::Bool(true) {
            return started.elapsed();
        }
        if started.elapsed() > within {
            let text = browser.execute("return document.body.innerText;", vec![]).await.unwrap();
            panic!("not within {within:?}: {expression}\nthe page says:\n{}", text.as_str().unwrap_or_default());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn eval(browser: &Client, script: &str) -> Value {
    browser.execute(script, vec![]).await.unwrap()
}

/// `fetch` from the page (so with its session cookie): the status, and the body as text.
async fn page_fetch(browser: &Client, method: &str, path: &str, csrf: bool) -> (u16, String) {
    let script = r#"
        const [method, path, csrf, done] = arguments;
        (async () => {
          const headers = {};
          if (csrf) {
            const session = await (await fetch('/console/session')).json();
            headers['X-Jobd-Csrf'] = session.csrf_token;
          }
          const controller = new AbortController();
          const response = await fetch(path, { method, headers, signal: controller.signal });
          const status = response.status;
          const text = status === 200 && path.endsWith('/events') ? '' : await response.text();
          controller.abort();
          done([status, text]);
        })().catch((e) => done([0, String(e)]));"#;
    let answer = browser.execute_async(script, vec![json!(method), json!(path), json!(csrf)]).await.unwrap();
    (answer[0].as_u64().unwrap() as u16, answer[1].as_str().unwrap_or_default().to_owned())
}

async fn sign_in(browser: &Client, base: &str, name: &str) {
    sign_in_as(browser, base, "acme", name, PASSWORD).await;
}

async fn sign_in_as(browser: &Client, base: &str, domain: &str, name: &str, password: &str) {
    browser.goto(&format!("{base}/console")).await.unwrap();
    wait_until(browser, "document.getElementById('domain') && !document.getElementById('sign-in').hidden", secs(10))
        .await;
    browser.find(Locator::Id("domain")).await.unwrap().send_keys(domain).await.unwrap();
    browser.find(Locator::Id("name")).await.unwrap().send_keys(name).await.unwrap();
    browser.find(Locator::Id("password")).await.unwrap().send_keys(password).await.unwrap();
    browser.find(Locator::Css("#sign-in-form button[type=submit]")).await.unwrap().click().await.unwrap();
    wait_until(
        browser,
        "document.querySelector('#jobs-body tr') || document.querySelector('.empty:not([hidden])')",
        secs(10),
    )
    .await;
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn screenshots_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let dir = target.join("console-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn screenshot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    std::fs::write(screenshots_dir().join(format!("{name}.png")), png).unwrap();
}

/// The row of a job in the list: its status as shown, or `null` when it is not listed.
fn row_status(job_id: &str) -> String {
    format!("(document.querySelector('#jobs-body tr[data-job-id=\"{job_id}\"] .status') || {{}}).textContent")
}

#[tokio::test]
async fn a_producer_signs_in_and_watches_jobs_move_live() {
    let setup = Setup::start().await;
    let upgrade = setup.upgrade(&setup.project_a).await;
    let driver = Driver::start();
    let browser = driver.browser(1280, 800).await;

    // Signing in: a wrong password is refused on the page; the right one opens the job list.
    browser.goto(&format!("{}/console", setup.base())).await.unwrap();
    wait_until(&browser, "!document.getElementById('sign-in').hidden", secs(10)).await;
    screenshot(&browser, "sign-in").await;
    browser.find(Locator::Id("domain")).await.unwrap().send_keys("acme").await.unwrap();
    browser.find(Locator::Id("name")).await.unwrap().send_keys("ada").await.unwrap();
    browser.find(Locator::Id("password")).await.unwrap().send_keys("not the password").await.unwrap();
    browser.find(Locator::Css("#sign-in-form button[type=submit]")).await.unwrap().click().await.unwrap();
    wait_until(&browser, "document.getElementById('sign-in-error').textContent.includes('Wrong')", secs(10)).await;
    sign_in(&browser, setup.base(), "ada").await;
    let upgrade_id = upgrade["job_id"].as_str().unwrap();
    wait_until(&browser, &format!("{} !== undefined", row_status(upgrade_id)), secs(5)).await;

    // The session cookie is HttpOnly: the page's script cannot read it.
    assert_eq!(eval(&browser, "return document.cookie;").await, json!(""));
    let cookies = browser.get_all_cookies().await.unwrap();
    let session = cookies.iter().find(|c| c.name() == "jobd_session").expect("the session cookie");
    assert_eq!(session.http_only(), Some(true));
    assert_eq!(format!("{:?}", session.same_site()), "Some(Strict)");

    // A job created through the API appears, and its moves show within 1 s, without reload.
    eval(&browser, "window.__same_page = true; return null;").await;
    wait_until(&browser, "document.getElementById('live-state').textContent === 'live'", secs(10)).await;
    let job =
        setup.create(&setup.project_a, json!({"service": "svc", "job_type": "Resize", "resource_id": "vm-7"})).await;
    let job_id = job["job_id"].as_str().unwrap();
    let appeared = wait_until(&browser, &format!("{} === 'PENDING'", row_status(job_id)), secs(1)).await;
    let (status, claimed) = setup
        .server
        .call("POST", "/v1/worker/claim", Some(json!({"worker_id": "w-1", "services": ["svc"], "wait_seconds": 5})))
        .await;
    assert_eq!(status, 200, "{claimed}");
    let lease_token = claimed["task"]["lease_token"].as_str().expect("the job was claimed").to_owned();
    let running = wait_until(&browser, &format!("{} === 'RUNNING'", row_status(job_id)), secs(1)).await;
    let path = format!("/v1/worker/tasks/{job_id}/complete");
    let (status, body) = setup.server.call("POST", &path, Some(json!({"lease_token": lease_token}))).await;
    assert_eq!(status, 200, "{body}");
    let succeeded = wait_until(&browser, &format!("{} === 'SUCCEEDED'", row_status(job_id)), secs(1)).await;
    assert_eq!(eval(&browser, "return window.__same_page === true;").await, json!(true), "no reload");
    println!("on screen after: created {appeared:?}, running {running:?}, succeeded {succeeded:?}");
    screenshot(&browser, "jobs").await;

    // The ELB UPGRADE's timeline: the job and its three sub-jobs, each a bar.
    setup.server.wait_for_status_in(&setup.project_a, upgrade_id, "SUCCEEDED").await;
    browser.find(Locator::Css(&format!("tr[data-job-id=\"{upgrade_id}\"] a"))).await.unwrap().click().await.unwrap();
    wait_until(&browser, "document.querySelectorAll('#timeline .timeline-row').length === 4", secs(5)).await;
    let names = eval(
        &browser,
        "return [...document.querySelectorAll('#timeline .timeline-row .lane-name > span:first-child')].map(n => n.textContent.replace('└ ', ''));",
    )
    .await;
    assert_eq!(names, json!(["UPGRADE", "UPGRADE_INIT", "UPGRADE_TRAFFIC_SWITCH", "UPGRADE_COMPLETE"]));
    let bars =
        eval(&browser, "return document.querySelectorAll('#timeline .lane .bar.status-succeeded').length;").await;
    assert_eq!(bars, json!(4), "every bar ended SUCCEEDED, coloured so");
    // The job as the ELB SDK receives it: the dialect's own GET, to the byte.
    wait_until(&browser, "document.getElementById('dialect-json') && document.getElementById('dialect-json').textContent.includes('sub_jobs')", secs(5)).await;
    let mut shown: Value = serde_json::from_str(
        eval(&browser, "return document.getElementById('dialect-json').textContent;").await.as_str().unwrap(),
    )
    .unwrap();
    let (status, mut answer) =
        setup.server.call("GET", &format!("/v3/{}/elb/jobs/{upgrade_id}", setup.project_a), None).await;
    assert_eq!(status, 200);
    // Each answer has its own request id.
    assert!(shown["request_id"].is_string());
    shown["request_id"].take();
    answer["request_id"].take();
    assert_eq!(shown, answer, "the ELB dialect's answer, as the SDK receives it");
    assert_eq!(shown["job"]["sub_jobs"].as_array().unwrap().len(), 3);
    screenshot(&browser, "job-detail").await;

    // Cancel, as a producer: a button, a confirmation, and the job ends CANCELLED.
    let doomed = setup.create(&setup.project_a, json!({"service": "svc", "job_type": "Doomed"})).await;
    let doomed_id = doomed["job_id"].as_str().unwrap();
    browser.goto(&format!("{}/console#/job/{}/{doomed_id}", setup.base(), setup.project_a)).await.unwrap();
    wait_until(&browser, "document.getElementById('cancel-job')", secs(5)).await;
    browser.find(Locator::Id("cancel-job")).await.unwrap().click().await.unwrap();
    wait_until(&browser, "document.getElementById('cancel-dialog').open", secs(5)).await;
    screenshot(&browser, "cancel-dialog").await;
    browser.find(Locator::Id("confirm-cancel")).await.unwrap().click().await.unwrap();
    wait_until(
        &browser,
        "!document.getElementById('cancel-dialog').open && !document.getElementById('cancel-job')",
        secs(5),
    )
    .await;
    assert_eq!(setup.job(&setup.project_a, doomed_id).await["status"], "CANCELLED");

    // The same call without the session's CSRF token is refused, and changes nothing.
    let other = setup.create(&setup.project_a, json!({"service": "svc", "job_type": "Kept"})).await;
    let other_id = other["job_id"].as_str().unwrap();
    let (status, body) =
        page_fetch(&browser, "POST", &format!("/v1/{}/jobs/{other_id}/cancel", setup.project_a), false).await;
    assert_eq!(status, 403, "no CSRF token: {body}");
    assert_eq!(setup.job(&setup.project_a, other_id).await["status"], "PENDING");

    // Sign-out revokes the token: the page is back at the sign-in form, the API refuses it.
    browser.goto(&format!("{}/console#/jobs", setup.base())).await.unwrap();
    wait_until(&browser, "document.querySelector('#jobs-body tr')", secs(5)).await;
    browser.find(Locator::Id("sign-out")).await.unwrap().click().await.unwrap();
    wait_until(&browser, "!document.getElementById('sign-in').hidden", secs(5)).await;
    let (status, _) = page_fetch(&browser, "GET", &format!("/v1/{}/jobs", setup.project_a), false).await;
    assert_eq!(status, 401, "signed out");

    // At phone width the list and the detail still fit.
    let phone = driver.browser(390, 844).await;
    sign_in(&phone, setup.base(), "ada").await;
    screenshot(&phone, "jobs-phone").await;
    phone.goto(&format!("{}/console#/job/{}/{upgrade_id}", setup.base(), setup.project_a)).await.unwrap();
    wait_until(&phone, "document.querySelectorAll('#timeline .timeline-row').length === 4", secs(5)).await;
    screenshot(&phone, "job-detail-phone").await;
    let widths = eval(&phone, "return [document.documentElement.scrollWidth, window.innerWidth];").await;
    assert!(widths[0].as_u64() <= widths[1].as_u64(), "nothing wider than the phone's screen: {widths}");
    phone.close().await.unwrap();
    browser.close().await.unwrap();
}

#[tokio::test]
async fn a_reader_may_not_cancel_and_another_project_sees_nothing() {
    let setup = Setup::start().await;
    let job = setup.create(&setup.project_a, json!({"service": "svc", "job_type": "Resize"})).await;
    let job_id = job["job_id"].as_str().unwrap();
    let driver = Driver::start();

    // A reader sees the job, but no Cancel button; forced, the cancel is 403.
    let reader = driver.browser(1280, 800).await;
    sign_in(&reader, setup.base(), "rita").await;
    wait_until(&reader, &format!("{} === 'PENDING'", row_status(job_id)), secs(5)).await;
    reader.goto(&format!("{}/console#/job/{}/{job_id}", setup.base(), setup.project_a)).await.unwrap();
    wait_until(&reader, "document.querySelector('#timeline')", secs(5)).await;
    assert_eq!(eval(&reader, "return document.getElementById('cancel-job');").await, Value::Null, "no button");
    let (status, body) =
        page_fetch(&reader, "POST", &format!("/v1/{}/jobs/{job_id}/cancel", setup.project_a), true).await;
    assert_eq!(status, 403, "a reader's cancel: {body}");
    assert_eq!(setup.job(&setup.project_a, job_id).await["status"], "PENDING");
    reader.close().await.unwrap();

    // A user of project B: its list, detail and event stream never show project A's jobs.
    let outsider = driver.browser(1280, 800).await;
    setup.create(&setup.project_b, json!({"service": "svc", "job_type": "OwnJob"})).await;
    sign_in(&outsider, setup.base(), "bob").await;
    wait_until(&outsider, "document.getElementById('live-state').textContent === 'live'", secs(10)).await;
    let a_job = setup.create(&setup.project_a, json!({"service": "svc", "job_type": "SecretA"})).await;
    let b_job = setup.create(&setup.project_b, json!({"service": "svc", "job_type": "LaterB"})).await;
    let b_id = b_job["job_id"].as_str().unwrap();
    // B's own new job shows up live; A's, created before it, never did.
    wait_until(&outsider, &format!("{} === 'PENDING'", row_status(b_id)), secs(2)).await;
    let text = eval(&outsider, "return document.body.innerText;").await;
    let text = text.as_str().unwrap();
    assert!(!text.contains("SecretA") && !text.contains("Resize"), "no project A job in B's list:\n{text}");
    for path in [
        format!("/v1/{}/jobs", setup.project_a),
        format!("/v1/{}/jobs/{}", setup.project_a, a_job["job_id"].as_str().unwrap()),
        format!("/v1/{}/events", setup.project_a),
        format!("/v1/{}/jobs/{job_id}/events", setup.project_a),
    ] {
        let (status, body) = page_fetch(&outsider, "GET", &path, false).await;
        assert_eq!(status, 403, "GET {path} from project B's session: {body}");
    }
    outsider.goto(&format!("{}/console#/job/{}/{job_id}", setup.base(), setup.project_a)).await.unwrap();
    wait_until(&outsider, "document.querySelector('#page .error')", secs(5)).await;
    assert_eq!(eval(&outsider, "return document.getElementById('timeline');").await, Value::Null);
    outsider.close().await.unwrap();
}

#[tokio::test]
async fn job_supplied_strings_render_as_text() {
    let setup = Setup::start().await;
    let job = setup
        .create(
            &setup.project_a,
            json!({"service": "svc", "job_type": "Xss", "resource_id": XSS, "message": XSS,
                   "entities": [{"resource_id": XSS, "resource_type": XSS}]}),
        )
        .await;
    let job_id = job["job_id"].as_str().unwrap();
    let driver = Driver::start();
    let browser = driver.browser(1280, 800).await;
    sign_in(&browser, setup.base(), "ada").await;
    wait_until(&browser, &format!("{} === 'PENDING'", row_status(job_id)), secs(5)).await;
    let row = format!("document.querySelector('#jobs-body tr[data-job-id=\"{job_id}\"]')");
    assert_eq!(eval(&browser, &format!("return {row}.querySelector('.message').textContent;")).await, json!(XSS));
    assert_eq!(eval(&browser, "return document.querySelectorAll('#page img').length;").await, json!(0));
    browser.goto(&format!("{}/console#/job/{}/{job_id}", setup.base(), setup.project_a)).await.unwrap();
    wait_until(&browser, "document.getElementById('job-message')", secs(5)).await;
    assert_eq!(eval(&browser, "return document.getElementById('job-message').textContent;").await, json!(XSS));
    assert_eq!(eval(&browser, "return document.querySelectorAll('#page img').length;").await, json!(0));
    assert_eq!(eval(&browser, "return window.__xss === undefined;").await, json!(true));

    // The policy forbids inline script outright: a script element added by hand does not run.
    let ran = eval(
        &browser,
        "const s = document.createElement('script'); s.textContent = 'window.__xss = 1'; document.body.append(s); return window.__xss === 1;",
    )
    .await;
    assert_eq!(ran, json!(false), "the Content-Security-Policy blocks inline script");
    browser.close().await.unwrap();

    let response = reqwest::get(format!("{}/console", setup.base())).await.unwrap();
    let policy = response.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(policy.contains("script-src 'self'") && !policy.contains("unsafe-inline"), "{policy}");
    let _ = PROJECT;
}

#[tokio::test]
async fn the_overview_and_workers_pages_follow_queues_and_leases() {
    let setup = Setup::start().await;
    let jobs: Vec<Value> = futures_util::future::join_all(
        (0..3).map(|_| setup.create(&setup.project_a, json!({"service": "svc", "job_type": "Resize"}))),
    )
    .await;
    let cancelled = jobs[2]["job_id"].as_str().unwrap();
    let (status, _) =
        setup.server.call("POST", &format!("/v1/{}/jobs/{cancelled}/cancel", setup.project_a), None).await;
    assert_eq!(status, 200);
    let claim = json!({"worker_id": "worker-7", "services": ["svc"], "lease_seconds": 120, "wait_seconds": 5});
    let (status, claimed) = setup.server.call("POST", "/v1/worker/claim", Some(claim.clone())).await;
    assert_eq!(status, 200, "{claimed}");
    let held = claimed["task"]["job_id"].as_str().unwrap().to_owned();
    setup.create(&setup.project_b, json!({"service": "svc", "job_type": "OtherProject"})).await;

    let driver = Driver::start();
    let browser = driver.browser(1280, 800).await;
    sign_in(&browser, setup.base(), "ada").await;
    browser.goto(&format!("{}/console#/overview", setup.base())).await.unwrap();
    let card = "document.querySelector('.queue[data-service=\"svc\"][data-job-type=\"Resize\"]')";
    let numbers = |waiting: u32, running: u32| {
        format!("{card} && {card}.querySelector('.waiting').textContent === '{waiting}' && {card}.querySelector('.running').textContent === '{running}'")
    };
    wait_until(&browser, &numbers(1, 1), secs(5)).await;
    assert_eq!(eval(&browser, &format!("return {card}.querySelectorAll('rect.cancelled').length;")).await, json!(1));
    assert_eq!(
        eval(&browser, "return document.querySelector('.queue[data-job-type=\"OtherProject\"]');").await,
        Value::Null
    );
    // A second claim moves the numbers without reload.
    eval(&browser, "window.__same_page = true; return null;").await;
    let (status, second) = setup.server.call("POST", "/v1/worker/claim", Some(claim)).await;
    assert_eq!(status, 200, "{second}");
    wait_until(&browser, &numbers(0, 2), secs(3)).await;
    assert_eq!(eval(&browser, "return window.__same_page === true;").await, json!(true), "no reload");
    screenshot(&browser, "overview").await;

    browser.goto(&format!("{}/console#/workers", setup.base())).await.unwrap();
    wait_until(&browser, &format!("document.querySelector('#leases-body tr[data-job-id=\"{held}\"]')"), secs(5)).await;
    let worker = eval(
        &browser,
        &format!("return document.querySelector('#leases-body tr[data-job-id=\"{held}\"] .worker').textContent;"),
    )
    .await;
    assert_eq!(worker, json!("worker-7"));
    assert_eq!(eval(&browser, "return document.querySelectorAll('#leases-body tr').length;").await, json!(2));
    screenshot(&browser, "workers").await;
    browser.close().await.unwrap();

    let phone = driver.browser(390, 844).await;
    sign_in(&phone, setup.base(), "ada").await;
    phone.goto(&format!("{}/console#/overview", setup.base())).await.unwrap();
    wait_until(&phone, &numbers(0, 2), secs(5)).await;
    screenshot(&phone, "overview-phone").await;
    phone.goto(&format!("{}/console#/workers", setup.base())).await.unwrap();
    wait_until(&phone, "document.querySelectorAll('#leases-body tr').length === 2", secs(5)).await;
    screenshot(&phone, "workers-phone").await;
    let widths = eval(&phone, "return [document.documentElement.scrollWidth, window.innerWidth];").await;
    assert!(widths[0].as_u64() <= widths[1].as_u64(), "nothing wider than the phone's screen: {widths}");
    phone.close().await.unwrap();
}

/// `jobd demo` as the README starts it: its banner, read up to the snippet's closing `PY`.
struct Demo {
    child: Child,
    _stdout: std::io::BufReader<std::process::ChildStdout>,
    banner: Vec<String>,
}

impl Demo {
    fn start(dir: &std::path::Path) -> Demo {
        let mut child = Command::new(env!("CARGO_BIN_EXE_jobd"))
            .args(["demo", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir)
            .env_remove("JOBD_ROOT_ACCESS_KEY")
            .env_remove("JOBD_ROOT_SECRET_KEY")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the demo starts");
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut banner = Vec::new();
        loop {
            let mut line = String::new();
            assert!(std::io::BufRead::read_line(&mut stdout, &mut line).unwrap() > 0, "the demo ended: {banner:#?}");
            let line = line.trim_end().to_owned();
            let last = line == "PY";
            banner.push(line);
            if last {
                break;
            }
        }
        Demo { child, _stdout: stdout, banner }
    }

    /// The last word of the banner line that starts with `label`.
    fn value(&self, label: &str) -> String {
        self.banner
            .iter()
            .find_map(|line| line.trim_start().strip_prefix(label))
            .and_then(|rest| rest.split_whitespace().last())
            .unwrap_or_else(|| panic!("no {label:?} in the banner: {:#?}", self.banner))
            .to_owned()
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn the_printed_demo_user_watches_the_demo_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let demo = Demo::start(dir.path());
    let url = demo.value("Watch the jobs run in the console:");
    let base = url.strip_suffix("/console").expect("the console's URL").to_owned();
    let driver = Driver::start();
    let browser = driver.browser(1280, 800).await;
    sign_in_as(&browser, &base, &demo.value("domain"), &demo.value("user name"), &demo.value("password")).await;
    // The demo's jobs are what the console first shows.
    let upgrade = demo.value("ELB UPGRADE (3 sub-jobs)");
    for label in ["ELB UPGRADE (3 sub-jobs)", "CFW CreateFirewall", "WAF CheckDomain", "ELB cloneLoadbalancer (fails)"]
    {
        let job_id = demo.value(label);
        wait_until(&browser, &format!("{} !== undefined", row_status(&job_id)), secs(5)).await;
    }
    wait_until(&browser, &format!("{} === 'RUNNING'", row_status(&upgrade)), secs(10)).await;
    screenshot(&browser, "demo-jobs").await;
    // The UPGRADE's timeline: three sub-jobs, the first running.
    browser.find(Locator::Css(&format!("tr[data-job-id=\"{upgrade}\"] a"))).await.unwrap().click().await.unwrap();
    wait_until(&browser, "document.querySelectorAll('#timeline .timeline-row').length === 4", secs(5)).await;
    wait_until(&browser, "document.querySelector('#timeline .lane .bar.status-running')", secs(5)).await;
    wait_until(&browser, "document.getElementById('cancel-job')", secs(5)).await;
    screenshot(&browser, "demo-job-detail").await;
    browser.close().await.unwrap();
}

#[tokio::test]
async fn pages_follow_markers_and_the_keyboard_opens_a_job() {
    let setup = Setup::start().await;
    let items: Vec<Value> = (0..60).map(|i| json!({"service": "svc", "job_type": format!("Batch{i:02}")})).collect();
    let (status, body) =
        setup.server.call("POST", &format!("/v1/{}/jobs/batch", setup.project_a), Some(json!({"jobs": items}))).await;
    assert_eq!(status, 201, "{body}");
    let driver = Driver::start();
    let browser = driver.browser(1280, 800).await;
    sign_in(&browser, setup.base(), "ada").await;
    let rows = "document.querySelectorAll('#jobs-body tr').length";
    wait_until(&browser, &format!("{rows} === 50"), secs(5)).await;
    let first_page =
        eval(&browser, "return [...document.querySelectorAll('#jobs-body tr')].map(r => r.dataset.jobId);").await;

    // The keyboard alone: the skip link, then Tab to the pager's "Older" button, Enter.
    let older = "document.activeElement && document.activeElement.textContent === 'Older →'";
    let mut pressed = 0;
    while eval(&browser, &format!("return Boolean({older});")).await != json!(true) {
        browser.active_element().await.unwrap().send_keys("\u{e004}").await.unwrap(); // Tab
        pressed += 1;
        assert!(pressed < 150, "Tab never reached the Older button");
    }
    browser.active_element().await.unwrap().send_keys("\u{e007}").await.unwrap(); // Enter
    wait_until(&browser, &format!("{rows} === 10"), secs(5)).await;
    let second_page =
        eval(&browser, "return [...document.querySelectorAll('#jobs-body tr')].map(r => r.dataset.jobId);").await;
    let mut all: Vec<Value> =
        first_page.as_array().unwrap().iter().chain(second_page.as_array().unwrap()).cloned().collect();
    all.sort_by_key(|v| v.to_string());
    all.dedup();
    assert_eq!(all.len(), 60, "two pages hold every job once");
    browser.find(Locator::Css(".pager button")).await.unwrap().click().await.unwrap();
    wait_until(&browser, &format!("{rows} === 50"), secs(5)).await;

    // Tab to a job's link and Enter opens its detail; Escape closes the cancel dialog.
    let link = "document.activeElement && document.activeElement.classList.contains('job-link')";
    eval(&browser, "document.getElementById('main').focus(); return null;").await;
    let mut pressed = 0;
    while eval(&browser, &format!("return Boolean({link});")).await != json!(true) {
        browser.active_element().await.unwrap().send_keys("\u{e004}").await.unwrap();
        pressed += 1;
        assert!(pressed < 60, "Tab never reached a job link");
    }
    browser.active_element().await.unwrap().send_keys("\u{e007}").await.unwrap();
    wait_until(&browser, "document.getElementById('cancel-job')", secs(5)).await;
    browser.find(Locator::Id("cancel-job")).await.unwrap().send_keys("\u{e007}").await.unwrap();
    wait_until(&browser, "document.getElementById('cancel-dialog').open", secs(5)).await;
    browser.active_element().await.unwrap().send_keys("\u{e00c}").await.unwrap(); // Escape
    wait_until(&browser, "!document.getElementById('cancel-dialog').open", secs(5)).await;
    browser.close().await.unwrap();
}

#[tokio::test]
async fn the_timeline_shows_a_rollback_and_its_compensation() {
    let setup = Setup::start().await;
    let step = |job_type: &str, outcome: &str| {
        json!({"job_type": job_type, "simulate": {"duration_ms": 100, "outcome": outcome,
               "error_code": "ELB.8907", "error_msg": "refused"}})
    };
    let job = setup
        .create(
            &setup.project_a,
            json!({"service": "elb", "job_type": "UPGRADE", "on_failure": "rollback",
                   "sub_jobs": [step("UPGRADE_INIT", "success"), step("UPGRADE_TRAFFIC_SWITCH", "failure")]}),
        )
        .await;
    let job_id = job["job_id"].as_str().unwrap();
    let ended = setup.server.wait_for_status_in(&setup.project_a, job_id, "FAILED").await;
    assert!(ended["sub_jobs"][0]["compensation"].is_object(), "the first step was compensated: {ended}");
    let driver = Driver::start();
    let browser = driver.browser(1280, 800).await;
    sign_in(&browser, setup.base(), "ada").await;
    browser.goto(&format!("{}/console#/job/{}/{job_id}", setup.base(), setup.project_a)).await.unwrap();
    wait_until(&browser, "document.querySelector('#timeline .compensation-row .bar.compensation')", secs(5)).await;
    let failed = eval(&browser, "return document.querySelectorAll('#timeline .lane .bar.status-failed').length;").await;
    assert_eq!(failed, json!(2), "the parent and the failing step end FAILED, coloured so");
    assert_eq!(
        eval(&browser, "return document.querySelector('#timeline .phase').textContent;").await,
        json!("ROLLED BACK")
    );
    screenshot(&browser, "job-detail-rollback").await;
    browser.close().await.unwrap();
}
