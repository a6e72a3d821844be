"""CFW dialect (GET /v3/{project_id}/jobs/{job_id}) read through the official huaweicloudsdkcfw.

SDK facts this file relies on (huaweicloudsdkcfw 3.1.x):
  * ListJobRequest has only ``job_id``; project_id comes from BasicCredentials.
  * ListJobResponse models only ``data`` (GetCreateFirewallJobResponseData: id, status,
    begin_time, end_time).  The top-level ``error_code``/``error_msg`` are NOT modelled, so
    they are read from ``response.raw_content`` (the bytes the SDK received).
  * begin_time/end_time are typed ``date``: without python-dateutil the SDK hands back the
    raw value; with python-dateutil it calls ``value.endswith("Z")`` and parses it, so an
    integer (epoch ms, as in the doc example) raises AttributeError inside the SDK, and a
    string comes back as ``datetime.date``.  Hence the wire value must be a string.
"""

import datetime
import uuid

import pytest
from huaweicloudsdkcfw.v1 import ListJobRequest
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException

from jobd_testlib import (SECOND_TIME_RE, UUID_RE, raw_json, to_second_z, wait_until)

MESSAGES = ["Creating firewall", "Binding EIPs", "Finishing"]


def read(cfw, job_id):
    return cfw.list_job(ListJobRequest(job_id=job_id))


def check_sdk_time(value, wire):
    """The SDK-level value of a CFW time: the raw string (no dateutil) or a date (dateutil)."""
    if isinstance(value, datetime.date):
        assert value.isoformat() == wire[:10]
    else:
        assert value == wire


def check_times(resp, job, ended):
    body = raw_json(resp)
    data = body["data"]
    begin = data.get("begin_time")
    assert isinstance(begin, str) and SECOND_TIME_RE.match(begin), f"begin_time must be a yyyy-mm-ddThh:mm:ssZ string: {body}"
    assert begin == to_second_z(job["created_at"]), (body, job)
    check_sdk_time(resp.data.begin_time, begin)
    end = data.get("end_time")
    if ended:
        assert isinstance(end, str) and SECOND_TIME_RE.match(end), f"end_time must be a yyyy-mm-ddThh:mm:ssZ string: {body}"
        assert end == to_second_z(job["ended_at"]), (body, job)
        check_sdk_time(resp.data.end_time, end)
    else:
        assert end is None, f"end_time must be absent/null while the job runs: {body}"
        assert resp.data.end_time is None


def test_simulated_job_reads_running_then_success(jobd, project_id, cfw):
    job = jobd.native_create(project_id, {
        "service": "cfw", "job_type": "createFirewall",
        "simulate": {"duration_ms": 1500, "outcome": "success", "messages": MESSAGES}})
    job_id = job["job_id"]
    assert UUID_RE.match(job_id), job_id

    resp = read(cfw, job_id)
    assert resp.status_code == 200
    assert resp.data.id == job_id
    assert resp.data.status == "Running"
    check_times(resp, job, ended=False)

    # once the simulator has really started it, still Running
    jobd.wait_native_status(project_id, job_id, "RUNNING", timeout=5)
    resp = read(cfw, job_id)
    assert resp.data.status == "Running"
    check_times(resp, job, ended=False)

    resp = wait_until(lambda: (lambda r: r if r.data.status != "Running" else None)(read(cfw, job_id)),
                      timeout=10, desc="CFW job to finish")
    assert resp.data.status == "Success", raw_json(resp)
    assert resp.data.id == job_id
    final = jobd.native_get(project_id, job_id)
    assert final["status"] == "SUCCEEDED"
    check_times(resp, final, ended=True)
    body = raw_json(resp)
    assert not body.get("error_code"), body


def test_failing_job_reads_failed_with_error(jobd, project_id, cfw):
    job = jobd.native_create(project_id, {
        "service": "cfw", "job_type": "createFirewall",
        "simulate": {"duration_ms": 300, "outcome": "failure", "error_code": "CFW.00200005",
                     "error_msg": "EIP quota exceeded", "messages": ["Creating firewall"]}})
    job_id = job["job_id"]

    resp = wait_until(lambda: (lambda r: r if r.data.status != "Running" else None)(read(cfw, job_id)),
                      timeout=10, desc="CFW job to finish")
    assert resp.data.status == "Failed"
    body = raw_json(resp)
    assert body.get("error_code") == "CFW.00200005", body
    assert body.get("error_msg") == "EIP quota exceeded", body
    final = jobd.native_get(project_id, job_id)
    assert final["status"] == "FAILED"
    assert final["error_code"] == "CFW.00200005"
    check_times(resp, final, ended=True)


