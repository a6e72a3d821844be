"""WAF dialect (GET /v1/{project_id}/waf/async-job/{job_id}?enterpriseProjectId=) read through
the official huaweicloudsdkwaf: WafClient.confirm_async_job(ConfirmAsyncJobRequest(job_id,
enterprise_project_id)) -> ConfirmAsyncJobResponse(status, message, job_id)."""

import uuid

import pytest
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkwaf.v1 import ConfirmAsyncJobRequest

from jobd_testlib import HEX32_RE, raw_json, wait_until

MESSAGES = ["Checking domain name configuration", "Deploying policy", "Refreshing cache"]


def read(waf, job_id, enterprise_project_id="0"):
    return waf.confirm_async_job(ConfirmAsyncJobRequest(job_id=job_id,
                                                        enterprise_project_id=enterprise_project_id))


def test_simulated_job_reads_running_with_progress_then_success(jobd, project_id, waf):
    job = jobd.native_create(project_id, {
        "service": "waf", "job_type": "updateHost",
        "simulate": {"duration_ms": 1500, "outcome": "success", "messages": MESSAGES}})
    job_id = job["job_id"]
    assert HEX32_RE.match(job_id), f"WAF job ids are 32 lowercase hex chars: {job_id}"

    resp = read(waf, job_id)
    assert resp.status_code == 200
    assert resp.job_id == job_id
    assert resp.status == "RUNNING"

    # while the simulator runs, the progress message shows through the SDK
    resp = wait_until(lambda: (lambda r: r if r.message in MESSAGES else None)(read(waf, job_id)),
                      timeout=5, desc="WAF progress message")
    assert resp.status == "RUNNING", raw_json(resp)

    resp = wait_until(lambda: (lambda r: r if r.status != "RUNNING" else None)(read(waf, job_id)),
                      timeout=10, desc="WAF job to finish")
    assert resp.status == "SUCCESS", raw_json(resp)
    assert resp.job_id == job_id
    assert resp.message == MESSAGES[-1], raw_json(resp)
    assert jobd.native_get(project_id, job_id)["status"] == "SUCCEEDED"


def test_progress_messages_advance_in_order(jobd, project_id, waf):
    job = jobd.native_create(project_id, {
        "service": "waf", "job_type": "updateHost",
        "simulate": {"duration_ms": 1500, "outcome": "success", "messages": MESSAGES}})
    seen = []

    def done():
        r = read(waf, job["job_id"])
        if r.status == "RUNNING" and r.message in MESSAGES and (not seen or seen[-1] != r.message):
            seen.append(r.message)
        return r if r.status != "RUNNING" else None

    wait_until(done, timeout=10, interval=0.02, desc="WAF job to finish")
    assert seen, "never saw a progress message while RUNNING"
    # never goes backwards
    assert seen == sorted(seen, key=MESSAGES.index), seen


def test_failing_job_reads_failed_with_message(jobd, project_id, waf):
    job = jobd.native_create(project_id, {
        "service": "waf", "job_type": "updateHost",
        "simulate": {"duration_ms": 300, "outcome": "failure", "error_code": "WAF.00014002",
                     "error_msg": "Certificate does not match the domain", "messages": MESSAGES[:1]}})
    job_id = job["job_id"]
    resp = wait_until(lambda: (lambda r: r if r.status != "RUNNING" else None)(read(waf, job_id)),
                      timeout=10, desc="WAF job to finish")
    assert resp.status == "FAILED", raw_json(resp)
    assert resp.message == "Certificate does not match the domain", raw_json(resp)
    assert resp.job_id == job_id
    final = jobd.native_get(project_id, job_id)
    assert final["status"] == "FAILED" and final["error_code"] == "WAF.00014002"


def test_pending_job_reads_running_then_failed_after_cancel(jobd, project_id, waf):
    job = jobd.native_create(project_id, {"service": "waf", "job_type": "updateHost"})
    job_id = job["job_id"]
    resp = read(waf, job_id)
    assert resp.status == "RUNNING", raw_json(resp)
    assert jobd.native_get(project_id, job_id)["status"] == "PENDING"

    jobd.native_cancel(project_id, job_id)
    resp = read(waf, job_id)
    assert resp.status == "FAILED", raw_json(resp)
    assert resp.job_id == job_id


def test_enterprise_project_query_is_optional(jobd, project_id, waf):
    job = jobd.native_create(project_id, {"service": "waf", "job_type": "updateHost"})
    resp = read(waf, job["job_id"], enterprise_project_id=None)  # SDK then omits the query
    assert resp.status == "RUNNING"
    assert resp.job_id == job["job_id"]


def _assert_error(exc, status):
    e = exc.value
    assert e.status_code == status, str(e)
    assert e.request_id, f"X-Request-Id header missing: {e}"
    assert e.error_code and e.error_code != str(status), f"error_code missing from the body: {e}"
    assert e.error_msg, str(e)


def test_unknown_job_is_404(waf):
    with pytest.raises(ClientRequestException) as exc:
        read(waf, uuid.uuid4().hex)
    _assert_error(exc, 404)


def test_malformed_job_id_is_400(waf):
    with pytest.raises(ClientRequestException) as exc:
        read(waf, "not-a-job-id")
    _assert_error(exc, 400)


def test_elb_job_is_not_visible_on_waf_route(jobd, project_id, waf):
    elb_job = jobd.native_create(project_id, {"service": "elb", "job_type": "UPGRADE"})
    with pytest.raises(ClientRequestException) as exc:
        read(waf, elb_job["job_id"])
    _assert_error(exc, 404)
