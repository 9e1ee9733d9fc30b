"""The file totals kept by triggers match the files, whatever wrote them."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.models import Count, Sum

from monitoring.metrics.selectors import file_totals
from portal.models import FileTotalsDelta, UploadFile
from portal.selectors import file_totals_for_owner
from portal.services.file_totals import file_totals_fold
from portal.services.uploads import upload_file_create
from portal.tests.streams import BytesStream

pytestmark = pytest.mark.django_db


def actual() -> tuple[dict[str, int], int]:
    """By status and stored bytes, counted from the files themselves."""
    by_status = {s.value: 0 for s in UploadFile.Status}
    rows = UploadFile.objects.order_by().values("status").annotate(n=Count("id"), b=Sum("size"))
    for row in rows:
        by_status[row["status"]] = row["n"]
    stored = sum(r["b"] for r in rows if r["status"] == UploadFile.Status.STORED)
    return by_status, stored


def counts(**by_status: int) -> dict[str, int]:
    """Every status (verification's included) at 0 but those given."""
    return {s.value: by_status.get(s.value, 0) for s in UploadFile.Status}


def kept() -> tuple[dict[str, int], int]:
    totals = file_totals()
    return totals.by_status, totals.stored_bytes


def test_totals_follow_uploads_updates_and_deletes(user, other_user):
    for i in range(3):
        upload_file_create(owner=user, stream=BytesStream(b"x" * (10 + i)), filename=f"{i}.txt")
    upload_file_create(owner=other_user, stream=BytesStream(b"other"), filename="o.txt")
    assert kept() == actual() == (counts(stored=4, failed=0), 38)

    # Bulk writes, as an admin or a cleanup would make them.
    UploadFile.objects.filter(size=10).update(status=UploadFile.Status.FAILED, size=0)
    UploadFile.objects.filter(size=11).update(size=1000)
    UploadFile.objects.filter(size=12).update(metadata={"note": "no count changes"})
    assert kept() == actual() == (counts(stored=3, failed=1), 1017)

    UploadFile.objects.filter(size=1000).delete()
    other_user.delete()  # cascades to their file
    assert kept() == actual() == (counts(stored=1, failed=1), 12)


def test_folding_keeps_the_totals_and_leaves_a_row_per_status(user):
    for i in range(5):
        upload_file_create(owner=user, stream=BytesStream(b"y" * i), filename=f"{i}.txt")
    UploadFile.objects.filter(size=0).update(status=UploadFile.Status.FAILED)
    before = kept()
    assert file_totals().delta_rows > 2
    assert file_totals_fold() is True
    assert kept() == before == actual()
    assert file_totals().delta_rows == 2  # stored and failed; nothing uploading


def test_a_fold_already_running_is_not_waited_for(user):
    import psycopg

    from portal.services import file_totals as service

    s = connection.settings_dict
    other = psycopg.connect(
        host=s["HOST"] or "127.0.0.1",
        port=s["PORT"] or 5432,
        user=s["USER"],
        dbname=s["NAME"],
        autocommit=True,
    )
    with other:
        other.execute("SELECT pg_advisory_lock(%s)", [service._FOLD_LOCK])
        assert file_totals_fold() is False
        other.execute("SELECT pg_advisory_unlock(%s)", [service._FOLD_LOCK])
        assert file_totals_fold() is True


@pytest.mark.django_db(transaction=True)
def test_the_migration_counts_the_files_there_and_reverses(user):
    from django.db.migrations.executor import MigrationExecutor

    upload_file_create(owner=user, stream=BytesStream(b"before"), filename="b.txt")

    def triggers() -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_trigger WHERE tgname LIKE 'portal_file_totals_%%'"
            )
            return cursor.fetchone()[0]

    before_totals = ("portal", "0003_verbose_name_plural")
    executor = MigrationExecutor(connection)
    executor.migrate([before_totals])
    try:
        assert triggers() == 0
        assert FileTotalsDelta._meta.db_table not in connection.introspection.table_names()
        # A file stored while the triggers were not there, written as the
        # schema of then knows it (later migrations add columns to the table).
        old_file = executor.loader.project_state(before_totals).apps.get_model(
            "portal", "UploadFile"
        )
        old_file.objects.create(
            owner_id=user.pk,
            storage_key="uploads/2026/01/while-off",
            filename="c.txt",
            content_type="text/plain",
            size=len(b"while off"),
            status="stored",
        )
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes("portal"))
    assert triggers() == 3
    assert kept() == actual() == (counts(uploading=0, stored=2, failed=0), 15)


