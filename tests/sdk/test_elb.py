"""ELB v3 dialect read through the official huaweicloudsdkelb:
  * ElbClient.show_job(ShowJobRequest(job_id))  -> GET /v3/{project_id}/elb/jobs/{job_id}
  * ElbClient.list_jobs(ListJobsRequest(...))   -> GET /v3/{project_id}/elb/jobs?...
ListJobsRequest fields are typed ``str``/``int``/``bool``; a Python list given for a filter is
sent by the SDK core as a repeated query key (status=FAIL&status=CANCEL).
"""

import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkelb.v3 import ListJobsRequest, ShowJobRequest

from jobd_testlib import SECOND_TIME_RE, UUID_RE, raw_json, to_second_z, wait_until

MAIN_STATUS = {"PENDING": "RUNNING", "RUNNING": "RUNNING", "SUCCEEDED": "COMPLETE",
               "FAILED": "FAIL", "CANCELLED": "CANCEL"}
SUB_STATUS = {"PENDING": "INIT", "RUNNING": "RUNNING", "SUCCEEDED": "SUCCESS",
              "FAILED": "FAIL", "CANCELLED": "CANCEL"}


def show(elb, job_id):
    return elb.show_job(ShowJobRequest(job_id=job_id))


def finished(elb, job_id):
    r = show(elb, job_id)
    return r if r.job.status != "RUNNING" else None


def assert_time(value, native_value):
    assert isinstance(value, str) and SECOND_TIME_RE.match(value), value
    assert value == to_second_z(native_value), (value, native_value)


def check_main_against_native(main, native):
    """A MainJob (SDK model) agrees with the native view of the same job."""
    assert main.job_id == native["job_id"]
    assert main.job_type == native["job_type"]
    assert main.project_id == native["project_id"]
    assert main.status == MAIN_STATUS[native["status"]], (main.status, native["status"])
    assert (main.resource_id or None) == (native.get("resource_id") or None)
    assert (main.error_code or None) == (native.get("error_code") or None)
    assert (main.error_msg or None) == (native.get("error_msg") or None)
    assert_time(main.begin_time, native["created_at"])
    if native.get("ended_at"):
        assert_time(main.end_time, native["ended_at"])
    else:
        assert main.end_time is None, main.end_time


# ---------------------------------------------------------------------------
# ShowJob
# ---------------------------------------------------------------------------

def test_simulated_job_reads_running_then_complete(jobd, project_id, elb):
    lb = str(uuid.uuid4())
    job = jobd.native_create(project_id, {
        "service": "elb", "job_type": "cloneLoadbalancer", "resource_id": lb,
        "simulate": {"duration_ms": 1500, "outcome": "success",
                     "messages": ["Cloning listeners", "Cloning pools"]}})
    job_id = job["job_id"]
    assert UUID_RE.match(job_id), job_id

    resp = show(elb, job_id)
    assert resp.status_code == 200
    assert resp.request_id, raw_json(resp)
    assert resp.job.status == "RUNNING"  # pending or running, never INIT
    assert resp.job.job_id == job_id
    assert resp.job.job_type == "cloneLoadbalancer"
    assert resp.job.project_id == project_id
    assert resp.job.resource_id == lb
    assert_time(resp.job.begin_time, job["created_at"])
    assert resp.job.end_time is None
    assert not resp.job.sub_jobs

    jobd.wait_native_status(project_id, job_id, "RUNNING", timeout=5)
    assert show(elb, job_id).job.status == "RUNNING"

    resp = wait_until(lambda: finished(elb, job_id), timeout=10, desc="ELB job to finish")
    assert resp.job.status == "COMPLETE", raw_json(resp)
    assert resp.request_id
    native = jobd.native_get(project_id, job_id)
    assert native["status"] == "SUCCEEDED"
    check_main_against_native(resp.job, native)


