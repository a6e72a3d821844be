"""Identity through the official SDKs: scoped credentials, roles, and an SDK configured without a
project id resolving it through jobd's IAM-compatible `GET /v3/projects?name=`."""

import pytest
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions import exceptions
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdkcore.region.region import Region
from huaweicloudsdkelb.v3 import ElbClient, ShowJobRequest, ListJobsRequest


def _elb_client_resolving_project(jobd, ak, sk, region_id):
    config = HttpConfig.get_default_config()
    config.timeout = (5, 20)
    credentials = BasicCredentials(ak, sk).with_iam_endpoint(jobd.base_url)  # no project id
    return (ElbClient.new_builder()
            .with_http_config(config)
            .with_credentials(credentials)
            .with_region(Region(region_id, jobd.base_url))
            .build())


def test_sdk_without_project_id_resolves_it_by_region_name(jobd):
    project_id, name = jobd.new_scoped_project()
    job = jobd.native_create(project_id, {"service": "elb", "job_type": "UPGRADE"})
    ak, sk = jobd.key_for(project_id)
    client = _elb_client_resolving_project(jobd, ak, sk, name)
    response = client.show_job(ShowJobRequest(job_id=job["job_id"]))
    assert response.job.job_id == job["job_id"]
    assert response.job.project_id == project_id


def test_a_scoped_credential_cannot_read_another_project(jobd):
    mine, _ = jobd.new_scoped_project()
    theirs, _ = jobd.new_scoped_project()
    job = jobd.native_create(theirs, {"service": "elb", "job_type": "UPGRADE"})
    ak, sk = jobd.key_for(mine)
    client = jobd.elb_client(theirs, ak=ak, sk=sk)
    with pytest.raises(exceptions.ClientRequestException) as error:
        client.show_job(ShowJobRequest(job_id=job["job_id"]))
    assert error.value.status_code == 403
    assert error.value.error_code == "APIGW.0302"
    assert error.value.request_id


def test_a_reader_reads_but_cannot_create(jobd):
    project_id, _ = jobd.new_scoped_project(role="reader")
    reader_ak, reader_sk = jobd.key_for(project_id)
    client = jobd.elb_client(project_id, ak=reader_ak, sk=reader_sk)
    assert client.list_jobs(ListJobsRequest(limit=5)).page_info.current_count == 0
    resp = jobd.signed_request("POST", f"/v1/{project_id}/jobs", project_id,
                               body={"service": "elb", "job_type": "UPGRADE"})
    assert resp.status_code == 403, resp.text
