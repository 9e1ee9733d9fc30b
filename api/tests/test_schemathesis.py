"""Property-based run of the whole API against its own OpenAPI schema.

A live server on 127.0.0.1, a real token, real PostgreSQL. Bounded examples per
operation keep it fast enough for CI; no 5xx and no response that disagrees
with the schema (status code, content type, body) is allowed.
"""

from __future__ import annotations

import io

import pytest
import schemathesis
from django.test import Client
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from accounts.models import User
from accounts.services.tokens import token_create
from portal.services.batches import batch_create
from portal.services.uploads import upload_file_create

MAX_EXAMPLES = 25


def _served_schema() -> dict:
    # The document exactly as served at /api/openapi.json (loaded at collection
    # time, before the live server exists; requests then go to the live server).
    return Client().get("/api/openapi.json").json()


schema = schemathesis.openapi.from_dict(_served_schema())
# Unknown query parameters are ignored (forward compatibility), as in most HTTP
# APIs, so schemathesis is told not to expect them to be refused.
schema.config.generation.update(allow_extra_parameters=False)


# Operations whose rules JSON Schema cannot state, so a schema-valid request may
# rightly get 400 (each rule has its own test):
STRICTER_THAN_SCHEMA = {
    # `metadata` is any JSON object, but PostgreSQL cannot store NUL inside
    # jsonb, so "\u0000" anywhere in it is refused (test_files_api).
    ("POST", "/api/files"),
    # A webhook URL must resolve, and only to addresses the SSRF policy allows
    # (test_webhooks_api).
    ("POST", "/api/endpoints"),
    ("PATCH", "/api/endpoints/{endpoint_id}"),
}


@pytest.fixture
def auth_headers(transactional_db) -> dict[str, str]:
    user = User.objects.create_user("fuzz@example.com", "pw-123456", is_staff=True)
    _, raw = token_create(user=user, name="schemathesis")
    # Something to find, so detail/download/delete paths are not all 404s.
    batch = batch_create(owner=user)
    upload_file_create(owner=user, stream=io.BytesIO(b"hello\n"), filename="a.txt", batch=batch)
    return {"Authorization": f"Bearer {raw}"}


@pytest.mark.slow
@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,  # nothing written to .hypothesis/
)
def test_api_conforms_to_its_schema(case, live_server, auth_headers):
    excluded = []
    if (case.method, case.path) in STRICTER_THAN_SCHEMA:
        excluded.append(positive_data_acceptance)
    case.call_and_validate(base_url=live_server.url, headers=auth_headers, excluded_checks=excluded)
