"""Batches: concurrent uploads, derived status, one batch.completed, idempotent create."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction

from common.exceptions import (
    ConflictError,
    NotFoundError,
    UnsupportedMediaTypeError,
    ValidationError,
)
from common.models import OutboxEvent
from portal.models import UploadBatch, UploadFile
from portal.services.batches import batch_close, batch_create, clean_metadata
from portal.services.uploads import upload_file_create
from portal.tests.streams import EXE_HEAD, BytesStream, CountingStream


def upload_from_threads(*, owner, batch, plans: list[list[bytes | None]]) -> list[BaseException]:
    """Each plan runs in its own thread (own DB connection); ``None`` = a refused file."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(plans))

    def run(plan):
        try:
            barrier.wait()
            for i, data in enumerate(plan):
                if data is None:
                    stream = CountingStream(100, head=EXE_HEAD, fill=b"\0")
                    try:
                        upload_file_create(
                            owner=owner, stream=stream, filename=f"bad{i}.png", batch=batch
                        )
                    except UnsupportedMediaTypeError:
                        continue
                    raise AssertionError("a disallowed file was accepted")
                upload_file_create(
                    owner=owner, stream=BytesStream(data), filename=f"f{i}.txt", batch=batch
                )
        except BaseException as exc:  # surfaced by the test
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(plan,)) for plan in plans]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return errors


def completed_events(batch):
    return OutboxEvent.objects.filter(event_type="batch.completed", aggregate_id=str(batch.id))


@pytest.mark.django_db(transaction=True)
def test_twenty_files_from_four_threads(storage, user):
    batch = batch_create(owner=user, expected_files=20)
    plans = [[f"t{t}-f{i}".encode() for i in range(5)] for t in range(4)]
    assert upload_from_threads(owner=user, batch=batch, plans=plans) == []

    batch.refresh_from_db()
    assert (batch.files_stored, batch.files_failed) == (20, 0)
    assert batch.status == UploadBatch.Status.COMPLETE
    assert batch.completed_at is not None
    assert UploadFile.objects.filter(batch=batch, status="stored").count() == 20
    assert len(storage.keys()) == 20
    [event] = completed_events(batch)
    assert event.payload["batch"]["status"] == "complete"
    assert event.payload["batch"]["files_stored"] == 20
    assert event.payload["uploader"]["email"] == user.email
    assert OutboxEvent.objects.filter(event_type="file.stored").count() == 20


@pytest.mark.django_db(transaction=True)
def test_mixed_outcomes_from_threads_give_partial(user, settings):
    settings.FILE_UPLOAD_ALLOWED_TYPES = ["text/plain"]
    batch = batch_create(owner=user, expected_files=20)
    plans = [[None if i == t else f"{t}{i}".encode() for i in range(5)] for t in range(4)]
    assert upload_from_threads(owner=user, batch=batch, plans=plans) == []

    batch.refresh_from_db()
    assert (batch.files_stored, batch.files_failed) == (16, 4)
    assert batch.status == UploadBatch.Status.PARTIAL
    [event] = completed_events(batch)
    assert event.payload["batch"]["status"] == "partial"


def test_all_failed_gives_failed_and_extra_files_are_refused(user, settings):
    settings.FILE_UPLOAD_ALLOWED_TYPES = ["text/plain"]
    batch = batch_create(owner=user, expected_files=2)
    for _ in range(2):
        with pytest.raises(UnsupportedMediaTypeError):
            upload_file_create(
                owner=user, stream=BytesStream(EXE_HEAD), filename="x.txt", batch=batch
            )
    batch.refresh_from_db()
    assert batch.status == UploadBatch.Status.FAILED
    assert completed_events(batch).count() == 1

    with pytest.raises(ConflictError):
        upload_file_create(owner=user, stream=BytesStream(b"late"), filename="l.txt", batch=batch)
    assert UploadFile.objects.filter(batch=batch).count() == 2


def test_status_moves_from_init_to_in_progress(user):
    batch = batch_create(owner=user, expected_files=3)
    assert batch.status == UploadBatch.Status.INIT
    upload_file_create(owner=user, stream=BytesStream(b"1"), filename="1.txt", batch=batch)
    batch.refresh_from_db()
    assert batch.status == UploadBatch.Status.IN_PROGRESS
    assert not completed_events(batch).exists()


