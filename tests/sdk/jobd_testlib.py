"""Helpers of the jobd SDK conformance suite (imported by conftest.py and the tests).

JobdServer wraps a running jobd: SDK clients pointed at it, and the native API called
with ``requests`` but signed by huaweicloudsdkcore's own Signer.
"""

import json
import os
import re
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import requests

from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcfw.v1 import CfwClient
from huaweicloudsdkwaf.v1 import WafClient
from huaweicloudsdkelb.v3 import ElbClient
from huaweicloudsdkiam.v3 import IamClient

REPO = Path(__file__).resolve().parents[2]
ROOT_AK = "JOBDTESTROOTAK0000000001"
ROOT_SK = "jobd-test-root-secret-key-0123456789abcdef"
HEALTH_TIMEOUT_S = 30.0
# The region the second server (`jobd_regional`) serves.
JOBD_TEST_REGION = "cn-jobd-1"

# Time formats of the contract.
SECOND_TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
NATIVE_TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
HEX32_RE = re.compile(r"^[0-9a-f]{32}$")
ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")

# The SDK honours proxy variables (requests' trust_env); never proxy the local server.
for _var in ("NO_PROXY", "no_proxy"):
    _cur = os.environ.get(_var, "")
    os.environ[_var] = ",".join(filter(None, [_cur, "127.0.0.1", "localhost"]))


# ---------------------------------------------------------------------------
# small helpers usable from any test module (import via the fixtures below)
# ---------------------------------------------------------------------------

def wait_until(predicate, timeout=10.0, interval=0.03, desc="condition"):
    """Poll ``predicate()`` until it returns a truthy value; return that value.

    Raises AssertionError after ``timeout`` seconds, quoting the last value seen.
    Exceptions raised by the predicate propagate immediately.
    """
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {desc}; last value: {last!r}")
        time.sleep(interval)


def new_project_id():
    """A fresh project id: 32 lowercase hex chars."""
    return uuid.uuid4().hex


def to_second_z(native_time):
    """'2024-01-02T03:04:05.678Z' -> '2024-01-02T03:04:05Z' (truncate to the second)."""
    assert native_time and NATIVE_TIME_RE.match(native_time), f"bad native time {native_time!r}"
    return native_time[:19] + "Z"


def raw_json(sdk_response):
    """The JSON body the SDK received (the SDK keeps the raw bytes in raw_content)."""
    return json.loads(sdk_response.raw_content)


