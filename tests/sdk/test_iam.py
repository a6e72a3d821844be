"""The IAM calls the official SDKs make, through the official huaweicloudsdkiam and the SDK core:
KeystoneListAuthProjects, KeystoneListAuthDomains (and the core's GlobalCredentials domain-id
lookup), KeystoneListRegions / KeystoneShowRegion, domain-scoped tokens, and virtual MFA
(KeystoneCreateUserTokenByPasswordAndMfa) with codes computed as an authenticator app does.

These run on the module's second server (``jobd_regional``: a region configured, no per-address
throttle on token requests, since they ask for many tokens)."""

import uuid

import pyotp
import pytest
from huaweicloudsdkcore.auth.credentials import GlobalCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdkcore.region.region import Region
from huaweicloudsdkiam.v3 import (
    AuthScope, AuthScopeDomain, AuthScopeProject, IamClient, KeystoneCreateUserTokenByPasswordAndMfaRequest,
    KeystoneCreateUserTokenByPasswordAndMfaRequestBody, KeystoneCreateUserTokenByPasswordRequest,
    KeystoneCreateUserTokenByPasswordRequestBody, KeystoneListAuthDomainsRequest, KeystoneListAuthProjectsRequest,
    KeystoneListRegionsRequest, KeystoneShowRegionRequest, MfaAuth, MfaIdentity, MfaTotp, MfaTotpUser, PwdAuth,
    PwdIdentity, PwdPassword, PwdPasswordUser, PwdPasswordUserDomain)

from jobd_testlib import JOBD_TEST_REGION, raw_json

PASSWORD = "a long sdk password"


def _config():
    config = HttpConfig.get_default_config()
    config.timeout = (5, 20)
    return config


def _password_user(user, password=PASSWORD):
    return PwdPasswordUser(domain=PwdPasswordUserDomain(name=user["domain"]), name=user["name"], password=password)


def _scope(user, domain=False):
    if domain:
        return AuthScope(domain=AuthScopeDomain(name=user["domain"]))
    return AuthScope(project=AuthScopeProject(id=user["project_id"]))


def _token_by_password(iam, user, domain=False, password=PASSWORD):
    body = KeystoneCreateUserTokenByPasswordRequestBody(auth=PwdAuth(
        identity=PwdIdentity(methods=["password"], password=PwdPassword(user=_password_user(user, password))),
        scope=_scope(user, domain)))
    return iam.keystone_create_user_token_by_password(KeystoneCreateUserTokenByPasswordRequest(body=body))


def _token_by_password_and_mfa(iam, user, totp_user_id, passcode):
    body = KeystoneCreateUserTokenByPasswordAndMfaRequestBody(auth=MfaAuth(
        identity=MfaIdentity(methods=["password", "totp"], password=PwdPassword(user=_password_user(user)),
                             totp=MfaTotp(user=MfaTotpUser(id=totp_user_id, passcode=passcode))),
        scope=_scope(user)))
    return iam.keystone_create_user_token_by_password_and_mfa(
        KeystoneCreateUserTokenByPasswordAndMfaRequest(body=body))


def _refused(call):
    with pytest.raises(ClientRequestException) as error:
        call()
    return error.value


def _bind_mfa(server, user):
    resp = server.signed_request("POST", f"/v1/admin/users/{user['id']}/mfa", body="")
    assert resp.status_code == 201, resp.text
    uri = resp.json()["otpauth_uri"]
    assert uri.startswith("otpauth://totp/jobd:") and "secret=" in uri, uri
    return pyotp.parse_uri(uri)


@pytest.fixture
def project(jobd_regional):
    project_id, _ = jobd_regional.new_scoped_project()
    return project_id


@pytest.fixture
def iam(jobd_regional, project):
    return jobd_regional.iam_client(project)


def test_list_auth_projects_answers_the_callers_projects(jobd_regional, project, iam):
    jobd_regional.new_scoped_project()  # another project, not the key's
    response = iam.keystone_list_auth_projects(KeystoneListAuthProjectsRequest())
    assert [p.id for p in response.projects] == [project]
    assert response.projects[0].enabled is True
    assert response.links._self.endswith("/v3/auth/projects")


def test_a_global_credentials_client_resolves_its_domain_id(jobd_regional, project):
    user = jobd_regional.new_user(project, "gc-" + uuid.uuid4().hex[:8], PASSWORD)
    ak, sk = jobd_regional.key_for(project)
    credentials = GlobalCredentials(ak, sk).with_iam_endpoint(jobd_regional.base_url)  # no domain id
    client = (IamClient.new_builder().with_http_config(_config()).with_credentials(credentials)
              .with_region(Region(JOBD_TEST_REGION, jobd_regional.base_url)).build())
    domains = client.keystone_list_auth_domains(KeystoneListAuthDomainsRequest()).domains
    assert [d.name for d in domains] == [user["domain"]]
    assert credentials.domain_id == domains[0].id, "the core read the first domain's id"
    projects = client.keystone_list_auth_projects(KeystoneListAuthProjectsRequest()).projects
    assert [(p.id, p.domain_id) for p in projects] == [(project, domains[0].id)]


