"""Shared fixtures for the SDK conformance suite.

One jobd server per pytest session; every test gets a fresh random project id so
tests never see each other's jobs. Dialect reads go through the OFFICIAL Huawei
Cloud Python SDKs (CfwClient / WafClient / ElbClient v3) pointed at the local
server with ``with_endpoints``; the native API (``/v1/{project_id}/jobs``) is
called with ``requests``, signed by the SDK core's own ``Signer`` (via
``BasicCredentials.sign_request``), exactly as the SDK signs its own calls.

Environment:
  JOBD_BIN        path of the jobd binary (default <repo>/target/debug/jobd)
  JOBD_KEEP_DATA  if set, keep the server's temporary data dir (and its log) after the run
"""

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests

from jobd_testlib import (REPO, ROOT_AK, ROOT_SK, HEALTH_TIMEOUT_S, JOBD_TEST_REGION, JobdServer,
                          new_project_id, wait_until)


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _jobd_bin():
    return Path(os.environ.get("JOBD_BIN") or (REPO / "target" / "debug" / "jobd"))


# ---------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------

_SERVER = None  # the JobdServer of this session, for the failure-report hook


@contextlib.contextmanager
def _running_jobd(extra_env=None):
    """A jobd server on a free port with a fresh data dir (and the caller's environment, so a
    JOBD_DATABASE_URL puts it on PostgreSQL), stopped afterwards."""
    binary = _jobd_bin()
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        pytest.fail(f"jobd binary not found or not executable: {binary} "
                    f"(build it with `cargo build -p jobd` or set JOBD_BIN)", pytrace=False)

    data_dir = tempfile.mkdtemp(prefix="jobd-sdk-tests-")
    stderr_path = os.path.join(data_dir, "jobd.stderr.log")
    port = _free_port()
    env = dict(os.environ)
    env["JOBD_ROOT_ACCESS_KEY"] = ROOT_AK
    env["JOBD_ROOT_SECRET_KEY"] = ROOT_SK
    env.setdefault("RUST_BACKTRACE", "1")
    env.setdefault("NO_COLOR", "1")
    env.update(extra_env or {})
    stderr_fh = open(stderr_path, "wb")
    cmd = [str(binary), "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data_dir]
    proc = subprocess.Popen(cmd, stdout=stderr_fh, stderr=stderr_fh, stdin=subprocess.DEVNULL, env=env)
    server = JobdServer(f"http://127.0.0.1:{port}", proc, stderr_path)

    deadline = time.monotonic() + HEALTH_TIMEOUT_S
    last_err = None
    while True:
        if proc.poll() is not None:
            stderr_fh.close()
            pytest.fail(f"jobd exited early with code {proc.returncode}: {' '.join(cmd)}\n"
                        f"--- jobd output ---\n{server.stderr_since(0)}", pytrace=False)
        try:
            r = server.session.get(server.base_url + "/healthz", timeout=1)
            if r.status_code == 200:
                break
            last_err = f"HTTP {r.status_code}: {r.text[:200]}"
        except requests.RequestException as e:  # not listening yet
            last_err = repr(e)
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            stderr_fh.close()
            pytest.fail(f"jobd did not answer GET /healthz with 200 within {HEALTH_TIMEOUT_S}s "
                        f"(last: {last_err})\n--- jobd output ---\n{server.stderr_since(0)}", pytrace=False)
        time.sleep(0.05)

    try:
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        stderr_fh.close()
        server.session.close()
        if os.environ.get("JOBD_KEEP_DATA"):
            print(f"\njobd data dir kept: {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def jobd():
    """The session's server: no region configured (`--region` / JOBD_REGION unset)."""
    global _SERVER
    with _running_jobd({"JOBD_REGION": ""}) as server:
        _SERVER = server
        try:
            yield server
        finally:
            _SERVER = None


@pytest.fixture(scope="module")
def jobd_regional():
    """A second server, started with JOBD_REGION (derived, V11-HMAC-SHA256, signing verifies for
    it) and without the per-address token-request throttle (the IAM tests ask for many tokens)."""
    with _running_jobd({"JOBD_REGION": JOBD_TEST_REGION, "JOBD_PASSWORD_ATTEMPTS_PER_MINUTE": "0"}) as server:
        yield server


@pytest.fixture
def project_id(jobd):
    """A fresh project per test, registered through the admin API with a producer credential
    scoped to it: every SDK call and native call of the test uses that credential, not root."""
    project_id, _name = jobd.new_scoped_project()
    return project_id


@pytest.fixture(name="wait_until")
def wait_until_fixture():
    return wait_until


@pytest.fixture
def cfw(jobd, project_id):
    return jobd.cfw_client(project_id)


@pytest.fixture
def waf(jobd, project_id):
    return jobd.waf_client(project_id)


@pytest.fixture
def elb(jobd, project_id):
    return jobd.elb_client(project_id)


@pytest.fixture
def native_create(jobd, project_id):
    """native_create(body) in this test's project (or native_create(body, project_id=...))."""
    def create(body, project_id=project_id):
        return jobd.native_create(project_id, body)
    return create


@pytest.fixture
def native_get(jobd, project_id):
    def get(job_id, project_id=project_id):
        return jobd.native_get(project_id, job_id)
    return get


# ---------------------------------------------------------------------------
# on failure: attach what jobd printed while the test ran
# ---------------------------------------------------------------------------

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    item._jobd_stderr_offset = _SERVER.stderr_size() if _SERVER else 0
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and _SERVER is not None:
        text = _SERVER.stderr_since(getattr(item, "_jobd_stderr_offset", 0))
        if text.strip():
            rep.sections.append(("jobd stderr (during this test)", text))
