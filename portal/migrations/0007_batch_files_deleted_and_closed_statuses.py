"""Batch counters follow deletions; two statuses for batches closed by hand.

A trigger on ``portal_uploadfile`` moves every deleted stored or failed file
of a batch from ``files_stored``/``files_failed`` to ``files_deleted``, for
every path that deletes (a user's delete, TTL cleanup, bulk deletes, the
admin, cascades, SQL by hand), so the counts shown match the files listed.
It is a statement trigger over the transition table (one UPDATE per
statement, however many files), and locks the batches in id order first, so
two concurrent bulk deletes across the same batches cannot deadlock.

Existing counters are brought to the files that exist; the difference is
recorded as deleted.
"""

from django.db import migrations, models

FORWARD = """
CREATE FUNCTION portal_batch_files_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM portal_uploadbatch
    WHERE id IN (SELECT batch_id FROM old_rows WHERE status IN ('stored', 'failed'))
    ORDER BY id FOR UPDATE;
    UPDATE portal_uploadbatch b SET
        files_stored = GREATEST(0, b.files_stored - g.stored),
        files_failed = GREATEST(0, b.files_failed - g.failed),
        files_deleted = b.files_deleted + g.stored + g.failed,
        updated_at = now()
    FROM (
        SELECT batch_id,
               count(*) FILTER (WHERE status = 'stored') AS stored,
               count(*) FILTER (WHERE status = 'failed') AS failed
        FROM old_rows WHERE batch_id IS NOT NULL AND status IN ('stored', 'failed')
        GROUP BY batch_id
    ) g
    WHERE b.id = g.batch_id;
    RETURN NULL;
END
$$;
CREATE TRIGGER portal_batch_files_deleted AFTER DELETE ON portal_uploadfile
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION portal_batch_files_deleted();
"""

REVERSE = """
DROP TRIGGER portal_batch_files_deleted ON portal_uploadfile;
DROP FUNCTION portal_batch_files_deleted();
"""

RECOUNT = """
UPDATE portal_uploadbatch b SET
    files_stored = c.stored,
    files_failed = c.failed,
    files_deleted = GREATEST(0, b.files_stored + b.files_failed - c.stored - c.failed)
FROM (
    SELECT b2.id,
           count(f.id) FILTER (WHERE f.status = 'stored') AS stored,
           count(f.id) FILTER (WHERE f.status = 'failed') AS failed
    FROM portal_uploadbatch b2 LEFT JOIN portal_uploadfile f ON f.batch_id = b2.id
    GROUP BY b2.id
) c
WHERE b.id = c.id AND (b.files_stored <> c.stored OR b.files_failed <> c.failed);
"""

# Backwards, deleted files count as stored again (the split is not kept) and
# the new statuses become the one they used to be.
UNDO_RECOUNT = """
UPDATE portal_uploadbatch SET files_stored = files_stored + files_deleted
WHERE files_deleted > 0;
UPDATE portal_uploadbatch SET status = 'complete' WHERE status IN ('incomplete', 'empty');
"""


class Migration(migrations.Migration):
    dependencies = [
        ("portal", "0006_file_totals_per_owner"),
    ]

    operations = [
        migrations.AddField(
            model_name="uploadbatch",
            name="files_deleted",
            field=models.PositiveIntegerField(db_default=0, default=0),
        ),
        migrations.AlterField(
            model_name="uploadbatch",
            name="status",
            field=models.CharField(
                choices=[
                    ("init", "Initialised"),
                    ("in_progress", "In progress"),
                    ("complete", "Complete"),
                    ("partial", "Partially failed"),
                    ("failed", "Failed"),
                    ("incomplete", "Closed with files missing"),
                    ("empty", "Closed empty"),
                ],
                default="init",
                max_length=16,
            ),
        ),
        migrations.RunSQL(RECOUNT, UNDO_RECOUNT),
        migrations.RunSQL(FORWARD, REVERSE),
    ]
