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


# ---------------------------------------------------------------------------
# Derived signing (V11-HMAC-SHA256): what the SDKs send with with_derived_predicate
# ---------------------------------------------------------------------------

def _derived_elb_client(server, project_id, region_id, seen):
    """An ElbClient that signs every request with the derived algorithm for ``region_id``
    (service name ``elb``), recording the Authorization headers it sends into ``seen``."""
    from huaweicloudsdkcore.auth.credentials import BasicCredentials
    from huaweicloudsdkcore.http.http_config import HttpConfig
    from huaweicloudsdkcore.http.http_handler import HttpHandler
    from huaweicloudsdkcore.region.region import Region
    from huaweicloudsdkelb.v3 import ElbClient

    ak, sk = server.key_for(project_id)
    config = HttpConfig.get_default_config()
    config.timeout = (5, 20)
    credentials = BasicCredentials(ak, sk, project_id).with_derived_predicate(lambda request: True)
    handler = HttpHandler().add_request_handler(
        lambda **kwargs: seen.append(kwargs["request"].header_params.get("Authorization")))
    return (ElbClient.new_builder()
            ._with_derived_auth_service_name("elb")
            .with_http_config(config)
            .with_http_handler(handler)
            .with_credentials(credentials)
            .with_region(Region(region_id, server.base_url))
            .build())


def test_derived_signing_verifies_for_the_configured_region(jobd_regional):
    from jobd_testlib import JOBD_TEST_REGION
    project_id, _ = jobd_regional.new_scoped_project()
    job = jobd_regional.native_create(project_id, {"service": "elb", "job_type": "UPGRADE"})
    seen = []
    client = _derived_elb_client(jobd_regional, project_id, JOBD_TEST_REGION, seen)
    assert client.show_job(ShowJobRequest(job_id=job["job_id"])).job.job_id == job["job_id"]
    assert client.list_jobs(ListJobsRequest(limit=5)).jobs[0].job_id == job["job_id"]
    assert seen and all(a.startswith("V11-HMAC-SHA256 Credential=") for a in seen), seen
    assert f"/{JOBD_TEST_REGION}/elb," in seen[0], seen[0]

    # Signed for another region: refused, saying which region this server serves.
    other = _derived_elb_client(jobd_regional, project_id, "cn-other-2", [])
    with pytest.raises(ClientRequestException) as exc:
        other.show_job(ShowJobRequest(job_id=job["job_id"]))
    assert exc.value.status_code == 401, str(exc.value)
    assert exc.value.error_code == "APIGW.0301"
    assert JOBD_TEST_REGION in exc.value.error_msg and "cn-other-2" in exc.value.error_msg, exc.value.error_msg


def test_derived_signing_without_a_configured_region_says_so(jobd, project_id):
    job = jobd.native_create(project_id, {"service": "elb", "job_type": "UPGRADE"})
    client = _derived_elb_client(jobd, project_id, "cn-jobd-1", [])
    with pytest.raises(ClientRequestException) as exc:
        client.show_job(ShowJobRequest(job_id=job["job_id"]))
    e = exc.value
    assert e.status_code == 401, str(e)
    assert e.error_code == "APIGW.0301"
    assert "region" in e.error_msg and "JOBD_REGION" in e.error_msg and "--region" in e.error_msg, e.error_msg


# ---------------------------------------------------------------------------
# Paths with percent-escapes: the signature still verifies (and only then is the id judged)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("job_id", ["a b/c", "already%20escaped", "50%", "x+y:z", "é"])
def test_escaped_path_parameters_verify_and_reach_the_handler(jobd, project_id, job_id):
    """The SDK quotes path parameters (an escape in a value is escaped again) and signs the path
    decoded once: jobd verifies it, so the answer is the dialect's 400 for a malformed id, not 401."""
    elb = jobd.elb_client(project_id)
    with pytest.raises(ClientRequestException) as exc:
        elb.show_job(ShowJobRequest(job_id=job_id))
    assert exc.value.status_code == 400, str(exc.value)
    assert exc.value.error_code == "ELB.8902", str(exc.value)
