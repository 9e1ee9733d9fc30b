"""emit_event: written in the caller's transaction, idempotent, scheduled on commit."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from django.db import transaction

from common.models import OutboxEvent, WebhookDelivery, WebhookEndpoint
from common.services.emit import emit_event

pytestmark = pytest.mark.django_db


def _endpoint(url="http://127.0.0.1:9/hook", event_types=None, is_active=True):
    return WebhookEndpoint.objects.create(
        url=url,
        secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        event_types=event_types or [],
        is_active=is_active,
    )


def test_emit_writes_event_and_one_delivery_per_subscribed_endpoint(
    django_capture_on_commit_callbacks,
):
    all_types = _endpoint()
    stored_only = _endpoint(event_types=["file.stored"])
    _endpoint(event_types=["batch.completed"])
    _endpoint(is_active=False)
    file_id = uuid.uuid4()

    with django_capture_on_commit_callbacks() as callbacks:
        event = emit_event(
            event_type="file.stored",
            aggregate_type="file",
            aggregate_id=file_id,
            payload={"id": file_id, "at": dt.datetime(2026, 1, 1, tzinfo=dt.UTC)},
        )

    assert len(callbacks) == 1
    row = OutboxEvent.objects.get(pk=event.pk)
    assert row.idempotency_key == f"file:{file_id}"
    assert row.payload == {"id": str(file_id), "at": "2026-01-01T00:00:00Z"}
    assert row.status == OutboxEvent.Status.PENDING
    assert set(WebhookDelivery.objects.values_list("endpoint_id", flat=True)) == {
        all_types.id,
        stored_only.id,
    }


def test_duplicate_key_returns_none_and_keeps_the_transaction_usable():
    _endpoint()
    with transaction.atomic():
        first = emit_event(
            event_type="file.expiring", aggregate_type="file", aggregate_id="f1", payload={"n": 1}
        )
        second = emit_event(
            event_type="file.expiring", aggregate_type="file", aggregate_id="f1", payload={"n": 2}
        )
        # The transaction still works after the duplicate.
        third = emit_event(
            event_type="file.deleted", aggregate_type="file", aggregate_id="f1", payload={"n": 3}
        )
    assert first is not None and second is None and third is not None
    assert OutboxEvent.objects.filter(event_type="file.expiring").count() == 1
    assert WebhookDelivery.objects.count() == 2


def test_explicit_idempotency_key_and_one_commit_callback_per_transaction(
    django_capture_on_commit_callbacks,
):
    _endpoint()
    with django_capture_on_commit_callbacks() as callbacks, transaction.atomic():
        emit_event(
            event_type="batch.completed",
            aggregate_type="batch",
            aggregate_id="b",
            payload={},
            idempotency_key="a",
        )
        emit_event(
            event_type="batch.completed",
            aggregate_type="batch",
            aggregate_id="b",
            payload={},
            idempotency_key="b",
        )
    assert len(callbacks) == 1
    assert OutboxEvent.objects.count() == 2


def test_unserializable_payload_fails_at_emit():
    with pytest.raises(TypeError):
        emit_event(
            event_type="file.stored",
            aggregate_type="file",
            aggregate_id="x",
            payload={"bad": object()},
        )
    assert not OutboxEvent.objects.exists()


def test_no_subscriber_means_nothing_to_deliver(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        event = emit_event(
            event_type="file.stored", aggregate_type="file", aggregate_id="y", payload={}
        )
    assert callbacks == []
    # #23.3: nobody received it, so it is not "delivered".
    stored = OutboxEvent.objects.get(pk=event.pk)
    assert stored.status == event.status == OutboxEvent.Status.NO_SUBSCRIBERS
    assert stored.get_status_display() == "No subscribers"
    assert stored.delivered_at is None and event.delivered_at is None


def test_rolled_back_transaction_leaves_nothing(django_capture_on_commit_callbacks):
    _endpoint()
    with (
        django_capture_on_commit_callbacks() as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        emit_event(event_type="file.stored", aggregate_type="file", aggregate_id="z", payload={})
        raise RuntimeError
    assert callbacks == []
    assert not OutboxEvent.objects.exists()
    assert not WebhookDelivery.objects.exists()


def test_nul_in_payload_is_refused_before_sql_and_the_transaction_survives():
    with transaction.atomic():
        with pytest.raises(ValueError):
            emit_event(
                event_type="file.stored",
                aggregate_type="file",
                aggregate_id="n",
                payload={"name": "a\x00b"},
            )
        assert (
            emit_event(
                event_type="file.stored", aggregate_type="file", aggregate_id="ok", payload={}
            )
            is not None
        )
    assert OutboxEvent.objects.count() == 1


def test_emit_events_writes_many_skips_used_keys_and_fans_out():
    from django.db import connection

    from common.services.emit import NewEvent, emit_events
    from common.services.scheduling import _run_now

    a = _endpoint()
    b = _endpoint(event_types=["file.deleted"])
    _endpoint(event_types=["file.stored"])
    emit_event(
        event_type="file.deleted",
        aggregate_type="file",
        aggregate_id="f0",
        payload={"id": "f0"},
        idempotency_key="f0",
    )
    specs = [
        NewEvent(
            aggregate_type="file",
            aggregate_id=f"f{i}",
            payload={"id": f"f{i}"},
            idempotency_key=f"f{i}",
        )
        for i in range(5)
    ]
    with transaction.atomic():
        written = emit_events(event_type="file.deleted", events=specs)
        again = emit_events(event_type="file.deleted", events=specs)
    assert (written, again) == (4, 0)
    # One delivery run requested for the whole transaction.
    assert [f for _, f, _ in connection.run_on_commit].count(_run_now) == 1
    events = OutboxEvent.objects.filter(event_type="file.deleted")
    assert sorted(events.values_list("idempotency_key", flat=True)) == [f"f{i}" for i in range(5)]
    assert OutboxEvent.objects.get(idempotency_key="f3").payload == {"id": "f3"}
    assert WebhookDelivery.objects.count() == 5 * 2
    assert set(WebhookDelivery.objects.values_list("endpoint_id", flat=True)) == {a.id, b.id}


def test_emit_events_refuses_nul_before_any_sql():
    from common.services.emit import NewEvent, emit_events

    with pytest.raises(ValueError, match="NUL"):
        emit_events(
            event_type="file.deleted",
            events=[
                NewEvent(
                    aggregate_type="file",
                    aggregate_id="x",
                    payload={"n": "a\x00"},
                    idempotency_key="x",
                )
            ],
        )
    assert not OutboxEvent.objects.exists()


def test_delivery_rows_written_in_sql_get_time_ordered_uuid7_ids():
    _endpoint()
    _endpoint()
    before = dt.datetime.now(dt.UTC)
    event = emit_event(
        event_type="file.stored", aggregate_type="file", aggregate_id=uuid.uuid4(), payload={}
    )
    ids = list(WebhookDelivery.objects.filter(event_id=event.id).values_list("id", flat=True))
    assert len(ids) == 2
    for delivery_id in ids:
        assert delivery_id.version == 7
        millis = int(delivery_id.hex[:12], 16)
        made = dt.datetime.fromtimestamp(millis / 1000, dt.UTC)
        assert before - dt.timedelta(seconds=5) < made < before + dt.timedelta(seconds=60)


def test_the_uuid7_migration_reverses(django_db_blocker):
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    def has_function() -> bool:
        with connection.cursor() as cursor:
            cursor.execute("SELECT to_regprocedure('common_uuid7()') IS NOT NULL")
            return cursor.fetchone()[0]

    executor = MigrationExecutor(connection)
    executor.migrate([("common", "0001_initial")])
    assert not has_function()
    executor = MigrationExecutor(connection)
    executor.migrate([("common", "0002_uuid7_function")])
    assert has_function()


def test_emit_runs_as_a_prepared_statement_and_a_claim_does_not(receiver):
    from django.db import connection

    from common.services.claims import claim_due_deliveries
    from common.services.webhooks import endpoint_create

    endpoint_create(url=receiver.url("/a"))
    for i in range(3):
        emit_event(
            event_type="file.stored", aggregate_type="file", aggregate_id=f"p{i}", payload={}
        )
    claim_due_deliveries(batch_size=20)
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [s for (s,) in cursor.fetchall()]
    assert sum("INSERT INTO common_outboxevent" in s for s in prepared) == 1
    assert not any("common_webhookdelivery d" in s and "lease" in s for s in prepared)


@pytest.mark.django_db(transaction=True)
def test_a_commit_queues_no_second_delivery_run_while_one_waits(receiver):
    """A queued run not yet fetched claims after the commit: it takes this event too."""
    from django.db import connection

    from boot.celery import app
    from common.services.webhooks import endpoint_create

    def runs_queued() -> tuple[int, int]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FILTER (WHERE visible), count(*) FROM kombu_message"
                " WHERE payload LIKE '%%common.tasks.deliver_outbox_events_task%%'"
            )
            return cursor.fetchone()

    app.control.purge()
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM kombu_message")
    endpoint_create(url=receiver.url("/a"))
    with transaction.atomic():
        emit_event(event_type="file.stored", aggregate_type="file", aggregate_id="c1", payload={})
    assert runs_queued() == (1, 1)
    with transaction.atomic():
        emit_event(event_type="file.stored", aggregate_type="file", aggregate_id="c2", payload={})
    assert runs_queued() == (1, 1)
    with connection.cursor() as cursor:  # a worker fetched the run
        cursor.execute("UPDATE kombu_message SET visible = false")
    with transaction.atomic():
        emit_event(event_type="file.stored", aggregate_type="file", aggregate_id="c3", payload={})
    assert runs_queued() == (1, 2)
    app.control.purge()


@pytest.mark.parametrize("number", [float("nan"), float("inf"), float("-inf")])
def test_emit_event_refuses_non_finite_numbers_before_any_sql(number):
    """jsonb has no NaN or Infinity: a payload holding one fails where it is
    made (ValueError), not as a database error that aborts the transaction."""
    from common.services.emit import emit_event

    with pytest.raises(ValueError, match="JSON compliant"):
        emit_event(
            event_type="file.deleted",
            aggregate_type="file",
            aggregate_id="x",
            payload={"metadata": {"n": number}},
        )
    assert not OutboxEvent.objects.exists()