def test_failing_job_reads_fail_with_error_code(jobd, project_id, elb):
    job = jobd.native_create(project_id, {
        "service": "elb", "job_type": "cloneLoadbalancer",
        "simulate": {"duration_ms": 300, "outcome": "failure", "error_code": "ELB.8902",
                     "error_msg": "Quota of loadbalancers exceeded", "messages": ["Cloning"]}})
    resp = wait_until(lambda: finished(elb, job["job_id"]), timeout=10, desc="ELB job to finish")
    assert resp.job.status == "FAIL", raw_json(resp)
    assert resp.job.error_code == "ELB.8902"
    assert resp.job.error_msg == "Quota of loadbalancers exceeded"
    assert SECOND_TIME_RE.match(resp.job.end_time)
    check_main_against_native(resp.job, jobd.native_get(project_id, job["job_id"]))


def test_pending_job_reads_running_then_cancel(jobd, project_id, elb):
    job = jobd.native_create(project_id, {"service": "elb", "job_type": "cloneLoadbalancer"})
    resp = show(elb, job["job_id"])
    assert resp.job.status == "RUNNING", raw_json(resp)
    assert resp.job.end_time is None
    assert jobd.native_get(project_id, job["job_id"])["status"] == "PENDING"

    cancelled = jobd.native_cancel(project_id, job["job_id"])
    resp = show(elb, job["job_id"])
    assert resp.job.status == "CANCEL", raw_json(resp)
    check_main_against_native(resp.job, cancelled)


def _upgrade_body(lb, sims):
    entities = [{"resource_id": lb, "resource_type": "loadbalancer"}]
    types = ["UPGRADE_INIT", "UPGRADE_TRAFFIC_SWITCH", "UPGRADE_COMPLETE"]
    return {
        "service": "elb", "job_type": "UPGRADE", "resource_id": lb, "entities": entities,
        "sub_jobs": [{"job_type": t, "resource_id": lb, "entities": entities, "simulate": s}
                     for t, s in zip(types, sims)],
    }


def _ok(ms):
    return {"duration_ms": ms, "outcome": "success", "messages": ["working"]}


def _snapshot(resp):
    return (resp.job.status,) + tuple(s.status for s in resp.job.sub_jobs)


def test_upgrade_with_sub_jobs_round_trips(jobd, project_id, elb):
    lb = str(uuid.uuid4())
    job = jobd.native_create(project_id, _upgrade_body(lb, [_ok(500), _ok(500), _ok(500)]))
    job_id = job["job_id"]
    types = ["UPGRADE_INIT", "UPGRADE_TRAFFIC_SWITCH", "UPGRADE_COMPLETE"]

    snapshots = []

    def poll():
        r = show(elb, job_id)
        snap = _snapshot(r)
        if not snapshots or snapshots[-1] != snap:
            snapshots.append(snap)
        # sub-job structure holds on every read
        assert [s.job_type for s in r.job.sub_jobs] == types
        for s in r.job.sub_jobs:
            assert UUID_RE.match(s.job_id), s.job_id
            assert s.project_id == project_id
            assert s.resource_id == lb
            assert [(e.resource_id, e.resource_type) for e in s.entities] == [(lb, "loadbalancer")]
            if s.status == "INIT":
                assert s.begin_time is None, f"sub-job begin_time must be null before it starts: {s}"
                assert s.end_time is None
            else:
                assert SECOND_TIME_RE.match(s.begin_time or ""), s
        return r if r.job.status != "RUNNING" else None

    resp = wait_until(poll, timeout=10, interval=0.02, desc="UPGRADE job to finish")
    assert resp.job.status == "COMPLETE", snapshots
    assert _snapshot(resp) == ("COMPLETE", "SUCCESS", "SUCCESS", "SUCCESS")
    assert not resp.job.error_code

    # the sub-jobs moved INIT -> RUNNING -> SUCCESS, one after the other
    order = {"INIT": 0, "RUNNING": 1, "SUCCESS": 2}
    for a, b in zip(snapshots, snapshots[1:]):
        for i in range(1, 4):
            assert order[a[i]] <= order[b[i]], f"sub-job {i} went backwards: {snapshots}"
    for snap in snapshots:
        if snap[0] == "RUNNING":
            # at most one sub-job running; everything before it succeeded, everything after INIT
            running = [i for i in range(1, 4) if snap[i] == "RUNNING"]
            assert len(running) <= 1, snapshots
            if running:
                k = running[0]
                assert all(snap[i] == "SUCCESS" for i in range(1, k)), snapshots
                assert all(snap[i] == "INIT" for i in range(k + 1, 4)), snapshots
    assert ("RUNNING", "RUNNING", "INIT", "INIT") in snapshots, snapshots
    assert ("RUNNING", "SUCCESS", "RUNNING", "INIT") in snapshots, snapshots
    assert ("RUNNING", "SUCCESS", "SUCCESS", "RUNNING") in snapshots, snapshots

    native = jobd.native_get(project_id, job_id)
    check_main_against_native(resp.job, native)
    assert resp.job.resource_id == lb
    assert [s.job_id for s in resp.job.sub_jobs] == [s["job_id"] for s in native["sub_jobs"]]
    for sub, nsub in zip(resp.job.sub_jobs, native["sub_jobs"]):
        assert sub.status == SUB_STATUS[nsub["status"]]
        assert_time(sub.begin_time, nsub["started_at"])
        assert_time(sub.end_time, nsub["ended_at"])
    # sub-jobs ran in order
    subs = resp.job.sub_jobs
    assert subs[0].end_time <= subs[1].begin_time <= subs[1].end_time <= subs[2].begin_time


