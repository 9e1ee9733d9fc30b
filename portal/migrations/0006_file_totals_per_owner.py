"""File totals per owner (not only per status), and an index for "expiring soon".

The dashboard counted one owner's files with an aggregate over every one of
them (~170 ms at 1 000 000 files, bench/README.md "Portal pages at 1 000 000
files"); the running totals of migration 0004 now carry the owner, so it sums
a few rows instead. The table is locked against writes first, so the
recount below and the replaced trigger function see the same files.

Reversing keeps the rows per owner (summing them by status stays exact) and
puts back 0004's function.
"""

import uuid

from django.db import migrations, models

LOCK_AND_EMPTY = """
LOCK TABLE portal_uploadfile IN SHARE ROW EXCLUSIVE MODE;
DELETE FROM portal_filetotalsdelta;
"""

PER_OWNER = """
CREATE OR REPLACE FUNCTION portal_file_totals_record() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO portal_filetotalsdelta (owner_id, status, files, bytes)
        SELECT owner_id, status, count(*), coalesce(sum(size), 0) FROM new_rows
        GROUP BY owner_id, status;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO portal_filetotalsdelta (owner_id, status, files, bytes)
        SELECT owner_id, status, -count(*), -coalesce(sum(size), 0) FROM old_rows
        GROUP BY owner_id, status;
    ELSE
        INSERT INTO portal_filetotalsdelta (owner_id, status, files, bytes)
        SELECT owner_id, status, sum(files), sum(bytes) FROM (
            SELECT owner_id, status, 1 AS files, size AS bytes FROM new_rows
            UNION ALL
            SELECT owner_id, status, -1, -size FROM old_rows
        ) changed
        GROUP BY owner_id, status
        HAVING sum(files) <> 0 OR sum(bytes) <> 0;
    END IF;
    RETURN NULL;
END
$$;
INSERT INTO portal_filetotalsdelta (owner_id, status, files, bytes)
    SELECT owner_id, status, count(*), coalesce(sum(size), 0) FROM portal_uploadfile
    GROUP BY owner_id, status;
"""

PER_STATUS = """
CREATE OR REPLACE FUNCTION portal_file_totals_record() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO portal_filetotalsdelta (status, files, bytes)
        SELECT status, count(*), coalesce(sum(size), 0) FROM new_rows GROUP BY status;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO portal_filetotalsdelta (status, files, bytes)
        SELECT status, -count(*), -coalesce(sum(size), 0) FROM old_rows GROUP BY status;
    ELSE
        INSERT INTO portal_filetotalsdelta (status, files, bytes)
        SELECT status, sum(files), sum(bytes) FROM (
            SELECT status, 1 AS files, size AS bytes FROM new_rows
            UNION ALL
            SELECT status, -1, -size FROM old_rows
        ) changed
        GROUP BY status
        HAVING sum(files) <> 0 OR sum(bytes) <> 0;
    END IF;
    RETURN NULL;
END
$$;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("portal", "0005_upload_session_sha256_state"),
    ]

    operations = [
        migrations.RunSQL(LOCK_AND_EMPTY, migrations.RunSQL.noop),
        migrations.AddField(
            model_name="filetotalsdelta",
            name="owner_id",
            field=models.UUIDField(default=uuid.UUID(int=0)),
            preserve_default=False,
        ),
        migrations.AddIndex(
            model_name="filetotalsdelta",
            index=models.Index(fields=["owner_id"], name="portal_filetotals_owner"),
        ),
        migrations.RunSQL(PER_OWNER, PER_STATUS),
        migrations.AddIndex(
            model_name="uploadfile",
            index=models.Index(
                condition=models.Q(("status", "stored")),
                fields=["owner", "expires_at"],
                name="portal_file_owner_expires",
            ),
        ),
    ]
