"""AK/SK (SDK-HMAC-SHA256) authentication as the official SDKs do it.

The SDK maps an error answer to ClientRequestException: status_code = HTTP status,
request_id = the ``X-Request-Id`` response header, error_code/error_msg = the body's
``error_code``/``error_msg`` (falling back to the status code / raw text).
"""

import uuid

import pytest
from huaweicloudsdkcfw.v1 import ListJobRequest
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkelb.v3 import ListJobsRequest, ShowJobRequest
from huaweicloudsdkwaf.v1 import ConfirmAsyncJobRequest

from jobd_testlib import ROOT_AK, ROOT_SK

WRONG_SK = ROOT_SK[:-4] + "XXXX"


def _call(jobd, service, project_id, job_id, ak=None, sk=None):
    if service == "cfw":
        return jobd.cfw_client(project_id, ak, sk).list_job(ListJobRequest(job_id=job_id))
    if service == "waf":
        return jobd.waf_client(project_id, ak, sk).confirm_async_job(
            ConfirmAsyncJobRequest(job_id=job_id, enterprise_project_id="0"))
    return jobd.elb_client(project_id, ak, sk).show_job(ShowJobRequest(job_id=job_id))


@pytest.mark.parametrize("service", ["cfw", "waf", "elb"])
def test_wrong_secret_key_is_401(jobd, project_id, service):
    job = jobd.native_create(project_id, {"service": service, "job_type": "authProbe"})
    # sanity: the right key reads it
    assert _call(jobd, service, project_id, job["job_id"]).status_code == 200
    with pytest.raises(ClientRequestException) as exc:
        _call(jobd, service, project_id, job["job_id"], sk=WRONG_SK)
    e = exc.value
    assert e.status_code == 401, str(e)
    assert e.request_id, f"X-Request-Id header missing: {e}"
    assert e.error_code == "APIGW.0301", str(e)
    assert e.error_msg, str(e)


@pytest.mark.parametrize("service", ["cfw", "waf", "elb"])
def test_unknown_access_key_is_401(jobd, project_id, service):
    job_id = uuid.uuid4().hex if service == "waf" else str(uuid.uuid4())
    with pytest.raises(ClientRequestException) as exc:
        _call(jobd, service, project_id, job_id, ak="NOSUCHACCESSKEY000000", sk="whatever")
    assert exc.value.status_code == 401, str(exc.value)
    assert exc.value.request_id


def test_wrong_secret_key_on_list_jobs_is_401(jobd, project_id):
    with pytest.raises(ClientRequestException) as exc:
        jobd.elb_client(project_id, sk=WRONG_SK).list_jobs(ListJobsRequest(limit=10))
    assert exc.value.status_code == 401
    assert exc.value.error_code == "APIGW.0301"


def test_healthz_needs_no_auth(jobd):
    r = jobd.session.get(jobd.base_url + "/healthz", timeout=5)
    assert r.status_code == 200


def test_unsigned_request_is_401(jobd, project_id):
    r = jobd.session.get(f"{jobd.base_url}/v3/{project_id}/elb/jobs/{uuid.uuid4()}", timeout=5)
    assert r.status_code == 401, r.text
    assert r.headers.get("X-Request-Id"), r.headers
    assert r.json().get("error_code"), r.text


def test_tampered_signature_is_401(jobd, project_id):
    job = jobd.native_create(project_id, {"service": "elb", "job_type": "authProbe"})
    path = f"/v3/{project_id}/elb/jobs/{job['job_id']}"
    ok = jobd.signed_request("GET", path, project_id)
    assert ok.status_code == 200, ok.text
    assert ok.headers.get("X-Request-Id")
    assert ok.json()["request_id"]

    # same request, signature flipped in its last hex digit
    from huaweicloudsdkcore.auth.credentials import BasicCredentials
    from huaweicloudsdkcore.sdk_request import SdkRequest
    req = SdkRequest(method="GET", schema="http", host=jobd.host, resource_path=path, query_params=[],
                     header_params={"Content-Type": "application/json"}, body="")
    req = BasicCredentials(ROOT_AK, ROOT_SK, project_id).sign_request(req)
    auth = req.header_params["Authorization"]
    req.header_params["Authorization"] = auth[:-1] + ("0" if auth[-1] != "0" else "1")
    r = jobd.session.get(req.url, headers=req.header_params, timeout=5)
    assert r.status_code == 401, r.text
    assert r.json()["error_code"] == "APIGW.0301", r.text
    assert r.headers.get("X-Request-Id")


def test_body_changed_after_signing_is_401(jobd, project_id):
    from huaweicloudsdkcore.auth.credentials import BasicCredentials
    from huaweicloudsdkcore.sdk_request import SdkRequest
    body = '{"service": "elb", "job_type": "authProbe"}'
    req = SdkRequest(method="POST", schema="http", host=jobd.host, resource_path=f"/v1/{project_id}/jobs",
                     query_params=[], header_params={"Content-Type": "application/json"}, body=body)
    req = BasicCredentials(ROOT_AK, ROOT_SK, project_id).sign_request(req)
    r = jobd.session.post(req.url, headers=req.header_params, timeout=5,
                          data=body.replace("authProbe", "authProbX").encode())
    assert r.status_code == 401, r.text
    assert r.json()["error_code"] == "APIGW.0301", r.text


def test_query_changed_after_signing_is_401(jobd, project_id):
    from huaweicloudsdkcore.auth.credentials import BasicCredentials
    from huaweicloudsdkcore.sdk_request import SdkRequest
    req = SdkRequest(method="GET", schema="http", host=jobd.host, resource_path=f"/v3/{project_id}/elb/jobs",
                     query_params=[("limit", 10)], header_params={"Content-Type": "application/json"}, body="")
    req = BasicCredentials(ROOT_AK, ROOT_SK, project_id).sign_request(req)
    assert req.url.endswith("?limit=10"), req.url
    r = jobd.session.get(req.url.replace("limit=10", "limit=11"), headers=req.header_params, timeout=5)
    assert r.status_code == 401, r.text
    assert r.json()["error_code"] == "APIGW.0301", r.text


def test_native_api_with_wrong_secret_is_401(jobd, project_id):
    r = jobd.signed_request("POST", f"/v1/{project_id}/jobs", project_id,
                            body={"service": "cfw", "job_type": "authProbe"}, sk=WRONG_SK)
    assert r.status_code == 401, r.text
    assert r.json()["error_code"] == "APIGW.0301", r.text
    assert r.headers.get("X-Request-Id")