def test_upgrade_failing_middle_sub_job(jobd, project_id, elb):
    lb = str(uuid.uuid4())
    fail = {"duration_ms": 300, "outcome": "failure", "error_code": "ELB.UPGRADE.1001",
            "error_msg": "traffic switch failed", "messages": ["switching"]}
    job = jobd.native_create(project_id, _upgrade_body(lb, [_ok(200), fail, _ok(200)]))
    resp = wait_until(lambda: finished(elb, job["job_id"]), timeout=10, desc="UPGRADE job to finish")
    assert _snapshot(resp) == ("FAIL", "SUCCESS", "FAIL", "CANCEL"), raw_json(resp)
    assert resp.job.error_code == "ELB.UPGRADE.1001"
    assert resp.job.error_msg == "traffic switch failed"
    assert resp.job.sub_jobs[1].error_code == "ELB.UPGRADE.1001"
    assert resp.job.sub_jobs[1].error_msg == "traffic switch failed"
    assert not resp.job.sub_jobs[0].error_code
    assert resp.job.sub_jobs[2].begin_time is None  # never started
    assert SECOND_TIME_RE.match(resp.job.end_time)
    check_main_against_native(resp.job, jobd.native_get(project_id, job["job_id"]))


def test_unknown_job_is_404(elb):
    with pytest.raises(ClientRequestException) as exc:
        show(elb, str(uuid.uuid4()))
    _assert_error(exc, 404)


def test_malformed_job_id_is_400(elb):
    with pytest.raises(ClientRequestException) as exc:
        show(elb, "not-a-job-id")
    _assert_error(exc, 400)


def test_cfw_job_is_not_visible_on_elb_route(jobd, project_id, elb):
    cfw_job = jobd.native_create(project_id, {"service": "cfw", "job_type": "createFirewall"})
    with pytest.raises(ClientRequestException) as exc:
        show(elb, cfw_job["job_id"])
    _assert_error(exc, 404)
    # ... nor in the list
    assert elb.list_jobs(ListJobsRequest()).jobs in (None, [])


def _assert_error(exc, status):
    e = exc.value
    assert e.status_code == status, str(e)
    assert e.request_id, f"X-Request-Id header missing: {e}"
    assert e.error_code and e.error_code != str(status), f"error_code missing from the body: {e}"
    assert e.error_msg, str(e)


# ---------------------------------------------------------------------------
# ListJobs paging
# ---------------------------------------------------------------------------