def test_close_ends_an_open_ended_batch_once(user):
    batch = batch_create(owner=user)
    upload_file_create(owner=user, stream=BytesStream(b"1"), filename="1.txt", batch=batch)
    upload_file_create(owner=user, stream=BytesStream(b"2"), filename="2.txt", batch=batch)
    closed = batch_close(batch=batch, actor=user)
    assert closed.status == UploadBatch.Status.COMPLETE
    assert closed.expected_files == 2
    batch_close(batch=batch, actor=user)
    assert completed_events(batch).count() == 1
    with pytest.raises(ConflictError):
        upload_file_create(owner=user, stream=BytesStream(b"3"), filename="3.txt", batch=batch)


def test_batch_create_is_idempotent_per_owner(user, other_user):
    first = batch_create(owner=user, idempotency_key="run-42", expected_files=3)
    again = batch_create(owner=user, idempotency_key="run-42", expected_files=3)
    theirs = batch_create(owner=other_user, idempotency_key="run-42")
    assert first.pk == again.pk
    assert theirs.pk != first.pk
    assert UploadBatch.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_concurrent_idempotent_creates_make_one_batch(user):
    results, barrier = [], threading.Barrier(4)

    def run():
        try:
            barrier.wait()
            results.append(batch_create(owner=user, idempotency_key="same").pk)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(results) == 4 and len(set(results)) == 1
    assert UploadBatch.objects.count() == 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"expected_files": 0},
        {"expected_files": "3"},
        {"expected_files": True},
        {"idempotency_key": ""},
        {"idempotency_key": "k" * 256},
        {"metadata": "not an object"},
    ],
)
def test_bad_batch_input_changes_nothing(user, kwargs):
    from common.exceptions import ValidationError

    with pytest.raises(ValidationError):
        batch_create(owner=user, **kwargs)
    assert not UploadBatch.objects.exists()


def test_someone_elses_batch_is_not_found(storage, user, other_user):
    batch = batch_create(owner=other_user)
    with pytest.raises(NotFoundError):
        upload_file_create(owner=user, stream=BytesStream(b"x"), filename="x.txt", batch=batch)
    assert not UploadFile.objects.exists()
    assert storage.keys() == set()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"metadata": {"note": "a\x00b"}}, "metadata"),
        ({"idempotency_key": "k\x00"}, "idempotency_key"),
        ({"metadata": {"note": "\ud800"}}, "metadata"),
        ({"metadata": {"\udfff": 1}}, "metadata"),
        ({"idempotency_key": "k\ud800"}, "idempotency_key"),
    ],
)
def test_nul_in_batch_input_is_a_validation_error(user, kwargs, field):
    """PostgreSQL cannot store NUL or unpaired surrogates; every caller gets a clear error."""
    from common.exceptions import ValidationError

    with pytest.raises(ValidationError) as exc:
        batch_create(owner=user, **kwargs)
    assert exc.value.details["field"] == field
    assert not UploadBatch.objects.exists()


def _nested(levels: int) -> list:
    value: list = []
    for _ in range(levels):
        value = [value]
    return value


def test_the_metadata_limit_is_named_in_the_same_units():
    with pytest.raises(ValidationError) as exc:
        clean_metadata({"note": "x" * 17_000})
    assert exc.value.message == "metadata is larger than 16 KiB (16 384 bytes)."


@pytest.mark.parametrize(
    ("metadata", "path"),
    [
        ({"x": float("nan")}, "x"),
        ({"x": [1, float("inf")]}, "x[1]"),
        ({"x": float("-inf")}, "x"),
        pytest.param({"deep": _nested(50_000)}, None, id="50000-deep"),
    ],
)
def test_metadata_jsonb_cannot_store_is_a_validation_error(user, metadata, path):
    """Whatever the caller (form, CLI, Python): NaN/Infinity never reach
    PostgreSQL, and nesting never reaches a recursive json.dumps."""
    from common.exceptions import ValidationError

    for create in (
        lambda: batch_create(owner=user, metadata=metadata),
        lambda: upload_file_create(
            owner=user, stream=BytesStream(b"x"), filename="x.txt", metadata=metadata
        ),
    ):
        with pytest.raises(ValidationError) as exc:
            create()
        assert exc.value.details["field"] == "metadata"
        if path is not None:
            assert exc.value.details["path"] == path
    assert not UploadBatch.objects.exists()
    assert not UploadFile.objects.exists()


