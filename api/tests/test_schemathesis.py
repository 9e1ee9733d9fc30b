"""Property-based run of the whole API against its own OpenAPI schema.

A live server on 127.0.0.1, a real token, real PostgreSQL. Bounded examples per
operation keep it fast enough for CI; no 5xx and no response that disagrees
with the schema (status code, content type, body) is allowed.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.test import Client
from hypothesis import HealthCheck, given, settings
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
    # jsonb, so "\u0000" anywhere in it is refused (test_files_api); the same
    # for a batch's metadata and idempotency key (portal/tests/test_batches).
    # Nesting deeper than 32 levels is refused too (test_json_input).
    ("POST", "/api/files"),
    ("POST", "/api/batches"),
    # A webhook URL must resolve, and only to addresses the SSRF policy allows
    # (test_webhooks_api).
    ("POST", "/api/endpoints"),
    ("PATCH", "/api/endpoints/{endpoint_id}"),
    # A `cursor` must be a page's `next` as the API gave it out, and comes
    # without `offset` (test_files_pages).
    ("GET", "/api/files"),
    ("GET", "/api/batches/{batch_id}/files"),
}


@pytest.fixture
def auth_headers(transactional_db) -> dict[str, str]:
    user = User.objects.create_user("fuzz@example.com", "pw-123456", is_staff=True)
    _, raw = token_create(user=user, name="schemathesis")
    # Something to find, so detail/download/delete paths are not all 404s.
    batch = batch_create(owner=user)
    upload_file_create(owner=user, stream=io.BytesIO(b"hello\n"), filename="a.txt", batch=batch)
    return {"Authorization": f"Bearer {raw}"}


@pytest.fixture
def settled_server(live_server, transactional_db) -> Iterator[str]:
    """The live server's URL; at teardown, waits until it has finished every request.

    A request whose client gave up (a fuzzed body the server refused half
    way) is still being handled in a server thread when the client has its
    answer: removing its half-made upload then raced the test database's
    flush (TRUNCATE) and deadlocked with it.
    """
    busy = [0]
    changed = threading.Condition()

    def started(**kwargs) -> None:
        with changed:
            busy[0] += 1

    def finished(**kwargs) -> None:
        with changed:
            busy[0] -= 1
            changed.notify_all()

    request_started.connect(started, weak=False)
    request_finished.connect(finished, weak=False)
    try:
        yield live_server.url
        deadline = time.monotonic() + 30
        with changed:
            while busy[0] > 0 and time.monotonic() < deadline:
                changed.wait(0.1)
    finally:
        request_started.disconnect(started)
        request_finished.disconnect(finished)


# One test per operation, named by it ("GET /api/files"). schemathesis's own
# ``schema.parametrize()`` gives all of them one node id, and pytest-xdist
# tells items apart by node id: it ran one operation of the 26.
OPERATIONS = {
    op.label: op
    for op in (result.ok() for result in schema.get_all_operations())  # type: ignore[union-attr]
}


@pytest.mark.slow
@pytest.mark.parametrize("label", sorted(OPERATIONS))
def test_api_conforms_to_its_schema(label, settled_server, auth_headers):
    operation = OPERATIONS[label]
    excluded = []
    if (operation.method.upper(), operation.path) in STRICTER_THAN_SCHEMA:
        excluded.append(positive_data_acceptance)

    @given(case=operation.as_strategy())
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,  # nothing written to .hypothesis/
    )
    def conforms(case) -> None:
        case.call_and_validate(
            base_url=settled_server, headers=auth_headers, excluded_checks=excluded
        )

    conforms()