def _create_all(jobd, project_id, bodies):
    """Create jobs in order, >= 2 ms apart so their creation times (ms precision) differ."""
    jobs = []
    for body in bodies:
        jobs.append(jobd.native_create(project_id, body))
        time.sleep(0.003)
    return jobs


def _native_order(jobd, project_id, jobs):
    """The native API's view: the given jobs newest first (creation time desc)."""
    natives = [jobd.native_get(project_id, j["job_id"]) for j in jobs]
    created = [n["created_at"] for n in natives]
    assert len(set(created)) == len(created), f"creation times must differ to define an order: {created}"
    return [n["job_id"] for n in sorted(natives, key=lambda n: n["created_at"], reverse=True)]


def _page(elb, **kw):
    resp = elb.list_jobs(ListJobsRequest(**kw))
    assert resp.status_code == 200
    assert resp.request_id, raw_json(resp)
    jobs = resp.jobs or []
    ids = [j.job_id for j in jobs]
    if ids:
        pi = resp.page_info
        assert pi is not None, raw_json(resp)
        assert pi.current_count == len(ids), raw_json(resp)
        assert pi.previous_marker == ids[0], raw_json(resp)
        assert pi.next_marker == ids[-1], raw_json(resp)
    elif resp.page_info is not None and resp.page_info.current_count is not None:
        assert resp.page_info.current_count == 0, raw_json(resp)
    return resp, ids


def _check_paging(elb, expected, filters):
    """Page forward (10,10,5) by next_marker, then back by previous_marker with page_reverse."""
    assert len(expected) == 25
    forward = []
    resp, ids = _page(elb, limit=10, **filters)
    forward.append(ids)
    while ids:
        resp, ids = _page(elb, limit=10, marker=resp.page_info.next_marker, **filters)
        forward.append(ids)
    assert forward == [expected[0:10], expected[10:20], expected[20:25], []], (filters, forward, expected)

    # from the last page back to the first
    _, ids = _page(elb, limit=10, marker=expected[19], **filters)
    assert ids == expected[20:25]
    resp, ids = _page(elb, limit=10, marker=expected[20], page_reverse=True, **filters)
    assert ids == expected[10:20], (filters, ids, expected)
    resp, ids = _page(elb, limit=10, marker=resp.page_info.previous_marker, page_reverse=True, **filters)
    assert ids == expected[0:10], (filters, ids, expected)
    _, ids = _page(elb, limit=10, marker=resp.page_info.previous_marker, page_reverse=True, **filters)
    assert ids == [], (filters, ids)

    # a reverse page shorter than the limit, and the whole set in one page
    _, ids = _page(elb, limit=10, marker=expected[5], page_reverse=True, **filters)
    assert ids == expected[0:5], (filters, ids)
    _, ids = _page(elb, **filters)
    assert ids == expected, (filters, ids)


def _noise_cfw_waf(jobd, project_id):
    # other dialects' jobs in the same project never show up in the ELB list
    jobd.native_create(project_id, {"service": "cfw", "job_type": "cloneLoadbalancer"})
    jobd.native_create(project_id, {"service": "waf", "job_type": "cloneLoadbalancer"})


def test_list_filter_job_type(jobd, project_id, elb):
    _noise_cfw_waf(jobd, project_id)
    bodies = []
    for i in range(25):
        bodies.append({"service": "elb", "job_type": "cloneLoadbalancer"})
        if i % 5 == 2:
            bodies.append({"service": "elb", "job_type": "UPGRADE"})
    jobs = _create_all(jobd, project_id, bodies)
    matching = [j for j in jobs if j["job_type"] == "cloneLoadbalancer"]
    expected = _native_order(jobd, project_id, matching)
    _check_paging(elb, expected, {"job_type": "cloneLoadbalancer"})

    # no filter: everything ELB, newest first
    _, ids = _page(elb)
    assert ids == _native_order(jobd, project_id, jobs)
    # job_id gives exactly that one job
    resp, ids = _page(elb, job_id=expected[7])
    assert ids == [expected[7]]
    check_main_against_native(resp.jobs[0], jobd.native_get(project_id, expected[7]))


