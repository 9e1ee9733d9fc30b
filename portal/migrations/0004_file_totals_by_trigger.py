"""Running totals of files by status, kept by statement triggers (``FileTotalsDelta``).

The triggers see every write to ``portal_uploadfile`` (services, admin,
cascades from a deleted user, SQL by hand) through its transition tables, so
no code path can forget to count. CREATE TRIGGER locks the table against
writes until this migration commits, so the first fold below and the
triggers see the same files.
"""

from django.db import migrations, models

FORWARD = """
CREATE FUNCTION portal_file_totals_record() RETURNS trigger LANGUAGE plpgsql AS $$
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
CREATE TRIGGER portal_file_totals_insert AFTER INSERT ON portal_uploadfile
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION portal_file_totals_record();
CREATE TRIGGER portal_file_totals_update AFTER UPDATE ON portal_uploadfile
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION portal_file_totals_record();
CREATE TRIGGER portal_file_totals_delete AFTER DELETE ON portal_uploadfile
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION portal_file_totals_record();
INSERT INTO portal_filetotalsdelta (status, files, bytes)
    SELECT status, count(*), coalesce(sum(size), 0) FROM portal_uploadfile GROUP BY status;
"""

REVERSE = """
DROP TRIGGER portal_file_totals_insert ON portal_uploadfile;
DROP TRIGGER portal_file_totals_update ON portal_uploadfile;
DROP TRIGGER portal_file_totals_delete ON portal_uploadfile;
DROP FUNCTION portal_file_totals_record();
"""


class Migration(migrations.Migration):
    dependencies = [
        ("portal", "0003_verbose_name_plural"),
    ]

    operations = [
        migrations.CreateModel(
            name="FileTotalsDelta",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("status", models.CharField(max_length=16)),
                ("files", models.BigIntegerField()),
                ("bytes", models.BigIntegerField()),
            ],
            options={
                "verbose_name_plural": "file totals deltas",
            },
        ),
        migrations.RunSQL(FORWARD, REVERSE),
    ]
