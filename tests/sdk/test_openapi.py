"""jobd's /openapi.json checked by an independent validator (openapi-spec-validator)."""

from openapi_spec_validator import validate


def test_openapi_document_is_valid(jobd):
    resp = jobd.session.get(jobd.base_url + "/openapi.json", timeout=10)
    assert resp.status_code == 200
    document = resp.json()
    assert document["openapi"].startswith("3.1")
    validate(document)  # raises on any violation of the OpenAPI 3.1 schema
    assert "/v3/{project_id}/elb/jobs/{job_id}" in document["paths"]
