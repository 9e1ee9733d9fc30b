"""``/metrics``: every metric present, counters and gauges move with real work, access rules."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from common.models import WebhookDelivery
from common.services.dispatch import run_deliveries
from common.services.webhooks import endpoint_create
from common.tests.receivers import Reply
from conftest import ROOT

pytestmark = pytest.mark.django_db

EXPECTED = {
    # name as parsed (counters lose their _total suffix): type
    "doorito_upload_files_received": "counter",
    "doorito_upload_bytes_received": "counter",
    "doorito_webhook_delivery_attempts": "counter",
    "doorito_celery_task_runs": "counter",
    "doorito_celery_task_duration_seconds": "histogram",
    "doorito_outbox_pending_deliveries": "gauge",
    "doorito_outbox_oldest_due_age_seconds": "gauge",
    "doorito_webhook_endpoints": "gauge",
    "doorito_webhook_deliveries": "gauge",
    "doorito_webhook_deliveries_estimated": "gauge",
    "doorito_files": "gauge",
    "doorito_files_stored_bytes": "gauge",
    "doorito_beat_last_run_timestamp_seconds": "gauge",
    "doorito_broker_queue_messages": "gauge",
    "doorito_metrics_database_ok": "gauge",
}


def scrape(client, **extra) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics", **extra)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(response.content.decode())}
    for name, kind in EXPECTED.items():
        assert name in families, name
        assert families[name].type == kind, name
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in families.values()
        for s in f.samples
    }


def test_every_metric_is_exposed_and_the_database_was_read(client):
    samples = scrape(client)
    assert samples[("doorito_metrics_database_ok", ())] == 1.0
    assert samples[("doorito_files", (("status", "stored"),))] == 0


def _user():
    from accounts.models import User

    return User.objects.create_user("metrics@example.com", "pw-metrics-1234")


def test_uploads_and_deliveries_move_counters_and_gauges(client, receiver):
    from portal.services.uploads import upload_file_create
    from portal.tests.streams import BytesStream

    before = scrape(client)
    endpoint, _secret = endpoint_create(url=receiver.url("/ok"))
    failing, _ = endpoint_create(url=receiver.url("/down"))
    receiver.script("/down", Reply(status=503))

    upload_file_create(owner=_user(), stream=BytesStream(b"hello metrics"), filename="a.txt")
    pending = scrape(client)
    # file.stored went to both endpoints' outbox.
    assert pending[("doorito_outbox_pending_deliveries", ())] == 2
    assert pending[("doorito_webhook_deliveries", (("status", "pending"),))] == 2
    assert pending[("doorito_files", (("status", "stored"),))] == 1
    assert pending[("doorito_files_stored_bytes", ())] == 13

    # Due a minute ago: the oldest-due gauge sees it.
    WebhookDelivery.objects.update(next_attempt_at=timezone.now() - dt.timedelta(minutes=1))
    assert scrape(client)[("doorito_outbox_oldest_due_age_seconds", ())] >= 60

    run_deliveries(batch_size=20)
    after = scrape(client)

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after[key] - before[key]

    assert delta("doorito_upload_files_received_total", kind="simple") == 1
    assert delta("doorito_upload_bytes_received_total", kind="simple") == 13
    assert delta("doorito_upload_files_received_total", kind="tus") == 0
    assert delta("doorito_webhook_delivery_attempts_total", status_class="2xx") == 1
    assert delta("doorito_webhook_delivery_attempts_total", status_class="5xx") == 1
    assert delta("doorito_webhook_delivery_attempts_total", status_class="error") == 0
    # The 503 is retried later: still pending, its endpoint now failing.
    assert after[("doorito_outbox_pending_deliveries", ())] == 1
    assert after[("doorito_webhook_endpoints", (("state", "failing"),))] == 1
    assert after[("doorito_webhook_endpoints", (("state", "disabled"),))] == 0
    assert after[("doorito_outbox_oldest_due_age_seconds", ())] == 0
    assert endpoint.pk and failing.pk


def test_tus_upload_counts_as_tus(client):
    from portal.services.tus.append import upload_session_append
    from portal.services.tus.sessions import upload_session_create
    from portal.services.tus.values import UploadMetadata

    before = scrape(client)
    user = _user()
    session = upload_session_create(owner=user, length=5, metadata=UploadMetadata())
    upload_session_append(
        owner=user,
        upload_id=session.id,
        offset=0,
        stream=__import__("io").BytesIO(b"12345"),
        content_length=5,
    )
    after = scrape(client)
    key = ("doorito_upload_bytes_received_total", (("kind", "tus"),))
    assert after[key] - before[key] == 5


def test_task_runs_are_counted_with_their_duration(client):
    from common.tasks import ping

    ping.apply()
    samples = scrape(client)
    labels = (("state", "SUCCESS"), ("task", "common.tasks.ping"))
    assert samples[("doorito_celery_task_runs_total", labels)] >= 1
    count = ("doorito_celery_task_duration_seconds_count", (("task", "common.tasks.ping"),))
    assert samples[count] >= 1


def test_beat_last_run_is_a_unix_time_per_entry(client):
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    every = IntervalSchedule.objects.create(every=5, period=IntervalSchedule.MINUTES)
    ran = timezone.now() - dt.timedelta(minutes=3)
    PeriodicTask.objects.create(name="sweep", task="x", interval=every, last_run_at=ran)
    PeriodicTask.objects.create(name="never", task="y", interval=every)
    samples = scrape(client)
    key = ("doorito_beat_last_run_timestamp_seconds", (("entry", "sweep"),))
    assert samples[key] == pytest.approx(ran.timestamp())
    assert ("doorito_beat_last_run_timestamp_seconds", (("entry", "never"),)) not in samples


# --- access -----------------------------------------------------------------------


def test_an_address_outside_the_allow_list_is_refused(client, settings):
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.7").status_code == 403
    settings.METRICS_ALLOWED_NETWORKS = ["203.0.113.0/24"]
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.7").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 403


def test_a_configured_token_is_required_from_any_address(client, settings):
    settings.METRICS_TOKEN = "s3cret-scrape-token"
    for headers in ({}, {"HTTP_AUTHORIZATION": "Bearer wrong"}, {"HTTP_AUTHORIZATION": "Basic x"}):
        response = client.get("/metrics", **headers)
        assert response.status_code == 401, headers
        assert response["WWW-Authenticate"].startswith("Bearer")
    ok = client.get(
        "/metrics", REMOTE_ADDR="203.0.113.7", HTTP_AUTHORIZATION="Bearer s3cret-scrape-token"
    )
    assert ok.status_code == 200


def test_a_plain_http_scrape_is_not_redirected_when_production_forces_https(client):
    """Prometheus scrapes over the internal network in plain HTTP and does not
    follow a redirect to the public HTTPS name: ``/metrics`` must answer as is."""
    from django.test import override_settings

    from boot.settings import Production

    with override_settings(
        SECURE_SSL_REDIRECT=True,
        SECURE_REDIRECT_EXEMPT=Production.SECURE_REDIRECT_EXEMPT,
        METRICS_TOKEN="s3cret-scrape-token",
    ):
        scrape = client.get(
            "/metrics", REMOTE_ADDR="10.0.0.9", HTTP_AUTHORIZATION="Bearer s3cret-scrape-token"
        )
        page = client.get("/login/", REMOTE_ADDR="10.0.0.9")
    assert scrape.status_code == 200
    assert "doorito_metrics_database_ok" in scrape.content.decode()
    assert page.status_code == 301
    assert page["Location"].startswith("https://")


# --- multiprocess mode ------------------------------------------------------------

RECORD = """
from monitoring.metrics.instruments import record_delivery_attempts, record_upload_stored
record_upload_stored(kind="simple", size=10)
record_delivery_attempts([200, 200, None])
"""

RENDER = """
import os
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
registry = CollectorRegistry()
MultiProcessCollector(registry, path=os.environ["PROMETHEUS_MULTIPROC_DIR"])
print(generate_latest(registry).decode())
"""


@pytest.mark.processes
def test_multiprocess_mode_sums_what_every_process_counted(tmp_path):
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for _ in range(2):  # two "workers", each its own process
        subprocess.run([sys.executable, "-c", RECORD], cwd=ROOT, env=env, check=True, timeout=60)
    out = subprocess.run(
        [sys.executable, "-c", RENDER],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=60,
        capture_output=True,
        text=True,
    ).stdout
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(out)
        for s in f.samples
    }
    assert samples[("doorito_upload_bytes_received_total", (("kind", "simple"),))] == 20
    assert samples[("doorito_webhook_delivery_attempts_total", (("status_class", "2xx"),))] == 4
    assert samples[("doorito_webhook_delivery_attempts_total", (("status_class", "error"),))] == 2


def test_a_scrape_folds_the_file_totals_when_they_pile_up(client, monkeypatch):
    from accounts.models import User
    from monitoring.metrics import collector
    from portal.models import FileTotalsDelta
    from portal.services.uploads import upload_file_create
    from portal.tests.streams import BytesStream

    owner = User.objects.create_user("fold@example.com", "pw-fold-12345")
    for i in range(4):
        upload_file_create(owner=owner, stream=BytesStream(b"z" * i), filename=f"{i}.txt")
    assert FileTotalsDelta.objects.count() > 1
    monkeypatch.setattr(collector, "FOLD_FILE_TOTALS_OVER", 1)
    before = scrape(client)
    assert FileTotalsDelta.objects.count() == 1  # one status: stored
    after = scrape(client)
    assert before[("doorito_files", (("status", "stored"),))] == 4
    assert (
        after[("doorito_files_stored_bytes", ())] == before[("doorito_files_stored_bytes", ())] == 6
    )
