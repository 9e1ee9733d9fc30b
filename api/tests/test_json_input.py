"""JSON the database cannot store, or a parser cannot read safely, is a 400
naming the field (issue #21, item 5).

``NaN``, ``Infinity`` and ``-Infinity`` are not JSON (RFC 8259), but Python's
json module reads them, and PostgreSQL's jsonb refuses them: a database error
(500) after other work was done. Nesting is read recursively: 50 000 levels
raised RecursionError (500). The bodies are written by hand, as a client
would send them.
"""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from api.tests.conftest import assert_error
from common.models import WebhookEndpoint
from common.services.json_input import MAX_JSON_DEPTH
from portal.models import UploadBatch, UploadFile

pytestmark = pytest.mark.django_db

NON_FINITE = ["NaN", "Infinity", "-Infinity", "1e999", "-1e999"]
DEEP = 50_000


def _deep(levels: int) -> str:
    return "[" * levels + "]" * levels


def post_json(client, path: str, body: str):
    return client.post(path, body.encode(), content_type="application/json")


def upload(client, metadata: str):
    return client.post(
        "/api/files",
        {"file": SimpleUploadedFile("a.txt", b"hello\n", "text/plain"), "metadata": metadata},
    )


def assert_names(error: dict, field: str, path: str | None = None) -> None:
    assert error["details"]["field"] == field, error
    if path is not None:
        assert error["details"]["path"] == path, error


@pytest.mark.parametrize("number", NON_FINITE)
def test_batch_metadata_refuses_non_finite_numbers(api, number):
    response = post_json(api, "/api/batches", '{"metadata": {"x": ' + number + "}}")
    error = assert_error(response, 400, "validation_error")
    assert_names(error, "metadata", "x")
    assert not UploadBatch.objects.exists()


@pytest.mark.parametrize("number", NON_FINITE)
def test_upload_metadata_refuses_non_finite_numbers(api, number):
    error = assert_error(upload(api, '{"a": [1, ' + number + "]}"), 400, "validation_error")
    assert_names(error, "metadata", "a[1]")
    assert not UploadFile.objects.exists()


def test_batch_metadata_nested_too_deep_is_refused(api):
    response = post_json(api, "/api/batches", '{"metadata": {"x": ' + _deep(DEEP) + "}}")
    error = assert_error(response, 400, "validation_error")
    assert_names(error, "metadata")
    assert str(MAX_JSON_DEPTH) in error["message"]
    assert not UploadBatch.objects.exists()


def test_upload_metadata_nested_too_deep_is_refused(api):
    error = assert_error(upload(api, '{"x": ' + _deep(DEEP) + "}"), 400, "validation_error")
    assert_names(error, "metadata")
    assert str(MAX_JSON_DEPTH) in error["message"]
    assert not UploadFile.objects.exists()


def test_upload_metadata_just_too_deep_is_refused(api):
    # Deep enough to exceed the limit, far from Python's recursion limit.
    error = assert_error(
        upload(api, '{"x": ' + _deep(MAX_JSON_DEPTH) + "}"), 400, "validation_error"
    )
    assert_names(error, "metadata", "x" + "[0]" * (MAX_JSON_DEPTH - 1))


def test_metadata_at_the_depth_limit_is_accepted(api):
    response = upload(api, '{"x": ' + _deep(MAX_JSON_DEPTH - 1) + "}")
    assert response.status_code == 201, response.content
    batch = post_json(api, "/api/batches", '{"metadata": {"x": ' + _deep(MAX_JSON_DEPTH - 1) + "}}")
    assert batch.status_code == 201, batch.content


def test_every_json_body_has_the_depth_limit(staff_api):
    """The limit is in the API's one body parser, not in each schema."""
    body = '{"url": "https://example.com/hook", "description": ' + _deep(DEEP) + "}"
    error = assert_error(post_json(staff_api, "/api/endpoints", body), 400, "validation_error")
    assert_names(error, "description")
    assert not WebhookEndpoint.objects.exists()


def test_every_json_body_refuses_non_finite_numbers(staff_api):
    body = '{"url": "https://example.com/hook", "event_types": [NaN]}'
    error = assert_error(post_json(staff_api, "/api/endpoints", body), 400, "validation_error")
    assert_names(error, "event_types", "[0]")


def test_a_body_that_is_itself_too_deep_names_the_body(api):
    error = assert_error(post_json(api, "/api/batches", _deep(DEEP)), 400, "validation_error")
    assert_names(error, "body")


def test_ordinary_numbers_still_pass(api):
    response = post_json(api, "/api/batches", '{"metadata": {"x": 1.5e300, "y": -0.0, "z": 10}}')
    assert response.status_code == 201, response.content
    assert response.json()["metadata"] == {"x": 1.5e300, "y": -0.0, "z": 10}