def test_list_filter_status(jobd, project_id, elb):
    _noise_cfw_waf(jobd, project_id)
    fail = {"duration_ms": 50, "outcome": "failure", "error_code": "ELB.1001", "error_msg": "boom"}
    ok = {"duration_ms": 50, "outcome": "success"}
    bodies = []
    for i in range(25):
        bodies.append({"service": "elb", "job_type": "cloneLoadbalancer", "simulate": fail})
        if i % 6 == 1:
            bodies.append({"service": "elb", "job_type": "cloneLoadbalancer", "simulate": ok})
        if i % 6 == 4:
            bodies.append({"service": "elb", "job_type": "cloneLoadbalancer"})  # stays pending
    jobs = _create_all(jobd, project_id, bodies)
    for j, b in zip(jobs, bodies):
        if "simulate" in b:
            jobd.wait_native_status(project_id, j["job_id"], {"SUCCEEDED", "FAILED"})
    failed = [j for j, b in zip(jobs, bodies) if b.get("simulate") is fail]
    expected = _native_order(jobd, project_id, failed)
    _check_paging(elb, expected, {"status": "FAIL"})

    succeeded = _native_order(jobd, project_id, [j for j, b in zip(jobs, bodies) if b.get("simulate") is ok])
    pending = _native_order(jobd, project_id, [j for j, b in zip(jobs, bodies) if "simulate" not in b])
    # A main job that succeeded shows COMPLETE; SUCCESS is a sub-job's word, no main job shows it.
    assert _page(elb, status="COMPLETE")[1] == succeeded
    assert _page(elb, status="SUCCESS")[1] == []
    assert _page(elb, status="RUNNING")[1] == pending
    assert _page(elb, status="CANCEL")[1] == []

    # cancel one pending job: CANCEL finds it; repeated status filters are OR-ed
    jobd.native_cancel(project_id, pending[0])
    assert _page(elb, status="CANCEL")[1] == [pending[0]]
    both = _page(elb, status=["FAIL", "CANCEL"])[1]
    assert both == _native_order(jobd, project_id, failed + [{"job_id": pending[0]}])


def test_list_filter_error_code(jobd, project_id, elb):
    _noise_cfw_waf(jobd, project_id)

    def fail(code):
        return {"duration_ms": 30, "outcome": "failure", "error_code": code, "error_msg": "failed: " + code}

    bodies = []
    for i in range(25):
        bodies.append({"service": "elb", "job_type": "cloneLoadbalancer", "simulate": fail("ELB.7001")})
        if i % 5 == 0:
            bodies.append({"service": "elb", "job_type": "cloneLoadbalancer", "simulate": fail("ELB.7002")})
        if i % 7 == 3:
            bodies.append({"service": "elb", "job_type": "cloneLoadbalancer"})
    jobs = _create_all(jobd, project_id, bodies)
    for j, b in zip(jobs, bodies):
        if "simulate" in b:
            jobd.wait_native_status(project_id, j["job_id"], "FAILED")
    matching = [j for j, b in zip(jobs, bodies) if b.get("simulate", {}).get("error_code") == "ELB.7001"]
    expected = _native_order(jobd, project_id, matching)
    _check_paging(elb, expected, {"error_code": "ELB.7001"})

    others = [j for j, b in zip(jobs, bodies) if b.get("simulate", {}).get("error_code") == "ELB.7002"]
    assert _page(elb, error_code=["ELB.7001", "ELB.7002"])[1] == _native_order(jobd, project_id, matching + others)


