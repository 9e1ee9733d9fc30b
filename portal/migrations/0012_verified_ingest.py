"""Verified ingest: the scan fields, the new file statuses, the held-files index.

The batch deletion trigger (migration 0007) is widened so a deleted
quarantined or rejected file leaves ``files_failed`` for ``files_deleted``,
as a failed one does: verification counts both in ``files_failed``.
"""

from django.conf import settings
from django.db import migrations, models

TRIGGER = """
CREATE OR REPLACE FUNCTION portal_batch_files_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM portal_uploadbatch
    WHERE id IN (SELECT batch_id FROM old_rows WHERE status IN ({statuses}))
    ORDER BY id FOR UPDATE;
    UPDATE portal_uploadbatch b SET
        files_stored = GREATEST(0, b.files_stored - g.stored),
        files_failed = GREATEST(0, b.files_failed - g.failed),
        files_deleted = b.files_deleted + g.stored + g.failed,
        updated_at = now()
    FROM (
        SELECT batch_id,
               count(*) FILTER (WHERE status = 'stored') AS stored,
               count(*) FILTER (WHERE status <> 'stored') AS failed
        FROM old_rows WHERE batch_id IS NOT NULL AND status IN ({statuses})
        GROUP BY batch_id
    ) g
    WHERE b.id = g.batch_id;
    RETURN NULL;
END
$$;
"""
ENDED_WITH_VERIFICATION = TRIGGER.format(statuses="'stored', 'failed', 'quarantined', 'rejected'")
ENDED_BEFORE = TRIGGER.format(statuses="'stored', 'failed'")


class Migration(migrations.Migration):
    dependencies = [
        ("portal", "0011_upload_session_s3_multipart"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="uploadfile",
            name="scan_result",
            field=models.CharField(
                blank=True,
                choices=[
                    ("", "Not scanned (no scanner configured)"),
                    ("clean", "Clean"),
                    ("infected", "Infected"),
                    ("unscanned", "Not scanned (scanner unavailable)"),
                ],
                db_default="",
                default="",
                max_length=16,
            ),
        ),
        migrations.AddField(
            model_name="uploadfile",
            name="scan_signature",
            field=models.CharField(blank=True, db_default="", default="", max_length=255),
        ),
        migrations.AddField(
            model_name="uploadfile",
            name="scanned_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="uploadfile",
            name="verify_after",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="uploadfile",
            name="verify_attempts",
            field=models.PositiveIntegerField(db_default=0, default=0),
        ),
        migrations.AlterField(
            model_name="uploadfile",
            name="status",
            field=models.CharField(
                choices=[
                    ("uploading", "Uploading"),
                    ("scanning", "Scanning"),
                    ("stored", "Stored"),
                    ("failed", "Failed"),
                    ("quarantined", "Quarantined"),
                    ("rejected", "Rejected"),
                ],
                default="uploading",
                max_length=16,
            ),
        ),
        migrations.AddIndex(
            model_name="uploadfile",
            index=models.Index(
                condition=models.Q(("status", "scanning")),
                fields=["verify_after"],
                name="portal_file_scanning_due",
            ),
        ),
        migrations.RunSQL(ENDED_WITH_VERIFICATION, ENDED_BEFORE),
    ]