def test_pending_job_reads_running_then_failed_after_cancel(jobd, project_id, cfw):
    job = jobd.native_create(project_id, {"service": "cfw", "job_type": "createFirewall"})
    job_id = job["job_id"]
    assert job["status"] == "PENDING"

    resp = read(cfw, job_id)
    assert resp.data.status == "Running"
    check_times(resp, job, ended=False)
    assert jobd.native_get(project_id, job_id)["status"] == "PENDING"  # no simulate => stays pending

    cancelled = jobd.native_cancel(project_id, job_id)
    resp = read(cfw, job_id)
    assert resp.data.status == "Failed", raw_json(resp)
    check_times(resp, cancelled, ended=True)

    again = jobd.native_cancel_raw(project_id, job_id)
    assert again.status_code == 409, again.text


def _assert_error(exc, status):
    e = exc.value
    assert e.status_code == status, str(e)
    assert e.request_id, f"X-Request-Id header missing: {e}"
    assert e.error_code and e.error_code != str(status), f"error_code missing from the body: {e}"
    assert e.error_msg, str(e)


def test_unknown_job_is_404(cfw):
    with pytest.raises(ClientRequestException) as exc:
        read(cfw, str(uuid.uuid4()))
    _assert_error(exc, 404)


def test_malformed_job_id_is_400(cfw):
    with pytest.raises(ClientRequestException) as exc:
        read(cfw, "not-a-job-id")
    _assert_error(exc, 400)


def test_elb_job_is_not_visible_on_cfw_route(jobd, project_id, cfw):
    elb_job = jobd.native_create(project_id, {"service": "elb", "job_type": "UPGRADE"})
    assert UUID_RE.match(elb_job["job_id"])
    with pytest.raises(ClientRequestException) as exc:
        read(cfw, elb_job["job_id"])
    _assert_error(exc, 404)


def test_job_of_another_project_is_404(jobd, project_id):
    job = jobd.native_create(project_id, {"service": "cfw", "job_type": "createFirewall"})
    other = jobd.cfw_client(uuid.uuid4().hex)
    with pytest.raises(ClientRequestException) as exc:
        read(other, job["job_id"])
    _assert_error(exc, 404)


@pytest.fixture
def sdk_with_dateutil(monkeypatch):
    """Make the SDK take its python-dateutil path (the one that crashes on non-string times).

    Uses the real python-dateutil when installed; otherwise a minimal stand-in module whose
    ``parser.parse`` accepts the contract's ``yyyy-mm-ddThh:mm:ssZ`` strings.
    """
    try:
        import dateutil.parser  # noqa: F401
        return "real"
    except ImportError:
        pass
    import sys
    import types

    def parse(value):
        return datetime.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)

    pkg = types.ModuleType("dateutil")
    parser = types.ModuleType("dateutil.parser")
    parser.parse = parse
    pkg.parser = parser
    monkeypatch.setitem(sys.modules, "dateutil", pkg)
    monkeypatch.setitem(sys.modules, "dateutil.parser", parser)
    return "stand-in"


def test_times_deserialize_with_dateutil_present(jobd, project_id, cfw, sdk_with_dateutil):
    """With python-dateutil present the SDK parses begin_time/end_time as dates; integer
    (epoch ms) values would raise AttributeError inside the SDK here."""
    job = jobd.native_create(project_id, {
        "service": "cfw", "job_type": "createFirewall",
        "simulate": {"duration_ms": 100, "outcome": "success", "messages": ["x"]}})
    resp = wait_until(lambda: (lambda r: r if r.data.status != "Running" else None)(read(cfw, job["job_id"])),
                      timeout=10, desc="CFW job to finish")
    assert resp.data.status == "Success"
    body = raw_json(resp)
    assert isinstance(resp.data.begin_time, datetime.date), (sdk_with_dateutil, resp.data.begin_time)
    assert isinstance(resp.data.end_time, datetime.date), (sdk_with_dateutil, resp.data.end_time)
    assert resp.data.begin_time.isoformat() == body["data"]["begin_time"][:10]
    assert resp.data.end_time.isoformat() == body["data"]["end_time"][:10]