def test_regions_are_the_one_jobd_serves(jobd_regional, iam, jobd, project_id):
    regions = iam.keystone_list_regions(KeystoneListRegionsRequest()).regions
    assert [r.id for r in regions] == [JOBD_TEST_REGION]
    shown = iam.keystone_show_region(KeystoneShowRegionRequest(region_id=JOBD_TEST_REGION)).region
    assert (shown.id, shown.type) == (JOBD_TEST_REGION, "public")
    error = _refused(lambda: iam.keystone_show_region(KeystoneShowRegionRequest(region_id="cn-nowhere-9")))
    assert error.status_code == 404, error
    # Without --region, the region jobd names in its token catalog.
    unconfigured = jobd.iam_client(project_id)
    assert [r.id for r in unconfigured.keystone_list_regions(KeystoneListRegionsRequest()).regions] == ["jobd"]


def test_a_domain_scoped_token_administers_but_reads_no_jobs(jobd_regional, project, iam):
    admin = jobd_regional.new_user(project, "dadmin-" + uuid.uuid4().hex[:8], PASSWORD, role="admin")
    jobd_regional.native_create(project, {"service": "elb", "job_type": "UPGRADE"})
    response = _token_by_password(iam, admin, domain=True)
    token = response.x_subject_token
    body = raw_json(response)["token"]
    assert body["domain"]["name"] == admin["domain"] and "project" not in body, body
    assert body["methods"] == ["password"]
    session, base = jobd_regional.session, jobd_regional.base_url
    headers = {"X-Auth-Token": token}
    users = session.get(f"{base}/v1/admin/users", headers=headers, timeout=5)
    assert users.status_code == 200, users.text
    assert admin["id"] in [u["id"] for u in users.json()["users"]]
    projects = session.get(f"{base}/v3/auth/projects", headers=headers, timeout=5)
    assert [p["id"] for p in projects.json()["projects"]] == [project], projects.text
    domains = session.get(f"{base}/v3/auth/domains", headers=headers, timeout=5)
    assert [d["name"] for d in domains.json()["domains"]] == [admin["domain"]], domains.text
    for path in [f"/v3/{project}/elb/jobs", f"/v1/{project}/jobs"]:
        refused = session.get(base + path, headers=headers, timeout=5)
        assert refused.status_code == 403, (path, refused.text)
        assert refused.json()["error_code"] == "APIGW.0302"
    # Another domain than the user's: refused.
    other = dict(admin, domain="not-" + admin["domain"])
    body = KeystoneCreateUserTokenByPasswordRequestBody(auth=PwdAuth(
        identity=PwdIdentity(methods=["password"], password=PwdPassword(user=_password_user(admin))),
        scope=_scope(other, domain=True)))
    error = _refused(lambda: iam.keystone_create_user_token_by_password(
        KeystoneCreateUserTokenByPasswordRequest(body=body)))
    assert error.status_code == 401, error


def test_virtual_mfa_bind_then_live_code_replay_wrong_user_and_password_alone(jobd_regional, project, iam):
    user = jobd_regional.new_user(project, "mfa-" + uuid.uuid4().hex[:8], PASSWORD)
    other = jobd_regional.new_user(project, "mfa-other-" + uuid.uuid4().hex[:8], PASSWORD)
    # Without a device: password alone works, a totp part is refused.
    assert _token_by_password(iam, user).status_code == 201
    error = _refused(lambda: _token_by_password_and_mfa(iam, user, user["id"], "123456"))
    assert error.status_code == 401, error

    device = _bind_mfa(jobd_regional, user)
    other_device = _bind_mfa(jobd_regional, other)
    listed = jobd_regional.signed_request("GET", "/v1/admin/users").json()["users"]
    assert [u["mfa"] for u in listed if u["id"] == user["id"]] == [True]

    # Bound: password alone is refused, and so are codes that are not the current one.
    error = _refused(lambda: _token_by_password(iam, user))
    assert error.status_code == 401 and "MFA" in error.error_msg, error
    for passcode in ["000000", "not-a-code", ""]:
        if passcode == device.now():
            continue
        error = _refused(lambda: _token_by_password_and_mfa(iam, user, user["id"], passcode))
        assert error.status_code == 401, (passcode, error)
    # Another user's id (with that user's own live code): refused.
    error = _refused(lambda: _token_by_password_and_mfa(iam, user, other["id"], other_device.now()))
    assert error.status_code == 401, error

    # The live code: a token whose methods say what was verified, that reads the project's jobs.
    code = device.now()
    response = _token_by_password_and_mfa(iam, user, user["id"], code)
    assert response.status_code == 201
    assert raw_json(response)["token"]["methods"] == ["password", "totp"]
    jobs = jobd_regional.session.get(f"{jobd_regional.base_url}/v3/{project}/elb/jobs",
                                     headers={"X-Auth-Token": response.x_subject_token}, timeout=5)
    assert jobs.status_code == 200, jobs.text
    # The same code again: used once.
    error = _refused(lambda: _token_by_password_and_mfa(iam, user, user["id"], code))
    assert error.status_code == 401, error

