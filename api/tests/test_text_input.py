"""Text PostgreSQL cannot store (NUL, unpaired surrogates) is a 400 naming the field.

The bodies are written by hand: ``"\\ud800"`` is valid JSON that decodes to a
lone surrogate, which neither UTF-8 text columns nor jsonb accept.
"""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from accounts.models import ApiToken
from api.tests.conftest import assert_error
from common.models import WebhookEndpoint
from portal.models import UploadBatch, UploadFile

pytestmark = pytest.mark.django_db

LONE = "\\ud800"  # as written in a JSON document
NUL = "\\u0000"


def post_raw(client, path: str, body: str, method: str = "post"):
    return getattr(client, method)(path, body.encode(), content_type="application/json")


def field_named(error: dict, field: str) -> bool:
    text = json.dumps(error)
    return f'"{field}"' in text


@pytest.mark.parametrize("bad", [LONE, NUL, "a" + LONE + "b", "\\udc00"])
@pytest.mark.parametrize(
    ("template", "field"),
    [
        ('{"metadata": {"note": "%s"}}', "metadata"),
        ('{"metadata": {"%s": 1}}', "metadata"),
        ('{"metadata": {"list": [1, {"deep": "%s"}]}}', "metadata"),
        ('{"idempotency_key": "k%s"}', "idempotency_key"),
    ],
)
def test_batch_create_refuses_unstorable_text(api, bad, template, field):
    error = assert_error(post_raw(api, "/api/batches", template % bad), 400, "validation_error")
    assert field_named(error, field)
    assert not UploadBatch.objects.exists()


def test_a_valid_surrogate_pair_is_ordinary_text(api):
    response = post_raw(api, "/api/batches", '{"metadata": {"emoji": "\\ud83d\\ude00"}}')
    assert response.status_code == 201, response.content
    assert response.json()["metadata"] == {"emoji": "\U0001f600"}


@pytest.mark.parametrize("bad", [LONE, NUL])
def test_upload_metadata_refuses_unstorable_text(api, bad):
    response = api.post(
        "/api/files",
        {
            "file": SimpleUploadedFile("a.txt", b"hello\n", "text/plain"),
            "metadata": f'{{"note": "x{bad}"}}',
        },
    )
    error = assert_error(response, 400, "validation_error")
    assert error["details"]["field"] == "metadata"
    assert not UploadFile.objects.exists()


@pytest.mark.parametrize("bad", [LONE, NUL])
def test_token_name_refuses_unstorable_text(api, bad):
    before = ApiToken.objects.count()
    error = assert_error(post_raw(api, "/api/tokens", f'{{"name": "lap{bad}top"}}'), 400)
    assert field_named(error, "name")
    assert ApiToken.objects.count() == before


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (f'{{"url": "http://127.0.0.1:9/hook", "description": "ok{LONE}"}}', "description"),
        (f'{{"url": "http://127.0.0.1:9/ho{LONE}ok"}}', "url"),
        (f'{{"url": "http://127.0.0.1:9/ho{NUL}ok"}}', "url"),
    ],
)
def test_endpoint_fields_refuse_unstorable_text(staff_api, raw, field):
    error = assert_error(post_raw(staff_api, "/api/endpoints", raw), 400)
    assert field_named(error, field)
    assert not WebhookEndpoint.objects.exists()


def test_endpoint_update_refuses_unstorable_description(staff_api):
    created = staff_api.post(
        "/api/endpoints", {"url": "http://127.0.0.1:9/h"}, content_type="application/json"
    ).json()
    raw = f'{{"description": "x{LONE}"}}'
    error = assert_error(post_raw(staff_api, f"/api/endpoints/{created['id']}", raw, "patch"), 400)
    assert field_named(error, "description")
    assert WebhookEndpoint.objects.get().description == ""