class JobdServer:
    """A running jobd plus the ways the tests talk to it."""

    def __init__(self, base_url, proc, stderr_path):
        self.base_url = base_url
        self.host = base_url.split("://", 1)[1]
        self.proc = proc
        self.stderr_path = stderr_path
        self.session = requests.Session()
        # Scoped credentials per project (created through the admin API); root is used where
        # a test names a project that has none.
        self.keys = {}
        self.session.trust_env = False

    # -- diagnostics -------------------------------------------------------
    def stderr_size(self):
        try:
            return os.path.getsize(self.stderr_path)
        except OSError:
            return 0

    def stderr_since(self, offset, limit=20000):
        try:
            with open(self.stderr_path, "rb") as fh:
                fh.seek(offset)
                data = fh.read()
        except OSError:
            return ""
        text = ANSI_RE.sub("", data.decode("utf-8", "replace"))
        return text if len(text) <= limit else "...\n" + text[-limit:]

    # -- raw, SDK-signed HTTP ----------------------------------------------
    def key_for(self, project_id):
        """The scoped (ak, sk) of a project, or root's."""
        return self.keys.get(project_id, (ROOT_AK, ROOT_SK))

    def new_scoped_project(self, role="producer"):
        """Registers a fresh project and a credential limited to it (via the admin API, as root)."""
        name = "sdk-" + new_project_id()[:12]
        resp = self.signed_request("POST", "/v1/admin/projects", body={"name": name}, ak=ROOT_AK, sk=ROOT_SK)
        assert resp.status_code == 201, resp.text
        project_id = resp.json()["id"]
        resp = self.signed_request("POST", "/v1/admin/credentials", ak=ROOT_AK, sk=ROOT_SK,
                                   body={"project_ids": [project_id], "role": role})
        assert resp.status_code == 201, resp.text
        self.keys[project_id] = (resp.json()["access_key"], resp.json()["secret_key"])
        return project_id, name

    def new_key(self, project_id, role):
        """A further credential of ``role`` in the project (via the admin API, as root): (ak, sk)."""
        resp = self.signed_request("POST", "/v1/admin/credentials", ak=ROOT_AK, sk=ROOT_SK,
                                   body={"project_ids": [project_id], "role": role})
        assert resp.status_code == 201, resp.text
        return resp.json()["access_key"], resp.json()["secret_key"]

    def new_user(self, project_id, name, password, role="reader", domain=None):
        """A user of the project (via the admin API, as root); returns its admin view."""
        body = {"name": name, "domain": domain or ("dom-" + new_project_id()[:10]), "password": password,
                "project_id": project_id, "role": role}
        resp = self.signed_request("POST", "/v1/admin/users", ak=ROOT_AK, sk=ROOT_SK, body=body)
        assert resp.status_code == 201, resp.text
        return resp.json()

    def worker(self, ak, sk, path, body):
        """A worker API call (``/v1/worker/...``) with a worker key; returns the response."""
        return self.signed_request("POST", path, body=body, ak=ak, sk=sk)

    def signed_request(self, method, path, project_id=None, query=None, body=None,
                       ak=None, sk=None, extra_headers=None, timeout=15):
        """Send a request signed by huaweicloudsdkcore's Signer, like the SDK would.

        ``path`` must already be percent-encoded (as the SDK does with path params).
        ``query`` is a list of (key, value) tuples (value may be a list => repeated key).
        ``body`` is a dict (sent as JSON), str, bytes or None.
        Returns the ``requests.Response``.
        """
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        headers = {"Content-Type": "application/json",
                   "User-Agent": "huaweicloud-usdk-python/3.0; jobd-sdk-tests"}
        if extra_headers:
            headers.update(extra_headers)
        scoped_ak, scoped_sk = self.key_for(project_id)
        ak = scoped_ak if ak is None else ak
        sk = scoped_sk if sk is None else sk
        req = SdkRequest(method=method, schema="http", host=self.host, resource_path=path,
                         query_params=list(query or []), header_params=headers, body=body or "")
        creds = BasicCredentials(ak, sk, project_id)
        req = creds.sign_request(req)
        return self.session.request(method, req.url, headers=req.header_params,
                                    data=req.body if req.body else None, timeout=timeout)

    # -- native API ----------------------------------------------------------
    def native_create_raw(self, project_id, body):
        return self.signed_request("POST", f"/v1/{project_id}/jobs", project_id, body=body)

    def native_create(self, project_id, body):
        resp = self.native_create_raw(project_id, body)
        assert resp.status_code == 201, f"native create {body!r} -> {resp.status_code} {resp.text}"
        job = resp.json()["job"]
        assert job["project_id"] == project_id, job
        return job

    def native_get_raw(self, project_id, job_id):
        return self.signed_request("GET", f"/v1/{project_id}/jobs/{quote(job_id, safe='')}", project_id)

    def native_get(self, project_id, job_id):
        resp = self.native_get_raw(project_id, job_id)
        assert resp.status_code == 200, f"native get {job_id} -> {resp.status_code} {resp.text}"
        return resp.json()["job"]

    def native_cancel_raw(self, project_id, job_id):
        return self.signed_request("POST", f"/v1/{project_id}/jobs/{quote(job_id, safe='')}/cancel",
                                   project_id)

    def native_cancel(self, project_id, job_id):
        resp = self.native_cancel_raw(project_id, job_id)
        assert resp.status_code == 200, f"native cancel {job_id} -> {resp.status_code} {resp.text}"
        job = resp.json()["job"]
        assert job["status"] == "CANCELLED", job
        return job

    def wait_native_status(self, project_id, job_id, statuses, timeout=10.0):
        """Poll the native API until the job's status is in ``statuses``; return the job."""
        if isinstance(statuses, str):
            statuses = {statuses}
        return wait_until(lambda: (lambda j: j if j["status"] in statuses else None)(
            self.native_get(project_id, job_id)), timeout=timeout,
            desc=f"job {job_id} to reach {sorted(statuses)}")

    # -- SDK clients -----------------------------------------------------------
    def _build(self, client_cls, project_id, ak, sk):
        scoped_ak, scoped_sk = self.key_for(project_id)
        ak = scoped_ak if ak is None else ak
        sk = scoped_sk if sk is None else sk
        config = HttpConfig.get_default_config()
        config.ignore_ssl_verification = True  # irrelevant for http://, harmless
        config.timeout = (5, 20)
        credentials = BasicCredentials(ak, sk, project_id)  # project id given => no IAM call
        return (client_cls.new_builder()
                .with_http_config(config)
                .with_credentials(credentials)
                .with_endpoints([self.base_url])  # no with_region(): nothing but this endpoint is contacted
                .build())

    def cfw_client(self, project_id, ak=None, sk=None):
        return self._build(CfwClient, project_id, ak, sk)

    def waf_client(self, project_id, ak=None, sk=None):
        return self._build(WafClient, project_id, ak, sk)

    def elb_client(self, project_id, ak=None, sk=None):
        return self._build(ElbClient, project_id, ak, sk)

    def iam_client(self, project_id, ak=None, sk=None):
        return self._build(IamClient, project_id, ak, sk)
