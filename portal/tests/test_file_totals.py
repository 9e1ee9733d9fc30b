"""The file totals kept by triggers match the files, whatever wrote them."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.models import Count, Sum

from monitoring.metrics.selectors import file_totals
from portal.models import FileTotalsDelta, UploadFile
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

    executor = MigrationExecutor(connection)
    executor.migrate([("portal", "0003_verbose_name_plural")])
    assert triggers() == 0
    assert FileTotalsDelta._meta.db_table not in connection.introspection.table_names()
    # Written as that schema knew files (later migrations add columns).
    old_files = executor.loader.project_state(("portal", "0003_verbose_name_plural")).apps
    old_files.get_model("portal", "UploadFile").objects.create(
        owner_id=user.pk, filename="c.txt", size=len(b"while off"), status="stored"
    )
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes("portal"))
    assert triggers() == 3
    assert kept() == actual() == (counts(stored=2, failed=0), 15)
