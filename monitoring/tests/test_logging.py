"""The log a developer reads: each client error once, on one line.

Dev runs with DEBUG on, which turns on Django's own console handler on the
``django`` logger; the records also reach the root handler of ``LOGGING``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
from collections.abc import Callable, Iterator

import pytest
from django.utils.log import configure_logging

from accounts.services.tokens import token_create
from monitoring.log_filters import ClientErrorWithoutTraceback

pytestmark = pytest.mark.django_db


@pytest.fixture
def dev_log(settings) -> Iterator[Callable[[], str]]:
    """Logging as `make run` sets it up (Django's defaults, then LOGGING, with
    DEBUG on), writing to a buffer; the test configuration's comes back after."""
    settings.DEBUG = True
    buffer = io.StringIO()
    with contextlib.redirect_stderr(buffer):  # StreamHandler() takes sys.stderr when made
        configure_logging(settings.LOGGING_CONFIG, settings.LOGGING)
    try:
        yield buffer.getvalue
    finally:
        configure_logging(settings.LOGGING_CONFIG, settings.LOGGING)


def test_a_403_is_one_line_without_a_traceback(client, user, dev_log):
    client.force_login(user)
    assert client.get("/webhooks/").status_code == 403
    lines = dev_log().splitlines()
    assert len(lines) == 1, dev_log()
    assert "Forbidden (Permission denied): /webhooks/" in lines[0]


def test_a_tus_409_is_logged_once(client, user, dev_log):
    tus = {
        "Tus-Resumable": "1.0.0",
        "Authorization": f"Bearer {token_create(user=user, name='t')[1]}",
    }
    created = client.generic("POST", "/api/tus/", headers={**tus, "Upload-Length": "10"})
    assert created.status_code == 201, created.content
    url = created["Location"]

    def patch() -> int:
        return client.generic(
            "PATCH",
            url,
            b"01234",
            content_type="application/offset+octet-stream",
            headers={**tus, "Upload-Offset": "0"},
        ).status_code

    assert patch() == 204
    assert patch() == 409
    conflicts = [line for line in dev_log().splitlines() if "Conflict" in line]
    assert len(conflicts) == 1, dev_log()
    assert "Traceback" not in dev_log()


def test_a_server_error_keeps_its_traceback():
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        exc_info = sys.exc_info()
    records = {
        status: logging.LogRecord("django.request", logging.ERROR, __file__, 1, "x", (), exc_info)
        for status in (403, 500)
    }
    for status, record in records.items():
        record.status_code = status
        assert ClientErrorWithoutTraceback().filter(record)
    assert records[403].exc_info is None
    assert records[500].exc_info == exc_info