def test_closing_early_keeps_expected_files_and_says_files_are_missing(user):
    """#23.1: closing a batch of 3 after 1 file must not report it complete."""
    batch = batch_create(owner=user, expected_files=3)
    upload_file_create(owner=user, stream=BytesStream(b"1"), filename="1.txt", batch=batch)
    closed = batch_close(batch=batch, actor=user)
    assert closed.status == UploadBatch.Status.INCOMPLETE
    assert closed.get_status_display() == "Closed with files missing"
    assert (closed.expected_files, closed.files_ended, closed.files_missing) == (3, 1, 2)
    [event] = completed_events(batch)
    payload = event.payload["batch"]
    assert payload["status"] == "incomplete"
    assert payload["expected_files"] == 3
    assert (payload["files_stored"], payload["files_ended"], payload["files_missing"]) == (1, 1, 2)
    assert payload["closed_at"] is not None and payload["completed_at"] is not None


def test_closing_a_batch_that_has_all_its_files_is_complete(user):
    batch = batch_create(owner=user)
    upload_file_create(owner=user, stream=BytesStream(b"1"), filename="1.txt", batch=batch)
    closed = batch_close(batch=batch, actor=user)
    assert (closed.status, closed.expected_files, closed.files_missing) == ("complete", 1, 0)
    assert completed_events(batch).get().payload["batch"]["files_missing"] == 0


def test_closing_an_empty_batch_is_empty_not_complete(user):
    """#23.2: an open-ended batch closed with no file is 'empty'."""
    closed = batch_close(batch=batch_create(owner=user), actor=user)
    assert closed.status == UploadBatch.Status.EMPTY
    assert closed.files_missing == 0
    assert completed_events(closed).get().payload["batch"]["status"] == "empty"
    # Announced files that never came: incomplete, not empty.
    announced = batch_close(batch=batch_create(owner=user, expected_files=2), actor=user)
    assert (announced.status, announced.files_missing) == ("incomplete", 2)


def test_deleting_files_moves_them_from_the_batch_counters_to_deleted(user, staff_user):
    """#23.2: counters follow deletions, whoever deletes (service, bulk, SQL)."""
    from portal.services.file_records import upload_file_delete

    batch = batch_create(owner=user, expected_files=3)
    files = [
        upload_file_create(owner=user, stream=BytesStream(b"x"), filename=f"{i}.txt", batch=batch)
        for i in range(3)
    ]
    upload_file_delete(file=files[0], actor=user)
    batch.refresh_from_db()
    assert (batch.files_stored, batch.files_deleted, batch.files_ended) == (2, 1, 3)
    assert batch.status == UploadBatch.Status.COMPLETE
    assert batch.files_stored == UploadFile.objects.filter(batch=batch, status="stored").count()
    # A bulk delete of several files is counted in one statement.
    UploadFile.objects.filter(batch=batch).delete()
    batch.refresh_from_db()
    assert (batch.files_stored, batch.files_failed, batch.files_deleted) == (0, 0, 3)
    assert batch.files_missing == 0


def test_a_deleted_file_still_counts_as_arrived_for_an_open_batch(user):
    from portal.services.file_records import upload_file_delete

    batch = batch_create(owner=user, expected_files=2)
    first = upload_file_create(owner=user, stream=BytesStream(b"1"), filename="1.txt", batch=batch)
    upload_file_delete(file=first, actor=user)
    upload_file_create(owner=user, stream=BytesStream(b"2"), filename="2.txt", batch=batch)
    batch.refresh_from_db()
    assert batch.status == UploadBatch.Status.COMPLETE
    assert (batch.files_stored, batch.files_deleted) == (1, 1)


@pytest.mark.django_db(transaction=True)
def test_counting_a_file_does_not_wait_for_inserts_that_reference_the_batch(user):
    """Another transaction that inserted a row pointing at the batch and its owner
    (a file ending, an upload session being created: their foreign key checks
    hold ``FOR KEY SHARE``) must not block counting this file. With the batch
    and its owner locked ``FOR UPDATE`` two files of one batch ending at once
    deadlocked, and a creating tus request answered 503 (CI, upload requests).
    """
    import psycopg

    from portal.services.batches import batch_record_file_ended

    batch = batch_create(owner=user, expected_files=3)
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("pool", None)
    with psycopg.connect(**params) as other:
        other.execute("SELECT 1 FROM portal_uploadbatch WHERE id = %s FOR KEY SHARE", [batch.pk])
        other.execute("SELECT 1 FROM accounts_user WHERE id = %s FOR KEY SHARE", [user.pk])
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '2s'")
            counted = batch_record_file_ended(batch_id=batch.pk, stored=True)
        other.rollback()
    assert counted.files_stored == 1
    assert UploadBatch.objects.get(pk=batch.pk).status == UploadBatch.Status.IN_PROGRESS
