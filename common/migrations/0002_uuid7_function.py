"""A SQL function making UUIDv7 ids, for rows inserted by SQL alone.

``emit_event`` writes an event and its delivery rows in one statement; the
delivery ids must be UUIDv7 like every other primary key (time-ordered, so
new rows land at the right edge of the index), and PostgreSQL 15 has no
built-in for them.
"""

from django.db import migrations

CREATE = """
CREATE FUNCTION common_uuid7() RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
    -- RFC 9562: bytes 0-5 are Unix time in ms; the random version 4 UUID
    -- supplies the rest, with its version nibble turned from 4 (0100) into
    -- 7 (0111) by setting bits 4 and 5 of byte 6. Its variant bits stay.
    SELECT encode(
        overlay(
            set_bit(set_bit(uuid_send(gen_random_uuid()), 52, 1), 53, 1)
            PLACING substring(
                int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3
            )
            FROM 1 FOR 6
        ),
        'hex'
    )::uuid
$$;
"""

DROP = "DROP FUNCTION IF EXISTS common_uuid7();"


class Migration(migrations.Migration):
    dependencies = [("common", "0001_initial")]

    operations = [migrations.RunSQL(CREATE, DROP)]