def test_list_filter_resource_id(jobd, project_id, elb):
    _noise_cfw_waf(jobd, project_id)
    lb, other_lb = str(uuid.uuid4()), str(uuid.uuid4())
    bodies = []
    for i in range(25):
        bodies.append({"service": "elb", "job_type": "cloneLoadbalancer", "resource_id": lb})
        if i % 4 == 1:
            bodies.append({"service": "elb", "job_type": "cloneLoadbalancer", "resource_id": other_lb})
        if i % 9 == 2:
            bodies.append({"service": "elb", "job_type": "cloneLoadbalancer"})
    jobs = _create_all(jobd, project_id, bodies)
    matching = [j for j in jobs if j.get("resource_id") == lb]
    expected = _native_order(jobd, project_id, matching)
    _check_paging(elb, expected, {"resource_id": lb})
    assert _page(elb, resource_id=str(uuid.uuid4()))[1] == []


def _parse_native(ts):
    return datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)


def test_list_filter_begin_time(jobd, project_id, elb):
    _noise_cfw_waf(jobd, project_id)
    old = _create_all(jobd, project_id, [{"service": "elb", "job_type": "cloneLoadbalancer"}] * 5)
    newest_old = max(_parse_native(jobd.native_get(project_id, j["job_id"])["created_at"]) for j in old)
    threshold = newest_old.replace(microsecond=0) + timedelta(seconds=1)
    # wait (bounded, < 1.1 s) until the clock has passed the threshold second
    wait_until(lambda: datetime.now(timezone.utc) >= threshold + timedelta(milliseconds=20),
               timeout=2, interval=0.01, desc="clock to pass the begin_time threshold")
    new = _create_all(jobd, project_id, [{"service": "elb", "job_type": "cloneLoadbalancer"}] * 25)
    for j in new:
        assert _parse_native(j["created_at"]) >= threshold, (j["created_at"], threshold)
    expected = _native_order(jobd, project_id, new)
    since = threshold.strftime("%Y-%m-%dT%H:%M:%SZ")
    _check_paging(elb, expected, {"begin_time": since})

    everything = _native_order(jobd, project_id, old + new)
    assert _page(elb, begin_time=(threshold - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"))[1] == everything
    assert _page(elb, begin_time=(threshold + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"))[1] == []


def test_list_unknown_marker_is_400(jobd, project_id, elb):
    jobd.native_create(project_id, {"service": "elb", "job_type": "cloneLoadbalancer"})
    with pytest.raises(ClientRequestException) as exc:
        elb.list_jobs(ListJobsRequest(limit=10, marker=str(uuid.uuid4())))
    _assert_error(exc, 400)


def test_list_includes_sub_jobs(jobd, project_id, elb):
    lb = str(uuid.uuid4())
    job = jobd.native_create(project_id, _upgrade_body(lb, [_ok(30), _ok(30), _ok(30)]))
    wait_until(lambda: finished(elb, job["job_id"]), timeout=10, desc="UPGRADE job to finish")
    resp, ids = _page(elb)
    assert ids == [job["job_id"]]
    main = resp.jobs[0]
    assert main.status == "COMPLETE"
    assert [s.job_type for s in main.sub_jobs] == ["UPGRADE_INIT", "UPGRADE_TRAFFIC_SWITCH", "UPGRADE_COMPLETE"]
    assert [s.status for s in main.sub_jobs] == ["SUCCESS"] * 3
    assert [(e.resource_id, e.resource_type) for e in main.sub_jobs[0].entities] == [(lb, "loadbalancer")]


# ---------------------------------------------------------------------------
# The status filter agrees with ShowJob: the eight words of the ELB SDK
# ---------------------------------------------------------------------------

FILTER_WORDS = ["INIT", "RUNNING", "FAIL", "SUCCESS", "ROLLBACKING", "COMPLETE", "ROLLBACK_FAIL", "CANCEL"]


def _take(jobd, worker_key, job_type):
    """Claims the one task of ``job_type`` through the worker API."""
    ak, sk = worker_key
    resp = jobd.worker(ak, sk, "/v1/worker/claim",
                       {"worker_id": "sdk-tests", "services": ["elb"], "job_types": [job_type], "max_tasks": 1})
    assert resp.status_code == 200, f"claim {job_type}: {resp.status_code} {resp.text}"
    return resp.json()["task"]


def _end(jobd, worker_key, task, ok):
    ak, sk = worker_key
    if ok:
        resp = jobd.worker(ak, sk, f"/v1/worker/tasks/{task['job_id']}/complete", {"lease_token": task["lease_token"]})
    else:
        resp = jobd.worker(ak, sk, f"/v1/worker/tasks/{task['job_id']}/fail",
                           {"lease_token": task["lease_token"], "error_code": "ELB.1001", "error_msg": "refused",
                            "retryable": False})
    assert resp.status_code == 200, resp.text


def test_the_eight_status_words_round_trip_between_show_and_list(jobd, project_id, elb):
    """Jobs driven into every state through the worker API: ListJobs with status=X answers
    exactly the jobs ShowJob shows as X, for each of the eight words the ELB SDK documents."""
    worker_key = jobd.new_key(project_id, "worker")
    tag = uuid.uuid4().hex[:6].upper()

    def create(kind, sub_jobs=0, rollback=False):
        body = {"service": "elb", "job_type": f"{kind}_{tag}"}
        if sub_jobs:
            body["sub_jobs"] = [{"job_type": f"{kind}_{tag}_{i}"} for i in range(sub_jobs)]
        if rollback:
            body["on_failure"] = "rollback"
        return jobd.native_create(project_id, body)["job_id"]

    pending = create("PENDING")
    running = create("RUNNING")
    _take(jobd, worker_key, f"RUNNING_{tag}")
    complete = create("COMPLETE")
    _end(jobd, worker_key, _take(jobd, worker_key, f"COMPLETE_{tag}"), ok=True)
    failed = create("FAILED")
    _end(jobd, worker_key, _take(jobd, worker_key, f"FAILED_{tag}"), ok=False)
    cancelled = create("CANCELLED")
    jobd.native_cancel(project_id, cancelled)
    sagas = {}
    for kind, compensation_ok in [("ROLLING", None), ("ROLLFAIL", False), ("ROLLED", True)]:
        sagas[kind] = create(kind, sub_jobs=2, rollback=True)
        _end(jobd, worker_key, _take(jobd, worker_key, f"{kind}_{tag}_0"), ok=True)
        _end(jobd, worker_key, _take(jobd, worker_key, f"{kind}_{tag}_1"), ok=False)
        if compensation_ok is not None:
            compensation = _take(jobd, worker_key, f"{kind}_{tag}_0")
            assert compensation["phase"] == "rollback", compensation
            _end(jobd, worker_key, compensation, ok=compensation_ok)

    shown = {job_id: show(elb, job_id).job.status
             for job_id in [pending, running, complete, failed, cancelled, *sagas.values()]}
    assert shown == {pending: "RUNNING", running: "RUNNING", complete: "COMPLETE", failed: "FAIL",
                     cancelled: "CANCEL", sagas["ROLLING"]: "ROLLBACKING", sagas["ROLLFAIL"]: "ROLLBACK_FAIL",
                     sagas["ROLLED"]: "FAIL"}
    for word in FILTER_WORDS:
        listed = set(_page(elb, status=word)[1])
        expected = {job_id for job_id, status in shown.items() if status == word}
        assert listed == expected, (word, listed, expected)
        for job_id in listed:
            assert show(elb, job_id).job.status == word
    # Words together: any of them.
    assert set(_page(elb, status=["ROLLBACKING", "ROLLBACK_FAIL"])[1]) == {sagas["ROLLING"], sagas["ROLLFAIL"]}
    assert set(_page(elb, status=["INIT", "SUCCESS"])[1]) == set()


def test_an_unknown_status_word_is_400_naming_the_eight(elb):
    with pytest.raises(ClientRequestException) as error:
        elb.list_jobs(ListJobsRequest(status="DONE"))
    assert error.value.status_code == 400
    assert error.value.error_code == "ELB.8902"
    for word in FILTER_WORDS:
        assert word in error.value.error_msg
