"""End to end with a real Celery worker, a real beat and a real clamd: a file
received while clamd is away waits in ``scanning`` and is stored within a
minute of clamd's return, by the sweep alone; an infected one is quarantined
by the worker."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from api.tests.conftest import ApiClient
from common.models import OutboxEvent
from conftest import kill_process, start_beat, start_worker, wait_for_ping, wait_until
from portal.models import UploadFile
from scripts.private_clamd import EICAR, SIGNATURE

pytestmark = [pytest.mark.processes, pytest.mark.django_db(transaction=True)]


def _status(file_id) -> str:
    return UploadFile.objects.get(pk=file_id).status


def test_held_files_are_stored_within_a_minute_of_clamds_return(tmp_path, clamd, user):
    from accounts.services.tokens import token_create

    api = ApiClient(token_create(user=user, name="t")[1])
    clamd.stop()
    env = {"CLAMD_URL": clamd.url}
    worker = start_worker(tmp_path, **env)
    beat = start_beat(tmp_path, **env)
    try:
        wait_for_ping(worker)
        body = api.post(
            "/api/files", {"file": SimpleUploadedFile("a.txt", b"held\n", "text/plain")}
        ).json()
        assert body["status"] == "scanning"
        # The worker tried (clamd away) and holds it.
        wait_until(
            lambda: (
                "Waiting for the virus scanner"
                in UploadFile.objects.get(pk=body["id"]).error_message
            ),
            timeout=60,
            what="the worker to hold the file",
        )
        assert _status(body["id"]) == "scanning"

        clamd.start()
        # Backoff (at most 30 s) and the 15 s sweep: stored inside a minute.
        wait_until(lambda: _status(body["id"]) == "stored", timeout=60, what="the held file")
        assert OutboxEvent.objects.filter(aggregate_id=body["id"], event_type="file.stored")

        infected = api.post(
            "/api/files", {"file": SimpleUploadedFile("e.com", EICAR, "text/plain")}
        ).json()
        wait_until(lambda: _status(infected["id"]) == "quarantined", timeout=60, what="EICAR")
        assert UploadFile.objects.get(pk=infected["id"]).scan_signature == SIGNATURE
    finally:
        kill_process(beat.proc)
        kill_process(worker.proc)