def owners_actual(owner) -> tuple[dict[str, int], int]:
    by_status = {s.value: 0 for s in UploadFile.Status}
    rows = (
        UploadFile.objects.filter(owner=owner)
        .order_by()
        .values("status")
        .annotate(n=Count("id"), b=Sum("size"))
    )
    for row in rows:
        by_status[row["status"]] = row["n"]
    stored = sum(r["b"] for r in rows if r["status"] == UploadFile.Status.STORED)
    return by_status, stored


def owners_kept(owner) -> tuple[dict[str, int], int]:
    totals = file_totals_for_owner(owner=owner)
    return totals.by_status, totals.stored_bytes


def test_each_owners_totals_follow_every_kind_of_write(user, other_user):
    """The dashboard and the files API read these instead of counting the owner's files."""
    for i in range(3):
        upload_file_create(owner=user, stream=BytesStream(b"x" * (10 + i)), filename=f"{i}.txt")
    upload_file_create(owner=other_user, stream=BytesStream(b"other"), filename="o.txt")
    UploadFile.objects.create(owner=user, filename="half.bin", size=7)  # uploading
    assert owners_kept(user) == owners_actual(user) == (counts(uploading=1, stored=3, failed=0), 33)
    assert owners_kept(other_user) == owners_actual(other_user)

    UploadFile.objects.filter(size=10).update(status=UploadFile.Status.FAILED)
    UploadFile.objects.filter(size=11).update(owner=other_user)  # a file changes hands
    UploadFile.objects.filter(size=12).delete()
    for owner in (user, other_user):
        assert owners_kept(owner) == owners_actual(owner)
    assert owners_kept(user) == (counts(uploading=1, stored=0, failed=1), 0)
    assert kept() == actual()

    other_user.delete()
    assert owners_kept(other_user) == (counts(uploading=0, stored=0, failed=0), 0)
    assert file_totals_fold() is True
    assert not FileTotalsDelta.objects.filter(owner_id=other_user.pk).exists()  # zeros dropped


def test_an_owners_fold_leaves_the_others_rows(user, other_user):
    for i in range(4):
        upload_file_create(owner=user, stream=BytesStream(b"y" * i), filename=f"{i}.txt")
    upload_file_create(owner=other_user, stream=BytesStream(b"z"), filename="z.txt")
    theirs = set(FileTotalsDelta.objects.filter(owner_id=other_user.pk).values_list("id"))
    before = owners_kept(user)
    assert file_totals_for_owner(owner=user).foldable_rows > 0

    assert file_totals_fold(owner=user) is True
    assert owners_kept(user) == before == owners_actual(user)
    assert FileTotalsDelta.objects.filter(owner_id=user.pk).count() == 1  # stored
    assert file_totals_for_owner(owner=user).foldable_rows == 0
    assert set(FileTotalsDelta.objects.filter(owner_id=other_user.pk).values_list("id")) == theirs


@pytest.mark.django_db(transaction=True)
def test_migration_0006_counts_each_owners_files_and_reverses(user, other_user):
    from django.db.migrations.executor import MigrationExecutor

    before = ("portal", "0005_upload_session_sha256_state")
    executor = MigrationExecutor(connection)
    executor.migrate([before])
    try:
        # Written as the schema of then knows the table (later migrations
        # add columns, and today's upload path reads tables not there yet).
        old_file = executor.loader.project_state(before).apps.get_model("portal", "UploadFile")
        for owner, data, name in ((user, b"mine", "m.txt"), (other_user, b"theirs!", "t.txt")):
            old_file.objects.create(
                owner_id=owner.pk,
                storage_key=f"uploads/2026/01/{name}",
                filename=name,
                content_type="text/plain",
                size=len(data),
                status="stored",
            )
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes("portal"))
    assert owners_kept(user) == owners_actual(user) == (counts(uploading=0, stored=1, failed=0), 4)
    assert owners_kept(other_user) == owners_actual(other_user)
    assert kept() == actual()
